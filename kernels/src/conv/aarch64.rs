//! AArch64 NEON kernels (NEON is part of every AArch64 target): the flattened-plane
//! convolutions of the x86 AVX-512 path ([`flat::Flat`]) in registers of four floats.

use super::flat::{Flat, FLAT_BUFFER};
use super::{Conv2d, F32_TILE_CHANNELS};
use core::arch::aarch64::*;
use core::mem::MaybeUninit;

/// Positions of a dense tile (three registers) and of a depthwise one (four).
const TILE: usize = 12;
const DEPTHWISE_TILE: usize = 16;

/// The layout of [`conv2d_flat`]'s buffer, if one channel's planes and the slack after
/// them (a tile's reach past the last row) fit.
pub fn flat_layout(p: &Conv2d) -> Option<Flat> {
    let f = Flat::of(p)?;
    (f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER).then_some(f)
}

/// The depthwise layout of [`depthwise_flat`], if one channel's planes and the slack fit.
pub fn depthwise_layout(w: &super::Window2d) -> Option<Flat> {
    let f = Flat::of_window(w)?;
    (f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER).then_some(f)
}

/// Copies channels `0..chunk` of `input` into `buf` as [`Flat`] lays them out and zeroes
/// the slack after them: the planes' row and a tile.
fn fill_planes(
    w: &super::Window2d,
    f: &Flat,
    input: &[f32],
    chunk: usize,
    buf: &mut [MaybeUninit<f32>],
) {
    let (ih, iw, step) = (w.in_h, w.in_w, w.stride_w);
    f.fill(w, chunk, buf, 0.0, |dst, c, a, (lo, hi, ix)| {
        let channel = &input[c * ih * iw..][..ih * iw];
        for (y, d) in dst.chunks_exact_mut(f.w2).enumerate() {
            let iy = (y * w.stride_h + a).wrapping_sub(w.pad_top);
            if iy >= ih || lo == hi {
                d.fill(MaybeUninit::new(0.0));
                continue;
            }
            let row = &channel[iy * iw + ix..];
            d[..lo].fill(MaybeUninit::new(0.0));
            for (dx, &v) in d[lo..hi].iter_mut().zip(row.iter().step_by(step)) {
                dx.write(v);
            }
            d[hi..].fill(MaybeUninit::new(0.0));
        }
    });
    buf[chunk * f.channel + f.w2..][..DEPTHWISE_TILE].fill(MaybeUninit::new(0.0));
}

/// `acc[i][k] += x[k] · w[i]` for the four channels of `w`, fused (`FMLA` by element).
#[inline(always)]
fn fma4(acc: &mut [[float32x4_t; 3]], x: &[float32x4_t; 3], w: float32x4_t) {
    // SAFETY: NEON is part of the AArch64 baseline.
    unsafe {
        for k in 0..3 {
            acc[0][k] = vfmaq_laneq_f32::<0>(acc[0][k], x[k], w);
            acc[1][k] = vfmaq_laneq_f32::<1>(acc[1][k], x[k], w);
            acc[2][k] = vfmaq_laneq_f32::<2>(acc[2][k], x[k], w);
            acc[3][k] = vfmaq_laneq_f32::<3>(acc[3][k], x[k], w);
        }
    }
}

/// [`super::conv2d_tiled`] over flattened planes with NEON: tiles of 8 output channels
/// (two packed blocks) × 12 consecutive plane positions (several output rows when rows
/// are narrow) in 24 registers; per tap three loads of positions, two of the blocks'
/// weights and 24 `FMLA` by element. Positions past a row's `out_w` are summed and
/// dropped; channel chunks after the first resume from the stored sums. Every output
/// sums from its bias over `(ic, ky, kx)` in order, one fused multiply-add a tap (0 over
/// the padding) — the AVX-512 kernels' sums.
pub fn conv2d_flat(
    p: &Conv2d,
    f: &Flat,
    input: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    const C: usize = F32_TILE_CHANNELS;
    let w = p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (in_len, out_len) = (p.in_c * ih * iw, p.out_c * oh * ow);
    let taps = w.k_h * w.k_w;
    let steps = p.in_c * taps;
    let blocks = p.out_c.div_ceil(C);
    assert!(packed.len() >= blocks * steps * C && f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER);
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    assert!(bias.is_none_or(|b| b.len() >= p.out_c));
    let tap_at = f.tap_offsets(&w);
    let kept = f.kept(ow);
    let per_chunk = ((FLAT_BUFFER - f.w2 - DEPTHWISE_TILE) / f.channel).min(p.in_c);
    let lanes = oh * f.w2;
    let plane = oh * ow;
    let mut buf = [MaybeUninit::<f32>::uninit(); FLAT_BUFFER];
    for n in 0..p.batch {
        let input = &input[n * in_len..][..in_len];
        let output = &mut output[n * out_len..][..out_len];
        let mut ic0 = 0;
        while ic0 < p.in_c {
            let chunk = per_chunk.min(p.in_c - ic0);
            fill_planes(&w, f, &input[ic0 * ih * iw..], chunk, &mut buf);
            // The chunk's planes and slack were written just above.
            let planes = buf.as_ptr() as *const f32;
            let mut t = 0;
            while t < lanes {
                let keep = kept.at(t, TILE.min(lanes - t));
                if keep != 0 {
                    let first = t + keep.trailing_zeros() as usize;
                    let out_at = first / f.w2 * ow + first % f.w2;
                    let mut b = 0;
                    while b < blocks {
                        let pair = b + 1 < blocks;
                        let c0 = b * C;
                        let nch = (if pair { 2 * C } else { C }).min(p.out_c - c0);
                        let wb = [
                            packed[b * steps * C..].as_ptr(),
                            packed[(b + usize::from(pair)) * steps * C..].as_ptr(),
                        ];
                        let mut acc = [[0.0f32; TILE]; 2 * C];
                        for (j, a) in acc.iter_mut().enumerate().take(nch) {
                            let o = &output[(c0 + j) * plane + out_at..];
                            if ic0 == 0 {
                                *a = [bias.map_or(0.0, |b| b[c0 + j]); TILE];
                            } else {
                                // Resume the kept positions' sums, in order.
                                let mut k = 0;
                                for (l, v) in a.iter_mut().enumerate() {
                                    if keep >> l & 1 == 1 {
                                        *v = o[k];
                                        k += 1;
                                    }
                                }
                            }
                        }
                        // SAFETY: loads read positions `t .. t + 12` plus a tap's offset
                        // of a chunk channel: inside its planes, the next channel's, or
                        // the slack after the chunk (`flat_layout`); weights at
                        // `((ic0 + c)·taps + tap)·4 + j` of each block, inside it.
                        unsafe {
                            sums(
                                planes,
                                f.channel,
                                &tap_at[..taps],
                                t,
                                ic0,
                                chunk,
                                wb,
                                pair,
                                &mut acc,
                            );
                        }
                        for (j, a) in acc.iter().enumerate().take(nch) {
                            let o = &mut output[(c0 + j) * plane + out_at..];
                            let mut k = 0;
                            for (l, &v) in a.iter().enumerate() {
                                if keep >> l & 1 == 1 {
                                    o[k] = v;
                                    k += 1;
                                }
                            }
                        }
                        b += if pair { 2 } else { 1 };
                    }
                }
                t += TILE;
            }
            ic0 += chunk;
        }
        p.act.apply_slice(output);
    }
}

/// The reduction of one tile of [`conv2d_flat`], from and into `acc` (8 channels × 12
/// positions; the second block's channels only when `pair`).
///
/// # Safety
/// As [`conv2d_flat`]'s loads: every position read is inside the buffer's written part.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn sums(
    planes: *const f32,
    channel: usize,
    tap_at: &[usize],
    t: usize,
    ic0: usize,
    chunk: usize,
    wb: [*const f32; 2],
    pair: bool,
    acc: &mut [[f32; TILE]; 8],
) {
    const C: usize = F32_TILE_CHANNELS;
    let taps = tap_at.len();
    // SAFETY: the caller's contract; `acc` rows are 12 floats (three registers).
    unsafe {
        let mut r: [[float32x4_t; 3]; 8] = core::array::from_fn(|j| {
            let a = acc[j].as_ptr();
            [vld1q_f32(a), vld1q_f32(a.add(4)), vld1q_f32(a.add(8))]
        });
        for c in 0..chunk {
            let base = planes.add(c * channel + t);
            let step = (ic0 + c) * taps * C;
            for (tap, &off) in tap_at.iter().enumerate() {
                let src = base.add(off);
                let x = [vld1q_f32(src), vld1q_f32(src.add(4)), vld1q_f32(src.add(8))];
                let ws = step + tap * C;
                fma4(&mut r[..4], &x, vld1q_f32(wb[0].add(ws)));
                if pair {
                    fma4(&mut r[4..], &x, vld1q_f32(wb[1].add(ws)));
                }
            }
        }
        for (a, v) in acc.iter_mut().zip(&r) {
            let a = a.as_mut_ptr();
            vst1q_f32(a, v[0]);
            vst1q_f32(a.add(4), v[1]);
            vst1q_f32(a.add(8), v[2]);
        }
    }
}

/// [`super::conv2d`]'s depthwise case with NEON over flattened planes (where a
/// channel's [`Flat`] planes fit): per channel its planes, then 16 positions at a time
/// (four registers), one `FMLA` by a scalar per tap and register, the outputs among
/// them kept, the activation over the channel's plane once. Every output sums from its
/// bias over `(ky, kx)` in order, one fused multiply-add a tap (0 over the padding).
pub fn depthwise_flat(
    p: &Conv2d,
    f: &Flat,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let taps = w.k_h * w.k_w;
    assert!(p.in_c == p.out_c && p.groups == p.in_c);
    assert!(input.len() >= p.in_c * ih * iw && output.len() >= p.out_c * oh * ow);
    assert!(weights.len() >= p.out_c * taps && f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER);
    let tap_at = f.tap_offsets(&w);
    let kept = f.kept(ow);
    let lanes = oh * f.w2;
    let mut buf = [MaybeUninit::<f32>::uninit(); FLAT_BUFFER];
    for c in 0..p.out_c {
        fill_planes(&w, f, &input[c * ih * iw..][..ih * iw], 1, &mut buf);
        let planes = buf.as_ptr() as *const f32;
        let wc = &weights[c * taps..][..taps];
        let b = bias.map_or(0.0, |b| b[c]);
        let out = &mut output[c * oh * ow..][..oh * ow];
        let (mut t, mut o) = (0, 0);
        while t < lanes {
            let keep = kept.at(t, DEPTHWISE_TILE.min(lanes - t));
            let mut v = [0.0f32; DEPTHWISE_TILE];
            // SAFETY: loads read positions `t .. t + 16` plus a tap's offset, inside the
            // channel's planes or the slack after them (`depthwise_layout`); `v` holds
            // 16 floats.
            unsafe {
                let mut acc = [vdupq_n_f32(b); 4];
                for (&wt, &off) in wc.iter().zip(&tap_at[..taps]) {
                    let src = planes.add(t + off);
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = vfmaq_n_f32(*a, vld1q_f32(src.add(4 * k)), wt);
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    vst1q_f32(v.as_mut_ptr().add(4 * k), *a);
                }
            }
            for (l, &x) in v.iter().enumerate() {
                if keep >> l & 1 == 1 {
                    out[o] = x;
                    o += 1;
                }
            }
            t += DEPTHWISE_TILE;
        }
        p.act.apply_slice(out);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use crate::conv::testing::*;
    use crate::conv::*;
    use crate::window;
    use std::vec;
    use std::vec::Vec;

    /// The AArch64 NEON flattened convolutions against the reference kernel: dense (random
    /// narrow and wide geometries, strides 1 to 3, dilations, uneven padding, up to 48
    /// input channels so several channel chunks, 1 to 20 output channels, a fused ReLU, two
    /// images) and depthwise (1 to 5 channels); within 1e-6 of each output's sum of |w·x|
    /// (one rounding a tap instead of two).
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_flat_convolutions_match_the_reference() {
        let mut next = crate::xorshift(0x6c07_8965_u32);
        let cases = if cfg!(miri) { 4 } else { 150 };
        for case in 0..cases {
            let (k_h, k_w) = [(3, 3), (10, 4), (1, 1), (3, 5), (2, 2)][case % 5];
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(12), k_w * dil_w + next(40));
            let (pad_top, pad_left) = (next(k_h), next(k_w));
            let depthwise = case % 3 == 2;
            let in_c = 1 + next(if case % 4 == 0 { 48 } else { 6 });
            let out_c = if depthwise { in_c.min(5) } else { 1 + next(20) };
            let p = Conv2d {
                batch: if depthwise { 1 } else { 2 },
                in_c: if depthwise { out_c } else { in_c },
                out_c,
                groups: if depthwise { out_c } else { 1 },
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (1 + next(3), 1 + next(3)),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_top + next(2), pad_left + next(2)],
                ),
                act: if case % 3 == 0 {
                    Activation::RELU
                } else {
                    Activation::Identity
                },
            };
            let Operands {
                x,
                wt,
                b,
                want,
                abs,
            } = operands(&p, &mut next);
            let mut got = vec![f32::NAN; want.len()];
            if depthwise {
                let f = aarch64::depthwise_layout(&p.window).expect("a channel fits the buffer");
                aarch64::depthwise_flat(&p, &f, &x, &wt, Some(&b), &mut got);
            } else {
                let f = aarch64::flat_layout(&p).expect("a channel fits the buffer");
                let packed: Vec<f32> = pack_f32_weights(&p, &wt).collect();
                aarch64::conv2d_flat(&p, &f, &x, &packed, Some(&b), &mut got);
            }
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * abs[i].max(1e-3),
                    "case {case} {p:?} at {i}: {g} vs {w}"
                );
            }
        }
    }
}
