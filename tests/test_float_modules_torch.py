"""The float modules against torch itself (skipped without torch): bit for bit where the math is
exact in float32 (lookups, bag sums and maxima, clamps, the conversion of every module), within
the tolerance docs/float_modules.md gives where torch's own float32 kernels round differently."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ferroq.torch as ftorch  # noqa: E402
from ferroq import nn  # noqa: E402

from conftest import assert_same_bits  # noqa: E402

#: float32 ulps (relative) by which torch's float32 kernels and ferroq's once-rounded float64 may
#: differ; see docs/float_modules.md.
ULP = 2.0**-23


def data(seed: int, shape, scale: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x.reshape(-1)[:6] = [0.0, -0.0, 30.0, -30.0, 1e-30, -1e-30]
    return x


def torch_out(module, *args) -> np.ndarray:
    with torch.no_grad():
        return module(*[torch.from_numpy(np.asarray(a)) if isinstance(a, np.ndarray) else a for a in args]).numpy()


def converted(module):
    return ftorch.from_torch(module.eval())


EXACT = [
    torch.nn.ReLU6(),
    torch.nn.Hardtanh(-2.0, 0.5),
    torch.nn.LeakyReLU(0.2),
    torch.nn.LeakyReLU(),
    torch.nn.Flatten(0, 1),
    torch.nn.Dropout(0.3),
]


@pytest.mark.parametrize("module", EXACT, ids=repr)
def test_exact_modules_equal_torch_bit_for_bit(module):
    x = data(0, (4, 9, 33))
    assert_same_bits(converted(module)(x), torch_out(module, x))


#: module -> (rtol in ulps, atol): see docs/float_modules.md for why each.
TOLERANCES = [
    (torch.nn.Tanh(), 2, 0.0),
    (torch.nn.Sigmoid(), 2, 0.0),
    (torch.nn.SiLU(), 3, 1e-37),
    (torch.nn.GELU(), 3, 1e-37),
    (torch.nn.GELU("tanh"), 4, 1e-37),
    (torch.nn.Softmax(-1), 4, 1e-37),
    (torch.nn.Softmax(1), 4, 1e-37),
    (torch.nn.LogSoftmax(-1), 2, 2 * ULP),
    (torch.nn.LogSoftmax(0), 2, 2 * ULP),
]


@pytest.mark.parametrize("module, ulps, atol", TOLERANCES, ids=[repr(t[0]) for t in TOLERANCES])
def test_transcendental_modules_match_torch_within_float32_rounding(module, ulps, atol):
    x = data(1, (4, 9, 33))
    mine, theirs = converted(module)(x), torch_out(module, x)
    np.testing.assert_allclose(mine, theirs, rtol=ulps * ULP, atol=atol)
    agree = np.mean(mine.view(np.uint32) == theirs.view(np.uint32))
    assert agree > 0.5, f"only {agree:.1%} of the values are bit-identical"


@pytest.mark.parametrize("shape, affine, bias", [((33,), True, True), ((9, 33), True, False), ((33,), False, True)])
def test_layer_norm_matches_torch_within_float32_rounding(shape, affine, bias):
    torch.manual_seed(0)
    module = torch.nn.LayerNorm(shape, eps=1e-5, elementwise_affine=affine, bias=bias)
    if affine:
        with torch.no_grad():
            module.weight.normal_()
            if bias:
                module.bias.normal_()
    x = data(2, (4, 9, 33)) + np.float32(3)
    mine, theirs = converted(module)(x), torch_out(module, x)
    # |y| is O(1) per unit weight: an absolute bound of a few ulp of the row's scale
    np.testing.assert_allclose(mine, theirs, rtol=8 * ULP, atol=8 * ULP * (1 + np.abs(theirs).max()))


def test_embedding_equals_torch_and_converts_its_options():
    torch.manual_seed(0)
    module = torch.nn.Embedding(50, 7, padding_idx=-3, norm_type=1.5, scale_grad_by_freq=True)
    mine = converted(module)
    assert repr(mine) == repr(module) and mine.padding_idx == module.padding_idx == 47
    ids = np.random.default_rng(0).integers(0, 50, (5, 6))
    assert_same_bits(mine(ids), torch_out(module, ids))
    assert_same_bits(mine(np.int64(3)), torch_out(module, torch.tensor(3)))
    assert list(mine.state_dict()) == list(module.state_dict())


BAGS = [
    dict(mode="sum"),
    dict(mode="mean"),
    dict(mode="max"),
    dict(mode="sum", padding_idx=4),
    dict(mode="mean", padding_idx=4),
    dict(mode="max", padding_idx=4),
    dict(mode="sum", include_last_offset=True),
    dict(mode="mean", include_last_offset=True, padding_idx=0),
]


@pytest.mark.parametrize("options", BAGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dim", [5, 16, 37])
def test_embedding_bag_equals_torch_bit_for_bit(options, dim):
    torch.manual_seed(dim)
    module = torch.nn.EmbeddingBag(12, dim, **options)
    mine = converted(module)
    assert repr(mine) == repr(module)
    rng = np.random.default_rng(dim)
    ids = rng.integers(0, 12, (6, 9))
    assert_same_bits(mine(ids), torch_out(module, ids))
    flat = rng.integers(0, 12, 40)
    offsets = np.array([0, 3, 3, 17, 17, 18, 39, 40])
    assert_same_bits(mine(flat, offsets), torch_out(module, flat, offsets))
    if options["mode"] == "sum":
        weights = data(dim, (40,), scale=1.0)
        assert_same_bits(mine(flat, offsets, weights), torch_out(module, flat, offsets, weights))
        weights2d = data(dim + 1, (6, 9), scale=1.0)
        assert_same_bits(mine(ids, None, weights2d), torch_out(module, ids, None, weights2d))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m(np.array([1, 2, 3])),
        lambda m: m(np.array([[1, 2, 3]]), np.array([0])),
        lambda m: m(np.array([[[1]]])),
        lambda m: m(np.array([1, 2, 3]), np.array([1])),
        lambda m: m(np.array([1, 2, 3]), np.array([0, 4])),
        lambda m: m(np.array([1, 2, 3]), np.array([0]), np.ones(3, np.float32)),
        lambda m: m(np.array([1, 2, 3]), np.array([0]), np.ones(2, np.float32)),
        lambda m: m(np.array([1, 20, 3]), np.array([0])),
        lambda m: m(np.array([1, -1, 3]), np.array([0])),
    ],
)
def test_embedding_bag_refuses_what_torch_refuses(call):
    module = torch.nn.EmbeddingBag(10, 2, mode="mean")
    mine = converted(module)

    def as_torch(*args):
        return module(*[torch.from_numpy(a) for a in args])

    with pytest.raises(Exception) as theirs:
        call(as_torch)
    with pytest.raises((ValueError, IndexError, TypeError, NotImplementedError)) as ours:
        call(mine)
    if isinstance(theirs.value, (ValueError, NotImplementedError)):
        assert type(ours.value) is type(theirs.value)


def test_include_last_offset_with_2d_input_drops_the_last_row_like_torch():
    module = torch.nn.EmbeddingBag(10, 3, mode="sum", include_last_offset=True)
    ids = np.random.default_rng(0).integers(0, 10, (4, 5))
    assert_same_bits(converted(module)(ids), torch_out(module, ids))


def test_initialisation_follows_torch_s_distributions():
    np.random.seed(0)
    embedding = nn.Embedding(400, 50, padding_idx=3)
    assert abs(embedding.weight.mean()) < 0.01 and abs(embedding.weight.std() - 1) < 0.01
    reference = torch.nn.Embedding(400, 50, padding_idx=3).weight.detach().numpy()
    assert not embedding.weight[3].any() and not reference[3].any()
    norm = nn.LayerNorm(8)
    theirs = torch.nn.LayerNorm(8)
    assert_same_bits(norm.weight, theirs.weight.detach().numpy())
    assert_same_bits(norm.bias, theirs.bias.detach().numpy())


def test_reprs_and_state_dict_keys_equal_torch_s():
    modules = [
        torch.nn.Embedding(10, 3, padding_idx=0, sparse=True),
        torch.nn.EmbeddingBag(10, 3, mode="max", padding_idx=-1),
        torch.nn.LayerNorm((4, 5), eps=1e-3, elementwise_affine=False),
        torch.nn.LayerNorm(4, bias=False),
        torch.nn.Dropout(0.1),
        torch.nn.Flatten(),
        torch.nn.Tanh(),
        torch.nn.Sigmoid(),
        torch.nn.GELU("tanh"),
        torch.nn.SiLU(),
        torch.nn.Softmax(dim=1),
        torch.nn.LogSoftmax(),
        torch.nn.Hardtanh(-2.0, 2.0),
        torch.nn.ReLU6(),
        torch.nn.LeakyReLU(0.1),
        torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Tanh()]),
        torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2), "b": torch.nn.ReLU()}),
    ]
    for module in modules:
        mine = converted(module)
        assert repr(mine) == repr(module)
        assert list(mine.state_dict()) == list(module.state_dict())


def test_module_signatures_and_defaults_equal_torch_s():
    import inspect

    for name in ["Embedding", "EmbeddingBag", "LayerNorm", "Dropout", "Flatten", "GELU", "SiLU", "Softmax",
                 "LogSoftmax", "Hardtanh", "ReLU6", "LeakyReLU"]:
        theirs = inspect.signature(getattr(torch.nn, name))
        mine = inspect.signature(getattr(nn, name))
        torch_defaults = {k: p.default for k, p in theirs.parameters.items() if k not in ("min_value", "max_value")}
        my_defaults = {k: p.default for k, p in mine.parameters.items()}
        assert my_defaults == torch_defaults, name
    for cls in ("Embedding", "EmbeddingBag"):
        theirs = inspect.signature(getattr(torch.nn, cls).from_pretrained)
        mine = inspect.signature(getattr(nn, cls).from_pretrained)
        assert {k: p.default for k, p in mine.parameters.items()} == {k: p.default for k, p in theirs.parameters.items()}
