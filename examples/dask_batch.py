"""Batch inference with Dask: tag many sequences with a quantized ferroq LSTM.

The model is saved once as one ``.safetensors`` file; each Dask worker process loads it once
(a worker plugin keeps it on the worker), and every task scores one block of sequences with it.
Run it from the repository root:

    pip install '.[dask]' && python examples/dask_batch.py --sequences 2000 --workers 2

Rules that make this scale (see the README section "Many cores, many processes"):
- one model load per worker, never per task (that is what the plugin is for);
- ``threads_per_worker=1`` and ``ferroq.set_num_threads(1)`` in each worker: let Dask run one
  process per core instead of two levels of threads competing for the same cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
from distributed import WorkerPlugin

import ferroq
from ferroq import nn

FEATURES, HIDDEN, TAGS, STEPS = 40, 128, 12, 50


def build_model(path: str, seed: int = 0) -> None:
    """A 2-layer LSTM tagger (float, random weights for the example), quantized and saved.

    The file holds an ``nn.Sequential`` used as a named container: ``lstm`` then ``head``."""
    np.random.seed(seed)
    tagger = nn.Sequential(OrderedDict(lstm=nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True), head=nn.Linear(HIDDEN, TAGS)))
    ferroq.save(ferroq.quantization.quantize_dynamic(tagger.eval()), path)


def tag(model: Any, block: np.ndarray) -> np.ndarray:
    """Tag ids (batch, steps) for a block of sequences (batch, steps, features)."""
    lstm, head = model.lstm, model.head
    hidden, _ = lstm(block)
    return head(hidden).argmax(axis=-1).astype(np.int32)


class LoadModelOnce(WorkerPlugin):
    """A Dask worker plugin: loads the model file when the worker starts and keeps it there."""

    name = "ferroq-model"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def setup(self, worker: Any) -> None:
        ferroq.set_num_threads(1)
        worker.ferroq_model = ferroq.load(self.path)
        worker.ferroq_loads = getattr(worker, "ferroq_loads", 0) + 1

    def teardown(self, worker: Any) -> None:
        worker.ferroq_model = None


def tag_block(block: np.ndarray) -> np.ndarray:
    """The task: runs on a worker, with that worker's model."""
    from distributed import get_worker

    return tag(get_worker().ferroq_model, block)


def make_inputs(sequences: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((sequences, STEPS, FEATURES)).astype(np.float32)


def tag_with_dask(client: Any, x: np.ndarray, model_path: str, block: int = 100) -> np.ndarray:
    """Registers the plugin and tags ``x`` block by block on the cluster."""
    import dask.array as da

    client.register_plugin(LoadModelOnce(model_path))
    blocks = da.from_array(x, chunks=(block, STEPS, FEATURES))
    tags = blocks.map_blocks(tag_block, drop_axis=2, dtype=np.int32)
    return tags.compute()


def main(argv: Optional[list] = None) -> None:
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="where to write the tags (.npy); default: a temporary file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "tagger.safetensors")
        build_model(model_path)
        x = make_inputs(args.sequences)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                start = time.perf_counter()
                tags = tag_with_dask(client, x, model_path)
                elapsed = time.perf_counter() - start
                loads = client.run(lambda dask_worker: dask_worker.ferroq_loads)
        out = args.out or os.path.join(tmp, "tags.npy")
        np.save(out, tags)
        print(f"tagged {len(x)} sequences of {STEPS} steps with {args.workers} worker(s) in {elapsed:.2f} s "
              f"({len(x) / elapsed:,.0f} sequences/s); model loads per worker: {sorted(loads.values())}; tags in {out}")


if __name__ == "__main__":
    main()
