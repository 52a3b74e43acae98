//! The NEON path (Advanced SIMD, on every aarch64 CPU): the element-wise kernels both aarch64
//! tables use, and the int8 GEMM on widening multiplies.
//!
//! Without a dot-product instruction, one step multiplies 8 activation bytes by 8 weight bytes into
//! int16 (`smull`) and adds adjacent pairs into int32 lanes (`sadalp`). Both operands are signed
//! there: activations enter as `a ^ 0x80 = a - 128` (see [`gemm_u8i8`](mod@gemm_u8i8)). Every
//! product of two int8 lies in `-16256..=16384`, so the int16 products are exact, and `sadalp`
//! widens before it adds, so the pair sums are too. (Accumulating products in int16 lanes, as
//! `smlal` does, would not be: two `-128 * -128` make 32768.)

use std::arch::aarch64::*;

use super::gemm_u8i8::{self, Int8Dot};
use super::{epilogue, gemm_f16, quantize_input};
use crate::kernels::{entry_points, scalar, scalar_step, Dequantize, Isa, Kernels, Range};
use crate::pack::{Block, PackedWeights, K_GROUP};

/// Proof that the CPU has NEON (Advanced SIMD).
#[derive(Clone, Copy, Debug)]
pub(super) struct Neon(());

impl Neon {
    /// The token, if this CPU has the instructions (every aarch64 CPU this crate targets does).
    pub(super) fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon(()))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have NEON.
    pub(super) unsafe fn assume_supported() -> Self {
        Neon(())
    }

    /// One panel k-group: columns 0-3, 4-7, 8-11 and 12-15, each 4 k-bytes per column.
    #[inline(always)]
    pub(super) fn load_block(self, w: &Block) -> [int8x16_t; 4] {
        let p = w.0.as_ptr();
        // SAFETY: the token proves NEON; a `Block` holds 64 bytes, so the four 16-byte loads are in
        // bounds.
        unsafe { [vld1q_s8(p), vld1q_s8(p.add(16)), vld1q_s8(p.add(32)), vld1q_s8(p.add(48))] }
    }

    /// 4 activation bytes as signed bytes `a - 128` (`a ^ 0x80`), repeated in every 32-bit lane.
    #[inline(always)]
    pub(super) fn broadcast_shifted(self, a: [u8; K_GROUP]) -> int8x16_t {
        // SAFETY: the token proves NEON.
        unsafe { vreinterpretq_s8_u32(vdupq_n_u32(u32::from_le_bytes(a) ^ 0x8080_8080)) }
    }

    /// The four int32 lanes of each vector, in order.
    #[inline(always)]
    pub(super) fn to_array(self, v: [int32x4_t; 4]) -> [i32; 16] {
        let mut lanes = [0; 16];
        for (chunk, v) in lanes.chunks_exact_mut(4).zip(v) {
            // SAFETY: the token proves NEON; `chunk` has room for 4 int32.
            unsafe { vst1q_s32(chunk.as_mut_ptr(), v) };
        }
        lanes
    }
}

/// The NEON table.
pub(super) fn table(_: Neon) -> Kernels {
    Kernels {
        isa: Isa::Neon,
        range,
        quantize_u8,
        gemm_u8i8,
        gemm_u8i8_dequantize,
        gemm_f32_f16,
        lstm: scalar_step::lstm,
        gru: scalar_step::gru,
        elman: scalar_step::elman,
    }
}

/// See [`Kernels::gemm_u8i8_dequantize`]: this path's GEMM, then its epilogue.
#[allow(clippy::too_many_arguments)] // the kernel's arguments
fn gemm_u8i8_dequantize(
    a: &[u8],
    lda: usize,
    rows: usize,
    b: &PackedWeights,
    row_sums: &[i32],
    params: &Dequantize<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    scalar::gemm_then_dequantize(gemm_u8i8, dequantize, a, lda, rows, b, row_sums, params, out, ldo);
}

entry_points! {
    Neon, "neon";
    fn range(x: &[f32]) -> Range = quantize_input::range;
    fn quantize_u8(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) = quantize_input::quantize_u8;
    fn gemm_u8i8(a: &[u8], lda: usize, rows: usize, b: &PackedWeights, out: &mut [i32], ldo: usize) = gemm;
    fn dequantize(acc: &[i32], row_sums: &[i32], params: &Dequantize<'_>, out: &mut [f32]) = epilogue::dequantize;
    fn gemm_f32_f16(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32])
        = gemm_f16::gemm_f32_f16::<4, 4>;
}

/// The int8 GEMM: one row walks 2 panels at once; more rows go 2 at a time (16 accumulator
/// registers either way).
#[inline(always)]
fn gemm(t: Neon, a: &[u8], lda: usize, rows: usize, b: &PackedWeights, out: &mut [i32], ldo: usize) {
    if rows == 1 {
        gemm_u8i8::gemm::<_, 1, 2>(Smull(t), a, lda, rows, b, out, ldo)
    } else {
        gemm_u8i8::gemm::<_, 2, 1>(Smull(t), a, lda, rows, b, out, ldo)
    }
}

/// The widening-multiply dot-product step.
#[derive(Clone, Copy)]
struct Smull(Neon);

impl Int8Dot for Smull {
    /// Per group of 4 columns, two vectors: lanes `[c0 k01, c0 k23, c1 k01, c1 k23]` and the same
    /// for columns 2 and 3 (`k01` the sum over the k-group's first two bytes, `k23` the last two).
    type Acc = [[int32x4_t; 2]; 4];

    #[inline(always)]
    fn neon(self) -> Neon {
        self.0
    }

    #[inline(always)]
    fn zero(self) -> Self::Acc {
        // SAFETY: the token proves NEON.
        [[unsafe { vdupq_n_s32(0) }; 2]; 4]
    }

    #[inline(always)]
    fn dot(self, acc: Self::Acc, a: int8x16_t, w: [int8x16_t; 4]) -> Self::Acc {
        let mut acc = acc;
        // SAFETY: the token proves NEON.
        unsafe {
            let a_low = vget_low_s8(a);
            for (acc, w) in acc.iter_mut().zip(w) {
                acc[0] = vpadalq_s16(acc[0], vmull_s8(a_low, vget_low_s8(w)));
                acc[1] = vpadalq_s16(acc[1], vmull_high_s8(a, w));
            }
        }
        acc
    }

    #[inline(always)]
    fn columns(self, acc: Self::Acc) -> [int32x4_t; 4] {
        // SAFETY: the token proves NEON. `addp` adds adjacent lanes: `[c0, c1, c2, c3]`.
        acc.map(|[low, high]| unsafe { vpaddq_s32(low, high) })
    }
}
