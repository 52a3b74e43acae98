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
    x.reshape(-1)[:8] = [0.0, -0.0, 30.0, -30.0, 1e-30, -1e-30, 100.0, -100.0]
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


def ulp(values: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(values).astype(np.float32)).astype(np.float64)


#: The documented bound on |ferroq - torch| for each module (docs/float_modules.md), given the
#: input x (float64), torch's output t (float64) and the size n of the softmax dim.
TINY = 2.0**-126
BOUNDS = [
    (torch.nn.Tanh(), lambda x, t, n, dist: 2 * ulp(t)),
    (torch.nn.Sigmoid(), lambda x, t, n, dist: 3 * ulp(t) + TINY),
    (torch.nn.SiLU(), lambda x, t, n, dist: 3 * ulp(t) + TINY * (1 + np.abs(x))),
    (torch.nn.GELU(), lambda x, t, n, dist: 2 * ulp(t) + 2.0**-21 * np.abs(x)),
    (torch.nn.GELU("tanh"), lambda x, t, n, dist: 2 * ulp(t) + 2.0**-22 * np.abs(x)),
    (torch.nn.Softmax(-1), lambda x, t, n, dist: (dist + 2 * np.sqrt(n) + 4) * ULP * np.abs(t) + TINY),
    (torch.nn.Softmax(1), lambda x, t, n, dist: (dist + 2 * np.sqrt(n) + 4) * ULP * np.abs(t) + TINY),
    (torch.nn.Softmax(0), lambda x, t, n, dist: (dist + 2 * np.sqrt(n) + 4) * ULP * np.abs(t) + TINY),
    (torch.nn.LogSoftmax(-1), lambda x, t, n, dist: (dist + np.abs(t) + 2 * np.sqrt(n) + 4) * ULP),
    (torch.nn.LogSoftmax(1), lambda x, t, n, dist: (dist + np.abs(t) + 2 * np.sqrt(n) + 4) * ULP),
]


@pytest.mark.parametrize("module, bound", BOUNDS, ids=[repr(b[0]) for b in BOUNDS])
@pytest.mark.parametrize("scale", [0.1, 4.0, 100.0])
def test_transcendental_modules_match_torch_within_the_documented_bound(module, bound, scale):
    x = data(1, (4, 300, 33), scale)
    mine, theirs = converted(module)(x), torch_out(module, x)
    wide = x.astype(np.float64)
    dim = getattr(module, "dim", -1)
    n = x.shape[dim]
    dist = np.abs(wide - wide.max(axis=dim, keepdims=True))
    excess = np.abs(mine.astype(np.float64) - theirs) / bound(wide, theirs.astype(np.float64), n, dist)
    assert excess.max() <= 1, f"{excess.max():.2f} x the bound at {np.unravel_index(excess.argmax(), x.shape)}"


@pytest.mark.parametrize("shape, affine, bias", [((33,), True, True), ((300, 33), True, False), ((33,), False, True)])
@pytest.mark.parametrize("scale", [0.1, 4.0, 100.0])
def test_layer_norm_matches_torch_within_the_documented_bound(shape, affine, bias, scale):
    torch.manual_seed(0)
    module = torch.nn.LayerNorm(shape, eps=1e-5, elementwise_affine=affine, bias=bias)
    if affine:
        with torch.no_grad():
            module.weight.normal_()
            if bias:
                module.bias.normal_()
    x = data(2, (4, 300, 33), scale) + np.float32(3 * scale)
    mine, theirs = converted(module)(x).astype(np.float64), torch_out(module, x).astype(np.float64)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    wide = x.astype(np.float64)
    mean = wide.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(wide.var(axis=axes, keepdims=True) + 1e-5)
    weight = module.weight.detach().numpy() if module.weight is not None else np.ones(shape)
    shift = module.bias.detach().numpy() if module.bias is not None else np.zeros(shape)
    n = int(np.prod(shape))
    bound = (4 * np.abs(theirs) + (np.abs(wide) + np.abs(mean)) * rstd * np.abs(weight) * (4 + np.sqrt(n)) + 4 * np.abs(shift)) * ULP
    excess = np.abs(mine - theirs) / bound
    assert excess.max() <= 1, f"{excess.max():.2f} x the bound"


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
    long_ids = rng.integers(0, 12, (2, 70))  # few long bags: reduced bag by bag
    assert_same_bits(mine(long_ids), torch_out(module, long_ids))
    if options["mode"] == "sum":
        weights = data(dim, (40,), scale=1.0)
        assert_same_bits(mine(flat, offsets, weights), torch_out(module, flat, offsets, weights))
        weights2d = data(dim + 1, (6, 9), scale=1.0)
        assert_same_bits(mine(ids, None, weights2d), torch_out(module, ids, None, weights2d))
        long_weights = data(dim + 2, (2, 70), scale=1.0)
        assert_same_bits(mine(long_ids, None, long_weights), torch_out(module, long_ids, None, long_weights))


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


def test_include_last_offset_is_ignored_for_2d_input_like_torch():
    module = torch.nn.EmbeddingBag(10, 3, mode="sum", include_last_offset=True)
    ids = np.random.default_rng(0).integers(0, 10, (4, 5))
    assert_same_bits(converted(module)(ids), torch_out(module, ids))


def test_initialisation_follows_torch_s_distributions():
    np.random.seed(0)
    embedding = nn.Embedding(400, 50, padding_idx=3)
    assert abs(embedding.weight.mean()) < 0.01 and abs(embedding.weight.std() - 1) < 0.03
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
