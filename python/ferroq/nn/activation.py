"""Float activations with PyTorch's names, arguments and reprs: ``Tanh``, ``Sigmoid``, ``SiLU``,
``GELU``, ``Softmax``, ``LogSoftmax``, ``Hardtanh``, ``ReLU6`` and ``LeakyReLU``.

Inputs of any shape (unbatched too) are converted to float32; outputs are new float32 arrays.
Clamping activations (``Hardtanh``, ``ReLU6``, ``LeakyReLU``) are exact float32 operations and equal
PyTorch's bit for bit. The transcendental ones (``Tanh``, ``Sigmoid``, ``SiLU``, ``GELU``,
``Softmax``, ``LogSoftmax``) are evaluated in float64 and rounded once to float32, so each result is
within about half an ulp of the exact value; PyTorch's float32 kernels are within a few ulp of it, so
the two agree to float32 rounding (docs/float_modules.md gives the tolerance and the reasons).
``inplace=`` is accepted for signature compatibility and shown in the repr, but ferroq never
writes into its input: it always returns a new array.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._arrays import as_float32
from ._args import wrap_dim
from .._state_spec import MAX_SIZE, Config
from .module import Module

__all__ = ["Tanh", "Sigmoid", "SiLU", "GELU", "Softmax", "LogSoftmax", "Hardtanh", "ReLU6", "LeakyReLU"]

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _wide(x: Any) -> np.ndarray:
    """The input as float32 (the module's input type), widened to float64 for the math."""
    return as_float32(x).astype(np.float64)


def _narrow(y: Any) -> np.ndarray:
    """A float32 C-contiguous ndarray (0-d stays 0-d, and a numpy scalar becomes a 0-d array)."""
    return np.asarray(y, dtype=np.float32, order="C")


def _inplace_suffix(inplace: bool) -> str:
    return ", inplace=True" if inplace else ""


class Tanh(Module):
    """``tanh(x)``, elementwise."""

    def forward(self, input: Any) -> np.ndarray:
        return _narrow(np.tanh(_wide(input)))


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``, elementwise (0 below about -745 in float64, never NaN for finite x)."""

    def forward(self, input: Any) -> np.ndarray:
        x = _wide(input)
        with np.errstate(over="ignore"):
            return _narrow(1.0 / (1.0 + np.exp(-x)))


class _InplaceOnly:
    """The repr and options of an activation whose only argument is ``inplace`` (accepted and
    shown; ferroq never writes into its input)."""

    inplace: bool
    _options: Dict[str, Tuple[Any, ...]] = {"inplace": (Config.flag,)}

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SiLU(_InplaceOnly, Module):
    """``x * sigmoid(x)`` (swish), elementwise."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: Any) -> np.ndarray:
        x = _wide(input)
        with np.errstate(over="ignore"):
            return _narrow(x / (1.0 + np.exp(-x)))


class GELU(Module):
    """Gaussian error linear unit: ``x * Phi(x)`` with ``approximate="none"`` (``Phi`` the normal
    CDF, through ``erf``), or the tanh approximation
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))`` with ``approximate="tanh"``."""

    _options = {"approximate": (Config.choice, ("none", "tanh"))}

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Any) -> np.ndarray:
        x = _wide(input)
        with np.errstate(over="ignore"):
            if self.approximate == "tanh":
                # 0.5 * (1 + tanh(u)) == 1 / (1 + exp(-2u)): no cancellation for negative u
                inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
                return _narrow(x / (1.0 + np.exp(-2.0 * inner)))
            # Phi(x) == 0.5 * erfc(-x / sqrt(2)): no cancellation for negative x
            return _narrow(x * 0.5 * np.asarray(_erfc(x * (-1.0 / math.sqrt(2.0))), dtype=np.float64))

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


def _softmax_dim(name: str, dim: Optional[int], ndim: int) -> int:
    """torch's choice when ``dim`` is None (0 for 0-, 1- and 3-d input, else 1; deprecated, with
    torch's warning), else ``dim`` wrapped."""
    if dim is None:
        warnings.warn(
            f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
            UserWarning,
            stacklevel=3,
        )
        dim = 0 if ndim in (0, 1, 3) else 1
    return wrap_dim(dim, ndim)


class _SoftmaxBase(Module):
    """What Softmax and LogSoftmax share: ``dim``, the float64 shift by the maximum and the sum of
    exponentials; a subclass combines the two in :meth:`_combine`."""

    _name = ""
    _options = {"dim": (Config.optional_integer, -MAX_SIZE, MAX_SIZE)}

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            raise TypeError(f"dim must be an int or None, got {type(dim).__name__}")
        self.dim = None if dim is None else int(dim)

    def _shifted(self, input: Any) -> tuple:
        """``(x - max(x), sum(exp(x - max(x))))`` along the dim, in float64, keeping dims."""
        x = _wide(input)
        dim = _softmax_dim(self._name, self.dim, x.ndim)
        if x.ndim == 0:
            x = x.reshape(1)
        with np.errstate(invalid="ignore", over="ignore"):
            # A row holding +inf, or all -inf, gets inf - inf = NaN everywhere, as in torch.
            shifted = x - (np.max(x, axis=dim, keepdims=True) if x.size else 0.0)
            total = np.sum(np.exp(shifted), axis=dim, keepdims=True)
        return shifted, total

    def forward(self, input: Any) -> np.ndarray:
        shape = np.shape(as_float32(input))
        shifted, total = self._shifted(input)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _narrow(self._combine(shifted, total)).reshape(shape)

    @staticmethod
    def _combine(shifted: np.ndarray, total: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        """The result from :meth:`_shifted`'s two arrays (float64)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """``exp(x) / sum(exp(x))`` along ``dim`` (shifted by the maximum first, as torch does)."""

    _name = "softmax"

    @staticmethod
    def _combine(shifted: np.ndarray, total: np.ndarray) -> np.ndarray:
        return np.exp(shifted) / total


class LogSoftmax(_SoftmaxBase):
    """``x - log(sum(exp(x)))`` along ``dim`` (shifted by the maximum first, as torch does)."""

    _name = "log_softmax"

    @staticmethod
    def _combine(shifted: np.ndarray, total: np.ndarray) -> np.ndarray:
        return shifted - np.log(total)


class Hardtanh(Module):
    """``min(max(x, min_val), max_val)``, elementwise; NaN stays NaN."""

    _options = {
        "min_val": (Config.number, -math.inf, math.inf),
        "max_val": (Config.number, -math.inf, math.inf),
        "inplace": (Config.flag,),
    }

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"Hardtanh needs max_val > min_val, got min_val={min_val}, max_val={max_val}")
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = bool(inplace)

    def forward(self, input: Any) -> np.ndarray:
        x = as_float32(input)
        low, high = np.float32(self.min_val), np.float32(self.max_val)
        # torch's clamp: the input itself unless it lies outside (so -0.0 stays -0.0, NaN stays NaN)
        return _narrow(np.where(x < low, low, np.where(x > high, high, x)))

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_suffix(self.inplace)}"


class ReLU6(_InplaceOnly, Hardtanh):
    """``min(max(x, 0), 6)``, elementwise."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)


class LeakyReLU(Module):
    """``x if x > 0 else x * negative_slope``, elementwise (the slope rounded to float32 first)."""

    _options = {"negative_slope": (Config.number, -math.inf, math.inf), "inplace": (Config.flag,)}

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = bool(inplace)

    def forward(self, input: Any) -> np.ndarray:
        x = as_float32(input)
        return _narrow(np.where(x > 0, x, x * np.float32(self.negative_slope)))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}{_inplace_suffix(self.inplace)}"
