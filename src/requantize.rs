//! The requantizing epilogue of the static quantized Linear (docs/numerics.md §3.1): int32 accumulators of
//! uint8 x int8 products become quint8 outputs, with FBGEMM's float32 arithmetic.
//!
//! This is the scalar reference (the scalar path's [`Kernels::requantize`](crate::kernels::Kernels::requantize));
//! the SIMD paths' version (`kernels/requantize_rows.rs`) produces the same bytes.

use crate::kernels::Epilogue;

/// Parameters of [`requantize`]: the epilogue's terms, then the quantized output's, per output
/// column `n`: `corr` as [`Epilogue::correct`] has it, `xf = (float)corr`, plus `bias[n]` when
/// present, then `q = clamp(rne(xf * multipliers[n]) + y_zero_point, y_min, 255)`.
#[derive(Clone, Copy, Debug)]
pub struct Requantize<'a> {
    /// The correction terms, `multipliers[n] = f32(act_times_w[n] / f32(s_y))` with
    /// `act_times_w[n] = f32(s_x * s_w[n])`, and the float bias divided by `act_times_w`
    /// ([`bias_in_accumulator_units`]).
    pub terms: Epilogue<'a>,
    /// The output's zero point.
    pub y_zero_point: i32,
    /// The smallest output value: 0, or `y_zero_point` for a fused ReLU.
    pub y_min: i32,
}

/// The float bias expressed in accumulator units, as FBGEMM adds it (docs/numerics.md §3.1), into
/// `out` (as long as `bias`).
///
/// Per tensor (`per_channel == false`, one `act_times_w` for every column) the bias is multiplied
/// by the reciprocal `f32(1.0 / (double)act_times_w)`; per channel it is divided by
/// `act_times_w[n]` in float32. The two can differ in the last bit.
pub fn bias_in_accumulator_units(bias: &[f32], act_times_w: &[f32], per_channel: bool, out: &mut [f32]) {
    if per_channel {
        for ((o, &b), &s) in out.iter_mut().zip(bias).zip(act_times_w) {
            *o = b / s;
        }
    } else {
        let reciprocal = act_times_w.first().map_or(0.0, |&s| (1.0f64 / s as f64) as f32);
        for (o, &b) in out.iter_mut().zip(bias) {
            *o = b * reciprocal;
        }
    }
}

/// One output value: `clamp(rne(xf * multiplier) + y_zero_point, y_min, 255)` with
/// `xf = f32((float)corr + bias)`.
///
/// The rounded value is converted with saturation (NaN becomes 0) before the zero point is added,
/// so results far outside the range clamp to its ends.
#[inline]
pub fn requantize_value(corr: i32, multiplier: f32, bias: Option<f32>, y_zero_point: i32, y_min: i32) -> u8 {
    let xf = match bias {
        Some(b) => corr as f32 + b,
        None => corr as f32,
    };
    let rounded = round_ties_even(xf * multiplier) as i64;
    rounded.saturating_add(y_zero_point as i64).clamp(y_min as i64, 255) as u8
}

/// `v.round_ties_even()` (up to the sign of a zero), without the call to `roundevenf` that the
/// baseline x86-64 target makes of it: below 2^22 in magnitude, `v + 1.5 * 2^23` lands where
/// float32's spacing is 1, so the addition itself rounds `v` to the nearest integer, ties to even
/// (the constant is even), and subtracting it back is exact. Other values (and NaN) take
/// `round_ties_even`.
#[inline]
fn round_ties_even(v: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23
    if v.abs() < 4_194_304.0 {
        (v + SHIFT) - SHIFT
    } else {
        v.round_ties_even()
    }
}

/// The epilogue over `rows` rows of `n` accumulators: `acc[r*n + j]` -> `out[r*n + j]`, with
/// `row_sums[r] = Σ_k a[r, k]` (the raw uint8 sum of input row `r`).
pub fn requantize(acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]) {
    let t = &params.terms;
    for (acc_row, row_sum, out_row) in t.rows(acc, row_sums, out) {
        for (j, (q, &acc)) in out_row.iter_mut().zip(acc_row).enumerate() {
            let corr = t.correct(acc, row_sum, j);
            *q = requantize_value(corr, t.multipliers[j], t.bias_of(j), params.y_zero_point, params.y_min);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tensor_bias_uses_the_double_reciprocal_and_per_channel_divides() {
        // act_times_w = 0.1f: 1.0 / 0.1f in double is 9.99999985..., which rounds to 10.0f;
        // 0.61f * 10 rounds to 6.1000004, while 0.61f / 0.1f rounds to 6.1.
        let atw = [0.1f32];
        let in_units = |per_channel| {
            let mut out = [0f32];
            bias_in_accumulator_units(&[0.61], &atw, per_channel, &mut out);
            out[0]
        };
        assert_eq!(in_units(false), 6.100_000_4f32);
        assert_eq!(in_units(true), 6.1f32);
        assert_ne!(6.100_000_4f32, 6.1f32);
    }

    #[test]
    fn rounding_is_half_to_even_and_the_zero_point_is_added_after() {
        // 5 * 0.5 = 2.5 -> 2, then + 10.
        assert_eq!(requantize_value(5, 0.5, None, 10, 0), 12);
        // 7 * 0.5 = 3.5 -> 4.
        assert_eq!(requantize_value(7, 0.5, None, 10, 0), 14);
        // -5 * 0.5 = -2.5 -> -2.
        assert_eq!(requantize_value(-5, 0.5, None, 10, 0), 8);
        // The bias is added to the accumulator before the multiplier: (3 + 2) * 0.5 = 2.5 -> 2.
        assert_eq!(requantize_value(3, 0.5, Some(2.0), 0, 0), 2);
    }

    #[test]
    fn the_shifted_rounding_equals_round_ties_even() {
        let ties = (-40..40).map(|i| i as f32 + 0.5);
        let edges = [4_194_303.5f32, -4_194_303.5, 4_194_304.0, 4_194_304.5, 8_388_607.5, 1e10, -1e10, 0.0, -0.0, 0.49999997];
        let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, f32::MIN_POSITIVE, f32::NAN];
        let spread = (0..200_000u32).map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)));
        for v in ties.chain(edges).chain(specials).chain(spread) {
            let (got, want) = (round_ties_even(v), v.round_ties_even());
            assert!(got.to_bits() == want.to_bits() || (got == 0.0 && want == 0.0) || (got.is_nan() && want.is_nan()), "{v:e}: {got:e} vs {want:e}");
        }
    }

    #[test]
    fn results_clamp_to_the_range_and_relu_raises_the_floor() {
        assert_eq!(requantize_value(1000, 1.0, None, 0, 0), 255);
        assert_eq!(requantize_value(-1000, 1.0, None, 0, 0), 0);
        assert_eq!(requantize_value(i32::MAX, 1e30, None, 0, 0), 255);
        assert_eq!(requantize_value(i32::MIN, 1e30, None, 255, 0), 0);
        // ReLU: anything below the zero point becomes the zero point.
        assert_eq!(requantize_value(-3, 1.0, None, 100, 100), 100);
        assert_eq!(requantize_value(3, 1.0, None, 100, 100), 103);
    }

    #[test]
    fn zero_points_are_compensated_exactly() {
        // x = [3, 5] with x_zp 2, W row [4, -6] with w_zp 1:
        // Σ (x - 2)(w - 1) = 1*3 + 3*(-7) = -18.
        let (x, w) = ([3i32, 5], [4i32, -6]);
        let acc = x[0] * w[0] + x[1] * w[1];
        let row_sum = x[0] + x[1];
        let col_offsets = [w[0] + w[1] - 2];
        let terms = Epilogue { x_zero_point: 2, col_offsets: &col_offsets, w_zero_points: &[1], multipliers: &[1.0], bias: None };
        let params = Requantize { terms, y_zero_point: 100, y_min: 0 };
        let mut out = [0u8];
        requantize(&[acc], &[row_sum], &params, &mut out);
        assert_eq!(out, [82]);
    }
}
