"""The evaluation report over every trained checkpoint under bench/runs, on every benchmark runnable here.

    python -m bench.eval_report                        # every checkpoint, LLMBar + HH-RLHF test + GSM8K best-of-4
    python -m bench.eval_report --only bt_hh pair_pm   # checkpoints whose path starts with these
    python -m bench.eval_report --limit 20             # quick check: the first 20 items of each benchmark
    python -m bench.eval_report --llmbar_per_subset 20 --hh_pairs 100 --gsm8k_questions 40   # the CPU slices

Checkpoints: every folder under --runs_dir (default bench/runs) whose config.json names an `rm_family`
(bradley_terry, pair_pm, armo, odin, orm, prm, decision_tree), Trainer `checkpoint-*` folders excepted, plus
the untrained baseline bench/runs/smollm2-rm-init (SmolLM2-135M-Instruct with a seeded random head) when it
exists. Benchmarks (eval/report.py): `llmbar` (the five RewardBench chat-hard LLMBar subsets, 419 pairs,
official v1 scoring), `hh_test` (HH-RLHF harmless-base, the 446 test pairs of the fixed split), `gsm8k_bo4`
(best-of-4 over the 319 held-out GSM8K questions, beside random / majority-vote / oracle). RewardBench 2,
RM-Bench and JudgeBench need the Hub and are not run here.

Slices (for a CPU budget): LLMBar's first N pairs of each of its five subsets (stratified, so every section
stays in the score), the first N HH test pairs, the first N held-out GSM8K questions; written once to
<output_dir>/slices in each benchmark's schema. The ArmoRM and decision-tree checkpoints share one frozen
SmolLM2 backbone: they read and fill the ArmoRM bench's embedding cache (--embedding_cache), so together they
cost one forward pass per response, and nothing for the items their training already embedded.

Results are cached per (checkpoint, benchmark) in <output_dir>/cache: a run after a new checkpoint appears
scores only that one; a killed run resumes. Writes <output_dir>/report.md (paste into bench/RESULTS.md),
one PNG per benchmark and report.json, and prints the time each (checkpoint, benchmark) took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BASELINE = "smollm2-rm-init"
ARMO_CACHE = REPO / "bench" / "runs" / "armo" / "embeddings"


def slice_spec(bench: str, args) -> str:
    """The benchmark name, or NAME=KIND:FILE for a slice written (once, in the benchmark's own schema) to
    <output_dir>/slices: LLMBar stratified by subset, HH test and GSM8K by their first items."""
    from eval.report import DATA_ROOT, hh_test_rows
    from rm_core.hub import atomic_write_jsonl

    data_root = Path(args.data_root) if args.data_root else DATA_ROOT
    out = Path(args.output_dir) / "slices"
    if bench == "llmbar" and args.llmbar_per_subset:
        from rm_core.data import LLMBAR_SUBSETS, load_llmbar_as_reward_bench

        rows = load_llmbar_as_reward_bench(data_root / "llmbar")
        rows = [r for s in LLMBAR_SUBSETS.values() for r in [q for q in rows if q["subset"] == s][: args.llmbar_per_subset]]
        kind, name = "reward_bench", f"llmbar_{len(rows)}"
    elif bench == "hh_test" and args.hh_pairs:
        rows = hh_test_rows(data_root / "hh-rlhf" / "harmless-base-test.jsonl.gz")[: args.hh_pairs]
        kind, name = "pairs", f"hh_test_{len(rows)}"
    elif bench == "gsm8k_bo4" and args.gsm8k_questions:
        from rm_core.best_of_n import load_candidates

        rows = load_candidates(str(data_root / "gsm8k" / "example_model_solutions.jsonl"), "test",
                               args.gsm8k_questions)
        kind, name = "best_of_n", f"gsm8k_bo4_{len(rows)}q"
    else:
        return bench
    path = out / f"{name}.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(path, rows)
    return f"{name}={kind}:{path}"


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
    p.add_argument("--embedding_cache", default=str(ARMO_CACHE) if ARMO_CACHE.is_dir() else None,
                   help="shared embedding cache for the armo / decision_tree judges (default: the ArmoRM bench's)")
    p.add_argument("--llmbar_per_subset", type=int, default=None,
                   help="a slice: the first N pairs of each of LLMBar's five subsets (default: all 419 pairs)")
    p.add_argument("--hh_pairs", type=int, default=None, help="a slice: the first N HH-RLHF test pairs (default: 446)")
    p.add_argument("--gsm8k_questions", type=int, default=None,
                   help="a slice: the first N held-out GSM8K questions (default: 319)")
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
        report_argv += ["--bench", slice_spec(b, args)]
    if args.embedding_cache:
        report_argv += ["--embedding_cache", args.embedding_cache]
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
