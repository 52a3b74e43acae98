//! Python classes owning packed Linear weights. Validation of user input happens in the Python
//! layer first; these classes check again and never panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::ndarray::IxDyn;
use numpy::{PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::arrays::{input_rows, matrix, owned_bias, qparams_and_bias, ready, ReadyArray};
use super::errors::catch_panic;
use super::gil;
use super::model_file::{read_packed, ModelFile};
use super::outputs::{written_matrix, NewArray, MAX_DIMS};
use super::shared_methods::packed_pymethods;
use crate::column_blocks::{gate_block_width, ColumnBlocks};
use crate::dispatch::kernels;
use crate::linear::{in_features_i32, with_input_buffer, DynamicLinear, Fp16Linear};
use crate::pack_stream::pack_from;

/// Int8 weights packed for the dynamic-quantization GEMM, with their qparams and float bias:
/// `forward` computes `y = dequantize(quantize(x) @ W^T) + bias`, the activation range taken over
/// the whole input (levels 0..127 when `reduce_range`, else 0..255); NaN or infinity in `x`
/// raises ValueError.
///
/// `weight` is `(out_features, in_features)` int8; `scales` (float32) and `zero_points` (int32)
/// have one entry (per tensor) or `out_features` entries (per channel); `bias` is float32 or None.
/// `reduce_range` (settable) chooses the input levels every call quantizes to: 0..127 when true
/// (PyTorch's default), 0..255 when false. `gates` (a recurrent layer's `W_ih` or `W_hh`: its
/// rows are that many equal gates) packs the weights so that a recurrent step can be split
/// between threads by hidden units without a second copy; it changes no value.
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

packed_pymethods! {
    impl PackedLinear with [sizes, int8_weight, reduce_range, float_rows] {
        #[new]
        #[pyo3(signature = (weight, scales, zero_points, bias=None, *, reduce_range=true, gates=1))]
        fn new(
            weight: PyReadonlyArray2<'_, i8>,
            scales: PyReadonlyArray1<'_, f32>,
            zero_points: PyReadonlyArray1<'_, i32>,
            bias: Option<PyReadonlyArray1<'_, f32>>,
            reduce_range: bool,
            gates: usize,
        ) -> PyResult<Self> {
            let (w, n, k) = matrix(&weight, "weight")?;
            let (scales, zero_points, bias) = qparams_and_bias(&scales, &zero_points, bias.as_ref())?;
            let width = gate_block_width(n, gates);
            let inner = catch_panic(|| DynamicLinear::new_in_blocks(w, n, k, width, scales, zero_points, bias))?;
            Ok(PackedLinear::with(inner, reduce_range))
        }

        /// The same layer from a weight stored in `file`: the row-major `(out_features,
        /// in_features)` int8 bytes from `start`, read a few rows at a time straight into the packed
        /// layout (only the packed weight and a small buffer are ever held). A file that ends first
        /// raises ValueError. The GIL is released while the weight is read.
        #[staticmethod]
        #[pyo3(signature = (file, start, out_features, in_features, scales, zero_points, bias=None, *, reduce_range=true, gates=1))]
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
            gates: usize,
        ) -> PyResult<Self> {
            let (scales, zero_points, bias) = qparams_and_bias(&scales, &zero_points, bias.as_ref())?;
            in_features_i32(in_features)?;
            let width = gate_block_width(out_features, gates);
            let weights = read_packed(py, file.get(), start, out_features, in_features, |read| {
                let mut buffer = Vec::new();
                ColumnBlocks::from_blocks(out_features, in_features, width, |columns| {
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
        #[pyo3(signature = (out_features, in_features, bias=None, *, reduce_range=true, gates=1))]
        fn zeros(
            out_features: usize,
            in_features: usize,
            bias: Option<PyReadonlyArray1<'_, f32>>,
            reduce_range: bool,
            gates: usize,
        ) -> PyResult<Self> {
            let bias = owned_bias(bias.as_ref())?;
            let width = gate_block_width(out_features, gates);
            let inner = catch_panic(|| DynamicLinear::zeros(out_features, in_features, width, bias))?;
            Ok(PackedLinear::with(inner, reduce_range))
        }

        /// Bytes the layer holds: the packed int8 weights (`in_features` padded to a multiple of 4;
        /// the last `out_features % 16` columns stored only as wide as they are) and the per-column
        /// data (column sums and offsets, scales, zero points, bias: 4 bytes each).
        #[getter]
        fn nbytes(&self) -> usize {
            self.inner.nbytes()
        }
    }
}

impl PackedLinear {
    /// `out = forward(x)` for `rows` rows; the GIL is released for the GEMM when it is large (the
    /// quantized input, taken with the GIL held, is what the GEMM reads).
    fn run(&self, py: Python<'_>, x: &[f32], rows: usize, out: &mut [f32]) -> PyResult<()> {
        let reduce_range = self.reduce_range.load(Ordering::Relaxed);
        let kernels = kernels();
        let releases = gil::releases(macs(rows, self.inner.in_features(), self.inner.out_features()));
        with_input_buffer(|xq| {
            catch_panic(|| self.inner.quantize_input_into(kernels, x, rows, reduce_range, xq))?;
            gil::run(py, releases, || self.inner.forward_quantized(kernels, xq, out))
        })
    }
}

/// float16 weights (IEEE binary16 bits, `(out_features, in_features)` uint16) with a float32 bias:
/// the `dtype=float16` dynamic Linear. `forward` computes `y = x @ W^T + bias` with float32
/// accumulation of the float16 weights, in FBGEMM's order (docs/float16.md); activations stay
/// float32. It also holds the owning module's `reduce_range` setting (settable), which changes
/// nothing here: nothing is quantized, but the setting stays with the weights as it does in
/// `PackedLinear`.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedLinearFp16 {
    pub(super) inner: Arc<Fp16Linear>,
    reduce_range: AtomicBool,
}

packed_pymethods! {
    impl PackedLinearFp16 with [sizes, reduce_range, float_rows] {
        #[new]
        #[pyo3(signature = (weight_bits, bias=None, *, reduce_range=true))]
        fn new(weight_bits: PyReadonlyArray2<'_, u16>, bias: Option<PyReadonlyArray1<'_, f32>>, reduce_range: bool) -> PyResult<Self> {
            let (w, n, k) = matrix(&weight_bits, "weight")?;
            let bias = owned_bias(bias.as_ref())?;
            let inner = catch_panic(|| Fp16Linear::new(w, n, k, bias))?;
            Ok(PackedLinearFp16 { inner: inner.into(), reduce_range: AtomicBool::new(reduce_range) })
        }

        /// The float16 weight bits `(out_features, in_features)` uint16 as a new array, read back
        /// from the packed layout (the packed form is the only copy kept).
        fn weight_bits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u16>>> {
            written_matrix(py, self.inner.out_features(), self.inner.in_features(), |out| self.inner.weight_bits_into(out))
        }
    }
}

impl PackedLinearFp16 {
    /// `out = forward(x)` for `rows` rows; the GIL is released (for a copy of `x`) when the
    /// product is large.
    fn run(&self, py: Python<'_>, x: &[f32], rows: usize, out: &mut [f32]) -> PyResult<()> {
        let releases = gil::releases(macs(rows, self.inner.in_features(), self.inner.out_features()));
        let x = gil::snapshot(x, releases)?;
        gil::run(py, releases, || self.inner.forward(kernels(), &x, rows, out))
    }
}

/// The Python `forward` of both packed Linear classes (see [`packed_pymethods!`]): a C-contiguous
/// `(rows, in_features)` input, `run(x, rows, out)` computing the `(rows, out_features)` output.
pub(super) fn forward_rows<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    [in_features, out_features]: [usize; 2],
    run: impl FnOnce(&[f32], usize, &mut [f32]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (data, rows) = input_rows(&x, in_features)?;
    let mut out = NewArray::zeros(py, &[rows, out_features])?;
    run(data, rows, out.as_mut_slice())?;
    Ok(out.into_array())
}

/// The Python `try_forward` of both packed Linear classes: as [`forward_rows`] for an `x` of any
/// rank that needs no conversion (see [`ready_rows`]), None for any other `x`.
pub(super) fn try_forward_rows<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    [in_features, out_features]: [usize; 2],
    run: impl FnOnce(&[f32], usize, &mut [f32]) -> PyResult<()>,
) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
    let Some((x, rows, dims)) = ready_rows(x, in_features, out_features) else {
        return Ok(None);
    };
    let mut out = NewArray::zeros(py, dims.as_slice())?;
    run(x.values("input")?, rows, out.as_mut_slice())?;
    Ok(Some(out.into_array()))
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
fn ready_rows<'py>(x: &Bound<'py, PyAny>, in_features: usize, out_features: usize) -> Option<(ReadyArray<'py, IxDyn>, usize, OutputDims)> {
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
