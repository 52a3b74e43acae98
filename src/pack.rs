//! Weight packing: the int8 weight matrix `W[n, k]` (one row per output feature, as PyTorch stores
//! it) rearranged once, at `from_float` or load time, into the layout every GEMM kernel reads.
//!
//! Layout: output features are grouped into panels of [`PANEL_WIDTH`] columns; inside a panel, for
//! each group of [`K_GROUP`] consecutive `k`, the 4 bytes of column 0, then of column 1, ... So one
//! k-group of a panel is one 64-byte block, exactly one 512-bit register, aligned to 64 bytes. `K`
//! is padded with zeros to a multiple of 4 and `N` with zero columns to a multiple of 16: padding
//! adds nothing to any dot product.

use crate::alloc;
use crate::block_buffer::BlockBuffer;
use crate::error::{Error, Result};

/// Output features per panel (16 int32 lanes of a 512-bit register).
pub const PANEL_WIDTH: usize = 16;
/// Consecutive `k` values per column in one block (the 4-way dot product of `vpdpbusd`/`sdot`).
pub const K_GROUP: usize = 4;

/// One k-group of one panel: `PANEL_WIDTH` columns x `K_GROUP` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Block(pub [i8; PANEL_WIDTH * K_GROUP]);

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
    blocks: BlockBuffer,
    col_sums: Vec<i32>,
}

impl PackedWeights {
    /// Packs `weight`, a row-major `n x k` int8 matrix.
    pub fn pack(weight: &[i8], n: usize, k: usize) -> Result<Self> {
        check_weight_len(weight.len(), n, k)?;
        let mut packed = Self::allocate(n, k, true)?;
        let k_groups = packed.k_groups;
        let whole_groups = k / K_GROUP;
        let blocks = packed.blocks.as_mut_slice();
        // One panel at a time, its blocks written in order (a sequential stream of stores).
        for (rows, panel) in
            weight.chunks(PANEL_WIDTH * k.max(1)).take(n.div_ceil(PANEL_WIDTH)).zip(blocks.chunks_exact_mut(k_groups.max(1)))
        {
            for (lane, row) in rows.chunks_exact(k.max(1)).enumerate() {
                let (groups, rest) = row.as_chunks::<K_GROUP>();
                let at = lane * K_GROUP;
                for (block, group) in panel[..whole_groups].iter_mut().zip(groups) {
                    block.0[at..at + K_GROUP].copy_from_slice(group);
                }
                if !rest.is_empty() {
                    panel[whole_groups].0[at..at + rest.len()].copy_from_slice(rest);
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
        let len = alloc::elements(n.div_ceil(PANEL_WIDTH), k_groups, "the packed weight")?;
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

    /// Number of panels of [`PANEL_WIDTH`] columns.
    pub fn n_panels(&self) -> usize {
        self.n.div_ceil(PANEL_WIDTH)
    }

    /// The `k_groups()` blocks of panel `p`.
    pub fn panel(&self, p: usize) -> &[Block] {
        &self.blocks.as_slice()[p * self.k_groups..(p + 1) * self.k_groups]
    }

    /// `Σ_k W[n, k]` per column: the zero-point compensation term.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }

    /// The bytes of panel `p` and its stride in columns, for a packer that fills them
    /// (`pack_stream`): column `j`'s k-group `g` is the [`K_GROUP`] bytes from
    /// `(g * stride + j) * K_GROUP`; and the column sums, for it to write too.
    pub(crate) fn panel_bytes_mut(&mut self, p: usize) -> (&mut [i8], usize, &mut [i32]) {
        let blocks = &mut self.blocks.as_mut_slice()[p * self.k_groups..(p + 1) * self.k_groups];
        // SAFETY: a `Block` is a `repr(C)` wrapper of `[i8; 64]` without padding, so the blocks are
        // `size_of_val(blocks)` initialised bytes, borrowed mutably as long as `self`; any bytes
        // are a valid `Block`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<i8>(), size_of_val(blocks)) };
        (bytes, PANEL_WIDTH, &mut self.col_sums)
    }

    /// One weight, read back from the packed layout.
    pub fn get(&self, n: usize, k: usize) -> i8 {
        self.panel(n / PANEL_WIDTH)[k / K_GROUP].0[(n % PANEL_WIDTH) * K_GROUP + k % K_GROUP]
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
            let lane = col % PANEL_WIDTH;
            for (block, group) in self.panel(col / PANEL_WIDTH).iter().zip(row.chunks_mut(K_GROUP)) {
                group.copy_from_slice(&block.0[lane * K_GROUP..lane * K_GROUP + group.len()]);
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
        for (n, k) in [(1, 1), (15, 3), (16, 4), (17, 5), (33, 63), (0, 7), (5, 0)] {
            let w = ramp(n, k);
            let p = PackedWeights::pack(&w, n, k).unwrap();
            assert_eq!(p.unpack(), w, "n={n} k={k}");
            assert_eq!(p.k_padded() % K_GROUP, 0);
        }
    }

    #[test]
    fn padding_is_zero() {
        let p = PackedWeights::pack(&ramp(17, 5), 17, 5).unwrap();
        let last = p.panel(1);
        assert_eq!(last[0].0[K_GROUP..], [0; (PANEL_WIDTH - 1) * K_GROUP]);
        assert_eq!(p.panel(0)[1].0[1..K_GROUP], [0; K_GROUP - 1]);
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
