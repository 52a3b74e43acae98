"""The packed table is the only copy of a quantized embedding's weight (8-bit rows one byte per
value, 4-bit rows two values per byte): ``weight()``, ``state_dict()``, pickling and ``save`` read
the integers back from it, identical to what was set."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

import ferroq
from ferroq.nn import quantized as nnq

RNG = np.random.default_rng(11)
ROWS, DIM = 300, 48


def row_weight(dtype: Any) -> ferroq.QTensor:
    top = 15 if dtype is ferroq.quint4x2 else 255
    values = RNG.integers(0, top + 1, size=(ROWS, DIM), dtype=np.uint8)
    scales = RNG.uniform(1e-3, 1e-1, ROWS).astype(np.float32)
    zero_points = RNG.uniform(-5, 5, ROWS).astype(np.float32)
    return ferroq.QTensor.from_int_repr(values, scales, zero_points, axis=0, dtype=dtype)


def largest_array(value: Any) -> int:
    """The most elements of any array reachable from a module's attributes (a kept copy of the
    weight would show up here)."""
    if isinstance(value, np.ndarray):
        return value.size
    if isinstance(value, ferroq.QTensor):
        return value._int.size
    if isinstance(value, dict):
        return max((largest_array(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return max((largest_array(v) for v in value), default=0)
    return 0


CASES = [(nnq.Embedding, ferroq.quint8), (nnq.EmbeddingBag, ferroq.quint8), (nnq.EmbeddingBag, ferroq.quint4x2)]


@pytest.mark.parametrize("cls, dtype", CASES)
def test_the_packed_table_is_the_only_copy(cls: Any, dtype: Any, tmp_path: Any) -> None:
    w = row_weight(dtype)
    m = cls(ROWS, DIM, dtype=dtype)
    m.set_weight(w)
    bits = 4 if dtype is ferroq.quint4x2 else 8
    # The values at their stored width, and a float32 scale and bias per row.
    assert m._table.nbytes == ROWS * DIM * bits // 8 + 2 * 4 * ROWS
    assert largest_array(m.__dict__) < ROWS * DIM // 2
    assert m.weight()._same_as(w) and m.weight().dtype is dtype
    assert m.weight().q_per_channel_scales().dtype == np.float32
    state = m.state_dict()
    assert state["_packed_params._packed_weight"]._same_as(w)
    indices = RNG.integers(0, ROWS, size=40)
    offsets = np.array([0, 3, 3, 17], np.int64)
    call = (lambda mod: mod(indices)) if cls is nnq.Embedding else (lambda mod: mod(indices, offsets))
    want = call(m)

    clone = pickle.loads(pickle.dumps(m))
    assert clone.weight()._same_as(w) and largest_array(clone.__dict__) < ROWS * DIM // 2
    assert call(clone).tobytes() == want.tobytes()

    fresh = cls(ROWS, DIM, dtype=dtype)
    fresh.load_state_dict(state)
    assert fresh.weight()._same_as(w) and call(fresh).tobytes() == want.tobytes()

    ferroq.save(m, tmp_path / "m.safetensors")
    loaded = ferroq.load(tmp_path / "m.safetensors")
    assert loaded.weight()._same_as(w) and loaded._table.nbytes == m._table.nbytes
    assert largest_array(loaded.__dict__) < ROWS * DIM // 2
    assert call(loaded).tobytes() == want.tobytes()


def test_weight_is_a_new_array_each_call() -> None:
    m = nnq.EmbeddingBag(ROWS, DIM, dtype=ferroq.quint4x2)
    m.set_weight(row_weight(ferroq.quint4x2))
    a, b = m.weight(), m.weight()
    assert a._int is not b._int and a._same_as(b)


def test_from_float_keeps_the_quantized_values() -> None:
    floats = ferroq.nn.EmbeddingBag(ROWS, DIM, mode="sum")
    floats.qconfig = ferroq.quantization.float_qparams_weight_only_qconfig_4bit
    m = nnq.EmbeddingBag.from_float(floats)
    observer = ferroq.quantization.float_qparams_weight_only_qconfig_4bit.weight()
    observer(floats.weight)
    scales, zero_points = observer.calculate_qparams()
    want = ferroq.quantize_per_channel(floats.weight, scales.astype(np.float32), zero_points.astype(np.float32), 0, ferroq.quint4x2)
    assert m.weight()._same_as(want)
