//! Sigmoid and tanh with the numerics of PyTorch's x86 CPU kernels (docs/numerics.md §5), so that the
//! recurrent layers reproduce PyTorch bit for bit.
//!
//! PyTorch computes `sigmoid_` with `cpu_kernel_vec` over each contiguous row of the tensor it is
//! given: in a `(batch, 4 * hidden)` gate matrix chunked per gate, one row is one gate of one batch
//! element (`hidden` values). The vectorized loop handles two 16-lane AVX-512 vectors per step, so
//! the first `floor(n / 32) * 32` values of a row of `n` go through `1 / (1 + exp(0 - x))` with
//! SLEEF's `expf_u10`, and the remaining `n % 32` through the scalar `1 / (1 + exp(-x))` with
//! glibc's `expf`. [`sigmoid_row`] reproduces that split; callers must hand it exactly the rows
//! PyTorch's kernel would see.
//!
//! PyTorch's `tanh` on this build is MKL's `vsTanh` (closed source). [`tanh`] computes it in
//! double precision and rounds once (by its own fixed algorithm, equal to libm's `tanh` rounded
//! to float on every float32 input), which is the correctly rounded value except in rare cases
//! and matches MKL on 99.9% of values (docs/numerics.md §5.2); the rare one-ulp differences are measured by
//! the golden tests.
//!
//! `crate::kernels` holds the same functions over SIMD registers (`vector_math.rs`), bit for bit
//! equal to these.

pub(crate) mod expf_glibc;
pub(crate) mod expf_sleef;
pub(crate) mod tanh_f64;

pub use expf_glibc::expf as glibc_expf;
pub use expf_sleef::expf_u10 as sleef_expf_u10;
pub use tanh_f64::tanh;

/// Values per step of PyTorch's vectorized loop: two 16-lane AVX-512 float vectors.
pub const VECTOR_STEP: usize = 32;

/// In-place logistic sigmoid of one contiguous row, as PyTorch's x86 kernel computes it.
pub fn sigmoid_row(row: &mut [f32]) {
    let split = row.len() / VECTOR_STEP * VECTOR_STEP;
    let (vectorized, tail) = row.split_at_mut(split);
    for v in vectorized {
        *v = 1.0 / (sleef_expf_u10(0.0 - *v) + 1.0);
    }
    for v in tail {
        *v = 1.0 / (1.0 + glibc_expf(-*v));
    }
}

/// In-place [`tanh`] of a slice (element-wise: no row structure matters).
pub fn tanh_row(row: &mut [f32]) {
    for v in row {
        *v = tanh(*v);
    }
}

/// `max(x, 0)` as PyTorch's `relu` (`clamp_min(x, 0)`) computes it: `-0.0` and NaN pass through.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid_f64(x: f32) -> f64 {
        1.0 / (1.0 + (-(x as f64)).exp())
    }

    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn sigmoid_of_zero_is_one_half_in_both_paths() {
        let mut row = [0.0f32; 33];
        sigmoid_row(&mut row);
        assert!(row.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn sigmoid_is_within_its_error_budget_of_the_exact_value_and_symmetric() {
        // exp is within 1 ulp (relative 2^-23), and `1 + e` and the reciprocal each round once
        // (2^-24 each): the result is within a relative 2^-22 of the exact sigmoid.
        let xs: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) * 0.0071).collect();
        for chunk in xs.chunks(64) {
            let mut row = chunk.to_vec();
            sigmoid_row(&mut row);
            for (&x, &s) in chunk.iter().zip(&row) {
                let exact = sigmoid_f64(x);
                assert!(((s as f64 - exact) / exact).abs() <= 2f64.powi(-22), "x={x}: {s} vs {exact}");
            }
        }
        // sigmoid(-x) = 1 - sigmoid(x), up to the rounding of each side.
        for &x in &[0.25f32, 1.0, 3.0, 7.5] {
            let mut pair = [x, -x];
            sigmoid_row(&mut pair);
            assert!((pair[0] as f64 + pair[1] as f64 - 1.0).abs() < 1e-7, "x={x}");
        }
    }

    #[test]
    fn sigmoid_saturates_cleanly_at_extreme_inputs() {
        for n in [3usize, 32] {
            let mut row = vec![200.0f32; n];
            row[0] = -200.0;
            row[1] = f32::INFINITY;
            row[2] = f32::NEG_INFINITY;
            sigmoid_row(&mut row);
            assert_eq!(&row[..3], &[0.0, 1.0, 0.0], "n={n}");
            assert!(row[3..].iter().all(|&v| v == 1.0));
        }
    }

    #[test]
    fn the_row_split_sends_only_full_vector_steps_to_sleef() {
        // Rows shorter than 32 are entirely scalar (glibc); a row of 40 has 32 vector values.
        let x = 1.234_567_8f32;
        let sleef = 1.0 / (sleef_expf_u10(0.0 - x) + 1.0);
        let glibc = 1.0 / (1.0 + glibc_expf(-x));
        let mut short = vec![x; 31];
        sigmoid_row(&mut short);
        assert!(short.iter().all(|&v| v == glibc));
        let mut long = vec![x; 40];
        sigmoid_row(&mut long);
        assert!(long[..32].iter().all(|&v| v == sleef));
        assert!(long[32..].iter().all(|&v| v == glibc));
    }

    #[test]
    fn tanh_is_the_rounded_double_value() {
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(20.0), 1.0);
        assert_eq!(tanh(-20.0), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert!(tanh(f32::NAN).is_nan());
        // Against an independent double-precision formula: equal up to a double rounding.
        for i in -300..300 {
            let x = i as f32 * 0.0173;
            let e = (2.0 * x as f64).exp();
            let reference = ((e - 1.0) / (e + 1.0)) as f32;
            assert_eq!(tanh(x), -tanh(-x));
            assert!(ulps(tanh(x), reference) <= 1, "x={x}");
        }
    }

    #[test]
    fn relu_keeps_negative_zero_and_nan() {
        assert_eq!(relu(-1.5), 0.0);
        assert_eq!(relu(2.5), 2.5);
        assert_eq!(relu(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(relu(f32::NAN).is_nan());
    }
}
