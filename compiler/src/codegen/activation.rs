//! Emits [`crate::kernels::activation`] values and the standalone unary call.

use crate::kernels::Activation;
use proc_macro2::TokenStream;
use quote::quote;

use super::f32_lit;

/// `::microarena::kernels::Activation::...`
pub(crate) fn activation(a: &Activation) -> TokenStream {
    let path = quote!(::microarena::kernels::Activation);
    match *a {
        Activation::Identity => quote!(#path::Identity),
        Activation::Clip { min, max } => {
            let (min, max) = (f32_lit(min), f32_lit(max));
            quote!(#path::Clip { min: #min, max: #max })
        }
        Activation::AffineClip {
            scale,
            shift,
            min,
            max,
        } => {
            let (scale, shift, min, max) =
                (f32_lit(scale), f32_lit(shift), f32_lit(min), f32_lit(max));
            quote!(#path::AffineClip { scale: #scale, shift: #shift, min: #min, max: #max })
        }
        Activation::LeakyRelu { alpha } => {
            let alpha = f32_lit(alpha);
            quote!(#path::LeakyRelu { alpha: #alpha })
        }
        Activation::Sigmoid => quote!(#path::Sigmoid),
        Activation::Tanh => quote!(#path::Tanh),
        Activation::HardSwish => quote!(#path::HardSwish),
        Activation::Exp => quote!(#path::Exp),
        Activation::Ln => quote!(#path::Ln),
        Activation::Abs => quote!(#path::Abs),
        Activation::Sqrt => quote!(#path::Sqrt),
        Activation::Recip => quote!(#path::Recip),
        Activation::Erf => quote!(#path::Erf),
        Activation::Rsqrt => quote!(#path::Rsqrt),
    }
}

/// `unary(act, x, out)`
pub(crate) fn unary(a: &Activation, ins: &[TokenStream], out: &TokenStream) -> TokenStream {
    let act = activation(a);
    let x = &ins[0];
    quote!(::microarena::kernels::activation::unary(#act, #x, #out);)
}

/// `unary_in_place(act, io)`
pub(crate) fn unary_in_place(a: &Activation, io: &TokenStream) -> TokenStream {
    let act = activation(a);
    quote!(::microarena::kernels::activation::unary_in_place(#act, #io);)
}
