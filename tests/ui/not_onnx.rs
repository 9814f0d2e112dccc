mod net {
    microarena::include_model!("../../../../tests/ui/data/not_onnx.onnx");
}

fn main() {}
