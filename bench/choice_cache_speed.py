"""Speed of a prompted pairwise judge's read-out (next-token probabilities of A/B/C over a local model) with the
prompts' common prefix (system prompt, instructions, rubrics) taken from a cache, and without, on LLMBar pairs judged
in both orders.

    python -m bench.choice_cache_speed --pairs 60 --dtype float32 --runs on off on off
    python -m bench.choice_cache_speed --pairs 40 --dtype bfloat16 \
        --rubrics bench/records/rubrics-smollm2-135m-order_averaged.json --runs on off on off

"off" sets the model's once-per-model check (`rm_core.inference.choice_cache_exact`) to False, so every prompt runs
whole, as a model that cannot take the cache does; "on" restores the checked answer. One untimed call first builds
the kernels and runs the check. No response cache. --rubrics takes a rubric set (judges/rubrics.py), or a bench
record holding one under "rubric_set_file" (bench/rubrics_llmbar's). Prints JSON: per run prompts/s (two a pair),
the largest difference of a pair's P(chosen better) from the first run, and the pairs whose winner differs from it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="causal LM folder or Hub id (default: the provisioned SmolLM2)")
    p.add_argument("--pairs", type=int, default=60, help="the first N LLMBar pairs")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--rubrics", default=None)
    p.add_argument("--runs", nargs="+", choices=["on", "off"], default=["on", "off", "on", "off"])
    args = p.parse_args(argv)

    import torch

    import judges
    from judges.base import winner
    from rm_core.data import load_llmbar_as_reward_bench, shared_data_dir
    from rm_core.models import SMOLLM2, provision

    model = args.model or str(provision(SMOLLM2))
    rows = load_llmbar_as_reward_bench(shared_data_dir() / "llmbar")[:args.pairs]
    items = [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    kwargs = {}
    if args.rubrics:
        data = json.loads(Path(args.rubrics).read_text(encoding="utf-8"))
        rubric_file = Path(tempfile.mkdtemp()) / "rubrics.json"
        rubric_file.write_text(json.dumps(data.get("rubric_set_file", data)), encoding="utf-8")
        kwargs["rubrics"] = str(rubric_file)
    judge = judges.load(f"llm:{model}", mode="pairwise", dtype=args.dtype, **kwargs)
    lm = judge.backend.model
    judge.judge_pairs(items[:4])  # kernels built, the cache check run, before the clock
    from rm_core.inference import CHOICE_CACHE_FLAG, choice_cache_exact

    checked = choice_cache_exact(lm)  # run by the call above; run here if that call did not reach it
    out = {"model": model, "pairs": len(items), "dtype": args.dtype, "rubrics": args.rubrics,
           "threads": torch.get_num_threads(), "cache_checked": checked, "runs": {}}
    first = None
    for i, run in enumerate(args.runs):
        setattr(lm, CHOICE_CACHE_FLAG, checked if run == "on" else False)
        start = time.perf_counter()
        verdicts = judge.judge_pairs(items)
        seconds = time.perf_counter() - start
        ps = [v.p for v in verdicts]
        first = first or ps
        result = {"seconds": round(seconds, 2), "prompts_per_s": round(2 * len(items) / seconds, 3),
                  "max_diff_vs_first": max((abs(a - b) for a, b in zip(ps, first)
                                            if a is not None and b is not None), default=None),
                  "winner_changed": sum(a is not None and b is not None and winner(a) != winner(b)
                                        for a, b in zip(ps, first)),
                  "failed": sum(v is None for v in ps)}
        out["runs"][f"{i}:{run}"] = result
        print(json.dumps({run: result}), flush=True)
    setattr(lm, CHOICE_CACHE_FLAG, checked)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
