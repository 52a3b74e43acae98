//! `expf` as glibc (2.27 and later) computes it on x86-64 CPUs with FMA, where the `ifunc`
//! resolver picks the variant compiled with `-mfma`: PyTorch's scalar kernels call it through
//! `std::exp(float)`.
//!
//! Algorithm (ported from glibc's `sysdeps/ieee754/flt-32/e_expf.c` and its data table
//! `e_exp2f_data.c`, originally ARM's optimized-routines): in double precision,
//! `x * 32/ln 2 = k + r` with `k` an integer (rounded half to even by adding and subtracting
//! `1.5 * 2^52`) and `|r| <= 1/2`; `e^x = 2^(k/32) * 2^(r/32)`, with `2^(k/32)` from a 32-entry
//! table of `2^(i/32)` whose exponent field absorbs `k / 32`, and `2^(r/32)` from a cubic
//! polynomial; one final rounding to float. The compiler contracts `a*b + c` into FMAs in that
//! build, which changes a few results in the last place; that contraction is reproduced here.

/// `tab[i] = bits(2^(i/32)) - (i << 47)`: adding `k << 47` to entry `k % 32` gives `2^(k/32)`.
pub(crate) const TAB: [u64; 32] = [
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
];
/// Table size exponent: 32 entries.
const TABLE_BITS: u32 = 5;
/// `32 / ln 2` (`0x1.71547652b82fep+0 * 32`).
pub(crate) const INV_LN2_N: f64 = f64::from_bits(0x4047_1547_652b_82fe);
/// `1.5 * 2^52`: adding it rounds a double of magnitude below 2^51 to an integer.
pub(crate) const SHIFT: f64 = f64::from_bits(0x4338_0000_0000_0000);
/// Polynomial for `2^(r/32)`, scaled for `r` in table units: `0x1.c6af84b912394p-5 / 32^3`,
/// `0x1.ebfce50fac4f3p-3 / 32^2`, `0x1.62e42ff0c52d6p-1 / 32`.
pub(crate) const C: [f64; 3] = [
    f64::from_bits(0x3ebc_6af8_4b91_2394),
    f64::from_bits(0x3f2e_bfce_50fa_c4f3),
    f64::from_bits(0x3f96_2e42_ff0c_52d6),
];
/// Above `0x1.62e42ep6` (about 88.72, `log(2^128)`) the result overflows.
pub(crate) const OVERFLOW_ABOVE: f32 = f32::from_bits(0x42b1_7217);
/// Below `-0x1.9fe368p6` (about -103.97, `log(2^-150)`) the result underflows to 0.
pub(crate) const UNDERFLOW_BELOW: f32 = f32::from_bits(0xc2cf_f1b4);
/// Below `-0x1.9d1d9ep6` (about -103.28, `log(2^-149)`) glibc returns the smallest subnormal,
/// `0x1.4p-75f * 0x1.4p-75f`, after setting `errno`.
pub(crate) const MAY_UNDERFLOW_BELOW: f32 = f32::from_bits(0xc2ce_8ecf);

/// The top 12 bits of a float's representation (sign and exponent, 3 bits of mantissa).
fn top12(x: f32) -> u32 {
    x.to_bits() >> 20
}

/// `e^x` exactly as glibc's `expf` (FMA build) returns it, special cases included.
pub fn expf(x: f32) -> f32 {
    let abstop = top12(x) & 0x7ff;
    if abstop >= top12(88.0) {
        // |x| >= 88, or x is inf or NaN.
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if abstop >= top12(f32::INFINITY) {
            return x + x;
        }
        if x > OVERFLOW_ABOVE {
            return f32::INFINITY;
        }
        if x < UNDERFLOW_BELOW {
            return 0.0;
        }
        if x < MAY_UNDERFLOW_BELOW {
            let tiny = f32::from_bits(0x1a20_0000); // 0x1.4p-75
            return tiny * tiny;
        }
    }
    let xd = x as f64;
    // `z = InvLn2N * xd` feeds two additions; the FMA build fuses the product into both.
    let kd = INV_LN2_N.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INV_LN2_N.mul_add(xd, -kd);

    let t = TAB[(ki % (1 << TABLE_BITS)) as usize].wrapping_add(ki << (52 - TABLE_BITS));
    let s = f64::from_bits(t);
    let z = C[0].mul_add(r, C[1]);
    let r2 = r * r;
    let y = C[2].mul_add(r, 1.0);
    let y = z.mul_add(r2, y);
    (y * s) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_have_the_documented_values() {
        assert_eq!(INV_LN2_N, 32.0 / std::f64::consts::LN_2);
        assert_eq!(SHIFT, 1.5 * 2f64.powi(52));
        // A minimax fit of 2^(r/32): close to the Taylor coefficients ln2^j / j!, scaled.
        let ln2 = std::f64::consts::LN_2;
        let taylor = [ln2.powi(3) / 6.0 / 32768.0, ln2.powi(2) / 2.0 / 1024.0, ln2 / 32.0];
        for (c, t) in C.iter().zip(taylor) {
            assert!((c / t - 1.0).abs() < 1e-4, "{c} vs {t}");
        }
        for (i, &bits) in TAB.iter().enumerate() {
            let entry = f64::from_bits(bits + ((i as u64) << 47));
            assert!((entry - 2f64.powf(i as f64 / 32.0)).abs() < 1e-15, "entry {i}");
        }
        assert!((OVERFLOW_ABOVE as f64 - 128.0 * std::f64::consts::LN_2).abs() < 1e-5);
        assert!((UNDERFLOW_BELOW as f64 + 150.0 * std::f64::consts::LN_2).abs() < 1e-5);
        assert!((MAY_UNDERFLOW_BELOW as f64 + 149.0 * std::f64::consts::LN_2).abs() < 1e-5);
    }

    #[test]
    fn special_cases() {
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(-0.0), 1.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(f32::INFINITY), f32::INFINITY);
        assert!(expf(f32::NAN).is_nan());
        assert_eq!(expf(89.0), f32::INFINITY);
        assert_eq!(expf(-104.0), 0.0);
        assert_eq!(expf(-103.5), f32::from_bits(1));
        // Just inside the range: the largest finite result and a subnormal one.
        assert!(expf(OVERFLOW_ABOVE).is_finite());
        assert!(expf(-100.0) > 0.0 && expf(-100.0) < f32::MIN_POSITIVE);
    }

    #[test]
    fn fma_contraction_is_reproduced() {
        // This port equals glibc 2.36's expf on an x86-64 CPU with FMA for every finite float
        // (all 4.28e9 compared once, outside the test suite). The build without FMA differs
        // from it on exactly these two inputs, which pin the contraction down.
        assert_eq!(expf(f32::from_bits(0x4202_422f)).to_bits(), 0x56fc_9f1c);
        assert_eq!(expf(f32::from_bits(0xc27c_65d9)).to_bits(), 0x11fa_2993);
    }

    #[test]
    fn correctly_rounded_almost_everywhere() {
        // glibc documents 0.502 ulp: compare with the double-precision value rounded once.
        let (mut total, mut exact) = (0u32, 0u32);
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = expf(x);
            let want = (x as f64).exp() as f32;
            total += 1;
            if got == want {
                exact += 1;
            } else {
                assert_eq!(got.to_bits().abs_diff(want.to_bits()), 1, "x={x}");
            }
            x += 0.0013;
        }
        assert!(exact as f64 / total as f64 > 0.999, "{exact}/{total}");
    }
}
