//! The float16-weight product on NEON (f32 activations, binary16 weights, f32 accumulation).

use std::arch::aarch64::*;
use std::arch::asm;
use std::ops::Range;

use super::neon::Neon;
use crate::kernels::{f16_sum_start, scalar, F16_COLUMN_BLOCK, F16_K_BLOCK};

/// Columns per vector.
const LANES: usize = 4;

/// The operands of one product, checked once against the shapes.
struct Operands<'a> {
    /// `rows x k`, row-major.
    x: &'a [f32],
    k: usize,
    /// Binary16 bits, `k x n`, row-major.
    w: &'a [u16],
    n: usize,
    /// `n` floats, if any.
    bias: Option<&'a [f32]>,
}

/// See [`Kernels::gemm_f32_f16`](crate::kernels::Kernels::gemm_f32_f16).
///
/// Vectorized across output columns, which are contiguous in the transposed weights: each lane
/// accumulates its own column with one fused multiply-add per `k` (`fmla`, as `mul_add`), in `k`
/// order, blocked in `k` exactly where the scalar kernel blocks it, then adds the bias: the scalar
/// operations, so exactly the scalar bits. Weights are widened by `fcvtl`, which is exact (NaNs are quieted, keeping their
/// payload, as the `half` crate does). A tile of `R` rows x `C` vectors shares each widened weight
/// vector across its rows and each activation across its vectors. A bias shorter than `n` (outside
/// the contract) is left to the scalar kernel.
#[allow(clippy::too_many_arguments)] // the signature of the kernel table's entry, and the token
#[inline(always)]
pub(super) fn gemm_f32_f16<const R: usize, const C: usize>(
    t: Neon,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[u16],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    if bias.is_some_and(|b| b.len() < n) {
        return scalar::gemm_f32_f16(x, rows, k, w, n, bias, out);
    }
    if rows == 0 {
        return;
    }
    let size = |a: usize, b: usize| a.checked_mul(b).expect("gemm_f32_f16: operand size overflows usize");
    assert!(x.len() >= size(rows, k), "gemm_f32_f16: x has {} elements, expected {rows} x {k}", x.len());
    assert!(out.len() >= size(rows, n), "gemm_f32_f16: out has {} elements, expected {rows} x {n}", out.len());
    assert!(w.len() >= size(k, n), "gemm_f32_f16: w has {} elements, expected {k} x {n}", w.len());
    let op = Operands { x, k, w, n, bias };
    let full_tiles = rows - rows % R;
    for r0 in (0..full_tiles).step_by(R) {
        columns::<R, C>(t, &op, out, r0);
    }
    for r0 in full_tiles..rows {
        columns::<1, C>(t, &op, out, r0);
    }
}

/// Rows `r0..r0 + R`, every column. The whole blocks of [`F16_COLUMN_BLOCK`] columns: tiles of
/// `C` vectors, then single vectors, all summed over `k` in one chain; then the last
/// `n % F16_COLUMN_BLOCK` columns, summed in blocks of [`F16_K_BLOCK`] inputs: single vectors,
/// then the last `n % 4` columns.
#[inline(always)]
fn columns<const R: usize, const C: usize>(t: Neon, op: &Operands<'_>, out: &mut [f32], r0: usize) {
    let full = op.n - op.n % F16_COLUMN_BLOCK;
    let one_block = op.k.max(1);
    let mut j = 0;
    while j + C * LANES <= full {
        tile::<R, C, false>(t, op, out, r0, j, C * LANES, one_block);
        j += C * LANES;
    }
    while j < full {
        tile::<R, 1, false>(t, op, out, r0, j, LANES, one_block);
        j += LANES;
    }
    while j + LANES <= op.n {
        tile::<R, 1, false>(t, op, out, r0, j, LANES, F16_K_BLOCK);
        j += LANES;
    }
    if j < op.n {
        tile::<R, 1, true>(t, op, out, r0, j, op.n - j, F16_K_BLOCK);
    }
}

/// Rows `r0..r0 + R` x columns `j0..j0 + width`: `C` full vectors (`width = 4 * C`), or with
/// `PARTIAL` one vector of `width < 4` columns, whose missing lanes compute on zero weights and are
/// not stored. The inputs are summed in blocks of `k_block`: the first from -0.0 (or +0.0 when
/// `k = 0`) in the accumulators, each later one from +0.0 on its own, then added to them.
#[allow(clippy::too_many_arguments)] // the tile's place, and how its inputs are blocked
#[inline(always)]
fn tile<const R: usize, const C: usize, const PARTIAL: bool>(
    t: Neon,
    op: &Operands<'_>,
    out: &mut [f32],
    r0: usize,
    j0: usize,
    width: usize,
    k_block: usize,
) {
    let (k, n) = (op.k, op.n);
    let x: [&[f32]; R] = std::array::from_fn(|r| &op.x[(r0 + r) * k..][..k]);
    // SAFETY: the token proves NEON.
    let mut acc = [[unsafe { vdupq_n_f32(f16_sum_start(k)) }; C]; R];
    accumulate::<R, C, PARTIAL>(t, op, &x, &mut acc, j0, width, 0..k.min(k_block));
    for k0 in (k_block..k).step_by(k_block) {
        // SAFETY: the token proves NEON.
        let mut block = [[unsafe { vdupq_n_f32(0.0) }; C]; R];
        accumulate::<R, C, PARTIAL>(t, op, &x, &mut block, j0, width, k0..k.min(k0 + k_block));
        for (acc_row, block_row) in acc.iter_mut().zip(&block) {
            for (a, &b) in acc_row.iter_mut().zip(block_row) {
                // SAFETY: the token proves NEON.
                *a = unsafe { vaddq_f32(*a, b) };
            }
        }
    }
    let bias = op.bias.map(|b| &b[j0..][..width]);
    for (r, acc_row) in acc.iter().enumerate() {
        let out_row = &mut out[(r0 + r) * n + j0..][..width];
        if PARTIAL {
            let mut lanes = [0.0; LANES];
            // SAFETY: the token proves NEON; `lanes` holds 4 floats.
            unsafe { vst1q_f32(lanes.as_mut_ptr(), acc_row[0]) };
            for (j, (o, y)) in out_row.iter_mut().zip(lanes).enumerate() {
                *o = bias.map_or(y, |b| y + b[j]);
            }
        } else {
            for (c, &a) in acc_row.iter().enumerate() {
                // SAFETY: the token proves NEON; `out_row` and `bias` have `width = 4 * C`
                // elements, so the 4 lanes from `4 * c` are in bounds.
                unsafe {
                    let y = bias.map_or(a, |b| vaddq_f32(a, vld1q_f32(b.as_ptr().add(c * LANES))));
                    vst1q_f32(out_row.as_mut_ptr().add(c * LANES), y);
                }
            }
        }
    }
}

/// `acc = fma(x, w, acc)` (`fmla`, as `mul_add`) over the inputs `inputs`, in order, for the tile
/// of [`tile`]: each widened weight vector is shared across the `R` rows, each activation across
/// the `C` vectors.
#[inline(always)]
fn accumulate<const R: usize, const C: usize, const PARTIAL: bool>(
    t: Neon,
    op: &Operands<'_>,
    x: &[&[f32]; R],
    acc: &mut [[float32x4_t; C]; R],
    j0: usize,
    width: usize,
    inputs: Range<usize>,
) {
    let n = op.n;
    for kk in inputs {
        let w_row = &op.w[kk * n + j0..][..width];
        let weights: [float32x4_t; C] = if PARTIAL {
            let mut bits = [0; LANES];
            bits[..width].copy_from_slice(w_row);
            [widen_f16(t, bits); C]
        } else {
            let (vectors, _) = w_row.as_chunks::<LANES>();
            std::array::from_fn(|c| widen_f16(t, vectors[c]))
        };
        for (acc_row, x_row) in acc.iter_mut().zip(x) {
            // SAFETY: the token proves NEON.
            unsafe {
                let xv = vdupq_n_f32(x_row[kk]);
                for (a, &wv) in acc_row.iter_mut().zip(&weights) {
                    *a = vfmaq_f32(*a, xv, wv);
                }
            }
        }
    }
}

/// 4 binary16 values widened to f32 (`fcvtl`, exact).
#[inline(always)]
pub(super) fn widen_f16(_: Neon, bits: [u16; LANES]) -> float32x4_t {
    let widened: float32x4_t;
    // SAFETY: the token proves NEON, whose `fcvtl` (half to single precision) only reads and
    // writes the two vector registers.
    unsafe {
        let half = vld1_u16(bits.as_ptr());
        asm!(
            "fcvtl {widened:v}.4s, {half:v}.4h",
            widened = out(vreg) widened,
            half = in(vreg) half,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    widened
}
