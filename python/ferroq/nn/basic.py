"""Float building blocks: ``Linear``, ``ReLU``, ``Identity`` and the ``Sequential`` container."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterator, Union, overload

import numpy as np

from .._arrays import as_float32, fresh_float32, last_dim
from .._state_spec import Config, StateSpec, float32
from .._tensor import QTensor
from .module import Module

__all__ = ["Linear", "ReLU", "Identity", "Sequential"]


#: Elements drawn at a time by :func:`uniform`.
_DRAW_CHUNK = 1 << 16


def uniform(shape: Any, bound: float) -> np.ndarray:
    """float32 values drawn from U(-bound, bound) with numpy's global generator (``np.random.seed``),
    the same values as ``np.random.uniform(-bound, bound, size=shape).astype(np.float32)``.

    Drawn in chunks into an array of their own pages (:func:`fresh_float32`): no float64
    temporary of the whole size, and the memory goes back to the system when the model is deleted
    (a large temporary would leave glibc's allocator holding it after the float model is gone)."""
    out = fresh_float32(shape)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _DRAW_CHUNK):
        stop = min(start + _DRAW_CHUNK, flat.size)
        flat[start:stop] = np.random.uniform(-bound, bound, size=stop - start)
    return out


class Linear(Module):
    """``y = x @ weight.T + bias`` in float32; the float reference and the input of ``from_float``.

    Parameters are initialised as ``torch.nn.Linear`` does: U(-1/sqrt(in_features), 1/sqrt(in_features)).
    Inputs of any rank >= 1 whose last dimension is ``in_features``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"in_features and out_features must be >= 0, got {in_features} and {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.register_parameter("weight", uniform((out_features, in_features), bound))
        self.register_parameter("bias", uniform((out_features,), bound) if bias else None)

    def forward(self, x: Any) -> np.ndarray:
        x = as_float32(x)
        last_dim(x, self.in_features)
        y = np.matmul(x, self.weight.T)
        if self.bias is not None:
            y += self.bias
        return np.ascontiguousarray(y, dtype=np.float32)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None}

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        in_features, out_features = config.integer("in_features"), config.integer("out_features")
        spec: StateSpec = {"weight": float32(out_features, in_features)}
        if config.flag("bias", True):
            spec["bias"] = float32(out_features)
        return spec


class ReLU(Module):
    """``max(x, 0)``, elementwise. On a quantized tensor (between static quantized layers) it works
    on the integers, ``max(q, zero_point)``, and keeps the qparams, as PyTorch's quantized relu."""

    def forward(self, x: Any) -> Any:
        if isinstance(x, QTensor):
            if x.qscheme().is_per_channel:
                raise NotImplementedError("ReLU of a per-channel quantized tensor is not supported")
            values = np.maximum(x.int_repr(), np.asarray(x.q_zero_point()).astype(x.int_repr().dtype))
            return QTensor.from_int_repr(values, x.q_scale(), x.q_zero_point())
        return np.maximum(as_float32(x), np.float32(0))


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed layer)."""

    def forward(self, x: Any) -> Any:
        return x


class Sequential(Module):
    """Modules called one after another; children are named "0", "1", ... or by an OrderedDict."""

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self._add(name, module)
        else:
            for index, module in enumerate(modules):
                self._add(str(index), module)

    def _add(self, name: str, module: Any) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes ferroq modules, got {type(module).__name__} for {name!r}")
        setattr(self, name, module)

    def append(self, module: Module) -> "Sequential":
        self._add(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> "Sequential": ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Module, "Sequential"]:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        try:
            return items[index][1]
        except IndexError:
            raise IndexError(f"index {index} is out of range for a Sequential of length {len(self)}") from None

    def __setitem__(self, index: int, module: Module) -> None:
        name = list(self._modules)[index]
        self._add(name, module)
