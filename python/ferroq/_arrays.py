"""Normalising user input into the arrays the Rust core accepts, with typed errors.

:func:`as_float32` is the one place where float input of any origin and memory layout (Fortran
order, strides, negative strides, broadcast views, unaligned or byte-swapped buffers, read-only
memory, torch tensors, lists) becomes what the kernels read: a C-contiguous, aligned, native
float32 ndarray. The core refuses anything else, so a layout can never be read in the wrong order.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

#: Native float32. numpy hands out this one descriptor for native float32 arrays, so an identity
#: test is the cheapest check; an equal but distinct descriptor only takes the slower path.
_FLOAT32 = np.dtype(np.float32)


def to_numpy(value: Any) -> np.ndarray:
    """An ndarray view or copy of ``value``; torch tensors are detached and moved to the CPU
    (bfloat16 ones, which numpy cannot hold, are widened to float32 first)."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def is_core_float32(array: Any) -> bool:
    """True when ``array`` is already what the core reads: an ndarray (not a subclass) of native
    float32, C-contiguous and aligned. Read-only arrays qualify (the core only reads inputs)."""
    if type(array) is not np.ndarray or array.dtype is not _FLOAT32:
        return False
    flags = array.flags
    # carray (C-contiguous, aligned and writeable) is one lookup: the common case, checked first.
    return flags.carray or (flags.c_contiguous and flags.aligned)


def as_float32(value: Any, what: str = "input") -> np.ndarray:
    """``value`` as a C-contiguous, aligned, native float32 ndarray: ``value`` itself when it
    already is one (no copy), else a view or copy with the same values in C order.

    Float inputs of other widths (float16, float64, longdouble, torch bfloat16) are converted.
    Integer, boolean, complex, object and string arrays raise TypeError: they are almost always a
    mistake (token ids instead of embeddings, say), and PyTorch refuses them too.
    """
    if is_core_float32(value):
        return value
    array = to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must be a floating-point array, got dtype {array.dtype}")
    # asarray keeps a C-contiguous view even when it is unaligned; a copy is aligned. (Not
    # ascontiguousarray, which turns a 0-d array into a 1-d one.)
    array = np.asarray(array, dtype=_FLOAT32, order="C")
    if not array.flags.aligned:
        array = array.copy()
    return array


def check_finite(array: np.ndarray, what: str = "input") -> None:
    """ValueError when ``array`` holds NaN or infinity (which cannot be quantized)."""
    if array.size and not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinity, which cannot be quantized")


def last_dim(array: np.ndarray, expected: int, what: str = "input") -> None:
    """ValueError unless ``array`` has at least one dimension and its last one is ``expected``."""
    if array.ndim == 0:
        raise ValueError(f"{what} must have at least 1 dimension with {expected} features, got a scalar")
    if array.shape[-1] != expected:
        raise ValueError(
            f"{what} of shape {tuple(array.shape)} has {array.shape[-1]} features in its last dimension, "
            f"expected {expected}"
        )


#: Arrays of at least this many bytes get pages of their own from :func:`fresh_float32`.
_OWN_PAGES_BYTES = 1 << 20


def fresh_float32(shape: Any) -> np.ndarray:
    """A new writable float32 array of zeros. A large one lives in an anonymous mapping of its
    own, so its memory goes back to the system as soon as the array is deleted (glibc's heap
    keeps freed blocks that other allocations pin, which can leave a deleted model resident)."""
    nbytes = 4 * int(np.prod(shape, dtype=np.int64))
    if nbytes < _OWN_PAGES_BYTES:
        return np.zeros(shape, dtype=np.float32)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.float32).reshape(shape)


def as_row_indices(value: Any, rows: int, what: str, dtype_error: str, range_error: str) -> np.ndarray:
    """``value`` as a C-contiguous int64 copy of row numbers, each in ``[0, rows)``: TypeError
    unless its dtype is an integer type, IndexError for the first index (in C order) outside (no
    wrap-around). The messages are format strings of ``what``, ``dtype`` (the TypeError), and
    ``what``, ``index``, ``position`` (a tuple), ``rows`` and ``last`` (the IndexError)."""
    array = to_numpy(value)
    if array.dtype.kind not in "iu":
        raise TypeError(dtype_error.format(what=what, dtype=array.dtype))
    if array.size:
        bad = (array < 0) | (array >= rows)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            index = int(array[position])
            raise IndexError(range_error.format(what=what, index=index, position=position, rows=rows, last=rows - 1))
    return np.array(array, dtype=np.int64, order="C")
