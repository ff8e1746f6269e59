"""ArmoRM's data: Ratings for stage 1, preference pairs for stage 2, from the Hub or the offline sets.

With the Hub, stage 1 reads real multi-objective ratings (nvidia/HelpSteer2, openbmb/UltraFeedback, or any
file of Ratings rows) and stage 2 any preference set. Offline, a multi-objective set is built from
../shared/data with labels that say only what the data says:

- `hh-harmlessness-relative` (offline:hh-harmless): HH-RLHF harmless-base pairs of the project's fixed
  split. The annotators chose the *less harmful* of two replies, so the chosen reply is labelled 1 and the
  rejected 0. This is a relative label within a pair, not an absolute harmlessness rating.
- `gsm8k-correctness` (offline:gsm8k): the GSM8K labelled model solutions of the training questions
  (index < 1000): 1 when the final answer is right (`is_correct`), else 0.
- `verbosity` (every row): min(1, log(1 + words) / log(1 + 1000)) of the response, from its length.

The published stage 1 set, RLHFlow/ArmoRM-Multi-Objective-Data-v0.1 (RLHFlow/RLHF-Reward-Modeling
armo-rm/stage-1_prepare.py), is read as it is: one row per rated conversation, `messages` (ending in the rated
assistant reply) and one column per objective of ARMO_OBJECTIVES, None where that row's source does not rate it.
The values are kept as published (no rescaling), like the published regression's targets.

A row carries only the attributes its source labels; the others are None (masked, never filled).
Offline stage 2 pairs: the same HH pairs, and for each GSM8K training question every (correct, incorrect)
pair of its four solutions.
"""

from __future__ import annotations

import math
from pathlib import Path

from rm_core.data import (  # noqa: F401  ARMO_*: ArmoRM's published objectives, re-exported for the recipe
    ARMO_MULTI_OBJECTIVE_DATA,
    ARMO_OBJECTIVES,
    GSM8K_SOLUTION_MODELS,
    gsm8k_solutions_split,
    hh_split,
    load_llmbar_as_reward_bench,
    load_rows,
    make_rating,
    read_rows,
    require_pairs,
    shared_data_dir,
    to_preferences,
    to_ratings,
)
from rm_core.errors import UserInputError

OFFLINE = ("offline:hh-harmless", "offline:hh-harmless-test", "offline:gsm8k", "offline:gsm8k-test", "offline:llmbar")

def source_limit(source: str, limit: int | None) -> tuple[str, int | None]:
    """"name[N]" -> (name, N): a per-source cap (pairs, or questions for GSM8K) overriding `limit`."""
    if source.endswith("]") and "[" in source:
        name, _, n = source[:-1].rpartition("[")
        if n.isdigit():
            return name, int(n)
    return source, limit


def verbosity_label(text: str) -> float:
    return min(1.0, math.log1p(len(text.split())) / math.log1p(1000))


def hh_pairs(shared: Path, part: str, limit: int | None = None) -> list[dict]:
    train, test = hh_split(read_rows(shared / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    prefs, _ = to_preferences(train if part == "train" else test, fmt="hh")
    return prefs[:limit]


def gsm8k_questions(shared: Path, part: str, limit: int | None = None) -> list[dict]:
    """[{"question", "solutions": [(text, is_correct)]}] of the train (index < 1000) or test part (the project's
    fixed split, rm_core.data.gsm8k_solutions_split)."""
    train, test = gsm8k_solutions_split(read_rows(shared / "gsm8k" / "example_model_solutions.jsonl"))
    rows = train if part == "train" else test
    return [{"question": r["question"],
             "solutions": [(r[s]["solution"], bool(r[s]["is_correct"])) for s in GSM8K_SOLUTION_MODELS]}
            for r in rows[:limit]]


def gsm8k_pairs(questions: list[dict]) -> list[dict]:
    """Every (correct, incorrect) pair of each question's solutions, as Preference rows."""
    out = []
    for qi, q in enumerate(questions):
        prompt = [{"role": "user", "content": q["question"]}]
        good = [s for s, ok in q["solutions"] if ok and s.strip()]
        bad = [s for s, ok in q["solutions"] if not ok and s.strip()]
        for gi, g in enumerate(good):
            for bi, b in enumerate(bad):
                out.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": g}],
                            "rejected": [{"role": "assistant", "content": b}], "id": f"gsm8k-{qi}-{gi}-{bi}",
                            "subset": "gsm8k"})
    return out


def _response(messages: list[dict]) -> str:
    return messages[-1]["content"]


def _prompt_of(pref: dict, side: str = "chosen") -> list[dict]:
    return pref["prompt"] + pref[side][:-1]  # a multi-turn continuation's earlier turns join the prompt


def load_ratings(source: str, shared: str | None = None, limit: int | None = None) -> list[dict]:
    """Ratings rows of one source (see the module docstring)."""
    source, limit = source_limit(source, limit)
    if source == "offline:hh-harmless":
        rows = []
        for pref in hh_pairs(shared_data_dir(shared, required=True), "train", limit):
            for side, label in (("chosen", 1.0), ("rejected", 0.0)):
                rows.append(make_rating(_prompt_of(pref, side), _response(pref[side]), {"hh-harmlessness-relative": label},
                                        f"hh/{pref['id']}/{side}"))
        return rows
    if source == "offline:gsm8k":
        rows = []
        for qi, q in enumerate(gsm8k_questions(shared_data_dir(shared, required=True), "train", limit)):
            for si, (text, ok) in enumerate(q["solutions"]):
                if text.strip():
                    rows.append(make_rating(q["question"], text, {"gsm8k-correctness": float(ok)}, f"gsm8k/{qi}/{si}"))
        return rows
    if source.startswith("offline:"):
        raise ValueError(f"{source} is not a ratings source; offline ratings: offline:hh-harmless, offline:gsm8k")
    raw = load_rows(source)
    rows, report = to_ratings(raw)  # HelpSteer2, UltraFeedback, ArmoRM's 19 objectives or Ratings rows, by their keys
    if not rows:
        raise UserInputError(f"no usable ratings rows in {source}: {len(raw)} rows read, {report}")
    if report.total:
        print(f"[data] {source}: {report}", flush=True)
    return rows[:limit] if limit else rows


def add_verbosity(rows: list[dict], name: str) -> list[dict]:
    """Label `name` from the response length on rows whose source did not rate it."""
    for row in rows:
        if row["attributes"].get(name) is None:
            row["attributes"][name] = verbosity_label(row["response"])
    return rows


def load_preferences(source: str, shared: str | None = None, limit: int | None = None) -> list[dict]:
    """Preference rows of one source: offline:hh-harmless(-test), offline:gsm8k(-test), offline:llmbar, a
    file or a Hub id."""
    source, limit = source_limit(source, limit)
    if source in ("offline:hh-harmless", "offline:hh-harmless-test"):
        return hh_pairs(shared_data_dir(shared, required=True), "test" if source.endswith("-test") else "train", limit)
    if source in ("offline:gsm8k", "offline:gsm8k-test"):
        return gsm8k_pairs(gsm8k_questions(shared_data_dir(shared, required=True), "test" if source.endswith("-test") else "train",
                                           limit))
    if source == "offline:llmbar":
        prefs, _ = to_preferences(load_llmbar_as_reward_bench(shared_data_dir(shared, required=True) / "llmbar"), fmt="reward_bench")
        return prefs[:limit]
    if source.startswith("offline:"):
        raise ValueError(f"unknown offline set {source}; known: {OFFLINE}")
    raw = load_rows(source)
    prefs, report = to_preferences(raw)
    require_pairs(prefs, report, source, len(raw))
    return prefs[:limit]


def pair_items(prefs: list[dict]) -> list[tuple[list[dict], str]]:
    """(prompt, response) items in the order chosen_0, rejected_0, chosen_1, ..."""
    items = []
    for pref in prefs:
        items += [(_prompt_of(pref, side), _response(pref[side])) for side in ("chosen", "rejected")]
    return items
