"""qconfig propagation through a module tree, as PyTorch's ``propagate_qconfig_``."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..nn.module import Module
from .qconfig import QConfig

__all__ = ["propagate_qconfig_"]


def propagate_qconfig_(module: Module, qconfig_dict: Optional[Dict[Any, Any]] = None) -> None:
    """Sets ``qconfig`` on every module of the tree, in place, as PyTorch does: a module takes the
    qconfig of its exact type in ``qconfig_dict``, else its parent's; a dotted-name key of
    ``qconfig_dict`` (``"encoder.0.fc"``) overrides that; a ``qconfig`` already set on the module
    itself (None included) wins over both. TypeError for a qconfig that is not a ``QConfig``."""
    qconfig_dict = qconfig_dict or {}

    def visit(node: Module, parent_qconfig: Any, prefix: str) -> None:
        qconfig = qconfig_dict.get(type(node), parent_qconfig)
        qconfig = qconfig_dict.get(prefix, qconfig)
        qconfig = node.__dict__.get("qconfig", qconfig)
        if qconfig is not None and not isinstance(qconfig, QConfig):
            name = prefix or type(node).__name__
            raise TypeError(f"the qconfig of {name} must be a ferroq.quantization.QConfig or None, got {type(qconfig).__name__}")
        node.qconfig = qconfig
        for name, child in node.named_children():
            visit(child, qconfig, f"{prefix}.{name}" if prefix else name)

    visit(module, None, "")
