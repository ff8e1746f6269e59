"""Pointwise scoring speed of a reward-model judge (`judges.load(model).score`), as an RL reward function or
the Python API calls it, on real HH-RLHF conversations.

    python -m bench.judge_score_speed --model bench/runs/smollm2-rm-init --items 400 --batch_sizes 2 auto 2 auto

Each run scores the same first --items conversations (the chosen and rejected transcripts of the HH-RLHF
harmless pairs, alternating) with a judge built with that batch size (`auto`: none given, the judge's default:
on a CPU rows a forward up to a token budget); one pass first, untimed, builds the kernels. tokens/s counts the
rendered tokens scored. Prints JSON: per run tokens, seconds, tokens/s, and the largest score difference from the
first run.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--batch_sizes", nargs="+", default=["2", "auto"], help="rows a forward, or auto (the default)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max_length", type=int, default=1024)
    args = p.parse_args()

    import torch

    import judges
    from bench.eval_scaling import hh_rows
    from rm_core.data import parse_hh_transcript

    rows = hh_rows()
    convs = [parse_hh_transcript(rows[i // 2]["chosen" if i % 2 == 0 else "rejected"]) for i in range(args.items)]
    out = {"model": args.model, "items": args.items, "dtype": args.dtype, "threads": torch.get_num_threads(),
           "runs": {}}
    first = None
    for i, bs in enumerate(args.batch_sizes):
        judge = judges.load(args.model, dtype=args.dtype, max_length=args.max_length,
                            batch_size=None if bs == "auto" else int(bs))
        judge.score(convs[:32])  # kernels built before the clock
        start = time.perf_counter()
        scores = judge.score(convs)
        seconds = time.perf_counter() - start
        tokens = sum(info["tokens"] for info in judge.last_item_info)
        first = first or scores
        out["runs"][f"{i}:{bs}"] = {"tokens": tokens, "seconds": round(seconds, 2),
                                    "tokens_per_s": round(tokens / seconds, 1),
                                    "max_diff_vs_first": max((abs(a - b) for a, b in zip(scores, first)
                                                             if a is not None and b is not None), default=None)}
        print(json.dumps({bs: out["runs"][f"{i}:{bs}"]}), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
