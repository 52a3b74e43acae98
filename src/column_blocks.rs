//! A weight matrix packed in blocks of output columns, so that a product with few rows can be
//! split between threads by columns (each thread reading only its part of the weights) while every
//! column is still computed by the same kernel, in the same order, as without the split.

use std::ops::Range;

use crate::alloc;
use crate::error::{Error, Result};
use crate::pack::{check_weight_len, PackedWeights, K_GROUP, PANEL_WIDTH};

/// Output columns per block: a multiple of the panel width, wide enough that a block's kernel
/// call costs little next to its work (one block holds the gates of a recurrent layer below 256
/// hidden units).
pub const COLUMN_BLOCK: usize = 1024;

const _: () = assert!(COLUMN_BLOCK.is_multiple_of(PANEL_WIDTH));

/// `W[n, k]` as [`PackedWeights`] blocks of [`COLUMN_BLOCK`] output columns, or of the width
/// [`gate_block_width`] chooses for a matrix of gates (the last block narrower).
#[derive(Clone, Debug)]
pub struct ColumnBlocks {
    n: usize,
    k: usize,
    /// Output columns per block.
    width: usize,
    blocks: Vec<PackedWeights>,
}

/// Hidden units per block of a recurrent gate matrix when the gate is a multiple of it: a block
/// of 16 panels, wide enough that its kernel call costs little next to its work (a batch-1 step
/// split between threads calls the kernel once per block; on one thread, once per matrix).
const GATE_BLOCK_UNITS: usize = 256;

/// Block boundaries inside a gate are multiples of this many units: the element-wise cell sends
/// the units below `floor(hidden / 32) * 32` to the vectorized sigmoid, so a part of a gate
/// that starts at such a multiple gets every unit's sigmoid form right when run on its own.
pub const GATE_BLOCK_ALIGN: usize = 32;

/// The smallest gate cut in blocks of half a gate (so that a batch-1 step splits between two
/// threads): a smaller layer's step gains less from a second thread than the split costs (a
/// kernel call per block and thread, a wait per step).
const MIN_HALVED_GATE: usize = 256;

/// The block width for a matrix of `n` output columns that are `gates` equal gates (the rows of
/// a recurrent layer's `W_ih` or `W_hh`, gate after gate): [`GATE_BLOCK_UNITS`] for gates that
/// are a multiple of it (at least two blocks), else half a gate (from [`MIN_HALVED_GATE`] units),
/// so that each block lies in one gate and the blocks of a range of hidden units are whole blocks
/// in every gate (a step can then be split between threads by hidden units); [`COLUMN_BLOCK`] for
/// smaller gates, gates that cannot be cut at multiples of [`GATE_BLOCK_ALIGN`] units, or `gates`
/// 1.
pub fn gate_block_width(n: usize, gates: usize) -> usize {
    let hidden = if gates > 1 && n.is_multiple_of(gates) { n / gates } else { 0 };
    let units = if hidden >= 2 * GATE_BLOCK_UNITS && hidden.is_multiple_of(GATE_BLOCK_UNITS) { GATE_BLOCK_UNITS } else { hidden / 2 };
    if hidden < MIN_HALVED_GATE || !units.is_multiple_of(GATE_BLOCK_ALIGN) || !hidden.is_multiple_of(units) {
        return COLUMN_BLOCK;
    }
    units
}

impl ColumnBlocks {
    /// Packs `weight`, a row-major `n x k` int8 matrix (its rows are the output columns).
    /// Blocks of `width` columns (see [`gate_block_width`]).
    pub fn pack(weight: &[i8], n: usize, k: usize, width: usize) -> Result<Self> {
        check_weight_len(weight.len(), n, k)?;
        Self::from_blocks(n, k, width, |columns| PackedWeights::pack(&weight[columns.start * k..columns.end * k], columns.len(), k))
    }

    /// An `n x k` matrix of zeros in blocks of `width` columns, costing no memory until written
    /// (see [`PackedWeights::zeros`]).
    pub fn zeros(n: usize, k: usize, width: usize) -> Result<Self> {
        alloc::elements(n, k, "the packed weight")?;
        Self::from_blocks(n, k, width, |columns| PackedWeights::zeros(columns.len(), k))
    }

    /// An `n x k` matrix packed block by block (blocks of `width > 0` columns), in order:
    /// `block(columns)` packs the rows `columns` of the row-major matrix (for a caller that hands
    /// the matrix over in parts and frees each part once it is packed). A block of another shape
    /// is an error.
    pub fn from_blocks(n: usize, k: usize, width: usize, mut block: impl FnMut(Range<usize>) -> Result<PackedWeights>) -> Result<Self> {
        if width == 0 {
            return Err(Error::Value("the column blocks must be at least one column wide".into()));
        }
        let mut blocks = Vec::new();
        alloc::reserve(&mut blocks, n.div_ceil(width))?;
        for b in 0..n.div_ceil(width) {
            let columns = b * width..((b + 1) * width).min(n);
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
        Ok(ColumnBlocks { n, k, width, blocks })
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

    /// Output columns per block (the last block may be narrower).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The blocks, each with the output columns it holds.
    pub fn blocks(&self) -> impl Iterator<Item = (Range<usize>, &PackedWeights)> {
        self.blocks.iter().enumerate().map(|(b, w)| (b * self.width..b * self.width + w.n(), w))
    }

    /// The blocks, in column order (a run of them is what
    /// [`Kernels::gemm_u8i8_blocks`](crate::kernels::Kernels::gemm_u8i8_blocks) takes).
    pub fn packed(&self) -> &[PackedWeights] {
        &self.blocks
    }

    /// The blocks holding exactly the output columns `columns`, in order, or `None` when
    /// `columns` does not start and end at block boundaries (or runs past `n`).
    pub fn blocks_of(&self, columns: Range<usize>) -> Option<&[PackedWeights]> {
        let on_boundary = |c: usize| c.is_multiple_of(self.width) || c == self.n;
        if columns.start > columns.end || columns.end > self.n || !on_boundary(columns.start) || !on_boundary(columns.end) {
            return None;
        }
        Some(&self.blocks[columns.start.div_ceil(self.width)..columns.end.div_ceil(self.width)])
    }

    /// The block holding output column `column` (a multiple of [`ColumnBlocks::width`]).
    pub fn block_at(&self, column: usize) -> &PackedWeights {
        debug_assert!(column.is_multiple_of(self.width));
        &self.blocks[column / self.width]
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
            let blocks = ColumnBlocks::pack(&w, n, k, COLUMN_BLOCK).unwrap();
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
            let zeros = ColumnBlocks::zeros(n, k, COLUMN_BLOCK).unwrap();
            zeros.unpack_into(&mut again);
            assert!(again.iter().all(|&v| v == 0) && zeros.col_sums().all(|s| s == 0));
        }
    }

    #[test]
    fn gate_blocks_cut_every_gate_at_aligned_units() {
        // (n, gates, width): gates of 256-unit blocks, or halves of gates that are not (down to
        // 256 units).
        let halves = [(4 * 256, 4, 128), (3 * 256, 3, 128), (4 * 320, 4, 160), (3 * 384, 3, 192), (4 * 448, 4, 224)];
        for (n, gates, width) in [(2048, 4, 256), (4096, 4, 256), (3 * 768, 3, 256), (4 * 640, 4, 320), (4 * 576, 4, 288), (1024, 2, 256)]
            .into_iter()
            .chain(halves)
        {
            assert_eq!(gate_block_width(n, gates), width, "n={n} gates={gates}");
        }
        // Small gates, gates that cannot be halved at multiples of 32 units, and plain matrices
        // keep the plain blocks.
        for (n, gates) in [(4 * 128, 4), (4 * 192, 4), (4 * 288, 4), (4 * 600, 4), (4 * 544, 4), (4096, 1), (4097, 4), (0, 4)] {
            assert_eq!(gate_block_width(n, gates), COLUMN_BLOCK, "n={n} gates={gates}");
        }
    }

    #[test]
    fn blocks_of_a_column_range_are_whole_blocks() {
        let (n, k) = (4 * 96, 3);
        let w: Vec<i8> = (0..n * k).map(|i| (i % 241) as i8).collect();
        let blocks = ColumnBlocks::pack(&w, n, k, 64).unwrap();
        // The indices of the blocks of a range.
        let index = |b: &PackedWeights| blocks.packed().iter().position(|p| std::ptr::eq(p, b));
        let ranges = |columns: Range<usize>| blocks.blocks_of(columns).map(|run| run.iter().map(index).collect::<Option<Vec<_>>>());
        assert_eq!(ranges(64..192), Some(Some(vec![1, 2])));
        assert_eq!(ranges(320..n), Some(Some(vec![5])));
        assert_eq!((ranges(0..0), ranges(n..n)), (Some(Some(vec![])), Some(Some(vec![]))));
        assert_eq!((ranges(32..64), ranges(0..100), ranges(0..n + 64)), (None, None, None));
        let mut again = vec![0; n * k];
        blocks.unpack_into(&mut again);
        assert_eq!(again, w);
        assert!(ColumnBlocks::zeros(4, 4, 0).is_err());
    }
}
