//! The x86-64 path of [`conv2d_tiled`] when the build enables AVX2 and FMA
//! (`-C target-cpu=native` on a machine that has them): tiles of 4 channels × 16 or 8 pixels
//! of a row (horizontal stride 1, or 2: pairs loaded, the even columns kept), 8 pixels per
//! 256-bit register, one fused multiply-add per tap and
//! register; a tile whose windows reach into the padding (or past a short row's end) reads
//! with masked loads (zeros outside the row). Same order of taps per output as
//! the portable tiles; each product is not rounded before it is added (FMA), so results
//! differ from [`conv2d`]'s in the last bits (within 1e-6 of the sum of |w·x|, unit test).

use crate::conv::{Conv2d, F32_TILE_CHANNELS};
use core::arch::x86_64::*;

/// The sums of the tile at the row position whose first window starts at input column
/// `ix0` (`left` output pixels remain in the row), with `px` the pixels to store: 16, or
/// 8, or the row's last ones; `None` for a horizontal stride above 2. `rows` are the taps
/// `ky` inside the input.
#[allow(clippy::too_many_arguments)]
#[inline]
#[cfg(all(target_feature = "avx2", target_feature = "fma"))]
pub fn tile_fma(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    init: [f32; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    left: usize,
) -> Option<([[f32; 16]; 4], usize)> {
    // SAFETY: the build enables AVX2 and FMA (the cfg above); `fits` checked the reads.
    unsafe { tile_checked(p, input, wb, init, iy0, rows, ix0, left) }
}

/// [`tile_fma`] for callers that checked the CPU features themselves (tests).
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(
    not(all(target_feature = "avx2", target_feature = "fma")),
    allow(dead_code)
)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_checked(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    init: [f32; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    left: usize,
) -> Option<([[f32; 16]; 4], usize)> {
    let w = &p.window;
    let stride = w.stride_w;
    if !(1..=2).contains(&stride) || left == 0 {
        return None;
    }
    // 16 lanes where more than 8 pixels are left, else 8; the lanes past a row's end
    // compute on zeros and are not stored. Two registers a channel: eight independent
    // sums, enough to keep two FMA units busy (an 8-lane tile's four chains wait on the
    // FMA latency; a 12-pixel row is faster as one 16-lane tile than as 8 + 4).
    let lanes = if left > 8 { 16 } else { 8 };
    let (ih, iw) = (w.in_h, w.in_w);
    // Columns a row of taps reads: ix0 .. ix0 + span (at stride 2, both columns of every
    // pair, then the even ones kept). Inside the row: plain loads; else (the padding, a
    // short row's end) masked loads, which read only the lanes inside the row and give 0
    // elsewhere (a zero tap adds nothing: w·0 + s = s).
    let span = lanes * stride + (w.k_w - 1) * w.dil_w;
    let inside = ix0 >= 0 && ix0 + span as isize <= iw as isize;
    let taps = w.k_h * w.k_w;
    let steps = p.in_c * taps * F32_TILE_CHANNELS;
    assert!(wb.len() >= steps && input.len() >= p.in_c * ih * iw);
    let mut out = [[0f32; 16]; 4];
    // SAFETY: plain loads read 8 floats of input[row + c ..] with columns c .. c + 8
    // inside 0..iw (`inside`: every c below is in ix0 .. ix0 + span − 8), of a row `iy`
    // inside the input (`rows` bounds ky) of a channel `ic < in_c` (inside `input`,
    // asserted). Masked loads enable only the lanes whose column is in 0..iw of such a
    // row; the others are not accessed, so their addresses (wrapping arithmetic) may lie
    // outside. Weights at `(ic·taps + ky·k_w + kx)·4 + j < steps ≤ wb.len()`. AVX2 and
    // FMA: the caller.
    unsafe {
        let wp = wb.as_ptr();
        // 8 lanes `stride` columns apart from column `c` of the row at `row` (see
        // `lanes8` below, which the depthwise kernel shares).
        let lanes8 = |row: *const f32, c: isize| lanes8(row, c, iw, stride, inside);
        let mut a: [[__m256; 2]; 4] =
            core::array::from_fn(|j| [_mm256_set1_ps(init[j]), _mm256_set1_ps(init[j])]);
        for ic in 0..p.in_c {
            let plane = ic * ih * iw;
            let wic = wp.add(ic * taps * F32_TILE_CHANNELS);
            for ky in rows.0..rows.1 {
                let iy = (iy0 + (ky * w.dil_h) as isize) as usize;
                let row = input.as_ptr().add(plane + iy * iw);
                let wrow = wic.add(ky * w.k_w * F32_TILE_CHANNELS);
                for kx in 0..w.k_w {
                    let c = ix0 + (kx * w.dil_w) as isize;
                    let ws = wrow.add(kx * F32_TILE_CHANNELS);
                    let x0 = lanes8(row, c);
                    if lanes == 16 {
                        let x1 = lanes8(row, c + (8 * stride) as isize);
                        for (j, aj) in a.iter_mut().enumerate() {
                            let wj = _mm256_broadcast_ss(&*ws.add(j));
                            aj[0] = _mm256_fmadd_ps(wj, x0, aj[0]);
                            aj[1] = _mm256_fmadd_ps(wj, x1, aj[1]);
                        }
                    } else {
                        for (j, aj) in a.iter_mut().enumerate() {
                            let wj = _mm256_broadcast_ss(&*ws.add(j));
                            aj[0] = _mm256_fmadd_ps(wj, x0, aj[0]);
                        }
                    }
                }
            }
        }
        for (o, aj) in out.iter_mut().zip(&a) {
            _mm256_storeu_ps(o.as_mut_ptr(), aj[0]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), aj[1]);
        }
    }
    let px = lanes.min(left);
    Some((out, px))
}

/// [`crate::conv::conv2d_tiled`] with AVX-512 (horizontal stride 1 or 2): tiles of 8 output
/// channels (two packed blocks of four) × 16 pixels of a row, one 512-bit register a
/// channel held across the whole reduction; per tap one (at stride 2 two, the even lanes
/// picked by `VPERMT2PS`) masked load of the row's columns, 0 over the padding and past
/// the row, eight weight broadcasts and eight FMAs of 16 lanes (twice an AVX2 tile's
/// work a tap). The last block of four alone. Every output sums from its bias over
/// `(ic, ky, kx)` in the reference's order, one FMA a tap, wherever its tile starts.
///
/// # Safety
/// The CPU supports AVX-512F; the operands are as [`crate::conv::conv2d_tiled`] asserts, and
/// `p.window.stride_w` is 1 or 2.
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
#[target_feature(enable = "avx512f")]
pub unsafe fn conv2d_tiled_avx512(
    p: &Conv2d,
    input: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    const C: usize = F32_TILE_CHANNELS;
    let w = p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (in_len, out_len) = (p.in_c * ih * iw, p.out_c * oh * ow);
    let steps = p.in_c * w.k_h * w.k_w;
    let blocks = p.out_c.div_ceil(C);
    assert!((1..=2).contains(&w.stride_w) && packed.len() >= blocks * steps * C);
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    for n in 0..p.batch {
        let input = &input[n * in_len..][..in_len];
        let output = &mut output[n * out_len..][..out_len];
        let mut b = 0;
        while b < blocks {
            let pair = b + 1 < blocks;
            let first = b * C;
            let nch = (if pair { 2 * C } else { C }).min(p.out_c - first);
            let init: [f32; 8] = core::array::from_fn(|j| {
                bias.map_or(0.0, |bs| bs.get(first + j).map_or(0.0, |v| *v))
            });
            let wb = [
                packed[b * steps * C..].as_ptr(),
                packed[(b + usize::from(pair)) * steps * C..].as_ptr(),
            ];
            for oy in 0..oh {
                let iy0 = (oy * w.stride_h) as isize - w.pad_top as isize;
                let rows = crate::conv::valid_range(w.k_h, ih, w.dil_h, iy0);
                let mut ox = 0;
                while ox < ow {
                    let px = (ow - ox).min(16);
                    let ix0 = (ox * w.stride_w) as isize - w.pad_left as isize;
                    let at = Tile { iy0, rows, ix0, px };
                    let mut sums = [_mm512_setzero_ps(); 8];
                    // SAFETY: AVX-512F (the caller); the tile reads rows inside the
                    // input and columns by masks inside them, weights inside the blocks.
                    unsafe {
                        if pair {
                            sums = tile::<8>(p, input, wb, &init, &at);
                        } else {
                            let s4 = tile::<4>(p, input, wb, &init, &at);
                            sums[..4].copy_from_slice(&s4);
                        }
                    }
                    let store = ((1u32 << px) - 1) as __mmask16;
                    for (j, s) in sums.iter().enumerate().take(nch) {
                        let out = &mut output[((first + j) * oh + oy) * ow + ox..][..px];
                        // SAFETY: `out` holds the tile's `px` ≤ 16 outputs of this row.
                        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), store, *s) };
                        p.act.apply_slice(out);
                    }
                    ox += px;
                }
            }
            b += if pair { 2 } else { 1 };
        }
    }
}

/// Where a tile of [`conv2d_tiled_avx512`] is: its first window's top row `iy0` and
/// left column `ix0`, the taps `ky` in `rows` inside the input, `px` ≤ 16 pixels.
struct Tile {
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    px: usize,
}

/// The sums of `CH` (4 or 8) channels × 16 lanes of one tile (the lanes from `px` on are
/// not stored).
///
/// # Safety
/// AVX-512F; `wb` are the tile's packed blocks (the second read only when `CH` is 8),
/// each of `in_c · k_h · k_w · 4` weights; `input` one image.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const CH: usize>(
    p: &Conv2d,
    input: &[f32],
    wb: [*const f32; 2],
    init: &[f32; 8],
    at: &Tile,
) -> [__m512; CH] {
    const C: usize = F32_TILE_CHANNELS;
    let w = &p.window;
    let (ih, iw) = (w.in_h, w.in_w);
    let (kw, taps) = (w.k_w, w.k_h * w.k_w);
    let stride = w.stride_w;
    // Lanes `lo..hi` of a load of 16 columns from `c`: inside 0..iw and before `lanes`.
    let mask = |c: isize, lanes: usize| -> __mmask16 {
        let lo = (-c).clamp(0, 16) as u32;
        let hi = (iw as isize - c).clamp(0, lanes.min(16) as isize) as u32;
        if hi <= lo {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        }
    };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut acc: [__m512; CH] = core::array::from_fn(|j| _mm512_set1_ps(init[j]));
    // SAFETY: rows iy = iy0 + ky·dil_h with ky in `rows` are inside 0..ih (valid_range),
    // so `row` starts a row of `iw` floats inside `input` (one image, `in_c` planes);
    // masked loads touch only columns in 0..iw of it. Weights at (ic·taps + ky·k_w +
    // kx)·4 + j < in_c·taps·4 of each block. AVX-512F: the caller.
    unsafe {
        for ic in 0..p.in_c {
            let plane = input.as_ptr().add(ic * ih * iw);
            for ky in at.rows.0..at.rows.1 {
                let iy = (at.iy0 + (ky * w.dil_h) as isize) as usize;
                let row = plane.add(iy * iw);
                let step = (ic * taps + ky * kw) * C;
                for kx in 0..kw {
                    let c = at.ix0 + (kx * w.dil_w) as isize;
                    let x = if stride == 1 {
                        _mm512_maskz_loadu_ps(mask(c, at.px), row.wrapping_offset(c))
                    } else {
                        let a = _mm512_maskz_loadu_ps(mask(c, 2 * at.px), row.wrapping_offset(c));
                        let b = _mm512_maskz_loadu_ps(
                            mask(c + 16, (2 * at.px).saturating_sub(16)),
                            row.wrapping_offset(c + 16),
                        );
                        _mm512_permutex2var_ps(a, even, b)
                    };
                    let ws = step + kx * C;
                    for (j, aj) in acc.iter_mut().enumerate() {
                        let wj = *wb[j / C].add(ws + j % C);
                        *aj = _mm512_fmadd_ps(_mm512_set1_ps(wj), x, *aj);
                    }
                }
            }
        }
    }
    acc
}

/// 8 lanes `stride` (1 or 2) columns apart from column `c` of the row at `row` (`iw`
/// columns), 0 in the lanes outside the row: plain loads when `inside`, else masked.
///
/// # Safety
/// AVX2; `row` starts a row of `iw` readable floats; when `inside`, the columns
/// `c .. c + 8·stride` are in 0..iw.
#[inline(always)]
unsafe fn lanes8(row: *const f32, c: isize, iw: usize, stride: usize, inside: bool) -> __m256 {
    // SAFETY: the caller's promise; masked lanes are not accessed.
    unsafe {
        let cols8 = |c: isize| {
            let xp = row.wrapping_offset(c);
            if inside {
                _mm256_loadu_ps(xp)
            } else {
                let ix = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let lo = _mm256_set1_epi32((-c - 1) as i32);
                let hi = _mm256_set1_epi32((iw as isize - c) as i32);
                let m = _mm256_and_si256(_mm256_cmpgt_epi32(ix, lo), _mm256_cmpgt_epi32(hi, ix));
                _mm256_maskload_ps(xp, m)
            }
        };
        if stride == 1 {
            cols8(c)
        } else {
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(cols8(c), cols8(c + 8));
            _mm256_permutevar8x32_ps(even, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7))
        }
    }
}

/// A depthwise convolution (one input channel per output channel; horizontal stride 1 or
/// 2) of one image, [`crate::conv::conv2d`]'s case for it: per output row up to 32 pixels
/// at a time in four registers, each summing the bias then every tap inside the input in
/// the reference's order (ky, then kx; taps over the padding read as zeros by masked
/// loads), one FMA per tap and register, stored once (the reference adds each tap into
/// the output plane in memory).
///
/// # Safety
/// The CPU supports AVX2 and FMA; `input` and `output` hold one image of `p`, `weights`
/// its `out_c · k_h · k_w` taps.
#[cfg_attr(
    not(all(target_feature = "avx2", target_feature = "fma")),
    allow(dead_code)
)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn depthwise_checked(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = &p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (kh, kw, stride) = (w.k_h, w.k_w, w.stride_w);
    assert!(input.len() >= p.in_c * ih * iw && output.len() >= p.out_c * oh * ow);
    assert!(weights.len() >= p.out_c * kh * kw && (1..=2).contains(&stride));
    for c in 0..p.out_c {
        let taps = &weights[c * kh * kw..][..kh * kw];
        let b = bias.map_or(0.0, |b| b[c]);
        let plane = &input[c * ih * iw..][..ih * iw];
        for oy in 0..oh {
            let iy0 = (oy * w.stride_h) as isize - w.pad_top as isize;
            let rows = crate::conv::valid_range(kh, ih, w.dil_h, iy0);
            let out = &mut output[(c * oh + oy) * ow..][..ow];
            let mut ox = 0;
            while ox < ow {
                let chunks = (ow - ox).div_ceil(8).min(4);
                let ix0 = (ox * stride) as isize - w.pad_left as isize;
                let span = 8 * chunks * stride + (kw - 1) * w.dil_w;
                let inside = ix0 >= 0 && ix0 + span as isize <= iw as isize;
                let mut acc = [_mm256_set1_ps(b); 4];
                for ky in rows.0..rows.1 {
                    let iy = (iy0 + (ky * w.dil_h) as isize) as usize;
                    let row = plane[iy * iw..].as_ptr();
                    for kx in 0..kw {
                        let wt = _mm256_set1_ps(taps[ky * kw + kx]);
                        let c0 = ix0 + (kx * w.dil_w) as isize;
                        for (k, a) in acc.iter_mut().enumerate().take(chunks) {
                            // SAFETY: `row` starts row `iy < ih` of the plane (`iw`
                            // floats); `inside` only when every column read is in 0..iw.
                            let x = unsafe {
                                lanes8(row, c0 + (8 * k * stride) as isize, iw, stride, inside)
                            };
                            *a = _mm256_fmadd_ps(wt, x, *a);
                        }
                    }
                }
                let mut v = [0f32; 32];
                for (k, a) in acc.iter().enumerate().take(chunks) {
                    // SAFETY: `v` holds 32 floats, chunk k writes 8k .. 8k + 8.
                    unsafe { _mm256_storeu_ps(v.as_mut_ptr().add(8 * k), *a) };
                }
                let n = (8 * chunks).min(ow - ox);
                let seg = &mut out[ox..ox + n];
                seg.copy_from_slice(&v[..n]);
                p.act.apply_slice(seg);
                ox += n;
            }
        }
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

    /// The x86 AVX2/FMA depthwise kernel (run where the CPU has them) against sums in f64:
    /// random kernels (1×1 to 5×5), strides 1 and 2 (vertical 1 to 3), dilations, padding,
    /// rows of 1 to 70 pixels (one to four registers and the row's end), a fused clamp;
    /// within 1e-6 of each output's sum of |w·x|. Where the CPU has AVX-512F, the flattened
    /// depthwise kernel gives its floats bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_depthwise_matches_f64_sums() {
        if cfg!(miri)
            || !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let mut next = crate::xorshift(0x7f4a_7c15_u32);
        for case in 0..150 {
            let (k_h, k_w) = (1 + next(5), 1 + next(5));
            let (stride_h, stride_w, dil_h, dil_w) =
                (1 + next(3), 1 + next(2), 1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(5), k_w * dil_w + next(70));
            let (pad_top, pad_left, pad_bottom, pad_right) =
                (next(k_h), next(k_w), next(k_h), next(k_w));
            let c = 1 + next(5);
            let p = Conv2d {
                batch: 1,
                in_c: c,
                out_c: c,
                groups: c,
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (stride_h, stride_w),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_bottom, pad_right],
                ),
                act: if case % 3 == 0 {
                    Activation::Clip { min: 0.0, max: 6.0 }
                } else {
                    Activation::Identity
                },
            };
            let (out_h, out_w) = (p.window.out_h, p.window.out_w);
            let mut value = |_| (next(2001) as f32 - 1000.0) * 1.3e-3;
            let x: Vec<f32> = (0..c * in_h * in_w).map(&mut value).collect();
            let wt: Vec<f32> = (0..c * k_h * k_w).map(&mut value).collect();
            let b: Vec<f32> = (0..c).map(&mut value).collect();
            let mut got = vec![f32::NAN; c * out_h * out_w];
            // SAFETY: the CPU has AVX2 and FMA (checked above); the shapes are `p`'s.
            unsafe { x86::depthwise_checked(&p, &x, &wt, Some(&b), &mut got) };
            for ch in 0..c {
                for oy in 0..out_h {
                    for ox in 0..out_w {
                        let (mut sum, mut abs) = (f64::from(b[ch]), f64::from(b[ch]).abs());
                        for ky in 0..k_h {
                            for kx in 0..k_w {
                                let iy = (oy * stride_h + ky * dil_h) as isize - pad_top as isize;
                                let ix = (ox * stride_w + kx * dil_w) as isize - pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= in_h as isize || ix >= in_w as isize {
                                    continue;
                                }
                                let t = f64::from(wt[(ch * k_h + ky) * k_w + kx])
                                    * f64::from(x[(ch * in_h + iy as usize) * in_w + ix as usize]);
                                sum += t;
                                abs += t.abs();
                            }
                        }
                        let want = p.act.apply(sum as f32);
                        let g = got[(ch * out_h + oy) * out_w + ox];
                        assert!(
                            f64::from((g - want).abs()) <= 1e-6 * abs.max(1e-3),
                            "case {case} {p:?} c{ch} y{oy} x{ox}: {g} vs {want}"
                        );
                    }
                }
            }
            // The flattened AVX-512 kernel (where the CPU has it): the same FMA chains.
            if std::is_x86_feature_detected!("avx512f") {
                let f = x86::Flat::of_window(&p.window).expect("a channel fits the buffer");
                let mut flat = vec![f32::NAN; got.len()];
                // SAFETY: the CPU has AVX-512F; the shapes are `p`'s.
                unsafe { x86::depthwise_flat_avx512(&p, &f, &x, &wt, Some(&b), &mut flat) };
                for (i, (g, f)) in got.iter().zip(&flat).enumerate() {
                    assert_eq!(g.to_bits(), f.to_bits(), "case {case} {p:?} at {i}");
                }
            }
        }
    }

    /// The AVX-512 dense convolution (run where the CPU has AVX-512F) against the reference
    /// kernel on random shapes: 1 to 20 output channels (pairs of blocks and a last block
    /// alone), rows of up to 50 pixels (tiles of 16 and the tail), strides 1 and 2 both
    /// ways, dilations, paddings, a fused ReLU, two images; within 1e-6 of each output's sum
    /// of |w·x|.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_convolution_matches_the_reference() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut next = crate::xorshift(0x7f4a_7c15_u32);
        for case in 0..120 {
            let (k_h, k_w) = [(3, 3), (5, 1), (1, 1), (3, 5), (2, 2)][case % 5];
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(5), k_w * dil_w + next(46));
            let (pad_top, pad_left) = (next(k_h), next(k_w));
            let (stride_h, stride_w) = (1 + next(2), 1 + case % 2);
            let p = Conv2d {
                batch: 2,
                in_c: 1 + next(5),
                out_c: 1 + next(20),
                groups: 1,
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (stride_h, stride_w),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_top, pad_left],
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
            let packed: Vec<f32> = pack_f32_weights(&p, &wt).collect();
            let mut got = vec![f32::NAN; want.len()];
            // SAFETY: the CPU has AVX-512F (checked above); the operands are `p`'s.
            unsafe { x86::conv2d_tiled_avx512(&p, &x, &packed, Some(&b), &mut got) };
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * abs[i].max(1e-3),
                    "case {case} {p:?} at {i}: {g} vs {w}"
                );
            }
        }
    }

    /// The x86 AVX2/FMA tiles (run where the CPU has them, whatever the build enables)
    /// against the reference kernel: a tile at every position, on random 3×3, 5×1, 1×1, 3×5
    /// and dilated geometries at horizontal stride 1 and 2 with padding and rows of 1 to 40
    /// pixels (tiles inside the row,
    /// over the padding, past a short row's end), within 1e-6 of each output's sum of |w·x|
    /// (one rounding per tap instead of two).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_tiles_match_the_reference() {
        if cfg!(miri)
            || !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let mut next = crate::xorshift(0x2545_f491_u32);
        let mut tiles = 0;
        for case in 0..200 {
            let (k_h, k_w) = [(3, 3), (5, 1), (1, 1), (3, 5)][case % 4];
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(4), k_w * dil_w + next(41));
            let (pad_top, pad_left) = (next(k_h), next(k_w));
            let stride_w = 1 + case % 2;
            let p = Conv2d {
                batch: 1,
                in_c: 1 + next(6),
                out_c: 1 + next(9),
                groups: 1,
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (1, stride_w),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_top, pad_left],
                ),
                act: Activation::Identity,
            };
            let (out_h, out_w) = (p.window.out_h, p.window.out_w);
            let mut value = |_| (next(2001) as f32 - 1000.0) * 1.37e-3;
            let x: Vec<f32> = (0..p.in_c * in_h * in_w).map(&mut value).collect();
            let wt: Vec<f32> = (0..p.out_c * p.in_c * k_h * k_w).map(&mut value).collect();
            let b: Vec<f32> = (0..p.out_c).map(&mut value).collect();
            let mut want = vec![0.0; p.out_c * out_h * out_w];
            conv2d(&p, &x, &wt, Some(&b), &mut want);
            // Each output's scale: its sum of |w·x| (the bound of the rounding differences).
            let mut abs = vec![0.0; want.len()];
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let wa: Vec<f32> = wt.iter().map(|v| v.abs()).collect();
            let ba: Vec<f32> = b.iter().map(|v| v.abs()).collect();
            conv2d(&p, &xa, &wa, Some(&ba), &mut abs);
            let packed: Vec<f32> = pack_f32_weights(&p, &wt).collect();
            let steps = p.in_c * k_h * k_w * F32_TILE_CHANNELS;
            for blk in 0..p.out_c.div_ceil(F32_TILE_CHANNELS) {
                let wb = &packed[blk * steps..][..steps];
                let init: [f32; 4] = core::array::from_fn(|j| {
                    b.get(blk * F32_TILE_CHANNELS + j).copied().unwrap_or(0.0)
                });
                for oy in 0..out_h {
                    let iy0 = oy as isize - pad_top as isize;
                    let rows = crate::valid_range(k_h, in_h, dil_h, iy0);
                    for ox in 0..out_w {
                        let ix0 = (ox * stride_w) as isize - pad_left as isize;
                        // SAFETY: the CPU has AVX2 and FMA (checked above).
                        let tile = unsafe {
                            x86::tile_checked(&p, &x, wb, init, iy0, rows, ix0, out_w - ox)
                        };
                        let Some((vals, px)) = tile else { continue };
                        tiles += 1;
                        for (j, v) in vals.iter().enumerate() {
                            let c = blk * F32_TILE_CHANNELS + j;
                            if c >= p.out_c {
                                break;
                            }
                            for (i, &got) in v.iter().enumerate().take(px) {
                                let at = (c * out_h + oy) * out_w + ox + i;
                                assert!(
                                    (got - want[at]).abs() <= 1e-6 * abs[at].max(1e-3),
                                    "case {case} {p:?} c{c} y{oy} x{}: {got} vs {}",
                                    ox + i,
                                    want[at]
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(tiles > 1000, "{tiles} tiles");
    }
}
