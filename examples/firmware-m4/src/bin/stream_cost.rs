//! What streaming costs, side by side: four f32 networks whose streamed stages changed in
//! this release (`chain`, `residual`, `wide_stem`, the Keras-style CNN of
//! `tests/models/exporters/`), each built unstreamed and with the default plan in one
//! binary, run once on the same deterministic input, and counted (instructions under
//! `qemu -icount shift=0`). The figures of docs/streaming.md's cost table for these rows:
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin stream_cost
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[path = "../common.rs"]
#[macro_use]
#[allow(dead_code)]
mod common;

macro_rules! pair {
    ($un:ident, $st:ident, $file:literal) => {
        mod $un {
            microarena::include_model!($file, streaming = false);
        }
        mod $st {
            microarena::include_model!($file);
        }
    };
}
pair!(chain_un, chain_st, "../../tests/models/chain.onnx");
pair!(residual_un, residual_st, "../../tests/models/residual.onnx");
pair!(keras_un, keras_st, "../../tests/models/exporters/keras_cnn.onnx");
pair!(wide_un, wide_st, "../../tests/models/wide_stem.onnx");

macro_rules! measure {
    ($m:ident) => {{
        let model = cortex_m::singleton!(: $m::Model = $m::Model::new()).expect("once");
        let mut x = [0.0f32; $m::INPUT_LEN];
        for (i, v) in x.iter_mut().enumerate() {
            *v = ((i * 37 % 101) as f32) / 50.0 - 1.0;
        }
        let mut y = [0.0f32; $m::OUTPUT_LEN];
        let t0 = common::ticks();
        model.run(core::hint::black_box(&x), &mut y);
        let t = (common::ticks() - t0) * 40;
        cortex_m_semihosting::hprintln!(
            "{}: ARENA_BYTES {}, {} instructions (output[0] {})",
            stringify!($m),
            $m::ARENA_BYTES,
            t,
            y[0]
        );
    }};
}

#[entry]
fn main() -> ! {
    common::start_counter();
    measure!(chain_un);
    measure!(chain_st);
    measure!(residual_un);
    measure!(residual_st);
    measure!(keras_un);
    measure!(keras_st);
    measure!(wide_un);
    measure!(wide_st);
    common::exit(true)
}
