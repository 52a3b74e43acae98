"""The packed form is the only copy of a module's weights: what ``weight()``, ``get_weight()``,
``state_dict()``, pickling and ``save`` give back is read from it, bit for bit what was put in."""

from __future__ import annotations

import pickle
from typing import Any, Dict, Iterator

import numpy as np
import pytest

import ferroq
from reference import dynamic_linear
from ferroq.nn import quantized as nnq
from ferroq.nn.quantized import dynamic as nnqd

RNG = np.random.default_rng(7)


def int8(shape: Any) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape, dtype=np.int8)


def qweight(shape: Any, per_channel: bool) -> ferroq.QTensor:
    if per_channel:
        scales = RNG.uniform(1e-3, 1e-1, shape[0])
        zero_points = RNG.integers(-3, 4, shape[0])
        return ferroq.QTensor.from_int_repr(int8(shape), scales, zero_points, axis=0)
    return ferroq.QTensor.from_int_repr(int8(shape), 0.0123456789, 0)


def fp16(shape: Any) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float16)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, ferroq.QTensor):
        return isinstance(b, ferroq.QTensor) and a._same_as(b) and a.int_repr().flags.c_contiguous
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def arrays(value: Any) -> Iterator[np.ndarray]:
    """Every ndarray reachable from a module's attributes (weights would show up here)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, ferroq.QTensor):
        yield value._int
    elif isinstance(value, dict):
        for v in value.values():
            yield from arrays(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from arrays(v)


def keeps_no_weight_copy(module: Any, weight_elements: int) -> bool:
    return all(a.size < weight_elements for a in arrays(module.__dict__))


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (17, 33), (40, 1030)])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("cls", [nnqd.Linear, nnq.Linear])
def test_linear_weights_read_back_bit_exact(cls: Any, per_channel: bool, shape: Any) -> None:
    weight, bias = qweight(shape, per_channel), RNG.standard_normal(shape[0]).astype(np.float32)
    m = cls(shape[1], shape[0])
    m.set_weight_bias(weight, bias)
    assert keeps_no_weight_copy(m, weight.int_repr().size) or weight.int_repr().size <= shape[0]
    for got in (m.weight(), m.state_dict()["_packed_params._packed_params"][0], pickle.loads(pickle.dumps(m)).weight()):
        assert same(got, weight)
    assert m.weight() is not m.weight()


@pytest.mark.parametrize("shape", [(1, 1), (17, 33)])
def test_float16_linear_weights_read_back_bit_exact(shape: Any) -> None:
    weight = fp16(shape)
    m = nnqd.Linear(shape[1], shape[0], dtype=ferroq.float16)
    m.set_weight_bias(weight, None)
    for got in (m.weight(), m.state_dict()["_packed_params._packed_params"][0], pickle.loads(pickle.dumps(m)).weight()):
        assert same(got, weight)


def rnn_weights(m: Any, dtype: Any, per_channel: bool) -> Dict[str, Any]:
    params: Dict[str, Any] = {}
    for name, w in m.get_weight().items():
        params[name] = qweight(w.shape, per_channel) if dtype is ferroq.qint8 else fp16(w.shape)
    for name, b in m.get_bias().items():
        params[name] = RNG.standard_normal(b.shape).astype(np.float32)
    return params


@pytest.mark.parametrize(
    "make",
    [
        lambda dt: nnqd.LSTM(6, 5, num_layers=2, bidirectional=True, dtype=dt),
        lambda dt: nnqd.LSTM(6, 5, proj_size=3, dtype=dt),
        lambda dt: nnqd.GRU(4, 3, dtype=dt),
        lambda dt: nnqd.RNN(4, 3, bias=False, dtype=dt),
        lambda dt: nnqd.LSTMCell(4, 3, dtype=dt),
        lambda dt: nnqd.GRUCell(4, 3, dtype=dt),
    ],
)
@pytest.mark.parametrize("dtype, per_channel", [(ferroq.qint8, False), (ferroq.qint8, True), (ferroq.float16, False)])
def test_recurrent_weights_read_back_bit_exact(make: Any, dtype: Any, per_channel: bool) -> None:
    m = make(dtype)
    params = rnn_weights(m, dtype, per_channel)
    m.set_weight_bias(params)
    x = RNG.standard_normal((2, m.input_size)).astype(np.float32)
    before = m(x)
    clone = pickle.loads(pickle.dumps(m))
    for got in (m.get_weight(), clone.get_weight(), {k: v for k, v in m.state_dict().items() if k in params}):
        for name, w in got.items():
            if name.startswith("weight"):
                assert same(w, params[name]), name
    np.testing.assert_array_equal(np.asarray(clone(x)[0] if isinstance(before, tuple) else clone(x)), np.asarray(before[0] if isinstance(before, tuple) else before))


def test_saved_and_loaded_weights_are_bit_exact(tmp_path: Any) -> None:
    model = ferroq.nn.Sequential(nnqd.Linear(33, 17), nnq.Linear(17, 5), nnqd.LSTM(6, 5, num_layers=2))
    model[0].set_weight_bias(qweight((17, 33), True), None)
    model[1].set_weight_bias(qweight((5, 17), False), RNG.standard_normal(5).astype(np.float32))
    model[2].set_weight_bias(rnn_weights(model[2], ferroq.qint8, True))
    ferroq.save(model, tmp_path / "m.safetensors")
    loaded = ferroq.load(tmp_path / "m.safetensors")
    want, got = model.state_dict(), loaded.state_dict()
    assert list(want) == list(got)
    for key, value in want.items():
        if isinstance(value, tuple):
            assert all(a is b is None or same(a, b) for a, b in zip(value, got[key])), key
        elif isinstance(value, (np.ndarray, ferroq.QTensor)):
            assert same(value, got[key]), key


def test_zero_initialised_modules_read_back_zeros() -> None:
    m = nnqd.Linear(3000, 70)
    w = m.weight()
    assert w.int_repr().shape == (70, 3000) and not w.int_repr().any() and w.q_scale() == 1.0 and w.q_zero_point() == 0
    lstm = nnqd.LSTM(300, 200)
    assert all(not w.int_repr().any() for w in lstm.get_weight().values())


@pytest.mark.filterwarnings("ignore:.*int32 accumulator:RuntimeWarning")
@pytest.mark.parametrize(
    "in_features, out_features",
    [(2**20, 1), (2**18, 4), (2**16, 15), (1, 2**16), (3, 5000), (5, 17), (768, 768), (4096, 1000), (1030, 40)],
)
def test_packed_weights_cost_their_own_bytes(in_features: int, out_features: int, tmp_path: Any) -> None:
    """Narrow layers are not padded to 16 output columns: the packed weights take ``out x in``
    bytes, ``in`` rounded up to a multiple of 4, the whole rounded up to 64 bytes; ``out`` is
    rounded up to a multiple of 16 only where that adds at most 1/8 (the kernels' faster
    full-panel code then reads the last columns); each column adds its sum and offset, scale, zero
    point and bias (4 bytes each)."""
    n, k = out_features, in_features
    m = nnqd.Linear(k, n)
    weight = ferroq.QTensor.from_int_repr(int8((n, k)), 0.01, 0)
    m.set_weight_bias(weight, RNG.standard_normal(n).astype(np.float32))
    padded_k = -(-k // 4) * 4
    missing = -n % 16
    stored_n = n + missing if 0 < missing and missing * 8 <= n else n
    assert m._packed.nbytes == -(-stored_n * padded_k // 64) * 64 + 5 * 4 * n
    assert m._packed.nbytes <= n * padded_k * 9 // 8 + 64 + 20 * n
    x = RNG.standard_normal((2, k)).astype(np.float32)
    y = m(x)
    scales, zero_points = np.full(n, 0.01), np.zeros(n, np.int64)
    assert y.tobytes() == dynamic_linear(x, weight.int_repr(), scales, zero_points, m.bias()).tobytes()
    # The same layer from the saved file (packed from the file 1024 rows at a time) and read back.
    ferroq.save(m, tmp_path / "m.safetensors")
    loaded = ferroq.load(tmp_path / "m.safetensors")
    assert same(loaded.weight(), weight) and same(m.weight(), weight)
    assert loaded._packed.nbytes == m._packed.nbytes
    assert loaded(x).tobytes() == y.tobytes()
