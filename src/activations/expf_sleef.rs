//! `exp` as SLEEF's `expf_u10` computes it in one lane of its FMA builds (AVX2, AVX-512), which
//! is what PyTorch's vectorized CPU kernels call through `Vectorized<float>::exp()`.
//!
//! Algorithm (ported from SLEEF's `xexpf`, `src/libm/sleefsimdsp.c`): `q = rint(d / ln 2)` by
//! multiplying with `1/ln 2` in float32; Cody-Waite reduction `s = d - q ln 2` with a two-part
//! `ln 2` and one FMA per part; a degree-5 polynomial by Horner's rule with FMAs;
//! `1 + fma(s*s, u, s)`; scaling by `2^q` as two multiplications by `2^(q>>1)` and
//! `2^(q - (q>>1))`. Inputs below -104 give +0, above 100 give +inf.

/// `1/ln 2` rounded to float32 (SLEEF's `R_LN2f`).
pub(crate) const R_LN2: f32 = std::f32::consts::LOG2_E;
/// The high part of `ln 2`, 0.693145751953125 (`L2Uf`): few enough bits that `q * L2U` is exact.
pub(crate) const L2U: f32 = f32::from_bits(0x3f31_7200);
/// The low part of `ln 2`, 1.428606765330187045e-6 (`L2Lf`).
pub(crate) const L2L: f32 = f32::from_bits(0x35bf_be8e);

/// SLEEF's polynomial coefficients, highest degree first: 0.000198527617612853646278381,
/// 0.00139304355252534151077271, 0.00833336077630519866943359, 0.0416664853692054748535156,
/// 0.166666671633720397949219 and 0.5, each rounded to float32.
pub(crate) const POLY: [f32; 6] = [
    f32::from_bits(0x3950_2bda),
    f32::from_bits(0x3ab6_96c9),
    f32::from_bits(0x3c08_88a6),
    f32::from_bits(0x3d2a_aa7a),
    f32::from_bits(0x3e2a_aaab),
    0.5,
];

/// `e^d` exactly as one lane of `Sleef_expf16_u10` (FMA variant) returns it.
pub fn expf_u10(d: f32) -> f32 {
    let q = round_to_i32(d * R_LN2);
    let qf = q as f32;
    let s = qf.mul_add(-L2U, d);
    let s = qf.mul_add(-L2L, s);

    let mut u = POLY[0];
    for &c in &POLY[1..] {
        u = u.mul_add(s, c);
    }
    let u = 1.0 + (s * s).mul_add(u, s);
    let u = u * pow2i(q >> 1) * pow2i(q - (q >> 1));

    if d < -104.0 {
        0.0
    } else if 100.0 < d {
        f32::INFINITY
    } else {
        u
    }
}

/// `cvtps2dq` in the default rounding mode: round half to even; NaN and out-of-range values
/// give `i32::MIN` (the "integer indefinite" value).
fn round_to_i32(x: f32) -> i32 {
    let r = x.round_ties_even();
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// `2^q` built from its exponent bits (SLEEF's `vpow2i_vf_vi2`); meaningful for `-126 <= q <= 127`,
/// and only ever used there for inputs that survive the range checks.
fn pow2i(q: i32) -> f32 {
    f32::from_bits((q.wrapping_add(0x7f) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_the_float32_values_sleef_uses() {
        assert_eq!(R_LN2, (1.0f64 / std::f64::consts::LN_2) as f32);
        assert_eq!(L2U, 0.693_145_75);
        assert_eq!(L2L, 1.428_606_8e-6);
        assert_eq!(POLY[..5], [1.985_276_2e-4, 1.393_043_6e-3, 8.333_361e-3, 4.166_648_5e-2, 0.166_666_67]);
        // L2U + L2L is ln 2 to about 2^-40, and L2U has 16 significant bits (exact products).
        assert!(((L2U as f64 + L2L as f64) - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(L2U.to_bits() & 0xff, 0);
    }

    #[test]
    fn exact_points() {
        assert_eq!(expf_u10(0.0), 1.0);
        assert_eq!(expf_u10(-0.0), 1.0);
        assert_eq!(expf_u10(-104.5), 0.0);
        assert_eq!(expf_u10(-1e30), 0.0);
        assert_eq!(expf_u10(100.5), f32::INFINITY);
        assert_eq!(expf_u10(f32::INFINITY), f32::INFINITY);
        assert_eq!(expf_u10(f32::NEG_INFINITY), 0.0);
        assert!(expf_u10(f32::NAN).is_nan());
    }

    #[test]
    fn within_one_ulp_of_the_true_value_in_the_normal_range() {
        // SLEEF documents expf_u10 as accurate to 1.0 ulp.
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = expf_u10(x) as f64;
            let want = (x as f64).exp();
            let ulp = f32::EPSILON as f64 * 2f64.powi(want.log2().floor() as i32);
            assert!((got - want).abs() <= ulp, "x={x}: {got} vs {want}");
            x += 0.0137;
        }
    }

    #[test]
    fn overflowing_range_is_infinite_and_subnormal_range_is_graded() {
        // Between 88.73 and 100 the two-step scaling overflows to inf like the true value.
        assert_eq!(expf_u10(90.0), f32::INFINITY);
        // Around -100 the result is subnormal, still of the right size.
        let tiny = expf_u10(-100.0) as f64;
        assert!(tiny > 0.0 && (tiny / (-100.0f64).exp() - 1.0).abs() < 0.05);
    }
}
