"""Pickling of the quantized modules whose weights live in ``_core`` objects (which do not pickle)."""

from __future__ import annotations

from typing import Any, Dict, Tuple


class PicklesWeights:
    """Mixin: a pickle holds the module's ``__dict__`` without the attributes named in
    ``_rebuilt_from_weights`` (the ``_core`` objects and what is read from the weights), plus the
    weights themselves as plain values in the entry ``_pickled_weights_key``. Unpickling restores
    the rest of ``__dict__``, then :meth:`_rebuild_from_weights` checks the weights as any
    assignment does and builds the left-out attributes again."""

    #: The attributes a pickle leaves out.
    _rebuilt_from_weights: Tuple[str, ...] = ()
    #: The entry of a pickled state that holds :meth:`_weights_to_pickle`'s value.
    _pickled_weights_key = "_weight"

    def _weights_to_pickle(self) -> Any:
        """The weights as values a pickle can hold (QTensors, arrays, or a dict of them)."""
        raise NotImplementedError

    def _rebuild_from_weights(self, weights: Any) -> None:
        """Builds the attributes a pickle left out from ``weights``; the rest of ``__dict__`` is back."""
        raise NotImplementedError

    def __getstate__(self) -> Dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._rebuilt_from_weights}
        state[self._pickled_weights_key] = self._weights_to_pickle()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop(self._pickled_weights_key)
        self.__dict__.update(state)
        self._rebuild_from_weights(weights)
