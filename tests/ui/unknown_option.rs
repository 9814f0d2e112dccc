mod net {
    microarena::include_model!("testdata/models/mlp.onnx", arena_limit = 4096);
}

fn main() {}
