"""Dynamic quantized modules: float32 in and out, int8 (or float16) weights, activations
quantized on the fly (PyTorch's ``torch.ao.nn.quantized.dynamic``)."""

from .linear import Linear
from .rnn import GRU, LSTM, RNN
from .rnn_cell import GRUCell, LSTMCell, RNNCell

__all__ = ["Linear", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]
