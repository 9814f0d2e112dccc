mod net {
    microarena::include_model!("testdata/ui/data/random.onnx");
}

fn main() {}
