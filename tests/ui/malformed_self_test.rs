mod net {
    microarena::include_model!("testdata/models/mlp.onnx", self_test = "yes");
}

fn main() {}
