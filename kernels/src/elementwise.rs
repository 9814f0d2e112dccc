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

impl Binary {
    /// The same op over the same elements in the same order, with axes of one element
    /// dropped and each axis merged into the one outside it where both operands step
    /// through the pair as through one axis (`stride[outer] = stride[inner] · shape[inner]`,
    /// broadcast pairs included): fewer, longer rows. A residual addition of two `N×C×H×W`
    /// tensors is one row; so is a streamed band's.
    pub fn merged(&self) -> Binary {
        let mut m = Binary {
            rank: 0,
            shape: [0; MAX_RANK],
            a_strides: [0; MAX_RANK],
            b_strides: [0; MAX_RANK],
            ..*self
        };
        for i in 0..self.rank {
            let (n, sa, sb) = (self.shape[i], self.a_strides[i], self.b_strides[i]);
            if n == 1 {
                continue;
            }
            if let Some(j) = m.rank.checked_sub(1) {
                if m.a_strides[j] == sa * n && m.b_strides[j] == sb * n {
                    m.shape[j] *= n;
                    m.a_strides[j] = sa;
                    m.b_strides[j] = sb;
                    continue;
                }
            }
            m.shape[m.rank] = n;
            m.a_strides[m.rank] = sa;
            m.b_strides[m.rank] = sb;
            m.rank += 1;
        }
        m
    }
}

/// Reference broadcast binary op (see [`Binary`]).
pub fn binary(p: &Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    let len = p.len();
    assert!(out.len() >= len);
    if len == 0 {
        return;
    }
    let p = &p.merged();
    // The function chosen once a call, not per element: the common ones' rows vectorise.
    match p.op {
        BinaryOp::Add => binary_rows(p, a, b, &mut out[..len], |x, y| x + y),
        BinaryOp::Sub => binary_rows(p, a, b, &mut out[..len], |x, y| x - y),
        BinaryOp::Mul => binary_rows(p, a, b, &mut out[..len], |x, y| x * y),
        op => binary_rows(p, a, b, &mut out[..len], |x, y| op.apply(x, y)),
    }
}

/// [`binary`]'s rows with the function `f` (then the activation): `p` merged, `out` its
/// `p.len() > 0` elements.
#[inline(always)]
fn binary_rows(p: &Binary, a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    if p.rank == 0 {
        out[0] = p.act.apply(f(a[0], b[0]));
        return;
    }
    let r = p.rank;
    let inner = p.shape[r - 1];
    let (sa, sb) = (p.a_strides[r - 1], p.b_strides[r - 1]);
    let mut idx = [0usize; MAX_RANK];
    for row in out.chunks_exact_mut(inner) {
        let oa: usize = (0..r - 1).map(|i| idx[i] * p.a_strides[i]).sum();
        let ob: usize = (0..r - 1).map(|i| idx[i] * p.b_strides[i]).sum();
        match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in row
                    .iter_mut()
                    .zip(&a[oa..oa + inner])
                    .zip(&b[ob..ob + inner])
                {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + inner]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(a[oa + j * sa], b[ob + j * sb]);
                }
            }
        }
        p.act.apply_slice(row);
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
    let p = &p.merged();
    let io = &mut io[..len];
    match (p.op, io_is_a) {
        (BinaryOp::Add, _) => in_place_rows(p, io_is_a, io, other, |x, y| x + y),
        (BinaryOp::Mul, _) => in_place_rows(p, io_is_a, io, other, |x, y| x * y),
        (BinaryOp::Sub, true) => in_place_rows(p, io_is_a, io, other, |x, y| x - y),
        (BinaryOp::Sub, false) => in_place_rows(p, io_is_a, io, other, |x, y| y - x),
        (op, true) => in_place_rows(p, io_is_a, io, other, |x, y| op.apply(x, y)),
        (op, false) => in_place_rows(p, io_is_a, io, other, |x, y| op.apply(y, x)),
    }
}

/// [`binary_in_place`]'s rows with `f(io element, other element)` (then the activation).
#[inline(always)]
fn in_place_rows(
    p: &Binary,
    io_is_a: bool,
    io: &mut [f32],
    other: &[f32],
    f: impl Fn(f32, f32) -> f32,
) {
    let strides = if io_is_a { &p.b_strides } else { &p.a_strides };
    if p.rank == 0 {
        io[0] = p.act.apply(f(io[0], other[0]));
        return;
    }
    let r = p.rank;
    let inner = p.shape[r - 1];
    let s = strides[r - 1];
    let mut idx = [0usize; MAX_RANK];
    for row in io.chunks_exact_mut(inner) {
        let o: usize = (0..r - 1).map(|i| idx[i] * strides[i]).sum();
        match s {
            1 => {
                for (x, &y) in row.iter_mut().zip(&other[o..o + inner]) {
                    *x = f(*x, y);
                }
            }
            0 => {
                let y = other[o];
                for x in row.iter_mut() {
                    *x = f(*x, y);
                }
            }
            _ => {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = f(*x, other[o + j * s]);
                }
            }
        }
        p.act.apply_slice(row);
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
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

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

    /// Merged axes give every element the operands' values at its own index: random shapes
    /// of rank 1 to 4 (axes of one element included), each operand contiguous, broadcast
    /// along random axes, or read from a wider buffer (strides no merge can join), every op
    /// and a fused activation, out of place and in place, against element-by-element indexing.
    #[test]
    fn merged_axes_read_what_each_index_reads() {
        let mut next = super::super::xorshift(0x9e37_79b9);
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Max,
        ];
        for case in 0..if cfg!(miri) { 20 } else { 300 } {
            let rank = 1 + next(4);
            let mut shape = [0usize; MAX_RANK];
            for d in shape.iter_mut().take(rank) {
                *d = 1 + next(4);
            }
            // Strides of an operand: row-major over `shape` with broadcast axes (stride 0)
            // and, sometimes, one axis padded (a wider buffer); the buffer's length.
            let mut strides = |broadcast: bool, wide: bool| -> ([usize; MAX_RANK], usize) {
                let mut st = [0usize; MAX_RANK];
                let mut step = 1;
                let pad = if wide { next(rank) } else { usize::MAX };
                for i in (0..rank).rev() {
                    if broadcast && next(2) == 0 {
                        continue;
                    }
                    st[i] = step;
                    step *= shape[i] + usize::from(i == pad);
                }
                (st, step)
            };
            let (a_strides, a_len) = strides(case % 3 == 1, case % 4 == 3);
            let (b_strides, b_len) = strides(case % 3 == 2, case % 5 == 4);
            let p = Binary {
                op: ops[case % ops.len()],
                rank,
                shape,
                a_strides,
                b_strides,
                act: if case % 2 == 0 {
                    Activation::RELU
                } else {
                    Activation::Identity
                },
            };
            let a: Vec<f32> = (0..a_len).map(|_| next(200) as f32 * 0.05 - 5.0).collect();
            let b: Vec<f32> = (0..b_len).map(|_| next(200) as f32 * 0.05 + 0.1).collect();
            let mut want = vec![0.0; p.len()];
            for (k, w) in want.iter_mut().enumerate() {
                let (mut rest, mut ia, mut ib) = (k, 0, 0);
                for i in (0..rank).rev() {
                    ia += rest % shape[i] * a_strides[i];
                    ib += rest % shape[i] * b_strides[i];
                    rest /= shape[i];
                }
                *w = p.act.apply(p.op.apply(a[ia], b[ib]));
            }
            let mut got = vec![f32::NAN; p.len()];
            binary(&p, &a, &b, &mut got);
            assert_eq!(got, want, "case {case} {p:?}");
            let contiguous =
                a_len == p.len() && (0..rank).all(|i| a_strides[i] != 0 || shape[i] == 1);
            if contiguous {
                let mut io = a.clone();
                binary_in_place(&p, true, &mut io, &b);
                assert_eq!(io, want, "case {case} in place {p:?}");
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
    #[allow(unused_mut, unused_assignments)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::cpu::avx512f() {
        for i in (0..out.len() / 16).map(|k| 16 * k) {
            let (x, y, o) = (a[i..].as_ptr(), b[i..].as_ptr(), out[i..].as_mut_ptr());
            // SAFETY: the CPU has AVX-512F; elements i..i + 16 are inside all three.
            unsafe { x86::add16(p, terms, x, y, o) };
            done = i + 16;
        }
    }
    let s = p.out_mult.scale();
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    {
        let n = out.len() / 4;
        // SAFETY: `a` and `b` hold at least `out.len()` ≥ 4n bytes (asserted), `out` 4n
        // writable ones; no two of them overlap (`out` is borrowed mutably).
        unsafe { dsp_float::add_quads(p, s, terms, a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), n) };
        done = 4 * n;
    }
    let (a, b) = (&a[done..], &b[done..]);
    for ((o, &x), &y) in out[done..].iter_mut().zip(a).zip(b) {
        *o = super::quant::requantize_scaled(terms.sum(x, y), s, p.out_zero, p.lo, p.hi);
    }
}

/// [`add_i8`] with the output written over `a` (`io`).
pub fn add_i8_in_place(p: &AddI8, terms: &AddI8Terms, io: &mut [i8], b: &[i8]) {
    assert!(b.len() >= io.len());
    #[allow(unused_mut, unused_assignments)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::cpu::avx512f() {
        for i in (0..io.len() / 16).map(|k| 16 * k) {
            let at = io[i..].as_mut_ptr();
            // SAFETY: the CPU has AVX-512F; elements i..i + 16 are inside both; `add16`
            // reads its 16 `a` bytes before it writes the 16 outputs over them.
            unsafe { x86::add16(p, terms, at, b[i..].as_ptr(), at) };
            done = i + 16;
        }
    }
    let s = p.out_mult.scale();
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    {
        let n = io.len() / 4;
        let x = io.as_mut_ptr();
        // SAFETY: `io` holds 4n bytes read and written, `b` at least `io.len()` (asserted);
        // each group of four reads all its bytes before it writes them.
        unsafe { dsp_float::add_quads(p, s, terms, x, b.as_ptr(), x, n) };
        done = 4 * n;
    }
    for (x, &y) in io[done..].iter_mut().zip(&b[done..]) {
        *x = super::quant::requantize_scaled(terms.sum(*x, y), s, p.out_zero, p.lo, p.hi);
    }
}

/// Quantisation of TFLite's int8 addition, its reference arithmetic (`integer_ops::Add`):
/// each operand `(x − zero) · 2^20` rescaled by its scale over twice the larger input scale,
/// the sum rescaled by that over the output scale, all in TFLite's fixed point
/// ([`FixedPoint`](super::quant::FixedPoint)). The operands' terms are the tables of
/// [`AddI8Q31::terms`], as for [`AddI8`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddI8Q31 {
    /// Zero point of `a`.
    pub a_zero: i32,
    /// `a`'s scale over twice the larger input scale.
    pub a_mult: super::quant::FixedPoint,
    /// Zero point of `b`.
    pub b_zero: i32,
    /// `b`'s scale over twice the larger input scale.
    pub b_mult: super::quant::FixedPoint,
    /// Twice the larger input scale over the output scale, undoing the 20 bits.
    pub out_mult: super::quant::FixedPoint,
    /// Output zero point.
    pub out_zero: i32,
    /// Smallest output (a fused ReLU raises it to the zero point).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

impl AddI8Q31 {
    /// The parameters as TFLite prepares them (`add.cc`): scales and zero points
    /// `(a_scale, a_zero)`, `(b_scale, b_zero)`, `(out_scale, out_zero)`, the output range.
    pub fn new(a: (f32, i32), b: (f32, i32), out: (f32, i32), lo: i8, hi: i8) -> AddI8Q31 {
        use super::quant::FixedPoint;
        // `2 * std::max(float, float)`: a float, exact.
        let twice_max = f64::from(2.0 * a.0.max(b.0));
        AddI8Q31 {
            a_zero: a.1,
            a_mult: FixedPoint::from_real(f64::from(a.0) / twice_max),
            b_zero: b.1,
            b_mult: FixedPoint::from_real(f64::from(b.0) / twice_max),
            // `(1 << 20) * float`: a float, exact.
            out_mult: FixedPoint::from_real(
                twice_max / f64::from((1u32 << AddI8::LEFT_SHIFT) as f32 * out.0),
            ),
            out_zero: out.1,
            lo,
            hi,
        }
    }

    /// The output's requantisation of a sum of terms: [`Q31Once`](crate::scale::Q31Once)
    /// (`SMMUL`, a half unit, a shift: equal to `FixedPoint::apply` for sums below 2^30,
    /// which TFLite's 20-bit operands stay below) where the factor is below one half, else
    /// the 64-bit `FixedPoint` product; a larger sum takes the latter too.
    #[inline(always)]
    fn rescale(&self) -> impl Fn(i32) -> i8 + '_ {
        use super::quant::Rescale;
        use crate::scale::{ChannelScale, Q31Once, Q31};
        let fast = Q31::new(self.out_mult).map(Q31Once);
        move |sum: i32| match fast {
            Some(q) if i64::from(sum).abs() <= Q31::MAX_ACC => {
                ChannelScale::requantize(q, sum, self.out_zero, self.lo, self.hi)
            }
            _ => Rescale::requantize(self.out_mult, sum, self.out_zero, self.lo, self.hi),
        }
    }

    /// The same addition with the operands' roles swapped (`b + a`), for writing over `b`.
    pub fn swapped(self) -> AddI8Q31 {
        AddI8Q31 {
            a_zero: self.b_zero,
            a_mult: self.b_mult,
            b_zero: self.a_zero,
            b_mult: self.a_mult,
            ..self
        }
    }

    /// `a`'s and `b`'s rescaled terms for every int8 value (TFLite's
    /// `MultiplyByQuantizedMultiplierSmallerThanOneExp` of the shifted operand).
    pub fn terms(&self) -> AddI8Terms {
        let term = |m: super::quant::FixedPoint, zero: i32| -> [i32; 256] {
            core::array::from_fn(|i| {
                m.apply((i32::from(i as u8 as i8) - zero) * (1 << AddI8::LEFT_SHIFT))
            })
        };
        AddI8Terms {
            a: term(self.a_mult, self.a_zero),
            b: term(self.b_mult, self.b_zero),
        }
    }
}

/// TFLite's int8 addition of two same-shape tensors (see [`AddI8Q31`]); `terms` is
/// `p.terms()`.
pub fn add_i8_q31(p: &AddI8Q31, terms: &AddI8Terms, a: &[i8], b: &[i8], out: &mut [i8]) {
    assert!(a.len() >= out.len() && b.len() >= out.len());
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(microarena_dsp)]
    if let Some(q) = dsp::AddQuads::new(p, terms) {
        let n = out.len() / 4;
        // SAFETY: `a` and `b` hold at least `out.len()` ≥ 4n bytes (asserted), `out` 4n
        // writable ones; no two of them overlap (`out` is borrowed mutably).
        unsafe { q.run(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), n) };
        done = 4 * n;
    }
    let rescale = p.rescale();
    let (a, b) = (&a[done..], &b[done..]);
    for ((o, &x), &y) in out[done..].iter_mut().zip(a).zip(b) {
        *o = rescale(terms.sum(x, y));
    }
}

/// [`add_i8_q31`] with the output written over `a` (`io`).
pub fn add_i8_q31_in_place(p: &AddI8Q31, terms: &AddI8Terms, io: &mut [i8], b: &[i8]) {
    assert!(b.len() >= io.len());
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(microarena_dsp)]
    if let Some(q) = dsp::AddQuads::new(p, terms) {
        let n = io.len() / 4;
        let x = io.as_mut_ptr();
        // SAFETY: `io` holds 4n bytes read and written, `b` at least `io.len()` (asserted);
        // each group of four reads all its bytes before it writes them.
        unsafe { q.run(x, b.as_ptr(), x, n) };
        done = 4 * n;
    }
    let rescale = p.rescale();
    for (x, &y) in io[done..].iter_mut().zip(&b[done..]) {
        *x = rescale(terms.sum(*x, y));
    }
}

/// The assembly loop of both int8 additions on Cortex-M4/M7/M33: four elements a pass, each
/// two `LDRB`, the two table terms (`{ta}`, `{tb}`), `ADD`, `$requant` (the sum rescaled with
/// the output zero point, in `{x}`), `SSAT`; the four bytes packed by `BFI`, clamped bytewise
/// (`SSUB8`/`SEL`, the bounds from `{bounds}`) when `$clamp`, one `STR`. `$pre` runs once
/// before the loop; `$operands` are the ones `$pre` and `$requant` name.
///
/// Safety (of the expansion, inside `unsafe`): `$a`, `$b` readable and `$out` writable for
/// `4·$n` bytes, `$n` > 0; `$out` may be `$a` (each group reads its four bytes of both before
/// it stores), else it overlaps neither.
#[cfg(microarena_dsp)]
macro_rules! add_quads {
    (
        $clamp:expr, [$($pre:literal),*], $requant:expr,
        ($a:expr, $b:expr, $out:expr, $n:expr, $terms:expr, $lo:expr, $hi:expr),
        $($operands:tt)*
    ) => {{
        let bytes = |v: i8| u32::from(v as u8) * 0x0101_0101;
        // The clamp's bounds from memory (no register is left for them), each in all four
        // bytes.
        let bounds = [bytes($lo), bytes($hi)];
        let (ta, tb) = ($terms.a.as_ptr(), $terms.b.as_ptr());
        let end = $out.add(4 * $n);
        if $clamp {
            add_quads!(@asm [$($pre),*], $requant, [
                "ldr {x}, [{bounds}]",
                "ssub8 {y}, {acc}, {x}",
                "sel {acc}, {acc}, {x}",
                "ldr {x}, [{bounds}, #4]",
                "ssub8 {y}, {x}, {acc}",
                "sel {acc}, {acc}, {x}"
            ], ($a, $b, $out, end, ta, tb, bounds), $($operands)*)
        } else {
            // `bounds` unused but for this comment.
            add_quads!(@asm [$($pre),*], $requant, ["@ {bounds}"],
                ($a, $b, $out, end, ta, tb, bounds), $($operands)*)
        }
    }};
    (@one $requant:expr, $bfi:literal) => {
        concat!(
            "ldrb {x}, [{pa}], #1\n",
            "ldrb {y}, [{pb}], #1\n",
            "ldr {x}, [{ta}, {x}, lsl #2]\n",
            "ldr {y}, [{tb}, {y}, lsl #2]\n",
            "add {x}, {x}, {y}\n",
            $requant,
            "ssat {x}, #8, {x}\n",
            $bfi,
        )
    };
    (
        @asm [$($pre:literal),*], $requant:expr, [$($clamp:literal),*],
        ($a:expr, $b:expr, $out:expr, $end:expr, $ta:expr, $tb:expr, $bounds:expr),
        $($operands:tt)*
    ) => {
        core::arch::asm!(
            $($pre,)*
            "2:",
            add_quads!(@one $requant, "mov {acc}, {x}\n"),
            add_quads!(@one $requant, "bfi {acc}, {x}, #8, #8\n"),
            add_quads!(@one $requant, "bfi {acc}, {x}, #16, #8\n"),
            add_quads!(@one $requant, "bfi {acc}, {x}, #24, #8\n"),
            $($clamp,)*
            "str {acc}, [{po}], #4",
            "cmp {po}, {end}",
            "bne 2b",
            pa = inout(reg) $a => _,
            pb = inout(reg) $b => _,
            po = inout(reg) $out => _,
            end = in(reg) $end,
            ta = in(reg) $ta,
            tb = in(reg) $tb,
            bounds = in(reg) $bounds.as_ptr(),
            x = out(reg) _,
            y = out(reg) _,
            acc = out(reg) _,
            $($operands)*
        )
    };
}

/// [`add_i8`] on Cortex-M4F/M7/M33 (DSP extension and FPU), `add_quads!` with the sum's
/// float scale by `VCVT`, `VMUL`, `VCVTR` (round to nearest even, as `requantize_scaled`:
/// beyond its ±2^22 both clamp alike) and `QADD` of the zero point.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
mod dsp_float {
    use super::{AddI8, AddI8Terms};

    /// `n` groups of four: `out[i] = requantize_scaled(terms.a[a[i]] + terms.b[b[i]])`.
    ///
    /// # Safety
    /// `a`, `b` readable and `out` writable for `4n` bytes; `out` may be `a` (each group
    /// reads its four bytes of both before it stores), else it overlaps neither.
    pub(super) unsafe fn add_quads(
        p: &AddI8,
        scale: f32,
        terms: &AddI8Terms,
        a: *const i8,
        b: *const i8,
        out: *mut i8,
        n: usize,
    ) {
        if n == 0 {
            return;
        }
        // SAFETY: the caller's contract (`add_quads!`'s); the table indices are bytes,
        // inside the 256-entry tables. DSP and FPU instructions; s0 and s1 and the flags
        // clobbered; no stack.
        unsafe {
            add_quads!(
                p.lo != i8::MIN || p.hi != i8::MAX,
                ["vmov s1, {sc}"],
                concat!(
                    "vmov s0, {x}\n",
                    "vcvt.f32.s32 s0, s0\n",
                    "vmul.f32 s0, s0, s1\n",
                    "vcvtr.s32.f32 s0, s0\n",
                    "vmov {x}, s0\n",
                    "qadd {x}, {x}, {z}\n",
                ),
                (a, b, out, n, terms, p.lo, p.hi),
                z = in(reg) p.out_zero,
                sc = in(reg) scale.to_bits(),
                out("s0") _,
                out("s1") _,
                options(nostack),
            )
        }
    }
}

/// [`add_i8_q31`] on Cortex-M4/M7/M33 (DSP extension), `add_quads!` with `LSL` (the
/// doubling), `SMMLA` (the high product plus the half unit with the output zero point,
/// `Q31::with_zero`) and `ASR` by the exponent: 42 instructions for four elements (48
/// clamped), against about 35 an element for the Rust loop.
#[cfg(microarena_dsp)]
mod dsp {
    use super::{AddI8Q31, AddI8Terms};
    use crate::scale::Q31;

    /// The loop's constants: [`AddI8Q31::rescale`]'s fast form with the zero point folded
    /// in, or `None` where it has none (a factor of one half or more, a large exponent).
    pub(super) struct AddQuads<'a> {
        terms: &'a AddI8Terms,
        q: Q31,
        exponent: u32,
        lo: i8,
        hi: i8,
    }

    impl<'a> AddQuads<'a> {
        pub(super) fn new(p: &AddI8Q31, terms: &'a AddI8Terms) -> Option<AddQuads<'a>> {
            // The terms are TFLite's 20-bit operands: their sums stay below 2^30
            // (`Q31::MAX_ACC`), where `Q31Once` is `FixedPoint::apply`.
            let q = Q31::new(p.out_mult)?.with_zero(p.out_zero)?;
            Some(AddQuads {
                terms,
                q,
                exponent: q.exponent() as u32,
                lo: p.lo,
                hi: p.hi,
            })
        }

        /// `n` groups of four: `out[i] = requantize(terms.a[a[i]] + terms.b[b[i]])`.
        ///
        /// # Safety
        /// `a`, `b` readable and `out` writable for `4n` bytes; `out` may be `a` (each group
        /// reads its four bytes of both before it stores), else it overlaps neither.
        pub(super) unsafe fn run(&self, a: *const i8, b: *const i8, out: *mut i8, n: usize) {
            if n == 0 {
                return;
            }
            // SAFETY: the caller's contract (`add_quads!`'s); the table indices are bytes,
            // inside the 256-entry tables. DSP-extension instructions; no stack; flags
            // clobbered.
            unsafe {
                add_quads!(
                    self.lo != i8::MIN || self.hi != i8::MAX,
                    [],
                    concat!(
                        "lsl {x}, {x}, #1\n",
                        "smmla {x}, {x}, {m}, {r}\n",
                        "asr {x}, {x}, {e}\n",
                    ),
                    (a, b, out, n, self.terms, self.lo, self.hi),
                    m = in(reg) self.q.multiplier,
                    r = in(reg) self.q.round,
                    e = in(reg) self.exponent,
                    options(nostack),
                )
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::quant::requantize16;
    use super::{AddI8, AddI8Terms};
    use core::arch::x86_64::*;

    /// Sixteen elements of [`super::add_i8`] with AVX-512: both terms gathered from their
    /// tables, summed, requantised as `requantize_scaled` does (the product limited to
    /// ±2^22 first, beyond which every output clamps to `lo` or `hi` either way): the
    /// scalar bytes, bit for bit.
    ///
    /// # Safety
    /// AVX-512F; `a` and `b` point to 16 readable bytes, `out` to 16 writable ones (it may
    /// be `a`: all of `a` is read first).
    #[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add16(p: &AddI8, t: &AddI8Terms, a: *const i8, b: *const i8, out: *mut i8) {
        // SAFETY: the caller's contract; table indices are bytes (0..256), inside the
        // 256-entry tables.
        unsafe {
            let byte = _mm512_set1_epi32(0xff);
            let ia = _mm512_and_si512(
                _mm512_cvtepi8_epi32(_mm_loadu_si128(a as *const __m128i)),
                byte,
            );
            let ib = _mm512_and_si512(
                _mm512_cvtepi8_epi32(_mm_loadu_si128(b as *const __m128i)),
                byte,
            );
            let sum = _mm512_add_epi32(
                _mm512_i32gather_epi32::<4>(ia, t.a.as_ptr()),
                _mm512_i32gather_epi32::<4>(ib, t.b.as_ptr()),
            );
            let r = requantize16(sum, p.out_mult.scale(), p.out_zero, p.lo, p.hi);
            _mm_storeu_si128(out as *mut __m128i, _mm512_cvtepi32_epi8(r));
        }
    }
}

#[cfg(test)]
mod i8_tests {
    extern crate std;
    use super::*;

    /// TFLite's addition with the fast rescale gives TFLite's fixed point's bytes for every
    /// pair of int8 values, over scales from alike to 100× apart and every kind of output
    /// scale.
    #[test]
    fn tflite_addition_fast_rescale_is_exact() {
        use crate::quant::Rescale;
        let cases = [
            ((0.05, -3), (0.05, 7), (0.1, -128), -128, 127),
            ((0.0213, 12), (0.0037, -100), (0.024, 5), -128, 127),
            ((0.5, 0), (0.005, 0), (0.004, -20), -20, 127),
            ((0.0071, -128), (0.71, 127), (0.9, 3), -100, 90),
        ];
        let (xs, ys): ([i8; 256], [i8; 256]) = (
            core::array::from_fn(|i| i as u8 as i8),
            core::array::from_fn(|i| i as u8 as i8),
        );
        // Under Miri one setting and every 17th first operand (the interpreter is slow).
        let (cases, step) = if cfg!(miri) {
            (&cases[..1], 17)
        } else {
            (&cases[..], 1)
        };
        for &(a, b, out, lo, hi) in cases {
            let p = AddI8Q31::new(a, b, out, lo, hi);
            let t = p.terms();
            assert!(
                crate::scale::Q31::new(p.out_mult).is_some(),
                "{p:?} takes the fast form"
            );
            let mut got = [0i8; 256];
            for &x in xs.iter().step_by(step) {
                add_i8_q31(&p, &t, &[x; 256], &ys, &mut got);
                for (&y, &g) in ys.iter().zip(&got) {
                    let want = p.out_mult.requantize(t.sum(x, y), p.out_zero, lo, hi);
                    assert_eq!(g, want, "{x} + {y} in {p:?}");
                }
            }
        }
    }

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

    /// The AVX-512 sixteen-at-a-time addition (run where the CPU has AVX-512F) gives the
    /// scalar bytes for every pair of int8 values, out of place and in place, with scales
    /// that keep, round and saturate, a fused ReLU's range too.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_add_equals_the_scalar_one() {
        if cfg!(miri) || !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let params = [
            AddI8::new((0.021, -7), (0.047, 12), (0.06, -3), -128, 127),
            AddI8::new((0.5, 100), (0.001, -128), (0.0001, 7), -128, 127),
            AddI8::new((0.1, 0), (0.1, 0), (0.2, 5), 5, 127),
        ];
        for p in params {
            let t = p.terms();
            let s = p.out_mult.scale();
            for x in 0..=255u8 {
                let xs = [x as i8; 256];
                let ys: [i8; 256] = core::array::from_fn(|i| i as u8 as i8);
                let want: [i8; 256] = core::array::from_fn(|i| {
                    let sum = t.sum(xs[i], ys[i]);
                    super::super::quant::requantize_scaled(sum, s, p.out_zero, p.lo, p.hi)
                });
                let (mut out, mut io) = ([0i8; 256], xs);
                for i in (0..256).step_by(16) {
                    // SAFETY: AVX-512F (checked); 16 bytes from i inside each array.
                    unsafe {
                        x86::add16(
                            &p,
                            &t,
                            xs[i..].as_ptr(),
                            ys[i..].as_ptr(),
                            out[i..].as_mut_ptr(),
                        );
                        let at = io[i..].as_mut_ptr();
                        x86::add16(&p, &t, at, ys[i..].as_ptr(), at);
                    }
                }
                assert_eq!(out, want, "{p:?} x={x}");
                assert_eq!(io, want, "{p:?} x={x} in place");
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
