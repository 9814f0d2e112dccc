mod vad {
    microarena::include_model!(
        "testdata/models/interface/vad_like.onnx",
        input_shape = [1, 16],
        const_input = { "sr": 16000 }
    );
}

fn main() {}
