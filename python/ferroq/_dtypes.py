"""Quantized dtypes and quantization schemes, mirroring PyTorch's names.

Every public function that takes a dtype also accepts its name as a string (``"qint8"``) and
PyTorch's dtype objects (``torch.qint8``), without importing torch.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type, TypeVar, Union

import numpy as np

__all__ = [
    "DType",
    "QScheme",
    "qint8",
    "quint8",
    "quint4x2",
    "float16",
    "float32",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
    "as_dtype",
    "as_qscheme",
]


class DType:
    """A tensor element type: a quantized integer type (``qint8``, ``quint8``, ``quint4x2``) or a
    float type. ``quint4x2`` holds unsigned 4-bit values (0..15), two per byte in PyTorch's storage."""

    __slots__ = ("name", "numpy_dtype", "qmin", "qmax")

    def __init__(self, name: str, numpy_dtype: Any, qmin: Optional[int], qmax: Optional[int]) -> None:
        self.name = name
        self.numpy_dtype = np.dtype(numpy_dtype)
        self.qmin = qmin
        self.qmax = qmax

    @property
    def is_quantized(self) -> bool:
        """True for the quantized integer types."""
        return self.qmin is not None

    def __repr__(self) -> str:
        return f"ferroq.{self.name}"

    def __reduce__(self) -> Any:
        return (as_dtype, (self.name,))


class QScheme:
    """How a quantized tensor maps integers to reals: per tensor or per channel, affine or symmetric."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def is_per_channel(self) -> bool:
        return self.name.startswith("per_channel")

    @property
    def is_symmetric(self) -> bool:
        return self.name.endswith("symmetric")

    def __repr__(self) -> str:
        return f"ferroq.{self.name}"

    def __reduce__(self) -> Any:
        return (as_qscheme, (self.name,))


qint8 = DType("qint8", np.int8, -128, 127)
quint8 = DType("quint8", np.uint8, 0, 255)
quint4x2 = DType("quint4x2", np.uint8, 0, 15)
float16 = DType("float16", np.float16, None, None)
float32 = DType("float32", np.float32, None, None)

per_tensor_affine = QScheme("per_tensor_affine")
per_tensor_symmetric = QScheme("per_tensor_symmetric")
per_channel_affine = QScheme("per_channel_affine")
per_channel_symmetric = QScheme("per_channel_symmetric")
#: Per channel with float zero points: ``real = (q - zero_point) * scale`` with a float zero_point
#: (the weight-only quantized embeddings).
per_channel_affine_float_qparams = QScheme("per_channel_affine_float_qparams")

_DTYPES = {d.name: d for d in (qint8, quint8, quint4x2, float16, float32)}
_DTYPES.update({"half": float16, "float": float32})
_QSCHEMES = {
    q.name: q
    for q in (per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)
}


def _plain_name(value: Any) -> Optional[str]:
    """``"qint8"`` for ``"qint8"``, ``"torch.qint8"`` and ``torch.qint8`` alike."""
    if isinstance(value, str):
        text = value
    elif type(value).__module__ == "torch" or type(value).__name__ in ("dtype", "qscheme"):
        text = str(value)
    else:
        return None
    for prefix in ("torch.", "ferroq."):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


_T = TypeVar("_T")


def _lookup(value: Any, kind: Type[_T], table: Dict[str, _T], what: str, examples: str) -> _T:
    """``value`` if it is a ``kind``, else the entry of ``table`` its plain name selects; otherwise
    TypeError saying that a ``what`` (such as ``examples``) was expected."""
    if isinstance(value, kind):
        return value
    name = _plain_name(value)
    if name is not None and name in table:
        return table[name]
    raise TypeError(f"expected a {what} ({examples} or its name), got {value!r}")


def as_dtype(value: Union[DType, str, Any]) -> DType:
    """The :class:`DType` for a ferroq dtype, its name, or a torch dtype. TypeError otherwise."""
    return _lookup(value, DType, _DTYPES, "dtype", "ferroq.qint8, ferroq.quint8, ferroq.float16")


def as_qscheme(value: Union[QScheme, str, Any]) -> QScheme:
    """The :class:`QScheme` for a ferroq qscheme, its name, or a torch qscheme. TypeError otherwise."""
    return _lookup(value, QScheme, _QSCHEMES, "qscheme", "ferroq.per_tensor_affine, ...")
