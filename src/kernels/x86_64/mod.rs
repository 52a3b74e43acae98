//! The x86-64 paths: AVX2 (+FMA, F16C), AVX-VNNI, AVX-512 VNNI and AMX-INT8.
//!
//! Each path has a token type (`Avx2`, `AvxVnni`, `Avx512`): a zero-sized proof that the CPU has
//! the path's instructions, created by run-time detection only. The kernels are generic bodies
//! (`quantize_input`, `epilogue`, `gemm_f16`, `gemm_u8i8`) over the operations a token provides
//! (`simd::Simd`, `gemm_u8i8::Int8Dot`), entered through `#[target_feature]` functions so that
//! one build runs on every x86-64 CPU and each path still compiles to its own instructions.

use crate::dispatch::Isa;
use crate::kernels::Kernels;

/// Defines safe kernel entry points for one path's table: each runs its body (a kernel taking the
/// path's token first) inside a `#[target_feature]` function, so the body's intrinsics inline into
/// code compiled for the path's instructions.
///
/// Soundness: an entry point is only reachable through a [`Kernels`] table, and a table holding it
/// is only built from a token proving the CPU has `$features` (each path's `table` takes one).
macro_rules! entry_points {
    ($token:ident, $features:literal; $(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:expr;)+) => {$(
        #[doc = concat!("The `", stringify!($name), "` kernel of this path (see [`Kernels`]).")]
        #[allow(clippy::too_many_arguments)] // as many as the kernel's signature has
        pub(super) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[allow(clippy::too_many_arguments)] // the kernel's arguments and the token
            #[target_feature(enable = $features)]
            fn with_features(token: $token, $($arg: $ty),*) $(-> $ret)? {
                $body(token, $($arg),*)
            }
            // SAFETY: this function is only reachable through a table built from a `$token`, which
            // exists only when the CPU has `$features` (see the macro's documentation).
            unsafe { with_features($token::assume_supported(), $($arg),*) }
        }
    )+};
}

mod amx;
mod amx_detect;
mod avx2;
mod avx512vnni;
mod avxvnni;
mod epilogue;
mod gemm_f16;
mod gemm_u8i8;
mod quantize_input;
mod simd;

/// The table of an x86 path, or `None` when this CPU lacks its instructions (or `isa` is not an
/// x86 path).
pub fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Avx2 => avx2::Avx2::detect().map(avx2::table),
        Isa::AvxVnni => avxvnni::AvxVnni::detect().map(avxvnni::table),
        Isa::Avx512Vnni => avx512vnni::Avx512::detect().map(avx512vnni::table),
        Isa::Amx => amx::Amx::detect().map(amx::table),
        _ => None,
    }
}
