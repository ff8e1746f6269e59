"""Best-of-N accuracy over Candidates rows (prompt, responses, correct): the baselines and the picks of several
judges at once, with each judge's scoring time (also the math recipes' evaluation at the end of training).

The rules (random, majority vote with its tie rules, oracle, a judge's pick, a judge's weighted vote) are
rm_core/best_of_n.py's, the same the benchmark `eval_best_of_n` uses.

    python math_rm/best_of_n.py --judge prm=outputs/prm-smollm2 --judge orm=outputs/orm-smollm2 \
        --output outputs/best_of_4.json          # default candidates: the 319 held-out GSM8K questions
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rm_core.best_of_n import (
    DEFAULT_CANDIDATES,
    baselines,
    load_candidates,
    score_pick,
    vote_weights_are_probabilities,
    weighted_vote_pick,
)


def score_candidates(judge, cands: list[dict], chunk: int = 32, progress: bool = True) -> list[list[float | None]]:
    """The judge's score of every candidate (judge.score over chunks of conversations, with a progress bar)."""
    from judges.base import conversation
    from rm_core.progress import progress as progress_bar

    flat = [(q, conversation(c["prompt"], r)) for q, c in enumerate(cands) for r in c["responses"]]
    scores: list[float | None] = []
    with progress_bar(total=len(flat), desc="scoring", unit="response", enabled=progress) as bar:
        for start in range(0, len(flat), chunk):
            scores += judge.score([conv for _, conv in flat[start:start + chunk]])
            bar.update(len(flat[start:start + chunk]))
    out: list[list[float | None]] = [[] for _ in cands]
    for (q, _), s in zip(flat, scores):
        out[q].append(s)
    return out


def judge_accuracy(scores: list[list[float | None]], cands: list[dict], probabilities: bool) -> dict:
    """probabilities: the judge's scores are probabilities (judge.scores_are_probabilities: weighted_vote_pick)."""
    picks = [score_pick(s, c["correct"]) for s, c in zip(scores, cands)]
    voted = [weighted_vote_pick(c["responses"], s, c["correct"], probabilities) for s, c in zip(scores, cands)]
    failed = sum(s is None for row in scores for s in row)
    return {"accuracy": sum(p for _, p in picks) / len(cands), "picks": [i for i, _ in picks],
            "weighted_vote_accuracy": sum(p for _, p in voted) / len(cands), "failed_candidates": failed}


def evaluate(cands: list[dict], judges: dict | None = None, progress: bool = True) -> dict:
    """Baselines plus, for each named judge, its best-of-N accuracy and scoring time."""
    result = baselines(cands)
    from judges.base import truncation_count

    for name, judge in (judges or {}).items():
        cut_before = truncation_count(judge)
        report = getattr(judge, "report", None)
        slots_before = getattr(report, "slots_cut", None)
        t0 = time.perf_counter()
        scores = score_candidates(judge, cands, progress=progress)
        seconds = time.perf_counter() - t0
        acc = judge_accuracy(scores, cands, vote_weights_are_probabilities(judge))
        result[name] = {"accuracy": acc["accuracy"], "weighted_vote_accuracy": acc["weighted_vote_accuracy"],
                        "failed_candidates": acc["failed_candidates"],
                        "scoring_seconds": round(seconds, 1), "picks": acc["picks"], "scores": scores}
        # candidates cut to the judge's max_length in this evaluation (a PRM scores the steps it kept: a cut early
        # step is not seen by min/prod/mean), None for a judge that keeps no count
        cut_after = truncation_count(judge)
        result[name]["truncated_candidates"] = None if cut_before is None or cut_after is None else \
            cut_after - cut_before
        if slots_before is not None:
            result[name]["step_slots_cut"] = report.slots_cut - slots_before
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", default=DEFAULT_CANDIDATES, help="Candidates source (file, folder or Hub id)")
    p.add_argument("--split", default="test", help="test/train/all for the GSM8K solutions; else the split name")
    p.add_argument("--max_questions", type=int, default=None)
    p.add_argument("--judge", action="append", default=[], help="NAME=SPEC or SPEC (judges.load); repeatable")
    p.add_argument("--aggregation", default=None, help="PRM step aggregation override: min, prod, last, mean")
    p.add_argument("--output", default=None, help="write the results (with per-candidate scores) as JSON")
    from rm_core.tracking import add_run_args, apply_run_args

    args = add_run_args(p, tracking=False).parse_args(argv)  # --quiet
    apply_run_args(args)

    import judges as judges_mod

    cands = load_candidates(args.candidates, args.split, args.max_questions)
    loaded = {}
    for spec in args.judge:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        kwargs = {"aggregation": args.aggregation} if args.aggregation else {}
        loaded[name or Path(path).name] = judges_mod.load(path, **kwargs)
    result = evaluate(cands, loaded)
    summary = {k: (v["accuracy"] if isinstance(v, dict) else v) for k, v in result.items()}
    print(json.dumps(summary, indent=2))
    if args.output:
        from rm_core.hub import atomic_write_json

        atomic_write_json(args.output, result)
    return result


if __name__ == "__main__":
    from rm_core.errors import run_cli

    run_cli(main)
