"""``ferroq.nn.quantized.dynamic.LSTM``, ``GRU`` and ``RNN``: recurrent stacks with int8 (or
float16) weights whose activations are quantized on the fly, bit-exact with PyTorch's x86
``torch.ao.nn.quantized.dynamic.LSTM``/``GRU`` (docs/numerics.md §4).

Numerics: per layer and direction, the input projection quantizes the whole sequence with one
scale (every step and batch element; with ``lengths``, only the valid steps), the hidden
projection quantizes the running batch elements' hidden state once per step; each projection
adds its own float bias.

Beyond PyTorch:

- unbatched input ``(steps, input_size)`` and ``bias=False``;
- ``RNN`` (Elman, ``nonlinearity="tanh"`` or ``"relu"``), which PyTorch leaves float;
- ``lengths=``: per batch element, its number of valid steps, with packed-sequence semantics
  (padding never enters a quantization range; outputs past a sequence's end are zero; ``h_n`` is
  each sequence's state after its last valid step; a length may be 0, giving zero outputs and the
  initial state; the same contract as the float ``ferroq.nn`` modules);
- LSTM ``proj_size``: ``h = W_hr (o * tanh(c))``, computed as a bias-free dynamic quantized
  Linear whose input is quantized per step over the running batch rows, like ``h``.

State dict keys are the float module's parameter names: ``weight_ih_l{k}{suffix}``,
``weight_hh_l{k}{suffix}`` and, with ``proj_size``, ``weight_hr_l{k}{suffix}`` (qint8 QTensor, or
float16 array for dtype float16), and ``bias_ih_l{k}{suffix}``, ``bias_hh_l{k}{suffix}``
(float32) when ``bias``; ``suffix`` is ``""`` or ``"_reverse"``. ``reduce_range`` and the
hyperparameters are not in it: build the module with the same arguments before loading.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

import numpy as np

from ...._arrays import as_float32
from ...._dtypes import qint8
from ...._state_spec import Config
from ..._recurrent_args import (
    GATES,
    check_dropout,
    check_input_rank,
    check_lengths,
    check_stack_state_ranks,
    check_stack_state_shapes,
    elman_mode,
    lstm_state,
    stack_sizes,
)
from ..._recurrent_config import MatrixSpec, stack_config, stack_matrices, stack_repr
from ...module import Module
from ._recurrent import CellLayout, Matrix, QuantizedRecurrent

_M = TypeVar("_M", bound="RNNBase")

#: The default of ``hx`` in :meth:`RNNBase.__call__`, so that hooks see the arguments as given.
_OMITTED: Any = object()

__all__ = ["RNNBase", "LSTM", "GRU", "RNN"]


class RNNBase(QuantizedRecurrent):
    """A stack of recurrent layers (the base of :class:`LSTM`, :class:`GRU`, :class:`RNN`).

    ``mode`` is "LSTM", "GRU", "RNN_TANH" or "RNN_RELU". ``dropout`` is kept for the repr and
    checkpoints but never applied: these are inference modules.
    """

    _version = 1

    def __init__(
        self,
        *,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int = 0,
        dtype: Any,
        reduce_range: bool,
    ) -> None:
        super().__init__()
        self.dropout = check_dropout(dropout, num_layers)
        self.input_size, self.hidden_size, self.num_layers, self.proj_size = stack_sizes(
            mode, input_size, hidden_size, num_layers, proj_size, min_input_size=0
        )
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self._init_quantized(mode, bias, dtype, reduce_range)

    def _float_config(self) -> Dict[str, Any]:
        return stack_config(self)

    def _float_repr(self) -> str:
        return stack_repr(self, nonlinearity=True)

    @classmethod
    def _float_matrices(cls, config: Config) -> List[MatrixSpec]:
        return stack_matrices(config, cls._modes, min_input_size=0)

    # -- layout ------------------------------------------------------------------------------

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def _layout(self) -> List[CellLayout]:
        rows = GATES[self.mode] * self.hidden_size
        cells = []
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self._directions * self._output_size
            for suffix in ("", "_reverse")[: self._directions]:
                tag = f"_l{layer}{suffix}"
                b_ih, b_hh = (f"bias_ih{tag}", f"bias_hh{tag}") if self.bias else (None, None)
                hr = Matrix(f"weight_hr{tag}", (self.proj_size, self.hidden_size), None) if self.proj_size else None
                ih = Matrix(f"weight_ih{tag}", (rows, width), b_ih)
                hh = Matrix(f"weight_hh{tag}", (rows, self._output_size), b_hh)
                cells.append(CellLayout(ih, hh, hr))
        return cells

    def _core_args(self) -> Tuple[int, int, int, int, bool]:
        return self.input_size, self.hidden_size, self.proj_size, self.num_layers, self.bidirectional

    # -- forward -----------------------------------------------------------------------------

    def _forward(self, input: Any, states: Tuple[Optional[Any], ...], lengths: Any) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
        """Shared forward: ``states`` is ``(h0,)`` or ``(h0, c0)`` (entries may be None)."""
        x = as_float32(input)
        batched = check_input_rank(type(self).__name__, x, (2, 3), " input instead")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}")
        batch_first = self.batch_first and batched
        x3 = x if batched else x[:, None, :]
        steps, batch = (x3.shape[1], x3.shape[0]) if batch_first else (x3.shape[0], x3.shape[1])
        if steps == 0:
            raise ValueError("Expected sequence length to be larger than 0 in RNN")

        initial = self._initial_states(states, batched, batch)
        lengths = check_lengths(lengths, batch, steps, batched)
        y, h_n, c_n = self._run(x3, initial[0], initial[1] if len(initial) > 1 else None, lengths, batch_first)
        finals = (h_n,) if c_n is None else (h_n, c_n)
        if not batched:
            return y[:, 0, :], tuple(f[:, 0, :] for f in finals)
        return y, finals

    def __call__(self, input: Any, hx: Any = _OMITTED, lengths: Any = None) -> Any:
        """``forward(input, hx, lengths)`` and the forward hooks, as :meth:`Module.__call__`, trying
        the core's lean call first (see :meth:`RNNCellBase.__call__
        <ferroq.nn.quantized.dynamic.RNNCellBase.__call__>`); a module with hooks, or of a
        subclass with its own ``forward``, takes the generic call."""
        if lengths is None and not self._forward_hooks and type(self).forward in _LEAN_FORWARDS:
            out = self._packed.try_forward(input, None if hx is _OMITTED else hx, self.batch_first)
            if out is not None:
                return out
        args = (input,) if hx is _OMITTED else (input, hx)
        return Module.__call__(self, *args) if lengths is None else Module.__call__(self, *args, lengths=lengths)

    def _hidden_forward(self, input: Any, hx: Optional[Any], lengths: Any) -> Tuple[np.ndarray, np.ndarray]:
        """The forward of the stacks whose whole state is ``h`` (see :meth:`LSTM.forward`)."""
        if lengths is None:
            out = self._packed.try_forward(input, hx, self.batch_first)
            if out is not None:
                return out
        y, (h_n,) = self._forward(input, (hx,), lengths)
        return y, h_n

    def _initial_states(self, states: Tuple[Optional[Any], ...], batched: bool, batch: int) -> List[Optional[np.ndarray]]:
        """The initial states as 3-D float32 arrays (None for zeros), shapes checked."""
        if all(s is None for s in states):
            return [None] * len(states)
        if any(s is None for s in states):
            raise ValueError("hx must hold both h_0 and c_0, or be None")
        arrays = [as_float32(s, "hx") for s in states]
        check_stack_state_ranks(arrays, batched)
        arrays = [a if batched else a[:, None, :] for a in arrays]
        sizes = (self._output_size, self.hidden_size)
        check_stack_state_shapes(arrays, [(self.num_layers * self._directions, batch, size) for size in sizes])
        return list(arrays)

    # -- conversion --------------------------------------------------------------------------

    _first_weight = "weight_ih_l0"

    @classmethod
    def _from_float_module(cls: Type[_M], mod: Any, **config: Any) -> _M:
        """Builds ``cls(**config)`` with ``mod``'s sizes and flags, then quantizes its weights."""
        return super()._from_float_module(
            mod,
            num_layers=int(getattr(mod, "num_layers", 1)),
            batch_first=bool(getattr(mod, "batch_first", False)),
            dropout=float(getattr(mod, "dropout", 0.0)),
            bidirectional=bool(getattr(mod, "bidirectional", False)),
            **config,
        )


class LSTM(RNNBase):
    """Dynamic quantized LSTM: ``LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, *, dtype=qint8,
    reduce_range=True)``.

    ``forward(input, hx=None, lengths=None) -> (output, (h_n, c_n))``, shapes as ``torch.nn.LSTM``.
    """

    _modes = ("LSTM",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        dtype: Any = qint8,
        reduce_range: bool = True,
    ) -> None:
        super().__init__(
            mode="LSTM", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            dtype=dtype, reduce_range=reduce_range,
        )

    def forward(
        self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None
    ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """``input``: ``(steps, batch, input_size)`` (``(batch, steps, ...)`` with batch_first) or
        unbatched ``(steps, input_size)``; ``hx``: ``(h_0, c_0)``, each ``(layers * directions,
        batch, size)`` (never batch-first), zeros when None; ``lengths``: valid steps per batch
        element, each between 0 and ``steps`` (a scalar for unbatched input). Returns ``output, (h_n, c_n)``."""
        if lengths is None:  # the lean path: one check in the core that the arguments need no conversion
            out = self._packed.try_forward(input, hx, self.batch_first)
            if out is not None:
                return out
        y, (h_n, c_n) = self._forward(input, lstm_state(hx, "LSTM"), lengths)
        return y, (h_n, c_n)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "LSTM":
        """Quantizes a float LSTM (``ferroq.nn.LSTM``, ``torch.nn.LSTM``, or any object with its
        attributes and parameters, ``proj_size`` included), each weight matrix with its own
        observer from ``mod.qconfig`` (default: per-tensor symmetric qint8)."""
        return cls._from_float_module(mod, proj_size=int(getattr(mod, "proj_size", 0)))


class GRU(RNNBase):
    """Dynamic quantized GRU: ``GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, *, dtype=qint8, reduce_range=True)``.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)``, shapes as ``torch.nn.GRU``.
    """

    _modes = ("GRU",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: Any = qint8,
        reduce_range: bool = True,
    ) -> None:
        super().__init__(
            mode="GRU", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            dtype=dtype, reduce_range=reduce_range,
        )

    def forward(self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`LSTM.forward` with ``hx = h_0``; returns ``output, h_n``."""
        return self._hidden_forward(input, hx, lengths)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "GRU":
        """Quantizes a float GRU (see :meth:`LSTM.from_float`)."""
        return cls._from_float_module(mod)


class RNN(RNNBase):
    """Dynamic quantized Elman RNN (PyTorch has none): ``RNN(input_size, hidden_size,
    num_layers=1, nonlinearity="tanh", bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, *, dtype=qint8, reduce_range=True)``; the step is
    ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, with the numerics of the dynamic RNNCell.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)``, shapes as ``torch.nn.RNN``.
    """

    _modes = ("RNN_TANH", "RNN_RELU")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: Any = qint8,
        reduce_range: bool = True,
    ) -> None:
        super().__init__(
            mode=elman_mode(nonlinearity), input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            dtype=dtype, reduce_range=reduce_range,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`GRU.forward`."""
        return self._hidden_forward(input, hx, lengths)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "RNN":
        """Quantizes a float RNN (see :meth:`LSTM.from_float`); ``nonlinearity`` is copied."""
        return cls._from_float_module(mod, nonlinearity=str(getattr(mod, "nonlinearity", "tanh")))


#: The ``forward`` methods whose modules' calls try the lean path first (not a subclass's own).
_LEAN_FORWARDS = frozenset((LSTM.forward, GRU.forward, RNN.forward))
