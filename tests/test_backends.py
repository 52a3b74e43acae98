"""Kernel paths: every path this machine supports gives the same bits, FERROQ_ISA only lowers
the choice, and the public surface matches the type stubs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ferroq

from conftest import assert_every_path_gives_scalar_bits

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


def test_every_supported_path_gives_identical_bits():
    assert_every_path_gives_scalar_bits(PROBE)


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



AMX_FORK_SCRIPT = r"""
import hashlib, os
import numpy as np
import ferroq
from ferroq.nn.quantized import dynamic as nnqd
assert ferroq.backend() == os.environ["FERROQ_ISA"], ferroq.backend()
rng = np.random.default_rng(5)
np.random.seed(5)  # the float Linear's initial weights
q = nnqd.Linear.from_float(ferroq.nn.Linear(200, 72))
x = (rng.standard_normal((37, 200)) * 3).astype(np.float32)

def in_child(threads):
    # Runs the tile kernels in a forked child; returns the child's output bits.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            ferroq.set_num_threads(threads)
            data = q(x).tobytes()
            with os.fdopen(write, "wb") as pipe:
                pipe.write(data)
            os._exit(0)
        finally:
            os._exit(2)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    return np.frombuffer(data, dtype=np.float32).reshape(37, 72)

first = in_child(1)  # before the parent ran any tile kernel
want = q(x)
for threads in (1, 2):
    assert np.array_equal(in_child(threads).view(np.uint32), want.view(np.uint32)), threads
assert np.array_equal(first.view(np.uint32), want.view(np.uint32))
print(hashlib.sha256(want.tobytes()).hexdigest())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_amx_kernels():
    """The tile permission is the process's and a forked child inherits it: a child forked before
    and after the parent's first tile product computes the same bits (also on 2 threads), and
    those equal the scalar path's."""
    if "amx" not in ferroq.supported_backends():
        pytest.skip("amx is not supported on this CPU")
    runs = {}
    for isa in ("amx", "scalar"):
        env = {**os.environ, "FERROQ_ISA": isa}
        result = subprocess.run([sys.executable, "-c", AMX_FORK_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[isa] = result.stdout.strip()
    assert runs["amx"] == runs["scalar"]
