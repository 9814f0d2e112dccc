//! AVX2 int8 helpers: the depthwise convolution of one padded plane, the 4 × 2 dot
//! products of the tiled kernel, and the requantisation of eight accumulators.

use core::arch::x86_64::*;

/// One channel of [`crate::conv::conv2d_i8_depthwise`] (horizontal stride 1 or 2) from its
/// padded plane (`row` bytes a row, the padding holding the input zero point), eight
/// output pixels at a time: per tap the eight input bytes (at stride 2 the even ones of
/// sixteen, `PSHUFB`) widened to `i32` and multiplied by the tap, then requantised by
/// [`requantize8`]. Integer sums `Σ w·x − zero·Σ w`: the portable kernel's values, bit
/// for bit. A chunk whose loads would pass the plane's end is summed lane by lane.
///
/// # Safety
/// AVX2; `padded` holds every window of the plane (as [`crate::conv::conv2d_i8_depthwise`]
/// lays it out), `taps` the channel's `k_h · k_w` weights, `out` its output plane.
#[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
#[target_feature(enable = "avx2")]
pub unsafe fn depthwise_i8_plane(
    p: &crate::conv::ConvI8,
    padded: &[i8],
    row: usize,
    taps: &[i32; 64],
    bias: i32,
    scale: f32,
    out: &mut [i8],
) {
    let w = &p.geom.window;
    let (kh, kw, stride) = (w.k_h, w.k_w, w.stride_w);
    let sum: i32 = taps[..kh * kw].iter().sum();
    let base = bias.wrapping_sub(p.input_zero.wrapping_mul(sum));
    let evens = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    let load = 8 * stride;
    for oy in 0..w.out_h {
        let y0 = oy * w.stride_h;
        let line = &mut out[oy * w.out_w..][..w.out_w];
        let mut ox = 0;
        while ox < w.out_w {
            let n = (w.out_w - ox).min(8);
            let x0 = ox * stride;
            // The last byte any load of this chunk reads.
            let last = (y0 + (kh - 1) * w.dil_h) * row + x0 + (kw - 1) * w.dil_w + load;
            let mut acc = [base; 8];
            if last <= padded.len() {
                // SAFETY: every load reads `load` bytes from a window's column, up to
                // `last` ≤ padded.len(); AVX2: the caller.
                unsafe {
                    let mut v = _mm256_set1_epi32(base);
                    for ky in 0..kh {
                        let r = padded.as_ptr().add((y0 + ky * w.dil_h) * row + x0);
                        for kx in 0..kw {
                            let xp = r.add(kx * w.dil_w);
                            let bytes = if stride == 1 {
                                _mm_loadl_epi64(xp as *const __m128i)
                            } else {
                                _mm_shuffle_epi8(_mm_loadu_si128(xp as *const __m128i), evens)
                            };
                            let x = _mm256_cvtepi8_epi32(bytes);
                            let t = _mm256_set1_epi32(taps[ky * kw + kx]);
                            v = _mm256_add_epi32(v, _mm256_mullo_epi32(x, t));
                        }
                    }
                    _mm256_storeu_si256(acc.as_mut_ptr() as *mut __m256i, v);
                }
            } else {
                for (i, a) in acc.iter_mut().enumerate().take(n) {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let at = (y0 + ky * w.dil_h) * row + (ox + i) * stride + kx * w.dil_w;
                            *a += taps[ky * kw + kx] * i32::from(padded[at]);
                        }
                    }
                }
            }
            // SAFETY: AVX2 (the caller).
            let q = unsafe { requantize8(acc, [scale; 8], p.output_zero, p.lo, p.hi) };
            line[ox..ox + n].copy_from_slice(&q[..n]);
            ox += n;
        }
    }
}

/// [`crate::conv::dot_4x2_unchecked`] with AVX2: per two reduction pairs one 128-bit load of
/// the four channels' packed weights (two pairs × two channel pairs × two steps), widened to
/// one 16-bit word a channel and step pair (low bytes sign-extended, `(h − low) >> 8` for
/// the second channel: [`crate::conv::pack_tiled_weights`]), the two pixels'
/// steps spread to every channel's lane by `VPERMD`, and one `VPMADDWD` per pixel (16
/// multiply-accumulates); the two pairs' halves added at the end. Integer sums: the same
/// values as the portable loop, bit for bit.
///
/// # Safety
/// AVX2; `x.len()` is a multiple of 8 and `w` points to `x.len()` readable bytes.
#[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
#[target_feature(enable = "avx2")]
pub unsafe fn dot_4x2_avx2(w: *const i8, x: &[i16], init: [i32; 8]) -> [i32; 8] {
    // Lanes of `acc0`/`acc1`: channels 0–3 of the even pairs, then of the odd pairs.
    let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (p0, p1) = (
        _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
        _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
    );
    for (j, xq) in x.chunks_exact(8).enumerate() {
        // SAFETY: w[16j..16j + 16] is inside the x.len() bytes the caller vouches for;
        // `xq` is 8 values (16 bytes).
        unsafe {
            // Words (c0 c1 | c2 c3) of pair q, then of pair q + 1; each halfword w_a + 256·w_b.
            let packed = _mm_loadu_si128(w.add(16 * j) as *const __m128i);
            let first = _mm_srai_epi16(_mm_slli_epi16(packed, 8), 8);
            let second = _mm_srai_epi16(_mm_sub_epi16(packed, first), 8);
            // (c0, c1, c2, c3) of pair q, then of pair q + 1.
            let wv = _mm256_set_m128i(
                _mm_unpackhi_epi32(first, second),
                _mm_unpacklo_epi32(first, second),
            );
            // (p0 pair q, p1 pair q, p0 pair q+1, p1 pair q+1) in both halves.
            let xv = _mm256_broadcastsi128_si256(_mm_loadu_si128(xq.as_ptr() as *const __m128i));
            acc0 = _mm256_add_epi32(
                acc0,
                _mm256_madd_epi16(wv, _mm256_permutevar8x32_epi32(xv, p0)),
            );
            acc1 = _mm256_add_epi32(
                acc1,
                _mm256_madd_epi16(wv, _mm256_permutevar8x32_epi32(xv, p1)),
            );
        }
    }
    let (mut a0, mut a1) = ([0i32; 8], [0i32; 8]);
    // SAFETY: each array holds 8 i32 (32 bytes).
    unsafe {
        _mm256_storeu_si256(a0.as_mut_ptr() as *mut __m256i, acc0);
        _mm256_storeu_si256(a1.as_mut_ptr() as *mut __m256i, acc1);
    }
    core::array::from_fn(|k| {
        let (c, pixel) = (k / 2, k % 2);
        let a = if pixel == 0 { &a0 } else { &a1 };
        init[k].wrapping_add(a[c]).wrapping_add(a[c + 4])
    })
}

/// [`crate::quant::requantize_scaled`] of eight accumulators at once, bit for bit:
/// `acc · scale` in f32, limited to ±2^22 (every product beyond it clamps to `lo` or `hi`
/// either way), rounded to nearest even by the same `1.5 · 2^23` addition, plus the zero
/// point, clamped.
///
/// # Safety
/// AVX2.
#[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
#[target_feature(enable = "avx2")]
pub unsafe fn requantize8(acc: [i32; 8], scale: [f32; 8], zero: i32, lo: i8, hi: i8) -> [i8; 8] {
    const MAGIC: f32 = 12_582_912.0;
    const LIMIT: f32 = 4_194_304.0;
    let mut out = [0i32; 8];
    // SAFETY: each array holds 8 values of 4 bytes.
    unsafe {
        let a = _mm256_cvtepi32_ps(_mm256_loadu_si256(acc.as_ptr() as *const __m256i));
        let y = _mm256_mul_ps(a, _mm256_loadu_ps(scale.as_ptr()));
        let y = _mm256_min_ps(
            _mm256_max_ps(y, _mm256_set1_ps(-LIMIT)),
            _mm256_set1_ps(LIMIT),
        );
        let m = _mm256_set1_ps(MAGIC);
        let r = _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(y, m), m));
        let r = _mm256_add_epi32(r, _mm256_set1_epi32(zero));
        let r = _mm256_min_epi32(
            _mm256_max_epi32(r, _mm256_set1_epi32(i32::from(lo))),
            _mm256_set1_epi32(i32::from(hi)),
        );
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, r);
    }
    out.map(|v| v as i8)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use crate::conv::*;
    use std::vec::Vec;

    /// The AVX2 int8 dot products of four channels × two pixels (run where the CPU has AVX2)
    /// equal the portable sums exactly, on random reductions of 8 to 400 steps over the whole
    /// i16 range the im2col and the packed weights hold.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_int8_dots_equal_the_portable_sums() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut next = crate::xorshift(0x1357_9bdf_u32);
        for _ in 0..200 {
            let depth = 8 * (1 + next(50));
            let x: Vec<i16> = (0..2 * depth).map(|_| next(511) as i16 - 255).collect();
            // Four channels' weights (−127..=127, as symmetric quantizers write them), packed
            // as `pack_tiled_weights` packs a group: per step pair the words of channels
            // (0, 1) and (2, 3), halfwords `w_a + 256·w_b`.
            let wc: Vec<Vec<i16>> = (0..4)
                .map(|_| (0..depth).map(|_| next(255) as i16 - 127).collect())
                .collect();
            let packed: Vec<i8> = (0..depth / 2)
                .flat_map(|kp| {
                    let wc = &wc;
                    [0, 2].into_iter().flat_map(move |a| {
                        [2 * kp, 2 * kp + 1].into_iter().flat_map(move |k| {
                            (wc[a][k] + 256 * wc[a + 1][k])
                                .to_le_bytes()
                                .map(|b| b as i8)
                        })
                    })
                })
                .collect();
            let init: [i32; 8] = core::array::from_fn(|_| next(20001) as i32 - 10000);
            let mut want = init;
            for (j, xq) in x.chunks_exact(4).enumerate() {
                for (c, w) in wc.iter().enumerate() {
                    let m = |a: i16, b: i16| i32::from(a) * i32::from(b);
                    want[2 * c] += m(w[2 * j], xq[0]) + m(w[2 * j + 1], xq[1]);
                    want[2 * c + 1] += m(w[2 * j], xq[2]) + m(w[2 * j + 1], xq[3]);
                }
            }
            // SAFETY: the CPU has AVX2 (checked above); `packed` holds x.len() bytes.
            let got = unsafe { x86::dot_4x2_avx2(packed.as_ptr(), &x, init) };
            assert_eq!(got, want, "depth {depth}");
        }
    }

    /// The AVX2 requantisation of eight accumulators equals the scalar one bit for bit, over
    /// accumulators near ties, large ones and the clamp bounds.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_requantisation_equals_the_scalar_one() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut next = crate::xorshift(0x0f0f_1e1e_u32);
        for case in 0..20_000 {
            let acc: [i32; 8] = core::array::from_fn(|_| match next(4) {
                0 => next(2001) as i32 - 1000,
                1 => (next(1 << 30) as i32) - (1 << 29),
                2 => [i32::MIN, i32::MAX, 0, 1, -1][next(5)],
                _ => 2 * (next(600) as i32) - 600 + 1,
            });
            let scale: [f32; 8] = core::array::from_fn(|_| match next(3) {
                0 => 0.5,
                1 => (1 + next(100_000)) as f32 * 1e-7,
                _ => (1 + next(1000)) as f32 * 1e-3,
            });
            let zero = next(256) as i32 - 128;
            let (lo, hi) = if case % 2 == 0 {
                (-128, 127)
            } else {
                (zero.clamp(-128, 127) as i8, 127)
            };
            // SAFETY: the CPU has AVX2 (checked above).
            let got = unsafe { x86::requantize8(acc, scale, zero, lo, hi) };
            for i in 0..8 {
                let want = crate::quant::requantize_scaled(acc[i], scale[i], zero, lo, hi);
                assert_eq!(got[i], want, "{} · {} + {zero}", acc[i], scale[i]);
            }
        }
    }
}
