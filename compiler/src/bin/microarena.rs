//! `microarena` command-line tool.
fn main() {
    eprintln!("usage: microarena plan MODEL.onnx");
}
