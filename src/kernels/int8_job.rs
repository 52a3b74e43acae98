//! The operands of one int8 GEMM ([`Kernels::gemm_u8i8`](super::Kernels::gemm_u8i8)) as the
//! kernels take them ([`Int8Operands`], [`Int8Blocks`] for a run of packed blocks, and
//! [`DequantizedOut`] for where the dequantizing kernel stores), and the same operands checked
//! once before a path's tile loops ([`Job`]): the checks every path makes, and the panics its
//! contract names.

use super::Epilogue;
use crate::pack::PackedWeights;

/// The operands of one int8 product, as passed to [`Kernels::gemm_u8i8`](super::Kernels::gemm_u8i8)
/// and [`Kernels::gemm_u8i8_dequantize`](super::Kernels::gemm_u8i8_dequantize): `rows` activation
/// rows of stride `lda` in `a`, each `b.k_padded()` bytes long (zeros in the padding), times the
/// packed weights `b`. Unchecked: each kernel checks them (and panics) as its contract says.
#[derive(Clone, Copy)]
pub struct Int8Operands<'a> {
    /// The activation rows.
    pub a: &'a [u8],
    /// The stride of `a`'s rows, at least `b.k_padded()`.
    pub lda: usize,
    /// The number of rows.
    pub rows: usize,
    /// The packed weights (`n` columns).
    pub b: &'a PackedWeights,
}

/// The operands of [`Kernels::gemm_u8i8_blocks`](super::Kernels::gemm_u8i8_blocks): `rows`
/// activation rows of stride `lda` in `a`, times each of `blocks` in turn (column blocks of one
/// matrix, all of one `k`), block `i`'s columns after those of the blocks before it. Unchecked, as
/// [`Int8Operands`].
#[derive(Clone, Copy)]
pub struct Int8Blocks<'a> {
    /// The activation rows.
    pub a: &'a [u8],
    /// The stride of `a`'s rows, at least each block's `k_padded()`.
    pub lda: usize,
    /// The number of rows.
    pub rows: usize,
    /// The packed blocks, in column order.
    pub blocks: &'a [PackedWeights],
}

impl<'a> Int8Blocks<'a> {
    /// Each block's operands with the output column where its columns start, in order; nothing
    /// without rows. A path runs its [`Kernels::gemm_u8i8`](super::Kernels::gemm_u8i8) body on
    /// each, into `out[column..]`, in its one entry: the specification of
    /// [`Kernels::gemm_u8i8_blocks`](super::Kernels::gemm_u8i8_blocks). (A plain loop in the
    /// entry, not a closure handed the kernel: a closure does not inherit the entry's target
    /// features, and its inlined SIMD steps would become calls.)
    #[inline(always)]
    pub fn each(self) -> impl Iterator<Item = (usize, Int8Operands<'a>)> {
        let Int8Blocks { a, lda, rows, blocks } = self;
        let blocks = if rows == 0 { &[][..] } else { blocks };
        blocks.iter().scan(0, move |column, b| {
            let start = *column;
            *column += b.n();
            Some((start, Int8Operands { a, lda, rows, b }))
        })
    }
}

/// Where [`Kernels::gemm_u8i8_dequantize`](super::Kernels::gemm_u8i8_dequantize) stores its
/// product: each row's accumulators go through `epilogue` with that row's sum `row_sums[r] = Σ_k
/// a[r, k]`, into `out[r*ldo + j]` for `j < n` (the other elements of `out` are left alone).
pub struct DequantizedOut<'a> {
    /// One activation row sum per row (at least `rows`).
    pub row_sums: &'a [i32],
    /// The dequantizing epilogue's per-column terms.
    pub epilogue: &'a Epilogue<'a>,
    /// The output rows.
    pub out: &'a mut [f32],
    /// The stride of `out`'s rows, at least `n` when there is more than one row.
    pub ldo: usize,
}

/// Activation rows and packed weights of one product, checked by [`Job::new`]: `rows > 0`,
/// `n > 0` and `a.len() >= (rows - 1) * lda + k_padded`.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    /// `rows` rows of stride `lda`, each `k_padded` bytes long.
    pub a: &'a [u8],
    pub lda: usize,
    pub rows: usize,
    pub b: &'a PackedWeights,
}

impl<'a> Job<'a> {
    /// The operands, or `None` when there is nothing to compute (no rows or no columns).
    ///
    /// # Panics
    /// When `a` is too short for `rows` rows (as the scalar kernel does).
    #[inline(always)]
    pub(crate) fn new(operands: Int8Operands<'a>) -> Option<Self> {
        let Int8Operands { a, lda, rows, b } = operands;
        if rows == 0 {
            return None;
        }
        let a_end = (rows - 1).checked_mul(lda).and_then(|start| start.checked_add(b.k_padded()));
        assert!(a_end.is_some_and(|end| end <= a.len()), "gemm_u8i8: a has {} bytes, too few for {rows} rows", a.len());
        (b.n() > 0).then_some(Job { a, lda, rows, b })
    }

    /// Checks an output of `len` elements for the job's rows of `n` columns, stride `ldo`.
    ///
    /// # Panics
    /// When `out` is too short, or when `ldo < n` with more than one row (the rows would
    /// overlap); `what` names the kernel.
    #[inline(always)]
    pub(crate) fn check_out(&self, len: usize, ldo: usize, what: &str) {
        let (rows, n) = (self.rows, self.b.n());
        assert!(rows == 1 || ldo >= n, "{what}: ldo ({ldo}) must be at least n ({n})");
        let end = (rows - 1).checked_mul(ldo).and_then(|start| start.checked_add(n));
        assert!(end.is_some_and(|end| end <= len), "{what}: out has {len} elements, too few for {rows} rows");
    }
}
