//! A model file open for `ferroq.load`: its safetensors header, and its tensors read with
//! positional reads (`pread`) into memory the caller owns (new arrays, packed weights). Nothing
//! is memory-mapped: a file cut short by another process while it is read gives a ValueError,
//! never the SIGBUS with which the system answers a read of a mapped page past a file's end.

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyIsADirectoryError, PyValueError};
use pyo3::prelude::*;
use safetensors::tensor::Metadata;
use safetensors::SafeTensorError;

use super::errors::catch_panic;
use super::safetensors_io::{dtype_name, os_error};
use crate::alloc;
use crate::error::{Error, Result};

/// A stored tensor: name, dtype name, shape, and where its bytes lie in the file (start, end).
pub type TensorEntry = (String, String, Vec<usize>, usize, usize);

/// A `.safetensors` file open for reading (see the module documentation).
#[pyclass(module = "ferroq._core", frozen)]
pub struct ModelFile {
    file: File,
    path: PathBuf,
}

impl ModelFile {
    /// Fills `buf` with the bytes at `offset`; a file that ends first is an `UnexpectedEof` error.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            let (mut done, mut buf) = (0u64, buf);
            while !buf.is_empty() {
                match std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset + done)? {
                    0 => return Err(ErrorKind::UnexpectedEof.into()),
                    read => {
                        buf = &mut buf[read..];
                        done += read as u64;
                    }
                }
            }
            Ok(())
        }
    }

    /// [`read_at`](Self::read_at) into int8 memory.
    pub fn read_i8_at(&self, offset: u64, buf: &mut [i8]) -> std::io::Result<()> {
        // SAFETY: `i8` and `u8` have the same size and alignment and every bit pattern is valid
        // for both; the bytes are the only (mutable) borrow of `buf` for this call.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len()) };
        self.read_at(offset, bytes)
    }

    /// The Python exception for a failed read of this file.
    pub fn read_error(&self, err: std::io::Error) -> PyErr {
        if err.kind() == ErrorKind::UnexpectedEof {
            PyValueError::new_err(format!(
                "{}: the file ended before its tensors did (was it changed while being loaded?)",
                self.path.display()
            ))
        } else {
            os_error("read", &self.path, err)
        }
    }

    fn invalid(&self, err: impl std::fmt::Display) -> PyErr {
        PyValueError::new_err(format!("{} is not a valid .safetensors file: {err}", self.path.display()))
    }
}

#[pymethods]
impl ModelFile {
    /// Opens `path` for reading (the OSError subclass of the failure: FileNotFoundError,
    /// PermissionError, IsADirectoryError, ...).
    #[new]
    pub fn open(path: PathBuf) -> PyResult<Self> {
        let file = File::open(&path).map_err(|e| os_error("open", &path, e))?;
        if file.metadata().map_err(|e| os_error("read", &path, e))?.is_dir() {
            return Err(PyIsADirectoryError::new_err(format!("cannot read {}: it is a directory", path.display())));
        }
        Ok(ModelFile { file, path })
    }

    /// The file's header, checked whole: every tensor as `(name, dtype, shape, start, end)`, its
    /// little-endian bytes lying at `start..end` of the file (in file order), and the header's
    /// string metadata. A truncated or malformed file, or a JSON header longer than
    /// `max_header_bytes` (checked before it is read), raises ValueError.
    pub fn header(&self, max_header_bytes: u64) -> PyResult<(Vec<TensorEntry>, HashMap<String, String>)> {
        let len = self.file.metadata().map_err(|e| os_error("read", &self.path, e))?.len();
        let mut prefix = [0u8; 8];
        if len < 8 {
            return Err(self.invalid(SafeTensorError::HeaderTooSmall));
        }
        self.read_at(0, &mut prefix).map_err(|e| self.read_error(e))?;
        let header_bytes = u64::from_le_bytes(prefix);
        if header_bytes > max_header_bytes {
            return Err(PyValueError::new_err(format!(
                "{}: its header of {header_bytes} bytes is longer than the {max_header_bytes} bytes ferroq reads",
                self.path.display()
            )));
        }
        if header_bytes > len - 8 {
            return Err(self.invalid(SafeTensorError::InvalidHeaderLength));
        }
        let data_start = 8 + header_bytes;
        let mut text = vec![0u8; header_bytes as usize]; // at most `max_header_bytes`, checked above
        self.read_at(8, &mut text).map_err(|e| self.read_error(e))?;
        let text = std::str::from_utf8(&text).map_err(|e| self.invalid(SafeTensorError::InvalidHeader(e)))?;
        let header: Metadata = serde_json::from_str(text).map_err(|e| match e.classify() {
            // The crate's own checks of shapes, dtypes and offsets, as it words them.
            serde_json::error::Category::Data => self.invalid(e),
            _ => self.invalid(SafeTensorError::InvalidHeaderDeserialization(e)),
        })?;
        if (header.data_len() as u64).checked_add(data_start) != Some(len) {
            return Err(self.invalid(SafeTensorError::MetadataIncompleteBuffer));
        }
        let mut tensors = Vec::with_capacity(header.tensors().len());
        for name in header.offset_keys() {
            let info = header.info(&name).expect("offset_keys names the header's tensors");
            let dtype = dtype_name(info.dtype)
                .ok_or_else(|| PyValueError::new_err(format!("tensor {name:?} has unsupported dtype {:?}", info.dtype)))?;
            let (start, end) = info.data_offsets;
            let at = |offset: usize| offset + data_start as usize; // within the file's length, checked above
            tensors.push((name, dtype.to_string(), info.shape.clone(), at(start), at(end)));
        }
        Ok((tensors, header.metadata().clone().unwrap_or_default()))
    }

    /// Reads the bytes from `start` into `out`, a writable C-contiguous uint8 array, whole
    /// (ValueError when the file ends first). The GIL is released.
    fn read_into(&self, py: Python<'_>, start: u64, out: &Bound<'_, PyArray1<u8>>) -> PyResult<()> {
        let mut out = out.try_readwrite()?;
        let bytes = out.as_slice_mut().map_err(|e| PyValueError::new_err(format!("out cannot be written as a slice: {e}")))?;
        py.detach(|| self.read_at(start, bytes)).map_err(|e| self.read_error(e))
    }
}

/// Packs an `n x k` int8 weight stored from byte `start` of `file` with the GIL released:
/// `pack(read)` builds it, `read(offset, buffer)` filling `buffer` with the bytes from `start +
/// offset`. A failed read raises its own exception (ValueError when the file ended first).
pub fn read_packed<T: Send>(
    py: Python<'_>,
    file: &ModelFile,
    start: u64,
    n: usize,
    k: usize,
    pack: impl FnOnce(&mut dyn FnMut(usize, &mut [i8]) -> Result<()>) -> Result<T> + Send,
) -> PyResult<T> {
    let bytes = alloc::elements(n, k, "the weight")?;
    if (bytes as u64).checked_add(start).is_none() {
        return Err(PyValueError::new_err(format!("a weight of {bytes} bytes from byte {start} lies beyond any file")));
    }
    let mut failure: Option<std::io::Error> = None;
    let packed = py.detach(|| {
        catch_panic(|| {
            pack(&mut |offset, buffer| {
                file.read_i8_at(start + offset as u64, buffer).map_err(|e| {
                    failure = Some(e);
                    Error::Value("the weight could not be read".into())
                })
            })
        })
    });
    match failure {
        Some(e) => Err(file.read_error(e)),
        None => packed,
    }
}
