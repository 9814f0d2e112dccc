//! The MLPerf Tiny reference models converted by tf2onnx 1.17 as a new user converts them
//! (`tests/make_tflite_twins.py`; `tests/models/tflite/twins/`): NHWC Transposes around each
//! convolution moving int8 bytes between Q/DQ pairs, an int8 input reshaped or transposed
//! before the DequantizeLinear that gives its scale, fully connected layers as
//! `MatMul → Add(bias) → Relu → QuantizeLinear`. Compiled by `include_model!` and run on the
//! `.tflite` files' committed inputs against onnxruntime's outputs on the twin with its graph
//! optimisations off (the graph's own arithmetic; its fused int8 kernels move ResNet-8's
//! softmax by up to 14 steps on one input): int8 within one step (ResNet-8: see below),
//! float within 1e-4, as every ONNX model here. ONNX's arithmetic itself differs from the TFLite interpreter's on
//! these graphs by up to 28 steps (the script prints it).
use microarena_tests::{assert_close, models_dir, read_f32, read_i8};

macro_rules! int8_twins {
    ($($name:ident => $file:literal, $path:literal, $steps:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                mod m {
                    microarena::include_model!($path, self_test = true);
                }
                assert!(m::Model::new().self_test(), "self_test failed");
                let dir = models_dir().join("tflite");
                let mut model = m::Model::new();
                let mut worst = 0;
                for k in 0..3 {
                    let x = read_i8(&dir.join(format!("{}.input{k}.bin", $file)));
                    let want = read_i8(&dir.join(format!("twins/{}.output{k}.bin", $file)));
                    let mut y = [0i8; m::OUTPUT_LEN];
                    model.run(x.as_slice().try_into().expect("input length"), &mut y);
                    let off: Vec<(usize, i8, i8)> = y
                        .iter()
                        .zip(&want)
                        .enumerate()
                        .filter(|(_, (a, b))| (i16::from(**a) - i16::from(**b)).abs() > $steps)
                        .map(|(i, (&a, &b))| (i, a, b))
                        .collect();
                    assert!(off.is_empty(), "{} input {k}: (index, ours, onnxruntime's) {off:?}", $file);
                    let most = y.iter().zip(&want).map(|(a, b)| (i16::from(*a) - i16::from(*b)).abs());
                    worst = worst.max(most.max().unwrap_or(0));
                    // The same class as onnxruntime.
                    let top = |v: &[i8]| (0..v.len()).max_by_key(|&i| (v[i], std::cmp::Reverse(i)));
                    assert_eq!(top(&y), top(&want), "{} input {k}: top class", $file);
                }
                eprintln!("{}: largest difference from onnxruntime {worst} steps", $file);
            }
        )*
    };
}

// One step: onnxruntime's optimised kernels round some sums differently from its reference
// arithmetic (docs/correctness.md), as for every QDQ model here.
int8_twins!(
    anomaly_detection_int8_twin => "ad01_int8", "tests/models/tflite/twins/ad01_int8.onnx", 1,
    keyword_spotting_int8_twin => "kws_ref_model", "tests/models/tflite/twins/kws_ref_model.onnx", 1,
    // ResNet-8, input 2: one element of the first convolution lands one step from
    // onnxruntime's (its float32 arithmetic against our exact sums, as in tests/int8.rs);
    // the residual blocks carry it as differences of 1 to 3 steps, one pooled feature of 64
    // ends one step apart, and the dense layer's fine output scale turns that step into up
    // to 98 steps of its logits: 14 steps of the softmax output (top class the same).
    // Inputs 0 and 1: equal. Layer by layer with `exec::run_traced` against onnxruntime's
    // QuantizeLinear outputs.
    image_classification_int8_twin => "pretrainedResnet_quant",
        "tests/models/tflite/twins/pretrainedResnet_quant.onnx", 14,
    visual_wake_words_int8_twin => "vww_96_int8", "tests/models/tflite/twins/vww_96_int8.onnx", 1,
    streaming_wakeword_int8_twin => "str_ww_ref_model",
        "tests/models/tflite/twins/str_ww_ref_model.onnx", 1,
);

macro_rules! float_twins {
    ($($name:ident => $file:literal, $path:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                mod m {
                    microarena::include_model!($path, self_test = true);
                }
                assert!(m::Model::new().self_test(), "self_test failed");
                let dir = models_dir().join("tflite");
                let mut model = m::Model::new();
                for k in 0..3 {
                    let x = read_f32(&dir.join(format!("{}.input{k}.bin", $file)));
                    let want = read_f32(&dir.join(format!("twins/{}.output{k}.bin", $file)));
                    let mut y = [f32::NAN; m::OUTPUT_LEN];
                    model.run(x.as_slice().try_into().expect("input length"), &mut y);
                    let scale = want.iter().fold(1f32, |a, v| a.max(v.abs()));
                    assert_close(
                        &format!("{} input {k} vs onnxruntime", $file),
                        &y,
                        &want,
                        1e-4,
                        1e-5 * scale,
                    );
                }
            }
        )*
    };
}

float_twins!(
    anomaly_detection_fp32_twin => "ad01_fp32", "tests/models/tflite/twins/ad01_fp32.onnx",
    image_classification_fp32_twin => "pretrainedResnet",
        "tests/models/tflite/twins/pretrainedResnet.onnx",
    // Int8-stored weights behind DequantizeLinear, a float model: dequantized at build time.
    // (The `.tflite` runs TFLite's hybrid kernels, 4% from this float arithmetic.)
    keyword_spotting_float32_twin => "kws_ref_model_float32",
        "tests/models/tflite/twins/kws_ref_model_float32.onnx",
    // tract folds the input's Transpose into channels-last convolutions; run channels first
    // between transposing copies that cancel (`passes/layout.rs`).
    visual_wake_words_fp32_twin => "vww_96_float", "tests/models/tflite/twins/vww_96_float.onnx",
);
/// Each twin plans to its `.tflite` file's arena within 5% (by default, as `include_model!`
/// compiles them; the hybrid KWS file's float twin to less, see below): tf2onnx's NHWC input and the Transposes around each convolution cost no
/// memory (the input held channels first and gathered while read, as a TFLite input is), so
/// the same stages stream.
#[test]
fn twins_plan_to_their_tflite_files_arena() {
    use microarena_compiler::{compile, Options};
    let dir = models_dir().join("tflite");
    let mut report = Vec::new();
    for name in [
        "ad01_int8",
        "ad01_fp32",
        "kws_ref_model",
        "kws_ref_model_float32",
        "pretrainedResnet_quant",
        "pretrainedResnet",
        "vww_96_int8",
        "vww_96_float",
        "str_ww_ref_model",
    ] {
        let arena = |path: std::path::PathBuf| {
            compile(&path, &Options::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .plan
                .arena_bytes
        };
        let file = arena(dir.join(format!("{name}.tflite")));
        let twin = arena(dir.join(format!("twins/{name}.onnx")));
        report.push(format!("{name}: {file} B, twin {twin} B"));
        // The hybrid file quantizes each layer's input with one scale over the whole image
        // (TFLite's dynamic range), so no band of it can run before the image is whole and
        // nothing streams; its float twin streams (split depthwise windows). There only the
        // twin's side holds: its Transposes cost nothing.
        let hybrid = name == "kws_ref_model_float32";
        assert!(
            twin * 100 <= file * 105 && (hybrid || twin * 100 >= file * 95),
            "{name}: the .tflite file plans to {file} B, its tf2onnx twin to {twin} B"
        );
    }
    eprintln!("{}", report.join("\n"));
}
