//! Unary functions (`kernels::activation`): ReLU and clips, sigmoid, tanh, exp, ... as
//! standalone ops; most end up fused into the op that produces their input (`crate::passes`).

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::prelude::OutletId;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::logic::Iff;

use super::elementwise::select_on_sign;
use super::{f32_lit, same_size_input, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering, Val};
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Graph, Node, Op, Values};
use crate::kernels::{activation, Activation};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "activation",
    onnx: &[
        "Abs",
        "Clip",
        "Elu",
        "Erf",
        "Exp",
        "HardSigmoid",
        "HardSwish",
        "LeakyRelu",
        "Log",
        "Neg",
        "Reciprocal",
        "Relu",
        "Selu",
        "Sigmoid",
        "Sqrt",
        "Tanh",
    ],
    qdq: &["Clip", "Relu"],
    lower,
    lower_qdq,
};

/// The activation family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum ActivationOp {
    /// `[x]`: a standalone unary function.
    Unary(Activation),
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    if at.op::<Iff>().is_some() {
        return Some(elu(cx, at));
    }
    let e = at.op::<ElementWiseOp>()?;
    Some((|| {
        cx.check_f32_node(at)?;
        let act = activation_of(at, e)?;
        let x = cx.tensor(at, at.input(0))?;
        cx.emit(at, Op::Activation(ActivationOp::Unary(act)), vec![x])
    })())
}

/// tract writes Elu as `Iff(0 < x, x, alpha · (exp(x) − 1))` and Selu as the same with
/// `alpha · exp(x) − alpha`, times gamma after (which `crate::passes` folds into the
/// activation's scale). The negative branch is read back as `a · exp(x) + b` through the
/// tract nodes that build it; `b = −a` makes it an Elu of alpha `a`.
fn elu(cx: &mut TypedLowering, at: &At) -> Result<()> {
    let not_supported = || {
        at.unsupported(
            "a select (Where/Iff) that is none of PRelu `x < 0 ? x * slope : x`, Elu and Selu",
        )
    };
    let (x, neg) = select_on_sign(cx, at).ok_or_else(not_supported)?;
    let (a, b) = exp_affine(cx, x, neg, 8).ok_or_else(not_supported)?;
    if b != -a {
        return Err(not_supported());
    }
    cx.check_f32_node(at)?;
    let t = cx.tensor(at, x)?;
    let act = Activation::Elu {
        alpha: a,
        scale: 1.0,
    };
    cx.emit(at, Op::Activation(ActivationOp::Unary(act)), vec![t])
}

/// `(a, b)` when outlet `o` computes `a · exp(x) + b` through scalar Add/Sub/Mul nodes and
/// one `Exp` of `x` (at most `depth` nodes deep).
fn exp_affine(cx: &TypedLowering, x: OutletId, o: OutletId, depth: usize) -> Option<(f32, f32)> {
    if depth == 0 {
        return None;
    }
    let node = &cx.model.nodes[o.node];
    if let Some(e) = node.op.downcast_ref::<ElementWiseOp>() {
        return (e.0.name() == "Exp" && e.1.is_none() && node.inputs == [x]).then_some((1.0, 0.0));
    }
    let op = node.op.downcast_ref::<TypedBinOp>()?;
    let scalar = |o: OutletId| -> Option<f32> {
        let t = cx.konst(o)?;
        (t.len() == 1)
            .then(|| t.cast_to_scalar::<f32>().ok())
            .flatten()
    };
    let (i0, i1) = (node.inputs[0], node.inputs[1]);
    let (c, f, const_first) = match (scalar(i0), scalar(i1)) {
        (Some(c), None) => (c, i1, true),
        (None, Some(c)) => (c, i0, false),
        _ => return None,
    };
    let (a, b) = exp_affine(cx, x, f, depth - 1)?;
    Some(match (op.0.name(), const_first) {
        ("Mul", _) => (a * c, b * c),
        ("Add", _) => (a, b + c),
        ("Sub", false) => (a, b - c),
        ("Sub", true) => (-a, c - b),
        _ => return None,
    })
}

/// The function behind tract's elementwise op.
fn activation_of(at: &At, e: &ElementWiseOp) -> Result<Activation> {
    if e.1.is_some() {
        return Err(at.unsupported("quantized elementwise op"));
    }
    let name = e.0.name();
    Ok(match name.as_str() {
        "Sigmoid" => Activation::Sigmoid,
        "Tanh" => Activation::Tanh,
        "HardSwish" => Activation::HardSwish,
        // tract's declutter finds `x · Sigmoid(x)` (`crate::passes::fuse_gates` the rest).
        "Silu" => Activation::Silu,
        "Exp" => Activation::Exp,
        "Ln" => Activation::Ln,
        "Abs" => Activation::Abs,
        "Sqrt" => Activation::Sqrt,
        "Recip" => Activation::Recip,
        "Erf" => Activation::Erf,
        "Rsqrt" => Activation::Rsqrt,
        "Square" => Activation::Square,
        "Neg" => Activation::AffineClip {
            scale: -1.0,
            shift: 0.0,
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
        },
        "LeakyRelu" => {
            let l =
                e.0.downcast_ref::<tract_onnx::tract_core::ops::nn::LeakyRelu>()
                    .ok_or_else(|| at.unsupported("LeakyRelu without alpha"))?;
            Activation::LeakyRelu { alpha: l.alpha }
        }
        other => return Err(at.unsupported(format!("elementwise function {other}"))),
    })
}

/// A Relu or Clip of a QDQ model that no op before it absorbed: a clamp in its input's scale.
fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    let x = cx.deq(at, 0)?;
    let q = cx.quant(x);
    let range = cx.clamp_range(at, q)?;
    let y = cx.requantize_clamped(at, x, q, range, at.out());
    cx.bind(at.out(), Val::Deq(y));
    Ok(())
}

/// `::microarena::kernels::Activation::...`
pub(crate) fn activation_tokens(a: &Activation) -> TokenStream {
    let path = quote!(::microarena::kernels::Activation);
    match *a {
        Activation::Identity => quote!(#path::Identity),
        Activation::Clip { min, max } => {
            let (min, max) = (f32_lit(min), f32_lit(max));
            quote!(#path::Clip { min: #min, max: #max })
        }
        Activation::AffineClip {
            scale,
            shift,
            min,
            max,
        } => {
            let (scale, shift, min, max) =
                (f32_lit(scale), f32_lit(shift), f32_lit(min), f32_lit(max));
            quote!(#path::AffineClip { scale: #scale, shift: #shift, min: #min, max: #max })
        }
        Activation::LeakyRelu { alpha } => {
            let alpha = f32_lit(alpha);
            quote!(#path::LeakyRelu { alpha: #alpha })
        }
        Activation::LeakyReluClip { alpha, min, max } => {
            let (alpha, min, max) = (f32_lit(alpha), f32_lit(min), f32_lit(max));
            quote!(#path::LeakyReluClip { alpha: #alpha, min: #min, max: #max })
        }
        Activation::Elu { alpha, scale } => {
            let (alpha, scale) = (f32_lit(alpha), f32_lit(scale));
            quote!(#path::Elu { alpha: #alpha, scale: #scale })
        }
        Activation::Sigmoid => quote!(#path::Sigmoid),
        Activation::Tanh => quote!(#path::Tanh),
        Activation::HardSwish => quote!(#path::HardSwish),
        Activation::GatedClip {
            scale,
            shift,
            min,
            max,
        } => {
            let (scale, shift, min, max) =
                (f32_lit(scale), f32_lit(shift), f32_lit(min), f32_lit(max));
            quote!(#path::GatedClip { scale: #scale, shift: #shift, min: #min, max: #max })
        }
        Activation::Silu => quote!(#path::Silu),
        Activation::Exp => quote!(#path::Exp),
        Activation::Ln => quote!(#path::Ln),
        Activation::Abs => quote!(#path::Abs),
        Activation::Sqrt => quote!(#path::Sqrt),
        Activation::Recip => quote!(#path::Recip),
        Activation::Erf => quote!(#path::Erf),
        Activation::Rsqrt => quote!(#path::Rsqrt),
        Activation::Square => quote!(#path::Square),
    }
}

impl Kernel for ActivationOp {
    fn name(&self) -> &'static str {
        "Unary"
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        let ActivationOp::Unary(a) = self;
        Some(a)
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        if same_size_input(g, node, 0) {
            vec![0]
        } else {
            Vec::new()
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let ActivationOp::Unary(a) = self;
        let act = activation_tokens(a);
        let out = &call.out;
        call.wrap(if call.in_place.is_some() {
            quote!(::microarena::kernels::activation::unary_in_place(#act, #out);)
        } else {
            let x = call.operand(0);
            quote!(::microarena::kernels::activation::unary(#act, #x, #out);)
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        let ActivationOp::Unary(a) = self;
        activation::unary(*a, ins.f32(0), out.f32_mut());
    }

    fn run_in_place(&self, _pos: usize, io: &mut Values, _ins: &Inputs) {
        let ActivationOp::Unary(a) = self;
        activation::unary_in_place(*a, io.f32_mut());
    }
}
