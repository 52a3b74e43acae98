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
  each sequence's state after its last valid step; a length may be 0);
- LSTM ``proj_size``: ``h = W_hr (o * tanh(c))``, computed as a bias-free dynamic quantized
  Linear whose input is quantized per step over the running batch rows, like ``h``.

State dict keys are the float module's parameter names: ``weight_ih_l{k}{suffix}``,
``weight_hh_l{k}{suffix}`` and, with ``proj_size``, ``weight_hr_l{k}{suffix}`` (qint8 QTensor, or
float16 array for dtype float16), and ``bias_ih_l{k}{suffix}``, ``bias_hh_l{k}{suffix}``
(float32) when ``bias``; ``suffix`` is ``""`` or ``"_reverse"``. ``reduce_range`` and the
hyperparameters are not in it: build the module with the same arguments before loading.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

import numpy as np

from ...._arrays import as_float32, to_numpy
from ...._dtypes import qint8
from ...._state_spec import Config, StateSpec, matrices_spec, quantized_weight, rnn_parameter_shapes
from ._recurrent import (
    GATES,
    NONLINEARITY_MODES,
    CellLayout,
    Matrix,
    QuantizedRecurrent,
    check_dtype,
    check_size,
    check_state,
    float_module_dtype,
)

_M = TypeVar("_M", bound="RNNBase")

__all__ = ["RNNBase", "LSTM", "GRU", "RNN"]


class RNNBase(QuantizedRecurrent):
    """A stack of recurrent layers (the base of :class:`LSTM`, :class:`GRU`, :class:`RNN`).

    ``mode`` is "LSTM", "GRU", "RNN_TANH" or "RNN_RELU". ``dropout`` is kept for the repr and
    checkpoints but never applied: these are inference modules.
    """

    _version = 1

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: Any = qint8,
        reduce_range: bool = True,
    ) -> None:
        super().__init__()
        if mode not in GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        self.mode = mode
        self.input_size = check_size(input_size, "input_size", 0)
        self.hidden_size = check_size(hidden_size, "hidden_size", 1)
        self.num_layers = check_size(num_layers, "num_layers", 1)
        self.proj_size = check_size(proj_size, "proj_size", 0)
        if self.proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=2,
            )
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        self.reduce_range = bool(reduce_range)
        self.training = False
        self._init_weights()

    def _config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype.name,
            "reduce_range": self.reduce_range,
        }
        if self.mode == "LSTM":
            config["proj_size"] = self.proj_size
        elif self.mode in ("RNN_TANH", "RNN_RELU"):
            config["nonlinearity"] = "tanh" if self.mode == "RNN_TANH" else "relu"
        return config

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        hidden_size = config.integer("hidden_size", 1)
        shapes = rnn_parameter_shapes(
            GATES[cls._float_modes[0]],
            config.integer("input_size"),
            hidden_size,
            config.count("num_layers", 1),
            config.flag("bidirectional", False),
            config.integer("proj_size", 0, hidden_size - 1, 0) if cls._float_modes == ("LSTM",) else 0,
            config.flag("bias", True),
        )
        dtype = config.choice("dtype", ("qint8", "float16"), "qint8")
        config.flag("batch_first", False)
        config.number("dropout", 0.0, 1.0, 0.0)
        config.flag("reduce_range", True)
        if len(cls._float_modes) == 2:
            config.choice("nonlinearity", tuple(NONLINEARITY_MODES), "tanh")
        return matrices_spec(shapes, lambda shape: quantized_weight(dtype, shape))

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
        name = self._get_name().replace("DynamicQuantized", "")
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {x.ndim}D input instead")
        batched = x.ndim == 3
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}")
        batch_first = self.batch_first and batched
        x3 = x if batched else x[:, None, :]
        steps, batch = (x3.shape[1], x3.shape[0]) if batch_first else (x3.shape[0], x3.shape[1])
        if steps == 0:
            raise ValueError("Expected sequence length to be larger than 0 in RNN")

        initial = self._initial_states(states, batched, batch)
        lengths = _check_lengths(lengths, batch, steps, batched)
        y, h_n, c_n = self._run(x3, initial[0], initial[1] if len(initial) > 1 else None, lengths, batch_first)
        finals = (h_n,) if c_n is None else (h_n, c_n)
        if not batched:
            return y[:, 0, :], tuple(f[:, 0, :] for f in finals)
        return y, finals

    def _initial_states(self, states: Tuple[Optional[Any], ...], batched: bool, batch: int) -> List[Optional[np.ndarray]]:
        """The initial states as 3-D float32 arrays (None for zeros), shapes checked."""
        if all(s is None for s in states):
            return [None] * len(states)
        if any(s is None for s in states):
            raise ValueError("hx must hold both h_0 and c_0, or be None")
        arrays = [check_state(s, "hx") for s in states]
        _check_state_dims(arrays, batched)
        arrays = [a if batched else a[:, None, :] for a in arrays]
        sizes = (self._output_size, self.hidden_size)
        for i, (a, size) in enumerate(zip(arrays, sizes)):
            expected = (self.num_layers * self._directions, batch, size)
            if a.shape != expected:
                label = f"hidden[{i}]" if len(states) == 2 else "hidden"
                raise ValueError(f"Expected {label} size {expected}, got {list(a.shape)}")
        return list(arrays)

    # -- conversion --------------------------------------------------------------------------

    #: The float modules' ``mode`` values a subclass converts.
    _float_modes: Tuple[str, ...] = ()

    @classmethod
    def _from_float_module(cls: Type[_M], mod: Any, **config: Any) -> _M:
        """Builds ``cls(**config)`` with ``mod``'s sizes and flags, then quantizes its weights."""
        dtype = float_module_dtype(mod, cls.__name__, "weight_ih_l0", cls._float_modes)
        module = cls(
            input_size=int(mod.input_size),
            hidden_size=int(mod.hidden_size),
            num_layers=int(getattr(mod, "num_layers", 1)),
            bias=bool(getattr(mod, "bias", True)),
            batch_first=bool(getattr(mod, "batch_first", False)),
            dropout=float(getattr(mod, "dropout", 0.0)),
            bidirectional=bool(getattr(mod, "bidirectional", False)),
            dtype=dtype,
            **config,
        )
        module._set_from_float(mod)
        return module

    # -- printing ----------------------------------------------------------------------------

    def _get_name(self) -> str:
        return "DynamicQuantized" + type(self).__name__

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity=relu"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dtype is not qint8:
            s += f", dtype={self.dtype!r}"
        return s + self._reduce_range_repr()


class LSTM(RNNBase):
    """Dynamic quantized LSTM: ``LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, *, dtype=qint8,
    reduce_range=True)``.

    ``forward(input, hx=None, lengths=None) -> (output, (h_n, c_n))``, shapes as ``torch.nn.LSTM``.
    """

    _float_modes = ("LSTM",)

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
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, dtype, reduce_range
        )

    def forward(
        self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None
    ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """``input``: ``(steps, batch, input_size)`` (``(batch, steps, ...)`` with batch_first) or
        unbatched ``(steps, input_size)``; ``hx``: ``(h_0, c_0)``, each ``(layers * directions,
        batch, size)`` (never batch-first), zeros when None; ``lengths``: valid steps per batch
        element. Returns ``output, (h_n, c_n)``."""
        if hx is None:
            states: Tuple[Optional[Any], ...] = (None, None)
        elif isinstance(hx, (tuple, list)) and len(hx) == 2:
            states = (hx[0], hx[1])
        else:
            raise TypeError(f"LSTM expects hx as a tuple (h_0, c_0), got {type(hx).__name__}")
        y, (h_n, c_n) = self._forward(input, states, lengths)
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

    _float_modes = ("GRU",)

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
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, dtype, reduce_range
        )

    def forward(self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`LSTM.forward` with ``hx = h_0``; returns ``output, h_n``."""
        y, (h_n,) = self._forward(input, (hx,), lengths)
        return y, h_n

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

    _float_modes = ("RNN_TANH", "RNN_RELU")

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
        if nonlinearity not in NONLINEARITY_MODES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(
            NONLINEARITY_MODES[nonlinearity],
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            dtype,
            reduce_range,
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Optional[Any] = None, lengths: Optional[Any] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`GRU.forward`."""
        y, (h_n,) = self._forward(input, (hx,), lengths)
        return y, h_n

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "RNN":
        """Quantizes a float RNN (see :meth:`LSTM.from_float`); ``nonlinearity`` is copied."""
        return cls._from_float_module(mod, nonlinearity=str(getattr(mod, "nonlinearity", "tanh")))


def _check_state_dims(states: List[np.ndarray], batched: bool) -> None:
    """PyTorch's checks that the initial states have as many dimensions as the input implies."""
    want = 3 if batched else 2
    if all(s.ndim == want for s in states):
        return
    kind = "batched 3-D" if batched else "unbatched 2-D"
    if len(states) == 2:
        dims = ", ".join(f"{s.ndim}-D" for s in states)
        raise ValueError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")
    raise ValueError(f"For {kind} input, hx should also be {want}-D but got {states[0].ndim}-D tensor")


def _check_lengths(value: Any, batch: int, steps: int, batched: bool) -> Optional[np.ndarray]:
    """The per-element valid step counts as int64, checked; a scalar is allowed for unbatched input."""
    if value is None:
        return None
    lengths = to_numpy(value)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    if lengths.ndim == 0 and not batched:
        lengths = lengths.reshape(1)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have one entry per batch element: expected shape ({batch},), got {lengths.shape}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > steps):
        bad = lengths[(lengths < 0) | (lengths > steps)][0]
        raise ValueError(f"lengths must be between 0 and the sequence length {steps}, got {bad}")
    return np.array(lengths, dtype=np.int64, order="C")  # a copy: native, aligned, C order

