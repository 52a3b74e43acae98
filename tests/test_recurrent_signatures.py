"""The recurrent constructors' public signatures, as ``inspect.signature`` shows them: PyTorch's
positional order and defaults, plus the quantized modules' ``dtype`` and keyword-only
``reduce_range`` (the classes share constructors where their signatures are the same)."""

from __future__ import annotations

import inspect

import pytest

from ferroq import nn, qint8
from ferroq.nn.quantized import dynamic as nnqd

_EMPTY = inspect.Parameter.empty
_STACK = [("input_size", _EMPTY), ("hidden_size", _EMPTY), ("num_layers", 1)]
_STACK_FLAGS = [("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)]
_CELL = [("input_size", _EMPTY), ("hidden_size", _EMPTY), ("bias", True)]
_QUANTIZED = [("dtype", qint8)]
_KEYWORD_ONLY = [("reduce_range", True)]


def _parameters(cls):
    """``(positional-or-keyword, keyword-only)`` lists of ``(name, default)``."""
    params = list(inspect.signature(cls).parameters.values())
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    positional = [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = [(p.name, p.default) for p in params if p.kind is p.KEYWORD_ONLY]
    return positional, keyword


@pytest.mark.parametrize(
    "cls, positional, keyword",
    [
        (nn.LSTM, _STACK + _STACK_FLAGS + [("proj_size", 0)], []),
        (nn.GRU, _STACK + _STACK_FLAGS, []),
        (nn.RNN, _STACK + [("nonlinearity", "tanh")] + _STACK_FLAGS, []),
        (nn.LSTMCell, _CELL, []),
        (nn.GRUCell, _CELL, []),
        (nn.RNNCell, _CELL + [("nonlinearity", "tanh")], []),
        (nnqd.LSTM, _STACK + _STACK_FLAGS + [("proj_size", 0)], _QUANTIZED + _KEYWORD_ONLY),
        (nnqd.GRU, _STACK + _STACK_FLAGS, _QUANTIZED + _KEYWORD_ONLY),
        (nnqd.RNN, _STACK + [("nonlinearity", "tanh")] + _STACK_FLAGS, _QUANTIZED + _KEYWORD_ONLY),
        (nnqd.LSTMCell, _CELL + _QUANTIZED, _KEYWORD_ONLY),
        (nnqd.GRUCell, _CELL + _QUANTIZED, _KEYWORD_ONLY),
        (nnqd.RNNCell, _CELL + [("nonlinearity", "tanh")] + _QUANTIZED, _KEYWORD_ONLY),
    ],
    ids=lambda v: f"{v.__module__.split('.')[-1]}.{v.__name__}" if isinstance(v, type) else "",
)
def test_recurrent_constructor_signatures(cls, positional, keyword):
    assert _parameters(cls) == (positional, keyword)


@pytest.mark.parametrize("cls, mode", [(nnqd.LSTMCell, "LSTM"), (nnqd.GRUCell, "GRU")])
def test_gated_cells_take_their_mode_from_the_class(cls, mode):
    cell = cls(3, 2, False, reduce_range=False)
    assert (type(cell), cell.mode, cell.input_size, cell.hidden_size, cell.bias, cell.reduce_range) == (cls, mode, 3, 2, False, False)
