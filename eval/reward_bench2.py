"""RewardBench 2 (Hub `allenai/reward-bench-2`): best-of-N accuracy per prompt and the Ties score, officially scored.

    python -m eval.reward_bench2 --model CKPT [--dataset allenai/reward-bench-2 | rows.jsonl] [--output_dir DIR]
    accelerate launch --num_processes 8 -m eval.reward_bench2 --model CKPT       # prompts split over processes

Row schema (the Hub's, and local JSON/JSONL/parquet files in it): `id`, `prompt` (a string, or messages),
`chosen` (list of strings), `rejected` (list of strings), `num_correct`, `subset`. Each response is scored
once (a pairwise judge ranks a prompt's responses with its default aggregation: judges.base.Judge.rank).

Official rules (allenai/reward-bench, commit 05a9005; the source of each named):
1. Best-of-N, every subset but Ties (rewardbench/utils.py, reroll_and_score_dataset, "penalty for ties"): the
   scores are chosen + rejected in that order; a prompt scores 1/#(responses at the maximum) when the FIRST
   score (chosen[0]) is at the maximum, else 0. So a strict win is 1, a k-way tie at the top is 1/k.
   A subset's score is the mean over its prompts (scripts/run_v2.py: sum(results) / n).
2. Ties (rewardbench/utils.py, _compute_prompt_stats + process_single_model): ids are "ref:<k>" (one correct
   answer) or "tied:<k>" (several correct answers); the first `num_correct` scores are the correct answers.
   Per prompt: accurate = min(correct) - max(incorrect) > 0; correct_incorrect_margin = min(correct) -
   max(incorrect); different_correct_margin = max(correct) - min(correct) (None with one correct answer).
   ref_accuracy, tied_accuracy = means of `accurate` over ref / tied prompts. Over the prompt ids k that have
   both a ref and a tied prompt: correctness_preferred = mean(tied margin > tied spread);
   correctness_preferred_hard = mean(min(ref margin, tied margin) > tied spread); margin score =
   mean(tanh(min(ref margin, tied margin) / tied spread - 1)), a NaN (0/0) counted 0.
   Ties = 0.30 tied_accuracy + 0.30 ref_accuracy + 0.20 correctness_preferred
          + 0.20 correctness_preferred_hard + 0.01 margin score.
3. Overall score = the mean of the six subsets Factuality, Precise IF, Math, Safety, Focus, Ties (the
   leaderboard's "Score"; dataset card of allenai/reward-bench-2).

Failures (the official code has none: its RMs always return a number). A response the judge could not score
never wins and never ties: a prompt whose chosen[0] failed scores 0, other failed responses are left out of the
maximum. A Ties prompt with any failed response is not accurate, fails both margin tests and adds 0 to the
margin score. Every failed prompt is flagged and counted (`failed_prompts`); a NaN or infinite score is a failed
one (officially a +inf chosen score would win). Deliberate
differences: a score needs its data (Ties is None without a ref/tied pair; the overall score is None unless all six
subsets are present, with `score_present_subsets` the mean of those present); a row with an empty response, or a
rejected response equal to a chosen one, is a counted skip (`skipped_rows`), where the official code scores it (an
identical pair then shares the top: 1/2 credit for [1, 1, 0, 0]), so the denominator leaves such rows out.

Intervals and length (rm_core.stats, rm_core.length): every score has a 95% interval in the summary's `ci95` tree
(`ci95["subsets"][name]["score"]`, `ci95["score"]`, `ci95["ties"][part]`), Wilson's for a best-of-4 subset's
share of right prompts where every result is 0 or 1 (a tie at the top gives 1/k: then the bootstrap), otherwise a seeded bootstrap over the prompts resampled within each subset (Ties: over its prompt ids, a ref:k and tied:k row together), the six subsets then
combined as the official score does. `length` is the length control over the best-of-N subsets (Ties left out):
"shorter wins" is the accuracy of picking the SHORTEST of a prompt's responses (ties at the shortest shared as
the official rule shares a tie at the top), "longer wins" the longest; "chosen longer" = chosen[0] longer than the
mean of the rejected ones.
"""

from __future__ import annotations

import argparse
import math

from eval.runner import add_judge_args, check_model, listwise_scores, mean, run_benchmark, run_eval_command
from rm_core.data import (
    IDENTICAL_PAIR,
    DegeneratePair,
    RowError,
    SkipReport,
    check_unique_ids,
    data_file_name,
    load_rows,
    prompt_messages,
    row_ids,
    same_response,
)
from rm_core.errors import cli_entry
from rm_core.length import chars
from rm_core.stats import Proportion, interval_text_at, interval_tree, percent

DEFAULT_DATASET = "allenai/reward-bench-2"
SUBSETS = ["Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"]
TIES = "ties"
TIES_WEIGHTS = {"tied_accuracy": 0.30, "ref_accuracy": 0.30, "correctness_preferred": 0.20,
                "correctness_preferred_hard": 0.20, "correctness_margin_score": 0.01}


# ---------------------------------------------------------------- data


def _prompt(value):
    """A row's prompt: a non-empty string as it is, or checked messages (rm_core.data.prompt_messages)."""
    if not isinstance(value, (str, list)):
        raise RowError("prompt must be a non-empty string or a list of messages")
    messages = prompt_messages(value)
    return value if isinstance(value, str) else messages


def official_subset(name) -> str:
    """A row's subset name, once, as it is read: one of SUBSETS matched case-insensitively (surrounding whitespace
    ignored) is spelled as the official name ("factuality" -> "Factuality"), so rows of one subset in two spellings
    fall into one group; any other name is kept as given."""
    text = str(name or "")
    return {s.lower(): s for s in SUBSETS}.get(text.strip().lower(), text)


def to_item(row: dict) -> dict:
    """A RewardBench 2 row -> {"id", "subset", "prompt", "responses" (chosen + rejected), "num_correct"}."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise RowError(f"{key} must be a list of strings")
    if not chosen:
        raise RowError("chosen is empty")
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if any(not r.strip() for r in value):
            raise RowError(f"{key} is an empty response")  # as eval_reward_bench: skipped and counted, never scored
    responses = list(chosen) + list(rejected)
    num_correct = row.get("num_correct", len(chosen))
    if not isinstance(num_correct, int) or isinstance(num_correct, bool) or num_correct != len(chosen):
        # the scoring takes the first num_correct responses as the correct ones: any other count would score a
        # chosen answer as incorrect (or a rejected one as correct)
        raise RowError(f"num_correct must equal the number of chosen responses ({len(chosen)}), got {num_correct!r}")
    if len(responses) < 2:
        raise RowError("fewer than two responses")
    if any(same_response(c, r) for c in chosen for r in rejected):
        # a correct and an incorrect answer only float noise could order: skipped and counted
        raise DegeneratePair(f"{IDENTICAL_PAIR} (a rejected response equals a chosen one)")
    subset = official_subset(row.get("subset"))
    if subset.lower() == TIES:
        _ties_key(str(row.get("id")))
        if num_correct == len(responses):
            raise RowError("a Ties prompt needs at least one incorrect answer")
    return {"id": str(row.get("id")), "subset": subset, "prompt": _prompt(row.get("prompt")),
            "responses": responses, "num_correct": num_correct}


def load(dataset: str = DEFAULT_DATASET, split: str = "test", subsets=None, limit: int | None = None):
    rows = load_rows(dataset, split)
    located, skipped = [], SkipReport()
    for i, (row, rid) in enumerate(zip(rows, row_ids(rows))):
        try:
            if not isinstance(row, dict):
                raise RowError("row is not a JSON object")
            located.append((to_item({**row, "id": rid}), i))
        except (RowError, KeyError, TypeError, AttributeError) as err:
            skipped.add(str(err), f"row {i}")
    if subsets:
        wanted = {official_subset(s) for s in subsets}
        located = [(it, i) for it, i in located if it["subset"] in wanted]
    check_unique_ids(((it["id"], i) for it, i in located), data_file_name(dataset, split))
    # Ties rows pair by int(k) (_ties_key): "ref:01" and "ref:1" are one prompt, one row would overwrite the other;
    # the error names the id in that form ("ref:1")
    check_unique_ids(((":".join(_ties_key(it["id"])), i) for it, i in located if it["subset"].lower() == TIES),
                     data_file_name(dataset, split))
    items = [it for it, _ in located]
    return (items[:limit] if limit else items), skipped


# ---------------------------------------------------------------- official scoring


def best_of_n_result(scores: list[float | None]) -> float:
    """Rule 1: 1/#tied at the maximum when scores[0] is at the maximum, else 0; failed (None) scores never count."""
    if scores[0] is None or math.isnan(scores[0]):
        return 0.0
    valid = [s for s in scores if s is not None and not math.isnan(s)]
    top = max(valid)
    return 1.0 / sum(s == top for s in valid) if scores[0] == top else 0.0


def _ties_key(item_id: str) -> tuple[str, str]:
    kind, sep, prompt_id = item_id.partition(":")
    if not sep or kind not in ("ref", "tied"):
        raise RowError(f"a Ties id is 'ref:<k>' or 'tied:<k>', got {item_id!r}")
    try:  # the official code pairs ref and tied prompts by int(k): "ref:01" and "tied:1" are one prompt
        return kind, str(int(prompt_id))
    except ValueError:  # not a number (the official code would stop): paired as written
        return kind, prompt_id


def prompt_stats(scores: list[float | None], num_correct: int) -> tuple[bool, float | None, float | None]:
    """(accurate, different_correct_margin, correct_incorrect_margin) of one Ties prompt; a prompt with a failed
    score is (False, None, None)."""
    if any(s is None or math.isnan(s) for s in scores):
        return False, None, None
    correct, incorrect = scores[:num_correct], scores[num_correct:]
    spread = max(correct) - min(correct) if len(correct) > 1 else None
    margin = min(correct) - max(incorrect)
    return margin > 0, spread, margin


def _tanh_ratio(margin: float, spread: float) -> float:
    """tanh(margin / spread - 1) with numpy's division semantics: x/0 is +-inf, 0/0 is NaN -> counted 0."""
    if spread == 0:
        return 0.0 if margin == 0 else math.copysign(1.0, margin)
    return math.tanh(margin / spread - 1)


TIES_COLUMNS = {"tied_accuracy": "tied", "ref_accuracy": "ref", "correctness_preferred": "preferred",
                "correctness_preferred_hard": "preferred_hard", "correctness_margin_score": "margin"}


def ties_units(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Rule 2 per prompt id k: {k: {"ref": accurate (1/0) of ref:k, "tied": of tied:k (None where that row is
    absent), and where both are there "preferred", "preferred_hard", "margin"}}, k in sorted order. The Ties
    score is the weighted sum of these columns' means (`ties_score`); the bootstrap resamples prompt ids."""
    ref, tied = {}, {}
    for r in rows:
        kind, prompt_id = _ties_key(r["id"])
        (ref if kind == "ref" else tied)[prompt_id] = prompt_stats(r["scores"], r["num_correct"])
    out = {}
    for k in sorted(set(ref) | set(tied)):
        unit = {"ref": float(ref[k][0]) if k in ref else None, "tied": float(tied[k][0]) if k in tied else None}
        if k in ref and k in tied:
            _, spread, tied_margin = tied[k]
            ref_margin = ref[k][2]
            if spread is None or tied_margin is None or ref_margin is None:  # a failure (or one correct answer)
                unit.update(preferred=0.0, preferred_hard=0.0, margin=0.0)
            else:
                hard = min(ref_margin, tied_margin)
                unit.update(preferred=float(tied_margin > spread), preferred_hard=float(hard > spread),
                            margin=_tanh_ratio(hard, spread))
        out[k] = unit
    return out


def ties_combine(parts: dict) -> float | None:
    """The Ties score from its five parts (numbers, or arrays of bootstrap replicates); None if one is missing."""
    if any(parts.get(k) is None for k in TIES_WEIGHTS):
        return None
    return sum(TIES_WEIGHTS[k] * parts[k] for k in TIES_WEIGHTS)


def ties_score(rows: list[dict]) -> dict:
    """Rule 2 on rows {"id": "ref:k" | "tied:k", "scores", "num_correct"}."""
    units = ties_units(rows)
    parts = {name: mean([u.get(col) for u in units.values()]) for name, col in TIES_COLUMNS.items()}
    return {"score": ties_combine(parts), **parts, "ref_prompts": sum(u["ref"] is not None for u in units.values()),
            "tied_prompts": sum(u["tied"] is not None for u in units.values()),
            "matched_prompts": sum("preferred" in u for u in units.values())}


def summarize(rows: list[dict]) -> dict:
    by_subset: dict[str, list[dict]] = {}
    for r in rows:
        by_subset.setdefault(r["subset"], []).append(r)
    subsets, ties = {}, None
    order = {name.lower(): i for i, name in enumerate(SUBSETS)}
    for name in sorted(by_subset, key=lambda s: (order.get(s.lower(), len(SUBSETS)), s)):
        group = by_subset[name]
        failed = sum(bool(r["failed"]) for r in group)
        if name.lower() == TIES:
            ties = ties_score(group)
            subsets[name] = {"score": ties["score"], "n": len(group), "failed": failed}
        else:
            subsets[name] = {"score": mean([r["result"] for r in group]), "n": len(group), "failed": failed}
    present = {name.lower(): v["score"] for name, v in subsets.items()}
    missing = [s for s in SUBSETS if s.lower() not in present or present[s.lower()] is None]
    notes = []
    if missing:
        notes.append(f"score is None: no score for subset(s) {', '.join(missing)}")
    unknown = [s for s in subsets if s.lower() not in order]
    if unknown:
        notes.append(f"subsets outside RewardBench 2, not in the score: {', '.join(unknown)}")
    by_unit = units(rows)
    length = length_block(rows)
    if length is not None:
        notes.append("length control over the best-of-N subsets (Ties left out: several correct answers, its own "
                     "rule); shorter/longer wins = the shortest/longest of a prompt's responses wins")
    return {
        "subsets": subsets,
        "score": None if missing else mean([present[s.lower()] for s in SUBSETS]),
        "score_present_subsets": mean([present[s.lower()] for s in SUBSETS if s.lower() in present]),
        "ties": ties,
        "failed_prompts": sum(bool(r["failed"]) for r in rows),
        "notes": notes,
        "ci95": interval_tree(by_unit, statistics(by_unit)),
        "length": length,
    }


def units(rows: list[dict]) -> dict[str, dict[str, dict[str, float | None]]]:
    """The bootstrap's units: {subset: {prompt id: {"result": the official best-of-N value}}}; Ties: {k: its
    ties_units columns} (its ref:k and tied:k rows move together)."""
    by_subset: dict[str, list[dict]] = {}
    for r in rows:
        by_subset.setdefault(r["subset"], []).append(r)
    return {name: ties_units(group) if name.lower() == TIES else
            {str(r["id"]): {"result": float(r["result"])} for r in group} for name, group in by_subset.items()}


def statistics(units_by_subset: dict) -> dict[tuple, object]:
    """Every number of `summarize` from the (resampled) column means, keyed by its path (rm_core.stats)."""
    def subset_score(m, name):
        if name.lower() == TIES:
            return ties_combine({part: m[name].get(col) for part, col in TIES_COLUMNS.items()})
        return m[name]["result"]

    names = {name.lower(): name for name in units_by_subset}
    stats: dict[tuple, object] = {
        ("subsets", name, "score"): (lambda m, name=name: subset_score(m, name)) if name.lower() == TIES
        else Proportion("result", {name: len(units_by_subset[name])}) for name in units_by_subset}
    if TIES in names:
        for part, col in TIES_COLUMNS.items():
            stats[("ties", part)] = lambda m, col=col: m[names[TIES]].get(col)

    def overall(m, require_all):
        scores = [subset_score(m, names[s.lower()]) for s in SUBSETS if s.lower() in names]
        if require_all and (len(scores) < len(SUBSETS) or any(v is None for v in scores)):
            return None
        scores = [v for v in scores if v is not None]
        return sum(scores) / len(scores) if scores else None

    stats[("score",)] = lambda m: overall(m, True)
    stats[("score_present_subsets",)] = lambda m: overall(m, False)
    return stats


def length_block(rows: list[dict]) -> dict | None:
    """rm_core.length.length_control over the prompts of every subset but Ties (chosen[0] the correct response,
    the value the official best-of-N one); None when the rows carry no lengths."""
    from rm_core.length import length_control

    rows = [r for r in rows if r["subset"].lower() != TIES]
    if not rows or not all("lengths" in r for r in rows):
        return None
    pairwise = any(r.get("pairwise") for r in rows)
    items = [{"lengths": r["lengths"], "correct": [True] + [False] * (len(r["lengths"]) - 1), "value": r["result"]}
             for r in rows]
    responses = None if pairwise else [x for r in rows for x in zip(r["scores"], r["lengths"])]
    return length_control(items, responses, pairwise=pairwise, strata=[r["subset"] for r in rows])


def make_scorer(judge):
    def scorer(items: list[dict]) -> list[dict]:
        all_scores = listwise_scores(judge, [(it["prompt"], it["responses"]) for it in items])
        rows = []
        for it, scores in zip(items, all_scores):
            # a NaN is a failed score (a judge's own check makes it None already; this holds for any other)
            scores = [None if s is None or not math.isfinite(s) else s for s in scores]
            failed = any(s is None for s in scores)
            ties = it["subset"].lower() == TIES
            row = {"id": it["id"], "subset": it["subset"], "num_correct": it["num_correct"],
                   "scores": scores, "result": None if ties else best_of_n_result(scores), "failed": failed,
                   "lengths": [chars(r) for r in it["responses"]]}
            if not judge.pointwise:
                row["pairwise"] = True
            rows.append(row)
        return rows
    return scorer


def format_table(summary: dict) -> str:
    lines = [f"{'subset':<12}  {'n':>5}  {'score %':>7}  {'95% CI':<12}  failed", "-" * 50]
    for name, row in summary["subsets"].items():
        lines.append(f"{name:<12}  {row['n']:>5}  {percent(row['score']):>7}  "
                     f"{interval_text_at(summary, ('subsets', name, 'score')):<12}  {row['failed']}")
    lines.append(f"\nScore (mean of the six subsets): {percent(summary['score'])}  {interval_text_at(summary, ('score',))}")
    lines.append("(95% CI: Wilson for a best-of-4 subset; Ties and the score: bootstrap over the prompts within each subset)")
    from rm_core.length import format_length

    lines.extend(format_length(summary.get("length")))
    lines.extend(f"note: {n}" for n in summary["notes"])
    return "\n".join(lines)


def headline_paths(summary: dict) -> dict[str, tuple]:
    """The numbers a report compares side by side, each with the path of the number (and of its interval)."""
    # the official score needs all six subsets: without them the mean of those present, under its own name (it was
    # shown and pushed as "score")
    out = {"score": ("score",)} if summary["score"] is not None else {
        "score (present subsets)": ("score_present_subsets",)}
    out.update({name: ("subsets", name, "score") for name in summary["subsets"]})
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_reward_bench2", description=__doc__.split("\n\n")[0])
    add_judge_args(p)
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id or a local file in the Hub's row schema")
    p.add_argument("--split", default="test")
    p.add_argument("--subsets", nargs="*", default=None)
    return p


def evaluate(args) -> dict | None:
    check_model(args)  # before the data
    items, skipped = load(args.dataset, args.split, args.subsets, args.limit)
    return run_benchmark(args, "reward_bench2", items, skipped, make_scorer, summarize, format_table,
                         unit="prompts", chunk_size=64)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "reward_bench2")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
