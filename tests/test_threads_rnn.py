"""Recurrent steps split between threads: a layer with int8 weights and gates of at least two
aligned blocks (hidden sizes 256, 384, 512 and 640 here) splits a step by hidden units (a large
one, or a batch-1 one from 256 units), the others (float16 weights, a projection, hidden sizes 300
and 500, Elman layers) split a step of at least 16 running rows in row shares; on every kernel path
the result on 2 threads has the bits of 1 thread (and of the scalar path): LSTM (with proj_size,
bidirectional, two layers, lengths that leave an odd number of running rows), GRU, RNN tanh/relu,
per-channel and float16 weights, and batch-1 sequences. The gate-aligned packing changes no value
and no byte count."""

from __future__ import annotations

import numpy as np

from conftest import QUANTIZED_PROBE_HEADER, assert_every_path_gives_scalar_bits
from ferroq import _core

PROBE = QUANTIZED_PROBE_HEADER + r"""
rng = np.random.default_rng(17)
# (mode, kwargs, hidden, qconfig): each hidden projection has >= 2**22 multiply-accumulates at 17 rows.
cases = [
    ("LSTM", {"num_layers": 2, "bidirectional": True}, 256, "tensor"),
    ("LSTM", {"proj_size": 200}, 320, "channel"),
    ("LSTM", {}, 256, "fp16"),
    ("GRU", {"bidirectional": True}, 300, "tensor"),
    ("GRU", {}, 300, "fp16"),
    ("RNN", {}, 500, "channel"),
    ("RNN", {"nonlinearity": "relu"}, 500, "tensor"),
    ("LSTM", {"bidirectional": True}, 512, "channel"),
    ("GRU", {}, 640, "channel"),
    ("RNN", {"nonlinearity": "relu"}, 512, "tensor"),
]
batch = 21
lengths = np.array([3] * 17 + [2, 1, 2, 1])
for mode, kwargs, hidden, qname in cases:
    np.random.seed(hidden)
    float_module = getattr(ferroq.nn, mode)(9, hidden, **kwargs)
    float_module.qconfig = qconfigs[qname]
    q = getattr(nnqd, mode).from_float(float_module)
    x = (rng.standard_normal((3, batch, 9)) * 3).astype(np.float32)
    for name, run_lengths in [("lengths", lengths), ("full", None)]:
        y, state = q(x, None, run_lengths)
        states = state if isinstance(state, tuple) else (state,)
        out[f"{mode}-{kwargs}-{hidden}-{qname}-{name}"] = digest((y, *states))
json.dump(out, sys.stdout)
"""


BATCH_ONE_PROBE = QUANTIZED_PROBE_HEADER + r"""
rng = np.random.default_rng(19)
# Batch-1 steps of gates cut in halves (256 and 384 units) split by hidden units; the Elman layer's
# one gate is not cut (its steps run on one thread).
for mode, kwargs, hidden, qname in [
    ("LSTM", {}, 256, "tensor"),
    ("GRU", {"bidirectional": True}, 256, "channel"),
    ("LSTM", {"num_layers": 2}, 384, "channel"),
    ("RNN", {}, 256, "tensor"),
]:
    np.random.seed(hidden)
    float_module = getattr(ferroq.nn, mode)(40, hidden, **kwargs)
    float_module.qconfig = qconfigs[qname]
    q = getattr(nnqd, mode).from_float(float_module)
    x = (rng.standard_normal((5, 1, 40)) * 3).astype(np.float32)
    y, state = q(x)
    states = state if isinstance(state, tuple) else (state,)
    out[f"{mode}-{kwargs}-{hidden}-{qname}"] = digest((y, *states))
json.dump(out, sys.stdout)
"""


def test_split_steps_give_the_bits_of_one_thread_on_every_path():
    assert len(assert_every_path_gives_scalar_bits(PROBE, threads=(1, 2))) == 20


def test_batch_one_split_steps_give_the_bits_of_one_thread_on_every_path():
    assert len(assert_every_path_gives_scalar_bits(BATCH_ONE_PROBE, threads=(1, 2))) == 4


def test_gate_packing_keeps_values_and_bytes():
    rng = np.random.default_rng(5)
    n, k = 4 * 512, 40
    weight = rng.integers(-128, 128, (n, k), dtype=np.int8)
    scales = rng.uniform(0.001, 0.01, n).astype(np.float32)
    zero_points = rng.integers(-3, 4, n).astype(np.int32)
    bias = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((3, k)).astype(np.float32)
    plain = _core.PackedLinear(weight, scales, zero_points, bias)
    for gates in (1, 3, 4):
        packed = _core.PackedLinear(weight, scales, zero_points, bias, gates=gates)
        assert np.array_equal(packed.weight(), weight)
        assert packed.nbytes == plain.nbytes
        assert packed.forward(x).tobytes() == plain.forward(x).tobytes()
        assert packed.forward(x[:1]).tobytes() == plain.forward(x[:1]).tobytes()
    zeros = _core.PackedLinear.zeros(n, k, bias, gates=4)
    assert not zeros.weight().any() and zeros.nbytes == _core.PackedLinear.zeros(n, k, bias).nbytes
