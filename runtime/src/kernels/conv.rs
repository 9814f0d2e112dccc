//! 2-D convolution (1-D is `in_h = k_h = out_h = 1`), NCHW, grouped (incl. depthwise).

use super::{valid_range, Activation, Window2d};

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

/// One image of [`conv2d`].
fn conv2d_image(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    let ic_g = p.in_c / p.groups;
    let oc_g = p.out_c / p.groups;
    #[cfg(target_arch = "aarch64")]
    if ic_g == 1 && oc_g == 1 {
        if let Some(f) = neon::depthwise_layout(&p.window) {
            neon::depthwise_flat(p, &f, input, weights, bias, output);
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if ic_g == 1 && oc_g == 1 && super::cpu::avx512f() {
        if let Some(f) = x86::Flat::of_window(&p.window) {
            // SAFETY: the CPU has AVX-512F; the extents were asserted by `conv2d`.
            unsafe { x86::depthwise_flat_avx512(p, &f, input, weights, bias, output) };
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if ic_g == 1 && oc_g == 1 && p.window.stride_w <= 2 && super::cpu::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the extents were asserted by `conv2d`.
        unsafe { x86::depthwise_checked(p, input, weights, bias, output) };
        return;
    }
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
    if let Some(f) = neon::flat_layout(p) {
        neon::conv2d_flat(p, &f, input, packed, bias, output);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::cpu::avx512f() {
        if let Some(f) = x86::flat_paying(p) {
            // SAFETY: the CPU has AVX-512F; the operands' extents were asserted above.
            unsafe { x86::conv2d_flat_avx512(p, &f, input, packed, bias, output) };
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if (1..=2).contains(&w.stride_w) && super::cpu::avx512f() {
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
                    let (vals, px) = if ox + 4 <= ow {
                        // Stride 1 as a constant: the four input loads then take immediate
                        // offsets from one address.
                        let a = match w.stride_w {
                            1 => tile_4x4(p, input, wb, init, iy0, rows, ix0, 1),
                            s => tile_4x4(p, input, wb, init, iy0, rows, ix0, s),
                        };
                        (a, 4)
                    } else {
                        let a = tile_4x1(p, input, wb, init, iy0, rows, ix0);
                        ([[a[0]; 4], [a[1]; 4], [a[2]; 4], [a[3]; 4]], 1)
                    };
                    for (j, v) in vals.iter().enumerate().take(nch) {
                        let c = b * C + j;
                        let out = &mut output[(c * oh + oy) * ow + ox..][..px];
                        for (o, &v) in out.iter_mut().zip(v) {
                            *o = p.act.apply(v);
                        }
                    }
                    ox += px;
                }
            }
        }
    }
}

/// The 16 sums of one tile of [`conv2d_tiled`]: 4 channels (`a[j]`) × the 4 pixels (`a[j][i]`)
/// whose windows start at input row `iy0` and columns `ix0 + i·s`; `rows` the taps `ky`
/// inside the input. Accumulators are only indexed by constants, so they live in registers at
/// every optimisation level (`opt-level = "s"` included).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_4x4(
    p: &Conv2d,
    input: &[f32],
    wb: &[f32],
    init: [f32; 4],
    iy0: isize,
    rows: (usize, usize),
    ix0: isize,
    s: usize,
) -> [[f32; 4]; 4] {
    const C: usize = F32_TILE_CHANNELS;
    let w = &p.window;
    let (ih, iw, taps) = (w.in_h, w.in_w, w.k_h * w.k_w);
    let mut a = [[init[0]; 4], [init[1]; 4], [init[2]; 4], [init[3]; 4]];
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
                mla_tap_edges(&mut a, &ws[..C], x03, skip_first, false);
                mla_tap(&mut a, &ws[C..2 * C], x14);
                mla_tap_edges(&mut a, &ws[2 * C..], x25, false, skip_last);
            }
        }
        return a;
    }
    // Taps kx inside the input for every pixel: lane 0 bounds them on the left, lane 3 on
    // the right. The others are added lane by lane (`lane` below).
    let lane_taps: [(usize, usize); 4] =
        core::array::from_fn(|i| valid_range(w.k_w, iw, w.dil_w, ix0 + (i * s) as isize));
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
                for (kx, ws) in wrow.chunks_exact(C).enumerate() {
                    let x = base + kx * w.dil_w;
                    // SAFETY: as in the edge case below, with `full_lo = 0`, `full_hi = k_w`.
                    let xs = unsafe { four_pixels(input, x, s) };
                    mla_tap(&mut a, ws, xs);
                }
            }
        }
        return a;
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
                edge.add(&mut a, kx);
            }
            let base = (row as isize + ix0 + (full_lo * w.dil_w) as isize) as usize;
            let full = &wrow[full_lo * C..full_hi * C];
            for (k, ws) in full.chunks_exact(C).enumerate() {
                let x = base + k * w.dil_w;
                // SAFETY: `row` starts an input row inside `input` (`plane + iy · iw` with
                // `iy < ih` and `ic < in_c`; `input` holds `in_c · ih · iw` elements), and
                // `kx = full_lo + k` is a tap inside the row for all four pixels (lane 0's
                // first and lane 3's last in-range tap bound it), so the columns
                // `ix0 + i·s + kx·dil` of every lane `i` are in `0..iw`.
                let xs = unsafe { four_pixels(input, x, s) };
                mla_tap(&mut a, ws, xs);
            }
            for kx in full_hi..w.k_w {
                edge.add(&mut a, kx);
            }
        }
    }
    a
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
        let x = |i: usize| self.input[(self.at + (i * self.s + kx * self.dil) as isize) as usize];
        let inside = |i: usize| (self.lane_taps[i].0..self.lane_taps[i].1).contains(&kx);
        if inside(0) {
            lane::<0>(a, ws, x(0));
        }
        if inside(1) {
            lane::<1>(a, ws, x(1));
        }
        if inside(2) {
            lane::<2>(a, ws, x(2));
        }
        if inside(3) {
            lane::<3>(a, ws, x(3));
        }
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

/// The x86-64 path of [`conv2d_tiled`] when the build enables AVX2 and FMA
/// (`-C target-cpu=native` on a machine that has them): tiles of 4 channels × 16 or 8 pixels
/// of a row (horizontal stride 1, or 2: pairs loaded, the even columns kept), 8 pixels per
/// 256-bit register, one fused multiply-add per tap and
/// register; a tile whose windows reach into the padding (or past a short row's end) reads
/// with masked loads (zeros outside the row). Same order of taps per output as
/// the portable tiles; each product is not rounded before it is added (FMA), so results
/// differ from [`conv2d`]'s in the last bits (within 1e-6 of the sum of |w·x|, unit test).
/// The flattened planes the x86 (AVX-512) and AArch64 (NEON) convolutions read: see
/// [`flat::Flat`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod flat {
    use super::Conv2d;

    /// Taps of the largest window the flattened kernels take (8 × 8; their table of tap
    /// offsets is filled on every call).
    pub(crate) const MAX_TAPS: usize = 64;

    /// Floats of the f32 kernels' stack buffer (32 KiB): the phase planes of as many
    /// input channels at a time as fit.
    pub(crate) const FLAT_BUFFER: usize = 8192;

    /// The layout of the flattened kernels' buffer: for each input channel, one plane for
    /// every row phase `ky·dil_h mod stride_h` and column phase `kx·dil_w mod stride_w` a tap
    /// uses, each `h2 × w2` floats, where plane (`a`, `b`) holds the padded input's rows
    /// `y·stride_h + a` and columns `x·stride_w + b` (0 in the padding).
    #[derive(Clone, Copy)]
    pub struct Flat {
        /// Rows and columns of a phase plane: the output's plus the taps' reach.
        pub(crate) h2: usize,
        pub(crate) w2: usize,
        /// Slot of each row phase and column phase among the used ones (`usize::MAX` unused).
        pub(crate) row_slot: [usize; 8],
        pub(crate) col_slot: [usize; 8],
        /// Used column phases (a channel has `rows × cols` planes).
        pub(crate) cols: usize,
        /// Floats of one channel's planes.
        pub(crate) channel: usize,
    }

    impl Flat {
        /// The layout for `p`, if the buffer holds one channel's planes.
        pub fn of(p: &Conv2d) -> Option<Flat> {
            if p.groups != 1 {
                return None;
            }
            Flat::of_window(&p.window)
        }

        /// The layout for a window, if the buffer holds one channel's planes.
        pub fn of_window(w: &super::Window2d) -> Option<Flat> {
            let (sh, sw) = (w.stride_h, w.stride_w);
            if !(1..=8).contains(&sh) || !(1..=8).contains(&sw) {
                return None;
            }
            if w.k_h * w.k_w > MAX_TAPS || w.out_h == 0 || w.out_w == 0 {
                return None;
            }
            let h2 = w.out_h + (w.k_h - 1) * w.dil_h / sh;
            let w2 = w.out_w + (w.k_w - 1) * w.dil_w / sw;
            let (mut row_slot, mut col_slot) = ([usize::MAX; 8], [usize::MAX; 8]);
            let (mut rows, mut cols) = (0, 0);
            for ky in 0..w.k_h {
                let a = ky * w.dil_h % sh;
                if row_slot[a] == usize::MAX {
                    row_slot[a] = rows;
                    rows += 1;
                }
            }
            for kx in 0..w.k_w {
                let b = kx * w.dil_w % sw;
                if col_slot[b] == usize::MAX {
                    col_slot[b] = cols;
                    cols += 1;
                }
            }
            let channel = rows * cols * h2 * w2;
            // One channel's planes and a row of slack (the reach of a last row's idle lanes).
            (channel + w2 <= FLAT_BUFFER).then_some(Flat {
                h2,
                w2,
                row_slot,
                col_slot,
                cols,
                channel,
            })
        }
    }

    impl Flat {
        /// Each tap's (`ky · k_w + kx`) offset in a channel's planes: row `ky·dil_h /
        /// stride_h` and column `kx·dil_w / stride_w` of its phases' plane.
        pub(crate) fn tap_offsets(&self, w: &super::Window2d) -> [usize; MAX_TAPS] {
            let mut at = [0usize; MAX_TAPS];
            for ky in 0..w.k_h {
                for kx in 0..w.k_w {
                    let (dy, dx) = (ky * w.dil_h, kx * w.dil_w);
                    let slot =
                        self.row_slot[dy % w.stride_h] * self.cols + self.col_slot[dx % w.stride_w];
                    at[ky * w.k_w + kx] =
                        slot * self.h2 * self.w2 + dy / w.stride_h * self.w2 + dx / w.stride_w;
                }
            }
            at
        }

        /// Writes `channels` channels' phase planes into `buf`, then zeroes the row of slack
        /// after them. `plane(dst, c, a, cols)` fills the plane `dst` (`h2` rows of `w2`)
        /// from channel `c`: its row `y` from input row `y·stride_h + a − pad_top` (padding
        /// outside `0..in_h`), at `cols = (lo, hi, ix)` the values `x` in `lo..hi` from
        /// column `ix + (x − lo)·stride_w`, the rest padding.
        #[inline(always)]
        pub(crate) fn fill<T: Copy>(
            &self,
            w: &super::Window2d,
            channels: usize,
            buf: &mut [core::mem::MaybeUninit<T>],
            zero: T,
            mut plane: impl FnMut(&mut [core::mem::MaybeUninit<T>], usize, usize, (usize, usize, usize)),
        ) {
            let iw = w.in_w;
            let (sh, sw, pl) = (w.stride_h, w.stride_w, w.pad_left);
            let size = self.h2 * self.w2;
            for c in 0..channels {
                for a in (0..sh).filter(|&a| self.row_slot[a] != usize::MAX) {
                    for b in (0..sw).filter(|&b| self.col_slot[b] != usize::MAX) {
                        let slot = self.row_slot[a] * self.cols + self.col_slot[b];
                        let dst = &mut buf[c * self.channel + slot * size..][..size];
                        // Columns x with 0 ≤ x·sw + b − pl < iw: lo..hi.
                        let lo = pl.saturating_sub(b).div_ceil(sw).min(self.w2);
                        let hi = if iw + pl > b {
                            ((iw + pl - b - 1) / sw + 1).clamp(lo, self.w2)
                        } else {
                            lo
                        };
                        // With no column inside, `ix` is never read.
                        plane(dst, c, a, (lo, hi, (lo * sw + b).saturating_sub(pl)));
                    }
                }
            }
            buf[channels * self.channel..][..self.w2].fill(core::mem::MaybeUninit::new(zero));
        }

        /// Which plane positions are outputs (column below `out_w`), for [`Kept::at`].
        pub(crate) fn kept(&self, out_w: usize) -> Kept {
            Kept::new(self.w2, out_w)
        }
    }

    /// The output positions of a flattened plane `w2` positions a row, `out_w` of them
    /// outputs: bit `j` of `pattern` is position `j`'s (rows up to 64 wide read it shifted).
    pub(crate) struct Kept {
        pattern: u128,
        pub(crate) w2: usize,
        out_w: usize,
    }

    impl Kept {
        pub(crate) fn new(w2: usize, out_w: usize) -> Kept {
            let pattern = (0..128).fold(0u128, |m, j| m | u128::from(j % w2 < out_w) << j);
            Kept { pattern, w2, out_w }
        }

        /// Bit `l` set for each output among positions `t .. t + n` (`n` ≤ 64).
        #[inline]
        pub(crate) fn at(&self, t: usize, n: usize) -> u64 {
            let col = t % self.w2;
            let busy = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            if self.w2 <= 64 {
                // col < 64 and n ≤ 64: bits col .. col + n of the 128.
                return (self.pattern >> col) as u64 & busy;
            }
            let (mut m, mut c) = (0u64, col);
            for l in 0..n {
                m |= u64::from(c < self.out_w) << l;
                c = if c + 1 == self.w2 { 0 } else { c + 1 };
            }
            m
        }
    }

    /// Every row width up to 100 (the shifted pattern and the counted lanes alike), every
    /// start and length: the positions whose column is below `out_w`.
    #[cfg(test)]
    #[test]
    fn kept_positions_are_the_outputs() {
        for w2 in 1..100 {
            for out_w in [1, w2 / 2 + 1, w2] {
                let f = Kept::new(w2, out_w);
                for t in (0..3 * w2).step_by(w2 / 3 + 1) {
                    for n in [1, 7, 16, 33, 64] {
                        let want =
                            (0..n).fold(0u64, |m, l| m | u64::from((t + l) % w2 < out_w) << l);
                        assert_eq!(f.at(t, n), want, "w2 {w2} out_w {out_w} t {t} n {n}");
                    }
                }
            }
        }
    }
}

/// AArch64 NEON kernels (NEON is part of every AArch64 target): the flattened-plane
/// convolutions of the x86 AVX-512 path ([`flat::Flat`]) in registers of four floats.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
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
        assert!(
            packed.len() >= blocks * steps * C && f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER
        );
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
        assert!(
            weights.len() >= p.out_c * taps && f.channel + f.w2 + DEPTHWISE_TILE <= FLAT_BUFFER
        );
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
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::super::quant::requantize16;
    pub use super::flat::Flat;
    use super::flat::{FLAT_BUFFER, MAX_TAPS};
    use super::{Conv2d, F32_TILE_CHANNELS};
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

    /// [`super::conv2d_tiled`] with AVX-512 (horizontal stride 1 or 2): tiles of 8 output
    /// channels (two packed blocks of four) × 16 pixels of a row, one 512-bit register a
    /// channel held across the whole reduction; per tap one (at stride 2 two, the even lanes
    /// picked by `VPERMT2PS`) masked load of the row's columns, 0 over the padding and past
    /// the row, eight weight broadcasts and eight FMAs of 16 lanes (twice an AVX2 tile's
    /// work a tap). The last block of four alone. Every output sums from its bias over
    /// `(ic, ky, kx)` in the reference's order, one FMA a tap, wherever its tile starts.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; the operands are as [`super::conv2d_tiled`] asserts, and
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
                    let rows = super::valid_range(w.k_h, ih, w.dil_h, iy0);
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

    /// [`super::conv2d`]'s depthwise case (one input channel an output channel) with
    /// AVX-512 over flattened planes, where a channel's [`Flat`] planes fit the buffer:
    /// each channel copied into its phase planes, then 64 positions at a time (several
    /// output rows, four registers) summed tap by tap, one broadcast weight and four FMAs
    /// a tap, the outputs among them packed by `VCOMPRESSPS`, and the activation applied
    /// to the channel's plane once. Every output sums from its bias over `(ky, kx)` in
    /// order, one FMA a tap (0 over the padding): [`depthwise_checked`]'s sums.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; the operands are as [`super::conv2d`] asserts, for a
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

    /// [`super::conv2d_tiled`] with AVX-512 over *flattened* output planes, for narrow rows:
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
    /// The CPU supports AVX-512F; the operands are as [`super::conv2d_tiled`] asserts; `f`
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
    struct Chunks {
        first: [(usize, u32, __mmask16, isize); 4],
        w2: usize,
        lo: usize,
        hi: usize,
        ix: usize,
        step: usize,
    }

    impl Chunks {
        #[inline(always)]
        fn new(w2: usize, lo: usize, hi: usize, ix: usize, step: usize) -> Chunks {
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
        fn at(&self, k: usize) -> (usize, u32, __mmask16, isize) {
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
    fn spread(m: u32) -> u32 {
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
                            let b =
                                _mm512_maskz_loadu_ps((m >> 16) as __mmask16, at.wrapping_add(16));
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

    /// 32-bit words of [`conv2d_i8_flat`]'s stack buffer (64 KiB): the phase planes of every
    /// input channel pair.
    const FLAT_I8_BUFFER: usize = 16384;

    /// The layout of [`conv2d_i8_flat`]'s buffer for `g`, where it holds every channel
    /// pair's planes (and `g` has two input channels or more: with one, the packed weights
    /// pair two taps, not two channels).
    #[cfg_attr(not(target_feature = "avx512bw"), allow(dead_code))]
    pub fn flat_i8(g: &Conv2d) -> Option<Flat> {
        let f = Flat::of(g)?;
        (g.in_c >= 2 && g.in_c.div_ceil(2) * f.channel + f.w2 <= FLAT_I8_BUFFER).then_some(f)
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

    /// [`super::conv2d_i8_tiled`] with AVX-512 (BW; VNNI where enabled) over flattened
    /// output planes, as [`conv2d_flat_avx512`] for `f32`: the input is copied once into
    /// phase planes of 32-bit words, each the `x − zero` of two input channels side by side
    /// (0 in the padding) — the operand layout of the packed weights, whose words are two
    /// input channels of one tap. A tile of 8 output channels × 32 consecutive plane
    /// positions (several output rows) costs per channel pair and tap two loads and sixteen
    /// `VPDPWSSD` of 16 lanes (each 32 multiply-accumulates), the channels' weight words
    /// broadcast from the packed groups as they are. Positions past a row's `out_w` are
    /// summed and dropped. The integer sums are exact, so the bytes are the portable
    /// kernel's, bit for bit, requantised by [`requantize16`] (as [`requantize8`] eight at once).
    ///
    /// # Safety
    /// The CPU supports AVX-512F and AVX-512BW (and AVX-512 VNNI where the build enables
    /// it); the operands are as [`super::conv2d_i8_tiled`] asserts; `f` is
    /// `flat_i8(&p.geom)`.
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(target_feature = "avx512bw"), allow(dead_code))]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn conv2d_i8_flat(
        p: &super::ConvI8,
        f: &Flat,
        input: &[i8],
        packed: &[i16],
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
        let depth = super::tiled_depth(g);
        let pairs = g.in_c.div_ceil(2);
        assert!(g.in_c >= 2 && pairs * f.channel + f.w2 <= FLAT_I8_BUFFER);
        assert!(packed.len() >= super::tiled_weights_len(g) && scales.len() >= g.out_c);
        assert!(input.len() >= g.batch * in_len && output.len() >= g.batch * g.out_c * plane);
        assert!(bias.is_none_or(|b| b.len() >= g.out_c));
        let tap_at = f.tap_offsets(&w);
        let kept = f.kept(ow);
        let lanes = oh * f.w2;
        let quads = g.out_c / 4;
        let mut buf = [MaybeUninit::<i32>::uninit(); FLAT_I8_BUFFER];
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
                let words = packed.as_ptr() as *const i32;
                let mut c = 0;
                // SAFETY: AVX-512F/BW (the caller). A group of `N` channels from `c` has
                // its `depth / 2` words per channel at `c · depth / 2`, the channels' words
                // of a step pair side by side (`pack_tiled_weights`), inside `packed`
                // (its length asserted); loads and stores as `FlatI8Tile` says.
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
        p: &super::ConvI8,
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
                                let v = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(
                                    spread(valid),
                                    at,
                                ));
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
    /// packed groups of `N` (`wb[j / N]` the group's first word, `N` words a step pair) ×
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
                    let x: [__m512i; HALVES] = core::array::from_fn(|h| {
                        _mm512_maskz_loadu_epi32(busy[h], src.add(16 * h))
                    });
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
                            let a =
                                _mm512_maskz_loadu_ps(mask(c, 2 * at.px), row.wrapping_offset(c));
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

    /// One channel of [`super::conv2d_i8_depthwise`] (horizontal stride 1 or 2) from its
    /// padded plane (`row` bytes a row, the padding holding the input zero point), eight
    /// output pixels at a time: per tap the eight input bytes (at stride 2 the even ones of
    /// sixteen, `PSHUFB`) widened to `i32` and multiplied by the tap, then requantised by
    /// [`requantize8`]. Integer sums `Σ w·x − zero·Σ w`: the portable kernel's values, bit
    /// for bit. A chunk whose loads would pass the plane's end is summed lane by lane.
    ///
    /// # Safety
    /// AVX2; `padded` holds every window of the plane (as [`super::conv2d_i8_depthwise`]
    /// lays it out), `taps` the channel's `k_h · k_w` weights, `out` its output plane.
    #[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
    #[target_feature(enable = "avx2")]
    pub unsafe fn depthwise_i8_plane(
        p: &super::ConvI8,
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
                                let at =
                                    (y0 + ky * w.dil_h) * row + (ox + i) * stride + kx * w.dil_w;
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

    /// [`super::dot_4x2_unchecked`] with AVX2: per two reduction pairs one 256-bit load of
    /// the four channels' weights (two pairs × four channels × two steps), the two pixels'
    /// steps spread to every channel's lane by `VPERMD`, and one `VPMADDWD` per pixel (16
    /// multiply-accumulates); the two pairs' halves added at the end. Integer sums: the same
    /// values as the portable loop, bit for bit.
    ///
    /// # Safety
    /// AVX2; `x.len()` is a multiple of 8 and `w` points to `2·x.len()` readable values.
    #[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_4x2_avx2(w: *const i16, x: &[i16], init: [i32; 8]) -> [i32; 8] {
        // Lanes of `acc0`/`acc1`: channels 0–3 of the even pairs, then of the odd pairs.
        let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let (p0, p1) = (
            _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
            _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
        );
        for (j, xq) in x.chunks_exact(8).enumerate() {
            // SAFETY: w[16j..16j + 16] is inside the 2·x.len() values the caller vouches for;
            // `xq` is 8 values (16 bytes).
            unsafe {
                let wv = _mm256_loadu_si256(w.add(16 * j) as *const __m256i);
                // (p0 pair q, p1 pair q, p0 pair q+1, p1 pair q+1) in both halves.
                let xv =
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(xq.as_ptr() as *const __m128i));
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

    /// [`super::super::quant::requantize_scaled`] of eight accumulators at once, bit for bit:
    /// `acc · scale` in f32, limited to ±2^22 (every product beyond it clamps to `lo` or `hi`
    /// either way), rounded to nearest even by the same `1.5 · 2^23` addition, plus the zero
    /// point, clamped.
    ///
    /// # Safety
    /// AVX2.
    #[cfg_attr(not(target_feature = "avx2"), allow(dead_code))]
    #[target_feature(enable = "avx2")]
    pub unsafe fn requantize8(
        acc: [i32; 8],
        scale: [f32; 8],
        zero: i32,
        lo: i8,
        hi: i8,
    ) -> [i8; 8] {
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
                    let m =
                        _mm256_and_si256(_mm256_cmpgt_epi32(ix, lo), _mm256_cmpgt_epi32(hi, ix));
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
    /// 2) of one image, [`super::conv2d`]'s case for it: per output row up to 32 pixels
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
                let rows = super::valid_range(kh, ih, w.dil_h, iy0);
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
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::window;
    use super::*;
    use std::vec;
    use std::vec::Vec;

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

    /// Random operands of `p` (values in ±1.37, drawn input, weights, bias in that order),
    /// the reference kernel's outputs, and each output's sum of |w·x| (the scale a fused or
    /// reordered sum's rounding is bounded by).
    struct Operands {
        x: Vec<f32>,
        wt: Vec<f32>,
        b: Vec<f32>,
        want: Vec<f32>,
        abs: Vec<f32>,
    }

    fn operands(p: &Conv2d, next: &mut impl FnMut(usize) -> usize) -> Operands {
        let w = &p.window;
        let mut value = |_| (next(2001) as f32 - 1000.0) * 1.37e-3;
        let x: Vec<f32> = (0..p.batch * p.in_c * w.in_h * w.in_w)
            .map(&mut value)
            .collect();
        let taps = p.in_c / p.groups * w.k_h * w.k_w;
        let wt: Vec<f32> = (0..p.out_c * taps).map(&mut value).collect();
        let b: Vec<f32> = (0..p.out_c).map(&mut value).collect();
        let mut want = vec![0.0; p.batch * p.out_c * w.out_h * w.out_w];
        conv2d(p, &x, &wt, Some(&b), &mut want);
        let plain = Conv2d {
            act: Activation::Identity,
            ..*p
        };
        let magnitudes = |v: &[f32]| -> Vec<f32> { v.iter().map(|v| v.abs()).collect() };
        let mut abs = vec![0.0; want.len()];
        let (xa, wa, ba) = (magnitudes(&x), magnitudes(&wt), magnitudes(&b));
        conv2d(&plain, &xa, &wa, Some(&ba), &mut abs);
        Operands {
            x,
            wt,
            b,
            want,
            abs,
        }
    }

    /// The register-tiled kernel computes [`conv2d`]'s floats bit for bit: random shapes with
    /// pads, strides, dilations, rows shorter and longer than a tile, channel counts that are
    /// not a multiple of the tile, two images and a fused activation.
    #[test]
    fn tiled_equals_reference_bit_for_bit() {
        let mut next = super::super::xorshift(0x9e37_79b9_u32);
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

    /// Whether [`conv2d_tiled`] runs fused multiply-adds here: the x86 FMA tiles, the
    /// AVX-512 kernels (built in, or detected with the `std` feature), or the AArch64 NEON
    /// flattened kernel.
    fn fused() -> bool {
        #[cfg(target_arch = "x86_64")]
        if super::super::cpu::avx512f() {
            return true;
        }
        cfg!(any(
            all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            ),
            target_arch = "aarch64"
        ))
    }

    /// The AVX2 int8 dot products of four channels × two pixels (run where the CPU has AVX2)
    /// equal the portable sums exactly, on random reductions of 8 to 400 steps over the whole
    /// i16 range the im2col and the packed weights hold.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_int8_dots_equal_the_portable_sums() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut next = super::super::xorshift(0x1357_9bdf_u32);
        for _ in 0..200 {
            let depth = 8 * (1 + next(50));
            let x: Vec<i16> = (0..2 * depth).map(|_| next(511) as i16 - 255).collect();
            let w: Vec<i16> = (0..4 * depth).map(|_| next(256) as i16 - 128).collect();
            let init: [i32; 8] = core::array::from_fn(|_| next(20001) as i32 - 10000);
            let mut want = init;
            for (j, xq) in x.chunks_exact(4).enumerate() {
                let wq = &w[8 * j..][..8];
                for c in 0..4 {
                    let m = |a: i16, b: i16| i32::from(a) * i32::from(b);
                    want[2 * c] += m(wq[2 * c], xq[0]) + m(wq[2 * c + 1], xq[1]);
                    want[2 * c + 1] += m(wq[2 * c], xq[2]) + m(wq[2 * c + 1], xq[3]);
                }
            }
            // SAFETY: the CPU has AVX2 (checked above); w holds 2·x.len() values.
            let got = unsafe { x86::dot_4x2_avx2(w.as_ptr(), &x, init) };
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
        let mut next = super::super::xorshift(0x0f0f_1e1e_u32);
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
                let want = super::super::quant::requantize_scaled(acc[i], scale[i], zero, lo, hi);
                assert_eq!(got[i], want, "{} · {} + {zero}", acc[i], scale[i]);
            }
        }
    }

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
        let mut next = super::super::xorshift(0x7f4a_7c15_u32);
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
        let mut next = super::super::xorshift(0x7f4a_7c15_u32);
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
        let mut next = super::super::xorshift(0x2545_f491_u32);
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

    /// The AArch64 NEON flattened convolutions against the reference kernel: dense (random
    /// narrow and wide geometries, strides 1 to 3, dilations, uneven padding, up to 48
    /// input channels so several channel chunks, 1 to 20 output channels, a fused ReLU, two
    /// images) and depthwise (1 to 5 channels); within 1e-6 of each output's sum of |w·x|
    /// (one rounding a tap instead of two).
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_flat_convolutions_match_the_reference() {
        let mut next = super::super::xorshift(0x6c07_8965_u32);
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
                let f = neon::depthwise_layout(&p.window).expect("a channel fits the buffer");
                neon::depthwise_flat(&p, &f, &x, &wt, Some(&b), &mut got);
            } else {
                let f = neon::flat_layout(&p).expect("a channel fits the buffer");
                let packed: Vec<f32> = pack_f32_weights(&p, &wt).collect();
                neon::conv2d_flat(&p, &f, &x, &packed, Some(&b), &mut got);
            }
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
        let mut next = super::super::xorshift(0x2545_f491_u32);
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
                    let rows = super::super::valid_range(k_h, in_h, dil_h, iy0);
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

/// Quantisation of an int8 convolution (`y = requant(Σ (x − x_zero) · w + bias) + y_zero`):
/// int8 input and output with zero points, int8 weights symmetric per output channel (zero
/// point 0), int32 bias in the accumulator's scale, one [`Requant`] per output channel
/// (`input_scale · weight_scale[c] / output_scale`).
///
/// [`Requant`]: super::quant::Requant
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvI8 {
    /// Geometry (its `act` is ignored: activations are `lo..=hi`).
    pub geom: Conv2d,
    /// Input zero point.
    pub input_zero: i32,
    /// Output zero point.
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
/// four `SMLABB`/`SMLATB` (see [`mac_row`]).
pub fn conv2d_i8(
    p: &ConvI8,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    requant: &[super::quant::Requant],
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
                            *o = super::quant::requantize(a, rq, p.output_zero, p.lo, p.hi);
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

/// [`mac_row2`] on Cortex-M4/M7 for a multiple of four columns: per four columns of two
/// channels, two `LDR`, four `SXTAB16` (sign extension and zero point), four `PKHBT`/`PKHTB`
/// pairing the channels' values of a column, four `SMLAD` (both channels' products added in
/// one instruction), the accumulators by `LDRD`/`STRD`: 20 instructions for 8 MACs.
#[cfg(microarena_dsp)]
#[inline(always)]
fn mac_row2_dsp(dst: &mut [i32], a: &[i8], b: &[i8], zero: i32, wa: i32, wb: i32) {
    let n = dst.len();
    assert!(n.is_multiple_of(4) && a.len() == n && b.len() == n);
    if n == 0 {
        return;
    }
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // Halfword lanes: channel a's weight low, channel b's high (SMLAD pairs lane with lane).
    let w = (wa as u32 & 0xffff) | (wb as u32) << 16;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let dst = dst.as_mut_ptr();
    // SAFETY: `dst` holds `n` i32s (4-aligned, as LDRD/STRD need), `a` and `b` `n` bytes
    // each, `n` a non-zero multiple of 4: the loop reads `a[0..n]` and `b[0..n]` four bytes at
    // a time (LDR may be unaligned on Armv7E-M) and reads and writes `dst[0..n]` four
    // elements at a time, stopping when `dst` reaches `end`. DSP-extension instructions,
    // present on every target build.rs enables this for; no stack; flags clobbered (CMP).
    unsafe {
        let end = dst.add(n);
        core::arch::asm!(
            "2:",
            "ldr {x}, [{pa}], #4",
            "ldr {y}, [{pb}], #4",
            "sxtab16 {e}, {z}, {x}",          // a0, a2
            "sxtab16 {x}, {z}, {x}, ror #8",  // a1, a3
            "sxtab16 {f}, {z}, {y}",          // b0, b2
            "sxtab16 {y}, {z}, {y}, ror #8",  // b1, b3
            "pkhbt {p}, {e}, {f}, lsl #16",   // a0, b0
            "pkhtb {f}, {f}, {e}, asr #16",   // a2, b2
            "pkhbt {e}, {x}, {y}, lsl #16",   // a1, b1
            "pkhtb {y}, {y}, {x}, asr #16",   // a3, b3
            "ldrd {s0}, {s1}, [{dst}]",
            "smlad {s0}, {p}, {w}, {s0}",
            "smlad {s1}, {e}, {w}, {s1}",
            "strd {s0}, {s1}, [{dst}], #8",
            "ldrd {s0}, {s1}, [{dst}]",
            "smlad {s0}, {f}, {w}, {s0}",
            "smlad {s1}, {y}, {w}, {s1}",
            "strd {s0}, {s1}, [{dst}], #8",
            "cmp {dst}, {end}",
            "bne 2b",
            pa = inout(reg) pa => _,
            pb = inout(reg) pb => _,
            dst = inout(reg) dst => _,
            end = in(reg) end,
            w = in(reg) w,
            z = in(reg) offsets,
            x = out(reg) _,
            y = out(reg) _,
            e = out(reg) _,
            f = out(reg) _,
            p = out(reg) _,
            s0 = out(reg) _,
            s1 = out(reg) _,
            options(nostack),
        );
    }
}

/// [`mac_row`] on Cortex-M4/M7 for a multiple of four columns: per four columns one
/// (unaligned) 32-bit load of the inputs, two `SXTAB16` (bytes 0 and 2, then 1 and 3,
/// sign-extended into halfword lanes with `-zero` added: |x - zero| <= 255 fits), two `LDRD`
/// and two `STRD` of the accumulators, four `SMLABB`/`SMLATB`: 11 instructions and the loop
/// test, against 8 per column for the plain loop.
#[cfg(microarena_dsp)]
#[inline(always)]
fn mac_row_dsp(dst: &mut [i32], src: &[i8], zero: i32, w: i32) {
    let n = dst.len();
    assert!(n.is_multiple_of(4) && src.len() == n);
    if n == 0 {
        return;
    }
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    let w = w as u32 & 0xffff;
    let src = src.as_ptr();
    let dst = dst.as_mut_ptr();
    // SAFETY: `dst` holds `n` i32s (4-aligned, as LDRD/STRD need) and `src` `n` bytes, `n` a
    // non-zero multiple of 4: the loop reads `src[0..n]` four bytes at a time (LDR may be
    // unaligned on Armv7E-M) and reads and writes `dst[0..n]` four elements at a time,
    // stopping when `dst` reaches `end`. The instructions exist on every target build.rs
    // enables this for (DSP extension); no stack use; the flags are clobbered (CMP).
    unsafe {
        let end = dst.add(n);
        core::arch::asm!(
            "2:",
            "ldr {x}, [{src}], #4",
            "sxtab16 {e}, {z}, {x}",
            "sxtab16 {x}, {z}, {x}, ror #8",
            "ldrd {a0}, {a1}, [{dst}]",
            "ldrd {a2}, {a3}, [{dst}, #8]",
            "smlabb {a0}, {e}, {w}, {a0}",
            "smlabb {a1}, {x}, {w}, {a1}",
            "smlatb {a2}, {e}, {w}, {a2}",
            "smlatb {a3}, {x}, {w}, {a3}",
            "strd {a2}, {a3}, [{dst}, #8]",
            "strd {a0}, {a1}, [{dst}], #16",
            "cmp {dst}, {end}",
            "bne 2b",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            end = in(reg) end,
            w = in(reg) w,
            z = in(reg) offsets,
            x = out(reg) _,
            e = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod i8_tests {
    extern crate std;
    use super::super::quant::Requant;
    use super::*;
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
                        let want = crate::kernels::quant::requantize(acc, rq[oc], -4, -100, 127);
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

/// Reduction steps of the tiled int8 convolution: for every tap `(ky, kx)` the input
/// channels, their number rounded up to even, then rounded up to a multiple of 8: the length
/// of the packed weight rows and of the im2col of one pixel (the padding is zero weights).
/// With one input channel the taps themselves are the steps (paired across taps), so that
/// no `SMLAD` multiplies a padding channel.
pub const fn tiled_depth(g: &Conv2d) -> usize {
    (g.window.k_h * g.window.k_w * tiled_channel_steps(g)).next_multiple_of(8)
}

/// Reduction steps per tap of the tiled int8 convolution: the input channels rounded up to
/// even, or 1 for one input channel (see [`tiled_depth`]).
const fn tiled_channel_steps(g: &Conv2d) -> usize {
    if g.in_c == 1 {
        1
    } else {
        g.in_c.next_multiple_of(2)
    }
}

/// `i16` elements of the scratch [`conv2d_i8_tiled`] needs: the im2col of two output pixels.
pub const fn tiled_scratch_len(g: &Conv2d) -> usize {
    2 * tiled_depth(g)
}

/// `i16` elements of the packed weights of [`conv2d_i8_tiled`].
pub const fn tiled_weights_len(g: &Conv2d) -> usize {
    g.out_c.next_multiple_of(2) * tiled_depth(g)
}

/// The weights of a dense int8 convolution (`weights` OIHW) as [`conv2d_i8_tiled`] reads
/// them: widened to `i16`, reduction steps in the order tap `(ky, kx)` then input channel
/// (channels padded to even, unless there is one: [`tiled_depth`]); output channels in
/// groups of four (`out_c / 4` of them), then the remaining two or three in pairs (an odd
/// last one with a zero partner). For each group and each pair of steps `(k, k+1)` (two input
/// channels of one tap), each channel `c` of the group in turn gives `w[c][k], w[c][k+1]`:
/// one 32-bit word per channel, the operand layout of `SMLAD`. Padded to [`tiled_depth`]
/// steps with zeros. The compiler does this once, at build time.
pub fn pack_tiled_weights<'a>(g: &Conv2d, weights: &'a [i8]) -> impl Iterator<Item = i16> + 'a {
    let g = *g;
    let taps = g.window.k_h * g.window.k_w;
    let ic2 = tiled_channel_steps(&g);
    let depth = tiled_depth(&g);
    // Step j: tap j / ic2, input channel j % ic2; OIHW index (c, ic, tap).
    let at = move |c: usize, j: usize| -> i16 {
        let (tap, ic) = (j / ic2, j % ic2);
        if c < g.out_c && tap < taps && ic < g.in_c {
            i16::from(weights[(c * g.in_c + ic) * taps + tap])
        } else {
            0
        }
    };
    let quads = g.out_c / 4;
    // Groups: (first channel, channels) — the quads, then pairs.
    let groups = (0..quads)
        .map(|q| (4 * q, 4))
        .chain((4 * quads..g.out_c).step_by(2).map(|c| (c, 2)));
    groups.flat_map(move |(c0, n)| {
        (0..depth / 2)
            .flat_map(move |kp| (c0..c0 + n).flat_map(move |c| [at(c, 2 * kp), at(c, 2 * kp + 1)]))
    })
}

/// Dense int8 convolution (one group) as a matrix product over an im2col of two output
/// pixels at a time, in tiles of 4 output channels × 2 pixels (2 × 2 for the last two or
/// three channels); bit-exact with
/// [`conv2d_i8`] when `scales[c]` is `requant[c].scale()` (see [`Requant::scale`]).
///
/// `packed` holds the weights as [`pack_tiled_weights`] lays them out; `scratch` (at least
/// [`tiled_scratch_len`] `i16`, placed in the arena by the planner) receives each pixel
/// pair's inputs widened to `i16` with the zero point subtracted (zero where the window
/// reaches into the padding), interleaved like the weights: per pair of reduction steps,
/// pixel 0's two values then pixel 1's. Each tile's sums are one pass over both (on
/// Cortex-M4/M7 `SMLAD`, each two multiply-accumulates: see `dot_4x2_dsp` and `quads_dsp`),
/// then one requantisation per output by its channel's float32 scale (decoded once, at build
/// time, by the compiler).
///
/// [`Requant::scale`]: super::quant::Requant::scale
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_tiled(
    p: &ConvI8,
    input: &[i8],
    packed: &[i16],
    bias: Option<&[i32]>,
    scales: &[f32],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    let g = &p.geom;
    let w = &g.window;
    assert!(g.groups == 1, "the tiled kernel is for dense convolutions");
    let (in_len, plane) = (g.in_c * w.in_h * w.in_w, w.out_h * w.out_w);
    let depth = tiled_depth(g);
    assert!(input.len() >= g.batch * in_len && output.len() >= g.batch * g.out_c * plane);
    assert!(packed.len() >= tiled_weights_len(g) && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = x86::flat_i8(g).filter(|_| super::cpu::avx512bw()) {
        // SAFETY: the CPU has AVX-512F/BW; the operands' extents were asserted above.
        unsafe { x86::conv2d_i8_flat(p, &f, input, packed, bias, scales, output) };
        return;
    }
    let scratch = &mut scratch[..2 * depth];
    // The padded reduction steps stay zero for every pixel pair.
    scratch.fill(0);
    // Without a bias every channel reads the same zero (`step` 0; four of them for the
    // groups of four channels on Cortex-M4F, which load a group's biases at once).
    let zeros = [0i32; 4];
    let (bias, step) = match bias {
        Some(b) => (b, 1),
        None => (&zeros[..], 0),
    };
    let rows = TileRows {
        packed,
        depth,
        bias,
        step,
        scales,
        plane,
        pairs: g.out_c / 2,
        zero: p.output_zero,
        lo: p.lo,
        hi: p.hi,
    };
    for n in 0..g.batch {
        let input = &input[n * in_len..(n + 1) * in_len];
        let output = &mut output[n * g.out_c * plane..(n + 1) * g.out_c * plane];
        for p0 in (0..plane).step_by(2) {
            let next = usize::from(p0 + 1 < plane);
            im2col_pair(g, input, p.input_zero, p0, p0 + next, scratch);
            rows.run(scratch, p0, next, output);
            if g.out_c % 2 == 1 {
                // The last, unpaired channel: its packed pair's second channel is zeros.
                let c = g.out_c - 1;
                let b = bias[c * step];
                // Its pair is the last group: c is even, its weights start at c · depth.
                let acc = dot_2x2(&packed[c * depth..][..2 * depth], scratch, [b; 4]);
                let q = |a: i32| {
                    super::quant::requantize_scaled(a, scales[c], p.output_zero, p.lo, p.hi)
                };
                output[c * plane + p0] = q(acc[0]);
                output[c * plane + p0 + next] = q(acc[1]);
            }
        }
    }
}

/// The channel pairs of [`conv2d_i8_tiled`] for one pixel pair: everything but the im2col,
/// gathered so that the loop over channel pairs holds only pointers and counters.
struct TileRows<'a> {
    packed: &'a [i16],
    depth: usize,
    /// Bias of channel `c` at `bias[c · step]`; `step` 0 without one.
    bias: &'a [i32],
    step: usize,
    scales: &'a [f32],
    plane: usize,
    /// Full channel pairs (`out_c / 2`).
    pairs: usize,
    zero: i32,
    lo: i8,
    hi: i8,
}

impl TileRows<'_> {
    /// Output pixels `p0` and `p0 + next` (`next` 0 or 1; with 0 both sums are pixel `p0`'s
    /// and the same byte is written twice) of the channels in groups of four and in full
    /// pairs (all but an odd last one), from the im2col `x`.
    #[inline(always)]
    fn run(&self, x: &[i16], p0: usize, next: usize, output: &mut [i8]) {
        let (depth, plane, pairs) = (self.depth, self.plane, self.pairs);
        let quads = pairs / 2;
        assert!(x.len() == 2 * depth && depth.is_multiple_of(8) && depth > 0);
        assert!(self.packed.len() >= pairs * 2 * depth && self.scales.len() >= 2 * pairs);
        assert!(pairs == 0 || self.bias.len() > (2 * pairs - 1) * self.step);
        assert!(next <= 1 && p0 + next < plane && output.len() >= 2 * pairs * plane);
        let mut w = self.packed.as_ptr();
        let mut o = output.as_mut_ptr().wrapping_add(p0);
        let bias = |c: usize| {
            // SAFETY: c < 2·pairs, so c·step ≤ (2·pairs − 1)·step < bias.len() (asserted).
            unsafe { *self.bias.get_unchecked(c * self.step) }
        };
        // On Cortex-M4F/M7/M33 every group of four channels in one assembly loop (below);
        // elsewhere, and for the last pair, in Rust.
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        let rust_quads = if quads > 0 {
            let mut params = QuadParams {
                x_start: x.as_ptr(),
                x_end: x.as_ptr_range().end,
                bias: self.bias.as_ptr(),
                bias_step: 16 * self.step,
                scales: self.scales.as_ptr(),
                zero: self.zero,
                lo2: super::quant::halves(self.lo),
                hi2: super::quant::halves(self.hi),
                out: o,
                next,
                plane,
                quads,
            };
            // Each group's four biases are read at once: four zeros without a bias.
            assert!(self.bias.len() >= 4 * if self.step == 0 { 1 } else { quads });
            let clamp = self.lo != i8::MIN || self.hi != i8::MAX;
            // SAFETY: the weights of the quads are packed[..quads·4·depth] and x holds 2·depth
            // values, a multiple of 16 (asserted above); biases (four per group, asserted just
            // above), scales c and output bytes (c·plane + p0 + j, j ≤ next) for c < 4·quads ≤
            // 2·pairs are inside their slices (asserted above).
            // An odd number of 8-step halves: every pass starts at its second half.
            let half = (2 * depth) & 16 != 0;
            unsafe { quads_dsp(w, &mut params, clamp, half) };
            w = w.wrapping_add(quads * 4 * depth);
            o = o.wrapping_add(quads * 4 * plane);
            0
        } else {
            0
        };
        #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
        let rust_quads = quads;
        for q in 0..rust_quads {
            let c = 4 * q;
            let init = [bias(c), bias(c + 1), bias(c + 2), bias(c + 3)];
            // SAFETY: the weights of group q are packed[c·depth..][..4·depth], inside the
            // 2·pairs·depth values asserted; x holds 2·depth values, a multiple of 16;
            // scales[c + 3] < 2·pairs; output bytes (c + i)·plane + p0 + j, i ≤ 3, j ≤ 1, are
            // below 2·pairs·plane.
            unsafe {
                let acc = dot_4x2_unchecked(w, x, init);
                w = w.add(4 * depth);
                let s = self.scales.as_ptr().add(c);
                #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
                {
                    let sc = [
                        *s,
                        *s,
                        *s.add(1),
                        *s.add(1),
                        *s.add(2),
                        *s.add(2),
                        *s.add(3),
                        *s.add(3),
                    ];
                    let q = x86::requantize8(acc, sc, self.zero, self.lo, self.hi);
                    for i in 0..4 {
                        *o.add(i * plane) = q[2 * i];
                        *o.add(i * plane + next) = q[2 * i + 1];
                    }
                    o = o.wrapping_add(4 * plane);
                    continue;
                }
                #[allow(unreachable_code)]
                let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
                self.store(o, next, a0, a1, *s);
                self.store(o.add(plane), next, a2, a3, *s.add(1));
                self.store(o.add(2 * plane), next, a4, a5, *s.add(2));
                self.store(o.add(3 * plane), next, a6, a7, *s.add(3));
                // wrapping: past the last group it may point beyond the output.
                o = o.wrapping_add(4 * plane);
            }
        }
        if pairs % 2 == 1 {
            let c = 4 * quads;
            let (b0, b1) = (bias(c), bias(c + 1));
            // SAFETY: as above, for the pair at packed[c·depth..][..2·depth] and channels c,
            // c + 1 < 2·pairs.
            unsafe {
                let acc = dot_2x2_unchecked(w, x, [b0, b0, b1, b1]);
                let (s0, s1) = (
                    *self.scales.get_unchecked(c),
                    *self.scales.get_unchecked(c + 1),
                );
                self.store(o, next, acc[0], acc[1], s0);
                self.store(o.add(plane), next, acc[2], acc[3], s1);
            }
        }
    }

    /// Requantises one channel's two sums by `scale` and writes them at `o` and `o + next`.
    ///
    /// # Safety
    /// `o` and `o + next` are writable.
    #[inline(always)]
    unsafe fn store(&self, o: *mut i8, next: usize, a0: i32, a1: i32, scale: f32) {
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        // SAFETY: the caller's contract.
        unsafe {
            let t = super::quant::requantize_pair_dsp(a0, a1, scale, self.zero, self.lo, self.hi);
            *o = t as i8;
            *o.add(next) = (t >> 16) as i8;
        }
        #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
        // SAFETY: the caller's contract.
        unsafe {
            let q = |a: i32| super::quant::requantize_scaled(a, scale, self.zero, self.lo, self.hi);
            *o = q(a0);
            *o.add(next) = q(a1);
        }
    }
}

/// Writes the im2col of output pixels `p0` and `p1` (flat indices of the output plane) into
/// `s`, in the order of [`pack_tiled_weights`]: for each tap and each pair of input
/// channels, pixel 0's two values then pixel 1's, each `x − zero`, or 0 in the padding.
fn im2col_pair(g: &Conv2d, input: &[i8], zero: i32, p0: usize, p1: usize, s: &mut [i16]) {
    let w = &g.window;
    let (ih, iw) = (w.in_h, w.in_w);
    let plane = ih * iw;
    let icp = g.in_c.div_ceil(2);
    let at = |pix: usize| {
        let (oy, ox) = (pix / w.out_w, pix % w.out_w);
        (
            (oy * w.stride_h) as isize - w.pad_top as isize,
            (ox * w.stride_w) as isize - w.pad_left as isize,
        )
    };
    // 1×1, stride 1, no padding: pixel p reads input[c·plane + p], so two consecutive pixels
    // are side by side in memory even across rows.
    if g.in_c >= 2
        && p1 == p0 + 1
        && (w.k_h, w.k_w, w.stride_h, w.stride_w) == (1, 1, 1, 1)
        && (w.pad_top, w.pad_left, w.in_h, w.in_w) == (0, 0, w.out_h, w.out_w)
    {
        taps_side_by_side(&input[p0..], plane, g.in_c, zero, &mut s[..4 * icp]);
        return;
    }
    let ((y0, x0), (y1, x1)) = (at(p0), at(p1));
    let inside = |y: isize, x: isize| y >= 0 && (y as usize) < ih && x >= 0 && (x as usize) < iw;
    if g.in_c == 1 {
        // One input channel: steps are taps, paired across taps (`tiled_depth`).
        let taps = w.k_h * w.k_w;
        let (last_y, last_x) = (
            ((w.k_h - 1) * w.dil_h) as isize,
            ((w.k_w - 1) * w.dil_w) as isize,
        );
        let whole = |y: isize, x: isize| inside(y, x) && inside(y + last_y, x + last_x);
        if whole(y0, x0) && whole(y1, x1) {
            // Both windows inside the input (most pairs): tap by tap without tests.
            let (o0, o1) = (
                y0 as usize * iw + x0 as usize,
                y1 as usize * iw + x1 as usize,
            );
            for ky in 0..w.k_h {
                let row = ky * w.dil_h * iw;
                for kx in 0..w.k_w {
                    let d = row + kx * w.dil_w;
                    let v = |o: usize| (i32::from(input[o + d]) - zero) as i16;
                    // Steps pair across taps: tap t goes to slot t % 2 of pair t / 2, pixel
                    // 0's pair then pixel 1's.
                    let t = ky * w.k_w + kx;
                    let base = 4 * (t / 2) + t % 2;
                    s[base] = v(o0);
                    s[base + 2] = v(o1);
                }
            }
            if taps % 2 == 1 {
                let base = 4 * (taps / 2) + 1;
                s[base] = 0;
                s[base + 2] = 0;
            }
            return;
        }
        border_windows_one_channel(g, input, zero, [(y0, x0), (y1, x1)], s);
        return;
    }
    // The common cases: one row, pixels one or two apart (stride 1 or 2), both whole windows
    // inside the input (with, two apart, the byte after pixel 1's last tap: the word loads
    // of `taps_two_apart` read it): every tap is the packed path, one after the other,
    // without tests.
    let (last_y, last_x) = ((w.k_h - 1) * w.dil_h, (w.k_w - 1) * w.dil_w);
    let apart = x1 - x0;
    if g.in_c >= 2
        && y0 == y1
        && (apart == 1 || apart == 2)
        && inside(y0, x0)
        && inside(y0 + last_y as isize, x1 + last_x as isize + apart - 1)
    {
        let origin = y0 as usize * iw + x0 as usize;
        if g.in_c <= 4 {
            // Few channels (a first layer): value by value, one pass over the taps, no calls.
            taps_few_channels(g, &input[..g.in_c * plane], origin, apart as usize, zero, s);
            return;
        }
        let mut dst = &mut s[..4 * icp * w.k_h * w.k_w];
        for ky in 0..w.k_h {
            let row = origin + ky * w.dil_h * iw;
            for kx in 0..w.k_w {
                let (tap, rest) = dst.split_at_mut(4 * icp);
                let x = &input[row + kx * w.dil_w..];
                if apart == 1 {
                    taps_side_by_side(x, plane, g.in_c, zero, tap);
                } else {
                    taps_two_apart(x, plane, g.in_c, zero, tap);
                }
                dst = rest;
            }
        }
        return;
    }
    let mut pair = 0;
    for ky in 0..w.k_h {
        let dy = (ky * w.dil_h) as isize;
        for kx in 0..w.k_w {
            let dx = (kx * w.dil_w) as isize;
            let (a, b) = ((y0 + dy, x0 + dx), (y1 + dy, x1 + dx));
            let dst = &mut s[4 * pair..4 * (pair + icp)];
            pair += icp;
            let (ina, inb) = (inside(a.0, a.1), inside(b.0, b.1));
            if ina && inb && a.0 == b.0 && b.1 == a.1 + 1 && g.in_c >= 2 {
                // Both pixels inside, side by side: each channel pair is two halfword
                // loads.
                let at = a.0 as usize * iw + a.1 as usize;
                taps_side_by_side(&input[at..], plane, g.in_c, zero, dst);
                continue;
            }
            if ina && inb && a.0 == b.0 && b.1 == a.1 + 2 && b.1 + 1 < iw as isize && g.in_c >= 2 {
                // Two apart, with the byte after pixel 1 inside the row: two word loads.
                let at = a.0 as usize * iw + a.1 as usize;
                taps_two_apart(&input[at..], plane, g.in_c, zero, dst);
                continue;
            }
            if ina && inb {
                // Both inside, anywhere (strides, dilations): value by value, no checks.
                let (oa, ob) = (
                    a.0 as usize * iw + a.1 as usize,
                    b.0 as usize * iw + b.1 as usize,
                );
                taps_two_pixels(&input[..g.in_c * plane], oa, ob, plane, zero, dst);
                continue;
            }
            // Elsewhere value by value (0 outside the input).
            let value = |(y, x): (isize, isize), inside: bool, ic: usize| -> i16 {
                if inside && ic < g.in_c {
                    (i32::from(input[ic * plane + y as usize * iw + x as usize]) - zero) as i16
                } else {
                    0
                }
            };
            for (j, q) in dst.chunks_exact_mut(4).enumerate() {
                let ic = 2 * j;
                q[0] = value(a, ina, ic);
                q[1] = value(a, ina, ic + 1);
                q[2] = value(b, inb, ic);
                q[3] = value(b, inb, ic + 1);
            }
        }
    }
}

/// The im2col of [`im2col_pair`] for one input channel when a window crosses the border
/// (`at`: each window's top-left, possibly outside): row by row, a row outside all zeros,
/// tap t to slot t % 2 of pair t / 2, pixel 0's half of each pair then pixel 1's. Out of line:
/// rare, and it keeps the common paths' code as it is.
#[inline(never)]
fn border_windows_one_channel(
    g: &Conv2d,
    input: &[i8],
    zero: i32,
    at: [(isize, isize); 2],
    s: &mut [i16],
) {
    let w = &g.window;
    let (ih, iw) = (w.in_h, w.in_w);
    let taps = w.k_h * w.k_w;
    let s = &mut s[..2 * taps.next_multiple_of(2)];
    for (half, (y0, x0)) in [0, 2].into_iter().zip(at) {
        let mut t = 0;
        for ky in 0..w.k_h {
            let y = y0 + (ky * w.dil_h) as isize;
            let row = if y >= 0 && (y as usize) < ih {
                &input[y as usize * iw..][..iw]
            } else {
                &[][..]
            };
            for kx in 0..w.k_w {
                let x = x0 + (kx * w.dil_w) as isize;
                let v = match usize::try_from(x).ok().and_then(|x| row.get(x)) {
                    Some(&v) => (i32::from(v) - zero) as i16,
                    None => 0,
                };
                s[4 * (t / 2) + t % 2 + half] = v;
                t += 1;
            }
        }
        if taps % 2 == 1 {
            s[4 * (taps / 2) + 1 + half] = 0;
        }
    }
}

/// Every tap of two pixels `apart` columns apart in one row whose windows (from `origin`, the
/// first pixel's window's top-left input offset) lie inside the input, for at most four input
/// channels: writes `4 · ⌈in_c / 2⌉` values per tap into `s` (see [`im2col_pair`]); an odd
/// last channel's partner is a copy (its weight is zero).
#[inline(always)]
fn taps_few_channels(g: &Conv2d, x: &[i8], origin: usize, apart: usize, zero: i32, s: &mut [i16]) {
    let w = &g.window;
    let plane = w.in_h * w.in_w;
    let icp = g.in_c.div_ceil(2);
    let (last_y, last_x) = ((w.k_h - 1) * w.dil_h, (w.k_w - 1) * w.dil_w);
    // The last value read: channel in_c − 1 at the second pixel's last tap.
    let last = (g.in_c - 1) * plane + origin + last_y * w.in_w + last_x + apart;
    assert!(g.in_c >= 1 && last < x.len() && s.len() >= 4 * icp * w.k_h * w.k_w);
    let mut at = 0;
    for ky in 0..w.k_h {
        for kx in 0..w.k_w {
            let o = origin + ky * w.dil_h * w.in_w + kx * w.dil_w;
            for j in 0..icp {
                let (c0, c1) = (2 * j, (2 * j + 1).min(g.in_c - 1));
                // SAFETY: c ≤ in_c − 1 and o + apart ≤ origin + last_y·in_w + last_x + apart,
                // so every index is at most `last`, inside `x` (asserted); `at + 3` stays below
                // 4·icp·k_h·k_w ≤ s.len() (asserted).
                unsafe {
                    let v = |c: usize, i: usize| {
                        (i32::from(*x.get_unchecked(c * plane + o + i)) - zero) as i16
                    };
                    *s.get_unchecked_mut(at) = v(c0, 0);
                    *s.get_unchecked_mut(at + 1) = v(c1, 0);
                    *s.get_unchecked_mut(at + 2) = v(c0, apart);
                    *s.get_unchecked_mut(at + 3) = v(c1, apart);
                }
                at += 4;
            }
        }
    }
}

/// One tap of two pixels inside the input at offsets `oa` and `ob` of a channel's plane
/// (`input` holds `in_c` planes of `plane` values): writes `4 · ⌈in_c / 2⌉` values into
/// `dst` (see [`im2col_pair`]); an odd last channel's partner is a copy (its weight is zero).
#[inline(always)]
fn taps_two_pixels(input: &[i8], oa: usize, ob: usize, plane: usize, zero: i32, dst: &mut [i16]) {
    let in_c = input.len() / plane;
    assert!(oa < plane && ob < plane && in_c >= 1 && dst.len() >= 4 * in_c.div_ceil(2));
    let v = |c: usize, o: usize| {
        // SAFETY: c < in_c and o < plane (asserted), so c·plane + o < in_c·plane =
        // input.len().
        (i32::from(unsafe { *input.get_unchecked(c * plane + o) }) - zero) as i16
    };
    for (j, q) in dst.chunks_exact_mut(4).take(in_c.div_ceil(2)).enumerate() {
        let (c0, c1) = (2 * j, (2 * j + 1).min(in_c - 1));
        q[0] = v(c0, oa);
        q[1] = v(c1, oa);
        q[2] = v(c0, ob);
        q[3] = v(c1, ob);
    }
}

/// One tap of two horizontally adjacent pixels, both inside the input: `x` starts at pixel
/// 0's input value of channel 0, channels are `plane` apart; writes `4 · ⌈in_c / 2⌉` values
/// into `dst` (see [`im2col_pair`]). An odd last channel's partner is filled with a copy
/// (its weight is zero).
#[inline(always)]
fn taps_side_by_side(x: &[i8], plane: usize, in_c: usize, zero: i32, dst: &mut [i16]) {
    #[cfg(microarena_dsp)]
    let done = {
        taps_side_by_side_dsp(x, plane, in_c / 2, zero, dst);
        in_c / 2
    };
    #[cfg(not(microarena_dsp))]
    let done = 0;
    for j in done..in_c.div_ceil(2) {
        let (c0, c1) = (2 * j, (2 * j + 1).min(in_c - 1));
        let v = |c: usize, i: usize| (i32::from(x[c * plane + i]) - zero) as i16;
        let q = &mut dst[4 * j..4 * j + 4];
        q[0] = v(c0, 0);
        q[1] = v(c1, 0);
        q[2] = v(c0, 1);
        q[3] = v(c1, 1);
    }
}

/// One tap of two pixels two apart in one row (stride 2), both inside the input with the
/// byte after pixel 1 (`x[c·plane + 3]` is read on Cortex-M4/M7): `x` starts at pixel 0's
/// input value of channel 0, channels are `plane` apart; writes `4 · ⌈in_c / 2⌉` values into
/// `dst` (see [`im2col_pair`]). An odd last channel's partner is a copy (its weight is zero).
#[inline(always)]
fn taps_two_apart(x: &[i8], plane: usize, in_c: usize, zero: i32, dst: &mut [i16]) {
    #[cfg(microarena_dsp)]
    let done = {
        taps_two_apart_dsp(x, plane, in_c / 2, zero, dst);
        in_c / 2
    };
    #[cfg(not(microarena_dsp))]
    let done = 0;
    for j in done..in_c.div_ceil(2) {
        let (c0, c1) = (2 * j, (2 * j + 1).min(in_c - 1));
        let v = |c: usize, i: usize| (i32::from(x[c * plane + i]) - zero) as i16;
        let q = &mut dst[4 * j..4 * j + 4];
        q[0] = v(c0, 0);
        q[1] = v(c1, 0);
        q[2] = v(c0, 2);
        q[3] = v(c1, 2);
    }
}

/// [`taps_two_apart`] on Cortex-M4/M7 for `pairs` channel pairs: per pair two `LDR` (bytes 0
/// to 3 of each channel: both pixels at 0 and 2), two `SXTAB16` (bytes 0 and 2 widened, zero
/// point subtracted), `PKHBT` and `PKHTB` (pixel 0's pair, pixel 1's) and one `STRD`.
#[cfg(microarena_dsp)]
#[inline(always)]
fn taps_two_apart_dsp(x: &[i8], plane: usize, pairs: usize, zero: i32, dst: &mut [i16]) {
    if pairs == 0 {
        return;
    }
    assert!(x.len() > (2 * pairs - 1) * plane + 3 && dst.len() >= 4 * pairs);
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // SAFETY: pair j reads `x[2j·plane..][..4]` and `x[(2j+1)·plane..][..4]`, inside `x` for
    // j < pairs (asserted: the last byte read is `(2·pairs − 1)·plane + 3`; LDR may be
    // unaligned on Armv7E-M), and writes `dst[4j..4j + 4]` (asserted) with STRD, which needs
    // `dst` 4-aligned: it is the arena scratch, 4-aligned, at a multiple of 4 i16. The loop
    // runs `pairs` > 0 times. DSP-extension instructions, present wherever build.rs enables
    // this; no stack; the flags are clobbered (SUBS).
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {a}, [{px}]",
            "ldr {b}, [{px}, {plane}]",
            "add {px}, {px}, {plane2}",
            "sxtab16 {a}, {z}, {a}",
            "sxtab16 {b}, {z}, {b}",
            "pkhbt {t}, {a}, {b}, lsl #16",
            "pkhtb {b}, {b}, {a}, asr #16",
            "strd {t}, {b}, [{pd}], #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            px = inout(reg) x.as_ptr() => _,
            pd = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) pairs => _,
            plane = in(reg) plane,
            plane2 = in(reg) 2 * plane,
            z = in(reg) offsets,
            a = out(reg) _,
            b = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// [`taps_side_by_side`] on Cortex-M4/M7 for `pairs` channel pairs: per pair two `LDRH`
/// (both pixels of each channel), one `PKHBT` (the four bytes in one word), two `SXTAB16`
/// (sign extension and zero point: pixel 0's pair, pixel 1's pair) and one `STRD`.
#[cfg(microarena_dsp)]
#[inline(always)]
fn taps_side_by_side_dsp(x: &[i8], plane: usize, pairs: usize, zero: i32, dst: &mut [i16]) {
    if pairs == 0 {
        return;
    }
    assert!(x.len() > (2 * pairs - 1) * plane + 1 && dst.len() >= 4 * pairs);
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // SAFETY: pair j reads `x[2j·plane..][..2]` and `x[(2j+1)·plane..][..2]`, inside `x` for
    // j < pairs (asserted: the last byte read is `(2·pairs − 1)·plane + 1`; LDRH may be
    // unaligned on Armv7E-M), and writes `dst[4j..4j + 4]` (asserted) with STRD, which needs
    // `dst` 4-aligned: it is the arena scratch, 4-aligned, at a multiple of 4 i16. An odd
    // count's first pair alone, then two pairs per iteration, `pairs / 2` times (none when
    // 0). DSP-extension instructions, present wherever build.rs enables this; no stack; the
    // flags are clobbered (LSRS, SUBS).
    unsafe {
        core::arch::asm!(
            "lsrs {n}, {n}, #1",
            "bcc 2f",
            "ldrh {a}, [{px}]",
            "ldrh {b}, [{px}, {plane}]",
            "add {px}, {px}, {plane2}",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "sxtab16 {b}, {z}, {a}",
            "sxtab16 {a}, {z}, {a}, ror #8",
            "strd {b}, {a}, [{pd}], #8",
            // Z still from LSRS: no pair left.
            "beq 3f",
            "2:",
            "ldrh {a}, [{px}]",
            "ldrh {b}, [{px}, {plane}]",
            "ldrh {c}, [{px}, {plane2}]",
            "ldrh {d}, [{px}, {plane3}]",
            "add {px}, {px}, {plane2}, lsl #1",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "pkhbt {c}, {c}, {d}, lsl #16",
            "sxtab16 {b}, {z}, {a}",
            "sxtab16 {a}, {z}, {a}, ror #8",
            "sxtab16 {d}, {z}, {c}",
            "sxtab16 {c}, {z}, {c}, ror #8",
            "strd {b}, {a}, [{pd}], #8",
            "strd {d}, {c}, [{pd}], #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            px = inout(reg) x.as_ptr() => _,
            pd = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) pairs => _,
            plane = in(reg) plane,
            plane2 = in(reg) 2 * plane,
            plane3 = in(reg) 3 * plane,
            z = in(reg) offsets,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            d = out(reg) _,
            options(nostack),
        );
    }
}

/// The four sums of a 2 × 2 tile: `init[2c + i] + Σ_k w[c][k] · x[i][k]` for channels `c`
/// and pixels `i`, over `w` and `x` laid out in pairs of steps as [`pack_tiled_weights`] and
/// `im2col_pair` write them (a multiple of 8 steps).
#[inline(always)]
fn dot_2x2(w: &[i16], x: &[i16], init: [i32; 4]) -> [i32; 4] {
    assert!(w.len() == x.len() && w.len().is_multiple_of(16) && !w.is_empty());
    // SAFETY: `w` holds `x.len()` values (asserted), a non-zero multiple of 16.
    unsafe { dot_2x2_unchecked(w.as_ptr(), x, init) }
}

/// [`dot_2x2`] with the weights at `w`, without checks.
///
/// # Safety
/// `w` points to `x.len()` readable, 4-aligned `i16`; `x.len()` is a non-zero multiple of 16
/// and `x` is 4-aligned.
#[inline(always)]
unsafe fn dot_2x2_unchecked(w: *const i16, x: &[i16], init: [i32; 4]) -> [i32; 4] {
    #[cfg(microarena_dsp)]
    {
        // SAFETY: the caller's contract is dot_2x2_dsp's.
        unsafe { dot_2x2_dsp(w, x, init) }
    }
    #[cfg(not(microarena_dsp))]
    {
        let mut acc = init;
        for (j, xq) in x.chunks_exact(4).enumerate() {
            // SAFETY: w[4j..4j + 4] is inside the x.len() values the caller vouches for.
            let wq = unsafe { core::slice::from_raw_parts(w.add(4 * j), 4) };
            let m = |a: i16, b: i16| i32::from(a) * i32::from(b);
            // Channel c's pair at wq[2c..], pixel i's pair at xq[2i..].
            acc[0] += m(wq[0], xq[0]) + m(wq[1], xq[1]);
            acc[1] += m(wq[0], xq[2]) + m(wq[1], xq[3]);
            acc[2] += m(wq[2], xq[0]) + m(wq[3], xq[1]);
            acc[3] += m(wq[2], xq[2]) + m(wq[3], xq[3]);
        }
        acc
    }
}

/// The eight sums of a 4 × 2 tile, `init[2c + i] + Σ_k w[c][k] · x[i][k]` for channels
/// `c < 4` and pixels `i < 2`, with the weights at `w` laid out as [`pack_tiled_weights`]
/// packs a group of four channels and `x` as `im2col_pair` writes it.
///
/// # Safety
/// `w` points to `2 · x.len()` readable, 4-aligned `i16`; `x.len()` is a non-zero multiple of
/// 16 and `x` is 4-aligned.
#[inline(always)]
unsafe fn dot_4x2_unchecked(w: *const i16, x: &[i16], init: [i32; 4]) -> [i32; 8] {
    let [b0, b1, b2, b3] = init;
    let init = [b0, b0, b1, b1, b2, b2, b3, b3];
    #[cfg(microarena_dsp)]
    {
        // SAFETY: the caller's contract is dot_4x2_dsp's.
        unsafe { dot_4x2_dsp(w, x, init) }
    }
    #[cfg(all(not(microarena_dsp), target_arch = "x86_64", target_feature = "avx2"))]
    {
        // SAFETY: the caller's contract is dot_4x2_avx2's; the build enables AVX2.
        unsafe { x86::dot_4x2_avx2(w, x, init) }
    }
    #[cfg(all(
        not(microarena_dsp),
        not(all(target_arch = "x86_64", target_feature = "avx2"))
    ))]
    {
        let mut acc = init;
        for (j, xq) in x.chunks_exact(4).enumerate() {
            // SAFETY: w[8j..8j + 8] is inside the 2·x.len() values the caller vouches for.
            let wq = unsafe { core::slice::from_raw_parts(w.add(8 * j), 8) };
            let m = |a: i16, b: i16| i32::from(a) * i32::from(b);
            for c in 0..4 {
                // Channel c's pair at wq[2c..], pixel i's pair at xq[2i..].
                acc[2 * c] += m(wq[2 * c], xq[0]) + m(wq[2 * c + 1], xq[1]);
                acc[2 * c + 1] += m(wq[2 * c], xq[2]) + m(wq[2 * c + 1], xq[3]);
            }
        }
        acc
    }
}

/// One block of [`dot_4x2_dsp`]: two reduction steps of the 4 × 2 tile.
#[cfg(microarena_dsp)]
macro_rules! dot_4x2_block {
    () => {
        concat!(
            "ldrd {w0}, r7, [{pw}], #8\n",
            "ldrd {x0}, {x1}, [{px}], #8\n",
            "smlad {a0}, {w0}, {x0}, {a0}\n",
            "smlad {a1}, {w0}, {x1}, {a1}\n",
            "smlad {a2}, r7, {x0}, {a2}\n",
            "smlad {a3}, r7, {x1}, {a3}\n",
            "ldrd {w0}, r7, [{pw}], #8\n",
            "smlad {a4}, {w0}, {x0}, {a4}\n",
            "smlad {a5}, {w0}, {x1}, {a5}\n",
            "smlad {a6}, r7, {x0}, {a6}\n",
            "smlad {a7}, r7, {x1}, {a7}\n",
        )
    };
}

/// [`dot_4x2_unchecked`] on Cortex-M4/M7: per two reduction steps one `LDRD` of both pixels'
/// input pairs, two `LDRD` of the four channels' weight pairs and eight `SMLAD`: 11
/// instructions for 16 multiply-accumulates, each loaded word feeding two or four `SMLAD`.
/// Eight accumulators, four operands and two pointers are 14 registers, one more than
/// inline assembly may have as operands here: r7 (the frame pointer, which it may not name
/// as an operand) is saved on the stack and holds one weight word, and the end of the loop
/// is read from the stack.
///
/// # Safety
/// As [`dot_4x2_unchecked`].
#[cfg(microarena_dsp)]
#[inline(always)]
unsafe fn dot_4x2_dsp(w: *const i16, x: &[i16], init: [i32; 8]) -> [i32; 8] {
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = init;
    // SAFETY: `x` holds n i16 (a non-zero multiple of 16) and `w` 2n (the caller's contract);
    // each block reads 8 bytes of x and 16 of w, eight blocks per pass (four in a first, half
    // pass when n is an odd multiple of 16), until x's end: every LDRD is inside both, and
    // both are 4-aligned (the weight blob, the arena scratch). r7 is pushed first and popped
    // last, the end pointer is pushed and dropped: the stack is balanced, nothing else
    // touches it, and no call or unwinding happens in between. DSP-extension instructions;
    // the flags are clobbered.
    unsafe {
        let end = x.as_ptr().add(x.len());
        core::arch::asm!(
            "push {{r7}}",
            "push {{{x0}}}",
            "subs {x1}, {x0}, {px}",
            "tst {x1}, #32",
            "bne 3f",
            "2:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "3:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "ldr {w0}, [sp]",
            "cmp {px}, {w0}",
            "bne 2b",
            "add sp, sp, #4",
            "pop {{r7}}",
            pw = inout(reg) w => _,
            px = inout(reg) x.as_ptr() => _,
            x0 = inout(reg) end => _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            a4 = inout(reg) a4,
            a5 = inout(reg) a5,
            a6 = inout(reg) a6,
            a7 = inout(reg) a7,
        );
    }
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

/// The assembly of [`quads_dsp`] with `$store` after the `SSAT`s: the stores alone when
/// `SSAT`'s range is the clamp, else the halfword clamp first.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_asm {
    ($w:expr, $pp:expr, [$($store:expr),* $(,)?], [$($entry:expr),*]) => {
        core::arch::asm!(
            "push {{r7}}",
            // The stack: [sp] the end of the pixel pair's inputs (the loop's bound, one load
            // away), [sp, #4] `params`.
            "ldr {x1}, [{x0}, #4]",
            "push {{{x0}}}",
            "push {{{x1}}}",
            "4:",
            // Biases: a0 = a1 = channel 0's, a2 = a3 = channel 1's, ... (the pointer steps
            // 16 bytes a group, or stays on four zeros without a bias).
            "ldr {x1}, [sp, #4]",
            "ldr {x0}, [{x1}, #8]",
            "ldrd {a0}, {a2}, [{x0}]",
            "ldrd {a4}, {a6}, [{x0}, #8]",
            "ldr {w0}, [{x1}, #12]",
            "add {x0}, {x0}, {w0}",
            "str {x0}, [{x1}, #8]",
            "mov {a1}, {a0}",
            "mov {a3}, {a2}",
            "mov {a5}, {a4}",
            "mov {a7}, {a6}",
            "ldr {px}, [{x1}]",
            // `$entry`: a branch to the second half when every pass starts there.
            $($entry,)*
            "2:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "3:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "ldr {w0}, [sp]",
            "cmp {px}, {w0}",
            "bne 2b",
            // Requantisation of the eight sums.
            "ldr {x1}, [sp, #4]",
            "ldr {x0}, [{x1}, #16]",
            "vldmia {x0}!, {{s8-s11}}",
            "str {x0}, [{x1}, #16]",
            "vmov s0, s1, {a0}, {a1}",
            "vmov s2, s3, {a2}, {a3}",
            "vmov s4, s5, {a4}, {a5}",
            "vmov s6, s7, {a6}, {a7}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            "vcvt.f32.s32 s2, s2",
            "vcvt.f32.s32 s3, s3",
            "vcvt.f32.s32 s4, s4",
            "vcvt.f32.s32 s5, s5",
            "vcvt.f32.s32 s6, s6",
            "vcvt.f32.s32 s7, s7",
            "vmul.f32 s0, s0, s8",
            "vmul.f32 s1, s1, s8",
            "vmul.f32 s2, s2, s9",
            "vmul.f32 s3, s3, s9",
            "vmul.f32 s4, s4, s10",
            "vmul.f32 s5, s5, s10",
            "vmul.f32 s6, s6, s11",
            "vmul.f32 s7, s7, s11",
            "vcvtr.s32.f32 s0, s0",
            "vcvtr.s32.f32 s1, s1",
            "vcvtr.s32.f32 s2, s2",
            "vcvtr.s32.f32 s3, s3",
            "vcvtr.s32.f32 s4, s4",
            "vcvtr.s32.f32 s5, s5",
            "vcvtr.s32.f32 s6, s6",
            "vcvtr.s32.f32 s7, s7",
            "vmov {a0}, {a1}, s0, s1",
            "vmov {a2}, {a3}, s2, s3",
            "vmov {a4}, {a5}, s4, s5",
            "vmov {a6}, {a7}, s6, s7",
            "ldr {w0}, [{x1}, #20]",
            "qadd {a0}, {a0}, {w0}",
            "qadd {a1}, {a1}, {w0}",
            "qadd {a2}, {a2}, {w0}",
            "qadd {a3}, {a3}, {w0}",
            "qadd {a4}, {a4}, {w0}",
            "qadd {a5}, {a5}, {w0}",
            "qadd {a6}, {a6}, {w0}",
            "qadd {a7}, {a7}, {w0}",
            "ssat {a0}, #8, {a0}",
            "ssat {a1}, #8, {a1}",
            "ssat {a2}, #8, {a2}",
            "ssat {a3}, #8, {a3}",
            "ssat {a4}, #8, {a4}",
            "ssat {a5}, #8, {a5}",
            "ssat {a6}, #8, {a6}",
            "ssat {a7}, #8, {a7}",
            $($store,)*
            "ldr {w0}, [{x1}, #44]",
            "subs {w0}, {w0}, #1",
            "str {w0}, [{x1}, #44]",
            "bne 4b",
            "add sp, sp, #8",
            "pop {{r7}}",
            pw = inout(reg) $w => _,
            px = out(reg) _,
            x0 = inout(reg) $pp => _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            a4 = out(reg) _,
            a5 = out(reg) _,
            a6 = out(reg) _,
            a7 = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s7") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
            out("s11") _,
        )
    };
}

/// The stores of [`quads_asm`] after a clamp narrower than `SSAT`'s: the eight bytes paired
/// by `PKHBT`, clamped two at a time (`SSUB16`/`SEL`), then stored.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_clamped_stores {
    () => {
        concat!(
            "pkhbt {a0}, {a0}, {a1}, lsl #16\n",
            "pkhbt {a2}, {a2}, {a3}, lsl #16\n",
            "pkhbt {a4}, {a4}, {a5}, lsl #16\n",
            "pkhbt {a6}, {a6}, {a7}, lsl #16\n",
            "ldr {w0}, [{x1}, #24]\n",
            "ssub16 {x0}, {a0}, {w0}\n",
            "sel {a0}, {a0}, {w0}\n",
            "ssub16 {x0}, {a2}, {w0}\n",
            "sel {a2}, {a2}, {w0}\n",
            "ssub16 {x0}, {a4}, {w0}\n",
            "sel {a4}, {a4}, {w0}\n",
            "ssub16 {x0}, {a6}, {w0}\n",
            "sel {a6}, {a6}, {w0}\n",
            "ldr {w0}, [{x1}, #28]\n",
            "ssub16 {x0}, {w0}, {a0}\n",
            "sel {a0}, {a0}, {w0}\n",
            "ssub16 {x0}, {w0}, {a2}\n",
            "sel {a2}, {a2}, {w0}\n",
            "ssub16 {x0}, {w0}, {a4}\n",
            "sel {a4}, {a4}, {w0}\n",
            "ssub16 {x0}, {w0}, {a6}\n",
            "sel {a6}, {a6}, {w0}\n",
            // Stores: channel i's two bytes at out + i·plane (+ next).
            "ldr {x0}, [{x1}, #32]\n",
            "ldr {w0}, [{x1}, #36]\n",
            "ldr {px}, [{x1}, #40]\n",
            "strb {a0}, [{x0}]\n",
            "lsrs {a0}, {a0}, #16\n",
            "strb {a0}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a2}, [{x0}]\n",
            "lsrs {a2}, {a2}, #16\n",
            "strb {a2}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a4}, [{x0}]\n",
            "lsrs {a4}, {a4}, #16\n",
            "strb {a4}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a6}, [{x0}]\n",
            "lsrs {a6}, {a6}, #16\n",
            "strb {a6}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "str {x0}, [{x1}, #32]",
        )
    };
}

/// The stores of [`quads_asm`] when `SSAT`'s range is the clamp.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_stores {
    () => {
        concat!(
            // Stores: channel i's two bytes at out + i·plane (+ next).
            "ldr {x0}, [{x1}, #32]\n",
            "ldr {w0}, [{x1}, #36]\n",
            "ldr {px}, [{x1}, #40]\n",
            "strb {a0}, [{x0}]\n",
            "strb {a1}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a2}, [{x0}]\n",
            "strb {a3}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a4}, [{x0}]\n",
            "strb {a5}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a6}, [{x0}]\n",
            "strb {a7}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "str {x0}, [{x1}, #32]",
        )
    };
}

/// What [`quads_dsp`] reads and updates in memory (it has no registers left for them).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[repr(C)]
struct QuadParams {
    x_start: *const i16,
    x_end: *const i16,
    /// Next quad's four biases (8-aligned not needed: `LDRD` takes 4), and the bytes to the
    /// next quad's: 16, or 0 without a bias (then `bias` points to four zeros).
    bias: *const i32,
    bias_step: usize,
    /// Next quad's first scale.
    scales: *const f32,
    zero: i32,
    lo2: u32,
    hi2: u32,
    /// Next quad's first output byte (pixel 0), the offset of pixel 1's (0 or 1), and the
    /// bytes between channels.
    out: *mut i8,
    next: usize,
    plane: usize,
    /// Quads still to do.
    quads: usize,
}

// The field offsets [`quads_asm`] loads from (`[{x1}, #N]`).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(QuadParams, x_end) == 4 && offset_of!(QuadParams, bias) == 8);
    assert!(offset_of!(QuadParams, bias_step) == 12 && offset_of!(QuadParams, scales) == 16);
    assert!(offset_of!(QuadParams, zero) == 20 && offset_of!(QuadParams, lo2) == 24);
    assert!(offset_of!(QuadParams, hi2) == 28 && offset_of!(QuadParams, out) == 32);
    assert!(offset_of!(QuadParams, next) == 36 && offset_of!(QuadParams, plane) == 40);
    assert!(offset_of!(QuadParams, quads) == 44);
};

/// All `params.quads` groups of four channels of one pixel pair on Cortex-M4F/M7/M33: per
/// group the biases, the 4 × 2 `SMLAD` loop of [`dot_4x2_dsp`], the eight requantisations
/// of `requantize_pair_dsp` (float conversions, products and `VCVTR` for all eight, then
/// `QADD`, `SSAT` and, with `clamp`, `PKHBT` and the `SSUB16`/`SEL` clamp for four pairs;
/// without, `SSAT`'s range is the clamp) and the eight byte stores, with every live value in
/// a register and the loop's state in `params`: no spills around an assembly block per group.
///
/// # Safety
/// `w` points to `params.quads · 4 · n` readable, 4-aligned `i16` where `n` = `x_end −
/// x_start`, a non-zero multiple of 16, `x` 4-aligned; `bias + q·bias_step + [0, 16)`
/// (bytes, 4-aligned) for q < quads and `scales + i` are readable and `out + i·plane` and
/// `out + i·plane + next` writable for i < 4·quads; `quads` > 0.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
unsafe fn quads_dsp(w: *const i16, params: &mut QuadParams, clamp: bool, half: bool) {
    let pp = params as *mut QuadParams;
    // SAFETY: the caller's contract covers every load and store; `params` is read and written
    // only through `pp` (kept on the stack with a copy of `x_end`, as r7 is: all three taken
    // off before the end; the stack is balanced and nothing is called in between). FPU and
    // DSP-extension instructions; s0–s11 and the flags are clobbered.
    unsafe {
        // An odd number of 8-step halves: every pass starts at its second half.
        match (clamp, half) {
            (true, false) => quads_asm!(w, pp, [quads_clamped_stores!()], []),
            (true, true) => quads_asm!(w, pp, [quads_clamped_stores!()], ["b 3f"]),
            (false, false) => quads_asm!(w, pp, [quads_stores!()], []),
            (false, true) => quads_asm!(w, pp, [quads_stores!()], ["b 3f"]),
        }
    }
}

/// [`dot_2x2`] on Cortex-M4/M7: per two reduction steps one `LDRD` of the two channels'
/// weight pairs, one `LDRD` of the two pixels' input pairs and four `SMLAD` (each two
/// multiply-accumulates); unrolled eight times: 50 instructions for 64 multiply-accumulates.
///
/// # Safety
/// As [`dot_2x2_unchecked`].
#[cfg(microarena_dsp)]
#[inline(always)]
unsafe fn dot_2x2_dsp(w: *const i16, x: &[i16], init: [i32; 4]) -> [i32; 4] {
    let [mut a00, mut a01, mut a10, mut a11] = init;
    let n = x.len();
    // SAFETY: `w` and `x` hold `n` i16s each, `n` a non-zero multiple of 16 (the caller's
    // contract), so the loop reads both in steps of 8 bytes (4 i16), eight times per pass (four
    // in a first, half pass when n is an odd multiple of 16), and stops when `x` reaches its
    // end: every LDRD is inside both. Both are 4-aligned (LDRD
    // needs it): `w` is a 16-aligned weight blob at a multiple of 8 bytes, `x` the arena
    // scratch at an aligned offset. DSP-extension instructions exist on every target build.rs
    // enables this for; no stack; the flags are clobbered (TST, CMP).
    unsafe {
        let end = x.as_ptr().add(n);
        core::arch::asm!(
            // Eight blocks of two steps per pass; with an odd number of 8-step halves
            // (bit 4 of n), enter at the second half.
            "tst {w0}, #16",
            "bne 3f",
            "2:",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "3:",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "cmp {px}, {end}",
            "bne 2b",
            pw = inout(reg) w => _,
            px = inout(reg) x.as_ptr() => _,
            end = in(reg) end,
            a00 = inout(reg) a00,
            a01 = inout(reg) a01,
            a10 = inout(reg) a10,
            a11 = inout(reg) a11,
            w0 = inout(reg) n => _,
            w1 = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            options(nostack, readonly),
        );
    }
    [a00, a01, a10, a11]
}

#[cfg(test)]
mod tiled_tests {
    extern crate std;
    use super::super::quant::Requant;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The flattened AVX-512 int8 convolution (run where the CPU has AVX-512BW; with VNNI
    /// in a build that enables it) against the reference kernel, byte for byte: random
    /// geometries with 2 to 40 input channels (odd ones too), 1 to 21 output channels
    /// (pairs of quads, a quad alone, pairs, an odd last one), rows of 1 to 24 pixels,
    /// strides 1 to 3, dilations, uneven padding, with and without a bias, two images.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_flat_int8_equals_the_reference() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx512bw") {
            return;
        }
        let mut next = super::super::xorshift(0x51ed_270b);
        for case in 0..160 {
            let (k_h, k_w) = [(3, 3), (1, 1), (10, 4), (3, 1), (2, 3)][case % 5];
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (in_h, in_w) = (k_h * dil_h + next(10), k_w * dil_w + next(20));
            let (pad_top, pad_left) = (next(k_h), next(k_w));
            let geom = Conv2d {
                batch: 2,
                in_c: 2 + next(if case % 4 == 0 { 39 } else { 7 }),
                out_c: 1 + next(21),
                groups: 1,
                window: super::super::window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (1 + next(3), 1 + next(3)),
                    (dil_h, dil_w),
                    [pad_top, pad_left, pad_top + next(2), pad_left + next(2)],
                ),
                act: Activation::Identity,
            };
            let Some(f) = x86::flat_i8(&geom) else {
                continue;
            };
            let p = ConvI8 {
                geom,
                input_zero: next(256) as i32 - 128,
                output_zero: next(41) as i32 - 20,
                lo: if case % 3 == 0 { -10 } else { -128 },
                hi: 127,
            };
            let mut byte = || next(256) as u8 as i8;
            let x: Vec<i8> = (0..2 * geom.in_c * in_h * in_w).map(|_| byte()).collect();
            let w: Vec<i8> = (0..geom.out_c * geom.in_c * k_h * k_w)
                .map(|_| byte())
                .collect();
            let bias: Vec<i32> = (0..geom.out_c)
                .map(|_| next(20001) as i32 - 10000)
                .collect();
            let bias = (case % 2 == 0).then_some(&bias[..]);
            let rq: Vec<Requant> = (0..geom.out_c)
                .map(|_| Requant::from_real(0.0005 + 0.00001 * next(300) as f64))
                .collect();
            let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
            let n = 2 * geom.out_c * geom.window.out_h * geom.window.out_w;
            let mut want = vec![0i8; n];
            conv2d_i8(&p, &x, &w, bias, &rq, &mut want);
            let packed: Vec<i16> = pack_tiled_weights(&geom, &w).collect();
            let mut got = vec![0x55i8; n];
            // SAFETY: the CPU has AVX-512BW (checked above); the operands are `p`'s.
            unsafe { x86::conv2d_i8_flat(&p, &f, &x, &packed, bias, &scales, &mut got) };
            assert_eq!(got, want, "case {case} {geom:?}");
        }
    }

    /// The tiled kernel equals the reference one bit for bit: strides, pads, dilations, odd
    /// channel counts and pixel counts, 1×1 and rectangular kernels.
    #[test]
    fn tiled_equals_reference() {
        /// in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, dilation
        type Case = (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
        );
        let cases: &[Case] = &[
            (3, 4, 7, 6, 3, 3, 1, 1, 1),
            (5, 3, 9, 5, 3, 3, 2, 1, 1),
            (1, 6, 11, 4, 5, 2, 2, 2, 1),
            (1, 5, 9, 7, 3, 3, 1, 1, 1),
            (4, 5, 8, 8, 1, 1, 1, 0, 1),
            (2, 2, 9, 9, 3, 3, 1, 2, 2),
            (7, 1, 3, 3, 3, 3, 1, 1, 1),
            (6, 9, 5, 5, 1, 1, 1, 0, 1),
            (3, 8, 4, 7, 1, 1, 1, 0, 1),
            (5, 6, 7, 7, 1, 1, 2, 0, 1),
        ];
        let cases = if cfg!(miri) { &cases[..2] } else { cases };
        let mut seed = 99u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as i8
        };
        for &(in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, dil) in cases {
            let geom = Conv2d {
                batch: 1,
                in_c,
                out_c,
                groups: 1,
                window: Window2d::uniform(in_h, in_w, k_h, k_w, stride, dil, pad),
                act: Activation::Identity,
            };
            let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
            let p = ConvI8 {
                geom,
                input_zero: -3,
                output_zero: 2,
                lo: -100,
                hi: 120,
            };
            let x: Vec<i8> = (0..in_c * in_h * in_w).map(|_| next()).collect();
            let w: Vec<i8> = (0..out_c * in_c * k_h * k_w).map(|_| next()).collect();
            let bias: Vec<i32> = (0..out_c).map(|c| c as i32 * 97 - 200).collect();
            let rq: Vec<Requant> = (0..out_c)
                .map(|c| Requant::from_real(0.003 + 0.0004 * c as f64))
                .collect();
            let n = out_c * out_h * out_w;
            let mut want = vec![0i8; n];
            conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut want);
            let packed: Vec<i16> = pack_tiled_weights(&geom, &w).collect();
            assert_eq!(packed.len(), tiled_weights_len(&geom));
            let mut scratch = vec![0x5a5a_i16; tiled_scratch_len(&geom)];
            let mut got = vec![0i8; n];
            let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
            conv2d_i8_tiled(
                &p,
                &x,
                &packed,
                Some(&bias),
                &scales,
                &mut scratch,
                &mut got,
            );
            assert_eq!(
                got, want,
                "{in_c}->{out_c} {k_h}x{k_w} s{stride} p{pad} d{dil}"
            );
        }
    }
}

/// Row width, in bytes, of the padded planes [`conv2d_i8_depthwise`] works on: the input row
/// with its left and right padding, and slack for the loads of a last, unpaired pixel.
pub const fn depthwise_row(g: &Conv2d) -> usize {
    let w = &g.window;
    (w.pad_left + w.in_w + w.pad_right + 4).next_multiple_of(4)
}

/// Bytes of the scratch [`conv2d_i8_depthwise`] needs: one channel plane with its padding
/// (a multiple of 4).
pub const fn depthwise_scratch_len(g: &Conv2d) -> usize {
    let w = &g.window;
    // Rows: the padded input, and enough below it for every window the output reads.
    let rows = (w.out_h - 1) * w.stride_h + (w.k_h - 1) * w.dil_h + 1;
    let rows = if rows > w.pad_top + w.in_h + w.pad_bottom {
        rows
    } else {
        w.pad_top + w.in_h + w.pad_bottom
    };
    rows * depthwise_row(g)
}

/// `i16` elements of the packed weights of [`conv2d_i8_depthwise`].
pub const fn depthwise_weights_len(g: &Conv2d) -> usize {
    4 * g.out_c * g.window.k_h * g.window.k_w.div_ceil(2)
}

/// The weights of a depthwise int8 convolution (OIHW, one input channel per group) as
/// [`conv2d_i8_depthwise`] reads them, widened to `i16`: per channel, per kernel row, per
/// pair of taps `m` two 32-bit words. For `k_w = 3` (the fast path's operands): `(w0, w2)`,
/// `(w1, 0)`, then in row 0 the channel's sum of weights `(Σ w, 0)`, in row 1 the middle
/// taps of rows 0 and 1 `(w1, w1')` (what the Cortex-M4 path loads as they are: no per-call
/// sums or repacking), a zero word; otherwise `(w[2m], w[2m + 1])` and a zero word. Built
/// once, at build time.
pub fn pack_depthwise_weights<'a>(g: &Conv2d, weights: &'a [i8]) -> impl Iterator<Item = i16> + 'a {
    let (kh, kw, c) = (g.window.k_h, g.window.k_w, g.out_c);
    (0..c).flat_map(move |ch| {
        let taps = &weights[ch * kh * kw..][..kh * kw];
        (0..kh).flat_map(move |ky| {
            (0..kw.div_ceil(2)).flat_map(move |m| {
                let w = |kx: usize| -> i16 {
                    if kx < kw {
                        i16::from(taps[ky * kw + kx])
                    } else {
                        0
                    }
                };
                if kw == 3 {
                    // m = 0: (w0, w2) and (w1, 0); m = 1: the extras above. |Σ w| ≤ 128 · k_h · 3
                    // fits an i16 for any kernel height a model has (k_h < 85).
                    let sum: i32 = taps.iter().map(|&t| i32::from(t)).sum();
                    match (m, ky) {
                        (0, _) => [w(0), w(2), w(1), 0],
                        (_, 0) => [sum.clamp(-32768, 32767) as i16, 0, 0, 0],
                        (_, 1) => [i16::from(taps[1]), i16::from(taps[kw + 1]), 0, 0],
                        _ => [0; 4],
                    }
                } else {
                    [w(2 * m), w(2 * m + 1), 0, 0]
                }
            })
        })
    })
}

/// Depthwise int8 convolution (one input channel per group, one output channel each),
/// bit-exact with [`conv2d_i8`] when `scales[c]` is `requant[c].scale()`.
///
/// Each channel's plane is first copied into `scratch` (at least [`depthwise_scratch_len`]
/// bytes, placed in the arena by the planner) inside a border of the input zero point
/// (filled once per call: the copies only overwrite the inside), so every window lies inside
/// it and contributes `x − zero` (0 in the padding) with no bounds tests. On Cortex-M4F/M7,
/// 3×3 windows with horizontal stride 1 or 2 (rows of two pixels or more) take two output
/// pixels per step with the weights held in registers: per kernel row one 32-bit load of
/// four input bytes (and, at stride 2, the fifth byte), `SXTB16` and `SMLAD`/`SMLAxy` (taps
/// paired where the operands allow) on the raw bytes, the zero point taken out of the bias
/// once per channel (`Σ w · (x − zero) = Σ w · x − zero · Σ w`, the padding included): 21
/// instructions for 18 multiply-accumulates at stride 1, 29 at stride 2; both outputs
/// requantised together and stored by one `STRH` (see `depthwise_rows_dsp_asm`). On x86-64
/// builds with AVX2 (horizontal stride 1 or 2), eight output pixels at a time
/// (`x86::depthwise_i8_plane`), bit for bit the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_depthwise(
    p: &ConvI8,
    input: &[i8],
    packed: &[i16],
    bias: Option<&[i32]>,
    scales: &[f32],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    conv2d_i8_depthwise_split(p, &[], input, packed, bias, scales, scratch, output)
}

/// [`conv2d_i8_depthwise`] on an input whose rows lie in two places: each channel's first
/// `kept` rows in `kept_rows` (`[batch][in_c][kept][in_w]`, `kept = kept_rows.len() /
/// (batch · in_c · in_w)`), the other `in_h − kept` in `input` (`[batch][in_c][in_h −
/// kept][in_w]`). A streamed stage keeps the rows a depthwise window reads again in a small
/// buffer of their own between passes and lets the producer write the new rows elsewhere:
/// the plane copy this kernel makes anyway joins them, so the window is never held whole.
///
/// # Panics
/// If `kept_rows` is not a whole number of rows per channel, or more than `in_h` of them.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_depthwise_split(
    p: &ConvI8,
    kept_rows: &[i8],
    input: &[i8],
    packed: &[i16],
    bias: Option<&[i32]>,
    scales: &[f32],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    let g = &p.geom;
    let w = &g.window;
    assert!(
        g.groups == g.in_c && g.in_c == g.out_c,
        "one channel per group"
    );
    let planes = g.batch * g.in_c;
    let kept = if kept_rows.is_empty() {
        0
    } else {
        kept_rows.len() / (planes * w.in_w).max(1)
    };
    assert!(
        kept * planes * w.in_w == kept_rows.len() && kept <= w.in_h,
        "kept rows: whole rows of every channel"
    );
    // SAFETY: the same memory as bytes: i8 has no alignment and no invalid bit pattern, the
    // length is the byte length, and `scratch` is not used again while this view lives.
    let scratch: &mut [i8] = unsafe {
        core::slice::from_raw_parts_mut(scratch.as_mut_ptr() as *mut i8, 2 * scratch.len())
    };
    // Per channel: `kept` rows in `kept_rows`, `fresh` in `input`.
    let fresh = w.in_h - kept;
    let (plane_in, plane_out) = (fresh * w.in_w, w.out_h * w.out_w);
    let row = depthwise_row(g);
    let rows = depthwise_scratch_len(g) / row;
    let kwp = w.k_w.div_ceil(2);
    assert!(input.len() >= g.batch * g.in_c * plane_in);
    assert!(output.len() >= g.batch * g.out_c * plane_out);
    assert!(packed.len() >= depthwise_weights_len(g) && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    let padded = &mut scratch[..rows * row];
    let zero = p.input_zero as i8;
    // The border: every channel's copy overwrites the inside only.
    padded.fill(zero);
    let pair_kernel = match (w.k_h, w.k_w, w.stride_w, w.dil_w) {
        (3, 3, 1, 1) => Some(PairKind::Stride1),
        (3, 3, 2, 1) => Some(PairKind::Stride2),
        _ => None,
    };
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if let (Some(kind), true) = (pair_kernel, w.out_w >= 2) {
        let planes = Planes {
            kept_rows,
            kept,
            input,
        };
        return depthwise_rows_dsp(p, kind, &planes, packed, bias, scales, padded, row, output);
    }
    let inside = w.pad_top * row + w.pad_left;
    for n in 0..g.batch {
        for c in 0..g.out_c {
            let plane = n * g.in_c + c;
            copy_plane(
                &kept_rows[plane * kept * w.in_w..],
                w.in_w,
                kept,
                padded,
                inside,
                row,
                zero,
            );
            let src = &input[plane * plane_in..];
            copy_plane(src, w.in_w, fresh, padded, inside + kept * row, row, zero);
            let wc = &packed[c * 4 * w.k_h * kwp..][..4 * w.k_h * kwp];
            let b = bias.map_or(0, |b| b[c]);
            let out = &mut output[(n * g.out_c + c) * plane_out..][..plane_out];
            let scale = scales[c];
            #[cfg(target_arch = "x86_64")]
            if (1..=2).contains(&w.stride_w) && w.k_h * w.k_w <= 64 && super::cpu::avx2() {
                // The channel's taps in order (unpacked from the kernel's layout).
                let mut taps = [0i32; 64];
                for ky in 0..w.k_h {
                    for kx in 0..w.k_w {
                        taps[ky * w.k_w + kx] = i32::from(depthwise_tap(wc, w.k_w, ky, kx));
                    }
                }
                // SAFETY: the CPU has AVX2; `padded` holds the channel's padded plane
                // (`row` bytes a row, every window inside it), `out` its output plane.
                unsafe { x86::depthwise_i8_plane(p, padded, row, &taps, b, scale, out) };
                continue;
            }
            let q = |a: i32| super::quant::requantize_scaled(a, scale, p.output_zero, p.lo, p.hi);
            for oy in 0..w.out_h {
                let y0 = oy * w.stride_h;
                let line = &mut out[oy * w.out_w..][..w.out_w];
                let pairs = |pair: PairKernel, line: &mut [i8]| {
                    pair_row(line, w.stride_w, p, scale, |x0| {
                        pair(padded, row, y0, x0, w.dil_h, wc, p.input_zero, b)
                    })
                };
                match pair_kernel {
                    Some(PairKind::Stride1) => {
                        pairs(depthwise_3x3_pair, line);
                        continue;
                    }
                    Some(PairKind::Stride2) => {
                        pairs(depthwise_3x3_s2_pair, line);
                        continue;
                    }
                    None => {}
                }
                for (ox, o) in line.iter_mut().enumerate() {
                    let x0 = ox * w.stride_w;
                    let mut acc = b;
                    for ky in 0..w.k_h {
                        let r = &padded[(y0 + ky * w.dil_h) * row..][..row];
                        for kx in 0..w.k_w {
                            let wt = depthwise_tap(wc, w.k_w, ky, kx);
                            acc += (i32::from(r[x0 + kx * w.dil_w]) - p.input_zero) * i32::from(wt);
                        }
                    }
                    *o = q(acc);
                }
            }
        }
    }
}

/// Tap `(ky, kx)` of one channel's packed depthwise weights `wc` (see
/// [`pack_depthwise_weights`]: for `k_w = 3` each kernel row starts `(w0, w2), (w1, 0)`).
#[inline(always)]
fn depthwise_tap(wc: &[i16], k_w: usize, ky: usize, kx: usize) -> i16 {
    let row = 4 * ky * k_w.div_ceil(2);
    if k_w == 3 {
        [wc[row], wc[row + 2], wc[row + 1]][kx]
    } else {
        wc[row + 4 * (kx / 2) + kx % 2]
    }
}

/// What [`depthwise_rows_dsp_asm`] loads once per channel into `s2`–`s9` by one `VLDM` (the
/// loop has no core registers left; the weights come straight from the packed channel).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[repr(C, align(8))]
struct DwRows {
    /// `s2`: the channel's scale.
    scale: f32,
    /// `s3`: the bias minus `input_zero · Σ w`: the loop sums `w · x` of the raw bytes (the
    /// padding holds the input zero point, so it adds `w · zero`, which this takes back).
    bias: i32,
    /// `s4`: the output zero point.
    zero: i32,
    /// `s5`, `s6`: the clamp bounds in all four bytes (used only by the clamping variant).
    lo4: u32,
    hi4: u32,
    /// `s7`: bytes the pairs of one output row write (`2 · ⌊out_w / 2⌋`, not 0).
    pair_bytes: usize,
    /// `s8`: bytes from the window after a row's last pair to the next row's first window
    /// (`stride_h · row − 2 · STRIDE · ⌊out_w / 2⌋`).
    row_step: usize,
    /// `s9`: where the output pointer stops (after `rows` rows, not 0).
    end: *mut i8,
    /// The plane's first output byte (not loaded into `s10`: the loop's output pointer).
    out: *mut i8,
}

/// The instructions of [`depthwise_rows_dsp_asm`] around its multiply-accumulates: per
/// output row the pairs (two sums from the bias, `$pair`, both requantised: `VCVT`, `VMUL`,
/// `VCVTR`, `QADD`, `SSAT`, packed by `BFI`, `$clamp`, one `STRH`), then an odd last pixel
/// (`$single`), then the next row's windows.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_rows_asm {
    ($params:expr, $weights:expr, $x:expr, $out:expr, $rs:expr,
     [$($pair:expr),*], [$($lone:expr),*], [$($clamp:expr),*], [$($zero:expr),*]) => {
        core::arch::asm!(
            "push {{r7}}",
            // The channel's packed weights (see `pack_depthwise_weights`): (w0, w2) of rows
            // 0, 1, 2 at words 0, 4, 8; (w1, w1') of rows 0 and 1 at word 6; (w1'', 0) at 9.
            "ldr {w0}, [{e}]",
            "ldr {w1}, [{e}, #16]",
            "ldr {w2}, [{e}, #32]",
            "ldr {v}, [{e}, #24]",
            "ldr {u}, [{e}, #36]",
            "vldmia {t}, {{s2-s9}}",
            // `t` holds the output zero point unless `$pair` needs it (then `$zero` reloads it).
            "vmov {t}, s4",
            // r7 (saved above: it cannot be an operand) is where the row's pairs end.
            "1:",
            "vmov r7, s7",
            "add r7, r7, {po}",
            "2:",
            "vmov {a0}, s3",
            "mov {a1}, {a0}",
            $($pair,)*
            "vmov s0, s1, {a0}, {a1}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            "vmul.f32 s0, s0, s2",
            "vmul.f32 s1, s1, s2",
            "vcvtr.s32.f32 s0, s0",
            "vcvtr.s32.f32 s1, s1",
            "vmov {a0}, {a1}, s0, s1",
            $($zero,)*
            "qadd {a0}, {a0}, {t}",
            "qadd {a1}, {a1}, {t}",
            "ssat {a0}, #8, {a0}",
            "ssat {a1}, #8, {a1}",
            "bfi {a0}, {a1}, #8, #8",
            $($clamp,)*
            "strh {a0}, [{po}], #2",
            "cmp {po}, r7",
            "bne 2b",
            $($lone,)*
            // The next row's first window (the pairs moved `px` along this row), until the
            // output pointer reaches the end of the plane.
            "vmov r7, s8",
            "add {px}, {px}, r7",
            "vmov r7, s9",
            "cmp {po}, r7",
            "bne 1b",
            "pop {{r7}}",
            t = inout(reg) $params => _,
            px = inout(reg) $x => _,
            po = inout(reg) $out => _,
            rs = in(reg) $rs,
            w0 = out(reg) _,
            w1 = out(reg) _,
            w2 = out(reg) _,
            v = out(reg) _,
            u = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            x = out(reg) _,
            // The weights' address until they are loaded, then a temporary.
            e = inout(reg) $weights => _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s7") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
        )
    };
}

/// An odd row's last pixel alone in [`dw_rows_asm`]: `$single`'s sum from the bias,
/// requantised, `$clamp`, one `STRB`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_lone {
    ([$($single:expr),*], [$($clamp:expr),*], [$($zero:expr),*]) => {
        concat!(
            "vmov {a0}, s3\n",
            $($single, "\n",)*
            "vmov s0, {a0}\n",
            "vcvt.f32.s32 s0, s0\n",
            "vmul.f32 s0, s0, s2\n",
            "vcvtr.s32.f32 s0, s0\n",
            "vmov {a0}, s0\n",
            $($zero, "\n",)*
            "qadd {a0}, {a0}, {t}\n",
            "ssat {a0}, #8, {a0}\n",
            $($clamp, "\n",)*
            "strb {a0}, [{po}], #1"
        )
    };
}

/// One kernel row of a lone pixel: `(x0, x2)` and `(x1, x3)` by `SXTB16`, `SMLAD` with
/// `(w0, w2)` and `w1` from a half of `$v` (`$xy`: `bb` for the bottom half, `bt` the top).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_single_row {
    ($load:literal, $w:literal, $v:literal, $xy:literal) => {
        concat!(
            "ldr {x}, ",
            $load,
            "\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {",
            $w,
            "}, {a0}\n",
            "smla",
            $xy,
            " {a0}, {x}, {",
            $v,
            "}, {a0}"
        )
    };
}

/// The requantised bytes clamped to `lo..=hi` four at a time (`SSUB8`/`SEL`): only for a
/// clamp narrower than `SSAT`'s `-128..=127` (a fused ReLU with a zero point above -128).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_clamp {
    () => {
        concat!(
            "vmov {x}, s5\n",
            "ssub8 {e}, {a0}, {x}\n",
            "sel {a0}, {a0}, {x}\n",
            "vmov {x}, s6\n",
            "ssub8 {e}, {x}, {a0}\n",
            "sel {a0}, {a0}, {x}"
        )
    };
}

/// A lone pixel's three kernel rows (see [`dw_single_row`]).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_single {
    () => {
        concat!(
            dw_single_row!("[{px}]", "w0", "v", "bb"),
            "\n",
            dw_single_row!("[{px}, {rs}]", "w1", "v", "bt"),
            "\n",
            dw_single_row!("[{px}, {rs}, lsl #1]", "w2", "u", "bb")
        )
    };
}

/// Two stride-1 pixels, per kernel row: `e = (x0, x2)`, `x = (x1, x3)`; pixel 0 `e·(w0, w2)
/// + x1·w1`, pixel 1 `x·(w0, w2) + x2·w1`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_s1_pair {
    () => {
        concat!(
            "ldr {x}, [{px}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w0}, {a0}\n",
            "smlabb {a0}, {x}, {v}, {a0}\n",
            "smlad {a1}, {x}, {w0}, {a1}\n",
            "smlatb {a1}, {e}, {v}, {a1}\n",
            "ldr {x}, [{px}, {rs}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w1}, {a0}\n",
            "smlabt {a0}, {x}, {v}, {a0}\n",
            "smlad {a1}, {x}, {w1}, {a1}\n",
            "smlatt {a1}, {e}, {v}, {a1}\n",
            "ldr {x}, [{px}, {rs}, lsl #1]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w2}, {a0}\n",
            "smlabb {a0}, {x}, {u}, {a0}\n",
            "smlad {a1}, {x}, {w2}, {a1}\n",
            "smlatb {a1}, {e}, {u}, {a1}\n",
            "adds {px}, {px}, #2"
        )
    };
}

/// Two stride-2 pixels, per kernel row: `e = (x0, x2)`, `x = (x1, x3)`, then `e = x4`;
/// pixel 0 `e·(w0, w2) + x1·w1`, pixel 1 `x2·w0 + x3·w1 + x4·w2`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_s2_pair {
    () => {
        concat!(
            "ldr {x}, [{px}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w0}, {a0}\n",
            "smlabb {a0}, {x}, {v}, {a0}\n",
            "smlatb {a1}, {e}, {w0}, {a1}\n",
            "smlatb {a1}, {x}, {v}, {a1}\n",
            "ldrsb {e}, [{px}, #4]\n",
            "smlabt {a1}, {e}, {w0}, {a1}\n",
            "add {t}, {px}, {rs}\n",
            "ldr {x}, [{t}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w1}, {a0}\n",
            "smlabt {a0}, {x}, {v}, {a0}\n",
            "smlatb {a1}, {e}, {w1}, {a1}\n",
            "smlatt {a1}, {x}, {v}, {a1}\n",
            "ldrsb {e}, [{t}, #4]\n",
            "smlabt {a1}, {e}, {w1}, {a1}\n",
            "add {t}, {t}, {rs}\n",
            "ldr {x}, [{t}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w2}, {a0}\n",
            "smlabb {a0}, {x}, {u}, {a0}\n",
            "smlatb {a1}, {e}, {w2}, {a1}\n",
            "smlatb {a1}, {x}, {u}, {a1}\n",
            "ldrsb {e}, [{t}, #4]\n",
            "smlabt {a1}, {e}, {w2}, {a1}\n",
            "adds {px}, {px}, #4"
        )
    };
}

/// One channel's plane (`params.out` to `params.end`, rows of `out_w` ≥ 2 pixels; windows
/// `stride_h` padded rows apart from `x`, kernel rows `rs` bytes apart) of a 3×3 depthwise
/// convolution with horizontal stride `STRIDE` (1 or 2) on Cortex-M4F/M7/M33, every operand
/// in a register: the weights in five, the channel's constants in `s2`–`s9`. Per pair of
/// pixels, per kernel row one word load, two `SXTB16` and four multiply instructions
/// (`SMLAD` and `SMLAxy`; at stride 2 one `LDRSB` and a fifth), then both outputs requantised
/// and stored by one `STRH`: 39 instructions at stride 1 (48 at stride 2) for 18
/// multiply-accumulates, 6 more when the clamp (`clamp`) is narrower than `SSAT`'s. An odd
/// row's (`odd`) last pixel alone: 24 (25).
///
/// # Safety
/// `x` is the padded plane's byte at the first window's top-left corner; for every output
/// row j and pixel `i < out_w` the bytes `x + j·stride_h·row + i·STRIDE + r·rs + [0, 4 +
/// (STRIDE − 1))` are readable for r = 0, 1, 2; `params.out` to `params.end` (a whole
/// number of rows, at least one) is writable; `params` describes the geometry; `wc` is a
/// channel's 24 packed 3×3 weights ([`pack_depthwise_weights`]).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
unsafe fn depthwise_rows_dsp_asm<const STRIDE: usize>(
    x: *const i8,
    rs: usize,
    wc: *const i16,
    params: &DwRows,
    clamp: bool,
    odd: bool,
) {
    let pp = params as *const DwRows;
    // SAFETY: the reads and writes are the caller's contract (every pair's and every lone
    // pixel's loads are inside the windows it names, plus the row's slack; the weights are
    // words 0, 4, 6, 8, 9 of `wc`'s 12); `params` lives across the block and is only read. FPU and DSP-extension instructions; s0–s10 and the
    // flags are clobbered; r7 is pushed and popped (the stack balanced, no call between).
    unsafe {
        // Stride 1 keeps the zero point in `t` all along; stride 2's pairs use `t` for
        // addresses, so it is reloaded before every `QADD`.
        match (STRIDE, clamp, odd) {
            (1, false, false) => {
                dw_rows_asm!(pp, wc, x, params.out, rs, [dw_s1_pair!()], [], [], [])
            }
            (1, false, true) => dw_rows_asm!(
                pp,
                wc,
                x,
                params.out,
                rs,
                [dw_s1_pair!()],
                [dw_lone!([dw_single!()], [], [])],
                [],
                []
            ),
            (1, true, false) => {
                dw_rows_asm!(
                    pp,
                    wc,
                    x,
                    params.out,
                    rs,
                    [dw_s1_pair!()],
                    [],
                    [dw_clamp!()],
                    []
                )
            }
            (1, true, true) => dw_rows_asm!(
                pp,
                wc,
                x,
                params.out,
                rs,
                [dw_s1_pair!()],
                [dw_lone!([dw_single!()], [dw_clamp!()], [])],
                [dw_clamp!()],
                []
            ),
            (_, false, false) => {
                dw_rows_asm!(
                    pp,
                    wc,
                    x,
                    params.out,
                    rs,
                    [dw_s2_pair!()],
                    [],
                    [],
                    ["vmov {t}, s4"]
                )
            }
            (_, false, true) => dw_rows_asm!(
                pp,
                wc,
                x,
                params.out,
                rs,
                [dw_s2_pair!()],
                [dw_lone!([dw_single!()], [], ["vmov {t}, s4"])],
                [],
                ["vmov {t}, s4"]
            ),
            (_, true, false) => dw_rows_asm!(
                pp,
                wc,
                x,
                params.out,
                rs,
                [dw_s2_pair!()],
                [],
                [dw_clamp!()],
                ["vmov {t}, s4"]
            ),
            (_, true, true) => dw_rows_asm!(
                pp,
                wc,
                x,
                params.out,
                rs,
                [dw_s2_pair!()],
                [dw_lone!([dw_single!()], [dw_clamp!()], ["vmov {t}, s4"])],
                [dw_clamp!()],
                ["vmov {t}, s4"]
            ),
        }
    }
}

/// [`conv2d_i8_depthwise`] for the two-pixel geometries on Cortex-M4F/M7/M33 (rows of at
/// least two pixels): each channel copied into the padded plane, then all its rows by
/// [`depthwise_rows_dsp_asm`].
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
fn depthwise_rows_dsp(
    p: &ConvI8,
    kind: PairKind,
    planes: &Planes,
    packed: &[i16],
    bias: Option<&[i32]>,
    scales: &[f32],
    padded: &mut [i8],
    row: usize,
    output: &mut [i8],
) {
    let g = &p.geom;
    let w = &g.window;
    let (kept, fresh) = (planes.kept, w.in_h - planes.kept);
    let (plane_in, plane_out) = (fresh * w.in_w, w.out_h * w.out_w);
    let (step, last_col) = match kind {
        PairKind::Stride1 => (1, 3),
        PairKind::Stride2 => (2, 4),
    };
    // Every window's reads: rows y0 + r·dil_h (r ≤ 2), columns i·step ..= i·step + last_col
    // for pixels i < out_w (a pair's second pixel reads no further than its own window
    // plus the row's slack); the deepest row and column must be inside the padded plane.
    let deepest = ((w.out_h - 1) * w.stride_h + 2 * w.dil_h) * row;
    let widest = (w.out_w - 1) * step + last_col;
    assert!(widest < row && deepest + row <= padded.len() && w.out_w >= 2);
    assert!(output.len() >= g.batch * g.out_c * plane_out);
    assert!(packed.len() >= 24 * g.out_c && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    let inside = w.pad_top * row + w.pad_left;
    let bytes = |v: i8| u32::from(v as u8) * 0x0101_0101;
    // The per-call constants once; per channel only the weights, scale, bias and plane.
    let mut params = DwRows {
        scale: 0.0,
        bias: 0,
        zero: p.output_zero,
        lo4: bytes(p.lo),
        hi4: bytes(p.hi),
        pair_bytes: 2 * (w.out_w / 2),
        // Wrapping: added to an address (it is positive for every padded geometry).
        row_step: (w.stride_h * row).wrapping_sub(2 * step * (w.out_w / 2)),
        end: core::ptr::null_mut(),
        out: core::ptr::null_mut(),
    };
    let clamp = p.lo != i8::MIN || p.hi != i8::MAX;
    let odd = w.out_w % 2 == 1;
    let rs = w.dil_h * row;
    let zero = p.input_zero;
    // The copies: every row of the input lands inside the padded plane, with the four
    // bytes after it ...
    assert!(w.in_h == 0 || inside + (w.in_h - 1) * row + w.in_w + 4 <= padded.len());
    assert!(row >= w.in_w + 4);
    // ... and a plane starting at byte `s` of its source reads whole words from each row
    // start (`(rows − 1)·in_w + wide` bytes) inside it when `s` ≤ the source's `fast_*`
    // (every plane when it has no rows: nothing is read; none when the bound is negative).
    let fast = |len: usize, rows: usize| match rows {
        0 => isize::MAX,
        _ => len as isize - ((rows - 1) * w.in_w + w.in_w.next_multiple_of(4)) as isize,
    };
    let (fast_kept, fast_fresh) = (
        fast(planes.kept_rows.len(), kept),
        fast(planes.input.len(), fresh),
    );
    // Per channel only its plane copy, two constants and two pointers: every loop-invariant
    // (the weights, each channel's sum of weights) was packed at build time.
    for n in 0..g.batch {
        for c in 0..g.out_c {
            // Planes whose every row has a whole word from its last word's start (all but
            // the tensor's last ones) straight into the padded plane; the others checked.
            let at = n * g.in_c + c;
            let base = padded.as_mut_ptr();
            if (at * kept * w.in_w) as isize <= fast_kept {
                // SAFETY: the plane's rows and their last words are inside `kept_rows`
                // (`fast_kept`), the destination rows inside `padded` (asserted above).
                unsafe {
                    let src = planes.kept_rows.as_ptr().add(at * kept * w.in_w);
                    copy_plane_rows(src, w.in_w, kept, base.add(inside), row, zero as i8);
                }
            } else {
                let src = &planes.kept_rows[at * kept * w.in_w..];
                copy_plane(src, w.in_w, kept, padded, inside, row, zero as i8);
            }
            let below = inside + kept * row;
            if (at * plane_in) as isize <= fast_fresh {
                // SAFETY: as above, in `input` (`fast_fresh`).
                unsafe {
                    let src = planes.input.as_ptr().add(at * plane_in);
                    copy_plane_rows(src, w.in_w, fresh, base.add(below), row, zero as i8);
                }
            } else {
                let src = &planes.input[at * plane_in..];
                copy_plane(src, w.in_w, fresh, padded, below, row, zero as i8);
            }
            let wc = &packed[c * 24..][..24];
            let b = bias.map_or(0, |b| b[c]);
            // The loop sums `w · x` of the raw bytes (the border holds the input zero point):
            // the bias takes `zero · Σ w` (packed at `wc[4]`) back.
            params.bias = b.wrapping_sub(zero.wrapping_mul(i32::from(wc[4])));
            params.scale = scales[c];
            let plane = n * g.out_c + c;
            // SAFETY: the plane `plane · plane_out ..+ plane_out` is inside `output` (asserted
            // above: `plane < batch · out_c`).
            params.out = unsafe { output.as_mut_ptr().add(plane * plane_out) };
            // SAFETY: one past the plane's end, inside or one past `output` (as above).
            params.end = unsafe { params.out.add(plane_out) };
            // SAFETY: the reads are inside `padded` (asserted above for every window of
            // every row), the writes are the plane (`out` to `end`, `out_h` rows); `wc` is
            // the channel's 24 packed weights (LDR may be unaligned on Armv7E-M).
            unsafe {
                let x = padded.as_ptr();
                match kind {
                    PairKind::Stride1 => {
                        depthwise_rows_dsp_asm::<1>(x, rs, wc.as_ptr(), &params, clamp, odd)
                    }
                    PairKind::Stride2 => {
                        depthwise_rows_dsp_asm::<2>(x, rs, wc.as_ptr(), &params, clamp, odd)
                    }
                }
            }
        }
    }
}

/// Where a depthwise convolution's input planes are (see [`conv2d_i8_depthwise_split`]).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
struct Planes<'a> {
    kept_rows: &'a [i8],
    kept: usize,
    input: &'a [i8],
}

/// A two-pixel depthwise kernel: `(padded, row, y0, x0, dil_h, weights, zero, bias)`.
type PairKernel = fn(&[i8], usize, usize, usize, usize, &[i16], i32, i32) -> [i32; 2];

/// The depthwise geometries with a two-pixel kernel: 3×3, horizontal stride 1 or 2.
#[derive(Clone, Copy)]
enum PairKind {
    Stride1,
    Stride2,
}

/// One output row of a depthwise convolution two pixels at a time: `sums(x0)` gives the
/// accumulators of the pixels whose windows start at columns `x0` and `x0 + stride`.
#[inline(always)]
fn pair_row(
    line: &mut [i8],
    stride: usize,
    p: &ConvI8,
    scale: f32,
    sums: impl Fn(usize) -> [i32; 2],
) {
    for (i, o) in line.chunks_mut(2).enumerate() {
        let acc = sums(2 * i * stride);
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        {
            let t =
                super::quant::requantize_pair_dsp(acc[0], acc[1], scale, p.output_zero, p.lo, p.hi);
            o[0] = t as i8;
            if let Some(o1) = o.get_mut(1) {
                *o1 = (t >> 16) as i8;
            }
        }
        #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
        {
            let q = |a: i32| super::quant::requantize_scaled(a, scale, p.output_zero, p.lo, p.hi);
            o[0] = q(acc[0]);
            if let Some(o1) = o.get_mut(1) {
                *o1 = q(acc[1]);
            }
        }
    }
}

/// The plane at the start of `src` (`in_h` rows of `in_w` bytes; `src` may go on past it,
/// e.g. to the tensor's end) into the padded plane `dst` from byte `at`, rows `row` bytes
/// apart (`row` ≥ `in_w + 4`), the border left as it is: four bytes at a time, unaligned. A
/// row whose source has a whole word from its last word's start is copied up to three bytes
/// too far and the four bytes after it set back to the border's `fill`; the others (only the
/// tensor's last row, unless `in_w` is a multiple of 4) exactly.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn copy_plane(
    src: &[i8],
    in_w: usize,
    in_h: usize,
    dst: &mut [i8],
    at: usize,
    row: usize,
    fill: i8,
) {
    let wide = in_w.next_multiple_of(4);
    assert!(in_w * in_h <= src.len());
    assert!(row >= in_w + 4 && (in_h == 0 || at + (in_h - 1) * row + in_w + 4 <= dst.len()));
    // Rows y < fast read y·in_w + [0, wide), inside `src` (all when `src` runs far enough
    // past the plane, as it does for all but a tensor's last channels: no division then).
    let fast = if in_h > 0 && (in_h - 1) * in_w + wide <= src.len() {
        in_h
    } else if src.len() >= wide {
        ((src.len() - wide) / in_w + 1).min(in_h)
    } else {
        0
    };
    // SAFETY: rows y < fast read src[y·in_w..][..wide] (inside `src`, above) and write
    // dst[at + y·row..][..in_w + 4] (asserted; `at` is inside `dst` when a row is copied).
    unsafe {
        copy_plane_rows(
            src.as_ptr(),
            in_w,
            fast,
            dst.as_mut_ptr().add(at.min(dst.len())),
            row,
            fill,
        )
    };
    for y in fast..in_h {
        let (s, d) = (y * in_w, at + y * row);
        copy_bytes(&mut dst[d..d + in_w], &src[s..s + in_w]);
    }
}

/// Rows `y < n` of `in_w` bytes from `src + y·in_w` to `dst + y·row`, four bytes at a time
/// (see [`copy_plane`]): up to three bytes past each row are copied too and the four
/// bytes after it set to `fill` (rows of whole groups of 16 bytes from an aligned source:
/// exactly `in_w`).
///
/// # Safety
/// For y < n, `src + y·in_w + [0, in_w.next_multiple_of(4))` is readable and `dst + y·row
/// + [0, in_w + 4)` writable (`row` ≥ `in_w + 4`).
#[inline(always)]
unsafe fn copy_plane_rows(
    src: *const i8,
    in_w: usize,
    n: usize,
    dst: *mut i8,
    row: usize,
    fill: i8,
) {
    if n == 0 {
        return;
    }
    #[cfg(microarena_dsp)]
    let wide = in_w.next_multiple_of(4);
    let fill = u32::from_ne_bytes([fill as u8; 4]);
    #[cfg(microarena_dsp)]
    if in_w % 4 == 0 && in_w >= 16 && src as usize % 4 == 0 {
        // Rows of whole words from an aligned source (a window of a streamed stage, a plane
        // of a tensor whose width is a multiple of 4): four words per `LDM` and four
        // unaligned stores, the row's last four words once more (overlapping: the same
        // bytes) instead of a loop for the remainder. Exactly `in_w` bytes a row: the border
        // is never touched.
        // SAFETY: row y < n reads src[y·in_w..][..in_w] (readable: the caller's contract;
        // 4-aligned: the source and `in_w`) and writes dst[y·row..][..in_w] (the contract);
        // unaligned STR is allowed on Armv7E-M. r0–r3 clobbered, no stack, flags clobbered.
        unsafe {
            core::arch::asm!(
                "1:",
                "mov {q}, {quads}",
                "2:",
                "ldmia {s}!, {{r0, r1, r2, r3}}",
                "str r0, [{d}]",
                "str r1, [{d}, #4]",
                "str r2, [{d}, #8]",
                "str r3, [{d}, #12]",
                "adds {d}, {d}, #16",
                "subs {q}, {q}, #1",
                "bne 2b",
                // The last four words of the row (again, if the row is whole groups).
                "subs {s}, {s}, {back}",
                "subs {d}, {d}, {back}",
                "ldmia {s}!, {{r0, r1, r2, r3}}",
                "str r0, [{d}]",
                "str r1, [{d}, #4]",
                "str r2, [{d}, #8]",
                "str r3, [{d}, #12]",
                "add {d}, {d}, {step}",
                "subs {n}, {n}, #1",
                "bne 1b",
                s = inout(reg) src => _,
                d = inout(reg) dst => _,
                n = inout(reg) n => _,
                q = out(reg) _,
                quads = in(reg) in_w / 16,
                // From after the whole groups back to the row's last 16 bytes.
                back = in(reg) 16 - in_w % 16,
                // From the last group's start to the next row's first byte.
                step = in(reg) row - in_w + 16,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack),
            );
        }
        return;
    }
    #[cfg(microarena_dsp)]
    if wide <= 8 {
        // Short rows (small planes): one or two words per row, no inner loop.
        // SAFETY: row y < n reads src[y·in_w..][..wide] (the caller's contract; the second
        // word only when `wide` is 8) and writes dst[y·row..][..in_w + 4] (the contract;
        // `wide` ≤ `in_w + 3`; the fill after the words, at `in_w`); unaligned LDR/STR are
        // allowed on Armv7E-M. No stack; the flags are clobbered.
        unsafe {
            let (s, d) = (src, dst);
            if wide == 8 {
                core::arch::asm!(
                    "1:",
                    "ldr {v}, [{s}, #4]",
                    "ldr {u}, [{s}]",
                    "add {s}, {s}, {w}",
                    "str {v}, [{d}, #4]",
                    "str {u}, [{d}]",
                    "str {fill}, [{d}, {w}]",
                    "add {d}, {d}, {row}",
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    n = inout(reg) n => _,
                    w = in(reg) in_w,
                    row = in(reg) row,
                    fill = in(reg) fill,
                    v = out(reg) _,
                    u = out(reg) _,
                    options(nostack),
                );
            } else {
                core::arch::asm!(
                    "1:",
                    "ldr {u}, [{s}]",
                    "add {s}, {s}, {w}",
                    "str {u}, [{d}]",
                    "str {fill}, [{d}, {w}]",
                    "add {d}, {d}, {row}",
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    n = inout(reg) n => _,
                    w = in(reg) in_w,
                    row = in(reg) row,
                    fill = in(reg) fill,
                    u = out(reg) _,
                    options(nostack),
                );
            }
        }
        return;
    }
    #[cfg(microarena_dsp)]
    {
        // SAFETY: row y < n reads src[y·in_w..][..wide] and writes dst[y·row..][..in_w + 4]
        // (the caller's contract; `wide` ≤ `in_w + 3`); unaligned LDR/STR are allowed on
        // Armv7E-M. No stack; the flags are clobbered.
        unsafe {
            core::arch::asm!(
                "1:",
                "add {end}, {s}, {w}",
                "2:",
                "ldr {v}, [{s}], #4",
                "str {v}, [{d}], #4",
                "cmp {s}, {end}",
                "blo 2b",
                // Back to the row's end (the words went up to three bytes further), the
                // fill after it, then the next row.
                "subs {v}, {s}, {end}",
                "mov {s}, {end}",
                "subs {d}, {d}, {v}",
                "str {fill}, [{d}]",
                "add {d}, {d}, {step}",
                "subs {n}, {n}, #1",
                "bne 1b",
                s = inout(reg) src => _,
                d = inout(reg) dst => _,
                n = inout(reg) n => _,
                w = in(reg) in_w,
                step = in(reg) row - in_w,
                fill = in(reg) fill,
                end = out(reg) _,
                v = out(reg) _,
                options(nostack),
            );
        }
    }
    #[cfg(not(microarena_dsp))]
    for y in 0..n {
        let (s, d) = (y * in_w, y * row);
        // SAFETY: the loads are inside `src + s + [0, wide)`, the stores inside `dst + d + [0,
        // in_w + 4)` (the caller's contract; `wide` ≤ `in_w + 3`); both unaligned reads and
        // writes of plain bytes.
        unsafe {
            let (sp, dp) = (src.add(s), dst.add(d));
            let mut i = 0;
            while i < in_w {
                let v = (sp.add(i) as *const u32).read_unaligned();
                (dp.add(i) as *mut u32).write_unaligned(v);
                i += 4;
            }
            (dp.add(in_w) as *mut u32).write_unaligned(fill);
        }
    }
}

/// `dst.copy_from_slice(src)` for the short rows of small planes: four bytes at a time (one
/// unaligned word load and store on Cortex-M) without a call to `memcpy`.
#[inline(always)]
fn copy_bytes(dst: &mut [i8], src: &[i8]) {
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    // Up to three bytes, spelt out: as a loop it becomes a call to `memcpy` again.
    let (d, s) = (d.into_remainder(), s.remainder());
    if let (Some(d), Some(s)) = (d.get_mut(0), s.first()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (d.get_mut(1), s.get(1)) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (d.get_mut(2), s.get(2)) {
        *d = *s;
    }
}

/// Two output pixels of a 3×3 depthwise window with horizontal stride 2, whose top row is
/// row `y0` of the padded plane and first column `x0` (pixel 1's is `x0 + 2`): `bias +
/// Σ w · (x − zero)` for each.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_3x3_s2_pair(
    padded: &[i8],
    row: usize,
    y0: usize,
    x0: usize,
    dil_h: usize,
    wc: &[i16],
    zero: i32,
    bias: i32,
) -> [i32; 2] {
    // The five bytes each kernel row reads, inside the plane (the row has slack for the
    // unpaired last pixel).
    assert!((y0 + 2 * dil_h) * row + x0 + 5 <= padded.len() && wc.len() >= 12);
    #[cfg(microarena_dsp)]
    {
        let minus_zero = (-zero) as u32 & 0xffff;
        let offsets = minus_zero | minus_zero << 16;
        let (mut a0, mut a1) = (bias, bias);
        let base = padded[y0 * row + x0..].as_ptr();
        // SAFETY: rows y0, y0 + dil_h, y0 + 2·dil_h are read at `x0..x0 + 5` (asserted inside
        // `padded`; LDR may be unaligned on Armv7E-M); the weights at `wc[0..12]` (asserted;
        // 4-aligned: a 16-aligned blob at a multiple of 8 bytes, as LDRD needs). Per row:
        // e = (x0, x2), o = (x1, x3), y = x4 (low half), each minus the zero point; weights
        // wa = (w0, w2), wb = (w1, 0). DSP-extension instructions; no stack; no flags.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{px}]",
                "ldrb {y}, [{px}, #4]",
                "add {px}, {px}, {stride}",
                "ldrd {wa}, {wb}, [{pw}]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {x}, {z}, {x}, ror #8",
                "sxtab16 {y}, {z}, {y}",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {x}, {wb}, {a0}",
                "smlatb {a1}, {e}, {wa}, {a1}",
                "smlatb {a1}, {x}, {wb}, {a1}",
                "smlabt {a1}, {y}, {wa}, {a1}",
                "ldr {x}, [{px}]",
                "ldrb {y}, [{px}, #4]",
                "add {px}, {px}, {stride}",
                "ldrd {wa}, {wb}, [{pw}, #16]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {x}, {z}, {x}, ror #8",
                "sxtab16 {y}, {z}, {y}",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {x}, {wb}, {a0}",
                "smlatb {a1}, {e}, {wa}, {a1}",
                "smlatb {a1}, {x}, {wb}, {a1}",
                "smlabt {a1}, {y}, {wa}, {a1}",
                "ldr {x}, [{px}]",
                "ldrb {y}, [{px}, #4]",
                "ldrd {wa}, {wb}, [{pw}, #32]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {x}, {z}, {x}, ror #8",
                "sxtab16 {y}, {z}, {y}",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {x}, {wb}, {a0}",
                "smlatb {a1}, {e}, {wa}, {a1}",
                "smlatb {a1}, {x}, {wb}, {a1}",
                "smlabt {a1}, {y}, {wa}, {a1}",
                px = inout(reg) base => _,
                pw = in(reg) wc.as_ptr(),
                stride = in(reg) dil_h * row,
                z = in(reg) offsets,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                x = out(reg) _,
                y = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                e = out(reg) _,
                options(nostack, readonly, preserves_flags),
            );
        }
        [a0, a1]
    }
    #[cfg(not(microarena_dsp))]
    {
        let mut acc = [bias, bias];
        for ky in 0..3 {
            let r = &padded[(y0 + ky * dil_h) * row + x0..][..5];
            let x = |i: usize| i32::from(r[i]) - zero;
            let (w0, w2, w1) = (
                i32::from(wc[8 * ky]),
                i32::from(wc[8 * ky + 1]),
                i32::from(wc[8 * ky + 2]),
            );
            acc[0] += w0 * x(0) + w1 * x(1) + w2 * x(2);
            acc[1] += w0 * x(2) + w1 * x(3) + w2 * x(4);
        }
        acc
    }
}

/// Two output pixels `(ox, ox + 1)` of a 3×3, stride-1 depthwise window whose top row is row
/// `y0` of the padded plane: `bias + Σ w · (x − zero)` for each.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_3x3_pair(
    padded: &[i8],
    row: usize,
    y0: usize,
    ox: usize,
    dil_h: usize,
    wc: &[i16],
    zero: i32,
    bias: i32,
) -> [i32; 2] {
    // The four bytes each kernel row loads, inside the plane (the row has slack for the
    // unpaired last pixel).
    assert!((y0 + 2 * dil_h) * row + ox + 4 <= padded.len() && wc.len() >= 12);
    #[cfg(microarena_dsp)]
    {
        let minus_zero = (-zero) as u32 & 0xffff;
        let offsets = minus_zero | minus_zero << 16;
        let (mut a0, mut a1) = (bias, bias);
        let base = padded[y0 * row + ox..].as_ptr();
        // SAFETY: rows y0, y0 + dil_h, y0 + 2·dil_h are read at `ox..ox + 4` (asserted inside
        // `padded`; LDR may be unaligned on Armv7E-M); the weights at `wc[0..12]` (asserted;
        // 4-aligned: a 16-aligned blob at a multiple of 8 bytes, as LDRD needs).
        // DSP-extension instructions; no stack; no flags.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{px}]",
                "ldrd {wa}, {wb}, [{pw}]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {o}, {z}, {x}, ror #8",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {o}, {wb}, {a0}",
                "smlad {a1}, {o}, {wa}, {a1}",
                "smlatb {a1}, {e}, {wb}, {a1}",
                "ldr {x}, [{px}, {stride}]",
                "ldrd {wa}, {wb}, [{pw}, #16]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {o}, {z}, {x}, ror #8",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {o}, {wb}, {a0}",
                "smlad {a1}, {o}, {wa}, {a1}",
                "smlatb {a1}, {e}, {wb}, {a1}",
                "ldr {x}, [{px}, {stride2}]",
                "ldrd {wa}, {wb}, [{pw}, #32]",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {o}, {z}, {x}, ror #8",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {o}, {wb}, {a0}",
                "smlad {a1}, {o}, {wa}, {a1}",
                "smlatb {a1}, {e}, {wb}, {a1}",
                px = in(reg) base,
                pw = in(reg) wc.as_ptr(),
                stride = in(reg) dil_h * row,
                stride2 = in(reg) 2 * dil_h * row,
                z = in(reg) offsets,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                x = out(reg) _,
                wa = out(reg) _,
                wb = out(reg) _,
                e = out(reg) _,
                o = out(reg) _,
                options(nostack, readonly, preserves_flags),
            );
        }
        [a0, a1]
    }
    #[cfg(not(microarena_dsp))]
    {
        let mut acc = [bias, bias];
        for ky in 0..3 {
            let r = &padded[(y0 + ky * dil_h) * row + ox..][..4];
            let x = |i: usize| i32::from(r[i]) - zero;
            let (w0, w2, w1) = (
                i32::from(wc[8 * ky]),
                i32::from(wc[8 * ky + 1]),
                i32::from(wc[8 * ky + 2]),
            );
            acc[0] += w0 * x(0) + w1 * x(1) + w2 * x(2);
            acc[1] += w0 * x(1) + w1 * x(2) + w2 * x(3);
        }
        acc
    }
}

#[cfg(test)]
mod depthwise_tests {
    extern crate std;
    use super::super::quant::Requant;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Bit for bit the reference kernel: 3×3 stride 1 (the fast path), strides, dilations,
    /// paddings, rectangular kernels, odd widths.
    #[test]
    fn depthwise_equals_reference() {
        /// channels, in_h, in_w, k_h, k_w, stride, pad, dilation
        type Case = (usize, usize, usize, usize, usize, usize, usize, usize);
        let cases: &[Case] = &[
            (3, 6, 5, 3, 3, 1, 1, 1),
            (2, 7, 8, 3, 3, 2, 1, 1),
            (4, 5, 5, 3, 3, 1, 0, 1),
            (2, 9, 7, 3, 3, 1, 2, 2),
            (3, 6, 9, 5, 2, 1, 1, 1),
            (1, 4, 3, 3, 3, 1, 1, 1),
            (3, 9, 9, 3, 3, 2, 1, 1),
            (2, 6, 7, 3, 3, 2, 0, 1),
            (2, 5, 4, 3, 3, 2, 1, 1),
            (2, 8, 10, 3, 3, 2, 1, 2),
        ];
        let cases = if cfg!(miri) { &cases[..2] } else { cases };
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as i8
        };
        for &(ch, in_h, in_w, k_h, k_w, stride, pad, dil) in cases {
            let geom = Conv2d {
                batch: 1,
                in_c: ch,
                out_c: ch,
                groups: ch,
                window: Window2d::uniform(in_h, in_w, k_h, k_w, stride, dil, pad),
                act: Activation::Identity,
            };
            let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
            let p = ConvI8 {
                geom,
                input_zero: 6,
                output_zero: -3,
                lo: -120,
                hi: 127,
            };
            let x: Vec<i8> = (0..ch * in_h * in_w).map(|_| next()).collect();
            let w: Vec<i8> = (0..ch * k_h * k_w).map(|_| next()).collect();
            let bias: Vec<i32> = (0..ch).map(|c| c as i32 * 51 - 80).collect();
            let rq: Vec<Requant> = (0..ch)
                .map(|c| Requant::from_real(0.004 + 0.0007 * c as f64))
                .collect();
            let n = ch * out_h * out_w;
            let mut want = vec![0i8; n];
            conv2d_i8(&p, &x, &w, Some(&bias), &rq, &mut want);
            let packed: Vec<i16> = pack_depthwise_weights(&geom, &w).collect();
            assert_eq!(packed.len(), depthwise_weights_len(&geom));
            let mut scratch = vec![0x1234_i16; depthwise_scratch_len(&geom) / 2];
            let mut got = vec![0i8; n];
            let scales: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
            conv2d_i8_depthwise(
                &p,
                &x,
                &packed,
                Some(&bias),
                &scales,
                &mut scratch,
                &mut got,
            );
            assert_eq!(got, want, "{ch}ch {k_h}x{k_w} s{stride} p{pad} d{dil}");
            // The AVX2 plane kernel (the host's path in builds with AVX2) on channel 0's
            // padded plane, wherever the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            if !cfg!(miri) && std::is_x86_feature_detected!("avx2") && stride <= 2 {
                let row = depthwise_row(&geom);
                let mut padded = vec![6i8; depthwise_scratch_len(&geom)];
                for y in 0..in_h {
                    padded[(pad + y) * row + pad..][..in_w].copy_from_slice(&x[y * in_w..][..in_w]);
                }
                let mut taps = [0i32; 64];
                for (t, &v) in taps.iter_mut().zip(&w[..k_h * k_w]) {
                    *t = i32::from(v);
                }
                let mut plane = vec![0i8; out_h * out_w];
                // SAFETY: the CPU has AVX2 (checked); the plane is laid out as the kernel's.
                unsafe {
                    x86::depthwise_i8_plane(&p, &padded, row, &taps, bias[0], scales[0], &mut plane)
                };
                assert_eq!(
                    plane,
                    want[..out_h * out_w],
                    "avx2: {k_h}x{k_w} s{stride} d{dil}"
                );
            }
            // The same rows in two places: the first `kept` of each channel in a buffer of
            // their own (every split, none to all).
            for kept in 0..=in_h {
                let (head, tail): (Vec<i8>, Vec<i8>) = (
                    x.chunks(in_h * in_w)
                        .flat_map(|plane| plane[..kept * in_w].to_vec())
                        .collect(),
                    x.chunks(in_h * in_w)
                        .flat_map(|plane| plane[kept * in_w..].to_vec())
                        .collect(),
                );
                let mut split = vec![0i8; n];
                conv2d_i8_depthwise_split(
                    &p,
                    &head,
                    &tail,
                    &packed,
                    Some(&bias),
                    &scales,
                    &mut scratch,
                    &mut split,
                );
                assert_eq!(
                    split, want,
                    "{ch}ch {k_h}x{k_w} s{stride}, {kept} rows kept"
                );
            }
        }
    }
}
