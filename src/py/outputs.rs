//! New numpy arrays for results. rust-numpy's constructors panic when numpy cannot allocate; these
//! return numpy's own error instead (MemoryError, or ValueError for a size it cannot address).

use std::ptr;

use numpy::npyffi::{get_type_object, npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{Element, PyArray2, PyArrayDescrMethods, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::errors::catch_panic;

/// A new C-ordered `(rows, cols)` array whose elements are uninitialized: the caller must write
/// every one before the array reaches Python code (on an error it is simply dropped).
pub fn uninit_matrix<T: Element>(py: Python<'_>, rows: usize, cols: usize) -> PyResult<Bound<'_, PyArray2<T>>> {
    let mut dims = [intp(rows)?, intp(cols)?];
    // SAFETY: the type object and the descriptor are numpy's own for `T` (the descriptor reference
    // is handed over, as `PyArray_NewFromDescr` steals it); `dims` holds the 2 dimensions it reads;
    // null strides, data and object ask numpy for a new C-ordered buffer of its own.
    let array = unsafe {
        PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            get_type_object(py, NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            2,
            dims.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    // SAFETY: `array` is a new reference or null with a Python error set, as the C API promises.
    let array = unsafe { Bound::from_owned_ptr_or_err(py, array) }?;
    // SAFETY: numpy made it a 2-D array of `T`'s dtype.
    Ok(unsafe { array.cast_into_unchecked() })
}

/// A new C-ordered `(rows, cols)` array filled by `write`, which must set every element; a panic
/// in `write` becomes a `RuntimeError` (see [`catch_panic`]).
pub fn written_matrix<T: Element>(py: Python<'_>, rows: usize, cols: usize, write: impl FnOnce(&mut [T])) -> PyResult<Bound<'_, PyArray2<T>>> {
    let out = uninit_matrix::<T>(py, rows, cols)?;
    {
        let mut out_rw = out.readwrite();
        let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
        catch_panic(|| {
            write(out_slice);
            Ok(())
        })?;
    }
    Ok(out)
}

fn intp(n: usize) -> PyResult<npy_intp> {
    npy_intp::try_from(n).map_err(|_| PyValueError::new_err(format!("an output dimension of {n} is too large")))
}
