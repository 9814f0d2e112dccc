//! The per-channel scales the fast int8 kernels (tiled, depthwise, fully connected) take, in
//! the form their inner loops apply: ONNX's float32 scale (`f32`, [`Requant::scale`]), or
//! TFLite's fixed point ([`FixedPoint`], [`TwoRoundings`](crate::quant::TwoRoundings)) decoded so that the Cortex-M
//! assembly applies it in four or five instructions ([`Q31Once`], [`Q31Twice`]).
//!
//! The fixed-point forms hold for factors below one half (a right shift, which every
//! convolution and fully connected layer of a trained model has: the product of two scales
//! over a third) and accumulators below 2^30 in magnitude: then the accumulator doubled
//! fits in 32 bits and `SMMULR` (`SMMUL`) of it and the multiplier is gemmlowp's doubling
//! high multiply (its floor), with the shift's rounding one addition away. The compiler
//! bounds every channel's accumulator from its weights and bias before it picks them
//! (`Q31::MAX_ACC`); otherwise the reference kernel stays.
//!
//! [`Requant::scale`]: crate::quant::Requant::scale

use crate::quant::{requantize_scaled, FixedPoint, Rescale};

/// Which arithmetic a [`ChannelScale`] is: what the assembly paths branch on (at compile
/// time: every kernel is monomorphised per scale type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleKind {
    /// `f32`: ONNX's float32 product, rounded half to even.
    Float,
    /// [`Q31Twice`]: TFLite's two roundings (its convolutions).
    Q31Twice,
    /// [`Q31Once`]: TFLite's single rounding (its fully connected layers).
    Q31Once,
}

/// One output channel's scale as a fast kernel applies it to the channel's int32 sums.
pub trait ChannelScale: Copy {
    /// The arithmetic, for the assembly paths.
    const KIND: ScaleKind;

    /// `clamp(rescaled(acc) + zero_point, lo, hi)`.
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8;

    /// Two sums of the channel at once (on Cortex-M4F the float scale's paired sequence).
    #[inline(always)]
    fn requantize_pair(self, a0: i32, a1: i32, zero_point: i32, lo: i8, hi: i8) -> [i8; 2] {
        [
            self.requantize(a0, zero_point, lo, hi),
            self.requantize(a1, zero_point, lo, hi),
        ]
    }

    /// The scales as float32 when they are: the x86-64 vector paths take only those.
    #[inline(always)]
    fn floats(_scales: &[Self]) -> Option<&[f32]> {
        None
    }

    /// The three words the Cortex-M depthwise rows load per channel: the float32 bits (and
    /// two unused zeros), or a [`Q31`]'s multiplier, half unit and exponent.
    fn words(self) -> (u32, i32, i32);
}

impl ChannelScale for f32 {
    const KIND: ScaleKind = ScaleKind::Float;

    #[inline(always)]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        requantize_scaled(acc, self, zero_point, lo, hi)
    }

    #[inline(always)]
    fn requantize_pair(self, a0: i32, a1: i32, zero_point: i32, lo: i8, hi: i8) -> [i8; 2] {
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        {
            let t = crate::quant::requantize_pair_dsp(a0, a1, self, zero_point, lo, hi);
            [t as i8, (t >> 16) as i8]
        }
        #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
        {
            let q = |a: i32| requantize_scaled(a, self, zero_point, lo, hi);
            [q(a0), q(a1)]
        }
    }

    #[inline(always)]
    fn floats(scales: &[f32]) -> Option<&[f32]> {
        Some(scales)
    }

    #[inline(always)]
    fn words(self) -> (u32, i32, i32) {
        (self.to_bits(), 0, 0)
    }
}

/// A [`FixedPoint`] factor below one half, decoded for the fast kernels: the multiplier and
/// the half unit it rounds with (`2^(exponent − 1)`, plus the output zero point shifted up
/// when [`Q31::with_zero`] folds it in). Two words, in this order, which the assembly loads:
/// eight bytes a channel, as TFLite's multiplier and shift. The right shift (`exponent`, 1 to
/// 31) is not stored: the half unit is `2^(exponent − 1)` times an odd number (`1 + 2·zero`),
/// so its trailing zeros are `exponent − 1` ([`Q31::exponent`]; on the Cortex-M4 `RBIT` and
/// `CLZ`).
///
/// ```
/// use microarena_kernels::quant::FixedPoint;
/// use microarena_kernels::scale::Q31;
/// let f = FixedPoint::from_real(0.0123);
/// let q = Q31::new(f).unwrap();
/// assert_eq!((q.multiplier, q.exponent(), q.round), (f.multiplier, 6, 32));
/// assert_eq!(q.with_zero(-5).unwrap().exponent(), 6);
/// assert_eq!(Q31::new(FixedPoint::from_real(0.75)), None); // not below one half
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q31 {
    /// The factor's mantissa in Q31, in [2^30, 2^31), or 0.
    pub multiplier: i32,
    /// `2^(exponent − 1)`, plus `zero · 2^exponent` with a zero point folded in
    /// ([`Q31::with_zero`]): never 0.
    pub round: i32,
}

impl Q31 {
    /// The largest accumulator magnitude for which the fast forms equal [`FixedPoint::apply`]
    /// and [`TwoRoundings::apply`](crate::quant::TwoRoundings::apply): twice it still fits in an `i32`.
    pub const MAX_ACC: i64 = (1 << 30) - 1;

    /// `f` decoded, if it is below one half (`shift` ≤ −1) or zero; `None` otherwise.
    pub const fn new(f: FixedPoint) -> Option<Q31> {
        if f.multiplier == 0 {
            // Every product is 0: any right shift gives 0.
            return Some(Q31 {
                multiplier: 0,
                round: 1,
            });
        }
        if f.multiplier < 0 || f.shift > -1 || f.shift < -31 {
            return None;
        }
        let exponent = -f.shift;
        Some(Q31 {
            multiplier: f.multiplier,
            round: 1 << (exponent - 1),
        })
    }

    /// The largest exponent [`Q31::with_zero`] folds a zero point into: `|zero| · 2^exponent`
    /// plus the half unit stays below 2^30, so that with a rescaled sum below 2^30 (an
    /// accumulator within [`Q31::MAX_ACC`]) the addition cannot overflow.
    pub const MAX_ZERO_EXPONENT: i32 = 22;

    /// `self` with the output zero point `zero` (−128 to 127) in its half unit: `(y + round +
    /// zero · 2^exponent) >> exponent` is `((y + round) >> exponent) + zero` exactly, so the
    /// fast kernels add no zero point (on Cortex-M4 a `QADD` less per output). The kernels
    /// then take an output zero point of 0 ([`ConvI8::output_zero`]). `None` for an exponent
    /// above [`Q31::MAX_ZERO_EXPONENT`] or a zero point outside the int8 range.
    ///
    /// ```
    /// use microarena_kernels::quant::FixedPoint;
    /// use microarena_kernels::scale::{Q31, Q31Twice};
    /// let q = Q31::new(FixedPoint::from_real(0.0123)).unwrap();
    /// let z = q.with_zero(-5).unwrap();
    /// for acc in [-9000, -416, 0, 81, 1_000_000] {
    ///     assert_eq!(Q31Twice(z).apply(acc), Q31Twice(q).apply(acc) - 5);
    /// }
    /// ```
    ///
    /// [`ConvI8::output_zero`]: crate::conv::ConvI8::output_zero
    pub const fn with_zero(self, zero: i32) -> Option<Q31> {
        let exponent = self.exponent();
        if exponent > Q31::MAX_ZERO_EXPONENT || zero < -128 || zero > 127 {
            return None;
        }
        Some(Q31 {
            round: self.round + zero * (1 << exponent),
            ..self
        })
    }

    /// The right shift after the multiply, 1 to 31: one more than the half unit's trailing
    /// zeros (an odd multiple of `2^(exponent − 1)`).
    #[inline(always)]
    pub const fn exponent(self) -> i32 {
        self.round.trailing_zeros() as i32 + 1
    }

    #[inline(always)]
    fn words(self) -> (u32, i32, i32) {
        (self.multiplier as u32, self.round, self.exponent())
    }

    /// `(2·acc · multiplier) >> 32`, rounded to nearest with ties up (`SMMULR`): gemmlowp's
    /// doubling high multiply for |acc| ≤ [`Q31::MAX_ACC`].
    #[inline(always)]
    fn high_mul_rounded(self, acc: i32) -> i32 {
        ((i64::from(acc << 1) * i64::from(self.multiplier) + (1 << 31)) >> 32) as i32
    }

    /// `(2·acc · multiplier) >> 32`, the floor (`SMMUL`).
    #[inline(always)]
    fn high_mul(self, acc: i32) -> i32 {
        ((i64::from(acc << 1) * i64::from(self.multiplier)) >> 32) as i32
    }
}

/// [`TwoRoundings`](crate::quant::TwoRoundings) of a [`Q31`] factor: `SMMULR` of the doubled accumulator, then the right
/// shift rounded half away from zero as `(y + (y >> 31) + round) >> exponent` (a negative
/// `y` one lower: its tie goes down). Equal to `TwoRoundings` for |acc| ≤ [`Q31::MAX_ACC`].
///
/// ```
/// use microarena_kernels::quant::{FixedPoint, TwoRoundings};
/// use microarena_kernels::scale::{Q31, Q31Twice};
/// let f = FixedPoint { multiplier: 1_185_020_362, shift: -2 };
/// let q = Q31Twice(Q31::new(f).unwrap());
/// for acc in [416, -416, 1_000_000, -7] {
///     assert_eq!(q.apply(acc), TwoRoundings(f).apply(acc));
/// }
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q31Twice(pub Q31);

impl Q31Twice {
    /// The rescaled accumulator (before the zero point, or with it when folded in by
    /// [`Q31::with_zero`]).
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let q = self.0;
        let y = q.high_mul_rounded(acc);
        (y + (y >> 31) + q.round) >> q.exponent()
    }
}

impl ChannelScale for Q31Twice {
    const KIND: ScaleKind = ScaleKind::Q31Twice;

    #[inline(always)]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        self.apply(acc)
            .saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }

    #[inline(always)]
    fn words(self) -> (u32, i32, i32) {
        self.0.words()
    }
}

/// [`FixedPoint`] (one rounding) of a [`Q31`] factor: `SMMUL` of the doubled accumulator (the
/// floor of `acc · multiplier / 2^31`), then `(y + round) >> exponent`, which rounds the exact
/// product once (the floor loses nothing the second shift keeps). Equal to
/// `FixedPoint::apply` for |acc| ≤ [`Q31::MAX_ACC`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q31Once(pub Q31);

impl Q31Once {
    /// The rescaled accumulator (before the zero point, or with it when folded in by
    /// [`Q31::with_zero`]).
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let q = self.0;
        (q.high_mul(acc) + q.round) >> q.exponent()
    }
}

impl ChannelScale for Q31Once {
    const KIND: ScaleKind = ScaleKind::Q31Once;

    #[inline(always)]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        self.apply(acc)
            .saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }

    #[inline(always)]
    fn words(self) -> (u32, i32, i32) {
        self.0.words()
    }
}

// The reference kernels take the fast forms too (the compiler's host runs, any target).
impl Rescale for Q31Twice {
    #[inline(always)]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        ChannelScale::requantize(self, acc, zero_point, lo, hi)
    }
}

impl Rescale for Q31Once {
    #[inline(always)]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        ChannelScale::requantize(self, acc, zero_point, lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::TwoRoundings;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 11
    }

    /// Factors from 2^-32 to just below 1/2, and the multipliers at the ends of their range.
    fn factor(st: &mut u64) -> FixedPoint {
        match lcg(st) % 8 {
            0 => FixedPoint {
                multiplier: 1 << 30,
                shift: -((lcg(st) % 31) as i32) - 1,
            },
            1 => FixedPoint {
                multiplier: i32::MAX,
                shift: -((lcg(st) % 31) as i32) - 1,
            },
            _ => {
                let e = (lcg(st) % 31) as i32 + 1;
                let frac = 0.5 + (lcg(st) % (1 << 40)) as f64 / (1u64 << 41) as f64;
                FixedPoint::from_real(frac * (-f64::from(e)).exp2())
            }
        }
    }

    fn accumulator(st: &mut u64) -> i32 {
        let max = Q31::MAX_ACC as i32;
        match lcg(st) % 5 {
            0 => (lcg(st) % 1024) as i32 - 512,
            1 => (lcg(st) % (1 << 22)) as i32 - (1 << 21),
            2 => [max, -max, 0, 1, -1][(lcg(st) % 5) as usize],
            _ => (lcg(st) % (2 * Q31::MAX_ACC as u64 + 1)) as i32 - max,
        }
    }

    /// Two words a channel, and the exponent they do not store comes back for every shift
    /// and every zero point that can be folded in (and for a zero factor).
    #[test]
    fn the_exponent_is_recovered_from_the_half_unit() {
        assert_eq!(core::mem::size_of::<Q31>(), 8);
        for shift in 1..=31 {
            let f = FixedPoint {
                multiplier: 1_500_000_000,
                shift: -shift,
            };
            let q = Q31::new(f).expect("below one half");
            assert_eq!(q.exponent(), shift);
            for zero in -128..=127 {
                match q.with_zero(zero) {
                    Some(z) => assert_eq!(z.exponent(), shift, "shift {shift} zero {zero}"),
                    None => assert!(shift > Q31::MAX_ZERO_EXPONENT),
                }
            }
        }
        let zero = Q31::new(FixedPoint {
            multiplier: 0,
            shift: 3,
        });
        assert_eq!(zero.map(Q31::exponent), Some(1));
    }

    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
    #[test]
    fn fast_forms_equal_tflite_arithmetic() {
        let mut st = 7u64;
        // Miri interprets: a sample there.
        let n = if cfg!(miri) { 2_000 } else { 300_000 };
        for _ in 0..n {
            let f = factor(&mut st);
            let Some(q) = Q31::new(f) else {
                panic!("{f:?} is below one half");
            };
            let acc = accumulator(&mut st);
            assert_eq!(
                Q31Twice(q).apply(acc),
                TwoRoundings(f).apply(acc),
                "{f:?} {acc}"
            );
            assert_eq!(Q31Once(q).apply(acc), f.apply(acc), "{f:?} {acc}");
        }
    }

    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
    #[test]
    fn ties_round_as_tflite_does() {
        // Factor 2^-2 exactly: multiplier 2^30, shift −1; every accumulator ≡ 2 (mod 4) is
        // a tie of the shift, odd ones a tie of the doubling high multiply.
        let f = FixedPoint {
            multiplier: 1 << 30,
            shift: -1,
        };
        let q = Q31::new(f).unwrap();
        for acc in -4096..=4096 {
            assert_eq!(Q31Twice(q).apply(acc), TwoRoundings(f).apply(acc), "{acc}");
            assert_eq!(Q31Once(q).apply(acc), f.apply(acc), "{acc}");
        }
    }

    #[test]
    fn factors_of_one_half_or_more_are_refused() {
        for real in [0.5, 0.75, 1.0, 3.0] {
            assert_eq!(Q31::new(FixedPoint::from_real(real)), None, "{real}");
        }
        let zero = Q31::new(FixedPoint::from_real(0.0)).unwrap();
        assert_eq!(
            (Q31Twice(zero).apply(12345), Q31Once(zero).apply(-9)),
            (0, 0)
        );
    }
}
