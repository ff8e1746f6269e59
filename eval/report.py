"""One report over several checkpoints (or judges) and several benchmarks, checkpoints side by side.

    python -m eval.report --judge bt=outputs/bt-smollm2 --judge pm=outputs/pair-pm \
        --bench llmbar --bench hh_test --bench gsm8k_bo4 --output_dir reports/main
    python -m eval.report --judge CKPT --bench reward_bench2 --bench rm_bench --bench judgebench   # Hub data
    python -m eval.report --judge CKPT --bench mine=rm_bench:data/rm_bench.json:train              # any file
    accelerate launch --num_processes 8 -m eval.report ...          # every benchmark split over the processes

Writes DIR/report.md (a markdown table per benchmark: one column per judge, the benchmark's headline numbers
as rows, then the time each took), DIR/<benchmark>.png (a grouped bar chart per benchmark section) and
DIR/report.json. Each (judge, benchmark) result is cached in DIR/cache/<judge>__<benchmark>__<key>/ (the
benchmark's own results.json and scores.jsonl) under a key made of the judge spec, its checkpoint's files (by
content), the benchmark, its data set (path and content, or Hub commit), split and options: a second run with one
more judge scores only that judge; a checkpoint or data set changed in place, or a changed option, scores again. A killed run resumes inside a benchmark
from its partial file. `--embedding_cache DIR` lets ArmoRM and decision-tree judges on the same frozen backbone
share one forward pass per response (and reuse a training run's cache).

Benchmarks (`--bench NAME` or `--bench NAME=KIND:DATASET[:SPLIT]`; KIND is one of KINDS):
  llmbar        RewardBench v1 scoring of LLMBar's five chat-hard subsets (../shared/data/llmbar)
  hh_test       pairwise accuracy on the HH-RLHF harmless-base test part of the project's fixed split
  gsm8k_bo4     best-of-4 on the 319 held-out GSM8K questions (labelled model solutions)
  reward_bench, reward_bench2, rm_bench, judgebench   the Hub data sets (allenai/reward-bench, ...)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from eval.runner import broadcast, process_state
from rm_core.data import shared_data_dir
from rm_core.errors import cli_entry

DATA_ROOT = shared_data_dir()  # $RM_SHARED_DATA, else ../shared/data beside the project
KINDS = ["reward_bench", "pairs", "reward_bench2", "rm_bench", "judgebench", "best_of_n"]
HH_TEST_SUBSET = "hh-rlhf-harmless-test"
EMBEDDING_FAMILIES = {"armo", "decision_tree"}  # judges that accept embedding_cache=


def builtin_benchmarks(data_root: Path) -> dict[str, dict]:
    return {
        "llmbar": {"kind": "reward_bench", "dataset": str(data_root / "llmbar"), "split": "filtered",
                   "title": "LLMBar (RewardBench chat-hard llmbar subsets, 419 pairs)"},
        "hh_test": {"kind": "pairs", "dataset": str(data_root / "hh-rlhf" / "harmless-base-test.jsonl.gz"),
                    "split": "hh_test", "title": "HH-RLHF harmless-base, test part of the fixed split (446 pairs)"},
        "gsm8k_bo4": {"kind": "best_of_n", "dataset": str(data_root / "gsm8k" / "example_model_solutions.jsonl"),
                      "split": "test", "title": "GSM8K best-of-4 (319 held-out questions)"},
        "reward_bench": {"kind": "reward_bench", "dataset": "allenai/reward-bench", "split": "filtered",
                         "title": "RewardBench"},
        "reward_bench2": {"kind": "reward_bench2", "dataset": "allenai/reward-bench-2", "split": "test",
                          "title": "RewardBench 2"},
        "rm_bench": {"kind": "rm_bench", "dataset": "THU-KEG/RM-Bench", "split": "train", "title": "RM-Bench"},
        "judgebench": {"kind": "judgebench", "dataset": "ScalerLab/JudgeBench", "split": "gpt",
                       "title": "JudgeBench (GPT-4o pairs)"},
    }


def parse_bench(spec: str, data_root: Path) -> tuple[str, dict]:
    builtin = builtin_benchmarks(data_root)
    if "=" not in spec:
        if spec not in builtin:
            raise ValueError(f"unknown benchmark {spec!r}: use one of {sorted(builtin)} or NAME=KIND:DATASET[:SPLIT]")
        return spec, builtin[spec]
    name, _, rest = spec.partition("=")
    kind, _, rest = rest.partition(":")
    dataset, _, split = rest.rpartition(":") if rest.count(":") and not Path(rest).exists() else (rest, "", "")
    if kind not in KINDS:
        raise ValueError(f"benchmark kind {kind!r} is not one of {KINDS}")
    defaults = {"reward_bench": "filtered", "pairs": "train", "reward_bench2": "test", "rm_bench": "train",
                "judgebench": "gpt", "best_of_n": "test"}
    return name, {"kind": kind, "dataset": dataset, "split": split or defaults[kind], "title": name}


def parse_judge(spec: str) -> tuple[str, str]:
    if "=" in spec and not Path(spec).exists():
        name, _, path = spec.partition("=")
        return name, path
    return Path(spec.rstrip("/")).name, spec


# ---------------------------------------------------------------- cache keys


def judge_fingerprint(spec: str) -> dict:
    """What identifies a judge: its spec, and a local checkpoint (or llm: model) by the content of its files, a
    Hub id by its commit (rm_core.resume.judge_fingerprint), so retraining a checkpoint in place scores again."""
    from rm_core.resume import judge_fingerprint as by_content

    return {"spec": spec, "content": by_content(spec)}


def cache_key(judge_spec: str, bench_name: str, bench: dict, options: dict) -> str:
    from rm_core.resume import data_fingerprint

    data = data_fingerprint(bench["dataset"])  # a local data set by content: an edit in place scores again
    blob = json.dumps({"judge": judge_fingerprint(judge_spec), "benchmark": bench_name,
                       "kind": bench["kind"], "dataset": bench["dataset"], "split": bench["split"],
                       "data": {k: v for k, v in data.items() if k != "path"}, "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- running one (judge, benchmark)


def hh_test_rows(dataset: str | Path) -> list[dict]:
    """The HH-RLHF test part of the fixed split as RewardBench-schema-compatible rows (ids from sha1(chosen))."""
    from rm_core.data import hh_is_test, read_rows

    return [{"id": "hh-" + hashlib.sha1(r["chosen"].encode("utf-8")).hexdigest()[:16], "subset": HH_TEST_SUBSET,
             "chosen": r["chosen"], "rejected": r["rejected"]} for r in read_rows(dataset) if hh_is_test(r)]


def _hh_test_file(bench: dict, out_dir: Path) -> Path:
    path = out_dir / "data" / "hh_test.jsonl"
    if not path.is_file():
        from rm_core.hub import atomic_write_jsonl

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(path, hh_test_rows(bench["dataset"]))
    return path


def _module(kind: str):
    import importlib

    name = {"pairs": "reward_bench"}.get(kind, kind)
    return importlib.import_module(f"eval.{name}")


def run_one(judge, judge_spec: str, bench: dict, out_dir: Path, options: dict, state, report_dir: Path) -> dict | None:
    """Evaluate one judge on one benchmark through the benchmark's own CLI module; summary on the main process."""
    module = _module(bench["kind"])
    dataset = bench["dataset"]
    if bench["kind"] == "pairs" and bench["split"] == "hh_test":
        path = _hh_test_file(bench, report_dir) if state.is_main_process else None
        state.wait_for_everyone()
        dataset = str(path or report_dir / "data" / "hh_test.jsonl")
    argv = ["--model", judge_spec, "--dataset", dataset, "--output_dir", str(out_dir),
            "--dtype", options["dtype"], "--max_length", str(options["max_length"])]
    if bench["kind"] not in ("pairs",) or bench["split"] != "hh_test":
        argv += ["--split", bench["split"]]
    if options.get("limit"):
        argv += ["--limit", str(options["limit"])]
    if options.get("batch_size"):
        argv += ["--batch_size", str(options["batch_size"])]
    args = module.make_parser().parse_args(argv)
    args.judge = judge
    return module.evaluate(args)


def headline(kind: str, summary: dict) -> dict[str, float | None]:
    """The numbers a report puts side by side for one benchmark kind."""
    if kind in ("reward_bench", "pairs"):
        subsets = summary["subsets"]
        total_n = sum(s["n"] for s in subsets.values())
        out = {"accuracy (all pairs)": sum(s["correct"] for s in subsets.values()) / total_n if total_n else None}
        if summary.get("score") is not None:
            out["score"] = summary["score"]
        out.update({k: v for k, v in summary.get("sections", {}).items() if v is not None and len(subsets) > 1})
        if len(subsets) > 1:
            out.update({k: s["accuracy"] for k, s in subsets.items()})
        return out
    return _module(kind).headline(summary)


# ---------------------------------------------------------------- --push_results: a benchmark into a model card


def model_index_metrics(kind: str, summary: dict) -> dict[str, float | None]:
    """The numbers --push_results files in a model card's model-index for one benchmark: its headline, less what
    is not the judge's own (best-of-N's baselines) and RewardBench's per-subset accuracies (its score, sections and
    accuracy over all pairs stay)."""
    if kind == "best_of_n":
        return {"judge's pick accuracy": summary.get("judge"),
                "judge-weighted vote accuracy": summary.get("judge_weighted_vote")}
    head = headline(kind, summary)
    if kind in ("reward_bench", "pairs"):
        head = {k: v for k, v in head.items() if k not in summary.get("subsets", {})}
    return head


def push_results(args, benchmark: str, summary: dict) -> str | None:
    """With --push_results TARGET: add this benchmark's results (model_index_metrics) to the model-index of a
    model card, through rm_core.hub.push_eval_results: TARGET a local checkpoint folder (its README.md, updated
    in place) or a Hub model id (huggingface_hub.metadata_update; token: HF_TOKEN). A result already there for the
    same benchmark, split and metric is replaced. The data set is named by its Hub id (else its file or folder
    name, never its path); a run on part of it (--limit, --subsets, --domains, --sources) says so in the name, so
    it never stands in for the full benchmark's. Returns the README path or commit URL; None without the flag."""
    target = getattr(args, "push_results", None)
    if not target:
        return None
    from rm_core.hub import CardEval, dataset_label, push_eval_results

    dataset = str(args.dataset)
    title = next((b["title"] for b in builtin_benchmarks(DATA_ROOT).values()
                  if b["dataset"] == dataset or (Path(dataset).exists() and Path(b["dataset"]).exists()
                                                 and Path(b["dataset"]).resolve() == Path(dataset).resolve())), None)
    part = [f"first {args.limit}"] if getattr(args, "limit", None) else []
    part += [f"{key} {', '.join(getattr(args, key))}" for key in ("subsets", "domains", "sources")
             if getattr(args, key, None)]
    name = (title or dataset_label(dataset)) + (f" ({'; '.join(part)})" if part else "")
    where = push_eval_results(target, [CardEval(dataset, getattr(args, "split", None),
                                                model_index_metrics(benchmark, summary), dataset_name=name)],
                              commit_message=f"Add {name} results ({benchmark}, split {getattr(args, 'split', None)})")
    print(f"[eval] {benchmark} results added to the model card of {target}: {where}", flush=True)
    return where


# ---------------------------------------------------------------- the report


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def markdown(results: dict, benches: dict, judges: list[str]) -> str:
    lines = ["# Evaluation report", "",
             "Accuracies and scores in percent; time = wall seconds of that (judge, benchmark) evaluation "
             "(data loading and scoring; `cached` when it came from the cache this run).", ""]
    for bname, bench in benches.items():
        lines += [f"## {bench['title']}", "", f"`{bench['kind']}` on `{bench['dataset']}` (split `{bench['split']}`)", ""]
        metrics: list[str] = []
        for j in judges:
            for m in (results.get(j, {}).get(bname, {}).get("headline") or {}):
                if m not in metrics:
                    metrics.append(m)
        lines.append("| metric | " + " | ".join(judges) + " |")
        lines.append("|---|" + "---|" * len(judges))
        for m in metrics:
            cells = [_pct((results.get(j, {}).get(bname, {}).get("headline") or {}).get(m)) for j in judges]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        times = []
        for j in judges:
            r = results.get(j, {}).get(bname, {})
            t = r.get("seconds")
            times.append("n/a" if t is None else (f"{t:.1f}" if t < 100 else f"{t:.0f}")
                         + (" (cached)" if r.get("cached") else ""))
        items = [str(results.get(j, {}).get(bname, {}).get("items", "n/a")) for j in judges]
        lines.append("| items scored | " + " | ".join(items) + " |")
        lines.append("| time (s) | " + " | ".join(times) + " |")
        lines += ["", f"![{bname}]({bname}.png)", ""]
    return "\n".join(lines)


def bar_chart(path: Path, title: str, results: dict, bname: str, judges: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics: list[str] = []
    for j in judges:
        for m in (results.get(j, {}).get(bname, {}).get("headline") or {}):
            if m not in metrics:
                metrics.append(m)
    if not metrics:
        return
    width = 0.8 / max(1, len(judges))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(metrics) * max(1, len(judges)) ** 0.5), 4.0))
    for k, j in enumerate(judges):
        head = results.get(j, {}).get(bname, {}).get("headline") or {}
        values = [100 * head[m] if head.get(m) is not None else 0.0 for m in metrics]
        ax.bar([i + (k - (len(judges) - 1) / 2) * width for i in range(len(metrics))], values, width, label=j)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", action="append", required=True,
                   help="NAME=SPEC or SPEC: a checkpoint folder / Hub id, or llm:<id> / openai:<model>; repeatable")
    p.add_argument("--bench", action="append", required=True, help="benchmark name or NAME=KIND:DATASET[:SPLIT]")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--data_root", default=str(DATA_ROOT), help="folder of the shared data (llmbar, hh-rlhf, gsm8k)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N items of each benchmark")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--max_length", type=int, default=2048)
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--judge_mode", default="pairwise", choices=["pairwise", "pointwise"], help="for llm: judges")
    p.add_argument("--embedding_cache", default=None,
                   help="an rm_core.embeddings cache folder for the judges that score from frozen-backbone embeddings "
                        f"({', '.join(sorted(EMBEDDING_FAMILIES))}): judges on the same backbone then share one forward "
                        "pass per response (a cached vector is exactly what the forward gives, so scores do not change)")
    from judges.cli import add_llm_judge_args

    add_llm_judge_args(p)  # for the llm:/openai: judges among --judge (as the eval_* commands and rm-judge-serve)
    from rm_core.tracking import add_run_args

    add_run_args(p)  # --quiet, --report_to (the report's table and headlines), --run_name
    return p


@cli_entry
def main(argv: list[str] | None = None) -> dict | None:
    args = make_parser().parse_args(argv)
    from rm_core.tracking import apply_run_args

    apply_run_args(args)
    import judges as judges_mod
    from judges.base import FailureLog

    state = process_state()
    report_dir = Path(args.output_dir)
    data_root = Path(args.data_root)
    benches = dict(parse_bench(b, data_root) for b in args.bench)
    judge_specs = dict(parse_judge(j) for j in args.judge)
    for spec in judge_specs.values():  # every judge before any data set
        judges_mod.check_judge_spec(spec, "--judge")
    from judges.cli import check_llm_judge_args, llm_judge_kwargs

    check_llm_judge_args(list(judge_specs.values()), args)
    options = {"limit": args.limit, "dtype": args.dtype, "max_length": args.max_length,
               "batch_size": args.batch_size, "judge_mode": args.judge_mode}
    if args.judge_base_url:  # another endpoint may serve another model under the same name
        options["judge_base_url"] = args.judge_base_url
    results: dict[str, dict] = {}
    for jname, spec in judge_specs.items():
        results[jname] = {}
        judge, load_seconds = None, None
        for bname, bench in benches.items():
            key = cache_key(spec, bname, bench, options)
            cell = report_dir / "cache" / f"{jname.replace('/', '+')}__{bname}__{key}"
            entry_path = cell / "entry.json"
            entry = json.loads(entry_path.read_text(encoding="utf-8")) if entry_path.is_file() else None
            entry = broadcast(state, entry if state.is_main_process else None)
            if entry is not None:
                results[jname][bname] = {**entry, "cached": True}
                if state.is_main_process:
                    print(f"[report] {jname} / {bname}: cached ({cell})", flush=True)
                continue
            if judge is None:
                import torch

                t0 = time.perf_counter()
                torch.manual_seed(0)
                batch_size = args.batch_size or (16 if state.device.type == "cuda" else 1)
                if spec.startswith(judges_mod.LLM_PREFIXES):  # each option goes to the backend it belongs to
                    load_kwargs = llm_judge_kwargs(spec, args, state.device)
                    if spec.startswith("llm:"):
                        load_kwargs["batch_size"] = batch_size
                else:
                    load_kwargs = {"dtype": args.dtype, "device": state.device, "max_length": args.max_length,
                                   "batch_size": batch_size}
                    if args.embedding_cache and judges_mod.checkpoint_family(spec) in EMBEDDING_FAMILIES:
                        load_kwargs["embedding_cache"] = args.embedding_cache
                judge = judges_mod.load(spec, **load_kwargs)
                load_seconds = round(time.perf_counter() - t0, 3)
            judge.failures = FailureLog()
            t0 = time.perf_counter()
            summary = run_one(judge, spec, bench, cell, options, state, report_dir)
            seconds = round(time.perf_counter() - t0, 3)
            if state.is_main_process:
                entry = {"judge": jname, "spec": spec, "benchmark": bname, "key": key, "seconds": seconds,
                         "judge_load_seconds": load_seconds, "headline": headline(bench["kind"], summary),
                         "items": next((summary[u] for u in ("pairs", "prompts", "questions") if u in summary), None),
                         "judge_failures": summary.get("judge_failures", {}).get("total")}
                from rm_core.hub import atomic_write_json

                atomic_write_json(entry_path, entry)
                results[jname][bname] = {**entry, "cached": False}
                print(f"[report] {jname} / {bname}: {seconds:.1f} s", flush=True)
            state.wait_for_everyone()
        del judge
    if not state.is_main_process:
        return None
    names = list(judge_specs)
    report_dir.mkdir(parents=True, exist_ok=True)
    for bname, bench in benches.items():
        bar_chart(report_dir / f"{bname}.png", bench["title"], results, bname, names)
    (report_dir / "report.md").write_text(markdown(results, benches, names) + "\n", encoding="utf-8")
    from rm_core.hub import atomic_write_json

    report = {"judges": judge_specs, "benchmarks": benches, "options": options, "results": results}
    atomic_write_json(report_dir / "report.json", report)
    track_report(args, report)
    print(f"report: {(report_dir / 'report.md').resolve()}")
    return report


def track_report(args, report: dict) -> None:
    """--report_to: one run holding every judge's headline numbers per benchmark (summary keys judge/benchmark/metric)
    and the whole report as a table (one row per judge and benchmark)."""
    if not any(name != "none" for name in getattr(args, "report_to", None) or []):
        return
    from rm_core.tracking import start_run

    config = {k: v for k, v in vars(args).items() if k not in ("quiet", "report_to", "run_name")}
    with start_run(args.report_to, name=args.run_name or f"report-{Path(args.output_dir).name}",
                   config=config) as tracker:
        results = report["results"]
        tracker.summary({j: {b: cell.get("headline") or {} for b, cell in cells.items()} for j, cells in results.items()})
        tracker.log_table("report", [{"judge": j, "benchmark": b, "items": cell.get("items"),
                                      "seconds": cell.get("seconds"), **(cell.get("headline") or {})}
                                     for j, cells in results.items() for b, cell in cells.items()])


def cli() -> None:
    """The `eval_report` console script: main's report dict is for Python callers (a console script exits with
    what its function returns, and a dict would print and exit 1)."""
    main()


if __name__ == "__main__":
    cli()
