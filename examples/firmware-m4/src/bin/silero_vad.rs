//! Silero VAD v6 (`silero_vad_16k_op15.onnx`, the Silero Team's voice-activity detector, MIT;
//! not committed: `.ci/firmware` fetches it into `models/` with `tests/fetch_silero.py`) on
//! the Cortex-M4F (QEMU `mps2-an386`): its inputs pinned by name, the sample rate baked in,
//! three calls in a row on 512-sample chunks with the state carried by the model (`stateN`
//! is the next call's `state`, paired by name: `run` takes the chunk and writes the
//! probability), each compared with onnxruntime's probability
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
    let chunks: [f32; CHUNKS * vad::INPUT_LEN] = common::f32s(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/models/interface/silero_vad.input.bin"
    )));
    let probs: [f32; CHUNKS] = common::f32s(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/models/interface/silero_vad.output.bin"
    )));
    let model = cortex_m::singleton!(: vad::Model = vad::Model::new()).expect("once");
    let mut ok = true;
    for call in 0..CHUNKS {
        let chunk: &[f32; vad::INPUT_LEN] = chunks[call * vad::INPUT_LEN..]
            [..vad::INPUT_LEN]
            .try_into()
            .expect("a chunk");
        let mut prob = [0.0f32; vad::OUTPUT_LEN];
        let start = common::ticks();
        model.run(chunk, &mut prob);
        let instructions = (common::ticks() - start) * 40;
        // The host test's bar (tests/interface.rs): within 1e-4 relative (1e-5 absolute).
        // A state carried wrongly shows in the second and third calls' probabilities.
        let prob_ok = (prob[0] - probs[call]).abs() <= 1e-5 + 1e-4 * probs[call].abs();
        hprintln!(
            "silero_vad call {}: probability {} (onnxruntime {}), ARENA_BYTES {} + STATE_BYTES {}, {} MACs, {} instructions: {}",
            call,
            prob[0],
            probs[call],
            vad::ARENA_BYTES,
            vad::STATE_BYTES,
            vad::MACS,
            instructions,
            if prob_ok { "ok" } else { "MISMATCH" }
        );
        ok &= prob_ok;
    }
    let self_test = model.self_test();
    hprintln!("silero_vad self_test: {}", if self_test { "ok" } else { "MISMATCH" });
    common::exit(ok && self_test)
}
