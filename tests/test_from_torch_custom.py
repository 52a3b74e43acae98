"""``from_torch`` without torch, through stand-ins that present torch's attributes: the new float
modules and containers convert, and a custom class receives its torch module's own parameters and
buffers besides its children."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import ferroq.torch as ftorch
from ferroq import nn

from conftest import assert_same_bits


def stand_in(qualname: str, module: str, params=(), buffers=(), children=(), **attrs):
    cls = type(qualname, (), {"__module__": module, "__qualname__": qualname})
    obj = cls()
    obj.__dict__.update(attrs, training=False)
    obj.named_parameters = lambda recurse=False: iter(list(params))
    obj.named_buffers = lambda recurse=False: iter(list(buffers))
    obj.named_children = lambda: iter(list(children))
    return obj


class Tagger(nn.Module):
    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return x * self.scale + self.shift


def test_custom_class_gets_children_parameters_and_buffers(rng):
    weight = rng.standard_normal((7, 4)).astype(np.float32)
    embed = stand_in(
        "Embedding", "torch.nn.modules.sparse", params=[("weight", weight)], num_embeddings=7, embedding_dim=4,
        padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False,
    )
    tanh = stand_in("Tanh", "torch.nn.modules.activation")
    layers = stand_in("ModuleList", "torch.nn.modules.container", children=[("0", tanh)])
    scale = rng.standard_normal(4).astype(np.float32)
    shift = np.arange(4, dtype=np.float64)
    steps = np.array([3], np.int64)
    TorchTagger = type("TorchTagger", (), {"__module__": "mymodels", "__qualname__": "TorchTagger"})
    root = TorchTagger()
    root.training = False
    root.named_children = lambda: iter(OrderedDict(embed=embed, layers=layers).items())
    root.named_parameters = lambda recurse=False: iter([("scale", scale)])
    root.named_buffers = lambda recurse=False: iter([("shift", shift), ("steps", steps)])
    model = ftorch.from_torch(root, custom={TorchTagger: Tagger})
    assert isinstance(model.layers, nn.ModuleList) and isinstance(model.layers[0], nn.Tanh)
    assert_same_bits(model.scale, scale)
    assert_same_bits(model.shift, shift.astype(np.float32))
    assert model.steps.tolist() == [3] and model.steps is not steps
    assert list(model.state_dict()) == ["scale", "shift", "embed.weight"]
    ids = np.array([[1, 6]])
    np.testing.assert_allclose(model(ids), np.tanh(weight[ids]) * scale + shift.astype(np.float32), rtol=1e-6)


def test_a_converter_error_names_the_module_path():
    embed = stand_in(
        "Embedding", "torch.nn.modules.sparse", params=[("weight", np.zeros((3, 2), np.float32))], num_embeddings=3,
        embedding_dim=2, padding_idx=None, max_norm=2.0, norm_type=2.0, scale_grad_by_freq=False, sparse=False,
    )
    layers = stand_in("ModuleDict", "torch.nn.modules.container", children=[("lookup", embed)])
    with pytest.raises(NotImplementedError, match=r"cannot translate lookup of type torch\.nn\.modules\.sparse\.Embedding: max_norm"):
        ftorch.from_torch(layers)


def test_a_custom_parameter_may_not_shadow_a_child():
    child = stand_in("Tanh", "torch.nn.modules.activation")
    Root = type("Root", (), {"__module__": "mymodels", "__qualname__": "Root"})
    root = Root()
    root.training = False
    root.named_children = lambda: iter([("act", child)])
    root.named_parameters = lambda recurse=False: iter([("act", np.zeros(2, np.float32))])
    with pytest.raises(TypeError, match="child module of that name"):
        ftorch.from_torch(root, custom={Root: nn.Module})
