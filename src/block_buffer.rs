//! The memory behind packed weights: zero-initialised, 64-byte aligned [`Block`]s.
//!
//! Large buffers are mapped straight from the operating system instead of the heap: their pages
//! cost nothing until written (a module built with zero weights and then loaded costs its
//! weights once), and they go back to the system the moment they are dropped, never left behind
//! in the allocator between other allocations.

use memmap2::{MmapMut, MmapOptions};

use crate::alloc;
use crate::error::{Error, Result};
use crate::pack::Block;

/// Buffers of at least this many bytes are mapped (see the module documentation).
const MAP_THRESHOLD: usize = 256 * 1024;

/// `len` zeroed blocks, on the heap or in their own mapping.
#[derive(Debug)]
pub struct BlockBuffer {
    storage: Storage,
    len: usize,
}

#[derive(Debug)]
enum Storage {
    Heap(Vec<Block>),
    Mapped(MmapMut),
}

impl BlockBuffer {
    /// `len` blocks of zeros; with `populate`, a mapping's pages are made resident at once (for
    /// a buffer about to be written whole).
    pub fn zeroed(len: usize, populate: bool) -> Result<Self> {
        let bytes = alloc::elements(len, size_of::<Block>(), "the packed weight")?;
        let storage = if bytes < MAP_THRESHOLD {
            Storage::Heap(alloc::vec_of(len, Block([0; size_of::<Block>()]))?)
        } else {
            let map = MmapOptions::new().len(bytes).map_anon().map_err(|e| {
                Error::Memory(format!("cannot allocate {bytes} bytes ({:.1} GiB) of packed weights: {e}", bytes as f64 / (1u64 << 30) as f64))
            })?;
            advise(&map, populate);
            Storage::Mapped(map)
        };
        Ok(BlockBuffer { storage, len })
    }

    pub fn as_slice(&self) -> &[Block] {
        match &self.storage {
            Storage::Heap(v) => v,
            // SAFETY: the mapping is page-aligned (so 64-byte aligned, as `Block` requires), holds
            // exactly `len * size_of::<Block>()` bytes, lives as long as `self`, and any bytes are
            // a valid `Block` (an array of `i8`).
            Storage::Mapped(m) => unsafe { std::slice::from_raw_parts(m.as_ptr().cast::<Block>(), self.len) },
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
            Storage::Mapped(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<Block>(), self.len) },
        }
    }

    /// The blocks as one run of bytes.
    pub fn as_bytes(&self) -> &[i8] {
        let blocks = self.as_slice();
        // SAFETY: a `Block` is a `repr(C)` wrapper of `[i8; 64]` of size 64 (no padding), so the
        // blocks are `size_of_val(blocks)` initialised bytes, borrowed as long as `self`.
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<i8>(), size_of_val(blocks)) }
    }

    /// The blocks as one run of writable bytes.
    pub fn as_mut_bytes(&mut self) -> &mut [i8] {
        let blocks = self.as_mut_slice();
        // SAFETY: as in `as_bytes`; the bytes come from the only (mutable) borrow of the blocks,
        // and any bytes are a valid `Block`.
        unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<i8>(), size_of_val(blocks)) }
    }

    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        self.len * size_of::<Block>()
    }
}

/// Asks for huge pages (2 MiB on x86-64) under a mapping: a packed weight is written whole once
/// and read whole by every call, so they cost no memory beyond its own and save most page faults
/// (when it is written) and TLB misses (when it is read). With `populate`, the pages are made
/// resident at once. Both are hints: where the system declines them (no transparent huge pages,
/// a kernel older than 5.14), the pages are 4 KiB ones, faulted in when first written.
#[cfg(target_os = "linux")]
fn advise(map: &MmapMut, populate: bool) {
    use memmap2::Advice;
    let _ = map.advise(Advice::HugePage);
    if populate {
        let _ = map.advise(Advice::PopulateWrite);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_: &MmapMut, _: bool) {}

impl Clone for BlockBuffer {
    fn clone(&self) -> Self {
        let mut copy = BlockBuffer::zeroed(self.len, true).expect("a buffer of this size was allocated before");
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl PartialEq for BlockBuffer {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for BlockBuffer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_mapped_buffers_are_zeroed_aligned_and_writable() {
        for (len, populate) in [(0, false), (1, true), (7, false), (MAP_THRESHOLD / 64 + 3, false), (MAP_THRESHOLD / 64, true)] {
            let mut b = BlockBuffer::zeroed(len, populate).unwrap();
            assert!(b.as_slice().iter().all(|block| block.0 == [0; 64]));
            assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
            if len > 0 {
                b.as_mut_slice()[len - 1].0[63] = 5;
                assert_eq!(b.clone().as_slice()[len - 1].0[63], 5);
            }
        }
    }

    #[test]
    fn absurd_sizes_are_errors() {
        assert!(matches!(BlockBuffer::zeroed(usize::MAX / 2, false), Err(Error::Shape(_))));
        assert!(matches!(BlockBuffer::zeroed(usize::MAX / 128, false), Err(Error::Memory(_))));
        assert!(matches!(BlockBuffer::zeroed(usize::MAX / 128, true), Err(Error::Memory(_))));
    }
}
