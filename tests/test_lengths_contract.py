"""The one ``lengths=`` contract of every recurrent stack, float (``ferroq.nn``) and dynamic
quantized (``ferroq.nn.quantized.dynamic``): one integer per batch element in 0..T; a sequence
runs over its own steps only, its outputs past its end are zero and its final state is the state
after its last valid step, so a length of 0 gives zero outputs and the initial state back."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import pytest

from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd

STEPS, INPUT, HIDDEN, LAYERS = 5, 3, 4, 2
LENGTHS = [STEPS, 0, 2]


def build(family: str, name: str, bidirectional: bool, batch_first: bool) -> Any:
    """A two-layer float module of class ``name`` (eval mode, fixed seed), or its dynamic quantized form."""
    np.random.seed(0)
    float_module = getattr(nn, name)(INPUT, HIDDEN, num_layers=LAYERS, bidirectional=bidirectional, batch_first=batch_first)
    float_module.eval()
    return float_module if family == "float" else getattr(nnqd, name).from_float(float_module)


def run(module: Any, x: np.ndarray, states: Tuple[np.ndarray, ...], lengths: Any) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """``module`` on the time-major ``x`` (transposed for a batch-first module) and initial
    ``states``; returns the time-major output and the final states as a tuple."""
    batch_first = module.batch_first and x.ndim == 3
    hx: Any = states if len(states) == 2 else states[0]
    y, final = module(np.ascontiguousarray(x.swapaxes(0, 1)) if batch_first else x, hx, lengths=lengths)
    return (y.swapaxes(0, 1) if batch_first else y), (final if isinstance(final, tuple) else (final,))


def assert_close(got: np.ndarray, want: np.ndarray, exact: bool) -> None:
    """Bit-equal for the quantized modules; within 1e-6 for the float ones, whose float GEMMs may
    round a different batch size differently."""
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("family", ["float", "quantized"])
def test_a_zero_length_keeps_the_initial_state_and_the_others_run_as_without_it(
    family: str, name: str, bidirectional: bool, batch_first: bool
) -> None:
    module = build(family, name, bidirectional, batch_first)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS, len(LENGTHS), INPUT)).astype(np.float32)
    rows = LAYERS * (2 if bidirectional else 1)
    states = tuple(rng.standard_normal((rows, len(LENGTHS), HIDDEN)).astype(np.float32) for _ in range(2 if name == "LSTM" else 1))

    y, finals = run(module, x, states, np.array(LENGTHS))

    assert y.shape == (STEPS, len(LENGTHS), (2 if bidirectional else 1) * HIDDEN)
    for b, n in enumerate(LENGTHS):
        assert np.all(y[n:, b] == 0)
    for final, initial in zip(finals, states):
        np.testing.assert_array_equal(final[:, 1], initial[:, 1])
    # Without the empty sequence the others give the same result: it adds no step and no range.
    keep = [0, 2]
    y_kept, finals_kept = run(module, x[:, keep], tuple(s[:, keep] for s in states), [LENGTHS[b] for b in keep])
    assert_close(y[:, keep], y_kept, exact=family == "quantized")
    for final, final_kept in zip(finals, finals_kept):
        assert_close(final[:, keep], final_kept, exact=family == "quantized")


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("family", ["float", "quantized"])
def test_an_unbatched_sequence_of_length_zero_returns_its_initial_state(family: str, name: str) -> None:
    module = build(family, name, bidirectional=True, batch_first=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((STEPS, INPUT)).astype(np.float32)
    states = tuple(rng.standard_normal((2 * LAYERS, HIDDEN)).astype(np.float32) for _ in range(2 if name == "LSTM" else 1))
    y, finals = run(module, x, states, 0)
    assert y.shape == (STEPS, 2 * HIDDEN) and np.all(y == 0)
    for final, initial in zip(finals, states):
        np.testing.assert_array_equal(final, initial)


@pytest.mark.parametrize("family", ["float", "quantized"])
def test_lengths_outside_zero_to_steps_are_refused_alike(family: str) -> None:
    module = build(family, "GRU", bidirectional=False, batch_first=False)
    x = np.zeros((STEPS, 2, INPUT), np.float32)
    for bad in (-1, STEPS + 1):
        with pytest.raises(ValueError, match=f"lengths must be between 0 and the sequence length {STEPS}, got {bad}"):
            module(x, lengths=[bad, 1])
