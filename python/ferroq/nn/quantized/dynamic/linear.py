"""``ferroq.nn.quantized.dynamic.Linear``: int8 (or float16) weights, float32 in and out, the
activations quantized on the fly (docs/numerics.md §2)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from .... import _core
from ...._arrays import as_float32, last_dim
from ...._dtypes import DType, as_dtype, float16, per_channel_affine, per_tensor_affine, qint8
from ...._state_spec import Array, Config, DTypeName, Items, StateSpec, float32, optional_bias, quantized_weight
from ...._tensor import QTensor
from ....quantization.qconfig import weight_observer_for
from ...module import Module
from .._overflow import input_levels, warn_if_accumulator_can_overflow
from .._weights import (
    LINEAR_STATE_KEYS,
    float_bias,
    float_linear_params,
    float_weight,
    observer_dtype,
    pack_dynamic,
    qparams_of,
    qtensor_from,
    quantize_weight,
    save_linear_state,
    to_fp16,
)
from ._reduce_range import PackedReduceRange

__all__ = ["Linear"]

Weight = Union[QTensor, np.ndarray]


class Linear(PackedReduceRange, Module):
    """A dynamic quantized Linear: ``y = dequant(quant(x) @ W_q^T) + bias``.

    With ``dtype=qint8`` the weight is an int8 :class:`~ferroq.QTensor` (per tensor or per output
    feature) and each call quantizes the input to uint8 with qparams from its own range over the
    whole tensor (levels 0..127 with ``reduce_range=True``, PyTorch's default; 0..255 with False).
    With ``dtype=float16`` the weight is stored in float16 and nothing is quantized. Outputs are
    bit-identical to PyTorch's x86 ``torch.ao.nn.quantized.dynamic.Linear``.

    Unlike PyTorch, inputs may have any rank >= 1 (a 1-D input is one row).
    """

    _version = 4

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias_: bool = True,
        dtype: Any = qint8,
        *,
        reduce_range: bool = True,
    ) -> None:
        super().__init__()
        self.dtype = _check_dtype(dtype)
        if in_features < 0 or out_features < 0:
            raise ValueError(f"in_features and out_features must be >= 0, got {in_features} and {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        b = np.zeros(self.out_features, dtype=np.float32) if bias_ else None
        if self.dtype is qint8:
            # Zero weights that cost no memory until replaced (by loading, or set_weight_bias).
            self._qparams = qparams_of(QTensor.from_int_repr(np.zeros(0, np.int8), 1.0, 0))
            self._bias = b
            self._packed: Union[_core.PackedLinear, _core.PackedLinearFp16] = _core.PackedLinear.zeros(
                self.out_features, self.in_features, b
            )
        else:
            self.set_weight_bias(np.zeros((self.out_features, self.in_features), dtype=np.float32), b)
        self.reduce_range = reduce_range
        self._warn_if_accumulator_can_overflow()

    def _warn_if_accumulator_can_overflow(self) -> None:
        if self.dtype is qint8:
            warn_if_accumulator_can_overflow(self._get_name(), self.in_features, input_levels(self.reduce_range))

    # -- weights -----------------------------------------------------------------------------

    def set_weight_bias(self, weight: Any, bias: Optional[Any]) -> None:
        """Replaces the weight (a qint8 QTensor, or a float array for dtype float16) and the bias.
        Checks everything before changing anything; the caller's arrays are never modified, and
        only the packed form of the weight is kept (no reference to ``weight``)."""
        _check_dtype(self.dtype)
        shape = (self.out_features, self.in_features)
        b = float_bias(bias, self.out_features, "bias")
        if self.dtype is qint8:
            if not isinstance(weight, QTensor) or weight.dtype is not qint8:
                raise TypeError(f"weight must be a qint8 QTensor for a qint8 Linear, got {_value_kind(weight)}")
            if weight.shape != shape:
                raise ValueError(f"weight must have shape {shape} (out_features, in_features), got {weight.shape}")
            qparams: Any = qparams_of(weight)
        else:
            w = float_weight(weight.dequantize() if isinstance(weight, QTensor) else weight, "weight")
            if w.shape != shape:
                raise ValueError(f"weight must have shape {shape} (out_features, in_features), got {w.shape}")
            weight = to_fp16(w, "weight")
            del w
            qparams = None
        packed: Union[_core.PackedLinear, _core.PackedLinearFp16] = pack_dynamic(weight, b, self._packing_reduce_range())
        self._qparams, self._bias, self._packed = qparams, b, packed

    def weight(self) -> Weight:
        """The int8 weight as a QTensor (dtype qint8) or the float16 weight array (dtype float16),
        read back from the packed form (a new array each call)."""
        packed = self._packed
        if isinstance(packed, _core.PackedLinear):
            return qtensor_from(packed.weight(), self._qparams)
        return packed.weight_bits().view(np.float16)

    def bias(self) -> Optional[np.ndarray]:
        """A copy of the float32 bias, or None."""
        return None if self._bias is None else self._bias.copy()

    # -- forward -----------------------------------------------------------------------------

    def __call__(self, x: Any) -> Any:
        """``forward(x)`` and the forward hooks, as :meth:`Module.__call__`, trying the core's lean
        call first (see :meth:`RNNCellBase.__call__
        <ferroq.nn.quantized.dynamic.RNNCellBase.__call__>`); a module with hooks, or of a
        subclass with its own ``forward``, takes the generic call."""
        if not self._forward_hooks and type(self).forward is Linear.forward:
            y = self._packed.try_forward(x)
            if y is not None:
                return y
        return Module.__call__(self, x)

    def forward(self, x: Any) -> np.ndarray:
        """``x``: float array of shape ``(..., in_features)``; returns float32 ``(..., out_features)``.
        NaN or infinity in ``x`` raises ValueError for qint8 (it cannot be quantized)."""
        y = self._packed.try_forward(x)  # the lean path: one check in the core that x needs no conversion
        if y is not None:
            return y
        x = as_float32(x)
        is_matrix = x.ndim == 2 and x.shape[1] == self.in_features  # the common case, kept cheap
        if not is_matrix:
            last_dim(x, self.in_features)
        rows = x if is_matrix else x.reshape(-1, self.in_features)
        y = self._packed.forward(rows)
        return y if is_matrix else y.reshape(x.shape[:-1] + (self.out_features,))

    # -- conversion --------------------------------------------------------------------------

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "Linear":
        """Quantizes a float Linear (``ferroq.nn.Linear``, or a ``torch.nn.Linear`` read through its
        ``weight``/``bias``). The weight observer comes from ``mod.qconfig``, else the default
        (per-tensor symmetric qint8); ``per_channel_dynamic_qconfig`` gives per-row scales and
        ``float16_dynamic_qconfig`` float16 weights."""
        weight, bias = float_linear_params(mod, "ferroq.nn.quantized.dynamic.Linear")
        observer = weight_observer_for(mod)
        dtype = observer_dtype(observer)
        out_features, in_features = weight.shape
        qweight: Weight = quantize_weight(weight, observer) if dtype is qint8 else weight
        del weight
        module = cls(in_features, out_features, bias_=bias is not None, dtype=dtype)
        module.set_weight_bias(qweight, bias)
        del qweight
        _core.release_free_memory()
        return module

    @classmethod
    def from_reference(cls, ref_qlinear: Any) -> "Linear":
        """From a reference quantized Linear (float weight plus weight qparams)."""
        qweight = ref_qlinear.get_quantized_weight()
        out_features, in_features = qweight.shape
        module = cls(in_features, out_features, bias_=ref_qlinear.bias is not None, dtype=qweight.dtype)
        module.set_weight_bias(qweight, ref_qlinear.bias)
        return module

    # -- state -------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        save_linear_state(destination, prefix, 1.0, 0, self.dtype, self.weight(), self.bias())

    def _state_keys(self) -> List[str]:
        return list(LINEAR_STATE_KEYS)

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        dtype = _check_dtype(values["_packed_params.dtype"])
        weight, bias = values["_packed_params._packed_params"]
        candidate = type(self).__new__(type(self))
        Module.__init__(candidate)
        candidate.dtype, candidate.in_features, candidate.out_features = dtype, self.in_features, self.out_features
        candidate.set_weight_bias(weight, bias)
        # PyTorch: a Linear saved before version 4 ran with reduce_range=False.
        reduce_range = self.reduce_range if version is None or version >= 4 else False

        def update() -> None:
            self.dtype = dtype
            self._qparams, self._bias, self._packed = candidate._qparams, candidate._bias, candidate._packed
            self.reduce_range = reduce_range

        return update

    def _config(self) -> Dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias_": self._bias is not None,
            "dtype": self.dtype.name,
            "reduce_range": self.reduce_range,
        }

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        in_features, out_features = config.integer("in_features"), config.integer("out_features")
        dtype = config.choice("dtype", ("qint8", "float16"), "qint8")
        config.flag("reduce_range", True)
        return {
            "scale": float32(),
            "zero_point": Array("I64", ()),
            "_packed_params.dtype": DTypeName(dtype),
            "_packed_params._packed_params": Items(
                (quantized_weight(dtype, (out_features, in_features)), optional_bias(config.flag("bias_", True), out_features))
            ),
        }

    _rebuilt_from_weights = ("_packed", "_qparams")

    def _weights_to_pickle(self) -> Weight:
        return self.weight()

    def _rebuild_from_weights(self, weights: Weight) -> None:
        self.set_weight_bias(weights, self._bias)

    # -- printing ----------------------------------------------------------------------------

    def _get_name(self) -> str:
        return "DynamicQuantizedLinear"

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype!r}"
        if self._qparams is not None:
            qscheme = per_tensor_affine if self._qparams[4] is None else per_channel_affine
            text += f", qscheme={qscheme!r}"
        if not self.reduce_range:
            text += ", reduce_range=False"
        return text


def _check_dtype(dtype: Any) -> DType:
    """qint8 or float16, the dtypes with dynamic kernels; NotImplementedError for any other (a
    quint8 or float32 dtype from a state dict or pickle must not run as float16)."""
    dt = as_dtype(dtype)
    if dt is not qint8 and dt is not float16:
        raise NotImplementedError(f"dynamic quantized Linear supports dtype ferroq.qint8 or ferroq.float16, got {dt!r}")
    return dt


def _value_kind(value: Any) -> str:
    if isinstance(value, QTensor):
        return f"a {value.dtype!r} QTensor"
    return type(value).__name__
