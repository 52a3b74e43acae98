"""The int32 accumulator wraps around like FBGEMM's: a layer whose in_features can overflow it
(127 * 128 * K > 2**31 - 1 with reduce_range, 255 * 128 * K without, and for the static Linear)
warns once when it is built, loaded or unpickled; smaller layers do not warn. The numbers stay
PyTorch's (wrapped)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import ferroq
from ferroq.nn import quantized as nnq
from ferroq.nn.quantized import dynamic as nnqd

# The first in_features whose worst case leaves int32: (2**31 - 1) // (levels * 128) + 1.
REDUCED = (2**31 - 1) // (127 * 128) + 1
FULL = (2**31 - 1) // (255 * 128) + 1


def test_the_bounds():
    assert (REDUCED, FULL) == (132105, 65794)
    assert 127 * 128 * REDUCED > 2**31 - 1 >= 127 * 128 * (REDUCED - 1)
    assert 255 * 128 * FULL > 2**31 - 1 >= 255 * 128 * (FULL - 1)


def _overflow_warnings(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = build()
    return module, [w for w in caught if issubclass(w.category, RuntimeWarning) and "int32 accumulator" in str(w.message)]


@pytest.mark.parametrize(
    "build",
    [
        lambda k: nnqd.Linear(k, 2),
        lambda k: nnqd.LSTM(k, 1),
        lambda k: nnqd.GRU(k, 1),
        lambda k: nnqd.RNN(k, 1),
        lambda k: nnqd.LSTMCell(k, 1),
        lambda k: nnqd.GRUCell(k, 1),
        lambda k: nnqd.RNNCell(k, 1),
    ],
    ids=["Linear", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"],
)
def test_layers_that_can_overflow_warn_once_and_smaller_ones_do_not(build):
    _, caught = _overflow_warnings(lambda: build(REDUCED))
    assert len(caught) == 1, [str(w.message) for w in caught]
    _, caught = _overflow_warnings(lambda: build(REDUCED - 1))
    assert caught == []


def test_full_range_bound_of_the_dynamic_linear():
    assert len(_overflow_warnings(lambda: nnqd.Linear(FULL, 1, reduce_range=False))[1]) == 1
    assert _overflow_warnings(lambda: nnqd.Linear(FULL - 1, 1, reduce_range=False))[1] == []


def test_the_static_linear_uses_the_full_uint8_range():
    module, caught = _overflow_warnings(lambda: nnq.Linear(FULL, 1))
    assert len(caught) == 1
    assert "in_features=65794" in str(caught[0].message)
    assert _overflow_warnings(lambda: nnq.Linear(FULL - 1, 1))[1] == []


def test_float16_weights_have_no_int32_accumulator():
    assert _overflow_warnings(lambda: nnqd.Linear(REDUCED, 1, dtype=ferroq.float16))[1] == []
    assert _overflow_warnings(lambda: nnqd.LSTM(REDUCED, 1, dtype=ferroq.float16))[1] == []


def test_from_float_warns_once():
    float_linear = ferroq.nn.Linear(REDUCED, 1)
    module, caught = _overflow_warnings(lambda: nnqd.Linear.from_float(float_linear))
    assert len(caught) == 1
    assert isinstance(module, nnqd.Linear)


def test_unpickled_and_loaded_layers_warn(tmp_path):
    module, _ = _overflow_warnings(lambda: nnqd.Linear(REDUCED, 1))
    data = pickle.dumps(module)
    assert len(_overflow_warnings(lambda: pickle.loads(data))[1]) == 1
    ferroq.save(module, tmp_path / "wide.safetensors")
    loaded, caught = _overflow_warnings(lambda: ferroq.load(tmp_path / "wide.safetensors"))
    assert len(caught) == 1


def test_the_warning_keeps_pytorchs_wrapped_numbers():
    """Saturated inputs and weights: the sum wraps in int32 exactly as FBGEMM's does."""
    k = REDUCED
    with pytest.warns(RuntimeWarning, match="int32 accumulator"):
        module = nnqd.Linear(k, 1)
    weight = ferroq.QTensor.from_int_repr(np.full((1, k), -128, dtype=np.int8), 1.0, 0)
    module.set_weight_bias(weight, None)
    # All inputs equal to the maximum give x_q = 127 (zero point 0, scale max / 127).
    x = np.full((1, k), 127.0, dtype=np.float32)
    exact = 127 * -128 * k
    wrapped = (exact + 2**31) % 2**32 - 2**31
    assert wrapped != exact
    np.testing.assert_array_equal(module(x), np.array([[np.float32(wrapped)]], dtype=np.float32))
