"""``LayerNorm`` with PyTorch's arguments, parameters, state-dict keys and repr.

The statistics and the normalisation are computed in float64 and rounded once to float32, so the
result is within about half an ulp of the exact value of torch's formula; PyTorch's float32 kernel
accumulates in float32 and is within a few ulp of it (docs/float_modules.md).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Tuple

import numpy as np

from .._arrays import as_float32
from ._args import check_factory_kwargs
from .._state_spec import Config, StateSpec, float32
from .module import Module

__all__ = ["LayerNorm"]


def _shape(normalized_shape: Any) -> Tuple[int, ...]:
    items = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 0:
            raise ValueError(f"normalized_shape must be an int or a sequence of non-negative ints, got {normalized_shape!r}")
    return tuple(int(item) for item in items)


class LayerNorm(Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)``
    dimensions (``var`` is the biased variance). ``weight`` starts at ones and ``bias`` at zeros, as
    in torch; with ``elementwise_affine=False`` there are neither, with ``bias=False`` no bias."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype)
        self.normalized_shape = _shape(normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        affine = self.elementwise_affine
        self.register_parameter("weight", np.ones(self.normalized_shape, np.float32) if affine else None)
        self.register_parameter("bias", np.zeros(self.normalized_shape, np.float32) if affine and bias else None)

    def forward(self, input: Any) -> np.ndarray:
        x = as_float32(input)
        count = len(self.normalized_shape)
        if x.ndim < count or x.shape[x.ndim - count :] != self.normalized_shape:
            raise ValueError(
                f"Given normalized_shape={list(self.normalized_shape)}, expected input with shape "
                f"[*, {', '.join(map(str, self.normalized_shape))}], but got input of size {list(x.shape)}"
            )
        axes = tuple(range(x.ndim - count, x.ndim))
        wide = x.astype(np.float64)
        mean = wide.mean(axis=axes, keepdims=True) if wide.size else wide
        centred = wide - mean
        variance = (centred * centred).mean(axis=axes, keepdims=True) if wide.size else wide
        # torch adds eps in float32, as its kernel's accumulation type is float.
        y = centred / np.sqrt(variance + float(np.float32(self.eps)))
        if self.weight is not None:
            y = y * self.weight.astype(np.float64)
        if self.bias is not None:
            y = y + self.bias.astype(np.float64)
        return np.asarray(y, dtype=np.float32, order="C")

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )

    def _config(self) -> Dict[str, Any]:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias is not None or not self.elementwise_affine,
        }

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        shape = config.sizes("normalized_shape")
        config.number("eps", -math.inf, math.inf)
        affine, bias = config.flag("elementwise_affine"), config.flag("bias")
        config.finish()
        if not affine:
            return {}
        spec: StateSpec = {"weight": float32(*shape)}
        if bias:
            spec["bias"] = float32(*shape)
        return spec
