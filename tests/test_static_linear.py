"""The static quantized Linear against an independent numpy model of docs/numerics.md §3.1, on every kernel
path; its module API (weights, qparams, conversions, state dicts, pickling); and its errors."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from typing import Optional

import numpy as np
import pytest

import ferroq
import ferroq.nn.quantized as nnq
from ferroq import _core
from ferroq.quantization import (
    MinMaxObserver,
    PerChannelMinMaxObserver,
    QConfig,
    default_per_channel_weight_observer,
    default_qconfig,
)

F32 = np.float32


def reference(
    x_int: np.ndarray,
    x_scale: float,
    x_zp: int,
    w_int: np.ndarray,
    w_scales: np.ndarray,
    w_zps: np.ndarray,
    per_channel: bool,
    bias: Optional[np.ndarray],
    y_scale: float,
    y_zp: int,
    saturate_pairs: bool = False,
) -> np.ndarray:
    """docs/numerics.md §3.1 written out in numpy: exact integer products (or, with ``saturate_pairs``, the
    int16 pair saturation of PyTorch's AVX2 kernels), then FBGEMM's float32 requantization."""
    x = x_int.astype(np.int64)
    w = w_int.astype(np.int64)
    if saturate_pairs:
        k = x.shape[1]
        padded = k + k % 2
        xp = np.zeros((x.shape[0], padded), np.int64)
        xp[:, :k] = x
        wp = np.zeros((w.shape[0], padded), np.int64)
        wp[:, :k] = w
        products = xp[:, None, :] * wp[None, :, :]
        acc = np.clip(products[..., 0::2] + products[..., 1::2], -32768, 32767).sum(axis=2)
        col_offsets = w.sum(axis=1) - w_zps * k
        corr = acc - x_zp * col_offsets[None, :] - x.sum(axis=1)[:, None] * w_zps[None, :]
    else:
        corr = (x - x_zp) @ (w - w_zps[:, None]).T
    act_times_w = (F32(x_scale) * w_scales.astype(F32)).astype(F32)
    multipliers = (act_times_w / F32(y_scale)).astype(F32)
    xf = corr.astype(F32)
    if bias is not None:
        if per_channel:
            scaled = (bias / act_times_w).astype(F32)
        else:
            scaled = (bias * F32(1.0 / np.float64(act_times_w[0]))).astype(F32)
        xf = (xf + scaled).astype(F32)
    y = np.rint((xf * multipliers).astype(F32)) + y_zp
    return np.clip(y, 0, 255).astype(np.uint8)


def random_module(rng: np.random.Generator, k: int, n: int, per_channel: bool, bias: bool, full_range_weights: bool = False):
    """A quantized Linear with random int8 weights and qparams, and the pieces to model it."""
    if full_range_weights:
        w_int = rng.choice(np.array([-128, -127, 127], dtype=np.int8), size=(n, k))
    else:
        w_int = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    if per_channel:
        scales = rng.uniform(1e-3, 2e-2, size=n).astype(F32).astype(np.float64)
        zps = rng.integers(-3, 4, size=n)
        weight = ferroq.QTensor.from_int_repr(w_int, scales, zps, axis=0)
    else:
        scales = np.array([float(F32(rng.uniform(1e-3, 2e-2)))])
        zps = np.array([int(rng.integers(-3, 4))])
        weight = ferroq.QTensor.from_int_repr(w_int, scales[0], zps[0])
    b = rng.normal(size=n).astype(F32) if bias else None
    m = nnq.Linear(k, n, bias_=bias)
    m.set_weight_bias(weight, b)
    m.scale, m.zero_point = float(rng.uniform(0.01, 0.2)), int(rng.integers(0, 256))
    expected = lambda xq: reference(  # noqa: E731
        xq.int_repr().reshape(-1, k), xq.q_scale(), xq.q_zero_point(), w_int, np.broadcast_to(scales, (n,)),
        np.broadcast_to(zps, (n,)).astype(np.int64), per_channel, b, m.scale, m.zero_point,
    ).reshape(xq.shape[:-1] + (n,))
    return m, expected


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("k, n", [(1, 1), (3, 5), (20, 30), (33, 17), (128, 64)])
def test_outputs_equal_the_reference_model(rng, per_channel: bool, bias: bool, k: int, n: int) -> None:
    m, expected = random_module(rng, k, n, per_channel, bias)
    x = ferroq.QTensor.from_int_repr(rng.integers(0, 256, size=(7, k), dtype=np.uint8), 0.05, int(rng.integers(0, 256)))
    y = m(x)
    assert y.dtype is ferroq.quint8 and y.shape == (7, n)
    assert y.q_scale() == m.scale and y.q_zero_point() == m.zero_point
    np.testing.assert_array_equal(y.int_repr(), expected(x))


@pytest.mark.parametrize("shape", [(6,), (2, 3, 6), (0, 6), (1, 1, 1, 6)])
def test_any_rank_of_input(rng, shape) -> None:
    m, expected = random_module(rng, 6, 4, True, True)
    x = ferroq.QTensor.from_int_repr(rng.integers(0, 256, size=shape, dtype=np.uint8), 0.1, 3)
    y = m(x)
    assert y.shape == shape[:-1] + (4,)
    np.testing.assert_array_equal(y.int_repr(), expected(x))


def test_full_range_inputs_give_the_exact_unsaturated_result(rng) -> None:
    """Inputs up to 255 with weights of +-127/-128: PyTorch's AVX2 kernels saturate each pair
    of products to int16 here; ferroq computes the exact sums on every path (the VNNI result)."""
    k, n = 64, 32
    w_int = rng.choice(np.array([-128, 127], dtype=np.int8), size=(n, k))
    x_int = rng.integers(200, 256, size=(50, k), dtype=np.uint8)
    m = nnq.Linear(k, n)
    m.set_weight_bias(ferroq.QTensor.from_int_repr(w_int, 0.01, 0), np.zeros(n, F32))
    m.scale, m.zero_point = 40.0, 128
    x = ferroq.QTensor.from_int_repr(x_int, 0.02, 0)
    args = (x_int, 0.02, 0, w_int, np.array([0.01] * n), np.zeros(n, np.int64), False, np.zeros(n, F32), 40.0, 128)
    exact, saturated = reference(*args), reference(*args, saturate_pairs=True)
    assert np.count_nonzero(exact != saturated) > exact.size // 4, "the case must be one where saturation matters"
    np.testing.assert_array_equal(m(x).int_repr(), exact)


def test_a_hand_computed_pair_that_would_saturate() -> None:
    # x = [255, 255], w = [127, 127]: the exact product 64770 exceeds int16 (32767).
    m = nnq.Linear(2, 1, bias_=False)
    m.set_weight_bias(ferroq.QTensor.from_int_repr(np.array([[127, 127]], np.int8), 1.0, 0), None)
    m.scale, m.zero_point = 1000.0, 0
    y = m(ferroq.QTensor.from_int_repr(np.array([255, 255], np.uint8), 1.0, 0))
    assert y.int_repr().tolist() == [65]  # rne(64.77); saturation would give rne(32.767) = 33


ISA_SCRIPT = r"""
import sys
import numpy as np
import ferroq
import ferroq.nn.quantized as nnq

assert ferroq.backend() == sys.argv[1], (ferroq.backend(), sys.argv[1])
rng = np.random.default_rng(7)
out = []
for k, n, per_channel in [(1, 3, False), (20, 30, True), (37, 19, False), (256, 40, True)]:
    w = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    if per_channel:
        weight = ferroq.QTensor.from_int_repr(w, rng.uniform(1e-3, 1e-2, n), rng.integers(-2, 3, n), axis=0)
    else:
        weight = ferroq.QTensor.from_int_repr(w, 0.005, 1)
    m = nnq.Linear(k, n)
    m.set_weight_bias(weight, rng.normal(size=n).astype(np.float32))
    m.scale, m.zero_point = 0.07, 100
    x = ferroq.QTensor.from_int_repr(rng.integers(0, 256, size=(300, k), dtype=np.uint8), 0.03, 17)
    out.append(m(x).int_repr().ravel())
np.concatenate(out).tofile(sys.argv[2])
"""


def test_every_kernel_path_gives_identical_outputs(tmp_path) -> None:
    results = {}
    for isa in ferroq.supported_backends():
        path = tmp_path / f"{isa}.bin"
        env = {**os.environ, "FERROQ_ISA": isa}
        subprocess.run([sys.executable, "-c", ISA_SCRIPT, isa, str(path)], env=env, check=True)
        results[isa] = np.fromfile(path, dtype=np.uint8)
    first = results.pop("scalar")
    assert first.size > 0
    for isa, values in results.items():
        np.testing.assert_array_equal(values, first, err_msg=f"path {isa} differs from scalar")


def test_fused_relu_in_the_core_floors_at_the_zero_point() -> None:
    packed = _core.PackedStaticLinear(np.array([[1], [-1]], np.int8), np.ones(1, F32), np.zeros(1, np.int32), False, None)
    x = np.array([[10]], np.uint8)
    assert packed.forward(x, 1.0, 0, 1.0, 50).tolist() == [[60, 40]]
    assert packed.forward(x, 1.0, 0, 1.0, 50, relu=True).tolist() == [[60, 50]]


# -- module API ----------------------------------------------------------------------------------


def per_channel_module() -> nnq.Linear:
    lin = ferroq.nn.Linear(8, 5)
    lin.weight = np.linspace(-1, 1, 40, dtype=F32).reshape(5, 8)
    lin.bias = np.linspace(-0.5, 0.5, 5, dtype=F32)
    lin.qconfig = QConfig(activation=MinMaxObserver, weight=default_per_channel_weight_observer)
    lin.activation_post_process = MinMaxObserver()
    lin.activation_post_process(np.array([-1.7, 5.3], F32))
    return nnq.Linear.from_float(lin)


def test_repr_is_torch_like() -> None:
    m = per_channel_module()
    assert repr(m) == (
        f"QuantizedLinear(in_features=8, out_features=5, scale={m.scale}, zero_point={m.zero_point}, "
        "qscheme=ferroq.per_channel_affine)"
    )
    assert repr(nnq.Linear(3, 2)).endswith("scale=1.0, zero_point=0, qscheme=ferroq.per_tensor_affine)")


def test_from_float_takes_the_output_qparams_from_the_activation_observer() -> None:
    m = per_channel_module()
    # The observer saw [-1.7, 5.3]: scale = (5.3 + 1.7) / 255 in float32, zp = -round(-1.7 / scale) = 62.
    expected_scale = (F32(5.3) - F32(-1.7)) / F32(255)
    assert m.scale == float(expected_scale)
    assert m.zero_point == 62
    assert isinstance(m.scale, float) and isinstance(m.zero_point, int)
    assert m.weight().qscheme() is ferroq.per_channel_affine
    np.testing.assert_array_equal(m.bias(), np.linspace(-0.5, 0.5, 5, dtype=F32))


def test_from_float_errors() -> None:
    lin = ferroq.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="Input float module must have qconfig defined"):
        nnq.Linear.from_float(lin)
    lin.qconfig = default_qconfig
    with pytest.raises(ValueError, match="Input float module must have activation_post_process attribute"):
        nnq.Linear.from_float(lin)
    lin.activation_post_process = default_qconfig.activation()
    lin.qconfig = QConfig(activation=MinMaxObserver, weight=MinMaxObserver)  # quint8 weights
    with pytest.raises(ValueError, match="Weight observer must have dtype ferroq.qint8"):
        nnq.Linear.from_float(lin)
    lin.qconfig = object()
    with pytest.raises(TypeError, match="QConfig"):
        nnq.Linear.from_float(lin)
    with pytest.raises(TypeError, match="expects a float Linear"):
        nnq.Linear.from_float(ferroq.nn.ReLU())


def test_from_float_with_precomputed_weight_statistics() -> None:
    lin = ferroq.nn.Linear(4, 3)
    lin.qconfig = default_qconfig
    lin.activation_post_process = default_qconfig.activation()
    lin.activation_post_process(np.ones(3, F32))
    observer = PerChannelMinMaxObserver(dtype=ferroq.qint8, qscheme=ferroq.per_channel_symmetric)
    observer(lin.weight)
    lin.weight_fake_quant = observer
    m = nnq.Linear.from_float(lin, use_precomputed_fake_quant=True)
    np.testing.assert_array_equal(m.weight().q_per_channel_scales(), observer.calculate_qparams()[0])


def test_from_reference_equals_from_float() -> None:
    lin = ferroq.nn.Linear(8, 5)
    observer = default_per_channel_weight_observer()
    observer(lin.weight)
    scales, zero_points = observer.calculate_qparams()
    qparams = {"qscheme": observer.qscheme, "dtype": observer.dtype, "scale": scales, "zero_point": zero_points, "axis": 0}
    ref = nnq.reference.Linear.from_float(lin, qparams)
    assert ref.weight_qscheme is ferroq.per_channel_affine
    q = nnq.Linear.from_reference(ref, 0.05, 10)
    assert (q.scale, q.zero_point) == (0.05, 10)

    lin.qconfig = QConfig(activation=MinMaxObserver, weight=default_per_channel_weight_observer)
    lin.activation_post_process = MinMaxObserver()
    lin.activation_post_process(np.array([0.0, 12.75], F32))
    expected = nnq.Linear.from_float(lin)
    assert q.weight()._same_as(expected.weight())
    np.testing.assert_array_equal(q.bias(), expected.bias())
    # The reference forward is the float Linear on the dequantized weight.
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(F32)
    np.testing.assert_array_equal(ref(x), x @ expected.weight().dequantize().T + lin.bias)


def test_reference_linear_state_and_defaults() -> None:
    ref = nnq.reference.Linear(3, 2)
    assert ref.weight_qscheme is ferroq.per_tensor_affine and ref.weight_dtype is ferroq.quint8
    assert repr(ref) == "QuantizedLinear(Reference)(in_features=3, out_features=2, bias=True)"
    state = ref.state_dict()
    assert set(state) == {"weight", "bias", "weight_scale", "weight_zero_point", "weight_axis"}
    other = nnq.reference.Linear(3, 2)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.get_weight(), ref.get_weight())
    with pytest.raises(ValueError, match="needs the key 'scale'"):
        nnq.reference.Linear(3, 2, weight_qparams={"qscheme": ferroq.per_tensor_affine, "dtype": ferroq.qint8})


def test_state_dict_round_trip() -> None:
    m = per_channel_module()
    state = m.state_dict()
    assert list(state) == ["scale", "zero_point", "_packed_params.dtype", "_packed_params._packed_params"]
    assert state._metadata[""] == {"version": 3}
    assert state["scale"].dtype == np.float32 and state["scale"].shape == ()
    assert state["zero_point"].dtype == np.int64 and int(state["zero_point"]) == m.zero_point
    assert state["_packed_params.dtype"] is ferroq.qint8
    other = nnq.Linear(8, 5)
    other.load_state_dict(state)
    assert (other.scale, other.zero_point) == (m.scale, m.zero_point)
    assert other.weight()._same_as(m.weight())
    x = ferroq.QTensor.from_int_repr(np.arange(16, dtype=np.uint8).reshape(2, 8) * 15, 0.05, 20)
    np.testing.assert_array_equal(other(x).int_repr(), m(x).int_repr())


def test_failed_loads_change_nothing() -> None:
    m = per_channel_module()
    before = m.state_dict()
    bad = dict(before)
    bad["zero_point"] = np.asarray(300)
    with pytest.raises(RuntimeError, match="zero point"):
        m.load_state_dict(bad)
    bad = dict(before)
    bad["_packed_params._packed_params"] = (before["_packed_params._packed_params"][0], np.zeros(4, F32))
    with pytest.raises(RuntimeError, match="bias"):
        m.load_state_dict(bad)
    with pytest.raises(RuntimeError, match="Missing key"):
        m.load_state_dict({"scale": before["scale"]})
    assert m.zero_point == int(before["zero_point"])
    np.testing.assert_array_equal(m.bias(), before["_packed_params._packed_params"][1])


def test_pickle_and_deepcopy() -> None:
    m = per_channel_module()
    x = ferroq.QTensor.from_int_repr(np.full((1, 8), 200, np.uint8), 0.05, 20)
    for other in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert (other.scale, other.zero_point) == (m.scale, m.zero_point)
        np.testing.assert_array_equal(other(x).int_repr(), m(x).int_repr())


# -- errors --------------------------------------------------------------------------------------


def test_input_errors() -> None:
    m = nnq.Linear(4, 2)
    with pytest.raises(TypeError, match="Expected input data type QUInt8 but got QInt8"):
        m(ferroq.quantize_per_tensor(np.zeros((1, 4), F32), 1.0, 0, ferroq.qint8))
    with pytest.raises(TypeError, match="Quantize.*QuantStub"):
        m(np.zeros((1, 4), F32))
    with pytest.raises(ValueError, match="4"):
        m(ferroq.QTensor.from_int_repr(np.zeros((1, 5), np.uint8), 1.0, 0))
    with pytest.raises(ValueError, match="per-tensor"):
        m(ferroq.QTensor.from_int_repr(np.zeros((1, 4), np.uint8), [1.0], [0], axis=0))


def test_weight_and_qparam_errors_change_nothing() -> None:
    m = per_channel_module()
    weight, bias = m.weight(), m.bias()
    with pytest.raises(TypeError, match="qint8 QTensor"):
        m.set_weight_bias(np.zeros((5, 8), F32), None)
    with pytest.raises(ValueError, match="shape"):
        m.set_weight_bias(ferroq.QTensor.from_int_repr(np.zeros((8, 5), np.int8), 1.0, 0), None)
    with pytest.raises(ValueError, match="bias"):
        m.set_weight_bias(weight, np.zeros(3, F32))
    with pytest.raises(ValueError, match="scale"):
        m.scale = 0.0
    with pytest.raises(ValueError, match="scale"):
        m.scale = 1e-60
    with pytest.raises(ValueError, match="zero point"):
        m.zero_point = 256
    assert m.weight()._same_as(weight)  # the same integers and qparams (a new QTensor each call)
    np.testing.assert_array_equal(m.bias(), bias)
    with pytest.raises(NotImplementedError, match="qint8"):
        nnq.Linear(2, 2, dtype=ferroq.quint8)
