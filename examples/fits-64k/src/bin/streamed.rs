//! A camera-style stem on a Cortex-M3 with 64 KiB of SRAM (QEMU `lm3s6965evb`): its first
//! maps are 64×64, and held whole they need 192 KiB, three times the chip. Streamed row by
//! row (the stem's maps held as windows of a few rows, the input read where it lies in
//! flash), the whole network runs in 32 KiB; the build checks both figures. See the README
//! ("Streamed stages").
//!
//! ```sh
//! cd examples/fits-64k && cargo run --release --bin streamed    # needs qemu-system-arm
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[path = "../common.rs"]
mod common;
use common::{f32s, Aligned};

mod net {
    microarena::include_model!("../../tests/models/wide_stem.onnx");
}

/// The same network planned without streamed stages: only its `ARENA_BYTES` is used (the
/// linker drops the rest).
mod whole {
    microarena::include_model!("../../tests/models/wide_stem.onnx", streaming = false);
}

/// Held whole, the activations would not fit the chip at all ...
const _: () = assert!(whole::ARENA_BYTES > 64 * 1024);
/// ... streamed, they leave 4 KiB of the 64 KiB SRAM for the stack: the build fails otherwise.
/// `ARENA_BYTES` is all the RAM the model needs besides the caller's input and output arrays
/// (here the input stays in flash).
const _: () = assert!(net::ARENA_BYTES <= 60 * 1024);

static INPUT: Aligned<49152> =
    Aligned(*include_bytes!("../../../../tests/models/wide_stem.input.bin"));
static WANT: Aligned<40> = Aligned(*include_bytes!(
    "../../../../tests/models/wide_stem.output.bin"
));
const _: () = assert!(49152 == 4 * net::INPUT_LEN && 40 == 4 * net::OUTPUT_LEN);

#[entry]
fn main() -> ! {
    // The model (its arena) is a static in .bss; the input is read from flash by `run`.
    let model = cortex_m::singleton!(: net::Model = net::Model::new()).expect("once");
    let mut out = [0.0f32; net::OUTPUT_LEN];
    model.run(f32s(&INPUT), &mut out);
    let want: &[f32; net::OUTPUT_LEN] = f32s(&WANT);
    common::check_and_exit(
        format_args!(
            "wide_stem f32 on 64 KiB, ARENA_BYTES {} (unstreamed {})",
            net::ARENA_BYTES,
            whole::ARENA_BYTES
        ),
        &out,
        want,
    )
}
