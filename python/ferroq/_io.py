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
A class with parameters of its own also says which ones its configuration implies, with the
classmethod ``_state_spec(config)`` (see ``_state_spec.py``); ``save`` refuses it otherwise.

``load`` checks the file's whole description against its tensors before it builds anything
(``_io_validate.py``): only ``ValueError`` comes out for a bad file, and nothing is allocated
beyond what the file stores. The file is read, never mapped (``_file_tensors.py``): int8 weights
go from it straight into their packed layout, and a file cut short while it loads is a
ValueError too. Limits: a safetensors header of at most ``MAX_HEADER_BYTES``
(16 MiB), a description of at most ``MAX_JSON_CONTAINERS`` JSON objects and arrays, a module tree
at most ``MAX_DEPTH`` (64) deep, sizes at most 2**31 - 1.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _core
from ._dtypes import DType, as_dtype, per_channel_affine_float_qparams, quint4x2
from ._file_tensors import FileInts, FileQTensor, read_array, read_the_rest
from ._io_validate import MAX_DEPTH, MAX_HEADER_BYTES, Node, TensorInfo, parse_json, validate_description
from ._tensor import QTensor, unpack_nibbles
from ._warm_up import warm_up
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
#: A stored tensor as :func:`ferroq._core.read_safetensors` describes it: name, dtype name,
#: shape, and where its bytes lie in the file (start, end).
RawTensor = Tuple[str, str, List[int], int, int]


class _Tensors:
    """Tensors on their way into a file: ``(name, dtype name, shape, bytes)``; names are unique."""

    def __init__(self) -> None:
        self.items: List[Tuple[str, str, List[int], bytes]] = []
        self.owners: Dict[str, str] = {}

    def add(self, name: str, array: np.ndarray, owner: str) -> None:
        """Adds ``array`` under ``name`` for the state entry ``owner``."""
        array = np.asarray(array)
        if array.dtype not in _DTYPE_NAMES:
            raise ValueError(f"cannot save {owner!r}: dtype {array.dtype} has no safetensors equivalent here")
        if name in self.owners or name == "__metadata__":
            other = f"the state entry {self.owners[name]!r} too" if name in self.owners else "the header's metadata"
            raise ValueError(f"cannot save {owner!r}: its tensor name {name!r} is also that of {other}")
        self.owners[name] = owner
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        self.items.append((name, _DTYPE_NAMES[array.dtype], list(array.shape), little.tobytes()))

    def info(self) -> TensorInfo:
        return {name: (dtype, tuple(shape)) for name, dtype, shape, _ in self.items}


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


def _describe(module: Module, names: Dict[type, str], custom: Dict[str, type], where: str = "", depth: int = 1) -> Dict[str, Any]:
    """The description of ``module``'s tree; records the classes of ``custom:`` types in ``custom``."""
    if depth > MAX_DEPTH:
        raise ValueError(f"cannot save {where}: the module tree is deeper than {MAX_DEPTH} modules (or contains itself)")
    config = module._config()
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"cannot save {where or 'the root module'}: its _config() {config!r} is not JSON") from None
    type_name = _type_name(module, names)
    if type_name.startswith(_CUSTOM):
        custom[type_name[len(_CUSTOM) :]] = type(module)
    return {
        "type": type_name,
        "config": config,
        "children": [
            [name, _describe(child, names, custom, f"{where}.{name}" if where else name, depth + 1)]
            for name, child in module.named_children()
        ],
    }


def _encode(key: str, value: Any, tensors: _Tensors, owner: str = "") -> Dict[str, Any]:
    owner = owner or key
    if isinstance(value, QTensor):
        if value.qscheme() is per_channel_affine_float_qparams:
            tensors.add(key + ".int", value.int_repr(), owner)  # quint4x2: packed, two values per byte
            tensors.add(key + ".scale", value.q_per_channel_scales(), owner)
            tensors.add(key + ".zero_point", value.q_per_channel_zero_points(), owner)
            return {
                "kind": "qtensor",
                "axis": value.q_per_channel_axis(),
                "qscheme": value.qscheme().name,
                "dtype": value.dtype.name,
                "shape": list(value.shape),
            }
        tensors.add(key + ".int", value.int_repr(), owner)
        if value.qscheme().is_per_channel:
            tensors.add(key + ".scale", value.q_per_channel_scales(), owner)
            tensors.add(key + ".zero_point", value.q_per_channel_zero_points(), owner)
            return {"kind": "qtensor", "axis": value.q_per_channel_axis()}
        tensors.add(key + ".scale", np.asarray(value.q_scale(), dtype=np.float64), owner)
        tensors.add(key + ".zero_point", np.asarray(value.q_zero_point(), dtype=np.int64), owner)
        return {"kind": "qtensor", "axis": None}
    if isinstance(value, np.ndarray):
        tensors.add(key, value, owner)
        return {"kind": "array"}
    if isinstance(value, tuple):
        return {"kind": "tuple", "items": [_encode(f"{key}.{i}", item, tensors, owner) for i, item in enumerate(value)]}
    if isinstance(value, DType):
        return {"kind": "dtype", "name": value.name}
    if value is None:
        return {"kind": "none"}
    raise ValueError(f"cannot save state entry {key!r} of type {type(value).__name__}")


def save(module: Module, path: PathLike) -> None:
    """Writes ``module`` (a ferroq module tree) to ``path`` as one ``.safetensors`` file.

    What is written is checked as :func:`load` checks it, so a saved file always loads: a module
    whose state is not what its configuration implies (a parameter registered after
    construction, a custom class with state of its own but no ``_state_spec``) or whose state
    entries cannot be stored apart raises ValueError naming the entry, and nothing is written."""
    if not isinstance(module, Module):
        raise TypeError(f"ferroq.save expects a ferroq module, got {type(module).__name__}")
    path = os.fspath(path)
    registry = _registry()
    names = {cls: name for name, cls in registry.items()}
    custom: Dict[str, type] = {}
    tree = _describe(module, names, custom)
    state = module.state_dict()
    tensors = _Tensors()
    entries = {key: _encode(key, value, tensors) for key, value in state.items()}
    from . import __version__

    header = {"tree": tree, "state": entries, "versions": dict(getattr(state, "_metadata", {}))}
    model = json.dumps(header, separators=(",", ":"))
    try:
        validate_description(parse_json(model, "the model description"), tensors.info(), _resolver(registry, custom))
    except ValueError as e:
        raise ValueError(
            f"cannot save {type(module).__name__} to {path}: {e}. A file stores what modules rebuilt from their "
            "configurations have: not parameters registered after construction, nor the state of a class of yours "
            "that defines no _state_spec"
        ) from None
    metadata = {
        "format": _FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ferroq_version": __version__,
        "model": model,
    }
    _core.write_safetensors(path, tensors.items, metadata)


def _resolver(registry: Dict[str, type], custom_modules: Dict[str, type]) -> Callable[[str, str], type]:
    """``resolve(type name, label)`` for :func:`validate_description`: ferroq's own classes by
    name, ``custom:`` types among ``custom_modules`` (by qualified or bare class name)."""

    def resolve(type_name: str, label: str) -> type:
        cls = _custom_class(type_name, custom_modules) if type_name.startswith(_CUSTOM) else registry.get(type_name)
        if cls is None and type_name.startswith(_CUSTOM):
            bare = type_name.rsplit(".", 1)[-1]
            raise ValueError(
                f"{label} is your own module type {type_name[len(_CUSTOM):]}; pass its class: "
                f"ferroq.load(path, custom_modules={{{bare!r}: {bare}}})"
            )
        if cls is None or not (isinstance(cls, type) and issubclass(cls, Module)):
            raise ValueError(f"{label} has unknown module type {type_name[:100]!r}")
        return cls

    return resolve


def _decode(key: str, entry: Dict[str, Any], tensors: Dict[str, Any], made: List[FileQTensor]) -> Any:
    """The state value of a checked entry, from the file's tensors (arrays read from the file,
    or :class:`~ferroq._file_tensors.FileInts` for int8 tensors, still in the file); every
    :class:`~ferroq._file_tensors.FileQTensor` made is added to ``made``."""
    kind = entry["kind"]
    if kind == "array":
        array = tensors[key]
        return array.read() if isinstance(array, FileInts) else array
    if kind == "qtensor":
        values = tensors[key + ".int"]
        scale, zero_point = tensors[key + ".scale"], tensors[key + ".zero_point"]
        if isinstance(values, FileInts):  # qint8: packed straight from the file
            axis = None if entry["axis"] is None else int(entry["axis"])
            q = FileQTensor.of(values, float(scale) if axis is None else scale, int(zero_point) if axis is None else zero_point, axis)
            made.append(q)
            return q
        if entry.get("qscheme") == per_channel_affine_float_qparams.name:
            dtype, shape = as_dtype(entry["dtype"]), tuple(entry["shape"])
            if dtype is quint4x2:
                values = unpack_nibbles(values, int(np.prod(shape)))
            return QTensor._adopt(values.reshape(shape), scale, zero_point, axis=entry["axis"], dtype=dtype)
        if entry["axis"] is None:
            return QTensor._adopt(values, float(scale), int(zero_point))
        return QTensor._adopt(values, scale, zero_point, axis=int(entry["axis"]))
    if kind == "tuple":
        return tuple(_decode(f"{key}.{i}", item, tensors, made) for i, item in enumerate(entry["items"]))
    if kind == "dtype":
        return as_dtype(entry["name"])
    return None


def _build(node: Node, path: str) -> Module:
    """The module tree of a checked description (weights as the constructors make them)."""
    label = node.where or "the root module"
    # ferroq's classes raise only these for a configuration the check let through; your own
    # classes' constructors may raise anything.
    own = node.cls.__module__.startswith("ferroq.")
    try:
        module = node.cls._from_config(node.config)  # type: ignore[attr-defined]
    except (TypeError, ValueError, NotImplementedError) if own else Exception as e:
        raise ValueError(f"{path}: cannot build {label} ({node.cls.__name__}) from its configuration {node.config}: {e}") from e
    for name, child in node.children:
        if hasattr(module, name) and name not in module._modules:
            raise ValueError(f"{path}: {label} has a child named {name!r}, which is already one of its attributes")
        setattr(module, name, _build(child, path))
    return module


def _tensors(raw: List[RawTensor], file: _core.ModelFile) -> Dict[str, Any]:
    """The file's tensors (dtypes and shapes already checked): int8 ones as
    :class:`~ferroq._file_tensors.FileInts` (read only by what packs them), the others read into
    new native-endian arrays."""
    return {
        name: FileInts(file, start, tuple(shape)) if dtype == "I8" else read_array(file, start, _NUMPY_DTYPES[dtype], tuple(shape))
        for name, dtype, shape, start, _ in raw
    }


def _read(file: _core.ModelFile, path: str) -> Tuple[List[RawTensor], Dict[str, str]]:
    """The raw tensors and the metadata of a ferroq file whose format version this ferroq reads."""
    raw, metadata = file.header(MAX_HEADER_BYTES)
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a ferroq model file (its metadata has no format={_FORMAT!r})")
    text = metadata.get("format_version", "")
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        raise ValueError(f"{path}: format_version {text[:20]!r} is not a number")
    version = int(text)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer ferroq (format {version}, ferroq {metadata.get('ferroq_version', '?')[:40]}); "
            f"this ferroq reads format {FORMAT_VERSION} and older: upgrade ferroq"
        )
    if "model" not in metadata:
        raise ValueError(f"{path}: the model description in the metadata is missing")
    return raw, metadata


def load(path: PathLike, custom_modules: Optional[Dict[str, type]] = None) -> Module:
    """Reads a module tree written by :func:`save`.

    The whole description is checked against the stored tensors before any module is built:
    module types, configuration values (types and ranges), child names, the tree's depth, and
    that every state entry is stored in tensors of exactly the dtypes and shapes the
    configurations imply, so nothing is allocated beyond what the file holds. A truncated,
    corrupted, hand-edited or newer-version file raises ValueError naming the problem; a bad path
    raises FileNotFoundError, PermissionError or IsADirectoryError. ``custom_modules`` maps the
    names of your own module classes in the file (bare or qualified) to the classes."""
    path = os.fspath(path)
    file = _core.ModelFile(path)
    raw, metadata = _read(file, path)
    header = parse_json(metadata["model"], f"{path}: the model description in the metadata")
    info = {name: (dtype, tuple(shape)) for name, dtype, shape, _, _ in raw}
    try:
        description = validate_description(header, info, _resolver(_registry(), dict(custom_modules or {})))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    module = _build(description.tree, path)
    tensors = _tensors(raw, file)
    state: "OrderedDict[str, Any]" = OrderedDict()
    made: List[FileQTensor] = []
    try:
        for key, entry in description.state.items():
            state[key] = _decode(key, entry, tensors, made)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{path}: a stored tensor holds values that are not allowed: {e}") from None
    state._metadata = OrderedDict(description.versions)  # type: ignore[attr-defined]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{path}: the stored weights do not fit the stored modules: {e}") from None
    del raw, tensors, state
    read_the_rest(made)  # nothing is read from the file once this returns
    _core.release_free_memory()  # the temporaries are dropped: give their pages back
    _core.start_threads()  # now, not in the model's first call
    warm_up(module)  # the one-time work of a first call, done here
    return module.eval()
