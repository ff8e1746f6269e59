"""ODIN vs Bradley-Terry on HH-RLHF at the same budget: accuracy, and how much the reward follows length.

    python -m bench.odin_hh                                   # 64 pairs, 8 steps of 8, max_length 256 (~35 min, 2 cores)
    python -m bench.odin_hh --model PATH --pairs 8 --eval_pairs 8 --llmbar_pairs 4 --tag smoke   # smoke test

Budget: the BT quality figure's (bench/bt_hh.py, bench/RESULTS.md): the first --pairs pairs of the project's
fixed HH-RLHF split (harmless-base), ceil(pairs / 8) optimizer steps of 8 pairs, max_length 256, lr 2e-5,
SmolLM2-135M-Instruct, fp32. BT: bradley_terry_rm/configs/smollm2-135m-cpu.yaml (reuses
bench/runs/bt_hh/ours-<pairs> when bt_hh.py left it at this budget). ODIN: odin_rm/configs/smollm2-135m-cpu.yaml
with the same overrides (its YAML samples batches at random, where BT's groups them by length; pass
--odin_sampling group_by_length to match BT's order).

Evaluation, every model the same way, in this process: each response scored whole (the prompt and the
response through the model's chat template, cut from the front to max_length), batch 1; on the 446 HH test
pairs (max_length 256) and the 419 LLMBar pairs (RewardBench's chat-hard llmbar subsets, max_length 1024).
Reported per model and head: pairwise accuracy (a tie counts as wrong) and the Pearson correlation of the
reward with the response length in tokens (the response text alone, no template) over all test responses
(chosen and rejected). For ODIN: the quality head (served), the length head, and their sum (what was trained
against the preferences). Outputs: bench/runs/odin_hh/ (results-<pairs>.json, logs/, the checkpoints).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench._common import run_seconds
from rm_core.data import hh_split, load_llmbar_as_reward_bench, read_rows, shared_data_dir, to_preferences
from rm_core.hub import atomic_write_json, atomic_write_jsonl
from rm_core.models import SMOLLM2, resolve_model

SHARED = shared_data_dir()
RUNS = ROOT / "bench" / "runs" / "odin_hh"
BT_RUNS = ROOT / "bench" / "runs" / "bt_hh"


def train_args(args, base: str, data: Path, out_dir: Path, steps: int) -> list[str]:
    return ["--model_name_or_path", base, "--dataset_name", str(data), "--output_dir", str(out_dir),
            "--max_length", str(args.max_length), "--per_device_train_batch_size", str(args.batch_size),
            "--max_steps", str(steps), "--learning_rate", str(args.learning_rate), "--save_strategy", "no",
            "--dataset_test_split", "", "--logging_steps", "1", "--use_cpu", "true"]


def bt_checkpoint_reusable(args, budget: dict) -> Path | None:
    """bench/bt_hh.py's checkpoint when it was trained at exactly this budget on the default model."""
    ckpt, report = BT_RUNS / f"ours-{args.pairs}", BT_RUNS / f"results-{args.pairs}.json"
    if args.model != SMOLLM2 or not (ckpt / "config.json").is_file() or not report.is_file():
        return None
    theirs = json.loads(report.read_text()).get("budget", {})
    same = all(theirs.get(k) == budget[k] for k in ("pairs", "steps", "batch_size", "max_length"))
    return ckpt if same and args.learning_rate == 2e-5 else None


def evaluate(model_dir: str, sets: dict) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import odin_rm  # noqa: F401  registers the ODIN classes
    from odin_rm.judge import pair_head_scores, summarize_heads
    from rm_core.templates import ensure_pad_token

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32, num_labels=1).eval()
    ensure_pad_token(tokenizer, model)
    out = {}
    for name, (prefs, max_length) in sets.items():
        t0 = time.perf_counter()
        result = pair_head_scores(model, tokenizer, prefs, max_length, batch_size=1)
        summary = summarize_heads(result)
        out[name] = {"pairs": len(prefs), "truncated_pairs": result["truncated_pairs"],
                     "seconds": round(time.perf_counter() - t0, 1), **summary}
        scores = [{"id": p["id"], **{f"{h}_chosen": c[i] for h, (c, _) in result["scores"].items()},
                   **{f"{h}_rejected": r[i] for h, (_, r) in result["scores"].items()},
                   "chosen_tokens": result["lengths"][0][i], "rejected_tokens": result["lengths"][1][i]}
                  for i, p in enumerate(prefs)]
        atomic_write_jsonl(RUNS / "scores" / f"{Path(model_dir).name}-{name}.jsonl", scores)
        print(f"[eval] {model_dir} {name}: {json.dumps(out[name])}", flush=True)
    return out


def table(report: dict) -> str:
    rows = ["| model | head | HH test acc | HH corr(reward, length) | LLMBar acc | LLMBar corr(reward, length) |",
            "|---|---|---|---|---|---|"]
    for run_name, heads in (("bt", ["reward"]), ("odin", ["quality", "length", "sum"])):
        ev = report.get(run_name, {}).get("eval", {})
        for head in heads:
            cells = []
            for s in ("hh_test", "llmbar"):
                v = ev.get(s, {}).get(head)
                cells += ["-", "-"] if v is None else [f"{100 * v['accuracy']:.1f}%", "n/a" if v["length_correlation"]
                                                      is None else f"{v['length_correlation']:+.3f}"]
            rows.append(f"| {run_name} | {head} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=SMOLLM2)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--max_length", type=int, default=256)
    p.add_argument("--llmbar_max_length", type=int, default=1024)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--odin_sampling", default=None, help="train_sampling_strategy for ODIN (default: its YAML's)")
    p.add_argument("--length_loss_weight", type=float, default=None)
    p.add_argument("--orthogonality_loss_weight", type=float, default=None)
    p.add_argument("--eval_pairs", type=int, default=None, help="first N HH test pairs (default: all 446)")
    p.add_argument("--llmbar_pairs", type=int, default=None, help="first N LLMBar pairs (default: all 419); 0: none")
    p.add_argument("--runs", nargs="+", default=["bt", "odin"])
    p.add_argument("--eval_only", action="store_true", help="score the checkpoints an earlier run left")
    p.add_argument("--tag", default="", help="suffix of the output names (smoke runs)")
    args = p.parse_args()

    base = resolve_model(args.model)
    train_rows, test_rows = hh_split(read_rows(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    train, _ = to_preferences(train_rows)
    test, _ = to_preferences(test_rows)
    for i, pref in enumerate(test):
        pref["id"] = pref.get("id") or f"hh-{i}"
    data = RUNS / f"data{args.tag}"
    atomic_write_jsonl(data / "train.jsonl", train[: args.pairs])
    llmbar = to_preferences(load_llmbar_as_reward_bench(SHARED / "llmbar"))[0] if args.llmbar_pairs != 0 else []
    sets = {"hh_test": (test[: args.eval_pairs] if args.eval_pairs else test, args.max_length)}
    if llmbar:
        sets["llmbar"] = (llmbar[: args.llmbar_pairs] if args.llmbar_pairs else llmbar, args.llmbar_max_length)
    steps = math.ceil(args.pairs / args.batch_size)
    budget = {"model": args.model, "pairs": args.pairs, "steps": steps, "batch_size": args.batch_size,
              "max_length": args.max_length, "learning_rate": args.learning_rate,
              "eval_pairs": {k: len(v[0]) for k, v in sets.items()}}
    print(f"[bench] budget {budget}", flush=True)

    report_path = RUNS / f"results-{args.pairs}{args.tag}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report["budget"] = budget
    for run_name in args.runs:
        entry = dict(report.get(run_name, {}))
        out_dir = RUNS / f"{run_name}-{args.pairs}{args.tag}"
        if run_name == "bt":
            reuse = bt_checkpoint_reusable(args, budget)
            if reuse is not None:
                out_dir, entry["checkpoint"] = reuse, f"reused {reuse.relative_to(ROOT)} (bench/bt_hh.py)"
            elif not args.eval_only:
                entry["train_seconds"] = run_seconds([sys.executable, "bradley_terry_rm/train.py", "--config",
                                              "bradley_terry_rm/configs/smollm2-135m-cpu.yaml",
                                              *train_args(args, base, data, out_dir, steps)],
                                             RUNS / "logs" / f"train-bt-{args.pairs}{args.tag}.log")
        elif run_name == "odin":
            extra = []
            for flag in ("length_loss_weight", "orthogonality_loss_weight"):
                if getattr(args, flag) is not None:
                    extra += [f"--{flag}", str(getattr(args, flag))]
            if args.odin_sampling:
                extra += ["--train_sampling_strategy", args.odin_sampling]
            if not args.eval_only:
                entry["train_seconds"] = run_seconds([sys.executable, "odin_rm/train.py", "--config",
                                              "odin_rm/configs/smollm2-135m-cpu.yaml",
                                              *train_args(args, base, data, out_dir, steps), *extra],
                                             RUNS / "logs" / f"train-odin-{args.pairs}{args.tag}.log")
        else:
            raise ValueError(run_name)
        entry["eval"] = evaluate(str(out_dir), sets)
        report[run_name] = entry
        atomic_write_json(report_path, report)
    print(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    main()
