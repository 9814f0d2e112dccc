//! The `no_std`, allocation-free kernels that `microarena`'s generated schedule calls.
//!
//! One module per op family; each kernel takes a small `Copy` parameter struct (all shapes
//! known at compile time) and plain slices. Layout is NCHW with batch 1 throughout.
//! The compiler's `ops/<family>.rs` emits the calls these modules implement.
//!
//! Firmware uses them through the `microarena` crate (`microarena::kernels`), which re-exports
//! this crate; the model compiler (`microarena-compiler`) depends on it too, to run plans on
//! the host with the very kernels the device runs.
//!
//! ```
//! use microarena_kernels::activation::{unary_in_place, Activation};
//! let mut x = [-1.0f32, 0.5, 8.0];
//! unary_in_place(Activation::Clip { min: 0.0, max: 6.0 }, &mut x); // ReLU6
//! assert_eq!(x, [0.0, 0.5, 6.0]);
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

/// The Cortex-M4F assembly's clamp of f32 values in FPU registers, as
/// [`activation::clamp`](crate::activation) does it: per register `VCMP` against the bound
/// register, `VMRS` and a `VMOV` on `MI` for the lower bound (an ordered "less than", so a
/// NaN stays) or on `GT` for the upper one (false when unordered); 4 instructions a value.
/// `vclamp!(low, "s8", "s16", "s17")` is the text for `asm!`.
#[allow(unused_macros)]
macro_rules! vclamp {
    (low, $b:literal, $($s:literal),+) => {
        concat!($("vcmp.f32 ", $s, ", ", $b, "\n", "vmrs APSR_nzcv, fpscr\n", "it mi\n",
            "vmovmi.f32 ", $s, ", ", $b, "\n",)+)
    };
    (high, $b:literal, $($s:literal),+) => {
        concat!($("vcmp.f32 ", $s, ", ", $b, "\n", "vmrs APSR_nzcv, fpscr\n", "it gt\n",
            "vmovgt.f32 ", $s, ", ", $b, "\n",)+)
    };
}

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod normalization;
pub mod pool;
pub mod quant;
pub mod recurrent;
pub mod reduce;
pub mod scale;
pub mod shape;
pub mod softmax;
pub mod stream;

pub use activation::Activation;

/// Highest tensor rank the generic (strided) kernels handle.
pub const MAX_RANK: usize = 6;

/// The spatial geometry of a sliding window, shared by convolutions and poolings: input and
/// output sizes, kernel, strides, dilations and the implicit padding on every side (1-D ops
/// have `in_h = out_h = k_h = 1`).
///
/// Output position `(oy, ox)` reads input `(oy·stride_h + ky·dil_h − pad_top,
/// ox·stride_w + kx·dil_w − pad_left)` for every tap `(ky, kx)` that falls inside the input.
/// `pad_bottom` and `pad_right` do not move any window; they count where padding is counted
/// (average pooling with `count_include_pad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Kernel (window) height.
    pub k_h: usize,
    /// Kernel (window) width.
    pub k_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation.
    pub dil_h: usize,
    /// Horizontal dilation.
    pub dil_w: usize,
    /// Implicit rows above the input.
    pub pad_top: usize,
    /// Implicit columns left of the input.
    pub pad_left: usize,
    /// Implicit rows below the input.
    pub pad_bottom: usize,
    /// Implicit columns right of the input.
    pub pad_right: usize,
}

impl Window2d {
    /// The window with the same stride, dilation and padding on both axes, its output size
    /// the floor of ONNX's formula, `(in + 2·pad − dil·(k − 1) − 1) / stride + 1`: a 3×3
    /// window, stride 2, padding 1 on a 32×32 input gives 16×16:
    ///
    /// ```
    /// let w = microarena_kernels::Window2d::uniform(32, 32, 3, 3, 2, 1, 1);
    /// assert_eq!((w.out_h, w.out_w), (16, 16));
    /// ```
    pub const fn uniform(
        in_h: usize,
        in_w: usize,
        k_h: usize,
        k_w: usize,
        stride: usize,
        dil: usize,
        pad: usize,
    ) -> Window2d {
        Window2d {
            in_h,
            in_w,
            out_h: (in_h + 2 * pad - dil * (k_h - 1) - 1) / stride + 1,
            out_w: (in_w + 2 * pad - dil * (k_w - 1) - 1) / stride + 1,
            k_h,
            k_w,
            stride_h: stride,
            stride_w: stride,
            dil_h: dil,
            dil_w: dil,
            pad_top: pad,
            pad_left: pad,
            pad_bottom: pad,
            pad_right: pad,
        }
    }
}

/// Each of four values in a row of four (`out[j] = [v[j]; 4]`: a tile's sums from their
/// channels' biases), spelt out element by element: `[v; 4]` is a loop of stores at
/// opt-level "z".
#[inline(always)]
pub(crate) fn lanes4(v: [f32; 4]) -> [[f32; 4]; 4] {
    let [a, b, c, d] = v;
    [[a, a, a, a], [b, b, b, b], [c, c, c, c], [d, d, d, d]]
}

/// Output positions `o` in `0..out_len` whose input coordinate `o * stride + offset` falls in
/// `0..in_len`, as a half-open range.
#[inline]
pub(crate) fn valid_range(
    out_len: usize,
    in_len: usize,
    stride: usize,
    offset: isize,
) -> (usize, usize) {
    // first o with o*stride + offset >= 0
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) as usize).div_ceil(stride)
    };
    // last o with o*stride + offset <= in_len - 1
    let last = in_len as isize - 1 - offset;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(out_len)
    };
    (lo.min(hi), hi)
}

/// Which x86 SIMD kernels run: those the build enables (`-C target-cpu=native`, `-C
/// target-feature=+avx512f,…`), decided at compile time; with the crate's `std` feature also
/// those the CPU reports at run time (`is_x86_feature_detected!`, cached by `std`), so a
/// default build runs the AVX-512 and AVX2 kernels on a CPU that has them. Every path of a
/// kernel computes the same values as the one the build would pick with the feature
/// enabled, so detection changes speed, not results.
#[cfg(target_arch = "x86_64")]
pub(crate) mod cpu {
    macro_rules! detect {
        ($(#[$doc:meta])* $name:ident: $($feature:tt),+) => {
            $(#[$doc])*
            #[inline]
            pub(crate) fn $name() -> bool {
                if cfg!(all($(target_feature = $feature),+)) {
                    return true;
                }
                #[cfg(feature = "std")]
                {
                    $(std::is_x86_feature_detected!($feature))&&+
                }
                #[cfg(not(feature = "std"))]
                {
                    false
                }
            }
        };
    }
    detect!(
        /// AVX-512F.
        avx512f: "avx512f"
    );
    detect!(
        /// AVX-512F and AVX-512BW.
        avx512bw: "avx512f", "avx512bw"
    );
    detect!(
        /// AVX2 and FMA.
        avx2_fma: "avx2", "fma"
    );
    detect!(
        /// AVX2.
        avx2: "avx2"
    );
}

/// A deterministic xorshift32 generator for the kernels' randomised tests: `next(n)` is a
/// value in `0..n`.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u32) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize % n
    }
}

/// For the kernels' randomised tests: the window of these kernel, stride, dilation and
/// padding (`[top, left, bottom, right]`) sizes on an `in_h × in_w` input, its output size by
/// ONNX's formula.
#[cfg(test)]
pub(crate) fn window(
    (in_h, in_w): (usize, usize),
    (k_h, k_w): (usize, usize),
    (stride_h, stride_w): (usize, usize),
    (dil_h, dil_w): (usize, usize),
    [pad_top, pad_left, pad_bottom, pad_right]: [usize; 4],
) -> Window2d {
    Window2d {
        in_h,
        in_w,
        out_h: (in_h + pad_top + pad_bottom - dil_h * (k_h - 1) - 1) / stride_h + 1,
        out_w: (in_w + pad_left + pad_right - dil_w * (k_w - 1) - 1) / stride_w + 1,
        k_h,
        k_w,
        stride_h,
        stride_w,
        dil_h,
        dil_w,
        pad_top,
        pad_left,
        pad_bottom,
        pad_right,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_bounds() {
        assert_eq!(valid_range(4, 4, 1, -1), (1, 4));
        assert_eq!(valid_range(4, 4, 1, 1), (0, 3));
        assert_eq!(valid_range(3, 5, 2, 0), (0, 3));
        assert_eq!(valid_range(2, 1, 1, 3), (0, 0));
        // a tap left of a 1-wide input with a wide pad: empty, and no negative start
        assert_eq!(valid_range(1, 1, 1, -5), (1, 1));
    }
}
