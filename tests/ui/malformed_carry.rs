mod kws {
    microarena::include_model!("testdata/models/interface/kws_gru.onnx", carry = ["hN", "h"]);
}

fn main() {}
