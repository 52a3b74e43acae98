"""The int32 accumulator of the int8 products wraps around, as FBGEMM's does.

An output is ``Σ_k (x_q[k] - x_zp) * w_q[k]`` over the ``in_features`` inputs of a row, summed in
int32 with wrap-around. ``|x_q - x_zp|`` is at most 127 for inputs quantized with
``reduce_range`` (levels 0..127, the dynamic default) and 255 for full-range uint8 inputs (the
static Linear, or ``reduce_range=False``); a symmetric qint8 weight is at most 128 in magnitude.
So a sum can leave ``[-2**31, 2**31 - 1]`` once ``in_features * 127 * 128 > 2**31 - 1``, that is
``in_features >= 132105``, or ``in_features >= 65794`` with full-range inputs (affine weight zero
points can halve these bounds again). PyTorch returns the wrapped numbers silently; ferroq keeps
them (bit parity) but warns once, when such a layer is built or unpickled.
"""

from __future__ import annotations

import warnings

INT32_MAX = 2**31 - 1
#: The largest ``|w_q|`` of a symmetric qint8 weight.
WEIGHT_MAGNITUDE = 128


def input_levels(reduce_range: bool) -> int:
    """The largest ``|x_q - x_zp|`` of a uint8 input: 127 with ``reduce_range``, else 255."""
    return 127 if reduce_range else 255


def warn_if_accumulator_can_overflow(layer: str, in_features: int, levels: int) -> None:
    """Emits a RuntimeWarning when a product of length ``in_features`` with inputs of up to
    ``levels`` (see :func:`input_levels`) can exceed the int32 accumulator."""
    worst = in_features * levels * WEIGHT_MAGNITUDE
    if worst > INT32_MAX:
        warnings.warn(
            f"{layer}: with in_features={in_features}, the int32 accumulator of the int8 product can overflow "
            f"({levels} * {WEIGHT_MAGNITUDE} * {in_features} = {worst} > 2**31 - 1) for inputs and weights near "
            "their extremes; like PyTorch, ferroq then returns the wrapped-around value",
            RuntimeWarning,
            stacklevel=3,
        )
