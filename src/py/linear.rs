//! Python classes owning packed Linear weights. Validation of user input happens in the Python
//! layer first; these classes check again and never panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::arrays::{check_in_features, matrix, vector};
use super::errors::catch_panic;
use super::outputs::{uninit_matrix, written_matrix};
use crate::alloc;
use crate::dispatch::kernels;
use crate::column_blocks::ColumnBlocks;
use crate::error::Error;
use crate::linear::{in_features_i32, with_input_buffer, DynamicLinear, Fp16Linear};
use crate::pack::PackedWeights;

/// Int8 weights packed for the dynamic-quantization GEMM, with their qparams and float bias.
///
/// `weight` is `(out_features, in_features)` int8; `scales` (float32) and `zero_points` (int32)
/// have one entry (per tensor) or `out_features` entries (per channel); `bias` is float32 or None.
/// `reduce_range` (settable) chooses the input levels every call quantizes to: 0..127 when true
/// (PyTorch's default), 0..255 when false.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedLinear {
    pub(super) inner: Arc<DynamicLinear>,
    reduce_range: AtomicBool,
}

impl PackedLinear {
    fn with(inner: DynamicLinear, reduce_range: bool) -> Self {
        PackedLinear { inner: inner.into(), reduce_range: AtomicBool::new(reduce_range) }
    }
}

#[pymethods]
impl PackedLinear {
    #[new]
    #[pyo3(signature = (weight, scales, zero_points, bias=None, *, reduce_range=true))]
    fn new(
        weight: PyReadonlyArray2<'_, i8>,
        scales: PyReadonlyArray1<'_, f32>,
        zero_points: PyReadonlyArray1<'_, i32>,
        bias: Option<PyReadonlyArray1<'_, f32>>,
        reduce_range: bool,
    ) -> PyResult<Self> {
        let (w, n, k) = matrix(&weight, "weight")?;
        let bias = bias.as_ref().map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()?;
        let (scales, zero_points) = (vector(&scales, "scales")?, vector(&zero_points, "zero_points")?);
        let inner = catch_panic(|| DynamicLinear::new(w, n, k, scales, zero_points, bias))?;
        Ok(PackedLinear::with(inner, reduce_range))
    }

    /// The same layer from a weight handed over in blocks of rows: `rows(start, stop)` returns
    /// rows `start..stop` of the `(out_features, in_features)` int8 weight, called once per block
    /// in order, and no block is read after the next call (so the caller may free each one then,
    /// or once this returns).
    #[staticmethod]
    #[pyo3(signature = (out_features, in_features, rows, scales, zero_points, bias=None, *, reduce_range=true))]
    fn from_rows(
        out_features: usize,
        in_features: usize,
        rows: Bound<'_, PyAny>,
        scales: PyReadonlyArray1<'_, f32>,
        zero_points: PyReadonlyArray1<'_, i32>,
        bias: Option<PyReadonlyArray1<'_, f32>>,
        reduce_range: bool,
    ) -> PyResult<Self> {
        let bias = bias.as_ref().map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()?;
        let (scales, zero_points) = (vector(&scales, "scales")?, vector(&zero_points, "zero_points")?);
        in_features_i32(in_features)?;
        let mut failure: Option<PyErr> = None;
        let weights = catch_panic(|| {
            ColumnBlocks::from_blocks(out_features, in_features, |columns| {
                let block = || -> PyResult<PackedWeights> {
                    let array = rows.call1((columns.start, columns.end))?;
                    let array = array.extract::<PyReadonlyArray2<'_, i8>>()?;
                    let (w, n, k) = matrix(&array, "weight")?;
                    Ok(PackedWeights::pack(w, n, k)?)
                };
                block().map_err(|e| {
                    failure = Some(e);
                    Error::Value("the weight's rows could not be read".into())
                })
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let weights = weights?;
        let inner = catch_panic(|| DynamicLinear::with_weights(weights, scales, zero_points, bias))?;
        Ok(PackedLinear::with(inner, reduce_range))
    }

    /// All-zero `(out_features, in_features)` weights with scale 1 and zero point 0, costing no
    /// memory until replaced (what a module holds before its weights are set).
    #[staticmethod]
    #[pyo3(signature = (out_features, in_features, bias=None, *, reduce_range=true))]
    fn zeros(out_features: usize, in_features: usize, bias: Option<PyReadonlyArray1<'_, f32>>, reduce_range: bool) -> PyResult<Self> {
        let bias = bias.as_ref().map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()?;
        let inner = catch_panic(|| DynamicLinear::zeros(out_features, in_features, bias))?;
        Ok(PackedLinear::with(inner, reduce_range))
    }

    /// The int8 weight `(out_features, in_features)` as a new array, read back from the packed
    /// layout (the packed form is the only copy kept).
    fn weight<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i8>>> {
        written_matrix(py, self.inner.out_features(), self.inner.in_features(), |out| self.inner.weight_into(out))
    }

    /// Whether each call quantizes its input to levels 0..127 (true) or 0..255 (false).
    #[getter]
    fn get_reduce_range(&self) -> bool {
        self.reduce_range.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_reduce_range(&self, reduce_range: bool) {
        self.reduce_range.store(reduce_range, Ordering::Relaxed);
    }

    #[getter]
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    #[getter]
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }

    /// Bytes the layer holds: the packed int8 weights (`in_features` padded to a multiple of 4;
    /// the last `out_features % 16` columns stored only as wide as they are) and the per-column
    /// data (column sums and offsets, scales, zero points, bias: 4 bytes each).
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    /// `y = dequantize(quantize(x) @ W^T) + bias` for a C-contiguous float32 `(rows, in_features)`
    /// input: the activation range is taken over the whole input (levels 0..127 when `reduce_range`,
    /// else 0..255). NaN or infinity in `x` raises ValueError. The GIL is released for the GEMM.
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let reduce_range = self.get_reduce_range();
        let (data, rows, k) = matrix(&x, "input")?;
        check_in_features(k, self.inner.in_features())?;
        let kernels = kernels();
        let n = self.inner.out_features();
        with_input_buffer(|xq| {
            catch_panic(|| self.inner.quantize_input_into(kernels, data, rows, reduce_range, xq))?;
            let out = uninit_matrix::<f32>(py, rows, n)?;
            {
                let mut out_rw = out.readwrite();
                let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
                py.detach(|| catch_panic(|| self.inner.forward_quantized(kernels, xq, out_slice)))?;
            }
            Ok(out)
        })
    }
}

/// float16 weights (IEEE binary16 bits, `(out_features, in_features)` uint16) with a float32 bias:
/// the `dtype=float16` dynamic Linear. Activations stay float32. It also holds the owning
/// module's `reduce_range` setting (settable), which changes nothing here: nothing is quantized,
/// but the setting stays with the weights as it does in `PackedLinear`.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedLinearFp16 {
    pub(super) inner: Arc<Fp16Linear>,
    reduce_range: AtomicBool,
}

#[pymethods]
impl PackedLinearFp16 {
    #[new]
    #[pyo3(signature = (weight_bits, bias=None, *, reduce_range=true))]
    fn new(weight_bits: PyReadonlyArray2<'_, u16>, bias: Option<PyReadonlyArray1<'_, f32>>, reduce_range: bool) -> PyResult<Self> {
        let (w, n, k) = matrix(&weight_bits, "weight")?;
        let bias = bias.as_ref().map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()?;
        let inner = catch_panic(|| Fp16Linear::new(w, n, k, bias))?;
        Ok(PackedLinearFp16 { inner: inner.into(), reduce_range: AtomicBool::new(reduce_range) })
    }

    /// The float16 weight bits `(out_features, in_features)` uint16 as a new array, read back
    /// from the packed layout (the packed form is the only copy kept).
    fn weight_bits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u16>>> {
        written_matrix(py, self.inner.out_features(), self.inner.in_features(), |out| self.inner.weight_bits_into(out))
    }

    /// The owning module's `reduce_range` (no effect on float16 weights).
    #[getter]
    fn get_reduce_range(&self) -> bool {
        self.reduce_range.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_reduce_range(&self, reduce_range: bool) {
        self.reduce_range.store(reduce_range, Ordering::Relaxed);
    }

    #[getter]
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    #[getter]
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }

    /// `y = x @ W^T + bias` with float32 accumulation of the float16 weights, in FBGEMM's order
    /// (docs/float16.md).
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (data, rows, k) = matrix(&x, "input")?;
        check_in_features(k, self.inner.in_features())?;
        let x_owned = alloc::copy_of(data)?;
        // Every output is written by the layer (f32 has no invalid bit patterns).
        let out = uninit_matrix::<f32>(py, rows, self.inner.out_features())?;
        {
            let mut out_rw = out.readwrite();
            let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
            py.detach(|| catch_panic(|| self.inner.forward(kernels(), &x_owned, rows, out_slice)))?;
        }
        Ok(out)
    }
}
