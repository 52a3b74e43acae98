"""Observers: they watch float tensors and choose quantization parameters from what they saw,
with PyTorch's formulas evaluated in float32 (docs/numerics.md §1.4)."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._arrays import as_float32
from .._tensor import _check_scale, _integer
from .._dtypes import (
    DType,
    QScheme,
    as_dtype,
    as_qscheme,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quint4x2,
    quint8,
)

__all__ = [
    "ObserverBase",
    "MinMaxObserver",
    "PerChannelMinMaxObserver",
    "PlaceholderObserver",
    "calculate_qmin_qmax",
]

#: ``torch.finfo(torch.float32).eps``, the floor of every observer scale.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


class _ObserverFactory:
    """What ``Observer.with_args(...)`` returns: calling it builds an observer with those arguments."""

    def __init__(self, cls: type, kwargs: Dict[str, Any]) -> None:
        self.cls = cls
        self.kwargs = dict(kwargs)

    def __call__(self, **overrides: Any) -> Any:
        return self.cls(**{**self.kwargs, **overrides})

    def with_args(self, **kwargs: Any) -> "_ObserverFactory":
        return _ObserverFactory(self.cls, {**self.kwargs, **kwargs})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.cls.__name__}.with_args({args})"


def calculate_qmin_qmax(
    quant_min: Optional[int], quant_max: Optional[int], dtype: DType, reduce_range: bool
) -> Tuple[int, int]:
    """The integer range an observer quantizes to: the dtype's, or a custom one, halved when
    ``reduce_range`` (PyTorch's ``calculate_qmin_qmax``)."""
    if quant_min is not None and quant_max is not None:
        if reduce_range:
            return quant_min // 2, quant_max // 2
        return quant_min, quant_max
    if dtype is qint8:
        return (-64, 63) if reduce_range else (-128, 127)
    if dtype is quint8:
        return (0, 127) if reduce_range else (0, 255)
    if dtype is quint4x2:
        return 0, 15
    raise ValueError(f"no integer range for dtype {dtype!r}")


class ObserverBase:
    """Base class: ``forward(x)`` records ``x`` and returns it; ``calculate_qparams()`` answers."""

    dtype: DType

    @classmethod
    def with_args(cls, **kwargs: Any) -> _ObserverFactory:
        """A factory that builds this observer with ``kwargs`` (what a :class:`QConfig` holds)."""
        return _ObserverFactory(cls, kwargs)

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def forward(self, x: Any) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def calculate_qparams(self) -> Tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class _UniformObserver(ObserverBase):
    """Shared constructor checks and the qparam formulas of the min/max style observers."""

    _allowed_qschemes: Tuple[QScheme, ...] = ()
    #: The min/max observers refuse symmetric quint8 with ``reduce_range``, as PyTorch's do. The
    #: base class accepts it (so does :class:`HistogramObserver`): the levels are 0..127 and the
    #: zero point stays 128, PyTorch's arithmetic kept as it is.
    _refuses_reduced_symmetric_quint8 = False
    #: The observed range: float32 scalars per tensor, float32 arrays (one entry per channel) per channel.
    min_val: Any
    max_val: Any

    def __init__(
        self,
        dtype: Any = quint8,
        qscheme: Any = per_tensor_affine,
        reduce_range: bool = False,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
    ) -> None:
        self.dtype = as_dtype(dtype)
        self.qscheme = as_qscheme(qscheme)
        if not self.dtype.is_quantized:
            raise ValueError(f"{type(self).__name__} quantizes to qint8, quint8 or quint4x2, got dtype {self.dtype!r}")
        if self.qscheme not in self._allowed_qschemes:
            names = ", ".join(repr(q) for q in self._allowed_qschemes)
            raise NotImplementedError(f"{type(self).__name__} supports the qschemes {names}, got {self.qscheme!r}")
        self.reduce_range = bool(reduce_range)
        quant_min = None if quant_min is None else _integer(quant_min, "quant_min")
        quant_max = None if quant_max is None else _integer(quant_max, "quant_max")
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        if self.has_customized_qrange:
            assert quant_min is not None and quant_max is not None
            if not quant_min <= 0 <= quant_max:
                raise ValueError(f"Used-specified quantization range must include 0, got [{quant_min}, {quant_max}]")
            if quant_max - quant_min + 1 > 256:
                raise ValueError(f"quantization range [{quant_min}, {quant_max}] exceeds the 8-bit range (256 values)")
        self.quant_min = quant_min
        self.quant_max = quant_max
        try:
            _check_scale(eps)
        except ValueError:
            raise ValueError(f"eps, the smallest scale an observer may choose, must be a positive normal float32, got {eps}") from None
        self.eps = np.float32(eps)
        self.is_dynamic = bool(is_dynamic)
        if self._refuses_reduced_symmetric_quint8 and self.qscheme.is_symmetric and self.reduce_range and self.dtype is quint8:
            raise NotImplementedError("Cannot reduce range for symmetric quantization for quint8")
        self.reset_min_max_vals()

    def reset_min_max_vals(self) -> None:
        """Forgets the observed range (an empty range: +inf minimum, -inf maximum)."""
        self.min_val = np.float32(np.inf)
        self.max_val = np.float32(-np.inf)

    def _qparams_from(self, min_val: np.ndarray, max_val: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """PyTorch's ``_calculate_qparams`` over float32 arrays (0-d per tensor, 1-d per channel)."""
        qmin, qmax = calculate_qmin_qmax(self.quant_min, self.quant_max, self.dtype, self.reduce_range)
        if self.qscheme is per_channel_affine_float_qparams:
            # The observed range itself (0 need not be in it): zero_point = -min / scale, a float.
            scale = ((max_val - min_val) / np.float32(qmax - qmin)).astype(np.float32)
            scale = np.where(scale > self.eps, scale, np.float32(1.0)).astype(np.float32)
            return scale, (-min_val / scale).astype(np.float32)
        min_neg = np.minimum(min_val, np.float32(0))
        max_pos = np.maximum(max_val, np.float32(0))
        if self.qscheme.is_symmetric:
            amax = np.maximum(-min_neg, max_pos)
            scale = np.maximum(amax / np.float32((qmax - qmin) / 2), self.eps).astype(np.float32)
            if self.dtype is quint8:
                zp_value = (qmin + qmax) // 2 if self.has_customized_qrange else 128
            else:
                zp_value = 0
            zero_point = np.full(np.shape(scale), zp_value, dtype=np.int64)
        else:
            scale = np.maximum((max_pos - min_neg) / np.float32(qmax - qmin), self.eps).astype(np.float32)
            zero_point = np.int64(qmin) - np.rint(min_neg / scale).astype(np.int64)
            zero_point = np.clip(zero_point, qmin, qmax).astype(np.int64)
        return np.asarray(scale, dtype=np.float32), np.asarray(zero_point, dtype=np.int64)

    def _check_min_max(self, min_val: np.ndarray, max_val: np.ndarray) -> bool:
        """False (with PyTorch's warning) when nothing was observed; ValueError when min > max."""
        if min_val.size == 0 or max_val.size == 0 or (np.all(np.isposinf(min_val)) and np.all(np.isneginf(max_val))):
            warnings.warn(
                "must run observer before calling calculate_qparams. Returning default values.", stacklevel=3
            )
            return False
        bad = ~(min_val <= max_val)
        if np.any(bad):
            lo = np.asarray(min_val)[bad] if min_val.ndim else min_val
            hi = np.asarray(max_val)[bad] if max_val.ndim else max_val
            raise ValueError(
                f"min {np.ravel(lo)[0]} should be less than max {np.ravel(hi)[0]}: the observed tensor holds NaN"
                if np.isnan(np.ravel(lo)[0]) or np.isnan(np.ravel(hi)[0])
                else f"min {np.ravel(lo)[0]} should be less than max {np.ravel(hi)[0]}"
            )
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return f"dtype={self.dtype!r}, qscheme={self.qscheme!r}, reduce_range={self.reduce_range}"


class MinMaxObserver(_UniformObserver):
    """Tracks the running minimum and maximum of everything it sees (the whole tensor)."""

    _allowed_qschemes = (per_tensor_affine, per_tensor_symmetric)
    _refuses_reduced_symmetric_quint8 = True

    def forward(self, x: Any) -> Any:
        values = as_float32(x, "observed tensor")
        if values.size:
            # np.min/np.max propagate NaN, like torch.aminmax; calculate_qparams reports it.
            self.min_val = np.minimum(self.min_val, values.min()).astype(np.float32)
            self.max_val = np.maximum(self.max_val, values.max()).astype(np.float32)
        return x

    def calculate_qparams(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as 0-d float32 and int64 arrays."""
        min_val, max_val = np.asarray(self.min_val), np.asarray(self.max_val)
        if not self._check_min_max(min_val, max_val):
            return np.asarray(1.0, dtype=np.float32), np.asarray(0, dtype=np.int64)
        return self._qparams_from(min_val, max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}, " + super().extra_repr()


class PerChannelMinMaxObserver(_UniformObserver):
    """Tracks the running minimum and maximum of each slice along ``ch_axis`` (one per output
    feature for a Linear weight). With ``qscheme=per_channel_affine_float_qparams`` (embeddings,
    dtype quint8 or quint4x2) each row gets ``scale = (max - min) / (qmax - qmin)`` (1.0 when
    that is not above ``eps``) and the float ``zero_point = -min / scale``."""

    _allowed_qschemes = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)
    _refuses_reduced_symmetric_quint8 = True

    def __init__(
        self,
        ch_axis: int = 0,
        dtype: Any = quint8,
        qscheme: Any = per_channel_affine,
        reduce_range: bool = False,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
    ) -> None:
        super().__init__(
            dtype=dtype, qscheme=qscheme, reduce_range=reduce_range, quant_min=quant_min, quant_max=quant_max, eps=eps, is_dynamic=is_dynamic
        )
        self.ch_axis = int(ch_axis)

    def forward(self, x: Any) -> Any:
        values = as_float32(x, "observed tensor")
        if values.size == 0:
            return x
        if not -values.ndim <= self.ch_axis < values.ndim:
            raise ValueError(f"ch_axis {self.ch_axis} is out of range for a tensor of shape {values.shape}")
        rows = np.moveaxis(values, self.ch_axis, 0).reshape(values.shape[self.ch_axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self.min_val.size == 0:
            self.min_val, self.max_val = lo.astype(np.float32), hi.astype(np.float32)
        elif self.min_val.shape != lo.shape:
            raise ValueError(
                f"PerChannelMinMaxObserver saw {self.min_val.size} channels before, now {lo.size} along axis {self.ch_axis}"
            )
        else:
            self.min_val = np.minimum(self.min_val, lo).astype(np.float32)
            self.max_val = np.maximum(self.max_val, hi).astype(np.float32)
        return x

    def calculate_qparams(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(scales, zero_points)``: 1-d float32 and int64 arrays (float32 zero points for
        ``per_channel_affine_float_qparams``), one entry per channel."""
        if not self._check_min_max(self.min_val, self.max_val):
            return np.ones(1, dtype=np.float32), np.zeros(1, dtype=np.int64)
        return self._qparams_from(self.min_val, self.max_val)

    def reset_min_max_vals(self) -> None:
        """Forgets the observed ranges (no channel seen yet)."""
        self.min_val = np.zeros(0, dtype=np.float32)
        self.max_val = np.zeros(0, dtype=np.float32)

    def extra_repr(self) -> str:
        return f"ch_axis={self.ch_axis}, " + super().extra_repr()


class PlaceholderObserver(ObserverBase):
    """Observes nothing: it only says which dtype a value should have (dynamic activations, float16)."""

    def __init__(
        self,
        dtype: Any = np.float32,
        custom_op_name: str = "",
        compute_dtype: Any = None,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        qscheme: Any = None,
        eps: Optional[float] = None,
        is_dynamic: bool = False,
    ) -> None:
        self.dtype = as_dtype("float32" if dtype is np.float32 else dtype)
        self.qscheme = as_qscheme(qscheme) if qscheme is not None else (per_tensor_affine if self.dtype.is_quantized else None)
        self.custom_op_name = custom_op_name
        self.compute_dtype = compute_dtype
        self.quant_min = quant_min
        self.quant_max = quant_max
        self.eps = eps
        self.is_dynamic = bool(is_dynamic)

    def forward(self, x: Any) -> Any:
        return x

    def calculate_qparams(self) -> Tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("calculate_qparams should not be called for PlaceholderObserver")

    def __repr__(self) -> str:
        return f"PlaceholderObserver(dtype={self.dtype!r}, is_dynamic={self.is_dynamic})"
