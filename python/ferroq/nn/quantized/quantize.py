"""``Quantize`` and ``DeQuantize``: the modules that ``convert`` puts where the ``QuantStub`` and
``DeQuantStub`` of a prepared model were (PyTorch's ``torch.ao.nn.quantized.Quantize``/``DeQuantize``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..._arrays import to_numpy
from ..._dtypes import DType
from ..._state_spec import Array, Config, StateSpec, float32
from ..._tensor import QTensor, _check_scale, _check_zero_point, _integer, _quantized_dtype, quantize_per_tensor
from ..module import Module

__all__ = ["Quantize", "DeQuantize"]


class Quantize(Module):
    """Quantizes a float array to a per-tensor :class:`~ferroq.QTensor` with fixed qparams.

    ``scale`` is kept in float32, as PyTorch's ``scale`` buffer is, so ``Quantize(0.1, ...)``
    quantizes with ``float32(0.1)``. NaN or infinity in the input raises ValueError.
    ``factory_kwargs`` (torch's device/dtype placement) is accepted and has no effect.
    """

    def __init__(self, scale: float, zero_point: int, dtype: Any, factory_kwargs: Any = None) -> None:
        super().__init__()
        self.dtype: DType = _quantized_dtype(dtype)
        self.scale = float(np.float32(_check_scale(scale)))
        self.zero_point = _check_zero_point(zero_point, self.dtype)

    def _config(self) -> Dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype.name}

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        scale = config.number("scale", 0.0, float(np.finfo(np.float32).max))
        if not np.float32(scale) > 0:
            raise config.fail(f"scale must be positive in float32, got {scale}")
        dtype = _quantized_dtype(config.choice("dtype", ("qint8", "quint8")))
        assert dtype.qmin is not None and dtype.qmax is not None
        config.integer("zero_point", dtype.qmin, dtype.qmax)
        return {"scale": float32(1), "zero_point": Array("I64", (1,))}

    def forward(self, x: Any) -> QTensor:
        if isinstance(x, QTensor):
            raise TypeError("Quantize expects a float array, got a QTensor that is already quantized")
        return quantize_per_tensor(x, self.scale, self.zero_point, self.dtype)

    @staticmethod
    def from_float(mod: Any, use_precomputed_fake_quant: bool = False) -> "Quantize":
        """From an observed ``QuantStub``: the qparams its ``activation_post_process`` chose.
        ValueError when ``mod`` was not prepared (it has no observer)."""
        observer = getattr(mod, "activation_post_process", None)
        if observer is None:
            raise ValueError(
                "Input float module must have activation_post_process attribute "
                "(run ferroq.quantization.prepare and calibrate the model first)"
            )
        scale, zero_point = observer.calculate_qparams()
        return Quantize(float(scale), int(zero_point), observer.dtype)

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        destination[prefix + "scale"] = np.array([self.scale], dtype=np.float32)
        destination[prefix + "zero_point"] = np.array([self.zero_point], dtype=np.int64)

    def _state_keys(self) -> List[str]:
        return ["scale", "zero_point"]

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        scale_array, zero_point_array = (np.asarray(to_numpy(v)) for v in values.values())
        if scale_array.size != 1 or zero_point_array.size != 1:
            raise ValueError(f"expected one scale and one zero point, got shapes {scale_array.shape} and {zero_point_array.shape}")
        candidate = Quantize(float(scale_array.reshape(())), _integer(zero_point_array, "zero_point"), self.dtype)

        def update() -> None:
            self.scale, self.zero_point = candidate.scale, candidate.zero_point

        return update

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Unpickling checks the qparams as the constructor does."""
        checked = Quantize(state["scale"], state["zero_point"], state["dtype"])
        self.__dict__.update(state)
        self.scale, self.zero_point, self.dtype = checked.scale, checked.zero_point, checked.dtype

    def extra_repr(self) -> str:
        return f"scale={self.scale}, zero_point={self.zero_point}, dtype={self.dtype!r}"


class DeQuantize(Module):
    """Turns a :class:`~ferroq.QTensor` back into a float32 array."""

    def forward(self, x: Any) -> np.ndarray:
        if not isinstance(x, QTensor):
            raise TypeError(f"DeQuantize expects a QTensor, got {type(x).__name__}")
        return x.dequantize()

    @staticmethod
    def from_float(mod: Any, use_precomputed_fake_quant: bool = False) -> "DeQuantize":
        """A ``DeQuantize`` for a ``DeQuantStub`` (it has nothing to carry over)."""
        return DeQuantize()
