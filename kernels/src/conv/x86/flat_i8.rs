//! int8 dense convolutions over flattened planes of input-channel pairs (AVX-512BW; VNNI
//! where the build enables it).

use super::flat::{spread, Chunks};
use crate::conv::flat::Flat;
use crate::conv::Conv2d;
use crate::quant::requantize16;
use core::arch::x86_64::*;

/// 32-bit words of [`conv2d_i8_flat`]'s stack buffer (64 KiB): the phase planes of every
/// input channel pair.
const FLAT_I8_BUFFER: usize = 16384;

/// Words of [`conv2d_i8_flat`]'s buffer for the weights, widened once per call from the
/// packed bytes to one 32-bit word (two `i16` steps) per channel and step pair.
const FLAT_I8_WEIGHTS: usize = 16384;

/// The layout of [`conv2d_i8_flat`]'s buffer for `g`, where it holds every channel
/// pair's planes (and `g` has two input channels or more: with one, the packed weights
/// pair two taps, not two channels).
#[cfg_attr(not(target_feature = "avx512bw"), allow(dead_code))]
pub fn flat_i8(g: &Conv2d) -> Option<Flat> {
    let f = Flat::of(g)?;
    // Channel pairs per tap: not the steps of `flattened` convolutions' packed weights.
    (g.in_c >= 2
        && !crate::conv::tiled_i8::flattened(g)
        && g.in_c.div_ceil(2) * f.channel + f.w2 <= FLAT_I8_BUFFER
        && crate::conv::tiled_weights_len(g) / 2 <= FLAT_I8_WEIGHTS)
        .then_some(f)
}

/// `acc + Σ` of the pairwise products of the `i16` halves of `x` and `w`, per 32-bit
/// lane: `VPDPWSSD` where the build enables AVX-512 VNNI, else `VPMADDWD` + `VPADDD`.
/// Integer sums either way (products of `i16` pairs below 2^31 in magnitude, wrapping
/// addition).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
#[cfg_attr(target_feature = "avx512vnni", target_feature(enable = "avx512vnni"))]
fn dot_pairs(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
    #[cfg(target_feature = "avx512vnni")]
    {
        _mm512_dpwssd_epi32(acc, x, w)
    }
    #[cfg(not(target_feature = "avx512vnni"))]
    {
        _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))
    }
}

/// [`crate::conv::conv2d_i8_tiled`] with AVX-512 (BW; VNNI where enabled) over flattened
/// output planes, as [`conv2d_flat_avx512`] for `f32`: the input is copied once into
/// phase planes of 32-bit words, each the `x − zero` of two input channels side by side
/// (0 in the padding) — the operand layout of the packed weights, whose words are two
/// input channels of one tap. A tile of 8 output channels × 32 consecutive plane
/// positions (several output rows) costs per channel pair and tap two loads and sixteen
/// `VPDPWSSD` of 16 lanes (each 32 multiply-accumulates), the channels' weight words
/// broadcast from a copy of the packed weights widened once per call (each channel pair's
/// halfwords `w_a + 256·w_b` split into the two channels' words:
/// [`crate::conv::pack_tiled_weights`]). Positions past a row's `out_w` are
/// summed and dropped. The integer sums are exact, so the bytes are the portable
/// kernel's, bit for bit, requantised by [`requantize16`] (as [`requantize8`] eight at once).
///
/// # Safety
/// The CPU supports AVX-512F and AVX-512BW (and AVX-512 VNNI where the build enables
/// it); the operands are as [`crate::conv::conv2d_i8_tiled`] asserts; `f` is
/// `flat_i8(&p.geom)`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_feature = "avx512bw"), allow(dead_code))]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn conv2d_i8_flat(
    p: &crate::conv::ConvI8,
    f: &Flat,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[f32],
    output: &mut [i8],
) {
    use core::mem::MaybeUninit;
    let f = *f;
    let g = &p.geom;
    let w = g.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (in_len, plane) = (g.in_c * ih * iw, oh * ow);
    let taps = w.k_h * w.k_w;
    let depth = crate::conv::tiled_depth(g);
    let pairs = g.in_c.div_ceil(2);
    assert!(g.in_c >= 2 && pairs * f.channel + f.w2 <= FLAT_I8_BUFFER);
    assert!(packed.len() >= crate::conv::tiled_weights_len(g) && scales.len() >= g.out_c);
    assert!(input.len() >= g.batch * in_len && output.len() >= g.batch * g.out_c * plane);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    let tap_at = f.tap_offsets(&w);
    let kept = f.kept(ow);
    let lanes = oh * f.w2;
    let quads = g.out_c / 4;
    let mut buf = [MaybeUninit::<i32>::uninit(); FLAT_I8_BUFFER];
    // The weights widened: each packed word (channels a, b of a step pair) gives channel a's
    // word then b's, so a group's step pair is its channels' words in order.
    let len = crate::conv::tiled_weights_len(g);
    let mut widened = [MaybeUninit::<i32>::uninit(); FLAT_I8_WEIGHTS];
    for (k, word) in packed[..len].chunks_exact(4).enumerate() {
        // SAFETY: `word` is 4 bytes.
        let [a0, a1, b0, b1] = unsafe { crate::conv::tiled_i8_weights::unpair_word(word.as_ptr()) };
        let pair = |x: i32, y: i32| (x as u16 as u32 | (y as u16 as u32) << 16) as i32;
        widened[2 * k].write(pair(a0, a1));
        widened[2 * k + 1].write(pair(b0, b1));
    }
    for n in 0..g.batch {
        let input = &input[n * in_len..][..in_len];
        let output = &mut output[n * g.out_c * plane..][..g.out_c * plane];
        fill_pair_planes(p, &f, input, &mut buf);
        // SAFETY: `fill_pair_planes` wrote the first `pairs · f.channel + f.w2` words.
        let planes = buf.as_ptr() as *const i32;
        let mut t = 0;
        while t < lanes {
            let n = (lanes - t).min(32);
            let busy = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
            let keep = kept.at(t, n) as u32;
            if keep == 0 {
                t += n;
                continue;
            }
            let first = t + keep.trailing_zeros() as usize;
            let at = FlatI8Tile {
                planes,
                channel: f.channel,
                pairs,
                tap_at: &tap_at[..taps],
                ic2: pairs,
                t,
                busy,
                keep,
                out_at: first / f.w2 * ow + first % f.w2,
                plane,
                scales,
                bias,
                zero: p.output_zero,
                lo: p.lo,
                hi: p.hi,
            };
            // Channels in groups as packed: quads (in pairs of quads, then one alone),
            // then pairs (the last one's partner zeros where `out_c` is odd).
            // `widened`: its first len / 2 words are written (above).
            let words = widened.as_ptr() as *const i32;
            let mut c = 0;
            // SAFETY: AVX-512F/BW (the caller). A group of `N` channels from `c` has
            // its `depth / 2` words per channel at `c · depth / 2`, the channels' words
            // of a step pair side by side, inside the `len / 2` widened words; loads and
            // stores as `FlatI8Tile` says.
            unsafe {
                while c + 8 <= 4 * quads {
                    let wb = [words.add(c * depth / 2), words.add((c + 4) * depth / 2)];
                    flat_i8_tile::<8, 4>(&at, wb, c, 8, n > 16, output);
                    c += 8;
                }
                if c < 4 * quads {
                    let wb = [words.add(c * depth / 2); 2];
                    flat_i8_tile::<4, 4>(&at, wb, c, 4, n > 16, output);
                    c += 4;
                }
                while c < g.out_c {
                    let wb = [words.add(c * depth / 2); 2];
                    let nch = (g.out_c - c).min(2);
                    flat_i8_tile::<2, 2>(&at, wb, c, nch, n > 16, output);
                    c += 2;
                }
            }
            t += n;
        }
    }
}

/// Copies `input` (one image) into `buf` as [`conv2d_i8_flat`] lays it out: for each
/// pair of input channels the [`Flat`] phase planes of words `(x₀ − zero) | (x₁ −
/// zero) << 16` (0 in the padding; a missing second channel 0), then a zero row of
/// slack. 16 columns at a time by masked loads (at horizontal stride 2 the even bytes
/// of 32), else one by one.
///
/// # Safety
/// AVX-512F/BW; `buf` holds every channel pair's planes and the slack row.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fill_pair_planes(
    p: &crate::conv::ConvI8,
    f: &Flat,
    input: &[i8],
    buf: &mut [core::mem::MaybeUninit<i32>],
) {
    let g = &p.geom;
    let w = &g.window;
    let (ih, iw, step) = (w.in_h, w.in_w, w.stride_w);
    let zero = p.input_zero;
    assert!(input.len() >= g.in_c * ih * iw);
    let word = |a: i8, b: i8| {
        let lo = (i32::from(a) - zero) as u16 as u32;
        let hi = (i32::from(b) - zero) as u16 as u32;
        (lo | hi << 16) as i32
    };
    let (z, low) = (_mm512_set1_epi32(zero), _mm512_set1_epi32(0xffff));
    f.fill(w, g.in_c.div_ceil(2), buf, 0, |dst, i, a, (lo, hi, ix)| {
        // The second channel, or none (its half 0: `x − zero` of a value `zero`).
        let second = 2 * i + 1 < g.in_c;
        let c0 = &input[2 * i * ih * iw..][..ih * iw];
        let c1 = &input[(2 * i + usize::from(second)) * ih * iw..][..ih * iw];
        let chunks = Chunks::new(f.w2, lo, hi, ix, step);
        for (y, d) in dst.chunks_exact_mut(f.w2).enumerate() {
            let iy = (y * w.stride_h + a).wrapping_sub(w.pad_top);
            if iy >= ih || lo == hi {
                d.fill(core::mem::MaybeUninit::new(0));
                continue;
            }
            let (r0, r1) = (&c0[iy * iw..][..iw], &c1[iy * iw..][..iw]);
            if step > 2 {
                d[..lo].fill(core::mem::MaybeUninit::new(0));
                let cols = r0[ix..].iter().zip(&r1[ix..]).step_by(step);
                for (dx, (&x0, &x1)) in d[lo..hi].iter_mut().zip(cols) {
                    dx.write(word(x0, if second { x1 } else { zero as i8 }));
                }
                d[hi..].fill(core::mem::MaybeUninit::new(0));
                continue;
            }
            for k in 0..f.w2.div_ceil(16) {
                let (x0, valid, store, base) = chunks.at(k);
                // SAFETY: AVX-512F/BW (this function); masked lanes are not accessed, the
                // others read columns in 0..iw of the rows; stores write lanes below w2.
                unsafe {
                    let load = |row: &[i8]| -> __m512i {
                        let at = row.as_ptr().wrapping_offset(base);
                        if step == 1 {
                            _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(valid as __mmask16, at))
                        } else {
                            let v =
                                _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(spread(valid), at));
                            _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(v))
                        }
                    };
                    let v = _mm512_and_si512(_mm512_sub_epi32(load(r0), z), low);
                    let v = if second {
                        let h = _mm512_sub_epi32(load(r1), z);
                        _mm512_or_si512(v, _mm512_slli_epi32::<16>(h))
                    } else {
                        v
                    };
                    let v = _mm512_maskz_mov_epi32(valid as __mmask16, v);
                    _mm512_mask_storeu_epi32(d.as_mut_ptr().add(x0) as *mut i32, store, v);
                }
            }
        }
    });
}

/// Where a tile of [`conv2d_i8_flat`] reads and writes, and its requantisation.
struct FlatI8Tile<'a> {
    /// The input's pair planes, `channel` words a channel pair, `pairs` pairs.
    planes: *const i32,
    channel: usize,
    pairs: usize,
    /// Each tap's offset in a pair's planes.
    tap_at: &'a [usize],
    /// Word steps of a tap in the packed weights: the channel pairs.
    ic2: usize,
    /// First position, busy positions, kept ones, the first kept one's output index.
    t: usize,
    busy: u32,
    keep: u32,
    out_at: usize,
    /// Outputs of a channel plane.
    plane: usize,
    scales: &'a [f32],
    bias: Option<&'a [i32]>,
    zero: i32,
    lo: i8,
    hi: i8,
}

/// One tile of [`conv2d_i8_flat`]: `CH` channels from `c` (`nch` of them stored), in
/// widened groups of `N` (`wb[j / N]` the group's first word, `N` words a step pair) ×
/// 16 or (`two`) 32 positions.
///
/// # Safety
/// AVX-512F/BW; `wb` as said, each group `ic2 · taps` step pairs long at least; loads of
/// busy positions plus a tap's offset stay inside the planes and the slack row after
/// them; `output` one image's `out_c` planes, channels `c .. c + nch` among them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn flat_i8_tile<const CH: usize, const N: usize>(
    at: &FlatI8Tile,
    wb: [*const i32; 2],
    c: usize,
    nch: usize,
    two: bool,
    output: &mut [i8],
) {
    // SAFETY: the caller's contract.
    unsafe {
        if two {
            flat_i8_sums::<CH, N, 2>(at, wb, c, nch, output);
        } else {
            flat_i8_sums::<CH, N, 1>(at, wb, c, nch, output);
        }
    }
}

/// [`flat_i8_tile`] for `16 · HALVES` positions.
///
/// # Safety
/// As [`flat_i8_tile`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn flat_i8_sums<const CH: usize, const N: usize, const HALVES: usize>(
    at: &FlatI8Tile,
    wb: [*const i32; 2],
    c: usize,
    nch: usize,
    output: &mut [i8],
) {
    let busy = [at.busy as __mmask16, (at.busy >> 16) as __mmask16];
    let keep = [at.keep as __mmask16, (at.keep >> 16) as __mmask16];
    let mut acc = [[_mm512_setzero_si512(); HALVES]; CH];
    // SAFETY: loads read busy positions `t + l` plus a tap's offset of pair `i` (inside
    // its planes, or the next pair's, or the slack row: `Flat::of`, `flat_i8`); weights
    // at word `(tap · ic2 + i) · N + j % N` of each group (below its `depth / 2 · N`
    // words). Stores write the kept positions' bytes (consecutive outputs from `out_at`)
    // of channels `c .. c + nch`.
    unsafe {
        for (tap, &off) in at.tap_at.iter().enumerate() {
            for i in 0..at.pairs {
                let src = at.planes.add(i * at.channel + at.t + off);
                let x: [__m512i; HALVES] =
                    core::array::from_fn(|h| _mm512_maskz_loadu_epi32(busy[h], src.add(16 * h)));
                let kp = (tap * at.ic2 + i) * N;
                for (j, a) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_epi32(*wb[j / N].add(kp + j % N));
                    for (ah, &xh) in a.iter_mut().zip(&x) {
                        *ah = dot_pairs(*ah, xh, wj);
                    }
                }
            }
        }
        let mut o = at.out_at;
        for h in 0..HALVES {
            let kept = keep[h].count_ones() as usize;
            let store = ((1u32 << kept) - 1) as __mmask16;
            for (j, a) in acc.iter().enumerate().take(nch) {
                let ch = c + j;
                let b = at.bias.map_or(0, |b| b[ch]);
                let s = _mm512_add_epi32(a[h], _mm512_set1_epi32(b));
                let r = requantize16(s, at.scales[ch], at.zero, at.lo, at.hi);
                let r = _mm512_maskz_compress_epi32(keep[h], r);
                let dst = output.as_mut_ptr().add(ch * at.plane + o);
                _mm512_mask_cvtepi32_storeu_epi8(dst, store, r);
            }
            o += kept;
        }
    }
}
