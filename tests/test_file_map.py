"""``ferroq.load`` reads the tensors in place from the mapped file and gives each one's pages back
once it is packed: the values never change, and no other memory is ever released."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

import ferroq
from ferroq import _core
from ferroq._file_map import map_file, release_pages, tensor_view
from ferroq.nn.quantized import dynamic as nnqd

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


def rss_file_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    raise RuntimeError("no RssFile in /proc/self/status")


@linux_only
def test_released_pages_leave_the_resident_set_and_read_back_the_same(tmp_path) -> None:
    data = np.random.default_rng(3).integers(-128, 128, size=(1 << 22) + 5, dtype=np.int8)
    path = tmp_path / "bytes"
    path.write_bytes(b"\0" * 7 + data.tobytes())
    file_map = map_file(str(path))
    view = tensor_view(file_map, np.dtype(np.int8), (data.size,), 7, 7 + data.size, "data")
    assert np.array_equal(view, data)
    before = rss_file_kb()
    release_pages(view)
    assert rss_file_kb() <= before - 3 * 1024  # most of the 4 MiB left the resident set
    assert np.array_equal(view, data)


def test_a_view_outside_the_file_is_a_value_error(tmp_path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"12345678")
    file_map = map_file(str(path))
    with pytest.raises(ValueError, match="outside the file"):
        tensor_view(file_map, np.dtype(np.int32), (4,), 0, 16, "t")
    with pytest.raises(ValueError, match="outside the file"):
        tensor_view(file_map, np.dtype(np.int32), (1,), 0, 3, "t")


def test_other_memory_is_never_released(tmp_path) -> None:
    values = np.arange(1 << 21, dtype=np.int32)
    heap = values.copy()
    release_pages(heap)
    anonymous = np.frombuffer(mmap.mmap(-1, values.nbytes), dtype=np.int32)
    anonymous[:] = values
    release_pages(anonymous)
    path = tmp_path / "cow"
    path.write_bytes(np.zeros(values.size, np.int32).tobytes())
    copy_on_write = np.memmap(path, dtype=np.int32, mode="c")
    copy_on_write[:] = values
    release_pages(copy_on_write)
    for array in (heap, anonymous, copy_on_write):
        assert np.array_equal(array, values)


@linux_only
def test_a_loaded_model_answers_as_the_saved_one_and_keeps_no_mapping(tmp_path) -> None:
    rng = np.random.default_rng(5)
    m = nnqd.Linear(300, 70)
    m.set_weight_bias(ferroq.QTensor.from_int_repr(rng.integers(-128, 128, (70, 300), dtype=np.int8), 0.01, 0), rng.standard_normal(70).astype(np.float32))
    lstm = nnqd.LSTM(40, 24, num_layers=2)
    model = ferroq.nn.Sequential(m, lstm)
    path = tmp_path / "m.safetensors"
    ferroq.save(model, path)
    loaded = ferroq.load(path)
    x = rng.standard_normal((3, 300)).astype(np.float32)
    assert loaded[0](x).tobytes() == m(x).tobytes()
    assert loaded[0].weight()._same_as(m.weight())
    for name, weight in lstm.get_weight().items():
        assert loaded[1].get_weight()[name]._same_as(weight)
    with open("/proc/self/maps") as f:
        assert str(path) not in f.read()  # the loaded model holds nothing of the file


def test_a_weight_handed_over_in_blocks_packs_as_the_whole() -> None:
    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, size=(2500, 37), dtype=np.int8)  # 3 column blocks, the last narrower
    scales, zero_points = rng.uniform(0.01, 0.1, 2500).astype(np.float32), rng.integers(-3, 4, 2500).astype(np.int32)
    bias = rng.standard_normal(2500).astype(np.float32)
    calls = []

    def rows(start: int, stop: int) -> np.ndarray:
        calls.append((start, stop))
        return w[start:stop]

    blocks = _core.PackedLinear.from_rows(2500, 37, rows, scales, zero_points, bias, reduce_range=False)
    whole = _core.PackedLinear(w, scales, zero_points, bias, reduce_range=False)
    assert calls == [(0, 1024), (1024, 2048), (2048, 2500)]
    assert np.array_equal(blocks.weight(), w)
    x = rng.standard_normal((5, 37)).astype(np.float32)
    assert blocks.reduce_range is False and _core.PackedLinear.zeros(3, 2, reduce_range=False).reduce_range is False
    assert blocks.forward(x).tobytes() == whole.forward(x).tobytes()


def test_bad_blocks_are_typed_errors() -> None:
    scales, zero_points = np.ones(20, np.float32), np.zeros(20, np.int32)
    w = np.zeros((20, 3), np.int8)

    def failing(start: int, stop: int) -> np.ndarray:
        raise KeyError("from the caller")

    with pytest.raises(KeyError, match="from the caller"):
        _core.PackedLinear.from_rows(20, 3, failing, scales, zero_points)
    with pytest.raises(ValueError, match=r"came as a \(19, 3\) block, expected \(20, 3\)"):
        _core.PackedLinear.from_rows(20, 3, lambda a, b: w[1:], scales, zero_points)
    with pytest.raises(TypeError):
        _core.PackedLinear.from_rows(20, 3, lambda a, b: w.astype(np.int16), scales, zero_points)
    with pytest.raises(TypeError):
        _core.PackedLinear.from_rows(20, 3, lambda a, b: None, scales, zero_points)
    with pytest.raises(ValueError, match="2\\*\\*31 - 1"):
        _core.PackedLinear.from_rows(1, 2**31, lambda a, b: w, scales[:1], zero_points[:1])
