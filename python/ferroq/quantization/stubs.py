"""``QuantStub`` and ``DeQuantStub``: where a float model's quantized region starts and ends.

They are identities in the float model; ``prepare`` observes what flows through a ``QuantStub``,
and ``convert`` turns them into ``ferroq.nn.quantized.Quantize`` and ``DeQuantize``.
"""

from __future__ import annotations

from typing import Any

from ..nn.module import Module

__all__ = ["QuantStub", "DeQuantStub"]


class _Stub(Module):
    """An identity marking a boundary of the quantized region; ``qconfig``, if given, is set on it."""

    def __init__(self, qconfig: Any = None) -> None:
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x: Any) -> Any:
        return x


class QuantStub(_Stub):
    """Marks where float activations become quantized. Identity until ``convert`` replaces it by a
    ``Quantize`` with the qparams its observer chose. ``qconfig``, if given, is set on the stub."""


class DeQuantStub(_Stub):
    """Marks where quantized activations become float again. Identity until ``convert`` replaces
    it by a ``DeQuantize``. ``qconfig``, if given, is set on the stub."""
