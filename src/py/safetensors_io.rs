//! Reading and writing `.safetensors` files with the `safetensors` crate (the format is never
//! written by hand). Tensors cross the boundary as `(name, dtype, shape, little-endian bytes)`;
//! the Python layer turns them into arrays and owns the meaning of names and metadata.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyValueError};

use super::model_file::{ModelFile, TensorEntry};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use safetensors::tensor::{Dtype, TensorView};

/// One tensor as Python hands it over: name, dtype name, shape, raw little-endian bytes.
type RawTensor<'py> = (String, String, Vec<usize>, Bound<'py, PyBytes>);

const DTYPES: [(&str, Dtype); 8] = [
    ("F64", Dtype::F64),
    ("F32", Dtype::F32),
    ("F16", Dtype::F16),
    ("I64", Dtype::I64),
    ("I32", Dtype::I32),
    ("I8", Dtype::I8),
    ("U8", Dtype::U8),
    ("U16", Dtype::U16),
];

fn dtype_from_name(name: &str) -> PyResult<Dtype> {
    DTYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported safetensors dtype {name:?}")))
}

pub(super) fn dtype_name(dtype: Dtype) -> Option<&'static str> {
    DTYPES.iter().find(|(_, d)| *d == dtype).map(|(n, _)| *n)
}

/// The OSError for a failed file operation, of the matching subclass (FileNotFoundError,
/// PermissionError, IsADirectoryError, ...): Python picks it from the errno when there is one.
pub(super) fn os_error(what: &str, path: &Path, err: std::io::Error) -> PyErr {
    let message = format!("cannot {what} {}: {err}", path.display());
    match (err.raw_os_error(), err.kind()) {
        (Some(code), _) => PyOSError::new_err((code, message)),
        (None, ErrorKind::NotFound) => PyFileNotFoundError::new_err(message),
        (None, ErrorKind::PermissionDenied) => PyPermissionError::new_err(message),
        (None, ErrorKind::IsADirectory) => PyIsADirectoryError::new_err(message),
        (None, _) => PyOSError::new_err(message),
    }
}

/// Writes `tensors` (unique names) and the string `metadata` to `path` as one safetensors file.
#[pyfunction]
pub fn write_safetensors<'py>(
    py: Python<'py>,
    path: PathBuf,
    tensors: Vec<RawTensor<'py>>,
    metadata: HashMap<String, String>,
) -> PyResult<()> {
    let mut views = Vec::with_capacity(tensors.len());
    let mut names = HashSet::with_capacity(tensors.len());
    for (name, dtype, shape, data) in &tensors {
        if !names.insert(name.as_str()) {
            return Err(PyValueError::new_err(format!("two tensors are named {name:?}")));
        }
        let dtype = dtype_from_name(dtype)?;
        let bytes = shape.iter().try_fold(dtype.bitsize() / 8, |bytes, &d| bytes.checked_mul(d)); // whole-byte dtypes only
        if bytes != Some(data.as_bytes().len()) {
            return Err(PyValueError::new_err(format!(
                "tensor {name:?}: shape {shape:?} of {dtype:?} does not match its {} bytes",
                data.as_bytes().len()
            )));
        }
        let view =
            TensorView::new(dtype, shape.clone(), data.as_bytes()).map_err(|e| PyValueError::new_err(format!("tensor {name:?}: {e}")))?;
        views.push((name.clone(), view));
    }
    py.detach(|| safetensors::serialize_to_file(views, Some(metadata), &path)).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => os_error("write", &path, io),
        other => PyValueError::new_err(format!("cannot write {}: {other}", path.display())),
    })
}

/// Reads the header of a safetensors file (read, not mapped; see [`ModelFile::header`]): every
/// tensor as `(name, dtype, shape, start, end)`, its little-endian bytes lying at `start..end` of
/// the file, and the header's string metadata. A truncated or malformed file, or one whose JSON
/// header is longer than `max_header_bytes` (checked before it is read), raises ValueError; a
/// path that cannot be read raises the matching OSError subclass.
#[pyfunction]
pub fn read_safetensors(path: PathBuf, max_header_bytes: u64) -> PyResult<(Vec<TensorEntry>, HashMap<String, String>)> {
    ModelFile::open(path)?.header(max_header_bytes)
}
