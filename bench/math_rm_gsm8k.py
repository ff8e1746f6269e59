"""Math PRM / ORM on SmolLM2-135M-Instruct with the GSM8K labelled solutions: best-of-4 on the 319 held-out
questions beside random pick, majority vote and the oracle; PRM one-pass vs per-step scoring time; labelling
throughput and the offline step-label rule's agreement with the outcome labels.

    python -m bench.math_rm_gsm8k                    # all stages, default budget (~50 min on 2 CPU cores)
    python -m bench.math_rm_gsm8k --smoke            # a few questions and steps, to check the plumbing (~3 min)

Stages (each writes bench/runs/math_rm/<stage>.json and is skipped when that file exists; delete it to rerun):
- baselines: random (exact expectation), majority vote (ties: first answer in candidate order; and expected),
  oracle, on the held-out questions (rm_core/best_of_n.py).
- label: the offline rule over all 1319 questions' 5276 solutions (throughput, rule-vs-outcome agreement), and
  Monte-Carlo labelling with SmolLM2 as the policy on --mc_questions GSM8K train questions (throughput only:
  it solves almost nothing, so its labels are nearly all "-").
- orm, prm: math_rm/train_orm.py / train_prm.py with the smollm2-135m-cpu configs on the first
  --train_questions training questions' 4 candidates each (PRM: step labels by the rule), one epoch
  (or --max_steps), batch 8, lr --learning_rate, max_length --max_length; then best-of-4 on --eval_questions.
- timing: the trained PRM scores --timing_solutions held-out solutions in one pass and one pass per step.
- vote: each RM's weighted majority vote (rm_core/best_of_n.py) from its saved held-out scores.

Budget (2 CPU cores, SmolLM2 ~180 train tokens/s, ~500 scoring tokens/s): the default 200 training questions
are ~170k ORM / ~130k PRM training tokens (~16 + ~12 min) and scoring the 1276 held-out candidates takes ~9 min
per model: ~50 min in all. More questions: --train_questions 1000 (~75 min per model per epoch).
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
SHARED = shared_data_dir() / "gsm8k"
SOLUTIONS = SHARED / "example_model_solutions.jsonl"


def stage_baselines(args) -> dict:
    from rm_core.best_of_n import baselines, load_candidates

    return baselines(load_candidates(str(SOLUTIONS), "test", args.eval_questions))


def stage_label(args, runs: Path) -> dict:
    from math_rm.sample_solutions import main as sample
    from math_rm.step_labels import rule_agreement
    from rm_core.data import GSM8K_SOLUTIONS_TRAIN_QUESTIONS

    out = runs / "label" / "gsm8k_rule.jsonl"
    out.unlink(missing_ok=True)
    rule = sample(["--offline_rule", "--solutions", str(SOLUTIONS), "--output", str(out), "--no_progress"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    result = {"rule": {k: rule[k] for k in ("questions", "solutions", "steps", "labelled_steps", "seconds",
                                             "solutions_per_s", "steps_per_s")},
              "agreement_all": rule_agreement([r["solutions"] for r in rows]),
              "agreement_train": rule_agreement([r["solutions"] for r in rows if r["index"] < GSM8K_SOLUTIONS_TRAIN_QUESTIONS])}
    if args.mc_questions:
        mc_out = runs / "label" / "smollm2_mc.jsonl"
        mc_out.unlink(missing_ok=True)
        mc = sample([str(x) for x in [
            "--questions", SHARED / "train.jsonl", "--policy", "HuggingFaceTB/SmolLM2-135M-Instruct",
            "--backend", "hf", "--n", 2, "--mc", 2, "--max_new_tokens", 96, "--limit", args.mc_questions,
            "--output", mc_out, "--no_progress"]])
        rows = [json.loads(line) for line in mc_out.read_text().splitlines()]
        mc["correct_solutions"] = sum(s["is_correct"] for r in rows for s in r["solutions"])
        mc["settings"] = "n=2 solutions, mc=2 completions per prefix, max_new_tokens 96, stop at first error, CPU"
        result["monte_carlo_smollm2"] = mc
    return result


def stage_train(family: str, args, runs: Path) -> dict:
    config = "smollm2-135m-cpu.yaml" if family == "prm" else "smollm2-135m-cpu-orm.yaml"
    out = runs / family
    cmd = [sys.executable, f"math_rm/train_{family}.py", "--config", f"math_rm/configs/{config}",
           "--dataset_name", SOLUTIONS, "--output_dir", out, "--max_train_questions", args.train_questions,
           "--max_eval_questions", args.eval_questions, "--max_length", args.max_length,
           "--learning_rate", args.learning_rate, "--per_device_train_batch_size", 8, "--save_strategy", "no",
           "--logging_steps", 5, "--disable_tqdm", "true"]
    if args.max_steps:
        cmd += ["--max_steps", args.max_steps]
    seconds = run_seconds(cmd, runs / "logs" / f"{family}.log")
    res = json.loads((out / "eval_results.json").read_text())
    train = res["train"]
    return {"seconds_total": seconds, "train_runtime": train.get("train_runtime"),
            "train_tokens": res["data"]["train"]["tokens"], "train_sequences": res["data"]["train"]["rows"],
            "judgements_plus_minus": [res["data"]["train"]["good_steps"], res["data"]["train"]["bad_steps"]],
            "train_tokens_per_s": (res["data"]["train"]["tokens"] * train.get("epoch", 1) / train["train_runtime"]
                                   if train.get("train_runtime") else None),
            "train_loss": train.get("train_loss"), "best_of_n": res.get("best_of_n")}


def stage_timing(args, runs: Path) -> dict:
    import torch

    from judges.base import conversation
    from math_rm.judge import ProcessRewardJudge
    from rm_core.best_of_n import load_candidates

    torch.set_num_threads(2)
    judge = ProcessRewardJudge.from_pretrained(str(runs / "prm"))
    cands = load_candidates(str(SOLUTIONS), "test")
    convs = [conversation(c["prompt"], r) for c in cands for r in c["responses"]][: args.timing_solutions]
    encoded = [judge.encode(c) for c in convs]
    judge.step_scores(convs[:1])  # warm-up
    t0 = time.perf_counter()
    one = judge.step_scores(convs)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    per = judge.step_scores_per_step(convs)
    t_per = time.perf_counter() - t0
    steps = sum(len(s) for s in one)
    return {"solutions": len(convs), "steps": steps,
            "tokens_one_pass": sum(len(ids) for ids, _ in encoded),
            "tokens_per_step": sum(s + 1 for _, slots in encoded for s in slots if s is not None),
            "seconds_one_pass": round(t_one, 3), "seconds_per_step": round(t_per, 3),
            "speedup": round(t_per / t_one, 2),
            "max_abs_diff": max(abs(a - b) for x, y in zip(one, per) for a, b in zip(x, y))}


def stage_vote(runs: Path) -> dict:
    """Each trained RM's weighted majority vote, from its saved held-out scores (no rescoring)."""
    from math_rm.best_of_n import judge_accuracy
    from rm_core.best_of_n import load_candidates

    out = {}
    for fam in ("orm", "prm"):
        saved = runs / fam / "held_out_scores.json"
        if saved.is_file():
            held = json.loads(saved.read_text())
            cands = {c["id"]: c for c in load_candidates(str(SOLUTIONS), "test")}
            # the ORM and PRM here are P("+") judges (math_rm.judge): their scores weigh votes as they are
            acc = judge_accuracy(held["scores"], [cands[i] for i in held["ids"]], probabilities=True)
            out[fam] = {k: acc[k] for k in ("accuracy", "weighted_vote_accuracy")} | {"questions": len(held["ids"])}
    return out


def table(results: dict) -> str:
    b = results.get("baselines", {})
    lines = ["| method | best-of-4 accuracy |", "|---|---|"]
    for key, name in (("random", "random pick (expected)"), ("majority_vote", "majority vote (ties: first)"),
                      ("majority_vote_expected_ties", "majority vote (ties: expected)"), ("oracle", "oracle")):
        if key in b:
            lines.append(f"| {name} | {100 * b[key]:.1f}% |")
    for fam in ("orm", "prm"):
        r = results.get(fam, {}).get("best_of_n") or {}
        if fam in r:
            lines.append(f"| {fam.upper()} (SmolLM2-135M): its top-scored candidate | **{100 * r[fam]['accuracy']:.1f}%** |")
            vote = (results.get("vote", {}).get(fam) or r[fam]).get("weighted_vote_accuracy")
            if vote is not None:
                lines.append(f"| {fam.upper()}-weighted majority vote | **{100 * vote:.1f}%** |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", default=["baselines", "label", "orm", "prm", "timing", "vote"])
    p.add_argument("--train_questions", type=int, default=200)
    p.add_argument("--eval_questions", type=int, default=319)
    p.add_argument("--max_steps", type=int, default=0, help="0: one epoch")
    p.add_argument("--max_length", type=int, default=512)
    p.add_argument("--learning_rate", type=float, default=3e-5)
    p.add_argument("--timing_solutions", type=int, default=8)
    p.add_argument("--mc_questions", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="4 train questions, 2 steps, 3 held-out, into math_rm-smoke")
    args = p.parse_args()
    runs = ROOT / "bench" / "runs" / "math_rm"
    if args.smoke:
        args.train_questions, args.eval_questions, args.max_steps = 4, 3, 2
        args.timing_solutions, args.mc_questions = 2, 0
        runs = runs.with_name("math_rm-smoke")
    if not SOLUTIONS.is_file():
        raise SystemExit(f"{SOLUTIONS} is absent (../shared/data)")
    from rm_core.hub import atomic_write_json

    budget = {k: getattr(args, k) for k in ("train_questions", "eval_questions", "max_steps", "max_length",
                                            "learning_rate", "timing_solutions", "mc_questions")}
    results = {}
    for stage in args.stages:
        path = runs / f"{stage}.json"
        if path.is_file():
            results[stage] = json.loads(path.read_text())
            print(f"[bench] {stage}: done already ({path})", flush=True)
            continue
        t0 = time.perf_counter()
        if stage == "baselines":
            result = stage_baselines(args)
        elif stage == "label":
            result = stage_label(args, runs)
        elif stage in ("orm", "prm"):
            result = stage_train(stage, args, runs)
        elif stage == "timing":
            result = stage_timing(args, runs)
        elif stage == "vote":
            result = stage_vote(runs)
        else:
            raise SystemExit(f"unknown stage {stage}")
        result["budget"], result["stage_seconds"] = budget, round(time.perf_counter() - t0, 1)
        atomic_write_json(path, result)
        results[stage] = result
        print(f"[bench] {stage} ({result['stage_seconds']} s): {json.dumps(result)[:500]}", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
