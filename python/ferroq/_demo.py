"""``python -m ferroq demo``: train a small float model, convert it to int8, compare.

The model is a Linear-ReLU-Linear classifier trained here, with numpy, on a synthetic task
(Gaussian clusters in 256 dimensions), so the demo needs no download and no torch.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Tuple

import numpy as np

import ferroq

from . import __version__, backend, get_num_threads, nn
from .nn.quantized import dynamic as nnqd

FEATURES, HIDDEN, CLASSES = 256, 512, 10


def make_data(rng: np.random.Generator, n: int, centers: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, CLASSES, size=n)
    x = centers[labels] + rng.standard_normal((n, FEATURES)).astype(np.float32) * 2.5
    return x.astype(np.float32), labels


def train(model: nn.Sequential, x: np.ndarray, y: np.ndarray, steps: int = 150, lr: float = 0.05) -> None:
    """Plain full-batch gradient descent on softmax cross-entropy (enough for a demo)."""
    first, last = model[0], model[2]
    onehot = np.eye(CLASSES, dtype=np.float32)[y]
    for _ in range(steps):
        h_pre = x @ first.weight.T + first.bias
        h = np.maximum(h_pre, 0)
        logits = h @ last.weight.T + last.bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g_logits = (p - onehot) / len(x)
        g_h = (g_logits @ last.weight) * (h_pre > 0)
        last.weight = last.weight - lr * (g_logits.T @ h)
        last.bias = last.bias - lr * g_logits.sum(axis=0)
        first.weight = first.weight - lr * (g_h.T @ x)
        first.bias = first.bias - lr * g_h.sum(axis=0)


def convert(model: nn.Sequential) -> nn.Sequential:
    """Every Linear becomes a dynamic int8 Linear (what ``quantize_dynamic`` does for a Sequential)."""
    return nn.Sequential(*[nnqd.Linear.from_float(m) if isinstance(m, nn.Linear) else m for m in model])


def time_call(fn: Callable[[], Any], repeats: int = 7, budget: float = 0.02) -> float:
    """Median seconds per call over ``repeats`` samples, each a loop of calls lasting about
    ``budget`` seconds (so that it is measurable); ``benches/compare.py`` times with it too."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    inner = max(1, int(budget / max(once, 1e-7)))
    samples: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return float(np.median(samples))


def weight_bytes(model: nn.Module) -> int:
    total = 0
    for m in model.modules():
        if isinstance(m, nnqd.Linear):
            weight, bias = m.weight(), m.bias()
            total += (weight.int_repr() if isinstance(weight, ferroq.QTensor) else weight).nbytes
            total += 0 if bias is None else bias.nbytes
        elif isinstance(m, nn.Linear):
            total += sum(p.nbytes for p in m._parameters.values() if p is not None)
    return total


def main() -> None:
    rng = np.random.default_rng(0)
    np.random.seed(0)
    centers = rng.standard_normal((CLASSES, FEATURES)).astype(np.float32) * 0.5
    x_train, y_train = make_data(rng, 4000, centers)
    x_test, y_test = make_data(rng, 2000, centers)
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
    print(f"ferroq {__version__}: kernel path {backend()}, {get_num_threads()} thread(s)")
    print(f"training a float Linear({FEATURES},{HIDDEN})-ReLU-Linear({HIDDEN},{CLASSES}) classifier on synthetic data ...")
    train(model, x_train, y_train)
    quantized = convert(model)
    print(quantized)

    float_logits, int8_logits = model(x_test), quantized(x_test)
    float_acc = float((float_logits.argmax(1) == y_test).mean())
    int8_acc = float((int8_logits.argmax(1) == y_test).mean())
    agree = float((float_logits.argmax(1) == int8_logits.argmax(1)).mean())
    rel_err = float(np.abs(int8_logits - float_logits).max() / np.abs(float_logits).max())

    rows = [
        ("test accuracy", f"{float_acc:.2%}", f"{int8_acc:.2%}"),
        ("same prediction as float", "", f"{agree:.2%}"),
        ("max |logit error| / max |logit|", "", f"{rel_err:.2e}"),
        ("weight bytes", f"{weight_bytes(model):,}", f"{weight_bytes(quantized):,}"),
    ]
    for batch in (1, 64):
        xb = x_test[:batch]
        t_float = time_call(lambda: model(xb))
        t_int8 = time_call(lambda: quantized(xb))
        rows.append((f"time per call, batch {batch}", f"{t_float * 1e6:,.1f} us", f"{t_int8 * 1e6:,.1f} us ({t_float / t_int8:.2f}x)"))
    rows += lstm_rows(rng)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'':<{width}}  {'float32 (numpy)':>18}  {'int8 (ferroq)':>24}")
    for name, f, q in rows:
        print(f"{name:<{width}}  {f:>18}  {q:>24}")
    print(f"\nkernel path: {backend()} (FERROQ_ISA can lower it; python -m ferroq info lists the others)")


def lstm_rows(rng: np.random.Generator) -> List[Tuple[str, str, str]]:
    """A 2-layer LSTM(64, 128) over 50-step sequences: output error and time, float vs int8."""
    lstm = nn.LSTM(64, 128, num_layers=2).eval()
    quantized = nnqd.LSTM.from_float(lstm)
    x = rng.standard_normal((50, 1, 64)).astype(np.float32)
    err = float(np.abs(quantized(x)[0] - lstm(x)[0]).max())
    t_float = time_call(lambda: lstm(x))
    t_int8 = time_call(lambda: quantized(x))
    return [
        ("LSTM(64,128,2 layers): max |output error|", "", f"{err:.2e}"),
        ("LSTM, 50 steps, batch 1", f"{t_float * 1e3:,.2f} ms", f"{t_int8 * 1e3:,.2f} ms ({t_float / t_int8:.2f}x)"),
    ]
