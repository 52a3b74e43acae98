//! The dequantizing epilogue on NEON: int32 accumulators to float outputs, 4 columns per step.

use std::arch::aarch64::*;

use super::neon::Neon;
use crate::kernels::Dequantize;
use crate::quant::dequantize_accumulator;

/// See [`scalar::dequantize`](crate::kernels::scalar::dequantize) (the epilogue of this path's
/// [`Kernels::gemm_u8i8_dequantize`](crate::kernels::Kernels::gemm_u8i8_dequantize)).
///
/// Lane for lane the scalar operations: wrapping int32 correction (`mul`/`sub` keep the low 32
/// bits), conversion rounding to nearest even (`scvtf`, as `as f32`), then one fused multiply-add
/// with the bias (`fmla`, as `mul_add`) or a plain product without. Rows are as many as the
/// shortest of `acc`, `out` (in rows of `n`) and `row_sums`, as in the scalar kernel. Columns past
/// the last full vector go through [`dequantize_accumulator`] itself.
#[inline(always)]
pub(super) fn dequantize(_: Neon, acc: &[i32], row_sums: &[i32], params: &Dequantize<'_>, out: &mut [f32]) {
    let n = params.multipliers.len();
    if n == 0 || acc.len() < n || out.len() < n || row_sums.is_empty() {
        return;
    }
    let col_offsets = &params.col_offsets[..n];
    let w_zero_points = &params.w_zero_points[..n];
    let multipliers = params.multipliers;
    let bias = params.bias.map(|b| &b[..n]);
    let full = n - n % 4;
    for ((acc_row, out_row), &row_sum) in acc.chunks_exact(n).zip(out.chunks_exact_mut(n)).zip(row_sums) {
        // SAFETY: the token proves NEON; `j + 4 <= full <= n` and every slice read or written here
        // has `n` elements.
        unsafe {
            let x_zero_point = vdupq_n_s32(params.x_zero_point);
            let sum = vdupq_n_s32(row_sum);
            for j in (0..full).step_by(4) {
                let a = vld1q_s32(acc_row.as_ptr().add(j));
                let offset = vld1q_s32(col_offsets.as_ptr().add(j));
                let zp = vld1q_s32(w_zero_points.as_ptr().add(j));
                let m = vld1q_f32(multipliers.as_ptr().add(j));
                let corr = vsubq_s32(vsubq_s32(a, vmulq_s32(x_zero_point, offset)), vmulq_s32(sum, zp));
                let y = match bias {
                    Some(b) => vfmaq_f32(vld1q_f32(b.as_ptr().add(j)), vcvtq_f32_s32(corr), m),
                    None => vmulq_f32(vcvtq_f32_s32(corr), m),
                };
                vst1q_f32(out_row.as_mut_ptr().add(j), y);
            }
        }
        for j in full..n {
            let corr = acc_row[j]
                .wrapping_sub(params.x_zero_point.wrapping_mul(col_offsets[j]))
                .wrapping_sub(row_sum.wrapping_mul(w_zero_points[j]));
            out_row[j] = dequantize_accumulator(corr, multipliers[j], bias.map(|b| b[j]));
        }
    }
}
