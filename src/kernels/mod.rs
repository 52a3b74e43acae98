//! The kernel contract: what every instruction-set path provides, as a table of safe function
//! pointers ([`Kernels`]).
//!
//! `scalar.rs` is the specification: every other path must produce the same integers, and the same
//! float bits where its float operations are the ones the contract names (f32 FMA, round half to
//! even). A SIMD table is only ever built after the CPU was checked to have its instructions, which
//! is what makes its `unsafe` `#[target_feature]` bodies sound to call through the safe pointers.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::dispatch::Isa;
use crate::pack::PackedWeights;

/// Parameters of the dequantizing epilogue (docs/numerics.md §2.2), per output column `n`:
/// `corr = acc - x_zero_point * col_offsets[n] - row_sum * w_zero_points[n]` (wrapping int32), then
/// `y = fma((float)corr, multipliers[n], bias[n])`, or `(float)corr * multipliers[n]` without bias.
#[derive(Clone, Copy, Debug)]
pub struct Dequantize<'a> {
    pub x_zero_point: i32,
    /// `Σ_k W[n,k] - w_zero_point[n] * K`, per column.
    pub col_offsets: &'a [i32],
    pub w_zero_points: &'a [i32],
    /// `f32(s_x * s_w[n])`, per column.
    pub multipliers: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

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
    /// Every element is finite. An empty slice gives `min = max = 0`, as PyTorch does.
    Finite { min: f32, max: f32 },
    /// At least one element is NaN or infinite.
    NonFinite,
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
    /// intermediate saturation, int32 wrap-around only where the true sum overflows.
    pub gemm_u8i8: fn(a: &[u8], lda: usize, rows: usize, b: &PackedWeights, out: &mut [i32], ldo: usize),
    /// [`Kernels::gemm_u8i8`] followed by the dequantizing epilogue ([`Dequantize`], specified by
    /// [`scalar::dequantize`]), fused where the path can (the x86 paths dequantize from the
    /// registers; the others through a small reused buffer): `out[r*ldo + j]` for `r < rows`,
    /// `j < b.n()`, with `row_sums[r] = Σ_k a[r, k]` (any value when every weight
    /// zero point is zero, as `row_sum * 0` vanishes). Equal bit for bit to the two in sequence; the
    /// other elements of `out` are left alone.
    #[allow(clippy::type_complexity)] // the GEMM's and the epilogue's parameters, named
    pub gemm_u8i8_dequantize: fn(
        a: &[u8],
        lda: usize,
        rows: usize,
        b: &PackedWeights,
        row_sums: &[i32],
        params: &Dequantize<'_>,
        out: &mut [f32],
        ldo: usize,
    ),
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
}

/// The table of `isa`, or `None` when this CPU or build cannot run it.
pub fn table(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Scalar => Some(scalar::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni | Isa::Amx => x86_64::table(isa),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDotprod => aarch64::table(isa),
        _ => None,
    }
}

/// True when both paths belong to the same CPU architecture.
pub fn same_architecture(a: Isa, b: Isa) -> bool {
    let arm = |isa: Isa| matches!(isa, Isa::Neon | Isa::NeonDotprod);
    let x86 = |isa: Isa| matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni | Isa::Amx);
    (arm(a) && arm(b)) || (x86(a) && x86(b))
}
