//! Errors of every stage, each naming the model element at fault and what to do about it.

use std::path::PathBuf;

/// Everything that can stop a compilation. The proc macro turns these into `compile_error!`
/// and the CLI prints them; none of them is a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read.
    #[error("cannot read model `{path}`: {source}")]
    Read {
        /// The path as resolved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a loadable ONNX model.
    #[error("`{path}` is not a valid ONNX model: {message}\n  check that it is an .onnx or a .tflite file (not a Git LFS pointer or an .ort file)")]
    NotOnnx {
        /// The path as resolved.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file is a TFLite flatbuffer (`TFL3`) that cannot be read.
    #[error("`{path}` is not a valid TFLite model: {message}\n  check that the file is whole (not a Git LFS pointer, not truncated) and was written by the TFLite converter")]
    NotTflite {
        /// The path as resolved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// tract could not turn the model into a typed graph.
    #[error("tract could not load `{path}`: {message}")]
    Load {
        /// The path as resolved.
        path: PathBuf,
        /// What tract said (its error chain).
        message: String,
    },
    /// A dimension is not known at compile time.
    #[error("input `{input}` has symbolic dimensions {shape}; pin them with `input_shape = [...]`, or by name in a model of several inputs, `input_shape = {{ \"{input}\": [...] }}` (CLI: `--input-shape D,D,..` or `--input-shape {input}=D,D,..`)")]
    DynamicShape {
        /// Graph input name.
        input: String,
        /// The shape as declared.
        shape: String,
    },
    /// The `input_shape` given does not fit the model.
    #[error("input_shape {given:?} does not fit input `{input}` declared as {declared}: {why}")]
    BadInputShape {
        /// Graph input name.
        input: String,
        /// The shape given.
        given: Vec<usize>,
        /// The shape the model declares.
        declared: String,
        /// Why it does not fit.
        why: String,
    },
    /// An option names a graph input the model does not have.
    #[error(
        "{option} names input `{name}`, which the model does not have; its inputs are {inputs}"
    )]
    UnknownInput {
        /// The option (`input_shape`, `const_input`).
        option: &'static str,
        /// The name given.
        name: String,
        /// The model's inputs with their declared shapes and types.
        inputs: String,
    },
    /// A `const_input` value that cannot stand for the input.
    #[error("const_input `{input}`: {why}")]
    BadConstInput {
        /// Graph input name.
        input: String,
        /// Why not.
        why: String,
    },
    /// A `carry` pair that cannot be a carried state.
    #[error("carry `{output}` → `{input}`: {why}")]
    BadCarry {
        /// The graph output named.
        output: String,
        /// The graph input named.
        input: String,
        /// Why not.
        why: String,
        /// Whether the input is at fault (unknown, a constant), not the output or the pair.
        input_at_fault: bool,
    },
    /// A node uses an op (or an op configuration) the compiler has no kernel for.
    #[error("ONNX node `{node}` (op {op_type}) is not supported: {detail}.\n  replace it when exporting the model; supported ops: {supported}")]
    Unsupported {
        /// ONNX node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// What exactly is unsupported.
        detail: String,
        /// The ONNX ops the compiler lowers, comma-separated (for the message).
        supported: String,
    },
    /// A TFLite op (or op configuration) the compiler has no lowering for.
    #[error("TFLite op {op_type} writing `{tensor}` (operator {index}) is not supported: {detail}.\n  supported TFLite ops: {supported}")]
    UnsupportedTflite {
        /// The op's (first) output tensor, which names it in TFLite's tools.
        tensor: String,
        /// Its position in the subgraph's operator list.
        index: usize,
        /// The builtin operator (or `CUSTOM(name)`).
        op_type: String,
        /// What exactly is unsupported.
        detail: String,
        /// The TFLite ops the compiler lowers, comma-separated.
        supported: String,
    },
    /// Something about the model's graph interface we cannot express.
    #[error("{0}")]
    Model(String),
    /// The build-time self-test (`self_test = true`): the plan, run on the host with the
    /// runtime's kernels, disagrees with tract on the same input.
    #[error("self_test: output `{output}` element {index} is {ours} by microarena's plan but {reference} by tract (tolerance {tolerance:e}); the plan is wrong: please report this with the model, and build without `self_test` meanwhile")]
    SelfTest {
        /// Graph output name.
        output: String,
        /// Element index (flattened).
        index: usize,
        /// Our value.
        ours: f32,
        /// tract's value.
        reference: f32,
        /// The allowed difference there.
        tolerance: f32,
    },
}

/// Result alias of the compiler.
pub type Result<T> = std::result::Result<T, Error>;
