mod net {
    microarena::include_model!("../../../../tests/ui/data/bad_opset.onnx");
}

fn main() {}
