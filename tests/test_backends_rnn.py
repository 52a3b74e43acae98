"""Recurrent layers on every kernel path: LSTM, GRU, RNN and the cells give the same bits on
each path this CPU supports (the SIMD sigmoid, tanh and fused epilogues equal the scalar
reference), over shapes that exercise full and partial vector blocks, the sigmoid's SLEEF/glibc
split, int8 (per tensor and per channel, with and without bias), float16, and more than one
thread (a batch of 64 makes the hidden GEMM split between two), batches around the AMX tile
heights (16, 17, 33), and NaN and infinity through float16 weights."""

from __future__ import annotations

from conftest import QUANTIZED_PROBE_HEADER, assert_every_path_gives_scalar_bits

PROBE = QUANTIZED_PROBE_HEADER + r"""
rng = np.random.default_rng(11)
cases = [
    ("LSTM", {}, 5, 3), ("LSTM", {"bidirectional": True, "num_layers": 2}, 40, 2), ("LSTM", {"proj_size": 7}, 33, 4),
    ("LSTM", {}, 64, 1), ("GRU", {}, 47, 3), ("GRU", {"bias": False}, 96, 2), ("RNN", {"nonlinearity": "relu"}, 17, 3),
    ("RNN", {}, 130, 2), ("LSTM", {}, 256, 64), ("LSTM", {}, 40, 16), ("GRU", {}, 44, 17), ("RNN", {}, 48, 33),
]
for (mode, kwargs, hidden, batch) in cases:
    for qname, qconfig in qconfigs.items():
        if batch == 64 and qname != "tensor":
            continue  # the large case (its hidden GEMM splits between threads) once
        np.random.seed(hidden)
        float_module = getattr(ferroq.nn, mode)(9, hidden, **kwargs)
        float_module.qconfig = qconfig
        q = getattr(nnqd, mode).from_float(float_module)
        x = (rng.standard_normal((6, batch, 9)) * 3).astype(np.float32)
        lengths = np.array([6, 4, 1, 0][:batch]) if 1 < batch <= 4 else None
        y, state = q(x, None, lengths)
        states = state if isinstance(state, tuple) else (state,)
        key = f"{mode}-{kwargs}-{hidden}-{qname}"
        out[key] = digest((y, *states))
for mode in ["LSTM", "GRU", "RNN"]:
    # float16 weights let infinity and NaN through: the NaNs must have the same bits too.
    np.random.seed(5)
    float_module = getattr(ferroq.nn, mode)(9, 40, proj_size=3) if mode == "LSTM" else getattr(ferroq.nn, mode)(9, 40)
    float_module.qconfig = qconfigs["fp16"]
    q = getattr(nnqd, mode).from_float(float_module)
    x = rng.standard_normal((5, 2, 9)).astype(np.float32)
    x[1, 0, 2], x[2, 1, 1], x[3, 0, 0] = np.inf, np.nan, -np.inf
    y, state = q(x)
    out[f"{mode}-nonfinite"] = digest((y, *(state if isinstance(state, tuple) else (state,))))
for mode in ["LSTMCell", "GRUCell", "RNNCell"]:
    for hidden in [3, 32, 50]:
        np.random.seed(hidden)
        q = getattr(nnqd, mode).from_float(getattr(ferroq.nn, mode)(9, hidden))
        state = None
        values = []
        for _ in range(4):
            state = q((rng.standard_normal((2, 9)) * 3).astype(np.float32), state)
            values += list(state) if isinstance(state, tuple) else [state]
        out[f"{mode}-{hidden}"] = digest(values)
json.dump(out, sys.stdout)
"""


def test_every_supported_path_gives_identical_recurrent_outputs():
    assert_every_path_gives_scalar_bits(PROBE, threads=(1, 2))
