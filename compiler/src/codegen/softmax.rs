//! Emits calls to [`crate::kernels::softmax`].

use crate::kernels::softmax::Softmax;
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
