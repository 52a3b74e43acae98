"""``ModuleList`` and ``ModuleDict``: torch's container protocol, state-dict keys, reprs, and
``quantize_dynamic`` reaching the layers inside them while leaving the float modules alone."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import ferroq
from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import quantize_dynamic

from conftest import assert_same_bits


def test_module_list_is_a_list_of_children_named_by_position():
    a, b, c = nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)
    layers = nn.ModuleList([a, b])
    layers.append(c)
    assert len(layers) == 3 and list(layers) == [a, b, c]
    assert [name for name, _ in layers.named_children()] == ["0", "1", "2"]
    assert layers[-1] is c and layers[0] is a
    assert isinstance(layers[1:], nn.ModuleList) and list(layers[1:]) == [b, c]
    relu = nn.ReLU()
    layers.insert(1, relu)
    assert list(layers) == [a, relu, b, c] and [n for n, _ in layers.named_children()] == ["0", "1", "2", "3"]
    del layers[1]
    assert list(layers) == [a, b, c] and list(layers._modules) == ["0", "1", "2"]
    layers[1] = relu
    assert layers[1] is relu
    layers.extend([nn.Sigmoid()])
    layers += [nn.GELU()]
    assert len(layers) == 5
    assert layers.pop() .__class__ is nn.GELU and len(layers) == 4
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_module_list_errors():
    layers = nn.ModuleList([nn.Tanh()])
    with pytest.raises(IndexError, match="index 1 is out of range"):
        layers[1]
    with pytest.raises(IndexError, match="index -2 is out of range"):
        layers[-2] = nn.ReLU()
    with pytest.raises(TypeError, match="ferroq modules"):
        layers.append(np.zeros(3))
    with pytest.raises(TypeError, match="ferroq modules"):
        layers.extend([nn.ReLU(), "not a module"])
    assert len(layers) == 1  # nothing half-added
    with pytest.raises(TypeError, match="indices must be integers"):
        layers["0"]
    with pytest.raises(NotImplementedError):
        layers(np.zeros(3, np.float32))


def test_module_list_repr_groups_repeats_like_torch():
    layers = nn.ModuleList([nn.Linear(2, 2, bias=False), nn.Tanh(), nn.Tanh(), nn.Tanh(), nn.ReLU()])
    assert repr(layers) == (
        "ModuleList(\n"
        "  (0): Linear(in_features=2, out_features=2, bias=False)\n"
        "  (1-3): 3 x Tanh()\n"
        "  (4): ReLU()\n"
        ")"
    )
    assert repr(nn.ModuleList()) == "ModuleList()"


def test_module_dict_is_an_ordered_dict_of_children():
    head, act = nn.Linear(4, 2), nn.GELU()
    blocks = nn.ModuleDict({"head": head})
    blocks["act"] = act
    blocks.update([("norm", nn.LayerNorm(4))])
    assert list(blocks) == ["head", "act", "norm"] and len(blocks) == 3 and "act" in blocks
    assert blocks["head"] is head and list(blocks.values())[1] is act
    assert [k for k, _ in blocks.items()] == list(blocks.keys())
    assert list(blocks.state_dict()) == ["head.weight", "head.bias", "norm.weight", "norm.bias"]
    assert blocks.pop("act") is act and "act" not in blocks
    del blocks["norm"]
    assert list(blocks) == ["head"]
    blocks.clear()
    assert len(blocks) == 0
    with pytest.raises(KeyError, match="attribute 'forward' already exists"):
        blocks["forward"] = nn.ReLU()
    with pytest.raises(KeyError, match="be empty or contain"):
        blocks.update({"a.b": nn.ReLU()})
    with pytest.raises(TypeError, match="module name should be a string"):
        blocks[3] = nn.ReLU()
    with pytest.raises(ValueError, match="element #0 should be a"):
        blocks.update([nn.ReLU()])
    assert len(blocks) == 0
    assert repr(nn.ModuleDict({"a": nn.Tanh()})) == "ModuleDict(\n  (a): Tanh()\n)"


class Stack(nn.Module):
    """A HuggingFace-style model: an embedding, a list of blocks, a dict of heads."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.blocks = nn.ModuleList([nn.Linear(6, 6), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 6)])
        self.heads = nn.ModuleDict({"rnn": nn.LSTM(6, 5), "out": nn.Linear(5, 3), "act": nn.Softmax(-1)})

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        x, _ = self.heads["rnn"](x)
        return self.heads["act"](self.heads["out"](x))


def test_quantize_dynamic_reaches_into_containers_and_keeps_float_modules():
    np.random.seed(0)
    model = Stack().eval()
    quantized = quantize_dynamic(model, {nn.Linear, nn.LSTM})
    kinds = {name: type(m) for name, m in quantized.named_modules()}
    assert kinds["blocks.0"] is nnqd.Linear and kinds["blocks.3"] is nnqd.Linear
    assert kinds["heads.rnn"] is nnqd.LSTM and kinds["heads.out"] is nnqd.Linear
    assert kinds["embed"] is nn.Embedding and kinds["blocks.1"] is nn.GELU and kinds["blocks.2"] is nn.LayerNorm
    assert kinds["heads.act"] is nn.Softmax and kinds["blocks"] is nn.ModuleList and kinds["heads"] is nn.ModuleDict
    assert type(model.blocks[0]) is nn.Linear  # not in place
    ids = np.array([[1, 2], [3, 10], [0, 4]])
    out = quantized(ids)
    assert out.shape == (3, 2, 3)
    np.testing.assert_allclose(out, model(ids), atol=0.05)


def test_containers_save_load_pickle_and_deepcopy(tmp_path):
    np.random.seed(1)
    model = quantize_dynamic(Stack().eval(), {nn.Linear, nn.LSTM})
    ids = np.array([[1, 2, 3]]).T
    path = tmp_path / "stack.safetensors"
    ferroq.save(model, path)
    loaded = ferroq.load(path, custom_modules={"Stack": Stack})
    assert repr(loaded) == repr(model)
    assert_same_bits(loaded(ids), model(ids))
    assert_same_bits(pickle.loads(pickle.dumps(model))(ids), model(ids))
    assert_same_bits(copy.deepcopy(model)(ids), model(ids))
