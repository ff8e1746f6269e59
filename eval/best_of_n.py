"""Best-of-N on any Candidates data set (prompt, responses, correct): a judge's pick beside the baselines.

    python -m eval.best_of_n --model CKPT [--dataset ../shared/data/gsm8k/example_model_solutions.jsonl]
    python -m eval.best_of_n --model CKPT --dataset RLHFlow/Mistral-GSM8K-Test --split test
    accelerate launch --num_processes 8 -m eval.best_of_n --model CKPT

Sources: every format `rm_core.data.to_candidates` converts (the GSM8K labelled solutions, with the project's
fixed split: --split test is the 319 held-out questions; RLHFlow's best-of-N test sets (prompt, answers,
labels); canonical Candidates rows; math_rm/sample_solutions.py output).

One implementation of the rules: the baselines and the pick are rm_core/best_of_n.py's (math_rm uses them too).
- random: the exact expected accuracy of a uniform pick (the mean of `correct`), not a sample;
- majority vote: candidates grouped by equal final answer; the largest group wins; ties between groups go to
  the group whose first candidate comes first ("first"; also reported: "expected" over the tied groups);
- oracle: 1 when any candidate is correct;
- the judge: the highest-scored candidate (ties to the lower index; a candidate the judge failed on is never
  picked; all failed: wrong). A pointwise judge scores each candidate once; a pairwise judge ranks them
  (judges.base.Judge.rank, its default aggregation);
- the judge-weighted vote: majority vote with the judge's scores as vote weights (probabilities as they are,
  other scores through a sigmoid; rm_core.best_of_n.weighted_vote_pick).
Scoring goes through the shared resumable, process-split loop (eval/runner.py), one question per item.
"""

from __future__ import annotations

import argparse

from eval.runner import add_judge_args, check_model, listwise_scores, run_benchmark, run_eval_command
from rm_core.best_of_n import DEFAULT_CANDIDATES, baselines, load_candidates, score_pick, weighted_vote_pick
from rm_core.data import SkipReport
from rm_core.errors import cli_entry

DEFAULT_DATASET = DEFAULT_CANDIDATES


def load(dataset: str = DEFAULT_DATASET, split: str = "test", limit: int | None = None):
    cands = load_candidates(dataset, split, limit)
    for i, c in enumerate(cands):
        c["id"] = c.get("id") or str(i)
    return cands, SkipReport()


def make_scorer(judge):
    def scorer(items: list[dict]) -> list[dict]:
        all_scores = listwise_scores(judge, [(c["prompt"], c["responses"]) for c in items])
        rows = []
        for c, scores in zip(items, all_scores):
            pick, right = score_pick(scores, c["correct"])
            _, voted_right = weighted_vote_pick(c["responses"], scores, c["correct"])
            rows.append({"id": c["id"], "scores": scores, "pick": pick, "correct_pick": right,
                         "correct_weighted_vote": voted_right,
                         "failed_candidates": sum(s is None for s in scores)})
        return rows
    return scorer


def summarize_with(cands: list[dict]):
    def summarize(rows: list[dict]) -> dict:
        if not rows:
            return {"judge": None, "baselines": None}
        base = baselines(cands)
        return {"judge": sum(r["correct_pick"] for r in rows) / len(rows),
                "judge_weighted_vote": sum(r["correct_weighted_vote"] for r in rows) / len(rows),
                "baselines": {k: base[k] for k in ("random", "majority_vote", "majority_vote_expected_ties",
                                                   "oracle")},
                "questions": base["questions"], "candidates": base["candidates"],
                "failed_candidates": sum(r["failed_candidates"] for r in rows),
                "questions_with_no_pick": sum(r["pick"] is None for r in rows)}
    return summarize


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}"


def format_table(summary: dict) -> str:
    lines = [f"{'method':<28}  {'acc %':>7}", "-" * 37]
    for name, v in (summary.get("baselines") or {}).items():
        lines.append(f"{name:<28}  {_pct(v):>7}")
    lines.append(f"{'judge (' + str(summary.get('model')) + ')':<28}  {_pct(summary.get('judge')):>7}")
    lines.append(f"{'judge-weighted vote':<28}  {_pct(summary.get('judge_weighted_vote')):>7}")
    return "\n".join(lines)


def headline(summary: dict) -> dict[str, float | None]:
    return {"judge's pick": summary["judge"], "judge-weighted vote": summary.get("judge_weighted_vote"),
            **(summary.get("baselines") or {})}


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_best_of_n", description=__doc__.split("\n\n")[0])
    add_judge_args(p)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Candidates source: file, folder or Hub id")
    p.add_argument("--split", default="test", help="test/train/all for the GSM8K solutions; else the split name")
    return p


def evaluate(args) -> dict | None:
    check_model(args)  # before the data
    cands, skipped = load(args.dataset, args.split, args.limit)
    return run_benchmark(args, "best_of_n", cands, skipped, make_scorer, summarize_with(cands), format_table,
                         unit="questions", chunk_size=32)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "best_of_n")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
