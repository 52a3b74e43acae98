"""What a module's state dict must hold, derived from its constructor configuration alone.

``ferroq.load`` checks a file's whole description against its stored tensors before it builds a
single module (see ``_io.py``); ``ferroq.save`` runs the same check on what it is about to write.
Both need, for every module class, the state entries its configuration implies: each class answers
through the classmethod ``Module._state_spec(config)``, which reads the configuration through a
:class:`Config` (strict types and ranges, ValueError otherwise) and returns the module's own state
entries (not its children's) as ``{local key: spec}``. A class without state whose constructor
arguments are kept as attributes of the same name only lists them, with their :class:`Config`
readers, in ``Module._options``.

A spec is one of:

- :class:`Array`: a plain array with its safetensors dtype name and exact shape;
- :class:`QWeight`: an int8 :class:`~ferroq.QTensor` of a given shape, quantized per tensor or per
  row (axis 0);
- :class:`RowwiseQWeight`: a quantized embedding's uint8 QTensor with float per-row qparams;
- :class:`Items`: a tuple of specs (a quantized Linear's ``(weight, bias)``);
- :class:`DTypeName`: a ferroq dtype by name;
- :data:`NOTHING`: ``None`` (an absent bias).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

#: The largest size (features, hidden units, ...) a configuration may hold.
MAX_SIZE = 2**31 - 1


class Array(NamedTuple):
    """A plain array: safetensors dtype name (``"F32"``, ``"F16"``, ``"I64"``) and exact shape."""

    dtype: str
    shape: Tuple[int, ...]


class QWeight(NamedTuple):
    """An int8 QTensor of ``shape``: per tensor, or per channel along axis 0."""

    shape: Tuple[int, ...]


class RowwiseQWeight(NamedTuple):
    """A uint8 QTensor of ``shape`` quantized per row with float scales and zero points
    (``per_channel_affine_float_qparams`` along axis 0), dtype ``quint8`` or ``quint4x2`` (stored
    packed, two values per byte): the weight of a quantized embedding."""

    dtype: str
    shape: Tuple[int, int]


class Items(NamedTuple):
    """A tuple whose items match these specs."""

    items: Tuple["Spec", ...]


class DTypeName(NamedTuple):
    """A ferroq dtype, by name (``"qint8"``, ``"float16"``)."""

    name: str


class Nothing(NamedTuple):
    """``None``."""


NOTHING = Nothing()

Spec = Union[Array, QWeight, RowwiseQWeight, Items, DTypeName, Nothing]
#: A module's own state entries: local key -> spec.
StateSpec = Dict[str, Spec]


def float32(*shape: int) -> Array:
    """A float32 array of ``shape``."""
    return Array("F32", tuple(shape))


def quantized_weight(dtype: str, shape: Tuple[int, int]) -> Spec:
    """The stored weight of a dynamic quantized layer: an int8 QTensor (dtype qint8) or a float16
    array (dtype float16)."""
    return QWeight(shape) if dtype == "qint8" else Array("F16", shape)


def optional_bias(bias: bool, rows: int) -> Spec:
    """A float32 bias of ``rows`` entries, or None."""
    return float32(rows) if bias else NOTHING


class Config:
    """A module's stored configuration, read with strict types and ranges.

    Every read names the key; a missing key takes the given default (None: required); a value of
    the wrong type or out of range raises ValueError naming the module. :meth:`finish` refuses
    keys nobody read. ``max_count`` bounds counts that multiply the number of state entries
    (``num_layers``): a file cannot need more layers than it has tensors.
    """

    def __init__(self, raw: Dict[str, Any], where: str, max_count: int) -> None:
        self.raw = raw
        self.where = where
        self.max_count = max_count
        self._read: set = set()

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is None:
            raise ValueError(f"{self.where}: its configuration has no {key!r}")
        return default

    def fail(self, message: str) -> ValueError:
        """The ValueError for a configuration value that is not allowed."""
        return ValueError(f"{self.where}: {message}")

    def integer(self, key: str, minimum: int = 0, maximum: int = MAX_SIZE, default: Optional[int] = None) -> int:
        """An integer in ``minimum..=maximum`` (a bool or a float is refused)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.fail(f"{key} must be an integer, got {type(value).__name__} {_short(value)}")
        number = int(value)
        if not minimum <= number <= maximum:
            raise self.fail(f"{key} must lie in {minimum}..{maximum}, got {_short(value)}")
        return number

    def count(self, key: str, default: Optional[int] = None) -> int:
        """A count >= 1 of repeated parts, each with at least one stored tensor."""
        value = self.integer(key, 1, MAX_SIZE, default)
        if value > self.max_count:
            raise self.fail(f"{key}={value} needs more tensors than the {self.max_count} the file holds")
        return value

    def optional_integer(self, key: str, minimum: int, maximum: int) -> Optional[int]:
        """None (also when absent), or an integer in ``minimum..=maximum``."""
        if self.raw.get(key) is None:
            self._read.add(key)
            return None
        return self.integer(key, minimum, maximum)

    def sizes(self, key: str, max_count: int = 64) -> Tuple[int, ...]:
        """A list of at most ``max_count`` sizes (integers in ``0..=MAX_SIZE``)."""
        value = self._get(key, None)
        if not isinstance(value, list) or len(value) > max_count:
            raise self.fail(f"{key} must be a list of at most {max_count} sizes, got {_short(value)}")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, numbers.Integral) or not 0 <= int(item) <= MAX_SIZE:
                raise self.fail(f"{key} must hold sizes in 0..{MAX_SIZE}, got {_short(item)}")
        return tuple(int(item) for item in value)

    def flag(self, key: str, default: Optional[bool] = None) -> bool:
        """true or false (nothing else)."""
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {type(value).__name__} {_short(value)}")
        return value

    def number(self, key: str, low: float, high: float, default: Optional[float] = None) -> float:
        """A finite number in ``low..=high`` (a bool is refused)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise self.fail(f"{key} must be a finite number, got {type(value).__name__} {_short(value)}")
        number = float(value)
        if not low <= number <= high:
            raise self.fail(f"{key} must lie in [{low}, {high}], got {_short(value)}")
        return number

    def choice(self, key: str, options: Sequence[str], default: Optional[str] = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or value not in options:
            raise self.fail(f"{key} must be one of {list(options)}, got {_short(value)}")
        return value

    def accept_rest(self) -> None:
        """Takes every key as read: for a configuration only its (user-given) class understands."""
        self._read.update(self.raw)

    def finish(self) -> None:
        """Refuses keys that no read asked for."""
        unknown = sorted(str(k) for k in self.raw if k not in self._read)
        if unknown:
            raise self.fail(f"its configuration has unknown key(s) {unknown}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def rnn_parameter_shapes(
    gates: int, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, proj_size: int, bias: bool
) -> List[Tuple[str, Tuple[int, int], Optional[str]]]:
    """The matrices of a recurrent stack in PyTorch's order: ``(weight name, shape, bias name or
    None)`` for ``weight_ih``, ``weight_hh`` and (LSTM with ``proj_size``) ``weight_hr`` of every
    layer and direction; biases have ``shape[0]`` entries."""
    rows = gates * hidden_size
    output_size = proj_size or hidden_size
    directions = 2 if bidirectional else 1
    matrices: List[Tuple[str, Tuple[int, int], Optional[str]]] = []
    for layer in range(num_layers):
        width = input_size if layer == 0 else directions * output_size
        for suffix in ("", "_reverse")[:directions]:
            tag = f"_l{layer}{suffix}"
            matrices.append((f"weight_ih{tag}", (rows, width), f"bias_ih{tag}" if bias else None))
            matrices.append((f"weight_hh{tag}", (rows, output_size), f"bias_hh{tag}" if bias else None))
            if proj_size:
                matrices.append((f"weight_hr{tag}", (proj_size, hidden_size), None))
    return matrices


def matrices_spec(matrices: Iterable[Tuple[str, Tuple[int, int], Optional[str]]], weight: Any) -> StateSpec:
    """State entries for named matrices and their biases; ``weight(shape)`` gives a weight's spec."""
    spec: StateSpec = {}
    for name, shape, bias in matrices:
        spec[name] = weight(shape)
        if bias is not None:
            spec[bias] = float32(shape[0])
    return spec
