mod net {
    microarena::include_model!("testdata/models/mlp.onnx", input_shape = 3);
}

fn main() {}
