"""Every golden static Linear case from PyTorch, through the eager prepare/calibrate/convert flow:
the input and output qparams the observers choose, the int8 weights, and the quint8 outputs, bit
for bit; plus the kernel alone on torch's own quantized input and weights."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import pytest

import ferroq
import ferroq.nn.quantized as nnq
from ferroq.quantization import (
    DeQuantStub,
    MinMaxObserver,
    QConfig,
    QuantStub,
    convert,
    default_per_channel_weight_observer,
    default_weight_observer,
    prepare,
)

from conftest import assert_qweight_equals_golden, golden_cases, load_case

CASES = golden_cases("static_linear_per_")


def golden_qconfig(entry: Dict[str, Any]) -> QConfig:
    """The qconfig the case's description names: MinMaxObserver(quint8) activations and symmetric
    qint8 weights, per tensor or per channel."""
    per_channel = "per_channel symmetric" in entry["qconfig"]
    weight = default_per_channel_weight_observer if per_channel else default_weight_observer
    return QConfig(activation=MinMaxObserver.with_args(dtype=ferroq.quint8, reduce_range=False), weight=weight)


def converted_model(name: str) -> Tuple[ferroq.nn.Sequential, Dict[str, Any], Dict[str, np.ndarray]]:
    """QuantStub -> Linear -> DeQuantStub, prepared, calibrated on every ``calib`` batch, converted."""
    entry, arrays = load_case(name)
    kw = entry["kwargs"]
    linear = ferroq.nn.Linear(kw["in_features"], kw["out_features"], bias=kw["bias"])
    linear.load_state_dict({k[len("params.") :]: v for k, v in arrays.items() if k.startswith("params.")})
    model = ferroq.nn.Sequential(QuantStub(), linear, DeQuantStub())
    model.qconfig = golden_qconfig(entry)
    prepared = prepare(model)
    for batch in arrays["calib"]:
        prepared(batch)
    return convert(prepared), entry, arrays


@pytest.mark.parametrize("case", CASES)
def test_input_observer_chooses_torchs_qparams(case: str) -> None:
    model, _, arrays = converted_model(case)
    quantize = model[0]
    assert isinstance(quantize, nnq.Quantize)
    assert quantize.scale == float(arrays["xq.scale"])
    assert quantize.zero_point == int(arrays["xq.zero_point"])


@pytest.mark.parametrize("case", CASES)
def test_output_observer_sees_the_float_linears_output(case: str) -> None:
    """The output qparams are a MinMaxObserver's over the float Linear's outputs on the calibration
    batches, exactly. They equal torch's up to the last bits of the scale: the extremes come from a
    float32 GEMM, and numpy's BLAS rounds some sums differently from torch's MKL sgemm (by up to 2
    ulps of the scale in these cases, at K = 128)."""
    model, entry, arrays = converted_model(case)
    linear = model[1]
    assert isinstance(linear, nnq.Linear)
    float_linear = ferroq.nn.Linear(linear.in_features, linear.out_features, bias=entry["kwargs"]["bias"])
    float_linear.load_state_dict({k[len("params.") :]: v for k, v in arrays.items() if k.startswith("params.")})
    observer = MinMaxObserver(dtype=ferroq.quint8)
    for batch in arrays["calib"]:
        observer(float_linear(batch))
    scale, zero_point = observer.calculate_qparams()
    assert (linear.scale, linear.zero_point) == (float(scale), int(zero_point))
    torch_scale = np.float32(arrays["yq.scale"])
    assert abs(np.float32(linear.scale) - torch_scale) <= 4 * np.spacing(torch_scale)
    assert linear.zero_point == int(arrays["yq.zero_point"])


@pytest.mark.parametrize("case", CASES)
def test_weights_equal_torchs(case: str) -> None:
    model, entry, arrays = converted_model(case)
    assert_qweight_equals_golden(model[1].weight(), arrays)
    if entry["kwargs"]["bias"]:
        np.testing.assert_array_equal(model[1].bias(), arrays["params.bias"])
    else:
        assert model[1].bias() is None


@pytest.mark.parametrize("case", CASES)
def test_converted_model_outputs_equal_torchs(case: str) -> None:
    model, _, arrays = converted_model(case)
    # The output scale can differ from torch's in its last bits (see above): use torch's.
    model[1].scale = float(arrays["yq.scale"])
    xq = model[0](arrays["x"])
    np.testing.assert_array_equal(xq.int_repr(), arrays["xq.int"])
    yq = model[1](xq)
    assert yq.dtype is ferroq.quint8
    assert yq.q_scale() == float(arrays["yq.scale"]) and yq.q_zero_point() == int(arrays["yq.zero_point"])
    np.testing.assert_array_equal(yq.int_repr(), arrays["yq.int"])
    np.testing.assert_array_equal(model(arrays["x"]), arrays["y_float"])


def qtensor(arrays: Dict[str, np.ndarray], prefix: str) -> ferroq.QTensor:
    """The QTensor a golden case stored under ``prefix`` (``xq``, ``qweight``)."""
    if prefix + ".axis" in arrays:
        return ferroq.QTensor.from_int_repr(
            arrays[prefix + ".int"], arrays[prefix + ".scale"], arrays[prefix + ".zero_point"], int(arrays[prefix + ".axis"])
        )
    return ferroq.QTensor.from_int_repr(arrays[prefix + ".int"], float(arrays[prefix + ".scale"]), int(arrays[prefix + ".zero_point"]))


@pytest.mark.parametrize("case", CASES + ["static_linear_doc_example"])
def test_kernel_on_torchs_own_tensors(case: str) -> None:
    """The module built directly from torch's quantized weight, bias and output qparams, fed
    torch's quantized input: the kernel alone, independent of the observers."""
    _, arrays = load_case(case)
    weight = qtensor(arrays, "qweight")
    out_features, in_features = weight.shape
    bias = arrays.get("params.bias", arrays.get("bias"))
    m = nnq.Linear(in_features, out_features, bias_=bias is not None)
    m.set_weight_bias(weight, bias)
    m.scale, m.zero_point = float(arrays["yq.scale"]), int(arrays["yq.zero_point"])
    yq = m(qtensor(arrays, "xq"))
    np.testing.assert_array_equal(yq.int_repr(), arrays["yq.int"])


def test_doc_example_input_quantization() -> None:
    """The docs example: ``quantize_per_tensor(x, 1.0, 0, quint8)`` then the directly built module."""
    entry, arrays = load_case("static_linear_doc_example")
    assert entry["kwargs"] == {"in_features": 20, "out_features": 30}
    xq = ferroq.quantize_per_tensor(arrays["x"], 1.0, 0, ferroq.quint8)
    np.testing.assert_array_equal(xq.int_repr(), arrays["xq.int"])
    m = nnq.Linear(20, 30)
    np.testing.assert_array_equal(m.bias(), arrays["bias"])
    m.set_weight_bias(qtensor(arrays, "qweight"), m.bias())
    m.scale, m.zero_point = float(arrays["out_scale"]), int(arrays["out_zero_point"])
    np.testing.assert_array_equal(m(xq).int_repr(), arrays["yq.int"])
