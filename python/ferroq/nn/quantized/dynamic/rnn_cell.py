"""``ferroq.nn.quantized.dynamic.LSTMCell``, ``GRUCell`` and ``RNNCell``: one recurrent step with
int8 (or float16) weights, bit-exact with PyTorch's x86 dynamic quantized cells (docs/numerics.md §4.1).

Each call quantizes the input and the hidden state separately, each over its whole tensor.
Beyond PyTorch: unbatched (1-D) input, and ``bias=False`` also through ``from_float``.

State dict keys: ``weight_ih``, ``weight_hh`` (qint8 QTensor, or float16 array for dtype
float16) and, when ``bias``, ``bias_ih``, ``bias_hh`` (float32).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...._arrays import as_float32
from ...._dtypes import qint8
from ...._state_spec import Config
from ..._recurrent_args import (
    GATES,
    cell_sizes,
    check_cell_input,
    check_cell_state,
    elman_mode,
    lstm_state,
)
from ..._recurrent_config import MatrixSpec, cell_config, cell_matrices, cell_repr
from ...module import Module
from ._recurrent import CellLayout, Matrix, QuantizedRecurrent

#: The default of ``hx`` in :meth:`RNNCellBase.__call__`, so that hooks see the arguments as given.
_OMITTED: Any = object()

__all__ = ["RNNCellBase", "LSTMCell", "GRUCell", "RNNCell"]


class RNNCellBase(QuantizedRecurrent):
    """One recurrent step (the base of :class:`LSTMCell`, :class:`GRUCell`, :class:`RNNCell`)."""

    _version = 1

    def __init__(self, *, mode: str, input_size: int, hidden_size: int, bias: bool, dtype: Any, reduce_range: bool) -> None:
        super().__init__()
        self.input_size, self.hidden_size = cell_sizes(input_size, hidden_size, min_hidden_size=1)
        self._init_quantized(mode, bias, dtype, reduce_range)

    def _float_config(self) -> Dict[str, Any]:
        return cell_config(self)

    def _float_repr(self) -> str:
        return cell_repr(self)

    @classmethod
    def _float_matrices(cls, config: Config) -> List[MatrixSpec]:
        return cell_matrices(config, cls._modes, min_hidden_size=1)

    def _layout(self) -> List[CellLayout]:
        rows = GATES[self.mode] * self.hidden_size
        return [
            CellLayout(
                Matrix("weight_ih", (rows, self.input_size), "bias_ih" if self.bias else None),
                Matrix("weight_hh", (rows, self.hidden_size), "bias_hh" if self.bias else None),
                None,
            )
        ]

    def _core_args(self) -> Tuple[int, int, int, int, bool]:
        return self.input_size, self.hidden_size, 0, 1, False

    def __call__(self, input: Any, hx: Any = _OMITTED) -> Any:
        """``forward(input, hx)`` and the forward hooks, as :meth:`Module.__call__`. The core's lean
        step is tried first here: the generic call's argument passing costs about a tenth of a
        streamed batch-1 step. A module with hooks, or of a subclass with its own ``forward``,
        takes the generic call."""
        if not self._forward_hooks and type(self).forward in _LEAN_FORWARDS:
            out = self._packed.try_cell(input, None if hx is _OMITTED else hx)
            if out is not None:
                return out
        return Module.__call__(self, input) if hx is _OMITTED else Module.__call__(self, input, hx)

    def _hidden_step(self, input: Any, hx: Optional[Any]) -> np.ndarray:
        """The forward of the cells whose whole state is ``h`` (see :meth:`LSTMCell.forward`)."""
        out = self._packed.try_cell(input, hx)
        return out if out is not None else self._checked_step(input, (hx,))[0]

    def _checked_step(self, input: Any, states: Tuple[Optional[Any], ...]) -> Tuple[np.ndarray, ...]:
        """The step for any array-likes (the lean path declined them): normalises them, with
        PyTorch's error messages."""
        x = as_float32(input)
        name = type(self).__name__
        batched = check_cell_input(name, x, self.input_size)
        arrays: List[Optional[np.ndarray]] = []
        for i, state in enumerate(states):
            if state is None:
                arrays.append(None)
                continue
            h = as_float32(state, f"hidden[{i}]" if len(states) == 2 else "hidden")
            check_cell_state(name, h, i, len(states), x, self.hidden_size)
            arrays.append(h if batched else h[None])
        if len(arrays) == 2 and (arrays[0] is None) != (arrays[1] is None):
            raise ValueError("hx must hold both h and c, or be None")
        x2 = x if batched else x[None]
        h_new, c_new = self._packed.cell(x2, arrays[0], arrays[1] if len(arrays) == 2 else None)
        finals = (h_new,) if c_new is None else (h_new, c_new)
        return finals if batched else tuple(f[0] for f in finals)


class _GatedCell(RNNCellBase):
    """The constructor of :class:`LSTMCell` and :class:`GRUCell` (PyTorch's, the same for both):
    a cell of the class's one mode."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, dtype: Any = qint8, *, reduce_range: bool = True
    ) -> None:
        (mode,) = self._modes
        super().__init__(
            mode=mode, input_size=input_size, hidden_size=hidden_size, bias=bias, dtype=dtype, reduce_range=reduce_range
        )


class LSTMCell(_GatedCell):
    """``LSTMCell(input_size, hidden_size, bias=True, dtype=qint8, *, reduce_range=True)``;
    ``forward(input, hx=None) -> (h', c')`` with ``hx = (h, c)``, zeros when None."""

    _modes = ("LSTM",)

    def forward(self, input: Any, hx: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``input``: ``(batch, input_size)`` or unbatched ``(input_size,)``; ``h``, ``c`` alike
        with ``hidden_size``."""
        # The lean path: one check in the core that the arguments need no conversion.
        out = self._packed.try_cell(input, hx)
        if out is not None:
            return out
        h, c = self._checked_step(input, lstm_state(hx, "LSTMCell"))
        return h, c

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "LSTMCell":
        """Quantizes a float LSTMCell (``ferroq.nn``, ``torch.nn``, or any object with its
        attributes and parameters), ``weight_ih`` and ``weight_hh`` each with its own observer
        from ``mod.qconfig`` (default: per-tensor symmetric qint8)."""
        return cls._from_float_module(mod)


class GRUCell(_GatedCell):
    """``GRUCell(input_size, hidden_size, bias=True, dtype=qint8, *, reduce_range=True)``;
    ``forward(input, hx=None) -> h'``."""

    _modes = ("GRU",)

    def forward(self, input: Any, hx: Optional[Any] = None) -> np.ndarray:
        """As :meth:`LSTMCell.forward` with ``hx = h``; returns ``h'``."""
        return self._hidden_step(input, hx)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "GRUCell":
        """Quantizes a float GRUCell (see :meth:`LSTMCell.from_float`)."""
        return cls._from_float_module(mod)


class RNNCell(RNNCellBase):
    """``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=qint8, *,
    reduce_range=True)``: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``; ``forward(input, hx=None)
    -> h'``."""

    _modes = ("RNN_TANH", "RNN_RELU")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        dtype: Any = qint8,
        *,
        reduce_range: bool = True,
    ) -> None:
        super().__init__(
            mode=elman_mode(nonlinearity), input_size=input_size, hidden_size=hidden_size, bias=bias,
            dtype=dtype, reduce_range=reduce_range,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Optional[Any] = None) -> np.ndarray:
        """As :meth:`GRUCell.forward`."""
        return self._hidden_step(input, hx)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "RNNCell":
        """Quantizes a float RNNCell (see :meth:`LSTMCell.from_float`); ``nonlinearity`` is copied."""
        return cls._from_float_module(mod, nonlinearity=str(getattr(mod, "nonlinearity", "tanh")))


#: The ``forward`` methods whose modules' calls try the lean step first (not a subclass's own).
_LEAN_FORWARDS = frozenset((LSTMCell.forward, GRUCell.forward, RNNCell.forward))
