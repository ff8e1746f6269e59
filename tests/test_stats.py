"""rm_core/stats.py: the bootstrap intervals, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rm_core.stats import bootstrap_ci, paired_bootstrap, stratified_bootstrap


def test_interval_of_an_accuracy_matches_the_normal_approximation_and_is_seeded():
    values = [1.0] * 270 + [0.0] * 176  # 446 pairs at 60.5%
    low, high = bootstrap_ci(values)
    p, n = 270 / 446, 446
    half = 1.96 * math.sqrt(p * (1 - p) / n)  # 4.5 points: the figure the issue quotes
    assert low == pytest.approx(p - half, abs=0.006) and high == pytest.approx(p + half, abs=0.006)
    assert bootstrap_ci(values) == (low, high)  # same seed, same interval
    assert bootstrap_ci(values, seed=1) != (low, high)


def test_degenerate_inputs():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no items"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, float("nan")])


def test_stratified_resamples_within_groups_and_combines_like_the_benchmark():
    groups = {"a": [1.0] * 90 + [0.0] * 10, "b": [1.0] * 5 + [0.0] * 5, "empty": []}
    seen = []

    def weighted(means):  # a benchmark-style weighted section: a counts 3x
        seen.append(set(means))
        return (3 * means["a"] + means["b"]) / 4

    low, high = stratified_bootstrap(groups, weighted)
    assert all(keys == {"a", "b"} for keys in seen)  # the empty group is left out, as from the point estimate
    point = (3 * 0.9 + 0.5) / 4
    assert low < point < high
    # direct computation of the same replicates: group means resampled with the same generator order
    rng = np.random.default_rng(0)
    ma = np.array(groups["a"])[rng.integers(0, 100, size=(2000, 100))].mean(axis=1)
    mb = np.array(groups["b"])[rng.integers(0, 10, size=(2000, 10))].mean(axis=1)
    direct = np.percentile((3 * ma + mb) / 4, [2.5, 97.5])
    assert (low, high) == pytest.approx(tuple(direct))
    assert stratified_bootstrap({"a": []}, lambda m: m.get("a")) is None


def test_paired_difference_sees_what_two_unpaired_intervals_miss():
    rng = np.random.default_rng(3)
    base = (rng.random(400) < 0.6).astype(float)
    better = base.copy()
    flip = np.flatnonzero(base == 0)[:16]  # the second judge gets 16 more of the SAME items right (+4 points)
    better[flip] = 1.0
    a_low, a_high = bootstrap_ci(better)
    b_low, b_high = bootstrap_ci(base)
    assert a_low < b_high  # the separate intervals overlap...
    out = paired_bootstrap(better, base)
    assert out["difference"] == pytest.approx(0.04) and out["excludes_zero"] and out["low"] > 0  # ...the paired one does not
    same = paired_bootstrap(base, base)
    assert same["difference"] == 0.0 and not same["excludes_zero"]
    with pytest.raises(ValueError, match="differ in number"):
        paired_bootstrap([1.0], [1.0, 0.0])
