mod net {
    microarena::include_model!("../../../../tests/ui/data/empty.onnx");
}

fn main() {}
