//! Weight packing: the int8 weight matrix `W[n, k]` (one row per output feature, as PyTorch stores
//! it) rearranged once, at `from_float` or load time, into the layout every GEMM kernel reads.
//!
//! Layout: output features are grouped into panels of [`PANEL_WIDTH`] columns; inside a panel, for
//! each group of [`K_GROUP`] consecutive `k`, the 4 bytes of column 0, then of column 1, ... So one
//! k-group of a full panel is one 64-byte block, exactly one 512-bit register, aligned to 64
//! bytes. `K` is padded with zeros to a multiple of 4 (padding adds nothing to any dot product).
//!
//! The last `n % 16` columns, when there are any, are stored one of two ways ([`pads_last_panel`]):
//! - as a full panel padded with zero columns, when that adds at most 1/8 to the weight bytes
//!   (`n >= 8 * (16 - n % 16)`, e.g. 1000 output features): the kernels read it with their
//!   full-panel code and drop the padding columns when they store;
//! - else as a *narrow* panel laid out the same way but only as wide as its columns (k-groups of
//!   `4 * (n % 16)` bytes, after the full panels): a matrix of few output features costs its own
//!   bytes, not 16 columns' worth. The kernels read it a chunk of k-groups at a time through
//!   [`PackedWeights::widen_narrow`], which widens each k-group into a zero-padded [`Block`], so
//!   they run the same dot-product steps on it as on a full panel (slower than a full panel).
//!
//! Either way the packed weights hold at most 1/8 more than `n * k_padded` bytes. The padding of
//! `K` remains: at most 3 bytes per output column (4 bytes for a column of 1 input).

use crate::alloc;
use crate::block_buffer::BlockBuffer;
use crate::error::{Error, Result};

/// Output features per panel (16 int32 lanes of a 512-bit register).
pub const PANEL_WIDTH: usize = 16;
/// Consecutive `k` values per column in one block (the 4-way dot product of `vpdpbusd`/`sdot`).
pub const K_GROUP: usize = 4;
/// k-groups of the narrow panel widened at a time by [`PackedWeights::widen_narrow`] (1 KiB).
pub const NARROW_CHUNK: usize = 16;

/// One k-group of one panel: `PANEL_WIDTH` columns x `K_GROUP` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Block(pub [i8; PANEL_WIDTH * K_GROUP]);

impl Block {
    pub const ZERO: Block = Block([0; PANEL_WIDTH * K_GROUP]);
}

/// Whether the columns of an `n`-column matrix past its last whole panel are stored as a full panel
/// padded with zero columns (true) or as a narrow panel (false; see the module documentation):
/// padded when the padding adds at most 1/8 to the weight bytes.
pub fn pads_last_panel(n: usize) -> bool {
    let missing = (PANEL_WIDTH - n % PANEL_WIDTH) % PANEL_WIDTH;
    missing > 0 && missing * 8 <= n
}

/// Columns stored for an `n`-column matrix: `n`, or `n` rounded up to a whole panel when
/// [`pads_last_panel`].
fn stored_columns(n: usize) -> usize {
    if pads_last_panel(n) {
        n.next_multiple_of(PANEL_WIDTH)
    } else {
        n
    }
}

/// Checks that a row-major `n x k` weight matrix has `len` elements.
pub fn check_weight_len(len: usize, n: usize, k: usize) -> Result<()> {
    let expected = n.checked_mul(k).ok_or_else(|| Error::Shape(format!("weight shape ({n}, {k}) is too large")))?;
    if len != expected {
        return Err(Error::Shape(format!("weight has {len} elements, expected {n} x {k} = {expected}")));
    }
    Ok(())
}

/// An int8 weight matrix in panel layout, with the per-column data the epilogues need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedWeights {
    n: usize,
    k: usize,
    k_groups: usize,
    /// The full panels, one after another, then the narrow panel.
    blocks: BlockBuffer,
    col_sums: Vec<i32>,
}

impl PackedWeights {
    /// Packs `weight`, a row-major `n x k` int8 matrix.
    pub fn pack(weight: &[i8], n: usize, k: usize) -> Result<Self> {
        check_weight_len(weight.len(), n, k)?;
        let mut packed = Self::allocate(n, k, true)?;
        // One panel at a time, each written column by column: column `lane`'s k-group `g` is the
        // `K_GROUP` bytes at cell `g * width + lane` of its panel.
        for p in 0..packed.n_panels() {
            let (bytes, width, _) = packed.panel_bytes_mut(p);
            let (cells, _) = bytes.as_chunks_mut::<K_GROUP>();
            let rows = &weight[p * PANEL_WIDTH * k..(p * PANEL_WIDTH + width).min(n) * k];
            for (lane, row) in rows.chunks_exact(k.max(1)).enumerate() {
                let (groups, rest) = row.as_chunks::<K_GROUP>();
                let mut column = cells[lane..].iter_mut().step_by(width);
                for (group, cell) in groups.iter().zip(column.by_ref()) {
                    *cell = *group;
                }
                if let Some(cell) = column.next().filter(|_| !rest.is_empty()) {
                    cell[..rest.len()].copy_from_slice(rest);
                }
            }
        }
        if k > 0 {
            for (sum, row) in packed.col_sums.iter_mut().zip(weight.chunks_exact(k)) {
                *sum = row.iter().map(|&w| w as i32).sum();
            }
        }
        Ok(packed)
    }

    /// An `n x k` matrix of zeros. Large matrices get fresh pages from the operating system that
    /// nothing writes, so they cost no memory until something is written to them.
    pub fn zeros(n: usize, k: usize) -> Result<Self> {
        Self::allocate(n, k, false)
    }

    /// Zeros, with the pages made resident up front when `to_write` (cheaper than faulting
    /// them in one by one while packing).
    pub(crate) fn allocate(n: usize, k: usize, to_write: bool) -> Result<Self> {
        alloc::elements(n, k, "the packed weight")?;
        let k_groups = k.div_ceil(K_GROUP);
        // The full panels fill whole blocks, so only the narrow panel's last block is partial.
        let len = alloc::elements(stored_columns(n), k_groups * K_GROUP, "the packed weight")?.div_ceil(size_of::<Block>());
        Ok(PackedWeights { n, k, k_groups, blocks: BlockBuffer::zeroed(len, to_write)?, col_sums: alloc::vec_of(n, 0)? })
    }

    /// Output features (columns of the product).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// `k` rounded up to a multiple of [`K_GROUP`]: the row stride activations must have.
    pub fn k_padded(&self) -> usize {
        self.k_groups * K_GROUP
    }

    /// Number of k-groups (blocks per panel).
    pub fn k_groups(&self) -> usize {
        self.k_groups
    }

    /// Number of panels, the narrow one included.
    pub fn n_panels(&self) -> usize {
        self.n.div_ceil(PANEL_WIDTH)
    }

    /// Number of full panels of [`PANEL_WIDTH`] columns: panels `0..full_panels()`. When
    /// [`pads_last_panel`], the last of them holds zero columns past `n`.
    pub fn full_panels(&self) -> usize {
        stored_columns(self.n) / PANEL_WIDTH
    }

    /// Columns of the narrow last panel (panel `full_panels()`), 0 when there is none.
    pub fn narrow_width(&self) -> usize {
        stored_columns(self.n) % PANEL_WIDTH
    }

    /// The `k_groups()` blocks of full panel `p`.
    ///
    /// # Panics
    /// When `p` is not a full panel.
    #[inline(always)] // called per panel by the kernels, which must not pay a call for it
    pub fn panel(&self, p: usize) -> &[Block] {
        assert!(p < self.full_panels(), "panel {p} is not one of the {} full panels", self.full_panels());
        &self.blocks.as_slice()[p * self.k_groups..(p + 1) * self.k_groups]
    }

    /// The bytes of panel `p` (full or narrow) and its width in columns: column `j`'s k-group `g`
    /// is the [`K_GROUP`] bytes from `(g * width + j) * K_GROUP`.
    pub fn panel_bytes(&self, p: usize) -> (&[i8], usize) {
        let (range, width) = self.panel_range(p);
        (&self.blocks.as_bytes()[range], width)
    }

    /// [`PackedWeights::panel_bytes`], to be filled by a packer (`pack_stream`), with the column
    /// sums for it to write too.
    pub(crate) fn panel_bytes_mut(&mut self, p: usize) -> (&mut [i8], usize, &mut [i32]) {
        let (range, width) = self.panel_range(p);
        (&mut self.blocks.as_mut_bytes()[range], width, &mut self.col_sums)
    }

    fn panel_range(&self, p: usize) -> (std::ops::Range<usize>, usize) {
        let width = if p < self.full_panels() { PANEL_WIDTH } else { self.narrow_width() };
        let start = p * PANEL_WIDTH * self.k_padded();
        (start..start + width * self.k_padded(), width)
    }

    /// The narrow panel's k-groups from `g0` on, as many as `chunk` holds (fewer at the end), each
    /// widened into a full-panel block: `out[i]` is k-group `g0 + i`, its missing columns zero
    /// weights, which add nothing to a dot product. `chunk` must hold only zeros past the narrow
    /// panel's columns: a chunk of [`Block::ZERO`]s, then reused for each `g0` of one matrix.
    /// Kernels walk `g0` over `(0..k_groups()).step_by(NARROW_CHUNK)`.
    #[inline(always)]
    pub fn widen_narrow<'c>(&self, g0: usize, chunk: &'c mut [Block; NARROW_CHUNK]) -> &'c [Block] {
        let (bytes, width) = self.panel_bytes(self.full_panels());
        let group = width * K_GROUP;
        let groups = bytes[g0 * group..].chunks_exact(group.max(1)).take(NARROW_CHUNK);
        let count = groups.len();
        for (block, group) in chunk.iter_mut().zip(groups) {
            // Cell by cell: a few 4-byte moves, no call to memcpy.
            for (to, from) in block.0.as_chunks_mut::<K_GROUP>().0.iter_mut().zip(group.as_chunks::<K_GROUP>().0) {
                *to = *from;
            }
        }
        &chunk[..count]
    }

    /// `Σ_k W[n, k]` per column: the zero-point compensation term.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }

    /// Bytes this matrix holds: the packed weights and the column sums.
    pub fn nbytes(&self) -> usize {
        self.blocks.nbytes() + size_of_val(self.col_sums.as_slice())
    }

    /// One weight, read back from the packed layout.
    pub fn get(&self, n: usize, k: usize) -> i8 {
        let (bytes, width) = self.panel_bytes(n / PANEL_WIDTH);
        bytes[(k / K_GROUP * width + n % PANEL_WIDTH) * K_GROUP + k % K_GROUP]
    }

    /// The row-major `n x k` matrix this was packed from.
    pub fn unpack(&self) -> Vec<i8> {
        let mut out = vec![0; self.n * self.k];
        self.unpack_into(&mut out);
        out
    }

    /// Writes the row-major `n x k` matrix this was packed from into `out` (`n * k` elements).
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn unpack_into(&self, out: &mut [i8]) {
        assert_eq!(out.len(), self.n * self.k, "unpack_into: wrong output length");
        for (col, row) in out.chunks_exact_mut(self.k.max(1)).take(self.n).enumerate() {
            let (bytes, width) = self.panel_bytes(col / PANEL_WIDTH);
            let cells = bytes.as_chunks::<K_GROUP>().0[col % PANEL_WIDTH..].iter().step_by(width);
            for (cell, group) in cells.zip(row.chunks_mut(K_GROUP)) {
                group.copy_from_slice(&cell[..group.len()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, k: usize) -> Vec<i8> {
        (0..n * k).map(|i| (i % 251) as i8).collect()
    }

    #[test]
    fn packing_round_trips_for_ragged_shapes() {
        for (n, k) in [(1, 1), (15, 3), (16, 4), (17, 5), (33, 63), (0, 7), (5, 0), (2, 2), (31, 9)] {
            let w = ramp(n, k);
            let p = PackedWeights::pack(&w, n, k).unwrap();
            assert_eq!(p.unpack(), w, "n={n} k={k}");
            assert_eq!(p.k_padded() % K_GROUP, 0);
            for (j, row) in w.chunks_exact(k.max(1)).enumerate() {
                assert!(row.iter().enumerate().all(|(kk, &v)| p.get(j, kk) == v), "n={n} k={k} column {j}");
            }
        }
    }

    #[test]
    fn padding_is_zero() {
        let p = PackedWeights::pack(&ramp(17, 5), 17, 5).unwrap();
        assert_eq!(p.panel(0)[1].0[1..K_GROUP], [0; K_GROUP - 1]);
        let (narrow, width) = p.panel_bytes(1);
        assert_eq!((width, narrow.len()), (1, 2 * K_GROUP));
        assert_eq!(narrow[K_GROUP + 1..], [0; K_GROUP - 1]);
    }

    #[test]
    fn a_narrow_panel_costs_only_its_columns() {
        // (n, k, blocks): 16 x 4 bytes per k-group of a full panel, 4 per narrow column.
        // 15 columns: padded to a full panel (1 missing column adds less than 1/8).
        for (n, k, blocks) in [(1, 4 * 64, 4), (1, 1, 1), (4, 64, 4), (16, 8, 2), (17, 64, 16 + 1), (33, 3, 3), (0, 5, 0), (15, 8, 2)] {
            let p = PackedWeights::zeros(n, k).unwrap();
            assert_eq!(p.nbytes(), blocks * size_of::<Block>() + 4 * n, "n={n} k={k}");
        }
    }

    #[test]
    fn the_last_panel_is_padded_where_that_adds_at_most_an_eighth() {
        // (n, padded): 16 - n % 16 missing columns against n / 8.
        for (n, padded) in [(0, false), (1, false), (15, true), (16, false), (17, false), (40, false), (50, false), (120, true), (1000, true)] {
            assert_eq!(pads_last_panel(n), padded, "n={n}");
            let p = PackedWeights::pack(&ramp(n, 9), n, 9).unwrap();
            let stored = if padded { n.next_multiple_of(PANEL_WIDTH) } else { n };
            assert_eq!((p.full_panels(), p.narrow_width()), (stored / PANEL_WIDTH, stored % PANEL_WIDTH), "n={n}");
            assert_eq!(p.unpack(), ramp(n, 9), "n={n}");
            for (j, &sum) in p.col_sums().iter().enumerate() {
                assert_eq!(sum, ramp(n, 9)[j * 9..(j + 1) * 9].iter().map(|&w| i32::from(w)).sum::<i32>());
            }
        }
    }

    #[test]
    fn the_narrow_panel_widens_to_blocks() {
        for (n, k) in [(1, 1), (3, 7), (17, 4 * NARROW_CHUNK), (7, 4 * NARROW_CHUNK + 5), (33, 200)] {
            assert!(!pads_last_panel(n));
            let w = ramp(n, k);
            let p = PackedWeights::pack(&w, n, k).unwrap();
            let first = p.full_panels() * PANEL_WIDTH;
            let mut chunk = [Block::ZERO; NARROW_CHUNK];
            for g0 in (0..p.k_groups()).step_by(NARROW_CHUNK) {
                let blocks = p.widen_narrow(g0, &mut chunk);
                assert_eq!(blocks.len(), NARROW_CHUNK.min(p.k_groups() - g0));
                for (g, block) in (g0..).zip(blocks) {
                    for (lane, cell) in block.0.chunks_exact(K_GROUP).enumerate() {
                        for (i, &v) in cell.iter().enumerate() {
                            let kk = g * K_GROUP + i;
                            let want = if first + lane < n && kk < k { w[(first + lane) * k + kk] } else { 0 };
                            assert_eq!(v, want, "n={n} k={k} column {} k {kk}", first + lane);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn column_sums_are_per_output_feature() {
        let w: Vec<i8> = vec![1, 2, 3, -128, 127, 0];
        let p = PackedWeights::pack(&w, 2, 3).unwrap();
        assert_eq!(p.col_sums(), &[6, -1]);
    }

    #[test]
    fn blocks_are_cache_line_aligned() {
        let p = PackedWeights::pack(&ramp(40, 40), 40, 40).unwrap();
        assert_eq!(p.panel(1).as_ptr() as usize % 64, 0);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(matches!(PackedWeights::pack(&[0; 5], 2, 3), Err(Error::Shape(_))));
    }
}
