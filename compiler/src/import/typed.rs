//! The lowering context of float models: tract's typed, decluttered graph, walked node by
//! node, with what each tract outlet became. Each op family's `lower` (in `crate::ops`)
//! reads its node through [`At`] and adds our nodes through [`TypedLowering::emit`].

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::ir::{Graph, Node, Op, OrderRank, TensorId, TensorKind};
use crate::kernels::shape::StridedCopy;
use crate::kernels::MAX_RANK;
use crate::ops::shape::ShapeOp;

/// What a tract outlet became.
#[derive(Clone)]
pub(crate) enum Value {
    /// A tensor of ours.
    Tensor(TensorId),
    /// A constant known at compile time (becomes a weight when an op reads it).
    Const(Arc<tract_onnx::prelude::Tensor>),
    /// A boolean comparison, kept symbolic for the `Iff` that consumes it.
    Predicate {
        /// tract's name of the comparison (`GT`, `LT`, ...).
        op: &'static str,
        /// Left operand.
        a: OutletId,
        /// Right operand.
        b: OutletId,
    },
}

/// ONNX node names and op types, to name the origin of tract's (suffixed) node names.
pub(crate) struct OnnxNodes {
    /// `(name as tract names the node, op type)` in file order.
    nodes: Vec<(String, String)>,
}

impl OnnxNodes {
    pub(crate) fn new(g: &pb::GraphProto) -> Self {
        OnnxNodes {
            nodes: g
                .node
                .iter()
                .enumerate()
                .map(|(ix, n)| {
                    // tract's own rule for naming a node (tract-onnx `model.rs`).
                    let name = if !n.name.is_empty() {
                        n.name.clone()
                    } else if n.output.first().is_some_and(|o| !o.is_empty()) {
                        n.output[0].clone()
                    } else {
                        format!("{}{}", n.op_type, ix)
                    };
                    (name, n.op_type.clone())
                })
                .collect(),
        }
    }

    /// Index in the file of the ONNX node a tract node name comes from: the longest ONNX
    /// node name that is the tract name or a `.`-separated prefix of it.
    pub(crate) fn index(&self, tract_name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| {
                !n.is_empty()
                    && tract_name.starts_with(n.as_str())
                    && matches!(tract_name.as_bytes().get(n.len()), None | Some(b'.'))
            })
            .max_by_key(|(_, (n, _))| n.len())
            .map(|(i, _)| i)
    }

    /// `(onnx node name, op type)` for a tract node name (see [`OnnxNodes::index`]).
    pub(crate) fn origin(&self, tract_name: &str, fallback_op: &str) -> (String, String) {
        self.index(tract_name)
            .map(|i| self.nodes[i].clone())
            .unwrap_or_else(|| (tract_name.to_string(), fallback_op.to_string()))
    }
}

/// The tract node being lowered, with its ONNX origin for messages and its order ranks.
pub(crate) struct At<'n> {
    /// The tract node.
    pub node: &'n TypedNode,
    /// Name of the ONNX node it comes from.
    pub name: String,
    /// ONNX op type of that node.
    pub op_type: String,
    /// Its positions in the file and tract orders.
    pub rank: OrderRank,
}

impl At<'_> {
    /// The node's op as tract type `T`, if it is one.
    pub fn op<T: TypedOp>(&self) -> Option<&T> {
        self.node.op.downcast_ref::<T>()
    }

    /// An [`Error::Unsupported`] naming this node.
    pub fn unsupported(&self, detail: impl Into<String>) -> Error {
        crate::ops::unsupported(&self.name, &self.op_type, detail)
    }

    /// Outlet of input `i`.
    pub fn input(&self, i: usize) -> OutletId {
        self.node.inputs[i]
    }

    /// The node's (first) output outlet.
    pub fn output(&self) -> OutletId {
        OutletId::new(self.node.id, 0)
    }
}

/// The float lowering's state: the typed model, the graph being built, and what every
/// outlet became.
pub(crate) struct TypedLowering<'a> {
    /// tract's typed, decluttered model.
    pub model: &'a TypedModel,
    /// Our graph, as built so far.
    pub graph: Graph,
    /// What each lowered outlet became.
    pub values: HashMap<OutletId, Value>,
    /// Weight tensors made from constants, once per outlet.
    weights: HashMap<OutletId, TensorId>,
}

impl<'a> TypedLowering<'a> {
    /// An empty lowering of `model`.
    pub fn new(model: &'a TypedModel) -> Self {
        TypedLowering {
            model,
            graph: Graph::default(),
            values: HashMap::new(),
            weights: HashMap::new(),
        }
    }

    /// The static shape of `outlet`.
    pub fn shape(&self, at: &At, outlet: OutletId) -> Result<Vec<usize>> {
        let fact = self
            .model
            .outlet_fact(outlet)
            .map_err(|e| Error::Model(format!("{e:#}")))?;
        fact.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| {
            at.unsupported(format!(
                "shape {:?} is not known at compile time",
                fact.shape
            ))
        })
    }

    /// The node's output shape.
    pub fn out_shape(&self, at: &At) -> Result<Vec<usize>> {
        self.shape(at, at.output())
    }

    /// The shape of input `i`.
    pub fn in_shape(&self, at: &At, i: usize) -> Result<Vec<usize>> {
        self.shape(at, at.input(i))
    }

    /// Fails unless `outlet` holds f32 values.
    pub fn check_f32(&self, at: &At, outlet: OutletId) -> Result<()> {
        let dt = self
            .model
            .outlet_fact(outlet)
            .map_err(|e| Error::Model(format!("{e:#}")))?
            .datum_type;
        if dt != f32::datum_type() {
            return Err(at.unsupported(format!("element type {dt:?} (only f32 is supported)")));
        }
        Ok(())
    }

    /// Fails unless the node's output and every tensor input are f32.
    pub fn check_f32_node(&self, at: &At) -> Result<()> {
        self.check_f32(at, at.output())?;
        for &i in &at.node.inputs {
            if let Some(Value::Tensor(_)) = self.values.get(&i) {
                self.check_f32(at, i)?;
            }
        }
        Ok(())
    }

    /// The constant behind `outlet`, if it is one.
    pub fn konst(&self, outlet: OutletId) -> Option<&Arc<tract_onnx::prelude::Tensor>> {
        match self.values.get(&outlet) {
            Some(Value::Const(t)) => Some(t),
            _ => None,
        }
    }

    /// A constant's elements as f32.
    pub fn const_f32(&self, at: &At, t: &tract_onnx::prelude::Tensor) -> Result<Vec<f32>> {
        let c = t
            .cast_to::<f32>()
            .map_err(|e| at.unsupported(format!("constant of type {:?}: {e}", t.datum_type())))?;
        let view = c
            .to_plain_array_view::<f32>()
            .map_err(|e| at.unsupported(format!("constant: {e}")))?;
        Ok(view.iter().copied().collect())
    }

    /// The tensor behind an input outlet; constants become weight tensors (once each).
    pub fn tensor(&mut self, at: &At, outlet: OutletId) -> Result<TensorId> {
        match self.values.get(&outlet).cloned() {
            Some(Value::Tensor(t)) => Ok(t),
            Some(Value::Const(c)) => {
                if let Some(t) = self.weights.get(&outlet) {
                    return Ok(*t);
                }
                let data = self.const_f32(at, &c)?;
                let name = self.model.node(outlet.node).name.clone();
                let t = self
                    .graph
                    .add_tensor(name, c.shape().to_vec(), TensorKind::Weight(data));
                self.weights.insert(outlet, t);
                Ok(t)
            }
            Some(Value::Predicate { .. }) => {
                Err(at.unsupported("boolean tensors are only supported inside a PRelu pattern"))
            }
            None => Err(Error::Model(format!(
                "node `{}` reads an outlet that was not lowered",
                at.name
            ))),
        }
    }

    /// A weight tensor of this node (`<node>.<what>`), e.g. repacked or folded constants.
    pub fn weight(&mut self, at: &At, what: &str, shape: Vec<usize>, data: Vec<f32>) -> TensorId {
        self.graph.add_tensor(
            format!("{}.{what}", at.node.name),
            shape,
            TensorKind::Weight(data),
        )
    }

    /// Adds a node writing a new activation tensor with the node's output shape.
    pub fn emit(&mut self, at: &At, op: Op, inputs: Vec<TensorId>) -> Result<()> {
        let shape = self.out_shape(at)?;
        self.emit_shaped(at, op, inputs, shape)
    }

    /// As [`TypedLowering::emit`], with the output shape given.
    pub fn emit_shaped(
        &mut self,
        at: &At,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
    ) -> Result<()> {
        let name = at.node.name.clone();
        self.push_node(at, at.output(), op, inputs, shape, name);
        Ok(())
    }

    /// A node of `op` writing a new activation tensor `name` for tract outlet `outlet`.
    fn push_node(
        &mut self,
        at: &At,
        outlet: OutletId,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        name: String,
    ) -> TensorId {
        let out = self.add_node(at, op, inputs, shape, name);
        self.values.insert(outlet, Value::Tensor(out));
        out
    }

    /// A node of `op` writing a new activation tensor `name`, bound to no outlet.
    fn add_node(
        &mut self,
        at: &At,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        name: String,
    ) -> TensorId {
        let out = self.graph.add_tensor(name, shape, TensorKind::Activation);
        self.graph.nodes.push(Node {
            name: at.name.clone(),
            op_type: at.op_type.clone(),
            op,
            inputs,
            output: out,
            scratch: None,
            rank: at.rank,
        });
        out
    }

    /// As [`TypedLowering::emit_shaped`], for output `outlet` of a node of several outputs
    /// (the tensor named after the node and `what`); returns the tensor.
    pub fn emit_outlet(
        &mut self,
        at: &At,
        outlet: OutletId,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        what: &str,
    ) -> Result<TensorId> {
        let name = format!("{}.{what}", at.node.name);
        Ok(self.push_node(at, outlet, op, inputs, shape, name))
    }

    /// Tensor `x` with its axes permuted (`perm[i]`: the input axis of output axis `i`) and
    /// shaped `out_shape` (the permuted shape, with axes of size one added or dropped): a
    /// strided copy written to a new tensor of the node that no outlet names. A node of one
    /// layout inside a graph of another (a channels-last convolution) reads and writes
    /// through these; `crate::passes` cancels the pairs they make.
    pub fn permuted(
        &mut self,
        at: &At,
        x: TensorId,
        perm: &[usize],
        out_shape: Vec<usize>,
        what: &str,
    ) -> Result<TensorId> {
        let s = row_major_strides(&self.graph.tensor(x).shape);
        let in_strides: Vec<usize> = perm.iter().map(|&i| s[i]).collect();
        let permuted: Vec<usize> = perm
            .iter()
            .map(|&i| self.graph.tensor(x).shape[i])
            .collect();
        // Axes of size one move freely: the copy is defined on the permuted shape.
        let copy = copy_op(at, &permuted, in_strides, 0)?;
        Ok(self.emit_unbound(at, copy, vec![x], out_shape, what))
    }

    /// A node of `op` writing a new activation tensor (`<node>.<what>`) that no outlet names
    /// (an intermediate of a node lowered to several).
    pub fn emit_unbound(
        &mut self,
        at: &At,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        what: &str,
    ) -> TensorId {
        let name = format!("{}.{what}", at.node.name);
        self.add_node(at, op, inputs, shape, name)
    }

    /// Names tensor `t` as the value of the node's output.
    pub fn bind_output(&mut self, at: &At, t: TensorId) {
        self.values.insert(at.output(), Value::Tensor(t));
    }

    /// A strided copy of input 0 into the node's output shape (transposes, slices,
    /// downsampling, broadcasts).
    pub fn strided_copy(&mut self, at: &At, in_strides: Vec<usize>, offset: usize) -> Result<()> {
        let out_shape = self.out_shape(at)?;
        let copy = copy_op(at, &out_shape, in_strides, offset)?;
        let x = self.tensor(at, at.input(0))?;
        self.emit(at, copy, vec![x])
    }

    /// Keeps a node we have no kernel for, with its shape, for planning only.
    pub fn opaque(&mut self, at: &At) -> Result<()> {
        let mut inputs = Vec::new();
        for &i in &at.node.inputs {
            if let Some(Value::Tensor(t)) = self.values.get(&i) {
                if !inputs.contains(t) {
                    inputs.push(*t);
                }
            }
        }
        let what = at.node.op.name().to_string();
        for slot in 0..at.node.outputs.len() {
            let outlet = OutletId::new(at.node.id, slot);
            let shape = self.shape(at, outlet)?;
            let name = if slot == 0 {
                at.node.name.clone()
            } else {
                format!("{}.{slot}", at.node.name)
            };
            let out = self.graph.add_tensor(name, shape, TensorKind::Activation);
            self.graph.nodes.push(Node {
                name: at.name.clone(),
                op_type: at.op_type.clone(),
                op: Op::Opaque { what: what.clone() },
                inputs: inputs.clone(),
                output: out,
                scratch: None,
                rank: at.rank,
            });
            self.values.insert(outlet, Value::Tensor(out));
        }
        Ok(())
    }
}

/// The copy op writing `out_shape` from input element `offset + Σ index · in_strides`, its
/// axes simplified ([`simplify_strided`]); an error naming `at` above [`MAX_RANK`] axes.
fn copy_op(at: &At, out_shape: &[usize], in_strides: Vec<usize>, offset: usize) -> Result<Op> {
    let (shape, st) = simplify_strided(out_shape, &[in_strides]);
    if shape.len() > MAX_RANK {
        return Err(at.unsupported(format!("rank {} above {MAX_RANK}", shape.len())));
    }
    Ok(Op::Shape(ShapeOp::Copy(StridedCopy {
        rank: shape.len(),
        shape: to_array(&shape),
        in_strides: to_array(&st[0]),
        offset,
    })))
}
/// Row-major (C order) strides of `shape`, in elements.
pub(crate) fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// Strides to read an input of `in_shape` broadcast to `out_shape` (numpy rules).
pub(crate) fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let s = row_major_strides(in_shape);
    let lead = out_shape.len() - in_shape.len();
    (0..out_shape.len())
        .map(|i| {
            if i < lead || in_shape[i - lead] == 1 {
                0
            } else {
                s[i - lead]
            }
        })
        .collect()
}

/// Drops size-1 axes and merges neighbours that are contiguous for every operand, so that
/// kernels see the smallest rank. Returns the simplified shape and strides.
pub(crate) fn simplify_strided(
    shape: &[usize],
    strides: &[Vec<usize>],
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut sh: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let mergeable = !sh.is_empty()
            && strides
                .iter()
                .zip(&st)
                .all(|(s, acc)| acc[acc.len() - 1] == s[i] * d);
        if mergeable {
            *sh.last_mut().unwrap_or(&mut 0) *= d;
            for (s, acc) in strides.iter().zip(st.iter_mut()) {
                let last = acc.len() - 1;
                acc[last] = s[i];
            }
        } else {
            sh.push(d);
            for (s, acc) in strides.iter().zip(st.iter_mut()) {
                acc.push(s[i]);
            }
        }
    }
    (sh, st)
}

/// A fixed-size array of the kernels' maximum rank, `v` first and zeros after.
pub(crate) fn to_array(v: &[usize]) -> [usize; MAX_RANK] {
    let mut a = [0; MAX_RANK];
    a[..v.len()].copy_from_slice(v);
    a
}

/// `(outer, len, inner)` for a reduction over `axes` of `shape`, if the axes that are not
/// of size 1 are contiguous.
pub(crate) fn outer_len_inner(shape: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
    let big: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    let (Some(&first), Some(&last)) = (big.iter().min(), big.iter().max()) else {
        return Some((shape.iter().product(), 1, 1));
    };
    if (first..=last).any(|a| shape[a] != 1 && !big.contains(&a)) {
        return None;
    }
    let outer = shape[..first].iter().product();
    let len = shape[first..=last].iter().product();
    let inner = shape[last + 1..].iter().product();
    Some((outer, len, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplify_merges_contiguous_axes() {
        // [1, 8, 4, 4] + [1, 8, 1, 1] -> [8, 16] with b stride [1, 0]
        let out = [1, 8, 4, 4];
        let (s, st) = simplify_strided(
            &out,
            &[
                broadcast_strides(&out, &out),
                broadcast_strides(&[1, 8, 1, 1], &out),
            ],
        );
        assert_eq!(s, vec![8, 16]);
        assert_eq!(st, vec![vec![16, 1], vec![1, 0]]);
        let (s, st) = simplify_strided(
            &out,
            &[broadcast_strides(&out, &out), broadcast_strides(&[4], &out)],
        );
        assert_eq!(s, vec![32, 4]);
        assert_eq!(st, vec![vec![4, 1], vec![0, 1]]);
    }

    #[test]
    fn reduction_geometry() {
        assert_eq!(outer_len_inner(&[1, 8, 4, 4], &[2, 3]), Some((8, 16, 1)));
        assert_eq!(outer_len_inner(&[1, 8, 4, 4], &[1]), Some((1, 8, 16)));
        assert_eq!(outer_len_inner(&[2, 8, 4, 4], &[0, 2]), None);
        assert_eq!(outer_len_inner(&[2, 1, 4], &[0, 1]), Some((1, 2, 4)));
    }
}
