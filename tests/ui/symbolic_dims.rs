mod net {
    microarena::include_model!("testdata/ui/data/symbolic.onnx");
}

fn main() {}
