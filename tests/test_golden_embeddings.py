"""Golden cases made by torch (tests/golden_embeddings/): the weight-only quantized Embedding and
EmbeddingBag must reproduce torch's quantized weights, qparams and outputs bit for bit."""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

import ferroq
from ferroq.nn import quantized as nnq
from ferroq.quantization import float_qparams_weight_only_qconfig, float_qparams_weight_only_qconfig_4bit

HERE = os.path.join(os.path.dirname(__file__), "golden_embeddings")
CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(HERE, "*.npz")))


class Embedding(ferroq.nn.Module):
    """A stand-in with the attributes of torch's (and ferroq's) float Embedding."""

    def __init__(self, weight: np.ndarray, padding_idx=None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = padding_idx
        self.register_parameter("weight", weight)


class EmbeddingBag(Embedding):
    """A stand-in with the attributes of the float EmbeddingBag."""

    def __init__(self, weight: np.ndarray, mode: str, include_last_offset: bool, padding_idx=None) -> None:
        super().__init__(weight, padding_idx)
        self.mode = mode
        self.include_last_offset = include_last_offset


def load(name: str) -> dict:
    with np.load(os.path.join(HERE, name + ".npz")) as data:
        return {k: data[k] for k in data.files}


def bits_of(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def float_module(case: dict) -> ferroq.nn.Module:
    padding_idx = None if int(case["padding_idx"]) < 0 else int(case["padding_idx"])
    if str(case["kind"]) == "embedding":
        mod = Embedding(case["weight"], padding_idx)
    else:
        mod = EmbeddingBag(case["weight"], str(case["mode"]), bool(case["include_last_offset"]), padding_idx)
    mod.qconfig = float_qparams_weight_only_qconfig if int(case["bits"]) == 8 else float_qparams_weight_only_qconfig_4bit
    return mod


def run(q: ferroq.nn.Module, case: dict) -> np.ndarray:
    if str(case["kind"]) == "embedding":
        return q(case["indices"])
    return q(case["indices"], case.get("offsets"), case.get("per_sample_weights"))


def test_there_are_golden_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_from_float_matches_torch_bit_for_bit(name):
    case = load(name)
    cls = nnq.Embedding if str(case["kind"]) == "embedding" else nnq.EmbeddingBag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the mean/max bags warn that they sum
        q = cls.from_float(float_module(case))
    w = q.weight()
    assert w.qscheme() is ferroq.per_channel_affine_float_qparams
    assert np.array_equal(w.int_repr(), case["q_int_repr"])
    assert np.array_equal(w.q_per_channel_scales().view(np.uint32), case["q_scales"].view(np.uint32))
    assert np.array_equal(w.q_per_channel_zero_points().view(np.uint32), case["q_zero_points"].view(np.uint32))
    out = run(q, case)
    assert out.dtype == np.float32 and out.shape == case["output"].shape
    assert np.array_equal(bits_of(out), bits_of(case["output"]))
    assert repr(q) == str(case["repr"]).replace("torch.", "ferroq.")


@pytest.mark.parametrize("name", CASES)
def test_set_weight_from_torch_qparams_matches_torch(name):
    """The same outputs when the module is built from torch's quantized weight directly."""
    case = load(name)
    bits = int(case["bits"])
    shape = case["weight"].shape
    dtype = ferroq.quint8 if bits == 8 else ferroq.quint4x2
    values = case["q_int_repr"]
    if bits == 4:
        values = np.stack([values & 15, values >> 4], axis=1).reshape(shape)
    weight = ferroq.QTensor.from_int_repr(values, case["q_scales"], case["q_zero_points"], axis=0, dtype=dtype)
    if str(case["kind"]) == "embedding":
        q = nnq.Embedding(*shape)
    else:
        q = nnq.EmbeddingBag(*shape, mode=str(case["mode"]), include_last_offset=bool(case["include_last_offset"]), dtype=dtype)
    q.set_weight(weight)
    assert np.array_equal(bits_of(run(q, case)), bits_of(case["output"]))


@pytest.mark.parametrize("name", ["embedding_8bit_padding_idx", "bag_8bit_per_sample_weights", "bag_4bit_long_bags"])
def test_golden_outputs_survive_save_load_and_pickle(name, tmp_path):
    import pickle

    case = load(name)
    cls = nnq.Embedding if str(case["kind"]) == "embedding" else nnq.EmbeddingBag
    q = cls.from_float(float_module(case))
    path = tmp_path / "m.safetensors"
    ferroq.save(q, path)
    for again in (ferroq.load(path), pickle.loads(pickle.dumps(q))):
        assert type(again) is cls
        assert again.weight()._same_as(q.weight())
        assert np.array_equal(bits_of(run(again, case)), bits_of(case["output"]))



PROBE = """
import sys, warnings
sys.path.insert(0, sys.argv[1])
import numpy as np, ferroq
import test_golden_embeddings as g
warnings.simplefilter("ignore")
bad = []
for name in g.CASES:
    case = g.load(name)
    cls = g.nnq.Embedding if str(case["kind"]) == "embedding" else g.nnq.EmbeddingBag
    out = g.run(cls.from_float(g.float_module(case)), case)
    if not np.array_equal(g.bits_of(out), g.bits_of(case["output"])):
        bad.append(name)
print(ferroq.backend(), len(g.CASES), bad)
"""


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avxvnni", "avx512vnni", "amx", "neon", "neon-dotprod"])
def test_every_kernel_path_matches_the_golden_cases(isa):
    """The portable fma and the hardware fma give the same bits (each path in its own process)."""
    import subprocess
    import sys

    if isa not in ferroq.supported_backends():
        pytest.skip(f"{isa} is not supported on this CPU")
    env = {**os.environ, "FERROQ_ISA": isa}
    result = subprocess.run([sys.executable, "-c", PROBE, os.path.dirname(__file__)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [isa, str(len(CASES)), "[]"]
