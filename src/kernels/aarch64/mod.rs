//! The aarch64 paths: NEON (Advanced SIMD, which every aarch64 CPU has) and NEON with the
//! dot-product extension (FEAT_DotProd: `sdot`/`udot`, optional from Armv8.2, detected at run
//! time).
//!
//! Each path has a token type (`neon::Neon`, `dotprod::Dotprod`): a zero-sized proof that the CPU
//! has the path's instructions, created by run-time detection only. The two tables share the
//! element-wise kernels (`quantize_input`, `epilogue`) and the float16 product (`gemm_f16`); their
//! int8 GEMMs share one tile driver (`gemm_u8i8`) and differ in the dot-product step: widening
//! multiplies (`smull` + `sadalp`) on NEON, `sdot` with the extension. Kernel bodies take the token
//! first and are entered through [`entry_points!`](super::entry_points), like the x86-64 paths.
//! The NEON token implements [`Simd`](super::simd::Simd): both tables run the fused recurrent
//! steps (`recurrent_step`) on its 4 float lanes; the dot-product extension adds nothing to them.

use std::cell::RefCell;

use crate::kernels::{Dequantize, Isa, Kernels};
use crate::pack::PackedWeights;

mod dotprod;
mod epilogue;
mod gemm_f16;
mod gemm_u8i8;
mod neon;
mod quantize_input;
#[cfg(test)]
mod simd_tests;
#[cfg(test)]
mod tests;

/// Rows per block of [`gemm_then_dequantize`]'s accumulator buffer.
const ROW_BLOCK: usize = 64;

thread_local! {
    /// Each thread's int32 accumulator buffer for [`gemm_then_dequantize`], kept between calls.
    static ACC: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// [`Kernels::gemm_u8i8_dequantize`] composed from a path's `gemm_u8i8` and `dequantize`, blocks
/// of [`ROW_BLOCK`] rows at a time through a reused buffer: equal to the two kernels in sequence
/// by construction.
///
/// # Panics
/// When a slice is too short for `rows` rows, or when `ldo < n` with more than one row.
#[allow(clippy::too_many_arguments)] // the kernels and their arguments
fn gemm_then_dequantize(
    gemm_u8i8: fn(&[u8], usize, usize, &PackedWeights, &mut [i32], usize),
    dequantize: fn(&[i32], &[i32], &Dequantize<'_>, &mut [f32]),
    a: &[u8],
    lda: usize,
    rows: usize,
    b: &PackedWeights,
    row_sums: &[i32],
    params: &Dequantize<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    let n = b.n();
    if rows == 0 || n == 0 {
        return;
    }
    assert!(rows == 1 || ldo >= n, "gemm_u8i8_dequantize: ldo ({ldo}) must be at least n ({n})");
    assert!(out.len() >= (rows - 1) * ldo + n, "gemm_u8i8_dequantize: out has {} elements, too few", out.len());
    assert!(row_sums.len() >= rows, "gemm_u8i8_dequantize: {} row sums for {rows} rows", row_sums.len());
    ACC.with_borrow_mut(|acc| {
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let block = ROW_BLOCK.min(rows - r0);
            // The GEMM writes every accumulator, so stale values need no clearing.
            acc.resize(block * n, 0);
            gemm_u8i8(&a[r0 * lda..], lda, block, b, acc, n);
            for (r, acc_row) in acc.chunks_exact(n).enumerate() {
                let row = r0 + r;
                dequantize(acc_row, &row_sums[row..row + 1], params, &mut out[row * ldo..row * ldo + n]);
            }
        }
    });
}

/// The table of an aarch64 path, or `None` when this CPU lacks its instructions (or `isa` is not
/// an aarch64 path).
pub(super) fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Neon => neon::Neon::detect().map(neon::table),
        Isa::NeonDotprod => dotprod::Dotprod::detect().map(dotprod::table),
        _ => None,
    }
}

/// The sigmoid and tanh test entry points of every [`Simd`](super::simd::Simd) token this CPU
/// has: NEON's (which the dot-product path shares).
#[cfg(test)]
pub(super) fn vector_math_paths() -> Vec<(&'static str, super::VectorMathProbe)> {
    neon::Neon::detect().map(|_| ("neon", neon::vector_math as super::VectorMathProbe)).into_iter().collect()
}
