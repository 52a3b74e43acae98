//! The Python class owning a packed quantized embedding table. The Python layer validates user
//! input first (and names the bad index); this class checks again and never panics.

use numpy::{PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::arrays::{matrix, vector};
use super::errors::catch_panic;
use super::outputs::{computed_matrix, written_matrix};
use super::shared_methods::packed_pymethods;
use crate::alloc;
use crate::embedding_bag::EmbeddingTable;

/// A row-wise quantized embedding table (8-bit, or 4-bit with two values per byte).
///
/// `data` is `(rows, dim)` uint8 for `bits=8`, or `(rows, dim / 2)` packed nibbles (low nibble
/// first) for `bits=4`; `scales` and `biases` are float32, one per row, with
/// `bias = -(zero_point * scale)` (rounded through float16 for 4-bit tables).
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedEmbeddingTable {
    inner: EmbeddingTable,
}

packed_pymethods! {
    impl PackedEmbeddingTable with [getters(
        /// The number of embeddings (rows).
        rows: usize,
        /// The length of an embedding.
        dim: usize,
        /// Bits per stored value: 8 or 4.
        bits: u32,
    )] {
        #[new]
        fn new(
            bits: u32,
            data: PyReadonlyArray2<'_, u8>,
            dim: usize,
            scales: PyReadonlyArray1<'_, f32>,
            biases: PyReadonlyArray1<'_, f32>,
        ) -> PyResult<Self> {
            let (bytes, rows, _) = matrix(&data, "data")?;
            let (scales, biases) = (vector(&scales, "scales")?, vector(&biases, "biases")?);
            let inner = catch_panic(|| EmbeddingTable::new(bits, rows, dim, bytes, scales, biases))?;
            Ok(PackedEmbeddingTable { inner })
        }

        /// The stored integers `(rows, dim)` uint8, one per value (4-bit rows unpacked), as a new
        /// array read back from the table (the table is the only copy kept).
        fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
            written_matrix(py, self.inner.rows(), self.inner.dim(), |out| self.inner.values_into(out))
        }

        /// Bytes the table holds: its values (half a byte each in 4-bit rows), and a float32 scale and
        /// bias per row.
        #[getter]
        fn nbytes(&self) -> usize {
            self.inner.nbytes()
        }

        /// The rows of `indices` (int64, 1-D), as a new float32 array `(len(indices), dim)`.
        fn lookup<'py>(&self, py: Python<'py>, indices: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyArray2<f32>>> {
            let idx = alloc::copy_of(vector(&indices, "indices")?)?;
            let out = zeros(py, idx.len(), self.inner.dim())?;
            computed_matrix(py, out, |out| self.inner.lookup(&idx, out))
        }

        /// The sum of each bag `indices[offsets[k]:offsets[k + 1]]` (int64; `offsets` has one entry
        /// more than there are bags), rows scaled by `per_sample_weights` (float32, one per index)
        /// when given, indices equal to `skip` left out. A new float32 array `(len(offsets) - 1, dim)`.
        #[pyo3(signature = (indices, offsets, per_sample_weights=None, skip=None))]
        fn bags<'py>(
            &self,
            py: Python<'py>,
            indices: PyReadonlyArray1<'py, i64>,
            offsets: PyReadonlyArray1<'py, i64>,
            per_sample_weights: Option<PyReadonlyArray1<'py, f32>>,
            skip: Option<i64>,
        ) -> PyResult<Bound<'py, PyArray2<f32>>> {
            let idx = alloc::copy_of(vector(&indices, "indices")?)?;
            let offs = alloc::copy_of(vector(&offsets, "offsets")?)?;
            let weights = per_sample_weights.as_ref().map(|w| alloc::copy_of(vector(w, "per_sample_weights")?)).transpose()?;
            let bags = offs.len().saturating_sub(1);
            let out = zeros(py, bags, self.inner.dim())?;
            computed_matrix(py, out, |out| self.inner.bags(&idx, &offs, weights.as_deref(), skip, out))
        }
    }
}

/// A new `(rows, cols)` float32 array of zeros; numpy's own error when it cannot allocate.
fn zeros(py: Python<'_>, rows: usize, cols: usize) -> PyResult<Bound<'_, PyArray2<f32>>> {
    written_matrix(py, rows, cols, |out| out.fill(0.0))
}
