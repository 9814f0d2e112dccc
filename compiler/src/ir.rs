//! Our own graph: tensors with static shapes and a closed set of ops.
//!
//! After import nothing refers to tract any more. Every op carries the runtime's own
//! parameter struct, so the interpreter ([`crate::exec`]) and the generated code call the
//! very same kernel with the very same constants. The ops themselves, family by family, are
//! in `crate::ops`.

pub use crate::ops::activation::ActivationOp;
pub use crate::ops::conv::ConvOp;
pub use crate::ops::elementwise::ElementwiseOp;
pub use crate::ops::gemm::GemmOp;
pub use crate::ops::normalization::NormalizationOp;
pub use crate::ops::pool::PoolOp;
pub use crate::ops::quant::QuantOp;
pub use crate::ops::recurrent::RecurrentOp;
pub use crate::ops::reduce::ReduceOp;
pub use crate::ops::shape::ShapeOp;
pub use crate::ops::softmax::SoftmaxOp;
pub use crate::ops::stream::StreamOp;
use petgraph::graph::{DiGraph, NodeIndex};

/// Index of a tensor in [`Graph::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub usize);

/// Index of a node in [`Graph::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 8-bit signed integer, quantized: see [`Tensor::quant`].
    I8,
    /// 32-bit signed integer (int8 models' biases, in flash; kernel scratch in the arena,
    /// counted in 32-bit words).
    I32,
    /// 16-bit signed integer (int8 weights widened for the DSP kernels, in flash only).
    I16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I16 => 2,
            DType::I8 => 1,
        }
    }
}

/// Affine quantisation of an int8 tensor: `real = (q − zero) · scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quant {
    /// Real value of one step.
    pub scale: f32,
    /// The int8 value that stands for real 0.
    pub zero: i32,
}

/// Where a tensor's storage comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorKind {
    /// Graph input number `n`: copied into the arena when `run` starts.
    Input(usize),
    /// Graph output number `n`: copied out of the arena when `run` ends.
    Output(usize),
    /// Graph input number `n`, read by a streamed stage row by row where the caller passes
    /// it (see `crate::plan::stream`): never copied into the arena.
    Caller(usize),
    /// Constant data, emitted as a `static` in flash.
    Weight(Vec<f32>),
    /// Constant int8 data (quantized weights), in flash.
    WeightI8(Vec<i8>),
    /// Constant int32 data (quantized biases), in flash.
    WeightI32(Vec<i32>),
    /// A kernel's working memory in the arena, held only while its node runs (see
    /// [`Node::scratch`]).
    Scratch,
    /// An intermediate result living in the arena.
    Activation,
}

/// One tensor of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name (ONNX value name where there is one).
    pub name: String,
    /// Static shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Storage class.
    pub kind: TensorKind,
    /// Scale and zero point of an int8 activation ([`DType::I8`] in the arena).
    pub quant: Option<Quant>,
}

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// True for tensors that live in the arena (inputs, outputs, activations, scratch).
    pub fn in_arena(&self) -> bool {
        !self.is_weight() && !matches!(self.kind, TensorKind::Caller(_))
    }

    /// True for constant data (in flash).
    pub fn is_weight(&self) -> bool {
        matches!(
            self.kind,
            TensorKind::Weight(_) | TensorKind::WeightI8(_) | TensorKind::WeightI32(_)
        )
    }
}

/// The closed set of operations: one variant per op family (`crate::ops::<family>`), each a
/// closed enum of that family's ops. Inputs are listed in [`Node::inputs`] in the order each
/// op documents; weights are tensors of a weight [`TensorKind`].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Standalone unary functions.
    Activation(ActivationOp),
    /// Convolutions, f32 and int8.
    Conv(ConvOp),
    /// Binary elementwise ops with broadcasting, and the int8 Add.
    Elementwise(ElementwiseOp),
    /// Matrix products, f32 and int8.
    Gemm(GemmOp),
    /// Per-channel scale and shift.
    Normalization(NormalizationOp),
    /// Max and average pooling, f32 and int8.
    Pool(PoolOp),
    /// Quantisation, dequantisation and requantisation.
    Quant(QuantOp),
    /// Recurrent cells (the gates of an LSTM step).
    Recurrent(RecurrentOp),
    /// Reductions over contiguous axes.
    Reduce(ReduceOp),
    /// Concatenation, strided copies, padding, reshapes.
    Shape(ShapeOp),
    /// Softmax and LogSoftmax, f32 and int8.
    Softmax(SoftmaxOp),
    /// A streamed stage: several row-local ops run band by band (see `crate::plan::stream`).
    Stream(Box<StreamOp>),
    /// `[inputs...]`: an op we have no kernel for, kept only so that `microarena plan` can
    /// plan memory for any model tract can type (planning needs only shapes). Graphs that
    /// hold one are never compiled: [`crate::compile`] fails at import instead.
    Opaque {
        /// What tract lowered the node to.
        what: String,
    },
}

/// One operation instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name of the ONNX node it came from (for errors and reports).
    pub name: String,
    /// The ONNX op type it came from.
    pub op_type: String,
    /// What it computes.
    pub op: Op,
    /// Operand tensors.
    pub inputs: Vec<TensorId>,
    /// The tensor it writes.
    pub output: TensorId,
    /// Working memory of its kernel ([`TensorKind::Scratch`]): in the arena, placed like any
    /// tensor, live only during this node's step.
    pub scratch: Option<TensorId>,
    /// Where the node stands in two reference orders, used as scheduling baselines and
    /// seeds: its ONNX node's index in the file, and the position of its tract node in
    /// tract's `eval_order_opt_ram`. A node fused from several keeps the larger of each.
    pub rank: OrderRank,
}

/// A node's position in the reference orders (see [`Node::rank`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderRank {
    /// Index of the ONNX node in the model file.
    pub file: usize,
    /// Position of the tract node in `eval_order_opt_ram`.
    pub tract: usize,
}

impl OrderRank {
    /// The later of two ranks, position by position (for a node fused from two).
    pub fn max(self, other: OrderRank) -> OrderRank {
        OrderRank {
            file: self.file.max(other.file),
            tract: self.tract.max(other.tract),
        }
    }
}

/// The whole model: tensors, nodes in a valid (topological) order, and the interface.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// All tensors, indexed by [`TensorId`].
    pub tensors: Vec<Tensor>,
    /// All nodes, in an order where every node comes after the producers of its inputs.
    pub nodes: Vec<Node>,
    /// Graph inputs, in ONNX order.
    pub inputs: Vec<TensorId>,
    /// Graph outputs, in ONNX order.
    pub outputs: Vec<TensorId>,
    /// The outputs' ONNX names (the tensors may be named after the nodes making them).
    pub output_names: Vec<String>,
    /// Declared shapes of the outputs (a reshape folded into its producer keeps them).
    pub output_shapes: Vec<Vec<usize>>,
    /// Per graph input: `Some` when the caller passes `f32` values that `run` quantizes
    /// straight into the arena's int8 input tensor (an int8 model with a float interface;
    /// the float input then takes no arena space).
    pub input_quant: Vec<Option<Quant>>,
    /// Per graph output: `Some` when `run` dequantizes the arena's int8 output tensor straight
    /// into the caller's `f32` array.
    pub output_quant: Vec<Option<Quant>>,
    /// Per graph input: true when the caller passes `u8` values (a uint8 model input), which
    /// `run` shifts to the arena's int8 (`v − 128`, the zero point moved alike).
    pub input_unsigned: Vec<bool>,
    /// Per graph output: true when the caller receives `u8` values (`v + 128`).
    pub output_unsigned: Vec<bool>,
    /// Per graph input: true when the caller passes the 4-D input channels last (NHWC, as a
    /// TFLite file declares it) while the tensor and the kernels hold it channels first
    /// (NCHW): `run` gathers the channels while copying it into the arena, a streamed stage
    /// while reading its rows (`kernels::stream::ChannelsLast`).
    pub input_channels_last: Vec<bool>,
    /// Graph inputs of the file baked in as constants at import (`const_input`), with their
    /// values: not inputs of this graph; the self-test's reference runs the file with them.
    pub const_inputs: Vec<(String, crate::import::Scalar)>,
    /// Carried state (see [`crate::carry`]): pairs of (graph output index, graph input index)
    /// where the output is the input of the next call, kept by the generated `Model`
    /// between calls instead of passed through `run`.
    pub carry: Vec<(usize, usize)>,
}

impl Graph {
    /// A copy of everything but the nodes, for a caller that builds them anew (the planner's
    /// streaming trials, which copy the graph hundreds of times).
    pub fn clone_without_nodes(&self) -> Graph {
        let Graph {
            tensors,
            nodes: _,
            inputs,
            outputs,
            output_names,
            output_shapes,
            input_quant,
            output_quant,
            input_unsigned,
            output_unsigned,
            input_channels_last,
            const_inputs,
            carry,
        } = self;
        Graph {
            tensors: tensors.clone(),
            nodes: Vec::new(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            output_names: output_names.clone(),
            output_shapes: output_shapes.clone(),
            input_quant: input_quant.clone(),
            output_quant: output_quant.clone(),
            input_unsigned: input_unsigned.clone(),
            output_unsigned: output_unsigned.clone(),
            input_channels_last: input_channels_last.clone(),
            const_inputs: const_inputs.clone(),
            carry: carry.clone(),
        }
    }

    /// Adds a tensor and returns its id.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        kind: TensorKind,
    ) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            dtype: DType::F32,
            kind,
            quant: None,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// Adds a tensor of another element type (with its quantisation, for int8 activations).
    pub fn add_typed_tensor(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        dtype: DType,
        kind: TensorKind,
        quant: Option<Quant>,
    ) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            dtype,
            kind,
            quant,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// The tensor behind an id.
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// For each tensor, the node that writes it (if any).
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            p[n.output.0] = Some(NodeId(i));
        }
        p
    }

    /// For each tensor, the nodes that read it, in node order (a node reading a tensor twice
    /// is listed once).
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut c: Vec<Vec<NodeId>> = vec![Vec::new(); self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for t in &n.inputs {
                if c[t.0].last() != Some(&NodeId(i)) {
                    c[t.0].push(NodeId(i));
                }
            }
        }
        c
    }

    /// The dependency graph of the nodes (edge `a → b` when `b` reads what `a` writes),
    /// with the tensor on each edge: the structure the scheduler searches.
    pub fn dependency_graph(&self) -> DiGraph<NodeId, TensorId> {
        let mut g = DiGraph::with_capacity(self.nodes.len(), self.nodes.len() * 2);
        let idx: Vec<NodeIndex> = (0..self.nodes.len())
            .map(|i| g.add_node(NodeId(i)))
            .collect();
        let producers = self.producers();
        for (i, n) in self.nodes.iter().enumerate() {
            for t in &n.inputs {
                if let Some(p) = producers[t.0] {
                    if !g.contains_edge(idx[p.0], idx[i]) {
                        g.add_edge(idx[p.0], idx[i], *t);
                    }
                }
            }
        }
        g
    }

    /// Moves the weights' data out (the tensors keep their kinds, empty), index by index:
    /// planning needs only shapes, and a graph it copies should not copy weights.
    pub fn take_weight_data(&mut self) -> Vec<Option<TensorKind>> {
        self.tensors
            .iter_mut()
            .map(|t| match &mut t.kind {
                TensorKind::Weight(v) => Some(TensorKind::Weight(std::mem::take(v))),
                TensorKind::WeightI8(v) => Some(TensorKind::WeightI8(std::mem::take(v))),
                TensorKind::WeightI32(v) => Some(TensorKind::WeightI32(std::mem::take(v))),
                _ => None,
            })
            .collect()
    }

    /// Puts back what [`Graph::take_weight_data`] took (tensors added since keep theirs).
    pub fn put_weight_data(&mut self, data: Vec<Option<TensorKind>>) {
        for (t, d) in self.tensors.iter_mut().zip(data) {
            if let Some(kind) = d {
                t.kind = kind;
            }
        }
    }

    /// A copy with every weight's data left out (empty), for planning-only uses that need
    /// shapes and structure but not values.
    pub fn without_weight_data(&self) -> Graph {
        Graph {
            tensors: self
                .tensors
                .iter()
                .map(|t| Tensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                    kind: match &t.kind {
                        TensorKind::Weight(_) => TensorKind::Weight(Vec::new()),
                        TensorKind::WeightI8(_) => TensorKind::WeightI8(Vec::new()),
                        TensorKind::WeightI32(_) => TensorKind::WeightI32(Vec::new()),
                        k => k.clone(),
                    },
                    quant: t.quant,
                })
                .collect(),
            nodes: self.nodes.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            output_shapes: self.output_shapes.clone(),
            output_names: self.output_names.clone(),
            input_quant: self.input_quant.clone(),
            output_quant: self.output_quant.clone(),
            carry: self.carry.clone(),
            input_unsigned: self.input_unsigned.clone(),
            output_unsigned: self.output_unsigned.clone(),
            input_channels_last: self.input_channels_last.clone(),
            const_inputs: self.const_inputs.clone(),
        }
    }

    /// The ONNX name of graph output `o` (its tensor's name when the import did not say).
    pub fn output_name(&self, o: usize) -> &str {
        self.output_names
            .get(o)
            .map_or(self.tensor(self.outputs[o]).name.as_str(), String::as_str)
    }

    /// The graph inputs `run` takes, by index: all but the carried ones (see [`Graph::carry`]).
    pub fn call_inputs(&self) -> Vec<usize> {
        (0..self.inputs.len())
            .filter(|i| !self.carry.iter().any(|&(_, j)| j == *i))
            .collect()
    }

    /// The graph outputs `run` writes, by index: all but the carried ones.
    pub fn call_outputs(&self) -> Vec<usize> {
        (0..self.outputs.len())
            .filter(|o| !self.carry.iter().any(|&(p, _)| p == *o))
            .collect()
    }

    /// The quantisation `run` applies at graph input `k` (see [`Graph::input_quant`]).
    pub fn input_quant(&self, k: usize) -> Option<Quant> {
        self.input_quant.get(k).copied().flatten()
    }

    /// The dequantisation `run` applies at graph output `k` (see [`Graph::output_quant`]).
    pub fn output_quant(&self, k: usize) -> Option<Quant> {
        self.output_quant.get(k).copied().flatten()
    }

    /// True when graph input `k` is `u8` at the interface (see [`Graph::input_unsigned`]).
    pub fn input_is_unsigned(&self, k: usize) -> bool {
        self.input_unsigned.get(k).copied().unwrap_or(false)
    }

    /// True when the caller passes graph input `k` channels last (see
    /// [`Graph::input_channels_last`]).
    pub fn input_is_channels_last(&self, k: usize) -> bool {
        self.input_channels_last.get(k).copied().unwrap_or(false)
    }

    /// The shape of graph input `k` as the caller passes it: the tensor's, or its NHWC
    /// permutation for a channels-last input.
    pub fn input_shape(&self, k: usize) -> Vec<usize> {
        let s = &self.tensor(self.inputs[k]).shape;
        if self.input_is_channels_last(k) {
            vec![s[0], s[2], s[3], s[1]]
        } else {
            s.clone()
        }
    }

    /// True when graph output `k` is `u8` at the interface (see [`Graph::output_unsigned`]).
    pub fn output_is_unsigned(&self, k: usize) -> bool {
        self.output_unsigned.get(k).copied().unwrap_or(false)
    }

    /// Weight data of a tensor, if it is a weight.
    pub fn weight(&self, id: TensorId) -> Option<&[f32]> {
        match &self.tensor(id).kind {
            TensorKind::Weight(w) => Some(w),
            _ => None,
        }
    }

    /// Multiply-accumulates of one inference (convolutions and matrix products, every tap).
    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.op.macs()).sum()
    }

    /// Bytes of the weights the nodes read (what goes to flash).
    pub fn weight_bytes(&self) -> usize {
        // Only weights some node reads: passes leave folded-away originals behind, and the
        // generated code emits only the used ones.
        let mut used = vec![false; self.tensors.len()];
        for n in &self.nodes {
            for t in &n.inputs {
                used[t.0] = true;
            }
        }
        self.tensors
            .iter()
            .zip(&used)
            .filter(|(t, &u)| u && t.is_weight())
            .map(|(t, _)| t.bytes())
            .sum()
    }
}

/// Which tensors may share memory: facts about the graph, from which the planner chooses
/// (see [`SharingChoice`] and `schedule::memory`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    /// Per node: positions of the inputs its kernel can overwrite with its output (same
    /// element count, same layout: elementwise ops, scale/shift, softmax).
    pub in_place: Vec<Vec<usize>>,
    /// Concatenation inputs that can be written straight into their slice of the output.
    pub concat_slots: Vec<ConcatSlot>,
}

/// A concatenation input that is one contiguous slice of the output (concatenation along
/// an axis with nothing but size-1 axes before it, e.g. channels of a batch-1 NCHW tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatSlot {
    /// The concatenation.
    pub node: NodeId,
    /// The input position.
    pub input: usize,
    /// The input tensor.
    pub part: TensorId,
    /// The concatenation's output.
    pub output: TensorId,
    /// Where the slice starts in the output, in bytes.
    pub byte_offset: usize,
}

/// Which of the [`Sharing`] facts a plan uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SharingChoice {
    /// Let nodes write over an input they are the last reader of.
    pub in_place: bool,
    /// Per [`Sharing::concat_slots`] entry: write that input straight into its slice.
    pub slots: Vec<bool>,
}

impl SharingChoice {
    /// No sharing at all: the plain memory model.
    pub fn none() -> SharingChoice {
        SharingChoice {
            in_place: false,
            slots: Vec::new(),
        }
    }

    /// Every sharing the graph allows.
    pub fn all(s: &Sharing) -> SharingChoice {
        SharingChoice {
            in_place: true,
            slots: vec![true; s.concat_slots.len()],
        }
    }
}

impl Sharing {
    /// Per tensor, the tensor whose storage holds it and the byte offset there, under
    /// `choice`. Chosen slots nest: a slice of a slice lands in the outermost output. A
    /// tensor chosen for two slots keeps the first.
    pub fn resolve(&self, g: &Graph, choice: &SharingChoice) -> Vec<(TensorId, usize)> {
        let mut parent: Vec<Option<(TensorId, usize)>> = vec![None; g.tensors.len()];
        for (k, slot) in self.concat_slots.iter().enumerate() {
            if choice.slots.get(k).copied().unwrap_or(false) && parent[slot.part.0].is_none() {
                parent[slot.part.0] = Some((slot.output, slot.byte_offset));
            }
        }
        Self::walk(&parent)
    }

    /// Per tensor, the concatenation output it is written into under `choice`, if any.
    pub fn parents(&self, g: &Graph, choice: &SharingChoice) -> Vec<Option<TensorId>> {
        let mut parent: Vec<Option<TensorId>> = vec![None; g.tensors.len()];
        for (k, slot) in self.concat_slots.iter().enumerate() {
            if choice.slots.get(k).copied().unwrap_or(false) && parent[slot.part.0].is_none() {
                parent[slot.part.0] = Some(slot.output);
            }
        }
        parent
    }

    fn walk(parent: &[Option<(TensorId, usize)>]) -> Vec<(TensorId, usize)> {
        (0..parent.len())
            .map(|i| {
                let (mut t, mut off) = (TensorId(i), 0);
                while let Some((p, o)) = parent[t.0] {
                    t = p;
                    off += o;
                }
                (t, off)
            })
            .collect()
    }
}

impl Graph {
    /// The sharing facts of this graph.
    pub fn sharing(&self) -> Sharing {
        let producers = self.producers();
        let in_place = self
            .nodes
            .iter()
            .map(|n| n.op.in_place_inputs(self, n))
            .collect();
        let mut concat_slots = Vec::new();
        for (v, n) in self.nodes.iter().enumerate() {
            let Op::Shape(ShapeOp::Concat(parts)) = &n.op else {
                continue;
            };
            for (pos, (part, &t)) in parts.iter().zip(&n.inputs).enumerate() {
                let once = n.inputs.iter().filter(|&&u| u == t).count() == 1;
                if part.outer == 1
                    && once
                    && self.tensor(t).kind == TensorKind::Activation
                    && producers[t.0].is_some()
                {
                    concat_slots.push(ConcatSlot {
                        node: NodeId(v),
                        input: pos,
                        part: t,
                        output: n.output,
                        byte_offset: part.offset * self.tensor(n.output).dtype.size(),
                    });
                }
            }
        }
        Sharing {
            in_place,
            concat_slots,
        }
    }
}

/// The elements of one tensor, in its element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i32` elements (biases of int8 models).
    I32(Vec<i32>),
    /// `i16` elements (widened weights).
    I16(Vec<i16>),
    /// `u8` elements: the interface of a uint8 graph input or output (int8 in the arena).
    U8(Vec<u8>),
}

impl Values {
    /// Zeroed values of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Values {
        match dtype {
            DType::F32 => Values::F32(vec![0.0; len]),
            DType::I8 => Values::I8(vec![0; len]),
            DType::I32 => Values::I32(vec![0; len]),
            DType::I16 => Values::I16(vec![0; len]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I8(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I16(v) => v.len(),
            Values::U8(v) => v.len(),
        }
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `f32` elements; panics on another type (a compiler bug).
    pub fn f32(&self) -> &[f32] {
        match self {
            Values::F32(v) => v,
            other => panic!("expected f32 values, found {other:?}"),
        }
    }

    /// The `i8` elements; panics on another type (a compiler bug).
    pub fn i8(&self) -> &[i8] {
        match self {
            Values::I8(v) => v,
            other => panic!("expected i8 values, found {other:?}"),
        }
    }

    /// The `i16` elements; panics on another type (a compiler bug).
    pub fn i16(&self) -> &[i16] {
        match self {
            Values::I16(v) => v,
            other => panic!("expected i16 values, found {other:?}"),
        }
    }

    /// The `i32` elements; panics on another type (a compiler bug).
    pub fn i32(&self) -> &[i32] {
        match self {
            Values::I32(v) => v,
            other => panic!("expected i32 values, found {other:?}"),
        }
    }

    /// The `f32` elements, mutably; panics on another type (a compiler bug).
    pub fn f32_mut(&mut self) -> &mut [f32] {
        match self {
            Values::F32(v) => v,
            other => panic!("expected f32 output, found {other:?}"),
        }
    }

    /// The `i8` elements, mutably; panics on another type (a compiler bug).
    pub fn i8_mut(&mut self) -> &mut [i8] {
        match self {
            Values::I8(v) => v,
            other => panic!("expected i8 output, found {other:?}"),
        }
    }

    /// Mutable `i32` elements.
    pub fn i32_mut(&mut self) -> &mut [i32] {
        match self {
            Values::I32(v) => v,
            other => panic!("expected i32 output, found {other:?}"),
        }
    }

    /// The elements as little-endian bytes (the arena's and the weight statics' layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Values::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::U8(v) => v.iter().map(|&x| x ^ 0x80).collect(),
        }
    }

    /// Values of `dtype` from little-endian bytes.
    pub fn from_bytes(dtype: DType, b: &[u8]) -> Values {
        match dtype {
            DType::F32 => Values::F32(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::I8 => Values::I8(b.iter().map(|&x| x as i8).collect()),
            DType::I32 => Values::I32(
                b.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::I16 => Values::I16(
                b.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
        }
    }
}
