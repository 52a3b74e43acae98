"""Side-by-side timing of a dynamic int8 Linear: ferroq vs onnxruntime vs numpy float32 (and
torch's dynamic Linear when torch is importable), in one process, 1 and 2 threads.

Each figure is the median of several repetitions of a timed loop, whole op included (quantizing
the input, the GEMM, the epilogue and the Python call). Run: ``python benches/compare.py``
(``--quick`` for fewer repetitions, ``--shapes 1x768x768,...`` to choose shapes, ``--json F`` to
save the figures, ``--plot F.png`` for a chart; onnxruntime and onnx from PyPI are needed for
the onnxruntime column, matplotlib for the chart).

The recurrent parts: the LSTM at each ``--threads`` count vs onnxruntime's ``DynamicQuantizeLSTM``,
with GOPS and, given ``--peak-gmacs`` (one core's probe of the path's step from
``cargo bench --no-default-features --bench gemm_u8i8``: ``vnni_peak``, ``amx_peak`` or, on an
AVX2-only machine, ``avx2_peak``), the share of the int8 peak over the whole
LSTM; a GRU and batch-1 cells vs numpy float32, and what a batch-1 call costs beyond its
arithmetic (each module's call against a bare ``_core`` call); an LSTMCell(128) streamed at batch 1; a GRU encoder
with a greedy GRUCell + Linear decoder (H=256). ``--only lstm,stream`` runs some parts only
(``linear``, ``lstm``, ``cells``, ``stream``, ``decoder``; ``rnn`` for all recurrent parts).

Where ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are set (some machines set them to work around old
OpenBLAS bugs) they slow numpy's float32 column; unset both for this command alone to give numpy
its best kernel: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benches/compare.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import ferroq
from ferroq._demo import time_call
from ferroq.nn.quantized import dynamic as nnqd

DEFAULT_SHAPES = [(1, 768, 768), (1, 1024, 4096), (16, 768, 768), (32, 768, 3072), (128, 1024, 1024), (512, 1024, 1024)]


class OnnxLinear:
    """An onnxruntime session running ``x @ W^T + b`` quantized by ``onnxruntime.quantization.quantize_dynamic``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, threads: int) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
        from onnxruntime.quantization import QuantType, quantize_dynamic

        k = weight.shape[1]
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "wt"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])],
            "linear",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", weight.shape[0]])],
            [numpy_helper.from_array(np.ascontiguousarray(weight.T), "wt"), numpy_helper.from_array(bias, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
            onnx.save(model, src)
            logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": x})[0]


def torch_linear(weight: np.ndarray, bias: np.ndarray) -> Optional[Callable[[np.ndarray], Any]]:
    try:
        import torch
    except ImportError:
        return None
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(weight))
        lin.bias.copy_(torch.from_numpy(bias))
    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)[0]

    def run(x: np.ndarray) -> Any:
        with torch.no_grad():
            return q(torch.from_numpy(x))

    return run


def measure(shapes: List[Tuple[int, int, int]], threads: int, repeats: int, budget: float) -> List[Dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(0)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    ferroq.set_num_threads(threads)
    for m, k, n in shapes:
        weight = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        lin = ferroq.nn.Linear(k, n)
        lin.weight, lin.bias = weight, bias
        q = nnqd.Linear.from_float(lin)
        row: Dict[str, Any] = {"shape": f"{m}x{k}x{n}", "threads": threads, "macs": m * k * n}
        row["ferroq"] = time_call(lambda: q(x), repeats, budget)
        row["numpy_f32"] = time_call(lambda: x @ weight.T + bias, repeats, budget)
        try:
            onnx_lin = OnnxLinear(weight, bias, threads)
            row["onnxruntime"] = time_call(lambda: onnx_lin(x), repeats, budget)
        except ImportError:
            row["onnxruntime"] = None
        torch_run = torch_linear(weight, bias)
        row["torch"] = time_call(lambda: torch_run(x), repeats, budget) if torch_run else None
        rows.append(row)
        print_row(row)
    return rows


def fmt_us(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:10.1f}"


def ratio(other: Optional[float], ours: float) -> str:
    return "-" if other is None else f"{other / ours:5.2f}x"


HEADER = (
    f"{'shape (MxKxN)':>16} {'thr':>3} | {'ferroq us':>10} {'GOPS':>6} | {'onnxrt us':>10} {'ort/fq':>6} | "
    f"{'torch us':>10} {'pt/fq':>6} | {'numpy f32':>10} {'np/fq':>6}"
)


def print_row(r: Dict[str, Any]) -> None:
    gops = 2 * r["macs"] / r["ferroq"] / 1e9
    print(
        f"{r['shape']:>16} {r['threads']:>3} | {fmt_us(r['ferroq'])} {gops:6.1f} | {fmt_us(r['onnxruntime'])} "
        f"{ratio(r['onnxruntime'], r['ferroq']):>6} | {fmt_us(r['torch'])} {ratio(r['torch'], r['ferroq']):>6} | "
        f"{fmt_us(r['numpy_f32'])} {ratio(r['numpy_f32'], r['ferroq']):>6}",
        flush=True,
    )


RNN_SHAPES = [(50, 1, 256, 256), (50, 16, 512, 512), (20, 64, 1024, 1024)]


class OnnxLSTM:
    """onnxruntime's ``DynamicQuantizeLSTM``, made by ``quantize_dynamic`` from an ONNX LSTM."""

    def __init__(self, input_size: int, hidden: int, threads: int, rng: np.random.Generator) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
        from onnxruntime.quantization import QuantType, quantize_dynamic

        scale = 1 / np.sqrt(hidden)
        w = (rng.standard_normal((1, 4 * hidden, input_size)) * scale).astype(np.float32)
        r = (rng.standard_normal((1, 4 * hidden, hidden)) * scale).astype(np.float32)
        b = (rng.standard_normal((1, 8 * hidden)) * scale).astype(np.float32)
        node = helper.make_node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=hidden)
        graph = helper.make_graph(
            [node],
            "lstm",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", input_size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r"), numpy_helper.from_array(b, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
            onnx.save(model, src)
            logging.getLogger().setLevel(logging.ERROR)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            ops = {n.op_type for n in onnx.load(dst).graph.node}
            if "DynamicQuantizeLSTM" not in ops:
                raise RuntimeError(f"onnxruntime did not quantize the LSTM (ops: {ops})")
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> Any:
        return self.session.run(None, {"x": x})


def numpy_lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray):
    gates = x @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = np.split(gates, 4, axis=-1)
    i, f, o = (1 / (1 + np.exp(-v)) for v in (i, f, o))
    c = f * c + i * np.tanh(g)
    return o * np.tanh(c), c


def numpy_gru_step(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
    xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r = 1 / (1 + np.exp(-(xr + hr)))
    z = 1 / (1 + np.exp(-(xz + hz)))
    n = np.tanh(xn + r * hn)
    return (h - n) * z + n


def lstm_macs(t: int, b: int, i: int, h: int) -> int:
    """The int8 multiply-accumulates of a one-layer LSTM over a sequence: both projections."""
    return t * b * 4 * h * (i + h)


def import_torch(threads: int) -> Any:
    """torch with ``threads`` intra-op threads, or None when it is not importable."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def measure_lstm(threads: int, repeats: int, budget: float, peak_gmacs: Optional[float]) -> None:
    """LSTM vs onnxruntime / torch on ``threads`` threads, with GOPS and the share of the int8 peak
    (``peak_gmacs`` per core times ``threads``) over the whole LSTM."""
    rng = np.random.default_rng(0)
    ferroq.set_num_threads(threads)
    torch = import_torch(threads)
    print(
        f"\n{'LSTM (T,B,I,H)':>22} {'thr':>3} | {'ferroq ms':>10} {'GOPS':>6} {'peak':>5} | {'onnxrt ms':>10} {'ort/fq':>7} | "
        f"{'torch ms':>9} {'pt/fq':>6} | us/step"
    )
    for t, b, i, h in RNN_SHAPES:
        np.random.seed(0)
        q = nnqd.LSTM.from_float(ferroq.nn.LSTM(i, h))
        x = rng.standard_normal((t, b, i)).astype(np.float32)
        ours = time_call(lambda: q(x), repeats, budget)
        try:
            ort_lstm = OnnxLSTM(i, h, threads, rng)
            ort_time: Optional[float] = time_call(lambda: ort_lstm(x), repeats, budget)
        except ImportError:
            ort_time = None
        torch_time = torch_dynamic_seconds(torch, "LSTM", h, x, repeats, budget)
        gmacs = lstm_macs(t, b, i, h) / ours / 1e9
        share = "-" if peak_gmacs is None else f"{gmacs / (peak_gmacs * threads):5.0%}"
        ms = lambda v: "-" if v is None else f"{v * 1e3:10.3f}"  # noqa: E731
        print(
            f"{str((t, b, i, h)):>22} {threads:>3} | {ms(ours)} {2 * gmacs:6.1f} {share:>5} | {ms(ort_time)} {ratio(ort_time, ours):>7} | "
            f"{ms(torch_time):>9} {ratio(torch_time, ours):>6} | {ours / t * 1e6:.1f}",
            flush=True,
        )


def torch_dynamic_seconds(torch: Any, name: str, hidden_size: int, x: np.ndarray, repeats: int, budget: float) -> Optional[float]:
    """Seconds per call on ``x`` of torch's dynamic quantized one-layer ``torch.nn.<name>`` with
    ``hidden_size`` (and ``x``'s features as input size); None without torch."""
    if torch is None:
        return None
    cls = getattr(torch.nn, name)
    tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(cls(x.shape[-1], hidden_size)), {cls}, dtype=torch.qint8)
    tx = torch.from_numpy(x)
    with torch.no_grad():
        return time_call(lambda: tq(tx), repeats, budget)


def measure_gru_and_cells(repeats: int, budget: float) -> None:
    """GRU vs torch / numpy, and batch-1 cells vs numpy: 1 thread."""
    rng = np.random.default_rng(0)
    ferroq.set_num_threads(1)
    torch = import_torch(1)
    t, b, i, h = 50, 16, 512, 512
    np.random.seed(0)
    float_gru = ferroq.nn.GRU(i, h)
    q = nnqd.GRU.from_float(float_gru)
    x = rng.standard_normal((t, b, i)).astype(np.float32)
    ours = time_call(lambda: q(x), repeats, budget)
    w_ih, w_hh, b_ih, b_hh = float_gru.weight_ih_l0, float_gru.weight_hh_l0, float_gru.bias_ih_l0, float_gru.bias_hh_l0

    def numpy_gru() -> None:
        hidden = np.zeros((b, h), np.float32)
        for step in range(t):
            hidden = numpy_gru_step(x[step], hidden, w_ih, w_hh, b_ih, b_hh)

    numpy_time = time_call(numpy_gru, repeats, budget)
    torch_time = torch_dynamic_seconds(torch, "GRU", h, x, repeats, budget)
    print(f"\nGRU (50,16,512,512): ferroq {ours * 1e3:.2f} ms; numpy float loop {numpy_time * 1e3:.2f} ms "
          f"({numpy_time / ours:.2f}x); torch dynamic {'-' if torch_time is None else f'{torch_time * 1e3:.2f} ms ({torch_time / ours:.2f}x)'}")

    print(f"\n{'cell, batch 1, H=256':>22} | {'ferroq us':>10} | {'numpy f32 us':>12} {'np/fq':>6}")
    x1 = rng.standard_normal((1, 256)).astype(np.float32)
    h1 = np.zeros((1, 256), np.float32)
    np.random.seed(0)
    for name, float_cell in [("LSTMCell", ferroq.nn.LSTMCell(256, 256)), ("GRUCell", ferroq.nn.GRUCell(256, 256)), ("RNNCell", ferroq.nn.RNNCell(256, 256))]:
        qcell = getattr(nnqd, name).from_float(float_cell)
        w_ih, w_hh, b_ih, b_hh = float_cell.weight_ih, float_cell.weight_hh, float_cell.bias_ih, float_cell.bias_hh
        if name == "LSTMCell":
            state = (h1, h1.copy())
            ours = time_call(lambda: qcell(x1, state), repeats, budget)
            theirs = time_call(lambda: numpy_lstm_step(x1, h1, h1, w_ih, w_hh, b_ih + b_hh), repeats, budget)
        elif name == "GRUCell":
            ours = time_call(lambda: qcell(x1, h1), repeats, budget)
            theirs = time_call(lambda: numpy_gru_step(x1, h1, w_ih, w_hh, b_ih, b_hh), repeats, budget)
        else:
            ours = time_call(lambda: qcell(x1, h1), repeats, budget)
            theirs = time_call(lambda: np.tanh(x1 @ w_ih.T + b_ih + h1 @ w_hh.T + b_hh), repeats, budget)
        print(f"{name:>22} | {ours * 1e6:10.2f} | {theirs * 1e6:12.2f} {theirs / ours:5.2f}x")


def measure_call_floor(repeats: int, budget: float) -> None:
    """What a batch-1 call costs beyond its arithmetic: the floor is a bare ``_core`` call doing no
    work; each module's call is timed whole (``module(x, ...)``) and at the ``_core`` level (its
    packed object's lean entry point), 1 thread."""
    rng = np.random.default_rng(0)
    ferroq.set_num_threads(1)
    floor = time_call(ferroq._core.get_num_threads, repeats, budget)
    print(f"\n{'batch-1 call, 1 thread':>24} | {'module us':>9} | {'_core us':>8} | {'module / floor':>14}")
    print(f"{'bare _core call (floor)':>24} | {floor * 1e6:9.3f} | {'':>8} | {1.0:13.1f}x")
    np.random.seed(0)
    calls: List[Tuple[str, Any, Tuple[Any, ...], str]] = []
    for k in (4, 128):
        x = rng.standard_normal((1, k)).astype(np.float32)
        calls.append((f"Linear 1x{k}x{k}", nnqd.Linear.from_float(ferroq.nn.Linear(k, k)), (x,), "try_forward"))
    x, h = rng.standard_normal((1, 128)).astype(np.float32), rng.standard_normal((1, 128)).astype(np.float32)
    for name in ("LSTMCell", "GRUCell", "RNNCell"):
        module = getattr(nnqd, name).from_float(getattr(ferroq.nn, name)(128, 128))
        calls.append((f"{name}(128)", module, (x, (h, h) if name == "LSTMCell" else h), "try_cell"))
    for label, module, args, entry in calls:
        core = getattr(module._packed, entry)
        ours = time_call(lambda: module(*args), repeats, budget)
        bare = time_call(lambda: core(*args), repeats, budget)
        print(f"{label:>24} | {ours * 1e6:9.3f} | {bare * 1e6:8.3f} | {ours / floor:13.1f}x")


STREAM_STEPS = 100


def measure_stream(repeats: int, budget: float) -> None:
    """An LSTMCell(128, 128) streamed at batch 1 from Python, its state fed back each step: ferroq vs
    the same cell in numpy float32 vs torch's dynamic LSTMCell; time per step, 1 thread."""
    rng = np.random.default_rng(0)
    ferroq.set_num_threads(1)
    torch = import_torch(1)
    np.random.seed(0)
    float_cell = ferroq.nn.LSTMCell(128, 128)
    qcell = nnqd.LSTMCell.from_float(float_cell)
    xs = rng.standard_normal((STREAM_STEPS, 1, 128)).astype(np.float32)
    zeros = np.zeros((1, 128), np.float32)
    w_ih, w_hh, bias = float_cell.weight_ih, float_cell.weight_hh, float_cell.bias_ih + float_cell.bias_hh

    def ours() -> None:
        state = (zeros, zeros)
        for x in xs:
            state = qcell(x, state)

    def numpy_cell() -> None:
        h, c = zeros, zeros
        for x in xs:
            h, c = numpy_lstm_step(x, h, c, w_ih, w_hh, bias)

    ours_s = time_call(ours, repeats, budget) / STREAM_STEPS
    numpy_s = time_call(numpy_cell, repeats, budget) / STREAM_STEPS
    torch_s = None
    if torch is not None:
        tcell = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.LSTMCell(128, 128)), {torch.nn.LSTMCell}, dtype=torch.qint8)[0]
        txs, tzeros = torch.from_numpy(xs), torch.zeros(1, 128)

        def torch_cell() -> None:
            state = (tzeros, tzeros)
            for x in txs:
                state = tcell(x, state)

        with torch.no_grad():
            torch_s = time_call(torch_cell, repeats, budget) / STREAM_STEPS
    print(
        f"\nLSTMCell(128) streamed, batch 1, per step: ferroq {ours_s * 1e6:.2f} us; numpy float32 {numpy_s * 1e6:.2f} us "
        f"({numpy_s / ours_s:.2f}x); torch dynamic {'-' if torch_s is None else f'{torch_s * 1e6:.2f} us ({torch_s / ours_s:.2f}x)'}",
        flush=True,
    )


DECODER_HIDDEN, DECODER_VOCAB, SOURCE_WORDS, TARGET_WORDS = 256, 1000, 20, 20


def greedy_decoder(encoder: Any, cell: Any, out: Any, embedding: Any, source: Any, argmax: Any) -> Callable[[], None]:
    """:func:`measure_decoder`'s timed model over one library's modules and arrays: the encoder
    over ``source``, then per word the embedding row of the last ``argmax``, a cell step, the
    output layer and the ``argmax``."""

    def run() -> None:
        _, h_n = encoder(source)
        h, token = h_n[0], 0
        for _ in range(TARGET_WORDS):
            h = cell(embedding[token : token + 1], h)
            token = int(argmax(out(h)))

    return run


def measure_decoder(repeats: int, budget: float) -> None:
    """A GRU encoder (H=256) over a 20-word source and a greedy GRUCell + Linear decoder of 20 words
    (per word: the embedding row of the last argmax, a GRUCell step, a Linear to 1000 words, the
    argmax), batch 1, 1 thread: ferroq's dynamic modules vs the same model in numpy float32 vs
    torch's dynamic modules; time per generated word, the encoder included."""
    rng = np.random.default_rng(0)
    ferroq.set_num_threads(1)
    torch = import_torch(1)
    hidden, vocab = DECODER_HIDDEN, DECODER_VOCAB
    np.random.seed(0)
    float_encoder, float_cell = ferroq.nn.GRU(hidden, hidden), ferroq.nn.GRUCell(hidden, hidden)
    float_out = ferroq.nn.Linear(hidden, vocab)
    encoder, cell, out = nnqd.GRU.from_float(float_encoder), nnqd.GRUCell.from_float(float_cell), nnqd.Linear.from_float(float_out)
    embedding = rng.standard_normal((vocab, hidden)).astype(np.float32)
    source = embedding[rng.integers(0, vocab, SOURCE_WORDS)][:, None, :]

    ours = greedy_decoder(encoder, cell, out, embedding, source, np.argmax)
    enc = (float_encoder.weight_ih_l0, float_encoder.weight_hh_l0, float_encoder.bias_ih_l0, float_encoder.bias_hh_l0)
    dec = (float_cell.weight_ih, float_cell.weight_hh, float_cell.bias_ih, float_cell.bias_hh)
    w_out, b_out = float_out.weight, float_out.bias

    def numpy_model() -> None:
        h = np.zeros((1, hidden), np.float32)
        for x in source:
            h = numpy_gru_step(x, h, *enc)
        token = 0
        for _ in range(TARGET_WORDS):
            h = numpy_gru_step(embedding[token : token + 1], h, *dec)
            token = int(np.argmax(h @ w_out.T + b_out))

    ours_s = time_call(ours, repeats, budget) / TARGET_WORDS
    numpy_s = time_call(numpy_model, repeats, budget) / TARGET_WORDS
    torch_s = None
    if torch is not None:
        modules = torch.nn.ModuleList([torch.nn.GRU(hidden, hidden), torch.nn.GRUCell(hidden, hidden), torch.nn.Linear(hidden, vocab)])
        t_encoder, t_cell, t_out = torch.ao.quantization.quantize_dynamic(modules, {torch.nn.GRU, torch.nn.GRUCell, torch.nn.Linear}, dtype=torch.qint8)
        t_embedding, t_source = torch.from_numpy(embedding), torch.from_numpy(source)
        torch_model = greedy_decoder(t_encoder, t_cell, t_out, t_embedding, t_source, torch.argmax)
        with torch.no_grad():
            torch_s = time_call(torch_model, repeats, budget) / TARGET_WORDS
    print(
        f"\nGRU encoder + greedy GRUCell/Linear decoder (H={hidden}, vocabulary {vocab}), batch 1, per word: ferroq {ours_s * 1e6:.1f} us; "
        f"numpy float32 {numpy_s * 1e6:.1f} us ({numpy_s / ours_s:.2f}x); "
        f"torch dynamic {'-' if torch_s is None else f'{torch_s * 1e6:.1f} us ({torch_s / ours_s:.2f}x)'}",
        flush=True,
    )


def plot(rows: List[Dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = [r for r in rows if r["threads"] == 1]
    names = [("ferroq", "ferroq"), ("onnxruntime", "onnxruntime"), ("torch", "torch (dynamic)"), ("numpy_f32", "numpy float32")]
    libs = [(key, label) for key, label in names if any(r[key] for r in one)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(libs)
    for i, (key, label) in enumerate(libs):
        values = [2 * r["macs"] / r[key] / 1e9 if r[key] else 0 for r in one]
        ax.bar(np.arange(len(one)) + i * width, values, width, label=label)
    ax.set_xticks(np.arange(len(one)) + width * (len(libs) - 1) / 2, [r["shape"] for r in one])
    ax.set_ylabel("GOPS (higher is better), 1 thread")
    ax.set_title(f"Dynamic int8 Linear, whole op from Python (ferroq backend {ferroq.backend()})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


PARTS = ["linear", "lstm", "cells", "stream", "decoder"]
PART_GROUPS = {"rnn": ["lstm", "cells", "stream", "decoder"]}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--shapes", help="comma-separated MxKxN list")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--plot", help="write a PNG chart to this file (needs matplotlib)")
    parser.add_argument(
        "--only",
        help=f"comma-separated parts to run, of {', '.join(PARTS)} ('rnn' = every part but linear); default: all",
    )
    parser.add_argument(
        "--peak-gmacs",
        type=float,
        help="one core's int8 peak in G multiply-accumulates/s (the vnni_peak, amx_peak or avx2_peak probe of `cargo bench --bench gemm_u8i8`), "
        "for the LSTMs' share of peak",
    )
    parser.add_argument("--replot", metavar="JSON", help="draw --plot from figures saved with --json; measure nothing")
    args = parser.parse_args(argv)
    parts = set(PARTS) if args.only is None else {p for name in args.only.split(",") for p in PART_GROUPS.get(name, [name])}
    if not parts <= set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}; choose from {', '.join(PARTS)} or rnn")
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), args.plot or "perf.png")
        return 0
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else DEFAULT_SHAPES
    repeats, budget = (3, 0.02) if args.quick else (7, 0.1)
    print(f"ferroq {ferroq.__version__}, backend {ferroq.backend()}, python {sys.version.split()[0]}, numpy {np.__version__}")
    rows: List[Dict[str, Any]] = []
    thread_counts = [int(t) for t in args.threads.split(",")]
    if "linear" in parts:
        print(HEADER)
        for threads in thread_counts:
            rows += measure(shapes, threads, repeats, budget)  # type: ignore[arg-type]
    if "lstm" in parts:
        for threads in thread_counts:
            measure_lstm(threads, repeats, budget, args.peak_gmacs)
    if "cells" in parts:
        measure_gru_and_cells(repeats, budget)
        measure_call_floor(repeats, budget)
    if "stream" in parts:
        measure_stream(repeats, budget)
    if "decoder" in parts:
        measure_decoder(repeats, budget)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
