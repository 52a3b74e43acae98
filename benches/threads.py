"""How calls scale with threads: one module called from 1 or 2 Python threads (each with
``ferroq.set_num_threads(1)``), against one Python thread using 2 intra-op threads.

Run: ``python benches/threads.py``. Prints calls per second for a batch-1 Linear (the streaming
case, too small to split inside one call) and a batch-256 Linear (large enough to split).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

import ferroq
from ferroq.nn.quantized import dynamic as nnqd


def calls_per_second(fn: Callable[[], object], python_threads: int, seconds: float = 1.0) -> float:
    def worker() -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            fn()
            count += 1
        return count

    with ThreadPoolExecutor(python_threads) as pool:
        return sum(pool.map(lambda _: worker(), range(python_threads))) / seconds


def main() -> None:
    np.random.seed(0)
    layer = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 1024))
    print(f"ferroq {ferroq.__version__}, backend {ferroq.backend()}, Linear(1024, 1024) int8")
    print(f"{'batch':>6} | {'1 py thread, 1 op thread':>25} | {'2 py threads, 1 op thread':>26} | {'1 py thread, 2 op threads':>26}")
    for batch in (1, 256):
        x = np.random.randn(batch, 1024).astype(np.float32)
        ferroq.set_num_threads(1)
        one = calls_per_second(lambda: layer(x), 1)
        two_py = calls_per_second(lambda: layer(x), 2)
        ferroq.set_num_threads(2)
        two_op = calls_per_second(lambda: layer(x), 1)
        print(f"{batch:>6} | {one:20,.0f}/s    | {two_py:18,.0f}/s ({two_py / one:.2f}x) | {two_op:18,.0f}/s ({two_op / one:.2f}x)")


if __name__ == "__main__":
    main()
