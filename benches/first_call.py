"""Where a loaded model's first call spends its extra time: one-time work, or the caches?

For ``quantize_dynamic(Sequential(Linear(8192, 8192)))`` (64 MiB of int8 weights, input of batch
1) or, with ``--model lstm``, ``quantize_dynamic(Sequential(LSTM(1024, 1024, num_layers=4)))``
(32 MiB, input of 10 steps of batch 1, as ``benches/memory.py`` measures them), saved and loaded
with ``ferroq.load`` (which runs its warm-up) in this fresh process, prints:

- the first calls after the load (time, page faults, context switches) and the median of
  calls 2 to 100, measured as ``benches/memory.py`` does;
- a *replay* of the first call: the caches evicted (a 512 MiB array read), the load's warm-up run
  again, the same settling, one call. The process did all its one-time work long before, so a
  first call as slow as its replay does none;
- the first call of a *new load*: the same file loaded again (fresh weights, the load's warm-up,
  the same settling, one call) after the process has run the model for a while: everything the
  library does for a loaded model's first call, in a process whose cores have been busy with it;
- the *ramp*: a call's time after the eviction and ``p`` passes over the data (``p`` calls), for
  the model and for a plain numpy scan of an array of its weights' size (``p`` scans): how many
  passes data of that size takes to come back into the caches, with no library code in it;
- one call after a pause of 0.3 to 20 ms, asleep or in a busy loop that keeps the core running
  (a pool thread parks 0.5 ms after its last task: a call after a longer pause wakes it).

Each figure but the first calls is the median of 5 repetitions. Run: ``python benches/first_call.py``
(``--model lstm``, ``--threads N``, default ferroq's). Linux only (page faults from ``getrusage``).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

import ferroq
from ferroq._warm_up import warm_up

REPEATS = 5

#: Per model: its description, its float model, its input's shape, and its int8 weights' bytes.
MODELS: Dict[str, Tuple[str, Callable[[Any], Any], Tuple[int, ...], int]] = {
    "linear": ("Linear(8192, 8192) batch 1", lambda nn: nn.Linear(8192, 8192), (1, 8192), 8192 * 8192),
    "lstm": ("LSTM(1024, 1024, num_layers=4), 10 steps of batch 1", lambda nn: nn.LSTM(1024, 1024, num_layers=4), (10, 1, 1024), 4 * 2 * 4096 * 1024),
}


def settle() -> None:
    """What ``benches/memory.py`` does between the load and the first call."""
    gc.collect()
    with open("/proc/self/status") as f:
        f.read()


def timed(run: Callable[[], object]) -> Tuple[float, int, int]:
    """Milliseconds, minor page faults and context switches (all threads) of one ``run()``."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    run()
    ms = (time.perf_counter() - start) * 1e3
    after = resource.getrusage(resource.RUSAGE_SELF)
    switches = after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw
    return ms, after.ru_minflt - before.ru_minflt, switches


def median(values: List[float]) -> float:
    return sorted(values)[len(values) // 2]


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="linear", help="the model (default: linear)")
    parser.add_argument("--threads", type=int, default=0, help="ferroq.set_num_threads (default: ferroq's)")
    args = parser.parse_args()
    if args.threads:
        ferroq.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        measure(args.model, os.path.join(tmp, "model.safetensors"))


def measure(which: str, path: str) -> None:
    """Prints the figures for model ``which``, saved to ``path`` (kept until the end: loaded again)."""
    description, layer, shape, weight_bytes = MODELS[which]
    nn = ferroq.nn
    ferroq.save(ferroq.quantization.quantize_dynamic(nn.Sequential(layer(nn))), path)
    gc.collect()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    settle()
    model = ferroq.load(path)
    settle()
    call = lambda: model(x)  # noqa: E731
    calls = [timed(call) for _ in range(100)]
    print(f"ferroq {ferroq.__version__}, backend {ferroq.backend()}, {ferroq.get_num_threads()} threads, {description}")
    print("calls 1-6 after load, ms:    " + " ".join(f"{ms:5.2f}" for ms, _, _ in calls[:6]))
    print(f"median of calls 2-100, ms:   {median([ms for ms, _, _ in calls[1:]]):5.2f}")
    print("page faults in calls 1-6:    " + " ".join(f"{faults:5d}" for _, faults, _ in calls[:6]))
    print("context switches, calls 1-6: " + " ".join(f"{switches:5d}" for _, _, switches in calls[:6]))

    evict_array = np.ones(512 << 17, np.int64)  # 512 MiB
    scan_array = np.ones(weight_bytes // 8, np.int64)  # as large as the weights
    scan = lambda: np.bitwise_xor.reduce(scan_array)  # noqa: E731

    def evict() -> None:
        np.bitwise_xor.reduce(evict_array)

    def after(run: Callable[[], object], before: Callable[[], None]) -> float:
        """The median time of ``run()`` right after ``before()``, each time from a steady state."""
        times = []
        for _ in range(REPEATS):
            for _ in range(30):
                run()
            before()
            times.append(timed(run)[0])
        return median(times)

    def evict_then(run: Callable[[], object], passes: int) -> Callable[[], None]:
        def before() -> None:
            evict()
            for _ in range(passes):
                run()

        return before

    def replay() -> None:
        evict()
        warm_up(model)
        settle()

    def pause(wait: Callable[[float], None], ms: float) -> Callable[[Callable[[], object]], Callable[[], None]]:
        return lambda run: lambda: wait(ms / 1e3)

    def steady(run: Callable[[], object]) -> float:
        for _ in range(50):
            run()
        return median([timed(run)[0] for _ in range(31)])

    print(f"replayed first call, ms:     {after(call, replay):5.2f}  (steady {steady(call):5.2f})")

    def first_call_of_a_new_load() -> float:
        """The first call of the same file loaded again, in this process after it has run the
        model for a while: fresh weights, the load's warm-up and settling, then one call."""
        for _ in range(30):
            model(x)
        settle()
        again = ferroq.load(path)
        settle()
        return timed(lambda: again(x))[0]

    print(f"first call of a new load, ms: {median([first_call_of_a_new_load() for _ in range(REPEATS)]):5.2f}")
    # Each row's condition, given the function it runs before.
    def passes_since_eviction(passes: int) -> Callable[[Callable[[], object]], Callable[[], None]]:
        return lambda run: evict_then(run, passes)

    rows = [(f"{passes} passes since eviction", passes_since_eviction(passes)) for passes in range(7)]
    rows += [(f"after {ms} ms {label}", pause(wait, ms)) for label, wait in [("asleep", time.sleep), ("busy", busy)] for ms in (0.3, 1, 2, 20)]
    # All of the model's rows first, then the scan's: a scan between the model's rows would
    # push its weights out of the caches.
    results: Dict[Tuple[str, str], float] = {}
    for name, run in [("model", call), ("scan", scan)]:
        results[name, "steady"] = steady(run)
        for label, before in rows:
            results[name, label] = after(run, before(run))
    scan_title = f"{weight_bytes >> 20} MiB scan ms"
    print(f"{'':>26} | {'model ms':>9} {'/ steady':>8} | {scan_title:>14} {'/ steady':>8}")
    for label in ["steady"] + [label for label, _ in rows]:
        timed_model, scanned = results["model", label], results["scan", label]
        model_ratio, scan_ratio = timed_model / results["model", "steady"], scanned / results["scan", "steady"]
        print(f"{label:>26} | {timed_model:9.2f} {model_ratio:7.2f}x | {scanned:14.2f} {scan_ratio:7.2f}x")

if __name__ == "__main__":
    main()
