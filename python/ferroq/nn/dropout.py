"""``Dropout`` with PyTorch's arguments and behaviour in both modes.

In eval mode (every model ``ferroq.load``, ``quantize_dynamic`` and ``from_torch`` of an eval-mode
torch model return) it is the identity and returns its input itself. In training mode it does what
torch does (and what ferroq's float ``LSTM(dropout=)`` does between layers): each element is zeroed
with probability ``p``, the others are scaled by ``1 / (1 - p)``; the random draws come from numpy's
global generator (``np.random.seed``), so they are not torch's draws. Call ``model.eval()`` for
inference, as with torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import as_float32
from .._state_spec import Config
from .module import Module

__all__ = ["Dropout"]


def dropout(x: np.ndarray, p: float) -> np.ndarray:
    """``at::dropout(x, p, train=True)``: each element is zeroed with probability ``p`` (numpy's
    global generator) and the others are scaled by ``1 / (1 - p)``."""
    if p == 1:
        return np.zeros_like(x)
    noise = (np.random.random_sample(x.shape) < 1 - p).astype(np.float32)
    noise /= np.float32(1 - p)
    return x * noise


class Dropout(Module):
    """Identity in eval mode; random zeroing with probability ``p`` in training mode (see the
    module docstring). ``inplace`` is accepted and shown in the repr; ferroq never writes into its
    input."""

    _options = {"p": (Config.number, 0.0, 1.0), "inplace": (Config.flag,)}

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = bool(inplace)

    def forward(self, input: Any) -> Any:
        if not self.training:
            return input
        return dropout(as_float32(input), float(self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
