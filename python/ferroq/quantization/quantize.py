"""PyTorch's eager-mode static quantization flow: ``prepare`` (propagate qconfigs, attach
observers), calibration by running the model, then ``convert`` (swap in quantized modules)."""

from __future__ import annotations

import copy
import warnings
from typing import Any, Dict, List, Optional, Tuple

from ..nn.basic import Linear as FloatLinear
from ..nn.module import Module
from .propagate import propagate_qconfig_
from .stubs import DeQuantStub, QuantStub

__all__ = ["prepare", "convert", "get_default_static_quant_module_mappings"]

#: The modules ``prepare`` gives an output observer (exact types, as in PyTorch).
_OBSERVED_TYPES = (QuantStub, FloatLinear)


def _observer_forward_hook(module: Module, args: Any, output: Any) -> Any:
    """The forward hook ``prepare`` registers: the output goes through the module's observer."""
    return module.activation_post_process(output)


def get_default_static_quant_module_mappings() -> Dict[type, Any]:
    """Which float module ``convert`` replaces by which quantized one (exact types, as in
    PyTorch): ``QuantStub`` -> ``Quantize``, ``DeQuantStub`` -> ``DeQuantize``, ``nn.Linear`` ->
    ``nn.quantized.Linear``."""
    # Imported here: ferroq.nn.quantized imports this package while it initializes.
    from ..nn.quantized import DeQuantize, Quantize
    from ..nn.quantized import Linear as QuantizedLinear

    return {QuantStub: Quantize, DeQuantStub: DeQuantize, FloatLinear: QuantizedLinear}


def prepare(model: Module, inplace: bool = False) -> Module:
    """Returns ``model`` ready for calibration: qconfigs propagated (:func:`propagate_qconfig_`),
    and every ``QuantStub`` and float ``Linear`` with a qconfig given an
    ``activation_post_process = qconfig.activation()`` that observes its output on each call.
    The model is deep-copied first unless ``inplace``. Run calibration data through the result,
    then :func:`convert` it."""
    if not isinstance(model, Module):
        raise TypeError(f"prepare expects a ferroq.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model)
    if not any(m.qconfig is not None for m in model.modules()):
        warnings.warn(
            "None of the submodule got qconfig applied. Make sure you passed correct configuration through "
            "`qconfig_dict` or by assigning the `.qconfig` attribute directly on submodules",
            stacklevel=2,
        )
    for module in model.modules():
        if type(module) in _OBSERVED_TYPES and module.qconfig is not None:
            module.activation_post_process = module.qconfig.activation()
            if _observer_forward_hook not in module.__dict__.get("_forward_hooks", {}).values():
                module.register_forward_hook(_observer_forward_hook)
    return model


def convert(
    module: Module, mapping: Optional[Dict[type, Any]] = None, inplace: bool = False, remove_qconfig: bool = True
) -> Module:
    """Swaps every module whose exact type is in ``mapping`` (default:
    :func:`get_default_static_quant_module_mappings`) and whose qconfig is set for
    ``mapping[type].from_float(module)``. Unlike PyTorch, the root module is swapped too when it
    qualifies. Forward hooks other than the observers' carry over to the new modules; with
    ``remove_qconfig`` the ``qconfig`` attributes and any leftover observers are removed. The model
    is deep-copied first unless ``inplace``; every replacement is built before any is put in place,
    so an error leaves the model as it was. Returns the converted model."""
    if not isinstance(module, Module):
        raise TypeError(f"convert expects a ferroq.nn.Module, got {type(module).__name__}")
    if not inplace:
        module = copy.deepcopy(module)
    if mapping is None:
        mapping = get_default_static_quant_module_mappings()
    replacements = _replacements(module, mapping)
    converted = _swapped(module, mapping)
    for parent, name, new in replacements:
        setattr(parent, name, new)
    if remove_qconfig:
        for node in converted.modules():
            _remove_qconfig(node)
    return converted


def _replacements(module: Module, mapping: Dict[type, Any]) -> List[Tuple[Module, str, Module]]:
    """``(parent, name, replacement)`` for every descendant of ``module`` that ``convert`` swaps."""
    found: List[Tuple[Module, str, Module]] = []
    for name, child in module.named_children():
        found.extend(_replacements(child, mapping))
        new = _swapped(child, mapping)
        if new is not child:
            found.append((module, name, new))
    return found


def _swapped(module: Module, mapping: Dict[type, Any]) -> Module:
    """The quantized replacement of ``module`` (with its non-observer forward hooks), or
    ``module`` itself when it has no qconfig or its type is not in ``mapping``."""
    if module.qconfig is None or type(module) not in mapping:
        return module
    new = mapping[type(module)].from_float(module)
    for hook in module.__dict__.get("_forward_hooks", {}).values():
        if hook is not _observer_forward_hook:
            new.register_forward_hook(hook)
    return new


def _remove_qconfig(module: Module) -> None:
    """Deletes ``module``'s own qconfig and observer, and the hook that called the observer."""
    module.__dict__.pop("qconfig", None)
    if module.__dict__.pop("activation_post_process", None) is not None:
        hooks = module.__dict__.get("_forward_hooks", {})
        for key in [k for k, hook in hooks.items() if hook is _observer_forward_hook]:
            del hooks[key]
