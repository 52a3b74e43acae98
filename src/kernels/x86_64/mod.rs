//! The x86-64 paths, one file each: AVX2 (+FMA, F16C), AVX-VNNI, AVX-512 VNNI and AMX-INT8.
//!
//! Each file holds its path's token type (`Avx2`, `AvxVnni`, `Avx512`, `Amx`): a zero-sized proof
//! that the CPU has the path's instructions, created by run-time detection only, with one feature
//! string for its entry points. `Avx2` and `Avx512` implement [`Simd`](super::simd::Simd) (8 and 16
//! float lanes); AVX-VNNI and AMX reuse them for everything but the int8 GEMM. The int8 GEMM is one
//! tile driver (`gemm_u8i8`) over each path's dot-product step (`gemm_u8i8::Int8Dot`).

use super::{Isa, Kernels};

mod amx;
mod amx_detect;
mod avx2;
mod avx512vnni;
mod avxvnni;
mod gemm_u8i8;

/// The table of an x86 path, or `None` when this CPU lacks its instructions (or `isa` is not an
/// x86 path).
pub(super) fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Avx2 => avx2::Avx2::detect().map(avx2::table),
        Isa::AvxVnni => avxvnni::AvxVnni::detect().map(avxvnni::table),
        Isa::Avx512Vnni => avx512vnni::Avx512::detect().map(avx512vnni::table),
        Isa::Amx => amx::Amx::detect().map(amx::table),
        _ => None,
    }
}

/// The sigmoid and tanh test entry points of every [`Simd`](super::simd::Simd) token this CPU
/// has.
#[cfg(test)]
pub(super) fn vector_math_paths() -> Vec<(&'static str, super::VectorMathProbe)> {
    let avx2 = avx2::Avx2::detect().map(|_| ("avx2", avx2::vector_math as super::VectorMathProbe));
    let avx512 = avx512vnni::Avx512::detect().map(|_| ("avx512", avx512vnni::vector_math as super::VectorMathProbe));
    avx2.into_iter().chain(avx512).collect()
}
