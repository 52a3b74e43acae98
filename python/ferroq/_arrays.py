"""Normalising user input into the arrays the Rust core accepts, with typed errors."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np


def to_numpy(value: Any) -> np.ndarray:
    """An ndarray view or copy of ``value``; torch tensors are detached and moved to the CPU."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_float32(value: Any, what: str = "input") -> np.ndarray:
    """A C-contiguous float32 copy or view of a floating-point array-like.

    Integer, boolean, complex and object arrays raise TypeError: they are almost always a mistake
    (token ids instead of embeddings, say), and PyTorch refuses them too.
    """
    array = to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must be a floating-point array, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float32, order="C")


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
