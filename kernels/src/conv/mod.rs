//! 2-D convolution (1-D is `in_h = k_h = out_h = 1`), NCHW, grouped (incl. depthwise).
//!
//! This file holds the parameter structs and the reference kernels ([`conv2d`], [`conv2d_i8`]);
//! each faster path has a file of its own, and each architecture a folder or file:
//!
//! | file | what |
//! |---|---|
//! | `tiled.rs` | f32 register tiles (4 channels × 4 pixels), portable: [`conv2d_tiled`] |
//! | `tiled_i8.rs` | int8 tiles over an im2col of pixel pairs: [`conv2d_i8_tiled`] |
//! | `tiled_i8_weights.rs` | its weights one byte each, channel pairs in halfwords: [`pack_tiled_weights`], [`tiled_weights_fit`] |
//! | `depthwise.rs` | int8 depthwise over padded planes: [`conv2d_i8_depthwise`] |
//! | `depthwise_f32.rs` | f32 depthwise 3×3, pixel by pixel (the portable path of [`conv2d`]) |
//! | `hybrid.rs` | float activations, int8 weights, TFLite's on-the-fly input quantisation: [`conv2d_hybrid`] |
//! | `flat.rs` | the flattened phase-plane layout the x86-64 and AArch64 kernels share |
//! | `x86/` | x86-64: AVX2/FMA and AVX-512 row tiles, flattened planes (f32, int8), int8 helpers |
//! | `aarch64.rs` | AArch64 NEON: the flattened-plane convolutions |
//! | `cortex_m/` | Cortex-M DSP-extension and FPU assembly (int8 tiles, depthwise rows) |
//!
//! Every path computes what the path it replaces computes (bit for bit, or within the
//! rounding its fused multiply-adds change, as each file's tests state).

use super::{valid_range, Activation, Window2d};
use crate::scale::{ChannelScale, ScaleKind};

mod depthwise;
mod depthwise_f32;
mod hybrid;
mod tiled;
mod tiled_i8;
mod tiled_i8_weights;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(microarena_dsp)]
mod cortex_m;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod flat;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

#[cfg(test)]
mod testing;

#[cfg(microarena_dsp)]
use cortex_m::{mac_row2_dsp, mac_row_dsp};

pub use depthwise::*;
pub use hybrid::{
    conv2d_hybrid, hybrid_packed_len, hybrid_supported, pack_hybrid_weights, HYBRID_PATCH,
};
pub use tiled::*;
pub use tiled_i8::*;
pub use tiled_i8_weights::*;

/// Shapes and geometry of one convolution; weights are OIHW (`out_c × in_c/groups × k_h × k_w`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    /// Images (the N of NCHW); every image uses the same weights.
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Channel groups (`in_c` for depthwise).
    pub groups: usize,
    /// Spatial geometry: sizes, kernel, strides, dilations, padding.
    pub window: Window2d,
    /// Fused activation applied to every output.
    pub act: Activation,
}

/// Reference convolution: weight-stationary loops over whole output rows, so the inner loop
/// is a contiguous multiply-add for stride 1 and never tests bounds.
pub fn conv2d(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    let ic_g = p.in_c / p.groups;
    let (in_len, out_len) = (p.in_c * ih * iw, p.out_c * oh * ow);
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    assert!(weights.len() >= p.out_c * ic_g * p.window.k_h * p.window.k_w);
    for n in 0..p.batch {
        conv2d_image(
            p,
            &input[n * in_len..(n + 1) * in_len],
            weights,
            bias,
            &mut output[n * out_len..(n + 1) * out_len],
        );
    }
}

/// Whether [`conv2d`]'s portable path (the Cortex-M4F's) runs `p` with the pixel-by-pixel
/// 3×3 depthwise kernel (one channel per group, a 3×3 window, dilation 1) rather than the
/// weight-stationary reference loop; the x86-64 and AArch64 paths take such convolutions
/// first. What the compiler's streaming cost model prices the kernel by.
pub fn depthwise_3x3_f32(p: &Conv2d) -> bool {
    p.in_c == p.groups && p.out_c == p.groups && depthwise_f32::applies(&p.window)
}

/// A depthwise f32 convolution (one channel per group) of one image whose input rows are in
/// two parts: each channel's first `kept.len() / (in_c · in_w)` rows in `kept` (a streamed
/// stage's rows read again, kept between band calls), the rest in `input`, both `[C][rows][W]`.
/// Each channel's plane is joined in `scratch` (at least `in_h · in_w`) and convolved there by
/// [`conv2d`]'s path for one channel, or, on the Cortex-M4F's path, read in place by the 3×3
/// kernel: the bits of [`conv2d`] on the joined input.
pub fn conv2d_depthwise_split(
    p: &Conv2d,
    kept: &[f32],
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    scratch: &mut [f32],
    output: &mut [f32],
) {
    let w = &p.window;
    assert!(p.batch == 1 && p.groups == p.in_c && p.in_c == p.out_c);
    let plane = w.in_h * w.in_w;
    let held = kept.len() / (p.in_c * w.in_w).max(1);
    let (k, fresh) = (held * w.in_w, plane.saturating_sub(held * w.in_w));
    assert!(held <= w.in_h && kept.len() == p.in_c * k && input.len() >= p.in_c * fresh);
    let (taps, out_plane) = (w.k_h * w.k_w, w.out_h * w.out_w);
    assert!(weights.len() >= p.in_c * taps && output.len() >= p.in_c * out_plane);
    // Where the depthwise 3×3 kernel is the path of `conv2d` (the Cortex-M4F), it reads the
    // two parts in place; elsewhere each channel's plane is joined for the per-arch path.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    if depthwise_f32::applies(w) {
        depthwise_f32::depthwise_3x3_split(p, kept, input, weights, bias, output);
        return;
    }
    let one = Conv2d {
        in_c: 1,
        out_c: 1,
        groups: 1,
        ..*p
    };
    let joined = &mut scratch[..plane];
    for c in 0..p.in_c {
        joined[..k].copy_from_slice(&kept[c * k..][..k]);
        joined[k..].copy_from_slice(&input[c * fresh..][..fresh]);
        conv2d_image(
            &one,
            joined,
            &weights[c * taps..][..taps],
            bias.map(|b| &b[c..=c]),
            &mut output[c * out_plane..][..out_plane],
        );
    }
}

/// One image of [`conv2d`].
fn conv2d_image(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    // One input and one output channel per group: the depthwise paths.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let one = p.in_c == p.groups && p.out_c == p.groups;
    #[cfg(target_arch = "aarch64")]
    if one {
        if let Some(f) = aarch64::depthwise_layout(&p.window) {
            aarch64::depthwise_flat(p, &f, input, weights, bias, output);
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if one && crate::cpu::avx512f() {
        if let Some(f) = x86::Flat::of_window(&p.window) {
            // SAFETY: the CPU has AVX-512F; the extents were asserted by `conv2d`.
            unsafe { x86::depthwise_flat_avx512(p, &f, input, weights, bias, output) };
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if one && p.window.stride_w <= 2 && crate::cpu::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the extents were asserted by `conv2d`.
        unsafe { x86::depthwise_checked(p, input, weights, bias, output) };
        return;
    }
    if depthwise_3x3_f32(p) {
        depthwise_f32::depthwise_3x3(p, input, weights, bias, output);
        return;
    }
    reference_image(p, input, weights, bias, output);
}

/// The reference loop of [`conv2d`] over one image (what every faster path equals).
fn reference_image(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    let ic_g = p.in_c / p.groups;
    let oc_g = p.out_c / p.groups;
    for oc in 0..p.out_c {
        let g = oc / oc_g;
        let plane = &mut output[oc * oh * ow..(oc + 1) * oh * ow];
        plane.fill(bias.map_or(0.0, |b| b[oc]));
        for icg in 0..ic_g {
            let ic = g * ic_g + icg;
            let in_plane = &input[ic * ih * iw..(ic + 1) * ih * iw];
            for ky in 0..p.window.k_h {
                let off_y = (ky * p.window.dil_h) as isize - p.window.pad_top as isize;
                let (oy0, oy1) = valid_range(oh, ih, p.window.stride_h, off_y);
                for kx in 0..p.window.k_w {
                    let w = weights[((oc * ic_g + icg) * p.window.k_h + ky) * p.window.k_w + kx];
                    let off_x = (kx * p.window.dil_w) as isize - p.window.pad_left as isize;
                    let (ox0, ox1) = valid_range(ow, iw, p.window.stride_w, off_x);
                    if ox0 >= ox1 {
                        continue;
                    }
                    for oy in oy0..oy1 {
                        let iy = (oy * p.window.stride_h) as isize + off_y;
                        let in_row = &in_plane[iy as usize * iw..(iy as usize + 1) * iw];
                        let out_row = &mut plane[oy * ow..(oy + 1) * ow];
                        if p.window.stride_w == 1 {
                            let ix0 = (ox0 as isize + off_x) as usize;
                            let src = &in_row[ix0..ix0 + (ox1 - ox0)];
                            for (o, &x) in out_row[ox0..ox1].iter_mut().zip(src) {
                                *o += w * x;
                            }
                        } else {
                            for (ox, o) in out_row.iter_mut().enumerate().take(ox1).skip(ox0) {
                                let ix = ((ox * p.window.stride_w) as isize + off_x) as usize;
                                *o += w * in_row[ix];
                            }
                        }
                    }
                }
            }
        }
        p.act.apply_slice(plane);
    }
}

/// Quantisation of an int8 convolution (`y = requant(Σ (x − x_zero) · w + bias) + y_zero`):
/// int8 input and output with zero points, int8 weights symmetric per output channel (zero
/// point 0), int32 bias in the accumulator's scale, one [`Requant`] per output channel
/// (`input_scale · weight_scale[c] / output_scale`).
///
/// [`Requant`]: crate::quant::Requant
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvI8 {
    /// Geometry (its `act` is ignored: activations are `lo..=hi`).
    pub geom: Conv2d,
    /// Input zero point.
    pub input_zero: i32,
    /// Output zero point. The fast kernels ([`conv2d_i8_tiled`], [`conv2d_i8_depthwise`])
    /// with fixed-point scales take 0 here: the zero point is in the scales
    /// ([`Q31::with_zero`](crate::scale::Q31::with_zero)).
    pub output_zero: i32,
    /// Smallest output (a fused ReLU raises it to the zero point).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

/// Int32 accumulators of [`conv2d_i8`]: its only scratch, a fixed 512 bytes of stack
/// whatever the model. A tile is as many whole output rows as fit (or a piece of one row
/// when a row is longer).
const I8_TILE: usize = 128;

/// Int8 convolution: int32 accumulation, per-channel integer requantisation, no float.
/// Padding contributes nothing (a padded input equals the input zero point).
///
/// Like [`conv2d`], weight-stationary: for each output channel and tile of output rows, each
/// tap (input channel, ky, kx) is one multiply-add over a contiguous run of each row (for
/// stride 1), so the per-tap work (ranges, weight load) is paid once per tile rather than
/// once per row, and the inner loop never tests bounds. The tile is requantised when all taps
/// are in. On Cortex-M4/M7 (DSP extension) the inner loop takes four columns per step: one
/// 32-bit load, two `SXTAB16` (sign-extend and subtract the zero point, two lanes each),
/// four `SMLABB`/`SMLATB` (see `mac_row`).
///
/// The requantisation is ONNX's ([`Requant`](crate::quant::Requant), float32 arithmetic) or
/// TFLite's ([`FixedPoint`](crate::quant::FixedPoint)), one per output channel.
pub fn conv2d_i8<R: crate::quant::Rescale>(
    p: &ConvI8,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    requant: &[R],
    output: &mut [i8],
) {
    let g = &p.geom;
    let (ih, iw, oh, ow) = (g.window.in_h, g.window.in_w, g.window.out_h, g.window.out_w);
    let ic_g = g.in_c / g.groups;
    let oc_g = g.out_c / g.groups;
    let (in_len, out_len) = (g.in_c * ih * iw, g.out_c * oh * ow);
    let k_len = g.window.k_h * g.window.k_w;
    assert!(input.len() >= g.batch * in_len && output.len() >= g.batch * out_len);
    assert!(weights.len() >= g.out_c * ic_g * k_len && requant.len() >= g.out_c);
    if oh == 0 || ow == 0 {
        return;
    }
    let zx = p.input_zero;
    let mut acc = [0i32; I8_TILE];
    // Tile shape: `rows` whole rows of `cols` columns, or one row in pieces of `cols`.
    let cols = ow.min(I8_TILE);
    let rows = (I8_TILE / ow).max(1);
    for n in 0..g.batch {
        let input = &input[n * in_len..(n + 1) * in_len];
        let output = &mut output[n * out_len..(n + 1) * out_len];
        for oc in 0..g.out_c {
            let grp = oc / oc_g;
            let w_oc = &weights[oc * ic_g * k_len..(oc + 1) * ic_g * k_len];
            let b = bias.map_or(0, |b| b[oc]);
            let rq = requant[oc];
            for ty0 in (0..oh).step_by(rows) {
                let ty1 = (ty0 + rows).min(oh);
                for c0 in (0..ow).step_by(cols) {
                    let c1 = (c0 + cols).min(ow);
                    let width = c1 - c0;
                    let acc = &mut acc[..(ty1 - ty0) * width];
                    acc.fill(b);
                    // Taps outer, input channels inner: each tap's rows and columns are
                    // worked out once per tile, not once per input channel.
                    for ky in 0..g.window.k_h {
                        let off_y = (ky * g.window.dil_h) as isize - g.window.pad_top as isize;
                        let (oy0, oy1) = valid_range(oh, ih, g.window.stride_h, off_y);
                        let (oy0, oy1) = (oy0.max(ty0), oy1.min(ty1));
                        if oy0 >= oy1 {
                            continue;
                        }
                        let iy0 = ((oy0 * g.window.stride_h) as isize + off_y) as usize;
                        for kx in 0..g.window.k_w {
                            let off_x = (kx * g.window.dil_w) as isize - g.window.pad_left as isize;
                            let (ox0, ox1) = valid_range(ow, iw, g.window.stride_w, off_x);
                            let (ox0, ox1) = (ox0.max(c0), ox1.min(c1));
                            if ox0 >= ox1 {
                                continue;
                            }
                            let ix0 = ((ox0 * g.window.stride_w) as isize + off_x) as usize;
                            let tap = ky * g.window.k_w + kx;
                            // Whole rows, consecutive in the input and in the tile (1×1
                            // convolutions, the centre column of "same" 3×3 ones): one run
                            // over all the tile's rows.
                            let flat = g.window.stride_w == 1
                                && g.window.stride_h == 1
                                && iw == ow
                                && width == ow
                                && ox1 - ox0 == ow;
                            let plane =
                                |icg: usize| &input[(grp * ic_g + icg) * ih * iw..][..ih * iw];
                            // Input channels two at a time where rows are contiguous: one
                            // pass over the accumulators for both (see `mac_rows2`).
                            let mut icg = 0;
                            if g.window.stride_w == 1 {
                                while icg + 2 <= ic_g {
                                    let (p0, p1) = (plane(icg), plane(icg + 1));
                                    let w0 = i32::from(w_oc[icg * k_len + tap]);
                                    let w1 = i32::from(w_oc[(icg + 1) * k_len + tap]);
                                    if flat {
                                        let len = (oy1 - oy0) * ow;
                                        let dst = &mut acc[(oy0 - ty0) * ow..][..len];
                                        let s = iy0 * iw;
                                        mac_row2(dst, &p0[s..][..len], &p1[s..][..len], zx, w0, w1);
                                    } else {
                                        for oy in oy0..oy1 {
                                            let iy = iy0 + (oy - oy0) * g.window.stride_h;
                                            let base = (oy - ty0) * width;
                                            let dst = &mut acc[base + ox0 - c0..base + ox1 - c0];
                                            let s = iy * iw + ix0;
                                            let n = dst.len();
                                            mac_row2(dst, &p0[s..s + n], &p1[s..s + n], zx, w0, w1);
                                        }
                                    }
                                    icg += 2;
                                }
                            }
                            for icg in icg..ic_g {
                                let in_plane = plane(icg);
                                let w = i32::from(w_oc[icg * k_len + tap]);
                                if flat {
                                    let len = (oy1 - oy0) * ow;
                                    let dst = &mut acc[(oy0 - ty0) * ow..][..len];
                                    mac_row(dst, &in_plane[iy0 * iw..][..len], zx, w);
                                    continue;
                                }
                                for oy in oy0..oy1 {
                                    let iy = iy0 + (oy - oy0) * g.window.stride_h;
                                    let row = &in_plane[iy * iw..(iy + 1) * iw];
                                    let base = (oy - ty0) * width;
                                    let dst = &mut acc[base + ox0 - c0..base + ox1 - c0];
                                    if g.window.stride_w == 1 {
                                        mac_row(dst, &row[ix0..ix0 + dst.len()], zx, w);
                                    } else {
                                        for (j, a) in dst.iter_mut().enumerate() {
                                            let x = row[ix0 + j * g.window.stride_w];
                                            *a += (i32::from(x) - zx) * w;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    for oy in ty0..ty1 {
                        let out_row = &mut output[(oc * oh + oy) * ow..][c0..c1];
                        let acc_row = &acc[(oy - ty0) * width..][..width];
                        for (o, &a) in out_row.iter_mut().zip(acc_row) {
                            *o = rq.requantize(a, p.output_zero, p.lo, p.hi);
                        }
                    }
                }
            }
        }
    }
}

/// `dst[j] += (src[j] - zero) · w` for int8 `src`, a zero point in int8 range and a weight
/// `w` in int8 range.
#[inline(always)]
fn mac_row(dst: &mut [i32], src: &[i8], zero: i32, w: i32) {
    #[cfg(microarena_dsp)]
    let (dst, src) = {
        let n = dst.len().min(src.len()) & !3;
        let (d4, dt) = dst.split_at_mut(n);
        let (s4, st) = src.split_at(n);
        mac_row_dsp(d4, s4, zero, w);
        (dt, st)
    };
    for (a, &x) in dst.iter_mut().zip(src) {
        *a += (i32::from(x) - zero) * w;
    }
}

/// `dst[j] += (a[j] - zero) · wa + (b[j] - zero) · wb`: two input channels of the same tap.
#[inline(always)]
fn mac_row2(dst: &mut [i32], a: &[i8], b: &[i8], zero: i32, wa: i32, wb: i32) {
    #[cfg(microarena_dsp)]
    let (dst, a, b) = {
        let n = dst.len().min(a.len()).min(b.len()) & !3;
        let (d4, dt) = dst.split_at_mut(n);
        let (a4, at) = a.split_at(n);
        let (b4, bt) = b.split_at(n);
        mac_row2_dsp(d4, a4, b4, zero, wa, wb);
        (dt, at, bt)
    };
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d += (i32::from(x) - zero) * wa + (i32::from(y) - zero) * wb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A depthwise input in two parts equals [`conv2d`] on the joined input, bit for bit:
    /// every split point (none kept to all kept), 3×3 and 5×3 windows, strides 1 and 2,
    /// padding, a fused clip.
    #[test]
    fn split_depthwise_equals_the_joined_input() {
        extern crate std;
        use std::vec;
        use std::vec::Vec;
        let mut next = crate::xorshift(0x5_0117_u32);
        let cases = if cfg!(miri) { 6 } else { 200 };
        for case in 0..cases {
            let (ih, iw, c) = (3 + next(6), 1 + next(9), 1 + next(4));
            let (kh, s) = ([3, 5][case % 2], 1 + next(2));
            if ih + 2 < kh {
                continue;
            }
            let p = Conv2d {
                batch: 1,
                in_c: c,
                out_c: c,
                groups: c,
                window: crate::window((ih, iw), (kh, 3), (s, s), (1, 1), [1, 1, 1, 1]),
                act: Activation::Clip {
                    min: -0.5,
                    max: 0.5,
                },
            };
            let mut value = || (next(2001) as f32 - 1000.0) * 1.3e-3;
            let x: Vec<f32> = (0..c * ih * iw).map(|_| value()).collect();
            let wt: Vec<f32> = (0..c * kh * 3).map(|_| value()).collect();
            let b: Vec<f32> = (0..c).map(|_| value()).collect();
            let out_len = c * p.window.out_h * p.window.out_w;
            let mut want = vec![f32::NAN; out_len];
            conv2d(&p, &x, &wt, Some(&b), &mut want);
            for held in 0..=ih {
                let (kept, rest): (Vec<f32>, Vec<f32>) = {
                    let (mut k, mut r) = (Vec::new(), Vec::new());
                    for plane in x.chunks_exact(ih * iw) {
                        k.extend_from_slice(&plane[..held * iw]);
                        r.extend_from_slice(&plane[held * iw..]);
                    }
                    (k, r)
                };
                let mut scratch = vec![f32::NAN; ih * iw];
                let mut got = vec![f32::NAN; out_len];
                conv2d_depthwise_split(&p, &kept, &rest, &wt, Some(&b), &mut scratch, &mut got);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "case {case}, {held} rows kept");
            }
        }
    }

    fn naive(p: &Conv2d, x: &[f32], w: &[f32], b: &[f32]) -> [f32; 64] {
        let mut out = [0.0; 64];
        let (ic_g, oc_g) = (p.in_c / p.groups, p.out_c / p.groups);
        for oc in 0..p.out_c {
            for oy in 0..p.window.out_h {
                for ox in 0..p.window.out_w {
                    let mut acc = b[oc];
                    for icg in 0..ic_g {
                        let ic = oc / oc_g * ic_g + icg;
                        for ky in 0..p.window.k_h {
                            for kx in 0..p.window.k_w {
                                let iy = (oy * p.window.stride_h + ky * p.window.dil_h) as isize
                                    - p.window.pad_top as isize;
                                let ix = (ox * p.window.stride_w + kx * p.window.dil_w) as isize
                                    - p.window.pad_left as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < p.window.in_h
                                    && (ix as usize) < p.window.in_w
                                {
                                    acc += w[((oc * ic_g + icg) * p.window.k_h + ky)
                                        * p.window.k_w
                                        + kx]
                                        * x[(ic * p.window.in_h + iy as usize) * p.window.in_w
                                            + ix as usize];
                                }
                            }
                        }
                    }
                    out[(oc * p.window.out_h + oy) * p.window.out_w + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_loops_with_pads_strides_dilations_groups() {
        let x: [f32; 50] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let w: [f32; 36] = core::array::from_fn(|i| (i as f32 * 0.11).cos());
        let b = [0.5f32, -0.25];
        for &(stride, dil, pad, groups) in &[
            (1, 1, 1, 1),
            (2, 1, 0, 2),
            (1, 2, 2, 1),
            (2, 2, 1, 2),
            (3, 1, 2, 1),
        ] {
            let (in_h, in_w, k) = (5, 5, 3);
            let p = Conv2d {
                batch: 1,
                in_c: 2,
                out_c: 2,
                groups,
                window: Window2d::uniform(in_h, in_w, k, k, stride, dil, pad),
                act: Activation::Identity,
            };
            let out_h = p.window.out_h;
            let mut out = [0.0; 64];
            conv2d(&p, &x, &w, Some(&b), &mut out);
            let want = naive(&p, &x, &w, &b);
            for i in 0..2 * out_h * out_h {
                assert!(
                    (out[i] - want[i]).abs() < 1e-5,
                    "{stride} {dil} {pad} {groups} @{i}"
                );
            }
        }
    }
}

#[cfg(test)]
mod i8_tests {
    extern crate std;
    use super::*;
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    struct Lcg(u64);
    impl Lcg {
        fn i8(&mut self) -> i8 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 56) as i8
        }
    }

    /// Against the exact integer sums requantised alike: equal bit for bit, with pads,
    /// strides, groups, rows wider than a chunk and tails.
    #[test]
    fn both_paths_equal_exact_integer_sums() {
        let cases: &[(usize, usize, usize, usize, usize)] = &[
            (1, 1, 3, 1, 5),
            (2, 1, 3, 1, 9),
            (1, 1, 3, 2, 70),
            (1, 1, 3, 1, 27),
            (1, 0, 1, 2, 20),
            (1, 2, 5, 2, 33),
            (2, 1, 3, 1, 27),
            // Rows longer than a tile (128 accumulators): each row in two pieces.
            (1, 1, 3, 1, 140),
        ];
        // Tiles of several whole rows (all but the last case), with rows left over (7 rows
        // of 27: tiles of 4 and 3). Miri interprets: the two smallest shapes there, all of
        // them natively.
        let cases = if cfg!(miri) { &cases[..2] } else { cases };
        for &(stride, pad, k, groups, in_w) in cases {
            let (in_c, out_c, in_h) = (4, 4, 7);
            let geom = Conv2d {
                batch: 1,
                in_c,
                out_c,
                groups,
                window: Window2d::uniform(in_h, in_w, k, k, stride, 1, pad),
                act: Activation::Identity,
            };
            let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
            let p = ConvI8 {
                geom,
                input_zero: 5,
                output_zero: -4,
                lo: -100,
                hi: 127,
            };
            let mut r = Lcg(in_w as u64 * 31 + k as u64);
            let x: Vec<i8> = (0..in_c * in_h * in_w).map(|_| r.i8()).collect();
            let ic_g = in_c / groups;
            let w: Vec<i8> = (0..out_c * ic_g * k * k).map(|_| r.i8()).collect();
            let bias: Vec<i32> = (0..out_c).map(|c| c as i32 * 300 - 500).collect();
            let rq: Vec<Requant> = (0..out_c)
                .map(|c| Requant::from_real(0.002 + 0.0005 * c as f64))
                .collect();
            let mut y = vec![0i8; out_c * out_h * out_w];
            conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut y);
            for oc in 0..out_c {
                let grp = oc / (out_c / groups);
                for oy in 0..out_h {
                    for ox in 0..out_w {
                        let mut acc = bias[oc];
                        for icg in 0..ic_g {
                            let ic = grp * ic_g + icg;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if (0..in_h as isize).contains(&iy)
                                        && (0..in_w as isize).contains(&ix)
                                    {
                                        let xv = x[(ic * in_h + iy as usize) * in_w + ix as usize];
                                        acc += (i32::from(xv) - 5)
                                            * i32::from(w[((oc * ic_g + icg) * k + ky) * k + kx]);
                                    }
                                }
                            }
                        }
                        let want = crate::quant::requantize(acc, rq[oc], -4, -100, 127);
                        assert_eq!(y[(oc * out_h + oy) * out_w + ox], want, "w {in_w} k {k}");
                    }
                }
            }
        }
    }

    /// Against the same sum requantised in f64: within one quantisation step everywhere,
    /// exact almost everywhere; grouped, strided, padded, with a negative input zero point.
    #[test]
    fn matches_float_requantisation() {
        for (groups, in_c, out_c) in [(1, 3, 4), (2, 4, 6), (4, 4, 4)] {
            let geom = Conv2d {
                batch: 1,
                in_c,
                out_c,
                groups,
                window: Window2d {
                    in_h: 5,
                    in_w: 6,
                    out_h: 3,
                    out_w: 3,
                    k_h: 3,
                    k_w: 3,
                    stride_h: 2,
                    stride_w: 2,
                    dil_h: 1,
                    dil_w: 1,
                    pad_top: 1,
                    pad_left: 1,
                    pad_bottom: 1,
                    pad_right: 1,
                },
                act: Activation::Identity,
            };
            let p = ConvI8 {
                geom,
                input_zero: -7,
                output_zero: 3,
                lo: -128,
                hi: 127,
            };
            let mut r = Lcg(groups as u64 * 977);
            let x: Vec<i8> = (0..in_c * 30).map(|_| r.i8()).collect();
            let ic_g = in_c / groups;
            let w: Vec<i8> = (0..out_c * ic_g * 9).map(|_| r.i8()).collect();
            let bias: Vec<i32> = (0..out_c).map(|c| c as i32 * 500 - 1000).collect();
            let real: Vec<f64> = (0..out_c).map(|c| 0.0011 + 0.0007 * c as f64).collect();
            let rq: Vec<Requant> = real.iter().map(|&m| Requant::from_real(m)).collect();
            let mut y = vec![0i8; out_c * 9];
            conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut y);
            let mut exact = 0;
            for oc in 0..out_c {
                let grp = oc / (out_c / groups);
                for oy in 0..3 {
                    for ox in 0..3 {
                        let mut acc = bias[oc] as i64;
                        for icg in 0..ic_g {
                            let ic = grp * ic_g + icg;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) =
                                        ((oy * 2 + ky) as i64 - 1, (ox * 2 + kx) as i64 - 1);
                                    if (0..5).contains(&iy) && (0..6).contains(&ix) {
                                        let xv = x[ic * 30 + iy as usize * 6 + ix as usize] as i64;
                                        acc += (xv + 7)
                                            * w[((oc * ic_g + icg) * 3 + ky) * 3 + kx] as i64;
                                    }
                                }
                            }
                        }
                        let want = ((acc as f64 * real[oc]).round() as i64 + 3).clamp(-128, 127);
                        let got = y[(oc * 3 + oy) * 3 + ox] as i64;
                        assert!(
                            (got - want).abs() <= 1,
                            "g{groups} oc{oc} ({oy},{ox}): {got} vs {want}"
                        );
                        exact += usize::from(got == want);
                    }
                }
            }
            assert!(
                exact * 10 >= out_c * 9 * 9,
                "{exact} of {} exact",
                out_c * 9
            );
        }
    }

    #[test]
    fn fused_relu_clamps_at_the_zero_point() {
        let geom = Conv2d {
            batch: 1,
            in_c: 1,
            out_c: 1,
            groups: 1,
            window: Window2d {
                in_h: 1,
                in_w: 2,
                out_h: 1,
                out_w: 2,
                k_h: 1,
                k_w: 1,
                stride_h: 1,
                stride_w: 1,
                dil_h: 1,
                dil_w: 1,
                pad_top: 0,
                pad_left: 0,
                pad_bottom: 0,
                pad_right: 0,
            },
            act: Activation::Identity,
        };
        let p = ConvI8 {
            geom,
            input_zero: 0,
            output_zero: -20,
            lo: -20,
            hi: 127,
        };
        let mut y = [0i8; 2];
        conv2d_i8(
            &p,
            &[50, -50],
            &[2],
            None,
            &[Requant::from_real(0.5)],
            &mut y,
        );
        assert_eq!(y, [30, -20]);
    }
}
