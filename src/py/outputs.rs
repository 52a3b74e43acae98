//! New numpy arrays for results. rust-numpy's constructors panic when numpy cannot allocate; these
//! return numpy's own error instead (MemoryError, or ValueError for a size it cannot address).

use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::ptr;

use numpy::npyffi::{get_type_object, npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{Element, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::errors::catch_panic;
use crate::error::Result;

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

/// The new array `out` after `compute` wrote its elements (in C order) with the GIL released; a
/// panic in `compute` becomes a `RuntimeError` (see [`catch_panic`]).
pub fn computed_matrix<'py, T: Element + Send>(
    py: Python<'py>,
    out: Bound<'py, PyArray2<T>>,
    compute: impl FnOnce(&mut [T]) -> Result<()> + Send,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    {
        let mut out_rw = out.readwrite();
        let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
        py.detach(|| catch_panic(|| compute(out_slice)))?;
    }
    Ok(out)
}

fn intp(n: usize) -> PyResult<npy_intp> {
    npy_intp::try_from(n).map_err(|_| PyValueError::new_err(format!("an output dimension of {n} is too large")))
}

/// The most dimensions a result array may have (numpy's limit).
pub const MAX_DIMS: usize = 64;

/// A new C-ordered array that no other code has seen yet: its elements are written through
/// [`NewArray::as_mut_slice`] without rust-numpy's borrow registry (whose bookkeeping costs more
/// than a batch-1 step's arithmetic), then it is handed to Python by [`NewArray::into_array`].
/// It starts zero-filled ([`NewArray::zeros`]) or, for float32 only, holding whatever bytes
/// numpy's allocator left there ([`NewArray::uninit`]).
pub struct NewArray<'py, T: Element + Copy>(Bound<'py, PyArrayDyn<T>>);

/// `dims` as numpy's dimensions: the first `ndim` entries written (only those, so that a batch-1
/// call does not clear [`MAX_DIMS`] of them), and `ndim`; ValueError beyond [`MAX_DIMS`] or for a
/// size numpy cannot address.
fn numpy_dims(dims: &[usize]) -> PyResult<([MaybeUninit<npy_intp>; MAX_DIMS], c_int)> {
    if dims.len() > MAX_DIMS {
        return Err(PyValueError::new_err(format!("an output of {} dimensions has more than {MAX_DIMS}", dims.len())));
    }
    let mut shape = [MaybeUninit::uninit(); MAX_DIMS];
    for (s, &d) in shape.iter_mut().zip(dims) {
        s.write(intp(d)?);
    }
    Ok((shape, c_int::try_from(dims.len()).expect("at most MAX_DIMS dimensions")))
}

/// What a new array's elements start as.
#[derive(Clone, Copy)]
enum Fill {
    Zeros,
    /// Whatever numpy's allocator left there.
    Uninit,
}

/// A new C-ordered array of `T` and shape `dims` from numpy (`PyArray_Zeros` or `PyArray_Empty`);
/// numpy's error (MemoryError, or ValueError for a size it cannot address) when it cannot
/// allocate it.
fn new_array<'py, T: Element>(py: Python<'py>, dims: &[usize], fill: Fill) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let (mut shape, ndim) = numpy_dims(dims)?;
    let (shape, descr) = (shape.as_mut_ptr().cast(), T::get_dtype(py).into_dtype_ptr());
    // SAFETY: the first `ndim` entries of `shape`, which numpy reads, are written; the descriptor
    // reference is handed over (both functions steal it); 0 asks for C order.
    let array = unsafe {
        match fill {
            Fill::Zeros => PY_ARRAY_API.PyArray_Zeros(py, ndim, shape, descr, 0),
            Fill::Uninit => PY_ARRAY_API.PyArray_Empty(py, ndim, shape, descr, 0),
        }
    };
    // SAFETY: `array` is a new reference or null with a Python error set, as the C API promises.
    let array = unsafe { Bound::from_owned_ptr_or_err(py, array) }?;
    // SAFETY: numpy made it an array of `T`'s dtype.
    Ok(unsafe { array.cast_into_unchecked() })
}

impl<'py, T: Element + Copy> NewArray<'py, T> {
    /// Zeros of shape `dims` (at most [`MAX_DIMS`] of them); numpy's error (MemoryError, or
    /// ValueError for a size it cannot address) when it cannot allocate them.
    pub fn zeros(py: Python<'py>, dims: &[usize]) -> PyResult<Self> {
        new_array(py, dims, Fill::Zeros).map(NewArray)
    }

    /// The elements, in C order.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.0.len();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: numpy allocated the array as a C-contiguous, aligned block of `len` elements of
        // `T`, either zero-filled (a `Copy` element type of numpy's is a number or bool, valid
        // when zeroed) or, `T` being f32 (`uninit`), holding bytes from numpy's allocator, which
        // Rust did not see allocated (C code did) and every one of whose patterns is a valid
        // f32; `self` holds the only reference to it (it reaches other code through `into_array`
        // only, and numpy arrays are not visible to the garbage collector), and `&mut self` makes
        // this borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.0.data(), len) }
    }

    /// The array, for Python.
    pub fn into_array(self) -> Bound<'py, PyArrayDyn<T>> {
        self.0
    }
}

impl<'py> NewArray<'py, f32> {
    /// A float32 array of shape `dims` whose values are whatever numpy's allocator left there
    /// (no pass over the memory, and no fresh page touched before its values are): the caller
    /// must write every one before the array reaches Python code (on an error it is dropped).
    /// Errors as [`NewArray::zeros`].
    pub fn uninit(py: Python<'py>, dims: &[usize]) -> PyResult<Self> {
        new_array(py, dims, Fill::Uninit).map(NewArray)
    }

    /// A new array of shape `dims` holding a copy of `values` (zeros when None); ValueError when
    /// `values` has another number of elements.
    pub fn copy_of(py: Python<'py>, dims: &[usize], values: Option<&[f32]>) -> PyResult<Self> {
        let Some(values) = values else { return Self::zeros(py, dims) };
        let mut array = Self::uninit(py, dims)?;
        let elements = array.as_mut_slice();
        if values.len() != elements.len() {
            return Err(PyValueError::new_err(format!("{} values for an array of shape {dims:?}", values.len())));
        }
        elements.copy_from_slice(values);
        Ok(array)
    }
}
