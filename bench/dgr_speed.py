"""Speed of the exact minimum-feedback-arc-set DP behind DGR (judges.aggregate), against brute force.

    python -m bench.dgr_speed                       # writes bench/runs/dgr_speed.json
    python -m bench.dgr_speed --repeats 7 --output /tmp/dgr.json

Inputs: random tournaments from a fixed seed, built the way dgr() builds them (binary weighting: a win is
an edge of weight 1, a tie P = 0.5 half-weight edges both ways, a few pairs missing). Each row is the
median wall time of --repeats calls of minimum_feedback_arc_set (exact DP) at n = 8, 12, 16, of
brute_force_fas (all n! orders) at n = 8, and, for scale, of the greedy path used above exact_max_n at
n = 16 and 64. The exact rows also check that the DP and brute force agree at n = 8.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from judges.aggregate import brute_force_fas, dgr_graph, minimum_feedback_arc_set

REPO = Path(__file__).resolve().parents[1]


def random_tournament(rng: np.random.Generator, n: int) -> np.ndarray:
    """P with clear wins, about 10% ties and 10% missing pairs."""
    upper = rng.choice([0.0, 1.0, 0.5, np.nan], p=[0.4, 0.4, 0.1, 0.1], size=(n, n))
    P = np.triu(upper, 1) + np.tril(1.0 - np.triu(upper, 1).T, -1)
    np.fill_diagonal(P, np.nan)
    return P


def timed(fn, W: np.ndarray, repeats: int) -> tuple[float, list[float], tuple[list[int], float]]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(W)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "runs" / "dgr_speed.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    graphs = {n: dgr_graph(random_tournament(rng, n)) for n in (8, 12, 16, 64)}
    cases = [
        ("exact DP", 8, lambda W: minimum_feedback_arc_set(W)),
        ("exact DP", 12, lambda W: minimum_feedback_arc_set(W)),
        ("exact DP", 16, lambda W: minimum_feedback_arc_set(W)),
        ("brute force", 8, brute_force_fas),
        ("greedy", 16, lambda W: minimum_feedback_arc_set(W, exact_max_n=0)),
        ("greedy", 64, lambda W: minimum_feedback_arc_set(W, exact_max_n=0)),
    ]
    minimum_feedback_arc_set(graphs[8])  # warm-up: first numpy calls pay one-off costs
    rows = []
    for method, n, fn in cases:
        repeats = args.repeats if method != "brute force" else max(1, min(args.repeats, 3))
        median, times, (order, removed) = timed(fn, graphs[n], repeats)
        rows.append({"method": method, "n": n, "median_s": median, "times_s": times, "removed_weight": removed,
                     "order": order})

    exact8 = next(r for r in rows if r["method"] == "exact DP" and r["n"] == 8)
    brute8 = next(r for r in rows if r["method"] == "brute force")
    agree = exact8["order"] == brute8["order"] and abs(exact8["removed_weight"] - brute8["removed_weight"]) < 1e-9

    print("| method | n | median time | removed weight |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['n']} | {r['median_s'] * 1e3:.1f} ms | {r['removed_weight']:g} |")
    print(f"\nexact DP and brute force agree at n = 8 (order and removed weight): {agree}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": "dgr_speed",
        "seed": args.seed,
        "repeats": args.repeats,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "dp_matches_brute_force_n8": agree,
        "rows": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
