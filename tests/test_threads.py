"""Many Python threads calling the same modules at once (the kernels release the GIL): every
result equals the single-threaded one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

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
