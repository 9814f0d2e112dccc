//! Reductions over one contiguous group of axes (global pools, ReduceMean, ...).

use super::Activation;

/// The reduction applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceKind {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
    /// Mean of squares.
    MeanOfSquares,
}

/// The input is viewed as `outer × len × inner`; the output is `outer × inner`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reduce {
    /// Product of the axes before the reduced ones.
    pub outer: usize,
    /// Product of the reduced axes.
    pub len: usize,
    /// Product of the axes after the reduced ones.
    pub inner: usize,
    /// The reduction.
    pub kind: ReduceKind,
    /// Fused activation.
    pub act: Activation,
}

/// Reference reduction (see [`Reduce`]).
pub fn reduce(p: &Reduce, input: &[f32], output: &mut [f32]) {
    assert!(input.len() >= p.outer * p.len * p.inner && output.len() >= p.outer * p.inner);
    let init = match p.kind {
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::MeanOfSquares => 0.0,
        ReduceKind::Max => f32::NEG_INFINITY,
        ReduceKind::Min => f32::INFINITY,
        ReduceKind::Prod => 1.0,
    };
    for o in 0..p.outer {
        let out = &mut output[o * p.inner..(o + 1) * p.inner];
        out.fill(init);
        for l in 0..p.len {
            let src = &input[(o * p.len + l) * p.inner..(o * p.len + l + 1) * p.inner];
            for (acc, &x) in out.iter_mut().zip(src) {
                *acc = match p.kind {
                    ReduceKind::Sum | ReduceKind::Mean => *acc + x,
                    ReduceKind::MeanOfSquares => *acc + x * x,
                    ReduceKind::Max => {
                        if x > *acc || x.is_nan() {
                            x
                        } else {
                            *acc
                        }
                    }
                    ReduceKind::Min => {
                        if x < *acc || x.is_nan() {
                            x
                        } else {
                            *acc
                        }
                    }
                    ReduceKind::Prod => *acc * x,
                };
            }
        }
        if matches!(p.kind, ReduceKind::Mean | ReduceKind::MeanOfSquares) {
            let inv = 1.0 / p.len as f32;
            for acc in out.iter_mut() {
                *acc *= inv;
            }
        }
        p.act.apply_slice(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middle_axis() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 1 x 3 x 2
        let mut out = [0.0; 2];
        let p = Reduce {
            outer: 1,
            len: 3,
            inner: 2,
            kind: ReduceKind::Mean,
            act: Activation::Identity,
        };
        reduce(&p, &x, &mut out);
        assert_eq!(out, [3.0, 4.0]);
        reduce(
            &Reduce {
                kind: ReduceKind::Max,
                ..p
            },
            &x,
            &mut out,
        );
        assert_eq!(out, [5.0, 6.0]);
    }
}
