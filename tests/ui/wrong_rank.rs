mod net {
    microarena::include_model!("testdata/ui/data/rank4.onnx", input_shape = [1, 3]);
}

fn main() {}
