"""Fuzzer for ``ferroq.load``: mutated model files must load or raise ValueError, nothing else.

Several models are saved (dynamic Linear per tensor, per channel and float16, a static Linear, a
2-layer bidirectional LSTM with ``proj_size``, a GRU, the three cells, a Sequential tree and a
custom model class), then each case mutates one of them: a few flipped bytes, a truncation, a
rewritten length prefix, edits of the safetensors header (tensor dtypes, shapes, offsets, names,
a name repeated) or structured edits of the model description (values replaced by huge,
negative, float, string, boolean or nested ones; keys deleted, added or repeated; deep nesting;
inflated counts; bad metadata). A few fixed hostile files come first (``in_features=2**31`` in a
1.2 KB file, ``num_layers=10**9``, a description of 15 MB of ``{}``, a 99 MB header).

Cases are loaded in worker subprocesses, many per worker, each under a memory cap
(``RLIMIT_AS``) and watched by a timeout. A failure is any outcome other than "loaded" or
``ValueError``: another exception, a crash (signal), a hang, or a load whose peak memory grew by
more than ``--max-growth-mb``. A worker reports each case before it starts it, so a crash or
hang is attributed to its case; the other cases of the batch go on in a new worker. Every case is
a pure function of ``(seed, index)``: ``--replay SEED:INDEX OUT`` writes that case's file.

Run by hand for longer than the test suite does::

    python tests/fuzz_load.py --iterations 100000 --seed 7 --jobs 2
    python tests/fuzz_load.py --replay 7:4242 /tmp/case.safetensors

Exit status 1 when a case failed (each is printed with its seed, index and mutation).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

import ferroq
from ferroq import nn

WORKER_FLAG = "--worker"
#: (name, bytes) of the files every case starts from, in this order.
BASES = (
    "linear_per_tensor",
    "float_words",
    "quantized_bags",
    "linear_per_channel",
    "linear_fp16",
    "static_linear",
    "lstm",
    "gru",
    "lstm_cell",
    "gru_cell",
    "rnn_cell",
    "tree",
    "custom",
)


#: Set in a worker's environment to make it abort at that case (the self-test of attribution).
ABORT_AT = "FERROQ_FUZZ_ABORT_AT"


class FuzzTagger(nn.Module):
    """A user model class around ferroq layers (saved as a ``custom:`` type)."""

    def forward(self, x: Any) -> Any:
        out, _ = self.rnn(x)
        return self.head(out)


def save_bases(directory: str) -> None:
    """Writes the base model files into ``directory`` (deterministic)."""
    from ferroq.quantization import (
        DeQuantStub,
        QuantStub,
        convert,
        default_qconfig,
        per_channel_dynamic_qconfig,
        prepare,
        quantize_dynamic,
    )

    np.random.seed(0)
    rng = np.random.default_rng(0)
    per_channel = nn.Sequential(nn.Linear(6, 5))
    per_channel[0].qconfig = per_channel_dynamic_qconfig
    static = nn.Sequential(QuantStub(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3, bias=False), DeQuantStub())
    static.qconfig = default_qconfig
    prepared = prepare(static)
    prepared(rng.standard_normal((8, 6)).astype(np.float32))
    tagger = FuzzTagger()
    tagger.rnn = nn.GRU(4, 5, batch_first=True)
    tagger.head = nn.Linear(5, 3)
    tree = nn.Sequential(
        OrderedDict(
            enc=nn.Sequential(nn.Linear(5, 4), nn.ReLU()),
            cell=nn.LSTMCell(4, 3),
            out=nn.Sequential(nn.Identity(), nn.Linear(3, 2, bias=False)),
        )
    )
    from ferroq.quantization import float_qparams_weight_only_qconfig, float_qparams_weight_only_qconfig_4bit

    words = nn.ModuleDict(
        {
            "embed": nn.Embedding(7, 4, padding_idx=1),
            "norm": nn.LayerNorm(4),
            "act": nn.ModuleList([nn.GELU("tanh"), nn.Softmax(dim=-1), nn.Dropout(0.1), nn.LeakyReLU(0.2)]),
        }
    )
    bags = nn.Sequential(nn.EmbeddingBag(9, 4, mode="sum"), nn.EmbeddingBag(9, 6, mode="sum"))
    bags[0].qconfig = float_qparams_weight_only_qconfig
    bags[1].qconfig = float_qparams_weight_only_qconfig_4bit
    models = {
        "float_words": words.eval(),
        "quantized_bags": quantize_dynamic(bags, {nn.EmbeddingBag}),
        "linear_per_tensor": quantize_dynamic(nn.Sequential(nn.Linear(6, 5))),
        "linear_per_channel": quantize_dynamic(per_channel),
        "linear_fp16": quantize_dynamic(nn.Sequential(nn.Linear(6, 5)), dtype="float16"),
        "static_linear": convert(prepared),
        "lstm": quantize_dynamic(nn.LSTM(4, 5, num_layers=2, bidirectional=True, proj_size=3).eval()),
        "gru": quantize_dynamic(nn.GRU(4, 5, bias=False).eval()),
        "lstm_cell": quantize_dynamic(nn.LSTMCell(4, 5).eval()),
        "gru_cell": quantize_dynamic(nn.GRUCell(4, 5).eval(), dtype="float16"),
        "rnn_cell": quantize_dynamic(nn.RNNCell(4, 5, nonlinearity="relu").eval()),
        "tree": quantize_dynamic(tree.eval()),
        "custom": quantize_dynamic(tagger.eval()),
    }
    for name in BASES:
        ferroq.save(models[name], os.path.join(directory, name + ".safetensors"))


# -- mutations ----------------------------------------------------------------------------------

HOSTILE_VALUES: List[Any] = [
    2**31, 2**31 - 1, 2**32, 2**62, 2**63, 2**64, 10**30, -1, -(2**63), 0, 1, 3, 1.5, 16.0, 1e9, 1e308, -0.0,
    float("nan"), float("inf"), "x", "16", "", "qint8", "float16", "quint8", True, False, None, [], {}, [1, 2],
    {"kind": "array"}, {"version": 1},
]
SAFETENSORS_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "XX"]


def pick(rng: np.random.Generator, options: List[Any]) -> Any:
    """One of ``options`` (Python values as they are: ``rng.choice`` would make them numpy ones)."""
    return options[int(rng.integers(len(options)))]


def split(data: bytes) -> Tuple[Dict[str, Any], bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def join(header: Any, body: bytes, text: Optional[str] = None) -> bytes:
    raw = (text if text is not None else json.dumps(header)).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _paths(value: Any, path: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every location inside a JSON value (keys of objects, indices of arrays)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, path + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, path + (index,)))
    return found


def _get(value: Any, path: Tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _hostile(rng: np.random.Generator, current: Any) -> Any:
    roll = rng.random()
    if roll < 0.25 and isinstance(current, int) and not isinstance(current, bool):
        return current * int(10 ** int(rng.integers(1, 13))) if rng.random() < 0.5 else current + int(rng.integers(-3, 4))
    if roll < 0.3:
        depth = int(pick(rng, [10, 500, 5000]))
        return json.loads("[" * depth + "1" + "]" * depth) if depth < 900 else "[" * depth  # a string when too deep for json.dumps
    return HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]


def edit_model(rng: np.random.Generator, header: Dict[str, Any], body: bytes) -> Tuple[str, bytes]:
    """A structured edit of the model description in the metadata."""
    model = json.loads(header["__metadata__"]["model"])
    paths = _paths(model)
    path = paths[int(rng.integers(1, len(paths)))]
    parent, last = _get(model, path[:-1]), path[-1]
    op = pick(rng, ["replace", "replace", "replace", "delete", "add", "duplicate", "nest", "copy"])
    if op == "replace":
        value = _hostile(rng, parent[last])
        parent[last] = value
        what = f"replace {path} by {json.dumps(value)[:60]}"
    elif op == "delete":
        del parent[last]
        what = f"delete {path}"
    elif op == "add":
        target = parent if isinstance(parent, dict) else model
        key = str(pick(rng, ["evil", "type", "config", "children", "state", "kind", "axis", "0", "in_features"]))
        target[key + ("" if rng.random() < 0.5 else "_x")] = _hostile(rng, None)
        what = f"add key {key} near {path}"
    elif op == "nest":  # wrap the value in many arrays, textually (json.dumps would recurse)
        depth = int(pick(rng, [50, 800, 100_000]))
        value, parent[last] = parent[last], "\u0000nest"
        text = json.dumps(model).replace('"\\u0000nest"', "[" * depth + json.dumps(value) + "]" * depth)
        header["__metadata__"]["model"] = text
        return f"nest {path} {depth} deep", join(header, body)
    elif op == "copy":  # graft another part of the description here (inflates counts and trees)
        parent[last] = json.loads(json.dumps(_get(model, paths[int(rng.integers(len(paths)))])))
        what = f"copy into {path}"
    else:  # duplicate a key textually
        text = json.dumps(model)
        keys = [m.start() for m in re.finditer(r'"[^"\\]*": ', text)]
        position = keys[int(rng.integers(len(keys)))]
        key = re.match(r'"[^"\\]*": ', text[position:]).group(0)  # type: ignore[union-attr]
        text = text[:position] + key + json.dumps(_hostile(rng, 0)) + ", " + text[position:]
        header["__metadata__"]["model"] = text
        return f"duplicate key {key.strip()}", join(header, body)
    header["__metadata__"]["model"] = json.dumps(model)
    return what, join(header, body)


def edit_tensors(rng: np.random.Generator, header: Dict[str, Any], body: bytes) -> Tuple[str, bytes]:
    """An edit of one tensor's entry in the safetensors header."""
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return "no tensors", join(header, body)
    name = names[int(rng.integers(len(names)))]
    info = header[name]
    op = pick(rng, ["dtype", "shape", "shape", "offsets", "delete", "rename", "clone", "repeat"])
    if op == "dtype":
        info["dtype"] = str(pick(rng, SAFETENSORS_DTYPES))
    elif op == "shape":
        shape = list(info["shape"])
        choice = rng.integers(5)
        if choice == 0 or not shape:
            shape.append(int(pick(rng, [1, 2, 0, 2**31])))
        elif choice == 1:
            shape.pop()
        elif choice == 2:
            shape = shape[::-1]
        elif choice == 3:
            shape[int(rng.integers(len(shape)))] = _hostile(rng, shape[0])
        else:
            shape = [int(np.prod(shape))]
        info["shape"] = shape
    elif op == "offsets":
        start, stop = info["data_offsets"]
        info["data_offsets"] = [start, _hostile(rng, stop)] if rng.random() < 0.5 else [stop, start]
    elif op == "delete":
        del header[name]
    elif op == "repeat":  # the same tensor name twice in the header's JSON, with other offsets
        other = dict(info, data_offsets=[0, int(rng.integers(0, 64))])
        text = "{" + json.dumps(name) + ": " + json.dumps(other) + ", " + json.dumps(header)[1:]
        return f"tensor {name}: repeated", join(header, body, text)
    elif op == "rename":
        header[name + str(pick(rng, ["", ".x", ".int", ".0"]))] = header.pop(name)
    else:
        header[name + ".copy"] = dict(info)
    return f"tensor {name}: {op}", join(header, body)


def edit_metadata(rng: np.random.Generator, header: Dict[str, Any], body: bytes) -> Tuple[str, bytes]:
    meta = header["__metadata__"]
    key = str(pick(rng, ["format", "format_version", "ferroq_version", "model", "extra"]))
    value = pick(rng, ["", "99", "-1", "1e9", "0", "ferroq", "x" * 1000, "{}", "[]", "null", "[{}]", None])
    if value is None:
        meta.pop(key, None)
    else:
        meta[key] = str(value)
    return f"metadata {key} = {str(value)[:20]!r}", join(header, body)


def flip(rng: np.random.Generator, data: bytes) -> Tuple[str, bytes]:
    buf = bytearray(data)
    (size,) = struct.unpack("<Q", data[:8])
    positions = []
    for _ in range(int(rng.integers(1, 9))):
        limit = min(len(buf), 8 + size) if rng.random() < 0.7 else len(buf)
        position = int(rng.integers(limit))
        buf[position] ^= int(rng.integers(1, 256))
        positions.append(position)
    return f"flip bytes {positions}", bytes(buf)


def truncate_or_extend(rng: np.random.Generator, data: bytes) -> Tuple[str, bytes]:
    roll = rng.random()
    if roll < 0.6:
        keep = int(rng.integers(len(data)))
        return f"truncate to {keep}", data[:keep]
    if roll < 0.8:
        extra = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        return f"append {len(extra)} bytes", data + extra
    prefix = int(pick(rng, [0, 1, 7, 2**20, 2**24 - 1, 2**40, 2**63, 2**64 - 1]))
    return f"length prefix {prefix}", struct.pack("<Q", prefix) + data[8:]


def _with_config(name: str, key: str, value: Any) -> Callable[[Dict[str, bytes]], Tuple[str, bytes]]:
    def make(bases: Dict[str, bytes]) -> Tuple[str, bytes]:
        header, body = split(bases[name])
        model = json.loads(header["__metadata__"]["model"])
        node = model["tree"] if name == "lstm" else model["tree"]["children"][0][1]
        node["config"][key] = value
        header["__metadata__"]["model"] = json.dumps(model)
        return f"fixed: {name} {key}={value}", join(header, body)

    return make


def _with_model_text(label: str, text: str) -> Callable[[Dict[str, bytes]], Tuple[str, bytes]]:
    def make(bases: Dict[str, bytes]) -> Tuple[str, bytes]:
        header, body = split(bases["linear_per_tensor"])
        header["__metadata__"]["model"] = text
        return f"fixed: model description of {label}", join(header, body)

    return make


#: Hand-made hostile files (the ones that once aborted, hung or ate memory), cases 0, 1, ...
FIXED_CASES: List[Callable[[Dict[str, bytes]], Tuple[str, bytes]]] = [
    _with_config("linear_per_tensor", "in_features", 2**31),
    _with_config("linear_per_tensor", "out_features", 2**40),
    _with_config("lstm", "num_layers", 10**9),
    _with_config("lstm", "num_layers", 1e9),
    _with_config("lstm", "hidden_size", 2**31 - 1),
    _with_model_text("15 MB of {}", "[" + "{}," * (5 * 2**20) + "{}]"),
    _with_model_text("a million [", "[" * 1_000_000),
    lambda bases: ("fixed: 99 MB header", struct.pack("<Q", 99 * 2**20) + b"{}" + b" " * (99 * 2**20 - 2)),
]


def make_case(seed: int, index: int, bases: Dict[str, bytes]) -> Tuple[str, bytes]:
    """Case ``index`` of the run with ``seed``: the fixed ones, then random mutations."""
    if index < len(FIXED_CASES):
        return FIXED_CASES[index](bases)
    rng = np.random.default_rng([seed, index])
    name = BASES[int(rng.integers(len(BASES)))]
    data = bases[name]
    descriptions = []
    for _ in range(1 if rng.random() < 0.8 else int(rng.integers(2, 4))):
        kind = str(pick(rng, ["flip", "cut", "model", "model", "model", "tensors", "tensors", "metadata"]))
        try:
            if kind == "flip":
                what, data = flip(rng, data)
            elif kind == "cut":
                what, data = truncate_or_extend(rng, data)
            else:
                header, body = split(data)
                edit = {"model": edit_model, "tensors": edit_tensors, "metadata": edit_metadata}[kind]
                what, data = edit(rng, header, body)
        except Exception:  # an earlier mutation broke what this one edits: cut the file instead
            what, data = truncate_or_extend(rng, data) if len(data) > 1 else ("empty", b"")
        descriptions.append(what)
    return f"{name}: " + "; ".join(descriptions), data


def read_bases(directory: str) -> Dict[str, bytes]:
    bases = {}
    for name in BASES:
        with open(os.path.join(directory, name + ".safetensors"), "rb") as f:
            bases[name] = f.read()
    return bases


# -- the worker ---------------------------------------------------------------------------------


def worker(directory: str, seed: int, start: int, stop: int, memory_mb: int, max_growth_mb: int) -> None:
    """Loads cases ``start..stop`` and reports each on stdout: ``start i`` before, ``end i outcome``
    after (outcome "loaded", "ValueError", "memory +N MB", or the other exception)."""
    import resource

    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import ferroq

    bases = read_bases(directory)
    path = os.path.join(directory, f"case-{os.getpid()}.safetensors")
    abort_at = int(os.environ.get(ABORT_AT, "-1"))
    for index in range(start, stop):
        _, data = make_case(seed, index, bases)
        with open(path, "wb") as f:
            f.write(data)
        del data
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"start {index}", flush=True)
        if index == abort_at:
            os.abort()
        try:
            ferroq.load(path, custom_modules={"FuzzTagger": FuzzTagger})
            outcome = "loaded"
        except ValueError:
            outcome = "ValueError"
        except BaseException as e:  # noqa: BLE001 - every other outcome is what this looks for
            outcome = f"{type(e).__name__}: {str(e)[:300]!r}"
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        if growth > max_growth_mb and outcome in ("loaded", "ValueError"):
            outcome = f"memory +{growth} MB ({outcome})"
        print(f"end {index} {outcome}", flush=True)
    os.remove(path)


# -- the driver ---------------------------------------------------------------------------------


class Failure(NamedTuple):
    index: int
    outcome: str


def _run_batch(directory: str, seed: int, start: int, stop: int, args: argparse.Namespace) -> Tuple[Counter, List[Failure]]:
    """Runs cases ``start..stop`` in workers, a new one after each crash or hang."""
    counts: Counter = Counter()
    failures: List[Failure] = []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="")
    while start < stop:
        command = [sys.executable, os.path.abspath(__file__), WORKER_FLAG, directory, str(seed), str(start), str(stop), str(args.memory_mb), str(args.max_growth_mb)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        current: Optional[int] = None
        pending = b""
        deadline = time.monotonic() + args.timeout
        hung = False
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                hung = True
                proc.kill()
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                word, number, *rest = line.decode().split(" ", 2)
                if word == "start":
                    current = int(number)
                    deadline = time.monotonic() + args.timeout
                else:
                    outcome = rest[0]
                    counts[outcome if outcome in ("loaded", "ValueError") else "failed"] += 1
                    if outcome not in ("loaded", "ValueError"):
                        failures.append(Failure(int(number), outcome))
                    current = None
        _, stderr = proc.communicate()
        if current is None and not hung and proc.returncode == 0:
            break
        if current is None:  # died before its first case or between cases
            raise RuntimeError(f"fuzz worker failed outside a case (exit {proc.returncode}): {stderr.decode()[-2000:]}")
        reason = f"hang (no answer in {args.timeout} s)" if hung else f"crash (exit status {proc.returncode})"
        failures.append(Failure(current, f"{reason}: {stderr.decode()[-500:]!r}"))
        counts["failed"] += 1
        start = current + 1
    return counts, failures


def run(iterations: int, seed: int, args: argparse.Namespace) -> Tuple[Counter, List[Failure]]:
    """Runs ``iterations`` cases in batches over ``args.jobs`` parallel workers."""
    from concurrent.futures import ThreadPoolExecutor

    with tempfile.TemporaryDirectory(prefix="ferroq-fuzz-") as directory:
        save_bases(directory)
        batches = [(s, min(s + args.batch, iterations)) for s in range(0, iterations, args.batch)]
        counts: Counter = Counter()
        failures: List[Failure] = []
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for batch_counts, batch_failures in pool.map(lambda b: _run_batch(directory, seed, b[0], b[1], args), batches):
                counts.update(batch_counts)
                failures.extend(batch_failures)
        bases = read_bases(directory)
        described = [Failure(f.index, f"{make_case(seed, f.index, bases)[0]} -> {f.outcome}") for f in sorted(failures)]
    return counts, described


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2000, help="number of cases (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="parallel worker processes (default 2)")
    parser.add_argument("--batch", type=int, default=500, help="cases per worker process (default 500)")
    parser.add_argument("--memory-mb", type=int, default=1536, help="address-space cap of a worker (default 1536)")
    parser.add_argument("--max-growth-mb", type=int, default=256, help="peak-memory growth of one load counted as a blowup")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one case may take (default 30)")
    parser.add_argument("--replay", nargs=2, metavar=("SEED:INDEX", "OUT"), help="write one case's file and exit")
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    if argv and argv[0] == WORKER_FLAG:
        directory, seed, start, stop, memory_mb, max_growth_mb = argv[1:]
        worker(directory, int(seed), int(start), int(stop), int(memory_mb), int(max_growth_mb))
        return 0
    args = parse_args(argv)
    if args.replay:
        seed, index = (int(part) for part in args.replay[0].split(":"))
        with tempfile.TemporaryDirectory() as directory:
            save_bases(directory)
            what, data = make_case(seed, index, read_bases(directory))
        with open(args.replay[1], "wb") as f:
            f.write(data)
        print(what)
        return 0
    began = time.monotonic()
    counts, failures = run(args.iterations, args.seed, args)
    for failure in failures:
        print(f"FAILED seed {args.seed} case {failure.index}: {failure.outcome}")
    print(f"{args.iterations} cases in {time.monotonic() - began:.1f} s: {dict(counts)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
