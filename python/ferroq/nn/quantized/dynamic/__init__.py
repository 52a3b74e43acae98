"""Dynamic quantized modules: float32 in and out, int8 (or float16) weights, activations
quantized on the fly (PyTorch's ``torch.ao.nn.quantized.dynamic``)."""

from .linear import Linear

__all__ = ["Linear"]
