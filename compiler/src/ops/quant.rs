//! Quantisation (`kernels::quant`): float to int8 where a float input enters an int8 graph,
//! int8 to float where it hands back a float output, int8 to int8 of another scale (quantized
//! ReLU/Clip, scale changes); and the `Requant` literals every int8 kernel takes. The Q/DQ
//! nodes of QDQ models that make these are lowered by the plumbing in `crate::import::qdq`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{f32_lit, no_qdq, same_size_input, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Graph, Node, Values};
use crate::kernels::quant::{self, Dequantize, FixedPoint, Quantize, Requant, RequantizeI8};
use crate::kernels::scale::Q31;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "quant",
    onnx: &[],
    qdq: &[],
    lower,
    lower_qdq: no_qdq,
};

/// The quant family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantOp {
    /// `[x (f32)]` → i8: where a float input enters an int8 graph.
    Quantize(Quantize),
    /// `[x (i8)]` → f32: where an int8 graph hands back a float output.
    Dequantize(Dequantize),
    /// `[x (i8)]` → i8 of another scale, clamped (quantized ReLU/Clip, scale changes).
    Requantize(RequantizeI8),
}

/// Float models have no quantisation ops.
fn lower(_: &mut TypedLowering, _: &At) -> Option<Result<()>> {
    None
}

/// The per-channel requantisation of an int8 convolution or matrix product: ONNX's
/// (onnxruntime's float32 arithmetic) for ONNX models, TFLite's fixed point for `.tflite`
/// ones, so that each is bit-exact with its own reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Rescales {
    /// [`Requant`]: onnxruntime's float32 product, rounded half to even.
    Requant(Vec<Requant>),
    /// [`FixedPoint`]: TFLite's `MultiplyByQuantizedMultiplier`, one rounding (its fully
    /// connected layers).
    FixedPoint(Vec<FixedPoint>),
    /// The same factors with gemmlowp's two roundings
    /// ([`TwoRoundings`](crate::kernels::quant::TwoRoundings): TFLite's convolutions).
    TwoRoundings(Vec<FixedPoint>),
}

impl Rescales {
    /// `&[Requant { .. }, ...]` or `&[FixedPoint { .. }, ...]`, a constant slice in flash.
    pub(crate) fn tokens(&self) -> TokenStream {
        match self {
            Rescales::Requant(rs) => requant_slice(rs),
            Rescales::FixedPoint(fs) => {
                let items = fs.iter().map(fixed_point);
                quote!(&[#(#items),*])
            }
            Rescales::TwoRoundings(fs) => {
                let items = fs.iter().map(fixed_point);
                quote!(&[#(::microarena::kernels::quant::TwoRoundings(#items)),*])
            }
        }
    }
}

/// The per-channel scales of the fast int8 kernels (tiled, depthwise; `kernels::scale`):
/// ONNX's float32 scales, or TFLite's fixed point decoded for the Cortex-M assembly.
#[derive(Clone, Debug, PartialEq)]
pub enum FastScales {
    /// `Requant::scale` of each: `&[f32]`.
    Float(Vec<Requant>),
    /// [`Q31Twice`](crate::kernels::scale::Q31Twice): TFLite's convolutions.
    Twice(Vec<Q31>),
    /// [`Q31Once`](crate::kernels::scale::Q31Once): TFLite's fully connected layers.
    Once(Vec<Q31>),
}

impl FastScales {
    /// The fast form of `r` for channels whose accumulators stay within `max_acc[c]` in
    /// magnitude; `None` where the fixed point has no fast form (a factor of one half or
    /// more, or an accumulator that could reach 2^30: see `kernels::scale`).
    pub fn new(r: &Rescales, max_acc: &[i64]) -> Option<FastScales> {
        let q31 = |fs: &[FixedPoint]| -> Option<Vec<Q31>> {
            if max_acc.len() < fs.len() || max_acc.iter().any(|&m| m > Q31::MAX_ACC) {
                return None;
            }
            fs.iter().map(|&f| Q31::new(f)).collect()
        };
        Some(match r {
            Rescales::Requant(rs) => FastScales::Float(rs.clone()),
            Rescales::TwoRoundings(fs) => FastScales::Twice(q31(fs)?),
            Rescales::FixedPoint(fs) => FastScales::Once(q31(fs)?),
        })
    }

    /// The scales' slice literal: `&[0.0123f32, ...]` or `&[Q31Twice(Q31 { .. }), ...]`.
    pub(crate) fn tokens(&self) -> TokenStream {
        let q31 = |q: &Q31| {
            let Q31 {
                multiplier,
                round,
                exponent,
            } = q;
            quote! {
                ::microarena::kernels::scale::Q31 {
                    multiplier: #multiplier, round: #round, exponent: #exponent,
                }
            }
        };
        match self {
            FastScales::Float(rs) => scale_slice(rs),
            FastScales::Twice(qs) => {
                let items = qs.iter().map(q31);
                quote!(&[#(::microarena::kernels::scale::Q31Twice(#items)),*])
            }
            FastScales::Once(qs) => {
                let items = qs.iter().map(q31);
                quote!(&[#(::microarena::kernels::scale::Q31Once(#items)),*])
            }
        }
    }
}

/// Runs `$call` with `$scales` (a [`FastScales`]) as the kernels take them: `&[f32]`,
/// `&[Q31Twice]` or `&[Q31Once]`.
macro_rules! with_scales {
    ($fs:expr, |$scales:ident| $call:expr) => {
        match $fs {
            $crate::ops::quant::FastScales::Float(rs) => {
                let v: Vec<f32> = rs.iter().map(|r| r.scale()).collect();
                let $scales = &v[..];
                $call
            }
            $crate::ops::quant::FastScales::Twice(qs) => {
                let v: Vec<$crate::kernels::scale::Q31Twice> = qs
                    .iter()
                    .map(|&q| $crate::kernels::scale::Q31Twice(q))
                    .collect();
                let $scales = &v[..];
                $call
            }
            $crate::ops::quant::FastScales::Once(qs) => {
                let v: Vec<$crate::kernels::scale::Q31Once> = qs
                    .iter()
                    .map(|&q| $crate::kernels::scale::Q31Once(q))
                    .collect();
                let $scales = &v[..];
                $call
            }
        }
    };
}
pub(crate) use with_scales;

/// The largest magnitude each output channel's int32 sum of an int8 layer can reach: `Σ |w|
/// · max |x − input_zero|` over the channel's `weights` (one row of `taps` each) plus its
/// bias; the fast fixed-point scales need it below 2^30.
pub fn accumulator_bounds(
    weights: &[i8],
    taps: usize,
    bias: Option<&[i32]>,
    input_zero: i32,
) -> Vec<i64> {
    let x_max = i64::from((-128 - input_zero).abs().max((127 - input_zero).abs()));
    weights
        .chunks(taps.max(1))
        .enumerate()
        .map(|(c, row)| {
            let w: i64 = row.iter().map(|&w| i64::from(w).abs()).sum();
            w * x_max + bias.map_or(0, |b| i64::from(b[c]).abs())
        })
        .collect()
}

/// `FixedPoint { multiplier, shift }`
pub(crate) fn fixed_point(f: &FixedPoint) -> TokenStream {
    let FixedPoint { multiplier, shift } = f;
    quote!(::microarena::kernels::quant::FixedPoint { multiplier: #multiplier, shift: #shift })
}

/// `Requant { multiplier, shift }`
pub(crate) fn requant(r: &Requant) -> TokenStream {
    let Requant { multiplier, shift } = r;
    quote!(::microarena::kernels::quant::Requant { multiplier: #multiplier, shift: #shift })
}

/// `&[Requant { .. }, ...]`: a constant slice, promoted to a static (flash).
pub(crate) fn requant_slice(rs: &[Requant]) -> TokenStream {
    let items = rs.iter().map(requant);
    quote!(&[#(#items),*])
}

/// `&[0.0123f32, ...]`: the float32 scales of `rs` (`Requant::scale`), decoded here so that
/// kernels requantising in float need not decode them per output. Literals (printed exactly:
/// the shortest decimal that reads back as the same float), so the slice is promoted to a
/// static in flash; `f32::from_bits(..)` calls would be built on the stack at every run.
pub(crate) fn scale_slice(rs: &[Requant]) -> TokenStream {
    let items = rs.iter().map(|r| {
        let scale = r.scale();
        assert!(scale.is_finite(), "requantisation scales are finite");
        proc_macro2::Literal::f32_suffixed(scale)
    });
    quote!(&[#(#items),*])
}

fn requantize_params(p: &RequantizeI8) -> TokenStream {
    let RequantizeI8 {
        in_zero,
        mult,
        out_zero,
        lo,
        hi,
    } = p;
    let mult = requant(mult);
    quote! {
        &::microarena::kernels::quant::RequantizeI8 {
            in_zero: #in_zero, mult: #mult, out_zero: #out_zero, lo: #lo, hi: #hi,
        }
    }
}

impl Kernel for QuantOp {
    fn name(&self) -> &'static str {
        match self {
            QuantOp::Quantize(_) => "Quantize",
            QuantOp::Dequantize(_) => "Dequantize",
            QuantOp::Requantize(_) => "Requantize",
        }
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        match self {
            QuantOp::Requantize(_) if same_size_input(g, node, 0) => vec![0],
            _ => Vec::new(),
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let out = &call.out;
        call.wrap(match self {
            QuantOp::Quantize(Quantize { scale, zero }) => {
                let (scale, x) = (f32_lit(*scale), call.operand(0));
                quote! {
                    ::microarena::kernels::quant::quantize(
                        &::microarena::kernels::quant::Quantize { scale: #scale, zero: #zero }, #x, #out,
                    );
                }
            }
            QuantOp::Dequantize(Dequantize { scale, zero }) => {
                let (scale, x) = (f32_lit(*scale), call.operand(0));
                quote! {
                    ::microarena::kernels::quant::dequantize(
                        &::microarena::kernels::quant::Dequantize { scale: #scale, zero: #zero }, #x, #out,
                    );
                }
            }
            QuantOp::Requantize(p) => {
                let params = requantize_params(p);
                if call.in_place.is_some() {
                    quote!(::microarena::kernels::quant::requantize_i8_in_place(#params, #out);)
                } else {
                    let x = call.operand(0);
                    quote!(::microarena::kernels::quant::requantize_i8(#params, #x, #out);)
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            QuantOp::Quantize(p) => quant::quantize(p, ins.f32(0), out.i8_mut()),
            QuantOp::Dequantize(p) => quant::dequantize(p, ins.i8(0), out.f32_mut()),
            QuantOp::Requantize(p) => quant::requantize_i8(p, ins.i8(0), out.i8_mut()),
        }
    }

    fn run_in_place(&self, pos: usize, io: &mut Values, ins: &Inputs) {
        match self {
            QuantOp::Requantize(p) => quant::requantize_i8_in_place(p, io.i8_mut()),
            _ => panic!(
                "no in-place kernel for {} (input {pos}, {} inputs)",
                self.name(),
                ins.values.len()
            ),
        }
    }
}
