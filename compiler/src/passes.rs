//! Graph rewrites between import and planning. Each pass keeps the graph's meaning and
//! reduces the number of buffers or kernel calls:
//!
//! - reshapes (Flatten, Reshape, Squeeze, Unsqueeze, Identity, ...) become aliases;
//! - binary ops with a scalar constant become unary functions (`Max(x, 0)` is a ReLU);
//! - per-channel constants multiplied or added after a convolution or matrix product are
//!   folded into its weights and bias, and elsewhere become one scale/shift kernel;
//! - transposing copies that undo each other go, with the functions between them moved
//!   (`layout.rs`): exporters' channels-last sandwiches around each convolution;
//! - a product of a map and a clipped affine function or sigmoid of itself (HardSwish and
//!   SiLU as exporters spell them) becomes one unary function;
//! - unary functions are fused into the op that produces their input, as TFLite does;
//! - nodes whose result nobody reads are removed.

mod layout;

use crate::kernels::elementwise::{Binary, BinaryOp};
use crate::kernels::normalization::ScaleShift;
use crate::kernels::shape::StridedCopy;
use crate::kernels::{Activation, MAX_RANK};

use crate::ir::{
    ActivationOp, ConvOp, ElementwiseOp, GemmOp, Graph, NodeId, NormalizationOp, Op, ShapeOp,
    TensorId, TensorKind,
};

/// Runs every pass to a fixed point.
pub fn optimize(g: &mut Graph) {
    fold_reshapes(g);
    fold_input_transposes(g);
    loop {
        let mut changed = false;
        changed |= scalar_binary_to_unary(g);
        changed |= fold_affine(g);
        changed |= layout::cancel_permutations(g);
        changed |= fuse_gates(g);
        changed |= fuse_activations(g);
        changed |= remove_dead(g);
        if !changed {
            break;
        }
    }
    share_identical_weights(g);
}

/// Nodes that read equal constants (same type, shape and values) read one of them: one
/// static in flash. An unrolled recurrent layer's steps each get their own copy of the
/// weights from tract's declutter (49 steps: 49 copies); other graphs repeat small
/// constants (a shared bias, an identity scale).
pub fn share_identical_weights(g: &mut Graph) {
    let mut first: std::collections::HashMap<(u8, Vec<usize>, Vec<u8>), TensorId> =
        std::collections::HashMap::new();
    let mut same = vec![None; g.tensors.len()];
    for (i, t) in g.tensors.iter().enumerate() {
        let (tag, bytes): (u8, Vec<u8>) = match &t.kind {
            TensorKind::Weight(d) => (0, d.iter().flat_map(|v| v.to_le_bytes()).collect()),
            TensorKind::WeightI8(d) => (1, d.iter().map(|&v| v as u8).collect()),
            TensorKind::WeightI32(d) => (3, d.iter().flat_map(|v| v.to_le_bytes()).collect()),
            _ => continue,
        };
        let kept = *first
            .entry((tag, t.shape.clone(), bytes))
            .or_insert(TensorId(i));
        if kept.0 != i {
            same[i] = Some(kept);
        }
    }
    for n in &mut g.nodes {
        for x in &mut n.inputs {
            if let Some(kept) = same[x.0] {
                *x = kept;
            }
        }
    }
}

/// Only what every plan does: reshapes become aliases and dead nodes go. The graph "as
/// written" (BatchNorm, activations and adds each with their own output), the baseline
/// the planner's sharing is measured against.
pub fn as_written(g: &mut Graph) {
    fold_reshapes(g);
    while remove_dead(g) {}
}

/// Replaces every use of tensor `from` by `to`.
fn replace_uses(g: &mut Graph, from: TensorId, to: TensorId) {
    for n in &mut g.nodes {
        for i in &mut n.inputs {
            if *i == from {
                *i = to;
            }
        }
    }
}

/// Removes the nodes in `dead` (indices into `g.nodes`).
fn remove_nodes(g: &mut Graph, dead: &[usize]) {
    let mut i = 0;
    g.nodes.retain(|_| {
        let keep = !dead.contains(&i);
        i += 1;
        keep
    });
}

/// Reshape-like nodes become aliases: their consumers read the input tensor directly.
pub fn fold_reshapes(g: &mut Graph) {
    let mut dead = Vec::new();
    for i in 0..g.nodes.len() {
        if g.nodes[i].op != Op::Shape(ShapeOp::Reshape) {
            continue;
        }
        let (x, y) = (g.nodes[i].inputs[0], g.nodes[i].output);
        match g.tensors[y.0].kind {
            TensorKind::Output(k) => {
                if g.tensors[x.0].kind == TensorKind::Activation {
                    g.tensors[x.0].kind = TensorKind::Output(k);
                    g.outputs[k] = x;
                    replace_uses(g, y, x);
                    dead.push(i);
                } else {
                    // An input or constant reshaped straight into an output needs a real copy.
                    let n = g.tensors[y.0].len();
                    let mut shape = [0; MAX_RANK];
                    let mut strides = [0; MAX_RANK];
                    shape[0] = n;
                    strides[0] = 1;
                    g.nodes[i].op = Op::Shape(ShapeOp::Copy(StridedCopy {
                        rank: 1,
                        shape,
                        in_strides: strides,
                        offset: 0,
                    }));
                }
            }
            _ => {
                replace_uses(g, y, x);
                dead.push(i);
            }
        }
    }
    remove_nodes(g, &dead);
}

/// A 4-D graph input read only by transposes from channels last to channels first (an
/// exporter's NHWC input: tf2onnx's `Transpose(perm = [0, 3, 1, 2])`) is held channels
/// first and marked channels last ([`Graph::input_channels_last`]), as a TFLite input is:
/// the copy-in or a streamed stage's row source gathers the channels, no step transposes
/// the whole map, and the caller still passes what the file declares.
pub fn fold_input_transposes(g: &mut Graph) {
    let consumers = g.consumers();
    let mut dead = Vec::new();
    for k in 0..g.inputs.len() {
        let x = g.inputs[k];
        let s = g.tensor(x).shape.clone();
        let carried = g.carry.iter().any(|&(_, j)| j == k);
        if s.len() != 4
            || carried
            || g.input_is_channels_last(k)
            || g.input_is_unsigned(k)
            || g.input_quant(k).is_some()
            || g.outputs.contains(&x)
            || consumers[x.0].is_empty()
        {
            continue;
        }
        let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
        let nchw = vec![n, c, h, w];
        // The copy as the importer writes it: axes of size one dropped, contiguous ones merged.
        let (want_shape, want_strides) =
            crate::import::typed::simplify_strided(&nchw, &[vec![h * w * c, 1, w * c, c]]);
        let transposes = consumers[x.0].iter().all(|v| {
            let node = &g.nodes[v.0];
            let Op::Shape(ShapeOp::Copy(p)) = &node.op else {
                return false;
            };
            p.offset == 0
                && p.shape[..p.rank] == want_shape[..]
                && p.in_strides[..p.rank] == want_strides[0][..]
                && g.tensor(node.output).shape == nchw
                && !matches!(g.tensor(node.output).kind, TensorKind::Output(_))
        });
        if !transposes {
            continue;
        }
        g.tensors[x.0].shape = nchw;
        if g.input_channels_last.len() < g.inputs.len() {
            g.input_channels_last.resize(g.inputs.len(), false);
        }
        g.input_channels_last[k] = true;
        for v in &consumers[x.0] {
            let y = g.nodes[v.0].output;
            replace_uses(g, y, x);
            dead.push(v.0);
        }
    }
    dead.sort_unstable();
    dead.dedup();
    remove_nodes(g, &dead);
}

/// Removes nodes whose output is neither read nor a graph output.
pub fn remove_dead(g: &mut Graph) -> bool {
    let mut changed = false;
    loop {
        let consumers = g.consumers();
        let dead: Vec<usize> = (0..g.nodes.len())
            .filter(|&i| {
                let o = g.nodes[i].output;
                consumers[o.0].is_empty() && !matches!(g.tensors[o.0].kind, TensorKind::Output(_))
            })
            .collect();
        if dead.is_empty() {
            return changed;
        }
        remove_nodes(g, &dead);
        changed = true;
    }
}

/// The value of operand `which` (0 = a, 1 = b) of a binary op at every output element.
fn expand_operand(p: &Binary, which: usize, data: &[f32]) -> Vec<f32> {
    let strides = if which == 0 {
        &p.a_strides
    } else {
        &p.b_strides
    };
    let len = p.len();
    let mut out = Vec::with_capacity(len);
    let mut idx = [0usize; MAX_RANK];
    for _ in 0..len {
        let off: usize = (0..p.rank).map(|i| idx[i] * strides[i]).sum();
        out.push(data.get(off).copied().unwrap_or(f32::NAN));
        for i in (0..p.rank).rev() {
            idx[i] += 1;
            if idx[i] < p.shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
    out
}

/// For a binary node with one weight operand and one full-size activation operand, returns
/// `(activation operand index, weight tensor)`.
fn activation_and_weight(g: &Graph, node: usize) -> Option<(usize, TensorId)> {
    let n = &g.nodes[node];
    let Op::Elementwise(ElementwiseOp::Binary(p)) = &n.op else {
        return None;
    };
    let full = p.len();
    for (xi, wi) in [(0, 1), (1, 0)] {
        let (x, w) = (n.inputs[xi], n.inputs[wi]);
        if g.weight(w).is_some() && g.tensor(x).in_arena() && g.tensor(x).len() == full {
            return Some((xi, w));
        }
    }
    None
}

fn affine(scale: f32, shift: f32) -> Activation {
    Activation::AffineClip {
        scale,
        shift,
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    }
}

/// `x op c` with a scalar constant `c` becomes a unary function of `x`.
pub fn scalar_binary_to_unary(g: &mut Graph) -> bool {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let Some((xi, w)) = activation_and_weight(g, i) else {
            continue;
        };
        let Op::Elementwise(ElementwiseOp::Binary(p)) = g.nodes[i].op else {
            continue;
        };
        let ws = if xi == 0 { &p.b_strides } else { &p.a_strides };
        if ws[..p.rank].iter().any(|&s| s != 0) {
            continue;
        }
        let Some(&c) = g.weight(w).and_then(|d| d.first()) else {
            continue;
        };
        let act = match (p.op, xi) {
            (BinaryOp::Add, _) => affine(1.0, c),
            (BinaryOp::Mul, _) => affine(c, 0.0),
            (BinaryOp::Sub, 0) => affine(1.0, -c),
            (BinaryOp::Sub, _) => affine(-1.0, c),
            (BinaryOp::Div, 0) if c != 0.0 && (1.0 / c).is_finite() && (1.0 / c) * c == 1.0 => {
                affine(1.0 / c, 0.0)
            }
            (BinaryOp::Max, _) => Activation::Clip {
                min: c,
                max: f32::INFINITY,
            },
            (BinaryOp::Min, _) => Activation::Clip {
                min: f32::NEG_INFINITY,
                max: c,
            },
            (BinaryOp::PRelu, 0) => Activation::LeakyRelu { alpha: c },
            _ => continue,
        };
        let act = simplest(act);
        let x = g.nodes[i].inputs[xi];
        g.nodes[i].op = Op::Activation(ActivationOp::Unary(act));
        g.nodes[i].inputs = vec![x];
        changed = true;
    }
    changed
}

/// `(scale, shift, min, max)` of an affine-and-clip function, if it is one.
fn as_affine_clip(a: Activation) -> Option<(f32, f32, f32, f32)> {
    match a {
        Activation::Identity => Some((1.0, 0.0, f32::NEG_INFINITY, f32::INFINITY)),
        Activation::Clip { min, max } => Some((1.0, 0.0, min, max)),
        Activation::AffineClip {
            scale,
            shift,
            min,
            max,
        } => Some((scale, shift, min, max)),
        _ => None,
    }
}

/// The plainest variant that computes the same function.
fn simplest(a: Activation) -> Activation {
    match as_affine_clip(a) {
        Some((1.0, 0.0, f32::NEG_INFINITY, f32::INFINITY)) => Activation::Identity,
        Some((1.0, 0.0, min, max)) => Activation::Clip { min, max },
        Some((scale, shift, min, max)) => Activation::AffineClip {
            scale,
            shift,
            min,
            max,
        },
        None if as_gated_clip(a) == Some((1.0 / 6.0, 0.5, 0.0, 1.0)) => Activation::HardSwish,
        None => a,
    }
}

/// `second(first(x))` as one function, where that is exact.
pub fn compose(first: Activation, second: Activation) -> Option<Activation> {
    if first == Activation::Identity {
        return Some(second);
    }
    if second == Activation::Identity {
        return Some(first);
    }
    // Selu: an Elu scaled by gamma.
    if let (
        Activation::Elu { alpha, scale },
        Activation::AffineClip {
            scale: s,
            shift: 0.0,
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
        },
    ) = (first, second)
    {
        return Some(Activation::Elu {
            alpha,
            scale: scale * s,
        });
    }
    // A LeakyRelu (clipped or not) then a clip: one clipped LeakyRelu.
    let leaky = match first {
        Activation::LeakyRelu { alpha } => Some((alpha, f32::NEG_INFINITY, f32::INFINITY)),
        Activation::LeakyReluClip { alpha, min, max } => Some((alpha, min, max)),
        _ => None,
    };
    if let (Some((alpha, lo1, hi1)), Some((1.0, 0.0, lo2, hi2))) = (leaky, as_affine_clip(second)) {
        let (min, max) = (lo1.max(lo2), hi1.min(hi2));
        return (min <= max).then_some(Activation::LeakyReluClip { alpha, min, max });
    }
    let unclipped = |lo: f32, hi: f32| lo == f32::NEG_INFINITY && hi == f32::INFINITY;
    // A gate then a positive scale: `k · x · clip(u) = x · clip(k · u)` (HardSwish as
    // `x · relu6(x + 3)` then `/ 6`).
    if let (Some((s1, t1, lo1, hi1)), Some((k, 0.0, lo2, hi2))) =
        (as_gated_clip(first), as_affine_clip(second))
    {
        return (k > 0.0 && k.is_finite() && unclipped(lo2, hi2)).then(|| {
            simplest(Activation::GatedClip {
                scale: k * s1,
                shift: k * t1,
                min: k * lo1,
                max: k * hi1,
            })
        });
    }
    let (s1, t1, lo1, hi1) = as_affine_clip(first)?;
    let (s2, t2, lo2, hi2) = as_affine_clip(second)?;
    if unclipped(lo1, hi1) {
        return Some(simplest(Activation::AffineClip {
            scale: s2 * s1,
            shift: s2 * t1 + t2,
            min: lo2,
            max: hi2,
        }));
    }
    // A clip, then an increasing affine map and a clip: `s2 · clip(u, lo1, hi1) + t2` is
    // `clip(s2 · u + t2, s2 · lo1 + t2, s2 · hi1 + t2)` (Keras' hard sigmoid,
    // `relu6(x + 3) · (1 / 6)`).
    if s2 > 0.0 && s2.is_finite() && t2.is_finite() {
        let (lo, hi) = ((s2 * lo1 + t2).max(lo2), (s2 * hi1 + t2).min(hi2));
        if lo <= hi {
            return Some(simplest(Activation::AffineClip {
                scale: s2 * s1,
                shift: s2 * t1 + t2,
                min: lo,
                max: hi,
            }));
        }
    }
    None
}

/// `(scale, shift, min, max)` of a gate `x · clip(x · scale + shift, min, max)`, if it is one.
fn as_gated_clip(a: Activation) -> Option<(f32, f32, f32, f32)> {
    match a {
        Activation::HardSwish => Some((1.0 / 6.0, 0.5, 0.0, 1.0)),
        Activation::GatedClip {
            scale,
            shift,
            min,
            max,
        } => Some((scale, shift, min, max)),
        _ => None,
    }
}

/// `x · f(x)` where `f(x)` is computed for this product alone, and `f` a clip of an affine
/// function or a sigmoid, becomes one unary function of `x`: HardSwish and SiLU as
/// exporters spell them (`x · HardSigmoid(x)`, `x · relu6(x + 3) / 6`, `x · Sigmoid(x)`),
/// which [`fuse_activations`] then folds into the producer of `x`.
pub fn fuse_gates(g: &mut Graph) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::Elementwise(ElementwiseOp::Binary(p)) = g.nodes[i].op else {
            i += 1;
            continue;
        };
        let full = |t: TensorId| {
            g.tensor(t).in_arena() && g.tensor(t).len() == p.len() && !g.tensor(t).is_empty()
        };
        let [a, b] = g.nodes[i].inputs[..] else {
            i += 1;
            continue;
        };
        if p.op != BinaryOp::Mul || a == b || !full(a) || !full(b) {
            i += 1;
            continue;
        }
        let producers = g.producers();
        let consumers = g.consumers();
        let gate = [(a, b), (b, a)].into_iter().find_map(|(x, y)| {
            let NodeId(j) = producers[y.0]?;
            let Op::Activation(ActivationOp::Unary(f)) = g.nodes[j].op else {
                return None;
            };
            let alone = consumers[y.0].len() == 1 && g.tensors[y.0].kind == TensorKind::Activation;
            let gated = match f {
                Activation::Sigmoid => Activation::Silu,
                f => {
                    let (scale, shift, min, max) = as_affine_clip(f)?;
                    simplest(Activation::GatedClip {
                        scale,
                        shift,
                        min,
                        max,
                    })
                }
            };
            let then = compose(gated, p.act)?;
            (alone && g.nodes[j].inputs == [x]).then_some((j, x, then))
        });
        let Some((j, x, act)) = gate else {
            i += 1;
            continue;
        };
        g.nodes[i].op = Op::Activation(ActivationOp::Unary(act));
        g.nodes[i].inputs = vec![x];
        g.nodes[i].rank = g.nodes[i].rank.max(g.nodes[j].rank);
        g.nodes.remove(j);
        changed = true;
    }
    changed
}

/// Fuses a unary node into the producer of its input when nobody else reads that input.
pub fn fuse_activations(g: &mut Graph) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::Activation(ActivationOp::Unary(act)) = g.nodes[i].op else {
            i += 1;
            continue;
        };
        let x = g.nodes[i].inputs[0];
        let producers = g.producers();
        let consumers = g.consumers();
        let fusable = consumers[x.0].len() == 1 && g.tensors[x.0].kind == TensorKind::Activation;
        if let (true, Some(NodeId(p))) = (fusable, producers[x.0]) {
            if let Some(slot) = g.nodes[p].op.activation_mut() {
                if let Some(c) = compose(*slot, act) {
                    *slot = c;
                    g.nodes[p].output = g.nodes[i].output;
                    g.nodes[p].rank = g.nodes[p].rank.max(g.nodes[i].rank);
                    g.nodes.remove(i);
                    changed = true;
                    continue;
                }
            }
        }
        i += 1;
    }
    changed
}

/// Per-output-channel values of `full` (one value per output element of `op`), if `full`
/// depends on the channel only. Channels are Conv output channels or MatMul columns.
fn per_channel(op: &Op, full: &[f32]) -> Option<Vec<f32>> {
    match op {
        Op::Conv(ConvOp::F32(p)) => {
            let plane = p.window.out_h * p.window.out_w;
            if full.len() != p.out_c * plane {
                return None;
            }
            let v: Vec<f32> = (0..p.out_c).map(|c| full[c * plane]).collect();
            full.chunks_exact(plane.max(1))
                .zip(&v)
                .all(|(row, &c)| row.iter().all(|&x| x == c))
                .then_some(v)
        }
        Op::Gemm(GemmOp::F32(p)) => {
            let at =
                |m: usize, n: usize| full.get(m * p.out_stride_m + n * p.out_stride_n).copied();
            if full.len() != p.m * p.n {
                return None;
            }
            let v: Vec<f32> = (0..p.n).map(|n| at(0, n)).collect::<Option<_>>()?;
            (0..p.m)
                .all(|m| (0..p.n).all(|n| at(m, n) == Some(v[n])))
                .then_some(v)
        }
        _ => None,
    }
}

/// The single producer of `x` when `x` is an activation only `reader` reads and the producer
/// is a convolution or matrix product without a fused activation.
fn foldable_producer(g: &Graph, x: TensorId) -> Option<usize> {
    let consumers = g.consumers();
    if consumers[x.0].len() != 1 || g.tensors[x.0].kind != TensorKind::Activation {
        return None;
    }
    let p = g.producers()[x.0]?.0;
    match &g.nodes[p].op {
        Op::Conv(ConvOp::F32(c)) if c.act == Activation::Identity => Some(p),
        Op::Gemm(GemmOp::F32(m)) if m.act == Activation::Identity => Some(p),
        _ => None,
    }
}

/// Multiplies the output channels of a Conv / MatMul by `scale` and adds `shift`, changing
/// its weights (copied: a weight may be shared) and bias.
fn fold_into_producer(g: &mut Graph, p: usize, scale: &[f32], shift: &[f32]) {
    let name = g.nodes[p].name.clone();
    let w = g.nodes[p].inputs[1];
    let mut wdata = g.weight(w).map(<[f32]>::to_vec).unwrap_or_default();
    let channels = scale.len();
    match g.nodes[p].op {
        Op::Conv(ConvOp::F32(_)) => {
            let per = wdata.len() / channels.max(1);
            for (c, chunk) in wdata.chunks_exact_mut(per.max(1)).enumerate() {
                chunk.iter_mut().for_each(|v| *v *= scale[c]);
            }
        }
        Op::Gemm(GemmOp::F32(m)) => {
            for n in 0..m.n {
                for k in 0..m.k {
                    wdata[n * m.b_stride_n + k * m.b_stride_k] *= scale[n];
                }
            }
        }
        _ => return,
    }
    let old_bias = g.nodes[p]
        .inputs
        .get(2)
        .and_then(|&b| g.weight(b))
        .map(<[f32]>::to_vec);
    let bias: Vec<f32> = (0..channels)
        .map(|c| old_bias.as_ref().map_or(0.0, |b| b[c]) * scale[c] + shift[c])
        .collect();
    let wshape = g.tensor(w).shape.clone();
    let nw = g.add_tensor(
        format!("{name}.folded_weights"),
        wshape,
        TensorKind::Weight(wdata),
    );
    let nb = g.add_tensor(
        format!("{name}.folded_bias"),
        vec![channels],
        TensorKind::Weight(bias),
    );
    let inputs = &mut g.nodes[p].inputs;
    inputs[1] = nw;
    inputs.truncate(2);
    inputs.push(nb);
}

/// Per-channel affine constants: folded into a producing Conv / MatMul, otherwise turned
/// into (and merged as) [`NormalizationOp::ScaleShift`].
pub fn fold_affine(g: &mut Graph) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < g.nodes.len() {
        // (activation input, per-element scale, per-element shift) of this node, if affine.
        let act = g.nodes[i]
            .op
            .clone()
            .activation_mut()
            .copied()
            .unwrap_or(Activation::Identity);
        let affine_node: Option<(TensorId, Vec<f32>, Vec<f32>)> = match &g.nodes[i].op {
            Op::Elementwise(ElementwiseOp::Binary(p))
                if matches!(p.op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) =>
            {
                activation_and_weight(g, i).and_then(|(xi, w)| {
                    let data = g.weight(w)?;
                    let full = expand_operand(p, 1 - xi, data);
                    let ones = vec![1.0; full.len()];
                    let zeros = vec![0.0; full.len()];
                    Some(match (p.op, xi) {
                        (BinaryOp::Mul, _) => (g.nodes[i].inputs[xi], full, zeros),
                        (BinaryOp::Add, _) => (g.nodes[i].inputs[xi], ones, full),
                        (BinaryOp::Sub, 0) => (
                            g.nodes[i].inputs[xi],
                            ones,
                            full.iter().map(|v| -v).collect(),
                        ),
                        _ => return None,
                    })
                })
            }
            Op::Normalization(NormalizationOp::ScaleShift(s)) if s.act == Activation::Identity => {
                let n = &g.nodes[i];
                let (sc, sh) = (g.weight(n.inputs[1]), g.weight(n.inputs[2]));
                sc.zip(sh).map(|(sc, sh)| {
                    let len = s.outer * s.channels * s.inner;
                    let at = |v: &[f32], j: usize| v[(j / s.inner.max(1)) % s.channels.max(1)];
                    (
                        n.inputs[0],
                        (0..len).map(|j| at(sc, j)).collect(),
                        (0..len).map(|j| at(sh, j)).collect(),
                    )
                })
            }
            _ => None,
        };
        let Some((x, scale, shift)) = affine_node else {
            i += 1;
            continue;
        };
        // 1. Fold into the producing Conv / MatMul.
        if let Some(p) = foldable_producer(g, x) {
            if let (Some(sc), Some(sh)) = (
                per_channel(&g.nodes[p].op, &scale),
                per_channel(&g.nodes[p].op, &shift),
            ) {
                fold_into_producer(g, p, &sc, &sh);
                if let Some(slot) = g.nodes[p].op.activation_mut() {
                    *slot = act;
                }
                g.nodes[p].output = g.nodes[i].output;
                g.nodes[p].rank = g.nodes[p].rank.max(g.nodes[i].rank);
                g.nodes.remove(i);
                changed = true;
                continue;
            }
        }
        // 2. Otherwise a Binary with a per-channel constant becomes a ScaleShift.
        if let Op::Elementwise(ElementwiseOp::Binary(p)) = g.nodes[i].op {
            if let Some((ss, sc, sh)) = as_scale_shift(&p, &scale, &shift) {
                let name = g.nodes[i].name.clone();
                let c = sc.len();
                let ts = g.add_tensor(format!("{name}.scale"), vec![c], TensorKind::Weight(sc));
                let tt = g.add_tensor(format!("{name}.shift"), vec![c], TensorKind::Weight(sh));
                g.nodes[i].op = Op::Normalization(NormalizationOp::ScaleShift(ss));
                g.nodes[i].inputs = vec![x, ts, tt];
                changed = true;
                continue;
            }
        }
        // 3. Merge a ScaleShift into a preceding ScaleShift of the same geometry.
        if let Op::Normalization(NormalizationOp::ScaleShift(s2)) = g.nodes[i].op {
            let consumers = g.consumers();
            let prev = g.producers()[x.0].map(|p| p.0);
            if let Some(p) = prev.filter(|_| {
                consumers[x.0].len() == 1 && g.tensors[x.0].kind == TensorKind::Activation
            }) {
                if let Op::Normalization(NormalizationOp::ScaleShift(s1)) = g.nodes[p].op {
                    if s1.act == Activation::Identity
                        && (s1.outer, s1.channels, s1.inner) == (s2.outer, s2.channels, s2.inner)
                    {
                        let (a1, b1) = (
                            g.weight(g.nodes[p].inputs[1]),
                            g.weight(g.nodes[p].inputs[2]),
                        );
                        let (a2, b2) = (
                            g.weight(g.nodes[i].inputs[1]),
                            g.weight(g.nodes[i].inputs[2]),
                        );
                        if let (Some(a1), Some(b1), Some(a2), Some(b2)) = (a1, b1, a2, b2) {
                            let sc: Vec<f32> = a1.iter().zip(a2).map(|(x, y)| x * y).collect();
                            let sh: Vec<f32> = b1
                                .iter()
                                .zip(a2)
                                .zip(b2)
                                .map(|((b, a), c)| b * a + c)
                                .collect();
                            let name = g.nodes[p].name.clone();
                            let c = sc.len();
                            let ts = g.add_tensor(
                                format!("{name}.scale"),
                                vec![c],
                                TensorKind::Weight(sc),
                            );
                            let tt = g.add_tensor(
                                format!("{name}.shift"),
                                vec![c],
                                TensorKind::Weight(sh),
                            );
                            g.nodes[p].inputs[1] = ts;
                            g.nodes[p].inputs[2] = tt;
                            g.nodes[p].op =
                                Op::Normalization(NormalizationOp::ScaleShift(ScaleShift {
                                    act: s2.act,
                                    ..s1
                                }));
                            g.nodes[p].output = g.nodes[i].output;
                            g.nodes[p].rank = g.nodes[p].rank.max(g.nodes[i].rank);
                            g.nodes.remove(i);
                            changed = true;
                            continue;
                        }
                    }
                }
            }
        }
        i += 1;
    }
    changed
}

/// A binary op whose constant varies along exactly one (contiguous) axis, as a scale/shift.
fn as_scale_shift(
    p: &Binary,
    scale: &[f32],
    shift: &[f32],
) -> Option<(ScaleShift, Vec<f32>, Vec<f32>)> {
    let r = p.rank;
    let shape = &p.shape[..r];
    // The constant operand's strides: the operand that is not full size.
    let axis = (0..r).find(|&j| {
        let inner: usize = shape[j + 1..].iter().product();
        let outer: usize = shape[..j].iter().product();
        let c = shape[j];
        let ok = |v: &[f32]| {
            (0..outer).all(|o| {
                (0..c).all(|ch| (0..inner).all(|i| v[(o * c + ch) * inner + i] == v[ch * inner]))
            })
        };
        ok(scale) && ok(shift)
    })?;
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let c = shape[axis];
    let sc = (0..c).map(|ch| scale[ch * inner]).collect();
    let sh = (0..c).map(|ch| shift[ch * inner]).collect();
    Some((
        ScaleShift {
            outer,
            channels: c,
            inner,
            act: p.act,
        },
        sc,
        sh,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositions() {
        let relu = Activation::RELU;
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        assert_eq!(
            compose(
                relu,
                Activation::Clip {
                    min: f32::NEG_INFINITY,
                    max: 6.0
                }
            ),
            Some(relu6)
        );
        assert_eq!(
            compose(affine(2.0, 1.0), affine(0.5, -0.5)),
            Some(Activation::Identity)
        );
        assert_eq!(
            compose(affine(0.2, 0.5), Activation::Clip { min: 0.0, max: 1.0 }),
            Some(Activation::AffineClip {
                scale: 0.2,
                shift: 0.5,
                min: 0.0,
                max: 1.0
            })
        );
        // A clip then an increasing affine map: the bounds move with it; decreasing: kept
        // apart.
        assert_eq!(
            compose(relu, affine(2.0, 1.0)),
            Some(Activation::AffineClip {
                scale: 2.0,
                shift: 1.0,
                min: 1.0,
                max: f32::INFINITY
            })
        );
        assert_eq!(compose(relu, affine(-2.0, 0.0)), None);
        // Keras' hard sigmoid, `relu6(x + 3) · (1 / 6)`; tf2onnx's HardSwish,
        // `x · relu6(x + 3)` then `/ 6`.
        let sixth = 1.0 / 6.0;
        let relu6_of_x_plus_3 = compose(affine(1.0, 3.0), relu6).unwrap();
        assert_eq!(
            compose(relu6_of_x_plus_3, affine(sixth, 0.0)),
            Some(Activation::AffineClip {
                scale: sixth,
                shift: 0.5,
                min: 0.0,
                max: 1.0
            })
        );
        let gated = Activation::GatedClip {
            scale: 1.0,
            shift: 3.0,
            min: 0.0,
            max: 6.0,
        };
        assert_eq!(
            compose(gated, affine(sixth, 0.0)),
            Some(Activation::HardSwish)
        );
        assert_eq!(compose(gated, affine(-sixth, 0.0)), None);
        assert_eq!(compose(gated, relu), None);
        assert_eq!(compose(Activation::Sigmoid, relu), None);
        assert_eq!(
            compose(Activation::Identity, Activation::Tanh),
            Some(Activation::Tanh)
        );
    }
}
