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
