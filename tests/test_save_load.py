"""``ferroq.save`` / ``ferroq.load``: one safetensors file, bit-exact round trips, and clear
errors for files that are truncated, corrupted, hand-edited or from a newer version."""

from __future__ import annotations

import json
import struct
from collections import OrderedDict

import numpy as np
import pytest

import ferroq
from ferroq import nn
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from conftest import assert_same_bits


def model() -> nn.Module:
    np.random.seed(3)
    m = nn.Sequential(OrderedDict(fc1=nn.Linear(16, 32), act=nn.ReLU(), fc2=nn.Linear(32, 4, bias=False)))
    m.fc2.qconfig = per_channel_dynamic_qconfig
    return quantize_dynamic(m)


def header_of(path) -> dict:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


def rewrite_header(path, header: dict) -> None:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    body = data[8 + size :]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def test_round_trip_is_bit_exact(tmp_path, rng):
    m = model()
    path = tmp_path / "model.safetensors"
    ferroq.save(m, path)
    loaded = ferroq.load(path)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    assert_same_bits(loaded(x), m(x))
    assert repr(loaded) == repr(m)
    assert loaded.fc2.weight()._same_as(m.fc2.weight())
    assert loaded.fc2.bias() is None


def test_file_holds_int8_weights_and_the_tree(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    header = header_of(path)
    assert header["fc1._packed_params._packed_params.0.int"]["dtype"] == "I8"
    assert header["fc1._packed_params._packed_params.1"]["dtype"] == "F32"
    meta = header["__metadata__"]
    assert meta["format"] == "ferroq" and meta["format_version"] == "1"
    tree = json.loads(meta["model"])["tree"]
    assert tree["type"] == "nn.Sequential"
    assert [name for name, _ in tree["children"]] == ["fc1", "act", "fc2"]
    assert tree["children"][0][1]["type"] == "nn.quantized.dynamic.Linear"


def test_float_and_float16_modules_round_trip(tmp_path, rng):
    for m in (nn.Linear(6, 3), quantize_dynamic(nn.Sequential(nn.Linear(6, 3)), dtype="float16")):
        path = tmp_path / "f.safetensors"
        ferroq.save(m, path)
        x = rng.standard_normal((2, 6)).astype(np.float32)
        assert_same_bits(ferroq.load(path)(x), m(x))


def test_old_reduce_range_setting_survives(tmp_path):
    q = nnqd.Linear.from_float(nn.Linear(4, 4))
    q.reduce_range = False
    ferroq.save(q, tmp_path / "q.safetensors")
    assert ferroq.load(tmp_path / "q.safetensors").reduce_range is False


class Tagger(nn.Module):
    """A user model class: its own forward around ferroq layers."""

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


def test_custom_model_classes_are_saved_by_name_and_loaded_by_the_given_class(tmp_path, rng):
    tagger = Tagger()
    tagger.lstm = nn.LSTM(5, 8)
    tagger.head = nn.Linear(8, 3)
    q = quantize_dynamic(tagger.eval())
    path = tmp_path / "tagger.safetensors"
    ferroq.save(q, path)
    with pytest.raises(ValueError, match=r"your own module type .*Tagger; pass its class: .*custom_modules=\{'Tagger': Tagger\}"):
        ferroq.load(path)
    loaded = ferroq.load(path, custom_modules={"Tagger": Tagger})
    assert type(loaded) is Tagger and isinstance(loaded.lstm, nnqd.LSTM)
    x = rng.standard_normal((6, 2, 5)).astype(np.float32)
    assert_same_bits(loaded(x), q(x))
    with pytest.raises(ValueError, match="unknown module type"):
        ferroq.load(path, custom_modules={"Tagger": dict})


def test_truncated_file(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        ferroq.load(path)


def test_garbage_and_missing_files(tmp_path):
    path = tmp_path / "g.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        ferroq.load(path)
    with pytest.raises(FileNotFoundError, match="cannot open"):
        ferroq.load(tmp_path / "absent.safetensors")
    with pytest.raises(IsADirectoryError):
        ferroq.load(tmp_path)


def test_newer_version_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    header = header_of(path)
    header["__metadata__"]["format_version"] = "99"
    rewrite_header(path, header)
    with pytest.raises(ValueError, match="newer ferroq.*format 99"):
        ferroq.load(path)


def test_hand_edited_files_name_the_problem(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    original = header_of(path)

    def edited(change) -> None:
        header = json.loads(json.dumps(original))
        change(header)
        rewrite_header(path, header)

    def unknown_type(h):
        model_desc = json.loads(h["__metadata__"]["model"])
        model_desc["tree"]["children"][0][1]["type"] = "nn.Evil"
        h["__metadata__"]["model"] = json.dumps(model_desc)

    edited(unknown_type)
    with pytest.raises(ValueError, match="fc1 has unknown module type 'nn.Evil'"):
        ferroq.load(path)

    def bad_config(h):
        model_desc = json.loads(h["__metadata__"]["model"])
        model_desc["tree"]["children"][0][1]["config"]["in_features"] = 17
        h["__metadata__"]["model"] = json.dumps(model_desc)

    edited(bad_config)
    with pytest.raises(ValueError, match=r"fc1 \(nn.quantized.dynamic.Linear\): tensor .*0.int' must be I8 of shape \(32, 17\)"):
        ferroq.load(path)

    def not_json(h):
        h["__metadata__"]["model"] = "{"

    edited(not_json)
    with pytest.raises(ValueError, match="not valid JSON"):
        ferroq.load(path)

    def not_ferroq(h):
        del h["__metadata__"]["format"]

    edited(not_ferroq)
    with pytest.raises(ValueError, match="not a ferroq model file"):
        ferroq.load(path)


def test_missing_and_mistyped_tensors(tmp_path):
    path = tmp_path / "m.safetensors"
    m = model()
    ferroq.save(m, path)
    header = header_of(path)
    model_desc = json.loads(header["__metadata__"]["model"])
    model_desc["state"]["fc1.extra"] = {"kind": "array"}
    header["__metadata__"]["model"] = json.dumps(model_desc)
    rewrite_header(path, header)
    with pytest.raises(ValueError, match="state entry 'fc1.extra' is not one the described modules have"):
        ferroq.load(path)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3, batch_first=True),
        lambda: nn.GRU(5, 7, bias=False),
        lambda: nn.RNN(5, 7, nonlinearity="relu"),
        lambda: nn.LSTMCell(5, 7),
        lambda: nn.RNNCell(5, 7, nonlinearity="relu"),
    ],
)
def test_float_recurrent_modules_round_trip(tmp_path, make):
    m = make().eval()
    path = tmp_path / "r.safetensors"
    ferroq.save(m, path)
    loaded = ferroq.load(path)
    assert repr(loaded) == repr(m)
    sd, loaded_sd = m.state_dict(), loaded.state_dict()
    assert list(sd) == list(loaded_sd)
    for key in sd:
        np.testing.assert_array_equal(sd[key], loaded_sd[key])


@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3, batch_first=True), lambda m, x: m(x)[0]),
        (lambda: nn.GRU(5, 7, bias=False), lambda m, x: m(x)[0]),
        (lambda: nn.RNN(5, 7, nonlinearity="relu"), lambda m, x: m(x)[0]),
        (lambda: nn.LSTMCell(5, 7), lambda m, x: m(x[0])[0]),
        (lambda: nn.GRUCell(5, 7), lambda m, x: m(x[0])),
        (lambda: nn.RNNCell(5, 7, nonlinearity="relu"), lambda m, x: m(x[0])),
    ],
)
@pytest.mark.parametrize("dtype", ["qint8", "float16"])
def test_quantized_recurrent_modules_round_trip_bit_exactly(tmp_path, rng, make, call, dtype):
    np.random.seed(0)
    q = quantize_dynamic(make().eval(), dtype=dtype)
    assert type(q).__module__.startswith("ferroq.nn.quantized.dynamic")
    path = tmp_path / "q.safetensors"
    ferroq.save(q, path)
    loaded = ferroq.load(path)
    assert repr(loaded) == repr(q)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    assert_same_bits(call(loaded, x), call(q, x))


def test_statically_quantized_models_round_trip(tmp_path, rng):
    from ferroq.quantization import DeQuantStub, QuantStub, convert, default_qconfig, prepare

    np.random.seed(2)
    float_model = nn.Sequential(QuantStub(), nn.Linear(8, 6), nn.Linear(6, 4, bias=False), DeQuantStub())
    float_model.qconfig = default_qconfig
    prepared = prepare(float_model)
    for _ in range(3):
        prepared(rng.standard_normal((16, 8)).astype(np.float32))
    q = convert(prepared)
    path = tmp_path / "static.safetensors"
    ferroq.save(q, path)
    loaded = ferroq.load(path)
    assert repr(loaded) == repr(q)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    assert_same_bits(loaded(x), q(x))


@pytest.mark.parametrize("keep", [0, 4, 8, 9, 64, -200, -1])
def test_truncated_at_several_offsets(tmp_path, keep):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[: len(data) + keep])
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        ferroq.load(path)


def test_flipped_header_bytes_never_crash(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    original = path.read_bytes()
    (size,) = struct.unpack("<Q", original[:8])
    rng = np.random.default_rng(0)
    outcomes = set()
    for position in list(range(8)) + list(rng.integers(8, 8 + size, size=60)):
        data = bytearray(original)
        data[position] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            ferroq.load(path)
            outcomes.add("loaded")
        except (ValueError, OSError) as e:
            outcomes.add(type(e).__name__)
    assert "ValueError" in outcomes


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda info: info.update(dtype="F32"), "not a valid .safetensors file: invalid shape, data type"),
        (lambda info: info.update(dtype="U8"), r"0.int' must be I8 of shape \(32, 16\), got U8 of shape \(32, 16\)"),
        (lambda info: info.update(shape=[16, 32]), r"0.int' must be I8 of shape \(32, 16\), got I8 of shape \(16, 32\)"),
    ],
)
def test_wrong_dtype_or_shape_in_the_header(tmp_path, change, message):
    path = tmp_path / "m.safetensors"
    ferroq.save(model(), path)
    header = header_of(path)
    change(header["fc1._packed_params._packed_params.0.int"])
    rewrite_header(path, header)
    with pytest.raises(ValueError, match=message):
        ferroq.load(path)
