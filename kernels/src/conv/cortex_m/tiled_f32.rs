//! The f32 convolution tile's inner loop in assembly: the same instructions at every
//! `opt-level` and `target-cpu` (LLVM's Cortex-M4 model marks `VMLA` slow, so at speed
//! opt-levels with `-C target-cpu=cortex-m4` Rust's `a += w * x` becomes `VMUL` + `VADD`; and
//! stable Rust cannot pass an `f32` in an FPU register to `asm!` on this target, so the
//! accumulators go in and out through memory once per tile).

/// The 16 sums of a tile of four output channels × four adjacent output pixels of a 3-wide,
/// stride-1, undilated-column window whose pixels all read inside the input row (no left or
/// right padding): per window row read, one `VLDM` of its six inputs, three `VLDM` of four
/// weights and 48 `VMLA` (not fused: the product is rounded, then the sum, as `a + w * x`),
/// with the loop's pointer step and branch: 55 instructions for 48 MACs. Each sum gets the
/// taps in the portable tile's order (input channel, window row, tap).
///
/// `a[j][i]`: channel `j`, pixel `i`, the running sums (in and out). `x`: the input at the
/// first row read of channel 0, at the column of pixel 0's first tap. `w`: that row's packed
/// weights (three taps of four channels). Each of `in_c` channels reads `rows` window rows,
/// `row_step` bytes apart in the input, then steps `plane_step` bytes on to the next channel's
/// first row, and the weights `w_skip` bytes past the rows it did not read.
///
/// # Safety
/// `in_c ≥ 1`, `rows ≥ 1`; every `x + c·(rows·row_step + plane_step) + r·row_step` (channel
/// `c < in_c`, row `r < rows`) starts six readable `f32`s, and every weight block of 12
/// `f32`s the walk above reaches is readable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile_4x4_3wide(
    a: &mut [[f32; 4]; 4],
    x: *const f32,
    w: *const f32,
    in_c: usize,
    rows: usize,
    row_step: usize,
    plane_step: usize,
    w_skip: usize,
) {
    debug_assert!(in_c >= 1 && rows >= 1);
    // SAFETY: the caller's promise bounds every load; the sums are read from and written
    // back to `a`; the clobbered FPU registers are declared.
    unsafe {
        core::arch::asm!(
                "vldmia {acc}, {{s16-s31}}",
                "2:",
                "mov {r}, {rows}",
                "3:",
                "vldmia {x}, {{s0-s5}}",
                "add {x}, {x}, {row_step}",
                "vldmia {w}!, {{s6-s9}}",
                "vmla.f32 s16, s6, s0",
                "vmla.f32 s17, s6, s1",
                "vmla.f32 s18, s6, s2",
                "vmla.f32 s19, s6, s3",
                "vmla.f32 s20, s7, s0",
                "vmla.f32 s21, s7, s1",
                "vmla.f32 s22, s7, s2",
                "vmla.f32 s23, s7, s3",
                "vmla.f32 s24, s8, s0",
                "vmla.f32 s25, s8, s1",
                "vmla.f32 s26, s8, s2",
                "vmla.f32 s27, s8, s3",
                "vmla.f32 s28, s9, s0",
                "vmla.f32 s29, s9, s1",
                "vmla.f32 s30, s9, s2",
                "vmla.f32 s31, s9, s3",
                "vldmia {w}!, {{s6-s9}}",
                "vmla.f32 s16, s6, s1",
                "vmla.f32 s17, s6, s2",
                "vmla.f32 s18, s6, s3",
                "vmla.f32 s19, s6, s4",
                "vmla.f32 s20, s7, s1",
                "vmla.f32 s21, s7, s2",
                "vmla.f32 s22, s7, s3",
                "vmla.f32 s23, s7, s4",
                "vmla.f32 s24, s8, s1",
                "vmla.f32 s25, s8, s2",
                "vmla.f32 s26, s8, s3",
                "vmla.f32 s27, s8, s4",
                "vmla.f32 s28, s9, s1",
                "vmla.f32 s29, s9, s2",
                "vmla.f32 s30, s9, s3",
                "vmla.f32 s31, s9, s4",
                "vldmia {w}!, {{s6-s9}}",
                "vmla.f32 s16, s6, s2",
                "vmla.f32 s17, s6, s3",
                "vmla.f32 s18, s6, s4",
                "vmla.f32 s19, s6, s5",
                "vmla.f32 s20, s7, s2",
                "vmla.f32 s21, s7, s3",
                "vmla.f32 s22, s7, s4",
                "vmla.f32 s23, s7, s5",
                "vmla.f32 s24, s8, s2",
                "vmla.f32 s25, s8, s3",
                "vmla.f32 s26, s8, s4",
                "vmla.f32 s27, s8, s5",
                "vmla.f32 s28, s9, s2",
                "vmla.f32 s29, s9, s3",
                "vmla.f32 s30, s9, s4",
                "vmla.f32 s31, s9, s5",
                "subs {r}, {r}, #1",
                "bne 3b",
                "add {x}, {x}, {plane_step}",
                "add {w}, {w}, {w_skip}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vstmia {acc}, {{s16-s31}}",
            acc = in(reg) a.as_mut_ptr(),
            x = inout(reg) x => _,
            w = inout(reg) w => _,
            n = inout(reg) in_c => _,
            r = out(reg) _,
            rows = in(reg) rows,
            row_step = in(reg) row_step,
            plane_step = in(reg) plane_step,
            w_skip = in(reg) w_skip,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _,
            out("s16") _, out("s17") _, out("s18") _, out("s19") _,
            out("s20") _, out("s21") _, out("s22") _, out("s23") _,
            out("s24") _, out("s25") _, out("s26") _, out("s27") _,
            out("s28") _, out("s29") _, out("s30") _, out("s31") _,
            options(nostack),
        );
    }
}
