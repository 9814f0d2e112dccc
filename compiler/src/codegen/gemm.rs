//! Emits calls to [`crate::kernels::gemm`].

use crate::kernels::gemm::{MatMul, MatMulI8};
use crate::kernels::quant::Requant;
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, optional, quant::requant_slice, usize_lit as u};

/// The `MatMul { .. }` literal.
fn geometry(p: &MatMul) -> TokenStream {
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
    quote! {
        ::microarena::kernels::gemm::MatMul {
            m: #m, n: #n, k: #k, a_stride_m: #asm, a_stride_k: #ask, b_stride_n: #bsn,
            b_stride_k: #bsk, out_stride_m: #osm, out_stride_n: #osn, act: #act,
        }
    }
}

/// `matmul(&MatMul { .. }, a, b, bias, out)`
pub(crate) fn matmul(p: &MatMul, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let geom = geometry(p);
    let (a, b, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote!(::microarena::kernels::gemm::matmul(&#geom, #a, #b, #bias, #out);)
}

/// `matmul_i8(&MatMulI8 { .. }, a, b, bias, &[Requant; n], out)`
pub(crate) fn matmul_i8(
    p: &MatMulI8,
    requant: &[Requant],
    ins: &[TokenStream],
    out: &TokenStream,
) -> TokenStream {
    let geom = geometry(&p.geom);
    let (az, oz, lo, hi) = (p.a_zero, p.out_zero, p.lo, p.hi);
    let rq = requant_slice(requant);
    let (a, b, bias) = (&ins[0], &ins[1], optional(ins.get(2)));
    quote! {
        ::microarena::kernels::gemm::matmul_i8(
            &::microarena::kernels::gemm::MatMulI8 { geom: #geom, a_zero: #az, out_zero: #oz, lo: #lo, hi: #hi },
            #a, #b, #bias, #rq, #out,
        );
    }
}
