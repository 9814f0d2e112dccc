mod net {
    microarena::include_model!("models/does_not_exist.onnx");
}

fn main() {}
