//! The Python class owning the packed weights of a static quantized Linear. Validation of user
//! input happens in the Python layer first; this class checks again and never panics.

use numpy::{PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::arrays::{input_rows, matrix, qparams_and_bias};
use super::errors::catch_panic;
use super::gil;
use super::model_file::{read_packed, ModelFile};
use super::outputs::NewArray;
use super::shared_methods::packed_pymethods;
use crate::dispatch::kernels;
use crate::linear::in_features_i32;
use crate::pack_stream::pack_from;
use crate::quant::QParams;
use crate::static_linear::{with_scratch, StaticLinear};

/// Int8 weights packed for the static quantized Linear (quint8 in, quint8 out), with their
/// qparams and float bias.
///
/// `weight` is `(out_features, in_features)` int8; `scales` (float32) and `zero_points` (int32)
/// have `out_features` entries when `per_channel`, else one; `bias` is float32 or None.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedStaticLinear {
    inner: StaticLinear,
}

packed_pymethods! {
    impl PackedStaticLinear with [sizes, int8_weight] {
        #[new]
        #[pyo3(signature = (weight, scales, zero_points, per_channel, bias=None))]
        fn new(
            weight: PyReadonlyArray2<'_, i8>,
            scales: PyReadonlyArray1<'_, f32>,
            zero_points: PyReadonlyArray1<'_, i32>,
            per_channel: bool,
            bias: Option<PyReadonlyArray1<'_, f32>>,
        ) -> PyResult<Self> {
            let (w, n, k) = matrix(&weight, "weight")?;
            let (scales, zero_points, bias) = qparams_and_bias(&scales, &zero_points, bias.as_ref())?;
            let inner = catch_panic(|| StaticLinear::new(w, n, k, scales, zero_points, per_channel, bias))?;
            Ok(PackedStaticLinear { inner })
        }

        /// The same layer from a weight stored in `file`: the row-major `(out_features,
        /// in_features)` int8 bytes from `start`, read a few rows at a time straight into the
        /// packed layout (only the packed weight and a small buffer are ever held). A file that
        /// ends first raises ValueError. The GIL is released while the weight is read.
        #[staticmethod]
        #[pyo3(signature = (file, start, out_features, in_features, scales, zero_points, per_channel, bias=None))]
        #[allow(clippy::too_many_arguments)] // the Python signature
        fn from_file(
            py: Python<'_>,
            file: &Bound<'_, ModelFile>,
            start: u64,
            out_features: usize,
            in_features: usize,
            scales: PyReadonlyArray1<'_, f32>,
            zero_points: PyReadonlyArray1<'_, i32>,
            per_channel: bool,
            bias: Option<PyReadonlyArray1<'_, f32>>,
        ) -> PyResult<Self> {
            let (scales, zero_points, bias) = qparams_and_bias(&scales, &zero_points, bias.as_ref())?;
            in_features_i32(in_features)?;
            let weights = read_packed(py, file.get(), start, out_features, in_features, |read| {
                pack_from(out_features, in_features, &mut Vec::new(), |rows, buffer| read(rows.start * in_features, buffer))
            })?;
            let inner = catch_panic(|| StaticLinear::with_weights(weights, scales, zero_points, per_channel, bias))?;
            Ok(PackedStaticLinear { inner })
        }

        /// The quint8 output `(rows, out_features)` for the C-contiguous uint8 input `x`
        /// `(rows, in_features)` with qparams `(x_scale, x_zero_point)`; the output has the qparams
        /// `(y_scale, y_zero_point)`. With `relu` every output is at least `y_zero_point`. Scales
        /// are used as float32. The GIL is released for the GEMM when it is large (the copy of `x`
        /// it reads is taken with the GIL held).
        #[pyo3(signature = (x, x_scale, x_zero_point, y_scale, y_zero_point, relu=false))]
        #[allow(clippy::too_many_arguments)]
        fn forward<'py>(
            &self,
            py: Python<'py>,
            x: PyReadonlyArray2<'py, u8>,
            x_scale: f64,
            x_zero_point: i32,
            y_scale: f64,
            y_zero_point: i32,
            relu: bool,
        ) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
            let (data, rows) = input_rows(&x, self.inner.in_features())?;
            let input = QParams { scale: x_scale, zero_point: x_zero_point };
            let output = QParams { scale: y_scale, zero_point: y_zero_point };
            let (k, n) = (self.inner.in_features(), self.inner.out_features());
            let mut out = NewArray::zeros(py, &[rows, n])?;
            let out_rows = out.as_mut_slice();
            let releases = gil::releases(rows.saturating_mul(k).saturating_mul(n));
            with_scratch(|scratch| {
                let call = catch_panic(|| self.inner.prepare(data, rows, input, output, relu, scratch))?;
                gil::run(py, releases, || call.run(kernels(), out_rows))
            })?;
            Ok(out.into_array())
        }
    }
}
