//! Emits calls to [`crate::kernels::elementwise`].

use crate::kernels::elementwise::{AddI8, Binary, BinaryOp};
use proc_macro2::TokenStream;
use quote::quote;

use super::{activation::activation, quant::requant, usize_array};

fn params(p: &Binary) -> TokenStream {
    let op = match p.op {
        BinaryOp::Add => quote!(Add),
        BinaryOp::Sub => quote!(Sub),
        BinaryOp::Mul => quote!(Mul),
        BinaryOp::Div => quote!(Div),
        BinaryOp::Max => quote!(Max),
        BinaryOp::Min => quote!(Min),
        BinaryOp::Pow => quote!(Pow),
        BinaryOp::PRelu => quote!(PRelu),
    };
    let rank = p.rank;
    let (shape, sa, sb) = (
        usize_array(&p.shape),
        usize_array(&p.a_strides),
        usize_array(&p.b_strides),
    );
    let act = activation(&p.act);
    quote! {
        &::microarena::kernels::elementwise::Binary {
            op: ::microarena::kernels::elementwise::BinaryOp::#op, rank: #rank,
            shape: #shape, a_strides: #sa, b_strides: #sb, act: #act,
        }
    }
}

/// `binary(&Binary { .. }, a, b, out)`
pub(crate) fn binary(p: &Binary, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let params = params(p);
    let (a, b) = (&ins[0], &ins[1]);
    quote!(::microarena::kernels::elementwise::binary(#params, #a, #b, #out);)
}

/// `binary_in_place(&Binary { .. }, io_is_a, io, other)`
pub(crate) fn binary_in_place(
    p: &Binary,
    io_is_a: bool,
    other: &TokenStream,
    io: &TokenStream,
) -> TokenStream {
    let params = params(p);
    quote!(::microarena::kernels::elementwise::binary_in_place(#params, #io_is_a, #io, #other);)
}

fn add_i8_params(p: &AddI8) -> TokenStream {
    let (am, bm, om) = (requant(&p.a_mult), requant(&p.b_mult), requant(&p.out_mult));
    let (az, bz, oz, lo, hi) = (p.a_zero, p.b_zero, p.out_zero, p.lo, p.hi);
    quote! {
        &::microarena::kernels::elementwise::AddI8 {
            a_zero: #az, a_mult: #am, b_zero: #bz, b_mult: #bm, out_mult: #om,
            out_zero: #oz, lo: #lo, hi: #hi,
        }
    }
}

/// `add_i8(&AddI8 { .. }, a, b, out)`
pub(crate) fn add_i8(p: &AddI8, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let params = add_i8_params(p);
    let (a, b) = (&ins[0], &ins[1]);
    quote!(::microarena::kernels::elementwise::add_i8(#params, #a, #b, #out);)
}

/// `add_i8_in_place(&AddI8 { .. }, io, other)`; over `b` the operands swap roles.
pub(crate) fn add_i8_in_place(
    p: &AddI8,
    io_is_a: bool,
    other: &TokenStream,
    io: &TokenStream,
) -> TokenStream {
    let params = add_i8_params(&if io_is_a { *p } else { p.swapped() });
    quote!(::microarena::kernels::elementwise::add_i8_in_place(#params, #io, #other);)
}
