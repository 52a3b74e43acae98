//! The requantizing epilogue of the static Linear ([`Kernels::requantize`](super::Kernels::requantize)),
//! generic over [`Simd`]: the scalar specification ([`crate::requantize::requantize`]) a vector of
//! columns at a time, the same bytes.

use super::simd::Simd;
use crate::requantize::{requantize_value, Requantize};

/// See [`Kernels::requantize`](super::Kernels::requantize): per element, in float32 as the scalar
/// specification, `v = rne(((float)corr + bias[j]) * multipliers[j])` (a plain add and multiply,
/// each rounded once), then `clamp(v + y_zero_point, y_min, 255)`. The clamp is taken before the
/// zero point is added, to `y_min - y_zero_point ..= 255 - y_zero_point` (small integers, exact
/// in float32), so the sum is exact and equals the scalar's saturating integer clamp, infinities
/// included; a NaN product counts as 0, as the scalar's saturating conversion makes it. The
/// columns a whole vector cannot take go through [`requantize_value`].
///
/// # Panics
/// When a column parameter is shorter than the epilogue's columns.
#[inline(always)]
pub(crate) fn requantize<S: Simd>(s: S, acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]) {
    let t = &params.terms;
    let n = t.multipliers.len();
    let (col_offsets, w_zero_points, bias) = (&t.col_offsets[..n], &t.w_zero_points[..n], t.bias.map(|b| &b[..n]));
    let full = n - n % S::LANES;
    let x_zero_point = s.splat_i32(t.x_zero_point);
    let (zero, y_zero_point) = (s.splat(0.0), s.splat(params.y_zero_point as f32));
    let lowest = s.splat((params.y_min - params.y_zero_point) as f32);
    let highest = s.splat((255 - params.y_zero_point) as f32);
    for (acc_row, row_sum, out_row) in t.rows(acc, row_sums, out) {
        let sum = s.splat_i32(row_sum);
        for j in (0..full).step_by(S::LANES) {
            // SAFETY: `j + LANES <= full <= n`, and every slice read here has `n` elements
            // (`acc_row` and `out_row` are rows of `n` columns).
            let (a, offset, zp, m) = unsafe {
                (
                    s.load_i32(acc_row.as_ptr().add(j)),
                    s.load_i32(col_offsets.as_ptr().add(j)),
                    s.load_i32(w_zero_points.as_ptr().add(j)),
                    s.load(t.multipliers.as_ptr().add(j)),
                )
            };
            let corr = s.i32_to_f32(s.sub_i32(s.sub_i32(a, s.mul_i32(x_zero_point, offset)), s.mul_i32(sum, zp)));
            let xf = match bias {
                // SAFETY: `bias` has `n` elements and `j + LANES <= n`.
                Some(b) => s.add(corr, unsafe { s.load(b.as_ptr().add(j)) }),
                None => corr,
            };
            let rounded = s.round_even(s.mul(xf, m));
            let rounded = s.select(s.is_nan(rounded), zero, rounded);
            let q = s.add(s.min(s.max(rounded, lowest), highest), y_zero_point);
            // SAFETY: `out_row` has `n` bytes and `j + LANES <= n`.
            unsafe { s.store_u8(out_row.as_mut_ptr().add(j), q) };
        }
        for j in full..n {
            let corr = t.correct(acc_row[j], row_sum, j);
            out_row[j] = requantize_value(corr, t.multipliers[j], t.bias_of(j), params.y_zero_point, params.y_min);
        }
    }
}
