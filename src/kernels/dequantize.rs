//! The dequantizing epilogue (int32 accumulators to float outputs), generic over [`Simd`]: the
//! columns of a GEMM tile that a whole-vector store cannot take.

use super::simd::Simd;
use crate::kernels::Epilogue;
use crate::quant::dequantize_accumulator;

/// The epilogue of one row's columns `n0..n0 + acc.len()`: `acc` -> `out` (as long), with the
/// column parameters of those columns.
///
/// # Panics
/// When `out` is shorter than `acc` or a column parameter shorter than `n0 + acc.len()`.
#[inline(always)]
pub(crate) fn dequantize_span<S: Simd>(
    s: S,
    acc: &[i32],
    row_sum: i32,
    params: &Epilogue<'_>,
    n0: usize,
    out: &mut [f32],
) {
    let len = acc.len();
    let out = &mut out[..len];
    let col_offsets = &params.col_offsets[n0..n0 + len];
    let w_zero_points = &params.w_zero_points[n0..n0 + len];
    let multipliers = &params.multipliers[n0..n0 + len];
    let bias = params.bias.map(|b| &b[n0..n0 + len]);
    let lanes = S::LANES;
    let full = len - len % lanes;
    let x_zero_point = s.splat_i32(params.x_zero_point);
    let sum = s.splat_i32(row_sum);
    for j in (0..full).step_by(lanes) {
        // SAFETY: `j + LANES <= full <= len`, and every slice read here has `len` elements.
        let (a, offset, zp, m) = unsafe {
            (
                s.load_i32(acc.as_ptr().add(j)),
                s.load_i32(col_offsets.as_ptr().add(j)),
                s.load_i32(w_zero_points.as_ptr().add(j)),
                s.load(multipliers.as_ptr().add(j)),
            )
        };
        let corr = s.sub_i32(s.sub_i32(a, s.mul_i32(x_zero_point, offset)), s.mul_i32(sum, zp));
        let y = match bias {
            // SAFETY: `bias` has `len` elements and `j + LANES <= len`.
            Some(b) => s.fmadd(s.i32_to_f32(corr), m, unsafe { s.load(b.as_ptr().add(j)) }),
            None => s.mul(s.i32_to_f32(corr), m),
        };
        // SAFETY: `out` has `len` elements and `j + LANES <= len`.
        unsafe { s.store(out.as_mut_ptr().add(j), y) };
    }
    for j in full..len {
        out[j] = dequantize_accumulator(params.correct(acc[j], row_sum, n0 + j), multipliers[j], bias.map(|b| b[j]));
    }
}
