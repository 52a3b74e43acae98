//! Quantization primitives with PyTorch's (FBGEMM's) exact numerics: docs/numerics.md §1.1 and §1.2.
//!
//! Everything here is scalar and small; the kernels in `kernels/` must agree with it bit for bit.

use crate::error::{Error, Result};

/// The smallest scale PyTorch lets a dynamic activation have (the smallest normal fp16).
pub const SMALL_SCALE_THRESHOLD: f32 = 6.1e-5;

/// Affine quantization parameters: `real = scale * (q - zero_point)`.
///
/// `scale` is kept in double precision, as PyTorch reports it; every consumer uses
/// [`QParams::scale_f32`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f64,
    pub zero_point: i32,
}

impl QParams {
    /// The scale as the kernels use it: cast to float32.
    pub fn scale_f32(&self) -> f32 {
        self.scale as f32
    }

    /// The reciprocal used to quantize: `1.0f / (float)scale`, in float32 (not a division per element).
    pub fn inv_scale_f32(&self) -> f32 {
        1.0f32 / self.scale_f32()
    }
}

/// Checks int8 weight qparams and a float bias as a layer stores them: every scale a positive
/// normal float32 (so that its reciprocal is finite too), every zero point in the int8 range, the
/// bias finite. Anything else has no meaningful quantized value.
pub fn check_weight_qparams(scales: &[f32], zero_points: &[i32], bias: Option<&[f32]>) -> Result<()> {
    if let Some(&bad) = scales.iter().find(|s| !(s.is_normal() && **s > 0.0)) {
        return Err(Error::Value(format!("weight scales must be positive, finite and normal in float32, got {bad:e}")));
    }
    if let Some(&bad) = zero_points.iter().find(|z| !(-128..=127).contains(*z)) {
        return Err(Error::Value(format!("weight zero points must lie in [-128, 127] (qint8), got {bad}")));
    }
    check_bias(bias)
}

/// A bias must be finite: NaN or infinity would reach every output of its feature.
pub fn check_bias(bias: Option<&[f32]>) -> Result<()> {
    match bias.and_then(|b| b.iter().find(|v| !v.is_finite())) {
        Some(bad) => Err(Error::Value(format!("bias must be finite, got {bad}"))),
        None => Ok(()),
    }
}

/// PyTorch's `quant_utils::ChooseQuantizationParams` (docs/numerics.md §1.2), without sparsity preservation
/// or power-of-two scales, which the modules here never ask for.
///
/// `min`/`max` are the observed range, `qmin..=qmax` the storage range (0..=255 for quint8),
/// halved first when `reduce_range`. Fails when `min > max` or either is NaN.
pub fn choose_qparams(min: f32, max: f32, qmin: i32, qmax: i32, reduce_range: bool) -> Result<QParams> {
    // NaN is rejected too, as PyTorch does when it sits at index 0.
    if min.is_nan() || max.is_nan() || min > max {
        return Err(Error::Value(format!(
            "cannot choose quantization parameters: min ({min}) must be less than or equal to max ({max})"
        )));
    }
    let (qmin, qmax) = if reduce_range { (qmin / 2, qmax / 2) } else { (qmin, qmax) };
    let mut min = min.min(0.0);
    let mut max = max.max(0.0);
    let levels = (qmax - qmin) as f64;

    let mut scale = (max as f64 - min as f64) / levels;
    if scale as f32 == 0.0 || (1.0f32 / scale as f32).is_infinite() {
        scale = 0.1;
    }
    if (scale as f32) < SMALL_SCALE_THRESHOLD {
        let original = scale as f32;
        scale = SMALL_SCALE_THRESHOLD as f64;
        if min == 0.0 {
            max = SMALL_SCALE_THRESHOLD * (qmax - qmin) as f32;
        } else if max == 0.0 {
            min = -SMALL_SCALE_THRESHOLD * (qmax - qmin) as f32;
        } else {
            let amplifier = SMALL_SCALE_THRESHOLD / original;
            min *= amplifier;
            max *= amplifier;
        }
    }

    let zero_point_from_min = qmin as f64 - min as f64 / scale;
    let zero_point_from_max = qmax as f64 - max as f64 / scale;
    let error_from_min = (qmin as f64).abs() - (min as f64 / scale).abs();
    let error_from_max = (qmax as f64).abs() - (max as f64 / scale).abs();
    let initial = if error_from_min < error_from_max { zero_point_from_min } else { zero_point_from_max };
    let zero_point = if initial < qmin as f64 {
        qmin
    } else if initial > qmax as f64 {
        qmax
    } else {
        initial.round_ties_even() as i32
    };
    Ok(QParams { scale, zero_point })
}

/// Quantizes one value (docs/numerics.md §1.1): `clamp(rne(x * inv_scale) + zero_point, qmin, qmax)`.
///
/// The product is a float32 multiply by the float32 reciprocal, the zero point is added after
/// rounding. Infinities clamp to the range ends; callers reject NaN before quantizing.
#[inline]
pub fn quantize_value(x: f32, inv_scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    let rounded = (x * inv_scale).round_ties_even();
    (rounded + zero_point as f32).clamp(qmin as f32, qmax as f32) as i32
}

/// The zero-point-corrected product (docs/numerics.md §1.3): `acc - x_zp * col_offset - row_sum * w_zp`
/// in wrapping int32, where `col_offset = Σ_k W[n,k] - w_zp * K` and `row_sum = Σ_k X[m,k]`;
/// mathematically `Σ_k (X[m,k] - x_zp) * (W[n,k] - w_zp)`.
#[inline]
pub fn correct_accumulator(acc: i32, x_zero_point: i32, col_offset: i32, row_sum: i32, w_zero_point: i32) -> i32 {
    acc.wrapping_sub(x_zero_point.wrapping_mul(col_offset)).wrapping_sub(row_sum.wrapping_mul(w_zero_point))
}

/// Dequantizes an int32 accumulator and adds the bias (docs/numerics.md §2.2):
/// `fma((float)acc, multiplier, bias)`, one rounding; without bias, a plain float32 product.
#[inline]
pub fn dequantize_accumulator(acc: i32, multiplier: f32, bias: Option<f32>) -> f32 {
    match bias {
        Some(b) => (acc as f32).mul_add(multiplier, b),
        None => acc as f32 * multiplier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // the constants as FBGEMM's documentation writes them
    fn multiplying_by_the_reciprocal_rounds_like_fbgemm() {
        // FBGEMM's documented case: the product gives 127.5 (-> 128), the quotient 127.499992 (-> 127).
        let scale = 0.00214854861f32;
        let x = 0.273939937f32;
        let inv = 1.0f32 / scale;
        assert_eq!(x * inv, 127.5);
        assert_eq!(quantize_value(x, inv, 0, 0, 255), 128);
        assert_eq!((x / scale).round_ties_even(), 127.0);
    }

    #[test]
    fn rounding_is_half_to_even_before_the_zero_point() {
        assert_eq!(quantize_value(0.5, 1.0, 0, 0, 255), 0);
        assert_eq!(quantize_value(1.5, 1.0, 0, 0, 255), 2);
        assert_eq!(quantize_value(2.5, 1.0, 0, 0, 255), 2);
        // zero point added after rounding: 2.5 -> 2, +1 = 3 (adding first would give rne(3.5) = 4).
        assert_eq!(quantize_value(2.5, 1.0, 1, 0, 255), 3);
        assert_eq!(quantize_value(-0.5, 1.0, 10, 0, 255), 10);
    }

    #[test]
    fn quantize_clamps_to_the_storage_range() {
        assert_eq!(quantize_value(1e30, 1.0, 0, 0, 255), 255);
        assert_eq!(quantize_value(-1e30, 1.0, 0, 0, 255), 0);
        assert_eq!(quantize_value(f32::INFINITY, 1.0, 0, -128, 127), 127);
        assert_eq!(quantize_value(f32::NEG_INFINITY, 1.0, 0, -128, 127), -128);
    }

    #[test]
    fn all_zero_input_gets_scale_point_one() {
        let q = choose_qparams(0.0, 0.0, 0, 255, true).unwrap();
        assert_eq!(q, QParams { scale: 0.1, zero_point: 0 });
    }

    #[test]
    fn constant_input_gets_exact_scale_and_end_zero_point() {
        let q = choose_qparams(2.0, 2.0, 0, 255, true).unwrap();
        assert_eq!(q.scale, 2.0f64 / 127.0);
        assert_eq!(q.zero_point, 0);
        let q = choose_qparams(-2.0, -2.0, 0, 255, true).unwrap();
        assert_eq!(q.scale, 2.0f64 / 127.0);
        assert_eq!(q.zero_point, 127);
    }

    #[test]
    fn reduce_range_halves_the_levels() {
        let full = choose_qparams(-1.0, 3.0, 0, 255, false).unwrap();
        let reduced = choose_qparams(-1.0, 3.0, 0, 255, true).unwrap();
        assert_eq!(full.scale, 4.0 / 255.0);
        assert_eq!(reduced.scale, 4.0 / 127.0);
        // The zero point is -min/scale rounded: 63.75 -> 64 and 31.75 -> 32.
        assert_eq!(full.zero_point, 64);
        assert_eq!(reduced.zero_point, 32);
    }

    #[test]
    fn tiny_ranges_are_widened_to_the_small_scale_threshold() {
        let q = choose_qparams(0.0, 1e-9, 0, 255, true).unwrap();
        assert_eq!(q.scale, SMALL_SCALE_THRESHOLD as f64);
        assert_eq!(q.zero_point, 0);
        let q = choose_qparams(-1e-9, 0.0, 0, 255, true).unwrap();
        assert_eq!(q.scale, SMALL_SCALE_THRESHOLD as f64);
        assert_eq!(q.zero_point, 127);
        // Both signs: min and max are amplified by 6.1e-5 / original, so the zero point keeps its
        // place in the range: a quarter of 127 levels below zero -> 31.75 -> 32.
        let q = choose_qparams(-1e-6, 3e-6, 0, 255, true).unwrap();
        assert_eq!(q.scale, SMALL_SCALE_THRESHOLD as f64);
        assert_eq!(q.zero_point, 32);
    }

    #[test]
    fn huge_ranges_are_fine() {
        let q = choose_qparams(-1e30, 1e30, 0, 255, true).unwrap();
        assert_eq!(q.scale, 2e30f32 as f64 / 127.0);
        assert!(q.scale.is_finite());
    }

    #[test]
    fn nan_or_inverted_ranges_are_rejected() {
        assert!(matches!(choose_qparams(1.0, 0.0, 0, 255, true), Err(Error::Value(_))));
        assert!(matches!(choose_qparams(f32::NAN, 0.0, 0, 255, true), Err(Error::Value(_))));
    }

    #[test]
    fn dequantize_uses_a_single_rounding() {
        // (float)acc * m rounds, then + b rounds again; the fused form rounds once.
        let acc = 3;
        let m = 1.0f32 + f32::EPSILON;
        let b = -3.0f32;
        let fused = dequantize_accumulator(acc, m, Some(b));
        assert_eq!(fused, 3.0 * f32::EPSILON);
        assert_eq!(dequantize_accumulator(acc, 2.0, None), 6.0);
    }
}
