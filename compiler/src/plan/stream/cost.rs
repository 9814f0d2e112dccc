//! What streamed stages cost, estimated for the Cortex-M4.

use super::*;

/// Instructions one inference of `g` costs on a Cortex-M4, estimated low per op (below the
/// `mlperf` and `firmware-m4` binaries' measurements of every test network): dense int8
/// convolutions 1 per MAC, int8 depthwise 2.5, tiled f32 convolutions 2.8, the f32 reference
/// convolution (depthwise f32) 7, f32 matrix products 7 (a 1×1 f32 convolution costs about
/// 7.5 on the Cortex-M4), int8 ones 6; other ops 2 per output element. What the planner
/// measures a stage's [`StreamOp::overhead_estimate`] against.
pub fn cost_estimate(g: &Graph) -> u64 {
    use crate::ops::conv::ConvOp;
    use crate::ops::gemm::GemmOp;
    g.nodes
        .iter()
        .map(|n| {
            let macs = n.op.macs();
            match &n.op {
                Op::Conv(ConvOp::F32(_)) => 7 * macs,
                Op::Conv(ConvOp::F32Tiled(_)) => macs * 14 / 5,
                Op::Conv(c) if c.geometry().groups > 1 => macs * 5 / 2,
                Op::Conv(_) => macs,
                Op::Gemm(GemmOp::F32(_)) => 7 * macs,
                Op::Gemm(_) => 6 * macs,
                Op::Stream(s) => s.nodes.iter().map(|m| m.op.macs()).sum(),
                _ => 2 * g.tensor(n.output).len() as u64,
            }
        })
        .sum()
}
