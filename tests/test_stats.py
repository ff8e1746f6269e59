"""rm_core/stats.py: the bootstrap intervals, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rm_core.stats import (
    Proportion,
    bootstrap_ci,
    bootstrap_statistics,
    paired_bootstrap,
    stratified_bootstrap,
    wilson_interval,
)


def test_interval_of_an_accuracy_matches_the_normal_approximation_and_is_seeded():
    values = [1.0] * 270 + [0.0] * 176  # 446 pairs at 60.5%
    low, high = bootstrap_ci(values)
    p, n = 270 / 446, 446
    half = 1.96 * math.sqrt(p * (1 - p) / n)  # 4.5 points: the figure the issue quotes
    assert low == pytest.approx(p - half, abs=0.006) and high == pytest.approx(p + half, abs=0.006)
    assert bootstrap_ci(values) == (low, high)  # same seed, same interval
    assert bootstrap_ci(values, seed=1) != (low, high)


def test_degenerate_inputs():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)  # a mean of any values: every resample the same
    # an accuracy of 5 of 5 is not known to be exactly 1: the Wilson interval, never one of zero width
    low, high = bootstrap_ci([1.0] * 5, proportion=True)
    assert high == 1.0 and 0.56 < low < 0.57
    low, high = bootstrap_ci([0.0] * 20, proportion=True)
    assert low == 0.0 and 0.16 < high < 0.17
    low, high = bootstrap_ci([1.0] * 49 + [0.0], proportion=True)  # 49 of 50 below 50 of 50, never above it
    assert low < bootstrap_ci([1.0] * 50, proportion=True)[0] and high < 1.0
    with pytest.raises(ValueError, match="no items"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, float("nan")])


def test_wilson_interval_by_hand():
    z = 1.959963984540054
    # 2 of 4: centre 0.5, half-width z sqrt(1/16 + z^2/64) / (1 + z^2/4)
    half = z * math.sqrt(1 / 16 + z * z / 64) / (1 + z * z / 4)
    assert wilson_interval(2, 4) == pytest.approx((0.5 - half, 0.5 + half))
    assert wilson_interval(1, 1) == pytest.approx((1 / (1 + z * z), 1.0))  # all right: the upper bound is exactly 1
    assert wilson_interval(0, 3)[0] == 0.0


def test_a_proportion_statistic_gets_wilson_and_other_statistics_the_bootstrap():
    groups = {"a": {"correct": [1.0, 1.0, 1.0], "score": [0.2, 0.2, 0.2]},
              "b": {"correct": [1.0, 0.0], "score": [0.5, 0.9]}}
    out = bootstrap_statistics(groups, {
        "a": Proportion("correct", {"a": 3}), "pooled": Proportion("correct", {"a": 3, "b": 2}),
        "a_as_a_mean": lambda m: m["a"]["correct"],  # the same number, not declared a share: the bootstrap's point
        "score": Proportion("score", {"b": 2}),  # a mean of other values: the bootstrap's interval
        "absent": Proportion("correct", {"c": 4})})
    assert out["a"] == {"value": 1.0, "ci95": wilson_interval(3, 3)} and out["a"]["ci95"][0] < 0.5
    assert out["a_as_a_mean"]["ci95"] == (1.0, 1.0)
    assert out["pooled"]["value"] == pytest.approx(4 / 5) and out["pooled"]["ci95"] == wilson_interval(4, 5)
    assert out["score"]["value"] == pytest.approx(0.7) and out["score"]["ci95"] == pytest.approx((0.5, 0.9))
    assert out["absent"] is None
    # a unit without the column (None) is not a share of every unit: the bootstrap, over the units that have it
    partial = bootstrap_statistics({"a": {"correct": [1.0, None, 1.0]}}, {"a": Proportion("correct", {"a": 3})})
    assert partial["a"] == {"value": 1.0, "ci95": (1.0, 1.0)}


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
    a_low, _a_high = bootstrap_ci(better)
    _b_low, b_high = bootstrap_ci(base)
    assert a_low < b_high  # the separate intervals overlap...
    out = paired_bootstrap(better, base)
    assert out["difference"] == pytest.approx(0.04) and out["excludes_zero"] and out["low"] > 0  # ...the paired one does not
    same = paired_bootstrap(base, base)
    assert same["difference"] == 0.0 and not same["excludes_zero"]
    with pytest.raises(ValueError, match="differ in number"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_bootstrap_statistics_share_replicates_and_match_stratified_bootstrap():
    from rm_core.stats import bootstrap_statistics

    groups = {"a": [1.0] * 90 + [0.0] * 10, "b": [1.0] * 5 + [0.0] * 5}
    out = bootstrap_statistics({g: {"v": v} for g, v in groups.items()},
                               {"weighted": lambda m: (3 * m["a"]["v"] + m["b"]["v"]) / 4,
                                "b only": lambda m: m["b"]["v"], "absent": lambda m: None})
    assert out["weighted"]["value"] == pytest.approx((3 * 0.9 + 0.5) / 4)
    # the same generator order as stratified_bootstrap: the same interval
    assert out["weighted"]["ci95"] == pytest.approx(stratified_bootstrap(groups, lambda m: (3 * m["a"] + m["b"]) / 4))
    assert out["absent"] is None and out["b only"]["value"] == 0.5


def test_exact_small_sample_intervals_by_hand():
    """Two items 1, 0: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the 95% percentile
    interval is [0, 1]. Four items 1, 1, 1, 0: P(mean 0) = 1/256 and P(mean <= 1/4) = 13/256 straddle 2.5%, and
    P(mean 1) = 81/256 > 2.5%, so the interval is [1/4, 1]."""
    from rm_core.stats import bootstrap_statistics

    assert bootstrap_ci([1.0, 0.0]) == (0.0, 1.0)
    assert bootstrap_ci([1.0, 1.0, 1.0, 0.0]) == (0.25, 1.0)
    out = bootstrap_statistics({"g": {"v": [1.0, 1.0, 1.0, 0.0]}}, {"mean": lambda m: m["g"]["v"]})
    assert out["mean"] == {"value": 0.75, "ci95": (0.25, 1.0)}


def test_columns_with_absent_values_ratios_and_clusters():
    """A column's mean is over the units it applies to; summed_units + total make a ratio of sums over all items
    with clusters resampled together."""
    from rm_core.stats import bootstrap_statistics, ratio, summed_units, total

    out = bootstrap_statistics({"g": {"x": [1.0, None, 0.0, None], "y": [1.0, 1.0, 1.0, 0.0]}},
                               {"x": lambda m: m["g"]["x"], "y": lambda m: m["g"]["y"]})
    assert out["x"]["value"] == 0.5 and out["y"]["value"] == 0.75
    # items: 3 in cluster "p" (2 right), 1 in cluster "q" (right): 3/4 over items; a cluster is one unit
    rows = [{"n": 1.0, "v": 1.0}, {"n": 1.0, "v": 1.0}, {"n": 1.0, "v": 0.0}, {"n": 1.0, "v": 1.0}]
    groups, sizes = summed_units(rows, clusters=["p", "p", "p", "q"])
    assert groups == {"all": {"n": [3.0, 1.0], "v": [2.0, 1.0]}} and sizes == {"all": 2}
    res = bootstrap_statistics(groups, {"acc": lambda m: ratio(total(m, sizes, "v"), total(m, sizes, "n"))})
    assert res["acc"]["value"] == 0.75
    # resamples of two clusters: pp (2/3), pq (3/4), qq (1): the interval's ends are 2/3 and 1
    assert res["acc"]["ci95"] == pytest.approx((2 / 3, 1.0))
    assert np.isnan(ratio(1.0, 0.0))


def test_paired_statistic_and_interval_lookup():
    from rm_core.stats import interval_at, interval_tree, paired_statistic, value_at

    a = {"s": {f"i{k}": {"c": 1.0 if k < 12 else 0.0} for k in range(20)}}
    b = {"s": {f"i{k}": {"c": 1.0 if k < 6 else 0.0} for k in range(20)}}
    out = paired_statistic(a, b, lambda m: m["s"]["c"])
    assert out["difference"] == pytest.approx(0.3) and out["n"] == 20 and out["excludes_zero"]
    direct = paired_bootstrap([a["s"][k]["c"] for k in a["s"]], [b["s"][k]["c"] for k in b["s"]])
    assert (out["low"], out["high"]) == pytest.approx((direct["low"], direct["high"]))
    assert paired_statistic(a, {"other": {}}, lambda m: m["s"]["c"]) is None
    tree = interval_tree(a, {("subsets", "s", "accuracy"): lambda m: m["s"]["c"], ("score",): lambda m: None})
    assert tree["score"] is None and len(tree["subsets"]["s"]["accuracy"]) == 2
    summary = {"subsets": {"s": {"accuracy": 0.6}}, "ci95": tree,
               "length": {"shorter_wins": 0.4, "ci95": {"shorter_wins": [0.3, 0.5]}}}
    assert interval_at(summary, ("subsets", "s", "accuracy")) == tree["subsets"]["s"]["accuracy"]
    assert interval_at(summary, ("length", "shorter_wins")) == [0.3, 0.5]  # the deepest ci95 on the path
    assert interval_at(summary, ("nothing",)) is None and value_at(summary, ("subsets", "s", "accuracy")) == 0.6


def test_one_text_format_for_rates_and_intervals():
    from rm_core.stats import difference_with_ci, interval_text, interval_text_at, percent, percent_with_ci

    assert percent(0.58333) == "58.33" and percent(0.58333, 1) == "58.3" and percent(None) == "n/a"
    assert interval_text([0.537, 0.629]) == "[53.7, 62.9]" and interval_text(None) == ""
    assert percent_with_ci(0.583, [0.537, 0.629]) == "58.3 [53.7, 62.9]"
    assert percent_with_ci(0.583, None, unit="%") == "58.3%"
    assert percent_with_ci(None, [0.1, 0.2], none="-") == "-"  # an interval is never shown without its value
    summary = {"accuracy": 0.6, "ci95": {"accuracy": [0.55, 0.65]}}
    assert interval_text_at(summary, ("accuracy",)) == "[55.0, 65.0]"
    assert interval_text_at(summary, ("score",)) == ""
    assert difference_with_ci(0.031, -0.004, 0.058) == "+3.1 [-0.4, +5.8]"
