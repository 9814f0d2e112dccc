//! The fast int8 fully connected layer: weights packed four output columns by eight taps at
//! one byte each, the activations' zero point folded into the bias, and on Cortex-M4/M7 a
//! 4×8 `SXTB16`/`SMLAD` block in assembly (`cortex_m.rs`) that widens weights and activations
//! as it loads them (no scratch). The reference is
//! [`matmul_i8`](super::matmul_i8), which this matches bit for bit.

use super::MatMulI8;
use crate::scale::ChannelScale;

/// Output columns of a block.
pub const ROWS: usize = 4;
/// Taps (reduction steps) of a block.
pub const TAPS: usize = 8;

/// Bytes of [`pack_fc_weights`]'s output for `k` taps and `n` output columns: both rounded up
/// to a whole block, the padding zero.
pub fn packed_fc_len(k: usize, n: usize) -> usize {
    k.div_ceil(TAPS) * TAPS * n.div_ceil(ROWS) * ROWS
}

/// The weights of `p` (`b[n, k]` at `b_stride_n`, `b_stride_k`) in the layout
/// [`fully_connected_i8`] reads: for each group of four output columns, for each eight taps,
/// the four columns' eight weights one after the other (32 bytes a block, zero past `n` and
/// `k`).
///
/// ```
/// use microarena_kernels::gemm::{pack_fc_weights, MatMul, MatMulI8};
/// use microarena_kernels::Activation;
/// let geom = MatMul {
///     m: 1, n: 2, k: 3, a_stride_m: 3, a_stride_k: 1, b_stride_n: 3, b_stride_k: 1,
///     out_stride_m: 2, out_stride_n: 1, act: Activation::Identity,
/// };
/// let p = MatMulI8 { geom, a_zero: 0, out_zero: 0, lo: -128, hi: 127 };
/// let packed: Vec<i8> = pack_fc_weights(&p, &[1, 2, 3, 4, 5, 6]).collect();
/// assert_eq!(packed.len(), 32);
/// assert_eq!(packed[..11], [1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6]);
/// ```
pub fn pack_fc_weights<'a>(p: &'a MatMulI8, b: &'a [i8]) -> impl Iterator<Item = i8> + 'a {
    let g = &p.geom;
    let (groups, blocks) = (g.n.div_ceil(ROWS), g.k.div_ceil(TAPS));
    (0..groups).flat_map(move |gr| {
        (0..blocks).flat_map(move |bl| {
            (0..ROWS * TAPS).map(move |i| {
                let (n, k) = (gr * ROWS + i / TAPS, bl * TAPS + i % TAPS);
                if n < g.n && k < g.k {
                    b[n * g.b_stride_n + k * g.b_stride_k]
                } else {
                    0
                }
            })
        })
    })
}

/// The bias [`fully_connected_i8`] takes for `p`: `bias[n] − a_zero · Σ_k b[n, k]` (zero
/// without one), so that the kernel multiplies the activations as they are; the sums are the
/// reference's exactly (wrapping in `i32` as its do).
pub fn fold_fc_zero_point<'a>(
    p: &MatMulI8,
    b: &'a [i8],
    bias: Option<&'a [i32]>,
) -> impl Iterator<Item = i32> + 'a {
    let (g, zero) = (p.geom, p.a_zero);
    (0..g.n).map(move |n| {
        let w: i32 = (0..g.k)
            .map(|k| i32::from(b[n * g.b_stride_n + k * g.b_stride_k]))
            .sum();
        bias.map_or(0, |b| b[n]).wrapping_sub(zero.wrapping_mul(w))
    })
}

/// [`matmul_i8`](super::matmul_i8) with the weights packed by [`pack_fc_weights`], the
/// activations' zero point folded into the bias ([`fold_fc_zero_point`]) and the fast
/// kernels' scales ([`ChannelScale`]): four output columns at a time, the activations read as
/// they lie. On Cortex-M4/M7 (rows of `a` 4-byte aligned, `k` a multiple of 8): 43
/// instructions per 32 multiply-accumulates in the loop and, with the FPU's ABI and float or
/// one-rounding scales, about 60 per group of four outputs for the rest, all in assembly
/// (the MLPerf Tiny autoencoder: 1.47 instructions per MAC in all).
///
/// # Panics
/// If a slice is shorter than the geometry needs.
pub fn fully_connected_i8<S: ChannelScale>(
    p: &MatMulI8,
    a: &[i8],
    w: &[i8],
    bias: &[i32],
    scales: &[S],
    out: &mut [i8],
) {
    let g = &p.geom;
    if g.m == 0 || g.n == 0 {
        return;
    }
    let blocks = g.k.div_ceil(TAPS);
    assert!(w.len() >= packed_fc_len(g.k, g.n) && scales.len() >= g.n && bias.len() >= g.n);
    assert!(a.len() > (g.m - 1) * g.a_stride_m + g.k.saturating_sub(1) * g.a_stride_k);
    assert!(out.len() > (g.m - 1) * g.out_stride_m + (g.n - 1) * g.out_stride_n);
    for m in 0..g.m {
        let row = &a[m * g.a_stride_m..];
        #[cfg(microarena_dsp)]
        {
            // Whole blocks, contiguous and aligned as the assembly needs: one row without a
            // check per output (the outputs of a column group, its biases and scales zipped).
            if g.k.is_multiple_of(TAPS)
                && g.a_stride_k == 1
                && g.out_stride_n == 1
                && (w.as_ptr() as usize).is_multiple_of(4)
                && (row.as_ptr() as usize).is_multiple_of(4)
            {
                let (row, outs) = (&row[..g.k], &mut out[m * g.out_stride_m..][..g.n]);
                // Whole groups with their requantisation in the assembly too.
                #[cfg(target_abi = "eabihf")]
                let (outs, bias, scales, w) = {
                    use crate::scale::ScaleKind;
                    let full = g.n / ROWS;
                    if full > 0 && matches!(S::KIND, ScaleKind::Float | ScaleKind::Q31Once) {
                        let byte = |v: i8| u32::from(v as u8) * 0x0101_0101;
                        let mut params = super::cortex_m::FcParams {
                            x: row.as_ptr(),
                            x_end: row.as_ptr_range().end,
                            bias: bias.as_ptr(),
                            scales: scales.as_ptr().cast(),
                            out: outs.as_mut_ptr(),
                            groups: full as u32,
                            zero: p.out_zero,
                            lo4: byte(p.lo),
                            hi4: byte(p.hi),
                        };
                        // SAFETY: `w` holds at least `full` groups of `blocks · 32` bytes
                        // (`packed_fc_len`, checked above), 4-byte aligned (checked); `row`
                        // `k` bytes, a non-zero multiple of 8, 4-byte aligned (checked);
                        // `bias`, `scales` and `outs` at least `n` ≥ `4 · full` elements
                        // (checked above); `S` is `f32` or `Q31Once` (`KIND`), whose layouts
                        // are one word and two words (`Q31`, `repr(C)`) a column.
                        unsafe { super::cortex_m::fc_groups_dsp(w.as_ptr(), &mut params, S::KIND) };
                        let done = full * ROWS;
                        (
                            &mut outs[done..],
                            &bias[done..],
                            &scales[done..],
                            &w[full * blocks * ROWS * TAPS..],
                        )
                    } else {
                        (outs, bias, scales, w)
                    }
                };
                let groups = outs
                    .chunks_mut(ROWS)
                    .zip(bias.chunks(ROWS).zip(scales.chunks(ROWS)))
                    .zip(w.chunks_exact(blocks * ROWS * TAPS));
                for ((o, (b, sc)), wg) in groups {
                    let sums = super::cortex_m::dot_rows_dsp(wg, row);
                    for (((y, &s), &b), sc) in o.iter_mut().zip(&sums).zip(b).zip(sc) {
                        *y = sc.requantize(s.wrapping_add(b), p.out_zero, p.lo, p.hi);
                    }
                }
                continue;
            }
        }
        for (gr, wg) in w
            .chunks_exact(blocks * ROWS * TAPS)
            .take(g.n.div_ceil(ROWS))
            .enumerate()
        {
            let sums = dot_rows(p, wg, row);
            for (r, &s) in sums.iter().enumerate() {
                let n = gr * ROWS + r;
                if n < g.n {
                    out[m * g.out_stride_m + n * g.out_stride_n] =
                        scales[n].requantize(s.wrapping_add(bias[n]), p.out_zero, p.lo, p.hi);
                }
            }
        }
    }
}

/// The four columns' sums of one group of packed weights `wg` (whole blocks, as
/// [`pack_fc_weights`] lays them out) against the contiguous taps `xs` (`wg.len() / 4` of
/// them): the block product alone, for kernels that scale the sums themselves (the hybrid
/// convolution's quantized patches). On Cortex-M4/M7 the assembly block where both are
/// 4-byte aligned.
pub(crate) fn block_sums(wg: &[i8], xs: &[i8]) -> [i32; ROWS] {
    #[cfg(microarena_dsp)]
    if !wg.is_empty()
        && (wg.as_ptr() as usize).is_multiple_of(4)
        && (xs.as_ptr() as usize).is_multiple_of(4)
    {
        return super::cortex_m::dot_rows_dsp(wg, xs);
    }
    let mut sums = [0i32; ROWS];
    for (bl, wb) in wg.chunks_exact(ROWS * TAPS).enumerate() {
        let x = &xs[bl * TAPS..][..TAPS];
        for (s, wr) in sums.iter_mut().zip(wb.chunks_exact(TAPS)) {
            let dot: i32 = wr
                .iter()
                .zip(x)
                .map(|(&w, &v)| i32::from(w) * i32::from(v))
                .sum();
            *s = s.wrapping_add(dot);
        }
    }
    sums
}

/// The four columns' sums of one group of packed weights `wg` against one row of `a`.
#[inline]
fn dot_rows(p: &MatMulI8, wg: &[i8], row: &[i8]) -> [i32; ROWS] {
    let g = &p.geom;
    // The whole blocks of a contiguous row by the block product (in assembly where it runs
    // and the row is aligned for it), the rest tap by tap.
    let (mut sums, done) = match g.k / TAPS {
        full if full > 0 && g.a_stride_k == 1 => (
            block_sums(&wg[..full * ROWS * TAPS], &row[..full * TAPS]),
            full,
        ),
        _ => ([0i32; ROWS], 0),
    };
    for (bl, wb) in wg.chunks_exact(ROWS * TAPS).enumerate().skip(done) {
        let taps = TAPS.min(g.k - bl * TAPS);
        for (s, wr) in sums.iter_mut().zip(wb.chunks_exact(TAPS)) {
            let mut acc = 0i32;
            for (j, &wv) in wr[..taps].iter().enumerate() {
                acc += i32::from(wv) * i32::from(row[(bl * TAPS + j) * g.a_stride_k]);
            }
            *s = s.wrapping_add(acc);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::super::{matmul_i8, MatMul};
    use super::*;
    use crate::quant::{FixedPoint, Requant};
    use crate::scale::{Q31Once, Q31};
    use crate::Activation;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn geometry(m: usize, n: usize, k: usize, transposed: bool) -> MatMul {
        let (b_stride_n, b_stride_k) = if transposed { (1, n) } else { (k, 1) };
        MatMul {
            m,
            n,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n,
            b_stride_k,
            out_stride_m: n,
            out_stride_n: 1,
            act: Activation::Identity,
        }
    }

    /// Every shape around the block sizes, both weight layouts, float and fixed-point scales:
    /// the packed kernel gives the reference's bytes (including saturated and clamped ones).
    #[test]
    fn matches_the_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let shapes = [
            (1, 1, 1),
            (1, 4, 8),
            (2, 5, 9),
            (1, 7, 15),
            (3, 12, 33),
            (1, 8, 640),
        ];
        // Under Miri the small shapes only (the interpreter is slow).
        let shapes = if cfg!(miri) {
            &shapes[..4]
        } else {
            &shapes[..]
        };
        for &(m, n, k) in shapes {
            for transposed in [false, true] {
                let geom = geometry(m, n, k, transposed);
                let p = MatMulI8 {
                    geom,
                    a_zero: (next() % 256) as i32 - 128,
                    out_zero: (next() % 256) as i32 - 128,
                    lo: -100,
                    hi: 120,
                };
                let a: Vec<i8> = (0..m * k).map(|_| next() as i8).collect();
                let b: Vec<i8> = (0..n * k).map(|_| next() as i8).collect();
                let bias: Vec<i32> = (0..n).map(|_| (next() % 40_001) as i32 - 20_000).collect();
                // Factors that put the outputs across the whole int8 range.
                let reals: Vec<f64> = (0..n)
                    .map(|_| (1 + next() % 1000) as f64 * 1e-6 * 64.0 / (k as f64).sqrt())
                    .collect();
                let packed: Vec<i8> = pack_fc_weights(&p, &b).collect();
                assert_eq!(packed.len(), packed_fc_len(k, n));
                let folded: Vec<i32> = fold_fc_zero_point(&p, &b, Some(&bias)).collect();

                let rq: Vec<Requant> = reals.iter().map(|&r| Requant::from_real(r)).collect();
                let mut want = vec![0i8; m * n];
                matmul_i8(&p, &a, &b, Some(&bias), &rq, &mut want);
                let floats: Vec<f32> = rq.iter().map(|r| r.scale()).collect();
                let mut got = vec![0i8; m * n];
                fully_connected_i8(&p, &a, &packed, &folded, &floats, &mut got);
                assert_eq!(got, want, "float scales, m {m} n {n} k {k}");

                let fp: Vec<FixedPoint> = reals.iter().map(|&r| FixedPoint::from_real(r)).collect();
                matmul_i8(&p, &a, &b, Some(&bias), &fp, &mut want);
                let q: Vec<Q31Once> = fp.iter().map(|&f| Q31Once(Q31::new(f).unwrap())).collect();
                fully_connected_i8(&p, &a, &packed, &folded, &q, &mut got);
                assert_eq!(got, want, "fixed point, m {m} n {n} k {k}");
                assert!(want.iter().any(|&v| v != want[0]) || n * m == 1);
            }
        }
    }
}
