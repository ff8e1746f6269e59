"""Human preference labels through Label Studio: export pairs as a labelling project, import the labels back.

    rm-annotate export --pairs prefs.jsonl --output_dir outputs/ls      # or --candidates cands.jsonl
    # Label Studio: create a project with outputs/ls/label_config.xml, import outputs/ls/tasks.json, label,
    # then Export -> JSON
    rm-annotate import --export project-1-at-....json --output_dir outputs/human
    python decision_tree/collect_preferences.py --pairs outputs/human/preferences.jsonl --judge human \\
        --judge bt=outputs/bt --output_dir outputs/agreement      # how a model agrees with the annotators

Export: every pair becomes a task showing the prompt, "Response A" and "Response B" and asking for one choice
(A better, B better, or a tie) with an optional free-text reason. Which response is shown as A is decided by a
seeded coin per pair and recorded in the task's data (`a_source`, `b_source`: never shown), so annotators get no
position cue and the import can undo the order. Pairs come from a preference file (Preference rows or any format
rm_core.data.to_preferences reads: `a`/`b` are the data set's chosen and rejected, so the import also reports how
often people agree with the data set) or a candidates file (prompt + responses: every pair of one prompt's
responses, at most --max_pairs_per_prompt).

Import: Label Studio's JSON export (a list of tasks with their `annotations`). Each completed annotation becomes
one Preference row (`chosen` = the response the person preferred, with the order undone; `annotator` = Label
Studio's `completed_by`, `reason` = the free text, `task_id`, `pair_id`). A tie, a skipped or cancelled
annotation, and a task nobody labelled are counted (in summary.json) and never written as a preference; ties go
to ties.jsonl. Nothing is guessed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

CHOICE_A, CHOICE_B, CHOICE_TIE = "Response A is better", "Response B is better", "They are equally good"
LABEL_CONFIG = f"""<View>
  <Header value="Which response answers the request better?"/>
  <Text name="prompt" value="$prompt"/>
  <View style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 1em">
    <View><Header value="Response A" size="5"/><Text name="response_a" value="$response_a"/></View>
    <View><Header value="Response B" size="5"/><Text name="response_b" value="$response_b"/></View>
  </View>
  <Choices name="preference" toName="prompt" choice="single" showInline="true" required="true">
    <Choice value="{CHOICE_A}"/>
    <Choice value="{CHOICE_B}"/>
    <Choice value="{CHOICE_TIE}"/>
  </Choices>
  <TextArea name="reason" toName="prompt" placeholder="Why? (optional)" maxSubmissions="1" editable="true"/>
</View>
"""


def _text(messages) -> str:
    """A prompt (text or messages) as the annotator reads it: earlier turns labelled."""
    from judges.base import prompt_text

    return prompt_text(messages)


def _response(side) -> str:
    """A response as the annotator reads it: one reply's text (pairs_from_preferences keeps only those)."""
    from judges.base import reply_text

    return reply_text(side)


def pairs_from_preferences(path: str) -> tuple[list[dict], Counter]:
    from rm_core.data import check_unique_ids, load_rows, to_preferences

    prefs, skipped = to_preferences(load_rows(path))
    check_unique_ids(((str(p["id"]), i) for i, p in enumerate(prefs) if p.get("id")), path)
    skipped = Counter(skipped.counts)
    pairs = []
    for i, p in enumerate(prefs):
        # A pair whose sides part before the last reply has no shared prompt to show above two replies (showing
        # one side's earlier turns would tell the annotator which is chosen), and a label imports one reply each.
        if len(p["chosen"]) > 1 or len(p["rejected"]) > 1:
            skipped["the sides part before the last reply (one reply each is labelled)"] += 1
            continue
        pairs.append({"pair_id": str(p.get("id") or i), "prompt": p["prompt"], "x": _response(p["chosen"]),
                      "y": _response(p["rejected"]), "x_source": "chosen", "y_source": "rejected"})
    return pairs, skipped


def pairs_from_candidates(path: str, max_pairs_per_prompt: int) -> tuple[list[dict], Counter]:
    from rm_core.data import load_rows, to_candidates

    cands, skipped = to_candidates(load_rows(path), source=path)  # a repeated question id would mix pair ids
    skipped = Counter(skipped.counts)
    pairs = []
    for qi, c in enumerate(cands):
        cid = str(c.get("id") or qi)
        kept = 0
        for i, j in combinations(range(len(c["responses"])), 2):
            if kept >= max_pairs_per_prompt:
                break
            if c["responses"][i].strip() == c["responses"][j].strip():
                skipped["identical responses (nothing to choose)"] += 1
                continue
            kept += 1
            pairs.append({"pair_id": f"{cid}:{i}-{j}", "prompt": c["prompt"], "x": c["responses"][i],
                          "y": c["responses"][j], "x_source": f"response {i}", "y_source": f"response {j}"})
    return pairs, skipped


def make_tasks(pairs: list[dict], seed: int = 0) -> list[dict]:
    """Label Studio tasks: {"data": {...}} with A/B decided per pair by a seeded coin and recorded."""
    tasks = []
    for p in pairs:
        coin = random.Random(f"{seed}:{p['pair_id']}").random() < 0.5
        a, b = ("x", "y") if coin else ("y", "x")
        tasks.append({"data": {"pair_id": p["pair_id"], "prompt": _text(p["prompt"]),
                               "prompt_messages": json.dumps(p["prompt"] if not isinstance(p["prompt"], str)
                                                             else [{"role": "user", "content": p["prompt"]}]),
                               "response_a": p[a], "response_b": p[b],
                               "a_source": p[f"{a}_source"], "b_source": p[f"{b}_source"]}})
    return tasks


def export(args) -> dict:
    from rm_core.hub import atomic_write_json, atomic_write_text

    if bool(args.pairs) == bool(args.candidates):
        from rm_core.errors import UserInputError

        raise UserInputError("give --pairs (a preference file) or --candidates (prompts with responses), one of them")
    source = args.pairs or args.candidates
    from rm_core.errors import check_local_path

    check_local_path(source, "--pairs" if args.pairs else "--candidates")
    pairs, skipped = (pairs_from_preferences(args.pairs) if args.pairs
                      else pairs_from_candidates(args.candidates, args.max_pairs_per_prompt))
    if args.limit:
        pairs = pairs[:args.limit]
    if not pairs:
        from rm_core.errors import UserInputError

        raise UserInputError(f"{source}: no pairs to label ({dict(skipped) or 'empty'})")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(pairs, args.seed)
    atomic_write_text(out / "label_config.xml", LABEL_CONFIG)
    atomic_write_json(out / "tasks.json", tasks)
    summary = {"tasks": len(tasks), "skipped_rows": dict(skipped), "source": source, "seed": args.seed,
               "shown_as_a": dict(Counter(t["data"]["a_source"] for t in tasks))}
    atomic_write_json(out / "export.json", summary)
    print(f"[annotate] {len(tasks)} tasks -> {out / 'tasks.json'}; labelling config {out / 'label_config.xml'}",
          flush=True)
    return summary


# ---------------------------------------------------------------- import


def _choice(result: list) -> tuple[str | None, str | None]:
    """(the choice, the reason) of one annotation's result list."""
    choice, reason = None, None
    for r in result if isinstance(result, list) else []:
        if not isinstance(r, dict):
            continue
        value = r.get("value") if isinstance(r.get("value"), dict) else {}
        choices, text = value.get("choices"), value.get("text")
        if r.get("from_name") == "preference" and isinstance(choices, list) and choices:
            choice = choices[0]
        elif r.get("from_name") == "reason" and isinstance(text, list) and text:
            reason = " ".join(t for t in text if isinstance(t, str) and t).strip() or None
    return choice, reason


def _task_problem(data: dict) -> str | None:
    """Why a task's data cannot be a preference (None when it can)."""
    a, b = data.get("response_a"), data.get("response_b")
    if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
        return "empty or non-string response"
    if a.strip() == b.strip():
        return "identical responses (response_a == response_b)"
    pid = data.get("pair_id")
    if pid is None or (isinstance(pid, str) and not pid.strip()) or isinstance(pid, (dict, list)):
        return "missing pair_id"
    return None


def _prompt_ok(prompt) -> bool:
    """A prompt is text or a non-empty list of {role, content} messages with string content."""
    if isinstance(prompt, str):
        return bool(prompt.strip())
    return (isinstance(prompt, list) and bool(prompt)
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in prompt))


def _annotator(annotation: dict):
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or who.get("id")
    return who


def read_export(tasks: list[dict]) -> tuple[list[dict], list[dict], Counter]:
    """(preference rows, tie rows, counts) from Label Studio's JSON export."""
    prefs, ties, counts = [], [], Counter()
    seen: set[str] = set()
    for task in tasks:
        if not isinstance(task, dict):
            counts["task is not a JSON object"] += 1
            continue
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        annotations = task.get("annotations") if isinstance(task.get("annotations"), list) else []
        if not annotations:
            counts["task not labelled"] += 1
            continue
        try:
            prompt = json.loads(data["prompt_messages"])
            a, b = data["response_a"], data["response_b"]
        except (KeyError, TypeError, ValueError):
            counts["task without this project's data (prompt_messages, response_a, response_b)"] += 1
            continue
        problem = _task_problem(data) or (None if _prompt_ok(prompt) else "prompt is not text or messages")
        if problem:
            counts[problem] += 1
            continue
        for ann in annotations:
            if not isinstance(ann, dict):
                counts["annotation is not a JSON object"] += 1
                continue
            if ann.get("was_cancelled"):
                counts["skipped or cancelled"] += 1
                continue
            choice, reason = _choice(ann.get("result"))
            base = {"pair_id": data.get("pair_id"), "task_id": task.get("id"), "annotator": _annotator(ann),
                    "reason": reason, "prompt": prompt}
            if choice not in (CHOICE_A, CHOICE_B, CHOICE_TIE):
                counts["no choice"] += 1
                continue
            row_id = f"{data.get('pair_id')}@{base['annotator']}"
            if row_id in seen:  # the same task twice, or two tasks with one pair_id: the first is kept
                counts["duplicate task"] += 1
                continue
            seen.add(row_id)
            if choice == CHOICE_TIE:
                counts["tie"] += 1
                ties.append({**base, "responses": [a, b], "sources": [data.get("a_source"), data.get("b_source")]})
                continue
            counts["preference"] += 1
            won, lost = (a, b) if choice == CHOICE_A else (b, a)
            won_src, lost_src = ((data.get("a_source"), data.get("b_source")) if choice == CHOICE_A
                                 else (data.get("b_source"), data.get("a_source")))
            if won_src == "chosen":
                counts["agrees with the data set"] += 1
            elif won_src == "rejected":
                counts["disagrees with the data set"] += 1
            prefs.append({**base, "id": row_id,
                          "chosen": [{"role": "assistant", "content": won}],
                          "rejected": [{"role": "assistant", "content": lost}],
                          "chosen_source": won_src, "rejected_source": lost_src, "shown_first": choice == CHOICE_A})
    return prefs, ties, counts


def import_(args) -> dict:
    from rm_core.errors import UserInputError, check_local_path
    from rm_core.hub import atomic_write_json, atomic_write_jsonl

    check_local_path(args.export, "--export")
    try:
        raw = Path(args.export).read_bytes()  # hashed below: the sha256 recorded is of the bytes parsed
        tasks = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserInputError(f"{args.export}: not Label Studio's JSON export ({err})") from None
    if not isinstance(tasks, list):
        raise UserInputError(f"{args.export}: expected a JSON list of tasks (Label Studio: Export -> JSON)")
    prefs, ties, counts = read_export(tasks)
    if not prefs:
        raise UserInputError(f"{args.export}: no labelled task gives a preference ({dict(counts) or 'no tasks'})")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "preferences.jsonl", prefs)
    atomic_write_jsonl(out / "ties.jsonl", ties)
    digest = hashlib.sha256(raw).hexdigest()
    summary = {"tasks": len(tasks), "counts": dict(counts), "annotators": sorted({str(p["annotator"]) for p in prefs}),
               "export": str(args.export), "export_sha256": digest}
    atomic_write_json(out / "summary.json", summary)
    print(f"[annotate] {counts['preference']} preferences, {counts['tie']} ties, "
          f"{counts['skipped or cancelled']} skipped -> {out / 'preferences.jsonl'}", flush=True)
    return summary


def make_parser() -> argparse.ArgumentParser:
    from rm_core.errors import int_at_least

    p = argparse.ArgumentParser(prog="rm-annotate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="pairs -> a Label Studio labelling config and tasks")
    e.add_argument("--pairs", default=None, help="a preference file (or Hub id) to label")
    e.add_argument("--candidates", default=None, help="a candidates file: prompts with several responses")
    e.add_argument("--max_pairs_per_prompt", type=int, default=6)
    e.add_argument("--limit", type=int_at_least(1), default=None)
    e.add_argument("--seed", type=int, default=0, help="seeds which response each task shows as A")
    e.add_argument("--output_dir", required=True)
    i = sub.add_parser("import", help="Label Studio's JSON export -> preference rows")
    i.add_argument("--export", required=True, help="the JSON file Label Studio's Export -> JSON gave")
    i.add_argument("--output_dir", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    return export(args) if args.command == "export" else import_(args)


def cli() -> None:
    """The `rm-annotate` console script (a user error is one line, exit 2)."""
    from rm_core.errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
