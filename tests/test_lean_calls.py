"""The lean call path of the dynamic modules (``try_forward``/``try_cell`` of the ``_core`` objects):
one check in the core that the arguments need no conversion, then the computation. It must give
the bits of the checked path, decline (None) every argument it does not take as it is, raise the
checked path's errors for the values it does take, and return fresh arrays.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import numpy as np
import pytest

from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import float16_dynamic_qconfig

RNG = np.random.default_rng(7)


def converted(float_module: Callable[[], Any], fp16: bool = False) -> Any:
    np.random.seed(0)
    m = float_module().eval()
    if fp16:
        m.qconfig = float16_dynamic_qconfig
    return type_of(m).from_float(m)


def type_of(m: Any) -> Any:
    return getattr(nnqd, type(m).__name__)


def normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def bits(values: Any) -> List[bytes]:
    if isinstance(values, np.ndarray):
        return [values.dtype.str.encode(), repr(values.shape).encode(), values.tobytes()]
    return [b for v in values for b in bits(v)]


def fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a) if a.ndim > 1 else a[::-1].copy()[::-1]


class Sub(np.ndarray):
    pass


def declined_variants(a: np.ndarray) -> List[Any]:
    """Forms of ``a``'s values that the lean path must leave to the checked one."""
    out: List[Any] = [a.astype(np.float64), a.tolist(), a.view(Sub), a.astype(">f4")]
    if a.ndim > 1 and a.shape[0] > 1 and a.shape[-1] > 1:
        out.append(np.asfortranarray(a))
    out.append(np.repeat(a, 2, axis=-1)[..., ::2])  # strided
    return out


CELLS = [
    ("LSTMCell", lambda: nn.LSTMCell(5, 6)),
    ("GRUCell", lambda: nn.GRUCell(5, 6)),
    ("RNNCell", lambda: nn.RNNCell(5, 6)),
    ("RNNCell relu", lambda: nn.RNNCell(5, 6, nonlinearity="relu")),
]


def cell_state(name: str, *shape: int) -> Any:
    return (normal(*shape), normal(*shape)) if name == "LSTMCell" else normal(*shape)


def checked_cell(module: Any, x: Any, hx: Any) -> Any:
    """The checked path the lean one replaces."""
    if isinstance(module, nnqd.LSTMCell):
        states = (None, None) if hx is None else hx
        return module._checked_step(x, states)
    return module._checked_step(x, (hx,))[0]


@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("name,build", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("batch", [None, 0, 1, 3])
def test_a_cell_step_on_the_lean_path_gives_the_bits_of_the_checked_path(name: str, build: Any, batch: Any, fp16: bool) -> None:
    module = converted(build, fp16)
    lead = () if batch is None else (batch,)
    x = normal(*lead, 5)
    for hx in (None, cell_state(name, *lead, 6)):
        taken = module._packed.try_cell(x, hx)
        assert taken is not None
        assert bits(taken) == bits(checked_cell(module, x, hx)) == bits(module(x, hx))


@pytest.mark.parametrize("name,build", CELLS, ids=[c[0] for c in CELLS])
def test_a_cell_step_declines_every_argument_it_would_have_to_convert(name: str, build: Any) -> None:
    module = converted(build)
    x, hx = normal(3, 5), cell_state(name, 3, 6)
    expected = bits(module(x, hx))
    for variant in declined_variants(x):
        assert module._packed.try_cell(variant, hx) is None
        assert bits(module(variant, hx)) == expected
    states = list(hx) if name == "LSTMCell" else [hx]
    for i, state in enumerate(states):
        for variant in declined_variants(state):
            changed = list(states)
            changed[i] = variant
            hx_changed = tuple(changed) if name == "LSTMCell" else changed[0]
            assert module._packed.try_cell(x, hx_changed) is None
            assert bits(module(x, hx_changed)) == expected
    # wrong shapes, ranks and containers are the checked path's to refuse, with its messages
    assert module._packed.try_cell(normal(3, 4), hx) is None
    assert module._packed.try_cell(normal(1, 3, 5), hx) is None
    assert module._packed.try_cell(normal(5), hx) is None
    assert module._packed.try_cell(normal(2, 5), hx) is None
    if name == "LSTMCell":
        assert module._packed.try_cell(x, list(hx)) is None
        assert bits(module(x, list(hx))) == expected
        assert module._packed.try_cell(x, (hx[0],)) is None
        assert module._packed.try_cell(x, hx[0]) is None
        assert module._packed.try_cell(x, (None, None)) is None
        with pytest.raises(TypeError, match="hx must be a tuple"):
            module(x, hx[0])
    else:
        assert module._packed.try_cell(x, (hx,)) is None


@pytest.mark.parametrize("name,build", CELLS, ids=[c[0] for c in CELLS])
def test_nan_in_a_cell_step_raises_the_checked_paths_error(name: str, build: Any) -> None:
    module = converted(build)
    x, hx = normal(2, 5), cell_state(name, 2, 6)
    bad_x = x.copy()
    bad_x[1, 2] = np.nan
    with pytest.raises(ValueError) as lean:
        module(bad_x, hx)
    with pytest.raises(ValueError) as checked:
        checked_cell(module, bad_x, hx)
    assert str(lean.value) == str(checked.value)
    h = (hx[0] if name == "LSTMCell" else hx).copy()
    h[0, 0] = np.inf
    bad_hx = (h, hx[1]) if name == "LSTMCell" else h
    with pytest.raises(ValueError, match="h contains NaN or infinity") as lean:
        module(x, bad_hx)
    with pytest.raises(ValueError) as checked:
        checked_cell(module, x, bad_hx)
    assert str(lean.value) == str(checked.value)


LINEARS = [(False, (3, 7)), (False, (7,)), (False, (2, 3, 7)), (False, (0, 7)), (True, (3, 7)), (True, (2, 1, 7))]


@pytest.mark.parametrize("fp16,shape", LINEARS)
def test_a_linear_call_on_the_lean_path_gives_the_bits_of_the_checked_path(fp16: bool, shape: Any) -> None:
    module = converted(lambda: nn.Linear(7, 4), fp16)
    x = normal(*shape)
    taken = module._packed.try_forward(x)
    assert taken is not None and taken.shape == shape[:-1] + (4,)
    checked = module._packed.forward(x.reshape(-1, 7)).reshape(shape[:-1] + (4,))
    assert bits(taken) == bits(checked) == bits(module(x))
    variants = [normal(*shape[:-1], 6), np.ones((), np.float32)]
    if x.size:  # (numpy flags any empty view C-contiguous: the lean path may take it, rightly)
        variants += declined_variants(x)
    for variant in variants:
        assert module._packed.try_forward(variant) is None


def test_nan_in_a_linear_call_raises_the_checked_paths_error() -> None:
    module = converted(lambda: nn.Linear(7, 4))
    x = normal(3, 7)
    x[1, 1] = np.nan
    with pytest.raises(ValueError) as lean:
        module(x)
    with pytest.raises(ValueError) as checked:
        module._packed.forward(x)
    assert str(lean.value) == str(checked.value)


STACKS = [
    ("LSTM", lambda: nn.LSTM(5, 6, num_layers=2)),
    ("LSTM proj", lambda: nn.LSTM(5, 6, proj_size=3, bidirectional=True)),
    ("GRU", lambda: nn.GRU(5, 6, bidirectional=True)),
    ("RNN", lambda: nn.RNN(5, 6, batch_first=True)),
]


def stack_state(module: Any, batch: int) -> Any:
    states = module.num_layers * (2 if module.bidirectional else 1)
    if isinstance(module, nnqd.LSTM):
        return normal(states, batch, module.proj_size or module.hidden_size), normal(states, batch, module.hidden_size)
    return normal(states, batch, module.hidden_size)


def checked_stack(module: Any, x: Any, hx: Any) -> Any:
    if isinstance(module, nnqd.LSTM):
        return module._forward(x, (None, None) if hx is None else hx, None)
    y, (h_n,) = module._forward(x, (hx,), None)
    return y, h_n


@pytest.mark.parametrize("name,build", STACKS, ids=[s[0] for s in STACKS])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_stack_on_the_lean_path_gives_the_bits_of_the_checked_path(name: str, build: Any, batch: int) -> None:
    module = converted(build)
    x = normal(batch, 4, 5) if module.batch_first else normal(4, batch, 5)
    for hx in (None, stack_state(module, batch)):
        taken = module._packed.try_forward(x, hx, module.batch_first)
        assert taken is not None
        assert bits(taken) == bits(checked_stack(module, x, hx)) == bits(module(x, hx))
    hx = stack_state(module, batch)
    for variant in declined_variants(x) + [x[0], normal(0, batch, 5), normal(4, batch, 3)]:
        assert module._packed.try_forward(variant, hx, module.batch_first) is None
    states = list(hx) if isinstance(hx, tuple) else [hx]
    for i, state in enumerate(states):
        for variant in declined_variants(state) + [state[:, :0]]:
            changed = list(states)
            changed[i] = variant
            assert module._packed.try_forward(x, tuple(changed) if len(states) == 2 else changed[0], module.batch_first) is None
    # lengths always take the checked path, and give its bits
    lengths = np.full(batch, x.shape[1] if module.batch_first else x.shape[0])
    assert bits(module(x, hx, lengths=lengths)) == bits(module(x, hx))


def test_results_are_fresh_arrays_of_their_own() -> None:
    cell, linear = converted(lambda: nn.LSTMCell(5, 6)), converted(lambda: nn.Linear(5, 4))
    x = normal(2, 5)
    h, c = cell(x)
    h2, c2 = cell(x)
    y, y2 = linear(x), linear(x)
    for a in (h, c, y):
        assert a.flags.owndata and a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float32
    assert len({id(a) for a in (h, c, h2, c2)}) == 4 and not np.shares_memory(h, h2) and not np.shares_memory(y, y2)
    h[...] = 9.0
    y[...] = 9.0
    assert bits(cell(x)) == bits((h2, c2)) and bits(linear(x)) == bits(y2)


def test_a_large_call_from_several_threads_gives_each_its_bits() -> None:
    """From 2**20 multiply-accumulates on, the GIL is released: threads run at once and each gets the
    result of its own input."""
    linear = converted(lambda: nn.Linear(256, 512))
    cell = converted(lambda: nn.GRUCell(256, 256))
    inputs = [normal(16, 256) for _ in range(4)]
    expected = [(bits(linear(x)), bits(cell(x, x))) for x in inputs]
    results: List[Any] = [None] * len(inputs)

    def run(i: int) -> None:
        results[i] = [(bits(linear(inputs[i])), bits(cell(inputs[i], inputs[i]))) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in enumerate(results):
        assert got == [expected[i]] * 20


CALLS = [
    (lambda: nn.LSTMCell(5, 6), lambda: (normal(2, 5), (normal(2, 6), normal(2, 6)))),
    (lambda: nn.GRUCell(5, 6), lambda: (normal(2, 5), normal(2, 6))),
    (lambda: nn.RNNCell(5, 6), lambda: (normal(5),)),
    (lambda: nn.Linear(5, 6), lambda: (normal(2, 5),)),
    (lambda: nn.LSTM(5, 6), lambda: (normal(3, 2, 5),)),
    (lambda: nn.GRU(5, 6), lambda: (normal(3, 2, 5), normal(1, 2, 6))),
    (lambda: nn.RNN(5, 6), lambda: (normal(3, 2, 5), normal(1, 2, 6))),
]


@pytest.mark.parametrize("build,args", CALLS)
def test_hooks_see_the_arguments_as_given_and_can_replace_the_output(build: Any, args: Any) -> None:
    module = converted(build)
    values = args()
    expected = bits(module(*values))
    seen: List[Any] = []
    handle = module.register_forward_hook(lambda m, a, out: seen.append((a, bits(out))) or "replaced")
    assert module(*values) == "replaced"
    assert len(seen) == 1 and len(seen[0][0]) == len(values) and seen[0][1] == expected
    assert all(a is v for a, v in zip(seen[0][0], values))
    handle.remove()
    assert bits(module(*values)) == expected


@pytest.mark.parametrize("build,args", CALLS)
def test_a_subclass_with_its_own_forward_is_called_through_it(build: Any, args: Any) -> None:
    module = converted(build)
    values = args()
    expected = bits(module(*values))

    class Own(type(module)):  # type: ignore[misc]
        def forward(self, *a: Any, **k: Any) -> Any:
            return ("own", super().forward(*a, **k))

    module.__class__ = Own
    tag, out = module(*values)
    assert tag == "own" and bits(out) == expected


def test_keyword_arguments_and_lengths_reach_forward() -> None:
    cell, lstm = converted(lambda: nn.LSTMCell(5, 6)), converted(lambda: nn.LSTM(5, 6))
    x, hx = normal(2, 5), (normal(2, 6), normal(2, 6))
    assert bits(cell(x, hx=hx)) == bits(cell(input=x, hx=hx)) == bits(cell(x, hx))
    xs = normal(3, 2, 5)
    lengths = np.array([3, 1])
    assert bits(lstm(xs, lengths=lengths)) == bits(lstm.forward(xs, None, lengths))
    assert bits(lstm(xs, None, lengths)) == bits(lstm.forward(xs, None, lengths))
    assert bits(lstm(xs)) == bits(lstm(xs, lengths=None)) == bits(lstm._forward(xs, (None, None), None))
