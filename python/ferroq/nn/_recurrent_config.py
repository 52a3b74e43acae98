"""The hyperparameters of the recurrent modules as both families print, save and check them: the
parts of ``extra_repr``, ``_config`` and ``_state_spec`` that the float LSTM/GRU/RNN and cells of
``ferroq.nn`` share with the dynamic quantized ones of ``ferroq.nn.quantized.dynamic``. Each family
adds its own (the quantized modules their ``dtype`` and ``reduce_range``).

A class names the modes its instances take in ``_modes`` (``("LSTM",)``, ``("GRU",)`` or the two
Elman modes ``("RNN_TANH", "RNN_RELU")``); the first gives the gate rows.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._state_spec import Config, rnn_parameter_shapes
from ._recurrent_args import GATES, NONLINEARITY_MODES

#: A weight matrix of a module: ``(weight name, shape, bias name or None)``.
MatrixSpec = Tuple[str, Tuple[int, int], Optional[str]]


def stack_repr(m: Any, *, nonlinearity: bool) -> str:
    """torch's ``RNNBase.extra_repr``: the sizes, then the arguments that differ from their
    defaults; with ``nonlinearity``, a ReLU RNN's after ``num_layers`` (torch's float RNN omits it)."""
    s = f"{m.input_size}, {m.hidden_size}"
    if m.proj_size != 0:
        s += f", proj_size={m.proj_size}"
    if m.num_layers != 1:
        s += f", num_layers={m.num_layers}"
    if nonlinearity and getattr(m, "nonlinearity", "tanh") != "tanh":
        s += f", nonlinearity={m.nonlinearity}"
    if m.bias is not True:
        s += f", bias={m.bias}"
    if m.batch_first is not False:
        s += f", batch_first={m.batch_first}"
    if m.dropout != 0:
        s += f", dropout={m.dropout}"
    if m.bidirectional is not False:
        s += f", bidirectional={m.bidirectional}"
    return s


def cell_repr(m: Any) -> str:
    """torch's ``RNNCellBase.extra_repr``: the sizes, then ``bias`` and ``nonlinearity`` when not the default."""
    s = f"{m.input_size}, {m.hidden_size}"
    if m.bias is not True:
        s += f", bias={m.bias}"
    nonlinearity = getattr(m, "nonlinearity", "tanh")
    if nonlinearity != "tanh":
        s += f", nonlinearity={nonlinearity}"
    return s


def stack_config(m: Any) -> Dict[str, Any]:
    """The constructor arguments of a stack (``proj_size`` for LSTM, ``nonlinearity`` for RNN)."""
    config: Dict[str, Any] = {
        "input_size": m.input_size,
        "hidden_size": m.hidden_size,
        "num_layers": m.num_layers,
        "bias": m.bias,
        "batch_first": m.batch_first,
        "dropout": m.dropout,
        "bidirectional": m.bidirectional,
    }
    if m.mode == "LSTM":
        config["proj_size"] = m.proj_size
    return _with_nonlinearity(m, config)


def cell_config(m: Any) -> Dict[str, Any]:
    """The constructor arguments of a cell (``nonlinearity`` for RNNCell)."""
    return _with_nonlinearity(m, {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": m.bias})


def _with_nonlinearity(m: Any, config: Dict[str, Any]) -> Dict[str, Any]:
    if hasattr(m, "nonlinearity"):
        config["nonlinearity"] = m.nonlinearity
    return config


def stack_matrices(config: Config, modes: Tuple[str, ...], *, min_input_size: int) -> List[MatrixSpec]:
    """The weight matrices a stack of ``modes`` built from ``config`` has, after checking the
    configuration's shared entries (``input_size`` at least ``min_input_size``)."""
    hidden_size = config.integer("hidden_size", 1)
    shapes = rnn_parameter_shapes(
        GATES[modes[0]],
        config.integer("input_size", min_input_size),
        hidden_size,
        config.count("num_layers", 1),
        config.flag("bidirectional", False),
        config.integer("proj_size", 0, hidden_size - 1, 0) if modes == ("LSTM",) else 0,
        config.flag("bias", True),
    )
    config.flag("batch_first", False)
    config.number("dropout", 0.0, 1.0, 0.0)
    _check_nonlinearity(config, modes)
    return shapes


def cell_matrices(config: Config, modes: Tuple[str, ...], *, min_hidden_size: int) -> List[MatrixSpec]:
    """The weight matrices of a cell of ``modes`` built from ``config`` (``hidden_size`` at least
    ``min_hidden_size``), after checking the configuration's shared entries."""
    input_size, hidden_size = config.integer("input_size"), config.integer("hidden_size", min_hidden_size)
    bias = config.flag("bias", True)
    _check_nonlinearity(config, modes)
    rows = GATES[modes[0]] * hidden_size
    matrices = [("weight_ih", (rows, input_size), "bias_ih"), ("weight_hh", (rows, hidden_size), "bias_hh")]
    return [(w, s, b if bias else None) for w, s, b in matrices]


def _check_nonlinearity(config: Config, modes: Tuple[str, ...]) -> None:
    if len(modes) == 2:
        config.choice("nonlinearity", tuple(NONLINEARITY_MODES), "tanh")
