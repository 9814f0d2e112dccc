//! Per-channel scale and shift (an unfolded BatchNormalization), and the root-mean-square
//! normalisation of rows (RmsNorm; a LayerNorm is one after its mean is subtracted).

use super::Activation;

/// The input is viewed as `outer × channels × inner`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleShift {
    /// Product of the axes before the channel axis.
    pub outer: usize,
    /// Channels (length of `scale` and `shift`).
    pub channels: usize,
    /// Product of the axes after the channel axis.
    pub inner: usize,
    /// Fused activation.
    pub act: Activation,
}

/// `out[o, c, i] = act(x[o, c, i] * scale[c] + shift[c])`.
pub fn scale_shift(
    p: &ScaleShift,
    input: &[f32],
    scale: &[f32],
    shift: &[f32],
    output: &mut [f32],
) {
    let n = p.outer * p.channels * p.inner;
    assert!(
        input.len() >= n
            && output.len() >= n
            && scale.len() >= p.channels
            && shift.len() >= p.channels
    );
    for (row, (o, x)) in output[..n]
        .chunks_exact_mut(p.inner)
        .zip(input[..n].chunks_exact(p.inner))
        .enumerate()
    {
        let c = row % p.channels;
        let (s, t) = (scale[c], shift[c]);
        for (o, &x) in o.iter_mut().zip(x) {
            *o = p.act.apply(x * s + t);
        }
    }
}

/// [`scale_shift`] with the output written over the input.
pub fn scale_shift_in_place(p: &ScaleShift, io: &mut [f32], scale: &[f32], shift: &[f32]) {
    let n = p.outer * p.channels * p.inner;
    assert!(io.len() >= n && scale.len() >= p.channels && shift.len() >= p.channels);
    for (row, x) in io[..n].chunks_exact_mut(p.inner).enumerate() {
        let c = row % p.channels;
        let (s, t) = (scale[c], shift[c]);
        for x in x {
            *x = p.act.apply(*x * s + t);
        }
    }
}

/// `x / sqrt(mean(x²) + eps)` over each of `rows` contiguous rows of `len` values: tract's
/// `RmsNorm`, which a LayerNorm (ONNX `LayerNormalization`, or spelled out as ReduceMean,
/// Sub, Pow, ReduceMean, Add, Sqrt, Div) becomes after its mean is subtracted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNorm {
    /// Rows normalised independently.
    pub rows: usize,
    /// Values per row (the normalised axis).
    pub len: usize,
    /// Added to the mean of squares.
    pub eps: f32,
    /// Fused activation.
    pub act: Activation,
}

/// One row's factor `1 / sqrt(mean(x²) + eps)`.
#[inline]
fn rms_factor(p: &RmsNorm, row: &[f32]) -> f32 {
    let squares: f32 = row.iter().map(|&x| x * x).sum();
    1.0 / libm::sqrtf(squares / p.len as f32 + p.eps)
}

/// See [`RmsNorm`].
pub fn rms_norm(p: &RmsNorm, input: &[f32], output: &mut [f32]) {
    let n = p.rows * p.len;
    assert!(input.len() >= n && output.len() >= n);
    if p.len == 0 {
        return;
    }
    for (o, x) in output[..n]
        .chunks_exact_mut(p.len)
        .zip(input[..n].chunks_exact(p.len))
    {
        let f = rms_factor(p, x);
        for (o, &x) in o.iter_mut().zip(x) {
            *o = p.act.apply(x * f);
        }
    }
}

/// [`rms_norm`] with the output written over the input.
pub fn rms_norm_in_place(p: &RmsNorm, io: &mut [f32]) {
    let n = p.rows * p.len;
    assert!(io.len() >= n);
    if p.len == 0 {
        return;
    }
    for x in io[..n].chunks_exact_mut(p.len) {
        let f = rms_factor(p, x);
        for x in x {
            *x = p.act.apply(*x * f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_matches_out_of_place() {
        let p = ScaleShift {
            outer: 2,
            channels: 3,
            inner: 5,
            act: Activation::RELU,
        };
        let x: [f32; 30] = core::array::from_fn(|i| (i as f32 * 0.7).sin());
        let (scale, shift) = ([1.5, -0.5, 2.0], [0.1, 0.2, -0.3]);
        let mut want = [0.0; 30];
        scale_shift(&p, &x, &scale, &shift, &mut want);
        let mut io = x;
        scale_shift_in_place(&p, &mut io, &scale, &shift);
        assert_eq!(io, want);
    }

    #[test]
    fn per_channel() {
        let p = ScaleShift {
            outer: 1,
            channels: 2,
            inner: 2,
            act: Activation::RELU,
        };
        let mut out = [0.0; 4];
        scale_shift(
            &p,
            &[1.0, -1.0, 2.0, 3.0],
            &[2.0, -1.0],
            &[0.5, 1.0],
            &mut out,
        );
        assert_eq!(out, [2.5, 0.0, 0.0, 0.0]);
    }

    #[test]
    // libm's `sqrtf` is inline assembly on x86-64, which Miri cannot run; the kernel has no
    // `unsafe` for Miri to check.
    #[cfg_attr(miri, ignore = "libm's sqrtf is inline assembly")]
    fn rms_norm_rows() {
        let p = RmsNorm {
            rows: 2,
            len: 4,
            eps: 1e-5,
            act: Activation::Identity,
        };
        let x = [1.0, 2.0, 3.0, 4.0, -2.0, 0.0, 2.0, 0.0];
        let mut out = [0.0; 8];
        rms_norm(&p, &x, &mut out);
        // Row 0: sqrt(30 / 4 + 1e-5); row 1: sqrt(8 / 4 + 1e-5).
        let (r0, r1) = (libm::sqrtf(7.5 + 1e-5), libm::sqrtf(2.0 + 1e-5));
        let want = [
            1.0 / r0,
            2.0 / r0,
            3.0 / r0,
            4.0 / r0,
            -2.0 / r1,
            0.0,
            2.0 / r1,
            0.0,
        ];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() <= 1e-6 * w.abs(), "{out:?} vs {want:?}");
        }
        let mut io = x;
        rms_norm_in_place(&p, &mut io);
        assert_eq!(io, out);
    }
}
