//! A plain firmware: one official MLPerf Tiny int8 model (`tests/models/tflite/`), one
//! inference on a zero input, no self-test, no reference data and no formatting, so the ELF's
//! text and rodata are the model's flash: its weights, its constants, its code and the
//! kernels it calls (and a few hundred bytes of `cortex-m-rt` start-up). The model is chosen
//! by a feature, `plain-resnet`, `plain-kws`, `plain-vww` or `plain-ad01`, or the f32 LSTM
//! keyword spotter `plain-kws-lstm` (`tests/models/interface/`), and `plain-unstreamed` builds
//! it with `streaming = false`:
//!
//! ```sh
//! cd examples/firmware-m4 && python3 flash_table.py
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

/// Builds the model module from `$file` with or without streaming.
macro_rules! plain_model {
    ($file:literal) => {
        #[cfg(not(feature = "plain-unstreamed"))]
        mod m {
            microarena::include_model!($file);
        }
        #[cfg(feature = "plain-unstreamed")]
        mod m {
            microarena::include_model!($file, streaming = false);
        }
    };
}

#[cfg(feature = "plain-resnet")]
plain_model!("../../tests/models/tflite/pretrainedResnet_quant.tflite");
#[cfg(feature = "plain-kws")]
plain_model!("../../tests/models/tflite/kws_ref_model.tflite");
#[cfg(feature = "plain-vww")]
plain_model!("../../tests/models/tflite/vww_96_int8.tflite");
#[cfg(feature = "plain-ad01")]
plain_model!("../../tests/models/tflite/ad01_int8.tflite");
#[cfg(feature = "plain-kws-lstm")]
plain_model!("../../tests/models/interface/kws_lstm.onnx");

/// The model's input and output values: float for the LSTM, int8 for the `.tflite` files.
#[cfg(feature = "plain-kws-lstm")]
type Value = f32;
#[cfg(not(feature = "plain-kws-lstm"))]
type Value = i8;

#[entry]
fn main() -> ! {
    let model = cortex_m::singleton!(: m::Model = m::Model::new()).expect("once");
    let x = [Value::default(); m::INPUT_LEN];
    let mut y = [Value::default(); m::OUTPUT_LEN];
    model.run(core::hint::black_box(&x), &mut y);
    core::hint::black_box(&y);
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
