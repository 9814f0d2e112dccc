//! Sharing on random graphs of real ops (elementwise, scale/shift, softmax, channel slices
//! and concatenations, nested): for random sharing choices, the plan is sound and running
//! it gives bit for bit what the plan with nothing shared gives. The in-place kernels and
//! the zero-copy slices are thereby checked against the out-of-place kernels and copies.

use microarena_compiler::exec;
use microarena_compiler::ir::{
    ActivationOp, ElementwiseOp, Graph, Node, NormalizationOp, Op, OrderRank, ShapeOp,
    SharingChoice, SoftmaxOp, TensorId, TensorKind,
};
use microarena_compiler::kernels::elementwise::{Binary, BinaryOp};
use microarena_compiler::kernels::normalization::ScaleShift;
use microarena_compiler::kernels::shape::{ConcatPart, StridedCopy};
use microarena_compiler::kernels::softmax::Softmax;
use microarena_compiler::kernels::Activation;
use microarena_compiler::place;
use microarena_compiler::schedule::memory::MemoryModel;
use microarena_compiler::schedule::{self, SearchLimits};
use proptest::prelude::*;

/// Spatial size of every tensor: shapes are `[1, c, 2, 3]`.
const HW: usize = 6;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 2000) as f32 / 500.0 - 2.0
    }
}

fn pad(v: &[usize]) -> [usize; 6] {
    let mut a = [0; 6];
    a[..v.len()].copy_from_slice(v);
    a
}

/// A random graph of `n` nodes over `[1, c, 2, 3]` tensors.
fn random_graph(seed: u64, n: usize) -> Graph {
    let mut r = Rng(seed | 1);
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 2, 2, 3], TensorKind::Input(0));
    g.inputs.push(x);
    let mut pool: Vec<TensorId> = vec![x];
    let channels = |g: &Graph, t: TensorId| g.tensor(t).shape[1];
    for i in 0..n {
        let a = pool[r.below(pool.len())];
        let ca = channels(&g, a);
        let same: Vec<TensorId> = pool
            .iter()
            .copied()
            .filter(|&t| t != a && channels(&g, t) == ca)
            .collect();
        let contiguous = pad(&[ca * HW, HW, 3, 1]);
        let (op, inputs, c) = match r.below(6) {
            0 if !same.is_empty() => {
                let b = same[r.below(same.len())];
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max][r.below(4)];
                let p = Binary {
                    op,
                    rank: 4,
                    shape: pad(&[1, ca, 2, 3]),
                    a_strides: contiguous,
                    b_strides: contiguous,
                    act: Activation::Identity,
                };
                (Op::Elementwise(ElementwiseOp::Binary(p)), vec![a, b], ca)
            }
            1 => {
                let scale: Vec<f32> = (0..ca).map(|_| r.f32()).collect();
                let shift: Vec<f32> = (0..ca).map(|_| r.f32()).collect();
                let s = g.add_tensor(format!("s{i}"), vec![ca], TensorKind::Weight(scale));
                let t = g.add_tensor(format!("t{i}"), vec![ca], TensorKind::Weight(shift));
                let p = ScaleShift {
                    outer: 1,
                    channels: ca,
                    inner: HW,
                    act: Activation::RELU,
                };
                (
                    Op::Normalization(NormalizationOp::ScaleShift(p)),
                    vec![a, s, t],
                    ca,
                )
            }
            2 => {
                let p = Softmax {
                    outer: 1,
                    len: ca,
                    inner: HW,
                    log: r.below(2) == 0,
                };
                (Op::Softmax(SoftmaxOp::F32(p)), vec![a], ca)
            }
            3 if ca > 1 => {
                // The first k channels.
                let k = 1 + r.below(ca - 1);
                let p = StridedCopy {
                    rank: 1,
                    shape: pad(&[k * HW]),
                    in_strides: pad(&[1]),
                    offset: 0,
                };
                (Op::Shape(ShapeOp::Copy(p)), vec![a], k)
            }
            4 | 5 => {
                let mut parts = vec![a];
                for _ in 0..1 + r.below(2) {
                    parts.push(pool[r.below(pool.len())]);
                }
                let total: usize = parts.iter().map(|&t| channels(&g, t)).sum();
                if total > 12 {
                    (
                        Op::Activation(ActivationOp::Unary(Activation::Tanh)),
                        vec![a],
                        ca,
                    )
                } else {
                    let mut off = 0;
                    let ps = parts
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
                    (Op::Shape(ShapeOp::Concat(ps)), parts, total)
                }
            }
            _ => (
                Op::Activation(ActivationOp::Unary(
                    [Activation::RELU, Activation::Tanh, Activation::Abs][r.below(3)],
                )),
                vec![a],
                ca,
            ),
        };
        let out = g.add_tensor(format!("y{i}"), vec![1, c, 2, 3], TensorKind::Activation);
        g.nodes.push(Node {
            name: format!("n{i}"),
            op_type: op.family().into(),
            op,
            inputs,
            output: out,
            scratch: None,
            rank: OrderRank { file: i, tract: i },
        });
        pool.push(out);
    }
    let consumers = g.consumers();
    let last = *pool.last().expect("a node");
    for t in pool.into_iter().skip(1) {
        if consumers[t.0].is_empty() || t == last {
            let k = g.outputs.len();
            g.tensors[t.0].kind = TensorKind::Output(k);
            g.outputs.push(t);
            g.output_shapes.push(g.tensors[t.0].shape.clone());
        }
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn shared_plans_compute_what_plain_plans_compute(seed in any::<u64>(), n in 1usize..24, mask in any::<u64>(), in_place in any::<bool>()) {
        let g = random_graph(seed, n);
        let limits = SearchLimits { work: microarena_compiler::DEFAULT_WORK / 40, ..Default::default() };
        let plain_m = MemoryModel::new(&g, 16);
        let plain_s = schedule::plan_for(&g, &plain_m, limits).schedule;
        let plain_p = place::place(&g, &plain_m, &plain_s);
        prop_assert!(place::check(&g, &plain_p).is_ok());

        let sharing = g.sharing();
        let choice = SharingChoice {
            in_place,
            slots: (0..sharing.concat_slots.len()).map(|k| mask >> (k % 64) & 1 == 1).collect(),
        };
        let m = MemoryModel::with_sharing(&g, 16, &sharing, &choice);
        let s = schedule::plan_for(&g, &m, limits).schedule;
        prop_assert!(s.is_valid(&g));
        let p = place::place(&g, &m, &s);
        if let Err(e) = place::check(&g, &p) {
            return Err(TestCaseError::fail(e));
        }
        prop_assert!(p.arena_bytes >= p.lower_bound());

        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1);
        let x: Vec<f32> = (0..2 * HW).map(|_| r.f32()).collect();
        let want = exec::run(&g, &plain_s, &plain_p, &[&x]);
        let got = exec::run(&g, &s, &p, &[&x]);
        // Same kernels on the same values: equal to the bit (NaN-free by construction).
        prop_assert_eq!(got, want);
    }
}

/// Forced sharing on a nested chain of concatenations (DenseNet's growing block) where each
/// block input also feeds an elementwise op: every slice written in place, still correct.
#[test]
fn densenet_like_chain_with_every_slice_shared() {
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 2, 2, 3], TensorKind::Input(0));
    g.inputs.push(x);
    let mut cur = x;
    for i in 0..4 {
        let c = g.tensor(cur).shape[1];
        let y = g.add_tensor(format!("a{i}"), vec![1, c, 2, 3], TensorKind::Activation);
        g.nodes.push(Node {
            name: format!("act{i}"),
            op_type: "Tanh".into(),
            op: Op::Activation(ActivationOp::Unary(Activation::Tanh)),
            inputs: vec![cur],
            output: y,
            scratch: None,
            rank: OrderRank::default(),
        });
        let total = c + c;
        let out = g.add_tensor(
            format!("cat{i}"),
            vec![1, total, 2, 3],
            TensorKind::Activation,
        );
        let part = |off: usize| ConcatPart {
            outer: 1,
            part: c * HW,
            total: total * HW,
            offset: off * HW,
        };
        g.nodes.push(Node {
            name: format!("cat{i}"),
            op_type: "Concat".into(),
            op: Op::Shape(ShapeOp::Concat(vec![part(0), part(c)])),
            inputs: vec![cur, y],
            output: out,
            scratch: None,
            rank: OrderRank::default(),
        });
        cur = out;
    }
    g.tensors[cur.0].kind = TensorKind::Output(0);
    g.outputs.push(cur);
    g.output_shapes.push(g.tensors[cur.0].shape.clone());
    // The graph input cannot be a slice; every other concatenation input can.
    let sharing = g.sharing();
    assert_eq!(sharing.concat_slots.len(), 7);
    let choice = SharingChoice::all(&sharing);
    let m = MemoryModel::with_sharing(&g, 16, &sharing, &choice);
    let s = schedule::plan_for(&g, &m, SearchLimits::default()).schedule;
    let p = place::place(&g, &m, &s);
    place::check(&g, &p).unwrap();
    // One unit holds the whole chain: the last concatenation's 32 channels.
    assert_eq!(
        p.units
            .iter()
            .filter(|u| u.bytes > 0)
            .map(|u| u.bytes)
            .max(),
        Some(32 * HW * 4)
    );
    let x: Vec<f32> = (0..2 * HW).map(|i| i as f32 * 0.25 - 1.0).collect();
    let plain_m = MemoryModel::new(&g, 16);
    let plain_s = schedule::plan_for(&g, &plain_m, SearchLimits::default()).schedule;
    let plain_p = place::place(&g, &plain_m, &plain_s);
    assert_eq!(
        exec::run(&g, &s, &p, &[&x]),
        exec::run(&g, &plain_s, &plain_p, &[&x])
    );
    assert!(p.arena_bytes < plain_p.arena_bytes);
}
