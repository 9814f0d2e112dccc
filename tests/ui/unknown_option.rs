mod net {
    microarena::include_model!("../../../../tests/models/mlp.onnx", arena_limit = 4096);
}

fn main() {}
