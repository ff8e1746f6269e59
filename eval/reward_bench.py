"""eval_reward_bench: score a reward model on RewardBench (v1) with the official scoring.

    eval_reward_bench --model PATH_OR_HUB_ID [--dataset allenai/reward-bench | rows.jsonl] \
        [--batch_size 16] [--max_length 2048] [--dtype bfloat16] [--output_dir DIR]
    accelerate launch --num_processes 8 -m eval.reward_bench --model ...   # pairs split across processes

Writes DIR/results.json (per-subset accuracy, sections, leaderboard score, each with its 95% interval under
`ci95`; the length control over all pairs under `length`; a pairwise judge's both orders and order-flip rate under
`order`; speed, skips, truncation: eval/scoring.py) and
DIR/scores.jsonl (one line per pair), both atomically, and prints a table. A killed run resumes: the
scores of finished chunks are kept in DIR/scores.partial.jsonl and are not scored again; a resume by another
model, data set or setting stops, naming what differs (DIR/fingerprint.json), unless --overwrite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.runner import (
    add_judge_args,
    check_model,
    claim_output,
    eval_fingerprint,
    finish,
    judge_failures,
    load_judge,
    process_state,
    run_eval_command,
    score_items,
    settle_machine_options,
    speed,
)
from eval.scoring import format_table, row_correct, summarize
from judges.base import response_of
from rm_core.data import SkipReport, load_reward_bench_pairs
from rm_core.errors import cli_entry
from rm_core.length import chars

DEFAULT_DATASET = "allenai/reward-bench"
CHUNK_PAIRS = 256  # scores are checkpointed to disk after every chunk


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_reward_bench", description=__doc__.split("\n\n")[0])
    add_judge_args(p, unit="pairs", default_output_dir="results/<model name>")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="Hub id, a local JSON/JSONL/parquet file in RewardBench's row schema, or LLMBar's folder")
    p.add_argument("--split", default="filtered", help="split of a Hub data set (RewardBench: filtered)")
    p.add_argument("--subsets", nargs="*", default=None, help="score only these subsets")
    p.add_argument("--no_shared_prefix", action="store_true",
                   help="scalar-head judges (Bradley-Terry, ODIN, scalar ORM): score chosen and rejected as whole "
                        "sequences instead of running their shared prompt once (slower; for comparison)")
    return p


def load_pairs(args) -> tuple[list[dict], SkipReport]:
    """rm_core.data.load_reward_bench_pairs with the command's --dataset, --split, --subsets, --limit."""
    return load_reward_bench_pairs(args.dataset, args.split, args.subsets, args.limit)


def _score_chunk(judge, prefs: list[dict]) -> list[dict]:
    """Score rows through the judge: a pointwise judge gives each response a reward; a pairwise one gives
    P(chosen better), recorded as chosen_score = p, rejected_score = 1 - p. A pair the judge failed on (an
    error, an unparsable answer, a NaN or inf score) is flagged `failed`, its scores null (and `correct` false); the
    summary counts it, and scores it wrong as the official code does (eval/scoring.py)."""
    items = [(p["prompt"], response_of(p["chosen"]), response_of(p["rejected"])) for p in prefs]
    orders = None
    if judge.pointwise:
        scores = judge.score_pairs(items)
    elif hasattr(judge, "judge_pairs"):  # both orders, kept: P(chosen better) is their mean, as compare() gives
        orders = judge.judge_pairs(items)
        scores = [(None, None) if v.p is None else (v.p, 1.0 - v.p) for v in orders]
    else:
        scores = [(None, None) if q is None else (q, 1.0 - q) for q in judge.compare_batch(items)]
    info = getattr(judge, "last_item_info", None) or [{}] * len(prefs)
    rows = []
    for k, (p, (c, r), extra) in enumerate(zip(prefs, scores, info)):
        failed = c is None or r is None
        row = {"id": p["id"], "subset": p["subset"], "chosen_score": c, "rejected_score": r,
               "failed": failed,
               "chosen_chars": chars(items[k][1]), "rejected_chars": chars(items[k][2])}
        if not judge.pointwise:
            row["pairwise"] = True
        row["correct"] = row_correct(row)  # a pairwise P within 1e-6 of 0.5 is a tie (eval/scoring.py)
        if orders is not None:
            row.update(p_forward=orders[k].p_forward, p_backward=orders[k].p_backward)
        rows.append({**row, **extra})
    return rows


def evaluate(args) -> dict | None:
    """Score args.dataset with args.model; the summary on the main process, None on the others."""
    state = process_state()
    out_dir = Path(args.output_dir or Path("results") / Path(args.model.rstrip("/")).name)
    check_model(args)  # before the data
    prefs, skipped = load_pairs(args)
    settle_machine_options(args, state.device, state.is_main_process)
    fingerprint = eval_fingerprint(args, "reward_bench") if state.is_main_process else None
    claim_output(out_dir, fingerprint, getattr(args, "overwrite", False), state)
    judge = load_judge(args, state.device)
    if state.is_main_process:
        print(f"[eval] {args.model} on {args.dataset}: {len(prefs)} pairs, dtype {args.dtype}", flush=True)
    run = score_items(prefs, lambda chunk: _score_chunk(judge, chunk), out_dir, state, CHUNK_PAIRS, "pairs")
    failures = judge_failures(judge, state)  # every process: a collective
    if run is None:
        return None

    ordered = run.rows
    summary = summarize(ordered)
    summary.update({
        "model": args.model, "dataset": args.dataset, "pairs": len(ordered), "dtype": args.dtype,
        "dtype_reason": getattr(args, "dtype_reason", None), "numerics": getattr(args, "numerics", None),
        "max_length": args.max_length, "batch_size": args.batch_size,
        "forward_tokens": getattr(judge, "max_tokens", None), "processes": state.num_processes,
        "shared_prefix": not args.no_shared_prefix,
        "truncated_pairs": sum(bool(r.get("truncated")) for r in ordered),
        "failed_pairs": sum(bool(r.get("failed")) for r in ordered),
        "judge_failures": failures,
        "skipped_rows": skipped.as_dict(),
        "speed": speed(run, "pairs"),
        "fingerprint": fingerprint,
    })
    finish(out_dir, ordered, summary)
    print(format_table(summary))
    print(f"pairs: {len(ordered)}  truncated: {summary['truncated_pairs']}  {skipped}")
    if run.seconds > 0:
        print(f"speed: {summary['speed']['pairs_per_second']} pairs/s ({run.scored_now} pairs in {run.seconds:.1f} s)")
    print(f"results: {(out_dir / 'results.json').resolve()}\nscores:  {(out_dir / 'scores.jsonl').resolve()}")
    if getattr(args, "push_results", None):  # --push_results: the model card's model-index (eval/report.py)
        from eval.report import push_results

        push_results(args, "reward_bench", summary)
    return summary


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "reward_bench")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
