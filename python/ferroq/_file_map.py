"""A model file mapped read-only for :func:`ferroq.load`: its tensors as arrays over the mapping
(nothing copied), and the release of their pages once a module has packed them.

Pages of a file mapping count in a process's resident memory while they are mapped. Without the
release, loading would hold the whole file resident beside the packed weights until the end;
with it, only the tensor being packed is. Released pages stay in the operating system's page
cache, and reading them again simply maps them again: no value ever changes.
"""

from __future__ import annotations

import mmap
import os
from typing import Tuple

import numpy as np


class FileMap(mmap.mmap):
    """A read-only shared mapping of a whole file; a type of its own, so that
    :func:`release_pages` can never touch any other mapping (dropping the pages of a private
    copy-on-write mapping would lose its changes)."""


def map_file(path: str) -> FileMap:
    """``path`` mapped read-only (OSError subclasses for a path that cannot be read)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError(f"{path} is empty (was it changed while being loaded?)")
        return FileMap(f.fileno(), 0, access=mmap.ACCESS_READ)


def tensor_view(file_map: FileMap, dtype: np.dtype, shape: Tuple[int, ...], start: int, end: int, what: str) -> np.ndarray:
    """The read-only array of ``dtype`` and ``shape`` whose bytes are ``start:end`` of the file."""
    if not 0 <= start <= end <= len(file_map) or (end - start) % dtype.itemsize:
        raise ValueError(f"{what} lies outside the file (was it changed while being loaded?)")
    return np.frombuffer(file_map, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start).reshape(shape)


def release_pages(array: np.ndarray) -> None:
    """Drops the pages under ``array`` from this process's resident memory when it is a
    C-contiguous view of a :class:`FileMap`; does nothing for any other array."""
    base = array.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # what np.frombuffer holds
        base = base.obj
    if not isinstance(base, FileMap) or array.nbytes == 0 or not array.flags.c_contiguous or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start = array.ctypes.data - np.frombuffer(base, dtype=np.uint8, count=1).ctypes.data
    first = start - start % mmap.PAGESIZE
    base.madvise(mmap.MADV_DONTNEED, first, start + array.nbytes - first)
