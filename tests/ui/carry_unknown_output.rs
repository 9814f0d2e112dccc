mod kws {
    microarena::include_model!(
        "testdata/models/interface/kws_gru.onnx",
        carry = { "h_next": "h" }
    );
}

fn main() {}
