mod net {
    microarena::include_model!("../../../../tests/models/mlp.onnx", alignment = "sixteen");
}

fn main() {}
