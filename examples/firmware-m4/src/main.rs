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

use cortex_m_rt::entry;

#[macro_use]
mod common;

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

#[entry]
fn main() -> ! {
    common::start_counter();
    let mut ok = true;
    ok &= check_f32!(chain, "chain");
    ok &= check_f32!(inception, "inception");
    ok &= check_f32!(residual, "residual");
    ok &= check_f32!(dwsep, "dwsep");
    ok &= check_int8!(chain_int8, "chain", "chain_qdq");
    ok &= check_int8!(inception_int8, "inception", "inception_qdq");
    ok &= check_int8!(residual_int8, "residual", "residual_qdq");
    ok &= check_int8!(dwsep_int8, "dwsep", "dwsep_qdq");
    common::exit(ok)
}
