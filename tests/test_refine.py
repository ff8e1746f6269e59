"""judges/refine.py: refinement keeps the best response by the judge (not the last), stops when a round does not
improve, passes feedback in matching tags, counts failures, and refines a file resumably into preference rows."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from judges.backends import Result
from judges.base import Judge, split_conversation
from judges.refine import main as refine_main
from judges.refine import preference_row, refine, refine_file


class ScriptedPolicy:
    """Answers in order from `answers` (None: a failed call, "timeout"); records every request."""

    name = "scripted-policy"

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[list[dict]] = []

    def generate(self, requests, max_new_tokens=256, temperature=0.0, seed=None):
        out = []
        for r in requests:
            self.requests.append(r)
            text = self.answers.pop(0)
            out.append(Result(text) if text is not None else Result(None, "timeout", "scripted"))
        return out


class TableJudge(Judge):
    """Pointwise: the score of a response is table[response] (absent: a failure)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def _score(self, conversations, references):
        out = []
        for i, c in enumerate(conversations):
            value = self.table.get(split_conversation(c)[1])
            if value is None:
                self.failures.add("not in the table", i)  # a judge counts why it failed
            out.append(value)
        return out


class LongerWins(Judge):
    """Pairwise only: P(a better) = 0.9 when a is longer, 0.1 when shorter."""

    pointwise = False

    def _compare(self, items):
        return [0.9 if len(a) > len(b) else 0.1 for _, a, b in items]


class CritiqueJudge(TableJudge):
    def critique(self, conversations, max_new_tokens=256):
        self.critique_budgets = [*getattr(self, "critique_budgets", []), max_new_tokens]
        return [f"too short: {len(split_conversation(c)[1])} chars" for c in conversations]


def test_the_best_is_returned_when_a_later_candidate_scores_worse():
    policy = ScriptedPolicy(["first", "better", "worse", "worst"])
    judge = TableJudge({"first": 0.1, "better": 0.8, "worse": 0.3, "worst": 0.2})
    out = refine(policy, judge, "Say something.", iterations=3, patience=3)
    assert [c.response for c in out.candidates] == ["first", "better", "worse", "worst"]
    assert [c.score for c in out.candidates] == [0.1, 0.8, 0.3, 0.2]
    assert out.best.response == "better" and out.best_index == 1  # not the last, as RM-Gallery returns
    assert [c.improved for c in out.candidates] == [True, True, False, False]
    assert out.stop_reason == "3 rounds done"


def test_stops_early_after_patience_rounds_without_improvement():
    policy = ScriptedPolicy(["first", "worse", "never asked"])
    out = refine(policy, TableJudge({"first": 0.5, "worse": 0.2}), "Q?", iterations=5, patience=1)
    assert len(out.candidates) == 2 and out.stop_reason == "no improvement in 1 round"
    assert policy.answers == ["never asked"] and out.best.response == "first"


def test_refine_prompt_numbers_response_and_feedback_tags_alike():
    policy = ScriptedPolicy(["one", "two", "three"])
    out = refine(policy, CritiqueJudge({"one": 0.1, "two": 0.2, "three": 0.3}), "Q?", iterations=2)
    assert out.best.response == "three"
    last = policy.requests[-1]
    assert last[0] == {"role": "user", "content": "Q?"} and last[-1]["role"] == "user"
    # roles alternate (Gemma's and Mistral's templates refuse two user turns in a row): the latest response first
    assert [m["role"] for m in last] == ["user", "assistant", "user"] and last[1]["content"] == "two"
    text = last[-1]["content"]
    for i, response in enumerate(["one", "two"], start=1):
        assert f"<response_{i}>\n{response}\n</response_{i}>" in text
        assert f"<feedback_{i}>\ntoo short: {len(response)} chars\n</feedback_{i}>" in text  # the judge's own words
    opened = re.findall(r"<response_(\d+)>", text)
    closed = re.findall(r"</response_(\d+)>", text)
    assert opened == closed == ["1", "2"]


def test_numeric_feedback_for_a_judge_without_words():
    policy = ScriptedPolicy(["a", "bb"])
    refine(policy, TableJudge({"a": 0.25, "bb": 0.5}), "Q?", iterations=1)
    assert "A reward model scored this response 0.250 (higher is better)." in policy.requests[1][-1]["content"]


def test_pairwise_judge_compares_with_the_best_so_far():
    policy = ScriptedPolicy(["short", "a longer one", "tiny", "the longest of them all"])
    out = refine(policy, LongerWins(), "Q?", iterations=3, patience=2)
    assert out.judge_mode == "pairwise"
    assert [c.score for c in out.candidates] == [None, 0.9, 0.1, 0.9]
    assert out.best.response == "the longest of them all"
    assert "better than the best earlier one" in out.candidates[1].feedback
    # the first response was not judged: the policy is not told the judge failed on it
    assert out.candidates[0].feedback == "A judge will compare the next response with this one."


def test_a_failed_generation_ends_the_refinement_and_keeps_the_best():
    policy = ScriptedPolicy(["first", None])
    out = refine(policy, TableJudge({"first": 0.4}), "Q?", iterations=3)
    assert out.stop_reason == "generation failed: timeout" and out.best.response == "first"
    assert out.candidates[-1].response is None and out.candidates[-1].error == "generation failed: timeout"


def test_an_empty_response_is_a_counted_stop_not_a_candidate():
    out = refine(ScriptedPolicy(["  "]), TableJudge({}), "Q?", iterations=2)
    assert out.best is None and out.stop_reason == "empty response"


def test_a_judge_failure_leaves_the_candidate_unscored_and_never_best():
    judge = TableJudge({"first": 0.4, "third": 0.3})
    out = refine(ScriptedPolicy(["first", "second", "third"]), judge, "Q?", iterations=2, patience=2)
    assert out.candidates[1].score is None and not out.candidates[1].improved
    assert out.best.response == "first" and judge.failures.total == 1
    assert out.candidates[1].feedback == "The judge could not score this response."


def test_first_response_given_is_judged_not_generated():
    policy = ScriptedPolicy(["improved"])
    out = refine(policy, TableJudge({"given": 0.1, "improved": 0.9}), "Q?", iterations=1, first_response="given")
    assert len(policy.requests) == 1 and out.best.response == "improved"
    assert preference_row("x", out.as_dict())["rejected"] == [{"role": "assistant", "content": "given"}]


def test_llm_judge_critique_reaches_the_policy():
    from judges.llm_judge import PointwiseLLMJudge

    seen = []

    def answer(request):
        seen.append(request[-1]["content"])
        return "Rating: 3" if "Rate how well" in request[-1]["content"] else "- Add the units."

    backend = ScriptedBackendFor(answer)
    judge = PointwiseLLMJudge(backend, principles=["State units."])
    policy = ScriptedPolicy(["5", "5 apples"])
    out = refine(policy, judge, "How many apples?", iterations=1, critique_max_new_tokens=40)
    assert out.candidates[0].feedback == "- Add the units."
    assert {n for text, n in backend.budgets if text.startswith("Review the response")} == {40}  # the critique budget
    assert "State units." in next(s for s in seen if s.startswith("Review the response"))  # principles in the critique
    assert "<feedback_1>\n- Add the units.\n</feedback_1>" in policy.requests[1][-1]["content"]


def test_a_rubric_judge_on_an_endpoint_drives_refinement_and_its_critique_reaches_the_policy(tmp_path):
    """Policy and judge both over loopback OpenAI-compatible servers: the pairwise judge reads a rubric set
    (judges.rubrics' format) in every verdict and critique; the third response loses to the second, so the second
    is the best and refinement stops after one round without improvement."""
    import judges
    from judges.backends import OpenAIBackend
    from judges.rubrics import FORMAT, VERSION
    from rm_core.testing import chat_reply, fake_openai, shown_pair

    rubric = "The answer names its units."
    path = tmp_path / "rubrics.json"
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "principles": [rubric]}), encoding="utf-8")
    quality = {"5": 0, "5 apples": 2, "5 rotten apples": 1}
    shown: list[str] = []

    def judge_side(hit, body):
        text = body["messages"][-1]["content"]
        shown.append(text)
        if pair := shown_pair(text):  # a verdict: the better response by `quality`
            return chat_reply("A" if quality[pair[0]] > quality[pair[1]] else "B")
        return chat_reply("- Say what the 5 counts.")

    answers = ["5", "5 apples", "5 rotten apples", "never asked"]

    def policy_side(hit, body):
        return chat_reply(answers.pop(0))

    with fake_openai() as judge_server, fake_openai() as policy_server:
        judge_server.behaviour, policy_server.behaviour = judge_side, policy_side
        judge = judges.load("openai:scripted-judge", mode="pairwise", base_url=judge_server.url, rubrics=str(path))
        policy = OpenAIBackend("scripted-policy", base_url=policy_server.url, timeout_s=5.0, max_retries=0)
        out = refine(policy, judge, "How many apples?", iterations=3, patience=1, temperature=0.0)
        policy_requests = [body["messages"] for _, body in policy_server.requests]

    assert [c.response for c in out.candidates] == ["5", "5 apples", "5 rotten apples"]
    assert out.best.response == "5 apples" and out.stop_reason == "no improvement in 1 round"
    assert [c.score for c in out.candidates] == [None, 1.0, 0.0]  # both orders agree each time
    assert answers == ["never asked"] and judge.failures.total == 0
    verdicts = [t for t in shown if "[Response A]" in t]
    critiques = [t for t in shown if "[Response A]" not in t]
    assert len(verdicts) == 4 and len(critiques) == 3  # two comparisons in both orders; a critique per candidate
    assert all(rubric in t for t in shown)  # the rubric set guides every verdict and every critique
    assert "<feedback_1>\n- Say what the 5 counts.\n</feedback_1>" in policy_requests[1][-1]["content"]
    assert "<response_2>\n5 apples\n</response_2>" in policy_requests[2][-1]["content"]


class ScriptedBackendFor:
    name = "scripted-judge"
    supports_choice_probs = False

    def __init__(self, answer):
        self.answer = answer

    def generate(self, requests, max_new_tokens=256, temperature=0.0, seed=None):
        self.budgets = [*getattr(self, "budgets", []), *[(r[-1]["content"][:20], max_new_tokens) for r in requests]]
        return [Result(self.answer(r)) for r in requests]


# ---------------------------------------------------------------- a file of prompts


def _args(tmp_path, **over):
    base = dict(policy="openai:scripted-policy", judge="openai:scripted-judge", judge_mode=None,
                prompts=str(tmp_path / "prompts.jsonl"), output_dir=str(tmp_path / "out"), iterations=1, patience=1,
                max_new_tokens=16, critique_max_new_tokens=16, temperature=0.0, limit=None, dtype="auto", overwrite=False)
    return argparse.Namespace(**{**base, **over})


def _prompts(tmp_path):
    rows = [{"id": "a", "prompt": "Q a?"}, {"id": "b", "prompt": [{"role": "user", "content": "Q b?"}]},
            {"id": "a", "prompt": "duplicate"}, {"prompt": ""}, {"no": "prompt"}, {"prompt": "Q c?"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_refine_file_resumes_and_writes_best_vs_first_preferences(tmp_path):
    _prompts(tmp_path)
    table = {"a1": 0.1, "a2": 0.9, "b1": 0.5, "b2": 0.2, "c1": 0.3, "c2": 0.6}
    # a killed run: prompt a finished and stored
    first = refine(ScriptedPolicy(["a1", "a2"]), TableJudge(table), "Q a?", iterations=1)
    out = tmp_path / "out"
    out.mkdir()
    from judges.refine import refinement_fingerprint
    from rm_core.resume import check_or_write_fingerprint

    args = _args(tmp_path)
    check_or_write_fingerprint(out, refinement_fingerprint(args))
    (out / "refinements.partial.jsonl").write_text(json.dumps({"id": "a", **first.as_dict()}) + "\n", encoding="utf-8")

    policy = ScriptedPolicy(["b1", "b2", "c1", "c2"])  # only b and c are asked for
    summary = refine_file(args, policy, TableJudge(table))
    assert policy.answers == [] and summary["prompts"] == 3
    assert summary["skipped_rows"] == {"duplicate id": 1, "prompt is empty": 1, "no prompt (text or messages)": 1}
    prefs = [json.loads(line) for line in (out / "preferences.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(p["id"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in prefs] == [
        ("a", "a2", "a1"), (prefs[1]["id"], "c2", "c1")]  # b did not improve: no pair
    from rm_core.args import DataArguments
    from rm_core.pipeline import load_preference_splits

    # training data as it stands: what every pairwise recipe reads, every row kept
    train, _, report = load_preference_splits(DataArguments(dataset_name=str(out / "preferences.jsonl"),
                                                            dataset_test_split=""))
    assert [(t["prompt"], t["chosen"], t["rejected"]) for t in train] == [
        ([{"role": "user", "content": "Q a?"}], p["chosen"], p["rejected"]) if p["id"] == "a"
        else ([{"role": "user", "content": "Q c?"}], p["chosen"], p["rejected"]) for p in prefs]
    assert report["train_pairs"] == 2 and report["train_skipped"]["skipped"] == 0
    assert summary["improved"] == 2 and summary["mean_first_score"] == pytest.approx((0.1 + 0.5 + 0.3) / 3)
    assert summary["mean_best_score"] == pytest.approx((0.9 + 0.5 + 0.6) / 3)
    assert not (out / "refinements.partial.jsonl").exists()
    assert len((out / "refinements.jsonl").read_text(encoding="utf-8").splitlines()) == 3


def test_refine_file_refuses_a_resume_with_other_settings(tmp_path):
    from rm_core.resume import ResumeError

    _prompts(tmp_path)
    judge = TableJudge({"x": 0.1, "y": 0.2, "z": 0.3, "w": 0.4})
    refine_file(_args(tmp_path, limit=1), ScriptedPolicy(["x", "y"]), judge)
    # a rerun keeps what is finished and refines only the prompts a larger --limit adds
    summary = refine_file(_args(tmp_path, limit=2), ScriptedPolicy(["z", "w"]), judge)
    assert summary["prompts"] == 2 and summary["improved"] == 2
    with pytest.raises(ResumeError, match="iterations"):
        refine_file(_args(tmp_path, limit=2, iterations=2), ScriptedPolicy([]), TableJudge({}))


def test_refine_file_refines_again_a_prompt_the_endpoint_failed_and_overwrite_clears_every_output(tmp_path):
    """A policy call that timed out stops that prompt's refinement: a rerun refines it again from the start (the
    reader takes its last row), and leaves the finished prompts alone. --overwrite removes every output of the
    earlier run, the preferences and summary included, before the new one starts."""
    _prompts(tmp_path)
    table = {"x": 0.1, "y": 0.9, "z": 0.2, "w": 0.8}
    summary = refine_file(_args(tmp_path, limit=2), ScriptedPolicy(["x", "y", None]), TableJudge(table))
    rows = [json.loads(line) for line in (tmp_path / "out" / "refinements.jsonl").read_text().splitlines()]
    assert [r["stop_reason"] for r in rows] == ["1 round done", "generation failed: timeout"]
    assert summary["improved"] == 1
    policy = ScriptedPolicy(["z", "w"])  # only the failed prompt is asked again
    summary = refine_file(_args(tmp_path, limit=2), policy, TableJudge(table))
    assert policy.answers == [] and summary["prompts"] == 2 and summary["improved"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "refinements.jsonl").read_text().splitlines()]
    assert [r["stop_reason"] for r in rows] == ["1 round done", "1 round done"]

    out = tmp_path / "out"
    assert (out / "preferences.jsonl").is_file() and (out / "summary.json").is_file()
    with pytest.raises(IndexError):  # a new run, killed at its first call (the scripted policy has no answer)
        refine_file(_args(tmp_path, limit=1, iterations=2, overwrite=True), ScriptedPolicy([]), TableJudge(table))
    assert sorted(p.name for p in out.iterdir()) == ["fingerprint.json", "refinements.partial.jsonl"]


def test_cli_names_a_missing_prompts_file(tmp_path, capsys):
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match="prompts missing/p.jsonl: no such file"):
        refine_main(["--policy", "llm:x/y", "--judge", "x/y", "--prompts", "missing/p.jsonl", "--output_dir",
                     str(tmp_path / "o")])


@pytest.mark.slow
def test_rm_refine_end_to_end_on_real_smollm2(tmp_path):
    """rm-refine with a real local policy and a real local judge (SmolLM2-135M-Instruct both: the pointwise LLM
    judge scores every candidate and writes the critique the policy is shown), for plumbing: every candidate is
    scored or its failure counted, the best is the best-scored, and the files are as documented."""
    from judges.refine import main
    from rm_core.models import SMOLLM2, resolve_model

    model = f"llm:{resolve_model(SMOLLM2)}"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": q}) + "\n" for i, q in
                               [("rain", "Write one sentence about rain."), ("sum", "What is 12 + 30?")]),
                       encoding="utf-8")
    out = tmp_path / "out"
    summary = main(["--policy", model, "--judge", model, "--judge_mode", "pointwise", "--prompts", str(prompts),
                    "--output_dir", str(out), "--iterations", "1", "--max_new_tokens", "32", "--critique_max_new_tokens", "32",
                    "--max_length", "1024",
                    "--dtype", "float32", "--max_failed_share", "1"])  # 135M often writes no rating: plumbing only
    rows = [json.loads(line) for line in (out / "refinements.jsonl").read_text(encoding="utf-8").splitlines()]
    assert summary["prompts"] == len(rows) == 2 and not (out / "refinements.partial.jsonl").exists()
    unscored = 0
    for row in rows:
        assert row["judge_mode"] == "pointwise" and 1 <= len(row["candidates"]) <= 2
        scores = [c["score"] for c in row["candidates"] if c["response"] is not None]
        assert all(s is None or 0.0 <= s <= 1.0 for s in scores)
        unscored += sum(s is None for s in scores)
        if row["best_index"] is not None:
            assert row["candidates"][row["best_index"]]["score"] == max(s for s in scores if s is not None)
    assert summary["judge_failures"]["total"] >= unscored  # every unscored candidate is a counted judge failure
    assert summary["failed"] == sum(r["stop_reason"].startswith(("generation failed", "judge failed")) for r in rows)
    prefs = (out / "preferences.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(prefs) == summary["improved"] <= 2


class FlakyJudge(TableJudge):
    """A judge whose endpoint times out for the responses in `timeouts` (counted as "timeout", as LLM judges do)."""

    def __init__(self, table, timeouts=()):
        super().__init__(table)
        self.timeouts = set(timeouts)

    def _score(self, conversations, references):
        out = []
        for i, c in enumerate(conversations):
            response = split_conversation(c)[1]
            if response in self.timeouts:
                self.failures.add("timeout", i)
                out.append(None)
            else:
                out.append(self.table[response])
        return out


def test_a_judge_failure_stops_the_refinement_with_the_judges_reason():
    policy = ScriptedPolicy(["first", "second", "third"])
    out = refine(policy, FlakyJudge({"first": 0.4, "third": 0.9}, timeouts={"second"}), "Q?", iterations=2,
                 patience=2)
    assert [c.response for c in out.candidates] == ["first", "second"] and policy.answers == ["third"]
    assert out.stop_reason == "judge failed: timeout" and out.best.response == "first"
    from judges.backends import is_transient

    assert is_transient(out.stop_reason)
    # the first candidate's judgement failing stops too; a failure the judge names no reason for is "no score"
    out = refine(ScriptedPolicy(["first", "second"]), TableJudge({"first": 0.4}), "Q?", iterations=1)
    assert out.stop_reason == "judge failed: not in the table"

    class Silent(Judge):
        def _score(self, conversations, references):
            return [None for _ in conversations]

    out = refine(ScriptedPolicy(["first", "second"]), Silent(), "Q?", iterations=1)
    assert out.stop_reason == "judge failed: no score" and out.best is None and len(out.candidates) == 1


def test_refine_file_refines_again_a_prompt_the_judge_timed_out_on(tmp_path):
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"id": "a", "prompt": "Q?"}) + "\n", encoding="utf-8")
    table = {"x": 0.1, "y": 0.9}
    summary = refine_file(_args(tmp_path), ScriptedPolicy(["x", "y"]), FlakyJudge(table, timeouts={"y"}))
    assert summary["stop_reasons"] == {"judge failed": 1} and summary["improved"] == 0
    summary = refine_file(_args(tmp_path), ScriptedPolicy(["x", "y"]), FlakyJudge(table))  # asked again
    assert summary["stop_reasons"] == {"1 round done": 1} and summary["improved"] == 1


def test_refine_file_refuses_a_prompts_file_with_no_usable_prompt(tmp_path):
    from rm_core.errors import UserInputError

    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": ""}) + "\n" + json.dumps({"no": 1}) + "\n",
                                            encoding="utf-8")
    with pytest.raises(UserInputError, match=r"prompts.jsonl: no prompt to refine \(1 prompt is empty, 1 no prompt"):
        refine_file(_args(tmp_path), ScriptedPolicy([]), TableJudge({}))
    assert not (tmp_path / "out").exists()
    (tmp_path / "prompts.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(UserInputError, match="prompts.jsonl"):
        refine_file(_args(tmp_path), ScriptedPolicy([]), TableJudge({}))


def test_malformed_prompts_are_skipped_and_counted_with_their_reason(tmp_path):
    from judges.refine import read_prompts

    rows = [{"id": 0, "prompt": "kept, id 0"}, {"prompt": [{"role": "user", "content": None}]},
            {"prompt": [{"role": "robot", "content": "q"}]},
            {"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prompts, skipped = read_prompts(str(tmp_path / "p.jsonl"))
    assert [p["id"] for p in prompts] == ["0"]  # an id of 0 is an id
    assert skipped == {"prompt[0] content must be a string": 1, "prompt[0] has unknown role 'robot'": 1,
                       "prompt must not end with an assistant message": 1}


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--temperature", "-1"),
                                         ("--max_new_tokens", "0"), ("--critique_max_new_tokens", "-5"),
                                         ("--max_length", "0"), ("--policy_timeout_s", "nan"),
                                         ("--policy_max_retries", "-1"), ("--judge_timeout_s", "0")])
def test_cli_refuses_bad_numbers_in_one_line(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        refine_main(["--policy", "openai:m", "--judge", "openai:m", "--prompts", "missing/p.jsonl", "--output_dir",
                     str(tmp_path / "o"), flag, value])
    assert info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_cli_refuses_scenario_auto_principles(tmp_path):
    from rm_core.errors import UserInputError

    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="scenario:auto"):
        refine_main(["--policy", "openai:m", "--judge", "openai:m", "--prompts", str(tmp_path / "p.jsonl"), "--output_dir",
                     str(tmp_path / "o"), "--judge_principles", "scenario:auto"])


def test_the_fingerprint_records_the_endpoint_openai_base_url_names(tmp_path, monkeypatch):
    from judges.refine import refinement_fingerprint

    args = _args(tmp_path, policy="openai:m", judge="openai:m")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    one = refinement_fingerprint(args)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:2/v1")
    assert refinement_fingerprint(args) != one  # another server under the same model name: no mixed store
    assert one["settings"]["policy_base_url"] == one["settings"]["judge_base_url"] == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize("flag, value, message", [("--iterations", "-1", "must be >= 0"),
                                                   ("--patience", "0", "must be >= 1"),
                                                   ("--limit", "0", "must be >= 1")])
def test_cli_refuses_bad_counts_before_loading_anything(tmp_path, flag, value, message):
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match=f"{flag} {value}: {message}"):
        refine_main(["--policy", "llm:x/y", "--judge", "x/y", "--prompts", "missing/p.jsonl", "--output_dir",
                     str(tmp_path / "o"), flag, value])


def _reply(text):
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}}]}, {}


def test_cli_exits_3_when_too_many_prompts_stop_on_a_failed_call_and_a_rerun_refines_them(tmp_path):
    """An openai: policy that times out (its own --policy_timeout_s, no retry) stops every prompt: the command writes
    its outputs, then stops with one line (exit 3) naming the failed share; once the endpoint answers, a rerun
    refines those prompts again and passes."""
    from rm_core.errors import TooManyFailedError
    from rm_core.testing import fake_openai

    rows = [{"id": "a", "prompt": "Q a?"}, {"id": "b", "prompt": "Q b?"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    policy_up = []

    def behaviour(hit, body):
        if body["model"] == "policy":
            return _reply(f"answer {hit}") if policy_up else "hang"
        return _reply("Rating: 7" if "Rate how well" in body["messages"][-1]["content"] else "Say more.")

    with fake_openai() as server:
        server.behaviour = behaviour
        argv = ["--policy", "openai:policy", "--policy_base_url", server.url, "--policy_timeout_s", "0.3",
                "--policy_max_retries", "0", "--judge", "openai:judge", "--judge_base_url", server.url,
                "--judge_mode", "pointwise", "--judge_max_retries", "0", "--prompts", str(tmp_path / "prompts.jsonl"),
                "--output_dir", str(tmp_path / "out"), "--iterations", "1"]
        with pytest.raises(TooManyFailedError, match=r"2 of 2 prompts failed \(100.0%\), more than "
                                                     r"--max_failed_share 0.05: .*rerun of the same command refines again the 2 a timeout"):
            refine_main(argv)
        summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
        assert summary["failed"] == 2 and summary["stop_reasons"] == {"generation failed": 2}
        assert refine_main(argv + ["--max_failed_share", "1"])["failed"] == 2  # still failing, but allowed
        policy_up.append(True)
        summary = refine_main(argv)
    assert summary["failed"] == 0 and summary["prompts"] == 2
    assert summary["stop_reasons"] == {"no improvement in 1 round": 2}  # both rated 7: the second is no better


def test_cli_refuses_an_endpoint_option_for_a_local_policy(tmp_path):
    from rm_core.errors import UserInputError

    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "Q?"}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"--policy_timeout_s: options of an openai: policy, not of llm:x/y"):
        refine_main(["--policy", "llm:x/y", "--judge", "x/y", "--prompts", str(tmp_path / "prompts.jsonl"),
                     "--output_dir", str(tmp_path / "o"), "--policy_timeout_s", "5"])
