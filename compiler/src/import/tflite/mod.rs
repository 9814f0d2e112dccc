//! TensorFlow Lite flatbuffers (`.tflite`), recognised by their `TFL3` identifier.
//!
//! The file is read with tract-tflite's flatbuffer schema (`tract_tflite::tflite`, verified
//! before anything is indexed) and lowered op by op into our [`Graph`], as the QDQ importer
//! lowers ONNX nodes: a `.tflite` file holds static shapes, its ops' options and its
//! weights, which is all the lowering needs, so tract's own graph of the file (which names
//! an int8 `ADD` of two scales a type error, and keeps NHWC) is not built.
//!
//! **Layout.** TFLite tensors are NHWC; our kernels are NCHW. The layout is decided here, at
//! compile time: every 4-D activation is held NCHW, weights are transposed as they are read
//! (`OHWI` → `OIHW`, depthwise `1HW(C·M)` → `(C·M)1HW`), a fully connected layer that reads
//! a flattened NHWC map gets its weight columns permuted instead, and pooling, softmax and
//! reshapes address the channel axis where it now is. The graph's inputs and outputs keep the
//! file's shapes (`INPUT_SHAPE` is NHWC): a 4-D input of several channels is permuted into
//! NCHW by the first step (one strided copy), an input of one channel is the same bytes.

use std::path::Path;

use tract_tflite::tflite::{
    self, ActivationFunctionType, BuiltinOperator, Operator, Padding, SubGraph, TensorType,
};

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, Op, OrderRank, Quant, TensorId, TensorKind};
use crate::kernels::conv::Conv2d;
use crate::kernels::pool::{Pool2d, PoolKind};
use crate::kernels::shape::StridedCopy;
use crate::kernels::softmax::Softmax;
use crate::kernels::{Activation, Window2d};
use crate::ops::shape::ShapeOp;

use super::typed::to_array;
use super::ImportOptions;

mod float;
mod int8;

/// True when `bytes` is a TFLite flatbuffer: its file identifier (bytes 4..8) is `TFL3`.
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}

/// The TFLite ops lowered, for messages.
pub const TFLITE_OPS: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "RESHAPE",
    "SOFTMAX",
];

/// Reads and lowers a `.tflite` file's main subgraph.
pub fn import_tflite(bytes: &[u8], path: &Path, options: &ImportOptions) -> Result<Graph> {
    let not_model = |message: String| Error::NotTflite {
        path: path.to_owned(),
        message,
    };
    let model = tflite::root_as_model(bytes).map_err(|e| {
        // The verifier's message spans lines; one line reads better in a compile error.
        let e = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        not_model(format!("a truncated or malformed TFLite flatbuffer ({e})"))
    })?;
    let subgraphs = model
        .subgraphs()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| not_model("a TFLite file without a subgraph".into()))?;
    if subgraphs.len() > 1 {
        return Err(not_model(format!(
            "a TFLite file of {} subgraphs (control flow or several signatures); microarena \
             compiles single-subgraph models",
            subgraphs.len()
        )));
    }
    if let Some((name, _)) = options.const_inputs.first() {
        return Err(Error::UnknownInput {
            option: "const_input",
            name: name.clone(),
            inputs: "none can be made constant: a TFLite model's inputs have static shapes".into(),
        });
    }
    let mut l = Lowering::new(model, subgraphs.get(0), path)?;
    l.check_input_shapes(options)?;
    l.inputs()?;
    for (ix, op) in l.sub.operators().unwrap_or_default().iter().enumerate() {
        l.op(ix, &op)?;
    }
    l.outputs()?;
    Ok(l.graph)
}

/// A tensor of the file as held in our graph.
#[derive(Clone, Copy, Debug)]
struct Held {
    /// Our tensor.
    id: TensorId,
    /// The file's shape is NHWC and ours NCHW.
    nchw: bool,
}

struct Lowering<'a> {
    model: tflite::Model<'a>,
    sub: SubGraph<'a>,
    path: &'a Path,
    graph: Graph,
    /// Per tensor of the file: where its value is once computed.
    held: Vec<Option<Held>>,
}

/// Where an op is, for messages and the nodes it emits.
struct At {
    /// The op's index in the subgraph.
    ix: usize,
    /// Its name: its first output tensor's.
    name: String,
    /// Its builtin operator, as the file names it.
    op_type: String,
}

impl At {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::UnsupportedTflite {
            tensor: self.name.clone(),
            index: self.ix,
            op_type: self.op_type.clone(),
            detail: detail.into(),
            supported: TFLITE_OPS.join(", "),
        }
    }
}

fn op_name(code: BuiltinOperator) -> String {
    code.variant_name()
        .map_or_else(|| format!("builtin operator {}", code.0), str::to_string)
}

impl<'a> Lowering<'a> {
    fn new(model: tflite::Model<'a>, sub: SubGraph<'a>, path: &'a Path) -> Result<Self> {
        let n = sub.tensors().map_or(0, |t| t.len());
        let mut l = Lowering {
            model,
            sub,
            path,
            graph: Graph::default(),
            held: vec![None; n],
        };
        l.check_weight_bytes()?;
        Ok(l)
    }

    fn not_model(&self, message: String) -> Error {
        Error::NotTflite {
            path: self.path.to_owned(),
            message,
        }
    }

    /// Refuses absurd weight totals before anything is decoded (as the ONNX importer does).
    fn check_weight_bytes(&mut self) -> Result<()> {
        let total: usize = self
            .model
            .buffers()
            .map(|b| b.iter().map(|b| b.data().map_or(0, |d| d.len())).sum())
            .unwrap_or(0);
        if total > super::MAX_WEIGHT_BYTES {
            return Err(Error::Model(format!(
                "the model holds {total} bytes of weights, above the {}-byte (64 MiB) limit",
                super::MAX_WEIGHT_BYTES
            )));
        }
        Ok(())
    }

    fn tensor(&self, t: i32) -> Result<tflite::Tensor<'a>> {
        let tensors = self.sub.tensors().unwrap_or_default();
        usize::try_from(t)
            .ok()
            .filter(|&i| i < tensors.len())
            .map(|i| tensors.get(i))
            .ok_or_else(|| self.not_model(format!("tensor index {t} out of range")))
    }

    fn name(&self, t: i32) -> String {
        self.tensor(t)
            .ok()
            .and_then(|t| t.name())
            .map_or_else(|| format!("tensor{t}"), str::to_string)
    }

    /// The file's shape of tensor `t` (every dimension static and positive).
    fn shape(&self, t: i32) -> Result<Vec<usize>> {
        let tensor = self.tensor(t)?;
        let dims = tensor
            .shape()
            .map(|s| s.iter().collect::<Vec<i32>>())
            .unwrap_or_default();
        dims.iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                self.not_model(format!(
                    "tensor `{}` has shape {dims:?}: every dimension must be known and positive",
                    self.name(t)
                ))
            })
    }

    /// A float32 constant's values, in the file's layout.
    fn const_f32(&self, at: &At, t: i32) -> Result<Vec<f32>> {
        let tensor = self.tensor(t)?;
        match tensor.type_() {
            TensorType::FLOAT32 => {}
            TensorType::FLOAT16 => {
                return Err(at.err(format!(
                    "float16 weights (`{}`); convert the model with float32 weights \
                     (`converter.target_spec.supported_types = [tf.float32]`) or int8",
                    self.name(t)
                )))
            }
            TensorType::INT8 => {
                return Err(at.err(format!(
                    "int8 weights (`{}`) of a float op: TFLite runs it as a \"hybrid\" \
                     kernel that quantizes its input on the fly, which microarena does for \
                     convolutions only; convert the model fully int8 or float",
                    self.name(t)
                )))
            }
            other => {
                return Err(at.err(format!(
                "{} weights (`{}`) in a float op; microarena reads float32 or a fully int8 model",
                type_name(other),
                self.name(t)
            )))
            }
        }
        let data = self.buffer(t)?.ok_or_else(|| {
            at.err(format!(
                "input `{}` must be a constant (weights in the file)",
                self.name(t)
            ))
        })?;
        let n: usize = self.shape(t)?.iter().product();
        if data.len() != 4 * n {
            return Err(self.not_model(format!(
                "constant `{}` holds {} bytes for {n} float32 values",
                self.name(t),
                data.len()
            )));
        }
        Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The bytes of tensor `t`'s buffer, if it has data (a constant).
    fn buffer(&self, t: i32) -> Result<Option<&'a [u8]>> {
        let tensor = self.tensor(t)?;
        let b = tensor.buffer() as usize;
        if b == 0 {
            return Ok(None);
        }
        let buffers = self.model.buffers().unwrap_or_default();
        if b >= buffers.len() {
            return Err(self.not_model(format!(
                "tensor `{}` names buffer {b} of {}",
                self.name(t),
                buffers.len()
            )));
        }
        Ok(buffers
            .get(b)
            .data()
            .map(|d| d.bytes())
            .filter(|d| !d.is_empty()))
    }

    /// The value of tensor `t` as computed so far, or a float constant made a weight.
    fn value(&mut self, at: &At, t: i32) -> Result<Held> {
        let ix = usize::try_from(t).map_err(|_| self.not_model(format!("tensor index {t}")))?;
        if let Some(h) = self.held.get(ix).copied().flatten() {
            return Ok(h);
        }
        let shape = self.shape(t)?;
        if self.tensor(t)?.type_() != TensorType::FLOAT32 {
            return Err(at.err(format!(
                "input `{}` ({}) is a constant or is computed by no op before it",
                self.name(t),
                type_name(self.tensor(t)?.type_())
            )));
        }
        let data = self.const_f32(at, t)?;
        let (shape, data, nchw) = if shape.len() == 4 {
            (nchw_shape(&shape), nhwc_to_nchw(&data, &shape), true)
        } else {
            (shape, data, false)
        };
        let id = self
            .graph
            .add_tensor(self.name(t), shape, TensorKind::Weight(data));
        let h = Held { id, nchw };
        self.held[ix] = Some(h);
        Ok(h)
    }

    fn check_float(&self, at: &At, t: i32) -> Result<()> {
        self.check_type(at, t, TensorType::FLOAT32)
    }

    /// Tensor `t` is of type `want` (float32 for float ops, int8 for quantized ones).
    fn check_type(&self, at: &At, t: i32, want: TensorType) -> Result<()> {
        match self.tensor(t)?.type_() {
            have if have == want => Ok(()),
            have @ (TensorType::FLOAT32 | TensorType::INT8) => Err(at.err(format!(
                "tensor `{}` is {} where {} is expected (a model mixing float and int8 ops; \
                 convert it fully quantized, or float)",
                self.name(t),
                type_name(have),
                type_name(want)
            ))),
            TensorType::UINT8 => Err(at.err(format!(
                "uint8 tensor `{}`: TFLite's legacy uint8 quantization; convert the model with \
                 int8 (`converter.inference_input_type = tf.int8`)",
                self.name(t)
            ))),
            other => Err(at.err(format!(
                "tensor `{}` of type {}: microarena runs float32 and int8 models",
                self.name(t),
                type_name(other)
            ))),
        }
    }

    /// The per-tensor quantisation of int8 activation `t`.
    fn quant(&self, at: &At, t: i32) -> Result<Quant> {
        let q = self.tensor(t)?.quantization();
        let scales: Vec<f32> = q
            .and_then(|q| q.scale())
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let zeros: Vec<i64> = q
            .and_then(|q| q.zero_point())
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        match (scales.as_slice(), zeros.as_slice()) {
            ([scale], [_] | []) if *scale > 0.0 && scale.is_finite() => {
                let zero = zeros.first().copied().unwrap_or(0);
                let zero = i32::try_from(zero)
                    .ok()
                    .filter(|z| (-128..=127).contains(z))
                    .ok_or_else(|| at.err(format!("zero point {zero} of `{}`", self.name(t))))?;
                Ok(Quant {
                    scale: *scale,
                    zero,
                })
            }
            _ => Err(at.err(format!(
                "int8 tensor `{}` with scales {scales:?} and zero points {zeros:?} \
                 (one positive scale per activation tensor expected)",
                self.name(t)
            ))),
        }
    }

    /// `input_shape` options must agree with the file's static shapes (they cannot change
    /// them).
    fn check_input_shapes(&self, options: &ImportOptions) -> Result<()> {
        let inputs: Vec<i32> = self
            .sub
            .inputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let describe = || {
            inputs
                .iter()
                .map(|&t| format!("`{}` {:?}", self.name(t), self.shape(t).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, want) in &options.input_shapes {
            let Some(&t) = inputs.iter().find(|&&t| &self.name(t) == name) else {
                return Err(Error::UnknownInput {
                    option: "input_shape",
                    name: name.clone(),
                    inputs: describe(),
                });
            };
            if &self.shape(t)? != want {
                return Err(self.fixed_shape(&self.name(t), want, &self.shape(t)?));
            }
        }
        if let (Some(want), [t]) = (&options.input_shape, inputs.as_slice()) {
            if &self.shape(*t)? != want {
                return Err(self.fixed_shape(&self.name(*t), want, &self.shape(*t)?));
            }
        }
        Ok(())
    }

    fn fixed_shape(&self, name: &str, want: &[usize], have: &[usize]) -> Error {
        Error::Model(format!(
            "input_shape {want:?} for `{name}`: a TFLite model's shapes are fixed in the file \
             ({have:?}); leave input_shape out, or convert the model for the shape you need"
        ))
    }

    /// The graph inputs: a 4-D one held NCHW, passed by the caller in the file's NHWC
    /// (`Graph::input_channels_last`: gathered while copied in or read by a streamed stage,
    /// never a transposing step), others in the file's shape.
    fn inputs(&mut self) -> Result<()> {
        let inputs: Vec<i32> = self
            .sub
            .inputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        for (n, &t) in inputs.iter().enumerate() {
            let file_shape = self.shape(t)?;
            let four = file_shape.len() == 4;
            let shape = if four {
                nchw_shape(&file_shape)
            } else {
                file_shape.clone()
            };
            let at = At {
                ix: 0,
                name: self.name(t),
                op_type: "input".into(),
            };
            let id = match self.tensor(t)?.type_() {
                TensorType::INT8 => {
                    let q = self.quant(&at, t)?;
                    self.graph.add_typed_tensor(
                        self.name(t),
                        shape,
                        DType::I8,
                        TensorKind::Input(n),
                        Some(q),
                    )
                }
                _ => {
                    self.check_float(&at, t)?;
                    self.graph
                        .add_tensor(self.name(t), shape, TensorKind::Input(n))
                }
            };
            self.graph.inputs.push(id);
            self.graph.input_channels_last.push(four);
            self.held[t as usize] = Some(Held { id, nchw: four });
        }
        Ok(())
    }

    /// Tensor `x` (NHWC `shape`) as an NCHW tensor: itself reshaped when the two layouts
    /// hold the same bytes (one channel, or one pixel), else a strided copy.
    fn as_nchw(&mut self, at: &At, x: TensorId, shape: &[usize]) -> TensorId {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
        let out_shape = vec![n, c, h, w];
        let op = if c == 1 || h * w == 1 {
            Op::Shape(ShapeOp::Reshape)
        } else {
            Op::Shape(ShapeOp::Copy(StridedCopy {
                rank: 4,
                shape: to_array(&out_shape),
                in_strides: to_array(&[h * w * c, 1, w * c, c]),
                offset: 0,
            }))
        };
        let name = format!("{}.nchw", self.graph.tensor(x).name);
        let y = self.push(at, op, vec![x], name, out_shape);
        self.like(y, x)
    }

    /// NCHW tensor `x` in the file's NHWC layout (`shape` NHWC).
    fn as_nhwc(&mut self, at: &At, x: TensorId, shape: &[usize]) -> TensorId {
        let (h, w, c) = (shape[1], shape[2], shape[3]);
        let op = if c == 1 || h * w == 1 {
            Op::Shape(ShapeOp::Reshape)
        } else {
            Op::Shape(ShapeOp::Copy(StridedCopy {
                rank: 4,
                shape: to_array(shape),
                in_strides: to_array(&[c * h * w, w, 1, h * w]),
                offset: 0,
            }))
        };
        let name = format!("{}.nhwc", self.graph.tensor(x).name);
        let y = self.push(at, op, vec![x], name, shape.to_vec());
        self.like(y, x)
    }

    /// A node writing a new activation.
    fn push(
        &mut self,
        at: &At,
        op: Op,
        inputs: Vec<TensorId>,
        name: String,
        shape: Vec<usize>,
    ) -> TensorId {
        let out = self.graph.add_tensor(name, shape, TensorKind::Activation);
        self.graph.nodes.push(Node {
            name: at.name.clone(),
            op_type: at.op_type.clone(),
            op,
            inputs,
            output: out,
            scratch: None,
            rank: OrderRank {
                file: at.ix,
                tract: at.ix,
            },
        });
        out
    }

    /// Gives tensor `y` the element type and quantisation of `x` (moves of data keep both).
    fn like(&mut self, y: TensorId, x: TensorId) -> TensorId {
        let (dtype, quant) = (self.graph.tensor(x).dtype, self.graph.tensor(x).quant);
        let t = &mut self.graph.tensors[y.0];
        t.dtype = dtype;
        t.quant = quant;
        y
    }

    /// Binds the op's output tensor `t` to `id`.
    fn bind(&mut self, t: i32, id: TensorId, nchw: bool) {
        self.held[t as usize] = Some(Held { id, nchw });
    }

    fn op(&mut self, ix: usize, op: &Operator<'a>) -> Result<()> {
        let codes = self.model.operator_codes().unwrap_or_default();
        let code_ix = op.opcode_index() as usize;
        if code_ix >= codes.len() {
            return Err(self.not_model(format!("operator {ix} names operator code {code_ix}")));
        }
        let code = codes.get(code_ix);
        // Files written before the schema's 127th operator keep the code in the deprecated
        // byte only.
        let builtin = BuiltinOperator(
            code.builtin_code()
                .0
                .max(i32::from(code.deprecated_builtin_code())),
        );
        let ins: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let outs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        let at = At {
            ix,
            name: outs
                .first()
                .map_or_else(|| format!("op{ix}"), |&t| self.name(t)),
            op_type: match code.custom_code() {
                Some(c) if builtin == BuiltinOperator::CUSTOM => format!("CUSTOM({c})"),
                _ => op_name(builtin),
            },
        };
        if outs.len() != 1 {
            return Err(at.err(format!("{} outputs", outs.len())));
        }
        let out = outs[0];
        for &t in ins.iter().filter(|&&t| t >= 0) {
            self.tensor(t)?;
        }
        if self.tensor(out)?.type_() == TensorType::INT8 {
            return match builtin {
                BuiltinOperator::CONV_2D | BuiltinOperator::DEPTHWISE_CONV_2D => self.conv_i8(
                    &at,
                    op,
                    builtin == BuiltinOperator::DEPTHWISE_CONV_2D,
                    &ins,
                    out,
                ),
                BuiltinOperator::FULLY_CONNECTED => self.fully_connected_i8(&at, op, &ins, out),
                BuiltinOperator::AVERAGE_POOL_2D | BuiltinOperator::MAX_POOL_2D => {
                    self.pool_i8(&at, op, builtin == BuiltinOperator::MAX_POOL_2D, &ins, out)
                }
                BuiltinOperator::ADD => self.add_i8(&at, op, &ins, out),
                BuiltinOperator::RESHAPE => self.reshape(&at, &ins, out),
                BuiltinOperator::SOFTMAX => self.softmax_i8(&at, op, &ins, out),
                _ => Err(at.err("microarena has no int8 lowering for this op")),
            };
        }
        self.check_float(&at, out)?;
        match builtin {
            BuiltinOperator::CONV_2D | BuiltinOperator::DEPTHWISE_CONV_2D => self.conv(
                &at,
                op,
                builtin == BuiltinOperator::DEPTHWISE_CONV_2D,
                &ins,
                out,
            ),
            BuiltinOperator::FULLY_CONNECTED => self.fully_connected(&at, op, &ins, out),
            BuiltinOperator::AVERAGE_POOL_2D | BuiltinOperator::MAX_POOL_2D => {
                self.pool(&at, op, builtin == BuiltinOperator::MAX_POOL_2D, &ins, out)
            }
            BuiltinOperator::ADD => self.add(&at, op, &ins, out),
            BuiltinOperator::RESHAPE => self.reshape(&at, &ins, out),
            BuiltinOperator::SOFTMAX => self.softmax(&at, op, &ins, out),
            _ => Err(at.err("microarena has no lowering for this op")),
        }
    }

    fn input(&self, at: &At, ins: &[i32], pos: usize) -> Result<i32> {
        ins.get(pos)
            .copied()
            .filter(|&t| t >= 0)
            .ok_or_else(|| at.err(format!("input {pos} is missing")))
    }

    fn activation(&self, at: &At, f: ActivationFunctionType) -> Result<Activation> {
        Ok(match f {
            ActivationFunctionType::NONE => Activation::Identity,
            ActivationFunctionType::RELU => Activation::RELU,
            ActivationFunctionType::RELU6 => Activation::Clip { min: 0.0, max: 6.0 },
            ActivationFunctionType::RELU_N1_TO_1 => Activation::Clip {
                min: -1.0,
                max: 1.0,
            },
            ActivationFunctionType::TANH => Activation::Tanh,
            other => {
                return Err(at.err(format!(
                    "fused activation {}",
                    other.variant_name().unwrap_or("(unknown)")
                )))
            }
        })
    }

    /// A 4-D activation input (NCHW in our graph) and its NHWC shape in the file.
    fn map(&mut self, at: &At, t: i32) -> Result<(TensorId, Vec<usize>)> {
        let shape = self.shape(t)?;
        if shape.len() != 4 {
            return Err(at.err(format!(
                "input `{}` of shape {shape:?}: a 4-D NHWC feature map is expected",
                self.name(t)
            )));
        }
        self.check_float(at, t)?;
        let h = self.value(at, t)?;
        Ok((h.id, shape))
    }

    /// A convolution's geometry (its `act` left `Identity`) and its fused activation, from
    /// the op's options and the input (`xs`), weight (`ws`) and output (`os`) NHWC shapes.
    pub(super) fn conv_geometry(
        &self,
        at: &At,
        op: &Operator<'a>,
        depthwise: bool,
        xs: &[usize],
        ws: &[usize],
        os: &[usize],
    ) -> Result<(Conv2d, ActivationFunctionType)> {
        let (padding, stride, dil, act) = if depthwise {
            let o = op
                .builtin_options_as_depthwise_conv_2_doptions()
                .ok_or_else(|| at.err("no DepthwiseConv2DOptions"))?;
            (
                o.padding(),
                (o.stride_h(), o.stride_w()),
                (o.dilation_h_factor(), o.dilation_w_factor()),
                o.fused_activation_function(),
            )
        } else {
            let o = op
                .builtin_options_as_conv_2_doptions()
                .ok_or_else(|| at.err("no Conv2DOptions"))?;
            (
                o.padding(),
                (o.stride_h(), o.stride_w()),
                (o.dilation_h_factor(), o.dilation_w_factor()),
                o.fused_activation_function(),
            )
        };
        if ws.len() != 4 || os.len() != 4 {
            return Err(at.err(format!("weights {ws:?} and output {os:?}: 4-D expected")));
        }
        let (in_c, out_c) = (xs[3], os[3]);
        let groups = if depthwise {
            // [1, kh, kw, in_c · multiplier]: output channel o reads input channel
            // o / multiplier.
            if ws[0] != 1 || ws[3] != out_c || !out_c.is_multiple_of(in_c) {
                return Err(at.err(format!(
                    "depthwise weights {ws:?} for {in_c} → {out_c} channels"
                )));
            }
            in_c
        } else {
            // [out_c, kh, kw, in_c / groups]
            if ws[0] != out_c || ws[3] == 0 || !in_c.is_multiple_of(ws[3]) {
                return Err(at.err(format!("weights {ws:?} for {in_c} → {out_c} channels")));
            }
            in_c / ws[3]
        };
        let window = self.window(at, xs, os, (ws[1], ws[2]), stride, dil, padding)?;
        Ok((
            Conv2d {
                batch: xs[0],
                in_c,
                out_c,
                groups,
                window,
                act: Activation::Identity,
            },
            act,
        ))
    }

    /// A pooling's geometry (its `act` left `Identity`; TFLite averages over the taps inside
    /// the input) and its fused activation.
    pub(super) fn pool_geometry(
        &self,
        at: &At,
        op: &Operator<'a>,
        max: bool,
        xs: &[usize],
        os: &[usize],
    ) -> Result<(Pool2d, ActivationFunctionType)> {
        if xs.len() != 4 || os.len() != 4 {
            return Err(at.err(format!("input {xs:?} and output {os:?}: NHWC expected")));
        }
        let o = op
            .builtin_options_as_pool_2_doptions()
            .ok_or_else(|| at.err("no Pool2DOptions"))?;
        let k = |v: i32| usize::try_from(v).ok().filter(|&v| v > 0);
        let (Some(kh), Some(kw)) = (k(o.filter_height()), k(o.filter_width())) else {
            return Err(at.err(format!("filter {}×{}", o.filter_height(), o.filter_width())));
        };
        let window = self.window(
            at,
            xs,
            os,
            (kh, kw),
            (o.stride_h(), o.stride_w()),
            (1, 1),
            o.padding(),
        )?;
        let kind = if max {
            PoolKind::Max
        } else {
            PoolKind::Average {
                count_include_pad: false,
            }
        };
        let p = Pool2d {
            batch: xs[0],
            c: xs[3],
            window,
            kind,
            act: Activation::Identity,
        };
        Ok((p, o.fused_activation_function()))
    }

    /// A fully connected layer's `(m, n, k)` for input `xs`, weights `ws` (`[n, k]`) and
    /// output `os`, and its fused activation.
    pub(super) fn fully_connected_shape(
        &self,
        at: &At,
        op: &Operator<'a>,
        xs: &[usize],
        ws: &[usize],
        os: &[usize],
    ) -> Result<((usize, usize, usize), ActivationFunctionType)> {
        let o = op.builtin_options_as_fully_connected_options();
        if o.is_some_and(|o| o.weights_format().0 != 0) {
            return Err(at.err("shuffled weights (only the default weights format is read)"));
        }
        if ws.len() != 2 {
            return Err(at.err(format!(
                "weights of shape {ws:?}: [outputs, inputs] expected"
            )));
        }
        let (n, k) = (ws[0], ws[1]);
        let total: usize = xs.iter().product();
        if k == 0 || !total.is_multiple_of(k) || os.last() != Some(&n) {
            return Err(at.err(format!("input {xs:?}, weights {ws:?}, output {os:?}")));
        }
        let act = o.map_or(ActivationFunctionType::NONE, |o| {
            o.fused_activation_function()
        });
        Ok(((total / k, n, k), act))
    }

    /// Weights `[n, h·w·c]` of a fully connected layer over input `xs`, in our layout: their
    /// columns reordered where the input is an NHWC map held NCHW (one image at a time).
    pub(super) fn fully_connected_columns<T: Copy + Default>(
        &self,
        at: &At,
        w: Vec<T>,
        n: usize,
        m: usize,
        xs: &[usize],
        nchw: bool,
    ) -> Result<Vec<T>> {
        if !nchw {
            return Ok(w);
        }
        if xs.len() != 4 || m != xs[0] {
            return Err(at.err(format!(
                "input {xs:?} flattened to {m} rows: an NHWC map flattened across images"
            )));
        }
        let (h, wd, c) = (xs[1], xs[2], xs[3]);
        if c == 1 || h * wd == 1 {
            return Ok(w);
        }
        let k = h * wd * c;
        let mut out = vec![T::default(); n * k];
        for r in 0..n {
            for ci in 0..c {
                for p in 0..h * wd {
                    out[r * k + ci * h * wd + p] = w[r * k + p * c + ci];
                }
            }
        }
        Ok(out)
    }

    /// A softmax along the file's last axis: the channels of an NHWC map held NCHW.
    pub(super) fn softmax_geometry(&self, at: &At, xs: &[usize], nchw: bool) -> Result<Softmax> {
        Ok(if nchw {
            Softmax {
                outer: xs[0],
                len: xs[3],
                inner: xs[1] * xs[2],
                log: false,
            }
        } else {
            let len = *xs.last().ok_or_else(|| at.err("a scalar input"))?;
            Softmax {
                outer: xs.iter().product::<usize>() / len.max(1),
                len,
                inner: 1,
                log: false,
            }
        })
    }

    /// The window of a TFLite convolution or pooling: SAME pads as TensorFlow does (the odd
    /// pixel at the bottom and right), VALID none. The output size must be the file's.
    #[allow(clippy::too_many_arguments)]
    fn window(
        &self,
        at: &At,
        xs: &[usize],
        os: &[usize],
        (kh, kw): (usize, usize),
        (sh, sw): (i32, i32),
        (dh, dw): (i32, i32),
        padding: Padding,
    ) -> Result<Window2d> {
        let pos = |v: i32, what: &str| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| at.err(format!("{what} {v}")))
        };
        let (sh, sw, dh, dw) = (
            pos(sh, "stride")?,
            pos(sw, "stride")?,
            pos(dh.max(1), "dilation")?,
            pos(dw.max(1), "dilation")?,
        );
        let axis = |input: usize, k: usize, s: usize, d: usize| -> Result<(usize, usize, usize)> {
            let reach = (k - 1) * d + 1;
            match padding {
                Padding::SAME => {
                    let out = input.div_ceil(s);
                    let total = ((out - 1) * s + reach).saturating_sub(input);
                    Ok((out, total / 2, total - total / 2))
                }
                Padding::VALID if input >= reach => Ok(((input - reach) / s + 1, 0, 0)),
                _ => Err(at.err(format!(
                    "padding {:?} of a {k}-tap window on {input}",
                    padding.variant_name()
                ))),
            }
        };
        let (oh, top, bottom) = axis(xs[1], kh, sh, dh)?;
        let (ow, left, right) = axis(xs[2], kw, sw, dw)?;
        if (oh, ow) != (os[1], os[2]) {
            return Err(at.err(format!(
                "output {os:?} for input {xs:?}: the padding gives {oh}×{ow}"
            )));
        }
        Ok(Window2d {
            in_h: xs[1],
            in_w: xs[2],
            out_h: oh,
            out_w: ow,
            k_h: kh,
            k_w: kw,
            stride_h: sh,
            stride_w: sw,
            dil_h: dh,
            dil_w: dw,
            pad_top: top,
            pad_left: left,
            pad_bottom: bottom,
            pad_right: right,
        })
    }

    fn reshape(&mut self, at: &At, ins: &[i32], out: i32) -> Result<()> {
        let xt = self.input(at, ins, 0)?;
        let want = self.tensor(out)?.type_();
        self.check_type(at, xt, want)?;
        if want == TensorType::INT8 && self.quant(at, xt)? != self.quant(at, out)? {
            return Err(at.err("a reshape that changes the quantisation"));
        }
        let xs = self.shape(xt)?;
        let os = self.shape(out)?;
        if xs.iter().product::<usize>() != os.iter().product::<usize>() {
            return Err(at.err(format!("{xs:?} into {os:?}")));
        }
        let x = self.value(at, xt)?;
        // In the file's layout first (a copy only where NCHW and NHWC bytes differ).
        let flat = if x.nchw {
            self.as_nhwc(at, x.id, &xs)
        } else {
            x.id
        };
        let y = self.push(
            at,
            Op::Shape(ShapeOp::Reshape),
            vec![flat],
            self.name(out),
            os.clone(),
        );
        let y = self.like(y, flat);
        if os.len() == 4 {
            let y = self.as_nchw(at, y, &os);
            self.bind(out, y, true);
        } else {
            self.bind(out, y, false);
        }
        Ok(())
    }

    /// Marks the graph outputs, in the file's layout and shapes.
    fn outputs(&mut self) -> Result<()> {
        let outputs: Vec<i32> = self
            .sub
            .outputs()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if outputs.is_empty() {
            return Err(self.not_model("the subgraph declares no output".into()));
        }
        for (i, &t) in outputs.iter().enumerate() {
            let at = At {
                ix: self.graph.nodes.len(),
                name: self.name(t),
                op_type: "output".into(),
            };
            let shape = self.shape(t)?;
            let h = self.value(&at, t)?;
            let mut id = if h.nchw {
                self.as_nhwc(&at, h.id, &shape)
            } else {
                h.id
            };
            // An output must be an activation of its own (not an input, a weight, or an
            // alias of another output).
            if !matches!(self.graph.tensor(id).kind, TensorKind::Activation)
                || self.graph.outputs.contains(&id)
            {
                let n: usize = shape.iter().product();
                let copy = self.push(
                    &at,
                    Op::Shape(ShapeOp::Copy(StridedCopy {
                        rank: 1,
                        shape: to_array(&[n]),
                        in_strides: to_array(&[1]),
                        offset: 0,
                    })),
                    vec![id],
                    format!("{}.output", self.name(t)),
                    shape.clone(),
                );
                id = self.like(copy, id);
            }
            self.graph.tensors[id.0].kind = TensorKind::Output(i);
            self.graph.outputs.push(id);
            self.graph.output_shapes.push(shape);
            self.graph.output_names.push(self.name(t));
        }
        Ok(())
    }
}

fn type_name(t: TensorType) -> String {
    t.variant_name()
        .map_or_else(|| format!("type {}", t.0), str::to_lowercase)
}

/// A TFLite convolution's weights in OIHW order: `[out_c, kh, kw, in_c / groups]`, or a
/// depthwise one's `[1, kh, kw, out_c]` (as `[out_c, 1, kh, kw]`).
pub(super) fn oihw<T: Copy + Default>(
    w: &[T],
    ws: &[usize],
    depthwise: bool,
    out_c: usize,
) -> Vec<T> {
    let (kh, kw) = (ws[1], ws[2]);
    let icg = if depthwise { 1 } else { ws[3] };
    let mut v = vec![T::default(); out_c * icg * kh * kw];
    for o in 0..out_c {
        for ky in 0..kh {
            for kx in 0..kw {
                for i in 0..icg {
                    let src = if depthwise {
                        (ky * kw + kx) * out_c + o
                    } else {
                        ((o * kh + ky) * kw + kx) * icg + i
                    };
                    v[((o * icg + i) * kh + ky) * kw + kx] = w[src];
                }
            }
        }
    }
    v
}

/// `[n, h, w, c]` as `[n, c, h, w]`.
pub(super) fn nchw_shape(s: &[usize]) -> Vec<usize> {
    vec![s[0], s[3], s[1], s[2]]
}

/// NHWC values of `shape` in NCHW order.
fn nhwc_to_nchw(v: &[f32], shape: &[usize]) -> Vec<f32> {
    let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![0f32; v.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + x] = v[((b * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let shape = [2, 3, 4, 5];
        let v: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let nchw = nhwc_to_nchw(&v, &shape);
        // Element (b=1, y=2, x=3, c=4) of NHWC is at NCHW ((1·5 + 4)·3 + 2)·4 + 3.
        assert_eq!(
            nchw[((5 + 4) * 3 + 2) * 4 + 3],
            v[((3 + 2) * 4 + 3) * 5 + 4]
        );
        assert!(is_tflite(b"\x1c\0\0\0TFL3rest"));
        assert!(!is_tflite(b"\x08\x07\x12"));
    }
}
