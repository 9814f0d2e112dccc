//! A host interpreter of a compiled plan: the same kernels, the same constants and the same
//! arena offsets the generated code uses, driven from data instead of generated source.
//!
//! It runs plans in tests (per-op conformance, the ONNX backend cases) without a macro
//! expansion per model, and it checks the placement: a tensor placed over one that is still
//! live corrupts it here exactly as it would on the device.

use crate::kernels::{
    activation, conv, elementwise, gemm, normalization, pool, reduce, shape, softmax,
};

use crate::ir::{Graph, Op, TensorId, TensorKind};
use crate::place::ArenaPlan;
use crate::schedule::Schedule;

/// Runs one node's kernel on plain slices.
pub fn call_kernel(op: &Op, inputs: &[&[f32]], out: &mut [f32]) {
    match op {
        Op::Conv(p) => conv::conv2d(p, inputs[0], inputs[1], inputs.get(2).copied(), out),
        Op::MatMul(p) => gemm::matmul(p, inputs[0], inputs[1], inputs.get(2).copied(), out),
        Op::Pool(p) => pool::pool2d(p, inputs[0], out),
        Op::Reduce(p) => reduce::reduce(p, inputs[0], out),
        Op::Softmax(p) => softmax::softmax(p, inputs[0], out),
        Op::Unary(a) => activation::unary(*a, inputs[0], out),
        Op::Binary(p) => elementwise::binary(p, inputs[0], inputs[1], out),
        Op::ScaleShift(p) => normalization::scale_shift(p, inputs[0], inputs[1], inputs[2], out),
        Op::Concat(parts) => {
            for (part, x) in parts.iter().zip(inputs) {
                shape::concat_part(part, x, out);
            }
        }
        Op::Copy(p) => shape::strided_copy(p, inputs[0], out),
        Op::Pad(p) => shape::pad(p, inputs[0], out),
        Op::Reshape => out.copy_from_slice(&inputs[0][..out.len()]),
        Op::Opaque { what } => panic!("node with no kernel (tract op `{what}`) cannot run"),
    }
}

/// Runs `op` with its output written over input `pos` (`io`); `others` are the remaining
/// inputs in order.
///
/// # Panics
/// If `op` has no in-place kernel (the planner only chooses in place for those that do).
pub fn call_kernel_in_place(op: &Op, pos: usize, io: &mut [f32], others: &[&[f32]]) {
    match op {
        Op::Unary(a) => activation::unary_in_place(*a, io),
        Op::Binary(p) => elementwise::binary_in_place(p, pos == 0, io, others[0]),
        Op::ScaleShift(p) => normalization::scale_shift_in_place(p, io, others[0], others[1]),
        Op::Softmax(p) => softmax::softmax_in_place(p, io),
        other => panic!("no in-place kernel for {}", other.family()),
    }
}

/// Runs the plan on `inputs` (one slice per graph input) and returns the graph outputs.
///
/// # Panics
/// If the number or sizes of the inputs do not match the graph.
pub fn run(g: &Graph, schedule: &Schedule, plan: &ArenaPlan, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
    assert_eq!(inputs.len(), g.inputs.len(), "one slice per graph input");
    let mut arena = vec![f32::NAN; plan.arena_bytes.div_ceil(4)];
    let region = |t: usize| {
        let start = plan.offsets[t].unwrap_or(0) / 4;
        start..start + g.tensors[t].len()
    };
    for (x, t) in inputs.iter().zip(&g.inputs) {
        assert_eq!(x.len(), g.tensor(*t).len(), "input size");
        arena[region(t.0)].copy_from_slice(x);
    }
    for n in &schedule.order {
        let node = &g.nodes[n.0];
        let in_place = plan.in_place[n.0];
        let read = |arena: &[f32], t: TensorId| match &g.tensors[t.0].kind {
            TensorKind::Weight(w) => w.clone(),
            _ => arena[region(t.0)].to_vec(),
        };
        if let Some(pos) = in_place {
            // The same in-place kernel the generated code calls, on the arena itself.
            let others: Vec<Vec<f32>> = node
                .inputs
                .iter()
                .enumerate()
                .filter(|&(q, _)| q != pos)
                .map(|(_, &t)| read(&arena, t))
                .collect();
            let refs: Vec<&[f32]> = others.iter().map(Vec::as_slice).collect();
            assert_eq!(region(node.inputs[pos].0), region(node.output.0));
            call_kernel_in_place(&node.op, pos, &mut arena[region(node.output.0)], &refs);
            continue;
        }
        if let Op::Concat(parts) = &node.op {
            for (pos, (part, &t)) in parts.iter().zip(&node.inputs).enumerate() {
                if !plan.is_zero_copy(g, n.0, pos) {
                    let x = read(&arena, t);
                    shape::concat_part(part, &x, &mut arena[region(node.output.0)]);
                }
            }
            continue;
        }
        let ins: Vec<Vec<f32>> = node.inputs.iter().map(|&t| read(&arena, t)).collect();
        let refs: Vec<&[f32]> = ins.iter().map(Vec::as_slice).collect();
        let mut out = vec![f32::NAN; g.tensors[node.output.0].len()];
        call_kernel(&node.op, &refs, &mut out);
        arena[region(node.output.0)].copy_from_slice(&out);
    }
    g.outputs
        .iter()
        .map(|t| arena[region(t.0)].to_vec())
        .collect()
}
