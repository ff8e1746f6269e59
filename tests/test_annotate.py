"""judges/annotate.py: the Label Studio export randomises and records the order; the import undoes it, keeps
annotators and reasons, and counts ties, skips and unlabelled tasks. (Label Studio's own JSON export schema; the
round trip through a running Label Studio is tests/test_label_studio.py, run by scripts/label_studio_tests.sh.)"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET

import pytest

from judges.annotate import CHOICE_A, CHOICE_B, CHOICE_TIE, LABEL_CONFIG, export, import_, make_tasks, read_export


def _prefs(path, n=20):
    rows = [{"id": f"p{i}", "prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _export_args(tmp_path, **over):
    base = dict(pairs=str(_prefs(tmp_path / "prefs.jsonl")), candidates=None, max_pairs_per_prompt=6, limit=None,
                seed=0, output_dir=str(tmp_path / "ls"))
    return argparse.Namespace(**{**base, **over})


def _annotate(task, choice, who=1, reason=None, cancelled=False):
    result = [] if choice is None else [{"from_name": "preference", "to_name": "prompt", "type": "choices",
                                         "value": {"choices": [choice]}}]
    if reason:
        result.append({"from_name": "reason", "to_name": "prompt", "type": "textarea", "value": {"text": [reason]}})
    task.setdefault("annotations", []).append({"completed_by": who, "was_cancelled": cancelled, "result": result})
    return task


def test_label_config_is_xml_with_the_choices_the_import_reads():
    root = ET.fromstring(LABEL_CONFIG)
    choices = [c.get("value") for c in root.iter("Choice")]
    assert choices == [CHOICE_A, CHOICE_B, CHOICE_TIE]
    assert {t.get("name") for t in root.iter("Text")} == {"prompt", "response_a", "response_b"}


def test_export_randomises_the_order_and_records_it(tmp_path):
    summary = export(_export_args(tmp_path))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    assert summary["tasks"] == 20 and len(tasks) == 20
    shown_first = [t["data"]["a_source"] for t in tasks]
    assert 3 <= shown_first.count("chosen") <= 17  # both orders occur
    for t in tasks:
        d = t["data"]
        good = d["response_a"] if d["a_source"] == "chosen" else d["response_b"]
        assert good.startswith("good answer") and {d["a_source"], d["b_source"]} == {"chosen", "rejected"}
    again = make_tasks([{"pair_id": "p0", "prompt": "q", "x": "1", "y": "2", "x_source": "chosen",
                         "y_source": "rejected"}], seed=0)
    assert again == make_tasks([{"pair_id": "p0", "prompt": "q", "x": "1", "y": "2", "x_source": "chosen",
                                 "y_source": "rejected"}], seed=0)  # seeded: the same order every time


def test_export_from_candidates_makes_every_pair_of_a_prompt(tmp_path):
    cands = tmp_path / "cands.jsonl"
    cands.write_text(json.dumps({"id": "q1", "prompt": "2+2?", "responses": ["4", "5", "22"],
                                 "correct": [True, False, False]}) + "\n", encoding="utf-8")
    export(_export_args(tmp_path, pairs=None, candidates=str(cands)))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    assert sorted(t["data"]["pair_id"] for t in tasks) == ["q1:0-1", "q1:0-2", "q1:1-2"]


def test_import_undoes_the_order_and_counts_ties_skips_and_unlabelled(tmp_path):
    export(_export_args(tmp_path, limit=5))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    for k, t in enumerate(tasks):
        t["id"] = 100 + k
    a_good = [t["data"]["a_source"] == "chosen" for t in tasks]
    _annotate(tasks[0], CHOICE_A if a_good[0] else CHOICE_B, who={"id": 7, "email": "ann@example.org"},
              reason="more accurate")  # agrees with the data set
    _annotate(tasks[0], CHOICE_B if a_good[0] else CHOICE_A, who=8)  # a second annotator disagrees
    _annotate(tasks[1], CHOICE_TIE, who=7)
    _annotate(tasks[2], None, who=7, cancelled=True)  # skipped
    _annotate(tasks[3], None, who=7)  # submitted without a choice
    # task 4: nobody labelled it
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(tasks), encoding="utf-8")
    summary = import_(argparse.Namespace(export=str(export_file), output_dir=str(tmp_path / "human")))
    assert summary["counts"] == {"preference": 2, "agrees with the data set": 1, "disagrees with the data set": 1,
                                 "tie": 1, "skipped or cancelled": 1, "no choice": 1, "task not labelled": 1}
    rows = [json.loads(x) for x in (tmp_path / "human" / "preferences.jsonl").read_text(encoding="utf-8").splitlines()]
    first, second = rows
    assert first["chosen"][0]["content"].startswith("good answer") and first["annotator"] == "ann@example.org"
    assert first["reason"] == "more accurate" and first["chosen_source"] == "chosen"
    assert second["chosen"][0]["content"].startswith("bad answer") and second["annotator"] == 8
    assert first["prompt"] == [{"role": "user", "content": "question 0"}] and first["task_id"] == 100
    ties = (tmp_path / "human" / "ties.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(ties) == 1


def test_imported_rows_are_preferences_the_project_reads(tmp_path):
    from rm_core.data import to_preferences

    tasks = make_tasks([{"pair_id": "x", "prompt": [{"role": "user", "content": "hi"}], "x": "hello!", "y": "go away",
                         "x_source": "chosen", "y_source": "rejected"}])
    _annotate(tasks[0], CHOICE_A if tasks[0]["data"]["a_source"] == "chosen" else CHOICE_B)
    prefs, _, _ = read_export(tasks)
    converted, skipped = to_preferences(prefs)
    assert skipped.total == 0 and converted[0]["chosen"][-1]["content"] == "hello!"


def test_bad_export_files_are_one_line(tmp_path):
    from rm_core.errors import UserInputError

    bad = tmp_path / "x.json"
    bad.write_text("{oops", encoding="utf-8")
    with pytest.raises(UserInputError, match="not Label Studio's JSON export"):
        import_(argparse.Namespace(export=str(bad), output_dir=str(tmp_path / "o")))
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(UserInputError, match="a JSON list of tasks"):
        import_(argparse.Namespace(export=str(bad), output_dir=str(tmp_path / "o")))
    with pytest.raises(UserInputError, match="one of them"):
        export(_export_args(tmp_path, candidates="also.jsonl"))


def _task(pair_id="p", a="yes", b="no", prompt="q?"):
    return {"data": {"pair_id": pair_id, "prompt": "q", "prompt_messages": json.dumps(prompt),
                     "response_a": a, "response_b": b, "a_source": "chosen", "b_source": "rejected"}}


def test_import_counts_malformed_degenerate_and_duplicate_tasks(tmp_path):
    from rm_core.errors import UserInputError

    good = _annotate(_task(), CHOICE_A, who=1)
    tasks = ["not a task", 5, {"data": good["data"], "annotations": ["oops", {"result": "abc", "completed_by": 1}]},
             good, json.loads(json.dumps(good)),  # the same task twice
             _annotate(_task(b="no"), CHOICE_B, who=1),  # another task with the same pair_id and annotator
             _annotate(_task(pair_id="same", a="x", b=" x "), CHOICE_A),
             _annotate(_task(pair_id="empty", b=""), CHOICE_A), _annotate(_task(pair_id="num", b=5), CHOICE_A),
             _annotate(_task(prompt=3), CHOICE_A), _annotate(_task(pair_id=None), CHOICE_A),
             {"data": good["data"], "annotations": [{"completed_by": 2, "result": [7, {"from_name": "preference",
                                                                                         "value": {"choices": "A"}}]}]}]
    prefs, ties, counts = read_export(tasks)
    assert [p["id"] for p in prefs] == ["p@1"] and prefs[0]["chosen"][0]["content"] == "yes" and not ties
    assert counts == {"task is not a JSON object": 2, "annotation is not a JSON object": 1, "no choice": 2,
                      "preference": 1, "agrees with the data set": 1, "duplicate task": 2,
                      "identical responses (response_a == response_b)": 1, "empty or non-string response": 2,
                      "prompt is not text or messages": 1, "missing pair_id": 1}
    export_file = tmp_path / "bad.json"
    export_file.write_text(json.dumps(tasks[6:]), encoding="utf-8")
    with pytest.raises(UserInputError, match="bad.json: no labelled task"):
        import_(argparse.Namespace(export=str(export_file), output_dir=str(tmp_path / "o")))
    assert not (tmp_path / "o" / "preferences.jsonl").exists()


def test_export_refuses_repeated_pair_ids(tmp_path):
    from rm_core.errors import UserInputError

    prefs = tmp_path / "dup.jsonl"
    prefs.write_text("".join(json.dumps({"id": "p1", "prompt": "q", "chosen": f"good {i}", "rejected": "bad"}) + "\n"
                             for i in range(2)), encoding="utf-8")
    with pytest.raises(UserInputError, match=r"dup.jsonl: id 'p1'"):
        export(_export_args(tmp_path, pairs=str(prefs)))


def test_export_shows_no_side_of_a_pair_that_parts_before_the_last_reply(tmp_path):
    # the sides differ in an earlier assistant turn: showing either side's history would give the answer away
    prefs = tmp_path / "multi.jsonl"
    rows = [{"id": "one", "prompt": "q", "chosen": "good", "rejected": "bad"},
            {"id": "multi", "chosen": "\n\nHuman: q\n\nAssistant: a1\n\nHuman: more?\n\nAssistant: yes",
             "rejected": "\n\nHuman: q\n\nAssistant: b1\n\nHuman: more?\n\nAssistant: no"}]
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = export(_export_args(tmp_path, pairs=str(prefs)))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    assert [t["data"]["pair_id"] for t in tasks] == ["one"]
    assert summary["skipped_rows"] == {"the sides part before the last reply (one reply each is labelled)": 1}


def test_export_from_candidates_refuses_a_repeated_question_id_and_skips_identical_responses(tmp_path):
    from rm_core.errors import UserInputError

    cands = tmp_path / "cands.jsonl"
    cands.write_text(json.dumps({"id": "q1", "prompt": "2+2?", "responses": ["4", " 4 ", "5"],
                                 "correct": [True, True, False]}) + "\n",
                     encoding="utf-8")
    summary = export(_export_args(tmp_path, pairs=None, candidates=str(cands)))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    assert sorted(t["data"]["pair_id"] for t in tasks) == ["q1:0-2", "q1:1-2"]
    assert summary["skipped_rows"] == {"identical responses (nothing to choose)": 1}
    cands.write_text("".join(json.dumps({"id": "q1", "prompt": p, "responses": ["4", "5"],
                                                  "correct": [True, False]}) + "\n"
                             for p in ("2+2?", "3+1?")), encoding="utf-8")
    with pytest.raises(UserInputError, match=r"cands.jsonl.*'q1'"):
        export(_export_args(tmp_path, pairs=None, candidates=str(cands), output_dir=str(tmp_path / "ls2")))
