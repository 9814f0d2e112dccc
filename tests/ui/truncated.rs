mod net {
    microarena::include_model!("../../../../tests/ui/data/truncated.onnx");
}

fn main() {}
