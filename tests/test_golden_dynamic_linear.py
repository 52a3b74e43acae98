"""Every golden dynamic Linear case from PyTorch: the weights and qparams ``from_float`` chooses,
and the outputs, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import ferroq
from ferroq.nn.quantized import dynamic as nnqd
from ferroq.quantization import default_dynamic_qconfig, float16_dynamic_qconfig, per_channel_dynamic_qconfig

from conftest import assert_qweight_equals_golden, assert_same_bits, golden_cases, load_case

QCONFIGS = {
    "per_tensor": default_dynamic_qconfig,
    "per_channel": per_channel_dynamic_qconfig,
    "float16": float16_dynamic_qconfig,
}


def float_linear(entry, arrays) -> ferroq.nn.Linear:
    kw = entry["kwargs"]
    lin = ferroq.nn.Linear(kw["in_features"], kw["out_features"], bias=kw["bias"])
    lin.load_state_dict({k[len("params.") :]: v for k, v in arrays.items() if k.startswith("params.")})
    lin.qconfig = QCONFIGS[entry["qconfig"]]
    return lin


@pytest.mark.parametrize("case", golden_cases("dynamic_linear_"))
def test_weights_and_qparams_equal_torch(case: str) -> None:
    entry, arrays = load_case(case)
    q = nnqd.Linear.from_float(float_linear(entry, arrays))
    if entry["qconfig"] == "float16":
        assert q.dtype is ferroq.float16
        np.testing.assert_array_equal(q.weight(), arrays["params.weight"].astype(np.float16))
        return
    assert ("qweight.axis" in arrays) == (entry["qconfig"] == "per_channel")
    assert_qweight_equals_golden(q.weight(), arrays)


@pytest.mark.parametrize("case", golden_cases("dynamic_linear_"))
def test_outputs_equal_torch_bit_for_bit(case: str) -> None:
    entry, arrays = load_case(case)
    q = nnqd.Linear.from_float(float_linear(entry, arrays))
    names = [k[2:] for k in arrays if k.startswith("x_")]
    assert names
    for name in names:
        assert_same_bits(q(arrays["x_" + name]), arrays["y_" + name])
