//! The tiled int8 convolution [`conv2d_i8_tiled`]: an im2col of two pixels at a time
//! (input minus its zero point, widened to 16 bits), weights packed in pairs of reduction
//! steps, tiles of 2 or 4 channels × 2 pixels summed by `SMLAD` on Cortex-M (see
//! `cortex_m/`), `VPMADDWD` on x86-64 (see `x86/`), portable loops elsewhere.

#[cfg(microarena_dsp)]
use super::cortex_m::*;
use super::tiled_i8_weights::*;
use super::*;

/// Reduction steps of the tiled int8 convolution: for every tap `(ky, kx)` the input
/// channels, their number rounded up to even, then rounded up to a multiple of 8: the length
/// of the packed weight rows and of the im2col of one pixel (the padding is zero weights).
/// With one or three input channels ([`flattened`]) the (tap, channel) steps are paired
/// across taps, so that no `SMLAD` multiplies a padding channel.
pub const fn tiled_depth(g: &Conv2d) -> usize {
    (g.window.k_h * g.window.k_w * tiled_channel_steps(g)).next_multiple_of(8)
}

/// True when the reduction steps run over (tap, channel) without padding the channels to
/// even: one or three input channels (a spectrogram's or an RGB image's first layer), whose
/// padding channel would be a third of the products and whose channel pairs would be
/// gathered value by value anyway. Steps then pair across taps.
pub(crate) const fn flattened(g: &Conv2d) -> bool {
    (g.in_c == 1 || g.in_c == 3) && g.window.k_h * g.window.k_w * g.in_c <= FLAT_STEPS
}

/// Most reduction steps of a [`flattened`] convolution (its steps' input offsets are a
/// table on the stack).
const FLAT_STEPS: usize = 64;

/// Reduction steps per tap of the tiled int8 convolution: the input channels rounded up to
/// even, or as they are for [`flattened`] convolutions (see [`tiled_depth`]).
pub(super) const fn tiled_channel_steps(g: &Conv2d) -> usize {
    if flattened(g) {
        g.in_c
    } else {
        g.in_c.next_multiple_of(2)
    }
}

/// `i16` elements of the scratch [`conv2d_i8_tiled`] needs: the im2col of two output pixels,
/// and for a narrow few-channel first layer ([`flat_padded`]) its input with the padding
/// written out.
pub const fn tiled_scratch_len(g: &Conv2d) -> usize {
    2 * tiled_depth(g)
        + if flat_padded(g) {
            padded_plane_bytes(g).div_ceil(2)
        } else {
            0
        }
}

/// Bytes of a [`flat_padded`] layer's input with its padding written out.
const fn padded_plane_bytes(g: &Conv2d) -> usize {
    let w = &g.window;
    g.in_c * (w.pad_top + w.in_h + w.pad_bottom) * (w.pad_left + w.in_w + w.pad_right)
}

/// True when a [`flattened`] layer's windows cross the left or right padding in at least a
/// quarter of the output columns (a spectrogram's first layer: DS-CNN's 10×4 window over 10
/// MFCC features reaches into the padding in 2 of its 5 columns): it copies its input, the
/// padding written out with the zero point, into the scratch (a few hundred bytes) so that
/// every window lies inside and takes the flattened path's table of offsets, instead of the
/// window-by-window gathering of [`border_windows`] (about five times as many instructions a
/// pixel pair). Wide inputs (RGB images) have few such columns and keep their scratch small.
pub(crate) const fn flat_padded(g: &Conv2d) -> bool {
    let w = &g.window;
    if !flattened(g) || w.pad_left + w.pad_right == 0 {
        return false;
    }
    4 * border_columns(w) >= w.out_w
}

/// Output columns whose window starts left of the input or ends right of it (`x · stride <
/// pad_left`, or `x · stride + span > pad_left + in_w`), in closed form: the kernels work it
/// out per call where a streamed band's geometry is not a constant.
pub(crate) const fn border_columns(w: &crate::Window2d) -> usize {
    let span = (w.k_w - 1) * w.dil_w + 1;
    let s = w.stride_w;
    // Columns 0 .. left start left of the input.
    let left = {
        let l = w.pad_left.div_ceil(s);
        if l < w.out_w {
            l
        } else {
            w.out_w
        }
    };
    // Columns from `right` on end right of it.
    let right = if w.pad_left + w.in_w < span {
        0
    } else {
        (w.pad_left + w.in_w - span) / s + 1
    };
    let right = if right < left { left } else { right };
    let right = if right < w.out_w { right } else { w.out_w };
    left + (w.out_w - right)
}

/// Dense int8 convolution (one group) as a matrix product over an im2col of two output
/// pixels at a time, in tiles of 4 output channels × 2 pixels (2 × 2 for the last two or
/// three channels); bit-exact with
/// [`conv2d_i8`] when `scales[c]` is `requant[c].scale()` (see [`Requant::scale`]), or with
/// TFLite's arithmetic for the fixed-point scales ([`Q31Twice`], [`Q31Once`]).
///
/// `packed` holds the weights as [`pack_tiled_weights`] lays them out, from weights for which
/// [`tiled_weights_fit`] holds (else the Cortex-M sums of a pair's second channel are
/// wrong); `scratch` (at least
/// [`tiled_scratch_len`] `i16`, placed in the arena by the planner) receives each pixel
/// pair's inputs widened to `i16` with the zero point subtracted (zero where the window
/// reaches into the padding), interleaved like the weights: per pair of reduction steps,
/// pixel 0's two values then pixel 1's. Each tile's sums are one pass over both (on
/// Cortex-M4/M7 `SMLAD`, each two multiply-accumulates: see `dot_4x2_dsp` and `quads_dsp`),
/// then one requantisation per output by its channel's scale (decoded once, at build time,
/// by the compiler: a float32 scale, or a fixed-point factor applied by `SMMULR`/`SMMUL`
/// and a rounded shift).
///
/// [`Requant::scale`]: crate::quant::Requant::scale
/// [`Q31Twice`]: crate::scale::Q31Twice
/// [`Q31Once`]: crate::scale::Q31Once
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_tiled<S: ChannelScale>(
    p: &ConvI8,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    tiled::<S, 0>(p, input, packed, bias, scales, scratch, output, false);
}

/// Bit of a [`tiled_variant`]: an odd number of output channels (the last one alone).
pub const TILED_ODD: u8 = 1 << 3;
/// Bit of a [`tiled_variant`]: an odd number of channel pairs (the last full pair outside
/// the groups of four).
pub const TILED_PAIR: u8 = 1 << 2;
/// Bit of a [`tiled_variant`]: the output range is narrower than int8's.
pub const TILED_CLAMP: u8 = 1 << 1;
/// Bit of a [`tiled_variant`]: the reduction is an odd number of 8-step halves.
pub const TILED_HALF: u8 = 1 << 0;
/// [`tiled_variant`]'s im2col classes (bits 4–5): 1×1 at stride 1 without padding (two
/// consecutive pixels side by side in memory), ...
const IM2COL_SIDE_BY_SIDE: u8 = 1;
/// ... one or three input channels ([`flattened`]), ...
const IM2COL_FLATTENED: u8 = 2;
/// ... or any other window, ...
const IM2COL_WINDOWS: u8 = 3;
/// ... or a [`flattened`] layer that copies its input with the padding into the scratch
/// ([`flat_padded`]; bit 6).
const IM2COL_FLAT_PADDED: u8 = 4;

/// The im2col class of `g` (see [`tiled_variant`]).
const fn im2col_class(g: &Conv2d) -> u8 {
    let w = &g.window;
    if g.in_c >= 2
        && w.k_h == 1
        && w.k_w == 1
        && w.stride_h == 1
        && w.stride_w == 1
        && w.pad_top == 0
        && w.pad_left == 0
        && w.in_h == w.out_h
        && w.in_w == w.out_w
    {
        IM2COL_SIDE_BY_SIDE
    } else if flat_padded(g) {
        IM2COL_FLAT_PADDED
    } else if flattened(g) {
        IM2COL_FLATTENED
    } else {
        IM2COL_WINDOWS
    }
}

/// The code path [`conv2d_i8_tiled_as`] takes for `p`, as a number for its `VARIANT`
/// parameter: how pixel pairs are gathered (1×1 side by side, a few-channel first layer, or
/// any window), whether a last channel ([`TILED_ODD`]) or a last pair ([`TILED_PAIR`]) stands
/// outside the groups of four, whether the output range clamps ([`TILED_CLAMP`]) and whether
/// each channel group's loop starts at its second half ([`TILED_HALF`]). Never 0.
///
/// ```
/// use microarena_kernels::conv::{tiled_variant, Conv2d, ConvI8, TILED_CLAMP};
/// use microarena_kernels::{Activation, Window2d};
/// let p = ConvI8 {
///     geom: Conv2d {
///         batch: 1,
///         in_c: 16,
///         out_c: 32,
///         groups: 1,
///         window: Window2d::uniform(8, 8, 1, 1, 1, 1, 0),
///         act: Activation::Identity,
///     },
///     input_zero: 0,
///     output_zero: 0,
///     lo: -128,
///     hi: 127,
/// };
/// assert!(tiled_variant(&p) != 0 && tiled_variant(&p) & TILED_CLAMP == 0);
/// assert!(tiled_variant(&ConvI8 { hi: 100, ..p }) & TILED_CLAMP != 0);
/// ```
pub const fn tiled_variant(p: &ConvI8) -> u8 {
    let clamp = if p.lo != i8::MIN || p.hi != i8::MAX {
        TILED_CLAMP
    } else {
        0
    };
    let half = if (2 * tiled_depth(&p.geom)) & 16 != 0 {
        TILED_HALF
    } else {
        0
    };
    let odd = if p.geom.out_c % 2 == 1 { TILED_ODD } else { 0 };
    let pair = if (p.geom.out_c / 2) % 2 == 1 {
        TILED_PAIR
    } else {
        0
    };
    im2col_class(&p.geom) << 4 | odd | pair | clamp | half
}

/// [`conv2d_i8_tiled`] compiled for one code path, `VARIANT` = [`tiled_variant`]`(p)`, known
/// when the firmware is built: on Cortex-M4F/M7 only that path's im2col and assembly are in
/// flash (the run-time choice holds three im2col paths and four assembly loops, about
/// 9 KiB). The model compiler works the variant out with [`tiled_variant`] and writes it as a
/// literal. `VARIANT` 0 decides at run time, as [`conv2d_i8_tiled`].
///
/// # Panics
/// As [`conv2d_i8_tiled`], and if `VARIANT` is neither 0 nor `p`'s variant.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_tiled_as<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    assert!(
        VARIANT == 0 || VARIANT == tiled_variant(p),
        "the variant is the parameters' own"
    );
    tiled::<S, VARIANT>(p, input, packed, bias, scales, scratch, output, false);
}

/// [`conv2d_i8_tiled`] for weights that pack ([`tiled_weights_pair`]) but whose pairs' sums
/// may reach 2^23 ([`tiled_weights_fit`] false: long reductions): on Cortex-M each tile sums
/// at most 256 steps a pass (`PAIRED_CHUNK_STEPS`) and adds the passes up in Rust, the
/// requantisation in Rust too (slower than the one assembly loop of [`conv2d_i8_tiled`], much
/// faster than the reference kernel); elsewhere it is [`conv2d_i8_tiled`]. The same bytes as
/// [`conv2d_i8`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_tiled_chunked<S: ChannelScale>(
    p: &ConvI8,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
) {
    tiled::<S, 0>(p, input, packed, bias, scales, scratch, output, true);
}

/// [`conv2d_i8_tiled`], or with `chunked` [`conv2d_i8_tiled_chunked`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tiled<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
    chunked: bool,
) {
    let g = &p.geom;
    let w = &g.window;
    assert!(g.groups == 1, "the tiled kernel is for dense convolutions");
    assert!(
        S::KIND == ScaleKind::Float || p.output_zero == 0,
        "fixed-point scales hold the output zero point (Q31::with_zero)"
    );
    let (in_len, plane) = (g.in_c * w.in_h * w.in_w, w.out_h * w.out_w);
    let depth = tiled_depth(g);
    assert!(input.len() >= g.batch * in_len && output.len() >= g.batch * g.out_c * plane);
    assert!(packed.len() >= tiled_weights_len(g) && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    #[cfg(target_arch = "x86_64")]
    if let (Some(f), Some(scales)) = (
        x86::flat_i8(g).filter(|_| crate::cpu::avx512bw()),
        S::floats(scales),
    ) {
        // SAFETY: the CPU has AVX-512F/BW; the operands' extents were asserted above.
        unsafe { x86::conv2d_i8_flat(p, &f, input, packed, bias, scales, output) };
        return;
    }
    let class = match VARIANT {
        0 => im2col_class(g),
        v => v >> 4,
    };
    // (`tiled_scratch_len` without working the class out again.)
    let padded_len = if class == IM2COL_FLAT_PADDED {
        padded_plane_bytes(g)
    } else {
        0
    };
    let (scratch, spare) = scratch[..2 * depth + padded_len.div_ceil(2)].split_at_mut(2 * depth);
    // A narrow few-channel first layer (`flat_padded`) reads its input from the scratch, the
    // padding written out: the same windows, none reaching outside.
    let (ph, pw) = (
        w.pad_top + w.in_h + w.pad_bottom,
        w.pad_left + w.in_w + w.pad_right,
    );
    let padded_geom = Conv2d {
        window: crate::Window2d {
            in_h: ph,
            in_w: pw,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            ..*w
        },
        ..*g
    };
    // SAFETY: the same memory as bytes: i8 has no alignment and no invalid bit pattern, the
    // length is the byte length, and `spare` is not used again while this view lives.
    let spare: &mut [i8] = unsafe {
        core::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<i8>(), 2 * spare.len())
    };
    let gi = if class == IM2COL_FLAT_PADDED {
        // The border once a call (each image writes only the inside).
        spare[..padded_len].fill(p.input_zero as i8);
        &padded_geom
    } else {
        g
    };
    // The padded reduction steps stay zero for every pixel pair. A 1×1 layer's im2col writes
    // its first `4 · ⌈in_c / 2⌉` values for every pair (all of them when `in_c` is a multiple
    // of 8): only the steps past them (a streamed stage calls this once per band).
    let written = if class == IM2COL_SIDE_BY_SIDE {
        4 * g.in_c.div_ceil(2)
    } else {
        0
    };
    scratch[written..].fill(0);
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
        chunked,
    };
    // A flattened convolution's steps: each one's input offset from its window's top-left,
    // in step order (tap, then channel), worked out once.
    let mut offsets = [0u32; FLAT_STEPS];
    let steps = if class == IM2COL_FLATTENED || class == IM2COL_FLAT_PADDED {
        let wi = &gi.window;
        let mut t = 0;
        for ky in 0..w.k_h {
            for kx in 0..w.k_w {
                for c in 0..g.in_c {
                    let at = c * wi.in_h * wi.in_w + ky * w.dil_h * wi.in_w + kx * w.dil_w;
                    offsets[t] = u32::try_from(at).expect("an input offset fits 32 bits");
                    t += 1;
                }
            }
        }
        &offsets[..t]
    } else {
        &offsets[..0]
    };
    for n in 0..g.batch {
        let input = &input[n * in_len..(n + 1) * in_len];
        let output = &mut output[n * g.out_c * plane..(n + 1) * g.out_c * plane];
        let input: &[i8] = if class == IM2COL_FLAT_PADDED {
            // Each channel's rows inside the border (`copy_bytes`: no call to `memcpy` per
            // row).
            let padded = &mut spare[..padded_len];
            for c in 0..g.in_c {
                for y in 0..w.in_h {
                    let at = (c * ph + w.pad_top + y) * pw + w.pad_left;
                    let from = (c * w.in_h + y) * w.in_w;
                    depthwise::copy_bytes(
                        &mut padded[at..at + w.in_w],
                        &input[from..from + w.in_w],
                    );
                }
            }
            padded
        } else {
            input
        };
        for p0 in (0..plane).step_by(2) {
            let next = usize::from(p0 + 1 < plane);
            im2col_pair::<VARIANT>(gi, input, p.input_zero, (p0, p0 + next), steps, scratch);
            rows.run::<VARIANT>(scratch, p0, next, output);
            // A constant when the caller names the variant.
            let odd = match VARIANT {
                0 => g.out_c % 2 == 1,
                v => v & TILED_ODD != 0,
            };
            if odd {
                // The last, unpaired channel: its packed pair's second channel is zeros.
                let c = g.out_c - 1;
                let b = bias[c * step];
                // Its pair is the last group: c is even, its weights start at c · depth.
                // Its pair's second channel is zeros: nothing to recover, no passes needed.
                let acc = dot_2x2(&packed[c * depth..][..2 * depth], scratch, [b; 4]);
                let q = |a: i32| scales[c].requantize(a, p.output_zero, p.lo, p.hi);
                output[c * plane + p0] = q(acc[0]);
                output[c * plane + p0 + next] = q(acc[1]);
            }
        }
    }
}

/// The channel pairs of [`conv2d_i8_tiled`] for one pixel pair: everything but the im2col,
/// gathered so that the loop over channel pairs holds only pointers and counters.
struct TileRows<'a, S> {
    packed: &'a [i8],
    depth: usize,
    /// Bias of channel `c` at `bias[c · step]`; `step` 0 without one.
    bias: &'a [i32],
    step: usize,
    scales: &'a [S],
    plane: usize,
    /// Full channel pairs (`out_c / 2`).
    pairs: usize,
    zero: i32,
    lo: i8,
    hi: i8,
    /// Cortex-M sums in passes of at most `PAIRED_CHUNK_STEPS` (see
    /// [`conv2d_i8_tiled_chunked`]).
    chunked: bool,
}

impl<S: ChannelScale> TileRows<'_, S> {
    /// Output pixels `p0` and `p0 + next` (`next` 0 or 1; with 0 both sums are pixel `p0`'s
    /// and the same byte is written twice) of the channels in groups of four and in full
    /// pairs (all but an odd last one), from the im2col `x`.
    /// `VARIANT` as in [`conv2d_i8_tiled_as`].
    #[inline(always)]
    fn run<const VARIANT: u8>(&self, x: &[i16], p0: usize, next: usize, output: &mut [i8]) {
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
        let rust_quads = if quads > 0 && !self.chunked {
            // Without a bias the groups read zeros, at most `ZERO_QUADS` groups a call.
            const ZERO_QUADS: usize = 16;
            static ZEROS: [i32; 4 * ZERO_QUADS] = [0; 4 * ZERO_QUADS];
            let (bias, per_call) = match self.step {
                0 => (&ZEROS[..], ZERO_QUADS),
                _ => (self.bias, quads),
            };
            let mut params = QuadParams {
                x_start: x.as_ptr(),
                x_end: x.as_ptr_range().end,
                bias: bias.as_ptr(),
                w_end: w,
                scales: self.scales.as_ptr().cast(),
                zero: self.zero,
                lo2: crate::quant::halves(self.lo),
                hi2: crate::quant::halves(self.hi),
                out: o,
                next,
                plane,
            };
            // Each group's four biases are read at once (16 bytes a group).
            assert!(bias.len() >= 4 * quads.min(per_call));
            let clamp = match VARIANT {
                0 => self.lo != i8::MIN || self.hi != i8::MAX,
                v => v & TILED_CLAMP != 0,
            };
            // SAFETY: the weights of the quads are packed[..quads·4·depth] and x holds 2·depth
            // values, a multiple of 16 (asserted above); biases (four per group, asserted just
            // above), scales c and output bytes (c·plane + p0 + j, j ≤ next) for c < 4·quads ≤
            // 2·pairs are inside their slices (asserted above).
            // An odd number of 8-step halves: every pass starts at its second half.
            let half = match VARIANT {
                0 => (2 * depth) & 16 != 0,
                v => v & TILED_HALF != 0,
            };
            let mut left = quads;
            while left > 0 {
                let n = left.min(per_call);
                params.bias = bias.as_ptr();
                params.w_end = w.wrapping_add(n * 4 * depth);
                // SAFETY: as above, for the next `n` groups (the scales and outputs carry on
                // in `params`).
                unsafe { quads_dsp(w, &mut params, S::KIND, clamp, half) };
                w = params.w_end;
                left -= n;
            }
            o = o.wrapping_add(quads * 4 * plane);
            0
        } else {
            quads
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
                let acc = if self.chunked {
                    dot_4x2_chunked(w, x, init)
                } else {
                    dot_4x2_unchecked(w, x, init)
                };
                w = w.add(4 * depth);
                #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
                if let Some(fs) = S::floats(self.scales) {
                    let s = fs.as_ptr().add(c);
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
                let s = self.scales.as_ptr().add(c);
                let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
                self.store(o, next, a0, a1, *s);
                self.store(o.add(plane), next, a2, a3, *s.add(1));
                self.store(o.add(2 * plane), next, a4, a5, *s.add(2));
                self.store(o.add(3 * plane), next, a6, a7, *s.add(3));
                // wrapping: past the last group it may point beyond the output.
                o = o.wrapping_add(4 * plane);
            }
        }
        let pair = match VARIANT {
            0 => pairs % 2 == 1,
            v => v & TILED_PAIR != 0,
        };
        if pair {
            let c = 4 * quads;
            let (b0, b1) = (bias(c), bias(c + 1));
            // SAFETY: as above, for the pair at packed[c·depth..][..2·depth] and channels c,
            // c + 1 < 2·pairs.
            unsafe {
                let acc = if self.chunked {
                    dot_2x2_chunked(w, x, [b0, b0, b1, b1])
                } else {
                    dot_2x2_unchecked(w, x, [b0, b0, b1, b1])
                };
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
    unsafe fn store(&self, o: *mut i8, next: usize, a0: i32, a1: i32, scale: S) {
        let [q0, q1] = scale.requantize_pair(a0, a1, self.zero, self.lo, self.hi);
        // SAFETY: the caller's contract.
        unsafe {
            *o = q0;
            *o.add(next) = q1;
        }
    }
}

/// Writes the im2col of output pixels `p0` and `p1` (flat indices of the output plane) into
/// `s`, in the order of [`pack_tiled_weights`]: for each tap and each pair of input
/// channels, pixel 0's two values then pixel 1's, each `x − zero`, or 0 in the padding.
fn im2col_pair<const VARIANT: u8>(
    g: &Conv2d,
    input: &[i8],
    zero: i32,
    (p0, p1): (usize, usize),
    steps: &[u32],
    s: &mut [i16],
) {
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
    // A constant when the caller names the variant: the other classes' code drops out.
    let class = match VARIANT {
        0 => im2col_class(g),
        v => v >> 4,
    };
    // 1×1, stride 1, no padding: pixel p reads input[c·plane + p], so two consecutive pixels
    // are side by side in memory even across rows; the last pixel of an odd plane alone,
    // value by value.
    if class == IM2COL_SIDE_BY_SIDE {
        let dst = &mut s[..4 * icp];
        if p1 == p0 + 1 {
            taps_side_by_side(&input[p0..], plane, g.in_c, zero, dst);
        } else {
            taps_two_pixels(&input[..g.in_c * plane], p0, p1, plane, zero, dst);
        }
        return;
    }
    let ((y0, x0), (y1, x1)) = (at(p0), at(p1));
    let inside = |y: isize, x: isize| y >= 0 && (y as usize) < ih && x >= 0 && (x as usize) < iw;
    if class == IM2COL_FLATTENED || class == IM2COL_FLAT_PADDED {
        // One or three input channels: steps are (tap, channel), paired across taps
        // (`tiled_depth`); with the padding written out (`flat_padded`) every window inside.
        let c_n = g.in_c;
        let n_steps = w.k_h * w.k_w * c_n;
        let (last_y, last_x) = (
            ((w.k_h - 1) * w.dil_h) as isize,
            ((w.k_w - 1) * w.dil_w) as isize,
        );
        let whole = |y: isize, x: isize| inside(y, x) && inside(y + last_y, x + last_x);
        if class == IM2COL_FLAT_PADDED || whole(y0, x0) && whole(y1, x1) {
            // Both windows inside the input (most pairs): step by step from the offsets
            // table, without tests.
            let (o0, o1) = (
                y0 as usize * iw + x0 as usize,
                y1 as usize * iw + x1 as usize,
            );
            let last = (c_n - 1) * plane + o0.max(o1) + last_y as usize * iw + last_x as usize;
            assert!(last < input.len() && steps.len() == n_steps);
            assert!(s.len() >= 2 * n_steps.next_multiple_of(2));
            // SAFETY (each load): an offset is at most (c_n − 1)·plane + last_y·iw + last_x,
            // so offset + o0 and offset + o1 are at most `last`, inside `input` (asserted).
            let v = |o: usize| (i32::from(unsafe { *input.get_unchecked(o) }) - zero) as i16;
            // Pointers and a `while` loop: at opt-level "z" the chunk iterators, their zip
            // and a closure called four times are calls per pair of steps.
            let (q, ab) = (s.as_mut_ptr(), steps.as_ptr());
            #[allow(unused_mut)]
            let mut j = 0;
            #[cfg(microarena_dsp)]
            if n_steps >= 2 {
                // SAFETY: as the loop's below, for every j < n_steps / 2 (at least one); the
                // offsets table and the arena's scratch are 4-aligned.
                unsafe {
                    let x = input.as_ptr();
                    flat_pairs_dsp(x.add(o0), x.add(o1), ab, n_steps / 2, zero, q);
                }
                j = n_steps / 2;
            }
            while j < n_steps / 2 {
                // SAFETY: steps `2j`, `2j + 1` < n_steps = steps.len(); outputs `4j ..
                // 4j + 4` < 2 · n_steps ≤ s.len() (asserted above); the loads as `v`'s.
                unsafe {
                    let (a, b) = (*ab.add(2 * j) as usize, *ab.add(2 * j + 1) as usize);
                    let (x0, x1) = (input.as_ptr().add(o0), input.as_ptr().add(o1));
                    // Steps 2j and 2j + 1: pixel 0's pair, then pixel 1's.
                    *q.add(4 * j) = (i32::from(*x0.add(a)) - zero) as i16;
                    *q.add(4 * j + 1) = (i32::from(*x0.add(b)) - zero) as i16;
                    *q.add(4 * j + 2) = (i32::from(*x1.add(a)) - zero) as i16;
                    *q.add(4 * j + 3) = (i32::from(*x1.add(b)) - zero) as i16;
                }
                j += 1;
            }
            if let [.., a] = steps {
                if n_steps % 2 == 1 {
                    let base = 4 * (n_steps / 2);
                    let a = *a as usize;
                    s[base] = v(o0 + a);
                    s[base + 1] = 0;
                    s[base + 2] = v(o1 + a);
                    s[base + 3] = 0;
                }
            }
            return;
        }
        border_windows(g, input, zero, [(y0, x0), (y1, x1)], s);
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
            // Elsewhere value by value (0 outside the input). A macro, not a closure: a
            // closure called four times stays a call at `opt-level = "z"` (ResNet-8 int8 there
            // 1.26 → 1.19 instructions per MAC), and the same code at the other opt-levels.
            macro_rules! value {
                ($at:expr, $inside:expr, $ic:expr) => {{
                    let ((y, x), ic) = ($at, $ic);
                    if $inside && ic < g.in_c {
                        (i32::from(input[ic * plane + y as usize * iw + x as usize]) - zero) as i16
                    } else {
                        0
                    }
                }};
            }
            for (j, q) in dst.chunks_exact_mut(4).enumerate() {
                let ic = 2 * j;
                q[0] = value!(a, ina, ic);
                q[1] = value!(a, ina, ic + 1);
                q[2] = value!(b, inb, ic);
                q[3] = value!(b, inb, ic + 1);
            }
        }
    }
}

/// The im2col of [`im2col_pair`] for [`flattened`] convolutions (one or three channels) when
/// a window crosses the border (`at`: each window's top-left, possibly outside): step by step
/// (tap, then channel), a value outside the input 0, step t to slot t % 2 of pair t / 2,
/// pixel 0's half of each pair then pixel 1's. Each pixel's steps go in order into a buffer
/// on the stack (per kernel row the columns inside the input worked out once: a row outside,
/// or the columns left and right of the input, zeros without a test per tap), then to their
/// slots a pair (one word) at a time. Out of line: it keeps the common paths' code as it is.
#[inline(never)]
fn border_windows(g: &Conv2d, input: &[i8], zero: i32, at: [(isize, isize); 2], s: &mut [i16]) {
    let w = &g.window;
    let (ih, iw, ch) = (w.in_h, w.in_w, g.in_c);
    let plane = ih * iw;
    let steps = w.k_h * w.k_w * ch;
    let pairs = steps.div_ceil(2);
    assert!(steps <= FLAT_STEPS && input.len() >= ch * plane && s.len() >= 4 * pairs);
    assert!(w.dil_w >= 1 && ch >= 1);
    let (dil_w, k_w) = (w.dil_w as isize, w.k_w as isize);
    // Word-aligned: read back a pair at a time.
    let mut buffer = [0u32; FLAT_STEPS / 2 + 1];
    for (half, (y0, x0)) in [0, 2].into_iter().zip(at) {
        // Zeros wherever a window reads outside the input (the values are written over).
        buffer[..pairs].fill(0);
        // The columns inside the input, kx in [first, end): the same for every kernel row.
        let first = if x0 >= 0 {
            0
        } else {
            (-x0 + dil_w - 1) / dil_w
        }
        .min(k_w);
        let end = if x0 >= iw as isize {
            0
        } else {
            ((iw as isize - x0 + dil_w - 1) / dil_w).min(k_w)
        }
        .max(first);
        let (before, after) = (first as usize * ch, (w.k_w - end as usize) * ch);
        let row_len = w.k_w * ch;
        let mut q = buffer.as_mut_ptr().cast::<i16>();
        // SAFETY: `q` moves over steps 0 .. steps of `buffer`, which holds FLAT_STEPS + 2 ≥
        // steps values (asserted), and writes only inside kernel rows; a value is read only
        // at a column in [0, iw) (kx in [first, end)) and a row in [0, ih) of a channel below
        // `ch`: inside `input` (asserted). The pairs are copied to `s` at words 2j + half / 2,
        // j < pairs: inside the 4·pairs values asserted (unaligned writes: a test's scratch
        // need not be 4-aligned; on Cortex-M it is, and STR takes either).
        unsafe {
            let mut y = y0;
            let mut ky = 0;
            while ky < w.k_h {
                if y < 0 || y >= ih as isize {
                    q = q.add(row_len);
                } else {
                    q = q.add(before);
                    // Wrapping: left of the row when x0 < 0 (read only from `first` on).
                    let mut at = input.as_ptr().wrapping_offset(y * iw as isize + x0);
                    at = at.wrapping_offset(first * dil_w);
                    let mut kx = first;
                    if ch == 1 {
                        // One channel (a spectrogram's first layer): no channel loop.
                        while kx < end {
                            *q = (i32::from(*at) - zero) as i16;
                            q = q.add(1);
                            at = at.wrapping_offset(dil_w);
                            kx += 1;
                        }
                    }
                    while kx < end {
                        let mut c = 0;
                        while c < ch {
                            *q = (i32::from(*at.add(c * plane)) - zero) as i16;
                            q = q.add(1);
                            c += 1;
                        }
                        at = at.wrapping_offset(dil_w);
                        kx += 1;
                    }
                    q = q.add(after);
                }
                y += w.dil_h as isize;
                ky += 1;
            }
            let (mut from, mut to) = (buffer.as_ptr(), s.as_mut_ptr().add(half).cast::<u32>());
            let end = from.add(pairs);
            while from < end {
                to.write_unaligned(*from);
                from = from.add(1);
                to = to.wrapping_add(2);
            }
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

/// The four sums of a 2 × 2 tile: `init[2c + i] + Σ_k w[c][k] · x[i][k]` for channels `c`
/// and pixels `i`, over `w` (one channel pair, [`pack_tiled_weights`]) and `x` laid out in
/// pairs of steps as `im2col_pair` writes them (a multiple of 8 steps).
#[inline(always)]
fn dot_2x2(w: &[i8], x: &[i16], init: [i32; 4]) -> [i32; 4] {
    assert!(w.len() == x.len() && w.len().is_multiple_of(16) && !w.is_empty());
    // SAFETY: `w` holds `x.len()` bytes (asserted), a non-zero multiple of 16.
    unsafe { dot_2x2_unchecked(w.as_ptr(), x, init) }
}

/// [`dot_2x2`] with the weights at `w`, without checks.
///
/// # Safety
/// `w` points to `x.len()` readable, 4-aligned bytes; `x.len()` is a non-zero multiple of 16
/// and `x` is 4-aligned.
#[inline(always)]
unsafe fn dot_2x2_unchecked(w: *const i8, x: &[i16], init: [i32; 4]) -> [i32; 4] {
    #[cfg(microarena_dsp)]
    {
        // SAFETY: the caller's contract is dot_2x2_dsp's.
        unsafe { dot_2x2_dsp(w, x, init) }
    }
    #[cfg(not(microarena_dsp))]
    {
        let mut acc = init;
        for (j, xq) in x.chunks_exact(4).enumerate() {
            // SAFETY: w[4j..4j + 4] is inside the x.len() bytes the caller vouches for.
            let [a0, a1, b0, b1] = unsafe { unpair_word(w.add(4 * j)) };
            let x = [xq[0], xq[1], xq[2], xq[3]].map(i32::from);
            // Pixel i's pair at xq[2i..].
            acc[0] += a0 * x[0] + a1 * x[1];
            acc[1] += a0 * x[2] + a1 * x[3];
            acc[2] += b0 * x[0] + b1 * x[1];
            acc[3] += b0 * x[2] + b1 * x[3];
        }
        acc
    }
}

/// The eight sums of a 4 × 2 tile, `init[2c + i] + Σ_k w[c][k] · x[i][k]` for channels
/// `c < 4` and pixels `i < 2`, with the weights at `w` laid out as [`pack_tiled_weights`]
/// packs a group of four channels and `x` as `im2col_pair` writes it.
///
/// # Safety
/// `w` points to `x.len()` readable, 4-aligned bytes; `x.len()` is a non-zero multiple of 16
/// and `x` is 4-aligned.
#[inline(always)]
unsafe fn dot_4x2_unchecked(w: *const i8, x: &[i16], init: [i32; 4]) -> [i32; 8] {
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
        // A build without AVX2 on a CPU with it (the `std` feature's run-time detection):
        // the same sums, the weights widened eight at a time.
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx2() {
            // SAFETY: the CPU has AVX2; the caller's contract is dot_4x2_avx2's.
            return unsafe { x86::dot_4x2_avx2(w, x, init) };
        }
        let mut acc = init;
        for (j, xq) in x.chunks_exact(4).enumerate() {
            let x = [xq[0], xq[1], xq[2], xq[3]].map(i32::from);
            for pair in 0..2 {
                // SAFETY: w[8j..8j + 8] is inside the x.len() bytes the caller vouches for.
                let [a0, a1, b0, b1] = unsafe { unpair_word(w.add(8 * j + 4 * pair)) };
                // Channels 2·pair and 2·pair + 1; pixel i's pair at xq[2i..].
                let c = 4 * pair;
                acc[c] += a0 * x[0] + a1 * x[1];
                acc[c + 1] += a0 * x[2] + a1 * x[3];
                acc[c + 2] += b0 * x[0] + b1 * x[1];
                acc[c + 3] += b0 * x[2] + b1 * x[3];
            }
        }
        acc
    }
}

/// [`dot_4x2_unchecked`] in passes of at most `PAIRED_CHUNK_STEPS` on Cortex-M: each pass
/// starts the second channels' sums at 0 (their paired sums then stay exact) and adds them
/// up; the first channels' sums carry on. Elsewhere the sums are exact as they are.
///
/// # Safety
/// As [`dot_4x2_unchecked`].
#[inline(always)]
unsafe fn dot_4x2_chunked(w: *const i8, x: &[i16], init: [i32; 4]) -> [i32; 8] {
    #[cfg(microarena_dsp)]
    {
        let [b0, b1, b2, b3] = init;
        let mut acc = [b0, b0, b1, b1, b2, b2, b3, b3];
        // A pass: 2·K values of x (two pixels a step), 4·K bytes of weights (four channels).
        for (k, xc) in x.chunks(2 * PAIRED_CHUNK_STEPS).enumerate() {
            let from = [acc[0], acc[1], 0, 0, acc[4], acc[5], 0, 0];
            // SAFETY: `xc` is a non-zero multiple of 16 values (x.len() is, and a full pass is
            // 512 of them); its weights are the caller's from byte 4·K·k on, inside them.
            let part = unsafe { dot_4x2_dsp(w.add(4 * PAIRED_CHUNK_STEPS * k), xc, from) };
            for (i, (a, p)) in acc.iter_mut().zip(part).enumerate() {
                *a = if i % 4 < 2 { p } else { a.wrapping_add(p) };
            }
        }
        acc
    }
    #[cfg(not(microarena_dsp))]
    {
        // SAFETY: the caller's contract.
        unsafe { dot_4x2_unchecked(w, x, init) }
    }
}

/// [`dot_2x2_unchecked`] in passes as [`dot_4x2_chunked`].
///
/// # Safety
/// As [`dot_2x2_unchecked`].
#[inline(always)]
unsafe fn dot_2x2_chunked(w: *const i8, x: &[i16], init: [i32; 4]) -> [i32; 4] {
    #[cfg(microarena_dsp)]
    {
        let mut acc = init;
        // A pass: 2·K values of x, 2·K bytes of weights (two channels).
        for (k, xc) in x.chunks(2 * PAIRED_CHUNK_STEPS).enumerate() {
            let from = [acc[0], acc[1], 0, 0];
            // SAFETY: as in dot_4x2_chunked, with 2·K bytes of weights a pass.
            let part = unsafe { dot_2x2_dsp(w.add(2 * PAIRED_CHUNK_STEPS * k), xc, from) };
            acc = [
                part[0],
                part[1],
                acc[2].wrapping_add(part[2]),
                acc[3].wrapping_add(part[3]),
            ];
        }
        acc
    }
    #[cfg(not(microarena_dsp))]
    {
        // SAFETY: the caller's contract.
        unsafe { dot_2x2_unchecked(w, x, init) }
    }
}

#[cfg(test)]
#[path = "tiled_i8_tests.rs"]
mod tiled_tests;
