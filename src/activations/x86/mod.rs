//! Sigmoid and tanh in SIMD registers (AVX2 + FMA: 8 lanes; AVX-512: 16 lanes), lane for lane
//! the IEEE operations of the scalar references in [`crate::activations`], so every path gives
//! the same bits:
//!
//! - SLEEF's `expf_u10` in float32 lanes (the same FMAs, `cvtps2dq` for `rint`);
//! - glibc's `expf` in float64 lanes, its 32-entry table read by a gather;
//! - [`tanh`](crate::activations::tanh) in float64 lanes, its result rounded to float32 by
//!   `cvtpd2ps` as `as f32` does.
//!
//! Compared once over all 2^32 float32 inputs (outside the test suite): the tanh algorithm equals
//! libm's `(x as f64).tanh() as f32` on every one of them. The tests here compare every path with
//! the scalar references on millions of values, special values included.
//!
//! Implementors of [`Simd`] are CPU-feature tokens (zero-sized proofs that the CPU has the
//! instructions, made only by run-time detection), which is what lets the register operations be
//! safe methods. Everything is `#[inline(always)]`: the generic functions are instantiated inside
//! `#[target_feature]` entry points (`crate::rnn::epilogue_x86`), where the intrinsics inline into
//! code compiled for the path's instructions.

mod avx2;
mod avx512;
mod math;
mod pair;

pub(crate) use avx2::Avx2;
pub(crate) use avx512::Avx512;
pub(crate) use pair::Pair;
pub(crate) use math::{sigmoid_glibc, sigmoid_sleef, tanh};

/// `LANES` float32 lanes, with their float64 halves.
///
/// Float operations round once, to nearest even, like the scalar Rust operations of the same
/// name; `min_d` must only see non-NaN operands.
pub(crate) trait Simd: Copy {
    /// float32 lanes per vector.
    const LANES: usize;
    /// `LANES` float32.
    type F: Copy;
    /// `LANES` int32, or `LANES / 2` int64 (the bits of a [`Simd::D`]).
    type I: Copy;
    /// `LANES / 2` float64: one half of an `F`.
    type D: Copy;
    /// A lane mask of an `F` comparison.
    type M: Copy;

    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::F;
    /// `a + b`.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a - b`.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a / b`.
    fn div(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, rounded once.
    fn fmadd(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `-a` (the sign bit flipped, NaN included).
    fn neg(self, a: Self::F) -> Self::F;
    /// `a < b` (false when either is NaN).
    fn lt(self, a: Self::F, b: Self::F) -> Self::M;
    /// True in NaN lanes.
    fn is_nan(self, a: Self::F) -> Self::M;
    /// `mask ? a : b` per lane.
    fn select(self, mask: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// The magnitude of `a` with the sign of `sign`.
    fn copysign(self, a: Self::F, sign: Self::F) -> Self::F;
    /// `cvtps2dq`: rounded half to even; NaN and out-of-range lanes give `i32::MIN`.
    fn round_to_i32(self, a: Self::F) -> Self::I;
    /// int32 lanes converted to float32 (exact for the values used here).
    fn i32_to_f32(self, a: Self::I) -> Self::F;
    /// `2^q` for int32 lanes `q`, built from exponent bits: `(q + 127) << 23`, wrapping.
    fn pow2i(self, q: Self::I) -> Self::F;
    /// int32 lanes `a >> 1` (arithmetic).
    fn half_i32(self, a: Self::I) -> Self::I;
    /// Every int32 lane `v`.
    fn splat_i32(self, v: i32) -> Self::I;
    /// Wrapping int32 `a - b`.
    fn sub_i32(self, a: Self::I, b: Self::I) -> Self::I;
    /// Wrapping int32 `a * b` (the low 32 bits of the product).
    fn mul_i32(self, a: Self::I, b: Self::I) -> Self::I;

    /// Every lane `v`.
    fn splat_d(self, v: f64) -> Self::D;
    /// The low and high halves of `a`, each lane widened exactly.
    fn widen(self, a: Self::F) -> (Self::D, Self::D);
    /// Both halves rounded to float32 (as `as f32` does) and joined, `lo` first.
    fn narrow(self, lo: Self::D, hi: Self::D) -> Self::F;
    /// `a + b`.
    fn add_d(self, a: Self::D, b: Self::D) -> Self::D;
    /// `a - b`.
    fn sub_d(self, a: Self::D, b: Self::D) -> Self::D;
    /// `a * b`.
    fn mul_d(self, a: Self::D, b: Self::D) -> Self::D;
    /// `a / b`.
    fn div_d(self, a: Self::D, b: Self::D) -> Self::D;
    /// `a * b + c`, rounded once.
    fn fmadd_d(self, a: Self::D, b: Self::D, c: Self::D) -> Self::D;
    /// `-a` (the sign bit flipped).
    fn neg_d(self, a: Self::D) -> Self::D;
    /// `|a|`.
    fn abs_d(self, a: Self::D) -> Self::D;
    /// The smaller of two non-NaN lanes.
    fn min_d(self, a: Self::D, b: Self::D) -> Self::D;
    /// The representation of each lane.
    fn to_bits_d(self, a: Self::D) -> Self::I;
    /// Lanes with these representations.
    fn d_from_bits(self, a: Self::I) -> Self::D;
    /// Every int64 lane `v`.
    fn splat_i64(self, v: i64) -> Self::I;
    /// Wrapping int64 `a + b`.
    fn add_i64(self, a: Self::I, b: Self::I) -> Self::I;
    /// int64 lanes shifted left by `SHIFT`.
    fn shl_i64<const SHIFT: i32>(self, a: Self::I) -> Self::I;
    /// `table[a & 31]` for each int64 lane `a`.
    fn lookup32(self, table: &[u64; 32], a: Self::I) -> Self::I;

    /// Loads `LANES` floats.
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` floats.
    unsafe fn load(self, p: *const f32) -> Self::F;
    /// Loads `len < LANES` floats; the other lanes are zero.
    ///
    /// # Safety
    /// `p` must be valid for reading `len` floats.
    unsafe fn load_partial(self, p: *const f32, len: usize) -> Self::F;
    /// Loads `LANES` int32.
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` int32.
    unsafe fn load_i32(self, p: *const i32) -> Self::I;
    /// Loads `len < LANES` int32; the other lanes are zero.
    ///
    /// # Safety
    /// `p` must be valid for reading `len` int32.
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> Self::I;
    /// Stores `LANES` floats.
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` floats.
    unsafe fn store(self, p: *mut f32, a: Self::F);
    /// Stores the first `len < LANES` lanes.
    ///
    /// # Safety
    /// `p` must be valid for writing `len` floats.
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: Self::F);
}

/// The first `min(x.len(), LANES)` elements of `x`; the other lanes are zero.
#[inline(always)]
pub(crate) fn load<S: Simd>(s: S, x: &[f32]) -> S::F {
    if x.len() >= S::LANES {
        // SAFETY: `x` holds at least `LANES` floats.
        unsafe { s.load(x.as_ptr()) }
    } else {
        // SAFETY: `x` holds `x.len()` floats.
        unsafe { s.load_partial(x.as_ptr(), x.len()) }
    }
}

/// Writes the first `min(out.len(), LANES)` lanes of `v` to `out`.
#[inline(always)]
pub(crate) fn store<S: Simd>(s: S, out: &mut [f32], v: S::F) {
    if out.len() >= S::LANES {
        // SAFETY: `out` holds at least `LANES` floats.
        unsafe { s.store(out.as_mut_ptr(), v) }
    } else {
        // SAFETY: `out` holds `out.len()` floats.
        unsafe { s.store_partial(out.as_mut_ptr(), out.len(), v) }
    }
}

#[cfg(test)]
mod tests;
