"""Converters to the canonical Preference row, malformed-row handling, loaders, and the real data splits."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from rm_core.data import (
    RowError,
    from_conversations,
    from_explicit,
    from_hh,
    from_reward_bench,
    hh_is_test,
    hh_split,
    llmbar_to_reward_bench,
    load_llmbar_as_reward_bench,
    load_rows,
    parse_hh_transcript,
    read_rows,
    row_ids,
    shared_data_dir,
    to_preferences,
)

SHARED_DATA = shared_data_dir()  # $RM_SHARED_DATA, else ../shared/data


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


# ---------------------------------------------------------------- converters: canonical rows


def test_hh_single_turn():
    row = {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!",
           "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}
    pref = from_hh(row)
    assert pref == {"prompt": [U("Hi there")], "chosen": [A("Hello!")], "rejected": [A("Go away.")],
                    "id": "", "subset": ""}


def test_hh_multi_turn_keeps_every_shared_turn_in_the_prompt():
    shared = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?"
    row = {"chosen": shared + "\n\nAssistant: 12.", "rejected": shared + "\n\nAssistant: 7.", "id": "x1"}
    pref = from_hh(row)
    assert pref["prompt"] == [U("What is 2+2?"), A("4."), U("And times 3?")]
    assert pref["chosen"] == [A("12.")]
    assert pref["rejected"] == [A("7.")]
    assert pref["id"] == "x1"
    # and through the auto-detecting entry point
    prefs, report = to_preferences([row])
    assert prefs == [pref] and report.total == 0


def test_parse_hh_transcript_roles_alternate():
    msgs = parse_hh_transcript("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in msgs] == ["a", "b", "c", "d"]


def test_conversations_standard_format_prompt_is_shared_prefix():
    # RLHFlow "standard" / TRL implicit prompt: two whole conversations
    row = {"chosen": [S("Be brief."), U("Capital of France?"), A("Paris.")],
           "rejected": [S("Be brief."), U("Capital of France?"), A("Lyon.")], "subset": "geo", "margin": 2}
    pref = from_conversations(row)
    assert pref["prompt"] == [S("Be brief."), U("Capital of France?")]
    assert pref["chosen"] == [A("Paris.")]
    assert pref["rejected"] == [A("Lyon.")]
    assert pref["subset"] == "geo"
    assert pref["margin"] == 2.0 and isinstance(pref["margin"], float)
    prefs, _ = to_preferences([row])  # auto-detected as "conversations"
    assert prefs[0]["prompt"] == pref["prompt"] and prefs[0]["chosen"] == pref["chosen"]


def test_conversations_multi_turn():
    prefix = [U("hi"), A("hello"), U("tell a joke")]
    row = {"chosen": prefix + [A("A joke.")], "rejected": prefix + [A("No.")]}
    pref = from_conversations(row)
    assert pref["prompt"] == prefix
    assert pref["chosen"] == [A("A joke.")] and pref["rejected"] == [A("No.")]


def test_conversations_extra_keys_in_messages_are_dropped():
    row = {"chosen": [{"role": "user", "content": "q", "name": "x"}, A("good")],
           "rejected": [{"role": "user", "content": "q", "name": "x"}, A("bad")]}
    pref = from_conversations(row)
    assert pref["prompt"] == [U("q")]


def test_explicit_with_strings():
    row = {"prompt": "Say hi", "chosen": [A("hi")], "rejected": "bye"}
    pref = from_explicit(row)
    assert pref["prompt"] == [U("Say hi")]
    assert pref["chosen"] == [A("hi")]
    assert pref["rejected"] == [A("bye")]


def test_explicit_with_message_lists():
    row = {"prompt": [S("sys"), U("q")], "chosen": [A("good")], "rejected": [A("bad")], "id": 7}
    prefs, report = to_preferences([row])
    assert report.total == 0
    assert prefs == [{"prompt": [S("sys"), U("q")], "chosen": [A("good")], "rejected": [A("bad")],
                      "id": "7", "subset": ""}]


def test_explicit_prompt_repeated_in_whole_conversations_is_taken_off_them():
    # HuggingFaceH4/ultrafeedback_binarized: a string prompt, chosen/rejected the whole [user, assistant] chats
    row = {"prompt": "What is 2+2?", "chosen": [U("What is 2+2?"), A("4")],
           "rejected": [U("What is 2+2?"), A("5")]}
    prefs, _ = to_preferences([row], strict=True)
    assert prefs[0]["prompt"] == [U("What is 2+2?")]
    assert prefs[0]["chosen"] == [A("4")] and prefs[0]["rejected"] == [A("5")]


def test_reward_bench_row():
    row = {"id": 42, "subset": "alpacaeval-easy", "prompt": "Write a haiku", "chosen": "Leaves fall",
           "rejected": "no", "chosen_model": "m1", "rejected_model": "m2"}
    pref = from_reward_bench(row)
    assert pref == {"prompt": [U("Write a haiku")], "chosen": [A("Leaves fall")], "rejected": [A("no")],
                    "id": "42", "subset": "alpacaeval-easy"}
    prefs, _ = to_preferences([row])
    assert prefs == [pref]


@pytest.mark.parametrize("label", [1, 2])
def test_llmbar_row_label_picks_the_chosen_output(label):
    row = {"input": "Pick", "output_1": "first", "output_2": "second", "label": label}
    rb = llmbar_to_reward_bench(row, "llmbar-natural", 3)
    better, worse = ("first", "second") if label == 1 else ("second", "first")
    assert rb["chosen"] == better and rb["rejected"] == worse
    assert rb["id"] == "llmbar-natural-3" and rb["subset"] == "llmbar-natural" and rb["prompt"] == "Pick"
    prefs, report = to_preferences([row])
    assert report.total == 0
    assert prefs[0]["prompt"] == [U("Pick")]
    assert prefs[0]["chosen"] == [A(better)] and prefs[0]["rejected"] == [A(worse)]


def test_row_without_id_gets_its_index():
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}] * 3
    prefs, _ = to_preferences(rows)
    assert [p["id"] for p in prefs] == ["0", "1", "2"]


def test_a_generated_id_never_takes_an_id_a_row_gives_itself():
    """Row 0 has no id and row 2 calls itself "0" (row 1 "#0"): the generated id steps aside ("##0"), so a file
    whose own ids are unique never fails the unique-id check; a null id is no id (not the text "None")."""
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"id": "#0", "prompt": "d", "chosen": "e", "rejected": "f"},
            {"id": 0, "prompt": "g", "chosen": "h", "rejected": "i"}, {"id": None, "prompt": "j", "chosen": "k",
                                                                       "rejected": "l"}]
    prefs, _ = to_preferences(rows)
    assert [p["id"] for p in prefs] == ["##0", "#0", "0", "3"]
    assert row_ids(rows) == ["##0", "#0", "0", "3"] and row_ids([[1], {}]) == [None, "1"]
    assert [p["id"] for p in to_preferences(rows[:2])[0]] == ["0", "#0"]  # no collision: the index as before


def test_margin_is_kept_as_a_float():
    (pref,), report = to_preferences([{**GOOD, "margin": "1.5"}])
    assert pref["margin"] == 1.5 and report.total == 0
    (pref,), _ = to_preferences([{**GOOD, "margin": None}])
    assert "margin" not in pref


def test_repeated_ids_name_the_file_the_id_and_both_rows(tmp_path):
    from rm_core.data import load_reward_bench_pairs
    from rm_core.errors import UserInputError

    path = tmp_path / "rb.jsonl"
    rows = [{**GOOD, "id": "a"}, {**GOOD, "id": "b", "prompt": "q2"}, {**GOOD, "id": "a", "prompt": "q3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(UserInputError) as info:
        load_reward_bench_pairs(str(path))
    assert str(info.value) == (f"{path}: id 'a' is in row 0 and row 2; item ids must be unique (scores are stored "
                               "and resumed by id)")
    # an int id and the same text are one id (scores are stored by the id's text)
    path.write_text(json.dumps({**GOOD, "id": 1}) + "\n" + json.dumps({**GOOD, "id": "1", "prompt": "q2"}) + "\n",
                    encoding="utf-8")
    with pytest.raises(UserInputError, match=r"id '1' is in row 0 and row 1"):
        load_reward_bench_pairs(str(path))


def test_subsets_filter_counts_a_row_that_is_not_an_object(tmp_path):
    """--subsets filters converted rows: a row that is not a JSON object is skipped and counted (as without
    --subsets), named by its row in the file, not an AttributeError."""
    from rm_core.data import load_reward_bench_pairs

    path = tmp_path / "rb.jsonl"
    rows = [{**GOOD, "id": "a", "subset": "x"}, [1, 2], {**GOOD, "id": "b", "subset": "y"}, "text",
            {**GOOD, "id": "c", "subset": "x", "prompt": "q2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prefs, skipped = load_reward_bench_pairs(str(path), subsets=["x"])
    assert [p["id"] for p in prefs] == ["a", "c"]
    assert skipped.as_dict() == {"skipped": 2, "by_reason": {"row is not a JSON object": 2},
                                 "examples": {"row is not a JSON object": ["row 1", "row 3"]}}


# ---------------------------------------------------------------- malformed rows

GOOD = {"prompt": "q", "chosen": "good", "rejected": "bad"}
MALFORMED = {
    "missing field": ({"prompt": "q", "chosen": "good"}, "chosen"),
    "missing field explicit": ({"chosen": [A("x")], "rejected": [A("y")]}, "share no prompt"),
    "empty response": ({"prompt": "q", "chosen": "   ", "rejected": "bad"}, "empty response"),
    "empty hh response": ({"chosen": "\n\nHuman: q\n\nAssistant: ", "rejected": "\n\nHuman: q\n\nAssistant: no"},
                          "empty response"),
    "unknown role": ({"prompt": [{"role": "bot", "content": "q"}], "chosen": [A("x")], "rejected": [A("y")]},
                     "unknown role"),
    "hh differ in the first turn": ({"chosen": "\n\nHuman: a\n\nAssistant: b",
                                     "rejected": "\n\nHuman: Z\n\nAssistant: e"}, "share no prompt"),
    "conversations differ in a user turn": ({"chosen": [U("a"), A("b"), U("c"), A("d")],
                                             "rejected": [U("a"), A("b"), U("Z"), A("e")]},
                                            "assistant"),
    "conversations share only a system turn": ({"chosen": [S("s"), U("a"), A("b")],
                                                 "rejected": [S("s"), U("Z"), A("e")]},
                                                "chosen starts with a user turn"),
    "explicit prompt, conversations with another": ({"prompt": "q", "chosen": [U("other"), A("b")],
                                                     "rejected": [U("other"), A("e")]},
                                                    "chosen starts with a user turn"),
    "non-dict row": (["not", "a", "dict"], "not a JSON object"),
    "bad llmbar label": ({"input": "q", "output_1": "a", "output_2": "b", "label": 3}, "label 1 or 2"),
    "llmbar label missing": ({"input": "q", "output_1": "a", "output_2": "b"}, "label 1 or 2"),
    "llmbar label a boolean": ({"input": "q", "output_1": "a", "output_2": "b", "label": True}, "label 1 or 2"),
    "empty prompt": ({"prompt": " ", "chosen": "good", "rejected": "bad"}, "prompt is empty"),
    "response ends with user": ({"prompt": [U("q")], "chosen": [U("x")], "rejected": [A("y")]},
                                "must end with an assistant"),
    "content not a string": ({"prompt": [U("q")], "chosen": [{"role": "assistant", "content": 3}],
                              "rejected": [A("y")]}, "content must be a string"),
    # a margin a loss would use: text, NaN and inf are malformed rows, not a ValueError from float()
    "margin not a number": ({**GOOD, "margin": "abc"}, "margin is not a finite number"),
    "margin NaN": ({**GOOD, "margin": float("nan")}, "margin is not a finite number"),
    "margin inf": ({**GOOD, "margin": float("-inf")}, "margin is not a finite number"),
    "margin a list": ({**GOOD, "margin": [1]}, "margin is not a finite number"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_row_strict_raises_naming_the_row(kind):
    bad, reason = MALFORMED[kind]
    with pytest.raises(RowError) as info:
        to_preferences([GOOD, GOOD, bad], strict=True)
    message = str(info.value)
    assert message.startswith("row 2"), message
    assert reason in message, message


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_row_lenient_is_counted_with_reason(kind):
    bad, reason = MALFORMED[kind]
    prefs, report = to_preferences([GOOD, bad, GOOD])
    assert len(prefs) == 2
    assert [p["id"] for p in prefs] == ["0", "2"]
    assert report.total == 1
    (reason_text, count), = report.counts.items()
    assert count == 1 and reason in reason_text
    assert report.examples[reason_text] == ["row 1"]
    assert report.as_dict()["skipped"] == 1
    assert "1 rows skipped" in str(report)


def test_strict_error_names_row_id_when_present():
    bad = {"id": "abc", "prompt": "q", "chosen": "", "rejected": "x"}
    with pytest.raises(RowError, match=r"row 0 \(id abc\): chosen is an empty response"):
        to_preferences([bad], strict=True)


def test_skip_report_counts_several_reasons():
    rows = [GOOD, {"prompt": "q", "chosen": "", "rejected": "x"}, {"prompt": "q", "chosen": "", "rejected": "y"},
            "junk", GOOD]
    prefs, report = to_preferences(rows)
    assert len(prefs) == 2
    assert report.total == 3
    assert report.counts["chosen is an empty response"] == 2
    assert report.counts["row is not a JSON object"] == 1
    assert report.examples["chosen is an empty response"] == ["row 1", "row 2"]


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown format"):
        to_preferences([GOOD], fmt="nonsense", strict=True)


# ---------------------------------------------------------------- loading files

ROWS = [{"prompt": "q1", "chosen": "a", "rejected": "b", "id": "1"},
        {"prompt": "q2", "chosen": "c", "rejected": "d", "id": "2"}]


def _write(path: Path, kind: str) -> Path:
    if kind == "json":
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n", encoding="utf-8")
    elif kind == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("kind", ["json", "jsonl", "jsonl.gz", "parquet"])
def test_load_rows_file_formats(tmp_path, kind):
    path = _write(tmp_path / f"rows.{kind}", kind)
    assert load_rows(path) == ROWS
    prefs, report = to_preferences(load_rows(str(path)))
    assert [p["id"] for p in prefs] == ["1", "2"] and report.total == 0


def test_load_rows_folder_picks_the_split(tmp_path):
    _write(tmp_path / "train.jsonl", "jsonl")
    (tmp_path / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    assert load_rows(tmp_path) == ROWS
    assert load_rows(tmp_path, split="test") == [ROWS[0]]
    with pytest.raises(FileNotFoundError, match="validation"):
        load_rows(tmp_path, split="validation")


def test_read_rows_bad_json_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(RowError, match="line 2"):
        read_rows(path)


def test_read_rows_json_object_is_rejected(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"train": ROWS}), encoding="utf-8")
    with pytest.raises(RowError, match="JSON object"):
        read_rows(path)


# ---------------------------------------------------------------- real data in ../shared/data

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent (real data sets)")


def test_the_shared_data_folder_is_found_one_way(monkeypatch, tmp_path):
    from rm_core.errors import MissingPathError

    monkeypatch.delenv("RM_SHARED_DATA", raising=False)
    assert shared_data_dir() == Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data
    monkeypatch.setenv("RM_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path and shared_data_dir(required=True) == tmp_path
    assert shared_data_dir(tmp_path / "mine") == tmp_path / "mine"  # an explicit folder wins
    with pytest.raises(MissingPathError, match="RM_SHARED_DATA"):
        shared_data_dir(tmp_path / "absent", required=True)


@needs_shared
def test_hh_fixed_split_counts():
    import hashlib

    rows = load_rows(SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    assert len(rows) == 2312
    train, test = hh_split(rows)
    assert (len(test), len(train)) == (446, 1866)
    # the rule as written in ../shared/data/README.md
    for r in test[:20]:
        assert int(hashlib.sha1(r["chosen"].encode("utf-8")).hexdigest(), 16) % 5 == 0
    for r in train[:20]:
        assert int(hashlib.sha1(r["chosen"].encode("utf-8")).hexdigest(), 16) % 5 != 0
    assert all(hh_is_test(r) for r in test)
    prefs, report = to_preferences(rows)
    assert len(prefs) + report.total == len(rows)
    assert all(p["prompt"][-1]["role"] == "user" and p["chosen"][-1]["role"] == "assistant" for p in prefs)


@needs_shared
def test_llmbar_as_reward_bench_counts():
    rows = load_llmbar_as_reward_bench(SHARED_DATA / "llmbar")
    assert len(rows) == 419
    assert Counter(r["subset"] for r in rows) == {
        "llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
        "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    }
    assert len({r["id"] for r in rows}) == 419
    # the label decides which output is chosen
    natural = json.loads((SHARED_DATA / "llmbar" / "natural.json").read_text(encoding="utf-8"))
    for i, src in enumerate(natural[:10]):
        row = rows[i]
        assert row["subset"] == "llmbar-natural"
        assert row["chosen"] == src[f"output_{src['label']}"]
        assert row["rejected"] == src[f"output_{3 - src['label']}"]


@pytest.mark.parametrize("fmt,row,missing", [
    ("explicit", {"chosen": [A("x")], "rejected": [A("y")]}, "prompt"),
    ("hh", {"chosen": "\n\nHuman: a\n\nAssistant: b"}, "rejected"),
])
def test_missing_field_with_an_explicit_format(fmt, row, missing):
    with pytest.raises(RowError, match=rf"row 0: missing or wrong field '{missing}'"):
        to_preferences([row], fmt=fmt, strict=True)
    prefs, report = to_preferences([row], fmt=fmt)
    assert prefs == [] and report.counts == {f"missing or wrong field '{missing}'": 1}


def test_hh_transcripts_that_differ_before_the_last_reply_split_at_the_shared_prefix():
    row = {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
           "rejected": "\n\nHuman: a\n\nAssistant: X\n\nHuman: c\n\nAssistant: e"}
    prefs, skipped = to_preferences([row])
    assert skipped.total == 0
    assert prefs[0]["prompt"] == [U("a")]
    assert prefs[0]["chosen"] == [A("b"), U("c"), A("d")]
    assert prefs[0]["rejected"] == [A("X"), U("c"), A("e")]


# ---------------------------------------------------------------- degenerate pairs


IDENTICAL = {
    "reward_bench": {"prompt": "q", "chosen": "Blue.", "rejected": "Blue.", "subset": "s"},
    "explicit_whitespace": {"prompt": [U("q")], "chosen": [A("Blue.")], "rejected": [A("  Blue.\n")]},
    "explicit_multi_turn": {"prompt": [U("q")], "chosen": [A("a"), U("more?"), A("b")],
                            "rejected": [A("a"), U("more?"), A("b ")]},
    "conversations": {"chosen": [U("q"), A("same")], "rejected": [U("q"), A("same")]},
    "hh": {"chosen": "\n\nHuman: q\n\nAssistant: same", "rejected": "\n\nHuman: q\n\nAssistant: same"},
    "llmbar": {"input": "q", "output_1": "x y", "output_2": "x y", "label": 1},
}


@pytest.mark.parametrize("kind", sorted(IDENTICAL))
def test_identical_chosen_and_rejected_are_skipped_and_counted_even_when_strict(kind):
    for strict in (False, True):
        prefs, report = to_preferences([GOOD, IDENTICAL[kind], GOOD], strict=strict)
        assert [p["id"] for p in prefs] == ["0", "2"]
        assert report.counts == Counter({"chosen and rejected are identical": 1})
        assert report.examples["chosen and rejected are identical"][0].startswith("row 1")
    # pairs that differ anywhere (case, an earlier turn of a continuation) are kept
    rows = [{"prompt": "q", "chosen": "Blue.", "rejected": "blue."},
            {"prompt": [U("q")], "chosen": [A("a"), U("more?"), A("b")], "rejected": [A("a"), U("less?"), A("b")]}]
    assert len(to_preferences(rows)[0]) == 2


def test_training_data_counts_identical_pairs(tmp_path):
    from rm_core.args import DataArguments
    from rm_core.pipeline import load_preference_splits

    rows = [{"id": str(i), "prompt": f"q{i}", "chosen": "yes", "rejected": "yes" if i % 4 == 0 else "no"}
            for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]), encoding="utf-8")
    train, test, report = load_preference_splits(DataArguments(dataset_name=str(tmp_path)))
    assert all(p["chosen"] != p["rejected"] for p in train + test)
    assert report["train_skipped"]["by_reason"] == {"chosen and rejected are identical": 3}
    assert report["test_skipped"]["by_reason"] == {"chosen and rejected are identical": 1}
