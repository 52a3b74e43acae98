"""``ferroq.save`` / ``ferroq.load``: a whole module tree in one ``.safetensors`` file.

The file holds every tensor of the tree's state dict (int8 weights, scales, zero points, float
biases) and, in the header metadata, the module tree (each module's type and constructor
configuration), how to reassemble the state dict, and the format version. Loading needs neither
torch nor pickle: module types are looked up among ferroq's own classes, and everything read is
checked before a module is built.

Your own ``ferroq.nn.Module`` subclasses (a model class with its own ``forward`` around ferroq
layers) are saved by name, as ``custom:<module>.<class>``; loading them needs the class, passed
explicitly: ``ferroq.load(path, custom_modules={"Tagger": Tagger})``. Nothing is imported by name.
Such a class is rebuilt with ``cls._from_config(cls_instance._config())``: by default, ``cls()``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _core
from ._dtypes import DType, as_dtype, per_channel_affine_float_qparams, quint4x2
from ._tensor import QTensor, unpack_nibbles
from .nn.module import Module

__all__ = ["save", "load", "FORMAT_VERSION"]

#: Bumped whenever the layout changes; a file with a higher number is refused with a clear error.
FORMAT_VERSION = 1
_FORMAT = "ferroq"

_DTYPE_NAMES: Dict[np.dtype, str] = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.uint16): "U16",
}
_NUMPY_DTYPES: Dict[str, np.dtype] = {name: dtype for dtype, name in _DTYPE_NAMES.items()}

PathLike = Union[str, "os.PathLike[str]"]


class _Tensors:
    """Tensors on their way into a file: ``(name, dtype name, shape, bytes)``."""

    def __init__(self) -> None:
        self.items: List[Tuple[str, str, List[int], bytes]] = []

    def add(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.dtype not in _DTYPE_NAMES:
            raise TypeError(f"cannot save {name!r}: dtype {array.dtype} has no safetensors equivalent here")
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        self.items.append((name, _DTYPE_NAMES[array.dtype], list(array.shape), little.tobytes()))


def _registry() -> Dict[str, type]:
    """Saved type name -> class, for every public ferroq module class."""
    from . import nn
    from .nn import quantized
    from .nn.quantized import dynamic

    registry: Dict[str, type] = {}
    for prefix, namespace in (("nn", nn), ("nn.quantized", quantized), ("nn.quantized.dynamic", dynamic)):
        for name in getattr(namespace, "__all__", []):
            value = getattr(namespace, name)
            if isinstance(value, type) and issubclass(value, Module) and value is not Module:
                registry[f"{prefix}.{name}"] = value
    return registry


_CUSTOM = "custom:"


def _type_name(module: Module, names: Dict[type, str]) -> str:
    cls = type(module)
    return names.get(cls) or f"{_CUSTOM}{cls.__module__}.{cls.__qualname__}"


def _custom_class(type_name: str, custom_modules: Dict[str, type]) -> Optional[type]:
    """The class given for a saved custom type: by its qualified or its bare class name."""
    qualified = type_name[len(_CUSTOM) :]
    return custom_modules.get(qualified) or custom_modules.get(qualified.rsplit(".", 1)[-1])


def _describe(module: Module, names: Dict[type, str], where: str = "") -> Dict[str, Any]:
    config = module._config()
    try:
        json.dumps(config)
    except TypeError:
        raise TypeError(f"cannot save {where or 'the root module'}: its _config() {config!r} is not JSON") from None
    return {
        "type": _type_name(module, names),
        "config": config,
        "children": [[name, _describe(child, names, f"{where}.{name}" if where else name)] for name, child in module.named_children()],
    }


def _encode(key: str, value: Any, tensors: _Tensors) -> Dict[str, Any]:
    if isinstance(value, QTensor):
        if value.qscheme() is per_channel_affine_float_qparams:
            tensors.add(key + ".int", value.int_repr())  # quint4x2: packed, two values per byte
            tensors.add(key + ".scale", value.q_per_channel_scales())
            tensors.add(key + ".zero_point", value.q_per_channel_zero_points())
            return {
                "kind": "qtensor",
                "axis": value.q_per_channel_axis(),
                "qscheme": value.qscheme().name,
                "dtype": value.dtype.name,
                "shape": list(value.shape),
            }
        tensors.add(key + ".int", value.int_repr())
        if value.qscheme().is_per_channel:
            tensors.add(key + ".scale", value.q_per_channel_scales())
            tensors.add(key + ".zero_point", value.q_per_channel_zero_points())
            return {"kind": "qtensor", "axis": value.q_per_channel_axis()}
        tensors.add(key + ".scale", np.asarray(value.q_scale(), dtype=np.float64))
        tensors.add(key + ".zero_point", np.asarray(value.q_zero_point(), dtype=np.int64))
        return {"kind": "qtensor", "axis": None}
    if isinstance(value, np.ndarray):
        tensors.add(key, value)
        return {"kind": "array"}
    if isinstance(value, tuple):
        return {"kind": "tuple", "items": [_encode(f"{key}.{i}", item, tensors) for i, item in enumerate(value)]}
    if isinstance(value, DType):
        return {"kind": "dtype", "name": value.name}
    if value is None:
        return {"kind": "none"}
    raise TypeError(f"cannot save state entry {key!r} of type {type(value).__name__}")


def save(module: Module, path: PathLike) -> None:
    """Writes ``module`` (a ferroq module tree) to ``path`` as one ``.safetensors`` file."""
    if not isinstance(module, Module):
        raise TypeError(f"ferroq.save expects a ferroq module, got {type(module).__name__}")
    names = {cls: name for name, cls in _registry().items()}
    tree = _describe(module, names)
    state = module.state_dict()
    tensors = _Tensors()
    entries = {key: _encode(key, value, tensors) for key, value in state.items()}
    from . import __version__

    header = {"tree": tree, "state": entries, "versions": dict(getattr(state, "_metadata", {}))}
    metadata = {
        "format": _FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ferroq_version": __version__,
        "model": json.dumps(header, separators=(",", ":")),
    }
    _core.write_safetensors(os.fspath(path), tensors.items, metadata)


class _Reader:
    """The tensors of a file, handed out once each, with errors that name what is wrong."""

    def __init__(self, raw: List[Tuple[str, str, List[int], bytes]], path: str) -> None:
        self.path = path
        self.tensors: Dict[str, np.ndarray] = {}
        for name, dtype, shape, data in raw:
            if dtype not in _NUMPY_DTYPES:
                raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
            self.tensors[name] = np.frombuffer(data, dtype=_NUMPY_DTYPES[dtype].newbyteorder("<")).astype(_NUMPY_DTYPES[dtype]).reshape(shape)
        self.used: set = set()

    def take(self, name: str, dtypes: Tuple[Any, ...] = ()) -> np.ndarray:
        if name not in self.tensors:
            raise ValueError(f"{self.path}: tensor {name!r} is missing")
        array = self.tensors[name]
        if dtypes and array.dtype not in [np.dtype(d) for d in dtypes]:
            raise ValueError(f"{self.path}: tensor {name!r} has dtype {array.dtype}, expected one of {[np.dtype(d).name for d in dtypes]}")
        self.used.add(name)
        return array

    def decode(self, key: str, entry: Any) -> Any:
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind == "array":
            return self.take(key)
        if kind == "qtensor" and entry.get("qscheme") == per_channel_affine_float_qparams.name:
            values = self.take(key + ".int", (np.uint8,))
            scale = self.take(key + ".scale", (np.float32,))
            zero_point = self.take(key + ".zero_point", (np.float32,))
            try:
                dtype = as_dtype(str(entry.get("dtype")))
                shape = tuple(int(n) for n in entry.get("shape"))
                if dtype is quint4x2:
                    values = unpack_nibbles(values, int(np.prod(shape)))
                values = values.reshape(shape)
                return QTensor.from_int_repr(values, scale, zero_point, axis=int(entry.get("axis", 0)), dtype=dtype)
            except TypeError as e:
                raise ValueError(f"{self.path}: the quantized tensor {key!r} is malformed: {e}") from None
        if kind == "qtensor":
            values = self.take(key + ".int", (np.int8, np.uint8))
            scale = self.take(key + ".scale", (np.float64,))
            zero_point = self.take(key + ".zero_point", (np.int64,))
            axis = entry.get("axis")
            if axis is None:
                if scale.shape != () or zero_point.shape != ():
                    raise ValueError(f"{self.path}: per-tensor qparams of {key!r} must be scalars")
                return QTensor.from_int_repr(values, float(scale), int(zero_point))
            return QTensor.from_int_repr(values, scale, zero_point, axis=int(axis))
        if kind == "tuple" and isinstance(entry.get("items"), list):
            return tuple(self.decode(f"{key}.{i}", item) for i, item in enumerate(entry["items"]))
        if kind == "dtype":
            return as_dtype(str(entry.get("name")))
        if kind == "none":
            return None
        raise ValueError(f"{self.path}: state entry {key!r} has an unknown description {entry!r}")


def _build(node: Any, registry: Dict[str, type], custom_modules: Dict[str, type], path: str, where: str = "") -> Module:
    label = where or "the root module"
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict) or not isinstance(node.get("children"), list):
        raise ValueError(f"{path}: the description of {label} is malformed")
    type_name = str(node.get("type"))
    cls = _custom_class(type_name, custom_modules) if type_name.startswith(_CUSTOM) else registry.get(type_name)
    if cls is None and type_name.startswith(_CUSTOM):
        bare = type_name.rsplit(".", 1)[-1]
        raise ValueError(
            f"{path}: {label} is your own module type {type_name[len(_CUSTOM):]}; pass its class: "
            f"ferroq.load(path, custom_modules={{{bare!r}: {bare}}})"
        )
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Module)):
        raise ValueError(f"{path}: {label} has unknown module type {type_name!r}")
    try:
        module = cls._from_config(node["config"])
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{path}: cannot build {label} ({node['type']}) from its configuration {node['config']}: {e}") from e
    for item in node["children"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"{path}: the children of {label} are malformed")
        name, child = item
        setattr(module, name, _build(child, registry, custom_modules, path, f"{where}.{name}" if where else name))
    return module


def load(path: PathLike, custom_modules: Optional[Dict[str, type]] = None) -> Module:
    """Reads a module tree written by :func:`save`. Every tensor and field is validated; a
    truncated, corrupted, hand-edited or newer-version file raises ValueError naming the problem.
    ``custom_modules`` maps the names of your own module classes in the file (bare or qualified)
    to the classes."""
    path = os.fspath(path)
    raw, metadata = _core.read_safetensors(path)
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a ferroq model file (its metadata has no format={_FORMAT!r})")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{path}: format_version {metadata.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer ferroq (format {version}, ferroq {metadata.get('ferroq_version')}); "
            f"this ferroq reads format {FORMAT_VERSION} and older: upgrade ferroq"
        )
    try:
        header = json.loads(metadata["model"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: the model description in the metadata is missing or not valid JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("state"), dict):
        raise ValueError(f"{path}: the model description is malformed")
    module = _build(header.get("tree"), _registry(), dict(custom_modules or {}), path)
    reader = _Reader(raw, path)
    state: "OrderedDict[str, Any]" = OrderedDict((key, reader.decode(key, entry)) for key, entry in header["state"].items())
    unused = sorted(set(reader.tensors) - reader.used)
    if unused:
        raise ValueError(f"{path}: unexpected tensor(s) {unused}")
    versions = header.get("versions", {})
    state._metadata = OrderedDict(versions if isinstance(versions, dict) else {})  # type: ignore[attr-defined]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: the stored weights do not fit the stored modules: {e}") from None
    return module.eval()
