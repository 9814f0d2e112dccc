mod net {
    microarena::include_model!("../../../../tests/models/mlp.onnx", input_shape = 3);
}

fn main() {}
