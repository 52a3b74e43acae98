//! Row-wise weight-only quantized embedding tables: PyTorch's quantized `Embedding` and
//! `EmbeddingBag` (8-bit quint8 and 4-bit quint4x2 rows) with FBGEMM's numerics.
//!
//! Each row `r` of the table holds integers `q` (one byte each, or two 4-bit values per byte, low
//! nibble first) plus a float `scale[r]` and `bias[r] = -(zero_point[r] * scale[r])`; for 4-bit
//! rows both were rounded to float16 when the table was packed. A bag's output starts at +0.0 and
//! takes its rows in order, each as
//!
//! ```text
//! s = w * scale[r];  b = w * bias[r];          // w: the per-sample weight, 1.0 without one
//! out[j] = fma(s, q[r][j], out[j] + b)         // one rounding for the product and sum
//! ```
//!
//! exactly as FBGEMM's `EmbeddingSpMDM` kernels do; a lookup (`Embedding`) is a bag of one. The
//! fused multiply-add is exact by definition, so the portable path (`f32::mul_add`) and the
//! x86 path compiled with FMA give the same bits.

use crate::alloc;
#[cfg(target_arch = "x86_64")]
use crate::dispatch::active_isa;
use crate::error::{Error, Result};
#[cfg(target_arch = "x86_64")]
use crate::kernels::Isa;

/// A packed quantized embedding table (read-only once built).
#[derive(Debug, Clone)]
pub struct EmbeddingTable {
    bits: u32,
    rows: usize,
    dim: usize,
    /// One byte per value, or (4-bit rows) two values per byte, low nibble first, as stored.
    values: Vec<u8>,
    scales: Vec<f32>,
    biases: Vec<f32>,
}

/// The NaN an invalid operation (`inf * 0`, `inf - inf`) gives on x86: sign set, quiet, no
/// payload. ARM's default NaN is positive; other architectures report x86's, so that a table whose
/// float16 scale overflowed gives torch's x86 bytes everywhere (a NaN that came in through
/// `per_sample_weights` is reported the same way there).
const X86_DEFAULT_NAN: f32 = f32::from_bits(0xffc0_0000);

impl EmbeddingTable {
    /// A table of `rows` rows of `dim` values: `data` holds `rows * dim` bytes for `bits == 8`,
    /// or `rows * dim / 2` bytes of packed nibbles for `bits == 4` (`dim` must be even); `scales`
    /// and `biases` hold one float per row (already rounded to float16 for 4-bit tables).
    pub fn new(bits: u32, rows: usize, dim: usize, data: &[u8], scales: &[f32], biases: &[f32]) -> Result<Self> {
        let row_bytes = match bits {
            8 => dim,
            4 if dim.is_multiple_of(2) => dim / 2,
            4 => {
                return Err(Error::Unsupported(format!(
                    "4-bit (quint4x2) embedding rows need an even embedding_dim, got {dim}"
                )))
            }
            _ => return Err(Error::Unsupported(format!("embedding rows of {bits} bits are not supported (8 or 4)"))),
        };
        let expected = rows.checked_mul(row_bytes).ok_or_else(|| Error::Shape("the embedding table is too large".into()))?;
        if data.len() != expected {
            return Err(Error::Shape(format!(
                "a {bits}-bit table of {rows} rows of {dim} values needs {expected} bytes, got {}",
                data.len()
            )));
        }
        if scales.len() != rows || biases.len() != rows {
            return Err(Error::Shape(format!(
                "expected {rows} scales and biases (one per row), got {} and {}",
                scales.len(),
                biases.len()
            )));
        }
        // 4-bit rows stay packed, as stored: the bags read their nibbles.
        Ok(EmbeddingTable { bits, rows, dim, values: alloc::copy_of(data)?, scales: alloc::copy_of(scales)?, biases: alloc::copy_of(biases)? })
    }

    /// Number of rows (`num_embeddings`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (`embedding_dim`).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// 8 or 4.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Writes the stored integers, one byte per value, into `out` (`rows x dim`, row-major): 4-bit
    /// rows unpacked (low nibble first), exactly what the table was built from.
    ///
    /// # Panics
    /// When `out` has another length.
    pub fn values_into(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.rows * self.dim, "values_into: the output must hold rows x dim bytes");
        if self.bits == 8 {
            out.copy_from_slice(&self.values);
            return;
        }
        for (pair, &byte) in out.chunks_exact_mut(2).zip(&self.values) {
            pair[0] = byte & 0x0f;
            pair[1] = byte >> 4;
        }
    }

    /// Bytes the table holds: its stored values (half a byte each in 4-bit rows) and a float scale
    /// and bias per row.
    pub fn nbytes(&self) -> usize {
        size_of_val(&self.values[..]) + size_of_val(&self.scales[..]) + size_of_val(&self.biases[..])
    }

    /// One output row per index: `out` is `(indices.len(), dim)`, row-major.
    pub fn lookup(&self, indices: &[i64], out: &mut [f32]) -> Result<()> {
        self.check_indices(indices)?;
        self.check_out(indices.len(), out)?;
        let bounds: Vec<i64> = (0..=indices.len() as i64).collect();
        self.sum_bags(indices, &bounds, None, None, out);
        Ok(())
    }

    /// The sum of each bag: bag `k` is `indices[offsets[k]..offsets[k + 1]]` (so `offsets` has one
    /// more entry than there are bags, starts at 0, never decreases and ends at most at
    /// `indices.len()`), each row scaled by its entry of `per_sample_weights` when given. Indices
    /// equal to `skip` are left out. `out` is `(offsets.len() - 1, dim)`, row-major.
    pub fn bags(
        &self,
        indices: &[i64],
        offsets: &[i64],
        per_sample_weights: Option<&[f32]>,
        skip: Option<i64>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check_indices(indices)?;
        let bags = offsets.len().checked_sub(1).ok_or_else(|| Error::Shape("offsets needs at least one entry".into()))?;
        if offsets[0] != 0 {
            return Err(Error::Value(format!("offsets[0] has to be 0, got {}", offsets[0])));
        }
        for (k, pair) in offsets.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(Error::Value(format!(
                    "offsets must not decrease, got offsets[{}] = {} after {}",
                    k + 1,
                    pair[1],
                    pair[0]
                )));
            }
        }
        if offsets[bags] as u64 > indices.len() as u64 {
            return Err(Error::Value(format!(
                "offsets can not be greater than the number of indices {}, got {}",
                indices.len(),
                offsets[bags]
            )));
        }
        if let Some(w) = per_sample_weights {
            if w.len() != indices.len() {
                return Err(Error::Shape(format!(
                    "per_sample_weights must have one entry per index ({}), got {}",
                    indices.len(),
                    w.len()
                )));
            }
        }
        self.check_out(bags, out)?;
        self.sum_bags(indices, offsets, per_sample_weights, skip, out);
        Ok(())
    }

    /// The bag loop on checked input, with hardware FMA when the active path has it (the same
    /// bits as the portable `mul_add`, only faster).
    fn sum_bags(&self, indices: &[i64], bounds: &[i64], weights: Option<&[f32]>, skip: Option<i64>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            let has_fma = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
            if active_isa() != Isa::Scalar && has_fma {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above), the features `sum_bags_fma` enables.
                unsafe { self.sum_bags_fma(indices, bounds, weights, skip, out) };
                return;
            }
        }
        self.sum_bags_body(indices, bounds, weights, skip, out);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_bags_fma(&self, indices: &[i64], bounds: &[i64], weights: Option<&[f32]>, skip: Option<i64>, out: &mut [f32]) {
        self.sum_bags_body(indices, bounds, weights, skip, out);
    }

    #[inline(always)]
    fn sum_bags_body(&self, indices: &[i64], bounds: &[i64], weights: Option<&[f32]>, skip: Option<i64>, out: &mut [f32]) {
        out.fill(0.0);
        for (pair, row) in bounds.windows(2).zip(out.chunks_exact_mut(self.dim.max(1))) {
            for position in pair[0] as usize..pair[1] as usize {
                let index = indices[position];
                if Some(index) == skip {
                    continue;
                }
                let weight = weights.map_or(1.0, |w| w[position]);
                self.accumulate(row, index as usize, weight);
            }
        }
        if cfg!(not(target_arch = "x86_64")) {
            out.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = X86_DEFAULT_NAN);
        }
    }

    fn check_indices(&self, indices: &[i64]) -> Result<()> {
        match indices.iter().position(|&i| i < 0 || i as u64 >= self.rows as u64) {
            Some(p) => Err(Error::Value(format!(
                "index {} at position {p} is out of range for an embedding table of {} rows",
                indices[p], self.rows
            ))),
            None => Ok(()),
        }
    }

    fn check_out(&self, rows: usize, out: &[f32]) -> Result<()> {
        if Some(out.len()) != rows.checked_mul(self.dim) {
            return Err(Error::Shape(format!("the output must hold {rows} x {} floats, got {}", self.dim, out.len())));
        }
        Ok(())
    }

    /// `row[j] = fma(w * scale, q[j], row[j] + w * bias)` for every `j`, FBGEMM's step.
    #[inline(always)]
    fn accumulate(&self, row: &mut [f32], index: usize, weight: f32) {
        let scale = weight * self.scales[index];
        let bias = weight * self.biases[index];
        if self.bits == 4 {
            // Two values per byte, low nibble first; the same step per value as 8-bit rows.
            let half = self.dim / 2;
            for (pair, &byte) in row.chunks_exact_mut(2).zip(&self.values[index * half..(index + 1) * half]) {
                pair[0] = scale.mul_add(f32::from(byte & 0x0f), pair[0] + bias);
                pair[1] = scale.mul_add(f32::from(byte >> 4), pair[1] + bias);
            }
            return;
        }
        let q = &self.values[index * self.dim..(index + 1) * self.dim];
        for (out, &v) in row.iter_mut().zip(q) {
            *out = scale.mul_add(f32::from(v), *out + bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table4() -> EmbeddingTable {
        // rows: [1, 2, 3, 4] and [15, 0, 7, 8]
        EmbeddingTable::new(4, 2, 4, &[0x21, 0x43, 0x0f, 0x87], &[0.5, 2.0], &[-1.0, 0.25]).unwrap()
    }

    #[test]
    fn four_bit_rows_unpack_low_nibble_first() {
        let mut out = [0.0f32; 8];
        table4().lookup(&[0, 1], &mut out).unwrap();
        assert_eq!(out, [-0.5, 0.0, 0.5, 1.0, 30.25, 0.25, 14.25, 16.25]);
    }

    #[test]
    fn values_read_back_as_built() {
        let mut values = [0u8; 8];
        table4().values_into(&mut values);
        assert_eq!(values, [1, 2, 3, 4, 15, 0, 7, 8]);
        assert_eq!(table4().nbytes(), 4 + 2 * 4 + 2 * 4);
        let table8 = EmbeddingTable::new(8, 2, 2, &[1, 255, 0, 7], &[1.0, 1.0], &[0.0, 0.0]).unwrap();
        let mut values = [0u8; 4];
        table8.values_into(&mut values);
        assert_eq!(values, [1, 255, 0, 7]);
    }

    #[test]
    fn bags_sum_weighted_rows_and_leave_empty_bags_zero() {
        let mut out = [f32::NAN; 12];
        table4().bags(&[0, 1, 1], &[0, 2, 2, 3], Some(&[1.0, 2.0, -1.0]), None, &mut out).unwrap();
        // row 0 gives [-0.5, 0, 0.5, 1]; then s = 4, b = 0.5: fma(4, q, acc + 0.5)
        assert_eq!(&out[..4], &[60.0, 0.5, 29.0, 33.5]);
        assert_eq!(&out[4..8], &[0.0; 4]);
        assert_eq!(&out[8..], &[-30.25, -0.25, -14.25, -16.25]);
    }

    #[test]
    fn skip_leaves_out_the_padding_row() {
        let mut out = [0.0f32; 4];
        table4().bags(&[1, 0, 1], &[0, 3], None, Some(1), &mut out).unwrap();
        assert_eq!(out, [-0.5, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let t = table4();
        let mut out = [0.0f32; 4];
        assert!(t.lookup(&[2], &mut out).is_err());
        assert!(t.lookup(&[-1], &mut out).is_err());
        assert!(t.bags(&[0], &[1, 1], None, None, &mut out).is_err());
        assert!(t.bags(&[0], &[0, 2], None, None, &mut out).is_err());
        assert!(t.bags(&[0, 0], &[0, 2, 1], None, None, &mut [0.0; 8]).is_err());
        assert!(t.bags(&[0], &[0, 1], Some(&[]), None, &mut out).is_err());
        assert!(t.bags(&[0], &[], None, None, &mut out).is_err());
        assert!(EmbeddingTable::new(4, 1, 3, &[0, 0], &[1.0], &[0.0]).is_err());
        assert!(EmbeddingTable::new(8, 1, 3, &[0, 0], &[1.0], &[0.0]).is_err());
    }
}
