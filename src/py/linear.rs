//! Python classes owning packed Linear weights. Validation of user input happens in the Python
//! layer first; these classes check again and never panic.

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::arrays::{check_in_features, matrix, vector};
use crate::dispatch::kernels;
use crate::linear::{with_input_buffer, DynamicLinear, Fp16Linear};

/// Int8 weights packed for the dynamic-quantization GEMM, with their qparams and float bias.
///
/// `weight` is `(out_features, in_features)` int8; `scales` (float32) and `zero_points` (int32)
/// have one entry (per tensor) or `out_features` entries (per channel); `bias` is float32 or None.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedLinear {
    pub(super) inner: DynamicLinear,
}

#[pymethods]
impl PackedLinear {
    #[new]
    #[pyo3(signature = (weight, scales, zero_points, bias=None))]
    fn new(
        weight: PyReadonlyArray2<'_, i8>,
        scales: PyReadonlyArray1<'_, f32>,
        zero_points: PyReadonlyArray1<'_, i32>,
        bias: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<Self> {
        let (w, n, k) = matrix(&weight, "weight")?;
        let bias = bias.as_ref().map(|b| vector(b, "bias").map(<[f32]>::to_vec)).transpose()?;
        let inner = DynamicLinear::new(w, n, k, vector(&scales, "scales")?, vector(&zero_points, "zero_points")?, bias)?;
        Ok(PackedLinear { inner })
    }

    #[getter]
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    #[getter]
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }

    /// `y = dequantize(quantize(x) @ W^T) + bias` for a C-contiguous float32 `(rows, in_features)`
    /// input: the activation range is taken over the whole input (levels 0..127 when `reduce_range`,
    /// else 0..255). NaN or infinity in `x` raises ValueError. The GIL is released for the GEMM.
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>, reduce_range: bool) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (data, rows, k) = matrix(&x, "input")?;
        check_in_features(k, self.inner.in_features())?;
        let kernels = kernels();
        let n = self.inner.out_features();
        with_input_buffer(|xq| {
            self.inner.quantize_input_into(kernels, data, rows, reduce_range, xq)?;
            let out = new_output(py, rows, n);
            {
                let mut out_rw = out.readwrite();
                let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
                py.detach(|| self.inner.forward_quantized(kernels, xq, out_slice))?;
            }
            Ok(out)
        })
    }
}

/// A new C-contiguous `(rows, n)` float32 array whose every element the caller overwrites.
fn new_output(py: Python<'_>, rows: usize, n: usize) -> Bound<'_, PyArray2<f32>> {
    // SAFETY: the array is uninitialized only until the layer writes all `rows * n` outputs; on an
    // error it is dropped without ever reaching Python code, and f32 has no invalid bit patterns.
    unsafe { PyArray2::<f32>::new(py, [rows, n], false) }
}

/// float16 weights (IEEE binary16 bits, `(out_features, in_features)` uint16) with a float32 bias:
/// the `dtype=float16` dynamic Linear. Activations stay float32.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedLinearFp16 {
    pub(super) inner: Fp16Linear,
}

#[pymethods]
impl PackedLinearFp16 {
    #[new]
    #[pyo3(signature = (weight_bits, bias=None))]
    fn new(weight_bits: PyReadonlyArray2<'_, u16>, bias: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Self> {
        let (w, n, k) = matrix(&weight_bits, "weight")?;
        let bias = bias.as_ref().map(|b| vector(b, "bias").map(<[f32]>::to_vec)).transpose()?;
        Ok(PackedLinearFp16 { inner: Fp16Linear::new(w, n, k, bias)? })
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
        let x_owned = data.to_vec();
        let out = new_output(py, rows, self.inner.out_features());
        {
            let mut out_rw = out.readwrite();
            let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
            py.detach(|| self.inner.forward(kernels(), &x_owned, rows, out_slice))?;
        }
        Ok(out)
    }
}
