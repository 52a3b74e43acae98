"""The dynamic quantized Linear beyond the golden files: docs/numerics.md §7's corner cases, the
module API (state dict, pickling, repr), input handling and errors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import per_channel_dynamic_qconfig

from conftest import assert_same_bits
from reference import choose_qparams, dynamic_linear


def make(in_features=20, out_features=12, bias=True, per_channel=False, seed=0) -> nnqd.Linear:
    np.random.seed(seed)
    lin = ferroq.nn.Linear(in_features, out_features, bias=bias)
    if per_channel:
        lin.qconfig = per_channel_dynamic_qconfig
    return nnqd.Linear.from_float(lin)


def reference(q: nnqd.Linear, x: np.ndarray) -> np.ndarray:
    w = q.weight()
    if w.qscheme() is ferroq.per_channel_affine:
        scales, zps = w.q_per_channel_scales(), w.q_per_channel_zero_points()
    else:
        scales, zps = np.array([w.q_scale()]), np.array([w.q_zero_point()])
    scales = np.broadcast_to(scales, (q.out_features,))
    zps = np.broadcast_to(zps, (q.out_features,))
    return dynamic_linear(x.reshape(-1, q.in_features), w.int_repr(), scales, zps, q.bias(), q.reduce_range)


# -- numerics against the independent reference -------------------------------------------------


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("reduce_range", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference_on_random_shapes(rng, per_channel, reduce_range, bias):
    for in_features, out_features, rows in [(1, 1, 1), (5, 3, 7), (33, 17, 4), (64, 65, 9), (130, 40, 2)]:
        q = make(in_features, out_features, bias, per_channel, seed=in_features)
        q.reduce_range = reduce_range
        x = rng.standard_normal((rows, in_features)).astype(np.float32) * 3
        assert_same_bits(q(x), reference(q, x))


def test_affine_weights_with_nonzero_zero_points(rng):
    w = rng.integers(-128, 128, size=(9, 14)).astype(np.int8)
    qw = ferroq.QTensor.from_int_repr(w, np.linspace(0.01, 0.05, 9), np.arange(-4, 5), axis=0)
    q = nnqd.Linear(14, 9)
    q.set_weight_bias(qw, rng.standard_normal(9).astype(np.float32))
    x = rng.standard_normal((6, 14)).astype(np.float32)
    assert_same_bits(q(x), reference(q, x))


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((4, 20), np.float32),
        np.full((4, 20), 0.75, np.float32),
        np.full((4, 20), -0.75, np.float32),
        np.full((4, 20), 1e-9, np.float32),
        (np.arange(80, dtype=np.float32).reshape(4, 20) - 40) * np.float32(1e-7),
        (np.arange(80, dtype=np.float32).reshape(4, 20) - 40) * np.float32(1e28),
        np.abs(np.linspace(-3, 5, 80, dtype=np.float32)).reshape(4, 20),
    ],
    ids=["zeros", "constant", "negative-constant", "tiny", "tiny-range", "huge", "positive"],
)
def test_corner_case_inputs_match_reference(x):
    q = make()
    assert_same_bits(q(x), reference(q, x))


def test_all_zero_input_gives_the_bias_exactly():
    q = make()
    assert_same_bits(q(np.zeros((3, 20), np.float32)), np.broadcast_to(q.bias(), (3, 12)).copy())


def test_qparams_rule_examples():
    assert choose_qparams(0.0, 0.0) == (0.1, 0)
    assert ferroq._core.choose_qparams(0.0, 0.0, 0, 255, True) == (0.1, 0)
    for lo, hi in [(-1.0, 3.0), (2.0, 2.0), (-2.0, -2.0), (0.0, 1e-9), (-1e-6, 3e-6), (-5.5, 0.25), (-1e30, 1e30)]:
        for rr in (True, False):
            assert ferroq._core.choose_qparams(lo, hi, 0, 255, rr) == choose_qparams(lo, hi, 0, 255, rr)


# -- shapes ------------------------------------------------------------------------------------


def test_any_rank_at_least_one(rng):
    q = make()
    x = rng.standard_normal((2, 3, 20)).astype(np.float32)
    y = q(x)
    assert y.shape == (2, 3, 12) and y.dtype == np.float32
    assert_same_bits(y.reshape(6, 12), q(x.reshape(6, 20)))
    one = q(x[0, 0])
    assert one.shape == (12,)
    assert_same_bits(one, q(x[0, :1])[0])


def test_empty_batch_and_empty_output():
    q = make()
    assert q(np.zeros((0, 20), np.float32)).shape == (0, 12)
    with pytest.warns(UserWarning, match="must run observer"):  # an empty weight, as in torch
        zero_out = make(20, 0)
    y = zero_out(np.ones((3, 20), np.float32))
    assert y.shape == (3, 0)


def test_noncontiguous_and_float64_inputs_equal_the_float32_copy(rng):
    q = make()
    base = rng.standard_normal((20, 8)).astype(np.float32)
    strided = base.T  # (8, 20), not C-contiguous
    assert not strided.flags.c_contiguous
    assert_same_bits(q(strided), q(np.ascontiguousarray(strided)))
    assert_same_bits(q(strided.astype(np.float64)), q(np.ascontiguousarray(strided)))
    assert_same_bits(q(strided.tolist()), q(np.ascontiguousarray(strided)))


# -- errors ------------------------------------------------------------------------------------


def test_wrong_last_dimension_names_both_sizes():
    q = make()
    with pytest.raises(ValueError, match=r"has 19 features in its last dimension, expected 20"):
        q(np.zeros((2, 19), np.float32))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        q(np.float32(1.0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 37])
def test_nan_and_inf_inputs_are_value_errors(bad, where):
    q = make()
    x = np.ones((2, 20), np.float32)
    x.flat[where] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        q(x)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_, np.complex64, object])
def test_non_float_inputs_are_type_errors(dtype):
    q = make()
    with pytest.raises(TypeError, match="floating-point"):
        q(np.ones((2, 20), dtype=dtype))


def test_nan_weights_are_rejected_at_from_float():
    lin = ferroq.nn.Linear(4, 3)
    w = lin.weight
    w[1, 2] = np.nan
    lin.weight = w
    with pytest.raises(ValueError, match="NaN"):
        nnqd.Linear.from_float(lin)


def test_from_float_rejects_other_modules():
    with pytest.raises(TypeError, match="expects a float Linear"):
        nnqd.Linear.from_float(ferroq.nn.ReLU())


def test_unsupported_dtype_is_not_implemented():
    with pytest.raises(NotImplementedError, match="qint8 or ferroq.float16"):
        nnqd.Linear(4, 3, dtype=ferroq.quint8)
    with pytest.raises(TypeError, match="expected a dtype"):
        nnqd.Linear(4, 3, dtype="int4")


def test_set_weight_bias_checks_before_changing_anything(rng):
    q = make()
    before_w, before_b = q.weight(), q.bias()
    x = rng.standard_normal((3, 20)).astype(np.float32)
    y = q(x)
    bad_shape = ferroq.quantize_per_tensor(np.zeros((12, 21), np.float32), 0.1, 0, ferroq.qint8)
    with pytest.raises(ValueError, match=r"shape \(12, 20\)"):
        q.set_weight_bias(bad_shape, before_b)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\)"):
        q.set_weight_bias(before_w, np.zeros(11, np.float32))
    with pytest.raises(TypeError, match="qint8 QTensor"):
        q.set_weight_bias(np.zeros((12, 20), np.float32), before_b)
    assert q.weight()._same_as(before_w)
    np.testing.assert_array_equal(q.bias(), before_b)
    assert_same_bits(q(x), y)


# -- module API --------------------------------------------------------------------------------


def test_bias_false_and_bias_accessors(rng):
    q = make(bias=False)
    assert q.bias() is None
    x = rng.standard_normal((2, 20)).astype(np.float32)
    assert_same_bits(q(x), reference(q, x))


def test_repr_is_torch_like():
    assert repr(make()) == "DynamicQuantizedLinear(in_features=20, out_features=12, dtype=ferroq.qint8, qscheme=ferroq.per_tensor_affine)"
    assert "per_channel_affine" in repr(make(per_channel=True))
    fp16 = nnqd.Linear(3, 2, dtype="float16")
    assert repr(fp16) == "DynamicQuantizedLinear(in_features=3, out_features=2, dtype=ferroq.float16)"


def test_state_dict_round_trip_is_exact(rng):
    q = make(per_channel=True)
    sd = q.state_dict()
    assert list(sd) == ["scale", "zero_point", "_packed_params.dtype", "_packed_params._packed_params"]
    assert sd._metadata[""] == {"version": 4}
    fresh = nnqd.Linear(20, 12)
    fresh.load_state_dict(sd)
    x = rng.standard_normal((5, 20)).astype(np.float32)
    assert_same_bits(fresh(x), q(x))
    assert fresh.weight()._same_as(q.weight())


def test_old_state_dicts_run_without_reduce_range():
    q = make()
    sd = q.state_dict()
    sd._metadata[""] = {"version": 3}
    old = nnqd.Linear(20, 12)
    old.load_state_dict(sd)
    assert old.reduce_range is False


def test_load_state_dict_reports_and_changes_nothing_on_error():
    q = make()
    before = q.weight()
    with pytest.raises(RuntimeError, match="Missing key"):
        q.load_state_dict({})
    wrong = make(20, 12, seed=5).state_dict()
    wrong["_packed_params._packed_params"] = (ferroq.quantize_per_tensor(np.zeros((3, 3), np.float32), 1.0, 0, "qint8"), None)
    with pytest.raises(RuntimeError, match="shape"):
        q.load_state_dict(wrong)
    assert q.weight()._same_as(before)
    result = q.load_state_dict({**make(20, 12, seed=5).state_dict(), "extra": 1}, strict=False)
    assert result.unexpected_keys == ["extra"] and result.missing_keys == []


@pytest.mark.parametrize("dtype", ["qint8", "float16"])
def test_pickle_and_deepcopy_give_identical_outputs(rng, dtype):
    lin = ferroq.nn.Linear(20, 12)
    if dtype == "float16":
        lin.qconfig = ferroq.quantization.float16_dynamic_qconfig
    q = nnqd.Linear.from_float(lin)
    x = rng.standard_normal((4, 20)).astype(np.float32)
    for clone in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q)):
        assert_same_bits(clone(x), q(x))
        assert clone._packed is not q._packed


def test_reduce_range_false_uses_the_full_range(rng):
    q = make()
    x = rng.standard_normal((4, 20)).astype(np.float32)
    reduced = q(x)
    q.reduce_range = False
    full = q(x)
    assert_same_bits(full, reference(q, x))
    assert not np.array_equal(full, reduced)
    assert "reduce_range=False" in repr(q)


@pytest.mark.parametrize("dtype", [ferroq.qint8, ferroq.float16])
def test_reduce_range_is_held_by_the_packed_object(dtype):
    q = nnqd.Linear(3, 2, dtype=dtype, reduce_range=False)
    assert q._packed.reduce_range is False
    assert "reduce_range" not in q.__dict__
    q.set_weight_bias(q.weight(), q.bias())  # new packed weights keep the setting
    assert q._packed.reduce_range is False
    q.load_state_dict(nnqd.Linear(3, 2, dtype=dtype).state_dict())
    assert q.reduce_range is False
    state = q.__getstate__()
    assert state["reduce_range"] is False and "_packed" not in state
    clone = pickle.loads(pickle.dumps(q))
    assert clone._packed.reduce_range is False
    q.reduce_range = True
    assert q._packed.reduce_range is True and clone.reduce_range is False


def test_float16_weights_saturate_with_a_warning_and_leave_the_input_alone():
    lin = ferroq.nn.Linear(2, 2, bias=False)
    lin.weight = np.array([[1e6, -1e6], [1.0, 2.0]], np.float32)
    lin.qconfig = ferroq.quantization.float16_dynamic_qconfig
    with pytest.warns(UserWarning, match="FOUND weight out of range"):
        q = nnqd.Linear.from_float(lin)
    assert lin.weight[0, 0] == 1e6
    np.testing.assert_array_equal(q.weight(), np.array([[65504, -65504], [1, 2]], np.float16))
    np.testing.assert_array_equal(q(np.array([1.0, 0.0], np.float32)), np.array([65504.0, 1.0], np.float32))


def test_torch_like_modules_are_duck_typed(rng):
    class Linear:  # what from_float sees of a torch.nn.Linear: weight, bias, a class named Linear
        def __init__(self):
            self.weight = rng.standard_normal((5, 7)).astype(np.float32)
            self.bias = rng.standard_normal(5).astype(np.float32)

    mod = Linear()
    q = nnqd.Linear.from_float(mod)
    ours = ferroq.nn.Linear(7, 5)
    ours.weight, ours.bias = mod.weight, mod.bias
    x = rng.standard_normal((3, 7)).astype(np.float32)
    assert_same_bits(q(x), nnqd.Linear.from_float(ours)(x))
