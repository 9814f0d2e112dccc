//! The f32 convolution tile's inner loop in assembly, a pixel's window walk (a window that
//! reaches into the padding) and a clamped tile's stores: the same instructions at every
//! `opt-level` and `target-cpu` (LLVM's Cortex-M4 model marks `VMLA` slow, so at speed
//! opt-levels with `-C target-cpu=cortex-m4` Rust's `a += w * x` becomes `VMUL` + `VADD`; at
//! "z" the outliner turns repeated sequences into calls; and stable Rust cannot pass an `f32`
//! in an FPU register to `asm!` on this target, so the accumulators go in and out through
//! memory once per tile).
//!
//! Registers: the tile's 16 sums in `s16`–`s31` (`s16 + 4j + i`: channel `j`, pixel `i`), one
//! window row's inputs from `s0` on (at stride 1 pixel `i`'s tap `t` reads `s(i + t)`, six
//! inputs; at stride 2 `s(2i + t)`, nine), one tap's four weights in `s9`–`s12`.

/// One variant of the tile (arguments as [`tile_4x4_3wide`]'s).
pub(crate) type Tile3Wide =
    unsafe fn(&mut [[f32; 4]; 4], *const f32, *const f32, usize, usize, usize, usize, usize);

/// `VMLA` of the four channels' weights (`s9`–`s12`) by input `$x` into sums `$a0`–`$a3`: one
/// pixel's lane of a tap.
macro_rules! lane {
    ($a0:literal, $a1:literal, $a2:literal, $a3:literal, $x:literal) => {
        concat!(
            "vmla.f32 ",
            $a0,
            ", s9, ",
            $x,
            "\n",
            "vmla.f32 ",
            $a1,
            ", s10, ",
            $x,
            "\n",
            "vmla.f32 ",
            $a2,
            ", s11, ",
            $x,
            "\n",
            "vmla.f32 ",
            $a3,
            ", s12, ",
            $x,
            "\n",
        )
    };
}

/// Pixel `0`..`3`'s lane of a tap reading input register `$x`.
macro_rules! lane0 {
    ($x:literal) => {
        lane!("s16", "s20", "s24", "s28", $x)
    };
}
macro_rules! lane1 {
    ($x:literal) => {
        lane!("s17", "s21", "s25", "s29", $x)
    };
}
macro_rules! lane2 {
    ($x:literal) => {
        lane!("s18", "s22", "s26", "s30", $x)
    };
}
macro_rules! lane3 {
    ($x:literal) => {
        lane!("s19", "s23", "s27", "s31", $x)
    };
}

/// One variant of the tile: `$load` fills the input registers the taps read, `$tap0`–`$tap2`
/// are the taps' `VMLA`s (a pixel whose tap falls into the padding has no lane there).
macro_rules! tile_3wide {
    ($(#[$doc:meta])* $name:ident, $load:expr, $tap0:expr, $tap1:expr, $tap2:expr) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        pub(crate) unsafe fn $name(
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
            // SAFETY: the caller's promise bounds every load; the sums are read from and
            // written back to `a`; the clobbered FPU registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldmia {acc}, {{s16-s31}}",
                    "2:",
                    "mov {r}, {rows}",
                    "3:",
                    $load,
                    "add {x}, {x}, {row_step}",
                    "vldmia {w}!, {{s9-s12}}",
                    $tap0,
                    "vldmia {w}!, {{s9-s12}}",
                    $tap1,
                    "vldmia {w}!, {{s9-s12}}",
                    $tap2,
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
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    out("s12") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                    out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                    out("s28") _, out("s29") _, out("s30") _, out("s31") _,
                    options(nostack),
                );
            }
        }
    };
}

tile_3wide!(
    /// The 16 sums of a tile of four output channels × four adjacent output pixels of a
    /// 3-wide, stride-1 window with undilated columns, every pixel's taps inside the input
    /// row: per window row read, one `VLDM` of its six inputs, three `VLDM` of four weights
    /// and 48 `VMLA` (not fused: the product is rounded, then the sum, as `a + w * x`), with
    /// the loop's pointer step and branch: 55 instructions for 48 MACs. Each sum gets the
    /// taps in the portable tile's order (input channel, window row, tap).
    ///
    /// `a[j][i]`: channel `j`, pixel `i`, the running sums (in and out). `x`: the input at
    /// the first row read of channel 0, at the column of pixel 0's first tap. `w`: that row's
    /// packed weights (three taps of four channels). Each of `in_c` channels reads `rows`
    /// window rows, `row_step` bytes apart in the input, then steps `plane_step` bytes on to
    /// the next channel's first row, and the weights `w_skip` bytes past the rows it did not
    /// read.
    ///
    /// # Safety
    /// `in_c ≥ 1`, `rows ≥ 1`; every `x + c·(rows·row_step + plane_step) + r·row_step`
    /// (channel `c < in_c`, row `r < rows`) starts six readable `f32`s, and every weight
    /// block of 12 `f32`s the walk above reaches is readable.
    tile_4x4_3wide,
    "vldmia {x}, {{s0-s5}}",
    concat!(lane0!("s0"), lane1!("s1"), lane2!("s2"), lane3!("s3")),
    concat!(lane0!("s1"), lane1!("s2"), lane2!("s3"), lane3!("s4")),
    concat!(lane0!("s2"), lane1!("s3"), lane2!("s4"), lane3!("s5"))
);

tile_3wide!(
    /// [`tile_4x4_3wide`] for a tile whose pixel 0 reads one column of left padding: its
    /// first tap is skipped (as the portable tile skips it), `x` points at pixel 1's first
    /// tap and each row loads five inputs (44 `VMLA` a row).
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with five readable `f32`s at each row's `x`.
    tile_4x4_3wide_left,
    "vldmia {x}, {{s1-s5}}",
    concat!(lane1!("s1"), lane2!("s2"), lane3!("s3")),
    concat!(lane0!("s1"), lane1!("s2"), lane2!("s3"), lane3!("s4")),
    concat!(lane0!("s2"), lane1!("s3"), lane2!("s4"), lane3!("s5"))
);

tile_3wide!(
    /// [`tile_4x4_3wide`] for a tile whose pixel 3 reads one column of right padding: its
    /// last tap is skipped, each row loads five inputs (44 `VMLA` a row).
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with five readable `f32`s at each row's `x`.
    tile_4x4_3wide_right,
    "vldmia {x}, {{s0-s4}}",
    concat!(lane0!("s0"), lane1!("s1"), lane2!("s2"), lane3!("s3")),
    concat!(lane0!("s1"), lane1!("s2"), lane2!("s3"), lane3!("s4")),
    concat!(lane0!("s2"), lane1!("s3"), lane2!("s4"))
);

tile_3wide!(
    /// [`tile_4x4_3wide`] for a row of four pixels with one column of padding on each side
    /// (a 4-wide input): pixel 0's first tap and pixel 3's last are skipped, `x` points at
    /// pixel 1's first tap and each row loads four inputs (40 `VMLA` a row).
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with four readable `f32`s at each row's `x`.
    tile_4x4_3wide_both,
    "vldmia {x}, {{s1-s4}}",
    concat!(lane1!("s1"), lane2!("s2"), lane3!("s3")),
    concat!(lane0!("s1"), lane1!("s2"), lane2!("s3"), lane3!("s4")),
    concat!(lane0!("s2"), lane1!("s3"), lane2!("s4"))
);

tile_3wide!(
    /// [`tile_4x4_3wide`] at stride 2: the four pixels' windows read nine inputs a row (one
    /// `VLDM`), pixel `i`'s tap `t` input `2i + t`: 55 instructions for 48 MACs.
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with nine readable `f32`s at each row's `x`.
    tile_4x4_3wide_s2,
    "vldmia {x}, {{s0-s8}}",
    concat!(lane0!("s0"), lane1!("s2"), lane2!("s4"), lane3!("s6")),
    concat!(lane0!("s1"), lane1!("s3"), lane2!("s5"), lane3!("s7")),
    concat!(lane0!("s2"), lane1!("s4"), lane2!("s6"), lane3!("s8"))
);

tile_3wide!(
    /// [`tile_4x4_3wide_s2`] with pixel 0's first tap in the left padding (skipped): `x`
    /// points at its second tap, eight inputs a row.
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with eight readable `f32`s at each row's `x`.
    tile_4x4_3wide_s2_left,
    "vldmia {x}, {{s1-s8}}",
    concat!(lane1!("s2"), lane2!("s4"), lane3!("s6")),
    concat!(lane0!("s1"), lane1!("s3"), lane2!("s5"), lane3!("s7")),
    concat!(lane0!("s2"), lane1!("s4"), lane2!("s6"), lane3!("s8"))
);

tile_3wide!(
    /// [`tile_4x4_3wide_s2`] with pixel 3's last tap in the right padding (skipped): eight
    /// inputs a row.
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with eight readable `f32`s at each row's `x`.
    tile_4x4_3wide_s2_right,
    "vldmia {x}, {{s0-s7}}",
    concat!(lane0!("s0"), lane1!("s2"), lane2!("s4"), lane3!("s6")),
    concat!(lane0!("s1"), lane1!("s3"), lane2!("s5"), lane3!("s7")),
    concat!(lane0!("s2"), lane1!("s4"), lane2!("s6"))
);

tile_3wide!(
    /// [`tile_4x4_3wide_s2`] with padding on both sides (a 7-wide input): seven inputs a row
    /// from pixel 0's second tap.
    ///
    /// # Safety
    /// As [`tile_4x4_3wide`], with seven readable `f32`s at each row's `x`.
    tile_4x4_3wide_s2_both,
    "vldmia {x}, {{s1-s7}}",
    concat!(lane1!("s2"), lane2!("s4"), lane3!("s6")),
    concat!(lane0!("s1"), lane1!("s3"), lane2!("s5"), lane3!("s7")),
    concat!(lane0!("s2"), lane1!("s4"), lane2!("s6"))
);

/// A run of taps of one window row that all four pixels read inside the input, for a window
/// of any width: per tap one `VLDM` of the four pixels' inputs (seven at stride 2, every
/// other one used), one of the four channels' weights, 16 `VMLA`; 21 instructions for 16
/// MACs with the loop. `$load` loads the pixels' inputs, `$tap` the products.
macro_rules! taps_4x4 {
    ($(#[$doc:meta])* $name:ident, $load:expr, $tap:expr) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) unsafe fn $name(
            a: &mut [[f32; 4]; 4],
            x: *const f32,
            w: *const f32,
            taps: usize,
            x_step: usize,
        ) {
            debug_assert!(taps >= 1);
            // SAFETY: the caller's promise bounds every load; the sums are read from and
            // written back to `a`; the clobbered FPU registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldmia {acc}, {{s16-s31}}",
                    "2:",
                    $load,
                    "add {x}, {x}, {x_step}",
                    "vldmia {w}!, {{s9-s12}}",
                    $tap,
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "vstmia {acc}, {{s16-s31}}",
                    acc = in(reg) a.as_mut_ptr(),
                    x = inout(reg) x => _,
                    w = inout(reg) w => _,
                    n = inout(reg) taps => _,
                    x_step = in(reg) x_step,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _,
                    out("s9") _, out("s10") _, out("s11") _, out("s12") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                    out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                    out("s28") _, out("s29") _, out("s30") _, out("s31") _,
                    options(nostack),
                );
            }
        }
    };
}

taps_4x4!(
    /// `taps` taps (each `x_step` bytes right of the last) of one window row into the 4 × 4
    /// tile's sums `a` (as [`tile_4x4_3wide`]'s), the four pixels side by side (stride 1):
    /// `x` is pixel 0's input of the first tap, `w` its four weights (the next taps' follow).
    ///
    /// # Safety
    /// `taps ≥ 1`; four readable `f32`s at `x + t·x_step` and at `w + 16·t` bytes for every
    /// tap `t < taps`.
    taps_4x4_s1,
    "vldmia {x}, {{s0-s3}}",
    concat!(lane0!("s0"), lane1!("s1"), lane2!("s2"), lane3!("s3"))
);

taps_4x4!(
    /// [`taps_4x4_s1`] at stride 2: the pixels' inputs two apart.
    ///
    /// # Safety
    /// As [`taps_4x4_s1`], with seven readable `f32`s at each `x + t·x_step`.
    taps_4x4_s2,
    "vldmia {x}, {{s0-s6}}",
    concat!(lane0!("s0"), lane1!("s2"), lane2!("s4"), lane3!("s6"))
);

/// What [`window_4x1`] reads: four channels' sums of one output pixel and the walk over its
/// window's taps inside the input (channels, rows, then taps; the byte steps between them
/// net of the walk before, so each step is one addition).
#[repr(C)]
pub(crate) struct Window4x1 {
    /// The four channels' sums: their starts in, the sums out.
    pub acc: [f32; 4],
    /// Channel 0's first row's first tap inside the input, and its four channels' weights.
    pub x: *const f32,
    pub w: *const f32,
    pub channels: usize,
    /// Window rows and (adjacent) taps a row inside the input, both at least 1.
    pub rows: usize,
    pub taps: usize,
    /// Bytes from a row's end (after its last tap) to the next row's first tap, in the input
    /// and in the weights.
    pub x_row: usize,
    pub w_row: usize,
    /// Bytes from a channel's end (after its last row's end step) to the next channel's first
    /// tap, in the input and in the weights.
    pub x_plane: usize,
    pub w_plane: usize,
}

const _: () = {
    assert!(core::mem::offset_of!(Window4x1, x) == 16);
    assert!(core::mem::offset_of!(Window4x1, w) == 20);
    assert!(core::mem::offset_of!(Window4x1, channels) == 24);
    assert!(core::mem::offset_of!(Window4x1, rows) == 28);
    assert!(core::mem::offset_of!(Window4x1, taps) == 32);
    assert!(core::mem::offset_of!(Window4x1, x_row) == 36);
    assert!(core::mem::offset_of!(Window4x1, w_row) == 40);
    assert!(core::mem::offset_of!(Window4x1, x_plane) == 44);
    assert!(core::mem::offset_of!(Window4x1, w_plane) == 48);
};

/// The four channel sums of one output pixel over its window's taps inside the input, taps
/// adjacent in a row (undilated columns), in the portable tile's order (input channel,
/// window row, tap): per two taps one `VLDM` of the two inputs, one of their eight weights,
/// 8 `VMLA` (the product rounded, then the sum, as Rust's `a += w * x`) and the loop: 12
/// instructions for 8 MACs; an odd tap alone. The loops over rows and channels in the
/// assembly too: the same instructions at every `opt-level` and `target-cpu`. For a tile's
/// pixels whose windows reach into the padding (each pixel its own window) and a row's last
/// pixels.
///
/// # Safety
/// `p.channels`, `p.rows`, `p.taps` ≥ 1; the walk reads `p.taps` adjacent `f32`s from each
/// row's first tap and `4 · p.taps` weights from each row's first: every one readable.
#[inline(always)]
pub(crate) unsafe fn window_4x1(p: &mut Window4x1) {
    debug_assert!(p.channels >= 1 && p.rows >= 1 && p.taps >= 1);
    // SAFETY: the caller's promise bounds every load; the sums are read from and written back
    // to `p.acc`; the clobbered FPU registers are declared.
    unsafe {
        core::arch::asm!(
            "vldmia {p}, {{s16-s19}}",
            "ldr {x}, [{p}, #16]",
            "ldr {w}, [{p}, #20]",
            "ldr {c}, [{p}, #24]",
            "1:",
            "ldr {r}, [{p}, #28]",
            "2:",
            "ldr {n}, [{p}, #32]",
            "lsrs {n}, {n}, #1",
            "beq 4f",
            "3:",
            "vldmia {x}!, {{s0-s1}}",
            "vldmia {w}!, {{s4-s11}}",
            "vmla.f32 s16, s4, s0",
            "vmla.f32 s17, s5, s0",
            "vmla.f32 s18, s6, s0",
            "vmla.f32 s19, s7, s0",
            "vmla.f32 s16, s8, s1",
            "vmla.f32 s17, s9, s1",
            "vmla.f32 s18, s10, s1",
            "vmla.f32 s19, s11, s1",
            "subs {n}, {n}, #1",
            "bne 3b",
            "4:",
            "ldr {n}, [{p}, #32]",
            "tst {n}, #1",
            "beq 5f",
            "vldmia {x}!, {{s0}}",
            "vldmia {w}!, {{s4-s7}}",
            "vmla.f32 s16, s4, s0",
            "vmla.f32 s17, s5, s0",
            "vmla.f32 s18, s6, s0",
            "vmla.f32 s19, s7, s0",
            "5:",
            "ldr {n}, [{p}, #36]",
            "add {x}, {x}, {n}",
            "ldr {n}, [{p}, #40]",
            "add {w}, {w}, {n}",
            "subs {r}, {r}, #1",
            "bne 2b",
            "ldr {n}, [{p}, #44]",
            "add {x}, {x}, {n}",
            "ldr {n}, [{p}, #48]",
            "add {w}, {w}, {n}",
            "subs {c}, {c}, #1",
            "bne 1b",
            "vstmia {p}, {{s16-s19}}",
            p = in(reg) p as *mut Window4x1,
            x = out(reg) _,
            w = out(reg) _,
            c = out(reg) _,
            r = out(reg) _,
            n = out(reg) _,
            out("s0") _, out("s1") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s16") _, out("s17") _, out("s18") _, out("s19") _,
            options(nostack),
        );
    }
}

/// One variant of [`store_tile_low`]: `$clamp` on the sums in `s0`–`s15` (bounds in `s16`,
/// `s17`).
macro_rules! store_tile {
    ($(#[$doc:meta])* $name:ident, $clamp:expr) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) unsafe fn $name(
            tile: &[[f32; 4]; 4],
            out: *mut f32,
            out_step: usize,
            bounds: &[f32; 2],
        ) {
            // SAFETY: the caller's promise bounds the stores; the tile and the bounds are
            // read; the clobbered FPU registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldmia {t}, {{s0-s15}}",
                    "vldmia {b}, {{s16-s17}}",
                    $clamp,
                    "vstmia {o}, {{s0-s3}}",
                    "add {o}, {o}, {step}",
                    "vstmia {o}, {{s4-s7}}",
                    "add {o}, {o}, {step}",
                    "vstmia {o}, {{s8-s11}}",
                    "add {o}, {o}, {step}",
                    "vstmia {o}, {{s12-s15}}",
                    t = in(reg) tile.as_ptr(),
                    b = in(reg) bounds.as_ptr(),
                    o = inout(reg) out => _,
                    step = in(reg) out_step,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    out("s16") _, out("s17") _,
                    options(nostack),
                );
            }
        }
    };
}

store_tile!(
    /// A 4 × 4 tile's sums (`tile[j]`: channel `j`'s four pixels) clamped below at
    /// `bounds[0]` (a ReLU) and stored, channel `j`'s four at `out` plus `j · out_step`
    /// bytes: in assembly, the same instructions at every `opt-level` (at "z" LLVM's outliner
    /// turns Rust's sixteen clamps into calls).
    ///
    /// # Safety
    /// Four writable `f32`s at each `out + j · out_step` bytes (`j < 4`).
    store_tile_low,
    vclamp!(
        low, "s16", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
        "s13", "s14", "s15"
    )
);
store_tile!(
    /// [`store_tile_low`] clamped to `bounds[0] ..= bounds[1]` (ReLU6).
    ///
    /// # Safety
    /// As [`store_tile_low`].
    store_tile_clip,
    concat!(
        vclamp!(
            low, "s16", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
        "s13", "s14", "s15"
        ),
        vclamp!(
            high, "s17", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
        "s13", "s14", "s15"
        )
    )
);
