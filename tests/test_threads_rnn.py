"""Recurrent steps split between threads: a step with at least 16 running rows and enough work in
its hidden projection runs its GEMM and cell in row shares on the intra-op threads; on every kernel
path the result on 2 threads has the bits of 1 thread (and of the scalar path): LSTM (with
proj_size, bidirectional, two layers, lengths that leave an odd number of running rows), GRU, RNN
tanh/relu, per-channel and float16 weights."""

from __future__ import annotations

from conftest import QUANTIZED_PROBE_HEADER, assert_every_path_gives_scalar_bits

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


def test_split_steps_give_the_bits_of_one_thread_on_every_path():
    assert len(assert_every_path_gives_scalar_bits(PROBE, threads=(1, 2))) == 14
