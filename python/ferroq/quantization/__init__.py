"""Observers, qconfigs and model conversion (PyTorch's ``torch.ao.quantization`` names)."""

from .histogram import HistogramObserver
from .observer import MinMaxObserver, ObserverBase, PerChannelMinMaxObserver, PlaceholderObserver
from .qconfig import (
    QConfig,
    default_dynamic_qconfig,
    default_dynamic_quant_observer,
    default_float_qparams_observer,
    default_float_qparams_observer_4bit,
    default_histogram_observer,
    default_observer,
    default_per_channel_weight_observer,
    default_qconfig,
    default_weight_observer,
    float16_dynamic_qconfig,
    float_qparams_weight_only_qconfig,
    float_qparams_weight_only_qconfig_4bit,
    get_default_qconfig,
    per_channel_dynamic_qconfig,
)
from .propagate import propagate_qconfig_
from .quantize import convert, get_default_static_quant_module_mappings, prepare
from .quantize_dynamic import get_default_dynamic_quant_module_mappings, quantize_dynamic
from .stubs import DeQuantStub, QuantStub

__all__ = [
    "ObserverBase",
    "MinMaxObserver",
    "PerChannelMinMaxObserver",
    "PlaceholderObserver",
    "HistogramObserver",
    "QConfig",
    "default_dynamic_qconfig",
    "default_dynamic_quant_observer",
    "default_histogram_observer",
    "default_observer",
    "default_per_channel_weight_observer",
    "default_qconfig",
    "default_weight_observer",
    "float16_dynamic_qconfig",
    "float_qparams_weight_only_qconfig",
    "float_qparams_weight_only_qconfig_4bit",
    "default_float_qparams_observer",
    "default_float_qparams_observer_4bit",
    "get_default_qconfig",
    "per_channel_dynamic_qconfig",
    "QuantStub",
    "DeQuantStub",
    "propagate_qconfig_",
    "prepare",
    "convert",
    "get_default_static_quant_module_mappings",
    "quantize_dynamic",
    "get_default_dynamic_quant_module_mappings",
]
