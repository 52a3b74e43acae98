//! The NEON + dot-product path (FEAT_DotProd): the NEON table with the int8 GEMM on `sdot`.
//!
//! `sdot` adds, per int32 lane, the 4 products of the lane's signed bytes: one instruction per 4
//! columns of a panel k-group. Activations enter shifted to signed bytes (see
//! [`gemm_u8i8`](mod@gemm_u8i8)). The `vdotq_s32` intrinsic is not stable in Rust yet, so the
//! instruction is inline assembly.

use std::arch::aarch64::*;
use std::arch::asm;

use super::gemm_u8i8::{self, Int8Dot};
use super::neon::{self, Neon};
use crate::kernels::{entry_points, gemm_on_each_block, scalar, Int8Blocks, Int8Operands, Isa, Kernels};

/// Proof that the CPU has NEON and the dot-product instructions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dotprod(Neon);

impl Dotprod {
    /// The token, if this CPU has the instructions.
    pub(super) fn detect() -> Option<Self> {
        let neon = Neon::detect()?;
        std::arch::is_aarch64_feature_detected!("dotprod").then_some(Dotprod(neon))
    }

    /// The token, without checking.
    ///
    /// # Safety
    /// The CPU must have NEON and the dot-product instructions.
    pub(super) unsafe fn assume_supported() -> Self {
        // SAFETY: the caller guarantees NEON.
        Dotprod(unsafe { Neon::assume_supported() })
    }
}

/// The NEON + dot-product table: the NEON kernels, with the `sdot` GEMM (also under the
/// dequantizing GEMM).
pub(super) fn table(t: Dotprod) -> Kernels {
    Kernels {
        isa: Isa::NeonDotprod,
        gemm_u8i8,
        gemm_u8i8_blocks,
        gemm_u8i8_dequantize: |operands, store| scalar::gemm_then_dequantize(gemm_u8i8, neon::dequantize, operands, store),
        ..neon::table(t.0)
    }
}

entry_points! {
    Dotprod, "neon,dotprod";
    fn gemm_u8i8(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) = gemm;
    fn gemm_u8i8_blocks(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) = gemm_blocks;
}

/// The int8 GEMM in tiles of 4 panel accumulators (16 accumulator registers).
#[inline(always)]
fn gemm(t: Dotprod, operands: Int8Operands<'_>, out: &mut [i32], ldo: usize) {
    gemm_u8i8::gemm::<_, 4>(Sdot(t), operands, out, ldo)
}

gemm_on_each_block!(Dotprod);

/// The `sdot` dot-product step.
#[derive(Clone, Copy)]
struct Sdot(Dotprod);

impl Int8Dot for Sdot {
    /// One vector per 4 columns.
    type Acc = [int32x4_t; 4];

    #[inline(always)]
    fn neon(self) -> Neon {
        self.0 .0
    }

    #[inline(always)]
    fn zero(self) -> Self::Acc {
        // SAFETY: the token proves NEON.
        [unsafe { vdupq_n_s32(0) }; 4]
    }

    #[inline(always)]
    fn dot(self, acc: Self::Acc, a: int8x16_t, w: [int8x16_t; 4]) -> Self::Acc {
        let mut acc = acc;
        for (acc, w) in acc.iter_mut().zip(w) {
            // SAFETY: the token proves the dot-product instructions.
            *acc = unsafe { sdot(*acc, a, w) };
        }
        acc
    }

    #[inline(always)]
    fn columns(self, acc: Self::Acc) -> [int32x4_t; 4] {
        acc
    }
}

/// `acc[i] += Σ_{j<4} a[4i + j] * w[4i + j]` per int32 lane, over signed bytes (wrapping).
///
/// A function of its own, with the feature enabled, so the instruction is always assembled for a
/// CPU that has it, inlined or not.
///
/// # Safety
/// The CPU must have the dot-product instructions.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, w: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the function's target features make `sdot` available; it only reads and writes the
    // three vector registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {w:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            w = in(vreg) w,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}
