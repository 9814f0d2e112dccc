mod vad {
    microarena::include_model!("testdata/models/interface/vad_like.onnx", const_input = 16000);
}

fn main() {}
