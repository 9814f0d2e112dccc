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
    for c in 0..p.channels {
        let (s, d) = (p.src_at(c), p.dst_at(c));
        if d <= s {
            buf.copy_within(s..s + p.bytes, d);
        }
    }
    for c in (0..p.channels).rev() {
        let (s, d) = (p.src_at(c), p.dst_at(c));
        if d > s {
            buf.copy_within(s..s + p.bytes, d);
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

#[cfg(test)]
mod tests {
    use super::*;

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
