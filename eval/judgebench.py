"""JudgeBench (Hub `ScalerLab/JudgeBench`): objectively labelled response pairs, judged in both orders.

    python -m eval.judgebench --model CKPT [--dataset ScalerLab/JudgeBench --split gpt | pairs.jsonl]
    accelerate launch --num_processes 8 -m eval.judgebench --model CKPT

Row schema (the Hub's splits `gpt` (350 pairs) and `claude` (270), and the repository's data/*.jsonl):
`pair_id`, `original_id`, `source`, `question`, `response_model`, `response_A`, `response_B`,
`label` ("A>B" or "B>A").

Official rules (ScalerLab/JudgeBench, utils/metrics.py compute_final_metrics with reverse_order, and
run_judge.py):
1. Every pair is judged twice: (A, B) and (B, A); the second decision is flipped back to A/B terms.
2. Per pair, a counter: +1 for each decision equal to the label, -1 for each equal to the flipped label, 0 for
   anything else (a tie, or a judgment that failed: None). The pair is correct when the counter > 0, incorrect
   when < 0, a tie at 0. So one right decision plus one tie or one failure is correct; one right and one wrong
   is not. Accuracy = correct / pairs (the official script prints it in percent).
3. Consistency counts reported beside it: both decisions right, both wrong, one right; inconsistent = the two
   decisions differ; nulls = pairs with a failed judgment.
4. Per-source accuracy: the same rule over the pairs of each `source`; and by the paper's categories
   (arXiv 2410.12784, Table 1): Knowledge = mmlu-pro-*, Reasoning = livebench-reasoning, Math =
   livebench-math, Coding = livecodebench.

Judges. A pairwise judge answers both orders (judges.base.PairVerdict): a decision is A>B when P(A better) >
0.5, B>A when < 0.5, a tie at 0.5 (judges.base.winner). A pointwise judge (a reward model) scores each
response once: A>B when score(A) > score(B), B>A when lower, a tie when equal; its decision is the same in
both orders (the official repository runs order-independent judges with --single_game, which is this). The
official reward-model judges turn an exact tie into "B>A"; here a tie is a tie and never correct (the
project's one tie rule). A pair whose two responses are the same text is a counted skip (`skipped_rows`: only
float noise could order them), where the official code scores it (its tie rule then says B>A): the `claude` split
has one such pair (livecodebench, labelled B>A), so its accuracy here is over 269 pairs, the official over 270.

Intervals and controls (rm_core.stats, rm_core.length, judges.conflicts): every accuracy (overall, per category,
per source) has a 95% interval in the summary's `ci95` tree (`ci95["accuracy"]`,
`ci95["sources"][name]["accuracy"]`): each is a share of right pairs, so Wilson's score interval. `length` is
the length control over the pairs (the labelled-better response as the chosen one, a pair counted right when its
official outcome is correct); `order` (pairwise judges) gives the accuracy in each order and the order-flip rate
by judges.conflicts' definitions, beside the official `inconsistent` count.
"""

from __future__ import annotations

import argparse

from eval.runner import add_judge_args, check_model, control_lines, pair_verdicts, run_benchmark, run_eval_command
from rm_core.data import (
    IDENTICAL_PAIR,
    DegeneratePair,
    RowError,
    SkipReport,
    check_unique_ids,
    data_file_name,
    load_rows,
    row_ids,
    same_response,
)
from rm_core.errors import cli_entry
from rm_core.length import chars
from rm_core.stats import Proportion, interval_text_at, interval_tree, percent

DEFAULT_DATASET = "ScalerLab/JudgeBench"
LABELS = ("A>B", "B>A")
TIE = "A=B"
CATEGORIES = {"Knowledge": "mmlu-pro", "Reasoning": "livebench-reasoning", "Math": "livebench-math",
              "Coding": "livecodebench"}


def flip(decision: str | None) -> str | None:
    return {"A>B": "B>A", "B>A": "A>B"}.get(decision, decision)


def category_of(source: str) -> str | None:
    return next((c for c, prefix in CATEGORIES.items() if str(source).startswith(prefix)), None)


def to_item(row: dict) -> dict:
    if row.get("label") not in LABELS:
        raise RowError(f"label must be 'A>B' or 'B>A', got {row.get('label')!r}")
    for key in ("question", "response_A", "response_B"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise RowError(f"{key} must be a non-empty string")
    if same_response(row["response_A"], row["response_B"]):
        raise DegeneratePair(IDENTICAL_PAIR)  # skipped and counted: only float noise could order them
    return {"id": str(row["pair_id"]), "source": str(row.get("source") or ""), "question": row["question"],
            "response_A": row["response_A"], "response_B": row["response_B"], "label": row["label"]}


def load(dataset: str = DEFAULT_DATASET, split: str = "gpt", sources=None, limit: int | None = None):
    rows = load_rows(dataset, split)
    located, skipped = [], SkipReport()
    for i, (row, rid) in enumerate(zip(rows, row_ids(rows, "pair_id"))):
        try:
            if not isinstance(row, dict):
                raise RowError("row is not a JSON object")
            located.append((to_item({**row, "pair_id": rid}), i))
        except (RowError, KeyError, TypeError, AttributeError) as err:
            skipped.add(str(err), f"row {i}")
    if sources:
        located = [(it, i) for it, i in located if it["source"] in set(sources)]
    check_unique_ids(((it["id"], i) for it, i in located), data_file_name(dataset, split))
    items = [it for it, _ in located]
    return (items[:limit] if limit else items), skipped


# ---------------------------------------------------------------- official scoring


def decision_from_p(p: float | None) -> str | None:
    """A decision from P(A better): A>B, B>A, a tie (judges.base.winner's tolerance), None for a failure."""
    from judges.base import winner

    if p is None:
        return None
    return {1: "A>B", -1: "B>A", 0: TIE}[winner(p)]


def decision_from_scores(score_a: float | None, score_b: float | None) -> str | None:
    if score_a is None or score_b is None:
        return None
    return "A>B" if score_a > score_b else "B>A" if score_b > score_a else TIE


def pair_outcome(decision1: str | None, decision2: str | None, label: str) -> int:
    """Rule 2: +1 correct, -1 incorrect, 0 tie; decisions already in A/B terms of the original order."""
    counter = sum((d == label) - (d == flip(label)) for d in (decision1, decision2))
    return (counter > 0) - (counter < 0)


def make_scorer(judge):
    def scorer(items: list[dict]) -> list[dict]:
        triples = [(it["question"], it["response_A"], it["response_B"]) for it in items]
        if judge.pointwise:
            scores = judge.score_pairs(triples)
            decisions = [(decision_from_scores(a, b),) * 2 for a, b in scores]
            extra = [{"score_A": a, "score_B": b} for a, b in scores]
        else:
            verdicts = pair_verdicts(judge, triples)
            # p_backward is P(A better) with A shown second: its decision is already in A/B terms (rule 1)
            decisions = [(decision_from_p(v.p_forward), decision_from_p(v.p_backward)) for v in verdicts]
            extra = [{"p_forward": v.p_forward, "p_backward": v.p_backward, "pairwise": True} for v in verdicts]
        rows = []
        for it, (d1, d2), ex in zip(items, decisions, extra):
            rows.append({"id": it["id"], "source": it["source"], "label": it["label"], "decision_forward": d1,
                         "decision_backward": d2, "outcome": pair_outcome(d1, d2, it["label"]),
                         "failed": d1 is None or d2 is None, "chars_A": chars(it["response_A"]),
                         "chars_B": chars(it["response_B"]), **ex})
        return rows
    return scorer


def _tally(rows: list[dict]) -> dict:
    n = len(rows)
    correct = sum(r["outcome"] > 0 for r in rows)
    both_right = sum(r["decision_forward"] == r["label"] and r["decision_backward"] == r["label"] for r in rows)
    both_wrong = sum(r["decision_forward"] != r["label"] and r["decision_backward"] != r["label"] for r in rows)
    return {"accuracy": correct / n, "n": n, "correct": correct,
            "incorrect": sum(r["outcome"] < 0 for r in rows), "tie": sum(r["outcome"] == 0 for r in rows),
            "both_correct": both_right, "both_incorrect": both_wrong, "some_correct": n - both_right - both_wrong,
            "inconsistent": sum(r["decision_forward"] != r["decision_backward"] for r in rows),
            "nulls": sum(r["decision_forward"] is None or r["decision_backward"] is None for r in rows)}


def units(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """The bootstrap's units: {source: {pair id: {"correct": 1 when the pair's outcome is correct, else 0}}}."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["source"], {})[str(r["id"])] = {"correct": float(r["outcome"] > 0)}
    return out


def statistics(units_by_source: dict) -> dict[tuple, object]:
    """Every accuracy of `summarize` from the (resampled) per-source accuracies, keyed by its path: a pooled one
    is the per-source accuracies weighted by the sources' sizes (rm_core.stats)."""
    sizes = {s: len(u) for s, u in units_by_source.items()}

    def pooled(names):
        return Proportion("correct", {s: sizes[s] for s in names})

    stats: dict[tuple, object] = {("accuracy",): pooled(sizes), ("overall", "accuracy"): pooled(sizes)}
    for s in units_by_source:
        stats[("sources", s, "accuracy")] = pooled([s])
    for c in CATEGORIES:
        mine = [s for s in units_by_source if category_of(s) == c]
        if mine:
            stats[("categories", c, "accuracy")] = pooled(mine)
    return stats


def _chosen_first(r: dict):
    """The pair's verdict with the CHOSEN (labelled better) response as a: for label B>A, P(B better) with B shown
    first is 1 - p_backward and with B shown second 1 - p_forward."""
    from judges.base import PairVerdict

    if r["label"] == "A>B":
        return PairVerdict(r["p_forward"], r["p_backward"])
    flip_p = [None if p is None else 1.0 - p for p in (r["p_backward"], r["p_forward"])]
    return PairVerdict(*flip_p)


def length_block(rows: list[dict]) -> dict | None:
    """rm_core.length.length_control over the pairs (the labelled-better response as the chosen one; a pair's
    value is 1 when its official outcome is correct); None when the rows carry no lengths."""
    from rm_core.length import length_control, pair_item

    if not rows or not all("chars_A" in r for r in rows):
        return None
    pairwise = any(r.get("pairwise") for r in rows)
    items = [pair_item(*((r["chars_A"], r["chars_B"]) if r["label"] == "A>B" else (r["chars_B"], r["chars_A"])),
                       float(r["outcome"] > 0)) for r in rows]
    responses = None if pairwise else [x for r in rows for x in ((r.get("score_A"), r["chars_A"]),
                                                                     (r.get("score_B"), r["chars_B"]))]
    return length_control(items, responses, pairwise=pairwise, strata=[r["source"] for r in rows])


def order_block(rows: list[dict]) -> dict | None:
    """judges.conflicts.order_report over the pairs a pairwise judge answered (chosen = the labelled-better one)."""
    from judges.conflicts import order_report

    if not rows or not all("p_forward" in r for r in rows):
        return None
    return order_report([_chosen_first(r) for r in rows], strata=[r["source"] for r in rows])


def summarize(rows: list[dict]) -> dict:
    if not rows:
        return {"accuracy": None, "overall": None, "sources": {}, "categories": {}}
    sources = {s: _tally([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})}
    categories = {}
    for c in CATEGORIES:
        mine = [r for r in rows if category_of(r["source"]) == c]
        if mine:
            categories[c] = _tally(mine)
    overall = _tally(rows)
    by_unit = units(rows)
    return {"accuracy": overall["accuracy"], "overall": overall, "categories": categories, "sources": sources,
            "ci95": interval_tree(by_unit, statistics(by_unit)), "length": length_block(rows),
            "order": order_block(rows)}


def format_table(summary: dict) -> str:
    width = max([len("source")] + [len(s) for s in summary["sources"]])
    lines = [f"{'source':<{width}}  {'n':>4}  {'acc %':>6}  {'95% CI':<12}  inconsistent", "-" * (width + 42)]
    rows = ([(name, t, "categories") for name, t in summary["categories"].items()] + [("", None, "")]
            + [(name, t, "sources") for name, t in summary["sources"].items()])
    for name, t, where in rows:
        if t is None:
            lines.append("")
            continue
        lines.append(f"{name:<{width}}  {t['n']:>4}  {percent(t['accuracy']):>6}  "
                     f"{interval_text_at(summary, (where, name, 'accuracy')):<12}  {t['inconsistent']}")
    if summary["overall"]:
        o = summary["overall"]
        lines.append(f"\nAccuracy: {percent(o['accuracy'])} {interval_text_at(summary, ('accuracy',))} ({o['correct']}/{o['n']}; "
                     f"ties {o['tie']}, inconsistent {o['inconsistent']}, with a failed judgment {o['nulls']})")
        lines.append("(95% CI: Wilson score interval of the share of right pairs)")
    lines.extend(control_lines(summary))
    return "\n".join(lines)


def headline_paths(summary: dict) -> dict[str, tuple]:
    """The numbers a report compares side by side, each with the path of the number (and of its interval)."""
    out = {"accuracy": ("accuracy",)}
    out.update({c: ("categories", c, "accuracy") for c in summary["categories"]})
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_judgebench", description=__doc__.split("\n\n")[0])
    add_judge_args(p)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id or a local file in the Hub's row schema")
    p.add_argument("--split", default="gpt", help="Hub split: gpt or claude")
    p.add_argument("--sources", nargs="*", default=None)
    return p


def evaluate(args) -> dict | None:
    check_model(args)  # before the data
    items, skipped = load(args.dataset, args.split, args.sources, args.limit)
    return run_benchmark(args, "judgebench", items, skipped, make_scorer, summarize, format_table,
                         unit="pairs", chunk_size=64)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "judgebench")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
