//! The portable f32 register tiles of [`conv2d_tiled`]: 4 output channels × 4 pixels of a
//! row in registers, weights packed channel-quad by tap; on x86-64 and AArch64 the SIMD paths
//! take over where they are faster (see `x86/` and `aarch64.rs`).

use super::*;

/// Output channels of one register tile of [`conv2d_tiled`].
pub const F32_TILE_CHANNELS: usize = 4;

/// `f32` elements of the packed weights of [`conv2d_tiled`]: the output channels rounded up to
/// a multiple of [`F32_TILE_CHANNELS`] (the padding is zero weights, never stored).
pub const fn packed_f32_len(g: &Conv2d) -> usize {
    g.out_c.next_multiple_of(F32_TILE_CHANNELS) * g.in_c * g.window.k_h * g.window.k_w
}

/// The weights of a dense convolution (one group; `weights` OIHW) as [`conv2d_tiled`] reads
/// them: output channels in blocks of [`F32_TILE_CHANNELS`], each block its reduction steps
/// in OIHW order (input channel, ky, kx) with the block's four weights of a step side by side
/// (one 16-byte load on the device). A partial last block is padded with zero weights. The
/// compiler does this once, at build time; the flash is that of the OIHW weights (plus the
/// padding channels).
pub fn pack_f32_weights<'a>(g: &Conv2d, weights: &'a [f32]) -> impl Iterator<Item = f32> + 'a {
    let (out_c, steps) = (g.out_c, g.in_c * g.window.k_h * g.window.k_w);
    (0..out_c.div_ceil(F32_TILE_CHANNELS)).flat_map(move |b| {
        (0..steps).flat_map(move |s| {
            (0..F32_TILE_CHANNELS).map(move |j| {
                let c = b * F32_TILE_CHANNELS + j;
                if c < out_c {
                    weights[c * steps + s]
                } else {
                    0.0
                }
            })
        })
    })
}

/// `a[i] += w · x[i]` for the four lanes (constant indices: the lanes stay in registers).
#[inline(always)]
fn mla4(a: &mut [f32; 4], w: f32, x: [f32; 4]) {
    a[0] += w * x[0];
    a[1] += w * x[1];
    a[2] += w * x[2];
    a[3] += w * x[3];
}

/// Dense `f32` convolution (one group) in register tiles: [`F32_TILE_CHANNELS`] output
/// channels × 4 output pixels of a row held in 16 accumulators across the whole reduction
/// (the Cortex-M4F has 32 single-precision registers), each step four weight loads (packed
/// side by side), four input loads and 16 multiply-adds. Taps of a window that fall into the
/// top or bottom padding are skipped for the whole tile; taps that fall into the left or
/// right padding for some of the four pixels are added lane by lane to those that read
/// inside the input. A row's last `out_w % 4` pixels go through a 4 channels × 1 pixel tile.
///
/// `packed` holds the weights as [`pack_f32_weights`] lays them out. Every output is
/// `bias + Σ w·x` over the taps inside the input in [`conv2d`]'s order (input channel, ky,
/// kx), each product rounded then added, so the results are bit for bit [`conv2d`]'s.
pub fn conv2d_tiled(
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
    assert!(p.groups == 1 && w.stride_w >= 1 && w.dil_w >= 1 && w.dil_h >= 1);
    assert!(input.len() >= p.batch * in_len && output.len() >= p.batch * out_len);
    assert!(packed.len() >= packed_f32_len(p));
    assert!(bias.is_none_or(|b| b.len() >= p.out_c));
    #[cfg(target_arch = "aarch64")]
    if let Some(f) = aarch64::flat_layout(p) {
        aarch64::conv2d_flat(p, &f, input, packed, bias, output);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512f() {
        if let Some(f) = x86::flat_paying(p) {
            // SAFETY: the CPU has AVX-512F; the operands' extents were asserted above.
            unsafe { x86::conv2d_flat_avx512(p, &f, input, packed, bias, output) };
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if (1..=2).contains(&w.stride_w) && crate::cpu::avx512f() {
        // SAFETY: the CPU has AVX-512F; the operands' extents were asserted above.
        unsafe { x86::conv2d_tiled_avx512(p, input, packed, bias, output) };
        return;
    }
    for n in 0..p.batch {
        let input = &input[n * in_len..][..in_len];
        let output = &mut output[n * out_len..][..out_len];
        for b in 0..p.out_c.div_ceil(C) {
            let wb = &packed[b * steps * C..][..steps * C];
            let nch = C.min(p.out_c - b * C);
            let init: [f32; C] = core::array::from_fn(|j| {
                bias.map_or(0.0, |bs| bs.get(b * C + j).map_or(0.0, |v| *v))
            });
            for oy in 0..oh {
                let iy0 = (oy * w.stride_h) as isize - w.pad_top as isize;
                let rows = valid_range(w.k_h, ih, w.dil_h, iy0);
                let mut ox = 0;
                while ox < ow {
                    let ix0 = (ox * w.stride_w) as isize - w.pad_left as isize;
                    #[cfg(all(
                        target_arch = "x86_64",
                        target_feature = "avx2",
                        target_feature = "fma"
                    ))]
                    if let Some((vals, px)) =
                        x86::tile_fma(p, input, wb, init, iy0, rows, ix0, ow - ox)
                    {
                        for (j, v) in vals.iter().enumerate().take(nch) {
                            let c = b * C + j;
                            let out = &mut output[(c * oh + oy) * ow + ox..][..px];
                            out.copy_from_slice(&v[..px]);
                            p.act.apply_slice(out);
                        }
                        ox += px;
                        continue;
                    }
                    // The sums filled in place (a tile returned by value is a `memcpy`
                    // call at opt-level "z").
                    // Each channel's bias in its four lanes.
                    let mut vals = crate::lanes4(init);
                    let px = if ox + 4 <= ow {
                        // Stride 1 as a constant: the four input loads then take immediate
                        // offsets from one address.
                        match w.stride_w {
                            1 => tile_4x4(&mut vals, p, input, wb, iy0, rows, ix0, 1),
                            s => tile_4x4(&mut vals, p, input, wb, iy0, rows, ix0, s),
                        }
                        4
                    } else {
                        let a = tile_4x1(p, input, wb, init, iy0, rows, ix0);
                        (vals[0][0], vals[1][0], vals[2][0], vals[3][0]) = (a[0], a[1], a[2], a[3]);
                        1
                    };
                    // Channel `b · C + j` (j < nch ≤ C), row `oy`, columns `ox .. ox + px`
                    // (px 4 or 1, inside the row): raw stores, no slice taken per channel (a
                    // call at opt-level "z"), `while` loops (a range's `next` is one there
                    // too), the activation chosen once per tile.
                    let at = (b * C * oh + oy) * ow + ox;
                    assert!(nch <= C && (px == 4 || px == 1) && ox + px <= ow);
                    assert!(b * C + nch <= p.out_c);
                    let base = output.as_mut_ptr().wrapping_add(at);
                    macro_rules! stores {
                        ($x:ident => $f:expr) => {{
                            let mut j = 0;
                            while j < nch {
                                let (o, v) = (base.wrapping_add(j * oh * ow), &vals[j]);
                                // SAFETY: output `(c · oh + oy) · ow + ox + i` (i < px) with
                                // `c = b · C + j < out_c`, `oy < oh`, `ox + i < ow` (asserted
                                // above): inside `output` (this image's `out_c · oh · ow`).
                                unsafe {
                                    let $x = v[0];
                                    *o = $f;
                                    if px == 4 {
                                        let $x = v[1];
                                        *o.add(1) = $f;
                                        let $x = v[2];
                                        *o.add(2) = $f;
                                        let $x = v[3];
                                        *o.add(3) = $f;
                                    }
                                }
                                j += 1;
                            }
                        }};
                    }
                    // A whole tile clamped (ReLU, ReLU6) in assembly: at opt-level "z" the
                    // outliner makes calls of Rust's sixteen clamps.
                    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
                    if let (4, 4, Activation::Clip { min, max }) = (nch, px, p.act) {
                        use super::cortex_m::{store_tile_clip, store_tile_low};
                        let store = if max == f32::INFINITY {
                            store_tile_low
                        } else {
                            store_tile_clip
                        };
                        let step = oh * ow * core::mem::size_of::<f32>();
                        // SAFETY: channel `b · C + j`'s four outputs (j < 4 = nch) at `base`
                        // plus `j · oh · ow`: inside `output`, as the stores below.
                        unsafe { store(&vals, base, step, &[min, max]) };
                        ox += px;
                        continue;
                    }
                    match p.act {
                        Activation::Identity => stores!(x => x),
                        Activation::Clip { min, max } => {
                            stores!(x => crate::activation::clamp(x, min, max))
                        }
                        act => stores!(x => act.apply(x)),
                    }
                    ox += px;
                }
            }
        }
    }
}

/// The 16 sums of one tile of [`conv2d_tiled`]: 4 channels (`a[j]`) × the 4 pixels (`a[j][i]`)
/// whose windows start at input row `iy0` and columns `ix0 + i·s`; `rows` the taps `ky`
/// inside the input; `a` holds each channel's bias in its four lanes on entry.
/// Accumulators are only indexed by constants, so they live in registers at
/// every optimisation level (`opt-level = "s"` included).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_4x4(
    a: &mut [[f32; 4]; 4],
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    s: usize,
) {
    const C: usize = F32_TILE_CHANNELS;
    let w = &p.window;
    let (ih, iw, taps) = (w.in_h, w.in_w, w.k_h * w.k_w);
    // SAFETY: `rows` are the window rows inside the input (the caller's `valid_range`).
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if unsafe { tile_3wide_asm(p, input, wb, a, iy0, rows, ix0, s) } {
        return;
    }
    if s == 1 && w.dil_w == 1 && w.k_w == 3 && ix0 >= -1 && ix0 + 5 <= iw as isize {
        // 3-wide windows side by side (most tiles of 3×3 stride-1 convolutions): the four
        // pixels' 12 taps read 6 inputs, loaded once each. A padding of one column on either
        // side drops lane 0's first tap or lane 3's last.
        let (skip_first, skip_last) = (ix0 == -1, ix0 + 5 == iw as isize);
        for ic in 0..p.in_c {
            let plane = ic * ih * iw;
            let wic = &wb[ic * taps * C..][..taps * C];
            for ky in rows.0..rows.1 {
                // Inside the input: ky is in the row's tap range.
                let row = plane + (iy0 + (ky * w.dil_h) as isize) as usize * iw;
                let x = (row as isize + ix0 + 1) as usize;
                let ws = &wic[ky * 3 * C..][..3 * C];
                // SAFETY: `row` starts an input row inside `input` (`plane + iy · iw` with
                // `iy < ih` and `ic < in_c`; `input` holds `in_c · ih · iw` elements) and
                // columns `ix0 + 1 ..= ix0 + 4` are in `0..iw` (`ix0 ≥ -1`, `ix0 + 5 ≤ iw`).
                let x14 = unsafe { four_pixels(input, x, 1) };
                let x0 = if skip_first { 0.0 } else { input[x - 1] };
                let x5 = if skip_last { 0.0 } else { input[x + 4] };
                let x03 = [x0, x14[0], x14[1], x14[2]];
                let x25 = [x14[1], x14[2], x14[3], x5];
                mla_tap_edges(a, &ws[..C], x03, skip_first, false);
                mla_tap(a, &ws[C..2 * C], x14);
                mla_tap_edges(a, &ws[2 * C..], x25, false, skip_last);
            }
        }
        return;
    }
    // Taps kx inside the input for every pixel: lane 0 bounds them on the left, lane 3 on
    // the right. The others are added lane by lane (`lane` below).
    // Spelt out: `array::from_fn` and a closure called four times are calls at opt-level "z".
    macro_rules! lane {
        ($i:literal) => {
            valid_range(w.k_w, iw, w.dil_w, ix0 + ($i * s) as isize)
        };
    }
    let lane_taps: [(usize, usize); 4] = [lane!(0), lane!(1), lane!(2), lane!(3)];
    let (full_lo, full_hi) = (lane_taps[0].0, lane_taps[3].1.max(lane_taps[0].0));
    if full_lo == 0 && full_hi == w.k_w {
        // Every tap of the rows inside the input is inside for all four pixels: one loop
        // without edge tests.
        for ic in 0..p.in_c {
            let plane = ic * ih * iw;
            let wic = &wb[ic * taps * C..][..taps * C];
            for ky in rows.0..rows.1 {
                let row = plane + (iy0 + (ky * w.dil_h) as isize) as usize * iw;
                let base = (row as isize + ix0) as usize;
                let wrow = &wic[ky * w.k_w * C..][..w.k_w * C];
                // SAFETY: as in the edge case below, with `full_lo = 0`, `full_hi = k_w`.
                if unsafe { taps_asm(a, input, base, wrow, w.k_w, s, w.dil_w) } {
                    continue;
                }
                for (kx, ws) in wrow.chunks_exact(C).enumerate() {
                    let x = base + kx * w.dil_w;
                    // SAFETY: as in the edge case below, with `full_lo = 0`, `full_hi = k_w`.
                    let xs = unsafe { four_pixels(input, x, s) };
                    mla_tap(a, ws, xs);
                }
            }
        }
        return;
    }
    // Windows reaching into the padding on the Cortex-M4F: each pixel its own window, in
    // assembly (the taps some lanes skip are calls and tests per tap in Rust).
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if w.dil_w == 1 {
        let init = [a[0][0], a[1][0], a[2][0], a[3][0]];
        let mut i = 0;
        while i < 4 {
            let x0 = ix0 + (i * s) as isize;
            let Some(v) = window_4x1_asm(p, input, wb, init, iy0, rows, x0, lane_taps[i]) else {
                break;
            };
            (a[0][i], a[1][i], a[2][i], a[3][i]) = (v[0], v[1], v[2], v[3]);
            i += 1;
        }
        if i == 4 {
            return;
        }
        // A lane without a tap inside the input: the portable loop below, from the biases.
        *a = crate::lanes4(init);
    }
    for ic in 0..p.in_c {
        let plane = ic * ih * iw;
        let wic = &wb[ic * taps * C..][..taps * C];
        for ky in rows.0..rows.1 {
            // Inside the input: ky is in the row's tap range.
            let row = plane + (iy0 + (ky * w.dil_h) as isize) as usize * iw;
            let wrow = &wic[ky * w.k_w * C..][..w.k_w * C];
            let edge = EdgeTaps {
                input,
                wrow,
                at: row as isize + ix0,
                s,
                dil: w.dil_w,
                lane_taps,
            };
            for kx in 0..full_lo.min(w.k_w) {
                edge.add(a, kx);
            }
            let base = (row as isize + ix0 + (full_lo * w.dil_w) as isize) as usize;
            let full = &wrow[full_lo * C..full_hi * C];
            // SAFETY: as below, for every tap of `full`.
            let done = unsafe { taps_asm(a, input, base, full, full_hi - full_lo, s, w.dil_w) };
            let rust = if done { &[][..] } else { full };
            for (k, ws) in rust.chunks_exact(C).enumerate() {
                let x = base + k * w.dil_w;
                // SAFETY: `row` starts an input row inside `input` (`plane + iy · iw` with
                // `iy < ih` and `ic < in_c`; `input` holds `in_c · ih · iw` elements), and
                // `kx = full_lo + k` is a tap inside the row for all four pixels (lane 0's
                // first and lane 3's last in-range tap bound it), so the columns
                // `ix0 + i·s + kx·dil` of every lane `i` are in `0..iw`.
                let xs = unsafe { four_pixels(input, x, s) };
                mla_tap(a, ws, xs);
            }
            for kx in full_hi..w.k_w {
                edge.add(a, kx);
            }
        }
    }
}

/// The tile in assembly on the Cortex-M4F when its windows are 3 wide, undilated, at stride
/// 1 or 2, and its pixels' taps lie inside the row but for one column of padding at either
/// end ([`super::cortex_m::tile_4x4_3wide`] and its variants, which skip those taps): `true`
/// when it ran.
///
/// # Safety
/// Every row `iy0 + ky·dil_h` (`ky` in `rows`) of every input channel is inside the input.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_3wide_asm(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    a: &mut [[f32; 4]; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    s: usize,
) -> bool {
    use super::cortex_m::*;
    const C: usize = F32_TILE_CHANNELS;
    let w = &p.window;
    let (ih, iw) = (w.in_h, w.in_w);
    // Pixel 0's first tap is column `ix0`, pixel 3's last `ix0 + 3s + 2`.
    let last = ix0 + 3 * s as isize + 2;
    if !(s == 1 || s == 2)
        || w.k_w != 3
        || w.dil_w != 1
        || ix0 < -1
        || last > iw as isize
        || rows.0 >= rows.1
        || p.in_c == 0
    {
        return false;
    }
    let (skip_first, skip_last) = (ix0 == -1, last == iw as isize);
    let variants: [[Tile3Wide; 4]; 2] = [
        [
            tile_4x4_3wide,
            tile_4x4_3wide_left,
            tile_4x4_3wide_right,
            tile_4x4_3wide_both,
        ],
        [
            tile_4x4_3wide_s2,
            tile_4x4_3wide_s2_left,
            tile_4x4_3wide_s2_right,
            tile_4x4_3wide_s2_both,
        ],
    ];
    let tile = variants[s - 1][usize::from(skip_first) + 2 * usize::from(skip_last)];
    let nrows = rows.1 - rows.0;
    let first = (iy0 + (rows.0 * w.dil_h) as isize) as usize * iw;
    let row_step = w.dil_h * iw;
    // SAFETY: the caller's promise for the rows; each row loads from its first column inside
    // (`ix0`, or 0 when it skips the padding) to its last (`ix0 + 3s + 2`, or `iw − 1`); the
    // weights walked are `wb[ic·taps·4 + ky·12 ..][..12]` for the channels and rows read,
    // inside `wb` (`in_c · taps · 4` long).
    unsafe {
        tile(
            a,
            input
                .as_ptr()
                .add(first + (ix0 + isize::from(skip_first)) as usize),
            wb.as_ptr().add(rows.0 * 3 * C),
            p.in_c,
            nrows,
            4 * row_step,
            // (Wrapping: with a row dilation, the rows read may span more than a plane.)
            4usize.wrapping_mul((ih * iw).wrapping_sub(nrows * row_step)),
            4 * (w.k_h - nrows) * 3 * C,
        );
    }
    true
}

/// `n` taps of one window row that all four pixels read inside the input into the sums `a`,
/// in assembly on the Cortex-M4F at strides 1 and 2 (`true`), elsewhere nothing (`false`: the
/// caller's loop adds them). `base`: pixel 0's input of the first tap; `ws`: the taps' packed
/// weights.
///
/// # Safety
/// Pixel `i`'s input of tap `t` (`base + i·s + t·dil`) is inside `input` for every `i < 4`,
/// `t < n`.
#[inline(always)]
#[allow(unused_variables)]
unsafe fn taps_asm(
    a: &mut [[f32; 4]; 4],
    input: &[f32],
    base: usize,
    ws: &[f32],
    n: usize,
    s: usize,
    dil: usize,
) -> bool {
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if n > 0 && (s == 1 || s == 2) {
        use super::cortex_m::{taps_4x4_s1, taps_4x4_s2};
        let taps = if s == 1 { taps_4x4_s1 } else { taps_4x4_s2 };
        debug_assert!(ws.len() >= n * F32_TILE_CHANNELS);
        // SAFETY: the caller's promise for the inputs (at stride 2 the loads between the
        // pixels' inputs lie between two inputs inside the row); the weights are `ws`.
        unsafe { taps(a, input.as_ptr().add(base), ws.as_ptr(), n, 4 * dil) };
        return true;
    }
    false
}

/// Taps of one window row that only some of a tile's four pixels read inside the input.
struct EdgeTaps<'a> {
    input: &'a [f32],
    /// The row's packed weights, `k_w` steps of four channels.
    wrow: &'a [f32],
    /// Index in `input` of lane 0's tap 0 (may lie before the row).
    at: isize,
    /// Stride between the lanes' windows.
    s: usize,
    dil: usize,
    /// Each lane's taps inside the input.
    lane_taps: [(usize, usize); 4],
}

impl EdgeTaps<'_> {
    /// Adds tap `kx` to the lanes that read it inside the input (constant lane indices, so
    /// the accumulators stay in registers).
    #[inline(always)]
    fn add(&self, a: &mut [[f32; 4]; 4], kx: usize) {
        const C: usize = F32_TILE_CHANNELS;
        let ws = &self.wrow[kx * C..][..C];
        // Macros, not closures: a closure called four times stays a call at opt-level "z".
        macro_rules! lane {
            ($i:literal) => {
                let (lo, hi) = self.lane_taps[$i];
                if kx >= lo && kx < hi {
                    let x = self.input[(self.at + ($i * self.s + kx * self.dil) as isize) as usize];
                    lane::<$i>(a, ws, x);
                }
            };
        }
        lane!(0);
        lane!(1);
        lane!(2);
        lane!(3);
    }
}

/// One pixel's four channel sums ([`conv2d_tiled`]'s row tails): the taps inside the input,
/// in order.
#[inline(always)]
fn tile_4x1(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    init: [f32; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
) -> [f32; 4] {
    const C: usize = F32_TILE_CHANNELS;
    let w = &p.window;
    let (ih, iw, taps) = (w.in_h, w.in_w, w.k_h * w.k_w);
    let (kx0, kx1) = valid_range(w.k_w, iw, w.dil_w, ix0);
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if let Some(a) = window_4x1_asm(p, input, wb, init, iy0, rows, ix0, (kx0, kx1)) {
        return a;
    }
    let mut a = init;
    for ic in 0..p.in_c {
        let plane = ic * ih * iw;
        let wic = &wb[ic * taps * C..][..taps * C];
        for ky in rows.0..rows.1 {
            let row = plane + (iy0 + (ky * w.dil_h) as isize) as usize * iw;
            for kx in kx0..kx1 {
                let ws = &wic[(ky * w.k_w + kx) * C..][..C];
                let x = input[row + (ix0 + (kx * w.dil_w) as isize) as usize];
                mla4(&mut a, x, [ws[0], ws[1], ws[2], ws[3]]);
            }
        }
    }
    a
}

/// One pixel's four channel sums ([`tile_4x1`]'s) by [`super::cortex_m::window_4x1`] on the
/// Cortex-M4F, `(kx0, kx1)` its window's taps inside the input row (`valid_range` of `ix0`):
/// `None` when there are none or its columns are dilated (then the portable loop, which
/// handles both).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn window_4x1_asm(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    init: [f32; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    (kx0, kx1): (usize, usize),
) -> Option<[f32; 4]> {
    const C: usize = F32_TILE_CHANNELS;
    const F: usize = core::mem::size_of::<f32>();
    let w = &p.window;
    let (ih, iw, k_w) = (w.in_h, w.in_w, w.k_w);
    debug_assert_eq!((kx0, kx1), valid_range(k_w, iw, w.dil_w, ix0));
    if w.dil_w != 1 || kx1 <= kx0 || rows.1 <= rows.0 || p.in_c == 0 {
        return None;
    }
    let (taps, n_rows) = (kx1 - kx0, rows.1 - rows.0);
    // Channel 0's first row inside the input, its first tap inside the row.
    let first = (iy0 + (rows.0 * w.dil_h) as isize) as usize * iw + (ix0 + kx0 as isize) as usize;
    let first_w = (rows.0 * k_w + kx0) * C;
    // The walk's last input and weight (channel in_c − 1, its last row's last tap), checked
    // once: every read lies between the first and these.
    let last = (p.in_c - 1) * ih * iw + first + (n_rows - 1) * w.dil_h * iw + taps - 1;
    let last_w = (p.in_c - 1) * w.k_h * k_w * C + first_w + (n_rows - 1) * k_w * C + taps * C;
    assert!(last < input.len() && last_w <= wb.len());
    let row_bytes = w.dil_h * iw * F;
    let mut walk = super::cortex_m::Window4x1 {
        acc: init,
        x: input[first..].as_ptr(),
        w: wb[first_w..].as_ptr(),
        channels: p.in_c,
        rows: n_rows,
        taps,
        x_row: row_bytes.wrapping_sub(taps * F),
        w_row: (k_w - taps) * C * F,
        x_plane: (ih * iw * F).wrapping_sub(n_rows * row_bytes),
        w_plane: (w.k_h - n_rows) * k_w * C * F,
    };
    // SAFETY: channel `c`, row `r` (r < n_rows), tap `t` (t < taps) reads input `first + c ·
    // ih · iw + r · dil_h · iw + t` and weights `first_w + c · k_h · k_w · C + (r · k_w + t) · C
    // ..+ C`: at most `last` and `last_w` (asserted inside the slices); the byte steps of
    // `walk` move from one to the next in that order.
    unsafe { super::cortex_m::window_4x1(&mut walk) };
    Some(walk.acc)
}

/// One tap of a 4 × 4 tile: `a[j][i] += w[j] · x[i]`.
#[inline(always)]
fn mla_tap(a: &mut [[f32; 4]; 4], w: &[f32], x: [f32; 4]) {
    mla4(&mut a[0], w[0], x);
    mla4(&mut a[1], w[1], x);
    mla4(&mut a[2], w[2], x);
    mla4(&mut a[3], w[3], x);
}

/// [`mla_tap`] without lane 0 (`skip_first`) or lane 3 (`skip_last`).
#[inline(always)]
fn mla_tap_edges(a: &mut [[f32; 4]; 4], w: &[f32], x: [f32; 4], skip_first: bool, skip_last: bool) {
    if !skip_first {
        lane::<0>(a, w, x[0]);
    }
    lane::<1>(a, w, x[1]);
    lane::<2>(a, w, x[2]);
    if !skip_last {
        lane::<3>(a, w, x[3]);
    }
}

/// `[x[i], x[i + s], x[i + 2s], x[i + 3s]]` without bounds checks.
///
/// # Safety
/// `i + 3·s < x.len()`.
#[inline(always)]
unsafe fn four_pixels(x: &[f32], i: usize, s: usize) -> [f32; 4] {
    debug_assert!(i + 3 * s < x.len());
    // SAFETY: the caller's promise bounds every index.
    unsafe {
        [
            *x.get_unchecked(i),
            *x.get_unchecked(i + s),
            *x.get_unchecked(i + 2 * s),
            *x.get_unchecked(i + 3 * s),
        ]
    }
}

/// `a[j][L] += w[j] · x` for the four channels `j` of lane (pixel) `L`.
#[inline(always)]
fn lane<const L: usize>(a: &mut [[f32; 4]; 4], w: &[f32], x: f32) {
    a[0][L] += w[0] * x;
    a[1][L] += w[1] * x;
    a[2][L] += w[2] * x;
    a[3][L] += w[3] * x;
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::conv::testing::*;
    use crate::window;
    use std::vec;
    use std::vec::Vec;

    /// The register-tiled kernel computes [`conv2d`]'s floats bit for bit: random shapes with
    /// pads, strides, dilations, rows shorter and longer than a tile, channel counts that are
    /// not a multiple of the tile, two images and a fused activation.
    #[test]
    fn tiled_equals_reference_bit_for_bit() {
        let mut next = crate::xorshift(0x9e37_79b9_u32);
        let cases = if cfg!(miri) { 6 } else { 300 };
        for case in 0..cases {
            let (k_h, k_w) = (1 + next(3), 1 + next(4));
            let (stride_h, stride_w, dil_h, dil_w) =
                (1 + next(2), 1 + next(3), 1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(6), k_w * dil_w + next(12));
            let (pad_top, pad_left, pad_bottom, pad_right) =
                (next(k_h), next(k_w), next(k_h), next(k_w));
            let p = Conv2d {
                batch: 1 + next(2),
                in_c: 1 + next(5),
                out_c: 1 + next(9),
                groups: 1,
                window: window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (stride_h, stride_w),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_bottom, pad_right],
                ),
                act: if case % 2 == 0 {
                    Activation::Identity
                } else {
                    Activation::RELU
                },
            };
            let (out_h, out_w) = (p.window.out_h, p.window.out_w);
            let mut value = |_| (next(2001) as f32 - 1000.0) * 1.37e-3;
            let x: Vec<f32> = (0..p.batch * p.in_c * in_h * in_w)
                .map(&mut value)
                .collect();
            let w: Vec<f32> = (0..p.out_c * p.in_c * k_h * k_w).map(&mut value).collect();
            let b: Vec<f32> = (0..p.out_c).map(&mut value).collect();
            let out_len = p.batch * p.out_c * out_h * out_w;
            let mut want = vec![0.0; out_len];
            conv2d(&p, &x, &w, Some(&b), &mut want);
            let packed: Vec<f32> = pack_f32_weights(&p, &w).collect();
            assert_eq!(packed.len(), packed_f32_len(&p));
            let mut got = vec![f32::NAN; out_len];
            conv2d_tiled(&p, &x, &packed, Some(&b), &mut got);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                if fused() {
                    // FMA rounds each sum once per tap, not twice (see `x86`, `neon`).
                    assert!((g - e).abs() <= 1e-5 * e.abs().max(1.0), "case {case} @{i}");
                    continue;
                }
                assert_eq!(
                    g.to_bits(),
                    e.to_bits(),
                    "case {case} {p:?} @{i}: {g} vs {e}"
                );
            }
        }
    }
}
