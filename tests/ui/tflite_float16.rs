mod net {
    microarena::include_model!("testdata/ui/data/tflite_float16.tflite");
}

fn main() {}
