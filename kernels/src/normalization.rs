//! Per-channel scale and shift (an unfolded BatchNormalization).

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
}
