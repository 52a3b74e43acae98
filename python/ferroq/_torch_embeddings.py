"""``from_torch`` for PyTorch's weight-only quantized embeddings (``torch.ao.nn.quantized``
``Embedding`` and ``EmbeddingBag``): their quantized rows and float qparams are read unchanged,
so ferroq's outputs are bit-identical with torch's. torch is never imported here; the modules
are read through their public methods."""

from __future__ import annotations

from typing import Any, Callable, Dict

import numpy as np

from ._arrays import to_numpy
from ._dtypes import as_dtype, quint4x2
from ._tensor import QTensor, unpack_nibbles
from .nn.module import Module
from .nn import quantized as nnq

__all__ = ["CONVERTERS", "float_qparams_qtensor_from_torch"]


def float_qparams_qtensor_from_torch(t: Any) -> QTensor:
    """A ferroq QTensor for a torch ``per_channel_affine_float_qparams`` tensor (quint8, or
    quint4x2 whose ``int_repr`` is packed two values per byte)."""
    scheme = str(t.qscheme())
    if scheme != "torch.per_channel_affine_float_qparams":
        raise NotImplementedError(f"expected a per_channel_affine_float_qparams weight, got {scheme}")
    dtype = as_dtype(t.dtype)
    shape = tuple(int(n) for n in t.shape)
    values = to_numpy(t.int_repr())
    if dtype is quint4x2:
        values = unpack_nibbles(values, int(np.prod(shape))).reshape(shape)
    return QTensor.from_int_repr(
        values,
        to_numpy(t.q_per_channel_scales()).astype(np.float32),
        to_numpy(t.q_per_channel_zero_points()).astype(np.float32),
        axis=int(t.q_per_channel_axis()),
        dtype=dtype,
    )


def _embedding(m: Any) -> Module:
    weight = float_qparams_qtensor_from_torch(m.weight())
    q = nnq.Embedding(m.num_embeddings, m.embedding_dim, dtype=weight.dtype)
    q.set_weight(weight)
    return q


def _embedding_bag(m: Any) -> Module:
    weight = float_qparams_qtensor_from_torch(m.weight())
    q = nnq.EmbeddingBag(
        m.num_embeddings, m.embedding_dim, mode=m.mode, include_last_offset=bool(m.include_last_offset), dtype=weight.dtype
    )
    q.set_weight(weight)
    return q


#: torch type (module.qualname) -> converter, merged into ``ferroq.torch``'s table.
CONVERTERS: Dict[str, Callable[[Any], Module]] = {
    "torch.ao.nn.quantized.modules.embedding_ops.Embedding": _embedding,
    "torch.ao.nn.quantized.modules.embedding_ops.EmbeddingBag": _embedding_bag,
}
