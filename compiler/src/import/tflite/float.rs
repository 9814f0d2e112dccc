//! The float ops of a TFLite model (float32 activations and weights; int8 weights of a
//! float op, "hybrid", dequantized at build time).

use tract_tflite::tflite::{ActivationFunctionType, Operator, TensorType};

use super::{nchw_shape, oihw, At, Lowering};
use crate::error::Result;
use crate::ir::{DType, Op, TensorKind};
use crate::kernels::conv;
use crate::kernels::elementwise::{Binary, BinaryOp};
use crate::kernels::gemm::MatMul;
use crate::ops::conv::ConvOp;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::gemm::GemmOp;
use crate::ops::pool::PoolOp;
use crate::ops::softmax::SoftmaxOp;

use super::super::typed::to_array;

impl<'a> Lowering<'a> {
    pub(super) fn conv(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        depthwise: bool,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let (x, xs) = self.map(at, self.input(at, ins, 0)?)?;
        let os = self.shape(out)?;
        let wt = self.input(at, ins, 1)?;
        let ws = self.shape(wt)?;
        let (mut p, act) = self.conv_geometry(at, op, depthwise, &xs, &ws, &os)?;
        p.act = self.activation(at, act)?;
        let name = self.name(wt);
        let shape = vec![p.out_c, p.in_c / p.groups, ws[1], ws[2]];
        // int8 weights of a float convolution: TFLite's hybrid kernel, which quantizes the
        // input on the fly; its outputs are that kernel's, not a float convolution's.
        let (wid, conv) = if self.tensor(wt)?.type_() == TensorType::INT8 {
            let (w, scales) = self.int8_weights(at, wt)?;
            let [scale] = scales[..] else {
                return Err(at.err(format!(
                    "hybrid (int8-weight) convolution with {} weight scales: TFLite quantizes \
                     its input per channel there, which microarena does not; convert the \
                     model fully int8 or float",
                    scales.len()
                )));
            };
            if !conv::hybrid_supported(&p) {
                return Err(at.err(format!(
                    "hybrid (int8-weight) convolution with a {}×{} window: microarena's hybrid \
                     kernel takes at most {} positions; convert the model fully int8 or float",
                    p.window.k_h,
                    p.window.k_w,
                    conv::HYBRID_PATCH
                )));
            }
            let weights = oihw(&w, &ws, depthwise, p.out_c);
            // In the hybrid kernel's blocks (`pack_hybrid_weights`), packed once here.
            let packed: Vec<i8> = conv::pack_hybrid_weights(&p, &weights).collect();
            let shape = vec![packed.len()];
            let kind = TensorKind::WeightI8(packed);
            let wid = self
                .graph
                .add_typed_tensor(name, shape, DType::I8, kind, None);
            (wid, ConvOp::Hybrid(p, scale))
        } else {
            let w = self.const_f32(at, wt)?;
            let weights = oihw(&w, &ws, depthwise, p.out_c);
            let wid = self
                .graph
                .add_tensor(name, shape, TensorKind::Weight(weights));
            (wid, ConvOp::F32(p))
        };
        let mut inputs = vec![x, wid];
        if let Some(&b) = ins.get(2).filter(|&&b| b >= 0) {
            let bias = self.const_f32(at, b)?;
            if bias.len() != p.out_c {
                return Err(at.err(format!(
                    "bias of {} values for {} channels",
                    bias.len(),
                    p.out_c
                )));
            }
            let name = self.name(b);
            let kind = TensorKind::Weight(bias);
            inputs.push(self.graph.add_tensor(name, vec![p.out_c], kind));
        }
        let y = self.push(at, Op::Conv(conv), inputs, self.name(out), nchw_shape(&os));
        self.bind(out, y, true);
        Ok(())
    }

    pub(super) fn pool(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        max: bool,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let (x, xs) = self.map(at, self.input(at, ins, 0)?)?;
        let os = self.shape(out)?;
        let (mut p, act) = self.pool_geometry(at, op, max, &xs, &os)?;
        p.act = self.activation(at, act)?;
        let y = self.push(
            at,
            Op::Pool(PoolOp::F32(p)),
            vec![x],
            self.name(out),
            nchw_shape(&os),
        );
        self.bind(out, y, true);
        Ok(())
    }

    pub(super) fn fully_connected(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        self.check_float(at, xt)?;
        let xs = self.shape(xt)?;
        let os = self.shape(out)?;
        let wt = self.input(at, ins, 1)?;
        let ws = self.shape(wt)?;
        let ((m, n, k), act) = self.fully_connected_shape(at, op, &xs, &ws, &os)?;
        let act = self.activation(at, act)?;
        let x = self.value(at, xt)?;
        // A flattened NHWC map, held NCHW: the weights' columns follow our layout instead.
        let w = self.const_f32(at, wt)?;
        let w = self.fully_connected_columns(at, w, n, m, &xs, x.nchw)?;
        let p = MatMul {
            m,
            n,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n: k,
            b_stride_k: 1,
            out_stride_m: n,
            out_stride_n: 1,
            act,
        };
        let name = self.name(wt);
        let wid = self
            .graph
            .add_tensor(name, vec![n, k], TensorKind::Weight(w));
        let mut inputs = vec![x.id, wid];
        if let Some(&b) = ins.get(2).filter(|&&b| b >= 0) {
            let bias = self.const_f32(at, b)?;
            if bias.len() != n {
                return Err(at.err(format!("bias of {} values for {n} outputs", bias.len())));
            }
            let name = self.name(b);
            inputs.push(
                self.graph
                    .add_tensor(name, vec![n], TensorKind::Weight(bias)),
            );
        }
        let y = self.push(
            at,
            Op::Gemm(GemmOp::F32(p)),
            inputs,
            self.name(out),
            os.clone(),
        );
        self.bind(out, y, false);
        Ok(())
    }

    pub(super) fn add(&mut self, at: &At, op: &Operator<'a>, ins: &[i32], out: i32) -> Result<()> {
        let (ta, tb) = (self.input(at, ins, 0)?, self.input(at, ins, 1)?);
        let os = self.shape(out)?;
        let (sa, sb) = (self.shape(ta)?, self.shape(tb)?);
        if sa != os || sb != os {
            return Err(at.err(format!(
                "operands {sa:?} and {sb:?} broadcast to {os:?} (operands of the output's shape are supported)"
            )));
        }
        let act = self.activation(
            at,
            op.builtin_options_as_add_options()
                .map_or(ActivationFunctionType::NONE, |o| {
                    o.fused_activation_function()
                }),
        )?;
        let (a, b) = (self.value(at, ta)?, self.value(at, tb)?);
        if a.nchw != b.nchw {
            return Err(at.err("operands in different layouts"));
        }
        let shape = if a.nchw { nchw_shape(&os) } else { os.clone() };
        let len: usize = shape.iter().product();
        let p = Binary {
            op: BinaryOp::Add,
            rank: 1,
            shape: to_array(&[len]),
            a_strides: to_array(&[1]),
            b_strides: to_array(&[1]),
            act,
        };
        let y = self.push(
            at,
            Op::Elementwise(ElementwiseOp::Binary(p)),
            vec![a.id, b.id],
            self.name(out),
            shape,
        );
        self.bind(out, y, a.nchw);
        Ok(())
    }

    pub(super) fn softmax(
        &mut self,
        at: &At,
        op: &Operator<'a>,
        ins: &[i32],
        out: i32,
    ) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        self.check_float(at, xt)?;
        let xs = self.shape(xt)?;
        let beta = op
            .builtin_options_as_softmax_options()
            .map_or(1.0, |o| o.beta());
        if beta != 1.0 {
            return Err(at.err(format!("beta {beta} (1 is supported)")));
        }
        let x = self.value(at, xt)?;
        let p = self.softmax_geometry(at, &xs, x.nchw)?;
        let shape = if x.nchw { nchw_shape(&xs) } else { xs.clone() };
        let y = self.push(
            at,
            Op::Softmax(SoftmaxOp::F32(p)),
            vec![x.id],
            self.name(out),
            shape,
        );
        self.bind(out, y, x.nchw);
        Ok(())
    }
}
