//! Packing a weight matrix that arrives a few rows at a time (read from a file into one small
//! buffer), at the speed of a memory copy: the rows of a panel are transposed into its blocks with
//! 4-byte moves, each block written whole and in order, and each row's sum taken while the row is
//! still in the cache. Only the packed matrix and a buffer of about [`CHUNK_BYTES`] are ever held.

use std::ops::Range;

use crate::alloc;
use crate::error::Result;
use crate::pack::{PackedWeights, K_GROUP, PANEL_WIDTH};

/// Bytes of rows read at a time (whole panels; at least one).
const CHUNK_BYTES: usize = 256 * 1024;

/// Packs the row-major `n x k` int8 matrix whose rows `read(rows, buffer)` writes into `buffer`
/// (`rows.len() * k` bytes). `read` is called for consecutive row ranges, in order, each a whole
/// number of panels (the last one excepted); its error is returned as it is. The rows pass
/// through `buffer`, grown as needed (a caller packing several matrices hands the same one).
pub fn pack_from(
    n: usize,
    k: usize,
    buffer: &mut Vec<i8>,
    mut read: impl FnMut(Range<usize>, &mut [i8]) -> Result<()>,
) -> Result<PackedWeights> {
    let mut packed = PackedWeights::allocate(n, k, true)?;
    let panel_bytes = alloc::elements(PANEL_WIDTH, k, "a panel of the weight")?;
    let chunk_rows = (CHUNK_BYTES / panel_bytes.max(1)).max(1) * PANEL_WIDTH;
    alloc::resize(buffer, alloc::elements(chunk_rows.min(n), k, "the read buffer")?, 0)?;
    for first in (0..n).step_by(chunk_rows) {
        let rows = first..(first + chunk_rows).min(n);
        let bytes = &mut buffer[..rows.len() * k];
        read(rows, bytes)?;
        for (i, panel_rows) in bytes.chunks(panel_bytes.max(1)).enumerate() {
            let p = first / PANEL_WIDTH + i;
            let (panel, stride, sums) = packed.panel_bytes_mut(p);
            pack_panel(panel_rows, k, panel, stride);
            for (sum, row) in sums[p * PANEL_WIDTH..].iter_mut().zip(panel_rows.chunks_exact(k)) {
                *sum = row.iter().map(|&w| i32::from(w)).sum();
            }
        }
    }
    Ok(packed)
}

/// Writes the rows of one panel (`rows.len() / k` of them, at most [`PANEL_WIDTH`]; `k > 0`)
/// into its zeroed bytes: row `j`'s k-group `g` to cell `g * stride + j`.
fn pack_panel(rows: &[i8], k: usize, panel: &mut [i8], stride: usize) {
    let (cells, _) = panel.as_chunks_mut::<K_GROUP>();
    if rows.len() == PANEL_WIDTH * k && stride == PANEL_WIDTH && k.is_multiple_of(K_GROUP) {
        // A full panel: each block gathers one k-group of every row, written whole, in order.
        let groups: [&[[i8; K_GROUP]]; PANEL_WIDTH] = std::array::from_fn(|j| rows[j * k..(j + 1) * k].as_chunks().0);
        for (g, block) in cells.chunks_exact_mut(PANEL_WIDTH).enumerate() {
            for (cell, row) in block.iter_mut().zip(&groups) {
                *cell = row[g];
            }
        }
        return;
    }
    for (j, row) in rows.chunks_exact(k).enumerate() {
        let (groups, rest) = row.as_chunks::<K_GROUP>();
        let mut column = cells[j..].iter_mut().step_by(stride);
        for (group, cell) in groups.iter().zip(column.by_ref()) {
            *cell = *group;
        }
        if let Some(cell) = column.next().filter(|_| !rest.is_empty()) {
            cell[..rest.len()].copy_from_slice(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn ramp(n: usize, k: usize) -> Vec<i8> {
        (0..n * k).map(|i| (i * 7 % 256) as u8 as i8).collect()
    }

    #[test]
    fn packs_as_the_whole_matrix_does_for_every_shape() {
        // Full panels, ragged panels, k not a multiple of 4, several chunks, empty matrices.
        for (n, k) in [(1, 1), (15, 3), (16, 4), (17, 5), (33, 63), (48, 8192), (100, 1000), (0, 7), (5, 0), (40, 4 * 1024 + 2)] {
            let w = ramp(n, k);
            let mut calls = Vec::new();
            let streamed = pack_from(n, k, &mut Vec::new(), |rows, buffer| {
                buffer.copy_from_slice(&w[rows.start * k..rows.end * k]);
                calls.push(rows);
                Ok(())
            })
            .unwrap();
            assert_eq!(streamed, PackedWeights::pack(&w, n, k).unwrap(), "n={n} k={k}");
            let covered: Vec<usize> = calls.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>(), "n={n} k={k}");
            assert!(calls.iter().all(|r| r.start % PANEL_WIDTH == 0), "n={n} k={k}");
        }
    }

    #[test]
    fn a_failed_read_is_the_error() {
        let failed = pack_from(40, 3, &mut Vec::new(), |_, _| Err(Error::Value("the file ended".into())));
        assert_eq!(failed.unwrap_err(), Error::Value("the file ended".into()));
    }
}
