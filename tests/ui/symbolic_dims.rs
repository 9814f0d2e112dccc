mod net {
    microarena::include_model!("../../../../tests/ui/data/symbolic.onnx");
}

fn main() {}
