mod net {
    microarena::include_model!("../../../../tests/ui/data/rank4.onnx", input_shape = [1, 3]);
}

fn main() {}
