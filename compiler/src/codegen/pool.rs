//! Emits calls to [`crate::kernels::pool`].

use crate::kernels::pool::{AvgPoolI8, Pool2d, PoolKind};
use crate::kernels::quant::Requant;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, quant::requant, usize_lit as u};

/// The `Pool2d { .. }` literal.
fn geometry(p: &Pool2d) -> TokenStream {
    let (c, in_h, in_w, out_h, out_w) = (u(p.c), u(p.in_h), u(p.in_w), u(p.out_h), u(p.out_w));
    let (k_h, k_w, stride_h, stride_w, dil_h, dil_w) = (
        u(p.k_h),
        u(p.k_w),
        u(p.stride_h),
        u(p.stride_w),
        u(p.dil_h),
        u(p.dil_w),
    );
    let (pad_top, pad_left, pad_bottom, pad_right) =
        (u(p.pad_top), u(p.pad_left), u(p.pad_bottom), u(p.pad_right));
    let kind = match p.kind {
        PoolKind::Max => quote!(::microarena::kernels::pool::PoolKind::Max),
        PoolKind::Average { count_include_pad } => {
            quote!(::microarena::kernels::pool::PoolKind::Average { count_include_pad: #count_include_pad })
        }
    };
    let batch = u(p.batch);
    let act = activation(&p.act);
    quote! {
        ::microarena::kernels::pool::Pool2d {
            batch: #batch, c: #c, in_h: #in_h, in_w: #in_w, out_h: #out_h, out_w: #out_w, k_h: #k_h, k_w: #k_w,
            stride_h: #stride_h, stride_w: #stride_w, dil_h: #dil_h, dil_w: #dil_w,
            pad_top: #pad_top, pad_left: #pad_left, pad_bottom: #pad_bottom, pad_right: #pad_right,
            kind: #kind, act: #act,
        }
    }
}

/// `pool2d(&Pool2d { .. }, x, out)`
pub(crate) fn pool2d(p: &Pool2d, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let geom = geometry(p);
    let x = &ins[0];
    quote!(::microarena::kernels::pool::pool2d(&#geom, #x, #out);)
}

/// `max_pool_i8(&Pool2d { .. }, lo, hi, x, out)`
pub(crate) fn max_pool_i8(
    p: &Pool2d,
    lo: i8,
    hi: i8,
    ins: &[TokenStream],
    out: &TokenStream,
) -> TokenStream {
    let geom = geometry(p);
    let x = &ins[0];
    quote!(::microarena::kernels::pool::max_pool_i8(&#geom, #lo, #hi, #x, #out);)
}

/// `avg_pool_i8(&Pool2d { .. }, &AvgPoolI8 { .. }, &[(taps, Requant)], x, out)`
pub(crate) fn avg_pool_i8(
    p: &Pool2d,
    q: &AvgPoolI8,
    by_count: &[(u32, Requant)],
    ins: &[TokenStream],
    out: &TokenStream,
) -> TokenStream {
    let geom = geometry(p);
    let (iz, oz, lo, hi) = (q.in_zero, q.out_zero, q.lo, q.hi);
    let counts = by_count.iter().map(|(n, r)| {
        let r = requant(r);
        quote!((#n, #r))
    });
    let x = &ins[0];
    quote! {
        ::microarena::kernels::pool::avg_pool_i8(
            &#geom,
            &::microarena::kernels::pool::AvgPoolI8 { in_zero: #iz, out_zero: #oz, lo: #lo, hi: #hi },
            &[#(#counts),*],
            #x, #out,
        );
    }
}
