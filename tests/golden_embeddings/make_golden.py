"""Writes the golden cases of torch's weight-only quantized embeddings (run under torch only).

    python tests/golden_embeddings/make_golden.py [output folder]

Each case is one ``.npz``: the float weight, torch's quantized weight (``int_repr`` exactly as
torch returns it, the per-row float scales and zero points), the inputs, and torch's output of
``torch.ao.nn.quantized.Embedding``/``EmbeddingBag`` made by ``from_float`` with
``float_qparams_weight_only_qconfig`` (8-bit) or ``float_qparams_weight_only_qconfig_4bit``.
Needs only torch and numpy; the cases are committed, so the tests never need torch.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import torch
import torch.ao.nn.quantized as nnq
from torch.ao.quantization import float_qparams_weight_only_qconfig, float_qparams_weight_only_qconfig_4bit

warnings.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def weights(rng: np.random.Generator, rows: int, dim: int, huge: float) -> np.ndarray:
    """Rows of very different magnitudes and offsets, plus the awkward rows: constant (the scale
    falls back to 1), all positive (negative zero point), all negative, one huge (standard normal
    times ``huge``), one tiny."""
    w = rng.standard_normal((rows, dim)).astype(np.float32)
    w *= np.float32(10.0) ** rng.uniform(-3, 2, size=(rows, 1)).astype(np.float32)
    w += rng.uniform(-2, 2, size=(rows, 1)).astype(np.float32) * (rng.random((rows, 1)) < 0.3)
    if rows >= 6:
        w[0] = np.float32(0.75)
        w[1] = np.abs(w[1]) + np.float32(3.0)
        w[2] = -np.abs(w[2]) - np.float32(0.5)
        w[3] = rng.standard_normal(dim).astype(np.float32) * np.float32(huge)
        w[4] *= np.float32(1.0e-6)
        w[5, : dim // 2] = np.float32(0.0)
    return w


def float_module(kind: str, rows: int, dim: int, w: np.ndarray, bits: int, **kwargs):
    cls = torch.nn.Embedding if kind == "embedding" else torch.nn.EmbeddingBag
    mod = cls(rows, dim, **kwargs)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w))
    mod.qconfig = float_qparams_weight_only_qconfig if bits == 8 else float_qparams_weight_only_qconfig_4bit
    qcls = nnq.Embedding if kind == "embedding" else nnq.EmbeddingBag
    return qcls.from_float(mod)


def case(name: str, out_dir: str, kind: str, rows: int, dim: int, bits: int, seed: int, indices: np.ndarray,
         offsets=None, per_sample_weights=None, include_last_offset=False, mode="sum", padding_idx=None,
         huge=None) -> None:
    rng = np.random.default_rng(seed)
    # 4-bit rows keep scale and bias as float16: the default huge row stays below its 65504 limit.
    w = weights(rng, rows, dim, huge if huge is not None else (4.0e4 if bits == 8 else 1.0e4))
    if padding_idx is not None:
        w[padding_idx] = 0.0  # as torch's float modules initialise it
    kwargs = {"padding_idx": padding_idx}
    if kind == "bag":
        kwargs.update(mode=mode, include_last_offset=include_last_offset)
    q = float_module(kind, rows, dim, w, bits, **kwargs)
    qw = q.weight()
    args = [torch.from_numpy(indices)]
    if kind == "bag":
        args.append(None if offsets is None else torch.from_numpy(offsets))
        args.append(None if per_sample_weights is None else torch.from_numpy(per_sample_weights))
    out = q(*args)
    record = {
        "kind": np.array(kind),
        "bits": np.array(bits),
        "mode": np.array(mode),
        "padding_idx": np.array(-1 if padding_idx is None else padding_idx),
        "include_last_offset": np.array(include_last_offset),
        "weight": w,
        "q_int_repr": qw.int_repr().numpy(),
        "q_scales": qw.q_per_channel_scales().numpy(),
        "q_zero_points": qw.q_per_channel_zero_points().numpy(),
        "indices": indices,
        "output": out.numpy(),
        "torch_version": np.array(torch.__version__),
        "repr": np.array(repr(q)),
    }
    if offsets is not None:
        record["offsets"] = offsets
    if per_sample_weights is not None:
        record["per_sample_weights"] = per_sample_weights
    np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), **record)
    print(f"{name}: output {tuple(out.shape)}")


def bag_offsets(rng: np.random.Generator, n_indices: int, bags: int, empty: bool = True) -> np.ndarray:
    cuts = np.sort(rng.integers(0, n_indices + 1, size=bags - 1))
    offsets = np.concatenate([[0], cuts]).astype(np.int64)
    if empty and bags > 3:
        offsets[2] = offsets[1]  # an empty bag in the middle
    return offsets


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(2026)

    def idx(rows: int, *shape: int) -> np.ndarray:
        return rng.integers(0, rows, size=shape).astype(np.int64)

    case("embedding_8bit", out_dir, "embedding", 50, 16, 8, 1, idx(50, 40))
    case("embedding_8bit_padding_idx", out_dir, "embedding", 30, 12, 8, 2, np.where(idx(30, 4, 7) % 5 == 0, 3, idx(30, 4, 7)), padding_idx=3)
    case("embedding_8bit_odd_dim_2d", out_dir, "embedding", 20, 67, 8, 3, idx(20, 5, 9))
    case("embedding_8bit_all_rows", out_dir, "embedding", 12, 8, 8, 4, np.arange(12, dtype=np.int64))
    for bits, dim in ((8, 16), (4, 16)):
        rows = 40
        n = 60
        case(f"bag_{bits}bit_sum", out_dir, "bag", rows, dim, bits, 10 + bits, idx(rows, n), offsets=bag_offsets(rng, n, 9))
        case(f"bag_{bits}bit_mean", out_dir, "bag", rows, dim, bits, 11 + bits, idx(rows, n), offsets=bag_offsets(rng, n, 9), mode="mean")
        case(f"bag_{bits}bit_max", out_dir, "bag", rows, dim, bits, 12 + bits, idx(rows, n), offsets=bag_offsets(rng, n, 9), mode="max")
        case(
            f"bag_{bits}bit_per_sample_weights", out_dir, "bag", rows, dim, bits, 13 + bits, idx(rows, n),
            offsets=bag_offsets(rng, n, 7), per_sample_weights=(rng.standard_normal(n) * 3).astype(np.float32),
        )
        offsets = bag_offsets(rng, n, 8)
        offsets = np.concatenate([offsets, [n]]).astype(np.int64)
        case(f"bag_{bits}bit_include_last_offset", out_dir, "bag", rows, dim, bits, 14 + bits, idx(rows, n), offsets=offsets, include_last_offset=True)
        case(f"bag_{bits}bit_padding_idx", out_dir, "bag", rows, dim, bits, 15 + bits, np.where(idx(rows, n) % 4 == 0, 7, idx(rows, n)), offsets=bag_offsets(rng, n, 6), padding_idx=7)
        case(f"bag_{bits}bit_2d", out_dir, "bag", rows, dim, bits, 16 + bits, idx(rows, 6, 5))
        case(f"bag_{bits}bit_empty_offsets", out_dir, "bag", rows, dim, bits, 17 + bits, idx(rows, 0), offsets=np.zeros(3, dtype=np.int64))
        long_n = 900
        case(
            f"bag_{bits}bit_long_bags", out_dir, "bag", 300, 34 if bits == 4 else 33, bits, 18 + bits, idx(300, long_n),
            offsets=np.array([0, 1, 300, 301, 650], dtype=np.int64), per_sample_weights=rng.uniform(-2, 2, long_n).astype(np.float32),
        )
    # A row whose scale or bias overflows float16 (inf, then NaN in every bag that uses it), as torch does.
    case("bag_4bit_fp16_overflow", out_dir, "bag", 10, 8, 4, 30, np.arange(10, dtype=np.int64), offsets=np.array([0, 3, 4, 8], dtype=np.int64), huge=1.0e6)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
