//! Binary elementwise ops with numpy broadcasting (`kernels::elementwise`): Add, Sub, Mul,
//! Div, Max, Min, Pow, PRelu in f32, and the int8 Add.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::prelude::OutletId;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::logic::Iff;

use super::activation::activation_tokens;
use super::quant::{fixed_point, requant};
use super::{same_size_input, usize_array, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{
    broadcast_strides, simplify_strided, to_array, At, TypedLowering, Value,
};
use crate::ir::{Graph, Node, Op, Values};
use crate::kernels::elementwise::{self, AddI8, AddI8Q31, Binary, BinaryOp};
use crate::kernels::{Activation, MAX_RANK};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "elementwise",
    onnx: &[
        "Add", "Div", "Max", "Mean", "Min", "Mul", "Pow", "PRelu", "Sub", "Sum",
    ],
    qdq: &["Add"],
    lower,
    lower_qdq,
};

/// The elementwise family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementwiseOp {
    /// `[a, b]`, broadcast as the strides say.
    Binary(Binary),
    /// `[a (i8), b (i8)]`, same shape.
    AddI8(AddI8),
    /// `[a (i8), b (i8)]`, the same shape: TFLite's int8 addition (its fixed point).
    AddI8Q31(AddI8Q31),
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    if let Some(b) = at.op::<TypedBinOp>() {
        return Some(binary(cx, at, b));
    }
    at.op::<Iff>()?;
    prelu(cx, at)
}

fn binary(cx: &mut TypedLowering, at: &At, b: &TypedBinOp) -> Result<()> {
    let name = b.0.name();
    let op = match name {
        "Add" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "Max" => BinaryOp::Max,
        "Min" => BinaryOp::Min,
        "Pow" => BinaryOp::Pow,
        "GT" | "GTE" | "LT" | "LTE" => {
            // Kept symbolic for the select that reads it (see `prelu`).
            let (a, b) = (at.input(0), at.input(1));
            cx.values
                .insert(at.output(), Value::Predicate { op: name, a, b });
            return Ok(());
        }
        other => return Err(at.unsupported(format!("binary op {other}"))),
    };
    cx.check_f32_node(at)?;
    emit_binary(cx, at, op, at.input(0), at.input(1))
}

fn emit_binary(
    cx: &mut TypedLowering,
    at: &At,
    op: BinaryOp,
    a: OutletId,
    b: OutletId,
) -> Result<()> {
    let os = cx.out_shape(at)?;
    let sa = cx.shape(at, a)?;
    let sb = cx.shape(at, b)?;
    let (shape, st) = simplify_strided(
        &os,
        &[broadcast_strides(&sa, &os), broadcast_strides(&sb, &os)],
    );
    if shape.len() > MAX_RANK {
        return Err(at.unsupported(format!(
            "broadcast of rank {} above {MAX_RANK}",
            shape.len()
        )));
    }
    let p = Binary {
        op,
        rank: shape.len(),
        shape: to_array(&shape),
        a_strides: to_array(&st[0]),
        b_strides: to_array(&st[1]),
        act: Activation::Identity,
    };
    let ta = cx.tensor(at, a)?;
    let tb = cx.tensor(at, b)?;
    cx.emit(at, Op::Elementwise(ElementwiseOp::Binary(p)), vec![ta, tb])
}

/// A select on the sign of a tensor, `Iff(x > 0, x, neg)` in any of tract's spellings
/// (`0 < x`, `x < 0` with the branches swapped, ...): `(x, neg)`.
pub(crate) fn select_on_sign(cx: &TypedLowering, at: &At) -> Option<(OutletId, OutletId)> {
    let ins = &at.node.inputs;
    let Some(Value::Predicate { op, a, b }) = cx.values.get(&ins[0]).cloned() else {
        return None;
    };
    let is_zero = |o: OutletId| {
        cx.konst(o).is_some_and(|t| {
            t.cast_to::<f32>()
                .ok()
                .and_then(|c| {
                    c.to_plain_array_view::<f32>()
                        .ok()
                        .map(|v| v.iter().all(|&x| x == 0.0))
                })
                .unwrap_or(false)
        })
    };
    // (x, negative_when_true)
    let (x, neg_when_true) = match op {
        "GT" | "GTE" if is_zero(a) => (b, true),  // 0 > x
        "LT" | "LTE" if is_zero(b) => (a, true),  // x < 0
        "GT" | "GTE" if is_zero(b) => (a, false), // x > 0
        "LT" | "LTE" if is_zero(a) => (b, false), // 0 < x
        _ => return None,
    };
    let (neg, pos) = if neg_when_true {
        (ins[1], ins[2])
    } else {
        (ins[2], ins[1])
    };
    (pos == x).then_some((x, neg))
}

/// tract writes PRelu as `Iff(x < 0, x * slope, x)`. Other selects on the sign are left to
/// the activation family (Elu, Selu).
fn prelu(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let (x, neg) = select_on_sign(cx, at)?;
    let mul = &cx.model.nodes[neg.node];
    let slope = match mul.op.downcast_ref::<TypedBinOp>() {
        Some(m) if m.0.name() == "Mul" && mul.inputs.contains(&x) => {
            if mul.inputs[0] == x {
                mul.inputs[1]
            } else {
                mul.inputs[0]
            }
        }
        _ => return None,
    };
    if cx.konst(slope).is_none() && !matches!(cx.values.get(&slope), Some(Value::Tensor(_))) {
        return None;
    }
    Some(
        cx.check_f32_node(at)
            .and_then(|()| emit_binary(cx, at, BinaryOp::PRelu, x, slope)),
    )
}

/// `Add` of two int8 tensors of one shape.
fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    let out = cx.quantized_output(at)?;
    let (a, b) = (cx.deq(at, 0)?, cx.deq(at, 1)?);
    let shape = cx.graph.tensor(a).shape.clone();
    if cx.graph.tensor(b).shape != shape {
        return Err(at.err(format!(
            "int8 Add of different shapes {:?} and {:?} (broadcasting) is not supported",
            shape,
            cx.graph.tensor(b).shape
        )));
    }
    let (qa, qb, q) = (cx.quant(a), cx.quant(b), out.q);
    let p = AddI8::new(
        (qa.scale, qa.zero),
        (qb.scale, qb.zero),
        (q.scale, q.zero),
        out.lo,
        out.hi,
    );
    let y = cx.new_i8(at.out(), shape, q);
    cx.emit(at, Op::Elementwise(ElementwiseOp::AddI8(p)), vec![a, b], y);
    cx.bind_output(out, y);
    Ok(())
}

/// True when `strides` walk `shape` in row-major order with no gap or repeat (axes of size
/// 1 may have any stride).
pub(crate) fn contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

fn binary_params(p: &Binary) -> TokenStream {
    let Binary {
        op,
        rank,
        shape,
        a_strides,
        b_strides,
        act,
    } = p;
    let op = match op {
        BinaryOp::Add => quote!(Add),
        BinaryOp::Sub => quote!(Sub),
        BinaryOp::Mul => quote!(Mul),
        BinaryOp::Div => quote!(Div),
        BinaryOp::Max => quote!(Max),
        BinaryOp::Min => quote!(Min),
        BinaryOp::Pow => quote!(Pow),
        BinaryOp::PRelu => quote!(PRelu),
    };
    let (shape, sa, sb) = (
        usize_array(shape),
        usize_array(a_strides),
        usize_array(b_strides),
    );
    let act = activation_tokens(act);
    quote! {
        &::microarena::kernels::elementwise::Binary {
            op: ::microarena::kernels::elementwise::BinaryOp::#op, rank: #rank,
            shape: #shape, a_strides: #sa, b_strides: #sb, act: #act,
        }
    }
}

/// `&AddI8Terms { a: [..], b: [..] }`: the operands' tables, a constant promoted to flash.
fn add_i8_terms(p: &AddI8) -> TokenStream {
    let t = p.terms();
    let (a, b) = (t.a.iter(), t.b.iter());
    quote!(&::microarena::kernels::elementwise::AddI8Terms { a: [#(#a),*], b: [#(#b),*] })
}

/// The operands' tables of TFLite's addition.
fn add_i8_q31_terms(p: &AddI8Q31) -> TokenStream {
    let t = p.terms();
    let (a, b) = (t.a.iter(), t.b.iter());
    quote!(&::microarena::kernels::elementwise::AddI8Terms { a: [#(#a),*], b: [#(#b),*] })
}

fn add_i8_q31_params(p: &AddI8Q31) -> TokenStream {
    let AddI8Q31 {
        a_zero,
        a_mult,
        b_zero,
        b_mult,
        out_mult,
        out_zero,
        lo,
        hi,
    } = p;
    let (am, bm, om) = (
        fixed_point(a_mult),
        fixed_point(b_mult),
        fixed_point(out_mult),
    );
    quote! {
        &::microarena::kernels::elementwise::AddI8Q31 {
            a_zero: #a_zero, a_mult: #am, b_zero: #b_zero, b_mult: #bm, out_mult: #om,
            out_zero: #out_zero, lo: #lo, hi: #hi,
        }
    }
}

fn add_i8_params(p: &AddI8) -> TokenStream {
    let AddI8 {
        a_zero,
        a_mult,
        b_zero,
        b_mult,
        out_mult,
        out_zero,
        lo,
        hi,
    } = p;
    let (am, bm, om) = (requant(a_mult), requant(b_mult), requant(out_mult));
    quote! {
        &::microarena::kernels::elementwise::AddI8 {
            a_zero: #a_zero, a_mult: #am, b_zero: #b_zero, b_mult: #bm, out_mult: #om,
            out_zero: #out_zero, lo: #lo, hi: #hi,
        }
    }
}

impl Kernel for ElementwiseOp {
    fn name(&self) -> &'static str {
        match self {
            ElementwiseOp::Binary(_) => "Binary",
            ElementwiseOp::AddI8(_) => "AddI8",
            ElementwiseOp::AddI8Q31(_) => "AddI8Q31",
        }
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            ElementwiseOp::Binary(p) => Some(&mut p.act),
            ElementwiseOp::AddI8(_) | ElementwiseOp::AddI8Q31(_) => None,
        }
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        let distinct = node.inputs[0] != node.inputs[1];
        (0..2)
            .filter(|&pos| {
                distinct
                    && same_size_input(g, node, pos)
                    && match self {
                        ElementwiseOp::Binary(b) => {
                            let strides = if pos == 0 { &b.a_strides } else { &b.b_strides };
                            contiguous(&b.shape[..b.rank], &strides[..b.rank])
                        }
                        ElementwiseOp::AddI8(_) | ElementwiseOp::AddI8Q31(_) => true,
                    }
            })
            .collect()
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let out = &call.out;
        call.wrap(match (self, call.in_place) {
            (ElementwiseOp::Binary(p), None) => {
                let (params, a, b) = (binary_params(p), call.operand(0), call.operand(1));
                quote!(::microarena::kernels::elementwise::binary(#params, #a, #b, #out);)
            }
            (ElementwiseOp::Binary(p), Some(pos)) => {
                let (params, other, io_is_a) = (binary_params(p), call.operand(1 - pos), pos == 0);
                quote!(::microarena::kernels::elementwise::binary_in_place(#params, #io_is_a, #out, #other);)
            }
            (ElementwiseOp::AddI8(p), None) => {
                let (params, a, b) = (add_i8_params(p), call.operand(0), call.operand(1));
                let terms = add_i8_terms(p);
                quote!(::microarena::kernels::elementwise::add_i8(#params, #terms, #a, #b, #out);)
            }
            (ElementwiseOp::AddI8(p), Some(pos)) => {
                // Over `b`, the operands swap roles.
                let p = if pos == 0 { *p } else { p.swapped() };
                let (params, other) = (add_i8_params(&p), call.operand(1 - pos));
                let terms = add_i8_terms(&p);
                quote!(::microarena::kernels::elementwise::add_i8_in_place(#params, #terms, #out, #other);)
            }
            (ElementwiseOp::AddI8Q31(p), None) => {
                let (params, a, b) = (add_i8_q31_params(p), call.operand(0), call.operand(1));
                let terms = add_i8_q31_terms(p);
                quote!(::microarena::kernels::elementwise::add_i8_q31(#params, #terms, #a, #b, #out);)
            }
            (ElementwiseOp::AddI8Q31(p), Some(pos)) => {
                let p = if pos == 0 { *p } else { p.swapped() };
                let (params, other) = (add_i8_q31_params(&p), call.operand(1 - pos));
                let terms = add_i8_q31_terms(&p);
                quote!(::microarena::kernels::elementwise::add_i8_q31_in_place(#params, #terms, #out, #other);)
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            ElementwiseOp::Binary(p) => {
                elementwise::binary(p, ins.f32(0), ins.f32(1), out.f32_mut())
            }
            ElementwiseOp::AddI8(p) => {
                elementwise::add_i8(p, &p.terms(), ins.i8(0), ins.i8(1), out.i8_mut())
            }
            ElementwiseOp::AddI8Q31(p) => {
                elementwise::add_i8_q31(p, &p.terms(), ins.i8(0), ins.i8(1), out.i8_mut())
            }
        }
    }

    fn run_in_place(&self, pos: usize, io: &mut Values, ins: &Inputs) {
        match self {
            ElementwiseOp::Binary(p) => {
                elementwise::binary_in_place(p, pos == 0, io.f32_mut(), ins.f32(1 - pos))
            }
            ElementwiseOp::AddI8(p) => {
                let p = if pos == 0 { *p } else { p.swapped() };
                elementwise::add_i8_in_place(&p, &p.terms(), io.i8_mut(), ins.i8(1 - pos))
            }
            ElementwiseOp::AddI8Q31(p) => {
                let p = if pos == 0 { *p } else { p.swapped() };
                elementwise::add_i8_q31_in_place(&p, &p.terms(), io.i8_mut(), ins.i8(1 - pos))
            }
        }
    }
}
