"""Quantized modules (PyTorch's ``torch.ao.nn.quantized``): the static ``Linear`` (quint8 in and
out), ``Quantize``/``DeQuantize``, the weight-only ``Embedding``/``EmbeddingBag``, the reference
modules, and the dynamic modules."""

from . import dynamic
from .embedding import Embedding, EmbeddingBag
from .linear import Linear
from .quantize import DeQuantize, Quantize
from . import reference

__all__ = ["dynamic", "reference", "Linear", "Quantize", "DeQuantize", "Embedding", "EmbeddingBag"]
