//! The flattened planes the x86 (AVX-512) and AArch64 (NEON) convolutions read: see
//! [`flat::Flat`].

use super::Conv2d;

/// Taps of the largest window the flattened kernels take (8 × 8; their table of tap
/// offsets is filled on every call).
pub(crate) const MAX_TAPS: usize = 64;

/// Floats of the f32 kernels' stack buffer (32 KiB): the phase planes of as many
/// input channels at a time as fit.
pub(crate) const FLAT_BUFFER: usize = 8192;

/// The layout of the flattened kernels' buffer: for each input channel, one plane for
/// every row phase `ky·dil_h mod stride_h` and column phase `kx·dil_w mod stride_w` a tap
/// uses, each `h2 × w2` floats, where plane (`a`, `b`) holds the padded input's rows
/// `y·stride_h + a` and columns `x·stride_w + b` (0 in the padding).
#[derive(Clone, Copy)]
pub struct Flat {
    /// Rows and columns of a phase plane: the output's plus the taps' reach.
    pub(crate) h2: usize,
    pub(crate) w2: usize,
    /// Slot of each row phase and column phase among the used ones (`usize::MAX` unused).
    pub(crate) row_slot: [usize; 8],
    pub(crate) col_slot: [usize; 8],
    /// Used column phases (a channel has `rows × cols` planes).
    pub(crate) cols: usize,
    /// Floats of one channel's planes.
    pub(crate) channel: usize,
}

impl Flat {
    /// The layout for `p`, if the buffer holds one channel's planes.
    pub fn of(p: &Conv2d) -> Option<Flat> {
        if p.groups != 1 {
            return None;
        }
        Flat::of_window(&p.window)
    }

    /// The layout for a window, if the buffer holds one channel's planes.
    pub fn of_window(w: &super::Window2d) -> Option<Flat> {
        let (sh, sw) = (w.stride_h, w.stride_w);
        if !(1..=8).contains(&sh) || !(1..=8).contains(&sw) {
            return None;
        }
        if w.k_h * w.k_w > MAX_TAPS || w.out_h == 0 || w.out_w == 0 {
            return None;
        }
        let h2 = w.out_h + (w.k_h - 1) * w.dil_h / sh;
        let w2 = w.out_w + (w.k_w - 1) * w.dil_w / sw;
        let (mut row_slot, mut col_slot) = ([usize::MAX; 8], [usize::MAX; 8]);
        let (mut rows, mut cols) = (0, 0);
        for ky in 0..w.k_h {
            let a = ky * w.dil_h % sh;
            if row_slot[a] == usize::MAX {
                row_slot[a] = rows;
                rows += 1;
            }
        }
        for kx in 0..w.k_w {
            let b = kx * w.dil_w % sw;
            if col_slot[b] == usize::MAX {
                col_slot[b] = cols;
                cols += 1;
            }
        }
        let channel = rows * cols * h2 * w2;
        // One channel's planes and a row of slack (the reach of a last row's idle lanes).
        (channel + w2 <= FLAT_BUFFER).then_some(Flat {
            h2,
            w2,
            row_slot,
            col_slot,
            cols,
            channel,
        })
    }
}

impl Flat {
    /// Each tap's (`ky · k_w + kx`) offset in a channel's planes: row `ky·dil_h /
    /// stride_h` and column `kx·dil_w / stride_w` of its phases' plane.
    pub(crate) fn tap_offsets(&self, w: &super::Window2d) -> [usize; MAX_TAPS] {
        let mut at = [0usize; MAX_TAPS];
        for ky in 0..w.k_h {
            for kx in 0..w.k_w {
                let (dy, dx) = (ky * w.dil_h, kx * w.dil_w);
                let slot =
                    self.row_slot[dy % w.stride_h] * self.cols + self.col_slot[dx % w.stride_w];
                at[ky * w.k_w + kx] =
                    slot * self.h2 * self.w2 + dy / w.stride_h * self.w2 + dx / w.stride_w;
            }
        }
        at
    }

    /// Writes `channels` channels' phase planes into `buf`, then zeroes the row of slack
    /// after them. `plane(dst, c, a, cols)` fills the plane `dst` (`h2` rows of `w2`)
    /// from channel `c`: its row `y` from input row `y·stride_h + a − pad_top` (padding
    /// outside `0..in_h`), at `cols = (lo, hi, ix)` the values `x` in `lo..hi` from
    /// column `ix + (x − lo)·stride_w`, the rest padding.
    #[inline(always)]
    pub(crate) fn fill<T: Copy>(
        &self,
        w: &super::Window2d,
        channels: usize,
        buf: &mut [core::mem::MaybeUninit<T>],
        zero: T,
        mut plane: impl FnMut(&mut [core::mem::MaybeUninit<T>], usize, usize, (usize, usize, usize)),
    ) {
        let iw = w.in_w;
        let (sh, sw, pl) = (w.stride_h, w.stride_w, w.pad_left);
        let size = self.h2 * self.w2;
        for c in 0..channels {
            for a in (0..sh).filter(|&a| self.row_slot[a] != usize::MAX) {
                for b in (0..sw).filter(|&b| self.col_slot[b] != usize::MAX) {
                    let slot = self.row_slot[a] * self.cols + self.col_slot[b];
                    let dst = &mut buf[c * self.channel + slot * size..][..size];
                    // Columns x with 0 ≤ x·sw + b − pl < iw: lo..hi.
                    let lo = pl.saturating_sub(b).div_ceil(sw).min(self.w2);
                    let hi = if iw + pl > b {
                        ((iw + pl - b - 1) / sw + 1).clamp(lo, self.w2)
                    } else {
                        lo
                    };
                    // With no column inside, `ix` is never read.
                    plane(dst, c, a, (lo, hi, (lo * sw + b).saturating_sub(pl)));
                }
            }
        }
        buf[channels * self.channel..][..self.w2].fill(core::mem::MaybeUninit::new(zero));
    }

    /// Which plane positions are outputs (column below `out_w`), for [`Kept::at`].
    pub(crate) fn kept(&self, out_w: usize) -> Kept {
        Kept::new(self.w2, out_w)
    }
}

/// The output positions of a flattened plane `w2` positions a row, `out_w` of them
/// outputs: bit `j` of `pattern` is position `j`'s (rows up to 64 wide read it shifted).
pub(crate) struct Kept {
    pattern: u128,
    pub(crate) w2: usize,
    out_w: usize,
}

impl Kept {
    pub(crate) fn new(w2: usize, out_w: usize) -> Kept {
        let pattern = (0..128).fold(0u128, |m, j| m | u128::from(j % w2 < out_w) << j);
        Kept { pattern, w2, out_w }
    }

    /// Bit `l` set for each output among positions `t .. t + n` (`n` ≤ 64).
    #[inline]
    pub(crate) fn at(&self, t: usize, n: usize) -> u64 {
        let col = t % self.w2;
        let busy = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        if self.w2 <= 64 {
            // col < 64 and n ≤ 64: bits col .. col + n of the 128.
            return (self.pattern >> col) as u64 & busy;
        }
        let (mut m, mut c) = (0u64, col);
        for l in 0..n {
            m |= u64::from(c < self.out_w) << l;
            c = if c + 1 == self.w2 { 0 } else { c + 1 };
        }
        m
    }
}

/// Every row width up to 100 (the shifted pattern and the counted lanes alike), every
/// start and length: the positions whose column is below `out_w`. (Under Miri, which checks
/// the kernels' memory accesses rather than this arithmetic, widths up to 20.)
#[cfg(test)]
#[test]
fn kept_positions_are_the_outputs() {
    for w2 in 1..if cfg!(miri) { 20 } else { 100 } {
        for out_w in [1, w2 / 2 + 1, w2] {
            let f = Kept::new(w2, out_w);
            for t in (0..3 * w2).step_by(w2 / 3 + 1) {
                for n in [1, 7, 16, 33, 64] {
                    let want = (0..n).fold(0u64, |m, l| m | u64::from((t + l) % w2 < out_w) << l);
                    assert_eq!(f.at(t, n), want, "w2 {w2} out_w {out_w} t {t} n {n}");
                }
            }
        }
    }
}
