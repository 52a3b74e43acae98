"""``ferroq.nn.quantized.Embedding`` and ``EmbeddingBag``: PyTorch's weight-only quantized
embeddings, rows of 8-bit (quint8) or 4-bit (quint4x2, bags only) integers with a float scale and
a float zero point each, float32 outputs (FBGEMM's numerics, see ``docs/embeddings.md``)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ... import _core
from ..._arrays import as_row_indices, to_numpy
from ..._dtypes import DType, as_dtype, per_channel_affine_float_qparams, quint4x2, quint8
from ..._tensor import QTensor, quantize_per_channel
from ...quantization.qconfig import float_qparams_weight_only_qconfig, weight_observer_for
from ..._state_spec import Config, DTypeName, RowwiseQWeight, StateSpec
from ..module import Module
from ._pickling import PicklesWeights
from ._weights import float_weight, qparams_of, qtensor_from

__all__ = ["Embedding", "EmbeddingBag"]

#: The state-dict keys of a quantized embedding after its prefix (PyTorch's names).
EMBEDDING_STATE_KEYS = ("_packed_params.dtype", "_packed_params._packed_weight")

_MODES = ("sum", "mean", "max")


class Embedding(PicklesWeights, Module):
    """A weight-only quantized embedding table: ``forward(indices)`` returns the dequantized rows.

    Row ``r`` holds quint8 integers ``q`` with a float ``scale`` and float ``zero_point``; a
    looked-up value is ``fma(scale, q, bias)`` with ``bias = -(zero_point * scale)``, in float32,
    bit for bit what PyTorch's ``torch.ao.nn.quantized.Embedding`` returns on x86. ``padding_idx`` is kept as an
    attribute only: like PyTorch, the padding row is looked up like any other.

    Build one with :meth:`from_float` (or ``quantize_dynamic`` with
    ``float_qparams_weight_only_qconfig``), or directly and :meth:`set_weight`. A new module's
    rows are all zero.
    """

    _version = 1
    _dtypes: Tuple[DType, ...] = (quint8,)

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None, dtype: Any = quint8
    ) -> None:
        super().__init__()
        dt = as_dtype(dtype)
        if dt not in self._dtypes:
            names = " and ".join(repr(d) for d in self._dtypes)
            raise NotImplementedError(f"the quantized {type(self).__name__} supports the dtypes {names}, got {dt!r}")
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if dt is quint4x2 and embedding_dim % 2:
            raise NotImplementedError(f"4-bit (quint4x2) rows need an even embedding_dim, got {embedding_dim}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = _padding_index(padding_idx, self.num_embeddings)
        self.dtype = dt
        shape = (self.num_embeddings, self.embedding_dim)
        ones = np.ones(self.num_embeddings, np.float32)
        zeros = np.zeros(self.num_embeddings, np.float32)
        self.set_weight(QTensor.from_int_repr(np.zeros(shape, np.uint8), ones, zeros, axis=0, dtype=dt))

    def _config(self) -> Dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "dtype": self.dtype.name,
        }

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        rows, columns = config.integer("num_embeddings"), config.integer("embedding_dim")
        config.optional_integer("padding_idx", -rows, rows - 1)
        dtype = config.choice("dtype", [d.name for d in cls._dtypes])
        cls._read_bag_config(config)
        config.finish()
        return {
            "_packed_params.dtype": DTypeName(dtype),
            "_packed_params._packed_weight": RowwiseQWeight(dtype, (rows, columns)),
        }

    @classmethod
    def _read_bag_config(cls, config: Config) -> None:
        """Reads the configuration keys a subclass adds (none for Embedding)."""

    # -- weights -----------------------------------------------------------------------------

    def set_weight(self, w: Any) -> None:
        """Replaces the weight: a QTensor of this module's dtype and shape
        ``(num_embeddings, embedding_dim)``, quantized ``per_channel_affine_float_qparams`` along
        axis 0. Everything is checked before anything changes. Only the packed table and the
        per-row scales and zero points are kept (no reference to ``w``)."""
        table = self._table_for(w)
        self._table, self._qparams = table, qparams_of(w)

    def _table_for(self, w: Any) -> Any:
        """The packed table for a weight, after :meth:`set_weight`'s checks; changes nothing."""
        shape = (self.num_embeddings, self.embedding_dim)
        if not isinstance(w, QTensor):
            raise TypeError(f"the weight must be a QTensor, got {type(w).__name__}")
        if w.dtype is not self.dtype:
            raise TypeError(f"the weight must have dtype {self.dtype!r} (this module's dtype), got {w.dtype!r}")
        if w.qscheme() is not per_channel_affine_float_qparams or w.q_per_channel_axis() != 0:
            raise ValueError(
                "the weight must be quantized per_channel_affine_float_qparams along axis 0 (one float scale and "
                f"zero point per row), got {w.qscheme()!r}"
            )
        if w.shape != shape:
            raise ValueError(f"the weight must have shape {shape} (num_embeddings, embedding_dim), got {w.shape}")
        return _pack(w)

    def weight(self) -> QTensor:
        """The quantized weight (its scales and zero points as set, before any float16 rounding),
        its integers read back from the packed table (a new array each call)."""
        return qtensor_from(self._table.values(), self._qparams, self.dtype)

    # -- forward -----------------------------------------------------------------------------

    def forward(self, indices: Any) -> np.ndarray:
        """``indices``: an integer array of any shape; returns float32 ``indices.shape + (embedding_dim,)``.

        TypeError for non-integer indices, IndexError naming the first index outside
        ``[0, num_embeddings)``."""
        idx = as_indices(indices, self.num_embeddings)
        out = self._table.lookup(idx.reshape(-1))
        return out.reshape(idx.shape + (self.embedding_dim,))

    # -- conversion --------------------------------------------------------------------------

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "Embedding":
        """Quantizes a float ``Embedding`` (ferroq's, torch's, or anything with its attributes
        ``weight``, ``num_embeddings``, ``embedding_dim``, ``padding_idx``). The weight observer is
        ``mod.qconfig.weight()`` when set, else ``float_qparams_weight_only_qconfig``'s; it must be
        ``per_channel_affine_float_qparams`` with dtype quint8 (ValueError otherwise;
        NotImplementedError for quint4x2, which PyTorch's quantized Embedding cannot run)."""
        weight = _float_embedding_weight(mod, cls)
        qweight = _quantize_embedding_weight(weight, mod, allowed=cls._dtypes, owner=cls.__name__)
        module = cls(weight.shape[0], weight.shape[1], padding_idx=getattr(mod, "padding_idx", None), dtype=qweight.dtype)
        module.set_weight(qweight)
        return module

    # -- state -------------------------------------------------------------------------------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        destination[prefix + "_packed_params.dtype"] = self.dtype
        destination[prefix + "_packed_params._packed_weight"] = self.weight()

    def _state_keys(self) -> List[str]:
        return list(EMBEDDING_STATE_KEYS)

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        dtype, weight = (values[k] for k in EMBEDDING_STATE_KEYS)
        if as_dtype(dtype) is not self.dtype:
            raise TypeError(f"the state holds dtype {as_dtype(dtype)!r}, this module has {self.dtype!r}")
        table = self._table_for(weight)

        def update() -> None:
            self._table, self._qparams = table, qparams_of(weight)

        return update

    _rebuilt_from_weights = ("_table", "_qparams")

    def _weights_to_pickle(self) -> QTensor:
        return self.weight()

    def _rebuild_from_weights(self, weights: QTensor) -> None:
        self.set_weight(weights)

    # -- printing ----------------------------------------------------------------------------

    def _get_name(self) -> str:
        return "QuantizedEmbedding"

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
            f"dtype={self.dtype!r}, qscheme={per_channel_affine_float_qparams!r}"
        )


class EmbeddingBag(Embedding):
    """A weight-only quantized EmbeddingBag: ``forward(input, offsets=None, per_sample_weights=None)``
    returns one float32 row per bag, the sum of the bag's dequantized rows (each scaled by its
    per-sample weight), accumulated in FBGEMM's order, bit for bit PyTorch's
    ``torch.ao.nn.quantized.EmbeddingBag`` on x86. dtype quint8 (8-bit rows) or quint4x2 (4-bit
    rows, even ``embedding_dim``; their scale and bias are rounded to float16, as PyTorch stores them).

    ``mode`` is kept but, exactly as in PyTorch's quantized EmbeddingBag, every mode sums (PyTorch
    passes mode 0 to its kernels): a bag converted from a ``mode="mean"`` or ``"max"`` float bag
    returns sums. ``padding_idx`` (ferroq only: PyTorch's quantized bag has none, and its
    ``from_float`` drops the float bag's) leaves that row out of every bag when set.
    """

    _dtypes = (quint8, quint4x2)

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        mode: str = "sum",
        include_last_offset: bool = False,
        padding_idx: Optional[int] = None,
        dtype: Any = quint8,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx, dtype=dtype)
        self.mode = mode
        self.include_last_offset = bool(include_last_offset)

    def _config(self) -> Dict[str, Any]:
        return {**super()._config(), "mode": self.mode, "include_last_offset": self.include_last_offset}

    @classmethod
    def _read_bag_config(cls, config: Config) -> None:
        config.choice("mode", _MODES)
        config.flag("include_last_offset")

    def _get_name(self) -> str:
        return "QuantizedEmbeddingBag"

    def forward(self, input: Any, offsets: Any = None, per_sample_weights: Any = None) -> np.ndarray:
        """``input``: 1-D indices with 1-D ``offsets`` (bag ``k`` starts at ``offsets[k]``; with
        ``include_last_offset`` the last entry is the end of the last bag), or 2-D indices without
        offsets (each row one bag). ``per_sample_weights``: floats of ``input``'s shape, or None.
        Returns float32 ``(bags, embedding_dim)``; an empty bag is all zeros.

        Errors: TypeError for non-integer indices or offsets and non-float weights; IndexError
        naming the first bad index; ValueError for offsets that do not start at 0, decrease or
        pass the end of ``input``, for a shape mismatch, or a missing/extra ``offsets``."""
        idx = as_indices(input, self.num_embeddings, "input")
        if idx.ndim == 2:
            if offsets is not None:
                raise ValueError(
                    "if input is 2-D, then offsets has to be None, as input is treated as a mini-batch of "
                    "fixed length sequences"
                )
            bags, length = idx.shape
            bounds = np.arange(bags + 1, dtype=np.int64) * length
        elif idx.ndim == 1:
            if offsets is None:
                raise ValueError("offsets has to be given for a 1-D input")
            bounds = _bag_bounds(offsets, idx.size, self.include_last_offset)
        else:
            raise ValueError(f"input has to be 1-D or 2-D, got {idx.ndim} dimensions")
        weights = None
        if per_sample_weights is not None:
            w = to_numpy(per_sample_weights)
            if w.dtype.kind != "f":
                raise TypeError(f"per_sample_weights must be a floating-point array, got dtype {w.dtype}")
            if w.shape != idx.shape:
                raise ValueError(
                    f"per_sample_weights (shape {tuple(w.shape)}) must have the same shape as the input ({idx.shape})"
                )
            weights = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
        if bounds.size <= 1:
            return np.zeros((0, self.embedding_dim), np.float32)
        return self._table.bags(idx.reshape(-1), bounds, weights, self.padding_idx)

    @classmethod
    def from_float(cls, mod: Any, use_precomputed_fake_quant: bool = False) -> "EmbeddingBag":
        """Quantizes a float ``EmbeddingBag`` (ferroq's, torch's, or anything with its attributes
        ``weight``, ``num_embeddings``, ``embedding_dim``, ``mode``, ``include_last_offset``). The
        weight observer is ``mod.qconfig.weight()`` when set, else
        ``float_qparams_weight_only_qconfig``'s (8-bit); ``float_qparams_weight_only_qconfig_4bit``
        gives 4-bit rows. As in PyTorch, ``mode`` and ``include_last_offset`` are copied and
        ``padding_idx`` is not; a mode other than "sum" warns, since the quantized bag sums."""
        weight = _float_embedding_weight(mod, cls)
        qweight = _quantize_embedding_weight(weight, mod, allowed=cls._dtypes, owner=cls.__name__)
        mode = getattr(mod, "mode", "sum")
        if mode != "sum":
            warnings.warn(
                f"the float EmbeddingBag has mode={mode!r}, but the quantized EmbeddingBag sums every bag, as "
                "PyTorch's does; divide by the bag sizes yourself for a mean",
                UserWarning,
                stacklevel=2,
            )
        module = cls(
            weight.shape[0],
            weight.shape[1],
            mode=mode,
            include_last_offset=bool(getattr(mod, "include_last_offset", False)),
            dtype=qweight.dtype,
        )
        module.set_weight(qweight)
        return module


# -- helpers -----------------------------------------------------------------------------------


def as_indices(value: Any, rows: int, what: str = "indices") -> np.ndarray:
    """A C-contiguous int64 copy of integer indices, each in ``[0, rows)``. TypeError for any
    other dtype; IndexError naming the first index out of range (no wrap-around)."""
    return as_row_indices(
        value,
        rows,
        what,
        "{what} must be an integer array (int64 or int32), got dtype {dtype}",
        "index {index} at position {position} of {what} is out of range for an embedding table of {rows} rows "
        "(valid: 0 to {last})",
    )


def _bag_bounds(offsets: Any, count: int, include_last_offset: bool) -> np.ndarray:
    """The bag boundaries (``bags + 1`` entries, the last one the end of the last bag) from
    ``offsets``, checked: integers, 1-D, starting at 0, never decreasing, within ``count``."""
    array = to_numpy(offsets)
    if array.dtype.kind not in "iu":
        raise TypeError(f"offsets must be an integer array (int64 or int32), got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"offsets has to be a 1-D array, got {array.ndim} dimensions")
    if include_last_offset and array.size == 0:
        raise ValueError("include_last_offset: number of offsets should be at least 1")
    if array.size and array[0] != 0:
        raise ValueError(f"offsets[0] has to be 0, i.e., the first bag starts at position 0; got {int(array[0])}")
    falls = np.flatnonzero(np.diff(array.astype(np.int64)) < 0) if array.size > 1 else np.zeros(0, np.int64)
    if falls.size:
        k = int(falls[0]) + 1
        raise ValueError(f"offsets must not decrease: offsets[{k}] = {int(array[k])} follows {int(array[k - 1])}")
    if array.size and int(array[-1]) > count:
        raise ValueError(f"offsets[-1] can not be greater than input's length {count} but got offsets[-1] of {int(array[-1])}")
    bounds = array.astype(np.int64)
    if not include_last_offset:
        bounds = np.concatenate([bounds, np.array([count], np.int64)])
    return bounds


def _padding_index(padding_idx: Optional[int], rows: int) -> Optional[int]:
    """``padding_idx`` made non-negative, as PyTorch's float modules do; ValueError when out of range."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
    if not -rows <= padding_idx < rows:
        raise ValueError(f"padding_idx must be within num_embeddings ([-{rows}, {rows})), got {padding_idx}")
    return int(padding_idx) % rows if rows else int(padding_idx)


def _pack(w: QTensor) -> Any:
    """The Rust table for a checked weight: 8-bit rows with float32 scale and bias, or 4-bit rows
    (two values per byte, low nibble first) with scale and bias rounded to float16, as PyTorch's
    ``embedding_bag_prepack`` stores them. ``bias = -(zero_point * scale)`` in float32."""
    values = w._values()
    scales = w.q_per_channel_scales().astype(np.float32)
    biases = -(w.q_per_channel_zero_points().astype(np.float32) * scales)
    if w.dtype is quint4x2:
        with np.errstate(over="ignore"):  # beyond 65504 becomes inf, as in PyTorch
            scales = scales.astype(np.float16).astype(np.float32)
            biases = biases.astype(np.float16).astype(np.float32)
        data = (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8)
        bits = 4
    else:
        data, bits = values, 8
    return _core.PackedEmbeddingTable(bits, np.ascontiguousarray(data), w.shape[1], scales, biases)


def _float_embedding_weight(mod: Any, cls: type) -> np.ndarray:
    """The checked float32 weight of a float Embedding/EmbeddingBag-like module."""
    is_bag = issubclass(cls, EmbeddingBag)
    wanted = "EmbeddingBag" if is_bag else "Embedding"
    attrs = ("weight", "num_embeddings", "embedding_dim") + (("mode",) if is_bag else ())
    if type(mod).__name__ != wanted or not all(hasattr(mod, a) for a in attrs):
        raise TypeError(
            f"ferroq.nn.quantized.{wanted}.from_float expects a float {wanted} (ferroq.nn.{wanted} or "
            f"torch.nn.{wanted}), got {type(mod).__name__}"
        )
    weight = float_weight(mod.weight, "weight")
    expected = (int(mod.num_embeddings), int(mod.embedding_dim))
    if weight.shape != expected:
        raise ValueError(f"the weight must have shape {expected} (num_embeddings, embedding_dim), got {weight.shape}")
    return weight


def _quantize_embedding_weight(weight: np.ndarray, mod: Any, allowed: Tuple[DType, ...], owner: str) -> QTensor:
    """Observes and quantizes an embedding weight row by row with the observer from
    ``mod.qconfig`` (default: ``float_qparams_weight_only_qconfig``), as PyTorch's ``from_float``."""
    observer = weight_observer_for(mod, default=float_qparams_weight_only_qconfig)
    if getattr(observer, "qscheme", None) is not per_channel_affine_float_qparams:
        raise ValueError(
            f"{owner} quantization is only supported with float_qparams_weight_only_qconfig "
            f"(a per_channel_affine_float_qparams weight observer), got {observer!r}"
        )
    if observer.dtype not in (quint8, quint4x2):
        raise ValueError(
            f"the weight observer of {owner} must have dtype ferroq.quint8 or ferroq.quint4x2, got {observer.dtype!r}"
        )
    if observer.dtype not in allowed:
        raise NotImplementedError(
            f"{owner} supports {' and '.join(repr(d) for d in allowed)} weights, got {observer.dtype!r} "
            "(4-bit rows are for EmbeddingBag)"
        )
    if getattr(observer, "ch_axis", 0) != 0:
        raise ValueError(f"the weight observer of {owner} must observe rows (ch_axis=0), got ch_axis={observer.ch_axis}")
    observer(weight)
    scales, zero_points = observer.calculate_qparams()
    q = quantize_per_channel(weight, scales.astype(np.float32), zero_points.astype(np.float32), 0, observer.dtype)
    if getattr(observer, "has_customized_qrange", False):
        values = np.clip(q._values(), observer.quant_min, observer.quant_max).astype(np.uint8)
        q = QTensor.from_int_repr(values, scales, zero_points.astype(np.float32), axis=0, dtype=observer.dtype)
    return q
