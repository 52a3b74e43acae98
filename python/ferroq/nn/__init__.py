"""Float modules with PyTorch's names, parameters and call signatures, and the quantized ones
under ``ferroq.nn.quantized``."""

from .activation import GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU6, Sigmoid, SiLU, Softmax, Tanh
from .basic import Identity, Linear, ReLU, Sequential
from .container import ModuleDict, ModuleList
from .dropout import Dropout
from .flatten import Flatten
from .module import IncompatibleKeys, Module
from .normalization import LayerNorm
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .sparse import Embedding, EmbeddingBag
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
    "ModuleList",
    "ModuleDict",
    "Embedding",
    "EmbeddingBag",
    "LayerNorm",
    "Dropout",
    "Flatten",
    "Tanh",
    "Sigmoid",
    "GELU",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "Hardtanh",
    "ReLU6",
    "LeakyReLU",
    "quantized",
]
