"""The reasoning pair-PM trained with GRPO (pair_pm/train_grpo.py) on SmolLM2-135M-Instruct and the HH-RLHF fixed
split: verdict accuracy and malformed-verdict rate before and after RL on HH test pairs and LLMBar (both orders),
the reward curve, and the SFT-trained pair-PM on the same pairs at a comparable budget.

    python -m bench.pair_pm_grpo                       # the default budget: about an hour on a 2-core CPU
    python -m bench.pair_pm_grpo --max_steps 60 --eval_pairs 50

Stages (each writes bench/runs/pair_pm_grpo/<stage>.json and is skipped when that file exists; delete to rerun):
- train: pair_pm/train_grpo.py --config pair_pm/configs/smollm2-135m-grpo-cpu.yaml on the first --train_pairs pairs
  of the fixed split's train part (the 64 pairs of the BT and SFT pair-PM runs), --max_steps steps of 2 pairs x 4
  completions, after --warmup_steps format-only SFT steps (random verdicts: the base model never writes the tag);
  the reward curve comes from the trainer's log history.
- eval-base / eval-warmup / eval-rl: greedy verdicts in both orders (ReasoningPairPMJudge, --max_new_tokens) on
  the first --eval_pairs HH test pairs and --eval_pairs LLMBar pairs (the first eval_pairs / 5 of each of its five
  subsets): the untouched base model (on --base_eval_pairs of each: it writes no verdict at all), the format-
  warmed model (= before RL) and the RL checkpoint (= after RL), through the checkpoint's judges.load.
- sft: the SFT-trained pair-PM (bench/pair_pm_hh.py's core checkpoint: the same 64 pairs, 8 steps of 8 pairs,
  trained here with the same command when it is missing) on the same eval pairs, order-debiased.

Time (estimated, not measured end to end: the machine was busy): a GRPO step ~1 min (generation of 8 x 64 tokens
+ the update on 8 x ~450 tokens), a greedy verdict ~2-3 s in batches of 8, so: warm-up ~3 min, 30 steps ~30 min,
3 evaluations (2 x 160 + 40 outputs) ~20 min, SFT baseline ~2 min (+7 min when its checkpoint must be trained).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench._common import run_seconds
from rm_core.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs" / "pair_pm_grpo"
SFT_CORE = ROOT / "bench" / "runs" / "pair_pm" / "core"
SHARED = shared_data_dir()


def load_data(args) -> tuple[list[dict], list[dict], list[dict]]:
    """(train pool, HH test pairs, LLMBar pairs), the eval sets cut to --eval_pairs."""
    from rm_core.data import LLMBAR_SUBSETS, hh_split, load_llmbar_as_reward_bench, read_rows, to_preferences

    hh = Path(args.hh_file)
    train_rows, test_rows = hh_split(read_rows(hh))
    pool, _ = to_preferences(train_rows)
    hh_test = [{**t, "subset": "hh-rlhf-harmless"} for t in to_preferences(test_rows)[0]][: args.eval_pairs]
    llmbar_all, _ = to_preferences(load_llmbar_as_reward_bench(args.llmbar_dir))
    per = max(1, args.eval_pairs // len(LLMBAR_SUBSETS))
    llmbar = [p for s in LLMBAR_SUBSETS.values() for p in [q for q in llmbar_all if q["subset"] == s][:per]]
    return pool, hh_test, llmbar


def judge_sets(judge, sets: dict[str, list[dict]]) -> dict:
    from pair_pm.train_grpo import evaluate_reasoning_judge

    out = {}
    for name, prefs in sets.items():
        t0 = time.perf_counter()
        out[name] = evaluate_reasoning_judge(judge, prefs)
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"[eval] {name}: {json.dumps(out[name])}", flush=True)
    out["failures"] = judge.failures.as_dict()
    out["samples"] = [{"forward": i["text_forward"], "backward": i["text_backward"]}
                      for i in judge.last_item_info[:3]]
    return out


def reasoning_judge(path: str | Path, args, from_config: bool):
    """The judge of a checkpoint: judges.load for the RL checkpoint (its config says pair_pm_reasoning), else the
    same judge class on a plain causal LM (the base model, the format-warmed model) with the bench's budget."""
    import judges
    from pair_pm.judge import ReasoningPairPMJudge

    if from_config:
        judge = judges.load(str(path), batch_size=args.batch_size)
        assert isinstance(judge, ReasoningPairPMJudge), type(judge)
        return judge
    return ReasoningPairPMJudge.from_pretrained(str(path), max_length=args.max_prompt_length,
                                               max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)


def sft_accuracy(sets: dict[str, list[dict]], pool: list[dict], args, runs: Path) -> dict:
    """The SFT pair-PM (order-debiased P(A) from the answer-token logits) on the same pairs."""
    import judges
    from pair_pm.train import evaluate_pair_pm
    from rm_core.hub import atomic_write_jsonl

    core = Path(args.sft_checkpoint)
    result = {"checkpoint": str(core)}
    if not (core / "config.json").is_file():
        data = runs / "data" / "sft"
        atomic_write_jsonl(data / "train.jsonl", pool[:64])
        result["train_seconds"] = run_seconds(
            [sys.executable, "pair_pm/train.py", "--config", "pair_pm/configs/smollm2-135m-cpu.yaml",
             "--model_name_or_path", args.model, "--dataset_name", data, "--dataset_test_split", "", "--output_dir",
             core, "--max_length", 512, "--per_device_train_batch_size", 16, "--learning_rate", 5e-5,
             "--save_strategy", "no", "--logging_steps", 1, "--disable_tqdm", "true"], runs / "logs" / "sft.log")
    judge = judges.load(str(core), max_length=1024)
    for name, prefs in sets.items():
        result[name] = evaluate_pair_pm(judge, prefs)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", default=["train", "eval-base", "eval-warmup", "eval-rl", "sft"])
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--config", default="pair_pm/configs/smollm2-135m-grpo-cpu.yaml")
    p.add_argument("--train_pairs", type=int, default=64)
    p.add_argument("--max_steps", type=int, default=30, help="GRPO steps (2 pairs x 4 completions each)")
    p.add_argument("--warmup_steps", type=int, default=6, help="format-only SFT steps before RL (0: none)")
    p.add_argument("--max_prompt_length", type=int, default=384)
    p.add_argument("--max_new_tokens", type=int, default=64, help="training completions and eval verdicts")
    p.add_argument("--eval_pairs", type=int, default=40, help="HH test pairs, and LLMBar pairs, evaluated")
    p.add_argument("--base_eval_pairs", type=int, default=10, help="pairs of each set for the untouched base")
    p.add_argument("--batch_size", type=int, default=8, help="prompts per greedy generation batch")
    p.add_argument("--hh_file", default=str(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    p.add_argument("--llmbar_dir", default=str(SHARED / "llmbar"))
    p.add_argument("--runs", default=str(RUNS), help="output folder (a smoke test points it elsewhere)")
    p.add_argument("--sft_checkpoint", default=str(SFT_CORE),
                   help="the SFT pair-PM to compare with (trained on the same 64 pairs when missing)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further train_grpo.py flags, after everything else (e.g. --extra --use_cpu true)")
    args = p.parse_args()

    runs = Path(args.runs)
    from rm_core.hub import atomic_write_json, atomic_write_jsonl

    pool, hh_test, llmbar = load_data(args)
    sets = {"hh_test": hh_test, "llmbar": llmbar}
    ckpt = runs / "rl"
    budget = {k: getattr(args, k) for k in ("train_pairs", "max_steps", "warmup_steps", "max_prompt_length",
                                            "max_new_tokens", "eval_pairs", "base_eval_pairs")}
    budget.update(hh_test_pairs=len(hh_test), llmbar_pairs=len(llmbar))
    for stage in args.stages:
        path = runs / f"{stage}.json"
        if path.is_file():
            print(f"[bench] {stage}: done already ({path})")
            continue
        result: dict = {"budget": budget}
        t0 = time.perf_counter()
        if stage == "train":
            data = runs / "data"
            atomic_write_jsonl(data / "train.jsonl", pool[: args.train_pairs])
            result["train_seconds"] = run_seconds(
                [sys.executable, "pair_pm/train_grpo.py", "--config", args.config, "--model_name_or_path", args.model,
                 "--dataset_name", data, "--dataset_test_split", "", "--output_dir", ckpt,
                 "--max_steps", args.max_steps, "--format_warmup_steps", args.warmup_steps,
                 "--max_prompt_length", args.max_prompt_length, "--max_completion_length", args.max_new_tokens,
                 "--save_strategy", "no", "--disable_tqdm", "true", *args.extra], runs / "logs" / "train.log")
            res = json.loads((ckpt / "eval_results.json").read_text())
            result.update(reward_curve=res["reward_curve"], format_warmup=res["format_warmup"], data=res["data"],
                          train=res["train"])
        elif stage == "eval-base":
            small = {k: v[: args.base_eval_pairs] for k, v in sets.items()}
            result.update(judge_sets(reasoning_judge(args.model, args, from_config=False), small))
        elif stage == "eval-warmup":
            warm = ckpt / "format-warmup"
            if not (warm / "config.json").is_file():
                raise SystemExit(f"no format-warmed model at {warm}: run the train stage with --warmup_steps > 0")
            result.update(judge_sets(reasoning_judge(warm, args, from_config=False), sets))
        elif stage == "eval-rl":
            result.update(judge_sets(reasoning_judge(ckpt, args, from_config=True), sets))
        elif stage == "sft":
            result.update(sft_accuracy(sets, pool, args, runs))
        else:
            raise SystemExit(f"unknown stage {stage}")
        result["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(path, result)
        print(f"[bench] {stage}: {json.dumps(result)[:800]}", flush=True)


if __name__ == "__main__":
    main()
