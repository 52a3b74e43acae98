"""examples/dask_batch.py on a real ``LocalCluster(processes=True)``: bit-identical to one
process, one model load per worker, and a worker killed mid-run still leaves every input scored
exactly once. Runs when dask.distributed is importable (``pip install '.[dask]'``)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install '.[dask]')")
pytest.importorskip("dask.array")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_batch.py"
spec = importlib.util.spec_from_file_location("dask_batch", EXAMPLE)
dask_batch = importlib.util.module_from_spec(spec)
sys.modules["dask_batch"] = dask_batch  # workers unpickle the task functions by module name
spec.loader.exec_module(dask_batch)

import ferroq  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tagger.safetensors")
    dask_batch.build_model(path)
    return path


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_class=distributed.Nanny
    )
    # the workers import the example by module name, like the test process does
    os.environ["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE.parent), os.environ.get("PYTHONPATH", "")])
    yield cluster
    cluster.close()


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        client.upload_file(str(EXAMPLE))
        yield client


def single_process(model_path, x):
    return dask_batch.tag(ferroq.load(model_path), x)


def test_two_workers_match_one_process_and_load_once(client, model_path):
    x = dask_batch.make_inputs(400)
    tags = dask_batch.tag_with_dask(client, x, model_path, block=50)
    np.testing.assert_array_equal(tags, single_process(model_path, x))
    assert tags.shape == (400, dask_batch.STEPS)
    loads = client.run(lambda dask_worker: dask_worker.ferroq_loads)
    assert len(loads) == 2 and sorted(loads.values()) == [1, 1]


def slow_tag_block(block):
    time.sleep(0.1)
    return dask_batch.tag_block(block)


def test_a_worker_killed_mid_run_still_scores_every_input_once(client, model_path):
    import dask.array as da

    x = dask_batch.make_inputs(800)
    client.register_plugin(dask_batch.LoadModelOnce(model_path))
    blocks = da.from_array(x, chunks=(40, dask_batch.STEPS, dask_batch.FEATURES))
    future = client.compute(blocks.map_blocks(slow_tag_block, drop_axis=2, dtype=np.int32))
    time.sleep(0.6)
    assert not future.done(), "the run finished before a worker could be killed; make it slower"
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker; the scheduler reruns its tasks
    tags = future.result(timeout=120)
    assert tags.shape == (800, dask_batch.STEPS)
    np.testing.assert_array_equal(tags, single_process(model_path, x))
    assert victim not in client.scheduler_info()["workers"]
