//! The int8 ops of a fully quantized TFLite model, with TFLite's arithmetic so that every
//! output is the TFLite interpreter's, bit for bit: per-channel weights, per-tensor
//! activations, int32 biases, requantisation in TFLite's fixed point
//! ([`FixedPoint`](crate::kernels::quant::FixedPoint), multipliers and shifts computed as
//! TFLite's `Prepare` computes them), fused activations as TFLite clamps them, its integer
//! average pooling and its fixed-point softmax.

use tract_tflite::tflite::{ActivationFunctionType, Operator, TensorType};

use super::{nchw_shape, oihw, At, Lowering};
use crate::error::Result;
use crate::ir::{DType, Op, Quant, TensorId, TensorKind};
use crate::kernels::conv::ConvI8;
use crate::kernels::elementwise::AddI8Q31;
use crate::kernels::gemm::{MatMul, MatMulI8};
use crate::kernels::pool::{window_taps, AvgPoolI8};
use crate::kernels::quant::FixedPoint;
use crate::kernels::softmax::SoftmaxQ31;
use crate::kernels::Activation;
use crate::ops::conv::ConvOp;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::gemm::GemmOp;
use crate::ops::pool::{ByCount, PoolOp};
use crate::ops::quant::Rescales;
use crate::ops::softmax::SoftmaxOp;

/// TFLite's `TfLiteRound`: half away from zero.
fn round_away(x: f32) -> i32 {
    x.round() as i32
}

impl<'a> Lowering<'a> {
    /// The output range of a fused activation, as TFLite clamps it
    /// (`CalculateActivationRangeQuantized`: the bounds quantized with the output's scale,
    /// `f / scale` in float32, rounded half away from zero).
    fn act_range(&self, at: &At, f: ActivationFunctionType, q: Quant) -> Result<(i8, i8)> {
        let quantize = |v: f32| q.zero.saturating_add(round_away(v / q.scale));
        let clamp = |v: i32| v.clamp(-128, 127) as i8;
        Ok(match f {
            ActivationFunctionType::NONE => (-128, 127),
            ActivationFunctionType::RELU => (clamp(quantize(0.0)), 127),
            ActivationFunctionType::RELU6 => (clamp(quantize(0.0)), clamp(quantize(6.0))),
            ActivationFunctionType::RELU_N1_TO_1 => (clamp(quantize(-1.0)), clamp(quantize(1.0))),
            other => {
                return Err(at.err(format!(
                    "fused activation {} on an int8 output",
                    other.variant_name().unwrap_or("(unknown)")
                )))
            }
        })
    }

    /// The int8 activation input `t` (NCHW if 4-D in our graph) and its quantisation.
    fn int8_input(&mut self, at: &At, t: i32) -> Result<(TensorId, Quant, bool)> {
        self.check_type(at, t, TensorType::INT8)?;
        let q = self.quant(at, t)?;
        let h = self.value(at, t)?;
        Ok((h.id, q, h.nchw))
    }

    /// A new int8 activation of the op's output tensor `out`.
    fn new_i8(&mut self, at: &At, out: i32, shape: Vec<usize>) -> Result<(TensorId, Quant)> {
        let q = self.quant(at, out)?;
        let id = self.graph.add_typed_tensor(
            self.name(out),
            shape,
            DType::I8,
            TensorKind::Activation,
            Some(q),
        );
        Ok((id, q))
    }

    /// A node writing the existing tensor `y`.
    fn emit_i8(&mut self, at: &At, op: Op, inputs: Vec<TensorId>, y: TensorId) {
        self.graph.nodes.push(crate::ir::Node {
            name: at.name.clone(),
            op_type: at.op_type.clone(),
            op,
            inputs,
            output: y,
            scratch: None,
            rank: crate::ir::OrderRank {
                file: at.ix,
                tract: at.ix,
            },
        });
    }

    /// Int8 weights `t`: their values and per-channel scales (one scale: per tensor), with
    /// zero points 0 (TFLite's int8 weights are symmetric).
    pub(super) fn int8_weights(&self, at: &At, t: i32) -> Result<(Vec<i8>, Vec<f32>)> {
        self.check_type(at, t, TensorType::INT8)?;
        let data = self
            .buffer(t)?
            .ok_or_else(|| at.err(format!("weights `{}` are not constant", self.name(t))))?;
        let n: usize = self.shape(t)?.iter().product();
        if data.len() != n {
            return Err(at.err(format!(
                "weights `{}` hold {} bytes for {n} values",
                self.name(t),
                data.len()
            )));
        }
        let q = self.tensor(t)?.quantization();
        let scales: Vec<f32> = q
            .and_then(|q| q.scale())
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let zeros_ok = q
            .and_then(|q| q.zero_point())
            .is_none_or(|z| z.iter().all(|z| z == 0));
        if scales.is_empty() || !zeros_ok || scales.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return Err(at.err(format!(
                "weights `{}` are not symmetric int8 with positive scales",
                self.name(t)
            )));
        }
        Ok((data.iter().map(|&b| b as i8).collect(), scales))
    }

    /// An int32 bias `t` of `n` values.
    fn int32_bias(&self, at: &At, t: i32, n: usize) -> Result<Vec<i32>> {
        self.check_type(at, t, TensorType::INT32)
            .map_err(|_| at.err(format!("bias `{}` is not int32", self.name(t))))?;
        let data = self
            .buffer(t)?
            .ok_or_else(|| at.err(format!("bias `{}` is not constant", self.name(t))))?;
        if data.len() != 4 * n {
            return Err(at.err(format!(
                "bias `{}` holds {} bytes for {n} values",
                self.name(t),
                data.len()
            )));
        }
        Ok(data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The op's optional bias input as a flash tensor.
    fn bias_input(&mut self, at: &At, ins: &[i32], n: usize) -> Result<Option<TensorId>> {
        let Some(&b) = ins.get(2).filter(|&&b| b >= 0) else {
            return Ok(None);
        };
        let bias = self.int32_bias(at, b, n)?;
        let name = self.name(b);
        Ok(Some(self.graph.add_typed_tensor(
            name,
            vec![n],
            DType::I32,
            TensorKind::WeightI32(bias),
            None,
        )))
    }

    pub(super) fn conv_i8(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        depthwise: bool,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        let (x, qx, _) = self.int8_input(at, xt)?;
        let xs = self.shape(xt)?;
        let os = self.shape(out)?;
        let wt = self.input(at, ins, 1)?;
        let ws = self.shape(wt)?;
        let (w, w_scales) = self.int8_weights(at, wt)?;
        let (geom, act) = self.conv_geometry(at, op, depthwise, &xs, &ws, &os)?;
        let out_c = geom.out_c;
        if w_scales.len() != 1 && w_scales.len() != out_c {
            return Err(at.err(format!(
                "{} weight scales for {out_c} channels",
                w_scales.len()
            )));
        }
        let (y, qy) = self.new_i8(at, out, nchw_shape(&os))?;
        let (lo, hi) = self.act_range(at, act, qy)?;
        // PopulateConvolutionQuantizationParams: input · filter / output scale in double.
        let rescales = (0..out_c)
            .map(|c| {
                let sw = w_scales[if w_scales.len() == 1 { 0 } else { c }];
                FixedPoint::from_real(f64::from(qx.scale) * f64::from(sw) / f64::from(qy.scale))
            })
            .collect();
        let name = self.name(wt);
        let shape = vec![out_c, geom.in_c / geom.groups, ws[1], ws[2]];
        let weights = oihw(&w, &ws, depthwise, out_c);
        let wid = self.graph.add_typed_tensor(
            name,
            shape,
            DType::I8,
            TensorKind::WeightI8(weights),
            None,
        );
        let mut inputs = vec![x, wid];
        inputs.extend(self.bias_input(at, ins, out_c)?);
        let p = ConvI8 {
            geom,
            input_zero: qx.zero,
            output_zero: qy.zero,
            lo,
            hi,
        };
        // The interpreter's convolutions round twice (see `TwoRoundings`).
        self.emit_i8(
            at,
            Op::Conv(ConvOp::I8(p, Rescales::TwoRoundings(rescales))),
            inputs,
            y,
        );
        self.bind(out, y, true);
        Ok(())
    }

    pub(super) fn fully_connected_i8(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        let (x, qx, nchw) = self.int8_input(at, xt)?;
        let xs = self.shape(xt)?;
        let os = self.shape(out)?;
        let wt = self.input(at, ins, 1)?;
        let ws = self.shape(wt)?;
        let ((m, n, k), act) = self.fully_connected_shape(at, op, &xs, &ws, &os)?;
        let (w, w_scales) = self.int8_weights(at, wt)?;
        if w_scales.len() != 1 && w_scales.len() != n {
            return Err(at.err(format!("{} weight scales for {n} outputs", w_scales.len())));
        }
        // A flattened NHWC map held NCHW: the weight columns follow our layout.
        let w = self.fully_connected_columns(at, w, n, m, &xs, nchw)?;
        let (y, qy) = self.new_i8(at, out, os.clone())?;
        let (lo, hi) = self.act_range(at, act, qy)?;
        // GetQuantizedConvolutionMultipler: the product of the scales in float32, then
        // over the output scale in double; per channel as the convolution.
        let rescales = if w_scales.len() == 1 {
            let real = f64::from(qx.scale * w_scales[0]) / f64::from(qy.scale);
            vec![FixedPoint::from_real(real); n]
        } else {
            w_scales
                .iter()
                .map(|&sw| {
                    FixedPoint::from_real(f64::from(qx.scale) * f64::from(sw) / f64::from(qy.scale))
                })
                .collect()
        };
        let name = self.name(wt);
        let wid =
            self.graph
                .add_typed_tensor(name, vec![n, k], DType::I8, TensorKind::WeightI8(w), None);
        let mut inputs = vec![x, wid];
        inputs.extend(self.bias_input(at, ins, n)?);
        let p = MatMulI8 {
            geom: MatMul {
                m,
                n,
                k,
                a_stride_m: k,
                a_stride_k: 1,
                b_stride_n: k,
                b_stride_k: 1,
                out_stride_m: n,
                out_stride_n: 1,
                act: Activation::Identity,
            },
            a_zero: qx.zero,
            out_zero: qy.zero,
            lo,
            hi,
        };
        self.emit_i8(
            at,
            Op::Gemm(GemmOp::I8(p, Rescales::FixedPoint(rescales))),
            inputs,
            y,
        );
        self.bind(out, y, false);
        Ok(())
    }

    pub(super) fn add_i8(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let (ta, tb) = (self.input(at, ins, 0)?, self.input(at, ins, 1)?);
        let os = self.shape(out)?;
        let (sa, sb) = (self.shape(ta)?, self.shape(tb)?);
        if sa != os || sb != os {
            return Err(at.err(format!(
                "operands {sa:?} and {sb:?} broadcast to {os:?} (operands of the output's shape are supported)"
            )));
        }
        let (a, qa, a_nchw) = self.int8_input(at, ta)?;
        let (b, qb, b_nchw) = self.int8_input(at, tb)?;
        if a_nchw != b_nchw {
            return Err(at.err("operands in different layouts"));
        }
        let act = op
            .builtin_options_as_add_options()
            .map_or(ActivationFunctionType::NONE, |o| {
                o.fused_activation_function()
            });
        let shape = if a_nchw { nchw_shape(&os) } else { os.clone() };
        let (y, qy) = self.new_i8(at, out, shape)?;
        let (lo, hi) = self.act_range(at, act, qy)?;
        let p = AddI8Q31::new(
            (qa.scale, qa.zero),
            (qb.scale, qb.zero),
            (qy.scale, qy.zero),
            lo,
            hi,
        );
        self.emit_i8(
            at,
            Op::Elementwise(ElementwiseOp::AddI8Q31(p)),
            vec![a, b],
            y,
        );
        self.bind(out, y, a_nchw);
        Ok(())
    }

    pub(super) fn pool_i8(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        max: bool,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        let (x, qx, _) = self.int8_input(at, xt)?;
        let xs = self.shape(xt)?;
        let os = self.shape(out)?;
        let (geom, act) = self.pool_geometry(at, op, max, &xs, &os)?;
        let window = geom.window;
        let (y, qy) = self.new_i8(at, out, nchw_shape(&os))?;
        // TFLite's int8 poolings move values: input and output share their quantisation.
        if qx != qy {
            return Err(at.err(format!(
                "input quantised {qx:?} and output {qy:?}: TFLite's int8 pooling keeps one"
            )));
        }
        let (lo, hi) = self.act_range(at, act, qy)?;
        let op = if max {
            PoolOp::MaxI8 { geom, lo, hi }
        } else {
            let mut counts: Vec<u32> = Vec::new();
            for oy in 0..window.out_h {
                for ox in 0..window.out_w {
                    let c = window_taps(&geom, oy, ox) as u32;
                    if c == 0 {
                        return Err(at.err("a pooling window covers no input"));
                    }
                    if !counts.contains(&c) {
                        counts.push(c);
                    }
                }
            }
            counts.sort_unstable();
            // The raw bytes summed and divided (both zero points 0: TFLite averages the
            // stored values, its input and output sharing scale and zero point).
            PoolOp::AvgI8 {
                geom,
                quant: AvgPoolI8 {
                    in_zero: 0,
                    out_zero: 0,
                    lo,
                    hi,
                },
                by_count: ByCount::Divide(counts),
            }
        };
        self.emit_i8(at, Op::Pool(op), vec![x], y);
        self.bind(out, y, true);
        Ok(())
    }

    pub(super) fn softmax_i8(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        let (x, qx, nchw) = self.int8_input(at, xt)?;
        let xs = self.shape(xt)?;
        let beta = op
            .builtin_options_as_softmax_options()
            .map_or(1.0, |o| o.beta());
        let qy = self.quant(at, out)?;
        if qy
            != (Quant {
                scale: 1.0 / 256.0,
                zero: -128,
            })
        {
            return Err(at.err(format!(
                "output quantised {qy:?}; TFLite's int8 softmax writes scale 1/256, zero −128"
            )));
        }
        let geom = self.softmax_geometry(at, &xs, nchw)?;
        let shape = if nchw { nchw_shape(&xs) } else { xs.clone() };
        let (y, _) = self.new_i8(at, out, shape)?;
        let p = SoftmaxQ31::new(geom, f64::from(beta), qx.scale);
        self.emit_i8(at, Op::Softmax(SoftmaxOp::I8Q31(p)), vec![x], y);
        self.bind(out, y, nchw);
        Ok(())
    }
}
