"""One report over several checkpoints (or judges) and several benchmarks, checkpoints side by side.

    python -m eval.report --judge bt=outputs/bt-smollm2 --judge pm=outputs/pair-pm \
        --bench llmbar --bench hh_test --bench gsm8k_bo4 --output_dir reports/main
    python -m eval.report --judge CKPT --bench reward_bench2 --bench rm_bench --bench judgebench   # Hub data
    python -m eval.report --judge CKPT --bench mine=rm_bench:data/rm_bench.json:train              # any file
    accelerate launch --num_processes 8 -m eval.report ...          # every benchmark split over the processes

Writes DIR/report.md (a markdown table per benchmark: one column per judge, the benchmark's headline numbers
as rows, each with its 95% interval, then the length control, a pairwise judge's both orders and order-flip rate,
the time each took, and the paired comparison of every two judges on the benchmark's main number: the
difference, its paired-bootstrap interval and whether it excludes zero), DIR/overview.png (the chart to look at
first: each benchmark's main number per judge with interval bars, the length baselines and the `--baseline`
judge as reference lines), DIR/<benchmark>.png (a grouped bar chart of every headline number, with intervals)
and DIR/report.json. Each (judge, benchmark) result is cached in DIR/cache/<judge>__<benchmark>__<key>/ (the
benchmark's own results.json and scores.jsonl) under a key made of the judge spec, its checkpoint's files (by
content), the benchmark, its data set (path and content, or Hub commit), split and options: a second run with one
more judge scores only that judge; a checkpoint or data set changed in place, or a changed option, scores again. A
cached cell's numbers are recomputed from its stored rows under the current scoring rules (`rescored_entry`). A
killed run resumes inside a benchmark from its partial file. `--embedding_cache DIR` lets ArmoRM and decision-tree
judges on the same frozen backbone share one forward pass per response (and reuse a training run's cache).

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
from collections.abc import Sequence
from pathlib import Path

from eval.runner import apply_token_budget, broadcast, process_state
from rm_core.data import shared_data_dir
from rm_core.errors import UserInputError, cli_entry, int_at_least
from rm_core.stats import difference_with_ci, percent_with_ci

DATA_ROOT = shared_data_dir()  # $RM_SHARED_DATA, else ../shared/data beside the project
KINDS = ["reward_bench", "pairs", "reward_bench2", "rm_bench", "judgebench", "best_of_n", "rmb", "prmbench"]
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
            raise UserInputError(f"--bench {spec}: unknown benchmark; use one of {', '.join(sorted(builtin))}, or "
                                 f"NAME=KIND:DATASET[:SPLIT] with KIND one of {', '.join(KINDS)}")
        return spec, builtin[spec]
    name, _, rest = spec.partition("=")
    kind, _, rest = rest.partition(":")
    dataset, _, split = rest.rpartition(":") if rest.count(":") and not Path(rest).exists() else (rest, "", "")
    if kind not in KINDS:
        raise UserInputError(f"--bench {spec}: benchmark kind {kind!r} is not one of {', '.join(KINDS)} "
                             "(the form is NAME=KIND:DATASET[:SPLIT])")
    if not name or not dataset:
        raise UserInputError(f"--bench {spec}: {'no NAME' if not name else 'no DATASET'} (the form is "
                             "NAME=KIND:DATASET[:SPLIT])")
    defaults = {"reward_bench": "filtered", "pairs": "train", "reward_bench2": "test", "rm_bench": "train",
                "judgebench": "gpt", "best_of_n": "test", "rmb": "", "prmbench": ""}  # RMB, PRMBench: local files
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
    if not judge_spec.startswith(("llm:", "openai:")):  # what only a prompted judge's cells depend on
        options = {k: v for k, v in options.items() if k not in ("judge_base_url", "judge_prompts")}
    blob = json.dumps({"judge": judge_fingerprint(judge_spec), "benchmark": bench_name,
                       "kind": bench["kind"], "dataset": bench["dataset"], "split": bench["split"],
                       "data": {k: v for k, v in data.items() if k != "path"}, "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- running one (judge, benchmark)


def hh_test_rows(dataset: str | Path, test_only: bool = True) -> list[dict]:
    """The HH-RLHF test part of the fixed split (every pair with test_only=False) as RewardBench-schema-compatible
    rows (ids from sha1(chosen))."""
    from rm_core.data import hh_is_test, read_rows

    return [{"id": "hh-" + hashlib.sha1(r["chosen"].encode("utf-8")).hexdigest()[:16], "subset": HH_TEST_SUBSET,
             "chosen": r["chosen"], "rejected": r["rejected"]} for r in read_rows(dataset) if not test_only or hh_is_test(r)]


def hh_test_file(bench: dict, out_dir: Path, write: bool = True) -> Path:
    """The derived file of test pairs, named by its source's content: another source (or the same file changed)
    gets its own file, never the rows derived from an earlier one."""
    from rm_core.resume import data_fingerprint

    source = {k: v for k, v in data_fingerprint(bench["dataset"]).items() if k != "path"}
    tag = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
    path = out_dir / "data" / f"hh_test-{tag}.jsonl"
    if write and not path.is_file():
        from rm_core.hub import atomic_write_jsonl

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(path, hh_test_rows(bench["dataset"]))
    return path


def _module(kind: str):
    import importlib

    name = {"pairs": "reward_bench"}.get(kind, kind)
    return importlib.import_module(f"eval.{name}")


def run_one(judge, judge_spec: str, bench: dict, out_dir: Path, options: dict, state, report_dir: Path,
            passed: dict | None = None) -> dict | None:
    """Evaluate one judge on one benchmark through the benchmark's own CLI module; summary on the main process.
    `passed`: what the cell records as the report resolved it (dtype_reason) and the judge options the report was
    given (judge_rubrics, judge_principles: in the cell's own fingerprint too)."""
    module = _module(bench["kind"])
    dataset = bench["dataset"]
    if bench["kind"] == "pairs" and bench["split"] == "hh_test":
        path = hh_test_file(bench, report_dir, write=state.is_main_process)
        state.wait_for_everyone()
        dataset = str(path)
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
    for key, value in (passed or {}).items():
        if value is not None:
            setattr(args, key, value)
    return module.evaluate(args)


def scoring_module(kind: str):
    """The module that scores a benchmark kind: `headline_paths(summary)`, `units(rows)`, `statistics(units)`."""
    import importlib

    return importlib.import_module("eval.scoring") if kind in ("reward_bench", "pairs") else _module(kind)


def headline_paths(kind: str, summary: dict) -> dict[str, tuple]:
    """The numbers a report puts side by side for one benchmark kind, each with its path in the summary."""
    return scoring_module(kind).headline_paths(summary)


def headline(kind: str, summary: dict) -> dict[str, float | None]:
    """The numbers a report puts side by side for one benchmark kind."""
    from rm_core.stats import value_at

    return {name: value_at(summary, path) for name, path in headline_paths(kind, summary).items()}


def headline_ci(kind: str, summary: dict) -> dict[str, list | None]:
    """The 95% interval of each headline number ([low, high], None where the summary has none)."""
    from rm_core.stats import interval_at

    return {name: interval_at(summary, path) for name, path in headline_paths(kind, summary).items()}


def main_metric(kind: str, head: dict) -> str | None:
    """The one number per benchmark the overview chart and the paired comparisons use: RewardBench's score when
    it has one, else its accuracy over all pairs; the first headline number of the other kinds (RewardBench 2's
    score, RM-Bench's total, JudgeBench's accuracy, best-of-N's judge's pick)."""
    if kind in ("reward_bench", "pairs"):
        return "score" if head.get("score") is not None else "accuracy (all pairs)"
    return next(iter(head), None)


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
    # a built-in benchmark's title only for its own data set AND split (the title says what was scored: GSM8K's
    # 319 held-out questions are its test split; hh_test's 446 pairs a split rule eval_* commands do not apply)
    title = next((b["title"] for b in builtin_benchmarks(DATA_ROOT).values()
                  if b["split"] == getattr(args, "split", None)
                  and (b["dataset"] == dataset or (Path(dataset).exists() and Path(b["dataset"]).exists()
                                                   and Path(b["dataset"]).resolve() == Path(dataset).resolve()))),
                 None)
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




LENGTH_ROWS = [("length baseline: shorter wins", "shorter_wins"), ("length baseline: longer wins", "longer_wins"),
               ("chosen is the longer (share of items)", "chosen_longer_share"),
               ("accuracy where chosen is longer", "accuracy_chosen_longer"),
               ("accuracy where chosen is shorter", "accuracy_chosen_shorter"),
               ("length-balanced accuracy", "length_balanced_accuracy")]
ORDER_ROWS = [("both orders (pairwise judge)", "both_orders"), ("chosen shown first", "chosen_first"),
              ("chosen shown second", "chosen_second"), ("order-flip rate", "order_flip_rate")]


def _cell(results: dict, judge: str, bname: str) -> dict:
    return results.get(judge, {}).get(bname, {})


def _metrics(results: dict, bname: str, judges: list[str]) -> list[str]:
    metrics: list[str] = []
    for j in judges:
        for m in (_cell(results, j, bname).get("headline") or {}):
            if m not in metrics:
                metrics.append(m)
    return metrics


def markdown(results: dict, benches: dict, judges: list[str], comparisons: dict | None = None,
             baseline: str | None = None) -> str:
    lines = ["# Evaluation report", "",
             "Accuracies and scores in percent, each with its 95% confidence interval in brackets: a seeded bootstrap "
             "(2,000 resamples) over the items (pairs, prompts, questions), resampled within each subset and combined "
             "with the benchmark's official weights; a plain share of right items (an accuracy) has the Wilson "
             "score interval instead (not a point where every item is right or wrong). Length is counted in characters; \"shorter wins\" is the "
             "accuracy of always preferring the shorter response (the shortest of N), a tie in length counting half. "
             "time = wall seconds of that (judge, benchmark) evaluation (data loading and scoring; `cached` when it "
             "came from the cache this run).", ""]
    if baseline:
        lines += [f"Baseline judge (a reference line in the charts): `{baseline}`.", ""]
    lines += ["![overview](overview.png)", ""]
    names = [f"{j} (baseline)" if j == baseline else j for j in judges]
    for bname, bench in benches.items():
        lines += [f"## {bench['title']}", "", f"`{bench['kind']}` on `{bench['dataset']}` (split `{bench['split']}`)", ""]
        lines.append("| metric | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(judges))
        for m in _metrics(results, bname, judges):
            cells = [percent_with_ci((_cell(results, j, bname).get("headline") or {}).get(m),
                              (_cell(results, j, bname).get("headline_ci95") or {}).get(m)) for j in judges]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        for label, key in LENGTH_ROWS:
            blocks = [_cell(results, j, bname).get("length") for j in judges]
            if any(blocks):
                cells = ["n/a" if not b else percent_with_ci(b.get(key), (b.get("ci95") or {}).get(key)) for b in blocks]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        blocks = [_cell(results, j, bname).get("length") for j in judges]
        if any(blocks):
            rhos = ["n/a" if not b or b.get("spearman_score_length") is None else f"{b['spearman_score_length']:+.3f}"
                    for b in blocks]
            lines.append("| Spearman(score, length) | " + " | ".join(rhos) + " |")
        for label, key in ORDER_ROWS:
            blocks = [_cell(results, j, bname).get("order") for j in judges]
            if any(blocks):
                cells = ["n/a" if not b else percent_with_ci(b.get(key), (b.get("ci95") or {}).get(key)) for b in blocks]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        times = []
        for j in judges:
            r = _cell(results, j, bname)
            t = r.get("seconds")
            times.append("n/a" if t is None else (f"{t:.1f}" if t < 100 else f"{t:.0f}")
                         + (" (cached)" if r.get("cached") else ""))
        items = [str(_cell(results, j, bname).get("items", "n/a")) for j in judges]
        lines.append("| items scored | " + " | ".join(items) + " |")
        lines.append("| time (s) | " + " | ".join(times) + " |")
        rows = (comparisons or {}).get(bname) or []
        if rows:
            lines += ["", f"Paired comparisons on the same items ({rows[0]['metric']}; paired bootstrap: the same "
                          "items resampled for both judges):", "",
                      "| judges | difference (points) | 95% CI | excludes 0 | items |", "|---|---|---|---|---|"]
            for c in rows:
                if c.get("difference") is None:
                    lines.append(f"| {c['a']} − {c['b']} | n/a | | | |")
                    continue
                points, interval = difference_with_ci(c["difference"], c["low"], c["high"]).split(" ", 1)
                lines.append(f"| {c['a']} − {c['b']} | {points} | {interval} | "
                             f"{'yes' if c['excludes_zero'] else 'no'} | {c['n']} |")
        lines += ["", f"![{bname}]({bname}.png)", ""]
    return "\n".join(lines)


def _errors(values: list[float], cis: list) -> list[list[float]]:
    """matplotlib's yerr (distances below and above) from intervals in percent; 0 where there is none."""
    low = [max(0.0, v - 100 * ci[0]) if ci else 0.0 for v, ci in zip(values, cis)]
    high = [max(0.0, 100 * ci[1] - v) if ci else 0.0 for v, ci in zip(values, cis)]
    return [low, high]


def _length_lines(ax, blocks: list, x0: float, x1: float, label: bool = True) -> None:
    block = next((b for b in blocks if b), None)
    if not block:
        return
    for key, style, name in (("shorter_wins", "--", "shorter wins"), ("longer_wins", ":", "longer wins")):
        if block.get(key) is not None:
            ax.hlines(100 * block[key], x0, x1, colors="tab:red", linestyles=style, linewidth=1.2,
                      label=f"length baseline: {name}" if label else None)


def bar_chart(path: Path, title: str, results: dict, bname: str, judges: list[str], baseline: str | None = None) -> None:
    """One benchmark: each headline number per judge as a bar with its 95% interval; the baseline judge (if named)
    as a black line over each number's group; the length baselines as red lines across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = _metrics(results, bname, judges)
    if not metrics:
        return
    bars = [j for j in judges if j != baseline] or judges
    width = 0.8 / max(1, len(bars))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(metrics) * max(1, len(bars)) ** 0.5), 4.0))
    for k, j in enumerate(bars):
        head = _cell(results, j, bname).get("headline") or {}
        cis = _cell(results, j, bname).get("headline_ci95") or {}
        values = [100 * head[m] if head.get(m) is not None else 0.0 for m in metrics]
        ax.bar([i + (k - (len(bars) - 1) / 2) * width for i in range(len(metrics))], values, width, label=j,
               yerr=_errors(values, [cis.get(m) if head.get(m) is not None else None for m in metrics]),
               capsize=2, error_kw={"linewidth": 0.8})
    if baseline and baseline in judges and bars != [baseline]:
        head = _cell(results, baseline, bname).get("headline") or {}
        for i, m in enumerate(metrics):
            if head.get(m) is not None:
                ax.hlines(100 * head[m], i - 0.45, i + 0.45, colors="black", linewidth=1.5,
                          label=f"{baseline} (baseline)" if i == 0 else None)
    _length_lines(ax, [_cell(results, j, bname).get("length") for j in judges], -0.5, len(metrics) - 0.5)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% (95% CI)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overview_chart(path: Path, benches: dict, results: dict, judges: list[str], baseline: str | None = None) -> None:
    """The chart a reader looks at first: one panel per benchmark, its main number (main_metric) per judge as a bar
    with its 95% interval; the length baselines (shorter wins, longer wins) and the baseline judge (with its
    interval as a band) as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [b for b in benches if any(_cell(results, j, b).get("headline") for j in judges)]
    if not names:
        return
    bars = [j for j in judges if j != baseline] or judges
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.5, 0.55 * len(bars) + 2.5) * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, bname in zip(axes.flat, names):
        kind = benches[bname]["kind"]
        metric = next((main_metric(kind, _cell(results, j, bname).get("headline") or {}) for j in judges
                       if _cell(results, j, bname).get("headline")), None)
        values, cis = [], []
        for j in bars:
            v = (_cell(results, j, bname).get("headline") or {}).get(metric)
            values.append(100 * v if v is not None else 0.0)
            cis.append((_cell(results, j, bname).get("headline_ci95") or {}).get(metric) if v is not None else None)
        ax.bar(range(len(bars)), values, 0.6, yerr=_errors(values, cis), capsize=3, color="tab:blue",
               error_kw={"linewidth": 1.0})
        if baseline and baseline in judges and bars != [baseline]:
            v = (_cell(results, baseline, bname).get("headline") or {}).get(metric)
            ci = (_cell(results, baseline, bname).get("headline_ci95") or {}).get(metric)
            if v is not None:
                ax.axhline(100 * v, color="black", linewidth=1.5, label=f"{baseline} (untrained baseline)")
                if ci:
                    ax.axhspan(100 * ci[0], 100 * ci[1], color="black", alpha=0.08)
        _length_lines(ax, [_cell(results, j, bname).get("length") for j in judges], -0.5, len(bars) - 0.5)
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(bars, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{metric} % (95% CI)", fontsize=8)
        ax.set_title(benches[bname]["title"], fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cell_dir(report_dir: Path, judge_name: str, bname: str, key: str) -> Path:
    return report_dir / "cache" / f"{judge_name.replace('/', '+')}__{bname}__{key}"


def _stored_object(path: Path, data: bytes, line: int | None = None) -> dict:
    """One JSON object of a stored file (the whole file, or its `line`); a UserInputError naming the file (and line)
    when it is cut short or corrupted."""
    where = f"{path} line {line}" if line else str(path)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:  # ValueError: JSONDecodeError
        raise UserInputError(f"{where} is cut short or corrupted ({type(err).__name__}: {err})") from None
    if not isinstance(value, dict):
        raise UserInputError(f"{where} is corrupted (not a JSON object)")
    return value


def _read_scored(folder: Path) -> tuple[dict | None, list[dict] | None]:
    summary = _stored_object(folder / "results.json", (folder / "results.json").read_bytes()) \
        if (folder / "results.json").is_file() else None
    if not (folder / "scores.jsonl").is_file():
        return summary, None
    lines = (folder / "scores.jsonl").read_bytes().split(b"\n")
    return summary, [_stored_object(folder / "scores.jsonl", raw, n) for n, raw in enumerate(lines, 1) if raw.strip()]


def read_scored(folder: str | Path) -> tuple[dict | None, list[dict] | None]:
    """(results.json, the scores.jsonl rows) of an evaluation's output folder; None for a file that is not there.
    A file cut short or corrupted is a UserInputError naming it (and the line), and how to recover."""
    try:
        return _read_scored(Path(folder))
    except UserInputError as err:
        raise UserInputError(f"{err}: delete {folder} to score it again") from None


def cached_entry(cell: Path, label: str) -> dict | None:
    """A cache cell's entry.json when the cell is cached and all of it reads back (entry.json, results.json,
    scores.jsonl); None when it is not cached. A cell with a file cut short or corrupted (a killed write, a full
    disk) counts as not cached: a line names the file, the cell is deleted and scored again."""
    entry_path = cell / "entry.json"
    if not entry_path.is_file():
        return None
    try:
        entry = _stored_object(entry_path, entry_path.read_bytes())
        _read_scored(cell)
    except UserInputError as err:
        import shutil

        print(f"[report] {label}: the cache is unreadable ({err}); scoring it again", flush=True)
        shutil.rmtree(cell)
        return None
    return entry


def rescored_entry(cell: Path, kind: str, entry: dict, label: str) -> dict | None:
    """A cached cell's entry under this version's scoring rules: the benchmark's `summarize` run again over the
    cell's stored rows (its model outputs), over the stored summary's run facts (dtype, failures, speed); where the
    headline numbers or their intervals moved (an upgrade changed a rule: 2026-12-04's Wilson intervals, PRMBench's
    F1 sentinels), a line says so and results.json and entry.json are rewritten, atomically. best_of_n's summary
    needs its candidates, which the cell does not hold: kept as stored (its rows hold the picks and votes). Rows this
    version cannot summarize (an older row format): a line says so, the cell is deleted and None returned (scored
    again), as for an unreadable cell. Keys an older `summarize` wrote and this one no longer does stay."""
    module = _module(kind)
    if kind == "best_of_n" or not callable(getattr(module, "summarize", None)):
        return entry
    try:
        summary, rows = _read_scored(cell)
        if summary is None or not rows:
            raise ValueError("no results.json or no scored rows")
        current = {**summary, **module.summarize(rows)}
        head, ci = headline(kind, current), headline_ci(kind, current)
    except Exception as err:  # whatever an older row format breaks: score the cell again
        import shutil

        print(f"[report] {label}: its stored rows do not summarize under this version "
              f"({type(err).__name__}: {err}); scoring it again", flush=True)
        shutil.rmtree(cell)
        return None
    if json.dumps([head, ci], sort_keys=True) == json.dumps([entry.get("headline"), entry.get("headline_ci95")],
                                                            sort_keys=True, default=list):
        return entry
    from rm_core.hub import atomic_write_json

    moved = sorted(name for name in set(head) | set(entry.get("headline") or {})
                   if head.get(name) != (entry.get("headline") or {}).get(name))
    print(f"[report] {label}: stored under older scoring rules; recomputed from its scores.jsonl"
          + (f" ({', '.join(moved)} moved)" if moved else " (intervals moved)"), flush=True)
    entry = {**entry, "headline": head, "headline_ci95": ci, "length": current.get("length"),
             "order": current.get("order")}
    atomic_write_json(cell / "results.json", current)
    atomic_write_json(cell / "entry.json", entry)
    return entry


def paired_difference(kind: str, units_a: dict, units_b: dict, path: Sequence) -> dict | None:
    """a - b on the number at `path` (headline_paths) over the items both scored, from the benchmark's per-item
    units (its scoring module's `units(rows)`): a paired, stratified bootstrap (rm_core.stats.paired_statistic)
    {"difference", "low", "high", "excludes_zero", "n"}; None when the items share nothing or have no such number."""
    from rm_core.stats import paired_statistic

    shared = {g: {u: v for u, v in us.items() if u in units_b.get(g, {})} for g, us in units_a.items()}
    shared = {g: us for g, us in shared.items() if us}
    statistic = scoring_module(kind).statistics(shared).get(tuple(path)) if shared else None
    return None if statistic is None else paired_statistic(shared, units_b, statistic)


def paired_comparisons(report_dir: Path, results: dict, benches: dict, judges: list[str]) -> dict[str, list[dict]]:
    """Every two judges scored on the same items of a benchmark, compared on its main number (main_metric) with a
    paired, stratified bootstrap (rm_core.stats.paired_statistic) from the per-item rows in each cell's
    scores.jsonl: {benchmark: [{"a", "b", "metric", "difference", "low", "high", "excludes_zero", "n"}]}."""
    from itertools import combinations

    out: dict[str, list[dict]] = {}
    for bname, bench in benches.items():
        module = scoring_module(bench["kind"])
        loaded = {}
        for j in judges:
            cell = _cell(results, j, bname)
            summary, rows = read_scored(cell_dir(report_dir, j, bname, cell["key"])) if cell.get("key") else (None, None)
            if rows and summary is not None:
                loaded[j] = (module.units(rows), headline_paths(bench["kind"], summary), cell.get("headline") or {})
        comparisons = []
        for a, b in combinations([j for j in judges if j in loaded], 2):
            units_a, paths, head = loaded[a]
            units_b = loaded[b][0]
            metric = main_metric(bench["kind"], head)
            if metric is None or metric not in paths or metric not in loaded[b][1]:
                continue
            result = paired_difference(bench["kind"], units_a, units_b, paths[metric])
            comparisons.append({"a": a, "b": b, "metric": metric, **(result or {"difference": None})})
        if comparisons:
            out[bname] = comparisons
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", action="append", required=True,
                   help="NAME=SPEC or SPEC: a checkpoint folder / Hub id, or llm:<id> / openai:<model>; repeatable")
    p.add_argument("--bench", action="append", required=True, help="benchmark name or NAME=KIND:DATASET[:SPLIT]")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="one judge NAME of --judge (e.g. the untrained model), drawn as a reference line in the charts "
                        "rather than as a bar")
    p.add_argument("--data_root", default=str(DATA_ROOT), help="folder of the shared data (llmbar, hh-rlhf, gsm8k)")
    p.add_argument("--limit", type=int_at_least(1), default=None, help="score only the first N items of each benchmark")
    from rm_core.models import add_dtype_arg

    add_dtype_arg(p)
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
    bench_list = [parse_bench(b, data_root) for b in args.bench]
    judge_list = [parse_judge(j) for j in args.judge]
    for flag, named in (("--bench", bench_list), ("--judge", judge_list)):
        names = [name for name, _ in named]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:  # one name twice: the second would replace the first, and a column vanish without a word
            raise UserInputError(f"{flag}: the name {', '.join(twice)} is given twice; name each one (NAME=...)")
    benches, judge_specs = dict(bench_list), dict(judge_list)
    if args.baseline is not None and args.baseline not in judge_specs:
        raise UserInputError(f"--baseline {args.baseline}: not one of the --judge names ({', '.join(judge_specs)})")
    for spec in judge_specs.values():  # every judge before any data set
        judges_mod.check_judge_spec(spec, "--judge")
    from judges.cli import check_llm_judge_args, llm_judge_kwargs

    check_llm_judge_args(list(judge_specs.values()), args)
    from rm_core.models import dtype_choice

    args.dtype, dtype_reason = dtype_choice(args.dtype, state.device)  # before any cache key holds it
    if state.is_main_process:
        print(f"[report] dtype {args.dtype} ({dtype_reason})", flush=True)
    options = {"limit": args.limit, "dtype": args.dtype, "max_length": args.max_length,
               "batch_size": args.batch_size, "judge_mode": args.judge_mode}
    # another endpoint may serve another model under the same name: the one the openai: judges send to
    from judges.cli import endpoint_of

    base_url = next((url for url in (endpoint_of(spec, args.judge_base_url) for spec in judge_specs.values())
                     if url), args.judge_base_url)
    if base_url:
        options["judge_base_url"] = base_url
    if any(spec.startswith(("llm:", "openai:")) for spec in judge_specs.values()):
        from judges.prompts import templates_fingerprint

        options["judge_prompts"] = templates_fingerprint()  # a prompted judge's cells: by the prompts they asked
    from rm_core.inference import forward_batching, numerics_fingerprint

    half = numerics_fingerprint(state.device, args.dtype)
    if half is not None:  # bf16/fp16: a cell scored on another kind of device (or split over other processes, or
        # with other rows a forward) rounds otherwise: it gets its own cell
        options["numerics"] = {**half, "processes": state.num_processes}
    # rows a forward, and the token budget where no --batch_size was given (on a CPU); args.dtype is settled above
    batch_size, forward_tokens = forward_batching(state.device, args.dtype, args.batch_size)
    if half is not None and forward_tokens:
        options["numerics"]["forward_tokens"] = forward_tokens
    from judges.cli import option_fingerprint

    for name in ("judge_rubrics", "judge_principles"):  # what the LLM judges are shown: by content
        if getattr(args, name, None):
            options[name] = option_fingerprint(name, getattr(args, name))
    if getattr(args, "judge_min_choice_mass", None) is not None:  # how their verdicts are read
        options["judge_min_choice_mass"] = args.judge_min_choice_mass
    results: dict[str, dict] = {}
    for jname, spec in judge_specs.items():
        results[jname] = {}
        judge, load_seconds = None, None
        for bname, bench in benches.items():
            # an API judge has no local weights: its cells are shared by every machine
            key = cache_key(spec, bname, bench, {k: v for k, v in options.items()
                                                 if not (k == "numerics" and spec.startswith("openai:"))})
            cell = cell_dir(report_dir, jname, bname, key)
            entry_path = cell / "entry.json"
            entry = cached_entry(cell, f"{jname} / {bname}") if state.is_main_process else None
            if entry is not None:
                entry = rescored_entry(cell, bench["kind"], entry, f"{jname} / {bname}")
            entry = broadcast(state, entry)
            if entry is not None:
                results[jname][bname] = {**entry, "cached": True}
                if state.is_main_process:
                    print(f"[report] {jname} / {bname}: cached ({cell})", flush=True)
                continue
            if judge is None:
                import torch

                t0 = time.perf_counter()
                torch.manual_seed(0)
                if spec.startswith(judges_mod.LLM_PREFIXES):  # each option goes to the backend it belongs to
                    load_kwargs = llm_judge_kwargs(spec, args, state.device)
                    if spec.startswith("llm:"):
                        load_kwargs["batch_size"] = batch_size
                else:
                    load_kwargs = {"dtype": args.dtype, "device": state.device, "max_length": args.max_length,
                                   "batch_size": batch_size}
                    if args.embedding_cache and judges_mod.checkpoint_family(spec) in EMBEDDING_FAMILIES:
                        load_kwargs["embedding_cache"] = args.embedding_cache
                judge = apply_token_budget(judges_mod.load(spec, **load_kwargs), forward_tokens)
                load_seconds = round(time.perf_counter() - t0, 3)
            judge.failures = FailureLog()
            t0 = time.perf_counter()
            summary = run_one(judge, spec, bench, cell, options, state, report_dir,
                              {"dtype_reason": dtype_reason, "judge_rubrics": args.judge_rubrics,
                               "judge_principles": args.judge_principles,
                               "judge_min_choice_mass": getattr(args, "judge_min_choice_mass", None)})
            seconds = round(time.perf_counter() - t0, 3)
            if state.is_main_process:
                entry = {"judge": jname, "spec": spec, "benchmark": bname, "key": key, "seconds": seconds,
                         "judge_load_seconds": load_seconds, "headline": headline(bench["kind"], summary),
                         "headline_ci95": headline_ci(bench["kind"], summary), "length": summary.get("length"),
                         "order": summary.get("order"),
                         "items": next((summary[u] for u in ("pairs", "prompts", "questions", "items", "solutions") if u in summary), None),
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
    comparisons = paired_comparisons(report_dir, results, benches, names)
    for bname, bench in benches.items():
        bar_chart(report_dir / f"{bname}.png", bench["title"], results, bname, names, args.baseline)
    overview_chart(report_dir / "overview.png", benches, results, names, args.baseline)
    from rm_core.hub import atomic_write_json, atomic_write_text

    atomic_write_text(report_dir / "report.md", markdown(results, benches, names, comparisons, args.baseline) + "\n")

    report = {"judges": judge_specs, "benchmarks": benches, "options": options, "baseline": args.baseline,
              "results": results, "comparisons": comparisons}
    atomic_write_json(report_dir / "report.json", report)
    track_report(args, report)
    print(f"report: {(report_dir / 'report.md').resolve()}")
    return report


def track_report(args, report: dict) -> None:
    """--report_to: one run holding every judge's headline numbers per benchmark (summary keys judge/benchmark/metric)
    and the whole report as a table (one row per judge and benchmark)."""
    if not any(name != "none" for name in getattr(args, "report_to", None) or []):
        return
    from rm_core.tracking import command_run

    with command_run(args, f"report-{Path(args.output_dir).name}") as tracker:
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
