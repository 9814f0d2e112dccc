mod net {
    microarena::include_model!("testdata/ui/data/truncated.onnx");
}

fn main() {}
