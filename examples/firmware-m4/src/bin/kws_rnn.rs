//! Keyword spotting with a recurrent state on the Cortex-M4F (QEMU `mps2-an386`): the LSTM
//! and GRU spotters of `tests/gen_interface.py` (49 frames of 10 MFCCs, 64 units unrolled
//! over the 49 frames, 12 classes), each run for ten calls in a row with the state carried
//! by the `Model` (`hN`/`cN` into `h`/`c`, paired by name), every call's logits compared with
//! onnxruntime's (`tests/models/interface/kws_*.logits.bin`, each within 1e-5: the host
//! test's bar), then `reset()` and `self_test()`.
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin kws_rnn
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;

// The counter and the exit; the single-model checks are not used here.
#[path = "../common.rs"]
#[allow(dead_code, unused_macros)]
mod common;

mod lstm {
    microarena::include_model!("../../tests/models/interface/kws_lstm.onnx", self_test = true);
}
mod gru {
    microarena::include_model!("../../tests/models/interface/kws_gru.onnx", self_test = true);
}

// Both models and their states fit in 16 KiB of RAM.
const _: () = assert!(
    lstm::ARENA_BYTES + lstm::STATE_BYTES + gru::ARENA_BYTES + gru::STATE_BYTES <= 16 * 1024
);

const CALLS: usize = 10;
const FRAMES: usize = 490;
const CLASSES: usize = 12;

/// Ten calls of `run`, each compared with onnxruntime's logits; prints and returns whether
/// all matched.
fn ten_calls(
    name: &str,
    arena: usize,
    state: usize,
    macs: u64,
    mfcc: &[f32; CALLS * FRAMES],
    logits: &[f32; CALLS * CLASSES],
    run: &mut dyn FnMut(&[f32; FRAMES], &mut [f32; CLASSES]),
) -> bool {
    let mut ok = true;
    for call in 0..CALLS {
        let frames: &[f32; FRAMES] = mfcc[call * FRAMES..][..FRAMES].try_into().expect("frames");
        let mut got = [0.0f32; CLASSES];
        let start = common::ticks();
        run(frames, &mut got);
        let instructions = (common::ticks() - start) * 40;
        let want = &logits[call * CLASSES..][..CLASSES];
        let call_ok = got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-5);
        if call == 0 || call == CALLS - 1 || !call_ok {
            hprintln!(
                "{} call {}: logit 0 {} (onnxruntime {}), ARENA_BYTES {} + STATE_BYTES {}, {} MACs, {} instructions: {}",
                name,
                call,
                got[0],
                want[0],
                arena,
                state,
                macs,
                instructions,
                if call_ok { "ok" } else { "MISMATCH" }
            );
        }
        ok &= call_ok;
    }
    ok
}

#[entry]
fn main() -> ! {
    common::start_counter();
    let mfcc_lstm: [f32; CALLS * FRAMES] = common::f32s(include_bytes!(
        "../../../../tests/models/interface/kws_lstm.mfcc.bin"
    ));
    let logits_lstm: [f32; CALLS * CLASSES] = common::f32s(include_bytes!(
        "../../../../tests/models/interface/kws_lstm.logits.bin"
    ));
    let mfcc_gru: [f32; CALLS * FRAMES] = common::f32s(include_bytes!(
        "../../../../tests/models/interface/kws_gru.mfcc.bin"
    ));
    let logits_gru: [f32; CALLS * CLASSES] = common::f32s(include_bytes!(
        "../../../../tests/models/interface/kws_gru.logits.bin"
    ));
    let l = cortex_m::singleton!(: lstm::Model = lstm::Model::new()).expect("once");
    let g = cortex_m::singleton!(: gru::Model = gru::Model::new()).expect("once");
    let lstm_calls = |name: &str, l: &mut lstm::Model| {
        ten_calls(
            name,
            lstm::ARENA_BYTES,
            lstm::STATE_BYTES,
            lstm::MACS,
            &mfcc_lstm,
            &logits_lstm,
            &mut |x, y| l.run(x, y),
        )
    };
    let mut ok = lstm_calls("kws_lstm", l);
    ok &= ten_calls(
        "kws_gru",
        gru::ARENA_BYTES,
        gru::STATE_BYTES,
        gru::MACS,
        &mfcc_gru,
        &logits_gru,
        &mut |x, y| g.run(x, y),
    );
    // After `reset` the sequence starts again from the zero state.
    l.reset();
    ok &= lstm_calls("kws_lstm after reset", l);
    let self_test = l.self_test() && g.self_test();
    hprintln!("kws_rnn self_test: {}", if self_test { "ok" } else { "MISMATCH" });
    common::exit(ok && self_test)
}
