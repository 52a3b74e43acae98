"""The float recurrent modules of ``ferroq.nn``: torch's parameter layout, shapes, messages and
math (checked against the golden fp16 cases), unbatched input, ``lengths=`` and dropout."""

from __future__ import annotations

import re
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

from ferroq import nn
from conftest import golden_cases, load_case


def make(cls: Any, *args: Any, seed: int = 0, **kwargs: Any) -> Any:
    """A module in eval mode with parameters from a fixed seed."""
    np.random.seed(seed)
    return cls(*args, **kwargs).eval()


def randn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def layout(module: nn.Module) -> List[Tuple[str, Tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


# -- parameters -------------------------------------------------------------------------------------


def layer_params(
    k: str, gates: int, in_size: int, h_size: int, proj: Optional[Tuple[int, int]] = None
) -> List[Tuple[str, Tuple[int, ...]]]:
    """The parameters of one layer/direction with biases, in torch's order; with ``proj``, the
    projection ``weight_hr`` of that shape last."""
    rows: List[Tuple[str, Tuple[int, ...]]] = [
        (f"weight_ih_{k}", (gates, in_size)),
        (f"weight_hh_{k}", (gates, h_size)),
    ]
    rows += [(f"bias_ih_{k}", (gates,)), (f"bias_hh_{k}", (gates,))]
    return rows + ([(f"weight_hr_{k}", proj)] if proj else [])


LAYOUTS = [
    (
        lambda: nn.LSTM(10, 20),
        [("weight_ih_l0", (80, 10)), ("weight_hh_l0", (80, 20)), ("bias_ih_l0", (80,)), ("bias_hh_l0", (80,))],
    ),
    (
        lambda: nn.GRU(4, 3, num_layers=2, bidirectional=True),
        layer_params("l0", 9, 4, 3)
        + layer_params("l0_reverse", 9, 4, 3)
        + layer_params("l1", 9, 6, 3)
        + layer_params("l1_reverse", 9, 6, 3),
    ),
    (
        lambda: nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=2),
        layer_params("l0", 24, 5, 2, proj=(2, 6))
        + layer_params("l0_reverse", 24, 5, 2, proj=(2, 6))
        + layer_params("l1", 24, 4, 2, proj=(2, 6))
        + layer_params("l1_reverse", 24, 4, 2, proj=(2, 6)),
    ),
    (
        lambda: nn.LSTM(3, 4, bias=False, proj_size=2),
        [("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 2)), ("weight_hr_l0", (2, 4))],
    ),
    (
        lambda: nn.RNN(3, 4, 2, "relu", False),
        [("weight_ih_l0", (4, 3)), ("weight_hh_l0", (4, 4)), ("weight_ih_l1", (4, 4)), ("weight_hh_l1", (4, 4))],
    ),
    (
        lambda: nn.LSTMCell(3, 4),
        [("weight_ih", (16, 3)), ("weight_hh", (16, 4)), ("bias_ih", (16,)), ("bias_hh", (16,))],
    ),
    (lambda: nn.GRUCell(3, 4, bias=False), [("weight_ih", (12, 3)), ("weight_hh", (12, 4))]),
    (
        lambda: nn.RNNCell(3, 5, nonlinearity="relu"),
        [("weight_ih", (5, 3)), ("weight_hh", (5, 5)), ("bias_ih", (5,)), ("bias_hh", (5,))],
    ),
]


@pytest.mark.parametrize("factory, expected", LAYOUTS)
def test_parameter_names_order_and_shapes_are_torchs(factory: Any, expected: List[Any]) -> None:
    module = factory()
    assert layout(module) == expected
    assert [name for name, _ in module.named_parameters()] == [name for name, _ in expected]
    for name, _ in expected:
        value = getattr(module, name)
        assert value.dtype == np.float32 and value.flags.c_contiguous
    if hasattr(module, "_flat_weights_names"):
        assert module._flat_weights_names == [name for name, _ in expected]
        assert [w.shape for group in module.all_weights for w in group] == [shape for _, shape in expected]


def test_absent_biases_read_as_none() -> None:
    cell = nn.LSTMCell(3, 4, bias=False)
    assert cell.bias_ih is None and cell.bias_hh is None


@pytest.mark.parametrize(
    "factory, hidden",
    [
        (lambda: nn.LSTM(3, 16, num_layers=2, proj_size=4), 16),
        (lambda: nn.GRUCell(7, 9), 9),
        (lambda: nn.RNN(2, 25), 25),
    ],
)
def test_init_is_uniform_in_plus_minus_one_over_sqrt_hidden_from_numpys_seed(factory: Any, hidden: int) -> None:
    np.random.seed(7)
    a = factory()
    np.random.seed(7)
    b = factory()
    bound = 1 / np.sqrt(hidden)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x, y)
        assert np.abs(x).max() <= bound, name
    everything = np.concatenate([v.ravel() for v in a.parameters()])
    assert everything.min() < -0.8 * bound and everything.max() > 0.8 * bound  # spans the range
    c = factory()
    assert not np.array_equal(next(a.parameters()), next(c.parameters()))


# -- golden cases: torch's fp16 dynamic modules == float modules with fp16-rounded weights -----------


def fp16_rounded_params(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    params = {k[len("params.") :]: v for k, v in arrays.items() if k.startswith("params.")}
    return {k: v.astype(np.float16).astype(np.float32) if k.startswith("weight") else v for k, v in params.items()}


GOLDEN_ATOL = 2e-6  # sigmoid/tanh may differ from torch's by ~1 ulp; see docs/numerics.md §5.3


@pytest.mark.parametrize("case", golden_cases("dynamic_lstm_float16_") + golden_cases("dynamic_gru_float16_"))
def test_golden_fp16_sequences(case: str) -> None:
    entry, arrays = load_case(case)
    cls = nn.LSTM if entry["module"] == "dynamic.LSTM" else nn.GRU
    module = cls(**entry["kwargs"]).eval()
    module.load_state_dict(fp16_rounded_params(arrays))
    if cls is nn.LSTM:
        hx = (arrays["h0"], arrays["c0"]) if "h0" in arrays else None
        y, (hn, cn) = module(arrays["x"], hx)
        np.testing.assert_allclose(cn, arrays["cn"], rtol=0, atol=GOLDEN_ATOL)
    else:
        y, hn = module(arrays["x"], arrays.get("h0"))
    np.testing.assert_allclose(y, arrays["y"], rtol=0, atol=GOLDEN_ATOL)
    np.testing.assert_allclose(hn, arrays["hn"], rtol=0, atol=GOLDEN_ATOL)
    assert y.dtype == hn.dtype == np.float32


CELL_CLASSES = {"dynamic.LSTMCell": nn.LSTMCell, "dynamic.GRUCell": nn.GRUCell, "dynamic.RNNCell": nn.RNNCell}


@pytest.mark.parametrize("case", [c for c in golden_cases("dynamic_") if "cell_float16_" in c])
def test_golden_fp16_cells(case: str) -> None:
    entry, arrays = load_case(case)
    cls = CELL_CLASSES[entry["module"]]
    module = cls(**entry["kwargs"]).eval()
    module.load_state_dict(fp16_rounded_params(arrays))
    state: Any = None
    if "h0" in arrays:
        state = (arrays["h0"], arrays["c0"]) if cls is nn.LSTMCell else arrays["h0"]
    hs, cs = [], []
    for x_t in arrays["x"]:
        state = module(x_t, state)
        if cls is nn.LSTMCell:
            hs.append(state[0])
            cs.append(state[1])
        else:
            hs.append(state)
    np.testing.assert_allclose(np.stack(hs), arrays["h"], rtol=0, atol=GOLDEN_ATOL)
    if cls is nn.LSTMCell:
        np.testing.assert_allclose(np.stack(cs), arrays["c"], rtol=0, atol=GOLDEN_ATOL)


def test_golden_cases_exist() -> None:
    assert len(golden_cases("dynamic_lstm_float16_")) >= 4 and len(golden_cases("dynamic_gru_float16_")) >= 2


# -- math against an independent float64 reference ------------------------------------------------------


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def reference_lstm_layer(params: Dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray, sfx: str = "l0"):
    """Textbook LSTM (torch's docs) with projection, float64, one direction, time-major."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    outputs = []
    for x_t in x.astype(np.float64):
        gates = x_t @ p[f"weight_ih_{sfx}"].T + p[f"bias_ih_{sfx}"] + h @ p[f"weight_hh_{sfx}"].T + p[f"bias_hh_{sfx}"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = sigmoid64(f) * c + sigmoid64(i) * np.tanh(g)
        h = sigmoid64(o) * np.tanh(c)
        if f"weight_hr_{sfx}" in p:
            h = h @ p[f"weight_hr_{sfx}"].T
        outputs.append(h)
    return np.stack(outputs), h, c


def reference_gru_layer(params: Dict[str, np.ndarray], x: np.ndarray, h: np.ndarray):
    p = {k: v.astype(np.float64) for k, v in params.items()}
    outputs = []
    for x_t in x.astype(np.float64):
        xr, xz, xn = np.split(x_t @ p["weight_ih_l0"].T + p["bias_ih_l0"], 3, axis=-1)
        hr, hz, hn = np.split(h @ p["weight_hh_l0"].T + p["bias_hh_l0"], 3, axis=-1)
        r, z = sigmoid64(xr + hr), sigmoid64(xz + hz)
        n = np.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs), h


def test_lstm_with_projection_matches_textbook_formula(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 5, 8, proj_size=3)
    x, h0, c0 = randn(rng, 6, 2, 5), randn(rng, 1, 2, 3), randn(rng, 1, 2, 8)
    y, (hn, cn) = m(x, (h0, c0))
    ry, rh, rc = reference_lstm_layer(m.state_dict(), x, h0[0], c0[0])
    np.testing.assert_allclose(y, ry, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hn[0], rh, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cn[0], rc, rtol=0, atol=1e-6)
    assert y.shape == (6, 2, 3) and hn.shape == (1, 2, 3) and cn.shape == (1, 2, 8)


def test_gru_matches_textbook_formula(rng: np.random.Generator) -> None:
    m = make(nn.GRU, 4, 6)
    x, h0 = randn(rng, 7, 3, 4), randn(rng, 1, 3, 6)
    y, hn = m(x, h0)
    ry, rh = reference_gru_layer(m.state_dict(), x, h0[0])
    np.testing.assert_allclose(y, ry, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hn[0], rh, rtol=0, atol=1e-6)


@pytest.mark.parametrize("nonlinearity, act", [("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0))])
def test_rnn_matches_textbook_formula_and_rnncell(rng: np.random.Generator, nonlinearity: str, act: Any) -> None:
    m = make(nn.RNN, 3, 5, nonlinearity=nonlinearity)
    cell = make(nn.RNNCell, 3, 5, nonlinearity=nonlinearity)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in m.state_dict().items()})
    x = randn(rng, 4, 2, 3)
    y, hn = m(x)
    p = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    h = np.zeros((2, 5))
    for t in range(4):
        h = act(x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"])
        np.testing.assert_allclose(y[t], h, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hn[0], h, rtol=0, atol=1e-6)
    state = None
    for t in range(4):
        state = cell(x[t], state)
        np.testing.assert_allclose(state, y[t], rtol=0, atol=1e-6)


@pytest.mark.parametrize("seq_cls, cell_cls", [(nn.LSTM, nn.LSTMCell), (nn.GRU, nn.GRUCell)])
def test_one_layer_module_equals_its_cell_stepped(rng: np.random.Generator, seq_cls: Any, cell_cls: Any) -> None:
    m = make(seq_cls, 4, 6)
    cell = make(cell_cls, 4, 6)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in m.state_dict().items()})
    x = randn(rng, 5, 3, 4)
    y, _ = m(x)
    state = None
    for t in range(5):
        state = cell(x[t], state)
        np.testing.assert_allclose(state[0] if seq_cls is nn.LSTM else state, y[t], rtol=0, atol=1e-6)


def test_second_layer_reads_both_directions_of_the_first(rng: np.random.Generator) -> None:
    m = make(nn.GRU, 3, 4, num_layers=2, bidirectional=True)
    x = randn(rng, 5, 2, 3)
    y, hn = m(x)
    sd = m.state_dict()
    first = make(nn.GRU, 3, 4, bidirectional=True)
    first.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    second = make(nn.GRU, 8, 4, bidirectional=True)
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    y0, h0 = first(x)
    y1, h1 = second(y0)
    np.testing.assert_array_equal(y, y1)
    np.testing.assert_array_equal(hn, np.concatenate([h0, h1]))  # rows layer*D + direction


def test_sigmoid_and_tanh_saturate_without_overflow_warnings(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 3, 4)
    x = randn(rng, 4, 2, 3) * np.float32(1e5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (hn, cn) = m(x)
    assert np.isfinite(y).all() and np.isfinite(cn).all()
    assert np.abs(y).max() <= 1


# -- shapes and layouts ---------------------------------------------------------------------------------


SEQ_CONFIGS = [
    (nn.LSTM, dict(num_layers=2, bidirectional=True)),
    (nn.LSTM, dict(proj_size=2)),
    (nn.GRU, dict(num_layers=2)),
    (nn.RNN, dict(bidirectional=True, nonlinearity="relu")),
]


def state_for(cls: Any, module: Any, batch: Tuple[int, ...], rng: np.random.Generator) -> Any:
    rows = module.num_layers * (2 if module.bidirectional else 1)
    h = randn(rng, rows, *batch, module.proj_size or module.hidden_size)
    if cls is nn.LSTM:
        return h, randn(rng, rows, *batch, module.hidden_size)
    return h


@pytest.mark.parametrize("cls, kwargs", SEQ_CONFIGS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input_equals_a_batch_of_one(
    rng: np.random.Generator, cls: Any, kwargs: Any, batch_first: bool
) -> None:
    m = make(cls, 3, 4, batch_first=batch_first, **kwargs)
    x = randn(rng, 5, 3)
    hx = state_for(cls, m, (), rng)
    y, hn = m(x, hx)
    batched_x = x[None] if batch_first else x[:, None]
    batched_hx = (hx[0][:, None], hx[1][:, None]) if cls is nn.LSTM else hx[:, None]
    by, bhn = m(batched_x, batched_hx)
    np.testing.assert_array_equal(y, by[0] if batch_first else by[:, 0])
    if cls is nn.LSTM:
        assert hn[0].ndim == 2 and hn[1].ndim == 2
        np.testing.assert_array_equal(hn[0], bhn[0][:, 0])
        np.testing.assert_array_equal(hn[1], bhn[1][:, 0])
    else:
        assert hn.ndim == 2
        np.testing.assert_array_equal(hn, bhn[:, 0])
    y2, _ = m(x)  # default state: zeros of the unbatched shape
    assert y2.shape == y.shape


@pytest.mark.parametrize("cls, kwargs", SEQ_CONFIGS)
def test_batch_first_is_the_transpose_and_never_applies_to_hx(rng: np.random.Generator, cls: Any, kwargs: Any) -> None:
    m = make(cls, 3, 4, **kwargs)
    mb = make(cls, 3, 4, batch_first=True, **kwargs)
    x = randn(rng, 5, 2, 3)
    hx = state_for(cls, m, (2,), rng)
    y, hn = m(x, hx)
    yb, hnb = mb(np.ascontiguousarray(x.transpose(1, 0, 2)), hx)
    np.testing.assert_array_equal(yb, y.transpose(1, 0, 2))
    assert yb.flags.c_contiguous
    for a, b in zip(hn if cls is nn.LSTM else (hn,), hnb if cls is nn.LSTM else (hnb,)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_cells_accept_unbatched_input(rng: np.random.Generator, cls: Any) -> None:
    m = make(cls, 3, 4)
    x, h, c = randn(rng, 3), randn(rng, 4), randn(rng, 4)
    hx = (h, c) if cls is nn.LSTMCell else h
    out = m(x, hx)
    batched = m(x[None], (h[None], c[None]) if cls is nn.LSTMCell else h[None])
    if cls is nn.LSTMCell:
        assert out[0].shape == out[1].shape == (4,)
        np.testing.assert_array_equal(out[0], batched[0][0])
        np.testing.assert_array_equal(out[1], batched[1][0])
    else:
        assert out.shape == (4,)
        np.testing.assert_array_equal(out, batched[0])
    zero_state = m(x)
    assert (zero_state[0] if cls is nn.LSTMCell else zero_state).shape == (4,)


def test_bidirectional_reverse_direction_by_hand() -> None:
    # ReLU RNN with unit weights and no bias: the forward direction is a running sum from the
    # start, the reverse one (input weight 2) a running sum from the end, written at its own step.
    m = nn.RNN(1, 1, nonlinearity="relu", bias=False, bidirectional=True)
    m.weight_ih_l0 = np.ones((1, 1))
    m.weight_hh_l0 = np.ones((1, 1))
    m.weight_ih_l0_reverse = np.full((1, 1), 2.0)
    m.weight_hh_l0_reverse = np.ones((1, 1))
    x = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    y, hn = m(x)
    np.testing.assert_array_equal(y, [[1, 12], [3, 10], [6, 6]])
    np.testing.assert_array_equal(hn, [[6], [12]])  # forward ends at t=2, reverse at t=0
    y, hn = m(x, np.array([[100.0], [-0.5]], dtype=np.float32))
    np.testing.assert_array_equal(y[:, 0], [101, 103, 106])
    np.testing.assert_array_equal(y[:, 1], [11.5, 9.5, 5.5])


def test_bidirectional_reverse_half_is_the_flipped_sequence(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 3, 4, bidirectional=True)
    backward = make(nn.LSTM, 3, 4)
    backward.load_state_dict({k.replace("_reverse", ""): v for k, v in m.state_dict().items() if "_reverse" in k})
    x = randn(rng, 6, 2, 3)
    y, (hn, cn) = m(x)
    yr, (hr, cr) = backward(np.ascontiguousarray(x[::-1]))
    np.testing.assert_array_equal(y[:, :, 4:], yr[::-1])
    np.testing.assert_array_equal(hn[1], hr[0])
    np.testing.assert_array_equal(cn[1], cr[0])


def test_proj_size_shapes(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 5, 6, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)
    x = randn(rng, 2, 7, 5)
    y, (hn, cn) = m(x)
    assert y.shape == (2, 7, 6) and hn.shape == (4, 2, 3) and cn.shape == (4, 2, 6)
    np.testing.assert_array_equal(y[:, -1, :3], hn[2])  # last layer, forward: its final h is its last output
    y, (hn, cn) = m(x[0])
    assert y.shape == (7, 6) and hn.shape == (4, 3) and cn.shape == (4, 6)
    with pytest.raises(ValueError, match=re.escape("Expected hidden[0] size (4, 2, 3), got [4, 2, 6]")):
        m(x, (np.zeros((4, 2, 6), np.float32), np.zeros((4, 2, 6), np.float32)))
    with pytest.raises(ValueError, match=re.escape("Expected hidden[1] size (4, 2, 6), got [4, 2, 3]")):
        m(x, (np.zeros((4, 2, 3), np.float32), np.zeros((4, 2, 3), np.float32)))


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_empty_batch_returns_empty_outputs(cls: Any) -> None:
    m = make(cls, 3, 4, num_layers=2, bidirectional=True)
    y, hn = m(np.zeros((5, 0, 3), np.float32))
    assert y.shape == (5, 0, 8)
    for h in hn if cls is nn.LSTM else (hn,):
        assert h.shape == (4, 0, 4)
    assert nn.GRUCell(3, 4)(np.zeros((0, 3), np.float32)).shape == (0, 4)


def test_outputs_are_new_float32_arrays_and_inputs_are_untouched(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 3, 4)
    x = rng.standard_normal((4, 2, 3))  # float64 is converted
    h0, c0 = randn(rng, 1, 2, 4), randn(rng, 1, 2, 4)
    copies = [a.copy() for a in (x, h0, c0)]
    y, (hn, cn) = m(x, (h0, c0))
    assert y.dtype == hn.dtype == cn.dtype == np.float32
    for a, b in zip((x, h0, c0), copies):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(hn, h0)


# -- lengths= -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (nn.LSTM, dict(num_layers=2, bidirectional=True)),
        (nn.LSTM, dict(proj_size=2, batch_first=True)),
        (nn.GRU, dict(bidirectional=True, batch_first=True)),
        (nn.RNN, dict(num_layers=2)),
    ],
)
def test_lengths_equal_running_each_sequence_alone(rng: np.random.Generator, cls: Any, kwargs: Any) -> None:
    m = make(cls, 3, 4, **kwargs)
    lengths = [5, 2, 3, 1]
    x = randn(rng, 5, 4, 3)
    for b, n in enumerate(lengths):
        x[n:, b] = np.nan  # padding never reaches a valid output
    hx = state_for(cls, m, (4,), rng)
    bf = m.batch_first
    y, hn = m(np.ascontiguousarray(x.transpose(1, 0, 2)) if bf else x, hx, lengths=np.array(lengths))
    if bf:
        y = y.transpose(1, 0, 2)
    assert np.isfinite(y).all()
    for b, n in enumerate(lengths):
        xb = x[:n, b : b + 1]
        hb = (hx[0][:, b : b + 1], hx[1][:, b : b + 1]) if cls is nn.LSTM else hx[:, b : b + 1]
        yb, hnb = m(np.ascontiguousarray(xb.transpose(1, 0, 2)) if bf else xb, hb)
        if bf:
            yb = yb.transpose(1, 0, 2)
        np.testing.assert_allclose(y[:n, b], yb[:, 0], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(y[n:, b], 0)
        for got, want in zip(hn if cls is nn.LSTM else (hn,), hnb if cls is nn.LSTM else (hnb,)):
            np.testing.assert_allclose(got[:, b], want[:, 0], rtol=0, atol=1e-6)


def test_full_lengths_change_nothing(rng: np.random.Generator) -> None:
    m = make(nn.GRU, 3, 4, bidirectional=True)
    x = randn(rng, 4, 3, 3)
    y, hn = m(x)
    yl, hnl = m(x, lengths=[4, 4, 4])
    np.testing.assert_array_equal(y, yl)
    np.testing.assert_array_equal(hn, hnl)


def test_lengths_validation(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 3, 4)
    x = randn(rng, 4, 2, 3)
    with pytest.raises(ValueError, match=r"one entry per batch element: expected shape \(2,\), got \(3,\)"):
        m(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="expected shape"):
        m(x, lengths=[[1, 2]])
    with pytest.raises(ValueError, match="between 0 and the sequence length 4, got -1"):
        m(x, lengths=[-1, 2])
    with pytest.raises(ValueError, match="between 0 and the sequence length 4, got 5"):
        m(x, lengths=[5, 2])
    with pytest.raises(TypeError, match="lengths must be an integer array, got dtype float64"):
        m(x, lengths=[1.0, 2.0])
    with pytest.raises(TypeError, match="lengths must be an integer array"):
        m(x, lengths=[True, True])
    with pytest.raises(ValueError, match="between 0 and the sequence length 4, got 5"):
        m(x[:, 0], lengths=5)


def test_a_zero_length_gives_zero_outputs_and_the_initial_state(rng: np.random.Generator) -> None:
    # The lengths contract shared with the quantized modules: 0..T, a length of 0 runs no step.
    m = make(nn.LSTM, 3, 4, bidirectional=True)
    x = randn(rng, 4, 2, 3)
    h0, c0 = randn(rng, 2, 2, 4), randn(rng, 2, 2, 4)
    y, (h, c) = m(x, (h0, c0), lengths=[0, 4])
    assert np.all(y[:, 0] == 0)
    np.testing.assert_array_equal(h[:, 0], h0[:, 0])
    np.testing.assert_array_equal(c[:, 0], c0[:, 0])
    # The other sequence runs as alone (up to the float GEMM's batch-size-dependent rounding).
    y_alone, (h_alone, c_alone) = m(x[:, 1:], (h0[:, 1:], c0[:, 1:]))
    np.testing.assert_allclose(y[:, 1:], y_alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h[:, 1:], h_alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c[:, 1:], c_alone, rtol=0, atol=1e-6)


def test_an_unbatched_input_takes_a_scalar_length(rng: np.random.Generator) -> None:
    m = make(nn.GRU, 3, 4)
    x = randn(rng, 5, 3)
    y, h = m(x, lengths=3)
    y_prefix, h_prefix = m(x[:3])
    np.testing.assert_array_equal(y[:3], y_prefix)
    assert np.all(y[3:] == 0)
    np.testing.assert_array_equal(h, h_prefix)
    np.testing.assert_array_equal(m(x, lengths=[3])[0], y)


# -- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(np.zeros((2, 3, 5, 1), np.float32)), "LSTM: Expected input to be 2D or 3D, got 4D instead"),
        (lambda m: m(np.zeros(3, np.float32)), "LSTM: Expected input to be 2D or 3D, got 1D instead"),
        (lambda m: m(np.zeros((4, 2, 5), np.float32)), "input.size(-1) must be equal to input_size. Expected 3, got 5"),
        (
            lambda m: m(np.zeros((4, 2, 3), np.float32), (np.zeros((2, 2, 4), np.float32),) * 2),
            "Expected hidden[0] size (1, 2, 4), got [2, 2, 4]",
        ),
        (
            lambda m: m(
                np.zeros((4, 2, 3), np.float32), (np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 4), np.float32))
            ),
            "Expected hidden[1] size (1, 2, 4), got [1, 3, 4]",
        ),
        (
            lambda m: m(
                np.zeros((4, 2, 3), np.float32), (np.zeros((1, 4), np.float32), np.zeros((1, 2, 4), np.float32))
            ),
            "For batched 3-D input, hx and cx should also be 3-D but got (2-D, 3-D) tensors",
        ),
        (
            lambda m: m(np.zeros((4, 3), np.float32), (np.zeros((1, 1, 4), np.float32),) * 2),
            "For unbatched 2-D input, hx and cx should also be 2-D but got (3-D, 3-D) tensors",
        ),
        (lambda m: m(np.zeros((0, 2, 3), np.float32)), "Expected sequence length to be larger than 0 in RNN"),
        (lambda m: m(np.zeros((0, 3), np.float32)), "Expected sequence length to be larger than 0 in RNN"),
    ],
)
def test_lstm_shape_errors(call: Any, message: str) -> None:
    m = make(nn.LSTM, 3, 4)
    with pytest.raises(ValueError, match=re.escape(message)):
        call(m)


@pytest.mark.parametrize(
    "cls, name",
    [
        (nn.GRU, "GRU: Expected input to be 2D or 3D, got 1D instead"),
        (nn.RNN, "RNN: Expected input to be 2D or 3D, got 1D tensor instead"),
    ],
)
def test_gru_and_rnn_shape_errors(cls: Any, name: str) -> None:
    m = make(cls, 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match=re.escape(name)):
        m(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=re.escape("Expected hidden size (2, 2, 4), got [1, 2, 4]")):
        m(np.zeros((5, 2, 3), np.float32), np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("For batched 3-D input, hx should also be 3-D but got 2-D tensor")):
        m(np.zeros((5, 2, 3), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(
        ValueError, match=re.escape("For unbatched 2-D input, hx should also be 2-D but got 3-D tensor")
    ):
        m(np.zeros((5, 3), np.float32), np.zeros((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match=re.escape("input.size(-1) must be equal to input_size. Expected 3, got 2")):
        m(np.zeros((5, 2), np.float32))


@pytest.mark.parametrize(
    "cls, hx, message",
    [
        (nn.LSTMCell, (np.zeros((3, 4)), np.zeros((3, 4))), "Input batch size 2 doesn't match hidden[0] batch size 3"),
        (
            nn.LSTMCell,
            (np.zeros((2, 4)), np.zeros((2, 5))),
            "hidden[1] has inconsistent hidden_size: got 5, expected 4",
        ),
        (nn.GRUCell, np.zeros((3, 4)), "Input batch size 2 doesn't match hidden batch size 3"),
        (nn.RNNCell, np.zeros((2, 6)), "hidden has inconsistent hidden_size: got 6, expected 4"),
        (nn.GRUCell, np.zeros((1, 2, 4)), "GRUCell: Expected hidden to be 1D or 2D, got 3D instead"),
        (
            nn.LSTMCell,
            (np.zeros((2, 4)), np.zeros((1, 2, 4))),
            "LSTMCell: Expected hx[1] to be 1D or 2D, got 3D instead",
        ),
        (nn.RNNCell, np.zeros(4), "RNNCell: Expected hidden to be 2D like the input, got 1D"),
    ],
)
def test_cell_state_errors(cls: Any, hx: Any, message: str) -> None:
    m = make(cls, 3, 4)
    with pytest.raises(ValueError, match=re.escape(message)):
        m(np.zeros((2, 3), np.float32), hx)


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_cell_input_errors(cls: Any) -> None:
    m = make(cls, 3, 4)
    with pytest.raises(ValueError, match=re.escape("input has inconsistent input_size: got 5, expected 3")):
        m(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=re.escape("input has inconsistent input_size: got 5, expected 3")):
        m(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__}: Expected input to be 1D or 2D, got 3D instead")):
        m(np.zeros((1, 2, 3), np.float32))


@pytest.mark.parametrize(
    "call",
    [
        lambda: make(nn.LSTM, 3, 4)(np.zeros((4, 2, 3), np.int64)),
        lambda: make(nn.GRU, 3, 4)(np.zeros((4, 2, 3), np.float32), np.zeros((1, 2, 4), np.int32)),
        lambda: make(nn.RNNCell, 3, 4)(np.zeros((2, 3), np.complex64)),
        lambda: make(nn.LSTMCell, 3, 4)(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)),
        lambda: make(nn.LSTM, 3, 4)(np.zeros((4, 2, 3), np.float32), np.zeros((1, 2, 4), np.float32)),
    ],
)
def test_type_errors(call: Any) -> None:
    with pytest.raises(TypeError):
        call()


def test_hx_must_be_a_pair_for_lstm() -> None:
    with pytest.raises(TypeError, match=re.escape("LSTM: hx must be a tuple (h_0, c_0), got ndarray")):
        make(nn.LSTM, 3, 4)(np.zeros((4, 2, 3), np.float32), np.zeros((1, 2, 4), np.float32))


# -- constructors -------------------------------------------------------------------------------------------

DROPOUT_MESSAGE = "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"


@pytest.mark.parametrize(
    "factory, error, message",
    [
        (lambda: nn.LSTM(3, 4, dropout=1.5), ValueError, DROPOUT_MESSAGE),
        (lambda: nn.GRU(3, 4, dropout=-0.1), ValueError, DROPOUT_MESSAGE),
        (lambda: nn.RNN(3, 4, dropout="0.5"), ValueError, DROPOUT_MESSAGE),
        (lambda: nn.LSTM(3, 4, dropout=True), ValueError, DROPOUT_MESSAGE),
        (lambda: nn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
        (
            lambda: nn.LSTM(3, 4, proj_size=-1),
            ValueError,
            "proj_size should be a positive integer or zero to disable projections",
        ),
        (
            lambda: nn.RNN(3, 4, nonlinearity="gelu"),
            ValueError,
            "Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'.",
        ),
        (
            lambda: nn.RNNCell(3, 4, nonlinearity="sigmoid"),
            ValueError,
            "Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'.",
        ),
        (lambda: nn.GRU(3, 0), ValueError, "hidden_size must be greater than zero"),
        (lambda: nn.LSTM(0, 4), ValueError, "input_size must be greater than zero"),
        (lambda: nn.RNN(3, 4, num_layers=0), ValueError, "num_layers must be greater than zero"),
        (lambda: nn.LSTM(3, 4.0), TypeError, "hidden_size should be of type int, got: float"),
        (lambda: nn.GRU("3", 4), TypeError, "input_size should be of type int, got: str"),
        (lambda: nn.LSTM(3, 4, bias=1), TypeError, "bias should be of type bool, got: int"),
        (lambda: nn.GRU(3, 4, batch_first=None), TypeError, "batch_first should be of type bool, got: NoneType"),
        (lambda: nn.LSTMCell(3, -1), ValueError, "input_size and hidden_size must be >= 0, got 3 and -1"),
        (lambda: nn.GRUCell(3.5, 4), TypeError, "input_size should be of type int, got: float"),
    ],
)
def test_constructor_validation(factory: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        factory()


def test_gru_and_rnn_take_no_proj_size() -> None:
    with pytest.raises(TypeError):
        nn.GRU(3, 4, proj_size=2)  # type: ignore[call-arg]


def test_dropout_with_one_layer_warns() -> None:
    with pytest.warns(
        UserWarning, match="non-zero dropout expects num_layers greater than 1, but got dropout=0.5 and num_layers=1"
    ):
        nn.LSTM(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(3, 4, num_layers=2, dropout=0.5)
        nn.LSTM(3, 4, dropout=0.0)


def test_numpy_integers_are_accepted_as_sizes() -> None:
    m = nn.GRU(np.int64(3), np.int32(4), num_layers=np.int64(2))
    assert m.weight_ih_l1.shape == (12, 4) and type(m.hidden_size) is int


def test_rnn_takes_nonlinearity_as_fourth_positional_argument(rng: np.random.Generator) -> None:
    m = make(nn.RNN, 2, 3, 1, "relu", False, True)
    assert m.nonlinearity == "relu" and m.mode == "RNN_RELU" and m.bias is False and m.batch_first is True
    y, _ = m(randn(rng, 2, 5, 2))
    assert (y >= 0).all()


@pytest.mark.parametrize(
    "factory, text",
    [
        (lambda: nn.LSTM(10, 20), "LSTM(10, 20)"),
        (lambda: nn.LSTM(10, 20, num_layers=2, batch_first=True), "LSTM(10, 20, num_layers=2, batch_first=True)"),
        (
            lambda: nn.LSTM(10, 20, 3, False, True, 0.25, True, 5),
            "LSTM(10, 20, proj_size=5, num_layers=3, bias=False, batch_first=True, dropout=0.25, bidirectional=True)",
        ),
        (lambda: nn.GRU(6, 4, bidirectional=True), "GRU(6, 4, bidirectional=True)"),
        (lambda: nn.RNN(6, 4, nonlinearity="relu"), "RNN(6, 4)"),  # torch's repr omits it too
        (lambda: nn.LSTMCell(10, 20), "LSTMCell(10, 20)"),
        (lambda: nn.GRUCell(10, 20, bias=False), "GRUCell(10, 20, bias=False)"),
        (lambda: nn.RNNCell(10, 20, nonlinearity="relu"), "RNNCell(10, 20, nonlinearity=relu)"),
        (lambda: nn.RNNCell(10, 20), "RNNCell(10, 20)"),
    ],
)
def test_repr_is_torchs(factory: Any, text: str) -> None:
    assert repr(factory()) == text


# -- state dicts, training mode ----------------------------------------------------------------------------


def test_state_dict_round_trip(rng: np.random.Generator) -> None:
    a = make(nn.LSTM, 3, 6, num_layers=2, bidirectional=True, proj_size=2, seed=1)
    b = make(nn.LSTM, 3, 6, num_layers=2, bidirectional=True, proj_size=2, seed=2)
    x = randn(rng, 4, 2, 3)
    assert not np.array_equal(a(x)[0], b(x)[0])
    sd = a.state_dict()
    assert list(sd) == a._flat_weights_names
    b.load_state_dict(sd)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    sd["weight_hh_l1"] = np.zeros((24, 6), np.float32)
    with pytest.raises(RuntimeError, match="size mismatch for weight_hh_l1"):
        b.load_state_dict(sd)


def test_cell_state_dict_round_trip_and_parameter_assignment(rng: np.random.Generator) -> None:
    a, b = make(nn.GRUCell, 3, 4, seed=1), make(nn.GRUCell, 3, 4, seed=2)
    b.load_state_dict(a.state_dict())
    x = randn(rng, 2, 3)
    np.testing.assert_array_equal(a(x), b(x))
    b.bias_hh = np.zeros(12)
    assert b.bias_hh.dtype == np.float32 and not np.array_equal(a(x), b(x))


def test_modules_start_in_training_mode_and_dropout_only_applies_then(rng: np.random.Generator) -> None:
    m = make(nn.LSTM, 3, 8, num_layers=3, dropout=0.5).train()
    assert nn.GRU(3, 4).training is True
    reference = make(nn.LSTM, 3, 8, num_layers=3)
    reference.load_state_dict(m.state_dict())
    x = randn(rng, 5, 4, 3)
    expected, _ = reference(x)
    np.random.seed(3)
    first, _ = m(x)
    np.random.seed(4)
    second, _ = m(x)
    np.random.seed(3)
    again, _ = m(x)
    assert not np.allclose(first, expected) and not np.allclose(first, second)
    np.testing.assert_array_equal(first, again)  # numpy's global generator drives the masks
    m.eval()
    np.testing.assert_array_equal(m(x)[0], expected)


def test_dropout_one_zeroes_the_input_of_the_next_layer(rng: np.random.Generator) -> None:
    m = make(nn.GRU, 3, 4, num_layers=2, dropout=1.0).train()
    top = make(nn.GRU, 4, 4)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    y, hn = m(randn(rng, 5, 2, 3))
    y_top, h_top = top(np.zeros((5, 2, 4), np.float32))
    np.testing.assert_array_equal(y, y_top)
    np.testing.assert_array_equal(hn[1], h_top[0])


def test_dropout_is_not_applied_after_the_last_layer(rng: np.random.Generator) -> None:
    with pytest.warns(UserWarning):
        m = make(nn.RNN, 3, 4, dropout=0.9)
    m.train()
    x = randn(rng, 5, 2, 3)
    y_train, _ = m(x)
    np.testing.assert_array_equal(y_train, m.eval()(x)[0])
