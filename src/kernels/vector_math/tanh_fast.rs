//! The fast path of the vector [`tanh`](super::tanh) on the AVX-512 paths (`avx512vnni`, `amx`;
//! see [`Simd::TANH_FAST_PATH`]): `tanh(a)` in float64 to about `2^-44.5`
//! relative, with no division, and the per-lane check that its rounding to float32 is the rounding
//! of the exact value. When a lane of a vector fails the check, the caller computes the whole
//! vector by the exact algorithm of `tanh_f64.rs` instead, so every result is the bits of the
//! scalar reference (`(x as f64).tanh() as f32`) whichever way it was computed.
//!
//! # Algorithm, for `0 <= a <= 16` (float64 lanes, IEEE operations only)
//! 1. `k = rint(-2a / (ln 2 / 16))` by the `1.5 * 2^52` shift (one FMA), and
//!    `h = a + k (ln 2 / 32)` (one FMA, `ln 2 / 32` rounded: `|h| <= ln(2) / 64`), so that
//!    `e^(-2a) = 2^(k/16) e^(-2h)`;
//! 2. `2^(k/16)` from a 16-entry table of `2^(j/16)` whose exponent field absorbs `k / 16`
//!    (glibc `expf`'s 32-entry table, every other entry: [`TABLE`]);
//! 3. `p = expm1(-2h) = h Q(h)`, `Q` the Taylor polynomial of degree 5 in `h` of
//!    `expm1(-2h) / h` (terms up to `(-2h)^6 / 6!`), by Horner's scheme;
//! 4. `u = e^(-2a) - 1 = 2^(k/16) p + (2^(k/16) - 1)` (one FMA) and `d = 2 + u`, so that
//!    `tanh(a) = -u / d` with `d` in `[1, 2]`;
//! 5. the quotient without a division: a quadratic `y0 ~ -1/d` (the Chebyshev-optimal one: its
//!    residual `e = 1 + d y0` is `T3(2d - 3) / -99`, `|e| <= 1/99`), then
//!    `t = u y0 (1 + e)(1 + e^2)(1 + e^4) = -u (1 - e^8) / d`.
//!
//! # Error bound and check
//! Relative to `tanh(a)`: the Taylor remainder `(ln(2)/32)^6 / 7! (1 + 2^-6) < 2^-45.4` relative
//! to `p`, the table entries' rounding `2^-53`, the reduction's `|k| 2^-59` in `h`, all scaled by at
//! most `2 e^(-2a) / (1 - e^(-4a)) < 46.3` where `k != 0` (`e^(-2a) <= 2^(-1/32)`) and by 1 where
//! `k = 0` (there `u = p` exactly); the quotient's `e^8 <= 99^-8 < 2^-53` and seven roundings of
//! `2^-53`. In all below `2^-44.5`, and glibc's `tanh` is within 2 float64 ulps (`2^-51`).
//!
//! A float64 `t` in `[2^e, 2^(e+1))` with `e >= -126` rounds to float32 by its low 29 mantissa
//! bits `L`; the float32 rounding midpoint sits at `L = 2^28`. [`ambiguous`] flags a lane when
//! `|L - 2^28| <= 2^11` ([`CHECK_ULPS`]): a distance of more than `2^11` float64 ulps is more than
//! `2^-42 t`, so the computed value, the exact `tanh(a)` and glibc's value lie on the same side of
//! the midpoint and round to the same float32. Below `2^-13` (the only range with subnormal
//! results) every one of the three rounds to `a` itself (`tanh(a) = a (1 - a^2/3 + ...)` lies
//! within `2^-27` of `a`). About one lane in `2^17` is flagged, one 32-lane pair of registers in
//! `2^12`.
//!
//! Compared with the exact algorithm this trades the float64 division (`vdivpd`, 16 cycles per
//! 8 lanes on the divider of current x86 cores) and 6 of its 15 polynomial operations for the
//! table read (one `vpermt2q`) and 9 FMA-port operations: the AVX-512 recurrent steps run 9-23%
//! faster on a Sapphire Rapids Xeon. With AVX2 (a 4-lane gather for the table) they ran 0-15%
//! slower, so that path keeps the exact algorithm; NEON too, unmeasured.
//!
//! The exhaustive test (`cargo test --release --no-default-features -- --ignored exhaustive`)
//! compares every path on all 2^31 non-negative float32 inputs and their negations with libm.
//! Its result on the Sapphire Rapids Xeon (scalar, AVX2 and AVX-512 paths, single registers and
//! pairs): every one equal; 12.7 minutes on two threads of a busy shared machine (290 s of CPU).
//! It also found that the fast path alone never rounds differently from libm on any input: the
//! fallback is what makes that a guarantee rather than a measurement (and keeps it for other
//! compilers' and CPUs' glibc), not something the float32 inputs need.

use super::super::simd::Simd;
use crate::activations::{expf_glibc, tanh_f64};

/// `2^(j/16)` rounded, minus `j << 48`: adding `k << 48` to entry `k & 15` gives `2^(k/16)`
/// (entry `2j` of glibc's `2^(i/32)` table, which subtracts `i << 47`).
pub(super) const TABLE: [u64; 16] = {
    let mut table = [0; 16];
    let mut j = 0;
    while j < 16 {
        table[j] = expf_glibc::TAB[2 * j];
        j += 1;
    }
    table
};
/// `-32 / ln 2` (`-2 / (ln 2 / 16)`), rounded.
const NEG_32_INV_LN2: f64 = -32.0 * tanh_f64::INV_LN2;
/// `ln 2 / 32`, rounded.
const LN2_BY_32: f64 = std::f64::consts::LN_2 / 32.0;
/// `(-2)^n / n!` for `n = 6, 5, ..., 1`, rounded: `expm1(-2h) = h Σ EXPM1_NEG_2[6 - n] h^(n-1)`.
pub(super) const EXPM1_NEG_2: [f64; 6] =
    [64.0 / 720.0, -32.0 / 120.0, 16.0 / 24.0, -8.0 / 6.0, 2.0, -2.0];
/// `y0(d) = -(32 d^2 - 144 d + 210) / 99`, highest degree first: `1 + d y0(d) = T3(2d - 3) / -99`.
pub(super) const RECIPROCAL_SEED: [f64; 3] = [-32.0 / 99.0, 144.0 / 99.0, -210.0 / 99.0];
/// Half-width of the flagged band around the float32 rounding midpoint, in float64 ulps.
pub(super) const CHECK_ULPS: i64 = 1 << 11;
/// `(bits + CHECK_ULPS) << 35` is below this exactly when the low 29 bits `L` of `bits` have
/// `|L - 2^28| <= CHECK_ULPS`: the shift leaves `(L + CHECK_ULPS) mod 2^29` in the top 29 bits,
/// which read as a signed number are `i64::MIN` plus at most `2 CHECK_ULPS << 35` exactly then.
const FLAGGED_BELOW: i64 = i64::MIN + ((2 * CHECK_ULPS + 1) << 35);

/// `tanh(a)` for `0 <= a <= 16` (see the module notes): within `2^-44.5 tanh(a)`, and `+-0` for a
/// zero `a`.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
pub(super) fn magnitude<S: Simd>(s: S, a: S::D) -> S::D {
    use tanh_f64::SHIFT;
    let one = s.splat_d(1.0);
    // k = rint(a * -32/ln 2), in `shifted`'s low bits; h = a + k ln2/32
    let shifted = s.fmadd_d(a, s.splat_d(NEG_32_INV_LN2), s.splat_d(SHIFT));
    let k = s.sub_d(shifted, s.splat_d(SHIFT));
    let h = s.fmadd_d(k, s.splat_d(LN2_BY_32), a);
    // scale = 2^(k/16) = from_bits(TABLE[k & 15] + (k << 48))
    let bits = s.to_bits_d(shifted);
    let scale = s.d_from_bits(s.add_i64(s.lookup16(&TABLE, bits), s.shl_i64::<48>(bits)));
    // p = expm1(-2h) = h Q(h), Horner
    let mut q = s.splat_d(EXPM1_NEG_2[0]);
    for &c in &EXPM1_NEG_2[1..] {
        q = s.fmadd_d(q, h, s.splat_d(c));
    }
    let p = s.mul_d(q, h);
    // u = scale (1 + p) - 1 = e^(-2a) - 1; d = 2 + u
    let u = s.fmadd_d(scale, p, s.sub_d(scale, one));
    let d = s.add_d(u, s.splat_d(2.0));
    // y0 ~ -1/d; e = 1 + d y0; t = u y0 (1 + e)(1 + e^2)(1 + e^4)
    let [c2, c1, c0] = RECIPROCAL_SEED.map(|c| s.splat_d(c));
    let y0 = s.fmadd_d(s.fmadd_d(c2, d, c1), d, c0);
    let e = s.fmadd_d(d, y0, one);
    let t = s.mul_d(u, y0);
    let t = s.fmadd_d(t, e, t);
    let e2 = s.mul_d(e, e);
    let t = s.fmadd_d(t, e2, t);
    let e4 = s.mul_d(e2, e2);
    s.fmadd_d(t, e4, t)
}

/// Whether any lane of `t` (a [`magnitude`] result) lies within [`CHECK_ULPS`] of a float32
/// rounding midpoint, where its rounding might differ from that of the exact value.
#[inline(always)]
pub(super) fn ambiguous<S: Simd>(s: S, t: S::D) -> bool {
    let key = s.shl_i64::<35>(s.add_i64(s.to_bits_d(t), s.splat_i64(CHECK_ULPS)));
    s.any_lt_i64(key, s.splat_i64(FLAGGED_BELOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        for (j, &entry) in TABLE.iter().enumerate() {
            let value = f64::from_bits(entry + ((j as u64) << 48));
            assert!((value - (j as f64 / 16.0).exp2()).abs() <= f64::EPSILON, "2^({j}/16)");
        }
        let mut factorial = 1.0f64;
        for n in 1..=6 {
            factorial *= n as f64;
            assert_eq!(EXPM1_NEG_2[6 - n], (-2f64).powi(n as i32) * (1.0 / factorial), "(-2)^{n}/{n}!");
        }
        // The seed's residual is T3(2d - 3) / -99: at most 1/99 on [1, 2], zero at 1.5.
        let [c2, c1, c0] = RECIPROCAL_SEED;
        for i in 0..=1000 {
            let d = 1.0 + i as f64 / 1000.0;
            let z = 2.0 * d - 3.0;
            let residual = 1.0 + d * ((c2 * d + c1) * d + c0);
            assert!((residual - (4.0 * z * z * z - 3.0 * z) / -99.0).abs() < 1e-14, "d = {d}");
        }
    }

    /// The check's key on one float64, as the vector code computes it.
    fn flagged(t: f64) -> bool {
        ((t.to_bits() as i64).wrapping_add(CHECK_ULPS) << 35) < FLAGGED_BELOW
    }

    #[test]
    fn the_check_flags_exactly_the_band_around_each_midpoint() {
        let midpoint = (0.75f32 as f64 + (0.75f32.next_up() as f64)) / 2.0;
        let at = |ulps: i64| f64::from_bits((midpoint.to_bits() as i64 + ulps) as u64);
        for ulps in [-CHECK_ULPS, -1, 0, 1, CHECK_ULPS] {
            assert!(flagged(at(ulps)), "{ulps} ulps from the midpoint");
        }
        for ulps in [-CHECK_ULPS - 1, CHECK_ULPS + 1, -(1 << 28), (1 << 28) - 1] {
            assert!(!flagged(at(ulps)), "{ulps} ulps from the midpoint");
        }
        for t in [0.0, -0.0, 1.0, 0.75, 0.75f32.next_up() as f64, 1e-30] {
            assert!(!flagged(t), "{t} is a float32");
        }
    }
}
