"""A BT checkpoint scores the same through `judges.load(...).compare` as through `eval_reward_bench`.

    python -m bench.judge_paths --model bench/runs/bt_hh/ours-64 --dataset ../shared/data/llmbar

1. `eval_reward_bench` on the data set (batched, the prompt's KV cache shared by the pair), as a user runs it;
2. the judge path: `judges.load(model)` then `judge.compare(prompt, chosen, rejected)` one pair at a time
   (no batching, no shared prefix: each response rendered and scored whole).
Prints and writes both accuracies, the number of pairs whose verdict differs, and the largest difference
between P(chosen better) on the two paths (float32: ~1e-6 expected from the different kernels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench._common import run_logged
from rm_core.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "bench" / "runs" / "bt_hh" / "ours-64"))
    p.add_argument("--dataset", default=str(shared_data_dir() / "llmbar"))
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--output", default=str(ROOT / "bench" / "runs" / "judge_paths.json"))
    args = p.parse_args()

    import torch

    import judges
    from rm_core.data import load_llmbar_as_reward_bench, load_rows, to_preferences
    from rm_core.metrics import pair_correct

    eval_dir = ROOT / "bench" / "runs" / "judge_paths-eval"
    cmd = [sys.executable, "-m", "eval.reward_bench", "--model", args.model, "--dataset", args.dataset,
           "--max_length", str(args.max_length), "--output_dir", str(eval_dir)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    eval_seconds = run_logged(cmd).wall_seconds  # output to this terminal
    eval_rows = {json.loads(line)["id"]: json.loads(line)
                 for line in (eval_dir / "scores.jsonl").read_text().splitlines() if line}

    rows = (load_llmbar_as_reward_bench(args.dataset) if (Path(args.dataset) / "natural.json").is_file()
            else load_rows(args.dataset))
    prefs, _ = to_preferences(rows)
    prefs = prefs[: args.limit] if args.limit else prefs
    torch.manual_seed(0)
    judge = judges.load(args.model, max_length=args.max_length)
    t0 = time.perf_counter()
    judge_correct, differ, max_dp = 0, 0, 0.0
    for i, pref in enumerate(prefs):
        prob = judge.compare(pref["prompt"], pref["chosen"][-1]["content"], pref["rejected"][-1]["content"])
        row = eval_rows[pref["id"] or str(i)]
        eval_prob = torch.sigmoid(torch.tensor(row["chosen_score"] - row["rejected_score"])).item()
        judge_correct += prob > 0.5
        differ += (prob > 0.5) != row["correct"]
        max_dp = max(max_dp, abs(prob - eval_prob))
    judge_seconds = time.perf_counter() - t0
    eval_correct = sum(r["correct"] for r in eval_rows.values())
    assert all(pair_correct(r["chosen_score"], r["rejected_score"]) == r["correct"] for r in eval_rows.values())
    result = {
        "model": args.model, "dataset": args.dataset, "pairs": len(prefs), "max_length": args.max_length,
        "eval_reward_bench_accuracy": round(eval_correct / len(prefs), 4),
        "judge_compare_accuracy": round(judge_correct / len(prefs), 4),
        "verdicts_that_differ": differ, "max_abs_diff_p_chosen": max_dp,
        "eval_seconds": round(eval_seconds, 1), "judge_seconds": round(judge_seconds, 1),
        "judge_failures": judge.failures.total,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
