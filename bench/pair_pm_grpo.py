"""The reasoning pair-PM trained with GRPO (pair_pm/train_grpo.py) on SmolLM2-135M-Instruct and the HH-RLHF fixed
split: strict both-order accuracy and order-flip rate over the training steps (held-out HH test pairs judged during
training), beside the SFT-trained pair-PM on the same pairs at the same budget; verdict accuracy and malformed-
verdict rate before and after RL on HH test pairs and LLMBar (both orders); the reward curve.

    python -m bench.pair_pm_grpo                       # the default budget: about two hours on a 2-core CPU
    python -m bench.pair_pm_grpo --max_steps 60 --eval_pairs 50
    python -m bench.pair_pm_grpo --consistency_weight 0 --runs bench/runs/pair_pm_grpo-per-order   # the old reward
    python -m bench.pair_pm_grpo --dry_run             # the plan and the training command; nothing is run
    python -m bench.pair_pm_grpo --data builtin --runs bench/runs/pair_pm_grpo-builtin   # a set 135M can learn

--data hh (default): the HH-RLHF fixed split, whose preferences a 135M model does not learn from 64 pairs (neither
way of training does: RESULTS.md). --data builtin: the built-in verifiable set (rm_core/builtin_data.py: refusals,
arithmetic, format requests; every label checked by a verifier, lengths balanced), where the content decides and a
small model can learn it, so the run shows whether the order-consistency reward gives a judge that follows content
rather than position when content can be learnt. Its SFT baseline is trained on the same pairs into RUNS/sft-core.

Stages (each writes <--runs>/<stage>.json, default bench/runs/pair_pm_grpo, and is skipped when that file exists):
- train: pair_pm/train_grpo.py --config pair_pm/configs/smollm2-135m-grpo-cpu.yaml on the first --train_pairs pairs
  of the fixed split's train part (the 64 pairs of the BT and SFT pair-PM runs), --max_steps steps of 2 pairs x 4
  completions, after --warmup_steps format-only SFT steps (each prompt with both verdict letters: the base model
  never writes the tag),
  with the order-consistency reward (--consistency_weight w: a right verdict loses w x the share of the swapped
  order's completions that pick the other response; 0: each order alone, the reward of the first run). The first
  --curve_pairs test pairs (HH, or the built-in set's) are its held-out split, judged greedily in both orders before
  the first step and every --eval_every steps (eval_strategy steps, eval_on_start): the held-out curve (strict
  both-order accuracy, order-flip rate, malformed rate, share of "A") and the reward curve come from the run's
  eval_results.json.
- eval-base / eval-warmup / eval-rl: greedy verdicts in both orders (ReasoningPairPMJudge, --max_new_tokens) on
  the first --eval_pairs test pairs (HH or built-in) and --eval_pairs LLMBar pairs (the first eval_pairs / 5 of each
  of its five subsets): the untouched base model (on --base_eval_pairs of each: it writes no verdict at all), the
  format-warmed model (= before RL) and the RL checkpoint (= after RL), through the checkpoint's judges.load.
- sft: the SFT-trained pair-PM (bench/pair_pm_hh.py's core checkpoint: the same 64 pairs, 8 steps of 8 pairs;
  trained here on the first --train_pairs pairs with the same command when it is missing) on the same eval pairs
  and the curve pairs: strict both-order accuracy (right with the chosen response shown first AND second), order-
  flip rate, and its order-debiased accuracy.
- report: report.md, the curve table (`curve_table`): per evaluation step the GRPO judge's strict accuracy and
  flip rate on the curve pairs, the SFT pair-PM's on the same pairs beside it, with each run's budget.

Time, measured end to end on a 2-core AVX2-only AMD EPYC with nothing else running (2026-12-02): the train stage
(6 warm-up steps, 30 GRPO steps, 6 curve evaluations of 2 x 20 verdicts) took 89 minutes, about 2.5 minutes a GRPO
step with its share of the curve; then the evaluations and the SFT baseline (trained here when missing) come on
top. Plan on about two hours for the defaults on such a CPU. With --data builtin (short pairs), 160 pairs, 80 steps
and 96 new tokens, the train stage took 50 minutes on a 2-core AVX512-BF16 AMD EPYC (2.5 of them shared with tests).
The record of that run is bench/records/pair_pm_grpo-builtin-160pairs.json.
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
    """(train pool, held-out test pairs, LLMBar pairs), the eval sets cut to --eval_pairs. --data hh: the HH-RLHF
    fixed split; --data builtin: the built-in preference set (rm_core/builtin_data.py: every label checked by a
    verifier, lengths balanced, test prompts never in train), whose signal a 135M model can learn."""
    from rm_core.data import LLMBAR_SUBSETS, hh_split, load_llmbar_as_reward_bench, read_rows, to_preferences

    if args.data == "builtin":
        from rm_core.builtin_data import build_builtin_preferences

        train, test = build_builtin_preferences()
        pool, test_prefs = to_preferences(train)[0], to_preferences(test)[0][: args.eval_pairs]
    else:
        train_rows, test_rows = hh_split(read_rows(Path(args.hh_file)))
        pool, _ = to_preferences(train_rows)
        test_prefs = [{**t, "subset": "hh-rlhf-harmless"} for t in to_preferences(test_rows)[0]][: args.eval_pairs]
    llmbar_all, _ = to_preferences(load_llmbar_as_reward_bench(args.llmbar_dir))
    per = max(1, args.eval_pairs // len(LLMBAR_SUBSETS))
    llmbar = [p for s in LLMBAR_SUBSETS.values() for p in [q for q in llmbar_all if q["subset"] == s][:per]]
    return pool, test_prefs, llmbar


DATA_NAMES = {"hh": "HH", "builtin": "built-in"}  # --data -> how the report names its held-out pairs


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


def sft_order_metrics(judge, prefs: list[dict]) -> dict:
    """The SFT pair-PM on preference pairs, both orders in one pass: pair_pm.train.evaluate_pair_pm (order-debiased
    accuracy, each order, flips) plus strict both-order accuracy and order-flip rate (train_grpo.both_order_metrics,
    the definitions the GRPO judge's curve uses); a non-finite P(A) fails its pair."""
    import math

    from judges.base import PairVerdict
    from pair_pm.train import evaluate_pair_pm
    from pair_pm.train_grpo import both_order_metrics

    judged = judge.judge_pairs([(p["prompt"], p["chosen"][-1]["content"], p["rejected"][-1]["content"])
                                for p in prefs])
    verdicts = [PairVerdict(*(x if math.isfinite(x) else None for x in (v.p_forward, v.p_backward))) for v in judged]
    probs = [x for v in judged for x in (v.p_forward, 1.0 - v.p_backward)]  # P(A) in each order, as evaluate_pair_pm
    return {**evaluate_pair_pm(judge, prefs, probs), **both_order_metrics(verdicts)}


def sft_accuracy(sets: dict[str, list[dict]], pool: list[dict], args, runs: Path) -> dict:
    """The SFT pair-PM (order-debiased P(A) from the answer-token logits) on the same pairs, with its budget."""
    import judges
    from rm_core.hub import atomic_write_jsonl

    core = Path(args.sft_checkpoint)
    result = {"checkpoint": str(core)}
    if not (core / "config.json").is_file():
        data = runs / "data" / "sft"
        atomic_write_jsonl(data / "train.jsonl", pool[: args.train_pairs])
        result["train_seconds"] = run_seconds(
            [sys.executable, "pair_pm/train.py", "--config", "pair_pm/configs/smollm2-135m-cpu.yaml",
             "--model_name_or_path", args.model, "--dataset_name", data, "--dataset_test_split", "", "--output_dir",
             core, "--max_length", 512, "--per_device_train_batch_size", 16, "--learning_rate", args.sft_learning_rate,
             "--num_train_epochs", args.sft_epochs, "--save_strategy", "no", "--logging_steps", 1,
             "--disable_tqdm", "true"], runs / "logs" / "sft.log")
        epochs = "one epoch" if args.sft_epochs == 1 else f"{args.sft_epochs:g} epochs"
        result["budget"] = (f"{args.train_pairs} pairs (both orders), batches of 8 pairs, {epochs}, lr "
                            f"{args.sft_learning_rate:g}, trained here in {result['train_seconds']:.0f} s")
    else:
        result["budget"] = (f"the checkpoint at {core}" + (" (bench/pair_pm_hh.py core: 64 pairs, 8 steps of 8 pairs)"
                                                            if core == SFT_CORE else ""))
    judge = judges.load(str(core), max_length=1024)
    for name, prefs in sets.items():
        if prefs:
            result[name] = sft_order_metrics(judge, prefs)
    return result


def _pct(x, ci=None) -> str:
    """A rate in percent, with its 95% interval in brackets when there is one."""
    from rm_core.stats import percent_with_ci

    return percent_with_ci(x, ci, none="-", unit="%")


def curve_table(train: dict, sft: dict | None = None, curve_set: str | None = None) -> str:
    """Markdown: the GRPO judge's held-out curve (train.json's held_out_curve: strict both-order accuracy, order-
    flip rate, malformed verdicts, share of "A", per evaluation step) and, beside it, the SFT pair-PM on the same
    pairs (sft.json[curve_set]), each with its budget."""
    curve = train.get("held_out_curve") or []
    budget = train.get("budget", {})
    data = budget.get("data", "hh")  # runs before --data existed were HH runs
    curve_set = curve_set or f"{data}_curve"
    pairs = curve[0]["pairs"] if curve else 0
    lines = [f"Held-out curve: {int(pairs or 0)} {DATA_NAMES.get(data, data)} test pairs judged greedily in both "
             f"orders (strict: right with the chosen response shown first and second; flips: the verdict changes "
             f"with the order, among pairs that parse in both orders; 95% bootstrap intervals over the pairs in "
             f"brackets). GRPO: "
             f"{budget.get('train_pairs', '?')} training pairs, "
             f"{budget.get('max_steps', '?')} GRPO steps after "
             f"{budget.get('warmup_steps', '?')} format warm-up steps, order-consistency weight "
             f"{budget.get('consistency_weight', '?')}"
             + (f", {train['train_seconds']:.0f} s" if isinstance(train.get("train_seconds"), (int, float)) else "")
             + ".", "",
             "| model | step | strict both-order accuracy | order flips | malformed verdicts | answers \"A\" |",
             "|---|---|---|---|---|---|"]
    def rates(m: dict) -> str:
        ci = m.get("ci95") or {}
        return (f"{_pct(m['strict_accuracy'], ci.get('strict_accuracy'))} | "
                f"{_pct(m['order_flip_rate'], ci.get('order_flip_rate'))}")

    for c in curve:
        lines.append(f"| GRPO reasoning pair-PM | {c['step']} | {rates(c)} | {_pct(c['malformed_rate'])} | "
                     f"{_pct(c['answer_a_rate'])} |")
    if sft and sft.get(curve_set):
        lines.append(f"| SFT pair-PM ({sft.get('budget', 'same pairs')}) | end | {rates(sft[curve_set])} | - | - |")
    return "\n".join(lines) + "\n"


def train_command(args, runs: Path) -> list:
    """The train stage's pair_pm/train_grpo.py command (data under runs/data, checkpoint runs/rl)."""
    curve = ["--dataset_test_split", "test", "--max_eval_pairs", args.curve_pairs, "--eval_strategy", "steps",
             "--eval_steps", args.eval_every, "--eval_on_start", "true"] if args.curve_pairs else \
        ["--dataset_test_split", "", "--eval_strategy", "no"]
    return [sys.executable, "pair_pm/train_grpo.py", "--config", args.config, "--model_name_or_path", args.model,
            "--dataset_name", runs / "data", *curve, "--output_dir", runs / "rl",
            "--max_steps", args.max_steps, "--format_warmup_steps", args.warmup_steps,
            "--max_prompt_length", args.max_prompt_length, "--max_completion_length", args.max_new_tokens,
            "--consistency_weight", args.consistency_weight,
            "--save_strategy", "no", "--disable_tqdm", "true", *args.extra]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", default=["train", "eval-base", "eval-warmup", "eval-rl", "sft", "report"])
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--config", default="pair_pm/configs/smollm2-135m-grpo-cpu.yaml")
    p.add_argument("--train_pairs", type=int, default=64)
    p.add_argument("--max_steps", type=int, default=30, help="GRPO steps (2 pairs x 4 completions each)")
    p.add_argument("--warmup_steps", type=int, default=6, help="format-only SFT steps before RL (0: none)")
    p.add_argument("--max_prompt_length", type=int, default=384)
    p.add_argument("--max_new_tokens", type=int, default=64, help="training completions and eval verdicts")
    p.add_argument("--consistency_weight", type=float, default=0.5,
                   help="the order-consistency reward's weight w in [0, 1] (0: each order alone)")
    p.add_argument("--curve_pairs", type=int, default=20,
                   help="test pairs (--data) judged during training for the held-out curve (0: no curve)")
    p.add_argument("--eval_every", type=int, default=6, help="GRPO steps between two points of the curve")
    p.add_argument("--eval_pairs", type=int, default=40, help="test pairs (--data), and LLMBar pairs, evaluated")
    p.add_argument("--base_eval_pairs", type=int, default=10, help="pairs of each set for the untouched base")
    p.add_argument("--batch_size", type=int, default=8, help="prompts per greedy generation batch")
    p.add_argument("--data", choices=sorted(DATA_NAMES), default="hh",
                   help="training and held-out pairs: the HH-RLHF fixed split, or the built-in verifiable set")
    p.add_argument("--hh_file", default=str(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    p.add_argument("--llmbar_dir", default=str(SHARED / "llmbar"))
    p.add_argument("--runs", default=str(RUNS), help="output folder (a smoke test points it elsewhere)")
    p.add_argument("--sft_checkpoint", default=None,
                   help="the SFT pair-PM to compare with (trained on the same --train_pairs pairs when missing); "
                        f"default: {SFT_CORE.relative_to(ROOT)} for --data hh, RUNS/sft-core for --data builtin")
    p.add_argument("--sft_epochs", type=float, default=1, help="epochs of the SFT pair-PM trained here")
    p.add_argument("--sft_learning_rate", type=float, default=5e-5, help="the SFT pair-PM's learning rate")
    p.add_argument("--dry_run", action="store_true", help="print the plan and the training command, run nothing")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further train_grpo.py flags, after everything else (e.g. --extra --use_cpu true)")
    args = p.parse_args(argv)
    if not 0.0 <= args.consistency_weight <= 1.0:
        p.error("--consistency_weight is in [0, 1]")
    if args.curve_pairs < 0 or args.eval_every < 1:
        p.error("--curve_pairs is >= 0 and --eval_every >= 1")

    runs = Path(args.runs)
    ckpt = runs / "rl"
    if args.sft_checkpoint is None:
        args.sft_checkpoint = str(SFT_CORE if args.data == "hh" else runs / "sft-core")
    if (args.sft_epochs, args.sft_learning_rate) != (1, 5e-5) and (Path(args.sft_checkpoint) / "config.json").is_file():
        p.error(f"--sft_epochs / --sft_learning_rate train a new SFT pair-PM, but {args.sft_checkpoint} exists already "
                "(it would be used as it is): pass another --runs or --sft_checkpoint")
    budget = {k: getattr(args, k) for k in ("data", "train_pairs", "max_steps", "warmup_steps", "max_prompt_length",
                                            "max_new_tokens", "consistency_weight", "curve_pairs", "eval_every",
                                            "eval_pairs", "base_eval_pairs")}
    if args.dry_run:
        print(f"[bench] stages: {' '.join(args.stages)}; runs: {runs}")
        print(f"[bench] budget: {json.dumps(budget)}")
        print("[bench] train: $ " + " ".join(str(c) for c in train_command(args, runs)), flush=True)
        return
    from rm_core.hub import atomic_write_json, atomic_write_jsonl

    pool, test_prefs, llmbar = load_data(args)
    curve_set = test_prefs[: args.curve_pairs]
    held = f"{args.data}_test"  # hh_test / builtin_test
    sets = {held: test_prefs, "llmbar": llmbar}
    budget.update({f"{held}_pairs": len(test_prefs), "llmbar_pairs": len(llmbar),
                   f"{args.data}_curve_pairs": len(curve_set), "extra": [str(x) for x in args.extra]})
    for stage in args.stages:
        path = runs / f"{stage}.json"
        if stage == "report":  # cheap: rebuilt from the other stages every time
            stages = {s: json.loads((runs / f"{s}.json").read_text()) for s in ("train", "sft")
                      if (runs / f"{s}.json").is_file()}
            if "train" not in stages:
                raise SystemExit(f"no train stage in {runs}: run it first")
            table = curve_table(stages["train"], stages.get("sft"))
            (runs / "report.md").write_text(table, encoding="utf-8")
            print(table, flush=True)
            continue
        if path.is_file():
            print(f"[bench] {stage}: done already ({path})")
            continue
        result: dict = {"budget": budget}
        t0 = time.perf_counter()
        if stage == "train":
            data = runs / "data"
            atomic_write_jsonl(data / "train.jsonl", pool[: args.train_pairs])
            if curve_set:
                atomic_write_jsonl(data / "test.jsonl", curve_set)
            result["train_seconds"] = run_seconds(train_command(args, runs), runs / "logs" / "train.log")
            res = json.loads((ckpt / "eval_results.json").read_text())
            result.update(reward_curve=res["reward_curve"], held_out_curve=res.get("held_out_curve", []),
                          held_out=res.get("held_out"), order_consistency=res.get("order_consistency"),
                          format_warmup=res["format_warmup"], data=res["data"], train=res["train"])
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
            result.update(sft_accuracy({**sets, f"{args.data}_curve": curve_set}, pool, args, runs))
        else:
            raise SystemExit(f"unknown stage {stage}")
        result["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(path, result)
        print(f"[bench] {stage}: {json.dumps(result)[:800]}", flush=True)


if __name__ == "__main__":
    main()
