// A carried state must come back with the shape it went in with.
mod kws {
    microarena::include_model!(
        "testdata/models/interface/kws_lstm.onnx",
        carry = { "hN": "h", "logits": "c" }
    );
}

fn main() {}
