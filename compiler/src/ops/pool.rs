//! Max and average pooling (`kernels::pool`), global ones included, f32 and int8.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec, SumPool};

use super::activation::activation_tokens;
use super::conv::nchw;
use super::quant::requant;
use super::{onnx_window, usize_lit as u, window, window_tokens, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::qdq::{QdqAt, QdqLowering};
use crate::import::typed::{At, TypedLowering};
use crate::ir::{DType, Op, TensorId, Values};
use crate::kernels::pool::{self, window_taps, AvgPoolI8, Pool2d, PoolKind};
use crate::kernels::quant::{DivideRounded, Requant};
use crate::kernels::{Activation, Window2d};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "pool",
    onnx: &[
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "MaxPool",
    ],
    qdq: &["AveragePool", "GlobalAveragePool", "MaxPool"],
    lower,
    lower_qdq,
};

/// The pool family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolOp {
    /// `[x]`
    F32(Pool2d),
    /// `[x (i8)]`: max pooling clamped to `lo..=hi` (input and output share scale and zero).
    MaxI8 {
        /// Geometry.
        geom: Pool2d,
        /// Smallest output.
        lo: i8,
        /// Largest output.
        hi: i8,
    },
    /// `[x (i8)]`: average pooling, with the requantisation of each window size.
    AvgI8 {
        /// Geometry.
        geom: Pool2d,
        /// Zero points and range.
        quant: AvgPoolI8,
        /// How each window size's sum becomes an output.
        by_count: ByCount,
    },
    /// `[band]` → running sums per channel (`f32`, or `i32` for int8): a global average
    /// pooling `whole` fed `len` values a channel at a time, the reducer at the end of a
    /// streamed stage (`kernels::pool::row_sums`); `first`: the sums start here, else the
    /// band adds to the output's current values.
    RowSums {
        /// The global average pooling the sums are for.
        whole: Box<PoolOp>,
        /// Values a channel in the band.
        len: usize,
        /// The first band of the plane.
        first: bool,
    },
    /// `[sums]` → `whole`'s output from the running sums of its plane
    /// (`kernels::pool::average_of_sums`).
    AverageOfSums {
        /// The global average pooling.
        whole: Box<PoolOp>,
    },
    /// `[row]` → one output row: one input row of a max pooling whose windows tile the rows
    /// (`kernels::pool::pools_rows_apart`), taken as tap row `ky` of the output row (row 0
    /// starts it, the others add to it: `kernels::pool::max_pool_row_into`). A streamed
    /// stage pools the rows as its producer writes them, holding one output row instead of
    /// the window's input rows.
    MaxRowInto {
        /// The pooling (its whole geometry).
        geom: Pool2d,
        /// Tap row.
        ky: usize,
    },
}

/// How an int8 average pooling turns a window's sum into an output, per window size.
#[derive(Clone, Debug, PartialEq)]
pub enum ByCount {
    /// ONNX (onnxruntime): `(taps, in_scale / (out_scale · taps))` for every window size that
    /// occurs, requantising `Σ (x − in_zero)`.
    Requant(Vec<(u32, Requant)>),
    /// TFLite: the sum of the raw bytes divided by the taps, rounded half away from zero
    /// (input and output share scale and zero point, so both zeros are 0 in `quant`); the
    /// window sizes that occur.
    Divide(Vec<u32>),
}

impl ByCount {
    /// True when a window of `count` taps has its rescale.
    fn has(&self, count: usize) -> bool {
        match self {
            ByCount::Requant(v) => v.iter().any(|(n, _)| *n as usize == count),
            ByCount::Divide(v) => v.iter().any(|&n| n as usize == count),
        }
    }

    /// `&[(taps, rescale), ...]` as the kernel takes it.
    fn tokens(&self) -> TokenStream {
        match self {
            ByCount::Requant(v) => {
                let items = v.iter().map(|(n, r)| {
                    let r = requant(r);
                    quote!((#n, #r))
                });
                quote!(&[#(#items),*])
            }
            ByCount::Divide(v) => {
                let items = v
                    .iter()
                    .map(|n| quote!((#n, ::microarena::kernels::quant::DivideRounded(#n))));
                quote!(&[#(#items),*])
            }
        }
    }

    /// The rescale of a window of `count` taps (the whole plane), as an expression.
    fn whole_tokens(&self, count: usize) -> TokenStream {
        match self {
            ByCount::Requant(v) => requant(&whole_multiplier(v, count)),
            ByCount::Divide(_) => {
                let n = count as u32;
                quote!(::microarena::kernels::quant::DivideRounded(#n))
            }
        }
    }
}

impl PoolOp {
    /// The pooling's geometry.
    pub fn geometry(&self) -> &Pool2d {
        match self {
            PoolOp::F32(p)
            | PoolOp::MaxI8 { geom: p, .. }
            | PoolOp::AvgI8 { geom: p, .. }
            | PoolOp::MaxRowInto { geom: p, .. } => p,
            PoolOp::RowSums { whole, .. } | PoolOp::AverageOfSums { whole } => whole.geometry(),
        }
    }

    /// True for an average over each whole plane (a global average pooling, or an average
    /// pooling whose one window is the plane): what a streamed stage can end in, summing
    /// rows as they come ([`PoolOp::RowSums`]).
    pub fn is_global_average(&self) -> bool {
        let p = self.geometry();
        let w = &p.window;
        let average = matches!(
            self,
            PoolOp::F32(Pool2d {
                kind: PoolKind::Average { .. },
                ..
            }) | PoolOp::AvgI8 { .. }
        );
        // An int8 one needs its multiplier for the plane's count (the lowering gives it).
        let multiplier = match self {
            PoolOp::AvgI8 { by_count, .. } => by_count.has(plane(p)),
            _ => true,
        };
        average
            && multiplier
            && p.batch == 1
            && (w.out_h, w.out_w, w.k_h, w.k_w, w.dil_h, w.dil_w) == (1, 1, w.in_h, w.in_w, 1, 1)
            && (w.pad_top, w.pad_left, w.pad_bottom, w.pad_right) == (0, 0, 0, 0)
    }

    /// The element type of a global average's running sums ([`PoolOp::RowSums`]): exact
    /// `i32` for int8, `f32` otherwise.
    pub fn sums_dtype(&self) -> DType {
        match self {
            PoolOp::AvgI8 { .. } => DType::I32,
            _ => DType::F32,
        }
    }

    /// The same pooling over another window (a band of rows, for streamed stages).
    pub fn with_window(&self, window: Window2d) -> PoolOp {
        let mut op = self.clone();
        match &mut op {
            PoolOp::F32(p)
            | PoolOp::MaxI8 { geom: p, .. }
            | PoolOp::AvgI8 { geom: p, .. }
            | PoolOp::MaxRowInto { geom: p, .. } => p.window = window,
            PoolOp::RowSums { whole, .. } | PoolOp::AverageOfSums { whole } => {
                **whole = whole.with_window(window)
            }
        }
        op
    }
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    if let Some(p) = at.op::<MaxPool>() {
        return Some(cx.check_f32_node(at).and_then(|()| {
            if p.with_index_outputs.is_some() {
                return Err(at.unsupported("MaxPool with indices output"));
            }
            lower_f32(cx, at, &p.pool_spec, PoolKind::Max)
        }));
    }
    let p = at.op::<SumPool>()?;
    Some(cx.check_f32_node(at).and_then(|()| {
        if !p.normalize {
            return Err(at.unsupported("sum pooling without normalisation"));
        }
        let kind = PoolKind::Average {
            count_include_pad: p.count_include_pad,
        };
        lower_f32(cx, at, &p.pool_spec, kind)
    }))
}

fn lower_f32(cx: &mut TypedLowering, at: &At, ps: &PoolSpec, kind: PoolKind) -> Result<()> {
    let (xs, os) = nchw(at, ps, &cx.in_shape(at, 0)?, &cx.out_shape(at)?)?;
    let p = Pool2d {
        batch: xs[0],
        c: xs[1],
        window: window(
            &ps.padding,
            &ps.kernel_shape,
            &ps.strides(),
            &ps.dilations(),
            &xs[2..],
            &os[2..],
        ),
        kind,
        act: Activation::Identity,
    };
    let x = cx.tensor(at, at.input(0))?;
    let op = Op::Pool(PoolOp::F32(p));
    super::conv::emit_channels_first(cx, at, ps.data_format, op, vec![x], (&xs, &os))
}

/// The geometry of an ONNX pooling node over int8 tensor `x`.
fn geometry_of(cx: &QdqLowering, at: &QdqAt, x: TensorId, kind: PoolKind) -> Result<Pool2d> {
    let xs = cx.graph.tensor(x).shape.clone();
    if xs.len() != 4 {
        return Err(at.err(format!(
            "int8 pooling of a rank-{} tensor; 2-D only",
            xs.len()
        )));
    }
    let os = cx.out_shape(at)?;
    if os.len() != 4 {
        return Err(at.err("pooling output is not 4-D"));
    }
    let window = if at.node.op_type == "GlobalAveragePool" {
        super::window(
            &Default::default(),
            &xs[2..],
            &[1, 1],
            &[1, 1],
            &xs[2..],
            &os[2..],
        )
    } else {
        let k: Vec<usize> = at
            .attr_ints("kernel_shape")
            .ok_or_else(|| at.err("no kernel_shape"))?
            .iter()
            .map(|&d| d.max(1) as usize)
            .collect();
        if k.len() != 2 {
            return Err(at.err("2-D pooling needs 2 kernel sizes"));
        }
        onnx_window(at, &k, &xs[2..], &os[2..], true)?
    };
    Ok(Pool2d {
        batch: xs[0],
        c: xs[1],
        window,
        kind,
        act: Activation::Identity,
    })
}

fn lower_qdq(cx: &mut QdqLowering, at: &QdqAt) -> Result<()> {
    if at.node.op_type == "MaxPool" {
        // Input and output share one scale: max of the int8 values (QDQ or QOperator).
        let (x, kind) = cx.deq_or_int8(at, 0)?;
        let geom = geometry_of(cx, at, x, PoolKind::Max)?;
        let q = cx.quant(x);
        let y = cx.new_i8(at.out(), out_shape(&geom), q);
        let op = PoolOp::MaxI8 {
            geom,
            lo: -128,
            hi: 127,
        };
        cx.emit(at, Op::Pool(op), vec![x], y);
        cx.bind(at.out(), kind(y));
        return Ok(());
    }
    let out = cx.quantized_output(at)?;
    let x = cx.deq(at, 0)?;
    let include = at.attr_i("count_include_pad", 0) != 0;
    let kind = PoolKind::Average {
        count_include_pad: include,
    };
    let geom = geometry_of(cx, at, x, kind)?;
    let (qx, q) = (cx.quant(x), out.q);
    let mut counts: Vec<u32> = Vec::new();
    for oy in 0..geom.window.out_h {
        for ox in 0..geom.window.out_w {
            let c = window_taps(&geom, oy, ox) as u32;
            if !counts.contains(&c) {
                counts.push(c);
            }
        }
    }
    counts.sort_unstable();
    if counts.contains(&0) {
        return Err(at.err("a pooling window covers no input"));
    }
    let by_count = ByCount::Requant(
        counts
            .iter()
            // As onnxruntime's QLinear(Global)AveragePool, in float32.
            .map(|&c| (c, Requant::from_f32(qx.scale / (q.scale * c as f32))))
            .collect(),
    );
    let y = cx.new_i8(at.out(), out_shape(&geom), q);
    let op = PoolOp::AvgI8 {
        geom,
        quant: AvgPoolI8 {
            in_zero: qx.zero,
            out_zero: q.zero,
            lo: out.lo,
            hi: out.hi,
        },
        by_count,
    };
    cx.emit(at, Op::Pool(op), vec![x], y);
    cx.bind_output(out, y);
    Ok(())
}

/// `AvgPoolI8 { .. }` as an expression.
fn avg_quant(q: &AvgPoolI8) -> TokenStream {
    let AvgPoolI8 {
        in_zero,
        out_zero,
        lo,
        hi,
    } = q;
    quote!(::microarena::kernels::pool::AvgPoolI8 {
        in_zero: #in_zero, out_zero: #out_zero, lo: #lo, hi: #hi,
    })
}

/// Values in one plane of `p`'s input.
fn plane(p: &Pool2d) -> usize {
    p.window.in_h * p.window.in_w
}

/// The multiplier of a window of `count` values (the whole plane) among `by_count`.
fn whole_multiplier(by_count: &[(u32, Requant)], count: usize) -> Requant {
    by_count
        .iter()
        .find(|(n, _)| *n as usize == count)
        .expect("a global average has the multiplier of its plane (is_global_average)")
        .1
}

fn out_shape(p: &Pool2d) -> Vec<usize> {
    vec![p.batch, p.c, p.window.out_h, p.window.out_w]
}

/// The `Pool2d { .. }` literal.
fn geometry(p: &Pool2d) -> TokenStream {
    let Pool2d {
        batch,
        c,
        window,
        kind,
        act,
    } = p;
    let (batch, c) = (u(*batch), u(*c));
    let kind = match kind {
        PoolKind::Max => quote!(::microarena::kernels::pool::PoolKind::Max),
        PoolKind::Average { count_include_pad } => {
            quote!(::microarena::kernels::pool::PoolKind::Average { count_include_pad: #count_include_pad })
        }
    };
    let (window, act) = (window_tokens(window), activation_tokens(act));
    quote! {
        ::microarena::kernels::pool::Pool2d {
            batch: #batch, c: #c, window: #window, kind: #kind, act: #act,
        }
    }
}

impl Kernel for PoolOp {
    fn name(&self) -> &'static str {
        match self {
            PoolOp::F32(p) => match p.kind {
                PoolKind::Max => "MaxPool",
                PoolKind::Average { .. } => "AveragePool",
            },
            PoolOp::MaxI8 { .. } => "MaxPoolI8",
            PoolOp::AvgI8 { .. } => "AveragePoolI8",
            PoolOp::RowSums { .. } => "RowSums",
            PoolOp::AverageOfSums { .. } => "AverageOfSums",
            PoolOp::MaxRowInto { .. } => "MaxRowInto",
        }
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            PoolOp::F32(p) => Some(&mut p.act),
            PoolOp::MaxI8 { .. }
            | PoolOp::AvgI8 { .. }
            | PoolOp::RowSums { .. }
            | PoolOp::AverageOfSums { .. }
            | PoolOp::MaxRowInto { .. } => None,
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let (x, out) = (call.operand(0), &call.out);
        call.wrap(match self {
            PoolOp::RowSums { whole, len, first } => {
                let len = u(*len);
                match **whole {
                    PoolOp::AvgI8 { .. } => {
                        quote!(::microarena::kernels::pool::row_sums_i8(#first, #x, #len, #out);)
                    }
                    _ => quote!(::microarena::kernels::pool::row_sums(#first, #x, #len, #out);),
                }
            }
            PoolOp::AverageOfSums { whole } => {
                let count = plane(whole.geometry());
                match &**whole {
                    PoolOp::AvgI8 {
                        quant, by_count, ..
                    } => {
                        let quant = avg_quant(quant);
                        let r = by_count.whole_tokens(count);
                        let count = u(count);
                        quote! {
                            ::microarena::kernels::pool::average_of_sums_i8(
                                #count, &#quant, #r, #x, #out,
                            );
                        }
                    }
                    other => {
                        let act = activation_tokens(&other.geometry().act);
                        let count = u(count);
                        quote!(::microarena::kernels::pool::average_of_sums(#count, #act, #x, #out);)
                    }
                }
            }
            PoolOp::F32(p) => {
                let geom = geometry(p);
                quote!(::microarena::kernels::pool::pool2d(&#geom, #x, #out);)
            }
            PoolOp::MaxRowInto { geom, ky } => {
                let (geom, ky) = (geometry(geom), u(*ky));
                quote!(::microarena::kernels::pool::max_pool_row_into(&#geom, #ky, #x, #out);)
            }
            PoolOp::MaxI8 { geom, lo, hi } => {
                let geom = geometry(geom);
                quote!(::microarena::kernels::pool::max_pool_i8(&#geom, #lo, #hi, #x, #out);)
            }
            PoolOp::AvgI8 {
                geom,
                quant,
                by_count,
            } => {
                let geom = geometry(geom);
                let quant = avg_quant(quant);
                let counts = by_count.tokens();
                quote! {
                    ::microarena::kernels::pool::avg_pool_i8(
                        &#geom, &#quant, #counts, #x, #out,
                    );
                }
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            PoolOp::RowSums { whole, len, first } => match **whole {
                PoolOp::AvgI8 { .. } => pool::row_sums_i8(*first, ins.i8(0), *len, out.i32_mut()),
                _ => pool::row_sums(*first, ins.f32(0), *len, out.f32_mut()),
            },
            PoolOp::AverageOfSums { whole } => {
                let count = plane(whole.geometry());
                match &**whole {
                    PoolOp::AvgI8 {
                        quant,
                        by_count: ByCount::Requant(v),
                        ..
                    } => pool::average_of_sums_i8(
                        count,
                        quant,
                        whole_multiplier(v, count),
                        ins.i32(0),
                        out.i8_mut(),
                    ),
                    PoolOp::AvgI8 {
                        quant,
                        by_count: ByCount::Divide(_),
                        ..
                    } => pool::average_of_sums_i8(
                        count,
                        quant,
                        DivideRounded(count as u32),
                        ins.i32(0),
                        out.i8_mut(),
                    ),
                    other => pool::average_of_sums(
                        count,
                        other.geometry().act,
                        ins.f32(0),
                        out.f32_mut(),
                    ),
                }
            }
            PoolOp::F32(p) => pool::pool2d(p, ins.f32(0), out.f32_mut()),
            PoolOp::MaxRowInto { geom, ky } => {
                pool::max_pool_row_into(geom, *ky, ins.f32(0), out.f32_mut())
            }
            PoolOp::MaxI8 { geom, lo, hi } => {
                pool::max_pool_i8(geom, *lo, *hi, ins.i8(0), out.i8_mut())
            }
            PoolOp::AvgI8 {
                geom,
                quant,
                by_count: ByCount::Requant(v),
            } => pool::avg_pool_i8(geom, quant, v, ins.i8(0), out.i8_mut()),
            PoolOp::AvgI8 {
                geom,
                quant,
                by_count: ByCount::Divide(v),
            } => {
                let v: Vec<(u32, DivideRounded)> =
                    v.iter().map(|&n| (n, DivideRounded(n))).collect();
                pool::avg_pool_i8(geom, quant, &v, ins.i8(0), out.i8_mut())
            }
        }
    }
}
