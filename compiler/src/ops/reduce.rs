//! Reductions over contiguous axes (`kernels::reduce`): ReduceMean / Sum / Max / Min / Prod
//! and the mean of squares tract uses for ReduceL2-like forms.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::activation::activation_tokens;
use super::{no_qdq, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::typed::{outer_len_inner, At, TypedLowering};
use crate::ir::{Op, Values};
use crate::kernels::reduce::{self, Reduce as ReduceP, ReduceKind};
use crate::kernels::Activation;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "reduce",
    onnx: &[
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
    ],
    qdq: &[],
    lower,
    lower_qdq: no_qdq,
};

/// The reduce family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    /// `[x]`
    Reduce(ReduceP),
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let r = at.op::<Reduce>()?;
    Some((|| {
        cx.check_f32_node(at)?;
        let kind = match r.reducer {
            Reducer::Sum => ReduceKind::Sum,
            Reducer::Max => ReduceKind::Max,
            Reducer::Min => ReduceKind::Min,
            Reducer::Prod => ReduceKind::Prod,
            Reducer::MeanOfSquares => ReduceKind::MeanOfSquares,
            other => return Err(at.unsupported(format!("reduction {other:?}"))),
        };
        let shape = cx.in_shape(at, 0)?;
        let axes: Vec<usize> = r.axes.to_vec();
        let (outer, len, inner) = outer_len_inner(&shape, &axes).ok_or_else(|| {
            at.unsupported(format!(
                "reduction over non-contiguous axes {axes:?} of {shape:?}"
            ))
        })?;
        let x = cx.tensor(at, at.input(0))?;
        let p = ReduceP {
            outer,
            len,
            inner,
            kind,
            act: Activation::Identity,
        };
        cx.emit(at, Op::Reduce(ReduceOp::Reduce(p)), vec![x])
    })())
}

impl Kernel for ReduceOp {
    fn name(&self) -> &'static str {
        "Reduce"
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        let ReduceOp::Reduce(p) = self;
        Some(&mut p.act)
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let ReduceOp::Reduce(ReduceP {
            outer,
            len,
            inner,
            kind,
            act,
        }) = self;
        let [outer, len, inner] = [*outer, *len, *inner].map(u);
        let kind = match kind {
            ReduceKind::Sum => quote!(Sum),
            ReduceKind::Mean => quote!(Mean),
            ReduceKind::Max => quote!(Max),
            ReduceKind::Min => quote!(Min),
            ReduceKind::Prod => quote!(Prod),
            ReduceKind::MeanOfSquares => quote!(MeanOfSquares),
        };
        let act = activation_tokens(act);
        let (x, out) = (call.operand(0), &call.out);
        call.wrap(quote! {
            ::microarena::kernels::reduce::reduce(
                &::microarena::kernels::reduce::Reduce {
                    outer: #outer, len: #len, inner: #inner,
                    kind: ::microarena::kernels::reduce::ReduceKind::#kind, act: #act,
                },
                #x, #out,
            );
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        let ReduceOp::Reduce(p) = self;
        reduce::reduce(p, ins.f32(0), out.f32_mut());
    }
}
