//! The operands of one int8 GEMM ([`Kernels::gemm_u8i8`](super::Kernels::gemm_u8i8)), checked once
//! before a path's tile loops: the checks every path makes, and the panics its contract names.

use crate::pack::PackedWeights;

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
    pub(crate) fn new(a: &'a [u8], lda: usize, rows: usize, b: &'a PackedWeights) -> Option<Self> {
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
