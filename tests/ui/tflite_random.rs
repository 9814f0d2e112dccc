mod net {
    microarena::include_model!("testdata/ui/data/tflite_random.tflite");
}

fn main() {}
