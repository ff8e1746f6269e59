"""Label preference pairs with judges, in both orders, into an append-only file that a killed run resumes.

    python decision_tree/collect_preferences.py --pairs "offline:hh-harmless[1000]" \
        --judge human --judge bt=outputs/bt-smollm2-135m --judge gpt=openai:gpt-4o-mini \
        --output_dir outputs/dt-prefs

- Pairs come from any preference source (armo_rm.data.load_preferences: offline sets, files, Hub ids).
  Each pair is shown as (a, b) with a = chosen or rejected by a fixed hash of its id, so no judge can
  learn "a wins"; `pairs.jsonl` keeps the pairs and which side the data set prefers. Labels are stored by
  pair id, so ids are unique (load_pairs): a repeated id in a source, an id two sources give, or a source
  given twice is one line naming them; with several sources an id the data does not give itself is prefixed
  with its source's position ("1:17": row 17 of the second source). Bad rows are skipped and counted.
- A judge is `NAME=SPEC` (anything `judges.load` takes: a checkpoint, `llm:<model>`, `openai:<model>`),
  or `human` for the data set's own label. Judges with `judge_pairs` (pair-PM, prompted LLMs) are read
  in both orders by their own batched call; other judges are asked compare(a, b) and compare(b, a).
- `labels.jsonl` gets one line per (pair, judge) as each chunk finishes (flushed and fsynced); a rerun
  skips what is there (a last line cut by a kill is dropped: rm_core.resume). A failed verdict (an error, a
  missing order) is written with its error and counted, never guessed; a rerun asks that judge for it again
  (`--no_retry_failed`: keep it) and appends the new line, and readers (the report, fit_tree) take the last
  line per (pair, judge), so the file stays append-only and each pair counts once.
- After writing everything it got, the command exits 3 with one line naming, per judge, how many pairs are
  still failed and their share when that share is above `--max_failed_share` (default 0.05; 1 never stops).
- `fingerprint.json`: the pairs (by content) and each judge (a checkpoint by content, not path; an API model by
  name) with the options passed to the judges. A rerun may add judges; one whose name now means another model or
  other options stops with one line naming what differs; `--overwrite` starts the folder afresh.
- `report.json`: per judge, labelled/failed counts, order-consistency, agreement with every other judge
  (on pairs both decided) and with the human label; under "data", the pairs and skipped rows of each source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from rm_core.errors import run_recipe

HUMAN = "human"
DATA = "data"  # report.json's data report: not a judge name


def present(prefs: list[dict]) -> list[dict]:
    """Pairs as (prompt, a, b, a_is_chosen): the side shown first fixed by a hash of the pair id."""
    from judges.base import pair_texts

    out = []
    for i, pref in enumerate(prefs):
        pid = str(pref.get("id") or i)
        first_is_chosen = int(hashlib.sha1(pid.encode()).hexdigest(), 16) % 2 == 0
        # the shared prompt, and each side whole: a pair whose sides part before the last reply shows each side's
        # own turns (labelled), never the chosen side's history above both replies
        chosen, rejected = pair_texts(pref)
        a, b = (chosen, rejected) if first_is_chosen else (rejected, chosen)
        out.append({"id": pid, "prompt": pref["prompt"], "a": a, "b": b,
                    "a_is_chosen": first_is_chosen, "subset": pref.get("subset", "")})
    return out


def read_jsonl(path: Path) -> list[dict]:
    """Rows of pairs.jsonl / labels.jsonl for a reader (fit_tree): a last line cut by a kill is left out (the
    collector, resuming, cuts it off the file)."""
    from rm_core.resume import read_jsonl_store

    return read_jsonl_store(path, repair=False)


def claim_folder(out: Path, pairs: list[dict], judge_fps: dict[str, dict], settings: dict, overwrite: bool) -> None:
    """Refuse a folder whose pairs, options or same-named judges differ (rm_core.resume); judges new to it are
    added to its fingerprint."""
    from rm_core.hub import atomic_write_json
    from rm_core.resume import check_or_write_fingerprint, fingerprint_path

    pairs_sha = hashlib.sha256(json.dumps(pairs, sort_keys=True).encode()).hexdigest()
    fp_path = fingerprint_path(out)
    known = {} if overwrite or not fp_path.is_file() else json.loads(fp_path.read_text(encoding="utf-8"))["judges"]
    # the folder's judges as they would be now (unchanged where this run does not use them)
    now = {**known, **{name: fp for name, fp in judge_fps.items() if name in known}}
    check_or_write_fingerprint(out, {"pairs_sha256": pairs_sha, "settings": settings, "judges": now}, overwrite,
                               [out / "pairs.jsonl", out / "labels.jsonl"])
    if set(judge_fps) - set(known):
        atomic_write_json(fp_path, {"pairs_sha256": pairs_sha, "settings": settings, "judges": {**known, **judge_fps}})


def verdicts(judge, items: list[tuple]) -> list[tuple[float | None, float | None, str | None]]:
    """(p_forward, p_backward, error) per (prompt, a, b): P(a better) shown first and shown second."""
    if hasattr(judge, "judge_pairs"):
        return [(v.p_forward, v.p_backward, v.error) for v in judge.judge_pairs(items)]
    forward = judge.compare_batch(items)
    if judge.pointwise:  # sigmoid(score(a) - score(b)): the swapped order is exactly 1 - p, no second pass
        return [(f, f, None if f is not None else "judge failed") for f in forward]
    backward = judge.compare_batch([(p, b, a) for p, a, b in items])
    return [(f, None if b is None else 1.0 - b, None if f is not None and b is not None else "judge failed")
            for f, b in zip(forward, backward)]


def collect(judges_by_name: dict, pairs: list[dict], out_dir: str | Path, chunk: int = 16,
            fingerprints: dict[str, dict] | None = None, settings: dict | None = None, overwrite: bool = False,
            retry_failed: bool = True, data_report: dict | None = None) -> dict:
    """Label `pairs` (from `present`) with each judge; resumable. Returns the report (with `data_report`, the
    pairs' sources and skipped rows from load_pairs, under "data" when given). `fingerprints` (judge name
    -> rm_core.resume.judge_fingerprint of its spec; main passes them) identify the judges in the folder's
    fingerprint; a judge without one is known by its class. `settings`: the options the judges were loaded with.
    `retry_failed`: a (pair, judge) whose last stored verdict failed is asked again (its new line appended)."""
    from rm_core.errors import UserInputError
    from rm_core.hub import atomic_write_json, atomic_write_jsonl
    from rm_core.resume import append_jsonl, latest_rows, read_jsonl_store

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs_path, labels_path = out / "pairs.jsonl", out / "labels.jsonl"
    existing = read_jsonl(pairs_path) if not overwrite else []
    if existing and [p["id"] for p in existing] != [p["id"] for p in pairs]:
        raise UserInputError(f"{pairs_path} holds other pairs: use another output_dir (or --overwrite)")
    judge_fps = {name: (fingerprints or {}).get(name) or
                 ({"human": "the data set's label"} if judge == HUMAN else {"class": type(judge).__name__})
                 for name, judge in judges_by_name.items()}
    claim_folder(out, pairs, judge_fps, settings or {}, overwrite)
    if not existing:
        atomic_write_jsonl(pairs_path, pairs)
    stored = latest_rows(read_jsonl_store(labels_path), lambda r: (r["pair"], r["judge"]))
    done = {key for key, r in stored.items() if not (retry_failed and decided(r) is None)}
    from rm_core.progress import progress

    with open(labels_path, "a", encoding="utf-8") as f:
        for name, judge in judges_by_name.items():
            todo = [p for p in pairs if (p["id"], name) not in done]
            retried = sum((p["id"], name) in stored for p in todo)
            if retried:
                print(f"[collect] {name}: asking again {retried} pair(s) whose stored verdict failed", flush=True)
            with progress(total=len(todo), desc=f"labelling ({name})", unit="pair") as bar:
                for start in range(0, len(todo), chunk):
                    part = todo[start:start + chunk]
                    if judge == HUMAN:
                        got = [(float(p["a_is_chosen"]), float(p["a_is_chosen"]), None) for p in part]
                    else:
                        got = verdicts(judge, [(p["prompt"], p["a"], p["b"]) for p in part])
                    append_jsonl(f, [{"pair": p["id"], "judge": name, "p_forward": fwd, "p_backward": bwd,
                                      "error": err} for p, (fwd, bwd, err) in zip(part, got)])
                    bar.update(len(part))
            print(f"[collect] {name}: {len(todo)} pair(s) labelled, {len(pairs) - len(todo)} already there", flush=True)
    report = agreement_report(pairs, read_jsonl(labels_path))
    if data_report is not None:
        report[DATA] = data_report
    atomic_write_json(out / "report.json", report)
    return report


def decided(row: dict) -> int | None:
    """+1 a better, -1 b better, 0 tie, None failed: from the order-averaged P."""
    from judges.base import winner

    if row["p_forward"] is None or row["p_backward"] is None:
        return None
    return winner((row["p_forward"] + row["p_backward"]) / 2)


def agreement_report(pairs: list[dict], labels: list[dict]) -> dict:
    """Per judge, from the last line per (pair, judge) of `labels` (a failure asked again counts once, as its
    latest verdict). order_consistency: judges.conflicts.OrderStats (the project's definition)."""
    from judges.base import PairVerdict
    from judges.conflicts import OrderStats

    truth = {p["id"]: (1 if p["a_is_chosen"] else -1) for p in pairs}
    by_judge: dict[str, dict[str, dict]] = {}
    for r in labels:
        by_judge.setdefault(r["judge"], {})[r["pair"]] = r  # a later line supersedes an earlier one
    report = {}
    for name, rows in by_judge.items():
        order = OrderStats.of(PairVerdict(r["p_forward"], r["p_backward"]) for r in rows.values())
        consistency = order.consistency_rate
        wins = {pid: decided(r) for pid, r in rows.items()}
        entry = {"labelled": len(rows), "failed": sum(w is None for w in wins.values()),
                 "ties": sum(w == 0 for w in wins.values()),
                 "order_consistency": None if consistency is None else round(consistency, 4),
                 "accuracy_vs_human": round(sum(w == truth[pid] for pid, w in wins.items()) / len(wins), 4)
                 if wins else None,
                 "agreement": {}}
        for other, other_rows in by_judge.items():
            if other == name:
                continue
            shared = [pid for pid, w in wins.items() if w and pid in other_rows and decided(other_rows[pid])]
            if shared:
                entry["agreement"][other] = round(
                    sum(wins[pid] == decided(other_rows[pid]) for pid in shared) / len(shared), 4)
        report[name] = entry
    return report


def check_judge_specs(specs: list[str]) -> None:
    """Each --judge is `human` or NAME=SPEC whose NAME is not "data" (report.json's data report) and whose SPEC
    names nothing missing: a UserInputError otherwise, before any data or model is read."""
    import judges
    from rm_core.errors import UserInputError

    for spec in specs:
        if spec == HUMAN:
            continue
        name, sep, target = spec.partition("=")
        if not sep:
            raise UserInputError(f"--judge {spec!r}: expected NAME=SPEC (e.g. bt=outputs/bt-rm) or 'human'")
        if name == DATA:
            raise UserInputError(f"--judge {spec!r}: the name {DATA!r} is taken (report.json's data report)")
        judges.check_judge_spec(target, "--judge")


def load_judges(specs: list[str], **kwargs) -> dict:
    import judges

    check_judge_specs(specs)
    out = {}
    for spec in specs:
        if spec == HUMAN:
            out[HUMAN] = HUMAN
            continue
        name, _, target = spec.partition("=")
        out[name] = judges.load(target, **kwargs)
    return out


def load_pairs(sources: list[str]) -> tuple[list[dict], dict]:
    """(Preference rows of every source, the data report: per source its file, rows read, pairs and skipped rows
    by reason). Labels are stored by pair id, so ids are unique: a repeated id within a source is a UserInputError
    naming the file, the id and both rows (rm_core.data.check_unique_ids), a source given twice or an id two
    sources give is one naming both. With more than one source, an id the data does not give itself (a row
    without one, every pair of an offline: set) is prefixed with the source's position, "<k>:<id>"; one source
    keeps its ids as they are (rm_core.data.row_ids: the row index for a row without one)."""
    from armo_rm.data import load_preferences, source_limit
    from rm_core.data import check_unique_ids, data_file_name, load_rows, located_preferences, own_id, require_pairs
    from rm_core.errors import UserInputError

    prefs, report, where, names = [], {"sources": [], "pairs": 0, "skipped": 0}, {}, {}
    for k, source in enumerate(sources):
        name, limit = source_limit(source, None)
        if name in names:
            both = "" if names[name] == source else f" ({names[name]!r} and {source!r})"
            raise UserInputError(f"--pairs {name} is given twice{both}: give each source once (its pairs would be "
                                 "labelled twice)")
        names[name] = source
        if name.startswith("offline:"):  # the project's own sets: ids made by their loader
            got = load_preferences(source)
            located, own, file, rows, skips = [(p, i) for i, p in enumerate(got)], [False] * len(got), name, None, None
        else:
            file = data_file_name(name)
            rows = load_rows(name)
            located, skips = located_preferences(rows)
            require_pairs(located, skips, file, len(rows))
            located = located[:limit]
            own = [own_id(rows[i]) is not None for _, i in located]
        if len(sources) > 1:
            for (pref, _), given in zip(located, own):
                pref["id"] = pref["id"] if given else f"{k}:{pref['id']}"
        check_unique_ids(((p["id"], i) for p, i in located), file)
        for pref, i in located:
            if pref["id"] in where:
                other, j = where[pref["id"]]
                raise UserInputError(f"id {pref['id']!r} is in {other} row {j} and in {file} row {i}; pair ids must "
                                     "be unique across the --pairs sources (labels are stored by id)")
            where[pref["id"]] = (file, i)
        prefs += [p for p, _ in located]
        report["sources"].append({"source": source, "file": file, "rows": None if rows is None else len(rows),
                                  "pairs": len(located), "skipped": None if skips is None else skips.as_dict()})
        report["pairs"] += len(located)
        report["skipped"] += 0 if skips is None else skips.total
    return prefs, report


def main(argv: list[str] | None = None) -> dict:
    from rm_core.errors import check_output_dir
    from rm_core.resume import DEFAULT_MAX_FAILED_SHARE, check_failed_share, share_arg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", required=True, help="preference sources (suffix [N]: first N pairs)")
    p.add_argument("--judge", action="append", required=True, help="NAME=SPEC or 'human'; repeat")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--max_length", type=int, default=None, help="passed to the judges")
    p.add_argument("--chunk", type=int, default=16, help="pairs per write")
    p.add_argument("--overwrite", action="store_true",
                   help="start the output_dir afresh when its pairs, options or a same-named judge differ")
    p.add_argument("--retry_failed", dest="retry_failed", action="store_true", default=True,
                   help="ask this run's judges again for pairs whose stored verdict failed (default)")
    p.add_argument("--no_retry_failed", dest="retry_failed", action="store_false",
                   help="keep stored failures as they are (e.g. pairs a judge always fails on)")
    p.add_argument("--max_failed_share", type=share_arg, default=DEFAULT_MAX_FAILED_SHARE,
                   help="exit 3 (after writing everything) when a judge of this run has more than this share of "
                        "the pairs failed, counted after retries (0: any failure; 1: never)")
    from rm_core.tracking import add_run_args, apply_run_args

    args = add_run_args(p, tracking=False).parse_args(argv)  # --quiet
    apply_run_args(args)
    check_judge_specs(args.judge)  # every judge before the data
    check_output_dir(args.output_dir)
    prefs, data_report = load_pairs(args.pairs)
    kwargs = {"max_length": args.max_length} if args.max_length else {}
    from rm_core.inference import numerics_fingerprint
    from rm_core.models import dtype_choice, inference_device
    from rm_core.resume import judge_fingerprint

    # A local judge loads with dtype "auto": bf16 on one machine, fp32 on another. Its verdicts in one dtype are
    # not the other's, nor are bf16 verdicts of two kinds of device (rm_core.inference.numerics), so both are part
    # of the judge's fingerprint (a resume elsewhere would mix them).
    fingerprints = {name: judge_fingerprint(spec) for name, _, spec in
                    (j.partition("=") for j in args.judge if j != HUMAN)}
    dtype = dtype_choice("auto")[0]
    half = numerics_fingerprint(inference_device(), dtype)
    local = {"dtype": dtype} if half is None else {"dtype": dtype, "numerics": half}
    fingerprints = {name: fp if "api" in fp else {**fp, **local} for name, fp in fingerprints.items()}
    from judges.prompts import templates_fingerprint

    fingerprints = {name: {**fp, "prompts": templates_fingerprint()} if ("api" in fp or "llm" in fp) else fp
                    for name, fp in fingerprints.items()}  # a prompted judge's verdicts: by the prompts asked
    judges_by_name = load_judges(args.judge, **kwargs)
    report = collect(judges_by_name, present(prefs), args.output_dir, args.chunk,
                     fingerprints=fingerprints, settings=kwargs, overwrite=args.overwrite,
                     retry_failed=args.retry_failed, data_report=data_report)
    print(json.dumps(report, indent=1))
    check_failed_share({name: (report[name]["failed"], report[name]["labelled"]) for name in judges_by_name
                        if name in report},
                       args.max_failed_share, "pairs",
                       f"every verdict is in {Path(args.output_dir) / 'labels.jsonl'}; rerun the same command"
                       f"{'' if args.retry_failed else ' without --no_retry_failed'} to ask the failed pairs again")
    return report


def cli() -> None:  # `rm-collect-preferences`, `python -m decision_tree.collect_preferences` or `python <this file>`
    run_recipe(main)


if __name__ == "__main__":
    cli()
