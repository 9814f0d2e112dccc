mod net {
    microarena::include_model!("testdata/ui/data/bad_opset.onnx");
}

fn main() {}
