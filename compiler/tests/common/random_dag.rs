//! Random DAGs of convolutions, sums and concatenations, as the planner meets them in
//! irregular networks: single-output nodes with 1–3 inputs, NCHW activations of a few
//! channel counts, sums of same-shape tensors (which may run in place) and channel
//! concatenations (whose inputs may be written straight into their slice).

#![allow(dead_code)]

use microarena_compiler::ir::{
    ElementwiseOp, Graph, Node, Op, OrderRank, ShapeOp, TensorId, TensorKind,
};
use microarena_compiler::kernels::elementwise::{Binary, BinaryOp};
use microarena_compiler::kernels::shape::ConcatPart;
use microarena_compiler::kernels::Activation;

/// SplitMix64: deterministic per seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const HW: usize = 8 * 8;

fn channels(g: &Graph, t: TensorId) -> usize {
    g.tensor(t).shape[1]
}

/// A random DAG of `n` ops: about half convolutions (opaque: planning needs only shapes),
/// a quarter sums of two or three same-shape tensors, a quarter channel concatenations of
/// two or three tensors. Each op reads earlier tensors, the most recent ones more often
/// (`window` of them, or any with probability 1/4). Tensors nobody reads are outputs.
pub fn random_dag(seed: u64, n: usize, window: usize) -> Graph {
    random_dag_far(seed, n, window, 4)
}

/// As [`random_dag`], reading any earlier tensor with probability `1/far` (else one of the
/// `window` most recent).
pub fn random_dag_far(seed: u64, n: usize, window: usize, far: usize) -> Graph {
    let mut r = Rng(seed);
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 16, 8, 8], TensorKind::Input(0));
    g.inputs.push(x);
    let mut pool: Vec<TensorId> = vec![x];
    let pick = |r: &mut Rng, pool: &[TensorId]| -> TensorId {
        if (far != usize::MAX && r.below(far) == 0) || pool.len() <= window {
            pool[r.below(pool.len())]
        } else {
            pool[pool.len() - 1 - r.below(window)]
        }
    };
    for i in 0..n {
        let a = pick(&mut r, &pool);
        let kind = r.below(4);
        let (op, inputs, c, op_type) = match kind {
            1 => {
                let same: Vec<TensorId> = pool
                    .iter()
                    .copied()
                    .filter(|&t| t != a && channels(&g, t) == channels(&g, a))
                    .collect();
                if same.is_empty() {
                    (None, vec![a], 8 * (1 + r.below(4)), "Conv")
                } else {
                    let mut ins = vec![a];
                    for _ in 0..1 + r.below(2) {
                        let b = same[same.len() - 1 - r.below(same.len().min(window))];
                        if !ins.contains(&b) {
                            ins.push(b);
                        }
                    }
                    let c = channels(&g, a);
                    let contiguous = [c * HW, HW, 1, 0, 0, 0];
                    let p = Binary {
                        op: BinaryOp::Add,
                        rank: 3,
                        shape: [c, 8, 8, 0, 0, 0],
                        a_strides: contiguous,
                        b_strides: contiguous,
                        act: Activation::Identity,
                    };
                    // A sum of three is two adds in a row; keep one op per node: add two.
                    ins.truncate(2);
                    (
                        Some(Op::Elementwise(ElementwiseOp::Binary(p))),
                        ins,
                        c,
                        "Add",
                    )
                }
            }
            2 => {
                let mut ins = vec![a];
                for _ in 0..1 + r.below(2) {
                    let b = pick(&mut r, &pool);
                    if !ins.contains(&b)
                        && ins.iter().map(|&t| channels(&g, t)).sum::<usize>() + channels(&g, b)
                            <= 64
                    {
                        ins.push(b);
                    }
                }
                let total: usize = ins.iter().map(|&t| channels(&g, t)).sum();
                let mut off = 0;
                let parts = ins
                    .iter()
                    .map(|&t| {
                        let c = channels(&g, t);
                        let p = ConcatPart {
                            outer: 1,
                            part: c * HW,
                            total: total * HW,
                            offset: off * HW,
                        };
                        off += c;
                        p
                    })
                    .collect();
                (
                    Some(Op::Shape(ShapeOp::Concat(parts))),
                    ins,
                    total,
                    "Concat",
                )
            }
            _ => (None, vec![a], 8 * (1 + r.below(4)), "Conv"),
        };
        let out = g.add_tensor(format!("t{i}"), vec![1, c, 8, 8], TensorKind::Activation);
        g.nodes.push(Node {
            name: format!("n{i}"),
            op_type: op_type.into(),
            op: op.unwrap_or(Op::Opaque {
                what: "conv".into(),
            }),
            inputs,
            output: out,
            scratch: None,
            rank: OrderRank { file: i, tract: i },
        });
        pool.push(out);
    }
    let consumers = g.consumers();
    let last = g.nodes.last().map(|n| n.output);
    for n in 0..g.nodes.len() {
        let t = g.nodes[n].output;
        if consumers[t.0].is_empty() || Some(t) == last {
            let k = g.outputs.len();
            g.tensors[t.0].kind = TensorKind::Output(k);
            g.outputs.push(t);
            g.output_shapes.push(g.tensors[t.0].shape.clone());
        }
    }
    g
}
