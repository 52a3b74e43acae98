//! The one description of the GEMM epilogue: what turns a row's int32 accumulators into outputs.

use crate::quant::correct_accumulator;

/// The terms of the GEMM epilogue, per output column `n` (docs/numerics.md §1.3, §2.2, §3.1):
/// first the zero-point correction `corr = acc - x_zero_point * col_offsets[n] - row_sum *
/// w_zero_points[n]` (wrapping int32, [`Epilogue::correct`]), with `row_sum = Σ_k a[r, k]`, then
/// - dequantized (the dynamic Linear, [`Kernels::gemm_u8i8_dequantize`](super::Kernels::gemm_u8i8_dequantize),
///   specified by [`scalar::dequantize`](super::scalar::dequantize)): `y = fma((float)corr,
///   multipliers[n], bias[n])`, or `(float)corr * multipliers[n]` without bias, with `multipliers[n]
///   = f32(s_x * s_w[n])`;
/// - requantized (the static Linear, [`Requantize`](crate::requantize::Requantize), which adds the
///   output's zero point and floor): `q = clamp(rne(((float)corr + bias[n]) * multipliers[n]) +
///   y_zero_point, y_min, 255)`, with `multipliers[n] = f32(act_times_w[n] / f32(s_y))` and the
///   bias in accumulator units.
///
/// The epilogue has `multipliers.len()` columns; the other per-column terms hold at least as many.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// The activations' zero point.
    pub x_zero_point: i32,
    /// `Σ_k W[n,k] - w_zero_point[n] * K`, per column.
    pub col_offsets: &'a [i32],
    /// The weights' zero points, per column.
    pub w_zero_points: &'a [i32],
    /// The float factor of each column (see above).
    pub multipliers: &'a [f32],
    /// The float bias of each column, if any.
    pub bias: Option<&'a [f32]>,
}

impl<'a> Epilogue<'a> {
    /// Column `n`'s corrected accumulator ([`correct_accumulator`]).
    #[inline(always)]
    pub fn correct(&self, acc: i32, row_sum: i32, n: usize) -> i32 {
        correct_accumulator(acc, self.x_zero_point, self.col_offsets[n], row_sum, self.w_zero_points[n])
    }

    /// Column `n`'s bias, if any.
    #[inline(always)]
    pub fn bias_of(&self, n: usize) -> Option<f32> {
        self.bias.map(|b| b[n])
    }

    /// The rows of a product as the epilogue reads them: `(accumulators, row sum, outputs)` for
    /// rows of as many columns as the epilogue has, as many rows as the shortest of `acc`, `out`
    /// (in whole rows) and `row_sums` hold; none without columns.
    #[inline(always)]
    pub fn rows<'b, T>(
        &self,
        acc: &'b [i32],
        row_sums: &'b [i32],
        out: &'b mut [T],
    ) -> impl Iterator<Item = (&'b [i32], i32, &'b mut [T])> {
        let n = self.multipliers.len();
        let rows = if n == 0 { 0 } else { row_sums.len() };
        let (acc, out) = (acc.chunks_exact(n.max(1)), out.chunks_exact_mut(n.max(1)));
        acc.zip(out).zip(&row_sums[..rows]).map(|((acc, out), &row_sum)| (acc, row_sum, out))
    }
}
