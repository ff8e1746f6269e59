"""Label preference pairs with judges, in both orders, into an append-only file that a killed run resumes.

    python decision_tree/collect_preferences.py --pairs "offline:hh-harmless[1000]" \
        --judge human --judge bt=outputs/bt-smollm2-135m --judge gpt=openai:gpt-4o-mini \
        --output_dir outputs/dt-prefs

- Pairs come from any preference source (armo_rm.data.load_preferences: offline sets, files, Hub ids).
  Each pair is shown as (a, b) with a = chosen or rejected by a fixed hash of its id, so no judge can
  learn "a wins"; `pairs.jsonl` keeps the pairs and which side the data set prefers.
- A judge is `NAME=SPEC` (anything `judges.load` takes: a checkpoint, `llm:<model>`, `openai:<model>`),
  or `human` for the data set's own label. Judges with `judge_pairs` (pair-PM, prompted LLMs) are read
  in both orders by their own batched call; other judges are asked compare(a, b) and compare(b, a).
- `labels.jsonl` gets one line per (pair, judge) as each chunk finishes (flushed and fsynced); a rerun
  skips what is there. A failed verdict is written with its error and counted, never guessed.
- `report.json`: per judge, labelled/failed counts, order-consistency, agreement with every other judge
  (on pairs both decided) and with the human label.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HUMAN = "human"


def present(prefs: list[dict]) -> list[dict]:
    """Pairs as (prompt, a, b, a_is_chosen): the side shown first fixed by a hash of the pair id."""
    out = []
    for i, pref in enumerate(prefs):
        pid = str(pref.get("id") or i)
        first_is_chosen = int(hashlib.sha1(pid.encode()).hexdigest(), 16) % 2 == 0
        chosen, rejected = pref["chosen"][-1]["content"], pref["rejected"][-1]["content"]
        a, b = (chosen, rejected) if first_is_chosen else (rejected, chosen)
        out.append({"id": pid, "prompt": pref["prompt"] + pref["chosen"][:-1], "a": a, "b": b,
                    "a_is_chosen": first_is_chosen, "subset": pref.get("subset", "")})
    return out


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a kill: that chunk is labelled again
    return rows


def drop_cut_tail(path: Path) -> None:
    """Remove a last line cut by a kill (no trailing newline), so appends start on a fresh line."""
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


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


def collect(judges_by_name: dict, pairs: list[dict], out_dir: str | Path, chunk: int = 16) -> dict:
    """Label `pairs` (from `present`) with each judge; resumable. Returns the report."""
    from rm_core.hub import atomic_write_json, atomic_write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs_path, labels_path = out / "pairs.jsonl", out / "labels.jsonl"
    existing = read_jsonl(pairs_path)
    if existing and [p["id"] for p in existing] != [p["id"] for p in pairs]:
        raise ValueError(f"{pairs_path} holds other pairs: use another output_dir")
    if not existing:
        atomic_write_jsonl(pairs_path, pairs)
    drop_cut_tail(labels_path)
    done = {(r["pair"], r["judge"]) for r in read_jsonl(labels_path)}
    with open(labels_path, "a", encoding="utf-8") as f:
        for name, judge in judges_by_name.items():
            todo = [p for p in pairs if (p["id"], name) not in done]
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                if judge == HUMAN:
                    got = [(float(p["a_is_chosen"]), float(p["a_is_chosen"]), None) for p in part]
                else:
                    got = verdicts(judge, [(p["prompt"], p["a"], p["b"]) for p in part])
                for p, (fwd, bwd, err) in zip(part, got):
                    f.write(json.dumps({"pair": p["id"], "judge": name, "p_forward": fwd, "p_backward": bwd,
                                        "error": err}) + "\n")
                f.flush()
                os.fsync(f.fileno())
                print(f"[collect] {name}: {min(start + chunk, len(todo))}/{len(todo)}", flush=True)
    report = agreement_report(pairs, read_jsonl(labels_path))
    atomic_write_json(out / "report.json", report)
    return report


def decided(row: dict) -> int | None:
    """+1 a better, -1 b better, 0 tie, None failed: from the order-averaged P."""
    from judges.base import winner

    if row["p_forward"] is None or row["p_backward"] is None:
        return None
    return winner((row["p_forward"] + row["p_backward"]) / 2)


def agreement_report(pairs: list[dict], labels: list[dict]) -> dict:
    from judges.base import winner

    truth = {p["id"]: (1 if p["a_is_chosen"] else -1) for p in pairs}
    by_judge: dict[str, dict[str, dict]] = {}
    for r in labels:
        by_judge.setdefault(r["judge"], {})[r["pair"]] = r
    report = {}
    for name, rows in by_judge.items():
        both = [r for r in rows.values() if r["p_forward"] is not None and r["p_backward"] is not None]
        consistent = sum(winner(r["p_forward"]) == winner(r["p_backward"]) for r in both)
        wins = {pid: decided(r) for pid, r in rows.items()}
        entry = {"labelled": len(rows), "failed": sum(w is None for w in wins.values()),
                 "ties": sum(w == 0 for w in wins.values()),
                 "order_consistency": round(consistent / len(both), 4) if both else None,
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


def load_judges(specs: list[str], **kwargs) -> dict:
    import judges

    out = {}
    for spec in specs:
        if spec == HUMAN:
            out[HUMAN] = HUMAN
            continue
        name, sep, target = spec.partition("=")
        if not sep:
            raise ValueError(f"--judge {spec!r}: expected NAME=SPEC (e.g. bt=outputs/bt-rm) or 'human'")
        out[name] = judges.load(target, **kwargs)
    return out


def main(argv: list[str] | None = None) -> dict:
    from armo_rm.data import load_preferences

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", required=True, help="preference sources (suffix [N]: first N pairs)")
    p.add_argument("--judge", action="append", required=True, help="NAME=SPEC or 'human'; repeat")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--max_length", type=int, default=None, help="passed to the judges")
    p.add_argument("--chunk", type=int, default=16, help="pairs per write")
    args = p.parse_args(argv)
    prefs = [x for source in args.pairs for x in load_preferences(source)]
    kwargs = {"max_length": args.max_length} if args.max_length else {}
    report = collect(load_judges(args.judge, **kwargs), present(prefs), args.output_dir, args.chunk)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
