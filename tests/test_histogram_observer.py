"""HistogramObserver: torch.histc's binning, the re-binning when the range grows, the L2 error
estimate against an exact integral written independently, the greedy range search on
histograms whose answer is derived by hand, and determinism/invariance properties."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import ferroq
from ferroq.quantization import HistogramObserver, MinMaxObserver

F32 = np.float32


def observed(*batches, **kwargs) -> HistogramObserver:
    observer = HistogramObserver(**kwargs)
    for batch in batches:
        observer(np.asarray(batch, dtype=F32))
    return observer


# -- the running histogram -------------------------------------------------------------------------


def test_bins_span_min_to_max_and_the_maximum_lands_in_the_last_bin() -> None:
    # Range [0, 4] in 4 bins of width 1: 0, 1, 2 open their bins; 3 and 4 share the last one.
    o = observed([0, 1, 2, 3, 4], bins=4)
    np.testing.assert_array_equal(o.histogram, [1, 1, 1, 2])
    assert (o.min_val, o.max_val) == (0, 4)


def test_a_constant_batch_is_binned_over_plus_minus_one() -> None:
    # torch.histc widens a zero-width range to [c - 1, c + 1]: 3.0 lands in the middle bin.
    o = observed([3, 3], bins=4)
    np.testing.assert_array_equal(o.histogram, [0, 0, 2, 0])
    assert (o.min_val, o.max_val) == (3, 3)


def test_batches_within_the_range_add_up() -> None:
    o = observed([0, 4], [1, 2, 3], bins=4)
    np.testing.assert_array_equal(o.histogram, [1, 1, 1, 2])


def test_a_growing_range_rebins_the_old_histogram_by_its_upsampled_midpoints() -> None:
    # [0, 1] in 4 bins: [1, 0, 0, 1]. Then 2.0 widens the range to [0, 2] (bins of 0.5).
    # Upsampled twice, the old bins become 8 parts of width 0.125 holding [.5, .5, 0, 0, 0, 0, .5, .5]
    # with midpoints 0.0625 .. 0.9375: the first four fall in new bin 0, the last four in new bin 1.
    # The new data adds [0, 0, 0, 1].
    o = observed([0, 1], [2], bins=4, upsample_rate=2)
    np.testing.assert_array_equal(o.histogram, [1, 1, 0, 1])
    assert (o.min_val, o.max_val) == (0, 2)


def test_a_constant_history_moves_as_one_mass() -> None:
    # Two 3.0s, then [1, 5]: the old mass 2 goes to 3.0's bin in [1, 5], i.e. bin 2.
    o = observed([3, 3], [1, 5], bins=4)
    np.testing.assert_array_equal(o.histogram, [1, 0, 2, 1])


def test_rebinning_keeps_the_total_mass(rng) -> None:
    batches = [rng.normal(scale=s, size=1000) for s in (0.1, 1.0, 5.0, 0.5, 20.0)]
    o = observed(*batches)
    assert o.histogram.sum(dtype=np.float64) == pytest.approx(5000, rel=1e-6)
    all_values = np.concatenate(batches).astype(F32)
    assert (o.min_val, o.max_val) == (all_values.min(), all_values.max())


def test_nan_is_an_error_and_changes_nothing() -> None:
    o = observed([0, 1])
    before = o.histogram.copy()
    with pytest.raises(ValueError, match="NaN"):
        o(np.array([0.5, np.nan], F32))
    np.testing.assert_array_equal(o.histogram, before)
    assert (o.min_val, o.max_val) == (0, 1)


def test_infinities_are_dropped_with_a_warning_and_empty_input_is_ignored() -> None:
    o = HistogramObserver()
    with pytest.warns(UserWarning, match="inf"):
        o(np.array([np.inf, 1.0, -np.inf, 2.0], F32))
    assert (o.min_val, o.max_val) == (1, 2) and o.histogram.sum() == 2
    with pytest.warns(UserWarning, match="inf"):
        o(np.array([np.inf], F32))
    o(np.zeros((0, 3), F32))
    assert o.histogram.sum() == 2


def test_forward_returns_its_input_unchanged() -> None:
    x = np.array([[1.0, 2.0]], F32)
    assert HistogramObserver()(x) is x


# -- the error estimate ----------------------------------------------------------------------------


def exact_l2_error(hist: np.ndarray, bin_width: float, start: int, end: int, levels: int = 256) -> float:
    """The L2 error of quantizing a density that is uniform within each source bin to ``levels``
    levels (bin centers) spread over source bins ``start..=end``, values outside clipped to the
    end levels: integrated exactly, piece by piece, in float64."""
    width = bin_width * (end - start + 1) / levels
    total = 0.0
    for i, mass in enumerate(hist):
        if mass == 0:
            continue
        a, b = (i - start) * bin_width, (i - start + 1) * bin_width
        cuts = [a] + [k * width for k in range(1, levels) if a < k * width < b] + [b]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            level = min(max(np.floor((lo + hi) / 2 / width), 0), levels - 1)
            center = (level + 0.5) * width
            total += mass / bin_width * ((hi - center) ** 3 - (lo - center) ** 3) / 3
    return total


@pytest.mark.parametrize("start, end", [(0, 15), (2, 13), (5, 5), (0, 3), (12, 15), (7, 9)])
def test_the_error_estimate_is_the_exact_l2_integral(rng, start: int, end: int) -> None:
    o = HistogramObserver(bins=16)
    o.histogram = rng.integers(0, 50, size=16).astype(F32)
    o.min_val, o.max_val = F32(-1.5), F32(2.5)
    expected = exact_l2_error(o.histogram.astype(np.float64), 4.0 / 16, start, end)
    assert o._compute_quantization_error(start, end) == pytest.approx(expected, rel=1e-4)


# -- the range search ------------------------------------------------------------------------------


def test_a_far_outlier_is_kept_when_its_squared_error_dominates() -> None:
    # 1000 values at 0 and one at 8, in 8 bins of width 1: histogram [1000, 0, ..., 0, 1].
    # Step 1 trims the empty-looking top bin: range [0, 7), error 0.41 (the outlier clipped to the
    # top level at ~6.99 costs about 1/3; the 1000 values at bin 0 cost 1000 * (7/256)^2 / 12).
    # Once 1e-5 steps cover the outlier's mass (after ~100 steps) the top end jumps to bin 0,
    # where clipping the outlier by ~6.5 costs ~42 > 0.41: the search stops at [0, 7].
    o = observed(np.concatenate([np.zeros(1000), [8.0]]), bins=8)
    assert o._compute_quantization_error(0, 6) == pytest.approx(0.409, abs=1e-3)
    assert o._compute_quantization_error(0, 0) == pytest.approx(42.36, abs=1e-2)
    assert o._non_linear_param_search() == (0.0, 7.0)
    scale, zero_point = o.calculate_qparams()
    assert (float(scale), int(zero_point)) == (float(F32(7) / F32(255)), 0)


def test_a_far_outlier_is_clipped_when_the_bulk_is_large_enough() -> None:
    # With a million values at 0 the first step already moves 1e-5 * 1e6 = 10 > 1 of mass: the top
    # end jumps straight to bin 0. Rounding the bulk over the whole range costs
    # 1e6 * (8/256)^2 / 12 = 81, clipping the outlier ~44: the outlier is clipped, range [0, 1].
    o = observed(np.concatenate([np.zeros(1_000_000), [8.0]]), bins=8)
    assert o._compute_quantization_error(0, 7) == pytest.approx(81.38, abs=1e-2)
    assert o._non_linear_param_search() == (0.0, 1.0)


def test_a_uniform_distribution_keeps_nearly_its_full_range(rng) -> None:
    x = rng.uniform(-1, 3, size=100_000).astype(F32)
    new_min, new_max = observed(x)._non_linear_param_search()
    assert x.min() <= new_min < x.min() + 0.01
    assert x.max() - 0.01 < new_max <= x.max() + 4 / 2048


def test_an_outlier_among_many_gaussian_values_is_clipped(rng) -> None:
    x = np.concatenate([rng.normal(size=2_000_000), [1000.0]]).astype(F32)
    new_min, new_max = observed(x)._non_linear_param_search()
    assert new_max < 10 and new_min >= x.min()


def test_qparams_are_the_minmax_formulas_on_the_searched_range(rng) -> None:
    for kwargs in ({}, {"reduce_range": True}, {"dtype": ferroq.qint8, "qscheme": ferroq.per_tensor_symmetric}):
        o = observed(rng.normal(size=5000), rng.normal(loc=1, size=5000), **kwargs)
        new_min, new_max = o._non_linear_param_search()
        reference = MinMaxObserver(**kwargs)
        reference(np.array([new_min, new_max], F32))
        for got, expected in zip(o.calculate_qparams(), reference.calculate_qparams()):
            assert got == expected and got.dtype == expected.dtype, kwargs


def test_reduce_range_uses_half_the_levels(rng) -> None:
    x = rng.uniform(0, 1, size=10_000)
    full, reduced = observed(x).calculate_qparams(), observed(x, reduce_range=True).calculate_qparams()
    new_min, new_max = observed(x)._non_linear_param_search()
    assert float(full[0]) == float(F32(new_max - F32(0)) / F32(255))
    assert float(reduced[0]) == float(F32(new_max - F32(0)) / F32(127))


def test_a_constant_input_gives_the_minmax_qparams() -> None:
    o = observed(np.full(100, 2.0))
    scale, zero_point = o.calculate_qparams()
    assert (float(scale), int(zero_point)) == (float(F32(2) / F32(255)), 0)


def test_nothing_observed_warns_and_returns_the_defaults() -> None:
    with pytest.warns(UserWarning, match="must run observer"):
        scale, zero_point = HistogramObserver().calculate_qparams()
    assert (float(scale), int(zero_point)) == (1.0, 0)


# -- determinism and invariance --------------------------------------------------------------------


def test_the_result_is_deterministic(rng) -> None:
    batches = [rng.normal(scale=s, size=3000) for s in (1, 3, 0.5)]
    a, b = observed(*batches), observed(*batches)
    np.testing.assert_array_equal(a.histogram, b.histogram)
    assert a.calculate_qparams() == b.calculate_qparams()
    assert copy.deepcopy(a).calculate_qparams() == a.calculate_qparams()


def test_the_order_within_a_batch_does_not_matter(rng) -> None:
    x = rng.normal(size=10_000)
    a, b = observed(x, 2 * x), observed(rng.permutation(x), rng.permutation(2 * x))
    np.testing.assert_array_equal(a.histogram, b.histogram)
    assert a.calculate_qparams() == b.calculate_qparams()


def test_splitting_a_batch_without_widening_the_range_does_not_matter(rng) -> None:
    x = rng.normal(size=9000)
    extremes = np.argsort(x)[[0, -1]]
    first = np.concatenate([x[extremes], x[:3000]])
    rest = np.delete(x, np.concatenate([extremes, np.arange(3000)]))
    a, b = observed(np.concatenate([first, rest])), observed(first, rest[:2000], rest[2000:])
    np.testing.assert_array_equal(a.histogram, b.histogram)
    assert a.calculate_qparams() == b.calculate_qparams()


def test_scaling_by_a_power_of_two_scales_the_result_exactly(rng) -> None:
    batches = [rng.normal(loc=0.3, scale=s, size=4000).astype(F32) for s in (0.5, 2.0, 1.0)]
    a = observed(*batches)
    b = observed(*[4 * x for x in batches])
    np.testing.assert_array_equal(b.histogram, a.histogram)
    (sa, za), (sb, zb) = a.calculate_qparams(), b.calculate_qparams()
    assert sb == 4 * sa and zb == za


# -- construction ----------------------------------------------------------------------------------


def test_constructor_checks() -> None:
    with pytest.raises(NotImplementedError):
        HistogramObserver(qscheme=ferroq.per_channel_affine)
    with pytest.raises(NotImplementedError, match="dynamic"):
        HistogramObserver(is_dynamic=True)
    with pytest.raises(ValueError, match="bins"):
        HistogramObserver(bins=0)
    with pytest.raises(ValueError, match="upsample_rate"):
        HistogramObserver(upsample_rate=1.5)
    o = HistogramObserver.with_args(reduce_range=True)()
    assert o.reduce_range and o.bins == 2048 and o.upsample_rate == 16
    assert "HistogramObserver(bins=2048" in repr(o)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HistogramObserver(factory_kwargs={"device": "cpu"})
