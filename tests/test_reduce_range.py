"""``reduce_range`` of the dynamic quantized modules is held by their packed ``_core`` object, set
once (at construction, by assignment, by loading) and read there on every call: each way a module
comes to hold a setting gives the outputs of a module built with it, on the lean call path and on
the converting one, and the two settings give different outputs."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Callable, Dict, Tuple

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd

from conftest import assert_same_bits
from test_dynamic_linear import reference as linear_reference

IN, HIDDEN = 6, 5

RECURRENT: Dict[str, Callable[[bool], Any]] = {
    "LSTM": lambda rr: nnqd.LSTM(IN, HIDDEN, num_layers=2, reduce_range=rr),
    "GRU": lambda rr: nnqd.GRU(IN, HIDDEN, bidirectional=True, reduce_range=rr),
    "RNN": lambda rr: nnqd.RNN(IN, HIDDEN, nonlinearity="relu", reduce_range=rr),
    "LSTMCell": lambda rr: nnqd.LSTMCell(IN, HIDDEN, reduce_range=rr),
    "GRUCell": lambda rr: nnqd.GRUCell(IN, HIDDEN, reduce_range=rr),
    "RNNCell": lambda rr: nnqd.RNNCell(IN, HIDDEN, reduce_range=rr),
}
KINDS = ["Linear", *RECURRENT]


def random_weights(module: Any, seed: int) -> Dict[str, Any]:
    """Random qint8 weights and float biases of `module`'s shapes, keyed as `set_weight_bias` takes them."""
    rng = np.random.default_rng(seed)
    params: Dict[str, Any] = {}
    for name, w in module.get_weight().items():
        floats = rng.standard_normal(w.shape).astype(np.float32) * 0.5
        params[name] = ferroq.quantize_per_tensor(floats, float(np.abs(floats).max()) / 127, 0, "qint8")
    for name, b in module.get_bias().items():
        params[name] = rng.standard_normal(b.shape).astype(np.float32) * 0.1
    return params


def build(kind: str, reduce_range: bool) -> Any:
    """A module of `kind` built with `reduce_range`, its weights the same for either setting."""
    if kind == "Linear":
        np.random.seed(7)
        q = nnqd.Linear.from_float(ferroq.nn.Linear(IN, HIDDEN))
        if not reduce_range:
            q2 = nnqd.Linear(IN, HIDDEN, reduce_range=False)
            q2.set_weight_bias(q.weight(), q.bias())
            q = q2
        return q
    q = RECURRENT[kind](reduce_range)
    q.set_weight_bias(random_weights(q, seed=11))
    return q


def inputs(kind: str) -> np.ndarray:
    shape = (4, IN) if kind == "Linear" or kind.endswith("Cell") else (3, 4, IN)
    return np.random.default_rng(3).standard_normal(shape).astype(np.float32) * 3


def arrays(out: Any) -> Tuple[np.ndarray, ...]:
    """Every array of a module's output (nested tuples flattened), in order."""
    if isinstance(out, tuple):
        return tuple(a for item in out for a in arrays(item))
    return (out,)


def outputs(module: Any, kind: str) -> Tuple[np.ndarray, ...]:
    """The outputs for `inputs(kind)` on the lean path (a ready float32 array), after checking the
    converting path (float64, then the packed object's `forward`/`cell`) gives the same bits."""
    x = inputs(kind)
    lean, converted = arrays(module(x)), arrays(module(x.astype(np.float64)))
    assert len(lean) == len(converted)
    for a, b in zip(lean, converted):
        assert_same_bits(a, b)
    return lean


@pytest.fixture(scope="module")
def known() -> Dict[Tuple[str, bool], Tuple[np.ndarray, ...]]:
    """The outputs of each kind of module built with each setting."""
    return {(kind, rr): outputs(build(kind, rr), kind) for kind in KINDS for rr in (True, False)}


def assert_outputs(module: Any, kind: str, known: Dict[Tuple[str, bool], Tuple[np.ndarray, ...]], reduce_range: bool) -> None:
    assert module.reduce_range is reduce_range and module._packed.reduce_range is reduce_range
    got = outputs(module, kind)
    for a, b in zip(got, known[kind, reduce_range]):
        assert_same_bits(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_the_two_settings_give_different_outputs(kind, known) -> None:
    assert any(not np.array_equal(a, b) for a, b in zip(known[kind, True], known[kind, False]))


@pytest.mark.parametrize("reduce_range", [True, False])
def test_linear_outputs_are_the_references(reduce_range, known) -> None:
    q = build("Linear", reduce_range)
    assert_same_bits(known["Linear", reduce_range][0], linear_reference(q, inputs("Linear")))


@pytest.mark.parametrize("kind", KINDS)
def test_assigning_it_after_construction_changes_the_outputs(kind, known) -> None:
    q = build(kind, True)
    q.reduce_range = False
    assert_outputs(q, kind, known, False)
    q.reduce_range = True
    assert_outputs(q, kind, known, True)
    q.reduce_range = 0  # any truth value, as torch's attribute takes it
    assert_outputs(q, kind, known, False)


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"])
@pytest.mark.parametrize("kind", KINDS)
def test_copies_keep_it_and_change_it_on_their_own(kind, copier, known) -> None:
    for reduce_range in (True, False):
        q = build(kind, reduce_range)
        clone = copier(q)
        assert clone._packed is not q._packed
        assert_outputs(clone, kind, known, reduce_range)
        clone.reduce_range = not reduce_range
        assert_outputs(clone, kind, known, not reduce_range)
        assert_outputs(q, kind, known, reduce_range)


@pytest.mark.parametrize("kind", KINDS)
def test_loading_a_state_dict_keeps_the_modules_own_setting(kind, known) -> None:
    for reduce_range in (True, False):
        q = build(kind, reduce_range)
        q.load_state_dict(build(kind, not reduce_range).state_dict())  # the weights are the same
        assert_outputs(q, kind, known, reduce_range)
        q.reduce_range = not reduce_range
        assert_outputs(q, kind, known, not reduce_range)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_keep_it(kind, known, tmp_path) -> None:
    for reduce_range in (True, False):
        path = tmp_path / f"{kind}-{reduce_range}.safetensors"
        ferroq.save(build(kind, reduce_range), path)
        loaded = ferroq.load(path)
        assert_outputs(loaded, kind, known, reduce_range)
        loaded.reduce_range = not reduce_range
        assert_outputs(loaded, kind, known, not reduce_range)


@pytest.mark.parametrize("kind", KINDS)
def test_new_weights_keep_it(kind, known) -> None:
    q = build(kind, True)
    q.reduce_range = False
    if kind == "Linear":
        q.set_weight_bias(q.weight(), q.bias())
    else:
        q.set_weight_bias({**q.get_weight(), **q.get_bias()})
    assert_outputs(q, kind, known, False)


def test_float16_weights_keep_it_and_ignore_it() -> None:
    lin = ferroq.nn.Linear(IN, HIDDEN)
    lin.qconfig = ferroq.quantization.float16_dynamic_qconfig
    q = nnqd.Linear.from_float(lin)
    x = inputs("Linear")
    y = q(x)
    q.reduce_range = False
    assert q._packed.reduce_range is False and pickle.loads(pickle.dumps(q)).reduce_range is False
    assert_same_bits(q(x), y)


def test_the_core_objects_take_only_a_bool() -> None:
    packed = nnqd.Linear(2, 2)._packed
    with pytest.raises(TypeError):
        packed.reduce_range = 1
    with pytest.raises(TypeError):
        ferroq._core.PackedLinear.zeros(2, 2, reduce_range="yes")
    assert packed.reduce_range is True
