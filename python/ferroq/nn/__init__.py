"""Float modules with PyTorch's names, parameters and call signatures, and the quantized ones
under ``ferroq.nn.quantized``."""

from .basic import Identity, Linear, ReLU, Sequential
from .module import IncompatibleKeys, Module
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from . import quantized  # noqa: E402  (needs the float modules above)

__all__ = [
    "Module",
    "IncompatibleKeys",
    "Sequential",
    "Linear",
    "ReLU",
    "Identity",
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "quantized",
]
