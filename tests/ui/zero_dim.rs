mod net {
    microarena::include_model!("testdata/ui/data/zero_dim.onnx");
}

fn main() {}
