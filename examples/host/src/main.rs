//! Compiles the seed report's network (tests/models/chain.onnx) at build time and
//! classifies the committed test input with it.
//!
//! Run: `cargo run -p host-example`

mod chain {
    microarena::include_model!("../../tests/models/chain.onnx");
}

/// The test input the reference outputs were made with (little-endian f32, NCHW).
static INPUT: &[u8] = include_bytes!("../../../tests/models/chain.input.bin");
/// onnxruntime's output for it.
static EXPECTED: &[u8] = include_bytes!("../../../tests/models/chain.output.bin");

fn f32s<const N: usize>(bytes: &[u8]) -> [f32; N] {
    let mut out = [0.0; N];
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}

fn main() {
    let input: [f32; chain::INPUT_LEN] = f32s(INPUT);
    let expected: [f32; chain::OUTPUT_LEN] = f32s(EXPECTED);
    let mut model = chain::Model::new();
    let mut probs = [0.0f32; chain::OUTPUT_LEN];
    model.run(&input, &mut probs);

    let class = probs
        .iter()
        .enumerate()
        .fold(0, |best, (i, &p)| if p > probs[best] { i } else { best });
    let max_err = probs
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("input shape   {:?}", chain::INPUT_SHAPE);
    println!("class         {class} (p = {:.4})", probs[class]);
    println!(
        "arena         {} bytes for {} kernel steps",
        chain::ARENA_BYTES,
        chain::STEPS
    );
    println!("vs onnxruntime: max |difference| = {max_err:.2e}");
    assert!(max_err < 1e-4, "output differs from onnxruntime's");
}
