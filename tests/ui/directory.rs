mod net {
    microarena::include_model!("../../../../tests/ui/data");
}

fn main() {}
