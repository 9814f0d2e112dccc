//! The Q/DQ plumbing of quantized (QDQ) ONNX models.
//!
//! onnxruntime's static quantizer in the QDQ format leaves every op in float and wraps it:
//! `DequantizeLinear → Conv → QuantizeLinear`, weights stored as int8 (int32 for biases)
//! behind their own `DequantizeLinear`. tract's simplifications fold those weight
//! dequantisations into float constants and fuse a quantized Softmax into an op it runs
//! wrongly, so these models are lowered from the ONNX nodes themselves, op by op: each float
//! op whose inputs are dequantized int8 tensors and whose output is quantized becomes one int8
//! kernel with integer requantisation ([`crate::kernels::quant`]). tract only supplies the
//! shape of every value.
//!
//! This module holds what every op's lowering shares ([`QdqLowering`]: what each ONNX value
//! is, the scale of an op's output from the `QuantizeLinear` after it, weights, biases) and
//! lowers the plumbing itself:
//! - `QuantizeLinear` of a float graph input → a quantisation by `run` (or
//!   [`QuantOp::Quantize`]); `DequantizeLinear` feeding a graph output → a dequantisation by
//!   `run` (or [`QuantOp::Dequantize`]); a `DequantizeLinear → QuantizeLinear` pair is free
//!   when both use the same scale and zero point, else a [`QuantOp::Requantize`];
//! - `Identity`, `Dropout` and `Constant`.
//!
//! The ops themselves are lowered by their families (`crate::ops::<family>::lower_qdq`): a
//! `Relu`/`Clip` between an op and its `QuantizeLinear` narrows the op's output range instead
//! of running; uint8 activations are handled as int8 with the zero point moved by −128 (the
//! same reals).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, Op, OrderRank, Quant, TensorId, TensorKind};
use crate::kernels::quant::{Dequantize, Quantize, Requant, RequantizeI8};
use crate::ops::quant::QuantOp;
use tract_onnx::pb;

pub(crate) use super::constant::{Constant, QuantWeight};

/// True when the graph holds QuantizeLinear / DequantizeLinear nodes (the QDQ format).
pub(crate) fn is_qdq(g: &pb::GraphProto) -> bool {
    // Constants: initializers and Constant nodes' outputs. A model whose DequantizeLinears
    // all read constants (and that quantizes nothing) is a float model with int8-stored
    // weights (tf2onnx's export of a TFLite "dynamic range" model): tract dequantizes them
    // at build time and the model runs in float.
    let constant = |name: &str| {
        g.initializer.iter().any(|t| t.name == name)
            || g.node
                .iter()
                .any(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
    };
    g.node.iter().any(|n| {
        n.op_type == "QuantizeLinear"
            || n.op_type.starts_with("QLinear")
            || (n.op_type == "DequantizeLinear" && !n.input.first().is_some_and(|i| constant(i)))
    })
}

/// ONNX ops lowered here rather than by an op family.
pub(crate) const PLUMBING_OPS: &[&str] = &[
    "Constant",
    "DequantizeLinear",
    "Dropout",
    "Identity",
    "QuantizeLinear",
];

/// What an ONNX value is, as far as the lowering is concerned.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// A float tensor of ours (a graph input, or a dequantized output).
    Float(TensorId),
    /// An int8 tensor of ours (a QuantizeLinear output).
    Int8(TensorId),
    /// The float view of an int8 tensor (a DequantizeLinear output).
    Deq(TensorId),
    /// A constant.
    Const(Constant),
    /// A constant behind a DequantizeLinear.
    Weight(QuantWeight),
}

/// Wraps a tensor as the same kind of value as an op's input (see
/// [`QdqLowering::deq_or_int8`]).
pub(crate) type SameKind = fn(TensorId) -> Val;

/// The ONNX node being lowered, for errors and ranks.
pub(crate) struct QdqAt<'n> {
    /// Index of the node in the file.
    pub ix: usize,
    /// The node.
    pub node: &'n pb::NodeProto,
    /// Its positions in the file and tract orders.
    pub rank: OrderRank,
}

impl QdqAt<'_> {
    /// An [`Error::Unsupported`] naming this node.
    pub fn err(&self, detail: impl Into<String>) -> Error {
        crate::ops::unsupported(&node_name(self.node, self.ix), &self.node.op_type, detail)
    }

    /// Name of the node's first output.
    pub fn out(&self) -> &str {
        self.node.output.first().map_or("", String::as_str)
    }

    /// Name of input `pos` (empty when absent).
    pub fn input(&self, pos: usize) -> &str {
        self.node.input.get(pos).map_or("", String::as_str)
    }

    /// Integer attribute `name`, or `default`.
    pub fn attr_i(&self, name: &str, default: i64) -> i64 {
        attr(self.node, name).map_or(default, |a| a.i)
    }

    /// Float attribute `name`, or `default`.
    pub fn attr_f(&self, name: &str, default: f32) -> f32 {
        attr(self.node, name).map_or(default, |a| a.f)
    }

    /// Integer-list attribute `name`.
    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        attr(self.node, name).map(|a| a.ints.clone())
    }

    /// String attribute `name` (empty when absent).
    pub fn attr_s(&self, name: &str) -> String {
        attr(self.node, name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_default()
    }

    /// A possibly negative axis of a tensor of `rank`, normalised.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        if a < 0 || a as usize >= rank.max(1) {
            return Err(self.err(format!("axis {axis} out of range for rank {rank}")));
        }
        Ok(a as usize)
    }
}

/// The ONNX node name (tract's rule: the name, else the first output, else op type + index).
pub(crate) fn node_name(n: &pb::NodeProto, ix: usize) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("{}{}", n.op_type, ix)
    }
}

/// ONNX element type of a graph input or output (1 float, 2 uint8, 3 int8), 0 if unknown.
fn elem_type(v: &pb::ValueInfoProto) -> i32 {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.elem_type,
        _ => 0,
    }
}

fn attr<'n>(n: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// The output scale of a quantized op, from the `QuantizeLinear` nodes that read its output
/// (see [`QdqLowering::quantized_output`]).
pub(crate) struct OutputQuant {
    /// Scale and zero point of the output.
    pub q: Quant,
    /// Smallest output (a Relu/Clip folded in raises it).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
    /// The ONNX values the int8 result stands for (the `QuantizeLinear` outputs).
    names: Vec<String>,
}

/// The QDQ lowering's state: the ONNX graph, the graph being built and what every ONNX value
/// is.
pub(crate) struct QdqLowering<'a> {
    /// The ONNX graph.
    pub g: &'a pb::GraphProto,
    shapes: &'a HashMap<String, Vec<usize>>,
    /// The default domain's opset.
    pub opset: i64,
    /// Our graph, as built so far.
    pub graph: Graph,
    values: HashMap<String, Val>,
    /// Consumers of each value (node indices).
    consumers: HashMap<String, Vec<usize>>,
    /// Nodes already lowered as part of a pattern (a QuantizeLinear or a fused activation).
    pub done: Vec<bool>,
    tract_rank: Vec<usize>,
}

impl<'a> QdqLowering<'a> {
    /// The lowering of `g` before its first node: constants and graph inputs known, node
    /// arities checked. `shapes` maps every value name tract typed to its shape and
    /// `tract_rank` gives each ONNX node's position in tract's memory-aware order.
    pub fn new(
        g: &'a pb::GraphProto,
        shapes: &'a HashMap<String, Vec<usize>>,
        opset: i64,
        tract_rank: Vec<usize>,
    ) -> Result<Self> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.clone()).or_default().push(i);
            }
        }
        let mut l = QdqLowering {
            g,
            shapes,
            opset,
            graph: Graph::default(),
            values: HashMap::new(),
            consumers,
            done: vec![false; g.node.len()],
            tract_rank,
        };
        for init in &g.initializer {
            let c = Constant::from_proto(init).map_err(Error::Model)?;
            l.values.insert(init.name.clone(), Val::Const(c));
        }
        let initialized: Vec<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
        for inp in g
            .input
            .iter()
            .filter(|i| !initialized.contains(&i.name.as_str()))
        {
            let shape = l.shape_of(&inp.name).ok_or_else(|| {
                Error::Model(format!("no static shape for graph input `{}`", inp.name))
            })?;
            let k = l.graph.inputs.len();
            let elem = elem_type(inp);
            if elem == 3 || elem == 2 {
                // An int8/uint8 input: the caller passes the quantized values; their scale
                // comes from the first DequantizeLinear or QLinear op that reads them.
                let t = l.graph.add_typed_tensor(
                    &inp.name,
                    shape,
                    DType::I8,
                    TensorKind::Input(k),
                    None,
                );
                l.graph.inputs.push(t);
                l.graph.input_quant.push(None);
                l.graph.input_unsigned.push(elem == 2);
                l.values.insert(inp.name.clone(), Val::Int8(t));
                continue;
            }
            let t = l.graph.add_tensor(&inp.name, shape, TensorKind::Input(k));
            l.graph.inputs.push(t);
            l.graph.input_quant.push(None);
            l.graph.input_unsigned.push(false);
            l.values.insert(inp.name.clone(), Val::Float(t));
        }
        // Arity first, so that the lowering may index a node's first output and required
        // inputs.
        for (ix, node) in g.node.iter().enumerate() {
            let min_inputs = match node.op_type.as_str() {
                "Constant" => 0,
                "QuantizeLinear" | "DequantizeLinear" | "Conv" | "Gemm" | "MatMul" | "Add" => 2,
                "QLinearConv" | "QLinearMatMul" => 8,
                _ => 1,
            };
            let inputs = node.input.iter().take_while(|i| !i.is_empty()).count();
            if inputs < min_inputs || node.output.first().is_none_or(|o| o.is_empty()) {
                return Err(crate::ops::unsupported(
                    &node_name(node, ix),
                    &node.op_type,
                    format!(
                        "it has {inputs} inputs and {} outputs; the op needs at least \
                         {min_inputs} inputs and one output",
                        node.output.len()
                    ),
                ));
            }
        }
        Ok(l)
    }

    /// The context of node `ix`.
    pub fn at(&self, ix: usize) -> QdqAt<'a> {
        QdqAt {
            ix,
            node: &self.g.node[ix],
            rank: OrderRank {
                file: ix,
                tract: self.tract_rank.get(ix).copied().unwrap_or(ix),
            },
        }
    }

    /// The static shape of ONNX value `name`, as tract typed it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.shapes.get(name).cloned()
    }

    /// The shape of the node's first output.
    pub fn out_shape(&self, at: &QdqAt) -> Result<Vec<usize>> {
        self.shape_of(at.out())
            .ok_or_else(|| at.err("output shape unknown"))
    }

    fn val(&self, at: &QdqAt, name: &str) -> Result<Val> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| at.err(format!("input `{name}` is not produced by a lowered node")))
    }

    /// Says what ONNX value `name` is from now on.
    pub fn bind(&mut self, name: &str, v: Val) {
        self.values.insert(name.to_string(), v);
    }

    /// The int8 tensor behind a dequantized input.
    pub fn deq(&self, at: &QdqAt, pos: usize) -> Result<TensorId> {
        let name = at.input(pos);
        match self.val(at, name)? {
            Val::Deq(t) => Ok(t),
            Val::Float(_) => Err(at.err(format!(
                "input `{name}` is a float tensor: in a QDQ model microarena runs every op in \
                 int8, so each op input needs a DequantizeLinear (quantize this op too)"
            ))),
            Val::Int8(_) => Err(at.err(format!(
                "input `{name}` is int8 without a DequantizeLinear; only QDQ-wrapped float ops \
                 are supported"
            ))),
            Val::Const(_) | Val::Weight(_) => Err(at.err(format!(
                "input `{name}` is a constant; this op takes activations only"
            ))),
        }
    }

    /// An input that is either dequantized (QDQ) or plain int8 (QOperator: MaxPool and
    /// reshapes run on the int8 tensor itself), and a wrapper giving the output the same
    /// kind.
    ///
    /// An int8 value without a scale yet (a graph input that tf2onnx reshapes or transposes
    /// before the first DequantizeLinear reads it) takes the scale of the DequantizeLinear
    /// that byte moves carry it to.
    pub fn deq_or_int8(&mut self, at: &QdqAt, pos: usize) -> Result<(TensorId, SameKind)> {
        let name = at.input(pos);
        if let Val::Int8(t) = self.val(at, name)? {
            if self.graph.tensor(t).quant.is_none() {
                if let Some(q) = self.quant_ahead(name)? {
                    self.adopt_quant(t, q);
                }
            }
        }
        match self.val(at, name)? {
            Val::Int8(t) if self.graph.tensor(t).quant.is_none() => Err(at.err(format!(
                "int8 input `{name}` is read before any DequantizeLinear or QLinear op gives \
                 its scale"
            ))),
            Val::Int8(t) => Ok((t, Val::Int8)),
            _ => Ok((self.deq(at, pos)?, Val::Deq)),
        }
    }

    /// The nodes that read value `name` (indices into `g.node`).
    pub fn readers(&self, name: &str) -> Vec<usize> {
        self.consumers.get(name).cloned().unwrap_or_default()
    }

    /// True when value `name` is a constant (quantized or not).
    pub fn is_constant(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Val::Const(_) | Val::Weight(_)))
    }

    /// The scale and zero point of the first DequantizeLinear that reads `name` through byte
    /// moves only (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Identity); `None` when
    /// none does.
    fn quant_ahead(&self, name: &str) -> Result<Option<Quant>> {
        let mut frontier = vec![name.to_string()];
        let mut visited = 0;
        while let Some(v) = frontier.pop() {
            visited += 1;
            if visited > 64 {
                break;
            }
            for &k in self.consumers.get(&v).map_or(&[][..], Vec::as_slice) {
                let node = &self.g.node[k];
                match node.op_type.as_str() {
                    "DequantizeLinear" if node.input.first() == Some(&v) => {
                        let at = QdqAt {
                            ix: k,
                            node,
                            rank: OrderRank::default(),
                        };
                        return self.activation_quant_at(&at, 1, 2).map(Some);
                    }
                    "Reshape" | "Transpose" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity"
                        if node.input.first() == Some(&v) =>
                    {
                        frontier.extend(node.output.first().cloned());
                    }
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// An int8 input of a QLinear op, whose scale and zero point (inputs `scale_pos`,
    /// `scale_pos + 1`) must be the tensor's.
    pub fn qlinear_input(&mut self, at: &QdqAt, pos: usize, scale_pos: usize) -> Result<TensorId> {
        let name = at.input(pos);
        let Val::Int8(t) = self.val(at, name)? else {
            return Err(at.err(format!("input `{name}` must be an int8 tensor")));
        };
        let q = self.activation_quant_at(at, scale_pos, scale_pos + 1)?;
        if !self.adopt_quant(t, q) {
            return Err(at.err(format!(
                "input `{name}` is given a scale or zero point other than it was quantized with"
            )));
        }
        Ok(t)
    }

    /// The constant int8 weight of a QLinear op at `pos`, scales and zero points following.
    pub fn qlinear_weight(&self, at: &QdqAt, pos: usize, axis: usize) -> Result<QuantWeight> {
        let name = at.input(pos);
        let Val::Const(values) = self.val(at, name)? else {
            return Err(at.err(format!("weight `{name}` must be a constant")));
        };
        let (scales, zeros, _) = self.scale_zero_at(at, pos + 1, pos + 2)?;
        if scales.len() > 1 && values.shape.get(axis) != Some(&scales.len()) {
            return Err(at.err("per-channel scales do not match the output channels"));
        }
        let w = QuantWeight {
            values,
            scales,
            zeros,
            axis,
        };
        Self::symmetric_int8(at, name, w)
    }

    fn symmetric_int8(at: &QdqAt, name: &str, w: QuantWeight) -> Result<QuantWeight> {
        if w.values.data_type != 3 || w.zeros.iter().any(|&z| z != 0) {
            return Err(at.err(format!(
                "weight `{name}` must be symmetric int8 (zero point 0): quantize with \
                 weight_type=QuantType.QInt8"
            )));
        }
        Ok(w)
    }

    /// True when int8 tensor `t` is quantized as `q`; an int8 graph input not yet known to
    /// be takes `q`.
    fn adopt_quant(&mut self, t: TensorId, q: Quant) -> bool {
        let slot = &mut self.graph.tensors[t.0].quant;
        match slot {
            Some(have) => *have == q,
            None => {
                *slot = Some(q);
                true
            }
        }
    }

    /// Scale and zero point of int8 tensor `t`.
    pub fn quant(&self, t: TensorId) -> Quant {
        self.graph
            .tensor(t)
            .quant
            .expect("int8 tensors carry their quantisation")
    }

    /// A new int8 activation tensor.
    pub fn new_i8(&mut self, name: &str, shape: Vec<usize>, q: Quant) -> TensorId {
        self.graph
            .add_typed_tensor(name, shape, DType::I8, TensorKind::Activation, Some(q))
    }

    /// Adds a node of this ONNX node writing `output`.
    pub fn emit(&mut self, at: &QdqAt, op: Op, inputs: Vec<TensorId>, output: TensorId) {
        self.graph.nodes.push(Node {
            name: node_name(at.node, at.ix),
            op_type: at.node.op_type.clone(),
            op,
            inputs,
            output,
            scratch: None,
            rank: at.rank,
        });
    }

    /// Scale and zero point given as inputs `scale_pos` and `zero_pos`, and the zero
    /// point's ONNX element type.
    fn scale_zero_at(
        &self,
        at: &QdqAt,
        scale_pos: usize,
        zero_pos: usize,
    ) -> Result<(Vec<f32>, Vec<i64>, i32)> {
        let get = |pos: usize| -> Result<Option<Constant>> {
            match at.node.input.get(pos).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(name) => match self.values.get(name) {
                    Some(Val::Const(c)) => Ok(Some(c.clone())),
                    _ => Err(at.err(format!("`{name}` must be a constant"))),
                },
            }
        };
        let scale = get(scale_pos)?.ok_or_else(|| at.err("no scale"))?;
        let zero = get(zero_pos)?;
        let data_type = zero.as_ref().map_or(2, |z| z.data_type);
        let zeros = zero.map_or(vec![0], |z| z.ints);
        let scales = scale.as_f32();
        if scales.is_empty() || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(at.err("scales must be positive and finite"));
        }
        Ok((
            scales,
            if zeros.is_empty() { vec![0] } else { zeros },
            data_type,
        ))
    }

    /// Per-tensor quantisation of an activation from inputs `scale_pos` and `zero_pos`
    /// (uint8 moved to int8).
    pub fn activation_quant_at(
        &self,
        at: &QdqAt,
        scale_pos: usize,
        zero_pos: usize,
    ) -> Result<Quant> {
        let (scales, zeros, data_type) = self.scale_zero_at(at, scale_pos, zero_pos)?;
        if scales.len() != 1 || zeros.len() != 1 {
            return Err(at.err("per-channel quantisation of an activation is not supported"));
        }
        let zero = match data_type {
            3 => zeros[0],
            2 => zeros[0] - 128,
            other => {
                return Err(at.err(format!(
                    "activations of ONNX type {other}; int8 and uint8 are supported"
                )))
            }
        };
        Ok(Quant {
            scale: scales[0],
            zero: zero as i32,
        })
    }

    /// Lowers `at` if it is plumbing (Q/DQ, Identity, Dropout, Constant); false otherwise.
    pub fn lower_plumbing(&mut self, at: &QdqAt) -> Result<bool> {
        let n = at.node;
        let out = at.out().to_string();
        match n.op_type.as_str() {
            "QuantizeLinear" => self.quantize_linear(at)?,
            "DequantizeLinear" => self.dequantize_linear(at)?,
            "Identity" | "Dropout" => {
                let v = self.val(at, &n.input[0])?;
                self.values.insert(out, v);
            }
            "Constant" => {
                let t = attr(n, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| at.err("only tensor-valued Constant nodes are supported"))?;
                let c = Constant::from_proto(t).map_err(|e| at.err(e))?;
                self.values.insert(out, Val::Const(c));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn quantize_linear(&mut self, at: &QdqAt) -> Result<()> {
        let n = at.node;
        let q = self.activation_quant_at(at, 1, 2)?;
        let out = n.output[0].clone();
        let y = match self.val(at, &n.input[0])? {
            Val::Float(x) => {
                let shape = self.graph.tensor(x).shape.clone();
                let entry = match self.graph.tensor(x).kind {
                    TensorKind::Input(k) if self.graph.input_quant(k).is_none() => Some(k),
                    _ => None,
                };
                // Every reader of a graph input quantizes it the same way: the caller's f32
                // values are quantized by `run` straight into the int8 input, and the float
                // input takes no arena space.
                let readers = self.consumers.get(&n.input[0]).cloned().unwrap_or_default();
                let same = readers.iter().all(|&r| {
                    let node = &self.g.node[r];
                    node.op_type == "QuantizeLinear"
                        && node.input.get(1) == n.input.get(1)
                        && node.input.get(2) == n.input.get(2)
                });
                if let (Some(k), true) = (entry, same) {
                    let y = self.graph.add_typed_tensor(
                        &out,
                        shape,
                        DType::I8,
                        TensorKind::Input(k),
                        Some(q),
                    );
                    self.graph.tensors[x.0].kind = TensorKind::Activation;
                    self.graph.inputs[k] = y;
                    self.graph.input_quant[k] = Some(q);
                    for r in readers {
                        self.done[r] = true;
                        self.values
                            .insert(self.g.node[r].output[0].clone(), Val::Int8(y));
                    }
                    return Ok(());
                }
                let y = self.new_i8(&out, shape, q);
                let op = QuantOp::Quantize(Quantize {
                    scale: q.scale,
                    zero: q.zero,
                });
                self.emit(at, Op::Quant(op), vec![x], y);
                y
            }
            Val::Deq(x) => self.requantize_clamped(at, x, q, (-128, 127), &out),
            _ => return Err(at.err("quantizes a constant or an int8 tensor")),
        };
        self.values.insert(out, Val::Int8(y));
        Ok(())
    }

    /// `x` in quantisation `q` clamped to `lo..=hi`: itself when nothing changes, else a
    /// requantised copy named `name`.
    pub fn requantize_clamped(
        &mut self,
        at: &QdqAt,
        x: TensorId,
        q: Quant,
        (lo, hi): (i8, i8),
        name: &str,
    ) -> TensorId {
        let qx = self.quant(x);
        if qx == q && (lo, hi) == (-128, 127) {
            return x;
        }
        let shape = self.graph.tensor(x).shape.clone();
        let y = self.new_i8(name, shape, q);
        let op = QuantOp::Requantize(RequantizeI8 {
            in_zero: qx.zero,
            mult: Requant::from_real(f64::from(qx.scale) / f64::from(q.scale)),
            out_zero: q.zero,
            lo,
            hi,
        });
        self.emit(at, Op::Quant(op), vec![x], y);
        y
    }

    fn dequantize_linear(&mut self, at: &QdqAt) -> Result<()> {
        let n = at.node;
        let out = n.output[0].clone();
        match self.val(at, &n.input[0])? {
            Val::Const(c) => {
                let (scales, zeros, _) = self.scale_zero_at(at, 1, 2)?;
                let axis = if scales.len() > 1 {
                    let a = at.axis(at.attr_i("axis", 1), c.shape.len())?;
                    if c.shape[a] != scales.len() {
                        return Err(at.err("per-channel scales do not match the axis size"));
                    }
                    a
                } else {
                    0
                };
                if zeros.len() != 1 && zeros.len() != scales.len() {
                    return Err(at.err("zero points do not match the scales"));
                }
                self.values.insert(
                    out,
                    Val::Weight(QuantWeight {
                        values: c,
                        scales,
                        zeros,
                        axis,
                    }),
                );
            }
            Val::Int8(x) => {
                let q = self.activation_quant_at(at, 1, 2)?;
                if !self.adopt_quant(x, q) {
                    return Err(at.err(
                        "dequantizes with other parameters than the tensor was quantized with",
                    ));
                }
                self.values.insert(out, Val::Deq(x));
            }
            _ => return Err(at.err("dequantizes a float tensor")),
        }
        Ok(())
    }

    /// The quantisation of the node's output, from the QuantizeLinear nodes that read it (all
    /// must agree), possibly through one Relu/Clip (returned as a narrowed range). Marks
    /// those nodes done; [`QdqLowering::bind_output`] then binds their outputs.
    pub fn quantized_output(&mut self, at: &QdqAt) -> Result<OutputQuant> {
        let out = at.out();
        let readers = self.consumers.get(out).cloned().unwrap_or_default();
        let single_act = match readers.as_slice() {
            [r] if matches!(self.g.node[*r].op_type.as_str(), "Relu" | "Clip") => Some(*r),
            _ => None,
        };
        let (readers, act) = match single_act {
            Some(r) => {
                let name = self.g.node[r].output[0].clone();
                (
                    self.consumers.get(&name).cloned().unwrap_or_default(),
                    Some(r),
                )
            }
            None => (readers, None),
        };
        let is_output = |name: &str| self.g.output.iter().any(|o| o.name == name);
        let final_name = match act {
            Some(r) => self.g.node[r].output[0].clone(),
            None => out.to_string(),
        };
        if readers.is_empty()
            || is_output(&final_name)
            || readers
                .iter()
                .any(|&r| self.g.node[r].op_type != "QuantizeLinear")
        {
            return Err(at.err(format!(
                "its output `{final_name}` is not quantized (a QuantizeLinear must read it); \
                 microarena runs QDQ models entirely in int8 — quantize every op"
            )));
        }
        let mut q: Option<Quant> = None;
        let mut names = Vec::new();
        for &r in &readers {
            let rat = QdqAt {
                ix: r,
                node: &self.g.node[r],
                rank: at.rank,
            };
            let qr = self.activation_quant_at(&rat, 1, 2)?;
            if q.is_some_and(|q| q != qr) {
                return Err(rat.err("the same value is quantized with two different scales"));
            }
            q = Some(qr);
            names.push(self.g.node[r].output[0].clone());
        }
        let q = q.expect("at least one reader");
        let (mut lo, mut hi) = (-128i8, 127i8);
        if let Some(r) = act {
            let rat = QdqAt {
                ix: r,
                node: &self.g.node[r],
                rank: at.rank,
            };
            (lo, hi) = self.clamp_range(&rat, q)?;
            self.done[r] = true;
        }
        for &r in &readers {
            self.done[r] = true;
        }
        Ok(OutputQuant { q, lo, hi, names })
    }

    /// Binds the values a quantized op's output stands for (see
    /// [`QdqLowering::quantized_output`]) to its int8 result `y`.
    pub fn bind_output(&mut self, out: OutputQuant, y: TensorId) {
        for name in out.names {
            self.values.insert(name, Val::Int8(y));
        }
    }

    /// The int8 range of a Relu or Clip (its bounds quantized in `q`).
    pub fn clamp_range(&self, at: &QdqAt, q: Quant) -> Result<(i8, i8)> {
        let (mut min, mut max) = (f32::NEG_INFINITY, f32::INFINITY);
        if at.node.op_type == "Relu" {
            min = 0.0;
        } else if self.opset < 11 {
            min = at.attr_f("min", min);
            max = at.attr_f("max", max);
        } else {
            for (pos, slot) in [(1, &mut min), (2, &mut max)] {
                if let Some(name) = at.node.input.get(pos).filter(|s| !s.is_empty()) {
                    match self.values.get(name) {
                        Some(Val::Const(c)) if c.len() == 1 => *slot = c.as_f32()[0],
                        _ => return Err(at.err("Clip bounds must be scalar constants")),
                    }
                }
            }
        }
        let quantize = |v: f32| -> i8 {
            let r = (f64::from(v) / f64::from(q.scale)).round_ties_even() + f64::from(q.zero);
            r.clamp(-128.0, 127.0) as i8
        };
        Ok((quantize(min), quantize(max)))
    }

    /// Weight `pos` of a node, as int8 integers with per-channel scales along `axis`.
    pub fn weight(&self, at: &QdqAt, pos: usize) -> Result<QuantWeight> {
        let name = at.input(pos);
        match self.val(at, name)? {
            Val::Weight(w) if matches!(w.values.data_type, 3 | 2) => {
                Self::symmetric_int8(at, name, w)
            }
            Val::Weight(_) => Err(at.err(format!("weight `{name}` is not int8"))),
            Val::Const(_) => Err(at.err(format!(
                "weight `{name}` is float: quantize the weights too (onnxruntime's quantize_static does)"
            ))),
            _ => Err(at.err(format!(
                "input `{name}` must be a constant (quantized) weight"
            ))),
        }
    }

    /// The real values of bias input `pos`, if any: a dequantized or float constant, or
    /// (QLinearConv) int32 values in the scale `implied(c)` of channel `c`.
    pub fn bias_reals(
        &self,
        at: &QdqAt,
        pos: usize,
        implied: impl Fn(usize) -> f64,
    ) -> Result<Option<(String, Vec<f64>)>> {
        let Some(name) = at.node.input.get(pos).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let reals: Vec<f64> = match self.val(at, name)? {
            Val::Weight(w) => w.reals(),
            Val::Const(c) if c.data_type == 1 => c.floats.iter().map(|&v| f64::from(v)).collect(),
            Val::Const(c) => c
                .ints
                .iter()
                .enumerate()
                .map(|(i, &v)| v as f64 * implied(i))
                .collect(),
            _ => return Err(at.err(format!("bias `{name}` must be a constant"))),
        };
        Ok(Some((name.clone(), reals)))
    }

    /// A bias in the accumulator's scale: `round(real · scale_by / acc_scale[c])`.
    pub fn bias(
        &mut self,
        at: &QdqAt,
        bias: Option<(String, Vec<f64>)>,
        acc_scale: &[f64],
        scale_by: f64,
    ) -> Result<Option<TensorId>> {
        let Some((name, reals)) = bias else {
            return Ok(None);
        };
        let n = acc_scale.len();
        if reals.len() != n && reals.len() != 1 {
            return Err(at.err(format!(
                "bias `{name}` has {} values for {n} channels",
                reals.len()
            )));
        }
        let mut ints = Vec::with_capacity(n);
        for (c, &s) in acc_scale.iter().enumerate() {
            let r = reals[if reals.len() == 1 { 0 } else { c }] * scale_by;
            let v = (r / s).round();
            if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
                return Err(at.err(format!(
                    "bias `{name}` overflows int32 in the accumulator's scale"
                )));
            }
            ints.push(v as i32);
        }
        let t = self.graph.add_typed_tensor(
            format!("{name}.i32"),
            vec![n],
            DType::I32,
            TensorKind::WeightI32(ints),
            None,
        );
        Ok(Some(t))
    }

    /// An int8 weight tensor named after ONNX value `name`.
    pub fn int8_weight_tensor(&mut self, name: &str, shape: Vec<usize>, v: Vec<i8>) -> TensorId {
        self.graph.add_typed_tensor(
            format!("{name}.i8"),
            shape,
            DType::I8,
            TensorKind::WeightI8(v),
            None,
        )
    }

    /// Marks the graph outputs (after every node is lowered) and returns the graph.
    pub fn finish(mut self) -> Result<Graph> {
        let g = self.g;
        for (k, out) in g.output.iter().enumerate() {
            self.output(k, &out.name)?;
        }
        Ok(self.graph)
    }

    /// Graph output `k`: a dequantized int8 tensor becomes an f32 output, an int8 one an int8
    /// output.
    fn output(&mut self, k: usize, name: &str) -> Result<()> {
        let v = self.values.get(name).cloned();
        let unsigned = self.g.output.get(k).is_some_and(|o| elem_type(o) == 2);
        self.graph.output_unsigned.push(unsigned);
        let err = |detail: &str| Error::Model(format!("graph output `{name}`: {detail}"));
        let free = |x: TensorId| {
            self.graph.tensor(x).kind == TensorKind::Activation
                && self.graph.nodes.iter().any(|n| n.output == x)
        };
        let (x, op, dtype, quant) = match v {
            Some(Val::Deq(x)) if free(x) => {
                // `run` dequantizes the int8 result straight into the caller's array.
                let q = self.quant(x);
                self.graph.tensors[x.0].kind = TensorKind::Output(k);
                let shape = self.graph.tensor(x).shape.clone();
                self.graph.outputs.push(x);
                self.graph.output_shapes.push(shape);
                self.graph.output_quant.push(Some(q));
                return Ok(());
            }
            Some(Val::Deq(x)) => {
                let q = self.quant(x);
                let op = QuantOp::Dequantize(Dequantize {
                    scale: q.scale,
                    zero: q.zero,
                });
                (x, Op::Quant(op), DType::F32, None)
            }
            Some(Val::Int8(x)) => (
                x,
                Op::Shape(crate::ops::shape::ShapeOp::Reshape),
                DType::I8,
                self.graph.tensor(x).quant,
            ),
            _ => return Err(err("is neither dequantized nor int8; microarena's int8 path needs a QuantizeLinear before every output")),
        };
        let shape = self.graph.tensor(x).shape.clone();
        let y =
            self.graph
                .add_typed_tensor(name, shape.clone(), dtype, TensorKind::Output(k), quant);
        let rank = self
            .graph
            .nodes
            .iter()
            .find(|n| n.output == x)
            .map_or_else(OrderRank::default, |n| n.rank);
        self.graph.nodes.push(Node {
            name: format!("{name}.output"),
            op_type: if dtype == DType::F32 {
                "DequantizeLinear".into()
            } else {
                "Identity".into()
            },
            op,
            inputs: vec![x],
            output: y,
            scratch: None,
            rank,
        });
        self.graph.outputs.push(y);
        self.graph.output_shapes.push(shape);
        self.graph.output_quant.push(None);
        Ok(())
    }
}
