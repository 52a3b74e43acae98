//! The fused recurrent step of each recurrence (LSTM, GRU, Elman), generic over [`Simd`]: over
//! blocks of `LANES` hidden units, every batch row's gates go from both projections' outputs
//! ([`Projected`]: int32 accumulators dequantized on the fly, or floats) to the new state in
//! registers. Each instruction set's file instantiates these bodies in its `#[target_feature]`
//! entry points ([`Kernels::lstm`](super::Kernels::lstm) and the next two).
//!
//! Bit for bit the scalar specification [`super::scalar_step`]: the same IEEE operations per
//! element, in the same order, with [`super::vector_math`]'s sigmoid and tanh. The bodies run on
//! [`Pair`]s of registers (two independent chains per instruction). A block of `LANES` units
//! never straddles the sigmoid's SLEEF/glibc split at `floor(hidden / 32) * 32` (every width
//! divides 32), so each block uses the form its units get in PyTorch's rows. The last block of a
//! row is partial when `hidden` is not a multiple of `LANES`.
//!
//! The inner loops load through raw pointers ([`sources`]): every slice is checked against the
//! shapes once, on entry, so the per-vector work is the arithmetic alone.

mod sources;

use super::projected::Projected;
use super::simd::{load, store, Pair, Simd};
use super::vector_math::{sigmoid_glibc, sigmoid_sleef, tanh};
use super::Nonlinearity;
use crate::activations::VECTOR_STEP;
use sources::{float_source, for_blocks, gate, gate_columns, gate_row, int8_source, with_sources, Full, Source, Tail, Width, LANES_OF};

/// See [`super::scalar_step::canonical_nan`].
#[inline(always)]
fn canonical_nan<S: Simd>(s: S, x: S::F) -> S::F {
    s.select(s.is_nan(x), s.splat(f32::NAN), x)
}

/// The sigmoid PyTorch applies at unit `j` of a gate row whose first `split` units it vectorizes.
#[inline(always)]
fn sigmoid_at<S: Simd>(s: S, x: S::F, j: usize, split: usize) -> S::F {
    if j < split {
        sigmoid_sleef(s, x)
    } else {
        sigmoid_glibc(s, x)
    }
}

/// See [`Kernels::lstm`](super::Kernels::lstm). Per block of units and row: `hg + ig`, the
/// activations and `c' = f * c + i * g`, storing `c'` and `o` (in `h_out`); then
/// `h = o * tanh(c')` over everything, so that one block's two dependent tanh evaluations do not
/// form one long chain.
#[inline(always)]
pub(crate) fn lstm<S: Simd>(s: S, hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) {
    let s = Pair(s);
    let rows = c.len() / hidden;
    assert!(c.len() == rows * hidden && h_out.len() == c.len(), "c and h_out must hold {rows} rows of {hidden}");
    with_sources!(hg, ig, rows, 4 * hidden, |hg, ig| {
        for_blocks!(s, hidden, lstm_block(hg, ig, c.as_mut_ptr(), h_out.as_mut_ptr(), rows, hidden))
    });
    output_gate(Pair(s), c, h_out);
}

/// `h = o * tanh(c)` element by element, with `o` in `h` (the second pass of [`lstm`]).
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn output_gate<S: Simd>(s: S, c: &[f32], h: &mut [f32]) {
    for (c, h) in c.chunks(S::LANES).zip(h.chunks_mut(S::LANES)) {
        let o = load(s, h);
        store(s, h, canonical_nan(s, s.mul(o, tanh(s, load(s, c)))));
    }
}

/// The first pass of [`lstm`] for units `j..` (the lanes of `w`) of every row.
///
/// # Safety
/// The lanes from `j` lie within `hidden`; the sources hold `rows x 4 hidden`, `c` and `h_out`
/// `rows x hidden`.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
#[allow(clippy::too_many_arguments)]
unsafe fn lstm_block<S: Simd, W: Width>(
    s: S,
    w: W,
    j: usize,
    hg: impl Source,
    ig: impl Source,
    c: *mut f32,
    h_out: *mut f32,
    rows: usize,
    hidden: usize,
) {
    let split = hidden / VECTOR_STEP * VECTOR_STEP;
    // SAFETY: columns in bounds by the caller's promise. (Four calls, not a closure mapped over
    // the gates: a closure would not be compiled with the entry point's target features.)
    let (i_terms, f_terms, g_terms, o_terms) = unsafe {
        (
            gate_columns(s, w, hg, ig, j),
            gate_columns(s, w, hg, ig, hidden + j),
            gate_columns(s, w, hg, ig, 2 * hidden + j),
            gate_columns(s, w, hg, ig, 3 * hidden + j),
        )
    };
    for r in 0..rows {
        // SAFETY: rows and columns in bounds by the caller's promise.
        unsafe {
            let g = tanh(s, gate_row(s, w, hg, ig, g_terms, r));
            let i = sigmoid_at(s, gate_row(s, w, hg, ig, i_terms, r), j, split);
            let f = sigmoid_at(s, gate_row(s, w, hg, ig, f_terms, r), j, split);
            let o = sigmoid_at(s, gate_row(s, w, hg, ig, o_terms, r), j, split);
            let state = r * hidden + j;
            let c_new = s.add(s.mul(f, w.load(s, c.add(state))), s.mul(i, g));
            w.store(s, c.add(state), canonical_nan(s, c_new));
            w.store(s, h_out.add(state), o);
        }
    }
}

/// Units per chunk of [`gru`]'s two passes: a multiple of every block width (and of 32, the
/// sigmoid's split granularity), small enough for its scratch to live on the stack.
const GRU_CHUNK: usize = 256;

/// See [`Kernels::gru`](super::Kernels::gru): `r, z = sigmoid(hg + ig)`, `n = tanh(ig_n + hg_n * r)`,
/// `h' = (h - n) * z + n`. Per row and chunk of units, a first pass stores `z` and the tanh
/// argument on the stack, a second computes `n` and `h'`: each pass's blocks are independent, so
/// they overlap in the out-of-order window instead of forming one sigmoid-then-tanh chain.
#[inline(always)]
pub(crate) fn gru<S: Simd>(s: S, hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize) {
    let s = Pair(s);
    let rows = h.len() / hidden;
    assert!(h.len() == rows * hidden, "h must hold {rows} rows of {hidden}");
    with_sources!(hg, ig, rows, 3 * hidden, |hg, ig| {
        let (mut z, mut n_in) = ([0.0f32; GRU_CHUNK], [0.0f32; GRU_CHUNK]);
        for (row, h) in h.chunks_exact_mut(hidden).enumerate() {
            for start in (0..hidden).step_by(GRU_CHUNK) {
                let len = GRU_CHUNK.min(hidden - start);
                for_blocks!(s, len, gru_gates(hg, ig, row, start, hidden, z.as_mut_ptr(), n_in.as_mut_ptr()));
                gru_update(Pair(s), &z[..len], &n_in[..len], &mut h[start..start + len]);
            }
        }
    })
}

/// The first pass of [`gru`] for units `start + j..` (the lanes of `w`) of row `row`: `z` and
/// `ig_n + hg_n * r` to `z` and `n_in` from `j` on.
///
/// # Safety
/// The lanes from `j` lie within the chunk (at most [`GRU_CHUNK`] units, ending within
/// `hidden`); `row` is a row of the sources (`3 hidden` columns); `z` and `n_in` hold the chunk.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
#[allow(clippy::too_many_arguments)]
unsafe fn gru_gates<S: Simd, W: Width>(
    s: S,
    w: W,
    j: usize,
    hg: impl Source,
    ig: impl Source,
    row: usize,
    start: usize,
    hidden: usize,
    z: *mut f32,
    n_in: *mut f32,
) {
    let split = hidden / VECTOR_STEP * VECTOR_STEP;
    let unit = start + j;
    // SAFETY: rows, columns and chunk offsets in bounds by the caller's promise.
    unsafe {
        let r = sigmoid_at(s, gate(s, w, hg, ig, row, unit), unit, split);
        w.store(s, z.add(j), sigmoid_at(s, gate(s, w, hg, ig, row, hidden + unit), unit, split));
        let n_col = 2 * hidden + unit;
        w.store(s, n_in.add(j), s.add(ig.load(s, w, row, n_col), s.mul(hg.load(s, w, row, n_col), r)));
    }
}

/// The second pass of [`gru`]: `n = tanh(n_in)`, `h = (h - n) * z + n`, element by element.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn gru_update<S: Simd>(s: S, z: &[f32], n_in: &[f32], h: &mut [f32]) {
    for ((z, n_in), h) in z.chunks(S::LANES).zip(n_in.chunks(S::LANES)).zip(h.chunks_mut(S::LANES)) {
        let n = tanh(s, load(s, n_in));
        store(s, h, canonical_nan(s, s.add(s.mul(s.sub(load(s, h), n), load(s, z)), n)));
    }
}

/// See [`Kernels::elman`](super::Kernels::elman): `act(hg + ig)` with tanh or relu.
#[inline(always)]
pub(crate) fn elman<S: Simd>(
    s: S,
    nonlinearity: Nonlinearity,
    hg: &Projected<'_>,
    ig: &Projected<'_>,
    h_out: &mut [f32],
    hidden: usize,
) {
    let s = Pair(s);
    let rows = h_out.len() / hidden;
    assert!(h_out.len() == rows * hidden, "h_out must hold {rows} rows of {hidden}");
    with_sources!(hg, ig, rows, hidden, |hg, ig| {
        for_blocks!(s, hidden, elman_block(hg, ig, nonlinearity == Nonlinearity::Relu, h_out.as_mut_ptr(), rows, hidden))
    })
}

/// [`elman`] for units `j..` (the lanes of `w`) of every row.
///
/// # Safety
/// The lanes from `j` lie within `hidden`; the sources and `h_out` hold `rows x hidden`.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
#[allow(clippy::too_many_arguments)]
unsafe fn elman_block<S: Simd, W: Width>(
    s: S,
    w: W,
    j: usize,
    hg: impl Source,
    ig: impl Source,
    relu: bool,
    h_out: *mut f32,
    rows: usize,
    hidden: usize,
) {
    let zero = s.splat(0.0);
    // SAFETY: columns in bounds by the caller's promise.
    let terms = unsafe { gate_columns(s, w, hg, ig, j) };
    for r in 0..rows {
        // SAFETY: rows in bounds by the caller's promise.
        unsafe {
            let x = gate_row(s, w, hg, ig, terms, r);
            let y = if relu { s.select(s.lt(x, zero), zero, x) } else { tanh(s, x) };
            w.store(s, h_out.add(r * hidden + j), canonical_nan(s, y));
        }
    }
}
