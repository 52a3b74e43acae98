//! Allocations sized by the caller (a layer's shape, an input's rows): they fail with
//! [`Error::Memory`] instead of aborting the process as Rust's ordinary allocations do, and a size
//! whose element count overflows is an [`Error::Shape`].

use crate::error::{Error, Result};

/// `a * b` elements, or an error naming `what` when the count overflows.
pub fn elements(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::Shape(format!("{what} would have {a} x {b} elements, too many to address")))
}

/// Makes room for `additional` more elements in `v`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<()> {
    v.try_reserve_exact(additional).map_err(|_| out_of_memory::<T>(additional))
}

/// `len` copies of `value`.
pub fn vec_of<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len)?;
    v.resize(len, value);
    Ok(v)
}

/// [`Vec::resize`], growing only through [`reserve`].
pub fn resize<T: Clone>(v: &mut Vec<T>, len: usize, value: T) -> Result<()> {
    if let Some(additional) = len.checked_sub(v.len()) {
        reserve(v, additional)?;
    }
    v.resize(len, value);
    Ok(())
}

/// A copy of `values`.
pub fn copy_of<T: Clone>(values: &[T]) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, values.len())?;
    v.extend_from_slice(values);
    Ok(v)
}

/// The items of `items`, which yields at most `len` of them (the room is reserved first).
pub fn collect<T>(len: usize, items: impl IntoIterator<Item = T>) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len)?;
    v.extend(items.into_iter().take(len));
    Ok(v)
}

fn out_of_memory<T>(elements: usize) -> Error {
    let bytes = elements.saturating_mul(std::mem::size_of::<T>());
    Error::Memory(format!("cannot allocate {bytes} bytes ({:.1} GiB)", bytes as f64 / (1u64 << 30) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        assert!(matches!(vec_of(usize::MAX / 2, 0u8), Err(Error::Memory(_))));
        assert!(matches!(vec_of(1 << 60, 0f32), Err(Error::Memory(_))));
        let mut v = vec![1u32; 3];
        assert!(matches!(resize(&mut v, 1 << 61, 0), Err(Error::Memory(_))));
        assert_eq!(v, [1, 1, 1]);
        assert!(matches!(elements(1 << 40, 1 << 40, "output"), Err(Error::Shape(_))));
    }

    #[test]
    fn possible_sizes_are_filled() {
        assert_eq!(vec_of(3, 7i8).unwrap(), [7, 7, 7]);
        let mut v = vec![1, 2, 3];
        resize(&mut v, 5, 0).unwrap();
        assert_eq!(v, [1, 2, 3, 0, 0]);
        resize(&mut v, 1, 0).unwrap();
        assert_eq!(v, [1]);
        assert_eq!(copy_of(&[4, 5]).unwrap(), [4, 5]);
        assert_eq!(collect(2, 0..10).unwrap(), [0, 1]);
        assert_eq!(elements(6, 7, "x").unwrap(), 42);
    }
}
