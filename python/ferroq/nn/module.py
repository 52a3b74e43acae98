"""``Module``: the base of every ferroq layer, with PyTorch's container protocol and state dicts."""

from __future__ import annotations

import itertools
import functools
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from .._arrays import to_numpy

if TYPE_CHECKING:
    from .._state_spec import Config, StateSpec

__all__ = ["Module", "IncompatibleKeys", "RemovableHandle"]

ForwardHook = Callable[["Module", Tuple[Any, ...], Any], Any]

#: Keys of registered hooks, unique for the process (a removed hook's key is never reused).
_HOOK_IDS = itertools.count()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match, as in PyTorch."""

    missing_keys: List[str]
    unexpected_keys: List[str]


def as_parameter(value: Any, name: str) -> Optional[np.ndarray]:
    """A float32 ndarray (a private copy) for a parameter value, or None."""
    if value is None:
        return None
    array = to_numpy(value)
    if array.dtype.kind != "f":
        raise TypeError(f"parameter {name!r} must be a floating-point array, got dtype {array.dtype}")
    return np.array(array, dtype=np.float32, order="C", copy=True)


class RemovableHandle:
    """What :meth:`Module.register_forward_hook` returns: ``remove()`` unregisters the hook."""

    __slots__ = ("_hooks", "_key")

    def __init__(self, hooks: "OrderedDict[int, ForwardHook]", key: int) -> None:
        self._hooks = hooks
        self._key = key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class of ferroq modules: a tree of named children with named float32 parameters.

    Like ``torch.nn.Module``: assigning a ``Module`` attribute registers a child, parameters are
    ndarrays readable and assignable as attributes, ``state_dict()`` uses PyTorch's key names and
    ``load_state_dict()`` checks every key and shape before it changes anything.
    """

    #: Quantization config, read by ``quantize_dynamic``/``prepare``/``from_float`` (None: default).
    qconfig: Any = None
    #: Version written into state-dict metadata; subclasses whose format changes bump it.
    _version: int = 1

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # -- attributes --------------------------------------------------------------------------

    def register_parameter(self, name: str, value: Any) -> None:
        """Adds a float32 parameter (or None, e.g. an absent bias) under ``name``; as in PyTorch,
        TypeError for a name that is not a string, KeyError for an empty one or one with '.'."""
        if not isinstance(name, str):
            raise TypeError(f"parameter name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError('parameter name can\'t contain "."')
        if not name:
            raise KeyError('parameter name can\'t be empty string ""')
        self.__dict__.pop(name, None)
        self._parameters[name] = as_parameter(value, name)

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        if params is None or modules is None:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if isinstance(value, Module):
            # PyTorch's add_module checks: a child's name is a key of every state-dict entry below it.
            if "." in name:
                raise KeyError(f'module name can\'t contain ".", got: {name}')
            if not name:
                raise KeyError('module name can\'t be empty string ""')
            params.pop(name, None)
            self.__dict__.pop(name, None)
            modules[name] = value
        elif name in params:
            params[name] = as_parameter(value, name)
        else:
            if name in modules:
                del modules[name]
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters and children live in their own dicts.
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    # -- calling -----------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.forward(*args, **kwargs)
        hooks = self._forward_hooks
        if hooks:
            for hook in list(hooks.values()):
                hooked = hook(self, args, result)
                if hooked is not None:
                    result = hooked
        return result

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Calls ``hook(module, args, output)`` after every forward; a return value other than None
        replaces the output (PyTorch's forward hooks; ``prepare`` attaches its observers this way)."""
        hooks = self.__dict__.setdefault("_forward_hooks", OrderedDict())
        key = next(_HOOK_IDS)
        hooks[key] = hook
        return RemovableHandle(hooks, key)

    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- the tree ----------------------------------------------------------------------------

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """Every module in the tree, depth first, each once, with its dotted name ('' for self)."""
        seen: set = set()

        def walk(module: Module, name: str) -> Iterator[Tuple[str, Module]]:
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module._modules.items():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        for module_name, module in self.named_modules(prefix):
            for name, value in module._parameters.items():
                if value is not None:
                    yield (f"{module_name}.{name}" if module_name else name), value

    def parameters(self) -> Iterator[np.ndarray]:
        for _, value in self.named_parameters():
            yield value

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- state dicts -------------------------------------------------------------------------

    def state_dict(self, destination: Optional[Dict[str, Any]] = None, prefix: str = "") -> "OrderedDict[str, Any]":
        """Every parameter (and quantized weight) under PyTorch's key names, plus a ``_metadata``
        attribute mapping each module's prefix to ``{"version": ...}``. Values are copies."""
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        metadata = getattr(destination, "_metadata", None)
        if metadata is not None:
            metadata[prefix[:-1]] = {"version": self._version}
        self._save_to_state_dict(destination, prefix)
        for name, child in self._modules.items():
            child.state_dict(destination, prefix + name + ".")
        return destination  # type: ignore[return-value]

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str) -> None:
        for name, value in self._parameters.items():
            if value is not None:
                destination[prefix + name] = value.copy()

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Loads ``state_dict`` into the tree. Every key, shape and dtype is checked first; on any
        error (or, with ``strict``, any missing or unexpected key) nothing is changed and
        RuntimeError lists all the problems. Returns the missing and unexpected keys."""
        metadata = getattr(state_dict, "_metadata", None) or {}
        missing: List[str] = []
        expected: set = set()
        errors: List[str] = []
        updates: List[Callable[[], None]] = []
        for module_name, module in self.named_modules():
            prefix = module_name + "." if module_name else ""
            version = metadata.get(module_name, {}).get("version")
            updates.extend(module._load_from_state_dict(state_dict, prefix, version, missing, expected, errors))
        unexpected = [key for key in state_dict if key not in expected]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for update in updates:
            update()
        return IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(
        self, state_dict: Dict[str, Any], prefix: str, version: Optional[int], missing: List[str], expected: set, errors: List[str]
    ) -> List[Callable[[], None]]:
        """Checks this module's own keys (not its children's): its parameters, then the entries
        :meth:`_state_keys` names, read by :meth:`_load_state`. Returns the assignments to make once
        the whole tree has checked out; records the keys it owns in ``expected``, the absent ones in
        ``missing`` and every problem in ``errors``."""
        updates: List[Callable[[], None]] = []
        for name, current in self._parameters.items():
            key = prefix + name
            if current is None:
                continue
            expected.add(key)
            if key not in state_dict:
                missing.append(key)
                continue
            try:
                value = as_parameter(state_dict[key], key)
            except TypeError as e:
                errors.append(str(e))
                continue
            assert value is not None
            if value.shape != current.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                    f"the shape in current model is {current.shape}."
                )
                continue
            updates.append(functools.partial(self._parameters.__setitem__, name, value))
        names = self._state_keys()
        if names:
            keys = [prefix + n for n in names]
            expected.update(keys)
            absent = [k for k in keys if k not in state_dict]
            missing.extend(absent)
            if not absent:
                try:
                    updates.append(self._load_state({n: state_dict[k] for n, k in zip(names, keys)}, version))
                except (TypeError, ValueError, NotImplementedError) as e:
                    errors.append(f"while loading the state of {prefix[:-1] or type(self).__name__}: {e}")
        return updates

    def _state_keys(self) -> List[str]:
        """The state-dict entries, besides parameters, that this module stores (names without the
        prefix; :meth:`_save_to_state_dict` writes them, :meth:`_load_state` reads them)."""
        return []

    def _load_state(self, values: Dict[str, Any], version: Optional[int]) -> Callable[[], None]:
        """For a module with :meth:`_state_keys`: checks ``values`` (those entries by name, from a
        state dict of module ``version``, None if unrecorded) without changing anything, and returns
        the assignment that installs them. Raises TypeError, ValueError or NotImplementedError,
        which ``load_state_dict`` reports."""
        raise NotImplementedError(f"{type(self).__name__} stores no state besides its parameters")

    # -- configuration (what ferroq.save stores besides the state dict) ---------------------

    #: Constructor arguments kept as attributes of the same name, each with the ``Config`` method
    #: that checks its stored value and that method's further arguments, e.g.
    #: ``{"p": (Config.number, 0.0, 1.0)}``: :meth:`_config` and :meth:`_state_spec` read them.
    _options: Dict[str, Tuple[Any, ...]] = {}

    def _config(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this module without its weights (JSON values):
        by default those named in :attr:`_options`. Modules whose constructor takes other
        arguments override this."""
        return {key: getattr(self, key) for key in self._options}

    @classmethod
    def _from_config(cls, config: Dict[str, Any]) -> "Module":
        """A new module from :meth:`_config`'s output (children are attached afterwards)."""
        return cls(**config)

    @classmethod
    def _state_spec(cls, config: "Config") -> "StateSpec":
        """The state entries of this module's own (not its children's) that a module built from
        ``config`` has, read from the configuration alone (no module is built): ``ferroq.load``
        checks a file against them before it allocates anything, ``ferroq.save`` refuses a module
        whose state differs. Every class with state of its own overrides this (see
        ``ferroq/_state_spec.py``); this default is for modules without any, and takes the
        configuration :attr:`_options` describes unless the class overrides :meth:`_config`."""
        if cls._config is Module._config:
            for key, (read, *limits) in cls._options.items():
                read(config, key, *limits)
            config.finish()
        else:
            config.accept_rest()  # a custom configuration: its class checks it
        return {}

    # -- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        if not lines:
            return f"{self._get_name()}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{self._get_name()}(\n  {body}\n)"
