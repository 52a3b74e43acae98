//! The Python class owning a packed recurrent stack (LSTM, GRU, RNN, and the cells as their
//! one-layer one-step case). The Python layer validates shapes with PyTorch's messages first;
//! this class checks again and never panics.

use std::sync::atomic::{AtomicBool, Ordering};

use numpy::ndarray::{Array2, Dimension};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::arrays::{c_order, check_finite_state};
use super::errors::catch_panic;
use super::linear::{PackedLinear, PackedLinearFp16};
use crate::alloc;
use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::rnn::{CellKind, CellWeights, Projection, Rnn, RnnShape, SequenceInput};

/// A stack of recurrent layers with packed weights.
///
/// `mode` is "LSTM", "GRU", "RNN_TANH" or "RNN_RELU"; `cells` holds, for each layer and direction
/// (`layer * directions + direction`), `(W_ih, W_hh, W_hr or None)` as `PackedLinear` (int8) or
/// `PackedLinearFp16` objects with their biases fused in; `W_hr` is the bias-free LSTM
/// projection, present exactly when `proj_size > 0`. `reduce_range` (settable) chooses the levels
/// every int8 projection quantizes its input to: 0..127 when true (PyTorch's default), 0..255 when
/// false; float16 weights quantize nothing.
#[pyclass(module = "ferroq._core", frozen)]
pub struct PackedRNN {
    inner: Rnn,
    reduce_range: AtomicBool,
}

type CellArgs<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Option<Bound<'py, PyAny>>);
type Outputs<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray3<f32>>, Option<Bound<'py, PyArray3<f32>>>);
type CellOutputs<'py> = (Bound<'py, PyArray2<f32>>, Option<Bound<'py, PyArray2<f32>>>);

#[pymethods]
impl PackedRNN {
    #[new]
    #[pyo3(signature = (mode, input_size, hidden_size, proj_size, num_layers, bidirectional, cells, *, reduce_range=true))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn new(
        mode: &str,
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        num_layers: usize,
        bidirectional: bool,
        cells: Vec<CellArgs<'_>>,
        reduce_range: bool,
    ) -> PyResult<Self> {
        let kind = CellKind::from_name(mode)
            .ok_or_else(|| Error::Value(format!("mode must be LSTM, GRU, RNN_TANH or RNN_RELU, got {mode:?}")))?;
        let shape = RnnShape { kind, input_size, hidden_size, proj_size, num_layers, bidirectional };
        let cells = cells
            .iter()
            .map(|(ih, hh, hr)| {
                Ok(CellWeights { ih: projection(ih)?, hh: projection(hh)?, hr: hr.as_ref().map(projection).transpose()? })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PackedRNN { inner: catch_panic(|| Rnn::new(shape, cells))?, reduce_range: AtomicBool::new(reduce_range) })
    }

    /// Whether the int8 projections quantize their inputs to levels 0..127 (true) or 0..255 (false).
    #[getter]
    fn get_reduce_range(&self) -> bool {
        self.reduce_range.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_reduce_range(&self, reduce_range: bool) {
        self.reduce_range.store(reduce_range, Ordering::Relaxed);
    }

    /// Runs a sequence: `x` is C-contiguous float32 `(steps, batch, input_size)`, or
    /// `(batch, steps, input_size)` when `batch_first`; `h0`/`c0` are `(layers * directions,
    /// batch, features)` or None (zeros), without NaN or infinity; `lengths` (int64, one per
    /// batch element, each between 0 and `steps`) gives packed-sequence semantics. Returns
    /// `(y, h_n, c_n or None)`. Every array must be C-contiguous and aligned (ValueError
    /// otherwise). The inputs are copied before the GIL is released for the whole computation.
    #[pyo3(signature = (x, h0=None, c0=None, lengths=None, batch_first=false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray3<'py, f32>,
        h0: Option<PyReadonlyArray3<'py, f32>>,
        c0: Option<PyReadonlyArray3<'py, f32>>,
        lengths: Option<PyReadonlyArray1<'py, i64>>,
        batch_first: bool,
    ) -> PyResult<Outputs<'py>> {
        let dims = x.shape();
        let (steps, batch, features) = if batch_first { (dims[1], dims[0], dims[2]) } else { (dims[0], dims[1], dims[2]) };
        let x_owned = alloc::copy_of(c_order(&x, "input")?)?;
        let h0_owned = h0.as_ref().map(|a| finite_state(a, "h0")).transpose()?;
        let c0_owned = c0.as_ref().map(|a| finite_state(a, "c0")).transpose()?;
        let lengths_owned = lengths.as_ref().map(|l| to_lengths(l, steps)).transpose()?;
        let shape = *self.inner.shape();
        if features != shape.input_size {
            return Err(Error::Shape(format!(
                "input.size(-1) must be equal to input_size. Expected {}, got {features}",
                shape.input_size
            ))
            .into());
        }
        let input = SequenceInput {
            x: &x_owned,
            steps,
            batch,
            batch_first,
            h0: h0_owned.as_deref(),
            c0: c0_owned.as_deref(),
            lengths: lengths_owned.as_deref(),
        };
        let reduce_range = self.get_reduce_range();
        let out = py.detach(|| catch_panic(|| self.inner.forward(kernels(), &input, reduce_range)))?;
        let states = shape.num_layers * shape.directions();
        let y_dims = if batch_first { [batch, steps, 0] } else { [steps, batch, 0] };
        let y = to_array3(py, out.y, [y_dims[0], y_dims[1], shape.directions() * shape.output_size()])?;
        let h_n = to_array3(py, out.h_n, [states, batch, shape.output_size()])?;
        let c_n = out.c_n.map(|c| to_array3(py, c, [states, batch, shape.hidden_size])).transpose()?;
        Ok((y, h_n, c_n))
    }

    /// One step of a one-layer, one-direction stack (the cells): `x` is float32
    /// `(batch, input_size)`, `h` and (LSTM) `c` are `(batch, hidden_size)` or None (zeros),
    /// without NaN or infinity. Every array must be C-contiguous and aligned (ValueError
    /// otherwise). Returns the new `(h, c or None)` as new arrays; the inputs are copied before
    /// the GIL is released.
    #[pyo3(signature = (x, h=None, c=None))]
    fn cell<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
        h: Option<PyReadonlyArray2<'py, f32>>,
        c: Option<PyReadonlyArray2<'py, f32>>,
    ) -> PyResult<CellOutputs<'py>> {
        let shape = *self.inner.shape();
        let [batch, features] = [x.shape()[0], x.shape()[1]];
        if features != shape.input_size {
            return Err(Error::Shape(format!(
                "input has inconsistent input_size: got {features}, expected {}",
                shape.input_size
            ))
            .into());
        }
        let has_c = shape.kind.has_cell_state();
        if c.is_some() != (has_c && h.is_some()) {
            return Err(Error::Value(if has_c { "h and c must be given together" } else { "c is only used by an LSTM" }.into()).into());
        }
        let dims = [batch, shape.hidden_size];
        let x_owned = alloc::copy_of(c_order(&x, "input")?)?;
        let mut h_state = state(h.as_ref(), dims, "h")?;
        let mut c_state = if has_c { state(c.as_ref(), dims, "c")? } else { Vec::new() };
        let reduce_range = self.get_reduce_range();
        py.detach(|| catch_panic(|| self.inner.step(kernels(), &x_owned, batch, &mut h_state, &mut c_state, reduce_range)))?;
        let h_out = to_array2(py, h_state, dims)?;
        let c_out = if has_c { Some(to_array2(py, c_state, dims)?) } else { None };
        Ok((h_out, c_out))
    }
}

/// The values of `state`, or zeros, after checking its shape, layout and values.
fn state(state: Option<&PyReadonlyArray2<'_, f32>>, dims: [usize; 2], what: &str) -> Result<Vec<f32>> {
    match state {
        None => alloc::vec_of(alloc::elements(dims[0], dims[1], what)?, 0.0),
        Some(s) if s.shape() == dims => finite_state(s, what),
        Some(s) => Err(Error::Shape(format!("{what} has shape {:?}, expected {dims:?}", s.shape()))),
    }
}

/// A copy of a state the caller gives, refused when it holds NaN or infinity.
fn finite_state<D: Dimension>(state: &PyReadonlyArray<'_, f32, D>, what: &str) -> Result<Vec<f32>> {
    let values = c_order(state, what)?;
    check_finite_state(values, what)?;
    alloc::copy_of(values)
}

/// A `dims` array owning `data` (no copy).
fn to_array2(py: Python<'_>, data: Vec<f32>, dims: [usize; 2]) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let array = Array2::from_shape_vec(dims, data).map_err(|e| Error::Shape(e.to_string()))?;
    Ok(PyArray2::from_owned_array(py, array))
}

/// The projection inside a `PackedLinear` or `PackedLinearFp16`.
fn projection(obj: &Bound<'_, PyAny>) -> PyResult<Projection> {
    if let Ok(p) = obj.cast::<PackedLinear>() {
        return Ok(Projection::Int8(p.get().inner.clone()));
    }
    if let Ok(p) = obj.cast::<PackedLinearFp16>() {
        return Ok(Projection::Fp16(p.get().inner.clone()));
    }
    Err(PyTypeError::new_err(format!(
        "recurrent weights must be PackedLinear or PackedLinearFp16 objects, got {}",
        obj.get_type().name()?
    )))
}

fn to_lengths(lengths: &PyReadonlyArray1<'_, i64>, steps: usize) -> Result<Vec<usize>> {
    let values = c_order(lengths, "lengths")?;
    values
        .iter()
        .map(|&n| {
            usize::try_from(n)
                .ok()
                .filter(|&n| n <= steps)
                .ok_or_else(|| Error::Value(format!("lengths must be between 0 and the sequence length {steps}, got {n}")))
        })
        .collect()
}

fn to_array3<'py>(py: Python<'py>, data: Vec<f32>, dims: [usize; 3]) -> PyResult<Bound<'py, PyArray3<f32>>> {
    PyArray1::from_vec(py, data).reshape(dims)
}
