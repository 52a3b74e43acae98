//! What one projection of a recurrent step (`W_hh h + b_hh` or `W_ih x + b_ih`) hands the fused
//! step, for the step's rows ([`Projected`]): final float values, or the int32 accumulators of an
//! int8 GEMM whose dequantization (docs/numerics.md §2.2) the step performs on the fly, so the
//! dequantized values never go through memory.

use std::ops::Range;

use crate::quant::dequantize_accumulator;

/// One projection's output for a block of rows, `columns` values per row (`gates * hidden`: the
/// projection's share of every gate's pre-activation).
#[derive(Clone, Copy, Debug)]
pub enum Projected<'a> {
    /// Row-major float values (a float16-weight projection, or anything already computed).
    Float(&'a [f32]),
    /// Row-major int8 GEMM accumulators, dequantized when read.
    Int8(Accumulators<'a>),
}

/// int32 accumulators with what their dequantization needs: the activations' qparams and the
/// layer's per-column terms: the [`Epilogue`](super::Epilogue) of
/// [`DynamicLinear::epilogue`](crate::linear::DynamicLinear::epilogue) with the multipliers formed
/// on the fly, `x_scale * scales[n]`. Column `n` of a row reads
/// `fma((float)(acc - x_zero_point * col_offsets[n]), x_scale * scales[n], bias[n])`.
///
/// `acc` already holds the weight-zero-point part of the correction ([`correct_zero_points`];
/// nothing to do for symmetric weights), and a layer without bias passes zeros: `fma(c, m, 0)`
/// rounds exactly as the product `c * m` that [`dequantize_accumulator`] takes then (the exact
/// sum equals the exact product, sign of zero included).
#[derive(Clone, Copy, Debug)]
pub struct Accumulators<'a> {
    /// `rows x columns` products `Σ_k xq[r, k] * W[n, k]` (zero-point corrected).
    pub acc: &'a [i32],
    pub x_zero_point: i32,
    /// The activation scale as float32.
    pub x_scale: f32,
    /// Per column, `Σ_k W[n, k] - w_zero_point[n] * K`.
    pub col_offsets: &'a [i32],
    /// Per column, the weight scale.
    pub scales: &'a [f32],
    /// Per column, the bias (zeros for a layer without one).
    pub bias: &'a [f32],
}

impl<'a> Projected<'a> {
    /// Rows `rows` of `columns` values each.
    pub fn rows(&self, rows: Range<usize>, columns: usize) -> Projected<'a> {
        match self {
            Projected::Float(v) => Projected::Float(&v[rows.start * columns..rows.end * columns]),
            Projected::Int8(a) => Projected::Int8(Accumulators { acc: &a.acc[rows.start * columns..rows.end * columns], ..*a }),
        }
    }

    /// True when the values hold `rows` rows of `columns` columns (and the per-column terms
    /// `columns` entries).
    pub fn covers(&self, rows: usize, columns: usize) -> bool {
        let values = rows.checked_mul(columns);
        match self {
            Projected::Float(v) => values.is_some_and(|n| v.len() >= n),
            Projected::Int8(a) => {
                values.is_some_and(|n| a.acc.len() >= n)
                    && a.col_offsets.len() >= columns
                    && a.scales.len() >= columns
                    && a.bias.len() >= columns
            }
        }
    }

    /// Row `r` (of `out.len()` columns) as floats, dequantized exactly as
    /// [`DynamicLinear::forward_quantized`](crate::linear::DynamicLinear::forward_quantized)
    /// would have produced it.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let columns = out.len();
        match self {
            Projected::Float(v) => out.copy_from_slice(&v[r * columns..(r + 1) * columns]),
            Projected::Int8(a) => {
                for (n, (o, &acc)) in out.iter_mut().zip(&a.acc[r * columns..(r + 1) * columns]).enumerate() {
                    let corr = acc.wrapping_sub(a.x_zero_point.wrapping_mul(a.col_offsets[n]));
                    *o = dequantize_accumulator(corr, a.x_scale * a.scales[n], Some(a.bias[n]));
                }
            }
        }
    }
}

/// Subtracts `row_sums[r] * zero_points[n]` (wrapping) from `acc[r * columns + n]`, with
/// `columns = zero_points.len()`: the weight-zero-point part of the dequantizing correction,
/// which commutes with the rest of it in wrapping arithmetic.
pub fn correct_zero_points(acc: &mut [i32], row_sums: &[i32], zero_points: &[i32]) {
    for (row, &row_sum) in acc.chunks_exact_mut(zero_points.len().max(1)).zip(row_sums) {
        for (a, &zp) in row.iter_mut().zip(zero_points) {
            *a = a.wrapping_sub(row_sum.wrapping_mul(zp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_bias_rounds_like_no_bias() {
        // fma(c, m, +0) against the product c * m: every sign and size of c, multipliers from tiny
        // to huge (subnormal and overflowing products included).
        let ms = [1e-45f32, 3e-39, 1e-30, 7.1e-6, 0.5, 1.0, 3.3e4, 1e30, f32::MAX];
        for c in (-2000..2000).map(|i| i * 1_000_003).chain([0, 1, -1, i32::MAX, i32::MIN]) {
            for &m in &ms {
                let (with, without) = (dequantize_accumulator(c, m, Some(0.0)), dequantize_accumulator(c, m, None));
                assert_eq!(with.to_bits(), without.to_bits(), "c={c} m={m}");
            }
        }
    }

    #[test]
    fn zero_point_correction_commutes_with_the_column_offsets() {
        let (acc, sums, zps, cols) = ([7, -3, 100, i32::MIN], [5, -9], [2, i32::MAX], [11, -4]);
        let mut corrected = acc;
        correct_zero_points(&mut corrected, &sums, &zps);
        let a = Accumulators { acc: &corrected, x_zero_point: 3, x_scale: 0.25, col_offsets: &cols, scales: &[1.0, 2.0], bias: &[0.5, 0.0] };
        let mut row = [0.0; 2];
        for r in 0..2 {
            Projected::Int8(a).row_into(r, &mut row);
            for n in 0..2 {
                let corr = acc[r * 2 + n].wrapping_sub(3i32.wrapping_mul(cols[n])).wrapping_sub(sums[r].wrapping_mul(zps[n]));
                assert_eq!(row[n], dequantize_accumulator(corr, 0.25 * [1.0, 2.0][n], Some([0.5, 0.0][n])));
            }
        }
    }
}
