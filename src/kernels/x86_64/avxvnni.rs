//! The AVX-VNNI path: VEX-encoded `vpdpbusd` on 256-bit registers (a panel k-group is two
//! registers, columns 0-7 and 8-15). Its element-wise kernels are the AVX2 ones.

use std::arch::x86_64::*;

use super::avx2::{self, Avx2};
use super::gemm_u8i8::{self, Int8Dot};
use crate::kernels::simd::Simd;
use crate::kernels::{entry_points, Epilogue, Isa, Kernels};
use crate::pack::{Block, PackedWeights, K_GROUP, PANEL_WIDTH};

/// Proof that the CPU has AVX-VNNI, AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(super) struct AvxVnni(Avx2);

impl AvxVnni {
    /// The token, if this CPU has the instructions.
    pub(super) fn detect() -> Option<Self> {
        Avx2::detect().filter(|_| is_x86_feature_detected!("avxvnni")).map(AvxVnni)
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have AVX-VNNI, AVX2, FMA and F16C.
    unsafe fn assume_supported() -> Self {
        // SAFETY: the caller guarantees AVX2, FMA and F16C.
        AvxVnni(unsafe { Avx2::assume_supported() })
    }
}

/// The AVX-VNNI table: its own GEMM, the AVX2 kernels for everything else (an `AvxVnni` token
/// proves everything they need).
pub(super) fn table(_: AvxVnni) -> Kernels {
    Kernels {
        isa: Isa::AvxVnni,
        range: avx2::range,
        quantize_u8: avx2::quantize_u8,
        gemm_u8i8,
        gemm_u8i8_dequantize,
        gemm_f32_f16: avx2::gemm_f32_f16,
        lstm: avx2::lstm,
        gru: avx2::gru,
        elman: avx2::elman,
    }
}

entry_points! {
    AvxVnni, "avx2,fma,f16c,avxvnni";
    fn gemm_u8i8(a: &[u8], lda: usize, rows: usize, b: &PackedWeights, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_dequantize(
        a: &[u8], lda: usize, rows: usize, b: &PackedWeights, row_sums: &[i32], params: &Epilogue<'_>, out: &mut [f32],
        ldo: usize
    ) = gemm_dequantize;
}

/// The int8 GEMM: one row goes panel by panel (one stream of weights, see `gemm_u8i8`), two rows
/// 2 panels at once; more rows
/// share each loaded weight vector across 6 rows (12 accumulators, within the 16 ymm registers).
#[inline(always)]
fn gemm(t: AvxVnni, a: &[u8], lda: usize, rows: usize, b: &PackedWeights, out: &mut [i32], ldo: usize) {
    match rows {
        1 => gemm_u8i8::gemm::<_, 1, 1>(t, a, lda, rows, b, out, ldo),
        2 => gemm_u8i8::gemm::<_, 2, 2>(t, a, lda, rows, b, out, ldo),
        _ => gemm_u8i8::gemm::<_, 6, 1>(t, a, lda, rows, b, out, ldo),
    }
}

/// [`gemm`] with the dequantizing store, in the same tiles.
#[allow(clippy::too_many_arguments)] // the kernel's arguments and the token
#[inline(always)]
fn gemm_dequantize(
    t: AvxVnni,
    a: &[u8],
    lda: usize,
    rows: usize,
    b: &PackedWeights,
    row_sums: &[i32],
    params: &Epilogue<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    match rows {
        1 => gemm_u8i8::gemm_dequantize::<_, 1, 1>(t, a, lda, rows, b, row_sums, params, out, ldo),
        2 => gemm_u8i8::gemm_dequantize::<_, 2, 2>(t, a, lda, rows, b, row_sums, params, out, ldo),
        _ => gemm_u8i8::gemm_dequantize::<_, 6, 1>(t, a, lda, rows, b, row_sums, params, out, ldo),
    }
}

impl Int8Dot for AvxVnni {
    type S = Avx2;
    type A = __m256i;
    type W = [__m256i; 2];
    type Acc = [__m256i; 2];

    #[inline(always)]
    fn zero(self) -> [__m256i; 2] {
        // SAFETY: the token proves AVX.
        unsafe { [_mm256_setzero_si256(); 2] }
    }

    #[inline(always)]
    fn broadcast(self, a: [u8; K_GROUP]) -> __m256i {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_set1_epi32(i32::from_le_bytes(a)) }
    }

    #[inline(always)]
    fn load(self, w: &Block) -> [__m256i; 2] {
        avx2::load_halves(self.0, w)
    }

    #[inline(always)]
    fn dot(self, acc: [__m256i; 2], a: __m256i, w: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: the token proves AVX-VNNI. `vpdpbusd` (not `vpdpbusds`) adds the four exact
        // u8 x s8 products of each lane to the wrapping int32 lane.
        unsafe { [_mm256_dpbusd_avx_epi32(acc[0], a, w[0]), _mm256_dpbusd_avx_epi32(acc[1], a, w[1])] }
    }

    #[inline(always)]
    fn add(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: the token proves AVX2.
        unsafe { [_mm256_add_epi32(a[0], b[0]), _mm256_add_epi32(a[1], b[1])] }
    }

    #[inline(always)]
    fn to_array(self, acc: [__m256i; 2]) -> [i32; PANEL_WIDTH] {
        avx2::halves_to_array(acc)
    }

    #[inline(always)]
    fn simd(self) -> Avx2 {
        self.0
    }

    #[inline(always)]
    fn piece(self, acc: Self::Acc, i: usize) -> <Avx2 as Simd>::I {
        acc[i]
    }
}
