//! Models as people export them: several inputs pinned by name, and an input that is a
//! constant of the build (`tests/models/interface/`, made by `tests/gen_interface.py`; the
//! references are onnxruntime's).

use microarena_tests::{models_dir, read_f32};

/// Silero-VAD-like: `input` and `state` with a symbolic batch, `sr` an int64 scalar tested
/// by an `If`; two outputs.
mod vad {
    microarena::include_model!(
        "tests/models/interface/vad_like.onnx",
        input_shape = { "input": [1, 16], "state": [2, 1, 8] },
        const_input = { "sr": 16000 },
        carry = {},
        self_test = true
    );
}

fn data(name: &str) -> Vec<f32> {
    read_f32(&models_dir().join("interface").join(name))
}

/// `run` takes the two per-call inputs (not `sr`, baked in; `state` not carried, by
/// `carry = {}`) and writes both outputs, as
/// onnxruntime computes them with `sr` = 16000; the If on `sr` folded away.
#[test]
fn named_shapes_and_a_constant_input() {
    assert_eq!(vad::INPUT_0_SHAPE, [1, 16]);
    assert_eq!(vad::INPUT_1_SHAPE, [2, 1, 8]);
    let input: [f32; vad::INPUT_0_LEN] = data("vad_like.input.bin").try_into().unwrap();
    let state: [f32; vad::INPUT_1_LEN] = data("vad_like.state.bin").try_into().unwrap();
    let mut output = [f32::NAN; vad::OUTPUT_0_LEN];
    let mut state_n = [f32::NAN; vad::OUTPUT_1_LEN];
    let mut model = vad::Model::new();
    model.run(&input, &state, &mut output, &mut state_n);
    for (got, want) in [
        (&output[..], data("vad_like.output.bin")),
        (&state_n[..], data("vad_like.stateN.bin")),
    ] {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "{g} vs {w}");
        }
    }
    assert!(model.self_test());
}

/// The other sample rate takes the If's other branch (its output doubles `h`): the
/// constant is really baked in, not ignored.
#[test]
fn the_constant_selects_the_branch() {
    use microarena_compiler::import::Scalar;
    let path = models_dir().join("interface/vad_like.onnx");
    let compile = |sr: i64| {
        let options = microarena_compiler::Options {
            input_shapes: vec![
                ("input".into(), vec![1, 16]),
                ("state".into(), vec![2, 1, 8]),
            ],
            const_inputs: vec![("sr".into(), Scalar::Int(sr))],
            ..Default::default()
        };
        microarena_compiler::compile(&path, &options).expect("compiles")
    };
    let input = data("vad_like.input.bin");
    let state = data("vad_like.state.bin");
    let at16k = compile(16000).run(&[&input, &state]);
    let at8k = compile(8000).run(&[&input, &state]);
    // The state's new slice is 0.5 · state + g, with g = h at 16 kHz and 2h at 8 kHz.
    let (s16, s8) = (&at16k[1], &at8k[1]);
    for k in 0..s16.len() {
        let h = s16[k] - 0.5 * state[k];
        assert!(
            (s8[k] - (0.5 * state[k] + 2.0 * h)).abs() <= 1e-5,
            "element {k}"
        );
    }
    assert!(at16k[0] != at8k[0] || s16.iter().all(|&x| x == 0.0));
}

/// Silero VAD v6 (`silero_vad_16k_op15.onnx`, MIT, fetched from the pinned `silero-vad`
/// wheel by `tests/fetch_silero.py`): three inputs, `If`s on shapes, an LSTM. Pinned and with
/// `sr` baked in, it plans and compiles; three calls in a row, the state carried by the
/// caller (`stateN` back into `state`), match onnxruntime's (the committed reference, made by
/// `tests/fetch_silero.py --reference`), and the build-time self-test agrees with tract.
#[test]
fn silero_vad_runs_three_calls_like_onnxruntime() {
    use microarena_compiler::import::Scalar;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("silero");
    let path = dir.join("silero_vad_16k_op15.onnx");
    if !path.exists() {
        let status = std::process::Command::new("python3")
            .arg(models_dir().join("../fetch_silero.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs");
        assert!(
            status.success(),
            "tests/fetch_silero.py could not fetch the model"
        );
    }
    let options = microarena_compiler::Options {
        input_shapes: vec![
            ("input".into(), vec![1, 512]),
            ("state".into(), vec![2, 1, 128]),
        ],
        const_inputs: vec![("sr".into(), Scalar::Int(16000))],
        ..Default::default()
    };
    let c = microarena_compiler::compile(&path, &options).expect("Silero VAD compiles");
    let g = &c.graph;
    // `run` takes the audio chunk and the state; `sr` is gone.
    let inputs: Vec<&str> = g
        .inputs
        .iter()
        .map(|&t| g.tensor(t).name.as_str())
        .collect();
    assert_eq!(inputs, ["input", "state"]);
    assert!(c.stats.optimal);
    assert!(c.plan.arena_bytes > 0 && c.plan.arena_bytes < 16 * 1024);
    eprintln!("Silero VAD: arena {} B", c.plan.arena_bytes);
    let (chunks, probs, states) = (
        data("silero_vad.input.bin"),
        data("silero_vad.output.bin"),
        data("silero_vad.state.bin"),
    );
    let mut state = vec![0f32; 256];
    for call in 0..3 {
        let out = c.run(&[&chunks[call * 512..][..512], &state]);
        // `tol(w, scale)`: the probability within the f32 models' bar (1e-4 relative, 1e-5
        // absolute). The state within 1e-4 of its largest magnitude (1 to 3 here): it comes
        // through an STFT magnitude (a square root of sums of squares) and four convolutions
        // into the LSTM, where summation orders differ; onnxruntime's own optimised and
        // unoptimised sessions differ by up to 2.2e-5 on it, ours from its by up to 5.9e-5.
        let close = |got: &[f32], want: &[f32], what: &str, tol: &dyn Fn(f32, f32) -> f32| {
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(1f32, |m, w| m.max(w.abs()));
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= tol(*w, scale),
                    "call {call}: {what}[{k}] {g} vs onnxruntime's {w}"
                );
            }
        };
        close(&out[0], &probs[call..][..1], "probability", &|w, _| {
            1e-5 + 1e-4 * w.abs()
        });
        close(
            &out[1],
            &states[call * 256..][..256],
            "state",
            &|_, scale| 1e-4 * scale,
        );
        state = out[1].clone();
    }
    microarena_compiler::self_test::build(&c, &path).expect("the plan agrees with tract");
}

/// An `If` that only the pinned shape decides, its branches of different ranks (tract
/// refuses to type those): folded to the branch taken, `squeeze(0)` of a batch of one.
mod squeeze_if {
    microarena::include_model!("tests/models/interface/squeeze_if.onnx", self_test = true);
}

#[test]
fn an_if_on_a_pinned_shape_folds_to_its_branch() {
    assert_eq!(squeeze_if::INPUT_SHAPE, [1, 8]);
    assert_eq!(squeeze_if::OUTPUT_SHAPE, [8]);
    let x: [f32; 8] = data("squeeze_if.x.bin").try_into().unwrap();
    let mut y = [f32::NAN; 8];
    squeeze_if::Model::new().run(&x, &mut y);
    assert_eq!(y.to_vec(), data("squeeze_if.output.bin"));
    assert!(x.iter().zip(&y).all(|(a, b)| a.max(0.0) == *b));
    assert!(squeeze_if::Model::new().self_test());
}

/// Keyword spotters exported for streaming (`tests/gen_interface.py`): 49 frames of 10
/// MFCCs through an LSTM or a GRU of 64 units (unrolled: 49 steps) from the state `h`
/// (`c`), returning the logits and the next state `hN` (`cN`). The state is carried by the
/// `Model` (paired by name): `run` takes the frames and writes the logits.
mod kws_lstm {
    microarena::include_model!("tests/models/interface/kws_lstm.onnx", self_test = true);
}
mod kws_gru {
    microarena::include_model!("tests/models/interface/kws_gru.onnx", self_test = true);
}
/// The same LSTM with its pairs named (the default would find the same).
mod kws_lstm_named {
    microarena::include_model!(
        "tests/models/interface/kws_lstm.onnx",
        carry = { "cN": "c", "hN": "h" }
    );
}

/// Ten calls in a row, the state carried by the model from zeros, against onnxruntime's ten
/// calls with the state fed back: every logit within 1e-5 (the logits are of order 1; 49
/// recurrent steps summed in another order than onnxruntime's differ by under 1e-6 here).
fn ten_calls(run: &mut dyn FnMut(&[f32; 490], &mut [f32; 12]), name: &str) {
    let mfcc = data(&format!("{name}.mfcc.bin"));
    let logits = data(&format!("{name}.logits.bin"));
    assert_eq!((mfcc.len(), logits.len()), (4900, 120));
    for call in 0..10 {
        let frames: [f32; 490] = mfcc[call * 490..][..490].try_into().unwrap();
        let mut got = [f32::NAN; 12];
        run(&frames, &mut got);
        let want = &logits[call * 12..][..12];
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5,
                "{name} call {call}: logit {k} {g} vs onnxruntime's {w}"
            );
        }
    }
}

#[test]
fn keyword_spotters_carry_their_state_over_ten_calls() {
    assert_eq!(kws_lstm::INPUT_SHAPE, [1, 49, 10]);
    assert_eq!(kws_lstm::OUTPUT_SHAPE, [1, 12]);
    assert_eq!(kws_lstm::STATE_BYTES, 2 * 64 * 4);
    assert_eq!(kws_gru::STATE_BYTES, 64 * 4);
    assert_eq!(kws_lstm::STATE_0_SHAPE, [1, 1, 64]);
    // One step's working set, not 49 steps' input projections (50 kB).
    const { assert!(kws_lstm::ARENA_BYTES < 8 * 1024 && kws_gru::ARENA_BYTES < 8 * 1024) };

    let mut lstm = kws_lstm::Model::new();
    ten_calls(&mut |x, y| lstm.run(x, y), "kws_lstm");
    let mut gru = kws_gru::Model::new();
    ten_calls(&mut |x, y| gru.run(x, y), "kws_gru");
    let mut named = kws_lstm_named::Model::new();
    ten_calls(&mut |x, y| named.run(x, y), "kws_lstm");

    // `reset` starts afresh: the first call again gives the first logits; the self-test
    // (which runs on its own embedded input and state) leaves the carried state alone.
    assert!(lstm.self_test() && gru.self_test());
    lstm.reset();
    gru.reset();
    ten_calls(&mut |x, y| lstm.run(x, y), "kws_lstm");
    ten_calls(&mut |x, y| gru.run(x, y), "kws_gru");
}

/// Without `reset`, the eleventh call is not the first call again: the state is really
/// carried (a model that ignored it would repeat the first call's logits).
#[test]
fn the_state_is_really_carried() {
    let mfcc = data("kws_gru.mfcc.bin");
    let frames: [f32; 490] = mfcc[..490].try_into().unwrap();
    let mut model = kws_gru::Model::new();
    let (mut first, mut again) = ([0f32; 12], [0f32; 12]);
    model.run(&frames, &mut first);
    model.run(&frames, &mut again);
    assert_ne!(first, again);
    model.reset();
    model.run(&frames, &mut again);
    assert_eq!(first, again);
}
