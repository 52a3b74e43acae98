"""Constructor and call arguments as PyTorch reads them: dims (negative ones count from the end,
a 0-d array has one addressable dimension) and the device/dtype factory arguments."""

from __future__ import annotations

import numbers
from typing import Any


def wrap_dim(dim: Any, ndim: int) -> int:
    """``dim`` in ``[-max(ndim, 1), max(ndim, 1) - 1]`` as a non-negative index (torch's
    ``maybe_wrap_dim``); IndexError outside that range, TypeError for a non-integer."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    size, value = max(ndim, 1), int(dim)
    if not -size <= value < size:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-size}, {size - 1}], but got {value})")
    return value % size


def check_factory_kwargs(device: Any, dtype: Any) -> None:
    """torch's ``device=``/``dtype=`` constructor arguments: ferroq's float modules live on the CPU
    in float32, so anything else is NotImplementedError."""
    if device is not None and str(device) != "cpu":
        raise NotImplementedError(f"ferroq modules run on the CPU only, got device={device!r}")
    if dtype is not None and str(dtype) not in ("float32", "torch.float32", "<class 'numpy.float32'>"):
        raise NotImplementedError(f"ferroq float modules hold float32 parameters only, got dtype={dtype!r}")
