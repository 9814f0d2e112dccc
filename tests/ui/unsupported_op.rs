mod net {
    microarena::include_model!("../../../../tests/ui/data/unsupported_op.onnx");
}

fn main() {}
