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

/// Quantisation of an int8 addition of two same-shape tensors, TFLite's way: both inputs are
/// brought to a common scale (twice the larger input scale) at 20 extra bits of precision,
/// added, and requantised to the output scale. Build it with [`AddI8::new`] at compile time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddI8 {
    /// Zero point of `a`.
    pub a_zero: i32,
    /// `a`'s scale over the common scale.
    pub a_mult: super::quant::Requant,
    /// Zero point of `b`.
    pub b_zero: i32,
    /// `b`'s scale over the common scale.
    pub b_mult: super::quant::Requant,
    /// The common scale over the output scale, undoing the 20 bits.
    pub out_mult: super::quant::Requant,
    /// Output zero point.
    pub out_zero: i32,
    /// Smallest output (a fused ReLU raises it to the zero point).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

impl AddI8 {
    /// Extra bits of precision of the common scale.
    pub const LEFT_SHIFT: i32 = 20;

    /// The parameters for scales and zero points `(a_scale, a_zero)`, `(b_scale, b_zero)`,
    /// `(out_scale, out_zero)` and the output range `lo..=hi`.
    pub fn new(a: (f32, i32), b: (f32, i32), out: (f32, i32), lo: i8, hi: i8) -> AddI8 {
        use super::quant::Requant;
        let twice_max = 2.0 * f64::from(a.0.max(b.0));
        AddI8 {
            a_zero: a.1,
            a_mult: Requant::from_real(f64::from(a.0) / twice_max),
            b_zero: b.1,
            b_mult: Requant::from_real(f64::from(b.0) / twice_max),
            out_mult: Requant::from_real(
                twice_max / (f64::from(1u32 << Self::LEFT_SHIFT) * f64::from(out.0)),
            ),
            out_zero: out.1,
            lo,
            hi,
        }
    }

    /// The same addition with the operands' roles swapped (`b + a`), for writing over `b`.
    pub fn swapped(self) -> AddI8 {
        AddI8 {
            a_zero: self.b_zero,
            a_mult: self.b_mult,
            b_zero: self.a_zero,
            b_mult: self.a_mult,
            ..self
        }
    }

    /// `a`'s and `b`'s terms for every int8 value: what [`add_i8`] reads instead of
    /// rescaling each element (the compiler emits them as a flash constant).
    pub fn terms(&self) -> AddI8Terms {
        let term = |m: super::quant::Requant, zero: i32| -> [i32; 256] {
            // Entry i is the value `i as u8 as i8`: indexed by the byte itself.
            core::array::from_fn(|i| m.apply((i32::from(i as u8 as i8) - zero) << Self::LEFT_SHIFT))
        };
        AddI8Terms {
            a: term(self.a_mult, self.a_zero),
            b: term(self.b_mult, self.b_zero),
        }
    }
}

/// The rescaled operands of an int8 addition ([`AddI8::terms`]): `a[x as u8]` is
/// `a_mult · ((x − a_zero) · 2^20)`, likewise `b`; each below 2^28 in magnitude, so their sum
/// fits an `i32`. Two 1 KiB tables in flash per Add: per element two loads instead of two
/// requantisations.
#[derive(Clone, Debug, PartialEq)]
pub struct AddI8Terms {
    /// `a`'s term for each byte value.
    pub a: [i32; 256],
    /// `b`'s term for each byte value.
    pub b: [i32; 256],
}

impl AddI8Terms {
    #[inline(always)]
    fn sum(&self, a: i8, b: i8) -> i32 {
        self.a[usize::from(a as u8)] + self.b[usize::from(b as u8)]
    }
}

/// Int8 addition of two same-shape tensors (see [`AddI8`]); `terms` is `p.terms()`.
pub fn add_i8(p: &AddI8, terms: &AddI8Terms, a: &[i8], b: &[i8], out: &mut [i8]) {
    assert!(a.len() >= out.len() && b.len() >= out.len());
    let s = p.out_mult.scale();
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = super::quant::requantize_scaled(terms.sum(x, y), s, p.out_zero, p.lo, p.hi);
    }
}

/// [`add_i8`] with the output written over `a` (`io`).
pub fn add_i8_in_place(p: &AddI8, terms: &AddI8Terms, io: &mut [i8], b: &[i8]) {
    assert!(b.len() >= io.len());
    let s = p.out_mult.scale();
    for (x, &y) in io.iter_mut().zip(b) {
        *x = super::quant::requantize_scaled(terms.sum(*x, y), s, p.out_zero, p.lo, p.hi);
    }
}

#[cfg(test)]
mod i8_tests {
    use super::*;

    /// The tables give, for every pair of int8 values, the integers of the direct
    /// computation: both operands rescaled, summed, requantised.
    #[test]
    fn add_i8_terms_equal_direct_rescaling() {
        let p = AddI8::new((0.021, -7), (0.047, 12), (0.06, -3), -3, 127);
        let t = p.terms();
        let cases = if cfg!(miri) { 16 } else { 256 };
        for x in (0..cases).map(|i| (i * 256 / cases) as u8 as i8) {
            let xs = [x; 256];
            let ys: [i8; 256] = core::array::from_fn(|i| i as u8 as i8);
            let mut out = [0i8; 256];
            add_i8(&p, &t, &xs, &ys, &mut out);
            for (&y, &o) in ys.iter().zip(&out) {
                let term = |m: super::super::quant::Requant, v: i8, z: i32| {
                    m.apply((i32::from(v) - z) << AddI8::LEFT_SHIFT)
                };
                let sum = term(p.a_mult, x, p.a_zero) + term(p.b_mult, y, p.b_zero);
                let want = super::super::quant::requantize(sum, p.out_mult, p.out_zero, p.lo, p.hi);
                assert_eq!(o, want, "{x} + {y}");
            }
        }
    }

    /// Against dequantise → add → quantise in f64: within one step, in place or not.
    #[test]
    fn add_i8_matches_float() {
        let cases = [
            ((0.02f32, -3), (0.05f32, 10), (0.06f32, -128)),
            ((0.1, 0), (0.1, 0), (0.2, 5)),
            ((0.003, 127), (0.5, -128), (0.4, 0)),
        ];
        for (a, b, o) in cases {
            let p = AddI8::new(a, b, o, -128, 127);
            let xs: [i8; 64] = core::array::from_fn(|i| (i as i32 * 4 - 128) as i8);
            let ys: [i8; 64] = core::array::from_fn(|i| (127 - i as i32 * 3) as i8);
            let mut out = [0i8; 64];
            let terms = p.terms();
            add_i8(&p, &terms, &xs, &ys, &mut out);
            for i in 0..64 {
                let real = f64::from(a.0) * f64::from(i32::from(xs[i]) - a.1)
                    + f64::from(b.0) * f64::from(i32::from(ys[i]) - b.1);
                let q = real / f64::from(o.0);
                let want = (if q >= 0.0 { q + 0.5 } else { q - 0.5 }) as i64 + i64::from(o.1);
                let want = want.clamp(-128, 127);
                assert!(
                    (i64::from(out[i]) - want).abs() <= 1,
                    "{a:?} {b:?} {o:?} [{i}]: {} vs {want}",
                    out[i]
                );
            }
            let mut io = xs;
            add_i8_in_place(&p, &terms, &mut io, &ys);
            assert_eq!(io, out);
        }
    }
}
