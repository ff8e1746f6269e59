"""judges/rubrics.py against a scripted OpenAI-compatible server on loopback: the proposals, the judge's verdicts and
the revisions are chosen here, so the keep / revise / select logic is checked exactly."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from judges.backends import OpenAIBackend
from judges.base import PairVerdict
from judges.prompts import parse_themes
from judges.rubrics import (
    build,
    coding_rate,
    generate,
    load_rubrics,
    rubrics_for_pair,
    select,
    theme_principle,
    unit_rows,
)
from rm_core.testing import chat_reply, fake_openai, shown_pair

GOOD_RUBRIC = "Check that the final number is correct."
BAD_RUBRIC = "Prefer a friendly tone."


reply = chat_reply


class Script:
    """The LLM behind the fake server. Proposals: BAD_RUBRIC for prompts in `bad_first`, else GOOD_RUBRIC.
    Revisions: GOOD_RUBRIC unless the prompt is in `stubborn` (then BAD_RUBRIC again). The judge: with a rubric
    about the final number it picks the response holding the right answer ("5"); otherwise it always answers "A"
    (position bias: it fails one of the two orders). Structuring: two themes."""

    def __init__(self, bad_first=(), stubborn=()):
        self.bad_first, self.stubborn = set(bad_first), set(stubborn)
        self.log: list[tuple[str, str]] = []  # (kind, prompt text)

    def __call__(self, hit, body):
        text = body["messages"][-1]["content"]
        request = re.search(r"\[User request\]\n(.*?)\n\n", text, re.S).group(1) if "[User request]" in text else ""
        if "Organise them into at most" in text:
            self.log.append(("structure", ""))
            return reply("Here you are.\n**Theme 1:** Correctness of the answer\n- Tip: Check the final number.\n"
                         "- Tip 2: Recompute the arithmetic.\nTheme: Tone\n- Tip: Stay friendly.\nthanks")
        if "These rubrics were tried" in text:
            self.log.append(("revise", request))
            return reply(f"- {BAD_RUBRIC if request in self.stubborn else GOOD_RUBRIC}")
        if "short rules that a judge could use" in text:
            self.log.append(("propose", request))
            return reply(f"- {BAD_RUBRIC if request in self.bad_first else GOOD_RUBRIC}\n- {BAD_RUBRIC}\n- extra")
        a, _ = shown_pair(text)
        self.log.append(("judge", request))
        if "final number" in text:
            return reply("A" if "5" in a else "B")
        return reply("A")


PAIRS = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"What is 2 + 3? (case {i})"}],
          "chosen": [{"role": "assistant", "content": "It is 5."}],
          "rejected": [{"role": "assistant", "content": "It is 7."}]} for i in range(3)]


@pytest.fixture
def llm():
    with fake_openai() as server:
        yield server


def backend(server):
    return OpenAIBackend("scripted", base_url=server.url, timeout_s=5.0, max_retries=0)


def test_a_rubric_that_makes_the_judge_right_in_both_orders_is_kept_at_once(llm):
    llm.behaviour = script = Script()
    out = rubrics_for_pair(backend(llm), "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rubrics=1)
    assert out.passed and out.rounds == 1 and out.rubrics == [GOOD_RUBRIC]  # capped at max_rubrics
    assert [k for k, _ in script.log] == ["propose", "judge", "judge"]  # both orders judged


def test_a_failing_rubric_is_revised_with_the_judges_answers(llm):
    llm.behaviour = script = Script(bad_first={"What is 2 + 3? (case 0)"})
    out = rubrics_for_pair(backend(llm), "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rubrics=1)
    assert out.passed and out.rounds == 2 and out.rubrics == [GOOD_RUBRIC]
    assert out.history[0]["rubrics"] == [BAD_RUBRIC]
    # the position-biased judge ("A" both times) is right in one order only: never a pass
    assert sorted(out.history[0]["verdicts"]) == sorted([
        "with the better response shown first: it picked the better response (answered 'A')",
        "with the better response shown second: it picked the worse response (answered 'A')"])
    revise = next(req for kind, req in script.log if kind == "revise")
    assert revise == "What is 2 + 3? (case 0)"
    assert [k for k, _ in script.log] == ["propose", "judge", "judge", "revise", "judge", "judge"]


def test_rubrics_that_never_pass_are_dropped_and_the_last_evaluation_is_not_revised(llm):
    stuck = "What is 2 + 3? (case 0)"
    llm.behaviour = script = Script(bad_first={stuck}, stubborn={stuck})
    out = rubrics_for_pair(backend(llm), "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rounds=2,
                           max_rubrics=1)
    assert not out.passed and out.rubrics == [] and out.rounds == 2
    assert [k for k, _ in script.log] == ["propose", "judge", "judge", "revise", "judge", "judge"]


def test_an_unparsable_proposal_is_a_counted_error(llm):
    llm.behaviour = lambda hit, body: reply("I would rather not.")
    out = rubrics_for_pair(backend(llm), "p0", "Q?", "a", "b")
    assert out.error == "unparsable proposal" and out.rounds == 0 and not out.passed


def test_a_judge_that_never_answers_is_named_as_the_pairs_error_not_a_wrong_verdict(llm):
    script = Script()
    asks = ("short rules that a judge could use", "These rubrics were tried", "Organise them into at most")

    def behaviour(hit, body):  # the Script's proposals and revisions; a judge whose answers no grammar reads
        text = body["messages"][-1]["content"]
        return script(hit, body) if any(a in text for a in asks) else reply("I cannot decide.")

    llm.behaviour = behaviour
    out = rubrics_for_pair(backend(llm), "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rounds=2)
    assert not out.passed and out.rounds == 2 and out.error == "judge: unparsable verdict"


def leaning_judge(script: Script):
    """The Script's LLM, but judging by next-token probabilities (an endpoint with logprobs): P(A) is 0.8 whatever
    it is shown (a slot-A bias), moved 0.1 towards the response holding "5" under a rubric about the final number."""
    import math

    def behaviour(hit, body):
        if not body.get("logprobs"):
            return script(hit, body)
        text = body["messages"][-1]["content"]
        a, _ = shown_pair(text)
        script.log.append(("judge", ""))
        p_a = 0.8 + (0.0 if "final number" not in text else 0.1 if "5" in a else -0.1)
        top = [{"token": "A", "logprob": math.log(p_a)}, {"token": "B", "logprob": math.log(1 - p_a)}]
        return 200, {"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": top}]}}]}, {}

    return behaviour


def test_order_averaged_verification_lets_a_slot_biased_judge_pass_a_rubric_that_moves_it(llm):
    """The judge answers A with P >= 0.7 in every order, so no rubric ever wins both orders; averaged over the two
    orders, the good rubric's 0.9 and 0.3 for the better response give 0.6 (a pass), the bad rubric's 0.8 and 0.2
    give exactly 0.5 (a fail, a tie is never a pass)."""
    from judges.rubrics import passes

    stuck = "What is 2 + 3? (case 0)"
    llm.behaviour = leaning_judge(Script(bad_first={stuck}))
    judge_backend = OpenAIBackend("scripted", base_url=llm.url, timeout_s=5.0, max_retries=0, use_logprobs=True)
    strict = rubrics_for_pair(judge_backend, "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rubrics=1)
    assert not strict.passed and strict.rounds == 3
    averaged = rubrics_for_pair(judge_backend, "p0", PAIRS[0]["prompt"], "It is 5.", "It is 7.", max_rubrics=1,
                                verify="order_averaged")
    assert averaged.passed and averaged.rounds == 2 and averaged.rubrics == [GOOD_RUBRIC]
    assert [h["p_better"] for h in averaged.history] == [pytest.approx([0.8, 0.2]), pytest.approx([0.9, 0.3])]
    assert passes(PairVerdict(0.9, None), "order_averaged") is False  # a failed order is never a pass
    with pytest.raises(ValueError, match="verify must be one of"):
        rubrics_for_pair(judge_backend, "p0", "Q?", "a", "b", verify="one_order")


def test_generate_resumes_from_its_store_and_refuses_other_settings(llm, tmp_path):
    from rm_core.resume import ResumeError

    llm.behaviour = script = Script()
    store = tmp_path / "generate.partial.jsonl"
    fp = {"llm": "scripted", "settings": {"max_rounds": 2}}
    generate(backend(llm), PAIRS[:1], store, fp, max_rounds=2)
    asked = len(script.log)
    results = generate(backend(llm), PAIRS, store, fp, max_rounds=2)
    assert [r.id for r in results] == ["p0", "p1", "p2"] and all(r.passed for r in results)
    assert sum(1 for k, req in script.log[asked:] if k == "propose") == 2  # p0 was not asked again
    with pytest.raises(ResumeError, match="max_rounds"):
        generate(backend(llm), PAIRS, store, {"llm": "scripted", "settings": {"max_rounds": 3}})


def test_generate_asks_again_the_pairs_the_endpoint_failed(llm, tmp_path):
    """An endpoint outage is not a verdict on the pair: a rerun asks again the pairs whose proposal or judgement
    failed for the transport (the new row is appended; the reader takes the last), never the finished ones."""
    from rm_core.resume import read_jsonl_store

    store = tmp_path / "generate.partial.jsonl"
    fp = {"llm": "scripted", "settings": {"max_rounds": 2}}
    llm.behaviour = lambda hit, body: (503, {"error": {"message": "overloaded"}}, {})
    first = generate(backend(llm), PAIRS[:2], store, fp, max_rounds=2)
    assert [r.error for r in first] == ["HTTP 503", "HTTP 503"] and not any(r.passed for r in first)
    llm.behaviour = script = Script()
    again = generate(backend(llm), PAIRS, store, fp, max_rounds=2)
    assert all(r.passed and r.error is None for r in again)
    assert sum(1 for k, _ in script.log if k == "propose") == 3  # p0 and p1 again, p2 new
    assert [r["id"] for r in read_jsonl_store(store)] == ["p0", "p1", "p0", "p1", "p2"]
    generate(backend(llm), PAIRS, store, fp, max_rounds=2)
    assert sum(1 for k, _ in script.log if k == "propose") == 3  # all finished: nothing asked


def test_coding_rate_matches_the_formula_computed_directly():
    rng = np.random.default_rng(0)
    z = unit_rows(rng.normal(size=(4, 6)))
    n, d, eps = 4, 6, 0.1
    alpha = d / (n * eps ** 2)
    by_gram = 0.5 * np.log(np.linalg.det(np.eye(n) + alpha * z @ z.T))
    by_dim = 0.5 * np.log(np.linalg.det(np.eye(d) + alpha * z.T @ z))  # Sylvester: the same number
    by_singular_values = 0.5 * np.sum(np.log1p(alpha * np.linalg.svd(z, compute_uv=False) ** 2))
    assert coding_rate(z) == pytest.approx(by_gram) == pytest.approx(by_dim) == pytest.approx(by_singular_values)
    assert coding_rate(np.zeros((0, 6))) == 0.0
    one = unit_rows(np.ones((1, 6)))
    assert coding_rate(one) == pytest.approx(0.5 * np.log(1 + 6 / eps ** 2))  # one unit row: 1/2 log(1 + d/eps^2)


def test_selection_picks_the_diverse_rubrics_and_stops_at_a_near_duplicate():
    e = np.eye(4)
    rows = np.stack([e[0], e[0] + 0.01 * e[1], e[1], e[2]])  # row 1 nearly repeats row 0
    sel = select(rows, min_gain=0.05)
    assert sel.indices == [0, 2, 3] and "min_gain" in sel.stop_reason
    assert all(g > 0.05 for g in sel.gains)
    assert select(rows, max_selected=2).indices == [0, 2]
    # R can fall when a row joins (d/(n eps^2) shrinks as n grows): the near-duplicate's gain is below zero
    everything = select(rows, min_gain=float("-inf"))
    assert everything.indices == [0, 2, 3, 1] and everything.gains[-1] < 0
    with pytest.raises(ValueError, match="zero or not finite"):
        select(np.stack([e[0], np.zeros(4)]))


def test_parse_themes_reads_the_format_and_tolerates_markdown():
    text = "Intro\n**Theme 1:** Correctness\n- Tip: a\n* Tip 2: b\n- Tip: c\nTheme: correctness\n- Tip: dup\n" \
           "Theme: Tone\n1. Tip: friendly\n- not a tip"
    themes = parse_themes(text, max_themes=5, max_tips=2)
    assert themes == [{"theme": "Correctness", "tips": ["a", "b"]}, {"theme": "Tone", "tips": ["friendly"]}]
    assert parse_themes("no themes here", 5, 5) == []
    assert theme_principle(themes[0]) == "Correctness\n  - a\n  - b"


def _args(tmp_path, **over):
    base = dict(llm="openai:scripted", pairs=str(tmp_path / "pairs.jsonl"), output_dir=str(tmp_path / "out"),
                max_rounds=2, max_rubrics=1, max_selected=5, min_gain=0.05, max_themes=3, max_tips=3,
                embedding_model=None, seed=0, overwrite=False, judge_base_url=None, subsets=None, split="filtered",
                verify="both_orders")
    return argparse.Namespace(**{**base, **over})


def letters(texts):  # a deterministic sentence "embedding" for the test: letter counts
    return np.array([[t.lower().count(c) + 0.01 for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts])


def test_build_writes_a_rubric_set_every_llm_judge_reads(llm, tmp_path):
    import judges

    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    llm.behaviour = Script(bad_first={"What is 2 + 3? (case 1)"}, stubborn={"What is 2 + 3? (case 1)"})
    result = build(_args(tmp_path), backend(llm), PAIRS, embed=letters)
    assert result["stats"]["passed"] == 2 and result["candidates"] == [GOOD_RUBRIC]
    assert result["structured"] and result["principles"] == [
        "Correctness of the answer\n  - Check the final number.\n  - Recompute the arithmetic.", "Tone\n  - Stay friendly."]
    path = tmp_path / "out" / "rubrics.json"
    assert load_rubrics(path) == result["principles"]

    llm.behaviour = lambda hit, body: reply("A")
    judge = judges.load("openai:scripted", mode="pairwise", base_url=llm.url, rubrics=str(path))
    judge.compare("Q?", "x", "y")
    shown = llm.requests[-1][1]["messages"][-1]["content"]
    assert "Judge by these principles:\n- Correctness of the answer\n  - Check the final number." in shown


def test_too_many_failed_calls_exit_3_after_writing_the_rubric_set(llm, tmp_path):
    from rm_core.errors import TooManyFailedError

    script = Script()
    llm.behaviour = lambda hit, body: ((503, {"error": {"message": "overloaded"}}, {})
                                       if "(case 2)" in body["messages"][-1]["content"] else script(hit, body))
    with pytest.raises(TooManyFailedError, match=r"1 of 3 pairs failed \(33.3%\), more than --max_failed_share"):
        build(_args(tmp_path, max_failed_share=0.05), backend(llm), PAIRS, embed=letters)
    written = json.loads((tmp_path / "out" / "rubrics.json").read_text(encoding="utf-8"))
    assert written["stats"]["failed_calls"] == 1 and written["stats"]["passed"] == 2
    result = build(_args(tmp_path, max_failed_share=1.0), backend(llm), PAIRS, embed=letters)  # accepted
    assert result["stats"]["failures"] == {"HTTP 503": 1}


def test_overwrite_removes_the_rubric_set_of_the_run_before(llm, tmp_path):
    from rm_core.errors import UserInputError

    llm.behaviour = Script()
    build(_args(tmp_path), backend(llm), PAIRS, embed=letters)
    assert (tmp_path / "out" / "rubrics.json").is_file()
    stuck = {f"What is 2 + 3? (case {i})" for i in range(3)}
    llm.behaviour = Script(bad_first=stuck, stubborn=stuck)
    with pytest.raises(UserInputError, match="no rubric passed"):
        build(_args(tmp_path, overwrite=True), backend(llm), PAIRS, embed=letters)
    assert not (tmp_path / "out" / "rubrics.json").exists()  # not the old run's set, as if this run made it


def test_the_fingerprint_names_the_endpoint_openai_base_url_gives(llm, tmp_path, monkeypatch):
    from rm_core.resume import ResumeError

    llm.behaviour = Script()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    build(_args(tmp_path), backend(llm), PAIRS, embed=letters)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:2/v1")  # another server, the same model name
    with pytest.raises(ResumeError, match="judge_base_url"):
        build(_args(tmp_path), backend(llm), PAIRS, embed=letters)


def test_no_passing_rubric_is_one_clear_error(llm, tmp_path):
    from rm_core.errors import UserInputError

    stuck = {f"What is 2 + 3? (case {i})" for i in range(3)}
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    llm.behaviour = Script(bad_first=stuck, stubborn=stuck)
    with pytest.raises(UserInputError, match="no rubric passed on any of the 3 pairs"):
        build(_args(tmp_path), backend(llm), PAIRS, embed=letters)


def test_the_benchs_generation_summary_counts_each_judges_picks(llm, tmp_path):
    """bench/rubrics_llmbar's account of a run where nothing passed: the scripted judge always answers "A", so
    every evaluated round is "slot A both orders"; the unparsable proposal is a counted failure."""
    from bench.rubrics_llmbar import generation_summary, section

    stuck = {f"What is 2 + 3? (case {i})" for i in range(2)}
    script = Script(bad_first=stuck, stubborn=stuck)
    llm.behaviour = lambda hit, body: (reply("I would rather not.") if "(case 2)" in body["messages"][-1]["content"]
                                       and "short rules that a judge" in body["messages"][-1]["content"]
                                       else script(hit, body))
    generate(backend(llm), PAIRS, tmp_path / "generate.partial.jsonl", {"llm": "scripted"}, max_rounds=2)
    got = generation_summary(tmp_path)
    assert got == {"pairs": 3, "passed": 0, "failures": {"unparsable proposal": 1}, "evaluated_rounds": 4,
                   "picks": {"slot A both orders": 4}, "averaged_better": 0}
    text = section({"llm": "openai:scripted", "rubric_set": None, "generation": got, "seconds": {"rubrics": 1.0},
                    "load": {"start": [0.1], "end": [0.2]}})
    assert "none passed" in text and "cannot run the method" in text


@pytest.mark.parametrize("content, message", [
    ("not json", "not a readable JSON file"),
    (json.dumps({"format": "other"}), "not a rm-rubrics file"),
    (json.dumps({"format": "rm-rubrics", "version": 9, "principles": ["x"]}), "version 9"),
    (json.dumps({"format": "rm-rubrics", "version": 1, "principles": []}), "non-empty list"),
])
def test_a_bad_rubric_file_is_one_line_naming_it(tmp_path, content, message):
    from rm_core.errors import UserInputError

    path = tmp_path / "r.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserInputError, match=message):
        load_rubrics(path)


@pytest.mark.slow
def test_the_whole_path_on_real_smollm2_and_minilm(tmp_path):
    """`python -m judges.rubrics` with a real local LLM (SmolLM2-135M-Instruct proposes, judges in both orders,
    revises, organises) on two LLMBar pairs, then every later step on the real models whether or not a rubric
    passed (a 135M model seldom writes one that makes it right in both orders, so both documented endings of the
    command are accepted): MiniLM's embeddings and the coding-rate selection, the structuring call, a rubric set
    on disk read by a local judge whose prompt shows it."""
    import judges
    from judges.llm_judge import load_backend
    from judges.rubrics import FORMAT, VERSION, main, sentence_embedder, structure
    from rm_core.data import shared_data_dir
    from rm_core.errors import UserInputError
    from rm_core.models import SMOLLM2, resolve_model
    from rm_core.resume import read_jsonl_store

    llmbar, out = shared_data_dir() / "llmbar", tmp_path / "out"
    if not llmbar.is_dir():
        pytest.skip(f"LLMBar data {llmbar} is absent")
    model = f"llm:{resolve_model(SMOLLM2)}"
    argv = ["--llm", model, "--pairs", str(llmbar), "--subsets", "llmbar-natural", "--max_pairs", "2",
            "--max_rounds", "2", "--max_rubrics", "2", "--max_length", "1024", "--max_themes", "2",
            "--output_dir", str(out), "--dtype", "float32"]
    try:
        result = main(argv)
    except UserInputError as e:
        assert "no rubric passed on any of the 2 pairs" in str(e)
        result = None
    results = read_jsonl_store(out / "generate.partial.jsonl", repair=False)
    assert len(results) == 2 and len({r["id"] for r in results}) == 2
    for r in results:  # each pair was judged in both orders (revised when it failed), or its failure is named
        judged = [p for h in r["history"] for p in h["p_better"]]  # P(better) shown first, second; None: no verdict
        assert r["error"] or (len(r["history"]) == r["rounds"] and len(judged) == 2 * r["rounds"]
                              and all(p is None or 0.0 <= p <= 1.0 for p in judged)
                              and (r["passed"] or r["rounds"] == 2))
        assert r["passed"] == bool(r["rubrics"])
    if result is not None:
        assert result["stats"]["passed"] == sum(r["passed"] for r in results) >= 1
        assert load_rubrics(out / "rubrics.json") == result["principles"]

    # selection on MiniLM's real embeddings: the paraphrase of the first pick is the nearest row, and comes last
    texts = ["The final answer is correct.", "The final answer is right.", "The response is polite and friendly.",
             "The code compiles without errors."]
    z = sentence_embedder()(texts)
    assert z.shape == (4, 384) and np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert z[0] @ z[1] > max(z[0] @ z[2], z[0] @ z[3])
    sel = select(z)
    assert sel.indices == [0, 2, 3, 1] and all(g > 0 for g in sel.gains[:3])
    selected = [texts[i] for i in sel.indices[:3]]

    # the structuring call on the real LLM: themes in the plain format, or the documented "no theme" ending
    backend = load_backend(model, {"dtype": "float32", "max_length": 1024})
    themes, why = structure(backend, selected, max_themes=2, max_tips=2)
    assert (themes and why is None and all(t["theme"].strip() for t in themes)) or why == "no theme in the answer"

    # a rubric set on disk guides a local judge: the rubric is in the prompt it scores
    path = tmp_path / "rubrics.json"
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "principles": selected}), encoding="utf-8")
    judge = judges.load(model, mode="pairwise", rubrics=str(path), dtype="float32")
    shown = []
    method = "choice_probs" if judge.use_choice_probs else "generate"  # the call its verdicts come from
    original = getattr(judge.backend, method)

    def spy(requests, *a, **k):
        shown.extend(r[-1]["content"] for r in requests)
        return original(requests, *a, **k)

    setattr(judge.backend, method, spy)
    p = judge.compare("What is 2 + 3?", "5", "7")
    assert p is None or 0.0 <= p <= 1.0
    assert shown and all(all(t in s for t in selected) for s in shown)


@pytest.mark.parametrize("flag, value, message", [
    ("--max_pairs", "0", "0 is below 1"), ("--max_pairs", "-1", "-1 is below 1"), ("--max_rounds", "0", "0 is below 1"),
    ("--max_selected", "0", "0 is below 1"), ("--max_themes", "-1", "-1 is below 0"),
    ("--min_gain", "nan", "'nan' is not a finite number")])
def test_the_command_refuses_counts_that_would_silently_mean_all_or_nothing(tmp_path, capsys, flag, value, message):
    """--max_pairs 0 read every pair and -1 dropped the last; --max_rounds 0 was a traceback; --min_gain nan turned
    the stopping rule off: each is one line and exit 2, before anything is read."""
    from judges.rubrics import make_parser

    with pytest.raises(SystemExit) as stop:
        make_parser().parse_args(["--llm", "llm:x", "--pairs", str(tmp_path), "--output_dir", str(tmp_path / "o"),
                                  flag, value])
    assert stop.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err
