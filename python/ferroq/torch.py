"""PyTorch interop: ``from_torch`` turns a torch module tree into the equivalent ferroq tree.

torch is imported lazily, only by the functions here; ``import ferroq`` never imports it.
Supported: the containers ``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict``; the float
``nn.Linear`` (and ``NonDynamicallyQuantizableLinear``), ``nn.LSTM``/``GRU``/``RNN``/cells,
``nn.Embedding``, ``nn.EmbeddingBag``, ``nn.LayerNorm``, ``nn.Dropout``, ``nn.Flatten``, ``nn.Identity``
and the activations ``ReLU``, ``ReLU6``, ``Hardtanh``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``SiLU``,
``GELU``, ``Softmax``, ``LogSoftmax``; and modules already converted by torch's ``quantize_dynamic``
(or static ``convert``): their int8 weights and qparams are read directly, so outputs stay
bit-identical with torch's. Each converted module keeps the torch module's train/eval mode.

A custom module with its own ``forward`` cannot be translated (its Python code is torch code).
The pattern: write the same class as a ``ferroq.nn.Module`` (same child names, ``forward``
written with numpy) and pass it in ``custom``; ``from_torch`` builds it with no arguments, converts
the torch module's children into it under the same names, and copies the parameters and buffers
registered directly on the torch module (float ones as parameters, so they are in ``state_dict()``
and saved; others, e.g. integer buffers, as plain ndarray attributes, which ``ferroq.save`` does not
store)::

    class Tagger(ferroq.nn.Module):            # mirrors the torch model's class
        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out)

    model = ferroq.torch.from_torch(torch_tagger, custom={TorchTagger: Tagger})
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from . import nn
from ._arrays import to_numpy
from ._dtypes import float16, qint8
from ._tensor import QTensor
from ._torch_embeddings import CONVERTERS as _EMBEDDING_CONVERTERS
from .nn.module import Module
from .nn import quantized as nnq
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


def _dtype(value: Any) -> Any:
    return float16 if str(value) == "torch.float16" else qint8


def _dynamic_weights(m: Any, dtype: Any) -> Dict[str, Any]:
    weights = {k: (qtensor_from_torch(v) if dtype is qint8 else to_numpy(v)) for k, v in m.get_weight().items()}
    biases = {k: to_numpy(v) for k, v in m.get_bias().items() if v is not None}
    return {**weights, **biases}


def _dynamic_rnn(cls: type, extra: tuple = ()) -> Callable[[Any], Module]:
    def convert(m: Any) -> Module:
        dtype = _dtype(m.dtype)
        kwargs = {k: getattr(m, k) for k in ("num_layers", "bias", "batch_first", "dropout", "bidirectional") + extra}
        q = cls(m.input_size, m.hidden_size, dtype=dtype, **kwargs)
        q.set_weight_bias(_dynamic_weights(m, dtype))
        q.reduce_range = getattr(m, "version", 2) is None or getattr(m, "version", 2) >= 2
        return q

    return convert


def _dynamic_cell(cls: type, extra: tuple = ()) -> Callable[[Any], Module]:
    def convert(m: Any) -> Module:
        dtype = _dtype(m.weight_dtype)
        q = cls(m.input_size, m.hidden_size, bias=m.bias, dtype=dtype, **{k: getattr(m, k) for k in extra})
        q.set_weight_bias(_dynamic_weights(m, dtype))
        return q

    return convert


def _static_linear(m: Any) -> Module:
    weight, bias = m._weight_bias()
    q = nnq.Linear(m.in_features, m.out_features, bias_=bias is not None)
    q.set_weight_bias(qtensor_from_torch(weight), None if bias is None else to_numpy(bias))
    q.scale, q.zero_point = float(m.scale), int(m.zero_point)
    return q


#: The constructor arguments ``Embedding`` and ``EmbeddingBag`` share besides the table's shape.
_EMBEDDING_ARGS = ("padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")


def _embedding(m: Any) -> Module:
    return _params(m, nn.Embedding(m.num_embeddings, m.embedding_dim, **_attributes(m, _EMBEDDING_ARGS)))


def _embedding_bag(m: Any) -> Module:
    names = _EMBEDDING_ARGS + ("mode", "include_last_offset")
    return _params(m, nn.EmbeddingBag(m.num_embeddings, m.embedding_dim, **_attributes(m, names)))


def _attributes(m: Any, names: Tuple[str, ...]) -> Dict[str, Any]:
    """``m``'s attributes ``names`` by name (constructor arguments to copy)."""
    return {name: getattr(m, name) for name in names}


def _layer_norm(m: Any) -> Module:
    affine = bool(m.elementwise_affine)
    target = nn.LayerNorm(tuple(m.normalized_shape), eps=m.eps, elementwise_affine=affine, bias=getattr(m, "bias", None) is not None)
    return _params(m, target)


def _quantize(m: Any) -> Module:
    return nnq.Quantize(float(m.scale), int(m.zero_point), str(m.dtype))


_RNN_KEYS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_ACTIVATION = "torch.nn.modules.activation."
#: torch float module type -> converter.
_FLOAT_CONVERTERS: Dict[str, Callable[[Any], Module]] = {
    "torch.nn.modules.linear.Linear": _linear,
    "torch.nn.modules.linear.NonDynamicallyQuantizableLinear": _linear,
    "torch.nn.modules.linear.Identity": lambda m: nn.Identity(),
    "torch.nn.modules.dropout.Dropout": lambda m: nn.Dropout(m.p, m.inplace),
    "torch.nn.modules.flatten.Flatten": lambda m: nn.Flatten(m.start_dim, m.end_dim),
    "torch.nn.modules.sparse.Embedding": _embedding,
    "torch.nn.modules.sparse.EmbeddingBag": _embedding_bag,
    "torch.nn.modules.normalization.LayerNorm": _layer_norm,
    _ACTIVATION + "ReLU": lambda m: nn.ReLU(),
    _ACTIVATION + "ReLU6": lambda m: nn.ReLU6(m.inplace),
    _ACTIVATION + "Hardtanh": lambda m: nn.Hardtanh(m.min_val, m.max_val, m.inplace),
    _ACTIVATION + "LeakyReLU": lambda m: nn.LeakyReLU(m.negative_slope, m.inplace),
    _ACTIVATION + "Tanh": lambda m: nn.Tanh(),
    _ACTIVATION + "Sigmoid": lambda m: nn.Sigmoid(),
    _ACTIVATION + "SiLU": lambda m: nn.SiLU(m.inplace),
    _ACTIVATION + "GELU": lambda m: nn.GELU(m.approximate),
    _ACTIVATION + "Softmax": lambda m: nn.Softmax(m.dim),
    _ACTIVATION + "LogSoftmax": lambda m: nn.LogSoftmax(m.dim),
    "torch.nn.modules.rnn.LSTM": _recurrent(nn.LSTM, _RNN_KEYS + ("proj_size",)),
    "torch.nn.modules.rnn.GRU": _recurrent(nn.GRU, _RNN_KEYS),
    "torch.nn.modules.rnn.RNN": _recurrent(nn.RNN, _RNN_KEYS + ("nonlinearity",)),
    "torch.nn.modules.rnn.LSTMCell": _recurrent(nn.LSTMCell, ("input_size", "hidden_size", "bias")),
    "torch.nn.modules.rnn.GRUCell": _recurrent(nn.GRUCell, ("input_size", "hidden_size", "bias")),
    "torch.nn.modules.rnn.RNNCell": _recurrent(nn.RNNCell, ("input_size", "hidden_size", "bias", "nonlinearity")),
}
#: torch quantized module type (``torch.ao.nn.quantized`` and ``.dynamic``) -> converter.
_QUANTIZED_CONVERTERS: Dict[str, Callable[[Any], Module]] = {
    "torch.ao.nn.quantized.dynamic.modules.linear.Linear": _dynamic_linear,
    "torch.ao.nn.quantized.dynamic.modules.rnn.LSTM": _dynamic_rnn(nnqd.LSTM),
    "torch.ao.nn.quantized.dynamic.modules.rnn.GRU": _dynamic_rnn(nnqd.GRU),
    "torch.ao.nn.quantized.dynamic.modules.rnn.LSTMCell": _dynamic_cell(nnqd.LSTMCell),
    "torch.ao.nn.quantized.dynamic.modules.rnn.GRUCell": _dynamic_cell(nnqd.GRUCell),
    "torch.ao.nn.quantized.dynamic.modules.rnn.RNNCell": _dynamic_cell(nnqd.RNNCell, ("nonlinearity",)),
    "torch.ao.nn.quantized.modules.linear.Linear": _static_linear,
    "torch.ao.nn.quantized.modules.Quantize": _quantize,
    "torch.ao.nn.quantized.modules.DeQuantize": lambda m: nnq.DeQuantize(),
    # torch's weight-only quantized Embedding/EmbeddingBag (their converters live in their own module).
    **_EMBEDDING_CONVERTERS,
}
_CONVERTERS: Dict[str, Callable[[Any], Module]] = {**_FLOAT_CONVERTERS, **_QUANTIZED_CONVERTERS}
#: torch container type -> the empty ferroq container its converted children go into.
_CONTAINERS: Dict[str, Callable[[], Module]] = {
    "torch.nn.modules.container.Sequential": nn.Sequential,
    "torch.nn.modules.container.ModuleList": nn.ModuleList,
    "torch.nn.modules.container.ModuleDict": nn.ModuleDict,
}


def from_torch(module: Any, custom: Optional[Mapping[type, Callable[[], Module]]] = None) -> Module:
    """The ferroq equivalent of a torch module tree (see the module docstring for what is
    supported). ``custom`` maps your torch module classes to ferroq classes (or zero-argument
    factories) that mirror them: each such module is built empty and its converted children are
    assigned to it under the same names. Raises NotImplementedError naming the first module that
    cannot be translated."""
    return _convert(module, "", dict(custom or {}))


def _own_tensors(module: Any, target: Module, where: str) -> None:
    """Copies the parameters and buffers registered directly on a torch ``module`` into the custom
    ferroq ``target``: floating-point ones as parameters, others as plain ndarray attributes."""
    tensors = list(module.named_parameters(recurse=False)) if hasattr(module, "named_parameters") else []
    tensors += list(module.named_buffers(recurse=False)) if hasattr(module, "named_buffers") else []
    for name, value in tensors:
        if name in target._modules:
            raise TypeError(f"cannot copy {where or 'the root module'}.{name}: the custom ferroq class has a child module of that name")
        array = to_numpy(value)
        if array.dtype.kind == "f":
            target.register_parameter(name, array)
        else:
            setattr(target, name, array.copy())


def _convert(module: Any, where: str, custom: Dict[type, Callable[[], Module]]) -> Module:
    key = _type_key(module)
    training = bool(getattr(module, "training", False))
    if key in _CONVERTERS:
        try:
            converted = _CONVERTERS[key](module)
        except (NotImplementedError, ValueError) as e:
            raise type(e)(f"cannot translate {where or 'the root module'} of type {key}: {e}") from e
        return converted.train(training)
    if key in _CONTAINERS or type(module) in custom:
        target = _CONTAINERS[key]() if key in _CONTAINERS else custom[type(module)]()
        if not isinstance(target, Module):
            raise TypeError(f"custom[{type(module).__name__}] must build a ferroq.nn.Module, got {type(target).__name__}")
        for name, child in module.named_children():
            setattr(target, name, _convert(child, f"{where}.{name}" if where else name, custom))
        if key not in _CONTAINERS:
            _own_tensors(module, target, where)
        return target.train(training)
    raise NotImplementedError(
        f"cannot translate {where or 'the root module'} of type {key}: "
        + (
            "it is a custom module with its own forward(). Write the same class as a ferroq.nn.Module "
            "(same child names, forward in numpy) and pass it as from_torch(model, custom={YourTorchClass: "
            "YourFerroqClass})."
            if hasattr(module, "forward") and not key.startswith("torch.")
            else "this torch module type is not supported by ferroq."
        )
    )
