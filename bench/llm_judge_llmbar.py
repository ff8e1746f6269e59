"""A pairwise judge (a prompted LLM, or a pair-PM checkpoint) on LLMBar (RewardBench's five chat-hard subsets): accuracy in one order,
in both orders combined, and how often the verdict flips when the two responses swap places.

    python -m bench.llm_judge_llmbar --judge llm:HuggingFaceTB/SmolLM2-135M-Instruct

Every pair is judged twice by `judges.load(spec, mode="pairwise").judge_pairs`: chosen shown as Response A
(forward) and as Response B (backward). With a local model P(A) is read from the next-token
probabilities of "A"/"B"/"C" (tie: half to each). Reported per subset and overall:
- acc_chosen_first / acc_chosen_second: one order only, chosen in slot A / slot B (a position-biased judge
  looks good in one and bad in the other), and their mean: the expected one-order accuracy when the
  slot is random;
- acc_both_orders: P(chosen better) averaged over both orders > 0.5 (a tie counts wrong);
- order_inconsistency_rate: pairs whose winner changes with the order; position_a_rate: mean P(slot A wins).

Verdicts are appended to OUTPUT's .partial.jsonl per chunk; a rerun skips the pairs judged there and asks again
those whose verdict failed (the later line supersedes). The partial file goes once every pair is decided, and
stays while some failed, so the same command retries just those; it exits 3 (one line) when more than
--max_failed_share of the pairs failed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from rm_core.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def tally(rows: list[dict]) -> dict:
    """The rates as judges.conflicts defines them (OrderStats, one_order_accuracies)."""
    from judges.base import PairVerdict
    from judges.conflicts import OrderStats, one_order_accuracies

    verdicts = [PairVerdict(r["p_forward"], r["p_backward"]) for r in rows]
    order, acc = OrderStats.of(verdicts), one_order_accuracies(verdicts)

    def rounded(x):
        return None if x is None else round(x, 4)

    return {
        "pairs": len(rows), "failed": len(rows) - order.pairs,
        "acc_chosen_first": rounded(acc["chosen_first"]), "acc_chosen_second": rounded(acc["chosen_second"]),
        "acc_one_order_mean": rounded((acc["chosen_first"] + acc["chosen_second"]) / 2),
        "acc_both_orders": rounded(acc["both_orders"]),
        "order_inconsistency_rate": rounded(order.inconsistency_rate),
        "position_a_rate": rounded(order.position_a_rate),
    }


def main() -> None:
    from rm_core.resume import DEFAULT_MAX_FAILED_SHARE, share_arg

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", default="llm:HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--dataset", default=str(shared_data_dir() / "llmbar"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max_length", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=None,
                   help="prompts per forward (default: the judge's, rm_core.inference.default_batch_size)")
    p.add_argument("--chunk", type=int, default=32, help="pairs per judge call (progress is saved after each)")
    p.add_argument("--output", default=str(ROOT / "bench" / "runs" / "llm_judge_llmbar.json"))
    p.add_argument("--max_failed_share", type=share_arg, default=DEFAULT_MAX_FAILED_SHARE,
                   help="exit 3 (after writing the result) when more than this share of the pairs failed")
    args = p.parse_args()

    import judges
    from rm_core.data import load_llmbar_as_reward_bench, to_preferences
    from rm_core.hub import atomic_write_json

    prefs, _ = to_preferences(load_llmbar_as_reward_bench(args.dataset))
    prefs = prefs[: args.limit] if args.limit else prefs
    from rm_core.resume import (
        append_jsonl,
        check_failed_share,
        check_or_write_fingerprint,
        data_fingerprint,
        fingerprint_path,
        judge_fingerprint,
        read_jsonl_store,
    )

    partial = Path(args.output).with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)
    check_or_write_fingerprint(partial, {"judge": judge_fingerprint(args.judge), "data": data_fingerprint(args.dataset),
                                         "settings": {"max_length": args.max_length}},
                               hint=f"delete {partial} to start afresh")  # (limit only picks pairs)
    done = {row["id"]: row for row in read_jsonl_store(partial)}  # a line cut by a kill is dropped
    mode = {"mode": "pairwise"} if args.judge.startswith(judges.LLM_PREFIXES) else {}  # else: a pair-PM checkpoint
    local = {} if args.judge.startswith("openai:") else {"max_length": args.max_length, "batch_size": args.batch_size}
    judge = judges.load(args.judge, **local, **mode)
    todo = [x for x in prefs if x["id"] not in done or done[x["id"]]["p"] is None]  # failures are asked again
    if any(x["id"] in done for x in todo):
        print(f"[llm-judge] asking again {sum(x['id'] in done for x in todo)} pair(s) whose verdict failed", flush=True)
    t0 = time.perf_counter()
    for start in range(0, len(todo), args.chunk):
        chunk = todo[start:start + args.chunk]
        items = [(x["prompt"], x["chosen"][-1]["content"], x["rejected"][-1]["content"]) for x in chunk]
        verdicts = judge.judge_pairs(items)
        rows = [{"id": x["id"], "subset": x["subset"], "p": v.p, "p_forward": v.p_forward,
                 "p_backward": v.p_backward, "consistent": v.consistent} for x, v in zip(chunk, verdicts)]
        with open(partial, "a", encoding="utf-8") as f:
            append_jsonl(f, rows)
        done.update((r["id"], r) for r in rows)
        print(f"[llm-judge] {len(done)}/{len(prefs)} pairs, {time.perf_counter() - t0:.0f} s", flush=True)
    rows = [done[x["id"]] for x in prefs]
    by_subset = defaultdict(list)
    for r in rows:
        by_subset[r["subset"]].append(r)
    batch_size = getattr(getattr(judge, "backend", judge), "batch_size", args.batch_size)  # as the judge ran
    result = {"judge": args.judge, "dataset": args.dataset, "max_length": args.max_length, "batch_size": batch_size,
              "overall": tally(rows), "subsets": {s: tally(rs) for s, rs in sorted(by_subset.items())},
              "failures": judge.failures.as_dict(), "seconds_this_run": round(time.perf_counter() - t0, 1)}
    atomic_write_json(args.output, result)
    if not result["overall"]["failed"]:  # else kept: the same command asks the failed pairs again
        partial.unlink(missing_ok=True)
        fingerprint_path(partial).unlink(missing_ok=True)
    print(json.dumps(result, indent=2))
    check_failed_share({"": (result["overall"]["failed"], len(rows))}, args.max_failed_share, "pairs",
                       f"{partial} keeps the verdicts; rerun the same command to ask the failed ones again")


if __name__ == "__main__":
    from rm_core.errors import run_cli

    run_cli(main)
