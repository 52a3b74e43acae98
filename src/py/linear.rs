//! Python classes owning packed Linear weights. Validation of user input happens in the Python
//! layer first; these classes check again and never panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::ndarray::IxDyn;
use numpy::{PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::arrays::{c_order, check_in_features, matrix, ready, vector};
use super::errors::catch_panic;
use super::gil;
use super::model_file::{read_packed, ModelFile};
use super::outputs::{written_matrix, NewArray, MAX_DIMS};
use crate::alloc;
use crate::column_blocks::ColumnBlocks;
use crate::dispatch::kernels;
use crate::linear::{in_features_i32, with_input_buffer, DynamicLinear, Fp16Linear};
use crate::pack_stream::pack_from;

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

    /// The same layer from a weight stored in `file`: the row-major `(out_features,
    /// in_features)` int8 bytes from `start`, read a few rows at a time straight into the packed
    /// layout (only the packed weight and a small buffer are ever held). A file that ends first
    /// raises ValueError. The GIL is released while the weight is read.
    #[staticmethod]
    #[pyo3(signature = (file, start, out_features, in_features, scales, zero_points, bias=None, *, reduce_range=true))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn from_file(
        py: Python<'_>,
        file: &Bound<'_, ModelFile>,
        start: u64,
        out_features: usize,
        in_features: usize,
        scales: PyReadonlyArray1<'_, f32>,
        zero_points: PyReadonlyArray1<'_, i32>,
        bias: Option<PyReadonlyArray1<'_, f32>>,
        reduce_range: bool,
    ) -> PyResult<Self> {
        let bias = bias.as_ref().map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()?;
        let (scales, zero_points) = (vector(&scales, "scales")?, vector(&zero_points, "zero_points")?);
        in_features_i32(in_features)?;
        let weights = read_packed(py, file.get(), start, out_features, in_features, |read| {
            let mut buffer = Vec::new();
            ColumnBlocks::from_blocks(out_features, in_features, |columns| {
                pack_from(columns.len(), in_features, &mut buffer, |rows, rows_read| {
                    read((columns.start + rows.start) * in_features, rows_read)
                })
            })
        })?;
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
    /// else 0..255). NaN or infinity in `x` raises ValueError. The GIL is released for a large GEMM.
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (data, rows, k) = matrix(&x, "input")?;
        check_in_features(k, self.inner.in_features())?;
        let mut out = NewArray::zeros(py, &[rows, self.inner.out_features()])?;
        self.run(py, data, rows, out.as_mut_slice())?;
        Ok(out.into_array())
    }

    /// The module's forward when `x` needs no conversion (see [`ready`]) and has any rank >= 1
    /// with `in_features` in its last dimension: `y` of shape `x.shape[:-1] + (out_features,)`
    /// as [`forward`](Self::forward) computes it; None for any other `x` (the caller then
    /// normalises it, with its own messages, and calls `forward`).
    fn try_forward<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
        let Some((x, rows, dims)) = ready_rows(x, self.inner.in_features(), self.inner.out_features()) else {
            return Ok(None);
        };
        let mut out = NewArray::zeros(py, dims.as_slice())?;
        self.run(py, c_order(&x, "input")?, rows, out.as_mut_slice())?;
        Ok(Some(out.into_array()))
    }
}

impl PackedLinear {
    /// `out = forward(x)` for `rows` rows; the GIL is released for the GEMM when it is large (the
    /// quantized input, taken with the GIL held, is what the GEMM reads).
    fn run(&self, py: Python<'_>, x: &[f32], rows: usize, out: &mut [f32]) -> PyResult<()> {
        let reduce_range = self.get_reduce_range();
        let kernels = kernels();
        let releases = gil::releases(macs(rows, self.inner.in_features(), self.inner.out_features()));
        with_input_buffer(|xq| {
            catch_panic(|| self.inner.quantize_input_into(kernels, x, rows, reduce_range, xq))?;
            gil::run(py, releases, || self.inner.forward_quantized(kernels, xq, out))
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
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (data, rows, k) = matrix(&x, "input")?;
        check_in_features(k, self.inner.in_features())?;
        let mut out = NewArray::zeros(py, &[rows, self.inner.out_features()])?;
        self.run(py, data, rows, out.as_mut_slice())?;
        Ok(out.into_array())
    }

    /// As [`PackedLinear::try_forward`]: `forward` for an `x` that needs no conversion, else None.
    fn try_forward<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
        let Some((x, rows, dims)) = ready_rows(x, self.inner.in_features(), self.inner.out_features()) else {
            return Ok(None);
        };
        let mut out = NewArray::zeros(py, dims.as_slice())?;
        self.run(py, c_order(&x, "input")?, rows, out.as_mut_slice())?;
        Ok(Some(out.into_array()))
    }
}

impl PackedLinearFp16 {
    /// `out = forward(x)` for `rows` rows; the GIL is released (for a copy of `x`) when the product
    /// is large.
    fn run(&self, py: Python<'_>, x: &[f32], rows: usize, out: &mut [f32]) -> PyResult<()> {
        let releases = gil::releases(macs(rows, self.inner.in_features(), self.inner.out_features()));
        let x = gil::snapshot(x, releases)?;
        gil::run(py, releases, || self.inner.forward(kernels(), &x, rows, out))
    }
}

/// The dimensions of an output: the input's, with the last one replaced.
struct OutputDims {
    values: [usize; MAX_DIMS],
    len: usize,
}

impl OutputDims {
    fn as_slice(&self) -> &[usize] {
        &self.values[..self.len]
    }
}

/// `x` when it is ready for the core (see [`ready`]) with rank >= 1 and `in_features` in its last
/// dimension, with its number of rows and the output's dimensions (`out_features` last).
fn ready_rows<'py>(x: &Bound<'py, PyAny>, in_features: usize, out_features: usize) -> Option<(PyReadonlyArrayDyn<'py, f32>, usize, OutputDims)> {
    let x = ready::<IxDyn>(x)?;
    let shape = x.shape();
    let (&k, leading) = shape.split_last()?;
    if k != in_features || shape.len() > MAX_DIMS {
        return None;
    }
    let rows = leading.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let mut dims = OutputDims { values: [0; MAX_DIMS], len: shape.len() };
    dims.values[..leading.len()].copy_from_slice(leading);
    dims.values[leading.len()] = out_features;
    Some((x, rows, dims))
}

/// The multiply-accumulates of a `rows x k` by `k x n` product (saturating: it only decides
/// whether to release the GIL).
fn macs(rows: usize, k: usize, n: usize) -> usize {
    rows.saturating_mul(k).saturating_mul(n)
}
