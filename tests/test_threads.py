"""Threads: intra-op threads (`ferroq.set_num_threads`) split large products and inputs without
changing a bit, and many Python threads calling the same modules at once (the kernels release
the GIL) get the single-threaded results, also while they contend for the intra-op pool."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd


def test_concurrent_calls_on_shared_modules_are_exact(rng):
    np.random.seed(0)
    linear = nnqd.Linear.from_float(ferroq.nn.Linear(96, 64))
    lstm = nnqd.LSTM.from_float(ferroq.nn.LSTM(16, 24, num_layers=2))
    inputs = [rng.standard_normal((int(rng.integers(1, 40)), 96)).astype(np.float32) for _ in range(64)]
    sequences = [rng.standard_normal((12, 3, 16)).astype(np.float32) for _ in range(16)]
    expected_linear = [linear(x) for x in inputs]
    expected_lstm = [lstm(x)[0] for x in sequences]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got_linear = list(pool.map(linear, inputs))
        got_lstm = [y for y, _ in pool.map(lstm, sequences)]
    for got, want in zip(got_linear + got_lstm, expected_linear + expected_lstm):
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_changing_the_thread_count_while_other_threads_compute(rng):
    linear = nnqd.Linear.from_float(ferroq.nn.Linear(256, 256))
    x = rng.standard_normal((512, 256)).astype(np.float32)
    expected = linear(x)
    before = ferroq.get_num_threads()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(linear, x) for _ in range(8)]
            for n in (1, 2, 1, 2):
                ferroq.set_num_threads(n)
            for future in futures:
                np.testing.assert_array_equal(future.result(), expected)
    finally:
        ferroq.set_num_threads(before)


@pytest.mark.parametrize(
    "rows,in_features,out_features", [(64, 512, 512), (300, 1024, 64), (1, 2048, 2048), (1, 2048, 2500), (1, 1024, 4100)]
)
def test_threads_give_identical_results(rng, rows, in_features, out_features):
    """Large products are split between threads (by rows, or by blocks of columns for a batch of
    one, claimed one by one, the last block narrower for 2500 and 4100 outputs; (300, 1024, 64)
    also splits the input quantization); the split changes nothing."""
    before = ferroq.get_num_threads()
    q = nnqd.Linear.from_float(ferroq.nn.Linear(in_features, out_features))
    x = rng.standard_normal((rows, in_features)).astype(np.float32)
    x[-1, -1] = 7.5  # the largest value sits in the last share
    try:
        ferroq.set_num_threads(1)
        one = q(x)
        ferroq.set_num_threads(2)
        two = q(x)
    finally:
        ferroq.set_num_threads(before)
    np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))


def test_threads_report_nan_in_any_share(rng):
    before = ferroq.get_num_threads()
    q = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 64))
    x = rng.standard_normal((300, 1024)).astype(np.float32)
    x[-1, 3] = np.nan
    try:
        ferroq.set_num_threads(2)
        with pytest.raises(ValueError, match="NaN"):
            q(x)
    finally:
        ferroq.set_num_threads(before)


def _forward_in_child(layer, x, threads):
    ferroq.set_num_threads(threads)
    return layer(x), ferroq.get_num_threads()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_multiprocessing_fork_child_runs_parallel_work(rng, threads):
    """A worker forked (multiprocessing, 'fork' start method) after the pool ran sets its own
    thread count and finishes large products: it builds its own pool."""
    before = ferroq.get_num_threads()
    q = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 1024))
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    try:
        ferroq.set_num_threads(2)
        want = q(x)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got, child_threads = pool.apply_async(_forward_in_child, (q, x, threads)).get(timeout=120)
    finally:
        ferroq.set_num_threads(before)
    assert child_threads == threads
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


FORK_SCRIPT = """
import os, sys, threading
import numpy as np
import ferroq
from ferroq.nn.quantized import dynamic as nnqd

rng = np.random.default_rng(5)
q = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 512))
x = rng.standard_normal((200, 1024)).astype(np.float32)
ferroq.set_num_threads(1)
want = q(x).view(np.uint32)
ferroq.set_num_threads(2)
assert np.array_equal(q(x).view(np.uint32), want)  # the pool exists and ran


def child(threads):
    ferroq.set_num_threads(threads)
    ok = ferroq.get_num_threads() == threads
    for _ in range(3):
        ok = ok and np.array_equal(q(x).view(np.uint32), want)
    os._exit(0 if ok else 1)


def fork_and_check(threads):
    pid = os.fork()
    if pid == 0:
        try:
            child(threads)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (threads, status)


for threads in (1, 2, 2, 1):
    fork_and_check(threads)

# Forks while another thread keeps the pool and the settings busy.
stop = threading.Event()
def busy():
    while not stop.is_set():
        assert np.array_equal(q(x).view(np.uint32), want)
        ferroq.set_num_threads(2)
worker = threading.Thread(target=busy)
worker.start()
try:
    for i in range(6):
        fork_and_check(1 + i % 2)
finally:
    stop.set()
    worker.join()
assert np.array_equal(q(x).view(np.uint32), want)  # the parent's pool still works
print("forks ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_sets_its_threads_and_runs_large_products():
    """os.fork after the pool exists (also while another thread computes with it): the child
    calls set_num_threads(1) or (2) and gets the parent's bits; nothing hangs (the script runs in
    its own process under a timeout)."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "forks ok" in result.stdout


@pytest.mark.parametrize("bad", [0, -1, ferroq.MAX_THREADS + 1, 2**40, 2**62, 2**80])
def test_set_num_threads_refuses_counts_outside_its_range(bad):
    before = ferroq.get_num_threads()
    with pytest.raises(ValueError, match=f"positive number of threads, at most {ferroq.MAX_THREADS}"):
        ferroq.set_num_threads(bad)
    assert ferroq.get_num_threads() == before


@pytest.mark.parametrize("bad", [True, 1.0, 2.5, "2", None, np.float64(2)])
def test_set_num_threads_refuses_non_integers(bad):
    with pytest.raises(TypeError):
        ferroq.set_num_threads(bad)


def test_the_core_refuses_huge_thread_counts_without_panicking():
    before = ferroq.get_num_threads()
    for bad in (0, 2**40, 2**62, 2**64 - 1):
        with pytest.raises(ValueError):
            ferroq._core.set_num_threads(bad)
    for bad in (-1, 2**64):
        with pytest.raises(OverflowError):
            ferroq._core.set_num_threads(bad)
    assert ferroq.get_num_threads() == before


def test_the_maximum_thread_count_is_accepted():
    before = ferroq.get_num_threads()
    try:
        ferroq.set_num_threads(ferroq.MAX_THREADS)
        assert ferroq.get_num_threads() == ferroq.MAX_THREADS
    finally:
        ferroq.set_num_threads(before)


def test_python_threads_contending_for_the_pool_get_exact_results(rng):
    """Several Python threads run large products at once with 2 intra-op threads: one holds the
    pool, the others compute alone; every result is the single-threaded one."""
    before = ferroq.get_num_threads()
    q = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 512))
    inputs = [rng.standard_normal((int(rng.integers(64, 200)), 1024)).astype(np.float32) for _ in range(24)]
    try:
        ferroq.set_num_threads(1)
        expected = [q(x) for x in inputs]
        ferroq.set_num_threads(2)
        with ThreadPoolExecutor(max_workers=3) as pool:
            got = list(pool.map(q, inputs))
    finally:
        ferroq.set_num_threads(before)
    for g, want in zip(got, expected):
        np.testing.assert_array_equal(g.view(np.uint32), want.view(np.uint32))
