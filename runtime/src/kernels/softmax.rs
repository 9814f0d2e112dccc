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
