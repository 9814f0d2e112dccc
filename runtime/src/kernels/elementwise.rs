//! Binary elementwise ops with numpy broadcasting (Add, Sub, Mul, Div, Max, Min, Pow, PRelu).

use super::{Activation, MAX_RANK};

/// The binary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)`
    Max,
    /// `min(a, b)`
    Min,
    /// `a ^ b`
    Pow,
    /// `a` if `a >= 0`, else `a * b` (ONNX PRelu with slope `b`).
    PRelu,
}

impl BinaryOp {
    /// Applies the function to one pair.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => {
                if a >= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Min => {
                if a <= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Pow => libm::powf(a, b),
            BinaryOp::PRelu => {
                if a >= 0.0 {
                    a
                } else {
                    a * b
                }
            }
        }
    }
}

/// A broadcast binary op: the output is contiguous with `shape[..rank]`; input `a` (`b`) is
/// read at `sum(index[i] * a_strides[i])`, with stride 0 along broadcast axes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Binary {
    /// The function.
    pub op: BinaryOp,
    /// Number of meaningful entries in the arrays below.
    pub rank: usize,
    /// Output shape.
    pub shape: [usize; MAX_RANK],
    /// Element strides of `a` per output axis.
    pub a_strides: [usize; MAX_RANK],
    /// Element strides of `b` per output axis.
    pub b_strides: [usize; MAX_RANK],
    /// Fused activation.
    pub act: Activation,
}

impl Binary {
    /// Output element count.
    pub fn len(&self) -> usize {
        self.shape[..self.rank].iter().product()
    }

    /// True when the output is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reference broadcast binary op (see [`Binary`]).
pub fn binary(p: &Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    let len = p.len();
    assert!(out.len() >= len);
    if len == 0 {
        return;
    }
    if p.rank == 0 {
        out[0] = p.act.apply(p.op.apply(a[0], b[0]));
        return;
    }
    let r = p.rank;
    let inner = p.shape[r - 1];
    let (sa, sb) = (p.a_strides[r - 1], p.b_strides[r - 1]);
    let mut idx = [0usize; MAX_RANK];
    for row in out[..len].chunks_exact_mut(inner) {
        let oa: usize = (0..r - 1).map(|i| idx[i] * p.a_strides[i]).sum();
        let ob: usize = (0..r - 1).map(|i| idx[i] * p.b_strides[i]).sum();
        match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in row
                    .iter_mut()
                    .zip(&a[oa..oa + inner])
                    .zip(&b[ob..ob + inner])
                {
                    *o = p.act.apply(p.op.apply(x, y));
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + inner]) {
                    *o = p.act.apply(p.op.apply(x, y));
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + inner]) {
                    *o = p.act.apply(p.op.apply(x, y));
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = p.act.apply(p.op.apply(a[oa + j * sa], b[ob + j * sb]));
                }
            }
        }
        // advance the multi-index over the outer axes
        for i in (0..r - 1).rev() {
            idx[i] += 1;
            if idx[i] < p.shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

/// [`binary`] with the output written over one operand: `io` holds operand `a` (when
/// `io_is_a`) or `b`, laid out exactly as the output (contiguous, no broadcast), and receives
/// the result; `other` is the remaining operand with its strides. Each output element is
/// computed from the `io` element at the same index before that element is overwritten.
pub fn binary_in_place(p: &Binary, io_is_a: bool, io: &mut [f32], other: &[f32]) {
    let len = p.len();
    assert!(io.len() >= len);
    if len == 0 {
        return;
    }
    let strides = if io_is_a { &p.b_strides } else { &p.a_strides };
    let apply = |x: f32, y: f32| {
        if io_is_a {
            p.act.apply(p.op.apply(x, y))
        } else {
            p.act.apply(p.op.apply(y, x))
        }
    };
    if p.rank == 0 {
        io[0] = apply(io[0], other[0]);
        return;
    }
    let r = p.rank;
    let inner = p.shape[r - 1];
    let s = strides[r - 1];
    let mut idx = [0usize; MAX_RANK];
    for row in io[..len].chunks_exact_mut(inner) {
        let o: usize = (0..r - 1).map(|i| idx[i] * strides[i]).sum();
        match s {
            1 => {
                for (x, &y) in row.iter_mut().zip(&other[o..o + inner]) {
                    *x = apply(*x, y);
                }
            }
            0 => {
                let y = other[o];
                for x in row.iter_mut() {
                    *x = apply(*x, y);
                }
            }
            _ => {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = apply(*x, other[o + j * s]);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// In place over either operand gives what the out-of-place kernel gives, for every
    /// broadcast pattern of the other operand and a non-commutative op.
    #[test]
    fn in_place_matches_out_of_place() {
        let full: [f32; 24] = core::array::from_fn(|i| (i as f32 * 0.37).sin() * 3.0);
        let small: [f32; 24] = core::array::from_fn(|i| (i as f32 * 0.91).cos() * 2.0 + 0.5);
        // output 2x3x4; the other operand: full, a row (4), a column (2x3x1), a scalar.
        let patterns: [[usize; MAX_RANK]; 4] = [
            [12, 4, 1, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [3, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ];
        for op in [BinaryOp::Sub, BinaryOp::Div, BinaryOp::PRelu, BinaryOp::Max] {
            for st in patterns {
                for io_is_a in [true, false] {
                    let contiguous = [12, 4, 1, 0, 0, 0];
                    let p = Binary {
                        op,
                        rank: 3,
                        shape: [2, 3, 4, 0, 0, 0],
                        a_strides: if io_is_a { contiguous } else { st },
                        b_strides: if io_is_a { st } else { contiguous },
                        act: Activation::RELU,
                    };
                    let (a, b) = if io_is_a {
                        (&full, &small)
                    } else {
                        (&small, &full)
                    };
                    let mut want = [0.0; 24];
                    binary(&p, a, b, &mut want);
                    let mut io = full;
                    binary_in_place(&p, io_is_a, &mut io, &small);
                    assert_eq!(io, want, "{op:?} {st:?} io_is_a={io_is_a}");
                }
            }
        }
    }

    #[test]
    fn broadcast_row_and_column() {
        // a: 2x3, b: 3 (row broadcast) and b: 2x1 (column broadcast)
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut p = Binary {
            op: BinaryOp::Sub,
            rank: 2,
            shape: [2, 3, 0, 0, 0, 0],
            a_strides: [3, 1, 0, 0, 0, 0],
            b_strides: [0, 1, 0, 0, 0, 0],
            act: Activation::Identity,
        };
        let mut out = [0.0; 6];
        binary(&p, &a, &[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [0.0, 0.0, 0.0, 3.0, 3.0, 3.0]);
        p.b_strides = [1, 0, 0, 0, 0, 0];
        p.op = BinaryOp::PRelu;
        binary(
            &p,
            &[-1.0, 2.0, -3.0, 4.0, -5.0, 6.0],
            &[0.5, 0.1],
            &mut out,
        );
        assert_eq!(out, [-0.5, 2.0, -1.5, 4.0, -0.5, 6.0]);
    }
}
