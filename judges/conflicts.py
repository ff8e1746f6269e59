"""Where a judge contradicts itself: order-inconsistent pairs and intransitive triples, per subset.

- Order-inconsistent pair: the winner changes when the two responses swap places (position bias).
  Judges that see both orders themselves (a prompted LLM or pair-PM judge: `judge_pairs`) report both
  verdicts; any other judge is asked `compare(a, b)` and `compare(b, a)`. A pointwise judge can never be
  order-inconsistent or intransitive: the detector says so with zeros, it does not skip it.
- Intransitive triple: among three responses to one prompt, a beats b, b beats c and c beats a (by the
  order-averaged probability). Only triples whose three pairs were all decided (no failure, no tie) are
  counted, and the rate is over those.
Failed comparisons are counted, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from judges.base import Judge, PairVerdict, winner


def verdicts(judge: Judge, items: list[tuple]) -> list[PairVerdict]:
    """Each (prompt, a, b) judged in both orders."""
    if hasattr(judge, "judge_pairs"):
        return [PairVerdict(v.p_forward, v.p_backward) for v in judge.judge_pairs(items)]
    forward = judge.compare_batch(items)
    swapped = judge.compare_batch([(prompt, b, a) for prompt, a, b in items])
    return [PairVerdict(f, None if s is None else 1.0 - s) for f, s in zip(forward, swapped)]


def _rates(tally: dict) -> dict:
    decided_pairs = tally["pairs"] - tally["failed_pairs"]
    return {**tally,
            "order_inconsistency_rate": tally["order_inconsistent"] / decided_pairs if decided_pairs else None,
            "intransitive_rate": tally["intransitive"] / tally["decided_triples"] if tally["decided_triples"] else None}


def detect_conflicts(judge: Judge, groups: list[dict], tie_tol: float = 1e-6) -> dict:
    """groups: [{"prompt", "responses": [str, ...], "subset": optional}]. Every pair of responses within a
    group is judged in both orders (all groups in one batch). Returns {"overall": {...}, "subsets": {...}}."""
    items, where = [], []
    for g, group in enumerate(groups):
        for i, j in combinations(range(len(group["responses"])), 2):
            items.append((group["prompt"], group["responses"][i], group["responses"][j]))
            where.append((g, i, j))
    results = verdicts(judge, items) if items else []
    by_group: dict[int, dict] = defaultdict(dict)
    empty = {"groups": 0, "pairs": 0, "failed_pairs": 0, "order_inconsistent": 0, "triples": 0,
             "decided_triples": 0, "intransitive": 0}
    tallies: dict[str, dict] = defaultdict(lambda: dict(empty))
    for (g, i, j), v in zip(where, results):
        tally = tallies[groups[g].get("subset") or "all"]
        tally["pairs"] += 1
        if v.p is None:
            tally["failed_pairs"] += 1
            continue
        tally["order_inconsistent"] += not v.consistent
        by_group[g][(i, j)] = winner(v.p, tie_tol)
    for g, group in enumerate(groups):
        tally = tallies[group.get("subset") or "all"]
        tally["groups"] += 1
        wins = by_group[g]
        for i, j, k in combinations(range(len(group["responses"])), 3):
            tally["triples"] += 1
            d = (wins.get((i, j), 0), wins.get((j, k), 0), -wins.get((i, k), 0))  # i>j, j>k, k>i
            if 0 in d:
                continue
            tally["decided_triples"] += 1
            tally["intransitive"] += d[0] == d[1] == d[2]  # a cycle one way round or the other
    overall = dict(empty)
    for tally in tallies.values():
        for key in overall:
            overall[key] += tally[key]
    return {"overall": _rates(overall), "subsets": {name: _rates(t) for name, t in sorted(tallies.items())}}


def groups_from_rows(rows: list[dict]) -> list[dict]:
    """Candidate rows ({"prompt", "responses": [...]}) as they are; preference rows (any format
    rm_core.data reads) as groups of their two responses. Prompts keep their message form."""
    if rows and "responses" in rows[0]:
        return [{"prompt": r["prompt"], "responses": list(r["responses"]), "subset": r.get("subset", "")}
                for r in rows]
    from rm_core.data import to_preferences

    prefs, _ = to_preferences(rows)
    return [{"prompt": p["prompt"], "responses": [p["chosen"][-1]["content"], p["rejected"][-1]["content"]],
             "subset": p["subset"]} for p in prefs]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    import judges
    from rm_core.data import load_llmbar_as_reward_bench, load_rows
    from rm_core.hub import atomic_write_json

    p = argparse.ArgumentParser(description="Order-inconsistent pairs and intransitive triples of a judge on a "
                                            "data set, per subset.")
    p.add_argument("--judge", required=True, help="checkpoint / Hub id, or llm:<id> / openai:<model>")
    p.add_argument("--dataset", required=True, help="preference rows, candidate rows {prompt, responses}, "
                                                    "or LLMBar's folder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--output", default=None, help="write the report as JSON here")
    from judges.cli import add_llm_judge_args, check_llm_judge_args, llm_judge_kwargs

    add_llm_judge_args(p)  # --judge_cache_dir, --judge_base_url, ... (as the eval_* commands)
    args = p.parse_args(argv)
    check_llm_judge_args([args.judge], args)
    judges.check_judge_spec(args.judge, "--judge")  # before the data
    from pathlib import Path

    rows = (load_llmbar_as_reward_bench(args.dataset) if (Path(args.dataset) / "natural.json").is_file()
            else load_rows(args.dataset, args.split))
    groups = groups_from_rows(rows)[: args.limit]
    judge = judges.load(args.judge, **llm_judge_kwargs(args.judge, args))
    report = detect_conflicts(judge, groups)
    report["failures"] = judge.failures.as_dict()
    print(json.dumps(report, indent=2))
    if args.output:
        atomic_write_json(args.output, report)


if __name__ == "__main__":
    from rm_core.errors import run_cli

    run_cli(main)
