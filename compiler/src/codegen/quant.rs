//! Emits calls to [`crate::kernels::quant`], and the `Requant` literals other int8 kernels take.

use crate::kernels::quant::{Dequantize, Quantize, Requant, RequantizeI8};
use proc_macro2::TokenStream;
use quote::quote;

use super::f32_lit;

/// `Requant { multiplier, shift }`
pub(crate) fn requant(r: &Requant) -> TokenStream {
    let (m, s) = (r.multiplier, r.shift);
    quote!(::microarena::kernels::quant::Requant { multiplier: #m, shift: #s })
}

/// `&[Requant { .. }, ...]`: a constant slice, promoted to a static (flash).
pub(crate) fn requant_slice(rs: &[Requant]) -> TokenStream {
    let items = rs.iter().map(requant);
    quote!(&[#(#items),*])
}

/// `quantize(&Quantize { .. }, x, out)`
pub(crate) fn quantize(p: &Quantize, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (scale, zero) = (f32_lit(p.scale), p.zero);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::quant::quantize(
            &::microarena::kernels::quant::Quantize { scale: #scale, zero: #zero }, #x, #out,
        );
    }
}

/// `dequantize(&Dequantize { .. }, x, out)`
pub(crate) fn dequantize(p: &Dequantize, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let (scale, zero) = (f32_lit(p.scale), p.zero);
    let x = &ins[0];
    quote! {
        ::microarena::kernels::quant::dequantize(
            &::microarena::kernels::quant::Dequantize { scale: #scale, zero: #zero }, #x, #out,
        );
    }
}

fn requantize_params(p: &RequantizeI8) -> TokenStream {
    let mult = requant(&p.mult);
    let (iz, oz, lo, hi) = (p.in_zero, p.out_zero, p.lo, p.hi);
    quote! {
        &::microarena::kernels::quant::RequantizeI8 {
            in_zero: #iz, mult: #mult, out_zero: #oz, lo: #lo, hi: #hi,
        }
    }
}

/// `requantize_i8(&RequantizeI8 { .. }, x, out)`
pub(crate) fn requantize_i8(
    p: &RequantizeI8,
    ins: &[TokenStream],
    out: &TokenStream,
) -> TokenStream {
    let params = requantize_params(p);
    let x = &ins[0];
    quote!(::microarena::kernels::quant::requantize_i8(#params, #x, #out);)
}

/// `requantize_i8_in_place(&RequantizeI8 { .. }, io)`
pub(crate) fn requantize_i8_in_place(p: &RequantizeI8, io: &TokenStream) -> TokenStream {
    let params = requantize_params(p);
    quote!(::microarena::kernels::quant::requantize_i8_in_place(#params, #io);)
}
