"""Training and evaluation rows for the math reward models, from any source rm_core.data converts.

- PRM training rows: Steps (rm_core.data.to_steps). Rows of the GSM8K labelled model solutions get their step
  labels from the offline rule (math_rm/step_labels.py); our labelling output, RLHFlow step chats, PRM800K and
  canonical Steps rows carry their own.
- ORM training rows: one Steps row per candidate with the whole response as one step, labelled by its outcome.
- Evaluation rows: Candidates (best-of-N). For the GSM8K labelled solutions the project's fixed split applies
  (question index < 1000 trains, the other 319 evaluate); other sources read `dataset_test_split` or
  `eval_dataset_name`. A Candidates-style source without a test split (one file, a Hub set without one) holds out
  `eval_fraction` of its questions by a hash of the question (rm_core.data.hash_split); a source that cannot be
  scored best-of-N (Steps rows, step chats, PRM800K) has no held-out set, and the report says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rm_core.data import (
    CANDIDATES_CONVERTERS,
    SkipReport,
    first_math_format,
    gsm8k_solutions_split,
    hash_split,
    load_rows,
    load_split,
    make_steps,
    to_candidates,
    to_steps,
)
from rm_core.errors import UserInputError

if TYPE_CHECKING:
    from math_rm.config import MathDataArguments


def load_math_splits(args: MathDataArguments) -> tuple[list[dict], list[dict], dict]:
    """(train source rows, evaluation Candidates rows, report)."""
    rows = load_rows(args.dataset_name, args.dataset_train_split, args.dataset_data_dir)
    if not rows:
        raise UserInputError(f"no rows in {args.dataset_name!r}")
    fmt = first_math_format(rows, args.dataset_name) if args.dataset_format == "auto" else args.dataset_format
    report: dict = {"dataset": args.dataset_name, "format": fmt}
    eval_rows: list[dict] = []
    split = args.dataset_test_split
    rule: dict = {}  # how the card names the held-out split (rm_core.hub.held_out_split)
    if fmt == "gsm8k_solutions":
        rows, eval_rows = gsm8k_solutions_split(rows)
        report["split"] = "fixed: question index < 1000 trains (../shared/data/README.md)"
        held, rule = "the fixed GSM8K split (question index >= 1000)", {"rule": "gsm8k_fixed"}
        if args.eval_dataset_name:
            eval_rows = load_rows(args.eval_dataset_name, split or "test")
            held, rule = f"{args.eval_dataset_name!r}", {"rule": "split", "split": split or "test"}
    elif args.eval_dataset_name:
        eval_rows = load_rows(args.eval_dataset_name, split or "test")
        held, rule = f"{args.eval_dataset_name!r}", {"rule": "split", "split": split or "test"}
    elif not split:
        held = "none: --dataset_test_split is empty"
    elif (loaded := load_split(args.dataset_name, split, args.dataset_data_dir)) is not None:
        eval_rows, held, rule = loaded, f"the data's {split!r} split", {"rule": "split", "split": split}
    elif fmt in CANDIDATES_CONVERTERS and args.eval_fraction > 0:
        rows, eval_rows = hash_split(rows, args.eval_fraction, _question_key)
        held = f"{args.eval_fraction:g} of the questions, by sha1 of the question (the data has no {split!r} split)"
        rule = {"rule": "hashed"}
        if not rows:
            raise UserInputError(f"no training rows left in {args.dataset_name!r} after holding out {held}")
    else:
        held = (f"none: the data has no {split!r} split" + ("" if fmt in CANDIDATES_CONVERTERS else
                f", and its {fmt!r} rows cannot be scored best-of-N (pass --eval_dataset_name)"))
    if args.max_train_questions:
        rows = rows[: args.max_train_questions]
    # a held-out question that is also a training question is no held-out question: dropped, counted
    seen = {question_text(r) for r in rows} - {""}
    kept = [r for r in eval_rows if question_text(r) not in seen]
    if len(kept) < len(eval_rows):
        report["eval_dropped_also_in_training"] = len(eval_rows) - len(kept)
        held += f" less {len(eval_rows) - len(kept)} questions also in the training rows"
        eval_rows = kept
    if args.max_eval_questions and len(eval_rows) > args.max_eval_questions:
        eval_rows = eval_rows[: args.max_eval_questions]
        rule["first"] = args.max_eval_questions  # a part of the split: the card says so
    cands, skips = to_candidates(eval_rows, "auto", args.strict_rows)
    if not cands and not held.startswith("none"):
        held = f"none: {held} gave no questions"
    report.update(train_rows=len(rows), eval_questions=len(cands), eval_skipped=skips.as_dict(),
                  held_out={"questions": len(cands), "description": held, **rule})
    return rows, cands, report


def question_text(row: dict) -> str:
    """A row's question as plain text (a string, or the contents of its prompt messages), whitespace-trimmed: the
    same question in a training file and a held-out file of another layout is recognised."""
    q = row.get("question", row.get("prompt"))
    if q is None:  # a step chat (RLHFlow's "conversations"): the question as its converter separates it
        converted, _ = to_steps([row], "auto")
        q = converted[0]["prompt"] if converted else None
    if isinstance(q, dict):  # PRM800K: {"problem": ..., "ground_truth_answer": ...}
        q = q.get("problem", q.get("question", q.get("text")))
    if isinstance(q, list):
        q = "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in q)
    return "" if q is None else " ".join(str(q).split())


def _question_key(row: dict) -> str:
    """A source row's question (its prompt), as canonical JSON: all of a question's candidates stay on one side."""
    return json.dumps(row.get("question", row.get("prompt")), sort_keys=True, ensure_ascii=False)


def prm_training_rows(rows: list[dict], fmt: str = "auto", strict: bool = False) -> tuple[list[dict], SkipReport]:
    """Steps rows to train a PRM on; GSM8K labelled solutions are labelled by the offline rule."""
    if rows and (fmt if fmt != "auto" else first_math_format(rows, "the training data")) == "gsm8k_solutions":
        from math_rm.step_labels import label_candidates

        cands, skips = to_candidates(rows, "gsm8k_solutions", strict)
        out = []
        for cand in cands:
            for j, sol in enumerate(label_candidates(cand)):
                out.append(make_steps(cand["prompt"], sol["steps"], sol["labels"], f"{cand['id']}/{j}",
                                      cand.get("reference")))
        return out, skips
    return to_steps(rows, fmt, strict)


def orm_training_rows(rows: list[dict], fmt: str = "auto", strict: bool = False) -> tuple[list[dict], SkipReport]:
    """One single-step Steps row per candidate response: the whole response, labelled 1 when correct."""
    cands, skips = to_candidates(rows, fmt, strict)
    out = []
    for cand in cands:
        for j, (response, correct) in enumerate(zip(cand["responses"], cand["correct"])):
            if not response.strip():
                skips.add("empty response", f"{cand['id']}/{j}")
                continue
            out.append(make_steps(cand["prompt"], [response.strip()], [int(correct)], f"{cand['id']}/{j}",
                                  cand.get("reference")))
    return out, skips
