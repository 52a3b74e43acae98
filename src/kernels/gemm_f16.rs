//! The float16-weight product (f32 activations, binary16 weights, f32 accumulation), generic over
//! [`Simd`].

use std::ops::Range;

use super::simd::Simd;
use crate::kernels::{f16_sum_start, scalar, F16_COLUMN_BLOCK, F16_K_BLOCK};

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
/// accumulates its own column with one FMA per `k`, in `k` order, blocked in `k` exactly where the
/// scalar kernel blocks it, then adds the bias: the scalar operations, so exactly the scalar bits. A tile of `R` rows x `C` vectors
/// shares each widened weight vector across its rows and each broadcast activation across its
/// vectors. A bias shorter than `n` (outside the contract) is left to the scalar kernel.
#[allow(clippy::too_many_arguments)] // the signature of the kernel table's entry
#[inline(always)]
pub(crate) fn gemm_f32_f16<S: Simd, const R: usize, const C: usize>(
    s: S,
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
        columns::<S, R, C>(s, &op, out, r0);
    }
    for r0 in full_tiles..rows {
        columns::<S, 1, C>(s, &op, out, r0);
    }
}

/// Rows `r0..r0 + R` (all `< rows`), every column. The whole blocks of
/// [`F16_COLUMN_BLOCK`] columns: tiles of `C` vectors, then single vectors, all summed over `k` in
/// one chain; then the last `n % F16_COLUMN_BLOCK` columns (a multiple of `LANES` from where they
/// start), summed in blocks of [`F16_K_BLOCK`] inputs: single vectors, then the partial vector of
/// the last `n % LANES` columns.
#[inline(always)]
fn columns<S: Simd, const R: usize, const C: usize>(s: S, op: &Operands<'_>, out: &mut [f32], r0: usize) {
    let lanes = S::LANES;
    let full = op.n - op.n % F16_COLUMN_BLOCK;
    let one_block = op.k.max(1);
    let mut j = 0;
    while j + C * lanes <= full {
        tile::<S, R, C, false>(s, op, out, r0, j, C * lanes, one_block);
        j += C * lanes;
    }
    while j < full {
        tile::<S, R, 1, false>(s, op, out, r0, j, lanes, one_block);
        j += lanes;
    }
    while j + lanes <= op.n {
        tile::<S, R, 1, false>(s, op, out, r0, j, lanes, F16_K_BLOCK);
        j += lanes;
    }
    if j < op.n {
        tile::<S, R, 1, true>(s, op, out, r0, j, op.n - j, F16_K_BLOCK);
    }
}

/// Rows `r0..r0 + R` x columns `j0..j0 + width`: `C` full vectors (`width = C * LANES`), or with
/// `PARTIAL` one vector of `width < LANES` columns. The inputs are summed in blocks of `k_block`:
/// the first from -0.0 (or +0.0 when `k = 0`) in the accumulators, each later one from +0.0 on its
/// own, then added to them. The caller keeps it all inside the operands, which [`gemm_f32_f16`]
/// checked against `rows`, `k` and `n`.
#[allow(clippy::too_many_arguments)] // the tile's place, and how its inputs are blocked
#[inline(always)]
fn tile<S: Simd, const R: usize, const C: usize, const PARTIAL: bool>(
    s: S,
    op: &Operands<'_>,
    out: &mut [f32],
    r0: usize,
    j0: usize,
    width: usize,
    k_block: usize,
) {
    let (lanes, k, n) = (S::LANES, op.k, op.n);
    let mut acc = [[s.splat(f16_sum_start(k)); C]; R];
    accumulate::<S, R, C, PARTIAL>(s, op, &mut acc, r0, j0, width, 0..k.min(k_block));
    for k0 in (k_block..k).step_by(k_block) {
        let mut block = [[s.splat(0.0); C]; R];
        accumulate::<S, R, C, PARTIAL>(s, op, &mut block, r0, j0, width, k0..k.min(k0 + k_block));
        for (acc_row, block_row) in acc.iter_mut().zip(&block) {
            for (a, &b) in acc_row.iter_mut().zip(block_row) {
                *a = s.add(*a, b);
            }
        }
    }
    let bias: [Option<S::F>; C] = std::array::from_fn(|c| {
        op.bias.map(|b| {
            // SAFETY: `bias` has `n >= j0 + width` elements (checked by `gemm_f32_f16`).
            unsafe {
                let p = b.as_ptr().add(j0 + c * lanes);
                if PARTIAL {
                    s.load_partial(p, width)
                } else {
                    s.load(p)
                }
            }
        })
    });
    for (r, acc_row) in acc.iter().enumerate() {
        let out_row = &mut out[(r0 + r) * n + j0..(r0 + r) * n + j0 + width];
        for (c, &a) in acc_row.iter().enumerate() {
            let y = bias[c].map_or(a, |b| s.add(a, b));
            // SAFETY: `out_row` has `width` elements: `C` full vectors, or `width` for `PARTIAL`.
            unsafe {
                let p = out_row.as_mut_ptr().add(c * lanes);
                if PARTIAL {
                    s.store_partial(p, width, y)
                } else {
                    s.store(p, y)
                }
            }
        }
    }
}

/// `acc = fma(x, w, acc)` over the inputs `inputs` (all `< k`), in order, for the tile of
/// [`tile`]: each widened weight vector is shared across the `R` rows, each broadcast activation
/// across the `C` vectors.
#[allow(clippy::too_many_arguments)] // the tile's place and its inputs
#[inline(always)]
fn accumulate<S: Simd, const R: usize, const C: usize, const PARTIAL: bool>(
    s: S,
    op: &Operands<'_>,
    acc: &mut [[S::F; C]; R],
    r0: usize,
    j0: usize,
    width: usize,
    inputs: Range<usize>,
) {
    let (lanes, k, n) = (S::LANES, op.k, op.n);
    for kk in inputs {
        let w_row = op.w[kk * n..].as_ptr();
        let weights: [S::F; C] = std::array::from_fn(|c| {
            // SAFETY: row `kk < k` of `w` has `n >= j0 + width` elements, and the loads cover
            // columns `j0 + c * LANES..` up to `j0 + width`.
            unsafe {
                let p = w_row.add(j0 + c * lanes);
                if PARTIAL {
                    s.load_f16_partial(p, width)
                } else {
                    s.load_f16(p)
                }
            }
        });
        for (r, acc_row) in acc.iter_mut().enumerate() {
            // SAFETY: row `r0 + r < rows` of `x` has `k > kk` elements.
            let xv = s.splat(unsafe { *op.x.as_ptr().add((r0 + r) * k + kk) });
            for (a, &wv) in acc_row.iter_mut().zip(&weights) {
                *a = s.fmadd(xv, wv, *a);
            }
        }
    }
}
