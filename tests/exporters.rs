//! Graphs as exporters write them (`tests/make_exporter_models.py`, under
//! `tests/models/exporters/`), each beside a clean twin of the same network: a Keras CNN as
//! tf2onnx writes it (flat input reshaped to NHWC, a Transpose sandwich around every
//! convolution and pooling, `LeakyRelu` then `Max(x, c)` with a `[1, 1, 1, 1]` constant as
//! the clamp), a MobileNetV1-style stack with NHWC input, ReLU6 `Clip`s and a Keras PReLU
//! (slopes `[1, 1, C]`) between Transpose sandwiches, and a PyTorch head with its LayerNorms spelled out. Each builds through `include_model!`, matches onnxruntime and plans
//! to its clean twin's arena: the layouts and the clamps cost nothing.
use microarena_compiler::exec::{run_traced, Values};
use microarena_compiler::ir::{NormalizationOp, Op};
use microarena_compiler::{compile, Options};
use microarena_tests::{assert_close, models_dir, read_f32};

macro_rules! exported {
    ($($name:ident => $file:literal, $path:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                mod m {
                    microarena::include_model!($path, self_test = true);
                }
                assert!(m::Model::new().self_test(), "self_test failed");
                let dir = models_dir().join("exporters");
                let x = read_f32(&dir.join(format!("{}.input.bin", $file)));
                let want = read_f32(&dir.join(format!("{}.output.bin", $file)));
                let mut y = [f32::NAN; m::OUTPUT_LEN];
                m::Model::new().run(x.as_slice().try_into().expect("input length"), &mut y);
                // Softmax outputs in [0, 1]: 1e-5 relative, with a floor for the smallest
                // probabilities, where the order of float additions decides the last bits.
                assert_close(&format!("{} vs onnxruntime", $file), &y, &want, 1e-5, 1e-7);
            }
        )*
    };
}

exported!(
    keras_cnn => "keras_cnn", "tests/models/exporters/keras_cnn.onnx",
    tf_mobilenet => "tf_mobilenet", "tests/models/exporters/tf_mobilenet.onnx",
    // Stride-1 sandwiches ending in a channels-last `ReduceMean` over axes 1 and 2.
    tf_stem => "tf_stem", "tests/models/exporters/tf_stem.onnx",
    // LayerNorm spelled out (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add) and,
    // in the clean twin, ONNX `LayerNormalization`: both as tract's `RmsNorm` of the
    // centred rows, then a per-feature scale and shift with the ReLU fused.
    torch_head => "torch_head", "tests/models/exporters/torch_head.onnx",
    torch_head_clean => "torch_head", "tests/models/exporters/torch_head_clean.onnx",
    // PRelu capped by `Min`, HardSwish as `x · HardSigmoid(x)` and `x · relu6(x + 3) / 6`,
    // hard sigmoid as `relu6(x + 3) · (1 / 6)`, SiLU as `x · Sigmoid(x)`.
    gated_cnn => "gated_cnn", "tests/models/exporters/gated_cnn.onnx",
    gated_cnn_clean => "gated_cnn", "tests/models/exporters/gated_cnn_clean.onnx",
);

fn arena(file: &str, options: &Options) -> usize {
    let path = models_dir().join("exporters").join(file);
    compile(&path, options)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .plan
        .arena_bytes
}

/// Every exporter-shaped model plans to its clean twin's arena within 5%, by default.
#[test]
fn exported_graphs_plan_to_their_clean_twins_arena() {
    for name in [
        "keras_cnn",
        "tf_mobilenet",
        "tf_stem",
        "torch_head",
        "gated_cnn",
    ] {
        let exported = arena(&format!("{name}.onnx"), &Options::default());
        let clean = arena(&format!("{name}_clean.onnx"), &Options::default());
        eprintln!("{name}: {exported} B, clean twin {clean} B");
        assert!(
            exported * 100 <= clean * 105,
            "{name}: {exported} B against its clean twin's {clean} B"
        );
    }
}

/// The Keras CNN's clamps fuse into its convolutions, and by default one stage runs both
/// blocks with its 2×2 max poolings' rows pooled as they come: at most a quarter of its arena
/// with streaming off (23,632 B of 100,352; the bar for its family).
#[test]
fn keras_cnn_streams_below_a_quarter() {
    let on = arena("keras_cnn.onnx", &Options::default());
    let off = arena(
        "keras_cnn.onnx",
        &Options {
            streaming: false,
            ..Options::default()
        },
    );
    eprintln!("keras_cnn: {on} B streamed, {off} B not");
    assert!(
        4 * on <= off,
        "keras_cnn: {on} B streamed against {off} B not"
    );
}

/// The Keras CNN streamed with its 2×2 max poolings' rows pooled as they come computes the
/// unstreamed plan's bits, at the default stream cost and at 15%.
#[test]
fn keras_cnn_pooled_rows_compute_the_same_bits() {
    let path = models_dir().join("exporters").join("keras_cnn.onnx");
    let x = read_f32(&models_dir().join("exporters").join("keras_cnn.input.bin"));
    let run = |options: &Options| {
        let c = compile(&path, options).expect("compiles");
        let pooled = c.graph.nodes.iter().any(|n| match &n.op {
            Op::Stream(s) => s
                .buffers
                .iter()
                .any(|b| b.what.contains("pooled as it comes")),
            _ => false,
        });
        let y = microarena_compiler::exec::run_values(
            &c.graph,
            &c.schedule,
            &c.plan,
            &[Values::F32(x.clone())],
        );
        (pooled, y[0].to_bytes())
    };
    let (_, unstreamed) = run(&Options {
        streaming: false,
        ..Options::default()
    });
    for cost in [8, 15] {
        let (pooled, y) = run(&Options {
            stream_cost_percent: cost,
            ..Options::default()
        });
        assert!(
            pooled,
            "stream cost {cost}: no pooling of rows as they come"
        );
        assert_eq!(
            y, unstreamed,
            "stream cost {cost}: other bits than unstreamed"
        );
    }
}

/// The default plan's one stage through both of the Keras CNN's blocks holds no window of
/// rows for its two 2×2 max poolings, one pooled output row each instead (a window was two
/// input rows: 3,584 B each where the two shared bytes, 26,320 B in all, against 23,632).
#[test]
fn keras_cnn_poolings_hold_one_output_row() {
    let path = models_dir().join("exporters").join("keras_cnn.onnx");
    let c = compile(&path, &Options::default()).expect("compiles");
    let stages: Vec<_> = c
        .graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Stream(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(stages.len(), 1, "one stage through both blocks");
    let what: Vec<&str> = stages[0].buffers.iter().map(|b| b.what.as_str()).collect();
    assert_eq!(
        what.iter()
            .filter(|w| w.contains("pooled as it comes"))
            .count(),
        2,
        "{what:?}"
    );
    assert!(!what.iter().any(|w| w.contains("→ MaxPool")), "{what:?}");
}

/// The spelled-out activations fuse as the ONNX ops do: with streaming off, the exported
/// model runs the same kernels as its clean twin, one per convolution with its activation as
/// the epilogue (the PRelus, one after a MaxPool, run as their own in-place-able op).
#[test]
fn spelled_activations_fuse_into_their_convolutions() {
    let ops = |file: &str| {
        let path = models_dir().join("exporters").join(file);
        let options = Options {
            streaming: false,
            ..Options::default()
        };
        let c = compile(&path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        c.graph
            .nodes
            .iter()
            .map(|n| {
                format!("{:?}", n.op)
                    .split('(')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("(")
            })
            .collect::<Vec<_>>()
    };
    let (exported, clean) = (ops("gated_cnn.onnx"), ops("gated_cnn_clean.onnx"));
    eprintln!("{exported:?}");
    assert_eq!(exported, clean);
    // Convolution, PRelu, four convolutions (two as matrix products), MaxPool, PRelu,
    // convolution, global average, dense, softmax: no activation left on its own.
    assert_eq!(exported.len(), 12, "{exported:?}");
}

/// A QDQ model's `LayerNormalization` (torch_head's clean twin through onnxruntime's static
/// quantizer) runs as one int8 kernel per LayerNorm: each one's int8 output within one step
/// of onnxruntime's (its QuantizeLinear), the model's output within one output step.
#[test]
fn int8_layer_norm_matches_onnxruntime() {
    mod m {
        microarena::include_model!(
            "tests/models/exporters/torch_head_qdq.onnx",
            self_test = true
        );
    }
    assert!(m::Model::new().self_test(), "self_test failed");
    let dir = models_dir().join("exporters");
    let x = read_f32(&dir.join("torch_head.input.bin"));
    let want = read_f32(&dir.join("torch_head_qdq.output.bin"));
    let mut y = [f32::NAN; m::OUTPUT_LEN];
    m::Model::new().run(x.as_slice().try_into().expect("input length"), &mut y);
    let c = compile(&dir.join("torch_head_qdq.onnx"), &Options::default()).expect("compiles");
    let step = c.graph.output_quant(0).expect("a dequantized output").scale;
    for (i, (g, w)) in y.iter().zip(&want).enumerate() {
        // Both sides dequantize an int8 value: whole steps apart, up to float rounding.
        assert!(
            (g - w).abs() <= step * 1.001,
            "output {i}: {g} against onnxruntime's {w} (step {step})"
        );
    }
    let g = &c.graph;
    let norms: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Normalization(NormalizationOp::LayerNormI8(_))))
        .map(|n| n.output)
        .collect();
    assert_eq!(norms.len(), 2, "one int8 kernel per LayerNorm");
    let reference = std::fs::read(dir.join("torch_head_qdq.ln.bin")).expect("reference");
    let mut at = 0;
    let mut exact = 0;
    run_traced(g, &c.schedule, &c.plan, &[Values::F32(x)], |t, v| {
        if !norms.contains(&t) {
            return;
        }
        let got = v.i8();
        let want = &reference[at..at + got.len()];
        at += got.len();
        for (k, (&a, &b)) in got.iter().zip(want).enumerate() {
            let d = (i16::from(a) - i16::from(b as i8)).abs();
            assert!(
                d <= 1,
                "`{}`[{k}]: {a} against {}",
                g.tensor(t).name,
                b as i8
            );
            exact += usize::from(d == 0);
        }
    });
    assert_eq!(at, reference.len(), "both LayerNorms compared");
    eprintln!("int8 LayerNorm: {exact} of {at} values equal to onnxruntime's");
}

/// A QDQ `LayerNormalization` over axes 1 and 2 whose scale and bias (`[4, 1]`) broadcast
/// along the normalised axes rather than repeat as a trailing vector, a Relu after it: the
/// output within one step of onnxruntime's.
#[test]
fn int8_layer_norm_broadcasts_its_scale_and_bias() {
    let dir = models_dir().join("exporters");
    let c = compile(
        &dir.join("layer_norm_broadcast_qdq.onnx"),
        &Options::default(),
    )
    .expect("compiles");
    let x = read_f32(&dir.join("layer_norm_broadcast_qdq.input.bin"));
    let want = read_f32(&dir.join("layer_norm_broadcast_qdq.output.bin"));
    let y =
        microarena_compiler::exec::run_values(&c.graph, &c.schedule, &c.plan, &[Values::F32(x)]);
    let step = c.graph.output_quant(0).expect("a dequantized output").scale;
    let got = y[0].f32();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // Both sides dequantize an int8 value: whole steps apart, up to float rounding.
        assert!(
            (g - w).abs() <= step * 1.001,
            "[{i}]: {g} against {w} (step {step})"
        );
    }
}
