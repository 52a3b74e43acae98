"""``QConfig``: which observers to use for a module's activations and weights, and the presets."""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Optional

from .._dtypes import float16, per_channel_affine_float_qparams, per_channel_symmetric, per_tensor_symmetric, qint8, quint4x2, quint8
from .histogram import HistogramObserver
from .observer import MinMaxObserver, ObserverBase, PerChannelMinMaxObserver, PlaceholderObserver

__all__ = [
    "QConfig",
    "default_dynamic_quant_observer",
    "default_weight_observer",
    "default_per_channel_weight_observer",
    "default_dynamic_qconfig",
    "per_channel_dynamic_qconfig",
    "float16_dynamic_qconfig",
    "default_observer",
    "default_histogram_observer",
    "default_qconfig",
    "get_default_qconfig",
    "default_float_qparams_observer",
    "default_float_qparams_observer_4bit",
    "float_qparams_weight_only_qconfig",
    "float_qparams_weight_only_qconfig_4bit",
]


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """Observer factories (classes or ``Observer.with_args(...)``) for activations and weights.

    Each field is called to make a fresh observer per tensor, so it must be a factory, not an
    observer instance.
    """

    __slots__ = ()

    def __new__(cls, activation: Any, weight: Any) -> "QConfig":
        for name, value in (("activation", activation), ("weight", weight)):
            if isinstance(value, ObserverBase):
                raise ValueError(
                    f"QConfig received an observer instance for {name}, please pass the observer class "
                    "instead. Use MyObserver.with_args(x=1) to override arguments to the constructor."
                )
        return super().__new__(cls, activation, weight)


default_dynamic_quant_observer = PlaceholderObserver.with_args(dtype=quint8, quant_min=0, quant_max=255, is_dynamic=True)
default_weight_observer = MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(dtype=qint8, qscheme=per_channel_symmetric)

default_dynamic_qconfig = QConfig(activation=default_dynamic_quant_observer, weight=default_weight_observer)
per_channel_dynamic_qconfig = QConfig(activation=default_dynamic_quant_observer, weight=default_per_channel_weight_observer)
float16_dynamic_qconfig = QConfig(
    activation=PlaceholderObserver.with_args(dtype=float16, is_dynamic=True),
    weight=PlaceholderObserver.with_args(dtype=float16),
)

#: Embedding weights, one float scale and float zero point per row: 8-bit and 4-bit.
default_float_qparams_observer = PerChannelMinMaxObserver.with_args(
    dtype=quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0
)
default_float_qparams_observer_4bit = PerChannelMinMaxObserver.with_args(
    dtype=quint4x2, qscheme=per_channel_affine_float_qparams, ch_axis=0
)
#: Weight-only quantization of ``Embedding``/``EmbeddingBag`` (activations stay float).
float_qparams_weight_only_qconfig = QConfig(activation=PlaceholderObserver, weight=default_float_qparams_observer)
float_qparams_weight_only_qconfig_4bit = QConfig(activation=PlaceholderObserver, weight=default_float_qparams_observer_4bit)

#: Static activations: quint8 over [0, 127] (PyTorch's default_observer).
default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
default_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)


def get_default_qconfig(backend: str = "x86", version: int = 0) -> QConfig:
    """PyTorch's default static qconfig for a quantized engine: ``"x86"`` and ``"fbgemm"`` use
    ``HistogramObserver(reduce_range=True)`` activations (inputs stay within 0..127, so int16
    saturation on AVX2-only CPUs cannot occur) and per-channel symmetric weights; ``"qnnpack"``
    uses the full activation range and per-tensor symmetric weights; ``"onednn"`` the full
    activation range and per-channel weights. ValueError for any other backend or version."""
    if version != 0:
        raise ValueError(f"get_default_qconfig supports version 0 only, got {version!r}")
    if backend in ("x86", "fbgemm"):
        return QConfig(activation=HistogramObserver.with_args(reduce_range=True), weight=default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=HistogramObserver.with_args(reduce_range=False), weight=default_weight_observer)
    if backend == "onednn":
        return QConfig(activation=HistogramObserver.with_args(reduce_range=False), weight=default_per_channel_weight_observer)
    raise ValueError(f"backend: {backend!r} not supported. backend must be one of ['fbgemm', 'x86', 'qnnpack', 'onednn']")


def weight_observer_for(module: Any, default: Optional[QConfig] = None) -> Any:
    """A fresh weight observer from ``module.qconfig``, or from ``default`` (the dynamic default)
    when the module has none."""
    qconfig = getattr(module, "qconfig", None)
    if qconfig is None or getattr(qconfig, "weight", None) is None:
        qconfig = default if default is not None else default_dynamic_qconfig
    if not isinstance(qconfig, QConfig):
        raise TypeError(
            f"{type(module).__name__}.qconfig must be a ferroq.quantization.QConfig, got {type(qconfig).__name__} "
            "(torch modules and their qconfigs are translated by ferroq.torch.from_torch)"
        )
    return qconfig.weight()
