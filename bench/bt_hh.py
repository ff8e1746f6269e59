"""Bradley-Terry on HH-RLHF with SmolLM2-135M-Instruct: our recipe vs TRL's stock reward script.

    python -m bench.bt_hh --pairs 512 --max_length 256            # quality + speed (about an hour on 2 cores)
    python -m bench.bt_hh --pairs 64 --skip_eval --runs ours trl  # speed only
    python -m bench.bt_hh --pairs 64 --skip_eval --runs ours trl --max_length 0 --trl_learning_rate same
                                                                  # speed with nothing dropped, loss curves comparable

Data: the project's fixed split of ../shared/data/hh-rlhf (1858 usable train pairs, 446 test pairs);
the first --pairs train pairs. Both trainers get the same pairs, batch size, max_length and number of
optimizer steps (ceil(pairs / batch)). TRL runs as shipped (`python -m trl.scripts.reward`) with its
defaults except what a CPU forces (--bf16 false) and the shared budget. Every checkpoint, and the
untrained model (same seeded random head), is scored by eval_reward_bench on the 446 HH test pairs and
on LLMBar (RewardBench chat-hard llmbar subsets, 419 pairs). Training speed = non-pad tokens seen /
train_runtime, from each run's trainer_state.json; peak RSS from /usr/bin/time. Each run's loss a step is
recorded (`loss_curve`). TRL drops every pair with a side longer than max_length (`trl_dropped_pairs` counts
them, by the chat template's tokenisation, as TRL does); `--max_length 0` sets it to the longest pair, so
neither trainer drops or truncates anything. `--ours_micro_batch_size N` gives ours N pairs a forward with
gradient accumulation up to --batch_size (same optimizer steps; the run names gain `-mbN`);
`--trl_micro_batch_size N` does the same for TRL (`-trlmbN`), to compare the two at the same micro-batch.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench._common import run_logged
from rm_core.data import hh_split, read_rows, shared_data_dir, to_preferences
from rm_core.hub import atomic_write_json, atomic_write_jsonl
from rm_core.models import SMOLLM2, resolve_model

SHARED = shared_data_dir()
RUNS = ROOT / "bench" / "runs" / "bt_hh"
DEFAULT_MAX_LENGTH = 256


def timed(cmd: list[str], log: Path) -> dict:
    """Peak RSS (MiB) and wall seconds of the command (bench._common.run_logged)."""
    measured = run_logged(cmd, log)
    return {"peak_rss_mib": round(measured.peak_rss_mib), "wall_seconds": round(measured.wall_seconds, 1)}


def train_speed(log: Path) -> dict:
    """Steps, runtime and non-pad tokens from the Trainer's logged dicts (logging_steps 1, so none is missed)."""
    text = log.read_text(errors="replace")
    runtime = float(re.findall(r"'train_runtime': '([\d.]+)'", text)[-1])
    tokens = max(int(float(x)) for x in re.findall(r"'num_tokens': '([\d.e+]+)'", text))
    losses = [round(float(x), 4) for x in re.findall(r"'loss': '([\d.e+-]+)'", text)]
    return {"steps": len(losses), "train_runtime_s": runtime, "non_pad_tokens": tokens,
            "tokens_per_second": round(tokens / runtime, 1), "loss_curve": losses}


def conversation_lengths(rows: list[dict], model: str) -> list[int]:
    """Per pair, its longer side's tokens as TRL counts them: the chat template over prompt + response."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return [max(len(tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=True, return_dict=True)["input_ids"])
                for side in ("chosen", "rejected")) for row in rows]


def evaluate(model: str, name: str, llmbar: bool) -> dict:
    out = {}
    sets = [("hh_test", str(RUNS / "data" / "test.jsonl"), 256)]
    if llmbar:
        sets.append(("llmbar", str(SHARED / "llmbar"), 1024))
    for set_name, dataset, max_length in sets:
        res_dir = RUNS / "eval" / f"{name}-{set_name}"
        timed([sys.executable, "-m", "eval.reward_bench", "--model", model, "--family", "bradley_terry", "--dataset", dataset,
               "--max_length", str(max_length), "--output_dir", str(res_dir)], RUNS / "logs" / f"eval-{name}-{set_name}.log")
        res = json.loads((res_dir / "results.json").read_text())
        subsets = res["subsets"]
        out[set_name] = round(sum(s["correct"] for s in subsets.values()) / sum(s["n"] for s in subsets.values()), 4)
        if set_name == "llmbar":
            out["llmbar_chat_hard_partial"] = res["sections"]["Chat Hard"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=512)
    p.add_argument("--max_length", type=int, default=DEFAULT_MAX_LENGTH, help="0: the longest pair's length (nothing dropped)")
    p.add_argument("--batch_size", type=int, default=8, help="pairs an optimizer step, both trainers")
    p.add_argument("--ours_micro_batch_size", type=int, default=None,
                   help="ours only: pairs a forward, with gradient accumulation up to --batch_size (default: all)")
    p.add_argument("--trl_micro_batch_size", type=int, default=None,
                   help="pairs a forward for TRL, with gradient accumulation up to --batch_size (default: --batch_size, "
                        "TRL as shipped); run names gain -trlmbN")
    p.add_argument("--learning_rate", type=float, default=2e-5, help="ours")
    p.add_argument("--trl_learning_rate", default="default", help="'default' (TRL's 1e-4), 'same' (ours) or a number")
    p.add_argument("--runs", nargs="+", default=["untrained", "ours", "trl"])
    p.add_argument("--skip_eval", action="store_true")
    p.add_argument("--eval_only", action="store_true", help="score checkpoints an earlier run of this budget left")
    p.add_argument("--no_llmbar", action="store_true")
    args = p.parse_args()
    # `is None`, not `or`: a 0 is refused below, not read as the default
    micro = args.batch_size if args.ours_micro_batch_size is None else args.ours_micro_batch_size
    trl_micro = args.batch_size if args.trl_micro_batch_size is None else args.trl_micro_batch_size
    for flag, value in (("--ours_micro_batch_size", micro), ("--trl_micro_batch_size", trl_micro)):
        if value < 1 or args.batch_size % value:
            p.error(f"{flag} {value} must divide --batch_size {args.batch_size}")

    base = resolve_model(SMOLLM2)
    train_rows, test_rows = hh_split(read_rows(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    train, train_skips = to_preferences(train_rows)
    test, test_skips = to_preferences(test_rows)
    atomic_write_jsonl(RUNS / "data" / "train.jsonl", train[: args.pairs])
    lengths = conversation_lengths(train[: args.pairs], base)
    if args.max_length == 0:
        args.max_length = max(lengths)
    atomic_write_jsonl(RUNS / "data" / "test.jsonl", [{**t, "subset": "hh-rlhf-harmless"} for t in test])
    steps = math.ceil(args.pairs / args.batch_size)
    budget = {"pairs": args.pairs, "steps": steps, "batch_size": args.batch_size, "ours_micro_batch_size": micro,
              "trl_micro_batch_size": trl_micro,
              "max_length": args.max_length,
              "longest_pair_tokens": max(lengths), "trl_dropped_pairs": sum(n > args.max_length for n in lengths),
              "train_skipped_rows": train_skips.total, "test_pairs": len(test), "test_skipped_rows": test_skips.total}
    print(f"[bench] budget {budget}", flush=True)

    # Names carry the budget; the default max_length keeps the short form other benches read (bench/runs/bt_hh/ours-64).
    budget_tag = f"{args.pairs}" if args.max_length == DEFAULT_MAX_LENGTH else f"{args.pairs}-L{args.max_length}"
    if micro != args.batch_size:
        budget_tag += f"-mb{micro}"
    if trl_micro != args.batch_size:
        budget_tag += f"-trlmb{trl_micro}"
    report_path = RUNS / f"results-{budget_tag}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report["budget"] = budget
    for run in args.runs:
        out_dir = RUNS / f"{run}-{budget_tag}"
        entry = dict(report.get(run, {}))
        if args.eval_only and run != "untrained":
            model = str(out_dir)
        elif run == "ours":
            entry.update(timed([sys.executable, "bradley_terry_rm/train.py", "--config",
                                "bradley_terry_rm/configs/smollm2-135m-cpu.yaml", "--model_name_or_path", base,
                                "--dataset_name", str(RUNS / "data"), "--output_dir", str(out_dir),
                                "--max_length", str(args.max_length), "--per_device_train_batch_size", str(micro),
                                "--gradient_accumulation_steps", str(args.batch_size // micro),
                                "--max_steps", str(steps), "--learning_rate",
                                str(args.learning_rate), "--save_strategy", "no", "--dataset_test_split", "", "--logging_steps", "1"],
                               RUNS / "logs" / f"train-ours-{budget_tag}.log"))
            entry.update(train_speed(RUNS / "logs" / f"train-ours-{budget_tag}.log"))
            log = (RUNS / "logs" / f"train-ours-{budget_tag}.log").read_text()
            entry["truncated_pairs"] = int(re.search(r"(\d+) truncated to fit", log).group(1))
            model = str(out_dir)
        elif run == "trl":
            entry.update(timed([sys.executable, "-m", "trl.scripts.reward", "--model_name_or_path", base,
                                "--dataset_name", str(RUNS / "data"), "--output_dir", str(out_dir),
                                "--max_length", str(args.max_length), "--per_device_train_batch_size", str(trl_micro),
                                "--gradient_accumulation_steps", str(args.batch_size // trl_micro),
                                "--max_steps", str(steps), "--bf16", "false",
                                "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1"]
                               + ([] if args.trl_learning_rate == "default" else ["--learning_rate", str(
                                   args.learning_rate if args.trl_learning_rate == "same" else float(args.trl_learning_rate))]),
                               RUNS / "logs" / f"train-trl-{budget_tag}.log"))
            entry.update(train_speed(RUNS / "logs" / f"train-trl-{budget_tag}.log"))
            model = str(out_dir)
        elif run == "untrained":
            model = base
        else:
            raise ValueError(run)
        if not args.skip_eval:
            entry.update(evaluate(model, f"{run}-{budget_tag}", not args.no_llmbar))
        report[run] = entry
        atomic_write_json(report_path, report)
        print(f"[bench] {run}: {entry}", flush=True)
    if "ours" in report and "trl" in report and "tokens_per_second" in report["trl"]:
        report["speed_ratio"] = round(report["ours"]["tokens_per_second"] / report["trl"]["tokens_per_second"], 2)
        atomic_write_json(report_path, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
