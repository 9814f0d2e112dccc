//! Every network in tests/models, compiled by `include_model!`, run through the generated
//! code, and compared with two independent oracles: the committed onnxruntime output
//! (tests/gen_models.py) and tract running the same file.

use microarena_tests::{assert_close, models_dir, read_f32, tract_run};

/// Relative tolerance of the issue; the absolute floor covers outputs near zero, where the
/// order of float additions (ours vs theirs) decides the last bits.
const REL: f32 = 1e-4;
const ABS: f32 = 1e-5;

macro_rules! models {
    ($($name:ident => $path:literal),* $(,)?) => {
        $(
            #[allow(non_snake_case)]
            #[test]
            fn $name() {
                mod m { microarena::include_model!($path, self_test = true); }
                // The build ran the plan on the host and checked it against tract; the
                // generated code, run here, must reproduce that result.
                assert!(m::Model::new().self_test(), "self_test failed");
                check(stringify!($name), &m::INPUT_SHAPE, m::ARENA_BYTES, |x, y| {
                    let mut model = m::Model::new();
                    let x: &[f32; m::INPUT_LEN] = x.try_into().unwrap();
                    let y: &mut [f32; m::OUTPUT_LEN] = y.try_into().unwrap();
                    model.run(x, y);
                }, m::OUTPUT_LEN);
            }
        )*
    };
}

fn check(
    name: &str,
    input_shape: &[usize],
    arena: usize,
    run: impl Fn(&[f32], &mut [f32]),
    out_len: usize,
) {
    let dir = models_dir();
    let x = read_f32(&dir.join(format!("{name}.input.bin")));
    let ort = read_f32(&dir.join(format!("{name}.output.bin")));
    let mut y = vec![f32::NAN; out_len];
    run(&x, &mut y);
    assert_close(&format!("{name} vs onnxruntime"), &y, &ort, REL, ABS);
    let tract = tract_run(&dir.join(format!("{name}.onnx")), input_shape, &x)
        .expect("tract runs the model");
    assert_close(&format!("{name} vs tract"), &y, &tract, REL, ABS);
    // Running twice gives the same answer: nothing depends on stale arena contents.
    let mut y2 = vec![f32::NAN; out_len];
    run(&x, &mut y2);
    assert_eq!(y, y2, "{name}: second run differs");
    assert!(arena > 0);
    // `microarena plan` (the same options) reports the arena the macro built.
    let planned = microarena_compiler::plan_model(
        &dir.join(format!("{name}.onnx")),
        &microarena_compiler::Options::default(),
    )
    .expect("plans");
    assert_eq!(
        arena, planned.plan.arena_bytes,
        "{name}: ARENA_BYTES vs microarena plan"
    );
}

models!(
    chain => "tests/models/chain.onnx",
    residual => "tests/models/residual.onnx",
    inception => "tests/models/inception.onnx",
    dwsep => "tests/models/dwsep.onnx",
    mobilenetv2 => "tests/models/mobilenetv2.onnx",
    densenet => "tests/models/densenet.onnx",
    mlp => "tests/models/mlp.onnx",
    random_dag => "tests/models/random_dag.onnx",
    nas_cells => "tests/models/nas_cells.onnx",
    resnet8 => "tests/models/resnet8.onnx",
    dscnn => "tests/models/dscnn.onnx",
    mobilenet_v1 => "tests/models/mobilenet_v1.onnx",
    mobilenet_v2 => "tests/models/mobilenet_v2.onnx",
    fc_autoencoder => "tests/models/fc_autoencoder.onnx",
    wide_stem => "tests/models/wide_stem.onnx",
);

/// Every model file in tests/models has a test above.
#[test]
fn every_model_is_tested() {
    let listed = [
        "chain",
        "residual",
        "inception",
        "dwsep",
        "mobilenetv2",
        "densenet",
        "mlp",
        "random_dag",
        "nas_cells",
        "resnet8",
        "dscnn",
        "mobilenet_v1",
        "mobilenet_v2",
        "fc_autoencoder",
        "wide_stem",
    ];
    for e in std::fs::read_dir(models_dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".onnx") {
            assert!(
                listed.contains(&stem),
                "tests/models/{name} has no test in tests/models.rs"
            );
        }
    }
}
