//! The scalar specification of the fused recurrent steps ([`Kernels::lstm`](super::Kernels::lstm),
//! `gru`, `elman`): the element-wise part of one time step of each recurrence, in PyTorch's
//! operation order (docs/numerics.md §4.3). Every float operation below is one PyTorch kernel,
//! rounded on its own (no fusion), and the sigmoids see the same contiguous rows as PyTorch's (one
//! gate of one batch element: `hidden` values). The SIMD paths ([`super::recurrent_step`]) must
//! equal these bit for bit.
//!
//! Inputs are row-major over the active batch rows: `hg` is the hidden projection `W_hh h + b_hh`
//! and `ig` the input projection `W_ih x + b_ih` of the step, `gates * hidden` values per row.

use std::cell::RefCell;

use super::projected::Projected;
use super::Nonlinearity;
use crate::activations::{relu, sigmoid_row, tanh, tanh_row};

thread_local! {
    /// Each thread's rows of `hg` and `ig` as floats for [`with_float_rows`], kept between steps so
    /// that the scalar step allocates nothing once they are large enough.
    static FLOAT_ROWS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f(r, hg_row, ig_row)` for each of the `rows` rows of `hg` and `ig` (`columns` values
/// each), read as floats into this thread's reused buffers.
fn with_float_rows(hg: &Projected<'_>, ig: &Projected<'_>, rows: usize, columns: usize, mut f: impl FnMut(usize, &mut [f32], &[f32])) {
    FLOAT_ROWS.with_borrow_mut(|(hg_row, ig_row)| {
        hg_row.resize(columns, 0.0);
        ig_row.resize(columns, 0.0);
        for r in 0..rows {
            hg.row_into(r, hg_row);
            ig.row_into(r, ig_row);
            f(r, hg_row, ig_row);
        }
    })
}

/// See [`Kernels::lstm`](super::Kernels::lstm): each row dequantized into floats, then [`lstm_floats`].
pub fn lstm(hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) {
    let rows = c.len() / hidden;
    with_float_rows(hg, ig, rows, 4 * hidden, |r, hg_row, ig_row| {
        let state = r * hidden..(r + 1) * hidden;
        lstm_floats(hg_row, ig_row, &mut c[state.clone()], &mut h_out[state], hidden);
    });
}

/// See [`Kernels::gru`](super::Kernels::gru): each row dequantized into floats, then [`gru_floats`].
pub fn gru(hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize) {
    let rows = h.len() / hidden;
    with_float_rows(hg, ig, rows, 3 * hidden, |r, hg_row, ig_row| gru_floats(hg_row, ig_row, &mut h[r * hidden..(r + 1) * hidden], hidden));
}

/// See [`Kernels::elman`](super::Kernels::elman): each row dequantized into floats, then [`elman_floats`].
pub fn elman(nonlinearity: Nonlinearity, hg: &Projected<'_>, ig: &Projected<'_>, h_out: &mut [f32], hidden: usize) {
    let rows = h_out.len() / hidden;
    with_float_rows(hg, ig, rows, hidden, |r, hg_row, ig_row| {
        elman_floats(nonlinearity, hg_row, ig_row, &mut h_out[r * hidden..(r + 1) * hidden])
    });
}

/// LSTM step: `gates = hg + ig`; `i, f, o = sigmoid(.)`, `g = tanh(.)`; `c' = f*c + i*g` (in
/// place in `c`); `h_out = o * tanh(c')`. `hg` is used as the gate buffer.
pub fn lstm_floats(hg: &mut [f32], ig: &[f32], c: &mut [f32], h_out: &mut [f32], hidden: usize) {
    let rows = hg.chunks_exact_mut(4 * hidden).zip(ig.chunks_exact(4 * hidden));
    for ((gates, ig), (c, h_out)) in rows.zip(c.chunks_exact_mut(hidden).zip(h_out.chunks_exact_mut(hidden))) {
        add_assign(gates, ig);
        let (i, rest) = gates.split_at_mut(hidden);
        let (f, rest) = rest.split_at_mut(hidden);
        let (g, o) = rest.split_at_mut(hidden);
        sigmoid_row(i);
        sigmoid_row(f);
        tanh_row(g);
        sigmoid_row(o);
        for j in 0..hidden {
            let c_new = f[j] * c[j] + i[j] * g[j];
            c[j] = canonical_nan(c_new);
            h_out[j] = canonical_nan(o[j] * tanh(c_new));
        }
    }
}

/// GRU step, updating `h` in place: `r = sigmoid(hg_r + ig_r)`, `z = sigmoid(hg_z + ig_z)`,
/// `n = tanh(ig_n + hg_n * r)` (so `b_hn` sits inside the reset product), `h' = (h - n) * z + n`.
pub fn gru_floats(hg: &mut [f32], ig: &[f32], h: &mut [f32], hidden: usize) {
    let rows = hg.chunks_exact_mut(3 * hidden).zip(ig.chunks_exact(3 * hidden));
    for ((hg, ig), h) in rows.zip(h.chunks_exact_mut(hidden)) {
        let (rz, hg_n) = hg.split_at_mut(2 * hidden);
        let (ig_rz, ig_n) = ig.split_at(2 * hidden);
        add_assign(rz, ig_rz);
        let (r, z) = rz.split_at_mut(hidden);
        sigmoid_row(r);
        sigmoid_row(z);
        for j in 0..hidden {
            let n = tanh(ig_n[j] + hg_n[j] * r[j]);
            h[j] = canonical_nan((h[j] - n) * z[j] + n);
        }
    }
}

/// Elman RNN step: `h_out = act(hg + ig)` with tanh or relu.
pub fn elman_floats(nonlinearity: Nonlinearity, hg: &[f32], ig: &[f32], h_out: &mut [f32]) {
    let act = match nonlinearity {
        Nonlinearity::Tanh => tanh,
        Nonlinearity::Relu => relu,
    };
    for ((h, &a), &b) in h_out.iter_mut().zip(hg).zip(ig) {
        *h = canonical_nan(act(a + b));
    }
}

/// `x`, or the quiet NaN `f32::NAN` when `x` is any NaN. The states a step writes go through it,
/// so that every path gives the same bits even where a NaN's sign and payload would depend on
/// operand order (float16 weights let NaN and infinity through).
#[inline]
pub fn canonical_nan(x: f32) -> f32 {
    if x.is_nan() {
        f32::NAN
    } else {
        x
    }
}

/// `acc[i] = acc[i] + x[i]`.
fn add_assign(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f32) -> f32 {
        let mut v = [x];
        sigmoid_row(&mut v);
        v[0]
    }

    #[test]
    fn lstm_gate_order_is_i_f_g_o() {
        // One unit, two batch rows. hg + ig per gate: i=0 (0.5), f=large (1), g=atanh(0.5), o=0.
        let g = 0.5f32.atanh();
        let mut hg = vec![0.0, 20.0, g, 0.0, /* row 2 */ -20.0, 0.0, 1.0, 20.0];
        let ig = vec![0.0, 0.0, 0.0, 0.0, /* row 2 */ 0.0, 0.0, 0.0, 0.0];
        let mut c = vec![2.0, 4.0];
        let mut h = vec![0.0; 2];
        lstm_floats(&mut hg, &ig, &mut c, &mut h, 1);
        // Row 1: c' = f*c + i*g = 1*2 + 0.5*tanh(atanh(0.5)) = 2.25; h' = 0.5 * tanh(2.25).
        assert_eq!(sig(20.0), 1.0);
        assert!((c[0] - 2.25).abs() < 1e-6);
        assert_eq!(c[0], sig(20.0) * 2.0 + sig(0.0) * tanh(g));
        assert_eq!(h[0], 0.5 * tanh(c[0]));
        // Row 2: i ~ 0, f = 0.5, o ~ 1: c' = 0.5*4 + sig(-20)*tanh(1).
        assert_eq!(c[1], 0.5 * 4.0 + sig(-20.0) * tanh(1.0));
        assert_eq!(h[1], sig(20.0) * tanh(c[1]));
    }

    #[test]
    fn lstm_adds_hg_and_ig_before_the_activations() {
        let mut hg = vec![0.3, -0.2, 0.1, 0.4];
        let ig = vec![0.1, 0.7, -0.5, 0.2];
        let mut c = vec![0.5];
        let mut h = vec![0.0];
        lstm_floats(&mut hg, &ig, &mut c, &mut h, 1);
        let (i, f, g, o) = (sig(0.3 + 0.1), sig(-0.2 + 0.7), tanh(0.1 - 0.5), sig(0.4 + 0.2));
        assert_eq!(c[0], f * 0.5 + i * g);
        assert_eq!(h[0], o * tanh(c[0]));
    }

    #[test]
    fn gru_puts_the_hidden_bias_inside_the_reset_product() {
        // Two units, one row. hg = [r r z z n n], ig likewise.
        let mut hg = vec![0.2, -0.1, 0.3, 0.0, 0.8, -0.6];
        let ig = vec![0.1, 0.4, -0.3, 0.5, 0.25, 0.125];
        let mut h = vec![0.5, -0.25];
        let h_old = h.clone();
        gru_floats(&mut hg, &ig, &mut h, 2);
        for j in 0..2 {
            let r = sig([0.2f32, -0.1][j] + [0.1f32, 0.4][j]);
            let z = sig([0.3f32, 0.0][j] + [-0.3f32, 0.5][j]);
            let n = tanh([0.25f32, 0.125][j] + [0.8f32, -0.6][j] * r);
            assert_eq!(h[j], (h_old[j] - n) * z + n, "unit {j}");
        }
    }

    #[test]
    fn gru_with_z_one_keeps_the_state() {
        let mut hg = vec![0.0, 30.0, 0.9];
        let ig = vec![0.0, 0.0, -0.4];
        let mut h = vec![0.75];
        gru_floats(&mut hg, &ig, &mut h, 1);
        assert_eq!(h[0], 0.75);
    }

    #[test]
    fn elman_steps_apply_their_nonlinearity_to_the_sum() {
        let hg = [0.5f32, -2.0, 1.0];
        let ig = [0.25f32, 1.0, -1.0];
        let mut h = [0.0f32; 3];
        elman_floats(Nonlinearity::Tanh, &hg, &ig, &mut h);
        assert_eq!(h, [tanh(0.75), tanh(-1.0), 0.0]);
        elman_floats(Nonlinearity::Relu, &hg, &ig, &mut h);
        assert_eq!(h, [0.75, 0.0, 0.0]);
    }
}
