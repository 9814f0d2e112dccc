//! Emits calls to [`crate::kernels::conv`].

use crate::kernels::conv::{Conv2d, ConvI8};
use crate::kernels::quant::Requant;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, optional, quant::requant_slice, usize_lit as u};

/// The `Conv2d { .. }` literal.
fn geometry(p: &Conv2d) -> TokenStream {
    let (in_c, in_h, in_w, out_c, out_h, out_w) = (
        u(p.in_c),
        u(p.in_h),
        u(p.in_w),
        u(p.out_c),
        u(p.out_h),
        u(p.out_w),
    );
    let (k_h, k_w, stride_h, stride_w, dil_h, dil_w) = (
        u(p.k_h),
        u(p.k_w),
        u(p.stride_h),
        u(p.stride_w),
        u(p.dil_h),
        u(p.dil_w),
    );
    let (pad_top, pad_left, groups) = (u(p.pad_top), u(p.pad_left), u(p.groups));
    let batch = u(p.batch);
    let act = activation(&p.act);
    quote! {
        ::microarena::kernels::conv::Conv2d {
            batch: #batch, in_c: #in_c, in_h: #in_h, in_w: #in_w, out_c: #out_c, out_h: #out_h, out_w: #out_w,
            k_h: #k_h, k_w: #k_w, stride_h: #stride_h, stride_w: #stride_w, dil_h: #dil_h, dil_w: #dil_w,
            pad_top: #pad_top, pad_left: #pad_left, groups: #groups, act: #act,
        }
    }
}

/// `conv2d(&Conv2d { .. }, x, weights, bias, out)`
pub(crate) fn conv2d(p: &Conv2d, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let geom = geometry(p);
    let (x, w, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote!(::microarena::kernels::conv::conv2d(&#geom, #x, #w, #bias, #out);)
}

/// `conv2d_i8(&ConvI8 { .. }, x, weights, bias, &[Requant; out_c], out)`
pub(crate) fn conv2d_i8(
    p: &ConvI8,
    requant: &[Requant],
    ins: &[TokenStream],
    out: &TokenStream,
) -> TokenStream {
    let geom = geometry(&p.geom);
    let (iz, oz, lo, hi) = (p.input_zero, p.output_zero, p.lo, p.hi);
    let rq = requant_slice(requant);
    let (x, w, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote! {
        ::microarena::kernels::conv::conv2d_i8(
            &::microarena::kernels::conv::ConvI8 {
                geom: #geom, input_zero: #iz, output_zero: #oz, lo: #lo, hi: #hi,
            },
            #x, #w, #bias, #rq, #out,
        );
    }
}
