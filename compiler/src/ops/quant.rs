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
