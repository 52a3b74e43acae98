"""The float modules around the quantized layers (embeddings, LayerNorm, Dropout, Flatten, the
activations): checked against reference formulas evaluated in float64 with Python's ``math``, and
for torch's arguments, defaults, parameters, state-dict keys, reprs, errors and save/load. The
comparison with torch itself is in test_float_modules_torch.py."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ferroq
from ferroq import nn

from conftest import assert_same_bits

#: One float32 ulp, relative: the modules computed in float64 round once, so they are within half
#: an ulp of the exact value (a little more near zero, covered by the absolute tolerance).
ULP = 2.0**-23


def elementwise(fn, x: np.ndarray) -> np.ndarray:
    return np.array([fn(float(v)) for v in x.reshape(-1)], dtype=np.float64).reshape(x.shape)


def values(rng, shape=(3, 5, 7), scale=4.0) -> np.ndarray:
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x.reshape(-1)[:4] = [0.0, -0.0, 30.0, -30.0][: x.size]
    return x


# -- activations --------------------------------------------------------------------------------------


def gelu_tanh(v: float) -> float:
    """``0.5 * v * (1 + tanh(u))``, rewritten as ``v / (1 + exp(-2u))`` to stay accurate for negative u."""
    exponent = -2.0 * math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)
    return v / (1.0 + math.exp(exponent)) if exponent < 700 else math.copysign(0.0, v)


@pytest.mark.parametrize(
    "module, reference",
    [
        (nn.Tanh(), math.tanh),
        (nn.Sigmoid(), lambda v: 1.0 / (1.0 + math.exp(-v))),
        (nn.SiLU(), lambda v: v / (1.0 + math.exp(-v))),
        (nn.GELU(), lambda v: v * 0.5 * math.erfc(-v / math.sqrt(2.0))),
        (
            nn.GELU(approximate="tanh"),
            gelu_tanh,
        ),
    ],
    ids=["tanh", "sigmoid", "silu", "gelu", "gelu-tanh"],
)
def test_smooth_activations_are_within_an_ulp_of_the_float64_formula(rng, module, reference):
    x = values(rng)
    y = module(x)
    assert y.dtype == np.float32 and y.shape == x.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, elementwise(reference, x), rtol=ULP, atol=1e-30)
    # unbatched and 0-d inputs work as in torch
    assert_same_bits(module(x[0, 0]), y[0, 0])
    assert_same_bits(module(np.float32(x[0, 0, 5])), y[0, 0, 5])


def test_clamping_activations_are_exact(rng):
    x = values(rng)

    def clamp(low, high):  # torch's clamp: the value itself unless outside (-0.0 stays -0.0)
        return np.array([low if v < low else high if v > high else v for v in x.reshape(-1)], np.float32).reshape(x.shape)

    assert_same_bits(nn.ReLU6()(x), clamp(0.0, 6.0))
    assert nn.ReLU6()(np.float32(-0.0)).tobytes() == np.float32(-0.0).tobytes()
    assert_same_bits(nn.Hardtanh(-2.0, 3.5)(x), clamp(-2.0, 3.5))
    slope = np.float32(0.2)
    assert_same_bits(nn.LeakyReLU(0.2)(x), np.where(x > 0, x, x * slope))
    assert_same_bits(nn.LeakyReLU()(x), np.where(x > 0, x, x * np.float32(0.01)))
    nan = np.array([np.nan, -np.inf, np.inf], np.float32)
    assert np.isnan(nn.ReLU6()(nan)[0]) and list(nn.ReLU6()(nan)[1:]) == [0.0, 6.0]
    assert np.isnan(nn.LeakyReLU()(nan)[0])


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_softmax_and_log_softmax_follow_the_float64_formula(rng, dim):
    x = values(rng)
    wide = x.astype(np.float64)
    exps = np.exp(wide - wide.max(axis=dim, keepdims=True))
    expected = exps / exps.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(nn.Softmax(dim)(x), expected, rtol=ULP, atol=1e-38)
    log_expected = wide - wide.max(axis=dim, keepdims=True) - np.log(exps.sum(axis=dim, keepdims=True))
    np.testing.assert_allclose(nn.LogSoftmax(dim)(x), log_expected, rtol=ULP, atol=ULP)
    np.testing.assert_allclose(nn.Softmax(dim)(x).sum(axis=dim), 1.0, rtol=1e-6)


def test_softmax_implicit_dim_warns_and_picks_torch_s_dim(rng):
    x = values(rng, (2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(x)
    assert_same_bits(y, nn.Softmax(1)(x))
    with pytest.warns(UserWarning, match="log_softmax"):
        y3 = nn.LogSoftmax()(values(rng, (2, 3, 4)))
    assert y3.shape == (2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nn.Softmax(0)(np.float32(3.0)) == 1.0  # a 0-d input has one dim


def test_softmax_rows_with_infinities_give_nan_like_torch():
    x = np.array([[1.0, np.inf, 0.0], [-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]], np.float32)
    y = nn.Softmax(1)(x)
    assert np.isnan(y[0]).all() and np.isnan(y[1]).all()
    assert_same_bits(y[2], np.array([0.5, 0.0, 0.5], np.float32))


def test_bad_dims_and_arguments_are_typed_errors():
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        nn.Softmax(2)(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="max_val > min_val"):
        nn.Hardtanh(1.0, 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        nn.Tanh()(np.arange(3))
    with pytest.raises(TypeError):
        nn.Softmax(1.5)


def test_activation_reprs_are_torch_s():
    assert repr(nn.Tanh()) == "Tanh()"
    assert repr(nn.SiLU()) == "SiLU()" and repr(nn.SiLU(inplace=True)) == "SiLU(inplace=True)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(dim=-1)) == "Softmax(dim=-1)" and repr(nn.LogSoftmax()) == "LogSoftmax(dim=None)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(nn.Hardtanh(-2, 2, True)) == "Hardtanh(min_val=-2, max_val=2, inplace=True)"
    assert repr(nn.ReLU6()) == "ReLU6()"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.LeakyReLU(0.2, True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_inplace_never_writes_into_the_input(rng):
    x = values(rng)
    before = x.copy()
    for module in (nn.SiLU(True), nn.Hardtanh(inplace=True), nn.ReLU6(True), nn.LeakyReLU(inplace=True), nn.Dropout(0.5, True)):
        module(x)
    assert_same_bits(x, before)


# -- Dropout and Flatten --------------------------------------------------------------------------------


def test_dropout_is_the_identity_in_eval_and_drops_like_torch_in_training(rng):
    x = np.ones((200, 100), np.float32)
    module = nn.Dropout(0.25)
    assert module.training
    np.random.seed(0)
    y = module(x)
    kept = y != 0
    assert 0.72 < kept.mean() < 0.78
    assert_same_bits(y[kept], np.full(int(kept.sum()), np.float32(1) / np.float32(0.75), np.float32))
    assert module.eval()(x) is x
    assert_same_bits(nn.Dropout(0.0)(x), x)
    assert not nn.Dropout(1.0)(x).any()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_flatten_follows_torch_flatten(rng):
    x = values(rng, (2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, -1)(x).shape == (120,)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)
    assert_same_bits(nn.Flatten()(x), x.reshape(2, 60))
    assert nn.Flatten(0)(np.float32(2.0)).shape == (1,)
    with pytest.raises(IndexError, match="Dimension out of range"):
        nn.Flatten()(np.zeros(3, np.float32))  # unbatched 1-d input: dim 1 does not exist, as in torch
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        nn.Flatten(2, 1)(x)
    fortran = np.asfortranarray(x)
    assert_same_bits(nn.Flatten()(fortran), x.reshape(2, 60))


# -- LayerNorm ----------------------------------------------------------------------------------------------


def layer_norm_reference(x, shape, eps, weight, bias):
    flat = x.astype(np.float64)
    n = math.prod(shape)
    out = np.empty_like(flat)
    for index in np.ndindex(*x.shape[: x.ndim - len(shape)]):
        row = [float(v) for v in flat[index].reshape(-1)]
        mean = math.fsum(row) / n
        var = math.fsum((v - mean) ** 2 for v in row) / n
        out[index] = ((flat[index] - mean) / math.sqrt(var + float(np.float32(eps))))
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


@pytest.mark.parametrize("shape", [8, (8,), (3, 8), ()])
def test_layer_norm_matches_the_float64_formula(rng, shape):
    module = nn.LayerNorm(shape, eps=1e-3)
    normalized = (shape,) if isinstance(shape, int) else tuple(shape)
    assert module.normalized_shape == normalized
    assert_same_bits(module.weight, np.ones(normalized, np.float32))
    assert_same_bits(module.bias, np.zeros(normalized, np.float32))
    module.weight = rng.standard_normal(normalized)
    module.bias = rng.standard_normal(normalized)
    x = values(rng, (4, 3, 8), scale=3.0) + np.float32(5)
    expected = layer_norm_reference(x, normalized, 1e-3, module.weight.astype(np.float64), module.bias.astype(np.float64))
    np.testing.assert_allclose(module(x), expected, rtol=ULP, atol=ULP * np.abs(module.bias).max(initial=1.0))
    unbatched = x[0, 0] if normalized != (3, 8) else x[0]
    assert module(unbatched).shape == unbatched.shape


def test_layer_norm_options_state_dict_and_errors(rng):
    assert list(nn.LayerNorm(4).state_dict()) == ["weight", "bias"]
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    plain = nn.LayerNorm([2, 2], elementwise_affine=False)
    assert plain.weight is None and plain.bias is None and list(plain.state_dict()) == []
    x = values(rng, (5, 2, 2))
    expected = layer_norm_reference(x, (2, 2), 1e-5, None, None)
    np.testing.assert_allclose(plain(x), expected, rtol=ULP, atol=ULP)
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert repr(nn.LayerNorm(4, bias=False)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=False)"
    assert repr(plain) == "LayerNorm((2, 2), eps=1e-05, elementwise_affine=False, bias=False)"
    with pytest.raises(ValueError, match=r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of size \[2, 3\]"):
        nn.LayerNorm(4)(np.zeros((2, 3), np.float32))
    with pytest.raises(NotImplementedError, match="CPU"):
        nn.LayerNorm(4, device="cuda")
    with pytest.raises(ValueError):
        nn.LayerNorm(-1)


# -- Embedding ----------------------------------------------------------------------------------------------


def test_embedding_initialisation_padding_and_lookup():
    np.random.seed(3)
    module = nn.Embedding(10, 4, padding_idx=-2)
    np.random.seed(3)
    expected = np.random.standard_normal((10, 4)).astype(np.float32)
    expected[8] = 0
    assert module.padding_idx == 8
    assert_same_bits(module.weight, expected)
    ids = np.array([[1, 8, 9], [0, 0, 3]], dtype=np.int32)
    assert_same_bits(module(ids), expected[ids])
    assert_same_bits(module(np.int64(4)), expected[4])  # 0-d index: one row
    assert module(np.zeros((0, 3), np.uint8)).shape == (0, 3, 4)
    assert list(module.state_dict()) == ["weight"]
    assert repr(module) == "Embedding(10, 4, padding_idx=8)"
    assert repr(nn.Embedding(3, 2, norm_type=1.0, sparse=True)) == "Embedding(3, 2, norm_type=1.0, sparse=True)"


def test_embedding_from_pretrained_keeps_the_matrix(rng):
    weight = rng.standard_normal((5, 3)).astype(np.float32)
    module = nn.Embedding.from_pretrained(weight, padding_idx=1)
    assert_same_bits(module.weight, weight)  # the padding row is not zeroed, as in torch
    weight[0] = 7  # a copy
    assert module.weight[0, 0] != 7
    with pytest.raises(ValueError, match="2-dimensional"):
        nn.Embedding.from_pretrained(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="Shape of weight does not match"):
        nn.Embedding(4, 3, _weight=np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("module", [nn.Embedding(6, 2), nn.EmbeddingBag(6, 2, mode="sum")], ids=["embedding", "bag"])
def test_indices_are_validated_without_wrap_around(module):
    for bad in (np.array([[0, 6]]), np.array([[2, -1]]), np.array([[0, 2**40]]), np.array([[1, 2**63]], np.uint64)):
        with pytest.raises(IndexError, match=f"index {bad[0, 1]} at position \\(0, 1\\), out of range for 6 embeddings"):
            module(bad)
    for wrong in (np.array([[0.0, 1.0]]), np.array([[True, False]]), np.array([["a", "b"]])):
        with pytest.raises(TypeError, match="integer indices"):
            module(wrong)


def test_embedding_constructor_errors():
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        nn.EmbeddingBag(4, 2, padding_idx=-5)
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.EmbeddingBag(4, 2, max_norm=1.0)
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        nn.EmbeddingBag(4, 2, mode="median")
    with pytest.raises(NotImplementedError, match="float32"):
        nn.Embedding(4, 2, dtype="float16")


# -- EmbeddingBag -------------------------------------------------------------------------------------------


def bag_reference(weight, bags, mode, padding_idx=None, weights=None):
    """Each bag reduced with Python floats in index order (sum in float32 steps, as torch)."""
    out = np.zeros((len(bags), weight.shape[1]), np.float32)
    for b, bag in enumerate(bags):
        rows = [(i, k) for k, i in enumerate(bag) if i != padding_idx]
        if not rows:
            continue
        if mode == "max":
            out[b] = np.max([weight[i] for i, _ in rows], axis=0)
            continue
        acc = np.zeros(weight.shape[1], np.float32)
        for i, k in rows:
            if weights is None:
                acc = acc + weight[i]
            else:  # a fused multiply-add, exactly rounded: Fractions are exact
                from fractions import Fraction

                acc = np.array(
                    [float(Fraction(float(weights[b][k])) * Fraction(float(w)) + Fraction(float(a))) for w, a in zip(weight[i], acc)],
                    np.float64,
                ).astype(np.float32)
        out[b] = acc / np.float32(len(rows)) if mode == "mean" else acc
    return out


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_2d_and_offsets_forms(rng, mode):
    module = nn.EmbeddingBag(20, 5, mode=mode)
    ids = rng.integers(0, 20, (4, 6))
    expected = bag_reference(module.weight, ids.tolist(), mode)
    assert_same_bits(module(ids), expected)
    flat = np.array([3, 4, 5, 3, 19, 0, 1, 2], np.int64)
    offsets = np.array([0, 2, 2, 7], np.int64)  # the third bag is empty
    bags = [[3, 4], [], [5, 3, 19, 0, 1], [2]]
    assert_same_bits(module(flat, offsets), bag_reference(module.weight, bags, mode))
    last = nn.EmbeddingBag.from_pretrained(module.weight, mode=mode, include_last_offset=True)
    assert_same_bits(last(flat, np.array([0, 2, 2, 7, 8])), bag_reference(module.weight, bags, mode))
    assert not module(flat, offsets)[1].any()
    long_ids = rng.integers(0, 20, (2, 50))  # few long bags take the bag-by-bag loop
    assert_same_bits(module(long_ids), bag_reference(module.weight, long_ids.tolist(), mode))
    negative_zero = nn.EmbeddingBag.from_pretrained(np.full((2, 3), -0.0, np.float32), mode=mode)
    zero = np.float32(-0.0 if mode == "max" else 0.0)  # sums start from +0.0; max takes the first row (torch)
    for shape in ((1, 30), (30, 2)):
        assert_same_bits(negative_zero(np.zeros(shape, np.int64)), np.full((shape[0], 3), zero, np.float32))


def test_embedding_bag_padding_is_left_out_and_not_counted(rng):
    module = nn.EmbeddingBag(7, 3, mode="mean", padding_idx=2)
    assert not module.weight[2].any()
    module.weight = rng.standard_normal((7, 3))
    ids = np.array([[2, 1, 2, 5], [2, 2, 2, 2]])
    assert_same_bits(module(ids), bag_reference(module.weight, ids.tolist(), "mean", padding_idx=2))
    assert not module(ids)[1].any()
    for mode in ("sum", "max"):
        module.mode = mode
        assert_same_bits(module(ids), bag_reference(module.weight, ids.tolist(), mode, padding_idx=2))


def test_embedding_bag_per_sample_weights_are_fused_multiply_adds(rng):
    module = nn.EmbeddingBag(30, 16, mode="sum")
    ids = rng.integers(0, 30, (3, 9))
    weights = rng.standard_normal((3, 9)).astype(np.float32)
    assert_same_bits(module(ids, per_sample_weights=weights), bag_reference(module.weight, ids.tolist(), "sum", weights=weights))
    long_ids = rng.integers(0, 30, (1, 40))
    long_weights = rng.standard_normal((1, 40)).astype(np.float32)
    expected = bag_reference(module.weight, long_ids.tolist(), "sum", weights=long_weights)
    assert_same_bits(module(long_ids, per_sample_weights=long_weights), expected)
    flat, offsets = ids.reshape(-1), np.array([0, 9, 18])
    assert_same_bits(module(flat, offsets, weights.reshape(-1)), module(ids, per_sample_weights=weights))


def test_embedding_bag_errors_follow_torch():
    module = nn.EmbeddingBag(10, 2, mode="mean")
    ids = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="offsets has to be a 1D Tensor but got None"):
        module(ids)
    with pytest.raises(ValueError, match="if input is 2D, then offsets has to be None"):
        module(ids.reshape(1, 3), np.array([0]))
    with pytest.raises(ValueError, match="input has to be 1D or 2D Tensor, but got Tensor of dimension 3"):
        module(ids.reshape(1, 1, 3))
    with pytest.raises(ValueError, match="offsets has to be a 1D Tensor"):
        module(ids, np.array([[0]]))
    with pytest.raises(ValueError, match=r"offsets\[0\] has to be 0"):
        module(ids, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"offsets\[-1\] can not be greater than input's length 3, but got offsets\[-1\] of 4"):
        module(ids, np.array([0, 4]))
    with pytest.raises(ValueError, match="non-decreasing"):
        module(ids, np.array([0, 2, 1]))
    with pytest.raises(TypeError, match="offsets must be an array of integers"):
        module(ids, np.array([0.0]))
    with pytest.raises(NotImplementedError, match="per_sample_weights is only supported for mode='sum' \\(got mode='mean'\\)"):
        module(ids, np.array([0]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"If per_sample_weights \(\(2,\)\) is not None, then it must have the same shape as the input \(\(3,\)\)"):
        module(ids, np.array([0]), np.ones(2, np.float32))
    last = nn.EmbeddingBag(10, 2, include_last_offset=True)
    with pytest.raises(ValueError, match="include_last_offset: number of offset should be at least 1"):
        last(ids, np.array([], np.int64))
    assert module(np.array([], np.int64), np.array([], np.int64)).shape == (0, 2)
    assert not module(np.zeros((3, 0), np.int64)).any() and module(np.zeros((3, 0), np.int64)).shape == (3, 2)


def test_embedding_bag_repr_and_state_dict():
    assert repr(nn.EmbeddingBag(10, 3)) == "EmbeddingBag(10, 3, mode='mean')"
    assert repr(nn.EmbeddingBag(10, 3, mode="sum", padding_idx=-1)) == "EmbeddingBag(10, 3, mode='sum', padding_idx=9)"
    assert list(nn.EmbeddingBag(10, 3).state_dict()) == ["weight"]


# -- save / load --------------------------------------------------------------------------------------------


ALL_NEW_MODULES = [
    lambda: nn.Embedding(9, 4, padding_idx=-1, norm_type=3.0, sparse=True),
    lambda: nn.EmbeddingBag(9, 4, mode="max", include_last_offset=True, padding_idx=2, norm_type=1.0),
    lambda: nn.LayerNorm((2, 3), eps=1e-3),
    lambda: nn.LayerNorm(4, bias=False),
    lambda: nn.LayerNorm(4, elementwise_affine=False),
    lambda: nn.Dropout(0.3, inplace=True),
    lambda: nn.Flatten(0, 1),
    lambda: nn.Tanh(),
    lambda: nn.Sigmoid(),
    lambda: nn.GELU("tanh"),
    lambda: nn.SiLU(True),
    lambda: nn.Softmax(-2),
    lambda: nn.LogSoftmax(),
    lambda: nn.Hardtanh(-3.0, 0.5, True),
    lambda: nn.ReLU6(True),
    lambda: nn.LeakyReLU(0.3),
    lambda: nn.ModuleList([nn.Tanh(), nn.Linear(3, 2)]),
    lambda: nn.ModuleDict({"act": nn.GELU(), "norm": nn.LayerNorm(3)}),
]


@pytest.mark.parametrize("build", ALL_NEW_MODULES, ids=lambda b: repr(b()).split("(")[0])
def test_every_new_module_saves_and_loads_bit_exactly(tmp_path, rng, build):
    module = build()
    for name, value in list(module.named_parameters()):
        *owner, leaf = name.split(".")
        target = module
        for part in owner:
            target = getattr(target, part)
        setattr(target, leaf, rng.standard_normal(value.shape))
    path = tmp_path / "m.safetensors"
    ferroq.save(module, path)
    loaded = ferroq.load(path)
    assert type(loaded) is type(module)
    assert repr(loaded) == repr(module)
    assert loaded._config() == module._config()
    assert list(loaded.state_dict()) == list(module.state_dict())
    for key, value in module.state_dict().items():
        assert_same_bits(loaded.state_dict()[key], value)


# -- memory layouts -----------------------------------------------------------------------------------------


def layouts(x: np.ndarray):
    """The same values as Fortran-ordered, strided (negative too), byte-swapped and read-only arrays."""
    yield np.asfortranarray(x)
    padded = np.repeat(x[..., ::-1], 2, axis=-1)[..., ::-2]
    yield padded
    yield x.astype(x.dtype.newbyteorder(">"))
    frozen = x.copy()
    frozen.flags.writeable = False
    yield frozen


def test_every_layout_gives_the_same_bits(rng):
    x = values(rng, (4, 6, 8))
    ids = rng.integers(0, 9, (4, 6)).astype(np.int32)
    modules = [nn.LayerNorm(8), nn.Softmax(1), nn.GELU(), nn.ReLU6(), nn.Flatten()]
    embedding, bag = nn.Embedding(9, 3), nn.EmbeddingBag(9, 3, mode="sum")
    for module in modules:
        expected = module(x)
        for variant in layouts(x):
            np.testing.assert_array_equal(variant, x)
            assert_same_bits(module(variant), expected)
    for variant in layouts(ids):
        np.testing.assert_array_equal(variant, ids)
        assert_same_bits(embedding(variant), embedding(ids))
        assert_same_bits(bag(variant), bag(ids))
        offsets = np.array([0, 5, 24])
        assert_same_bits(bag(variant.ravel(), offsets[::-1][::-1]), bag(ids.reshape(-1), offsets))
