//! NEON's own part of the float16-weight product: widening binary16 weights to float32 (`fcvtl`,
//! exact; NaNs are quieted, keeping their payload, as the `half` crate does), behind the NEON
//! [`Simd`](crate::kernels::simd::Simd) loads the generic product (`kernels/gemm_f16.rs`) runs on.

use std::arch::aarch64::*;
use std::arch::asm;

use super::neon::Neon;

/// 4 binary16 values widened to f32 (`fcvtl`, exact).
#[inline(always)]
pub(super) fn widen_f16(_: Neon, bits: [u16; 4]) -> float32x4_t {
    let widened: float32x4_t;
    // SAFETY: the token proves NEON, whose `fcvtl` (half to single precision) only reads and
    // writes the two vector registers.
    unsafe {
        let half = vld1_u16(bits.as_ptr());
        asm!(
            "fcvtl {widened:v}.4s, {half:v}.4h",
            widened = out(vreg) widened,
            half = in(vreg) half,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    widened
}
