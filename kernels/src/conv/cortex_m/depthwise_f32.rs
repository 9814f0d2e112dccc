//! The f32 3×3 depthwise convolution's output rows in assembly, border outputs included (one
//! column of padding): three interior outputs a pass, the window's columns kept in registers
//! from one output to the next, the same instructions at every `opt-level` and `target-cpu`
//! (see `tiled_f32.rs` for why Rust's `a += w * x` is not; and at opt-level "z" the Rust
//! around a row call cost as much as the row).
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
        vclamp!(low, "s26", "s9")
    };
}

/// Its upper bound (`GT` is false when unordered).
macro_rules! high {
    () => {
        vclamp!(high, "s27", "s9")
    };
}

/// The sum to the next output.
macro_rules! store {
    () => {
        "vstmia {o}!, {{s9}}\n"
    };
}

/// A left border output (one column of padding): the bias, then the six products of the
/// window's last two columns with the input's first two, `$p` and `$q`, row by row.
macro_rules! left {
    ([$p0:literal, $p1:literal, $p2:literal], [$q0:literal, $q1:literal, $q2:literal]) => {
        concat!(
            "vmov.f32 s9, s25\n",
            "vmla.f32 s9, s17, ",
            $p0,
            "\n",
            "vmla.f32 s9, s18, ",
            $q0,
            "\n",
            "vmla.f32 s9, s20, ",
            $p1,
            "\n",
            "vmla.f32 s9, s21, ",
            $q1,
            "\n",
            "vmla.f32 s9, s23, ",
            $p2,
            "\n",
            "vmla.f32 s9, s24, ",
            $q2,
            "\n",
        )
    };
}

/// A right border output: the window's first two columns with the input's last two.
macro_rules! right {
    ([$p0:literal, $p1:literal, $p2:literal], [$q0:literal, $q1:literal, $q2:literal]) => {
        concat!(
            "vmov.f32 s9, s25\n",
            "vmla.f32 s9, s16, ",
            $p0,
            "\n",
            "vmla.f32 s9, s17, ",
            $q0,
            "\n",
            "vmla.f32 s9, s19, ",
            $p1,
            "\n",
            "vmla.f32 s9, s20, ",
            $q1,
            "\n",
            "vmla.f32 s9, s22, ",
            $p2,
            "\n",
            "vmla.f32 s9, s23, ",
            $q2,
            "\n",
        )
    };
}

/// The two rows' next column into registers `$a`, `$m` (a border row's window).
macro_rules! column2 {
    ($a:literal, $m:literal) => {
        concat!("vldmia {a}!, {{", $a, "}}\n", "vldmia {m}!, {{", $m, "}}\n")
    };
}

/// [`nine!`] for a window of two input rows: the bias, then the six products row by row
/// (weights `s16`–`s21`: the two kernel rows the input rows meet).
macro_rules! six {
    ([$p0:literal, $p1:literal], [$q0:literal, $q1:literal], [$r0:literal, $r1:literal]) => {
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
        )
    };
}

/// [`left!`] for a window of two input rows (four products).
macro_rules! left2 {
    ([$p0:literal, $p1:literal], [$q0:literal, $q1:literal]) => {
        concat!(
            "vmov.f32 s9, s25\n",
            "vmla.f32 s9, s17, ",
            $p0,
            "\n",
            "vmla.f32 s9, s18, ",
            $q0,
            "\n",
            "vmla.f32 s9, s20, ",
            $p1,
            "\n",
            "vmla.f32 s9, s21, ",
            $q1,
            "\n",
        )
    };
}

/// [`right!`] for a window of two input rows (four products).
macro_rules! right2 {
    ([$p0:literal, $p1:literal], [$q0:literal, $q1:literal]) => {
        concat!(
            "vmov.f32 s9, s25\n",
            "vmla.f32 s9, s16, ",
            $p0,
            "\n",
            "vmla.f32 s9, s17, ",
            $q0,
            "\n",
            "vmla.f32 s9, s19, ",
            $p1,
            "\n",
            "vmla.f32 s9, s20, ",
            $q1,
            "\n",
        )
    };
}

/// One output row's shape and one channel's numbers, read by the rows in assembly: the
/// weights, bias and clamp bounds ([`Dw3x3Rows::params`]) into FPU registers once, the rest
/// (byte offsets) once a row.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Dw3x3Rows {
    /// The channel's nine weights, its bias, the clamp's lower and upper bounds.
    pub params: [f32; 12],
    /// Interior outputs a row (windows inside the input).
    pub interior: usize,
    /// [`DW_LEFT`] and [`DW_RIGHT`]: the row's border outputs.
    pub edges: usize,
    /// The window's second and third input rows' addresses less its first's (wrapping).
    pub rows: [usize; 2],
    /// From one output row's first input row to the next one's, in bytes.
    pub step: usize,
}

/// One variant: `$body` is one whole output row (its labels: `2` the loop over its interior
/// outputs, `9` its end), `$clamp` already spliced in, repeated for `rows` output rows.
macro_rules! dw_row {
    ($(#[$doc:meta])* $name:ident, $body:expr) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) unsafe fn $name(top: *const f32, out: *mut f32, rows: usize, p: &Dw3x3Rows) {
            debug_assert!(rows >= 1);
            // SAFETY: the caller's promise bounds every load and store; the clobbered FPU
            // registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldmia {p}, {{s16-s27}}",
                    "4:",
                    "mov {a}, {top}",
                    "ldr {e}, [{p}, #56]",
                    "add {m}, {top}, {e}",
                    "ldr {e}, [{p}, #60]",
                    "add {z}, {top}, {e}",
                    "ldr {n}, [{p}, #48]",
                    "ldr {e}, [{p}, #52]",
                    $body,
                    "ldr {e}, [{p}, #64]",
                    "add {top}, {top}, {e}",
                    "subs {r}, {r}, #1",
                    "bne 4b",
                    p = in(reg) p,
                    top = inout(reg) top => _,
                    r = inout(reg) rows => _,
                    o = inout(reg) out => _,
                    a = out(reg) _,
                    m = out(reg) _,
                    z = out(reg) _,
                    n = out(reg) _,
                    e = out(reg) _,
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

/// The register kit of a window of three input rows: a column's three rows in one group
/// (`A`: `s0`–`s2`, `B`: `s3`–`s5`, `C`: `s6`–`s8`); `col` loads a group, `full` sums an
/// interior output from three groups, `left` and `right` a border output from two.
macro_rules! rows3 {
    (col A) => {
        column!("s0", "s1", "s2")
    };
    (col B) => {
        column!("s3", "s4", "s5")
    };
    (col C) => {
        column!("s6", "s7", "s8")
    };
    (full A B C) => {
        nine!(["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6", "s7", "s8"])
    };
    (full B C A) => {
        nine!(["s3", "s4", "s5"], ["s6", "s7", "s8"], ["s0", "s1", "s2"])
    };
    (full C A B) => {
        nine!(["s6", "s7", "s8"], ["s0", "s1", "s2"], ["s3", "s4", "s5"])
    };
    (left A B) => {
        left!(["s0", "s1", "s2"], ["s3", "s4", "s5"])
    };
    (left C A) => {
        left!(["s6", "s7", "s8"], ["s0", "s1", "s2"])
    };
    (right A B) => {
        right!(["s0", "s1", "s2"], ["s3", "s4", "s5"])
    };
    (right B C) => {
        right!(["s3", "s4", "s5"], ["s6", "s7", "s8"])
    };
    (right C A) => {
        right!(["s6", "s7", "s8"], ["s0", "s1", "s2"])
    };
}

/// The register kit of a border row's window, two input rows inside the input (the third in
/// the padding, above or below): a column's two rows in one group (`A`: `s0`–`s1`, `B`:
/// `s2`–`s3`, `C`: `s4`–`s5`), the window's two kernel rows' weights in `s16`–`s21`.
macro_rules! rows2 {
    (col A) => {
        column2!("s0", "s1")
    };
    (col B) => {
        column2!("s2", "s3")
    };
    (col C) => {
        column2!("s4", "s5")
    };
    (full A B C) => {
        six!(["s0", "s1"], ["s2", "s3"], ["s4", "s5"])
    };
    (full B C A) => {
        six!(["s2", "s3"], ["s4", "s5"], ["s0", "s1"])
    };
    (full C A B) => {
        six!(["s4", "s5"], ["s0", "s1"], ["s2", "s3"])
    };
    (left A B) => {
        left2!(["s0", "s1"], ["s2", "s3"])
    };
    (left C A) => {
        left2!(["s4", "s5"], ["s0", "s1"])
    };
    (right A B) => {
        right2!(["s0", "s1"], ["s2", "s3"])
    };
    (right B C) => {
        right2!(["s2", "s3"], ["s4", "s5"])
    };
    (right C A) => {
        right2!(["s4", "s5"], ["s0", "s1"])
    };
}

/// Stride 1: each interior output loads one column; the columns rotate through the three
/// register groups `A`, `B`, `C` of the kit `$k`, three outputs a loop pass, leaving it after
/// any of them (`6`: the last two columns in `B`, `C`; `7`: in `C`, `A`; `5`: in `A`, `B`),
/// where the right border output reads them.
macro_rules! stride1 {
    ($(#[$doc:meta])* $name:ident, $k:ident, $clamp:expr) => {
        dw_row!(
            $(#[$doc])*
            $name,
            concat!(
                $k!(col A),
                $k!(col B),
                "tst {e}, #1\n",
                "beq 1f\n",
                $k!(left A B),
                $clamp,
                store!(),
                "1:\n",
                "cmp {n}, #0\n",
                "beq 5f\n",
                "2:\n",
                $k!(col C),
                $k!(full A B C),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "beq 6f\n",
                $k!(col A),
                $k!(full B C A),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "beq 7f\n",
                $k!(col B),
                $k!(full C A B),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "bne 2b\n",
                "5:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(right A B),
                $clamp,
                store!(),
                "b 9f\n",
                "6:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(right B C),
                $clamp,
                store!(),
                "b 9f\n",
                "7:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(right C A),
                $clamp,
                store!(),
                "9:\n",
            )
        );
    };
}

/// Stride 2: each interior output loads two columns, its first the previous output's last
/// (in `A` before the loop: after a left border output, which reads the input's columns 0
/// and 1 from `C` and `A`, column 1). A right border output loads its second column after
/// the first, which the last interior output left (`5`: in `A`, `6`: in `C`, `7`: in `B`).
macro_rules! stride2 {
    ($(#[$doc:meta])* $name:ident, $k:ident, $clamp:expr) => {
        dw_row!(
            $(#[$doc])*
            $name,
            concat!(
                "tst {e}, #1\n",
                "beq 1f\n",
                $k!(col C),
                $k!(col A),
                $k!(left C A),
                $clamp,
                store!(),
                "b 3f\n",
                "1:\n",
                $k!(col A),
                "3:\n",
                "cmp {n}, #0\n",
                "beq 5f\n",
                "2:\n",
                $k!(col B),
                $k!(col C),
                $k!(full A B C),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "beq 6f\n",
                $k!(col A),
                $k!(col B),
                $k!(full C A B),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "beq 7f\n",
                $k!(col C),
                $k!(col A),
                $k!(full B C A),
                $clamp,
                store!(),
                "subs {n}, {n}, #1\n",
                "bne 2b\n",
                "5:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(col B),
                $k!(right A B),
                $clamp,
                store!(),
                "b 9f\n",
                "6:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(col A),
                $k!(right C A),
                $clamp,
                store!(),
                "b 9f\n",
                "7:\n",
                "tst {e}, #2\n",
                "beq 9f\n",
                $k!(col C),
                $k!(right B C),
                $clamp,
                store!(),
                "9:\n",
            )
        );
    };
}

/// `edges` bit: the row starts with a left border output (one column of padding: the
/// window's first column outside the input).
pub(crate) const DW_LEFT: usize = 1;
/// `edges` bit: the row ends with a right border output (the window's last column outside).
pub(crate) const DW_RIGHT: usize = 2;

stride1!(
    /// `rows` whole output rows of one channel of an f32 3×3 depthwise convolution at stride
    /// 1 whose three input rows are inside the input, each: a left border output if
    /// `p.edges` has [`DW_LEFT`] (six products), `p.interior` outputs whose windows are
    /// inside the input (nine), a right border output if `p.edges` has [`DW_RIGHT`]. Each
    /// output is the bias plus its products row by row, left to right (`VMLA`: the product
    /// rounded, then the sum, as the portable kernel's `acc += k · x`); per interior output
    /// one column of three inputs loaded, the bias and nine `VMLA`, one `VSTM` and the
    /// loop's count: 16 instructions for 9 MACs; no activation.
    ///
    /// `top`: the first output row's first input row at its first column (its second and
    /// third at `p.rows` bytes from it, the next output row's `p.step` bytes on); `out`: the
    /// first output, the rows' outputs one after the other.
    ///
    /// # Safety
    /// `rows ≥ 1`; each output row's three input rows have `p.interior + 2` readable `f32`s
    /// (the columns the outputs read, border outputs' included); `out` one writable `f32`
    /// per output.
    dw3x3_s1,
    rows3,
    ""
);
stride1!(
    /// [`dw3x3_s1`] with each output clamped below at `params[10]` (a ReLU).
    ///
    /// # Safety
    /// As [`dw3x3_s1`].
    dw3x3_s1_low,
    rows3,
    low!()
);
stride1!(
    /// [`dw3x3_s1`] with each output clamped to `params[10]..=params[11]` (ReLU6).
    ///
    /// # Safety
    /// As [`dw3x3_s1`].
    dw3x3_s1_clip,
    rows3,
    concat!(low!(), high!())
);
stride2!(
    /// [`dw3x3_s1`] at stride 2: two columns loaded per interior output.
    ///
    /// # Safety
    /// `rows ≥ 1`; each output row's three input rows have `2 · p.interior + 1` readable
    /// `f32`s, one more with a left border output and one more with a right one; `out` one
    /// writable `f32` per output.
    dw3x3_s2,
    rows3,
    ""
);
stride2!(
    /// [`dw3x3_s2`] with each output clamped below at `params[10]`.
    ///
    /// # Safety
    /// As [`dw3x3_s2`].
    dw3x3_s2_low,
    rows3,
    low!()
);
stride2!(
    /// [`dw3x3_s2`] with each output clamped to `params[10]..=params[11]`.
    ///
    /// # Safety
    /// As [`dw3x3_s2`].
    dw3x3_s2_clip,
    rows3,
    concat!(low!(), high!())
);

stride1!(
    /// [`dw3x3_s1`] for a border row whose window has one input row in the padding (above
    /// or below): two input rows (the second `p.rows[0]` bytes after the first), the two
    /// kernel rows they meet in `p.params[0..6]` (six products an interior output, four a
    /// border one).
    ///
    /// # Safety
    /// As [`dw3x3_s1`], for the two input rows.
    dw3x3_s1_2rows,
    rows2,
    ""
);
stride1!(
    /// [`dw3x3_s1_2rows`] clamped below, as [`dw3x3_s1_low`].
    ///
    /// # Safety
    /// As [`dw3x3_s1_2rows`].
    dw3x3_s1_2rows_low,
    rows2,
    low!()
);
stride1!(
    /// [`dw3x3_s1_2rows`] clamped, as [`dw3x3_s1_clip`].
    ///
    /// # Safety
    /// As [`dw3x3_s1_2rows`].
    dw3x3_s1_2rows_clip,
    rows2,
    concat!(low!(), high!())
);
stride2!(
    /// [`dw3x3_s2`] for a border row, as [`dw3x3_s1_2rows`].
    ///
    /// # Safety
    /// As [`dw3x3_s2`], for the two input rows.
    dw3x3_s2_2rows,
    rows2,
    ""
);
stride2!(
    /// [`dw3x3_s2_2rows`] clamped below.
    ///
    /// # Safety
    /// As [`dw3x3_s2_2rows`].
    dw3x3_s2_2rows_low,
    rows2,
    low!()
);
stride2!(
    /// [`dw3x3_s2_2rows`] clamped.
    ///
    /// # Safety
    /// As [`dw3x3_s2_2rows`].
    dw3x3_s2_2rows_clip,
    rows2,
    concat!(low!(), high!())
);

/// One variant of the rows (its arguments).
pub(crate) type Dw3x3Row = unsafe fn(*const f32, *mut f32, usize, &Dw3x3Rows);

// The assembly's offsets into `Dw3x3Rows`.
const _: () = {
    assert!(core::mem::offset_of!(Dw3x3Rows, interior) == 48);
    assert!(core::mem::offset_of!(Dw3x3Rows, edges) == 52);
    assert!(core::mem::offset_of!(Dw3x3Rows, rows) == 56);
    assert!(core::mem::offset_of!(Dw3x3Rows, step) == 64);
};
