//! The int8 depthwise kernel's whole channel loop on Cortex-M4F (rows of 4 to 8 bytes,
//! `DW_ROWS_SHORT`): one assembly block per call copies each channel's rows into the padded
//! plane, sets its constants and runs its rows with the row loop of `depthwise.rs` (whose
//! macros it expands).

use super::*;

/// What [`depthwise_channels_dsp_asm`] loads once per call into `s2`–`s27` by one `VLDM`:
/// the row loop's registers (as [`DwRows`]; the per-channel ones set per channel), then the
/// channel loop's running pointers and the copies' constants.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[repr(C, align(8))]
pub(crate) struct DwChannels {
    /// `s2`–`s11`: as [`DwRows`]; `exponent`, `bias`, `end`, `scale` and `round` are the
    /// assembly's, set per channel.
    rows: [u32; 10],
    /// `s12`: the next channel's kept rows (`kept` rows of `in_w` bytes each).
    kept_src: *const i8,
    /// `s13`: the next channel's fresh rows (`fresh` rows).
    fresh_src: *const i8,
    /// `s14`: the next channel's packed weights (12 bytes each).
    weights: *const i8,
    /// `s15`: the next channel's bias (a static 0 when there is none).
    bias: *const i32,
    /// `s16`: the next channel's scale (a float32 or a `Q31`, two words).
    scales: *const u32,
    /// `s17`: where the last channel's output plane ends (the loop's bound).
    out_end: *mut i8,
    /// `s18`, `s19`: kept and fresh rows per channel (the fresh ones right after the kept
    /// ones in the padded plane).
    kept: usize,
    fresh: usize,
    /// `s20`: where the kept rows go in the padded plane.
    kept_dst: *mut i8,
    /// `s21`: the offset of a row's last word (`in_w − 4`); `s22`: `in_w`.
    last_word: usize,
    in_w: usize,
    /// `s23`: bytes from one padded row to the next.
    row: usize,
    /// `s24`: output bytes a channel.
    plane_out: usize,
    /// `s25`: the input zero point (the bias takes `zero · Σ w` back).
    input_zero: i32,
    /// `s26`: the padded plane's first window.
    x: *const i8,
    /// `s27`: bytes from one bias to the next: 4, or 0 with no bias.
    bias_step: usize,
}

/// [`dw_rows_asm`] for every channel of a call in one block (see
/// [`depthwise_channels_dsp_asm`]): per channel its kept and fresh rows copied into the
/// padded plane (two words a row, the second ending at the row's last byte: exact reads and
/// writes, no over-read at a tensor's end and the border, filled once a call, never
/// overwritten), its weights unpacked, its
/// bias less `input_zero · Σ w`, its scale, then its rows (`$form`: `loop` or `two`, see
/// [`dw_row_loop`]). `$bias_double` doubles the bias for a fixed point (its weights doubled
/// by `$double`), `$scale` loads the channel's scale from `u` (post-indexed).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_channels_asm {
    ($params:expr, $out:expr, $rs:expr, $form:ident, [$($requant:expr),*],
     [$($pair:expr),*], [$($lone:expr),*], [$($clamp:expr),*], [$($zero:expr),*],
     [$($double:expr),*], [$($bias_double:expr),*], [$($scale:expr),*]) => {
        dw_asm!(
            [
                "vldmia {t}, {{s2-s27}}",
                "8:",
                // The copies' constants: `a0` a row's last word, `a1` its length, `w0` the
                // padded row.
                "vmov {a0}, {a1}, s21, s22",
                "vmov {w0}, s23",
                "vmov {e}, s18",
                "vmov {x}, s12",
                "vmov {u}, s20",
                dw_copy_rows!(),
                "vmov s12, {x}",
                // The fresh rows right after the kept ones (`u` is there).
                "vmov {e}, s19",
                "vmov {x}, s13",
                dw_copy_rows!(),
                "vmov s13, {x}",
                // The weights, then the bias less `input_zero · Σ w` (Σ w in rows 0 and 1's
                // pad bytes, see `pack_depthwise_weights`).
                "vmov {e}, s14",
                "ldr {w0}, [{e}]",
                "ldr {w1}, [{e}, #4]",
                "ldr {w2}, [{e}, #8]",
                "adds {e}, {e}, #12",
                "vmov s14, {e}",
                "lsrs {a0}, {w0}, #24",
                "asrs {a1}, {w1}, #24",
                "orr {a0}, {a0}, {a1}, lsl #8",
                "vmov {a1}, s25",
                "vmov {x}, {u}, s15, s16",
                "ldr {v}, [{x}]",
                "mls {v}, {a1}, {a0}, {v}",
                $($bias_double,)*
                "vmov s3, {v}",
                dw_row_loop!(bias $form, "mov r7, {v}"),
                "vmov {v}, s27",
                "add {x}, {x}, {v}",
                $($scale,)*
                "vmov s15, s16, {x}, {u}",
                // The plane's end, its first window.
                "vmov {a0}, s24",
                "add {a0}, {a0}, {po}",
                "vmov s9, {a0}",
                "vmov {px}, s26",
                dw_unpack!(),
                $($double,)*
                "vmov {t}, s4"
            ],
            $form, [$($requant),*], [$($pair),*], [$($lone),*], [$($clamp),*], [$($zero),*],
            [
                "vmov {a0}, s17",
                "cmp {po}, {a0}",
                "bne 8b"
            ],
            t = inout(reg) $params => _,
            px = out(reg) _,
            po = inout(reg) $out => _,
            rs = in(reg) $rs,
            e = out(reg) _,
            out("s12") _,
            out("s13") _,
            out("s14") _,
            out("s15") _,
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
        )
    };
}

/// `e` rows (possibly none) from `x` (`a1` bytes apart) into the padded plane at `u` (`w0`
/// bytes apart): per row its first word and the word ending at its last byte (at `a0`),
/// overlapping for rows under 8 bytes; two rows an iteration. `v` and `w2` are temporaries;
/// `x` and `u` end past the last row.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_copy_rows {
    () => {
        concat!(
            "lsrs {e}, {e}, #1\n",
            "bcc 4f\n",
            dw_copy_rows!(row),
            "4:\n",
            // Z still from LSRS: no pair of rows (left).
            "beq 6f\n",
            "5:\n",
            dw_copy_rows!(row),
            dw_copy_rows!(row),
            "subs {e}, {e}, #1\n",
            "bne 5b\n",
            "6:"
        )
    };
    (row) => {
        concat!(
            "ldr {v}, [{x}]\n",
            "ldr {w2}, [{x}, {a0}]\n",
            "add {x}, {x}, {a1}\n",
            "str {v}, [{u}]\n",
            "str {w2}, [{u}, {a0}]\n",
            "add {u}, {u}, {w0}\n",
        )
    };
}

/// A `Q31`'s multiplier and half unit into `s10`, `s11` from `u` (post-indexed), its exponent
/// (the half unit's trailing zeros plus one, see `Q31::exponent`) into `s2`.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
macro_rules! dw_q31_scale {
    () => {
        concat!(
            "vldmia {u}!, {{s10, s11}}\n",
            "vmov {a0}, s11\n",
            "rbit {a0}, {a0}\n",
            "clz {a0}, {a0}\n",
            "adds {a0}, {a0}, #1\n",
            "vmov s2, {a0}"
        )
    };
}

/// Every channel of one image of a 3×3 depthwise convolution with rows of 4 to 8 input bytes
/// ([`DW_ROWS_SHORT`]) and horizontal stride `STRIDE` (1 or 2) on Cortex-M4F/M7/M33, in one
/// assembly block: per channel about 30 instructions and 7 a copied row around the rows of
/// [`depthwise_rows_dsp_asm`] (against about 90 when the channel loop is Rust's), which a
/// streamed stage's bands pay per channel and call. `PAIRS2`: two pairs a row
/// ([`DW_PAIRS2`]), spelt out.
///
/// # Safety
/// `params` describes the call ([`depthwise_channels_dsp`] builds and checks it): for each
/// channel (`plane_out` output bytes from `out` to `out_end`, at least one), `kept` rows of
/// `in_w` (4 to 8) bytes readable from `kept_src` and `fresh` from `fresh_src` (one
/// channel's after the other's), `kept + fresh` rows of `in_w` bytes writable from
/// `kept_dst` with `row` bytes between rows; 12 weight bytes, a bias (4 bytes, or the same 4
/// at step 0) and a scale readable; every window's reads (see [`depthwise_rows_dsp_asm`]) inside the
/// padded plane from `x`, kernel rows `rs` bytes apart; the padded plane's border holds the
/// input zero point.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
pub(crate) unsafe fn depthwise_channels_dsp_asm<
    const STRIDE: usize,
    const CLAMP: bool,
    const ODD: bool,
    const PAIRS2: bool,
    S: ChannelScale,
>(
    out: *mut i8,
    rs: usize,
    params: &DwChannels,
) {
    let pp = params as *const DwChannels;
    // SAFETY: the reads and writes are the caller's contract (the copies' reads inside each
    // row, their writes inside each padded row; every pair's and lone pixel's loads inside
    // its windows; LDR/STR may be unaligned on Armv7E-M); `params` lives across the block and
    // is only read. FPU and DSP-extension instructions; s0–s27 and the flags are clobbered;
    // r7 is pushed and popped (the stack balanced, no call between).
    unsafe {
        dw_by_scale!(
            S,
            dw_channels_asm,
            [pp, out, rs,],
            [STRIDE, CLAMP, ODD, PAIRS2],
            [[""], [""], ["vldmia {u}!, {{s10}}"]],
            [[dw_double!()], ["lsls {v}, {v}, #1"], [dw_q31_scale!()]]
        )
    }
}

/// One variant of [`depthwise_channels_dsp_asm`]: every channel of one image.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
pub(crate) type DwChannelsFn = unsafe fn(*mut i8, usize, &DwChannels);

/// The variant of [`depthwise_channels_dsp_asm`] for `kind` and `p`'s clamp, row parity and
/// pairs a row (constants when `VARIANT` names them: then only that block is compiled).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[inline(always)]
pub(crate) fn dsp_channels_fn<S: ChannelScale, const VARIANT: u8>(
    p: &ConvI8,
    kind: PairKind,
) -> DwChannelsFn {
    let v = match VARIANT {
        0 => depthwise_variant(p),
        v => v,
    };
    let (clamp, odd, pairs2) = (v & DW_CLAMP != 0, v & DW_ODD != 0, v & DW_PAIRS2 != 0);
    macro_rules! channels {
        ($($stride:literal, $clamp:literal, $odd:literal, $two:literal, $kind:ident);*) => {
            match (kind, clamp, odd, pairs2) {
                $((PairKind::$kind, $clamp, $odd, $two) => {
                    depthwise_channels_dsp_asm::<$stride, $clamp, $odd, $two, S> as DwChannelsFn
                })*
            }
        };
    }
    channels!(
        1, false, false, false, Stride1; 1, false, true, false, Stride1;
        1, true, false, false, Stride1; 1, true, true, false, Stride1;
        2, false, false, false, Stride2; 2, false, true, false, Stride2;
        2, true, false, false, Stride2; 2, true, true, false, Stride2;
        1, false, false, true, Stride1; 1, false, true, true, Stride1;
        1, true, false, true, Stride1; 1, true, true, true, Stride1;
        2, false, false, true, Stride2; 2, false, true, true, Stride2;
        2, true, false, true, Stride2; 2, true, true, true, Stride2
    )
}

/// [`conv2d_i8_depthwise_split_as`] for the two-pixel geometries with rows of 4 to 8 bytes
/// ([`DW_ROWS_SHORT`]) on Cortex-M4F/M7/M33: the checks, then per image one call of
/// `channels` (a variant of [`depthwise_channels_dsp_asm`]) for all its channels.
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn depthwise_channels_dsp<S: ChannelScale>(
    p: &ConvI8,
    kind: PairKind,
    planes: &Planes,
    packed: &[i8],
    bias: Option<&[i32]>,
    scales: &[S],
    padded: &mut [i8],
    row: usize,
    output: &mut [i8],
    channels: DwChannelsFn,
) {
    /// The bias of every channel of a layer without one (read at step 0).
    static NO_BIAS: i32 = 0;
    let g = &p.geom;
    let w = &g.window;
    let (kept, fresh) = (planes.kept, w.in_h - planes.kept);
    let plane_out = w.out_h * w.out_w;
    let (step, last_col) = match kind {
        PairKind::Stride1 => (1, 3),
        PairKind::Stride2 => (2, 4),
    };
    // Every window's reads inside the padded plane (as `channel_loop`).
    let deepest = ((w.out_h - 1) * w.stride_h + 2 * w.dil_h) * row;
    let widest = (w.out_w - 1) * step + last_col;
    assert!(widest < row && deepest + row <= padded.len() && w.out_w >= 2);
    // One input plane a channel; every row's copy (`in_w + 4` bytes from its start) inside
    // the padded plane; its two words inside the source row.
    assert!(g.in_c == g.out_c && (4..=8).contains(&w.in_w) && row >= w.in_w + 4);
    let inside = w.pad_top * row + w.pad_left;
    assert!(w.in_h == 0 || inside + (w.in_h - 1) * row + w.in_w + 4 <= padded.len());
    let (kept_len, fresh_len) = (kept * w.in_w, fresh * w.in_w);
    assert!(planes.kept_rows.len() >= g.batch * g.in_c * kept_len);
    assert!(planes.input.len() >= g.batch * g.in_c * fresh_len);
    assert!(output.len() >= g.batch * g.out_c * plane_out);
    assert!(packed.len() >= 12 * g.out_c && scales.len() >= g.out_c);
    assert!(bias.is_none_or(|b| b.len() >= g.out_c));
    if g.out_c == 0 || plane_out == 0 {
        return;
    }
    let bytes = |v: i8| u32::from(v as u8) * 0x0101_0101;
    let zero = p.input_zero;
    let base = padded.as_mut_ptr();
    let mut params = DwChannels {
        rows: [
            0,
            0,
            p.output_zero as u32,
            bytes(p.lo),
            bytes(p.hi),
            (2 * (w.out_w / 2)) as u32,
            // Wrapping: added to an address (positive for every padded geometry).
            (w.stride_h * row).wrapping_sub(2 * step * (w.out_w / 2)) as u32,
            0,
            0,
            0,
        ],
        kept_src: planes.kept_rows.as_ptr(),
        fresh_src: planes.input.as_ptr(),
        weights: packed.as_ptr(),
        bias: bias.map_or(&NO_BIAS as *const i32, |b| b.as_ptr()),
        scales: scales.as_ptr().cast(),
        out_end: core::ptr::null_mut(),
        kept,
        fresh,
        // SAFETY: inside `padded` (asserted above: `inside` is before the last row's start).
        kept_dst: unsafe { base.add(inside) },
        last_word: w.in_w - 4,
        in_w: w.in_w,
        row,
        plane_out,
        input_zero: zero,
        x: base,
        bias_step: if bias.is_some() { 4 } else { 0 },
    };
    let mut out = output.as_mut_ptr();
    for n in 0..g.batch {
        let plane = n * g.in_c;
        params.kept_src = planes.kept_rows[plane * kept_len..].as_ptr();
        params.fresh_src = planes.input[plane * fresh_len..].as_ptr();
        params.weights = packed.as_ptr();
        params.bias = bias.map_or(&NO_BIAS as *const i32, |b| b.as_ptr());
        params.scales = scales.as_ptr().cast();
        // SAFETY: one image's planes on, at most one past `output`'s end.
        params.out_end = unsafe { out.add(g.out_c * plane_out) };
        // SAFETY: the sources hold `out_c` planes of `kept` and `fresh` rows from here, the
        // weights, biases and scales `out_c` channels, the output `out_c` planes from `out`
        // (all asserted above); the copies land inside the padded plane and every window's
        // reads are inside it (asserted above); `prepare` filled its border.
        unsafe { channels(out, w.dil_h * row, &params) };
        out = params.out_end;
    }
}
