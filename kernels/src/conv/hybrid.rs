//! TFLite's "hybrid" convolution: float activations, int8 weights (a model quantized for its
//! weights only, "dynamic range"). Each image's input is quantized on the fly, symmetric
//! (`scale = max |x| / 127`, `q = round(x / scale)`, TFLite's `SymmetricQuantizeFloats`), the
//! products summed exactly in `i32`, and each sum scaled back in float32 by the input's and
//! the weights' scales before the bias and the activation (TFLite's `EvalHybrid`). Its
//! outputs differ from a float convolution by the input's quantisation (about 1%), so a
//! hybrid model is compiled hybrid to give what TFLite gives.

use super::Conv2d;
use crate::gemm::{block_sums, packed_fc_len, FC_ROWS, FC_TAPS};

/// The symmetric quantisation of one image (`SymmetricQuantizeFloats`): the factor `q = x ·
/// inv` rounds with and the scale of one step; a zero image quantizes to zeros (scale 1).
fn symmetric_scale(image: &[f32]) -> (f32, f32) {
    // The largest magnitude, which is TFLite's `max(|min|, |max|)`; by comparisons (NaN
    // passed over as `min_element` / `max_element` pass it), not `f32::max`, a library call
    // on the Cortex-M4.
    let mut range = 0f32;
    for &v in image {
        let a = v.abs();
        if a > range {
            range = a;
        }
    }
    if range == 0.0 {
        return (0.0, 1.0);
    }
    (127.0 / range, range / 127.0)
}

/// `x` quantized by `inv`: rounded half away from zero (as `roundf`), clamped to ±127. The
/// rounding without `roundf`, which the Cortex-M4's FPU lacks (a library call of some 30
/// instructions), on the magnitude: clamped first to 127, it truncates exactly (`VCVT`) and
/// its fraction is exact too, so one step up where the fraction reaches a half; the sign goes
/// back on as the integer's.
#[inline(always)]
fn quantize(x: f32, inv: f32) -> i32 {
    let v = x * inv;
    // NaN stays NaN here and truncates to 0, as `roundf`'s NaN does.
    let mut a = v.abs();
    if a > 127.0 {
        a = 127.0;
    }
    let t = a as i32;
    let r = t + i32::from(a - t as f32 >= 0.5);
    // 0 for a positive product, −1 for a negative one: r or −r.
    let sign = (v.to_bits() as i32) >> 31;
    (r ^ sign) - sign
}

/// Taps of the quantized patch a pass holds on the stack: the window's positions
/// (`k_h · k_w`, at most this many) for as many of its group's input channels as fit.
pub const HYBRID_PATCH: usize = 512;

/// The passes over a group's `ic_g` input channels with `taps` positions each: (first
/// channel, channels), each holding at most [`HYBRID_PATCH`] taps.
fn passes(ic_g: usize, taps: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = (HYBRID_PATCH / taps.max(1)).max(1);
    (0..ic_g)
        .step_by(per)
        .map(move |c0| (c0, per.min(ic_g - c0)))
}

/// Whether [`conv2d_hybrid`] takes `p`: a window of at most [`HYBRID_PATCH`] positions.
pub fn hybrid_supported(p: &Conv2d) -> bool {
    p.window.k_h * p.window.k_w <= HYBRID_PATCH
}

/// Bytes of [`pack_hybrid_weights`]'s output for `p`.
pub fn hybrid_packed_len(p: &Conv2d) -> usize {
    let (ic_g, oc_g, taps) = (
        p.in_c / p.groups,
        p.out_c / p.groups,
        p.window.k_h * p.window.k_w,
    );
    let pass = |(_, cn): (usize, usize)| packed_fc_len(cn * taps, oc_g);
    p.groups * passes(ic_g, taps).map(pass).sum::<usize>()
}

/// The OIHW weights `w` of `p` in the layout [`conv2d_hybrid`] reads: per group, per pass
/// (the taps of as many input channels as [`HYBRID_PATCH`] holds), the fully connected
/// layer's blocks ([`pack_fc_weights`](crate::gemm::pack_fc_weights): four output channels by
/// eight taps, zero past the group's channels and the pass's taps).
///
/// ```
/// use microarena_kernels::conv::{hybrid_packed_len, pack_hybrid_weights, Conv2d};
/// use microarena_kernels::{Activation, Window2d};
/// let p = Conv2d {
///     batch: 1, in_c: 3, out_c: 2, groups: 1, act: Activation::Identity,
///     window: Window2d {
///         in_h: 1, in_w: 1, out_h: 1, out_w: 1, k_h: 1, k_w: 1, stride_h: 1, stride_w: 1,
///         dil_h: 1, dil_w: 1, pad_top: 0, pad_left: 0, pad_bottom: 0, pad_right: 0,
///     },
/// };
/// let packed: Vec<i8> = pack_hybrid_weights(&p, &[1, 2, 3, 4, 5, 6]).collect();
/// assert_eq!(packed.len(), hybrid_packed_len(&p));
/// assert_eq!(packed[..11], [1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6]);
/// ```
pub fn pack_hybrid_weights<'a>(p: &Conv2d, w: &'a [i8]) -> impl Iterator<Item = i8> + 'a {
    let (ic_g, oc_g, taps) = (
        p.in_c / p.groups,
        p.out_c / p.groups,
        p.window.k_h * p.window.k_w,
    );
    let k = ic_g * taps;
    (0..p.groups).flat_map(move |g| {
        passes(ic_g, taps).flat_map(move |(c0, cn)| {
            let (k0, len) = (c0 * taps, cn * taps);
            let (rows, blocks) = (oc_g.div_ceil(FC_ROWS), len.div_ceil(FC_TAPS));
            (0..rows * blocks * FC_ROWS * FC_TAPS).map(move |i| {
                let (gr, bl, r, t) = (
                    i / (blocks * FC_ROWS * FC_TAPS),
                    i / (FC_ROWS * FC_TAPS) % blocks,
                    i / FC_TAPS % FC_ROWS,
                    i % FC_TAPS,
                );
                let (oc, tap) = (gr * FC_ROWS + r, bl * FC_TAPS + t);
                if oc < oc_g && tap < len {
                    w[(g * oc_g + oc) * k + k0 + tap]
                } else {
                    0
                }
            })
        })
    })
}

/// One pass's quantized taps, 4-byte aligned for the DSP block product.
#[repr(C, align(4))]
struct Patch([i8; HYBRID_PATCH]);

/// Hybrid convolution (see the module docs): `input` f32, `weights` int8 with one scale
/// `weight_scale`, packed by [`pack_hybrid_weights`], `bias` f32, `p.act` applied after the
/// bias.
///
/// Per output pixel, its window's inputs are quantized once into a patch on the stack, which
/// the fully connected layer's block product ([`fully_connected_i8`]'s, `SMLAD` on the
/// Cortex-M4) multiplies into four output channels at a time; the exact sums wait as `i32`
/// in `output` itself until the last pass is done, then scaled a channel at a time.
///
/// [`fully_connected_i8`]: crate::gemm::fully_connected_i8
///
/// # Panics
/// If a slice is shorter than the geometry needs.
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
    let (taps, plane_in, plane_out) = (w.k_h * w.k_w, ih * iw, oh * ow);
    assert!(
        hybrid_supported(p),
        "a window of more than {HYBRID_PATCH} positions"
    );
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    assert!(weights.len() >= hybrid_packed_len(p));
    assert!(bias.is_none_or(|b| b.len() >= p.out_c));
    let mut patch = Patch([0; HYBRID_PATCH]);
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
            let mut wat = 0;
            for g in 0..p.groups {
                let planes = &image[g * ic_g * plane_in..][..ic_g * plane_in];
                let acc = &mut acc[g * oc_g * plane_out..][..oc_g * plane_out];
                for (c0, cn) in passes(ic_g, taps) {
                    let len = cn * taps;
                    let padded = len.next_multiple_of(FC_TAPS);
                    let wp = &weights[wat..][..packed_fc_len(len, oc_g)];
                    wat += wp.len();
                    patch.0[len..padded].fill(0);
                    for oy in 0..oh {
                        let y0 = (oy * w.stride_h) as isize - w.pad_top as isize;
                        for ox in 0..ow {
                            let x0 = (ox * w.stride_w) as isize - w.pad_left as isize;
                            let taps = &mut patch.0[..len];
                            fill_patch(
                                w,
                                &planes[c0 * plane_in..][..cn * plane_in],
                                y0,
                                x0,
                                inv,
                                taps,
                            );
                            let xs = &patch.0[..padded];
                            let at = oy * ow + ox;
                            for (gr, wg) in wp.chunks_exact(padded * FC_ROWS).enumerate() {
                                let sums = block_sums(wg, xs);
                                let first = gr * FC_ROWS;
                                let at = first * plane_out + at;
                                for (r, &s) in sums.iter().enumerate().take(oc_g - first) {
                                    let a = &mut acc[at + r * plane_out];
                                    *a = if c0 == 0 { s } else { a.wrapping_add(s) };
                                }
                            }
                        }
                    }
                }
            }
        }
        // The sums scaled back and the bias, in TFLite's float32 steps, then the
        // activation, a channel's plane at a time.
        for (oc, plane) in out.chunks_exact_mut(plane_out.max(1)).enumerate() {
            let b = bias.map_or(0.0, |b| b[oc]);
            // The sum: its bits, written as `i32` above (zero where no pass ran).
            let sum = |v: f32| if ic_g == 0 { 0 } else { v.to_bits() as i32 };
            p.act.map_slice(plane, |v| sum(v) as f32 * scale + b);
        }
    }
}

/// One output pixel's window (top left `y0`, `x0`) over the channel planes `planes`, quantized
/// by `inv` into `taps` in the weights' order (channel, row, column), zero where it reads
/// padding.
#[inline(always)]
fn fill_patch(
    w: &super::Window2d,
    planes: &[f32],
    y0: isize,
    x0: isize,
    inv: f32,
    taps: &mut [i8],
) {
    let (ih, iw) = (w.in_h, w.in_w);
    let plane = ih * iw;
    let inside =
        |y: isize, x: isize| (0..ih as isize).contains(&y) && (0..iw as isize).contains(&x);
    if w.k_h == 1 && w.k_w == 1 {
        // A pixel's channels, one plane apart.
        if inside(y0, x0) {
            let mut at = y0 as usize * iw + x0 as usize;
            for q in taps {
                *q = quantize(planes[at], inv) as i8;
                at += plane;
            }
        } else {
            taps.fill(0);
        }
        return;
    }
    for (c, window) in taps.chunks_exact_mut(w.k_h * w.k_w).enumerate() {
        let plane = &planes[c * plane..][..plane];
        for (ky, row_taps) in window.chunks_exact_mut(w.k_w).enumerate() {
            let iy = y0 + (ky * w.dil_h) as isize;
            if !(0..ih as isize).contains(&iy) {
                row_taps.fill(0);
                continue;
            }
            let row = &plane[iy as usize * iw..][..iw];
            for (kx, q) in row_taps.iter_mut().enumerate() {
                let ix = x0 + (kx * w.dil_w) as isize;
                *q = if (0..iw as isize).contains(&ix) {
                    quantize(row[ix as usize], inv) as i8
                } else {
                    0
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{window, Activation};
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// The rounding without `roundf` rounds as `roundf` does: halves, the float just below
    /// a half, the range's ends and beyond, NaN, and a sweep of random products.
    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
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
    /// from zero, the largest magnitude to ±127). Padding, strides, two images, groups with
    /// channels past a whole block of four, and a window of more taps than one pass takes.
    #[test]
    fn hybrid_is_the_convolution_of_the_quantized_input() {
        let cases = [
            (3, 4, 1, (5, 6), (3, 3), (1, 2), [1, 1, 1, 0]),
            (4, 6, 2, (4, 5), (2, 3), (2, 1), [0, 1, 1, 1]),
            (1, 64, 1, (9, 4), (5, 4), (2, 2), [2, 1, 2, 1]),
            (60, 5, 1, (3, 3), (3, 3), (1, 1), [1, 1, 1, 1]),
        ];
        // Under Miri the first (the interpreter is slow; the unsafe view is the same).
        let cases = if cfg!(miri) { &cases[..1] } else { &cases[..] };
        for &(in_c, out_c, groups, hw, k, stride, pads) in cases {
            let p = Conv2d {
                batch: 2,
                in_c,
                out_c,
                groups,
                window: window(hw, k, stride, (1, 1), pads),
                act: Activation::RELU,
            };
            let w = &p.window;
            let (n_in, n_out) = (in_c * w.in_h * w.in_w, out_c * w.out_h * w.out_w);
            let k_all = in_c / groups * w.k_h * w.k_w;
            let x: Vec<f32> = (0..2 * n_in)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
                .collect();
            let wq: Vec<i8> = (0..out_c * k_all)
                .map(|i| ((i * 29 % 255) as i32 - 127) as i8)
                .collect();
            let bias: Vec<f32> = (0..out_c).map(|c| c as f32 * 0.25 - 0.5).collect();
            let packed: Vec<i8> = pack_hybrid_weights(&p, &wq).collect();
            assert_eq!(packed.len(), hybrid_packed_len(&p));
            // Garbage where the sums go: the kernel must not read what it did not write.
            let mut y = vec![f32::from_bits(0x1234_5678); 2 * n_out];
            conv2d_hybrid(&p, &x, &packed, 0.01, Some(&bias), &mut y);
            for n in 0..2 {
                let image = &x[n * n_in..(n + 1) * n_in];
                let range = image.iter().fold(0f32, |m, v| m.max(v.abs()));
                let q: Vec<f32> = image
                    .iter()
                    .map(|&v| (libm::roundf(v * (127.0 / range)) as i32).clamp(-127, 127) as f32)
                    .collect();
                assert!(q.iter().any(|v| v.abs() == 127.0));
                let wf: Vec<f32> = wq.iter().map(|&v| f32::from(v)).collect();
                let mut want = vec![0f32; n_out];
                let single = Conv2d {
                    batch: 1,
                    act: Activation::Identity,
                    ..p
                };
                super::super::conv2d(&single, &q, &wf, None, &mut want);
                let scale = range / 127.0 * 0.01;
                let plane = w.out_h * w.out_w;
                for (i, &s) in want.iter().enumerate() {
                    let expect = Activation::RELU.apply(s * scale + bias[i / plane]);
                    assert_eq!(
                        y[n * n_out + i],
                        expect,
                        "{in_c}→{out_c} image {n} output {i}"
                    );
                }
            }
        }
    }
}
