//! [`Simd`] on 512-bit registers: 16 float32 lanes, float64 halves of 8. Needs AVX-512F only
//! (bit operations go through the integer forms, which AVX-512DQ would otherwise provide).

use std::arch::x86_64::*;

use super::Simd;

/// Proof that the CPU has AVX-512F (and AVX2 and FMA, which the entry points also enable).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token, if this CPU has the instructions.
    pub(crate) fn detect() -> Option<Self> {
        let supported =
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        supported.then_some(Avx512(()))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have the instructions [`Avx512::detect`] checks for.
    pub(crate) unsafe fn assume_supported() -> Self {
        Avx512(())
    }
}

/// A mask of the first `len < 16` lanes.
#[inline(always)]
fn first_lanes(len: usize) -> __mmask16 {
    ((1u32 << len) - 1) as __mmask16
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type I = __m512i;
    type D = __m512d;
    type M = __mmask16;

    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: the token proves AVX-512F (see `Avx512`), which is all that the
        // register-only blocks below need (only the loads and stores touch memory: see theirs).
        unsafe { _mm512_set1_ps(v) }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_add_ps(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_sub_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_mul_ps(a, b) }
    }

    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_div_ps(a, b) }
    }

    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn neg(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(i32::MIN))) }
    }

    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }

    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
    }

    #[inline(always)]
    fn select(self, mask: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (token). The blend takes its second operand where the mask is set.
        unsafe { _mm512_mask_blend_ps(mask, b, a) }
    }

    #[inline(always)]
    fn copysign(self, a: __m512, sign: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe {
            let magnitude = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(i32::MAX));
            let sign = _mm512_and_si512(_mm512_castps_si512(sign), _mm512_set1_epi32(i32::MIN));
            _mm512_castsi512_ps(_mm512_or_si512(magnitude, sign))
        }
    }

    #[inline(always)]
    fn round_to_i32(self, a: __m512) -> __m512i {
        // SAFETY: AVX-512F (token). The conversion uses MXCSR's mode, round to nearest even (Rust
        // never changes it).
        unsafe { _mm512_cvtps_epi32(a) }
    }

    #[inline(always)]
    fn i32_to_f32(self, a: __m512i) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_cvtepi32_ps(a) }
    }

    #[inline(always)]
    fn pow2i(self, q: __m512i) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(q, _mm512_set1_epi32(0x7f)))) }
    }

    #[inline(always)]
    fn half_i32(self, a: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_srai_epi32::<1>(a) }
    }

    #[inline(always)]
    fn splat_i32(self, v: i32) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_set1_epi32(v) }
    }

    #[inline(always)]
    fn sub_i32(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_sub_epi32(a, b) }
    }

    #[inline(always)]
    fn mul_i32(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_mullo_epi32(a, b) }
    }

    #[inline(always)]
    fn splat_d(self, v: f64) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_set1_pd(v) }
    }

    #[inline(always)]
    fn widen(self, a: __m512) -> (__m512d, __m512d) {
        // SAFETY: AVX-512F (token).
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            (_mm512_cvtps_pd(_mm512_castps512_ps256(a)), _mm512_cvtps_pd(hi))
        }
    }

    #[inline(always)]
    fn narrow(self, lo: __m512d, hi: __m512d) -> __m512 {
        // SAFETY: AVX-512F (token). The conversions round in MXCSR's mode, to nearest even.
        unsafe {
            let lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm512_cvtpd_ps(lo)));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(lo, _mm256_castps_pd(_mm512_cvtpd_ps(hi))))
        }
    }

    #[inline(always)]
    fn add_d(self, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_add_pd(a, b) }
    }

    #[inline(always)]
    fn sub_d(self, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_sub_pd(a, b) }
    }

    #[inline(always)]
    fn mul_d(self, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_mul_pd(a, b) }
    }

    #[inline(always)]
    fn div_d(self, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_div_pd(a, b) }
    }

    #[inline(always)]
    fn fmadd_d(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_fmadd_pd(a, b, c) }
    }

    #[inline(always)]
    fn neg_d(self, a: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(i64::MIN))) }
    }

    #[inline(always)]
    fn abs_d(self, a: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(i64::MAX))) }
    }

    #[inline(always)]
    fn min_d(self, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_min_pd(a, b) }
    }

    #[inline(always)]
    fn to_bits_d(self, a: __m512d) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castpd_si512(a) }
    }

    #[inline(always)]
    fn d_from_bits(self, a: __m512i) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_pd(a) }
    }

    #[inline(always)]
    fn splat_i64(self, v: i64) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_set1_epi64(v) }
    }

    #[inline(always)]
    fn add_i64(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_add_epi64(a, b) }
    }

    #[inline(always)]
    fn shl_i64<const SHIFT: i32>(self, a: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_sll_epi64(a, _mm_cvtsi32_si128(SHIFT)) }
    }

    #[inline(always)]
    fn lookup32(self, table: &[u64; 32], a: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token); every index is masked to 0..32, inside `table`.
        unsafe {
            let index = _mm512_and_si512(a, _mm512_set1_epi64(31));
            _mm512_i64gather_epi64::<8>(index, table.as_ptr().cast())
        }
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: AVX-512F (token); the caller provides 16 readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> __m512 {
        // SAFETY: AVX-512F (token); the masked load reads only the `len` lanes the caller provides.
        unsafe { _mm512_maskz_loadu_ps(first_lanes(len), p) }
    }

    #[inline(always)]
    unsafe fn load_i32(self, p: *const i32) -> __m512i {
        // SAFETY: AVX-512F (token); the caller provides 16 readable int32.
        unsafe { _mm512_loadu_epi32(p) }
    }

    #[inline(always)]
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> __m512i {
        // SAFETY: AVX-512F (token); the masked load reads only the `len` lanes the caller provides.
        unsafe { _mm512_maskz_loadu_epi32(first_lanes(len), p) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, a: __m512) {
        // SAFETY: AVX-512F (token); the caller provides 16 writable floats.
        unsafe { _mm512_storeu_ps(p, a) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: __m512) {
        // SAFETY: AVX-512F (token); the masked store writes only the `len` lanes the caller
        // provides.
        unsafe { _mm512_mask_storeu_ps(p, first_lanes(len), a) }
    }
}
