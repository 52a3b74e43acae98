"""``quantize_dynamic`` over module trees (docs/numerics.md §6): specs, inheritance, root conversion."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import ferroq
from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import QConfig, default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x))


def model() -> nn.Sequential:
    np.random.seed(1)
    return nn.Sequential(OrderedDict(encoder=nn.Sequential(Block(), Block()), head=nn.Linear(8, 3)))


def test_default_converts_every_linear_and_keeps_the_original(rng):
    m = model()
    q = quantize_dynamic(m)
    assert isinstance(q.encoder[0].fc, nnqd.Linear) and isinstance(q.head, nnqd.Linear)
    assert isinstance(m.head, nn.Linear), "the input model is deep-copied"
    assert not q.training
    x = rng.standard_normal((4, 8)).astype(np.float32)
    assert np.abs(q(x) - m(x)).max() < 0.05
    assert not any("qconfig" in vars(mod) for mod in q.modules())


def test_set_spec_by_type_and_by_name():
    q = quantize_dynamic(model(), {"encoder.1.fc"})
    assert isinstance(q.encoder[1].fc, nnqd.Linear)
    assert isinstance(q.encoder[0].fc, nn.Linear) and isinstance(q.head, nn.Linear)
    q = quantize_dynamic(model(), {nn.Linear})
    assert [type(m) for m in (q.encoder[0].fc, q.encoder[1].fc, q.head)] == [nnqd.Linear] * 3
    assert not any(type(m) is nn.Linear for m in q.modules())


def test_dict_spec_inherits_from_parents_and_names_override():
    spec = {"encoder": per_channel_dynamic_qconfig, "encoder.1": None, "head": default_dynamic_qconfig}
    q = quantize_dynamic(model(), spec)
    assert q.encoder[0].fc.weight().qscheme() is ferroq.per_channel_affine
    assert isinstance(q.encoder[1].fc, nn.Linear)
    assert q.head.weight().qscheme() is ferroq.per_tensor_affine


def test_an_existing_qconfig_wins():
    m = model()
    m.encoder[0].fc.qconfig = per_channel_dynamic_qconfig
    m.head.qconfig = None
    q = quantize_dynamic(m)
    assert q.encoder[0].fc.weight().qscheme() is ferroq.per_channel_affine
    assert q.encoder[1].fc.weight().qscheme() is ferroq.per_tensor_affine
    assert isinstance(q.head, nn.Linear)


def test_the_root_module_is_converted_too():
    q = quantize_dynamic(nn.Linear(4, 4))
    assert isinstance(q, nnqd.Linear)


def test_float16_and_inplace():
    m = model()
    q = quantize_dynamic(m, dtype=ferroq.float16, inplace=True)
    assert q is m
    assert m.head.dtype is ferroq.float16


def test_bad_arguments():
    with pytest.raises(ValueError, match="Don't know how to quantize"):
        quantize_dynamic(model(), dtype="float32")
    with pytest.raises(TypeError, match="ferroq module"):
        quantize_dynamic(object())
    with pytest.raises(TypeError, match="qconfig_spec"):
        quantize_dynamic(model(), qconfig_spec=3)


def test_nothing_to_convert_returns_an_equal_model(rng):
    m = nn.Sequential(nn.ReLU())
    q = quantize_dynamic(m, {nn.Linear: QConfig(activation=None, weight=None)})
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(q(x), m(x))
