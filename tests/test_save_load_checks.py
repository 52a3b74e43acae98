"""What ``ferroq.load`` checks before it builds anything, and what ``ferroq.save`` refuses to write.

Every hostile case here is refused by the description check, before a module is built: the
messages name the configuration value, child name or tensor at fault. (The random mutations are in
``fuzz_load.py`` / ``test_fuzz_load.py``.)
"""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest

import ferroq
from ferroq import QTensor, _core, nn
from ferroq._io import _registry
from ferroq._io_validate import MAX_DEPTH, MAX_HEADER_BYTES, MAX_JSON_CONTAINERS
from ferroq._state_spec import Config, float32
from ferroq.nn.module import Module
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import quantize_dynamic

from conftest import assert_same_bits


def header_of(path) -> dict:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


def write_with_header(path, header_bytes: bytes, body: bytes) -> None:
    header_bytes += b" " * (-len(header_bytes) % 8)
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + body)


def body_of(path) -> bytes:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return data[8 + size :]


def edit_model(path, change) -> None:
    """Rewrites the file with ``change(model description)`` applied (tensors unchanged)."""
    header = header_of(path)
    body = body_of(path)
    model = json.loads(header["__metadata__"]["model"])
    change(model)
    header["__metadata__"]["model"] = json.dumps(model)
    write_with_header(path, json.dumps(header).encode(), body)


@pytest.fixture
def linear_file(tmp_path):
    np.random.seed(0)
    path = tmp_path / "linear.safetensors"
    ferroq.save(quantize_dynamic(nn.Sequential(nn.Linear(16, 4))), path)
    return path


@pytest.fixture
def lstm_file(tmp_path):
    np.random.seed(0)
    path = tmp_path / "lstm.safetensors"
    ferroq.save(quantize_dynamic(nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3).eval()), path)
    return path


def set_config(key, value, child: bool = True):
    def change(model):
        node = model["tree"]["children"][0][1] if child else model["tree"]
        node["config"][key] = value

    return change


@pytest.mark.parametrize(
    "value, message",
    [
        (2**31, r"in_features must lie in 0..2147483647, got 2147483648"),
        (2**31 - 1, r"tensor .*0.int' must be I8 of shape \(4, 2147483647\)"),
        (10**30, r"in_features must lie in 0..2147483647"),
        (-1, r"in_features must lie in 0..2147483647, got -1"),
        (16.0, r"in_features must be an integer, got float 16.0"),
        (True, r"in_features must be an integer, got bool True"),
        ("16", r"in_features must be an integer, got str '16'"),
        (None, r"in_features must be an integer, got NoneType"),
        ([16], r"in_features must be an integer, got list"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_range_is_refused(linear_file, value, message):
    edit_model(linear_file, set_config("in_features", value))
    with pytest.raises(ValueError, match=r"0 \(nn.quantized.dynamic.Linear\): " + message):
        ferroq.load(linear_file)


def test_config_keys_unknown_or_missing(linear_file):
    original = linear_file.read_bytes()
    edit_model(linear_file, set_config("evil", 1))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['evil'\]"):
        ferroq.load(linear_file)
    linear_file.write_bytes(original)
    edit_model(linear_file, lambda m: m["tree"]["children"][0][1]["config"].pop("out_features"))
    with pytest.raises(ValueError, match="its configuration has no 'out_features'"):
        ferroq.load(linear_file)
    linear_file.write_bytes(original)
    edit_model(linear_file, set_config("dtype", "quint8"))
    with pytest.raises(ValueError, match=r"dtype must be one of \['qint8', 'float16'\], got 'quint8'"):
        ferroq.load(linear_file)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("num_layers", 10**9, r"num_layers=1000000000 needs more tensors than the 44 the file holds"),
        ("num_layers", 1e9, r"num_layers must be an integer, got float"),
        ("num_layers", 3, r"state entr.* missing from the description"),
        ("num_layers", 1, r"state entry 'weight_ih_l1' is not one the described modules have"),
        ("proj_size", 6, r"proj_size must lie in 0..5, got 6"),
        ("dropout", float("nan"), r"dropout must be a finite number"),
        ("dropout", 2, r"dropout must lie in \[0.0, 1.0\], got 2"),
        ("bidirectional", 1, r"bidirectional must be true or false, got int 1"),
        ("hidden_size", 0, r"hidden_size must lie in 1..2147483647, got 0"),
    ],
)
def test_recurrent_config_values_are_checked_against_the_tensors(lstm_file, key, value, message):
    edit_model(lstm_file, set_config(key, value, child=False))
    with pytest.raises(ValueError, match=message):
        ferroq.load(lstm_file)


@pytest.mark.parametrize(
    "module, key, value, message",
    [
        (nn.Dropout(0.3), "p", 1.5, r"p must lie in \[0.0, 1.0\], got 1.5"),
        (nn.Dropout(0.3), "inplace", 0, r"inplace must be true or false, got int 0"),
        (nn.Flatten(0, 1), "end_dim", 1.0, r"end_dim must be an integer, got float"),
        (nn.GELU(), "approximate", "erf", r"approximate must be one of \['none', 'tanh'\], got 'erf'"),
        (nn.Softmax(1), "dim", "1", r"dim must be an integer, got str"),
        (nn.LogSoftmax(), "dim", 2.5, r"dim must be an integer, got float"),
        (nn.Hardtanh(), "max_val", float("inf"), r"max_val must be a finite number"),
        (nn.ReLU6(), "min_val", 0.0, r"its configuration has unknown key\(s\) \['min_val'\]"),
        (nn.SiLU(), "inplace", "yes", r"inplace must be true or false, got str"),
        (nn.LeakyReLU(), "negative_slope", True, r"negative_slope must be a finite number, got bool"),
    ],
)
def test_stored_constructor_options_are_checked(module, key, value, message):
    """The options-only modules: their own configuration is accepted (no state); a hand-edited
    value of the wrong type or range, an unknown key or a missing required one is refused, named."""
    config = module._config()
    assert type(module)._state_spec(Config(dict(config), "m", 1)) == {}
    with pytest.raises(ValueError, match="m: " + message):
        type(module)._state_spec(Config({**config, key: value}, "m", 1))
    missing = {k: v for k, v in config.items() if k != key}
    if key == "dim":  # optional: an absent dim is None
        assert type(module)._state_spec(Config(missing, "m", 1)) == {}
    elif key in config:
        with pytest.raises(ValueError, match=f"m: its configuration has no '{key}'"):
            type(module)._state_spec(Config(missing, "m", 1))


def test_tree_structure_is_checked(linear_file):
    original = linear_file.read_bytes()
    cases = [
        (lambda m: m["tree"]["children"].append(["0", {"type": "nn.ReLU", "config": {}, "children": []}]), "child named '0'"),
        (lambda m: m["tree"]["children"][0].__setitem__(0, "a.b"), "child named 'a.b'"),
        (lambda m: m["tree"]["children"][0].__setitem__(0, ""), "child named ''"),
        (lambda m: m["tree"].__setitem__("extra", 1), "needs exactly 'type', 'config' and 'children'"),
        (lambda m: m["tree"].__setitem__("children", {}), "malformed"),
        (lambda m: m.__setitem__("versions", {"nowhere": {"version": 1}}), "version entry 'nowhere'"),
        (lambda m: m.__setitem__("versions", {"0": {"version": 1.5}}), "version entry '0'"),
        (lambda m: m["state"].__setitem__("0.scale", {"kind": "none"}), r"'0.scale' must be encoded as \{'kind': 'array'\}"),
        (lambda m: m["state"]["0._packed_params._packed_params"]["items"].pop(), "must be a tuple of 2 items"),
        (lambda m: m["state"]["0._packed_params._packed_params"]["items"][0].__setitem__("axis", 1), "per tensor or along axis 0"),
        (lambda m: m["state"]["0._packed_params.dtype"].__setitem__("name", "float16"), "must be encoded as"),
    ]
    for change, message in cases:
        linear_file.write_bytes(original)
        edit_model(linear_file, change)
        with pytest.raises(ValueError, match=message):
            ferroq.load(linear_file)


def test_a_child_named_like_an_attribute_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(nn.Sequential(nn.ReLU()), path)
    def rename(model):
        model["tree"]["children"][0][0] = "forward"
        model["versions"]["forward"] = model["versions"].pop("0")

    edit_model(path, rename)
    with pytest.raises(ValueError, match="child named 'forward', which is already one of its attributes"):
        ferroq.load(path)


def test_deep_nesting_and_huge_descriptions_are_refused_cheaply(tmp_path):
    path = tmp_path / "m.safetensors"
    ferroq.save(nn.Sequential(nn.ReLU()), path)
    original = path.read_bytes()

    def nest(model):
        node = model["tree"]
        for _ in range(MAX_DEPTH + 1):
            child = {"type": "nn.Sequential", "config": {}, "children": []}
            node["children"] = [["s", child]]
            node = child

    edit_model(path, nest)
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH} modules"):
        ferroq.load(path)
    header = header_of(path)
    for model, message in [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[{}" + ",{}" * MAX_JSON_CONTAINERS + "]", "JSON objects and arrays, more than"),
        ('{"tree": 1, "tree": 2}', "the key 'tree' appears twice"),
        ("1" * 5000, "not valid JSON"),
    ]:
        header["__metadata__"]["model"] = model
        write_with_header(path, json.dumps(header).encode(), b"")
        with pytest.raises(ValueError, match=message):
            ferroq.load(path)
    path.write_bytes(original)


def test_a_header_longer_than_the_cap_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 8) + b"{" + b" " * (MAX_HEADER_BYTES + 7))
    with pytest.raises(ValueError, match=f"header of {MAX_HEADER_BYTES + 8} bytes is longer than the {MAX_HEADER_BYTES} bytes"):
        ferroq.load(path)


def test_bad_paths_raise_the_matching_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ferroq.load(tmp_path / "absent.safetensors")
    with pytest.raises(IsADirectoryError):
        ferroq.load(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.safetensors"
        ferroq.save(nn.ReLU(), locked)
        locked.chmod(0)
        with pytest.raises(PermissionError):
            ferroq.load(locked)
    with pytest.raises(FileNotFoundError):
        ferroq.save(nn.ReLU(), tmp_path / "no" / "such" / "dir.safetensors")


# -- what save refuses ------------------------------------------------------------------------


def test_a_parameter_registered_after_construction_is_refused_by_save(tmp_path):
    m = nn.Linear(3, 2)
    m.register_parameter("extra", np.ones(2, dtype=np.float32))
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"cannot save Linear .*state entry 'extra' is not one .*registered after construction"):
        ferroq.save(m, path)
    assert not path.exists()
    m.weight_extra = None  # a plain attribute is not state
    del m.extra
    ferroq.save(m, path)
    np.testing.assert_array_equal(ferroq.load(path).weight, m.weight)


def test_a_tree_that_contains_itself_is_refused_by_save(tmp_path):
    loop = nn.Sequential(nn.ReLU())
    loop.again = loop
    with pytest.raises(ValueError, match="deeper than 64 modules .or contains itself."):
        ferroq.save(loop, tmp_path / "m.safetensors")


def test_a_parameter_whose_shape_was_changed_is_refused_by_save(tmp_path):
    m = nn.Linear(3, 2)
    m._parameters["weight"] = np.zeros((5, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"tensor 'weight' must be F32 of shape \(2, 3\), got F32 of shape \(5, 5\)"):
        ferroq.save(m, tmp_path / "m.safetensors")


def test_names_with_a_dot_are_refused_at_registration_as_in_torch():
    m = nn.Module()
    with pytest.raises(KeyError, match='module name can.{1,2}t contain "\\.", got: a.b'):
        setattr(m, "a.b", nn.ReLU())
    with pytest.raises(KeyError, match='module name can.{1,2}t contain "\\."'):
        nn.Sequential(OrderedDict([("a.b", nn.ReLU())]))
    with pytest.raises(KeyError, match="module name can.{1,2}t be empty string"):
        setattr(m, "", nn.ReLU())
    with pytest.raises(KeyError, match='parameter name can.{1,2}t contain "\\."'):
        m.register_parameter("a.b", np.ones(1, dtype=np.float32))
    with pytest.raises(KeyError, match="parameter name can.{1,2}t be empty string"):
        m.register_parameter("", np.ones(1, dtype=np.float32))
    with pytest.raises(TypeError, match="parameter name should be a string. Got int"):
        m.register_parameter(1, np.ones(1, dtype=np.float32))  # type: ignore[arg-type]
    assert not m._modules and not m._parameters


class TwoNamesOneTensor(Module):
    """A state dict whose entries 'w' (a QTensor) and 'w.int' would share the tensor 'w.int'."""

    def _save_to_state_dict(self, destination, prefix):
        destination[prefix + "w"] = QTensor.from_int_repr(np.zeros(2, dtype=np.int8), 1.0, 0)
        destination[prefix + "w.int"] = np.zeros(2, dtype=np.int8)


def test_state_entries_that_share_a_tensor_name_are_refused_by_save(tmp_path):
    with pytest.raises(ValueError, match=r"cannot save 'w.int': its tensor name 'w.int' is also that of the state entry 'w'"):
        ferroq.save(TwoNamesOneTensor(), tmp_path / "m.safetensors")


def test_the_writer_refuses_two_tensors_of_one_name(tmp_path):
    tensor = ("t", "F32", [1], b"\x00" * 4)
    with pytest.raises(ValueError, match='two tensors are named "t"'):
        _core.write_safetensors(str(tmp_path / "t.safetensors"), [tensor, tensor], {})


class Scaled(Module):
    """A user class with a parameter of its own whose size comes from its configuration."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.width = width
        self.register_parameter("gain", np.arange(width, dtype=np.float32))

    def forward(self, x):
        return self.inner(x) * self.gain

    def _config(self):
        return {"width": self.width}

    @classmethod
    def _state_spec(cls, config: Config):
        return {"gain": float32(config.integer("width"))}


class ScaledWithoutSpec(Scaled):
    _state_spec = Module.__dict__["_state_spec"]


def test_a_custom_class_with_state_round_trips_with_its_state_spec(tmp_path, rng):
    m = Scaled(4)
    m.gain = rng.standard_normal(4).astype(np.float32)
    m.inner = quantize_dynamic(nn.Sequential(nn.Linear(5, 4)))
    path = tmp_path / "scaled.safetensors"
    ferroq.save(m, path)
    loaded = ferroq.load(path, custom_modules={"Scaled": Scaled})
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert_same_bits(loaded(x), m(x))
    edit_model(path, lambda model: model["tree"]["config"].__setitem__("width", 10**12))
    with pytest.raises(ValueError, match="width must lie in 0..2147483647"):
        ferroq.load(path, custom_modules={"Scaled": Scaled})


def test_a_custom_class_with_state_but_no_state_spec_is_refused_by_save(tmp_path):
    with pytest.raises(ValueError, match=r"state entry 'gain' is not one .* defines no _state_spec"):
        ferroq.save(ScaledWithoutSpec(2), tmp_path / "m.safetensors")


def test_a_config_free_custom_class_takes_no_configuration(tmp_path):
    class Box(Module):
        def forward(self, x):
            return self.inner(x)

    box = Box()
    box.inner = nn.ReLU()
    path = tmp_path / "box.safetensors"
    ferroq.save(box, path)
    edit_model(path, lambda model: model["tree"]["config"].__setitem__("x", 1))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['x'\]"):
        ferroq.load(path, custom_modules={"Box": Box})


STATELESS = {
    "nn.ReLU",
    "nn.Identity",
    "nn.Sequential",
    "nn.ModuleList",
    "nn.ModuleDict",
    "nn.Tanh",
    "nn.Sigmoid",
    "nn.quantized.DeQuantize",
    # constructor options only, described by ``_options``
    "nn.Dropout",
    "nn.Flatten",
    "nn.SiLU",
    "nn.GELU",
    "nn.Softmax",
    "nn.LogSoftmax",
    "nn.Hardtanh",
    "nn.ReLU6",
    "nn.LeakyReLU",
}


def test_every_ferroq_class_says_which_state_its_configuration_implies():
    """A new module class with state must override ``_state_spec``, or save refuses it."""
    for name, cls in _registry().items():
        overridden = cls._state_spec.__func__ is not Module._state_spec.__func__
        assert overridden != (name in STATELESS), f"{name}: define _state_spec (see ferroq/_state_spec.py)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Identity()),
        lambda: nn.GRUCell(3, 0),
        lambda: nn.Linear(0, 2),
        lambda: nnqd.Linear(0, 0),
        lambda: nnqd.Linear(3, 2, dtype="float16", bias_=False),
        lambda: nnqd.GRU(0, 2, num_layers=3, bias=False, bidirectional=True, dtype="float16"),
        lambda: nnqd.RNNCell(2, 3, nonlinearity="relu", reduce_range=False),
        lambda: ferroq.nn.quantized.Quantize(0.25, 3, "quint8"),
    ],
)
def test_corner_cases_round_trip(tmp_path, make):
    m = make()
    path = tmp_path / "m.safetensors"
    ferroq.save(m, path)
    loaded = ferroq.load(path)
    assert repr(loaded) == repr(m)
    for key, value in m.state_dict().items():
        got = loaded.state_dict()[key]
        if isinstance(value, tuple):
            value, got = [v.int_repr() if isinstance(v, QTensor) else v for v in value], [
                g.int_repr() if isinstance(g, QTensor) else g for g in got
            ]
            for v, g in zip(value, got):
                assert (v is None and g is None) or np.array_equal(v, g)
        elif isinstance(value, QTensor):
            assert value._same_as(got)
        elif isinstance(value, np.ndarray):
            assert value.dtype == got.dtype and np.array_equal(value, got)
        else:
            assert value == got
