//! One room per op family, mirroring `kernels/src/<family>.rs`.
//!
//! `ops/conv.rs` holds everything the compiler knows about convolutions: the lowering from
//! tract's typed `Conv` (float models) and from ONNX `Conv`/`QLinearConv` nodes (QDQ models),
//! the statement the generated code runs (the call `kernels/src/conv/` implements), the same
//! call on the host ([`crate::exec`]), which inputs the kernel may overwrite in place, and its
//! tests. Every family is a closed enum of its ops (`ConvOp`, `PoolOp`, ...), held by
//! [`crate::ir::Op`], and implements [`Kernel`].
//!
//! This module keeps what the families share: the registry [`FAMILIES`] (which ONNX ops each
//! family lowers, and its lowerings), from which the lists of supported ops are derived;
//! the [`Kernel`] trait with its code-generation context [`Call`] and host inputs [`Inputs`];
//! literal helpers for emitters; and the sliding-window geometry conv and pool share.
//!
//! Adding an op: see CONTRIBUTING.md.

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod normalization;
pub mod pool;
pub mod quant;
pub mod recurrent;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod stream;

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use tract_onnx::tract_core::ops::cnn::PaddingSpec;

use crate::error::{Error, Result};
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Graph, Node, Op, Values};
use crate::kernels::{Activation, Window2d};

/// An op family: the ONNX ops it lowers and how.
pub struct Family {
    /// The runtime module it mirrors (`kernels::<name>`).
    pub name: &'static str,
    /// ONNX ops (as they appear in files) it lowers in float models, for messages. The
    /// lowering itself goes by tract's decluttered op, see `lower`.
    pub onnx: &'static [&'static str],
    /// ONNX ops it lowers between `DequantizeLinear` and `QuantizeLinear` (QDQ models).
    pub qdq: &'static [&'static str],
    /// Lowers a node of tract's decluttered float model if its op is one of this family's
    /// (`None` when it is not).
    pub(crate) lower: fn(&mut TypedLowering, &At) -> Option<Result<()>>,
    /// Lowers an ONNX node of a QDQ model whose op type is in `qdq`.
    pub(crate) lower_qdq: fn(&mut QdqLowering, &QdqAt) -> Result<()>,
}

/// Every family, in the order tract nodes are offered to them.
pub static FAMILIES: &[Family] = &[
    elementwise::FAMILY,
    conv::FAMILY,
    gemm::FAMILY,
    activation::FAMILY,
    pool::FAMILY,
    reduce::FAMILY,
    softmax::FAMILY,
    shape::FAMILY,
    normalization::FAMILY,
    quant::FAMILY,
    recurrent::FAMILY,
];

/// A family's `lower_qdq` when it lowers no QDQ op.
pub(crate) fn no_qdq(_: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    Err(at.err("no int8 lowering"))
}

/// ONNX ops the compiler lowers in float models, sorted (derived from [`FAMILIES`]).
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|f| f.onnx.iter().copied())
        .collect();
    v.sort_unstable_by_key(|s| s.to_ascii_lowercase());
    v.dedup();
    v
}

/// ONNX ops the QDQ lowering handles, sorted: the families' and the Q/DQ plumbing's.
pub fn qdq_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|f| f.qdq.iter().copied())
        .chain(crate::import::qdq::PLUMBING_OPS.iter().copied())
        .collect();
    v.sort_unstable_by_key(|s| s.to_ascii_lowercase());
    v.dedup();
    v
}

/// The QDQ lowering of ONNX op `op_type`, if a family lists it.
pub(crate) fn qdq_lowering(op_type: &str) -> Option<fn(&mut QdqLowering, &QdqAt) -> Result<()>> {
    FAMILIES
        .iter()
        .find(|f| f.qdq.contains(&op_type))
        .map(|f| f.lower_qdq)
}

/// The error for a node no family can lower as it is, with the list of supported ops.
pub(crate) fn unsupported(node: &str, op_type: &str, detail: impl Into<String>) -> Error {
    Error::Unsupported {
        node: node.to_string(),
        op_type: op_type.to_string(),
        detail: detail.into(),
        supported: supported_ops().join(", "),
    }
}

/// What every family provides once a graph is built: the statement the generated code runs,
/// the same computation on the host, and the facts the planner needs.
pub trait Kernel {
    /// Short name, for reports and the generated rustdoc (`Conv`, `MaxPoolI8`, ...).
    fn name(&self) -> &'static str;

    /// Multiply-accumulates of one run (every kernel tap, padding included, as MLPerf and
    /// the engines' published figures count them); 0 for ops without weights to apply.
    fn macs(&self) -> u64 {
        0
    }

    /// The fused activation slot, for ops that have one (see `crate::passes`).
    fn activation_mut(&mut self) -> Option<&mut Activation> {
        None
    }

    /// Positions of the inputs of `node` the kernel can overwrite with its output (same
    /// element count and layout); the planner decides whether it does.
    fn in_place_inputs(&self, _g: &Graph, _node: &Node) -> Vec<usize> {
        Vec::new()
    }

    /// The generated statement running the node (see [`Call`]).
    fn emit(&self, call: &Call) -> TokenStream;

    /// Runs the kernel on host values, writing `out`.
    fn run(&self, ins: &Inputs, out: &mut Values);

    /// Runs the kernel with its output written over input `pos`: `io` holds that input and
    /// receives the output; `ins` holds the other inputs (`None` at `pos`).
    ///
    /// # Panics
    /// If the op has no in-place kernel (the planner only chooses in place where
    /// [`Kernel::in_place_inputs`] allows it).
    fn run_in_place(&self, pos: usize, io: &mut Values, ins: &Inputs) {
        let _ = (pos, io, ins);
        panic!("no in-place kernel for {}", self.name());
    }
}

/// Where the generated code finds a node's operands (built by `crate::codegen`).
pub struct Call {
    /// Per node input: the expression the kernel reads it through — an arena view (`x0`,
    /// `x1`, ... bound by [`Call::borrow`]) or a weight static (`W12.f32()`); `None` for the
    /// input a node overwrites in place and for a concatenation input already in its slice.
    pub operands: Vec<Option<TokenStream>>,
    /// `let ([x0, ..], out) = self.arena.views..(..);`: borrows every arena operand and the
    /// output region.
    pub borrow: TokenStream,
    /// Per node input: a borrow of that input alone with the output, and the expression it is
    /// then read through (concatenations copy one part at a time).
    pub parts: Vec<(TokenStream, TokenStream)>,
    /// The output view (`out`); for a node running in place, also the overwritten input.
    pub out: TokenStream,
    /// The input position overwritten in place, if any.
    pub in_place: Option<usize>,
    /// The kernel's scratch view (`scratch`, borrowed by [`Call::borrow`]), for nodes that
    /// have one.
    pub scratch: Option<TokenStream>,
    /// Per node input: its byte offset in the arena (`None` for weights), for ops that
    /// address the arena themselves (streamed stages).
    pub offsets: Vec<Option<usize>>,
    /// Byte offset of the output in the arena.
    pub out_offset: usize,
    /// Byte offset of the scratch in the arena, for nodes that have one.
    pub scratch_offset: Option<usize>,
    /// The model's int8 depthwise layers use more than one code path: theirs share one
    /// channel loop (see `conv::depthwise_shared`).
    pub depthwise_shared: bool,
}

impl Call {
    /// Operand `i` (a node input that is neither in place nor zero-copy).
    ///
    /// # Panics
    /// If input `i` has no operand (the in-place input).
    pub fn operand(&self, i: usize) -> &TokenStream {
        self.operands[i]
            .as_ref()
            .unwrap_or_else(|| panic!("input {i} has no operand"))
    }

    /// `Some(operand)` for optional input `i` (biases), as a token expression.
    pub fn optional(&self, i: usize) -> TokenStream {
        optional(self.operands.get(i).and_then(Option::as_ref))
    }

    /// The statement `call`, preceded by the borrow of every operand.
    pub fn wrap(&self, call: TokenStream) -> TokenStream {
        let borrow = &self.borrow;
        quote!({ #borrow #call })
    }
}

/// A node's input values on the host (see [`Kernel::run`]): `None` where an input is absent
/// (an optional bias), overwritten in place, or already in the output (zero-copy).
pub struct Inputs<'a> {
    /// Per node input.
    pub values: Vec<Option<&'a Values>>,
}

impl<'a> Inputs<'a> {
    /// Input `i`, if present.
    pub fn get(&self, i: usize) -> Option<&'a Values> {
        self.values.get(i).copied().flatten()
    }

    fn expect(&self, i: usize) -> &'a Values {
        self.get(i)
            .unwrap_or_else(|| panic!("input {i} is not available"))
    }

    /// Input `i` as f32 values.
    pub fn f32(&self, i: usize) -> &'a [f32] {
        self.expect(i).f32()
    }

    /// Input `i` as i8 values.
    pub fn i8(&self, i: usize) -> &'a [i8] {
        self.expect(i).i8()
    }

    /// Input `i` as i32 values.
    pub fn i32(&self, i: usize) -> &'a [i32] {
        self.expect(i).i32()
    }

    /// Optional f32 input `i`.
    pub fn opt_f32(&self, i: usize) -> Option<&'a [f32]> {
        self.get(i).map(Values::f32)
    }

    /// Optional i32 input `i` (int8 biases).
    pub fn opt_i32(&self, i: usize) -> Option<&'a [i32]> {
        self.get(i).map(Values::i32)
    }
}

impl Op {
    /// The kernel behind the op; `None` for [`Op::Opaque`].
    pub fn kernel(&self) -> Option<&dyn Kernel> {
        Some(match self {
            Op::Activation(o) => o,
            Op::Conv(o) => o,
            Op::Elementwise(o) => o,
            Op::Gemm(o) => o,
            Op::Normalization(o) => o,
            Op::Pool(o) => o,
            Op::Quant(o) => o,
            Op::Recurrent(o) => o,
            Op::Reduce(o) => o,
            Op::Shape(o) => o,
            Op::Softmax(o) => o,
            Op::Stream(o) => o.as_ref(),
            Op::Opaque { .. } => return None,
        })
    }

    /// Multiply-accumulates of one run of the op (see [`Kernel::macs`]).
    pub fn macs(&self) -> u64 {
        self.kernel().map_or(0, Kernel::macs)
    }

    /// Short name of the op, for reports (`Conv`, `MaxPool`, `AddI8`, ...).
    pub fn family(&self) -> &'static str {
        self.kernel().map_or("Opaque", |k| k.name())
    }

    /// The fused activation slot, for ops that have one.
    pub fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            Op::Activation(o) => o.activation_mut(),
            Op::Conv(o) => o.activation_mut(),
            Op::Elementwise(o) => o.activation_mut(),
            Op::Gemm(o) => o.activation_mut(),
            Op::Normalization(o) => o.activation_mut(),
            Op::Pool(o) => o.activation_mut(),
            Op::Quant(o) => o.activation_mut(),
            Op::Recurrent(o) => o.activation_mut(),
            Op::Reduce(o) => o.activation_mut(),
            Op::Shape(o) => o.activation_mut(),
            Op::Softmax(o) => o.activation_mut(),
            Op::Stream(_) => None,
            Op::Opaque { .. } => None,
        }
    }

    /// Positions of the inputs the op's kernel can overwrite with its output.
    pub fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        self.kernel()
            .map_or_else(Vec::new, |k| k.in_place_inputs(g, node))
    }
}

/// True when input `pos` of `node` lives in the arena with as many elements as the output:
/// the first condition for a kernel to write its output over it.
pub(crate) fn same_size_input(g: &Graph, node: &Node, pos: usize) -> bool {
    let t = g.tensor(node.inputs[pos]);
    t.in_arena() && t.len() == g.tensor(node.output).len()
}

/// An `f32` expression that reproduces `v` bit for bit.
pub(crate) fn f32_lit(v: f32) -> TokenStream {
    if v.is_nan() {
        quote!(f32::NAN)
    } else if v == f32::INFINITY {
        quote!(f32::INFINITY)
    } else if v == f32::NEG_INFINITY {
        quote!(f32::NEG_INFINITY)
    } else if v.is_sign_negative() {
        let l = Literal::f32_suffixed(-v);
        quote!(-#l)
    } else {
        let l = Literal::f32_suffixed(v);
        quote!(#l)
    }
}

/// An unsuffixed integer literal.
pub(crate) fn usize_lit(v: usize) -> Literal {
    Literal::usize_unsuffixed(v)
}

/// `[a, b, ...]` of unsuffixed integers.
pub(crate) fn usize_array(v: &[usize]) -> TokenStream {
    let items = v.iter().map(|&x| usize_lit(x));
    quote!([#(#items),*])
}

/// `Some(t)` or `None`, fully qualified.
pub(crate) fn optional(t: Option<&TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}

/// The window of a convolution or pooling over `hw_in` (1 or 2 spatial axes, NCHW order)
/// producing `hw_out`, with tract's padding arithmetic: the pads before each axis are the
/// computed ones; the pads after are the declared ones where padding is explicit (an ONNX
/// pool in ceil mode may run windows past them, and `count_include_pad` counts only the
/// declared ones), else the computed ones.
pub(crate) fn window(
    padding: &PaddingSpec,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    hw_in: &[usize],
    hw_out: &[usize],
) -> Window2d {
    let computed = padding.compute(hw_in, kernel, dilations, strides);
    let before: Vec<usize> = computed.iter().map(|p| p.pad_before).collect();
    let after: Vec<usize> = match padding {
        PaddingSpec::Explicit(_, a) | PaddingSpec::ExplicitOnnxPool(_, a, _) => a.to_vec(),
        _ => computed.iter().map(|p| p.pad_after).collect(),
    };
    // 1-D: the height axis is 1 high, with one tap and no padding.
    let two = |v: &[usize], default: usize| match v {
        [w] => (default, *w),
        _ => (v[0], v[1]),
    };
    let (in_h, in_w) = two(hw_in, 1);
    let (out_h, out_w) = two(hw_out, 1);
    let (k_h, k_w) = two(kernel, 1);
    let (stride_h, stride_w) = two(strides, 1);
    let (dil_h, dil_w) = two(dilations, 1);
    let (pad_top, pad_left) = two(&before, 0);
    let (pad_bottom, pad_right) = two(&after, 0);
    Window2d {
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
    }
}

/// The window of an ONNX Conv / pool node of a QDQ model from its attributes (`kernel_shape`
/// given), with [`window`]'s arithmetic. `pool` selects ONNX's pooling rules (`ceil_mode`).
pub(crate) fn onnx_window(
    at: &QdqAt,
    kernel: &[usize],
    hw_in: &[usize],
    hw_out: &[usize],
    pool: bool,
) -> Result<Window2d> {
    let spatial = kernel.len();
    let list = |name: &str, default: usize| -> Result<Vec<usize>> {
        let v: Vec<usize> = at
            .attr_ints(name)
            .map(|v| v.iter().map(|&d| d.max(0) as usize).collect())
            .unwrap_or_else(|| vec![default; spatial]);
        if v.len() != spatial {
            return Err(at.err(format!("{name} must have {spatial} values")));
        }
        Ok(v)
    };
    let strides: Vec<usize> = list("strides", 1)?.iter().map(|&s| s.max(1)).collect();
    let dilations: Vec<usize> = list("dilations", 1)?.iter().map(|&s| s.max(1)).collect();
    let ceil = at.attr_i("ceil_mode", 0) == 1;
    let padding = match at.attr_s("auto_pad").as_str() {
        "" | "NOTSET" => {
            let pads: Vec<usize> = at
                .attr_ints("pads")
                .map(|v| v.iter().map(|&d| d.max(0) as usize).collect())
                .unwrap_or_else(|| vec![0; 2 * spatial]);
            if pads.len() != 2 * spatial {
                return Err(at.err(format!("pads must have {} values", 2 * spatial)));
            }
            let (b, a) = pads.split_at(spatial);
            if pool {
                PaddingSpec::ExplicitOnnxPool(b.into(), a.into(), ceil)
            } else {
                PaddingSpec::Explicit(b.into(), a.into())
            }
        }
        "VALID" => PaddingSpec::Valid,
        "SAME_UPPER" => PaddingSpec::SameUpper,
        "SAME_LOWER" => PaddingSpec::SameLower,
        other => return Err(at.err(format!("auto_pad {other}"))),
    };
    if kernel.len() != hw_in.len() || hw_in.len() != hw_out.len() {
        return Err(at.err("kernel and spatial axes differ in number"));
    }
    Ok(window(
        &padding, kernel, &strides, &dilations, hw_in, hw_out,
    ))
}

/// The `Window2d { .. }` literal; every field destructured, so that a new field breaks this
/// crate's build rather than a user's macro expansion.
pub(crate) fn window_tokens(w: &Window2d) -> TokenStream {
    let Window2d {
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
    } = *w;
    let [in_h, in_w, out_h, out_w, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right] =
        [
            in_h, in_w, out_h, out_w, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top,
            pad_left, pad_bottom, pad_right,
        ]
        .map(usize_lit);
    quote! {
        ::microarena::kernels::Window2d {
            in_h: #in_h, in_w: #in_w, out_h: #out_h, out_w: #out_w, k_h: #k_h, k_w: #k_w,
            stride_h: #stride_h, stride_w: #stride_w, dil_h: #dil_h, dil_w: #dil_w,
            pad_top: #pad_top, pad_left: #pad_left, pad_bottom: #pad_bottom, pad_right: #pad_right,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_each_op_once_and_finds_qdq_lowerings() {
        let ops = supported_ops();
        assert!(ops.contains(&"Conv") && ops.contains(&"Softmax"), "{ops:?}");
        let mut sorted = ops.clone();
        sorted.dedup();
        assert_eq!(sorted, ops);
        for f in FAMILIES {
            for op in f.qdq {
                assert!(qdq_lowering(op).is_some(), "{op}");
            }
        }
        assert!(qdq_lowering("LSTM").is_none());
        assert!(qdq_ops().contains(&"QuantizeLinear"));
    }

    #[test]
    fn same_padding_follows_onnx() {
        // 5 wide, kernel 3, stride 2: 3 outputs need 7 input columns, 2 of padding;
        // SAME_UPPER puts the odd one at the end, SAME_LOWER at the start.
        let w = window(
            &PaddingSpec::SameUpper,
            &[3, 3],
            &[2, 2],
            &[1, 1],
            &[5, 6],
            &[3, 3],
        );
        assert_eq!(
            (w.pad_top, w.pad_bottom, w.pad_left, w.pad_right),
            (1, 1, 0, 1)
        );
        let w = window(&PaddingSpec::SameLower, &[3], &[2], &[1], &[6], &[3]);
        assert_eq!(
            (w.in_h, w.k_h, w.pad_top, w.pad_left, w.pad_right),
            (1, 1, 0, 1, 0)
        );
    }
}
