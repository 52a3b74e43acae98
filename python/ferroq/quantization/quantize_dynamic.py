"""Whole-model dynamic quantization: ``quantize_dynamic`` (docs/numerics.md §6)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Tuple, Union

from .. import _core
from .._dtypes import as_dtype, float16, qint8, quint4x2, quint8
from ..nn.module import Module
from .propagate import propagate_qconfig_
from .qconfig import (
    QConfig,
    default_dynamic_qconfig,
    float16_dynamic_qconfig,
    float_qparams_weight_only_qconfig,
    float_qparams_weight_only_qconfig_4bit,
)
from .quantize import convert

__all__ = ["quantize_dynamic", "get_default_dynamic_quant_module_mappings"]

_ABSENT = object()  # marks "no qconfig of its own" when restoring a model after an error


_DYNAMIC_NAMES = ("Linear", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
#: Float embeddings become PyTorch's weight-only quantized embeddings (``ferroq.nn.quantized``).
_EMBEDDING_NAMES = ("Embedding", "EmbeddingBag")


def get_default_dynamic_quant_module_mappings() -> Dict[type, type]:
    """Float module type -> quantized type: Linear, LSTM, GRU, RNN and the three cells to their
    dynamic modules; Embedding and EmbeddingBag to the weight-only quantized embeddings."""
    from .. import nn
    from ..nn import quantized as nnq
    from ..nn.quantized import dynamic as nnqd

    mapping = {getattr(nn, name): getattr(nnqd, name) for name in _DYNAMIC_NAMES}
    for name in _EMBEDDING_NAMES:
        float_type = getattr(nn, name, None)
        if float_type is not None:
            mapping[float_type] = getattr(nnq, name)
    return mapping


def _default_qconfig(dtype: Any) -> Tuple[QConfig, Tuple[str, ...]]:
    """The qconfig ``dtype`` stands for, and the names of the float types it covers by default."""
    dt = as_dtype(dtype)
    if dt is qint8:
        return default_dynamic_qconfig, _DYNAMIC_NAMES
    if dt is float16:
        return float16_dynamic_qconfig, _DYNAMIC_NAMES
    if dt is quint8:
        return float_qparams_weight_only_qconfig, _EMBEDDING_NAMES
    if dt is quint4x2:
        return float_qparams_weight_only_qconfig_4bit, ("EmbeddingBag",)
    raise ValueError(f"Don't know how to quantize with default settings for {dt!r}. Provide full qconfig please")


def _default_spec(dtype: Any) -> Dict[Any, QConfig]:
    from .. import nn

    qconfig, names = _default_qconfig(dtype)
    return {getattr(nn, name): qconfig for name in names if hasattr(nn, name)}


def _normalise_spec(qconfig_spec: Union[None, Dict[Any, Any], Iterable[Any]], dtype: Any) -> Dict[Any, Any]:
    if qconfig_spec is None:
        return _default_spec(dtype)
    if isinstance(qconfig_spec, dict):
        return dict(qconfig_spec)
    if isinstance(qconfig_spec, (set, frozenset, list, tuple)):
        default, _ = _default_qconfig(dtype)
        return {key: default for key in qconfig_spec}
    raise TypeError(f"qconfig_spec must be None, a dict or a set of types and names, got {type(qconfig_spec).__name__}")


def quantize_dynamic(
    model: Module,
    qconfig_spec: Union[None, Dict[Any, Any], Iterable[Any]] = None,
    dtype: Any = qint8,
    inplace: bool = False,
) -> Module:
    """Replaces the Linear, LSTM, GRU, RNN and cell modules of ``model`` by dynamic quantized ones,
    and Embedding/EmbeddingBag modules by weight-only quantized ones.

    ``qconfig_spec``: None (the types ``dtype`` covers, with its default qconfig: qint8 and
    float16 cover Linear, the RNNs and cells; quint8 covers Embedding and EmbeddingBag with
    ``float_qparams_weight_only_qconfig``; quint4x2 covers EmbeddingBag with
    ``float_qparams_weight_only_qconfig_4bit``), a set of types
    and/or dotted module names (those, with ``dtype``'s default qconfig), or a dict mapping types or
    names to QConfigs (``dtype`` is then ignored). qconfigs are inherited by children as in
    PyTorch, and a ``qconfig`` already set on a module wins. Unlike PyTorch, the root module itself
    is converted too (``quantize_dynamic(Linear(4, 4))`` returns a quantized Linear), ``nn.RNN`` is
    covered, and float16 works for every covered type. The model is deep-copied unless ``inplace``;
    every replacement is built before any is put in place, so an error changes nothing else.
    Returns the converted model, in eval mode.
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"quantize_dynamic expects a ferroq module, got {type(model).__name__} "
            "(convert torch models with ferroq.torch.from_torch first)"
        )
    spec = _normalise_spec(qconfig_spec, dtype)
    if not inplace:
        model = copy.deepcopy(model)
    before = {id(m): (m.training, m.__dict__.get("qconfig", _ABSENT)) for m in model.modules()}
    model.eval()
    try:
        propagate_qconfig_(model, spec)
        converted = convert(model, get_default_dynamic_quant_module_mappings(), inplace=True)
    except BaseException:
        for m in model.modules():
            training, qconfig = before[id(m)]
            object.__setattr__(m, "training", training)
            if qconfig is _ABSENT:
                m.__dict__.pop("qconfig", None)
            else:
                m.qconfig = qconfig
        raise
    del model, before
    _core.release_free_memory()  # the float copy and every temporary are gone: give their pages back
    return converted.eval()

