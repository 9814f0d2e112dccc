//! Emits calls to [`crate::kernels::reduce`].

use crate::kernels::reduce::{Reduce, ReduceKind};
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, usize_lit as u};

/// `reduce(&Reduce { .. }, x, out)`
pub(crate) fn reduce(p: &Reduce, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (outer, len, inner) = (u(p.outer), u(p.len), u(p.inner));
    let kind = match p.kind {
        ReduceKind::Sum => quote!(Sum),
        ReduceKind::Mean => quote!(Mean),
        ReduceKind::Max => quote!(Max),
        ReduceKind::Min => quote!(Min),
        ReduceKind::Prod => quote!(Prod),
        ReduceKind::MeanOfSquares => quote!(MeanOfSquares),
    };
    let act = activation(&p.act);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::reduce::reduce(
            &::microarena::kernels::reduce::Reduce {
                outer: #outer, len: #len, inner: #inner,
                kind: ::microarena::kernels::reduce::ReduceKind::#kind, act: #act,
            },
            #x, #out,
        );
    }
}
