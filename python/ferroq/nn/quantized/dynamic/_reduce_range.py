"""The ``reduce_range`` attribute of the dynamic quantized modules, held by their Rust object."""

from __future__ import annotations

from typing import Any, Dict

from .._pickling import PicklesWeights


class PackedReduceRange(PicklesWeights):
    """Mixin of the dynamic quantized modules whose packed ``_core`` object is ``self._packed``.

    ``reduce_range`` (input levels 0..127 when True, PyTorch's default; 0..255 when False) is held
    by that object, which reads it on every call: setting the attribute sets it there, once. A new
    packed object (new weights, a loaded state dict) starts with the current value
    (:meth:`_packing_reduce_range`); a pickle holds it as the attribute ``reduce_range``.
    """

    _packed: Any

    @property
    def reduce_range(self) -> bool:
        """Whether each call quantizes its input to levels 0..127 (True) or 0..255 (False)."""
        return bool(self._packed.reduce_range)

    @reduce_range.setter
    def reduce_range(self, value: bool) -> None:
        self._packed.reduce_range = bool(value)

    def _packing_reduce_range(self) -> bool:
        """The value a new packed object starts with: the current one (True before the first)."""
        packed = self.__dict__.get("_packed")
        return True if packed is None else bool(packed.reduce_range)

    def _warn_if_accumulator_can_overflow(self) -> None:
        """Warns when a qint8 product can exceed the int32 accumulator (with the current ``reduce_range``)."""
        raise NotImplementedError

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state["reduce_range"] = self.reduce_range
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        reduce_range = state.pop("reduce_range", True)
        super().__setstate__(state)
        self.reduce_range = reduce_range
        self._warn_if_accumulator_can_overflow()
