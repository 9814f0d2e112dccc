mod net {
    microarena::include_model!("../../../../tests/models/chain.onnx", max_arena_bytes = 65536);
}

fn main() {}
