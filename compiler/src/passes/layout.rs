//! Layout changes that cost nothing: exporters move data between channels-last and
//! channels-first around each convolution (tf2onnx's `Transpose` sandwiches; tract folds
//! them into channels-last convolutions, which the importer runs channels first between two
//! transposing copies). Here those copies meet and go:
//!
//! - a permuting copy and a unary function after it trade places (the function then fuses
//!   into the convolution before the copy), and so do a permuting copy and a binary function
//!   of it and a constant (a PRelu's slopes or a bias given channels last: the constant is
//!   laid out as the copy's input);
//! - two permuting copies in a row that undo each other become an alias;
//! - a permuting copy read by a matrix product becomes the product's strides, and one read
//!   by a reduction whose sums it does not reorder (a channels-last global average) goes.
//!
//! A copy that cannot go stays a planned op like any other.

use crate::import::typed::{broadcast_strides, simplify_strided, to_array};
use crate::ir::{
    ActivationOp, DType, ElementwiseOp, Graph, NodeId, Op, ReduceOp, ShapeOp, TensorKind,
};
use crate::kernels::elementwise::Binary;
use crate::kernels::shape::StridedCopy;
use crate::kernels::MAX_RANK;

/// The input index each output element of `p` reads, when `p` moves every element of an
/// input of `len` elements exactly once (a transpose, a reshape): `None` otherwise.
fn permutation(p: &StridedCopy, len: usize) -> Option<Vec<usize>> {
    let n: usize = p.shape[..p.rank].iter().product();
    if n != len {
        return None;
    }
    let mut map = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    for k in 0..n {
        let at = p.offset + strided(&p.shape[..p.rank], &p.in_strides[..p.rank], k);
        if at >= n || std::mem::replace(&mut seen[at], true) {
            return None;
        }
        map.push(at);
    }
    Some(map)
}

/// Where element `k` (row-major over `shape`) lies at `strides`.
fn strided(shape: &[usize], strides: &[usize], k: usize) -> usize {
    let (mut rest, mut at) = (k, 0);
    for (&d, &s) in shape.iter().zip(strides).rev() {
        let d = d.max(1);
        at += (rest % d) * s;
        rest /= d;
    }
    at
}

/// The permutation node `v` applies, when it is a permuting copy of one activation.
fn permuting(g: &Graph, v: usize) -> Option<Vec<usize>> {
    let n = &g.nodes[v];
    let Op::Shape(ShapeOp::Copy(p)) = &n.op else {
        return None;
    };
    let x = g.tensor(n.inputs[0]);
    if !x.in_arena() || x.dtype != g.tensor(n.output).dtype {
        return None;
    }
    permutation(p, x.len())
}

/// Runs the rewrites once over the graph; true when something changed.
pub fn cancel_permutations(g: &mut Graph) -> bool {
    let mut changed = false;
    changed |= move_functions_before_copies(g);
    changed |= move_constant_binaries_before_copies(g);
    changed |= cancel_inverse_pairs(g);
    changed |= fold_into_products(g);
    changed |= fold_into_reductions(g);
    changed
}

/// A reduction reading a permuting copy (which it alone reads) reads the copy's input
/// instead, when another split of that input into `outer × len × inner` gives every output
/// the same values in the same order: tf2onnx's `ReduceMean` over axes 1 and 2 of a
/// channels-last map is a channels-first global average of the map before the copy.
fn fold_into_reductions(g: &mut Graph) -> bool {
    let mut changed = false;
    for r in 0..g.nodes.len() {
        let Op::Reduce(ReduceOp::Reduce(p)) = g.nodes[r].op else {
            continue;
        };
        let t = g.nodes[r].inputs[0];
        let Some(NodeId(c)) = g.producers()[t.0] else {
            continue;
        };
        let Some(map) = permuting(g, c) else {
            continue;
        };
        if g.consumers()[t.0].len() != 1
            || g.tensor(t).kind != TensorKind::Activation
            || p.outer * p.len * p.inner != map.len()
        {
            continue;
        }
        // Output `k` (= o·inner + i) sums `t[(o·len + l)·inner + i]` over `l`; through the
        // copy those are `x[map[..]]`, which must be `x[(o2·len + l)·inner2 + i2]` for the
        // split of `k` by `inner2`.
        let outs = p.outer * p.inner;
        let same_sums = |inner2: usize| {
            (0..outs).all(|k| {
                let (o, i, o2, i2) = (k / p.inner, k % p.inner, k / inner2, k % inner2);
                (0..p.len)
                    .all(|l| map[(o * p.len + l) * p.inner + i] == (o2 * p.len + l) * inner2 + i2)
            })
        };
        let Some(inner2) = (1..=outs).find(|&d| outs % d == 0 && same_sums(d)) else {
            continue;
        };
        let x = g.nodes[c].inputs[0];
        g.nodes[r].op = Op::Reduce(ReduceOp::Reduce(crate::kernels::reduce::Reduce {
            outer: outs / inner2,
            inner: inner2,
            ..p
        }));
        g.nodes[r].inputs[0] = x;
        changed = true;
    }
    changed
}

/// `copy → f` becomes `f → copy` for a unary function `f` that alone reads the copy.
fn move_functions_before_copies(g: &mut Graph) -> bool {
    let mut changed = false;
    for f in 0..g.nodes.len() {
        if !matches!(g.nodes[f].op, Op::Activation(ActivationOp::Unary(_))) {
            continue;
        }
        let consumers = g.consumers();
        let producers = g.producers();
        let t = g.nodes[f].inputs[0];
        let Some(NodeId(c)) = producers[t.0] else {
            continue;
        };
        let y = g.nodes[f].output;
        if consumers[t.0].len() != 1
            || g.tensor(t).kind != TensorKind::Activation
            || g.tensor(t).shape != g.tensor(y).shape
            || g.tensor(t).dtype != g.tensor(y).dtype
            || permuting(g, c).is_none()
        {
            continue;
        }
        let x = g.nodes[c].inputs[0];
        trade_places(g, c, f, vec![x]);
        changed = true;
    }
    changed
}

/// Node `f`, which alone reads copy `c`'s output, runs on the copy's input instead (reading
/// `inputs`), into a new tensor of that shape; the copy then writes `f`'s output. The nodes
/// trade places in the list, which stays a topological order.
fn trade_places(g: &mut Graph, c: usize, f: usize, inputs: Vec<crate::ir::TensorId>) {
    let (x, y) = (g.nodes[c].inputs[0], g.nodes[f].output);
    let (shape, dtype) = (g.tensor(x).shape.clone(), g.tensor(y).dtype);
    let name = format!("{}.before_copy", g.tensor(y).name);
    let m = g.add_typed_tensor(name, shape, dtype, TensorKind::Activation, None);
    g.nodes[f].inputs = inputs;
    g.nodes[f].output = m;
    g.nodes[c].inputs[0] = m;
    g.nodes[c].output = y;
    g.nodes.swap(c, f);
}

/// The values of operand `b_side` (`true`: `b`) of `p` at every element of its output, in
/// row-major order.
fn broadcast_values(p: &Binary, values: &[f32], b_side: bool) -> Vec<f32> {
    let strides = if b_side { &p.b_strides } else { &p.a_strides };
    let shape = &p.shape[..p.rank];
    (0..p.len())
        .map(|k| values[strided(shape, &strides[..p.rank], k)])
        .collect()
}

/// `full` (row-major over `shape`) as the smallest tensor that broadcasts back to it: size
/// one on every axis along which it does not change.
fn compress(full: &[f32], shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let strides: Vec<usize> = (0..shape.len())
        .map(|a| shape[a + 1..].iter().product())
        .collect();
    let varies = |a: usize| {
        (0..full.len())
            .any(|k| !(k / strides[a]).is_multiple_of(shape[a]) && full[k] != full[k - strides[a]])
    };
    let kept: Vec<usize> = (0..shape.len())
        .map(|a| if varies(a) { shape[a] } else { 1 })
        .collect();
    let n: usize = kept.iter().product();
    let values = (0..n).map(|j| full[strided(&kept, &strides, j)]).collect();
    (kept, values)
}

/// `copy → f(·, w)` becomes `f(·, w') → copy` for a binary function `f` of the copy (which
/// it alone reads) and an f32 constant `w`: `w'` holds `w`'s value of each element where the
/// copy's input has it, as small as it broadcasts (per channel, for a PRelu's slopes given
/// channels last).
fn move_constant_binaries_before_copies(g: &mut Graph) -> bool {
    let mut changed = false;
    for f in 0..g.nodes.len() {
        let Op::Elementwise(ElementwiseOp::Binary(p)) = g.nodes[f].op else {
            continue;
        };
        let consumers = g.consumers();
        let producers = g.producers();
        let [i0, i1] = g.nodes[f].inputs[..] else {
            continue;
        };
        let (xi, t, w) = match (g.weight(i0).is_some(), g.weight(i1).is_some()) {
            (false, true) => (0, i0, i1),
            (true, false) => (1, i1, i0),
            _ => continue,
        };
        let Some(NodeId(c)) = producers[t.0] else {
            continue;
        };
        let y = g.nodes[f].output;
        let Some(map) = permuting(g, c) else {
            continue;
        };
        if consumers[t.0].len() != 1
            || g.tensor(t).kind != TensorKind::Activation
            || g.tensor(t).dtype != DType::F32
            || g.tensor(t).shape != g.tensor(y).shape
            || p.len() != g.tensor(t).len()
        {
            continue;
        }
        let x = g.nodes[c].inputs[0];
        let xs = g.tensor(x).shape.clone();
        if xs.len() > MAX_RANK {
            continue;
        }
        // The constant at every output element, then where the copy reads that element.
        let full = broadcast_values(&p, g.weight(w).expect("a weight"), xi == 0);
        let mut moved = vec![0.0; full.len()];
        for (k, &from) in map.iter().enumerate() {
            moved[from] = full[k];
        }
        let (ws, values) = compress(&moved, &xs);
        let (shape, strides) = simplify_strided(
            &xs,
            &[broadcast_strides(&xs, &xs), broadcast_strides(&ws, &xs)],
        );
        let (x_strides, w_strides) = (to_array(&strides[0]), to_array(&strides[1]));
        let (a_strides, b_strides) = if xi == 0 {
            (x_strides, w_strides)
        } else {
            (w_strides, x_strides)
        };
        let q = Binary {
            rank: shape.len(),
            shape: to_array(&shape),
            a_strides,
            b_strides,
            ..p
        };
        let name = format!("{}.before_copy", g.tensor(w).name);
        let w2 = g.add_typed_tensor(name, ws, DType::F32, TensorKind::Weight(values), None);
        let mut inputs = vec![x, x];
        inputs[1 - xi] = w2;
        g.nodes[f].op = Op::Elementwise(ElementwiseOp::Binary(q));
        trade_places(g, c, f, inputs);
        changed = true;
    }
    changed
}

/// `copy₁ → copy₂` where `copy₂` undoes `copy₁`: `copy₂`'s readers read `copy₁`'s input.
fn cancel_inverse_pairs(g: &mut Graph) -> bool {
    let mut changed = false;
    let producers = g.producers();
    let mut dead = Vec::new();
    for b in 0..g.nodes.len() {
        let Some(second) = permuting(g, b) else {
            continue;
        };
        let Some(NodeId(a)) = producers[g.nodes[b].inputs[0].0] else {
            continue;
        };
        let Some(first) = permuting(g, a) else {
            continue;
        };
        let (x, y) = (g.nodes[a].inputs[0], g.nodes[b].output);
        let undone = second.iter().enumerate().all(|(k, &j)| first[j] == k);
        if !undone
            || g.tensor(y).kind != TensorKind::Activation
            || g.tensor(x).dtype != g.tensor(y).dtype
        {
            continue;
        }
        // The readers of `y` see `x`'s shape from here on: every op reads its operands by
        // its own geometry, as after a reshape (`fold_reshapes`).
        super::replace_uses(g, y, x);
        dead.push(b);
        changed = true;
    }
    super::remove_nodes(g, &dead);
    changed
}

/// A matrix product whose first operand is a permuting copy reads the copy's input at
/// the strides the copy would have read it, when they are a product's strides.
fn fold_into_products(g: &mut Graph) -> bool {
    let mut changed = false;
    let producers = g.producers();
    for v in 0..g.nodes.len() {
        let a = g.nodes[v].inputs[0];
        if g.nodes[v].inputs[1..].contains(&a) {
            continue;
        }
        let Some(NodeId(c)) = producers[a.0] else {
            continue;
        };
        let Some(map) = permuting(g, c) else {
            continue;
        };
        let x = g.nodes[c].inputs[0];
        let geom = match &mut g.nodes[v].op {
            Op::Gemm(crate::ops::gemm::GemmOp::F32(p)) => p,
            Op::Gemm(crate::ops::gemm::GemmOp::I8(p, _)) => &mut p.geom,
            _ => continue,
        };
        let at = |m: usize, k: usize| map[m * geom.a_stride_m + k * geom.a_stride_k];
        if geom.m == 0 || geom.k == 0 || at(0, 0) != 0 {
            continue;
        }
        let sm = if geom.m > 1 { at(1, 0) } else { 0 };
        let sk = if geom.k > 1 { at(0, 1) } else { 0 };
        let linear = (0..geom.m).all(|m| (0..geom.k).all(|k| at(m, k) == m * sm + k * sk));
        if !linear {
            continue;
        }
        geom.a_stride_m = sm;
        geom.a_stride_k = sk;
        g.nodes[v].inputs[0] = x;
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::permutation;
    use crate::kernels::shape::StridedCopy;

    fn copy(shape: &[usize], strides: &[usize]) -> StridedCopy {
        let mut p = StridedCopy {
            rank: shape.len(),
            shape: [0; crate::kernels::MAX_RANK],
            in_strides: [0; crate::kernels::MAX_RANK],
            offset: 0,
        };
        p.shape[..shape.len()].copy_from_slice(shape);
        p.in_strides[..shape.len()].copy_from_slice(strides);
        p
    }

    /// NHWC → NCHW and back compose to the identity; a slice or a broadcast is no
    /// permutation.
    #[test]
    fn transposes_are_permutations_and_slices_are_not() {
        let (h, w, c) = (3, 4, 5);
        let to_first = permutation(&copy(&[c, h * w], &[1, c]), h * w * c).expect("perm");
        let to_last = permutation(&copy(&[h * w, c], &[1, h * w]), h * w * c).expect("perm");
        assert!(to_last.iter().enumerate().all(|(k, &j)| to_first[j] == k));
        assert!(to_first.iter().enumerate().any(|(k, &j)| j != k));
        assert!(permutation(&copy(&[2, 3], &[3, 1]), 12).is_none());
        assert!(permutation(&copy(&[4, 3], &[0, 1]), 12).is_none());
    }
}
