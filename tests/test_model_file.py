"""``ferroq.load`` reads the model file with positional reads, never through a memory mapping:
int8 weights go straight from the file into their packed layout, every other tensor into a new
array, and a file cut short while it is read gives a ValueError, not a SIGBUS."""

from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np
import pytest

import ferroq
from ferroq import _core, _io
from ferroq._file_tensors import FileInts, FileQTensor, read_the_rest
from ferroq.nn.quantized import dynamic as nnqd

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


def model(rng: np.random.Generator) -> ferroq.nn.Sequential:
    m = nnqd.Linear(300, 70)
    m.set_weight_bias(ferroq.QTensor.from_int_repr(rng.integers(-128, 128, (70, 300), dtype=np.int8), 0.01, 0), rng.standard_normal(70).astype(np.float32))
    return ferroq.nn.Sequential(m, nnqd.LSTM(70, 24, num_layers=2))


@linux_only
def test_a_loaded_model_answers_as_the_saved_one_and_keeps_nothing_of_the_file(tmp_path) -> None:
    rng = np.random.default_rng(5)
    saved = model(rng)
    path = tmp_path / "m.safetensors"
    ferroq.save(saved, path)
    loaded = ferroq.load(path)
    x = rng.standard_normal((3, 300)).astype(np.float32)
    assert loaded[0](x).tobytes() == saved[0](x).tobytes()
    assert loaded[0].weight()._same_as(saved[0].weight())
    for name, weight in saved[1].get_weight().items():
        assert loaded[1].get_weight()[name]._same_as(weight)
    with open("/proc/self/maps") as f:
        assert str(path) not in f.read()  # nothing mapped
    assert all(os.path.realpath(f"/proc/self/fd/{fd}") != str(path) for fd in os.listdir("/proc/self/fd"))  # nor open


def test_weights_read_from_a_file_pack_as_the_array_does(tmp_path) -> None:
    rng = np.random.default_rng(11)
    n, k, start = 2500, 37, 13  # 3 column blocks, the last narrower; odd sizes and offset
    w = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    path = tmp_path / "weights"
    path.write_bytes(b"\1" * start + w.tobytes() + b"\2" * 5)
    file = _core.ModelFile(str(path))
    scales, zero_points = rng.uniform(0.01, 0.1, n).astype(np.float32), rng.integers(-3, 4, n).astype(np.int32)
    bias = rng.standard_normal(n).astype(np.float32)
    read = _core.PackedLinear.from_file(file, start, n, k, scales, zero_points, bias, reduce_range=False)
    whole = _core.PackedLinear(w, scales, zero_points, bias, reduce_range=False)
    assert read.reduce_range is False and np.array_equal(read.weight(), w)
    x = rng.standard_normal((5, k)).astype(np.float32)
    assert read.forward(x).tobytes() == whole.forward(x).tobytes()
    static = _core.PackedStaticLinear.from_file(file, start, n, k, scales, zero_points, True, bias)
    static_whole = _core.PackedStaticLinear(w, scales, zero_points, True, bias)
    assert np.array_equal(static.weight(), w)
    xq = rng.integers(0, 256, (5, k), dtype=np.uint8)
    assert static.forward(xq, 0.02, 3, 0.5, 100).tobytes() == static_whole.forward(xq, 0.02, 3, 0.5, 100).tobytes()


def test_reads_past_the_end_and_bad_arguments_are_typed_errors(tmp_path) -> None:
    path = tmp_path / "short"
    path.write_bytes(bytes(range(100)))
    file = _core.ModelFile(str(path))
    ones, zeros = np.ones(20, np.float32), np.zeros(20, np.int32)
    with pytest.raises(ValueError, match="the file ended"):
        _core.PackedLinear.from_file(file, 50, 20, 3, ones, zeros)
    with pytest.raises(ValueError, match="the file ended"):
        _core.PackedStaticLinear.from_file(file, 0, 20, 6, ones, zeros, True)
    with pytest.raises(ValueError, match="beyond any file"):
        _core.PackedLinear.from_file(file, 2**64 - 2, 1, 3, ones[:1], zeros[:1])
    with pytest.raises(ValueError, match="2\\*\\*31 - 1"):
        _core.PackedLinear.from_file(file, 0, 1, 2**31, ones[:1], zeros[:1])
    out = np.zeros(10, np.uint8)
    file.read_into(90, out)
    assert out.tolist() == list(range(90, 100))
    with pytest.raises(ValueError, match="the file ended"):
        file.read_into(91, out)
    with pytest.raises(ValueError):
        file.read_into(0, np.zeros(20, np.uint8)[::2])
    with pytest.raises(TypeError):
        file.read_into(0, np.zeros(2, np.int16))
    with pytest.raises(FileNotFoundError):
        _core.ModelFile(str(tmp_path / "absent"))
    with pytest.raises(IsADirectoryError):
        _core.ModelFile(str(tmp_path))


@pytest.mark.parametrize("keep", ["header", "half"])
def test_a_file_cut_short_while_it_is_loaded_is_a_value_error(tmp_path, monkeypatch, keep) -> None:
    path = tmp_path / "m.safetensors"
    ferroq.save(model(np.random.default_rng(2)), path)
    size = path.stat().st_size
    header_end = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    read_tensors = _io._tensors

    def cut_then_read(raw, file):  # after the header is read and checked, before any tensor is
        os.truncate(path, header_end if keep == "header" else header_end + (size - header_end) // 2)
        return read_tensors(raw, file)

    monkeypatch.setattr(_io, "_tensors", cut_then_read)
    with pytest.raises(ValueError, match="the file ended before its tensors did"):
        ferroq.load(path)


def test_integers_left_in_the_file_are_read_on_demand_and_before_load_returns(tmp_path) -> None:
    w = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    path = tmp_path / "ints"
    path.write_bytes(b"xyz" + w.tobytes())
    source = FileInts(_core.ModelFile(str(path)), 3, (3, 4))
    q = FileQTensor.of(source, 0.5, 2)
    assert type(q) is FileQTensor and q.shape == (3, 4) and q.ndim == 2  # nothing read
    assert np.array_equal(q.int_repr(), w) and type(q) is ferroq.QTensor
    again = pickle.loads(pickle.dumps(FileQTensor.of(source, [0.5, 1, 2], [0, 1, 2], axis=0)))
    assert type(again) is ferroq.QTensor and np.array_equal(again.int_repr(), w)
    kept = FileQTensor.of(source, 0.5, 2)
    made = [kept, FileQTensor.of(source, 0.5, 2)]
    read_the_rest(made)
    assert made == [] and type(kept) is ferroq.QTensor and np.array_equal(kept.int_repr(), w)
    with pytest.raises(ValueError, match="zero_point"):
        FileQTensor.of(source, 0.5, 300)


@linux_only
def settled_thread_count() -> int:
    """The threads of this process once the count stops changing: under an emulator (qemu-user)
    a thread already joined can stay listed in /proc/self/task for a moment."""
    count = len(os.listdir("/proc/self/task"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = len(os.listdir("/proc/self/task"))
        if now == count:
            break
        count = now
    return count


def test_load_starts_the_threads_the_first_call_would_start(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    ferroq.save(model(np.random.default_rng(4)), path)
    before = ferroq.get_num_threads()
    try:
        ferroq.set_num_threads(2)  # stops the running pool (one helper thread), if any
        threads = settled_thread_count()
        ferroq.load(path)
        assert settled_thread_count() == threads + 1
    finally:
        ferroq.set_num_threads(before)
