//! Borrowing numpy arrays as Rust slices. The Python layer has already normalised dtype and
//! memory order; what arrives here is checked again, never trusted.

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};

use crate::error::{Error, Result};

/// The elements of a C-contiguous 2-D array and its `(rows, cols)`.
pub fn matrix<'a, T: numpy::Element>(array: &'a PyReadonlyArray2<'_, T>, what: &str) -> Result<(&'a [T], usize, usize)> {
    let shape = array.shape();
    let data = array.as_slice().map_err(|_| Error::Value(format!("{what} must be C-contiguous")))?;
    Ok((data, shape[0], shape[1]))
}

/// The elements of a C-contiguous 1-D array.
pub fn vector<'a, T: numpy::Element>(array: &'a PyReadonlyArray1<'_, T>, what: &str) -> Result<&'a [T]> {
    array.as_slice().map_err(|_| Error::Value(format!("{what} must be C-contiguous")))
}

/// ValueError unless an input's last dimension `k` is the layer's `in_features`.
pub fn check_in_features(k: usize, in_features: usize) -> Result<()> {
    if k != in_features {
        return Err(Error::Shape(format!(
            "input has {k} features in its last dimension, expected in_features = {in_features}"
        )));
    }
    Ok(())
}
