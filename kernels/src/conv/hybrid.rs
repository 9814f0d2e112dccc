//! TFLite's "hybrid" convolution: float activations, int8 weights (a model quantized for its
//! weights only, "dynamic range"). Each image's input is quantized on the fly, symmetric
//! (`scale = max |x| / 127`, `q = round(x / scale)`, TFLite's `SymmetricQuantizeFloats`), the
//! products summed exactly in `i32`, and each sum scaled back in float32 by the input's and
//! the weights' scales before the bias and the activation (TFLite's `EvalHybrid`). Its
//! outputs differ from a float convolution by the input's quantisation (about 1%), so a
//! hybrid model is compiled hybrid to give what TFLite gives.

use super::{valid_range, Conv2d};

/// The symmetric quantisation of one image (`SymmetricQuantizeFloats`): the factor `q = x ·
/// inv` rounds with and the scale of one step; a zero image quantizes to zeros (scale 1).
fn symmetric_scale(image: &[f32]) -> (f32, f32) {
    let (min, max) = image
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = min.abs().max(max.abs());
    if image.is_empty() || range == 0.0 {
        return (0.0, 1.0);
    }
    (127.0 / range, range / 127.0)
}

/// `x` quantized by `inv`: rounded half away from zero (as `roundf`), clamped to ±127. The
/// rounding without `roundf`, which the Cortex-M4's FPU lacks (a library call of some 30
/// instructions): clamped first to ±128, the product truncates exactly (`VCVT`) and its
/// fraction is exact too, so one step away from zero where the fraction reaches a half.
#[inline]
fn quantize(x: f32, inv: f32) -> i32 {
    // NaN stays NaN here and truncates to 0, as `roundf`'s NaN does.
    let v = (x * inv).clamp(-128.0, 128.0);
    let t = v as i32;
    let frac = v - t as f32;
    (t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)).clamp(-127, 127)
}

/// Hybrid convolution (see the module docs): `input` f32, `weights` int8 OIHW symmetric
/// with one scale `weight_scale`, `bias` f32, `p.act` applied after the bias.
///
/// Each input value is quantized once per tap that reads it and multiplied into every
/// output channel of its group, the sums kept as `i32` in `output` itself until the last
/// pass scales them (the quantisation is the costly part: once per output channel it was
/// most of the time).
pub fn conv2d_hybrid(
    p: &Conv2d,
    input: &[f32],
    weights: &[i8],
    weight_scale: f32,
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = &p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (ic_g, oc_g) = (p.in_c / p.groups, p.out_c / p.groups);
    let (in_len, out_len) = (p.in_c * ih * iw, p.out_c * oh * ow);
    let taps = w.k_h * w.k_w;
    let plane_out = oh * ow;
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    assert!(weights.len() >= p.out_c * ic_g * taps);
    for n in 0..p.batch {
        let image = &input[n * in_len..(n + 1) * in_len];
        let out = &mut output[n * out_len..(n + 1) * out_len];
        let (inv, input_scale) = symmetric_scale(image);
        // `scaling_factors[b] *= filter->params.scale`, in float32.
        let scale = input_scale * weight_scale;
        {
            // SAFETY: `f32` and `i32` have the same size and alignment and every bit
            // pattern is an `i32`; this view of `out` is its only use until it ends below.
            let acc: &mut [i32] = unsafe {
                core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<i32>(), out.len())
            };
            acc.fill(0);
            for g in 0..p.groups {
                for icg in 0..ic_g {
                    let plane = &image[(g * ic_g + icg) * ih * iw..][..ih * iw];
                    for oy in 0..oh {
                        let y0 = (oy * w.stride_h) as isize - w.pad_top as isize;
                        let (ky0, ky1) = valid_range(w.k_h, ih, w.dil_h, y0);
                        for ox in 0..ow {
                            let x0 = (ox * w.stride_w) as isize - w.pad_left as isize;
                            let (kx0, kx1) = valid_range(w.k_w, iw, w.dil_w, x0);
                            let at = oy * ow + ox;
                            for ky in ky0..ky1 {
                                let iy = (y0 + (ky * w.dil_h) as isize) as usize;
                                for kx in kx0..kx1 {
                                    let ix = (x0 + (kx * w.dil_w) as isize) as usize;
                                    let q = quantize(plane[iy * iw + ix], inv);
                                    if q == 0 {
                                        continue;
                                    }
                                    let tap = icg * taps + ky * w.k_w + kx;
                                    for ocg in 0..oc_g {
                                        let oc = g * oc_g + ocg;
                                        let wv = i32::from(weights[oc * ic_g * taps + tap]);
                                        acc[oc * plane_out + at] += q * wv;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for (oc, plane) in out.chunks_exact_mut(plane_out.max(1)).enumerate() {
            let b = bias.map_or(0.0, |b| b[oc]);
            for v in plane {
                // The sum (its bits, written as `i32` above) scaled back.
                let a = v.to_bits() as i32;
                *v = p.act.apply(a as f32 * scale + b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{window, Activation};

    /// The rounding without `roundf` rounds as `roundf` does: halves, the float just below
    /// a half, the range's ends and beyond, NaN, and a sweep of random products.
    #[test]
    fn quantize_rounds_as_roundf() {
        let reference = |x: f32, inv: f32| (libm::roundf(x * inv) as i32).clamp(-127, 127);
        let below_half = f32::from_bits(0.5f32.to_bits() - 1);
        let edges = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            below_half,
            -below_half,
            126.5,
            -126.5,
            127.0,
            127.49,
            127.5,
            -127.5,
            128.0,
            300.0,
            -1e30,
            f32::INFINITY,
            f32::NAN,
        ];
        for x in edges {
            assert_eq!(quantize(x, 1.0), reference(x, 1.0), "{x}");
        }
        let mut s = 1u32;
        let n = if cfg!(miri) { 2_000 } else { 200_000 };
        for _ in 0..n {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = (s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0;
            let inv = 127.0 / (0.25 + (s & 0xff) as f32 / 300.0);
            assert_eq!(quantize(x, inv), reference(x, inv), "{x} × {inv}");
        }
    }

    /// Against the float convolution of the quantized input and weights: the same sums
    /// (small integers, exact in f32), the quantisation as TFLite's (a half rounds away
    /// from zero, the largest magnitude to ±127).
    #[test]
    fn hybrid_is_the_convolution_of_the_quantized_input() {
        let p = Conv2d {
            batch: 2,
            in_c: 3,
            out_c: 4,
            groups: 1,
            window: window((5, 6), (3, 3), (1, 2), (1, 1), [1, 1, 1, 0]),
            act: Activation::RELU,
        };
        let n_in = 2 * 3 * 5 * 6;
        let x: [f32; 180] = core::array::from_fn(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013);
        let wq: [i8; 108] = core::array::from_fn(|i| ((i * 29 % 255) as i32 - 127) as i8);
        let bias = [0.5, -0.25, 0.0, 1.0];
        let mut y = [0f32; 2 * 4 * 5 * 3];
        conv2d_hybrid(&p, &x[..n_in], &wq, 0.01, Some(&bias), &mut y);
        for n in 0..2 {
            let image = &x[n * 90..(n + 1) * 90];
            let range = image.iter().fold(0f32, |m, v| m.max(v.abs()));
            let q: [f32; 90] = core::array::from_fn(|i| {
                (libm::roundf(image[i] * (127.0 / range)) as i32).clamp(-127, 127) as f32
            });
            assert!(q.iter().any(|v| v.abs() == 127.0));
            let wf: [f32; 108] = core::array::from_fn(|i| f32::from(wq[i]));
            let mut want = [0f32; 60];
            let single = Conv2d {
                batch: 1,
                act: Activation::Identity,
                ..p
            };
            super::super::conv2d(&single, &q, &wf, None, &mut want);
            let scale = range / 127.0 * 0.01;
            for (k, &s) in want.iter().enumerate() {
                let expect = Activation::RELU.apply(s * scale + bias[k / 15]);
                assert_eq!(y[n * 60 + k], expect, "image {n} output {k}");
            }
        }
    }
}
