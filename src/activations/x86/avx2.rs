//! [`Simd`] on 256-bit registers: 8 float32 lanes, float64 halves of 4 (AVX2 + FMA).

use std::arch::x86_64::*;

use super::Simd;

/// Proof that the CPU has AVX2 and FMA.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has the instructions.
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    pub(crate) unsafe fn assume_supported() -> Self {
        Avx2(())
    }
}

/// All-ones int32 lanes for the first `len < 8` lanes, zeros after.
#[inline(always)]
fn first_lanes(_: Avx2, len: usize) -> __m256i {
    // SAFETY: AVX2 (token).
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type I = __m256i;
    type D = __m256d;
    type M = __m256;

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: the token proves AVX2 and FMA (see `Avx2`), which is all that the
        // register-only blocks below need (only the loads and stores touch memory: see theirs).
        unsafe { _mm256_set1_ps(v) }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_add_ps(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_sub_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_mul_ps(a, b) }
    }

    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_div_ps(a, b) }
    }

    #[inline(always)]
    fn fmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA (token).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn neg(self, a: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_xor_ps(a, _mm256_set1_ps(-0.0)) }
    }

    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }

    #[inline(always)]
    fn is_nan(self, a: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
    }

    #[inline(always)]
    fn select(self, mask: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (token). The blend takes its second operand where the mask is set.
        unsafe { _mm256_blendv_ps(b, a, mask) }
    }

    #[inline(always)]
    fn copysign(self, a: __m256, sign: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe {
            let sign_bit = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(sign_bit, a), _mm256_and_ps(sign_bit, sign))
        }
    }

    #[inline(always)]
    fn round_to_i32(self, a: __m256) -> __m256i {
        // SAFETY: AVX (token). The conversion uses MXCSR's mode, round to nearest even (Rust never
        // changes it).
        unsafe { _mm256_cvtps_epi32(a) }
    }

    #[inline(always)]
    fn i32_to_f32(self, a: __m256i) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_cvtepi32_ps(a) }
    }

    #[inline(always)]
    fn pow2i(self, q: __m256i) -> __m256 {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(q, _mm256_set1_epi32(0x7f)))) }
    }

    #[inline(always)]
    fn half_i32(self, a: __m256i) -> __m256i {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_srai_epi32::<1>(a) }
    }

    #[inline(always)]
    fn splat_i32(self, v: i32) -> __m256i {
        // SAFETY: AVX (token).
        unsafe { _mm256_set1_epi32(v) }
    }

    #[inline(always)]
    fn sub_i32(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_sub_epi32(a, b) }
    }

    #[inline(always)]
    fn mul_i32(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_mullo_epi32(a, b) }
    }

    #[inline(always)]
    fn splat_d(self, v: f64) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_set1_pd(v) }
    }

    #[inline(always)]
    fn widen(self, a: __m256) -> (__m256d, __m256d) {
        // SAFETY: AVX (token).
        unsafe { (_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a))) }
    }

    #[inline(always)]
    fn narrow(self, lo: __m256d, hi: __m256d) -> __m256 {
        // SAFETY: AVX (token). The conversions round in MXCSR's mode, to nearest even.
        unsafe { _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)) }
    }

    #[inline(always)]
    fn add_d(self, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_add_pd(a, b) }
    }

    #[inline(always)]
    fn sub_d(self, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_sub_pd(a, b) }
    }

    #[inline(always)]
    fn mul_d(self, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_mul_pd(a, b) }
    }

    #[inline(always)]
    fn div_d(self, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_div_pd(a, b) }
    }

    #[inline(always)]
    fn fmadd_d(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        // SAFETY: FMA (token).
        unsafe { _mm256_fmadd_pd(a, b, c) }
    }

    #[inline(always)]
    fn neg_d(self, a: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_xor_pd(a, _mm256_set1_pd(-0.0)) }
    }

    #[inline(always)]
    fn abs_d(self, a: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_andnot_pd(_mm256_set1_pd(-0.0), a) }
    }

    #[inline(always)]
    fn min_d(self, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_min_pd(a, b) }
    }

    #[inline(always)]
    fn to_bits_d(self, a: __m256d) -> __m256i {
        // SAFETY: AVX (token).
        unsafe { _mm256_castpd_si256(a) }
    }

    #[inline(always)]
    fn d_from_bits(self, a: __m256i) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_castsi256_pd(a) }
    }

    #[inline(always)]
    fn splat_i64(self, v: i64) -> __m256i {
        // SAFETY: AVX (token).
        unsafe { _mm256_set1_epi64x(v) }
    }

    #[inline(always)]
    fn add_i64(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_add_epi64(a, b) }
    }

    #[inline(always)]
    fn shl_i64<const SHIFT: i32>(self, a: __m256i) -> __m256i {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_slli_epi64::<SHIFT>(a) }
    }

    #[inline(always)]
    fn lookup32(self, table: &[u64; 32], a: __m256i) -> __m256i {
        // SAFETY: AVX2 (token); every index is masked to 0..32, inside `table`.
        unsafe {
            let index = _mm256_and_si256(a, _mm256_set1_epi64x(31));
            _mm256_i64gather_epi64::<8>(table.as_ptr().cast(), index)
        }
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: AVX (token); the caller provides 8 readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> __m256 {
        // SAFETY: AVX2 (token); the masked load reads only the `len` lanes the caller provides
        // (masked-off lanes are never accessed) and zeroes the others.
        unsafe { _mm256_maskload_ps(p, first_lanes(self, len)) }
    }

    #[inline(always)]
    unsafe fn load_i32(self, p: *const i32) -> __m256i {
        // SAFETY: AVX (token); the caller provides 8 readable int32.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    #[inline(always)]
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> __m256i {
        // SAFETY: AVX2 (token); the masked load reads only the `len` lanes the caller provides
        // (masked-off lanes are never accessed) and zeroes the others.
        unsafe { _mm256_maskload_epi32(p, first_lanes(self, len)) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, a: __m256) {
        // SAFETY: AVX (token); the caller provides 8 writable floats.
        unsafe { _mm256_storeu_ps(p, a) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: __m256) {
        // SAFETY: AVX2 (token); the masked store writes only the `len` lanes the caller provides.
        unsafe { _mm256_maskstore_ps(p, first_lanes(self, len), a) }
    }
}
