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

    /// The scales with the output zero point `zero` in them where they can hold it (the fixed
    /// point: [`Q31::with_zero`]), and the zero point the kernel is then to add (0 for the
    /// fixed point, `zero` for float scales); `None` when a channel's exponent is too large
    /// to fold into (the reference kernel stays).
    pub fn with_output_zero(self, zero: i32) -> Option<(FastScales, i32)> {
        let fold = |qs: Vec<Q31>| -> Option<Vec<Q31>> {
            qs.into_iter().map(|q| q.with_zero(zero)).collect()
        };
        Some(match self {
            FastScales::Float(rs) => (FastScales::Float(rs), zero),
            FastScales::Twice(qs) => (FastScales::Twice(fold(qs)?), 0),
            FastScales::Once(qs) => (FastScales::Once(fold(qs)?), 0),
        })
    }

    /// The scales' slice literal: `&[0.0123f32, ...]` or `&[Q31Twice(Q31 { .. }), ...]`.
    pub(crate) fn tokens(&self) -> TokenStream {
        let q31 = |q: &Q31| {
            let Q31 { multiplier, round } = q;
            quote! {
                ::microarena::kernels::scale::Q31 { multiplier: #multiplier, round: #round }
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

/// The fast kernels' scales for an int8 layer (weights one channel after another, `taps`
/// each), its constant channels settled first ([`settle_constant_channels`]), and the bias
/// to use instead of `bias` when settling changed it; `None` when the scales have no fast
/// form ([`FastScales::new`]: the reference kernel stays).
pub fn fast_scales(
    weights: &[i8],
    taps: usize,
    bias: Option<&[i32]>,
    rescales: &Rescales,
    input_zero: i32,
) -> Option<(FastScales, Option<Vec<i32>>)> {
    let settled = bias.and_then(|b| settle_constant_channels(weights, taps, b, rescales));
    let (bias, rescales) = match &settled {
        Some((b, r)) => (Some(&b[..]), r),
        None => (bias, rescales),
    };
    let bounds = accumulator_bounds(weights, taps, bias, input_zero);
    let scales = FastScales::new(rescales, &bounds)?;
    Some((scales, settled.map(|(b, _)| b)))
}

/// A TFLite layer's channels whose weights are all zero, rewritten to give the same bytes
/// within the fast kernels' range. Such a channel writes one constant, the requantised
/// bias; converters leave it with whatever scale and bias training left (MLPerf Tiny's VWW
/// model: biases of ±2^30 and factors of one half or more), which the fast fixed point
/// cannot take. The channel's bias becomes `4·y` and its factor exactly 1/4, `y` the
/// constant (clamped to ±512, which changes no output byte: every int8 zero point and
/// clamp bound lies within ±128), so every kernel computes `y` exactly. `None` when no
/// channel changes (ONNX's float scales need no such care).
///
/// ```
/// use microarena_compiler::kernels::quant::{FixedPoint, Rescale, TwoRoundings};
/// use microarena_compiler::ops::quant::{settle_constant_channels, Rescales};
/// let f = FixedPoint { multiplier: 1 << 30, shift: 2 }; // a factor of 2
/// let weights = [0i8; 9];
/// let (bias, r) = settle_constant_channels(&weights, 9, &[1 << 30], &Rescales::TwoRoundings(vec![f])).unwrap();
/// let Rescales::TwoRoundings(g) = &r else { unreachable!() };
/// let before = TwoRoundings(f).requantize(1 << 30, -3, -128, 127);
/// assert_eq!(TwoRoundings(g[0]).requantize(bias[0], -3, -128, 127), before);
/// assert!(bias[0].abs() <= 2048 && g[0].shift < 0);
/// ```
pub fn settle_constant_channels(
    weights: &[i8],
    taps: usize,
    bias: &[i32],
    rescales: &Rescales,
) -> Option<(Vec<i32>, Rescales)> {
    let (fs, twice) = match rescales {
        Rescales::Requant(_) => return None,
        Rescales::FixedPoint(fs) => (fs, false),
        Rescales::TwoRoundings(fs) => (fs, true),
    };
    let quarter = FixedPoint {
        multiplier: 1 << 30,
        shift: -1,
    };
    let mut bias = bias.to_vec();
    let mut out = fs.clone();
    let mut changed = false;
    for (c, row) in weights.chunks(taps.max(1)).enumerate() {
        if c >= fs.len() || c >= bias.len() || row.iter().any(|&w| w != 0) {
            continue;
        }
        let y = if twice {
            quant::TwoRoundings(fs[c]).apply(bias[c])
        } else {
            fs[c].apply(bias[c])
        }
        .clamp(-512, 512);
        if (bias[c], fs[c]) != (4 * y, quarter) {
            (bias[c], out[c], changed) = (4 * y, quarter, true);
        }
    }
    let r = if twice {
        Rescales::TwoRoundings(out)
    } else {
        Rescales::FixedPoint(out)
    };
    changed.then_some((bias, r))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::{Rescale, TwoRoundings};

    /// Every constant channel keeps its output byte for every zero point and clamp, over
    /// biases and factors across their whole range; channels with a weight keep theirs.
    #[test]
    fn settled_channels_keep_their_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let channels = 4;
            let taps = 3;
            let mut weights = vec![0i8; channels * taps];
            weights[taps] = 1; // channel 1 is not constant
            let bias: Vec<i32> = (0..channels).map(|_| next() as i32).collect();
            let fs: Vec<FixedPoint> = (0..channels)
                .map(|_| FixedPoint::from_real(f64::from(next() as u32) / f64::from(1u32 << 24)))
                .collect();
            for twice in [false, true] {
                let r = if twice {
                    Rescales::TwoRoundings(fs.clone())
                } else {
                    Rescales::FixedPoint(fs.clone())
                };
                let Some((b, settled)) = settle_constant_channels(&weights, taps, &bias, &r) else {
                    panic!("channels 0, 2 and 3 are constant and not yet settled");
                };
                let (Rescales::TwoRoundings(gs) | Rescales::FixedPoint(gs)) = &settled else {
                    unreachable!()
                };
                assert_eq!((b[1], gs[1]), (bias[1], fs[1]), "a live channel changed");
                for c in [0, 2, 3] {
                    assert!(b[c].abs() <= 2048 && gs[c].shift < 0);
                    for zp in [-128, -5, 0, 77, 127] {
                        let (lo, hi) = (-128 + (zp & 7) as i8, 127 - (zp & 3) as i8);
                        let (old, new) = if twice {
                            (
                                TwoRoundings(fs[c]).requantize(bias[c], zp, lo, hi),
                                TwoRoundings(gs[c]).requantize(b[c], zp, lo, hi),
                            )
                        } else {
                            (
                                fs[c].requantize(bias[c], zp, lo, hi),
                                gs[c].requantize(b[c], zp, lo, hi),
                            )
                        };
                        assert_eq!(old, new, "channel {c}, bias {}, {:?}", bias[c], fs[c]);
                    }
                }
                // Settled once, there is nothing left to settle.
                assert!(settle_constant_channels(&weights, taps, &b, &settled).is_none());
            }
        }
    }
}
