//! Streamed stages call each op once per band; the generated code shares one helper function
//! among the calls that differ only in their arena offsets, so a call site is its offsets and
//! a branch (flash: ResNet-8's stage code 33 → 13 KiB on the Cortex-M4).

use std::path::Path;

use microarena_compiler::{compile, Options};

#[test]
fn band_calls_share_helpers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/models/tflite/pretrainedResnet_quant.tflite");
    let c = compile(&path, &Options::default()).expect("compiles");
    let code = c.to_tokens(Some(&path)).to_string();
    let helpers = code.matches("fn band_").count();
    let calls = code.matches("(& mut self . arena ,").count();
    // Arena views left outside the helpers: the calls that read the caller's input, and the
    // rest of `run`.
    let views = code.matches("views_").count();
    assert!(helpers > 0, "no band helper: {code}");
    assert!(
        calls >= 4 * helpers,
        "{calls} calls for {helpers} helpers: too little shared"
    );
    assert!(views <= helpers + 5, "{views} views for {helpers} helpers");
    eprintln!("{helpers} helpers, {calls} calls, {views} views");
}
