//! Data movement: strided copies (Transpose, slices, downsampling), Pad and Concat.

use super::MAX_RANK;

/// Copies a strided view of the input into a contiguous output of `shape[..rank]`: output
/// element at multi-index `i` is `input[offset + sum(i[k] * in_strides[k])]`. A transpose
/// is a permutation of the strides, a strided slice a scaling of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedCopy {
    /// Number of meaningful entries in the arrays below.
    pub rank: usize,
    /// Output shape.
    pub shape: [usize; MAX_RANK],
    /// Input element stride for each output axis.
    pub in_strides: [usize; MAX_RANK],
    /// Input element offset of output element 0.
    pub offset: usize,
}

/// See [`StridedCopy`]; any element type (f32 and int8 tensors alike).
pub fn strided_copy<T: Copy>(p: &StridedCopy, input: &[T], output: &mut [T]) {
    let len: usize = p.shape[..p.rank].iter().product();
    assert!(output.len() >= len);
    if len == 0 {
        return;
    }
    if p.rank == 0 {
        output[0] = input[p.offset];
        return;
    }
    let r = p.rank;
    let inner = p.shape[r - 1];
    let s = p.in_strides[r - 1];
    let mut idx = [0usize; MAX_RANK];
    for row in output[..len].chunks_exact_mut(inner) {
        let base = p.offset + (0..r - 1).map(|i| idx[i] * p.in_strides[i]).sum::<usize>();
        if s == 1 {
            row.copy_from_slice(&input[base..base + inner]);
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = input[base + j * s];
            }
        }
        for i in (0..r - 1).rev() {
            idx[i] += 1;
            if idx[i] < p.shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

/// What padding holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// [`Pad::value`] everywhere outside the input.
    Constant,
    /// The input mirrored at its edges, the edge itself not repeated (`[1 2 3]` padded by 2
    /// on each side: `[3 2 1 2 3 2 1]`).
    Reflect,
    /// The edge values repeated (`[1 1 1 2 3 3 3]`).
    Edge,
}

/// Padding of any rank: constant, reflected or repeated edges.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pad {
    /// Number of meaningful entries in the arrays below.
    pub rank: usize,
    /// Input shape.
    pub in_shape: [usize; MAX_RANK],
    /// Elements added before the input along each axis.
    pub before: [usize; MAX_RANK],
    /// Elements added after the input along each axis.
    pub after: [usize; MAX_RANK],
    /// Fill value (constant mode).
    pub value: f32,
    /// What the padding holds.
    pub mode: PadMode,
}

/// Where output coordinate `o` of an axis of `n` input elements with `before` padding reads
/// from, in reflect or edge mode (`n > 0`; reflection needs `before, after < n`).
#[inline]
fn source(o: usize, before: usize, n: usize, mode: PadMode) -> usize {
    let i = o as isize - before as isize;
    let last = n as isize - 1;
    let j = match mode {
        PadMode::Edge | PadMode::Constant => i.clamp(0, last),
        PadMode::Reflect if i < 0 => -i,
        PadMode::Reflect if i > last => 2 * last - i,
        PadMode::Reflect => i,
    };
    j.clamp(0, last) as usize
}

/// See [`Pad`].
pub fn pad(p: &Pad, input: &[f32], output: &mut [f32]) {
    if p.mode != PadMode::Constant {
        return pad_from_input(p, input, output);
    }
    let r = p.rank;
    let mut out_shape = [0usize; MAX_RANK];
    for (i, o) in out_shape.iter_mut().enumerate().take(r) {
        *o = p.before[i] + p.in_shape[i] + p.after[i];
    }
    let out_len: usize = out_shape[..r].iter().product();
    let in_len: usize = p.in_shape[..r].iter().product();
    assert!(output.len() >= out_len && input.len() >= in_len);
    output[..out_len].fill(p.value);
    if in_len == 0 {
        return;
    }
    if r == 0 {
        output[0] = input[0];
        return;
    }
    // output strides
    let mut os = [0usize; MAX_RANK];
    let mut acc = 1;
    for i in (0..r).rev() {
        os[i] = acc;
        acc *= out_shape[i];
    }
    let inner = p.in_shape[r - 1];
    let mut idx = [0usize; MAX_RANK];
    for row in input[..in_len].chunks_exact(inner) {
        let base: usize = (0..r).map(|i| (idx[i] + p.before[i]) * os[i]).sum();
        output[base..base + inner].copy_from_slice(row);
        for i in (0..r - 1).rev() {
            idx[i] += 1;
            if idx[i] < p.in_shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

/// Reflect and edge padding: every output element copies the input element its
/// coordinates map to, axis by axis (see [`source`]).
fn pad_from_input(p: &Pad, input: &[f32], output: &mut [f32]) {
    let r = p.rank;
    let mut out_shape = [0usize; MAX_RANK];
    for (i, o) in out_shape.iter_mut().enumerate().take(r) {
        *o = p.before[i] + p.in_shape[i] + p.after[i];
    }
    let out_len: usize = out_shape[..r].iter().product();
    let in_len: usize = p.in_shape[..r].iter().product();
    assert!(output.len() >= out_len && input.len() >= in_len && in_len > 0);
    let mut is = [0usize; MAX_RANK];
    let mut acc = 1;
    for i in (0..r).rev() {
        is[i] = acc;
        acc *= p.in_shape[i];
    }
    let mut idx = [0usize; MAX_RANK];
    for o in output[..out_len].iter_mut() {
        let at: usize = (0..r)
            .map(|i| source(idx[i], p.before[i], p.in_shape[i], p.mode) * is[i])
            .sum();
        *o = input[at];
        for i in (0..r).rev() {
            idx[i] += 1;
            if idx[i] < out_shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

/// One input of a concatenation: the input is `outer × part` and lands in an output of
/// `outer × total` at column `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatPart {
    /// Product of the axes before the concat axis.
    pub outer: usize,
    /// Elements per outer index in this input (concat axis × inner axes).
    pub part: usize,
    /// Elements per outer index in the output.
    pub total: usize,
    /// Where this input starts within each output row.
    pub offset: usize,
}

/// See [`ConcatPart`]; any element type.
pub fn concat_part<T: Copy>(p: &ConcatPart, input: &[T], output: &mut [T]) {
    assert!(input.len() >= p.outer * p.part && output.len() >= p.outer * p.total);
    assert!(p.offset + p.part <= p.total);
    for o in 0..p.outer {
        output[o * p.total + p.offset..o * p.total + p.offset + p.part]
            .copy_from_slice(&input[o * p.part..(o + 1) * p.part]);
    }
}

/// A channels-last array (`[batch][plane][channels]`, NHWC) into the channels-first layout
/// (`[batch][channels][plane]`, NCHW) the kernels take: what `run` does with a TFLite
/// model's input while copying it into the arena.
///
/// ```
/// use microarena_kernels::shape::channels_last_to_first;
/// let nhwc = [0i8, 10, 1, 11, 2, 12];
/// let mut nchw = [0i8; 6];
/// channels_last_to_first(&nhwc, &mut nchw, 2, 3);
/// assert_eq!(nchw, [0, 1, 2, 10, 11, 12]);
/// ```
///
/// # Panics
/// If the lengths differ or are not whole images of `channels · plane` elements.
pub fn channels_last_to_first<T: Copy>(
    input: &[T],
    output: &mut [T],
    channels: usize,
    plane: usize,
) {
    let image = channels * plane;
    assert!(input.len() == output.len() && image > 0 && input.len().is_multiple_of(image));
    for (src, dst) in input
        .chunks_exact(image)
        .zip(output.chunks_exact_mut(image))
    {
        for (c, out) in dst.chunks_exact_mut(plane).enumerate() {
            for (px, o) in out.iter_mut().enumerate() {
                *o = src[px * channels + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_as_strided_copy() {
        // 2x3 -> 3x2
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = StridedCopy {
            rank: 2,
            shape: [3, 2, 0, 0, 0, 0],
            in_strides: [1, 3, 0, 0, 0, 0],
            offset: 0,
        };
        let mut out = [0.0; 6];
        strided_copy(&p, &x, &mut out);
        assert_eq!(out, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn pad_2d() {
        let p = Pad {
            rank: 2,
            in_shape: [1, 2, 0, 0, 0, 0],
            before: [1, 0, 0, 0, 0, 0],
            after: [0, 1, 0, 0, 0, 0],
            value: 9.0,
            mode: PadMode::Constant,
        };
        let mut out = [0.0; 6];
        pad(&p, &[1.0, 2.0], &mut out);
        assert_eq!(out, [9.0, 9.0, 9.0, 1.0, 2.0, 9.0]);
    }

    #[test]
    fn pad_reflect_and_edge() {
        let mut p = Pad {
            rank: 1,
            in_shape: [3, 0, 0, 0, 0, 0],
            before: [2, 0, 0, 0, 0, 0],
            after: [2, 0, 0, 0, 0, 0],
            value: 0.0,
            mode: PadMode::Reflect,
        };
        let mut out = [0.0; 7];
        pad(&p, &[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        p.mode = PadMode::Edge;
        pad(&p, &[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
        // 2-D: rows reflected, columns repeated at the edge alike per axis.
        let p = Pad {
            rank: 2,
            in_shape: [2, 2, 0, 0, 0, 0],
            before: [1, 0, 0, 0, 0, 0],
            after: [0, 1, 0, 0, 0, 0],
            value: 0.0,
            mode: PadMode::Reflect,
        };
        let mut out = [0.0; 9];
        pad(&p, &[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [3.0, 4.0, 3.0, 1.0, 2.0, 1.0, 3.0, 4.0, 3.0]);
    }

    #[test]
    fn concat_two_parts() {
        let mut out = [0.0; 6];
        concat_part(
            &ConcatPart {
                outer: 2,
                part: 1,
                total: 3,
                offset: 0,
            },
            &[1.0, 2.0],
            &mut out,
        );
        concat_part(
            &ConcatPart {
                outer: 2,
                part: 2,
                total: 3,
                offset: 1,
            },
            &[3.0, 4.0, 5.0, 6.0],
            &mut out,
        );
        assert_eq!(out, [1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    }
}
