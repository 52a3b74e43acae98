"""``from_torch`` on whole models: containers, custom classes with their own parameters and
buffers, and the path named when something cannot be translated (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ferroq.torch as ftorch  # noqa: E402
from ferroq import nn  # noqa: E402

from conftest import assert_same_bits  # noqa: E402


class TorchBlockModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(20, 8)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.LayerNorm(8)])
        self.heads = torch.nn.ModuleDict({"tags": torch.nn.Linear(8, 3), "act": torch.nn.LogSoftmax(-1)})
        self.scale = torch.nn.Parameter(torch.tensor([0.5, 2.0, 1.0]))
        self.register_buffer("shift", torch.tensor([1.0, -1.0, 0.0]))
        self.register_buffer("steps", torch.tensor([7], dtype=torch.int64))

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.heads["act"](self.heads["tags"](x) * self.scale + self.shift)


class BlockModel(nn.Module):
    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.heads["act"](self.heads["tags"](x) * self.scale + self.shift)


def test_custom_class_receives_children_parameters_and_buffers():
    torch.manual_seed(0)
    theirs = TorchBlockModel().eval()
    mine = ftorch.from_torch(theirs, custom={TorchBlockModel: BlockModel})
    assert isinstance(mine.layers, nn.ModuleList) and isinstance(mine.heads, nn.ModuleDict)
    assert_same_bits(mine.scale, theirs.scale.detach().numpy())
    assert_same_bits(mine.shift, theirs.shift.numpy())
    assert mine.steps.dtype == np.int64 and mine.steps.tolist() == [7]
    assert set(mine.state_dict()) == set(theirs.state_dict()) - {"steps"}
    ids = np.random.default_rng(0).integers(0, 20, (4, 5))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(mine(ids), expected, rtol=1e-5, atol=1e-5)


def test_quantized_linears_inside_containers_convert_bit_exactly():
    torch.manual_seed(1)
    layers = torch.nn.ModuleList([torch.nn.Linear(8, 16), torch.nn.ReLU6(), torch.nn.Linear(16, 4)]).eval()
    quantized = torch.ao.quantization.quantize_dynamic(layers, {torch.nn.Linear}, dtype=torch.qint8)
    mine = ftorch.from_torch(quantized)
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    y, t = x, torch.from_numpy(x)
    for mine_layer, torch_layer in zip(mine, quantized):
        y, t = mine_layer(y), torch_layer(t)
    assert_same_bits(y, t.numpy())


def test_an_unconvertible_module_is_named_by_its_path():
    model = torch.nn.ModuleDict({"ok": torch.nn.Tanh(), "blocks": torch.nn.ModuleList([torch.nn.Conv1d(2, 2, 3)])})
    with pytest.raises(NotImplementedError, match=r"blocks\.0 of type torch\.nn\.modules\.conv\.Conv1d"):
        ftorch.from_torch(model)
    with pytest.raises(NotImplementedError, match=r"0 of type torch\.nn\.modules\.sparse\.Embedding: max_norm"):
        ftorch.from_torch(torch.nn.Sequential(torch.nn.Embedding(4, 2, max_norm=1.0)))


def test_train_mode_is_kept_and_dropout_follows_it():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    assert ftorch.from_torch(model)[1].training
    evaluated = ftorch.from_torch(model.eval())
    x = np.ones((2, 3), np.float32)
    assert not evaluated[1].training and evaluated[1](x) is x
