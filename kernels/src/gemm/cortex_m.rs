//! Cortex-M assembly for the packed int8 fully connected layer (`packed_i8.rs`) on targets
//! with the DSP extension (the `microarena_dsp` cfg of the build script).

use super::packed_i8::{ROWS, TAPS};

/// The four columns' sums of one group of packed weights against one row of activations: per
/// block of eight taps, one `LDRD` of the row and four `SXTB16` into the halfword pairs
/// x0/x2, x1/x3, x4/x6, x5/x7 (`SXTB16` sign-extends bytes 0 and 2, rotated by 8 bytes 1 and
/// 3), and per column one `LDRD` of its eight weight bytes, four `SXTB16` and four `SMLAD`;
/// the loop test two. 43 instructions per 32 multiply-accumulates.
#[inline(always)]
pub(super) fn dot_rows_dsp(wg: &[i8], xs: &[i8]) -> [i32; ROWS] {
    let blocks = wg.len() / (ROWS * TAPS);
    assert!(blocks > 0 && xs.len() >= blocks * TAPS);
    assert!((wg.as_ptr() as usize).is_multiple_of(4) && (xs.as_ptr() as usize).is_multiple_of(4));
    let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: `wg` holds `blocks` blocks of 32 bytes and `xs` `blocks · 8` bytes, both
    // 4-byte aligned (checked: LDRD needs it), `blocks` ≥ 1. The loop reads `wg` 32 bytes and
    // `xs` 8 bytes a block, `blocks` times, stopping when `xs`'s pointer reaches `end` (its
    // start plus `blocks · 8` bytes). r7 (the frame pointer, which Rust does not let an
    // operand take) holds the bound, saved and restored around the loop; nothing else is
    // pushed, so the stack is balanced. DSP-extension instructions, present on every target
    // build.rs enables this for; flags clobbered (CMP).
    unsafe {
        let end = xs.as_ptr().add(blocks * TAPS);
        core::arch::asm!(
            "push {{r7}}",
            "mov r7, {end}",
            "2:",
            "ldrd {x0}, {x2}, [{px}], #8",
            "sxtb16 {x1}, {x0}, ror #8",
            "sxtb16 {x0}, {x0}",
            "sxtb16 {x3}, {x2}, ror #8",
            "sxtb16 {x2}, {x2}",
            "ldrd {wa}, {wb}, [{pw}], #8",
            "sxtb16 {t}, {wa}",
            "smlad {s0}, {t}, {x0}, {s0}",
            "sxtb16 {t}, {wa}, ror #8",
            "smlad {s0}, {t}, {x1}, {s0}",
            "sxtb16 {t}, {wb}",
            "smlad {s0}, {t}, {x2}, {s0}",
            "sxtb16 {t}, {wb}, ror #8",
            "smlad {s0}, {t}, {x3}, {s0}",
            "ldrd {wa}, {wb}, [{pw}], #8",
            "sxtb16 {t}, {wa}",
            "smlad {s1}, {t}, {x0}, {s1}",
            "sxtb16 {t}, {wa}, ror #8",
            "smlad {s1}, {t}, {x1}, {s1}",
            "sxtb16 {t}, {wb}",
            "smlad {s1}, {t}, {x2}, {s1}",
            "sxtb16 {t}, {wb}, ror #8",
            "smlad {s1}, {t}, {x3}, {s1}",
            "ldrd {wa}, {wb}, [{pw}], #8",
            "sxtb16 {t}, {wa}",
            "smlad {s2}, {t}, {x0}, {s2}",
            "sxtb16 {t}, {wa}, ror #8",
            "smlad {s2}, {t}, {x1}, {s2}",
            "sxtb16 {t}, {wb}",
            "smlad {s2}, {t}, {x2}, {s2}",
            "sxtb16 {t}, {wb}, ror #8",
            "smlad {s2}, {t}, {x3}, {s2}",
            "ldrd {wa}, {wb}, [{pw}], #8",
            "sxtb16 {t}, {wa}",
            "smlad {s3}, {t}, {x0}, {s3}",
            "sxtb16 {t}, {wa}, ror #8",
            "smlad {s3}, {t}, {x1}, {s3}",
            "sxtb16 {t}, {wb}",
            "smlad {s3}, {t}, {x2}, {s3}",
            "sxtb16 {t}, {wb}, ror #8",
            "smlad {s3}, {t}, {x3}, {s3}",
            "cmp {px}, r7",
            "bne 2b",
            "pop {{r7}}",
            end = in(reg) end,
            px = inout(reg) xs.as_ptr() => _,
            pw = inout(reg) wg.as_ptr() => _,
            // Written after `end` is read: may share its register.
            x0 = lateout(reg) _,
            x1 = out(reg) _,
            x2 = out(reg) _,
            x3 = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            t = out(reg) _,
            s0 = inout(reg) s0,
            s1 = inout(reg) s1,
            s2 = inout(reg) s2,
            s3 = inout(reg) s3,
        );
    }
    [s0, s1, s2, s3]
}
