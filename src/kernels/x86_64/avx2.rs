//! The AVX2 path (with FMA and F16C): its token [`Avx2`], the [`Simd`] operations on 256-bit
//! registers (8 float lanes, float64 halves of 4) that its generic kernels run on (the AVX-VNNI
//! path shares them), and the int8 GEMM on `vpmaddubsw`, made exact for every uint8 activation.
//!
//! `vpmaddubsw` adds adjacent u8 x s8 products into int16 with saturation, which is only exact
//! while a pair cannot exceed 32767: activations up to 127 (what `reduce_range` produces) give at
//! most `127 * 128 * 2 = 32512`. So the GEMM first checks the activations: 7-bit ones take one
//! `vpmaddubsw` per step ([`SevenBit`]), others are split as `a = lo + 128 * hi` with
//! `lo = a & 0x7f` and `hi = a >> 7`, two exact `vpmaddubsw` per step ([`EightBit`]).

use std::arch::x86_64::*;

use super::gemm_u8i8::{self, Int8Dot};
use crate::kernels::simd::{intrinsic_methods, Simd};
use crate::kernels::{
    entry_points, gemm_f16, quantize_input, recurrent_step, requantize_rows, DequantizedOut, Int8Blocks, Int8Operands, Isa,
    Kernels, Nonlinearity, Projected, Range,
};
use crate::pack::{Block, K_GROUP, PANEL_WIDTH};
use crate::requantize::Requantize;
#[cfg(test)]
use crate::kernels::vector_math::{self, tests::Function};

/// Proof that the CPU has AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has the instructions.
    pub(super) fn detect() -> Option<Self> {
        let supported =
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        supported.then_some(Avx2(()))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    pub(super) unsafe fn assume_supported() -> Self {
        Avx2(())
    }
}

/// The AVX2 table.
pub(super) fn table(_: Avx2) -> Kernels {
    Kernels {
        isa: Isa::Avx2,
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
    Avx2, "avx2,fma,f16c";
    fn range(x: &[f32]) -> Range = quantize_input::range;
    fn quantize_u8(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) = quantize_input::quantize_u8;
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
    fn gemm_u8i8_dequantize(operands: Int8Operands<'_>, store: DequantizedOut<'_>) = gemm_dequantize;
    fn requantize(acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]) = requantize_rows::requantize;
    fn gemm_f32_f16(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32])
        = gemm_f16::gemm_f32_f16::<_, 4, 2>;
    fn lstm(hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) = recurrent_step::lstm;
    fn gru(hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize) = recurrent_step::gru;
    fn elman(nonlinearity: Nonlinearity, hg: &Projected<'_>, ig: &Projected<'_>, h_out: &mut [f32], hidden: usize)
        = recurrent_step::elman;
    #[cfg(test)]
    fn vector_math(f: Function, xs: &[f32]) -> Vec<f32> = vector_math::tests::apply;
}

/// The int8 GEMM: the single-`vpmaddubsw` step when every activation byte the product reads is
/// below 128, the split step otherwise. One row goes panel by panel (one stream of weights, see
/// `gemm_u8i8`); more rows go 4 at a time.
#[inline(always)]
fn gemm(t: Avx2, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    gemm_checked(t, seven_bit(operands), operands, out, ldo);
}

/// [`gemm`] with the activations already looked at: `seven_bit` says whether every byte the
/// product reads is below 128.
#[inline(always)]
fn gemm_checked(t: Avx2, seven_bit: bool, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    let (seven, eight) = (Halves(t, SevenBit), Halves(t, EightBit));
    match (seven_bit, operands.rows) {
        (true, 1) => gemm_u8i8::gemm::<_, 1, 1>(seven, operands, out, ldo),
        (true, _) => gemm_u8i8::gemm::<_, 4, 1>(seven, operands, out, ldo),
        (false, 1) => gemm_u8i8::gemm::<_, 1, 1>(eight, operands, out, ldo),
        (false, _) => gemm_u8i8::gemm::<_, 4, 1>(eight, operands, out, ldo),
    }
}

/// [`gemm`] on each of a run of blocks, the activations looked at once for all of them (every
/// block reads the same bytes: the blocks have one `k`).
#[inline(always)]
fn gemm_blocks(t: Avx2, operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) {
    let Int8Blocks { a, lda, rows, blocks } = operands;
    let Some(b) = blocks.first() else { return };
    let seven_bit = seven_bit(Int8Operands { a, lda, rows, b });
    for (column, operands) in operands.each() {
        gemm_checked(t, seven_bit, operands, &mut out[column..], ldo);
    }
}

/// Whether every activation byte the product reads is below 128.
#[inline(always)]
fn seven_bit(operands: Int8Operands<'_>) -> bool {
    let Int8Operands { a, lda, rows, b } = operands;
    let k_padded = b.k_padded();
    (0..rows).all(|r| a[r * lda..r * lda + k_padded].iter().fold(0, |acc, &x| acc | x) < 0x80)
}

/// [`gemm`] with the dequantizing store, in the same tiles and steps.
#[inline(always)]
fn gemm_dequantize(t: Avx2, operands: Int8Operands<'_>, store: DequantizedOut<'_>) {
    let (seven, eight) = (Halves(t, SevenBit), Halves(t, EightBit));
    match (seven_bit(operands), operands.rows) {
        (true, 1) => gemm_u8i8::gemm_dequantize::<_, 1, 1>(seven, operands, store),
        (true, _) => gemm_u8i8::gemm_dequantize::<_, 4, 1>(seven, operands, store),
        (false, 1) => gemm_u8i8::gemm_dequantize::<_, 1, 1>(eight, operands, store),
        (false, _) => gemm_u8i8::gemm_dequantize::<_, 4, 1>(eight, operands, store),
    }
}

/// A dot-product step on 256-bit registers, one half of a panel k-group (8 columns) at a time:
/// [`Halves`] runs it on both. The AVX2 steps ([`SevenBit`], [`EightBit`]) and AVX-VNNI's.
pub(super) trait HalfStep: Copy {
    /// 4 activation bytes of one row, prepared for [`HalfStep::dot`].
    type A: Copy;

    /// Prepares 4 consecutive activation bytes of one row.
    fn broadcast(self, t: Avx2, a: [u8; K_GROUP]) -> Self::A;
    /// `acc` plus, per int32 lane, the `Σ` of the 4 products of the activation bytes `a` and the
    /// lane's 4 weight bytes in `w` (wrapping).
    fn dot(self, t: Avx2, acc: __m256i, a: Self::A, w: __m256i) -> __m256i;
}

/// The [`Int8Dot`] of a [`HalfStep`]: a panel's weights and accumulators are two registers,
/// columns 0-7 and 8-15.
#[derive(Clone, Copy)]
pub(super) struct Halves<T>(pub(super) Avx2, pub(super) T);

impl<T: HalfStep> Int8Dot for Halves<T> {
    type S = Avx2;
    type A = T::A;
    type W = [__m256i; 2];
    type Acc = [__m256i; 2];

    #[inline(always)]
    fn zero(self) -> [__m256i; 2] {
        [broadcast(self.0, 0); 2]
    }

    #[inline(always)]
    fn broadcast(self, a: [u8; K_GROUP]) -> T::A {
        self.1.broadcast(self.0, a)
    }

    #[inline(always)]
    fn load(self, w: &Block) -> [__m256i; 2] {
        let p = w.0.as_ptr().cast::<__m256i>();
        // SAFETY: the token proves AVX; a `Block` is 64 bytes aligned to 64, so both halves are in
        // bounds and aligned to 32.
        unsafe { [_mm256_load_si256(p), _mm256_load_si256(p.add(1))] }
    }

    #[inline(always)]
    fn dot(self, acc: [__m256i; 2], a: T::A, w: [__m256i; 2]) -> [__m256i; 2] {
        [self.1.dot(self.0, acc[0], a, w[0]), self.1.dot(self.0, acc[1], a, w[1])]
    }

    #[inline(always)]
    fn add(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: the token proves AVX2.
        unsafe { [_mm256_add_epi32(a[0], b[0]), _mm256_add_epi32(a[1], b[1])] }
    }

    #[inline(always)]
    fn to_array(self, acc: [__m256i; 2]) -> [i32; PANEL_WIDTH] {
        // SAFETY: same size, and every bit pattern is a valid `[i32; 16]`.
        unsafe { std::mem::transmute::<[__m256i; 2], [i32; PANEL_WIDTH]>(acc) }
    }

    #[inline(always)]
    fn simd(self) -> Avx2 {
        self.0
    }

    #[inline(always)]
    fn piece(self, acc: [__m256i; 2], i: usize) -> __m256i {
        acc[i]
    }
}

/// Every lane the 4 bytes `a`.
#[inline(always)]
fn broadcast(_: Avx2, a: u32) -> __m256i {
    // SAFETY: the token proves AVX.
    unsafe { _mm256_set1_epi32(a as i32) }
}

/// `Σ` of the products of 4 u8 `a` and 4 s8 `w` per int32 lane, multiplied by `scale`, when no
/// adjacent pair of products leaves the int16 range.
#[inline(always)]
fn pair_products(_: Avx2, a: __m256i, w: __m256i, scale: i16) -> __m256i {
    // SAFETY: the token proves AVX2.
    unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(scale)) }
}

/// The dot-product step for activations below 128: `vpmaddubsw` cannot saturate.
#[derive(Clone, Copy)]
struct SevenBit;

impl HalfStep for SevenBit {
    type A = __m256i;

    #[inline(always)]
    fn broadcast(self, t: Avx2, a: [u8; K_GROUP]) -> __m256i {
        broadcast(t, u32::from_le_bytes(a))
    }

    #[inline(always)]
    fn dot(self, t: Avx2, acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the token proves AVX2.
        unsafe { _mm256_add_epi32(acc, pair_products(t, a, w, 1)) }
    }
}

/// The dot-product step for any activations: `a = lo + 128 * hi` with `lo <= 127` and `hi <= 1`,
/// so neither `vpmaddubsw` saturates (pairs of at most `127 * 128 * 2` and `2 * 128`).
#[derive(Clone, Copy)]
struct EightBit;

impl HalfStep for EightBit {
    /// `lo` and `hi`.
    type A = [__m256i; 2];

    #[inline(always)]
    fn broadcast(self, t: Avx2, a: [u8; K_GROUP]) -> [__m256i; 2] {
        let a = u32::from_le_bytes(a);
        [broadcast(t, a & 0x7f7f_7f7f), broadcast(t, (a >> 7) & 0x0101_0101)]
    }

    #[inline(always)]
    fn dot(self, t: Avx2, acc: __m256i, a: [__m256i; 2], w: __m256i) -> __m256i {
        let (lo, hi) = (pair_products(t, a[0], w, 1), pair_products(t, a[1], w, 128));
        // SAFETY: the token proves AVX2.
        unsafe { _mm256_add_epi32(acc, _mm256_add_epi32(lo, hi)) }
    }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const TANH_FAST_PATH: bool = false;
    type F = __m256;
    type I = __m256i;
    type D = __m256d;
    type M = __m256;

    // SAFETY: the token proves AVX, AVX2, FMA and F16C (see `Avx2`), all that these intrinsics
    // need; the unaligned load and store access the 8 floats the caller provides. The conversions
    // round in MXCSR's mode, to nearest even (Rust never changes it).
    intrinsic_methods! {
        fn(v: f32) -> __m256: splat = _mm256_set1_ps;
        fn(v: i32) -> __m256i: splat_i32 = _mm256_set1_epi32;
        fn(v: f64) -> __m256d: splat_d = _mm256_set1_pd;
        fn(v: i64) -> __m256i: splat_i64 = _mm256_set1_epi64x;
        fn(a: __m256, b: __m256) -> __m256:
            add = _mm256_add_ps, sub = _mm256_sub_ps, mul = _mm256_mul_ps, div = _mm256_div_ps, min = _mm256_min_ps,
            max = _mm256_max_ps;
        fn(a: __m256, b: __m256, c: __m256) -> __m256: fmadd = _mm256_fmadd_ps;
        fn(a: __m256) -> __m256: round_even = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>;
        fn(a: __m256, b: __m256) -> __m256: lt = _mm256_cmp_ps::<_CMP_LT_OQ>;
        fn(a: __m256) -> __m256i: round_to_i32 = _mm256_cvtps_epi32;
        fn(a: __m256i) -> __m256: i32_to_f32 = _mm256_cvtepi32_ps;
        fn(a: __m256i) -> __m256i: half_i32 = _mm256_srai_epi32::<1>;
        fn(a: __m256i, b: __m256i) -> __m256i:
            sub_i32 = _mm256_sub_epi32, mul_i32 = _mm256_mullo_epi32, add_i64 = _mm256_add_epi64;
        fn(a: __m256d, b: __m256d) -> __m256d:
            add_d = _mm256_add_pd, sub_d = _mm256_sub_pd, mul_d = _mm256_mul_pd, div_d = _mm256_div_pd;
        fn(a: __m256d, b: __m256d, c: __m256d) -> __m256d: fmadd_d = _mm256_fmadd_pd;
        fn(a: __m256d) -> __m256i: to_bits_d = _mm256_castpd_si256;
        fn(a: __m256i) -> __m256d: d_from_bits = _mm256_castsi256_pd;
        unsafe fn(p: *const f32) -> __m256: load = _mm256_loadu_ps;
        unsafe fn(p: *mut f32, a: __m256): store = _mm256_storeu_ps;
    }

    #[inline(always)]
    fn neg(self, a: __m256) -> __m256 {
        // SAFETY: AVX (token).
        unsafe { _mm256_xor_ps(a, _mm256_set1_ps(-0.0)) }
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
    fn pow2i(self, q: __m256i) -> __m256 {
        // SAFETY: AVX2 (token).
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(q, _mm256_set1_epi32(0x7f)))) }
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
    fn neg_d(self, a: __m256d) -> __m256d {
        // SAFETY: AVX (token).
        unsafe { _mm256_xor_pd(a, _mm256_set1_pd(-0.0)) }
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
    fn lookup16(self, table: &[u64; 16], a: __m256i) -> __m256i {
        // SAFETY: AVX2 (token); every index is masked to 0..16, inside `table`.
        unsafe {
            let index = _mm256_and_si256(a, _mm256_set1_epi64x(15));
            _mm256_i64gather_epi64::<8>(table.as_ptr().cast(), index)
        }
    }

    #[inline(always)]
    fn any_lt_i64(self, a: __m256i, b: __m256i) -> bool {
        // SAFETY: AVX2 (token). The comparison sets every bit of the lanes where `b > a`; the
        // move takes their sign bits.
        unsafe { _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(b, a))) != 0 }
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
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: the token proves AVX and F16C; the caller provides 8 readable u16 (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_f16_partial(self, p: *const u16, len: usize) -> __m256 {
        let mut lanes = [0u16; 8];
        // SAFETY: the caller provides `len < 8` readable u16, and `lanes` has room for them.
        unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), len) };
        // SAFETY: `lanes` holds 8 u16.
        unsafe { self.load_f16(lanes.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: __m256) {
        // SAFETY: AVX2 (token); the masked store writes only the `len` lanes the caller provides.
        unsafe { _mm256_maskstore_ps(p, first_lanes(self, len), a) }
    }

    #[inline(always)]
    unsafe fn store_u8(self, p: *mut u8, a: __m256) {
        // SAFETY: the token proves AVX2; the caller provides 8 writable bytes. The lanes are
        // integers in 0..=255, so the conversion is exact and the unsigned saturating packs keep
        // them; the low 8 bytes of the packed vector are the lanes in order.
        unsafe {
            let q = _mm256_cvtps_epi32(a);
            let words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            _mm_storel_epi64(p.cast(), _mm_packus_epi16(words, words));
        }
    }
}

/// A `vmaskmovps` mask of the first `len < 8` lanes: lane `i` set when `i < len`.
#[inline(always)]
fn first_lanes(_: Avx2, len: usize) -> __m256i {
    // SAFETY: the token proves AVX2.
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}
