"""Golden cases from PyTorch 2.15 for what the first golden set does not reach (tests/golden_fp16):
float16 dynamic Linear, LSTM and GRU whose products have more than 512 inputs, signed zeros of
float16 sums, and HistogramObserver on symmetric quint8 with ``reduce_range=True``. Every output
must equal torch's bit for bit, on every kernel path this machine has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import HistogramObserver, float16_dynamic_qconfig

from conftest import assert_same_bits

GOLDEN_FP16 = Path(__file__).parent / "golden_fp16"
INDEX = json.loads((GOLDEN_FP16 / "index.json").read_text())["cases"]


def cases(prefix: str) -> List[str]:
    return sorted(name for name in INDEX if name.startswith(prefix))


def load(name: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    with np.load(GOLDEN_FP16 / INDEX[name]["file"]) as data:
        return INDEX[name], {key: data[key] for key in data.files}


def params(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k[len("params.") :]: v for k, v in arrays.items() if k.startswith("params.")}


def fp16_linear(entry: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> Any:
    kw = entry["kwargs"]
    lin = ferroq.nn.Linear(kw["in_features"], kw["out_features"], bias=kw["bias"])
    lin.load_state_dict(params(arrays))
    lin.qconfig = float16_dynamic_qconfig
    return nnqd.Linear.from_float(lin)


LINEAR_CASES = cases("fp16_linear_")
RNN_CASES = cases("fp16_lstm_") + cases("fp16_gru_")
HISTOGRAM_CASES = cases("histogram_")


def test_the_cases_cover_long_products_and_every_kind_of_column_tail() -> None:
    shapes = [(INDEX[c]["kwargs"]["in_features"], INDEX[c]["kwargs"]["out_features"]) for c in LINEAR_CASES]
    assert {n % 32 for k, n in shapes if k > 512} >= {0, 1, 7, 16, 31}
    assert {k for k, _ in shapes} >= {513, 600, 1024, 2000, 4096}
    assert {INDEX[c]["kwargs"]["bias"] for c in LINEAR_CASES} == {True, False}
    assert all(INDEX[c]["kwargs"]["input_size"] > 512 for c in RNN_CASES) and len(RNN_CASES) == 2


@pytest.mark.parametrize("case", LINEAR_CASES)
def test_fp16_linear_outputs_equal_torch_bit_for_bit(case: str) -> None:
    entry, arrays = load(case)
    q = fp16_linear(entry, arrays)
    names = [k[2:] for k in arrays if k.startswith("x_")]
    assert names
    for name in names:
        assert_same_bits(q(arrays["x_" + name]), arrays["y_" + name])


def test_sums_of_negative_zeros_stay_negative_as_in_torch() -> None:
    # The golden files hold both signs where the products are all -0.0: -0.0 in one block of 512
    # inputs, +0.0 in the column tail once a second block starts from +0.0.
    for k in (300, 600):
        _, arrays = load(f"fp16_linear_zeros_k{k}_nobias")
        y = arrays["y_zeros"]
        assert np.signbit(y[0, 0]) and y[0, 0] == 0
        assert np.signbit(y[0, 33]) == (k <= 512) and y[0, 33] == 0
    for case in ("fp16_linear_zeros_k300_nobias", "fp16_linear_zeros_k600_nobias", "fp16_linear_zeros_k600_bias"):
        entry, arrays = load(case)
        assert_same_bits(fp16_linear(entry, arrays)(arrays["x_zeros"]), arrays["y_zeros"])


PROBE = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_golden_fp16 as t
bad = []
for case in t.LINEAR_CASES:
    entry, arrays = t.load(case)
    q = t.fp16_linear(entry, arrays)
    for key in arrays:
        if key.startswith("x_"):
            y = q(arrays[key])
            if not np.array_equal(y.view(np.uint32), arrays["y_" + key[2:]].view(np.uint32)):
                bad.append(f"{case}/{key}")
import ferroq
json.dump({"backend": ferroq.backend(), "mismatched": bad}, sys.stdout)
"""


@pytest.mark.parametrize("isa", ferroq.supported_backends())
def test_every_kernel_path_gives_torch_bits(isa: str) -> None:
    env = {**os.environ, "FERROQ_ISA": isa}
    args = [sys.executable, "-c", PROBE, str(Path(__file__).parent)]
    result = json.loads(subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout)
    assert result["backend"] == isa
    assert result["mismatched"] == []


@pytest.mark.parametrize("case", RNN_CASES)
def test_fp16_rnn_outputs_equal_torch_bit_for_bit(case: str) -> None:
    entry, arrays = load(case)
    module_class = {"dynamic.LSTM": nnqd.LSTM, "dynamic.GRU": nnqd.GRU}[entry["module"]]
    float_module = SimpleNamespace(**entry["kwargs"], **params(arrays), qconfig=float16_dynamic_qconfig)
    module = module_class.from_float(float_module)
    assert module.dtype is ferroq.float16
    y, state = module(arrays["x"])
    assert_same_bits(y, arrays["y"])
    if isinstance(state, tuple):
        assert_same_bits(state[0], arrays["hn"])
        assert_same_bits(state[1], arrays["cn"])
    else:
        assert_same_bits(state, arrays["hn"])


@pytest.mark.parametrize("case", HISTOGRAM_CASES)
def test_histogram_observer_qparams_equal_torch(case: str) -> None:
    entry, arrays = load(case)
    kwargs: Dict[str, Any] = {
        "dtype": getattr(ferroq, entry["kwargs"]["dtype"]),
        "qscheme": getattr(ferroq, entry["kwargs"]["qscheme"]),
        "reduce_range": entry["kwargs"]["reduce_range"] == "True",
    }
    for bound in ("quant_min", "quant_max"):
        if bound in entry["kwargs"]:
            kwargs[bound] = int(entry["kwargs"][bound])
    observer = HistogramObserver(**kwargs)
    for i in range(sum(1 for k in arrays if k.startswith("x_"))):
        observer(arrays[f"x_{i}"])
    scale, zero_point = observer.calculate_qparams()
    assert np.asarray(scale, np.float32).reshape(-1).view(np.uint32).tolist() == arrays["scale"].view(np.uint32).tolist()
    assert np.asarray(zero_point).reshape(-1).tolist() == arrays["zero_point"].tolist()
