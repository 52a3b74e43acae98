//! The aarch64 paths: NEON (Advanced SIMD, which every aarch64 CPU has) and NEON with the
//! dot-product extension (FEAT_DotProd: `sdot`/`udot`, optional from Armv8.2, detected at run
//! time).
//!
//! Each path has a token type (`neon::Neon`, `dotprod::Dotprod`): a zero-sized proof that the CPU
//! has the path's instructions, created by run-time detection only. The two tables share the
//! element-wise kernels (`quantize_input`, `epilogue`) and the float16 product (`gemm_f16`); their
//! int8 GEMMs share one tile driver (`gemm_u8i8`) and differ in the dot-product step: widening
//! multiplies (`smull` + `sadalp`) on NEON, `sdot` with the extension. Kernel bodies take the token
//! first and are entered through [`entry_points!`](super::entry_points), like the x86-64 paths.
//! The NEON token implements [`Simd`](super::simd::Simd): both tables run the fused recurrent
//! steps (`recurrent_step`) on its 4 float lanes; the dot-product extension adds nothing to them.

use crate::kernels::{Isa, Kernels};

mod dotprod;
mod epilogue;
mod gemm_f16;
mod gemm_u8i8;
mod neon;
mod quantize_input;
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
