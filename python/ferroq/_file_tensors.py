"""The tensors of a model file on their way into modules (:func:`ferroq.load`), read from the
open file with positional reads (:class:`ferroq._core.ModelFile`); nothing is memory-mapped, so
a file cut short by another process while it is loaded gives a ValueError, never a SIGBUS.

- Every tensor but an int8 one is read at once into a new array (scales, zero points, biases,
  embedding tables: the arrays the modules keep).
- The integers of an int8 tensor are not read here: the :class:`FileQTensor` made for them says
  where they lie, and a module that packs them reads them straight from the file into the packed
  layout (``_core.PackedLinear.from_file``, ``_core.PackedStaticLinear.from_file``), so no other
  copy of them is ever held. Anything else that asks for the integers gets them read then, once;
  and :func:`read_the_rest` reads those of every such tensor still referenced when loading ends,
  so that nothing is read from the file after ``load`` returns.
"""

from __future__ import annotations

import sys
from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._tensor import QTensor

#: The storage of :class:`QTensor`'s ``_int`` slot, under the property :class:`FileQTensor` sets.
_INT_SLOT = QTensor.__dict__["_int"]


class FileInts(NamedTuple):
    """The row-major int8 integers stored from byte ``start`` of ``file``, of shape ``shape``."""

    file: _core.ModelFile
    start: int
    shape: Tuple[int, ...]

    def read(self) -> np.ndarray:
        values = np.empty(self.shape, np.int8)
        read_into(self.file, self.start, values)
        return values


def read_into(file: _core.ModelFile, start: int, out: np.ndarray) -> None:
    """Fills the C-contiguous array ``out`` with the bytes from ``start`` of ``file``."""
    if out.nbytes:
        file.read_into(start, out.reshape(-1).view(np.uint8))


def read_array(file: _core.ModelFile, start: int, dtype: np.dtype, shape: Tuple[int, ...]) -> np.ndarray:
    """A new native-endian array of ``shape`` read from the little-endian bytes from ``start``."""
    little = np.empty(shape, dtype.newbyteorder("<"))
    read_into(file, start, little)
    return little if little.dtype.isnative else little.astype(dtype.newbyteorder("="))


class FileQTensor(QTensor):
    """A qint8 :class:`QTensor` whose integers are still in the model file (see the module
    documentation). The first read of its integers turns it into a plain QTensor holding them."""

    __slots__ = ()

    @classmethod
    def of(cls, source: FileInts, scale: Any, zero_point: Any, axis: Optional[int] = None) -> "FileQTensor":
        """The QTensor of ``source``'s integers with these qparams, checked as :meth:`QTensor._adopt`
        checks them (against a stand-in of the integers' shape that costs no memory)."""
        stand_in = np.broadcast_to(np.zeros((), np.int8), source.shape)
        q = cls._from_values(stand_in, scale, zero_point, axis, None)
        _INT_SLOT.__set__(q, source)
        return q  # type: ignore[return-value]

    @property  # type: ignore[override]
    def _int(self) -> np.ndarray:
        values = self.source().read()
        _INT_SLOT.__set__(self, values)
        self.__class__ = QTensor  # type: ignore[assignment]
        return values

    @_int.setter
    def _int(self, values: np.ndarray) -> None:
        _INT_SLOT.__set__(self, values)

    def source(self) -> FileInts:
        """Where the integers lie in the file."""
        return _INT_SLOT.__get__(self)  # type: ignore[no-any-return]

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.source().shape

    @property
    def ndim(self) -> int:
        return len(self.source().shape)

    def __getstate__(self) -> dict:
        self._int  # noqa: B018  (reads the integers: self is a plain QTensor from here on)
        return self.__getstate__()

    def __reduce__(self) -> Any:
        self._int  # noqa: B018
        return self.__reduce__()


def read_the_rest(made: List[FileQTensor]) -> None:
    """Reads the integers of every tensor of ``made`` still referenced from elsewhere (a module
    keeping its QTensor) and not read yet; the others are dropped with ``made``."""
    for q in made:
        # References: the list's, the loop variable's and getrefcount's argument.
        if type(q) is FileQTensor and sys.getrefcount(q) > 3:
            q._int  # noqa: B018
    made.clear()
