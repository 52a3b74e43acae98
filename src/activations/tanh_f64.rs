//! `tanh` of a float32, computed in float64 by a fixed sequence of IEEE operations and rounded
//! once to float32. The sequence is simple enough to run lane for lane in SIMD registers
//! (`super::x86`), so that every instruction-set path gives the same bits. It is accurate to a
//! few float64 ulps, and its float32 result equals `(x as f64).tanh() as f32` (glibc's libm) on
//! every float32 input: all 2^32 are compared by the ignored test
//! `kernels::vector_math::tests::exhaustive_tanh_equals_libm_on_every_float32` (a dense sample in
//! the tests below). The AVX-512 paths try a cheaper evaluation first and fall back to this one
//! wherever its rounding could differ (`kernels/vector_math/tanh_fast.rs`).
//!
//! Algorithm, for `a = min(|x|, 16)` and `y = -2a`:
//! 1. `k = rint(y / ln 2)` by the `1.5 * 2^52` shift trick (one FMA on `a` with the exact
//!    constant `-2 / ln 2`), and the Cody-Waite reduction `r = y - k ln 2` with fdlibm's two-part
//!    `ln 2` (exact first step, one rounding in the second), so `|r| <= ln(2) / 2`;
//! 2. `p = expm1(r) = r + r^2 Q(r)`, `Q` the Taylor polynomial of degree 11 (terms up to
//!    `r^13 / 13!`, truncation below `2^-56` relatively), by Estrin's scheme with FMAs;
//! 3. with `u = expm1(y) = 2^k p + (2^k - 1)`, `tanh(a) = -u / (2 + u)`, numerator and
//!    denominator each one FMA: `(1 - 2^k) - 2^k p` and `(1 + 2^k) + 2^k p` (`1 -+ 2^k` are exact
//!    for `k >= -52`);
//! 4. the sign of `x` copied onto the float32 result.
//!
//! Beyond 16, `tanh` rounds to 1 long before float32 can tell (from about 9.01 on); NaN is
//! returned unchanged.

/// Above this `|x|` the result is exactly 1 in float32; clamping keeps `2^k` a normal number.
pub(crate) const CLAMP: f64 = 16.0;
/// `1 / ln 2` rounded to float64.
pub(crate) const INV_LN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
/// `1.5 * 2^52`: adding it rounds a float64 of magnitude below `2^51` to an integer, which then
/// sits in the low bits of the sum's representation.
pub(crate) const SHIFT: f64 = f64::from_bits(0x4338_0000_0000_0000);
/// The high part of `ln 2` (fdlibm's `ln2_hi`, 32 significant bits: `k * LN2_HI` is exact).
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// The low part of `ln 2` (fdlibm's `ln2_lo`).
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1/13!, 1/12!, ..., 1/2!` rounded to float64: `Q(r) = Σ r^(n-2) / n!`, highest degree first.
pub(crate) const TAYLOR: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// `tanh(x)`, computed in float64 by the algorithm above and rounded once.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = (x as f64).abs().min(CLAMP);
    let shifted = a.mul_add(-2.0 * INV_LN2, SHIFT);
    let k = shifted - SHIFT;
    let r = k.mul_add(-LN2_HI, -2.0 * a);
    let r = k.mul_add(-LN2_LO, r);
    let p = expm1_reduced(r);
    // `shifted`'s low bits hold `k` (in -46..=0): `(k + 1023) << 52` is the representation of 2^k.
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    let t = (-scale).mul_add(p, 1.0 - scale) / scale.mul_add(p, 1.0 + scale);
    (t as f32).copysign(x)
}

/// `expm1(r) = r + r^2 Q(r)` for `|r| <= ln(2) / 2`, `Q` by Estrin's scheme: coefficient pairs
/// `c[i] + c[i + 1] r`, combined with `r^2`, `r^4` and `r^8`.
#[inline(always)]
fn expm1_reduced(r: f64) -> f64 {
    let c = |i: usize| TAYLOR[11 - i];
    let pair = |i: usize| c(i + 1).mul_add(r, c(i));
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = pair(2).mul_add(r2, pair(0));
    let q1 = pair(6).mul_add(r2, pair(4));
    let q2 = pair(10).mul_add(r2, pair(8));
    let q = q2.mul_add(r8, q1.mul_add(r4, q0));
    r2.mul_add(q, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(INV_LN2, 1.0 / std::f64::consts::LN_2);
        assert_eq!(SHIFT, 1.5 * 2f64.powi(52));
        assert!(((LN2_HI + LN2_LO) - std::f64::consts::LN_2).abs() < 1e-18);
        assert_eq!(LN2_HI.to_bits() & 0x1f_ffff, 0, "k * LN2_HI must be exact");
        let mut factorial = 1.0f64;
        for n in 2..=13 {
            factorial *= n as f64;
            assert_eq!(TAYLOR[13 - n], 1.0 / factorial, "1/{n}!");
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(tanh(0.0).to_bits(), 0);
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(9.5), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        let tiny = f32::from_bits(1);
        assert_eq!(tanh(tiny), tiny);
        assert_eq!(tanh(-1e-20), -1e-20);
    }

    #[test]
    fn equals_libm_rounded_once_on_a_dense_sample() {
        // Every 97th float32 from 2^-14 to 10 (both signs): about 2.4 million values.
        let (lo, hi) = (2f32.powi(-14).to_bits(), 10f32.to_bits());
        let mut differ = 0;
        for bits in (lo..hi).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                differ += (tanh(x) != (x as f64).tanh() as f32) as u32;
            }
        }
        assert_eq!(differ, 0);
    }
}
