//! The MLPerf Tiny reference models as published (`tests/models/tflite/`, Apache-2.0, see
//! its SOURCE.md), compiled by `include_model!` straight from their `.tflite` files and run
//! through the generated code, against the TFLite interpreter's outputs on three committed
//! inputs each (`tests/tflite_reference.py`: ai-edge-litert, reference kernels).
//!
//! `kws_ref_model_float32.tflite` is a "hybrid" model (float activations, int8 convolution
//! weights): its convolutions quantize their input on the fly as TFLite's do
//! (`kernels::conv::conv2d_hybrid`); a float convolution of dequantized weights would be
//! about 1% off.
use microarena_tests::{assert_close, models_dir, read_f32, read_i8};

/// The tolerance of the issue for float models: 1e-4 of each output, with an absolute floor
/// of 1e-5 of the largest one (outputs near zero, where the order of float additions decides
/// the last bits).
const REL: f32 = 1e-4;
const ABS: f32 = 1e-5;

macro_rules! float_models {
    ($($name:ident => $file:literal, $path:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                mod m {
                    microarena::include_model!(
                        $path,
                        self_test = true
                    );
                }
                assert!(m::Model::new().self_test(), "self_test failed");
                let dir = models_dir().join("tflite");
                let mut model = m::Model::new();
                for k in 0..3 {
                    let x = read_f32(&dir.join(format!("{}.input{k}.bin", $file)));
                    let want = read_f32(&dir.join(format!("{}.output{k}.bin", $file)));
                    let mut y = [f32::NAN; m::OUTPUT_LEN];
                    model.run(x.as_slice().try_into().expect("input length"), &mut y);
                    let scale = want.iter().fold(1f32, |a, v| a.max(v.abs()));
                    assert_close(
                        &format!("{} input {k} vs the TFLite interpreter", $file),
                        &y,
                        &want,
                        REL,
                        ABS * scale,
                    );
                }
            }
        )*
    };
}

float_models!(
    anomaly_detection_fp32 => "ad01_fp32", "tests/models/tflite/ad01_fp32.tflite",
    keyword_spotting_float32 => "kws_ref_model_float32",
        "tests/models/tflite/kws_ref_model_float32.tflite",
    image_classification_fp32 => "pretrainedResnet", "tests/models/tflite/pretrainedResnet.tflite",
    visual_wake_words_fp32 => "vww_96_float", "tests/models/tflite/vww_96_float.tflite",
);

macro_rules! int8_models {
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
                    let x = read_i8(&dir.join(format!("{}.input{k}.bin", $file)));
                    let want = read_i8(&dir.join(format!("{}.output{k}.bin", $file)));
                    let mut y = [0i8; m::OUTPUT_LEN];
                    model.run(x.as_slice().try_into().expect("input length"), &mut y);
                    let differ: Vec<(usize, i8, i8)> = y
                        .iter()
                        .zip(&want)
                        .enumerate()
                        .filter(|(_, (a, b))| a != b)
                        .map(|(i, (&a, &b))| (i, a, b))
                        .collect();
                    assert!(
                        differ.is_empty(),
                        "{} input {k}: (index, ours, TFLite's) {differ:?}",
                        $file
                    );
                }
            }
        )*
    };
}

int8_models!(
    anomaly_detection_int8 => "ad01_int8", "tests/models/tflite/ad01_int8.tflite",
    keyword_spotting_int8 => "kws_ref_model", "tests/models/tflite/kws_ref_model.tflite",
    image_classification_int8 => "pretrainedResnet_quant",
        "tests/models/tflite/pretrainedResnet_quant.tflite",
    visual_wake_words_int8 => "vww_96_int8", "tests/models/tflite/vww_96_int8.tflite",
    streaming_wakeword_int8 => "str_ww_ref_model", "tests/models/tflite/str_ww_ref_model.tflite",
);
