mod kws {
    microarena::include_model!(
        "testdata/models/interface/kws_gru.onnx",
        carry = { "hN": "hidden" }
    );
}

fn main() {}
