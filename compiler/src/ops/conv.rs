//! Convolutions (`kernels::conv`): 1-D and 2-D, grouped and depthwise, f32 and int8.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::activation::activation_tokens;
use super::quant::{fast_scales, with_scales, FastScales, Rescales};
use super::{onnx_window, usize_lit as u, window, window_tokens, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering, QuantWeight, Val};
use crate::import::typed::{At, TypedLowering};
use crate::ir::{DType, Graph, Op, Quant, TensorId, TensorKind, Values};
use crate::kernels::conv::{self, Conv2d, ConvI8};
use crate::kernels::quant::{Requant, TwoRoundings};
use crate::kernels::{Activation, Window2d};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "conv",
    onnx: &["Conv"],
    qdq: &["Conv", "QLinearConv"],
    lower,
    lower_qdq,
};

/// The conv family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvOp {
    /// `[x, weights (OIHW), bias?]`
    F32(Conv2d),
    /// `[x, weights (packed by `kernels::conv::pack_f32_weights`), bias?]`: dense
    /// convolutions as register tiles of 4 output channels × 4 pixels.
    F32Tiled(Conv2d),
    /// `[x (i8), weights (i8, OIHW), bias (i32)?]`, one requantisation per output channel
    /// (ONNX's or TFLite's): the reference kernel, which grouped convolutions, TFLite models
    /// and small alignments run.
    I8(ConvI8, Rescales),
    /// `[x (i8), weights (i8, packed by `kernels::conv::pack_tiled_weights`), bias (i32)?]`
    /// with a scratch of `kernels::conv::tiled_scratch_len` `i16`: dense convolutions as
    /// register tiles of 4 (last: 2) output channels × 2 pixels over an im2col of two pixels.
    ///
    /// `chunked`: the weights pack but their pairs' sums may reach 2^23
    /// (`kernels::conv::conv2d_i8_tiled_chunked`, in passes of 256 steps on Cortex-M).
    I8Tiled(ConvI8, FastScales, Chunked),
    /// `[x (i8), weights (i8, packed by `kernels::conv::pack_depthwise_weights`), bias
    /// (i32)?]` with a scratch of `kernels::conv::depthwise_scratch_len` bytes: depthwise
    /// convolutions over a padded copy of each channel plane.
    I8Depthwise(ConvI8, FastScales),
    /// `[x (f32), weights (i8, packed by `kernels::conv::pack_hybrid_weights`), bias (f32)?]`,
    /// the weights' one scale: TFLite's hybrid convolution (the input quantized on the fly,
    /// see `kernels::conv::conv2d_hybrid`).
    Hybrid(Conv2d, f32),
}

/// Whether a tiled int8 convolution sums in passes (see [`ConvOp::I8Tiled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked(pub bool);

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    let c = at.op::<Conv>()?;
    Some(cx.check_f32_node(at).and_then(|()| lower_f32(cx, at, c)))
}

fn lower_f32(cx: &mut TypedLowering, at: &At, c: &Conv) -> Result<()> {
    if c.q_params.is_some() {
        return Err(at.unsupported("quantized convolution"));
    }
    if c.kernel_fmt != KernelFormat::OIHW {
        return Err(at.unsupported(format!("kernel format {:?}", c.kernel_fmt)));
    }
    let ps = &c.pool_spec;
    let (xs, os) = nchw(at, ps, &cx.in_shape(at, 0)?, &cx.out_shape(at)?)?;
    let kernel = cx
        .konst(at.input(1))
        .cloned()
        .ok_or_else(|| at.unsupported("weights that are not constant"))?;
    let kshape = kernel.shape().to_vec();
    let (oc, ic) = (ps.output_channels, ps.input_channels);
    let group = c.group.max(1);
    let kk: usize = ps.kernel_shape.iter().product();
    if kshape.len() != ps.kernel_shape.len() + 2
        || kshape[0] != oc
        || kshape[1] * group != ic
        || kshape[2..].iter().product::<usize>() != kk
    {
        return Err(at.unsupported(format!(
            "kernel shape {kshape:?} for {ic}→{oc} channels in {group} groups"
        )));
    }
    let w = cx.const_f32(at, &kernel)?;
    let bias = match at.node.inputs.get(2) {
        None => None,
        Some(&b) => {
            let bt = cx
                .konst(b)
                .cloned()
                .ok_or_else(|| at.unsupported("a bias that is not constant"))?;
            let bv = cx.const_f32(at, &bt)?;
            match bv.len() {
                1 if bv[0] == 0.0 => None,
                1 => Some(vec![bv[0]; oc]),
                n if n == oc => Some(bv),
                n => return Err(at.unsupported(format!("bias of {n} values for {oc} channels"))),
            }
        }
    };
    let p = Conv2d {
        batch: xs[0],
        in_c: ic,
        out_c: oc,
        groups: group,
        window: window(
            &ps.padding,
            &ps.kernel_shape,
            &ps.strides(),
            &ps.dilations(),
            &xs[2..],
            &os[2..],
        ),
        act: Activation::Identity,
    };
    let x = cx.tensor(at, at.input(0))?;
    let wt = cx.weight(at, "weights", kshape, w);
    let mut ins = vec![x, wt];
    if let Some(b) = bias {
        ins.push(cx.weight(at, "bias", vec![oc], b));
    }
    let op = Op::Conv(ConvOp::F32(p));
    emit_channels_first(cx, at, ps.data_format, op, ins, (&xs, &os))
}

/// Input and output shapes as `[N, C, spatial...]` for the data formats we run (shared with
/// pooling).
pub(crate) fn nchw(
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
        let c = s.last().copied().unwrap_or(0);
        match ps.data_format {
            DataFormat::NCHW if s.len() == spatial + 2 => Ok(s.to_vec()),
            DataFormat::CHW if s.len() == spatial + 1 => Ok([&[1], s].concat()),
            DataFormat::NHWC if s.len() == spatial + 2 => {
                Ok([&[s[0], c], &s[1..=spatial]].concat())
            }
            DataFormat::HWC if s.len() == spatial + 1 => Ok([&[1, c], &s[..spatial]].concat()),
            f => Err(at.unsupported(format!("data format {f:?} with shape {s:?}"))),
        }
    };
    Ok((strip(xs)?, strip(os)?))
}

/// Emits `op`, defined on channels-first tensors (`xs` and `os`, as [`nchw`] gives them),
/// for a node of `data_format`: as it is for channels-first formats; for channels-last
/// ones (tract folds tf2onnx's `Transpose`s into the convolution after them) between two
/// transposing copies, which `crate::passes` cancels against their neighbours' or folds
/// into a channels-last graph input. `inputs[0]` is the image; the rest are weights.
pub(crate) fn emit_channels_first(
    cx: &mut TypedLowering,
    at: &At,
    data_format: DataFormat,
    op: Op,
    mut inputs: Vec<TensorId>,
    (xs, os): (&[usize], &[usize]),
) -> Result<()> {
    let batchless = match data_format {
        DataFormat::NCHW | DataFormat::CHW => return cx.emit(at, op, inputs),
        DataFormat::NHWC => false,
        DataFormat::HWC => true,
    };
    let rank = cx.graph.tensor(inputs[0]).shape.len();
    // Input axes in channels-first order, and output axes back in channels-last order.
    let (to_first, to_last): (Vec<usize>, Vec<usize>) = if batchless {
        let spatial = rank - 1;
        (
            [&[spatial][..], &(0..spatial).collect::<Vec<_>>()].concat(),
            (0..=spatial + 1).filter(|&a| a != 1).chain([1]).collect(),
        )
    } else {
        let spatial = rank - 2;
        (
            [&[0, rank - 1][..], &(1..=spatial).collect::<Vec<_>>()].concat(),
            [&[0][..], &(2..rank).collect::<Vec<_>>(), &[1]].concat(),
        )
    };
    inputs[0] = cx.permuted(at, inputs[0], &to_first, xs.to_vec(), "channels_first")?;
    let y = cx.emit_unbound(at, op, inputs, os.to_vec(), "nchw");
    let declared = cx.out_shape(at)?;
    let z = cx.permuted(at, y, &to_last, declared, "channels_last")?;
    cx.bind_output(at, z);
    Ok(())
}

/// `Conv` between Q/DQ nodes, or `QLinearConv` (the quantisation in its own inputs).
fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    if at.node.op_type == "QLinearConv" {
        let q = cx.activation_quant_at(at, 6, 7)?;
        let x = cx.qlinear_input(at, 0, 1)?;
        let w = cx.qlinear_weight(at, 3, 0)?;
        let qx = cx.quant(x);
        let bias = cx.bias_reals(at, 8, |c| f64::from(qx.scale) * f64::from(w.scale(c)))?;
        let y = conv_i8(cx, at, x, (w, 3), bias, (q, -128, 127))?;
        cx.bind(at.out(), Val::Int8(y));
        return Ok(());
    }
    let out = cx.quantized_output(at)?;
    let x = cx.deq(at, 0)?;
    let w = cx.weight(at, 1)?;
    let bias = cx.bias_reals(at, 2, |_| 1.0)?;
    let y = conv_i8(cx, at, x, (w, 1), bias, (out.q, out.lo, out.hi))?;
    cx.bind_output(out, y);
    Ok(())
}

/// The int8 convolution of `x` by weight input `w.1` (`w.0` its values), output quantised
/// as `q` and clamped to `lo..=hi`.
fn conv_i8(
    cx: &mut QdqLowering,
    at: &QdqAt,
    x: TensorId,
    (w, w_pos): (QuantWeight, usize),
    bias: Option<(String, Vec<f64>)>,
    (q, lo, hi): (Quant, i8, i8),
) -> Result<TensorId> {
    let xs = cx.graph.tensor(x).shape.clone();
    let ws = w.values.shape.clone();
    if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
        return Err(at.err(format!(
            "int8 Conv of input {xs:?} and weights {ws:?}: 1-D and 2-D convolutions are supported"
        )));
    }
    if w.scales.len() > 1 && w.axis != 0 {
        return Err(at.err("per-channel weight scales must run along the output channels"));
    }
    let out_shape = cx.out_shape(at)?;
    if out_shape.len() != xs.len() {
        return Err(at.err("output rank differs from the input's"));
    }
    let groups = at.attr_i("group", 1).max(1) as usize;
    let (out_c, in_c) = (ws[0], xs[1]);
    if in_c != ws[1] * groups || out_c % groups != 0 {
        return Err(at.err("channels do not match the groups"));
    }
    let geom = Conv2d {
        batch: xs[0],
        in_c,
        out_c,
        groups,
        window: onnx_window(at, &ws[2..], &xs[2..], &out_shape[2..], false)?,
        act: Activation::Identity,
    };
    let qx = cx.quant(x);
    let acc: Vec<f64> = (0..out_c)
        .map(|c| f64::from(qx.scale) * f64::from(w.scale(c)))
        .collect();
    // The scale as onnxruntime holds it: computed in double, rounded to float32 (this
    // matches its per-tensor and per-channel kernels on every tensor of the test models but
    // one element of ResNet-8's: see tests/int8.rs).
    let requant = acc
        .iter()
        .map(|&a| Requant::from_real(a / f64::from(q.scale)))
        .collect();
    // 1-D weights as 2-D with height 1.
    let ws4 = if ws.len() == 3 {
        vec![ws[0], ws[1], 1, ws[2]]
    } else {
        ws
    };
    let wt = cx.int8_weight_tensor(
        at.input(w_pos),
        ws4,
        w.values.ints.iter().map(|&v| v as i8).collect(),
    );
    let p = ConvI8 {
        geom,
        input_zero: qx.zero,
        output_zero: q.zero,
        lo,
        hi,
    };
    let mut inputs = vec![x, wt];
    if let Some(b) = cx.bias(at, bias, &acc, 1.0)? {
        inputs.push(b);
    }
    let y = cx.new_i8(at.out(), out_shape, q);
    cx.emit(
        at,
        Op::Conv(ConvOp::I8(p, Rescales::Requant(requant))),
        inputs,
        y,
    );
    Ok(y)
}

/// True when `g`'s int8 depthwise layers (streamed or not) use more than one code path
/// with the same kind of scales: their calls then share one channel loop in flash
/// ([`conv::DW_SHARED`]; VWW's four variants: 2,928 B less), else each inlines its own (a
/// model of one variant, DS-CNN: 12 instructions a channel fewer).
pub(crate) fn depthwise_shared(g: &Graph) -> bool {
    let mut seen: Vec<(std::mem::Discriminant<FastScales>, u8)> = Vec::new();
    let mut visit = |op: &Op| {
        if let Op::Conv(ConvOp::I8Depthwise(p, fs)) = op {
            let v = (std::mem::discriminant(fs), conv::depthwise_variant(p));
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
    };
    for n in &g.nodes {
        match &n.op {
            Op::Stream(s) => s.nodes.iter().for_each(|n| visit(&n.op)),
            op => visit(op),
        }
    }
    seen.iter()
        .any(|(kind, v)| seen.iter().any(|(k, w)| k == kind && w != v))
}

/// Turns every f32 1×1 convolution (stride one, no padding, one group, one image) into the
/// matrix product tract declutters ONNX's pointwise `Conv` into: weights `[C_out][C_in]`
/// times the `[C_in][H·W]` map. On the Cortex-M4 the product's column loop costs about 7.5
/// instructions per MAC where the register tile, built for 3×3 windows, costs more on a
/// single tap (MobileNetV1-0.25 f32 in `--bin mlperf`: 8.38 instructions per MAC against
/// 12.2 with its pointwise layers tiled). A TFLite file's `CONV_2D` then runs as its ONNX
/// twin does.
pub fn pointwise_convs_as_products(g: &mut Graph) {
    for node in &mut g.nodes {
        let Op::Conv(ConvOp::F32(p)) = &node.op else {
            continue;
        };
        let w = &p.window;
        let pointwise = (w.k_h, w.k_w, w.stride_h, w.stride_w, w.dil_h, w.dil_w)
            == (1, 1, 1, 1, 1, 1)
            && (w.pad_top, w.pad_left, w.pad_bottom, w.pad_right) == (0, 0, 0, 0)
            && (w.in_h, w.in_w) == (w.out_h, w.out_w);
        if !pointwise || p.groups != 1 || p.batch != 1 {
            continue;
        }
        let plane = w.out_h * w.out_w;
        node.op = Op::Gemm(super::gemm::GemmOp::F32(crate::kernels::gemm::MatMul {
            m: plane,
            n: p.out_c,
            k: p.in_c,
            a_stride_m: 1,
            a_stride_k: plane,
            b_stride_n: p.in_c,
            b_stride_k: 1,
            out_stride_m: 1,
            out_stride_n: plane,
            act: p.act,
        }));
    }
}

/// Turns every dense f32 convolution of `g` into the register-tiled kernel
/// ([`ConvOp::F32Tiled`], weights packed in blocks of four output channels: the same flash), every
/// dense int8 convolution into the tiled kernel ([`ConvOp::I8Tiled`]) and
/// every depthwise one into the padded-plane kernel ([`ConvOp::I8Depthwise`]): weights laid out
/// for them (one byte each: the tiled kernel's channel pairs in halfwords, the depthwise
/// kernel's rows in words), a scratch in the arena (an im2col of two pixels; a padded
/// channel plane). The scratch is read in 32-bit words, so this needs
/// arena offsets aligned to at least 4 bytes; with a smaller alignment, for other grouped
/// convolutions and for depthwise windows other than 3×3 with horizontal stride 1 or 2, the
/// reference kernel stays.
pub fn select_tiled(g: &mut Graph, alignment: usize) {
    for v in 0..g.nodes.len() {
        let node = &g.nodes[v];
        let Some(&wt) = node.inputs.get(1) else {
            continue;
        };
        // A bias rewritten for the fast kernels (see `settle_constant_channels`).
        let mut settled_bias: Option<Vec<i32>> = None;
        // The new op, its packed weights (element type, count, data) and scratch bytes.
        let (op, dtype, len, packed, scratch_bytes) = match (&node.op, &g.tensor(wt).kind) {
            (Op::Conv(ConvOp::F32(p)), TensorKind::Weight(w)) if p.groups == 1 => {
                let packed: Vec<f32> = conv::pack_f32_weights(p, w).collect();
                let len = packed.len();
                let op = ConvOp::F32Tiled(*p);
                (op, DType::F32, len, TensorKind::Weight(packed), 0)
            }
            (Op::Conv(ConvOp::I8(p, rescales)), TensorKind::WeightI8(w)) if alignment >= 4 => {
                let geom = &p.geom;
                // TFLite's fixed point has a fast form only for factors below one half and
                // sums below 2^30 (`kernels::scale`): else the reference kernel stays.
                let bias = node.inputs.get(2).and_then(|&b| match &g.tensor(b).kind {
                    TensorKind::WeightI32(b) => Some(&b[..]),
                    _ => None,
                });
                let taps = geom.in_c / geom.groups * geom.window.k_h * geom.window.k_w;
                let Some((scales, settled)) = fast_scales(w, taps, bias, rescales, p.input_zero)
                else {
                    continue;
                };
                // The fixed point takes the output zero point into its half unit: a `QADD`
                // less per output on Cortex-M4.
                let Some((scales, output_zero)) = scales.with_output_zero(p.output_zero) else {
                    continue;
                };
                let p = &ConvI8 { output_zero, ..*p };
                // The padded-plane kernel pays where its two-pixel 3×3 path runs; other
                // depthwise geometries keep the reference kernel (faster there).
                let win = &geom.window;
                let depthwise = geom.groups == geom.in_c
                    && geom.in_c == geom.out_c
                    && geom.groups > 1
                    && matches!(
                        (win.k_h, win.k_w, win.stride_w, win.dil_w),
                        (3, 3, 1 | 2, 1)
                    );
                let (op, dtype, len, packed, bytes) = if geom.groups == 1 {
                    // The kernel's paired sums must be exact: long reductions sum in passes;
                    // a −128 beside a negative weight keeps the reference kernel.
                    if !conv::tiled_weights_pair(geom, w) {
                        continue;
                    }
                    let final_bias = settled.as_deref().or(bias);
                    let chunked = !conv::tiled_weights_fit(geom, w, final_bias, p.input_zero);
                    let packed: Vec<i8> = conv::pack_tiled_weights(geom, w).collect();
                    // `tiled_scratch_len` i16.
                    let bytes = 2 * conv::tiled_scratch_len(geom);
                    let len = packed.len();
                    let op = ConvOp::I8Tiled(*p, scales, Chunked(chunked));
                    (op, DType::I8, len, TensorKind::WeightI8(packed), bytes)
                } else if depthwise {
                    let packed: Vec<i8> = conv::pack_depthwise_weights(geom, w).collect();
                    let bytes = conv::depthwise_scratch_len(geom);
                    let len = packed.len();
                    let op = ConvOp::I8Depthwise(*p, scales);
                    (op, DType::I8, len, TensorKind::WeightI8(packed), bytes)
                } else {
                    continue;
                };
                settled_bias = settled;
                (op, dtype, len, packed, bytes)
            }
            _ => continue,
        };
        let name = format!("{}.packed", g.tensor(wt).name);
        let pw = g.add_typed_tensor(name, vec![len], dtype, packed, None);
        let scratch = (scratch_bytes > 0).then(|| {
            // In 32-bit words: the kernels load the scratch a word at a time.
            let name = format!("{}.scratch", g.tensor(g.nodes[v].output).name);
            let words = scratch_bytes.div_ceil(4);
            g.add_typed_tensor(name, vec![words], DType::I32, TensorKind::Scratch, None)
        });
        if let Some(b) = settled_bias {
            let bt = g.nodes[v].inputs[2];
            let name = format!("{}.settled", g.tensor(bt).name);
            let len = b.len();
            g.nodes[v].inputs[2] =
                g.add_typed_tensor(name, vec![len], DType::I32, TensorKind::WeightI32(b), None);
        }
        let node = &mut g.nodes[v];
        node.op = Op::Conv(op);
        node.inputs[1] = pw;
        node.scratch = scratch;
    }
}

impl ConvOp {
    /// The convolution's geometry.
    pub fn geometry(&self) -> &Conv2d {
        match self {
            ConvOp::F32(p) | ConvOp::F32Tiled(p) | ConvOp::Hybrid(p, _) => p,
            ConvOp::I8(p, _) | ConvOp::I8Tiled(p, ..) | ConvOp::I8Depthwise(p, _) => &p.geom,
        }
    }

    /// The same convolution over another window (a band of rows, for streamed stages), and
    /// the scratch bytes its kernel then needs.
    pub fn with_window(&self, window: Window2d) -> (ConvOp, usize) {
        let mut op = self.clone();
        match &mut op {
            ConvOp::F32(p) | ConvOp::F32Tiled(p) | ConvOp::Hybrid(p, _) => p.window = window,
            ConvOp::I8(p, _) | ConvOp::I8Tiled(p, ..) | ConvOp::I8Depthwise(p, _) => {
                p.geom.window = window
            }
        }
        let scratch = match &op {
            ConvOp::I8Tiled(p, ..) => 2 * conv::tiled_scratch_len(&p.geom),
            ConvOp::I8Depthwise(p, _) => conv::depthwise_scratch_len(&p.geom),
            _ => 0,
        };
        (op, scratch.next_multiple_of(4))
    }
}

/// The `Conv2d { .. }` literal.
fn geometry(p: &Conv2d) -> TokenStream {
    let Conv2d {
        batch,
        in_c,
        out_c,
        groups,
        window,
        act,
    } = p;
    let [batch, in_c, out_c, groups] = [*batch, *in_c, *out_c, *groups].map(u);
    let (window, act) = (window_tokens(window), activation_tokens(act));
    quote! {
        ::microarena::kernels::conv::Conv2d {
            batch: #batch, in_c: #in_c, out_c: #out_c, groups: #groups, window: #window, act: #act,
        }
    }
}

impl Kernel for ConvOp {
    fn name(&self) -> &'static str {
        match self {
            ConvOp::F32(_) | ConvOp::F32Tiled(_) => "Conv",
            ConvOp::I8(..) => "ConvI8",
            ConvOp::I8Tiled(..) | ConvOp::I8Depthwise(..) => "ConvI8",
            ConvOp::Hybrid(..) => "ConvHybrid",
        }
    }

    fn macs(&self) -> u64 {
        let g = match self {
            ConvOp::F32(p) | ConvOp::F32Tiled(p) | ConvOp::Hybrid(p, _) => p,
            ConvOp::I8(p, _) | ConvOp::I8Tiled(p, ..) | ConvOp::I8Depthwise(p, _) => &p.geom,
        };
        let w = &g.window;
        [
            g.batch,
            g.out_c,
            w.out_h,
            w.out_w,
            g.in_c / g.groups,
            w.k_h,
            w.k_w,
        ]
        .iter()
        .map(|&d| d as u64)
        .product()
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            ConvOp::F32(p) | ConvOp::F32Tiled(p) | ConvOp::Hybrid(p, _) => Some(&mut p.act),
            ConvOp::I8(..) | ConvOp::I8Tiled(..) | ConvOp::I8Depthwise(..) => None,
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let (x, w, bias, out) = (
            call.operand(0),
            call.operand(1),
            call.optional(2),
            &call.out,
        );
        call.wrap(match self {
            ConvOp::F32(p) => {
                let geom = geometry(p);
                // A streamed stage's depthwise window whose first rows are kept apart (input
                // 3, see `plan::stream`), joined a channel at a time in the scratch.
                if let Some(kept) = call.operands.get(3).and_then(Option::as_ref) {
                    let scratch = call.scratch.as_ref().expect("a split window has scratch");
                    quote!(::microarena::kernels::conv::conv2d_depthwise_split(
                        &#geom, #kept, #x, #w, #bias, #scratch, #out,
                    );)
                } else {
                    quote!(::microarena::kernels::conv::conv2d(&#geom, #x, #w, #bias, #out);)
                }
            }
            ConvOp::F32Tiled(p) => {
                let geom = geometry(p);
                quote!(::microarena::kernels::conv::conv2d_tiled(&#geom, #x, #w, #bias, #out);)
            }
            ConvOp::Hybrid(p, scale) => {
                let (geom, scale) = (geometry(p), super::f32_lit(*scale));
                quote!(::microarena::kernels::conv::conv2d_hybrid(&#geom, #x, #w, #scale, #bias, #out);)
            }
            ConvOp::I8(p, _) | ConvOp::I8Tiled(p, ..) | ConvOp::I8Depthwise(p, _) => {
                let kernel = match self {
                    ConvOp::I8Tiled(.., Chunked(true)) => Some(quote!(conv2d_i8_tiled_chunked)),
                    _ => None,
                };
                let ConvI8 {
                    geom,
                    input_zero,
                    output_zero,
                    lo,
                    hi,
                } = p;
                let geom = geometry(geom);
                // The tiled kernels take the scales decoded (`Requant::scale`).
                let rq = match self {
                    ConvOp::I8Tiled(_, fs, _) | ConvOp::I8Depthwise(_, fs) => fs.tokens(),
                    ConvOp::I8(_, rs) => rs.tokens(),
                    ConvOp::F32(_) | ConvOp::F32Tiled(_) | ConvOp::Hybrid(..) => {
                        unreachable!("an int8 op")
                    }
                };
                let params = quote! {
                    &::microarena::kernels::conv::ConvI8 {
                        geom: #geom, input_zero: #input_zero, output_zero: #output_zero,
                        lo: #lo, hi: #hi,
                    }
                };
                // Every depthwise and tiled call names its code path, worked out here by the
                // kernels' own `depthwise_variant` / `tiled_variant` (the kernel asserts it is
                // the parameters'): only that path's code is in the firmware. A streamed
                // stage's depthwise window may have its first rows kept apart (input 3, see
                // `plan::stream`).
                if let ConvOp::I8Depthwise(..) = self {
                    let kept = call.operands.get(3).and_then(Option::as_ref);
                    let kept = kept.cloned().unwrap_or_else(|| quote!(&[]));
                    let scratch = call.scratch.as_ref().expect("the kernel has scratch");
                    // Shared: one body for every variant, which copies rows of any class.
                    let variant = if call.depthwise_shared {
                        conv::depthwise_variant(p) & !conv::DW_ROWS | conv::DW_SHARED
                    } else {
                        conv::depthwise_variant(p)
                    };
                    let code = quote! {
                        ::microarena::kernels::conv::conv2d_i8_depthwise_split_as::<_, #variant>(
                            #params, #kept, #x, #w, #bias, #rq, #scratch, #out,
                        );
                    };
                    return call.wrap(code);
                }
                if let ConvOp::I8Tiled(.., Chunked(false)) = self {
                    let scratch = call.scratch.as_ref().expect("the kernel has scratch");
                    let variant = conv::tiled_variant(p);
                    quote! {
                        ::microarena::kernels::conv::conv2d_i8_tiled_as::<_, #variant>(
                            #params, #x, #w, #bias, #rq, #scratch, #out,
                        );
                    }
                } else if let Some(kernel) = kernel {
                    let scratch = call.scratch.as_ref().expect("the kernel has scratch");
                    quote! {
                        ::microarena::kernels::conv::#kernel(
                            #params, #x, #w, #bias, #rq, #scratch, #out,
                        );
                    }
                } else {
                    quote! {
                        ::microarena::kernels::conv::conv2d_i8(#params, #x, #w, #bias, #rq, #out);
                    }
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            ConvOp::F32(p) => match ins.get(3) {
                Some(kept) => {
                    let mut scratch = vec![0.0; p.window.in_h * p.window.in_w];
                    conv::conv2d_depthwise_split(
                        p,
                        kept.f32(),
                        ins.f32(0),
                        ins.f32(1),
                        ins.opt_f32(2),
                        &mut scratch,
                        out.f32_mut(),
                    )
                }
                None => conv::conv2d(p, ins.f32(0), ins.f32(1), ins.opt_f32(2), out.f32_mut()),
            },
            ConvOp::F32Tiled(p) => {
                conv::conv2d_tiled(p, ins.f32(0), ins.f32(1), ins.opt_f32(2), out.f32_mut())
            }
            ConvOp::Hybrid(p, scale) => conv::conv2d_hybrid(
                p,
                ins.f32(0),
                ins.i8(1),
                *scale,
                ins.opt_f32(2),
                out.f32_mut(),
            ),
            ConvOp::I8(p, Rescales::Requant(rq)) => {
                conv::conv2d_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), rq, out.i8_mut())
            }
            ConvOp::I8(p, Rescales::FixedPoint(fp)) => {
                conv::conv2d_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), fp, out.i8_mut())
            }
            ConvOp::I8(p, Rescales::TwoRoundings(fp)) => {
                let rq: Vec<TwoRoundings> = fp.iter().map(|&f| TwoRoundings(f)).collect();
                conv::conv2d_i8(p, ins.i8(0), ins.i8(1), ins.opt_i32(2), &rq, out.i8_mut())
            }
            ConvOp::I8Tiled(p, fs, chunked) => {
                // On the host the scratch is a vector of its own; `crate::exec` fills the
                // arena region it is planned at with garbage, which shows a wrong placement.
                let mut scratch = vec![0i16; conv::tiled_scratch_len(&p.geom)];
                let (x, w, b) = (ins.i8(0), ins.i8(1), ins.opt_i32(2));
                let (s, y) = (&mut scratch, out.i8_mut());
                if chunked.0 {
                    with_scales!(fs, |scales| {
                        conv::conv2d_i8_tiled_chunked(p, x, w, b, scales, s, y)
                    })
                } else {
                    with_scales!(fs, |scales| conv::conv2d_i8_tiled(p, x, w, b, scales, s, y))
                }
            }
            ConvOp::I8Depthwise(p, fs) => {
                let mut scratch = vec![0i16; conv::depthwise_scratch_len(&p.geom).div_ceil(2)];
                let kept = ins.get(3).map_or(&[][..], |v| v.i8());
                let (x, w, b) = (ins.i8(0), ins.i8(1), ins.opt_i32(2));
                let (s, y) = (&mut scratch, out.i8_mut());
                with_scales!(fs, |scales| {
                    conv::conv2d_i8_depthwise_split(p, kept, x, w, b, scales, s, y)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Window2d;

    /// A dense int8 convolution goes to the tiled kernel where its weights pack: in passes
    /// where its pairs' sums could reach 2^23, the reference kernel (and its weights as they
    /// are) where a −128 sits beside a negative weight of the pair's first channel.
    #[test]
    fn weights_that_do_not_pair_keep_the_reference_kernel() {
        let conv_graph = |w: Vec<i8>, input_zero: i32| {
            let in_c = w.len() / 2;
            let mut g = Graph::default();
            let kind = TensorKind::Input(0);
            let x = g.add_typed_tensor("x", vec![1, in_c, 3, 3], DType::I8, kind, None);
            let kind = TensorKind::WeightI8(w);
            let wt = g.add_typed_tensor("w", vec![2, in_c, 1, 1], DType::I8, kind, None);
            let kind = TensorKind::Output(0);
            let y = g.add_typed_tensor("y", vec![1, 2, 3, 3], DType::I8, kind, None);
            let geom = Conv2d {
                batch: 1,
                in_c,
                out_c: 2,
                groups: 1,
                window: Window2d::uniform(3, 3, 1, 1, 1, 1, 0),
                act: Activation::Identity,
            };
            let p = ConvI8 {
                geom,
                input_zero,
                output_zero: -2,
                lo: -128,
                hi: 127,
            };
            let rescales = Rescales::Requant(vec![Requant::from_real(0.01); 2]);
            g.nodes.push(crate::ir::Node {
                name: "conv".into(),
                op_type: "Conv".into(),
                op: Op::Conv(ConvOp::I8(p, rescales)),
                inputs: vec![x, wt],
                output: y,
                scratch: None,
                rank: Default::default(),
            });
            select_tiled(&mut g, 16);
            g
        };
        let weights = |g: &Graph| match &g.tensor(g.nodes[0].inputs[1]).kind {
            TensorKind::WeightI8(w) => w.len(),
            _ => 0,
        };
        let g = conv_graph(vec![-3, 5, 7, 1, 2, -128, 4, 0], 3);
        assert!(matches!(
            g.nodes[0].op,
            Op::Conv(ConvOp::I8Tiled(.., Chunked(false)))
        ));
        assert_eq!(weights(&g), 2 * 8);
        // Above, channel 1's −128 sits beside channel 0's 5: it pairs. Beside its −3 it
        // would leave the halfword's range.
        let g = conv_graph(vec![-3, 5, 7, 1, -128, 2, 4, 0], 3);
        assert!(matches!(g.nodes[0].op, Op::Conv(ConvOp::I8(..))));
        assert_eq!(weights(&g), 8);
        assert!(g.nodes[0].scratch.is_none());
        // 264 steps of −127 (channel 1) from inputs 255 away from the zero point: the
        // pair's sums may reach 264 · 255 · 127 > 2^23, so the kernel sums in passes.
        let mut w = vec![1i8; 264];
        w.extend([-127i8; 264]);
        let g = conv_graph(w, 127);
        assert!(matches!(
            g.nodes[0].op,
            Op::Conv(ConvOp::I8Tiled(.., Chunked(true)))
        ));
    }

    #[test]
    fn emits_every_geometry_field() {
        let window = Window2d {
            in_h: 5,
            in_w: 6,
            out_h: 3,
            out_w: 3,
            k_h: 3,
            k_w: 3,
            stride_h: 2,
            stride_w: 2,
            dil_h: 1,
            dil_w: 1,
            pad_top: 1,
            pad_left: 1,
            pad_bottom: 1,
            pad_right: 1,
        };
        let op = ConvOp::F32(Conv2d {
            batch: 1,
            in_c: 4,
            out_c: 8,
            groups: 2,
            window,
            act: Activation::RELU,
        });
        let call = Call {
            operands: vec![Some(quote!(x0)), Some(quote!(W1.f32())), None],
            borrow: quote!(),
            parts: Vec::new(),
            out: quote!(out),
            in_place: None,
            scratch: None,
            offsets: Vec::new(),
            out_offset: 0,
            scratch_offset: None,
            depthwise_shared: false,
        };
        let code = op.emit(&call).to_string();
        for field in ["groups : 2", "in_w : 6", "pad_bottom : 1", "stride_h : 2"] {
            assert!(code.contains(field), "{field}: {code}");
        }
        assert!(code.contains("Option :: None"), "{code}");
    }
}
