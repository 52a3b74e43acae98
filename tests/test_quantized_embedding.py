"""The weight-only quantized Embedding/EmbeddingBag: API, input checks, state, conversion."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import ferroq
from ferroq.nn import quantized as nnq
from ferroq.quantization import (
    PerChannelMinMaxObserver,
    QConfig,
    float_qparams_weight_only_qconfig,
    float_qparams_weight_only_qconfig_4bit,
    quantize_dynamic,
)

from test_golden_embeddings import Embedding as FloatEmbedding
from test_golden_embeddings import EmbeddingBag as FloatEmbeddingBag

F32 = np.float32


def fma_reference(scale: np.ndarray, bias: np.ndarray, q: np.ndarray, bags, weights=None) -> np.ndarray:
    """FBGEMM's order with an exact fused multiply-add (through Python fractions; slow, small inputs)."""
    from fractions import Fraction

    out = np.zeros((len(bags), q.shape[1]), F32)
    for k, bag in enumerate(bags):
        acc = np.zeros(q.shape[1], F32)
        for pos, r in bag:
            w = F32(1.0) if weights is None else F32(weights[pos])
            s, b = F32(w * scale[r]), F32(w * bias[r])
            base = (acc + b).astype(F32)
            acc = np.array([F32(Fraction(float(s)) * int(v) + Fraction(float(c))) for v, c in zip(q[r], base)], F32)
        out[k] = acc
    return out


def random_bag(rng, rows=30, dim=10, bits=8, **kwargs):
    w = (rng.standard_normal((rows, dim)) * rng.uniform(0.01, 5, (rows, 1))).astype(F32)
    mod = FloatEmbeddingBag(w, kwargs.pop("mode", "sum"), kwargs.pop("include_last_offset", False))
    mod.qconfig = float_qparams_weight_only_qconfig if bits == 8 else float_qparams_weight_only_qconfig_4bit
    return nnq.EmbeddingBag.from_float(mod), w


def table_params(q):
    w = q.weight()
    scale = w.q_per_channel_scales()
    bias = -(w.q_per_channel_zero_points() * scale).astype(F32)
    if w.dtype is ferroq.quint4x2:
        scale, bias = scale.astype(np.float16).astype(F32), bias.astype(np.float16).astype(F32)
    return scale, bias, w._values()


@pytest.mark.parametrize("bits", [8, 4])
def test_bags_follow_fbgemm_order_with_an_exact_fma(bits):
    rng = np.random.default_rng(bits)
    q, _ = random_bag(rng, bits=bits)
    idx = rng.integers(0, 30, 25)
    offsets = np.array([0, 4, 4, 11, 24])
    psw = rng.standard_normal(25).astype(F32)
    bounds = list(offsets) + [25]
    bags = [[(p, idx[p]) for p in range(bounds[k], bounds[k + 1])] for k in range(len(offsets))]
    scale, bias, values = table_params(q)
    for weights in (None, psw):
        got = q(idx, offsets, weights)
        want = fma_reference(scale, bias, values, bags, weights)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_a_plain_numpy_sum_is_not_the_same():
    """Why the kernel is sequential fma: dequantize-then-sum rounds differently somewhere."""
    rng = np.random.default_rng(0)
    q, _ = random_bag(rng, rows=50, dim=64)
    idx = rng.integers(0, 50, 400)
    offsets = np.arange(0, 400, 40)
    naive = np.add.reduceat(q.weight().dequantize()[idx], offsets, axis=0)
    assert not np.array_equal(q(idx, offsets), naive)


def test_embedding_lookup_any_shape_and_layout():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((12, 6)).astype(F32)
    mod = FloatEmbedding(w)
    q = nnq.Embedding.from_float(mod)  # no qconfig: float_qparams_weight_only_qconfig
    idx = rng.integers(0, 12, (3, 4, 5))
    out = q(idx)
    assert out.shape == (3, 4, 5, 6) and out.dtype == F32
    assert np.array_equal(q(np.asfortranarray(idx)), out)
    assert np.array_equal(q(idx.astype(np.int32)[:, ::-1])[:, ::-1], out)
    assert np.array_equal(q(idx.astype(np.uint16)), out)
    assert q(np.zeros(0, np.int64)).shape == (0, 6)
    assert q(np.int64(3)).shape == (6,)
    # each row is close to the float row (within half a quantization step)
    step = (w.max(1) - w.min(1)) / 255
    assert np.all(np.abs(q(np.arange(12)) - w) <= step[:, None] * 0.5001 + 1e-6)


@pytest.mark.parametrize(
    "indices, error, match",
    [
        (np.array([0.0, 1.0]), TypeError, "integer"),
        (np.array([True]), TypeError, "integer"),
        (np.array([1, 12]), IndexError, r"index 12 at position \(1,\)"),
        (np.array([[0, 1], [-1, 2]]), IndexError, r"index -1 at position \(1, 0\)"),
        (np.array([2**40]), IndexError, "out of range"),
    ],
)
def test_embedding_rejects_bad_indices(indices, error, match):
    q = nnq.Embedding(12, 4)
    with pytest.raises(error, match=match):
        q(indices)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((np.array([1, 2]),), {}, ValueError, "offsets has to be given"),
        ((np.array([[1, 2]]), np.array([0])), {}, ValueError, "offsets has to be None"),
        ((np.zeros((1, 1, 1), np.int64),), {}, ValueError, "1-D or 2-D"),
        ((np.array([1, 2]), np.array([1])), {}, ValueError, r"offsets\[0\] has to be 0"),
        ((np.array([1, 2, 0]), np.array([0, 2, 1])), {}, ValueError, "must not decrease"),
        ((np.array([1, 2]), np.array([0, 3])), {}, ValueError, "greater than input's length 2"),
        ((np.array([1, 2]), np.array([0.0])), {}, TypeError, "offsets must be an integer"),
        ((np.array([1, 2]), np.array([[0]])), {}, ValueError, "1-D"),
        ((np.array([1, 2]), np.array([0])), {"per_sample_weights": np.array([1.0])}, ValueError, "same shape"),
        ((np.array([1, 2]), np.array([0])), {"per_sample_weights": np.array([1, 2])}, TypeError, "floating-point"),
        ((np.array([1, 9]), np.array([0])), {}, IndexError, r"index 9 at position \(1,\) of input"),
    ],
)
def test_bag_rejects_bad_input(args, kwargs, error, match):
    q = nnq.EmbeddingBag(5, 4)
    with pytest.raises(error, match=match):
        q(*args, **kwargs)


def test_bag_offsets_variants():
    rng = np.random.default_rng(2)
    q, _ = random_bag(rng, rows=10, dim=4)
    idx = np.array([1, 2, 3, 4, 5])
    full = q(idx, np.array([0, 2, 2]))
    assert full.shape == (3, 4) and np.all(full[1] == 0) and not np.signbit(full[1]).any()
    q.include_last_offset = True
    assert np.array_equal(q(idx, np.array([0, 2, 2, 5])), full)
    assert q(idx, np.array([0])).shape == (0, 4)
    with pytest.raises(ValueError, match="at least 1"):
        q(idx, np.zeros(0, np.int64))
    # 2-D: one bag per row, include_last_offset or not
    two_d = q(idx[:4].reshape(2, 2))
    q.include_last_offset = False
    assert np.array_equal(q(idx[:4].reshape(2, 2)), two_d)
    assert np.array_equal(two_d, q(idx[:4], np.array([0, 2])))
    assert q(idx, np.zeros(0, np.int64)).shape == (0, 4)
    assert q(np.zeros((3, 0), np.int64)).shape == (3, 4)


def test_padding_idx_set_explicitly_leaves_the_row_out():
    rng = np.random.default_rng(3)
    q, _ = random_bag(rng, rows=10, dim=4)
    p = nnq.EmbeddingBag(10, 4, padding_idx=-2)
    assert p.padding_idx == 8
    p.set_weight(q.weight())
    idx, offsets = np.array([1, 8, 3, 8]), np.array([0, 2])
    assert np.array_equal(p(idx, offsets), q(np.array([1, 3]), np.array([0, 1])))
    with pytest.raises(ValueError, match="padding_idx"):
        nnq.EmbeddingBag(10, 4, padding_idx=10)


def test_mode_is_kept_but_every_mode_sums_and_from_float_warns():
    rng = np.random.default_rng(4)
    with pytest.warns(UserWarning, match="sums every bag"):
        q_mean, w = random_bag(rng, mode="mean")
    assert q_mean.mode == "mean"
    s = nnq.EmbeddingBag(30, 10)
    s.set_weight(q_mean.weight())
    idx, offsets = rng.integers(0, 30, 9), np.array([0, 3])
    assert np.array_equal(q_mean(idx, offsets), s(idx, offsets))
    with pytest.raises(ValueError, match="mode has to be one of"):
        nnq.EmbeddingBag(3, 4, mode="median")


def test_constructor_and_set_weight_checks():
    with pytest.raises(NotImplementedError, match="quint4x2"):
        nnq.Embedding(3, 4, dtype=ferroq.quint4x2)
    with pytest.raises(NotImplementedError, match="even embedding_dim"):
        nnq.EmbeddingBag(3, 5, dtype=ferroq.quint4x2)
    with pytest.raises(NotImplementedError):
        nnq.EmbeddingBag(3, 4, dtype=ferroq.qint8)
    q = nnq.EmbeddingBag(3, 4, dtype="quint4x2")
    before = q.weight()
    per_channel_int = ferroq.QTensor.from_int_repr(np.zeros((3, 4), np.uint8), [1.0] * 3, [0] * 3, axis=0)
    wrong_dtype = ferroq.QTensor.from_int_repr(np.zeros((3, 4), np.uint8), np.ones(3, F32), np.zeros(3, F32), axis=0)
    wrong_shape = ferroq.QTensor.from_int_repr(np.zeros((3, 6), np.uint8), np.ones(3, F32), np.zeros(3, F32), axis=0, dtype="quint4x2")
    for bad, error in ((np.zeros((3, 4)), TypeError), (wrong_dtype, TypeError), (wrong_shape, ValueError)):
        with pytest.raises(error):
            q.set_weight(bad)
    with pytest.raises(ValueError, match="per_channel_affine_float_qparams"):
        nnq.EmbeddingBag(3, 4).set_weight(per_channel_int)
    assert q.weight()._same_as(before)  # nothing changed (weight() is a new QTensor each call)
    assert np.all(q(np.array([0, 1]), np.array([0])) == 0)


def test_from_float_checks_the_module_and_observer():
    w = np.ones((4, 6), F32)
    with pytest.raises(TypeError, match="expects a float EmbeddingBag"):
        nnq.EmbeddingBag.from_float(FloatEmbedding(w))
    with pytest.raises(TypeError, match="expects a float Embedding"):
        nnq.Embedding.from_float(ferroq.nn.Linear(3, 4))
    mod = FloatEmbedding(w)
    mod.qconfig = ferroq.quantization.default_dynamic_qconfig
    with pytest.raises(ValueError, match="float_qparams_weight_only_qconfig"):
        nnq.Embedding.from_float(mod)
    mod.qconfig = float_qparams_weight_only_qconfig_4bit
    with pytest.raises(NotImplementedError, match="EmbeddingBag"):
        nnq.Embedding.from_float(mod)
    bad = FloatEmbedding(np.array([[1.0, np.nan]], F32))
    with pytest.raises(ValueError, match="NaN"):
        nnq.Embedding.from_float(bad)


def test_observer_float_qparams_formula():
    obs = PerChannelMinMaxObserver(dtype=ferroq.quint4x2, qscheme=ferroq.per_channel_affine_float_qparams)
    obs(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]], F32))
    scale, zp = obs.calculate_qparams()
    assert scale.dtype == F32 and zp.dtype == F32
    assert np.array_equal(scale, np.array([F32(2.0) / F32(15.0), 1.0, 1.0], F32))
    assert np.array_equal(zp, np.array([-1.0 / (F32(2.0) / F32(15.0)), 0.0, 1.0], F32))
    assert np.signbit(zp[1])  # -0.0, as torch computes -min / scale


def test_quint4x2_qtensor_int_repr_is_torch_storage():
    values = np.array([[1, 2, 3], [15, 0, 7]], np.uint8)
    q = ferroq.QTensor.from_int_repr(values, np.ones(2, F32), np.zeros(2, F32), axis=0, dtype=ferroq.quint4x2)
    assert q.qscheme() is ferroq.per_channel_affine_float_qparams
    assert np.array_equal(q.int_repr(), np.array([0x21, 0xF3, 0x70], np.uint8))
    assert np.array_equal(q.dequantize(), values.astype(F32))
    with pytest.raises(ValueError, match="0..15"):
        ferroq.QTensor.from_int_repr(values + 1 + 15, np.ones(2, F32), np.zeros(2, F32), axis=0, dtype="quint4x2")


def test_state_dict_keys_load_save_pickle_and_deepcopy(tmp_path):
    rng = np.random.default_rng(5)
    q, _ = random_bag(rng, rows=8, dim=6, bits=4)
    sd = q.state_dict()
    assert list(sd) == ["_packed_params.dtype", "_packed_params._packed_weight"]
    assert sd["_packed_params.dtype"] is ferroq.quint4x2
    other = nnq.EmbeddingBag(8, 6, dtype=ferroq.quint4x2)
    other.load_state_dict(sd)
    idx, offsets = rng.integers(0, 8, 10), np.array([0, 5])
    want = q(idx, offsets)
    assert np.array_equal(other(idx, offsets), want)
    with pytest.raises(RuntimeError, match="dtype"):
        nnq.EmbeddingBag(8, 6).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="shape"):
        nnq.EmbeddingBag(9, 6, dtype=ferroq.quint4x2).load_state_dict(sd)
    for again in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q)):
        assert np.array_equal(again(idx, offsets), want)
    model = ferroq.nn.Sequential()
    model.bag = q
    model.emb = nnq.Embedding(5, 3, padding_idx=1)
    path = tmp_path / "bags.safetensors"
    ferroq.save(model, path)
    loaded = ferroq.load(path)
    assert np.array_equal(loaded.bag(idx, offsets), want)
    raw, _ = ferroq._core.read_safetensors(str(path), 1 << 20)
    shapes = {name: shape for name, _, shape, _, _ in raw}
    assert shapes["bag._packed_params._packed_weight.int"] == [24]  # 8 x 6 values, two per byte
    assert loaded.bag.mode == "sum" and loaded.emb.padding_idx == 1
    assert repr(loaded.emb) == "QuantizedEmbedding(num_embeddings=5, embedding_dim=3, dtype=ferroq.quint8, qscheme=ferroq.per_channel_affine_float_qparams)"


def test_quantize_dynamic_swaps_embeddings_by_their_qconfig():
    class Model(ferroq.nn.Module):
        pass

    rng = np.random.default_rng(6)
    model = Model()
    model.bag = FloatEmbeddingBag(rng.standard_normal((7, 4)).astype(F32), "sum", False)
    model.fc = ferroq.nn.Linear(4, 2)
    mapping = ferroq.quantization.get_default_dynamic_quant_module_mappings()
    mapping[FloatEmbeddingBag] = nnq.EmbeddingBag
    from ferroq.quantization import propagate_qconfig_
    from ferroq.quantization.quantize import convert

    propagate_qconfig_(model, {FloatEmbeddingBag: float_qparams_weight_only_qconfig_4bit})
    converted = convert(model, mapping)
    assert type(converted.bag) is nnq.EmbeddingBag and converted.bag.dtype is ferroq.quint4x2
    assert type(converted.fc) is ferroq.nn.Linear
    # quantize_dynamic knows the float embeddings by name (ferroq.nn.Embedding/EmbeddingBag)
    if hasattr(ferroq.nn, "EmbeddingBag"):
        real = Model()
        real.bag = ferroq.nn.EmbeddingBag(7, 4, mode="sum")
        out = quantize_dynamic(real, {ferroq.nn.EmbeddingBag: float_qparams_weight_only_qconfig})
        assert type(out.bag) is nnq.EmbeddingBag
        out = quantize_dynamic(real, None, dtype=ferroq.quint4x2)
        assert out.bag.dtype is ferroq.quint4x2
    with pytest.raises(ValueError, match="Don't know how"):
        quantize_dynamic(model, None, dtype="float32")


def test_qconfigs_are_torchs():
    for qconfig, dtype in ((float_qparams_weight_only_qconfig, ferroq.quint8), (float_qparams_weight_only_qconfig_4bit, ferroq.quint4x2)):
        assert isinstance(qconfig, QConfig)
        obs = qconfig.weight()
        assert obs.dtype is dtype and obs.qscheme is ferroq.per_channel_affine_float_qparams and obs.ch_axis == 0
        assert qconfig.activation().dtype.name == "float32"


def test_from_torch_reads_torchs_quantized_embeddings():
    torch = pytest.importorskip("torch")
    import ferroq.torch as ft
    from torch.ao.nn import quantized as tnnq
    from torch.ao.quantization import float_qparams_weight_only_qconfig as tq8
    from torch.ao.quantization import float_qparams_weight_only_qconfig_4bit as tq4

    torch.manual_seed(0)
    idx = torch.randint(0, 20, (30,))
    offsets = torch.tensor([0, 5, 5, 17])
    psw = torch.randn(30)
    for qconfig, kind in ((tq8, "emb"), (tq8, "bag"), (tq4, "bag")):
        if kind == "emb":
            mod = torch.nn.Embedding(20, 8)
        else:
            mod = torch.nn.EmbeddingBag(20, 8, mode="sum")
        mod.qconfig = qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tq = (tnnq.Embedding if kind == "emb" else tnnq.EmbeddingBag).from_float(mod)
            fq = ft.from_torch(tq)
        if kind == "emb":
            want, got = tq(idx.reshape(5, 6)), fq(idx.numpy().reshape(5, 6))
        else:
            want, got = tq(idx, offsets, psw), fq(idx.numpy(), offsets.numpy(), psw.numpy())
        assert np.array_equal(got.view(np.uint32), want.numpy().view(np.uint32))
        assert repr(fq) == repr(tq).replace("torch.", "ferroq.")
    # duck-typed from_float on torch's float modules (no qconfig: the 8-bit default)
    bag = torch.nn.EmbeddingBag(20, 8, mode="sum")
    ours = nnq.EmbeddingBag.from_float(bag)
    bag.qconfig = tq8
    theirs = tnnq.EmbeddingBag.from_float(bag)
    assert np.array_equal(ours.weight().int_repr(), theirs.weight().int_repr().numpy())
    assert np.array_equal(ours(idx.numpy(), offsets.numpy()).view(np.uint32), theirs(idx, offsets).numpy().view(np.uint32))


def test_from_torch_converts_a_model_quantized_by_torchs_quantize_dynamic():
    torch = pytest.importorskip("torch")
    import ferroq.torch as ft
    from torch.ao.quantization import default_dynamic_qconfig as tdyn
    from torch.ao.quantization import float_qparams_weight_only_qconfig_4bit as tq4
    from torch.ao.quantization import quantize_dynamic as tquantize_dynamic

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.EmbeddingBag(50, 16, mode="sum"), torch.nn.Linear(16, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = tquantize_dynamic(model, {torch.nn.EmbeddingBag: tq4, torch.nn.Linear: tdyn})
    fq = ft.from_torch(tq)
    assert type(fq[0]) is nnq.EmbeddingBag and fq[0].dtype is ferroq.quint4x2
    idx = torch.randint(0, 50, (7, 5))
    assert np.array_equal(fq(idx.numpy()).view(np.uint32), tq(idx).numpy().view(np.uint32))
