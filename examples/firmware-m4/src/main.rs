//! microarena on an Arm Cortex-M4F (QEMU `mps2-an386`): runs compiled test models, f32 and
//! their int8 (QDQ) twins, on inputs stored in flash, compares each output with
//! onnxruntime's, runs its `self_test()` (the build-time host result, re-checked on the
//! device), and prints the class, the arena size and the cost in core clock cycles.
//! Exits non-zero on any mismatch.
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release    # needs qemu-system-arm
//! ```
//!
//! The cost is counted with SysTick (the board's 25 MHz core clock) under
//! `qemu -icount shift=0`, where every instruction takes one virtual nanosecond: one tick is
//! 40 instructions retired. The figure is deterministic from run to run and proportional to
//! the instructions executed; it is not a cycle-accurate timing of real silicon (no wait
//! states, no pipeline, every instruction costs the same).

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};

mod chain {
    microarena::include_model!("../../tests/models/chain.onnx", self_test = true);
}
mod inception {
    microarena::include_model!("../../tests/models/inception.onnx", self_test = true);
}
mod residual {
    microarena::include_model!("../../tests/models/residual.onnx", self_test = true);
}
mod dwsep {
    microarena::include_model!("../../tests/models/dwsep.onnx", self_test = true);
}
mod chain_int8 {
    microarena::include_model!("../../tests/models/int8/chain_qdq.onnx", self_test = true);
}
mod inception_int8 {
    microarena::include_model!(
        "../../tests/models/int8/inception_qdq.onnx",
        self_test = true
    );
}
mod dwsep_int8 {
    microarena::include_model!("../../tests/models/int8/dwsep_qdq.onnx", self_test = true);
}
mod residual_int8 {
    microarena::include_model!(
        "../../tests/models/int8/residual_qdq.onnx",
        self_test = true
    );
}

/// SysTick wraps (every 2^24 cycles).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since it started (64-bit from the wrap count and the 24-bit counter).
fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) << 24 | u64::from(0x00FF_FFFF - current);
        }
    }
}

/// Little-endian f32s from bytes.
fn f32s<const N: usize>(bytes: &[u8]) -> [f32; N] {
    assert_eq!(bytes.len(), 4 * N, "data file size");
    let mut out = [0.0; N];
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}

fn argmax(xs: &[f32]) -> usize {
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
macro_rules! check {
    ($m:ident, $label:literal, $input:expr, $output:expr, $kind:literal, $tol:expr) => {{
        let input: [f32; $m::INPUT_LEN] =
            f32s(include_bytes!(concat!("../../../tests/models/", $input)));
        let want: [f32; $m::OUTPUT_LEN] =
            f32s(include_bytes!(concat!("../../../tests/models/", $output)));
        let model = cortex_m::singleton!(: $m::Model = $m::Model::new()).expect("once");
        let mut out = [0.0f32; $m::OUTPUT_LEN];
        let start = ticks();
        model.run(&input, &mut out);
        let cost = ticks() - start;
        let tol: fn(f32) -> f32 = $tol;
        let ok = out.iter().zip(&want).all(|(g, w)| (g - w).abs() <= tol(*w));
        let self_test = model.self_test();
        hprintln!(
            "{} {}: class {} (onnxruntime {}), ARENA_BYTES {}, {} steps, {} instructions: {}; self_test: {}",
            $label,
            $kind,
            argmax(&out),
            argmax(&want),
            $m::ARENA_BYTES,
            $m::STEPS,
            cost * 40,
            if ok { "ok" } else { "MISMATCH" },
            if self_test { "ok" } else { "MISMATCH" }
        );
        ok && self_test
    }};
}

/// f32 models: the tolerance of the host tests, 1e-4 relative with a 1e-5 absolute floor.
macro_rules! check_f32 {
    ($m:ident, $name:literal) => {
        check!(
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
macro_rules! check_int8 {
    ($m:ident, $net:literal, $name:literal) => {
        check!(
            $m,
            $net,
            concat!($net, ".input.bin"),
            concat!("int8/", $name, ".output.bin"),
            "int8",
            |_| 1.01 * $m::OUTPUT_SCALE
        )
    };
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().expect("peripherals");
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut ok = true;
    ok &= check_f32!(chain, "chain");
    ok &= check_f32!(inception, "inception");
    ok &= check_f32!(residual, "residual");
    ok &= check_f32!(dwsep, "dwsep");
    ok &= check_int8!(chain_int8, "chain", "chain_qdq");
    ok &= check_int8!(inception_int8, "inception", "inception_qdq");
    ok &= check_int8!(residual_int8, "residual", "residual_qdq");
    ok &= check_int8!(dwsep_int8, "dwsep", "dwsep_qdq");
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
