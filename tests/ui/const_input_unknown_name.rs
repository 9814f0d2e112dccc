mod vad {
    microarena::include_model!(
        "testdata/models/interface/vad_like.onnx",
        input_shape = { "input": [1, 16], "state": [2, 1, 8] },
        const_input = { "rate": 16000 }
    );
}

fn main() {}
