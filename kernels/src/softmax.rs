//! Softmax and LogSoftmax along one axis.

/// The input is viewed as `outer × len × inner`; the softmax runs along `len`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// Product of the axes before the softmax axis.
    pub outer: usize,
    /// Length of the softmax axis.
    pub len: usize,
    /// Product of the axes after it.
    pub inner: usize,
    /// LogSoftmax instead of Softmax.
    pub log: bool,
}

/// Numerically stable (max-subtracted) softmax.
pub fn softmax(p: &Softmax, input: &[f32], output: &mut [f32]) {
    assert!(input.len() >= p.outer * p.len * p.inner && output.len() >= p.outer * p.len * p.inner);
    for o in 0..p.outer {
        for i in 0..p.inner {
            let at = |l: usize| (o * p.len + l) * p.inner + i;
            let mut max = f32::NEG_INFINITY;
            for l in 0..p.len {
                max = max.max(input[at(l)]);
            }
            let mut sum = 0.0;
            for l in 0..p.len {
                let e = libm::expf(input[at(l)] - max);
                sum += e;
                if !p.log {
                    output[at(l)] = e;
                }
            }
            if p.log {
                let lse = libm::logf(sum);
                for l in 0..p.len {
                    output[at(l)] = input[at(l)] - max - lse;
                }
            } else {
                let inv = 1.0 / sum;
                for l in 0..p.len {
                    output[at(l)] *= inv;
                }
            }
        }
    }
}

/// [`softmax`] with the output written over the input: every element is read before it is
/// overwritten (the max and the sum read all of a row first; each write reads its own index).
pub fn softmax_in_place(p: &Softmax, io: &mut [f32]) {
    assert!(io.len() >= p.outer * p.len * p.inner);
    for o in 0..p.outer {
        for i in 0..p.inner {
            let at = |l: usize| (o * p.len + l) * p.inner + i;
            let mut max = f32::NEG_INFINITY;
            for l in 0..p.len {
                max = max.max(io[at(l)]);
            }
            let mut sum = 0.0;
            for l in 0..p.len {
                let e = libm::expf(io[at(l)] - max);
                sum += e;
                if !p.log {
                    io[at(l)] = e;
                }
            }
            if p.log {
                let lse = libm::logf(sum);
                for l in 0..p.len {
                    io[at(l)] = io[at(l)] - max - lse;
                }
            } else {
                let inv = 1.0 / sum;
                for l in 0..p.len {
                    io[at(l)] *= inv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_to_one_and_log_agrees() {
        let x = [1.0f32, 2.0, 3.0, -1.0];
        let mut s = [0.0; 4];
        let mut l = [0.0; 4];
        let p = Softmax {
            outer: 1,
            len: 4,
            inner: 1,
            log: false,
        };
        softmax(&p, &x, &mut s);
        softmax(&Softmax { log: true, ..p }, &x, &mut l);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for i in 0..4 {
            assert!((libm::logf(s[i]) - l[i]).abs() < 1e-5);
        }
    }

    #[test]
    fn in_place_matches_out_of_place() {
        let x: [f32; 24] = core::array::from_fn(|i| (i as f32 * 0.61).sin() * 4.0);
        for log in [false, true] {
            // softmax over the middle axis of 2x3x4: strided rows.
            let p = Softmax {
                outer: 2,
                len: 3,
                inner: 4,
                log,
            };
            let mut want = [0.0; 24];
            softmax(&p, &x, &mut want);
            let mut io = x;
            softmax_in_place(&p, &mut io);
            assert_eq!(io, want, "log={log}");
        }
    }
}

/// Quantisation of an int8 softmax (see [`softmax_i8`]): a table of `exp(−d · in_scale)` in
/// Q16 for every int8 distance `d` below the row maximum (computed at compile time, so the
/// device does no float), and the output scale folded into a Q16 multiplier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxI8 {
    /// Geometry (its `log` must be false).
    pub geom: Softmax,
    /// `exp(−d · in_scale) · 2^16`, rounded, for `d` in 0..=255.
    pub exp_q16: [u32; 256],
    /// `2^16 / out_scale`, rounded.
    pub inv_out_scale_q16: u64,
    /// Output zero point.
    pub out_zero: i32,
}

impl SoftmaxI8 {
    /// The parameters for an int8 input of scale `in_scale` (its zero point cancels out) and
    /// an output of `(out_scale, out_zero)` (onnxruntime uses 1/256 and −128).
    pub fn new(geom: Softmax, in_scale: f32, out: (f32, i32)) -> SoftmaxI8 {
        assert!(!geom.log, "int8 log-softmax is not supported");
        SoftmaxI8 {
            geom,
            exp_q16: core::array::from_fn(|d| {
                let e = libm::exp(-(d as f64) * f64::from(in_scale));
                (e * 65536.0 + 0.5) as u32
            }),
            inv_out_scale_q16: (65536.0 / f64::from(out.0) + 0.5) as u64,
            out_zero: out.1,
        }
    }
}

/// Int8 softmax with integer arithmetic only: per row, `e_i = exp_q16[max − x_i]`, then
/// `out_i = round(e_i / Σ e · 1 / out_scale) + out_zero`, saturated to int8.
pub fn softmax_i8(p: &SoftmaxI8, input: &[i8], output: &mut [i8]) {
    let g = &p.geom;
    assert!(input.len() >= g.outer * g.len * g.inner && output.len() >= g.outer * g.len * g.inner);
    for o in 0..g.outer {
        for i in 0..g.inner {
            let at = |l: usize| (o * g.len + l) * g.inner + i;
            let mut max = i8::MIN;
            for l in 0..g.len {
                max = max.max(input[at(l)]);
            }
            let e = |l: usize| {
                u64::from(p.exp_q16[(i32::from(max) - i32::from(input[at(l)])) as usize])
            };
            let sum: u64 = (0..g.len).map(e).sum();
            for l in 0..g.len {
                // e / sum ≤ 1, times 2^16 / out_scale: fits u64 for any int8 row.
                let q = (e(l) * p.inv_out_scale_q16 + sum / 2) / sum;
                let q = (q + (1 << 15)) >> 16;
                output[at(l)] = (q as i64 + i64::from(p.out_zero)).clamp(-128, 127) as i8;
            }
        }
    }
}

#[cfg(test)]
mod i8_tests {
    use super::*;

    /// Against dequantise → f32 softmax → quantise (onnxruntime's 1/256, −128 output).
    #[test]
    fn softmax_i8_matches_float() {
        for (in_scale, in_zero) in [(0.05f32, 3), (0.2, -20), (0.01, 0)] {
            let geom = Softmax {
                outer: 2,
                len: 10,
                inner: 1,
                log: false,
            };
            let p = SoftmaxI8::new(geom, in_scale, (1.0 / 256.0, -128));
            let x: [i8; 20] = core::array::from_fn(|i| ((i * 89 + 31) % 256) as u8 as i8);
            let xf: [f32; 20] =
                core::array::from_fn(|i| (i32::from(x[i]) - in_zero) as f32 * in_scale);
            let mut y = [0i8; 20];
            let mut yf = [0.0f32; 20];
            softmax_i8(&p, &x, &mut y);
            softmax(&geom, &xf, &mut yf);
            for i in 0..20 {
                let want = ((f64::from(yf[i]) * 256.0 + 0.5) as i64 - 128).clamp(-128, 127);
                assert!(
                    (i64::from(y[i]) - want).abs() <= 1,
                    "{in_scale} [{i}]: {} vs {want}",
                    y[i]
                );
            }
        }
    }
}
