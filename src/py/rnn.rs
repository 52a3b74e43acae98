//! The Python class owning a packed recurrent stack (LSTM, GRU, RNN, and the cells as their
//! one-layer one-step case). The Python layer validates shapes with PyTorch's messages first;
//! this class checks again and never panics.

use std::sync::atomic::{AtomicBool, Ordering};

use numpy::ndarray::{Dimension, Ix3, IxDyn};
use numpy::{PyArrayDyn, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::arrays::{c_order, check_features, check_finite_state, ready, ReadyArray};
use super::errors::catch_panic;
use super::gil;
use super::linear::{PackedLinear, PackedLinearFp16};
use super::outputs::NewArray;
use super::shared_methods::packed_pymethods;
use crate::dispatch::kernels;
use crate::error::{Error, Result};
use crate::rnn::{CellKind, CellWeights, Projection, Rnn, RnnShape, SequenceInput, SequenceOutputMut};

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
    /// Multiply-accumulates of one time step of one batch row through every layer and direction.
    macs_per_row_step: usize,
}

type CellArgs<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Option<Bound<'py, PyAny>>);
type Outputs<'py> = (Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyArrayDyn<f32>>, Option<Bound<'py, PyArrayDyn<f32>>>);
type CellOutputs<'py> = (Bound<'py, PyArrayDyn<f32>>, Option<Bound<'py, PyArrayDyn<f32>>>);

packed_pymethods! {
    impl PackedRNN with [reduce_range] {
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
            let inner = catch_panic(|| Rnn::new(shape, cells))?;
            let macs_per_row_step = inner
                .cells()
                .iter()
                .flat_map(|cell| [Some(&cell.ih), Some(&cell.hh), cell.hr.as_ref()])
                .flatten()
                .fold(0usize, |sum, p| sum.saturating_add(p.in_features().saturating_mul(p.out_features())));
            Ok(PackedRNN { inner, reduce_range: AtomicBool::new(reduce_range), macs_per_row_step })
        }

        /// Runs a sequence: `x` is C-contiguous float32 `(steps, batch, input_size)`, or
        /// `(batch, steps, input_size)` when `batch_first`; `h0`/`c0` are `(layers * directions,
        /// batch, features)` or None (zeros), without NaN or infinity; `lengths` (int64, one per
        /// batch element, each between 0 and `steps`) gives packed-sequence semantics. Returns
        /// `(y, h_n, c_n or None)`. Every array must be C-contiguous and aligned (ValueError
        /// otherwise). A large sequence runs with the GIL released once the inputs are read (the first
        /// layer's input quantized, the states copied).
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
            let x_values = c_order(&x, "input")?;
            let h0 = h0.as_ref().map(|a| finite_state(a, "h0")).transpose()?;
            let c0 = c0.as_ref().map(|a| finite_state(a, "c0")).transpose()?;
            let lengths = lengths.as_ref().map(|l| to_lengths(l, steps)).transpose()?;
            check_features(features, self.inner.shape().input_size, |got, expected| {
                format!("input.size(-1) must be equal to input_size. Expected {expected}, got {got}")
            })?;
            self.run_sequence(py, x_values, [steps, batch], batch_first, [h0, c0], lengths.as_deref())
        }

        /// The module's forward when its arguments need no conversion: `x` a 3-D array ready for the
        /// core (an `ndarray` itself of native float32, C-contiguous and aligned) with `input_size`
        /// features and at least one step; `hx` None, or (`(h0, c0)` as a tuple for an LSTM) ready
        /// arrays of exactly the shapes `forward` takes. Returns what the module returns,
        /// `(y, (h_n, c_n))` for an LSTM and `(y, h_n)` otherwise; None when any argument differs
        /// (the caller then normalises and checks them, with its own messages, and calls `forward`).
        #[pyo3(signature = (x, hx=None, batch_first=false))]
        fn try_forward<'py>(
            &self,
            py: Python<'py>,
            x: &Bound<'py, PyAny>,
            hx: Option<&Bound<'py, PyAny>>,
            batch_first: bool,
        ) -> PyResult<Option<Bound<'py, PyTuple>>> {
            let shape = *self.inner.shape();
            let Some(x) = ready::<Ix3>(x) else { return Ok(None) };
            let dims = x.shape();
            let (steps, batch) = if batch_first { (dims[1], dims[0]) } else { (dims[0], dims[1]) };
            if dims[2] != shape.input_size || steps == 0 {
                return Ok(None);
            }
            let states = shape.num_layers * shape.directions();
            let Some(initial) = ready_states::<Ix3>(hx, shape.kind, &[states, batch, shape.output_size()], &[states, batch, shape.hidden_size]) else {
                return Ok(None);
            };
            let h0 = initial[0].as_ref().map(|a| finite_ready_state(a, "h0")).transpose()?;
            let c0 = initial[1].as_ref().map(|a| finite_ready_state(a, "c0")).transpose()?;
            let (y, h_n, c_n) = self.run_sequence(py, x.values("input")?, [steps, batch], batch_first, [h0, c0], None)?;
            let finals = match c_n {
                Some(c_n) => (h_n, c_n).into_pyobject(py)?.into_any(),
                None => h_n.into_any(),
            };
            Ok(Some((y, finals).into_pyobject(py)?))
        }

        /// One step of a one-layer, one-direction stack (the cells): `x` is float32
        /// `(batch, input_size)`, `h` and (LSTM) `c` are `(batch, hidden_size)` or None (zeros),
        /// without NaN or infinity. Every array must be C-contiguous and aligned (ValueError
        /// otherwise). Returns the new `(h, c or None)` as new arrays.
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
            check_features(features, shape.input_size, |got, expected| {
                format!("input has inconsistent input_size: got {got}, expected {expected}")
            })?;
            let has_c = shape.kind.has_cell_state();
            if c.is_some() != (has_c && h.is_some()) {
                return Err(Error::Value(if has_c { "h and c must be given together" } else { "c is only used by an LSTM" }.into()).into());
            }
            let dims = [batch, shape.hidden_size];
            let x = c_order(&x, "input")?;
            let h = h.as_ref().map(|s| state(s, dims, "h")).transpose()?;
            let c = c.as_ref().map(|s| state(s, dims, "c")).transpose()?;
            self.run_cell(py, x, &dims, [h, c])
        }

        /// The module's step when its arguments need no conversion: `x` an array ready for the core
        /// (see `try_forward`), `(batch, input_size)` or unbatched `(input_size,)`; `hx` None, or
        /// (`(h, c)` as a tuple for an LSTMCell) ready arrays of the input's rank and
        /// `hidden_size` features (and batch). Returns what the module returns, `(h', c')` for an
        /// LSTMCell and `h'` otherwise; None when any argument differs (the caller then normalises
        /// and checks them, with its own messages, and calls `cell`).
        #[pyo3(signature = (x, hx=None))]
        fn try_cell<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, hx: Option<&Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyAny>>> {
            let shape = *self.inner.shape();
            let Some(x) = ready::<IxDyn>(x) else { return Ok(None) };
            let state_dims = match *x.shape() {
                [features] if features == shape.input_size => [shape.hidden_size, 0],
                [batch, features] if features == shape.input_size => [batch, shape.hidden_size],
                _ => return Ok(None),
            };
            let dims = &state_dims[..x.shape().len()];
            let Some(states) = ready_states::<IxDyn>(hx, shape.kind, dims, dims) else { return Ok(None) };
            let h = states[0].as_ref().map(|s| finite_ready_state(s, "h")).transpose()?;
            let c = states[1].as_ref().map(|s| finite_ready_state(s, "c")).transpose()?;
            let (h, c) = self.run_cell(py, x.values("input")?, dims, [h, c])?;
            Ok(Some(match c {
                Some(c) => (h, c).into_pyobject(py)?.into_any(),
                None => h.into_any(),
            }))
        }
    }
}

impl PackedRNN {
    /// Runs a checked sequence: `x` has `steps x batch` rows (`[steps, batch]`), `initial` holds
    /// `(h0, c0)`, each None for zeros. The outputs are new arrays that the core writes whole; a
    /// large sequence runs with the GIL released once the core has read the caller's arrays
    /// (see [`Rnn::forward_into`](crate::rnn::Rnn::forward_into)).
    fn run_sequence<'py>(
        &self,
        py: Python<'py>,
        x: &[f32],
        [steps, batch]: [usize; 2],
        batch_first: bool,
        initial: [Option<&[f32]>; 2],
        lengths: Option<&[usize]>,
    ) -> PyResult<Outputs<'py>> {
        let shape = *self.inner.shape();
        let releases = gil::releases(self.macs(steps.saturating_mul(batch)));
        let states = shape.num_layers * shape.directions();
        let y_dims = if batch_first { [batch, steps] } else { [steps, batch] };
        let mut y = NewArray::uninit(py, &[y_dims[0], y_dims[1], shape.directions() * shape.output_size()])?;
        let mut h_n = NewArray::uninit(py, &[states, batch, shape.output_size()])?;
        let mut c_n = shape.kind.has_cell_state().then(|| NewArray::uninit(py, &[states, batch, shape.hidden_size])).transpose()?;
        let input = SequenceInput { x, steps, batch, batch_first, h0: initial[0], c0: initial[1], lengths };
        let out = SequenceOutputMut {
            y: y.as_mut_slice(),
            h_n: h_n.as_mut_slice(),
            c_n: c_n.as_mut().map_or(&mut [][..], NewArray::as_mut_slice),
        };
        let reduce_range = self.reduce_range.load(Ordering::Relaxed);
        catch_panic(|| self.inner.forward_into(kernels(), &input, reduce_range, out, |rest| gil::detach(py, releases, rest)))?;
        Ok((y.into_array(), h_n.into_array(), c_n.map(NewArray::into_array)))
    }

    /// One checked step: `x` has `dims` with `input_size` features last (`(batch, input)` or
    /// `(input,)`), `initial` holds `(h, c)` (each None for zeros), of `dims` with
    /// `hidden_size` last. The new state arrays start as copies of `initial` and are stepped
    /// in place; a large step runs with the GIL released once the core has read `x`.
    fn run_cell<'py>(&self, py: Python<'py>, x: &[f32], dims: &[usize], initial: [Option<&[f32]>; 2]) -> PyResult<CellOutputs<'py>> {
        let shape = *self.inner.shape();
        let batch = if dims.len() == 2 { dims[0] } else { 1 };
        let releases = gil::releases(self.macs(batch));
        let reduce_range = self.reduce_range.load(Ordering::Relaxed);
        let mut h = NewArray::copy_of(py, dims, initial[0])?;
        let mut c = if shape.kind.has_cell_state() { Some(NewArray::copy_of(py, dims, initial[1])?) } else { None };
        let (h_values, c_values) = (h.as_mut_slice(), c.as_mut().map_or(&mut [][..], |c| c.as_mut_slice()));
        catch_panic(|| self.inner.step_into(kernels(), x, batch, h_values, c_values, reduce_range, |rest| gil::detach(py, releases, rest)))?;
        Ok((h.into_array(), c.map(NewArray::into_array)))
    }

    /// The multiply-accumulates of `row_steps` (time steps x batch rows) through the stack.
    fn macs(&self, row_steps: usize) -> usize {
        self.macs_per_row_step.saturating_mul(row_steps)
    }
}

/// The initial states `hx` when they are ready for the core (see [`ready`]) with exactly the
/// dimensions `h_dims` (and `c_dims` for the LSTM's `c`): `[h, c]`, each None for zeros. `hx` is
/// None, `(h, c)` as a tuple for an LSTM, or `h`; None when it is anything else.
fn ready_states<'py, D: Dimension>(
    hx: Option<&Bound<'py, PyAny>>,
    kind: CellKind,
    h_dims: &[usize],
    c_dims: &[usize],
) -> Option<[Option<ReadyArray<'py, D>>; 2]> {
    let one = |obj: &Bound<'py, PyAny>, dims: &[usize]| ready::<D>(obj).filter(|a| a.shape() == dims);
    let Some(hx) = hx.filter(|hx| !hx.is_none()) else { return Some([None, None]) };
    if !kind.has_cell_state() {
        return Some([Some(one(hx, h_dims)?), None]);
    }
    let pair = hx.cast_exact::<PyTuple>().ok()?;
    if pair.len() != 2 {
        return None;
    }
    Some([Some(one(&pair.get_item(0).ok()?, h_dims)?), Some(one(&pair.get_item(1).ok()?, c_dims)?)])
}

/// The values of a state the caller gives, after checking its shape, layout and values.
fn state<'a>(state: &'a PyReadonlyArray2<'_, f32>, dims: [usize; 2], what: &str) -> Result<&'a [f32]> {
    if state.shape() != dims {
        return Err(Error::Shape(format!("{what} has shape {:?}, expected {dims:?}", state.shape())));
    }
    finite_state(state, what)
}

/// The values of a ready state the caller gives (see [`ReadyArray::values`]), refused when it
/// holds NaN or infinity.
fn finite_ready_state<'a, D: Dimension>(state: &'a ReadyArray<'_, D>, what: &str) -> Result<&'a [f32]> {
    let values = state.values(what)?;
    check_finite_state(values, what)?;
    Ok(values)
}

/// The values of a state the caller gives, refused when it holds NaN or infinity.
fn finite_state<'a, D: Dimension>(state: &'a PyReadonlyArray<'_, f32, D>, what: &str) -> Result<&'a [f32]> {
    let values = c_order(state, what)?;
    check_finite_state(values, what)?;
    Ok(values)
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
