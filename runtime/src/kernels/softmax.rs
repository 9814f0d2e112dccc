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

/// Numerically stable (max-subtracted) softmax; `output` may be `input` copied (no overlap).
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
}
