mod net {
    microarena::include_model!("../../../../tests/ui/data/zero_dim.onnx");
}

fn main() {}
