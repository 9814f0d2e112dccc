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

/// A LayerNorm between int8 tensors (a QDQ model's `LayerNormalization`): each of `rows`
/// rows of `len` values is normalised, `(x − mean) / sqrt(var + eps)` in the input's real
/// scale, then scaled and shifted per value and quantized, ties to even, into
/// `[min, max]` (a fused ReLU narrows it).
///
/// The sums are exact integers (`Σx`, `Σx²`, and `n·Σx² − (Σx)²` in 64 bits), so only the
/// normalisation itself is float: outputs are within one step of a float LayerNorm of the
/// dequantized input. The input's zero point cancels with the mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormI8 {
    /// Rows normalised independently.
    pub rows: usize,
    /// Values per row (at most 65,536: the squares' sum stays in `i32`).
    pub len: usize,
    /// Scale of the int8 input.
    pub in_scale: f32,
    /// Added to the variance (in real units).
    pub eps: f32,
    /// Lowest output value.
    pub min: i8,
    /// Highest output value.
    pub max: i8,
}

/// Largest row [`layer_norm_i8`] takes: `len · 128²` fits in `i32`.
pub const LAYER_NORM_I8_MAX_LEN: usize = 1 << 16;

impl LayerNormI8 {
    /// One row's mean (in input steps) and factor `in_scale / sqrt(var + eps)`.
    #[inline]
    fn row_stats(&self, row: &[i8]) -> (f32, f32) {
        let (mut sum, mut squares) = (0i32, 0i32);
        for &x in row {
            let x = i32::from(x);
            sum += x;
            squares += x * x;
        }
        let n = self.len as i64;
        // n² · variance in steps², exactly.
        let spread = n * i64::from(squares) - i64::from(sum) * i64::from(sum);
        let var_steps = spread as f32 / (n * n) as f32;
        let s = self.in_scale;
        (
            sum as f32 / self.len as f32,
            s / libm::sqrtf(s * s * var_steps + self.eps),
        )
    }

    #[inline]
    fn quantize(&self, x: i8, mean: f32, factor: f32, gamma: f32, beta: f32) -> i8 {
        let y = (f32::from(x) - mean) * factor * gamma + beta;
        let r = crate::quant::round_ties_even(y);
        r.clamp(f32::from(self.min), f32::from(self.max)) as i8
    }
}

/// See [`LayerNormI8`]. `gamma` and `beta` hold one value per element of a row, in the
/// output's scale: `gamma[i] = γ[i] / out_scale`, `beta[i] = β[i] / out_scale + out_zero`.
pub fn layer_norm_i8(
    p: &LayerNormI8,
    input: &[i8],
    gamma: &[f32],
    beta: &[f32],
    output: &mut [i8],
) {
    let n = p.rows * p.len;
    assert!(input.len() >= n && output.len() >= n);
    assert!(gamma.len() >= p.len && beta.len() >= p.len && p.len <= LAYER_NORM_I8_MAX_LEN);
    if p.len == 0 {
        return;
    }
    for (o, x) in output[..n]
        .chunks_exact_mut(p.len)
        .zip(input[..n].chunks_exact(p.len))
    {
        let (mean, factor) = p.row_stats(x);
        for (((o, &x), &g), &b) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = p.quantize(x, mean, factor, g, b);
        }
    }
}

/// [`layer_norm_i8`] with the output written over the input.
pub fn layer_norm_i8_in_place(p: &LayerNormI8, io: &mut [i8], gamma: &[f32], beta: &[f32]) {
    let n = p.rows * p.len;
    assert!(io.len() >= n);
    assert!(gamma.len() >= p.len && beta.len() >= p.len && p.len <= LAYER_NORM_I8_MAX_LEN);
    if p.len == 0 {
        return;
    }
    for x in io[..n].chunks_exact_mut(p.len) {
        let (mean, factor) = p.row_stats(x);
        for ((x, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
            *x = p.quantize(*x, mean, factor, g, b);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// Against a float LayerNorm of the dequantized input (f64): within one step, and the
    /// in-place variant the same bytes.
    #[test]
    #[cfg_attr(miri, ignore = "libm's sqrtf is inline assembly")]
    fn int8_layer_norm_is_within_a_step_of_the_float_one() {
        let (rows, len) = (5, 37);
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 16) as i32
        };
        let x: std::vec::Vec<i8> = (0..rows * len)
            .map(|_| (next() % 256 - 128) as i8)
            .collect();
        let (in_scale, in_zero, out_scale, out_zero, eps) = (0.05f32, 3i32, 0.03f32, -5i32, 1e-5);
        let gamma_real: std::vec::Vec<f32> = (0..len).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
        let beta_real: std::vec::Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
        let gamma: std::vec::Vec<f32> = gamma_real.iter().map(|g| g / out_scale).collect();
        let beta: std::vec::Vec<f32> = beta_real
            .iter()
            .map(|b| b / out_scale + out_zero as f32)
            .collect();
        let p = LayerNormI8 {
            rows,
            len,
            in_scale,
            eps,
            min: -128,
            max: 127,
        };
        let mut y = std::vec![0i8; rows * len];
        layer_norm_i8(&p, &x, &gamma, &beta, &mut y);
        let mut io = x.clone();
        layer_norm_i8_in_place(&p, &mut io, &gamma, &beta);
        assert_eq!(io, y);
        let mut exact_steps = 0;
        for r in 0..rows {
            let row: std::vec::Vec<f64> = x[r * len..(r + 1) * len]
                .iter()
                .map(|&v| (f64::from(v) - f64::from(in_zero)) * f64::from(in_scale))
                .collect();
            let mean = row.iter().sum::<f64>() / len as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
            for i in 0..len {
                let real = (row[i] - mean) / (var + f64::from(eps)).sqrt()
                    * f64::from(gamma_real[i])
                    + f64::from(beta_real[i]);
                let want = ((real / f64::from(out_scale)).round_ties_even() + f64::from(out_zero))
                    .clamp(-128.0, 127.0);
                let got = f64::from(y[r * len + i]);
                assert!(
                    (got - want).abs() <= 1.0,
                    "row {r} [{i}]: {got} against {want}"
                );
                exact_steps += usize::from(got == want);
            }
        }
        // Nearly all exact: a step off only where the real value is within float error of
        // a half step.
        assert!(
            exact_steps * 100 >= rows * len * 98,
            "{exact_steps} of {}",
            rows * len
        );
    }

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
