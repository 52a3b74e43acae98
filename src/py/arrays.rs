//! Borrowing numpy arrays as Rust slices. The Python layer normalises every array to C order,
//! aligned, native float32 (`ferroq._arrays.as_float32`) before it reaches the core; this is the
//! second line of defence: an array is read only when its memory order is its C order, and
//! anything else (Fortran order, strides, unaligned buffers) is refused with a ValueError saying
//! which, never read in memory order by mistake.

use numpy::ndarray::Dimension;
use numpy::{Element, PyArray, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::alloc;
use crate::error::{Error, Result};

/// The elements of `array` in C order, borrowed: it must be C-contiguous and aligned (any
/// zero-size array is fine).
pub fn c_order<'a, T: Element, D: Dimension>(array: &'a PyReadonlyArray<'_, T, D>, what: &str) -> Result<&'a [T]> {
    if array.len() == 0 {
        return Ok(&[]);
    }
    if !array.is_c_contiguous() {
        let layout = if array.is_fortran_contiguous() { "a Fortran-ordered" } else { "a strided" };
        return Err(Error::Value(format!("{what} must be C-contiguous, got {layout} array")));
    }
    if !array.is_aligned() {
        return Err(Error::Value(format!("{what} must be aligned to its element size, got an unaligned buffer")));
    }
    array.as_slice().map_err(|e| Error::Value(format!("{what} cannot be read as a slice: {e}")))
}

/// `obj` as a `D`-dimensional float32 array when it already is exactly what the core reads, the
/// one check of the lean call paths: an `ndarray` itself (not a subclass) of native float32,
/// C-contiguous and aligned (the test of `ferroq._arrays.is_core_float32`). None for anything
/// else, which the Python layer then normalises and checks with its own messages.
pub fn ready<'py, D: Dimension>(obj: &Bound<'py, PyAny>) -> Option<ReadyArray<'py, D>> {
    let array = obj.cast_exact::<PyArray<f32, D>>().ok()?;
    (array.is_c_contiguous() && array.is_aligned()).then(|| ReadyArray(array.clone()))
}

/// A caller's array that [`ready`] accepted, read in place with the GIL held. Its elements are
/// read without rust-numpy's borrow registry, whose bookkeeping (a hash-map entry taken and
/// released per array per call) costs more than the arithmetic of a small batch-1 step. The
/// registry only sees borrows taken by Rust code through rust-numpy; an array is read here
/// exactly as numpy's own C functions read one: while holding the GIL, so no Python code runs
/// meanwhile. (Code that writes an array with the GIL released, a numpy ufunc or a rust-numpy
/// mutable borrow such as `ModelFile.read_into`'s, is not excluded, just as it is not for numpy:
/// an array another thread is writing is read as it is.) A computation that releases the GIL
/// reads a copy (`gil::snapshot`), never [`ReadyArray::values`] itself.
pub struct ReadyArray<'py, D>(Bound<'py, PyArray<f32, D>>);

impl<D: Dimension> ReadyArray<'_, D> {
    /// The array's dimensions.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// The elements in C order, to be read with the GIL held and no Python code run meanwhile
    /// (see [`ReadyArray`]); `what` names the array in the error that cannot happen for an array
    /// `ready` accepted.
    pub fn values(&self, what: &str) -> Result<&[f32]> {
        // SAFETY: `ready` found the array C-contiguous, aligned, float32 and of exactly the
        // ndarray type, and `as_slice` checks contiguity and alignment again; the slice borrows
        // `self`, which keeps the array (and so its buffer) alive, and the caller reads it with
        // the GIL held, running no Python code meanwhile, so that nothing reshapes, resizes or
        // writes the array while the slice is read (see [`ReadyArray`]).
        unsafe { self.0.as_slice() }.map_err(|e| Error::Value(format!("{what} cannot be read as a slice: {e}")))
    }
}

/// The elements of a C-contiguous 2-D array and its `(rows, cols)`.
pub fn matrix<'a, T: Element>(array: &'a PyReadonlyArray2<'_, T>, what: &str) -> Result<(&'a [T], usize, usize)> {
    let shape = array.shape();
    Ok((c_order(array, what)?, shape[0], shape[1]))
}

/// The elements of a C-contiguous 1-D array.
pub fn vector<'a, T: Element>(array: &'a PyReadonlyArray1<'_, T>, what: &str) -> Result<&'a [T]> {
    c_order(array, what)
}

/// The elements of a C-contiguous `(rows, in_features)` input and its number of rows; ValueError
/// when its last dimension is not `in_features`.
pub fn input_rows<'a, T: Element>(x: &'a PyReadonlyArray2<'_, T>, in_features: usize) -> Result<(&'a [T], usize)> {
    let (data, rows, k) = matrix(x, "input")?;
    check_features(k, in_features, |k, n| format!("input has {k} features in its last dimension, expected in_features = {n}"))?;
    Ok((data, rows))
}

/// ValueError with `message(got, expected)` unless an input's number of features `got` is the
/// layer's `expected`.
pub fn check_features(got: usize, expected: usize, message: fn(usize, usize) -> String) -> Result<()> {
    if got != expected {
        return Err(Error::Shape(message(got, expected)));
    }
    Ok(())
}

/// A copy of an optional float32 `bias` vector, for the layer to keep.
pub fn owned_bias(bias: Option<&PyReadonlyArray1<'_, f32>>) -> Result<Option<Vec<f32>>> {
    bias.map(|b| alloc::copy_of(vector(b, "bias")?)).transpose()
}

/// An int8 layer's weight qparams `(scales, zero_points)`, borrowed, and a copy of its bias.
pub type QParamsAndBias<'a> = (&'a [f32], &'a [i32], Option<Vec<f32>>);

/// The [`QParamsAndBias`] of the caller's arrays.
pub fn qparams_and_bias<'a>(
    scales: &'a PyReadonlyArray1<'_, f32>,
    zero_points: &'a PyReadonlyArray1<'_, i32>,
    bias: Option<&PyReadonlyArray1<'_, f32>>,
) -> Result<QParamsAndBias<'a>> {
    let bias = owned_bias(bias)?;
    Ok((vector(scales, "scales")?, vector(zero_points, "zero_points")?, bias))
}

/// ValueError when a state the caller gives (`h0`, `c0`, `h`, `c`) holds NaN or infinity: it
/// would run through every later step (an LSTM's `c` is never quantized, so nothing else would
/// report it).
pub fn check_finite_state(values: &[f32], what: &str) -> Result<()> {
    if all_finite(values) {
        return Ok(());
    }
    Err(Error::Value(format!("{what} contains NaN or infinity")))
}

/// Whether every value is finite: a branch-free pass over blocks of 16 (vectorised; a batch-1
/// step's state is a few hundred values, and `Iterator::all` checks them one by one).
fn all_finite(values: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    let infinite_or_nan = |block: &[f32]| block.iter().fold(false, |any, v| any | (v.to_bits() & EXPONENT == EXPONENT));
    let blocks = values.chunks_exact(16);
    let tail = blocks.remainder();
    !(blocks.fold(false, |any, block| any | infinite_or_nan(block)) || infinite_or_nan(tail))
}
