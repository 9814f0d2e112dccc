//! Emits calls to [`crate::kernels::conv`].

use crate::kernels::conv::Conv2d;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, optional, usize_lit as u};

/// `conv2d(&Conv2d { .. }, x, weights, bias, out)`
pub(crate) fn conv2d(p: &Conv2d, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
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
    let (x, w, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote! {
        ::microarena::kernels::conv::conv2d(
            &::microarena::kernels::conv::Conv2d {
                batch: #batch, in_c: #in_c, in_h: #in_h, in_w: #in_w, out_c: #out_c, out_h: #out_h, out_w: #out_w,
                k_h: #k_h, k_w: #k_w, stride_h: #stride_h, stride_w: #stride_w, dil_h: #dil_h, dil_w: #dil_w,
                pad_top: #pad_top, pad_left: #pad_left, groups: #groups, act: #act,
            },
            #x, #w, #bias, #out,
        );
    }
}
