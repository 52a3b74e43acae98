"""The outputs of a fixed set of ferroq calls, written to one file, to compare architectures byte
for byte (CI: x86-64 natively, aarch64 under QEMU; see .ci/aarch64-wheel).

    python tests/cross_arch_outputs.py write OUT     # once per architecture / kernel path
    python tests/cross_arch_outputs.py compare A B   # exit status 1 if they differ, naming each call

The calls are the golden cases' models (tests/golden): every dynamic Linear (per tensor, per
channel, float16), LSTM, GRU, LSTMCell, GRUCell and RNNCell case, and every static Linear case,
both through prepare/calibrate/convert (with torch's output scale: the calibrated one depends on
numpy's float32 matmul, see below) and as the kernel alone on torch's quantized tensors. One
line per output array: the call, the array's dtype and shape, and its little-endian bytes in hex.
Nothing else goes into the file (no platform, no path), so equal bits give equal files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np

import ferroq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import golden_cases, load_case  # noqa: E402
from test_golden_dynamic_linear import float_linear  # noqa: E402
from test_golden_dynamic_rnn import CELL_CASES, SEQUENCE_CASES, run_case  # noqa: E402
from test_golden_static_linear import CASES as STATIC_CASES  # noqa: E402
from test_golden_static_linear import converted_model, qtensor  # noqa: E402
from ferroq.nn.quantized import Linear as StaticLinear  # noqa: E402
from ferroq.nn.quantized.dynamic import Linear as DynamicLinear  # noqa: E402


def dynamic_linear_outputs() -> Iterator[Tuple[str, np.ndarray]]:
    for case in golden_cases("dynamic_linear_"):
        entry, arrays = load_case(case)
        module = DynamicLinear.from_float(float_linear(entry, arrays))
        for key in sorted(k for k in arrays if k.startswith("x_")):
            yield f"{case}.{key}", module(arrays[key])


def recurrent_outputs() -> Iterator[Tuple[str, np.ndarray]]:
    for case in sorted(SEQUENCE_CASES + CELL_CASES):
        for name, actual, _ in run_case(case):
            yield f"{case}.{name}", actual


def static_linear_outputs() -> Iterator[Tuple[str, np.ndarray]]:
    for case in STATIC_CASES:
        # The eager flow (observers, weight quantization, the quantized model) with torch's output
        # qparams: the calibrated output scale comes from the float Linear's outputs, a float32
        # GEMM by numpy's BLAS, whose rounding differs between x86-64 and aarch64 (measured: the
        # scale of 3 of the 8 cases differs in its last float32 bit), like the tests' comparison
        # with torch's MKL.
        model, _, arrays = converted_model(case)
        yield f"{case}.converted.input_qparams", np.array([model[0].scale, model[0].zero_point], dtype=np.float64)
        model[1].scale = float(arrays["yq.scale"])
        yield f"{case}.converted.y", model(arrays["x"])
    for case in STATIC_CASES + ["static_linear_doc_example"]:
        # The kernel alone on torch's quantized input, weights and output qparams.
        _, arrays = load_case(case)
        weight = qtensor(arrays, "qweight")
        out_features, in_features = weight.shape
        bias = arrays.get("params.bias", arrays.get("bias"))
        module = StaticLinear(in_features, out_features, bias_=bias is not None)
        module.set_weight_bias(weight, bias)
        module.scale, module.zero_point = float(arrays["yq.scale"]), int(arrays["yq.zero_point"])
        yield f"{case}.kernel.yq_int", module(qtensor(arrays, "xq")).int_repr()


def record(name: str, array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    shape = "x".join(str(n) for n in array.shape)
    return f"{name}\t{little.dtype.str}\t{shape}\t{little.tobytes().hex()}\n"


def write(path: Path) -> None:
    lines: List[str] = []
    for outputs in (dynamic_linear_outputs(), recurrent_outputs(), static_linear_outputs()):
        lines.extend(record(name, array) for name, array in outputs)
    path.write_text("".join(lines), encoding="ascii")
    print(f"{path}: {len(lines)} outputs, kernel path {ferroq.backend()}")


def parse(path: Path) -> Dict[str, Tuple[str, str, str]]:
    calls: Dict[str, Tuple[str, str, str]] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        name, dtype, shape, data = line.split("\t")
        calls[name] = (dtype, shape, data)
    return calls


def describe(dtype: str, a: str, b: str) -> str:
    """How two same-shaped outputs differ: how many values, and the first one."""
    x = np.frombuffer(bytes.fromhex(a), dtype=dtype)
    y = np.frombuffer(bytes.fromhex(b), dtype=dtype)
    unequal = np.flatnonzero((x.view(np.uint8).reshape(x.size, -1) != y.view(np.uint8).reshape(y.size, -1)).any(axis=1))
    first = int(unequal[0])
    return f"{unequal.size} of {x.size} values differ; first at flat index {first}: {x[first]!r} != {y[first]!r}"


def compare(path_a: Path, path_b: Path) -> int:
    if path_a.read_bytes() == path_b.read_bytes():
        print(f"identical: {path_a} and {path_b} ({len(parse(path_a))} outputs)")
        return 0
    a, b = parse(path_a), parse(path_b)
    print(f"DIFFERENT: {path_a} and {path_b}")
    for name in sorted(set(a) ^ set(b)):
        print(f"  {name}: only in {path_a if name in a else path_b}")
    for name in [n for n in a if n in b and a[n] != b[n]]:
        (dtype_a, shape_a, data_a), (dtype_b, shape_b, data_b) = a[name], b[name]
        if (dtype_a, shape_a) != (dtype_b, shape_b):
            print(f"  {name}: {dtype_a} {shape_a} != {dtype_b} {shape_b}")
        else:
            print(f"  {name}: {describe(dtype_a, data_a, data_b)}")
    if list(a) != list(b) and set(a) == set(b):
        print("  the same outputs in a different order")
    return 1


def main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        write(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
