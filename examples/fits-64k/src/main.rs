//! The case for microarena: NAS-style cells on a Cortex-M3 with 64 KiB of SRAM (QEMU
//! `lm3s6965evb`). In the ONNX file's order the activations need 112 KiB, more than the chip
//! has, whatever the placement; microarena's order runs them in 60 KiB, and the build checks
//! it. See the README ("Fits in 64 KiB").
//!
//! ```sh
//! cd examples/fits-64k && cargo run --release    # needs qemu-system-arm
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

mod net {
    microarena::include_model!("../../tests/models/nas_cells.onnx");
}

/// The arena must leave 4 KiB of the 64 KiB SRAM for the stack: the build fails otherwise.
const _: () = assert!(net::ARENA_BYTES <= 60 * 1024);

/// Bytes aligned for `f32`, so flash data can be read in place: a 3 KiB input copied to the
/// stack would not fit beside a 60 KiB arena.
#[repr(C, align(4))]
struct Aligned<const N: usize>([u8; N]);

static INPUT: Aligned<3072> = Aligned(*include_bytes!("../../../tests/models/nas_cells.input.bin"));
static WANT: Aligned<40> = Aligned(*include_bytes!(
    "../../../tests/models/nas_cells.output.bin"
));
const _: () = assert!(3072 == 4 * net::INPUT_LEN && 40 == 4 * net::OUTPUT_LEN);

/// The f32s of an aligned blob of exactly `4 * M` bytes.
fn f32s<const N: usize, const M: usize>(a: &'static Aligned<N>) -> &'static [f32; M] {
    assert_eq!(N, 4 * M);
    // SAFETY: `Aligned` is 4-aligned and holds exactly `4 * M` bytes (asserted), every bit
    // pattern is a valid f32, and the target is little-endian like the data files.
    unsafe { &*(a.0.as_ptr() as *const [f32; M]) }
}

#[entry]
fn main() -> ! {
    // The model (its arena) is a static in .bss; the input is read from flash by `run`.
    let model = cortex_m::singleton!(: net::Model = net::Model::new()).expect("once");
    let mut out = [0.0f32; net::OUTPUT_LEN];
    model.run(f32s(&INPUT), &mut out);
    let want: &[f32; net::OUTPUT_LEN] = f32s(&WANT);
    let ok = out
        .iter()
        .zip(want)
        .all(|(g, w)| (g - w).abs() <= 1e-5 + 1e-4 * w.abs());
    let class = (0..out.len()).fold(0, |b, i| if out[i] > out[b] { i } else { b });
    hprintln!(
        "nas_cells f32 on 64 KiB: class {}, ARENA_BYTES {}: {}",
        class,
        net::ARENA_BYTES,
        if ok { "ok" } else { "MISMATCH" }
    );
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
