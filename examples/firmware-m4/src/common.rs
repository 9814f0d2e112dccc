//! What both firmware binaries share: the SysTick instruction counter, the input and
//! output files, and the check of one model against onnxruntime and its own `self_test()`.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use cortex_m_semihosting::{debug, hprintln};

/// Starts SysTick on the core clock, counting wraps.
pub fn start_counter() {
    let mut cp = cortex_m::Peripherals::take().expect("peripherals");
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();
}

/// Exits QEMU with success when `ok`.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// SysTick wraps (every 2^24 cycles).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since it started (64-bit from the wrap count and the 24-bit counter).
pub fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) << 24 | u64::from(0x00FF_FFFF - current);
        }
    }
}

/// Little-endian f32s from bytes.
pub fn f32s<const N: usize>(bytes: &[u8]) -> [f32; N] {
    assert_eq!(bytes.len(), 4 * N, "data file size");
    let mut out = [0.0; N];
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}

pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Runs one model on its committed input: true when it matches onnxruntime's output within
/// `$tol(want)`, and its `self_test()` (the build-time host result, re-run on the device)
/// passes.
#[macro_export]
macro_rules! check {
    ($m:ident, $label:literal, $input:expr, $output:expr, $kind:literal, $tol:expr) => {{
        let input: [f32; $m::INPUT_LEN] = $crate::common::f32s(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/models/",
            $input
        )));
        let want: [f32; $m::OUTPUT_LEN] = $crate::common::f32s(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/models/",
            $output
        )));
        let model = cortex_m::singleton!(: $m::Model = $m::Model::new()).expect("once");
        let mut out = [0.0f32; $m::OUTPUT_LEN];
        let start = $crate::common::ticks();
        model.run(&input, &mut out);
        let instructions = ($crate::common::ticks() - start) * 40;
        let tol: fn(f32) -> f32 = $tol;
        let ok = out.iter().zip(&want).all(|(g, w)| (g - w).abs() <= tol(*w));
        let self_test = model.self_test();
        // Instructions per multiply-accumulate, in hundredths.
        let per_mac = (instructions * 100 + $m::MACS / 2) / $m::MACS.max(1);
        cortex_m_semihosting::hprintln!(
            "{} {}: class {} (reference {}), ARENA_BYTES {}, WEIGHT_BYTES {}, {} steps, {} MACs, {} instructions, {}.{:02} per MAC: {}; self_test: {}",
            $label,
            $kind,
            $crate::common::argmax(&out),
            $crate::common::argmax(&want),
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

/// f32 models: the tolerance of the host tests, 1e-4 relative with a 1e-5 absolute floor.
#[macro_export]
macro_rules! check_f32 {
    ($m:ident, $name:literal) => {
        $crate::check!(
            $m,
            $name,
            concat!($name, ".input.bin"),
            concat!($name, ".output.bin"),
            "f32",
            |w| 1e-5 + 1e-4 * w.abs()
        )
    };
}

/// int8 models (float interface) on their net's committed input: every output within one
/// quantisation step of onnxruntime's (the host tests show every int8 tensor is bit-exact
/// but the softmax, which may be one step off; both sides dequantize whole steps, up to float
/// rounding).
#[macro_export]
macro_rules! check_int8 {
    ($m:ident, $net:literal, $name:literal) => {
        $crate::check!(
            $m,
            $net,
            concat!($net, ".input.bin"),
            concat!("int8/", $name, ".output.bin"),
            "int8",
            |_| 1.01 * $m::OUTPUT_SCALE
        )
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
