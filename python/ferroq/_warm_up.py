"""Two runs of each packed layer of a model just loaded (16 rows, then 1), so that its first call
does no work the later calls skip: the per-thread buffers of the calling thread and of the pool
threads (quantized inputs, accumulators, the recurrent layers' step buffers), the pool threads'
stacks, the kernels' one-time set-up and the allocator's memory for the outputs are grown and
touched here, once, instead of by page faults in the model's first call. Each run reads the
layer's weights once, about what a batch-1 call costs."""

from __future__ import annotations

from typing import Any, List

import numpy as np

from . import _core

#: The rows of the two runs: the buffers then hold up to 16 rows (a batch, or time steps x batch
#: for the recurrent layers) without growing, and the second run leaves the allocator's free
#: memory shaped for batch-1 calls.
ROWS = (16, 1)


def warm_up(module: Any) -> None:
    """Runs every packed layer in ``module``'s tree on zeros, 16 rows then 1 (one time step for
    the recurrent layers), outside the modules: no hook runs, no module state changes. Each
    layer's 16-row result stays alive while the next layer runs, as a layer's input does in a
    forward pass, so that the allocator's memory touched here covers two layers' results at once."""
    previous: Any = None
    for m in module.modules():
        packed = m.__dict__.get("_packed")
        results: List[Any] = []
        for rows in ROWS:
            if isinstance(packed, (_core.PackedLinear, _core.PackedLinearFp16)):
                results.append(packed.forward(np.zeros((rows, packed.in_features), np.float32)))
            elif isinstance(packed, _core.PackedStaticLinear):
                results.append(packed.forward(np.zeros((rows, packed.in_features), np.uint8), 1.0, 0, 1.0, 0))
            elif isinstance(packed, _core.PackedRNN):
                results.append(packed.forward(np.zeros((1, rows, m._core_args()[0]), np.float32)))
        previous = results[0] if results else previous
