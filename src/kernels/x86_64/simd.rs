//! The vector operations the width-generic kernels ([`super::quantize_input`], [`super::epilogue`],
//! [`super::gemm_f16`]) are written in, implemented once per register width.
//!
//! Implementors are CPU-feature tokens: zero-sized values that exist only once the CPU is known to
//! have the instructions (see [`super::avx2::Avx2`] and [`super::avx512vnni::Avx512`]). That is what
//! lets the register-only methods be safe. Every method is `#[inline(always)]`: the generic kernels
//! are instantiated inside `#[target_feature]` entry points, so the intrinsics inline into code
//! compiled for those features.

/// `LANES`-wide f32 and i32 vectors.
///
/// Float operations behave as the x86 instructions do: `min`/`max` return their second operand
/// when either operand is NaN (and when both are zeros of either sign).
pub(super) trait Simd: Copy {
    /// Elements per vector.
    const LANES: usize;
    /// `LANES` f32.
    type F: Copy;
    /// `LANES` i32.
    type I: Copy;

    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::F;
    /// Every lane `v`.
    fn splat_i32(self, v: i32) -> Self::I;
    /// `a + b`, rounded once.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a - b`, rounded once.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`, rounded once.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c` with a single rounding.
    fn fmadd(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// The smaller lane, `b` when either is NaN.
    fn min(self, a: Self::F, b: Self::F) -> Self::F;
    /// The larger lane, `b` when either is NaN.
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// Rounds to an integral value, ties to even (`f32::round_ties_even`).
    fn round_even(self, a: Self::F) -> Self::F;
    /// Wrapping `a - b`.
    fn sub_i32(self, a: Self::I, b: Self::I) -> Self::I;
    /// Wrapping `a * b` (the low 32 bits of the product).
    fn mul_i32(self, a: Self::I, b: Self::I) -> Self::I;
    /// `a as f32`, rounding to nearest even.
    fn to_f32(self, a: Self::I) -> Self::F;
    /// The lanes, in the first `LANES` elements.
    fn to_array(self, a: Self::F) -> [f32; 16];

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
    /// Loads `LANES` IEEE binary16 values, widened to f32 (exactly).
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` u16.
    unsafe fn load_f16(self, p: *const u16) -> Self::F;
    /// Loads `len < LANES` binary16 values widened to f32; the other lanes are zero.
    ///
    /// # Safety
    /// `p` must be valid for reading `len` u16.
    unsafe fn load_f16_partial(self, p: *const u16, len: usize) -> Self::F;
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
    /// Stores `LANES` bytes, one per lane, from lanes holding integral values in `0.0..=255.0`.
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` bytes.
    unsafe fn store_u8(self, p: *mut u8, a: Self::F);
}
