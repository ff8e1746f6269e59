"""Intervals for every figure: seeded percentile bootstraps over the scored items, Wilson's for a plain share.

- `bootstrap_ci(values)`: the 95% interval of a mean (an accuracy: values are 1.0 / 0.0 per item; with
  `proportion=True` the Wilson score interval, which an all-right or all-wrong set does not shrink to a point).
- `stratified_bootstrap(groups, combine)`: resample WITHIN each group (a subset, a domain), recompute each group's
  mean, then combine them as the benchmark does (RewardBench's weighted sections, a mean of subsets): the interval
  of a score built from subsets, with each subset's size held as it is in the benchmark.
- `paired_bootstrap(a, b)`: two judges scored on the SAME items: resample items, keep the pairing; the difference
  of the means, its interval, and whether it excludes zero.

- `bootstrap_statistics(groups, statistics)`: the general form the evaluators use: units (pairs, prompts, rows)
  resampled within each group, each unit carrying named columns; every statistic (an official score, a ratio of
  two columns: a cluster bootstrap) from the same replicates. `paired_statistic` compares two judges with it.
- `Proportion(column, sizes)`: a statistic that is a share of 0/1 values (a subset's accuracy, an accuracy pooled
  over subsets as large as they are): `bootstrap_statistics` gives it the Wilson score interval of its successes
  over its units, as `bootstrap_ci(proportion=True)` does, since a percentile bootstrap shows a point for a subset
  all right or all wrong (5 of 5: [1, 1]). Combined scores (weighted sections, means of subsets) stay percentile
  bootstraps.
- `interval_tree` / `interval_at`: the intervals of a summary as a `ci95` tree beside its numbers (below).

Where results hold intervals (every evaluator's results.json): a dict with a key `ci95` mirrors that dict, and the
interval of the number at path (k1, k2, ...) under it is `ci95[k1][k2]...`, a [low, high] list in the number's own
units (fractions), or null where the number is null. `interval_at(summary, path)` finds it from the deepest dict on
the path that has a `ci95`. Existing keys keep their numbers: the intervals only sit beside them.

Seeded (same inputs, same interval) and vectorised with numpy: 2,000 resamples of 3,000 items take milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def _as_array(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a flat sequence of per-item values, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("per-item values must be finite (count a failed item as 0.0, as the accuracy does)")
    return arr


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n (never of zero width: 5 of 5 gives about [0.57, 1]).
    Written out (scipy's binomtest has it, but scipy is no core dependency: rm_core needs numpy only)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds where rounding leaves 1e-17
    return low, 1.0 if successes == n else min(1.0, centre + half)


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                 level: float = LEVEL, proportion: bool = False) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one item: (v, v); none: ValueError), or with
    `proportion` (values 0/1: an accuracy) the Wilson score interval: the bootstrap's has zero width where every
    item is right (or wrong): [1, 1] for 5 of 5."""
    arr = _as_array(values)
    if arr.size == 0:
        raise ValueError("no items to bootstrap")
    if proportion:
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError("proportion=True takes 0/1 values")
        return wilson_interval(int(arr.sum()), arr.size, level)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    return _percentiles(means, level)


def stratified_bootstrap(groups: Mapping[str, Sequence[float]],
                         combine: Callable[[dict[str, float]], float | None], n_boot: int = N_BOOT, seed: int = 0,
                         level: float = LEVEL) -> tuple[float, float] | None:
    """Interval of `combine({group: mean of its values})` with every group resampled within itself.
    Groups with no items are left out of the dict `combine` sees, as they are from the point estimate. None
    when `combine` gives None on the data (nothing to combine)."""
    arrays = {name: _as_array(v) for name, v in groups.items() if len(v)}
    if combine({name: float(a.mean()) for name, a in arrays.items()}) is None:
        return None
    rng = np.random.default_rng(seed)
    replicate_means = {name: a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
                       for name, a in arrays.items()}
    samples = np.array([combine({name: float(m[b]) for name, m in replicate_means.items()}) for b in range(n_boot)],
                       dtype=np.float64)
    return _percentiles(samples, level)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                     level: float = LEVEL) -> dict:
    """mean(a) - mean(b) over the same items, with a paired bootstrap interval.
    {"difference", "low", "high", "excludes_zero", "n"}."""
    x, y = _as_array(a), _as_array(b)
    if x.size != y.size:
        raise ValueError(f"paired items differ in number: {x.size} vs {y.size}")
    if x.size == 0:
        raise ValueError("no items to bootstrap")
    diff = x - y
    low, high = bootstrap_ci(diff, n_boot, seed, level)
    return {"difference": float(diff.mean()), "low": low, "high": high, "excludes_zero": low > 0 or high < 0,
            "n": int(x.size)}


# ---------------------------------------------------------------- units with columns, several statistics at once


def _column(values: Sequence[float | None], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(values with 0 where absent, 1.0 where present) of one column; None marks a unit the column does not apply to."""
    present = np.array([v is not None for v in values], dtype=np.float64)
    arr = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError(f"{where}: per-unit values must be finite numbers or None (a failed item counts 0.0)")
    return arr, present


def _means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)


def bootstrap_statistics(groups: Mapping[str, Mapping[str, Sequence[float | None]]],
                         statistics: Mapping[Any, Callable[[dict[str, dict[str, np.ndarray]]], Any]],
                         n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict[Any, dict | None]:
    """Point estimate and interval of each statistic over units resampled within their groups.

    groups: {group (a subset, a domain): {column: one value per unit}}, every column of a group as long as the
    group has units; None where a column does not apply to a unit (a Ties prompt with no `tied` row). A group
    with no units is left out. Each replicate draws each group's units with replacement (in the groups' order,
    one draw per group shared by all its columns and all statistics); a column's replicate mean is over the drawn
    units it applies to.

    statistics: {key: fn(means)}, means = {group: {column: numpy array}}: called once with arrays of one element
    (the point estimate) and once with arrays of n_boot replicate means, so write it with arithmetic only (no
    `if` on values; `ratio` divides safely). It returns an array (or a number), or None where it does not apply
    to the data (a section with no subset present): that key's result is None. A replicate whose value is NaN (a
    ratio whose denominator was never drawn) is left out of the interval.

    A `Proportion` statistic whose units all have its column as 0/1 gets the Wilson interval instead (otherwise,
    a share of other values, the percentile one).

    Returns {key: {"value": point estimate or None (NaN), "ci95": (low, high) or None} or None}."""
    arrays: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for name, columns in groups.items():
        sizes = {len(v) for v in columns.values()}
        if len(sizes) > 1:
            raise ValueError(f"group {name!r}: columns of different lengths {sorted(sizes)}")
        if not sizes or 0 in sizes:
            continue
        arrays[name] = {col: _column(v, f"group {name!r}, column {col!r}") for col, v in columns.items()}
    point = {g: {c: _means(a.sum(keepdims=True), p.sum(keepdims=True)) for c, (a, p) in cols.items()}
             for g, cols in arrays.items()}
    rng = np.random.default_rng(seed)
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for g, cols in arrays.items():
        size = len(next(iter(cols.values()))[0])
        idx = rng.integers(0, size, size=(n_boot, size))
        # how often each unit is drawn in each replicate; then every column's sums in one matrix product
        counts = np.bincount((idx + size * np.arange(n_boot)[:, None]).ravel(),
                             minlength=n_boot * size).reshape(n_boot, size).astype(np.float64)
        names = list(cols)
        sums = counts @ np.stack([cols[c][0] for c in names] + [cols[c][1] for c in names], axis=1)
        replicates[g] = {c: _means(sums[:, k], sums[:, len(names) + k]) for k, c in enumerate(names)}
    out: dict[Any, dict | None] = {}
    for key, fn in statistics.items():
        at_point = fn(point)
        if at_point is None:
            out[key] = None
            continue
        value = float(np.asarray(at_point, dtype=np.float64).reshape(-1)[0])
        samples = np.asarray(fn(replicates), dtype=np.float64).reshape(-1)
        samples = samples[np.isfinite(samples)]
        ci = _percentiles(samples, level) if samples.size else None
        if isinstance(fn, Proportion):
            ci = fn.wilson(arrays, level) or ci
        out[key] = {"value": value if math.isfinite(value) else None, "ci95": ci}
    return out


class Proportion:
    """A statistic that is the share of 1s in a 0/1 column pooled over groups, each weighted by its size (the
    number of its units): `Proportion("correct", {"chat": 12})` is a subset's accuracy; with every subset, the
    accuracy over all pairs. Called on means like any statistic; `bootstrap_statistics` gives it Wilson's
    interval (`wilson`)."""

    def __init__(self, column: str, sizes: Mapping[str, int]):
        self.column, self.sizes = column, dict(sizes)

    def __call__(self, means):
        names = [g for g in self.sizes if g in means]
        if not names:
            return None
        return sum(self.sizes[g] * means[g][self.column] for g in names) / sum(self.sizes[g] for g in names)

    def wilson(self, arrays: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
               level: float) -> tuple[float, float] | None:
        """The Wilson interval of successes / units over the groups present, or None (use the bootstrap) where a
        unit lacks the column, a value is not 0/1, or a group's size is not its number of units."""
        successes = n = 0
        for g in self.sizes:
            if g not in arrays:
                continue
            if self.column not in arrays[g]:
                return None
            values, present = arrays[g][self.column]
            if not present.all() or not np.isin(values, (0.0, 1.0)).all() or values.size != self.sizes[g]:
                return None
            successes, n = successes + int(values.sum()), n + values.size
        return wilson_interval(successes, n, level) if n else None


def ratio(numerator, denominator):
    """numerator / denominator for a statistic's arrays: NaN where the denominator is 0 (the ratio is undefined
    in that replicate, which is then left out)."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def unit_columns(units: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> dict[str, dict[str, list]]:
    """{group: {unit id: {column: value}}} -> {group: {column: [value per unit]}}: the columns a group's units
    have, None where a unit lacks one."""
    out = {}
    for group, members in units.items():
        names: list[str] = []
        for row in members.values():
            names += [c for c in row if c not in names]
        out[group] = {c: [row.get(c) for row in members.values()] for c in names}
    return out


def interval_tree(units: Mapping[str, Mapping[str, Mapping[str, float | None]]],
                  statistics: Mapping[tuple, Callable], n_boot: int = N_BOOT, seed: int = 0,
                  level: float = LEVEL) -> dict:
    """The `ci95` tree of a summary: statistics keyed by the path of the number they estimate (("sections",
    "Chat"), ("score",)), intervals as [low, high] lists (JSON) or None, nested by path."""
    results = bootstrap_statistics(unit_columns(units), statistics, n_boot, seed, level)
    tree: dict = {}
    for path, result in results.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        ci = None if result is None else result["ci95"]
        node[path[-1]] = None if ci is None else [ci[0], ci[1]]
    return tree


def value_at(summary: Mapping, path: Sequence):
    """The number at `path` in a summary (None where the path leads nowhere)."""
    node: Any = summary
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def interval_at(summary: Mapping, path: Sequence) -> list | None:
    """The interval of the number at `path` in a summary (see the module docstring), or None when there is none
    (an older results.json, a number with no interval)."""
    node: Any = summary
    found = None
    for depth, key in enumerate(path):
        if isinstance(node, Mapping) and isinstance(node.get("ci95"), Mapping):
            inner: Any = node["ci95"]
            for k in path[depth:]:
                inner = inner.get(k) if isinstance(inner, Mapping) else None
            if isinstance(inner, (list, tuple)) and len(inner) == 2:
                found = list(inner)
        if not isinstance(node, Mapping):
            break
        node = node.get(key)
    return found


def percent(value: float | None, digits: int = 2, none: str = "n/a") -> str:
    """A rate as percent text (0.5833 -> "58.33"), `none` for a missing one: every table's one format."""
    return none if value is None else f"{100 * value:.{digits}f}"


def interval_text(ci: Sequence[float] | None, digits: int = 1) -> str:
    """A 95% interval as "[53.7, 62.9]" (percent), "" when there is none."""
    return "" if not ci else f"[{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"


def interval_text_at(summary: Mapping, path: Sequence, digits: int = 1) -> str:
    """interval_text of the interval at `path` in a summary (interval_at)."""
    return interval_text(interval_at(summary, path), digits)


def percent_with_ci(value: float | None, ci: Sequence[float] | None, digits: int = 1, none: str = "n/a",
                    unit: str = "") -> str:
    """"58.3 [53.7, 62.9]" (with unit="%": "58.3% [53.7, 62.9]"); the interval only beside a value."""
    if value is None:
        return none
    return percent(value, digits) + unit + ("" if not ci else " " + interval_text(ci, digits))


def difference_with_ci(difference: float, low: float, high: float) -> str:
    """A paired difference of rates in signed percentage points with its interval: "+3.1 [+0.4, +5.8]"."""
    return f"{100 * difference:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def paired_statistic(units_a: Mapping[str, Mapping[str, Mapping[str, float | None]]],
                     units_b: Mapping[str, Mapping[str, Mapping[str, float | None]]], statistic: Callable,
                     n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict | None:
    """Two judges on the same units (the same ids in the same groups): statistic(a) - statistic(b), with each
    replicate drawing the SAME units for both (a paired, stratified bootstrap). Only units both have are used.
    {"difference", "low", "high", "excludes_zero", "n"}; None when the statistic does not apply (or no unit is
    shared)."""
    merged: dict[str, dict[str, dict]] = {}
    for group in units_a:
        shared = [u for u in units_a[group] if u in units_b.get(group, {})]
        if shared:
            merged[group] = {u: {**{("a", c): v for c, v in units_a[group][u].items()},
                                 **{("b", c): v for c, v in units_b[group][u].items()}} for u in shared}
    if not merged:
        return None

    def side(means, which):
        return {g: {c[1]: v for c, v in cols.items() if c[0] == which} for g, cols in means.items()}

    def difference(means):
        a, b = statistic(side(means, "a")), statistic(side(means, "b"))
        return None if a is None or b is None else np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)

    result = bootstrap_statistics(unit_columns(merged), {"d": difference}, n_boot, seed, level)["d"]
    if result is None or result["value"] is None or result["ci95"] is None:
        return None
    low, high = result["ci95"]
    return {"difference": result["value"], "low": low, "high": high, "excludes_zero": low > 0 or high < 0,
            "n": sum(len(m) for m in merged.values())}


def summed_units(rows: Sequence[Mapping[str, float]], clusters: Sequence | None = None,
                 strata: Sequence | None = None) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """Items (rows of numbers with the same columns) summed per cluster (one key per item: items that move
    together, such as a prompt's nine RM-Bench cells; default each item alone), the clusters grouped by stratum
    (one key per item: a subset; default one stratum) for bootstrap_statistics. Returns (groups, {stratum: number
    of clusters}); `total` turns a statistic's per-stratum means back into totals, so a ratio of two totals is
    the ratio of sums over all items, resampled by cluster within each stratum."""
    rows = list(rows)
    clusters = list(range(len(rows))) if clusters is None else list(clusters)
    strata = ["all"] * len(rows) if strata is None else [str(s) for s in strata]
    if not len(rows) == len(clusters) == len(strata):
        raise ValueError(f"{len(rows)} items, {len(clusters)} cluster keys, {len(strata)} strata")
    sums: dict[str, dict] = {}
    for row, key, stratum in zip(rows, clusters, strata):
        total_row = sums.setdefault(stratum, {}).setdefault(key, dict.fromkeys(row, 0.0))
        for k, v in row.items():
            total_row[k] += v
    groups = {s: {c: [r[c] for r in members.values()] for c in next(iter(members.values()))}
              for s, members in sums.items()}
    return groups, {s: len(members) for s, members in sums.items()}


def total(means: Mapping[str, Mapping[str, Any]], sizes: Mapping[str, int], column: str):
    """sum over strata of (clusters in the stratum) x (the stratum's mean cluster sum of `column`)."""
    return sum(sizes[s] * means[s][column] for s in means)
