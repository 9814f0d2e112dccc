//! Generates, for tests/self_test.rs, a model whose `self_test` must fail: the mlp network
//! with its build-time self-test data, then one weight corrupted (as a bit flip in flash
//! would), and the same model uncorrupted as the control. Both through the compiler's API,
//! since `include_model!` cannot be told to corrupt its own weights.

use std::path::Path;

use microarena_compiler::ir::{NodeId, TensorKind};
use microarena_compiler::{compile, self_test, Options};

fn main() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/mlp.onnx");
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var_os("OUT_DIR").expect("OUT_DIR");
    let out = Path::new(&out_dir);
    let mut c = compile(&model, &Options::default()).expect("mlp compiles");
    let st = self_test::build(&c, &model).expect("mlp passes its build-time self-test");
    std::fs::write(
        out.join("mlp_self_test.rs"),
        c.to_tokens_with_self_test(None, &st).to_string(),
    )
    .expect("write");
    // Flip the lowest exponent bit of the first weight element of the last step that has
    // weights: the final layer, whose every weight reaches the output.
    let weight = c
        .schedule
        .order
        .iter()
        .rev()
        .find_map(|&NodeId(v)| {
            c.graph.nodes[v]
                .inputs
                .iter()
                .find(|t| matches!(c.graph.tensors[t.0].kind, TensorKind::Weight(_)))
                .copied()
        })
        .expect("a step with weights");
    let TensorKind::Weight(w) = &mut c.graph.tensors[weight.0].kind else {
        unreachable!()
    };
    w[0] = f32::from_bits(w[0].to_bits() ^ (1 << 23));
    std::fs::write(
        out.join("mlp_self_test_corrupt.rs"),
        c.to_tokens_with_self_test(None, &st).to_string(),
    )
    .expect("write");
}
