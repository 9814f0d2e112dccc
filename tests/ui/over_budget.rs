mod net {
    microarena::include_model!("testdata/models/chain.onnx", max_arena_bytes = 16384);
}

fn main() {}
