//! Per-channel scale and shift (`kernels::normalization`): a BatchNormalization or a
//! per-channel Mul/Add that could not be folded into the convolution or matrix product before
//! it (`crate::passes` builds these from tract's decluttered `Mul`/`Add` by a constant); and
//! tract's `RmsNorm`, which LayerNorms become (ONNX `LayerNormalization`, or the
//! ReduceMean/Sub/Pow/Sqrt/Div spelling: tract subtracts the mean, normalises by the root
//! mean square, and scales and shifts per feature, which `crate::passes` makes a ScaleShift).

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::activation_tokens;
use super::{no_qdq, same_size_input, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Graph, Node, Values};
use crate::kernels::normalization::{self, RmsNorm, ScaleShift};
use crate::kernels::Activation;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "normalization",
    onnx: &["BatchNormalization", "LayerNormalization"],
    qdq: &[],
    lower,
    lower_qdq: no_qdq,
};

/// The normalization family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum NormalizationOp {
    /// `[x, scale, shift]`
    ScaleShift(ScaleShift),
    /// `[x]`
    RmsNorm(RmsNorm),
}

/// tract folds BatchNormalization into `Mul` and `Add` by constants (the elementwise family
/// lowers those; `crate::passes` turns them into [`NormalizationOp::ScaleShift`]); a
/// LayerNorm arrives as `RmsNorm` between them.
fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let op = at.op::<tract_onnx::tract_core::ops::nn::RmsNorm>()?;
    Some(cx.check_f32_node(at).and_then(|()| {
        let s = cx.in_shape(at, 0)?;
        let (axis, inner) = (op.axis, s[op.axis + 1..].iter().product::<usize>());
        if inner != 1 {
            return Err(at.unsupported(format!(
                "normalisation over axis {axis} of {s:?} (the last axis, or one followed by \
                 axes of size one, is supported)"
            )));
        }
        let eps = op
            .eps
            .cast_to_scalar::<f32>()
            .map_err(|e| at.unsupported(format!("epsilon: {e}")))?;
        let p = RmsNorm {
            rows: s[..axis].iter().product(),
            len: s[axis],
            eps,
            act: Activation::Identity,
        };
        let x = cx.tensor(at, at.input(0))?;
        cx.emit(
            at,
            crate::ir::Op::Normalization(NormalizationOp::RmsNorm(p)),
            vec![x],
        )
    }))
}

fn rms_params(p: &RmsNorm) -> TokenStream {
    let RmsNorm {
        rows,
        len,
        eps,
        act,
    } = p;
    let [rows, len] = [*rows, *len].map(u);
    let (eps, act) = (super::f32_lit(*eps), activation_tokens(act));
    quote! {
        &::microarena::kernels::normalization::RmsNorm {
            rows: #rows, len: #len, eps: #eps, act: #act,
        }
    }
}

fn params(p: &ScaleShift) -> TokenStream {
    let ScaleShift {
        outer,
        channels,
        inner,
        act,
    } = p;
    let [outer, channels, inner] = [*outer, *channels, *inner].map(u);
    let act = activation_tokens(act);
    quote! {
        &::microarena::kernels::normalization::ScaleShift {
            outer: #outer, channels: #channels, inner: #inner, act: #act,
        }
    }
}

impl Kernel for NormalizationOp {
    fn name(&self) -> &'static str {
        match self {
            NormalizationOp::ScaleShift(_) => "ScaleShift",
            NormalizationOp::RmsNorm(_) => "RmsNorm",
        }
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            NormalizationOp::ScaleShift(p) => Some(&mut p.act),
            NormalizationOp::RmsNorm(p) => Some(&mut p.act),
        }
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        if same_size_input(g, node, 0) {
            vec![0]
        } else {
            Vec::new()
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let out = &call.out;
        let path = quote!(::microarena::kernels::normalization);
        call.wrap(match self {
            NormalizationOp::ScaleShift(p) => {
                let (params, scale, shift) = (params(p), call.operand(1), call.operand(2));
                if call.in_place.is_some() {
                    quote!(#path::scale_shift_in_place(#params, #out, #scale, #shift);)
                } else {
                    let x = call.operand(0);
                    quote!(#path::scale_shift(#params, #x, #scale, #shift, #out);)
                }
            }
            NormalizationOp::RmsNorm(p) => {
                let params = rms_params(p);
                if call.in_place.is_some() {
                    quote!(#path::rms_norm_in_place(#params, #out);)
                } else {
                    let x = call.operand(0);
                    quote!(#path::rms_norm(#params, #x, #out);)
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            NormalizationOp::ScaleShift(p) => {
                normalization::scale_shift(p, ins.f32(0), ins.f32(1), ins.f32(2), out.f32_mut())
            }
            NormalizationOp::RmsNorm(p) => normalization::rms_norm(p, ins.f32(0), out.f32_mut()),
        }
    }

    fn run_in_place(&self, _pos: usize, io: &mut Values, ins: &Inputs) {
        match self {
            NormalizationOp::ScaleShift(p) => {
                normalization::scale_shift_in_place(p, io.f32_mut(), ins.f32(1), ins.f32(2))
            }
            NormalizationOp::RmsNorm(p) => normalization::rms_norm_in_place(p, io.f32_mut()),
        }
    }
}
