//! Arbitrary bytes as an ONNX file through the whole compiler: import (tract and our own
//! lowering), passes, scheduling, placement and code generation. Any outcome but a panic is
//! fine; errors are the expected answer to almost every input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one the compiler catches on purpose (tract's
    // unchecked indexing, fenced in `import::guarded`). Print instead: a panic that escapes
    // `fuzz_one` still aborts the run (libfuzzer-sys checks the unwind) and is reported.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}"))));
    microarena_compiler::fuzz_one(data);
});
