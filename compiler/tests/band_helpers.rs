//! Streamed stages call each op once per band, and recurrent layers unrolled over time run the
//! same kernels at every step; the generated code shares one helper function among the calls
//! that differ only in their arena offsets, so a call site is its offsets and a branch (flash
//! on the Cortex-M4: ResNet-8's stage code 33 → 13 KiB, kws_lstm's text 34 → 20 KiB). Band
//! calls that differ in their band's geometry too (first, middle and last bands) share one
//! helper that takes the differing rows as arguments (ResNet-8: 38 helpers → 15). A long stage
//! program is data: each distinct statement one arm of a `match`, each row copy one row of a
//! table, the steps a list of numbers.

use std::path::Path;

use microarena_compiler::{compile, Options};

#[test]
fn band_calls_share_helpers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/models/tflite/pretrainedResnet_quant.tflite");
    let c = compile(&path, &Options::default()).expect("compiles");
    let code = c.to_tokens(Some(&path)).to_string();
    let helpers = code.matches("fn band_").count();
    // Distinct band calls: each one arm of the stage's dispatch.
    let calls = code.matches("(& mut self . arena ,").count();
    // Arena views left outside the helpers: the calls that read the caller's input, and the
    // rest of `run`.
    let views = code.matches("views_").count();
    assert!(helpers > 0, "no band helper: {code}");
    // Bands of one op at other rows (first, middle, last) share a helper.
    assert!(calls >= 2 * helpers, "{calls} calls for {helpers} helpers");
    assert!(views <= helpers + 5, "{views} views for {helpers} helpers");
    // The program: one byte per step, many more steps than distinct statements.
    let at = code
        .find("static PROGRAM : [u8 ;")
        .expect("a program table");
    let steps: usize = code[at..]
        .split(';')
        .nth(1)
        .and_then(|n| n.split(']').next()?.trim().parse().ok())
        .expect("the program's length");
    assert!(steps >= 8 * calls, "{steps} steps for {calls} calls");
    eprintln!("{helpers} helpers, {calls} calls, {views} views, {steps} steps");
}

/// A recurrent layer unrolled over time runs the same kernels on the same weights at other
/// arena offsets at every step: its node calls share helpers too (kws_lstm: 49 steps of
/// seven nodes).
#[test]
fn recurrent_steps_share_helpers() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/models/interface/kws_lstm.onnx");
    let c = compile(&path, &Options::default()).expect("compiles");
    let code = c.to_tokens(Some(&path)).to_string();
    let helpers = code.matches("fn node_").count();
    let calls = code.matches("(& mut self . arena ,").count();
    eprintln!(
        "{helpers} helpers, {calls} calls, {} steps",
        c.schedule.len()
    );
    assert!(
        helpers > 0 && calls + 10 >= c.schedule.len(),
        "{calls} calls"
    );
    assert!(4 * helpers <= calls, "{helpers} helpers for {calls} calls");
}

/// The int8 depthwise variants a model's code names: with more than one (VWW: strides 1 and
/// 2, odd and even rows) every call asks for the shared channel loop (`DW_SHARED`, bit 7);
/// with one (DS-CNN) none does.
#[test]
fn depthwise_calls_share_their_channel_loop_when_variants_differ() {
    for (name, shared) in [("vww_96_int8", true), ("kws_ref_model", false)] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../tests/models/tflite/{name}.tflite"));
        let c = compile(&path, &Options::default()).expect("compiles");
        let code = c.to_tokens(Some(&path)).to_string();
        let variants: Vec<u8> = code
            .split("conv2d_i8_depthwise_split_as :: < _ , ")
            .skip(1)
            .map(|s| s.split("u8").next().unwrap().trim().parse().unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<u8> = variants.iter().map(|v| v & 0x7f).collect();
        assert!(!variants.is_empty(), "{name}: no depthwise call");
        assert_eq!(distinct.len() > 1, shared, "{name}: {distinct:?}");
        assert!(
            variants.iter().all(|v| (v & 0x80 != 0) == shared),
            "{name}: {variants:?}"
        );
    }
}

/// DS-CNN's four depthwise and four pointwise layers have one shape each: each op's bands
/// share helpers across the four layers (the layer's weights, biases and requantisation
/// constants picked by a `match` on its number), not one set of helpers per layer.
#[test]
fn layers_of_one_shape_share_a_helper() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/models/tflite/kws_ref_model.tflite");
    let c = compile(&path, &Options::default()).expect("compiles");
    let code = c.to_tokens(Some(&path)).to_string();
    let depthwise = code.matches("conv2d_i8_depthwise_split_as ::").count();
    let pointwise = code.matches("conv2d_i8_tiled_as ::").count();
    // Depthwise: one helper for the first band (no rows kept), one for the others, each
    // serving the four layers; one for the four pointwise layers and one for the first
    // convolution.
    assert_eq!((depthwise, pointwise), (2, 2), "{code}");
    // The helpers of the later bands pick among the four layers' weights and biases (`3 => `
    // is the last arm's `_ => `): the depthwise and the pointwise one at least (the first
    // band's depthwise helper serves the layers whose first bands have one shape: all four
    // at 6-row bands, three at the 4-row bands of the default plan).
    let picks = code.matches("2 => W").count();
    assert!(
        picks >= 2 * 2,
        "{picks} picks of a layer's weights or biases"
    );
    eprintln!("{} helpers", code.matches("fn band_").count());
}

/// MobileNetV1's five middle blocks (VWW: 3×3 depthwise and 1×1 convolutions of 128
/// channels at 6×6) run as nodes, not bands: their calls share node helpers across the five
/// layers the same way.
#[test]
fn repeated_blocks_share_node_helpers() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/models/tflite/vww_96_int8.tflite");
    let c = compile(&path, &Options::default()).expect("compiles");
    let code = c.to_tokens(Some(&path)).to_string();
    let (helpers, calls) = (
        code.matches("fn node_").count(),
        code.matches("node_").count() - code.matches("fn node_").count(),
    );
    // Each shared node helper picks among five layers' weights (`4 => ` is the `_ => `).
    let picks = code.matches("3 => W").count();
    assert!(picks >= 2 * 2, "{picks} picks among five layers: {code}");
    assert!(
        helpers + 8 <= calls,
        "{helpers} node helpers for {calls} node calls"
    );
}
