"""Where a loaded model's first call spends its extra time: one-time work, or the caches?

For ``quantize_dynamic(Sequential(Linear(8192, 8192)))`` (64 MiB of int8 weights) saved and loaded
with ``ferroq.load`` (which runs its warm-up) in this fresh process, prints:

- the first calls after the load (batch 1: time, page faults, context switches) and the median of
  calls 2 to 100, measured as ``benches/memory.py`` does;
- a *replay* of the first call: the caches evicted (a 512 MiB array read), the load's warm-up run
  again, the same settling, one call. The process did all its one-time work long before, so a
  first call as slow as its replay does none;
- the *ramp*: a call's time after the eviction and ``p`` passes over the data (``p`` batch-1
  calls), for the Linear and for a plain numpy scan of a 64 MiB array (``p`` scans): how many
  passes data of that size takes to come back into the caches, with no library code in it;
- one call after a pause of 0.3 to 20 ms, asleep or in a busy loop that keeps the core running
  (a pool thread parks 0.5 ms after its last task: a call after a longer pause wakes it).

Each figure but the first calls is the median of 5 repetitions. Run: ``python benches/first_call.py``
(``--threads N``, default ferroq's). Linux only (page faults from ``getrusage``).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

import ferroq
from ferroq._warm_up import warm_up

REPEATS = 5


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
    parser.add_argument("--threads", type=int, default=0, help="ferroq.set_num_threads (default: ferroq's)")
    args = parser.parse_args()
    if args.threads:
        ferroq.set_num_threads(args.threads)
    nn = ferroq.nn
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "linear.safetensors")
        ferroq.save(ferroq.quantization.quantize_dynamic(nn.Sequential(nn.Linear(8192, 8192))), path)
        gc.collect()
        x = np.random.default_rng(0).standard_normal((1, 8192)).astype(np.float32)
        settle()
        model = ferroq.load(path)
    settle()
    call = lambda: model(x)  # noqa: E731
    calls = [timed(call) for _ in range(100)]
    print(f"ferroq {ferroq.__version__}, backend {ferroq.backend()}, {ferroq.get_num_threads()} threads, Linear(8192, 8192) batch 1")
    print("calls 1-6 after load, ms:    " + " ".join(f"{ms:5.2f}" for ms, _, _ in calls[:6]))
    print(f"median of calls 2-100, ms:   {median([ms for ms, _, _ in calls[1:]]):5.2f}")
    print("page faults in calls 1-6:    " + " ".join(f"{faults:5d}" for _, faults, _ in calls[:6]))
    print("context switches, calls 1-6: " + " ".join(f"{switches:5d}" for _, _, switches in calls[:6]))

    evict_array = np.ones(512 << 17, np.int64)  # 512 MiB
    scan_array = np.ones(8 << 20, np.int64)  # 64 MiB
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
    # Each row's condition, given the function it runs before.
    def passes_since_eviction(passes: int) -> Callable[[Callable[[], object]], Callable[[], None]]:
        return lambda run: evict_then(run, passes)

    rows = [(f"{passes} passes since eviction", passes_since_eviction(passes)) for passes in range(7)]
    rows += [(f"after {ms} ms {label}", pause(wait, ms)) for label, wait in [("asleep", time.sleep), ("busy", busy)] for ms in (0.3, 1, 2, 20)]
    # All of the Linear's rows first, then the scan's: a scan between the Linear's rows would
    # push its weights out of the caches.
    results: Dict[Tuple[str, str], float] = {}
    for name, run in [("linear", call), ("scan", scan)]:
        results[name, "steady"] = steady(run)
        for label, before in rows:
            results[name, label] = after(run, before(run))
    print(f"{'':>26} | {'Linear ms':>9} {'/ steady':>8} | {'64 MiB scan ms':>14} {'/ steady':>8}")
    for label in ["steady"] + [label for label, _ in rows]:
        linear, scanned = results["linear", label], results["scan", label]
        linear_ratio, scan_ratio = linear / results["linear", "steady"], scanned / results["scan", "steady"]
        print(f"{label:>26} | {linear:9.2f} {linear_ratio:7.2f}x | {scanned:14.2f} {scan_ratio:7.2f}x")

if __name__ == "__main__":
    main()
