//! Per-channel scale and shift (`kernels::normalization`): a BatchNormalization or a
//! per-channel Mul/Add that could not be folded into the convolution or matrix product before
//! it (`crate::passes` builds these from tract's decluttered `Mul`/`Add` by a constant); and
//! tract's `RmsNorm`, which LayerNorms become (ONNX `LayerNormalization`, or the
//! ReduceMean/Sub/Pow/Sqrt/Div spelling: tract subtracts the mean, normalises by the root
//! mean square, and scales and shifts per feature, which `crate::passes` makes a ScaleShift);
//! and a QDQ model's `LayerNormalization` between int8 tensors, one kernel
//! (`kernels::normalization::layer_norm_i8`).

use proc_macro2::TokenStream;
use quote::quote;

use super::activation::activation_tokens;
use super::{same_size_input, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{At, TypedLowering};
use crate::ir::{DType, Graph, Node, TensorKind, Values};
use crate::kernels::normalization::{
    self, LayerNormI8, RmsNorm, ScaleShift, LAYER_NORM_I8_MAX_LEN,
};
use crate::kernels::Activation;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "normalization",
    onnx: &["BatchNormalization", "LayerNormalization"],
    qdq: &["LayerNormalization"],
    lower,
    lower_qdq,
};

/// The normalization family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum NormalizationOp {
    /// `[x, scale, shift]`
    ScaleShift(ScaleShift),
    /// `[x]`
    RmsNorm(RmsNorm),
    /// `[x (i8), gamma, beta]`: gamma and beta in the output's scale (see
    /// [`normalization::layer_norm_i8`]).
    LayerNormI8(LayerNormI8),
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

/// A QDQ `LayerNormalization`: `DequantizeLinear → LayerNormalization → QuantizeLinear`,
/// its scale and bias dequantized weights or float constants, over the axes from `axis` on.
fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    let out = cx.quantized_output(at)?;
    let x = cx.deq(at, 0)?;
    let shape = cx.graph.tensor(x).shape.clone();
    let axis = at.axis(at.attr_i("axis", -1), shape.len())?;
    let (rows, len) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis..].iter().product::<usize>(),
    );
    if len > LAYER_NORM_I8_MAX_LEN {
        return Err(at.err(format!(
            "an int8 LayerNormalization over {len} values a row (at most \
             {LAYER_NORM_I8_MAX_LEN}): normalise a shorter axis, or keep this op in float"
        )));
    }
    // Per value of a row: the constant broadcast (numpy's rules) to the normalised axes.
    let norm = shape[axis..].to_vec();
    let per_value = |pos: usize, default: f64| -> Result<Vec<f64>> {
        let Some((name, reals)) = cx.bias_reals(at, pos, |_| 1.0)? else {
            return Ok(vec![default; len]);
        };
        let given = cx.shape_of(&name).unwrap_or_else(|| vec![reals.len()]);
        let lead = given.len().saturating_sub(norm.len());
        let aligned: Vec<usize> = (0..norm.len())
            .map(|a| {
                (a + given.len())
                    .checked_sub(norm.len())
                    .map_or(1, |k| given[k])
            })
            .collect();
        let fits = given[..lead].iter().all(|&d| d == 1)
            && aligned.iter().zip(&norm).all(|(&g, &d)| g == 1 || g == d)
            && aligned.iter().product::<usize>() == reals.len();
        if !fits {
            return Err(at.err(format!(
                "`{name}` of shape {given:?} does not broadcast to the normalised axes \
                 {norm:?}"
            )));
        }
        // Row-major strides of the aligned shape, none along its axes of size one.
        let mut strides = vec![0; norm.len()];
        let mut step = 1;
        for a in (0..norm.len()).rev() {
            if aligned[a] > 1 {
                strides[a] = step;
                step *= aligned[a];
            }
        }
        Ok((0..len)
            .map(|i| {
                let (mut rest, mut k) = (i, 0);
                for a in (0..norm.len()).rev() {
                    k += rest % norm[a] * strides[a];
                    rest /= norm[a];
                }
                reals[k]
            })
            .collect())
    };
    let (gamma, beta) = (per_value(1, 1.0)?, per_value(2, 0.0)?);
    let q = out.q;
    let (s, z) = (f64::from(q.scale), f64::from(q.zero));
    let gamma: Vec<f32> = gamma.iter().map(|g| (g / s) as f32).collect();
    let beta: Vec<f32> = beta.iter().map(|b| (b / s + z) as f32).collect();
    let mut constant = |what: &str, v: Vec<f32>| {
        cx.graph.add_typed_tensor(
            format!("{}.{what}", at.out()),
            vec![len],
            DType::F32,
            TensorKind::Weight(v),
            None,
        )
    };
    let (gamma, beta) = (constant("gamma", gamma), constant("beta", beta));
    let p = LayerNormI8 {
        rows,
        len,
        in_scale: cx.quant(x).scale,
        eps: at.attr_f("epsilon", 1e-5),
        min: out.lo,
        max: out.hi,
    };
    let y = cx.new_i8(at.out(), shape, q);
    cx.emit(
        at,
        crate::ir::Op::Normalization(NormalizationOp::LayerNormI8(p)),
        vec![x, gamma, beta],
        y,
    );
    cx.bind_output(out, y);
    Ok(())
}

fn layer_norm_i8_params(p: &LayerNormI8) -> TokenStream {
    let LayerNormI8 {
        rows,
        len,
        in_scale,
        eps,
        min,
        max,
    } = p;
    let [rows, len] = [*rows, *len].map(u);
    let (in_scale, eps) = (super::f32_lit(*in_scale), super::f32_lit(*eps));
    quote! {
        &::microarena::kernels::normalization::LayerNormI8 {
            rows: #rows, len: #len, in_scale: #in_scale, eps: #eps, min: #min, max: #max,
        }
    }
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
            NormalizationOp::LayerNormI8(_) => "LayerNormI8",
        }
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            NormalizationOp::ScaleShift(p) => Some(&mut p.act),
            NormalizationOp::RmsNorm(p) => Some(&mut p.act),
            NormalizationOp::LayerNormI8(_) => None,
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
            NormalizationOp::LayerNormI8(p) => {
                let params = layer_norm_i8_params(p);
                let (gamma, beta) = (call.operand(1), call.operand(2));
                if call.in_place.is_some() {
                    quote!(#path::layer_norm_i8_in_place(#params, #out, #gamma, #beta);)
                } else {
                    let x = call.operand(0);
                    quote!(#path::layer_norm_i8(#params, #x, #gamma, #beta, #out);)
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
            NormalizationOp::LayerNormI8(p) => {
                normalization::layer_norm_i8(p, ins.i8(0), ins.f32(1), ins.f32(2), out.i8_mut())
            }
        }
    }

    fn run_in_place(&self, _pos: usize, io: &mut Values, ins: &Inputs) {
        match self {
            NormalizationOp::ScaleShift(p) => {
                normalization::scale_shift_in_place(p, io.f32_mut(), ins.f32(1), ins.f32(2))
            }
            NormalizationOp::RmsNorm(p) => normalization::rms_norm_in_place(p, io.f32_mut()),
            NormalizationOp::LayerNormI8(p) => {
                normalization::layer_norm_i8_in_place(p, io.i8_mut(), ins.f32(1), ins.f32(2))
            }
        }
    }
}
