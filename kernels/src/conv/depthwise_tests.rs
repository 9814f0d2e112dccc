//! Tests of the int8 depthwise convolution (`depthwise.rs`): against the reference kernel,
//! split windows, the named code paths.

extern crate std;
use super::*;
use crate::quant::Requant;
use std::vec;
use std::vec::Vec;

use crate::quant::{FixedPoint, TwoRoundings};
use crate::scale::{Q31Once, Q31Twice};

/// A layer of `ch` channels on 5×`in_w` rows, 3×3 at `stride`, its inputs, packed
/// weights and float scales.
#[allow(clippy::type_complexity)]
fn small_layer(
    ch: usize,
    in_w: usize,
    stride: usize,
    lo: i8,
) -> (ConvI8, Vec<i8>, Vec<i8>, Vec<f32>) {
    let p = small_layer_params(ch, in_w, stride, lo);
    let geom = p.geom;
    let x = (0..ch * 5 * in_w).map(|i| (i * 37 % 251) as i8).collect();
    let w: Vec<i8> = (0..ch * 9).map(|i| (i * 53 % 199) as i8).collect();
    let packed = pack_depthwise_weights(&geom, &w).collect();
    let scales = (0..ch).map(|c| 0.003 + 0.0005 * c as f32).collect();
    (p, x, packed, scales)
}

/// The kernel compiled for a layer's own variant computes what the run-time choice does,
/// for each kernel geometry, clamp and row parity.
#[test]
fn named_variants_equal_the_run_time_choice() {
    macro_rules! check {
        ($($ch:literal, $in_w:literal, $stride:literal, $lo:literal);*) => {$({
            const P: ConvI8 = small_layer_params($ch, $in_w, $stride, $lo);
            let (p, x, packed, scales) = small_layer($ch, $in_w, $stride, $lo);
            let n = $ch * p.geom.window.out_h * p.geom.window.out_w;
            let bias: Vec<i32> = (0..$ch).map(|c| c * 40 - 70).collect();
            let mut scratch = vec![0i16; depthwise_scratch_len(&p.geom) / 2];
            let (mut want, mut got) = (vec![0i8; n], vec![1i8; n]);
            conv2d_i8_depthwise(&p, &x, &packed, Some(&bias), &scales, &mut scratch, &mut want);
            conv2d_i8_depthwise_split_as::<_, { depthwise_variant(&P) }>(
                &p, &[], &x, &packed, Some(&bias), &scales, &mut scratch, &mut got,
            );
            assert_eq!(got, want, "{} {} {} {}", $ch, $in_w, $stride, $lo);
            // The same variant in the body shared by several (no row-copy class).
            let mut shared = vec![1i8; n];
            conv2d_i8_depthwise_split_as::<_, { depthwise_variant(&P) & !DW_ROWS | DW_SHARED }>(
                &p, &[], &x, &packed, Some(&bias), &scales, &mut scratch, &mut shared,
            );
            assert_eq!(shared, want, "shared: {} {} {} {}", $ch, $in_w, $stride, $lo);
        })*};
    }
    // Rows of 1 to 9 bytes (short; 9: long), 12 (long: whole words, but under 16) and
    // 16 and 20 (whole words).
    check!(2, 6, 1, -128; 2, 7, 1, -128; 2, 6, 1, -100; 2, 7, 1, -100;
           3, 8, 2, -128; 3, 9, 2, -100; 2, 1, 1, -128; 2, 12, 1, -128;
           2, 16, 1, -100; 3, 20, 2, -128);
    assert_eq!(
        [6, 9, 12, 16, 20].map(rows_class),
        [
            DW_ROWS_SHORT,
            DW_ROWS_LONG,
            DW_ROWS_LONG,
            DW_ROWS_WORDS,
            DW_ROWS_WORDS
        ]
    );
}

/// `small_layer`'s parameters as a constant (a variant is worked out at compile time).
const fn small_layer_params(ch: usize, in_w: usize, stride: usize, lo: i8) -> ConvI8 {
    ConvI8 {
        geom: Conv2d {
            batch: 1,
            in_c: ch,
            out_c: ch,
            groups: ch,
            window: Window2d::uniform(5, in_w, 3, 3, stride, 1, 1),
            act: Activation::Identity,
        },
        input_zero: 3,
        output_zero: -2,
        lo,
        hi: 127,
    }
}

/// A variant that is not the parameters' own is refused (it would run another layer's
/// code).
#[test]
#[should_panic(expected = "the variant is the parameters' own")]
fn another_layers_variant_panics() {
    const P: ConvI8 = small_layer_params(2, 7, 1, -128);
    let (p, x, packed, scales) = small_layer(2, 6, 1, -128);
    let n = 2 * p.geom.window.out_h * p.geom.window.out_w;
    let mut scratch = vec![0i16; depthwise_scratch_len(&p.geom) / 2];
    let mut got = vec![0i8; n];
    conv2d_i8_depthwise_split_as::<_, { depthwise_variant(&P) }>(
        &p,
        &[],
        &x,
        &packed,
        None,
        &scales,
        &mut scratch,
        &mut got,
    );
}

/// Bit for bit the reference kernel: 3×3 stride 1 (the fast path), strides, dilations,
/// paddings, rectangular kernels, odd widths.
#[test]
fn depthwise_equals_reference() {
    /// channels, in_h, in_w, k_h, k_w, stride, pad, dilation
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);
    let cases: &[Case] = &[
        (3, 6, 5, 3, 3, 1, 1, 1),
        (2, 7, 8, 3, 3, 2, 1, 1),
        (4, 5, 5, 3, 3, 1, 0, 1),
        (2, 9, 7, 3, 3, 1, 2, 2),
        (3, 6, 9, 5, 2, 1, 1, 1),
        (1, 4, 3, 3, 3, 1, 1, 1),
        (3, 9, 9, 3, 3, 2, 1, 1),
        (2, 6, 7, 3, 3, 2, 0, 1),
        (2, 5, 4, 3, 3, 2, 1, 1),
        (2, 8, 10, 3, 3, 2, 1, 2),
    ];
    let cases = if cfg!(miri) { &cases[..2] } else { cases };
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 56) as i8
    };
    for &(ch, in_h, in_w, k_h, k_w, stride, pad, dil) in cases {
        let geom = Conv2d {
            batch: 1,
            in_c: ch,
            out_c: ch,
            groups: ch,
            window: Window2d::uniform(in_h, in_w, k_h, k_w, stride, dil, pad),
            act: Activation::Identity,
        };
        let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
        let p = ConvI8 {
            geom,
            input_zero: 6,
            output_zero: -3,
            lo: -120,
            hi: 127,
        };
        let x: Vec<i8> = (0..ch * in_h * in_w).map(|_| next()).collect();
        let w: Vec<i8> = (0..ch * k_h * k_w).map(|_| next()).collect();
        let bias: Vec<i32> = (0..ch).map(|c| c as i32 * 51 - 80).collect();
        let rq: Vec<Requant> = (0..ch)
            .map(|c| Requant::from_real(0.004 + 0.0007 * c as f64))
            .collect();
        let n = ch * out_h * out_w;
        let mut want = vec![0i8; n];
        conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut want);
        let packed: Vec<i8> = pack_depthwise_weights(&geom, &w).collect();
        assert_eq!(packed.len(), depthwise_weights_len(&geom));
        let mut scratch = vec![0x1234_i16; depthwise_scratch_len(&geom) / 2];
        let mut got = vec![0i8; n];
        let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
        conv2d_i8_depthwise(
            &p,
            &x,
            &packed,
            Some(&bias),
            &scales,
            &mut scratch,
            &mut got,
        );
        assert_eq!(got, want, "{ch}ch {k_h}x{k_w} s{stride} p{pad} d{dil}");
        // TFLite's fixed point, both roundings, against the reference kernel's.
        let fp: Vec<FixedPoint> = (0..ch)
            .map(|c| FixedPoint::from_real(0.004 + 0.0007 * c as f64))
            .collect();
        let (pz, q31) = super::testing::folded(&p, &fp);
        let twice: Vec<TwoRoundings> = fp.iter().map(|&f| TwoRoundings(f)).collect();
        conv2d_i8(&p, &x, &w, Some(&bias), &twice, &mut want);
        let fast: Vec<Q31Twice> = q31.iter().map(|&q| Q31Twice(q)).collect();
        let b = Some(&bias[..]);
        conv2d_i8_depthwise(&pz, &x, &packed, b, &fast, &mut scratch, &mut got);
        assert_eq!(got, want, "two roundings: {ch}ch {k_h}x{k_w} s{stride}");
        conv2d_i8(&p, &x, &w, Some(&bias), &fp, &mut want);
        let fast: Vec<Q31Once> = q31.iter().map(|&q| Q31Once(q)).collect();
        conv2d_i8_depthwise(&pz, &x, &packed, b, &fast, &mut scratch, &mut got);
        assert_eq!(got, want, "one rounding: {ch}ch {k_h}x{k_w} s{stride}");
        conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut want);
        // The AVX2 plane kernel (the host's path in builds with AVX2) on channel 0's
        // padded plane, wherever the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        if !cfg!(miri) && std::is_x86_feature_detected!("avx2") && stride <= 2 {
            let row = depthwise_row(&geom);
            let mut padded = vec![6i8; depthwise_scratch_len(&geom)];
            for y in 0..in_h {
                padded[(pad + y) * row + pad..][..in_w].copy_from_slice(&x[y * in_w..][..in_w]);
            }
            let mut taps = [0i32; 64];
            for (t, &v) in taps.iter_mut().zip(&w[..k_h * k_w]) {
                *t = i32::from(v);
            }
            let mut plane = vec![0i8; out_h * out_w];
            // SAFETY: the CPU has AVX2 (checked); the plane is laid out as the kernel's.
            unsafe {
                x86::depthwise_i8_plane(&p, &padded, row, &taps, bias[0], scales[0], &mut plane)
            };
            assert_eq!(
                plane,
                want[..out_h * out_w],
                "avx2: {k_h}x{k_w} s{stride} d{dil}"
            );
        }
        // The same rows in two places: the first `kept` of each channel in a buffer of
        // their own (every split, none to all).
        for kept in 0..=in_h {
            let (head, tail): (Vec<i8>, Vec<i8>) = (
                x.chunks(in_h * in_w)
                    .flat_map(|plane| plane[..kept * in_w].to_vec())
                    .collect(),
                x.chunks(in_h * in_w)
                    .flat_map(|plane| plane[kept * in_w..].to_vec())
                    .collect(),
            );
            let mut split = vec![0i8; n];
            conv2d_i8_depthwise_split(
                &p,
                &head,
                &tail,
                &packed,
                Some(&bias),
                &scales,
                &mut scratch,
                &mut split,
            );
            assert_eq!(
                split, want,
                "{ch}ch {k_h}x{k_w} s{stride}, {kept} rows kept"
            );
        }
    }
}
