"""Float lookup tables: ``Embedding`` and ``EmbeddingBag``, with PyTorch's constructor arguments,
``from_pretrained``, ``padding_idx`` (negative too), state-dict keys, reprs and error conditions.

Indices must be an integer array: any other dtype is a TypeError; an index below 0 or at or above
``num_embeddings`` is an IndexError that names it (never a wrap-around). The options that only act
during training are accepted as in torch (``norm_type``, ``scale_grad_by_freq``, ``sparse``,
``freeze``: ferroq computes no gradients); ``max_norm``, which rewrites the weight during the
forward pass, is NotImplementedError.

``Embedding`` is a row gather: bit-exact. ``EmbeddingBag`` reduces each bag in index order, in
float32, starting from zeros, as PyTorch's CPU kernel does: ``sum`` adds the rows one by one,
``per_sample_weights`` are applied with a fused multiply-add per element (emulated exactly here)
by torch's FBGEMM path, and as a rounded product then a sum by its path for a set ``padding_idx``,
``mean`` divides the sum by the number of non-padding rows, ``max`` keeps the first of equal maxima.
Empty bags (and bags of padding only) give zeros.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._arrays import as_float32, as_row_indices, to_numpy
from ._args import check_factory_kwargs
from .._state_spec import Config, StateSpec, float32
from .module import Module

__all__ = ["Embedding", "EmbeddingBag"]


def _size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _padding_idx(padding_idx: Any, num_embeddings: int) -> Optional[int]:
    """torch's normalisation: a negative ``padding_idx`` counts from the end."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
    value = int(padding_idx)
    if not -num_embeddings <= value < num_embeddings:
        raise ValueError(f"Padding_idx must be within num_embeddings: got {value} for {num_embeddings} embeddings")
    return value % num_embeddings


def _initial_weight(num_embeddings: int, embedding_dim: int, padding_idx: Optional[int], weight: Any) -> np.ndarray:
    """``_weight`` checked against the sizes, or torch's initialisation: N(0, 1) from numpy's global
    generator, the padding row zeroed."""
    if weight is not None:
        array = as_float32(weight, "_weight")
        if array.shape != (num_embeddings, embedding_dim):
            raise ValueError(
                f"Shape of weight does not match num_embeddings and embedding_dim: expected "
                f"{(num_embeddings, embedding_dim)}, got {tuple(array.shape)}"
            )
        return array
    array = np.random.standard_normal((num_embeddings, embedding_dim)).astype(np.float32)
    if padding_idx is not None:
        array[padding_idx] = 0
    return array


def _check_unsupported(max_norm: Any) -> None:
    if max_norm is not None:
        raise NotImplementedError(
            "max_norm is not supported: it renormalises the weight rows in place during forward; "
            "renormalise the weight once instead"
        )


def indices(value: Any, num_embeddings: int, what: str = "input") -> np.ndarray:
    """``value`` as an int64 array of valid row numbers: TypeError unless its dtype is an integer
    type, IndexError naming the first index outside ``[0, num_embeddings)``."""
    return as_row_indices(
        value,
        num_embeddings,
        what,
        "{what} must be an array of integer indices (int32 or int64), got dtype {dtype}",
        "{what} holds index {index} at position {position}, out of range for {rows} embeddings "
        "(valid indices are 0 to {last})",
    )


def _shared_repr(module: Any, padding: str = "") -> str:
    s = f"{module.num_embeddings}, {module.embedding_dim}{padding}"
    if module.norm_type != 2:
        s += f", norm_type={module.norm_type}"
    if module.scale_grad_by_freq is not False:
        s += f", scale_grad_by_freq={module.scale_grad_by_freq}"
    return s


def _pretrained(embeddings: Any) -> np.ndarray:
    """The float32 matrix ``from_pretrained`` wraps; ValueError unless it is 2-D (torch's message)."""
    weight = as_float32(embeddings, "embeddings")
    if weight.ndim != 2:
        raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got shape {tuple(weight.shape)}")
    return weight


def _init_table(
    module: Module,
    num_embeddings: int,
    embedding_dim: int,
    padding_idx: Optional[int],
    norm_type: float,
    scale_grad_by_freq: bool,
    sparse: bool,
    weight: Any,
) -> None:
    """Sets the checked attributes and the ``weight`` of an embedding table (Embedding,
    EmbeddingBag) that both classes share."""
    module.num_embeddings = _size("num_embeddings", num_embeddings)
    module.embedding_dim = _size("embedding_dim", embedding_dim)
    module.padding_idx = _padding_idx(padding_idx, module.num_embeddings)
    module.max_norm = None
    module.norm_type = float(norm_type)
    module.scale_grad_by_freq = bool(scale_grad_by_freq)
    module.sparse = bool(sparse)
    module.register_parameter("weight", _initial_weight(module.num_embeddings, module.embedding_dim, module.padding_idx, weight))


def _table_config(module: Any) -> Dict[str, Any]:
    """The configuration of an embedding table (Embedding, EmbeddingBag) both classes share."""
    return {
        "num_embeddings": module.num_embeddings,
        "embedding_dim": module.embedding_dim,
        "padding_idx": module.padding_idx,
        "norm_type": module.norm_type,
        "scale_grad_by_freq": module.scale_grad_by_freq,
        "sparse": module.sparse,
    }


def _table_state_spec(config: Config) -> StateSpec:
    """The state of an embedding table (Embedding, EmbeddingBag): ``weight``, after reading the
    configuration keys both classes share (a subclass reads its own keys first)."""
    rows, dim = config.integer("num_embeddings"), config.integer("embedding_dim")
    config.optional_integer("padding_idx", -rows, rows - 1)
    config.number("norm_type", -math.inf, math.inf)
    config.flag("scale_grad_by_freq")
    config.flag("sparse")
    config.finish()
    return {"weight": float32(rows, dim)}


class Embedding(Module):
    """A lookup table: ``forward(input)`` returns ``weight[input]``, shape ``input.shape +
    (embedding_dim,)`` for integer ``input`` of any shape (a 0-d index gives one row).

    ``padding_idx`` only marks a row (zeroed at initialisation, as in torch; torch also keeps its
    gradient at zero). Use :meth:`from_pretrained` to wrap an existing matrix.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype)
        _check_unsupported(max_norm)
        _init_table(self, num_embeddings, embedding_dim, padding_idx, norm_type, scale_grad_by_freq, sparse, _weight)

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> "Embedding":
        """An Embedding holding a copy of the 2-D float array ``embeddings`` (rows are the
        embeddings); the padding row is kept as given. ``freeze`` has no effect (no gradients)."""
        weight = _pretrained(embeddings)
        return cls(
            weight.shape[0],
            weight.shape[1],
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
            _weight=weight,
            _freeze=freeze,
        )

    def forward(self, input: Any) -> np.ndarray:
        rows = indices(input, self.num_embeddings)
        return np.ascontiguousarray(self.weight[rows], dtype=np.float32)

    def extra_repr(self) -> str:
        s = _shared_repr(self, "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")
        if self.sparse is not False:
            s += ", sparse=True"
        return s

    def _config(self) -> Dict[str, Any]:
        return _table_config(self)

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        return _table_state_spec(config)


_MODES = ("sum", "mean", "max")


def _bags(
    input: Any, offsets: Any, weights: Any, module: "EmbeddingBag"
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """``(flat indices, bag starts, bag ends, flat per-sample weights)`` with torch's checks, in
    the order ``F.embedding_bag`` and ATen make them."""
    num_embeddings = module.num_embeddings
    raw = to_numpy(input)
    if weights is not None:
        weights = as_float32(weights, "per_sample_weights")
        if weights.shape != raw.shape:
            raise ValueError(
                f"embedding_bag: If per_sample_weights ({tuple(weights.shape)}) is not None, then it must have "
                f"the same shape as the input ({tuple(raw.shape)})"
            )
    if raw.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "if input is 2D, then offsets has to be None, as input is treated is a mini-batch of fixed length "
                f"sequences. However, found offsets of type {type(offsets)}"
            )
        bounds_raw = np.arange(0, raw.size, raw.shape[1], dtype=np.int64) if raw.shape[1] else np.zeros(raw.shape[0], np.int64)
        weights = None if weights is None else weights.reshape(-1)
        include_last_offset = False  # each row is a bag, whatever the module says (as in torch)
    elif raw.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        bounds_raw = to_numpy(offsets)
        if bounds_raw.ndim != 1:
            raise ValueError(f"offsets has to be a 1D Tensor, got shape {tuple(bounds_raw.shape)}")
        include_last_offset = module.include_last_offset
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {raw.ndim}")
    if module.mode == "max" and module.scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if module.mode == "max" and module.sparse:
        raise ValueError("max mode does not support sparse weights")
    if weights is not None and module.mode != "sum":
        raise NotImplementedError(
            "embedding_bag: per_sample_weights was not None. per_sample_weights is only supported for "
            f"mode='sum' (got mode='{module.mode}'). Please open a feature request on GitHub."
        )
    if raw.dtype.kind not in "iu":
        raise TypeError(f"input must be an array of integer indices (int32 or int64), got dtype {raw.dtype}")
    if bounds_raw.dtype.kind not in "iu":
        raise TypeError(f"offsets must be an array of integers (int32 or int64), got dtype {bounds_raw.dtype}")
    bounds = bounds_raw.astype(np.int64)
    if raw.ndim == 1 and bounds.size:
        if bounds_raw[0] != 0:
            raise ValueError(
                "offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. "
                f"However, got {bounds_raw[0]}"
            )
        if bounds_raw[-1] > raw.size:
            raise ValueError(
                f"offsets[-1] can not be greater than input's length {raw.size}, but got offsets[-1] of {bounds_raw[-1]}"
            )
        if (np.diff(bounds) < 0).any():
            raise ValueError(f"offsets must be non-decreasing, got {bounds_raw.tolist()}")
    if include_last_offset:
        if bounds.size < 1:
            raise ValueError("include_last_offset: number of offset should be at least 1")
        starts, ends = bounds[:-1], bounds[1:]
    else:
        starts, ends = bounds, np.append(bounds[1:], raw.size)
    if raw.ndim == 2 and not raw.shape[1]:
        ends = starts
    return indices(raw, num_embeddings).reshape(-1), starts, ends, weights


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a * b + c`` rounded once, as a fused multiply-add: the product is exact in
    float64, the sum's rounding error is recovered exactly (two-sum) and folded into the last bit
    (round to odd), so the final rounding to float32 is the only one."""
    product = a.astype(np.float64) * b.astype(np.float64)
    addend = c.astype(np.float64)
    total = product + addend
    back = total - product
    error = (product - (total - back)) + (addend - back)
    inexact_even = (error != 0) & np.isfinite(total) & ((total.view(np.uint64) & np.uint64(1)) == 0)
    toward = np.where(error > 0, np.inf, -np.inf)
    return np.where(inexact_even, np.nextafter(total, toward), total).astype(np.float32)


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings, without materialising the rows.

    ``forward(input, offsets=None, per_sample_weights=None)``: ``input`` is either 2-D ``(B, N)``
    (B bags of N indices, ``offsets`` must be None) or 1-D with 1-D ``offsets`` giving each bag's
    start (``include_last_offset=True``: the last offset is the end of the last bag).
    ``per_sample_weights`` (the shape of ``input``) scales each row, with ``mode="sum"`` only.
    Rows equal to ``padding_idx`` are left out (and not counted by ``mean``). Returns ``(B, embedding_dim)``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        _weight: Any = None,
        include_last_offset: bool = False,
        padding_idx: Optional[int] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype)
        _check_unsupported(max_norm)
        if mode not in _MODES:
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        self.mode = mode
        self.include_last_offset = bool(include_last_offset)
        _init_table(self, num_embeddings, embedding_dim, padding_idx, norm_type, scale_grad_by_freq, sparse, _weight)

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        include_last_offset: bool = False,
        padding_idx: Optional[int] = None,
    ) -> "EmbeddingBag":
        """An EmbeddingBag holding a copy of the 2-D float array ``embeddings``; ``freeze`` has no
        effect (no gradients)."""
        weight = _pretrained(embeddings)
        return cls(
            weight.shape[0],
            weight.shape[1],
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            mode=mode,
            sparse=sparse,
            _weight=weight,
            include_last_offset=include_last_offset,
            padding_idx=padding_idx,
        )

    def forward(self, input: Any, offsets: Any = None, per_sample_weights: Any = None) -> np.ndarray:
        flat, starts, ends, weights = _bags(input, offsets, per_sample_weights, self)
        keep = flat != (-1 if self.padding_idx is None else self.padding_idx)
        lengths = ends - starts
        longest = int(lengths.max()) if lengths.size else 0
        out = np.zeros((starts.size, self.embedding_dim), dtype=np.float32)
        counts = np.zeros(starts.size, dtype=np.int64)
        # Both loops reduce each bag in index order with _fold_rows; they differ only in speed.
        if starts.size * 8 < longest:
            self._bag_by_bag(flat, keep, starts, ends, weights, out, counts)
        else:
            self._position_by_position(flat, keep, starts, lengths, longest, weights, out, counts)
        if self.mode == "mean":
            out /= np.maximum(counts, 1).astype(np.float32)[:, None]
        return out

    def _fold_rows(self, current: np.ndarray, rows: np.ndarray, weights: Optional[np.ndarray], first: np.ndarray) -> np.ndarray:
        """One more row (per bag) into the running reductions ``current``: torch's kernel's update."""
        if self.mode == "max":
            return np.where(first[:, None] | (rows > current), rows, current)
        if weights is None:
            return current + rows
        if self.padding_idx is None:
            return _fma(weights[:, None], rows, current)
        return current + rows * weights[:, None]

    def _position_by_position(
        self,
        flat: np.ndarray,
        keep: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        longest: int,
        weights: Optional[np.ndarray],
        out: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Position k of every bag at once, for k = 0, 1, ... (fast for many short bags)."""
        for step in range(longest):
            bag = np.flatnonzero(lengths > step)
            where = starts[bag] + step
            chosen = keep[where]
            bag, where = bag[chosen], where[chosen]
            rows = self.weight[flat[where]]
            out[bag] = self._fold_rows(out[bag], rows, None if weights is None else weights[where], counts[bag] == 0)
            counts[bag] += 1

    def _bag_by_bag(
        self,
        flat: np.ndarray,
        keep: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        weights: Optional[np.ndarray],
        out: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """One bag at a time, row after row (fast for a few long bags)."""
        for bag, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            where = start + np.flatnonzero(keep[start:end])
            rows = self.weight[flat[where]]
            current = out[bag : bag + 1]
            for k in range(where.size):
                scale = None if weights is None else weights[where[k : k + 1]]
                current = self._fold_rows(current, rows[k : k + 1], scale, np.array([k == 0]))
            out[bag] = current[0]
            counts[bag] = where.size

    def extra_repr(self) -> str:
        s = _shared_repr(self) + f", mode={self.mode!r}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s

    def _config(self) -> Dict[str, Any]:
        return {**_table_config(self), "mode": self.mode, "include_last_offset": self.include_last_offset}

    @classmethod
    def _state_spec(cls, config: Config) -> StateSpec:
        config.choice("mode", _MODES)
        config.flag("include_last_offset")
        return _table_state_spec(config)
