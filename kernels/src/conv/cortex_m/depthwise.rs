//! The int8 depthwise rows on Cortex-M4F (DSP extension and FPU): two pixels of a channel
//! at a time, a float scale applied by the FPU, a fixed-point one by `SMMULR`/`SMMUL` (see
//! `crate::scale`).

use super::*;

/// Where a depthwise convolution's input planes are (see [`conv2d_i8_depthwise_split`]).
pub(crate) struct Planes<'a> {
    pub(crate) kept_rows: &'a [i8],
    pub(crate) kept: usize,
    pub(crate) input: &'a [i8],
}

/// What [`depthwise_rows_dsp_asm`] loads once per channel into `s2`–`s11` by one `VLDM` (the
/// loop has no core registers left; the weights come straight from the packed channel).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[repr(C, align(8))]
pub(crate) struct DwRows {
    /// `s2`: a `Q31`'s exponent (unused with a float scale).
    exponent: i32,
    /// `s3`: the bias minus `input_zero · Σ w`: the loop sums `w · x` of the raw bytes (the
    /// padding holds the input zero point, so it adds `w · zero`, which this takes back);
    /// doubled for a fixed-point scale (its weights are, see `dw_double`).
    bias: i32,
    /// `s4`: the output zero point.
    zero: i32,
    /// `s5`, `s6`: the clamp bounds in all four bytes (used only by the clamping variant).
    lo4: u32,
    hi4: u32,
    /// `s7`: bytes the pairs of one output row write (`2 · ⌊out_w / 2⌋`, not 0).
    pair_bytes: usize,
    /// `s8`: bytes from the window after a row's last pair to the next row's first window
    /// (`stride_h · row − 2 · STRIDE · ⌊out_w / 2⌋`).
    row_step: usize,
    /// `s9`: where the output pointer stops (after `rows` rows, not 0).
    end: *mut i8,
    /// `s10`: the channel's scale: float32 bits, or a `Q31`'s multiplier.
    scale: u32,
    /// `s11`: a `Q31`'s half unit (unused with a float scale); with the multiplier one
    /// `VMOV` into two core registers.
    round: i32,
    /// The plane's first output byte (not loaded into the FPU: the loop's output pointer).
    out: *mut i8,
}

/// The instructions of [`depthwise_rows_dsp_asm`] around its multiply-accumulates: per
/// output row the pairs (two sums from the bias, `$pair`, both rescaled by `$requant`, the
/// zero point added by `$zero` (`QADD`; nothing for a fixed point, which has it in its half
/// unit), `SSAT`, packed by `BFI`, `$clamp`, one `STRH`), then an odd last pixel (`$lone`),
/// then the next row's windows.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_rows_asm {
    ($params:expr, $weights:expr, $x:expr, $out:expr, $rs:expr, $form:ident,
     [$($requant:expr),*], [$($pair:expr),*], [$($lone:expr),*], [$($clamp:expr),*],
     [$($zero:expr),*], [$($double:expr),*]) => {
        dw_asm!(
            [
                // The channel's packed weights (see `pack_depthwise_weights`), unpacked.
                "ldr {w0}, [{e}]",
                "ldr {w1}, [{e}, #4]",
                "ldr {w2}, [{e}, #8]",
                dw_unpack!(),
                // `$double`: the weights doubled (a fixed point's doubled sums, see
                // `dw_double`).
                $($double,)*
                "vldmia {t}, {{s2-s11}}",
                // `t` holds the output zero point unless `$pair` needs it (then `$zero`
                // reloads it).
                "vmov {t}, s4",
                // r7 (saved: it cannot be an operand) is where the row's pairs end, or the
                // bias.
                dw_row_loop!(bias $form, "vmov r7, s3")
            ],
            $form, [$($requant),*], [$($pair),*], [$($lone),*], [$($clamp),*], [$($zero),*],
            [],
            t = inout(reg) $params => _,
            px = inout(reg) $x => _,
            po = inout(reg) $out => _,
            rs = in(reg) $rs,
            // The weights' address until they are loaded, then a temporary.
            e = inout(reg) $weights => _,
        )
    };
}

/// The assembly block of [`dw_rows_asm`] and [`dw_channels_asm`]: r7 saved, `$before`, the
/// rows of a channel (`$form`, see [`dw_row_loop`]), `$after`, r7 restored; the registers
/// every form uses (the weights in five, two sums, two temporaries, `s0`–`s11`) and the
/// block's own `$operands` (`t`, `px`, `po`, `rs`, `e` and any further clobbers).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_asm {
    ([$($before:expr),*], $form:ident, [$($requant:expr),*], [$($pair:expr),*],
     [$($lone:expr),*], [$($clamp:expr),*], [$($zero:expr),*], [$($after:expr),*],
     $($operands:tt)*) => {
        core::arch::asm!(
            "push {{r7}}",
            $($before,)*
            dw_row_loop!(
                $form,
                dw_pair_step!(
                    [dw_row_loop!(init $form)],
                    [$($requant),*],
                    [$($pair),*],
                    [$($clamp),*],
                    [$($zero),*]
                ),
                [$($lone),*]
            ),
            $($after,)*
            "pop {{r7}}",
            w0 = out(reg) _,
            w1 = out(reg) _,
            w2 = out(reg) _,
            v = out(reg) _,
            u = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            x = out(reg) _,
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
            $($operands)*
        )
    };
}

/// A channel's weights, three packed kernel rows `[w0, w1, w2, pad]` in `w0`–`w2`, as the
/// pairs read them: (w0, w2) of rows 0, 1, 2 in `w0`–`w2` (their `SXTB16`), (w1, w1') of
/// rows 0 and 1 in `v` (rotated, paired by `PKHBT`: their pads, the sum of weights, dropped)
/// and (w1'', 0) of row 2 in `u` (its pad is 0).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_unpack {
    () => {
        concat!(
            "sxtb16 {v}, {w0}, ror #8\n",
            "sxtb16 {u}, {w1}, ror #8\n",
            "pkhbt {v}, {v}, {u}, lsl #16\n",
            "sxtb16 {u}, {w2}, ror #8\n",
            "sxtb16 {w0}, {w0}\n",
            "sxtb16 {w1}, {w1}\n",
            "sxtb16 {w2}, {w2}"
        )
    };
}

/// One pair of output pixels: two sums from the bias (`s3`), `$pair`, both rescaled by
/// `$requant`, the zero point added by `$zero` (`QADD`; nothing for a fixed point, which has
/// it in its half unit), `SSAT`, packed by `BFI`, `$clamp`, one `STRH`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_pair_step {
    ([$($init:expr),*], [$($requant:expr),*], [$($pair:expr),*], [$($clamp:expr),*],
     [$($zero:expr),*]) => {
        concat!(
            $($init, "\n",)*
            $($pair, "\n",)*
            $($requant, "\n",)*
            $($zero, "\n",)*
            "ssat {a0}, #8, {a0}\n",
            "ssat {a1}, #8, {a1}\n",
            "bfi {a0}, {a1}, #8, #8\n",
            $($clamp, "\n",)*
            "strh {a0}, [{po}], #2"
        )
    };
}

/// A channel's output rows, from `px` (the first window) and `po` until `po` reaches `s9`:
/// per row its pairs (`$step`: a loop until `s7` bytes are written, or, `two`, two pairs
/// spelt out), an odd row's last pixel (`$lone`), then the next row's first window (`s8`
/// bytes on from where the pairs moved `px`). r7 is a temporary (the caller saves it).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_row_loop {
    (loop, $step:expr, [$($lone:expr),*]) => {
        concat!(
            "1:\n",
            "vmov r7, s7\n",
            "add r7, r7, {po}\n",
            "2:\n",
            $step, "\n",
            "cmp {po}, r7\n",
            "bne 2b\n",
            $($lone, "\n",)*
            dw_row_loop!(next)
        )
    };
    (two, $step:expr, [$($lone:expr),*]) => {
        concat!(
            "1:\n",
            $step, "\n",
            $step, "\n",
            $($lone, "\n",)*
            // r7 holds the bias: `x` is free here.
            "vmov {x}, s8\n",
            "add {px}, {px}, {x}\n",
            "vmov {x}, s9\n",
            "cmp {po}, {x}\n",
            "bne 1b"
        )
    };
    // A pair's sums from the bias: loaded (`loop`, r7 is the row's pair end), or none (`two`:
    // each sum's first multiply-accumulate adds r7, the channel's bias).
    (init loop) => {
        "vmov {a0}, s3\nmov {a1}, {a0}"
    };
    (init two) => {
        ""
    };
    // The channel's bias into r7 (`two`) by `$insn`.
    (bias loop, $insn:literal) => {
        ""
    };
    (bias two, $insn:literal) => {
        $insn
    };
    (next) => {
        concat!(
            "vmov r7, s8\n",
            "add {px}, {px}, r7\n",
            "vmov r7, s9\n",
            "cmp {po}, r7\n",
            "bne 1b"
        )
    };
}

/// The float rescaling of a pair in [`dw_rows_asm`]: `VCVT`, `VMUL` by `s10`, `VCVTR`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_float_pair {
    () => {
        concat!(
            "vmov s0, s1, {a0}, {a1}\n",
            "vcvt.f32.s32 s0, s0\n",
            "vcvt.f32.s32 s1, s1\n",
            "vmul.f32 s0, s0, s10\n",
            "vmul.f32 s1, s1, s10\n",
            "vcvtr.s32.f32 s0, s0\n",
            "vcvtr.s32.f32 s1, s1\n",
            "vmov {a0}, {a1}, s0, s1"
        )
    };
}

/// The weights doubled, each halfword by itself (`SADD16`), once per channel: with the bias
/// doubled too (`DwRows::bias`) the sums come out doubled, as the fixed point takes them
/// (`SMMULR` of `2·acc`), without a shift per sum. Equal to doubling each sum: the halves
/// stay within ±256 and the sums wrap alike.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_double {
    () => {
        concat!(
            "sadd16 {w0}, {w0}, {w0}\n",
            "sadd16 {w1}, {w1}, {w1}\n",
            "sadd16 {w2}, {w2}, {w2}\n",
            "sadd16 {v}, {v}, {v}\n",
            "sadd16 {u}, {u}, {u}"
        )
    };
}

/// One fixed-point sum in [`dw_fixed_pair`] and [`dw_fixed_one`], the multiplier in `x`,
/// the half unit in `e`, `t` free: `twice` (two roundings) `SMMLAR` (the rounded high
/// product plus the half unit) and `ADD … ASR #31` (a negative sum one lower: its tie goes
/// down; the sum's sign is the product's but where the product rounds to 0, which the shift
/// takes to 0 either way); `once` `SMMLA` (the floor plus the half unit).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_fixed_sum {
    (twice, $a:literal) => {
        concat!(
            "smmlar {t}, {",
            $a,
            "}, {x}, {e}\n",
            "add {",
            $a,
            "}, {t}, {",
            $a,
            "}, asr #31\n",
        )
    };
    (once, $a:literal) => {
        concat!("smmla {", $a, "}, {", $a, "}, {x}, {e}\n")
    };
}

/// The fixed-point rescaling of a pair in [`dw_rows_asm`] (see `crate::scale`): both sums
/// already doubled (`dw_double`), the multiplier and half unit (`s10`, `s11`) by one `VMOV`,
/// [`dw_fixed_sum`] of each, the exponent (`s2`) shifted out. `x`, `e` and (a fixed point
/// having its zero point in the half unit) `t` are free here.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_fixed_pair {
    ($kind:ident) => {
        concat!(
            "vmov {x}, {e}, s10, s11\n",
            dw_fixed_sum!($kind, "a0"),
            dw_fixed_sum!($kind, "a1"),
            "vmov {x}, s2\n",
            "asr {a0}, {a0}, {x}\n",
            "asr {a1}, {a1}, {x}"
        )
    };
}

/// [`dw_fixed_pair`] for a lone pixel's sum.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_fixed_one {
    ($kind:ident) => {
        concat!(
            "vmov {x}, {e}, s10, s11\n",
            dw_fixed_sum!($kind, "a0"),
            "vmov {x}, s2\n",
            "asr {a0}, {a0}, {x}"
        )
    };
}

/// The float rescaling of a lone pixel's sum.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_float_one {
    () => {
        concat!(
            "vmov s0, {a0}\n",
            "vcvt.f32.s32 s0, s0\n",
            "vmul.f32 s0, s0, s10\n",
            "vcvtr.s32.f32 s0, s0\n",
            "vmov {a0}, s0"
        )
    };
}

/// The zero point (in `t`, reloaded from `s4` at stride 2) added to a pair's two sums after
/// a float rescaling.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_zero_pair {
    () => {
        "qadd {a0}, {a0}, {t}\nqadd {a1}, {a1}, {t}"
    };
    (reload) => {
        "vmov {t}, s4\nqadd {a0}, {a0}, {t}\nqadd {a1}, {a1}, {t}"
    };
}

/// [`dw_zero_pair`] for a lone pixel's sum.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_zero_one {
    () => {
        "qadd {a0}, {a0}, {t}"
    };
    (reload) => {
        "vmov {t}, s4\nqadd {a0}, {a0}, {t}"
    };
}

/// An odd row's last pixel alone in [`dw_rows_asm`]: `$single`'s sum from the bias,
/// requantised, the zero point added (`$zero`), `$clamp`, one `STRB`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_lone {
    ([$($init:expr),*], [$($single:expr),*], [$($requant:expr),*], [$($clamp:expr),*],
     [$($zero:expr),*]) => {
        concat!(
            $($init, "\n",)*
            $($single, "\n",)*
            $($requant, "\n",)*
            $($zero, "\n",)*
            "ssat {a0}, #8, {a0}\n",
            $($clamp, "\n",)*
            "strb {a0}, [{po}], #1"
        )
    };
}

/// One kernel row of a lone pixel: `(x0, x2)` and `(x1, x3)` by `SXTB16`, `SMLAD` with
/// `(w0, w2)` and `w1` from a half of `$v` (`$xy`: `bb` for the bottom half, `bt` the top).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_single_row {
    ($load:literal, $w:literal, $v:literal, $xy:literal, $init:literal) => {
        concat!(
            "ldr {x}, ",
            $load,
            "\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {",
            $w,
            "}, ",
            $init,
            "\n",
            "smla",
            $xy,
            " {a0}, {x}, {",
            $v,
            "}, {a0}"
        )
    };
}

/// The requantised bytes clamped to `lo..=hi` four at a time (`SSUB8`/`SEL`): only for a
/// clamp narrower than `SSAT`'s `-128..=127` (a fused ReLU with a zero point above -128).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_clamp {
    () => {
        concat!(
            "vmov {x}, s5\n",
            "ssub8 {e}, {a0}, {x}\n",
            "sel {a0}, {a0}, {x}\n",
            "vmov {x}, s6\n",
            "ssub8 {e}, {x}, {a0}\n",
            "sel {a0}, {a0}, {x}"
        )
    };
}

/// A lone pixel's three kernel rows (see [`dw_single_row`]).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_single {
    ($init:literal) => {
        concat!(
            dw_single_row!("[{px}]", "w0", "v", "bb", $init),
            "\n",
            dw_single_row!("[{px}, {rs}]", "w1", "v", "bt", "{a0}"),
            "\n",
            dw_single_row!("[{px}, {rs}, lsl #1]", "w2", "u", "bb", "{a0}")
        )
    };
}

/// Two stride-1 pixels, per kernel row: `e = (x0, x2)`, `x = (x1, x3)`; pixel 0 `e·(w0, w2)
/// + x1·w1`, pixel 1 `x·(w0, w2) + x2·w1`. Kernel rows 1 and 2 first: row 0's load moves
/// `px` on to the next pair (post-indexed), an `ADD` fewer.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_s1_pair {
    ($i0:literal, $i1:literal) => {
        concat!(
            "ldr {x}, [{px}, {rs}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w1}, ",
            $i0,
            "\n",
            "smlabt {a0}, {x}, {v}, {a0}\n",
            "smlad {a1}, {x}, {w1}, ",
            $i1,
            "\n",
            "smlatt {a1}, {e}, {v}, {a1}\n",
            "ldr {x}, [{px}, {rs}, lsl #1]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w2}, {a0}\n",
            "smlabb {a0}, {x}, {u}, {a0}\n",
            "smlad {a1}, {x}, {w2}, {a1}\n",
            "smlatb {a1}, {e}, {u}, {a1}\n",
            "ldr {x}, [{px}], #2\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w0}, {a0}\n",
            "smlabb {a0}, {x}, {v}, {a0}\n",
            "smlad {a1}, {x}, {w0}, {a1}\n",
            "smlatb {a1}, {e}, {v}, {a1}"
        )
    };
}

/// Two stride-2 pixels, per kernel row: `e = (x0, x2)`, `x = (x1, x3)`, then `e = x4`;
/// pixel 0 `e·(w0, w2) + x1·w1`, pixel 1 `x2·w0 + x3·w1 + x4·w2`. Kernel rows 1 and 2
/// first: row 0's `LDRSB` moves `px` on to the next pair (pre-indexed with write-back).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_s2_pair {
    ($i0:literal, $i1:literal) => {
        concat!(
            "add {t}, {px}, {rs}\n",
            "ldr {x}, [{t}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w1}, ",
            $i0,
            "\n",
            "smlabt {a0}, {x}, {v}, {a0}\n",
            "smlatb {a1}, {e}, {w1}, ",
            $i1,
            "\n",
            "smlatt {a1}, {x}, {v}, {a1}\n",
            "ldrsb {e}, [{t}, #4]\n",
            "smlabt {a1}, {e}, {w1}, {a1}\n",
            "add {t}, {t}, {rs}\n",
            "ldr {x}, [{t}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w2}, {a0}\n",
            "smlabb {a0}, {x}, {u}, {a0}\n",
            "smlatb {a1}, {e}, {w2}, {a1}\n",
            "smlatb {a1}, {x}, {u}, {a1}\n",
            "ldrsb {e}, [{t}, #4]\n",
            "smlabt {a1}, {e}, {w2}, {a1}\n",
            "ldr {x}, [{px}]\n",
            "sxtb16 {e}, {x}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlad {a0}, {e}, {w0}, {a0}\n",
            "smlabb {a0}, {x}, {v}, {a0}\n",
            "smlatb {a1}, {e}, {w0}, {a1}\n",
            "smlatb {a1}, {x}, {v}, {a1}\n",
            "ldrsb {e}, [{px}, #4]!\n",
            "smlabt {a1}, {e}, {w0}, {a1}"
        )
    };
}

/// One variant of a depthwise assembly block (`$block`: [`dw_rows_asm`] or
/// [`dw_channels_asm`], called with its leading arguments `$head`): the pair of `$stride` (1
/// or 2), the clamp (`$clamp`), an odd row's last pixel (`$odd`) and the row form (`$pairs2`:
/// two pairs spelt out, else a loop), from a scale's kit `[$pair, $one, [$zp1, $z11, $zp2,
/// $z12], …]`: its pair and lone-pixel rescaling, its zero-point additions (pair and lone
/// pixel at stride 1, then 2) and the block's trailing arguments. Branches on constants:
/// only the variant's block is left in a release build.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_variant {
    ($block:ident, [$($head:tt)*], $stride:expr, $clamp:expr, $odd:expr, $pairs2:expr,
     [$pair:expr, $one:expr, [$zp1:expr, $z11:expr, $zp2:expr, $z12:expr], $($tail:tt)*]) => {
        if $stride == 1 {
            dw_variant!(@clamp $block, [$($head)*], $clamp, $odd, $pairs2,
                        [$pair, $one, dw_s1_pair!("{a0}", "{a1}"), dw_s1_pair!("r7", "r7"),
                         $zp1, $z11], [$($tail)*])
        } else {
            dw_variant!(@clamp $block, [$($head)*], $clamp, $odd, $pairs2,
                        [$pair, $one, dw_s2_pair!("{a0}", "{a1}"), dw_s2_pair!("r7", "r7"),
                         $zp2, $z12], [$($tail)*])
        }
    };
    // Each form's pair and lone pixel: sums from their registers (`loop`) or from r7 (`two`).
    (@clamp $block:ident, [$($head:tt)*], $clamp:expr, $odd:expr, $pairs2:expr,
     [$pair:expr, $one:expr, $pm:expr, $pm7:expr, $zp:expr, $z1:expr], $tail:tt) => {
        match ($clamp, $odd) {
            (false, false) => dw_variant!(
                @form $block, [$($head)*], $pairs2, [$pair], [$pm], [$pm7], [], [], [], [$zp],
                $tail
            ),
            (false, true) => dw_variant!(
                @form $block, [$($head)*], $pairs2, [$pair], [$pm], [$pm7],
                [dw_lone!(["vmov {a0}, s3"], [dw_single!("{a0}")], [$one], [], [$z1])],
                [dw_lone!([], [dw_single!("r7")], [$one], [], [$z1])], [], [$zp], $tail
            ),
            (true, false) => dw_variant!(
                @form $block, [$($head)*], $pairs2, [$pair], [$pm], [$pm7], [], [],
                [dw_clamp!()], [$zp], $tail
            ),
            (true, true) => dw_variant!(
                @form $block, [$($head)*], $pairs2, [$pair], [$pm], [$pm7],
                [dw_lone!(["vmov {a0}, s3"], [dw_single!("{a0}")], [$one], [dw_clamp!()], [$z1])],
                [dw_lone!([], [dw_single!("r7")], [$one], [dw_clamp!()], [$z1])],
                [dw_clamp!()], [$zp], $tail
            ),
        }
    };
    (@form $block:ident, [$($head:tt)*], $pairs2:expr, $requant:tt, $pm:tt, $pm7:tt,
     $lone:tt, $lone7:tt, $clamp:tt, $zero:tt, [$($tail:tt)*]) => {
        if $pairs2 {
            $block!($($head)* two, $requant, $pm7, $lone7, $clamp, $zero, $($tail)*)
        } else {
            $block!($($head)* loop, $requant, $pm, $lone, $clamp, $zero, $($tail)*)
        }
    };
}

/// [`dw_variant`] for the scale kind of `$s`: its pair and lone-pixel rescaling and
/// zero-point additions (a float scale's `QADD`s, none for a fixed point, which has the zero
/// point in its half unit), then the block's trailing arguments for a float scale
/// (`$float`) or a fixed point (`$fixed`).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_by_scale {
    ($s:ident, $block:ident, $head:tt, [$stride:expr, $clamp:expr, $odd:expr, $pairs2:expr],
     [$($float:tt)*], [$($fixed:tt)*]) => {
        match $s::KIND {
            ScaleKind::Float => dw_variant!(
                $block, $head, $stride, $clamp, $odd, $pairs2,
                [dw_float_pair!(), dw_float_one!(),
                 [dw_zero_pair!(), dw_zero_one!(), dw_zero_pair!(reload), dw_zero_one!(reload)],
                 $($float)*]
            ),
            ScaleKind::Q31Twice => dw_variant!(
                $block, $head, $stride, $clamp, $odd, $pairs2,
                [dw_fixed_pair!(twice), dw_fixed_one!(twice), ["", "", "", ""], $($fixed)*]
            ),
            ScaleKind::Q31Once => dw_variant!(
                $block, $head, $stride, $clamp, $odd, $pairs2,
                [dw_fixed_pair!(once), dw_fixed_one!(once), ["", "", "", ""], $($fixed)*]
            ),
        }
    };
}

/// One channel's plane (`params.out` to `params.end`, rows of `out_w` ≥ 2 pixels; windows
/// `stride_h` padded rows apart from `x`, kernel rows `rs` bytes apart) of a 3×3 depthwise
/// convolution with horizontal stride `STRIDE` (1 or 2) on Cortex-M4F/M7/M33, every operand
/// in a register: the weights in five, the channel's constants in `s2`–`s9`. Per pair of
/// pixels, per kernel row one word load, two `SXTB16` and four multiply instructions
/// (`SMLAD` and `SMLAxy`; at stride 2 one `LDRSB` and a fifth), then both outputs requantised
/// and stored by one `STRH`: with a float scale 38 instructions at stride 1 (47 at stride
/// 2) for 18 multiply-accumulates; 36 (44) with TFLite's fixed point with two roundings,
/// whose zero point is in the half unit (`Q31::with_zero`) and whose doubling is in the
/// weights (`dw_double`, five instructions a call); 6 more when the clamp
/// (`CLAMP`) is narrower than `SSAT`'s. An odd row's (`ODD`) last pixel alone: 24 (23 with
/// the fixed point). One
/// assembly block per (`STRIDE`, `CLAMP`, `ODD`): a layer's code holds only its own.
///
/// # Safety
/// `x` is the padded plane's byte at the first window's top-left corner; for every output
/// row j and pixel `i < out_w` the bytes `x + j·stride_h·row + i·STRIDE + r·rs + [0, 4 +
/// (STRIDE − 1))` are readable for r = 0, 1, 2; `params.out` to `params.end` (a whole
/// number of rows, at least one) is writable; `params` describes the geometry; `wc` is a
/// channel's 12 packed 3×3 weight bytes ([`pack_depthwise_weights`]).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
pub(crate) unsafe fn depthwise_rows_dsp_asm<
    const STRIDE: usize,
    const CLAMP: bool,
    const ODD: bool,
    S: ChannelScale,
>(
    x: *const i8,
    rs: usize,
    wc: *const i8,
    params: &DwRows,
) {
    let pp = params as *const DwRows;
    // SAFETY: the reads and writes are the caller's contract (every pair's and every lone
    // pixel's loads are inside the windows it names, plus the row's slack; the weights are
    // `wc`'s 12 bytes, three words (LDR may be unaligned on Armv7E-M)); `params` lives across the block and is only read. FPU and DSP-extension instructions; s0–s10 and the
    // flags are clobbered; r7 is pushed and popped (the stack balanced, no call between).
    unsafe {
        // The zero point after a float rescaling: stride 1 keeps it in `t` all along; stride
        // 2's pairs use `t` for addresses, so it is reloaded before every `QADD`. A fixed
        // point has it in its half unit.
        dw_by_scale!(
            S,
            dw_rows_asm,
            [pp, wc, x, params.out, rs,],
            [STRIDE, CLAMP, ODD, false],
            [[""]],
            [[dw_double!()]]
        )
    }
}

/// One variant of [`depthwise_rows_dsp_asm`]: a channel's rows.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
type DwRowsFn = unsafe fn(*const i8, usize, *const i8, &DwRows);

/// The variant of [`depthwise_rows_dsp_asm`] for `kind` and `p`'s clamp and row parity (a
/// constant when `VARIANT` names them: then only that block is compiled).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
pub(crate) fn dsp_rows_fn<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    kind: PairKind,
) -> DwRowsFn {
    let clamp = match VARIANT {
        0 => p.lo != i8::MIN || p.hi != i8::MAX,
        v => v & DW_CLAMP != 0,
    };
    let odd = match VARIANT {
        0 => p.geom.window.out_w % 2 == 1,
        v => v & DW_ODD != 0,
    };
    macro_rules! rows {
        ($($stride:literal, $clamp:literal, $odd:literal, $kind:ident);*) => {
            match (kind, clamp, odd) {
                $((PairKind::$kind, $clamp, $odd) => {
                    depthwise_rows_dsp_asm::<$stride, $clamp, $odd, S> as DwRowsFn
                })*
            }
        };
    }
    rows!(
        1, false, false, Stride1; 1, false, true, Stride1;
        1, true, false, Stride1; 1, true, true, Stride1;
        2, false, false, Stride2; 2, false, true, Stride2;
        2, true, false, Stride2; 2, true, true, Stride2
    )
}

/// [`conv2d_i8_depthwise`] for the two-pixel geometries on Cortex-M4F/M7/M33 (rows of at
/// least two pixels), a model of one variant: each channel copied into the padded plane, then
/// all its rows by its variant of [`depthwise_rows_dsp_asm`], inline.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn depthwise_rows_dsp<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    kind: PairKind,
    planes: &Planes,
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    padded: &mut [i8],
    row: usize,
    output: &mut [i8],
) {
    let rows = dsp_rows_fn::<S, VARIANT>(p, kind);
    channel_loop::<S, VARIANT>(
        p, kind, planes, packed, bias, scales, padded, row, output, rows,
    );
}

/// The whole of [`conv2d_i8_depthwise_split_as`] for the two-pixel geometries, out of line
/// with the row loop `rows` as an argument: one copy for every variant of a model
/// ([`DW_SHARED`]) and for the run-time choice.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn depthwise_split_dsp<S: ChannelScale>(
    p: &ConvI8,
    kept_rows: &[i8],
    input: &[i8],
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    scratch: &mut [i16],
    output: &mut [i8],
    kind: PairKind,
    rows: DwRowsFn,
) {
    let (padded, row, kept) = prepare(p, kept_rows, input, packed, bias, scales, scratch, output);
    let planes = Planes {
        kept_rows,
        kept,
        input,
    };
    channel_loop::<S, 0>(
        p, kind, &planes, packed, bias, scales, padded, row, output, rows,
    );
}

/// The channel loop of [`depthwise_rows_dsp`]: each channel's plane copied into `padded`
/// (by the row copy of `VARIANT`'s class, or of the rows' when `VARIANT` is 0), its constants
/// set, its rows by `rows` (a variant of [`depthwise_rows_dsp_asm`] for `kind`, the clamp and
/// the row parity of `p`; inlined where `rows` is a constant).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn channel_loop<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    kind: PairKind,
    planes: &Planes,
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    padded: &mut [i8],
    row: usize,
    output: &mut [i8],
    rows: DwRowsFn,
) {
    let g = &p.geom;
    let w = &g.window;
    let (kept, fresh) = (planes.kept, w.in_h - planes.kept);
    let (plane_in, plane_out) = (fresh * w.in_w, w.out_h * w.out_w);
    let (step, last_col) = match kind {
        PairKind::Stride1 => (1, 3),
        PairKind::Stride2 => (2, 4),
    };
    // Every window's reads: rows y0 + r·dil_h (r ≤ 2), columns i·step ..= i·step + last_col
    // for pixels i < out_w (a pair's second pixel reads no further than its own window
    // plus the row's slack); the deepest row and column must be inside the padded plane.
    let deepest = ((w.out_h - 1) * w.stride_h + 2 * w.dil_h) * row;
    let widest = (w.out_w - 1) * step + last_col;
    assert!(widest < row && deepest + row <= padded.len() && w.out_w >= 2);
    assert!(output.len() >= g.batch * g.out_c * plane_out);
    assert!(packed.len() >= 12 * g.out_c && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    let inside = w.pad_top * row + w.pad_left;
    let bytes = |v: i8| u32::from(v as u8) * 0x0101_0101;
    // The per-call constants once; per channel only the weights, scale, bias and plane.
    let mut params = DwRows {
        scale: 0,
        bias: 0,
        zero: p.output_zero,
        lo4: bytes(p.lo),
        hi4: bytes(p.hi),
        pair_bytes: 2 * (w.out_w / 2),
        // Wrapping: added to an address (it is positive for every padded geometry).
        row_step: (w.stride_h * row).wrapping_sub(2 * step * (w.out_w / 2)),
        end: core::ptr::null_mut(),
        round: 0,
        exponent: 0,
        out: core::ptr::null_mut(),
    };
    let rs = w.dil_h * row;
    let zero = p.input_zero;
    // The copies: every row of the input lands inside the padded plane, with the four
    // bytes after it ...
    assert!(w.in_h == 0 || inside + (w.in_h - 1) * row + w.in_w + 4 <= padded.len());
    assert!(row >= w.in_w + 4);
    // ... and a plane starting at byte `s` of its source reads whole words from each row
    // start (`(rows − 1)·in_w + wide` bytes) inside it when `s` ≤ the source's `fast_*`
    // (every plane when it has no rows: nothing is read; none when the bound is negative).
    let fast = |len: usize, rows: usize| match rows {
        0 => isize::MAX,
        _ => len as isize - ((rows - 1) * w.in_w + w.in_w.next_multiple_of(4)) as isize,
    };
    let (fast_kept, fast_fresh) = (
        fast(planes.kept_rows.len(), kept),
        fast(planes.input.len(), fresh),
    );
    // Per channel only its plane copy, two constants and two pointers: every loop-invariant
    // (the weights, each channel's sum of weights) was packed at build time. The planes in
    // order, each source, weight, bias, scale and output pointer one step on a plane (on the
    // Cortex-M4 the loop's state stays in registers: no index products, no slice checks).
    // One input plane a channel (a channel multiplier of 1).
    assert!(g.in_c == g.out_c);
    let (kept_len, fresh_len) = (kept * w.in_w, plane_in);
    // Planes whose every row has a whole word from its last word's start (all but the
    // tensor's last ones) are copied straight into the padded plane; the others checked:
    // planes `at` < `fast_*` (those starting at or before the source's bound).
    let leading = |bound: isize, len: usize| match (bound, len) {
        (b, _) if b < 0 => 0,
        (_, 0) => usize::MAX,
        (b, len) => b as usize / len + 1,
    };
    let (fast_kept_n, fast_fresh_n) =
        (leading(fast_kept, kept_len), leading(fast_fresh, fresh_len));
    let below = inside + kept * row;
    let base = padded.as_mut_ptr();
    let mut out = output.as_mut_ptr();
    let mut at = 0;
    for _ in 0..g.batch {
        let mut wc = packed.as_ptr();
        let mut c = 0;
        while c < g.out_c {
            if at < fast_kept_n {
                // SAFETY: the plane's rows and their last words are inside `kept_rows`
                // (`fast_kept`), the destination rows inside `padded` (asserted above).
                unsafe {
                    let src = planes.kept_rows.as_ptr().add(at * kept_len);
                    copy_plane_rows::<VARIANT>(
                        src,
                        w.in_w,
                        kept,
                        base.add(inside),
                        row,
                        zero as i8,
                    );
                }
            } else {
                let src = &planes.kept_rows[at * kept_len..];
                copy_plane::<VARIANT>(src, w.in_w, kept, padded, inside, row, zero as i8);
            }
            if at < fast_fresh_n {
                // SAFETY: as above, in `input` (`fast_fresh`).
                unsafe {
                    let src = planes.input.as_ptr().add(at * fresh_len);
                    copy_plane_rows::<VARIANT>(
                        src,
                        w.in_w,
                        fresh,
                        base.add(below),
                        row,
                        zero as i8,
                    );
                }
            } else {
                let src = &planes.input[at * fresh_len..];
                copy_plane::<VARIANT>(src, w.in_w, fresh, padded, below, row, zero as i8);
            }
            // SAFETY: c < out_c: the channel's 12 packed bytes are inside `packed`, its bias
            // and scale inside theirs (asserted above).
            let (sum, b, scale) = unsafe {
                // The loop sums `w · x` of the raw bytes (the border holds the input zero
                // point): the bias takes `zero · Σ w` (packed in rows 0 and 1's pad bytes)
                // back.
                let sum = i16::from_le_bytes([*wc.add(3) as u8, *wc.add(7) as u8]);
                let b = bias.map_or(0, |b| *b.get_unchecked(c));
                (sum, b, *scales.get_unchecked(c))
            };
            params.bias = b.wrapping_sub(zero.wrapping_mul(i32::from(sum)));
            if S::KIND != ScaleKind::Float {
                // The fixed point's sums doubled: the weights by the assembly (`dw_double`).
                params.bias = params.bias.wrapping_mul(2);
            }
            (params.scale, params.round, params.exponent) = scale.words();
            params.out = out;
            // SAFETY: the plane `at · plane_out ..+ plane_out` is inside `output` (asserted
            // above: `at < batch · out_c`); one past its end at most one past `output`.
            out = unsafe { out.add(plane_out) };
            params.end = out;
            // SAFETY: the reads are inside `padded` (asserted above for every window of
            // every row), the writes are the plane (`out` to `end`, `out_h` rows); `wc` is
            // the channel's 12 packed weight bytes (LDR may be unaligned on Armv7E-M).
            unsafe { rows(padded.as_ptr(), rs, wc, &params) };
            // SAFETY: at most one past the last channel's 12 bytes (inside or one past).
            wc = unsafe { wc.add(12) };
            at += 1;
            c += 1;
        }
    }
}
