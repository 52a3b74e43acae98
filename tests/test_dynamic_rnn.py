"""API behaviour of the dynamic quantized LSTM/GRU/RNN and cells: shapes, unbatched input,
batch_first, lengths, bias=False, proj_size, nonlinearities, errors, state dicts, pickling, repr.

Semantics are checked against a float64 numpy reference of the recurrences: a module with
float16 weights (nothing quantized) must agree with it to float32 rounding, an int8 module to
quantization noise. Bit-exactness with PyTorch is the golden tests' job.
"""

from __future__ import annotations

import copy
import pickle
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import float16_dynamic_qconfig, per_channel_dynamic_qconfig

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# -- float stand-ins and a float64 reference -----------------------------------------------------


def float_rnn(
    mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, bidirectional: bool = False,
    proj_size: int = 0, seed: int = 0, qconfig: Any = None, batch_first: bool = False,
) -> SimpleNamespace:
    """A float module stand-in with torch's attribute and parameter names; weights are
    float16-representable so that the float16 modules hold them exactly."""
    rng = np.random.default_rng(seed)
    directions = 2 if bidirectional else 1
    out = proj_size or hidden_size
    params: Dict[str, np.ndarray] = {}

    def rand(*shape: int) -> np.ndarray:
        return (rng.uniform(-0.6, 0.6, shape)).astype(np.float16).astype(np.float32)

    for layer in range(num_layers):
        width = input_size if layer == 0 else directions * out
        for suffix in ("", "_reverse")[:directions]:
            tag = f"_l{layer}{suffix}"
            params["weight_ih" + tag] = rand(GATES[mode] * hidden_size, width)
            params["weight_hh" + tag] = rand(GATES[mode] * hidden_size, out)
            if bias:
                params["bias_ih" + tag] = rand(GATES[mode] * hidden_size)
                params["bias_hh" + tag] = rand(GATES[mode] * hidden_size)
            if proj_size:
                params["weight_hr" + tag] = rand(proj_size, hidden_size)
    return SimpleNamespace(
        mode=mode, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size,
        bias=bias, batch_first=batch_first, dropout=0.0, bidirectional=bidirectional,
        nonlinearity="relu" if mode == "RNN_RELU" else "tanh", qconfig=qconfig, **params,
    )


def float_cell(mode: str, input_size: int, hidden_size: int, bias: bool = True, seed: int = 0, qconfig: Any = None) -> SimpleNamespace:
    rnn = float_rnn(mode, input_size, hidden_size, bias=bias, seed=seed)
    params = {k.replace("_l0", ""): v for k, v in vars(rnn).items() if k.startswith(("weight_", "bias_")) and "_l0" in k}
    return SimpleNamespace(
        input_size=input_size,
        hidden_size=hidden_size,
        bias=bias,
        nonlinearity="relu" if mode == "RNN_RELU" else "tanh",
        qconfig=qconfig,
        **params,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_step(mode: str, p: Dict[str, np.ndarray], tag: str, x: np.ndarray, h: np.ndarray, c: Optional[np.ndarray]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """One float64 step of one batch row."""
    ig = p["weight_ih" + tag] @ x + p.get("bias_ih" + tag, 0.0)
    hg = p["weight_hh" + tag] @ h + p.get("bias_hh" + tag, 0.0)
    if mode == "LSTM":
        i, f, g, o = np.split(ig + hg, 4)
        assert c is not None
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        if "weight_hr" + tag in p:
            h = p["weight_hr" + tag] @ h
        return h, c
    if mode == "GRU":
        ir, iz, in_ = np.split(ig, 3)
        hr, hz, hn = np.split(hg, 3)
        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    s = ig + hg
    return (np.tanh(s) if mode == "RNN_TANH" else np.maximum(s, 0.0)), None


def reference(mod: SimpleNamespace, x: np.ndarray, h0: Optional[np.ndarray] = None, c0: Optional[np.ndarray] = None, lengths: Optional[List[int]] = None) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """A float64 time-major ``(y, h_n, c_n)``; each batch element runs alone over its length."""
    p = {k: v.astype(np.float64) for k, v in vars(mod).items() if k.startswith(("weight_", "bias_"))}
    steps, batch, _ = x.shape
    directions = 2 if mod.bidirectional else 1
    out, hidden = mod.proj_size or mod.hidden_size, mod.hidden_size
    states = mod.num_layers * directions
    y = np.zeros((steps, batch, directions * out))
    h_n = np.zeros((states, batch, out))
    c_n = np.zeros((states, batch, hidden))
    for b in range(batch):
        n = steps if lengths is None else lengths[b]
        layer_in = x[:n, b].astype(np.float64)
        for layer in range(mod.num_layers):
            layer_out = np.zeros((n, directions * out))
            for d in range(directions):
                idx = layer * directions + d
                tag = f"_l{layer}" + ("_reverse" if d else "")
                h = np.zeros(out) if h0 is None else h0[idx, b].astype(np.float64)
                c = np.zeros(hidden) if c0 is None else c0[idx, b].astype(np.float64)
                for t in (reversed(range(n)) if d else range(n)):
                    h, c_new = reference_step(mod.mode, p, tag, layer_in[t], h, c if mod.mode == "LSTM" else None)
                    c = c if c_new is None else c_new
                    layer_out[t, d * out : (d + 1) * out] = h
                h_n[idx, b], c_n[idx, b] = h, c
            layer_in = layer_out
        y[:n, b] = layer_in
    return y, h_n, (c_n if mod.mode == "LSTM" else None)


MODULES = {"LSTM": nnqd.LSTM, "GRU": nnqd.GRU, "RNN_TANH": nnqd.RNN, "RNN_RELU": nnqd.RNN}


def run(module: Any, x: Any, hx: Any = None, lengths: Any = None) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """``(y, h_n, c_n or None)`` of any of the sequence modules."""
    y, state = module(x, hx, lengths=lengths)
    return (y, state[0], state[1]) if isinstance(state, tuple) else (y, state, None)


# -- semantics against the float reference -----------------------------------------------------

CONFIGS = [
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=3, num_layers=2, bidirectional=True)),
    ("LSTM", dict(bias=False)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False, bidirectional=True)),
    ("RNN_TANH", dict(num_layers=2, bidirectional=True)),
    ("RNN_RELU", dict(num_layers=2)),
]


@pytest.mark.parametrize("mode,config", CONFIGS)
def test_float16_modules_follow_the_float_recurrence(mode: str, config: Dict[str, Any]) -> None:
    mod = float_rnn(mode, 5, 6, seed=1, qconfig=float16_dynamic_qconfig, **config)
    q = MODULES[mode].from_float(mod)
    assert q.dtype is ferroq.float16
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 4, 5)).astype(np.float32)
    states = q.num_layers * (2 if q.bidirectional else 1)
    h0 = rng.standard_normal((states, 4, q.proj_size or 6)).astype(np.float32) * 0.5
    c0 = rng.standard_normal((states, 4, 6)).astype(np.float32) * 0.5 if mode == "LSTM" else None
    lengths = [7, 3, 5, 1]
    y, h_n, c_n = run(q, x, (h0, c0) if mode == "LSTM" else h0, lengths=lengths)
    ry, rh, rc = reference(mod, x, h0, c0, lengths)
    np.testing.assert_allclose(y, ry, atol=2e-5)
    np.testing.assert_allclose(h_n, rh, atol=2e-5)
    if mode == "LSTM":
        np.testing.assert_allclose(c_n, rc, atol=2e-5)


@pytest.mark.parametrize("mode,config", CONFIGS)
def test_int8_modules_follow_the_float_recurrence_to_quantization_noise(mode: str, config: Dict[str, Any]) -> None:
    mod = float_rnn(mode, 5, 6, seed=3, **config)
    q = MODULES[mode].from_float(mod)
    x = np.random.default_rng(4).standard_normal((6, 3, 5)).astype(np.float32)
    y, h_n, _ = run(q, x)
    ry, rh, _ = reference(mod, x)
    assert np.abs(y - ry).max() < 0.05
    assert np.abs(h_n - rh).max() < 0.05


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_cells_follow_the_float_step(mode: str) -> None:
    cls = {"LSTM": nnqd.LSTMCell, "GRU": nnqd.GRUCell, "RNN_TANH": nnqd.RNNCell}[mode]
    mod = float_cell(mode, 4, 5, seed=5, qconfig=float16_dynamic_qconfig)
    q = cls.from_float(mod)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    h = rng.standard_normal((3, 5)).astype(np.float32)
    c = rng.standard_normal((3, 5)).astype(np.float32)
    out = q(x, (h, c)) if mode == "LSTM" else q(x, h)
    p = {k + "_l0": v.astype(np.float64) for k, v in vars(mod).items() if k.startswith(("weight_", "bias_"))}
    for b in range(3):
        rh, rc = reference_step(mode, p, "_l0", x[b].astype(np.float64), h[b].astype(np.float64), c[b].astype(np.float64) if mode == "LSTM" else None)
        np.testing.assert_allclose(out[0][b] if mode == "LSTM" else out[b], rh, atol=2e-5)
        if mode == "LSTM":
            np.testing.assert_allclose(out[1][b], rc, atol=2e-5)


# -- shapes and layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_unbatched_input_equals_a_batch_of_one(mode: str) -> None:
    q = MODULES[mode].from_float(float_rnn(mode, 3, 4, num_layers=2, bidirectional=True, seed=7))
    x = np.random.default_rng(8).standard_normal((5, 3)).astype(np.float32)
    y, h_n, c_n = run(q, x)
    by, bh, bc = run(q, x[:, None, :])
    assert y.shape == (5, 8) and h_n.shape == (4, 4)
    np.testing.assert_array_equal(y, by[:, 0])
    np.testing.assert_array_equal(h_n, bh[:, 0])
    if c_n is not None:
        np.testing.assert_array_equal(c_n, bc[:, 0])
    # An unbatched initial state is 2-D.
    hx = np.full((4, 4), 0.25, np.float32)
    state = (hx, hx) if mode == "LSTM" else hx
    np.testing.assert_array_equal(run(q, x, state)[0], run(q, x[:, None], (hx[:, None], hx[:, None]) if mode == "LSTM" else hx[:, None])[0][:, 0])


def test_batch_first_transposes_input_and_output_but_not_the_states() -> None:
    mod = float_rnn("LSTM", 3, 4, bidirectional=True, seed=9)
    q = nnqd.LSTM.from_float(mod)
    mod.batch_first = True
    qb = nnqd.LSTM.from_float(mod)
    assert qb.batch_first
    x = np.random.default_rng(10).standard_normal((5, 2, 3)).astype(np.float32)
    y, (h, c) = q(x, lengths=[5, 2])
    yb, (hb, cb) = qb(np.ascontiguousarray(x.transpose(1, 0, 2)), lengths=[5, 2])
    np.testing.assert_array_equal(yb, y.transpose(1, 0, 2))
    np.testing.assert_array_equal(hb, h)
    np.testing.assert_array_equal(cb, c)


def test_an_empty_batch_gives_empty_outputs() -> None:
    q = nnqd.LSTM(3, 4, num_layers=2, bidirectional=True)
    y, (h, c) = q(np.zeros((5, 0, 3), np.float32))
    assert y.shape == (5, 0, 8) and h.shape == (4, 0, 4) and c.shape == (4, 0, 4)
    cell = nnqd.GRUCell(3, 4)
    assert cell(np.zeros((0, 3), np.float32)).shape == (0, 4)


def test_other_float_dtypes_are_converted() -> None:
    q = nnqd.GRU.from_float(float_rnn("GRU", 3, 4, seed=11))
    x = np.random.default_rng(12).standard_normal((4, 2, 3))
    np.testing.assert_array_equal(q(x)[0], q(x.astype(np.float32))[0])


# -- lengths -----------------------------------------------------------------------------------


def test_lengths_give_zeros_past_the_end_and_h_n_at_the_last_valid_step() -> None:
    q = nnqd.LSTM.from_float(float_rnn("LSTM", 3, 4, seed=13))
    x = np.random.default_rng(14).standard_normal((6, 3, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    y, (h, c) = q(x, lengths=lengths)
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0)
        np.testing.assert_array_equal(h[0, b], y[n - 1, b])


def test_padding_values_never_change_valid_outputs() -> None:
    q = nnqd.GRU.from_float(float_rnn("GRU", 3, 4, num_layers=2, bidirectional=True, seed=15))
    rng = np.random.default_rng(16)
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    lengths = [6, 2, 4]
    y, h = q(x, lengths=lengths)
    noisy = x.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = rng.standard_normal(noisy[n:, b].shape) * 1e4
    y2, h2 = q(noisy, lengths=lengths)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h)
    # Without lengths, the padding enters the shared activation range (PyTorch's behaviour).
    assert not np.array_equal(q(noisy)[0][:2], q(x)[0][:2])


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_a_batch_with_lengths_equals_each_sequence_alone_with_float16_weights(mode: str) -> None:
    # float16 weights quantize nothing, so batch elements do not share a scale.
    q = MODULES[mode].from_float(float_rnn(mode, 3, 4, num_layers=2, bidirectional=True, seed=17, qconfig=float16_dynamic_qconfig))
    x = np.random.default_rng(18).standard_normal((5, 3, 3)).astype(np.float32)
    lengths = [3, 5, 1]
    y, h_n, c_n = run(q, x, lengths=lengths)
    for b, n in enumerate(lengths):
        ay, ah, ac = run(q, x[:n, b : b + 1])
        np.testing.assert_array_equal(y[:n, b], ay[:, 0])
        np.testing.assert_array_equal(h_n[:, b], ah[:, 0])
        if c_n is not None:
            np.testing.assert_array_equal(c_n[:, b], ac[:, 0])


def test_one_sequence_with_a_length_equals_its_valid_prefix_alone_with_int8_weights() -> None:
    q = nnqd.LSTM.from_float(float_rnn("LSTM", 3, 4, num_layers=2, bidirectional=True, seed=19))
    x = np.random.default_rng(20).standard_normal((6, 1, 3)).astype(np.float32)
    y, (h, c) = q(x, lengths=[4])
    ay, (ah, ac) = q(x[:4])
    np.testing.assert_array_equal(y[:4], ay)
    np.testing.assert_array_equal(h, ah)
    np.testing.assert_array_equal(c, ac)
    # Full lengths are the same as none.
    np.testing.assert_array_equal(q(x, lengths=[6])[0], q(x)[0])


def test_a_zero_length_keeps_the_initial_state() -> None:
    q = nnqd.GRU.from_float(float_rnn("GRU", 3, 4, seed=21))
    h0 = np.full((1, 2, 4), 0.5, np.float32)
    y, h = q(np.ones((3, 2, 3), np.float32), h0, lengths=[0, 3])
    assert np.all(y[:, 0] == 0)
    np.testing.assert_array_equal(h[0, 0], h0[0, 0])


# -- options -----------------------------------------------------------------------------------


def test_bias_false_equals_zero_biases() -> None:
    mod = float_rnn("GRU", 3, 4, bias=False, seed=22)
    q = nnqd.GRU.from_float(mod)
    assert q.get_bias() == {} and not q.bias
    for name in ("bias_ih_l0", "bias_hh_l0"):
        setattr(mod, name, np.zeros(12, np.float32))
    mod.bias = True
    with_zero = nnqd.GRU.from_float(mod)
    x = np.random.default_rng(23).standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(q(x)[0], with_zero(x)[0])
    cell = nnqd.LSTMCell.from_float(float_cell("LSTM", 3, 4, bias=False))
    assert set(cell.get_weight()) == {"weight_ih", "weight_hh"} and cell.get_bias() == {}


def test_proj_size_shapes_and_weights() -> None:
    mod = float_rnn("LSTM", 3, 6, num_layers=2, bidirectional=True, proj_size=2, seed=24)
    q = nnqd.LSTM.from_float(mod)
    assert q.proj_size == 2
    assert q.get_weight()["weight_hr_l1_reverse"].shape == (2, 6)
    assert q.get_weight()["weight_hh_l0"].shape == (24, 2)
    assert q.get_weight()["weight_ih_l1"].shape == (24, 4)
    y, (h, c) = q(np.random.default_rng(25).standard_normal((5, 3, 3)).astype(np.float32))
    assert y.shape == (5, 3, 4) and h.shape == (4, 3, 2) and c.shape == (4, 3, 6)
    with pytest.raises(ValueError, match=r"Expected hidden\[0\] size \(4, 3, 2\), got \[4, 3, 6\]"):
        q(np.zeros((5, 3, 3), np.float32), (np.zeros((4, 3, 6), np.float32), np.zeros((4, 3, 6), np.float32)))


def test_rnn_nonlinearities() -> None:
    tanh = nnqd.RNN.from_float(float_rnn("RNN_TANH", 3, 4, seed=26))
    relu = nnqd.RNN.from_float(float_rnn("RNN_RELU", 3, 4, seed=26))
    assert (tanh.nonlinearity, relu.nonlinearity) == ("tanh", "relu")
    x = np.random.default_rng(27).standard_normal((5, 2, 3)).astype(np.float32)
    y_tanh, y_relu = tanh(x)[0], relu(x)[0]
    assert np.all(np.abs(y_tanh) < 1) and np.all(y_relu >= 0) and np.any(y_relu > 1)
    cell = nnqd.RNNCell.from_float(float_cell("RNN_RELU", 3, 4))
    assert cell.nonlinearity == "relu" and np.all(cell(x[0]) >= 0)


def test_per_channel_weights() -> None:
    q = nnqd.GRU.from_float(float_rnn("GRU", 3, 4, seed=28, qconfig=per_channel_dynamic_qconfig))
    w = q.get_weight()["weight_ih_l0"]
    assert w.qscheme() is ferroq.per_channel_affine and w.q_per_channel_scales().shape == (12,)
    assert np.isfinite(q(np.ones((2, 1, 3), np.float32))[0]).all()


def test_each_matrix_gets_its_own_observer() -> None:
    mod = float_rnn("LSTM", 3, 4, seed=29)
    mod.weight_hh_l0 = mod.weight_hh_l0 * 10
    w = nnqd.LSTM.from_float(mod).get_weight()
    assert w["weight_hh_l0"].q_scale() == pytest.approx(10 * w["weight_ih_l0"].q_scale(), rel=0.2)


def test_reduce_range_false_uses_the_full_activation_range() -> None:
    mod = float_rnn("LSTM", 3, 4, seed=30)
    q = nnqd.LSTM.from_float(mod)
    assert q.reduce_range
    x = np.random.default_rng(31).standard_normal((5, 2, 3)).astype(np.float32)
    y = q(x)[0]
    q.reduce_range = False
    y_full = q(x)[0]
    ry = reference(mod, x)[0]
    assert not np.array_equal(y, y_full)
    assert np.abs(y_full - ry).mean() < np.abs(y - ry).mean()
    assert "reduce_range=False" in repr(q)
    assert nnqd.GRUCell(3, 4, reduce_range=False).reduce_range is False


@pytest.mark.parametrize("cls", [nnqd.LSTM, nnqd.GRUCell])
def test_reduce_range_is_held_by_the_packed_object_through_weights_state_dicts_and_pickles(cls: Any) -> None:
    q = cls(3, 4, reduce_range=False)
    assert q._packed.reduce_range is False
    assert "reduce_range" not in q.__dict__
    q.set_weight_bias({**q.get_weight(), **q.get_bias()})  # new packed weights keep the setting
    assert q._packed.reduce_range is False
    q.load_state_dict(cls(3, 4).state_dict())  # state dicts do not hold it
    assert q.reduce_range is False and q._packed.reduce_range is False
    clone = pickle.loads(pickle.dumps(q))
    assert clone.reduce_range is False and clone._packed.reduce_range is False
    clone.reduce_range = True
    assert clone._packed.reduce_range is True and q.reduce_range is False


# -- errors ------------------------------------------------------------------------------------


def test_sequence_input_errors() -> None:
    lstm = nnqd.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D input instead"):
        lstm(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 5"):
        lstm(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match="Expected sequence length to be larger than 0 in RNN"):
        lstm(np.zeros((0, 2, 3), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        lstm(np.zeros((2, 2, 3), np.int64))
    h = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(2, 2, 4\), got \[1, 2, 4\]"):
        lstm(np.zeros((3, 2, 3), np.float32), (h, h[:1]))
    with pytest.raises(ValueError, match=r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 3-D\) tensors"):
        lstm(np.zeros((3, 2, 3), np.float32), (h[0], h))
    with pytest.raises(TypeError, match="tuple"):
        lstm(np.zeros((3, 2, 3), np.float32), h)
    gru = nnqd.GRU(3, 4)
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 2, 4\), got \[1, 3, 4\]"):
        gru(np.zeros((3, 2, 3), np.float32), np.zeros((1, 3, 4), np.float32))
    with pytest.raises(ValueError, match="For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"):
        gru(np.zeros((3, 3), np.float32), np.zeros((1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN or infinity"):
        gru(np.full((3, 2, 3), np.nan, np.float32))


def test_lengths_errors() -> None:
    gru = nnqd.GRU(3, 4)
    x = np.zeros((3, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"one entry per batch element: expected shape \(2,\), got \(3,\)"):
        gru(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="between 0 and the sequence length 3, got 4"):
        gru(x, lengths=[1, 4])
    with pytest.raises(ValueError, match="got -1"):
        gru(x, lengths=[-1, 2])
    with pytest.raises(TypeError, match="integer array"):
        gru(x, lengths=[1.0, 2.0])


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: nnqd.LSTM(3, 4, dropout=1.5), ValueError, "dropout should be a number in range"),
        (lambda: nnqd.GRU(3, 0), ValueError, "hidden_size must be greater than zero"),
        (lambda: nnqd.GRU(3, 4.0), TypeError, "hidden_size should be of type int"),  # type: ignore[arg-type]
        (lambda: nnqd.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
        (lambda: nnqd.RNN(3, 4, nonlinearity="gelu"), ValueError, "Unknown nonlinearity 'gelu'"),
        (lambda: nnqd.RNNCell(3, 4, nonlinearity="gelu"), ValueError, "Unknown nonlinearity 'gelu'"),
        (lambda: nnqd.LSTMCell(3, 4, dtype=ferroq.quint8), NotImplementedError, "qint8 or ferroq.float16"),
    ],
)
def test_constructor_errors(build: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build()


def test_dropout_on_a_single_layer_warns() -> None:
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nnqd.GRU(3, 4, dropout=0.5)


def test_cell_errors() -> None:
    cell = nnqd.LSTMCell(3, 4)
    h = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="input has inconsistent input_size: got 5, expected 3"):
        cell(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Input batch size 2 doesn't match hidden\[1\] batch size 3"):
        cell(np.zeros((2, 3), np.float32), (h, np.zeros((3, 4), np.float32)))
    with pytest.raises(ValueError, match=r"hidden\[0\] has inconsistent hidden_size: got 5, expected 4"):
        cell(np.zeros((2, 3), np.float32), (np.zeros((2, 5), np.float32), h))
    with pytest.raises(ValueError, match="LSTMCell: Expected input to be 1D or 2D, got 3D instead"):
        cell(np.zeros((1, 2, 3), np.float32))
    gru = nnqd.GRUCell(3, 4)
    with pytest.raises(ValueError, match="hidden has inconsistent hidden_size: got 2, expected 4"):
        gru(np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32))


def test_cells_take_unbatched_input() -> None:
    cell = nnqd.LSTMCell.from_float(float_cell("LSTM", 3, 4, seed=32))
    x = np.random.default_rng(33).standard_normal(3).astype(np.float32)
    h, c = cell(x)
    bh, bc = cell(x[None])
    assert h.shape == (4,) and c.shape == (4,)
    np.testing.assert_array_equal(h, bh[0])
    np.testing.assert_array_equal(c, bc[0])
    np.testing.assert_array_equal(cell(x, (h, c))[0], cell(x[None], (h[None], c[None]))[0][0])


def test_from_float_rejects_the_wrong_kind_of_module() -> None:
    gru = float_rnn("GRU", 3, 4)
    with pytest.raises(TypeError, match="mode 'GRU'"):
        nnqd.LSTM.from_float(gru)
    del gru.mode  # torch modules have a mode, other look-alikes may not: the gate rows tell
    with pytest.raises(TypeError, match=r"weight_ih_l0 has 12 rows, expected 4 x hidden_size = 16"):
        nnqd.LSTM.from_float(gru)
    with pytest.raises(TypeError, match="has no 'input_size'"):
        nnqd.GRU.from_float(SimpleNamespace(hidden_size=4))
    with pytest.raises(TypeError, match="mode 'LSTM'"):
        nnqd.RNN.from_float(float_rnn("LSTM", 3, 4))
    with pytest.raises(TypeError, match=r"weight_ih has 12 rows, expected 4 x hidden_size = 16"):
        nnqd.LSTMCell.from_float(float_cell("GRU", 3, 4))
    mod = float_rnn("GRU", 3, 4)
    del mod.weight_hh_l0
    with pytest.raises(ValueError, match="no parameter 'weight_hh_l0'"):
        nnqd.GRU.from_float(mod)


# -- weights, state dicts, pickling, repr ----------------------------------------------------------


def _outputs(module: Any) -> List[np.ndarray]:
    x = np.random.default_rng(34).standard_normal((4, 2, module.input_size)).astype(np.float32)
    if isinstance(module, nnqd.rnn.RNNBase):
        y, state = module(x)
        return [y] + list(state if isinstance(state, tuple) else (state,))
    out = module(x[0])
    return list(out) if isinstance(out, tuple) else [out]


ROUND_TRIP = [
    lambda: nnqd.LSTM.from_float(float_rnn("LSTM", 3, 5, num_layers=2, bidirectional=True, proj_size=2, seed=35)),
    lambda: nnqd.GRU.from_float(float_rnn("GRU", 3, 4, seed=36, qconfig=per_channel_dynamic_qconfig)),
    lambda: nnqd.RNN.from_float(float_rnn("RNN_RELU", 3, 4, bias=False, seed=37, qconfig=float16_dynamic_qconfig)),
    lambda: nnqd.LSTMCell.from_float(float_cell("LSTM", 3, 4, seed=38)),
    lambda: nnqd.RNNCell.from_float(float_cell("RNN_TANH", 3, 4, seed=39, qconfig=float16_dynamic_qconfig)),
]


def _blank_like(module: Any) -> Any:
    """A freshly constructed module with the same hyperparameters and dtype (zero weights): a
    state dict holds no dtype, so loading one never changes the module's."""
    if isinstance(module, nnqd.rnn.RNNBase):
        kwargs = dict(num_layers=module.num_layers, bias=module.bias, bidirectional=module.bidirectional, dtype=module.dtype)
        if isinstance(module, nnqd.LSTM):
            kwargs["proj_size"] = module.proj_size
        if isinstance(module, nnqd.RNN):
            kwargs["nonlinearity"] = module.nonlinearity
        return type(module)(module.input_size, module.hidden_size, **kwargs)
    kwargs = dict(bias=module.bias, dtype=module.dtype)
    if isinstance(module, nnqd.RNNCell):
        kwargs["nonlinearity"] = module.nonlinearity
    return type(module)(module.input_size, module.hidden_size, **kwargs)


@pytest.mark.parametrize("make", ROUND_TRIP)
def test_state_dict_round_trips_bit_exactly(make: Any) -> None:
    module = make()
    state = module.state_dict()
    assert set(state) == set(module.get_weight()) | set(module.get_bias())
    fresh = _blank_like(module)
    fresh.load_state_dict(state)
    assert fresh.dtype is module.dtype
    for a, b in zip(_outputs(fresh), _outputs(module)):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    for name, w in module.get_weight().items():
        other = fresh.get_weight()[name]
        assert w._same_as(other) if isinstance(w, ferroq.QTensor) else np.array_equal(w, other)


def test_load_state_dict_checks_everything_before_changing_anything() -> None:
    module = ROUND_TRIP[0]()
    before = _outputs(module)
    state = module.state_dict()
    bad = dict(state)
    bad["weight_hh_l1_reverse"] = ferroq.quantize_per_tensor(np.zeros((20, 3), np.float32), 0.1, 0, ferroq.qint8)
    with pytest.raises(RuntimeError, match="weight_hh_l1_reverse must have shape"):
        module.load_state_dict(bad)
    missing = dict(state)
    del missing["bias_ih_l0"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "bias_ih_l0"'):
        module.load_state_dict(missing)
    for a, b in zip(_outputs(module), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", ROUND_TRIP)
def test_pickle_and_deepcopy(make: Any) -> None:
    module = make()
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert repr(clone) == repr(module)
        for a, b in zip(_outputs(clone), _outputs(module)):
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_repr() -> None:
    assert repr(nnqd.LSTM(6, 4, num_layers=2, bidirectional=True)) == "DynamicQuantizedLSTM(6, 4, num_layers=2, bidirectional=True)"
    assert repr(nnqd.GRU(6, 4, bias=False, batch_first=True)) == "DynamicQuantizedGRU(6, 4, bias=False, batch_first=True)"
    assert repr(nnqd.LSTM(6, 4, proj_size=2)) == "DynamicQuantizedLSTM(6, 4, proj_size=2)"
    assert repr(nnqd.RNN(6, 4, nonlinearity="relu")) == "DynamicQuantizedRNN(6, 4, nonlinearity=relu)"
    assert repr(nnqd.LSTMCell(6, 4)) == "DynamicQuantizedLSTMCell(6, 4)"
    assert repr(nnqd.RNNCell(6, 4, nonlinearity="relu")) == "DynamicQuantizedRNNCell(6, 4, nonlinearity=relu)"
    assert repr(nnqd.GRUCell(6, 4, dtype=ferroq.float16)) == "DynamicQuantizedGRUCell(6, 4, dtype=ferroq.float16)"


def test_set_weight_bias_validates_keys_and_types() -> None:
    gru = nnqd.GRU(3, 4)
    weights = {**gru.get_weight(), **gru.get_bias()}
    with pytest.raises(ValueError, match="missing \\['bias_hh_l0'\\]"):
        gru.set_weight_bias({k: v for k, v in weights.items() if k != "bias_hh_l0"})
    with pytest.raises(TypeError, match="weight_ih_l0 must be a qint8 QTensor"):
        gru.set_weight_bias({**weights, "weight_ih_l0": np.zeros((12, 3), np.float32)})
