//! Cortex-M assembly for the packed int8 fully connected layer (`packed_i8.rs`) on targets
//! with the DSP extension (the `microarena_dsp` cfg of the build script).

use super::packed_i8::{ROWS, TAPS};

/// The dot block of [`dot_rows_dsp`] for one column (`$s`): one `LDRD` of eight weights,
/// four `SXTB16`, four `SMLAD`.
macro_rules! fc_column {
    ($s:literal) => {
        concat!(
            "ldrd {wa}, {wb}, [{pw}], #8\n",
            "sxtb16 {t}, {wa}\n",
            "smlad {",
            $s,
            "}, {t}, {x0}, {",
            $s,
            "}\n",
            "sxtb16 {t}, {wa}, ror #8\n",
            "smlad {",
            $s,
            "}, {t}, {x1}, {",
            $s,
            "}\n",
            "sxtb16 {t}, {wb}\n",
            "smlad {",
            $s,
            "}, {t}, {x2}, {",
            $s,
            "}\n",
            "sxtb16 {t}, {wb}, ror #8\n",
            "smlad {",
            $s,
            "}, {t}, {x3}, {",
            $s,
            "}\n",
        )
    };
}

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
            fc_column!("s0"),
            fc_column!("s1"),
            fc_column!("s2"),
            fc_column!("s3"),
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

/// What [`fc_groups_dsp`]'s assembly reads (and advances) between column groups; its address
/// sits on the stack while the dot loop holds every register.
#[cfg(target_abi = "eabihf")]
#[repr(C)]
pub(super) struct FcParams {
    /// The row of activations (4-byte aligned).
    pub x: *const i8,
    /// Its end: `x` plus the taps (a multiple of 8).
    pub x_end: *const i8,
    /// The next group's four biases.
    pub bias: *const i32,
    /// The next group's scales: four `f32`, or four [`Q31`](crate::scale::Q31) (two words
    /// each).
    pub scales: *const u32,
    /// Where the next group's four output bytes go (any alignment: `STR` may be unaligned
    /// on Armv7E-M).
    pub out: *mut i8,
    /// Groups left, at least 1.
    pub groups: u32,
    /// The output zero point.
    pub zero: i32,
    /// The smallest output byte, in each of the four bytes.
    pub lo4: u32,
    /// The largest output byte, in each of the four bytes.
    pub hi4: u32,
}

/// One sum's fixed point with one rounding (`Q31Once`): `SMMLA` of the doubled sum (the floor
/// of its high product plus the half unit), the right shift; the scale pointer in `{px}`.
#[cfg(target_abi = "eabihf")]
macro_rules! fc_fixed_once {
    ($s:literal) => {
        concat!(
            "ldrd {wa}, {wb}, [{px}], #8\n",
            // The exponent: the half unit's trailing zeros plus one (`Q31::exponent`).
            "rbit {t}, {wb}\n",
            "clz {t}, {t}\n",
            "add {t}, {t}, #1\n",
            "lsl {",
            $s,
            "}, {",
            $s,
            "}, #1\n",
            "smmla {",
            $s,
            "}, {",
            $s,
            "}, {wa}, {wb}\n",
            "asr {",
            $s,
            "}, {",
            $s,
            "}, {t}\n",
        )
    };
}

/// The assembly of [`fc_groups_dsp`], `$requant` turning the four biased sums (s0..s3) into
/// the rescaled values with the scale pointer in `{px}`.
#[cfg(target_abi = "eabihf")]
macro_rules! fc_asm {
    ($w:expr, $params:expr, [$($requant:expr),*]) => {
        core::arch::asm!(
            "push {{r7}}",
            "push {{{t}}}",
            "4:",
            "ldr {t}, [sp]",
            "ldrd {px}, r7, [{t}]",
            "mov {s0}, #0",
            "mov {s1}, #0",
            "mov {s2}, #0",
            "mov {s3}, #0",
            "2:",
            "ldrd {x0}, {x2}, [{px}], #8",
            "sxtb16 {x1}, {x0}, ror #8",
            "sxtb16 {x0}, {x0}",
            "sxtb16 {x3}, {x2}, ror #8",
            "sxtb16 {x2}, {x2}",
            fc_column!("s0"),
            fc_column!("s1"),
            fc_column!("s2"),
            fc_column!("s3"),
            "cmp {px}, r7",
            "bne 2b",
            // Biases.
            "ldr r7, [sp]",
            "ldr {t}, [r7, #8]",
            "ldrd {x0}, {x1}, [{t}], #8",
            "ldrd {x2}, {x3}, [{t}], #8",
            "str {t}, [r7, #8]",
            "add {s0}, {s0}, {x0}",
            "add {s1}, {s1}, {x1}",
            "add {s2}, {s2}, {x2}",
            "add {s3}, {s3}, {x3}",
            // Requantisation, then the zero point, int8 saturation, the four bytes in one
            // word and the clamp to [lo, hi] bytewise (SSUB8 sets GE per byte, SEL picks).
            "ldr {px}, [r7, #12]",
            $($requant,)*
            "str {px}, [r7, #12]",
            "ldr {x0}, [r7, #24]",
            "qadd {s0}, {s0}, {x0}",
            "qadd {s1}, {s1}, {x0}",
            "qadd {s2}, {s2}, {x0}",
            "qadd {s3}, {s3}, {x0}",
            "ssat {s0}, #8, {s0}",
            "ssat {s1}, #8, {s1}",
            "ssat {s2}, #8, {s2}",
            "ssat {s3}, #8, {s3}",
            "bfi {s0}, {s1}, #8, #8",
            "bfi {s0}, {s2}, #16, #8",
            "bfi {s0}, {s3}, #24, #8",
            "ldrd {x1}, {x2}, [r7, #28]",
            "ssub8 {t}, {s0}, {x1}",
            "sel {s0}, {s0}, {x1}",
            "ssub8 {t}, {x2}, {s0}",
            "sel {s0}, {s0}, {x2}",
            "ldr {t}, [r7, #16]",
            "str {s0}, [{t}], #4",
            "str {t}, [r7, #16]",
            "ldr {t}, [r7, #20]",
            "subs {t}, {t}, #1",
            "str {t}, [r7, #20]",
            "bne 4b",
            "add sp, sp, #4",
            "pop {{r7}}",
            t = inout(reg) $params => _,
            pw = inout(reg) $w => _,
            px = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            x2 = out(reg) _,
            x3 = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            s0 = out(reg) _,
            s1 = out(reg) _,
            s2 = out(reg) _,
            s3 = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
            out("s11") _,
        )
    };
}

/// Whole groups of four columns of a fully connected layer, requantised and stored, in one
/// assembly loop: per group the dot loop of [`dot_rows_dsp`] (43 instructions per 32 MACs),
/// then about 60 instructions for the four outputs (biases, the scale, zero point,
/// saturation, the clamp as one bytewise `SSUB8`/`SEL` pair each way, one `STR`). `kind` is
/// [`ScaleKind::Float`] or [`ScaleKind::Q31Once`] (the caller's scales' layout).
///
/// # Safety
/// `w` holds `groups · taps · 4` packed weight bytes, 4-byte aligned; `p.x` `taps` bytes,
/// 4-byte aligned, `taps` = `p.x_end − p.x` a non-zero multiple of 8; `p.bias` `4 · groups`
/// `i32`; `p.scales` four scales a group of `kind`'s layout; `p.out` `4 · groups` bytes;
/// `p.groups` ≥ 1.
#[cfg(target_abi = "eabihf")]
pub(super) unsafe fn fc_groups_dsp(w: *const i8, p: &mut FcParams, kind: crate::scale::ScaleKind) {
    use crate::scale::ScaleKind;
    let params: *mut FcParams = p;
    // SAFETY: the caller's contract covers every read and write (the loop reads `taps` bytes
    // of `x` and `taps · 4` of `w` per group and writes four output bytes); r7 (the frame
    // pointer, which Rust does not let an operand take) and the params pointer are pushed
    // and popped around the loop, so the stack is balanced; FPU registers s0–s3 and s8–s11
    // are declared clobbered; flags clobbered (CMP, SUBS, SSUB8).
    unsafe {
        match kind {
            ScaleKind::Float => fc_asm!(
                w,
                params,
                [
                    "vldmia {px}!, {{s8-s11}}",
                    "vmov s0, s1, {s0}, {s1}",
                    "vmov s2, s3, {s2}, {s3}",
                    "vcvt.f32.s32 s0, s0",
                    "vcvt.f32.s32 s1, s1",
                    "vcvt.f32.s32 s2, s2",
                    "vcvt.f32.s32 s3, s3",
                    "vmul.f32 s0, s0, s8",
                    "vmul.f32 s1, s1, s9",
                    "vmul.f32 s2, s2, s10",
                    "vmul.f32 s3, s3, s11",
                    "vcvtr.s32.f32 s0, s0",
                    "vcvtr.s32.f32 s1, s1",
                    "vcvtr.s32.f32 s2, s2",
                    "vcvtr.s32.f32 s3, s3",
                    "vmov {s0}, {s1}, s0, s1",
                    "vmov {s2}, {s3}, s2, s3"
                ]
            ),
            ScaleKind::Q31Once => fc_asm!(
                w,
                params,
                [
                    fc_fixed_once!("s0"),
                    fc_fixed_once!("s1"),
                    fc_fixed_once!("s2"),
                    fc_fixed_once!("s3")
                ]
            ),
            ScaleKind::Q31Twice => unreachable!("the caller passes Float or Q31Once"),
        }
    }
}

/// One variant of [`tile_4x4_f32`] (its arguments).
#[cfg(target_abi = "eabihf")]
pub(super) type Tile4x4F32 = unsafe fn(&mut Tiles4x4, usize);

/// What [`tile_4x4_f32`] reads for a run of 4 × 4 tiles of one group of four columns
/// (four rows after four rows): the sums' starts, the clamp's bounds, pointers (the inputs'
/// and outputs' advanced in place, tile by tile) and byte steps.
#[cfg(target_abi = "eabihf")]
#[repr(C)]
pub(super) struct Tiles4x4 {
    /// `c[j][i]`: column `j`, row `i`, the sums' starts (the biases).
    pub c: [[f32; 4]; 4],
    /// The clamp's lower and upper bounds (read by the clamping variants only).
    pub bounds: [f32; 2],
    /// The next tile's four rows' inputs of step 0 (each step `x_step` bytes on).
    pub x: *const f32,
    /// The four columns' weights of step 0 (each step `w_step` bytes on).
    pub w: *const f32,
    pub k: usize,
    pub x_step: usize,
    pub w_step: usize,
    /// The next tile's column 0's four outputs (each next column's `out_step` bytes on).
    pub out: *mut f32,
    pub out_step: usize,
}

#[cfg(target_abi = "eabihf")]
const _: () = {
    assert!(core::mem::offset_of!(Tiles4x4, bounds) == 64);
    assert!(core::mem::offset_of!(Tiles4x4, x) == 72);
    assert!(core::mem::offset_of!(Tiles4x4, w) == 76);
    assert!(core::mem::offset_of!(Tiles4x4, k) == 80);
    assert!(core::mem::offset_of!(Tiles4x4, x_step) == 84);
    assert!(core::mem::offset_of!(Tiles4x4, w_step) == 88);
    assert!(core::mem::offset_of!(Tiles4x4, out) == 92);
    assert!(core::mem::offset_of!(Tiles4x4, out_step) == 96);
};

/// `VCMP` + `VMOV` on a condition of each of the 16 sums `s16`–`s31` against `s8`: the lower
/// bound of [`crate::activation::clamp`] (`if x < lo { lo } else { x }`: `MI` is an ordered
/// "less than", so a NaN stays), 4 instructions a sum.
#[cfg(target_abi = "eabihf")]
macro_rules! clamp_low {
    () => {
        vclamp!(
            low, "s8", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26",
            "s27", "s28", "s29", "s30", "s31"
        )
    };
}

/// The upper bound against `s9` (`if y > hi { hi } else { y }`, `GT` false when unordered).
#[cfg(target_abi = "eabihf")]
macro_rules! clamp_high {
    () => {
        vclamp!(
            high, "s9", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25",
            "s26", "s27", "s28", "s29", "s30", "s31"
        )
    };
}

/// One variant of the f32 column-major product's 4 × 4 tile, `$clamp` the activation's
/// instructions on the sums before they are stored.
macro_rules! tile_4x4_f32 {
    ($(#[$doc:meta])* $name:ident, [$($clamp:expr),*]) => {
        $(#[$doc])*
        #[cfg(target_abi = "eabihf")]
        #[inline(always)]
        pub(super) unsafe fn $name(t: &mut Tiles4x4, tiles: usize) {
            debug_assert!(t.k >= 1 && tiles >= 1);
            // SAFETY: the caller's promise bounds every load and store; `t` is read and its
            // input and output pointers advanced in place; the clobbered FPU registers are
            // declared.
            unsafe {
                core::arch::asm!(
                    "vldr s8, [{t}, #64]",
                    "vldr s9, [{t}, #68]",
                    "ldr {xs}, [{t}, #84]",
                    "ldr {ws}, [{t}, #88]",
                    "3:",
                    "vldmia {t}, {{s16-s31}}",
                    "ldr {x}, [{t}, #72]",
                    "ldr {w}, [{t}, #76]",
                    "ldr {k}, [{t}, #80]",
                    "2:",
                    "vldmia {x}, {{s0-s3}}",
                    "add {x}, {x}, {xs}",
                    "vldmia {w}, {{s4-s7}}",
                    "add {w}, {w}, {ws}",
                "vmla.f32 s16, s4, s0",
                "vmla.f32 s20, s5, s0",
                "vmla.f32 s24, s6, s0",
                "vmla.f32 s28, s7, s0",
                "vmla.f32 s17, s4, s1",
                "vmla.f32 s21, s5, s1",
                "vmla.f32 s25, s6, s1",
                "vmla.f32 s29, s7, s1",
                "vmla.f32 s18, s4, s2",
                "vmla.f32 s22, s5, s2",
                "vmla.f32 s26, s6, s2",
                "vmla.f32 s30, s7, s2",
                "vmla.f32 s19, s4, s3",
                "vmla.f32 s23, s5, s3",
                "vmla.f32 s27, s6, s3",
                "vmla.f32 s31, s7, s3",
                    "subs {k}, {k}, #1",
                    "bne 2b",
                    $($clamp,)*
                    "ldr {x}, [{t}, #92]",
                    "ldr {w}, [{t}, #96]",
                    "vstmia {x}, {{s16-s19}}",
                    "add {k}, {x}, {w}",
                    "vstmia {k}, {{s20-s23}}",
                    "add {k}, {k}, {w}",
                    "vstmia {k}, {{s24-s27}}",
                    "add {k}, {k}, {w}",
                    "vstmia {k}, {{s28-s31}}",
                    // The next tile: four rows on, in the inputs and the outputs.
                    "add {x}, {x}, #16",
                    "str {x}, [{t}, #92]",
                    "ldr {x}, [{t}, #72]",
                    "add {x}, {x}, #16",
                    "str {x}, [{t}, #72]",
                    "subs {n}, {n}, #1",
                    "bne 3b",
                    t = in(reg) t as *mut Tiles4x4,
                    n = inout(reg) tiles => _,
                    x = out(reg) _,
                    w = out(reg) _,
                    k = out(reg) _,
                    xs = out(reg) _,
                    ws = out(reg) _,
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
    };
}

tile_4x4_f32!(
    /// The f32 column-major product's 4 × 4 tile ([`super::tile`] with `R = 4`, adjacent
    /// weights) in assembly, stored without an activation: per step of `k`, one `VLDM` of
    /// the four rows' inputs, one of the four columns' weights, 16 `VMLA` (not fused: the
    /// product rounded, then the sum, as Rust's `c += v * x`) and the loop's pointer steps
    /// and branch: 22 instructions for 16 MACs at every `opt-level` and `target-cpu` (LLVM
    /// splits `c += v * x` into `VMUL` + `VADD` at speed opt-levels for
    /// `target-cpu=cortex-m4`; stable Rust cannot pass an `f32` in an FPU register to `asm!`
    /// here, so the sums start from `t.c` in memory). Then each column's four sums go to the
    /// output by one `VSTM`. `tiles` tiles, each four rows after the last (16 bytes on in
    /// the inputs and the outputs), the tile loop in the assembly too: the Rust around a
    /// tile cost as much as its sums at opt-level "z". `t.bounds` unused.
    ///
    /// # Safety
    /// `t.k ≥ 1`, `tiles ≥ 1`; for every tile `i < tiles` and step `s < t.k`, `t.x + 16i +
    /// s·t.x_step` and `t.w + s·t.w_step` bytes start four readable `f32`s, and `t.out + 16i
    /// + j·t.out_step` (`j < 4`) four writable ones.
    tile_4x4_f32,
    []
);

tile_4x4_f32!(
    /// [`tile_4x4_f32`] with each sum clamped below at `bounds[0]` (a ReLU: `Clip` with no
    /// upper bound) before it is stored: 4 instructions more per output.
    ///
    /// # Safety
    /// As [`tile_4x4_f32`].
    tile_4x4_f32_low,
    [clamp_low!()]
);

tile_4x4_f32!(
    /// [`tile_4x4_f32`] with each sum clamped to `bounds[0]..=bounds[1]` (`Clip`: ReLU6)
    /// before it is stored: 8 instructions more per output.
    ///
    /// # Safety
    /// As [`tile_4x4_f32`].
    tile_4x4_f32_clip,
    [clamp_low!(), clamp_high!()]
);

/// What [`fc_rows_f32`] reads for a row of the f32 fully connected layer: pointers and
/// byte steps (advanced in place, group by group), the clamp's bounds.
#[cfg(target_abi = "eabihf")]
#[repr(C)]
pub(super) struct FcRows {
    /// The `k` inputs.
    pub x: *const f32,
    /// The next group's first weight row (`k` weights; the group's others `row` bytes apart).
    pub w: *const f32,
    /// Bytes from one weight row to the next.
    pub row: usize,
    /// Inputs (and weights a row).
    pub k: usize,
    /// The next group's four biases (`bias_step` 16), or four zeros (`bias_step` 0).
    pub bias: *const f32,
    pub bias_step: usize,
    /// The next group's first output (the group's others `out_step` bytes apart).
    pub out: *mut f32,
    pub out_step: usize,
    /// The clamp's lower and upper bounds (read by the clamping variants only).
    pub bounds: [f32; 2],
}

#[cfg(target_abi = "eabihf")]
const _: () = {
    assert!(core::mem::offset_of!(FcRows, w) == 4);
    assert!(core::mem::offset_of!(FcRows, row) == 8);
    assert!(core::mem::offset_of!(FcRows, k) == 12);
    assert!(core::mem::offset_of!(FcRows, bias) == 16);
    assert!(core::mem::offset_of!(FcRows, bias_step) == 20);
    assert!(core::mem::offset_of!(FcRows, out) == 24);
    assert!(core::mem::offset_of!(FcRows, out_step) == 28);
    assert!(core::mem::offset_of!(FcRows, bounds) == 32);
};

/// One variant of [`fc_rows_f32`]: `$clamp` the four sums' clamp (nothing, the lower bound,
/// both bounds).
macro_rules! fc_rows {
    ($(#[$doc:meta])* $name:ident, $clamp:expr) => {
        $(#[$doc])*
        #[cfg(target_abi = "eabihf")]
        #[inline(always)]
        pub(super) unsafe fn $name(p: &mut FcRows, groups: usize) {
            debug_assert!(groups >= 1);
            // SAFETY: the caller's promise bounds every load and store; `p` is read and its
            // pointers advanced in place; the clobbered FPU registers are declared.
            unsafe {
                core::arch::asm!(
                    "vldr s24, [{p}, #32]",
                    "vldr s25, [{p}, #36]",
                    "6:",
                    // The group's four weight rows, the next group's first.
                    "ldr {w0}, [{p}, #4]",
                    "ldr {t}, [{p}, #8]",
                    "add {w1}, {w0}, {t}",
                    "add {w2}, {w1}, {t}",
                    "add {w3}, {w2}, {t}",
                    "add {t}, {w3}, {t}",
                    "str {t}, [{p}, #4]",
                    // The sums from the biases.
                    "ldr {t}, [{p}, #16]",
                    "vldmia {t}, {{s20-s23}}",
                    "ldr {x}, [{p}, #20]",
                    "add {t}, {t}, {x}",
                    "str {t}, [{p}, #16]",
                    "ldr {x}, [{p}]",
                    // `k / 4` blocks of four steps, then `k mod 4` single ones.
                    "ldr {n}, [{p}, #12]",
                    "lsrs {n}, {n}, #2",
                    "beq 3f",
                    "2:",
                    "vldmia {x}!, {{s0-s3}}",
                    "vldmia {w0}!, {{s4-s7}}",
                    "vldmia {w1}!, {{s8-s11}}",
                    "vldmia {w2}!, {{s12-s15}}",
                    "vldmia {w3}!, {{s16-s19}}",
                    "vmla.f32 s20, s4, s0",
                    "vmla.f32 s21, s8, s0",
                    "vmla.f32 s22, s12, s0",
                    "vmla.f32 s23, s16, s0",
                    "vmla.f32 s20, s5, s1",
                    "vmla.f32 s21, s9, s1",
                    "vmla.f32 s22, s13, s1",
                    "vmla.f32 s23, s17, s1",
                    "vmla.f32 s20, s6, s2",
                    "vmla.f32 s21, s10, s2",
                    "vmla.f32 s22, s14, s2",
                    "vmla.f32 s23, s18, s2",
                    "vmla.f32 s20, s7, s3",
                    "vmla.f32 s21, s11, s3",
                    "vmla.f32 s22, s15, s3",
                    "vmla.f32 s23, s19, s3",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "3:",
                    "ldr {n}, [{p}, #12]",
                    "ands {n}, {n}, #3",
                    "beq 5f",
                    "4:",
                    "vldmia {x}!, {{s0}}",
                    "vldmia {w0}!, {{s4}}",
                    "vldmia {w1}!, {{s8}}",
                    "vldmia {w2}!, {{s12}}",
                    "vldmia {w3}!, {{s16}}",
                    "vmla.f32 s20, s4, s0",
                    "vmla.f32 s21, s8, s0",
                    "vmla.f32 s22, s12, s0",
                    "vmla.f32 s23, s16, s0",
                    "subs {n}, {n}, #1",
                    "bne 4b",
                    "5:",
                    $clamp,
                    // The four outputs, `out_step` bytes apart; the next group's first.
                    "ldr {t}, [{p}, #24]",
                    "ldr {n}, [{p}, #28]",
                    "vstr s20, [{t}]",
                    "add {t}, {t}, {n}",
                    "vstr s21, [{t}]",
                    "add {t}, {t}, {n}",
                    "vstr s22, [{t}]",
                    "add {t}, {t}, {n}",
                    "vstr s23, [{t}]",
                    "add {t}, {t}, {n}",
                    "str {t}, [{p}, #24]",
                    "subs {g}, {g}, #1",
                    "bne 6b",
                    p = in(reg) p as *mut FcRows,
                    g = inout(reg) groups => _,
                    x = out(reg) _,
                    w0 = out(reg) _,
                    w1 = out(reg) _,
                    w2 = out(reg) _,
                    w3 = out(reg) _,
                    n = out(reg) _,
                    t = out(reg) _,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                    out("s24") _, out("s25") _,
                    options(nostack),
                );
            }
        }
    };
}

fc_rows!(
    /// `groups` groups of four outputs of one row of the f32 fully connected layer in
    /// assembly (four dot products of the input row with four weight rows), each group's
    /// sums from its biases: per four steps of `k`, one `VLDM` of the four inputs, one of
    /// each row's four weights, 16 `VMLA` (the product rounded, then the sum, as Rust's `s +=
    /// x * w`), 23 instructions for 16 MACs; the `k mod 4` steps left one at a time; then the
    /// four outputs stored. The group loop, biases and stores in the assembly too: the same
    /// instructions at every `opt-level` and `target-cpu` (see [`tile_4x4_f32`]); no
    /// activation.
    ///
    /// # Safety
    /// `groups ≥ 1`; `p.x` starts `p.k` readable `f32`s; for each group `g < groups`, the
    /// four rows from `p.w + 4g · p.row` bytes, `p.row` bytes apart, each start `p.k`
    /// readable `f32`s, `p.bias + g · p.bias_step` bytes starts four readable `f32`s, and the
    /// four outputs `p.out + (4g + j) · p.out_step` bytes (j < 4) are writable.
    fc_rows_f32,
    ""
);
fc_rows!(
    /// [`fc_rows_f32`] with each output clamped below at `p.bounds[0]` (a ReLU).
    ///
    /// # Safety
    /// As [`fc_rows_f32`].
    fc_rows_f32_low,
    vclamp!(low, "s24", "s20", "s21", "s22", "s23")
);
fc_rows!(
    /// [`fc_rows_f32`] with each output clamped to `p.bounds[0] ..= p.bounds[1]`.
    ///
    /// # Safety
    /// As [`fc_rows_f32`].
    fc_rows_f32_clip,
    concat!(
        vclamp!(low, "s24", "s20", "s21", "s22", "s23"),
        vclamp!(high, "s25", "s20", "s21", "s22", "s23")
    )
);
