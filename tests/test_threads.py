"""Threads: intra-op threads (`ferroq.set_num_threads`) split large products and inputs without
changing a bit, and many Python threads calling the same modules at once (the kernels release
the GIL) get the single-threaded results, also while they contend for the intra-op pool."""

from __future__ import annotations

import multiprocessing
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


@pytest.mark.parametrize("rows,in_features,out_features", [(64, 512, 512), (300, 1024, 64), (1, 2048, 2048), (1, 2048, 2500)])
def test_threads_give_identical_results(rng, rows, in_features, out_features):
    """Large products are split between threads (by rows, or by blocks of columns for a batch of
    one, the last block narrower for 2500 outputs; (300, 1024, 64) also splits the input
    quantization); the split changes nothing."""
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


def _forward_in_child(layer, x):
    return layer(x)


def test_a_forked_child_runs_parallel_work(rng):
    """A child forked after the pool ran (its helper threads do not exist there) still finishes
    large products: the calling thread claims every share itself."""
    before = ferroq.get_num_threads()
    q = nnqd.Linear.from_float(ferroq.nn.Linear(1024, 1024))
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    try:
        ferroq.set_num_threads(2)
        want = q(x)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got = pool.apply_async(_forward_in_child, (q, x)).get(timeout=120)
    finally:
        ferroq.set_num_threads(before)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


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
