//! Integer requantisation: scaling an int32 accumulator by a real factor with integer
//! arithmetic only, so int8 kernels need no float (and no FPU) in their inner loops.
//!
//! The result is bit-exact with onnxruntime, the reference of quantized ONNX models: its
//! kernels requantise in float32 (`round_half_even(f32(acc) · scale)`, MLAS
//! `MlasRequantizeOutput`) with `scale` itself computed in float32 (for a convolution
//! `x_scale · w_scale[c] / y_scale`). [`Requant`] stores that float32 scale as its 24-bit
//! mantissa and a power of two ([`Requant::from_f32`], at compile time), and
//! [`Requant::apply`] replays the float32 arithmetic with integers: `f32(acc)` is `acc`
//! rounded to 24 significant bits, the float product is the exact integer product rounded to
//! 24 significant bits, and the final rounding is to nearest, ties to even. Each rounding is
//! the IEEE one, so the integers match the float computation exactly (not just within one):
//! a model agrees with onnxruntime step for step instead of drifting apart layer by layer.
//! On a Cortex-M this is one 32×32→64 multiply, two leading-zero counts and a few shifts.

/// A non-negative float32 scale as `multiplier · 2^shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// The float32 mantissa with its implicit bit, in [2^23, 2^24), or 0 for a zero scale.
    pub multiplier: i32,
    /// Power of two of the mantissa's unit.
    pub shift: i32,
}

impl Requant {
    /// The scale `real` rounded to float32 (as onnxruntime holds it). Use [`Requant::from_f32`]
    /// when the scale is the result of float32 arithmetic, to round as that arithmetic does.
    pub fn from_real(real: f64) -> Requant {
        Requant::from_f32(real as f32)
    }

    /// The float32 scale `scale` (≥ 0, finite).
    pub fn from_f32(scale: f32) -> Requant {
        assert!(
            scale >= 0.0 && scale.is_finite(),
            "requantisation scale {scale}"
        );
        let bits = scale.to_bits();
        let exp = ((bits >> 23) & 0xff) as i32;
        let frac = (bits & 0x7f_ffff) as i32;
        if exp == 0 {
            // Zero or subnormal: a subnormal mantissa has no implicit bit.
            return Requant {
                multiplier: frac,
                shift: -149,
            };
        }
        Requant {
            multiplier: frac | 1 << 23,
            shift: exp - 150,
        }
    }

    /// The scale as a float (for reports and tests).
    pub fn to_f64(self) -> f64 {
        f64::from(self.multiplier) * libm::pow(2.0, f64::from(self.shift))
    }

    /// `round_half_even(f32(x) · scale)` computed as float32 computes it, saturating at the
    /// i32 range.
    ///
    /// Targets with a hardware FPU (hard-float Arm such as Cortex-M4F/M7, x86-64, AArch64)
    /// do exactly that in float32 ([`Requant::apply_float`]); others emulate it with integers
    /// ([`Requant::apply_integer`]). The two are equal for every input (tested).
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        #[cfg(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64"))]
        {
            self.apply_float(x)
        }
        #[cfg(not(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64")))]
        {
            self.apply_integer(x)
        }
    }

    /// The scale as a float32 (the value `from_f32` was given).
    #[inline]
    pub fn scale(self) -> f32 {
        if self.multiplier < 1 << 23 {
            // Zero or subnormal: the mantissa is the whole encoding.
            return f32::from_bits(self.multiplier as u32);
        }
        f32::from_bits((((self.shift + 150) as u32) << 23) | (self.multiplier as u32 & 0x7f_ffff))
    }

    /// [`Requant::apply`] in float32 arithmetic: the product rounded by the FPU, then to an
    /// integer, ties to even.
    #[inline]
    pub fn apply_float(self, x: i32) -> i32 {
        let y = x as f32 * self.scale();
        // Adding and subtracting 2^23 rounds |y| < 2^23 to an integer in the default
        // rounding mode (to nearest, ties to even); larger floats are integers already.
        const TWO_23: f32 = 8_388_608.0;
        let m = y.abs();
        let r = if m < TWO_23 { (m + TWO_23) - TWO_23 } else { m };
        // `as` saturates at the i32 range, as the integer emulation does; NaN cannot occur
        // (finite scale, |x| <= 2^31).
        (if y < 0.0 { -r } else { r }) as i32
    }

    /// [`Requant::apply`] with integers only: float32's rounding of the conversion, the
    /// product and the final rounding replayed on the mantissas (for targets without an FPU).
    #[inline]
    pub fn apply_integer(self, x: i32) -> i32 {
        if self.multiplier == 0 || x == 0 {
            return 0;
        }
        // f32(x): x rounded to 24 significant bits (exact below 2^24).
        let a = round_to_bits(u64::from(x.unsigned_abs()), 24);
        // The float32 product: the exact product (< 2^56) rounded to 24 significant bits.
        let p = round_to_bits(a * self.multiplier as u64, 24);
        let m = if self.shift >= 0 {
            if self.shift >= 40 || p >> (63 - self.shift) != 0 {
                u64::MAX
            } else {
                p << self.shift
            }
        } else {
            round_shift(p, (-self.shift) as u32)
        };
        let m = m.min(1 << 31) as i64;
        let v = if x < 0 { -m } else { m };
        v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

/// TFLite's requantisation: a real factor as a Q31 multiplier and a power of two,
/// `acc · multiplier · 2^(shift − 31)` computed as the TFLite interpreter computes it
/// (`MultiplyByQuantizedMultiplier` built with `TFLITE_SINGLE_ROUNDING`, as LiteRT is; CMSIS-NN's
/// `CMSIS_NN_USE_SINGLE_ROUNDING`): the exact 64-bit product, rounded once to the nearest
/// integer, a tie up. A model converted by TFLite is bit-exact with the interpreter only with
/// this arithmetic; ONNX models keep [`Requant`] (onnxruntime's float32). (gemmlowp's older
/// two roundings, a doubling high multiply then a rounding shift, differ where the first
/// rounding lands on a half: `416 · 0.0267 = 57.389` rounds to 57 once, to 58 twice.)
///
/// ```
/// use microarena_kernels::quant::FixedPoint;
/// let f = FixedPoint::from_real(0.25);
/// assert_eq!((f.multiplier, f.shift), (1 << 30, -1));
/// assert_eq!(f.apply(100), 25);
/// assert_eq!(f.apply(-6), -1); // −1.5: a tie, up
/// assert_eq!(f.apply(6), 2); // 1.5: a tie, up
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    /// The factor's mantissa in Q31, in [2^30, 2^31), or 0.
    pub multiplier: i32,
    /// Power of two: positive shifts left before the multiply, negative right after it.
    pub shift: i32,
}

impl FixedPoint {
    /// `real` (≥ 0) as TFLite's `QuantizeMultiplier` encodes it: `frexp`, the fraction
    /// rounded to 31 bits (half away from zero), a fraction that rounds up to 1 halved;
    /// factors below 2^-31 become 0, and (single rounding) shifts above 30 are capped with
    /// the largest multiplier.
    pub fn from_real(real: f64) -> FixedPoint {
        assert!(
            real >= 0.0 && real.is_finite(),
            "requantisation factor {real}"
        );
        if real == 0.0 {
            return FixedPoint {
                multiplier: 0,
                shift: 0,
            };
        }
        let (mut q, mut shift) = frexp(real);
        q = libm::round(q * 2_147_483_648.0);
        if q == 2_147_483_648.0 {
            q /= 2.0;
            shift += 1;
        }
        if shift < -31 {
            return FixedPoint {
                multiplier: 0,
                shift: 0,
            };
        }
        if shift > 30 {
            return FixedPoint {
                multiplier: i32::MAX,
                shift: 30,
            };
        }
        FixedPoint {
            multiplier: q as i32,
            shift,
        }
    }

    /// `MultiplyByQuantizedMultiplier(x, multiplier, shift)` with one rounding: `(x ·
    /// multiplier + 2^(30 − shift)) >> (31 − shift)` in 64 bits, saturated to `i32`.
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        let total = 31 - self.shift;
        let round = 1i64 << (total - 1);
        let r = (i64::from(x) * i64::from(self.multiplier) + round) >> total;
        r.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

/// A [`FixedPoint`] applied with gemmlowp's two roundings (`MultiplyByQuantizedMultiplier`
/// without `TFLITE_SINGLE_ROUNDING`: the doubling high multiply, rounded to nearest with a
/// positive tie up and a negative one toward zero, then a rounding right shift, ties away
/// from zero), what ruy and CMSIS-NN's default build compute: the TFLite interpreter's
/// convolutions round this way, its fully connected layers once.
///
/// ```
/// use microarena_kernels::quant::{FixedPoint, TwoRoundings};
/// let f = FixedPoint { multiplier: 1_185_020_362, shift: -2 };
/// assert_eq!((f.apply(416), TwoRoundings(f).apply(416)), (57, 58));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoRoundings(pub FixedPoint);

impl TwoRoundings {
    /// gemmlowp's `MultiplyByQuantizedMultiplier(x, multiplier, shift)`. For a right shift
    /// and |x| below 2^30 (every trained convolution's factor and sum) in the form of
    /// [`Q31Twice`](crate::scale::Q31Twice): one 32 × 32 → 64-bit product, then the second
    /// rounding in two additions and a shift (a third of the general form's instructions on
    /// Cortex-M4, where the reference kernels run TFLite's layers no fast kernel takes).
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        // `Q31::new` takes the factors below one half; `Q31::MAX_ACC` bounds the sums.
        match crate::scale::Q31::new(self.0) {
            Some(q) if i64::from(x).abs() <= crate::scale::Q31::MAX_ACC => {
                crate::scale::Q31Twice(q).apply(x)
            }
            _ => self.apply_exact(x),
        }
    }

    /// [`TwoRoundings::apply`] as gemmlowp writes it, for every factor and value.
    #[inline]
    pub fn apply_exact(self, x: i32) -> i32 {
        let f = self.0;
        let left = f.shift.max(0);
        let right = (-f.shift).max(0);
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x.wrapping_mul(1 << left), f.multiplier),
            right,
        )
    }
}

impl Rescale for TwoRoundings {
    #[inline]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        self.apply(acc)
            .saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }
}

/// `x = q · 2^e` with `q` in [0.5, 1) (for `x` > 0 and finite), as C's `frexp`.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (q, e) = frexp(x * 18_446_744_073_709_551_616.0); // 2^64
        return (q, e - 64);
    }
    let q = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (q, exp - 1022)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of `2 · a · b`, rounded
/// to nearest (its nudge, then C's truncating division: a positive tie goes up, a negative
/// one toward zero); the one overflowing case (`i32::MIN`²) saturates.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // C's division truncates toward zero, as Rust's does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded half away from zero.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// How a kernel turns a channel's int32 accumulator into an int8 output: ONNX's float32
/// arithmetic ([`Requant`]) or TFLite's fixed point ([`FixedPoint`]). The reference
/// convolution and matrix product are generic over it, so one loop serves both.
pub trait Rescale: Copy {
    /// `clamp(rescaled(acc) + zero_point, lo, hi)`.
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8;
}

impl Rescale for Requant {
    #[inline]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        requantize(acc, self, zero_point, lo, hi)
    }
}

impl Rescale for FixedPoint {
    #[inline]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        self.apply(acc)
            .saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }
}

/// Division by a window's tap count, rounded half away from zero, as TFLite's int8 average
/// pooling divides the sum of its taps (`(acc ± n / 2) / n`, C's truncating division).
///
/// ```
/// use microarena_kernels::quant::{DivideRounded, Rescale};
/// assert_eq!(DivideRounded(4).requantize(10, 0, -128, 127), 3); // 2.5 → 3
/// assert_eq!(DivideRounded(4).requantize(-10, 0, -128, 127), -3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DivideRounded(pub u32);

impl Rescale for DivideRounded {
    #[inline]
    fn requantize(self, acc: i32, zero_point: i32, lo: i8, hi: i8) -> i8 {
        let n = self.0.max(1) as i32;
        let q = if acc > 0 {
            (acc + n / 2) / n
        } else {
            (acc - n / 2) / n
        };
        q.saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }
}

/// `v / 2^k` rounded to nearest, ties to even.
#[inline]
fn round_shift(v: u64, k: u32) -> u64 {
    if k == 0 {
        return v;
    }
    if k >= 64 {
        // v < 2^64 ≤ half of 2^k... only v = 2^63 at k = 64 is a tie, and it rounds to 0.
        return u64::from(k == 64 && v > 1 << 63);
    }
    let q = v >> k;
    let r = v & ((1u64 << k) - 1);
    let half = 1u64 << (k - 1);
    if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// `v` rounded to `bits` significant bits (ties to even), as a float mantissa holds it.
#[inline]
fn round_to_bits(v: u64, bits: u32) -> u64 {
    let n = 64 - v.leading_zeros();
    if n <= bits {
        v
    } else {
        let d = n - bits;
        round_shift(v, d) << d
    }
}

/// Requantises an accumulator to int8: `clamp(round(acc · real) + zero_point, lo, hi)`, where
/// `lo..=hi` is the int8 range narrowed by a fused activation (ReLU: `zero_point..=127`).
#[inline]
pub fn requantize(acc: i32, r: Requant, zero_point: i32, lo: i8, hi: i8) -> i8 {
    r.apply(acc)
        .saturating_add(zero_point)
        .clamp(i32::from(lo), i32::from(hi)) as i8
}

/// [`requantize`] with the scale given as the float32 [`Requant::scale`] (hoisted out of the
/// kernels' loops): `clamp(round_half_even(f32(acc) · scale) + zero_point, lo, hi)`, the same
/// integers for every input (tested).
///
/// With an FPU the rounding adds and subtracts 1.5 · 2^23: exact for |y| < 2^22, and beyond
/// it the result is still ±2^22 or more, which the clamp to an int8 range maps where the exact
/// rounding would — a shorter sequence than [`Requant::apply_float`]'s.
#[inline(always)]
pub fn requantize_scaled(acc: i32, scale: f32, zero_point: i32, lo: i8, hi: i8) -> i8 {
    #[cfg(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64"))]
    {
        const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
        let y = acc as f32 * scale;
        let r = ((y + MAGIC) - MAGIC) as i32;
        r.saturating_add(zero_point)
            .clamp(i32::from(lo), i32::from(hi)) as i8
    }
    #[cfg(not(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        requantize(acc, Requant::from_f32(scale), zero_point, lo, hi)
    }
}

/// [`requantize_scaled`] of sixteen accumulators at once with AVX-512F, bit for bit:
/// `acc · scale` in f32, limited to ±2^22 (every product beyond it clamps to `lo` or `hi`
/// either way), rounded to nearest even by the same `1.5 · 2^23` addition, plus the zero
/// point, clamped to `lo..=hi`; the results as `i32` lanes.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn requantize16(
    acc: core::arch::x86_64::__m512i,
    scale: f32,
    zero: i32,
    lo: i8,
    hi: i8,
) -> core::arch::x86_64::__m512i {
    use core::arch::x86_64::*;
    const MAGIC: f32 = 12_582_912.0;
    const LIMIT: f32 = 4_194_304.0;
    let y = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(scale));
    let y = _mm512_min_ps(
        _mm512_max_ps(y, _mm512_set1_ps(-LIMIT)),
        _mm512_set1_ps(LIMIT),
    );
    let m = _mm512_set1_ps(MAGIC);
    let r = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(y, m), m));
    let r = _mm512_add_epi32(r, _mm512_set1_epi32(zero));
    _mm512_min_epi32(
        _mm512_max_epi32(r, _mm512_set1_epi32(i32::from(lo))),
        _mm512_set1_epi32(i32::from(hi)),
    )
}

/// `v` sign-extended into both halfwords: the operand of the `SSUB16`/`SEL` clamp of the
/// Cortex-M requantisation paths.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
pub(crate) fn halves(v: i8) -> u32 {
    let h = u32::from(v as i16 as u16);
    h | h << 16
}

/// [`requantize_scaled`] of two accumulators with one scale on a Cortex-M4F/M7/M33 with
/// the DSP extension: the first result in the low halfword's byte, the second in the high
/// halfword's (`t as i8`, `(t >> 16) as i8`). The same integers: `VCVTR` rounds to nearest,
/// ties to even, in the default rounding mode (what adding and subtracting 1.5 · 2^23 does
/// below 2^22, and beyond it both end clamped alike), `QADD` adds the zero point saturating,
/// `SSAT` and the halfword compare-and-select (`SSUB16`/`SEL`) clamp both to `lo..=hi`:
/// 18 instructions for two outputs where the float sequence and two compare pairs take 30.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
pub fn requantize_pair_dsp(a0: i32, a1: i32, scale: f32, zero_point: i32, lo: i8, hi: i8) -> u32 {
    let (lo2, hi2) = (halves(lo), halves(hi));
    let t: u32;
    // SAFETY: register-only FPU and DSP-extension instructions (present on every target with
    // `microarena_dsp` and a hard-float ABI); s0, s1 and s2 are declared clobbered; the flags
    // (GE bits, Q) are clobbered; no memory is touched.
    unsafe {
        core::arch::asm!(
            "vmov s0, s1, {a0}, {a1}",
            "vmov s2, {scale}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            "vmul.f32 s0, s0, s2",
            "vmul.f32 s1, s1, s2",
            "vcvtr.s32.f32 s0, s0",
            "vcvtr.s32.f32 s1, s1",
            "vmov {a0}, {a1}, s0, s1",
            "qadd {a0}, {a0}, {zp}",
            "qadd {a1}, {a1}, {zp}",
            "ssat {a0}, #8, {a0}",
            "ssat {a1}, #8, {a1}",
            "pkhbt {t}, {a0}, {a1}, lsl #16",
            "ssub16 {a0}, {t}, {lo}",
            "sel {t}, {t}, {lo}",
            "ssub16 {a0}, {hi}, {t}",
            "sel {t}, {t}, {hi}",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            // A core register: `sreg` operands need a target feature stable Rust cannot name.
            scale = in(reg) scale.to_bits(),
            zp = in(reg) zero_point,
            lo = in(reg) lo2,
            hi = in(reg) hi2,
            t = out(reg) t,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            options(pure, nomem, nostack),
        );
    }
    t
}

/// `x` rounded to an integer, ties to even (`rintf` in the default rounding mode). With an
/// FPU: adding and subtracting 2^23 rounds |x| < 2^23 (larger floats, infinities and NaN are
/// returned as they are); without one, libm's bit manipulation.
#[inline]
pub(crate) fn round_ties_even(x: f32) -> f32 {
    #[cfg(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64"))]
    {
        const TWO_23: f32 = 8_388_608.0;
        let m = x.abs();
        if m < TWO_23 {
            let r = (m + TWO_23) - TWO_23;
            // `-r` keeps the sign of x, zero included (rintf(-0.3) is -0.0).
            if x.is_sign_negative() {
                -r
            } else {
                r
            }
        } else {
            x
        }
    }
    #[cfg(not(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        libm::rintf(x)
    }
}

/// Quantisation of `f32` values to int8 (ONNX `QuantizeLinear`): `y = saturate(round(x /
/// scale) + zero)`, ties to even. Runs where a float graph input enters an int8 graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantize {
    /// Scale of the int8 tensor.
    pub scale: f32,
    /// Zero point of the int8 tensor.
    pub zero: i32,
}

/// See [`Quantize`].
pub fn quantize(p: &Quantize, input: &[f32], output: &mut [i8]) {
    assert!(input.len() >= output.len());
    #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
    if !output.is_empty() {
        // The same integers in 9 instructions per value instead of about 45: `VDIV` as `/`,
        // `VCVTR` rounds to nearest, ties to even (the default rounding mode), saturating at
        // the i32 range, NaN to 0; `QADD` adds the zero point saturating and `SSAT` clamps
        // to the int8 range — what rounding, adding and clamping in float do, NaN included
        // (it becomes the zero point, clamped).
        let end = output.as_mut_ptr_range().end;
        // SAFETY: reads input[..output.len()] (asserted) and writes output[..], one value
        // each per pass until the output pointer reaches `end` (the loop runs len > 0
        // times); VLDM needs 4-aligned f32s, which `input` is. FPU and DSP instructions; s0
        // and s1 and the flags are clobbered; no stack.
        unsafe {
            core::arch::asm!(
                "vmov s1, {scale}",
                "2:",
                "vldmia {pi}!, {{s0}}",
                "vdiv.f32 s0, s0, s1",
                "vcvtr.s32.f32 s0, s0",
                "vmov {t}, s0",
                "qadd {t}, {t}, {zp}",
                "ssat {t}, #8, {t}",
                "strb {t}, [{po}], #1",
                "cmp {po}, {end}",
                "bne 2b",
                scale = in(reg) p.scale.to_bits(),
                pi = inout(reg) input.as_ptr() => _,
                po = inout(reg) output.as_mut_ptr() => _,
                end = in(reg) end,
                zp = in(reg) p.zero,
                t = out(reg) _,
                out("s0") _,
                out("s1") _,
                options(nostack),
            );
        }
        return;
    }
    for (o, &x) in output.iter_mut().zip(input) {
        // Saturate in float first: `as i32` of a huge or NaN value is defined but not what
        // ONNX says (NaN quantises to the zero point here, as in onnxruntime).
        let q = round_ties_even(x / p.scale) + p.zero as f32;
        *o = if q.is_nan() {
            p.zero.clamp(-128, 127) as i8
        } else {
            q.clamp(-128.0, 127.0) as i8
        };
    }
}

/// Dequantisation of int8 values to `f32` (ONNX `DequantizeLinear`): `y = (x − zero) · scale`.
/// Runs where an int8 graph hands a float output back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dequantize {
    /// Scale of the int8 tensor.
    pub scale: f32,
    /// Zero point of the int8 tensor.
    pub zero: i32,
}

/// See [`Dequantize`].
pub fn dequantize(p: &Dequantize, input: &[i8], output: &mut [f32]) {
    assert!(input.len() >= output.len());
    for (o, &x) in output.iter_mut().zip(input) {
        *o = (i32::from(x) - p.zero) as f32 * p.scale;
    }
}

/// An int8 → int8 change of scale and zero point, with an optional clamp: what a
/// `DequantizeLinear → QuantizeLinear` pair with different parameters, a quantized ReLU or
/// Clip, or a concatenation input of another scale computes. `y = clamp(requant(x − in_zero)
/// + out_zero, lo, hi)`, integer only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequantizeI8 {
    /// Input zero point.
    pub in_zero: i32,
    /// `in_scale / out_scale`.
    pub mult: Requant,
    /// Output zero point.
    pub out_zero: i32,
    /// Smallest output.
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

/// See [`RequantizeI8`].
pub fn requantize_i8(p: &RequantizeI8, input: &[i8], output: &mut [i8]) {
    assert!(input.len() >= output.len());
    for (o, &x) in output.iter_mut().zip(input) {
        *o = requantize(i32::from(x) - p.in_zero, p.mult, p.out_zero, p.lo, p.hi);
    }
}

/// [`requantize_i8`] over its own input.
pub fn requantize_i8_in_place(p: &RequantizeI8, io: &mut [i8]) {
    for x in io.iter_mut() {
        *x = requantize(i32::from(*x) - p.in_zero, p.mult, p.out_zero, p.lo, p.hi);
    }
}

#[cfg(test)]
mod scaled_tests {
    use super::*;

    /// The short float sequence gives the integers of the reference path: random
    /// accumulators over the whole i32 range and near the rounding ties, random scales, zero
    /// points and clamps.
    #[test]
    fn scaled_requantisation_equals_reference() {
        let mut x = 0x1234_5678_9abc_def0_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = if cfg!(miri) { 2_000 } else { 400_000 };
        for i in 0..n {
            let r = next();
            let scale = f32::from_bits(0x3000_0000 + (r as u32 % 0x0f00_0000));
            let acc = match i % 3 {
                0 => r as i32,
                1 => (r >> 40) as i32 % 100_000,
                // Exactly half-way between integers after scaling, where ties decide.
                _ => ((((r >> 8) % 4000) as f32 + 0.5) / scale) as i32,
            };
            let zero = ((r >> 50) % 256) as i32 - 128;
            let lo = if r >> 63 == 1 {
                zero.clamp(-128, 100) as i8
            } else {
                -128
            };
            let hi = 127 - ((r >> 58) % 3) as i8;
            let want = requantize(acc, Requant::from_f32(scale), zero, lo, hi);
            assert_eq!(
                requantize_scaled(acc, Requant::from_f32(scale).scale(), zero, lo, hi),
                want,
                "acc {acc} scale {scale}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// onnxruntime's arithmetic: float32 product, rounded half to even.
    fn float_reference(x: i32, scale: f32) -> i64 {
        let v = (x as f32) * scale;
        (v as f64)
            .round_ties_even()
            .clamp(i32::MIN as f64, i32::MAX as f64) as i64
    }

    /// A small deterministic generator (no dependencies in the runtime's tests).
    fn lcg(state: &mut u64) -> u32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 33) as u32
    }

    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
    #[test]
    fn bit_exact_with_float32_on_random_values() {
        let mut st = 42u64;
        // Miri interprets: a sample there, the full 200,000 natively.
        let n = if cfg!(miri) { 2_000 } else { 200_000 };
        for _ in 0..n {
            // Scales from 2^-40 to 2^4, accumulators of every magnitude, ties included.
            let scale = f32::from_bits(lcg(&mut st) % (0x4180_0000 - 0x2b80_0000) + 0x2b80_0000);
            let x = match lcg(&mut st) % 4 {
                0 => (lcg(&mut st) % 512) as i32 - 256,
                1 => (lcg(&mut st) % (1 << 20)) as i32 - (1 << 19),
                2 => lcg(&mut st) as i32,
                _ => ((lcg(&mut st) % 1024) as i32 - 512) << (lcg(&mut st) % 20),
            };
            let r = Requant::from_f32(scale);
            assert_eq!(r.scale(), scale);
            assert_eq!(
                i64::from(r.apply_integer(x)),
                float_reference(x, scale),
                "{x} × {scale:e}"
            );
            assert_eq!(r.apply_float(x), r.apply_integer(x), "{x} × {scale:e}");
        }
    }

    /// The short form of gemmlowp's two roundings equals the general one: random factors
    /// (right and left shifts, multipliers of every size), sums near 0, ties, and both sides
    /// of the short form's bound (2^30).
    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
    #[test]
    fn two_roundings_short_form_equals_gemmlowps() {
        let mut st = 7u64;
        let n = if cfg!(miri) { 2_000 } else { 300_000 };
        for i in 0..n {
            let f = FixedPoint {
                multiplier: match i % 3 {
                    0 => (lcg(&mut st) >> 1) as i32,
                    1 => (1 << 30) + (lcg(&mut st) >> 2) as i32,
                    _ => (lcg(&mut st) % 1000) as i32,
                },
                shift: (lcg(&mut st) % 35) as i32 - 31,
            };
            let e = (-f.shift).clamp(1, 31);
            let x = match lcg(&mut st) % 5 {
                0 => (lcg(&mut st) % 4096) as i32 - 2048,
                // A tie of the second rounding, either sign.
                1 => ((lcg(&mut st) % 64) as i32 - 32) << e.min(24) | (1 << (e - 1)),
                2 => (1 << 30) - 2 + (lcg(&mut st) % 5) as i32,
                3 => -(1 << 30) - 2 + (lcg(&mut st) % 5) as i32,
                _ => lcg(&mut st) as i32,
            };
            let t = TwoRoundings(f);
            assert_eq!(t.apply(x), t.apply_exact(x), "{x} × {f:?}");
        }
    }

    #[test]
    fn ties_round_to_even_as_float_does() {
        let half = Requant::from_f32(0.5);
        assert_eq!((half.apply(3), half.apply(-3)), (2, -2));
        assert_eq!((half.apply(5), half.apply(-5)), (2, -2));
        assert_eq!((half.apply(1), half.apply(7)), (0, 4));
        let quarter = Requant::from_f32(0.25);
        assert_eq!(
            (quarter.apply(6), quarter.apply(-6), quarter.apply(10)),
            (2, -2, 2)
        );
        // f32(x) loses bits above 2^24: 2^24 + 1 becomes 2^24 before the product.
        assert_eq!(Requant::from_f32(1.0).apply((1 << 24) + 1), 1 << 24);
    }

    #[test]
    fn integer_products_are_exact() {
        for k in -12i32..10 {
            // Exact powers of two (`powi` may round, and does under Miri).
            let two_k = if k >= 0 {
                (1u64 << k) as f64
            } else {
                1.0 / (1u64 << -k) as f64
            };
            let r = Requant::from_real(two_k);
            assert_eq!(r.multiplier, 1 << 23);
            for x in [-(1 << 12), -7 << 12, 0, 3 << 12, 1 << 12] {
                assert_eq!(
                    i64::from(r.apply(x)),
                    (f64::from(x) * two_k) as i64,
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
                                                         // i32 saturation: a huge product stays huge and keeps its sign.
        let big = Requant::from_real(1000.0);
        assert_eq!(big.apply(i32::MAX), i32::MAX);
        assert_eq!(big.apply(i32::MIN), i32::MIN);
        assert_eq!(Requant::from_real(1e30).apply(-3), i32::MIN);
        // Zero and vanishing multipliers.
        assert_eq!(Requant::from_real(0.0).apply(123_456), 0);
        assert_eq!(Requant::from_real(1e-12).apply(1000), 0);
        assert_eq!(Requant::from_f32(f32::from_bits(1)).apply(i32::MAX), 0);
    }

    #[test]
    fn round_ties_even_is_rintf() {
        let mut st = 7u64;
        let n = if cfg!(miri) { 2_000 } else { 200_000 };
        for k in 0..n {
            let x = match k % 3 {
                // Halves and their neighbours, where rounding decides.
                0 => (lcg(&mut st) % 4096) as f32 / 2.0 - 1024.0,
                1 => f32::from_bits(lcg(&mut st)),
                _ => (lcg(&mut st) as i32) as f32 / 1024.0,
            };
            let (got, want) = (round_ties_even(x), libm::rintf(x));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn quantize_rounds_ties_to_even_and_saturates() {
        let p = Quantize {
            scale: 0.5,
            zero: -3,
        };
        let x = [0.25, 0.75, -0.25, 1000.0, -1000.0, f32::NAN, 1.0];
        let mut y = [0i8; 7];
        quantize(&p, &x, &mut y);
        // 0.5 → 0, 1.5 → 2, −0.5 → −0 (ties to even), then + zero point.
        assert_eq!(y, [-3, -1, -3, 127, -128, -3, -1]);
    }

    #[test]
    fn dequantize_then_quantize_is_identity() {
        let (scale, zero) = (0.0173f32, 17);
        let x: [i8; 256] = core::array::from_fn(|i| (i as u8) as i8);
        let mut f = [0.0f32; 256];
        dequantize(&Dequantize { scale, zero }, &x, &mut f);
        let mut y = [0i8; 256];
        quantize(&Quantize { scale, zero }, &f, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn requantize_i8_matches_float_and_clamps() {
        let (si, zi, so, zo) = (0.02f64, -5, 0.03f64, 10);
        let p = RequantizeI8 {
            in_zero: zi,
            mult: Requant::from_real(si / so),
            out_zero: zo,
            lo: zo as i8, // a fused ReLU
            hi: 127,
        };
        let x: [i8; 256] = core::array::from_fn(|i| (i as u8) as i8);
        let mut y = [0i8; 256];
        requantize_i8(&p, &x, &mut y);
        let mut z = x;
        requantize_i8_in_place(&p, &mut z);
        assert_eq!(y, z);
        for (&a, &b) in x.iter().zip(&y) {
            let want = ((f64::from(i32::from(a) - zi) * si / so).round() as i64 + i64::from(zo))
                .clamp(i64::from(zo), 127);
            assert!((i64::from(b) - want).abs() <= 1, "{a}: {b} vs {want}");
            assert!(i32::from(b) >= zo);
        }
    }

    /// TFLite's fixed point: within one step of the exact product everywhere, exact ties
    /// rounded away from zero, and the encoding of factors as `QuantizeMultiplier` makes them.
    // No `unsafe` on this path: the arithmetic is checked natively; Miri is for the unsafe ones.
    #[cfg_attr(miri, ignore = "safe arithmetic, checked natively")]
    #[test]
    fn fixed_point_is_tflites_multiply_by_quantized_multiplier() {
        // Hand-worked: 0.5 → (2^30, 0); 3 → (0.75·2^31, 2); 2^-40 → 0.
        assert_eq!(
            FixedPoint::from_real(0.5),
            FixedPoint {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            FixedPoint::from_real(3.0),
            FixedPoint {
                multiplier: 1_610_612_736,
                shift: 2
            }
        );
        let p2 = |e: i32| libm::pow(2.0, f64::from(e));
        assert_eq!(FixedPoint::from_real(p2(-40)).multiplier, 0);
        // A fraction that rounds up to 1 is halved: 1 − 2^-40 encodes as 1.
        assert_eq!(
            FixedPoint::from_real(1.0 - p2(-40)),
            FixedPoint {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // One rounding, a tie up; the case where two roundings differ (57.389: 58 twice).
        let half = FixedPoint::from_real(0.5);
        assert_eq!([half.apply(3), half.apply(-3), half.apply(5)], [2, -1, 3]);
        let quarter = FixedPoint::from_real(0.25);
        assert_eq!(
            [quarter.apply(6), quarter.apply(-6), quarter.apply(-5)],
            [2, -1, -1]
        );
        let f = FixedPoint {
            multiplier: 1_185_020_362,
            shift: -2,
        };
        assert_eq!(f.apply(416), 57);
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..if cfg!(miri) { 2_000 } else { 100_000 } {
            let real = f64::from(next() % 1_000_000 + 1) * 1e-9 * f64::from(1 + next() % 4000);
            // Accumulators whose product stays inside i32, as a layer's do.
            let x = (next() as i32) >> (10 + next() % 20);
            let f = FixedPoint::from_real(real);
            let m = f64::from(f.multiplier) * p2(f.shift - 31);
            assert!((m - real).abs() <= real * 1e-9, "{real}: {f:?}");
            let want = f64::from(x) * m;
            let got = f64::from(f.apply(x));
            assert!((got - want).abs() <= 1.0, "{x} · {real}: {got} vs {want}");
        }
    }
}
