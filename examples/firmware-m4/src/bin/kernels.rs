//! The int8 convolution kernels alone on the Cortex-M4F (QEMU `mps2-an386`), on the layer
//! shapes of the MLPerf-Tiny-shaped networks: instructions per multiply-accumulate of each
//! kernel, and a check that the Cortex-M4 paths (inline assembly) compute what the reference
//! kernel computes, bit for bit, on those shapes and on 600 random small ones (float scales
//! and both fixed points); the same for the packed fully connected kernel on 300 random
//! layers, and for the f32 assembly (dense convolution tile, column-major product tile, fully
//! connected dot products) on 300 random layers each (run in CI by `.ci/firmware`, also
//! built for `thumbv7em-none-eabi`: the DSP assembly without the float ABI).
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin kernels
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use microarena::kernels::conv::{self, Conv2d, ConvI8};
use microarena::kernels::quant::Requant;
use microarena::kernels::{Activation, Window2d};

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

/// A layer of more output channels than one assembly call takes without a bias (they read
/// 16 groups of zeros a call): 72 channels, 1×1 and 3×3, float and fixed-point scales,
/// against the reference kernel.
fn wide_without_bias(
    r: &mut Lcg,
    input: &mut [i8],
    weights: &mut [i8],
    bytes: &mut [i8],
    scratch: &mut [i16],
    want: &mut [i8],
    got: &mut [i8],
) -> bool {
    use microarena::kernels::quant::{FixedPoint, TwoRoundings};
    use microarena::kernels::scale::{Q31Twice, Q31};
    const OUT_C: usize = 72;
    let mut ok = true;
    for (in_c, k) in [(8, 1), (4, 3)] {
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c: OUT_C,
            groups: 1,
            window: Window2d::uniform(4, 5, k, k, 1, 1, k / 2),
            act: Activation::Identity,
        };
        let p = ConvI8 {
            geom,
            input_zero: 7,
            output_zero: 0,
            lo: -128,
            hi: 127,
        };
        let (n_in, n_w, n_out) = (in_c * 20, OUT_C * in_c * k * k, OUT_C * 20);
        input[..n_in].iter_mut().for_each(|x| *x = r.next());
        weights[..n_w].iter_mut().for_each(|x| *x = r.next().max(-127));
        let reals: [f32; OUT_C] = core::array::from_fn(|c| 0.003 + 0.0002 * c as f32);
        let requant: [Requant; OUT_C] = core::array::from_fn(|c| Requant::from_f32(reals[c]));
        let floats: [f32; OUT_C] = core::array::from_fn(|c| requant[c].scale());
        let fixed: [FixedPoint; OUT_C] =
            core::array::from_fn(|c| FixedPoint::from_real(f64::from(reals[c])));
        let rounded: [TwoRoundings; OUT_C] = core::array::from_fn(|c| TwoRoundings(fixed[c]));
        let twice: [Q31Twice; OUT_C] =
            core::array::from_fn(|c| Q31Twice(Q31::new(fixed[c]).expect("below one half")));
        let len = conv::tiled_weights_len(&geom);
        fill(&mut bytes[..len], conv::pack_tiled_weights(&geom, &weights[..n_w]));
        let (x, w, pw) = (&input[..n_in], &weights[..n_w], &bytes[..len]);
        let s = &mut scratch[..conv::tiled_scratch_len(&geom)];
        conv::conv2d_i8(&p, x, w, None, &requant, &mut want[..n_out]);
        got[..n_out].iter_mut().for_each(|g| *g = !*g);
        conv::conv2d_i8_tiled(&p, x, pw, None, &floats, s, &mut got[..n_out]);
        ok &= want[..n_out] == got[..n_out];
        conv::conv2d_i8(&p, x, w, None, &rounded, &mut want[..n_out]);
        got[..n_out].iter_mut().for_each(|g| *g = !*g);
        conv::conv2d_i8_tiled(&p, x, pw, None, &twice, s, &mut got[..n_out]);
        ok &= want[..n_out] == got[..n_out];
    }
    hprintln!(
        "72 channels without a bias against the reference kernel: {}",
        if ok { "same output" } else { "MISMATCH" }
    );
    ok
}

/// TFLite's int8 addition (`add_i8_q31`, assembly in groups of four on the Cortex-M4, and
/// written over its first operand) on 300 random lengths, scales, zero points and ranges,
/// against the general fixed point of the sum of the operands' terms; the float form
/// (`add_i8`) the same way against the general float requantisation.
fn additions(r: &mut Lcg) -> bool {
    use microarena::kernels::elementwise::{add_i8, add_i8_in_place, AddI8};
    use microarena::kernels::elementwise::{add_i8_q31, add_i8_q31_in_place, AddI8Q31};
    use microarena::kernels::quant::{requantize, Rescale};
    let mut pick = |n: usize| (r.next() as u8 as usize * 256 + r.next() as u8 as usize) % n;
    let mut bad = 0;
    for case in 0..300 {
        let n = 1 + pick(70);
        let scale = |pick: &mut dyn FnMut(usize) -> usize| (1 + pick(400)) as f32 / 2000.0;
        let zero = |pick: &mut dyn FnMut(usize) -> usize| pick(256) as i32 - 128;
        let (a, b, o) = (
            (scale(&mut pick), zero(&mut pick)),
            (scale(&mut pick), zero(&mut pick)),
            (scale(&mut pick), zero(&mut pick)),
        );
        // Half the cases a fused ReLU's range (from the zero point) or a narrower one.
        let (lo, hi) = match pick(4) {
            0 | 1 => (-128, 127),
            2 => (o.1 as i8, 127),
            _ => (pick(100) as i8 - 110, 100 - pick(90) as i8),
        };
        let p = AddI8Q31::new(a, b, o, lo, hi);
        let terms = p.terms();
        let mut x = [0i8; 72];
        let mut y = [0i8; 72];
        x.iter_mut().for_each(|v| *v = r_next(&mut pick));
        y.iter_mut().for_each(|v| *v = r_next(&mut pick));
        let want: [i8; 72] = core::array::from_fn(|i| {
            let sum = terms.a[usize::from(x[i] as u8)] + terms.b[usize::from(y[i] as u8)];
            p.out_mult.requantize(sum, p.out_zero, p.lo, p.hi)
        });
        // An odd start on every other case (the assembly stores words, unaligned).
        let at = case % 2;
        let mut got = [!0i8; 73];
        add_i8_q31(&p, &terms, &x[..n], &y[..n], &mut got[at..at + n]);
        bad += usize::from(got[at..at + n] != want[..n]);
        add_i8_q31_in_place(&p, &terms, &mut x[..n], &y[..n]);
        bad += usize::from(x[..n] != want[..n]);
        // The float form (ONNX's QLinearAdd), against the general float requantisation.
        let q = AddI8::new(a, b, o, lo, hi);
        let terms = q.terms();
        x.iter_mut().for_each(|v| *v = r_next(&mut pick));
        let want: [i8; 72] = core::array::from_fn(|i| {
            let sum = terms.a[usize::from(x[i] as u8)] + terms.b[usize::from(y[i] as u8)];
            requantize(sum, q.out_mult, q.out_zero, q.lo, q.hi)
        });
        let mut got = [!0i8; 73];
        add_i8(&q, &terms, &x[..n], &y[..n], &mut got[at..at + n]);
        bad += usize::from(got[at..at + n] != want[..n]);
        add_i8_in_place(&q, &terms, &mut x[..n], &y[..n]);
        bad += usize::from(x[..n] != want[..n]);
    }
    hprintln!(
        "int8 additions: 300 random, fixed point and float, against the general forms: {}",
        if bad == 0 { "same output" } else { "MISMATCH" }
    );
    bad == 0
}

/// A deterministic byte stream.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> i8 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 24) as i8
    }
}

static mut INPUT: [i8; 16_384] = [0; 16_384];
static mut WEIGHTS: [i8; 9_216] = [0; 9_216];
/// The tiled and depthwise kernels' packed weights (one byte each), word-aligned as `LDRD`
/// needs.
#[repr(C, align(4))]
struct Words<const N: usize>([i8; N]);
static mut PACKED_BYTES: Words<18_432> = Words([0; 18_432]);
static mut SCRATCH: [i16; 4_096] = [0; 4_096];
static mut WANT: [i8; 16_384] = [0; 16_384];
static mut GOT: [i8; 16_384] = [0; 16_384];
static mut REQUANT: [Requant; 64] = [Requant {
    multiplier: 0,
    shift: 0,
}; 64];
static mut BIAS: [i32; 64] = [0; 64];

/// One layer: `(name, in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, groups, band)`; a
/// band (as a streamed stage calls it) has no vertical padding: `in_h` rows give the output
/// rows their windows fit.
type Layer = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
);

const LAYERS: [Layer; 10] = [
    ("resnet8 3x3 16->16 32x32", 16, 16, 32, 32, 3, 3, 1, 1, 1, false),
    ("resnet8 3x3 s2 16->32", 16, 32, 32, 32, 3, 3, 2, 1, 1, false),
    ("dscnn 10x4 s2 1->64", 1, 64, 49, 10, 10, 4, 2, 4, 1, false),
    ("dscnn 1x1 64->64 25x5", 64, 64, 25, 5, 1, 1, 1, 0, 1, false),
    ("dscnn dw 3x3 64 25x5", 64, 64, 25, 5, 3, 3, 1, 1, 64, false),
    ("band: resnet8 3x3 16->16, 1 row of 32", 16, 16, 3, 32, 3, 3, 1, 1, 1, true),
    ("band: dscnn dw 3x3 64, 1 row of 5", 64, 64, 3, 5, 3, 3, 1, 1, 64, true),
    ("band: dscnn 1x1 64->64, 1 row of 5", 64, 64, 1, 5, 1, 1, 1, 0, 1, true),
    ("band: mobilenet dw 3x3 8, 1 row of 48", 8, 8, 3, 48, 3, 3, 1, 1, 8, true),
    ("band: mobilenet dw 3x3 s2 16, 1 row of 24", 16, 16, 3, 48, 3, 3, 2, 1, 16, true),
];

#[entry]
fn main() -> ! {
    common::start_counter();
    let mut ok = true;
    // SAFETY: the only references to the statics are taken here, once, on one thread.
    let (input, weights, bytes, scratch, want, got, requant, bias) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(INPUT),
            &mut *core::ptr::addr_of_mut!(WEIGHTS),
            &mut (*core::ptr::addr_of_mut!(PACKED_BYTES)).0,
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(WANT),
            &mut *core::ptr::addr_of_mut!(GOT),
            &mut *core::ptr::addr_of_mut!(REQUANT),
            &mut *core::ptr::addr_of_mut!(BIAS),
        )
    };
    let mut r = Lcg(12345);
    for (name, in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, groups, band) in LAYERS {
        let mut window = Window2d::uniform(in_h, in_w, k_h, k_w, stride, 1, pad);
        if band {
            window.pad_top = 0;
            window.pad_bottom = 0;
            window.out_h = (in_h - k_h) / stride + 1;
        }
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups,
            window,
            act: Activation::Identity,
        };
        let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
        let p = ConvI8 {
            geom,
            input_zero: -5,
            output_zero: 3,
            lo: -128,
            hi: 127,
        };
        let (n_in, n_w, n_out) = (
            in_c * in_h * in_w,
            out_c * in_c / groups * k_h * k_w,
            out_c * out_h * out_w,
        );
        input[..n_in].iter_mut().for_each(|x| *x = r.next());
        // Symmetric int8 weights (−127..=127), as quantizers write them.
        weights[..n_w].iter_mut().for_each(|x| *x = r.next().max(-127));
        for c in 0..out_c {
            requant[c] = Requant::from_f32(0.002 + 0.0001 * c as f32);
            bias[c] = c as i32 * 37 - 500;
        }
        let macs = (n_out * in_c / groups * k_h * k_w) as u64;
        let t = common::ticks();
        conv::conv2d_i8(
            &p,
            &input[..n_in],
            &weights[..n_w],
            Some(&bias[..out_c]),
            &requant[..out_c],
            &mut want[..n_out],
        );
        let reference = (common::ticks() - t) * 40;
        let t;
        if groups == 1 {
            let len = conv::tiled_weights_len(&geom);
            let bias = Some(&bias[..out_c]);
            ok &= conv::tiled_weights_fit(&geom, &weights[..n_w], bias, p.input_zero);
            fill(&mut bytes[..len], conv::pack_tiled_weights(&geom, &weights[..n_w]));
            let s = &mut scratch[..conv::tiled_scratch_len(&geom)];
            let scales: [f32; 64] = core::array::from_fn(|c| requant[c].scale());
            t = common::ticks();
            conv::conv2d_i8_tiled(
                &p,
                &input[..n_in],
                &bytes[..len],
                bias,
                &scales[..out_c],
                s,
                &mut got[..n_out],
            );
        } else {
            let len = conv::depthwise_weights_len(&geom);
            fill(&mut bytes[..len], conv::pack_depthwise_weights(&geom, &weights[..n_w]));
            let s = &mut scratch[..conv::depthwise_scratch_len(&geom) / 2];
            let scales: [f32; 64] = core::array::from_fn(|c| requant[c].scale());
            t = common::ticks();
            conv::conv2d_i8_depthwise(
                &p,
                &input[..n_in],
                &bytes[..len],
                Some(&bias[..out_c]),
                &scales[..out_c],
                s,
                &mut got[..n_out],
            );
        }
        let fast = (common::ticks() - t) * 40;
        let same = want[..n_out] == got[..n_out];
        ok &= same;
        let per = |i: u64| (i * 100 + macs / 2) / macs;
        let (a, b) = (per(reference), per(fast));
        hprintln!(
            "{}: {} MACs, reference {}.{:02}, new {}.{:02} instructions per MAC: {}",
            name,
            macs,
            a / 100,
            a % 100,
            b / 100,
            b % 100,
            if same { "same output" } else { "MISMATCH" }
        );
    }
    ok &= random_shapes(
        &mut r, input, weights, bytes, scratch, want, got, requant, bias,
    );
    // Its own random sequence: the checks after it keep the data they were written for.
    ok &= named_depthwise(&mut Lcg(777), input, weights, bytes, scratch, want, got);
    ok &= row_copies(&mut r);
    ok &= pooled_row_sums(&mut Lcg(4242));
    ok &= fully_connected(&mut r);
    ok &= additions(&mut r);
    ok &= wide_without_bias(&mut r, input, weights, bytes, scratch, want, got);
    ok &= f32_tiles(&mut r);
    ok &= chunked_layers(&mut r, input, weights, bytes, scratch, want, got);
    common::exit(ok)
}

/// `dst` from `packed` (a packing iterator of the kernels' weights), element by element.
fn fill(dst: &mut [i8], packed: impl Iterator<Item = i8>) {
    for (d, s) in dst.iter_mut().zip(packed) {
        *d = s;
    }
}

/// The int8 depthwise kernel compiled for a layer's own variant (as generated code calls it:
/// only that row loop and that row copy linked) and in the body several variants share
/// (`DW_SHARED`), against the run-time choice: rows of each copy class (5 bytes: short, 9:
/// long, 16 and 20: whole words), strides 1 and 2, a clamp.
fn named_depthwise(
    r: &mut Lcg,
    input: &mut [i8],
    weights: &mut [i8],
    bytes: &mut [i8],
    scratch: &mut [i16],
    want: &mut [i8],
    got: &mut [i8],
) -> bool {
    const fn layer(ch: usize, in_w: usize, stride: usize, lo: i8) -> ConvI8 {
        ConvI8 {
            geom: Conv2d {
                batch: 1,
                in_c: ch,
                out_c: ch,
                groups: ch,
                window: Window2d::uniform(6, in_w, 3, 3, stride, 1, 1),
                act: Activation::Identity,
            },
            input_zero: -3,
            output_zero: 5,
            lo,
            hi: 127,
        }
    }
    let mut ok = true;
    macro_rules! check {
        ($($p:expr);*) => {$({
            const P: ConvI8 = $p;
            let g = &P.geom;
            let w = &g.window;
            let (n_in, n_out) = (g.in_c * w.in_h * w.in_w, g.out_c * w.out_h * w.out_w);
            for x in input[..n_in].iter_mut().chain(&mut weights[..9 * g.in_c]) {
                *x = r.next();
            }
            let len = conv::depthwise_weights_len(g);
            fill(&mut bytes[..len], conv::pack_depthwise_weights(g, &weights[..9 * g.in_c]));
            let scales: [f32; 8] = core::array::from_fn(|c| 0.004 + 0.001 * c as f32);
            let bias: [i32; 8] = core::array::from_fn(|c| 40 * c as i32 - 90);
            let s = &mut scratch[..conv::depthwise_scratch_len(g) / 2];
            let args = (&input[..n_in], &bytes[..len], Some(&bias[..g.out_c]), &scales[..g.out_c]);
            conv::conv2d_i8_depthwise(&P, args.0, args.1, args.2, args.3, s, &mut want[..n_out]);
            conv::conv2d_i8_depthwise_split_as::<_, { conv::depthwise_variant(&P) }>(
                &P, &[], args.0, args.1, args.2, args.3, s, &mut got[..n_out],
            );
            ok &= want[..n_out] == got[..n_out];
            got[..n_out].fill(0);
            conv::conv2d_i8_depthwise_split_as::<
                _,
                { conv::depthwise_variant(&P) & !conv::DW_ROWS | conv::DW_SHARED },
            >(&P, &[], args.0, args.1, args.2, args.3, s, &mut got[..n_out]);
            ok &= want[..n_out] == got[..n_out];
        })*};
    }
    check!(layer(3, 5, 1, -128); layer(2, 9, 1, -100); layer(4, 16, 1, -128);
           layer(3, 20, 2, -128); layer(2, 16, 2, 0));
    hprintln!(
        "named depthwise variants (each row-copy class, inline and shared): {}",
        if ok { "same output" } else { "MISMATCH" }
    );
    ok
}

/// The int8 row sums a streamed stage's global average pooling adds band by band
/// (`kernels::pool::row_sums_i8`: on the Cortex-M4 every channel in one loop, whole words and
/// a shifted last word) against a scalar sum: 500 random bands of 1 to 8 channels of 1 to 40
/// bytes, first and later bands, each run exactly as long as the band (no byte past it read).
fn pooled_row_sums(r: &mut Lcg) -> bool {
    use microarena::kernels::pool::row_sums_i8;
    let mut pick = |n: usize| (r.next() as u8 as usize) % n;
    let mut band = [0i8; 320];
    let (mut got, mut want) = ([0i32; 8], [0i32; 8]);
    let mut ok = true;
    for _ in 0..500 {
        let (channels, len, first) = (1 + pick(8), 1 + pick(40), pick(2) == 0);
        for b in band[..channels * len].iter_mut() {
            *b = pick(256) as u8 as i8;
        }
        for c in 0..channels {
            got[c] = pick(60_000) as i32 - 30_000;
            let sum: i32 = band[c * len..][..len].iter().map(|&v| i32::from(v)).sum();
            want[c] = if first { sum } else { got[c] + sum };
        }
        row_sums_i8(first, &band[..channels * len], len, &mut got[..channels]);
        ok &= got[..channels] == want[..channels];
    }
    hprintln!(
        "pooled row sums: 500 random bands against a scalar sum: {}",
        if ok { "same sums" } else { "MISMATCH" }
    );
    ok
}

/// The streamed stages' row copies (`kernels::stream::copy_rows`: on the Cortex-M4 whole-word
/// blocks by `LDM`/`STM` loops, forwards and backwards) against the same blocks moved one
/// by one with `copy_within`, in the order its contract gives: random copies (those of 2,000
/// that fit the buffer), aligned and not, overlapping and not, channel strides growing and
/// shrinking, a quarter of them short blocks apart (the two- and three-word copies).
fn row_copies(r: &mut Lcg) -> bool {
    use microarena::kernels::stream::{copy_rows, RowCopy};
    static mut BUF: [u32; 128] = [0; 128];
    static mut WANT: [u8; 512] = [0; 512];
    // SAFETY: the only references to these statics, taken once, on one thread.
    let (words, want) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(BUF),
            &mut *core::ptr::addr_of_mut!(WANT),
        )
    };
    // SAFETY: the same memory as bytes (no alignment or invalid values for u8), its length
    // in bytes; `words` is not used again while this view lives.
    let buf: &mut [u8] =
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, 512) };
    let mut pick = |n: usize| (r.next() as u8 as usize) % n;
    let (mut ok, mut moved) = (true, 0);
    for _ in 0..2000 {
        let unit = if pick(4) == 0 { 1 } else { 4 };
        // A quarter short blocks (4 to 12 bytes) whose sources and destinations lie apart:
        // a window's kept rows saved from its band.
        let p = if pick(4) == 0 {
            RowCopy {
                channels: 1 + pick(6),
                bytes: 4 + pick(9),
                src: pick(24),
                src_channel: 4 + pick(20),
                dst: 256 + pick(24),
                dst_channel: 12 + pick(20),
            }
        } else {
            RowCopy {
                channels: 1 + pick(6),
                bytes: unit * (1 + pick(24)),
                src: unit * pick(24),
                src_channel: unit * pick(40),
                dst: unit * pick(24),
                dst_channel: unit * pick(40),
            }
        };
        let end = |at: usize, stride: usize| at + (p.channels - 1) * stride + p.bytes;
        if end(p.src, p.src_channel).max(end(p.dst, p.dst_channel)) > buf.len() {
            continue;
        }
        for (i, (b, w)) in buf.iter_mut().zip(want.iter_mut()).enumerate() {
            *b = (i * 7) as u8;
            *w = *b;
        }
        let at = |c: usize| (p.src + c * p.src_channel, p.dst + c * p.dst_channel);
        for c in 0..p.channels {
            let (s, d) = at(c);
            if d <= s {
                want.copy_within(s..s + p.bytes, d);
            }
        }
        for c in (0..p.channels).rev() {
            let (s, d) = at(c);
            if d > s {
                want.copy_within(s..s + p.bytes, d);
            }
        }
        copy_rows(buf, &p);
        ok &= buf[..] == want[..];
        moved += 1;
    }
    hprintln!(
        "row copies: {} random against block-by-block moves: {}",
        moved,
        if ok { "same bytes" } else { "MISMATCH" }
    );
    ok && moved > 1000
}

/// A window of the given geometry, if at least one output fits.
#[allow(clippy::too_many_arguments)]
fn window(
    (in_h, in_w): (usize, usize),
    (k_h, k_w): (usize, usize),
    (stride_h, stride_w): (usize, usize),
    (dil_h, dil_w): (usize, usize),
    [pad_top, pad_left, pad_bottom, pad_right]: [usize; 4],
) -> Option<Window2d> {
    let span = |k: usize, d: usize| d * (k - 1) + 1;
    let (h, w) = (pad_top + in_h + pad_bottom, pad_left + in_w + pad_right);
    if h < span(k_h, dil_h) || w < span(k_w, dil_w) {
        return None;
    }
    Some(Window2d {
        in_h,
        in_w,
        out_h: (h - span(k_h, dil_h)) / stride_h + 1,
        out_w: (w - span(k_w, dil_w)) / stride_w + 1,
        k_h,
        k_w,
        stride_h,
        stride_w,
        dil_h,
        dil_w,
        pad_top,
        pad_left,
        pad_bottom,
        pad_right,
    })
}

/// The Cortex-M paths against the reference kernel on random small shapes, bit for bit:
/// dense convolutions (odd and even channel counts, groups of four and pairs, strides,
/// dilations, asymmetric padding, 1×1) and depthwise ones (3×3 at horizontal stride 1 and 2,
/// odd widths, vertical strides and dilations, half with their first rows kept apart), with
/// random zero points, clamps, biases and scales.
#[allow(clippy::too_many_arguments)]
fn random_shapes(
    r: &mut Lcg,
    input: &mut [i8],
    weights: &mut [i8],
    bytes: &mut [i8],
    scratch: &mut [i16],
    want: &mut [i8],
    got: &mut [i8],
    requant: &mut [Requant],
    bias: &mut [i32],
) -> bool {
    use microarena::kernels::quant::{FixedPoint, TwoRoundings};
    use microarena::kernels::scale::{Q31Once, Q31Twice, Q31};
    let mut pick = |n: usize| (r.next() as u8 as usize) % n;
    let (mut dense, mut depthwise, mut bad) = (0, 0, 0);
    for case in 0..600 {
        let dw = case % 2 == 1;
        let (in_c, out_c, k, stride_w, dil_w) = if dw {
            let c = 1 + pick(5);
            (c, c, (3, 3), 1 + pick(2), 1)
        } else {
            let k = [(1, 1), (3, 3), (2, 3), (3, 1), (1, 1)][pick(5)];
            (1 + pick(9), 1 + pick(11), k, 1 + pick(2), 1 + pick(2))
        };
        let pads = [pick(3), pick(3), pick(3), pick(3)];
        let pads = if k == (1, 1) && pick(2) == 0 {
            [0; 4]
        } else {
            pads
        };
        // A quarter of the widths are whole words of 16 to 36 bytes (the depthwise plane
        // copy's word-group path).
        let in_w = if pick(4) == 0 {
            4 * (4 + pick(6))
        } else {
            1 + pick(10)
        };
        let geometry = window(
            (1 + pick(9), in_w),
            k,
            (1 + pick(2), stride_w),
            (1 + pick(2), dil_w),
            pads,
        );
        let Some(win) = geometry else { continue };
        let groups = if dw { in_c } else { 1 };
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups,
            window: win,
            act: Activation::Identity,
        };
        let zero = pick(60) as i32 - 30;
        let out_zero = pick(40) as i32 - 20;
        // A quarter of the cases clamp only to -128..=127 (the kernels skip the clamp then).
        let lo = if pick(2) == 0 { -128 } else { out_zero as i8 };
        let hi = if pick(2) == 0 { 127 } else { 127 - pick(20) as i8 };
        let p = ConvI8 {
            geom,
            input_zero: zero,
            output_zero: out_zero,
            lo,
            hi,
        };
        let (n_in, n_w, n_out) = (
            in_c * win.in_h * win.in_w,
            out_c * in_c / groups * k.0 * k.1,
            out_c * win.out_h * win.out_w,
        );
        input[..n_in]
            .iter_mut()
            .for_each(|x| *x = r_next(&mut pick));
        // Symmetric int8 weights (−127..=127), as quantizers write them.
        weights[..n_w]
            .iter_mut()
            .for_each(|x| *x = r_next(&mut pick).max(-127));
        for c in 0..out_c {
            requant[c] = Requant::from_f32(0.001 + 0.0003 * pick(40) as f32);
            bias[c] = pick(2000) as i32 - 1000;
        }
        let scales: [f32; 64] = core::array::from_fn(|c| requant[c].scale());
        let b = if pick(4) == 0 {
            None
        } else {
            Some(&bias[..out_c])
        };
        // Every third pair of cases TFLite's fixed point with two roundings, every third
        // with one (`Q31Twice`, `Q31Once`: the zero point in the half unit, the kernel's
        // `output_zero` 0), against the reference kernel's general forms (`TwoRoundings`,
        // `FixedPoint`); some factors a power of two (a multiplier of exactly 2^30).
        let kind = (case / 2) % 3;
        let fixed: [FixedPoint; 64] = core::array::from_fn(|c| {
            let real = if pick(4) == 0 {
                1.0 / f64::from(1u32 << (6 + pick(6)))
            } else {
                f64::from(scales[c])
            };
            FixedPoint::from_real(real)
        });
        let q31 = |c: usize| {
            let q = Q31::new(fixed[c]).expect("below one half");
            q.with_zero(out_zero).expect("a small exponent")
        };
        let twice: [Q31Twice; 64] = core::array::from_fn(|c| Q31Twice(q31(c)));
        let once: [Q31Once; 64] = core::array::from_fn(|c| Q31Once(q31(c)));
        let rounded: [TwoRoundings; 64] = core::array::from_fn(|c| TwoRoundings(fixed[c]));
        let (x, w, o) = (&input[..n_in], &weights[..n_w], &mut want[..n_out]);
        match kind {
            0 => conv::conv2d_i8(&p, x, w, b, &requant[..out_c], o),
            1 => conv::conv2d_i8(&p, x, w, b, &rounded[..out_c], o),
            _ => conv::conv2d_i8(&p, x, w, b, &fixed[..out_c], o),
        }
        let p0 = ConvI8 {
            output_zero: 0,
            ..p
        };
        // A stale output must not pass for a computed one.
        got[..n_out].iter_mut().for_each(|g| *g = !*g);
        let o = &mut got[..n_out];
        if dw {
            let len = conv::depthwise_weights_len(&geom);
            fill(
                &mut bytes[..len],
                conv::pack_depthwise_weights(&geom, &weights[..n_w]),
            );
            let s = &mut scratch[..conv::depthwise_scratch_len(&geom) / 2];
            let w = &bytes[..len];
            // Half the cases with each channel's first `held` rows kept apart (a streamed
            // stage's split window): both parts copied behind the input, each exactly as
            // long as its rows.
            let held = if pick(2) == 0 { pick(win.in_h + 1) } else { 0 };
            let (whole, rest) = input.split_at_mut(n_in);
            let (row, plane) = (win.in_w, win.in_h * win.in_w);
            let (k_len, f_len) = (held * row, plane - held * row);
            for c in 0..in_c {
                let src = &whole[c * plane..][..plane];
                rest[c * k_len..][..k_len].copy_from_slice(&src[..k_len]);
                rest[in_c * k_len + c * f_len..][..f_len].copy_from_slice(&src[k_len..]);
            }
            let (kept, x) = rest[..n_in].split_at(in_c * k_len);
            use conv::conv2d_i8_depthwise_split as split;
            match kind {
                0 => split(&p, kept, x, w, b, &scales[..out_c], s, o),
                1 => split(&p0, kept, x, w, b, &twice[..out_c], s, o),
                _ => split(&p0, kept, x, w, b, &once[..out_c], s, o),
            }
            depthwise += 1;
        } else {
            let x = &input[..n_in];
            let len = conv::tiled_weights_len(&geom);
            if !conv::tiled_weights_fit(&geom, &weights[..n_w], b, p.input_zero) {
                hprintln!("MISMATCH: weights the tiled kernel cannot pair");
                bad += 1;
                continue;
            }
            fill(
                &mut bytes[..len],
                conv::pack_tiled_weights(&geom, &weights[..n_w]),
            );
            let s = &mut scratch[..conv::tiled_scratch_len(&geom)];
            let w = &bytes[..len];
            match kind {
                0 => conv::conv2d_i8_tiled(&p, x, w, b, &scales[..out_c], s, o),
                1 => conv::conv2d_i8_tiled(&p0, x, w, b, &twice[..out_c], s, o),
                _ => conv::conv2d_i8_tiled(&p0, x, w, b, &once[..out_c], s, o),
            }
            dense += 1;
        }
        if want[..n_out] != got[..n_out] {
            bad += 1;
            hprintln!(
                "MISMATCH: {:?} {}->{} {:?}",
                if dw { "depthwise" } else { "dense" },
                in_c,
                out_c,
                win
            );
        }
    }
    hprintln!(
        "random shapes: {} dense, {} depthwise (float, two- and one-rounding fixed point) against the reference kernel: {}",
        dense,
        depthwise,
        if bad == 0 { "same output" } else { "MISMATCH" }
    );
    bad == 0
}

/// Long reductions whose paired sums reach 2^23 (`tiled_weights_fit` false): the tiled kernel
/// in passes of 256 steps (`conv2d_i8_tiled_chunked`) against the reference kernel, bit for
/// bit, on a 1×1 layer of 600 input channels and a 3×3 one of 64; and the one-pass kernel,
/// which these weights are too long for, gives other bytes (so the layers test the passes).
fn chunked_layers(
    r: &mut Lcg,
    input: &mut [i8],
    weights: &mut [i8],
    bytes: &mut [i8],
    scratch: &mut [i16],
    want: &mut [i8],
    got: &mut [i8],
) -> bool {
    let mut ok = true;
    let mut one_pass_differs = true;
    let (mut passes, mut one_pass, mut macs) = (0, 0, 0);
    for (in_c, out_c, k, side) in [(600, 7, 1, 5), (64, 6, 3, 5)] {
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups: 1,
            window: Window2d::uniform(side, side, k, k, 1, 1, k / 2),
            act: Activation::Identity,
        };
        // Inputs mostly 255 below the zero point, second channels' weights mostly −127: sums
        // of 10 to 15 million (above 2^23; about 2^24, beyond which both kernels round the
        // sum to a float alike).
        let p = ConvI8 {
            geom,
            input_zero: 127,
            output_zero: 0,
            lo: -128,
            hi: 127,
        };
        let (n_in, n_w) = (in_c * side * side, out_c * in_c * k * k);
        let n_out = out_c * geom.window.out_h * geom.window.out_w;
        for x in input[..n_in].iter_mut() {
            *x = if r.next() > -100 { -128 } else { r.next() };
        }
        for (i, w) in weights[..n_w].iter_mut().enumerate() {
            let second = i / (in_c * k * k) % 2 == 1;
            // First channels' mostly 127: their sums as large, so that a pass started from
            // the wrong one (a second channel's pair taken against it) is far off.
            let heavy = if second { -127 } else { 127 };
            *w = if r.next() > -100 { heavy } else { r.next().max(-127) };
        }
        let requant: [Requant; 8] = core::array::from_fn(|c| Requant::from_f32(1e-6 * (1 + c) as f32));
        let scales: [f32; 8] = core::array::from_fn(|c| requant[c].scale());
        let len = conv::tiled_weights_len(&geom);
        fill(&mut bytes[..len], conv::pack_tiled_weights(&geom, &weights[..n_w]));
        let (x, w) = (&input[..n_in], &bytes[..len]);
        let s = &mut scratch[..conv::tiled_scratch_len(&geom)];
        // An error in a sum moves these small scales' outputs across a rounding boundary only
        // now and then: eight sets of biases, each its own draw of the outputs' fractions.
        for shift in 0..8 {
            let bias: [i32; 8] = core::array::from_fn(|c| c as i32 * 1000 - 3000 + shift * 25_000);
            let b = Some(&bias[..out_c]);
            ok &= !conv::tiled_weights_fit(&geom, &weights[..n_w], b, p.input_zero);
            ok &= conv::tiled_weights_pair(&geom, &weights[..n_w]);
            conv::conv2d_i8(&p, x, &weights[..n_w], b, &requant[..out_c], &mut want[..n_out]);
            got[..n_out].iter_mut().for_each(|g| *g = !*g);
            let t = common::ticks();
            conv::conv2d_i8_tiled_chunked(&p, x, w, b, &scales[..out_c], s, &mut got[..n_out]);
            if shift == 0 {
                passes += (common::ticks() - t) * 40;
            }
            ok &= want[..n_out] == got[..n_out];
        }
        let bias: [i32; 8] = core::array::from_fn(|c| c as i32 * 1000 - 3000);
        let b = Some(&bias[..out_c]);
        conv::conv2d_i8(&p, x, &weights[..n_w], b, &requant[..out_c], &mut want[..n_out]);
        let t = common::ticks();
        conv::conv2d_i8_tiled(&p, x, w, b, &scales[..out_c], s, &mut got[..n_out]);
        one_pass += (common::ticks() - t) * 40;
        macs += (n_out * in_c * k * k) as u64;
        one_pass_differs &= want[..n_out] != got[..n_out];
    }
    let per_mac = |n: u64| (n * 100 / macs) as f32 / 100.0;
    hprintln!(
        "long reductions in passes ({} instructions per MAC; one pass {}) against the reference kernel: {}; in one pass: {}",
        per_mac(passes),
        per_mac(one_pass),
        if ok { "same output" } else { "MISMATCH" },
        if one_pass_differs { "other bytes, as expected" } else { "MISMATCH: the same bytes" }
    );
    ok && one_pass_differs
}

/// The packed fully connected kernel (its assembly: the dot loop, and the requantisation
/// and bytewise clamp of whole column groups) against the reference matrix product on 300
/// random layers, float and one-rounding fixed-point scales, aligned and unaligned rows.
fn fully_connected(r: &mut Lcg) -> bool {
    use microarena::kernels::gemm::{self, MatMul, MatMulI8};
    use microarena::kernels::quant::FixedPoint;
    use microarena::kernels::scale::{Q31Once, Q31};
    static mut A: [i8; 1_032] = [0; 1_032];
    static mut B: [i8; 8_192] = [0; 8_192];
    static mut PACKED_B: [i8; 8_704] = [0; 8_704];
    static mut FOLDED: [i32; 64] = [0; 64];
    // SAFETY: the only references to these statics, taken once, on one thread.
    let (a, b, packed, folded) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(A),
            &mut *core::ptr::addr_of_mut!(B),
            &mut *core::ptr::addr_of_mut!(PACKED_B),
            &mut *core::ptr::addr_of_mut!(FOLDED),
        )
    };
    let mut pick = |n: usize| (r.next() as u8 as usize * 256 + r.next() as u8 as usize) % n;
    let (mut bad, mut runs) = (0, 0);
    for case in 0..300 {
        let (n, k) = (1 + pick(40), 1 + pick(200));
        // Every other case a row at an odd address: the assembly needs 4-byte alignment.
        let offset = if case % 2 == 0 { 0 } else { 1 + pick(3) };
        let geom = MatMul {
            m: 1,
            n,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n: k,
            b_stride_k: 1,
            out_stride_m: n,
            out_stride_n: 1,
            act: Activation::Identity,
        };
        let (lo, hi) = if pick(2) == 0 {
            (-128, 127)
        } else {
            (pick(100) as i8 - 110, 100 - pick(90) as i8)
        };
        let p = MatMulI8 {
            geom,
            a_zero: pick(256) as i32 - 128,
            out_zero: pick(256) as i32 - 128,
            lo,
            hi,
        };
        let x = &mut a[offset..offset + k];
        x.iter_mut().for_each(|v| *v = r_next(&mut pick));
        b[..n * k].iter_mut().for_each(|v| *v = r_next(&mut pick));
        let mut bias = [0i32; 64];
        let mut reals = [0f32; 64];
        for c in 0..n {
            bias[c] = pick(40_000) as i32 - 20_000;
            reals[c] = (1 + pick(1000)) as f32 * 4e-5 / (1 + k / 16) as f32;
        }
        let len = gemm::packed_fc_len(k, n);
        for (d, s) in packed[..len]
            .iter_mut()
            .zip(gemm::pack_fc_weights(&p, &b[..n * k]))
        {
            *d = s;
        }
        for (d, s) in
            folded
                .iter_mut()
                .zip(gemm::fold_fc_zero_point(&p, &b[..n * k], Some(&bias[..n])))
        {
            *d = s;
        }
        let (mut want, mut got) = ([0i8; 64], [0i8; 64]);
        // Float scales (ONNX).
        let rq: [Requant; 64] = core::array::from_fn(|c| Requant::from_f32(reals[c].max(1e-6)));
        gemm::matmul_i8(
            &p,
            x,
            &b[..n * k],
            Some(&bias[..n]),
            &rq[..n],
            &mut want[..n],
        );
        let floats: [f32; 64] = core::array::from_fn(|c| rq[c].scale());
        got.iter_mut().for_each(|g| *g = !*g);
        gemm::fully_connected_i8(
            &p,
            x,
            &packed[..len],
            &folded[..n],
            &floats[..n],
            &mut got[..n],
        );
        bad += usize::from(want[..n] != got[..n]);
        // TFLite's fixed point, one rounding.
        let fp: [FixedPoint; 64] =
            core::array::from_fn(|c| FixedPoint::from_real(f64::from(reals[c])));
        let q: [Q31Once; 64] =
            core::array::from_fn(|c| Q31Once(Q31::new(fp[c]).expect("below one half")));
        gemm::matmul_i8(
            &p,
            x,
            &b[..n * k],
            Some(&bias[..n]),
            &fp[..n],
            &mut want[..n],
        );
        got.iter_mut().for_each(|g| *g = !*g);
        gemm::fully_connected_i8(&p, x, &packed[..len], &folded[..n], &q[..n], &mut got[..n]);
        bad += usize::from(want[..n] != got[..n]);
        runs += 2;
    }
    hprintln!(
        "fully connected: {} random layers against the reference: {}",
        runs,
        if bad == 0 { "same output" } else { "MISMATCH" }
    );
    bad == 0
}

/// A random byte from `pick`.
fn r_next(pick: &mut impl FnMut(usize) -> usize) -> i8 {
    pick(256) as u8 as i8
}

/// The f32 assembly (the dense convolution's 4 × 4 tile of 3-wide windows, the column-major
/// product's 4 × 4 tile, the fully connected dot products) against the reference loops, bit
/// for bit: 300 random
/// convolutions (1–8 input channels, 1–9 output channels, kernel heights 1–3 with row
/// dilations 1–2, widths 3 and 1–5 (with column dilations 1–2), strides 1–2, padding
/// 0–2, rows 3–12 by 4–21; each activation in turn) and 300 random products
/// (4–21 pixels, 1–9 columns, 1–24 steps; no activation, a ReLU, a clip or a leaky ReLU),
/// the fully connected layer's four dot
/// products at a time on 300 random layers (1–3 rows, 1–13 outputs, 1–70 inputs), and 300
/// random 3×3 depthwise convolutions (1–6 channels, strides 1–2, padding 0–1, rows 3–8 by
/// 3–22), whole and with their first rows kept apart; each output summed from its bias in
/// order.
fn f32_tiles(r: &mut Lcg) -> bool {
    use microarena::kernels::gemm::MatMul;
    static mut X: [f32; 2_048] = [0.0; 2_048];
    static mut W: [f32; 1_024] = [0.0; 1_024];
    static mut PACKED_W: [f32; 1_024] = [0.0; 1_024];
    static mut WANT_F: [f32; 2_048] = [0.0; 2_048];
    static mut GOT_F: [f32; 2_048] = [0.0; 2_048];
    // SAFETY: the only references to these statics, taken once, on one thread.
    let (x, w, packed, want, got) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(X),
            &mut *core::ptr::addr_of_mut!(W),
            &mut *core::ptr::addr_of_mut!(PACKED_W),
            &mut *core::ptr::addr_of_mut!(WANT_F),
            &mut *core::ptr::addr_of_mut!(GOT_F),
        )
    };
    let mut pick = |n: usize| (r.next() as u8 as usize * 256 + r.next() as u8 as usize) % n;
    let value = |pick: &mut dyn FnMut(usize) -> usize| (pick(2001) as f32 - 1000.0) / 317.0;
    let bias: [f32; 16] = core::array::from_fn(|c| c as f32 * 0.37 - 2.0);
    let mut bad = 0;
    // Identity, a ReLU, a two-sided clip, and one that is not a clamp (applied after).
    let acts = [
        Activation::Identity,
        Activation::Clip {
            min: 0.0,
            max: f32::INFINITY,
        },
        Activation::Clip {
            min: -0.5,
            max: 1.0,
        },
        Activation::LeakyRelu { alpha: 0.1 },
    ];
    for i in 0..300 {
        let (in_c, out_c) = (1 + pick(8), 1 + pick(9));
        let (k_h, dil, pad) = (1 + pick(3), 1 + pick(2), pick(3));
        // Half the windows 3 wide (the tile's own path), the others 1–5 wide, some dilated.
        let (k_w, dil_w) = if pick(2) == 0 {
            (3, 1)
        } else {
            (1 + pick(5), 1 + pick(2))
        };
        let in_h = (k_h - 1) * dil + 1 + pick(4);
        let in_w = ((k_w - 1) * dil_w + 1).max(4) + pick(18);
        let stride = 1 + pick(2);
        let mut window = Window2d::uniform(in_h, in_w, k_h, k_w, stride, 1, pad);
        window.dil_h = dil;
        window.dil_w = dil_w;
        window.out_h = (in_h + 2 * pad - dil * (k_h - 1) - 1) / stride + 1;
        window.out_w = (in_w + 2 * pad - dil_w * (k_w - 1) - 1) / stride + 1;
        let p = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups: 1,
            window,
            // Each activation in turn (by the loop's count: the random sequence stays).
            act: acts[i % 4],
        };
        let n_in = in_c * in_h * in_w;
        let n_w = out_c * in_c * k_h * k_w;
        let n_out = out_c * window.out_h * window.out_w;
        if n_in > x.len() || conv::packed_f32_len(&p) > packed.len() || n_out > want.len() {
            continue;
        }
        x[..n_in].iter_mut().for_each(|v| *v = value(&mut pick));
        w[..n_w].iter_mut().for_each(|v| *v = value(&mut pick));
        for (d, v) in packed.iter_mut().zip(conv::pack_f32_weights(&p, &w[..n_w])) {
            *d = v;
        }
        conv::conv2d(&p, &x[..n_in], &w[..n_w], Some(&bias[..out_c]), &mut want[..n_out]);
        got[..n_out].fill(f32::NAN);
        conv::conv2d_tiled(&p, &x[..n_in], packed, Some(&bias[..out_c]), &mut got[..n_out]);
        let same = same_bits(&want[..n_out], &got[..n_out]);
        bad += usize::from(!same);
    }
    for _ in 0..300 {
        let (m, n, k) = (4 + pick(18), 1 + pick(9), 1 + pick(24));
        let act = acts[pick(4)];
        if m * k > x.len() || n * k > w.len() || m * n > want.len() {
            continue;
        }
        // Column-major: the input `[k][m]`, the weights by step `[k][n]`, the output `[n][m]`.
        let p = MatMul {
            m,
            n,
            k,
            a_stride_m: 1,
            a_stride_k: m,
            b_stride_n: 1,
            b_stride_k: n,
            out_stride_m: 1,
            out_stride_n: m,
            act,
        };
        x[..m * k].iter_mut().for_each(|v| *v = value(&mut pick));
        w[..n * k].iter_mut().for_each(|v| *v = value(&mut pick));
        let (x, w) = (&x[..m * k], &w[..n * k]);
        bad += usize::from(!product_matches(&p, x, w, Some(&bias[..n]), want, got));
    }
    for i in 0..300 {
        // Fully connected: rows of the input against rows of the weights, each activation in
        // turn, every fifth without a bias (by the loop's count: the random sequence stays the one the checks after
        // this were written for).
        let (m, n, k) = (1 + pick(3), 1 + pick(13), 1 + pick(70));
        if m * k > x.len() || n * k > w.len() || m * n > want.len() {
            continue;
        }
        let p = MatMul {
            m,
            n,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n: k,
            b_stride_k: 1,
            out_stride_m: n,
            out_stride_n: 1,
            act: acts[i % 4],
        };
        x[..m * k].iter_mut().for_each(|v| *v = value(&mut pick));
        w[..n * k].iter_mut().for_each(|v| *v = value(&mut pick));
        let (x, w) = (&x[..m * k], &w[..n * k]);
        // Every fifth layer without a bias (its sums from zero).
        let b = Some(&bias[..n]).filter(|_| i % 5 != 4);
        bad += usize::from(!product_matches(&p, x, w, b, want, got));
    }
    for _ in 0..300 {
        // 3×3 depthwise, whole and with its first rows kept apart (a streamed stage's split
        // window), against a scalar loop over the taps inside the input in order.
        let (ch, stride, pad) = (1 + pick(6), 1 + pick(2), pick(2));
        let (in_h, in_w) = (3 + pick(6), 3 + pick(20));
        let act = acts[pick(4)];
        let window = Window2d::uniform(in_h, in_w, 3, 3, stride, 1, pad);
        let p = Conv2d {
            batch: 1,
            in_c: ch,
            out_c: ch,
            groups: ch,
            window,
            act,
        };
        let (n_in, n_out) = (ch * in_h * in_w, ch * window.out_h * window.out_w);
        if n_in > x.len() || n_out > want.len() {
            continue;
        }
        x[..n_in].iter_mut().for_each(|v| *v = value(&mut pick));
        w[..ch * 9].iter_mut().for_each(|v| *v = value(&mut pick));
        let (oh, ow) = (window.out_h, window.out_w);
        for c in 0..ch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias[c];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if (0..in_h as isize).contains(&iy) && (0..in_w as isize).contains(&ix)
                            {
                                let v = x[(c * in_h + iy as usize) * in_w + ix as usize];
                                s += w[c * 9 + ky * 3 + kx] * v;
                            }
                        }
                    }
                    want[(c * oh + oy) * ow + ox] = act.apply(s);
                }
            }
        }
        got[..n_out].fill(f32::NAN);
        conv::conv2d(&p, &x[..n_in], &w[..ch * 9], Some(&bias[..ch]), &mut got[..n_out]);
        let mut same = same_bits(&want[..n_out], &got[..n_out]);
        // The same input with each channel's first `held` rows in a kept buffer (the first
        // `ch · held` rows of `packed`) and the rest after it.
        let held = pick(in_h + 1);
        let (fresh, k_len) = (in_h - held, ch * held * in_w);
        if n_in <= packed.len() {
            for c in 0..ch {
                for r in 0..in_h {
                    let dst = if r < held {
                        (c * held + r) * in_w
                    } else {
                        k_len + (c * fresh + r - held) * in_w
                    };
                    packed[dst..dst + in_w].copy_from_slice(&x[(c * in_h + r) * in_w..][..in_w]);
                }
            }
            let (kept, input) = packed[..n_in].split_at(k_len);
            got[..n_out].fill(f32::NAN);
            conv::conv2d_depthwise_split(
                &p,
                kept,
                input,
                &w[..ch * 9],
                Some(&bias[..ch]),
                &mut [],
                &mut got[..n_out],
            );
            same &= same_bits(&want[..n_out], &got[..n_out]);
        }
        bad += usize::from(!same);
    }
    hprintln!(
        "f32 tiles: 1200 random layers against the reference loops: {}",
        if bad == 0 { "same bits" } else { "MISMATCH" }
    );
    bad == 0
}

/// Whether two f32 slices hold the same bits (NaN payloads and zero signs included).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// `gemm::matmul` of `p` against a scalar loop over its strides (each output its bias plus
/// the products in order of `k`, then the activation), bit for bit.
fn product_matches(
    p: &microarena::kernels::gemm::MatMul,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    want: &mut [f32],
    got: &mut [f32],
) -> bool {
    let len = (p.m - 1) * p.out_stride_m + (p.n - 1) * p.out_stride_n + 1;
    for i in 0..p.m {
        for j in 0..p.n {
            let mut s = bias.map_or(0.0, |b| b[j]);
            for t in 0..p.k {
                s += w[j * p.b_stride_n + t * p.b_stride_k] * x[i * p.a_stride_m + t * p.a_stride_k];
            }
            want[i * p.out_stride_m + j * p.out_stride_n] = p.act.apply(s);
        }
    }
    got[..len].fill(f32::NAN);
    microarena::kernels::gemm::matmul(p, x, w, bias, &mut got[..len]);
    same_bits(&want[..len], &got[..len])
}
