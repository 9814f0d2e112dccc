//! Cortex-M assembly for the int8 kernels on targets with the DSP extension (Armv7E-M:
//! Cortex-M4/M7; Armv8-M Mainline with DSP), enabled by the `microarena_dsp` cfg of the build
//! script: the reference kernel's row multiply-adds, the tiled kernel's im2col pairs, dot
//! products and requantised quads (`SXTAB16`, `SMLAD`, `SSAT`; the FPU for the scale where
//! the ABI has one). Each function states the instructions it spends per multiply-accumulate.
//! The depthwise rows are in `depthwise.rs`, the whole channel loop of short rows in
//! `depthwise_channels.rs`.

#[cfg(target_abi = "eabihf")]
use super::*;
#[cfg(target_abi = "eabihf")]
use crate::scale::ScaleKind;

#[cfg(target_abi = "eabihf")]
#[macro_use]
mod depthwise;
#[cfg(target_abi = "eabihf")]
pub(super) use depthwise::*;
#[cfg(target_abi = "eabihf")]
mod depthwise_channels;
#[cfg(target_abi = "eabihf")]
pub(super) use depthwise_channels::*;
#[cfg(target_abi = "eabihf")]
mod depthwise_f32;
#[cfg(target_abi = "eabihf")]
pub(super) use depthwise_f32::*;
#[cfg(target_abi = "eabihf")]
mod tiled_f32;
#[cfg(target_abi = "eabihf")]
pub(super) use tiled_f32::*;

/// [`mac_row2`] on Cortex-M4/M7 for a multiple of four columns: per four columns of two
/// channels, two `LDR`, four `SXTAB16` (sign extension and zero point), four `PKHBT`/`PKHTB`
/// pairing the channels' values of a column, four `SMLAD` (both channels' products added in
/// one instruction), the accumulators by `LDRD`/`STRD`: 20 instructions for 8 MACs.
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) fn mac_row2_dsp(dst: &mut [i32], a: &[i8], b: &[i8], zero: i32, wa: i32, wb: i32) {
    let n = dst.len();
    assert!(n.is_multiple_of(4) && a.len() == n && b.len() == n);
    if n == 0 {
        return;
    }
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // Halfword lanes: channel a's weight low, channel b's high (SMLAD pairs lane with lane).
    let w = (wa as u32 & 0xffff) | (wb as u32) << 16;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let dst = dst.as_mut_ptr();
    // SAFETY: `dst` holds `n` i32s (4-aligned, as LDRD/STRD need), `a` and `b` `n` bytes
    // each, `n` a non-zero multiple of 4: the loop reads `a[0..n]` and `b[0..n]` four bytes at
    // a time (LDR may be unaligned on Armv7E-M) and reads and writes `dst[0..n]` four
    // elements at a time, stopping when `dst` reaches `end`. DSP-extension instructions,
    // present on every target build.rs enables this for; no stack; flags clobbered (CMP).
    unsafe {
        let end = dst.add(n);
        core::arch::asm!(
            "2:",
            "ldr {x}, [{pa}], #4",
            "ldr {y}, [{pb}], #4",
            "sxtab16 {e}, {z}, {x}",          // a0, a2
            "sxtab16 {x}, {z}, {x}, ror #8",  // a1, a3
            "sxtab16 {f}, {z}, {y}",          // b0, b2
            "sxtab16 {y}, {z}, {y}, ror #8",  // b1, b3
            "pkhbt {p}, {e}, {f}, lsl #16",   // a0, b0
            "pkhtb {f}, {f}, {e}, asr #16",   // a2, b2
            "pkhbt {e}, {x}, {y}, lsl #16",   // a1, b1
            "pkhtb {y}, {y}, {x}, asr #16",   // a3, b3
            "ldrd {s0}, {s1}, [{dst}]",
            "smlad {s0}, {p}, {w}, {s0}",
            "smlad {s1}, {e}, {w}, {s1}",
            "strd {s0}, {s1}, [{dst}], #8",
            "ldrd {s0}, {s1}, [{dst}]",
            "smlad {s0}, {f}, {w}, {s0}",
            "smlad {s1}, {y}, {w}, {s1}",
            "strd {s0}, {s1}, [{dst}], #8",
            "cmp {dst}, {end}",
            "bne 2b",
            pa = inout(reg) pa => _,
            pb = inout(reg) pb => _,
            dst = inout(reg) dst => _,
            end = in(reg) end,
            w = in(reg) w,
            z = in(reg) offsets,
            x = out(reg) _,
            y = out(reg) _,
            e = out(reg) _,
            f = out(reg) _,
            p = out(reg) _,
            s0 = out(reg) _,
            s1 = out(reg) _,
            options(nostack),
        );
    }
}

/// [`mac_row`] on Cortex-M4/M7 for a multiple of four columns: per four columns one
/// (unaligned) 32-bit load of the inputs, two `SXTAB16` (bytes 0 and 2, then 1 and 3,
/// sign-extended into halfword lanes with `-zero` added: |x - zero| <= 255 fits), two `LDRD`
/// and two `STRD` of the accumulators, four `SMLABB`/`SMLATB`: 11 instructions and the loop
/// test, against 8 per column for the plain loop.
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) fn mac_row_dsp(dst: &mut [i32], src: &[i8], zero: i32, w: i32) {
    let n = dst.len();
    assert!(n.is_multiple_of(4) && src.len() == n);
    if n == 0 {
        return;
    }
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    let w = w as u32 & 0xffff;
    let src = src.as_ptr();
    let dst = dst.as_mut_ptr();
    // SAFETY: `dst` holds `n` i32s (4-aligned, as LDRD/STRD need) and `src` `n` bytes, `n` a
    // non-zero multiple of 4: the loop reads `src[0..n]` four bytes at a time (LDR may be
    // unaligned on Armv7E-M) and reads and writes `dst[0..n]` four elements at a time,
    // stopping when `dst` reaches `end`. The instructions exist on every target build.rs
    // enables this for (DSP extension); no stack use; the flags are clobbered (CMP).
    unsafe {
        let end = dst.add(n);
        core::arch::asm!(
            "2:",
            "ldr {x}, [{src}], #4",
            "sxtab16 {e}, {z}, {x}",
            "sxtab16 {x}, {z}, {x}, ror #8",
            "ldrd {a0}, {a1}, [{dst}]",
            "ldrd {a2}, {a3}, [{dst}, #8]",
            "smlabb {a0}, {e}, {w}, {a0}",
            "smlabb {a1}, {x}, {w}, {a1}",
            "smlatb {a2}, {e}, {w}, {a2}",
            "smlatb {a3}, {x}, {w}, {a3}",
            "strd {a2}, {a3}, [{dst}, #8]",
            "strd {a0}, {a1}, [{dst}], #16",
            "cmp {dst}, {end}",
            "bne 2b",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            end = in(reg) end,
            w = in(reg) w,
            z = in(reg) offsets,
            x = out(reg) _,
            e = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            options(nostack),
        );
    }
}

/// [`taps_two_apart`] on Cortex-M4/M7 for `pairs` channel pairs: per pair two `LDR` (bytes 0
/// to 3 of each channel: both pixels at 0 and 2), two `SXTAB16` (bytes 0 and 2 widened, zero
/// point subtracted), `PKHBT` and `PKHTB` (pixel 0's pair, pixel 1's) and one `STRD`.
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) fn taps_two_apart_dsp(x: &[i8], plane: usize, pairs: usize, zero: i32, dst: &mut [i16]) {
    if pairs == 0 {
        return;
    }
    assert!(x.len() > (2 * pairs - 1) * plane + 3 && dst.len() >= 4 * pairs);
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // SAFETY: pair j reads `x[2j·plane..][..4]` and `x[(2j+1)·plane..][..4]`, inside `x` for
    // j < pairs (asserted: the last byte read is `(2·pairs − 1)·plane + 3`; LDR may be
    // unaligned on Armv7E-M), and writes `dst[4j..4j + 4]` (asserted) with STRD, which needs
    // `dst` 4-aligned: it is the arena scratch, 4-aligned, at a multiple of 4 i16. The loop
    // runs `pairs` > 0 times. DSP-extension instructions, present wherever build.rs enables
    // this; no stack; the flags are clobbered (SUBS).
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {a}, [{px}]",
            "ldr {b}, [{px}, {plane}]",
            "add {px}, {px}, {plane2}",
            "sxtab16 {a}, {z}, {a}",
            "sxtab16 {b}, {z}, {b}",
            "pkhbt {t}, {a}, {b}, lsl #16",
            "pkhtb {b}, {b}, {a}, asr #16",
            "strd {t}, {b}, [{pd}], #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            px = inout(reg) x.as_ptr() => _,
            pd = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) pairs => _,
            plane = in(reg) plane,
            plane2 = in(reg) 2 * plane,
            z = in(reg) offsets,
            a = out(reg) _,
            b = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// [`taps_side_by_side`] on Cortex-M4/M7 for `pairs` channel pairs: per pair two `LDRH`
/// (both pixels of each channel), one `PKHBT` (the four bytes in one word), two `SXTAB16`
/// (sign extension and zero point: pixel 0's pair, pixel 1's pair) and one `STRD`.
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) fn taps_side_by_side_dsp(
    x: &[i8],
    plane: usize,
    pairs: usize,
    zero: i32,
    dst: &mut [i16],
) {
    if pairs == 0 {
        return;
    }
    assert!(x.len() > (2 * pairs - 1) * plane + 1 && dst.len() >= 4 * pairs);
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // SAFETY: pair j reads `x[2j·plane..][..2]` and `x[(2j+1)·plane..][..2]`, inside `x` for
    // j < pairs (asserted: the last byte read is `(2·pairs − 1)·plane + 1`; LDRH may be
    // unaligned on Armv7E-M), and writes `dst[4j..4j + 4]` (asserted) with STRD, which needs
    // `dst` 4-aligned: it is the arena scratch, 4-aligned, at a multiple of 4 i16. An odd
    // count's first pair alone, then two pairs per iteration, `pairs / 2` times (none when
    // 0). DSP-extension instructions, present wherever build.rs enables this; no stack; the
    // flags are clobbered (LSRS, SUBS).
    unsafe {
        core::arch::asm!(
            "lsrs {n}, {n}, #1",
            "bcc 2f",
            "ldrh {a}, [{px}]",
            "ldrh {b}, [{px}, {plane}]",
            "add {px}, {px}, {plane2}",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "sxtab16 {b}, {z}, {a}",
            "sxtab16 {a}, {z}, {a}, ror #8",
            "strd {b}, {a}, [{pd}], #8",
            // Z still from LSRS: no pair left.
            "beq 3f",
            "2:",
            "ldrh {a}, [{px}]",
            "ldrh {b}, [{px}, {plane}]",
            "ldrh {c}, [{px}, {plane2}]",
            "ldrh {d}, [{px}, {plane3}]",
            "add {px}, {px}, {plane2}, lsl #1",
            "pkhbt {a}, {a}, {b}, lsl #16",
            "pkhbt {c}, {c}, {d}, lsl #16",
            "sxtab16 {b}, {z}, {a}",
            "sxtab16 {a}, {z}, {a}, ror #8",
            "sxtab16 {d}, {z}, {c}",
            "sxtab16 {c}, {z}, {c}, ror #8",
            "strd {b}, {a}, [{pd}], #8",
            "strd {d}, {c}, [{pd}], #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            px = inout(reg) x.as_ptr() => _,
            pd = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) pairs => _,
            plane = in(reg) plane,
            plane2 = in(reg) 2 * plane,
            plane3 = in(reg) 3 * plane,
            z = in(reg) offsets,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            d = out(reg) _,
            options(nostack),
        );
    }
}

/// The im2col of two pixels' whole windows of a flattened convolution (`im2col_pair`) on
/// Cortex-M4/M7: per pair of steps one `LDRD` of their input offsets, per pixel two `LDRB`,
/// `ORR` (both bytes in one word) and `SXTAB16` (sign extension and the zero point
/// subtracted), one `STRD` of the four values: 12 instructions for four values.
///
/// # Safety
/// `steps` holds `2·pairs` offsets (4-aligned); `x0 + o` and `x1 + o` are readable for each
/// offset `o`; `q` holds `4·pairs` writable, 4-aligned `i16`; `pairs` > 0.
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) unsafe fn flat_pairs_dsp(
    x0: *const i8,
    x1: *const i8,
    steps: *const u32,
    pairs: usize,
    zero: i32,
    q: *mut i16,
) {
    let minus_zero = (-zero) as u32 & 0xffff;
    let offsets = minus_zero | minus_zero << 16;
    // SAFETY: the caller's contract: LDRD of each pair's offsets inside `steps`, LDRB inside
    // the windows, STRD inside `q` (4-aligned), `pairs` iterations. DSP-extension
    // instructions; no stack; the flags are clobbered (SUBS).
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrd {a}, {b}, [{ab}], #8",
            "ldrb {t}, [{x0}, {a}]",
            "ldrb {u}, [{x0}, {b}]",
            "orr {t}, {t}, {u}, lsl #16",
            "sxtab16 {t}, {z}, {t}",
            "ldrb {u}, [{x1}, {a}]",
            "ldrb {b}, [{x1}, {b}]",
            "orr {u}, {u}, {b}, lsl #16",
            "sxtab16 {u}, {z}, {u}",
            "strd {t}, {u}, [{q}], #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            ab = inout(reg) steps => _,
            q = inout(reg) q => _,
            n = inout(reg) pairs => _,
            x0 = in(reg) x0,
            x1 = in(reg) x1,
            z = in(reg) offsets,
            a = out(reg) _,
            b = out(reg) _,
            t = out(reg) _,
            u = out(reg) _,
            options(nostack),
        );
    }
}

/// One block of [`dot_4x2_dsp`]: two reduction steps of the 4 × 2 tile. One `LDRD` takes
/// both channel pairs' packed words (`pack_tiled_weights`: halfwords `w_a + 256·w_b`), one
/// the two pixels' input pairs; per channel pair two `SMLAD` of the packed word (into the
/// second channel's sums: `Σ x·w_a + 256·Σ x·w_b`), its `SXTB16` (the first channel's two
/// weights) and two `SMLAD` of that (the first channel's sums). The second channel's sums are
/// `(paired − first) >> 8` at the end (`pair_sums!`).
#[cfg(microarena_dsp)]
macro_rules! dot_4x2_block {
    () => {
        concat!(
            "ldrd {w0}, r7, [{pw}], #8\n",
            "ldrd {x0}, {x1}, [{px}], #8\n",
            "smlad {a2}, {w0}, {x0}, {a2}\n",
            "smlad {a3}, {w0}, {x1}, {a3}\n",
            "sxtb16 {w0}, {w0}\n",
            "smlad {a0}, {w0}, {x0}, {a0}\n",
            "smlad {a1}, {w0}, {x1}, {a1}\n",
            "smlad {a6}, r7, {x0}, {a6}\n",
            "smlad {a7}, r7, {x1}, {a7}\n",
            "sxtb16 r7, r7\n",
            "smlad {a4}, r7, {x0}, {a4}\n",
            "smlad {a5}, r7, {x1}, {a5}\n",
        )
    };
}

/// The paired sums of the second channels (a2, a3, a6, a7) start at `first + 256·second`
/// (their biases, wrapping): after the loop `(paired − first) >> 8` is the second channel's
/// whole sum (exact below 2^23 in magnitude: `tiled_weights_fit`).
#[cfg(microarena_dsp)]
macro_rules! pair_init {
    () => {
        concat!(
            "add {a2}, {a0}, {a2}, lsl #8\n",
            "add {a6}, {a4}, {a6}, lsl #8\n",
        )
    };
}

/// The second channels' sums times 256 out of the paired ones (see [`pair_init`]): the
/// float requantisation converts them with 8 fraction bits (`VCVT … #8`), exactly.
#[cfg(microarena_dsp)]
macro_rules! pair_diffs {
    () => {
        concat!(
            "sub {a2}, {a2}, {a0}\n",
            "sub {a3}, {a3}, {a1}\n",
            "sub {a6}, {a6}, {a4}\n",
            "sub {a7}, {a7}, {a5}\n",
        )
    };
}

/// The second channels' sums out of the paired ones (see [`pair_init`]) times `2^(8 − $shift)`:
/// `$shift` 8 gives the sums, 7 the fixed-point requantisation's doubled sums
/// (`quads_fixed_channel` doubles the first channels' by `LSL`).
#[cfg(microarena_dsp)]
macro_rules! pair_sums {
    ($shift:literal) => {
        concat!(
            pair_diffs!(),
            "asr {a2}, {a2}, #",
            $shift,
            "\n",
            "asr {a3}, {a3}, #",
            $shift,
            "\n",
            "asr {a6}, {a6}, #",
            $shift,
            "\n",
            "asr {a7}, {a7}, #",
            $shift,
            "\n",
        )
    };
}

/// [`dot_4x2_unchecked`] on Cortex-M4/M7: per two reduction steps one `LDRD` of both
/// pixels' input pairs, one `LDRD` of the four channels' packed weights, two `SXTB16` and
/// eight `SMLAD` (each two multiply-accumulates): 12 instructions for 16 multiply-accumulates
/// (see `dot_4x2_block`). Eight accumulators, four operands and two pointers are 14
/// registers, one more than inline assembly may have as operands here: r7 (the frame
/// pointer, which it may not name as an operand) is saved on the stack and holds one weight
/// word, and the end of the loop is read from the stack.
///
/// # Safety
/// As [`dot_4x2_unchecked`].
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) unsafe fn dot_4x2_dsp(w: *const i8, x: &[i16], init: [i32; 8]) -> [i32; 8] {
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = init;
    // SAFETY: `x` holds n i16 (a non-zero multiple of 16) and `w` n bytes (the caller's
    // contract); each block reads 8 bytes of x and 8 of w, eight blocks per pass (four in a
    // first, half pass when n is an odd multiple of 16), until x's end: every LDRD is inside
    // both, and both are 4-aligned (the weight blob, the arena scratch). r7 is pushed first and
    // popped last, the end pointer is pushed and dropped: the stack is balanced, nothing else
    // touches it, and no call or unwinding happens in between. DSP-extension instructions;
    // the flags are clobbered.
    unsafe {
        let end = x.as_ptr().add(x.len());
        core::arch::asm!(
            "push {{r7}}",
            "push {{{x0}}}",
            pair_init!(),
            // Pixel 1's too (`quads_asm` copies pixel 0's instead: its two pixels start
            // alike).
            "add {a3}, {a1}, {a3}, lsl #8",
            "add {a7}, {a5}, {a7}, lsl #8",
            "subs {x1}, {x0}, {px}",
            "tst {x1}, #32",
            "bne 3f",
            "2:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "3:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "ldr {w0}, [sp]",
            "cmp {px}, {w0}",
            "bne 2b",
            pair_sums!(8),
            "add sp, sp, #4",
            "pop {{r7}}",
            pw = inout(reg) w => _,
            px = inout(reg) x.as_ptr() => _,
            x0 = inout(reg) end => _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            a4 = inout(reg) a4,
            a5 = inout(reg) a5,
            a6 = inout(reg) a6,
            a7 = inout(reg) a7,
        );
    }
    [a0, a1, a2, a3, a4, a5, a6, a7]
}

/// The output zero point added to the eight rescaled sums (`QADD`) after the float
/// requantisation; the fixed point has it in its half unit (`Q31::with_zero`).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_zero {
    () => {
        concat!(
            "ldr {w0}, [{x1}, #20]\n",
            "qadd {a0}, {a0}, {w0}\n",
            "qadd {a1}, {a1}, {w0}\n",
            "qadd {a2}, {a2}, {w0}\n",
            "qadd {a3}, {a3}, {w0}\n",
            "qadd {a4}, {a4}, {w0}\n",
            "qadd {a5}, {a5}, {w0}\n",
            "qadd {a6}, {a6}, {w0}\n",
            "qadd {a7}, {a7}, {w0}"
        )
    };
}

/// The float requantisation of [`quads_asm`]: the quad's four scales by one `VLDMIA`, the
/// eight sums converted (the second channels' from their sums times 256, [`pair_diffs`], with
/// 8 fraction bits: exact below 2^24), multiplied and rounded to nearest (`VCVTR`) by the FPU.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_float {
    () => {
        concat!(
            "ldr {x0}, [{x1}, #16]\n",
            "vldmia {x0}!, {{s8-s11}}\n",
            "str {x0}, [{x1}, #16]\n",
            "vmov s0, s1, {a0}, {a1}\n",
            "vmov s2, s3, {a2}, {a3}\n",
            "vmov s4, s5, {a4}, {a5}\n",
            "vmov s6, s7, {a6}, {a7}\n",
            "vcvt.f32.s32 s0, s0\n",
            "vcvt.f32.s32 s1, s1\n",
            "vcvt.f32.s32 s2, s2, #8\n",
            "vcvt.f32.s32 s3, s3, #8\n",
            "vcvt.f32.s32 s4, s4\n",
            "vcvt.f32.s32 s5, s5\n",
            "vcvt.f32.s32 s6, s6, #8\n",
            "vcvt.f32.s32 s7, s7, #8\n",
            "vmul.f32 s0, s0, s8\n",
            "vmul.f32 s1, s1, s8\n",
            "vmul.f32 s2, s2, s9\n",
            "vmul.f32 s3, s3, s9\n",
            "vmul.f32 s4, s4, s10\n",
            "vmul.f32 s5, s5, s10\n",
            "vmul.f32 s6, s6, s11\n",
            "vmul.f32 s7, s7, s11\n",
            "vcvtr.s32.f32 s0, s0\n",
            "vcvtr.s32.f32 s1, s1\n",
            "vcvtr.s32.f32 s2, s2\n",
            "vcvtr.s32.f32 s3, s3\n",
            "vcvtr.s32.f32 s4, s4\n",
            "vcvtr.s32.f32 s5, s5\n",
            "vcvtr.s32.f32 s6, s6\n",
            "vcvtr.s32.f32 s7, s7\n",
            "vmov {a0}, {a1}, s0, s1\n",
            "vmov {a2}, {a3}, s2, s3\n",
            "vmov {a4}, {a5}, s4, s5\n",
            "vmov {a6}, {a7}, s6, s7"
        )
    };
}

/// One sum of [`quads_fixed_channel`], rescaled in place with the channel's multiplier in
/// `w0`, half unit in `px` and exponent less one in `r7`; `x1` is free. `twice` (two
/// roundings): `SMMLAR` (the rounded high product plus the half unit), `ADD … ASR #31` (a
/// negative sum one lower: its tie goes down; the sum's sign is the product's but where the
/// product rounds to 0, which the shift takes to 0 either way), `ASR`. `once`: `SMMLA` (the
/// floor plus the half unit), `ASR`. `double`: the sum doubled first (`LSL`; without, it
/// comes doubled, as the second channels' do from `pair_sums!(7)`).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! fixed_sum {
    (twice, $a:literal, double) => {
        concat!(
            "lsl {x1}, {",
            $a,
            "}, #1\n",
            "smmlar {x1}, {x1}, {w0}, {px}\n",
            "add {",
            $a,
            "}, {x1}, {",
            $a,
            "}, asr #31\n",
            "asr {",
            $a,
            "}, {",
            $a,
            "}, r7\n",
        )
    };
    (twice, $a:literal, doubled) => {
        concat!(
            "smmlar {x1}, {",
            $a,
            "}, {w0}, {px}\n",
            "add {",
            $a,
            "}, {x1}, {",
            $a,
            "}, asr #31\n",
            "asr {",
            $a,
            "}, {",
            $a,
            "}, r7\n",
        )
    };
    (once, $a:literal, double) => {
        concat!(
            "lsl {",
            $a,
            "}, {",
            $a,
            "}, #1\n",
            "smmla {",
            $a,
            "}, {",
            $a,
            "}, {w0}, {px}\n",
            "asr {",
            $a,
            "}, {",
            $a,
            "}, r7\n",
        )
    };
    (once, $a:literal, doubled) => {
        concat!(
            "smmla {",
            $a,
            "}, {",
            $a,
            "}, {w0}, {px}\n",
            "asr {",
            $a,
            "}, {",
            $a,
            "}, r7\n",
        )
    };
}

/// One channel's two sums (`$a`, `$b`) in [`quads_fixed`]: its `Q31` (multiplier, round,
/// exponent) loaded, then each sum by [`fixed_sum`].
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_fixed_channel {
    ($a:literal, $b:literal, $kind:ident, $double:ident) => {
        concat!(
            "ldrd {w0}, {px}, [{x0}], #8\n",
            // The exponent less one: the half unit's trailing zeros (`Q31::exponent`); the
            // last halving is the `SSAT`'s `ASR #1` (shifts compose: `(v >> (e − 1)) >> 1` is
            // `v >> e`).
            "rbit r7, {px}\n",
            "clz r7, r7\n",
            fixed_sum!($kind, $a, $double),
            fixed_sum!($kind, $b, $double),
        )
    };
}

/// The fixed-point requantisation of [`quads_asm`] (see `crate::scale`): per channel two
/// words (`Q31`), two instructions for its exponent and three or four a sum (two or three
/// for one rounding), the output zero point included (in the half unit:
/// `Q31::with_zero`), the shift's last bit in the `SSAT` after it. `x1` (the parameters) is
/// a temporary here, loaded again after.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_fixed {
    ($kind:ident) => {
        concat!(
            pair_sums!(7),
            "ldr {x0}, [{x1}, #16]\n",
            quads_fixed_channel!("a0", "a1", $kind, double),
            quads_fixed_channel!("a2", "a3", $kind, doubled),
            quads_fixed_channel!("a4", "a5", $kind, double),
            quads_fixed_channel!("a6", "a7", $kind, doubled),
            "ldr {x1}, [sp, #4]\n",
            "str {x0}, [{x1}, #16]",
        )
    };
}

/// The assembly of [`quads_dsp`] with `$requant` (float or fixed point) turning the eight
/// sums into the rescaled values and `$store` after the `SSAT`s: the stores alone when
/// `SSAT`'s range is the clamp, else the halfword clamp first.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_asm {
    (
        $w:expr,
        $pp:expr,
        [$($requant:expr),*],
        [$($store:expr),* $(,)?],
        [$($entry:expr),*],
        [$($ssat_shift:expr),*]
    ) => {
        core::arch::asm!(
            "push {{r7}}",
            // The stack: [sp] the end of the pixel pair's inputs (the loop's bound, one load
            // away), [sp, #4] `params`.
            "ldr {x1}, [{x0}, #4]",
            "push {{{x0}}}",
            "push {{{x1}}}",
            "4:",
            // Biases: a0 = a1 = channel 0's, a2 = a3 = channel 1's, ... (16 bytes a group).
            "ldr {x1}, [sp, #4]",
            "ldr {x0}, [{x1}, #8]",
            "ldrd {a4}, {a6}, [{x0}, #8]",
            "ldrd {a0}, {a2}, [{x0}], #16",
            "str {x0}, [{x1}, #8]",
            pair_init!(),
            "mov {a1}, {a0}",
            "mov {a3}, {a2}",
            "mov {a5}, {a4}",
            "mov {a7}, {a6}",
            "ldr {px}, [{x1}]",
            // `$entry`: a branch to the second half when every pass starts there.
            $($entry,)*
            "2:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "3:",
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            dot_4x2_block!(),
            "ldr {w0}, [sp]",
            "cmp {px}, {w0}",
            "bne 2b",
            // Requantisation of the eight sums (`$requant`: the second channels' sums out of
            // the paired ones, then the rescaling with the zero point).
            "ldr {x1}, [sp, #4]",
            $($requant,)*
            concat!("ssat {a0}, #8, {a0}" $(, $ssat_shift)*),
            concat!("ssat {a1}, #8, {a1}" $(, $ssat_shift)*),
            concat!("ssat {a2}, #8, {a2}" $(, $ssat_shift)*),
            concat!("ssat {a3}, #8, {a3}" $(, $ssat_shift)*),
            concat!("ssat {a4}, #8, {a4}" $(, $ssat_shift)*),
            concat!("ssat {a5}, #8, {a5}" $(, $ssat_shift)*),
            concat!("ssat {a6}, #8, {a6}" $(, $ssat_shift)*),
            concat!("ssat {a7}, #8, {a7}" $(, $ssat_shift)*),
            $($store,)*
            // Until the weights' end (no counter to store back).
            "ldr {w0}, [{x1}, #12]",
            "cmp {pw}, {w0}",
            "bne 4b",
            "add sp, sp, #8",
            "pop {{r7}}",
            pw = inout(reg) $w => _,
            px = out(reg) _,
            x0 = inout(reg) $pp => _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            a4 = out(reg) _,
            a5 = out(reg) _,
            a6 = out(reg) _,
            a7 = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s7") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
            out("s11") _,
        )
    };
}

/// The stores of [`quads_asm`] after a clamp narrower than `SSAT`'s: the eight bytes paired
/// by `PKHBT`, clamped two at a time (`SSUB16`/`SEL`), then stored.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_clamped_stores {
    () => {
        concat!(
            "pkhbt {a0}, {a0}, {a1}, lsl #16\n",
            "pkhbt {a2}, {a2}, {a3}, lsl #16\n",
            "pkhbt {a4}, {a4}, {a5}, lsl #16\n",
            "pkhbt {a6}, {a6}, {a7}, lsl #16\n",
            "ldr {w0}, [{x1}, #24]\n",
            "ssub16 {x0}, {a0}, {w0}\n",
            "sel {a0}, {a0}, {w0}\n",
            "ssub16 {x0}, {a2}, {w0}\n",
            "sel {a2}, {a2}, {w0}\n",
            "ssub16 {x0}, {a4}, {w0}\n",
            "sel {a4}, {a4}, {w0}\n",
            "ssub16 {x0}, {a6}, {w0}\n",
            "sel {a6}, {a6}, {w0}\n",
            "ldr {w0}, [{x1}, #28]\n",
            "ssub16 {x0}, {w0}, {a0}\n",
            "sel {a0}, {a0}, {w0}\n",
            "ssub16 {x0}, {w0}, {a2}\n",
            "sel {a2}, {a2}, {w0}\n",
            "ssub16 {x0}, {w0}, {a4}\n",
            "sel {a4}, {a4}, {w0}\n",
            "ssub16 {x0}, {w0}, {a6}\n",
            "sel {a6}, {a6}, {w0}\n",
            // Stores: channel i's two bytes at out + i·plane (+ next).
            "ldr {x0}, [{x1}, #32]\n",
            "ldr {w0}, [{x1}, #36]\n",
            "ldr {px}, [{x1}, #40]\n",
            "strb {a0}, [{x0}]\n",
            "lsrs {a0}, {a0}, #16\n",
            "strb {a0}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a2}, [{x0}]\n",
            "lsrs {a2}, {a2}, #16\n",
            "strb {a2}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a4}, [{x0}]\n",
            "lsrs {a4}, {a4}, #16\n",
            "strb {a4}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a6}, [{x0}]\n",
            "lsrs {a6}, {a6}, #16\n",
            "strb {a6}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "str {x0}, [{x1}, #32]",
        )
    };
}

/// The stores of [`quads_asm`] when `SSAT`'s range is the clamp.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! quads_stores {
    () => {
        concat!(
            // Stores: channel i's two bytes at out + i·plane (+ next).
            "ldr {x0}, [{x1}, #32]\n",
            "ldr {w0}, [{x1}, #36]\n",
            "ldr {px}, [{x1}, #40]\n",
            "strb {a0}, [{x0}]\n",
            "strb {a1}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a2}, [{x0}]\n",
            "strb {a3}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a4}, [{x0}]\n",
            "strb {a5}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "strb {a6}, [{x0}]\n",
            "strb {a7}, [{x0}, {w0}]\n",
            "add {x0}, {x0}, {px}\n",
            "str {x0}, [{x1}, #32]",
        )
    };
}

/// What [`quads_dsp`] reads and updates in memory (it has no registers left for them).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[repr(C)]
pub(crate) struct QuadParams {
    pub(crate) x_start: *const i16,
    pub(crate) x_end: *const i16,
    /// Next quad's four biases (8-aligned not needed: `LDRD` takes 4; four zeros a quad
    /// without a bias).
    pub(crate) bias: *const i32,
    /// The end of the quads' weights (the loop stops when the weight pointer reaches it).
    pub(crate) w_end: *const i8,
    /// Next quad's first scale: a float32 each, or a `Q31` (two words) each.
    pub(crate) scales: *const u32,
    pub(crate) zero: i32,
    pub(crate) lo2: u32,
    pub(crate) hi2: u32,
    /// Next quad's first output byte (pixel 0), the offset of pixel 1's (0 or 1), and the
    /// bytes between channels.
    pub(crate) out: *mut i8,
    pub(crate) next: usize,
    pub(crate) plane: usize,
}

// The field offsets [`quads_asm`] loads from (`[{x1}, #N]`).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(QuadParams, x_end) == 4 && offset_of!(QuadParams, bias) == 8);
    assert!(offset_of!(QuadParams, w_end) == 12 && offset_of!(QuadParams, scales) == 16);
    assert!(offset_of!(QuadParams, zero) == 20 && offset_of!(QuadParams, lo2) == 24);
    assert!(offset_of!(QuadParams, hi2) == 28 && offset_of!(QuadParams, out) == 32);
    assert!(offset_of!(QuadParams, next) == 36 && offset_of!(QuadParams, plane) == 40);
};

/// All groups of four channels of one pixel pair on Cortex-M4F/M7/M33 (their weights from `w`
/// to `params.w_end`): per
/// group the biases, the 4 × 2 `SMLAD` loop of [`dot_4x2_dsp`], the eight requantisations
/// of `requantize_pair_dsp` (float conversions, products and `VCVTR` for all eight, then
/// `QADD` of the zero point; or the fixed point, the zero point in its half unit), `SSAT`
/// and, with `clamp`, `PKHBT` and the `SSUB16`/`SEL` clamp for four pairs;
/// without, `SSAT`'s range is the clamp) and the eight byte stores, with every live value in
/// a register and the loop's state in `params`: no spills around an assembly block per group.
///
/// # Safety
/// `params.w_end` is `w` plus `quads · 2 · n` bytes, all readable and 4-aligned, where `n`
/// = `x_end − x_start`, a non-zero multiple of 16, `x` 4-aligned, `quads` > 0; `bias +
/// [0, 16·quads)` (bytes, 4-aligned) and `scales + i` are readable and `out + i·plane` and
/// `out + i·plane + next` writable for i < 4·quads.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
pub(crate) unsafe fn quads_dsp(
    w: *const i8,
    params: &mut QuadParams,
    kind: ScaleKind,
    clamp: bool,
    half: bool,
) {
    let pp = params as *mut QuadParams;
    // SAFETY: the caller's contract covers every load and store; `params` is read and written
    // only through `pp` (kept on the stack with a copy of `x_end`, as r7 is: all three taken
    // off before the end; the stack is balanced and nothing is called in between). FPU and
    // DSP-extension instructions; s0–s11 and the flags are clobbered.
    unsafe {
        // An odd number of 8-step halves: every pass starts at its second half.
        // `$shift`: a last right shift folded into the `SSAT`s (the fixed point's final
        // halving, see `quads_fixed_channel`).
        macro_rules! stores {
            ($requant:expr, [$($shift:expr),*]) => {
                match (clamp, half) {
                    (true, false) => quads_asm!(
                        w, pp, [$requant], [quads_clamped_stores!()], [], [$($shift),*]
                    ),
                    (true, true) => quads_asm!(
                        w, pp, [$requant], [quads_clamped_stores!()], ["b 3f"], [$($shift),*]
                    ),
                    (false, false) => {
                        quads_asm!(w, pp, [$requant], [quads_stores!()], [], [$($shift),*])
                    }
                    (false, true) => {
                        quads_asm!(w, pp, [$requant], [quads_stores!()], ["b 3f"], [$($shift),*])
                    }
                }
            };
        }
        match kind {
            ScaleKind::Float => {
                stores!(
                    concat!(pair_diffs!(), quads_float!(), "\n", quads_zero!()),
                    []
                )
            }
            ScaleKind::Q31Twice => stores!(quads_fixed!(twice), [", asr #1"]),
            ScaleKind::Q31Once => stores!(quads_fixed!(once), [", asr #1"]),
        }
    }
}

/// [`dot_2x2`] on Cortex-M4/M7: per four reduction steps one `LDRD` of the channel pair's two
/// packed words, two `LDRD` of the two pixels' input pairs, two `SXTB16` and eight `SMLAD`
/// (each two multiply-accumulates; the packed words sum into the second channel's sums as in
/// `dot_4x2_block`); unrolled four times: 52 instructions for 64 multiply-accumulates.
///
/// # Safety
/// As [`dot_2x2_unchecked`].
#[cfg(microarena_dsp)]
#[inline(always)]
pub(crate) unsafe fn dot_2x2_dsp(w: *const i8, x: &[i16], init: [i32; 4]) -> [i32; 4] {
    let [mut a00, mut a01, mut a10, mut a11] = init;
    // The second channel's paired sums start at `first + 256·second` (see `pair_init`).
    a10 = a00.wrapping_add(a10.wrapping_shl(8));
    a11 = a01.wrapping_add(a11.wrapping_shl(8));
    let n = x.len();
    // SAFETY: `x` holds `n` i16s and `w` `n` bytes, `n` a non-zero multiple of 16 (the
    // caller's contract), so the loop reads `x` in steps of 16 bytes and `w` of 8, four times
    // per pass (twice in a first, half pass when n is an odd multiple of 16), and stops when
    // `x` reaches its end: every LDRD is inside both. Both are 4-aligned (LDRD needs it): `w`
    // is a 16-aligned weight blob at a multiple of 4 bytes, `x` the arena scratch at an
    // aligned offset. DSP-extension instructions exist on every target build.rs enables this
    // for; no stack; the flags are clobbered (TST, CMP).
    unsafe {
        let end = x.as_ptr().add(n);
        core::arch::asm!(
            // Four blocks of four steps per pass; with an odd number of 8-step halves
            // (bit 4 of n), enter at the second half.
            "tst {w0}, #16",
            "bne 3f",
            "2:",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w0}, {x0}, {a10}",
            "smlad {a11}, {w0}, {x1}, {a11}",
            "sxtb16 {w0}, {w0}",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "sxtb16 {w1}, {w1}",
            "smlad {a00}, {w1}, {x0}, {a00}",
            "smlad {a01}, {w1}, {x1}, {a01}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w0}, {x0}, {a10}",
            "smlad {a11}, {w0}, {x1}, {a11}",
            "sxtb16 {w0}, {w0}",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "sxtb16 {w1}, {w1}",
            "smlad {a00}, {w1}, {x0}, {a00}",
            "smlad {a01}, {w1}, {x1}, {a01}",
            "3:",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w0}, {x0}, {a10}",
            "smlad {a11}, {w0}, {x1}, {a11}",
            "sxtb16 {w0}, {w0}",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "sxtb16 {w1}, {w1}",
            "smlad {a00}, {w1}, {x0}, {a00}",
            "smlad {a01}, {w1}, {x1}, {a01}",
            "ldrd {w0}, {w1}, [{pw}], #8",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w0}, {x0}, {a10}",
            "smlad {a11}, {w0}, {x1}, {a11}",
            "sxtb16 {w0}, {w0}",
            "smlad {a00}, {w0}, {x0}, {a00}",
            "smlad {a01}, {w0}, {x1}, {a01}",
            "ldrd {x0}, {x1}, [{px}], #8",
            "smlad {a10}, {w1}, {x0}, {a10}",
            "smlad {a11}, {w1}, {x1}, {a11}",
            "sxtb16 {w1}, {w1}",
            "smlad {a00}, {w1}, {x0}, {a00}",
            "smlad {a01}, {w1}, {x1}, {a01}",
            "cmp {px}, {end}",
            "bne 2b",
            pw = inout(reg) w => _,
            px = inout(reg) x.as_ptr() => _,
            end = in(reg) end,
            a00 = inout(reg) a00,
            a01 = inout(reg) a01,
            a10 = inout(reg) a10,
            a11 = inout(reg) a11,
            w0 = inout(reg) n => _,
            w1 = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            options(nostack, readonly),
        );
    }
    // Exact: the pair's second sums are below 2^23 in magnitude (`tiled_weights_fit`).
    a10 = a10.wrapping_sub(a00) >> 8;
    a11 = a11.wrapping_sub(a01) >> 8;
    [a00, a01, a10, a11]
}
