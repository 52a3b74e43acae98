//! The u8 x s8 -> i32 GEMM over packed weights, shared by both aarch64 paths: they differ only in
//! the dot-product step on one 16-column panel k-group ([`Int8Dot`]) and in their tile shapes.
//!
//! Both steps multiply signed bytes, so activations enter shifted, `a ^ 0x80 = a - 128`, and each
//! column sums `Σ_k (a_k - 128) * w_k`. The store adds `128 * Σ_k w_k` back (the packed weights'
//! column sums; padding bytes are zero weights, which add nothing whatever the activation): the
//! result is `Σ_k a_k * w_k` modulo 2^32, exactly the scalar kernel's wrapping sum.
//!
//! Loop order: groups of `NP` panels outside, strips of `MR` rows inside, the whole `K` innermost
//! in one register tile of `MR x NP` panel accumulators. The narrow last panel (the last `n % 16`
//! columns, stored only as wide as they are) is widened a chunk of k-groups at a time into full
//! blocks on the stack ([`PackedWeights::widen_narrow`]) and goes through the same steps.

use std::arch::aarch64::*;

use super::neon::Neon;
use crate::kernels::int8_job::Job;
use crate::kernels::{dequantize, Epilogue, Int8Operands};
use crate::pack::{Block, PackedWeights, K_GROUP, NARROW_CHUNK, PANEL_WIDTH};

/// One path's dot-product step: for the 16 columns `j` of one panel k-group,
/// `acc[j] += Σ_{i<4} a[i] * w[j, i]` over signed bytes, exact, with int32 wrap-around only.
pub(super) trait Int8Dot: Copy {
    /// The accumulators of one row and one panel.
    type Acc: Copy;

    /// The NEON token the step's path implies.
    fn neon(self) -> Neon;
    /// Zero accumulators.
    fn zero(self) -> Self::Acc;
    /// One step: `a` holds 4 signed activation bytes repeated in each 32-bit lane
    /// ([`Neon::broadcast_shifted`]), `w` one panel k-group ([`Neon::load_block`]).
    fn dot(self, acc: Self::Acc, a: int8x16_t, w: [int8x16_t; 4]) -> Self::Acc;
    /// The 16 column sums, 4 per vector, in column order.
    fn columns(self, acc: Self::Acc) -> [int32x4_t; 4];
}

/// See [`Kernels::gemm_u8i8`](crate::kernels::Kernels::gemm_u8i8), in tiles of `W` panel
/// accumulators: one row walks `W` panels at once; more rows go `W` at a time, one panel each.
///
/// # Panics
/// When `a` or `out` is too short for `rows` rows (as the scalar kernel does), or when `ldo < n`
/// with more than one row (the rows would overlap).
#[inline(always)]
pub(super) fn gemm<D: Int8Dot, const W: usize>(d: D, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    let rows = operands.rows;
    let Some(job) = Job::new(operands) else {
        return;
    };
    job.check_out(out.len(), ldo, "gemm_u8i8");
    if rows == 1 {
        panels::<D, 1, W>(d, &job, out, ldo)
    } else {
        panels::<D, W, 1>(d, &job, out, ldo)
    }
}

/// Every panel of every row, in tiles of `MR` rows x `NP` panels; leftover rows go one at a time,
/// leftover panels (the narrow one last) one at a time.
#[inline(always)]
fn panels<D: Int8Dot, const MR: usize, const NP: usize>(d: D, job: &Job<'_>, out: &mut [i32], ldo: usize) {
    let b = job.b;
    let grouped = b.full_panels() - b.full_panels() % NP;
    for p0 in (0..grouped).step_by(NP) {
        strip::<D, MR, NP>(d, job, p0, out, ldo);
    }
    for p0 in grouped..b.n_panels() {
        strip::<D, MR, 1>(d, job, p0, out, ldo);
    }
}

/// See [`scalar::dequantize`](crate::kernels::scalar::dequantize): the generic epilogue, row by
/// row.
#[inline(always)]
pub(super) fn dequantize(t: Neon, acc: &[i32], row_sums: &[i32], params: &Epilogue<'_>, out: &mut [f32]) {
    for (acc_row, row_sum, out_row) in params.rows(acc, row_sums, out) {
        dequantize::dequantize_span(t, acc_row, row_sum, params, 0, out_row);
    }
}

/// Panels `p0..p0 + NP` of every row: tiles of `MR` rows, then the leftover rows one by one.
#[inline(always)]
fn strip<D: Int8Dot, const MR: usize, const NP: usize>(d: D, job: &Job<'_>, p0: usize, out: &mut [i32], ldo: usize) {
    let rows = job.rows;
    let full_rows = rows - rows % MR;
    for r0 in (0..full_rows).step_by(MR) {
        store(d, job.b, &tile::<D, MR, NP>(d, job, r0, p0), r0, p0, out, ldo);
    }
    for r0 in full_rows..rows {
        store(d, job.b, &tile::<D, 1, NP>(d, job, r0, p0), r0, p0, out, ldo);
    }
}

/// The `MR x NP` accumulators of rows `r0..r0 + MR` and panels `p0..p0 + NP` over the whole `K`:
/// full panels, or (with `NP = 1`) the narrow panel, its k-groups widened a chunk at a time
/// ([`PackedWeights::widen_narrow`]).
#[inline(always)]
fn tile<D: Int8Dot, const MR: usize, const NP: usize>(d: D, job: &Job<'_>, r0: usize, p0: usize) -> [[D::Acc; NP]; MR] {
    let k_groups = job.b.k_groups();
    let a: [&[[u8; K_GROUP]]; MR] =
        std::array::from_fn(|i| job.a[(r0 + i) * job.lda..][..k_groups * K_GROUP].as_chunks().0);
    let mut acc = [[d.zero(); NP]; MR];
    if p0 == job.b.full_panels() {
        // The narrow panel comes alone (`NP = 1`; see `gemm`).
        let mut chunk = [Block::ZERO; NARROW_CHUNK];
        for g0 in (0..k_groups).step_by(NARROW_CHUNK) {
            let w = job.b.widen_narrow(g0, &mut chunk);
            accumulate(d, &a.map(|row| &row[g0..g0 + w.len()]), [w; NP], &mut acc);
        }
    } else {
        accumulate(d, &a, std::array::from_fn(|p| job.b.panel(p0 + p)), &mut acc);
    }
    acc
}

/// Adds to `acc` the products of rows `a` and panels `w` (all of one length, at most that of the
/// rows) over the panels' k-groups.
#[inline(always)]
fn accumulate<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    a: &[&[[u8; K_GROUP]]; MR],
    w: [&[Block]; NP],
    acc: &mut [[D::Acc; NP]; MR],
) {
    let (neon, k_groups) = (d.neon(), w[0].len());
    let a: [&[[u8; K_GROUP]]; MR] = a.map(|row| &row[..k_groups]);
    let w: [&[Block]; NP] = w.map(|panel| &panel[..k_groups]);
    for g in 0..k_groups {
        let wv: [[int8x16_t; 4]; NP] = std::array::from_fn(|p| neon.load_block(&w[p][g]));
        for (acc_row, a_row) in acc.iter_mut().zip(&a) {
            let av = neon.broadcast_shifted(a_row[g]);
            for (acc, &wv) in acc_row.iter_mut().zip(&wv) {
                *acc = d.dot(*acc, av, wv);
            }
        }
    }
}

/// Writes a tile's rows to output rows `r0..` (stride `ldo`), panels from `p0`, each cut at column
/// `n`, adding back the activation shift: `+ 128 * Σ_k w` per column, wrapping.
#[inline(always)]
fn store<D: Int8Dot, const MR: usize, const NP: usize>(
    d: D,
    b: &PackedWeights,
    acc: &[[D::Acc; NP]; MR],
    r0: usize,
    p0: usize,
    out: &mut [i32],
    ldo: usize,
) {
    for (r, acc_row) in acc.iter().enumerate() {
        for (p, &panel) in acc_row.iter().enumerate() {
            let n0 = (p0 + p) * PANEL_WIDTH;
            let width = PANEL_WIDTH.min(b.n() - n0);
            let sums = d.neon().to_array(d.columns(panel));
            let out = &mut out[(r0 + r) * ldo + n0..][..width];
            for ((o, &sum), &col_sum) in out.iter_mut().zip(&sums).zip(&b.col_sums()[n0..n0 + width]) {
                *o = sum.wrapping_add(col_sum.wrapping_mul(128));
            }
        }
    }
}
