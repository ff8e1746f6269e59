"""Where a judge contradicts itself: position bias, order-inconsistent pairs and intransitive triples, per subset.

Position bias has ONE definition of each rate in the project, here (`OrderStats`, `one_order_accuracies`); the
LLM judge's `order_stats`, the pair-PM recipes' held-out evaluations, the decision tree's agreement report and the
bench scripts all compute them with these. Over pairs judged in both orders (judges.base.PairVerdict: p_forward
= P(a better) with a shown first, p_backward = P(a better) with a shown second):

- decided pair: both orders gave a finite verdict. A pair where either order failed is in no position rate (it
  is counted as a failure beside them).
- order_inconsistency_rate = order-inconsistent decided pairs / decided pairs: the winner (judges.base.winner:
  a, b, or a tie within 1e-6 of 0.5) changes when the two responses swap places. order consistency is 1 - it.
- position_a_rate = the mean, over both orders of every decided pair, of P(the response shown first wins): 0.5
  for a judge with no position preference, 1.0 for one that always answers "A".
- one-order accuracies (a = the chosen response), over ALL pairs, a failure or a tie counting wrong (a tie:
  within judges.base.winner's 1e-6 of 0.5, as the evaluators read pairwise verdicts): chosen first = p_forward
  wins, chosen second = p_backward wins, both orders = their mean wins.

`order_report(verdicts)` puts them together for the evaluators (eval/reward_bench.py, rm_bench.py, judgebench.py):
the three one-order accuracies, the order-flip rate (= order_inconsistency_rate) and position_a_rate, each with a
95% bootstrap interval over the pairs (rm_core.stats; clusters of pairs resampled together where given).

JudgeBench's `inconsistent` count (eval/judgebench.py) is that benchmark's own official rule (decisions compared
as strings, a failed one included) and stays with its scoring.

The detector (`detect_conflicts`, `python -m judges.conflicts`):
- Order-inconsistent pair: as above. Judges that see both orders themselves (a prompted LLM or pair-PM judge:
  `judge_pairs`) report both verdicts; any other judge is asked `compare(a, b)` and `compare(b, a)`. A pointwise
  judge can never be order-inconsistent or intransitive: the detector says so with zeros, it does not skip it.
- Intransitive triple: among three responses to one prompt, a beats b, b beats c and c beats a (by the
  order-averaged probability). Only triples whose three pairs were all decided (no failure, no tie) are
  counted, and the rate is over those.
Failed comparisons are counted, never guessed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from judges.base import Judge, PairVerdict, chosen_wins, winner


@dataclass
class OrderStats:
    """Position bias over pairs judged in both orders, with the definitions of the module docstring: `pairs`
    counts the decided pairs only, `inconsistent` those whose winner changes with the order, `first_wins` the
    sum over both orders of P(the response shown first wins). Accumulates over calls (`add`)."""

    pairs: int = 0
    inconsistent: int = 0
    first_wins: float = 0.0

    def add(self, verdict: PairVerdict) -> bool:
        """Count one pair; False (nothing counted) when either order failed."""
        if verdict.p is None:
            return False
        self.pairs += 1
        self.inconsistent += not verdict.consistent
        self.first_wins += verdict.p_forward + (1.0 - verdict.p_backward)  # backward: a is shown second
        return True

    @classmethod
    def of(cls, verdicts: Iterable[PairVerdict]) -> OrderStats:
        stats = cls()
        for verdict in verdicts:
            stats.add(verdict)
        return stats

    @property
    def inconsistency_rate(self) -> float | None:
        return self.inconsistent / self.pairs if self.pairs else None

    @property
    def consistency_rate(self) -> float | None:
        return (self.pairs - self.inconsistent) / self.pairs if self.pairs else None

    @property
    def position_a_rate(self) -> float | None:
        return self.first_wins / (2 * self.pairs) if self.pairs else None

    def as_dict(self) -> dict:
        return {"pairs": self.pairs, "inconsistent": self.inconsistent,
                "inconsistency_rate": self.inconsistency_rate, "position_a_rate": self.position_a_rate}


def one_order_accuracies(verdicts: Sequence[PairVerdict]) -> dict[str, float]:
    """{"both_orders", "chosen_first", "chosen_second"}: accuracies of verdicts whose a is the chosen response,
    over every pair (see the module docstring)."""
    n = len(verdicts)
    if not n:
        raise ValueError("no pairs to score")

    def share(ps) -> float:
        return sum(chosen_wins(p) for p in ps) / n

    return {"both_orders": share(v.p for v in verdicts), "chosen_first": share(v.p_forward for v in verdicts),
            "chosen_second": share(v.p_backward for v in verdicts)}


ORDER_FIGURES = ["both_orders", "chosen_first", "chosen_second", "order_flip_rate", "position_a_rate"]


def order_report(pair_verdicts: Sequence[PairVerdict], clusters: Sequence | None = None,
                 strata: Sequence | None = None) -> dict | None:
    """Position bias of a pairwise judge over pairs judged in both orders, each verdict's a being the CHOSEN
    response: {"pairs", "decided_pairs", "failed_pairs", "order_flips", "both_orders", "chosen_first",
    "chosen_second" (one_order_accuracies), "order_flip_rate" (OrderStats.inconsistency_rate), "position_a_rate",
    "ci95": {figure: [low, high]}}. The intervals resample pairs (or the clusters given, one key per pair: pairs
    that move together), within strata when given (one key per pair: its subset); the rates over decided pairs
    are ratios of totals. None when there are no pairs."""
    from rm_core.stats import bootstrap_statistics, ratio, summed_units, total

    pair_verdicts = list(pair_verdicts)
    if not pair_verdicts:
        return None
    stats = OrderStats.of(pair_verdicts)
    accuracies = one_order_accuracies(pair_verdicts)
    rows = []
    for v in pair_verdicts:
        decided = v.p is not None
        rows.append({"n": 1.0, "both": float(chosen_wins(v.p)),
                     "first": float(chosen_wins(v.p_forward)),
                     "second": float(chosen_wins(v.p_backward)), "decided": float(decided),
                     "flip": float(decided and not v.consistent),
                     "first_wins": v.p_forward + (1.0 - v.p_backward) if decided else 0.0})
    columns, sizes = summed_units(rows, clusters, strata)

    def share(name, over="n", times=1.0):
        return lambda m: ratio(total(m, sizes, name), times * total(m, sizes, over))

    results = bootstrap_statistics(columns, {
        "both_orders": share("both"), "chosen_first": share("first"), "chosen_second": share("second"),
        "order_flip_rate": share("flip", "decided"), "position_a_rate": share("first_wins", "decided", 2.0)})
    out = {"pairs": len(pair_verdicts), "decided_pairs": stats.pairs, "failed_pairs": len(pair_verdicts) - stats.pairs,
           "order_flips": stats.inconsistent, **accuracies, "order_flip_rate": stats.inconsistency_rate,
           "position_a_rate": stats.position_a_rate}
    out["ci95"] = {name: None if out[name] is None or results[name] is None or results[name]["ci95"] is None
                   else list(results[name]["ci95"]) for name in ORDER_FIGURES}
    return out


def format_order(block: dict | None) -> list[str]:
    """Lines for an evaluator's printed table: both orders and the order-flip rate, in percent with intervals."""
    if not block:
        return []

    def fig(name):
        from rm_core.stats import percent_with_ci

        return percent_with_ci(block.get(name), (block.get("ci95") or {}).get(name))

    return [f"both orders (pairwise judge; {block['pairs']} pairs, {block['failed_pairs']} with a failed order; "
            "95% CI in brackets):",
            f"  accuracy, both orders averaged     {fig('both_orders')}",
            f"  accuracy, chosen shown first       {fig('chosen_first')}",
            f"  accuracy, chosen shown second      {fig('chosen_second')}",
            f"  order-flip rate                    {fig('order_flip_rate')} ({block['order_flips']} of "
            f"{block['decided_pairs']} decided pairs)",
            f"  P(the first shown wins)            {fig('position_a_rate')}"]


def verdicts(judge: Judge, items: list[tuple]) -> list[PairVerdict]:
    """Each (prompt, a, b) judged in both orders."""
    if hasattr(judge, "judge_pairs"):
        return [PairVerdict(v.p_forward, v.p_backward) for v in judge.judge_pairs(items)]
    forward = judge.compare_batch(items)
    swapped = judge.compare_batch([(prompt, b, a) for prompt, a, b in items])
    return [PairVerdict(f, None if s is None else 1.0 - s) for f, s in zip(forward, swapped)]


def _rates(tally: dict) -> dict:
    order = OrderStats(pairs=tally["pairs"] - tally["failed_pairs"], inconsistent=tally["order_inconsistent"])
    return {**tally,
            "order_inconsistency_rate": order.inconsistency_rate,
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


def _candidate_problem(row: dict) -> str | None:
    """Why a candidate row ({"prompt", "responses"}) cannot be a group to judge (None when it can)."""
    from judges.base import as_messages

    try:
        messages = as_messages(row.get("prompt"))
    except (TypeError, ValueError, KeyError, AttributeError):
        return "no prompt (text or messages)"
    if (not messages or not all(isinstance(m.get("content"), str) for m in messages)
            or not messages[-1]["content"].strip()):
        return "no prompt (text or messages)"
    responses = row["responses"]
    if not isinstance(responses, list):
        return "responses is not a list"
    if not all(isinstance(r, str) and r.strip() for r in responses):
        return "a response that is empty or not a string"
    if len({r.strip() for r in responses}) < len(responses):
        return "duplicate responses"
    if len(responses) < 2:
        return "fewer than two responses"
    return None


def groups_from_rows(rows: list[dict], skipped: Counter | None = None) -> list[dict]:
    """Candidate rows ({"prompt", "responses": [...]}) as they are; preference rows (any format
    rm_core.data reads) as groups of their two responses. Prompts keep their message form. A file whose first
    row has `responses` is read as candidate rows: a row that is no such group (responses not a list of distinct
    non-empty strings, fewer than two of them, no prompt, a preference row among them) is skipped and counted by
    reason in `skipped`, as are the preference rows rm_core.data skips."""
    skipped = Counter() if skipped is None else skipped
    if rows and isinstance(rows[0], dict) and "responses" in rows[0]:
        groups = []
        for r in rows:
            if not isinstance(r, dict):
                skipped["row is not a JSON object"] += 1
                continue
            if "responses" not in r:
                skipped["not a candidate row (no responses) in a file of candidate rows"] += 1
                continue
            problem = _candidate_problem(r)
            if problem:
                skipped[problem] += 1
                continue
            groups.append({"prompt": r["prompt"], "responses": list(r["responses"]), "subset": r.get("subset", "")})
        return groups
    from rm_core.data import to_preferences

    if any(isinstance(r, dict) and "responses" in r for r in rows):
        skipped["candidate row in a file of preference rows"] += sum(isinstance(r, dict) and "responses" in r
                                                                     for r in rows)
        rows = [r for r in rows if not (isinstance(r, dict) and "responses" in r)]
    prefs, report = to_preferences(rows)
    skipped.update(report.counts)
    return [{"prompt": p["prompt"], "responses": [p["chosen"][-1]["content"], p["rejected"][-1]["content"]],
             "subset": p["subset"]} for p in prefs]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    import judges
    from rm_core.data import load_llmbar_as_reward_bench, load_rows
    from rm_core.errors import int_at_least
    from rm_core.hub import atomic_write_json

    p = argparse.ArgumentParser(description="Order-inconsistent pairs and intransitive triples of a judge on a "
                                            "data set, per subset.")
    p.add_argument("--judge", required=True, help="checkpoint / Hub id, or llm:<id> / openai:<model>")
    p.add_argument("--dataset", required=True, help="preference rows, candidate rows {prompt, responses}, "
                                                    "or LLMBar's folder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int_at_least(1), default=None)
    p.add_argument("--output", default=None, help="write the report as JSON here")
    from judges.cli import add_llm_judge_args, check_llm_judge_args, llm_judge_kwargs

    add_llm_judge_args(p)  # --judge_cache_dir, --judge_base_url, ... (as the eval_* commands)
    args = p.parse_args(argv)
    check_llm_judge_args([args.judge], args)
    judges.check_judge_spec(args.judge, "--judge")  # before the data
    from pathlib import Path

    rows = (load_llmbar_as_reward_bench(args.dataset) if (Path(args.dataset) / "natural.json").is_file()
            else load_rows(args.dataset, args.split))
    skipped: Counter = Counter()
    groups = groups_from_rows(rows, skipped)[: args.limit]
    if not groups:
        from rm_core.data import SkipReport
        from rm_core.errors import UserInputError

        reasons = SkipReport(skipped).reasons() or "no rows"
        raise UserInputError(f"{args.dataset}: no group of two or more responses to judge ({reasons})")
    judge = judges.load(args.judge, **llm_judge_kwargs(args.judge, args))
    report = detect_conflicts(judge, groups)
    report["skipped_rows"] = dict(skipped)
    report["failures"] = judge.failures.as_dict()
    print(json.dumps(report, indent=2))
    if args.output:
        atomic_write_json(args.output, report)


if __name__ == "__main__":
    from rm_core.errors import run_cli

    run_cli(main)
