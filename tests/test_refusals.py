"""Values with no quantized meaning, or that would silently change the numerics, are refused
with a typed error where they enter: constructors, ``set_weight_bias``, ``load_state_dict``,
unpickling and ``quantize_per_*``. A refused call changes nothing."""

from __future__ import annotations

import pickle
from typing import Any, Callable, Dict

import numpy as np
import pytest

import ferroq
from ferroq import _core, nn
from ferroq._tensor import _new_empty_qtensor
from ferroq.nn import quantized as nnq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.nn.quantized import reference as nnqr

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)).astype(np.float32)
BAD_SCALES = [0.0, -0.1, 1e-50, 1e-40, 1e39, float("inf"), float("nan")]
NON_FINITE = [np.nan, np.inf, -np.inf]


def qweight(shape: Any = (2, 4), zero_point: int = 0) -> ferroq.QTensor:
    return ferroq.QTensor.from_int_repr(RNG.integers(-5, 5, shape).astype(np.int8), 0.02, zero_point)


def dynamic_linear() -> nnqd.Linear:
    m = nnqd.Linear(4, 2)
    m.set_weight_bias(qweight(), np.array([0.5, -0.25], np.float32))
    return m


def static_linear() -> nnq.Linear:
    m = nnq.Linear(4, 2)
    m.set_weight_bias(qweight(), np.array([0.5, -0.25], np.float32))
    m.scale, m.zero_point = 0.05, 10
    return m


def dynamic_lstm() -> nnqd.LSTM:
    np.random.seed(0)
    return ferroq.quantization.quantize_dynamic(nn.LSTM(4, 3).eval(), {nn.LSTM})


def state_bits(m: Any) -> Dict[str, Any]:
    """A module's state dict as comparable values (QTensors by integers and qparams)."""
    out: Dict[str, Any] = {}
    for key, value in m.state_dict().items():
        if isinstance(value, tuple):
            value = [v for v in value]
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(v, ferroq.QTensor):
                out[f"{key}[{i}]"] = (v.int_repr().tobytes(), repr(v.qscheme()), v.q_scale(), v.q_zero_point())
            elif isinstance(v, np.ndarray):
                out[f"{key}[{i}]"] = (v.dtype.str, v.tobytes())
            else:
                out[f"{key}[{i}]"] = repr(v)
    return out


def output_bits(m: Any) -> bytes:
    if isinstance(m, nnq.Linear):
        return m(ferroq.quantize_per_tensor(X, 0.05, 128, ferroq.quint8)).int_repr().tobytes()
    if isinstance(m, nnqd.LSTM):
        y, (h, c) = m(X[:, None, :])
        return y.tobytes() + h.tobytes() + c.tobytes()
    return m(X).tobytes()


def assert_unchanged(m: Any, before_state: Dict[str, Any], before_out: bytes, dtype: Any) -> None:
    assert m.dtype is dtype
    assert state_bits(m) == before_state
    assert output_bits(m) == before_out


# -- scales --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", BAD_SCALES)
def test_quantize_per_tensor_refuses_a_scale_that_is_not_a_positive_normal_float32(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        ferroq.quantize_per_tensor(X, scale, 0, ferroq.qint8)


@pytest.mark.parametrize("scale", BAD_SCALES)
def test_quantize_per_channel_refuses_such_a_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        ferroq.quantize_per_channel(X, [0.1, scale, 0.1, 0.1], [0, 0, 0, 0], 1, ferroq.qint8)


@pytest.mark.parametrize("scale", BAD_SCALES)
def test_from_int_repr_quantize_module_and_static_output_refuse_such_a_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        ferroq.QTensor.from_int_repr(np.zeros(3, np.int8), scale, 0)
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        nnq.Quantize(scale, 0, ferroq.quint8)
    m = static_linear()
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        m.scale = scale
    assert m.scale == 0.05


@pytest.mark.parametrize("scale", [1e-50, 1e39])
def test_the_reference_linear_refuses_such_a_weight_scale(scale: float) -> None:
    qparams = {"qscheme": ferroq.per_tensor_affine, "dtype": ferroq.qint8, "scale": scale, "zero_point": 0}
    with pytest.raises(ValueError, match="scale must be positive, finite and a normal float32"):
        nnqr.Linear(4, 2, weight_qparams=qparams)


@pytest.mark.parametrize("scale", [1e-40, 0.0, float("inf")])
def test_the_core_refuses_such_a_weight_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="weight scales must be positive, finite and normal"):
        _core.PackedLinear(np.ones((2, 4), np.int8), np.array([scale], np.float32), np.zeros(1, np.int32), None)


def test_the_extreme_accepted_scales_quantize_zero_to_the_zero_point() -> None:
    tiny = float(np.finfo(np.float32).tiny)
    huge = float(np.finfo(np.float32).max)
    for scale in (tiny, huge):
        q = ferroq.quantize_per_tensor(np.zeros(3, np.float32), scale, 5, ferroq.qint8)
        assert q.int_repr().tolist() == [5, 5, 5]


# -- zero points ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_point", [66.7, 66.0, np.float32(66), "66", None])
def test_quantize_per_tensor_refuses_a_zero_point_that_is_not_an_integer(zero_point: Any) -> None:
    with pytest.raises(TypeError, match="zero_point must be an integer"):
        ferroq.quantize_per_tensor(X, 0.1, zero_point, ferroq.quint8)


def test_integer_zero_points_of_any_integer_type_are_accepted() -> None:
    for zp in (66, np.int64(66), np.uint8(66), np.array(66), np.array([66])):
        assert ferroq.quantize_per_tensor(X, 0.1, zp, ferroq.quint8).q_zero_point() == 66


def test_per_channel_zero_points_must_be_integers() -> None:
    with pytest.raises(TypeError, match="zero_points must be integers"):
        ferroq.quantize_per_channel(X, [0.1] * 4, [0.0, 1.5, 0.0, 0.0], 1, ferroq.qint8)
    with pytest.raises(TypeError, match="zero_points must be integers"):
        ferroq.QTensor.from_int_repr(np.zeros((2, 4), np.int8), [0.1, 0.1], [0.5, 0.0], 0)


def test_modules_refuse_a_float_zero_point() -> None:
    with pytest.raises(TypeError, match="zero_point must be an integer"):
        ferroq.QTensor.from_int_repr(np.zeros(3, np.int8), 0.1, 66.7)
    with pytest.raises(TypeError, match="zero_point must be an integer"):
        nnq.Quantize(0.1, 66.7, ferroq.quint8)
    m = static_linear()
    with pytest.raises(TypeError, match="zero_point must be an integer"):
        m.zero_point = 66.7
    assert m.zero_point == 10
    qparams = {"qscheme": ferroq.per_tensor_affine, "dtype": ferroq.qint8, "scale": 0.1, "zero_point": 1.5}
    with pytest.raises(TypeError, match="weight zero_point must be integers"):
        nnqr.Linear(4, 2, weight_qparams=qparams)


def test_load_state_dict_refuses_a_float_zero_point_and_changes_nothing() -> None:
    m = static_linear()
    before_state, before_out = state_bits(m), output_bits(m)
    state = m.state_dict()
    state["zero_point"] = np.array(66.7)
    with pytest.raises(RuntimeError, match="zero_point must be an integer"):
        m.load_state_dict(state)
    assert_unchanged(m, before_state, before_out, ferroq.qint8)
    quantize = nnq.Quantize(0.1, 3, ferroq.quint8)
    with pytest.raises(RuntimeError, match="zero_point must be an integer"):
        quantize.load_state_dict({"scale": np.array([0.1], np.float32), "zero_point": np.array([66.7])})
    assert quantize.zero_point == 3


@pytest.mark.parametrize("zero_point", [300, -129, 128])
def test_a_weight_zero_point_outside_int8_is_refused(zero_point: int) -> None:
    with pytest.raises(ValueError, match="zero_point must be between -128 and 127"):
        ferroq.QTensor.from_int_repr(np.zeros(3, np.int8), 0.1, zero_point)
    with pytest.raises(ValueError, match="weight zero points must lie in"):
        _core.PackedLinear(np.ones((2, 4), np.int8), np.ones(1, np.float32), np.array([zero_point], np.int32), None)


# -- QTensor unpickling ---------------------------------------------------------------------------


class ForgedQTensor:
    """Pickles as a QTensor with any state: what a tampered pickle holds."""

    def __init__(self, state: Dict[str, Any]) -> None:
        self.state = state

    def __reduce__(self) -> Any:
        return (_new_empty_qtensor, (), self.state)


def qtensor_state(**changes: Any) -> Dict[str, Any]:
    state = ferroq.QTensor.from_int_repr(np.arange(-3, 3, dtype=np.int8), 0.1, 2).__getstate__()
    state.update(changes)
    return state


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"_zero_point": 300}, ValueError, "zero_point must be between"),
        ({"_zero_point": 2.5}, TypeError, "zero_point must be an integer"),
        ({"_scale": 1e-50}, ValueError, "scale must be positive"),
        ({"_scale": float("nan")}, ValueError, "scale must be positive"),
        ({"_dtype": ferroq.quint8}, ValueError, "says dtype ferroq.quint8 but holds int8"),
        ({"_int": np.zeros(6, np.float32)}, TypeError, "int_repr must be an int8"),
        ({"_axis": 5, "_scales": np.ones(6), "_zero_points": np.zeros(6, np.int64)}, ValueError, "axis 5 is out of range"),
    ],
)
def test_unpickling_a_tampered_qtensor_is_refused(changes: Dict[str, Any], error: type, message: str) -> None:
    data = pickle.dumps(ForgedQTensor(qtensor_state(**changes)))
    with pytest.raises(error, match=message):
        pickle.loads(data)


def test_unpickling_a_qtensor_state_with_missing_keys_is_refused() -> None:
    state = qtensor_state()
    del state["_scale"]
    with pytest.raises(ValueError, match="a QTensor state must be a dict with the keys"):
        pickle.loads(pickle.dumps(ForgedQTensor(state)))


def test_an_untampered_qtensor_round_trips_through_pickle() -> None:
    q = ferroq.QTensor.from_int_repr(np.arange(-3, 3, dtype=np.int8).reshape(2, 3), [0.1, 0.2], [1, -1], 0)
    assert pickle.loads(pickle.dumps(q))._same_as(q)


class ForgedModule:
    """Pickles as a module of class ``cls`` with any state: what a tampered pickle holds."""

    def __init__(self, cls: type, state: Dict[str, Any]) -> None:
        self.cls, self.state = cls, state

    def __reduce__(self) -> Any:
        return (object.__new__, (self.cls,), self.state)


def test_unpickling_a_module_with_a_tampered_weight_zero_point_is_refused() -> None:
    m = dynamic_linear()
    state = m.__getstate__()
    state["_weight"] = ForgedQTensor({**state["_weight"].__getstate__(), "_zero_point": 300})
    data = pickle.dumps(ForgedModule(type(m), state))
    with pytest.raises(ValueError, match="zero_point must be between -128 and 127"):
        pickle.loads(data)


# -- dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [ferroq.quint8, "float32"])
def test_a_dynamic_linear_refuses_a_stored_dtype_without_kernels(dtype: Any) -> None:
    with pytest.raises(NotImplementedError, match="supports dtype ferroq.qint8 or ferroq.float16"):
        nnqd.Linear(4, 2, dtype=dtype)
    m = dynamic_linear()
    before_state, before_out = state_bits(m), output_bits(m)
    state = m.state_dict()
    state["_packed_params.dtype"] = ferroq._dtypes.as_dtype(dtype)
    with pytest.raises(RuntimeError, match="supports dtype ferroq.qint8 or ferroq.float16"):
        m.load_state_dict(state)
    assert_unchanged(m, before_state, before_out, ferroq.qint8)
    pickled = m.__getstate__()
    pickled["dtype"] = ferroq._dtypes.as_dtype(dtype)
    with pytest.raises(NotImplementedError, match="supports dtype ferroq.qint8 or ferroq.float16"):
        nnqd.Linear.__new__(nnqd.Linear).__setstate__(pickled)


def test_a_qint8_lstm_refuses_float_weights_from_load_state_dict() -> None:
    m = dynamic_lstm()
    before_state, before_out = state_bits(m), output_bits(m)
    floats = {k: (v.dequantize() if isinstance(v, ferroq.QTensor) else v) for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match="holds ferroq.float16 weights but this module has dtype ferroq.qint8"):
        m.load_state_dict(floats)
    assert_unchanged(m, before_state, before_out, ferroq.qint8)


def test_a_float16_lstm_refuses_qint8_weights_from_load_state_dict() -> None:
    np.random.seed(0)
    float_lstm = nn.LSTM(4, 3).eval()
    float_lstm.qconfig = ferroq.quantization.float16_dynamic_qconfig
    m = ferroq.quantization.quantize_dynamic(float_lstm, {nn.LSTM})
    with pytest.raises(RuntimeError, match="holds ferroq.qint8 weights but this module has dtype ferroq.float16"):
        m.load_state_dict(dynamic_lstm().state_dict())
    assert m.dtype is ferroq.float16


# -- biases --------------------------------------------------------------------------------------


SETTERS: Dict[str, Callable[[], Any]] = {
    "dynamic Linear": dynamic_linear,
    "dynamic Linear float16": lambda: nnqd.Linear(4, 2, dtype=ferroq.float16),
    "static Linear": static_linear,
}


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("name", sorted(SETTERS))
def test_set_weight_bias_refuses_a_non_finite_bias_and_changes_nothing(name: str, bad: float) -> None:
    m = SETTERS[name]()
    dtype = m.dtype
    before_state, before_out = state_bits(m), output_bits(m)
    weight = qweight() if dtype is ferroq.qint8 else np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="bias contains NaN or infinity"):
        m.set_weight_bias(weight, np.array([0.0, bad], np.float32))
    assert_unchanged(m, before_state, before_out, dtype)


@pytest.mark.parametrize("bad", NON_FINITE)
def test_load_state_dict_refuses_a_non_finite_bias_and_changes_nothing(bad: float) -> None:
    for m in (dynamic_linear(), static_linear()):
        before_state, before_out = state_bits(m), output_bits(m)
        state = m.state_dict()
        weight, bias = state["_packed_params._packed_params"]
        state["_packed_params._packed_params"] = (weight, np.where(np.arange(2) == 1, np.float32(bad), bias))
        with pytest.raises(RuntimeError, match="bias contains NaN or infinity"):
            m.load_state_dict(state)
        assert_unchanged(m, before_state, before_out, ferroq.qint8)
    lstm = dynamic_lstm()
    before_state, before_out = state_bits(lstm), output_bits(lstm)
    state = lstm.state_dict()
    state["bias_hh_l0"] = state["bias_hh_l0"].copy()
    state["bias_hh_l0"][3] = bad
    with pytest.raises(RuntimeError, match="bias_hh_l0 contains NaN or infinity"):
        lstm.load_state_dict(state)
    assert_unchanged(lstm, before_state, before_out, ferroq.qint8)


def test_recurrent_set_weight_bias_refuses_a_non_finite_bias_and_changes_nothing() -> None:
    lstm = dynamic_lstm()
    before_state, before_out = state_bits(lstm), output_bits(lstm)
    params = {**lstm.get_weight(), **lstm.get_bias()}
    params["bias_ih_l0"][0] = np.inf
    with pytest.raises(ValueError, match="bias_ih_l0 contains NaN or infinity"):
        lstm.set_weight_bias(params)
    assert_unchanged(lstm, before_state, before_out, ferroq.qint8)


def test_from_float_refuses_a_non_finite_bias() -> None:
    np.random.seed(0)
    linear = nn.Linear(4, 2)
    linear.bias = np.array([0.0, np.nan], np.float32)
    with pytest.raises(ValueError, match="bias contains NaN or infinity"):
        nnqd.Linear.from_float(linear)


def test_the_core_refuses_a_non_finite_bias() -> None:
    with pytest.raises(ValueError, match="bias must be finite"):
        _core.PackedLinear(np.ones((2, 4), np.int8), np.ones(1, np.float32), np.zeros(1, np.int32), np.array([0, np.nan], np.float32))
    with pytest.raises(ValueError, match="bias must be finite"):
        _core.PackedLinearFp16(np.zeros((2, 4), np.uint16), np.array([np.inf, 0], np.float32))


# -- recurrent states ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("dtype", [ferroq.qint8, ferroq.float16])
def test_a_non_finite_cell_state_c_or_h_is_refused(bad: float, dtype: Any) -> None:
    cell = nnqd.LSTMCell(4, 3, dtype=dtype)
    h = np.zeros((3, 3), np.float32)
    c = np.zeros((3, 3), np.float32)
    c[1, 2] = bad
    with pytest.raises(ValueError, match="c contains NaN or infinity"):
        cell(X, (h, c))  # fast path
    with pytest.raises(ValueError, match="c contains NaN or infinity"):
        cell(X.astype(np.float64), (h, c))  # normalising path
    with pytest.raises(ValueError, match="h contains NaN or infinity"):
        cell(X, (c, h))
    with pytest.raises(ValueError, match="h contains NaN or infinity"):
        nnqd.GRUCell(4, 3, dtype=dtype)(X, c)


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("row,unit", [(0, 0), (0, 15), (0, 16), (1, 47), (1, 48), (1, 50)])
def test_a_non_finite_value_anywhere_in_a_wide_cell_state_is_refused(bad: float, row: int, unit: int) -> None:
    # 2 x 51 = 102 values: six blocks of 16 and a tail of 6, checked in blocks by the core.
    cell = nnqd.LSTMCell(4, 51)
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    finite = np.full((2, 51), -0.0, np.float32)
    finite[0, :3] = [np.finfo(np.float32).max, -np.finfo(np.float32).max, np.finfo(np.float32).smallest_subnormal]
    cell(x, (finite, finite))  # extreme finite values pass
    state = finite.copy()
    state[row, unit] = bad
    with pytest.raises(ValueError, match="h contains NaN or infinity"):
        cell(x, (state, finite))
    with pytest.raises(ValueError, match="c contains NaN or infinity"):
        cell(x, (finite, state))
    with pytest.raises(ValueError, match="h contains NaN or infinity"):
        nnqd.RNNCell(4, 51)(x, state)


@pytest.mark.parametrize("bad", NON_FINITE)
def test_a_non_finite_initial_lstm_state_is_refused(bad: float) -> None:
    lstm = dynamic_lstm()
    h0 = np.zeros((1, 3, 3), np.float32)
    c0 = np.zeros((1, 3, 3), np.float32)
    c0[0, 2, 1] = bad
    with pytest.raises(ValueError, match="c0 contains NaN or infinity"):
        lstm(X[None], (h0, c0))
    with pytest.raises(ValueError, match="h0 contains NaN or infinity"):
        lstm(X[None], (c0, h0))


# -- observers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, -1e-7, 1e-50, float("nan")])
def test_an_observer_refuses_an_eps_that_is_not_a_usable_scale(eps: float) -> None:
    with pytest.raises(ValueError, match="eps, the smallest scale an observer may choose"):
        ferroq.quantization.MinMaxObserver(eps=eps)


def test_an_observer_refuses_a_float_quantization_range() -> None:
    with pytest.raises(TypeError, match="quant_max must be an integer"):
        ferroq.quantization.MinMaxObserver(quant_min=0, quant_max=127.5)
    with pytest.raises(TypeError, match="quant_min must be an integer"):
        ferroq.quantization.PerChannelMinMaxObserver(quant_min=-0.5, quant_max=10)


# -- module unpickling ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [{"scale": 1e-50}, {"zero_point": 300}, {"zero_point": 66.7}])
def test_unpickling_a_quantize_or_static_linear_with_tampered_qparams_is_refused(changes: Dict[str, Any]) -> None:
    quantize = nnq.Quantize(0.1, 3, ferroq.quint8)
    quantize.__dict__.update(changes)
    with pytest.raises((ValueError, TypeError), match="scale must be positive|zero_point"):
        pickle.loads(pickle.dumps(quantize))
    linear = static_linear()
    linear.__dict__.update({"_" + k: v for k, v in changes.items()})
    with pytest.raises((ValueError, TypeError), match="scale must be positive|zero point|zero_point"):
        pickle.loads(pickle.dumps(linear))


def test_untampered_modules_round_trip_through_pickle() -> None:
    for m in (nnq.Quantize(0.1, 3, ferroq.quint8), static_linear(), dynamic_linear(), dynamic_lstm()):
        again = pickle.loads(pickle.dumps(m))
        assert state_bits(again) == state_bits(m)
