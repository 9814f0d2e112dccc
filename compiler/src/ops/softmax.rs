//! Softmax and LogSoftmax over one axis (`kernels::softmax`), f32 and int8.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::{same_size_input, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{outer_len_inner, At, TypedLowering};
use crate::ir::{Graph, Node, Op, Values};
use crate::kernels::softmax::{self, Softmax as SoftmaxP, SoftmaxI8, SoftmaxQ31};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "softmax",
    onnx: &["LogSoftmax", "Softmax"],
    qdq: &["Softmax"],
    lower,
    lower_qdq,
};

/// The softmax family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum SoftmaxOp {
    /// `[x]`
    F32(SoftmaxP),
    /// `[x (i8)]`
    I8(Box<SoftmaxI8>),
    /// `[x (i8)]`: TFLite's int8 softmax (its fixed point; output scale 1/256, zero −128).
    I8Q31(SoftmaxQ31),
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let s = at.op::<Softmax>()?;
    Some((|| {
        cx.check_f32_node(at)?;
        if s.quant_output_dt.is_some() {
            return Err(at.unsupported("quantized softmax"));
        }
        let shape = cx.in_shape(at, 0)?;
        let axes: Vec<usize> = s.axes.to_vec();
        let (outer, len, inner) = outer_len_inner(&shape, &axes)
            .ok_or_else(|| at.unsupported(format!("softmax over non-contiguous axes {axes:?}")))?;
        let log = matches!(s.kind, SoftmaxKind::LogSoftmax);
        let x = cx.tensor(at, at.input(0))?;
        let p = SoftmaxP {
            outer,
            len,
            inner,
            log,
        };
        cx.emit(at, Op::Softmax(SoftmaxOp::F32(p)), vec![x])
    })())
}

fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    let out = cx.quantized_output(at)?;
    let x = cx.deq(at, 0)?;
    let shape = cx.graph.tensor(x).shape.clone();
    let rank = shape.len();
    let opset13 = cx.opset >= 13;
    let axis = at.axis(at.attr_i("axis", if opset13 { -1 } else { 1 }), rank)?;
    let outer: usize = shape[..axis].iter().product();
    let geom = if opset13 {
        SoftmaxP {
            outer,
            len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
            log: false,
        }
    } else {
        // Before opset 13 the input is seen as 2-D at `axis`.
        SoftmaxP {
            outer,
            len: shape[axis..].iter().product(),
            inner: 1,
            log: false,
        }
    };
    if out.lo != -128 || out.hi != 127 {
        return Err(at.err("an activation after an int8 Softmax is not supported"));
    }
    let q = out.q;
    let p = SoftmaxI8::new(geom, cx.quant(x).scale, (q.scale, q.zero));
    let y = cx.new_i8(at.out(), shape, q);
    cx.emit(at, Op::Softmax(SoftmaxOp::I8(Box::new(p))), vec![x], y);
    cx.bind_output(out, y);
    Ok(())
}

fn geometry(p: &SoftmaxP) -> TokenStream {
    let SoftmaxP {
        outer,
        len,
        inner,
        log,
    } = p;
    let [outer, len, inner] = [*outer, *len, *inner].map(u);
    quote! {
        ::microarena::kernels::softmax::Softmax { outer: #outer, len: #len, inner: #inner, log: #log }
    }
}

impl Kernel for SoftmaxOp {
    fn name(&self) -> &'static str {
        match self {
            SoftmaxOp::F32(s) if s.log => "LogSoftmax",
            SoftmaxOp::F32(_) => "Softmax",
            SoftmaxOp::I8(_) => "SoftmaxI8",
            SoftmaxOp::I8Q31(_) => "SoftmaxI8Q31",
        }
    }

    fn in_place_inputs(&self, g: &Graph, node: &Node) -> Vec<usize> {
        match self {
            SoftmaxOp::F32(_) if same_size_input(g, node, 0) => vec![0],
            _ => Vec::new(),
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let out = &call.out;
        call.wrap(match self {
            SoftmaxOp::F32(p) if call.in_place.is_some() => {
                let geom = geometry(p);
                quote!(::microarena::kernels::softmax::softmax_in_place(&#geom, #out);)
            }
            SoftmaxOp::F32(p) => {
                let (geom, x) = (geometry(p), call.operand(0));
                quote!(::microarena::kernels::softmax::softmax(&#geom, #x, #out);)
            }
            // The exp table is a literal, so it lands in flash.
            SoftmaxOp::I8(p) => {
                let SoftmaxI8 {
                    geom,
                    exp_q16,
                    inv_out_scale_q16,
                    out_zero,
                } = &**p;
                let (geom, x, table) = (geometry(geom), call.operand(0), exp_q16.iter());
                quote! {
                    ::microarena::kernels::softmax::softmax_i8(
                        &::microarena::kernels::softmax::SoftmaxI8 {
                            geom: #geom,
                            exp_q16: [#(#table),*],
                            inv_out_scale_q16: #inv_out_scale_q16,
                            out_zero: #out_zero,
                        },
                        #x, #out,
                    );
                }
            }
            SoftmaxOp::I8Q31(p) => {
                let SoftmaxQ31 {
                    geom,
                    input_multiplier,
                    input_left_shift,
                    diff_min,
                } = p;
                let (geom, x) = (geometry(geom), call.operand(0));
                quote! {
                    ::microarena::kernels::softmax::softmax_i8_q31(
                        &::microarena::kernels::softmax::SoftmaxQ31 {
                            geom: #geom,
                            input_multiplier: #input_multiplier,
                            input_left_shift: #input_left_shift,
                            diff_min: #diff_min,
                        },
                        #x, #out,
                    );
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            SoftmaxOp::F32(p) => softmax::softmax(p, ins.f32(0), out.f32_mut()),
            SoftmaxOp::I8(p) => softmax::softmax_i8(p, ins.i8(0), out.i8_mut()),
            SoftmaxOp::I8Q31(p) => softmax::softmax_i8_q31(p, ins.i8(0), out.i8_mut()),
        }
    }

    fn run_in_place(&self, _pos: usize, io: &mut Values, _ins: &Inputs) {
        match self {
            SoftmaxOp::F32(p) => softmax::softmax_in_place(p, io.f32_mut()),
            SoftmaxOp::I8(_) | SoftmaxOp::I8Q31(_) => {
                panic!("no in-place kernel for {}", self.name())
            }
        }
    }
}
