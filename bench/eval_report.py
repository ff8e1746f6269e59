"""The evaluation report over every trained checkpoint under bench/runs, on every benchmark runnable here.

    python bench/eval_report.py                        # every checkpoint, LLMBar + HH-RLHF test + GSM8K best-of-4
    python bench/eval_report.py --only bt_hh pair_pm   # checkpoints whose path starts with these
    python bench/eval_report.py --limit 20             # quick check: the first 20 items of each benchmark

Checkpoints: every folder under --runs_dir (default bench/runs) whose config.json names an `rm_family`
(bradley_terry, pair_pm, armo, odin, orm, prm, decision_tree), Trainer `checkpoint-*` folders excepted, plus
the untrained baseline bench/runs/smollm2-rm-init (SmolLM2-135M-Instruct with a seeded random head) when it
exists. Benchmarks (eval/report.py): `llmbar` (the five RewardBench chat-hard LLMBar subsets, 419 pairs,
official v1 scoring), `hh_test` (HH-RLHF harmless-base, the 446 test pairs of the fixed split), `gsm8k_bo4`
(best-of-4 over the 319 held-out GSM8K questions, beside random / majority-vote / oracle). RewardBench 2,
RM-Bench and JudgeBench need the Hub and are not run here.

Results are cached per (checkpoint, benchmark) in <output_dir>/cache: a run after a new checkpoint appears
scores only that one; a killed run resumes. Writes <output_dir>/report.md (paste into bench/RESULTS.md),
one PNG per benchmark and report.json, and prints the time each (checkpoint, benchmark) took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASELINE = "smollm2-rm-init"


def find_checkpoints(runs_dir: Path, include_baseline: bool = True) -> dict[str, Path]:
    """name (path under runs_dir) -> folder, for every self-describing checkpoint under runs_dir."""
    found = {}
    for config in sorted(runs_dir.rglob("config.json")):
        folder = config.parent
        rel = folder.relative_to(runs_dir)
        if any(part.startswith("checkpoint-") or part.startswith(".") for part in rel.parts):
            continue
        try:
            family = json.loads(config.read_text(encoding="utf-8")).get("rm_family")
        except (json.JSONDecodeError, OSError):
            continue
        if family or (include_baseline and rel.as_posix() == BASELINE):
            found[rel.as_posix()] = folder
    return found


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs_dir", default=str(REPO / "bench" / "runs"))
    p.add_argument("--output_dir", default=str(REPO / "bench" / "runs" / "eval_report"))
    p.add_argument("--bench", nargs="*", default=["llmbar", "hh_test", "gsm8k_bo4"])
    p.add_argument("--only", nargs="*", default=None, help="checkpoints whose name starts with one of these")
    p.add_argument("--no_baseline", action="store_true", help="leave out the untrained smollm2-rm-init")
    p.add_argument("--limit", type=int, default=None, help="score only the first N items of each benchmark")
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--data_root", default=None)
    args = p.parse_args(argv)

    checkpoints = find_checkpoints(Path(args.runs_dir), not args.no_baseline)
    if args.only:
        checkpoints = {k: v for k, v in checkpoints.items() if k.startswith(tuple(args.only))}
    if not checkpoints:
        raise SystemExit(f"no checkpoint with an rm_family under {args.runs_dir}")
    print("[bench] checkpoints: " + ", ".join(checkpoints), flush=True)

    from eval import report

    report_argv = ["--output_dir", args.output_dir, "--max_length", str(args.max_length), "--dtype", args.dtype]
    for b in args.bench:
        report_argv += ["--bench", b]
    for name, folder in checkpoints.items():
        report_argv += ["--judge", f"{name}={folder}"]
    if args.limit:
        report_argv += ["--limit", str(args.limit)]
    if args.data_root:
        report_argv += ["--data_root", args.data_root]
    t0 = time.perf_counter()
    result = report.main(report_argv)
    total = time.perf_counter() - t0
    print(f"\n[bench] total {total:.0f} s; per (checkpoint, benchmark), wall seconds:")
    for name, per_bench in result["results"].items():
        for bench, entry in per_bench.items():
            state = "cached" if entry.get("cached") else f"{entry['seconds']:.0f} s"
            print(f"  {name:<32} {bench:<10} {state:>10}  (judge load {entry.get('judge_load_seconds')} s)")
    return result


if __name__ == "__main__":
    main()
