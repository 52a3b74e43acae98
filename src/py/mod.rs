//! `ferroq._core`: the PyO3 module. Thin: argument checks, GIL release, error mapping; the
//! algorithms live in the rest of the crate.

mod arrays;
mod embedding;
mod errors;
mod gil;
mod linear;
mod memory;
mod model_file;
mod outputs;
mod rnn;
mod safetensors_io;
mod shared_methods;
mod static_linear;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::dispatch::{active_isa, isa_override_note, supported_isas};
use crate::quant;
use crate::threads;

/// The kernel path in use: "avx512vnni", "avxvnni", "avx2", "neon-dotprod", "neon" or "scalar".
#[pyfunction]
fn backend() -> &'static str {
    active_isa().name()
}

/// Every kernel path this CPU and build support, lowest first ("scalar" is always there).
#[pyfunction]
fn supported_backends() -> Vec<&'static str> {
    supported_isas().into_iter().map(|isa| isa.name()).collect()
}

/// Why the FERROQ_ISA environment variable was not honoured as written, or None.
#[pyfunction]
fn backend_note() -> Option<&'static str> {
    isa_override_note()
}

/// Sets the number of threads one operation may use: 1 to `MAX_THREADS`.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    Ok(threads::set_num_threads(n)?)
}

/// The number of threads one operation may use.
#[pyfunction]
fn get_num_threads() -> usize {
    threads::num_threads()
}

/// Starts the threads operations use now rather than in the first operation that needs them
/// (`ferroq.load` calls it, so that a loaded model's first call does no work the others skip).
#[pyfunction]
fn start_threads(py: Python<'_>) {
    py.detach(threads::start);
}

/// PyTorch's ChooseQuantizationParams: `(scale, zero_point)` for the range `[min_val, max_val]`
/// and the levels `qmin..=qmax` (halved when `reduce_range`). The scale is a double.
#[pyfunction]
fn choose_qparams(min_val: f32, max_val: f32, qmin: i32, qmax: i32, reduce_range: bool) -> PyResult<(f64, i32)> {
    if !(min_val.is_finite() && max_val.is_finite()) {
        return Err(PyValueError::new_err(format!("min_val and max_val must be finite, got {min_val} and {max_val}")));
    }
    let (low, high) = if reduce_range { (qmin / 2, qmax / 2) } else { (qmin, qmax) };
    if high.checked_sub(low).is_none_or(|levels| levels < 1) {
        return Err(PyValueError::new_err(format!(
            "qmin ({qmin}) must be less than qmax ({qmax}), also when halved by reduce_range, and their difference an int32"
        )));
    }
    let q = quant::choose_qparams(min_val, max_val, qmin, qmax, reduce_range)?;
    Ok((q.scale, q.zero_point))
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_THREADS", threads::MAX_THREADS)?;
    m.add_function(wrap_pyfunction!(backend, m)?)?;
    m.add_function(wrap_pyfunction!(supported_backends, m)?)?;
    m.add_function(wrap_pyfunction!(backend_note, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(start_threads, m)?)?;
    m.add_function(wrap_pyfunction!(choose_qparams, m)?)?;
    m.add_function(wrap_pyfunction!(memory::release_free_memory, m)?)?;
    m.add_function(wrap_pyfunction!(safetensors_io::write_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(safetensors_io::read_safetensors, m)?)?;
    m.add_class::<model_file::ModelFile>()?;
    m.add_class::<linear::PackedLinear>()?;
    m.add_class::<linear::PackedLinearFp16>()?;
    m.add_class::<rnn::PackedRNN>()?;
    m.add_class::<static_linear::PackedStaticLinear>()?;
    m.add_class::<embedding::PackedEmbeddingTable>()?;
    Ok(())
}
