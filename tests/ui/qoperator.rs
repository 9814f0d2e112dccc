mod net {
    microarena::include_model!("testdata/models/int8/inception_qop.onnx");
}

fn main() {}
