//! What both fits-64k binaries share: reading f32 data in place from flash, the check of
//! an output against onnxruntime's, and the exit through semihosting.

use cortex_m_semihosting::{debug, hprintln};

/// Bytes aligned for `f32`, so flash data can be read in place: an input copied to the stack
/// would not fit beside the arena.
#[repr(C, align(4))]
pub struct Aligned<const N: usize>(pub [u8; N]);

/// The f32s of an aligned blob of exactly `4 * M` bytes.
pub fn f32s<const N: usize, const M: usize>(a: &'static Aligned<N>) -> &'static [f32; M] {
    assert_eq!(N, 4 * M);
    // SAFETY: `Aligned` is 4-aligned and holds exactly `4 * M` bytes (asserted), every bit
    // pattern is a valid f32, and the target is little-endian like the data files.
    unsafe { &*(a.0.as_ptr() as *const [f32; M]) }
}

/// Compares `out` with onnxruntime's `want` (1e-4 relative), prints `what` with the class and
/// the verdict, and exits QEMU: success when they match.
pub fn check_and_exit(what: core::fmt::Arguments, out: &[f32], want: &[f32]) -> ! {
    let ok = out
        .iter()
        .zip(want)
        .all(|(g, w)| (g - w).abs() <= 1e-5 + 1e-4 * w.abs());
    let class = (0..out.len()).fold(0, |b, i| if out[i] > out[b] { i } else { b });
    hprintln!(
        "{}: class {}: {}",
        what,
        class,
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
