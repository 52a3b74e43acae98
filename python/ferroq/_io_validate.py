"""The check ``ferroq.load`` runs on a file's description before it builds or allocates anything,
and ``ferroq.save`` on what it is about to write.

A file holds tensors (name, dtype, shape; the safetensors layer has already checked that each
tensor's bytes are exactly its shape's worth) and a JSON description: the module tree (type,
configuration and named children of every module), how each state-dict entry is encoded in
tensors, and each module's state-dict version. :func:`validate_description` checks, without
building a module or reading a tensor's data:

- the JSON's size and nesting (limits below) and that no object repeats a key;
- every module type (ferroq's own, or a class the caller passed for ``custom:`` types), every
  configuration value (type and range, through the class's ``_state_spec``), every child name
  (a non-empty string without '.', unique among its siblings) and the tree's depth;
- that the state entries are exactly those the configurations imply, each encoded as its spec
  says, in tensors of exactly the implied dtypes and shapes, every tensor used exactly once.

So everything loading later allocates is bounded by what the file stores: a file cannot claim
``in_features=2**31`` or ``num_layers=10**9`` without holding the matching tensors.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, NamedTuple, Set, Tuple

from ._state_spec import Array, Config, DTypeName, Items, Nothing, QWeight, RowwiseQWeight, Spec

#: Largest safetensors JSON header ``ferroq.load`` parses (the format allows 100 MB).
MAX_HEADER_BYTES = 16 * 2**20
#: Most JSON objects and arrays the model description may hold (one module needs about four).
MAX_JSON_CONTAINERS = 2**20
#: Deepest module tree (the root is depth 1).
MAX_DEPTH = 64

#: Tensor name -> (safetensors dtype name, shape).
TensorInfo = Dict[str, Tuple[str, Tuple[int, ...]]]


class Node(NamedTuple):
    """One checked module of the tree: its class, configuration, children and dotted name."""

    cls: type
    config: Dict[str, Any]
    children: List[Tuple[str, "Node"]]
    where: str


class Description(NamedTuple):
    """A checked description: the tree, the state entries (key -> encoding, in file order) and
    the state-dict versions."""

    tree: Node
    state: Dict[str, Any]
    versions: Dict[str, Dict[str, int]]


def parse_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON after cheap checks that bound the parse's memory; ValueError for
    invalid JSON, repeated keys, too many containers or too deep nesting."""
    containers = text.count("{") + text.count("[")
    if containers > MAX_JSON_CONTAINERS:
        raise ValueError(f"{what} has {containers} JSON objects and arrays, more than the {MAX_JSON_CONTAINERS} ferroq reads")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError, repeated keys, too many digits
        raise ValueError(f"{what} is not valid JSON ({e})") from None


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: Set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {repeated!r} appears twice in one object")
    return result


def validate_description(
    header: Any,
    tensors: TensorInfo,
    resolve: Callable[[str, str], type],
) -> Description:
    """Checks a parsed description against the file's tensors (see the module docstring);
    ``resolve(type name, module label)`` gives a module class or raises ValueError. Raises
    ValueError naming the first problem; returns the checked tree."""
    if not isinstance(header, dict) or not isinstance(header.get("tree"), dict) or not isinstance(header.get("state"), dict):
        raise ValueError("the model description is malformed (it needs a 'tree' and a 'state' object)")
    unknown = sorted(set(header) - {"tree", "state", "versions"})
    if unknown:
        raise ValueError(f"the model description has unknown key(s) {unknown}")
    expected: Dict[str, Tuple[Spec, str]] = {}
    max_count = max(1, len(tensors))
    tree = _check_node(header["tree"], "", 1, resolve, expected, max_count)
    state: Dict[str, Any] = header["state"]
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(f"state entr{'y' if len(missing) == 1 else 'ies'} {_names(missing)} missing from the description")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        key = unexpected[0]
        raise ValueError(
            f"state entry {key!r} is not one the described modules have (their configurations do not imply it)"
        )
    used: Set[str] = set()
    for key, entry in state.items():
        spec, where = expected[key]
        _check_entry(key, entry, spec, tensors, used, where)
    unused = [name for name in tensors if name not in used]
    if unused:
        raise ValueError(f"unexpected tensor(s) {_names(unused)}: no state entry uses them")
    versions = header.get("versions", {})
    _check_versions(versions, tree)
    return Description(tree, state, versions)


def _check_node(
    node: Any, where: str, depth: int, resolve: Callable[[str, str], type], expected: Dict[str, Tuple[Spec, str]], max_count: int
) -> Node:
    label = where or "the root module"
    if depth > MAX_DEPTH:
        raise ValueError(f"{label} is nested deeper than {MAX_DEPTH} modules")
    if not isinstance(node, dict) or set(node) != {"type", "config", "children"}:
        raise ValueError(f"the description of {label} is malformed (it needs exactly 'type', 'config' and 'children')")
    type_name, raw_config, raw_children = node["type"], node["config"], node["children"]
    if not isinstance(type_name, str) or not isinstance(raw_config, dict) or not isinstance(raw_children, list):
        raise ValueError(f"the description of {label} is malformed")
    cls = resolve(type_name, label)
    config = Config(raw_config, f"{label} ({type_name})", max_count)
    own = cls._state_spec(config)  # type: ignore[attr-defined]
    config.finish()
    prefix = where + "." if where else ""
    for key, spec in own.items():
        if prefix + key in expected:
            raise ValueError(f"{label}: its state entry {prefix + key!r} is also another module's")
        expected[prefix + key] = (spec, f"{label} ({type_name})")
    children: List[Tuple[str, Node]] = []
    names: Set[str] = set()
    for item in raw_children:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"the children of {label} are malformed")
        name = item[0]
        if not name or "." in name or name in names:
            raise ValueError(f"{label} has a child named {name!r}: names must be non-empty, unique and without '.'")
        names.add(name)
        children.append((name, _check_node(item[1], prefix + name, depth + 1, resolve, expected, max_count)))
    return Node(cls, raw_config, children, where)


def _check_entry(key: str, entry: Any, spec: Spec, tensors: TensorInfo, used: Set[str], where: str) -> None:
    """Checks that ``entry`` encodes a value matching ``spec`` in tensors of the right dtypes and
    shapes; marks the tensors used."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if isinstance(spec, Array):
        _exact(entry, {"kind": "array"}, key, where)
        _tensor(key, spec.dtype, spec.shape, tensors, used, where)
    elif isinstance(spec, QWeight):
        axis = entry.get("axis", "absent") if kind == "qtensor" and set(entry) == {"kind", "axis"} else "absent"
        if not (axis is None or (type(axis) is int and axis == 0)):
            raise ValueError(f"{where}: state entry {key!r} must be an int8 QTensor quantized per tensor or along axis 0, got {_short(entry)}")
        qparams = () if axis is None else spec.shape[:1]
        _tensor(key + ".int", "I8", spec.shape, tensors, used, where)
        _tensor(key + ".scale", "F64", qparams, tensors, used, where)
        _tensor(key + ".zero_point", "I64", qparams, tensors, used, where)
    elif isinstance(spec, RowwiseQWeight):
        rows, columns = spec.shape
        want = {
            "kind": "qtensor",
            "axis": 0,
            "qscheme": "per_channel_affine_float_qparams",
            "dtype": spec.dtype,
            "shape": [rows, columns],
        }
        _exact(entry, want, key, where)
        stored = (rows * columns + 1) // 2 if spec.dtype == "quint4x2" else None
        _tensor(key + ".int", "U8", (rows, columns) if stored is None else (stored,), tensors, used, where)
        _tensor(key + ".scale", "F32", (rows,), tensors, used, where)
        _tensor(key + ".zero_point", "F32", (rows,), tensors, used, where)
    elif isinstance(spec, Items):
        items = entry.get("items") if kind == "tuple" and set(entry) == {"kind", "items"} else None
        if not isinstance(items, list) or len(items) != len(spec.items):
            raise ValueError(f"{where}: state entry {key!r} must be a tuple of {len(spec.items)} items, got {_short(entry)}")
        for i, (item, item_spec) in enumerate(zip(items, spec.items)):
            _check_entry(f"{key}.{i}", item, item_spec, tensors, used, where)
    elif isinstance(spec, DTypeName):
        _exact(entry, {"kind": "dtype", "name": spec.name}, key, where)
    elif isinstance(spec, Nothing):
        _exact(entry, {"kind": "none"}, key, where)
    else:  # pragma: no cover - the Spec union is closed
        raise AssertionError(spec)


def _exact(entry: Any, want: Dict[str, Any], key: str, where: str) -> None:
    if not isinstance(entry, dict) or entry != want:
        raise ValueError(f"{where}: state entry {key!r} must be encoded as {want}, got {_short(entry)}")


def _tensor(name: str, dtype: str, shape: Tuple[int, ...], tensors: TensorInfo, used: Set[str], where: str) -> None:
    info = tensors.get(name)
    if info is None:
        raise ValueError(f"{where}: tensor {name!r} is missing")
    if info != (dtype, tuple(shape)):
        raise ValueError(f"{where}: tensor {name!r} must be {dtype} of shape {tuple(shape)}, got {info[0]} of shape {info[1]}")
    if name in used:
        raise ValueError(f"{where}: tensor {name!r} is used by two state entries")
    used.add(name)


def _check_versions(versions: Any, tree: Node) -> None:
    """Each module's state-dict version: ``{dotted name: {"version": int}}`` for modules of the tree."""
    if not isinstance(versions, dict):
        raise ValueError("the state-dict versions in the description are malformed")
    names: Set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        names.add(node.where)
        stack.extend(child for _, child in node.children)
    for name, value in versions.items():
        version = value.get("version") if isinstance(value, dict) and set(value) == {"version"} else None
        if name not in names or isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**31:
            raise ValueError(f"the state-dict version entry {name!r}: {_short(value)} is malformed")


def _names(names: List[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

