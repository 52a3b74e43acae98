//! The one vector trait every width-generic kernel body is written in ([`Simd`]): the int8 GEMM's
//! dequantizing store, the input quantization, the float16 product, sigmoid and tanh
//! ([`super::vector_math`]) and the fused recurrent steps ([`super::recurrent_step`]).
//!
//! Implementors are CPU-feature tokens, one type per instruction set (defined in that instruction
//! set's file under the architecture folder): zero-sized values that exist only once run-time
//! detection found the instructions. That is what lets the register-only methods be safe. Every
//! method is `#[inline(always)]`: the generic bodies are instantiated inside the
//! `#[target_feature]` entry points that [`entry_points!`](super::entry_points) defines, so the
//! intrinsics inline into code compiled for those features.

mod intrinsic_methods;
mod pair;

pub(crate) use intrinsic_methods::intrinsic_methods;
pub(crate) use pair::Pair;

/// `LANES` float32 lanes, their int32 and float64 forms, and the memory accesses the kernels need.
///
/// # Lanes
/// `LANES` is a power of two from 4 to 32 that divides 32, the sigmoid's SLEEF/glibc split
/// ([`Pair`] doubles a register's lanes; the kernels that store whole packed panels take a single
/// register, whose `LANES` also divides 16, a panel's width). Lane `i` of a vector loaded from `p` is `p[i]`; a store writes
/// lane `i` to `p[i]`. An [`Simd::I`] holds `LANES` int32 lanes or, as the bits of a
/// [`Simd::D`], `LANES / 2` int64 lanes; a [`Simd::D`] holds `LANES / 2` float64 lanes, the low or
/// the high half of an [`Simd::F`] ([`Simd::widen`]).
///
/// # Float semantics
/// Every float operation is the IEEE operation of the Rust expression it names, rounded once to
/// nearest even, on every lane: `add` is `a + b`, `fmadd` is `a.mul_add(b, c)`, and so on.
/// Subnormals are kept (no flush to zero), on inputs and results. A NaN result may have any sign
/// and payload unless the method says otherwise; callers that store states canonicalize NaNs.
/// The exceptions, where instruction sets differ, are spelled out per method: [`Simd::min`],
/// [`Simd::max`] (NaN operands) and [`Simd::round_to_i32`] (out-of-range lanes).
pub(crate) trait Simd: Copy {
    /// float32 lanes per vector.
    const LANES: usize;
    /// Whether [`tanh`](super::vector_math::tanh) tries its division-free fast path first: only
    /// where that measured faster (AVX-512; on AVX2 the table gather and the narrower FMA
    /// registers made the recurrent steps 4-15% slower on a Sapphire Rapids Xeon). The bits are the
    /// same either way.
    const TANH_FAST_PATH: bool;
    /// `LANES` float32.
    type F: Copy;
    /// `LANES` int32, or `LANES / 2` int64 (the bits of a [`Simd::D`]).
    type I: Copy;
    /// `LANES / 2` float64: one half of an `F`.
    type D: Copy;
    /// A lane mask of an `F` comparison, for [`Simd::select`].
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
    /// `a * b + c`, rounded once (`a.mul_add(b, c)`).
    fn fmadd(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `-a`: the sign bit flipped, NaN and zero included.
    fn neg(self, a: Self::F) -> Self::F;
    /// The smaller of `a` and `b` when both are numbers (either zero when they are zeros of
    /// opposite signs). When `a` is NaN and `b` is not, `b` (x86 `minps` returns its second
    /// operand, aarch64 `fminnm` the number). When `b` is NaN the result is NaN or `a`, by
    /// instruction set: callers must not depend on which.
    fn min(self, a: Self::F, b: Self::F) -> Self::F;
    /// The larger lane, with the NaN and zero rules of [`Simd::min`].
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// Rounded to an integral value, ties to even (`a.round_ties_even()`); NaN stays NaN.
    fn round_even(self, a: Self::F) -> Self::F;
    /// `a < b`: false when either is NaN.
    fn lt(self, a: Self::F, b: Self::F) -> Self::M;
    /// True in NaN lanes.
    fn is_nan(self, a: Self::F) -> Self::M;
    /// `mask ? a : b` per lane, bits unchanged.
    fn select(self, mask: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// The bits of `a` but the sign bit of `sign` (`a.copysign(sign)`, NaN included).
    fn copysign(self, a: Self::F, sign: Self::F) -> Self::F;
    /// Rounded to the nearest int32, ties to even. Only lanes whose rounded value fits in int32
    /// are specified; NaN and out-of-range lanes give an unspecified int32 (x86 gives `i32::MIN`,
    /// aarch64 saturates). Callers only rely on lanes within range: the others are selected away
    /// or end in a NaN either way.
    fn round_to_i32(self, a: Self::F) -> Self::I;
    /// int32 lanes converted to float32, rounded to nearest even (`a as f32`).
    fn i32_to_f32(self, a: Self::I) -> Self::F;
    /// `2^q` for int32 lanes `q`, from exponent bits: the float with bits `(q + 127) << 23`
    /// (wrapping int32 arithmetic; callers keep `q` in `-127..=128`).
    fn pow2i(self, q: Self::I) -> Self::F;
    /// int32 lanes `a >> 1`, arithmetic (rounding towards negative infinity).
    fn half_i32(self, a: Self::I) -> Self::I;
    /// Every int32 lane `v`.
    fn splat_i32(self, v: i32) -> Self::I;
    /// Wrapping int32 `a - b`.
    fn sub_i32(self, a: Self::I, b: Self::I) -> Self::I;
    /// Wrapping int32 `a * b` (the low 32 bits of the product).
    fn mul_i32(self, a: Self::I, b: Self::I) -> Self::I;

    /// Every float64 lane `v`.
    fn splat_d(self, v: f64) -> Self::D;
    /// The low half (lanes `0..LANES / 2`) and the high half of `a`, each lane widened exactly
    /// (`x as f64`; a NaN stays NaN).
    fn widen(self, a: Self::F) -> (Self::D, Self::D);
    /// Both halves rounded to float32 to nearest even (`x as f32`) and joined, `lo` in lanes
    /// `0..LANES / 2`: the inverse of [`Simd::widen`] on exact values.
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
    /// `-a`: the sign bit flipped.
    fn neg_d(self, a: Self::D) -> Self::D;
    /// The bits of each float64 lane, as int64 lanes (`x.to_bits()`).
    fn to_bits_d(self, a: Self::D) -> Self::I;
    /// float64 lanes with these bits (`f64::from_bits`).
    fn d_from_bits(self, a: Self::I) -> Self::D;
    /// Every int64 lane `v`.
    fn splat_i64(self, v: i64) -> Self::I;
    /// Wrapping int64 `a + b`.
    fn add_i64(self, a: Self::I, b: Self::I) -> Self::I;
    /// int64 lanes shifted left by `SHIFT` (`0 < SHIFT < 64`), zeros shifted in.
    fn shl_i64<const SHIFT: i32>(self, a: Self::I) -> Self::I;
    /// `table[a & 31]` for each int64 lane `a` (the bits of the entry, as an int64 lane).
    fn lookup32(self, table: &[u64; 32], a: Self::I) -> Self::I;
    /// `table[a & 15]` for each int64 lane `a` (the bits of the entry, as an int64 lane).
    fn lookup16(self, table: &[u64; 16], a: Self::I) -> Self::I;
    /// Whether any int64 lane of `a` is less than the same lane of `b` (signed comparison).
    fn any_lt_i64(self, a: Self::I, b: Self::I) -> bool;

    /// Loads `LANES` floats.
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` floats (no alignment needed).
    unsafe fn load(self, p: *const f32) -> Self::F;
    /// Loads `len < LANES` floats into the first lanes; the other lanes are zero. Reads nothing
    /// past `p + len`.
    ///
    /// # Safety
    /// `p` must be valid for reading `len` floats.
    unsafe fn load_partial(self, p: *const f32, len: usize) -> Self::F;
    /// Loads `LANES` int32.
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` int32.
    unsafe fn load_i32(self, p: *const i32) -> Self::I;
    /// Loads `len < LANES` int32 into the first lanes; the other lanes are zero.
    ///
    /// # Safety
    /// `p` must be valid for reading `len` int32.
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> Self::I;
    /// Loads `LANES` IEEE binary16 values, widened to f32 exactly (a NaN stays NaN).
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
    /// Stores the first `len < LANES` lanes; writes nothing past `p + len`.
    ///
    /// # Safety
    /// `p` must be valid for writing `len` floats.
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: Self::F);
    /// Stores `LANES` bytes, lane `i` to `p[i]`, from lanes holding integral values in
    /// `0.0..=255.0` (other lanes give unspecified bytes).
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` bytes.
    unsafe fn store_u8(self, p: *mut u8, a: Self::F);
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
