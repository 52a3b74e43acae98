"""``ferroq.torch.from_torch``. With torch installed, checked against torch itself bit for bit;
without it, against small stand-ins that present torch's attributes (torch is never required)."""

from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np
import pytest

import ferroq
import ferroq.torch as ftorch
from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd

from conftest import assert_same_bits


def stand_in(qualname: str, module: str, **attrs):
    """An object whose type reports torch's module path and name, with ``attrs`` as attributes."""
    cls = type(qualname, (), {"__module__": module, "__qualname__": qualname})
    obj = cls()
    obj.__dict__.update(attrs)
    return obj


def fake_linear(rng, k, n):
    weight = rng.standard_normal((n, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    return stand_in(
        "Linear",
        "torch.nn.modules.linear",
        in_features=k,
        out_features=n,
        weight=weight,
        bias=bias,
        training=False,
        named_parameters=lambda recurse=False: iter([("weight", weight), ("bias", bias)]),
    )


def test_stand_in_tree_converts_with_names_and_weights(rng):
    first, second = fake_linear(rng, 6, 5), fake_linear(rng, 5, 2)
    relu = stand_in("ReLU", "torch.nn.modules.activation", training=False)
    children = OrderedDict(enc=first, act=relu, head=second)
    seq = stand_in("Sequential", "torch.nn.modules.container", training=False, named_children=lambda: iter(children.items()))
    converted = ftorch.from_torch(seq)
    assert isinstance(converted, nn.Sequential) and [n for n, _ in converted.named_children()] == ["enc", "act", "head"]
    np.testing.assert_array_equal(converted.enc.weight, first.weight)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    expected = np.maximum(x @ first.weight.T + first.bias, 0) @ second.weight.T + second.bias
    np.testing.assert_allclose(converted(x), expected, rtol=1e-5, atol=1e-5)
    assert not converted.training


def test_custom_modules_are_refused_by_name(rng):
    class MyModel:
        training = False

        def forward(self, x):
            return x

    custom = MyModel()
    with pytest.raises(NotImplementedError, match="the root module of type .*MyModel: it is a custom module with its own forward"):
        ftorch.from_torch(custom)
    unknown = stand_in("Conv2d", "torch.nn.modules.conv", training=False)
    with pytest.raises(NotImplementedError, match="not supported by ferroq"):
        ftorch.from_torch(unknown)


def test_importing_ferroq_torch_does_not_import_torch():
    import subprocess

    code = "import sys, ferroq.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# -- against torch itself, when it is installed ----------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("config", ["per_tensor", "per_channel", "float16"])
def test_quantized_torch_models_convert_bit_exactly(torch, config):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    tq = torch.ao.quantization
    spec = {"per_tensor": tq.default_dynamic_qconfig, "per_channel": tq.per_channel_dynamic_qconfig, "float16": tq.float16_dynamic_qconfig}[config]
    dtype = torch.float16 if config == "float16" else torch.qint8
    qm = tq.quantize_dynamic(m, {torch.nn.Linear: spec}, dtype=dtype)
    x = torch.randn(33, 64) * 3
    expected = qm(x).detach().numpy()
    assert_same_bits(ftorch.from_torch(qm)(x.numpy()), expected)
    ours = ferroq.quantization
    our_spec = {"per_tensor": ours.default_dynamic_qconfig, "per_channel": ours.per_channel_dynamic_qconfig, "float16": ours.float16_dynamic_qconfig}[config]
    converted = ours.quantize_dynamic(ftorch.from_torch(m), {nn.Linear: our_spec})
    assert_same_bits(converted(x.numpy()), expected)


def test_float_torch_modules_convert(torch):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3)
    converted = ftorch.from_torch(lin)
    x = torch.randn(4, 8)
    np.testing.assert_allclose(converted(x.numpy()), lin(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(nnqd.Linear.from_float(lin), nnqd.Linear)


class Tagger(nn.Module):
    """The ferroq mirror of the torch tagger below: same child names, forward in numpy."""

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


@pytest.mark.filterwarnings("ignore")
def test_torch_lstm_tagger_imports_bit_exactly_and_survives_a_torch_free_reload(torch, tmp_path):
    import subprocess

    class TorchTagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(32, 64, num_layers=2, bidirectional=True)
            self.head = torch.nn.Linear(128, 10)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out)

    torch.manual_seed(0)
    qm = torch.ao.quantization.quantize_dynamic(TorchTagger().eval(), {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    x = torch.randn(50, 4, 32)
    expected = qm(x).detach().numpy()
    converted = ftorch.from_torch(qm, custom={TorchTagger: Tagger})
    assert isinstance(converted.lstm, nnqd.LSTM) and isinstance(converted.head, nnqd.Linear)
    assert_same_bits(converted(x.numpy()), expected)

    path, x_path, y_path = tmp_path / "tagger.safetensors", tmp_path / "x.npy", tmp_path / "y.npy"
    ferroq.save(converted, path)
    np.save(x_path, x.numpy())
    script = f"""
import sys
sys.modules["torch"] = None  # any attempt to import torch now fails
import numpy as np, ferroq
from ferroq import nn
class Tagger(nn.Module):
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)
model = ferroq.load({str(path)!r}, custom_modules={{"Tagger": Tagger}})
np.save({str(y_path)!r}, model(np.load({str(x_path)!r})))
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    assert_same_bits(np.load(y_path), expected)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", ["GRU", "LSTMCell", "GRUCell", "RNNCell"])
def test_torch_quantized_recurrent_modules_match(torch, kind):
    torch.manual_seed(1)
    if kind == "GRU":
        float_module = torch.nn.GRU(32, 64, num_layers=2)
        x = torch.randn(50, 4, 32)
    else:
        float_module = getattr(torch.nn, kind)(32, 64)
        x = torch.randn(4, 32)
    qm = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(float_module), {type(float_module)}, dtype=torch.qint8)[0]
    out = qm(x)
    expected = (out[0] if isinstance(out, tuple) else out).detach().numpy()
    got = ftorch.from_torch(qm)(x.numpy())
    got = got[0] if isinstance(got, tuple) else got
    # torch's tanh is MKL's (closed source); ours is tanh in float64 rounded once: docs/numerics.md §5.2.
    identical = float(np.mean(got.view(np.uint32) == expected.view(np.uint32)))
    assert identical >= 0.99, identical
    assert np.abs(got - expected).max() <= 1e-6


def test_convert_command(tmp_path):
    import subprocess

    source, target = tmp_path / "m.pt", tmp_path / "m.safetensors"
    try:
        import torch
    except ImportError:
        result = subprocess.run([sys.executable, "-m", "ferroq", "convert", str(source), str(target)], capture_output=True, text=True)
        assert result.returncode != 0 and "needs torch" in result.stderr
        return
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    torch.save(model, source)
    subprocess.run([sys.executable, "-m", "ferroq", "convert", str(source), str(target)], check=True, capture_output=True)
    x = torch.randn(3, 8)
    expected = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)(x).detach().numpy()
    assert_same_bits(ferroq.load(target)(x.numpy()), expected)
