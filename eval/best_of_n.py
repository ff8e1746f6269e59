"""Best-of-N on any Candidates data set (prompt, responses, correct): a judge's pick beside the baselines.

    python -m eval.best_of_n --model CKPT [--dataset ../shared/data/gsm8k/example_model_solutions.jsonl]
    python -m eval.best_of_n --model CKPT --dataset RLHFlow/Mistral-GSM8K-Test --split test
    accelerate launch --num_processes 8 -m eval.best_of_n --model CKPT

Sources: every format `rm_core.data.to_candidates` converts (the GSM8K labelled solutions, with the project's
fixed split: --split test is the 319 held-out questions; RLHFlow's best-of-N test sets (prompt, answers,
labels); canonical Candidates rows; math_rm/sample_solutions.py output). Skipped when read and counted in
results.json's `skipped_rows` (rm_core.best_of_n.read_candidates): a row that does not convert, a question with
fewer than two candidates, an empty candidate, or identical candidates with conflicting labels.

One implementation of the rules: the baselines and the pick are rm_core/best_of_n.py's (math_rm uses them too).
- random: the exact expected accuracy of a uniform pick (the mean of `correct`), not a sample;
- majority vote: candidates grouped by equal final answer; the largest group wins; ties between groups go to
  the group whose first candidate comes first ("first"; also reported: "expected" over the tied groups);
- oracle: 1 when any candidate is correct;
- the judge: the highest-scored candidate (ties to the lower index; a candidate the judge failed on is never
  picked; all failed: wrong). A pointwise judge scores each candidate once; a pairwise judge ranks them
  (judges.base.Judge.rank, its default aggregation);
- the judge-weighted vote: majority vote with the judge's scores as vote weights, as they are where the judge
  declares them probabilities (`Judge.scores_are_probabilities`: a PRM / ORM's P("+"), a prompted judge's
  normalised rating, a code pass rate, a 0/1 answer check), else through a sigmoid (a reward model's logits, a
  ranking's strengths); rm_core.best_of_n.weighted_vote_pick.
Scoring goes through the shared resumable, process-split loop (eval/runner.py), one question per item.

Intervals and length (rm_core.stats, rm_core.length): the judge's pick, its weighted vote and every baseline have a
95% interval in the summary's `ci95` tree (`ci95["judge"]`, `ci95["baselines"]["oracle"]`): Wilson's for a share of
right questions (the pick, the vote, the oracle), otherwise (the random baseline's expected values) a seeded bootstrap
over the questions. `length`: "shorter wins" is the accuracy of picking the shortest candidate (a tie at the shortest
counts the share of the tied ones that are correct), "longer wins" the longest; a question's correct candidates
are "longer" when their mean length exceeds the incorrect ones' (questions all right or all wrong: neither).
"""

from __future__ import annotations

import argparse

from eval.runner import add_judge_args, check_model, listwise_scores, run_benchmark, run_eval_command
from rm_core.best_of_n import (
    DEFAULT_CANDIDATES,
    baselines,
    question_values,
    read_candidates,
    score_pick,
    vote_weights_are_probabilities,
    weighted_vote_pick,
)
from rm_core.errors import cli_entry
from rm_core.stats import Proportion, interval_text_at, interval_tree, percent

DEFAULT_DATASET = DEFAULT_CANDIDATES


def load(dataset: str = DEFAULT_DATASET, split: str = "test", limit: int | None = None):
    """(questions, SkipReport): rm_core.best_of_n.read_candidates' rows and its counted skips (bad rows, an empty
    candidate, identical candidates with conflicting labels, fewer than two candidates), for results.json."""
    cands, skipped = read_candidates(dataset, split, limit)
    for i, c in enumerate(cands):
        c["id"] = c.get("id") or str(i)
    return cands, skipped


def make_scorer(judge):
    def scorer(items: list[dict]) -> list[dict]:
        all_scores = listwise_scores(judge, [(c["prompt"], c["responses"]) for c in items])
        rows = []
        for c, scores in zip(items, all_scores):
            pick, right = score_pick(scores, c["correct"])
            _, voted_right = weighted_vote_pick(c["responses"], scores, c["correct"],
                                                vote_weights_are_probabilities(judge))
            row = {"id": c["id"], "scores": scores, "pick": pick, "correct_pick": right,
                   "correct_weighted_vote": voted_right, "failed_candidates": sum(s is None for s in scores)}
            if not judge.pointwise:
                row["pairwise"] = True
            rows.append(row)
        return rows
    return scorer


BASELINES = ("random", "majority_vote", "majority_vote_expected_ties", "oracle")


def units(rows: list[dict], cands: list[dict] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """The bootstrap's units: {"all": {question id: {"judge": 1/0, "judge_weighted_vote": 1/0, and with the
    candidates each baseline's value (rm_core.best_of_n.question_values)}}}."""
    by_id = {str(c["id"]): c for c in cands or []}
    out = {}
    for r in rows:
        unit = {"judge": float(r["correct_pick"]), "judge_weighted_vote": float(r["correct_weighted_vote"])}
        if str(r["id"]) in by_id:
            unit.update(question_values(by_id[str(r["id"])]))
        out[str(r["id"])] = unit
    return {"all": out}


def statistics(units_all: dict) -> dict[tuple, object]:
    """Every accuracy of `summarize` as a mean over the (resampled) questions, keyed by its path."""
    columns = {c for u in units_all.get("all", {}).values() for c in u}
    size = {"all": len(units_all.get("all", {}))}
    stats: dict[tuple, object] = {(k,): Proportion(k, size) for k in ("judge", "judge_weighted_vote")}
    stats.update({("baselines", k): Proportion(k, size) for k in BASELINES if k in columns})
    return stats


def length_block(rows: list[dict], cands: list[dict]) -> dict | None:
    """rm_core.length.length_control over the questions: "shorter wins" is the accuracy of picking the shortest
    candidate (ties at the shortest: the share of them that are correct), the correct candidates "longer" when
    their mean length exceeds the incorrect ones'; questions all right or all wrong are in neither group."""
    from rm_core.length import chars, length_control

    by_id = {str(c["id"]): c for c in cands}
    rows = [r for r in rows if str(r["id"]) in by_id]
    if not rows:
        return None
    pairwise = any(r.get("pairwise") for r in rows)
    items, responses = [], []
    for r in rows:
        c = by_id[str(r["id"])]
        lengths = [chars(x) for x in c["responses"]]
        items.append({"lengths": lengths, "correct": c["correct"], "value": float(r["correct_pick"])})
        responses += list(zip(r["scores"], lengths))
    return length_control(items, None if pairwise else responses, pairwise=pairwise)


def summarize_with(cands: list[dict]):
    def summarize(rows: list[dict]) -> dict:
        if not rows:
            return {"judge": None, "baselines": None}
        base = baselines(cands)
        by_unit = units(rows, cands)
        return {"judge": sum(r["correct_pick"] for r in rows) / len(rows),
                "judge_weighted_vote": sum(r["correct_weighted_vote"] for r in rows) / len(rows),
                "baselines": {k: base[k] for k in BASELINES},
                "questions": base["questions"], "candidates": base["candidates"],
                "failed_candidates": sum(r["failed_candidates"] for r in rows),
                "questions_with_no_pick": sum(r["pick"] is None for r in rows),
                "ci95": interval_tree(by_unit, statistics(by_unit)), "length": length_block(rows, cands)}
    return summarize


def format_table(summary: dict) -> str:
    lines = [f"{'method':<28}  {'acc %':>7}  95% CI", "-" * 50]
    for name, v in (summary.get("baselines") or {}).items():
        lines.append(f"{name:<28}  {percent(v):>7}  {interval_text_at(summary, ('baselines', name))}")
    lines.append(f"{'judge (' + str(summary.get('model')) + ')':<28}  {percent(summary.get('judge')):>7}  "
                 f"{interval_text_at(summary, ('judge',))}")
    lines.append(f"{'judge-weighted vote':<28}  {percent(summary.get('judge_weighted_vote')):>7}  "
                 f"{interval_text_at(summary, ('judge_weighted_vote',))}")
    lines.append("(95% CI: Wilson for a share of right questions, else a bootstrap over the questions)")
    skipped = summary.get("skipped_rows") or {}
    if skipped.get("skipped"):
        reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.get("by_reason", {}).items())
        lines.append(f"skipped: {skipped['skipped']} question(s), not scored ({reasons})")
    from rm_core.length import format_length

    lines.extend(format_length(summary.get("length")))
    return "\n".join(lines)


def headline_paths(summary: dict) -> dict[str, tuple]:
    """The numbers a report compares side by side, each with the path of the number (and of its interval)."""
    return {"judge's pick": ("judge",), "judge-weighted vote": ("judge_weighted_vote",),
            **{k: ("baselines", k) for k in (summary.get("baselines") or {})}}


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_best_of_n", description=__doc__.split("\n\n")[0])
    add_judge_args(p)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Candidates source: file, folder or Hub id")
    p.add_argument("--split", default="test", help="test/train/all for the GSM8K solutions; else the split name")
    return p


def evaluate(args) -> dict | None:
    check_model(args)  # before the data
    # the rows store each question's weighted-vote outcome: rows of the rule before 2026-12-04 (weights guessed per
    # question from the score range) are not resumed into (rm_core.best_of_n.vote_weights_are_probabilities)
    args.weighted_vote_rule = "judge-declared"
    cands, skipped = load(args.dataset, args.split, args.limit)
    return run_benchmark(args, "best_of_n", cands, skipped, make_scorer, summarize_with(cands), format_table,
                         unit="questions", chunk_size=32)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "best_of_n")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
