"""``Flatten``: PyTorch's ``torch.flatten(input, start_dim, end_dim)`` as a module."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._arrays import as_float32
from ._args import wrap_dim
from .._state_spec import MAX_SIZE, Config
from .module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Merges dimensions ``start_dim`` to ``end_dim`` (inclusive, negative counting from the end)
    into one. A 0-d input becomes 1-d; a dim outside the input's range is an IndexError, as in torch."""

    _options = {
        "start_dim": (Config.integer, -MAX_SIZE, MAX_SIZE),
        "end_dim": (Config.integer, -MAX_SIZE, MAX_SIZE),
    }

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> np.ndarray:
        x = as_float32(input)
        start, end = wrap_dim(self.start_dim, x.ndim), wrap_dim(self.end_dim, x.ndim)
        if x.ndim == 0:
            return x.reshape(1).copy()
        if start > end:
            raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :]
        return np.array(x.reshape(shape), dtype=np.float32, order="C", copy=True)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
