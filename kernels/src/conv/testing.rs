//! Helpers of the f32 convolution tests: a naive reference, random operands, and whether
//! the tiled kernel runs fused multiply-adds on this machine.

extern crate std;

use super::*;
use std::vec;
use std::vec::Vec;

/// Random operands of `p` (values in ±1.37, drawn input, weights, bias in that order),
/// the reference kernel's outputs, and each output's sum of |w·x| (the scale a fused or
/// reordered sum's rounding is bounded by).
pub(crate) struct Operands {
    pub(crate) x: Vec<f32>,
    pub(crate) wt: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) want: Vec<f32>,
    pub(crate) abs: Vec<f32>,
}

pub(crate) fn operands(p: &Conv2d, next: &mut impl FnMut(usize) -> usize) -> Operands {
    let w = &p.window;
    let mut value = |_| (next(2001) as f32 - 1000.0) * 1.37e-3;
    let x: Vec<f32> = (0..p.batch * p.in_c * w.in_h * w.in_w)
        .map(&mut value)
        .collect();
    let taps = p.in_c / p.groups * w.k_h * w.k_w;
    let wt: Vec<f32> = (0..p.out_c * taps).map(&mut value).collect();
    let b: Vec<f32> = (0..p.out_c).map(&mut value).collect();
    let mut want = vec![0.0; p.batch * p.out_c * w.out_h * w.out_w];
    conv2d(p, &x, &wt, Some(&b), &mut want);
    let plain = Conv2d {
        act: Activation::Identity,
        ..*p
    };
    let magnitudes = |v: &[f32]| -> Vec<f32> { v.iter().map(|v| v.abs()).collect() };
    let mut abs = vec![0.0; want.len()];
    let (xa, wa, ba) = (magnitudes(&x), magnitudes(&wt), magnitudes(&b));
    conv2d(&plain, &xa, &wa, Some(&ba), &mut abs);
    Operands {
        x,
        wt,
        b,
        want,
        abs,
    }
}

/// Whether [`conv2d_tiled`] runs fused multiply-adds here: the x86 FMA tiles, the
/// AVX-512 kernels (built in, or detected with the `std` feature), or the AArch64 NEON
/// flattened kernel.
pub(crate) fn fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512f() {
        return true;
    }
    cfg!(any(
        all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ),
        target_arch = "aarch64"
    ))
}

/// TFLite's fixed-point factors `fp` as the fast int8 kernels take them: the output zero
/// point of `p` in each scale's half unit (`Q31::with_zero`), and `p` with a zero point of
/// 0 (the fast kernels then add none).
pub(crate) fn folded(
    p: &ConvI8,
    fp: &[crate::quant::FixedPoint],
) -> (ConvI8, Vec<crate::scale::Q31>) {
    let q31 = fp
        .iter()
        .map(|&f| {
            let q = crate::scale::Q31::new(f).expect("a factor below one half");
            q.with_zero(p.output_zero).expect("a zero point that folds")
        })
        .collect();
    let pz = ConvI8 {
        output_zero: 0,
        ..*p
    };
    (pz, q31)
}
