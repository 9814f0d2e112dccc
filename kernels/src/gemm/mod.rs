//! Matrix products: Gemm, MatMul, fully connected layers and 1×1 convolutions.

use super::Activation;

#[cfg(microarena_dsp)]
mod cortex_m;
mod packed_i8;

pub(crate) use packed_i8::{block_sums, ROWS as FC_ROWS, TAPS as FC_TAPS};
pub use packed_i8::{fold_fc_zero_point, fully_connected_i8, pack_fc_weights, packed_fc_len};

/// `out[m, n] = act(sum_k a[m, k] * b[n, k] + bias[n])` over arbitrary element strides, so
/// that row-major, transposed and NCHW (1×1 conv: `m` = pixels, `k` = input channels)
/// operands need no copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatMul {
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Stride of `a` along `m`.
    pub a_stride_m: usize,
    /// Stride of `a` along `k`.
    pub a_stride_k: usize,
    /// Stride of `b` along `n`.
    pub b_stride_n: usize,
    /// Stride of `b` along `k`.
    pub b_stride_k: usize,
    /// Stride of `out` along `m`.
    pub out_stride_m: usize,
    /// Stride of `out` along `n`.
    pub out_stride_n: usize,
    /// Fused activation.
    pub act: Activation,
}

/// The portable column-major product (`a_stride_m == out_stride_m == 1`: a 1×1 convolution
/// on NCHW, `m` pixels, `k` input channels): tiles of four output channels by four pixels in
/// registers ([`tile`]: each input loaded once for four weights, each weight once for four
/// pixels), the one to three pixels left in tiles of four channels by two and one (a
/// streamed band of 5 or 10 pixels leaves one or two), then whole output rows for the
/// channels left. Every output sums in order of `k` from its bias either way, so a band of
/// pixels gives the whole product's bits.
// Not inlined: the product's other paths keep their own code (and registers).
#[inline(never)]
fn columns(p: &MatMul, a: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    // Weights laid out by step of `k` (the compiler's `weights_by_step`): a tile's four are
    // adjacent, read through one pointer.
    if p.b_stride_n == 1 {
        columns_with::<true>(p, a, b, bias, out)
    } else {
        columns_with::<false>(p, a, b, bias, out)
    }
}

/// [`columns`], `ADJACENT` when `b_stride_n == 1`.
#[inline(always)]
fn columns_with<const ADJACENT: bool>(
    p: &MatMul,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    // Whole tiles of four columns by four rows, then the one to three rows past them.
    let (n_tiled, m_tiled) = if p.k == 0 {
        (0, 0)
    } else {
        (p.n / 4 * 4, p.m / 4 * 4)
    };
    for n0 in (0..n_tiled).step_by(4) {
        #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
        if ADJACENT && m_tiled > 0 {
            tiles_asm(p, a, b, bias, out, n0, m_tiled / 4);
        } else {
            for m0 in (0..m_tiled).step_by(4) {
                tile::<4, ADJACENT>(p, a, b, bias, out, n0, m0);
            }
        }
        #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
        for m0 in (0..m_tiled).step_by(4) {
            tile::<4, ADJACENT>(p, a, b, bias, out, n0, m0);
        }
        let mut m = m_tiled;
        if m + 2 <= p.m {
            tile::<2, ADJACENT>(p, a, b, bias, out, n0, m);
            m += 2;
        }
        if m < p.m {
            tile::<1, ADJACENT>(p, a, b, bias, out, n0, m);
        }
    }
    for n in n_tiled..p.n {
        let row = &mut out[n * p.out_stride_n..n * p.out_stride_n + p.m];
        row.fill(bias.map_or(0.0, |b| b[n]));
        for k in 0..p.k {
            let w = b[n * p.b_stride_n + k * p.b_stride_k];
            let src = &a[k * p.a_stride_k..k * p.a_stride_k + p.m];
            for (o, &x) in row.iter_mut().zip(src) {
                *o += w * x;
            }
        }
        p.act.apply_slice(row);
    }
}

/// Rows `m..m + R` (`R` 1, 2 or 4) of the column-major product's columns `n0..n0 + 4`, in
/// registers: `R` inputs and four weights loaded per step of `k` for `4 · R` multiply-adds
/// (`ADJACENT`: `b_stride_n == 1`, the four weights read through one pointer). Each output
/// is its bias plus the products in order of `k`, as [`matmul`]'s row loop sums. The sums
/// are named, not an array: what stays in registers at every opt-level (an array of them is
/// kept in memory at `opt-level = "s"`); the rows past `R` are dead code. `cij`: row
/// `m + i`, column `n0 + j`.
#[inline(always)]
fn tile<const R: usize, const ADJACENT: bool>(
    p: &MatMul,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    n0: usize,
    m: usize,
) {
    let [mut p0, mut p1, mut p2, mut p3] = column_starts(p, four_columns(p, b, n0));
    let [b0, b1, b2, b3] = four_biases(bias, n0);
    let (mut c00, mut c01, mut c02, mut c03) = (b0, b1, b2, b3);
    let (mut c10, mut c11, mut c12, mut c13) = (c00, c01, c02, c03);
    let (mut c20, mut c21, mut c22, mut c23) = (c00, c01, c02, c03);
    let (mut c30, mut c31, mut c32, mut c33) = (c00, c01, c02, c03);
    let column = &a[m..m + (p.k - 1) * p.a_stride_k + R];
    let mut x = column.as_ptr();
    for _ in 0..p.k {
        // SAFETY: step `t` (0 ≤ t < k) reads `column[t · a_stride_k ..][..R]` and the
        // weights `t · b_stride_k` past each column's start, within the slices taken above
        // (`column` ends `R` past the last step's start, the weights at the fourth column's
        // last step). Pointers only advance by `wrapping_add`, so the one past the last step
        // is never used.
        let x0 = unsafe { *x };
        // SAFETY: as above; `ADJACENT`: column `j` is `p0 + j`.
        let [v0, v1, v2, v3] = unsafe { step_weights::<ADJACENT>([p0, p1, p2, p3]) };
        c00 += v0 * x0;
        c01 += v1 * x0;
        c02 += v2 * x0;
        c03 += v3 * x0;
        if R >= 2 {
            // SAFETY: as above, `R ≥ 2`.
            let x1 = unsafe { *x.add(1) };
            c10 += v0 * x1;
            c11 += v1 * x1;
            c12 += v2 * x1;
            c13 += v3 * x1;
        }
        if R == 4 {
            // SAFETY: as above, `R = 4`.
            let (x2, x3) = unsafe { (*x.add(2), *x.add(3)) };
            c20 += v0 * x2;
            c21 += v1 * x2;
            c22 += v2 * x2;
            c23 += v3 * x2;
            c30 += v0 * x3;
            c31 += v1 * x3;
            c32 += v2 * x3;
            c33 += v3 * x3;
        }
        x = x.wrapping_add(p.a_stride_k);
        p0 = p0.wrapping_add(p.b_stride_k);
        if !ADJACENT {
            p1 = p1.wrapping_add(p.b_stride_k);
            p2 = p2.wrapping_add(p.b_stride_k);
            p3 = p3.wrapping_add(p.b_stride_k);
        }
    }
    // Written raw, then activated a column's `R` outputs at a time: one dispatch on the
    // activation per column, not per output.
    let sums = [
        [c00, c10, c20, c30],
        [c01, c11, c21, c31],
        [c02, c12, c22, c32],
        [c03, c13, c23, c33],
    ];
    for (j, column) in sums.iter().enumerate() {
        let o = &mut out[(n0 + j) * p.out_stride_n + m..][..R];
        // Spelt out: `copy_from_slice` of one to four floats is a call to `memcpy` at
        // `opt-level = "z"`.
        o[0] = column[0];
        if R >= 2 {
            o[1] = column[1];
        }
        if R == 4 {
            o[2] = column[2];
            o[3] = column[3];
        }
        p.act.apply_slice(o);
    }
}

/// The weights of columns `n0..n0 + 4`: from the first one's first step to the fourth one's
/// last (one slice, so that every pointer into it may read any of the four).
#[inline(always)]
fn four_columns<'a>(p: &MatMul, b: &'a [f32], n0: usize) -> &'a [f32] {
    &b[n0 * p.b_stride_n..][..=3 * p.b_stride_n + (p.k - 1) * p.b_stride_k]
}

/// The biases of columns `n0 .. n0 + 4` (zeros without a bias), read once (a closure called
/// four times is a call at opt-level "z").
#[inline(always)]
fn four_biases(bias: Option<&[f32]>, n0: usize) -> [f32; 4] {
    match bias {
        Some(b) => {
            let b = &b[n0..n0 + 4];
            [b[0], b[1], b[2], b[3]]
        }
        None => [0.0; 4],
    }
}

/// Pointers to the first step of each of the four columns of [`four_columns`].
#[inline(always)]
fn column_starts(p: &MatMul, weights: &[f32]) -> [*const f32; 4] {
    // Column `j` starts `j · b_stride_n` in, inside `weights` ([`four_columns`] ends at the
    // fourth column's last step): checked once, not per column (a closure called four times
    // is a call at `opt-level = "z"`).
    assert!(3 * p.b_stride_n < weights.len());
    let first = weights.as_ptr();
    [
        first,
        first.wrapping_add(p.b_stride_n),
        first.wrapping_add(2 * p.b_stride_n),
        first.wrapping_add(3 * p.b_stride_n),
    ]
}

/// One step's four weights: through `p[0]` alone when `ADJACENT` (`b_stride_n == 1`).
///
/// # Safety
/// Each `p[j]` points at column `j`'s weight of the step, within one live slice; when
/// `ADJACENT`, `p[0] + j` is that weight.
#[inline(always)]
unsafe fn step_weights<const ADJACENT: bool>(p: [*const f32; 4]) -> [f32; 4] {
    // SAFETY: the caller's contract.
    unsafe {
        if ADJACENT {
            [*p[0], *p[0].add(1), *p[0].add(2), *p[0].add(3)]
        } else {
            [*p[0], *p[1], *p[2], *p[3]]
        }
    }
}

/// Reference matrix product (see [`MatMul`]).
pub fn matmul(p: &MatMul, a: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    assert!(a.len() > (p.m - 1) * p.a_stride_m + p.k.saturating_sub(1) * p.a_stride_k || p.k == 0);
    assert!(b.len() > (p.n - 1) * p.b_stride_n + p.k.saturating_sub(1) * p.b_stride_k || p.k == 0);
    assert!(out.len() > (p.m - 1) * p.out_stride_m + (p.n - 1) * p.out_stride_n);
    if p.a_stride_m == 1 && p.out_stride_m == 1 {
        #[cfg(target_arch = "x86_64")]
        if super::cpu::avx512f() {
            // SAFETY: the CPU has AVX-512F; the operands' extents were asserted.
            unsafe { x86::columns_avx512(p, a, b, bias, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the operands' extents were asserted.
            unsafe { x86::columns_checked(p, a, b, bias, out) };
            return;
        }
        #[allow(unreachable_code)]
        {
            columns(p, a, b, bias, out);
            return;
        }
    }
    if p.a_stride_k == 1 && p.b_stride_k == 1 {
        #[cfg(target_arch = "x86_64")]
        if super::cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the operands' extents were asserted.
            unsafe { x86::rows_checked(p, a, b, bias, out) };
            return;
        }
        // Rows of `a` against rows of `b` (fully connected layers): four outputs at a time,
        // so that four independent sums hide the latency of float addition and each input
        // is loaded once for four weights. Each output still sums in order of `k`: the
        // result is bit for bit the one-at-a-time dot product's.
        for m in 0..p.m {
            let ra = &a[m * p.a_stride_m..m * p.a_stride_m + p.k];
            let row = |n: usize| &b[n * p.b_stride_n..n * p.b_stride_n + p.k];
            // On the Cortex-M4F the groups of four in assembly (the loop below then has
            // none left).
            #[cfg(all(microarena_dsp, target_abi = "eabihf"))]
            let mut n0 = fc_rows_asm(p, ra, b, bias, &mut out[m * p.out_stride_m..]);
            #[cfg(not(all(microarena_dsp, target_abi = "eabihf")))]
            let mut n0 = 0;
            while n0 + 4 <= p.n {
                let bias_of = |j: usize| bias.map_or(0.0, |b| b[n0 + j]);
                let (mut s0, mut s1, mut s2, mut s3) =
                    (bias_of(0), bias_of(1), bias_of(2), bias_of(3));
                let rows = ra
                    .iter()
                    .zip(row(n0))
                    .zip(row(n0 + 1))
                    .zip(row(n0 + 2))
                    .zip(row(n0 + 3));
                for ((((&x, &w0), &w1), &w2), &w3) in rows {
                    s0 += x * w0;
                    s1 += x * w1;
                    s2 += x * w2;
                    s3 += x * w3;
                }
                for (j, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    out[m * p.out_stride_m + (n0 + j) * p.out_stride_n] = p.act.apply(s);
                }
                n0 += 4;
            }
            for n in n0..p.n {
                let rb = &b[n * p.b_stride_n..n * p.b_stride_n + p.k];
                let mut acc = bias.map_or(0.0, |b| b[n]);
                for (&x, &w) in ra.iter().zip(rb) {
                    acc += x * w;
                }
                out[m * p.out_stride_m + n * p.out_stride_n] = p.act.apply(acc);
            }
        }
        return;
    }
    for m in 0..p.m {
        for n in 0..p.n {
            let mut acc = bias.map_or(0.0, |b| b[n]);
            if p.a_stride_k == 1 && p.b_stride_k == 1 {
                let ra = &a[m * p.a_stride_m..m * p.a_stride_m + p.k];
                let rb = &b[n * p.b_stride_n..n * p.b_stride_n + p.k];
                for (&x, &w) in ra.iter().zip(rb) {
                    acc += x * w;
                }
            } else {
                for k in 0..p.k {
                    acc += a[m * p.a_stride_m + k * p.a_stride_k]
                        * b[n * p.b_stride_n + k * p.b_stride_k];
                }
            }
            out[m * p.out_stride_m + n * p.out_stride_n] = p.act.apply(acc);
        }
    }
}

/// The x86-64 paths of [`matmul`] when the build enables AVX2 and FMA. Column-major `a` and
/// output (a 1×1 convolution on NCHW): tiles of 4 output rows `n` × 16 (or 8) columns `m`
/// held in 256-bit registers across the whole reduction, one fused multiply-add per `k` and
/// register (the portable loop adds each product into the output row in memory). Sums run
/// from the bias in order of `k`, as the portable loop's; each product is not rounded before
/// it is added (unit test: within 1e-6 of the sum of |a·b|).
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::MatMul;
    use core::arch::x86_64::*;

    /// [`super::matmul`]'s column-major case.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `p.a_stride_m == 1`, `p.out_stride_m == 1` and the
    /// operands hold every element `p` addresses (as [`super::matmul`] asserts).
    #[cfg_attr(
        not(all(target_feature = "avx2", target_feature = "fma")),
        allow(dead_code)
    )]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn columns_checked(
        p: &MatMul,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (m, n, k) = (p.m, p.n, p.k);
        let w = |nn: usize, kk: usize| b[nn * p.b_stride_n + kk * p.b_stride_k];
        let bias_of = |nn: usize| bias.map_or(0.0, |bs| bs[nn]);
        let mut n0 = 0;
        while n0 < n {
            let rows = (n - n0).min(4);
            let mut m0 = 0;
            while m0 + 8 <= m {
                let wide = m0 + 16 <= m;
                // SAFETY: columns m0 .. m0 + 8 (16 when `wide`) ≤ m of rows k < p.k of `a`
                // (`k · a_stride_k + m0 + 15 < a.len()`, asserted by the caller) and of
                // output rows n0 + j < n; weights by checked indexing. AVX2/FMA: the caller.
                unsafe {
                    let mut acc: [[__m256; 2]; 4] = core::array::from_fn(|j| {
                        let v = _mm256_set1_ps(if j < rows { bias_of(n0 + j) } else { 0.0 });
                        [v, v]
                    });
                    let ap = a.as_ptr();
                    for kk in 0..k {
                        let x = ap.add(kk * p.a_stride_k + m0);
                        let x0 = _mm256_loadu_ps(x);
                        let x1 = if wide { _mm256_loadu_ps(x.add(8)) } else { x0 };
                        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
                            let wj = _mm256_set1_ps(w(n0 + j, kk));
                            aj[0] = _mm256_fmadd_ps(wj, x0, aj[0]);
                            aj[1] = _mm256_fmadd_ps(wj, x1, aj[1]);
                        }
                    }
                    let lanes = if wide { 16 } else { 8 };
                    for (j, aj) in acc.iter().enumerate().take(rows) {
                        let mut v = [0f32; 16];
                        _mm256_storeu_ps(v.as_mut_ptr(), aj[0]);
                        _mm256_storeu_ps(v.as_mut_ptr().add(8), aj[1]);
                        let row = &mut out[(n0 + j) * p.out_stride_n + m0..][..lanes];
                        for (o, &s) in row.iter_mut().zip(&v) {
                            *o = p.act.apply(s);
                        }
                    }
                    m0 += lanes;
                }
            }
            // The last columns (fewer than 8): the same FMA chain in masked lanes, so that
            // every output is rounded alike wherever the columns split (a streamed stage's
            // bands end at other columns than the whole image).
            if m0 < m {
                let left = (m - m0) as i32;
                let mask = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(left),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                // SAFETY: the masked lanes are columns m0 .. m < m of rows k < p.k of `a`
                // (inside `a`, asserted by the caller); the others are not accessed.
                unsafe {
                    let mut acc: [__m256; 4] = core::array::from_fn(|j| {
                        _mm256_set1_ps(if j < rows { bias_of(n0 + j) } else { 0.0 })
                    });
                    let ap = a.as_ptr();
                    for kk in 0..k {
                        let x = _mm256_maskload_ps(ap.add(kk * p.a_stride_k + m0), mask);
                        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
                            *aj = _mm256_fmadd_ps(_mm256_set1_ps(w(n0 + j, kk)), x, *aj);
                        }
                    }
                    for (j, aj) in acc.iter().enumerate().take(rows) {
                        let mut v = [0f32; 8];
                        _mm256_storeu_ps(v.as_mut_ptr(), *aj);
                        let row = &mut out[(n0 + j) * p.out_stride_n + m0..][..m - m0];
                        row.copy_from_slice(&v[..m - m0]);
                        p.act.apply_slice(row);
                    }
                }
            }
            n0 += rows;
        }
    }

    /// [`columns_checked`] with AVX-512 (32 registers of 16 lanes): tiles of 8 output rows ×
    /// 32 columns, sixteen accumulators held across the whole reduction (per `k`: two loads
    /// of `a`, eight weight broadcasts, sixteen FMAs of 16 lanes, four times the work of an
    /// AVX2 step), fewer rows at the end (4, 2, 1) and the last columns in masked lanes, so
    /// every output is the same FMA chain from its bias in order of `k` wherever the tiles
    /// and the columns split.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; as [`columns_checked`] otherwise.
    #[cfg_attr(not(target_feature = "avx512f"), allow(dead_code))]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn columns_avx512(
        p: &MatMul,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let mut n0 = 0;
        while n0 < p.n {
            let rows = match p.n - n0 {
                r if r >= 8 => 8,
                r if r >= 4 => 4,
                r if r >= 2 => 2,
                _ => 1,
            };
            let mut m0 = 0;
            while m0 < p.m {
                let cols = (p.m - m0).min(32);
                // SAFETY: rows n0 .. n0 + rows ≤ n and columns m0 .. m0 + cols ≤ m: inside
                // the operands (asserted by the caller); AVX-512F: the caller.
                unsafe {
                    match (rows, cols > 16) {
                        (8, true) => tile::<8, true>(p, a, b, bias, out, n0, m0, cols),
                        (8, false) => tile::<8, false>(p, a, b, bias, out, n0, m0, cols),
                        (4, true) => tile::<4, true>(p, a, b, bias, out, n0, m0, cols),
                        (4, false) => tile::<4, false>(p, a, b, bias, out, n0, m0, cols),
                        (2, true) => tile::<2, true>(p, a, b, bias, out, n0, m0, cols),
                        (2, false) => tile::<2, false>(p, a, b, bias, out, n0, m0, cols),
                        (_, true) => tile::<1, true>(p, a, b, bias, out, n0, m0, cols),
                        (_, false) => tile::<1, false>(p, a, b, bias, out, n0, m0, cols),
                    }
                }
                m0 += cols;
            }
            n0 += rows;
        }
    }

    /// One tile of [`columns_avx512`]: output rows `n0 .. n0 + R`, columns `m0 .. m0 + cols`
    /// (`cols` ≤ 32, above 16 when `WIDE`, else at most 16).
    ///
    /// # Safety
    /// AVX-512F; the rows and columns are inside the operands.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const WIDE: bool>(
        p: &MatMul,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        n0: usize,
        m0: usize,
        cols: usize,
    ) {
        let mask = |c: usize| -> __mmask16 {
            if c >= 16 {
                0xffff
            } else {
                ((1u32 << c) - 1) as __mmask16
            }
        };
        let (m_lo, m_hi) = (mask(cols), mask(cols.saturating_sub(16)));
        let mut acc: [[__m512; 2]; R] = core::array::from_fn(|j| {
            let v = _mm512_set1_ps(bias.map_or(0.0, |bs| bs[n0 + j]));
            [v, v]
        });
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        // SAFETY: the loads read columns m0 .. m0 + cols of rows kk < k of `a` (masked lanes
        // beyond are not accessed) and weights (n0 + j, kk) of `b`, all inside the operands
        // (the caller); the stores write columns m0 .. m0 + cols of output rows n0 + j.
        unsafe {
            for kk in 0..p.k {
                let x = ap.add(kk * p.a_stride_k + m0);
                let x0 = _mm512_maskz_loadu_ps(m_lo, x);
                let x1 = if WIDE {
                    _mm512_maskz_loadu_ps(m_hi, x.add(16))
                } else {
                    x0
                };
                let wk = bp.add(n0 * p.b_stride_n + kk * p.b_stride_k);
                for (j, aj) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_ps(*wk.add(j * p.b_stride_n));
                    aj[0] = _mm512_fmadd_ps(wj, x0, aj[0]);
                    if WIDE {
                        aj[1] = _mm512_fmadd_ps(wj, x1, aj[1]);
                    }
                }
            }
            for (j, aj) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add((n0 + j) * p.out_stride_n + m0);
                _mm512_mask_storeu_ps(o, m_lo, aj[0]);
                if WIDE {
                    _mm512_mask_storeu_ps(o.add(16), m_hi, aj[1]);
                }
            }
        }
        for j in 0..R {
            p.act
                .apply_slice(&mut out[(n0 + j) * p.out_stride_n + m0..][..cols]);
        }
    }

    /// [`super::matmul`]'s row-major case (fully connected layers): per row of `a`, four
    /// outputs at a time, each a dot product over `k` in 16 lanes (two 256-bit registers per
    /// output, eight independent sums), summed across the lanes at the end, then the last
    /// `k % 16` products in order. The order of the sum differs from the portable loop's
    /// (unit test: within 1e-6 of the sum of |a·b|).
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `p.a_stride_k == 1`, `p.b_stride_k == 1` and the
    /// operands hold every element `p` addresses (as [`super::matmul`] asserts).
    #[cfg_attr(
        not(all(target_feature = "avx2", target_feature = "fma")),
        allow(dead_code)
    )]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows_checked(
        p: &MatMul,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let k = p.k;
        let body = k - k % 16;
        let hsum = |v: __m256| {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        };
        for m in 0..p.m {
            let ra = &a[m * p.a_stride_m..][..k];
            let mut n0 = 0;
            while n0 < p.n {
                let rows = (p.n - n0).min(4);
                let rb: [&[f32]; 4] =
                    core::array::from_fn(|j| &b[(n0 + j.min(rows - 1)) * p.b_stride_n..][..k]);
                let mut acc = [[_mm256_setzero_ps(); 2]; 4];
                let mut kk = 0;
                while kk < body {
                    // SAFETY: kk + 16 ≤ body ≤ k: inside `ra` and every `rb[j]` (k floats).
                    unsafe {
                        let x0 = _mm256_loadu_ps(ra.as_ptr().add(kk));
                        let x1 = _mm256_loadu_ps(ra.as_ptr().add(kk + 8));
                        for (j, aj) in acc.iter_mut().enumerate() {
                            let wp = rb[j].as_ptr().add(kk);
                            aj[0] = _mm256_fmadd_ps(_mm256_loadu_ps(wp), x0, aj[0]);
                            aj[1] = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(8)), x1, aj[1]);
                        }
                    }
                    kk += 16;
                }
                for (j, aj) in acc.iter().enumerate().take(rows) {
                    let mut s =
                        bias.map_or(0.0, |bs| bs[n0 + j]) + hsum(_mm256_add_ps(aj[0], aj[1]));
                    for (&x, &wv) in ra[body..].iter().zip(&rb[j][body..]) {
                        s += x * wv;
                    }
                    out[m * p.out_stride_m + (n0 + j) * p.out_stride_n] = p.act.apply(s);
                }
                n0 += rows;
            }
        }
    }
}

/// The groups of four outputs of one row of a fully connected f32 layer (`p`'s rows of `b`
/// against the input row `ra`, outputs from `out`'s start) in assembly on the Cortex-M4F,
/// the activation fused when a clamp: the number of outputs done (a multiple of four).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
fn fc_rows_asm(p: &MatMul, ra: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) -> usize {
    use cortex_m::{fc_rows_f32, fc_rows_f32_clip, fc_rows_f32_low, FcRows};
    static ZEROS: [f32; 4] = [0.0; 4];
    let groups = p.n / 4;
    if groups == 0 {
        return 0;
    }
    let (bs, os, n) = (p.b_stride_n, p.out_stride_n, 4 * groups);
    // Every slice checked once: the groups' weight rows, biases and outputs.
    let w = &b[..(n - 1) * bs + p.k];
    let out = &mut out[..=(n - 1) * os];
    let (bias, bias_step) = match bias {
        Some(b) => (b[..n].as_ptr(), 16),
        None => (ZEROS.as_ptr(), 0),
    };
    let (run, bounds): (unsafe fn(&mut FcRows, usize), _) = match p.act {
        Activation::Clip { min, max } if max == f32::INFINITY => (fc_rows_f32_low, [min, max]),
        Activation::Clip { min, max } => (fc_rows_f32_clip, [min, max]),
        _ => (fc_rows_f32, [0.0; 2]),
    };
    let mut rows = FcRows {
        x: ra.as_ptr(),
        w: w.as_ptr(),
        row: bs * 4,
        k: p.k,
        bias,
        bias_step,
        out: out.as_mut_ptr(),
        out_step: os * 4,
        bounds,
    };
    // SAFETY: `ra` holds `k` inputs (the caller's slice); group `g`'s rows `4g + j` start `(4g
    // + j) · b_stride_n` into `w`, which ends with the last row's `k` weights; its biases
    // are `bias[4g .. 4g + 4]` (or the four zeros, not advanced); its outputs `(4g + j) ·
    // out_stride_n` into `out`, which ends with the last one.
    unsafe { run(&mut rows, groups) };
    if !matches!(p.act, Activation::Identity | Activation::Clip { .. }) {
        for o in out.iter_mut().step_by(os.max(1)).take(n) {
            *o = p.act.apply(*o);
        }
    }
    n
}

/// The 4 × 4 tiles of rows `0 .. 4 · tiles` of the four columns from `n0` (adjacent weights)
/// of [`columns_with`] in assembly on the Cortex-M4F, the tile loop included, the activation
/// fused where it is a clamp (others applied after).
#[cfg(all(microarena_dsp, target_abi = "eabihf"))]
fn tiles_asm(
    p: &MatMul,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    n0: usize,
    tiles: usize,
) {
    use crate::activation::Activation;
    let weights = four_columns(p, b, n0);
    let biases = four_biases(bias, n0);
    let m = 4 * tiles;
    let column = &a[..(p.k - 1) * p.a_stride_k + m];
    // Column `j`'s `m` outputs at `j · out_stride_n` past the first.
    let o = &mut out[n0 * p.out_stride_n..][..3 * p.out_stride_n + m];
    // The activation in the tile where it is a clamp; others after it.
    let (run, bounds, after): (cortex_m::Tile4x4F32, _, _) = match p.act {
        Activation::Identity => (cortex_m::tile_4x4_f32, [0.0; 2], false),
        Activation::Clip { min, max } if max == f32::INFINITY => {
            (cortex_m::tile_4x4_f32_low, [min, max], false)
        }
        Activation::Clip { min, max } => (cortex_m::tile_4x4_f32_clip, [min, max], false),
        _ => (cortex_m::tile_4x4_f32, [0.0; 2], true),
    };
    let mut t = cortex_m::Tiles4x4 {
        c: crate::lanes4(biases),
        bounds,
        x: column.as_ptr(),
        w: weights.as_ptr(),
        k: p.k,
        x_step: 4 * p.a_stride_k,
        w_step: 4 * p.b_stride_k,
        out: o.as_mut_ptr(),
        out_step: 4 * p.out_stride_n,
    };
    // SAFETY: `k ≥ 1` (no whole tile when `k = 0`); tile `i`'s step `s` reads `column[4i + s
    // · a_stride_k ..][..4]` (inside `column`: it ends 4 · tiles past the last step's start)
    // and the four adjacent weights `s · b_stride_k` into `weights` (`four_columns`: its last
    // step's fourth weight ends it); its outputs `4i .. 4i + 4` of each column lie in `o`.
    unsafe { run(&mut t, tiles) };
    if after {
        for j in 0..4 {
            p.act.apply_slice(&mut o[j * p.out_stride_n..][..m]);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// The portable column-major product (1×1 convolutions on the Cortex-M): its 4×4 tiles
    /// and the rows and columns left give, bit for bit, each output's bias plus its products
    /// in order of `k` (what streamed bands rely on), both weight layouts, a clip fused.
    #[test]
    fn portable_columns_sum_in_order_of_k() {
        use std::vec;
        use std::vec::Vec;
        let mut next = super::super::xorshift(0x5eed_1234_u32);
        let cases = if cfg!(miri) { 6 } else { 300 };
        for case in 0..cases {
            let (m, n, k) = (1 + next(13), 1 + next(11), 1 + next(20));
            let (plane, plane_out) = (m + next(3), m + next(2));
            let (b_stride_n, b_stride_k) = if case % 2 == 1 { (1, n) } else { (k, 1) };
            let act = Activation::Clip {
                min: -1.5,
                max: 2.0,
            };
            let p = MatMul {
                m,
                n,
                k,
                a_stride_m: 1,
                a_stride_k: plane,
                b_stride_n,
                b_stride_k,
                out_stride_m: 1,
                out_stride_n: plane_out,
                act,
            };
            let mut value = || (next(2001) as f32 - 1000.0) * 1.37e-3;
            let a: Vec<f32> = (0..k * plane).map(|_| value()).collect();
            let b: Vec<f32> = (0..n * k).map(|_| value()).collect();
            let bias: Vec<f32> = (0..n).map(|_| value()).collect();
            let mut out = vec![f32::NAN; n * plane_out];
            columns(&p, &a, &b, Some(&bias), &mut out);
            for j in 0..n {
                for i in 0..m {
                    let mut want = bias[j];
                    for t in 0..k {
                        want += b[j * b_stride_n + t * b_stride_k] * a[t * plane + i];
                    }
                    let got = out[j * plane_out + i];
                    assert_eq!(
                        got.to_bits(),
                        act.apply(want).to_bits(),
                        "{m}×{n}×{k} ({i}, {j})"
                    );
                }
            }
        }
    }

    /// The x86 AVX2/FMA column tiles (run where the CPU has them) against sums in f64: random
    /// 1×1-convolution shapes (columns 1 to 70: 16- and 8-wide tiles and the tail; rows not a
    /// multiple of 4), within 1e-6 of each output's sum of |a·b|, a fused ReLU included.
    /// The x86 AVX2/FMA dot products of fully connected layers (run where the CPU has them)
    /// against sums in f64: reductions of 1 to 300 (the 16-lane body and the tail), 1 to 11
    /// outputs, 1 to 3 rows; within 1e-6 of each output's sum of |a·b|.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_rows_match_f64_sums() {
        extern crate std;
        use std::vec::Vec;
        if cfg!(miri)
            || !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let mut next = super::super::xorshift(0x0bad_5eed_u32);
        for case in 0..100 {
            let (m, n, k) = (1 + next(3), 1 + next(11), 1 + next(300));
            let p = MatMul {
                m,
                n,
                k,
                a_stride_m: k,
                a_stride_k: 1,
                b_stride_n: k,
                b_stride_k: 1,
                out_stride_m: n,
                out_stride_n: 1,
                act: Activation::Identity,
            };
            let mut value = |_| (next(2001) as f32 - 1000.0) * 1.1e-3;
            let a: Vec<f32> = (0..m * k).map(&mut value).collect();
            let b: Vec<f32> = (0..n * k).map(&mut value).collect();
            let bias: Vec<f32> = (0..n).map(&mut value).collect();
            let mut got = std::vec![f32::NAN; m * n];
            // SAFETY: the CPU has AVX2 and FMA (checked above); the shapes are `p`'s.
            unsafe { x86::rows_checked(&p, &a, &b, Some(&bias), &mut got) };
            for mm in 0..m {
                for nn in 0..n {
                    let (mut sum, mut abs) = (f64::from(bias[nn]), f64::from(bias[nn]).abs());
                    for kk in 0..k {
                        let t = f64::from(a[mm * k + kk]) * f64::from(b[nn * k + kk]);
                        sum += t;
                        abs += t.abs();
                    }
                    let g = got[mm * n + nn];
                    assert!(
                        (f64::from(g) - sum).abs() <= 1e-6 * abs.max(1e-3),
                        "case {case} m{m} n{n} k{k} at ({mm}, {nn}): {g} vs {sum}"
                    );
                }
            }
        }
    }

    /// A 1×1 convolution's product as the column tiles take it: `cols` columns of `a` and
    /// of the output (rows `stride` apart), `n` outputs, reduction `k`.
    #[cfg(target_arch = "x86_64")]
    fn column_major(cols: usize, stride: usize, n: usize, k: usize, act: Activation) -> MatMul {
        MatMul {
            m: cols,
            n,
            k,
            a_stride_m: 1,
            a_stride_k: stride,
            b_stride_n: k,
            b_stride_k: 1,
            out_stride_m: 1,
            out_stride_n: stride,
            act,
        }
    }

    /// A column-tile path: [`x86::columns_checked`] or [`x86::columns_avx512`].
    #[cfg(target_arch = "x86_64")]
    type ColumnsFn = unsafe fn(&MatMul, &[f32], &[f32], Option<&[f32]>, &mut [f32]);

    /// The column-tile paths this CPU runs (none under Miri): AVX2/FMA, and AVX-512F.
    #[cfg(target_arch = "x86_64")]
    fn column_paths() -> std::vec::Vec<(&'static str, ColumnsFn)> {
        let mut paths: std::vec::Vec<(&'static str, ColumnsFn)> = std::vec::Vec::new();
        if cfg!(miri) {
            return paths;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            paths.push(("avx2", x86::columns_checked));
        }
        if std::is_x86_feature_detected!("avx512f") {
            paths.push(("avx512", x86::columns_avx512));
        }
        paths
    }

    /// Every output of the AVX2/FMA and AVX-512 column tiles is the same bits wherever the
    /// columns are split (a streamed stage computes a 1×1 convolution band by band): the
    /// columns in one call and in two calls at every split point agree exactly.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_columns_round_alike_wherever_they_split() {
        for (name, columns) in column_paths() {
            columns_split_alike(name, columns);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn columns_split_alike(name: &str, columns: ColumnsFn) {
        extern crate std;
        use std::vec::Vec;
        let mut next = super::super::xorshift(0x3c6e_f372);
        let (m, n, k) = (37, 5, 29);
        let geom = |cols: usize| column_major(cols, m, n, k, Activation::Identity);
        let mut value = |_| (next(2001) as f32 - 1000.0) * 1.1e-3;
        let a: Vec<f32> = (0..m * k).map(&mut value).collect();
        let b: Vec<f32> = (0..n * k).map(&mut value).collect();
        let mut whole = std::vec![0f32; m * n];
        // SAFETY: the CPU runs `columns` (`column_paths`); the shapes are the geometry's.
        unsafe { columns(&geom(m), &a, &b, None, &mut whole) };
        for split in 1..m {
            let mut parts = std::vec![0f32; m * n];
            // SAFETY: as above; the second call's operands start at column `split`, with
            // `m − split` columns left in every row.
            unsafe {
                columns(&geom(split), &a, &b, None, &mut parts);
                columns(&geom(m - split), &a[split..], &b, None, &mut parts[split..]);
            }
            for (i, (x, y)) in whole.iter().zip(&parts).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "{name}: split {split} at {i}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_columns_match_f64_sums() {
        for (name, columns) in column_paths() {
            columns_match_f64(name, columns);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn columns_match_f64(name: &str, columns: ColumnsFn) {
        extern crate std;
        use std::vec::Vec;
        let mut next = super::super::xorshift(0x1234_5677_u32);
        for case in 0..120 {
            let (m, n, k) = (1 + next(70), 1 + next(11), 1 + next(40));
            let act = if case % 3 == 0 {
                Activation::RELU
            } else {
                Activation::Identity
            };
            let p = column_major(m, m, n, k, act);
            let mut value = |_| (next(2001) as f32 - 1000.0) * 1.1e-3;
            let a: Vec<f32> = (0..m * k).map(&mut value).collect();
            let b: Vec<f32> = (0..n * k).map(&mut value).collect();
            let bias: Vec<f32> = (0..n).map(&mut value).collect();
            let mut got = std::vec![f32::NAN; m * n];
            // SAFETY: the CPU runs `columns` (`column_paths`); the shapes are `p`'s.
            unsafe { columns(&p, &a, &b, Some(&bias), &mut got) };
            for nn in 0..n {
                for mm in 0..m {
                    let (mut sum, mut abs) = (f64::from(bias[nn]), f64::from(bias[nn]).abs());
                    for kk in 0..k {
                        let t = f64::from(a[kk * m + mm]) * f64::from(b[nn * k + kk]);
                        sum += t;
                        abs += t.abs();
                    }
                    let want = p.act.apply(sum as f32);
                    let g = got[nn * m + mm];
                    assert!(
                        f64::from((g - want).abs()) <= 1e-6 * abs.max(1e-3),
                        "{name}: case {case} m{m} n{n} k{k} at ({nn}, {mm}): {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn row_major_and_column_major_agree() {
        // a: 2x3, b: 4x3 (n x k)
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [
            1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let bias = [0.5f32, 0.0, 0.0, -1.0];
        let p = MatMul {
            m: 2,
            n: 4,
            k: 3,
            a_stride_m: 3,
            a_stride_k: 1,
            b_stride_n: 3,
            b_stride_k: 1,
            out_stride_m: 4,
            out_stride_n: 1,
            act: Activation::Identity,
        };
        let mut out = [0.0; 8];
        matmul(&p, &a, &b, Some(&bias), &mut out);
        assert_eq!(out, [1.5, 2.0, 3.0, 5.0, 4.5, 5.0, 6.0, 14.0]);
        // Same product with A stored transposed (k x m) and the output as n x m.
        let at = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
        let q = MatMul {
            a_stride_m: 1,
            a_stride_k: 2,
            out_stride_m: 1,
            out_stride_n: 2,
            ..p
        };
        let mut out_t = [0.0; 8];
        matmul(&q, &at, &b, Some(&bias), &mut out_t);
        for m in 0..2 {
            for n in 0..4 {
                assert_eq!(out_t[n * 2 + m], out[m * 4 + n]);
            }
        }
    }
}

/// Quantisation of an int8 matrix product (see [`matmul_i8`]); the geometry is [`MatMul`]'s
/// (its `act` is ignored: activations are `lo..=hi`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatMulI8 {
    /// Shapes and strides.
    pub geom: MatMul,
    /// Zero point of `a` (the activations); `b` (the weights) is symmetric per column.
    pub a_zero: i32,
    /// Output zero point.
    pub out_zero: i32,
    /// Smallest output (a fused ReLU raises it to the zero point).
    pub lo: i8,
    /// Largest output.
    pub hi: i8,
}

/// Reference int8 matrix product, int32 accumulation, no float:
/// `out[m, n] = requant[n](Σ_k (a[m, k] − a_zero) · b[n, k] + bias[n]) + out_zero`.
///
/// The requantisation is ONNX's ([`Requant`](super::quant::Requant)) or TFLite's
/// ([`FixedPoint`](super::quant::FixedPoint)), one per column.
pub fn matmul_i8<R: super::quant::Rescale>(
    p: &MatMulI8,
    a: &[i8],
    b: &[i8],
    bias: Option<&[i32]>,
    requant: &[R],
    out: &mut [i8],
) {
    let g = &p.geom;
    if g.m == 0 || g.n == 0 {
        return;
    }
    assert!(requant.len() >= g.n);
    assert!(out.len() > (g.m - 1) * g.out_stride_m + (g.n - 1) * g.out_stride_n);
    // Rows of `a` and of `b` contiguous along k (a fully connected layer): slices, no strides.
    let contiguous = g.a_stride_k == 1 && g.b_stride_k == 1;
    for m in 0..g.m {
        for n in 0..g.n {
            let mut acc: i32 = bias.map_or(0, |b| b[n]);
            if contiguous {
                let ra = &a[m * g.a_stride_m..][..g.k];
                let rb = &b[n * g.b_stride_n..][..g.k];
                for (&x, &w) in ra.iter().zip(rb) {
                    acc += (i32::from(x) - p.a_zero) * i32::from(w);
                }
            } else {
                for k in 0..g.k {
                    let x = i32::from(a[m * g.a_stride_m + k * g.a_stride_k]);
                    let w = i32::from(b[n * g.b_stride_n + k * g.b_stride_k]);
                    acc += (x - p.a_zero) * w;
                }
            }
            out[m * g.out_stride_m + n * g.out_stride_n] =
                requant[n].requantize(acc, p.out_zero, p.lo, p.hi);
        }
    }
}

#[cfg(test)]
mod i8_tests {
    extern crate std;
    use super::super::quant::Requant;
    use super::*;
    use std::vec::Vec;

    /// A fully connected layer against the same sums requantised in f64.
    #[test]
    fn fully_connected_matches_float_requantisation() {
        let (m, k, n) = (2, 37, 5);
        let geom = MatMul {
            m,
            n,
            k,
            a_stride_m: k,
            a_stride_k: 1,
            b_stride_n: k,
            b_stride_k: 1,
            out_stride_m: n,
            out_stride_n: 1,
            act: Activation::Identity,
        };
        let p = MatMulI8 {
            geom,
            a_zero: 12,
            out_zero: -3,
            lo: -128,
            hi: 127,
        };
        let a: Vec<i8> = (0..m * k)
            .map(|i| ((i * 37 + 11) % 256) as u8 as i8)
            .collect();
        let b: Vec<i8> = (0..n * k)
            .map(|i| ((i * 91 + 5) % 256) as u8 as i8)
            .collect();
        let bias = [100, -200, 0, 7_000, -7_000];
        let real = [0.0005, 0.0009, 0.0013, 0.0002, 0.0021];
        let rq: Vec<Requant> = real.iter().map(|&r| Requant::from_real(r)).collect();
        let mut out = [0i8; 10];
        matmul_i8(&p, &a, &b, Some(&bias), &rq, &mut out);
        for mi in 0..m {
            for ni in 0..n {
                let acc: i64 = bias[ni] as i64
                    + (0..k)
                        .map(|ki| (a[mi * k + ki] as i64 - 12) * b[ni * k + ki] as i64)
                        .sum::<i64>();
                let want = ((acc as f64 * real[ni]).round() as i64 - 3).clamp(-128, 127);
                let got = out[mi * n + ni] as i64;
                assert!((got - want).abs() <= 1, "({mi},{ni}): {got} vs {want}");
            }
        }
    }
}
