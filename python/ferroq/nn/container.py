"""``ModuleList`` and ``ModuleDict``: PyTorch's containers that hold children without calling them.

Children are registered like attributes, so ``state_dict()`` keys (``layers.0.weight``),
``quantize_dynamic``, ``ferroq.save``/``load`` and ``from_torch`` see them as in torch.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple, Union, overload

from .module import Module

__all__ = ["ModuleList", "ModuleDict"]


def _check_child(owner: Module, name: Any, module: Any) -> None:
    """torch's ``add_module`` checks: a ferroq module under a non-empty string name without '.'
    that does not shadow an attribute."""
    if not isinstance(module, Module):
        raise TypeError(f"{type(owner).__name__} holds ferroq modules, got {type(module).__name__} for {name!r}")
    if not isinstance(name, str):
        raise TypeError(f"module name should be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f'module name can\'t be empty or contain ".", got: {name!r}')
    if name not in owner._modules and hasattr(owner, name):
        raise KeyError(f"attribute '{name}' already exists")


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


class ModuleList(Module):
    """A list of modules, registered as children ``"0"``, ``"1"``, ... (renumbered on insert and
    delete, as in torch). Indexable (negative indices and slices too), iterable, sized."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"ModuleList indices must be integers or slices, not {type(index).__name__}")
        value = int(index)
        if not -len(self) <= value < len(self):
            raise IndexError(f"index {value} is out of range")
        return value % len(self)

    def _renumber(self, modules: Iterable[Module]) -> None:
        self._modules.clear()
        for position, module in enumerate(modules):
            self._modules[str(position)] = module

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> "ModuleList": ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Module, "ModuleList"]:
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[str(self._index(index))]

    def __setitem__(self, index: int, module: Module) -> None:
        position = str(self._index(index))
        _check_child(self, position, module)
        self._modules[position] = module

    def __delitem__(self, index: Union[int, slice]) -> None:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[self._index(index)]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return ModuleList([*self, *other])

    def append(self, module: Module) -> "ModuleList":
        _check_child(self, str(len(self)), module)
        self._modules[str(len(self))] = module
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        items = list(modules)
        for offset, module in enumerate(items):
            _check_child(self, str(len(self) + offset), module)
        for module in items:
            self._modules[str(len(self))] = module
        return self

    def insert(self, index: int, module: Module) -> None:
        """Inserts ``module`` before ``index`` (clamped to the list, as ``list.insert``)."""
        _check_child(self, str(len(self)), module)
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)

    def pop(self, index: int = -1) -> Module:
        module = self[index]
        del self[index]
        return module

    def __repr__(self) -> str:
        """torch's: runs of identical children are shown once, as ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(module) for module in self]
        if not reprs:
            return f"{self._get_name()}()"
        blocks: list = []
        for position, text in enumerate(reprs):
            if blocks and blocks[-1][2] == text:
                blocks[-1][1] = position
            else:
                blocks.append([position, position, text])
        lines = [
            _indent(f"({first}): {text}" if first == last else f"({first}-{last}): {last - first + 1} x {text}")
            for first, last, text in blocks
        ]
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """An ordered dict of modules, registered as children under their keys (strings)."""

    def __init__(self, modules: Optional[Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        _check_child(self, key, module)
        self._modules[key] = module

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[Tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def update(self, modules: Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]) -> None:
        """Adds or replaces entries from a mapping or an iterable of ``(key, module)`` pairs;
        everything is checked before anything is added."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        else:
            pairs = []
            for position, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ModuleDict update sequence element #{position} should be a (key, module) pair")
                pairs.append((pair[0], pair[1]))
        for key, module in pairs:
            _check_child(self, key, module)
        for key, module in pairs:
            self._modules[key] = module
