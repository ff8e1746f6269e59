"""Pair-PM on SmolLM2-135M-Instruct with the HH-RLHF fixed split: beside the BT recipe, on LLMBar, with SSRM
and with RRM augmentation. Each stage trains with pair_pm/train.py (or ssrm.py) in a subprocess and writes
bench/runs/pair_pm/<stage>.json; a stage that has its JSON is skipped (rerun: delete it).

    python -m bench.pair_pm_hh --stages core ssrm rrm

- core: the 64 train pairs of the BT quality run (bench/bt_hh.py --pairs 64), 8 steps of 8 pairs (each pair
  in both orders: 16 examples a step), max_length 512; held-out: the first --test_pairs HH test pairs
  (one order each way, order-debiased, flip rate), with the BT checkpoint's accuracy on the same pairs
  read from its eval_reward_bench scores; then LLMBar (bench/llm_judge_llmbar.py on the checkpoint).
- ssrm: --ssrm_pairs train pairs of the fixed split, 20% labelled: round 0 (20% labelled only), round 1
  (20% + pseudo-labelled rest, confidence quantile 0.5), and a run on 100% of the labels.
- rrm: as core plus RRM augmentation (1 non-contextual and 1 tie triplet per pair, seed 0), at the same
  budget of 8 steps of 16 examples drawn from the augmented set; then LLMBar.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench._common import run_seconds
from rm_core.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs" / "pair_pm"
BT = ROOT / "bench" / "runs" / "bt_hh"
SHARED = shared_data_dir()


def data_dir(name: str, train: list[dict], test: list[dict]) -> Path:
    from rm_core.hub import atomic_write_jsonl

    d = RUNS / "data" / name
    atomic_write_jsonl(d / "train.jsonl", train)
    atomic_write_jsonl(d / "test.jsonl", test)
    return d


def train_args(data: Path, out: Path, args, *extra) -> list[str]:
    return [sys.executable, "pair_pm/train.py", "--config", "pair_pm/configs/smollm2-135m-cpu.yaml",
            "--dataset_name", data, "--output_dir", out, "--max_length", args.max_length,
            "--per_device_train_batch_size", 16, "--learning_rate", args.learning_rate, "--save_strategy", "no",
            "--logging_steps", 1, "--disable_tqdm", "true", *extra]


def llmbar(ckpt: Path, name: str) -> dict:
    out = RUNS / f"llmbar-{name}.json"
    if not out.is_file():
        run_seconds([sys.executable, "-m", "bench.llm_judge_llmbar", "--judge", ckpt, "--max_length", 1024, "--output", out],
            RUNS / "logs" / f"llmbar-{name}.log")
    return json.loads(out.read_text())["overall"]


def bt_accuracy_on(test_ids: set[str]) -> float:
    rows = [json.loads(line) for line in (BT / "eval" / "ours-64-hh_test" / "scores.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["id"] in test_ids]
    return round(sum(r["correct"] for r in rows) / len(rows), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", default=["core", "ssrm", "rrm"])
    p.add_argument("--test_pairs", type=int, default=200)
    p.add_argument("--max_length", type=int, default=512)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--ssrm_pairs", type=int, default=120)
    args = p.parse_args()

    from rm_core.data import hh_split, read_rows, to_preferences

    train_rows, test_rows = hh_split(read_rows(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    pool, _ = to_preferences(train_rows)
    test = [{**t, "subset": "hh-rlhf-harmless"} for t in to_preferences(test_rows)[0]][: args.test_pairs]
    test_ids = {t["id"] for t in test}
    first64 = [json.loads(line) for line in (BT / "data" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in first64] == [r["id"] for r in pool[:64]], "BT bench data differ from the fixed split"
    budget = {"max_length": args.max_length, "learning_rate": args.learning_rate, "test_pairs": len(test)}

    for stage in args.stages:
        result_path = RUNS / f"{stage}.json"
        if result_path.is_file():
            print(f"[bench] {stage}: done already ({result_path})")
            continue
        result = {"budget": budget}
        if stage == "core":
            out = RUNS / "core"
            result["train_seconds"] = run_seconds(train_args(data_dir("core", pool[:64], test), out, args),
                                          RUNS / "logs" / "core.log")
            held = json.loads((out / "eval_results.json").read_text())["held_out"]
            result.update(pair_pm_hh=held, bt_hh_same_pairs=bt_accuracy_on(test_ids), llmbar=llmbar(out, "core"))
        elif stage == "rrm":
            out = RUNS / "rrm"
            result["train_seconds"] = run_seconds(train_args(data_dir("core", pool[:64], test), out, args,
                                                     "--rrm_augment", "true", "--max_steps", 8),
                                          RUNS / "logs" / "rrm.log")
            res = json.loads((out / "eval_results.json").read_text())
            result.update(pair_pm_hh=res["held_out"], rrm=res["data"].get("rrm"), llmbar=llmbar(out, "rrm"))
        elif stage == "ssrm":
            d = data_dir("ssrm", pool[: args.ssrm_pairs], test)
            out = RUNS / "ssrm"
            result["ssrm_seconds"] = run_seconds([sys.executable, "pair_pm/ssrm.py", *train_args(d, out, args)[2:],
                                          "--labelled_fraction", 0.2, "--rounds", 1, "--confidence_quantile", 0.5],
                                         RUNS / "logs" / "ssrm.log")
            result["ssrm"] = json.loads((out / "ssrm_results.json").read_text())
            full = RUNS / "full-labels"
            result["full_seconds"] = run_seconds(train_args(d, full, args), RUNS / "logs" / "full-labels.log")
            result["full_labels"] = json.loads((full / "eval_results.json").read_text())["held_out"]
        else:
            raise SystemExit(f"unknown stage {stage}")
        from rm_core.hub import atomic_write_json

        atomic_write_json(result_path, result)
        print(f"[bench] {stage}: {json.dumps(result)[:600]}", flush=True)


if __name__ == "__main__":
    main()
