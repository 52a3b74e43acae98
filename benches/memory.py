"""Resident memory and load time of dynamic int8 models: ferroq vs torch vs onnxruntime.

Two models, as in the README: ``Linear(8192, 8192)`` (64 MiB of int8 weights) and
``LSTM(1024, 1024, num_layers=4)`` (32 MiB), each quantized with ``quantize_dynamic`` from a float
``Sequential``. Every figure comes from a fresh subprocess, so that nothing one measurement
allocates (or leaves in the allocator) shows in another:

- *quantize*: resident growth after ``quantize_dynamic``, the float model deleted and
  ``gc.collect()`` run, over the RSS before the float model existed. That RSS is taken after a
  tiny model of the same kind went through the same steps, so that what a process pays once,
  whatever its models' sizes (the modules the float initialisers import, numpy.random with
  hashlib and libcrypto for ferroq: about 6 MB), does not count as the model's; it is reported
  apart ("once");
- *load* (each figure the median of 3 fresh processes): resident growth after loading the saved
  model (file in the page cache), the peak RSS during the load over the RSS before it, the load
  time, the time of the first call (batch 1) after the load, the median of the calls 2 to 100,
  and, as a control, one call after the model file was read again ("after read": the memory
  traffic of a load, which pushes the weights out of the caches, with no work of the library's);
- *fromfile*: the time ``np.fromfile`` takes to read the same file (the yardstick for loading).

Memory figures are in units of the model's int8 weight bytes ("1.00x" = one copy of the int8
weights). torch's side runs in its own interpreter when ``--torch-python`` (default
``/work/torch-venv/bin/python`` when it exists, else this one) can import torch; onnxruntime's
(``quantize_dynamic`` of an equivalent ONNX graph, loaded into an ``InferenceSession``) when
``onnxruntime`` and ``onnx`` import here. Linux only (reads ``/proc/self/status``).

Run: ``python benches/memory.py`` (``--models linear``, ``--json F`` to save the figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

MODELS = {
    # name: (description, int8 weight bytes)
    "linear": ("Linear(8192, 8192)", 8192 * 8192),
    "lstm": ("LSTM(1024, 1024, num_layers=4)", 4 * 2 * 4096 * 1024),
}
DEFAULT_TORCH_PYTHON = "/work/torch-venv/bin/python"


# -- measuring, inside a worker process -----------------------------------------------------------


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field (VmRSS, VmHWM) in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def settle() -> int:
    """RSS in bytes after a garbage collection."""
    gc.collect()
    return status_kb("VmRSS") * 1024


def reset_peak() -> None:
    """Restarts VmHWM at the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak() -> int:
    return status_kb("VmHWM") * 1024


def warm_page_cache(path: str) -> None:
    """Reads ``path`` through a small buffer, so the file is cached without growing this process."""
    buffer = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def call_times(run: Callable[[], Any], disturb: Callable[[], Any]) -> Dict[str, float]:
    """The first call's time, the median of the next 99, and the time of one more call after
    ``disturb()`` (the control: the caches as a load leaves them, without the library's help)."""
    times = []
    for _ in range(100):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    disturb()
    start = time.perf_counter()
    run()
    after = time.perf_counter() - start
    return {"first_call_s": times[0], "later_calls_s": sorted(times[1:])[49], "after_read_s": after}


# -- the models, per library ---------------------------------------------------------------------


def ferroq_model(model: str, size: int = 1024) -> Any:
    """The float model and the function quantizing it; ``size`` 1024 is the real model, a small
    one a tiny model of the same kind."""
    import ferroq

    nn = ferroq.nn
    float_model = nn.Sequential(nn.Linear(8 * size, 8 * size) if model == "linear" else nn.LSTM(size, size, num_layers=4))
    return float_model, lambda m: ferroq.quantization.quantize_dynamic(m)


def ferroq_input(model: str) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (1, 8192) if model == "linear" else (10, 1, 1024)
    return rng.standard_normal(shape).astype(np.float32)


def torch_model(model: str, size: int = 1024) -> Any:
    import torch

    layer = torch.nn.Linear(8 * size, 8 * size) if model == "linear" else torch.nn.LSTM(size, size, num_layers=4)
    kind = torch.nn.Linear if model == "linear" else torch.nn.LSTM
    return torch.nn.Sequential(layer), lambda m: torch.ao.quantization.quantize_dynamic(m, {kind}, dtype=torch.qint8)


def onnx_graph(model: str, path: str) -> None:
    """An ONNX float graph equivalent to the model, written to ``path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if model == "linear":
        w = (rng.standard_normal((8192, 8192)) / 90).astype(np.float32)
        b = np.zeros(8192, np.float32)
        nodes = [helper.make_node("MatMul", ["x", "wt"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])]
        inits = [numpy_helper.from_array(w, "wt"), numpy_helper.from_array(b, "b")]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", 8192])
    else:
        nodes, inits, prev = [], [], "x"
        for layer in range(4):
            for name, shape in (("w", (1, 4096, 1024)), ("r", (1, 4096, 1024)), ("b", (1, 8192))):
                inits.append(numpy_helper.from_array((rng.standard_normal(shape) / 32).astype(np.float32), f"{name}{layer}"))
            nodes.append(helper.make_node("LSTM", [prev, f"w{layer}", f"r{layer}", f"b{layer}"], [f"y{layer}"], hidden_size=1024))
            inits.append(numpy_helper.from_array(np.array([1], np.int64), f"axis{layer}"))
            out = "y" if layer == 3 else f"s{layer}"
            nodes.append(helper.make_node("Squeeze", [f"y{layer}", f"axis{layer}"], [out]))
            prev = out
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", 1024])
    graph = helper.make_graph(nodes, model, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def worker(lib: str, model: str, phase: str, path: str) -> Dict[str, Any]:
    """One measurement in this (fresh) process; ``path`` is the saved model file."""
    if lib == "numpy":
        import numpy as np

        times = []
        for _ in range(5):
            start = time.perf_counter()
            data = np.fromfile(path, dtype=np.uint8)
            times.append(time.perf_counter() - start)
            del data
        return {"fromfile_s": sorted(times)[2]}
    if lib == "ferroq":
        import numpy as np  # noqa: F401  (imported before the baseline)

        import ferroq

        make = lambda size=1024: ferroq_model(model, size)  # noqa: E731
        save, load = ferroq.save, ferroq.load
        call = lambda m, x: m(x)  # noqa: E731
        example = lambda: ferroq_input(model)  # noqa: E731
    elif lib == "torch":
        import torch

        torch.set_num_threads(1)
        make = lambda size=1024: torch_model(model, size)  # noqa: E731
        save = lambda m, p: torch.save(m, p)  # noqa: E731
        load = lambda p: torch.load(p, weights_only=False)  # noqa: E731

        def call(m: Any, x: Any) -> Any:
            with torch.no_grad():
                return m(torch.from_numpy(x))

        example = lambda: ferroq_input(model)  # noqa: E731
    elif lib == "onnxruntime":
        import numpy as np
        import onnxruntime as ort

        def load(p: str) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            return ort.InferenceSession(p, options, providers=["CPUExecutionProvider"])

        call = lambda s, x: s.run(None, {"x": x})  # noqa: E731
        example = lambda: ferroq_input(model)  # noqa: E731
    else:
        raise ValueError(lib)

    if phase == "save":
        float_model, quantize = make()
        save(quantize(float_model), path)
        return {}
    if phase == "quantize":
        first = settle()
        tiny_model, quantize = make(4)
        quantize(tiny_model)  # what the first model of any size costs, once
        del tiny_model
        before = settle()
        reset_peak()
        float_model, quantize = make()
        quantized = quantize(float_model)
        del float_model
        after = settle()
        return {"resident_bytes": after - before, "peak_bytes": peak() - before, "once_bytes": before - first, "alive": quantized is not None}
    if phase == "load":
        warm_page_cache(path)
        x = example()
        before = settle()
        reset_peak()
        start = time.perf_counter()
        loaded = load(path)
        seconds = time.perf_counter() - start
        high = peak()
        after = settle()
        result = {"load_s": seconds, "resident_bytes": after - before, "peak_bytes": high - before}
        result.update(call_times(lambda: call(loaded, x), lambda: warm_page_cache(path)))
        return result
    raise ValueError(phase)


# -- the driver ----------------------------------------------------------------------------------


def run_worker(python: str, lib: str, model: str, phase: str, path: str) -> Optional[Dict[str, Any]]:
    cmd = [python, os.path.abspath(__file__), "--worker", lib, model, phase, path]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  ({lib} {model} {phase} failed: {done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_run(python: str, lib: str, model: str, phase: str, path: str, runs: int = 3) -> Optional[Dict[str, Any]]:
    """Each figure's median over ``runs`` fresh processes (the machine's noise is large next to
    a load of some 50 ms, and a first call is one sample per process)."""
    results = [run_worker(python, lib, model, phase, path) for _ in range(runs)]
    if any(r is None for r in results):
        return None
    return {key: sorted(r[key] for r in results)[runs // 2] for key in results[0]}  # type: ignore[index]


def can_import(python: str, *modules: str) -> bool:
    if not os.path.exists(python):
        return False
    code = "; ".join(f"import {m}" for m in modules)
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def measure(models: List[str], torch_python: str, onnx: bool) -> List[Dict[str, Any]]:
    rows = []
    libs = [("ferroq", sys.executable, ".safetensors")]
    if can_import(torch_python, "torch"):
        libs.append(("torch", torch_python, ".pt"))
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            weights = MODELS[model][1]
            for lib, python, suffix in libs:
                path = os.path.join(tmp, f"{lib}-{model}{suffix}")
                run_worker(python, lib, model, "save", path)
                row: Dict[str, Any] = {"model": model, "lib": lib, "int8_bytes": weights}
                row["quantize"] = run_worker(python, lib, model, "quantize", path)
                row["load"] = median_run(python, lib, model, "load", path)
                row["fromfile"] = run_worker(sys.executable, "numpy", model, "fromfile", path)
                row["file_bytes"] = os.path.getsize(path)
                rows.append(row)
                print_row(row)
            if onnx:
                path = os.path.join(tmp, f"onnx-{model}.onnx")
                float_path = os.path.join(tmp, f"onnx-{model}-float.onnx")
                onnx_graph(model, float_path)
                from onnxruntime.quantization import QuantType, quantize_dynamic

                logging.getLogger().setLevel(logging.ERROR)
                quantize_dynamic(float_path, path, weight_type=QuantType.QInt8)
                row = {"model": model, "lib": "onnxruntime", "int8_bytes": weights, "quantize": None}
                row["load"] = median_run(sys.executable, "onnxruntime", model, "load", path)
                row["fromfile"] = run_worker(sys.executable, "numpy", model, "fromfile", path)
                row["file_bytes"] = os.path.getsize(path)
                rows.append(row)
                print_row(row)
    return rows


HEADER = (
    f"{'model':>6} {'library':>12} | {'resident after quantize':>23} {'(once MB)':>9} | {'resident after load':>19} "
    f"{'peak in load':>12} | {'load ms':>8} {'fromfile ms':>11} {'ratio':>6} | {'1st call ms':>11} {'2-100 ms':>8} {'after read ms':>13}"
)


def print_row(r: Dict[str, Any]) -> None:
    def times(part: Optional[Dict[str, Any]], key: str) -> str:
        return "-" if not part else f"{part[key] / r['int8_bytes']:.2f}x"

    def ms(part: Optional[Dict[str, Any]], key: str) -> str:
        return "-" if not part else f"{part[key] * 1e3:.1f}"

    q, ld, ff = r["quantize"], r["load"], r["fromfile"]
    ratio = "-" if not (ld and ff) else f"{ld['load_s'] / ff['fromfile_s']:.1f}x"
    once = "-" if not q else f"{q['once_bytes'] / 2**20:.1f}"
    print(
        f"{r['model']:>6} {r['lib']:>12} | {times(q, 'resident_bytes'):>23} {once:>9} | {times(ld, 'resident_bytes'):>19} "
        f"{times(ld, 'peak_bytes'):>12} | {ms(ld, 'load_s'):>8} {ms(ff, 'fromfile_s'):>11} {ratio:>6} | "
        f"{ms(ld, 'first_call_s'):>11} {ms(ld, 'later_calls_s'):>8} {ms(ld, 'after_read_s'):>13}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="linear,lstm", help="comma-separated: linear, lstm")
    parser.add_argument("--torch-python", default=DEFAULT_TORCH_PYTHON if os.path.exists(DEFAULT_TORCH_PYTHON) else sys.executable)
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime even when it imports")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--worker", nargs=4, metavar=("LIB", "MODEL", "PHASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            parser.error(f"unknown model {m!r} (one of {', '.join(MODELS)})")
    onnx = not args.no_onnx and can_import(sys.executable, "onnxruntime", "onnx")
    print("Memory in units of the model's int8 weight bytes; RSS growth in a fresh process per figure.")
    print(HEADER)
    rows = measure(models, args.torch_python, onnx)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
