//! f32 depthwise 3×3 convolutions (dilation 1, any stride), pixel by pixel: the nine weights
//! in registers, each output its bias plus its nine products in the reference's order (rows,
//! then columns), so the bits are [`conv2d`](super::conv2d)'s reference loop's (padding taps
//! skipped, as there): some 10 instructions per MAC fewer than the weight-stationary
//! reference, whose inner loop loads and stores each output once per tap. On the Cortex-M4F
//! the rows whose border outputs have one column of padding, and the border rows with one
//! input row in the padding, are whole in assembly (`cortex_m/depthwise_f32.rs`: 16
//! instructions per interior output), the Rust here choosing them per channel.

use super::{valid_range, Conv2d};
use crate::activation::clamp;
use crate::{Activation, Window2d};

/// Whether [`depthwise_3x3`] takes a depthwise convolution of this window.
pub(crate) fn applies(w: &Window2d) -> bool {
    w.k_h == 3 && w.k_w == 3 && w.dil_h == 1 && w.dil_w == 1
}

/// One image of a depthwise convolution (`in_c == out_c == groups`) with a window that
/// [`applies`]: `input` and `output` one image each, `weights` 9 per channel.
pub(crate) fn depthwise_3x3(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (ih, iw) = (p.window.in_h, p.window.in_w);
    let rows = Rows {
        kept: &[],
        fresh: &input[..p.in_c * ih * iw],
        held: 0,
        fresh_rows: ih,
        iw,
    };
    with_activation::<false>(p, &rows, weights, bias, output);
}

/// [`depthwise_3x3`] on an input whose rows are in two parts, each `[C][rows][W]`: each
/// channel's first `kept.len() / (in_c · in_w)` rows in `kept`, the rest in `input` (a
/// streamed stage's split window). The same bits as on the joined input.
// The x86-64 and AArch64 builds join the planes for their own depthwise paths (tested there).
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
pub(crate) fn depthwise_3x3_split(
    p: &Conv2d,
    kept: &[f32],
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (ih, iw) = (p.window.in_h, p.window.in_w);
    let held = kept.len() / (p.in_c * iw).max(1);
    let fresh_rows = ih - held;
    let rows = Rows {
        kept: &kept[..p.in_c * held * iw],
        fresh: &input[..p.in_c * fresh_rows * iw],
        held,
        fresh_rows,
        iw,
    };
    with_activation::<true>(p, &rows, weights, bias, output);
}

/// An input's rows, `[C][rows][W]`, in two parts: each channel's first `held` in `kept`, the
/// other `fresh_rows` in `fresh` (nothing kept: a whole input).
struct Rows<'a> {
    kept: &'a [f32],
    fresh: &'a [f32],
    held: usize,
    fresh_rows: usize,
    iw: usize,
}

impl<'a> Rows<'a> {
    /// Channel `c`'s two parts (`c` below the channels both parts hold: checked once by
    /// the caller with [`Rows::holds`], not per channel, where a slice is a call at
    /// opt-level "z").
    #[inline(always)]
    fn channel(&self, c: usize) -> (&'a [f32], &'a [f32]) {
        let (kept, fresh) = (self.held * self.iw, self.fresh_rows * self.iw);
        debug_assert!(self.holds(c + 1));
        // SAFETY: `c · kept + kept ≤ self.kept.len()` and `c · fresh + fresh ≤
        // self.fresh.len()` (the caller's `holds` check).
        unsafe {
            (
                core::slice::from_raw_parts(self.kept.as_ptr().add(c * kept), kept),
                core::slice::from_raw_parts(self.fresh.as_ptr().add(c * fresh), fresh),
            )
        }
    }

    /// Whether both parts hold `channels` channels' rows.
    fn holds(&self, channels: usize) -> bool {
        self.kept.len() >= channels * self.held * self.iw
            && self.fresh.len() >= channels * self.fresh_rows * self.iw
    }

    /// Whether rows `y .. y + 3` lie in one part (adjacent in memory).
    #[inline(always)]
    fn together<const SPLIT: bool>(&self, y: usize) -> bool {
        !SPLIT || y >= self.held || y + 3 <= self.held
    }
}

/// The activation chosen once per call, not per output. `SPLIT`: rows may be kept apart (else
/// `held` is 0 and no row needs the test).
#[inline(always)]
fn with_activation<const SPLIT: bool>(
    p: &Conv2d,
    rows: &Rows,
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    match p.act {
        Activation::Identity => channels::<SPLIT>(p, rows, weights, bias, output, |x| x),
        Activation::Clip { min, max } => {
            channels::<SPLIT>(p, rows, weights, bias, output, |x| clamp(x, min, max))
        }
        act => channels::<SPLIT>(p, rows, weights, bias, output, |x| act.apply(x)),
    }
}

#[inline(always)]
fn channels<const SPLIT: bool>(
    p: &Conv2d,
    src: &Rows,
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    f: impl Fn(f32) -> f32,
) {
    let w = &p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    let (pt, pl) = (w.pad_top as isize, w.pad_left as isize);
    // Outputs whose three rows (columns) are all inside the input.
    let rows = |k| valid_range(oh, ih, w.stride_h, k - pt);
    let cols = |k| valid_range(ow, iw, w.stride_w, k - pl);
    let ((y_lo, _), (_, y_hi)) = (rows(0), rows(2));
    let ((x_lo, _), (_, x_hi)) = (cols(0), cols(2));
    let (x_lo, x_hi) = (x_lo.min(ow), x_hi.max(x_lo.min(ow)));
    // Whole rows in assembly where their border outputs have the one column of padding it
    // takes.
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    let mut row_asm = asm_row(p, x_lo, x_hi);
    // Each channel's weights and output plane taken by pointer below: a slice taken per
    // channel is a call at opt-level "z".
    assert!(weights.len() >= 9 * p.out_c && output.len() >= p.out_c * oh * ow);
    assert!(src.holds(p.out_c));
    for c in 0..p.out_c {
        // SAFETY: channel `c < out_c`'s plane, `oh · ow` from `c · oh · ow`, inside `output`
        // (asserted above), and no other reference to it lives in this iteration.
        let out = unsafe {
            core::slice::from_raw_parts_mut(output.as_mut_ptr().add(c * oh * ow), oh * ow)
        };
        // SAFETY: its nine weights from `9 · c`, inside `weights` (asserted above).
        let k: &[f32; 9] = unsafe { &*weights.as_ptr().add(9 * c).cast::<[f32; 9]>() };
        let b = bias.map_or(0.0, |b| b[c]);
        // Rows `y .. y + n` of the channel, which lie in one part.
        let (kept, fresh) = src.channel(c);
        let (held, iw) = (src.held, src.iw);
        let span = |y: usize, n: usize| {
            if SPLIT && y < held {
                &kept[y * iw..][..n * iw]
            } else {
                &fresh[(if SPLIT { y - held } else { y }) * iw..][..n * iw]
            }
        };
        let plane = |y: usize| span(y, 1);
        // The rows done in assembly below (skipped by the loop after it).
        #[allow(unused_mut)]
        let mut done = (0, 0);
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        let (kept_at, fresh_at) = (kept.as_ptr(), fresh.as_ptr());
        // Input row `y` (< ih): in `kept` below `held`, else in `fresh`.
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        macro_rules! at {
            ($y:expr) => {{
                let y = $y;
                if SPLIT && y < held {
                    kept_at.wrapping_add(y * iw)
                } else {
                    fresh_at.wrapping_add((if SPLIT { y - held } else { y }) * iw)
                }
            }};
        }
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        if let Some((_, _, shape)) = &mut row_asm {
            // The channel's weights, bias and clamp bounds.
            // Element by element: `copy_from_slice` is a `memcpy` call at opt-level "z".
            let q = &mut shape.params;
            (q[0], q[1], q[2], q[3], q[4]) = (k[0], k[1], k[2], k[3], k[4]);
            (q[5], q[6], q[7], q[8], q[9]) = (k[5], k[6], k[7], k[8], b);
        }
        // The rows whose three input rows are inside the input, in assembly: pointer steps
        // only, no slice taken per row.
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        if let (Some((row_asm, _, shape)), true) = (&mut row_asm, y_lo < y_hi) {
            let mut o = out[y_lo * ow..y_hi * ow].as_mut_ptr();
            let mut oy = y_lo;
            // `while`, not `for`: at opt-level "z" a range's `next` stays a call.
            while oy < y_hi {
                let y0 = oy * w.stride_h - w.pad_top;
                // Output rows from `oy` on whose input rows lie in one part, one step apart:
                // all the rest in `fresh` (or a whole input), those below `held` in `kept`;
                // else one row whose window straddles the parts.
                let n = if !SPLIT || y0 >= held {
                    y_hi - oy
                } else if y0 + 3 <= held {
                    ((held - 3 - y0) / w.stride_h + 1).min(y_hi - oy)
                } else {
                    1
                };
                let top = at!(y0);
                shape.rows = [
                    (at!(y0 + 1) as usize).wrapping_sub(top as usize),
                    (at!(y0 + 2) as usize).wrapping_sub(top as usize),
                ];
                // SAFETY: `asm_row` chose the rows' shape: a left border output reading
                // columns 0 and 1 if `x_lo` is 1, the interior outputs `x_lo .. x_hi`
                // reading columns `ix .. ix + 3` (ix = ox · stride_w − pad_left ≥ 0, ix + 2
                // < iw), a right border output reading the last two columns if `x_hi < ow`:
                // every read inside its three input rows of `iw` columns. Output row `oy + j`
                // (j < n, below `y_hi`: its input rows below `ih`) reads rows `y0 + j ·
                // stride_h + r` (r < 3) at `top` plus `shape.rows` and `j · shape.step`
                // bytes: in one part for all `j` when `n > 1` (as chosen above), each `iw`
                // columns into it (as `span`). One store per output, `n · ow` from `o`,
                // inside `out[y_lo · ow .. y_hi · ow]`.
                unsafe { row_asm(top, o, n, shape) };
                o = o.wrapping_add(n * ow);
                oy += n;
            }
            done = (y_lo, y_hi);
        }
        // The other rows (`while`: not a step per row done above, nor a range's `next`, a
        // call at opt-level "z").
        let mut next = 0;
        while next < oh {
            if next == done.0 && done.1 > done.0 {
                next = done.1;
                continue;
            }
            let oy = next;
            next += 1;
            let row = &mut out[oy * ow..][..ow];
            let y0 = (oy * w.stride_h) as isize - pt;
            // A border row whose window has one input row in the padding, above or below,
            // the other two inside: in assembly too, with the two kernel rows they meet.
            #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
            if let Some((_, two_rows, shape)) = &row_asm {
                let (first, kernel_row) = if y0 == -1 && ih >= 2 {
                    (0, 1)
                } else if y0 >= 0 && y0 as usize + 2 == ih {
                    (y0 as usize, 0)
                } else {
                    (usize::MAX, 0)
                };
                if first != usize::MAX {
                    let mut two = *shape;
                    let (q, o) = (&mut two.params, 3 * kernel_row);
                    (q[0], q[1], q[2]) = (k[o], k[o + 1], k[o + 2]);
                    (q[3], q[4], q[5]) = (k[o + 3], k[o + 4], k[o + 5]);
                    let top = at!(first);
                    two.rows = [(at!(first + 1) as usize).wrapping_sub(top as usize), 0];
                    // SAFETY: as for the rows above (`asm_row`'s shape bounds every column
                    // read inside the input rows), for the two input rows `first` and
                    // `first + 1`, both below `ih`, each `iw` columns at its pointer into
                    // its part; one store per output of `row` (`ow` long).
                    unsafe { two_rows(top, row.as_mut_ptr(), 1, &two) };
                    continue;
                }
            }
            let inside = oy >= y_lo && oy < y_hi;
            if !inside || x_lo >= x_hi {
                for (ox, o) in row.iter_mut().enumerate() {
                    *o = f(border(w, &plane, k, b, y0, (ox * w.stride_w) as isize - pl));
                }
                continue;
            }
            let y0 = y0 as usize;
            // The left and right border columns of a row whose three input rows are inside
            // the input: one column of padding (the usual `pads = 1`) is a six-tap sum.
            let together = src.together::<SPLIT>(y0);
            let (r0, r1, r2) = if together {
                let three = span(y0, 3);
                (&three[..iw], &three[iw..2 * iw], &three[2 * iw..])
            } else {
                (plane(y0), plane(y0 + 1), plane(y0 + 2))
            };
            let edge = |x0: isize| -> f32 {
                let [k0, k1, k2, k3, k4, k5, k6, k7, k8] = *k;
                match clip(x0, iw) {
                    (1, 3) => {
                        let mut acc = b;
                        acc += k1 * r0[0];
                        acc += k2 * r0[1];
                        acc += k4 * r1[0];
                        acc += k5 * r1[1];
                        acc += k7 * r2[0];
                        acc += k8 * r2[1];
                        acc
                    }
                    (0, 2) => {
                        let i = x0 as usize;
                        let mut acc = b;
                        acc += k0 * r0[i];
                        acc += k1 * r0[i + 1];
                        acc += k3 * r1[i];
                        acc += k4 * r1[i + 1];
                        acc += k6 * r2[i];
                        acc += k7 * r2[i + 1];
                        acc
                    }
                    _ => border(w, &plane, k, b, y0 as isize, x0),
                }
            };
            for (ox, o) in row.iter_mut().enumerate().take(x_lo) {
                *o = f(edge((ox * w.stride_w) as isize - pl));
            }
            // The three input rows from the first interior output's column on.
            let x0 = x_lo * w.stride_w - w.pad_left;
            let last = (x_hi - 1) * w.stride_w - w.pad_left + 2;
            let [k0, k1, k2, k3, k4, k5, k6, k7, k8] = *k;
            let nine = |t: [f32; 9]| {
                let mut acc = b;
                acc += k0 * t[0];
                acc += k1 * t[1];
                acc += k2 * t[2];
                acc += k3 * t[3];
                acc += k4 * t[4];
                acc += k5 * t[5];
                acc += k6 * t[6];
                acc += k7 * t[7];
                acc += k8 * t[8];
                f(acc)
            };
            if together {
                // Adjacent rows (every row of a whole input): one pointer.
                let top = &span(y0, 3)[x0..=2 * iw + last];
                let mut x = top.as_ptr();
                for o in &mut row[x_lo..x_hi] {
                    // SAFETY: output column `ox` (x_lo ≤ ox < x_hi) reads `top[ix − x0 + dy ·
                    // iw + dx]` for dy, dx in 0..3, with ix = ox · stride_w − pad_left and
                    // `ix + 2 ≤ last`: within `top` (its last element is row 2's column
                    // `last`). `x` points at `top[ix − x0]` and only advances by
                    // `wrapping_add`, so past the last column it is never read.
                    let t = unsafe {
                        [
                            *x,
                            *x.add(1),
                            *x.add(2),
                            *x.add(iw),
                            *x.add(iw + 1),
                            *x.add(iw + 2),
                            *x.add(2 * iw),
                            *x.add(2 * iw + 1),
                            *x.add(2 * iw + 2),
                        ]
                    };
                    *o = nine(t);
                    x = x.wrapping_add(w.stride_w);
                }
            } else {
                // Rows that straddle a split input's two parts: three pointers.
                let (t0, t1, t2) = (&r0[x0..=last], &r1[x0..=last], &r2[x0..=last]);
                let (mut a, mut m, mut z) = (t0.as_ptr(), t1.as_ptr(), t2.as_ptr());
                for o in &mut row[x_lo..x_hi] {
                    // SAFETY: output column `ox` (x_lo ≤ ox < x_hi) reads columns `ix .. ix
                    // + 3` of each row, ix = ox · stride_w − pad_left, `ix + 2 ≤ last`:
                    // within `t0`, `t1` and `t2` (columns `x0 ..= last`), which `a`, `m` and
                    // `z` point into at `ix`; they only advance by `wrapping_add`, so past
                    // the last column they are never read.
                    let t = unsafe {
                        [
                            *a,
                            *a.add(1),
                            *a.add(2),
                            *m,
                            *m.add(1),
                            *m.add(2),
                            *z,
                            *z.add(1),
                            *z.add(2),
                        ]
                    };
                    *o = nine(t);
                    a = a.wrapping_add(w.stride_w);
                    m = m.wrapping_add(w.stride_w);
                    z = z.wrapping_add(w.stride_w);
                }
            }
            for (ox, o) in row.iter_mut().enumerate().skip(x_hi) {
                *o = f(edge((ox * w.stride_w) as isize - pl));
            }
        }
    }
}

/// The Cortex-M4F rows in assembly for `p`'s stride and activation (no activation or a
/// clamp), three input rows and two (a border row's window), and their shape (the clamp's bounds, the output row's border outputs, the step
/// between output rows; the channel's numbers and the rows' offsets to be filled in), if each
/// row's outputs before `x_lo` and from `x_hi` (those whose window reaches outside the input)
/// are at most one on each side, with one column of padding: the six-tap outputs the
/// assembly computes.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
fn asm_row(
    p: &Conv2d,
    x_lo: usize,
    x_hi: usize,
) -> Option<(
    super::cortex_m::Dw3x3Row,
    super::cortex_m::Dw3x3Row,
    super::cortex_m::Dw3x3Rows,
)> {
    use super::cortex_m::*;
    let w = &p.window;
    let [none, low, clip_row]: [[Dw3x3Row; 2]; 3] = match w.stride_w {
        1 => [
            [dw3x3_s1, dw3x3_s1_2rows],
            [dw3x3_s1_low, dw3x3_s1_2rows_low],
            [dw3x3_s1_clip, dw3x3_s1_2rows_clip],
        ],
        2 => [
            [dw3x3_s2, dw3x3_s2_2rows],
            [dw3x3_s2_low, dw3x3_s2_2rows_low],
            [dw3x3_s2_clip, dw3x3_s2_2rows_clip],
        ],
        _ => return None,
    };
    let left = match x_lo {
        0 => 0,
        1 if clip(-(w.pad_left as isize), w.in_w) == (1, 3) => DW_LEFT,
        _ => return None,
    };
    let right = if x_hi == w.out_w {
        0
    } else if x_hi + 1 == w.out_w
        && clip((x_hi * w.stride_w) as isize - w.pad_left as isize, w.in_w) == (0, 2)
    {
        DW_RIGHT
    } else {
        return None;
    };
    if x_hi == x_lo && left | right == 0 {
        return None;
    }
    let (row, [lo, hi]) = match p.act {
        Activation::Identity => (none, [0.0; 2]),
        Activation::Clip { min, max } if max == f32::INFINITY => (low, [min, max]),
        Activation::Clip { min, max } => (clip_row, [min, max]),
        _ => return None,
    };
    let mut params = [0.0; 12];
    params[10] = lo;
    params[11] = hi;
    let shape = Dw3x3Rows {
        params,
        interior: x_hi - x_lo,
        edges: left | right,
        rows: [0; 2],
        step: w.stride_h * w.in_w * core::mem::size_of::<f32>(),
    };
    Some((row[0], row[1], shape))
}

/// The taps `lo..hi` of three from `at` that fall inside `0..len`.
#[inline(always)]
fn clip(at: isize, len: usize) -> (usize, usize) {
    let lo = (-at).clamp(0, 3) as usize;
    let hi = (len as isize - at).clamp(0, 3) as usize;
    (lo, hi.max(lo))
}

/// An output whose window reaches into the padding: its bias plus the products of the taps
/// inside the input, in order (the taps' rows and columns clipped once, not tested each).
#[inline(always)]
fn border<'a>(
    w: &Window2d,
    plane: &impl Fn(usize) -> &'a [f32],
    k: &[f32; 9],
    b: f32,
    y0: isize,
    x0: isize,
) -> f32 {
    let ((ky0, ky1), (kx0, kx1)) = (clip(y0, w.in_h), clip(x0, w.in_w));
    let mut acc = b;
    for ky in ky0..ky1 {
        let row = plane((y0 + ky as isize) as usize);
        for kx in kx0..kx1 {
            acc += k[ky * 3 + kx] * row[(x0 + kx as isize) as usize];
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// Against the reference loop, bit for bit: strides 1 to 3, every padding, inputs
    /// narrower than the window (no interior), bands of one row, a clip and a leaky ReLU.
    #[test]
    fn equals_the_reference_bit_for_bit() {
        let mut next = crate::xorshift(0xd3_f32);
        let cases = if cfg!(miri) { 8 } else { 400 };
        for case in 0..cases {
            let (ih, iw) = (1 + next(9), 1 + next(12));
            let (sh, sw) = (1 + next(3), 1 + next(3));
            let pads = [next(3), next(3), next(3), next(3)];
            if ih + pads[0] + pads[2] < 3 || iw + pads[1] + pads[3] < 3 {
                continue;
            }
            let c = 1 + next(4);
            let act = match case % 3 {
                0 => Activation::Identity,
                1 => Activation::Clip {
                    min: -0.5,
                    max: 0.75,
                },
                _ => Activation::LeakyRelu { alpha: 0.1 },
            };
            let p = Conv2d {
                batch: 1,
                in_c: c,
                out_c: c,
                groups: c,
                window: window((ih, iw), (3, 3), (sh, sw), (1, 1), pads),
                act,
            };
            let mut value = || (next(2001) as f32 - 1000.0) * 1.1e-3;
            let x: Vec<f32> = (0..c * ih * iw).map(|_| value()).collect();
            let k: Vec<f32> = (0..c * 9).map(|_| value()).collect();
            let b: Vec<f32> = (0..c).map(|_| value()).collect();
            let n = c * p.window.out_h * p.window.out_w;
            let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            depthwise_3x3(&p, &x, &k, Some(&b), &mut got);
            super::super::reference_image(&p, &x, &k, Some(&b), &mut want);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}: {:?}", p.window);
            // The input's rows in two parts (a streamed stage's split window).
            let held = next(ih + 1);
            let (mut kept, mut fresh) = (Vec::new(), Vec::new());
            for plane in x.chunks_exact(ih * iw) {
                kept.extend_from_slice(&plane[..held * iw]);
                fresh.extend_from_slice(&plane[held * iw..]);
            }
            let mut split = vec![f32::NAN; n];
            depthwise_3x3_split(&p, &kept, &fresh, &k, Some(&b), &mut split);
            assert_eq!(bits(&split), bits(&want), "case {case}, {held} rows kept");
        }
    }
}
