"""What the dynamic quantized recurrent modules share: their weight layout, conversion from float
parameters, packing into the Rust core, state dicts, pickling and ``get_weight``/``get_bias``.

A module's weights live in dicts keyed by the float module's parameter names: ``_matrices`` (each
matrix packed, ``_core.PackedLinear`` or ``_core.PackedLinearFp16``: the only copy of the weights,
shared with the ``_core.PackedRNN`` that runs them), ``_qparams`` (the qint8 weights' qparams) and
``_biases`` (float32 ndarray). ``get_weight`` reads the weights back from the packed form.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Type, TypeVar, Union

import numpy as np

from .... import _core
from ...._arrays import to_numpy
from ...._dtypes import DType, as_dtype, float16, qint8
from ...._tensor import QTensor
from ...._state_spec import Config, StateSpec, matrices_spec, quantized_weight
from ....quantization.qconfig import weight_observer_for
from ..._recurrent_args import GATES, check_mode
from ..._recurrent_config import MatrixSpec
from ...module import Module
from .._overflow import input_levels, warn_if_accumulator_can_overflow
from .._weights import (
    QParams,
    float_bias,
    float_weight,
    observer_dtype,
    pack_dynamic,
    qparams_of,
    qtensor_from,
    quantize_weight,
    to_fp16,
    weight_qparams,
)
from ._reduce_range import PackedReduceRange

Weight = Union[QTensor, np.ndarray]
_Q = TypeVar("_Q", bound="QuantizedRecurrent")


class Matrix(NamedTuple):
    """One weight matrix of a cell: its parameter name, shape, and its bias's name (or None)."""

    weight: str
    shape: Tuple[int, int]
    bias: Optional[str]


class CellLayout(NamedTuple):
    """The matrices of one layer in one direction: ``W_ih``, ``W_hh``, and the LSTM projection
    ``W_hr`` (bias-free) when ``proj_size > 0``."""

    ih: Matrix
    hh: Matrix
    hr: Optional[Matrix]

    def matrices(self) -> List[Matrix]:
        return [self.ih, self.hh] + ([self.hr] if self.hr is not None else [])


def check_dtype(dtype: Any) -> DType:
    """qint8 or float16; other dtypes have no dynamic recurrent kernels."""
    dt = as_dtype(dtype)
    if dt is not qint8 and dt is not float16:
        raise NotImplementedError(f"dynamic quantized recurrent modules support dtype ferroq.qint8 or ferroq.float16, got {dt!r}")
    return dt


def float_module_dtype(mod: Any, cls_name: str, weight_name: str, modes: Tuple[str, ...]) -> DType:
    """The weight dtype ``mod.qconfig`` asks for (default qint8), after checking that ``mod``
    looks like a float module of one of ``modes``: it has ``input_size`` and ``hidden_size``, its
    ``mode`` (when it has one) is one of ``modes``, and ``weight_name`` has the gate rows."""
    for attr in ("input_size", "hidden_size"):
        if not hasattr(mod, attr):
            raise TypeError(
                f"{cls_name}.from_float expects a float {cls_name} (ferroq.nn or torch.nn) or an object with its "
                f"attributes and parameters; {type(mod).__name__} has no {attr!r}"
            )
    mode = getattr(mod, "mode", None)
    if isinstance(mode, str) and mode not in modes:
        raise TypeError(f"{cls_name}.from_float expects a float {cls_name}, got a module of mode {mode!r}")
    weight = getattr(mod, weight_name, None)
    if weight is not None:
        rows, gates = to_numpy(weight).shape[0], GATES[modes[0]]
        if rows != gates * int(mod.hidden_size):
            raise TypeError(
                f"{cls_name}.from_float expects a float {cls_name}: {weight_name} has {rows} rows, "
                f"expected {gates} x hidden_size = {gates * int(mod.hidden_size)}"
            )
    return observer_dtype(weight_observer_for(mod))


class QuantizedRecurrent(PackedReduceRange, Module):
    """Base of the dynamic quantized LSTM/GRU/RNN and their cells (not used directly).

    Subclasses check and set their size attributes, then call :meth:`_init_quantized`; they
    define :meth:`_layout`, :meth:`_core_args` and the hyperparameters they share with the float
    modules (:meth:`_float_config`, :meth:`_float_repr`, :meth:`_float_matrices`).
    """

    mode: str
    dtype: DType
    _matrices: Dict[str, Any]
    _qparams: Dict[str, Optional[QParams]]
    _biases: Dict[str, np.ndarray]
    _packed: Any
    #: The modes of a subclass's instances, also the float modules' it converts (see ``_recurrent_config``).
    _modes: Tuple[str, ...] = ()
    #: The float module's first weight, whose rows ``from_float`` checks.
    _first_weight = "weight_ih"

    def _init_quantized(self, mode: str, bias: bool, dtype: Any, reduce_range: bool) -> None:
        """The end of a constructor: the mode, bias and dtype checked and set, zero weights packed."""
        self.mode = check_mode(mode)
        self.bias = bool(bias)
        self.dtype = check_dtype(dtype)
        self.training = False
        self._init_weights(bool(reduce_range))

    def _float_config(self) -> Dict[str, Any]:  # pragma: no cover - every subclass overrides it
        """The constructor arguments the float module of the same kind has."""
        raise NotImplementedError

    def _float_repr(self) -> str:  # pragma: no cover
        """The float module's ``extra_repr``."""
        raise NotImplementedError

    @classmethod
    def _float_matrices(cls, config: Config) -> List[MatrixSpec]:  # pragma: no cover
        """The weight matrices of a module built from ``config``, its float entries checked."""
        raise NotImplementedError

    def _config(self) -> Dict[str, Any]:
        return {**self._float_config(), "dtype": self.dtype.name, "reduce_range": self.reduce_range}

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        matrices = cls._float_matrices(config)
        dtype = config.choice("dtype", ("qint8", "float16"), "qint8")
        config.flag("reduce_range", True)
        return matrices_spec(matrices, lambda shape: quantized_weight(dtype, shape))

    def _get_name(self) -> str:
        return "DynamicQuantized" + type(self).__name__

    def extra_repr(self) -> str:
        s = self._float_repr()
        if self.dtype is not qint8:
            s += f", dtype={self.dtype!r}"
        return s if self.reduce_range else s + ", reduce_range=False"

    @classmethod
    def _from_float_module(cls: Type[_Q], mod: Any, **config: Any) -> _Q:
        """Builds ``cls(**config)`` with ``mod``'s sizes, bias and weight dtype, then quantizes its weights."""
        dtype = float_module_dtype(mod, cls.__name__, cls._first_weight, cls._modes)
        build: Callable[..., _Q] = cls  # every subclass's constructor takes these keywords
        module = build(
            input_size=int(mod.input_size), hidden_size=int(mod.hidden_size), bias=bool(getattr(mod, "bias", True)), dtype=dtype, **config
        )
        module._set_from_float(mod)
        return module

    def _layout(self) -> List[CellLayout]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _core_args(self) -> Tuple[int, int, int, int, bool]:  # pragma: no cover
        """``(input_size, hidden_size, proj_size, num_layers, bidirectional)`` for the core."""
        raise NotImplementedError

    def _init_weights(self, reduce_range: bool) -> None:
        """Zero weights (scale 1, zero point 0 for qint8; costing no memory until replaced) and
        zero biases, packed with ``reduce_range``."""
        matrices: Dict[str, Any] = {}
        qparams: Dict[str, Optional[QParams]] = {}
        biases: Dict[str, np.ndarray] = {}
        cells = []
        unit = qparams_of(QTensor.from_int_repr(np.zeros(0, np.int8), 1.0, 0))
        for cell in self._layout():
            packed = []
            for m in cell.matrices():
                bias = None if m.bias is None else np.zeros(m.shape[0], dtype=np.float32)
                if m.bias is not None and bias is not None:
                    biases[m.bias] = bias
                if check_dtype(self.dtype) is qint8:
                    matrix: Any = _core.PackedLinear.zeros(m.shape[0], m.shape[1], bias, gates=self._gates_of(cell, m))
                    qparams[m.weight] = unit
                else:
                    matrix = _core.PackedLinearFp16(np.zeros(m.shape, dtype=np.uint16), bias)
                    qparams[m.weight] = None
                matrices[m.weight] = matrix
                packed.append(matrix)
            cells.append((packed[0], packed[1], packed[2] if len(packed) > 2 else None))
        core = _core.PackedRNN(self.mode, *self._core_args(), cells, reduce_range=bool(reduce_range))
        self._matrices, self._qparams, self._biases, self._packed = matrices, qparams, biases, core
        self._warn_if_accumulator_can_overflow()

    def _gates_of(self, cell: CellLayout, m: Matrix) -> int:
        """The gates stacked in the rows of ``m``: the mode's for ``W_ih`` and ``W_hh`` (packed so
        that a step splits between threads by hidden units), 1 for the projection ``W_hr``."""
        return 1 if m is cell.hr else GATES[self.mode]

    def _warn_if_accumulator_can_overflow(self) -> None:
        """Warns when the longest product of a qint8 layer can exceed the int32 accumulator."""
        if self.dtype is qint8:
            longest = max(m.shape[1] for cell in self._layout() for m in cell.matrices())
            warn_if_accumulator_can_overflow(self._get_name(), longest, input_levels(self.reduce_range))

    # -- weights -----------------------------------------------------------------------------

    def set_weight_bias(self, weight_bias_dict: Dict[str, Any]) -> None:
        """Replaces every weight and bias from a dict keyed by the float parameter names
        (``weight_ih_l0``, ``bias_hh_l1_reverse``, ... or ``weight_ih``, ... for cells). Weights
        are qint8 QTensors for dtype qint8, float arrays for float16. Checks everything before
        changing anything; the caller's arrays are never modified, and only the packed form of each
        weight is kept."""
        self._matrices, self._qparams, self._biases, self._packed = self._checked(check_dtype(self.dtype), weight_bias_dict)

    def _checked(self, dtype: DType, params: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Optional[QParams]], Dict[str, np.ndarray], Any]:
        """``params`` validated for ``dtype``: the packed matrices, their qparams, copies of the
        biases, and the packed core object."""
        layout = self._layout()
        names = [n for cell in layout for m in cell.matrices() for n in (m.weight, m.bias) if n is not None]
        missing = [n for n in names if n not in params]
        unexpected = [n for n in params if n not in names]
        if missing or unexpected:
            raise ValueError(
                f"weights must have exactly the keys {names}; missing {missing}, unexpected {unexpected}"
            )
        matrices: Dict[str, Any] = {}
        qparams: Dict[str, Optional[QParams]] = {}
        biases: Dict[str, np.ndarray] = {}
        cells = []
        for cell in layout:
            packed = []
            for m in cell.matrices():
                weight = _checked_weight(dtype, params[m.weight], m)
                qparams[m.weight] = qparams_of(weight) if isinstance(weight, QTensor) else None
                bias = None
                if m.bias is not None:
                    bias = float_bias(params[m.bias], m.shape[0], m.bias)
                    if bias is None:
                        raise ValueError(f"{m.bias} must be an array: this module has bias=True")
                    biases[m.bias] = bias
                # The PackedRNN's reduce_range is the one its matrices use.
                matrices[m.weight] = pack_dynamic(weight, bias, True, self._gates_of(cell, m))
                del weight
                packed.append(matrices[m.weight])
            cells.append((packed[0], packed[1], packed[2] if len(packed) > 2 else None))
        core = _core.PackedRNN(self.mode, *self._core_args(), cells, reduce_range=self._packing_reduce_range())
        return matrices, qparams, biases, core

    def get_weight(self) -> Dict[str, Weight]:
        """The weights keyed by float parameter name: QTensors (qint8) or float16 arrays, read back
        from the packed form (new arrays each call)."""
        weights: Dict[str, Weight] = {}
        for name, matrix in self._matrices.items():
            qparams = self._qparams[name]
            weights[name] = matrix.weight_bits().view(np.float16) if qparams is None else qtensor_from(matrix.weight(), qparams)
        return weights

    def get_bias(self) -> Dict[str, np.ndarray]:
        """Copies of the float32 biases keyed by float parameter name (empty without bias)."""
        return {k: v.copy() for k, v in self._biases.items()}

    # -- conversion --------------------------------------------------------------------------

    def _set_from_float(self, mod: Any) -> None:
        """Quantizes every matrix of the float module ``mod`` (read by parameter name), each with
        a fresh weight observer from ``mod.qconfig`` (else the default), and installs them."""
        params: Dict[str, Any] = {}
        for cell in self._layout():
            for m in cell.matrices():
                weight = float_weight(_parameter(mod, m.weight), m.weight)
                if weight.shape != m.shape:
                    raise ValueError(
                        f"{type(self).__name__}.from_float: {m.weight} of the float module has shape "
                        f"{weight.shape}, expected {m.shape}"
                    )
                observer = weight_observer_for(mod)
                params[m.weight] = quantize_weight(weight, observer) if self.dtype is qint8 else weight
                del weight, observer
                if m.bias is not None:
                    params[m.bias] = to_numpy(_parameter(mod, m.bias))
        self.set_weight_bias(params)
        del params
        _core.release_free_memory()

    # -- running -----------------------------------------------------------------------------

    def _run(
        self,
        x: np.ndarray,
        h0: Optional[np.ndarray],
        c0: Optional[np.ndarray],
        lengths: Optional[np.ndarray],
        batch_first: bool,
    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """The core call: 3-D C-contiguous float32 arrays in, ``(y, h_n, c_n or None)`` out."""
        return self._packed.forward(x, h0, c0, lengths, batch_first)

    # -- state -------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        for name, weight in self.get_weight().items():
            destination[prefix + name] = weight
        for name, bias in self.get_bias().items():
            destination[prefix + name] = bias

    def _state_keys(self) -> List[str]:
        return list(self._matrices) + list(self._biases)

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        dtype = _dtype_of(values[n] for n in self._matrices)
        if dtype is not self.dtype:
            raise TypeError(
                f"the state dict holds {dtype!r} weights but this module has dtype {self.dtype!r}; "
                f"build it with dtype={dtype!r} to load them"
            )
        checked = self._checked(dtype, values)

        def update() -> None:
            self._matrices, self._qparams, self._biases, self._packed = checked

        return update

    _rebuilt_from_weights = ("_packed", "_matrices", "_qparams")
    _pickled_weights_key = "_weights"

    def _weights_to_pickle(self) -> Dict[str, Weight]:
        return self.get_weight()

    def _rebuild_from_weights(self, weights: Dict[str, Weight]) -> None:
        self._matrices, self._qparams, self._biases, self._packed = self._checked(
            check_dtype(self.dtype), {**weights, **self._biases}
        )


def _checked_weight(dtype: DType, value: Any, m: Matrix) -> Weight:
    """A qint8 QTensor (per tensor, or per row along axis 0) or float16 array of shape ``m.shape``."""
    if dtype is qint8:
        if not isinstance(value, QTensor) or value.dtype is not qint8:
            kind = f"a {value.dtype!r} QTensor" if isinstance(value, QTensor) else type(value).__name__
            raise TypeError(f"{m.weight} must be a qint8 QTensor for dtype qint8, got {kind}")
        if value.shape != m.shape:
            raise ValueError(f"{m.weight} must have shape {m.shape}, got {value.shape}")
        weight_qparams(value, m.shape[0])  # raises for an unsupported per-channel axis
        return value
    w = float_weight(value.dequantize() if isinstance(value, QTensor) else value, m.weight)
    if w.shape != m.shape:
        raise ValueError(f"{m.weight} must have shape {m.shape}, got {w.shape}")
    return to_fp16(w, m.weight)


def _dtype_of(weights: Any) -> DType:
    """qint8 when every weight is a qint8 QTensor, float16 when none is a QTensor."""
    kinds = {isinstance(w, QTensor) for w in weights}
    if kinds == {True}:
        return qint8
    if kinds == {False}:
        return float16
    raise ValueError("the weights mix QTensors (qint8) and float arrays (float16)")


def _parameter(mod: Any, name: str) -> Any:
    value = getattr(mod, name, None)
    if value is None:
        raise ValueError(f"the float module has no parameter {name!r}")
    return value
