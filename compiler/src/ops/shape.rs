//! Moving data without arithmetic (`kernels::shape`): concatenation, strided copies
//! (transpose, slice, downsample, broadcast), padding (constant, reflect, edge), and reshapes, which
//! `crate::passes` turns into aliases.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{
    Gather, MultiBroadcastTo, Pad, PadMode, Slice, TypedConcat,
};
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_hir::internal::DimLike;

use super::{f32_lit, usize_array, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{broadcast_strides, row_major_strides, to_array, At, TypedLowering};
use crate::ir::{Op, Quant, TensorId, Values};
use crate::kernels::shape::{self, ConcatPart, Pad as PadP, PadMode as PadKind, StridedCopy};
use crate::kernels::MAX_RANK;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "shape",
    onnx: &[
        "Cast (f32)",
        "Concat",
        "Dropout",
        "Flatten",
        "Identity",
        "Pad (constant, reflect, edge)",
        "Reshape",
        "Gather",
        "Slice",
        "Squeeze",
        "Transpose",
        "Unsqueeze",
    ],
    qdq: &[
        "Concat",
        "Flatten",
        "Reshape",
        "Squeeze",
        "Transpose",
        "Unsqueeze",
    ],
    lower,
    lower_qdq,
};

/// The shape family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeOp {
    /// `[parts...]`, one [`ConcatPart`] per input.
    Concat(Vec<ConcatPart>),
    /// `[x]`: transpose, slice, downsample, broadcast, plain copy.
    Copy(StridedCopy),
    /// `[x]`
    Pad(PadP),
    /// `[x]`: same bytes, another shape. Removed by `crate::passes` before planning.
    Reshape,
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let op = &at.node.op;
    let claimed = op.downcast_ref::<TypedConcat>().is_some()
        || op.downcast_ref::<AxisOp>().is_some()
        || op.downcast_ref::<Identity>().is_some()
        || op.downcast_ref::<Cast>().is_some()
        || op.downcast_ref::<Downsample>().is_some()
        || op.downcast_ref::<Slice>().is_some()
        || op.downcast_ref::<MultiBroadcastTo>().is_some()
        || op.downcast_ref::<Pad>().is_some()
        // A gather with constant indices (`state[0]`): a strided copy.
        || (op.downcast_ref::<Gather>().is_some() && cx.konst(at.input(1)).is_some());
    claimed.then(|| {
        cx.check_f32_node(at)?;
        lower_f32(cx, at)
    })
}

fn lower_f32(cx: &mut TypedLowering, at: &At) -> Result<()> {
    if let Some(c) = at.op::<TypedConcat>() {
        let os = cx.out_shape(at)?;
        let mut shapes = Vec::new();
        let mut ins = Vec::new();
        for (i, &inp) in at.node.inputs.iter().enumerate() {
            shapes.push(cx.in_shape(at, i)?);
            ins.push(cx.tensor(at, inp)?);
        }
        let parts = concat_parts(&os, c.axis, &shapes);
        return cx.emit(at, Op::Shape(ShapeOp::Concat(parts)), ins);
    }
    if let Some(a) = at.op::<AxisOp>() {
        let x = cx.tensor(at, at.input(0))?;
        if let AxisOp::Move(from, to) = a {
            let shape = cx.in_shape(at, 0)?;
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            let moved = perm.remove(*from);
            perm.insert(*to, moved);
            let big: Vec<usize> = perm.iter().copied().filter(|&i| shape[i] != 1).collect();
            if !big.windows(2).all(|w| w[0] < w[1]) {
                // The order of the axes that are not of size 1 changes: a real transpose.
                let s = row_major_strides(&shape);
                let in_strides: Vec<usize> = perm.iter().map(|&i| s[i]).collect();
                return cx.strided_copy(at, in_strides, 0);
            }
        }
        return cx.emit(at, Op::Shape(ShapeOp::Reshape), vec![x]);
    }
    if at.op::<Identity>().is_some() {
        let x = cx.tensor(at, at.input(0))?;
        return cx.emit(at, Op::Shape(ShapeOp::Reshape), vec![x]);
    }
    if let Some(c) = at.op::<Cast>() {
        if c.to != f32::datum_type() {
            return Err(at.unsupported(format!("cast to {:?}", c.to)));
        }
        let x = cx.tensor(at, at.input(0))?;
        return cx.emit(at, Op::Shape(ShapeOp::Reshape), vec![x]);
    }
    if let Some(d) = at.op::<Downsample>() {
        let shape = cx.in_shape(at, 0)?;
        if d.stride <= 0 {
            return Err(at.unsupported("downsampling with a negative stride"));
        }
        let mut strides = row_major_strides(&shape);
        let offset = d.modulo * strides[d.axis];
        strides[d.axis] *= d.stride as usize;
        return cx.strided_copy(at, strides, offset);
    }
    if let Some(s) = at.op::<Slice>() {
        let shape = cx.in_shape(at, 0)?;
        let start = s
            .start
            .as_usize()
            .ok_or_else(|| at.unsupported("slice with a symbolic start"))?;
        let strides = row_major_strides(&shape);
        return cx.strided_copy(at, strides.clone(), start * strides[s.axis]);
    }
    if let Some(g) = at.op::<Gather>() {
        let shape = cx.in_shape(at, 0)?;
        let indices = cx
            .konst(at.input(1))
            .ok_or_else(|| at.unsupported("gather with indices computed at run time"))?;
        let dim = shape[g.axis] as i64;
        let idx: Vec<i64> = indices
            .cast_to::<i64>()
            .and_then(|t| {
                Ok(t.to_plain_array_view::<i64>()?
                    .iter()
                    .copied()
                    .collect::<Vec<i64>>())
            })
            .map_err(|e| at.unsupported(format!("gather indices: {e}")))?
            .into_iter()
            .map(|i| if i < 0 { i + dim } else { i })
            .collect();
        if idx.iter().any(|&i| !(0..dim).contains(&i)) {
            return Err(at.unsupported(format!("gather index out of 0..{dim}: {idx:?}")));
        }
        // Indices in a progression i0, i0 + d, .. (d ≥ 0) are one stride along the axis.
        let step = if idx.len() > 1 { idx[1] - idx[0] } else { 0 };
        if step < 0 || idx.windows(2).any(|w| w[1] - w[0] != step) {
            return Err(at.unsupported(format!(
                "gather of indices {idx:?}: only a progression with a non-negative step is supported"
            )));
        }
        let strides = row_major_strides(&shape);
        let mut in_strides: Vec<usize> = strides[..g.axis].to_vec();
        // Index k of the (row-major) indices reads element i0 + k·step along the axis.
        let along = step as usize * strides[g.axis];
        in_strides.extend(row_major_strides(indices.shape()).iter().map(|s| s * along));
        in_strides.extend(&strides[g.axis + 1..]);
        let offset = idx.first().map_or(0, |&i| i as usize) * strides[g.axis];
        return cx.strided_copy(at, in_strides, offset);
    }
    if at.op::<MultiBroadcastTo>().is_some() {
        let shape = cx.in_shape(at, 0)?;
        let out_shape = cx.out_shape(at)?;
        return cx.strided_copy(at, broadcast_strides(&shape, &out_shape), 0);
    }
    let p = at
        .op::<Pad>()
        .ok_or_else(|| at.unsupported("not a shape op"))?;
    let (value, mode) = match &p.mode {
        PadMode::Constant(v) => {
            let value = v
                .cast_to_scalar::<f32>()
                .map_err(|e| at.unsupported(format!("pad value: {e}")))?;
            (value, PadKind::Constant)
        }
        PadMode::Reflect => (0.0, PadKind::Reflect),
        PadMode::Edge => (0.0, PadKind::Edge),
    };
    let shape = cx.in_shape(at, 0)?;
    if shape.len() > MAX_RANK {
        return Err(at.unsupported(format!("rank {} above {MAX_RANK}", shape.len())));
    }
    let before: Vec<usize> = p.pads.iter().map(|p| p.0).collect();
    let after: Vec<usize> = p.pads.iter().map(|p| p.1).collect();
    let reflect_too_wide = (0..shape.len()).any(|i| before[i].max(after[i]) >= shape[i]);
    if mode == PadKind::Reflect && reflect_too_wide {
        return Err(at.unsupported(format!(
            "reflect padding {:?} of a {shape:?} input: each pad must be smaller than its axis",
            p.pads
        )));
    }
    if mode != PadKind::Constant && shape.contains(&0) {
        return Err(at.unsupported("reflect or edge padding of an empty input"));
    }
    let x = cx.tensor(at, at.input(0))?;
    let pad = PadP {
        rank: shape.len(),
        in_shape: to_array(&shape),
        before: to_array(&before),
        after: to_array(&after),
        value,
        mode,
    };
    cx.emit(at, Op::Shape(ShapeOp::Pad(pad)), vec![x])
}

/// The [`ConcatPart`] of each input of a concatenation along `axis` into `out_shape`, inputs
/// of `in_shapes` in order (shared by the float and the int8 lowering).
pub(crate) fn concat_parts(
    out_shape: &[usize],
    axis: usize,
    in_shapes: &[Vec<usize>],
) -> Vec<ConcatPart> {
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

fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    if at.node.op_type == "Transpose" {
        // int8 values moved (tf2onnx's NHWC ↔ NCHW around each convolution): a strided copy
        // of bytes, or the same bytes when only axes of size 1 move.
        let (x, kind) = cx.deq_or_int8(at, 0)?;
        let shape = cx.graph.tensor(x).shape.clone();
        let rank = shape.len();
        let perm: Vec<usize> = match at.attr_ints("perm") {
            Some(p) => p
                .iter()
                .map(|&i| usize::try_from(i).unwrap_or(rank))
                .collect(),
            None => (0..rank).rev().collect(),
        };
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&i| i >= rank || std::mem::replace(&mut seen[i], true))
        {
            return Err(at.err(format!("perm {perm:?} is not a permutation of {rank} axes")));
        }
        let out_shape: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
        let q = cx.quant(x);
        let y = cx.new_i8(at.out(), out_shape.clone(), q);
        let big: Vec<usize> = perm.iter().copied().filter(|&i| shape[i] != 1).collect();
        if big.windows(2).all(|w| w[0] < w[1]) {
            cx.emit(at, Op::Shape(ShapeOp::Reshape), vec![x], y);
        } else {
            let s = row_major_strides(&shape);
            let in_strides: Vec<usize> = perm.iter().map(|&i| s[i]).collect();
            let (shape, st) = crate::import::typed::simplify_strided(&out_shape, &[in_strides]);
            if shape.len() > MAX_RANK {
                return Err(at.err(format!("rank {} above {MAX_RANK}", shape.len())));
            }
            let copy = StridedCopy {
                rank: shape.len(),
                shape: to_array(&shape),
                in_strides: to_array(&st[0]),
                offset: 0,
            };
            cx.emit(at, Op::Shape(ShapeOp::Copy(copy)), vec![x], y);
        }
        cx.bind(at.out(), kind(y));
        return Ok(());
    }
    if at.node.op_type != "Concat" {
        // Flatten, Reshape, Squeeze, Unsqueeze: the same int8 values in another shape.
        let (x, kind) = cx.deq_or_int8(at, 0)?;
        let shape = cx.out_shape(at)?;
        let q = cx.quant(x);
        let y = cx.new_i8(at.out(), shape, q);
        cx.emit(at, Op::Shape(ShapeOp::Reshape), vec![x], y);
        cx.bind(at.out(), kind(y));
        return Ok(());
    }
    let out = cx.quantized_output(at)?;
    let y = concat_i8(cx, at, out.q, out.lo, out.hi)?;
    cx.bind_output(out, y);
    Ok(())
}

fn concat_i8(cx: &mut QdqLowering, at: &QdqAt, q: Quant, lo: i8, hi: i8) -> Result<TensorId> {
    let os = cx.out_shape(at)?;
    let axis = at.axis(at.attr_i("axis", 0), os.len())?;
    let total: usize = os[axis..].iter().product();
    let mut ins = Vec::new();
    let mut shapes = Vec::new();
    for pos in 0..at.node.input.len() {
        let x = cx.deq(at, pos)?;
        shapes.push(cx.graph.tensor(x).shape.clone());
        // An input of another scale (or a clamp to apply) is requantised first: its own
        // node, which the planner can let write straight into the concatenation.
        let name = format!("{}.in{pos}", at.out());
        ins.push(cx.requantize_clamped(at, x, q, (lo, hi), &name));
    }
    let parts = concat_parts(&os, axis, &shapes);
    let offset: usize = parts.iter().map(|p| p.part).sum();
    if offset != total {
        return Err(at.err("input sizes do not add up to the output"));
    }
    let y = cx.new_i8(at.out(), os, q);
    cx.emit(at, Op::Shape(ShapeOp::Concat(parts)), ins, y);
    Ok(y)
}

/// `concat_part(&ConcatPart { .. }, x, out)`
fn concat_part(p: &ConcatPart, x: &TokenStream, out: &TokenStream) -> TokenStream {
    let ConcatPart {
        outer,
        part,
        total,
        offset,
    } = p;
    let [outer, part, total, offset] = [*outer, *part, *total, *offset].map(u);
    quote! {
        ::microarena::kernels::shape::concat_part(
            &::microarena::kernels::shape::ConcatPart { outer: #outer, part: #part, total: #total, offset: #offset },
            #x, #out,
        );
    }
}

impl Kernel for ShapeOp {
    fn name(&self) -> &'static str {
        match self {
            ShapeOp::Concat(_) => "Concat",
            ShapeOp::Copy(_) => "Copy",
            ShapeOp::Pad(_) => "Pad",
            ShapeOp::Reshape => "Reshape",
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let out = &call.out;
        match self {
            // One part at a time; parts already in their slice (zero-copy) are skipped.
            ShapeOp::Concat(parts) => {
                let calls = parts.iter().enumerate().filter_map(|(pos, part)| {
                    call.operands[pos].as_ref()?;
                    let (borrow, x) = &call.parts[pos];
                    let c = concat_part(part, x, out);
                    Some(quote!({ #borrow #c }))
                });
                quote!(#(#calls)*)
            }
            ShapeOp::Copy(StridedCopy {
                rank,
                shape,
                in_strides,
                offset,
            }) => {
                let (shape, strides, offset) =
                    (usize_array(shape), usize_array(in_strides), u(*offset));
                let x = call.operand(0);
                call.wrap(quote! {
                    ::microarena::kernels::shape::strided_copy(
                        &::microarena::kernels::shape::StridedCopy { rank: #rank, shape: #shape, in_strides: #strides, offset: #offset },
                        #x, #out,
                    );
                })
            }
            ShapeOp::Pad(PadP {
                rank,
                in_shape,
                before,
                after,
                value,
                mode,
            }) => {
                let mode = match mode {
                    PadKind::Constant => quote!(Constant),
                    PadKind::Reflect => quote!(Reflect),
                    PadKind::Edge => quote!(Edge),
                };
                let (in_shape, before, after) = (
                    usize_array(in_shape),
                    usize_array(before),
                    usize_array(after),
                );
                let (value, x) = (f32_lit(*value), call.operand(0));
                call.wrap(quote! {
                    ::microarena::kernels::shape::pad(
                        &::microarena::kernels::shape::Pad {
                            rank: #rank, in_shape: #in_shape, before: #before, after: #after, value: #value,
                            mode: ::microarena::kernels::shape::PadMode::#mode,
                        },
                        #x, #out,
                    );
                })
            }
            ShapeOp::Reshape => {
                let x = call.operand(0);
                call.wrap(quote!(out.copy_from_slice(&#x[..out.len()]);))
            }
        }
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            ShapeOp::Concat(parts) => {
                for (pos, part) in parts.iter().enumerate() {
                    let Some(x) = ins.get(pos) else { continue };
                    match &mut *out {
                        Values::I8(o) => shape::concat_part(part, x.i8(), o),
                        o => shape::concat_part(part, x.f32(), o.f32_mut()),
                    }
                }
            }
            ShapeOp::Copy(p) => match out {
                Values::I8(o) => shape::strided_copy(p, ins.i8(0), o),
                o => shape::strided_copy(p, ins.f32(0), o.f32_mut()),
            },
            ShapeOp::Pad(p) => shape::pad(p, ins.f32(0), out.f32_mut()),
            ShapeOp::Reshape => match out {
                Values::I8(o) => {
                    let n = o.len();
                    o.copy_from_slice(&ins.i8(0)[..n]);
                }
                o => {
                    let o = o.f32_mut();
                    let n = o.len();
                    o.copy_from_slice(&ins.f32(0)[..n]);
                }
            },
        }
    }
}
