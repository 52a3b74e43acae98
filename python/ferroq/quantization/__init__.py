"""Observers, qconfigs and model conversion (PyTorch's ``torch.ao.quantization`` names)."""

from .observer import MinMaxObserver, ObserverBase, PerChannelMinMaxObserver, PlaceholderObserver
from .qconfig import (
    QConfig,
    default_dynamic_qconfig,
    default_dynamic_quant_observer,
    default_per_channel_weight_observer,
    default_weight_observer,
    float16_dynamic_qconfig,
    per_channel_dynamic_qconfig,
)
from .quantize import propagate_qconfig_, quantize_dynamic

__all__ = [
    "ObserverBase",
    "MinMaxObserver",
    "PerChannelMinMaxObserver",
    "PlaceholderObserver",
    "QConfig",
    "default_dynamic_qconfig",
    "default_dynamic_quant_observer",
    "default_per_channel_weight_observer",
    "default_weight_observer",
    "float16_dynamic_qconfig",
    "per_channel_dynamic_qconfig",
    "propagate_qconfig_",
    "quantize_dynamic",
]
