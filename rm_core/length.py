"""Length control: ONE definition of every length figure, used by every evaluator (eval/*.py).

Length is counted in characters of the response text (`len(text)`): the same for every judge, no tokenizer.

An item is a set of candidate responses, some correct, with the judge's value on it: a pair (chosen, rejected)
with 1/0 for right/wrong; a RewardBench 2 prompt (chosen[0] correct, the official 1/k for a k-way tie at the
top); a best-of-N question (its correct solutions; 1/0 for the judge's pick); an RM-Bench cell (chosen style i vs
rejected style j). Over the items:

- accuracy: the mean of the judge's values (over all items pooled: not a benchmark's official weighting).
- shorter_wins / longer_wins: the accuracy of the rule "the shortest (longest) candidate wins", scored like the
  judge: per item the share of correct candidates among those of minimal (maximal) length. On a pair: 1 when
  the chosen response is the shorter (longer), 0 when it is the longer (shorter), 0.5 when both have the same
  length (a coin flip's expected accuracy), so shorter_wins + longer_wins = 1 on pairs. With N candidates it is
  "the shortest (longest) of the N wins".
- chosen_longer_share / chosen_shorter_share: the share of items whose correct candidates are longer (shorter)
  on average than the incorrect ones (a pair: chosen longer than rejected). Items where they are as long, or
  that have no correct or no incorrect candidate, are in neither (`equal_length_share` is the rest).
- accuracy_chosen_longer / accuracy_chosen_shorter: the judge's accuracy over those items, and
  length_balanced_accuracy = their mean: the accuracy the judge would have were the correct response as often
  the longer as the shorter. None when either group is empty.
- spearman_score_length: the Spearman rank correlation of the judge's score with the response's length, over
  every scored response (each once, all items pooled; failed scores left out). A pairwise judge gives no score
  per response: None there, and `score_length_note` says why.

Every accuracy and share has a 95% interval in `ci95` (rm_core.stats): a seeded bootstrap over the items, or over
clusters of items that move together (RM-Bench's nine cells of one prompt), resampled within strata (the
benchmark's subsets) when given, each figure a ratio of totals over all items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rm_core.stats import bootstrap_statistics, ratio, summed_units, total

UNIT = "characters"
PAIRWISE_NOTE = "a pairwise judge gives no score per response: no correlation of score with length"
FIGURES = ["accuracy", "shorter_wins", "longer_wins", "chosen_longer_share", "chosen_shorter_share",
           "accuracy_chosen_longer", "accuracy_chosen_shorter", "length_balanced_accuracy"]


def chars(text) -> int:
    """The length of a response: characters of its text (a message list: its last message's content)."""
    if isinstance(text, list) and text and isinstance(text[-1], Mapping):
        text = text[-1].get("content", "")
    return len(str(text))


def pair_item(chosen_length: int, rejected_length: int, value: float) -> dict:
    """A pair as a length-control item: candidates (chosen, rejected), the chosen correct."""
    return {"lengths": [chosen_length, rejected_length], "correct": [True, False], "value": float(value)}


def _extreme_share(lengths: Sequence[int], correct: Sequence[bool], pick) -> float:
    target = pick(lengths)
    at = [c for n, c in zip(lengths, correct) if n == target]
    return sum(at) / len(at)


def _direction(lengths: Sequence[int], correct: Sequence[bool]) -> int:
    """+1: the correct candidates are longer on average than the incorrect ones, -1 shorter, 0 neither."""
    right = [n for n, c in zip(lengths, correct) if c]
    wrong = [n for n, c in zip(lengths, correct) if not c]
    if not right or not wrong:
        return 0
    diff = sum(right) / len(right) - sum(wrong) / len(wrong)
    return (diff > 0) - (diff < 0)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):  # ties share their average rank
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end - 1) / 2
            start = end
    return ranks


def spearman(scores: Sequence[float], lengths: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties at their average rank); None with fewer than 3 points or a constant side."""
    x, y = np.asarray(scores, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    if len(x) < 3:
        return None
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return None if denom == 0 else float((rx * ry).sum() / denom)


def length_control(items: Sequence[Mapping], responses: Sequence[tuple[float | None, int]] | None = None,
                   clusters: Sequence | None = None, pairwise: bool = False,
                   strata: Sequence | None = None) -> dict | None:
    """The length figures of the module docstring. items: {"lengths": [int per candidate], "correct": [bool per
    candidate], "value": the judge's value on the item}; responses: (score, length) of every scored response for
    the correlation (None for a pairwise judge: pass pairwise=True); clusters: one key per item for items that
    are resampled together (default: each item alone); strata: one key per item (its subset), clusters being
    resampled within their stratum as the benchmark's own intervals are (default: one stratum). None when there
    are no items."""
    items = list(items)
    if not items:
        return None
    rows = []
    for item in items:
        lengths, correct, value = list(item["lengths"]), [bool(c) for c in item["correct"]], float(item["value"])
        if len(lengths) != len(correct) or len(lengths) < 2:
            raise ValueError("a length-control item needs two or more candidates, each with a correct flag")
        direction = _direction(lengths, correct)
        rows.append({"n": 1.0, "value": value, "shorter": _extreme_share(lengths, correct, min),
                     "longer": _extreme_share(lengths, correct, max), "is_longer": float(direction > 0),
                     "is_shorter": float(direction < 0), "value_longer": value * (direction > 0),
                     "value_shorter": value * (direction < 0)})
    columns, sizes = summed_units(rows, clusters, strata)

    def col(name, over="n"):
        return lambda m: ratio(total(m, sizes, name), total(m, sizes, over))

    def conditional(m, which):
        return col(f"value_{which}", f"is_{which}")(m)

    statistics = {"accuracy": col("value"), "shorter_wins": col("shorter"), "longer_wins": col("longer"),
                  "chosen_longer_share": col("is_longer"), "chosen_shorter_share": col("is_shorter"),
                  "accuracy_chosen_longer": lambda m: conditional(m, "longer"),
                  "accuracy_chosen_shorter": lambda m: conditional(m, "shorter"),
                  "length_balanced_accuracy": lambda m: (conditional(m, "longer") + conditional(m, "shorter")) / 2}
    results = bootstrap_statistics(columns, statistics)
    out: dict = {"unit": UNIT, "items": len(items),
                 "items_chosen_longer": int(sum(r["is_longer"] for r in rows)),
                 "items_chosen_shorter": int(sum(r["is_shorter"] for r in rows))}
    out.update({name: results[name]["value"] for name in FIGURES})
    out["equal_length_share"] = (len(items) - out["items_chosen_longer"] - out["items_chosen_shorter"]) / len(items)
    if pairwise or responses is None:
        out["spearman_score_length"] = None
        out["score_length_note"] = PAIRWISE_NOTE if pairwise else "no per-response scores given"
    else:
        scored = [(s, n) for s, n in responses if s is not None and np.isfinite(s)]
        out["spearman_score_length"] = spearman([s for s, _ in scored], [n for _, n in scored])
        out["spearman_responses"] = len(scored)
    out["ci95"] = {name: None if results[name]["ci95"] is None or results[name]["value"] is None
                   else list(results[name]["ci95"]) for name in FIGURES}
    return out


def _fig(block: Mapping, name: str) -> str:
    from rm_core.stats import percent_with_ci

    return percent_with_ci(block.get(name), (block.get("ci95") or {}).get(name))


def format_length(block: Mapping | None) -> list[str]:
    """Lines for an evaluator's printed table: the length figures in percent with their intervals."""
    if not block:
        return []
    n = block["items"]
    lines = [f"length control (length in {block.get('unit', UNIT)}; {n} items; 95% CI in brackets):",
             f"  judge accuracy, all items pooled   {_fig(block, 'accuracy')}",
             f"  shorter wins (length baseline)     {_fig(block, 'shorter_wins')}",
             f"  longer wins                        {_fig(block, 'longer_wins')}",
             f"  chosen is the longer               {_fig(block, 'chosen_longer_share')}"
             f" of items ({block['items_chosen_longer']}; shorter: {block['items_chosen_shorter']})",
             f"  accuracy where chosen is longer    {_fig(block, 'accuracy_chosen_longer')}",
             f"  accuracy where chosen is shorter   {_fig(block, 'accuracy_chosen_shorter')}",
             f"  length-balanced accuracy           {_fig(block, 'length_balanced_accuracy')}"]
    rho = block.get("spearman_score_length")
    lines.append("  Spearman(score, length)            "
                 + (f"{rho:+.3f} over {block.get('spearman_responses')} responses" if rho is not None
                    else f"n/a ({block.get('score_length_note') or 'constant scores or lengths'})"))
    return lines
