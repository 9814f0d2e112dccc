mod net {
    microarena::include_model!("testdata/ui/data");
}

fn main() {}
