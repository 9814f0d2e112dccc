//! The MLPerf Tiny reference models as published (`tests/models/tflite/`, Apache-2.0): the
//! five int8 `.tflite` files the benchmark's results are measured on, compiled straight from
//! the flatbuffers, on the Cortex-M4F (QEMU `mps2-an386`). Each runs on its three committed
//! inputs and must give the TFLite interpreter's output bytes exactly
//! (`tests/tflite_reference.py`), and re-checks itself (`self_test()`); the cost of one
//! inference is printed as instructions and instructions per multiply-accumulate.
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin tflite
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[path = "../common.rs"]
#[macro_use]
#[allow(dead_code)] // the float helpers
mod common;

mod ad01 {
    microarena::include_model!("../../tests/models/tflite/ad01_int8.tflite", self_test = true);
}
mod kws {
    microarena::include_model!(
        "../../tests/models/tflite/kws_ref_model.tflite",
        self_test = true
    );
}
mod resnet {
    microarena::include_model!(
        "../../tests/models/tflite/pretrainedResnet_quant.tflite",
        self_test = true
    );
}
mod vww {
    microarena::include_model!("../../tests/models/tflite/vww_96_int8.tflite", self_test = true);
}
// The float KWS file is TFLite's hybrid model (int8 convolution weights, the input quantized
// at run time), beside its tf2onnx twin, which runs float: both on the same input, each
// against its own reference (the interpreter, onnxruntime).
mod kws_hybrid {
    microarena::include_model!(
        "../../tests/models/tflite/kws_ref_model_float32.tflite",
        self_test = true
    );
}
mod kws_float_twin {
    microarena::include_model!(
        "../../tests/models/tflite/twins/kws_ref_model_float32.onnx",
        self_test = true
    );
}
mod str_ww {
    microarena::include_model!(
        "../../tests/models/tflite/str_ww_ref_model.tflite",
        self_test = true
    );
}

/// Bytes as int8 values.
fn i8s<const N: usize>(bytes: &[u8]) -> [i8; N] {
    assert_eq!(bytes.len(), N, "data file size");
    let mut out = [0i8; N];
    for (o, &b) in out.iter_mut().zip(bytes) {
        *o = b as i8;
    }
    out
}

/// Runs one int8 `.tflite` model on its three committed inputs: true when every output byte
/// is the interpreter's and `self_test()` passes.
macro_rules! check_tflite {
    ($m:ident, $file:literal) => {{
        let model = cortex_m::singleton!(: $m::Model = $m::Model::new()).expect("once");
        let inputs: [&[u8]; 3] = [
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".input0.bin")),
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".input1.bin")),
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".input2.bin")),
        ];
        let outputs: [&[u8]; 3] = [
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".output0.bin")),
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".output1.bin")),
            include_bytes!(concat!("../../../../tests/models/tflite/", $file, ".output2.bin")),
        ];
        let mut ok = true;
        let mut instructions = 0;
        for (input, output) in inputs.iter().zip(outputs) {
            let x: [i8; $m::INPUT_LEN] = i8s(input);
            let want: [i8; $m::OUTPUT_LEN] = i8s(output);
            let mut y = [0i8; $m::OUTPUT_LEN];
            let start = common::ticks();
            model.run(&x, &mut y);
            instructions = (common::ticks() - start) * 40;
            ok &= y == want;
        }
        let self_test = model.self_test();
        let per_mac = (instructions * 100 + $m::MACS / 2) / $m::MACS.max(1);
        cortex_m_semihosting::hprintln!(
            "{} (.tflite, int8): ARENA_BYTES {}, WEIGHT_BYTES {}, {} steps, {} MACs, {} instructions, {}.{:02} per MAC: {}; self_test: {}",
            $file,
            $m::ARENA_BYTES,
            $m::WEIGHT_BYTES,
            $m::STEPS,
            $m::MACS,
            instructions,
            per_mac / 100,
            per_mac % 100,
            if ok { "ok" } else { "MISMATCH" },
            if self_test { "ok" } else { "MISMATCH" }
        );
        ok && self_test
    }};
}

#[entry]
fn main() -> ! {
    common::start_counter();
    let mut ok = true;
    ok &= check_tflite!(resnet, "pretrainedResnet_quant");
    ok &= check_tflite!(kws, "kws_ref_model");
    ok &= check_tflite!(vww, "vww_96_int8");
    ok &= check_tflite!(ad01, "ad01_int8");
    ok &= check_tflite!(str_ww, "str_ww_ref_model");
    // The host tests' tolerance for float models (1e-4 relative, 1e-5 absolute floor).
    ok &= check!(
        kws_hybrid,
        "kws_ref_model_float32",
        "tflite/kws_ref_model_float32.input0.bin",
        "tflite/kws_ref_model_float32.output0.bin",
        "(.tflite, hybrid)",
        |w| 1e-5 + 1e-4 * w.abs()
    );
    ok &= check!(
        kws_float_twin,
        "kws_ref_model_float32",
        "tflite/kws_ref_model_float32.input0.bin",
        "tflite/twins/kws_ref_model_float32.output0.bin",
        "(tf2onnx twin, f32)",
        |w| 1e-5 + 1e-4 * w.abs()
    );
    common::exit(ok)
}
