"""PRMBench (Song et al. 2025): fine-grained step-error detection for process reward models, scored as the
official code scores it.

    python -m eval.prmbench --model outputs/prm --dataset PRMBench/mr_eval/tasks/prmtest_classified/data
    python -m eval.prmbench --model outputs/prm --dataset prmbench_preview.jsonl --threshold 0.5

Data (github.com/ssmisya/PRMBench at a1ae4ea, docs/data_format.md; the Hub copy is hitsmy/PRMBench_Preview): JSONL
rows with `modified_question`, `modified_process` (the steps, a list of strings), `error_steps` (1-based),
`classification` and `idx` (repeated across classifications: an item is keyed by both). A folder is read file by
file (*.jsonl at its top level, as the official loader does; here in name order). 6,216 rows (83,456 steps); five ids of
multi_solutions appear twice with other content (prm_test_p2_863, _889, _997, _1053, _1058): the first row of an id
is kept and the later one skipped, counted in `skipped_rows`, as the official loader drops it (task.py, lines
41-45): 6,211 items.

Scoring (mr_eval/tasks/prmtest_classified/task.py at a1ae4ea, blob b4f0b3f8; PRMScore from
mr_visualize/eval_res_view/draw_tabs/form_latex_strs.ipynb):
- every step of `modified_process` is scored for `modified_question` by the judge in one forward pass
  (`judge.score_steps`: the project's PRMs); a step is labelled correct when its score is above `--threshold`
  (0.5 on P(step good), the official default). The step numbers the data carries ("3. ", "Step 3. ") are removed
  first, as the official models do (mr_eval/utils/model_utils.py), unless --keep_step_numbers.
- EVERY step counts (step 1 and the steps after the first error too). A correct step is the positive class:
  TP = correct step labelled correct, FN = correct step labelled wrong, FP = error step labelled correct, TN =
  error step labelled wrong; summed over all steps of all items (per classification, and in total). Error steps
  beyond the end of the process (about 100 rows list one) are ignored, as the official loop does; counted here.
- F1 = 2PR/(P+R) of the correct class, negative F1 the same with the error class positive, with the official
  code's sentinels: P = -1 when nothing is labelled positive, R = -1 when there is no positive, F1 = -1 when
  P + R = 0 (so F1 = 2TP/(2TP+FP+FN) when TP > 0; with TP = 0 it is -1, or 0 where exactly one of FP and FN is 0).
- PRMScore = 0.5 F1 + 0.5 negative F1, clipped at 0; multi_solutions (no error steps) uses F1 alone. The overall
  PRMScore pools the steps of every item (not a mean of the classes); a group (Simplicity, Soundness,
  Sensitivity) is the mean of its classes' PRMScores.
- An item whose steps could not all be scored (a step cut by --max_length) is left out of the counts and counted
  in `failed_items`: our choice (the official loader cuts nothing; it leaves out only an item whose model call
  raised).

Intervals: a seeded bootstrap over the items, resampled within each classification, every PRMScore and F1
recomputed from the resampled step counts (`ci95`).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from eval.runner import add_judge_args, check_model, run_benchmark, run_eval_command
from rm_core.data import RowError, SkipReport, decode_line
from rm_core.errors import UserInputError, cli_entry, finite_float
from rm_core.stats import interval_text_at, percent

# classification -> (abbreviation, group), as the official tables name and group them
CLASSES = {
    "redundency": ("NR", "Simplicity"), "circular": ("NCL", "Simplicity"),
    "counterfactual": ("ES", "Soundness"), "step_contradiction": ("SC", "Soundness"),
    "domain_inconsistency": ("DC", "Soundness"), "confidence": ("CI", "Soundness"),
    "missing_condition": ("PS", "Sensitivity"), "deception": ("DR", "Sensitivity"),
    "multi_solutions": ("MS", "Sensitivity"),
}
POSITIVE_ONLY = ("multi_solutions",)  # no error steps: its PRMScore is the F1 of correct steps alone
_STEP_NUMBER = re.compile(r"^(Step\s*\d+\.\s*|\d+\.\s*)", re.IGNORECASE)
COUNTS = ("tp", "fp", "tn", "fn")


def to_item(row: dict, keep_step_numbers: bool = False) -> dict:
    question, steps, errors = row.get("modified_question"), row.get("modified_process"), row.get("error_steps")
    if not isinstance(question, str) or not question.strip():
        raise RowError("modified_question must be a non-empty string")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise RowError("modified_process must be a non-empty list of non-empty strings")
    if not isinstance(errors, list) or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1
                                               for e in errors):
        raise RowError("error_steps must be a list of 1-based step numbers")
    classification = row.get("classification")
    if not isinstance(classification, str) or not classification:
        raise RowError("classification must be a non-empty string")
    if row.get("idx") is None or isinstance(row.get("idx"), (bool, dict, list)):
        raise RowError("idx must be a number or a string (an item is keyed by classification and idx)")
    clean = [s.strip() if keep_step_numbers else _STEP_NUMBER.sub("", s.strip()) for s in steps]
    return {"id": f"{classification}:{row.get('idx')}", "classification": classification, "question": question,
            "steps": clean, "error_steps": sorted({e - 1 for e in errors if e <= len(steps)}),
            "errors_out_of_range": sum(e > len(steps) for e in errors)}


def load(dataset: str, limit: int | None = None, classifications=None,
         keep_step_numbers: bool = False) -> tuple[list[dict], SkipReport]:
    root = Path(dataset)
    if not root.exists():
        raise UserInputError(f"PRMBench data {dataset}: no such file or directory (the repository's "
                             "mr_eval/tasks/prmtest_classified/data folder, or the Hub copy hitsmy/PRMBench_Preview)")
    files = [root] if root.is_file() else sorted(root.glob("*.jsonl"))
    if not files:
        raise UserInputError(f"{dataset}: no *.jsonl files")
    items, skipped, first_at = [], SkipReport(), {}
    for path in files:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                line = decode_line(path, raw, n)  # the shared readers' rule: BOM ignored, non-UTF-8 names the line
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise RowError("line is not a JSON object")
                    item = to_item(row, keep_step_numbers)
                except (RowError, ValueError) as err:
                    skipped.add(str(err) if isinstance(err, RowError) else "not JSON", f"{path.name}:{n}")
                    continue
                if classifications and item["classification"] not in classifications:
                    continue
                if item["id"] in first_at:  # the official loader keeps the first row of an id (task.py, ll. 41-45)
                    skipped.add("repeated idx: the first row of the id kept, as the official loader does",
                                f"{path.name}:{n} (first at {first_at[item['id']]})")
                    continue
                first_at[item["id"]] = f"{path.name}:{n}"
                items.append(item)
    if not items:
        raise UserInputError(f"{dataset}: no PRMBench items ({skipped})")
    return (items[:limit] if limit else items), skipped


# ---------------------------------------------------------------- scoring


def step_counts(labels: list[bool], error_steps: list[int]) -> dict[str, int]:
    """TP/FP/TN/FN of one item's step labels (True: labelled correct) against its 0-based error steps."""
    errors = set(error_steps)
    out = dict.fromkeys(COUNTS, 0)
    for i, ok in enumerate(labels):
        if i in errors:
            out["fp" if ok else "tn"] += 1
        else:
            out["tp" if ok else "fn"] += 1
    return out


def make_scorer(judge, threshold: float = 0.5):
    if not callable(getattr(judge, "score_steps", None)):
        raise UserInputError(f"{type(judge).__name__} cannot score steps: PRMBench needs a process judge "
                             "(a PRM checkpoint, rm_family prm)")

    def scorer(items: list[dict]) -> list[dict]:
        scores = judge.score_steps([([{"role": "user", "content": it["question"]}], it["steps"]) for it in items])
        rows = []
        for it, s in zip(items, scores):
            failed = len(s) != len(it["steps"]) or any(x is None for x in s)
            row = {"id": it["id"], "classification": it["classification"], "n_steps": len(it["steps"]),
                   "error_steps": it["error_steps"], "errors_out_of_range": it["errors_out_of_range"],
                   "scores": s, "failed": failed}
            if not failed:
                row.update(step_counts([x > threshold for x in s], it["error_steps"]))
            rows.append(row)
        return rows
    return scorer


def f1(tp, fp, fn):
    """The official F1 of the positive class, with its sentinels: precision P = TP / (TP + FP), or -1 when nothing
    was labelled positive; recall R = TP / (TP + FN), or -1 when there is no positive; F1 = 2PR / (P + R), or -1 when
    P + R = 0. So with no true positive F1 is -1, except where exactly one of P and R is the -1 sentinel (FP = 0 or
    FN = 0, not both), where the official formula gives 0 (a PRM that labels every step correct: negative F1 0).
    Array-safe (the bootstrap passes arrays)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp != 0, tp / np.where(tp + fp != 0, tp + fp, 1.0), -1.0)
        r = np.where(tp + fn != 0, tp / np.where(tp + fn != 0, tp + fn, 1.0), -1.0)
        return np.where(p + r != 0, 2 * p * r / np.where(p + r != 0, p + r, 1.0), -1.0) + 0.0  # -0.0 -> 0.0


def prm_score(counts: dict, positive_only: bool = False):
    pos = f1(counts["tp"], counts["fp"], counts["fn"])
    if positive_only:
        return np.maximum(pos, 0.0)
    neg = f1(counts["tn"], counts["fn"], counts["fp"])
    return np.maximum(0.5 * pos + 0.5 * neg, 0.0)


def _number(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def _class_block(rows: list[dict], classification: str) -> dict:
    counts = {k: sum(r[k] for r in rows) for k in COUNTS}
    positive_only = classification in POSITIVE_ONLY
    return {**counts, "items": len(rows), "steps": sum(r["n_steps"] for r in rows),
            "f1": _number(f1(counts["tp"], counts["fp"], counts["fn"])),
            "negative_f1": _number(f1(counts["tn"], counts["fn"], counts["fp"])),
            "prm_score": _number(prm_score(counts, positive_only))}


def statistics_from(groups_sizes: dict[str, int], class_names: list[str]) -> dict[tuple, object]:
    """Every PRMScore and F1 of `summarize` from resampled per-class mean step counts (rm_core.stats.total)."""
    def counts(m, names):  # the step counts of `names` in a replicate: class size x mean count per item
        return {k: sum(groups_sizes[c] * m[c][k] for c in names) for k in COUNTS}

    def pooled_f1(m, positive: str, false_pos: str, false_neg: str):
        c = counts(m, class_names)
        return f1(c[positive], c[false_pos], c[false_neg])

    stats: dict[tuple, object] = {("prm_score",): lambda m: prm_score(counts(m, class_names)),
                                  ("f1",): lambda m: pooled_f1(m, "tp", "fp", "fn"),
                                  ("negative_f1",): lambda m: pooled_f1(m, "tn", "fn", "fp")}
    for c in class_names:
        stats[("classes", c, "prm_score")] = lambda m, c=c: prm_score(counts(m, [c]), c in POSITIVE_ONLY)
    for group in dict.fromkeys(CLASSES[c][1] for c in class_names if c in CLASSES):
        members = [c for c in class_names if CLASSES.get(c, ("", ""))[1] == group]
        stats[("groups", group, "prm_score")] = lambda m, members=members: sum(
            prm_score(counts(m, [c]), c in POSITIVE_ONLY) for c in members) / len(members)
    return stats


def units(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """The bootstrap's units: {classification: {item id: its step counts}} (scored items only)."""
    out: dict[str, dict] = {}
    for r in rows:
        if not r["failed"]:
            out.setdefault(r["classification"], {})[r["id"]] = {k: float(r[k]) for k in COUNTS}
    return out


def statistics(by_class: dict) -> dict[tuple, object]:
    return statistics_from({c: len(u) for c, u in by_class.items()}, list(by_class))


def summarize(rows: list[dict]) -> dict:
    from rm_core.stats import interval_tree

    scored = [r for r in rows if not r["failed"]]
    if not scored:
        return {"prm_score": None, "classes": {}, "groups": {}, "items": len(rows), "failed_items": len(rows)}
    names = sorted({r["classification"] for r in scored}, key=lambda c: (list(CLASSES).index(c) if c in CLASSES
                                                                          else len(CLASSES), c))
    classes = {c: _class_block([r for r in scored if r["classification"] == c], c) for c in names}
    everything = _class_block(scored, "all")
    groups = {}
    for group in dict.fromkeys(CLASSES[c][1] for c in names if c in CLASSES):
        members = [c for c in names if CLASSES.get(c, ("", ""))[1] == group]
        groups[group] = {"prm_score": sum(classes[c]["prm_score"] for c in members) / len(members),
                         "classes": members}
    by_unit = units(rows)
    return {"prm_score": everything["prm_score"], "f1": everything["f1"], "negative_f1": everything["negative_f1"],
            "counts": {k: everything[k] for k in COUNTS}, "steps": everything["steps"], "classes": classes,
            "groups": groups, "items": len(rows), "failed_items": len(rows) - len(scored),
            "errors_out_of_range": sum(r["errors_out_of_range"] for r in rows),
            "ci95": interval_tree(by_unit, statistics(by_unit))}


def format_table(summary: dict) -> str:
    lines = [f"{'class':<22} {'':<4} {'items':>6} {'steps':>7}  {'PRMScore':>8}  95% CI        F1 / neg F1",
             "-" * 80]
    for c, t in summary["classes"].items():
        abbrev = CLASSES.get(c, ("",))[0]
        lines.append(f"{c:<22} {abbrev:<4} {t['items']:>6} {t['steps']:>7}  {percent(t['prm_score'], 1):>8}  "
                     f"{interval_text_at(summary, ('classes', c, 'prm_score')):<12}  "
                     f"{percent(t['f1'], 1)} / {percent(t['negative_f1'], 1)}")
    for g, t in summary["groups"].items():
        lines.append(f"{g:<27} {'':>6} {'':>7}  {percent(t['prm_score'], 1):>8}  "
                     f"{interval_text_at(summary, ('groups', g, 'prm_score'))}")
    lines.append(f"\nPRMScore (all steps pooled): {percent(summary['prm_score'], 1)} "
                 f"{interval_text_at(summary, ('prm_score',))}   F1 {percent(summary.get('f1'), 1)}, negative F1 "
                 f"{percent(summary.get('negative_f1'), 1)}")
    lines.append(f"items: {summary['items']}, failed (a step cut by max_length): {summary['failed_items']}, error "
                 f"steps beyond the process ignored: {summary.get('errors_out_of_range', 0)}")
    lines.append("(95% CI: bootstrap over the items, resampled within each classification)")
    return "\n".join(lines)


def headline_paths(summary: dict) -> dict[str, tuple]:
    out = {"PRMScore": ("prm_score",)}
    out.update({f"PRMScore {g}": ("groups", g, "prm_score") for g in summary.get("groups", {})})
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval_prmbench", description=__doc__.split("\n\n")[0])
    add_judge_args(p, unit="solutions")
    p.add_argument("--dataset", required=True, help="a PRMBench .jsonl file or a folder of them")
    p.add_argument("--split", default=None, help="unused (a file has one split); kept for eval_report")
    p.add_argument("--classifications", nargs="*", default=None, choices=sorted(CLASSES),
                   help="score only these error classes")
    p.add_argument("--threshold", type=finite_float, default=0.5, help="a step is labelled correct above this score")
    p.add_argument("--keep_step_numbers", action="store_true",
                   help="score the steps with their leading numbers ('3. ', 'Step 3. ') as the data has them")
    return p


def evaluate(args) -> dict | None:
    check_model(args)  # before the data
    items, skipped = load(args.dataset, args.limit, args.classifications, args.keep_step_numbers)
    return run_benchmark(args, "prmbench", items, skipped, lambda judge: make_scorer(judge, args.threshold),
                         summarize, format_table, unit="solutions", chunk_size=32)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    run_eval_command(evaluate, make_parser(), argv, "prmbench")  # + --quiet, --report_to


if __name__ == "__main__":
    main()
