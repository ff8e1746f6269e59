"""Issue 23's figure: a rubric set learnt from 70 LLMBar-natural pairs, then the rubric-guided pairwise judge against
the same judge without rubrics on the other LLMBar subsets (both orders), with intervals and a paired comparison.

    python -m bench.rubrics_llmbar                                    # SmolLM2-135M-Instruct, all on this CPU
    python -m bench.rubrics_llmbar --llm openai:<model> --base_url http://127.0.0.1:8000/v1    # what users run
    python -m bench.rubrics_llmbar --limit 40 --max_pairs 10           # a smoke run

Writes bench/runs/rubrics/<llm name>/: the rubric set (rubrics.json), both evaluations (eval_reward_bench
folders), and section.md for bench/RESULTS.md. Run it with the machine to itself: the load average before and after
is printed in the section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench._common import ROOT, run_seconds
from judges.rubrics import VERIFY
from rm_core.data import shared_data_dir
from rm_core.models import SMOLLM2

OTHER_SUBSETS = ["llmbar-adver-neighbor", "llmbar-adver-GPTInst", "llmbar-adver-GPTOut", "llmbar-adver-manual"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", default=f"llm:{SMOLLM2}")
    p.add_argument("--base_url", default=None, help="openai: endpoint")
    p.add_argument("--max_pairs", type=int, default=70)
    p.add_argument("--limit", type=int, default=None, help="score only the first N pairs of the other subsets")
    p.add_argument("--verify", default="both_orders", choices=VERIFY,
                   help="judges.rubrics --verify (order_averaged: for a judge whose position bias no rubric overcomes)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    llmbar = shared_data_dir(required=True) / "llmbar"
    name = args.llm.split(":", 1)[1].rstrip("/").split("/")[-1]
    out = Path(args.out or ROOT / "bench" / "runs" / "rubrics" / (name if args.verify == "both_orders" else
                                                                  f"{name}-{args.verify}"))
    endpoint = ["--judge_base_url", args.base_url] if args.base_url else []
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    started = time.perf_counter()
    try:
        seconds = {"rubrics": run_seconds([sys.executable, "-m", "judges.rubrics", "--llm", args.llm, *endpoint,
                                           "--pairs", llmbar, "--subsets", "llmbar-natural", "--max_pairs",
                                           args.max_pairs, "--verify", args.verify, "--output_dir", out / "set"],
                                          out / "rubrics.log")}
    except RuntimeError:  # judges.rubrics stops when no pair passed: read that from its store, not its message
        store = out / "set" / "generate.partial.jsonl"
        if not store.is_file() or generation_summary(out / "set")["passed"]:
            raise
        # a result in itself (a small LLM): say what the generation did, and that there is nothing to compare
        result = {"llm": args.llm, "verify": args.verify, "rubric_set": None,
                  "generation": generation_summary(out / "set"),
                  "seconds": {"rubrics": round(time.perf_counter() - started, 1)},
                  "load": {**load, "end": [round(x, 2) for x in os.getloadavg()]},
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        (out / "section.md").write_text(section(result), encoding="utf-8")
        print((out / "section.md").read_text(encoding="utf-8"))
        return result
    rubric_set = json.loads((out / "set" / "rubrics.json").read_text(encoding="utf-8"))
    limit = ["--limit", args.limit] if args.limit else []
    for label, extra in (("plain", []), ("rubrics", ["--judge_rubrics", out / "set" / "rubrics.json"])):
        seconds[label] = run_seconds([sys.executable, "-m", "eval.reward_bench", "--model", args.llm, *endpoint,
                                      "--judge_mode", "pairwise", "--dataset", llmbar, "--subsets", *OTHER_SUBSETS,
                                      *limit, *extra, "--output_dir", out / label, "--quiet"], out / f"{label}.log")
    load["end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"llm": args.llm, "verify": args.verify,
              "rubric_set": {k: rubric_set[k] for k in ("principles", "stats", "structured")},
              "seconds": seconds, "load": load, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    result["generation"] = generation_summary(out / "set")
    result.update(compare(out))
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "section.md").write_text(section(result), encoding="utf-8")
    print((out / "section.md").read_text(encoding="utf-8"))
    return result


def generation_summary(folder: Path) -> dict:
    """What the propose-evaluate-revise loop did, from its store (generate.partial.jsonl): pairs, how many passed,
    the failures by kind, and, over every evaluated round, which response the rubric-guided judge picked in each
    order. "slot A both orders" = the better response when shown first and the worse when shown second: the
    judge picked the first slot whatever the rubrics said."""
    from collections import Counter

    from judges.base import PairVerdict
    from judges.rubrics import passes
    from rm_core.resume import read_jsonl_store

    rows = read_jsonl_store(folder / "generate.partial.jsonl")
    picks = Counter()
    averaged_better = 0  # rounds whose two orders' mean P(better) is above 1/2 (stores before p_better: not counted)
    for row in rows:
        for round_ in row["history"]:
            averaged_better += passes(PairVerdict(*(round_.get("p_better") or [None, None])), "order_averaged")
            got = tuple("picked the better" in v for v in round_["verdicts"][:2])
            if len(round_["verdicts"]) < 2 or any("no answer" in v or "failed" in v for v in round_["verdicts"]):
                picks["no answer"] += 1
            else:
                picks[{(True, True): "better both orders", (True, False): "slot A both orders",
                       (False, True): "slot B both orders", (False, False): "worse both orders"}[got]] += 1
    return {"pairs": len(rows), "passed": sum(r["passed"] for r in rows),
            "failures": dict(Counter(r["error"] for r in rows if r["error"])),
            "evaluated_rounds": sum(picks.values()), "picks": dict(picks), "averaged_better": averaged_better}


def compare(out: Path) -> dict:
    """Both judges' accuracy (all pairs, both orders averaged) with intervals, their order-flip rates, and the
    paired difference on the same pairs (eval.report's paired bootstrap)."""
    from eval.report import headline_ci, headline_paths, paired_difference, read_scored, scoring_module

    got = {}
    units = {}
    for label in ("plain", "rubrics"):
        summary, rows = read_scored(out / label)
        head = headline_paths("reward_bench", summary)
        got[label] = {"accuracy": summary["accuracy"], "ci95": headline_ci("reward_bench", summary).get(
            "accuracy (all pairs)"), "order_flip_rate": (summary.get("order") or {}).get("order_flip_rate"),
            "failed_pairs": summary.get("failed_pairs"), "pairs": summary.get("pairs")}
        units[label] = scoring_module("reward_bench").units(rows)
    diff = paired_difference("reward_bench", units["rubrics"], units["plain"], head["accuracy (all pairs)"])
    return {"judges": got, "rubrics_minus_plain": diff}


def section(r: dict) -> str:
    from rm_core.stats import difference_with_ci, percent_with_ci

    g = r["generation"]
    how = "once the two orders are averaged" if r.get("verify") == "order_averaged" else "in both orders"
    made = (f"Rubric generation over {g['pairs']} pairs: {g['passed']} passed ({how}); failures by kind "
            f"{g['failures'] or 'none'}; over the {g['evaluated_rounds']} rounds the rubric-guided judge evaluated, "
            f"its picks: {g['picks'] or 'none'}; the better response won the two orders' average in "
            f"{g.get('averaged_better', 0)} of them.")
    if r["rubric_set"] is None:
        return "\n".join([f"### Rubrics learnt from LLMBar-natural pairs ({r['llm']}): none passed", "", made, "",
                          "No rubric survived verification, so there is no rubric set to compare with the plain judge: "
                          "this LLM cannot run the method. Seconds: " f"{r['seconds']}. Load average before "
                          f"{r['load']['start']}, after {r['load']['end']}."]) + "\n"
    lines = [f"### Rubrics learnt from {g['pairs']} LLMBar-natural pairs ({r['llm']})", "",
             "| judge (pairwise, both orders) | accuracy (95% CI) | order-flip rate | pairs | failed |", "|---|---|---|---|---|"]
    for label, j in r["judges"].items():
        lines.append(f"| {label} | {percent_with_ci(j['accuracy'], j['ci95'], unit='%')} | "
                     f"{percent_with_ci(j['order_flip_rate'], None, unit='%')} | {j['pairs']} | {j['failed_pairs']} |")
    d = r["rubrics_minus_plain"]
    if d:
        lines += ["", f"Rubrics − plain, paired over the same pairs: {difference_with_ci(d['difference'], d['low'], d['high'])}"
                      f" points ({'excludes' if d['excludes_zero'] else 'includes'} 0)."]
    stats = r["rubric_set"]["stats"]
    lines += ["", made]
    lines += ["", f"Of the rubrics of the {stats['passed']} pairs that passed, {len(r['rubric_set']['principles'])} "
                  "principles kept "
                  f"({'themes with tips' if r['rubric_set']['structured'] else 'unstructured'}). Seconds: "
                  f"{r['seconds']}. Load average before {r['load']['start']}, after {r['load']['end']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
