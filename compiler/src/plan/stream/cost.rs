//! What streamed stages cost, estimated for the Cortex-M4.

use super::*;

/// Instructions one inference of `g` costs on a Cortex-M4, estimated low per op (below the
/// `mlperf` and `firmware-m4` binaries' measurements of every test network): dense int8
/// convolutions 1 per MAC, int8 depthwise 2.5, tiled f32 convolutions 2.8, f32 3×3
/// depthwise 3 and 150 a channel's output row (the pixel-by-pixel kernel: 2.6 per MAC inside
/// the image, more at its borders), other f32 reference convolutions 7, f32 matrix products
/// 2 (1×1 convolutions run as 4×4 register tiles at about 1.9), int8 ones 6; other ops 2 per
/// output element. What the planner measures a stage's [`StreamOp::overhead_estimate`]
/// against.
pub fn cost_estimate(g: &Graph) -> u64 {
    use crate::ops::conv::ConvOp;
    use crate::ops::gemm::GemmOp;
    g.nodes
        .iter()
        .map(|n| {
            let macs = n.op.macs();
            match &n.op {
                Op::Conv(ConvOp::F32(c)) if crate::kernels::conv::depthwise_3x3_f32(c) => {
                    3 * macs + 150 * (c.out_c * c.window.out_h * c.batch) as u64
                }
                Op::Conv(ConvOp::F32(_)) => 7 * macs,
                Op::Conv(ConvOp::F32Tiled(_)) => macs * 14 / 5,
                Op::Conv(c) if c.geometry().groups > 1 => macs * 5 / 2,
                Op::Conv(_) => macs,
                Op::Gemm(GemmOp::F32(_)) => 2 * macs,
                Op::Gemm(_) => 6 * macs,
                Op::Stream(s) => s.nodes.iter().map(|m| m.op.macs()).sum(),
                _ => 2 * g.tensor(n.output).len() as u64,
            }
        })
        .sum()
}
