//! Arbitrary bytes as a TFLite flatbuffer (the `TFL3` identifier written in) through the whole
//! compiler: the flatbuffer verifier, our TFLite lowering, planning and code generation. Any
//! outcome but a panic is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}"))));
    let mut bytes = data.to_vec();
    if bytes.len() >= 8 {
        bytes[4..8].copy_from_slice(b"TFL3");
    }
    microarena_compiler::fuzz_one(&bytes);
});
