//! The aarch64 paths: NEON (Advanced SIMD, which every aarch64 CPU has) and NEON with the
//! dot-product extension (FEAT_DotProd: `sdot`/`udot`, optional from Armv8.2, detected at run
//! time).
//!
//! Each path has a token type (`neon::Neon`, `dotprod::Dotprod`): a zero-sized proof that the CPU
//! has the path's instructions, created by run-time detection only. The NEON token implements
//! [`Simd`](super::simd::Simd) with 4 float lanes, so both tables run the generic bodies the x86
//! paths run (input quantization, the dequantizing epilogue, the float16 product, whose binary16
//! widening is `gemm_f16`, and the fused recurrent steps); the dot-product extension adds nothing
//! to them. Their int8 GEMMs share one tile driver (`gemm_u8i8`) and differ in the dot-product
//! step: widening multiplies (`smull` + `sadalp`) on NEON, `sdot` with the extension. Kernel bodies
//! take the token first and are entered through [`entry_points!`](super::entry_points), like the
//! x86-64 paths.

use crate::kernels::{Isa, Kernels};

mod dotprod;
mod gemm_f16;
mod gemm_u8i8;
mod neon;
#[cfg(test)]
mod simd_tests;
#[cfg(test)]
mod tests;

/// The table of an aarch64 path, or `None` when this CPU lacks its instructions (or `isa` is not
/// an aarch64 path).
pub(super) fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Neon => neon::Neon::detect().map(neon::table),
        Isa::NeonDotprod => dotprod::Dotprod::detect().map(dotprod::table),
        _ => None,
    }
}

/// The sigmoid and tanh test entry points of every [`Simd`](super::simd::Simd) token this CPU
/// has: NEON's (which the dot-product path shares).
#[cfg(test)]
pub(super) fn vector_math_paths() -> Vec<(&'static str, super::VectorMathProbe)> {
    neon::Neon::detect().map(|_| ("neon", neon::vector_math as super::VectorMathProbe)).into_iter().collect()
}
