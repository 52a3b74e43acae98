//! Variable-length batches with PyTorch's packed-sequence semantics (docs/numerics.md §4.2): the batch is
//! sorted by decreasing length, and the valid (step, element) pairs are laid out time-major, so
//! that step `t` covers the first `batch_sizes[t]` sorted elements. Padding is never stored: it
//! cannot enter a quantization range, and outputs past a sequence's end are zero.

use crate::alloc;
use crate::error::{Error, Result};

/// Where the valid rows of a `(steps, batch)` input live in packed order.
#[derive(Clone, Debug)]
pub struct Packing {
    steps: usize,
    batch: usize,
    /// The order and step sizes of a batch with lengths; `None` when every element runs every
    /// step (the identity order, the whole batch at each step), which needs no memory, so that a
    /// stream of single steps allocates nothing.
    sorted: Option<Sorted>,
}

/// The packed layout of a batch whose elements have their own lengths.
#[derive(Clone, Debug)]
struct Sorted {
    /// Sorted position -> batch index, by decreasing length (stable).
    order: Vec<usize>,
    /// Per step: how many (sorted) elements are still running.
    batch_sizes: Vec<usize>,
    /// Per step: the packed row of its first element.
    offsets: Vec<usize>,
}

impl Packing {
    /// `lengths` (one per batch element, each `<= steps`; 0 is an empty sequence) or every
    /// sequence running all `steps`.
    pub fn new(steps: usize, batch: usize, lengths: Option<&[usize]>) -> Result<Self> {
        let Some(lengths) = lengths else {
            alloc::elements(steps, batch, "the sequence's rows (steps x batch)")?;
            return Ok(Packing { steps, batch, sorted: None });
        };
        if lengths.len() != batch {
            return Err(Error::Shape(format!(
                "lengths has {} entries, expected one per batch element ({batch})",
                lengths.len()
            )));
        }
        if let Some(&bad) = lengths.iter().find(|&&n| n > steps) {
            return Err(Error::Value(format!("lengths must be between 0 and the sequence length {steps}, got {bad}")));
        }
        let mut order: Vec<usize> = alloc::collect(batch, 0..batch)?;
        order.sort_by_key(|&b| std::cmp::Reverse(lengths[b]));
        // Elements running at step t: the batch less those whose length is at most t (O(steps +
        // batch), as `steps` is not bounded by the input's size when it has no features).
        let mut batch_sizes: Vec<usize> = alloc::vec_of(steps, 0)?;
        for &n in lengths {
            if let Some(ending) = batch_sizes.get_mut(n) {
                *ending += 1;
            }
        }
        let mut running = batch;
        for size in batch_sizes.iter_mut() {
            running -= *size;
            *size = running;
        }
        let offsets = alloc::collect(
            steps,
            batch_sizes.iter().scan(0, |next, &size| {
                let first = *next;
                *next += size;
                Some(first)
            }),
        )?;
        Ok(Packing { steps, batch, sorted: Some(Sorted { order, batch_sizes, offsets }) })
    }

    /// Time steps, valid or not.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Valid rows in total.
    pub fn rows(&self) -> usize {
        match &self.sorted {
            Some(sorted) => sorted.batch_sizes.iter().sum(),
            None => self.steps * self.batch,
        }
    }

    /// `(first packed row, running elements)` of step `t`.
    pub fn step(&self, t: usize) -> (usize, usize) {
        match &self.sorted {
            Some(sorted) => (sorted.offsets[t], sorted.batch_sizes[t]),
            None => (t * self.batch, self.batch),
        }
    }

    /// The batch index of sorted position `p`.
    fn element(&self, p: usize) -> usize {
        match &self.sorted {
            Some(sorted) => sorted.order[p],
            None => p,
        }
    }

    /// Row of `(t, b)` in a padded `(steps, batch)` or `(batch, steps)` tensor.
    fn padded_row(&self, t: usize, b: usize, batch_first: bool) -> usize {
        if batch_first {
            b * self.steps + t
        } else {
            t * self.batch + b
        }
    }

    /// The valid rows of a padded tensor (`features` values per row), in packed order, into
    /// `packed` (resized to them, reusing its memory).
    pub fn pack_into(&self, padded: &[f32], features: usize, batch_first: bool, packed: &mut Vec<f32>) -> Result<()> {
        alloc::resize(packed, alloc::elements(self.rows(), features, "the packed input")?, 0.0)?;
        for t in 0..self.steps {
            let (offset, size) = self.step(t);
            for (p, b) in (0..size).map(|p| (p, self.element(p))) {
                let src = self.padded_row(t, b, batch_first) * features;
                let dst = (offset + p) * features;
                packed[dst..dst + features].copy_from_slice(&padded[src..src + features]);
            }
        }
        Ok(())
    }

    /// The padded tensor of packed rows into `padded` (`steps x batch` rows of `features`),
    /// writing every element: the valid rows, and zeros where sequences have ended.
    pub fn unpack_into(&self, packed: &[f32], features: usize, batch_first: bool, padded: &mut [f32]) {
        for t in 0..self.steps {
            let (offset, size) = self.step(t);
            for p in 0..self.batch {
                let dst = self.padded_row(t, self.element(p), batch_first) * features;
                let row = &mut padded[dst..dst + features];
                if p < size {
                    let src = (offset + p) * features;
                    row.copy_from_slice(&packed[src..src + features]);
                } else {
                    row.fill(0.0);
                }
            }
        }
    }

    /// A per-element state (`batch` rows of `features`) reordered to sorted positions, into
    /// `sorted` (as long).
    pub fn sort_rows_into(&self, state: &[f32], features: usize, sorted: &mut [f32]) {
        for (p, dst) in sorted.chunks_exact_mut(features.max(1)).enumerate() {
            let b = self.element(p);
            dst.copy_from_slice(&state[b * features..(b + 1) * features]);
        }
    }

    /// The inverse of [`Packing::sort_rows_into`], written into `state`.
    pub fn unsort_rows_into(&self, sorted: &[f32], features: usize, state: &mut [f32]) {
        for (p, src) in sorted.chunks_exact(features.max(1)).enumerate() {
            let b = self.element(p);
            state[b * features..(b + 1) * features].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(p: &Packing, padded: &[f32], features: usize, batch_first: bool) -> Vec<f32> {
        let mut packed = vec![f32::NAN; 3];
        p.pack_into(padded, features, batch_first, &mut packed).unwrap();
        packed
    }

    /// Unpacks into NaN, so that an element left unwritten shows.
    fn unpack(p: &Packing, packed: &[f32], features: usize, batch_first: bool) -> Vec<f32> {
        let mut padded = vec![f32::NAN; p.steps() * p.batch * features];
        p.unpack_into(packed, features, batch_first, &mut padded);
        padded
    }

    #[test]
    fn full_batches_pack_to_the_time_major_layout() {
        let p = Packing::new(3, 2, None).unwrap();
        assert_eq!(p.rows(), 6);
        assert_eq!((0..3).map(|t| p.step(t)).collect::<Vec<_>>(), [(0, 2), (2, 2), (4, 2)]);
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(pack(&p, &x, 1, false), x);
        // batch-first (2, 3): element b, step t at b*3 + t.
        assert_eq!(pack(&p, &x, 1, true), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(unpack(&p, &pack(&p, &x, 1, true), 1, true), x);
    }

    #[test]
    fn lengths_sort_the_batch_and_drop_padding() {
        // Element 0 runs 1 step, element 1 runs 3, element 2 runs 2.
        let p = Packing::new(3, 3, Some(&[1, 3, 2])).unwrap();
        assert_eq!((0..3).map(|i| p.element(i)).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!((0..3).map(|t| p.step(t).1).collect::<Vec<_>>(), [3, 2, 1]);
        assert_eq!(p.rows(), 6);
        // Padded time-major x[t][b] = 10*t + b, two features each (second one negated).
        let x: Vec<f32> = (0..3).flat_map(|t| (0..3).flat_map(move |b| [(10 * t + b) as f32, -((10 * t + b) as f32)])).collect();
        let packed = pack(&p, &x, 2, false);
        let firsts: Vec<f32> = packed.chunks(2).map(|r| r[0]).collect();
        assert_eq!(firsts, [1.0, 2.0, 0.0, 11.0, 12.0, 21.0]);
        // Unpacking restores valid rows and zeroes padding.
        let back = unpack(&p, &packed, 2, false);
        for t in 0..3 {
            for (b, len) in [1usize, 3, 2].into_iter().enumerate() {
                let v = back[(t * 3 + b) * 2];
                assert_eq!(v, if t < len { (10 * t + b) as f32 } else { 0.0 }, "t={t} b={b}");
            }
        }
    }

    #[test]
    fn states_round_trip_through_the_sorted_order() {
        let p = Packing::new(4, 3, Some(&[2, 4, 0])).unwrap();
        let state = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
        let mut sorted = [0.0; 6];
        p.sort_rows_into(&state, 2, &mut sorted);
        assert_eq!(sorted, [2.0, 2.5, 1.0, 1.5, 3.0, 3.5]);
        let mut back = [0.0; 6];
        p.unsort_rows_into(&sorted, 2, &mut back);
        assert_eq!(back, state);
        // An empty sequence is never active.
        assert_eq!((0..4).map(|t| p.step(t).1).collect::<Vec<_>>(), [2, 2, 1, 1]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(matches!(Packing::new(3, 2, Some(&[1])), Err(Error::Shape(_))));
        assert!(matches!(Packing::new(3, 2, Some(&[1, 4])), Err(Error::Value(_))));
    }

    #[test]
    fn an_empty_batch_has_no_rows() {
        let p = Packing::new(5, 0, None).unwrap();
        assert_eq!(p.rows(), 0);
        assert!(pack(&p, &[], 3, false).is_empty());
        assert!(unpack(&p, &[], 3, true).is_empty());
    }
}
