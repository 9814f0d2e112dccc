//! Import: ONNX file → tract typed, decluttered model → our [`Graph`].
//!
//! tract parses ONNX, infers every shape and simplifies the graph (BatchNorm folded into
//! convolutions, Gemm and 1×1 convolutions as `EinSum`, Relu as `Max` with a constant, ...).
//! This module maps each of those decluttered forms onto our closed [`Op`] set. Anything it
//! cannot map is an [`Error::Unsupported`] naming the ONNX node, never a panic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::kernels::conv::Conv2d;
use crate::kernels::elementwise::{Binary, BinaryOp};
use crate::kernels::gemm::MatMul;
use crate::kernels::pool::{Pool2d, PoolKind};
use crate::kernels::reduce::{Reduce as ReduceP, ReduceKind};
use crate::kernels::shape::{ConcatPart, Pad as PadP, StridedCopy};
use crate::kernels::softmax::Softmax as SoftmaxP;
use crate::kernels::{Activation, MAX_RANK};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use tract_core::ops::array::{MultiBroadcastTo, Pad, PadMode, Slice, TypedConcat};
use tract_core::ops::binary::TypedBinOp;
use tract_core::ops::change_axes::AxisOp;
use tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_core::ops::downsample::Downsample;
use tract_core::ops::einsum::EinSum;
use tract_core::ops::element_wise::ElementWiseOp;
use tract_core::ops::identity::Identity;
use tract_core::ops::logic::Iff;
use tract_core::ops::nn::{DataFormat, Reduce, Reducer, Softmax, SoftmaxKind};

use crate::error::{Error, Result};
use crate::ir::{Graph, Node, Op, OrderRank, TensorId, TensorKind};

mod qdq;
pub use qdq::QDQ_OPS;

/// ONNX ops the compiler has kernels for (as they appear in ONNX files).
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast (f32)",
    "Clip",
    "Concat",
    "Conv",
    "Div",
    "Dropout",
    "Erf",
    "Exp",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Pad (constant)",
    "Pow",
    "PRelu",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Newest ONNX opset of the default domain (ONNX 1.19 defines 1 to 24 and later
/// releases add one per release; 28 as of onnx 1.23).
pub const MAX_OPSET: i64 = 28;

/// Largest total of weight bytes a model may hold: 64 MiB.
pub const MAX_WEIGHT_BYTES: usize = 64 << 20;

/// What the importer needs to know besides the file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Shape of the (single) graph input, for models with symbolic dimensions. When absent,
    /// a symbolic leading (batch) dimension is pinned to 1 and any other symbol is an error.
    pub input_shape: Option<Vec<usize>>,
    /// Planning only: keep nodes we have no kernel for as [`Op::Opaque`] with their shapes
    /// instead of failing (what `microarena plan` needs; never set for code generation).
    pub planning_only: bool,
}

/// Reads, types and lowers an ONNX model.
pub fn import(path: &Path, options: &ImportOptions) -> Result<Graph> {
    if path.is_dir() {
        return Err(Error::NotOnnx {
            path: path.to_owned(),
            message: "it is a directory; name the .onnx file inside it".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    import_bytes(&bytes, path, options)
}

/// As [`import`], from the file's bytes (`path` is used for messages and external data).
pub fn import_bytes(bytes: &[u8], path: &Path, options: &ImportOptions) -> Result<Graph> {
    let not_onnx = |message: String| Error::NotOnnx {
        path: path.to_owned(),
        message,
    };
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty".into()));
    }
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| not_onnx(format!("{e:#}")))?;
    let Some(graph_proto) = proto
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty() || !g.output.is_empty())
    else {
        return Err(not_onnx("it holds no graph".into()));
    };
    if graph_proto.output.is_empty() {
        return Err(not_onnx("the graph declares no output".into()));
    }
    // The default domain's opset: a version no ONNX release defines is a broken or hostile
    // file, refused before tract guesses at it.
    if let Some(o) = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        if !(1..=MAX_OPSET).contains(&o.version) {
            return Err(not_onnx(format!(
                "it declares ONNX opset {} of the default domain; ONNX defines 1 to {MAX_OPSET} \
                 (re-export it, e.g. `torch.onnx.export(..., opset_version=17)`)",
                o.version
            )));
        }
    }
    // Weights go to flash and into the generated source: refuse absurd sizes up front, with
    // the figure, before anything is decoded.
    let weight_bytes: usize = graph_proto
        .initializer
        .iter()
        .map(|t| {
            t.raw_data.len()
                + 4 * (t.float_data.len() + t.int32_data.len())
                + 8 * (t.int64_data.len() + t.double_data.len() + t.uint64_data.len())
        })
        .sum();
    if weight_bytes > MAX_WEIGHT_BYTES {
        return Err(Error::Model(format!(
            "the model holds {weight_bytes} bytes of weights, above the {MAX_WEIGHT_BYTES}-byte \
             (64 MiB) limit: no microcontroller's flash holds them, and the generated source \
             would not compile in reasonable time"
        )));
    }
    // Every graph output must be defined (tract indexes them unchecked).
    let mut defined: std::collections::HashSet<&str> = graph_proto
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(graph_proto.input.iter().map(|i| i.name.as_str()))
        .collect();
    for n in &graph_proto.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    if let Some(o) = graph_proto
        .output
        .iter()
        .find(|o| !defined.contains(o.name.as_str()))
    {
        return Err(not_onnx(format!(
            "graph output `{}` is produced by no node, input or initializer",
            o.name
        )));
    }
    // tract's image ops (BatchNormalization, convolutions, pools) read the channel and
    // spatial axes of their input unchecked (`get_unchecked`, an abort in debug builds): a
    // graph input of too small a rank feeding one is refused here.
    let rank_of = |name: &str| {
        // An initializer of the same name is the value (ONNX IR < 4 lists them as inputs too).
        if let Some(t) = graph_proto.initializer.iter().find(|t| t.name == name) {
            return Some(t.dims.len());
        }
        graph_proto
            .input
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.len()),
                _ => None,
            })
    };
    for n in &graph_proto.node {
        let image_op = matches!(
            n.op_type.as_str(),
            "BatchNormalization"
                | "Conv"
                | "ConvTranspose"
                | "MaxPool"
                | "AveragePool"
                | "GlobalAveragePool"
                | "GlobalMaxPool"
                | "LpPool"
                | "InstanceNormalization"
                | "LRN"
                | "QLinearConv"
        );
        if let (true, Some(rank)) = (image_op, n.input.first().and_then(|x| rank_of(x))) {
            if rank < 3 {
                return Err(Error::Unsupported {
                    node: n.name.clone(),
                    op_type: n.op_type.clone(),
                    detail: format!(
                        "its input is a graph input or constant of rank {rank}; the op needs (N, C, spatial...)"
                    ),
                });
            }
        }
    }
    let onnx_nodes = OnnxNodes::new(graph_proto);
    onnx_nodes.check_known(&onnx)?;

    let dir = path
        .parent()
        .and_then(|p| p.to_str())
        .filter(|s| !s.is_empty());
    let mut model = guarded(path, || onnx.parse(&proto, dir))?.model;
    // tract parses unknown ops into placeholders; name the first one before typing fails on it.
    for node in &model.nodes {
        if let Some(u) = node
            .op
            .as_op()
            .downcast_ref::<tract_core::ops::unimpl::UnimplementedOp>()
        {
            let (name, op_type) = onnx_nodes.origin(&node.name, &format!("{u:?}"));
            let qoperator = op_type.starts_with("QLinear")
                || matches!(
                    op_type.as_str(),
                    "QGemm"
                        | "QAttention"
                        | "ConvInteger"
                        | "MatMulInteger"
                        | "DynamicQuantizeLinear"
                );
            let detail = if qoperator {
                "this is onnxruntime's QOperator quantization format, which tract, our ONNX parser, \
                 cannot load; quantize the float model in the QDQ format instead \
                 (`quantize_static(..., quant_format=QuantFormat.QDQ)`)"
            } else {
                "tract, our ONNX parser, has no implementation of this op"
            };
            return Err(Error::Unsupported {
                node: name,
                op_type,
                detail: detail.into(),
            });
        }
    }
    let quantized = qdq::is_qdq(graph_proto);
    pin_input_shapes(&mut model, options, quantized)?;
    if quantized {
        // Quantized: our own lowering of the ONNX nodes; tract types them (shapes only).
        let typed = guarded(path, || model.into_typed())?;
        let mut shapes = HashMap::new();
        for node in &typed.nodes {
            for (ix, out) in node.outputs.iter().enumerate() {
                let outlet = OutletId::new(node.id, ix);
                // Sources (graph inputs) go by their node name, other values by their label.
                let label = typed
                    .outlet_label(outlet)
                    .or((ix == 0).then_some(node.name.as_str()));
                if let (Some(label), Some(shape)) = (label, out.fact.shape.as_concrete()) {
                    shapes
                        .entry(label.to_string())
                        .or_insert_with(|| shape.to_vec());
                }
            }
        }
        let mut tract_rank = vec![usize::MAX; graph_proto.node.len()];
        let order = guarded(path, || typed.eval_order_opt_ram())?;
        for (pos, id) in order.into_iter().enumerate() {
            if let Some(i) = onnx_nodes.index(&typed.nodes[id].name) {
                tract_rank[i] = tract_rank[i].min(pos);
            }
        }
        // Nodes tract folded away (weight dequantisations) keep their file position.
        for (i, r) in tract_rank.iter_mut().enumerate() {
            if *r == usize::MAX {
                *r = i;
            }
        }
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(13, |o| o.version);
        return qdq::lower(graph_proto, &shapes, opset, tract_rank);
    }
    let typed = guarded(path, || model.into_typed()?.into_decluttered())?;
    Lowerer::new(&typed, &onnx_nodes, options.planning_only).run()
}

/// Runs a tract step, turning its errors and its panics into [`Error::Load`]: a model that
/// trips an unchecked index inside tract is bad input to us, not a crash of the build.
pub(crate) fn guarded<T>(path: &Path, step: impl FnOnce() -> TractResult<T>) -> Result<T> {
    let load = |message: String| Error::Load {
        path: path.to_owned(),
        message,
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(r) => r.map_err(|e| load(format!("{e:#}"))),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(load(format!(
                "tract panicked while reading this model ({what}): the file is malformed"
            )))
        }
    }
}

/// ONNX node names and op types, to name the origin of tract's (suffixed) node names.
struct OnnxNodes {
    /// `(name as tract names the node, op type)` in file order.
    nodes: Vec<(String, String)>,
}

impl OnnxNodes {
    fn new(g: &pb::GraphProto) -> Self {
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

    /// Fails on an op type tract does not know, before tract's own (less precise) error.
    fn check_known(&self, onnx: &tract_onnx::model::Onnx) -> Result<()> {
        let _ = onnx;
        Ok(())
    }

    /// Index in the file of the ONNX node a tract node name comes from: the longest ONNX
    /// node name that is the tract name or a `.`-separated prefix of it.
    fn index(&self, tract_name: &str) -> Option<usize> {
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
    fn origin(&self, tract_name: &str, fallback_op: &str) -> (String, String) {
        self.index(tract_name)
            .map(|i| self.nodes[i].clone())
            .unwrap_or_else(|| (tract_name.to_string(), fallback_op.to_string()))
    }
}

/// Pins every input's shape (and type: f32, or int8/uint8 in quantized models).
fn pin_input_shapes(
    model: &mut InferenceModel,
    options: &ImportOptions,
    quantized: bool,
) -> Result<()> {
    let n_inputs = model.inputs.len();
    if options.input_shape.is_some() && n_inputs != 1 {
        return Err(Error::Model(format!(
            "input_shape applies to single-input models; this model has {n_inputs} inputs"
        )));
    }
    for ix in 0..n_inputs {
        let fact = model
            .input_fact(ix)
            .map_err(|e| Error::Model(format!("{e:#}")))?
            .clone();
        let name = model.node(model.inputs[ix].node).name.clone();
        let declared = format!("{:?}", fact.shape);
        let dt = fact.datum_type.concretize().unwrap_or(f32::datum_type());
        let int8 = dt == i8::datum_type() || dt == u8::datum_type();
        if dt != f32::datum_type() && !(quantized && int8) {
            return Err(Error::Model(format!(
                "input `{name}` is {dt:?}; graph inputs must be f32 (or int8/uint8 in a quantized model)"
            )));
        }
        let dims: Vec<Option<usize>> = fact
            .shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.as_usize()))
            .collect();
        let shape = match &options.input_shape {
            Some(given) => {
                if fact
                    .shape
                    .rank()
                    .concretize()
                    .is_some_and(|r| r as usize != given.len())
                {
                    return Err(Error::BadInputShape {
                        input: name,
                        given: given.clone(),
                        declared,
                        why: format!("the model's input has rank {}", dims.len()),
                    });
                }
                if let Some((i, d)) = dims
                    .iter()
                    .enumerate()
                    .find(|(i, d)| d.is_some_and(|d| d != given[*i]))
                {
                    return Err(Error::BadInputShape {
                        input: name,
                        given: given.clone(),
                        declared,
                        why: format!("dimension {i} is fixed to {} in the model", d.unwrap_or(0)),
                    });
                }
                given.clone()
            }
            None => {
                if fact.shape.rank().concretize().is_none() {
                    return Err(Error::DynamicShape {
                        input: name,
                        shape: "of unknown rank".into(),
                    });
                }
                let mut shape = Vec::with_capacity(dims.len());
                for (i, d) in dims.iter().enumerate() {
                    match d {
                        Some(d) => shape.push(*d),
                        None if i == 0 => shape.push(1),
                        None => {
                            return Err(Error::DynamicShape {
                                input: name,
                                shape: declared,
                            })
                        }
                    }
                }
                shape
            }
        };
        if shape.contains(&0) {
            return Err(Error::Model(format!(
                "input `{name}` has a zero-sized dimension: {shape:?}"
            )));
        }
        model
            .set_input_fact(ix, InferenceFact::dt_shape(dt, shape))
            .map_err(|e| Error::Model(format!("{e:#}")))?;
    }
    Ok(())
}

/// What a tract outlet became.
#[derive(Clone)]
enum Value {
    /// A tensor of ours.
    Tensor(TensorId),
    /// A constant known at compile time (becomes a weight when an op reads it).
    Const(Arc<tract_onnx::prelude::Tensor>),
    /// A boolean comparison, kept symbolic for the `Iff` that consumes it.
    Predicate {
        op: &'static str,
        a: OutletId,
        b: OutletId,
    },
}

struct Lowerer<'a> {
    model: &'a TypedModel,
    onnx: &'a OnnxNodes,
    graph: Graph,
    values: HashMap<OutletId, Value>,
    weights: HashMap<OutletId, TensorId>,
    /// Keep nodes we cannot lower as [`Op::Opaque`] (planning only) instead of failing.
    lenient: bool,
}

/// Context of the node being lowered, for error messages.
struct At<'n> {
    node: &'n TypedNode,
    name: String,
    op_type: String,
    rank: OrderRank,
}

impl At<'_> {
    fn unsupported(&self, detail: impl Into<String>) -> Error {
        Error::Unsupported {
            node: self.name.clone(),
            op_type: self.op_type.clone(),
            detail: detail.into(),
        }
    }
}

/// The [`ConcatPart`] of each input of a concatenation along `axis` into `out_shape`, inputs
/// of `in_shapes` in order (shared by the float and the int8 lowering).
fn concat_parts(out_shape: &[usize], axis: usize, in_shapes: &[Vec<usize>]) -> Vec<ConcatPart> {
    let outer: usize = out_shape[..axis].iter().product();
    let total: usize = out_shape[axis..].iter().product();
    let mut offset = 0;
    in_shapes
        .iter()
        .map(|s| {
            let part: usize = s.get(axis..).map_or(0, |d| d.iter().product());
            let p = ConcatPart {
                outer,
                part,
                total,
                offset,
            };
            offset += part;
            p
        })
        .collect()
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// Strides to read an input of `in_shape` broadcast to `out_shape` (numpy rules).
fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
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

fn to_array(v: &[usize]) -> [usize; MAX_RANK] {
    let mut a = [0; MAX_RANK];
    a[..v.len()].copy_from_slice(v);
    a
}

/// `(outer, len, inner)` for a reduction over `axes` of `shape`, if the axes that are not
/// of size 1 are contiguous.
fn outer_len_inner(shape: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
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

impl<'a> Lowerer<'a> {
    fn new(model: &'a TypedModel, onnx: &'a OnnxNodes, lenient: bool) -> Self {
        Lowerer {
            model,
            onnx,
            graph: Graph::default(),
            values: HashMap::new(),
            weights: HashMap::new(),
            lenient,
        }
    }

    fn run(mut self) -> Result<Graph> {
        let tract_err = |e: TractError| Error::Model(format!("{e:#}"));
        let order = self.model.eval_order().map_err(tract_err)?;
        let mut tract_pos = vec![usize::MAX; self.model.nodes.len()];
        for (pos, id) in self
            .model
            .eval_order_opt_ram()
            .map_err(tract_err)?
            .into_iter()
            .enumerate()
        {
            tract_pos[id] = pos;
        }
        for id in order {
            let at = self.at(id, &tract_pos);
            match self.lower(&at) {
                Err(Error::Unsupported { .. }) if self.lenient => self.opaque(&at)?,
                r => r?,
            }
        }
        self.finish_outputs(&tract_pos)?;
        Ok(self.graph)
    }

    /// The context of tract node `id`: its ONNX origin and its rank in both orders.
    fn at(&self, id: usize, tract_pos: &[usize]) -> At<'a> {
        let node = &self.model.nodes[id];
        let (name, op_type) = self.onnx.origin(&node.name, &node.op.name());
        At {
            node,
            name,
            op_type,
            rank: OrderRank {
                file: self.onnx.index(&node.name).unwrap_or(usize::MAX),
                tract: tract_pos[id],
            },
        }
    }

    /// Keeps a node we have no kernel for, with its shape, for planning only.
    fn opaque(&mut self, at: &At) -> Result<()> {
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
                rank: at.rank,
            });
            self.values.insert(outlet, Value::Tensor(out));
        }
        Ok(())
    }

    fn shape(&self, at: &At, outlet: OutletId) -> Result<Vec<usize>> {
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

    fn out_shape(&self, at: &At) -> Result<Vec<usize>> {
        self.shape(at, OutletId::new(at.node.id, 0))
    }

    fn in_shape(&self, at: &At, i: usize) -> Result<Vec<usize>> {
        self.shape(at, at.node.inputs[i])
    }

    fn check_f32(&self, at: &At, outlet: OutletId) -> Result<()> {
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

    fn konst(&self, outlet: OutletId) -> Option<&Arc<tract_onnx::prelude::Tensor>> {
        match self.values.get(&outlet) {
            Some(Value::Const(t)) => Some(t),
            _ => None,
        }
    }

    fn const_f32(&self, at: &At, t: &tract_onnx::prelude::Tensor) -> Result<Vec<f32>> {
        let c = t
            .cast_to::<f32>()
            .map_err(|e| at.unsupported(format!("constant of type {:?}: {e}", t.datum_type())))?;
        let view = c
            .to_plain_array_view::<f32>()
            .map_err(|e| at.unsupported(format!("constant: {e}")))?;
        Ok(view.iter().copied().collect())
    }

    /// The tensor behind an input outlet; constants become weight tensors (once each).
    fn tensor(&mut self, at: &At, outlet: OutletId) -> Result<TensorId> {
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

    /// Adds a node writing a new activation tensor with the node's output shape.
    fn emit(&mut self, at: &At, op: Op, inputs: Vec<TensorId>) -> Result<()> {
        let shape = self.out_shape(at)?;
        self.emit_shaped(at, op, inputs, shape)
    }

    fn emit_shaped(
        &mut self,
        at: &At,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
    ) -> Result<()> {
        let out = self
            .graph
            .add_tensor(at.node.name.clone(), shape, TensorKind::Activation);
        self.graph.nodes.push(Node {
            name: at.name.clone(),
            op_type: at.op_type.clone(),
            op,
            inputs,
            output: out,
            rank: at.rank,
        });
        self.values
            .insert(OutletId::new(at.node.id, 0), Value::Tensor(out));
        Ok(())
    }

    fn lower(&mut self, at: &At) -> Result<()> {
        let node = at.node;
        let op = &node.op;
        let out = OutletId::new(node.id, 0);
        if let Some(k) = self
            .model
            .outlet_fact(out)
            .ok()
            .and_then(|f| f.konst.clone())
        {
            self.values.insert(out, Value::Const(k));
            return Ok(());
        }
        if op
            .downcast_ref::<tract_core::ops::source::TypedSource>()
            .is_some()
        {
            self.check_f32(at, out)?;
            let shape = self.out_shape(at)?;
            let n = self.graph.inputs.len();
            let t = self
                .graph
                .add_tensor(node.name.clone(), shape, TensorKind::Input(n));
            self.graph.inputs.push(t);
            self.values.insert(out, Value::Tensor(t));
            return Ok(());
        }
        if node.outputs.len() != 1 {
            return Err(at.unsupported(format!(
                "tract op {} with {} outputs",
                op.name(),
                node.outputs.len()
            )));
        }
        if let Some(b) = op.downcast_ref::<TypedBinOp>() {
            return self.binary(at, b);
        }
        if let Some(iff) = op.downcast_ref::<Iff>() {
            let _ = iff;
            return self.iff(at);
        }
        self.check_f32(at, out)?;
        for &i in &node.inputs {
            if let Some(Value::Tensor(_)) = self.values.get(&i) {
                self.check_f32(at, i)?;
            }
        }
        if let Some(c) = op.downcast_ref::<Conv>() {
            return self.conv(at, c);
        }
        if let Some(e) = op.downcast_ref::<EinSum>() {
            return self.einsum(at, e);
        }
        if let Some(e) = op.downcast_ref::<ElementWiseOp>() {
            let act = self.activation(at, e)?;
            let x = self.tensor(at, node.inputs[0])?;
            return self.emit(at, Op::Unary(act), vec![x]);
        }
        if let Some(p) = op.downcast_ref::<MaxPool>() {
            if p.with_index_outputs.is_some() {
                return Err(at.unsupported("MaxPool with indices output"));
            }
            return self.pool(at, &p.pool_spec, PoolKind::Max);
        }
        if let Some(p) = op.downcast_ref::<SumPool>() {
            if !p.normalize {
                return Err(at.unsupported("sum pooling without normalisation"));
            }
            return self.pool(
                at,
                &p.pool_spec,
                PoolKind::Average {
                    count_include_pad: p.count_include_pad,
                },
            );
        }
        if let Some(r) = op.downcast_ref::<Reduce>() {
            return self.reduce(at, r);
        }
        if let Some(s) = op.downcast_ref::<Softmax>() {
            if s.quant_output_dt.is_some() {
                return Err(at.unsupported("quantized softmax"));
            }
            let shape = self.in_shape(at, 0)?;
            let axes: Vec<usize> = s.axes.to_vec();
            let (outer, len, inner) = outer_len_inner(&shape, &axes).ok_or_else(|| {
                at.unsupported(format!("softmax over non-contiguous axes {axes:?}"))
            })?;
            let log = matches!(s.kind, SoftmaxKind::LogSoftmax);
            let x = self.tensor(at, node.inputs[0])?;
            return self.emit(
                at,
                Op::Softmax(SoftmaxP {
                    outer,
                    len,
                    inner,
                    log,
                }),
                vec![x],
            );
        }
        if let Some(c) = op.downcast_ref::<TypedConcat>() {
            return self.concat(at, c.axis);
        }
        if let Some(a) = op.downcast_ref::<AxisOp>() {
            return self.axis_op(at, a);
        }
        if op.downcast_ref::<Identity>().is_some() {
            let x = self.tensor(at, node.inputs[0])?;
            return self.emit(at, Op::Reshape, vec![x]);
        }
        if let Some(c) = op.downcast_ref::<tract_core::ops::cast::Cast>() {
            if c.to != f32::datum_type() {
                return Err(at.unsupported(format!("cast to {:?}", c.to)));
            }
            let x = self.tensor(at, node.inputs[0])?;
            return self.emit(at, Op::Reshape, vec![x]);
        }
        if let Some(d) = op.downcast_ref::<Downsample>() {
            let shape = self.in_shape(at, 0)?;
            if d.stride <= 0 {
                return Err(at.unsupported("downsampling with a negative stride"));
            }
            let mut strides = row_major_strides(&shape);
            let offset = d.modulo * strides[d.axis];
            strides[d.axis] *= d.stride as usize;
            return self.strided_copy(at, strides, offset);
        }
        if let Some(s) = op.downcast_ref::<Slice>() {
            let shape = self.in_shape(at, 0)?;
            let start = s
                .start
                .as_usize()
                .ok_or_else(|| at.unsupported("slice with a symbolic start"))?;
            let strides = row_major_strides(&shape);
            let offset = start * strides[s.axis];
            return self.strided_copy(at, strides, offset);
        }
        if op.downcast_ref::<MultiBroadcastTo>().is_some() {
            let shape = self.in_shape(at, 0)?;
            let out_shape = self.out_shape(at)?;
            return self.strided_copy(at, broadcast_strides(&shape, &out_shape), 0);
        }
        if let Some(p) = op.downcast_ref::<Pad>() {
            let PadMode::Constant(v) = &p.mode else {
                return Err(at.unsupported(format!("pad mode {:?} (only constant)", p.mode)));
            };
            let value = v
                .cast_to_scalar::<f32>()
                .map_err(|e| at.unsupported(format!("pad value: {e}")))?;
            let shape = self.in_shape(at, 0)?;
            if shape.len() > MAX_RANK {
                return Err(at.unsupported(format!("rank {} above {MAX_RANK}", shape.len())));
            }
            let before: Vec<usize> = p.pads.iter().map(|p| p.0).collect();
            let after: Vec<usize> = p.pads.iter().map(|p| p.1).collect();
            let x = self.tensor(at, node.inputs[0])?;
            let pad = PadP {
                rank: shape.len(),
                in_shape: to_array(&shape),
                before: to_array(&before),
                after: to_array(&after),
                value,
            };
            return self.emit(at, Op::Pad(pad), vec![x]);
        }
        Err(at.unsupported(format!(
            "microarena has no kernel for it (tract lowers it to `{}`)",
            op.name()
        )))
    }

    fn strided_copy(&mut self, at: &At, in_strides: Vec<usize>, offset: usize) -> Result<()> {
        let out_shape = self.out_shape(at)?;
        let (shape, st) = simplify_strided(&out_shape, &[in_strides]);
        if shape.len() > MAX_RANK {
            return Err(at.unsupported(format!("rank {} above {MAX_RANK}", shape.len())));
        }
        let copy = StridedCopy {
            rank: shape.len(),
            shape: to_array(&shape),
            in_strides: to_array(&st[0]),
            offset,
        };
        let x = self.tensor(at, at.node.inputs[0])?;
        self.emit(at, Op::Copy(copy), vec![x])
    }

    fn activation(&self, at: &At, e: &ElementWiseOp) -> Result<Activation> {
        if e.1.is_some() {
            return Err(at.unsupported("quantized elementwise op"));
        }
        let name = e.0.name();
        Ok(match name.as_str() {
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "HardSwish" => Activation::HardSwish,
            "Exp" => Activation::Exp,
            "Ln" => Activation::Ln,
            "Abs" => Activation::Abs,
            "Sqrt" => Activation::Sqrt,
            "Recip" => Activation::Recip,
            "Erf" => Activation::Erf,
            "Rsqrt" => Activation::Rsqrt,
            "Neg" => Activation::AffineClip {
                scale: -1.0,
                shift: 0.0,
                min: f32::NEG_INFINITY,
                max: f32::INFINITY,
            },
            "LeakyRelu" => {
                let l =
                    e.0.downcast_ref::<tract_core::ops::nn::LeakyRelu>()
                        .ok_or_else(|| at.unsupported("LeakyRelu without alpha"))?;
                Activation::LeakyRelu { alpha: l.alpha }
            }
            other => return Err(at.unsupported(format!("elementwise function {other}"))),
        })
    }

    fn conv(&mut self, at: &At, c: &Conv) -> Result<()> {
        if c.q_params.is_some() {
            return Err(at.unsupported("quantized convolution"));
        }
        if c.kernel_fmt != KernelFormat::OIHW {
            return Err(at.unsupported(format!("kernel format {:?}", c.kernel_fmt)));
        }
        let ps = &c.pool_spec;
        let xs = self.in_shape(at, 0)?;
        let os = self.out_shape(at)?;
        let spatial = ps.kernel_shape.len();
        let (chw_x, chw_o) = self.chw(at, ps, &xs, &os)?;
        let inputs = &at.node.inputs;
        let kernel = self
            .konst(inputs[1])
            .cloned()
            .ok_or_else(|| at.unsupported("weights that are not constant"))?;
        let kshape = kernel.shape().to_vec();
        let (oc, ic) = (ps.output_channels, ps.input_channels);
        let group = c.group.max(1);
        let kk: usize = ps.kernel_shape.iter().product();
        if kshape.len() != spatial + 2
            || kshape[0] != oc
            || kshape[1] * group != ic
            || kshape[2..].iter().product::<usize>() != kk
        {
            return Err(at.unsupported(format!(
                "kernel shape {kshape:?} for {ic}→{oc} channels in {group} groups"
            )));
        }
        let w = self.const_f32(at, &kernel)?;
        let bias = match inputs.get(2) {
            None => None,
            Some(&b) => {
                let bt = self
                    .konst(b)
                    .cloned()
                    .ok_or_else(|| at.unsupported("a bias that is not constant"))?;
                let bv = self.const_f32(at, &bt)?;
                match bv.len() {
                    1 if bv[0] == 0.0 => None,
                    1 => Some(vec![bv[0]; oc]),
                    n if n == oc => Some(bv),
                    n => {
                        return Err(at.unsupported(format!("bias of {n} values for {oc} channels")))
                    }
                }
            }
        };
        let hw_in = &chw_x[2..];
        let pads = ps.computed_padding(hw_in);
        let dil = ps.dilations();
        let strides = ps.strides();
        let two = |v: &[usize], default: usize| {
            if spatial == 1 {
                (default, v[0])
            } else {
                (v[0], v[1])
            }
        };
        let (in_h, in_w) = two(hw_in, 1);
        let (out_h, out_w) = two(&chw_o[2..], 1);
        let (k_h, k_w) = two(&ps.kernel_shape, 1);
        let (stride_h, stride_w) = two(&strides, 1);
        let (dil_h, dil_w) = two(&dil, 1);
        let before: Vec<usize> = pads.iter().map(|p| p.pad_before).collect();
        let (pad_top, pad_left) = two(&before, 0);
        let p = Conv2d {
            batch: chw_x[0],
            in_c: ic,
            in_h,
            in_w,
            out_c: oc,
            out_h,
            out_w,
            k_h,
            k_w,
            stride_h,
            stride_w,
            dil_h,
            dil_w,
            pad_top,
            pad_left,
            groups: group,
            act: Activation::Identity,
        };
        let x = self.tensor(at, inputs[0])?;
        let wt = self.graph.add_tensor(
            format!("{}.weights", at.node.name),
            kshape,
            TensorKind::Weight(w),
        );
        let mut ins = vec![x, wt];
        if let Some(b) = bias {
            ins.push(self.graph.add_tensor(
                format!("{}.bias", at.node.name),
                vec![oc],
                TensorKind::Weight(b),
            ));
        }
        self.emit(at, Op::Conv(p), ins)
    }

    /// Input and output shapes as `[N, C, spatial...]` for the data formats we run.
    fn chw(
        &self,
        at: &At,
        ps: &PoolSpec,
        xs: &[usize],
        os: &[usize],
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let spatial = ps.kernel_shape.len();
        if !(1..=2).contains(&spatial) {
            return Err(at.unsupported(format!(
                "{spatial}-D spatial input (1-D and 2-D are supported)"
            )));
        }
        let strip = |s: &[usize]| -> Result<Vec<usize>> {
            match ps.data_format {
                DataFormat::NCHW if s.len() == spatial + 2 => Ok(s.to_vec()),
                DataFormat::CHW if s.len() == spatial + 1 => Ok([&[1], s].concat()),
                f => Err(at.unsupported(format!("data format {f:?} with shape {s:?}"))),
            }
        };
        Ok((strip(xs)?, strip(os)?))
    }

    fn pool(&mut self, at: &At, ps: &PoolSpec, kind: PoolKind) -> Result<()> {
        let xs = self.in_shape(at, 0)?;
        let os = self.out_shape(at)?;
        let spatial = ps.kernel_shape.len();
        let (chw_x, chw_o) = self.chw(at, ps, &xs, &os)?;
        let hw_in = &chw_x[2..];
        let pads = ps.computed_padding(hw_in);
        let two = |v: &[usize], default: usize| {
            if spatial == 1 {
                (default, v[0])
            } else {
                (v[0], v[1])
            }
        };
        // The count_include_pad divisor counts taps inside the *declared* padding (ONNX ceil
        // mode may run windows past it), so keep the declared pads where there are some.
        let (before, after): (Vec<usize>, Vec<usize>) = match &ps.padding {
            PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, _) => {
                (b.to_vec(), a.to_vec())
            }
            _ => (
                pads.iter().map(|p| p.pad_before).collect(),
                pads.iter().map(|p| p.pad_after).collect(),
            ),
        };
        let computed_before: Vec<usize> = pads.iter().map(|p| p.pad_before).collect();
        let (in_h, in_w) = two(hw_in, 1);
        let (out_h, out_w) = two(&chw_o[2..], 1);
        let (k_h, k_w) = two(&ps.kernel_shape, 1);
        let (stride_h, stride_w) = two(&ps.strides(), 1);
        let (dil_h, dil_w) = two(&ps.dilations(), 1);
        let (pad_top, pad_left) = two(&computed_before, 0);
        let (pad_bottom, pad_right) = two(&after, 0);
        let _ = before;
        let p = Pool2d {
            batch: chw_x[0],
            c: chw_x[1],
            in_h,
            in_w,
            out_h,
            out_w,
            k_h,
            k_w,
            stride_h,
            stride_w,
            dil_h,
            dil_w,
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
            kind,
            act: Activation::Identity,
        };
        let x = self.tensor(at, at.node.inputs[0])?;
        self.emit(at, Op::Pool(p), vec![x])
    }

    fn reduce(&mut self, at: &At, r: &Reduce) -> Result<()> {
        let kind = match r.reducer {
            Reducer::Sum => ReduceKind::Sum,
            Reducer::Max => ReduceKind::Max,
            Reducer::Min => ReduceKind::Min,
            Reducer::Prod => ReduceKind::Prod,
            Reducer::MeanOfSquares => ReduceKind::MeanOfSquares,
            other => return Err(at.unsupported(format!("reduction {other:?}"))),
        };
        let shape = self.in_shape(at, 0)?;
        let axes: Vec<usize> = r.axes.to_vec();
        let (outer, len, inner) = outer_len_inner(&shape, &axes).ok_or_else(|| {
            at.unsupported(format!(
                "reduction over non-contiguous axes {axes:?} of {shape:?}"
            ))
        })?;
        let x = self.tensor(at, at.node.inputs[0])?;
        self.emit(
            at,
            Op::Reduce(ReduceP {
                outer,
                len,
                inner,
                kind,
                act: Activation::Identity,
            }),
            vec![x],
        )
    }

    fn concat(&mut self, at: &At, axis: usize) -> Result<()> {
        let os = self.out_shape(at)?;
        let mut shapes = Vec::new();
        let mut ins = Vec::new();
        for (i, &inp) in at.node.inputs.iter().enumerate() {
            shapes.push(self.in_shape(at, i)?);
            ins.push(self.tensor(at, inp)?);
        }
        self.emit(at, Op::Concat(concat_parts(&os, axis, &shapes)), ins)
    }

    fn axis_op(&mut self, at: &At, a: &AxisOp) -> Result<()> {
        let x = self.tensor(at, at.node.inputs[0])?;
        if let AxisOp::Move(from, to) = a {
            let shape = self.in_shape(at, 0)?;
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            let moved = perm.remove(*from);
            perm.insert(*to, moved);
            let order_kept = {
                let big: Vec<usize> = perm.iter().copied().filter(|&i| shape[i] != 1).collect();
                big.windows(2).all(|w| w[0] < w[1])
            };
            if !order_kept {
                let s = row_major_strides(&shape);
                let in_strides: Vec<usize> = perm.iter().map(|&i| s[i]).collect();
                // `x` is already looked up; strided_copy re-reads it from the same outlet.
                return self.strided_copy(at, in_strides, 0);
            }
        }
        self.emit(at, Op::Reshape, vec![x])
    }

    fn binary(&mut self, at: &At, b: &TypedBinOp) -> Result<()> {
        let name = b.0.name();
        let op = match name {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            "Pow" => BinaryOp::Pow,
            "GT" | "GTE" | "LT" | "LTE" => {
                let (a, b) = (at.node.inputs[0], at.node.inputs[1]);
                self.values.insert(
                    OutletId::new(at.node.id, 0),
                    Value::Predicate { op: name, a, b },
                );
                return Ok(());
            }
            other => return Err(at.unsupported(format!("binary op {other}"))),
        };
        let out = OutletId::new(at.node.id, 0);
        self.check_f32(at, out)?;
        self.emit_binary(at, op, at.node.inputs[0], at.node.inputs[1])
    }

    fn emit_binary(&mut self, at: &At, op: BinaryOp, a: OutletId, b: OutletId) -> Result<()> {
        let os = self.out_shape(at)?;
        let sa = self.shape(at, a)?;
        let sb = self.shape(at, b)?;
        let (shape, st) = simplify_strided(
            &os,
            &[broadcast_strides(&sa, &os), broadcast_strides(&sb, &os)],
        );
        if shape.len() > MAX_RANK {
            return Err(at.unsupported(format!(
                "broadcast of rank {} above {MAX_RANK}",
                shape.len()
            )));
        }
        let p = Binary {
            op,
            rank: shape.len(),
            shape: to_array(&shape),
            a_strides: to_array(&st[0]),
            b_strides: to_array(&st[1]),
            act: Activation::Identity,
        };
        let ta = self.tensor(at, a)?;
        let tb = self.tensor(at, b)?;
        self.emit(at, Op::Binary(p), vec![ta, tb])
    }

    /// tract writes PRelu as `Iff(x < 0, x * slope, x)`; that is the one select we run.
    fn iff(&mut self, at: &At) -> Result<()> {
        let ins = &at.node.inputs;
        let not_prelu = || {
            at.unsupported(
                "a select (Where/Iff) that is not the PRelu pattern `x < 0 ? x * slope : x`",
            )
        };
        let Some(Value::Predicate { op, a, b }) = self.values.get(&ins[0]).cloned() else {
            return Err(not_prelu());
        };
        let is_zero = |o: OutletId| {
            self.konst(o).is_some_and(|t| {
                t.cast_to::<f32>()
                    .ok()
                    .and_then(|c| {
                        c.to_plain_array_view::<f32>()
                            .ok()
                            .map(|v| v.iter().all(|&x| x == 0.0))
                    })
                    .unwrap_or(false)
            })
        };
        // (x, negative_when_true)
        let (x, neg_when_true) = match op {
            "GT" | "GTE" if is_zero(a) => (b, true),  // 0 > x
            "LT" | "LTE" if is_zero(b) => (a, true),  // x < 0
            "GT" | "GTE" if is_zero(b) => (a, false), // x > 0
            "LT" | "LTE" if is_zero(a) => (b, false), // 0 < x
            _ => return Err(not_prelu()),
        };
        let (neg, pos) = if neg_when_true {
            (ins[1], ins[2])
        } else {
            (ins[2], ins[1])
        };
        if pos != x {
            return Err(not_prelu());
        }
        let mul = &self.model.nodes[neg.node];
        let slope = match mul.op.downcast_ref::<TypedBinOp>() {
            Some(m) if m.0.name() == "Mul" && mul.inputs.contains(&x) => {
                if mul.inputs[0] == x {
                    mul.inputs[1]
                } else {
                    mul.inputs[0]
                }
            }
            _ => return Err(not_prelu()),
        };
        if self.konst(slope).is_none() && !matches!(self.values.get(&slope), Some(Value::Tensor(_)))
        {
            return Err(not_prelu());
        }
        self.emit_binary(at, BinaryOp::PRelu, x, slope)
    }

    fn einsum(&mut self, at: &At, e: &EinSum) -> Result<()> {
        if e.q_params.is_some() || e.operating_dt != f32::datum_type() {
            return Err(at.unsupported("quantized matrix product"));
        }
        let ins = &at.node.inputs;
        if ins.len() != 2 {
            return Err(at.unsupported(format!("einsum with {} operands", ins.len())));
        }
        let mut a_out = ins[0];
        let mut b_out = ins[1];
        let mut swap = false;
        // Keep the constant (if any) as B, so that it can be repacked freely.
        if self.konst(a_out).is_some() && self.konst(b_out).is_none() {
            std::mem::swap(&mut a_out, &mut b_out);
            swap = true;
        }
        let (ai, bi) = if swap { (1, 0) } else { (0, 1) };
        let sa = self.shape(at, a_out)?;
        let sb = self.shape(at, b_out)?;
        let so = self.out_shape(at)?;
        let (sta, stb, sto) = (
            row_major_strides(&sa),
            row_major_strides(&sb),
            row_major_strides(&so),
        );
        // (size, pos in a, pos in b, pos in out)
        let mut m_axes = Vec::new();
        let mut n_axes = Vec::new();
        let mut k_axes = Vec::new();
        for axis in e.axes.iter_all_axes() {
            let one = |v: &[usize]| -> Result<Option<usize>> {
                match v {
                    [] => Ok(None),
                    [p] => Ok(Some(*p)),
                    _ => Err(at.unsupported(format!("einsum {} with a repeated axis", e.axes))),
                }
            };
            let pa = one(&axis.inputs[ai])?;
            let pb = one(&axis.inputs[bi])?;
            let po = one(&axis.outputs[0])?;
            let size = pa
                .map(|p| sa[p])
                .or(pb.map(|p| sb[p]))
                .or(po.map(|p| so[p]))
                .unwrap_or(1);
            if size == 1 {
                continue;
            }
            match (pa, pb, po) {
                (Some(pa), None, Some(po)) => m_axes.push((size, pa, po)),
                (None, Some(pb), Some(po)) => n_axes.push((size, pb, po)),
                (Some(pa), Some(pb), None) => k_axes.push((size, pa, pb)),
                _ => {
                    return Err(at.unsupported(format!(
                        "einsum {} (batched or single-operand axes of size > 1)",
                        e.axes
                    )))
                }
            }
        }
        // Order each group by the layout of the tensor it must be contiguous in, then check
        // that the group collapses to one strided axis in every tensor that is not repacked.
        m_axes.sort_by_key(|x| x.2);
        n_axes.sort_by_key(|x| x.2);
        k_axes.sort_by_key(|x| x.1);
        let collapse = |sizes: &[usize], strides: &[usize]| -> Option<(usize, usize)> {
            if sizes.is_empty() {
                return Some((1, 0));
            }
            for i in 0..sizes.len() - 1 {
                if strides[i] != strides[i + 1] * sizes[i + 1] {
                    return None;
                }
            }
            Some((sizes.iter().product(), strides[sizes.len() - 1]))
        };
        let layout_err = || {
            at.unsupported(format!(
                "einsum {} with operands that are not plain matrices",
                e.axes
            ))
        };
        let m_sizes: Vec<usize> = m_axes.iter().map(|x| x.0).collect();
        let n_sizes: Vec<usize> = n_axes.iter().map(|x| x.0).collect();
        let k_sizes: Vec<usize> = k_axes.iter().map(|x| x.0).collect();
        let (m, a_stride_m) = collapse(
            &m_sizes,
            &m_axes.iter().map(|x| sta[x.1]).collect::<Vec<_>>(),
        )
        .ok_or_else(layout_err)?;
        let (_, out_stride_m) = collapse(
            &m_sizes,
            &m_axes.iter().map(|x| sto[x.2]).collect::<Vec<_>>(),
        )
        .ok_or_else(layout_err)?;
        let (n, out_stride_n) = collapse(
            &n_sizes,
            &n_axes.iter().map(|x| sto[x.2]).collect::<Vec<_>>(),
        )
        .ok_or_else(layout_err)?;
        let (k, a_stride_k) = collapse(
            &k_sizes,
            &k_axes.iter().map(|x| sta[x.1]).collect::<Vec<_>>(),
        )
        .ok_or_else(layout_err)?;
        let a = self.tensor(at, a_out)?;
        let (b, b_stride_n, b_stride_k) = if let Some(c) = self.konst(b_out).cloned() {
            // Repack the constant as a contiguous n × k matrix.
            let data = self.const_f32(at, &c)?;
            let offsets = |axes: &[(usize, usize)]| -> Vec<usize> {
                let mut offs = vec![0usize];
                for &(size, stride) in axes {
                    offs = offs
                        .iter()
                        .flat_map(|&o| (0..size).map(move |i| o + i * stride))
                        .collect();
                }
                offs
            };
            let on = offsets(&n_axes.iter().map(|x| (x.0, stb[x.1])).collect::<Vec<_>>());
            let ok = offsets(&k_axes.iter().map(|x| (x.0, stb[x.2])).collect::<Vec<_>>());
            let mut packed = Vec::with_capacity(n * k);
            for &o in &on {
                for &q in &ok {
                    packed.push(data[o + q]);
                }
            }
            let t = self.graph.add_tensor(
                format!("{}.packed", at.node.name),
                vec![n, k],
                TensorKind::Weight(packed),
            );
            (t, k, 1)
        } else {
            let (_, bsn) = collapse(
                &n_sizes,
                &n_axes.iter().map(|x| stb[x.1]).collect::<Vec<_>>(),
            )
            .ok_or_else(layout_err)?;
            let (_, bsk) = collapse(
                &k_sizes,
                &k_axes.iter().map(|x| stb[x.2]).collect::<Vec<_>>(),
            )
            .ok_or_else(layout_err)?;
            (self.tensor(at, b_out)?, bsn, bsk)
        };
        let p = MatMul {
            m,
            n,
            k,
            a_stride_m,
            a_stride_k,
            b_stride_n,
            b_stride_k,
            out_stride_m,
            out_stride_n,
            act: Activation::Identity,
        };
        self.emit(at, Op::MatMul(p), vec![a, b])
    }

    /// Marks the graph outputs, inserting a copy where an output is not a fresh activation
    /// (an input, a constant, or a tensor already used as another output).
    fn finish_outputs(&mut self, tract_pos: &[usize]) -> Result<()> {
        let outputs: Vec<OutletId> = self.model.outputs.clone();
        for (i, o) in outputs.into_iter().enumerate() {
            let at = self.at(o.node, tract_pos);
            let node = at.node;
            let shape = self.shape(&at, o)?;
            let t = self.tensor(&at, o)?;
            let t = if matches!(self.graph.tensor(t).kind, TensorKind::Activation) {
                t
            } else {
                let n = shape.iter().product::<usize>();
                let copy = StridedCopy {
                    rank: 1,
                    shape: to_array(&[n]),
                    in_strides: to_array(&[1]),
                    offset: 0,
                };
                let out = self.graph.add_tensor(
                    format!("{}.output", node.name),
                    shape.clone(),
                    TensorKind::Activation,
                );
                self.graph.nodes.push(Node {
                    name: at.name.clone(),
                    op_type: "Identity".into(),
                    op: Op::Copy(copy),
                    inputs: vec![t],
                    output: out,
                    rank: at.rank,
                });
                out
            };
            self.graph.tensors[t.0].kind = TensorKind::Output(i);
            self.graph.outputs.push(t);
            self.graph.output_shapes.push(shape);
        }
        Ok(())
    }
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
