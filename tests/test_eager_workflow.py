"""PyTorch's eager static-quantization flow in ferroq: stubs, qconfig propagation, prepare
(observers on outputs), calibration, convert; the Quantize/DeQuantize modules; default qconfigs."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import ferroq
import ferroq.nn as nn
import ferroq.nn.quantized as nnq
from ferroq.quantization import (
    DeQuantStub,
    HistogramObserver,
    MinMaxObserver,
    QConfig,
    QuantStub,
    convert,
    default_dynamic_qconfig,
    default_observer,
    default_per_channel_weight_observer,
    default_qconfig,
    default_weight_observer,
    get_default_qconfig,
    prepare,
    propagate_qconfig_,
)

F32 = np.float32


def two_layer_model() -> nn.Sequential:
    np.random.seed(0)
    return nn.Sequential(
        OrderedDict(quant=QuantStub(), fc1=nn.Linear(6, 5), fc2=nn.Linear(5, 3), dequant=DeQuantStub())
    )


def calibration() -> list:
    """The same four batches on every call (the tests run one of them through converted models,
    which then stays within the calibrated ranges)."""
    rng = np.random.default_rng(5)
    return [rng.normal(size=(16, 6)).astype(F32) for _ in range(4)]


# -- stubs and propagation -----------------------------------------------------------------------


def test_stubs_are_identities_that_carry_a_qconfig() -> None:
    x = np.arange(3, dtype=F32)
    assert QuantStub()(x) is x and DeQuantStub()(x) is x
    assert QuantStub(default_qconfig).qconfig is default_qconfig
    assert "qconfig" not in QuantStub().__dict__


def test_qconfig_propagates_to_descendants_and_an_existing_one_wins() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    model.fc2.qconfig = None
    propagate_qconfig_(model)
    assert model.quant.qconfig is default_qconfig and model.fc1.qconfig is default_qconfig
    assert model.fc2.qconfig is None


def test_qconfig_dict_by_exact_type_and_by_name() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
    other = QConfig(activation=MinMaxObserver, weight=default_per_channel_weight_observer)
    propagate_qconfig_(model, {nn.Linear: default_qconfig, "0.0": other})
    assert model.qconfig is None and model[0].qconfig is None and model[0][1].qconfig is None
    assert model[0][0].qconfig is other and model[1].qconfig is default_qconfig


def test_a_qconfig_must_be_a_qconfig() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    model.qconfig = "x86"
    with pytest.raises(TypeError, match="QConfig"):
        propagate_qconfig_(model)


# -- prepare ---------------------------------------------------------------------------------------


def test_prepare_observes_outputs_of_stubs_and_linears() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = prepare(model)
    assert prepared is not model and not hasattr(model.fc1, "activation_post_process")
    for name in ("quant", "fc1", "fc2"):
        assert isinstance(getattr(prepared, name).activation_post_process, MinMaxObserver), name
    assert not hasattr(prepared.dequant, "activation_post_process")
    batches = calibration()
    for batch in batches:
        np.testing.assert_array_equal(prepared(batch), model(batch))
    hidden = np.concatenate([model.fc1(b) for b in batches])
    assert prepared.fc1.activation_post_process.min_val == hidden.min()
    assert prepared.fc1.activation_post_process.max_val == hidden.max()
    inputs = np.concatenate(batches)
    assert prepared.quant.activation_post_process.max_val == inputs.max()


def test_prepare_inplace_and_twice_adds_one_hook() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    assert prepare(model, inplace=True) is model
    prepare(model, inplace=True)
    assert len(model.fc1._forward_hooks) == 1


def test_prepare_warns_when_nothing_has_a_qconfig() -> None:
    with pytest.warns(UserWarning, match="None of the submodule got qconfig applied"):
        prepared = prepare(two_layer_model())
    assert not hasattr(prepared.fc1, "activation_post_process")


def test_prepare_and_convert_refuse_non_modules() -> None:
    with pytest.raises(TypeError, match="ferroq.nn.Module"):
        prepare(object())
    with pytest.raises(TypeError, match="ferroq.nn.Module"):
        convert([1, 2])


# -- convert ---------------------------------------------------------------------------------------


def calibrated(model: nn.Module) -> nn.Module:
    prepared = prepare(model)
    for batch in calibration():
        prepared(batch)
    return prepared


def test_convert_swaps_stubs_and_linears() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = calibrated(model)
    converted = convert(prepared)
    assert converted is not prepared and type(prepared.fc1) is nn.Linear
    assert [type(m) for m in converted] == [nnq.Quantize, nnq.Linear, nnq.Linear, nnq.DeQuantize]
    quant_scale, quant_zp = prepared.quant.activation_post_process.calculate_qparams()
    assert (converted.quant.scale, converted.quant.zero_point) == (float(quant_scale), int(quant_zp))
    fc1_scale, fc1_zp = prepared.fc1.activation_post_process.calculate_qparams()
    assert (converted.fc1.scale, converted.fc1.zero_point) == (float(fc1_scale), int(fc1_zp))
    for m in converted.modules():
        assert "qconfig" not in m.__dict__ and not hasattr(m, "activation_post_process")
    x = calibration()[0]
    y = converted(x)
    assert y.dtype == F32 and y.shape == (16, 3)
    # Three quantization steps (input, hidden, output) keep the result within a few output steps.
    assert np.abs(y - model(x)).max() < 4 * converted.fc2.scale


def test_convert_matches_converting_layer_by_layer() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = calibrated(model)
    converted = convert(prepared)
    quantize = nnq.Quantize.from_float(prepared.quant)
    fc1, fc2 = nnq.Linear.from_float(prepared.fc1), nnq.Linear.from_float(prepared.fc2)
    x = calibration()[1]
    np.testing.assert_array_equal(converted(x), fc2(fc1(quantize(x))).dequantize())


def test_convert_inplace_and_root_module(rng) -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = calibrated(model)
    assert convert(prepared, inplace=True) is prepared
    assert type(prepared.fc1) is nnq.Linear
    # A bare observed Linear is converted itself (PyTorch leaves the root alone).
    linear = nn.Linear(4, 2)
    linear.qconfig = default_qconfig
    observed = prepare(linear)
    observed(rng.normal(size=(3, 4)).astype(F32))
    assert type(convert(observed)) is nnq.Linear


def test_a_failing_conversion_leaves_the_model_as_it_was() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = calibrated(model)
    prepared.fc2.qconfig = QConfig(activation=MinMaxObserver, weight=MinMaxObserver)  # quint8 weights
    with pytest.raises(ValueError, match="Weight observer must have dtype"):
        convert(prepared, inplace=True)
    assert [type(m) for m in prepared] == [QuantStub, nn.Linear, nn.Linear, DeQuantStub]
    assert isinstance(prepared.fc1.activation_post_process, MinMaxObserver)


def test_modules_without_qconfig_stay_float() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    model.fc2.qconfig = None
    model.dequant.qconfig = None
    converted = convert(calibrated(model))
    assert type(converted.fc1) is nnq.Linear and type(converted.fc2) is nn.Linear
    assert type(converted.dequant) is DeQuantStub


def test_user_forward_hooks_survive_the_swap() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    seen = []
    model.fc2.register_forward_hook(lambda module, args, output: seen.append(type(output)))
    converted = convert(calibrated(model))
    seen.clear()
    converted(calibration()[0])
    assert seen == [ferroq.QTensor]


def test_forward_hooks_can_replace_the_output_and_be_removed() -> None:
    relu = nn.ReLU()
    handle = relu.register_forward_hook(lambda module, args, output: output + 1)
    assert relu(np.array([-1.0], F32)).tolist() == [1.0]
    handle.remove()
    assert relu(np.array([-1.0], F32)).tolist() == [0.0]


def test_prepared_and_converted_models_pickle_and_copy() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    prepared = calibrated(model)
    restored = pickle.loads(pickle.dumps(prepared))
    x = calibration()[0]
    restored(x)
    np.testing.assert_array_equal(restored(x), model(x))
    converted = convert(prepared)
    for other in (copy.deepcopy(converted), pickle.loads(pickle.dumps(converted))):
        np.testing.assert_array_equal(other(x), converted(x))


def test_x86_default_qconfig_end_to_end() -> None:
    """HistogramObserver(reduce_range=True) keeps every activation within 0..127."""
    model = two_layer_model()
    model.qconfig = get_default_qconfig("x86")
    prepared = calibrated(model)
    assert isinstance(prepared.fc1.activation_post_process, HistogramObserver)
    converted = convert(prepared)
    x = calibration()[0]
    assert converted.quant(x).int_repr().max() <= 127
    assert converted.fc1(converted.quant(x)).int_repr().max() <= 127
    assert converted.fc2.weight().qscheme() is ferroq.per_channel_affine
    assert np.abs(converted(x) - model(x)).max() < 0.2


def test_a_dynamic_qconfig_cannot_calibrate() -> None:
    model = two_layer_model()
    model.qconfig = default_dynamic_qconfig
    prepared = calibrated(model)
    with pytest.raises(RuntimeError, match="PlaceholderObserver"):
        convert(prepared)


# -- Quantize / DeQuantize -------------------------------------------------------------------------


def test_quantize_module_keeps_its_scale_in_float32() -> None:
    q = nnq.Quantize(0.1, 3, ferroq.quint8)
    assert q.scale == float(F32(0.1)) and q.zero_point == 3 and q.dtype is ferroq.quint8
    x = np.array([0.0, 0.25, 1.0], F32)
    y = q(x)
    assert y.q_scale() == float(F32(0.1))
    np.testing.assert_array_equal(y.int_repr(), ferroq.quantize_per_tensor(x, float(F32(0.1)), 3, ferroq.quint8).int_repr())
    np.testing.assert_array_equal(nnq.DeQuantize()(y), y.dequantize())
    assert repr(q) == f"Quantize(scale={float(F32(0.1))}, zero_point=3, dtype=ferroq.quint8)"


def test_quantize_state_dict_round_trip() -> None:
    q = nnq.Quantize(0.25, 7, ferroq.quint8)
    state = q.state_dict()
    assert state["scale"].dtype == F32 and state["scale"].shape == (1,)
    assert state["zero_point"].dtype == np.int64 and state["zero_point"].tolist() == [7]
    other = nnq.Quantize(1.0, 0, ferroq.quint8)
    other.load_state_dict(state)
    assert (other.scale, other.zero_point) == (0.25, 7)
    state["zero_point"] = np.array([300])
    with pytest.raises(RuntimeError, match="zero_point"):
        other.load_state_dict(state)
    assert other.zero_point == 7


def test_quantize_and_dequantize_errors() -> None:
    with pytest.raises(ValueError, match="activation_post_process"):
        nnq.Quantize.from_float(QuantStub())
    with pytest.raises(ValueError, match="scale"):
        nnq.Quantize(0.0, 0, ferroq.quint8)
    with pytest.raises(ValueError, match="zero_point"):
        nnq.Quantize(1.0, 256, ferroq.quint8)
    with pytest.raises(TypeError, match="quantized dtype"):
        nnq.Quantize(1.0, 0, ferroq.float16)
    q = nnq.Quantize(1.0, 0, ferroq.quint8)
    with pytest.raises(TypeError, match="already quantized"):
        q(q(np.zeros(2, F32)))
    with pytest.raises(ValueError, match="NaN"):
        q(np.array([np.nan], F32))
    with pytest.raises(TypeError, match="QTensor"):
        nnq.DeQuantize()(np.zeros(2, F32))
    assert isinstance(nnq.DeQuantize.from_float(DeQuantStub()), nnq.DeQuantize)


# -- default qconfigs ------------------------------------------------------------------------------


def test_default_qconfig_is_torchs() -> None:
    activation = default_qconfig.activation()
    assert isinstance(activation, MinMaxObserver)
    assert activation.dtype is ferroq.quint8 and (activation.quant_min, activation.quant_max) == (0, 127)
    assert default_qconfig.weight is default_weight_observer
    assert isinstance(default_observer(), MinMaxObserver)


@pytest.mark.parametrize(
    "backend, reduce_range, per_channel",
    [("x86", True, True), ("fbgemm", True, True), ("qnnpack", False, False), ("onednn", False, True)],
)
def test_get_default_qconfig(backend: str, reduce_range: bool, per_channel: bool) -> None:
    qconfig = get_default_qconfig(backend)
    activation, weight = qconfig.activation(), qconfig.weight()
    assert isinstance(activation, HistogramObserver) and activation.reduce_range is reduce_range
    assert weight.dtype is ferroq.qint8 and weight.qscheme.is_symmetric
    assert weight.qscheme.is_per_channel is per_channel


def test_get_default_qconfig_rejects_unknown_backends() -> None:
    with pytest.raises(ValueError, match="not supported"):
        get_default_qconfig("cuda")
    with pytest.raises(ValueError, match="version"):
        get_default_qconfig("x86", version=1)


def test_warnings_are_not_raised_by_a_normal_flow() -> None:
    model = two_layer_model()
    model.qconfig = default_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(calibrated(model))(calibration()[0])


def test_relu_between_static_quantized_layers(rng) -> None:
    np.random.seed(4)
    model = nn.Sequential(QuantStub(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), DeQuantStub())
    model.qconfig = ferroq.quantization.default_qconfig
    prepared = ferroq.quantization.prepare(model)
    for _ in range(4):
        prepared(rng.standard_normal((8, 6)).astype(np.float32))
    q = ferroq.quantization.convert(prepared)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    hidden = q[1](q[0](x))
    relu = q[2](hidden)
    assert relu.q_scale() == hidden.q_scale() and relu.q_zero_point() == hidden.q_zero_point()
    np.testing.assert_array_equal(relu.int_repr(), np.maximum(hidden.int_repr(), hidden.q_zero_point()))
    assert q(x).shape == (4, 3)
