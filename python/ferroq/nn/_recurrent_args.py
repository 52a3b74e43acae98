"""The arguments of every recurrent module, checked once for both families: the float ``LSTM``,
``GRU``, ``RNN`` and cells of ``ferroq.nn`` and the dynamic quantized ones of
``ferroq.nn.quantized.dynamic``. Messages and exception types are PyTorch's where PyTorch has the
check; where the two families of PyTorch modules differ (the float ``torch.nn.RNNBase`` checks more
than the quantized ``RNNBase``), the caller says which rule applies through a parameter.

``lengths`` has one contract in both families: one integer per batch element (a scalar is allowed
for an unbatched input), each between 0 and the sequence length T. A sequence runs over its own
steps only; its outputs past its end are zero and its final state is the state after its last
valid step, so a length of 0 gives all-zero outputs and the initial state back. (PyTorch's
``pack_padded_sequence`` refuses a length of 0; ferroq accepts it because the result is well
defined by the rule above.)
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .._arrays import to_numpy

#: Gate rows per hidden unit of each mode (PyTorch's mode names).
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
#: The Elman modes by nonlinearity.
NONLINEARITY_MODES = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}


# -- constructor arguments --------------------------------------------------------------------------


def check_mode(mode: Any) -> str:
    """One of :data:`GATES`' modes (ValueError, PyTorch's message, otherwise)."""
    if mode not in GATES:
        raise ValueError(f"Unrecognized RNN mode: {mode}")
    return str(mode)


def elman_mode(nonlinearity: Any) -> str:
    """The mode of an Elman RNN or RNNCell with ``nonlinearity`` ("tanh" or "relu")."""
    if nonlinearity not in NONLINEARITY_MODES:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return NONLINEARITY_MODES[nonlinearity]


def check_int(name: str, value: Any) -> int:
    """``value`` as an int; TypeError (PyTorch's message) for anything that is not an integer."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; TypeError (PyTorch's message) for anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    return bool(value)


def check_dropout(dropout: Any, num_layers: int) -> float:
    """``dropout`` as a float in [0, 1] (ValueError otherwise); warns, as PyTorch does, when it is
    non-zero for a single layer (it only acts between layers). The warning points at the code that
    built the module (called from a module's ``__init__`` through its base's)."""
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= float(dropout) <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
        )
    if float(dropout) > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            stacklevel=4,
        )
    return float(dropout)


def stack_sizes(
    mode: str, input_size: Any, hidden_size: Any, num_layers: Any, proj_size: Any, *, min_input_size: int
) -> Tuple[int, int, int, int]:
    """``(input_size, hidden_size, num_layers, proj_size)`` of a recurrent stack, checked with
    PyTorch's messages: integers (TypeError), ``hidden_size`` and ``num_layers`` at least 1,
    ``input_size`` at least ``min_input_size`` (1 for the float modules, as ``torch.nn``; the
    quantized modules allow 0), ``0 <= proj_size < hidden_size`` and only for LSTM."""
    input_size = check_int("input_size", input_size)
    hidden_size = check_int("hidden_size", hidden_size)
    num_layers = check_int("num_layers", num_layers)
    proj_size = check_int("proj_size", proj_size)
    if input_size < min_input_size:
        raise ValueError("input_size must be greater than zero" if min_input_size else f"input_size must be >= 0, got {input_size}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")
    return input_size, hidden_size, num_layers, proj_size


def cell_sizes(input_size: Any, hidden_size: Any, *, min_hidden_size: int) -> Tuple[int, int]:
    """``(input_size, hidden_size)`` of a cell: integers (TypeError), not negative, and
    ``hidden_size`` at least ``min_hidden_size`` (0 for the float cells, as ``torch.nn``; 1 for the
    quantized ones, whose kernels need a hidden state)."""
    input_size = check_int("input_size", input_size)
    hidden_size = check_int("hidden_size", hidden_size)
    if input_size < 0 or hidden_size < 0:
        raise ValueError(f"input_size and hidden_size must be >= 0, got {input_size} and {hidden_size}")
    if hidden_size < min_hidden_size:
        raise ValueError("hidden_size must be greater than zero")
    return input_size, hidden_size


# -- call arguments -------------------------------------------------------------------------------


def lstm_state(hx: Any, owner: str) -> Tuple[Any, Any]:
    """The ``(h, c)`` pair an LSTM or LSTMCell takes as its state (``(None, None)`` for None)."""
    if hx is None:
        return None, None
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{owner}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
    return hx[0], hx[1]


def check_input_rank(owner: str, x: np.ndarray, ranks: Tuple[int, int], suffix: str = " instead") -> bool:
    """PyTorch's check that a stack's input is 2-D or 3-D (a cell's 1-D or 2-D: ``ranks``);
    True when the input is batched (the higher rank). ``suffix`` ends the message: the float
    ``RNN`` says ``"tensor instead"``, the quantized stacks ``"input instead"``."""
    if x.ndim not in ranks:
        raise ValueError(f"{owner}: Expected input to be {ranks[0]}D or {ranks[1]}D, got {x.ndim}D{suffix}")
    return x.ndim == ranks[1]


def check_stack_state_ranks(states: Sequence[np.ndarray], batched: bool) -> None:
    """PyTorch's check that a stack's initial states have the rank the input implies (3-D for a
    batched input, 2-D for an unbatched one)."""
    want = 3 if batched else 2
    if all(s.ndim == want for s in states):
        return
    kind = "batched 3-D" if batched else "unbatched 2-D"
    if len(states) == 2:
        dims = ", ".join(f"{s.ndim}-D" for s in states)
        raise ValueError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")
    raise ValueError(f"For {kind} input, hx should also be {want}-D but got {states[0].ndim}-D tensor")


def check_stack_state_shapes(states: Sequence[np.ndarray], expected: Sequence[Tuple[int, int, int]]) -> None:
    """PyTorch's check of each (batched) initial state's shape: ``hidden`` for GRU and RNN,
    ``hidden[0]``/``hidden[1]`` for LSTM."""
    for index, (state, shape) in enumerate(zip(states, expected)):
        if state.shape != tuple(shape):
            label = f"hidden[{index}]" if len(states) == 2 else "hidden"
            raise ValueError(f"Expected {label} size {tuple(shape)}, got {list(state.shape)}")


def check_cell_input(owner: str, x: np.ndarray, input_size: int) -> bool:
    """PyTorch's checks of a cell's input: 1-D or 2-D with ``input_size`` features; True when batched."""
    batched = check_input_rank(owner, x, (1, 2))
    if x.shape[-1] != input_size:
        raise ValueError(f"input has inconsistent input_size: got {x.shape[-1]}, expected {input_size}")
    return batched


def check_cell_state(owner: str, state: np.ndarray, index: int, count: int, x: np.ndarray, hidden_size: int) -> None:
    """PyTorch's checks of state ``index`` of a cell's ``count`` states (``hx[0]``, ``hx[1]`` of an
    LSTMCell, ``hidden`` of the others) against the input ``x``: 1-D or 2-D like the input, the
    same batch size, ``hidden_size`` features."""
    name, label = (f"hx[{index}]", f"[{index}]") if count == 2 else ("hidden", "")
    if state.ndim not in (1, 2):
        raise ValueError(f"{owner}: Expected {name} to be 1D or 2D, got {state.ndim}D instead")
    if state.ndim != x.ndim:
        raise ValueError(f"{owner}: Expected {name} to be {x.ndim}D like the input, got {state.ndim}D")
    batch, rows = (x.shape[0], state.shape[0]) if x.ndim == 2 else (1, 1)
    if rows != batch:
        raise ValueError(f"Input batch size {batch} doesn't match hidden{label} batch size {rows}")
    if state.shape[-1] != hidden_size:
        raise ValueError(f"hidden{label} has inconsistent hidden_size: got {state.shape[-1]}, expected {hidden_size}")


def check_lengths(value: Any, batch: int, steps: int, batched: bool) -> Optional[np.ndarray]:
    """The ``lengths=`` argument of a stack's forward as int64 (a new C-ordered array), or None.

    One integer per batch element, each between 0 and ``steps`` (a scalar or one entry for an
    unbatched input). TypeError for a non-integer dtype (booleans included; an empty list has no
    dtype to check), ValueError for a wrong shape or a value out of range."""
    if value is None:
        return None
    lengths = to_numpy(value)
    if lengths.dtype.kind not in "iu" and lengths.size:
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    if lengths.ndim == 0 and not batched:
        lengths = lengths.reshape(1)
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have one entry per batch element: expected shape ({batch},), got {tuple(lengths.shape)}"
        )
    lengths = lengths.astype(np.int64)
    out_of_range = (lengths < 0) | (lengths > steps)
    if out_of_range.any():
        raise ValueError(f"lengths must be between 0 and the sequence length {steps}, got {lengths[out_of_range][0]}")
    return np.ascontiguousarray(lengths)
