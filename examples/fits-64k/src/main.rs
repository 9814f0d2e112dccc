//! The case for microarena: NAS-style cells on a Cortex-M3 with 64 KiB of SRAM (QEMU
//! `lm3s6965evb`). In the ONNX file's order the activations need 112 KiB, more than the chip
//! has, whatever the placement; microarena's order runs them in 60 KiB, and streaming each
//! cell's widest branch row by row in 37.5 KiB; the build checks that it fits. See the README
//! ("Fits in 64 KiB").
//!
//! ```sh
//! cd examples/fits-64k && cargo run --release    # needs qemu-system-arm
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

mod common;
use common::{f32s, Aligned};

mod net {
    microarena::include_model!("../../tests/models/nas_cells.onnx");
}

/// The arena must leave 4 KiB of the 64 KiB SRAM for the stack: the build fails otherwise.
const _: () = assert!(net::ARENA_BYTES <= 60 * 1024);

static INPUT: Aligned<3072> = Aligned(*include_bytes!("../../../tests/models/nas_cells.input.bin"));
static WANT: Aligned<40> = Aligned(*include_bytes!(
    "../../../tests/models/nas_cells.output.bin"
));
const _: () = assert!(3072 == 4 * net::INPUT_LEN && 40 == 4 * net::OUTPUT_LEN);

#[entry]
fn main() -> ! {
    // The model (its arena) is a static in .bss; the input is read from flash by `run`.
    let model = cortex_m::singleton!(: net::Model = net::Model::new()).expect("once");
    let mut out = [0.0f32; net::OUTPUT_LEN];
    model.run(f32s(&INPUT), &mut out);
    let want: &[f32; net::OUTPUT_LEN] = f32s(&WANT);
    common::check_and_exit(
        format_args!("nas_cells f32 on 64 KiB, ARENA_BYTES {}", net::ARENA_BYTES),
        &out,
        want,
    )
}
