//! The int8 depthwise convolution [`conv2d_i8_depthwise`] (and its split-window form
//! [`conv2d_i8_depthwise_split`] for streamed stages): each channel copied into a padded
//! plane, then two pixels at a time for the 3×3 windows, tap by tap otherwise; on Cortex-M4F
//! rows in FPU/DSP assembly (see `cortex_m/depthwise.rs`), on x86-64 with AVX2 eight pixels at a
//! time (see `x86/int8.rs`).

#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
use super::cortex_m::*;
use super::*;

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

/// Bytes of the packed weights of [`conv2d_i8_depthwise`]: per channel, per kernel row, the
/// row's taps padded to a whole number of words (12 bytes a channel for 3×3 windows).
pub const fn depthwise_weights_len(g: &Conv2d) -> usize {
    g.out_c * g.window.k_h * depthwise_row_bytes(g.window.k_w)
}

/// Bytes of one kernel row in the packed depthwise weights: its taps, padded to a word.
const fn depthwise_row_bytes(k_w: usize) -> usize {
    k_w.next_multiple_of(4)
}

/// The weights of a depthwise int8 convolution (OIHW, one input channel per group) as
/// [`conv2d_i8_depthwise`] reads them, one byte each: per channel, per kernel row, the row's
/// taps padded to a whole word. For 3×3 windows (the fast path's) the padding bytes of rows 0
/// and 1 hold the channel's sum of weights (`Σ w`, little-endian), which the Cortex-M4 path
/// takes out of the bias with the input zero point; a row word `[w0, w1, w2, pad]` is what it
/// loads, `SXTB16` giving `(w0, w2)` and, rotated, `(w1, pad)`. Built once, at build time.
pub fn pack_depthwise_weights<'a>(g: &Conv2d, weights: &'a [i8]) -> impl Iterator<Item = i8> + 'a {
    let (kh, kw, c) = (g.window.k_h, g.window.k_w, g.out_c);
    let rb = depthwise_row_bytes(kw);
    (0..c).flat_map(move |ch| {
        let taps = &weights[ch * kh * kw..][..kh * kw];
        // |Σ w| ≤ 128 · 9 fits an i16.
        let sum: i32 = taps.iter().map(|&t| i32::from(t)).sum();
        let sum = (sum as i16).to_le_bytes().map(|b| b as i8);
        (0..kh).flat_map(move |ky| {
            (0..rb).map(move |kx| match kx {
                _ if kx < kw => taps[ky * kw + kx],
                3 if (kh, kw) == (3, 3) && ky < 2 => sum[ky],
                _ => 0,
            })
        })
    })
}

/// Depthwise int8 convolution (one input channel per group, one output channel each),
/// bit-exact with [`conv2d_i8`] when `scales[c]` is `requant[c].scale()`, or with TFLite's
/// arithmetic for the fixed-point scales (see `crate::scale`).
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
pub fn conv2d_i8_depthwise<S: ChannelScale>(
    p: &ConvI8,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    conv2d_i8_depthwise_split(p, &[], input, packed, bias, scales, scratch, output)
}

/// Bit of a `VARIANT` of [`conv2d_i8_depthwise_split_as`] that [`depthwise_variant`] never
/// sets: on Cortex-M4F/M7 the kernel's body but its row loop (the checks, the border fill, the
/// channel loop) is one function shared by every variant, which calls the variant's row loop
/// through a pointer once per channel (about 12 instructions). The model compiler sets it
/// when a model's depthwise layers use more than one variant, whose bodies (2 KiB each) would
/// otherwise each be in flash.
pub const DW_SHARED: u8 = 1 << 7;
/// Bit of a [`depthwise_variant`]: the output range is narrower than int8's.
pub const DW_CLAMP: u8 = 1 << 1;
/// Row-copy class of a [`depthwise_variant`] (bits 4–5): rows of 4 to 8 bytes, two
/// (overlapping) words each. On Cortex-M4F/M7 such a layer's whole channel loop (the copies,
/// each channel's constants, its rows) is one assembly block: small planes, a streamed stage's
/// bands above all, pay per channel and call what a wide plane pays per row.
pub const DW_ROWS_SHORT: u8 = 1 << 4;
/// Row-copy class of a [`depthwise_variant`]: rows of whole groups of four bytes, 16 or more
/// (four words per `LDM` from an aligned source).
pub const DW_ROWS_WORDS: u8 = 2 << 4;
/// Row-copy class of a [`depthwise_variant`]: other rows, a word at a time.
pub const DW_ROWS_LONG: u8 = 3 << 4;
/// Bit of a [`depthwise_variant`] of the short class ([`DW_ROWS_SHORT`]) with two pixel
/// pairs a row (4 or 5 output pixels, DS-CNN's rows): the row's pairs spelt out, no loop.
pub const DW_PAIRS2: u8 = 1 << 6;
/// The bits of a [`depthwise_variant`] that only its own inlined body reads: the row-copy
/// class (bits 4–5) and [`DW_PAIRS2`]. A variant with [`DW_SHARED`] leaves them out: the
/// shared body copies rows of any class.
pub const DW_ROWS: u8 = 7 << 4;
/// The row-copy class bits alone (see [`DW_ROWS`]).
#[cfg(microarena_dsp)]
pub(super) const DW_CLASS: u8 = 3 << 4;
/// Bit of a [`depthwise_variant`]: the rows have an odd number of pixels.
pub const DW_ODD: u8 = 1 << 0;

/// The code path [`conv2d_i8_depthwise_split_as`] takes for `p`, as a number for its
/// `VARIANT` parameter: the kernel geometry (3×3 at horizontal stride 1 or 2 with rows of two
/// pixels or more, or any other), whether the output range clamps ([`DW_CLAMP`]), whether
/// the rows are odd ([`DW_ODD`]) and how the input's rows are copied into the padded plane
/// ([`DW_ROWS_SHORT`], [`DW_ROWS_WORDS`], [`DW_ROWS_LONG`]: one loop of three linked).
/// Never 0 (0 means "decide at run time").
///
/// ```
/// use microarena_kernels::conv::{depthwise_variant, Conv2d, ConvI8, DW_CLAMP, DW_ODD};
/// use microarena_kernels::conv::{DW_ROWS_LONG, DW_ROWS_SHORT};
/// use microarena_kernels::{Activation, Window2d};
/// let p = ConvI8 {
///     geom: Conv2d {
///         batch: 1,
///         in_c: 8,
///         out_c: 8,
///         groups: 8,
///         window: Window2d::uniform(5, 5, 3, 3, 1, 1, 1),
///         act: Activation::Identity,
///     },
///     input_zero: 0,
///     output_zero: 0,
///     lo: -128,
///     hi: 127,
/// };
/// let v = depthwise_variant(&p);
/// assert!(v != 0 && v & DW_ODD != 0 && v & DW_CLAMP == 0);
/// assert_eq!(v & DW_ROWS_LONG, DW_ROWS_SHORT); // rows of 5 bytes
/// assert!(depthwise_variant(&ConvI8 { lo: 0, ..p }) & DW_CLAMP != 0);
/// ```
pub const fn depthwise_variant(p: &ConvI8) -> u8 {
    let w = &p.geom.window;
    let class = rows_class(w.in_w);
    let shared = shared_variant(p);
    // Two pairs a row, spelt out (only the short class's assembly has the form).
    let pairs2 = if class == DW_ROWS_SHORT && shared >> 2 & 3 != 3 && w.out_w / 2 == 2 {
        DW_PAIRS2
    } else {
        0
    };
    shared | class | pairs2
}

/// [`depthwise_variant`] without its row-copy class (the part a [`DW_SHARED`] variant names).
const fn shared_variant(p: &ConvI8) -> u8 {
    let w = &p.geom.window;
    let kind: u8 = match (w.k_h, w.k_w, w.stride_w, w.dil_w) {
        (3, 3, 1, 1) if w.out_w >= 2 => 1,
        (3, 3, 2, 1) if w.out_w >= 2 => 2,
        _ => 3,
    };
    let clamp = if p.lo != i8::MIN || p.hi != i8::MAX {
        DW_CLAMP
    } else {
        0
    };
    let odd = if w.out_w % 2 == 1 { DW_ODD } else { 0 };
    kind << 2 | clamp | odd
}

/// The row-copy class of rows of `in_w` bytes (see [`copy_plane_rows`]).
const fn rows_class(in_w: usize) -> u8 {
    if 4 <= in_w && in_w <= 8 {
        DW_ROWS_SHORT
    } else if in_w.is_multiple_of(4) && in_w >= 16 {
        DW_ROWS_WORDS
    } else {
        DW_ROWS_LONG
    }
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
pub fn conv2d_i8_depthwise_split<S: ChannelScale>(
    p: &ConvI8,
    kept_rows: &[i8],
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    conv2d_i8_depthwise_split_as::<S, 0>(p, kept_rows, input, packed, bias, scales, scratch, output)
}

/// [`conv2d_i8_depthwise_split`] compiled for one code path, `VARIANT` =
/// [`depthwise_variant`]`(p)`, known when the firmware is built: on Cortex-M4F/M7 only that
/// path's assembly is in flash (the run-time choice holds all eight, about 6 KiB). The model
/// compiler works the variant out with [`depthwise_variant`] and writes it as a literal; by hand:
///
/// ```ignore
/// conv2d_i8_depthwise_split_as::<_, { depthwise_variant(&P) }>(&P, kept, x, w, b, s, t, y)
/// ```
///
/// `VARIANT` 0 decides at run time, as [`conv2d_i8_depthwise_split`]; [`DW_SHARED`] may be
/// added to a variant without its row-copy class ([`DW_ROWS`]).
///
/// # Panics
/// As [`conv2d_i8_depthwise_split`], and if `VARIANT` is neither 0 nor `p`'s variant.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_depthwise_split_as<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    kept_rows: &[i8],
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    assert!(
        match VARIANT {
            0 => true,
            v if v & DW_SHARED != 0 => v & !DW_SHARED == shared_variant(p),
            v => v == depthwise_variant(p),
        },
        "the variant is the parameters' own"
    );
    // Several variants in one model: the channel loop shared (see `DW_SHARED`); also the
    // run-time choice (`VARIANT` 0).
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if VARIANT == 0 || VARIANT & DW_SHARED != 0 {
        let v = match VARIANT {
            0 => depthwise_variant(p),
            v => v,
        };
        if let Some(kind) = pair_kind(v) {
            if VARIANT == 0 && v & DW_CLASS == DW_ROWS_SHORT {
                // The run-time choice of a short-row layer: its channel loop in assembly, as
                // a layer naming its variant has it.
                let (padded, row, kept) =
                    prepare(p, kept_rows, input, packed, bias, scales, scratch, output);
                let planes = Planes {
                    kept_rows,
                    kept,
                    input,
                };
                let channels = dsp_channels_fn::<S, 0>(p, kind);
                return depthwise_channels_dsp(
                    p, kind, &planes, packed, bias, scales, padded, row, output, channels,
                );
            }
            let rows = dsp_rows_fn::<S, VARIANT>(p, kind);
            return depthwise_split_dsp(
                p, kept_rows, input, packed, bias, scales, scratch, output, kind, rows,
            );
        }
    }
    let (padded, row, kept) = prepare(p, kept_rows, input, packed, bias, scales, scratch, output);
    let g = &p.geom;
    let w = &g.window;
    let fresh = w.in_h - kept;
    let (plane_in, plane_out) = (fresh * w.in_w, w.out_h * w.out_w);
    let rb = w.k_h * depthwise_row_bytes(w.k_w);
    let zero = p.input_zero as i8;
    let pair_kernel = match (w.k_h, w.k_w, w.stride_w, w.dil_w) {
        (3, 3, 1, 1) => Some(PairKind::Stride1),
        (3, 3, 2, 1) => Some(PairKind::Stride2),
        _ => None,
    };
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    {
        // A constant when the caller names the variant: the other paths' code drops out.
        if let Some(kind) = pair_kind(VARIANT) {
            let planes = Planes {
                kept_rows,
                kept,
                input,
            };
            if VARIANT & DW_CLASS == DW_ROWS_SHORT {
                let channels = dsp_channels_fn::<S, VARIANT>(p, kind);
                return depthwise_channels_dsp(
                    p, kind, &planes, packed, bias, scales, padded, row, output, channels,
                );
            }
            return depthwise_rows_dsp::<S, VARIANT>(
                p, kind, &planes, packed, bias, scales, padded, row, output,
            );
        }
    }
    let inside = w.pad_top * row + w.pad_left;
    for n in 0..g.batch {
        for c in 0..g.out_c {
            let plane = n * g.in_c + c;
            copy_plane::<0>(
                &kept_rows[plane * kept * w.in_w..],
                w.in_w,
                kept,
                padded,
                inside,
                row,
                zero,
            );
            let src = &input[plane * plane_in..];
            copy_plane::<0>(src, w.in_w, fresh, padded, inside + kept * row, row, zero);
            let wc = &packed[c * rb..][..rb];
            let b = bias.map_or(0, |b| b[c]);
            let out = &mut output[(n * g.out_c + c) * plane_out..][..plane_out];
            let scale = scales[c];
            #[cfg(target_arch = "x86_64")]
            if let (Some(scale), true) = (
                S::floats(scales).map(|s| s[c]),
                (1..=2).contains(&w.stride_w) && w.k_h * w.k_w <= 64 && crate::cpu::avx2(),
            ) {
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
            let q = |a: i32| scale.requantize(a, p.output_zero, p.lo, p.hi);
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

/// The two-pixel kernel of a [`depthwise_variant`] (with or without [`DW_SHARED`]), if any.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
const fn pair_kind(v: u8) -> Option<PairKind> {
    match (v >> 2) & 3 {
        1 => Some(PairKind::Stride1),
        2 => Some(PairKind::Stride2),
        _ => None,
    }
}

/// What every path of [`conv2d_i8_depthwise_split_as`] starts with: the checks of its
/// arguments, and `scratch` as bytes with the padded plane's border filled with the input zero
/// point. Returns the padded plane, its row length and the number of kept rows.
///
/// # Panics
/// As [`conv2d_i8_depthwise_split`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn prepare<'s, S: ChannelScale>(
    p: &ConvI8,
    kept_rows: &[i8],
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &'s mut [i16],
    output: &[i8],
) -> (&'s mut [i8], usize, usize) {
    let g = &p.geom;
    let w = &g.window;
    assert!(
        g.groups == g.in_c && g.in_c == g.out_c,
        "one channel per group"
    );
    assert!(
        S::KIND == ScaleKind::Float || p.output_zero == 0,
        "fixed-point scales hold the output zero point (Q31::with_zero)"
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
    assert!(input.len() >= g.batch * g.in_c * plane_in);
    assert!(output.len() >= g.batch * g.out_c * plane_out);
    assert!(packed.len() >= depthwise_weights_len(g) && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    let padded = &mut scratch[..rows * row];
    let zero = p.input_zero as i8;
    // The border: every channel's copy overwrites the inside only.
    padded.fill(zero);
    (padded, row, kept)
}

/// Tap `(ky, kx)` of one channel's packed depthwise weights `wc` (see
/// [`pack_depthwise_weights`]: each kernel row a whole number of words).
#[inline(always)]
pub(super) fn depthwise_tap(wc: &[i8], k_w: usize, ky: usize, kx: usize) -> i8 {
    wc[ky * depthwise_row_bytes(k_w) + kx]
}

/// A two-pixel depthwise kernel: `(padded, row, y0, x0, dil_h, weights, zero, bias)`.
pub(super) type PairKernel = fn(&[i8], usize, usize, usize, usize, &[i8], i32, i32) -> [i32; 2];

/// The depthwise geometries with a two-pixel kernel: 3×3, horizontal stride 1 or 2.
#[derive(Clone, Copy)]
pub(super) enum PairKind {
    Stride1,
    Stride2,
}

/// One output row of a depthwise convolution two pixels at a time: `sums(x0)` gives the
/// accumulators of the pixels whose windows start at columns `x0` and `x0 + stride`.
#[inline(always)]
pub(super) fn pair_row<S: ChannelScale>(
    line: &mut [i8],
    stride: usize,
    p: &ConvI8,
    scale: S,
    sums: impl Fn(usize) -> [i32; 2],
) {
    for (i, o) in line.chunks_mut(2).enumerate() {
        let acc = sums(2 * i * stride);
        let [q0, q1] = scale.requantize_pair(acc[0], acc[1], p.output_zero, p.lo, p.hi);
        o[0] = q0;
        if let Some(o1) = o.get_mut(1) {
            *o1 = q1;
        }
    }
}

/// The plane at the start of `src` (`in_h` rows of `in_w` bytes; `src` may go on past it,
/// e.g. to the tensor's end) into the padded plane `dst` from byte `at`, rows `row` bytes
/// apart (`row` ≥ `in_w + 4`), the border left as it is: four bytes at a time, unaligned. A
/// row whose source has a whole word from its last word's start is copied up to three bytes
/// too far and the four bytes after it set back to the border's `fill`; the others (only the
/// tensor's last row, unless `in_w` is a multiple of 4) exactly.
/// `VARIANT`: a [`depthwise_variant`] whose row-copy class is the rows' (only that loop is
/// compiled), or 0.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn copy_plane<const VARIANT: u8>(
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
        copy_plane_rows::<VARIANT>(
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
/// `VARIANT`: a [`depthwise_variant`] whose row-copy class is that of `in_w` (then only that
/// class's loop is compiled, and the general one for an unaligned source of whole words), or 0
/// (the class chosen here).
///
/// # Safety
/// For y < n, `src + y·in_w + [0, in_w.next_multiple_of(4))` is readable and `dst + y·row
/// + [0, in_w + 4)` writable (`row` ≥ `in_w + 4`).
#[inline(always)]
pub(super) unsafe fn copy_plane_rows<const VARIANT: u8>(
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
    let fill = u32::from_ne_bytes([fill as u8; 4]);
    // Constants when the caller names the variant (see `rows_class`).
    #[cfg(microarena_dsp)]
    let (words, short) = match VARIANT & DW_CLASS {
        0 => (in_w.is_multiple_of(4) && in_w >= 16, in_w <= 8),
        c => (c == DW_ROWS_WORDS, c == DW_ROWS_SHORT),
    };
    #[cfg(microarena_dsp)]
    debug_assert!(VARIANT & DW_CLASS == 0 || VARIANT & DW_CLASS == rows_class(in_w));
    #[cfg(microarena_dsp)]
    if words && (src as usize).is_multiple_of(4) {
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
    if short {
        let wide = in_w.next_multiple_of(4);
        // Short rows (small planes): one or two words per row, no inner loop.
        // SAFETY: row y < n reads src[y·in_w..][..wide] (the caller's contract; the second
        // word only when `wide` is 8) and writes dst[y·row..][..in_w + 4] (the contract;
        // `wide` ≤ `in_w + 3`; the fill after the words, at `in_w`); unaligned LDR/STR are
        // allowed on Armv7E-M. No stack; the flags are clobbered.
        unsafe {
            let (s, d) = (src, dst);
            // Two rows an iteration (an odd count's first row alone), as `taps_side_by_side`.
            macro_rules! two_words {
                () => {
                    concat!(
                        "ldr {v}, [{s}, #4]\n",
                        "ldr {u}, [{s}]\n",
                        "add {s}, {s}, {w}\n",
                        "str {v}, [{d}, #4]\n",
                        "str {u}, [{d}]\n",
                        "str {fill}, [{d}, {w}]\n",
                        "add {d}, {d}, {row}\n",
                    )
                };
            }
            macro_rules! one_word {
                () => {
                    concat!(
                        "ldr {u}, [{s}]\n",
                        "add {s}, {s}, {w}\n",
                        "str {u}, [{d}]\n",
                        "str {fill}, [{d}, {w}]\n",
                        "add {d}, {d}, {row}\n",
                    )
                };
            }
            if wide == 8 {
                core::arch::asm!(
                    "lsrs {n}, {n}, #1",
                    "bcc 1f",
                    two_words!(),
                    // Z still from LSRS: no pair of rows left.
                    "beq 2f",
                    "1:",
                    two_words!(),
                    two_words!(),
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    "2:",
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
                    "lsrs {n}, {n}, #1",
                    "bcc 1f",
                    one_word!(),
                    // Z still from LSRS: no pair of rows left.
                    "beq 2f",
                    "1:",
                    one_word!(),
                    one_word!(),
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    "2:",
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
pub(super) fn copy_bytes(dst: &mut [i8], src: &[i8]) {
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
pub(super) fn depthwise_3x3_s2_pair(
    padded: &[i8],
    row: usize,
    y0: usize,
    x0: usize,
    dil_h: usize,
    wc: &[i8],
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
        // `padded`; LDR may be unaligned on Armv7E-M); the weights at `wc[0..12]` (asserted).
        // Per row: e = (x0, x2), o = (x1, x3), y = x4 (low half), each minus the zero point;
        // weights wa = (w0, w2), wb = (w1, pad) (only its low half is read). DSP-extension instructions; no stack; no flags.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{px}]",
                "ldrb {y}, [{px}, #4]",
                "add {px}, {px}, {stride}",
                "ldr {wa}, [{pw}]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
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
                "ldr {wa}, [{pw}, #4]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
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
                "ldr {wa}, [{pw}, #8]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
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
            let (w0, w1, w2) = (
                i32::from(wc[4 * ky]),
                i32::from(wc[4 * ky + 1]),
                i32::from(wc[4 * ky + 2]),
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
pub(super) fn depthwise_3x3_pair(
    padded: &[i8],
    row: usize,
    y0: usize,
    ox: usize,
    dil_h: usize,
    wc: &[i8],
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
        // `padded`; LDR may be unaligned on Armv7E-M); the weights at `wc[0..12]` (asserted):
        // wa = (w0, w2), wb = (w1, pad) (only its low half is read). DSP-extension
        // instructions; no stack; no flags.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{px}]",
                "ldr {wa}, [{pw}]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {o}, {z}, {x}, ror #8",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {o}, {wb}, {a0}",
                "smlad {a1}, {o}, {wa}, {a1}",
                "smlatb {a1}, {e}, {wb}, {a1}",
                "ldr {x}, [{px}, {stride}]",
                "ldr {wa}, [{pw}, #4]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
                "sxtab16 {e}, {z}, {x}",
                "sxtab16 {o}, {z}, {x}, ror #8",
                "smlad {a0}, {e}, {wa}, {a0}",
                "smlabb {a0}, {o}, {wb}, {a0}",
                "smlad {a1}, {o}, {wa}, {a1}",
                "smlatb {a1}, {e}, {wb}, {a1}",
                "ldr {x}, [{px}, {stride2}]",
                "ldr {wa}, [{pw}, #8]",
                "sxtb16 {wb}, {wa}, ror #8",
                "sxtb16 {wa}, {wa}",
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
            let (w0, w1, w2) = (
                i32::from(wc[4 * ky]),
                i32::from(wc[4 * ky + 1]),
                i32::from(wc[4 * ky + 2]),
            );
            acc[0] += w0 * x(0) + w1 * x(1) + w2 * x(2);
            acc[1] += w0 * x(1) + w1 * x(2) + w2 * x(3);
        }
        acc
    }
}

#[cfg(test)]
#[path = "depthwise_tests.rs"]
mod depthwise_tests;
