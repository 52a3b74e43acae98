"""Quantized tensors: integer values plus the scale(s) and zero point(s) that give them meaning.

Quantizing follows PyTorch on x86 (docs/numerics.md §1.1): ``q = clamp(rne(x * (1/scale)) + zero_point)``,
with the reciprocal taken in float32 and the product rounded half to even.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _core
from ._arrays import as_float32, check_finite, to_numpy
from ._dtypes import (
    DType,
    QScheme,
    as_dtype,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_tensor_affine,
    qint8,
    quint4x2,
    quint8,
)

__all__ = ["QTensor", "quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic", "dequantize"]


def _quantized_dtype(dtype: Any) -> DType:
    dt = as_dtype(dtype)
    if not dt.is_quantized:
        raise TypeError(f"expected a quantized dtype (ferroq.qint8, ferroq.quint8 or ferroq.quint4x2), got {dt!r}")
    return dt


#: The smallest positive normal float32: a smaller scale has no finite float32 reciprocal.
_FLOAT32_TINY = np.float32(np.finfo(np.float32).tiny)


def _check_scale(scale: Any) -> float:
    """``scale`` as a Python float, refused (ValueError) unless it is a positive normal float32:
    the kernels use ``float32(scale)`` and its float32 reciprocal, so a scale that rounds to 0 or
    infinity in float32 (1e-50, 1e39), or whose reciprocal overflows (a subnormal), has no
    meaningful quantized values. Observers never choose such scales (they clamp to float32 eps)."""
    value = float(scale)
    with np.errstate(over="ignore"):
        as_f32 = np.float32(value)
    if not (np.isfinite(as_f32) and as_f32 >= _FLOAT32_TINY):
        raise ValueError(f"scale must be positive, finite and a normal float32 (at least {_FLOAT32_TINY:.8g}), got {value}")
    return value


def _integer(value: Any, what: str) -> int:
    """``value`` as an int: a Python or numpy integer, or a one-element integer array (a 0-d
    torch tensor, say). TypeError for anything else: a float zero point such as 66.7 would be
    silently truncated."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    array = to_numpy(value)
    if array.dtype.kind in "iu" and array.size == 1:
        return int(array.reshape(()))
    raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")


def _integer_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D int64 array; TypeError unless they are integers (floats would be
    truncated)."""
    array = to_numpy(values)
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{what} holds {array.max()}, beyond int64")
    return array.astype(np.int64).reshape(-1)


def _check_channel_qparams(scales: np.ndarray, zero_points: np.ndarray, dtype: DType) -> None:
    """:func:`_check_scale` and :func:`_check_zero_point` over per-channel arrays (float64
    scales, int64 zero points), vectorised; the first offending entry is reported."""
    with np.errstate(over="ignore"):
        as_f32 = scales.astype(np.float32)
    bad_scales = ~(np.isfinite(as_f32) & (as_f32 >= _FLOAT32_TINY))
    if bad_scales.any():
        _check_scale(scales[bad_scales][0])
    assert dtype.qmin is not None and dtype.qmax is not None
    bad_zero_points = (zero_points < dtype.qmin) | (zero_points > dtype.qmax)
    if bad_zero_points.any():
        _check_zero_point(zero_points[bad_zero_points][0], dtype)


def _check_zero_point(zero_point: Any, dtype: DType) -> int:
    """``zero_point`` as an int in ``dtype``'s range: TypeError unless it is an integer,
    ValueError outside the range."""
    zero_point = _integer(zero_point, "zero_point")
    assert dtype.qmin is not None and dtype.qmax is not None
    if not dtype.qmin <= zero_point <= dtype.qmax:
        raise ValueError(f"zero_point must be between {dtype.qmin} and {dtype.qmax} for {dtype!r}, got {zero_point}")
    return zero_point


def _round_and_clamp(x: np.ndarray, inv_scale: Any, zero_point: Any, dtype: DType) -> np.ndarray:
    """The shared quantization formula; ``inv_scale`` and ``zero_point`` broadcast against ``x``."""
    q = np.rint(x * inv_scale) + np.asarray(zero_point, dtype=np.float32)
    return np.clip(q, dtype.qmin, dtype.qmax).astype(dtype.numpy_dtype)


class QTensor:
    """A quantized tensor: ``real = scale * (int_repr - zero_point)``, per tensor or per channel.

    Create one with :func:`quantize_per_tensor`, :func:`quantize_per_channel`,
    :func:`quantize_per_tensor_dynamic`, or from existing integers with :meth:`from_int_repr`.
    """

    __slots__ = ("_int", "_dtype", "_scale", "_zero_point", "_scales", "_zero_points", "_axis")
    _int: np.ndarray
    _dtype: DType
    _scale: Optional[float]
    _zero_point: Optional[int]
    _scales: Optional[np.ndarray]
    _zero_points: Optional[np.ndarray]
    _axis: Optional[int]

    def __init__(self) -> None:
        raise TypeError("QTensor is created by ferroq.quantize_per_tensor(...), quantize_per_channel(...) or QTensor.from_int_repr(...)")

    @classmethod
    def from_int_repr(
        cls,
        int_repr: Any,
        scale: Union[float, Any],
        zero_point: Union[int, Any],
        axis: Optional[int] = None,
        dtype: Any = None,
    ) -> "QTensor":
        """Wraps integers that are already quantized. The dtype follows the array (int8 is qint8,
        uint8 is quint8) unless ``dtype`` says ``quint4x2``: then ``int_repr`` holds the unpacked
        values 0..15, one per element, in the tensor's shape. With ``axis``, ``scale`` and
        ``zero_point`` are per-channel sequences; floating-point zero points (as an array of a
        float dtype) make a ``per_channel_affine_float_qparams`` tensor, as in PyTorch."""
        return cls._from_values(np.array(to_numpy(int_repr), copy=True, order="C"), scale, zero_point, axis, dtype)

    @classmethod
    def _adopt(cls, int_repr: np.ndarray, scale: Any, zero_point: Any, axis: Optional[int] = None, dtype: Any = None) -> "QTensor":
        """:meth:`from_int_repr` without the copy when ``int_repr`` is already C-contiguous: for an
        array nothing else writes to (the loader's tensors, read-only views of the file's bytes)."""
        return cls._from_values(np.ascontiguousarray(int_repr), scale, zero_point, axis, dtype)

    @classmethod
    def _from_values(cls, values: np.ndarray, scale: Any, zero_point: Any, axis: Optional[int], dtype: Any) -> "QTensor":
        """The checks of :meth:`from_int_repr`; ``values`` (C-contiguous) is kept as it is."""
        if values.dtype == np.int8:
            inferred = qint8
        elif values.dtype == np.uint8:
            inferred = quint8
        else:
            raise TypeError(f"int_repr must be an int8 (qint8) or uint8 (quint8, quint4x2) array, got dtype {values.dtype}")
        dtype = inferred if dtype is None else as_dtype(dtype)
        if dtype is not inferred and not (dtype is quint4x2 and inferred is quint8):
            raise TypeError(f"int_repr of dtype {values.dtype} cannot hold {dtype!r} values")
        if dtype is quint4x2 and values.size and int(values.max()) > 15:
            raise ValueError(f"quint4x2 values must lie in 0..15, got {int(values.max())}")
        self = object.__new__(cls)
        self._int = values
        self._dtype = dtype
        if axis is None:
            self._scale = _check_scale(scale)
            self._zero_point = _check_zero_point(zero_point, dtype)
            self._scales = self._zero_points = self._axis = None
        else:
            scales, zero_points = _per_channel_qparams(scale, zero_point, dtype)
            axis = _channel_axis(axis, values, scales, zero_points, dtype, "a per-channel QTensor")
            self._scales, self._zero_points, self._axis = scales, zero_points, axis
            self._scale = self._zero_point = None
        return self

    # -- properties --------------------------------------------------------------------------

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self._int.shape)

    @property
    def ndim(self) -> int:
        return self._int.ndim

    def __len__(self) -> int:
        if self._int.ndim == 0:
            raise TypeError("len() of a 0-d QTensor")
        return len(self._int)

    def qscheme(self) -> QScheme:
        """``per_tensor_affine``, ``per_channel_affine`` (also for symmetric observers, as PyTorch
        reports) or ``per_channel_affine_float_qparams`` (float zero points)."""
        if self._axis is None:
            return per_tensor_affine
        return per_channel_affine_float_qparams if self._has_float_zero_points() else per_channel_affine

    def _has_float_zero_points(self) -> bool:
        return self._zero_points is not None and self._zero_points.dtype.kind == "f"

    def int_repr(self) -> np.ndarray:
        """A copy of the stored integers (int8 for qint8, uint8 for quint8). For quint4x2 it is
        PyTorch's storage: a flat uint8 array of ``ceil(numel / 2)`` bytes, two values per byte,
        the element with the even flat index in the low nibble."""
        if self._dtype is quint4x2:
            return pack_nibbles(self._int.reshape(-1))
        return self._int.copy()

    def _values(self) -> np.ndarray:
        """The integers one per element, in the tensor's shape (quint4x2 unpacked); a copy."""
        return self._int.copy()

    def q_scale(self) -> float:
        self._require_per_tensor("q_scale")
        assert self._scale is not None
        return self._scale

    def q_zero_point(self) -> int:
        self._require_per_tensor("q_zero_point")
        assert self._zero_point is not None
        return self._zero_point

    def q_per_channel_scales(self) -> np.ndarray:
        """float64 scales, or float32 for ``per_channel_affine_float_qparams`` (as PyTorch)."""
        self._require_per_channel("q_per_channel_scales")
        assert self._scales is not None
        return self._scales.copy()

    def q_per_channel_zero_points(self) -> np.ndarray:
        """int64 zero points, or float32 for ``per_channel_affine_float_qparams`` (as PyTorch)."""
        self._require_per_channel("q_per_channel_zero_points")
        assert self._zero_points is not None
        return self._zero_points.copy()

    def q_per_channel_axis(self) -> int:
        self._require_per_channel("q_per_channel_axis")
        assert self._axis is not None
        return self._axis

    def _require_per_tensor(self, method: str) -> None:
        if self._axis is not None:
            raise ValueError(f"{method}() needs a per-tensor QTensor; this one is per channel (use q_per_channel_*)")

    def _require_per_channel(self, method: str) -> None:
        if self._axis is None:
            raise ValueError(f"{method}() needs a per-channel QTensor; this one is per tensor (use q_scale/q_zero_point)")

    def _channel_shape(self) -> Tuple[int, ...]:
        shape = [1] * self._int.ndim
        assert self._axis is not None
        shape[self._axis] = -1
        return tuple(shape)

    def dequantize(self) -> np.ndarray:
        """``(int_repr - zero_point) * scale`` in float32, as a new array."""
        values = self._int.astype(np.float32)
        if self._axis is None:
            return (values - np.float32(self._zero_point)) * np.float32(self._scale)
        assert self._zero_points is not None and self._scales is not None
        zp = self._zero_points.astype(np.float32).reshape(self._channel_shape())
        scale = self._scales.astype(np.float32).reshape(self._channel_shape())
        return (values - zp) * scale

    # -- protocol ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        if self._axis is None:
            qparams = f"scale={self._scale}, zero_point={self._zero_point}"
        else:
            assert self._scales is not None and self._zero_points is not None
            scales = np.array2string(self._scales, threshold=6)
            qparams = f"axis={self._axis}, scales={scales}, zero_points={np.array2string(self._zero_points, threshold=6)}"
        values = np.array2string(self.dequantize(), threshold=20, edgeitems=3)
        return f"QTensor({values}, shape={self.shape}, dtype={self._dtype!r}, qscheme={self.qscheme()!r}, {qparams})"

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict) -> None:
        """Unpickling: the state is checked exactly as :meth:`from_int_repr` checks its arguments
        (a tampered pickle cannot smuggle in a zero point of 300 or a scale of 0)."""
        if not isinstance(state, dict) or set(state) != set(self.__slots__):
            raise ValueError(f"a QTensor state must be a dict with the keys {sorted(self.__slots__)}")
        try:
            dtype = _quantized_dtype(state["_dtype"])
        except TypeError as e:
            raise ValueError(f"a QTensor state has no quantized dtype: {e}") from None
        held = getattr(state["_int"], "dtype", None)
        if held in (np.int8, np.uint8) and held != (np.int8 if dtype is qint8 else np.uint8):
            raise ValueError(f"a QTensor state says dtype {dtype!r} but holds {held} integers")
        if state["_axis"] is None:
            checked = QTensor.from_int_repr(state["_int"], state["_scale"], state["_zero_point"], dtype=dtype)
        else:
            checked = QTensor.from_int_repr(state["_int"], state["_scales"], state["_zero_points"], state["_axis"], dtype)
        for name in self.__slots__:
            object.__setattr__(self, name, getattr(checked, name))

    def __reduce__(self) -> Any:
        return (_new_empty_qtensor, (), self.__getstate__())

    def _same_as(self, other: "QTensor") -> bool:
        """True when both hold the same integers and qparams (used by tests and state-dict checks)."""
        if self._dtype is not other._dtype or self._axis != other._axis or self.shape != other.shape:
            return False
        if self.qscheme() is not other.qscheme():
            return False
        if not np.array_equal(self._int, other._int):
            return False
        if self._axis is None:
            return self._scale == other._scale and self._zero_point == other._zero_point
        assert self._scales is not None and self._zero_points is not None
        assert other._scales is not None and other._zero_points is not None
        return bool(np.array_equal(self._scales, other._scales) and np.array_equal(self._zero_points, other._zero_points))


def _new_empty_qtensor() -> QTensor:
    return object.__new__(QTensor)


def pack_nibbles(values: np.ndarray) -> np.ndarray:
    """4-bit values (uint8, 0..15) two per byte, low nibble first, as PyTorch stores quint4x2."""
    flat = np.asarray(values, dtype=np.uint8).reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)


def unpack_nibbles(packed: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` 4-bit values of PyTorch's quint4x2 storage, one per uint8."""
    packed = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if packed.size * 2 < count:
        raise ValueError(f"{packed.size} bytes hold {packed.size * 2} 4-bit values, expected {count}")
    return np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1)[:count].copy()


def _per_channel_qparams(scale: Any, zero_point: Any, dtype: DType) -> Tuple[np.ndarray, np.ndarray]:
    """float64 scales and int64 zero points; for quint8/quint4x2 with floating-point zero points,
    float32 both (PyTorch's per-channel float qparams, used by the quantized embeddings). Integer
    dtypes other than those refuse float zero points (they would be truncated)."""
    zero_points = np.asarray(to_numpy(zero_point)).reshape(-1)
    if zero_points.dtype.kind == "f" and dtype in (quint8, quint4x2):
        return np.asarray(to_numpy(scale), dtype=np.float32).reshape(-1), zero_points.astype(np.float32)
    return np.asarray(to_numpy(scale), dtype=np.float64).reshape(-1), _integer_array(zero_point, "zero_points")


def _channel_axis(axis: Any, values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, dtype: DType, owner: str) -> int:
    """``axis`` in ``0..values.ndim-1`` for the per-channel ``scales`` and ``zero_points`` of
    ``values`` (one of each per index along it, checked by :func:`_check_per_channel_qparams`);
    ValueError, its message starting with ``owner`` for a 0-D ``values``, otherwise."""
    if values.ndim == 0:
        raise ValueError(f"{owner} needs at least 1 dimension")
    axis = int(axis)
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(f"axis {axis} is out of range for {values.ndim} dimensions")
    axis %= values.ndim
    channels = values.shape[axis]
    if scales.shape != (channels,) or zero_points.shape != (channels,):
        raise ValueError(
            f"expected {channels} scales and zero points along axis {axis} of shape {values.shape}, "
            f"got {scales.size} scales and {zero_points.size} zero points"
        )
    _check_per_channel_qparams(scales, zero_points, dtype)
    return axis


def _check_per_channel_qparams(scales: np.ndarray, zero_points: np.ndarray, dtype: DType) -> None:
    """Integer zero points: :func:`_check_channel_qparams`; float zero points: valid scales and
    finite zero points."""
    if zero_points.dtype.kind != "f":
        _check_channel_qparams(scales, zero_points, dtype)
        return
    for s in scales:
        _check_scale(s)
    if not np.isfinite(zero_points).all():
        raise ValueError("float zero points must be finite")


def quantize_per_tensor(x: Any, scale: float, zero_point: int, dtype: Any) -> QTensor:
    """Quantizes ``x`` with one scale and zero point. NaN or infinity in ``x`` raises ValueError."""
    dt = _quantized_dtype(dtype)
    scale = _check_scale(scale)
    zero_point = _check_zero_point(zero_point, dt)
    values = as_float32(x)
    check_finite(values)
    inv_scale = np.float32(1.0) / np.float32(scale)
    return QTensor.from_int_repr(_round_and_clamp(values, inv_scale, zero_point, dt), scale, zero_point, dtype=dt)


def quantize_per_channel(x: Any, scales: Any, zero_points: Any, axis: int, dtype: Any) -> QTensor:
    """Quantizes ``x`` with one scale and zero point per index along ``axis``. Float zero points
    (an array of a float dtype) give ``per_channel_affine_float_qparams``:
    ``q = clamp(rint(x * (1 / scale) + zero_point))`` in float32, as PyTorch's embeddings use."""
    dt = _quantized_dtype(dtype)
    values = as_float32(x)
    check_finite(values)
    scales, zero_points = _per_channel_qparams(scales, zero_points, dt)
    axis = _channel_axis(axis, values, scales, zero_points, dt, "quantize_per_channel's input")
    channels = values.shape[axis]
    shape = [1] * values.ndim
    shape[axis] = channels
    inv_scale = (np.float32(1.0) / scales.astype(np.float32)).reshape(shape)
    if zero_points.dtype.kind == "f":
        # float qparams: rint(x * inv_scale + zero_point), each operation rounded to float32.
        q = np.rint((values * inv_scale).astype(np.float32) + zero_points.reshape(shape))
        q = np.clip(q, dt.qmin, dt.qmax).astype(dt.numpy_dtype)
    else:
        q = _round_and_clamp(values, inv_scale, zero_points.reshape(shape), dt)
    return QTensor.from_int_repr(q, scales, zero_points, axis=axis, dtype=dt)


def quantize_per_tensor_dynamic(x: Any, dtype: Any = quint8, reduce_range: bool = False) -> QTensor:
    """Quantizes ``x`` with qparams chosen from its own range, as PyTorch's dynamic ops do
    (ChooseQuantizationParams, docs/numerics.md §1.2)."""
    dt = _quantized_dtype(dtype)
    values = as_float32(x)
    check_finite(values)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    assert dt.qmin is not None and dt.qmax is not None
    scale, zero_point = _core.choose_qparams(lo, hi, dt.qmin, dt.qmax, bool(reduce_range))
    return quantize_per_tensor(values, scale, zero_point, dt)


def dequantize(q: QTensor) -> np.ndarray:
    """The float32 values a :class:`QTensor` stands for."""
    if not isinstance(q, QTensor):
        raise TypeError(f"dequantize expects a QTensor, got {type(q).__name__}")
    return q.dequantize()
