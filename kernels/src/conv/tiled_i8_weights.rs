//! The weights of the tiled int8 convolution ([`conv2d_i8_tiled`]): one byte each, channel
//! pairs in halfwords ([`pack_tiled_weights`]), when the Cortex-M pair sums are exact in one
//! pass ([`tiled_weights_fit`]) or in passes ([`conv2d_i8_tiled_chunked`]), and their decoding
//! on the portable paths.

use super::*;

/// Bytes of the packed weights of [`conv2d_i8_tiled`]: one per weight, the output
/// channels rounded up to even and the reduction steps to [`tiled_depth`].
pub const fn tiled_weights_len(g: &Conv2d) -> usize {
    g.out_c.next_multiple_of(2) * tiled_depth(g)
}

/// Largest `|b + Σ x·w|` of a pair's second channel that [`conv2d_i8_tiled`]'s paired sums
/// recover exactly (`(raw − first) >> 8` of a 32-bit sum: below 2^23).
const PAIRED_SUM_LIMIT: i64 = 1 << 23;

/// True when [`pack_tiled_weights`] can pair the weights of every two output channels
/// `(2i, 2i + 1)` into one halfword per step, `w[2i][k] + 256 · w[2i + 1][k]`, and the
/// Cortex-M kernel recovers the second channel's sums exactly from the paired ones: no step
/// where the second weight is −128 and the first negative (the halfword would leave the
/// `i16` range), and `|bias| + max|x − input_zero| · Σ_k |w[2i + 1][k]|` below 2^23 for the
/// second channel. TFLite's and onnxruntime's symmetric int8 weights (−127..=127) always
/// pass the first; the second holds below about 32,000 for `Σ|w|` (ResNet-8's largest
/// layer, 576 steps: 22,000). The compiler keeps the reference kernel where this is false.
pub fn tiled_weights_fit(
    g: &Conv2d,
    weights: &[i8],
    bias: Option<&[i32]>,
    input_zero: i32,
) -> bool {
    let steps = g.in_c * g.window.k_h * g.window.k_w;
    assert!(weights.len() >= g.out_c * steps && bias.is_none_or(|b| b.len() >= g.out_c));
    let max_x = i64::from((-128 - input_zero).abs().max((127 - input_zero).abs()));
    tiled_weights_pair(g, weights)
        && (1..g.out_c).step_by(2).all(|c| {
            let second = &weights[c * steps..][..steps];
            let sum: i64 = second.iter().map(|&b| i64::from(b).abs()).sum();
            let b = bias.map_or(0, |b| i64::from(b[c]).abs());
            b + max_x * sum < PAIRED_SUM_LIMIT
        })
}

/// True when [`pack_tiled_weights`] can pack `weights`: no step where a pair's second weight
/// is −128 and its first negative (the halfword would leave the `i16` range). Where this
/// holds and [`tiled_weights_fit`] does not, [`conv2d_i8_tiled_chunked`] is exact.
pub fn tiled_weights_pair(g: &Conv2d, weights: &[i8]) -> bool {
    let steps = g.in_c * g.window.k_h * g.window.k_w;
    assert!(weights.len() >= g.out_c * steps);
    (1..g.out_c).step_by(2).all(|c| {
        let (first, second) = (
            &weights[(c - 1) * steps..][..steps],
            &weights[c * steps..][..steps],
        );
        first
            .iter()
            .zip(second)
            .all(|(&a, &b)| !(b == -128 && a < 0))
    })
}

/// Reduction steps of one Cortex-M pass of [`conv2d_i8_tiled_chunked`]: a second channel's
/// sum over them is below 2^23 in magnitude whatever the weights (256 · 255 · 127 =
/// 8,290,560), so it is recovered exactly, and the passes' sums are added up.
#[cfg_attr(not(microarena_dsp), allow(dead_code))]
pub(super) const PAIRED_CHUNK_STEPS: usize = 256;

/// The weights of a dense int8 convolution (`weights` OIHW) as [`conv2d_i8_tiled`] reads
/// them, one byte per weight: reduction steps in the order tap `(ky, kx)` then input channel
/// (channels padded to even, unless the convolution is [`flattened`]: [`tiled_depth`]);
/// output channels in groups of four (`out_c / 4` of them), then the remaining two or three
/// in pairs (an odd last one with a zero partner). For each group and each pair of steps
/// `(k, k+1)`, each channel pair `(a, b)` of the group in turn gives one 32-bit word: the
/// halfwords `w[a][k] + 256·w[b][k]` and `w[a][k+1] + 256·w[b][k+1]`. `SMLAD` of that word
/// sums `Σ x·w[a] + 256·Σ x·w[b]`; `SXTB16` of it gives `w[a][k], w[a][k+1]` (its low bytes,
/// sign-extended), whose `SMLAD` sums channel `a`: the difference is channel `b`'s sum
/// times 256. So 4 weights are one word, unpacked by one `SXTB16` (CMSIS-NN's
/// `read_and_pad` takes two). Padded to [`tiled_depth`] steps with zeros. The compiler does
/// this once, at build time, where [`tiled_weights_fit`] holds.
///
/// # Panics
/// If a halfword leaves the `i16` range (see [`tiled_weights_fit`]).
pub fn pack_tiled_weights<'a>(g: &Conv2d, weights: &'a [i8]) -> impl Iterator<Item = i8> + 'a {
    let g = *g;
    let taps = g.window.k_h * g.window.k_w;
    let ic2 = tiled_channel_steps(&g);
    let depth = tiled_depth(&g);
    // Step j: tap j / ic2, input channel j % ic2; OIHW index (c, ic, tap).
    let at = move |c: usize, j: usize| -> i32 {
        let (tap, ic) = (j / ic2, j % ic2);
        if c < g.out_c && tap < taps && ic < g.in_c {
            i32::from(weights[(c * g.in_c + ic) * taps + tap])
        } else {
            0
        }
    };
    // Channels a and a + 1 at step j, as one little-endian halfword.
    let half = move |a: usize, j: usize| {
        let h = at(a, j) + 256 * at(a + 1, j);
        i16::try_from(h)
            .expect("paired weights fit 16 bits (tiled_weights_fit)")
            .to_le_bytes()
            .map(|b| b as i8)
    };
    let quads = g.out_c / 4;
    // Groups: (first channel, channels) — the quads, then pairs.
    let groups = (0..quads)
        .map(|q| (4 * q, 4))
        .chain((4 * quads..g.out_c).step_by(2).map(|c| (c, 2)));
    groups.flat_map(move |(c0, n)| {
        (0..depth / 2).flat_map(move |kp| {
            (c0..c0 + n).step_by(2).flat_map(move |a| {
                let ([l0, h0], [l1, h1]) = (half(a, 2 * kp), half(a, 2 * kp + 1));
                [l0, h0, l1, h1]
            })
        })
    })
}

/// Channel `a`'s and channel `b`'s weights of one packed halfword `w[a] + 256·w[b]` (see
/// [`pack_tiled_weights`]).
#[cfg_attr(microarena_dsp, allow(dead_code))]
#[inline(always)]
pub(crate) fn unpair(h: i16) -> (i32, i32) {
    let a = i32::from(h as i8);
    (a, (i32::from(h) - a) >> 8)
}

/// The four weights of one packed word at `w`: channel `a`'s two steps, channel `b`'s two.
///
/// # Safety
/// `w` points to 4 readable bytes.
#[cfg_attr(microarena_dsp, allow(dead_code))]
#[inline(always)]
pub(super) unsafe fn unpair_word(w: *const i8) -> [i32; 4] {
    // SAFETY: the caller's contract.
    let [l0, h0, l1, h1] = unsafe { core::ptr::read_unaligned(w as *const [u8; 4]) };
    let (a0, b0) = unpair(i16::from_le_bytes([l0, h0]));
    let (a1, b1) = unpair(i16::from_le_bytes([l1, h1]));
    [a0, a1, b0, b1]
}
