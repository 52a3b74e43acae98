//! The one place where crate errors become Python exceptions.

use pyo3::exceptions::{PyMemoryError, PyNotImplementedError, PyTypeError, PyValueError};
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
