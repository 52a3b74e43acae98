"""PyTorch interop: ``from_torch`` turns a torch module tree into the equivalent ferroq tree.

torch is imported lazily, only by the functions here; ``import ferroq`` never imports it.
Supported: ``nn.Sequential``, ``nn.Linear`` (and ``NonDynamicallyQuantizableLinear``), ``nn.ReLU``,
``nn.Identity``, ``nn.Dropout`` (kept as Identity: ferroq modules are for inference), the float
``nn.LSTM``/``GRU``/``RNN``/cells, and modules already converted by torch's ``quantize_dynamic``
(or static ``convert``): their int8 weights and qparams are read directly, so outputs stay
bit-identical with torch's.

A custom module with its own ``forward`` cannot be translated (its Python code is torch code).
The pattern: write the same class as a ``ferroq.nn.Module`` (same attribute names, forward
written with numpy), then assign ``ferroq.torch.from_torch(torch_model.child)`` to each child.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict

import numpy as np

from . import nn
from ._arrays import to_numpy
from ._dtypes import float16, qint8
from ._tensor import QTensor
from .nn.module import Module
from .nn.quantized import dynamic as nnqd

__all__ = ["from_torch", "qtensor_from_torch"]


def _type_key(module: Any) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def qtensor_from_torch(t: Any) -> QTensor:
    """A ferroq QTensor holding a torch quantized tensor's integers and qparams, unchanged."""
    values = to_numpy(t.int_repr())
    scheme = str(t.qscheme())
    if scheme in ("torch.per_tensor_affine", "torch.per_tensor_symmetric"):
        return QTensor.from_int_repr(values, float(t.q_scale()), int(t.q_zero_point()))
    if scheme in ("torch.per_channel_affine", "torch.per_channel_symmetric"):
        return QTensor.from_int_repr(
            values,
            to_numpy(t.q_per_channel_scales()).astype(np.float64),
            to_numpy(t.q_per_channel_zero_points()).astype(np.int64),
            axis=int(t.q_per_channel_axis()),
        )
    raise NotImplementedError(f"quantized tensors with qscheme {scheme} are not supported")


def _params(module: Any, target: Module) -> Module:
    """Copies every float parameter of a torch module into ``target`` (same names)."""
    target.load_state_dict({name: to_numpy(value) for name, value in module.named_parameters(recurse=False)})
    return target


def _linear(m: Any) -> Module:
    return _params(m, nn.Linear(m.in_features, m.out_features, bias=m.bias is not None))


def _recurrent(cls: type, keys: tuple) -> Callable[[Any], Module]:
    def convert(m: Any) -> Module:
        return _params(m, cls(**{k: getattr(m, k) for k in keys if hasattr(m, k)}))

    return convert


def _dynamic_linear(m: Any) -> Module:
    weight, bias = m._weight_bias()
    dtype = float16 if str(m._packed_params.dtype) == "torch.float16" else qint8
    q = nnqd.Linear(m.in_features, m.out_features, bias_=bias is not None, dtype=dtype)
    w = qtensor_from_torch(weight) if dtype is qint8 else to_numpy(weight)
    q.set_weight_bias(w, None if bias is None else to_numpy(bias))
    # torch runs modules saved before version 4 without reduce_range.
    q.reduce_range = getattr(m, "version", 4) is None or getattr(m, "version", 4) >= 4
    return q


_RNN_KEYS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_CONVERTERS: Dict[str, Callable[[Any], Module]] = {
    "torch.nn.modules.linear.Linear": _linear,
    "torch.nn.modules.linear.NonDynamicallyQuantizableLinear": _linear,
    "torch.nn.modules.linear.Identity": lambda m: nn.Identity(),
    "torch.nn.modules.activation.ReLU": lambda m: nn.ReLU(),
    "torch.nn.modules.dropout.Dropout": lambda m: nn.Identity(),
    "torch.nn.modules.rnn.LSTM": _recurrent(nn.LSTM, _RNN_KEYS + ("proj_size",)),
    "torch.nn.modules.rnn.GRU": _recurrent(nn.GRU, _RNN_KEYS),
    "torch.nn.modules.rnn.RNN": _recurrent(nn.RNN, _RNN_KEYS + ("nonlinearity",)),
    "torch.nn.modules.rnn.LSTMCell": _recurrent(nn.LSTMCell, ("input_size", "hidden_size", "bias")),
    "torch.nn.modules.rnn.GRUCell": _recurrent(nn.GRUCell, ("input_size", "hidden_size", "bias")),
    "torch.nn.modules.rnn.RNNCell": _recurrent(nn.RNNCell, ("input_size", "hidden_size", "bias", "nonlinearity")),
    "torch.ao.nn.quantized.dynamic.modules.linear.Linear": _dynamic_linear,
}
_CONTAINERS = ("torch.nn.modules.container.Sequential",)


def from_torch(module: Any) -> Module:
    """The ferroq equivalent of a torch module tree (see the module docstring for what is
    supported). Raises NotImplementedError naming the first module that cannot be translated."""
    return _convert(module, "")


def _convert(module: Any, where: str) -> Module:
    key = _type_key(module)
    if key in _CONVERTERS:
        converted = _CONVERTERS[key](module)
        return converted.train(bool(getattr(module, "training", False)))
    if key in _CONTAINERS:
        children = OrderedDict((name, _convert(child, f"{where}.{name}" if where else name)) for name, child in module.named_children())
        return nn.Sequential(children).train(bool(module.training))
    raise NotImplementedError(
        f"cannot translate {where or 'the root module'} of type {key}: "
        + (
            "it is a custom module with its own forward(). Write it as a ferroq.nn.Module with the same "
            "forward (numpy) and assign ferroq.torch.from_torch(...) of each child to it."
            if hasattr(module, "forward") and not key.startswith("torch.")
            else "this torch module type is not supported by ferroq."
        )
    )
