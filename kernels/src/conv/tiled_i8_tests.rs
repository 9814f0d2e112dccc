//! Tests of the tiled int8 convolution (`tiled_i8.rs`): against the reference kernel, with
//! float and fixed-point scales, the x86 paths, and the named code paths.

extern crate std;
use super::*;
use crate::quant::{FixedPoint, Requant, TwoRoundings};
use crate::scale::{Q31Once, Q31Twice};
use std::vec;
use std::vec::Vec;

/// The flattened AVX-512 int8 convolution (run where the CPU has AVX-512BW; with VNNI
/// in a build that enables it) against the reference kernel, byte for byte: random
/// geometries with 2 to 40 input channels (odd ones too), 1 to 21 output channels
/// (pairs of quads, a quad alone, pairs, an odd last one), rows of 1 to 24 pixels,
/// strides 1 to 3, dilations, uneven padding, with and without a bias, two images.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_flat_int8_equals_the_reference() {
    if cfg!(miri) || !std::is_x86_feature_detected!("avx512bw") {
        return;
    }
    let mut next = crate::xorshift(0x51ed_270b);
    for case in 0..160 {
        let (k_h, k_w) = [(3, 3), (1, 1), (10, 4), (3, 1), (2, 3)][case % 5];
        let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
        let (in_h, in_w) = (k_h * dil_h + next(10), k_w * dil_w + next(20));
        let (pad_top, pad_left) = (next(k_h), next(k_w));
        let geom = Conv2d {
            batch: 2,
            in_c: 2 + next(if case % 4 == 0 { 39 } else { 7 }),
            out_c: 1 + next(21),
            groups: 1,
            window: crate::window(
                (in_h, in_w),
                (k_h, k_w),
                (1 + next(3), 1 + next(3)),
                (dil_h, dil_w),
                [pad_top, pad_left, pad_top + next(2), pad_left + next(2)],
            ),
            act: Activation::Identity,
        };
        let Some(f) = x86::flat_i8(&geom) else {
            continue;
        };
        let p = ConvI8 {
            geom,
            input_zero: next(256) as i32 - 128,
            output_zero: next(41) as i32 - 20,
            lo: if case % 3 == 0 { -10 } else { -128 },
            hi: 127,
        };
        let mut byte = || next(256) as u8 as i8;
        let x: Vec<i8> = (0..2 * geom.in_c * in_h * in_w).map(|_| byte()).collect();
        // Symmetric int8 weights (−127..=127), as quantizers write them.
        let w: Vec<i8> = (0..geom.out_c * geom.in_c * k_h * k_w)
            .map(|_| byte().max(-127))
            .collect();
        let bias: Vec<i32> = (0..geom.out_c)
            .map(|_| next(20001) as i32 - 10000)
            .collect();
        let bias = (case % 2 == 0).then_some(&bias[..]);
        let rq: Vec<Requant> = (0..geom.out_c)
            .map(|_| Requant::from_real(0.0005 + 0.00001 * next(300) as f64))
            .collect();
        let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
        let n = 2 * geom.out_c * geom.window.out_h * geom.window.out_w;
        let mut want = vec![0i8; n];
        conv2d_i8(&p, &x, &w, bias, &rq, &mut want);
        let packed: Vec<i8> = pack_tiled_weights(&geom, &w).collect();
        let mut got = vec![0x55i8; n];
        // SAFETY: the CPU has AVX-512BW (checked above); the operands are `p`'s.
        unsafe { x86::conv2d_i8_flat(&p, &f, &x, &packed, bias, &scales, &mut got) };
        assert_eq!(got, want, "case {case} {geom:?}");
    }
}

/// The Cortex-M pairing (`dot_4x2_block`: `SMLAD` of the packed word into the second
/// channel's sum, of its `SXTB16` into the first's, the second recovered as
/// `(paired − first) >> 8`), emulated with 32-bit wrapping sums, recovers both channels'
/// sums exactly up to the limit [`tiled_weights_fit`] sets, and `tiled_weights_fit` says
/// no just past it and for a −128 that would leave the halfword's range.
#[test]
fn paired_sums_are_exact_up_to_the_fit_limit() {
    let smlad = |acc: i32, a: u32, b: u32| {
        let lo = i32::from(a as u16 as i16) * i32::from(b as u16 as i16);
        let hi = i32::from((a >> 16) as u16 as i16) * i32::from((b >> 16) as u16 as i16);
        acc.wrapping_add(lo).wrapping_add(hi)
    };
    let sxtb16 = |a: u32| {
        (a as u8 as i8 as i16 as u16 as u32)
            | u32::from(((a >> 16) as u8 as i8) as i16 as u16) << 16
    };
    // 1×1 convolution of 258 input channels, 2 output channels: the second channel's
    // weights all −127 and the input all −128 with zero point 127 (x − zero = −255), so
    // Σ x·w = 258 · 255 · 127 = 8,355,330, just under 2^23 = 8,388,608 with a bias.
    let geom = Conv2d {
        batch: 1,
        in_c: 258,
        out_c: 2,
        groups: 1,
        window: Window2d::uniform(1, 1, 1, 1, 1, 1, 0),
        act: Activation::Identity,
    };
    let first: Vec<i8> = (0..258).map(|k| [-127, 127, -1, 0, 77][k % 5]).collect();
    let w: Vec<i8> = first.iter().copied().chain([-127i8; 258]).collect();
    let bias = [-1_000_000, 33_000];
    assert!(tiled_weights_fit(&geom, &w, Some(&bias), 127));
    assert!(!tiled_weights_fit(&geom, &w, Some(&[0, 34_000]), 127));
    let packed: Vec<i8> = pack_tiled_weights(&geom, &w).collect();
    let depth = tiled_depth(&geom);
    let x = vec![-255i16; depth];
    let (mut a, mut paired) = (bias[0], bias[0].wrapping_add(bias[1] << 8));
    for (word, xs) in packed.chunks_exact(4).zip(x.chunks_exact(2)) {
        let word = u32::from_le_bytes(core::array::from_fn(|i| word[i] as u8));
        let xw = u32::from(xs[0] as u16) | u32::from(xs[1] as u16) << 16;
        paired = smlad(paired, word, xw);
        a = smlad(a, sxtb16(word), xw);
    }
    let want = |c: usize| {
        let s: i32 = (0..258).map(|k| i32::from(w[c * 258 + k]) * -255).sum();
        bias[c] + s
    };
    assert_eq!(a, want(0));
    assert_eq!(paired.wrapping_sub(a) >> 8, want(1));
    assert_eq!(want(1), 8_355_330 + 33_000);
    // A second weight of −128 beside a negative first leaves the i16 range.
    let mut bad = w.clone();
    bad[258] = -128;
    assert!(!tiled_weights_fit(&geom, &bad, None, 0));
    bad[0] = 5;
    assert!(tiled_weights_fit(&geom, &bad[..], None, 0));
}

/// The tiled kernel equals the reference one bit for bit: strides, pads, dilations, odd
/// channel counts and pixel counts, 1×1 and rectangular kernels.
/// A dense layer's parameters as a constant (its variant is worked out at compile time).
const fn layer(in_c: usize, out_c: usize, in_w: usize, k: usize, stride: usize, hi: i8) -> ConvI8 {
    ConvI8 {
        geom: Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups: 1,
            window: Window2d::uniform(5, in_w, k, k, stride, 1, k / 2),
            act: Activation::Identity,
        },
        input_zero: -3,
        output_zero: 2,
        lo: -128,
        hi,
    }
}

/// The kernel compiled for a layer's own variant computes what the run-time choice does:
/// each im2col class (1×1 side by side, with an odd plane's last pixel alone; one and
/// three channels flattened, narrow ones with their padding written out; other windows),
/// with and without a clamp, even and odd numbers of 8-step halves.
#[test]
fn named_variants_equal_the_run_time_choice() {
    macro_rules! check {
        ($($in_c:literal, $out_c:literal, $in_w:literal, $k:literal, $s:literal, $hi:literal);*) => {$({
            const P: ConvI8 = layer($in_c, $out_c, $in_w, $k, $s, $hi);
            let g = P.geom;
            let n_in = $in_c * 5 * $in_w;
            let x: Vec<i8> = (0..n_in).map(|i| (i * 41 % 253) as i8).collect();
            let w: Vec<i8> = (0..$out_c * $in_c * $k * $k)
                .map(|i| ((i * 29 % 251) as i8).max(-127))
                .collect();
            let bias: Vec<i32> = (0..$out_c).map(|c| c * 31 - 90).collect();
            let scales: Vec<f32> = (0..$out_c).map(|c| 0.002 + 0.0003 * c as f32).collect();
            let packed: Vec<i8> = pack_tiled_weights(&g, &w).collect();
            let mut scratch = vec![0i16; tiled_scratch_len(&g)];
            let n = $out_c * g.window.out_h * g.window.out_w;
            let (mut want, mut got) = (vec![0i8; n], vec![1i8; n]);
            let b = Some(&bias[..]);
            conv2d_i8_tiled(&P, &x, &packed, b, &scales, &mut scratch, &mut want);
            conv2d_i8_tiled_as::<_, { tiled_variant(&P) }>(
                &P, &x, &packed, b, &scales, &mut scratch, &mut got,
            );
            assert_eq!(got, want, "{}", tiled_variant(&P));
        })*};
    }
    check!(
        4, 6, 5, 1, 1, 127; 6, 4, 7, 1, 1, 100; 8, 4, 4, 1, 1, 127;
        1, 5, 6, 3, 1, 127; 3, 4, 7, 3, 2, 90; 1, 5, 20, 3, 1, 127; 3, 4, 21, 3, 2, 127;
        5, 6, 6, 3, 1, 127; 16, 8, 5, 3, 1, 110; 6, 4, 8, 1, 2, 127
    );
    // Every class and both values of each bit came up.
    let variants = [
        tiled_variant(&layer(4, 6, 5, 1, 1, 127)),
        tiled_variant(&layer(6, 4, 7, 1, 1, 100)),
        tiled_variant(&layer(1, 5, 6, 3, 1, 127)),
        tiled_variant(&layer(1, 5, 20, 3, 1, 127)),
        tiled_variant(&layer(5, 6, 6, 3, 1, 127)),
        tiled_variant(&layer(16, 8, 5, 3, 1, 110)),
    ];
    for class in [
        IM2COL_SIDE_BY_SIDE,
        IM2COL_FLATTENED,
        IM2COL_WINDOWS,
        IM2COL_FLAT_PADDED,
    ] {
        assert!(variants.iter().any(|v| v >> 4 == class), "class {class}");
    }
    for bit in [TILED_ODD, TILED_PAIR, TILED_CLAMP, TILED_HALF] {
        assert!(variants.iter().any(|v| v & bit != 0), "bit {bit} set");
        assert!(variants.iter().any(|v| v & bit == 0), "bit {bit} clear");
    }
}

/// A variant that is not the parameters' own is refused.
#[test]
#[should_panic(expected = "the variant is the parameters' own")]
fn another_layers_variant_panics() {
    const P: ConvI8 = layer(4, 6, 5, 1, 1, 127);
    let q = layer(4, 6, 5, 3, 1, 127);
    let mut scratch = vec![0i16; tiled_scratch_len(&q.geom)];
    let packed = vec![0i8; tiled_weights_len(&q.geom)];
    let (x, mut y) = (vec![0i8; 100], vec![0i8; 150]);
    conv2d_i8_tiled_as::<_, { tiled_variant(&P) }>(
        &q,
        &x,
        &packed,
        None,
        &[1.0f32; 6],
        &mut scratch,
        &mut y,
    );
}

#[test]
fn tiled_equals_reference() {
    /// in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, dilation
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    );
    let cases: &[Case] = &[
        (3, 4, 7, 6, 3, 3, 1, 1, 1),
        (5, 3, 9, 5, 3, 3, 2, 1, 1),
        (1, 6, 11, 4, 5, 2, 2, 2, 1),
        (1, 5, 9, 7, 3, 3, 1, 1, 1),
        (4, 5, 8, 8, 1, 1, 1, 0, 1),
        (2, 2, 9, 9, 3, 3, 1, 2, 2),
        (7, 1, 3, 3, 3, 3, 1, 1, 1),
        (6, 9, 5, 5, 1, 1, 1, 0, 1),
        (3, 8, 4, 7, 1, 1, 1, 0, 1),
        (5, 6, 7, 7, 1, 1, 2, 0, 1),
    ];
    let cases = if cfg!(miri) { &cases[..2] } else { cases };
    let mut seed = 99u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 56) as i8
    };
    for &(in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, dil) in cases {
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups: 1,
            window: Window2d::uniform(in_h, in_w, k_h, k_w, stride, dil, pad),
            act: Activation::Identity,
        };
        let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
        let p = ConvI8 {
            geom,
            input_zero: -3,
            output_zero: 2,
            lo: -100,
            hi: 120,
        };
        let x: Vec<i8> = (0..in_c * in_h * in_w).map(|_| next()).collect();
        let w: Vec<i8> = (0..out_c * in_c * k_h * k_w)
            .map(|_| next().max(-127))
            .collect();
        let bias: Vec<i32> = (0..out_c).map(|c| c as i32 * 97 - 200).collect();
        assert!(tiled_weights_fit(&geom, &w, Some(&bias), p.input_zero));
        let rq: Vec<Requant> = (0..out_c)
            .map(|c| Requant::from_real(0.003 + 0.0004 * c as f64))
            .collect();
        let n = out_c * out_h * out_w;
        let mut want = vec![0i8; n];
        conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut want);
        let packed: Vec<i8> = pack_tiled_weights(&geom, &w).collect();
        assert_eq!(packed.len(), tiled_weights_len(&geom));
        let mut scratch = vec![0x5a5a_i16; tiled_scratch_len(&geom)];
        let mut got = vec![0i8; n];
        let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
        conv2d_i8_tiled(
            &p,
            &x,
            &packed,
            Some(&bias),
            &scales,
            &mut scratch,
            &mut got,
        );
        assert_eq!(
            got, want,
            "{in_c}->{out_c} {k_h}x{k_w} s{stride} p{pad} d{dil}"
        );
        // TFLite's fixed point, both roundings, against the reference kernel's.
        let fp: Vec<FixedPoint> = (0..out_c)
            .map(|c| FixedPoint::from_real(0.003 + 0.0004 * c as f64))
            .collect();
        let (pz, q31) = super::testing::folded(&p, &fp);
        let twice: Vec<TwoRoundings> = fp.iter().map(|&f| TwoRoundings(f)).collect();
        let b = Some(&bias[..]);
        conv2d_i8(&p, &x, &w, b, &twice, &mut want);
        let fast: Vec<Q31Twice> = q31.iter().map(|&q| Q31Twice(q)).collect();
        conv2d_i8_tiled(&pz, &x, &packed, b, &fast, &mut scratch, &mut got);
        assert_eq!(got, want, "two roundings: {in_c}->{out_c} {k_h}x{k_w}");
        conv2d_i8(&p, &x, &w, b, &fp, &mut want);
        let fast: Vec<Q31Once> = q31.iter().map(|&q| Q31Once(q)).collect();
        conv2d_i8_tiled(&pz, &x, &packed, b, &fast, &mut scratch, &mut got);
        assert_eq!(got, want, "one rounding: {in_c}->{out_c} {k_h}x{k_w}");
    }
}

/// One- and three-channel first layers (the flattened im2col) whose windows cross the
/// border on every side, dilated and strided, against the reference kernel: on wide inputs
/// the border windows' columns inside the input are worked out once per pixel
/// (`border_windows`), narrow ones copy their input with the padding written out
/// (`flat_padded`).
#[test]
fn flattened_border_windows_equal_the_reference() {
    let mut next = crate::xorshift(0x0b0d_e125);
    let (mut border, mut padded, mut gathered) = (0, 0, 0);
    // Under Miri (slow: CI's time) eight cases, the five kernel shapes and both channel
    // counts among them.
    let cases = if cfg!(miri) { 8 } else { 300 };
    for case in 0..cases {
        let in_c = [1, 3][case % 2];
        let (k_h, k_w) = [(3, 3), (10, 4), (1, 5), (4, 2), (2, 3)][case / 2 % 5];
        let (dil_h, dil_w) = (1 + next(3), 1 + next(3));
        // A third of the inputs wide (few columns' windows reach into the padding).
        let in_w = if case % 3 == 2 {
            24 + next(20)
        } else {
            1 + next(12)
        };
        let in_h = 1 + next(12);
        let mut pads = [
            next(k_h * dil_h),
            next(k_w * dil_w),
            next(k_h * dil_h),
            next(k_w * dil_w),
        ];
        if in_w > 12 {
            // Wide inputs padded by a column or two (their border windows gathered).
            (pads[1], pads[3]) = (1, next(2));
        }
        let stride = (1 + next(3), 1 + next(3));
        let fits = |n: usize, k: usize, d: usize, a: usize, b: usize| n + a + b > d * (k - 1);
        if !fits(in_h, k_h, dil_h, pads[0], pads[2]) || !fits(in_w, k_w, dil_w, pads[1], pads[3]) {
            continue;
        }
        let window = crate::window((in_h, in_w), (k_h, k_w), stride, (dil_h, dil_w), pads);
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c: 1 + next(6),
            groups: 1,
            window,
            act: Activation::Identity,
        };
        if !flattened(&geom) {
            continue;
        }
        border += usize::from(pads.iter().any(|&p| p > 0));
        padded += usize::from(flat_padded(&geom));
        gathered += usize::from(!flat_padded(&geom) && pads[1] + pads[3] > 0);
        let p = ConvI8 {
            geom,
            input_zero: next(256) as i32 - 128,
            output_zero: next(41) as i32 - 20,
            lo: -128,
            hi: 127,
        };
        let x: Vec<i8> = (0..in_c * in_h * in_w)
            .map(|_| next(256) as u8 as i8)
            .collect();
        let w: Vec<i8> = (0..geom.out_c * in_c * k_h * k_w)
            .map(|_| (next(256) as u8 as i8).max(-127))
            .collect();
        let bias: Vec<i32> = (0..geom.out_c).map(|_| next(2001) as i32 - 1000).collect();
        let requant: Vec<Requant> = (0..geom.out_c)
            .map(|c| Requant::from_f32(0.004 + 0.001 * c as f32))
            .collect();
        let scales: Vec<f32> = requant.iter().map(|r| r.scale()).collect();
        let n = geom.out_c * window.out_h * window.out_w;
        let (mut want, mut got) = (vec![0i8; n], vec![1i8; n]);
        conv2d_i8(&p, &x, &w, Some(&bias), &requant, &mut want);
        let packed: Vec<i8> = pack_tiled_weights(&geom, &w).collect();
        let mut scratch = vec![0i16; tiled_scratch_len(&geom)];
        conv2d_i8_tiled(
            &p,
            &x,
            &packed,
            Some(&bias),
            &scales,
            &mut scratch,
            &mut got,
        );
        assert_eq!(got, want, "{in_c} channels, {window:?}");
    }
    assert!(border > cases / 2, "{border} cases with padding");
    // Both ways of reading windows that reach into the left or right padding came up.
    assert!(
        padded > 0 && gathered > 0,
        "{padded} padded, {gathered} gathered"
    );
}

/// The closed form of the border columns (which decides `flat_padded`) counts what a walk
/// over the output columns counts, on random geometries.
#[test]
fn border_columns_match_a_count() {
    let mut next = crate::xorshift(0x00c0_1b0d);
    let cases = if cfg!(miri) { 50 } else { 5000 };
    for _ in 0..cases {
        let (k_w, dil_w, stride) = (1 + next(5), 1 + next(3), 1 + next(3));
        let (in_w, pad_left, pad_right) = (1 + next(40), next(6), next(6));
        let span = (k_w - 1) * dil_w + 1;
        if pad_left + in_w + pad_right < span {
            continue;
        }
        let w = crate::window(
            (1, in_w),
            (1, k_w),
            (1, stride),
            (1, dil_w),
            [0, pad_left, 0, pad_right],
        );
        let count = (0..w.out_w)
            .filter(|x| x * stride < pad_left || x * stride + span > pad_left + in_w)
            .count();
        assert_eq!(border_columns(&w), count, "{w:?}");
    }
}
