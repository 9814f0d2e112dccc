#![no_std]
#![no_main]
use cortex_m_rt::entry;
#[path = "../common.rs"]
#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;
mod dscnn {
    microarena::include_model!("../../tests/models/dscnn.onnx");
}
#[entry]
fn main() -> ! {
    common::start_counter();
    let x = [0.1f32; dscnn::INPUT_LEN];
    let mut y = [0f32; dscnn::OUTPUT_LEN];
    dscnn::Model::new().run(&x, &mut y);
    common::exit(y[0].is_finite())
}
