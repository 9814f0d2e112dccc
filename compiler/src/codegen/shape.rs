//! Emits calls to [`crate::kernels::shape`].

use crate::kernels::shape::{ConcatPart, Pad, StridedCopy};
use proc_macro2::TokenStream;
use quote::quote;

use super::{f32_lit, usize_array, usize_lit as u};

/// `strided_copy(&StridedCopy { .. }, x, out)`
pub(crate) fn strided_copy(p: &StridedCopy, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (rank, shape, strides, offset) = (
        p.rank,
        usize_array(&p.shape),
        usize_array(&p.in_strides),
        u(p.offset),
    );
    let x = &ins[0];
    quote! {
        ::microarena::kernels::shape::strided_copy(
            &::microarena::kernels::shape::StridedCopy { rank: #rank, shape: #shape, in_strides: #strides, offset: #offset },
            #x, #out,
        );
    }
}

/// `pad(&Pad { .. }, x, out)`
pub(crate) fn pad(p: &Pad, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (rank, in_shape, before, after) = (
        p.rank,
        usize_array(&p.in_shape),
        usize_array(&p.before),
        usize_array(&p.after),
    );
    let value = f32_lit(p.value);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::shape::pad(
            &::microarena::kernels::shape::Pad { rank: #rank, in_shape: #in_shape, before: #before, after: #after, value: #value },
            #x, #out,
        );
    }
}

/// `concat_part(&ConcatPart { .. }, x, out)`
pub(crate) fn concat_part(p: &ConcatPart, x: &TokenStream, out: &TokenStream) -> TokenStream {
    let (outer, part, total, offset) = (u(p.outer), u(p.part), u(p.total), u(p.offset));
    quote! {
        ::microarena::kernels::shape::concat_part(
            &::microarena::kernels::shape::ConcatPart { outer: #outer, part: #part, total: #total, offset: #offset },
            #x, #out,
        );
    }
}
