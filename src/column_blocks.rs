//! A weight matrix packed in blocks of output columns, so that a product with few rows can be
//! split between threads by columns (each thread reading only its part of the weights) while every
//! column is still computed by the same kernel, in the same order, as without the split.

use std::ops::Range;

use crate::alloc;
use crate::error::{Error, Result};
use crate::pack::{check_weight_len, PackedWeights, K_GROUP, PANEL_WIDTH};

/// Output columns per block: a multiple of the panel width, wide enough that a block's kernel
/// call costs little next to its work (one block holds the gates of a recurrent layer up to
/// 256 hidden units).
pub const COLUMN_BLOCK: usize = 1024;

const _: () = assert!(COLUMN_BLOCK.is_multiple_of(PANEL_WIDTH));

/// `W[n, k]` as [`PackedWeights`] blocks of [`COLUMN_BLOCK`] output columns (the last one
/// narrower).
#[derive(Clone, Debug)]
pub struct ColumnBlocks {
    n: usize,
    k: usize,
    blocks: Vec<PackedWeights>,
}

impl ColumnBlocks {
    /// Packs `weight`, a row-major `n x k` int8 matrix (its rows are the output columns).
    pub fn pack(weight: &[i8], n: usize, k: usize) -> Result<Self> {
        check_weight_len(weight.len(), n, k)?;
        Self::from_blocks(n, k, |columns| PackedWeights::pack(&weight[columns.start * k..columns.end * k], columns.len(), k))
    }

    /// An `n x k` matrix of zeros, costing no memory until written (see [`PackedWeights::zeros`]).
    pub fn zeros(n: usize, k: usize) -> Result<Self> {
        alloc::elements(n, k, "the packed weight")?;
        Self::from_blocks(n, k, |columns| PackedWeights::zeros(columns.len(), k))
    }

    /// An `n x k` matrix packed block by block, in order: `block(columns)` packs the rows
    /// `columns` of the row-major matrix (for a caller that hands the matrix over in parts and
    /// frees each part once it is packed). A block of another shape is an error.
    pub fn from_blocks(n: usize, k: usize, mut block: impl FnMut(Range<usize>) -> Result<PackedWeights>) -> Result<Self> {
        let mut blocks = Vec::new();
        alloc::reserve(&mut blocks, n.div_ceil(COLUMN_BLOCK))?;
        for b in 0..n.div_ceil(COLUMN_BLOCK) {
            let columns = b * COLUMN_BLOCK..((b + 1) * COLUMN_BLOCK).min(n);
            let packed = block(columns.clone())?;
            if (packed.n(), packed.k()) != (columns.len(), k) {
                return Err(Error::Shape(format!(
                    "rows {columns:?} of the weight came as a ({}, {}) block, expected ({}, {k})",
                    packed.n(),
                    packed.k(),
                    columns.len()
                )));
            }
            blocks.push(packed);
        }
        Ok(ColumnBlocks { n, k, blocks })
    }

    /// Writes the row-major `n x k` matrix this was packed from into `out` (`n * k` elements).
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn unpack_into(&self, out: &mut [i8]) {
        assert_eq!(out.len(), self.n * self.k, "unpack_into: wrong output length");
        for (columns, block) in self.blocks() {
            block.unpack_into(&mut out[columns.start * self.k..columns.end * self.k]);
        }
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The row stride the kernels want for activations: `k` rounded up to a multiple of 4.
    pub fn k_padded(&self) -> usize {
        self.k.div_ceil(K_GROUP) * K_GROUP
    }

    /// `Σ_k W[n, k]` per output column, in order (the blocks' own, not a second copy).
    pub fn col_sums(&self) -> impl Iterator<Item = i32> + '_ {
        self.blocks.iter().flat_map(|b| b.col_sums().iter().copied())
    }

    /// Bytes the blocks hold (see [`PackedWeights::nbytes`]).
    pub fn nbytes(&self) -> usize {
        self.blocks.iter().map(PackedWeights::nbytes).sum()
    }

    /// The blocks, each with the output columns it holds.
    pub fn blocks(&self) -> impl Iterator<Item = (Range<usize>, &PackedWeights)> {
        self.blocks.iter().enumerate().map(|(b, w)| (b * COLUMN_BLOCK..b * COLUMN_BLOCK + w.n(), w))
    }

    /// The block holding output column `column` (a multiple of [`COLUMN_BLOCK`]).
    pub fn block_at(&self, column: usize) -> &PackedWeights {
        debug_assert!(column.is_multiple_of(COLUMN_BLOCK));
        &self.blocks[column / COLUMN_BLOCK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_columns_in_order() {
        for n in [0, 1, COLUMN_BLOCK - 1, COLUMN_BLOCK, COLUMN_BLOCK + 1, 3 * COLUMN_BLOCK + 17] {
            let k = 5;
            let w: Vec<i8> = (0..n * k).map(|i| (i % 253) as i8).collect();
            let blocks = ColumnBlocks::pack(&w, n, k).unwrap();
            let whole = PackedWeights::pack(&w, n, k).unwrap();
            assert_eq!(blocks.col_sums().collect::<Vec<_>>(), whole.col_sums());
            // The weights' padded bytes (only the narrow panel's last block is partial) and the column sums.
            assert_eq!(blocks.nbytes(), (n * blocks.k_padded()).div_ceil(64) * 64 + 4 * n);
            assert_eq!(blocks.k_padded(), whole.k_padded());
            let mut unpacked = Vec::new();
            let mut next = 0;
            for (columns, block) in blocks.blocks() {
                assert_eq!(columns.start, next);
                assert!(std::ptr::eq(blocks.block_at(columns.start), block));
                next = columns.end;
                unpacked.extend(block.unpack());
            }
            assert_eq!((next, &unpacked), (n, &w));
            let mut again = vec![1; n * k];
            blocks.unpack_into(&mut again);
            assert_eq!(again, w);
            let zeros = ColumnBlocks::zeros(n, k).unwrap();
            zeros.unpack_into(&mut again);
            assert!(again.iter().all(|&v| v == 0) && zeros.col_sums().all(|s| s == 0));
        }
    }
}
