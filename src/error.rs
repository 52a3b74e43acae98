//! The one error type of the crate. The Python layer maps each variant to one Python exception
//! class in one place (`py/errors.rs`), so every message written here is what the user reads.

use std::fmt;

/// What went wrong, with a message that names what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A shape or size does not fit (Python `ValueError`).
    Shape(String),
    /// A value cannot be used: NaN or infinity where a number is to be quantized, bad quantization
    /// parameters (Python `ValueError`).
    Value(String),
    /// An element type is not accepted (Python `TypeError`).
    DType(String),
    /// A valid request this library does not implement (Python `NotImplementedError`).
    Unsupported(String),
    /// Memory for a result or a packed weight could not be allocated (Python `MemoryError`).
    Memory(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape(m) | Error::Value(m) | Error::DType(m) | Error::Unsupported(m) | Error::Memory(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
