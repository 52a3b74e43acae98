//! Sigmoid and tanh over [`Simd`] lanes, of any width, lane for lane the IEEE operations of the
//! scalar references in [`crate::activations`] (`expf_sleef.rs`, `expf_glibc.rs`, `tanh_f64.rs`),
//! so every path gives the same bits; the comments name the scalar expression each step
//! reproduces:
//!
//! - SLEEF's `expf_u10` in float32 lanes (the same FMAs, [`Simd::round_to_i32`] for `rint`);
//! - glibc's `expf` in float64 lanes, its 32-entry table read by [`Simd::lookup32`];
//! - [`tanh`](crate::activations::tanh) in float64 lanes, rounded to float32 by
//!   [`Simd::narrow`] as `as f32` does; first by the cheaper evaluation of [`tanh_fast`], whose
//!   result is kept only when its rounding is provably the exact one's (see there).
//!
//! The tests compare every path with the scalar references on millions of values, special values
//! included; the ignored test `exhaustive_tanh_equals_libm_on_every_float32` compares the scalar
//! and every path's tanh with libm's `(x as f64).tanh() as f32` on all 2^32 float32 inputs.

use super::simd::Simd;
use crate::activations::{expf_glibc as glibc, expf_sleef as sleef, tanh_f64};

/// `1 / (expf_u10(0 - x) + 1)` per lane: the vectorized part of PyTorch's sigmoid.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
pub(crate) fn sigmoid_sleef<S: Simd>(s: S, x: S::F) -> S::F {
    let one = s.splat(1.0);
    s.div(one, s.add(sleef_expf(s, s.sub(s.splat(0.0), x)), one))
}

/// `1 / (1 + expf(-x))` per lane, glibc's `expf`: the scalar tail of PyTorch's sigmoid.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
pub(crate) fn sigmoid_glibc<S: Simd>(s: S, x: S::F) -> S::F {
    let one = s.splat(1.0);
    s.div(one, s.add(one, glibc_expf(s, s.neg(x))))
}

/// SLEEF's `expf_u10` per lane (see `expf_sleef::expf_u10`).
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn sleef_expf<S: Simd>(s: S, d: S::F) -> S::F {
    // q = round_to_i32(d * R_LN2); qf = q as f32
    let q = s.round_to_i32(s.mul(d, s.splat(sleef::R_LN2)));
    let qf = s.i32_to_f32(q);
    // s = qf.mul_add(-L2U, d); s = qf.mul_add(-L2L, s)
    let r = s.fmadd(qf, s.splat(-sleef::L2U), d);
    let r = s.fmadd(qf, s.splat(-sleef::L2L), r);
    // u = u.mul_add(s, c) for each coefficient
    let mut u = s.splat(sleef::POLY[0]);
    for &c in &sleef::POLY[1..] {
        u = s.fmadd(u, r, s.splat(c));
    }
    // u = 1.0 + (s * s).mul_add(u, s)
    let u = s.add(s.splat(1.0), s.fmadd(s.mul(r, r), u, r));
    // u * pow2i(q >> 1) * pow2i(q - (q >> 1))
    let half = s.half_i32(q);
    let u = s.mul(s.mul(u, s.pow2i(half)), s.pow2i(s.sub_i32(q, half)));
    // d < -104 gives 0, d > 100 gives inf
    let u = s.select(s.lt(d, s.splat(-104.0)), s.splat(0.0), u);
    s.select(s.lt(s.splat(100.0), d), s.splat(f32::INFINITY), u)
}

/// glibc's `expf` per lane (see `expf_glibc::expf`): the main path in float64 halves, then the
/// special cases selected in, each on exactly the inputs the scalar branches send there.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn glibc_expf<S: Simd>(s: S, x: S::F) -> S::F {
    let (lo, hi) = s.widen(x);
    let main = s.narrow(glibc_expf_main(s, lo), glibc_expf_main(s, hi));
    let tiny = f32::from_bits(0x1a20_0000);
    let y = s.select(s.lt(x, s.splat(glibc::MAY_UNDERFLOW_BELOW)), s.splat(tiny * tiny), main);
    let y = s.select(s.lt(x, s.splat(glibc::UNDERFLOW_BELOW)), s.splat(0.0), y);
    let y = s.select(s.lt(s.splat(glibc::OVERFLOW_ABOVE), x), s.splat(f32::INFINITY), y);
    s.select(s.is_nan(x), s.add(x, x), y)
}

/// glibc `expf`'s main path for float64 lanes, rounded to float32 by the caller.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn glibc_expf_main<S: Simd>(s: S, xd: S::D) -> S::D {
    let inv = s.splat_d(glibc::INV_LN2_N);
    let shift = s.splat_d(glibc::SHIFT);
    // kd = INV_LN2_N.mul_add(xd, SHIFT); ki = kd.to_bits(); kd -= SHIFT
    let kd = s.fmadd_d(inv, xd, shift);
    let ki = s.to_bits_d(kd);
    let kd = s.sub_d(kd, shift);
    // r = INV_LN2_N.mul_add(xd, -kd)
    let r = s.fmadd_d(inv, xd, s.neg_d(kd));
    // t = TAB[ki % 32].wrapping_add(ki << 47)
    let t = s.d_from_bits(s.add_i64(s.lookup32(&glibc::TAB, ki), s.shl_i64::<47>(ki)));
    // z = C0.mul_add(r, C1); r2 = r * r; y = C2.mul_add(r, 1); y = z.mul_add(r2, y)
    let z = s.fmadd_d(s.splat_d(glibc::C[0]), r, s.splat_d(glibc::C[1]));
    let r2 = s.mul_d(r, r);
    let y = s.fmadd_d(s.splat_d(glibc::C[2]), r, s.splat_d(1.0));
    let y = s.fmadd_d(z, r2, y);
    s.mul_d(y, t)
}

/// [`tanh`](crate::activations::tanh) per lane: where [`Simd::TANH_FAST_PATH`], the fast path of
/// [`tanh_fast`] when its rounding is unambiguous in every lane; else the exact algorithm for the
/// whole vector.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
pub(crate) fn tanh<S: Simd>(s: S, x: S::F) -> S::F {
    // a = |x|.min(CLAMP), exact in float32 (a NaN lane gives CLAMP, and x below)
    let a = s.min(s.copysign(x, s.splat(0.0)), s.splat(tanh_f64::CLAMP as f32));
    let (lo, hi) = s.widen(a);
    if S::TANH_FAST_PATH {
        let (fast_lo, fast_hi) = (tanh_fast::magnitude(s, lo), tanh_fast::magnitude(s, hi));
        if !(tanh_fast::ambiguous(s, fast_lo) | tanh_fast::ambiguous(s, fast_hi)) {
            return s.select(s.is_nan(x), x, s.copysign(s.narrow(fast_lo, fast_hi), x));
        }
    }
    let t = s.narrow(tanh_magnitude(s, lo), tanh_magnitude(s, hi));
    s.select(s.is_nan(x), x, s.copysign(t, x))
}

/// `tanh(a)` in float64 for `a = |x|.min(CLAMP)` (`-0` for a zero `a`), as `tanh_f64.rs` computes it.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))] // a debug build would inline everything into one huge frame
fn tanh_magnitude<S: Simd>(s: S, a: S::D) -> S::D {
    use tanh_f64::{INV_LN2, LN2_HI, LN2_LO, SHIFT, TAYLOR};
    // shifted = a.mul_add(-2 * INV_LN2, SHIFT); k = shifted - SHIFT
    let shifted = s.fmadd_d(a, s.splat_d(-2.0 * INV_LN2), s.splat_d(SHIFT));
    let k = s.sub_d(shifted, s.splat_d(SHIFT));
    // r = k.mul_add(-LN2_HI, -2 * a); r = k.mul_add(-LN2_LO, r)
    let r = s.fmadd_d(k, s.splat_d(-LN2_HI), s.mul_d(s.splat_d(-2.0), a));
    let r = s.fmadd_d(k, s.splat_d(-LN2_LO), r);
    // p = expm1_reduced(r): Estrin's scheme, then r2.mul_add(q, r)
    let c = |i: usize| s.splat_d(TAYLOR[11 - i]);
    let r2 = s.mul_d(r, r);
    let r4 = s.mul_d(r2, r2);
    let r8 = s.mul_d(r4, r4);
    let q0 = s.fmadd_d(s.fmadd_d(c(3), r, c(2)), r2, s.fmadd_d(c(1), r, c(0)));
    let q1 = s.fmadd_d(s.fmadd_d(c(7), r, c(6)), r2, s.fmadd_d(c(5), r, c(4)));
    let q2 = s.fmadd_d(s.fmadd_d(c(11), r, c(10)), r2, s.fmadd_d(c(9), r, c(8)));
    let q = s.fmadd_d(q2, r8, s.fmadd_d(q1, r4, q0));
    let p = s.fmadd_d(r2, q, r);
    // scale = from_bits((shifted.to_bits() + 1023) << 52)
    let scale = s.d_from_bits(s.shl_i64::<52>(s.add_i64(s.to_bits_d(shifted), s.splat_i64(1023))));
    // (-scale).mul_add(p, 1 - scale) / scale.mul_add(p, 1 + scale)
    let one = s.splat_d(1.0);
    let numerator = s.fmadd_d(s.neg_d(scale), p, s.sub_d(one, scale));
    s.div_d(numerator, s.fmadd_d(scale, p, s.add_d(one, scale)))
}

mod tanh_fast;
#[cfg(test)]
pub(crate) mod tests;
