"""Whole-model conversion: ``quantize_dynamic`` with PyTorch's qconfig propagation (SPEC.md 6)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Optional, Union

from .._dtypes import as_dtype, float16, qint8
from ..nn.module import Module
from .qconfig import QConfig, default_dynamic_qconfig, float16_dynamic_qconfig

__all__ = ["quantize_dynamic", "propagate_qconfig_", "get_default_dynamic_quant_module_mappings"]


def get_default_dynamic_quant_module_mappings() -> Dict[type, type]:
    """Float module type -> dynamic quantized type, for every type ferroq converts."""
    from .. import nn
    from ..nn.quantized import dynamic as nnqd

    pairs = [("Linear", "Linear"), ("LSTM", "LSTM"), ("GRU", "GRU"), ("RNN", "RNN"), ("LSTMCell", "LSTMCell"), ("GRUCell", "GRUCell"), ("RNNCell", "RNNCell")]
    return {getattr(nn, f): getattr(nnqd, q) for f, q in pairs if hasattr(nn, f) and hasattr(nnqd, q)}


def _has_own_qconfig(module: Module) -> bool:
    """True when ``qconfig`` was set on this module (the class default of None does not count)."""
    return "qconfig" in vars(module)


def propagate_qconfig_(module: Module, qconfig_dict: Optional[Dict[Any, Any]] = None) -> None:
    """Sets ``qconfig`` on every module of the tree, as PyTorch's ``propagate_qconfig_``: a module
    gets the entry for its exact type, else its parent's qconfig; an entry for its dotted name
    overrides that; a qconfig already set on the module wins over both."""
    qconfig_dict = qconfig_dict or {}

    def visit(mod: Module, parent_qconfig: Any, prefix: str) -> None:
        chosen = qconfig_dict.get(type(mod), parent_qconfig)
        chosen = qconfig_dict.get(prefix, chosen)
        if _has_own_qconfig(mod):
            chosen = mod.qconfig
        mod.qconfig = chosen
        for name, child in mod.named_children():
            visit(child, chosen, f"{prefix}.{name}" if prefix else name)

    visit(module, None, "")


def _default_spec(dtype: Any) -> Dict[Any, QConfig]:
    dt = as_dtype(dtype)
    if dt is qint8:
        qconfig = default_dynamic_qconfig
    elif dt is float16:
        qconfig = float16_dynamic_qconfig
    else:
        raise ValueError(f"Don't know how to quantize with default settings for {dt!r}. Provide full qconfig please")
    return {module_type: qconfig for module_type in get_default_dynamic_quant_module_mappings()}


def _normalise_spec(qconfig_spec: Union[None, Dict[Any, Any], Iterable[Any]], dtype: Any) -> Dict[Any, Any]:
    if qconfig_spec is None:
        return _default_spec(dtype)
    if isinstance(qconfig_spec, dict):
        return dict(qconfig_spec)
    if isinstance(qconfig_spec, (set, frozenset, list, tuple)):
        default = next(iter(_default_spec(dtype).values()))
        return {key: default for key in qconfig_spec}
    raise TypeError(f"qconfig_spec must be None, a dict or a set of types and names, got {type(qconfig_spec).__name__}")


def _swap(module: Module, mapping: Dict[type, type]) -> Module:
    qtype = mapping.get(type(module))
    if qtype is None or getattr(module, "qconfig", None) is None:
        return module
    return qtype.from_float(module)


def _convert_children(module: Module, mapping: Dict[type, type]) -> None:
    for name, child in list(module.named_children()):
        _convert_children(child, mapping)
        swapped = _swap(child, mapping)
        if swapped is not child:
            setattr(module, name, swapped)


def _remove_qconfig(module: Module) -> None:
    for mod in module.modules():
        if _has_own_qconfig(mod):
            del mod.qconfig


def quantize_dynamic(
    model: Module,
    qconfig_spec: Union[None, Dict[Any, Any], Iterable[Any]] = None,
    dtype: Any = qint8,
    inplace: bool = False,
) -> Module:
    """Replaces the Linear, LSTM, GRU, RNN and cell modules of ``model`` by dynamic quantized ones.

    ``qconfig_spec``: None (every covered type, with ``dtype``'s default qconfig), a set of types
    and/or dotted module names (those, with ``dtype``'s default qconfig), or a dict mapping types or
    names to QConfigs (``dtype`` is then ignored). qconfigs are inherited by children as in
    PyTorch, and a ``qconfig`` already set on a module wins. Unlike PyTorch, the root module itself
    is converted too (``quantize_dynamic(Linear(4, 4))`` returns a quantized Linear), ``nn.RNN`` is
    covered, and float16 works for every covered type. The model is deep-copied unless ``inplace``.
    Returns the converted model, in eval mode.
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"quantize_dynamic expects a ferroq module, got {type(model).__name__} "
            "(convert torch models with ferroq.torch.from_torch first)"
        )
    spec = _normalise_spec(qconfig_spec, dtype)
    mapping = get_default_dynamic_quant_module_mappings()
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    propagate_qconfig_(model, spec)
    try:
        _convert_children(model, mapping)
        root = _swap(model, mapping)
    finally:
        _remove_qconfig(model)
    return root.eval()
