//! Row movement for streamed stages: the copies that keep each window of rows in the layout
//! the other kernels read.
//!
//! A streamed stage (see the compiler's `plan/stream.rs`) never holds its feature maps
//! whole. Each consumer of a streamed tensor keeps a *window*: the rows its next call reads,
//! laid out as a small NCHW tensor `[channels][rows][width]`, so the ordinary kernels run on
//! it unchanged with a band geometry (fewer rows, the padding of the band). When a producer
//! adds rows, the rows still needed move up to their place in the new layout and the new
//! rows are copied in: both are a [`RowCopy`], per channel a block of whole rows, in bytes so
//! that one routine serves every element type.

/// Per channel, `rows` rows of `row_bytes` bytes from `src + c·src_channel` to
/// `dst + c·dst_channel` (byte offsets into one buffer: the arena).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowCopy {
    /// Channels (blocks) to move.
    pub channels: usize,
    /// Bytes per channel block (whole rows).
    pub bytes: usize,
    /// Byte offset of channel 0's block in the source.
    pub src: usize,
    /// Bytes from one channel's block to the next in the source.
    pub src_channel: usize,
    /// Byte offset of channel 0's block in the destination.
    pub dst: usize,
    /// Bytes from one channel's block to the next in the destination.
    pub dst_channel: usize,
}

impl RowCopy {
    fn src_at(&self, c: usize) -> usize {
        self.src + c * self.src_channel
    }

    fn dst_at(&self, c: usize) -> usize {
        self.dst + c * self.dst_channel
    }

    /// True when every block is whole words at word offsets (in a word-aligned buffer):
    /// [`copy_rows`] then moves four words per `LDM`/`STM` on the Cortex-M4.
    pub fn whole_words(&self) -> bool {
        (self.bytes | self.src | self.dst | self.src_channel | self.dst_channel).is_multiple_of(4)
    }
}

/// Moves the blocks of `p` within `buf`. Source and destination may overlap, as they do when
/// a window drops its oldest rows and widens for new ones: blocks that move towards the
/// start go first, in channel order, then those that move towards the end, in reverse
/// order, so no block is overwritten before it has moved (the channel strides of both
/// layouts never make blocks of one layout interleave with another's out of order).
///
/// # Panics
/// If a block lies outside `buf`.
pub fn copy_rows(buf: &mut [u8], p: &RowCopy) {
    if p.channels == 0 || p.bytes == 0 {
        return;
    }
    let last = p.channels - 1;
    assert!(
        p.src_at(last) + p.bytes <= buf.len() && p.dst_at(last) + p.bytes <= buf.len(),
        "row copy outside the buffer"
    );
    // `d − s` is linear in the channel: the blocks moving towards the start are a prefix
    // (or a suffix) of the channels, found once instead of tested per block.
    let delta = |c: usize| p.dst_at(c) as isize - p.src_at(c) as isize;
    let (d0, slope) = (delta(0), delta(last.min(1)) - delta(0));
    let towards_start = |c: usize| delta(c) <= 0;
    let split = match (d0 <= 0, slope) {
        // Prefix [0, split) moves towards the start.
        (true, s) if s > 0 => ((-d0 / s) as usize + 1).min(p.channels),
        (true, _) => p.channels,
        // Suffix [split, channels) moves towards the start (or none does).
        (false, s) if s < 0 => (((d0 + (-s) - 1) / -s) as usize).min(p.channels),
        (false, _) => p.channels,
    };
    let (first, second) = if d0 <= 0 {
        (0..split, split..p.channels)
    } else {
        (split..p.channels, 0..split)
    };
    debug_assert!(first.clone().all(towards_start));
    debug_assert!(!second.clone().any(towards_start));
    // Whole words when every block is word-aligned (rows of a multiple of 4 bytes in an
    // aligned arena: the common case): all blocks of one direction in one loop.
    let words = p.whole_words() && (buf.as_ptr() as usize).is_multiple_of(4);
    if words {
        let base = buf.as_mut_ptr();
        // SAFETY: every block lies inside `buf` (asserted above for the last channel; the
        // offsets grow with the channel) and is word-aligned (checked above); the blocks
        // moving towards the start go first, in channel order, the others after, from the
        // last (the order above).
        unsafe {
            if !first.is_empty() {
                move_word_blocks(base, p, first.start, first.len(), true);
            }
            if !second.is_empty() {
                move_word_blocks(base, p, second.end - 1, second.len(), false);
            }
        }
        return;
    }
    #[cfg(microarena_dsp)]
    {
        let base = buf.as_mut_ptr();
        // Short blocks between two places that do not overlap (a window's kept rows, saved
        // from the band after it): two or three words each, the last one ending at the
        // block's end, in any order.
        let (src, dst) = (
            p.src..p.src_at(last) + p.bytes,
            p.dst..p.dst_at(last) + p.bytes,
        );
        let apart = src.end <= dst.start || dst.end <= src.start;
        if (4..=12).contains(&p.bytes) && apart && (p.channels == 1 || p.dst_channel >= p.bytes) {
            // SAFETY: every block lies inside `buf` (asserted above), the sources and the
            // destinations apart and the destinations each other's (checked here): nothing
            // is written before it is read, the order does not matter.
            unsafe { copy_short_blocks(base, p) };
            return;
        }
        // SAFETY: as above, but for the alignment: these loops read and write words
        // unaligned (allowed on Armv7E-M) and bytes.
        unsafe {
            if !first.is_empty() {
                move_byte_blocks(base, p, first.start, first.len(), true);
            }
            if !second.is_empty() {
                move_byte_blocks(base, p, second.end - 1, second.len(), false);
            }
        }
    }
    #[cfg(not(microarena_dsp))]
    {
        for c in first {
            buf.copy_within(p.src_at(c)..p.src_at(c) + p.bytes, p.dst_at(c));
        }
        for c in second.rev() {
            buf.copy_within(p.src_at(c)..p.src_at(c) + p.bytes, p.dst_at(c));
        }
    }
}

/// One loop over `$n` blocks, each `$a_count` times `$a` then `$b_count` times `$b` (the
/// instructions moving one group and advancing both pointers), then both pointers moved on
/// to the next block by `$step` (`add` forwards, `sub` backwards) the skips between blocks.
/// The registers `$a`/`$b` use (`$clobber`) and the flags are clobbered; no stack.
#[cfg(microarena_dsp)]
macro_rules! block_loop {
    ($s:expr, $d:expr, $n:expr, $s_skip:expr, $d_skip:expr, $step:literal,
     $a_count:expr, $a:literal, $b_count:expr, $b:literal, [$($clobber:tt)*]) => {
        core::arch::asm!(
            "1:",
            "movs {q}, {a_count}",
            "beq 3f",
            "2:",
            $a,
            "subs {q}, {q}, #1",
            "bne 2b",
            "3:",
            "movs {q}, {b_count}",
            "beq 5f",
            "4:",
            $b,
            "subs {q}, {q}, #1",
            "bne 4b",
            "5:",
            concat!($step, " {s}, {s}, {s_skip}"),
            concat!($step, " {d}, {d}, {d_skip}"),
            "subs {n}, {n}, #1",
            "bne 1b",
            s = inout(reg) $s => _,
            d = inout(reg) $d => _,
            n = inout(reg) $n => _,
            q = out(reg) _,
            a_count = in(reg) $a_count,
            b_count = in(reg) $b_count,
            s_skip = in(reg) $s_skip,
            d_skip = in(reg) $d_skip,
            $($clobber)*
            options(nostack),
        )
    };
}

/// Every block of `p`, 4 to 12 bytes each (rows of a few int8 pixels), by two or three
/// unaligned words a block: the first (and, past 8 bytes, the second) and the one ending at
/// the block's last byte: 10 instructions a block against about 24 by words and bytes.
///
/// # Safety
/// `base + p.src_at(c)` and `base + p.dst_at(c)` and `p.bytes` bytes from each are inside
/// one allocation valid for reads and writes, for every channel; no destination block
/// overlaps a source block or another destination block.
#[cfg(microarena_dsp)]
#[inline]
unsafe fn copy_short_blocks(base: *mut u8, p: &RowCopy) {
    debug_assert!((4..=12).contains(&p.bytes));
    let tail = p.bytes - 4;
    // SAFETY: the caller's contract; each load and store is inside its block (offsets 0, 4
    // when the block has more than 8 bytes, and `bytes − 4`); unaligned LDR/STR are allowed
    // on Armv7E-M. r0–r2 clobbered, no stack, flags clobbered.
    unsafe {
        let (s, d) = (base.add(p.src), base.add(p.dst));
        // One block a pass: `$load` and `$store` between the first word and the last.
        macro_rules! blocks {
            ([$($load:literal),*], [$($store:literal),*], $($temp:tt)*) => {
                core::arch::asm!(
                    "1:",
                    "ldr r0, [{s}]",
                    $($load,)*
                    "ldr r1, [{s}, {tail}]",
                    "add {s}, {s}, {s_step}",
                    "str r0, [{d}]",
                    $($store,)*
                    "str r1, [{d}, {tail}]",
                    "add {d}, {d}, {d_step}",
                    "subs {n}, {n}, #1",
                    "bne 1b",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    n = inout(reg) p.channels => _,
                    tail = in(reg) tail,
                    s_step = in(reg) p.src_channel,
                    d_step = in(reg) p.dst_channel,
                    out("r0") _,
                    out("r1") _,
                    $($temp)*
                    options(nostack),
                )
            };
        }
        if p.bytes <= 8 {
            blocks!([], [],);
        } else {
            blocks!(["ldr r2, [{s}, #4]"], ["str r2, [{d}, #4]"], out("r2") _,);
        }
    }
}

/// [`move_word_blocks`] for blocks of any alignment and length (rows of an odd number of
/// int8 pixels): per block its whole words by unaligned `LDR`/`STR`, the rest bytewise, in
/// one loop over the blocks (a `memmove` call per block costs about 60 instructions).
///
/// # Safety
/// `base + p.src_at(c)` and `base + p.dst_at(c)` and `p.bytes` bytes from each are inside
/// one allocation valid for reads and writes, for every channel moved; each block moves
/// towards the start when `forward`, else towards the end (or stays).
#[cfg(microarena_dsp)]
#[inline]
unsafe fn move_byte_blocks(base: *mut u8, p: &RowCopy, from: usize, blocks: usize, forward: bool) {
    let (s_skip, d_skip) = (
        p.src_channel.wrapping_sub(p.bytes),
        p.dst_channel.wrapping_sub(p.bytes),
    );
    if forward {
        // SAFETY: the caller's contract: `blocks` blocks from channel `from` up, each word
        // or byte read before a store reaches it (the destination is below the source;
        // unaligned LDR/STR are allowed on Armv7E-M). r0 clobbered, no stack, flags
        // clobbered.
        unsafe {
            block_loop!(
                base.add(p.src_at(from)),
                base.add(p.dst_at(from)),
                blocks,
                s_skip,
                d_skip,
                "add",
                p.bytes / 4,
                "ldr r0, [{s}], #4\nstr r0, [{d}], #4",
                p.bytes % 4,
                "ldrb r0, [{s}], #1\nstrb r0, [{d}], #1",
                [out("r0") _,]
            );
        }
    } else {
        // SAFETY: the caller's contract: `blocks` blocks from channel `from` down, each from
        // its end, each byte or word read before a store reaches it (the destination is
        // above the source). r0 clobbered, no stack, flags clobbered.
        unsafe {
            block_loop!(
                base.add(p.src_at(from) + p.bytes),
                base.add(p.dst_at(from) + p.bytes),
                blocks,
                s_skip,
                d_skip,
                "sub",
                p.bytes % 4,
                "ldrb r0, [{s}, #-1]!\nstrb r0, [{d}, #-1]!",
                p.bytes / 4,
                "ldr r0, [{s}, #-4]!\nstr r0, [{d}, #-4]!",
                [out("r0") _,]
            );
        }
    }
}

/// Moves `blocks` blocks of `p` (whole words) from channel `from` on: towards the start
/// (`forward`: each block word by word from its first, then the next channel) or towards
/// the end (each from its last word, then the channel before), so every word is read before
/// anything overwrites it. On Cortex-M4 the whole run is one loop, four words per `LDM`/
/// `STM` pair (0.25 instructions a byte and about 8 a block; the library `memmove` takes a
/// call and a longer set-up per block, which the thousands of short row blocks of a stage
/// pay per inference).
///
/// # Safety
/// `base + p.src_at(c)` and `base + p.dst_at(c)` are 4-aligned and `p.bytes` bytes from
/// each are inside one allocation valid for reads and writes, for every channel moved;
/// `p.bytes` is a multiple of 4; each block moves towards the start when `forward`, else
/// towards the end (or stays).
#[inline]
unsafe fn move_word_blocks(base: *mut u8, p: &RowCopy, from: usize, blocks: usize, forward: bool) {
    let words = p.bytes / 4;
    if words == 0 {
        return;
    }
    #[cfg(microarena_dsp)]
    {
        // Between one block's end and the next one's start (forward), or one block's start
        // and the previous one's end (backward).
        let (s_skip, d_skip) = (
            p.src_channel.wrapping_sub(p.bytes),
            p.dst_channel.wrapping_sub(p.bytes),
        );
        if forward {
            // SAFETY: the caller's contract: `blocks` blocks from channel `from` up, each
            // read a group of four words before a store reaches it (the destination is
            // below the source). r0–r3 clobbered, no stack, flags clobbered.
            unsafe {
                block_loop!(
                    base.add(p.src_at(from)),
                    base.add(p.dst_at(from)),
                    blocks,
                    s_skip,
                    d_skip,
                    "add",
                    words / 4,
                    "ldmia {s}!, {{r0, r1, r2, r3}}\nstmia {d}!, {{r0, r1, r2, r3}}",
                    words % 4,
                    "ldr r0, [{s}], #4\nstr r0, [{d}], #4",
                    [out("r0") _, out("r1") _, out("r2") _, out("r3") _,]
                );
            }
        } else {
            // SAFETY: the caller's contract: `blocks` blocks from channel `from` down, each
            // from its end, each group of four words read before a store reaches it (the
            // destination is above the source). r0–r3 clobbered, no stack, flags clobbered.
            unsafe {
                block_loop!(
                    base.add(p.src_at(from) + p.bytes),
                    base.add(p.dst_at(from) + p.bytes),
                    blocks,
                    s_skip,
                    d_skip,
                    "sub",
                    words % 4,
                    "ldr r0, [{s}, #-4]!\nstr r0, [{d}, #-4]!",
                    words / 4,
                    "ldmdb {s}!, {{r0, r1, r2, r3}}\nstmdb {d}!, {{r0, r1, r2, r3}}",
                    [out("r0") _, out("r1") _, out("r2") _, out("r3") _,]
                );
            }
        }
    }
    #[cfg(not(microarena_dsp))]
    for k in 0..blocks {
        let c = if forward { from + k } else { from - k };
        // SAFETY: the caller's contract; `copy` allows overlapping ranges.
        unsafe {
            core::ptr::copy(
                base.add(p.src_at(c)) as *const u32,
                base.add(p.dst_at(c)) as *mut u32,
                words,
            )
        }
    }
}

/// Where a streamed stage reads rows of a graph input: the caller's array, as it is or
/// quantized on the way (what `run` would otherwise do to the whole array when copying it
/// into the arena). A stage then holds no copy of the input: [`RowSource::read_rows`] moves
/// just the rows its next band reads into its window. Offsets in `p` count elements.
pub trait RowSource<T> {
    /// Per channel, `p.bytes` elements from `p.src + c·p.src_channel` of the source to
    /// `p.dst + c·p.dst_channel` of `dst`.
    ///
    /// # Panics
    /// If a block lies outside the source or `dst`.
    fn read_rows(&self, dst: &mut [T], p: &RowCopy);
}

impl<T: Copy> RowSource<T> for &[T] {
    fn read_rows(&self, dst: &mut [T], p: &RowCopy) {
        for c in 0..p.channels {
            let (s, d) = (p.src_at(c), p.dst_at(c));
            dst[d..d + p.bytes].copy_from_slice(&self[s..s + p.bytes]);
        }
    }
}

/// The caller's floats, quantized to int8 as they are read (a float interface in front of an
/// int8 graph): the same values [`super::quant::quantize`] gives for the whole array.
pub struct QuantizedRows<'a> {
    /// The caller's array.
    pub values: &'a [f32],
    /// The quantization of the graph's input.
    pub quantize: super::quant::Quantize,
}

impl RowSource<i8> for QuantizedRows<'_> {
    fn read_rows(&self, dst: &mut [i8], p: &RowCopy) {
        for c in 0..p.channels {
            let (s, d) = (p.src_at(c), p.dst_at(c));
            super::quant::quantize(
                &self.quantize,
                &self.values[s..s + p.bytes],
                &mut dst[d..d + p.bytes],
            );
        }
    }
}

/// The caller's array channels last (NHWC, as a TFLite file declares its input) read as
/// the channels-first (NCHW) tensor the stage's kernels take: each element of a row is
/// gathered from its pixel's `channels` values, in the copy the stage makes anyway (no
/// transposed copy of the whole input exists). Offsets in the [`RowCopy`] count elements of
/// the NCHW tensor, as for the other sources.
///
/// ```
/// use microarena_kernels::stream::{ChannelsLast, RowCopy, RowSource};
/// // 2 channels of a 2×2 image, NHWC: pixel-major.
/// let nhwc = [0i8, 10, 1, 11, 2, 12, 3, 13];
/// let src = ChannelsLast { values: &nhwc, channels: 2, plane: 4 };
/// let mut window = [0i8; 4];
/// // Row 1 (elements 2..4) of each channel.
/// let rows = RowCopy { channels: 2, bytes: 2, src: 2, src_channel: 4, dst: 0, dst_channel: 2 };
/// src.read_rows(&mut window, &rows);
/// assert_eq!(window, [2, 3, 12, 13]);
/// ```
pub struct ChannelsLast<'a, T> {
    /// The caller's array, `[batch][plane][channels]`.
    pub values: &'a [T],
    /// Channels of each pixel.
    pub channels: usize,
    /// Pixels of each image (`h · w`).
    pub plane: usize,
}

impl<T: Copy> RowSource<T> for ChannelsLast<'_, T> {
    fn read_rows(&self, dst: &mut [T], p: &RowCopy) {
        let (c_n, plane) = (self.channels, self.plane);
        for c in 0..p.channels {
            let (s, d) = (p.src_at(c), p.dst_at(c));
            let (image, px) = (s / (c_n * plane).max(1), s % plane.max(1));
            if px + p.bytes <= plane {
                // The run lies in one channel's plane (a stage's rows always do): a gather at
                // the pixel stride, its position worked out once (no divisions per element:
                // the stage reading a 96×96 RGB input spent 14 instructions a byte on them).
                let ch = (s / plane) % c_n;
                let first = (image * plane + px) * c_n + ch;
                let out = &mut dst[d..d + p.bytes];
                if let Some(k) = out.len().checked_sub(1) {
                    assert!(first + k * c_n < self.values.len());
                }
                for (k, out) in out.iter_mut().enumerate() {
                    // SAFETY: `first + k · c_n` for `k < out.len()` is at most the index
                    // asserted above. (A checked index or a stepped iterator costs 10
                    // instructions a byte on the Cortex-M4; this loop 5.)
                    *out = unsafe { *self.values.get_unchecked(first + k * c_n) };
                }
                continue;
            }
            for (e, out) in dst[d..d + p.bytes].iter_mut().enumerate() {
                // Element s + e of the NCHW tensor: image n, channel ch, pixel px.
                let i = s + e;
                let (image, px) = (i / (c_n * plane), i % plane);
                let ch = (i / plane) % c_n;
                *out = self.values[(image * plane + px) * c_n + ch];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    /// Channels-last reads give the channels-first tensor's elements, for runs inside one
    /// plane (the gather) and across planes (element by element).
    #[test]
    fn channels_last_reads_the_transposed_tensor() {
        let (batch, c_n, plane) = (2, 3, 10);
        let nhwc: std::vec::Vec<i32> = (0..(batch * c_n * plane) as i32).collect();
        // The NCHW tensor the source stands for.
        let nchw = |i: usize| {
            let (n, ch, px) = (i / (c_n * plane), (i / plane) % c_n, i % plane);
            nhwc[(n * plane + px) * c_n + ch]
        };
        let src = ChannelsLast {
            values: &nhwc,
            channels: c_n,
            plane,
        };
        for (src_at, bytes, channels) in [(0, 10, 6), (3, 4, 5), (7, 6, 4), (25, 12, 2)] {
            let p = RowCopy {
                channels,
                bytes,
                src: src_at,
                src_channel: plane,
                dst: 1,
                dst_channel: bytes + 2,
            };
            let mut got = vec![-1; 1 + channels * (bytes + 2)];
            src.read_rows(&mut got, &p);
            for c in 0..channels {
                for e in 0..bytes {
                    assert_eq!(got[p.dst_at(c) + e], nchw(p.src_at(c) + e), "{p:?} {c} {e}");
                }
            }
        }
    }

    #[test]
    fn rows_read_from_the_caller() {
        // Two channels of 4 rows × 2 elements; rows 1..3 of each into a 2-row window.
        let src: [f32; 16] = core::array::from_fn(|i| i as f32 / 4.0);
        let p = RowCopy {
            channels: 2,
            bytes: 4,
            src: 2,
            src_channel: 8,
            dst: 0,
            dst_channel: 4,
        };
        let mut copied = [0.0f32; 8];
        (&src[..]).read_rows(&mut copied, &p);
        assert_eq!(copied, [0.5, 0.75, 1.0, 1.25, 2.5, 2.75, 3.0, 3.25]);
        let q = super::super::quant::Quantize {
            scale: 0.25,
            zero: -3,
        };
        let mut quantized = [0i8; 8];
        let rows = QuantizedRows {
            values: &src,
            quantize: q,
        };
        rows.read_rows(&mut quantized, &p);
        let mut whole = [0i8; 16];
        super::super::quant::quantize(&q, &src, &mut whole);
        assert_eq!(quantized[..4], whole[2..6]);
        assert_eq!(quantized[4..], whole[10..14]);
    }

    /// `[c][h][w]` of distinct bytes, then the same rows in a wider and a narrower window.
    fn relayout(channels: usize, h: usize, keep_from: usize, new_h: usize) {
        let w = 3;
        let mut buf = [0u8; 256];
        for (i, b) in buf.iter_mut().enumerate().take(channels * h * w) {
            *b = i as u8 + 1;
        }
        let before = buf;
        let kept = h - keep_from;
        copy_rows(
            &mut buf,
            &RowCopy {
                channels,
                bytes: kept * w,
                src: keep_from * w,
                src_channel: h * w,
                dst: 0,
                dst_channel: new_h * w,
            },
        );
        for c in 0..channels {
            for r in 0..kept * w {
                assert_eq!(
                    buf[c * new_h * w + r],
                    before[c * h * w + keep_from * w + r],
                    "channel {c} byte {r}"
                );
            }
        }
    }

    #[test]
    fn windows_move_without_clobbering() {
        for channels in 1..6 {
            for h in 1..5 {
                for keep_from in 0..h {
                    for new_h in h - keep_from..h + 4 {
                        relayout(channels, h, keep_from, new_h);
                    }
                }
            }
        }
    }

    /// Any copy (word-aligned or not, blocks moving either way, channel strides growing or
    /// shrinking) does what the plain two passes over every channel do: those moving
    /// towards the start in channel order, then the others in reverse.
    #[test]
    fn copies_match_the_plain_passes() {
        let mut seed = 7u32;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as usize % n
        };
        // Fewer under Miri (which checks the pointer arithmetic, not the combinations).
        for _ in 0..if cfg!(miri) { 150 } else { 3000 } {
            let word = next(2) == 0;
            let unit = if word { 4 } else { 1 };
            let p = RowCopy {
                channels: 1 + next(6),
                bytes: unit * (1 + next(12)),
                src: unit * next(16),
                src_channel: unit * next(20),
                dst: unit * next(16),
                dst_channel: unit * next(20),
            };
            let len = (p.src_at(p.channels - 1).max(p.dst_at(p.channels - 1)) + p.bytes + 3) & !3;
            // A u32 buffer: word-aligned, as the arena is.
            let mut words = vec![0u32; len / 4];
            let buf: &mut [u8] = bytemuck_bytes(&mut words);
            buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
            let mut want = buf.to_vec();
            for c in 0..p.channels {
                let (s, d) = (p.src_at(c), p.dst_at(c));
                if d <= s {
                    want.copy_within(s..s + p.bytes, d);
                }
            }
            for c in (0..p.channels).rev() {
                let (s, d) = (p.src_at(c), p.dst_at(c));
                if d > s {
                    want.copy_within(s..s + p.bytes, d);
                }
            }
            copy_rows(buf, &p);
            assert_eq!(buf, &want[..], "{p:?}");
        }
    }

    /// The bytes of a `u32` buffer.
    fn bytemuck_bytes(words: &mut [u32]) -> &mut [u8] {
        // SAFETY: the same memory as bytes (u8 has no alignment or invalid values), the
        // length in bytes; `words` is not used while the view lives.
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, 4 * words.len()) }
    }

    #[test]
    fn copies_between_disjoint_blocks() {
        let mut buf: [u8; 32] = core::array::from_fn(|i| i as u8);
        copy_rows(
            &mut buf,
            &RowCopy {
                channels: 2,
                bytes: 2,
                src: 0,
                src_channel: 4,
                dst: 20,
                dst_channel: 3,
            },
        );
        assert_eq!(&buf[20..25], &[0, 1, 22, 4, 5]);
    }
}
