//! Lowering of quantized (QDQ) ONNX models to int8 ops.
//!
//! onnxruntime's static quantizer in the QDQ format leaves every op in float and wraps it:
//! `DequantizeLinear → Conv → QuantizeLinear`, weights stored as int8 (int32 for biases)
//! behind their own `DequantizeLinear`. tract's simplifications fold those weight
//! dequantisations into float constants and fuse a quantized Softmax into an op it runs
//! wrongly, so this lowering reads the ONNX nodes themselves, op by op: each float op whose
//! inputs are dequantized int8 tensors and whose output is quantized becomes one int8 kernel
//! with integer requantisation ([`crate::kernels::quant`]). tract only supplies the shape of
//! every value.
//!
//! What becomes what:
//! - `QuantizeLinear` of a float graph input → [`Op::Quantize`]; `DequantizeLinear` feeding a
//!   graph output → [`Op::Dequantize`]; a `DequantizeLinear → QuantizeLinear` pair is free
//!   when both use the same scale and zero point, else an [`Op::Requantize`].
//! - `Conv` (any groups: depthwise too), `Gemm`, `MatMul` with constant weights → int8 kernels
//!   with one requantisation per output channel; a `Relu`/`Clip` between the op and its
//!   `QuantizeLinear` narrows the output range instead of running.
//! - `Add`, `AveragePool`, `GlobalAveragePool`, `Softmax`, `Concat` → int8 kernels
//!   (a concatenation input of another scale is requantised first).
//! - `MaxPool`, `Flatten`/`Reshape`/`Squeeze`/`Unsqueeze`, `Identity`, `Relu`, `Clip` keep the
//!   scale of their input.
//!
//! uint8 activations are handled as int8 with the zero point moved by −128 (the same reals).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, Op, OrderRank, Quant, TensorId, TensorKind};
use crate::kernels::conv::{Conv2d, ConvI8};
use crate::kernels::elementwise::AddI8;
use crate::kernels::gemm::{MatMul, MatMulI8};
use crate::kernels::pool::{window_taps, AvgPoolI8, Pool2d, PoolKind};
use crate::kernels::quant::{Dequantize, Quantize, Requant, RequantizeI8};
use crate::kernels::softmax::{Softmax, SoftmaxI8};
use crate::kernels::Activation;
use tract_onnx::pb;

/// True when the graph holds QuantizeLinear / DequantizeLinear nodes (the QDQ format).
pub(crate) fn is_qdq(g: &pb::GraphProto) -> bool {
    g.node
        .iter()
        .any(|n| n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear")
}

/// ONNX ops the QDQ lowering handles (as they appear between QuantizeLinear/DequantizeLinear).
pub const QDQ_OPS: &[&str] = &[
    "QLinearConv",
    "QLinearMatMul",
    "AveragePool",
    "Clip",
    "Concat",
    "Conv",
    "DequantizeLinear",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MaxPool",
    "QuantizeLinear",
    "Relu",
    "Reshape",
    "Softmax",
    "Squeeze",
    "Unsqueeze",
];

/// A constant of the model, with its integer or float elements.
#[derive(Clone, Debug)]
struct Constant {
    shape: Vec<usize>,
    /// ONNX element type (1 float, 2 uint8, 3 int8, 6 int32, 7 int64).
    data_type: i32,
    ints: Vec<i64>,
    floats: Vec<f32>,
}

impl Constant {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn from_proto(t: &pb::TensorProto) -> std::result::Result<Constant, String> {
        if t.dims.iter().any(|&d| d < 0) {
            return Err(format!("constant `{}` has a negative dimension", t.name));
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        let raw = &t.raw_data;
        let (mut ints, mut floats) = (Vec::new(), Vec::new());
        let short = || format!("constant `{}` holds fewer elements than its shape", t.name);
        match t.data_type {
            1 => {
                floats = if raw.is_empty() {
                    t.float_data.clone()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                }
            }
            2 | 3 => {
                ints = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                } else if t.data_type == 2 {
                    raw.iter().map(|&b| i64::from(b)).collect()
                } else {
                    raw.iter().map(|&b| i64::from(b as i8)).collect()
                }
            }
            6 => {
                ints = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect()
                }
            }
            7 => {
                ints = if raw.is_empty() {
                    t.int64_data.clone()
                } else {
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                        .collect()
                }
            }
            other => {
                return Err(format!(
                    "constant `{}` has ONNX element type {other}, not float, int8, uint8, int32 or int64",
                    t.name
                ))
            }
        }
        if ints.len().max(floats.len()) < n {
            return Err(short());
        }
        ints.truncate(n);
        floats.truncate(n);
        Ok(Constant {
            shape,
            data_type: t.data_type,
            ints,
            floats,
        })
    }

    fn as_f32(&self) -> Vec<f32> {
        if self.data_type == 1 {
            self.floats.clone()
        } else {
            self.ints.iter().map(|&v| v as f32).collect()
        }
    }
}

/// A weight behind a `DequantizeLinear`: integers, and per-channel (or one) scale and zero.
#[derive(Clone, Debug)]
struct QuantWeight {
    values: Constant,
    scales: Vec<f32>,
    zeros: Vec<i64>,
    axis: usize,
}

impl QuantWeight {
    /// Scale of channel `c` along `axis` (per-tensor weights have one).
    fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }

    fn zero(&self, c: usize) -> i64 {
        if self.zeros.len() == 1 {
            self.zeros[0]
        } else {
            self.zeros[c]
        }
    }

    /// The real values.
    fn reals(&self) -> Vec<f64> {
        let shape = &self.values.shape;
        let inner: usize = shape.get(self.axis + 1..).map_or(1, |s| s.iter().product());
        let ch = shape.get(self.axis).copied().unwrap_or(1);
        let v = if self.values.data_type == 1 {
            return self.values.floats.iter().map(|&f| f64::from(f)).collect();
        } else {
            &self.values.ints
        };
        v.iter()
            .enumerate()
            .map(|(i, &q)| {
                let c = if ch == 0 { 0 } else { (i / inner.max(1)) % ch };
                (q - self.zero(c)) as f64 * f64::from(self.scale(c))
            })
            .collect()
    }
}

/// Wraps a tensor as the same kind of value as an op's input (see `deq_or_int8`).
type SameKind = fn(TensorId) -> Val;

/// What an ONNX value is, as far as the lowering is concerned.
#[derive(Clone, Debug)]
enum Val {
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

struct Lowering<'a> {
    g: &'a pb::GraphProto,
    shapes: &'a HashMap<String, Vec<usize>>,
    opset: i64,
    graph: Graph,
    values: HashMap<String, Val>,
    /// Consumers of each value: (node index, input position).
    consumers: HashMap<String, Vec<usize>>,
    /// Nodes already lowered as part of a pattern (a QuantizeLinear or a fused activation).
    done: Vec<bool>,
    tract_rank: Vec<usize>,
}

/// The node being lowered, for errors and ranks.
struct At<'n> {
    ix: usize,
    node: &'n pb::NodeProto,
    rank: OrderRank,
}

impl At<'_> {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Unsupported {
            node: node_name(self.node, self.ix),
            op_type: self.node.op_type.clone(),
            detail: detail.into(),
        }
    }
}

fn node_name(n: &pb::NodeProto, ix: usize) -> String {
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

fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &pb::NodeProto, name: &str) -> String {
    attr(n, name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_default()
}

/// Normalises a possibly negative axis.
fn axis_of(at: &At, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(at.err(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Lowers the QDQ graph `g`; `shapes` maps every value name tract typed to its shape and
/// `tract_rank` gives each ONNX node's position in tract's memory-aware order.
pub(crate) fn lower(
    g: &pb::GraphProto,
    shapes: &HashMap<String, Vec<usize>>,
    opset: i64,
    tract_rank: Vec<usize>,
) -> Result<Graph> {
    let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            consumers.entry(inp.clone()).or_default().push(i);
        }
    }
    let mut l = Lowering {
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
            // An int8/uint8 input: the caller passes the quantized values; their scale comes
            // from the first DequantizeLinear or QLinear op that reads them.
            let t =
                l.graph
                    .add_typed_tensor(&inp.name, shape, DType::I8, TensorKind::Input(k), None);
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
    // Arity first, so that the lowering may index a node's first output and required inputs.
    for (ix, node) in g.node.iter().enumerate() {
        let min_inputs = match node.op_type.as_str() {
            "Constant" => 0,
            "QuantizeLinear" | "DequantizeLinear" | "Conv" | "Gemm" | "MatMul" | "Add" => 2,
            "QLinearConv" | "QLinearMatMul" => 8,
            _ => 1,
        };
        let inputs = node.input.iter().take_while(|i| !i.is_empty()).count();
        if inputs < min_inputs || node.output.first().is_none_or(|o| o.is_empty()) {
            return Err(Error::Unsupported {
                node: node_name(node, ix),
                op_type: node.op_type.clone(),
                detail: format!(
                    "it has {inputs} inputs and {} outputs; the op needs at least {min_inputs} \
                     inputs and one output",
                    node.output.len()
                ),
            });
        }
    }
    for ix in 0..g.node.len() {
        if l.done[ix] {
            continue;
        }
        let node = &g.node[ix];
        let at = At {
            ix,
            node,
            rank: OrderRank {
                file: ix,
                tract: l.tract_rank.get(ix).copied().unwrap_or(ix),
            },
        };
        l.node(&at)?;
    }
    for (k, out) in g.output.iter().enumerate() {
        l.output(k, &out.name)?;
    }
    Ok(l.graph)
}

impl Lowering<'_> {
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.shapes.get(name).cloned()
    }

    fn val(&self, at: &At, name: &str) -> Result<Val> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| at.err(format!("input `{name}` is not produced by a lowered node")))
    }

    /// The int8 tensor behind a dequantized input.
    fn deq(&self, at: &At, pos: usize) -> Result<TensorId> {
        let name = at.node.input.get(pos).map(String::as_str).unwrap_or("");
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
    /// reshapes run on the int8 tensor itself), and a wrapper giving the output the same kind.
    fn deq_or_int8(&self, at: &At, pos: usize) -> Result<(TensorId, SameKind)> {
        let name = at.node.input.get(pos).map(String::as_str).unwrap_or("");
        match self.val(at, name)? {
            Val::Int8(t) if self.graph.tensor(t).quant.is_none() => Err(at.err(format!(
                "int8 input `{name}` is read before any DequantizeLinear or QLinear op gives \
                 its scale"
            ))),
            Val::Int8(t) => Ok((t, Val::Int8)),
            _ => Ok((self.deq(at, pos)?, Val::Deq)),
        }
    }

    /// An int8 input of a QLinear op, whose scale and zero point (inputs `scale_pos`,
    /// `scale_pos + 1`) must be the tensor's.
    fn qlinear_input(&mut self, at: &At, pos: usize, scale_pos: usize) -> Result<TensorId> {
        let name = at.node.input.get(pos).map(String::as_str).unwrap_or("");
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
    fn qlinear_weight(&self, at: &At, pos: usize, axis: usize) -> Result<QuantWeight> {
        let name = at.node.input.get(pos).map(String::as_str).unwrap_or("");
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

    fn symmetric_int8(at: &At, name: &str, w: QuantWeight) -> Result<QuantWeight> {
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

    fn quant(&self, t: TensorId) -> Quant {
        self.graph
            .tensor(t)
            .quant
            .expect("int8 tensors carry their quantisation")
    }

    fn new_i8(&mut self, name: &str, shape: Vec<usize>, q: Quant) -> TensorId {
        self.graph
            .add_typed_tensor(name, shape, DType::I8, TensorKind::Activation, Some(q))
    }

    fn emit(&mut self, at: &At, op: Op, inputs: Vec<TensorId>, output: TensorId) {
        self.graph.nodes.push(Node {
            name: node_name(at.node, at.ix),
            op_type: at.node.op_type.clone(),
            op,
            inputs,
            output,
            rank: at.rank,
        });
    }

    /// Scale and zero point given as inputs 1 and 2 of a (De)QuantizeLinear.
    fn scale_zero(&self, at: &At) -> Result<(Vec<f32>, Vec<i64>, i32)> {
        self.scale_zero_at(at, 1, 2)
    }

    /// Scale and zero point given as inputs `scale_pos` and `zero_pos`.
    fn scale_zero_at(
        &self,
        at: &At,
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

    /// Per-tensor quantisation of an activation (uint8 moved to int8).
    fn activation_quant(&self, at: &At) -> Result<Quant> {
        self.activation_quant_at(at, 1, 2)
    }

    /// As [`Lowering::activation_quant`], from inputs `scale_pos` and `zero_pos`.
    fn activation_quant_at(&self, at: &At, scale_pos: usize, zero_pos: usize) -> Result<Quant> {
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

    fn node(&mut self, at: &At) -> Result<()> {
        let n = at.node;
        let out = n.output.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "QuantizeLinear" => self.quantize_linear(at),
            "DequantizeLinear" => self.dequantize_linear(at),
            "Identity" | "Dropout" => {
                let v = self.val(at, &n.input[0])?;
                self.values.insert(out, v);
                Ok(())
            }
            "Constant" => {
                let t = attr(n, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| at.err("only tensor-valued Constant nodes are supported"))?;
                let c = Constant::from_proto(t).map_err(|e| at.err(e))?;
                self.values.insert(out, Val::Const(c));
                Ok(())
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
                let (x, kind) = self.deq_or_int8(at, 0)?;
                let shape = self
                    .shape_of(&out)
                    .ok_or_else(|| at.err("output shape unknown"))?;
                let q = self.quant(x);
                let y = self.new_i8(&out, shape, q);
                self.emit(at, Op::Reshape, vec![x], y);
                self.values.insert(out, kind(y));
                Ok(())
            }
            "MaxPool" => {
                let (x, kind) = self.deq_or_int8(at, 0)?;
                let geom = self.pool_geometry(at, x, PoolKind::Max)?;
                let q = self.quant(x);
                let y = self.new_i8(&out, self.graph.tensor(x).shape.clone(), q);
                self.graph.tensors[y.0].shape = pool_out_shape(&geom);
                self.emit(
                    at,
                    Op::MaxPoolI8 {
                        geom,
                        lo: -128,
                        hi: 127,
                    },
                    vec![x],
                    y,
                );
                self.values.insert(out, kind(y));
                Ok(())
            }
            "QLinearConv" | "QLinearMatMul" => {
                // QOperator: the quantisation is in the op's own inputs.
                let q = self.activation_quant_at(at, 6, 7)?;
                let x = self.qlinear_input(at, 0, 1)?;
                let y = if n.op_type == "QLinearConv" {
                    let w = self.qlinear_weight(at, 3, 0)?;
                    let bias = self.bias_reals(at, 8, |c| {
                        f64::from(self.quant(x).scale) * f64::from(w.scale(c))
                    })?;
                    self.conv(at, &out, x, w, bias, q, -128, 127)?
                } else {
                    let w = self.qlinear_weight(at, 3, 1)?;
                    self.matmul(at, &out, x, w, None, q, -128, 127)?
                };
                self.values.insert(out, Val::Int8(y));
                Ok(())
            }
            "Relu" | "Clip" => {
                // Standalone (not right after an op that absorbed it): clamp in the input's scale.
                let x = self.deq(at, 0)?;
                let q = self.quant(x);
                let range = self.clamp_range(at, q)?;
                let y = self.requantize_clamped(at, x, q, range, &out);
                self.values.insert(out, Val::Deq(y));
                Ok(())
            }
            "Conv" | "Gemm" | "MatMul" | "Add" | "AveragePool" | "GlobalAveragePool"
            | "Softmax" | "Concat" => self.quantized_op(at),
            other => Err(at.err(format!(
                "no int8 lowering for {other} in a QDQ model; supported: {}",
                QDQ_OPS.join(", ")
            ))),
        }
    }

    fn quantize_linear(&mut self, at: &At) -> Result<()> {
        let n = at.node;
        let q = self.activation_quant(at)?;
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
                self.emit(
                    at,
                    Op::Quantize(Quantize {
                        scale: q.scale,
                        zero: q.zero,
                    }),
                    vec![x],
                    y,
                );
                y
            }
            Val::Deq(x) => self.requantize_to(at, x, q, &out),
            _ => return Err(at.err("quantizes a constant or an int8 tensor")),
        };
        self.values.insert(out, Val::Int8(y));
        Ok(())
    }

    /// `x` in quantisation `q`: itself when it already is, else a requantised copy.
    fn requantize_to(&mut self, at: &At, x: TensorId, q: Quant, name: &str) -> TensorId {
        self.requantize_clamped(at, x, q, (-128, 127), name)
    }

    /// `x` in quantisation `q` clamped to `lo..=hi`: itself when nothing changes, else a
    /// requantised copy named `name`.
    fn requantize_clamped(
        &mut self,
        at: &At,
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
        self.emit(
            at,
            Op::Requantize(RequantizeI8 {
                in_zero: qx.zero,
                mult: Requant::from_real(f64::from(qx.scale) / f64::from(q.scale)),
                out_zero: q.zero,
                lo,
                hi,
            }),
            vec![x],
            y,
        );
        y
    }

    fn dequantize_linear(&mut self, at: &At) -> Result<()> {
        let n = at.node;
        let out = n.output[0].clone();
        match self.val(at, &n.input[0])? {
            Val::Const(c) => {
                let (scales, zeros, _) = self.scale_zero(at)?;
                let axis = if scales.len() > 1 {
                    let a = axis_of(at, attr_i(n, "axis", 1), c.shape.len())?;
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
                let q = self.activation_quant(at)?;
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

    /// The quantisation of `out`, from the QuantizeLinear nodes that read it (all must agree),
    /// possibly through one Relu/Clip (returned as a narrowed range). Marks those nodes done
    /// and returns the names their outputs bind.
    fn output_quant(&mut self, at: &At, out: &str) -> Result<(Quant, i8, i8, Vec<String>)> {
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
            let rat = At {
                ix: r,
                node: &self.g.node[r],
                rank: at.rank,
            };
            let qr = self.activation_quant(&rat)?;
            if q.is_some_and(|q| q != qr) {
                return Err(rat.err("the same value is quantized with two different scales"));
            }
            q = Some(qr);
            names.push(self.g.node[r].output[0].clone());
        }
        let q = q.expect("at least one reader");
        let (mut lo, mut hi) = (-128i8, 127i8);
        if let Some(r) = act {
            let rat = At {
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
        Ok((q, lo, hi, names))
    }

    /// The int8 range of a Relu or Clip (its bounds quantized in `q`).
    fn clamp_range(&self, at: &At, q: Quant) -> Result<(i8, i8)> {
        let (mut min, mut max) = (f32::NEG_INFINITY, f32::INFINITY);
        if at.node.op_type == "Relu" {
            min = 0.0;
        } else if self.opset < 11 {
            min = attr_f(at.node, "min", min);
            max = attr_f(at.node, "max", max);
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

    /// An op whose output scale comes from the QuantizeLinear after it.
    fn quantized_op(&mut self, at: &At) -> Result<()> {
        let n = at.node;
        let out = n.output[0].clone();
        let (q, lo, hi, names) = self.output_quant(at, &out)?;
        let y = match n.op_type.as_str() {
            "Conv" => {
                let x = self.deq(at, 0)?;
                let w = self.weight(at, 1)?;
                let bias = self.bias_reals(at, 2, |_| 1.0)?;
                self.conv(at, &out, x, w, bias, q, lo, hi)?
            }
            "Gemm" | "MatMul" => {
                let a = self.deq(at, 0)?;
                let w = self.weight(at, 1)?;
                let bias = if n.op_type == "Gemm" {
                    self.bias_reals(at, 2, |_| 1.0)?
                } else {
                    None
                };
                self.matmul(at, &out, a, w, bias, q, lo, hi)?
            }
            "Add" => {
                let (a, b) = (self.deq(at, 0)?, self.deq(at, 1)?);
                let shape = self.graph.tensor(a).shape.clone();
                if self.graph.tensor(b).shape != shape {
                    return Err(at.err(format!(
                        "int8 Add of different shapes {:?} and {:?} (broadcasting) is not supported",
                        shape,
                        self.graph.tensor(b).shape
                    )));
                }
                let (qa, qb) = (self.quant(a), self.quant(b));
                let p = AddI8::new(
                    (qa.scale, qa.zero),
                    (qb.scale, qb.zero),
                    (q.scale, q.zero),
                    lo,
                    hi,
                );
                let y = self.new_i8(&out, shape, q);
                self.emit(at, Op::AddI8(p), vec![a, b], y);
                y
            }
            "AveragePool" | "GlobalAveragePool" => {
                let x = self.deq(at, 0)?;
                let include = attr_i(n, "count_include_pad", 0) != 0;
                let geom = self.pool_geometry(
                    at,
                    x,
                    PoolKind::Average {
                        count_include_pad: include,
                    },
                )?;
                let qx = self.quant(x);
                let mut counts: Vec<u32> = Vec::new();
                for oy in 0..geom.out_h {
                    for ox in 0..geom.out_w {
                        let c = window_taps(&geom, oy, ox) as u32;
                        if !counts.contains(&c) {
                            counts.push(c);
                        }
                    }
                }
                counts.sort_unstable();
                if counts.contains(&0) {
                    return Err(at.err("a pooling window covers no input"));
                }
                let by_count = counts
                    .iter()
                    .map(|&c| {
                        // As onnxruntime's QLinear(Global)AveragePool, in float32.
                        (c, Requant::from_f32(qx.scale / (q.scale * c as f32)))
                    })
                    .collect();
                let y = self.new_i8(&out, pool_out_shape(&geom), q);
                self.emit(
                    at,
                    Op::AvgPoolI8 {
                        geom,
                        quant: AvgPoolI8 {
                            in_zero: qx.zero,
                            out_zero: q.zero,
                            lo,
                            hi,
                        },
                        by_count,
                    },
                    vec![x],
                    y,
                );
                y
            }
            "Softmax" => {
                let x = self.deq(at, 0)?;
                let shape = self.graph.tensor(x).shape.clone();
                let rank = shape.len();
                let default_axis = if self.opset >= 13 { -1 } else { 1 };
                let axis = axis_of(at, attr_i(n, "axis", default_axis), rank)?;
                let outer: usize = shape[..axis].iter().product();
                let geom = if self.opset >= 13 {
                    Softmax {
                        outer,
                        len: shape[axis],
                        inner: shape[axis + 1..].iter().product(),
                        log: false,
                    }
                } else {
                    // Before opset 13 the input is seen as 2-D at `axis`.
                    Softmax {
                        outer,
                        len: shape[axis..].iter().product(),
                        inner: 1,
                        log: false,
                    }
                };
                if lo != -128 || hi != 127 {
                    return Err(at.err("an activation after an int8 Softmax is not supported"));
                }
                let p = SoftmaxI8::new(geom, self.quant(x).scale, (q.scale, q.zero));
                let y = self.new_i8(&out, shape, q);
                self.emit(at, Op::SoftmaxI8(Box::new(p)), vec![x], y);
                y
            }
            "Concat" => self.concat(at, &out, q, lo, hi)?,
            _ => unreachable!("quantized_op is called for the ops matched above"),
        };
        for name in names {
            self.values.insert(name, Val::Int8(y));
        }
        Ok(())
    }

    /// Weight `pos` of a node, as int8 integers with per-channel scales along `axis`.
    fn weight(&self, at: &At, pos: usize) -> Result<QuantWeight> {
        let name = at.node.input.get(pos).map(String::as_str).unwrap_or("");
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
    fn bias_reals(
        &self,
        at: &At,
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
    fn bias(
        &mut self,
        at: &At,
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

    fn int8_weight_tensor(&mut self, name: &str, shape: Vec<usize>, v: Vec<i8>) -> TensorId {
        self.graph.add_typed_tensor(
            format!("{name}.i8"),
            shape,
            DType::I8,
            TensorKind::WeightI8(v),
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        at: &At,
        out: &str,
        x: TensorId,
        w: QuantWeight,
        bias: Option<(String, Vec<f64>)>,
        q: Quant,
        lo: i8,
        hi: i8,
    ) -> Result<TensorId> {
        let n = at.node;
        let xs = self.graph.tensor(x).shape.clone();
        let ws = w.values.shape.clone();
        if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
            return Err(at.err(format!(
                "int8 Conv of input {xs:?} and weights {ws:?}: 1-D and 2-D convolutions are supported"
            )));
        }
        if w.scales.len() > 1 && w.axis != 0 {
            return Err(at.err("per-channel weight scales must run along the output channels"));
        }
        // 1-D convolutions as 2-D with height 1.
        let two = |v: &[usize]| -> Vec<usize> {
            if v.len() == 3 {
                vec![v[0], v[1], 1, v[2]]
            } else {
                v.to_vec()
            }
        };
        let (xs4, ws4) = (two(&xs), two(&ws));
        let spatial = xs.len() - 2;
        let ints = |name: &str| -> Result<Vec<usize>> {
            let v: Vec<usize> = attr_ints(n, name)
                .unwrap_or_else(|| vec![1; spatial])
                .iter()
                .map(|&d| d.max(1) as usize)
                .collect();
            match v.len() {
                l if l != spatial => Err(at.err(format!("{name} must have {spatial} values"))),
                1 => Ok(vec![1, v[0]]),
                _ => Ok(v),
            }
        };
        let strides = ints("strides")?;
        let dil = ints("dilations")?;
        let groups = attr_i(n, "group", 1).max(1) as usize;
        let (k_h, k_w) = (ws4[2], ws4[3]);
        let out_shape = self
            .shape_of(out)
            .ok_or_else(|| at.err("output shape unknown"))?;
        let os4 = two(&out_shape);
        let pads = self.pads(at, &xs4, &os4, &[k_h, k_w], &strides, &dil, spatial)?;
        let (out_c, in_c) = (ws4[0], xs4[1]);
        if in_c != ws4[1] * groups || out_c % groups != 0 {
            return Err(at.err("channels do not match the groups"));
        }
        let geom = Conv2d {
            batch: xs4[0],
            in_c,
            in_h: xs4[2],
            in_w: xs4[3],
            out_c,
            out_h: os4[2],
            out_w: os4[3],
            k_h,
            k_w,
            stride_h: strides[0],
            stride_w: strides[1],
            dil_h: dil[0],
            dil_w: dil[1],
            pad_top: pads[0],
            pad_left: pads[1],
            groups,
            act: Activation::Identity,
        };
        let qx = self.quant(x);
        let acc: Vec<f64> = (0..out_c)
            .map(|c| f64::from(qx.scale) * f64::from(w.scale(c)))
            .collect();
        // The scale as onnxruntime holds it: computed in double, rounded to float32 (this
        // matches its per-tensor and per-channel kernels on every tensor of the test models).
        let requant = acc
            .iter()
            .map(|&a| Requant::from_real(a / f64::from(q.scale)))
            .collect();
        let wt = self.int8_weight_tensor(
            &n.input[if n.op_type == "QLinearConv" { 3 } else { 1 }],
            ws4.clone(),
            w.values.ints.iter().map(|&v| v as i8).collect(),
        );
        let mut inputs = vec![x, wt];
        if let Some(b) = self.bias(at, bias, &acc, 1.0)? {
            inputs.push(b);
        }
        let y = self.new_i8(out, out_shape, q);
        self.emit(
            at,
            Op::ConvI8(
                ConvI8 {
                    geom,
                    input_zero: qx.zero,
                    output_zero: q.zero,
                    lo,
                    hi,
                },
                requant,
            ),
            inputs,
            y,
        );
        Ok(y)
    }

    /// Explicit begin pads `[top, left]` (and the check of the ends) from `pads` or `auto_pad`.
    #[allow(clippy::too_many_arguments)]
    fn pads(
        &self,
        at: &At,
        xs4: &[usize],
        os4: &[usize],
        k: &[usize],
        strides: &[usize],
        dil: &[usize],
        spatial: usize,
    ) -> Result<[usize; 4]> {
        let auto = attr_s(at.node, "auto_pad");
        let mut p = [0usize; 4]; // top, left, bottom, right
        match auto.as_str() {
            "" | "NOTSET" => {
                if let Some(v) = attr_ints(at.node, "pads") {
                    let v: Vec<usize> = v.iter().map(|&d| d.max(0) as usize).collect();
                    if spatial == 1 {
                        p = [
                            0,
                            v.first().copied().unwrap_or(0),
                            0,
                            v.get(1).copied().unwrap_or(0),
                        ];
                    } else if v.len() == 4 {
                        p = [v[0], v[1], v[2], v[3]];
                    } else {
                        return Err(at.err("pads must have 4 values for a 2-D op"));
                    }
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                for d in 0..2 {
                    let needed =
                        ((os4[2 + d].saturating_sub(1)) * strides[d] + dil[d] * (k[d] - 1) + 1)
                            .saturating_sub(xs4[2 + d]);
                    let small = needed / 2;
                    let (begin, end) = if auto == "SAME_UPPER" {
                        (small, needed - small)
                    } else {
                        (needed - small, small)
                    };
                    p[d] = begin;
                    p[2 + d] = end;
                }
            }
            other => return Err(at.err(format!("auto_pad {other}"))),
        }
        Ok(p)
    }

    fn pool_geometry(&self, at: &At, x: TensorId, kind: PoolKind) -> Result<Pool2d> {
        let n = at.node;
        let xs = self.graph.tensor(x).shape.clone();
        if xs.len() != 4 {
            return Err(at.err(format!(
                "int8 pooling of a rank-{} tensor; 2-D only",
                xs.len()
            )));
        }
        let out_name = &n.output[0];
        let os = self
            .shape_of(out_name)
            .ok_or_else(|| at.err("output shape unknown"))?;
        let global = n.op_type == "GlobalAveragePool";
        let k: Vec<usize> = if global {
            vec![xs[2], xs[3]]
        } else {
            attr_ints(n, "kernel_shape")
                .ok_or_else(|| at.err("no kernel_shape"))?
                .iter()
                .map(|&d| d.max(1) as usize)
                .collect()
        };
        let strides: Vec<usize> = if global {
            vec![1, 1]
        } else {
            attr_ints(n, "strides")
                .map(|v| v.iter().map(|&d| d.max(1) as usize).collect())
                .unwrap_or(vec![1, 1])
        };
        let dil: Vec<usize> = attr_ints(n, "dilations")
            .map(|v| v.iter().map(|&d| d.max(1) as usize).collect())
            .unwrap_or(vec![1, 1]);
        if k.len() != 2 || strides.len() != 2 || dil.len() != 2 {
            return Err(at.err("2-D pooling needs 2 kernel sizes, strides and dilations"));
        }
        let p = if global {
            [0; 4]
        } else {
            self.pads(at, &xs, &os, &k, &strides, &dil, 2)?
        };
        if os.len() != 4 {
            return Err(at.err("pooling output is not 4-D"));
        }
        Ok(Pool2d {
            batch: xs[0],
            c: xs[1],
            in_h: xs[2],
            in_w: xs[3],
            out_h: os[2],
            out_w: os[3],
            k_h: k[0],
            k_w: k[1],
            stride_h: strides[0],
            stride_w: strides[1],
            dil_h: dil[0],
            dil_w: dil[1],
            pad_top: p[0],
            pad_left: p[1],
            pad_bottom: p[2],
            pad_right: p[3],
            kind,
            act: Activation::Identity,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &mut self,
        at: &At,
        out: &str,
        a: TensorId,
        w: QuantWeight,
        bias: Option<(String, Vec<f64>)>,
        q: Quant,
        lo: i8,
        hi: i8,
    ) -> Result<TensorId> {
        let n = at.node;
        let a_shape = self.graph.tensor(a).shape.clone();
        let ws = w.values.shape.clone();
        let gemm = n.op_type == "Gemm";
        let (alpha, beta) = if gemm {
            (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0))
        } else {
            (1.0, 1.0)
        };
        if gemm && attr_i(n, "transA", 0) != 0 {
            return Err(at.err("int8 Gemm with transA is not supported"));
        }
        if ws.len() != 2 || a_shape.is_empty() {
            return Err(at.err(format!("weights of shape {ws:?}: a 2-D constant is needed")));
        }
        let trans_b = gemm && attr_i(n, "transB", 0) != 0;
        let (k, nn) = if trans_b {
            (ws[1], ws[0])
        } else {
            (ws[0], ws[1])
        };
        let k_a = *a_shape.last().unwrap_or(&0);
        if k_a != k {
            return Err(at.err(format!("inner sizes differ: {a_shape:?} × {ws:?}")));
        }
        let m = a_shape.iter().product::<usize>() / k.max(1);
        let channel_axis = if trans_b { 0 } else { 1 };
        if w.scales.len() > 1 && w.axis != channel_axis {
            return Err(at.err("per-channel weight scales must run along the output columns"));
        }
        let geom = MatMul {
            m,
            n: nn,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n: if trans_b { k } else { 1 },
            b_stride_k: if trans_b { 1 } else { nn },
            out_stride_m: nn,
            out_stride_n: 1,
            act: Activation::Identity,
        };
        let qa = self.quant(a);
        let acc: Vec<f64> = (0..nn)
            .map(|c| f64::from(alpha) * f64::from(qa.scale) * f64::from(w.scale(c)))
            .collect();
        let requant = acc
            .iter()
            .map(|&s| Requant::from_real(s / f64::from(q.scale)))
            .collect();
        let wt = self.int8_weight_tensor(
            &n.input[if n.op_type == "QLinearMatMul" { 3 } else { 1 }],
            ws,
            w.values.ints.iter().map(|&v| v as i8).collect(),
        );
        let mut inputs = vec![a, wt];
        if let Some(b) = self.bias(at, bias, &acc, f64::from(beta))? {
            inputs.push(b);
        }
        let out_shape = self
            .shape_of(out)
            .ok_or_else(|| at.err("output shape unknown"))?;
        if out_shape.iter().product::<usize>() != m * nn {
            return Err(at.err("output size does not match the product"));
        }
        let y = self.new_i8(out, out_shape, q);
        self.emit(
            at,
            Op::MatMulI8(
                MatMulI8 {
                    geom,
                    a_zero: qa.zero,
                    out_zero: q.zero,
                    lo,
                    hi,
                },
                requant,
            ),
            inputs,
            y,
        );
        Ok(y)
    }

    fn concat(&mut self, at: &At, out: &str, q: Quant, lo: i8, hi: i8) -> Result<TensorId> {
        let n = at.node;
        let os = self
            .shape_of(out)
            .ok_or_else(|| at.err("output shape unknown"))?;
        let axis = axis_of(at, attr_i(n, "axis", 0), os.len())?;
        let total: usize = os[axis..].iter().product();
        let mut ins = Vec::new();
        let mut shapes = Vec::new();
        for pos in 0..n.input.len() {
            let x = self.deq(at, pos)?;
            shapes.push(self.graph.tensor(x).shape.clone());
            // An input of another scale (or a clamp to apply) is requantised first: its own
            // node, which the planner can let write straight into the concatenation.
            ins.push(self.requantize_clamped(at, x, q, (lo, hi), &format!("{out}.in{pos}")));
        }
        let parts = super::concat_parts(&os, axis, &shapes);
        let offset: usize = parts.iter().map(|p| p.part).sum();
        if offset != total {
            return Err(at.err("input sizes do not add up to the output"));
        }
        let y = self.new_i8(out, os, q);
        self.emit(at, Op::Concat(parts), ins, y);
        Ok(y)
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
                (
                    x,
                    Op::Dequantize(Dequantize {
                        scale: q.scale,
                        zero: q.zero,
                    }),
                    DType::F32,
                    None,
                )
            }
            Some(Val::Int8(x)) => (x, Op::Reshape, DType::I8, self.graph.tensor(x).quant),
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
            rank,
        });
        self.graph.outputs.push(y);
        self.graph.output_shapes.push(shape);
        self.graph.output_quant.push(None);
        Ok(())
    }
}

fn pool_out_shape(p: &Pool2d) -> Vec<usize> {
    vec![p.batch, p.c, p.out_h, p.out_w]
}
