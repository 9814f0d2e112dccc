mod net {
    microarena::include_model!("testdata/ui/data/tflite_unsupported_op.tflite");
}

fn main() {}
