//! Emits calls to [`crate::kernels::softmax`].

use crate::kernels::softmax::{Softmax, SoftmaxI8};
use proc_macro2::TokenStream;
use quote::quote;

use super::usize_lit as u;

/// `softmax(&Softmax { .. }, x, out)`
pub(crate) fn softmax(p: &Softmax, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (outer, len, inner, log) = (u(p.outer), u(p.len), u(p.inner), p.log);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::softmax::softmax(
            &::microarena::kernels::softmax::Softmax { outer: #outer, len: #len, inner: #inner, log: #log },
            #x, #out,
        );
    }
}

/// `softmax_in_place(&Softmax { .. }, io)`
pub(crate) fn softmax_in_place(p: &Softmax, io: &TokenStream) -> TokenStream {
    let (outer, len, inner, log) = (u(p.outer), u(p.len), u(p.inner), p.log);
    quote! {
        ::microarena::kernels::softmax::softmax_in_place(
            &::microarena::kernels::softmax::Softmax { outer: #outer, len: #len, inner: #inner, log: #log },
            #io,
        );
    }
}

/// `softmax_i8(&SoftmaxI8 { .. }, x, out)`: the exp table is a literal, so it lands in flash.
pub(crate) fn softmax_i8(p: &SoftmaxI8, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let g = &p.geom;
    let (outer, len, inner, log) = (u(g.outer), u(g.len), u(g.inner), g.log);
    let table = p.exp_q16.iter();
    let (inv, zero) = (p.inv_out_scale_q16, p.out_zero);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::softmax::softmax_i8(
            &::microarena::kernels::softmax::SoftmaxI8 {
                geom: ::microarena::kernels::softmax::Softmax { outer: #outer, len: #len, inner: #inner, log: #log },
                exp_q16: [#(#table),*],
                inv_out_scale_q16: #inv,
                out_zero: #zero,
            },
            #x, #out,
        );
    }
}
