//! f32 convolutions over flattened phase planes (AVX-512F): dense and depthwise.

use crate::conv::flat::{Flat, FLAT_BUFFER, MAX_TAPS};
use crate::conv::{Conv2d, F32_TILE_CHANNELS};
use core::arch::x86_64::*;

/// The layout of [`conv2d_flat_avx512`]'s buffer, where its tiles keep more of their
/// lanes busy than the row tiles of [`conv2d_tiled_avx512`] (16 pixels of one row; none
/// above horizontal stride 2), with a tenth to spare for its copy, and the buffer holds
/// the phase planes of one channel.
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
pub fn flat_paying(p: &Conv2d) -> Option<Flat> {
    let w = &p.window;
    let (ow, oh) = (w.out_w, w.out_h);
    let f = Flat::of(p)?;
    let rows = if (1..=2).contains(&w.stride_w) {
        ow as f32 / (16 * ow.div_ceil(16)) as f32
    } else {
        0.0
    };
    // Tiles of 32 positions, the last one of 16 where that covers its rest.
    let lanes = oh * f.w2;
    let flat = (ow * oh) as f32 / (16 * lanes.div_ceil(16)) as f32;
    (flat > 1.1 * rows).then_some(f)
}

/// [`crate::conv::conv2d`]'s depthwise case (one input channel an output channel) with
/// AVX-512 over flattened planes, where a channel's [`Flat`] planes fit the buffer:
/// each channel copied into its phase planes, then 64 positions at a time (several
/// output rows, four registers) summed tap by tap, one broadcast weight and four FMAs
/// a tap, the outputs among them packed by `VCOMPRESSPS`, and the activation applied
/// to the channel's plane once. Every output sums from its bias over `(ky, kx)` in
/// order, one FMA a tap (0 over the padding): [`depthwise_checked`]'s sums.
///
/// # Safety
/// The CPU supports AVX-512F; the operands are as [`crate::conv::conv2d`] asserts, for a
/// depthwise convolution; `f` is `Flat::of_window(&p.window)`.
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
#[target_feature(enable = "avx512f")]
pub unsafe fn depthwise_flat_avx512(
    p: &Conv2d,
    f: &Flat,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    use core::mem::MaybeUninit;
    let w = p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let taps = w.k_h * w.k_w;
    assert!(p.in_c == p.out_c && p.groups == p.in_c);
    assert!(input.len() >= p.in_c * ih * iw && output.len() >= p.out_c * oh * ow);
    assert!(weights.len() >= p.out_c * taps);
    assert!(f.channel + f.w2 <= FLAT_BUFFER && taps <= MAX_TAPS);
    let tap_at = f.tap_offsets(&w);
    let kept = f.kept(ow);
    let lanes = oh * f.w2;
    let mut buf = [MaybeUninit::<f32>::uninit(); FLAT_BUFFER];
    for c in 0..p.out_c {
        fill_phase_planes(p, f, &input[c * ih * iw..][..ih * iw], 1, &mut buf);
        // SAFETY: the buffer's first `f.channel + f.w2` floats were written.
        let planes = buf.as_ptr() as *const f32;
        let wc = &weights[c * taps..][..taps];
        let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[c]));
        let out = &mut output[c * oh * ow..][..oh * ow];
        let (mut t, mut o) = (0, 0);
        while t < lanes {
            let n = (lanes - t).min(64);
            let busy = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let keep = kept.at(t, n);
            let mut acc = [b; 4];
            // SAFETY: loads read busy positions `t + l` plus a tap's offset, inside the
            // channel's planes or the slack row after them (`Flat::of_window`); stores
            // write the kept positions' outputs, consecutive from `o` and below
            // `oh · ow` (each kept position is one output, in order).
            unsafe {
                for (&wt, &off) in wc.iter().zip(&tap_at[..taps]) {
                    let wt = _mm512_set1_ps(wt);
                    let src = planes.add(t + off);
                    for (k, a) in acc.iter_mut().enumerate() {
                        let m = (busy >> (16 * k)) as __mmask16;
                        if m != 0 {
                            let x = _mm512_maskz_loadu_ps(m, src.add(16 * k));
                            *a = _mm512_fmadd_ps(wt, x, *a);
                        }
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    let m = (keep >> (16 * k)) as __mmask16;
                    _mm512_mask_compressstoreu_ps(out.as_mut_ptr().add(o), m, *a);
                    o += m.count_ones() as usize;
                }
            }
            t += n;
        }
        p.act.apply_slice(out);
    }
}

/// [`crate::conv::conv2d_tiled`] with AVX-512 over *flattened* output planes, for narrow rows:
/// the input channels are copied (as many at a time as fit 32 KiB on the stack) into
/// phase planes ([`Flat`]), where every tap of every output pixel `(oy, ox)` reads the
/// float at `oy·w2 + ox` plus the tap's offset. A tile of 8 output channels (two packed
/// blocks) × 32 consecutive positions of the plane — several output rows — then costs
/// per tap two loads, eight weight broadcasts and sixteen FMAs, whatever the row width;
/// positions with `ox ≥ out_w` (the taps' reach, `(k_w − 1)·dil_w / stride_w` a row) are
/// summed and dropped (`VCOMPRESSPS` packs the others for the store). A channel chunk
/// after the first resumes from the stored sums. Every output sums from its bias over
/// `(ic, ky, kx)` in the reference's order, one FMA a tap (0 over the padding): the sums
/// of [`conv2d_tiled_avx512`], bit for bit.
///
/// # Safety
/// The CPU supports AVX-512F; the operands are as [`crate::conv::conv2d_tiled`] asserts; `f`
/// is `Flat::of(p)`.
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
#[target_feature(enable = "avx512f")]
pub unsafe fn conv2d_flat_avx512(
    p: &Conv2d,
    f: &Flat,
    input: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    use core::mem::MaybeUninit;
    const C: usize = F32_TILE_CHANNELS;
    let f = *f;
    let w = p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (in_len, out_len) = (p.in_c * ih * iw, p.out_c * oh * ow);
    let taps = w.k_h * w.k_w;
    let steps = p.in_c * taps;
    let blocks = p.out_c.div_ceil(C);
    assert!(packed.len() >= blocks * steps * C);
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    // Each tap's offset in a channel's planes.
    let tap_at = f.tap_offsets(&w);
    let kept = f.kept(ow);
    let per_chunk = ((FLAT_BUFFER - f.w2) / f.channel).min(p.in_c);
    let lanes = oh * f.w2;
    let mut buf = [MaybeUninit::<f32>::uninit(); FLAT_BUFFER];
    for n in 0..p.batch {
        let input = &input[n * in_len..][..in_len];
        let output = &mut output[n * out_len..][..out_len];
        let mut ic0 = 0;
        while ic0 < p.in_c {
            let chunk = per_chunk.min(p.in_c - ic0);
            fill_phase_planes(p, &f, &input[ic0 * ih * iw..], chunk, &mut buf);
            // SAFETY: the buffer's first `chunk · f.channel + f.w2` floats were written.
            let planes = buf.as_ptr() as *const f32;
            let mut t = 0;
            while t < lanes {
                let n = (lanes - t).min(32);
                let busy = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                // Positions of the tile that are outputs, and the first one's index.
                let keep = kept.at(t, n) as u32;
                if keep == 0 {
                    t += n;
                    continue;
                }
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
                    let at = FlatTile {
                        planes,
                        channel: f.channel,
                        tap_at: &tap_at[..taps],
                        t,
                        busy,
                        keep,
                        out_at,
                        plane: oh * ow,
                        ic0,
                        chunk,
                    };
                    // SAFETY: AVX-512F (the caller); loads stay inside the written
                    // buffer (`FlatTile`), weights inside the blocks, stores inside the
                    // output planes of channels `c0..c0 + nch`.
                    unsafe {
                        match (pair, n > 16) {
                            (true, true) => flat_tile::<8, 2>(&at, wb, bias, c0, nch, output),
                            (true, false) => flat_tile::<8, 1>(&at, wb, bias, c0, nch, output),
                            (false, true) => flat_tile::<4, 2>(&at, wb, bias, c0, nch, output),
                            (false, false) => flat_tile::<4, 1>(&at, wb, bias, c0, nch, output),
                        }
                    }
                    b += if pair { 2 } else { 1 };
                }
                t += n;
            }
            ic0 += chunk;
        }
        p.act.apply_slice(output);
    }
}

/// The 16-column chunks of a phase plane's rows with columns `lo..hi` from the input
/// (at `ix + (x − lo)·step`), the same for every row of the plane: the first four worked
/// out once, any further ones on the way.
pub(super) struct Chunks {
    first: [(usize, u32, __mmask16, isize); 4],
    w2: usize,
    lo: usize,
    hi: usize,
    ix: usize,
    step: usize,
}

impl Chunks {
    #[inline(always)]
    pub(super) fn new(w2: usize, lo: usize, hi: usize, ix: usize, step: usize) -> Chunks {
        let mut c = Chunks {
            first: [(0, 0, 0, 0); 4],
            w2,
            lo,
            hi,
            ix,
            step,
        };
        for k in 0..4 {
            c.first[k] = c.work_out(k);
        }
        c
    }

    /// Chunk `k`: its first column, the lanes read from the input, the lanes stored
    /// (below `w2`), and the input column of lane 0.
    #[inline(always)]
    fn work_out(&self, k: usize) -> (usize, u32, __mmask16, isize) {
        let x0 = 16 * k;
        let base = self.ix as isize + (x0 as isize - self.lo as isize) * self.step as isize;
        let store = lanes16(x0, 0, self.w2) as __mmask16;
        (x0, lanes16(x0, self.lo, self.hi), store, base)
    }

    #[inline(always)]
    pub(super) fn at(&self, k: usize) -> (usize, u32, __mmask16, isize) {
        if k < 4 {
            self.first[k]
        } else {
            self.work_out(k)
        }
    }
}

/// Lanes `from..to` of the 16 from `x0` (0 outside).
#[inline(always)]
fn lanes16(x0: usize, from: usize, to: usize) -> u32 {
    let (a, b) = (from.clamp(x0, x0 + 16) - x0, to.clamp(x0, x0 + 16) - x0);
    ((1u32 << b) - 1) & !((1u32 << a) - 1)
}

/// Bit `l` of `m` at bit `2l`: the mask of the even elements of a load of twice as many.
#[inline(always)]
pub(super) fn spread(m: u32) -> u32 {
    (0..16).fold(0u32, |k, l| k | (((m >> l) & 1) << (2 * l)))
}

/// Copies input channels `0..chunk` of `input` into `buf` as [`Flat`] lays them out, and
/// zeroes the row of slack after them: 16 columns at a time by masked loads and stores
/// (at horizontal stride 2 the even ones of 32, `VPERMT2PS`), else one by one.
///
/// # Safety
/// AVX-512F; `buf` holds `chunk` channels' planes and the slack row.
#[target_feature(enable = "avx512f")]
unsafe fn fill_phase_planes(
    p: &Conv2d,
    f: &Flat,
    input: &[f32],
    chunk: usize,
    buf: &mut [core::mem::MaybeUninit<f32>],
) {
    let w = &p.window;
    let (ih, iw, step) = (w.in_h, w.in_w, w.stride_w);
    assert!(input.len() >= chunk * ih * iw);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    f.fill(w, chunk, buf, 0.0, |dst, c, a, (lo, hi, ix)| {
        let channel = &input[c * ih * iw..][..ih * iw];
        let chunks = Chunks::new(f.w2, lo, hi, ix, step);
        for (y, d) in dst.chunks_exact_mut(f.w2).enumerate() {
            let iy = (y * w.stride_h + a).wrapping_sub(w.pad_top);
            if iy >= ih || lo == hi {
                d.fill(core::mem::MaybeUninit::new(0.0));
                continue;
            }
            let row = &channel[iy * iw..][..iw];
            if step > 2 {
                d[..lo].fill(core::mem::MaybeUninit::new(0.0));
                for (dx, &v) in d[lo..hi].iter_mut().zip(row[ix..].iter().step_by(step)) {
                    dx.write(v);
                }
                d[hi..].fill(core::mem::MaybeUninit::new(0.0));
                continue;
            }
            for k in 0..f.w2.div_ceil(16) {
                let (x0, valid, store, base) = chunks.at(k);
                // Lane l reads column ix + (x0 + l − lo)·step, only where valid (inside
                // the row); lane 0's address may lie outside it.
                let at = row.as_ptr().wrapping_offset(base);
                // SAFETY: AVX-512F (this function); masked lanes are not accessed, the
                // others read columns in 0..iw of `row`; stores write lanes below w2.
                unsafe {
                    let v = if step == 1 {
                        _mm512_maskz_loadu_ps(valid as __mmask16, at)
                    } else {
                        let m = spread(valid);
                        let a = _mm512_maskz_loadu_ps(m as __mmask16, at);
                        let b = _mm512_maskz_loadu_ps((m >> 16) as __mmask16, at.wrapping_add(16));
                        _mm512_permutex2var_ps(a, even, b)
                    };
                    _mm512_mask_storeu_ps(d.as_mut_ptr().add(x0) as *mut f32, store, v);
                }
            }
        }
    });
}

/// Where a tile of [`conv2d_flat_avx512`] reads and writes.
struct FlatTile<'a> {
    /// The chunk's phase planes, `channel` floats an input channel.
    planes: *const f32,
    channel: usize,
    /// Each tap's offset in a channel's planes.
    tap_at: &'a [usize],
    /// The tile's first position in the flattened planes, its positions (`busy`, up to
    /// 32 lanes) and which of them are outputs (`keep`), the first of those `out_at` in
    /// an output plane of `plane` floats.
    t: usize,
    busy: u32,
    keep: u32,
    out_at: usize,
    plane: usize,
    /// The chunk's input channels.
    ic0: usize,
    chunk: usize,
}

/// One tile of [`conv2d_flat_avx512`]: `CH` (4 or 8) channels from `c0` (`nch` of them
/// stored) × `16 · HALVES` positions (`HALVES` 1 or 2), resumed from the stored sums
/// after the first chunk.
///
/// # Safety
/// AVX-512F; `at.planes` holds `at.chunk` channels' planes plus the slack row, which
/// every busy position's taps stay inside; `wb` the packed blocks of the channels;
/// `output` one image's output planes with channels `c0..c0 + nch`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn flat_tile<const CH: usize, const HALVES: usize>(
    at: &FlatTile,
    wb: [*const f32; 2],
    bias: Option<&[f32]>,
    c0: usize,
    nch: usize,
    output: &mut [f32],
) {
    const C: usize = F32_TILE_CHANNELS;
    let taps = at.tap_at.len();
    let (busy0, busy1) = (at.busy as __mmask16, (at.busy >> 16) as __mmask16);
    let (keep0, keep1) = (at.keep as __mmask16, (at.keep >> 16) as __mmask16);
    let low = keep0.count_ones() as usize;
    let mut acc = [[_mm512_setzero_ps(); HALVES]; CH];
    // SAFETY: stores and reloads write/read the `keep` outputs of channels below
    // `c0 + nch`, `low + high` consecutive floats from `out_at` of each plane (the kept
    // positions are consecutive outputs in the plane's row-major order). Loads read busy
    // positions `t + l` plus a tap's offset, inside the chunk's planes or the slack row
    // after them (`Flat::of`). Weights at `((ic0 + c)·taps + tap)·4 + j` of each block.
    unsafe {
        for (j, a) in acc.iter_mut().enumerate().take(nch) {
            let o = output.as_ptr().add((c0 + j) * at.plane + at.out_at);
            if at.ic0 == 0 {
                *a = [_mm512_set1_ps(bias.map_or(0.0, |b| b[c0 + j])); HALVES];
            } else {
                a[0] = _mm512_maskz_expandloadu_ps(keep0, o);
                if HALVES == 2 {
                    a[HALVES - 1] = _mm512_maskz_expandloadu_ps(keep1, o.add(low));
                }
            }
        }
        for c in 0..at.chunk {
            let base = at.planes.add(c * at.channel + at.t);
            let step = (at.ic0 + c) * taps * C;
            for (tap, &off) in at.tap_at.iter().enumerate() {
                let src = base.add(off);
                let x: [__m512; HALVES] = core::array::from_fn(|h| {
                    let busy = if h == 0 { busy0 } else { busy1 };
                    _mm512_maskz_loadu_ps(busy, src.add(16 * h))
                });
                let ws = step + tap * C;
                for (j, a) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_ps(*wb[j / C].add(ws + j % C));
                    for (ah, &xh) in a.iter_mut().zip(&x) {
                        *ah = _mm512_fmadd_ps(wj, xh, *ah);
                    }
                }
            }
        }
        for (j, a) in acc.iter().enumerate().take(nch) {
            let o = output.as_mut_ptr().add((c0 + j) * at.plane + at.out_at);
            _mm512_mask_compressstoreu_ps(o, keep0, a[0]);
            if HALVES == 2 {
                _mm512_mask_compressstoreu_ps(o.add(low), keep1, a[HALVES - 1]);
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

    /// The flattened AVX-512 convolution (run where the CPU has AVX-512F) on random narrow
    /// geometries — rows of 1 to 24 pixels, strides 1 to 3 each way, dilations, paddings,
    /// up to 48 input channels (so several channel chunks of its buffer), a fused ReLU, two
    /// images: bit for bit the row tiles' sums where those run (horizontal stride 1 or 2),
    /// and within 1e-6 of each output's sum of |w·x| of the reference everywhere.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_flat_convolution_matches_the_row_tiles() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut next = crate::xorshift(0x2545_f491_u32);
        let mut chunked = 0;
        for case in 0..150 {
            let (k_h, k_w) = [(3, 3), (10, 4), (1, 1), (3, 5), (2, 2)][case % 5];
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(12), k_w * dil_w + next(20));
            let (pad_top, pad_left) = (next(k_h), next(k_w));
            let (stride_h, stride_w) = (1 + next(3), 1 + next(3));
            let p = Conv2d {
                batch: 2,
                in_c: 1 + next(if case % 4 == 0 { 48 } else { 6 }),
                out_c: 1 + next(20),
                groups: 1,
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (stride_h, stride_w),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_top + next(2), pad_left + next(2)],
                ),
                act: if case % 3 == 0 {
                    Activation::RELU
                } else {
                    Activation::Identity
                },
            };
            let (out_h, out_w) = (p.window.out_h, p.window.out_w);
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
            let f = x86::Flat::of(&p).expect("the buffer holds a channel");
            unsafe { x86::conv2d_flat_avx512(&p, &f, &x, &packed, Some(&b), &mut got) };
            let channel =
                (out_h + (k_h - 1) * dil_h / stride_h) * (out_w + (k_w - 1) * dil_w / stride_w);
            chunked += usize::from(p.in_c * channel * stride_h * stride_w > 8192);
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * abs[i].max(1e-3),
                    "case {case} {p:?} at {i}: {g} vs {w}"
                );
            }
            if stride_w <= 2 {
                let mut rows = vec![f32::NAN; want.len()];
                // SAFETY: as above; the horizontal stride is 1 or 2.
                unsafe { x86::conv2d_tiled_avx512(&p, &x, &packed, Some(&b), &mut rows) };
                for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
                    assert_eq!(g.to_bits(), r.to_bits(), "case {case} {p:?} at {i}");
                }
            }
        }
        assert!(
            chunked >= 5,
            "only {chunked} cases span several channel chunks"
        );
    }
}
