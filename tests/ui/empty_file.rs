mod net {
    microarena::include_model!("testdata/ui/data/empty.onnx");
}

fn main() {}
