//! Integer requantisation: scaling an int32 accumulator by a real factor with integer
//! arithmetic only, as TFLite Micro and CMSIS-NN do, so int8 kernels need no float in their
//! inner loops.
//!
//! A real multiplier `r` (for a conv: `input_scale * weight_scale / output_scale`) is stored
//! as a Q31 fixed-point `multiplier` in [2^30, 2^31) and a power-of-two `shift`, with
//! `r ≈ multiplier · 2^(shift − 31)` ([`Requant::from_real`], done at compile time). Applying it
//! ([`Requant::apply`]) is a saturating rounding doubling high multiply (ties toward +∞)
//! followed by a rounding right shift (ties away from zero), exactly TFLite's reference
//! `MultiplyByQuantizedMultiplier`: the result is within 1 of the exact product and equals it
//! whenever the product is an integer.

/// A real multiplier in fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// Q31 mantissa in [2^30, 2^31), or 0 for a zero multiplier.
    pub multiplier: i32,
    /// Power of two: positive shifts left, negative shifts right.
    pub shift: i32,
}

impl Requant {
    /// The fixed-point form of `real` (≥ 0). Multipliers below 2^-31 become zero.
    pub fn from_real(real: f64) -> Requant {
        assert!(
            real >= 0.0 && real.is_finite(),
            "requantisation multiplier {real}"
        );
        if real == 0.0 {
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        }
        // real = q · 2^shift with q in [0.5, 1) (frexp), without libm.
        let bits = real.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let (q, mut shift) = if exp == 0 {
            // Subnormal: far below 2^-31.
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        } else {
            let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
            (mantissa, exp - 1022)
        };
        let mut fixed = round_half_away(q * (1u64 << 31) as f64) as i64;
        if fixed == 1 << 31 {
            fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        }
        assert!(shift <= 30, "requantisation multiplier {real} too large");
        Requant {
            multiplier: fixed as i32,
            shift,
        }
    }

    /// `x · real` rounded as TFLite rounds it (see the module docs), saturating at the i32
    /// range.
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        let (left, right) = if self.shift > 0 {
            (self.shift, 0)
        } else {
            (0, -self.shift)
        };
        let x = x.saturating_mul(1 << left);
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x, self.multiplier),
            right,
        )
    }
}

/// Rounds half away from zero (f64::round without std).
fn round_half_away(x: f64) -> f64 {
    let t = x as i64 as f64; // truncation; |x| < 2^63 here
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// `round(a · b / 2^31)` with ties toward +∞ (gemmlowp's); the one overflowing case saturates.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `round(x / 2^exponent)`, half away from zero, for `exponent` in 0..=31.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// Requantises an accumulator to int8: `clamp(round(acc · real) + zero_point, lo, hi)`, where
/// `lo..=hi` is the int8 range narrowed by a fused activation (ReLU: `zero_point..=127`).
#[inline]
pub fn requantize(acc: i32, r: Requant, zero_point: i32, lo: i8, hi: i8) -> i8 {
    r.apply(acc)
        .saturating_add(zero_point)
        .clamp(i32::from(lo), i32::from(hi)) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float answer, rounded half away from zero.
    fn reference(x: i32, real: f64) -> i64 {
        round_half_away(f64::from(x) * real) as i64
    }

    #[test]
    fn matches_float_within_one_and_rounds_ties_as_tflite() {
        let reals = [
            0.5,
            0.25,
            0.000_123_4,
            0.003_921_5,
            0.75,
            1.0,
            1.5,
            3.999,
            0.1,
            1e-9,
        ];
        let xs = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            127,
            -128,
            1000,
            -1000,
            65_535,
            -65_536,
            1 << 20,
            -(1 << 20),
            123_456_789,
        ];
        for &real in &reals {
            let r = Requant::from_real(real);
            if real >= 2f64.powi(-31) {
                assert!(
                    (1 << 30..=i32::MAX).contains(&r.multiplier),
                    "{real}: {r:?}"
                );
            }
            for &x in &xs {
                let got = i64::from(r.apply(x));
                let want = reference(x, real);
                assert!((got - want).abs() <= 1, "{x} × {real}: {got} vs {want}");
            }
        }
        // Ties, as TFLite: the doubling high multiply rounds them toward +∞ ...
        let half = Requant::from_real(0.5);
        assert_eq!((half.apply(3), half.apply(-3)), (2, -1));
        assert_eq!((half.apply(5), half.apply(-5)), (3, -2));
        // ... and the right shift away from zero.
        let quarter = Requant::from_real(0.25);
        assert_eq!((quarter.apply(6), quarter.apply(-6)), (2, -2));
        // Double rounding: 7 / 16 = 0.4375 goes 3.5 → 4 in the multiply, then 0.5 → 1.
        assert_eq!(Requant::from_real(1.0 / 16.0).apply(7), 1);
    }

    #[test]
    fn integer_products_are_exact() {
        for k in -12..10 {
            let r = Requant::from_real(2f64.powi(k));
            assert_eq!(r.multiplier, 1 << 30);
            for x in [-(1 << 12), -7 << 12, 0, 3 << 12, 1 << 12] {
                assert_eq!(
                    i64::from(r.apply(x)),
                    reference(x, 2f64.powi(k)),
                    "{x} × 2^{k}"
                );
            }
        }
        let r = Requant::from_real(0.75);
        assert_eq!((r.apply(4), r.apply(-4), r.apply(400)), (3, -3, 300));
    }

    #[test]
    fn saturation_and_zero_points() {
        let r = Requant::from_real(1.0);
        // int8 saturation after the zero point, negative zero points included.
        assert_eq!(requantize(500, r, 0, -128, 127), 127);
        assert_eq!(requantize(-500, r, 0, -128, 127), -128);
        assert_eq!(requantize(10, r, -128, -128, 127), -118);
        assert_eq!(requantize(-10, r, -5, -128, 127), -15);
        assert_eq!(requantize(-10, r, -5, -5, 127), -5); // a fused ReLU clamps at the zero point
                                                         // i32 saturation: a large left shift and the one overflowing doubling multiply.
                                                         // The left shift saturates instead of wrapping: a huge product stays huge and keeps
                                                         // its sign.
        let big = Requant::from_real(1000.0);
        let top = saturating_rounding_doubling_high_mul(i32::MAX, big.multiplier);
        assert_eq!(big.apply(i32::MAX), top);
        assert_eq!(big.apply(1 << 30), top);
        assert!(big.apply(i32::MIN) < -(1 << 30));
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        // Zero and vanishing multipliers.
        assert_eq!(Requant::from_real(0.0).apply(123_456), 0);
        assert_eq!(Requant::from_real(1e-12).apply(i32::MAX), 0);
    }

    #[test]
    fn rounding_divide_by_power_of_two() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 2), 1);
        assert_eq!(rounding_divide_by_pot(6, 2), 2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(17, 0), 17);
    }
}
