"""Canonical preference rows and the converters that produce them.

The canonical Preference row (TRL's conversational format with an explicit prompt):
    {"prompt": [Message], "chosen": [Message], "rejected": [Message], "id": str, "subset": str,
     "margin": float (optional)}
with Message = {"role": "system" | "user" | "assistant", "content": str}.

Sources converted at the edge (`detect_format` picks one per row):
- "hh":            Anthropic HH-RLHF transcripts "\\n\\nHuman: ...\\n\\nAssistant: ..." (chosen, rejected)
- "conversations": RLHFlow "standard" / TRL implicit prompt: two whole conversations sharing a prefix
- "explicit":      TRL explicit prompt: prompt, chosen, rejected as message lists
- "reward_bench":  RewardBench rows: prompt, chosen, rejected as plain strings, plus subset and id
- "llmbar":        LLMBar rows: input, output_1, output_2, label (1 or 2)

A malformed row either raises `RowError` naming the row (strict) or is skipped and counted by reason in a
`SkipReport` that the caller prints and stores with its results.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from rm_core.errors import MissingPathError, UserInputError, check_local_path

ROLES = ("system", "user", "assistant")
SHARED_DATA_ENV = "RM_SHARED_DATA"


def shared_data_dir(override: str | Path | None = None, required: bool = False) -> Path:
    """The folder of the project's offline data sets (HH-RLHF, LLMBar, GSM8K; its README.md says their splits):
    `override` when given, else the environment variable RM_SHARED_DATA, else <repo>/../shared/data. Every
    default path into those sets (recipes, eval_report, bench, tests) is built from it. required: a missing
    folder raises MissingPathError naming the variable."""
    path = Path(override or os.environ.get(SHARED_DATA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")
    if required and not path.is_dir():
        raise MissingPathError(f"offline data folder {path} is absent (set {SHARED_DATA_ENV} or pass its folder)")
    return path


class RowError(UserInputError):
    """A row (or a data file) that cannot be read or converted; the message names the row or the file and line."""


IDENTICAL_PAIR = "chosen and rejected are identical"


class DegeneratePair(RowError):
    """A well-formed pair that carries no preference: its chosen and rejected responses are identical (after
    stripping surrounding whitespace). Always skipped and counted (even with strict=True): a model can only
    'rank' it on float noise, and a loss on it only pushes two equal rewards apart at random."""


def same_response(a, b) -> bool:
    """Two responses (strings, or message lists) that are identical after stripping surrounding whitespace."""
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(isinstance(x, dict) and isinstance(y, dict) and x.get("role") == y.get("role")
                   and same_response(x.get("content"), y.get("content")) for x, y in zip(a, b))
    return a == b


@dataclass
class SkipReport:
    """Counts of rows skipped by reason, with the first few row names for each reason."""

    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, reason: str, row_name: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(row_name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"skipped": self.total, "by_reason": dict(self.counts), "examples": self.examples}

    def reasons(self) -> str:
        """'2 chosen is an empty response, 1 ...': the counts by reason, the most frequent first."""
        return ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())

    def __str__(self) -> str:
        return f"{self.total} rows skipped ({self.reasons()})" if self.total else "0 rows skipped"


# ---------------------------------------------------------------- validation


def _check_messages(messages, what: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise RowError(f"{what} must be a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise RowError(f"{what}[{i}] must be a dict with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise RowError(f"{what}[{i}] has unknown role {m['role']!r}")
        if not isinstance(m["content"], str):
            raise RowError(f"{what}[{i}] content must be a string")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _check_response(messages: list[dict], what: str) -> None:
    if messages[-1]["role"] != "assistant":
        raise RowError(f"{what} must end with an assistant message")
    if not messages[-1]["content"].strip():
        raise RowError(f"{what} is an empty response")
    if messages[0]["role"] != "assistant":  # else a user turn would be trained on as part of the reply
        raise RowError(f"{what} starts with a {messages[0]['role']} turn, not the assistant's reply (chosen and "
                       "rejected differ before the reply, or repeat a prompt other than the row's)")


def prompt_messages(prompt) -> list[dict]:
    """A prompt (text, or messages) as checked messages; a RowError for a malformed one, one that ends with an
    assistant message, or one with no text at all (every reader of prompts here checks them so)."""
    messages = _check_messages([{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt, "prompt")
    if messages[-1]["role"] == "assistant":
        raise RowError("prompt must not end with an assistant message")
    if not any(m["content"].strip() for m in messages):
        raise RowError("prompt is empty")
    return messages


def _preference(prompt, chosen, rejected, row: dict) -> dict:
    prompt = prompt_messages(prompt)
    chosen = _check_messages(chosen, "chosen")
    rejected = _check_messages(rejected, "rejected")
    _check_response(chosen, "chosen")
    _check_response(rejected, "rejected")
    if same_response(chosen, rejected):
        raise DegeneratePair(IDENTICAL_PAIR)
    out = {"prompt": prompt, "chosen": chosen, "rejected": rejected,
           "id": own_id(row) or "", "subset": str(row.get("subset", "") or "")}
    if row.get("margin") is not None:
        out["margin"] = _margin(row["margin"])
    return out


def _margin(value) -> float:
    """A row's `margin` as a finite float; anything else (text, NaN, inf: a loss would use it) is a RowError."""
    try:
        margin = float(value)
    except (TypeError, ValueError):
        margin = math.nan
    if not math.isfinite(margin):
        raise RowError("margin is not a finite number")
    return margin


def own_id(row, key: str = "id") -> str | None:
    """The id a row gives itself (`key`, as a string), or None when it gives none (absent, null, "")."""
    value = row.get(key) if isinstance(row, dict) else None
    return None if value is None or value == "" else str(value)


def row_ids(rows: list, key: str = "id", indices: list[int] | None = None) -> list[str | None]:
    """Each row's id: its own (own_id) or, for a row without one, its row index (`indices[k]`, default k); when
    another row's own id already is that index, "#" is put before it (as often as needed), so a generated id never
    collides with an id a row gives itself. None for a row that is not an object."""
    indices = list(range(len(rows))) if indices is None else indices
    taken = {own_id(r, key) for r in rows} - {None}
    out = []
    for row, i in zip(rows, indices):
        rid = own_id(row, key)
        if rid is None and isinstance(row, dict):
            rid = str(i)
            while rid in taken:
                rid = "#" + rid
            taken.add(rid)
        out.append(rid)
    return out


def check_unique_ids(located: Iterable[tuple[str, int]], source) -> None:
    """(id, row index) pairs of the items read from `source`: a repeated id is a UserInputError naming the file,
    the id and both rows (scores are stored and resumed by id, so two items under one id would mix)."""
    first: dict[str, int] = {}
    for rid, i in located:
        if rid in first:
            raise UserInputError(f"{source}: id {rid!r} is in row {first[rid]} and row {i}; item ids must be "
                                 "unique (scores are stored and resumed by id)")
        first[rid] = i


# ---------------------------------------------------------------- converters


def parse_hh_transcript(text: str) -> list[dict]:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> [{'role': 'user', ...}, {'role': 'assistant', ...}]."""
    if not isinstance(text, str) or "\n\nHuman:" not in text:
        raise RowError("not an HH-RLHF transcript (no '\\n\\nHuman:' turn)")
    messages = []
    # Split on the turn markers, keeping which speaker each piece belongs to.
    pieces = text.split("\n\nHuman:")
    if pieces[0].strip():
        raise RowError("HH-RLHF transcript has text before the first Human turn")
    for piece in pieces[1:]:
        human, *assistant_turns = piece.split("\n\nAssistant:")
        messages.append({"role": "user", "content": human.strip()})
        for a in assistant_turns:
            messages.append({"role": "assistant", "content": a.strip()})
    return messages


def from_hh(row: dict) -> dict:
    """HH-RLHF transcripts. Usually they differ only in the last reply; a few (1 of the 446 test pairs of
    the project's split) differ earlier, and then the prompt is the shared prefix, as for conversations."""
    return from_conversations({**row, "chosen": parse_hh_transcript(row["chosen"]),
                               "rejected": parse_hh_transcript(row["rejected"])})


def from_conversations(row: dict) -> dict:
    """RLHFlow standard / TRL implicit prompt: the prompt is the shared message prefix."""
    chosen = _check_messages(row["chosen"], "chosen")
    rejected = _check_messages(row["rejected"], "rejected")
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise RowError("chosen and rejected share no prompt")
    return _preference(chosen[:n], chosen[n:], rejected[n:], row)


def from_explicit(row: dict) -> dict:
    """An explicit prompt. chosen/rejected are the replies (strings or messages), or whole conversations that
    begin with the prompt (HuggingFaceH4/ultrafeedback_binarized: a string prompt, then [user, assistant]
    lists): then the prompt is taken off their front, so it is not trained on twice."""
    prompt = row["prompt"]
    if isinstance(prompt, str):  # TRL "standard" explicit prompt: plain strings
        prompt = [{"role": "user", "content": prompt}]
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str):
        chosen = [{"role": "assistant", "content": chosen}]
    if isinstance(rejected, str):
        rejected = [{"role": "assistant", "content": rejected}]
    prompt = prompt_messages(prompt)
    chosen, rejected = _check_messages(chosen, "chosen"), _check_messages(rejected, "rejected")
    n = len(prompt)
    if chosen[:n] == prompt and rejected[:n] == prompt:
        chosen, rejected = chosen[n:] or chosen, rejected[n:] or rejected
    return _preference(prompt, chosen, rejected, row)


def from_reward_bench(row: dict) -> dict:
    for key in ("prompt", "chosen", "rejected"):
        if not isinstance(row.get(key), str):
            raise RowError(f"RewardBench row needs a string {key!r}")
    return from_explicit(row)


LLMBAR_SUBSETS = {  # file in ../shared/data/llmbar -> RewardBench v1 subset (Chat Hard)
    "natural.json": "llmbar-natural",
    "adversarial-neighbor.json": "llmbar-adver-neighbor",
    "adversarial-gptinst.json": "llmbar-adver-GPTInst",
    "adversarial-gptout.json": "llmbar-adver-GPTOut",
    "adversarial-manual.json": "llmbar-adver-manual",
}


def llmbar_to_reward_bench(row: dict, subset: str, index: int) -> dict:
    """One LLMBar row -> one RewardBench row (the better output is `chosen`)."""
    label = row.get("label")
    if label not in (1, 2) or isinstance(label, bool):  # true == 1 in Python: not a label LLMBar writes
        raise RowError(f"LLMBar row needs label 1 or 2, got {label!r}")
    for key in ("input", "output_1", "output_2"):
        if not isinstance(row.get(key), str):
            raise RowError(f"LLMBar row needs a string {key!r}")
    chosen, rejected = (row["output_1"], row["output_2"]) if label == 1 else (row["output_2"], row["output_1"])
    return {"id": f"{subset}-{index}", "subset": subset, "prompt": row["input"], "chosen": chosen,
            "rejected": rejected, "chosen_model": "llmbar", "rejected_model": "llmbar"}


def load_llmbar_as_reward_bench(llmbar_dir: str | Path) -> list[dict]:
    """The five RewardBench chat-hard llmbar subsets from LLMBar's own files (419 pairs)."""
    rows = []
    for filename, subset in LLMBAR_SUBSETS.items():
        data = read_rows(Path(llmbar_dir) / filename)
        for i, row in enumerate(data):
            try:
                rows.append(llmbar_to_reward_bench(row, subset, i))
            except RowError as err:
                raise RowError(f"{filename} row {i}: {err}") from None
    return rows


CONVERTERS: dict[str, Callable[[dict], dict]] = {
    "hh": from_hh,
    "conversations": from_conversations,
    "explicit": from_explicit,
    "reward_bench": from_reward_bench,
}


def detect_format(row: dict) -> str:
    if "input" in row and "output_1" in row:
        return "llmbar"
    if "chosen" not in row or "rejected" not in row:
        raise RowError(f"row has no 'chosen'/'rejected' (keys: {sorted(row)})")
    if "prompt" in row:
        return "reward_bench" if isinstance(row["prompt"], str) and isinstance(row["chosen"], str) else "explicit"
    if isinstance(row["chosen"], str):
        return "hh"
    return "conversations"


def _row_name(row: dict, index: int) -> str:
    return f"row {index}" + (f" (id {row['id']})" if row.get("id") not in (None, "") else "")


def to_preferences(rows: Iterable[dict], fmt: str = "auto", strict: bool = False) -> tuple[list[dict], SkipReport]:
    """Convert rows to canonical Preference rows. Bad rows raise (strict) or are skipped and counted; a pair whose
    chosen and rejected are identical (DegeneratePair) is always skipped and counted. A row without an id gets one
    from its index (row_ids: never one another row gives itself)."""
    located, report = located_preferences(rows, fmt, strict)
    return [pref for pref, _ in located], report


def require_pairs(kept: list, skipped: SkipReport, source, rows_read: int) -> None:
    """What every reader of a user's preference file says: no usable pair is a UserInputError naming the file, the
    rows read and why they were skipped; skipped rows beside usable ones are printed (and counted by the caller)."""
    if not kept:
        raise UserInputError(f"no usable preference pairs in {source}: {rows_read} rows read, {skipped}")
    if skipped.total:
        print(f"[data] {source}: {skipped}", flush=True)


def located_preferences(rows: Iterable[dict], fmt: str = "auto", strict: bool = False,
                         indices: list[int] | None = None) -> tuple[list[tuple[dict, int]], SkipReport]:
    """to_preferences, each Preference row with its row's index; `indices`: the rows' indices in their file
    (default: their positions), for the skip report's row names and the generated ids."""
    rows = list(rows)
    indices = list(range(len(rows))) if indices is None else indices
    ids = row_ids(rows, indices=indices)
    out, report = [], SkipReport()
    for i, row, rid in zip(indices, rows, ids):
        try:
            if not isinstance(row, dict):
                raise RowError("row is not a JSON object")
            name = detect_format(row) if fmt == "auto" else fmt
            if name == "llmbar":
                row = llmbar_to_reward_bench(row, row.get("subset", "llmbar"), i)
                name = "reward_bench"
            if name not in CONVERTERS:
                raise UserInputError(f"unknown format {name!r}; choose from {sorted(CONVERTERS)} or 'auto'")
            pref = CONVERTERS[name](row)
            pref["id"] = pref["id"] or rid
            out.append((pref, i))
        except (RowError, KeyError, TypeError) as err:
            reason = str(err) if isinstance(err, RowError) else f"missing or wrong field {err}"
            if strict and not isinstance(err, DegeneratePair):
                raise RowError(f"{_row_name(row if isinstance(row, dict) else {}, i)}: {reason}") from None
            report.add(reason, _row_name(row if isinstance(row, dict) else {}, i))
    return out, report


# ---------------------------------------------------------------- Ratings (multi-objective, ArmoRM stage 1)
# {"prompt": [Message], "response": str, "attributes": {name: float | None}}: None means "not labelled for
# this attribute" and is masked in training, never filled in. Source ratings are rescaled to [0, 1].


def make_rating(prompt, response: str, attributes: dict, row_name: str = "") -> dict:
    prompt = prompt_messages(prompt)
    if not isinstance(response, str) or not response.strip():
        raise RowError("empty response")
    if not isinstance(attributes, dict):
        raise RowError("attributes must be an object {name: rating or null}")
    clean = {}
    for name, value in attributes.items():
        if value is not None:
            value = _rating(value, name)
        clean[str(name)] = value
    if all(v is None for v in clean.values()):
        raise RowError("no attribute is labelled")
    return {"prompt": prompt, "response": response, "attributes": clean, "id": row_name}


def _rating(value, name, low: float | None = None, high: float | None = None) -> float:
    """A rating as a finite float within [low, high] when given; else a RowError naming the attribute (a NaN or
    an infinity would reach the regression; a 9 on a 0-4 scale would be rescaled to 2.25 without a word)."""
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise RowError(f"attribute {name!r} is not a number: {value!r}") from None
    if not math.isfinite(rating):
        raise RowError(f"attribute {name!r} is {'NaN' if rating != rating else 'infinite'} (use null for 'not "
                       "labelled')")
    if (low is not None and rating < low) or (high is not None and rating > high):
        raise RowError(f"attribute {name!r} is {value!r}, outside its scale {low:g}-{high:g}")
    return rating


HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
ULTRAFEEDBACK_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def from_helpsteer2(row: dict) -> list[dict]:
    """nvidia/HelpSteer2: prompt, response and five 0-4 ratings -> one Ratings row (rating / 4)."""
    attrs = {f"helpsteer-{a}": (None if row.get(a) is None else _rating(row[a], a, 0, 4) / 4)
             for a in HELPSTEER2_ATTRIBUTES}
    return [make_rating(row["prompt"], row["response"], attrs, (own_id(row) or ""))]


def from_ultrafeedback(row: dict) -> list[dict]:
    """openbmb/UltraFeedback: an instruction with completions, each with four 1-5 aspect ratings ("N/A" is
    unlabelled) -> one Ratings row per completion ((rating - 1) / 4). A bad completion comes back as its
    RowError, so the row's other completions are kept and the bad one is counted."""
    out: list = []
    if not isinstance(row["completions"], list):
        raise RowError("completions must be a list of objects")
    for j, comp in enumerate(row["completions"]):
        attrs = {}
        try:
            if not isinstance(comp, dict) or not isinstance(comp.get("annotations", {}), dict):
                raise RowError("not an object with an 'annotations' object")
            for aspect in ULTRAFEEDBACK_ASPECTS:
                annotation = comp.get("annotations", {}).get(aspect) or {}
                rating = annotation.get("Rating") if isinstance(annotation, dict) else None
                if rating in (None, "", "N/A"):  # not labelled
                    attrs[f"ultrafeedback-{aspect}"] = None
                else:
                    attrs[f"ultrafeedback-{aspect}"] = (_rating(rating, aspect, 1, 5) - 1) / 4
            out.append(make_rating(row["instruction"], comp.get("response"), attrs, f"{row.get('id', '')}/{j}"))
        except RowError as err:
            out.append(RowError(f"completion {j}: {err}"))
    return out


def from_ratings(row: dict) -> list[dict]:
    return [make_rating(row["prompt"], row["response"], row["attributes"], (own_id(row) or ""))]


# ArmoRM's published 19 reward objectives, in the order of RLHFlow's stage 1 (armo-rm/stage-1_prepare.py, commit
# fc39179): the columns of RLHFlow/ArmoRM-Multi-Objective-Data-v0.1 and the rows of the published regression layer.
ARMO_MULTI_OBJECTIVE_DATA = "RLHFlow/ArmoRM-Multi-Objective-Data-v0.1"
ARMO_OBJECTIVES = (
    "helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence", "helpsteer-complexity",
    "helpsteer-verbosity", "ultrafeedback-overall_score", "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness", "ultrafeedback-honesty", "ultrafeedback-helpfulness", "beavertails-is_safe",
    "prometheus-score", "argilla-overall_quality", "argilla-judge_lm", "code-complexity", "code-style",
    "code-explanation", "code-instruction-following", "code-readability",
)


def from_armo_multi_objective(row: dict) -> list[dict]:
    """One row of the published 19-objective set -> one Ratings row: the prompt is every message before the last
    (an assistant reply, the rated response); every objective column becomes an attribute, None (or NaN) where
    the row is not rated for it. The values are kept as published (no rescaling)."""
    messages = row["messages"]
    if not isinstance(messages, list) or len(messages) < 2 or not isinstance(messages[-1], dict) \
            or messages[-1].get("role") != "assistant":
        raise RowError("`messages` must end with the rated assistant reply after at least one prompt message")
    attrs = {}
    for name in ARMO_OBJECTIVES:
        value = row.get(name)
        attrs[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return [make_rating(messages[:-1], messages[-1].get("content"), attrs, (own_id(row) or ""))]


RATINGS_CONVERTERS: dict[str, Callable[[dict], list[dict]]] = {
    "ratings": from_ratings, "helpsteer2": from_helpsteer2, "ultrafeedback": from_ultrafeedback,
    "armo_multi_objective": from_armo_multi_objective}


def detect_ratings_format(row: dict) -> str:
    if "attributes" in row:
        return "ratings"
    if "messages" in row and any(name in row for name in ARMO_OBJECTIVES):
        return "armo_multi_objective"
    if "completions" in row and "instruction" in row:
        return "ultrafeedback"
    if "response" in row and any(a in row for a in HELPSTEER2_ATTRIBUTES):
        return "helpsteer2"
    raise RowError(f"not a ratings row (keys: {sorted(row)})")


def to_ratings(rows: Iterable[dict], fmt: str = "auto", strict: bool = False) -> tuple[list[dict], SkipReport]:
    """Convert rows to Ratings rows; bad rows raise (strict) or are skipped and counted."""
    if fmt != "auto" and fmt not in RATINGS_CONVERTERS:
        raise ValueError(f"unknown ratings format {fmt!r}; choose from {sorted(RATINGS_CONVERTERS)} or 'auto'")
    out, report = [], SkipReport()
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise RowError("row is not a JSON object")
            for item in RATINGS_CONVERTERS[detect_ratings_format(row) if fmt == "auto" else fmt](row):
                if not isinstance(item, RowError):
                    out.append(item)
                elif strict:
                    raise item
                else:
                    report.add(str(item), _row_name(row, i))
        except (RowError, KeyError, TypeError, ValueError) as err:
            reason = str(err) if isinstance(err, RowError) else f"missing or wrong field {err}"
            if strict:
                raise RowError(f"{_row_name(row if isinstance(row, dict) else {}, i)}: {reason}") from None
            report.add(reason, _row_name(row if isinstance(row, dict) else {}, i))
    return out, report


# ---------------------------------------------------------------- loading


DATA_FILE_ENDINGS = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


def _not_utf8(path: Path, err: UnicodeDecodeError, line: int, column: int) -> RowError:
    byte = err.object[err.start:err.start + 1].hex()
    return RowError(f"{path} line {line}: not UTF-8 text (byte 0x{byte} at column {column}); "
                    "save the file as UTF-8")


def decode_line(path: Path, raw: bytes, line: int) -> str:
    """Line `line` (1-based) of a JSONL file as text, as every reader here decodes it: UTF-8, a BOM at the start of
    the file ignored; bytes that are not UTF-8 are a RowError naming the file, line and column."""
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err, line, err.start + 1) from None


def _read_json_lines(path: Path, opener) -> list:
    rows, i = [], 0
    try:
        with opener(path, "rb") as f:
            for i, raw in enumerate(f, 1):
                line = decode_line(path, raw, i)
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise RowError(f"{path} line {i} is not valid JSON ({_json_problem(err, line)})") from None
    except (EOFError, gzip.BadGzipFile, OSError) as err:  # a cut or corrupt .gz stream
        raise RowError(f"{path}: cannot read it{f' past line {i}' if i else ''} ({type(err).__name__}: {err})"
                       ) from None
    return rows


def _json_problem(err: json.JSONDecodeError, text: str) -> str:
    cut = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")
    return f"{err.msg}: column {err.colno}" + ("; it ends before the JSON does: cut short?" if cut else "")


def _read_json_document(path: Path, opener) -> list:
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise RowError(f"{path}: cannot read it ({type(err).__name__}: {err})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _not_utf8(path, err, line, err.start - data.rfind(b"\n", 0, err.start)) from None
    if not text.strip():
        raise RowError(f"{path} is empty; expected a JSON list of rows")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise RowError(f"{path} line {err.lineno} is not valid JSON ({_json_problem(err, text)})") from None
    if not isinstance(rows, list):  # {"train": [...]} style files are not guessed at
        kind = {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(rows), "null")
        raise RowError(f"{path} holds a JSON {kind}; expected a list of rows"
                       + (" (or use .jsonl for one row per line)" if isinstance(rows, dict) else ""))
    return rows


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a local .jsonl(.gz) (one JSON object a line), .json(.gz) (a list) or .parquet file. A file this
    cannot read raises RowError naming the file and, where there is one, the line."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise MissingPathError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise RowError(f"{path}: not a readable parquet file ({err})") from None
    if not name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        raise RowError(f"{path}: unsupported file type {''.join(path.suffixes) or '(no extension)'!r}; data files "
                       f"are {', '.join(DATA_FILE_ENDINGS)} (convert a CSV with pandas: "
                       "pd.read_csv(f).to_json(out, orient='records', lines=True))")
    opener = gzip.open if name.endswith(".gz") else open
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _read_json_lines(path, opener)
    return _read_json_document(path, opener)


def _split_file(folder: Path, split: str) -> Path | None:
    return next((folder / f"{split}{ext}" for ext in DATA_FILE_ENDINGS if (folder / f"{split}{ext}").is_file()), None)


def _folder_lacks(folder: Path, split: str) -> MissingPathError:
    held = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(DATA_FILE_ENDINGS))
    return MissingPathError(f"{folder} has no {split}.jsonl, .jsonl.gz, .json or .parquet "
                            f"({'its data files: ' + ', '.join(held[:10]) if held else 'it holds no data files'})")


def _load_hub(source: str, split: str, data_dir: str | None) -> list[dict]:
    from datasets import load_dataset

    try:
        return load_dataset(str(source), data_dir=data_dir, split=split).to_list()
    except ValueError as err:
        if str(err).startswith("Unknown split"):
            raise MissingPathError(f"{source} has no split {split!r}: {err}") from None
        raise UserInputError(f"{source}: not a local file or folder, and not a loadable Hub data set ({err})") from None
    except (FileNotFoundError, ConnectionError) as err:  # DatasetNotFoundError, offline mode, no network
        raise MissingPathError(f"{source}: not a local file or folder, and not a loadable Hub data set "
                               f"({type(err).__name__}: {err})") from None


def load_rows(source: str | Path, split: str = "train", data_dir: str | None = None) -> list[dict]:
    """Rows from a local file, a local folder holding `{split}.jsonl`-like files, or a Hub data set id. A path
    that does not exist, a folder without the split and an unreadable file raise a UserInputError naming them."""
    path = Path(source)
    if path.is_file():
        return read_rows(path)
    if path.is_dir():
        found = _split_file(path, split)
        if found is None:
            raise _folder_lacks(path, split)
        return read_rows(found)
    check_local_path(str(source), "data set")
    return _load_hub(str(source), split, data_dir)


def data_file_name(source: str | Path, split: str = "train") -> str:
    """What `load_rows(source, split)` reads, for a message: the file, a folder's `{split}` file, or a Hub data
    set's split."""
    path = Path(source)
    if path.is_dir():
        return str(_split_file(path, split) or path)
    return str(source) if path.is_file() else f"{source} (split {split})"


def load_split(source: str | Path, split: str, data_dir: str | None = None) -> list[dict] | None:
    """The rows of `split`, or None when the source has no such split: a single file (it is one data set, with no
    splits), a folder without `{split}.jsonl`, a Hub data set without that split."""
    path = Path(source)
    if path.is_file():
        return None
    if path.is_dir():
        return read_rows(found) if (found := _split_file(path, split)) else None
    try:
        return load_rows(source, split, data_dir)
    except MissingPathError as err:
        if "has no split" in str(err):
            return None
        raise


# ---------------------------------------------------------------- held-out sets by hash
# ONE rule for every deterministic split of the project: an item is held out when sha1(its key) mod the fraction's
# denominator is below its numerator (fraction 0.2 = 1/5: sha1 % 5 == 0, the fixed HH-RLHF split; 0.1: sha1 % 10
# == 0). The same content always lands on the same side, whatever the order, count or duplication of the rows.

DEFAULT_EVAL_FRACTION = 0.1


def is_held_out(key: str, fraction: float) -> bool:
    if not 0 <= fraction < 1:
        raise UserInputError(f"a held-out fraction is in [0, 1), got {fraction}")
    part = Fraction(fraction).limit_denominator(10_000)
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % part.denominator < part.numerator


def hash_split(rows: list, fraction: float, key: Callable[[object], str]) -> tuple[list, list]:
    """(kept, held out) by `is_held_out(key(row), fraction)`, each in the rows' order."""
    flags = [is_held_out(key(r), fraction) for r in rows]
    return [r for r, f in zip(rows, flags) if not f], [r for r, f in zip(rows, flags) if f]


def pair_key(pref: dict) -> str:
    """A preference pair's content as canonical JSON (prompt, chosen, rejected; not its id or subset)."""
    return json.dumps([pref["prompt"], pref["chosen"], pref["rejected"]], sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def split_pairs(prefs: list[dict], fraction: float = DEFAULT_EVAL_FRACTION) -> tuple[list[dict], list[dict]]:
    """(train, held-out) preference pairs: held out by `is_held_out(pair_key(pair), fraction)`."""
    return hash_split(prefs, fraction, pair_key)


def drop_seen(held_out: list, seen: list, key: Callable[[object], str] = pair_key) -> tuple[list, int]:
    """(held-out items whose content is not among `seen`, how many were dropped): a held-out set never scores a
    training item."""
    keys = {key(x) for x in seen}
    kept = [x for x in held_out if key(x) not in keys]
    return kept, len(held_out) - len(kept)


HH_TEST_FRACTION = 0.2


def hh_is_test(row: dict) -> bool:
    """The project's fixed HH-RLHF split (../shared/data/README.md): sha1(chosen) % 5 == 0 is test."""
    return is_held_out(row["chosen"], HH_TEST_FRACTION)


def hh_split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    return hash_split(rows, HH_TEST_FRACTION, lambda r: r["chosen"])


# ================================================================ Steps and Candidates (math PRM / ORM, best-of-N)
# Steps (a PRM training row): {"prompt": [Message], "steps": [str], "labels": [1 | 0 | None], "id": str,
#   "reference": str (optional: the reference final answer)}; 1 a good step, 0 a bad one, None a step that is
#   not labelled (e.g. after the first error, as PRM800K labels): masked in training, never filled in.
# Candidates (best-of-N): {"prompt": [Message], "responses": [str], "correct": [bool], "id": str,
#   "reference": str (optional)}.
# Sources: GSM8K ("#### n" answers), the GSM8K labelled model solutions of ../shared/data (is_correct), RLHFlow's
# Hub formats (multi-turn step chats judged "+"/"-"; best-of-N test sets with answers/labels), PRM800K step
# ratings, and the labelling output of math_rm/sample_solutions.py ("sampled").

import re  # this section's own import, kept with it

MATH_SHEPHERD_TAG = "ки"
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def split_steps(text: str) -> list[str]:
    """The steps of a solution, by the first rule that applies:
    1. the text carries Math-Shepherd step tags "ки": the pieces between tags;
    2. the text has a blank line: its paragraphs (DeepSeek / RLHFlow best-of-N style, "\\n\\n");
    3. else its lines (GSM8K style: one calculation per line; a final "A: 18" / "#### 18" line is a step).
    Each piece is stripped; empty pieces are dropped. A text with no content has no steps."""
    if not isinstance(text, str):
        raise RowError(f"a solution must be a string, got {type(text).__name__}")
    if MATH_SHEPHERD_TAG in text:
        pieces = text.split(MATH_SHEPHERD_TAG)
    elif _BLANK_LINE.search(text.strip()):
        pieces = _BLANK_LINE.split(text)
    else:
        pieces = text.split("\n")
    return [p.strip() for p in pieces if p.strip()]




def make_steps(prompt, steps: list[str], labels: list, row_name: str = "", reference=None) -> dict:
    """A validated Steps row. Labels are 1 (good), 0 (bad) or None (not labelled); at least one is labelled."""
    prompt = prompt_messages(prompt)
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise RowError("steps must be a non-empty list of non-empty strings")
    if not isinstance(labels, list) or len(labels) != len(steps):
        raise RowError(f"{len(steps)} steps but {len(labels) if isinstance(labels, list) else 'no'} labels")
    clean = []
    for label in labels:
        if label is None:
            clean.append(None)
        elif isinstance(label, int) and label in (0, 1):
            clean.append(int(label))
        else:
            raise RowError(f"a step label is 1, 0 or None, got {label!r}")
    if all(label is None for label in clean):
        raise RowError("no step is labelled")
    row = {"prompt": prompt, "steps": [s.strip() for s in steps], "labels": clean, "id": row_name}
    if reference is not None:
        row["reference"] = str(reference)
    return row


EMPTY_CANDIDATE = "a candidate is an empty response"
CONFLICTING_CANDIDATES = "identical candidates carry conflicting correctness labels"


def make_candidates(prompt, responses: list[str], correct: list, row_name: str = "", reference=None) -> dict:
    """A Candidates row. RowError (skipped and counted by the converters) for a candidate that is empty or only
    whitespace, and for two candidates identical after stripping whitespace with different labels (identical ones
    with the same label stay)."""
    prompt = prompt_messages(prompt)
    if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
        raise RowError("responses must be a non-empty list of strings")
    if not isinstance(correct, list) or len(correct) != len(responses):
        raise RowError(f"{len(responses)} responses but {len(correct) if isinstance(correct, list) else 'no'} "
                       "correctness labels")
    if not all(c in (0, 1) or isinstance(c, bool) for c in correct):
        raise RowError(f"correctness labels are booleans (or 0/1), got {correct!r:.100}")
    if any(not r.strip() for r in responses):
        raise RowError(EMPTY_CANDIDATE)  # a question with an empty (or whitespace-only) candidate: skipped, counted
    label_of: dict[str, bool] = {}
    for r, c in zip(responses, correct):
        if label_of.setdefault(r.strip(), bool(c)) != bool(c):
            raise RowError(CONFLICTING_CANDIDATES)  # which label is right? a pick between them is a coin toss
    row = {"prompt": prompt, "responses": list(responses), "correct": [bool(c) for c in correct], "id": row_name}
    if reference is not None:
        row["reference"] = str(reference)
    return row


# -- GSM8K ---------------------------------------------------------------------------------------------

GSM8K_SOLUTION_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
GSM8K_SOLUTIONS_TRAIN_QUESTIONS = 1000  # ../shared/data/README.md: index < 1000 trains, the other 319 evaluate


def gsm8k_answer(text: str) -> str:
    """The final answer of a GSM8K solution (rm_core.answers.gsm8k_final_answer); a RowError when it has none."""
    from rm_core.answers import gsm8k_final_answer

    answer = gsm8k_final_answer(text)
    if answer is None:
        raise RowError("no '#### n' or 'A: n' final answer in the GSM8K solution")
    return answer


def from_gsm8k(row: dict) -> list[dict]:
    """openai/gsm8k {"question", "answer"}: the reference solution as a Steps row, every step good (it reaches
    the reference answer), the "#### n" line kept as the last step; `reference` is n."""
    reference = gsm8k_answer(row["answer"])
    return [make_steps(row["question"], split_steps(row["answer"]), [1] * len(split_steps(row["answer"])),
                       (own_id(row) or ""), reference)]


def from_gsm8k_solutions(row: dict, index: int | None = None) -> list[dict]:
    """A row of gsm8k/example_model_solutions.jsonl -> one Candidates row: the four model solutions in the
    file's order (GSM8K_SOLUTION_MODELS), `correct` from their is_correct, `reference` the ground truth's answer;
    the ground-truth solution is kept as `reference_solution` (the offline step-label rule reads it)."""
    models = [m for m in GSM8K_SOLUTION_MODELS if m in row] or [k for k, v in row.items()
                                                                 if isinstance(v, dict) and "solution" in v]
    if not models:
        raise RowError("no model solutions ({'solution', 'is_correct'} fields) in the row")
    name = own_id(row) or (f"gsm8k-test-{index}" if index is not None else "")
    out = make_candidates(row["question"], [row[m]["solution"] for m in models],
                          [row[m]["is_correct"] for m in models], name, gsm8k_answer(row["ground_truth"]))
    out["reference_solution"] = row["ground_truth"]
    out["sources"] = models
    return [out]


def gsm8k_solutions_split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The project's fixed split of the labelled solutions: question index < 1000 trains, the rest evaluates.
    Rows without an id get one by position in their part (gsm8k-train-i, gsm8k-test-i), so every loader names a
    held-out question the same way."""
    def named(part: list[dict], name: str) -> list[dict]:
        return [{**r, "id": r.get("id", f"gsm8k-{name}-{i}")} if isinstance(r, dict) else r  # a bad row: skipped later
                for i, r in enumerate(part)]

    n = GSM8K_SOLUTIONS_TRAIN_QUESTIONS
    return named(rows[:n], "train"), named(rows[n:], "test")


# -- RLHFlow Hub formats -----------------------------------------------------------------------------------

_STEP_ONE = re.compile(r"(?:^|\s)(Step 1\s*[:.])")


def from_rlhflow_step_chat(row: dict) -> list[dict]:
    """RLHFlow PRM data (e.g. RLHFlow/Mistral-PRM-Data): {"conversations": [user, assistant, ...]} where each
    user turn is a step (the first one is "question + first step") and each assistant turn is "+" or "-".
    The question is `row["prompt"]` when given, else the text before "Step 1:" in the first turn. A trailing
    Math-Shepherd tag "ки" is dropped from a step. Every step is labelled."""
    turns = row.get("conversations", row.get("messages"))
    turns = _check_messages(turns, "conversations")
    if len(turns) % 2 or any(t["role"] != ("user", "assistant")[i % 2] for i, t in enumerate(turns)):
        raise RowError("a step chat alternates user (step) and assistant ('+'/'-') turns, starting with user")
    first = turns[0]["content"]
    if row.get("prompt"):
        question = str(row["prompt"])
        if not first.startswith(question):
            raise RowError("the first turn does not start with the given prompt")
        first_step = first[len(question):]
    else:
        m = _STEP_ONE.search(first)
        if m is None:
            raise RowError("cannot separate the question from the first step (no 'Step 1:' and no 'prompt')")
        question, first_step = first[: m.start(1)], first[m.start(1):]
    steps = [first_step] + [t["content"] for t in turns[2::2]]
    steps = [s.replace(MATH_SHEPHERD_TAG, "").strip() for s in steps]
    labels = []
    for t in turns[1::2]:
        judgement = t["content"].strip()
        if judgement not in ("+", "-"):
            raise RowError(f"an assistant turn must be '+' or '-', got {judgement!r:.40}")
        labels.append(1 if judgement == "+" else 0)
    return [make_steps(question.strip(), steps, labels, (own_id(row) or ""))]


def from_rlhflow_best_of_n(row: dict) -> list[dict]:
    """RLHFlow best-of-N test sets (e.g. RLHFlow/Mistral-GSM8K-Test): prompt, answers, labels (1 correct)."""
    labels = row["labels"]  # 1 correct, 0 not: make_candidates refuses anything else (a 2 or 0.9 is not a label)
    return [make_candidates(row["prompt"], list(row["answers"]), list(labels) if isinstance(labels, list) else labels,
                            own_id(row) or own_id(row, "idx") or "")]


# -- PRM800K -----------------------------------------------------------------------------------------------


def from_prm800k(row: dict) -> list[dict]:
    """openai/prm800k phase 1/2 rows: {"question": {"problem"}, "label": {"steps": [{"completions": [{"text",
    "rating"}], "human_completion", "chosen_completion"}]}}. Each step's chosen completion (or the human's) is
    a step; rating -1 is bad (0), 0 and 1 good (1) (neutral steps are not errors). Labelling stops at the
    first bad step, as PRM800K's labellers did: a step with no chosen completion ends the solution with its
    first -1 completion as the bad step."""
    label = row.get("label") or {}
    question = (row.get("question") or {}).get("problem")
    if not isinstance(question, str) or not isinstance(label.get("steps"), list):
        raise RowError("not a PRM800K row (question.problem, label.steps)")
    steps, labels = [], []
    for step in label["steps"]:
        completions = step.get("completions") or []
        chosen = step.get("chosen_completion")
        if chosen is not None and 0 <= chosen < len(completions):
            pick = completions[chosen]
        elif step.get("human_completion"):
            human = step["human_completion"]
            pick = {"text": human.get("text", "") if isinstance(human, dict) else str(human), "rating": 1}
        else:
            bad = [c for c in completions if c.get("rating") == -1]
            if bad:
                steps.append(bad[0]["text"])
                labels.append(0)
            break
        if pick.get("rating") is None:
            break
        steps.append(pick["text"])
        labels.append(0 if pick["rating"] == -1 else 1)
        if pick["rating"] == -1:
            break
    if not steps:
        raise RowError("PRM800K row has no rated step")
    return [make_steps(question, steps, labels, (own_id(row) or ""),
                       (row.get("question") or {}).get("ground_truth_answer"))]


# -- our labelling output (math_rm/sample_solutions.py) ----------------------------------------------------


def from_sampled(row: dict) -> list[dict]:
    """A question of math_rm/sample_solutions.py's JSONL -> one Steps row per solution with a labelled step."""
    out = []
    for j, sol in enumerate(row["solutions"]):
        if sol.get("labels") and any(x is not None for x in sol["labels"]):
            out.append(make_steps(row["question"], sol["steps"], sol["labels"], f"{row.get('id', '')}/{j}",
                                  row.get("reference")))
    return out


def candidates_from_sampled(row: dict) -> list[dict]:
    """A sampled question's graded solutions as Candidates; a solution cut off at max_new_tokens (is_correct null:
    no answer to grade) is left out, never read as wrong."""
    graded = [s for s in row["solutions"] if s.get("is_correct") is not None]
    return [make_candidates(row["question"], [s["text"] for s in graded], [s["is_correct"] for s in graded],
                            (own_id(row) or ""), row.get("reference"))]


def _canonical_steps(row: dict) -> list[dict]:
    return [make_steps(row["prompt"], row["steps"], row["labels"], (own_id(row) or ""), row.get("reference"))]


def _canonical_candidates(row: dict) -> list[dict]:
    return [make_candidates(row["prompt"], row["responses"], row["correct"], (own_id(row) or ""),
                            row.get("reference"))]


STEPS_CONVERTERS: dict[str, Callable[[dict], list[dict]]] = {
    "steps": _canonical_steps, "rlhflow_steps": from_rlhflow_step_chat, "prm800k": from_prm800k,
    "gsm8k": from_gsm8k, "sampled": from_sampled}
CANDIDATES_CONVERTERS: dict[str, Callable[[dict], list[dict]]] = {
    "candidates": _canonical_candidates, "rlhflow_best_of_n": from_rlhflow_best_of_n,
    "gsm8k_solutions": from_gsm8k_solutions, "sampled": candidates_from_sampled}


def detect_math_format(row: dict) -> str:
    """The source format of a Steps or Candidates row (the names of STEPS_CONVERTERS / CANDIDATES_CONVERTERS)."""
    if "steps" in row and "labels" in row:
        return "steps"
    if "responses" in row and "correct" in row:
        return "candidates"
    if "solutions" in row and "question" in row:
        return "sampled"
    if "ground_truth" in row and any(isinstance(v, dict) and "solution" in v for v in row.values()):
        return "gsm8k_solutions"
    if "answers" in row and "labels" in row:
        return "rlhflow_best_of_n"
    if isinstance(row.get("label"), dict) and "steps" in row["label"]:
        return "prm800k"
    if "conversations" in row or "messages" in row:
        return "rlhflow_steps"
    if "question" in row and "answer" in row:
        return "gsm8k"
    raise RowError(f"not a Steps or Candidates source row (keys: {sorted(row)})")


def first_math_format(rows: list, source) -> str:
    """The format (detect_math_format) of the first row it recognises: a first row that is bad is skipped and
    counted by the converters like any other, not taken for the whole file's format. A UserInputError naming
    `source` when no row is recognisable."""
    for row in rows:
        if isinstance(row, dict):
            try:
                return detect_math_format(row)
            except RowError:
                continue
    first = rows[0] if rows else None
    what = (f"row 0 has keys {sorted(first)}" if isinstance(first, dict) else "it has no rows" if not rows
            else "row 0 is not a JSON object")
    raise UserInputError(f"{source}: no row is a Steps or Candidates source row ({what}; see rm_core.data's "
                         "STEPS_CONVERTERS / CANDIDATES_CONVERTERS for the formats read)")


def _convert_math(rows: Iterable[dict], converters: dict, fmt: str, strict: bool,
                  source=None) -> tuple[list[dict], SkipReport]:
    """The converted rows; one without an id gets its row's (row_ids: never an id another row gives itself).
    With `source`: a repeated id is a UserInputError naming it, both rows and `source` (check_unique_ids)."""
    rows = list(rows)
    ids = row_ids(rows)
    out, report, rows_of = [], SkipReport(), []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise RowError("row is not a JSON object")
            name = detect_math_format(row) if fmt == "auto" else fmt
            if name not in converters:
                raise RowError(f"format {name!r} has no converter here; choose from {sorted(converters)}")
            converted = converters[name](row, i) if name == "gsm8k_solutions" else converters[name](row)
            for j, r in enumerate(converted):
                r["id"] = r["id"] or (ids[i] if len(converted) == 1 else f"{ids[i]}/{j}")
            out.extend(converted)
            rows_of += [i] * len(converted)
        except (RowError, KeyError, TypeError, ValueError) as err:
            reason = str(err) if isinstance(err, RowError) else f"missing or wrong field {err}"
            if strict:
                raise RowError(f"{_row_name(row if isinstance(row, dict) else {}, i)}: {reason}") from None
            report.add(reason, _row_name(row if isinstance(row, dict) else {}, i))
    if source is not None:
        check_unique_ids(zip((r["id"] for r in out), rows_of), source)
    return out, report


def to_steps(rows: Iterable[dict], fmt: str = "auto", strict: bool = False) -> tuple[list[dict], SkipReport]:
    """Convert rows to Steps rows (STEPS_CONVERTERS); bad rows raise (strict) or are skipped and counted."""
    return _convert_math(rows, STEPS_CONVERTERS, fmt, strict)


def to_candidates(rows: Iterable[dict], fmt: str = "auto", strict: bool = False,
                  source=None) -> tuple[list[dict], SkipReport]:
    """Convert rows to Candidates rows (CANDIDATES_CONVERTERS); bad rows raise (strict) or are skipped, counted.
    With `source` (the file, for the message) a repeated question id is a UserInputError naming both rows."""
    return _convert_math(rows, CANDIDATES_CONVERTERS, fmt, strict, source)


def load_reward_bench_pairs(dataset: str, split: str = "filtered", subsets=None,
                            limit: int | None = None) -> tuple[list[dict], SkipReport]:
    """`dataset` (a Hub id, a file in RewardBench's row schema, or LLMBar's folder) as Preference rows with unique
    ids: `split` of a Hub data set, only `subsets` when given, the first `limit`; bad rows skipped and counted."""
    if (Path(dataset) / "natural.json").is_file():  # LLMBar's own folder: its five chat-hard subsets
        rows = load_llmbar_as_reward_bench(dataset)
    else:
        rows = load_rows(dataset, split)
    indices = list(range(len(rows)))
    if subsets:  # a row that is not an object has no subset: it stays, to be skipped and counted
        indices = [i for i in indices if not isinstance(rows[i], dict) or rows[i].get("subset") in set(subsets)]
        rows = [rows[i] for i in indices]
    located, skipped = located_preferences(rows, indices=indices)
    if not located:
        raise UserInputError(f"{dataset}: no pairs to score ({len(rows)} rows"
                             + (f" of subsets {subsets}" if subsets else "") + f", {skipped})")
    check_unique_ids(((p["id"], i) for p, i in located), data_file_name(dataset, split))
    prefs = [p for p, _ in located]
    return prefs[:limit] if limit else prefs, skipped
