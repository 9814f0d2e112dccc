//! Hostile inputs the compile-fail cases cannot carry as files: refused with a clear error.

use microarena_compiler::{compile, Options};
use microarena_tests::onnx::OnnxBuilder;

/// Over 64 MiB of weights: refused up front, with the figure.
#[test]
fn huge_weights_are_refused_with_the_figure() {
    let n = (64 << 20) / 4 + 1;
    let mut b = OnnxBuilder::new(&[1, n]);
    let w = b.f32s(&[1, n], vec![0.5; n]);
    let y = b.node("Add", &["x", &w], vec![]);
    let bytes = b.finish(&y);
    let path = std::env::temp_dir().join(format!("microarena-huge-{}.onnx", std::process::id()));
    std::fs::write(&path, bytes).expect("temp file");
    let err = compile(&path, &Options::default()).expect_err("refused");
    let _ = std::fs::remove_file(&path);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{} bytes of weights", 4 * n)),
        "{msg}"
    );
    assert!(msg.contains("64 MiB"), "{msg}");
}

/// Inputs that once looked plausible to the fuzzer replay through the whole pipeline
/// without a panic (tests/fuzz_corpus/, see fuzz/).
#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz_corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        microarena_compiler::fuzz_one(&bytes);
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}

/// A real `.tflite` file with a few bytes changed, 300 times (fixed seeds): the flatbuffer
/// verifier, the lowering's own checks (shapes against buffer sizes, indices, types) and
/// the planner meet every mutant without a panic; some mutants still import (a changed
/// weight), others are refused with an error.
#[test]
fn mutated_tflite_files_never_panic() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models/tflite/kws_ref_model.tflite");
    let model = std::fs::read(&path).expect("the model");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut bytes = model.clone();
        for _ in 0..1 + next() % 4 {
            // Anywhere but the identifier (bytes 4..8), which makes it a TFLite file.
            let at = 8 + (next() as usize) % (bytes.len() - 8);
            bytes[at] = next() as u8;
        }
        let g = microarena_compiler::import::import_bytes(
            &bytes,
            std::path::Path::new("mutant.tflite"),
            &Default::default(),
        );
        match g {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
        microarena_compiler::fuzz_one(&bytes);
    }
    // Both outcomes occur: the mutants reach the lowering's checks, not only the verifier.
    assert!(ok > 0 && refused > 0, "{ok} compiled, {refused} refused");
}
