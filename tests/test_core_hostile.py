"""Every entry point of ``ferroq._core`` given hostile arguments (huge, negative, empty, wrong
shapes, wrong types, NaN) raises an ordinary exception (ValueError, TypeError, MemoryError,
OverflowError, NotImplementedError, or OSError for paths), never pyo3's PanicException (a
BaseException that ``except Exception`` does not catch), and never kills the process. Also: the
bindings hold no unexplained ``unwrap``/``expect``/``panic!``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import numpy as np
import pytest

from ferroq import _core

ORDINARY = (ValueError, TypeError, MemoryError, OverflowError, NotImplementedError, OSError)

f32, i8, i32, u8, u16, i64 = np.float32, np.int8, np.int32, np.uint8, np.uint16, np.int64
HUGE = 2**40


@pytest.fixture(autouse=True)
def address_space_cap() -> Iterator[None]:
    """Caps this process's address space a few GiB above its current size while a test runs
    (where the OS allows it), so that an allocation that ought to fail fails at once even where
    the kernel would overcommit it, rather than being touched until the machine runs out."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * resource.getpagesize()
    except (ImportError, OSError, ValueError):
        yield
        return
    cap = size + (4 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def zeros(shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zero array of any shape without memory behind it when it has no elements."""
    return np.zeros(shape, dtype=dtype)


def linear(n: int = 3, k: int = 4) -> Any:
    return _core.PackedLinear(zeros((n, k), i8), np.ones(1, f32), zeros(1, i32), None)


def table() -> Any:
    """An 8-bit table of 2 rows of 4 values."""
    return _core.PackedEmbeddingTable(8, zeros((2, 4), u8), 4, np.ones(2, f32), zeros(2, f32))


def fp16(n: int = 3, k: int = 4) -> Any:
    return _core.PackedLinearFp16(zeros((n, k), u16), None)


def static(n: int = 3, k: int = 4) -> Any:
    return _core.PackedStaticLinear(zeros((n, k), i8), np.ones(1, f32), zeros(1, i32), False, None)


def lstm_cells(input_size: int, hidden: int, layers: int = 1) -> List[Any]:
    return [
        (linear(4 * hidden, input_size if layer == 0 else hidden), linear(4 * hidden, hidden), None)
        for layer in range(layers)
    ]


def lstm(input_size: int = 4, hidden: int = 2) -> Any:
    return _core.PackedRNN("LSTM", input_size, hidden, 0, 1, False, lstm_cells(input_size, hidden))


def no_features(hidden: int = 2**12) -> Any:
    """An Elman layer with no input features: its inputs can have any number of rows without
    memory behind them. (Sizes below are far beyond any machine's memory, so that allocating
    fails at once instead of succeeding lazily and being touched.)"""
    return _core.PackedRNN("RNN_TANH", 0, hidden, 0, 1, False, [(linear(hidden, 0), linear(hidden, hidden), None)])


CALLS: List[Tuple[str, Callable[[], Any]]] = [
    # threads
    ("set_num_threads(0)", lambda: _core.set_num_threads(0)),
    ("set_num_threads(2**62)", lambda: _core.set_num_threads(2**62)),
    ("set_num_threads(-1)", lambda: _core.set_num_threads(-1)),
    ("set_num_threads(2**64)", lambda: _core.set_num_threads(2**64)),
    ("set_num_threads('x')", lambda: _core.set_num_threads("x")),
    # qparams
    ("choose_qparams(nan)", lambda: _core.choose_qparams(float("nan"), 1.0, 0, 255, False)),
    ("choose_qparams(inf)", lambda: _core.choose_qparams(0.0, float("inf"), 0, 255, False)),
    ("choose_qparams(-inf, inf)", lambda: _core.choose_qparams(float("-inf"), float("inf"), 0, 255, True)),
    ("choose_qparams(qmin > qmax)", lambda: _core.choose_qparams(0.0, 1.0, 255, 0, False)),
    ("choose_qparams(qmin == qmax)", lambda: _core.choose_qparams(0.0, 1.0, 7, 7, False)),
    ("choose_qparams(huge levels)", lambda: _core.choose_qparams(-1.0, 1.0, -(2**31), 2**31 - 1, False)),
    ("choose_qparams(int overflow)", lambda: _core.choose_qparams(0.0, 1.0, 0, 2**40, False)),
    ("choose_qparams(min > max)", lambda: _core.choose_qparams(5.0, -5.0, 0, 255, False)),
    ("choose_qparams(halved to one level)", lambda: _core.choose_qparams(0.0, 1.0, 0, 1, True)),
    # PackedLinear
    ("PackedLinear(k = 2**31)", lambda: _core.PackedLinear(zeros((0, 2**31), i8), np.ones(1, f32), zeros(1, i32))),
    ("PackedLinear(n huge, k 0)", lambda: _core.PackedLinear(zeros((HUGE, 0), i8), np.ones(1, f32), zeros(1, i32))),
    ("PackedLinear(no scales)", lambda: _core.PackedLinear(zeros((3, 4), i8), zeros(0, f32), zeros(0, i32))),
    ("PackedLinear(2 scales)", lambda: _core.PackedLinear(zeros((3, 4), i8), np.ones(2, f32), zeros(2, i32))),
    ("PackedLinear(scale nan)", lambda: _core.PackedLinear(zeros((3, 4), i8), np.full(1, np.nan, f32), zeros(1, i32))),
    ("PackedLinear(scale 0)", lambda: _core.PackedLinear(zeros((3, 4), i8), zeros(1, f32), zeros(1, i32))),
    ("PackedLinear(bias 5)", lambda: _core.PackedLinear(zeros((3, 4), i8), np.ones(1, f32), zeros(1, i32), zeros(5, f32))),
    ("PackedLinear(float weight)", lambda: _core.PackedLinear(zeros((3, 4), f32), np.ones(1, f32), zeros(1, i32))),
    ("PackedLinear(1-D weight)", lambda: _core.PackedLinear(zeros(4, i8), np.ones(1, f32), zeros(1, i32))),
    ("PackedLinear(strided weight)", lambda: _core.PackedLinear(zeros((3, 8), i8)[:, ::2], np.ones(1, f32), zeros(1, i32))),
    ("PackedLinear.forward(wrong k)", lambda: linear().forward(zeros((2, 5), f32))),
    ("PackedLinear.forward(nan)", lambda: linear().forward(np.full((2, 4), np.nan, f32))),
    ("PackedLinear.forward(huge output)", lambda: linear(2**20, 1).forward(zeros((2**24, 1), f32))),
    ("PackedLinear.forward(rows without k)", lambda: linear(4, 0).forward(zeros((HUGE, 0), f32))),
    ("PackedLinear.forward(float64)", lambda: linear().forward(zeros((2, 4), np.float64))),
    ("PackedLinear.forward(3-D)", lambda: linear().forward(zeros((1, 2, 4), f32))),
    # PackedLinearFp16
    ("PackedLinearFp16(bias 1)", lambda: _core.PackedLinearFp16(zeros((3, 4), u16), zeros(1, f32))),
    ("PackedLinearFp16.forward(wrong k)", lambda: fp16().forward(zeros((2, 3), f32))),
    ("PackedLinearFp16.forward(huge output)", lambda: fp16(2**20, 1).forward(zeros((2**24, 1), f32))),
    ("PackedLinearFp16.forward(rows without k)", lambda: fp16(4, 0).forward(zeros((HUGE, 0), f32))),
    # PackedStaticLinear
    ("PackedStaticLinear(k = 2**31)", lambda: _core.PackedStaticLinear(zeros((0, 2**31), i8), np.ones(1, f32), zeros(1, i32), False)),
    ("PackedStaticLinear(n huge, k 0)", lambda: _core.PackedStaticLinear(zeros((HUGE, 0), i8), np.ones(1, f32), zeros(1, i32), False)),
    ("PackedStaticLinear(per channel, 1 scale)", lambda: _core.PackedStaticLinear(zeros((3, 4), i8), np.ones(1, f32), zeros(1, i32), True)),
    ("PackedStaticLinear(zero point 300)", lambda: _core.PackedStaticLinear(zeros((3, 4), i8), np.ones(1, f32), np.full(1, 300, i32), False)),
    ("PackedStaticLinear.forward(scale 0)", lambda: static().forward(zeros((2, 4), u8), 0.0, 0, 1.0, 0)),
    ("PackedStaticLinear.forward(scale inf)", lambda: static().forward(zeros((2, 4), u8), 1.0, 0, 1e300, 0)),
    ("PackedStaticLinear.forward(scale nan)", lambda: static().forward(zeros((2, 4), u8), float("nan"), 0, 1.0, 0)),
    ("PackedStaticLinear.forward(zero point -1)", lambda: static().forward(zeros((2, 4), u8), 1.0, -1, 1.0, 0)),
    ("PackedStaticLinear.forward(zero point 2**40)", lambda: static().forward(zeros((2, 4), u8), 1.0, 2**40, 1.0, 0)),
    ("PackedStaticLinear.forward(wrong k)", lambda: static().forward(zeros((2, 5), u8), 1.0, 0, 1.0, 0)),
    ("PackedStaticLinear.forward(huge output)", lambda: static(2**20, 1).forward(zeros((2**24, 1), u8), 1.0, 0, 1.0, 0)),
    ("PackedStaticLinear.forward(rows without k)", lambda: static(4, 0).forward(zeros((HUGE, 0), u8), 1.0, 0, 1.0, 0)),
    # PackedRNN
    ("PackedRNN(mode)", lambda: _core.PackedRNN("TRANSFORMER", 4, 2, 0, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(hidden 0)", lambda: _core.PackedRNN("LSTM", 4, 0, 0, 1, False, [])),
    ("PackedRNN(layers 0)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 0, False, [])),
    ("PackedRNN(layers 2**62)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 2**62, True, lstm_cells(4, 2))),
    ("PackedRNN(layers usize max)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 2**64 - 1, True, lstm_cells(4, 2))),
    ("PackedRNN(hidden usize max)", lambda: _core.PackedRNN("LSTM", 4, 2**64 - 1, 0, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(hidden 2**62)", lambda: _core.PackedRNN("GRU", 4, 2**62, 0, 1, True, lstm_cells(4, 2) * 2)),
    ("PackedRNN(negative size)", lambda: _core.PackedRNN("LSTM", -4, 2, 0, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(proj >= hidden)", lambda: _core.PackedRNN("LSTM", 4, 2, 2, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(proj on GRU)", lambda: _core.PackedRNN("GRU", 4, 2, 1, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(wrong cell shapes)", lambda: _core.PackedRNN("LSTM", 5, 2, 0, 1, False, lstm_cells(4, 2))),
    ("PackedRNN(cells not packed)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 1, False, [(1, 2, None)])),
    ("PackedRNN(cells not tuples)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 1, False, [1])),
    ("PackedRNN.forward(wrong features)", lambda: lstm().forward(zeros((3, 2, 5), f32))),
    ("PackedRNN.forward(steps 0)", lambda: lstm().forward(zeros((0, 2, 4), f32))),
    ("PackedRNN.forward(h0 shape)", lambda: lstm().forward(zeros((3, 2, 4), f32), zeros((1, 3, 2), f32), zeros((1, 2, 2), f32))),
    ("PackedRNN.forward(c0 shape)", lambda: lstm().forward(zeros((3, 2, 4), f32), zeros((1, 2, 2), f32), zeros((2, 2, 2), f32))),
    ("PackedRNN.forward(lengths -1)", lambda: lstm().forward(zeros((3, 2, 4), f32), None, None, np.array([-1, 2], i64))),
    ("PackedRNN.forward(lengths > steps)", lambda: lstm().forward(zeros((3, 2, 4), f32), None, None, np.array([4, 2], i64))),
    ("PackedRNN.forward(lengths count)", lambda: lstm().forward(zeros((3, 2, 4), f32), None, None, np.array([1, 2, 3], i64))),
    ("PackedRNN.forward(lengths huge)", lambda: lstm().forward(zeros((3, 2, 4), f32), None, None, np.array([2**62, 2], i64))),
    ("PackedRNN.forward(nan)", lambda: lstm().forward(np.full((3, 2, 4), np.nan, f32))),
    ("PackedRNN.forward(huge batch, no features)", lambda: no_features().forward(zeros((2, 2**36, 0), f32))),
    ("PackedRNN.forward(huge steps, no features)", lambda: no_features().forward(zeros((HUGE, 1, 0), f32))),
    ("PackedRNN.forward(huge steps, no features, lengths)", lambda: no_features().forward(zeros((HUGE, 1, 0), f32), None, None, np.array([3], i64))),
    ("PackedRNN.cell(wrong features)", lambda: lstm().cell(zeros((2, 5), f32))),
    ("PackedRNN.cell(h without c)", lambda: lstm().cell(zeros((2, 4), f32), zeros((2, 2), f32))),
    ("PackedRNN.cell(h shape)", lambda: lstm().cell(zeros((2, 4), f32), zeros((3, 2), f32), zeros((2, 2), f32))),
    ("PackedRNN.cell(nan)", lambda: lstm().cell(np.full((2, 4), np.nan, f32))),
    ("PackedRNN.cell(huge batch, no features)", lambda: no_features().cell(zeros((HUGE, 0), f32))),
    ("PackedRNN.cell(stack)", lambda: _core.PackedRNN("LSTM", 4, 2, 0, 2, False, lstm_cells(4, 2, 2)).cell(zeros((2, 4), f32))),
    # quantized embedding tables
    ("PackedEmbeddingTable(bits 5)", lambda: _core.PackedEmbeddingTable(5, zeros((2, 4), u8), 4, np.ones(2, f32), zeros(2, f32))),
    ("PackedEmbeddingTable(odd 4-bit dim)", lambda: _core.PackedEmbeddingTable(4, zeros((2, 2), u8), 3, np.ones(2, f32), zeros(2, f32))),
    ("PackedEmbeddingTable(short data)", lambda: _core.PackedEmbeddingTable(8, zeros((2, 3), u8), 4, np.ones(2, f32), zeros(2, f32))),
    ("PackedEmbeddingTable(scales)", lambda: _core.PackedEmbeddingTable(8, zeros((2, 4), u8), 4, np.ones(3, f32), zeros(2, f32))),
    ("PackedEmbeddingTable(huge rows)", lambda: _core.PackedEmbeddingTable(8, zeros((HUGE, 0), u8), HUGE, np.ones(HUGE, f32)[:0], zeros(0, f32))),
    ("PackedEmbeddingTable.lookup(out of range)", lambda: table().lookup(np.array([0, 2], i64))),
    ("PackedEmbeddingTable.lookup(negative)", lambda: table().lookup(np.array([-1], i64))),
    ("PackedEmbeddingTable.bags(offsets past the end)", lambda: table().bags(np.array([0, 1], i64), np.array([0, 5], i64))),
    ("PackedEmbeddingTable.bags(decreasing offsets)", lambda: table().bags(np.array([0, 1], i64), np.array([0, 2, 1], i64))),
    ("PackedEmbeddingTable.bags(short weights)", lambda: table().bags(np.array([0, 1], i64), np.array([0, 2], i64), np.ones(1, f32))),
    # safetensors
    ("read_safetensors(missing)", lambda: _core.read_safetensors("/nonexistent/ferroq/file.safetensors", 1 << 20)),
    ("read_safetensors(directory)", lambda: _core.read_safetensors("/", 1 << 20)),
    ("write_safetensors(bad dtype)", lambda: _core.write_safetensors("/tmp/ferroq-hostile.safetensors", [("a", "Q7", [1], b"x")], {})),
    ("write_safetensors(short bytes)", lambda: _core.write_safetensors("/tmp/ferroq-hostile.safetensors", [("a", "F32", [2], b"xxxx")], {})),
    ("write_safetensors(shape overflow)", lambda: _core.write_safetensors("/tmp/ferroq-hostile.safetensors", [("a", "U8", [2**63, 2], b"")], {})),
    ("write_safetensors(duplicate names)", lambda: _core.write_safetensors("/tmp/ferroq-hostile.safetensors", [("a", "U8", [1], b"x"), ("a", "U8", [1], b"y")], {})),
    ("write_safetensors(unwritable)", lambda: _core.write_safetensors("/nonexistent/dir/x.safetensors", [], {})),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[name for name, _ in CALLS])
def test_hostile_arguments_raise_ordinary_exceptions(call):
    try:
        call()
    except ORDINARY:
        return
    except BaseException as e:  # a PanicException or anything else unexpected
        pytest.fail(f"{type(e).__module__}.{type(e).__name__}: {e}")
    pytest.fail("accepted")


def test_extreme_but_valid_calls_succeed():
    scale, zero_point = _core.choose_qparams(-3e38, 3e38, 0, 255, False)
    assert np.isfinite(np.float32(scale)) and scale > 0 and 0 <= zero_point <= 255
    # No features, so no memory: the layer exists, and only running it needs the outputs' memory.
    layer = _core.PackedLinearFp16(zeros((HUGE, 0), u16))
    assert layer.out_features == HUGE
    with pytest.raises(MemoryError):
        layer.forward(zeros((1, 0), f32))
    # No batch: nothing runs, whatever the length.
    y, h_n, c_n = lstm().forward(zeros((HUGE, 0, 4), f32))
    assert (y.shape, h_n.shape, c_n.shape) == ((HUGE, 0, 2), (1, 0, 2), (1, 0, 2))


def test_read_safetensors_of_garbage_is_a_value_error(tmp_path):
    for content in (b"", b"\x00" * 7, b"\xff" * 64, (2**60).to_bytes(8, "little") + b"{}"):
        path = tmp_path / "garbage.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError):
            _core.read_safetensors(str(path), 1 << 20)


def test_bindings_hold_no_unexplained_panics():
    """Every ``expect`` in the bindings states an invariant; ``unwrap()``, ``panic!``,
    ``unreachable!``, ``todo!`` and ``unimplemented!`` are not used there at all."""
    source = Path(__file__).resolve().parents[1] / "src" / "py"
    if not source.is_dir():
        pytest.skip("the Rust sources are not next to the tests")
    offenders = []
    for path in sorted(source.glob("*.rs")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//")[0]
            if re.search(r"\.unwrap\(\)|\bpanic!|\bunreachable!|\btodo!|\bunimplemented!", code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
            if re.search(r"\.expect\(\s*\)", code) or re.search(r"\.expect\(\"\s*\"\)", code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []
