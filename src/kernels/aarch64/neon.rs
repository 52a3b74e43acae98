//! The NEON path (Advanced SIMD, on every aarch64 CPU): its token, the table both aarch64 paths
//! start from (the generic kernel bodies on NEON), and the int8 GEMM on widening multiplies.
//!
//! Without a dot-product instruction, one step multiplies 8 activation bytes by 8 weight bytes into
//! int16 (`smull`) and adds adjacent pairs into int32 lanes (`sadalp`). Both operands are signed
//! there: activations enter as `a ^ 0x80 = a - 128` (see [`gemm_u8i8`](mod@gemm_u8i8)). Every
//! product of two int8 lies in `-16256..=16384`, so the int16 products are exact, and `sadalp`
//! widens before it adds, so the pair sums are too. (Accumulating products in int16 lanes, as
//! `smlal` does, would not be: two `-128 * -128` make 32768.)
//!
//! The token implements [`Simd`] with 4 float32 lanes (`float32x4_t`, halves `float64x2_t`), so
//! the fused recurrent steps run on NEON; the dot-product path's table reuses them.

use std::arch::aarch64::*;

use super::gemm_f16;
use super::gemm_u8i8::{self, Int8Dot};
use crate::kernels::simd::{intrinsic_methods, Simd};
#[cfg(test)]
use crate::kernels::vector_math::{self, tests::Function};
use crate::kernels::{
    entry_points, gemm_on_each_block, quantize_input, recurrent_step, requantize_rows, scalar, Epilogue, Int8Blocks, Int8Operands, Isa, Kernels,
    Nonlinearity, Projected, Range,
};
use crate::requantize::Requantize;
use crate::pack::{Block, K_GROUP};

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
        gemm_u8i8_blocks,
        // This path's GEMM, then its epilogue, through the scalar kernel's reused buffer.
        gemm_u8i8_dequantize: |operands, store| scalar::gemm_then_dequantize(gemm_u8i8, dequantize, operands, store),
        requantize,
        gemm_f32_f16,
        lstm,
        gru,
        elman,
    }
}


entry_points! {
    Neon, "neon";
    fn range(x: &[f32]) -> Range = quantize_input::range;
    fn quantize_u8(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]) = quantize_input::quantize_u8;
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
    fn dequantize(acc: &[i32], row_sums: &[i32], params: &Epilogue<'_>, out: &mut [f32]) = gemm_u8i8::dequantize;
    fn requantize(acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]) = requantize_rows::requantize;
    fn gemm_f32_f16(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32])
        = crate::kernels::gemm_f16::gemm_f32_f16::<_, 4, 4>;
    fn lstm(hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize) = recurrent_step::lstm;
    fn gru(hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize) = recurrent_step::gru;
    fn elman(nonlinearity: Nonlinearity, hg: &Projected<'_>, ig: &Projected<'_>, h_out: &mut [f32], hidden: usize)
        = recurrent_step::elman;
    #[cfg(test)]
    fn vector_math(f: Function, xs: &[f32]) -> Vec<f32> = vector_math::tests::apply;
}

/// The int8 GEMM in tiles of 2 panel accumulators (16 accumulator registers).
#[inline(always)]
fn gemm(t: Neon, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    gemm_u8i8::gemm::<_, 2>(Smull(t), operands, out, ldo)
}

gemm_on_each_block!(Neon);

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

/// Four float32 lanes per register. Every float instruction below rounds to nearest even as the
/// FPCR is set in Rust programs, and keeps subnormals (no flush to zero): the contract's IEEE
/// operations. The NaN rules [`Simd`] leaves to each instruction set are settled as x86 does
/// where that is cheap: [`Simd::min`] and [`Simd::max`] are a compare and a select, exactly
/// `minps`/`maxps`; [`Simd::round_to_i32`] saturates (`fcvtns`), which the contract allows.
impl Simd for Neon {
    const LANES: usize = 4;
    // Not measured on an ARM core (the table is two scalar reads per register there).
    const TANH_FAST_PATH: bool = false;
    type F = float32x4_t;
    type I = int32x4_t;
    type D = float64x2_t;
    type M = uint32x4_t;

    // SAFETY: the token proves NEON, all that these intrinsics need; the loads and the store
    // (`ld1`/`st1`, no alignment needed) access the 4 lanes the caller provides.
    intrinsic_methods! {
        fn(v: f32) -> float32x4_t: splat = vdupq_n_f32;
        fn(v: i32) -> int32x4_t: splat_i32 = vdupq_n_s32;
        fn(v: f64) -> float64x2_t: splat_d = vdupq_n_f64;
        fn(a: float32x4_t, b: float32x4_t) -> float32x4_t:
            add = vaddq_f32, sub = vsubq_f32, mul = vmulq_f32, div = vdivq_f32;
        // `fneg` flips the sign bit only, NaNs included; `frintn`: to integral, ties to even.
        fn(a: float32x4_t) -> float32x4_t: neg = vnegq_f32, round_even = vrndnq_f32;
        // `fcmgt` with the operands swapped: false on NaN.
        fn(a: float32x4_t, b: float32x4_t) -> uint32x4_t: lt = vcltq_f32;
        // The masks are whole lanes, so the bitwise select picks lanes.
        fn(mask: uint32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t: select = vbslq_f32;
        // `fcvtns`: nearest, ties to even; saturating out of range, NaN to 0.
        fn(a: float32x4_t) -> int32x4_t: round_to_i32 = vcvtnq_s32_f32;
        // `scvtf` rounds to nearest even.
        fn(a: int32x4_t) -> float32x4_t: i32_to_f32 = vcvtq_f32_s32;
        // `sshr`: arithmetic.
        fn(a: int32x4_t) -> int32x4_t: half_i32 = vshrq_n_s32::<1>;
        // `mul` keeps the low 32 bits.
        fn(a: int32x4_t, b: int32x4_t) -> int32x4_t: sub_i32 = vsubq_s32, mul_i32 = vmulq_s32;
        fn(a: float64x2_t, b: float64x2_t) -> float64x2_t:
            add_d = vaddq_f64, sub_d = vsubq_f64, mul_d = vmulq_f64, div_d = vdivq_f64;
        // `fneg` flips the sign bit only.
        fn(a: float64x2_t) -> float64x2_t: neg_d = vnegq_f64;
        fn(a: float64x2_t) -> int32x4_t: to_bits_d = vreinterpretq_s32_f64;
        fn(a: int32x4_t) -> float64x2_t: d_from_bits = vreinterpretq_f64_s32;
        unsafe fn(p: *const f32) -> float32x4_t: load = vld1q_f32;
        unsafe fn(p: *const i32) -> int32x4_t: load_i32 = vld1q_s32;
        unsafe fn(p: *mut f32, a: float32x4_t): store = vst1q_f32;
    }

    #[inline(always)]
    fn fmadd(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON (token). `fmla` rounds `c + a * b` once.
        unsafe { vfmaq_f32(c, a, b) }
    }

    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON (token). `a < b ? a : b`, as `minps`: `b` when either is NaN or both are
        // zeros.
        unsafe { vbslq_f32(vcltq_f32(a, b), a, b) }
    }

    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON (token). `a > b ? a : b`, as `maxps`.
        unsafe { vbslq_f32(vcgtq_f32(a, b), a, b) }
    }

    #[inline(always)]
    fn is_nan(self, a: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON (token). Only NaN differs from itself.
        unsafe { vmvnq_u32(vceqq_f32(a, a)) }
    }

    #[inline(always)]
    fn copysign(self, a: float32x4_t, sign: float32x4_t) -> float32x4_t {
        // SAFETY: NEON (token). The sign bit from `sign`, every other bit from `a`.
        unsafe { vbslq_f32(vdupq_n_u32(0x8000_0000), sign, a) }
    }

    #[inline(always)]
    fn pow2i(self, q: int32x4_t) -> float32x4_t {
        // SAFETY: NEON (token).
        unsafe { vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(q, vdupq_n_s32(127)))) }
    }

    #[inline(always)]
    fn widen(self, a: float32x4_t) -> (float64x2_t, float64x2_t) {
        // SAFETY: NEON (token). `fcvtl`/`fcvtl2` widen exactly.
        unsafe { (vcvt_f64_f32(vget_low_f32(a)), vcvt_high_f64_f32(a)) }
    }

    #[inline(always)]
    fn narrow(self, lo: float64x2_t, hi: float64x2_t) -> float32x4_t {
        // SAFETY: NEON (token). `fcvtn`/`fcvtn2` round to nearest even, as `as f32`.
        unsafe { vcvt_high_f32_f64(vcvt_f32_f64(lo), hi) }
    }

    #[inline(always)]
    fn fmadd_d(self, a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
        // SAFETY: NEON (token). `fmla` rounds `c + a * b` once.
        unsafe { vfmaq_f64(c, a, b) }
    }

    #[inline(always)]
    fn splat_i64(self, v: i64) -> int32x4_t {
        // SAFETY: NEON (token).
        unsafe { vreinterpretq_s32_s64(vdupq_n_s64(v)) }
    }

    #[inline(always)]
    fn add_i64(self, a: int32x4_t, b: int32x4_t) -> int32x4_t {
        // SAFETY: NEON (token).
        unsafe { vreinterpretq_s32_s64(vaddq_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b))) }
    }

    #[inline(always)]
    fn shl_i64<const SHIFT: i32>(self, a: int32x4_t) -> int32x4_t {
        // SAFETY: NEON (token); the trait keeps `SHIFT` in `1..64`.
        unsafe { vreinterpretq_s32_s64(vshlq_n_s64::<SHIFT>(vreinterpretq_s64_s32(a))) }
    }

    #[inline(always)]
    fn lookup32(self, table: &[u64; 32], a: int32x4_t) -> int32x4_t {
        // SAFETY: NEON (token). Two scalar reads: each index is masked to `0..32`, inside `table`.
        unsafe {
            let a = vreinterpretq_u64_s32(a);
            let low = table[(vgetq_lane_u64::<0>(a) & 31) as usize];
            let high = table[(vgetq_lane_u64::<1>(a) & 31) as usize];
            vreinterpretq_s32_u64(vcombine_u64(vdup_n_u64(low), vdup_n_u64(high)))
        }
    }

    #[inline(always)]
    fn lookup16(self, table: &[u64; 16], a: int32x4_t) -> int32x4_t {
        // SAFETY: NEON (token). Two scalar reads: each index is masked to `0..16`, inside `table`.
        unsafe {
            let a = vreinterpretq_u64_s32(a);
            let low = table[(vgetq_lane_u64::<0>(a) & 15) as usize];
            let high = table[(vgetq_lane_u64::<1>(a) & 15) as usize];
            vreinterpretq_s32_u64(vcombine_u64(vdup_n_u64(low), vdup_n_u64(high)))
        }
    }

    #[inline(always)]
    fn any_lt_i64(self, a: int32x4_t, b: int32x4_t) -> bool {
        // SAFETY: NEON (token). The comparison sets every bit of the lanes where `a < b`.
        unsafe {
            let less = vcltq_s64(vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b));
            vmaxvq_u32(vreinterpretq_u32_u64(less)) != 0
        }
    }

    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> float32x4_t {
        let mut lanes = [0.0f32; 4];
        // SAFETY: the caller provides `len < 4` readable floats, and `lanes` has room for them.
        unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), len) };
        // SAFETY: `lanes` holds 4 floats.
        unsafe { self.load(lanes.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn load_i32_partial(self, p: *const i32, len: usize) -> int32x4_t {
        let mut lanes = [0i32; 4];
        // SAFETY: the caller provides `len < 4` readable int32, and `lanes` has room for them.
        unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), len) };
        // SAFETY: `lanes` holds 4 int32.
        unsafe { self.load_i32(lanes.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> float32x4_t {
        // SAFETY: the caller provides 4 readable u16.
        gemm_f16::widen_f16(self, unsafe { p.cast::<[u16; 4]>().read_unaligned() })
    }

    #[inline(always)]
    unsafe fn load_f16_partial(self, p: *const u16, len: usize) -> float32x4_t {
        let mut lanes = [0u16; 4];
        // SAFETY: the caller provides `len < 4` readable u16, and `lanes` has room for them.
        unsafe { std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), len) };
        gemm_f16::widen_f16(self, lanes)
    }

    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, a: float32x4_t) {
        let mut lanes = [0.0f32; 4];
        // SAFETY: `lanes` has room for 4 floats.
        unsafe { self.store(lanes.as_mut_ptr(), a) };
        // SAFETY: the caller provides `len < 4` writable floats.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, len) };
    }

    #[inline(always)]
    unsafe fn store_u8(self, p: *mut u8, a: float32x4_t) {
        // SAFETY: NEON (token); the caller provides 4 writable bytes (written unaligned). The
        // lanes are integers in 0..=255, so the conversion is exact and the narrowing moves keep
        // them; the low 4 bytes of the narrowed vector are the lanes in order.
        unsafe {
            let words = vmovn_u32(vcvtq_u32_f32(a));
            let bytes = vmovn_u16(vcombine_u16(words, words));
            let low = vget_lane_u32::<0>(vreinterpret_u32_u8(bytes));
            p.cast::<[u8; 4]>().write_unaligned(low.to_le_bytes());
        }
    }
}
