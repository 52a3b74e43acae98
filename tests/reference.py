"""An independent numpy model of docs/numerics.md §1.2, §1.1, §2.1 and §2.2,
used to check the Rust kernels on inputs the golden files do not cover."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

SMALL_SCALE = np.float32(6.1e-5)


def choose_qparams(lo: float, hi: float, qmin: int = 0, qmax: int = 255, reduce_range: bool = True) -> Tuple[float, int]:
    """ChooseQuantizationParams with a double scale (SPEC 1.2), written from the spec's steps."""
    lo, hi = np.float32(lo), np.float32(hi)
    assert lo <= hi
    if reduce_range:
        qmin, qmax = qmin // 2, qmax // 2
    lo, hi = min(lo, np.float32(0)), max(hi, np.float32(0))
    scale = (float(hi) - float(lo)) / (qmax - qmin)
    if np.float32(scale) == 0 or np.isinf(np.float32(1) / np.float32(scale)):
        scale = 0.1
    if np.float32(scale) < SMALL_SCALE:
        org = np.float32(scale)
        scale = float(SMALL_SCALE)
        if lo == 0:
            hi = SMALL_SCALE * np.float32(qmax - qmin)
        elif hi == 0:
            lo = -SMALL_SCALE * np.float32(qmax - qmin)
        else:
            amp = SMALL_SCALE / org
            lo, hi = lo * amp, hi * amp
    zmin = qmin - float(lo) / scale
    zmax = qmax - float(hi) / scale
    emin = abs(qmin) - abs(float(lo) / scale)
    emax = abs(qmax) - abs(float(hi) / scale)
    init = zmin if emin < emax else zmax
    if init < qmin:
        zp = qmin
    elif init > qmax:
        zp = qmax
    else:
        zp = int(np.rint(init))
    return scale, zp


def dynamic_linear(
    x: np.ndarray, wq: np.ndarray, w_scale: np.ndarray, w_zp: np.ndarray, bias: Optional[np.ndarray], reduce_range: bool = True
) -> np.ndarray:
    """SPEC 8 ``dynamic_linear`` for a 2-D float32 ``x``; FMA emulated in float64 (exact product)."""
    lo, hi = (x.min(), x.max()) if x.size else (0.0, 0.0)
    scale, zp = choose_qparams(lo, hi, 0, 255, reduce_range)
    s32 = np.float32(scale)
    inv = np.float32(1) / s32
    xq = np.clip(np.rint(x * inv) + np.float32(zp), 0, 255).astype(np.int64)
    corr = (xq - zp) @ (wq.astype(np.int64) - w_zp.astype(np.int64).reshape(-1, 1)).T
    mult = (s32 * w_scale.astype(np.float32)).astype(np.float32)
    prod = corr.astype(np.float32).astype(np.float64) * mult.astype(np.float64)
    if bias is None:
        return prod.astype(np.float32)
    return (prod + bias.astype(np.float64)).astype(np.float32)
