"""Float recurrent layers: ``LSTM``, ``GRU``, ``RNN`` and the single-step ``LSTMCell``, ``GRUCell``,
``RNNCell``, with PyTorch's parameters, call signatures, shapes and error messages.

The math is float32 and follows the CPU path of ATen's ``RNN.cpp`` operation by operation (docs/numerics.md
§4.3): the input projection ``x @ W_ih.T + b_ih`` is computed once for the whole sequence, the hidden
projection ``h @ W_hh.T + b_hh`` once per step, each with its own bias, and the gates are combined in
the order written in each cell function below. These modules are the float reference of, and the
input to ``from_float`` of, the quantized modules in ``ferroq.nn.quantized.dynamic``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._arrays import as_float32
from .._state_spec import Config, StateSpec, float32, matrices_spec
from .basic import uniform
from .dropout import dropout as _dropout
from ._recurrent_args import (
    GATES,
    check_bool,
    check_cell_input,
    check_cell_state,
    check_dropout,
    check_input_rank,
    check_lengths,
    check_stack_state_ranks,
    check_stack_state_shapes,
    cell_sizes,
    elman_mode,
    lstm_state,
    stack_sizes,
)
from ._recurrent_config import cell_config, cell_matrices, cell_repr, stack_config, stack_matrices, stack_repr
from .module import Module

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]

#: A recurrent state: ``(h,)`` for GRU and RNN, ``(h, c)`` for LSTM.
State = Tuple[np.ndarray, ...]


class _CellWeights(NamedTuple):
    """The parameters of one layer and direction (or of one cell); absent ones are None."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    w_hr: Optional[np.ndarray]


# -- cell math (one time step, float32) ------------------------------------------------------------


def _linear(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """``x @ weight.T + bias`` in float32 (``at::linear``: the bias is added after the product)."""
    y = np.matmul(x, weight.T)
    if bias is not None:
        y += bias
    return y


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in float32, the formula torch's CPU kernel evaluates.

    Stable for every input: below about -88.7, ``exp(-x)`` overflows to inf and the result is
    exactly 0 (no NaN, no cancellation); above, the sum ``1 + exp(-x)`` only rounds.
    """
    with np.errstate(over="ignore"):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0))


def _lstm_cell(gates_x: np.ndarray, state: State, w: _CellWeights) -> State:
    """ATen's ``LSTMCell``: gates in the order i, f, g, o (chunks of ``W_ih``'s rows)."""
    h, c = state
    gates = _linear(h, w.w_hh, w.b_hh) + gates_x
    i, f, g, o = np.split(gates, 4, axis=-1)
    i = _sigmoid(i)
    f = _sigmoid(f)
    g = np.tanh(g)
    o = _sigmoid(o)
    c_next = (f * c) + (i * g)
    h_next = o * np.tanh(c_next)
    if w.w_hr is not None:
        h_next = np.matmul(h_next, w.w_hr.T)
    return h_next, c_next


def _gru_cell(gates_x: np.ndarray, state: State, w: _CellWeights) -> State:
    """ATen's ``GRUCell``: gates r, z, n; ``b_hn`` is inside the reset-gate product."""
    (h,) = state
    x_r, x_z, x_n = np.split(gates_x, 3, axis=-1)
    h_r, h_z, h_n = np.split(_linear(h, w.w_hh, w.b_hh), 3, axis=-1)
    r = _sigmoid(h_r + x_r)
    z = _sigmoid(h_z + x_z)
    n = np.tanh(x_n + (h_n * r))
    return ((h - n) * z + n,)


def _rnn_tanh_cell(gates_x: np.ndarray, state: State, w: _CellWeights) -> State:
    """ATen's ``SimpleCell`` with tanh."""
    return (np.tanh(_linear(state[0], w.w_hh, w.b_hh) + gates_x),)


def _rnn_relu_cell(gates_x: np.ndarray, state: State, w: _CellWeights) -> State:
    """ATen's ``SimpleCell`` with ReLU."""
    return (_relu(_linear(state[0], w.w_hh, w.b_hh) + gates_x),)


#: mode -> one step of the cell given the precomputed input projection
_CELLS: Dict[str, Callable[[np.ndarray, State, _CellWeights], State]] = {
    "LSTM": _lstm_cell,
    "GRU": _gru_cell,
    "RNN_TANH": _rnn_tanh_cell,
    "RNN_RELU": _rnn_relu_cell,
}


# -- sequences ---------------------------------------------------------------------------------------


def _scan(
    mode: str, x: np.ndarray, state: State, w: _CellWeights, mask: Optional[np.ndarray], reverse: bool
) -> Tuple[np.ndarray, State]:
    """One layer in one direction over a (T, B, I) sequence; returns the (T, B, H_out) outputs and
    the final state.

    The input projection is computed once for all steps, as torch's CPU ``FullLayer`` does. The
    reverse direction walks t = T-1 .. 0 and writes each output at its own t. With ``mask``
    ((T, B, 1), True on valid steps) a sequence's state stays put on its padded steps, so the
    forward direction ends on its last valid step and the reverse one starts there, and the
    outputs of padded steps are zero (PackedSequence semantics).
    """
    cell = _CELLS[mode]
    gates_x = _linear(x, w.w_ih, w.b_ih)
    steps = x.shape[0]
    output = np.empty((steps, x.shape[1], state[0].shape[-1]), dtype=np.float32)
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        new_state = cell(gates_x[t], state, w)
        if mask is None:
            output[t] = new_state[0]
        else:
            new_state = tuple(np.where(mask[t], new, old) for new, old in zip(new_state, state))
            output[t] = np.where(mask[t], new_state[0], np.float32(0))
        state = new_state
    return output, state


def _length_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(T, B, 1) bool, True where step t lies inside sequence b, from checked per-sequence ``lengths``."""
    return (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]


# -- full-sequence modules -------------------------------------------------------------------------


class _RNNBase(Module):
    """What ``LSTM``, ``GRU`` and ``RNN`` share: torch's constructor checks, parameter layout and
    initialisation, input and state checks, and the layer/direction loop over a per-mode cell.
    """

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool
    proj_size: int

    #: How torch's message for an input that is neither 2-D nor 3-D ends.
    _rank_suffix = " instead"
    #: The modes of this class's instances (see ``_recurrent_config``).
    _modes: Tuple[str, ...] = ()

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
    ) -> None:
        super().__init__()
        self.dropout = check_dropout(dropout, num_layers)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.input_size, self.hidden_size, self.num_layers, self.proj_size = stack_sizes(
            mode, input_size, hidden_size, num_layers, proj_size, min_input_size=1
        )
        self.mode = mode
        self.bidirectional = bool(bidirectional)
        #: Parameter names in torch's ``_flat_weights_names`` order (also the registration order).
        self._flat_weights_names: List[str] = []
        #: The same names grouped per layer and direction (index ``layer * D + direction``).
        self._all_weights: List[List[str]] = []

        input_size, hidden_size, proj_size = self.input_size, self.hidden_size, self.proj_size
        gate_size = GATES[mode] * hidden_size
        real_hidden_size = proj_size if proj_size > 0 else hidden_size
        num_directions = 2 if self.bidirectional else 1
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(self.num_layers):
            layer_input_size = input_size if layer == 0 else real_hidden_size * num_directions
            for direction in range(num_directions):
                shapes: List[Tuple[str, Tuple[int, ...]]] = [
                    ("weight_ih", (gate_size, layer_input_size)),
                    ("weight_hh", (gate_size, real_hidden_size)),
                ]
                if self.bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                names = [kind + suffix for kind, _ in shapes]
                for name, (_, shape) in zip(names, shapes):
                    self.register_parameter(name, uniform(shape, bound))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)

    @property
    def all_weights(self) -> List[List[np.ndarray]]:
        """The parameters grouped per layer and direction, in torch's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _cell_weights(self, layer: int, direction: int) -> _CellWeights:
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = self._parameters.get
        return _CellWeights(
            get("weight_ih" + suffix),
            get("weight_hh" + suffix),
            get("bias_ih" + suffix),
            get("bias_hh" + suffix),
            get("weight_hr" + suffix),
        )

    def _state_shapes(self, batch: int) -> Tuple[Tuple[int, int, int], ...]:
        """Shapes of the (batched) state components: h, and c for LSTM."""
        rows = self.num_layers * (2 if self.bidirectional else 1)
        h_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        if self.mode == "LSTM":
            return (rows, batch, h_size), (rows, batch, self.hidden_size)
        return ((rows, batch, h_size),)

    def _run(self, input: Any, states: Optional[State], lengths: Any) -> Tuple[np.ndarray, State]:
        """Checks everything as torch does, runs all layers and returns the output and the final
        state components, each shaped like the input (batched or not, batch-first or not)."""
        x = as_float32(input)
        batched = check_input_rank(type(self).__name__, x, (2, 3), self._rank_suffix)
        if states is not None:
            check_stack_state_ranks(states, batched)
        if not batched:
            x = x[:, None]
            states = None if states is None else tuple(s[:, None] for s in states)
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}"
            )
        steps, batch = x.shape[0], x.shape[1]
        expected = self._state_shapes(batch)
        if states is None:
            states = tuple(np.zeros(shape, dtype=np.float32) for shape in expected)
        check_stack_state_shapes(states, expected)
        if steps == 0:
            raise ValueError("Expected sequence length to be larger than 0 in RNN")
        checked_lengths = check_lengths(lengths, batch, steps, batched)
        mask = None if checked_lengths is None else _length_mask(checked_lengths, steps)

        output, final = self._layers(x, states, mask)
        if not batched:
            output, final = output[:, 0], tuple(f[:, 0] for f in final)
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return np.ascontiguousarray(output), tuple(np.ascontiguousarray(f) for f in final)

    def _layers(self, x: np.ndarray, states: State, mask: Optional[np.ndarray]) -> Tuple[np.ndarray, State]:
        """torch's ``apply_layer_stack``: layer k+1 reads layer k's output ([forward, reverse]
        along features), with dropout in between in training mode. Final states are stacked
        along dim 0 at ``layer * D + direction``."""
        num_directions = 2 if self.bidirectional else 1
        finals: List[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(num_directions):
                index = layer * num_directions + direction
                output, final = _scan(
                    self.mode,
                    layer_input,
                    tuple(s[index] for s in states),
                    self._cell_weights(layer, direction),
                    mask,
                    reverse=direction == 1,
                )
                outputs.append(output)
                finals.append(final)
            layer_input = np.concatenate(outputs, axis=-1) if num_directions == 2 else outputs[0]
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = _dropout(layer_input, self.dropout)
        return layer_input, tuple(np.stack(component) for component in zip(*finals))

    def extra_repr(self) -> str:
        return stack_repr(self, nonlinearity=False)

    def _config(self) -> Dict[str, Any]:
        return stack_config(self)

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        return matrices_spec(stack_matrices(config, cls._modes, min_input_size=1), lambda shape: float32(*shape))


class LSTM(_RNNBase):
    """Multi-layer long short-term memory (``torch.nn.LSTM``) in float32.

    For each step: ``i, f, g, o = σ, σ, tanh, σ`` of ``(x W_ih^T + b_ih) + (h W_hh^T + b_hh)``
    (gate rows in that order), ``c' = f*c + i*g``, ``h' = o*tanh(c')``, and with ``proj_size > 0``
    ``h' = h' W_hr^T``. Layer k > 0 reads the output of layer k-1 (both directions concatenated),
    with dropout in between in training mode.

    Parameters ``weight_ih_l{k}`` (4H, in_k), ``weight_hh_l{k}`` (4H, H_out), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (4H,), ``weight_hr_l{k}`` (proj_size, H) when projecting, and the same with a
    ``_reverse`` suffix for the second direction; H_out is ``proj_size`` or ``hidden_size``. All
    are initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) with numpy's global generator.
    Like torch, a new module is in training mode (dropout active); call ``eval()`` for inference.
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
    ) -> None:
        super().__init__(
            mode="LSTM", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
        )

    def forward(
        self, input: Any, hx: Optional[Tuple[Any, Any]] = None, lengths: Any = None
    ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Runs the sequence; returns ``(output, (h_n, c_n))``.

        ``input`` is (T, B, input_size), (B, T, input_size) with ``batch_first``, or unbatched
        (T, input_size). ``hx = (h_0, c_0)`` with h_0 (L*D, B, H_out) and c_0 (L*D, B, hidden_size)
        (never batch-first; (L*D, ·) for unbatched input) defaults to zeros. ``output`` is
        (T, B, D*H_out) (batch-first if the input is), h_n and c_n have the shapes of h_0 and c_0,
        with row ``layer * D + direction``.

        ``lengths`` (one int per batch element, each in 0..T; a scalar for unbatched input) runs a
        padded batch as torch runs the matching ``pack_padded_sequence(input, lengths,
        enforce_sorted=False)``: each sequence only over its own steps (the reverse direction
        starts at its last valid step), outputs past a sequence's end are zero, and h_n/c_n hold
        the state at its end. A length of 0, which torch's packing refuses, follows the same rule:
        zero outputs, and h_n/c_n equal to h_0/c_0.
        """
        states = None if hx is None else tuple(as_float32(a, f"hx[{i}]") for i, a in enumerate(lstm_state(hx, "LSTM")))
        output, (h_n, c_n) = self._run(input, states, lengths)
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """Multi-layer gated recurrent unit (``torch.nn.GRU``) in float32.

    For each step, with gate rows r, z, n: ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``,
    ``n = tanh(x_n + r*h_n)`` where ``x_* = x W_i*^T + b_i*`` and ``h_* = h W_h*^T + b_h*`` (so
    ``b_hn`` sits inside the reset product, as in torch), and ``h' = (h - n)*z + n``.

    Parameters ``weight_ih_l{k}`` (3H, in_k), ``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (3H,), plus ``_reverse`` ones when bidirectional; initialised from
    U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)). New modules are in training mode.
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
    ) -> None:
        super().__init__(
            mode="GRU", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
        )

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Runs the sequence; returns ``(output, h_n)``.

        Shapes as for :meth:`LSTM.forward` with H_out = hidden_size and a single state ``hx``
        (L*D, B, H) (or (L*D, H) for unbatched input); ``lengths`` works the same way.
        """
        states = None if hx is None else (as_float32(hx, "hx"),)
        output, (h_n,) = self._run(input, states, lengths)
        return output, h_n


class RNN(_RNNBase):
    """Multi-layer Elman RNN (``torch.nn.RNN``) in float32: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``
    with ``act`` tanh or ReLU (``nonlinearity``).

    As in torch, ``nonlinearity`` is the fourth positional argument. Parameters ``weight_ih_l{k}``
    (H, in_k), ``weight_hh_l{k}`` (H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,), plus ``_reverse``
    ones when bidirectional; initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)). New
    modules are in training mode.
    """

    _modes = ("RNN_TANH", "RNN_RELU")

    _rank_suffix = " tensor instead"

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
    ) -> None:
        super().__init__(
            mode=elman_mode(nonlinearity), input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
            bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """Runs the sequence; returns ``(output, h_n)``, shaped as for :meth:`GRU.forward`."""
        states = None if hx is None else (as_float32(hx, "hx"),)
        output, (h_n,) = self._run(input, states, lengths)
        return output, h_n


# -- cells ----------------------------------------------------------------------------------------


class _RNNCellBase(Module):
    """What the cells share: parameters ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` with
    torch's shapes and initialisation, and torch's input and state checks."""

    input_size: int
    hidden_size: int
    bias: bool
    #: The modes of this class's instances (see ``_recurrent_config``).
    _modes: Tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        """torch's ``LSTMCell`` and ``GRUCell`` constructor (``RNNCell`` adds ``nonlinearity``);
        the gate rows come from the class's mode."""
        super().__init__()
        num_chunks = GATES[self._modes[0]]
        input_size, hidden_size = cell_sizes(input_size, hidden_size, min_hidden_size=0)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
        self.register_parameter("weight_ih", uniform((num_chunks * hidden_size, input_size), bound))
        self.register_parameter("weight_hh", uniform((num_chunks * hidden_size, hidden_size), bound))
        self.register_parameter("bias_ih", uniform((num_chunks * hidden_size,), bound) if bias else None)
        self.register_parameter("bias_hh", uniform((num_chunks * hidden_size,), bound) if bias else None)

    def _step(self, mode: str, input: Any, hx: Optional[Sequence[Any]], hx_names: Sequence[str]) -> State:
        """One step of the ``mode`` cell. ``hx`` holds the state components (None: zeros), named
        ``hx_names`` in messages. Input (B, I) or unbatched (I,); the state matches it."""
        name = type(self).__name__
        x = as_float32(input)
        batched = check_cell_input(name, x, self.input_size)
        states: Optional[State] = None
        if hx is not None:
            states = tuple(as_float32(h, n) for h, n in zip(hx, hx_names))
            for index, state in enumerate(states):
                check_cell_state(name, state, index, len(states), x, self.hidden_size)
        if not batched:
            x = x[None]
            states = None if states is None else tuple(s[None] for s in states)
        if states is None:
            zeros = np.zeros((x.shape[0], self.hidden_size), dtype=np.float32)
            states = tuple(zeros for _ in hx_names)
        w = _CellWeights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None)
        new_states = _CELLS[mode](_linear(x, w.w_ih, w.b_ih), states, w)
        if not batched:
            new_states = tuple(s[0] for s in new_states)
        return tuple(np.ascontiguousarray(s, dtype=np.float32) for s in new_states)

    def extra_repr(self) -> str:
        return cell_repr(self)

    def _config(self) -> Dict[str, Any]:
        return cell_config(self)

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        return matrices_spec(cell_matrices(config, cls._modes, min_hidden_size=0), lambda shape: float32(*shape))


class LSTMCell(_RNNCellBase):
    """One LSTM step (``torch.nn.LSTMCell``) in float32, with :class:`LSTM`'s math.

    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,), gate
    rows i, f, g, o; initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    _modes = ("LSTM",)

    def forward(self, input: Any, hx: Optional[Tuple[Any, Any]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(h', c')`` from ``input`` (B, I) or (I,) and ``hx = (h, c)``, each (B, H) or (H,)
        like the input (zeros when None)."""
        h, c = self._step("LSTM", input, None if hx is None else lstm_state(hx, "LSTMCell"), ("hx[0]", "hx[1]"))
        return h, c


class GRUCell(_RNNCellBase):
    """One GRU step (``torch.nn.GRUCell``) in float32, with :class:`GRU`'s math.

    Parameters ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,), gate
    rows r, z, n; initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    _modes = ("GRU",)

    def forward(self, input: Any, hx: Any = None) -> np.ndarray:
        """``h'`` from ``input`` (B, I) or (I,) and ``hx`` (B, H) or (H,) like the input (zeros when None)."""
        (h,) = self._step("GRU", input, None if hx is None else (hx,), ("hidden",))
        return h


class RNNCell(_RNNCellBase):
    """One Elman RNN step (``torch.nn.RNNCell``) in float32: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``
    with ``act`` tanh or ReLU.

    Parameters ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,);
    initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)). Unlike torch, which fails only
    at the first call, an unknown ``nonlinearity`` is a ValueError here already.
    """

    _modes = ("RNN_TANH", "RNN_RELU")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        elman_mode(nonlinearity)
        super().__init__(input_size=input_size, hidden_size=hidden_size, bias=bias)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> np.ndarray:
        """``h'`` from ``input`` (B, I) or (I,) and ``hx`` (B, H) or (H,) like the input (zeros when None)."""
        (h,) = self._step(elman_mode(self.nonlinearity), input, None if hx is None else (hx,), ("hidden",))
        return h
