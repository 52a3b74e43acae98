"""``ferroq.nn.Module``, ``Sequential`` and the float ``Linear``: PyTorch's container protocol."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import ferroq
from ferroq import nn


def test_linear_initialisation_and_forward(rng):
    np.random.seed(0)
    lin = nn.Linear(16, 4)
    bound = 1 / np.sqrt(16)
    assert lin.weight.shape == (4, 16) and lin.weight.dtype == np.float32
    assert np.abs(lin.weight).max() <= bound and np.abs(lin.bias).max() <= bound
    x = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_allclose(lin(x), x @ lin.weight.T + lin.bias, rtol=1e-6)
    assert lin(x[0]).shape == (4,)
    assert repr(lin) == "Linear(in_features=16, out_features=4, bias=True)"
    assert nn.Linear(2, 2, bias=False).bias is None


def test_parameters_are_attributes_with_torch_keys():
    lin = nn.Linear(3, 2)
    lin.weight = np.ones((2, 3), dtype=np.float64)
    assert lin.weight.dtype == np.float32
    assert list(lin.state_dict()) == ["weight", "bias"]
    with pytest.raises(TypeError, match="floating-point"):
        lin.weight = np.ones((2, 3), dtype=np.int64)


def test_sequential_tree_and_state_dict():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2), nn.Identity()))
    assert len(model) == 3 and isinstance(model[1], nn.ReLU)
    names = [name for name, _ in model.named_modules()]
    assert names == ["", "0", "1", "2", "2.0", "2.1"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    out = model(np.ones((5, 4), np.float32))
    assert out.shape == (5, 2)
    assert "(2): Sequential(" in repr(model)
    model.eval()
    assert not any(m.training for m in model.modules())


def test_load_state_dict_checks_everything_first():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    before = model[0].weight.copy()
    sd = model.state_dict()
    sd["0.weight"] = np.zeros((4, 3), np.float32)  # transposed: wrong shape
    sd["1.weight"] = np.zeros((2, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight.*\(4, 3\).*\(3, 4\)"):
        model.load_state_dict(sd)
    np.testing.assert_array_equal(model[0].weight, before)
    assert not np.all(model[1].weight == 0)
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "extra"'):
        model.load_state_dict({**model.state_dict(), "extra": np.zeros(1)})
    partial = {"0.weight": np.zeros((3, 4), np.float32)}
    result = model.load_state_dict(partial, strict=False)
    assert "0.bias" in result.missing_keys and result.unexpected_keys == []
    np.testing.assert_array_equal(model[0].weight, 0)


def test_modules_copy_and_pickle():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        x = np.ones((2, 4), np.float32)
        np.testing.assert_array_equal(clone(x), model(x))
        assert clone[0].weight is not model[0].weight


def test_qconfig_attribute_defaults_to_none():
    lin = nn.Linear(2, 2)
    assert lin.qconfig is None
    lin.qconfig = ferroq.quantization.default_dynamic_qconfig
    assert lin.qconfig is ferroq.quantization.default_dynamic_qconfig


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="ferroq modules"):
        nn.Sequential(lambda x: x)
