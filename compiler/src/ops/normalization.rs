//! Per-channel scale and shift (`kernels::normalization`): a BatchNormalization or a
//! per-channel Mul/Add that could not be folded into the convolution or matrix product before
//! it (`crate::passes` builds these from tract's decluttered `Mul`/`Add` by a constant).

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::activation_tokens;
use super::{no_qdq, same_size_input, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Graph, Node, Values};
use crate::kernels::normalization::{self, ScaleShift};
use crate::kernels::Activation;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "normalization",
    onnx: &["BatchNormalization"],
    qdq: &[],
    lower,
    lower_qdq: no_qdq,
};

/// The normalization family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum NormalizationOp {
    /// `[x, scale, shift]`
    ScaleShift(ScaleShift),
}

/// tract folds BatchNormalization into `Mul` and `Add` by constants (the elementwise family
/// lowers those; `crate::passes` turns them into [`NormalizationOp::ScaleShift`]).
fn lower(_: &mut TypedLowering, _: &At) -> Option<Result<()>> {
    None
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
        "ScaleShift"
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        let NormalizationOp::ScaleShift(p) = self;
        Some(&mut p.act)
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        if same_size_input(g, node, 0) {
            vec![0]
        } else {
            Vec::new()
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let NormalizationOp::ScaleShift(p) = self;
        let (params, scale, shift, out) = (params(p), call.operand(1), call.operand(2), &call.out);
        call.wrap(if call.in_place.is_some() {
            quote!(::microarena::kernels::normalization::scale_shift_in_place(#params, #out, #scale, #shift);)
        } else {
            let x = call.operand(0);
            quote!(::microarena::kernels::normalization::scale_shift(#params, #x, #scale, #shift, #out);)
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        let NormalizationOp::ScaleShift(p) = self;
        normalization::scale_shift(p, ins.f32(0), ins.f32(1), ins.f32(2), out.f32_mut());
    }

    fn run_in_place(&self, _pos: usize, io: &mut Values, ins: &Inputs) {
        let NormalizationOp::ScaleShift(p) = self;
        normalization::scale_shift_in_place(p, io.f32_mut(), ins.f32(1), ins.f32(2));
    }
}
