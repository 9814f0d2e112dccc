//! Softmax and LogSoftmax along one axis.

/// The input is viewed as `outer × len × inner`; the softmax runs along `len`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// Product of the axes before the softmax axis.
    pub outer: usize,
    /// Length of the softmax axis.
    pub len: usize,
    /// Product of the axes after it.
    pub inner: usize,
    /// LogSoftmax instead of Softmax.
    pub log: bool,
}

/// Numerically stable (max-subtracted) softmax.
pub fn softmax(p: &Softmax, input: &[f32], output: &mut [f32]) {
    assert!(input.len() >= p.outer * p.len * p.inner && output.len() >= p.outer * p.len * p.inner);
    for o in 0..p.outer {
        for i in 0..p.inner {
            let at = |l: usize| (o * p.len + l) * p.inner + i;
            let mut max = f32::NEG_INFINITY;
            for l in 0..p.len {
                max = max.max(input[at(l)]);
            }
            let mut sum = 0.0;
            for l in 0..p.len {
                let e = libm::expf(input[at(l)] - max);
                sum += e;
                if !p.log {
                    output[at(l)] = e;
                }
            }
            if p.log {
                let lse = libm::logf(sum);
                for l in 0..p.len {
                    output[at(l)] = input[at(l)] - max - lse;
                }
            } else {
                let inv = 1.0 / sum;
                for l in 0..p.len {
                    output[at(l)] *= inv;
                }
            }
        }
    }
}

/// [`softmax`] with the output written over the input: every element is read before it is
/// overwritten (the max and the sum read all of a row first; each write reads its own index).
pub fn softmax_in_place(p: &Softmax, io: &mut [f32]) {
    assert!(io.len() >= p.outer * p.len * p.inner);
    for o in 0..p.outer {
        for i in 0..p.inner {
            let at = |l: usize| (o * p.len + l) * p.inner + i;
            let mut max = f32::NEG_INFINITY;
            for l in 0..p.len {
                max = max.max(io[at(l)]);
            }
            let mut sum = 0.0;
            for l in 0..p.len {
                let e = libm::expf(io[at(l)] - max);
                sum += e;
                if !p.log {
                    io[at(l)] = e;
                }
            }
            if p.log {
                let lse = libm::logf(sum);
                for l in 0..p.len {
                    io[at(l)] = io[at(l)] - max - lse;
                }
            } else {
                let inv = 1.0 / sum;
                for l in 0..p.len {
                    io[at(l)] *= inv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_to_one_and_log_agrees() {
        let x = [1.0f32, 2.0, 3.0, -1.0];
        let mut s = [0.0; 4];
        let mut l = [0.0; 4];
        let p = Softmax {
            outer: 1,
            len: 4,
            inner: 1,
            log: false,
        };
        softmax(&p, &x, &mut s);
        softmax(&Softmax { log: true, ..p }, &x, &mut l);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for i in 0..4 {
            assert!((libm::logf(s[i]) - l[i]).abs() < 1e-5);
        }
    }

    #[test]
    fn in_place_matches_out_of_place() {
        let x: [f32; 24] = core::array::from_fn(|i| (i as f32 * 0.61).sin() * 4.0);
        for log in [false, true] {
            // softmax over the middle axis of 2x3x4: strided rows.
            let p = Softmax {
                outer: 2,
                len: 3,
                inner: 4,
                log,
            };
            let mut want = [0.0; 24];
            softmax(&p, &x, &mut want);
            let mut io = x;
            softmax_in_place(&p, &mut io);
            assert_eq!(io, want, "log={log}");
        }
    }
}

/// Quantisation of an int8 softmax (see [`softmax_i8`]): a table of `exp(−d · in_scale)` in
/// Q16 for every int8 distance `d` below the row maximum (computed at compile time, so the
/// device does no float), and the output scale folded into a Q16 multiplier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxI8 {
    /// Geometry (its `log` must be false).
    pub geom: Softmax,
    /// `exp(−d · in_scale) · 2^16`, rounded, for `d` in 0..=255.
    pub exp_q16: [u32; 256],
    /// `2^16 / out_scale`, rounded.
    pub inv_out_scale_q16: u64,
    /// Output zero point.
    pub out_zero: i32,
}

impl SoftmaxI8 {
    /// The parameters for an int8 input of scale `in_scale` (its zero point cancels out) and
    /// an output of `(out_scale, out_zero)` (onnxruntime uses 1/256 and −128).
    pub fn new(geom: Softmax, in_scale: f32, out: (f32, i32)) -> SoftmaxI8 {
        assert!(!geom.log, "int8 log-softmax is not supported");
        SoftmaxI8 {
            geom,
            exp_q16: core::array::from_fn(|d| {
                let e = libm::exp(-(d as f64) * f64::from(in_scale));
                (e * 65536.0 + 0.5) as u32
            }),
            inv_out_scale_q16: (65536.0 / f64::from(out.0) + 0.5) as u64,
            out_zero: out.1,
        }
    }
}

/// Int8 softmax with integer arithmetic only: per row, `e_i = exp_q16[max − x_i]`, then
/// `out_i = round(e_i / Σ e · 1 / out_scale) + out_zero`, saturated to int8.
pub fn softmax_i8(p: &SoftmaxI8, input: &[i8], output: &mut [i8]) {
    let g = &p.geom;
    assert!(input.len() >= g.outer * g.len * g.inner && output.len() >= g.outer * g.len * g.inner);
    for o in 0..g.outer {
        for i in 0..g.inner {
            let at = |l: usize| (o * g.len + l) * g.inner + i;
            let mut max = i8::MIN;
            for l in 0..g.len {
                max = max.max(input[at(l)]);
            }
            let e = |l: usize| {
                u64::from(p.exp_q16[(i32::from(max) - i32::from(input[at(l)])) as usize])
            };
            let sum: u64 = (0..g.len).map(e).sum();
            for l in 0..g.len {
                // e / sum ≤ 1, times 2^16 / out_scale: fits u64 for any int8 row.
                let q = (e(l) * p.inv_out_scale_q16 + sum / 2) / sum;
                let q = (q + (1 << 15)) >> 16;
                output[at(l)] = (q as i64 + i64::from(p.out_zero)).clamp(-128, 127) as i8;
            }
        }
    }
}

/// Quantisation of TFLite's int8 softmax (its reference kernel, gemmlowp's fixed point; an
/// 8-bit output of scale 1/256 and zero point −128): the input difference to the row's
/// maximum scaled by `beta · in_scale` into Q5.26, `exp` of it in Q0.31, their sum in Q12.19,
/// its reciprocal by Newton–Raphson, each output rounded off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxQ31 {
    /// Geometry (its `log` must be false).
    pub geom: Softmax,
    /// `beta · in_scale · 2^26` as a Q31 multiplier ...
    pub input_multiplier: i32,
    /// ... and its left shift (TFLite's `PreprocessSoftmaxScaling`).
    pub input_left_shift: i32,
    /// Differences below this (in input steps) count as `exp` = 0.
    pub diff_min: i32,
}

/// Integer bits of the scaled differences (Q5.26).
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
/// Integer bits of the sum of exponentials (Q12.19).
const ACCUMULATION_INTEGER_BITS: i32 = 12;

impl SoftmaxQ31 {
    /// The parameters TFLite prepares for `beta` and an input scale `in_scale`.
    pub fn new(geom: Softmax, beta: f64, in_scale: f32) -> SoftmaxQ31 {
        assert!(!geom.log, "int8 log-softmax is not supported");
        let real =
            (beta * f64::from(in_scale) * f64::from(1u32 << (31 - SCALED_DIFF_INTEGER_BITS)))
                .min(2_147_483_647.0);
        let m = crate::quant::FixedPoint::from_real(real);
        // CalculateInputRadius: the largest difference whose scaled value fits Q5.26.
        let max_rescaled = f64::from((1 << SCALED_DIFF_INTEGER_BITS) - 1)
            * (1u64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64
            / (1u64 << m.shift.max(0)) as f64;
        SoftmaxQ31 {
            geom,
            input_multiplier: m.multiplier,
            input_left_shift: m.shift,
            diff_min: -(libm::floor(max_rescaled) as i32),
        }
    }
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<e>` for a positive `e`: a left shift,
/// saturating.
fn shl_saturating(x: i32, e: u32) -> i32 {
    let threshold = (1i32 << (31 - e)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << e
    }
}

use crate::quant::{
    rounding_divide_by_pot as rdbp, saturating_rounding_doubling_high_mul as srdhm,
};

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl` (Q0.31 in and out).
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(−1/8)
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28); // + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = rdbp(x4, 2);
    let poly = rdbp(
        srdhm(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        1,
    );
    CONSTANT_TERM.wrapping_add(srdhm(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values` of a Q5.26 value ≤ 0, in Q0.31.
fn exp_on_negative_values(a: i32) -> i32 {
    const FRACTIONAL_BITS: i32 = 31 - SCALED_DIFF_INTEGER_BITS;
    let one_quarter = 1i32 << (FRACTIONAL_BITS - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(shl_saturating(
        a_mod_quarter_minus_one_quarter,
        SCALED_DIFF_INTEGER_BITS as u32,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(−2^k) for k = −2..=4, applied where bit k of the remainder is set.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if remainder & (1 << (FRACTIONAL_BITS + exponent)) != 0 {
            result = srdhm(result, multiplier);
        }
    }
    if a == 0 {
        i32::MAX
    } else {
        result
    }
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` (Q0.31 in and out).
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // RoundingHalfSum(a, One).
    let sum = i64::from(a) + i64::from(i32::MAX);
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    const C48_17: i32 = 1_515_870_810; // 48/17 in Q2.29
    const CNEG32_17: i32 = -1_010_580_540; // −32/17 in Q2.29
    let mut x = C48_17.wrapping_add(srdhm(half_denominator, CNEG32_17));
    for _ in 0..3 {
        let half_denominator_times_x = srdhm(half_denominator, x);
        let one_minus = (1i32 << 29).wrapping_sub(half_denominator_times_x);
        x = x.wrapping_add(shl_saturating(srdhm(x, one_minus), 2));
    }
    shl_saturating(x, 1)
}

/// TFLite's int8 softmax along `geom.len` (see [`SoftmaxQ31`]): bit for bit its reference
/// kernel.
pub fn softmax_i8_q31(p: &SoftmaxQ31, input: &[i8], output: &mut [i8]) {
    let g = &p.geom;
    assert!(input.len() >= g.outer * g.len * g.inner && output.len() >= g.outer * g.len * g.inner);
    let scaled = |d: i32| {
        srdhm(
            d.wrapping_mul(1 << p.input_left_shift.max(0)),
            p.input_multiplier,
        )
    };
    for o in 0..g.outer {
        for i in 0..g.inner {
            let at = |l: usize| (o * g.len + l) * g.inner + i;
            let max = (0..g.len).map(|l| input[at(l)]).max().unwrap_or(i8::MIN);
            let diff = |l: usize| i32::from(input[at(l)]) - i32::from(max);
            let mut sum_of_exps = 0i32;
            for l in 0..g.len {
                if diff(l) >= p.diff_min {
                    let e = exp_on_negative_values(scaled(diff(l)));
                    sum_of_exps = sum_of_exps.wrapping_add(rdbp(e, ACCUMULATION_INTEGER_BITS));
                }
            }
            // GetReciprocal: the sum normalised into [1, 2), its reciprocal in Q0.31.
            let headroom_plus_one = (sum_of_exps as u32).leading_zeros() as i32;
            let num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
            let shifted_sum_minus_one =
                ((sum_of_exps as u32) << headroom_plus_one).wrapping_sub(1 << 31) as i32;
            let shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
            for l in 0..g.len {
                output[at(l)] = if diff(l) >= p.diff_min {
                    let e = exp_on_negative_values(scaled(diff(l)));
                    let unsat = rdbp(srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8);
                    (unsat - 128).clamp(-128, 127) as i8
                } else {
                    i8::MIN
                };
            }
        }
    }
}

#[cfg(test)]
mod i8_tests {
    use super::*;

    /// Against dequantise → f32 softmax → quantise (onnxruntime's 1/256, −128 output).
    #[test]
    fn softmax_i8_matches_float() {
        for (in_scale, in_zero) in [(0.05f32, 3), (0.2, -20), (0.01, 0)] {
            let geom = Softmax {
                outer: 2,
                len: 10,
                inner: 1,
                log: false,
            };
            let p = SoftmaxI8::new(geom, in_scale, (1.0 / 256.0, -128));
            let x: [i8; 20] = core::array::from_fn(|i| ((i * 89 + 31) % 256) as u8 as i8);
            let xf: [f32; 20] =
                core::array::from_fn(|i| (i32::from(x[i]) - in_zero) as f32 * in_scale);
            let mut y = [0i8; 20];
            let mut yf = [0.0f32; 20];
            softmax_i8(&p, &x, &mut y);
            softmax(&geom, &xf, &mut yf);
            for i in 0..20 {
                let want = ((f64::from(yf[i]) * 256.0 + 0.5) as i64 - 128).clamp(-128, 127);
                assert!(
                    (i64::from(y[i]) - want).abs() <= 1,
                    "{in_scale} [{i}]: {} vs {want}",
                    y[i]
                );
            }
        }
    }
}
