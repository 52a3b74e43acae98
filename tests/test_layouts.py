"""Any memory layout of the same values gives the same bits, for every module and quantize_*.

Hypothesis draws, for each case of the table below, a batch size (0 included where the module
allows it) and one to three layout changes applied in turn to every input array: Fortran order,
strides, negative strides, an unaligned buffer, big-endian bytes, read-only memory, float64,
plus optionally a broadcast (zero-stride) view. The outputs must equal, bit for bit, the outputs
for C-contiguous native float32 copies of the same values.

A new module is one more ``Case`` line: a factory for the module, one for its input arrays, and
(when it is not simply ``module(*arrays)``) how to call it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import ferroq
from ferroq import _core, nn
from ferroq.nn import quantized as nnq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.nn.quantized import reference as nnqr
from ferroq._arrays import as_float32
from ferroq.quantization import (
    HistogramObserver,
    MinMaxObserver,
    PerChannelMinMaxObserver,
    PlaceholderObserver,
    float16_dynamic_qconfig,
    per_channel_dynamic_qconfig,
)

Arrays = List[np.ndarray]


def seeded(build: Callable[[], Any]) -> Callable[[], Any]:
    """``build`` run with numpy's global generator seeded (the float modules draw their weights)."""

    def make() -> Any:
        np.random.seed(0)
        return build()

    return make


def dynamic(float_module: Callable[[], Any], qconfig: Any = None) -> Callable[[], Any]:
    """A dynamic quantized module converted from a seeded float one."""

    def make() -> Any:
        np.random.seed(0)
        m = float_module().eval()
        if qconfig is not None:
            m.qconfig = qconfig
        return ferroq.quantization.quantize_dynamic(m, {type(m)})

    return make


def observe(observer: Callable[[], Any]) -> Callable[[Any, Arrays], Any]:
    """Runs a fresh observer on the input and answers its qparams (observers keep state)."""

    def run(_: Any, arrays: Arrays) -> Any:
        o = observer()
        o(arrays[0])
        return o.calculate_qparams()

    return run


def static_pipeline() -> Any:
    """Quantize -> static quantized Linear -> DeQuantize, through prepare/convert."""
    np.random.seed(0)
    model = nn.Sequential(ferroq.quantization.QuantStub(), nn.Linear(5, 3), ferroq.quantization.DeQuantStub())
    model.qconfig = ferroq.quantization.default_qconfig
    prepared = ferroq.quantization.prepare(model.eval())
    prepared(np.random.default_rng(1).standard_normal((8, 5)).astype(np.float32))
    converted = ferroq.quantization.convert(prepared)
    assert isinstance(converted[1], nnq.Linear)
    return converted


def rows(*shape: int) -> Callable[[np.random.Generator, int], Arrays]:
    """Input factory: one array of shape ``(batch, *shape)``."""
    return arrays(shape)


def arrays(*shapes: Sequence[int], batch_axis: Sequence[int] = ()) -> Callable[[np.random.Generator, int], Arrays]:
    """Input factory: one standard-normal float32 array per shape, ``batch`` prepended (or
    inserted at ``batch_axis[i]`` for array i)."""

    def make(rng: np.random.Generator, batch: int) -> Arrays:
        out = []
        for i, shape in enumerate(shapes):
            full = list(shape)
            full.insert(batch_axis[i] if i < len(batch_axis) else 0, batch)
            out.append(rng.standard_normal(full).astype(np.float32))
        return out

    return make


@dataclass
class Case:
    name: str
    module: Callable[[], Any]
    inputs: Callable[[np.random.Generator, int], Arrays]
    run: Callable[[Any, Arrays], Any] = field(default=lambda m, a: m(*a))
    min_batch: int = 0
    #: False when the module passes its input through untouched (Identity): no dtype check.
    converts: bool = True


def lstm_call(m: Any, a: Arrays) -> Any:
    return m(a[0], (a[1], a[2]))


def cell_pair_call(m: Any, a: Arrays) -> Any:
    return m(a[0], (a[1], a[2]))


CASES = [
    # float modules
    Case("nn.Linear", seeded(lambda: nn.Linear(5, 3)), rows(5)),
    Case("nn.ReLU", nn.ReLU, rows(4)),
    Case("nn.Identity", nn.Identity, rows(4), converts=False),
    Case("QuantStub", ferroq.quantization.QuantStub, rows(4), converts=False),
    Case("DeQuantStub", ferroq.quantization.DeQuantStub, rows(4), converts=False),
    Case("nn.Sequential", seeded(lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Identity())), rows(5)),
    Case("nn.LayerNorm", seeded(lambda: nn.LayerNorm(5)), rows(5)),
    Case("nn.LayerNorm 2-D shape", seeded(lambda: nn.LayerNorm((2, 3), elementwise_affine=False)), rows(2, 3)),
    Case("nn.Dropout (eval)", lambda: nn.Dropout(0.3).eval(), rows(4), converts=False),
    Case("nn.Flatten", nn.Flatten, rows(2, 3)),
    Case("nn.Tanh", nn.Tanh, rows(4)),
    Case("nn.Sigmoid", nn.Sigmoid, rows(4)),
    Case("nn.GELU", nn.GELU, rows(4)),
    Case("nn.GELU tanh", lambda: nn.GELU("tanh"), rows(4)),
    Case("nn.SiLU", nn.SiLU, rows(4)),
    Case("nn.Softmax", lambda: nn.Softmax(dim=-1), rows(4)),
    Case("nn.LogSoftmax", lambda: nn.LogSoftmax(dim=0), rows(4)),
    Case("nn.Hardtanh", lambda: nn.Hardtanh(-0.5, 0.5), rows(4)),
    Case("nn.ReLU6", nn.ReLU6, rows(4)),
    Case("nn.LeakyReLU", lambda: nn.LeakyReLU(0.2), rows(4)),
    Case("nn.ModuleList member", lambda: nn.ModuleList([nn.Tanh()])[0], rows(4)),
    Case("nn.LSTM", seeded(lambda: nn.LSTM(3, 4).eval()), arrays((2, 3), (1, 4), (1, 4), batch_axis=(1, 1, 1)), lstm_call),
    Case("nn.GRU", seeded(lambda: nn.GRU(3, 4, batch_first=True).eval()), arrays((2, 3), (1, 4), batch_axis=(0, 1))),
    Case("nn.RNN", seeded(lambda: nn.RNN(3, 4, bidirectional=True).eval()), arrays((2, 3), (2, 4), batch_axis=(1, 1))),
    Case("nn.LSTMCell", seeded(lambda: nn.LSTMCell(3, 4)), arrays((3,), (4,), (4,)), cell_pair_call),
    Case("nn.GRUCell", seeded(lambda: nn.GRUCell(3, 4)), arrays((3,), (4,))),
    Case("nn.RNNCell", seeded(lambda: nn.RNNCell(3, 4, nonlinearity="relu")), arrays((3,), (4,))),
    # quantized: static, reference
    Case("nnq static pipeline", static_pipeline, rows(5)),
    Case("nnq.Quantize", lambda: nnq.Quantize(0.05, 7, ferroq.quint8), rows(4), lambda m, a: m(*a).int_repr()),
    Case("nnq.reference.Linear", seeded(lambda: nnqr.Linear(5, 3, weight_qparams={
        "qscheme": ferroq.per_tensor_affine, "dtype": ferroq.qint8, "scale": 0.01, "zero_point": 0})), rows(5)),
    # dynamic quantized
    Case("nnqd.Linear", dynamic(lambda: nn.Linear(5, 3)), rows(5)),
    Case("nnqd.Linear per channel", dynamic(lambda: nn.Linear(5, 3), per_channel_dynamic_qconfig), rows(2, 5)),
    Case("nnqd.Linear float16", dynamic(lambda: nn.Linear(5, 3), float16_dynamic_qconfig), rows(5)),
    Case("nnqd.LSTM", dynamic(lambda: nn.LSTM(3, 4, num_layers=2)), arrays((2, 3), (2, 4), (2, 4), batch_axis=(1, 1, 1)), lstm_call),
    Case("nnqd.LSTM float16", dynamic(lambda: nn.LSTM(3, 4), float16_dynamic_qconfig), arrays((2, 3), batch_axis=(1,))),
    Case("nnqd.GRU", dynamic(lambda: nn.GRU(3, 4, batch_first=True, bidirectional=True)), arrays((2, 3), (2, 4), batch_axis=(0, 1))),
    Case("nnqd.RNN", dynamic(lambda: nn.RNN(3, 4)), arrays((2, 3), (1, 4), batch_axis=(1, 1))),
    Case("nnqd.LSTMCell", dynamic(lambda: nn.LSTMCell(3, 4)), arrays((3,), (4,), (4,)), cell_pair_call),
    Case("nnqd.LSTMCell zero state", dynamic(lambda: nn.LSTMCell(3, 4)), rows(3)),
    Case("nnqd.GRUCell", dynamic(lambda: nn.GRUCell(3, 4)), arrays((3,), (4,))),
    Case("nnqd.RNNCell", dynamic(lambda: nn.RNNCell(3, 4)), arrays((3,), (4,))),
    Case("nnqd.RNNCell float16", dynamic(lambda: nn.RNNCell(3, 4), float16_dynamic_qconfig), arrays((3,), (4,))),
    # observers
    Case("MinMaxObserver", lambda: None, rows(4), observe(MinMaxObserver), 1),
    Case("PerChannelMinMaxObserver", lambda: None, rows(4), observe(lambda: PerChannelMinMaxObserver(ch_axis=1)), 1),
    Case("HistogramObserver", lambda: None, rows(4), observe(lambda: HistogramObserver(bins=64)), 1),
    Case("PlaceholderObserver", PlaceholderObserver, rows(4), converts=False),
    # quantize_*
    Case("quantize_per_tensor", lambda: None, rows(4), lambda _, a: ferroq.quantize_per_tensor(a[0], 0.05, 3, ferroq.quint8)),
    Case("quantize_per_channel", lambda: None, rows(3),
         lambda _, a: ferroq.quantize_per_channel(a[0], [0.05, 0.1, 0.02], [0, -3, 5], 1, ferroq.qint8)),
    Case("quantize_per_tensor_dynamic", lambda: None, rows(4), lambda _, a: ferroq.quantize_per_tensor_dynamic(a[0])),
]

_MODULES: Dict[str, Any] = {}


def module_of(case: Case) -> Any:
    if case.name not in _MODULES:
        _MODULES[case.name] = case.module()
    return _MODULES[case.name]


# -- layouts ------------------------------------------------------------------------------------


def fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def strided(a: np.ndarray) -> np.ndarray:
    """Every other element of a twice-as-wide array along the last axis."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def reversed_strides(a: np.ndarray) -> np.ndarray:
    """Negative strides on every axis."""
    flip = (slice(None, None, -1),) * a.ndim
    return a[flip].copy()[flip]


def unaligned(a: np.ndarray) -> np.ndarray:
    """The same array (C or Fortran order kept) one byte into a buffer, so misaligned."""
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    raw = np.asarray(a, order=order).tobytes(order=order)
    buffer = bytearray(len(raw) + 1)
    buffer[1:] = raw
    return np.ndarray(a.shape, dtype=a.dtype, buffer=buffer, offset=1, order=order)


def big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">"))


def read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def float64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


LAYOUTS = {
    "F": fortran,
    "strided": strided,
    "negative strides": reversed_strides,
    "unaligned": unaligned,
    "big-endian": big_endian,
    "read-only": read_only,
    "float64": float64,
}


def broadcast_rows(a: np.ndarray) -> np.ndarray:
    """A zero-stride view repeating the first row (or the array itself when it has none)."""
    return np.broadcast_to(a[:1], a.shape) if a.ndim and a.shape[0] else a


# -- comparison ---------------------------------------------------------------------------------


def as_bits(out: Any) -> List[Any]:
    """Outputs flattened to comparable bytes: arrays by dtype, shape and C-order bytes, QTensors
    by their integers and qparams."""
    if isinstance(out, (tuple, list)):
        return [b for o in out for b in as_bits(o)]
    if isinstance(out, ferroq.QTensor):
        qparams = (out.q_scale(), out.q_zero_point()) if not out.qscheme().is_per_channel else (
            out.q_per_channel_scales().tobytes(), out.q_per_channel_zero_points().tobytes())
        return [out.shape, qparams, out.int_repr().tobytes()]
    array = np.asarray(out)
    native = array.astype(array.dtype.newbyteorder("="), copy=False)
    return [native.dtype.str, array.shape, np.ascontiguousarray(native).tobytes()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(0, 3),
    changes=st.lists(st.sampled_from(sorted(LAYOUTS)), min_size=1, max_size=3),
    broadcast=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_layout_gives_the_bits_of_the_c_contiguous_call(case: Case, batch: int, changes: List[str], broadcast: bool, seed: int) -> None:
    batch = max(batch, case.min_batch)
    values = case.inputs(np.random.default_rng(seed), batch)
    if broadcast:
        values = [np.ascontiguousarray(broadcast_rows(v)) for v in values]
    variants = [broadcast_rows(v) if broadcast else v for v in values]
    for change in changes:
        variants = [LAYOUTS[change](v) for v in variants]
    module = module_of(case)
    expected = as_bits(case.run(module, values))
    actual = case.run(module, variants)
    if not case.converts:  # Identity and the stubs hand back what they got: compare its values
        actual = np.asarray(actual, dtype=np.float32)
    assert as_bits(actual) == expected, (case.name, changes, broadcast)


@pytest.mark.parametrize("case", [c for c in CASES if c.converts], ids=[c.name for c in CASES if c.converts])
@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_, np.complex64, object])
def test_integer_boolean_complex_and_object_inputs_are_type_errors(case: Case, dtype: Any) -> None:
    values = case.inputs(np.random.default_rng(0), max(2, case.min_batch))
    with pytest.raises(TypeError, match="floating-point"):
        case.run(module_of(case), [values[0].astype(dtype)] + values[1:])


# -- the normalisation point itself ------------------------------------------------------------


def test_an_array_the_core_can_read_is_passed_on_untouched() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert as_float32(x) is x
    frozen = read_only(x)
    assert as_float32(frozen) is frozen


@pytest.mark.parametrize("change", ["F", "strided", "negative strides", "unaligned", "big-endian", "float64"])
def test_every_other_layout_becomes_c_ordered_aligned_native_float32(change: str) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    y = as_float32(LAYOUTS[change](x))
    assert y.dtype == np.dtype(np.float32) and y.dtype.isnative
    assert y.flags.c_contiguous and y.flags.aligned
    np.testing.assert_array_equal(y, x)


def test_a_zero_dimensional_input_stays_zero_dimensional() -> None:
    assert as_float32(np.float64(2.5)).shape == ()


# -- the core refuses what it must not read in memory order -------------------------------------


def test_the_core_refuses_a_fortran_ordered_or_strided_or_unaligned_array() -> None:
    packed = _core.PackedLinear(np.ones((3, 4), np.int8), np.ones(1, np.float32), np.zeros(1, np.int32), None)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="input must be C-contiguous, got a Fortran-ordered array"):
        packed.forward(np.asfortranarray(x))
    with pytest.raises(ValueError, match="input must be C-contiguous, got a strided array"):
        packed.forward(strided(x))
    with pytest.raises(ValueError, match="input must be aligned"):
        packed.forward(unaligned(x))


def test_the_core_cell_step_refuses_a_fortran_ordered_input_or_state() -> None:
    cell = dynamic(lambda: nn.LSTMCell(3, 4))()
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    h = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="input must be C-contiguous, got a Fortran-ordered array"):
        cell._packed.cell(np.asfortranarray(x), h, h)
    with pytest.raises(ValueError, match="h must be C-contiguous, got a Fortran-ordered array"):
        cell._packed.cell(x, np.asfortranarray(h), h)


@pytest.mark.parametrize("name", ["nnqd.LSTMCell", "nnqd.GRUCell", "nnqd.RNNCell"])
def test_a_fortran_ordered_input_or_state_of_a_dynamic_cell_gives_the_c_order_bits(name: str) -> None:
    """The regression: the cells' fast path handed Fortran-ordered arrays to the core, which read
    them in memory order."""
    case = next(c for c in CASES if c.name == name)
    values = case.inputs(np.random.default_rng(3), 3)
    module = module_of(case)
    expected = as_bits(case.run(module, values))
    for i in range(len(values)):
        changed = list(values)
        changed[i] = np.asfortranarray(values[i])
        assert not changed[i].flags.c_contiguous
        assert as_bits(case.run(module, changed)) == expected


@pytest.mark.parametrize("change", ["strided", "negative strides", "unaligned", "big-endian", "read-only"])
def test_lengths_of_any_layout_give_the_same_bits(change: str) -> None:
    lstm = dynamic(lambda: nn.LSTM(3, 4))()
    x = np.random.default_rng(5).standard_normal((4, 3, 3)).astype(np.float32)
    lengths = np.array([4, 1, 3], dtype=np.int64)
    expected = as_bits(lstm(x, lengths=lengths))
    assert as_bits(lstm(x, lengths=LAYOUTS[change](lengths))) == expected


def through_dask_transport(a: np.ndarray) -> np.ndarray:
    """``a`` as Dask's worker transport hands it to a task: pickle protocol 5 with the bytes in
    an out-of-band buffer that sits at an odd offset of a larger frame."""
    buffers: List[pickle.PickleBuffer] = []
    header = pickle.dumps(a, protocol=5, buffer_callback=buffers.append)
    frame = bytearray(1) + bytearray(buffers[0].raw())
    return pickle.loads(header, buffers=[memoryview(frame)[1:]])


@pytest.mark.parametrize("name", ["nnqd.Linear", "nnqd.LSTM", "nnqd.GRUCell", "nn.LSTM", "nnq static pipeline"])
def test_arrays_from_an_odd_offset_out_of_band_buffer_give_the_same_bits(name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    values = case.inputs(np.random.default_rng(7), 3)
    moved = [through_dask_transport(v) for v in values]
    assert not any(m.flags.aligned for m in moved)
    module = module_of(case)
    assert as_bits(case.run(module, moved)) == as_bits(case.run(module, values))


def test_torch_tensors_of_any_layout_and_bfloat16_ones_are_converted() -> None:
    torch = pytest.importorskip("torch")
    base = torch.randn(4, 6)
    transposed = base[:, ::2].t()  # strided and transposed
    np.testing.assert_array_equal(as_float32(transposed), transposed.contiguous().numpy())
    half = torch.randn(2, 3, dtype=torch.bfloat16)  # numpy has no bfloat16
    np.testing.assert_array_equal(as_float32(half), half.float().numpy())
    with pytest.raises(TypeError, match="floating-point"):
        as_float32(torch.ones(3, dtype=torch.int64))
