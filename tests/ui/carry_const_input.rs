// A constant input is not a state.
mod vad {
    microarena::include_model!(
        "testdata/models/interface/vad_like.onnx",
        input_shape = { "input": [1, 16], "state": [2, 1, 8] },
        const_input = { "sr": 16000 },
        carry = { "stateN": "sr" }
    );
}

fn main() {}
