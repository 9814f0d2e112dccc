mod net {
    microarena::include_model!("../../../../tests/models/int8/inception_qop.onnx");
}

fn main() {}
