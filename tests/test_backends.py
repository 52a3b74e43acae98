"""Kernel paths: every path this machine supports gives the same bits, FERROQ_ISA only lowers
the choice, and the public surface matches the type stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ferroq

from conftest import ALL_BACKENDS

PROBE = r"""
import json, sys
import numpy as np
import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import per_channel_dynamic_qconfig, float16_dynamic_qconfig
rng = np.random.default_rng(7)
out = {"backend": ferroq.backend()}
for name, qconfig, reduce_range in [("tensor", None, True), ("channel", per_channel_dynamic_qconfig, False), ("fp16", float16_dynamic_qconfig, True)]:
    np.random.seed(3)
    for k, n, m in [(1, 1, 1), (37, 61, 5), (256, 130, 70), (1025, 33, 2)]:
        lin = ferroq.nn.Linear(k, n)
        lin.qconfig = qconfig
        q = nnqd.Linear.from_float(lin)
        q.reduce_range = reduce_range
        x = (rng.standard_normal((m, k)) * 4).astype(np.float32)
        out[f"{name}-{k}x{n}x{m}"] = q(x).view(np.uint32).tolist()
json.dump(out, sys.stdout)
"""


def run_probe(isa: str) -> dict:
    env = {**os.environ, "FERROQ_ISA": isa}
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_every_supported_path_gives_identical_bits():
    supported = ferroq.supported_backends()
    skipped = [b for b in ALL_BACKENDS if b not in supported]
    print(f"\nkernel paths tested: {supported}; SKIPPED (not on this CPU): {skipped}")
    reference = run_probe("scalar")
    assert reference.pop("backend") == "scalar"
    for isa in supported[1:]:
        outputs = run_probe(isa)
        assert outputs.pop("backend") == isa
        for key, bits in reference.items():
            assert outputs[key] == bits, f"{isa} differs from scalar on {key}"


def test_scalar_override_is_reported_by_backend():
    code = "import ferroq; print(ferroq.backend())"
    env = {**os.environ, "FERROQ_ISA": "scalar"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "scalar"


def test_unknown_or_unavailable_overrides_warn_and_never_raise_the_choice():
    code = "import warnings, ferroq; print(ferroq.backend())"
    for value in ["avx9000", "neon-dotprod" if sys.platform != "darwin" else "avx512vnni"]:
        env = {**os.environ, "FERROQ_ISA": value}
        result = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.strip() in ferroq.supported_backends()
        if value == "avx9000":
            assert "not a known path" in result.stderr
            assert result.stdout.strip() == ferroq.supported_backends()[-1]


def test_threads_setting():
    before = ferroq.get_num_threads()
    try:
        ferroq.set_num_threads(1)
        assert ferroq.get_num_threads() == 1
        with pytest.raises(ValueError, match="positive"):
            ferroq.set_num_threads(0)
        with pytest.raises(TypeError):
            ferroq.set_num_threads(1.5)  # type: ignore[arg-type]
    finally:
        ferroq.set_num_threads(before)


def test_core_stubs_match_the_extension():
    pytest.importorskip("mypy")
    stub_dir = Path(ferroq.__file__).parent
    assert (stub_dir / "_core.pyi").exists() and (stub_dir / "py.typed").exists()
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "ferroq._core"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_does_not_import_torch():
    code = "import sys, ferroq; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"

