//! The AVX-VNNI path: VEX-encoded `vpdpbusd` on 256-bit registers (a panel k-group is two
//! registers, columns 0-7 and 8-15). Its element-wise kernels are the AVX2 ones.

use std::arch::x86_64::*;

use super::avx2::{self, Avx2, HalfStep, Halves};
use super::gemm_u8i8;
use crate::kernels::{entry_points, gemm_on_each_block, DequantizedOut, Int8Blocks, Int8Operands, Isa, Kernels};
use crate::pack::K_GROUP;

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

/// The AVX-VNNI table: the AVX2 one with its own GEMMs (an `AvxVnni` token proves everything the
/// AVX2 kernels need).
pub(super) fn table(t: AvxVnni) -> Kernels {
    Kernels { isa: Isa::AvxVnni, gemm_u8i8, gemm_u8i8_blocks, gemm_u8i8_dequantize, ..avx2::table(t.0) }
}

entry_points! {
    AvxVnni, "avx2,fma,f16c,avxvnni";
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
    fn gemm_u8i8_dequantize(operands: Int8Operands<'_>, store: DequantizedOut<'_>) = gemm_dequantize;
}

/// The int8 GEMM: one row goes panel by panel (one stream of weights, see `gemm_u8i8`), two rows
/// 2 panels at once; more rows
/// share each loaded weight vector across 6 rows (12 accumulators, within the 16 ymm registers).
#[inline(always)]
fn gemm(t: AvxVnni, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    let d = Halves(t.0, t);
    match operands.rows {
        1 => gemm_u8i8::gemm::<_, 1, 1>(d, operands, out, ldo),
        2 => gemm_u8i8::gemm::<_, 2, 2>(d, operands, out, ldo),
        _ => gemm_u8i8::gemm::<_, 6, 1>(d, operands, out, ldo),
    }
}

gemm_on_each_block!(AvxVnni);

/// [`gemm`] with the dequantizing store, in the same tiles.
#[inline(always)]
fn gemm_dequantize(t: AvxVnni, operands: Int8Operands<'_>, store: DequantizedOut<'_>) {
    let d = Halves(t.0, t);
    match operands.rows {
        1 => gemm_u8i8::gemm_dequantize::<_, 1, 1>(d, operands, store),
        2 => gemm_u8i8::gemm_dequantize::<_, 2, 2>(d, operands, store),
        _ => gemm_u8i8::gemm_dequantize::<_, 6, 1>(d, operands, store),
    }
}

impl HalfStep for AvxVnni {
    type A = __m256i;

    #[inline(always)]
    fn broadcast(self, _: Avx2, a: [u8; K_GROUP]) -> __m256i {
        // SAFETY: the token proves AVX.
        unsafe { _mm256_set1_epi32(i32::from_le_bytes(a)) }
    }

    #[inline(always)]
    fn dot(self, _: Avx2, acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the token proves AVX-VNNI. `vpdpbusd` (not `vpdpbusds`) adds the four exact
        // u8 x s8 products of each lane to the wrapping int32 lane.
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, w) }
    }
}
