"""Writes the golden cases of this folder with PyTorch (needs only torch and numpy).

Run it with the Python that has torch, from anywhere: ``python tests/golden_fp16/generate.py``. It
rewrites every ``.npz`` and ``index.json`` here. The cases target what the first golden set does not
reach: float16 dynamic Linear and LSTM/GRU whose float16 products have more than 512 inputs (so
FBGEMM's kernel sums them in blocks of 512), out_features that are and are not multiples of 32,
products that are all zeros of one sign, and HistogramObserver with symmetric quint8 and
``reduce_range=True``.
"""

from __future__ import annotations

import json
import platform
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
import torch.ao.nn.quantized.dynamic as nnqd
from torch.ao.quantization import HistogramObserver, float16_dynamic_qconfig

HERE = Path(__file__).parent
CASES: Dict[str, Dict[str, Any]] = {}
#: Constructor arguments of the recurrent cases besides the sizes.
RNN_DEFAULTS: Dict[str, Any] = {"batch_first": False, "bias": True, "bidirectional": False}


def fp16_exact(values: np.ndarray) -> np.ndarray:
    """float32 values that float16 represents exactly (so the files compress; float16 packing
    keeps them as they are)."""
    return values.astype(np.float16).astype(np.float32)


def save(name: str, entry: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> None:
    np.savez_compressed(HERE / f"{name}.npz", **arrays)
    CASES[name] = {**entry, "file": f"{name}.npz", "arrays": sorted(arrays)}


def linear_case(
    name: str,
    k: int,
    n: int,
    batches: List[int],
    bias: bool,
    seed: int,
    weight: Optional[np.ndarray] = None,
    bias_values: Optional[np.ndarray] = None,
    inputs: Optional[Dict[str, np.ndarray]] = None,
) -> None:
    """A float16 dynamic Linear(k, n) from ``from_float``, called on inputs of ``batches`` rows."""
    rng = np.random.RandomState(seed)
    w = fp16_exact(rng.standard_normal((n, k)) * 0.25) if weight is None else weight
    b = rng.standard_normal(n).astype(np.float32) if bias and bias_values is None else bias_values
    lin = torch.nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        if bias:
            lin.bias.copy_(torch.from_numpy(b))
    lin.qconfig = float16_dynamic_qconfig
    q = nnqd.Linear.from_float(lin)
    arrays = {"params.weight": w}
    if bias:
        arrays["params.bias"] = b
    xs = inputs if inputs is not None else {f"b{m}": rng.standard_normal((m, k)).astype(np.float32) for m in batches}
    for key, x in xs.items():
        arrays["x_" + key] = x
        arrays["y_" + key] = q(torch.from_numpy(x)).numpy()
    entry = {"module": "dynamic.Linear", "qconfig": "float16", "call": "y = m(x)"}
    entry["kwargs"] = {"in_features": k, "out_features": n, "bias": bias}
    save(name, entry, arrays)


def signed_zero_case(name: str, k: int, bias: bool) -> None:
    """Products that are all -0.0 or all +0.0 in some columns. Columns 0, 3, 6, ... have only
    negative weights, columns 1, 4, 7, ... only positive ones, the rest mixed; the rows are +0.0,
    -0.0, zeros of mixed sign, and random values. 40 columns: 32 in a full block, 8 in the tail."""
    n = 40
    rng = np.random.RandomState(k)
    magnitude = fp16_exact(np.abs(rng.standard_normal((n, k))) * 0.25 + 0.01)
    sign = np.where(rng.standard_normal((n, k)) < 0, -1.0, 1.0).astype(np.float32)
    sign[0::3] = -1.0
    sign[1::3] = 1.0
    w = magnitude * sign
    b = np.where(np.arange(n) % 2 == 0, np.float32(-0.0), np.float32(0.0)).astype(np.float32) if bias else None
    mixed = np.where(rng.standard_normal(k) < 0, np.float32(-0.0), np.float32(0.0)).astype(np.float32)
    x = np.stack([np.zeros(k, np.float32), -np.zeros(k, np.float32), mixed, rng.standard_normal(k).astype(np.float32)])
    linear_case(name, k, n, [], bias, k, weight=w, bias_values=b, inputs={"zeros": x})


def rnn_case(
    name: str, module: Callable[..., torch.nn.Module], kwargs: Dict[str, Any], steps: int, batch: int, seed: int, x_scale: float = 1.0
) -> None:
    """A float16 dynamic LSTM/GRU from ``quantize_dynamic``, run once on a random sequence."""
    torch.manual_seed(seed)
    float_module = module(**kwargs)
    with torch.no_grad():
        for p in float_module.parameters():
            p.copy_(p.half().float())
    q = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(float_module), {type(float_module)}, dtype=torch.float16
    )[0]
    rng = np.random.RandomState(seed)
    x = (rng.standard_normal((steps, batch, kwargs["input_size"])) * x_scale).astype(np.float32)
    y, state = q(torch.from_numpy(x))
    arrays = {f"params.{k}": v.detach().numpy() for k, v in float_module.state_dict().items()}
    arrays.update(x=x, y=y.detach().numpy())
    if isinstance(state, tuple):
        arrays.update(hn=state[0].detach().numpy(), cn=state[1].detach().numpy())
    else:
        arrays.update(hn=state.detach().numpy())
    entry = {"module": f"dynamic.{type(float_module).__name__}", "qconfig": "float16", "call": "y, hn = m(x); LSTM: y, (hn, cn)"}
    entry["kwargs"] = kwargs
    save(name, entry, arrays)


def histogram_case(name: str, batches: List[np.ndarray], **kwargs: Any) -> None:
    """The qparams HistogramObserver(**kwargs) chooses after observing ``batches``."""
    observer = HistogramObserver(**kwargs)
    for batch in batches:
        observer(torch.from_numpy(batch))
    scale, zero_point = observer.calculate_qparams()
    arrays = {f"x_{i}": batch for i, batch in enumerate(batches)}
    arrays.update(scale=scale.numpy().astype(np.float32), zero_point=zero_point.numpy().astype(np.int64))
    arrays.update(quant_min=np.int64(observer.quant_min), quant_max=np.int64(observer.quant_max))
    kw = {k: str(v).replace("torch.", "") for k, v in kwargs.items()}
    save(name, {"module": "HistogramObserver", "kwargs": kw, "call": "observer(x_0); observer(x_1); ...; calculate_qparams()"}, arrays)


def main() -> None:
    torch.backends.quantized.engine = "x86"
    warnings.simplefilter("ignore")
    for old in HERE.glob("*.npz"):
        old.unlink()
    # Linear: K > 512 with out_features % 32 in {1, 7, 16, 31, 0}, with and without bias.
    linear_case("fp16_linear_k513_n33", 513, 33, [1, 4, 17], True, 1)
    linear_case("fp16_linear_k513_n64", 513, 64, [3, 8], False, 2)
    linear_case("fp16_linear_k600_n71", 600, 71, [1, 6, 20], False, 3)
    linear_case("fp16_linear_k1024_n48", 1024, 48, [1, 2, 13], True, 4)
    linear_case("fp16_linear_k2000_n31", 2000, 31, [1, 7], False, 5)
    linear_case("fp16_linear_k4096_n39", 4096, 39, [1, 5], True, 6)
    # Signs of zero, in one block of 512 and in two.
    for k in (300, 600):
        signed_zero_case(f"fp16_linear_zeros_k{k}_nobias", k, False)
        signed_zero_case(f"fp16_linear_zeros_k{k}_bias", k, True)
    # LSTM/GRU whose input projection has more than 512 inputs (4H = 80 and 3H = 39 gate columns).
    rnn_case("fp16_lstm_i600_h20", torch.nn.LSTM, dict(RNN_DEFAULTS, input_size=600, hidden_size=20, num_layers=1), 3, 2, 37)
    rnn_case("fp16_gru_i1030_h13", torch.nn.GRU, dict(RNN_DEFAULTS, input_size=1030, hidden_size=13, num_layers=2), 3, 2, 7)
    # HistogramObserver, symmetric quint8 on the reduced range 0..127 (zero point 128).
    rng = np.random.RandomState(9)
    batches = [rng.standard_normal(1000).astype(np.float32), (rng.standard_normal(500) * 3 + 1).astype(np.float32)]
    histogram_case("histogram_symmetric_quint8_reduce_range", batches, dtype=torch.quint8, qscheme=torch.per_tensor_symmetric, reduce_range=True)
    histogram_case(
        "histogram_symmetric_quint8_reduce_range_custom",
        batches,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_symmetric,
        reduce_range=True,
        quant_min=0,
        quant_max=255,
    )
    histogram_case("histogram_symmetric_quint8_skewed", [np.abs(batches[0]) + 0.5], dtype=torch.quint8, qscheme=torch.per_tensor_symmetric, reduce_range=True)
    meta = {"torch": torch.__version__, "engine": torch.backends.quantized.engine, "machine": platform.machine()}
    (HERE / "index.json").write_text(json.dumps({"generator": meta, "cases": CASES}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
