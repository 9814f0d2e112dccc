mod net {
    microarena::include_model!("../../../../tests/models/mlp.onnx", self_test = "yes");
}

fn main() {}
