"""Reference quantized modules (PyTorch's ``torch.ao.nn.quantized.reference``): float modules that
carry the qparams of their weight and simulate its quantization. ``from_reference`` of a quantized
module turns them into the real thing."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..._arrays import as_float32, last_dim, to_numpy
from ..._dtypes import (
    DType,
    QScheme,
    as_qscheme,
    per_channel_affine,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    quint8,
)
from ..._tensor import (
    QTensor,
    _check_channel_qparams,
    _integer,
    _integer_array,
    _quantized_dtype,
    quantize_per_channel,
    quantize_per_tensor,
)
from ..basic import Linear as FloatLinear

__all__ = ["Linear"]

#: Symmetric schemes quantize like their affine counterparts once scale and zero point are known.
_AFFINE = {
    per_tensor_affine: per_tensor_affine,
    per_tensor_symmetric: per_tensor_affine,
    per_channel_affine: per_channel_affine,
    per_channel_symmetric: per_channel_affine,
}

#: What PyTorch assumes when no weight qparams are given.
_DEFAULT_WEIGHT_QPARAMS: Dict[str, Any] = {"qscheme": per_tensor_affine, "dtype": quint8, "scale": 1.0, "zero_point": 0}


def _parse_weight_qparams(qparams: Dict[str, Any]) -> Tuple[QScheme, DType, np.ndarray, np.ndarray, int]:
    """``(qscheme, dtype, scale, zero_point, axis)`` from a weight-qparams dict, checked: float32
    scales and int64 zero points, 0-d per tensor; each scale a positive normal float32 and each
    zero point an integer in the dtype's range (ValueError/TypeError otherwise)."""
    try:
        qscheme: QScheme = _AFFINE[as_qscheme(qparams["qscheme"])]
        dtype: DType = _quantized_dtype(qparams["dtype"])
        scale = np.asarray(to_numpy(qparams["scale"]), dtype=np.float64)
        zero_point = _integer_array(qparams["zero_point"], "weight zero_point")
        axis = _integer(qparams["axis"], "weight axis") if qscheme.is_per_channel else 0
    except KeyError as e:
        raise ValueError(f"weight_qparams needs the key {e.args[0]!r}") from None
    _check_channel_qparams(scale.reshape(-1), zero_point, dtype)
    scale = scale.astype(np.float32)
    if qscheme.is_per_channel:
        return qscheme, dtype, scale.reshape(-1), zero_point.reshape(-1), axis
    if scale.size != 1 or zero_point.size != 1:
        raise ValueError(f"per-tensor weight qparams need one scale and one zero point, got {scale.size} and {zero_point.size}")
    return qscheme, dtype, scale.reshape(()), zero_point.reshape(()), axis


class Linear(FloatLinear):
    """A float Linear whose forward uses the quantized-then-dequantized weight:
    ``y = x @ dequant(quant(weight))^T + bias``, in float32.

    ``weight_qparams`` is a dict with ``"qscheme"``, ``"dtype"`` (qint8 or quint8), ``"scale"``,
    ``"zero_point"`` and, per channel, ``"axis"``; symmetric schemes are stored as their affine
    counterparts, as PyTorch's ``get_qparam_dict`` does. The qparams are the attributes
    ``weight_qscheme``, ``weight_dtype``, ``weight_scale`` (float32), ``weight_zero_point``
    (int64) and ``weight_axis``.
    """

    def __init__(
        self, in_features: int, out_features: int, bias_: bool = True, weight_qparams: Optional[Dict[str, Any]] = None
    ) -> None:
        super().__init__(in_features, out_features, bias=bias_)
        parsed = _parse_weight_qparams(_DEFAULT_WEIGHT_QPARAMS if weight_qparams is None else weight_qparams)
        self.weight_qscheme, self.weight_dtype, self.weight_scale, self.weight_zero_point, self.weight_axis = parsed

    def get_quantized_weight(self) -> QTensor:
        """The weight quantized with its qparams."""
        if self.weight_qscheme.is_per_channel:
            return quantize_per_channel(
                self.weight, self.weight_scale.astype(np.float64), self.weight_zero_point, self.weight_axis, self.weight_dtype
            )
        return quantize_per_tensor(self.weight, float(self.weight_scale), int(self.weight_zero_point), self.weight_dtype)

    def get_weight(self) -> np.ndarray:
        """The weight after quantization and dequantization (what the quantized module computes with)."""
        return self.get_quantized_weight().dequantize()

    def forward(self, x: Any) -> np.ndarray:
        x = as_float32(x)
        last_dim(x, self.in_features)
        y = np.matmul(x, self.get_weight().T)
        if self.bias is not None:
            y += self.bias
        return np.ascontiguousarray(y, dtype=np.float32)

    @classmethod
    def from_float(cls, float_linear: Any, weight_qparams: Dict[str, Any]) -> "Linear":
        """A reference Linear with a copy of ``float_linear``'s weight and bias."""
        module = cls(
            float_linear.in_features, float_linear.out_features, float_linear.bias is not None, weight_qparams=weight_qparams
        )
        module.weight = float_linear.weight
        if float_linear.bias is not None:
            module.bias = float_linear.bias
        return module

    # -- state -------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        super()._save_to_state_dict(destination, prefix)
        destination[prefix + "weight_scale"] = self.weight_scale.copy()
        destination[prefix + "weight_zero_point"] = self.weight_zero_point.copy()
        destination[prefix + "weight_axis"] = np.asarray(self.weight_axis, dtype=np.int64)

    def _state_keys(self) -> List[str]:
        return ["weight_scale", "weight_zero_point", "weight_axis"]

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        candidate = {"qscheme": self.weight_qscheme, "dtype": self.weight_dtype}
        candidate.update(zip(("scale", "zero_point", "axis"), values.values()))
        _, _, scale, zero_point, axis = _parse_weight_qparams(candidate)

        def update() -> None:
            self.weight_scale, self.weight_zero_point, self.weight_axis = scale, zero_point, axis

        return update

    def _get_name(self) -> str:
        return "QuantizedLinear(Reference)"
