mod net {
    microarena::include_model!("testdata/ui/data/tflite_truncated.tflite");
}

fn main() {}
