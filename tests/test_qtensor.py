"""QTensor and the quantize/dequantize functions (docs/numerics.md §1.1)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import ferroq


def test_quantize_multiplies_by_the_float32_reciprocal():
    # FBGEMM's example: 0.273939937 * (1/0.00214854861) = 127.5 exactly -> 128 (the quotient would give 127).
    q = ferroq.quantize_per_tensor(np.array([0.273939937], np.float32), 0.00214854861, 0, ferroq.quint8)
    assert q.int_repr().tolist() == [128]


def test_round_half_even_then_zero_point_then_clamp():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1000, -1000], np.float32)
    q = ferroq.quantize_per_tensor(x, 1.0, 1, "qint8")
    assert q.int_repr().tolist() == [1, 3, 3, 1, -1, 127, -128]
    assert q.int_repr().dtype == np.int8
    u = ferroq.quantize_per_tensor(x, 1.0, 10, ferroq.quint8)
    assert u.int_repr().tolist() == [10, 12, 12, 10, 8, 255, 0]


def test_accessors_and_dequantize():
    q = ferroq.quantize_per_tensor(np.array([[1.0, -2.0], [0.26, 0.0]], np.float32), 0.25, 10, ferroq.quint8)
    assert q.q_scale() == 0.25 and q.q_zero_point() == 10
    assert q.dtype is ferroq.quint8 and q.shape == (2, 2) and q.ndim == 2 and len(q) == 2
    assert q.qscheme() is ferroq.per_tensor_affine
    np.testing.assert_array_equal(q.dequantize(), np.array([[1.0, -2.0], [0.25, 0.0]], np.float32))
    np.testing.assert_array_equal(ferroq.dequantize(q), q.dequantize())
    with pytest.raises(ValueError, match="per-channel"):
        q.q_per_channel_scales()
    assert "QTensor(" in repr(q) and "scale=0.25" in repr(q)


def test_per_channel():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
    q = ferroq.quantize_per_channel(x, [0.5, 1.0], [0, 1], 1, ferroq.qint8)
    assert q.int_repr().tolist() == [[2, 3], [6, 5], [10, 7]]
    assert q.qscheme() is ferroq.per_channel_affine and q.q_per_channel_axis() == 1
    np.testing.assert_array_equal(q.q_per_channel_scales(), [0.5, 1.0])
    np.testing.assert_array_equal(q.q_per_channel_zero_points(), [0, 1])
    np.testing.assert_array_equal(q.dequantize(), x)
    with pytest.raises(ValueError, match="per-tensor"):
        q.q_scale()
    with pytest.raises(ValueError, match="expected 2 scales"):
        ferroq.quantize_per_channel(x, [0.5], [0], 1, ferroq.qint8)


def test_dynamic_quantization_chooses_qparams_from_the_range():
    x = np.array([-1.0, 0.0, 3.0], np.float32)
    q = ferroq.quantize_per_tensor_dynamic(x, ferroq.quint8, reduce_range=False)
    assert q.q_scale() == 4.0 / 255.0 and q.q_zero_point() == 64
    assert q.int_repr().tolist() == [0, 64, 255]
    s = ferroq.quantize_per_tensor_dynamic(x, ferroq.qint8)
    assert s.dtype is ferroq.qint8 and s.int_repr().min() == -128


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: ferroq.quantize_per_tensor([1.0], 0.0, 0, "quint8"), ValueError, "scale must be positive"),
        (lambda: ferroq.quantize_per_tensor([1.0], 0.1, 300, "quint8"), ValueError, "zero_point must be between 0 and 255"),
        (lambda: ferroq.quantize_per_tensor([np.nan], 0.1, 0, "quint8"), ValueError, "NaN or infinity"),
        (lambda: ferroq.quantize_per_tensor(np.array([1], np.int32), 0.1, 0, "quint8"), TypeError, "floating-point"),
        (lambda: ferroq.quantize_per_tensor([1.0], 0.1, 0, "float16"), TypeError, "quantized dtype"),
        (lambda: ferroq.quantize_per_channel([1.0], [0.1], [0], 1, "qint8"), ValueError, "out of range"),
        (lambda: ferroq.dequantize(np.zeros(2)), TypeError, "expects a QTensor"),
        (lambda: ferroq.QTensor(), TypeError, "quantize_per_tensor"),
        (lambda: ferroq.QTensor.from_int_repr(np.zeros(2, np.int16), 1.0, 0), TypeError, "int8"),
    ],
)
def test_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_dtype_names_and_torch_spellings():
    assert ferroq.quantize_per_tensor([1.0], 1.0, 0, "torch.qint8").dtype is ferroq.qint8
    assert repr(ferroq.qint8) == "ferroq.qint8"
    assert pickle.loads(pickle.dumps(ferroq.qint8)) is ferroq.qint8
    assert pickle.loads(pickle.dumps(ferroq.per_channel_affine)) is ferroq.per_channel_affine


def test_qtensor_pickles_and_int_repr_is_a_copy():
    q = ferroq.quantize_per_channel(np.ones((2, 3), np.float32), [0.5, 0.25], [0, 0], 0, "qint8")
    clone = pickle.loads(pickle.dumps(q))
    assert clone._same_as(q)
    values = q.int_repr()
    values[:] = 0
    assert q.int_repr().tolist() == [[2, 2, 2], [4, 4, 4]]
