//! The f32 3×3 depthwise convolution's inner row in assembly: three outputs a pass, the
//! window's columns kept in registers from one output to the next, the same instructions at
//! every `opt-level` and `target-cpu` (see `tiled_f32.rs` for why Rust's `a += w * x` is not).
//!
//! Registers: the channel's nine weights in `s16`–`s24`, its bias in `s25`, the clamp's
//! bounds in `s26`–`s27`; three input columns of the three rows in `s0`–`s8` (a column's rows
//! in three consecutive registers), the sum in `s9`.

/// The three rows' next column into registers `$a`, `$m`, `$z` (one `VLDM` with write-back a
/// row).
macro_rules! column {
    ($a:literal, $m:literal, $z:literal) => {
        concat!(
            "vldmia {a}!, {{",
            $a,
            "}}\n",
            "vldmia {m}!, {{",
            $m,
            "}}\n",
            "vldmia {z}!, {{",
            $z,
            "}}\n",
        )
    };
}

/// One output from the columns `$p`, `$q`, `$r` (each given by its three registers): the
/// bias, then the nine products in the portable kernel's order (row by row, left to right).
macro_rules! nine {
    ([$p0:literal, $p1:literal, $p2:literal], [$q0:literal, $q1:literal, $q2:literal],
     [$r0:literal, $r1:literal, $r2:literal]) => {
        concat!(
            "vmov.f32 s9, s25\n",
            "vmla.f32 s9, s16, ",
            $p0,
            "\n",
            "vmla.f32 s9, s17, ",
            $q0,
            "\n",
            "vmla.f32 s9, s18, ",
            $r0,
            "\n",
            "vmla.f32 s9, s19, ",
            $p1,
            "\n",
            "vmla.f32 s9, s20, ",
            $q1,
            "\n",
            "vmla.f32 s9, s21, ",
            $r1,
            "\n",
            "vmla.f32 s9, s22, ",
            $p2,
            "\n",
            "vmla.f32 s9, s23, ",
            $q2,
            "\n",
            "vmla.f32 s9, s24, ",
            $r2,
            "\n",
        )
    };
}

/// [`crate::activation::clamp`]'s lower bound on the sum (`MI`: ordered "less than", so a NaN
/// stays).
macro_rules! low {
    () => {
        "vcmp.f32 s9, s26\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s9, s26\n"
    };
}

/// Its upper bound (`GT` is false when unordered).
macro_rules! high {
    () => {
        "vcmp.f32 s9, s27\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s9, s27\n"
    };
}

/// The sum to the next output.
macro_rules! store {
    () => {
        "vstmia {o}!, {{s9}}\n"
    };
}

/// One variant: `$first` loads the columns before the loop, `$pass` is one pass of three
/// outputs (their loads, sums, `$clamp` and stores).
macro_rules! dw_row {
    ($(#[$doc:meta])* $name:ident, $first:expr, $pass:expr) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) unsafe fn $name(
            rows: [*const f32; 3],
            out: *mut f32,
            passes: usize,
            params: &[f32; 12],
        ) {
            debug_assert!(passes >= 1);
            // SAFETY: the caller's promise bounds every load and store; the clobbered FPU
            // registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldmia {p}, {{s16-s27}}",
                    $first,
                    "2:",
                    $pass,
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    p = in(reg) params.as_ptr(),
                    a = inout(reg) rows[0] => _,
                    m = inout(reg) rows[1] => _,
                    z = inout(reg) rows[2] => _,
                    o = inout(reg) out => _,
                    n = inout(reg) passes => _,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                    out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                    options(nostack),
                );
            }
        }
    };
}

/// Stride 1: each output loads one column; the columns rotate through the three register
/// groups over a pass.
macro_rules! stride1 {
    ($(#[$doc:meta])* $name:ident, $clamp:expr) => {
        dw_row!(
            $(#[$doc])*
            $name,
            concat!(column!("s0", "s1", "s2"), column!("s3", "s4", "s5")),
            concat!(
                column!("s6", "s7", "s8"),
                nine!(["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6", "s7", "s8"]),
                $clamp,
                store!(),
                column!("s0", "s1", "s2"),
                nine!(["s3", "s4", "s5"], ["s6", "s7", "s8"], ["s0", "s1", "s2"]),
                $clamp,
                store!(),
                column!("s3", "s4", "s5"),
                nine!(["s6", "s7", "s8"], ["s0", "s1", "s2"], ["s3", "s4", "s5"]),
                $clamp,
                store!(),
            )
        );
    };
}

/// Stride 2: each output loads two columns, its first the previous output's last.
macro_rules! stride2 {
    ($(#[$doc:meta])* $name:ident, $clamp:expr) => {
        dw_row!(
            $(#[$doc])*
            $name,
            column!("s0", "s1", "s2"),
            concat!(
                column!("s3", "s4", "s5"),
                column!("s6", "s7", "s8"),
                nine!(["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6", "s7", "s8"]),
                $clamp,
                store!(),
                column!("s0", "s1", "s2"),
                column!("s3", "s4", "s5"),
                nine!(["s6", "s7", "s8"], ["s0", "s1", "s2"], ["s3", "s4", "s5"]),
                $clamp,
                store!(),
                column!("s6", "s7", "s8"),
                column!("s0", "s1", "s2"),
                nine!(["s3", "s4", "s5"], ["s6", "s7", "s8"], ["s0", "s1", "s2"]),
                $clamp,
                store!(),
            )
        );
    };
}

stride1!(
    /// `3 · passes` outputs of one row of an f32 3×3 depthwise convolution at stride 1, every
    /// window inside the input: per output one column of three inputs loaded, the bias and
    /// nine `VMLA` (the product rounded, then the sum, as the portable kernel's `acc += k ·
    /// x`), one `VSTM`: 14 instructions and the pass's loop for 9 MACs; no activation.
    ///
    /// `rows`: the three input rows at the first output's first column; `out`: the first
    /// output; `params`: the nine weights, the bias, the clamp's lower and upper bounds.
    ///
    /// # Safety
    /// `passes ≥ 1`; each row has `3 · passes + 2` readable `f32`s from its pointer, `out`
    /// `3 · passes` writable ones.
    dw3x3_s1,
    ""
);
stride1!(
    /// [`dw3x3_s1`] with each output clamped below at `params[10]` (a ReLU).
    ///
    /// # Safety
    /// As [`dw3x3_s1`].
    dw3x3_s1_low,
    low!()
);
stride1!(
    /// [`dw3x3_s1`] with each output clamped to `params[10]..=params[11]` (ReLU6).
    ///
    /// # Safety
    /// As [`dw3x3_s1`].
    dw3x3_s1_clip,
    concat!(low!(), high!())
);
stride2!(
    /// [`dw3x3_s1`] at stride 2: two columns loaded per output.
    ///
    /// # Safety
    /// `passes ≥ 1`; each row has `6 · passes + 1` readable `f32`s from its pointer, `out`
    /// `3 · passes` writable ones.
    dw3x3_s2,
    ""
);
stride2!(
    /// [`dw3x3_s2`] with each output clamped below at `params[10]`.
    ///
    /// # Safety
    /// As [`dw3x3_s2`].
    dw3x3_s2_low,
    low!()
);
stride2!(
    /// [`dw3x3_s2`] with each output clamped to `params[10]..=params[11]`.
    ///
    /// # Safety
    /// As [`dw3x3_s2`].
    dw3x3_s2_clip,
    concat!(low!(), high!())
);

/// One variant of the row (its arguments).
pub(crate) type Dw3x3Row = unsafe fn([*const f32; 3], *mut f32, usize, &[f32; 12]);
