//! Unary functions, applied standalone or fused on the way out of another kernel.

/// A unary elementwise function.
///
/// Producers (conv, matmul, pools, binary ops, ...) carry one and apply it to every value
/// they write, so a fused `Relu` or `Clip` costs no extra pass and no extra buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`
    Identity,
    /// `min(max(x, min), max)`; `Relu` is `Clip { min: 0, max: inf }`, ReLU6 `{ 0, 6 }`.
    Clip {
        /// Lower bound (may be `-inf`).
        min: f32,
        /// Upper bound (may be `inf`).
        max: f32,
    },
    /// `clip(x * scale + shift, min, max)`: covers HardSigmoid and scalar affine maps.
    AffineClip {
        /// Multiplier.
        scale: f32,
        /// Offset added after scaling.
        shift: f32,
        /// Lower bound (may be `-inf`).
        min: f32,
        /// Upper bound (may be `inf`).
        max: f32,
    },
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `LeakyRelu { alpha }` then `Clip { min, max }`: a Keras export's `LeakyRelu` followed by
    /// `Max(x, c)` (and `Min`) with a constant, as one epilogue.
    LeakyReluClip {
        /// Slope for negative inputs.
        alpha: f32,
        /// Lower bound (may be `-inf`).
        min: f32,
        /// Upper bound (may be `inf`).
        max: f32,
    },
    /// `scale · x` if `x > 0`, else `scale · alpha · (exp(x) − 1)`: ONNX Elu (`scale` 1) and
    /// Selu (`scale` = gamma).
    Elu {
        /// Multiplier of `exp(x) − 1` for non-positive inputs.
        alpha: f32,
        /// Multiplier of the whole.
        scale: f32,
    },
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `tanh(x)`
    Tanh,
    /// `x * clip(x / 6 + 1/2, 0, 1)`
    HardSwish,
    /// `x · clip(x · scale + shift, min, max)`: a map times a clipped affine function of
    /// itself, as exporters spell HardSwish (`x · HardSigmoid(x)`, `x · relu6(x + 3) / 6`)
    /// with other constants than [`HardSwish`](Self::HardSwish)'s.
    GatedClip {
        /// Multiplier inside the clip.
        scale: f32,
        /// Offset inside the clip.
        shift: f32,
        /// Lower bound of the gate (may be `-inf`).
        min: f32,
        /// Upper bound of the gate (may be `inf`).
        max: f32,
    },
    /// `x · sigmoid(x)` (SiLU, Swish), as exporters spell it: `Mul(x, Sigmoid(x))`.
    Silu,
    /// `exp(x)`
    Exp,
    /// `ln(x)`
    Ln,
    /// `|x|`
    Abs,
    /// `sqrt(x)`
    Sqrt,
    /// `1 / x`
    Recip,
    /// The Gauss error function.
    Erf,
    /// `1 / sqrt(x)`
    Rsqrt,
    /// `x · x` (ONNX `Pow` with exponent 2).
    Square,
}

impl Activation {
    /// ReLU.
    pub const RELU: Activation = Activation::Clip {
        min: 0.0,
        max: f32::INFINITY,
    };

    /// Applies the function to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Clip { min, max } => clamp(x, min, max),
            Activation::AffineClip {
                scale,
                shift,
                min,
                max,
            } => clamp(x * scale + shift, min, max),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::LeakyReluClip { alpha, min, max } => {
                clamp(if x >= 0.0 { x } else { alpha * x }, min, max)
            }
            Activation::Elu { alpha, scale } => {
                if x > 0.0 {
                    scale * x
                } else {
                    scale * (alpha * libm::expm1f(x))
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + libm::expf(-x)),
            Activation::Tanh => libm::tanhf(x),
            Activation::HardSwish => x * clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0),
            Activation::GatedClip {
                scale,
                shift,
                min,
                max,
            } => x * clamp(x * scale + shift, min, max),
            Activation::Silu => x / (1.0 + libm::expf(-x)),
            Activation::Exp => libm::expf(x),
            Activation::Ln => libm::logf(x),
            Activation::Abs => libm::fabsf(x),
            Activation::Sqrt => libm::sqrtf(x),
            Activation::Recip => 1.0 / x,
            Activation::Erf => libm::erff(x),
            Activation::Rsqrt => 1.0 / libm::sqrtf(x),
            Activation::Square => x * x,
        }
    }

    /// `xs[i] = self(f(xs[i]))` for every element, the function chosen once (as
    /// [`apply_slice`](Self::apply_slice)), fused with the step before it.
    #[inline(always)]
    pub(crate) fn map_slice(self, xs: &mut [f32], f: impl Fn(f32) -> f32) {
        match self {
            Activation::Identity => {
                for x in xs {
                    *x = f(*x);
                }
            }
            Activation::Clip { min, max } => {
                for x in xs {
                    *x = clamp(f(*x), min, max);
                }
            }
            _ => {
                for x in xs {
                    *x = self.apply(f(*x));
                }
            }
        }
    }

    /// Applies the function to every element of `xs`, in place.
    #[inline]
    pub fn apply_slice(self, xs: &mut [f32]) {
        // The function chosen once, not per element (a clamp loop vectorises).
        match self {
            Activation::Identity => {}
            Activation::Clip { min, max } => {
                for x in xs {
                    *x = clamp(*x, min, max);
                }
            }
            _ => {
                for x in xs {
                    *x = self.apply(*x);
                }
            }
        }
    }
}

/// `min(max(x, lo), hi)` as ONNX Clip defines it (a NaN input stays NaN).
#[inline(always)]
pub(crate) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x < lo { lo } else { x };
    if y > hi {
        hi
    } else {
        y
    }
}

/// Standalone unary op over `len` contiguous elements: `output[i] = act(input[i])`.
pub fn unary(act: Activation, input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len());
    for (o, &x) in output.iter_mut().zip(input) {
        *o = act.apply(x);
    }
}

/// In-place variant of [`unary`].
pub fn unary_in_place(act: Activation, data: &mut [f32]) {
    act.apply_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_matches_out_of_place() {
        let x: [f32; 16] = core::array::from_fn(|i| (i as f32 - 7.5) * 0.4);
        for act in [
            Activation::RELU,
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::HardSwish,
            Activation::GatedClip {
                scale: 1.0,
                shift: 3.0,
                min: 0.0,
                max: 6.0,
            },
            Activation::Silu,
            Activation::Abs,
        ] {
            let mut want = [0.0; 16];
            unary(act, &x, &mut want);
            let mut io = x;
            unary_in_place(act, &mut io);
            assert_eq!(io, want, "{act:?}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(Activation::RELU.apply(-2.0), 0.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply(7.5), 6.0);
        assert_eq!(Activation::LeakyRelu { alpha: 0.1 }.apply(-2.0), -0.2);
        let clipped = Activation::LeakyReluClip {
            alpha: 0.1,
            min: -0.15,
            max: 1.0,
        };
        assert_eq!(clipped.apply(-2.0), -0.15);
        assert_eq!(clipped.apply(-1.0), -0.1);
        assert_eq!(clipped.apply(3.0), 1.0);
        assert!((Activation::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(Activation::HardSwish.apply(-4.0), 0.0);
        assert_eq!(Activation::HardSwish.apply(4.0), 4.0);
        let gated = Activation::GatedClip {
            scale: 1.0,
            shift: 3.0,
            min: 0.0,
            max: 6.0,
        };
        assert_eq!(gated.apply(-4.0), 0.0);
        assert_eq!(gated.apply(1.0), 4.0);
        assert_eq!(gated.apply(4.0), 24.0);
        assert_eq!(Activation::Silu.apply(0.0), 0.0);
        assert!((Activation::Silu.apply(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        let hs = Activation::AffineClip {
            scale: 0.2,
            shift: 0.5,
            min: 0.0,
            max: 1.0,
        };
        assert_eq!(hs.apply(10.0), 1.0);
        assert!((hs.apply(1.0) - 0.7).abs() < 1e-7);
    }
}
