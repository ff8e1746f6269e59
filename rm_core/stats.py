"""Intervals for every figure: seeded percentile bootstraps over the scored items.

- `bootstrap_ci(values)`: the 95% interval of a mean (an accuracy: values are 1.0 / 0.0 per item).
- `stratified_bootstrap(groups, combine)`: resample WITHIN each group (a subset, a domain), recompute each group's
  mean, then combine them as the benchmark does (RewardBench's weighted sections, a mean of subsets): the interval
  of a score built from subsets, with each subset's size held as it is in the benchmark.
- `paired_bootstrap(a, b)`: two judges scored on the SAME items: resample items, keep the pairing; the difference
  of the means, its interval, and whether it excludes zero.

Seeded (same inputs, same interval) and vectorised with numpy: 2,000 resamples of 3,000 items take milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`. One item: (v, v); none: ValueError."""
    arr = _as_array(values)
    if arr.size == 0:
        raise ValueError("no items to bootstrap")
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
