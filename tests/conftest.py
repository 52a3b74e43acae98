"""Shared fixtures: the golden cases from PyTorch and the kernel paths this machine has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import ferroq

# PyTorch's tanh is MKL's vsTanh, whose results depend on the code path MKL picks for the CPU: on
# AVX-512 CPUs 96.9-98.4% of the recurrent differential tests' values equal ferroq's, on MKL's AVX2
# path 99.98-100% (docs/numerics.md §5.2). Pin MKL's AVX2 path (only torch reads this) so that
# comparisons with a live torch mean the same on every x86 machine; set before torch is imported.
os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")

GOLDEN = Path(__file__).parent / "golden"
ALL_BACKENDS = ["scalar", "avx2", "avxvnni", "avx512vnni", "amx", "neon", "neon-dotprod"]


def golden_cases(prefix: str) -> List[str]:
    """Names of the golden cases whose name starts with ``prefix``."""
    index = json.loads((GOLDEN / "index.json").read_text())["cases"]
    return sorted(name for name in index if name.startswith(prefix))


def load_case(name: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """The index entry and the arrays of one golden case."""
    entry = json.loads((GOLDEN / "index.json").read_text())["cases"][name]
    with np.load(GOLDEN / entry["file"]) as data:
        arrays = {key: data[key] for key in data.files}
    return entry, arrays


#: The start of a probe script on the dynamic quantized modules (see :func:`run_probe`): the thread
#: count from ``argv[1]``, ``out`` (to print as JSON) holding the kernel path, ``qconfigs`` by name and
#: ``digest``, a hash of arrays' bytes.
QUANTIZED_PROBE_HEADER = r"""
import hashlib, json, sys
import numpy as np
import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import per_channel_dynamic_qconfig, float16_dynamic_qconfig
ferroq.set_num_threads(int(sys.argv[1]))
out = {"backend": ferroq.backend()}
qconfigs = {"tensor": None, "channel": per_channel_dynamic_qconfig, "fp16": float16_dynamic_qconfig}
digest = lambda arrays: hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()
"""


def run_probe(script: str, isa: str, threads: int = 1) -> Dict[str, Any]:
    """The JSON that the Python ``script`` prints, run in a fresh process with ``FERROQ_ISA=isa``
    and ``threads`` as its first argument (the kernel path is chosen once per process)."""
    env = {**os.environ, "FERROQ_ISA": isa}
    result = subprocess.run([sys.executable, "-c", script, str(threads)], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def assert_every_path_gives_scalar_bits(script: str, threads: Tuple[int, ...] = (1,)) -> Dict[str, Any]:
    """Runs the probe ``script`` (see :func:`run_probe`) on the scalar path with one thread, then on
    every path this CPU supports with each count of ``threads``, and asserts that every output
    equals the scalar one. Prints the paths tested and skipped; returns the scalar outputs."""
    supported = ferroq.supported_backends()
    skipped = [b for b in ALL_BACKENDS if b not in supported]
    print(f"\npaths tested: {supported}; SKIPPED (not on this CPU): {skipped}")
    reference = run_probe(script, "scalar")
    assert reference.pop("backend") == "scalar"
    for isa in supported:
        for count in threads:
            outputs = run_probe(script, isa, count)
            assert outputs.pop("backend") == isa
            assert outputs.keys() == reference.keys()
            for key, bits in reference.items():
                assert outputs[key] == bits, f"{isa} ({count} threads) differs from scalar on {key}"
    return reference


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Exact equality of float32 arrays, bit for bit (so -0.0 != 0.0 and NaN == same NaN)."""
    assert actual.dtype == np.float32 and expected.dtype == np.float32, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    a, e = actual.view(np.uint32), expected.view(np.uint32)
    mismatched = int(np.count_nonzero(a != e))
    if mismatched:
        where = np.argwhere(a != e)[0]
        raise AssertionError(
            f"{mismatched} of {a.size} values differ; first at {tuple(where)}: "
            f"{actual[tuple(where)]!r} != {expected[tuple(where)]!r}"
        )


def assert_qweight_equals_golden(w: Any, arrays: Dict[str, np.ndarray]) -> None:
    """A quantized weight equals a golden case's ``qweight.*`` arrays: its integers and its qparams,
    per channel (the case has ``qweight.axis``) or per tensor."""
    np.testing.assert_array_equal(w.int_repr(), arrays["qweight.int"])
    if "qweight.axis" in arrays:
        assert w.q_per_channel_axis() == int(arrays["qweight.axis"])
        np.testing.assert_array_equal(w.q_per_channel_scales(), arrays["qweight.scale"])
        np.testing.assert_array_equal(w.q_per_channel_zero_points(), arrays["qweight.zero_point"])
    else:
        assert w.q_scale() == float(arrays["qweight.scale"])
        assert w.q_zero_point() == int(arrays["qweight.zero_point"])


def pytest_report_header(config: Any) -> List[str]:
    supported = ferroq.supported_backends()
    skipped = [b for b in ALL_BACKENDS if b not in supported]
    return [
        f"ferroq {ferroq.__version__}: backend in use {ferroq.backend()}; paths tested {supported}; "
        f"SKIPPED (not on this CPU): {skipped}"
    ]


@pytest.fixture
def rng() -> Iterator[np.random.Generator]:
    yield np.random.default_rng(1234)
