mod net {
    microarena::include_model!("testdata/ui/data/unsupported_op.onnx");
}

fn main() {}
