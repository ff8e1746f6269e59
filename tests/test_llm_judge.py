"""Prompted LLM judges: parsers, both-order pairwise judging, listwise validation, templates, principles,
the OpenAI-compatible backend against a real local HTTP server, and the local HF backend on a tiny model."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time

import pytest

from judges.backends import PROMPT_TOO_LONG, HFBackend, OpenAIBackend, ResponseCache, Result
from judges.base import conversation
from judges.llm_judge import (
    ListwiseLLMJudge,
    PairwiseLLMJudge,
    PointwiseLLMJudge,
    generate_principles,
    load_llm_judge,
)
from judges.prompts import (
    load_template,
    parse_principles,
    parse_ranking,
    parse_rating,
    parse_themes,
    parse_verdict,
)
from rm_core.testing import echo, fake_openai

# ---------------------------------------------------------------- parsers


def test_parse_themes_tips_of_a_repeated_theme_go_to_the_kept_one():
    text = "Theme: a\n- Tip: b\nTheme: c\n- Tip: d\nTheme: A\n- Tip: e about a\nTheme: C\n- Tip: f about c"
    assert parse_themes(text, max_themes=5, max_tips=5) == [
        {"theme": "a", "tips": ["b", "e about a"]}, {"theme": "c", "tips": ["d", "f about c"]}]
    # the kept theme's tip cap still holds; tips under an empty theme are dropped, not given to the one before
    assert parse_themes("Theme: a\n- Tip: 1\nTheme: x\nTheme: A\n- Tip: 2", 5, 1) == [
        {"theme": "a", "tips": ["1"]}, {"theme": "x", "tips": []}]
    assert parse_themes("Theme: a\n- Tip: 1\nTheme: **\n- Tip: stray", 5, 5) == [{"theme": "a", "tips": ["1"]}]


def test_parse_principles():
    text = "Here are principles:\n- Be **correct**.\n* Be concise.\n1. Answer the question asked.\n- be concise.\nOK"
    assert parse_principles(text, 5) == ["Be correct.", "Be concise.", "Answer the question asked."]
    assert parse_principles(text, 2) == ["Be correct.", "Be concise."]
    assert parse_principles("no list here", 5) == []


# ---------------------------------------------------------------- scripted backends


def shown(request: list[dict]) -> tuple[str, str]:
    """(Response A, Response B) as shown in a rendered default pairwise prompt."""
    from rm_core.testing import shown_pair

    return shown_pair(request[-1]["content"])


class ScriptedBackend:
    """Answers with `answer(request) -> str | None` (None: a failed call) or `probs(request) -> [pA, pB, pC]`,
    and records every request it received."""

    name = "scripted"

    def __init__(self, answer=None, probs=None):
        self.answer, self.probs = answer, probs
        self.supports_choice_probs = probs is not None
        self.calls: list[list[list[dict]]] = []

    def generate(self, requests, max_new_tokens=256, temperature=0.0, seed=None):
        self.calls.append(list(requests))
        texts = [self.answer(r) for r in requests]
        return [Result(t) if t is not None else Result(None, "timeout", "scripted") for t in texts]

    def choice_probs(self, requests, choices):
        assert list(choices) == ["A", "B", "C"]
        self.calls.append(list(requests))
        return [Result(self.probs(r)) for r in requests]


PROMPT = "What is 2 + 3?"
GOOD, BAD = "The answer is 5.", "The answer is 7."


def prefers_good(request):
    a, b = shown(request)
    return "A" if a == GOOD else "B" if b == GOOD else "C"


# ---------------------------------------------------------------- the answer grammar


# The answer grammar (judges/prompts.py, judges/README.md): the LAST non-empty line is the answer, in exactly the
# form the default prompt asks for; anything else is refused with a reason, never read as a tie or a default.
#   pairwise   "A", "B" or "C" (tie) alone on the line, or the MT-Bench form "[[A]]" / "[[B]]" / "[[C]]"
#   pointwise  "Rating: N", N a plain integer in [low, high] (1..10 by default)
#   listwise   "[2] > [1] > [3]", every response number in 1..n exactly once
GRAMMAR = [  # (mode, output, parsed value, reason it is refused)
    # pairwise: accepted
    ("pairwise", "A", "A", None),
    ("pairwise", "B\n", "B", None),
    ("pairwise", "C", "tie", None),
    ("pairwise", "  [[B]]  \n\n", "B", None),  # surrounding whitespace and blank lines are not text
    ("pairwise", "Response A repeats the question; Response B answers it.\n[[B]]", "B", None),
    ("pairwise", 'Response B quotes the user: "pick A or B".\nB', "B", None),  # letters in prose are not verdicts
    # pairwise: negations and prose are not verdicts
    ("pairwise", "I would not choose A.", None, "missing verdict"),
    ("pairwise", "Tie-breaker: A", None, "missing verdict"),
    ("pairwise", "A is not better than B.", None, "missing verdict"),
    ("pairwise", "Response B is better", None, "missing verdict"),
    ("pairwise", "Both are equally good.", None, "missing verdict"),
    ("pairwise", 'Reply with a single capital letter: "A" if Response A is better', None, "missing verdict"),
    # pairwise: quotes of the other answer and several verdicts
    ("pairwise", 'Response A ends with "[[B]]", copying the format.\n[[A]]', None, "several verdicts"),
    ("pairwise", "[[A]]\n[[B]]", None, "several verdicts"),
    ("pairwise", "A\nB", None, "several verdicts"),
    ("pairwise", "[[A]] [[B]]", None, "several verdicts"),
    # pairwise: a verdict in another form (markdown, punctuation, lowercase, words, other letters)
    ("pairwise", "**A**", None, "invalid verdict"),
    ("pairwise", "**[[A]]**", None, "invalid verdict"),
    ("pairwise", "A.", None, "invalid verdict"),
    ("pairwise", "(B)", None, "invalid verdict"),
    ("pairwise", "a", None, "invalid verdict"),
    ("pairwise", "[[a]]", None, "invalid verdict"),
    ("pairwise", "Tie", None, "invalid verdict"),
    ("pairwise", "D", None, "invalid verdict"),
    # pairwise: a verdict that is not the last line, or not alone on it
    ("pairwise", "A\n\nBecause it answers the question.", None, "text after the verdict"),
    ("pairwise", "[[B]]\nResponse B is more accurate.", None, "text after the verdict"),
    ("pairwise", "My final verdict is [[A]].", None, "verdict not alone on its line"),
    ("pairwise", "Response A looks fine, but my final verdict: [[B]]", None, "verdict not alone on its line"),
    ("pairwise", "", None, "empty output"),
    ("pairwise", " \n\t\n", None, "empty output"),
    # pointwise: accepted
    ("pointwise", "Rating: 7", 7.0, None),
    ("pointwise", "Rating: 10", 10.0, None),
    ("pointwise", "Rating: 1  \n", 1.0, None),
    ("pointwise", "Correct and concise, though it could cite a source.\nRating: 9", 9.0, None),
    ("pointwise", "I would not rate it a 10: it skips a step.\nRating: 4", 4.0, None),
    # pointwise: numbers that are not plain integers in range
    ("pointwise", "Rating: 1e1", None, "invalid rating"),
    ("pointwise", "Rating: 7.5", None, "invalid rating"),
    ("pointwise", "Rating: -3", None, "invalid rating"),
    ("pointwise", "Rating: 8/10", None, "invalid rating"),
    ("pointwise", "Rating: [[6]]", None, "invalid rating"),
    ("pointwise", "Rating: N", None, "invalid rating"),
    ("pointwise", "Rating: 11", None, "rating out of range"),
    ("pointwise", "Rating: 0", None, "rating out of range"),
    # pointwise: markdown, punctuation, lowercase
    ("pointwise", "**Rating: 8**", None, "invalid rating"),
    ("pointwise", "Rating: 8.", None, "invalid rating"),
    ("pointwise", "rating: 8", None, "invalid rating"),
    # pointwise: several ratings, not on the last line, no marker
    ("pointwise", "Rating: 3\n\nOn reflection, Rating: 5", None, "several ratings"),
    ("pointwise", "Ratings: 5\nRating: 7", None, "several ratings"),  # "Ratings:" is a rating too (7 was taken)
    ("pointwise", "Rating: 6\nIt solved 3/4 of the steps.", None, "text after the rating"),
    ("pointwise", "It solved 3/4 of the steps. Rating: 6", None, "rating not alone on its line"),
    ("pointwise", "7", None, "missing rating"),
    ("pointwise", "I'd give it a 9 out of 10", None, "missing rating"),
    ("pointwise", "**8/10**", None, "missing rating"),
    ("pointwise", "", None, "empty output"),
    # listwise (3 responses): accepted
    ("listwise", "[2] > [1] > [3]", [2, 1, 3], None),
    ("listwise", "[3]>[1]>[2]  \n", [3, 1, 2], None),
    ("listwise", "Response 2 is the most complete.\n[2] > [3] > [1]", [2, 3, 1], None),
    # listwise: refused
    ("listwise", "[2] > [2] > [3]", None, "invalid ranking"),  # a duplicate
    ("listwise", "[1] > [2]", None, "invalid ranking"),  # one missing
    ("listwise", "[1] > [4] > [2]", None, "invalid ranking"),  # an unknown number
    ("listwise", "[02] > [1] > [3]", None, "invalid ranking"),  # a leading zero, as ratings refuse one
    ("listwise", "2 > 1 > 3", None, "missing ranking"),
    ("listwise", "[2], [1], [3]", None, "missing ranking"),
    ("listwise", "Ranking: [1] > [3] > [2]. [1] is best because it is right.", None, "ranking not alone on its line"),
    ("listwise", "**[2] > [1] > [3]**", None, "ranking not alone on its line"),
    ("listwise", "[1] > [2] > [3]\n[2] > [1] > [3]", None, "several rankings"),
    ("listwise", "[2] > [1] > [3]\nResponse 2 is best.", None, "text after the ranking"),
]


def _judged(mode: str, text: str):
    """(what the judge made of `text`, the judge): through the real judge path, with a backend answering `text`."""
    backend = ScriptedBackend(lambda r: text)
    if mode == "pointwise":
        judge = PointwiseLLMJudge(backend, normalize=False)
        return judge.score([conversation(PROMPT, GOOD)])[0], judge
    if mode == "pairwise":
        judge = PairwiseLLMJudge(backend)
        (v,) = judge.judge_pairs([(PROMPT, GOOD, BAD)])
        return (v.p_forward if v.p is not None else None), judge
    judge = ListwiseLLMJudge(backend)
    return judge.rank(PROMPT, ["x", "y", "z"]), judge


@pytest.mark.parametrize("mode, text, expected, reason", GRAMMAR)
def test_answer_grammar(mode, text, expected, reason):
    parse = {"pairwise": parse_verdict, "pointwise": parse_rating, "listwise": lambda t: parse_ranking(t, 3)}[mode]
    assert parse(text) == expected
    what = {"pairwise": "verdict", "pointwise": "rating", "listwise": "ranking"}[mode]
    value, judge = _judged(mode, text)
    if reason is None:
        want = {"pairwise": lambda: {"A": 1.0, "B": 0.0, "tie": 0.5}[expected], "pointwise": lambda: expected,
                "listwise": lambda: [float(3 - expected.index(k)) for k in (1, 2, 3)]}[mode]()
        assert value == want and judge.failures.total == 0 and not judge.refused
        return
    # refused: a counted failure with the grammar's reason, never a tie or a default
    assert value is None or value == [None, None, None]
    assert judge.failures.counts == {f"unparsable {what}": 1}
    assert reason in judge.failures.examples[f"unparsable {what}"][0]
    assert judge.refused == {reason: 2 if mode == "pairwise" else 1}  # a pair: both orders answered `text`


def test_answer_grammar_table_is_broad():
    assert len(GRAMMAR) >= 30 and {m for m, *_ in GRAMMAR} == {"pairwise", "pointwise", "listwise"}


def test_parsers_on_missing_text_and_other_scales():
    assert parse_verdict(None) is None and parse_rating(None) is None and parse_ranking(None, 3) is None
    assert parse_rating("Rating: 4", low=1, high=5) == 4.0
    assert parse_rating("Rating: 7", low=1, high=5) is None  # out of the custom template's range
    assert parse_rating("Rating: 0", low=0, high=100) == 0.0
    assert parse_ranking("[1] > [2]", 2) == [1, 2] and parse_ranking("[1]", 1) == [1]


@pytest.mark.parametrize("mode", ["pointwise", "pairwise", "listwise"])
def test_default_prompts_ask_for_exactly_the_grammar(mode):
    """Each default prompt names the one form its parser accepts, and ends by asking for it."""
    template = load_template(None, mode)
    if mode == "pointwise":
        text = template.render(prompt="q", response="r", reference=None, principles=[])
        assert text.endswith('"Rating: N" where N is a whole number from 1 to 10, and nothing else.')
    elif mode == "pairwise":
        text = template.render(prompt="q", response_a="a", response_b="b", principles=[])
        assert 'Reply with a single capital letter and nothing else: "A" if Response A is better' in text
    else:
        text = template.render(prompt="q", responses=["x", "y", "z"], principles=[])
        assert "[1] > [2] > [3]" in text and "and nothing else" in text


def test_pairwise_judges_both_orders_in_one_batch():
    backend = ScriptedBackend(prefers_good)
    judge = PairwiseLLMJudge(backend)
    assert judge.compare_batch([(PROMPT, GOOD, BAD), (PROMPT, BAD, GOOD)]) == [1.0, 0.0]
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 4
    assert [shown(r) for r in backend.calls[0]] == [(GOOD, BAD), (BAD, GOOD), (BAD, GOOD), (GOOD, BAD)]
    assert judge.order_stats.as_dict() == {"pairs": 2, "inconsistent": 0, "inconsistency_rate": 0.0,
                                           "position_a_rate": 0.5}
    assert judge.failures.total == 0


def test_position_bias_cancels_and_is_measured():
    judge = PairwiseLLMJudge(ScriptedBackend(lambda r: "A"))  # always prefers the first position
    verdicts = judge.judge_pairs([(PROMPT, GOOD, BAD), (PROMPT, BAD, GOOD), (PROMPT, GOOD, GOOD)])
    assert [v.p for v in verdicts] == [0.5, 0.5, 0.5]
    assert [(v.p_forward, v.p_backward, v.consistent) for v in verdicts] == [(1.0, 0.0, False)] * 3
    assert judge.order_stats.inconsistent == 3 and judge.order_stats.inconsistency_rate == 1.0
    assert judge.order_stats.position_a_rate == 1.0
    assert verdicts[0].text_forward == "A" and verdicts[0].text_backward == "A"


def test_ties_are_consistent_only_with_ties():
    answers = iter(["C", "C", "C", "A"])
    judge = PairwiseLLMJudge(ScriptedBackend(lambda r: next(answers)))
    both_tie, tie_then_a = judge.judge_pairs([(PROMPT, GOOD, BAD), (PROMPT, GOOD, BAD)])
    assert (both_tie.p, both_tie.consistent) == (0.5, True)
    assert (tie_then_a.p_forward, tie_then_a.p_backward, tie_then_a.consistent) == (0.5, 0.0, False)
    assert tie_then_a.p == 0.25


def test_choice_probability_combination():
    def probs(request):
        return [0.7, 0.2, 0.1] if shown(request)[0] == GOOD else [0.4, 0.5, 0.1]

    backend = ScriptedBackend(answer=lambda r: pytest.fail("generated although probabilities exist"), probs=probs)
    judge = PairwiseLLMJudge(backend)
    assert judge.use_choice_probs
    (v,) = judge.judge_pairs([(PROMPT, GOOD, BAD)])
    assert v.p_forward == pytest.approx(0.75)  # P(A) + P(tie)/2 with a first
    assert v.p_backward == pytest.approx(0.55)  # 1 - (0.4 + 0.05): with a second, a wins when "B"
    assert v.p == pytest.approx(0.65) and v.consistent
    assert judge.order_stats.position_a_rate == pytest.approx((0.75 + 0.45) / 2)
    assert judge.compare(PROMPT, GOOD, BAD) == pytest.approx(0.65)
    # a custom template may ask for another answer format: "auto" then generates
    assert not PairwiseLLMJudge(backend, template="{{ prompt }} {{ response_a }} {{ response_b }}").use_choice_probs
    with pytest.raises(ValueError, match="no choice probabilities"):
        PairwiseLLMJudge(ScriptedBackend(prefers_good), use_choice_probs=True)


@pytest.mark.parametrize("bad_order", [0, 1])
def test_unparsable_verdict_in_either_order_fails_the_pair(bad_order):
    calls = iter(range(100))

    def answer(request):
        return "I cannot decide." if next(calls) == bad_order else prefers_good(request)

    judge = PairwiseLLMJudge(ScriptedBackend(answer))
    assert judge.compare_batch([(PROMPT, GOOD, BAD), (PROMPT, BAD, GOOD)]) == [None, 0.0]
    assert judge.failures.counts == {"unparsable verdict": 1}
    assert "I cannot decide" in judge.failures.examples["unparsable verdict"][0]
    assert judge.order_stats.pairs == 1  # the failed pair is not in the position statistics


def test_backend_failure_is_counted_with_its_reason():
    judge = PairwiseLLMJudge(ScriptedBackend(lambda r: None))
    (v,) = judge.judge_pairs([(PROMPT, GOOD, BAD)])
    assert v.p is None and v.error == "timeout" and v.consistent is None
    assert judge.failures.counts == {"timeout": 1}  # one failed pair, one failure


def test_pointwise_ratings_normalised_and_failures_counted():
    answers = {GOOD: "Rating: 10", BAD: "Rating: 1", "meh": "Rating: 11", "chatty": "I think it is fine."}
    backend = ScriptedBackend(lambda r: next(v for k, v in answers.items() if f"[Response]\n{k}\n" in r[-1]["content"]))
    judge = PointwiseLLMJudge(backend)
    convs = [conversation(PROMPT, r) for r in (GOOD, BAD, "meh", "chatty")]
    assert judge.score(convs) == [1.0, 0.0, None, None]
    assert judge.failures.counts == {"unparsable rating": 2}
    assert len(backend.calls) == 1  # one batch
    assert PointwiseLLMJudge(backend, normalize=False).score(convs[:1]) == [10.0]
    assert judge.compare(PROMPT, GOOD, BAD) == pytest.approx(1 / (1 + math.exp(-1)))


def test_pointwise_reference_reaches_the_template():
    backend = ScriptedBackend(lambda r: "Rating: 5")
    PointwiseLLMJudge(backend).score([conversation(PROMPT, GOOD)], references=["5"])
    assert "[Reference answer]\n5\n" in backend.calls[0][0][-1]["content"]
    PointwiseLLMJudge(backend).score([conversation(PROMPT, GOOD)])
    assert "Reference" not in backend.calls[1][0][-1]["content"]


def test_listwise_ranking_scores_and_validation():
    backend = ScriptedBackend(lambda r: "[2] > [1] > [3]")
    judge = ListwiseLLMJudge(backend)
    assert judge.rank(PROMPT, ["x", "y", "z"]) == [2.0, 3.0, 1.0]
    assert "[Response 3]\nz" in backend.calls[0][0][-1]["content"]
    assert judge.rank(PROMPT, ["only"]) == [1.0] and len(backend.calls) == 1  # nothing to ask
    # a response of several turns is shown labelled, as the pairwise prompt shows it (it was a Python repr), and a
    # response that is no text is refused, never ranked
    turns = [{"role": "assistant", "content": "u1"}, {"role": "user", "content": "u2"},
             {"role": "assistant", "content": "done"}]
    judge.rank(PROMPT, ["x", turns, "z"])
    assert "[Response 2]\nAssistant: u1\n\nUser: u2\n\nAssistant: done" in backend.calls[-1][0][-1]["content"]
    for bad in (None, 42):
        with pytest.raises(ValueError, match="a response is a string or a list"):
            judge.rank(PROMPT, ["x", bad, "z"])

    dup = ListwiseLLMJudge(ScriptedBackend(lambda r: "[2] > [2] > [3]"))
    assert dup.rank(PROMPT, ["x", "y", "z"]) == [None, None, None]
    assert dup.failures.counts == {"unparsable ranking": 1}

    failed = ListwiseLLMJudge(ScriptedBackend(lambda r: None))
    assert failed.rank_many([(PROMPT, ["x", "y"]), (PROMPT, ["x", "y", "z"])]) == [[None, None], [None] * 3]
    assert failed.failures.counts == {"timeout": 2}
    # a group of one asks nothing: the failure names its own group, not its place among the requests
    after_one = ListwiseLLMJudge(ScriptedBackend(lambda r: None))
    after_one.rank_many([(PROMPT, ["only"]), (PROMPT, ["x", "y"])])
    assert [e.split(":")[0] for e in after_one.failures.examples["timeout"]] == ["#1"]


@pytest.mark.parametrize("value", ["false", "no", "atuo", None])
def test_use_choice_probs_takes_true_false_or_auto_only(value):
    """A typo or "false" was truthy: probabilities read after a custom template whose answer starts "[[" ."""
    with pytest.raises(ValueError, match="use_choice_probs must be True, False or 'auto'"):
        PairwiseLLMJudge(ScriptedBackend(probs=lambda r: [0.5, 0.5, 0.0]), use_choice_probs=value)


def test_a_verdict_needs_enough_probability_on_the_choices():
    """Choice probabilities renormalised over A/B/C however little they hold made a refusal ("I cannot ...": P(I)
    0.98) a confident verdict; below min_choice_mass it is a counted failure."""
    refusal = ScriptedBackend(probs=lambda r: [0.002, 0.0005, 0.0])  # the rest of the mass on other tokens
    judge = PairwiseLLMJudge(refusal)
    assert judge.min_choice_mass == 0.1 and judge.judge_pairs([(PROMPT, GOOD, BAD)])[0].p is None
    assert judge.failures.counts == {"answer not among the choices": 1}
    lenient = PairwiseLLMJudge(ScriptedBackend(probs=lambda r: [0.002, 0.0005, 0.0]), min_choice_mass=0.0)
    assert lenient.judge_pairs([(PROMPT, GOOD, BAD)])[0].p_forward == pytest.approx(0.8)  # 0.002 / 0.0025
    half = PairwiseLLMJudge(ScriptedBackend(probs=lambda r: [0.3, 0.1, 0.2]))  # mass 0.6: read, renormalised
    assert half.judge_pairs([(PROMPT, GOOD, BAD)])[0].p_forward == pytest.approx((0.3 + 0.1) / 0.6)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="min_choice_mass must be a probability"):
            PairwiseLLMJudge(ScriptedBackend(probs=lambda r: [0.5, 0.5, 0.0]), min_choice_mass=bad)


def test_sampling_and_choice_probabilities_do_not_mix():
    """Choice probabilities ignore temperature: with one asked for, "auto" generates verdicts, and True refuses."""
    backend = ScriptedBackend(lambda r: "[[A]]", probs=lambda r: [0.9, 0.1, 0.0])
    assert PairwiseLLMJudge(backend).use_choice_probs
    assert not PairwiseLLMJudge(backend, temperature=0.7).use_choice_probs
    with pytest.raises(ValueError, match="temperature does not apply"):
        PairwiseLLMJudge(backend, temperature=0.7, use_choice_probs=True)


def test_listwise_rank_with_aggregation_uses_the_pairwise_prompt():
    backend = ScriptedBackend(prefers_good)
    scores = ListwiseLLMJudge(backend).rank(PROMPT, [BAD, GOOD], method="bt")
    assert scores[1] > scores[0]
    assert len(backend.calls[0]) == 2 and "[Response A]" in backend.calls[0][0][-1]["content"]


# ---------------------------------------------------------------- templates and principles


def test_custom_template_string_file_and_strict_undefined(tmp_path):
    import jinja2

    template = "Q={{ prompt }} A={{ response_a }} B={{ response_b }} P={{ principles | join(';') }}"
    backend = ScriptedBackend(lambda r: "A")
    PairwiseLLMJudge(backend, template=template, principles=["Be right", "Be brief"]).compare(PROMPT, GOOD, BAD)
    assert backend.calls[0][0] == [{"role": "user", "content": f"Q={PROMPT} A={GOOD} B={BAD} P=Be right;Be brief"}]

    path = tmp_path / "judge.jinja"
    path.write_text("From a file: {{ response_a }} vs {{ response_b }}")
    PairwiseLLMJudge(backend, template=path).compare(PROMPT, GOOD, BAD)
    assert backend.calls[1][0][-1]["content"] == f"From a file: {GOOD} vs {BAD}"
    with pytest.raises(FileNotFoundError):
        PairwiseLLMJudge(backend, template=str(tmp_path / "missing.jinja"))

    with pytest.raises(jinja2.UndefinedError, match="respnse_a"):
        PairwiseLLMJudge(backend, template="{{ respnse_a }} {{ response_b }}").compare(PROMPT, GOOD, BAD)
    with pytest.raises(jinja2.exceptions.SecurityError):
        load_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", "pairwise").render()


def test_principles_are_rendered_as_a_rubric():
    backend = ScriptedBackend(lambda r: "A")
    PairwiseLLMJudge(backend, principles=["Prefer correct arithmetic."]).compare(PROMPT, GOOD, BAD)
    assert "Judge by these principles:\n- Prefer correct arithmetic.\n" in backend.calls[0][0][-1]["content"]
    PairwiseLLMJudge(backend).compare(PROMPT, GOOD, BAD)
    assert "principles" not in backend.calls[1][0][-1]["content"]


def _principle_backend(helpful: bool):
    """Writes two principles when asked; as a judge it is always right when it sees them (if `helpful`)
    and always says "A" (position bias, agreement 0.5) without them."""

    def answer(request):
        text = request[-1]["content"]
        if "[Better response]" in text:
            return "Sure:\n- Prefer correct arithmetic.\n- Be concise."
        if helpful and "Prefer correct arithmetic." in text:
            return prefers_good(request)
        return "A"

    return ScriptedBackend(answer)


def test_generate_principles_kept_only_when_they_raise_heldout_agreement():
    labelled = [(PROMPT, GOOD, BAD)] * 3
    heldout = [(PROMPT, GOOD, BAD), (PROMPT, GOOD, BAD)]
    report = generate_principles(_principle_backend(helpful=True), labelled, heldout)
    assert report.kept and report.principles == ["Prefer correct arithmetic.", "Be concise."]
    # without principles the stub ties every pair: a tie counts wrong (rm_core.metrics), not half right
    assert (report.agreement_with, report.agreement_without, report.n_heldout) == (1.0, 0.0, 2)

    report = generate_principles(_principle_backend(helpful=False), labelled, heldout)
    assert not report.kept and report.principles == []
    assert (report.agreement_with, report.agreement_without) == (0.0, 0.0)
    assert report.candidates == [["Prefer correct arithmetic.", "Be concise."]]
    assert "did not raise" in report.message


# ---------------------------------------------------------------- OpenAI-compatible backend, real HTTP


@pytest.fixture
def server():
    with fake_openai() as srv:
        yield srv


def ask(*texts: str) -> list[list[dict]]:
    return [[{"role": "user", "content": t}] for t in texts]


def fast_backend(server, **kwargs) -> OpenAIBackend:
    kwargs = {"timeout_s": 5.0, "backoff_s": 0.01, "max_retries": 3, **kwargs}
    return OpenAIBackend("test-model", base_url=server.url, **kwargs)


def test_openai_5xx_is_retried_with_exponential_backoff(server):
    server.behaviour = lambda hit, body: (500, "overloaded", {}) if hit <= 2 else echo(body)
    backend = fast_backend(server, backoff_s=0.1)
    start = time.perf_counter()
    (result,) = backend.generate(ask("hi"))
    elapsed = time.perf_counter() - start
    assert result == Result("echo: hi") and server.hits == 3
    assert 0.15 <= elapsed < 1.5  # waited 0.1 * [0.5, 1] then 0.2 * [0.5, 1]
    assert server.requests[0][1] == {"model": "test-model", "messages": ask("hi")[0], "max_tokens": 256, "temperature": 0.0}


def test_openai_gives_up_after_max_retries(server):
    server.behaviour = lambda hit, body: (503, "down", {})
    (result,) = fast_backend(server, max_retries=2).generate(ask("hi"))
    assert server.hits == 3
    assert result.value is None and result.error == "HTTP 503" and "after 3 attempts" in result.detail


def test_openai_retry_after_is_honoured_and_capped(server):
    server.behaviour = lambda hit, body: (429, "slow down", {"Retry-After": "0.4"}) if hit == 1 else echo(body)
    start = time.perf_counter()
    assert fast_backend(server).generate(ask("hi"))[0].ok
    assert time.perf_counter() - start >= 0.4  # the server's wait, not backoff_s=0.01

    server.behaviour = lambda hit, body: (429, "slow down", {"Retry-After": "3600"}) if hit == 3 else echo(body)
    start = time.perf_counter()
    assert fast_backend(server, max_backoff_s=0.2).generate(ask("hi"))[0].ok
    assert 0.2 <= time.perf_counter() - start < 2.0


def test_one_unreadable_answer_fails_its_item_only(server):
    """A body that does not decode, a choice of the wrong shape: that item's failure, never the batch's (the good
    item keeps its answer)."""
    def behaviour(hit, body):
        text = body["messages"][0]["content"]
        if text == "gzip":
            return 200, "not gzip at all", {"Content-Encoding": "gzip"}
        if text == "shape":
            return 200, {"choices": ["oops"]}, {}
        return echo(body)

    server.behaviour = behaviour
    good, gzip, shape = fast_backend(server, max_retries=0).generate(ask("hi", "gzip", "shape"))
    assert good == Result("echo: hi")
    assert gzip.error == "connection error" and shape.error == "malformed response"


def test_an_api_key_an_endpoint_echoes_is_never_kept(server, monkeypatch):
    """Failure examples go to results.json and /health: a 401 body that repeats the key shows *** instead."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-SECRET123")
    server.behaviour = lambda hit, body: (401, '{"error": "invalid key Bearer sk-live-SECRET123"}', {})
    (result,) = fast_backend(server).generate(ask("hi"))
    assert result.error == "HTTP 401" and "SECRET123" not in result.detail and "Bearer ***" in result.detail


def test_a_nan_or_impossible_logprob_is_a_malformed_answer_never_cached(server, tmp_path):
    import math

    def answer(logprob):
        top = [{"token": "A", "logprob": logprob}, {"token": "B", "logprob": -1.0}]
        return 200, {"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": top}]}}]}, {}

    for bad in (float("nan"), 1000.0):
        server.behaviour = lambda hit, body, bad=bad: answer(bad)
        backend = fast_backend(server, max_retries=0, cache_dir=str(tmp_path / f"c{bad}"), use_logprobs=True)
        (result,) = backend.choice_probs(ask("q"), ["A", "B"])
        assert result.error == "malformed response" and len(backend.cache) == 0
    server.behaviour = lambda hit, body: answer(math.log(0.75))
    (result,) = fast_backend(server, use_logprobs=True).choice_probs(ask("q"), ["A", "B"])
    assert result.value == pytest.approx([0.75, math.exp(-1)])  # each choice's probability, not renormalised


def test_http_408_is_retried_and_501_is_not(server):
    server.behaviour = lambda hit, body: (408, "request timeout", {}) if hit == 1 else echo(body)
    assert fast_backend(server).generate(ask("hi"))[0].ok and server.hits == 2
    server.behaviour = lambda hit, body: (501, "not implemented", {})
    hits = server.hits
    assert fast_backend(server).generate(ask("hi"))[0].error == "HTTP 501" and server.hits == hits + 1


def test_openai_other_4xx_is_not_retried(server):
    server.behaviour = lambda hit, body: (400, '{"error": "context length exceeded"}', {})
    (result,) = fast_backend(server).generate(ask("hi"))
    assert server.hits == 1
    assert result.error == "HTTP 400" and "context length exceeded" in result.detail


@pytest.mark.parametrize("how", ["hang", "trickle"])
def test_openai_timeouts_are_retried_then_counted(server, how):
    server.behaviour = lambda hit, body: how
    judge = PairwiseLLMJudge(fast_backend(server, timeout_s=0.3, max_retries=1))
    start = time.perf_counter()
    assert judge.compare(PROMPT, GOOD, BAD) is None
    elapsed = time.perf_counter() - start
    assert server.hits == 4  # both orders, each tried twice
    assert 0.55 <= elapsed < 2.5  # each order: two attempts of 0.3 s (in parallel with the other order)
    assert judge.failures.counts == {"timeout": 1}


def test_openai_connection_errors_are_retried_then_counted():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff_s=0.01)
    (result,) = backend.generate(ask("hi"))
    assert result.error == "connection error" and "after 3 attempts" in result.detail


def test_openai_bounded_concurrency_and_order(server):
    def slow(hit, body):
        time.sleep(0.15)
        return echo(body)

    server.behaviour = slow
    prompts = [f"prompt {i}" for i in range(10)]
    results = fast_backend(server, max_concurrency=3).generate(ask(*prompts))
    assert [r.value for r in results] == [f"echo: {p}" for p in prompts]
    assert server.max_in_flight == 3  # bounded, and really concurrent


def test_openai_waiting_for_a_slot_does_not_count_against_the_timeout(server):
    def slow(hit, body):
        time.sleep(0.25)
        return echo(body)

    server.behaviour = slow
    results = fast_backend(server, max_concurrency=1, timeout_s=0.4, max_retries=0).generate(ask("a", "b", "c"))
    assert [r.error for r in results] == [None, None, None]  # the third waited 0.5 s for its turn
    assert server.hits == 3


def test_openai_cache_resumes_and_never_pays_twice(server, tmp_path):
    prompts = [f"prompt {i}" for i in range(6)]
    first = fast_backend(server, cache_dir=tmp_path).generate(ask(*prompts[:3]))  # a run killed halfway
    assert server.hits == 3
    backend = fast_backend(server, cache_dir=tmp_path)  # a new process
    resumed = backend.generate(ask(*prompts))
    assert server.hits == 6  # paid only for the rest
    assert resumed[:3] == first
    assert fast_backend(server, cache_dir=tmp_path).generate(ask(*prompts)) == resumed
    assert server.hits == 6  # a full rerun: zero calls
    backend.generate(ask(*prompts), temperature=0.7)
    backend.generate(ask(*prompts), max_new_tokens=8)
    assert server.hits == 18  # other sampling settings are other cache entries
    elsewhere = OpenAIBackend("test-model", base_url=server.url.replace("127.0.0.1", "localhost"), timeout_s=5.0,
                              cache_dir=tmp_path)
    elsewhere.generate(ask(*prompts))
    assert server.hits == 24  # the same model name at another endpoint may be another model: asked again


def test_openai_cache_keeps_successes_only(server, tmp_path):
    server.behaviour = lambda hit, body: (400, "bad", {}) if "bad" in body["messages"][0]["content"] else echo(body)
    backend = fast_backend(server, cache_dir=tmp_path)
    assert [r.ok for r in backend.generate(ask("good 1", "bad", "good 2"))] == [True, False, True]
    assert len(backend.cache) == 2
    backend.generate(ask("good 1", "bad", "good 2"))
    assert server.hits == 4  # only the failed call was made again


def test_response_cache_key_and_persistence(tmp_path):
    messages = ask("hi")[0]
    key = ResponseCache.key("m", "generate", messages, {"temperature": 0.0, "max_tokens": 5})
    assert key == ResponseCache.key("m", "generate", messages, {"max_tokens": 5, "temperature": 0.0})
    assert key != ResponseCache.key("m2", "generate", messages, {"temperature": 0.0, "max_tokens": 5})
    assert key != ResponseCache.key("m", "generate", messages, {"temperature": 0.0, "max_tokens": 6})
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key, "stored")
    cache.close()
    assert ResponseCache(tmp_path / "c.sqlite").get(key) == "stored"


def test_openai_backoff_delays_are_exponential_jittered_and_capped():
    backend = OpenAIBackend("m", base_url="http://localhost:1/v1", backoff_s=1.0, max_backoff_s=4.0)
    for attempt, full in enumerate([1, 2, 4, 4, 4]):
        delays = [backend._delay(attempt, None) for _ in range(50)]
        assert all(0.5 * full <= d <= full for d in delays) and len(set(delays)) > 1
    assert backend._delay(0, 2.5) == 2.5 and backend._delay(0, 60.0) == 4.0


def test_openai_api_key(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIBackend("m")
    with pytest.raises(ValueError, match="MY_KEY"):
        OpenAIBackend("m", base_url="https://api.example.com/v1", api_key_env="MY_KEY")
    fast_backend(server).generate(ask("hi"))  # a local server needs no key
    assert "Authorization" not in server.requests[-1][0]
    monkeypatch.setenv("MY_KEY", "sk-test")
    fast_backend(server, api_key_env="MY_KEY").generate(ask("hi"))
    assert server.requests[-1][0]["Authorization"] == "Bearer sk-test"


def test_openai_configuration_errors_are_one_line_from_a_command(tmp_path, monkeypatch, capsys):
    """No key, a key over plain http, impossible numbers: UserInputErrors (still ValueErrors), so eval_reward_bench
    --model openai:gpt-4o without $OPENAI_API_KEY prints one line and exits 2, not a traceback."""
    from eval.reward_bench import main
    from rm_core.errors import UserInputError

    _no_network(monkeypatch)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MY_KEY", "sk-secret")
    with pytest.raises(UserInputError, match="plain http"):
        OpenAIBackend("m", base_url="http://judge.invalid/v1", api_key_env="MY_KEY")
    with pytest.raises(UserInputError, match=r"^need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0$"):
        OpenAIBackend("m", base_url="https://judge.invalid/v1", api_key_env="MY_KEY", timeout_s=0)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "q", "chosen": "yes", "rejected": "no"}) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["--model", "openai:gpt-4o", "--dataset", str(data), "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: no API key: set $OPENAI_API_KEY (an empty key is allowed only for a local server, and "
        "https://api.openai.com/v1 is not one)"]


def _no_network(monkeypatch):
    """Any name lookup or connection from here on fails the test."""
    def refuse(*args, **kwargs):
        pytest.fail("the backend reached for the network before refusing")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("url, host", [("http://judge.invalid:8000/v1", "judge.invalid"), ("http://10.1.2.3/v1", "10.1.2.3"),
                                       ("HTTP://Judge.Invalid/v1", "judge.invalid"),
                                       ("http://[2001:db8::1]:8000/v1", "2001:db8::1")])
def test_openai_refuses_a_key_over_plain_http_to_another_host(url, host, monkeypatch):
    _no_network(monkeypatch)
    monkeypatch.setenv("MY_KEY", "sk-secret")
    with pytest.raises(ValueError) as caught:
        OpenAIBackend("m", base_url=url, api_key_env="MY_KEY")
    message = str(caught.value)
    assert "\n" not in message and "--judge_allow_insecure_http" in message and "sk-secret" not in message
    assert host in message
    # told to, it sends the key (nothing is sent here: the constructor makes no request)
    backend = OpenAIBackend("m", base_url=url, api_key_env="MY_KEY", allow_insecure_http=True)
    assert backend._headers == {"Authorization": "Bearer sk-secret"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.3.2.1/v1", "http://localhost:8000/v1",
                                 "http://[::1]:8000/v1", "https://judge.invalid/v1"])
def test_openai_key_over_loopback_http_or_https_is_fine(url, monkeypatch):
    _no_network(monkeypatch)
    monkeypatch.setenv("MY_KEY", "sk-secret")
    assert OpenAIBackend("m", base_url=url, api_key_env="MY_KEY")._headers == {"Authorization": "Bearer sk-secret"}


def test_openai_without_a_key_plain_http_is_fine(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "")
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_KEY")
    assert backend._headers == {}
    monkeypatch.setenv("MY_KEY", "sk-secret")
    fast_backend(server, api_key_env="MY_KEY").generate(ask("hi"))  # the fake server is loopback http
    assert server.requests[-1][0]["Authorization"] == "Bearer sk-secret"


def test_judge_allow_insecure_http_flag(monkeypatch):
    import argparse

    import judges
    from judges.cli import add_llm_judge_args, check_llm_judge_args, llm_judge_kwargs

    _no_network(monkeypatch)
    monkeypatch.setenv("MY_KEY", "sk-secret")
    parser = add_llm_judge_args(argparse.ArgumentParser())
    base = ["--judge_base_url", "http://judge.invalid/v1", "--judge_api_key_env", "MY_KEY"]
    args = parser.parse_args(base)
    assert args.judge_allow_insecure_http is None
    with pytest.raises(ValueError, match="judge.invalid.*--judge_allow_insecure_http"):
        judges.load("openai:m", **llm_judge_kwargs("openai:m", args))
    args = parser.parse_args(base + ["--judge_allow_insecure_http"])
    kwargs = llm_judge_kwargs("openai:m", args)
    assert kwargs["allow_insecure_http"] is True
    assert judges.load("openai:m", **kwargs).backend._headers == {"Authorization": "Bearer sk-secret"}
    from rm_core.errors import UserInputError  # one line from a command, not a traceback

    with pytest.raises(UserInputError, match="--judge_allow_insecure_http is an option of openai:"):
        check_llm_judge_args(["llm:some/model"], parser.parse_args(["--judge_allow_insecure_http"]))

def test_openai_choice_probs_from_logprobs(server):
    def logprobs(hit, body):
        assert body["logprobs"] is True and body["max_tokens"] == 1
        top = [{"token": "A", "logprob": math.log(0.6)}, {"token": " B", "logprob": math.log(0.2)},
               {"token": "The", "logprob": math.log(0.2)}]
        if "no logprobs" in body["messages"][0]["content"]:
            return echo(body)
        return 200, {"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": top}]}}]}, {}

    server.behaviour = logprobs
    backend = fast_backend(server, use_logprobs=True)
    ok, missing = backend.choice_probs(ask("judge", "no logprobs"), ["A", "B", "C"])
    assert ok.value == pytest.approx([0.6, 0.2, 0.0])  # " B" is B; 0.2 went to "The": mass 0.8 on the choices
    assert missing.error == "no logprobs in response"
    with pytest.raises(NotImplementedError):
        fast_backend(server).choice_probs(ask("judge"), ["A", "B"])


def test_openai_generate_inside_a_running_event_loop(server):
    async def caller():
        return fast_backend(server).generate(ask("hi"))

    assert asyncio.run(caller())[0].value == "echo: hi"


# ---------------------------------------------------------------- local HF backend, tiny random model


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from rm_core.testing import save_tiny_backbone

    return str(save_tiny_backbone(tmp_path_factory.mktemp("tiny-lm"), seed=0))


TEXTS = ["What is 2 + 3?", "Please write a poem about the sea in capital letters, the quick brown fox.", "hello"]


def test_hf_batched_generation_matches_one_by_one(tiny_lm):
    backend = HFBackend(tiny_lm, batch_size=3)
    batched = backend.generate(ask(*TEXTS), max_new_tokens=6)
    assert len(batched) == 3 and all(r.ok and isinstance(r.value, str) for r in batched)
    alone = [backend.generate(ask(t), max_new_tokens=6)[0] for t in TEXTS]
    assert batched == alone  # left padding: a prompt continues from its own last token in a batch


def test_hf_choice_probs(tiny_lm):
    import torch

    backend = HFBackend(tiny_lm, batch_size=3)
    batched = backend.choice_probs(ask(*TEXTS), ["A", "B", "C"])
    for text, result in zip(TEXTS, batched):
        assert len(result.value) == 3 and 0 < sum(result.value) < 1  # the mass on the choices, not renormalised
        ids = backend._encode(ask(text)[0])
        with torch.no_grad():
            logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1]
        choice_ids = [backend.tokenizer.convert_tokens_to_ids(c) for c in "ABC"]
        expected = torch.softmax(logits, -1)[choice_ids].tolist()
        assert result.value == pytest.approx(expected, abs=1e-5)  # same as unpadded, at the right tokens
    with pytest.raises(ValueError, match="single-token"):
        backend.choice_probs(ask("hi"), ["A", "tie"])


def test_hf_choice_probs_run_the_prompts_shared_instructions_once_a_call(tiny_lm):
    """A judge's prompts share the system prompt, instructions and principles: the backend's read-out runs that
    prefix once for a call's prompts (up to CHOICE_PROMPTS_PER_CALL), not once a forward of batch_size rows, and
    each prompt's probabilities stay what it gets alone."""
    import torch

    from judges.backends import CHOICE_PROMPTS_PER_CALL

    backend = HFBackend(tiny_lm, batch_size=1)
    judge = PairwiseLLMJudge(backend, principles=["Be exact.", "Be brief, and say why."], min_choice_mass=0.0)
    requests = [judge._render(judge.pair_template, prompt=t, response_a=GOOD, response_b=BAD) for t in TEXTS]
    encoded = [backend._encode(r) for r in requests]
    shared = min(len(e) for e in encoded)
    shared = next((n for n in range(shared) if len({tuple(e[:n + 1]) for e in encoded}) > 1), shared)
    assert shared > 20 and len(requests) <= CHOICE_PROMPTS_PER_CALL
    backend.choice_probs(requests[:2], ["A", "B"])  # the one-time probe
    widths = []
    handle = backend.model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        got = backend.choice_probs(requests, ["A", "B"])
    finally:
        handle.remove()
    assert widths[0] == torch.Size([1, shared]) and len(widths) == 1 + len(requests)  # the prefix once, then 1 a row
    assert sum(w[1] for w in widths[1:]) == sum(len(e) for e in encoded) - len(requests) * shared
    choice_ids = [backend.tokenizer.convert_tokens_to_ids(c) for c in "AB"]
    for ids, result in zip(encoded, got):
        with torch.no_grad():
            logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1]
        assert result.value == pytest.approx(torch.softmax(logits, -1)[choice_ids].tolist(), rel=1e-4)


def test_hf_prompt_longer_than_max_length_is_a_counted_failure(tiny_lm):
    backend = HFBackend(tiny_lm, max_length=40)
    short, long = backend.generate(ask("hi", "hello world " * 20), max_new_tokens=2)
    assert short.ok and long.error == PROMPT_TOO_LONG
    judge = PairwiseLLMJudge(HFBackend(tiny_lm, max_length=200), min_choice_mass=0.0)  # a random model: tiny mass
    assert judge.compare_batch([(PROMPT, GOOD, BAD), (PROMPT, GOOD, "the quick brown fox " * 40)])[1] is None
    assert judge.failures.counts == {PROMPT_TOO_LONG: 1}


def test_hf_pairwise_judge_combines_both_orders(tiny_lm):
    backend = HFBackend(tiny_lm)
    judge = PairwiseLLMJudge(backend, min_choice_mass=0.0)
    assert judge.use_choice_probs
    (v,) = judge.judge_pairs([(PROMPT, GOOD, BAD)])
    requests = [judge._render(judge.pair_template, prompt=PROMPT, response_a=a, response_b=b)
                for a, b in [(GOOD, BAD), (BAD, GOOD)]]
    fwd, bwd = backend.choice_probs(requests, ["A", "B", "C"])
    (fa, _, fc), (_, bb, bc) = ([x / sum(r.value) for x in r.value] for r in (fwd, bwd))  # renormalised
    assert v.p_forward == pytest.approx(fa + fc / 2)
    assert v.p_backward == pytest.approx(bb + bc / 2)
    assert v.p == pytest.approx((v.p_forward + v.p_backward) / 2) and 0 <= v.p <= 1
    # this random model puts under 1% of its next-token mass on A, B and C: by default no verdict is read from it
    default = PairwiseLLMJudge(backend)
    assert default.judge_pairs([(PROMPT, GOOD, BAD)])[0].p is None
    assert default.failures.counts == {"answer not among the choices": 1}


def test_hf_cache_and_missing_pad_token(tmp_path):
    from transformers import AutoTokenizer

    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "lm")
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token = None
    tok.save_pretrained(path)
    backend = HFBackend(str(path), cache_dir=tmp_path / "cache")
    assert backend.tokenizer.pad_token == backend.tokenizer.eos_token
    first = backend.generate(ask(*TEXTS), max_new_tokens=3)
    backend.model.generate = lambda *a, **k: pytest.fail("a cached prompt was generated again")
    assert HFBackend(str(path), cache_dir=tmp_path / "cache").generate(ask(*TEXTS), max_new_tokens=3) == first
    assert backend.generate(ask(*TEXTS), max_new_tokens=3) == first

    # The same path with other weights (retrained in place) or another chat template is another model: no answer
    # of the first may be served for it.
    other_template = HFBackend(str(path), cache_dir=tmp_path / "cache", chat_template="{{ messages[0]['content'] }}")
    save_tiny_backbone(tmp_path / "lm", seed=1)  # retrained in place
    tok.pad_token = None
    tok.save_pretrained(path)
    retrained = HFBackend(str(path), cache_dir=tmp_path / "cache")
    assert len({backend.cache_tag, other_template.cache_tag, retrained.cache_tag}) == 3
    for again in (other_template, retrained):
        calls = []
        real = again.model.generate
        again.model.generate = lambda *a, _real=real, _calls=calls, **k: _calls.append(1) or _real(*a, **k)
        again.generate(ask(*TEXTS), max_new_tokens=3)
        assert calls, "served from the first model's cache"


def test_load_llm_judge(tiny_lm, server):
    judge = load_llm_judge(f"llm:{tiny_lm}", mode="listwise", batch_size=2, principles=["Be right."])
    assert isinstance(judge, ListwiseLLMJudge) and judge.backend.batch_size == 2
    assert judge.principles == ["Be right."]
    judge = load_llm_judge("openai:gpt-x", mode="pointwise", base_url=server.url, timeout_s=3.0)
    assert isinstance(judge, PointwiseLLMJudge) and judge.backend.timeout_s == 3.0
    with pytest.raises(ValueError, match="llm:<model>"):
        load_llm_judge("gpt-x")
    with pytest.raises(ValueError, match="mode"):
        load_llm_judge(f"llm:{tiny_lm}", mode="listwize")


# ---------------------------------------------------------------- real SmolLM2-135M-Instruct (-m slow)


@pytest.mark.slow
def test_smollm2_judges_sanity():
    from rm_core.models import SMOLLM2, resolve_model

    backend = HFBackend(resolve_model(SMOLLM2), batch_size=8, max_length=512)
    pairs = [("What is the capital of France?", "Paris.", "London."),
             ("What is 2 + 3?", "5", "7"),
             ("Say hello.", "Hello!", "Goodbye.")]
    judge = PairwiseLLMJudge(backend)
    verdicts = judge.judge_pairs(pairs)
    assert all(v.p is not None and 0.0 <= v.p <= 1.0 for v in verdicts)
    assert all(v.p_forward is not None and v.p_backward is not None for v in verdicts)
    assert judge.order_stats.pairs == 3

    generated = PairwiseLLMJudge(backend, use_choice_probs=False, max_new_tokens=4)
    ps = generated.compare_batch(pairs)
    assert all(p is None or 0.0 <= p <= 1.0 for p in ps)
    assert sum(p is None for p in ps) == generated.failures.total  # every missing verdict is counted

    pointwise = PointwiseLLMJudge(backend, max_new_tokens=6)
    scores = pointwise.score([conversation(q, a) for q, a, _ in pairs])
    assert all(s is None or 0.0 <= s <= 1.0 for s in scores)
    assert sum(s is None for s in scores) == pointwise.failures.total


# ---------------------------------------------------------------- llm:/openai: judges from every command line


def _key(text: str) -> int:
    """The fake endpoint's taste: a response saying "good" wins, else the shorter one; equal keys tie."""
    return 100 * ("good" in text) - len(text)


def verdicts(hit, body):
    """A deterministic judge behind /v1/chat/completions: "A", "B" or "C" (tie) by _key for the default pairwise
    prompt, "Rating: N" for the pointwise one."""
    time.sleep(0.01)  # a call takes time: concurrent requests overlap, so max_concurrency is observable
    messages = body["messages"]
    text = messages[-1]["content"]
    if "[Response A]" in text:
        a, b = shown(messages)
        answer = "A" if _key(a) > _key(b) else "B" if _key(a) < _key(b) else "C"
    else:
        response = text.split("[Response]\n", 1)[1].rsplit("\n\nReply with", 1)[0]
        answer = f"Rating: {min(10, max(1, 5 + _key(response) // 10))}"
    return 200, {"choices": [{"message": {"role": "assistant", "content": answer}}]}, {}


# chosen-score the fake endpoint gives each pair: good wins, shorter wins, longer loses, an equal length ties
CLI_PAIRS = [("What is 2 + 3?", "good: it is 5", "it is 7", 1.0),
             ("Say hello.", "Hello!", "Hello there, how are you today?", 1.0),
             ("Name a color.", "The color I would name is blue.", "Red.", 0.0),
             ("Who are you?", "a bot", "a cat", 0.5)]


def _write_pairs(path):
    rows = [{"id": f"p{i}", "subset": "alpacaeval-easy", "prompt": q, "chosen": c, "rejected": r}
            for i, (q, c, r, _) in enumerate(CLI_PAIRS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _scores_file(out):
    return [json.loads(line) for line in (out / "scores.jsonl").read_text(encoding="utf-8").splitlines()]


def test_eval_reward_bench_with_an_openai_judge_and_its_flags(server, tmp_path, monkeypatch):
    """eval_reward_bench --model openai:... against a loopback server: the scores are the endpoint's verdicts
    in both orders, the options reach the backend, the key is read from the named variable, and a second run
    with the same --judge_cache_dir sends no request at all."""
    from eval.reward_bench import evaluate, make_parser

    def verdicts_overlapping(hit, body):  # each request waits (up to 1 s) for a second one: concurrency is certain
        deadline = time.monotonic() + 1.0
        while server.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        return verdicts(hit, body)

    server.behaviour = verdicts_overlapping
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MY_JUDGE_KEY", "sekret")
    data = _write_pairs(tmp_path / "pairs.jsonl")
    cache = tmp_path / "llm-cache"
    argv = ["--model", "openai:judge-model", "--dataset", str(data), "--judge_base_url", server.url,
            "--judge_api_key_env", "MY_JUDGE_KEY", "--judge_cache_dir", str(cache), "--judge_timeout_s", "5",
            "--judge_max_retries", "1", "--judge_max_concurrency", "2"]
    first = evaluate(make_parser().parse_args(argv + ["--output_dir", str(tmp_path / "one")]))
    assert server.hits == 2 * len(CLI_PAIRS)  # every pair in both orders
    assert 1 < server.max_in_flight <= 2
    assert {h.get("Authorization") for h, _ in server.requests} == {"Bearer sekret"}
    assert {b["model"] for _, b in server.requests} == {"judge-model"}
    rows = _scores_file(tmp_path / "one")
    assert [r["chosen_score"] for r in rows] == [p for *_, p in CLI_PAIRS]
    assert [r["correct"] for r in rows] == [True, True, False, False]  # a tie is never correct
    assert first["pairs"] == 4 and first["failed_pairs"] == 0 and first["judge_failures"]["total"] == 0
    assert first["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5
    assert (cache / "responses.sqlite").is_file()

    second = evaluate(make_parser().parse_args(argv + ["--output_dir", str(tmp_path / "two")]))
    assert server.hits == 2 * len(CLI_PAIRS)  # all from the cache: 0 requests
    assert _scores_file(tmp_path / "two") == rows and second["subsets"] == first["subsets"]


def test_every_eval_command_runs_an_openai_judge(server, tmp_path, monkeypatch):
    """eval_reward_bench2, eval_rm_bench, eval_judgebench and eval_best_of_n take the same judge flags, score
    through the endpoint, and rerun from the cache without a request."""
    from test_eval_benchmarks import cand_rows, jb_rows, rb2_rows, rmb_rows

    from eval import best_of_n, judgebench, reward_bench2, rm_bench

    server.behaviour = verdicts
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def jsonl(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    (tmp_path / "rmb.json").write_text(json.dumps(rmb_rows()))
    cases = [(reward_bench2, jsonl("rb2.jsonl", rb2_rows()), [], "pairwise"),
             (rm_bench, tmp_path / "rmb.json", [], "pointwise"),
             (judgebench, jsonl("jb.jsonl", jb_rows()), [], "pairwise"),
             (best_of_n, jsonl("cands.jsonl", cand_rows()), ["--split", "all"], "pointwise")]
    for module, data, extra, mode in cases:
        name = module.__name__
        argv = ["--model", "openai:judge-model", "--dataset", str(data), "--judge_mode", mode, *extra,
                "--judge_base_url", server.url, "--judge_cache_dir", str(tmp_path / "cache"),
                "--judge_timeout_s", "5", "--judge_max_retries", "0", "--judge_max_concurrency", "3"]
        before = server.hits
        summary = module.evaluate(module.make_parser().parse_args(argv + ["--output_dir", str(tmp_path / name)]))
        assert summary["judge_failures"]["total"] == 0, name
        assert server.hits > before, name
        assert server.max_in_flight <= 3
        before = server.hits
        again = module.evaluate(module.make_parser().parse_args(argv + ["--output_dir", str(tmp_path / (name + "2"))]))
        assert server.hits == before, name  # the cache answered everything
        assert _scores_file(tmp_path / (name + "2")) == _scores_file(tmp_path / name), name
        assert again["judge_failures"]["total"] == 0


def test_eval_report_runs_an_openai_judge(server, tmp_path, monkeypatch):
    from eval import report

    server.behaviour = verdicts
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = _write_pairs(tmp_path / "pairs.jsonl")
    argv = ["--output_dir", str(tmp_path / "rep"), "--judge", "api=openai:judge-model", "--bench", f"pairs=pairs:{data}",
            "--judge_base_url", server.url, "--judge_cache_dir", str(tmp_path / "cache"), "--judge_timeout_s", "5",
            "--judge_max_concurrency", "2"]
    out = report.main(argv)
    cell = out["results"]["api"]["pairs"]
    assert cell["headline"]["accuracy (all pairs)"] == 0.5 and cell["judge_failures"] == 0
    assert server.hits == 2 * len(CLI_PAIRS) and server.max_in_flight <= 2
    assert (tmp_path / "cache" / "responses.sqlite").is_file()
    # in bf16 on another kind of CPU a local judge's cells are scored again; an API judge's are the same cells
    import torch

    cached = []
    for caps in ({"avx2": True, "avx512_bf16": True}, {"avx2": True, "avx512_bf16": True, "amx_bf16": True}):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps)
        cached.append(report.main(argv + ["--dtype", "bfloat16"])["results"]["api"]["pairs"]["cached"])
    assert cached == [False, True]  # a new cell for the new --dtype, then the same one on the AMX CPU


def test_rm_judge_serve_runs_an_openai_judge(server, monkeypatch):
    pytest.importorskip("fastapi")
    import uvicorn
    from fastapi.testclient import TestClient

    from judges import serve

    server.behaviour = verdicts
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    serve.main(["--judge", "openai:judge-model", "--judge_mode", "pairwise", "--judge_base_url", server.url,
                "--judge_timeout_s", "4", "--judge_max_retries", "2", "--judge_max_concurrency", "3"])
    with TestClient(apps[0]) as client:
        got = client.post("/compare", json={"prompt": "2 + 3?", "response_a": "good: 5", "response_b": "7"}).json()
        assert got == {"p_a_better": 1.0}
    assert server.hits == 2


def test_eval_reward_bench_with_a_local_llm_judge(tiny_lm, tmp_path, monkeypatch):
    """llm:<path>: --dtype and --batch_size reach the HF backend (not the judge class), --judge_cache_dir is
    its cache (a rerun runs no forward), and options of the other kind of judge are refused by name."""
    import torch

    from eval.reward_bench import evaluate, make_parser
    from eval.runner import load_judge

    data = _write_pairs(tmp_path / "pairs.jsonl")
    argv = ["--model", f"llm:{tiny_lm}", "--dataset", str(data), "--dtype", "bfloat16", "--batch_size", "2",
            "--judge_cache_dir", str(tmp_path / "cache"), "--judge_min_choice_mass", "0"]  # a random model
    judge = load_judge(make_parser().parse_args(argv), torch.device("cpu"))
    assert isinstance(judge, PairwiseLLMJudge)
    assert judge.backend.model.dtype == torch.bfloat16 and judge.backend.batch_size == 2
    assert judge.backend.cache is not None
    first = evaluate(make_parser().parse_args(argv + ["--output_dir", str(tmp_path / "one")]))
    assert first["pairs"] == 4 and first["failed_pairs"] == 0
    monkeypatch.setattr("rm_core.inference.next_token_choice_probs",
                        lambda *a, **k: pytest.fail("a cached request ran the model again"))
    evaluate(make_parser().parse_args(argv + ["--output_dir", str(tmp_path / "two")]))
    assert _scores_file(tmp_path / "two") == _scores_file(tmp_path / "one")
    with pytest.raises(ValueError, match="--judge_timeout_s.*openai:"):
        load_judge(make_parser().parse_args(argv + ["--judge_timeout_s", "3"]), torch.device("cpu"))
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match="--family applies to checkpoints"):  # it was dropped silently
        load_judge(make_parser().parse_args(argv + ["--family", "bradley_terry"]), torch.device("cpu"))
    with pytest.raises(ValueError, match="min_choice_mass .* reads pairwise verdicts"):  # a TypeError before
        load_judge(make_parser().parse_args(argv + ["--judge_mode", "pointwise"]), torch.device("cpu"))


def test_an_option_of_the_other_backend_is_a_clear_error(server):
    import judges

    with pytest.raises(ValueError, match="dtype, max_length: not an option of openai: judges or models"):
        judges.load("openai:judge-model", mode="pairwise", base_url=server.url, dtype="float32", max_length=512)


def test_judges_conflicts_runs_an_openai_judge(server, tmp_path, monkeypatch):
    from judges import conflicts

    server.behaviour = verdicts
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = _write_pairs(tmp_path / "pairs.jsonl")
    conflicts.main(["--judge", "openai:judge-model", "--dataset", str(data), "--split", "train", "--output",
                    str(tmp_path / "c.json"), "--judge_base_url", server.url, "--judge_max_concurrency", "2"])
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["failures"]["total"] == 0 and server.hits == 2 * len(CLI_PAIRS) and server.max_in_flight <= 2
