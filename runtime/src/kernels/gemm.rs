//! Matrix products: Gemm, MatMul, fully connected layers and 1×1 convolutions.

use super::Activation;

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

/// Reference matrix product (see [`MatMul`]).
pub fn matmul(p: &MatMul, a: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    assert!(a.len() > (p.m - 1) * p.a_stride_m + p.k.saturating_sub(1) * p.a_stride_k || p.k == 0);
    assert!(b.len() > (p.n - 1) * p.b_stride_n + p.k.saturating_sub(1) * p.b_stride_k || p.k == 0);
    assert!(out.len() > (p.m - 1) * p.out_stride_m + (p.n - 1) * p.out_stride_n);
    if p.a_stride_m == 1 && p.out_stride_m == 1 {
        // Column-major A and output (1×1 conv on NCHW): accumulate whole output rows, which
        // keeps the inner loop contiguous.
        for n in 0..p.n {
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
        return;
    }
    if p.a_stride_k == 1 && p.b_stride_k == 1 {
        // Rows of `a` against rows of `b` (fully connected layers): four outputs at a time,
        // so that four independent sums hide the latency of float addition and each input
        // is loaded once for four weights. Each output still sums in order of `k`: the
        // result is bit for bit the one-at-a-time dot product's.
        for m in 0..p.m {
            let ra = &a[m * p.a_stride_m..m * p.a_stride_m + p.k];
            let row = |n: usize| &b[n * p.b_stride_n..n * p.b_stride_n + p.k];
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

#[cfg(test)]
mod tests {
    use super::*;

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
pub fn matmul_i8(
    p: &MatMulI8,
    a: &[i8],
    b: &[i8],
    bias: Option<&[i32]>,
    requant: &[super::quant::Requant],
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
                super::quant::requantize(acc, requant[n], p.out_zero, p.lo, p.hi);
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
