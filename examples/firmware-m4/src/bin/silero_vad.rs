//! Silero VAD v6 (`silero_vad_16k_op15.onnx`, the Silero Team's voice-activity detector, MIT;
//! not committed: `.ci/firmware` fetches it into `models/` with `tests/fetch_silero.py`) on
//! the Cortex-M4F (QEMU `mps2-an386`): its inputs pinned by name, the sample rate baked in,
//! three calls in a row on 512-sample chunks with the state carried by the caller (`stateN`
//! back into `state`), each compared with onnxruntime's probability and state
//! (`tests/models/interface/silero_vad.*.bin`), then `self_test()`.
//!
//! ```sh
//! python3 ../../tests/fetch_silero.py models
//! cd examples/firmware-m4 && cargo run --release --bin silero_vad
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;

// The counter and the exit; the single-input checks are not used here.
#[path = "../common.rs"]
#[allow(dead_code, unused_macros)]
mod common;

mod vad {
    microarena::include_model!(
        "models/silero_vad_16k_op15.onnx",
        input_shape = { "input": [1, 512], "state": [2, 1, 128] },
        const_input = { "sr": 16000 },
        self_test = true
    );
}

const CHUNKS: usize = 3;

#[entry]
fn main() -> ! {
    common::start_counter();
    let chunks: [f32; CHUNKS * vad::INPUT_0_LEN] = common::f32s(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/models/interface/silero_vad.input.bin"
    )));
    let probs: [f32; CHUNKS] = common::f32s(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/models/interface/silero_vad.output.bin"
    )));
    let states: [f32; CHUNKS * vad::INPUT_1_LEN] = common::f32s(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/models/interface/silero_vad.state.bin"
    )));
    let model = cortex_m::singleton!(: vad::Model = vad::Model::new()).expect("once");
    let mut state = [0.0f32; vad::INPUT_1_LEN];
    let mut ok = true;
    for call in 0..CHUNKS {
        let chunk: &[f32; vad::INPUT_0_LEN] = chunks[call * vad::INPUT_0_LEN..]
            [..vad::INPUT_0_LEN]
            .try_into()
            .expect("a chunk");
        let mut prob = [0.0f32; vad::OUTPUT_0_LEN];
        let mut next = [0.0f32; vad::OUTPUT_1_LEN];
        let start = common::ticks();
        model.run(chunk, &state, &mut prob, &mut next);
        let instructions = (common::ticks() - start) * 40;
        // The host test's bars (tests/interface.rs): the probability within 1e-4 relative
        // (1e-5 absolute), the state within 1e-4 of its largest magnitude.
        let want = &states[call * vad::INPUT_1_LEN..][..vad::INPUT_1_LEN];
        let scale = want.iter().fold(1f32, |m, w| m.max(w.abs()));
        let prob_ok = (prob[0] - probs[call]).abs() <= 1e-5 + 1e-4 * probs[call].abs();
        let state_ok = next.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-4 * scale);
        hprintln!(
            "silero_vad call {}: probability {} (onnxruntime {}), ARENA_BYTES {}, {} MACs, {} instructions: {}",
            call,
            prob[0],
            probs[call],
            vad::ARENA_BYTES,
            vad::MACS,
            instructions,
            if prob_ok && state_ok { "ok" } else { "MISMATCH" }
        );
        ok &= prob_ok && state_ok;
        state = next;
    }
    let self_test = model.self_test();
    hprintln!("silero_vad self_test: {}", if self_test { "ok" } else { "MISMATCH" });
    common::exit(ok && self_test)
}
