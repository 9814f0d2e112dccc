//! Recurrent cells: the step of an LSTM or a GRU after its matrix products.
//!
//! An ONNX `LSTM` step is `preact = Xt·Wᵀ + Ht-1·Rᵀ + bias` (matrix products and an add, the
//! `gemm` and `elementwise` kernels) followed by the gates. `preact` is `[rows, 4·hidden]` in
//! ONNX's gate order i, o, f, c; the cell state and the hidden state are `[rows, hidden]`.
//! The cell is two kernels, each with one output (the compiler's graph has single-output
//! nodes): [`lstm_cell_state`] then [`lstm_hidden`]. Standard activations only (sigmoid for
//! the gates, tanh for the candidate and the output), no peepholes, no clip.

/// A recurrent step's sizes (LSTM or GRU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Rows (batch entries) of the step.
    pub rows: usize,
    /// Hidden size.
    pub hidden: usize,
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// The new cell state: `c = σ(f) · c_prev + σ(i) · tanh(g)`, per row.
pub fn lstm_cell_state(p: &Cell, preact: &[f32], c_prev: &[f32], c: &mut [f32]) {
    let h = p.hidden;
    assert!(preact.len() >= p.rows * 4 * h && c_prev.len() >= p.rows * h);
    assert!(c.len() >= p.rows * h);
    for r in 0..p.rows {
        let gates = &preact[r * 4 * h..][..4 * h];
        let (i, rest) = gates.split_at(h);
        let (f, g) = (&rest[h..2 * h], &rest[2 * h..3 * h]);
        let prev = &c_prev[r * h..][..h];
        let out = &mut c[r * h..][..h];
        for j in 0..h {
            out[j] = sigmoid(f[j]) * prev[j] + sigmoid(i[j]) * libm::tanhf(g[j]);
        }
    }
}

/// The new hidden state: `h = σ(o) · tanh(c)`, per row (`c` from [`lstm_cell_state`]).
pub fn lstm_hidden(p: &Cell, preact: &[f32], c: &[f32], hidden: &mut [f32]) {
    let h = p.hidden;
    assert!(preact.len() >= p.rows * 4 * h && c.len() >= p.rows * h);
    assert!(hidden.len() >= p.rows * h);
    for r in 0..p.rows {
        let o = &preact[r * 4 * h + h..][..h];
        let c = &c[r * h..][..h];
        let out = &mut hidden[r * h..][..h];
        for j in 0..h {
            out[j] = sigmoid(o[j]) * libm::tanhf(c[j]);
        }
    }
}

/// A GRU step with `linear_before_reset`: from `xh = Xt·Wᵀ + Wb` and `rh = Ht-1·Rᵀ + Rb`,
/// both `[rows, 3·hidden]` in ONNX's gate order z, r, h, and the previous hidden state,
/// `z = σ(xh_z + rh_z)`, `r = σ(xh_r + rh_r)`, `n = tanh(xh_h + r · rh_h)`, and the new
/// hidden state `n + z · (h_prev − n)` (ONNX's `(1 − z) · n + z · h_prev`). (Without
/// `linear_before_reset` the reset gate applies before the recurrent product: ordinary ops.)
pub fn gru_hidden(p: &Cell, xh: &[f32], rh: &[f32], h_prev: &[f32], hidden: &mut [f32]) {
    let h = p.hidden;
    assert!(xh.len() >= p.rows * 3 * h && rh.len() >= p.rows * 3 * h);
    assert!(h_prev.len() >= p.rows * h && hidden.len() >= p.rows * h);
    for r in 0..p.rows {
        let (x, g) = (&xh[r * 3 * h..][..3 * h], &rh[r * 3 * h..][..3 * h]);
        let prev = &h_prev[r * h..][..h];
        let out = &mut hidden[r * h..][..h];
        for j in 0..h {
            let z = sigmoid(x[j] + g[j]);
            let reset = sigmoid(x[h + j] + g[h + j]);
            let n = libm::tanhf(x[2 * h + j] + reset * g[2 * h + j]);
            out[j] = n + z * (prev[j] - n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the gate equations written out, on one step of two rows.
    #[test]
    fn one_step_matches_the_equations() {
        let p = Cell { rows: 2, hidden: 3 };
        let preact: [f32; 24] = core::array::from_fn(|k| (k as f32 * 0.37).sin() * 2.0);
        let c_prev: [f32; 6] = core::array::from_fn(|k| k as f32 * 0.3 - 0.8);
        let (mut c, mut h) = ([0f32; 6], [0f32; 6]);
        lstm_cell_state(&p, &preact, &c_prev, &mut c);
        lstm_hidden(&p, &preact, &c, &mut h);
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        for r in 0..2 {
            for j in 0..3 {
                let g = |k: usize| preact[r * 12 + k * 3 + j];
                let want_c = s(g(2)) * c_prev[r * 3 + j] + s(g(0)) * g(3).tanh();
                let want_h = s(g(1)) * want_c.tanh();
                assert!((c[r * 3 + j] - want_c).abs() < 1e-6);
                assert!((h[r * 3 + j] - want_h).abs() < 1e-6);
            }
        }
    }

    /// The GRU step against ONNX's form of the update, `(1 − z) · n + z · h_prev`.
    #[test]
    fn gru_step_matches_the_equations() {
        let p = Cell { rows: 2, hidden: 3 };
        let xh: [f32; 18] = core::array::from_fn(|k| (k as f32 * 0.41).cos() * 1.5);
        let rh: [f32; 18] = core::array::from_fn(|k| (k as f32 * 0.23).sin());
        let prev: [f32; 6] = core::array::from_fn(|k| 0.7 - k as f32 * 0.25);
        let mut h = [0f32; 6];
        gru_hidden(&p, &xh, &rh, &prev, &mut h);
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        for r in 0..2 {
            for j in 0..3 {
                let (x, g) = (
                    |k: usize| xh[r * 9 + k * 3 + j],
                    |k: usize| rh[r * 9 + k * 3 + j],
                );
                let z = s(x(0) + g(0));
                let n = (x(2) + s(x(1) + g(1)) * g(2)).tanh();
                let want = (1.0 - z) * n + z * prev[r * 3 + j];
                assert!((h[r * 3 + j] - want).abs() < 1e-6);
            }
        }
    }
}
