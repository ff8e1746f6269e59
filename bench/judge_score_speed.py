"""Pointwise scoring speed of a reward-model judge (`judges.load(model).score`), as an RL reward function or
the Python API calls it, on real HH-RLHF conversations.

    python -m bench.judge_score_speed --model bench/runs/smollm2-rm-init --items 400 --batch_sizes 2 auto 2 auto
    python -m bench.judge_score_speed --model bench/runs/smollm2-rm-init --source gsm8k --items 400 \
        --batch_sizes auto --share_prefix on off on off
    python -m bench.judge_score_speed --model bench/runs/smollm2-rm-init --source gsm8k --path texts ...

Each run scores the same first --items conversations with a judge built with that batch size (`auto`: none
given, the judge's default: on a CPU rows a forward up to a token budget) and prompt sharing (`--share_prefix`:
on, the default, scores the completions of one prompt as a group, the prompt once; off, each whole), runs paired
in order (the shorter list repeats its last value). --source hh: the chosen and rejected transcripts of the
HH-RLHF harmless pairs, alternating (groups of two); gsm8k: the four model solutions of each question of the
GSM8K solutions file, in file order (an RL step's group of four completions a prompt). --path texts scores
each conversation rendered to text by the judge's template (`judge.score_texts`, OpenRLHF's /get_reward with
rendered queries), grouped by shared tokens; score (the default) scores the conversations. One pass first, untimed, builds the kernels. tokens/s counts the
rendered tokens scored (prompts counted once per conversation, as a whole-sequence scorer computes them). Prints
JSON: per run tokens, seconds, tokens/s, and the largest score difference from the first run.
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
    p.add_argument("--share_prefix", nargs="+", choices=["on", "off"], default=["on"])
    p.add_argument("--source", choices=["hh", "gsm8k"], default="hh")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--path", choices=["score", "texts"], default="score")
    args = p.parse_args()

    import torch

    import judges
    from bench.eval_scaling import hh_rows
    from rm_core.data import parse_hh_transcript

    if args.source == "hh":
        rows = hh_rows()
        convs = [parse_hh_transcript(rows[i // 2]["chosen" if i % 2 == 0 else "rejected"]) for i in range(args.items)]
    else:
        from judges.base import conversation
        from rm_core.data import GSM8K_SOLUTION_MODELS, shared_data_dir

        convs = []
        with open(shared_data_dir() / "gsm8k" / "example_model_solutions.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                convs += [conversation(row["question"], row[k]["solution"]) for k in GSM8K_SOLUTION_MODELS]
                if len(convs) >= args.items:
                    break
        convs = convs[:args.items]
    out = {"model": args.model, "source": args.source, "path": args.path, "items": args.items, "dtype": args.dtype,
           "threads": torch.get_num_threads(), "runs": {}}
    first = None
    runs = max(len(args.batch_sizes), len(args.share_prefix))
    for i in range(runs):
        bs = args.batch_sizes[min(i, len(args.batch_sizes) - 1)]
        share = args.share_prefix[min(i, len(args.share_prefix) - 1)]
        judge = judges.load(args.model, dtype=args.dtype, max_length=args.max_length,
                            batch_size=None if bs == "auto" else int(bs), share_prefix=None if share == "on" else False)
        items = convs if args.path == "score" else [judge.tokenizer.apply_chat_template(c, tokenize=False)
                                                      for c in convs]
        score = judge.score if args.path == "score" else judge.score_texts
        score(items[:32])  # kernels built before the clock
        start = time.perf_counter()
        scores = score(items)
        seconds = time.perf_counter() - start
        tokens = sum(info["tokens"] for info in judge.last_item_info)
        first = first or scores
        run = {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
               "max_diff_vs_first": max((abs(a - b) for a, b in zip(scores, first)
                                         if a is not None and b is not None), default=None)}
        out["runs"][f"{i}:{bs}:{share}"] = run
        print(json.dumps({f"{bs}:{share}": run}), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
