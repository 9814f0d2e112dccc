//! Emits calls to [`crate::kernels::gemm`].

use crate::kernels::gemm::MatMul;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, optional, usize_lit as u};

/// `matmul(&MatMul { .. }, a, b, bias, out)`
pub(crate) fn matmul(p: &MatMul, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (m, n, k) = (u(p.m), u(p.n), u(p.k));
    let (asm, ask, bsn, bsk, osm, osn) = (
        u(p.a_stride_m),
        u(p.a_stride_k),
        u(p.b_stride_n),
        u(p.b_stride_k),
        u(p.out_stride_m),
        u(p.out_stride_n),
    );
    let act = activation(&p.act);
    let (a, b, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote! {
        ::microarena::kernels::gemm::matmul(
            &::microarena::kernels::gemm::MatMul {
                m: #m, n: #n, k: #k, a_stride_m: #asm, a_stride_k: #ask, b_stride_n: #bsn,
                b_stride_k: #bsk, out_stride_m: #osm, out_stride_n: #osn, act: #act,
            },
            #a, #b, #bias, #out,
        );
    }
}
