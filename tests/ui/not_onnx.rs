mod net {
    microarena::include_model!("testdata/ui/data/not_onnx.onnx");
}

fn main() {}
