//! The kernel contract: what every instruction-set path ([`Isa`]) provides, as a table of safe
//! function pointers ([`Kernels`]), and the pieces the paths share.
//!
//! - `scalar.rs` and `scalar_step.rs` are the specification: every other path must produce the
//!   same integers, and the same float bits where its float operations are the ones the contract
//!   names (f32 FMA, round half to even).
//! - `simd.rs` is the one vector trait ([`simd::Simd`]) that the width-generic bodies are written
//!   in: `quantize_input.rs`, `dequantize.rs`, `gemm_f16.rs`, `vector_math.rs` (sigmoid, tanh)
//!   and `recurrent_step/` (the fused LSTM, GRU and Elman steps).
//! - One file per instruction set under `x86_64/` and `aarch64/` holds its CPU-feature token (the
//!   type implementing the trait), its int8 dot-product step and its table, whose entries are
//!   [`entry_points!`]: the generic bodies instantiated with the token under its
//!   `#[target_feature]`s.
//!
//! A SIMD table is only ever built after the CPU was checked to have its instructions, which is
//! what makes its `unsafe` `#[target_feature]` bodies sound to call through the safe pointers.

use crate::requantize::Requantize;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod isa;
mod projected;
pub mod scalar;
pub mod scalar_step;
mod dequantize;
mod epilogue;
mod gemm_f16;
mod int8_job;
mod quantize_input;
mod recurrent_step;
mod requantize_rows;
pub(crate) mod simd;
mod vector_math;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use epilogue::Epilogue;
pub use int8_job::{DequantizedOut, Int8Blocks, Int8Operands};
pub use isa::{Architecture, Isa};
pub use projected::{correct_zero_points, Accumulators, Projected};

/// Defines safe kernel entry points for one path's table: each runs its body (a generic kernel
/// taking the path's token first) inside a `#[target_feature]` function, so the body's intrinsics
/// inline into code compiled for the path's instructions. An instruction set's file invokes it
/// once, with its token type and that token's one feature string.
///
/// Soundness: an entry point is only reachable through a [`Kernels`] table (or a test), and a
/// table holding it is only built from a token proving the CPU has `$features` (each path's
/// `table` takes one).
macro_rules! entry_points {
    ($token:ident, $features:literal; $($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:expr;)+) => {$(
        #[doc = concat!("The `", stringify!($name), "` kernel of this path (see [`Kernels`](crate::kernels::Kernels)).")]
        $(#[$attr])*
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
use entry_points;

/// Defines a path's `gemm_blocks(token, operands, out, ldo)`, the body of its
/// [`Kernels::gemm_u8i8_blocks`] entry, from the path's `gemm`: `gemm` on each block of the run,
/// into its columns of `out` ([`Int8Blocks::each`]). Expanded in the path's module, so that the
/// loop and the inlined kernel are compiled inside the entry with its target features.
macro_rules! gemm_on_each_block {
    ($token:ident) => {
        /// [`gemm`] on each of a run of blocks, in one entry.
        #[inline(always)]
        fn gemm_blocks(t: $token, operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize) {
            for (column, operands) in operands.each() {
                gemm(t, operands, &mut out[column..], ldo);
            }
        }
    };
}
use gemm_on_each_block;

/// Columns per block of the float16 product: the last `n % F16_COLUMN_BLOCK` columns are summed
/// in blocks of [`F16_K_BLOCK`] inputs (FBGEMM's packing on AVX-512: two 16-lane vectors).
pub const F16_COLUMN_BLOCK: usize = 32;
/// Inputs per block of the float16 product (FBGEMM's `kc`, the packed matrix's row block).
pub const F16_K_BLOCK: usize = 512;

/// Where a float16 product's sum starts: -0.0, so that the first product acts as a plain multiply
/// (FBGEMM's first step is one), or +0.0 when there are no products at all.
#[inline(always)]
pub fn f16_sum_start(k: usize) -> f32 {
    if k == 0 {
        0.0
    } else {
        -0.0
    }
}

/// Smallest and largest element of a slice, or the fact that it holds a NaN or an infinity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// Every element is finite. An empty slice gives `min = max = 0`, as PyTorch does. A zero
    /// bound is `+0.0` ([`Range::finite`]).
    Finite { min: f32, max: f32 },
    /// At least one element is NaN or infinite.
    NonFinite,
}

impl Range {
    /// The finite range `min..=max`, a zero bound as `+0.0` (`x + 0.0` turns only `-0.0` into
    /// `+0.0`): which zero a minimum keeps depends on the order of the comparisons and on the
    /// instruction set, and the quantization parameters do not depend on it, so every path and
    /// every split of the rows gives the same bits.
    #[inline(always)]
    pub fn finite(min: f32, max: f32) -> Range {
        Range::Finite { min: min + 0.0, max: max + 0.0 }
    }
}

/// The kernels of one path. All rows are row-major; strides are in elements.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub isa: Isa,
    /// The range of a float slice.
    pub range: fn(x: &[f32]) -> Range,
    /// `out[i] = clamp(rne(x[i] * inv_scale) + zero_point, 0, 255)` for finite `x`.
    pub quantize_u8: fn(x: &[f32], inv_scale: f32, zero_point: i32, out: &mut [u8]),
    /// Raw int32 products: `out[r*ldo + n] = Σ_k a[r*lda + k] * W[n, k]` for `r < rows`, `n < b.n()`.
    /// `lda >= b.k_padded()` and `a` must hold zeros in each row's padding `k..k_padded`. Exact: no
    /// intermediate saturation, int32 wrap-around only where the true sum overflows. `a`, `lda`,
    /// `rows` and `b` come as [`Int8Operands`].
    pub gemm_u8i8: fn(operands: Int8Operands<'_>, out: &mut [i32], ldo: usize),
    /// [`Kernels::gemm_u8i8`] on each of a run of column blocks of one matrix in turn ([`Int8Blocks`]),
    /// block `i`'s columns into `out` from `c_i`, the columns of the blocks before it; equal bit for
    /// bit to those calls, in one call (a batch-1 recurrent step over gates packed in several
    /// blocks pays the call, and the path's look at the activations, once).
    pub gemm_u8i8_blocks: fn(operands: Int8Blocks<'_>, out: &mut [i32], ldo: usize),
    /// [`Kernels::gemm_u8i8`] followed by the dequantizing epilogue ([`Epilogue`], specified by
    /// [`scalar::dequantize`]), fused where the path can (the x86 paths dequantize from the
    /// registers; the others through a small reused buffer): `out[r*ldo + j]` for `r < rows`,
    /// `j < b.n()`, with `row_sums[r] = Σ_k a[r, k]` (any value when every weight
    /// zero point is zero, as `row_sum * 0` vanishes). Equal bit for bit to the two in sequence; the
    /// other elements of `out` are left alone. The operands and the store come as
    /// [`Int8Operands`] and [`DequantizedOut`].
    pub gemm_u8i8_dequantize: fn(operands: Int8Operands<'_>, store: DequantizedOut<'_>),
    /// The static Linear's requantizing epilogue (specified by [`crate::requantize::requantize`]):
    /// `acc[r*n + j]` -> `out[r*n + j]` for the rows of `row_sums`, `n` the epilogue's columns.
    pub requantize: fn(acc: &[i32], row_sums: &[i32], params: &Requantize<'_>, out: &mut [u8]),
    /// float16-weight product, summed in FBGEMM's order (see `docs/float16.md`). With one f32 FMA
    /// per product, `chain(ks, start)` = `start`, then `acc = fma(x[r*k + kk], w[kk*n + j], acc)`
    /// for `kk` in `ks` in order:
    /// - the columns `j` below `n - n % F16_COLUMN_BLOCK` take `chain(0..k, -0.0)`;
    /// - the last `n % F16_COLUMN_BLOCK` columns sum each block of `F16_K_BLOCK` inputs on its
    ///   own and add the blocks in order: `chain(block 0, -0.0) + chain(block 1, +0.0) + ...`.
    ///
    /// Starting from -0.0 makes the first product a plain multiply, sign of zero included. With
    /// `k = 0` the sum is +0.0. Then `+ bias[j]` as a separate add. `w` holds IEEE binary16 bits,
    /// transposed to `k x n`.
    #[allow(clippy::type_complexity)] // one argument per operand, as the other kernels take them
    pub gemm_f32_f16: fn(x: &[f32], rows: usize, k: usize, w: &[u16], n: usize, bias: Option<&[f32]>, out: &mut [f32]),
    /// The fused LSTM step ([`scalar_step::lstm_floats`] on each row of `hg + ig`, specified in
    /// [`scalar_step`]): reads the hidden and input projections of the step's rows (`hg`, `ig`,
    /// `4 * hidden` columns, gates `i, f, g, o`), updates the cell state `c` in place and writes
    /// `h_out`; the rows are those of `c` (`c.len() / hidden`), and `h_out` is as long as `c`.
    ///
    /// # Panics
    /// When a slice holds fewer values than the rows need.
    pub lstm: fn(hg: &Projected<'_>, ig: &Projected<'_>, c: &mut [f32], h_out: &mut [f32], hidden: usize),
    /// The fused GRU step ([`scalar_step::gru_floats`] per row; gates `r, z, n`, `3 * hidden`
    /// columns), updating `h` in place; the rows are those of `h`.
    ///
    /// # Panics
    /// As [`Kernels::lstm`].
    pub gru: fn(hg: &Projected<'_>, ig: &Projected<'_>, h: &mut [f32], hidden: usize),
    /// The fused Elman step ([`scalar_step::elman_floats`] per row, `hidden` columns): `h_out =
    /// act(hg + ig)`; the rows are those of `h_out`.
    ///
    /// # Panics
    /// As [`Kernels::lstm`].
    pub elman: fn(nonlinearity: Nonlinearity, hg: &Projected<'_>, ig: &Projected<'_>, h_out: &mut [f32], hidden: usize),
}

/// The nonlinearity of an Elman step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` ([`crate::activations::tanh`]).
    Tanh,
    /// `max(x, 0)` ([`crate::activations::relu`]).
    Relu,
}

/// The table of `isa`, or `None` when this CPU or build cannot run it.
pub fn table(isa: Isa) -> Option<Kernels> {
    match isa.architecture() {
        None => Some(scalar::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Some(Architecture::X86_64) => x86_64::table(isa),
        #[cfg(target_arch = "aarch64")]
        Some(Architecture::Aarch64) => aarch64::table(isa),
        // Another architecture's path: not in this build.
        Some(_) => None,
    }
}

/// A path's sigmoid and tanh over a slice, for the tests of [`vector_math`].
#[cfg(test)]
pub(crate) type VectorMathProbe = fn(vector_math::tests::Function, &[f32]) -> Vec<f32>;

/// The [`VectorMathProbe`] of every SIMD path this CPU has, by name.
#[cfg(test)]
pub(crate) fn vector_math_paths() -> Vec<(&'static str, VectorMathProbe)> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::vector_math_paths()
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::vector_math_paths()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}
