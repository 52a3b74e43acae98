"""Turning float weights into the quantized weights a module stores (PyTorch's ``_quantize_weight``)."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ... import _core
from ..._arrays import to_numpy
from ..._file_tensors import FileQTensor
from ..._dtypes import DType, float16, qint8
from ..._tensor import QTensor, quantize_per_channel, quantize_per_tensor
from ..basic import Linear as FloatLinear

FP16_MAX = 65504.0


def float_weight(value: Any, what: str) -> np.ndarray:
    """A float32 copy of a weight; NaN or infinity is a ValueError (it has no quantized value)."""
    array = to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must be a floating-point array, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float32, order="C", copy=True)
    if array.size and not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinity; it cannot be quantized")
    return array


def float_bias(value: Any, out_features: int, what: str) -> Optional[np.ndarray]:
    """A float32 copy of a bias of shape ``(out_features,)``, or None. NaN or infinity is a
    ValueError: it would reach every output of its feature."""
    if value is None:
        return None
    array = to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must be a floating-point array, got dtype {array.dtype}")
    if array.shape != (out_features,):
        raise ValueError(f"{what} must have shape ({out_features},), got {tuple(array.shape)}")
    array = np.array(array, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinity (in float32)")
    return array


def float_linear_params(mod: Any, owner: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The float weight and bias of a Linear-like module (a ``ferroq.nn.Linear``, or a torch
    ``nn.Linear`` read through its ``weight``/``bias``), checked; ``owner`` names the caller in the
    TypeError for anything else."""
    if isinstance(mod, FloatLinear):
        weight, bias = mod.weight, mod.bias
    elif type(mod).__name__ in ("Linear", "NonDynamicallyQuantizableLinear") and hasattr(mod, "weight"):
        weight, bias = mod.weight, getattr(mod, "bias", None)
    else:
        raise TypeError(
            f"{owner}.from_float expects a float Linear (ferroq.nn.Linear or torch.nn.Linear), got {type(mod).__name__}"
        )
    w = float_weight(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"a Linear weight must be 2-D (out_features, in_features), got shape {w.shape}")
    b = float_bias(None if bias is None else to_numpy(bias), w.shape[0], "bias")
    return w, b


def quantize_weight(weight: np.ndarray, observer: Any, observe: bool = True) -> QTensor:
    """Observes ``weight`` (unless ``observe`` is False: the observer already holds its statistics)
    and quantizes it with the qparams the observer chooses; integers are clamped to the observer's
    custom range when it has one (PyTorch's ``_clamp_weights``)."""
    if observe:
        observer(weight)
    scale, zero_point = observer.calculate_qparams()
    if observer.dtype is not qint8:
        raise ValueError(f"weight observer must have dtype ferroq.qint8, got {observer.dtype!r}")
    if observer.qscheme.is_per_channel:
        q = quantize_per_channel(weight, scale.astype(np.float64), zero_point.astype(np.int64), observer.ch_axis, qint8)
    else:
        q = quantize_per_tensor(weight, float(scale), int(zero_point), qint8)
    if getattr(observer, "has_customized_qrange", False):
        clamped = np.clip(q.int_repr(), observer.quant_min, observer.quant_max).astype(np.int8)
        if q.qscheme().is_per_channel:
            q = QTensor.from_int_repr(clamped, q.q_per_channel_scales(), q.q_per_channel_zero_points(), q.q_per_channel_axis())
        else:
            q = QTensor.from_int_repr(clamped, q.q_scale(), q.q_zero_point())
    return q


def to_fp16(weight: np.ndarray, what: str) -> np.ndarray:
    """float16 weights: saturated to +-65504 first (PyTorch warns, and so do we; the caller's array
    is never modified), then rounded to nearest even."""
    if weight.size and np.abs(weight).max() > FP16_MAX:
        warnings.warn(
            f"FOUND weight out of range in {what}: values beyond +-65504 are saturated for float16", stacklevel=3
        )
    return np.clip(weight, -FP16_MAX, FP16_MAX).astype(np.float16)


#: A qint8 weight's qparams without its integers: ``(scale, zero_point, scales, zero_points, axis)``
#: as a :class:`~ferroq.QTensor` holds them (per tensor: the first two; per channel: the rest).
QParams = Tuple[Optional[float], Optional[int], Optional[np.ndarray], Optional[np.ndarray], Optional[int]]


def qparams_of(q: QTensor) -> QParams:
    """The qparams of ``q``, to keep beside its packed integers."""
    return (q._scale, q._zero_point, q._scales, q._zero_points, q._axis)


def qtensor_from(values: np.ndarray, qparams: QParams, dtype: DType = qint8) -> QTensor:
    """A QTensor of ``dtype`` owning ``values`` (a new C-contiguous array of that dtype's integers,
    e.g. unpacked from a packed weight) with ``qparams`` as taken by :func:`qparams_of` (already
    checked): no copy, no check."""
    q = object.__new__(QTensor)
    q._int, q._dtype = values, dtype
    q._scale, q._zero_point, q._scales, q._zero_points, q._axis = qparams
    return q


def pack_dynamic(weight: Any, bias: Optional[np.ndarray], reduce_range: bool, gates: int = 1) -> Any:
    """The dynamic kernels' packed form of a checked weight matrix, quantizing its inputs with
    ``reduce_range``: a ``_core.PackedLinear`` for a qint8 QTensor (per tensor, or per row;
    ``gates`` > 1 for a recurrent layer's gate matrix, whose column blocks then never straddle a
    gate), a ``_core.PackedLinearFp16`` for a float16 array. The integers of a QTensor still in a
    model file (:class:`~ferroq._file_tensors.FileQTensor`) are read straight into the packed
    layout."""
    if not isinstance(weight, QTensor):
        return _core.PackedLinearFp16(weight.view(np.uint16), bias, reduce_range=reduce_range)
    q = weight
    scales, zero_points = weight_qparams(q, q.shape[0])
    if isinstance(q, FileQTensor):
        file, start, (n, k) = q.source()
        return _core.PackedLinear.from_file(file, start, n, k, scales, zero_points, bias, reduce_range=reduce_range, gates=gates)
    return _core.PackedLinear(q._int, scales, zero_points, bias, reduce_range=reduce_range, gates=gates)


def pack_static(q: QTensor, scales: np.ndarray, zero_points: np.ndarray, per_channel: bool, bias: Optional[np.ndarray]) -> Any:
    """The static kernels' packed form of the qint8 matrix ``q`` (a ``_core.PackedStaticLinear``),
    read straight from the model file as :func:`pack_dynamic` does."""
    if isinstance(q, FileQTensor):
        file, start, (n, k) = q.source()
        return _core.PackedStaticLinear.from_file(file, start, n, k, scales, zero_points, per_channel, bias)
    return _core.PackedStaticLinear(q._int, scales, zero_points, per_channel, bias)


def weight_qparams(q: QTensor, out_features: int) -> Tuple[np.ndarray, np.ndarray]:
    """float32 scales and int32 zero points as the kernel takes them (1 or ``out_features`` entries)."""
    if q.qscheme().is_per_channel:
        if q.q_per_channel_axis() != 0:
            raise NotImplementedError(f"per-channel weights must be quantized along axis 0, got axis {q.q_per_channel_axis()}")
        return q.q_per_channel_scales().astype(np.float32), q.q_per_channel_zero_points().astype(np.int32)
    return np.array([q.q_scale()], dtype=np.float32), np.array([q.q_zero_point()], dtype=np.int32)


#: The state-dict keys of a quantized Linear, dynamic or static (docs/numerics.md §2.4), after the prefix.
LINEAR_STATE_KEYS = ("scale", "zero_point", "_packed_params.dtype", "_packed_params._packed_params")


def save_linear_state(
    destination: Dict[str, Any], prefix: str, scale: float, zero_point: int, dtype: DType, weight: Any, bias: Any
) -> None:
    """Writes a quantized Linear's state under PyTorch's keys (docs/numerics.md §2.4)."""
    destination[prefix + "scale"] = np.asarray(scale, dtype=np.float32)
    destination[prefix + "zero_point"] = np.asarray(zero_point, dtype=np.int64)
    destination[prefix + "_packed_params.dtype"] = dtype
    destination[prefix + "_packed_params._packed_params"] = (weight, bias)


def observer_dtype(observer: Any) -> DType:
    """The dtype a weight observer asks for; only qint8 and float16 have dynamic kernels."""
    dtype = observer.dtype
    if dtype is not qint8 and dtype is not float16:
        raise ValueError(f"dynamic quantization supports weight dtypes ferroq.qint8 and ferroq.float16, got {dtype!r}")
    return dtype
