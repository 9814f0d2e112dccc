//! Max and average pooling over the spatial axes of a CHW tensor.

use super::{valid_range, Activation, Window2d};

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PoolKind {
    /// Maximum over the taps inside the input (padding is ignored).
    Max,
    /// Mean over the window.
    Average {
        /// Divide by the taps inside the explicitly padded input (ONNX `count_include_pad=1`)
        /// instead of the taps inside the input.
        count_include_pad: bool,
    },
}

/// Pooling geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool2d {
    /// Images (the N of NCHW).
    pub batch: usize,
    /// Channels.
    pub c: usize,
    /// Spatial geometry; `pad_bottom` and `pad_right` count for `count_include_pad`.
    pub window: Window2d,
    /// Max or average.
    pub kind: PoolKind,
    /// Fused activation.
    pub act: Activation,
}

/// Taps of a window starting at `start` (in padded coordinates) that fall before `limit`.
#[inline]
fn taps_below(start: usize, k: usize, dil: usize, limit: usize) -> usize {
    (0..k).filter(|t| start + t * dil < limit).count()
}

/// Each output of `outs` takes the tap of `taps` beside it: the larger (or a NaN: written
/// unconditionally, so the loop vectorises as compare-and-blend), or the sum.
#[inline(always)]
fn take(kind: PoolKind, outs: &mut [f32], taps: &[f32]) {
    match kind {
        PoolKind::Max => {
            for (m, &x) in outs.iter_mut().zip(taps) {
                *m = if x > *m || x.is_nan() { x } else { *m };
            }
        }
        PoolKind::Average { .. } => {
            for (s, &x) in outs.iter_mut().zip(taps) {
                *s += x;
            }
        }
    }
}

/// Every output of the row `out` takes its taps in input row `row`, in order of `kx`.
#[inline(always)]
fn take_row(p: &Pool2d, row: &[f32], out: &mut [f32]) {
    let w = &p.window;
    // One output whose window lies inside the row (a global pooling's): its taps in order,
    // without a range and slices per tap (calls at opt-level "z"), a `while` loop (a range's
    // `next` is one there too).
    if let ([o], 0, 1, true) = (&mut *out, w.pad_left, w.dil_w, w.k_w <= row.len()) {
        let taps = &row[..w.k_w];
        let mut i = 0;
        while i < taps.len() {
            let x = taps[i];
            *o = match p.kind {
                PoolKind::Max if x > *o || x.is_nan() => x,
                PoolKind::Max => *o,
                PoolKind::Average { .. } => *o + x,
            };
            i += 1;
        }
        return;
    }
    for kx in 0..w.k_w {
        // Outputs whose tap kx lies inside the row: ox0..ox1, at column ox·stride + off.
        let off = (kx * w.dil_w) as isize - w.pad_left as isize;
        let (ox0, ox1) = valid_range(out.len(), row.len(), w.stride_w, off);
        if ox0 >= ox1 {
            continue;
        }
        let first = (ox0 as isize * w.stride_w as isize + off) as usize;
        let outs = &mut out[ox0..ox1];
        if w.stride_w == 1 {
            take(p.kind, outs, &row[first..][..ox1 - ox0]);
        } else {
            let taps = row[first..].iter().step_by(w.stride_w);
            for (o, &x) in outs.iter_mut().zip(taps) {
                take(p.kind, core::slice::from_mut(o), &[x]);
            }
        }
    }
}

/// True for a max pooling whose windows tile the rows: kernel height = stride, no padding
/// or dilation along them, one image. Each input row then belongs to one output row, so a
/// streamed stage can pool rows as they come ([`max_pool_row_into`]).
pub fn pools_rows_apart(p: &Pool2d) -> bool {
    let w = &p.window;
    p.kind == PoolKind::Max
        && p.batch == 1
        && w.k_h == w.stride_h
        && w.k_h > 1
        && w.dil_h == 1
        && w.pad_top == 0
        && w.pad_bottom == 0
        && w.out_h * w.k_h <= w.in_h
}

/// One input row of a max pooling whose windows tile the rows ([`pools_rows_apart`]),
/// taken into the output row whose windows hold it, as their tap row `ky`: `input` is that
/// row of each of the `c` channels (`in_w` values each), `output` the output row (`out_w`
/// values a channel). Tap row 0 starts the row; the last applies the activation. The row
/// sees its taps in [`pool2d`]'s order, so after its `k_h` rows it holds the same bits.
pub fn max_pool_row_into(p: &Pool2d, ky: usize, input: &[f32], output: &mut [f32]) {
    let w = &p.window;
    let (iw, ow) = (w.in_w, w.out_w);
    assert!(pools_rows_apart(p) && ky < w.k_h);
    assert!(input.len() >= p.c * iw && output.len() >= p.c * ow);
    for c in 0..p.c {
        let out = &mut output[c * ow..][..ow];
        if ky == 0 {
            out.fill(f32::NEG_INFINITY);
        }
        take_row(p, &input[c * iw..][..iw], out);
        if ky + 1 == w.k_h {
            p.act.apply_slice(out);
        }
    }
}

/// Pooling (see [`Pool2d`]) a whole output row at a time: for each tap `(ky, kx)` of the
/// window, in order, every output of the row whose window holds that tap inside the input
/// takes it — a contiguous (or strided) loop over the row that vectorises, where walking each
/// window per output does not (3×3 stride-1 max-pools were most of inception's time outside
/// its convolutions). Every output still sees its taps in `(ky, kx)` order: the maximum keeps
/// the same one of equal values (±0) and a NaN wins as before; the sums add in the same order.
pub fn pool2d(p: &Pool2d, input: &[f32], output: &mut [f32]) {
    let w = &p.window;
    let (ih, iw, oh, ow) = (w.in_h, w.in_w, w.out_h, w.out_w);
    assert!(input.len() >= p.batch * p.c * ih * iw && output.len() >= p.batch * p.c * oh * ow);
    for c in 0..p.batch * p.c {
        let src = &input[c * ih * iw..(c + 1) * ih * iw];
        for oy in 0..oh {
            let y0 = (oy * w.stride_h) as isize - w.pad_top as isize;
            let (ky0, ky1) = valid_range(w.k_h, ih, w.dil_h, y0);
            let out = &mut output[(c * oh + oy) * ow..][..ow];
            out.fill(match p.kind {
                PoolKind::Max => f32::NEG_INFINITY,
                PoolKind::Average { .. } => 0.0,
            });
            for ky in ky0..ky1 {
                let row = &src[(y0 + (ky * w.dil_h) as isize) as usize * iw..][..iw];
                take_row(p, row, out);
            }
            if let PoolKind::Average { count_include_pad } = p.kind {
                for (ox, s) in out.iter_mut().enumerate() {
                    let count = if count_include_pad {
                        taps_below(
                            oy * w.stride_h,
                            w.k_h,
                            w.dil_h,
                            w.pad_top + ih + w.pad_bottom,
                        ) * taps_below(
                            ox * w.stride_w,
                            w.k_w,
                            w.dil_w,
                            w.pad_left + iw + w.pad_right,
                        )
                    } else {
                        let x0 = (ox * w.stride_w) as isize - w.pad_left as isize;
                        let (kx0, kx1) = valid_range(w.k_w, iw, w.dil_w, x0);
                        (ky1 - ky0) * (kx1 - kx0)
                    };
                    *s /= count as f32;
                }
            }
            p.act.apply_slice(out);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// Rows pooled as they come give [`pool2d`]'s bits: random 2×2 and 3×3 (stride = kernel
    /// height) max poolings, a fused clip, NaNs and signed zeros among the values.
    #[test]
    fn max_pool_rows_into_equals_the_whole_pooling() {
        use std::vec;
        let mut next = crate::xorshift(0x600d_5eed);
        for case in 0..200 {
            let (k_h, k_w) = (2 + next(2), 1 + next(3));
            let (c, out_h) = (1 + next(4), 1 + next(4));
            let in_h = out_h * k_h + next(2);
            let in_w = k_w + next(9);
            let stride_w = 1 + next(3);
            let window = crate::window(
                (in_h, in_w),
                (k_h, k_w),
                (k_h, stride_w),
                (1, 1),
                [0, 0, 0, 0],
            );
            assert_eq!(window.out_h, out_h);
            let p = Pool2d {
                batch: 1,
                c,
                window,
                kind: PoolKind::Max,
                act: if case % 2 == 0 {
                    Activation::Identity
                } else {
                    Activation::Clip {
                        min: -0.5,
                        max: 0.5,
                    }
                },
            };
            assert!(pools_rows_apart(&p));
            let x: std::vec::Vec<f32> = (0..c * in_h * in_w)
                .map(|_| match next(20) {
                    0 => f32::NAN,
                    1 => 0.0,
                    2 => -0.0,
                    v => v as f32 / 10.0 - 1.0,
                })
                .collect();
            let ow = window.out_w;
            let mut want = vec![0.0f32; c * out_h * ow];
            pool2d(&p, &x, &mut want);
            for oy in 0..out_h {
                let mut acc = vec![7.0f32; c * ow];
                for ky in 0..k_h {
                    let row: std::vec::Vec<f32> = (0..c)
                        .flat_map(|ch| {
                            let y = oy * k_h + ky;
                            x[(ch * in_h + y) * in_w..][..in_w].iter().copied()
                        })
                        .collect();
                    max_pool_row_into(&p, ky, &row, &mut acc);
                }
                for ch in 0..c {
                    let got = &acc[ch * ow..][..ow];
                    let w = &want[(ch * out_h + oy) * ow..][..ow];
                    let bits =
                        |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
                    assert_eq!(bits(got), bits(w), "case {case} channel {ch} row {oy}");
                }
            }
        }
    }

    /// The window-by-window loops [`pool2d`] replaced: the oracle of its row-wise loops.
    fn pool2d_windows(p: &Pool2d, input: &[f32], output: &mut [f32]) {
        let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
        assert!(input.len() >= p.batch * p.c * ih * iw && output.len() >= p.batch * p.c * oh * ow);
        for c in 0..p.batch * p.c {
            let src = &input[c * ih * iw..(c + 1) * ih * iw];
            for oy in 0..oh {
                let y0 = (oy * p.window.stride_h) as isize - p.window.pad_top as isize;
                let (ky0, ky1) = valid_range(p.window.k_h, ih, p.window.dil_h, y0);
                for ox in 0..ow {
                    let x0 = (ox * p.window.stride_w) as isize - p.window.pad_left as isize;
                    let (kx0, kx1) = valid_range(p.window.k_w, iw, p.window.dil_w, x0);
                    let v = match p.kind {
                        PoolKind::Max => {
                            let mut m = f32::NEG_INFINITY;
                            for ky in ky0..ky1 {
                                let row = (y0 + (ky * p.window.dil_h) as isize) as usize * iw;
                                for kx in kx0..kx1 {
                                    let x =
                                        src[row + (x0 + (kx * p.window.dil_w) as isize) as usize];
                                    if x > m || x.is_nan() {
                                        m = x;
                                    }
                                }
                            }
                            m
                        }
                        PoolKind::Average { count_include_pad } => {
                            let mut s = 0.0;
                            for ky in ky0..ky1 {
                                let row = (y0 + (ky * p.window.dil_h) as isize) as usize * iw;
                                for kx in kx0..kx1 {
                                    s += src[row + (x0 + (kx * p.window.dil_w) as isize) as usize];
                                }
                            }
                            let count = if count_include_pad {
                                taps_below(
                                    oy * p.window.stride_h,
                                    p.window.k_h,
                                    p.window.dil_h,
                                    p.window.pad_top + ih + p.window.pad_bottom,
                                ) * taps_below(
                                    ox * p.window.stride_w,
                                    p.window.k_w,
                                    p.window.dil_w,
                                    p.window.pad_left + iw + p.window.pad_right,
                                )
                            } else {
                                (ky1 - ky0) * (kx1 - kx0)
                            };
                            s / count as f32
                        }
                    };
                    output[(c * oh + oy) * ow + ox] = p.act.apply(v);
                }
            }
        }
    }

    /// The row-wise loops give the window-by-window results bit for bit (signed zeros and
    /// NaNs included): random geometries with strides, dilations, uneven padding, max and
    /// both averages, a fused clamp, two images of three channels.
    #[test]
    fn rows_equal_windows() {
        let mut next = super::super::xorshift(0x1234_5677);
        let cases = if cfg!(miri) { 10 } else { 400 };
        for case in 0..cases {
            let (k_h, k_w) = (1 + next(3), 1 + next(3));
            let (dil_h, dil_w) = (1 + next(2), 1 + next(2));
            let (stride_h, stride_w) = (1 + next(3), 1 + next(3));
            let (in_h, in_w) = (k_h * dil_h + next(6), k_w * dil_w + next(9));
            let pads = [next(k_h), next(k_w), next(k_h), next(k_w)];
            let p = Pool2d {
                batch: 2,
                c: 3,
                window: super::super::window(
                    (in_h, in_w),
                    (k_h, k_w),
                    (stride_h, stride_w),
                    (dil_h, dil_w),
                    pads,
                ),
                kind: [
                    PoolKind::Max,
                    PoolKind::Average {
                        count_include_pad: false,
                    },
                    PoolKind::Average {
                        count_include_pad: true,
                    },
                ][case % 3],
                act: if case % 4 == 0 {
                    Activation::Clip {
                        min: -0.5,
                        max: 0.5,
                    }
                } else {
                    Activation::Identity
                },
            };
            // Few distinct values (ties), signed zeros and a NaN now and then.
            let input: std::vec::Vec<f32> = (0..2 * 3 * in_h * in_w)
                .map(|_| match next(20) {
                    0 => 0.0,
                    1 => -0.0,
                    2 if case % 5 == 0 => f32::NAN,
                    v => (v as f32 - 10.0) * 0.25,
                })
                .collect();
            let n = 2 * 3 * p.window.out_h * p.window.out_w;
            let (mut got, mut want) = (std::vec![1.0f32; n], std::vec![2.0f32; n]);
            pool2d(&p, &input, &mut got);
            pool2d_windows(&p, &input, &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
                assert!(same, "case {case} {p:?} at {i}: {g} vs {w}");
            }
        }
    }

    fn geo(kind: PoolKind, pad: usize, stride: usize, out: usize) -> Pool2d {
        Pool2d {
            batch: 1,
            c: 1,
            window: Window2d {
                in_h: 3,
                in_w: 3,
                out_h: out,
                out_w: out,
                k_h: 2,
                k_w: 2,
                stride_h: stride,
                stride_w: stride,
                dil_h: 1,
                dil_w: 1,
                pad_top: pad,
                pad_left: pad,
                pad_bottom: pad,
                pad_right: pad,
            },
            kind,
            act: Activation::Identity,
        }
    }

    /// A global average summed band by band (rows 1, 2, 3 … at a time) is bit for bit the
    /// pooling of the whole plane, f32 and int8.
    #[test]
    fn row_sums_give_the_global_average() {
        let (c, h, w) = (3, 7, 5);
        let x: [f32; 105] = core::array::from_fn(|i| ((i * 37 % 101) as f32 - 50.0) / 7.3);
        let xq: [i8; 105] = core::array::from_fn(|i| (i * 53 % 251) as i8);
        let mut p = geo(
            PoolKind::Average {
                count_include_pad: false,
            },
            0,
            1,
            1,
        );
        p.c = c;
        p.window = Window2d::uniform(h, w, h, w, 1, 1, 0);
        p.act = Activation::Clip { min: 0.0, max: 6.0 };
        let mut want = [0.0f32; 3];
        pool2d(&p, &x, &mut want);
        let q = AvgPoolI8 {
            in_zero: -3,
            out_zero: 5,
            lo: -128,
            hi: 127,
        };
        let r = super::super::quant::Requant::from_f32(0.7 / (h * w) as f32);
        let mut want_q = [0i8; 3];
        avg_pool_i8(&p, &q, &[((h * w) as u32, r)], &xq, &mut want_q);
        for band in 1..=h {
            let (mut sums, mut sums_q) = ([0.0f32; 3], [0i32; 3]);
            let mut y = 0;
            while y < h {
                let rows = band.min(h - y);
                // The band as a stage holds it: [C][rows][W].
                let mut b = [0.0f32; 105];
                let mut bq = [0i8; 105];
                for ch in 0..c {
                    for k in 0..rows * w {
                        b[ch * rows * w + k] = x[ch * h * w + y * w + k];
                        bq[ch * rows * w + k] = xq[ch * h * w + y * w + k];
                    }
                }
                row_sums(y == 0, &b, rows * w, &mut sums);
                row_sums_i8(y == 0, &bq, rows * w, &mut sums_q);
                y += rows;
            }
            let mut got = [0.0f32; 3];
            average_of_sums(h * w, p.act, &sums, &mut got);
            let mut got_q = [0i8; 3];
            average_of_sums_i8(h * w, &q, r, &sums_q, &mut got_q);
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "band {band}");
            assert_eq!(got_q, want_q, "band {band}");
        }
    }

    #[test]
    fn max_and_both_averages() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut out = [0.0; 4];
        pool2d(&geo(PoolKind::Max, 0, 1, 2), &x, &mut out);
        assert_eq!(out, [5.0, 6.0, 8.0, 9.0]);
        // pad 1, stride 2: windows at (-1,-1), (-1,1), (1,-1), (1,1)
        pool2d(
            &geo(
                PoolKind::Average {
                    count_include_pad: false,
                },
                1,
                2,
                2,
            ),
            &x,
            &mut out,
        );
        assert_eq!(out, [1.0, 2.5, 5.5, 7.0]);
        pool2d(
            &geo(
                PoolKind::Average {
                    count_include_pad: true,
                },
                1,
                2,
                2,
            ),
            &x,
            &mut out,
        );
        assert_eq!(out, [0.25, 1.25, 2.75, 7.0]);
    }
}

/// Int8 max pooling (see [`Pool2d`]; its `kind` and `act` are ignored). Input and output share
/// one scale and zero point, as in a quantized graph, so the maximum of the int8 values is the
/// quantized maximum; `lo..=hi` clamps it (a fused ReLU raises `lo` to the zero point).
pub fn max_pool_i8(p: &Pool2d, lo: i8, hi: i8, input: &[i8], output: &mut [i8]) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    assert!(input.len() >= p.batch * p.c * ih * iw && output.len() >= p.batch * p.c * oh * ow);
    let w = &p.window;
    let halving = (w.k_h, w.k_w, w.stride_h, w.stride_w, w.dil_h, w.dil_w) == (2, 2, 2, 2, 1, 1)
        && w.pad_top + w.pad_left == 0
        && 2 * oh <= ih
        && 2 * ow <= iw;
    if halving {
        // 2×2 windows at stride 2 inside the input (the usual downsampling): each output the
        // largest of two bytes of two rows, a row of outputs at a time (the loop below would
        // work out each window's valid range).
        for c in 0..p.batch * p.c {
            let src = &input[c * ih * iw..][..ih * iw];
            for (oy, out) in output[c * oh * ow..][..oh * ow]
                .chunks_exact_mut(ow)
                .enumerate()
            {
                let r0 = &src[2 * oy * iw..][..2 * ow];
                let r1 = &src[(2 * oy + 1) * iw..][..2 * ow];
                for ((o, a), b) in out
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    *o = a[0].max(a[1]).max(b[0].max(b[1])).clamp(lo, hi);
                }
            }
        }
        return;
    }
    max_pool_i8_windows(p, lo, hi, input, output);
}

/// [`max_pool_i8`] window by window, each tap's range checked: any geometry.
fn max_pool_i8_windows(p: &Pool2d, lo: i8, hi: i8, input: &[i8], output: &mut [i8]) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    for c in 0..p.batch * p.c {
        let src = &input[c * ih * iw..(c + 1) * ih * iw];
        for oy in 0..oh {
            let y0 = (oy * p.window.stride_h) as isize - p.window.pad_top as isize;
            let (ky0, ky1) = valid_range(p.window.k_h, ih, p.window.dil_h, y0);
            for ox in 0..ow {
                let x0 = (ox * p.window.stride_w) as isize - p.window.pad_left as isize;
                let (kx0, kx1) = valid_range(p.window.k_w, iw, p.window.dil_w, x0);
                let mut m = i8::MIN;
                for ky in ky0..ky1 {
                    let row = (y0 + (ky * p.window.dil_h) as isize) as usize * iw;
                    for kx in kx0..kx1 {
                        m = m.max(src[row + (x0 + (kx * p.window.dil_w) as isize) as usize]);
                    }
                }
                output[(c * oh + oy) * ow + ox] = m.clamp(lo, hi);
            }
        }
    }
}

/// The divisor of average-pooling window `(oy, ox)`: its taps inside the input, or inside
/// the padded input when padding counts (what [`avg_pool_i8`] needs a multiplier for).
pub fn window_taps(p: &Pool2d, oy: usize, ox: usize) -> usize {
    if matches!(
        p.kind,
        PoolKind::Average {
            count_include_pad: true
        }
    ) {
        taps_below(
            oy * p.window.stride_h,
            p.window.k_h,
            p.window.dil_h,
            p.window.pad_top + p.window.in_h + p.window.pad_bottom,
        ) * taps_below(
            ox * p.window.stride_w,
            p.window.k_w,
            p.window.dil_w,
            p.window.pad_left + p.window.in_w + p.window.pad_right,
        )
    } else {
        let y0 = (oy * p.window.stride_h) as isize - p.window.pad_top as isize;
        let x0 = (ox * p.window.stride_w) as isize - p.window.pad_left as isize;
        let (ky0, ky1) = valid_range(p.window.k_h, p.window.in_h, p.window.dil_h, y0);
        let (kx0, kx1) = valid_range(p.window.k_w, p.window.in_w, p.window.dil_w, x0);
        (ky1 - ky0) * (kx1 - kx0)
    }
}

/// Quantisation of an int8 average pooling (see [`avg_pool_i8`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolI8 {
    /// Input zero point.
    pub in_zero: i32,
    /// Output zero point.
    pub out_zero: i32,
    /// Smallest output (a fused ReLU raises it to the zero point).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

/// Int8 average pooling (see [`Pool2d`]; its `kind` says whether padding counts, its `act` is
/// ignored): `out = requant_n(Σ (x − in_zero)) + out_zero` over the `n` taps of each window,
/// with `requant_n` = `in_scale / (out_scale · n)`. `by_count` lists `(n, requant_n)` for every
/// window size that occurs (the compiler computes them; a handful at the borders).
///
/// `R` is ONNX's [`Requant`](super::quant::Requant); TFLite's pooling sums the raw bytes
/// (both zero points 0 here) and divides by the count, [`DivideRounded`](super::quant::DivideRounded).
pub fn avg_pool_i8<R: super::quant::Rescale>(
    p: &Pool2d,
    q: &AvgPoolI8,
    by_count: &[(u32, R)],
    input: &[i8],
    output: &mut [i8],
) {
    let (ih, iw, oh, ow) = (p.window.in_h, p.window.in_w, p.window.out_h, p.window.out_w);
    assert!(input.len() >= p.batch * p.c * ih * iw && output.len() >= p.batch * p.c * oh * ow);
    let w = &p.window;
    if (oh, ow, w.k_h, w.k_w, w.dil_h, w.dil_w) == (1, 1, ih, iw, 1, 1)
        && (w.pad_top, w.pad_left, w.pad_bottom, w.pad_right) == (0, 0, 0, 0)
    {
        // A global average (the window is the plane): each channel's plane is one run of
        // bytes, summed as one.
        let n = ih * iw;
        let r = by_count
            .iter()
            .find(|(count, _)| *count as usize == n)
            .expect("a multiplier for the plane")
            .1;
        for (src, out) in input
            .chunks_exact(n)
            .zip(output.iter_mut())
            .take(p.batch * p.c)
        {
            let acc = sum_i8(src) - n as i32 * q.in_zero;
            *out = r.requantize(acc, q.out_zero, q.lo, q.hi);
        }
        return;
    }
    for c in 0..p.batch * p.c {
        let src = &input[c * ih * iw..(c + 1) * ih * iw];
        for oy in 0..oh {
            let y0 = (oy * p.window.stride_h) as isize - p.window.pad_top as isize;
            let (ky0, ky1) = valid_range(p.window.k_h, ih, p.window.dil_h, y0);
            for ox in 0..ow {
                let x0 = (ox * p.window.stride_w) as isize - p.window.pad_left as isize;
                let (kx0, kx1) = valid_range(p.window.k_w, iw, p.window.dil_w, x0);
                let mut acc = 0i32;
                for ky in ky0..ky1 {
                    let row = (y0 + (ky * p.window.dil_h) as isize) as usize * iw;
                    for kx in kx0..kx1 {
                        acc += i32::from(src[row + (x0 + (kx * p.window.dil_w) as isize) as usize])
                            - q.in_zero;
                    }
                }
                let count = window_taps(p, oy, ox);
                let r = by_count
                    .iter()
                    .find(|(n, _)| *n as usize == count)
                    .expect("a multiplier for every window size")
                    .1;
                output[(c * oh + oy) * ow + ox] = r.requantize(acc, q.out_zero, q.lo, q.hi);
            }
        }
    }
}

/// A global average pooling fed a band of rows at a time (the reducer at the end of a
/// streamed stage), part 1: per channel `c`, `sums[c]` becomes the sum of the band's `len`
/// values `band[c·len..][..len]` added to it (started from 0 when `first`) in order: the
/// order [`pool2d`] sums a plane in (row by row, left to right), so the average of the
/// last sums is bit for bit [`pool2d`]'s.
pub fn row_sums(first: bool, band: &[f32], len: usize, sums: &mut [f32]) {
    assert!(band.len() >= sums.len() * len);
    for (c, s) in sums.iter_mut().enumerate() {
        let mut acc = if first { 0.0 } else { *s };
        for &x in &band[c * len..][..len] {
            acc += x;
        }
        *s = acc;
    }
}

/// Part 2 of [`row_sums`]: each channel's average over its `count` values, `act` applied (as
/// [`pool2d`] divides and applies it).
pub fn average_of_sums(count: usize, act: Activation, sums: &[f32], out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(sums) {
        *o = act.apply(s / count as f32);
    }
}

/// [`row_sums`] of int8 rows: exact `i32` sums (fewer than 2^23 values a call).
pub fn row_sums_i8(first: bool, band: &[i8], len: usize, sums: &mut [i32]) {
    assert!(band.len() >= sums.len() * len);
    #[cfg(microarena_dsp)]
    if len >= 4 && !sums.is_empty() {
        // SAFETY: `sums.len()` runs of `len` ≥ 4 bytes lie inside `band` (asserted above).
        unsafe { row_sums_i8_dsp(first, band.as_ptr(), len, sums) };
        return;
    }
    for (c, s) in sums.iter_mut().enumerate() {
        let acc = sum_i8(&band[c * len..][..len]);
        *s = if first { acc } else { s.wrapping_add(acc) };
    }
}

/// [`average_of_sums`] of int8 sums: what [`avg_pool_i8`] gives for a window that is the
/// whole plane of `count` values, requantised by `r` (its multiplier for that count).
pub fn average_of_sums_i8<R: super::quant::Rescale>(
    count: usize,
    q: &AvgPoolI8,
    r: R,
    sums: &[i32],
    out: &mut [i8],
) {
    for (o, &s) in out.iter_mut().zip(sums) {
        *o = r.requantize(s - count as i32 * q.in_zero, q.out_zero, q.lo, q.hi);
    }
}

/// [`row_sums_i8`] on Cortex-M4/M7/M33: every channel's run in one loop (a streamed stage's
/// pooling sums a band of a few rows per channel, where a call per channel cost as much as
/// its bytes): its whole words by `USADA8` as [`sum_i8`], then the word ending at the run's
/// end shifted right past the bytes already summed (`LSR` by 32 leaves none), 128 a byte
/// taken back once. About 5 instructions a word and 12 a channel.
///
/// # Safety
/// `band + [0, sums.len() · len)` is readable; `len` ≥ 4; `sums` is not empty.
#[cfg(microarena_dsp)]
unsafe fn row_sums_i8_dsp(first: bool, band: *const i8, len: usize, sums: &mut [i32]) {
    let (words, rest) = (len / 4, len % 4);
    // The tail word's bytes already in the words (the low ones: earlier addresses).
    let shift = 8 * (4 - rest) as u32;
    // Each summed byte counted `x + 128`; fewer than 2^23 of them (the caller's contract).
    let bias = 128 * len as i32;
    macro_rules! sums_asm {
        ([$($store:literal),*], $($temp:tt)*) => {
            // SAFETY: per channel the words from its start and the word ending at its end,
            // all inside the run (`len` ≥ 4) and so inside `band` (the caller's contract;
            // unaligned LDR is allowed on Armv7E-M); one store per channel into `sums`.
            // DSP-extension instructions; no stack; the flags are clobbered.
            unsafe {
                core::arch::asm!(
                    "1:",
                    "movs {acc}, #0",
                    "mov {q}, {words}",
                    "2:",
                    "ldr {v}, [{p}], #4",
                    "eor {v}, {v}, #0x80808080",
                    "usada8 {acc}, {v}, {zero}, {acc}",
                    "subs {q}, {q}, #1",
                    "bne 2b",
                    "add {p}, {p}, {rest}",
                    "ldr {v}, [{p}, #-4]",
                    "eor {v}, {v}, #0x80808080",
                    "lsr {v}, {v}, {shift}",
                    "usada8 {acc}, {v}, {zero}, {acc}",
                    "sub {acc}, {acc}, {bias}",
                    $($store,)*
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    p = inout(reg) band => _,
                    s = inout(reg) sums.as_mut_ptr() => _,
                    n = inout(reg) sums.len() => _,
                    q = out(reg) _,
                    v = out(reg) _,
                    acc = out(reg) _,
                    $($temp)*
                    zero = in(reg) 0u32,
                    words = in(reg) words,
                    rest = in(reg) rest,
                    shift = in(reg) shift,
                    bias = in(reg) bias,
                    options(nostack),
                )
            }
        };
    }
    if first {
        sums_asm!(["str {acc}, [{s}], #4"],);
    } else {
        sums_asm!(
            ["ldr {t}, [{s}]", "add {acc}, {acc}, {t}", "str {acc}, [{s}], #4"],
            t = out(reg) _,
        );
    }
}

/// `Σ x` of a run of bytes (fewer than 2^23 of them). On Cortex-M4/M7 four bytes per
/// `USADA8` (the sum of four unsigned bytes: each byte's sign bit flipped first, i.e.
/// `x + 128`, and `128` per byte taken back at the end): three instructions per word.
#[inline]
fn sum_i8(x: &[i8]) -> i32 {
    #[cfg(microarena_dsp)]
    {
        let words = x.len() / 4;
        let mut acc: u32 = 0;
        if words > 0 {
            let p = x.as_ptr();
            let end = p.wrapping_add(4 * words);
            // SAFETY: the loop reads the words from `x.as_ptr()` up to `end`, 4·words ≤
            // x.len() bytes (unaligned LDR is allowed on Armv7E-M); DSP-extension
            // instructions; no stack; the flags are clobbered (CMP).
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr {v}, [{p}], #4",
                    "eor {v}, {v}, #0x80808080",
                    "usada8 {acc}, {v}, {zero}, {acc}",
                    "cmp {p}, {end}",
                    "bne 2b",
                    p = inout(reg) p => _,
                    end = in(reg) end,
                    acc = inout(reg) acc,
                    zero = in(reg) 0u32,
                    v = out(reg) _,
                    options(nostack, readonly),
                );
            }
        }
        let head = acc as i32 - 128 * (4 * words) as i32;
        head + x[4 * words..].iter().map(|&v| i32::from(v)).sum::<i32>()
    }
    #[cfg(not(microarena_dsp))]
    {
        x.iter().map(|&v| i32::from(v)).sum()
    }
}

#[cfg(test)]
mod i8_tests {
    use super::*;

    /// Int8 max pooling picks what f32 max pooling picks on the same values.
    #[test]
    fn max_pool_i8_agrees_with_f32() {
        let p = Pool2d {
            batch: 1,
            c: 2,
            window: Window2d {
                in_h: 5,
                in_w: 5,
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
            kind: PoolKind::Max,
            act: Activation::Identity,
        };
        let x: [i8; 50] = core::array::from_fn(|i| ((i * 73 + 19) % 256) as u8 as i8);
        let xf: [f32; 50] = core::array::from_fn(|i| f32::from(x[i]));
        let mut y = [0i8; 18];
        let mut yf = [0.0f32; 18];
        max_pool_i8(&p, -128, 127, &x, &mut y);
        pool2d(&p, &xf, &mut yf);
        assert!(
            y.iter().zip(&yf).all(|(&a, &b)| f32::from(a) == b),
            "{y:?} {yf:?}"
        );
        // A fused ReLU at zero point -5.
        max_pool_i8(&p, -5, 127, &x, &mut y);
        assert!(y
            .iter()
            .zip(&yf)
            .all(|(&a, &b)| f32::from(a) == b.max(-5.0)));
    }

    /// 2×2 windows at stride 2 (the row-pair path) equal the window-by-window loop, on planes
    /// of odd and even sizes (a last row or column no window reads), with and without a clamp.
    #[test]
    fn halving_max_pool_i8_equals_the_window_loop() {
        extern crate std;
        let mut next = crate::xorshift(0x5eed_2222_u32);
        for case in 0..40 {
            let (ih, iw) = (2 + next(9), 2 + next(9));
            let p = Pool2d {
                batch: 1 + case % 2,
                c: 1 + next(3),
                window: Window2d::uniform(ih, iw, 2, 2, 2, 1, 0),
                kind: PoolKind::Max,
                act: Activation::Identity,
            };
            let n = p.batch * p.c;
            let x: std::vec::Vec<i8> = (0..n * ih * iw).map(|_| next(256) as u8 as i8).collect();
            let out = n * p.window.out_h * p.window.out_w;
            let (lo, hi) = if case % 3 == 0 {
                (-3, 100)
            } else {
                (-128, 127)
            };
            let (mut got, mut want) = (std::vec![0i8; out], std::vec![1i8; out]);
            max_pool_i8(&p, lo, hi, &x, &mut got);
            max_pool_i8_windows(&p, lo, hi, &x, &mut want);
            assert_eq!(got, want, "{ih}x{iw}");
        }
    }

    /// A global average (the window is the whole plane) is the plane's sum requantised once.
    #[test]
    fn global_avg_pool_i8_sums_the_plane() {
        use super::super::quant::{requantize, Requant};
        let (h, w, c) = (5, 7, 3);
        let p = Pool2d {
            batch: 1,
            c,
            window: Window2d {
                in_h: h,
                in_w: w,
                out_h: 1,
                out_w: 1,
                k_h: h,
                k_w: w,
                stride_h: 1,
                stride_w: 1,
                dil_h: 1,
                dil_w: 1,
                pad_top: 0,
                pad_left: 0,
                pad_bottom: 0,
                pad_right: 0,
            },
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            act: Activation::Identity,
        };
        let r = Requant::from_real(0.9 / 35.0);
        let q = AvgPoolI8 {
            in_zero: -7,
            out_zero: 3,
            lo: -100,
            hi: 120,
        };
        let x: [i8; 105] = core::array::from_fn(|i| ((i * 89 + 5) % 256) as u8 as i8);
        let mut y = [0i8; 3];
        avg_pool_i8(&p, &q, &[(35, r)], &x, &mut y);
        for ch in 0..c {
            let acc: i32 = x[ch * 35..][..35].iter().map(|&v| i32::from(v) + 7).sum();
            assert_eq!(y[ch], requantize(acc, r, 3, -100, 120));
        }
    }

    /// Against dequantise → f32 average pooling → quantise, both padding conventions.
    #[test]
    fn avg_pool_i8_matches_float() {
        use super::super::quant::Requant;
        let (s_in, z_in, s_out, z_out) = (0.05f64, -10, 0.03f64, 4);
        for include in [false, true] {
            let p = Pool2d {
                batch: 1,
                c: 2,
                window: Window2d {
                    in_h: 5,
                    in_w: 5,
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
                kind: PoolKind::Average {
                    count_include_pad: include,
                },
                act: Activation::Identity,
            };
            let by_count: [(u32, Requant); 9] = core::array::from_fn(|i| {
                (
                    i as u32 + 1,
                    Requant::from_real(s_in / (s_out * (i + 1) as f64)),
                )
            });
            let x: [i8; 50] = core::array::from_fn(|i| ((i * 53 + 7) % 256) as u8 as i8);
            let xf: [f32; 50] =
                core::array::from_fn(|i| ((f64::from(x[i]) - f64::from(z_in)) * s_in) as f32);
            let q = AvgPoolI8 {
                in_zero: z_in,
                out_zero: z_out,
                lo: -128,
                hi: 127,
            };
            let mut y = [0i8; 18];
            let mut yf = [0.0f32; 18];
            avg_pool_i8(&p, &q, &by_count, &x, &mut y);
            pool2d(&p, &xf, &mut yf);
            for i in 0..18 {
                let t = f64::from(yf[i]) / s_out;
                let r = if t >= 0.0 { t + 0.5 } else { t - 0.5 };
                let want = (r as i64 + i64::from(z_out)).clamp(-128, 127);
                assert!(
                    (i64::from(y[i]) - want).abs() <= 1,
                    "include={include} [{i}]: {} vs {want}",
                    y[i]
                );
            }
        }
    }
}
