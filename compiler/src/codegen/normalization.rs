//! Emits calls to [`crate::kernels::normalization`].

use crate::kernels::normalization::ScaleShift;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, usize_lit as u};

/// `scale_shift(&ScaleShift { .. }, x, scale, shift, out)`
pub(crate) fn scale_shift(p: &ScaleShift, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (outer, channels, inner) = (u(p.outer), u(p.channels), u(p.inner));
    let act = activation(&p.act);
    let (x, scale, shift) = (&ins[0], &ins[1], &ins[2]);
    quote! {
        ::microarena::kernels::normalization::scale_shift(
            &::microarena::kernels::normalization::ScaleShift { outer: #outer, channels: #channels, inner: #inner, act: #act },
            #x, #scale, #shift, #out,
        );
    }
}

/// `scale_shift_in_place(&ScaleShift { .. }, io, scale, shift)`
pub(crate) fn scale_shift_in_place(
    p: &ScaleShift,
    ins: &[TokenStream],
    io: &TokenStream,
) -> TokenStream {
    let (outer, channels, inner) = (u(p.outer), u(p.channels), u(p.inner));
    let act = activation(&p.act);
    let (scale, shift) = (&ins[0], &ins[1]);
    quote! {
        ::microarena::kernels::normalization::scale_shift_in_place(
            &::microarena::kernels::normalization::ScaleShift { outer: #outer, channels: #channels, inner: #inner, act: #act },
            #io, #scale, #shift,
        );
    }
}
