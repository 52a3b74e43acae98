//! The one place where crate errors become Python exceptions.

use pyo3::exceptions::{PyMemoryError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyResult;
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::Shape(m) | Error::Value(m) => PyValueError::new_err(m),
            Error::DType(m) => PyTypeError::new_err(m),
            Error::Unsupported(m) => PyNotImplementedError::new_err(m),
            Error::Memory(m) => PyMemoryError::new_err(m),
        }
    }
}

/// Runs `f`, turning a panic (a bug in ferroq) into a `RuntimeError` with its message instead of
/// pyo3's `PanicException`, which derives from `BaseException` and so escapes `except Exception`.
/// Every public computation runs inside it; the causes of panics are fixed where they are found.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(PyErr::from),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PyRuntimeError::new_err(format!("internal error in ferroq (please report it): {message}")))
        }
    }
}
