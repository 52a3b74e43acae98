"""Weight observers and qconfigs (docs/numerics.md §1.4): PyTorch's formulas, in float32."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import ferroq
from ferroq.quantization import (
    HistogramObserver,
    MinMaxObserver,
    PerChannelMinMaxObserver,
    PlaceholderObserver,
    QConfig,
    default_dynamic_qconfig,
    default_per_channel_weight_observer,
    default_weight_observer,
    float16_dynamic_qconfig,
    per_channel_dynamic_qconfig,
)

EPS = np.float32(np.finfo(np.float32).eps)


def test_symmetric_qint8_divides_by_127_5():
    obs = default_weight_observer()
    obs(np.array([-0.5, 2.55], np.float32))
    scale, zp = obs.calculate_qparams()
    assert scale.dtype == np.float32 and zp.dtype == np.int64
    assert scale == np.float32(2.55) / np.float32(127.5) and zp == 0


def test_affine_quint8_zero_point_rounds_half_even_in_float32():
    obs = MinMaxObserver(dtype=ferroq.quint8, qscheme=ferroq.per_tensor_affine)
    obs(np.array([-1.0, 3.0], np.float32))
    scale, zp = obs.calculate_qparams()
    assert scale == np.float32(4.0) / np.float32(255)
    assert zp == 0 - np.rint(np.float32(-1.0) / scale)


def test_constant_and_zero_tensors():
    obs = MinMaxObserver(dtype=ferroq.quint8)
    obs(np.full(5, 3.0, np.float32))
    scale, zp = obs.calculate_qparams()
    assert scale == np.float32(3.0) / np.float32(255) and zp == 0
    zero = default_weight_observer()
    zero(np.zeros(4, np.float32))
    scale, zp = zero.calculate_qparams()
    assert scale == EPS and zp == 0


def test_running_min_max_and_reduce_range():
    obs = MinMaxObserver(dtype=ferroq.quint8, reduce_range=True)
    obs(np.array([0.0, 1.0], np.float32))
    obs(np.array([-1.0, 0.5], np.float32))
    obs(np.zeros(0, np.float32))
    assert obs.min_val == -1.0 and obs.max_val == 1.0
    scale, _ = obs.calculate_qparams()
    assert scale == np.float32(2.0) / np.float32(127)


def test_unobserved_returns_defaults_with_a_warning():
    with pytest.warns(UserWarning, match="must run observer"):
        scale, zp = MinMaxObserver().calculate_qparams()
    assert scale == 1.0 and zp == 0


def test_nan_is_reported_like_torch():
    obs = default_weight_observer()
    obs(np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="min nan should be less than max nan"):
        obs.calculate_qparams()


def test_per_channel_rows():
    obs = default_per_channel_weight_observer()
    obs(np.array([[1.0, -2.0], [0.5, 0.25], [0.0, 0.0]], np.float32))
    scale, zp = obs.calculate_qparams()
    np.testing.assert_array_equal(scale, np.array([2.0, 0.5, EPS * 127.5], np.float32) / np.float32(127.5))
    np.testing.assert_array_equal(zp, [0, 0, 0])
    affine = PerChannelMinMaxObserver(ch_axis=1, dtype=ferroq.quint8)
    affine(np.array([[1.0, -2.0], [0.5, 0.25]], np.float32))
    scale, zp = affine.calculate_qparams()
    assert scale.shape == (2,) and zp.tolist() == [0, 0 - int(np.rint(np.float32(-2.0) / scale[1]))]


def test_custom_range_and_validation():
    obs = MinMaxObserver(dtype=ferroq.qint8, qscheme=ferroq.per_tensor_symmetric, quant_min=-127, quant_max=127)
    obs(np.array([-1.0, 1.0], np.float32))
    scale, _ = obs.calculate_qparams()
    assert scale == np.float32(1.0) / np.float32(127)
    with pytest.raises(ValueError, match="must include 0"):
        MinMaxObserver(quant_min=1, quant_max=10)
    with pytest.raises(NotImplementedError, match="qschemes"):
        MinMaxObserver(qscheme=ferroq.per_channel_affine)
    with pytest.raises(NotImplementedError, match="Cannot reduce range"):
        MinMaxObserver(dtype="quint8", qscheme="per_tensor_symmetric", reduce_range=True)
    with pytest.raises(NotImplementedError, match="Cannot reduce range"):
        PerChannelMinMaxObserver(dtype="quint8", qscheme="per_channel_symmetric", reduce_range=True)


def test_histogram_observer_takes_symmetric_quint8_on_the_reduced_range():
    # PyTorch's HistogramObserver accepts what its min/max observers refuse: levels 0..127 with
    # the symmetric quint8 zero point 128, scale = max|x| / 63.5 over the range its search keeps.
    obs = HistogramObserver(dtype=ferroq.quint8, qscheme=ferroq.per_tensor_symmetric, reduce_range=True, bins=4)
    obs(np.array([-2.0, -1.0, 1.0, 2.0], np.float32))
    scale, zero_point = obs.calculate_qparams()
    assert scale == np.float32(2.0) / np.float32(63.5)
    assert zero_point == 128


def test_with_args_and_presets():
    factory = MinMaxObserver.with_args(dtype=ferroq.qint8).with_args(reduce_range=True)
    obs = factory()
    assert isinstance(obs, MinMaxObserver) and obs.dtype is ferroq.qint8 and obs.reduce_range
    assert factory() is not obs
    assert default_dynamic_qconfig.weight().qscheme is ferroq.per_tensor_symmetric
    assert per_channel_dynamic_qconfig.weight().qscheme is ferroq.per_channel_symmetric
    assert float16_dynamic_qconfig.weight().dtype is ferroq.float16
    act = default_dynamic_qconfig.activation()
    assert isinstance(act, PlaceholderObserver) and act.is_dynamic and act.dtype is ferroq.quint8
    with pytest.raises(RuntimeError, match="should not be called"):
        act.calculate_qparams()
    with pytest.raises(ValueError, match="observer instance"):
        QConfig(activation=MinMaxObserver(), weight=default_weight_observer)


def test_min_max_observers_show_torchs_signatures():
    """help() and inspect.signature show the arguments, not ``*args, **kwargs``."""
    uniform = ["dtype", "qscheme", "reduce_range", "quant_min", "quant_max", "eps", "is_dynamic"]
    assert list(inspect.signature(MinMaxObserver).parameters) == uniform
    assert list(inspect.signature(PerChannelMinMaxObserver).parameters) == ["ch_axis"] + uniform
    fresh = MinMaxObserver()
    assert (fresh.min_val, fresh.max_val) == (np.inf, -np.inf) and fresh.min_val.dtype == np.float32
