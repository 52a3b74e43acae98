"""ferroq: int8 quantized neural-network layers for CPU inference, bit-exact with PyTorch.

A torch-free re-implementation of ``torch.ao.nn.quantized.dynamic`` (and the static quantized
Linear) on a Rust core with runtime-selected SIMD kernels. Arrays are numpy.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings

from . import _core
from ._dtypes import (
    DType,
    QScheme,
    float16,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quint4x2,
    quint8,
)
from ._tensor import QTensor, dequantize, quantize_per_channel, quantize_per_tensor, quantize_per_tensor_dynamic
from . import nn, quantization
from ._io import load, save

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "DType",
    "QScheme",
    "qint8",
    "quint8",
    "quint4x2",
    "float16",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
    "QTensor",
    "quantize_per_tensor",
    "quantize_per_channel",
    "quantize_per_tensor_dynamic",
    "dequantize",
    "backend",
    "supported_backends",
    "set_num_threads",
    "get_num_threads",
    "MAX_THREADS",
    "save",
    "load",
    "nn",
    "quantization",
]


def backend() -> str:
    """The kernel path in use: "amx", "avx512vnni", "avxvnni", "avx2", "neon-dotprod", "neon" or "scalar".

    The environment variable ``FERROQ_ISA`` (read once, at import) can lower it, never raise it.
    """
    return _core.backend()


def supported_backends() -> list:
    """Every kernel path this CPU supports, lowest first; each is a valid ``FERROQ_ISA`` value."""
    return list(_core.supported_backends())


#: The most threads one operation may use (``set_num_threads`` refuses more).
MAX_THREADS: int = _core.MAX_THREADS


def set_num_threads(n: int) -> None:
    """Sets how many threads one operation may use: 1 to ``ferroq.MAX_THREADS`` (1024; default: the
    machine's cores). The pool threads start at the first operation large enough to split; a
    process forked from this one keeps the setting and starts its own pool."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads expects a positive number of threads, at most {MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many threads one operation may use."""
    return _core.get_num_threads()


_backend_note = _core.backend_note()
if _os.environ.get("FERROQ_ISA") and _backend_note:
    _warnings.warn(_backend_note, RuntimeWarning, stacklevel=2)
