//! The aarch64 paths: NEON (Advanced SIMD, which every aarch64 CPU has) and NEON with the
//! dot-product extension (FEAT_DotProd: `sdot`/`udot`, optional from Armv8.2, detected at run
//! time).
//!
//! Each path has a token type (`neon::Neon`, `dotprod::Dotprod`): a zero-sized proof that the CPU
//! has the path's instructions, created by run-time detection only. The two tables share the
//! element-wise kernels (`activation`, `epilogue`) and the float16 product (`gemm_f16`); their
//! int8 GEMMs share one tile driver (`gemm_u8i8`) and differ in the dot-product step: widening
//! multiplies (`smull` + `sadalp`) on NEON, `sdot` with the extension. Kernel bodies take the token
//! first and are entered through `#[target_feature]` functions, like the x86-64 paths.

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

mod activation;
mod dotprod;
mod epilogue;
mod gemm_f16;
mod gemm_u8i8;
mod neon;
#[cfg(test)]
mod tests;

/// The table of an aarch64 path, or `None` when this CPU lacks its instructions (or `isa` is not
/// an aarch64 path).
pub fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Neon => neon::Neon::detect().map(neon::table),
        Isa::NeonDotprod => dotprod::Dotprod::detect().map(dotprod::table),
        _ => None,
    }
}
