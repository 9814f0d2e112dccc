//! Matrix products (`kernels::gemm`): Gemm, MatMul and 1×1 convolutions as tract's `EinSum`,
//! f32 and int8.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::activation::activation_tokens;
use super::quant::{fast_scales, with_scales, FastScales, Rescales};
use super::{usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering, QuantWeight, Val};
use crate::import::typed::{row_major_strides, At, TypedLowering};
use crate::ir::{DType, Graph, Op, Quant, TensorId, TensorKind, Values};
use crate::kernels::gemm::{self, MatMul, MatMulI8};
use crate::kernels::quant::{Requant, TwoRoundings};
use crate::kernels::Activation;

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "gemm",
    onnx: &["Gemm", "MatMul"],
    qdq: &["Gemm", "MatMul", "QLinearMatMul"],
    lower,
    lower_qdq,
};

/// The gemm family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum GemmOp {
    /// `[a, b, bias?]`
    F32(MatMul),
    /// `[a (i8), b (i8 weights), bias (i32)?]`, one requantisation per output column (ONNX's
    /// or TFLite's).
    I8(MatMulI8, Rescales),
    /// `[a (i8), b (i8 weights packed by `pack_fc_weights`), bias (i32, the zero point folded
    /// in by `fold_fc_zero_point`)]`, the fast kernel
    /// ([`gemm::fully_connected_i8`]) with its scales; chosen by [`select_packed`].
    I8Packed(MatMulI8, FastScales),
}

/// Lays out the constant weights of every column-major f32 product (a 1×1 convolution on NCHW:
/// `a_stride_m == out_stride_m == 1`) by reduction step, `[k][n]`, so that the four weights a
/// register tile reads at each step are adjacent: the portable kernel (the Cortex-M4F's)
/// then loads them through one pointer at fixed offsets and advances one pointer instead of
/// four (`kernels::gemm::columns`). The same bytes of flash; the sums are unchanged.
pub fn weights_by_step(g: &mut Graph) {
    for v in 0..g.nodes.len() {
        let node = &g.nodes[v];
        let (Op::Gemm(GemmOp::F32(p)), Some(&wt)) = (&node.op, node.inputs.get(1)) else {
            continue;
        };
        let TensorKind::Weight(w) = &g.tensor(wt).kind else {
            continue;
        };
        if p.a_stride_m != 1 || p.out_stride_m != 1 || p.n < 2 || p.b_stride_n == 1 {
            continue;
        }
        let by_step: Vec<f32> = (0..p.k)
            .flat_map(|k| (0..p.n).map(move |n| (n, k)))
            .map(|(n, k)| w[n * p.b_stride_n + k * p.b_stride_k])
            .collect();
        let p = MatMul {
            b_stride_n: 1,
            b_stride_k: p.n,
            ..*p
        };
        let name = format!("{}.by_step", g.tensor(wt).name);
        let len = by_step.len();
        let pw = g.add_typed_tensor(
            name,
            vec![len],
            DType::F32,
            TensorKind::Weight(by_step),
            None,
        );
        let node = &mut g.nodes[v];
        node.op = Op::Gemm(GemmOp::F32(p));
        node.inputs[1] = pw;
    }
}

/// Puts every int8 matrix product with constant weights whose scales have a fast form (see
/// [`FastScales::new`]) on the packed kernel: weights at one byte in blocks of four columns
/// by eight taps, the activations' zero point folded into the bias (which every packed
/// product has). TFLite's constant channels are settled first (see
/// [`settle_constant_channels`]).
pub fn select_packed(g: &mut Graph) {
    for v in 0..g.nodes.len() {
        let node = &g.nodes[v];
        let (Op::Gemm(GemmOp::I8(p, rescales)), Some(&wt)) = (&node.op, node.inputs.get(1)) else {
            continue;
        };
        let TensorKind::WeightI8(w) = &g.tensor(wt).kind else {
            continue;
        };
        let geom = &p.geom;
        // The weights one column after another, `k` each: what the bounds read.
        let columns: Vec<i8> = (0..geom.n)
            .flat_map(|n| (0..geom.k).map(move |k| (n, k)))
            .map(|(n, k)| w[n * geom.b_stride_n + k * geom.b_stride_k])
            .collect();
        let bias_t = node.inputs.get(2).copied();
        let bias = bias_t.and_then(|b| match &g.tensor(b).kind {
            TensorKind::WeightI32(b) => Some(&b[..]),
            _ => None,
        });
        if bias_t.is_some() && bias.is_none() {
            continue;
        }
        let Some((scales, settled)) = fast_scales(&columns, geom.k, bias, rescales, p.a_zero)
        else {
            continue;
        };
        let bias = settled.as_deref().or(bias);
        let p = *p;
        let packed: Vec<i8> = gemm::pack_fc_weights(&p, w).collect();
        let folded: Vec<i32> = gemm::fold_fc_zero_point(&p, w, bias).collect();
        let name = format!("{}.packed", g.tensor(wt).name);
        let len = packed.len();
        let pw = g.add_typed_tensor(
            name,
            vec![len],
            DType::I8,
            TensorKind::WeightI8(packed),
            None,
        );
        let name = format!("{}.bias", g.tensor(g.nodes[v].output).name);
        let len = folded.len();
        let bt = g.add_typed_tensor(
            name,
            vec![len],
            DType::I32,
            TensorKind::WeightI32(folded),
            None,
        );
        let node = &mut g.nodes[v];
        node.op = Op::Gemm(GemmOp::I8Packed(p, scales));
        node.inputs.truncate(2);
        node.inputs[1] = pw;
        node.inputs.push(bt);
    }
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let e = at.op::<EinSum>()?;
    Some(cx.check_f32_node(at).and_then(|()| einsum(cx, at, e)))
}

fn einsum(cx: &mut TypedLowering, at: &At, e: &EinSum) -> Result<()> {
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
    if cx.konst(a_out).is_some() && cx.konst(b_out).is_none() {
        std::mem::swap(&mut a_out, &mut b_out);
        swap = true;
    }
    let (ai, bi) = if swap { (1, 0) } else { (0, 1) };
    let sa = cx.shape(at, a_out)?;
    let sb = cx.shape(at, b_out)?;
    let so = cx.out_shape(at)?;
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
    let strides_of = |axes: &[(usize, usize, usize)],
                      pick: &dyn Fn(&(usize, usize, usize)) -> usize| {
        axes.iter().map(pick).collect::<Vec<_>>()
    };
    let (m, a_stride_m) =
        collapse(&m_sizes, &strides_of(&m_axes, &|x| sta[x.1])).ok_or_else(layout_err)?;
    let (_, out_stride_m) =
        collapse(&m_sizes, &strides_of(&m_axes, &|x| sto[x.2])).ok_or_else(layout_err)?;
    let (n, out_stride_n) =
        collapse(&n_sizes, &strides_of(&n_axes, &|x| sto[x.2])).ok_or_else(layout_err)?;
    let (k, a_stride_k) =
        collapse(&k_sizes, &strides_of(&k_axes, &|x| sta[x.1])).ok_or_else(layout_err)?;
    let a = cx.tensor(at, a_out)?;
    let (b, b_stride_n, b_stride_k) = if let Some(c) = cx.konst(b_out).cloned() {
        // Repack the constant as a contiguous n × k matrix.
        let data = cx.const_f32(at, &c)?;
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
        (cx.weight(at, "packed", vec![n, k], packed), k, 1)
    } else {
        let (_, bsn) =
            collapse(&n_sizes, &strides_of(&n_axes, &|x| stb[x.1])).ok_or_else(layout_err)?;
        let (_, bsk) =
            collapse(&k_sizes, &strides_of(&k_axes, &|x| stb[x.2])).ok_or_else(layout_err)?;
        (cx.tensor(at, b_out)?, bsn, bsk)
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
    cx.emit(at, Op::Gemm(GemmOp::F32(p)), vec![a, b])
}

/// `Gemm`/`MatMul` with a constant int8 weight between Q/DQ nodes, or `QLinearMatMul`.
fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    if at.node.op_type == "QLinearMatMul" {
        let q = cx.activation_quant_at(at, 6, 7)?;
        let x = cx.qlinear_input(at, 0, 1)?;
        let w = cx.qlinear_weight(at, 3, 1)?;
        let y = matmul_i8(cx, at, x, (w, 3), None, (q, -128, 127))?;
        cx.bind(at.out(), Val::Int8(y));
        return Ok(());
    }
    // A MatMul whose only reader adds a constant (tf2onnx's fully connected layer:
    // `MatMul → Add(bias) → Relu? → QuantizeLinear`): the addition is the product's bias.
    let bias_add = match (at.node.op_type.as_str(), cx.readers(at.out()).as_slice()) {
        ("MatMul", &[r]) => {
            let node = &cx.g.node[r];
            let other = node.input.iter().position(|i| i != at.out());
            (node.op_type == "Add" && node.input.len() == 2)
                .then_some(other)
                .flatten()
                .filter(|&pos| cx.is_constant(&node.input[pos]))
                .map(|pos| (r, pos))
        }
        _ => None,
    };
    let (out, bias) = match bias_add {
        Some((r, pos)) => {
            let add = QdqAt {
                ix: r,
                node: &cx.g.node[r],
                rank: at.rank,
            };
            let bias = cx.bias_reals(&add, pos, |_| 1.0)?;
            let out = cx.quantized_output(&add)?;
            cx.done[r] = true;
            (out, bias)
        }
        None => {
            let out = cx.quantized_output(at)?;
            let bias = if at.node.op_type == "Gemm" {
                cx.bias_reals(at, 2, |_| 1.0)?
            } else {
                None
            };
            (out, bias)
        }
    };
    let a = cx.deq(at, 0)?;
    let w = cx.weight(at, 1)?;
    let y = matmul_i8(cx, at, a, (w, 1), bias, (out.q, out.lo, out.hi))?;
    cx.bind_output(out, y);
    Ok(())
}

/// The int8 product of `a` by weight input `w.1` (`w.0` its values), output quantised as
/// `q` and clamped to `lo..=hi`.
fn matmul_i8(
    cx: &mut QdqLowering,
    at: &QdqAt,
    a: TensorId,
    (w, w_pos): (QuantWeight, usize),
    bias: Option<(String, Vec<f64>)>,
    (q, lo, hi): (Quant, i8, i8),
) -> Result<TensorId> {
    let a_shape = cx.graph.tensor(a).shape.clone();
    let ws = w.values.shape.clone();
    let gemm = at.node.op_type == "Gemm";
    let (alpha, beta) = if gemm {
        (at.attr_f("alpha", 1.0), at.attr_f("beta", 1.0))
    } else {
        (1.0, 1.0)
    };
    if gemm && at.attr_i("transA", 0) != 0 {
        return Err(at.err("int8 Gemm with transA is not supported"));
    }
    if ws.len() != 2 || a_shape.is_empty() {
        return Err(at.err(format!("weights of shape {ws:?}: a 2-D constant is needed")));
    }
    let trans_b = gemm && at.attr_i("transB", 0) != 0;
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
    let qa = cx.quant(a);
    let acc: Vec<f64> = (0..nn)
        .map(|c| f64::from(alpha) * f64::from(qa.scale) * f64::from(w.scale(c)))
        .collect();
    let requant = acc
        .iter()
        .map(|&s| Requant::from_real(s / f64::from(q.scale)))
        .collect();
    let wt = cx.int8_weight_tensor(
        at.input(w_pos),
        ws,
        w.values.ints.iter().map(|&v| v as i8).collect(),
    );
    let mut inputs = vec![a, wt];
    if let Some(b) = cx.bias(at, bias, &acc, f64::from(beta))? {
        inputs.push(b);
    }
    let out_shape = cx.out_shape(at)?;
    if out_shape.iter().product::<usize>() != m * nn {
        return Err(at.err("output size does not match the product"));
    }
    let y = cx.new_i8(at.out(), out_shape, q);
    let p = MatMulI8 {
        geom,
        a_zero: qa.zero,
        out_zero: q.zero,
        lo,
        hi,
    };
    cx.emit(
        at,
        Op::Gemm(GemmOp::I8(p, Rescales::Requant(requant))),
        inputs,
        y,
    );
    Ok(y)
}

/// The `MatMul { .. }` literal.
fn geometry(p: &MatMul) -> TokenStream {
    let MatMul {
        m,
        n,
        k,
        a_stride_m,
        a_stride_k,
        b_stride_n,
        b_stride_k,
        out_stride_m,
        out_stride_n,
        act,
    } = p;
    let [m, n, k, asm, ask, bsn, bsk, osm, osn] = [
        *m,
        *n,
        *k,
        *a_stride_m,
        *a_stride_k,
        *b_stride_n,
        *b_stride_k,
        *out_stride_m,
        *out_stride_n,
    ]
    .map(u);
    let act = activation_tokens(act);
    quote! {
        ::microarena::kernels::gemm::MatMul {
            m: #m, n: #n, k: #k, a_stride_m: #asm, a_stride_k: #ask, b_stride_n: #bsn,
            b_stride_k: #bsk, out_stride_m: #osm, out_stride_n: #osn, act: #act,
        }
    }
}

impl Kernel for GemmOp {
    fn name(&self) -> &'static str {
        match self {
            GemmOp::F32(_) => "MatMul",
            GemmOp::I8(..) | GemmOp::I8Packed(..) => "MatMulI8",
        }
    }

    fn macs(&self) -> u64 {
        let g = match self {
            GemmOp::F32(p) => p,
            GemmOp::I8(p, _) | GemmOp::I8Packed(p, _) => &p.geom,
        };
        (g.m * g.n * g.k) as u64
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            GemmOp::F32(p) => Some(&mut p.act),
            GemmOp::I8(..) | GemmOp::I8Packed(..) => None,
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let (a, b, bias, out) = (
            call.operand(0),
            call.operand(1),
            call.optional(2),
            &call.out,
        );
        call.wrap(match self {
            GemmOp::F32(p) => {
                let geom = geometry(p);
                quote!(::microarena::kernels::gemm::matmul(&#geom, #a, #b, #bias, #out);)
            }
            GemmOp::I8(p, requant) => {
                let MatMulI8 {
                    geom,
                    a_zero,
                    out_zero,
                    lo,
                    hi,
                } = p;
                let geom = geometry(geom);
                let rq = requant.tokens();
                quote! {
                    ::microarena::kernels::gemm::matmul_i8(
                        &::microarena::kernels::gemm::MatMulI8 {
                            geom: #geom, a_zero: #a_zero, out_zero: #out_zero, lo: #lo, hi: #hi,
                        },
                        #a, #b, #bias, #rq, #out,
                    );
                }
            }
            GemmOp::I8Packed(p, scales) => {
                let MatMulI8 {
                    geom,
                    a_zero,
                    out_zero,
                    lo,
                    hi,
                } = p;
                let geom = geometry(geom);
                let scales = scales.tokens();
                let bias = call.operand(2);
                quote! {
                    ::microarena::kernels::gemm::fully_connected_i8(
                        &::microarena::kernels::gemm::MatMulI8 {
                            geom: #geom, a_zero: #a_zero, out_zero: #out_zero, lo: #lo, hi: #hi,
                        },
                        #a, #b, #bias, #scales, #out,
                    );
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            GemmOp::F32(p) => {
                gemm::matmul(p, ins.f32(0), ins.f32(1), ins.opt_f32(2), out.f32_mut())
            }
            GemmOp::I8(p, Rescales::Requant(rq)) => {
                gemm::matmul_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), rq, out.i8_mut())
            }
            GemmOp::I8(p, Rescales::FixedPoint(fp)) => {
                gemm::matmul_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), fp, out.i8_mut())
            }
            GemmOp::I8(p, Rescales::TwoRoundings(fp)) => {
                let rq: Vec<TwoRoundings> = fp.iter().map(|&f| TwoRoundings(f)).collect();
                gemm::matmul_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), &rq, out.i8_mut())
            }
            GemmOp::I8Packed(p, fs) => {
                let (a, w, b, y) = (ins.i8(0), ins.i8(1), ins.i32(2), out.i8_mut());
                with_scales!(fs, |scales| gemm::fully_connected_i8(p, a, w, b, scales, y))
            }
        }
    }
}
