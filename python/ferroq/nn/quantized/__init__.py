"""Quantized modules (PyTorch's ``torch.ao.nn.quantized``)."""

from . import dynamic

__all__ = ["dynamic"]
