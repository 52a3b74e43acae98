"""Resident memory of dynamic int8 Linear layers of awkward shapes: very few outputs (the packed
layout's last panel), very few inputs (its padding of ``in_features`` to 4), and ordinary ones.

Each shape is measured in a fresh subprocess: the resident growth (``/proc/self/statm``) from just
before the layer is built to after its weights are set (``set_weight_bias`` with a
``QTensor.from_int_repr`` of ones, the source array then deleted) and one forward call made. Two
figures, in MiB and in units of the layer's int8 weight bytes (``out x in``): *model*, after the
weights are set, and *after a call*, once one forward call of batch 1 has run and its output is
gone (the call keeps buffers for the next one: the quantized input, ``in_features`` bytes, and
per-column multipliers). The per-output-column data (column sums and offsets, scales, zero points,
bias: 4 bytes each per column) is part of any layout: for ``in_features`` of 1 it outweighs the
weights.

Run: ``python benches/memory_narrow.py`` (``--shapes 67108864x1,1x4194304`` to pick shapes, given
as ``in_features x out_features``). Linux only.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from typing import List, Tuple

# (in_features, out_features)
DEFAULT_SHAPES: List[Tuple[int, int]] = [
    (2**26, 1),
    (2**24, 4),
    (2**22, 15),
    (1, 2**22),
    (3, 2**21),
    (8192, 8192),
    (768, 3072),
    (4096, 1000),
]
MIB = 1 << 20


def rss() -> int:
    """Resident bytes after a garbage collection."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(in_features: int, out_features: int) -> None:
    """In a worker: builds the layer and prints its resident growth in bytes."""
    import numpy as np

    import ferroq

    bias = np.zeros(out_features, np.float32)
    x = np.ones((1, in_features), np.float32)
    before = rss()
    m = ferroq.nn.quantized.dynamic.Linear(in_features, out_features)
    w = np.ones((out_features, in_features), np.int8)
    m.set_weight_bias(ferroq.QTensor.from_int_repr(w, 0.1, 0), bias)
    del w
    model = rss() - before
    y = m(x)
    del y
    print(model, rss() - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", help="comma-separated in x out shapes, e.g. 67108864x1,1x4194304")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        k, n = (int(v) for v in args.worker.split("x"))
        measure(k, n)
        return
    shapes = DEFAULT_SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]  # type: ignore[misc]
    print(f"{'Linear(in, out)':>22} {'int8 weights':>13} {'model':>19} {'after a call':>19}")
    for k, n in shapes:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", f"{k}x{n}"], check=True, capture_output=True, text=True
        ).stdout
        model, called = (int(v) for v in out.split()[-2:])
        weights = k * n
        figures = "".join(f" {b / MIB:>9.1f} MiB {b / weights:>6.2f}x" for b in (model, called))
        print(f"{f'Linear({k}, {n})':>22} {weights / MIB:>9.1f} MiB{figures}")


if __name__ == "__main__":
    main()
