"""``HistogramObserver``: a running histogram of the activations, and a search for the range that
minimizes an L2 estimate of the quantization error (PyTorch's algorithm, in float32 as torch runs
it; docs/numerics.md §1.4).

Every step follows ``torch.ao.quantization.observer.HistogramObserver`` (torch 2.9): the
histogram is ``torch.histc`` over the running ``[min, max]``; when the range grows, the old
histogram is upsampled ``upsample_rate`` times, its bin midpoints are re-binned into the new range
and added to the new data's histogram; ``calculate_qparams`` trims the histogram greedily in
cumulative-mass steps of 1e-5 while the error estimate does not grow, then applies the MinMax
formulas to the trimmed range.

Two float32 reductions, the histogram's total and the sum of the per-bin errors, are summed in
numpy's pairwise order; torch's order depends on the CPU's vector width, so the last bits of
those two sums are not reproducible across machines even in torch. The same holds for the
interior points of ``torch.linspace``, computed here with torch's scalar formula.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, SupportsFloat, Tuple

import numpy as np

from .._arrays import as_float32
from .._dtypes import per_tensor_affine, per_tensor_symmetric, quint8
from .observer import FLOAT32_EPS, _UniformObserver

__all__ = ["HistogramObserver"]

_F32 = np.float32


def _f32(value: float) -> float:
    """``value`` rounded to float32 (what torch does to a Python scalar in a float32 op)."""
    return float(_F32(value))


def _histc(values: np.ndarray, bins: int, lo: SupportsFloat, hi: SupportsFloat) -> np.ndarray:
    """``torch.histc(values, bins, min=lo, max=hi)`` for float32 ``values``: equal-width bins over
    ``[lo, hi]``, the last bin closed on the right, values outside ignored; a zero-width range
    becomes the data's own range, and then ``[lo - 1, hi + 1]``. Bins are found by float32 linear
    interpolation, as torch's histc kernel does."""
    low, high = float(lo), float(hi)
    if low == high and values.size:
        low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 1.0, high + 1.0
    left, right = _F32(low), _F32(high)
    if left == right:
        # |lo| >= 2**24: lo - 1 and hi + 1 round back to the same float32; torch's kernel divides
        # by zero here. Every value is then equal to the edge: it goes to the middle bin, where a
        # constant lands in the ordinary case.
        hist = np.zeros(bins, dtype=np.float32)
        hist[bins // 2] = np.count_nonzero(values == left)
        return hist
    inside = values[(values >= left) & (values <= right)]
    position = ((inside - left) * _F32(bins) / (right - left)).astype(np.int64)
    position = np.minimum(position, bins - 1)
    return np.bincount(position, minlength=bins).astype(np.float32)


def _linspace(start: SupportsFloat, end: SupportsFloat, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32 with torch's scalar formula: the first half
    counts up from ``start``, the second half down from ``end``."""
    first, last = _F32(float(start)), _F32(float(end))
    if steps == 1:
        return np.array([first], dtype=np.float32)
    step = (last - first) / _F32(steps - 1)
    index = np.arange(steps)
    halfway = steps // 2
    out = np.empty(steps, dtype=np.float32)
    out[:halfway] = first + step * index[:halfway].astype(np.float32)
    out[halfway:] = last - step * (steps - index[halfway:] - 1).astype(np.float32)
    return out


def _bincount_float32(indices: np.ndarray, weights: np.ndarray, bins: int) -> np.ndarray:
    """``torch.bincount(indices, weights, minlength=bins)`` for float32 weights: each bin sums its
    weights one after another in float32, in input order."""
    out = np.zeros(bins, dtype=np.float32)
    if indices.size == 0:
        return out
    order = np.argsort(indices, kind="stable")
    indices, weights = indices[order], weights[order]
    cuts = np.flatnonzero(np.diff(indices)) + 1
    for begin, end in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [indices.size]))):
        out[indices[begin]] = np.add.accumulate(weights[begin:end])[-1]
    return out


def _get_norm(delta_begin: Any, delta_end: Any, density: np.ndarray) -> np.ndarray:
    """``density * (end**3 - begin**3) / 3``: the L2 norm of values spread uniformly between
    ``delta_begin`` and ``delta_end`` (distances from a quantization level), in float32."""
    norm = (delta_end * delta_end * delta_end - delta_begin * delta_begin * delta_begin) / _F32(3)
    return density * norm


class HistogramObserver(_UniformObserver):
    """Records a running histogram of everything it sees; ``calculate_qparams`` picks the range
    that minimizes the estimated L2 quantization error (clipping outliers when that helps), then
    computes scale and zero point from it like :class:`MinMaxObserver`.

    Arguments are PyTorch's (``bins`` bins; the default qconfigs use ``reduce_range=True`` on
    x86). ``factory_kwargs`` (torch's device/dtype placement) is accepted and has no effect.
    ``upsample_rate`` is the factor by which the old histogram is refined when the range grows:
    torch 2.9 fixes it at 16 and has no such argument (older torch took ``upsample_rate=128``
    and combined histograms differently). Inputs with NaN raise ValueError (torch's ``histc``
    fails on them); infinite values are dropped with a warning, as torch does.
    """

    _allowed_qschemes = (per_tensor_affine, per_tensor_symmetric)

    def __init__(
        self,
        bins: int = 2048,
        dtype: Any = quint8,
        qscheme: Any = per_tensor_affine,
        reduce_range: bool = False,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        factory_kwargs: Optional[dict] = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        upsample_rate: int = 16,
    ) -> None:
        if is_dynamic:
            raise NotImplementedError("HistogramObserver doesn't support dynamic quantization")
        for name, value in (("bins", bins), ("upsample_rate", upsample_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"HistogramObserver {name} must be a positive int, got {value!r}")
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range, quant_min=quant_min, quant_max=quant_max, eps=eps)
        self.bins = int(bins)
        self.upsample_rate = int(upsample_rate)
        #: Levels of the 8-bit target type (not halved by reduce_range, as in torch).
        self.dst_nbins = 256
        self.histogram = np.zeros(self.bins, dtype=np.float32)

    # -- recording ---------------------------------------------------------------------------

    def forward(self, x: Any) -> Any:
        """Adds ``x`` to the histogram and returns ``x`` unchanged."""
        values = as_float32(x, "observed tensor").reshape(-1)
        if values.size == 0:
            return x
        if np.isnan(values).any():
            raise ValueError("HistogramObserver cannot observe a tensor holding NaN (its histogram range would be NaN)")
        if np.isinf(values).any():
            warnings.warn("inf detected in input tensor, ignoring input", stacklevel=2)
            values = values[np.isfinite(values)]
            if values.size == 0:
                return x
        x_min, x_max = values.min(), values.max()
        if self.min_val == np.inf or self.max_val == -np.inf:
            histogram, new_min, new_max = _histc(values, self.bins, x_min, x_max), x_min, x_max
        else:
            new_min, new_max = min(self.min_val, x_min), max(self.max_val, x_max)
            update = _histc(values, self.bins, new_min, new_max)
            if new_min == self.min_val and new_max == self.max_val:
                histogram = self.histogram + update
            else:
                histogram = self._combine_histograms(self.histogram, self.min_val, self.max_val, update, new_min, new_max)
        self.histogram, self.min_val, self.max_val = histogram, _F32(new_min), _F32(new_max)
        return x

    def _combine_histograms(
        self,
        orig_hist: np.ndarray,
        orig_min: np.float32,
        orig_max: np.float32,
        update_hist: np.ndarray,
        update_min: np.float32,
        update_max: np.float32,
    ) -> np.ndarray:
        """``update_hist`` (over the new range) plus ``orig_hist`` (over the old, narrower range)
        re-binned into the new range."""
        if orig_min == orig_max:
            # All earlier values were equal: their whole mass goes to that value's new bin.
            one_hot = _histc(np.array([orig_min], dtype=np.float32), self.bins, update_min, update_max)
            return update_hist + one_hot * np.sum(orig_hist, dtype=np.float32)
        return update_hist + self._upscale_histogram(orig_hist, orig_min, orig_max, update_min, update_max)

    def _upscale_histogram(
        self,
        histogram: np.ndarray,
        orig_min: np.float32,
        orig_max: np.float32,
        update_min: np.float32,
        update_max: np.float32,
    ) -> np.ndarray:
        """``histogram`` over ``[orig_min, orig_max]`` expressed over ``[update_min, update_max]``:
        each bin is split into ``upsample_rate`` equal parts, and each part's mass goes to the new
        bin holding its midpoint."""
        rate = self.upsample_rate
        fine = np.repeat(histogram, rate) / _F32(rate)
        fine_width = (_F32(orig_max) - _F32(orig_min)) / _F32(self.bins * rate)
        midpoints = _linspace(orig_min, orig_max, self.bins * rate + 1)[:-1] + _F32(0.5) * fine_width
        edges = _linspace(update_min, update_max, self.bins + 1)
        assignment = np.clip(np.searchsorted(edges, midpoints, side="right") - 1, 0, self.bins - 1)
        return _bincount_float32(assignment, fine, self.bins)

    # -- the range search --------------------------------------------------------------------

    def _compute_quantization_error(self, next_start_bin: int, next_end_bin: int) -> float:
        """Estimated L2 error of quantizing the histogram to ``dst_nbins`` levels spread over bins
        ``next_start_bin..=next_end_bin`` (values outside are clipped to the end levels)."""
        bin_width = (float(self.max_val) - float(self.min_val)) / self.bins
        dst_bin_width = bin_width * (next_end_bin - next_start_bin + 1) / self.dst_nbins
        if dst_bin_width == 0.0:
            return 0.0
        width, dst_width = _F32(bin_width), _F32(dst_bin_width)
        half, minus_half = _F32(dst_bin_width / 2), _F32(-dst_bin_width / 2)
        last_level = _F32(self.dst_nbins - 1)

        src_bin_begin = (np.arange(self.bins) - next_start_bin).astype(np.float32) * width
        src_bin_end = src_bin_begin + width
        dst_bin_of_begin = np.clip(np.floor_divide(src_bin_begin, dst_width), _F32(0), last_level)
        dst_bin_of_begin_center = (dst_bin_of_begin + _F32(0.5)) * dst_width
        dst_bin_of_end = np.clip(np.floor_divide(src_bin_end, dst_width), _F32(0), last_level)
        density = self.histogram / width

        norm = _get_norm(src_bin_begin - dst_bin_of_begin_center, np.full(self.bins, half, dtype=np.float32), density)
        norm = norm + (dst_bin_of_end - dst_bin_of_begin - _F32(1)) * _get_norm(minus_half, half, density)
        dst_bin_of_end_center = dst_bin_of_end * dst_width + half
        norm = norm + _get_norm(minus_half, src_bin_end - dst_bin_of_end_center, density)
        return float(np.sum(norm, dtype=np.float32))

    def _non_linear_param_search(self) -> Tuple[np.float32, np.float32]:
        """The trimmed ``(min, max)``: move whichever end of ``[start_bin, end_bin]`` crosses more
        bins for the next 1e-5 of cumulative mass, and stop as soon as the error estimate grows."""
        bin_width = (self.max_val - self.min_val) / _F32(self.bins)
        total = float(np.sum(self.histogram, dtype=np.float32))
        # torch.cumsum accumulates float32 input in double and stores float32.
        cumulative = np.cumsum(self.histogram, dtype=np.float64).astype(np.float32).tolist()

        stepsize = 1e-5
        alpha, beta = 0.0, 1.0
        start_bin, end_bin = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta:
            next_alpha, next_beta = alpha + stepsize, beta - stepsize
            # torch compares the float32 cumulative sums with the bounds cast to float32.
            lower, upper = _f32(next_alpha * total), _f32(next_beta * total)
            left, right = start_bin, end_bin
            while left < end_bin and cumulative[left] < lower:
                left += 1
            while right > start_bin and cumulative[right] > upper:
                right -= 1
            next_start_bin, next_end_bin = start_bin, end_bin
            if left - start_bin > end_bin - right:
                next_start_bin, alpha = left, next_alpha
            else:
                next_end_bin, beta = right, next_beta
            if next_start_bin == start_bin and next_end_bin == end_bin:
                continue
            norm = self._compute_quantization_error(next_start_bin, next_end_bin)
            if norm > norm_min:
                break
            norm_min, start_bin, end_bin = norm, next_start_bin, next_end_bin

        new_min = self.min_val + bin_width * _F32(start_bin)
        new_max = self.min_val + bin_width * _F32(end_bin + 1)
        return _F32(new_min), _F32(new_max)

    def calculate_qparams(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as 0-d float32 and int64 arrays, from the trimmed range. Before
        anything was observed: a warning and ``(1.0, 0)``."""
        if self.min_val == np.inf and self.max_val == -np.inf:
            warnings.warn("must run observer before calling calculate_qparams. Returning default values.", stacklevel=2)
            return np.asarray(1.0, dtype=np.float32), np.asarray(0, dtype=np.int64)
        new_min, new_max = self._non_linear_param_search()
        min_val, max_val = np.asarray(new_min, dtype=np.float32), np.asarray(new_max, dtype=np.float32)
        self._check_min_max(min_val, max_val)
        return self._qparams_from(min_val, max_val)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, min_val={self.min_val}, max_val={self.max_val}, " + super().extra_repr()
