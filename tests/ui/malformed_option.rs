mod net {
    microarena::include_model!("testdata/models/mlp.onnx", alignment = "sixteen");
}

fn main() {}
