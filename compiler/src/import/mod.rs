//! Import: ONNX file → tract typed, decluttered model → our [`Graph`].
//!
//! This module validates the file (before tract indexes anything unchecked), pins the input
//! shapes and dispatches every node to the op family that lowers it (`crate::ops`): float
//! models through tract's decluttered graph ([`typed`]: BatchNorm folded into convolutions,
//! Gemm and 1×1 convolutions as `EinSum`, Relu as `Max` with a constant, ...), quantized
//! models from the ONNX nodes themselves ([`qdq`]). Anything no family lowers is an
//! [`Error::Unsupported`] naming the ONNX node, never a panic.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result};
use crate::ir::{Graph, Node, Op, OrderRank, TensorKind};
use crate::kernels::shape::StridedCopy;
use crate::ops::shape::ShapeOp;

mod constant;
pub(crate) mod qdq;
mod scan;
pub mod tflite;
pub(crate) mod typed;

use typed::{to_array, At, OnnxNodes, TypedLowering, Value};

/// Newest ONNX opset of the default domain (ONNX 1.19 defines 1 to 24 and later
/// releases add one per release; 28 as of onnx 1.23).
pub const MAX_OPSET: i64 = 28;

/// Largest total of weight bytes a model may hold: 64 MiB.
pub const MAX_WEIGHT_BYTES: usize = 64 << 20;

/// A value given for a graph input at build time (`const_input = { "sr": 16000 }`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An integer (for integer, boolean or float inputs).
    Int(i64),
    /// A number with a fraction or exponent (for float inputs only).
    Float(f64),
}

impl std::str::FromStr for Scalar {
    type Err = String;

    /// `16000` → `Int`, `0.5` or `1e-3` → `Float` (finite numbers only).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Ok(v) = s.parse::<i64>() {
            return Ok(Scalar::Int(v));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Scalar::Float(v)),
            _ => Err(format!("`{s}` is not a number")),
        }
    }
}

/// What the importer needs to know besides the file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Shape of the (single) graph input, for models with symbolic dimensions. When absent,
    /// a symbolic leading (batch) dimension is pinned to 1 and any other symbol is an error.
    pub input_shape: Option<Vec<usize>>,
    /// Shapes of graph inputs by name (models of several inputs); the others as above.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Graph inputs that are constants of this build: each becomes an initializer before
    /// tract reads the graph, so what depends on it only (an `If` on a sample rate, shape
    /// arithmetic) folds away, and the generated `run` no longer takes it. Each must be a
    /// scalar or hold one value.
    pub const_inputs: Vec<(String, Scalar)>,
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
    let mut graph = import_bytes(&bytes, path, options)?;
    graph.const_inputs = options.const_inputs.clone();
    Ok(graph)
}

/// tract's model of the file at `path` as [`import`] read it into `g` (its constant inputs
/// baked in, the `If`s its input shapes decide folded), for the self-test's reference run.
pub(crate) fn tract_model(path: &Path, g: &Graph) -> TractResult<InferenceModel> {
    let bytes = std::fs::read(path)?;
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..])?;
    if let Some(graph) = proto.graph.as_mut() {
        bake_const_inputs(graph, &g.const_inputs)?;
    }
    let dir = path
        .parent()
        .and_then(|p| p.to_str())
        .filter(|s| !s.is_empty());
    let options = ImportOptions {
        input_shapes: g
            .inputs
            .iter()
            .map(|&t| (g.tensor(t).name.clone(), g.tensor(t).shape.clone()))
            .collect(),
        ..Default::default()
    };
    fold_constant_ifs(&onnx, &mut proto, dir, &options);
    Ok(onnx.parse(&proto, dir)?.model)
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
    if tflite::is_tflite(bytes) {
        return tflite::import_tflite(bytes, path, options);
    }
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| not_onnx(format!("{e:#}")))?;
    let dir = path
        .parent()
        .and_then(|p| p.to_str())
        .filter(|s| !s.is_empty());
    if let Some(g) = proto.graph.as_mut() {
        bake_const_inputs(g, &options.const_inputs)?;
        for (name, _) in &options.input_shapes {
            if !graph_inputs(g).any(|i| &i.name == name) {
                return Err(Error::UnknownInput {
                    option: "input_shape",
                    name: name.clone(),
                    inputs: describe_inputs(g),
                });
            }
        }
    }
    fold_constant_ifs(&onnx, &mut proto, dir, options);
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
                return Err(crate::ops::unsupported(
                    &n.name,
                    &n.op_type,
                    format!(
                        "its input is a graph input or constant of rank {rank}; the op needs (N, C, spatial...)"
                    ),
                ));
            }
        }
    }
    let onnx_nodes = OnnxNodes::new(graph_proto);
    let output_names: Vec<String> = graph_proto.output.iter().map(|o| o.name.clone()).collect();

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
            return Err(crate::ops::unsupported(&name, &op_type, detail));
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
        let mut g = lower_qdq(graph_proto, &shapes, opset, tract_rank)?;
        g.output_names = output_names;
        return Ok(g);
    }
    let typed = guarded(path, || {
        let mut typed = model.into_typed()?;
        scan::unroll(&mut typed)?;
        typed.into_decluttered()
    })?;
    let mut g = lower_typed(&typed, &onnx_nodes, options.planning_only)?;
    g.output_names = output_names;
    Ok(g)
}

/// Lowers a QDQ model node by node: Q/DQ plumbing in [`qdq`], every other op by the family
/// that lists it (`crate::ops::qdq_lowering`).
fn lower_qdq(
    g: &pb::GraphProto,
    shapes: &HashMap<String, Vec<usize>>,
    opset: i64,
    tract_rank: Vec<usize>,
) -> Result<Graph> {
    let mut l = qdq::QdqLowering::new(g, shapes, opset, tract_rank)?;
    for ix in 0..g.node.len() {
        if l.done[ix] {
            continue;
        }
        let at = l.at(ix);
        if l.lower_plumbing(&at)? {
            continue;
        }
        match crate::ops::qdq_lowering(&at.node.op_type) {
            Some(lower) => lower(&mut l, &at)?,
            None => {
                // A LayerNorm spelled out is quantized piece by piece (its mean, variance
                // and square root each rounded to int8): only the op form has a kernel.
                let hint = if at.node.op_type == "ReduceMean" {
                    " (a LayerNorm spelled out as ReduceMean, Sub, Pow, Sqrt and Div: export \
                     it as one ONNX `LayerNormalization`, opset 17 or later, before quantizing)"
                } else {
                    ""
                };
                return Err(at.err(format!(
                    "no int8 lowering for {} in a QDQ model{hint}; supported: {}",
                    at.node.op_type,
                    crate::ops::qdq_ops().join(", ")
                )));
            }
        }
    }
    l.finish()
}

/// Lowers tract's typed, decluttered model node by node, in tract's evaluation order: every
/// node goes to the first op family that claims its tract op (`crate::ops::FAMILIES`).
/// `planning_only` keeps nodes no family lowers as [`Op::Opaque`] with their shapes instead
/// of failing.
fn lower_typed(model: &TypedModel, onnx: &OnnxNodes, planning_only: bool) -> Result<Graph> {
    let tract_err = |e: TractError| Error::Model(format!("{e:#}"));
    let order = model.eval_order().map_err(tract_err)?;
    let mut tract_pos = vec![usize::MAX; model.nodes.len()];
    for (pos, id) in model
        .eval_order_opt_ram()
        .map_err(tract_err)?
        .into_iter()
        .enumerate()
    {
        tract_pos[id] = pos;
    }
    let at = |id: usize| -> At {
        let node = &model.nodes[id];
        let (name, op_type) = onnx.origin(&node.name, &node.op.name());
        At {
            node,
            name,
            op_type,
            rank: OrderRank {
                file: onnx.index(&node.name).unwrap_or(usize::MAX),
                tract: tract_pos[id],
            },
        }
    };
    let mut l = TypedLowering::new(model);
    for id in order {
        let at = at(id);
        match lower_node(&mut l, &at) {
            Err(Error::Unsupported { .. }) if planning_only => l.opaque(&at)?,
            r => r?,
        }
    }
    finish_outputs(&mut l, &at)?;
    Ok(l.graph)
}

/// One tract node: constants and graph inputs here, everything else by its family.
fn lower_node(l: &mut TypedLowering, at: &At) -> Result<()> {
    let node = at.node;
    let out = at.output();
    if let Some(k) = l.model.outlet_fact(out).ok().and_then(|f| f.konst.clone()) {
        l.values.insert(out, Value::Const(k));
        return Ok(());
    }
    if at.op::<tract_core::ops::source::TypedSource>().is_some() {
        l.check_f32(at, out)?;
        let shape = l.out_shape(at)?;
        let n = l.graph.inputs.len();
        let t = l
            .graph
            .add_tensor(node.name.clone(), shape, TensorKind::Input(n));
        l.graph.inputs.push(t);
        l.values.insert(out, Value::Tensor(t));
        return Ok(());
    }
    if node.outputs.len() != 1 && !crate::ops::recurrent::claims(at) {
        return Err(at.unsupported(format!(
            "tract op {} with {} outputs",
            node.op.name(),
            node.outputs.len()
        )));
    }
    for family in crate::ops::FAMILIES {
        if let Some(r) = (family.lower)(l, at) {
            return r;
        }
    }
    Err(at.unsupported(format!(
        "microarena has no kernel for it (tract lowers it to `{}`)",
        node.op.name()
    )))
}

/// Marks the graph outputs, inserting a copy where an output is not a fresh activation
/// (an input, a constant, or a tensor already used as another output).
fn finish_outputs<'a>(l: &mut TypedLowering<'a>, at: &dyn Fn(usize) -> At<'a>) -> Result<()> {
    let outputs: Vec<OutletId> = l.model.outputs.clone();
    for (i, o) in outputs.into_iter().enumerate() {
        let at = at(o.node);
        let node = at.node;
        let shape = l.shape(&at, o)?;
        let t = l.tensor(&at, o)?;
        let t = if matches!(l.graph.tensor(t).kind, TensorKind::Activation) {
            t
        } else {
            let n = shape.iter().product::<usize>();
            let copy = StridedCopy {
                rank: 1,
                shape: to_array(&[n]),
                in_strides: to_array(&[1]),
                offset: 0,
            };
            let out = l.graph.add_tensor(
                format!("{}.output", node.name),
                shape.clone(),
                TensorKind::Activation,
            );
            l.graph.nodes.push(Node {
                name: at.name.clone(),
                op_type: "Identity".into(),
                op: Op::Shape(ShapeOp::Copy(copy)),
                inputs: vec![t],
                output: out,
                scratch: None,
                rank: at.rank,
            });
            out
        };
        l.graph.tensors[t.0].kind = TensorKind::Output(i);
        l.graph.outputs.push(t);
        l.graph.output_shapes.push(shape);
    }
    Ok(())
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

/// The graph's inputs that are not initializers (ONNX IR < 4 lists those as inputs too).
fn graph_inputs(g: &pb::GraphProto) -> impl Iterator<Item = &pb::ValueInfoProto> {
    g.input
        .iter()
        .filter(|i| !g.initializer.iter().any(|t| t.name == i.name))
}

/// An input's element type and dimensions as declared: a size, or a symbol (its name, empty
/// when it has none).
fn declared(i: &pb::ValueInfoProto) -> Option<(i32, Vec<std::result::Result<i64, String>>)> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let pb::type_proto::Value::TensorType(t) = i.r#type.as_ref()?.value.as_ref()?;
    Some((
        t.elem_type,
        t.shape.as_ref().map_or_else(Vec::new, |s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(Dim::DimValue(v)) => Ok(*v),
                    Some(Dim::DimParam(p)) => Err(p.clone()),
                    None => Err(String::new()),
                })
                .collect()
        }),
    ))
}

/// The graph's inputs for messages: `` `input` [batch, sequence] float, `sr` [] int64 ``.
fn describe_inputs(g: &pb::GraphProto) -> String {
    let list: Vec<String> = graph_inputs(g)
        .map(|i| {
            let (elem, dims) = declared(i).map_or(("?".into(), Vec::new()), |(elem, dims)| {
                let elem = pb::tensor_proto::DataType::try_from(elem)
                    .map_or("?".into(), |d| format!("{d:?}").to_lowercase());
                let dims: Vec<String> = dims
                    .into_iter()
                    .map(|d| match d {
                        Ok(v) => v.to_string(),
                        Err(p) if !p.is_empty() => p,
                        Err(_) => "?".into(),
                    })
                    .collect();
                (elem, dims)
            });
            format!("`{}` [{}] {elem}", i.name, dims.join(", "))
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Turns each constant input into an initializer of its declared type and shape (symbolic
/// dimensions 1), removed from the graph's inputs.
fn bake_const_inputs(g: &mut pb::GraphProto, consts: &[(String, Scalar)]) -> Result<()> {
    use pb::tensor_proto::DataType;
    for (name, value) in consts {
        let Some(input) = graph_inputs(g).find(|i| &i.name == name).cloned() else {
            return Err(Error::UnknownInput {
                option: "const_input",
                name: name.clone(),
                inputs: describe_inputs(g),
            });
        };
        let bad = |why: String| Error::BadConstInput {
            input: name.clone(),
            why,
        };
        let (elem, dims) = declared(&input).ok_or_else(|| bad("it is not a tensor".into()))?;
        let dims: Vec<i64> = dims.iter().map(|d| *d.as_ref().unwrap_or(&1)).collect();
        let count: i64 = dims.iter().product();
        if count != 1 {
            return Err(bad(format!(
                "the input holds {count} values (shape {dims:?}); a constant input is one value \
                 (a scalar, or a tensor of one element)"
            )));
        }
        let mut t = pb::TensorProto {
            name: name.clone(),
            dims,
            data_type: elem,
            ..Default::default()
        };
        let kind = DataType::try_from(elem).unwrap_or(DataType::Undefined);
        let int = |lo: i64, hi: i64| match *value {
            Scalar::Int(v) if (lo..=hi).contains(&v) => Ok(v),
            Scalar::Int(v) => Err(bad(format!(
                "{v} does not fit the input's type ({})",
                format!("{kind:?}").to_lowercase()
            ))),
            Scalar::Float(v) => Err(bad(format!(
                "the input is {}: give an integer, not {v}",
                format!("{kind:?}").to_lowercase()
            ))),
        };
        let float = match *value {
            Scalar::Int(v) => v as f64,
            Scalar::Float(v) => v,
        };
        match kind {
            DataType::Int64 => t.int64_data = vec![int(i64::MIN, i64::MAX)?],
            DataType::Uint64 => t.uint64_data = vec![int(0, i64::MAX)? as u64],
            DataType::Int32 => t.int32_data = vec![int(i32::MIN.into(), i32::MAX.into())? as i32],
            DataType::Int16 => t.int32_data = vec![int(i16::MIN.into(), i16::MAX.into())? as i32],
            DataType::Int8 => t.int32_data = vec![int(i8::MIN.into(), i8::MAX.into())? as i32],
            DataType::Uint8 => t.int32_data = vec![int(0, u8::MAX.into())? as i32],
            DataType::Bool => t.int32_data = vec![int(0, 1)? as i32],
            DataType::Float => t.float_data = vec![float as f32],
            DataType::Double => t.double_data = vec![float],
            other => {
                return Err(bad(format!(
                    "inputs of type {} cannot be given as constants",
                    format!("{other:?}").to_lowercase()
                )))
            }
        }
        g.input.retain(|i| &i.name != name);
        g.initializer.push(t);
    }
    Ok(())
}

/// Replaces each top-level `If` whose condition is known once the inputs are pinned (a
/// constant input, shape arithmetic on pinned shapes: exporters write `squeeze(dim)` as an
/// `If` on `Shape(x)[dim] == 1`) by the nodes of the branch it takes, until none is left.
/// tract types both branches of an `If` and refuses branches of different shapes, which such
/// graphs have; the branch not taken never matters. Anything that fails here is left to the
/// import proper, which reports it.
fn fold_constant_ifs(
    onnx: &tract_onnx::Onnx,
    proto: &mut pb::ModelProto,
    dir: Option<&str>,
    options: &ImportOptions,
) {
    // Each round inlines at least one `If`; a branch may hold more (nested).
    for _ in 0..64 {
        let Some(g) = proto.graph.as_ref() else {
            return;
        };
        if !g
            .node
            .iter()
            .any(|n| n.op_type == "If" && !n.name.is_empty())
        {
            return;
        }
        let quantized = qdq::is_qdq(g);
        let Ok(parsed) = guarded(Path::new(""), || onnx.parse(proto, dir)) else {
            return;
        };
        let mut model = parsed.model;
        if pin_input_shapes(&mut model, options, quantized).is_err() {
            return;
        }
        // Facts as far as they go (the graph may not type as a whole: that is the point).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.analyse(false)));
        let decided: Vec<(usize, bool)> = g
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type == "If" && !n.name.is_empty())
            .filter_map(|(i, n)| {
                let node = model.node_by_name(&n.name).ok()?;
                let fact = model.outlet_fact(*node.inputs.first()?).ok()?;
                let value = fact.value.concretize()?;
                let taken = value.cast_to_scalar::<bool>().ok()?;
                Some((i, taken))
            })
            .collect();
        if decided.is_empty() {
            return;
        }
        let Some(g) = proto.graph.as_mut() else {
            return;
        };
        for &(i, taken) in decided.iter().rev() {
            let node = g.node[i].clone();
            let branch = if taken { "then_branch" } else { "else_branch" };
            let Some(body) = node
                .attribute
                .iter()
                .find(|a| a.name == branch)
                .and_then(|a| a.g.clone())
            else {
                continue;
            };
            if body.output.len() != node.output.len() {
                continue;
            }
            // The branch's nodes in the If's place (they read the enclosing graph's values by
            // name), then its outputs under the If's names.
            let mut inlined = body.node;
            for (out, name) in body.output.iter().zip(&node.output) {
                inlined.push(pb::NodeProto {
                    input: vec![out.name.clone()],
                    output: vec![name.clone()],
                    name: format!("{}.{}", node.name, out.name),
                    op_type: "Identity".into(),
                    ..Default::default()
                });
            }
            g.initializer.extend(body.initializer);
            g.node.splice(i..=i, inlined);
        }
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
        let names: Vec<String> = model
            .inputs
            .iter()
            .map(|o| format!("`{}`", model.node(o.node).name))
            .collect();
        return Err(Error::Model(format!(
            "input_shape = [..] applies to single-input models; this model has {n_inputs} \
             inputs ({}): pin them by name, `input_shape = {{ \"{}\": [..], .. }}` (CLI: \
             `--input-shape NAME=D,D,..`, once per input)",
            names.join(", "),
            model.node(model.inputs[0].node).name
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
        let named = options
            .input_shapes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s);
        let shape = match named.or(options.input_shape.as_ref()) {
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
