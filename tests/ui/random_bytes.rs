mod net {
    microarena::include_model!("../../../../tests/ui/data/random.onnx");
}

fn main() {}
