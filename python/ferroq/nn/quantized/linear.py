"""``ferroq.nn.quantized.Linear``: the static quantized Linear, quint8 in and quint8 out, int8
weights (docs/numerics.md §3)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ... import _core
from ..._arrays import last_dim, to_numpy
from ..._dtypes import as_dtype, per_channel_affine, per_tensor_affine, qint8, quint8
from ..._state_spec import Array, Config, DTypeName, Items, QWeight, StateSpec, float32, optional_bias
from ..._tensor import QTensor, _check_scale, _integer
from ...quantization.qconfig import QConfig
from ..module import Module
from ._overflow import input_levels, warn_if_accumulator_can_overflow
from ._pickling import PicklesWeights
from ._weights import (
    LINEAR_STATE_KEYS,
    float_bias,
    float_linear_params,
    pack_static,
    qparams_of,
    qtensor_from,
    quantize_weight,
    save_linear_state,
    weight_qparams,
)

__all__ = ["Linear"]

_TORCH_DTYPE_NAMES = {"qint8": "QInt8", "quint8": "QUInt8"}


class Linear(PicklesWeights, Module):
    """A static quantized Linear: ``y_q = quantize(dequant(x_q) @ dequant(W_q)^T + bias)``.

    The input is a quint8 :class:`~ferroq.QTensor` (any rank >= 1, last dimension
    ``in_features``) carrying its own scale and zero point; the output is a quint8 QTensor with
    this module's ``scale`` and ``zero_point``. The weight is an int8 QTensor, per tensor or per
    output feature; the bias stays float32. Outputs are bit-identical to PyTorch's x86
    ``torch.ao.nn.quantized.Linear`` on VNNI CPUs on every CPU: the integer products are exact (no
    int16 pair saturation, which makes PyTorch's own results differ on AVX2-only CPUs for inputs
    above 127).

    Build one with :meth:`from_float` (after ``ferroq.quantization.prepare`` and calibration, or
    simply ``convert``), :meth:`from_reference`, or directly and :meth:`set_weight_bias`.
    """

    _version = 3

    def __init__(self, in_features: int, out_features: int, bias_: bool = True, dtype: Any = qint8) -> None:
        super().__init__()
        if as_dtype(dtype) is not qint8:
            raise NotImplementedError(f"the static quantized Linear supports dtype ferroq.qint8 only, got {as_dtype(dtype)!r}")
        if in_features < 0 or out_features < 0:
            raise ValueError(f"in_features and out_features must be >= 0, got {in_features} and {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.dtype = qint8
        self.scale = 1.0
        self.zero_point = 0
        weight = QTensor.from_int_repr(np.zeros((self.out_features, self.in_features), dtype=np.int8), 1.0, 0)
        self.set_weight_bias(weight, np.zeros(self.out_features, dtype=np.float32) if bias_ else None)
        warn_if_accumulator_can_overflow(self._get_name(), self.in_features, input_levels(False))

    def _config(self) -> Dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias_": self._bias is not None}

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        in_features, out_features = config.integer("in_features"), config.integer("out_features")
        return {
            "scale": float32(),
            "zero_point": Array("I64", ()),
            "_packed_params.dtype": DTypeName("qint8"),
            "_packed_params._packed_params": Items(
                (QWeight((out_features, in_features)), optional_bias(config.flag("bias_", True), out_features))
            ),
        }

    # -- output qparams ----------------------------------------------------------------------

    @property
    def scale(self) -> float:
        """The output scale (a Python float; the kernel uses it as float32)."""
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        object.__setattr__(self, "_scale", _check_scale(value))

    @property
    def zero_point(self) -> int:
        """The output zero point, in 0..255 (quint8)."""
        return self._zero_point

    @zero_point.setter
    def zero_point(self, value: int) -> None:
        zero_point = _integer(value, "zero_point")
        if not 0 <= zero_point <= 255:
            raise ValueError(f"the output zero point must lie in [0, 255] (quint8), got {zero_point}")
        object.__setattr__(self, "_zero_point", zero_point)

    # -- weights -----------------------------------------------------------------------------

    def set_weight_bias(self, weight: Any, bias: Optional[Any]) -> None:
        """Replaces the weight (a qint8 QTensor of shape ``(out_features, in_features)``, per
        tensor or per channel along axis 0) and the float bias (or None). Checks everything before
        changing anything; the caller's arrays are never modified."""
        shape = (self.out_features, self.in_features)
        if not isinstance(weight, QTensor) or weight.dtype is not qint8:
            raise TypeError(f"weight must be a qint8 QTensor, got {_value_kind(weight)}")
        if weight.shape != shape:
            raise ValueError(f"weight must have shape {shape} (out_features, in_features), got {weight.shape}")
        b = float_bias(bias, self.out_features, "bias")
        scales, zero_points = weight_qparams(weight, self.out_features)
        per_channel = weight.qscheme().is_per_channel
        packed = pack_static(weight, scales, zero_points, per_channel, b)
        self._qparams, self._bias, self._packed = qparams_of(weight), b, packed

    def weight(self) -> QTensor:
        """The int8 weight as a QTensor, read back from the packed form (the only copy kept)."""
        return qtensor_from(self._packed.weight(), self._qparams)

    def bias(self) -> Optional[np.ndarray]:
        """A copy of the float32 bias, or None."""
        return None if self._bias is None else self._bias.copy()

    # -- forward -----------------------------------------------------------------------------

    def forward(self, x: Any) -> QTensor:
        """``x``: a per-tensor quint8 QTensor of shape ``(..., in_features)``; returns a quint8
        QTensor of shape ``(..., out_features)`` with this module's ``scale`` and ``zero_point``.

        TypeError for a qint8 input, and for a float array (quantize it first with a ``Quantize``
        module, or put a ``QuantStub`` in front of this layer before ``prepare``/``convert``)."""
        if not isinstance(x, QTensor):
            raise TypeError(
                f"the static quantized Linear takes a quint8 QTensor, got {type(x).__name__}: quantize the input first "
                "(a ferroq.nn.quantized.Quantize module in front of this layer, or a ferroq.quantization.QuantStub "
                "in the float model before prepare/convert)"
            )
        if x.dtype is not quint8:
            raise TypeError(f"Expected input data type QUInt8 but got {_TORCH_DTYPE_NAMES.get(x.dtype.name, x.dtype.name)}")
        if x.qscheme().is_per_channel:
            raise ValueError("the static quantized Linear takes a per-tensor quantized input, got a per-channel QTensor")
        values = x.int_repr()
        last_dim(values, self.in_features)
        rows = values.reshape(-1, self.in_features)
        y = self._packed.forward(rows, x.q_scale(), x.q_zero_point(), self._scale, self._zero_point)
        return QTensor.from_int_repr(y.reshape(values.shape[:-1] + (self.out_features,)), self._scale, self._zero_point)

    # -- conversion --------------------------------------------------------------------------

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "Linear":
        """Quantizes an observed float Linear: the one ``ferroq.quantization.prepare`` returns,
        after calibration. The weight observer is ``mod.qconfig.weight()`` (it must quantize to
        qint8) and is run on the weight unless ``use_precomputed_fake_quant``; the output qparams
        come from ``mod.activation_post_process.calculate_qparams()``.

        Errors: TypeError when ``mod`` is not a float Linear or its qconfig not a ``QConfig``;
        ValueError when it has no qconfig, no ``activation_post_process`` (it was not prepared),
        a weight observer whose dtype is not qint8, or an activation observer whose dtype is not
        quint8."""
        weight, bias = float_linear_params(mod, "ferroq.nn.quantized.Linear")
        qconfig = getattr(mod, "qconfig", None)
        if qconfig is None:
            raise ValueError("Input float module must have qconfig defined")
        if not isinstance(qconfig, QConfig):
            raise TypeError(f"{type(mod).__name__}.qconfig must be a ferroq.quantization.QConfig, got {type(qconfig).__name__}")
        activation_post_process = getattr(mod, "activation_post_process", None)
        if activation_post_process is None:
            raise ValueError(
                "Input float module must have activation_post_process attribute "
                "(run ferroq.quantization.prepare and calibrate the model first)"
            )
        if as_dtype(activation_post_process.dtype) is not quint8:
            raise ValueError(f"the activation observer must have dtype ferroq.quint8, got {activation_post_process.dtype!r}")
        weight_observer = getattr(mod, "weight_fake_quant", None)
        if weight_observer is None:
            weight_observer = qconfig.weight()
        if weight_observer.dtype is not qint8:
            raise ValueError(f"Weight observer must have dtype ferroq.qint8, got {weight_observer.dtype!r}")
        scale, zero_point = activation_post_process.calculate_qparams()
        qweight = quantize_weight(weight, weight_observer, observe=not use_precomputed_fake_quant)
        del weight
        module = cls._build(qweight, bias, scale, zero_point)
        del qweight
        _core.release_free_memory()
        return module

    @classmethod
    def from_reference(cls, ref_qlinear: Any, output_scale: float, output_zero_point: int) -> "Linear":
        """From a reference quantized Linear (``ferroq.nn.quantized.reference.Linear``: float
        weight plus weight qparams) and the output qparams."""
        return cls._build(ref_qlinear.get_quantized_weight(), ref_qlinear.bias, output_scale, output_zero_point)

    @classmethod
    def _build(cls, qweight: QTensor, bias: Optional[Any], scale: Any, zero_point: Any) -> "Linear":
        out_features, in_features = qweight.shape
        module = cls(in_features, out_features, bias_=bias is not None)
        module.set_weight_bias(qweight, bias)
        module.scale = scale
        module.zero_point = zero_point
        return module

    # -- state -------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        save_linear_state(destination, prefix, self._scale, self._zero_point, self.dtype, self.weight(), self.bias())

    def _state_keys(self) -> List[str]:
        return list(LINEAR_STATE_KEYS)

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        if as_dtype(values["_packed_params.dtype"]) is not qint8:
            raise NotImplementedError("the static quantized Linear supports dtype ferroq.qint8 only")
        weight, bias = values["_packed_params._packed_params"]
        candidate = type(self).__new__(type(self))
        Module.__init__(candidate)
        candidate.in_features, candidate.out_features, candidate.dtype = self.in_features, self.out_features, qint8
        candidate.scale = float(np.asarray(to_numpy(values["scale"])).reshape(()))
        candidate.zero_point = values["zero_point"]
        candidate.set_weight_bias(weight, bias)

        def update() -> None:
            self._qparams, self._bias, self._packed = candidate._qparams, candidate._bias, candidate._packed
            self.scale, self.zero_point = candidate.scale, candidate.zero_point

        return update

    _rebuilt_from_weights = ("_packed", "_qparams")

    def _weights_to_pickle(self) -> QTensor:
        return self.weight()

    def _rebuild_from_weights(self, weights: QTensor) -> None:
        self.scale, self.zero_point = self._scale, self._zero_point  # checked like any assignment
        self.set_weight_bias(weights, self._bias)
        warn_if_accumulator_can_overflow(self._get_name(), self.in_features, input_levels(False))

    # -- printing ----------------------------------------------------------------------------

    def _get_name(self) -> str:
        return "QuantizedLinear"

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}, "
            f"zero_point={self.zero_point}, qscheme={per_tensor_affine if self._qparams[4] is None else per_channel_affine!r}"
        )


def _value_kind(value: Any) -> str:
    if isinstance(value, QTensor):
        return f"a {value.dtype!r} QTensor"
    return type(value).__name__
