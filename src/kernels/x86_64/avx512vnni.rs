//! The AVX-512 VNNI path: its token [`Avx512`], the [`Simd`] operations on 512-bit registers (16
//! float lanes, float64 halves of 8) that its generic kernels run on (the AMX path shares them),
//! and the int8 GEMM's `vpdpbusd` step (one panel k-group per register).

use std::arch::x86_64::*;

use super::gemm_u8i8::Int8Dot;
use super::gemm_u8i8;
use crate::kernels::simd::{intrinsic_methods, Simd};
use crate::kernels::{
    entry_points, gemm_on_each_block, gemm_f16, quantize_input, recurrent_step, requantize_rows, DequantizedOut, Int8Blocks, Int8Operands, Isa,
    Kernels, Nonlinearity, Projected, Range,
};
use crate::pack::{Block, K_GROUP, PANEL_WIDTH};
use crate::requantize::Requantize;
#[cfg(test)]
use crate::kernels::vector_math::{self, tests::Function};

/// Proof that the CPU has AVX-512 F, BW, VL and VNNI (and AVX2, FMA and F16C, which they imply).
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx512(());

impl Avx512 {
    /// The token, if this CPU has the instructions.
    pub(super) fn detect() -> Option<Self> {
        let supported = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        supported.then_some(Avx512(()))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have the instructions [`Avx512::detect`] checks for.
    pub(super) unsafe fn assume_supported() -> Self {
        Avx512(())
    }
}

/// The AVX-512 VNNI table.
pub(super) fn table(_: Avx512) -> Kernels {
    Kernels {
        isa: Isa::Avx512Vnni,
        range,
        quantize_u8,
        gemm_u8i8,
        gemm_u8i8_blocks,
        gemm_u8i8_dequantize,
        requantize,
        gemm_f32_f16,
        lstm,
        gru,
        elman,
    }
}

entry_points! {
    Avx512, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    fn range(x: &[f32]) -> Range = quantize_input::range;
    fn quantize_u8(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) = quantize_input::quantize_u8;
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
    fn gemm_u8i8_dequantize(operands: Int8Operands<'_>, store: DequantizedOut<'_>) = gemm_dequantize;
    fn requantize(acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]) = requantize_rows::requantize;
    fn gemm_f32_f16(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32])
        = gemm_f16::gemm_f32_f16::<_, 4, 4>;
    fn lstm(hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) = recurrent_step::lstm;
    fn gru(hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize) = recurrent_step::gru;
    fn elman(nonlinearity: Nonlinearity, hg: &Projected<'_>, ig: &Projected<'_>, h_out: &mut [f32], hidden: usize)
        = recurrent_step::elman;
    #[cfg(test)]
    fn vector_math(f: Function, xs: &[f32]) -> Vec<f32> = vector_math::tests::apply;
}

/// The int8 GEMM, in register tiles chosen by the number of rows. One row: two panels at a time,
/// the weights read as two streams (see `gemm_u8i8`'s module notes). 2 to 6 rows: one tile
/// exactly that high and 4 panels wide (a batch of 2 is still bound by reading the weights, and 4
/// panels keep enough independent loads and accumulators going); 7 rows: 7 x 3. More: strips of 8
/// rows x 3 panels, 24 accumulators + 3 weight vectors + 1 broadcast of the 32 registers, each
/// loaded weight vector used by 8 rows (measured about 90 % of the `vpdpbusd` peak on Zen 5).
#[inline(always)]
pub(super) fn gemm(t: Avx512, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    match operands.rows {
        1 => gemm_u8i8::gemm::<_, 1, 2>(t, operands, out, ldo),
        2 => gemm_u8i8::gemm::<_, 2, 4>(t, operands, out, ldo),
        3 => gemm_u8i8::gemm::<_, 3, 4>(t, operands, out, ldo),
        4 => gemm_u8i8::gemm::<_, 4, 4>(t, operands, out, ldo),
        5 => gemm_u8i8::gemm::<_, 5, 4>(t, operands, out, ldo),
        6 => gemm_u8i8::gemm::<_, 6, 4>(t, operands, out, ldo),
        7 => gemm_u8i8::gemm::<_, 7, 3>(t, operands, out, ldo),
        _ => gemm_u8i8::gemm::<_, 8, 3>(t, operands, out, ldo),
    }
}

gemm_on_each_block!(Avx512);

/// [`gemm`] with the dequantizing store, in the same tiles.
#[inline(always)]
pub(super) fn gemm_dequantize(t: Avx512, operands: Int8Operands<'_>, store: DequantizedOut<'_>) {
    match operands.rows {
        1 => gemm_u8i8::gemm_dequantize::<_, 1, 2>(t, operands, store),
        2 => gemm_u8i8::gemm_dequantize::<_, 2, 4>(t, operands, store),
        3 => gemm_u8i8::gemm_dequantize::<_, 3, 4>(t, operands, store),
        4 => gemm_u8i8::gemm_dequantize::<_, 4, 4>(t, operands, store),
        5 => gemm_u8i8::gemm_dequantize::<_, 5, 4>(t, operands, store),
        6 => gemm_u8i8::gemm_dequantize::<_, 6, 4>(t, operands, store),
        7 => gemm_u8i8::gemm_dequantize::<_, 7, 3>(t, operands, store),
        _ => gemm_u8i8::gemm_dequantize::<_, 8, 3>(t, operands, store),
    }
}

/// A mask of the first `len < 16` lanes.
#[inline(always)]
fn first_lanes(len: usize) -> __mmask16 {
    ((1u32 << len) - 1) as __mmask16
}

impl Int8Dot for Avx512 {
    type S = Avx512;
    type A = __m512i;
    type W = __m512i;
    type Acc = __m512i;

    #[inline(always)]
    fn zero(self) -> __m512i {
        // SAFETY: the token proves AVX-512F (see `Avx512`).
        unsafe { _mm512_setzero_si512() }
    }

    #[inline(always)]
    fn broadcast(self, a: [u8; K_GROUP]) -> __m512i {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_set1_epi32(i32::from_le_bytes(a)) }
    }

    #[inline(always)]
    fn load(self, w: &Block) -> __m512i {
        // SAFETY: the token proves AVX-512F; a `Block` is 64 bytes aligned to 64.
        unsafe { _mm512_load_si512(w.0.as_ptr().cast()) }
    }

    #[inline(always)]
    fn dot(self, acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
        // SAFETY: the token proves AVX-512 VNNI. `vpdpbusd` (not the saturating `vpdpbusds`)
        // adds the four exact u8 x s8 products of each lane to the wrapping int32 lane.
        unsafe { _mm512_dpbusd_epi32(acc, a, w) }
    }

    #[inline(always)]
    fn add(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the token proves AVX-512F.
        unsafe { _mm512_add_epi32(a, b) }
    }

    #[inline(always)]
    fn to_array(self, acc: __m512i) -> [i32; PANEL_WIDTH] {
        // SAFETY: same size, and every bit pattern is a valid `[i32; 16]`.
        unsafe { std::mem::transmute::<__m512i, [i32; PANEL_WIDTH]>(acc) }
    }

    #[inline(always)]
    fn simd(self) -> Avx512 {
        self
    }

    #[inline(always)]
    fn piece(self, acc: Self::Acc, i: usize) -> <Avx512 as Simd>::I {
        debug_assert_eq!(i, 0);
        acc
    }
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    const TANH_FAST_PATH: bool = true;
    type F = __m512;
    type I = __m512i;
    type D = __m512d;
    type M = __mmask16;

    // SAFETY: the token proves AVX-512F (see `Avx512`), all that these intrinsics need; the
    // unaligned loads and store access the 16 lanes the caller provides. The conversions round in
    // MXCSR's mode, to nearest even (Rust never changes it).
    intrinsic_methods! {
        fn(v: f32) -> __m512: splat = _mm512_set1_ps;
        fn(v: i32) -> __m512i: splat_i32 = _mm512_set1_epi32;
        fn(v: f64) -> __m512d: splat_d = _mm512_set1_pd;
        fn(v: i64) -> __m512i: splat_i64 = _mm512_set1_epi64;
        fn(a: __m512, b: __m512) -> __m512:
            add = _mm512_add_ps, sub = _mm512_sub_ps, mul = _mm512_mul_ps, div = _mm512_div_ps, min = _mm512_min_ps,
            max = _mm512_max_ps;
        fn(a: __m512, b: __m512, c: __m512) -> __m512: fmadd = _mm512_fmadd_ps;
        fn(a: __m512) -> __m512:
            round_even = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>;
        fn(a: __m512, b: __m512) -> __mmask16: lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>;
        fn(a: __m512) -> __m512i: round_to_i32 = _mm512_cvtps_epi32;
        fn(a: __m512i) -> __m512: i32_to_f32 = _mm512_cvtepi32_ps;
        fn(a: __m512i) -> __m512i: half_i32 = _mm512_srai_epi32::<1>;
        fn(a: __m512i, b: __m512i) -> __m512i:
            sub_i32 = _mm512_sub_epi32, mul_i32 = _mm512_mullo_epi32, add_i64 = _mm512_add_epi64;
        fn(a: __m512d, b: __m512d) -> __m512d:
            add_d = _mm512_add_pd, sub_d = _mm512_sub_pd, mul_d = _mm512_mul_pd, div_d = _mm512_div_pd;
        fn(a: __m512d, b: __m512d, c: __m512d) -> __m512d: fmadd_d = _mm512_fmadd_pd;
        fn(a: __m512d) -> __m512i: to_bits_d = _mm512_castpd_si512;
        fn(a: __m512i) -> __m512d: d_from_bits = _mm512_castsi512_pd;
        unsafe fn(p: *const f32) -> __m512: load = _mm512_loadu_ps;
        unsafe fn(p: *const i32) -> __m512i: load_i32 = _mm512_loadu_epi32;
        unsafe fn(p: *mut f32, a: __m512): store = _mm512_storeu_ps;
    }

    #[inline(always)]
    fn any_lt_i64(self, a: __m512i, b: __m512i) -> bool {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_cmplt_epi64_mask(a, b) != 0 }
    }

    #[inline(always)]
    fn neg(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(i32::MIN))) }
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
    fn pow2i(self, q: __m512i) -> __m512 {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(q, _mm512_set1_epi32(0x7f)))) }
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
    fn neg_d(self, a: __m512d) -> __m512d {
        // SAFETY: AVX-512F (token).
        unsafe { _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(i64::MIN))) }
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
    fn lookup16(self, table: &[u64; 16], a: __m512i) -> __m512i {
        // SAFETY: AVX-512F (token); the two loads read the 16 entries of `table`. The permutation
        // reads only the low four bits of each index: bit 3 picks the register, bits 0..3 the lane.
        unsafe {
            let entries = table.as_ptr();
            _mm512_permutex2var_epi64(_mm512_loadu_epi64(entries.cast()), a, _mm512_loadu_epi64(entries.add(8).cast()))
        }
    }

    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> __m512 {
        // SAFETY: AVX-512F (token); the masked load reads only the `len` lanes the caller provides.
        unsafe { _mm512_maskz_loadu_ps(first_lanes(len), p) }
    }

    #[inline(always)]
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> __m512i {
        // SAFETY: AVX-512F (token); the masked load reads only the `len` lanes the caller provides.
        unsafe { _mm512_maskz_loadu_epi32(first_lanes(len), p) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m512 {
        // SAFETY: the token proves AVX-512F; the caller provides 16 readable u16 (32 bytes).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_f16_partial(self, p: *const u16, len: usize) -> __m512 {
        // SAFETY: the token proves AVX-512F/BW/VL; the masked load reads only the `len` lanes the
        // caller provides.
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(len), p.cast())) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: __m512) {
        // SAFETY: AVX-512F (token); the masked store writes only the `len` lanes the caller
        // provides.
        unsafe { _mm512_mask_storeu_ps(p, first_lanes(len), a) }
    }

    #[inline(always)]
    unsafe fn store_u8(self, p: *mut u8, a: __m512) {
        // SAFETY: the token proves AVX-512F; the caller provides 16 writable bytes. The lanes are
        // integers in 0..=255, so the conversion is exact and the truncation to bytes keeps them.
        unsafe { _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(a))) }
    }
}
