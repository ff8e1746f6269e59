"""Rule rewards and ComposedReward on hand-computed numbers, and both policies for failed components."""

from __future__ import annotations

import re

import pytest

from judges.base import Judge, conversation
from judges.compose import (
    ComposedReward,
    LengthRule,
    MathAnswerMatch,
    RegexFormatRule,
    RepetitionPenalty,
)
from rm_core.answers import answers_match, extract_final_answer


def convs(*responses: str) -> list:
    return [conversation("question?", r) for r in responses]


def words(n: int) -> str:
    return " ".join(["w"] * n)


class Fixed(Judge):
    """Returns given values; None at `fail_at`, counted like a real judge would. Records its calls."""

    pointwise = True

    def __init__(self, values: list, fail_at: tuple = ()):
        super().__init__()
        self.values, self.fail_at = values, set(fail_at)
        self.calls: list[tuple[int, list | None]] = []

    def _score(self, conversations, references):
        self.calls.append((len(conversations), references))
        out = []
        for i in range(len(conversations)):
            if i in self.fail_at:
                self.failures.add("fixed failure", i)
                out.append(None)
            else:
                out.append(self.values[i])
        return out


class PairwiseOnly(Judge):
    pointwise = False

    def _compare(self, items):
        return [0.5] * len(items)


# ---------------------------------------------------------------- RegexFormatRule


def test_regex_search_spans_lines_by_default():
    rule = RegexFormatRule(r"<think>.*</think>")
    text = "<think>step one\nstep two</think> 42"
    assert rule.score(convs(text, "42", "<think>open only")) == [1.0, 0.0, 0.0]
    assert RegexFormatRule(r"<think>.*</think>", flags=0).score(convs(text)) == [0.0]  # no DOTALL: no match


def test_regex_fullmatch_needs_the_whole_response():
    rule = RegexFormatRule(r"<think>.*</think>\s*\\boxed\{.*\}", mode="fullmatch")
    assert rule.score(convs("<think>x</think> \\boxed{3}\n", "<think>x</think> \\boxed{3} extra",
                            "intro <think>x</think> \\boxed{3}")) == [1.0, 0.0, 0.0]
    assert RegexFormatRule(r"\\boxed\{").score(convs("so \\boxed{3}")) == [1.0]  # search: anywhere


def test_regex_empty_response_is_zero_not_a_failure():
    rule = RegexFormatRule(re.compile(r"\S"))
    assert rule.score(convs("", "a")) == [0.0, 1.0]
    assert rule.failures.total == 0
    with pytest.raises(ValueError):
        RegexFormatRule("x", mode="match")


def test_rule_needs_an_assistant_response():
    with pytest.raises(ValueError, match="assistant"):
        RegexFormatRule("x").score([[{"role": "user", "content": "hi"}]])


# ---------------------------------------------------------------- LengthRule


def test_length_band_default_linear_fall_off():
    rule = LengthRule(10, 20)  # below: 1 - (10 - n)/10; above: 1 - (n - 20)/20, clamped at 0
    got = rule.score(convs(*(words(n) for n in (0, 5, 8, 10, 15, 20, 25, 30, 40, 50))))
    assert got == pytest.approx([0.0, 0.5, 0.8, 1.0, 1.0, 1.0, 0.75, 0.5, 0.0, 0.0])
    assert rule.failures.total == 0


def test_length_band_explicit_slope():
    rule = LengthRule(10, 20, slope=0.05)
    got = rule.score(convs(*(words(n) for n in (0, 5, 25, 30, 45))))
    assert got == pytest.approx([0.5, 0.75, 0.75, 0.5, 0.0])


def test_length_units():
    assert LengthRule(4, 8, unit="chars").score(convs("abcdefghijkl", "abcdef", "ab")) == pytest.approx([0.5, 1.0, 0.5])
    assert LengthRule(4, 8, unit=lambda t: list(t)).score(convs("abcdefghijkl")) == pytest.approx([0.5])

    class Tokenizer:  # a Hugging Face tokenizer is used through encode (calling it returns a dict)
        def encode(self, text, add_special_tokens=True):
            return [1] * (len(text) // 2) + ([0] if add_special_tokens else [])

    assert LengthRule(4, 8, unit=Tokenizer()).score(convs("x" * 24)) == pytest.approx([0.5])  # 12 tokens


def test_length_open_bounds_and_validation():
    assert LengthRule(0, 5).score(convs("")) == [1.0]
    assert LengthRule(3).score(convs(words(1000), words(2))) == pytest.approx([1.0, 2 / 3])
    with pytest.raises(ValueError):
        LengthRule(10, 5)
    with pytest.raises(ValueError):
        LengthRule(1, 5, slope=0)
    with pytest.raises(ValueError):
        LengthRule(1, 5, unit="tokens")


@pytest.mark.parametrize("make", [
    lambda: LengthRule(min_tokens=float("nan")), lambda: LengthRule(0, max_tokens=float("nan")),
    lambda: LengthRule(0, max_tokens=float("inf")), lambda: LengthRule(1, 5, slope=float("nan")),
    lambda: LengthRule(1, 5, slope=float("inf")), lambda: RepetitionPenalty(max_penalty=float("nan")),
    lambda: RepetitionPenalty(max_penalty=float("inf")),
])
def test_rule_parameters_must_be_finite(make):
    with pytest.raises(ValueError, match="must be a finite number"):
        make()


@pytest.mark.parametrize("n", [float("nan"), 2.5, 0, True, "3"])
def test_repetition_n_must_be_a_whole_number(n):  # 2.5 was accepted, then every score raised a TypeError
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        RepetitionPenalty(n=n)


def test_a_unit_callable_may_return_a_numpy_count_but_not_a_bool():
    import numpy as np

    assert LengthRule(4, 8, unit=lambda t: np.int64(len(t))).score(convs("abcdefghijkl")) == pytest.approx([0.5])
    with pytest.raises(ValueError, match="a unit callable returned True"):  # a bool counted as 1 unit
        LengthRule(4, 8, unit=lambda t: True).score(convs("abc"))


# ---------------------------------------------------------------- RepetitionPenalty


def test_repetition_penalty_hand_counted():
    rule = RepetitionPenalty(n=3)
    # "a b c a b c": abc bca cab abc -> 1 of 4 trigrams repeats
    assert rule.score(convs("a b c a b c", "the cat sat on the mat", "a b", "")) == pytest.approx(
        [-0.25, 0.0, 0.0, 0.0])
    # bigrams of "a a a a a": 4, all the same -> 3 of 4 repeat
    assert RepetitionPenalty(n=2).score(convs("a a a a a")) == pytest.approx([-0.75])
    assert RepetitionPenalty(n=3, max_penalty=2.0).score(convs("a b c a b c")) == pytest.approx([-0.5])


def test_repetition_ignores_case_and_punctuation():
    # words: the cat the cat -> bigrams (the cat) (cat the) (the cat): 1 of 3 repeats
    assert RepetitionPenalty(n=2).score(convs("The cat. the CAT!")) == pytest.approx([-1 / 3])
    with pytest.raises(ValueError):
        RepetitionPenalty(n=0)


# ---------------------------------------------------------------- final answers


@pytest.mark.parametrize("text, answer", [
    (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces kept
    (r"first \boxed{1}, then \boxed{a^{2}+b^{2}}", "a^{2}+b^{2}"),  # the last box
    (r"The answer is 5 but \boxed{7}", "7"),  # a box beats a cue
    ("16 - 3 - 4 = 9 eggs, 9 * $2 = $18\n#### 18", "18"),  # GSM8K
    ("#### 1,000", "1,000"),
    ("#### 72 (8 * 9)", "72"),  # the GSM8K marker, not the last number
    ("#### Step 1\nso the total is 12.", "12"),  # a markdown heading is not a GSM8K answer
    ("The answer is 18 dollars.", "18"),
    ("Answer: the final answer is 5", "5"),  # the last cue
    ("The answer is $\\frac{3}{4}$.", r"\frac{3}{4}"),
    ("**The answer is 42**", "42"),
    ("The answer is (B).", "(B)"),
    ("I got 3, then 7.", "7"),  # last number; a trailing period is not a decimal
    ("values 1, 2", "2"),  # a comma not in groups of three is not a thousands separator
    ("so x-5 is it", "5"),
    ("-3/4", "-3/4"),  # the whole text is a number
    ("no numbers here", None),
    ("x^2+1", "1"),  # free text: the last number (references turn this off, see MathAnswerMatch)
    (r"\boxed{unclosed", None),
    ("The answer is 5 - 3 = 2.", "2"),  # an expression is not its first operand: after the last "="
    ("The answer is 3 x 4 = 12", "12"),
    ("The answer is 2 1/2", "2 1/2"),  # a mixed number whole (it was "2")
    ("The answer is 5 - 3", "5 - 3"),  # no result stated: never "5"
    ("The answer is 1,000 apples", "1,000"),
])
def test_extract_final_answer(text, answer):
    assert extract_final_answer(text) == answer


@pytest.mark.parametrize("text, answer", [
    ("#### 1,000", "1000"), ("x\n#### $1,200", "1200"), ("A: -4", "-4"),
    ("A: 18 dollars", "18"),  # a unit after the number (it was "18 dollars", graded wrong against 18)
    ("A: 72,5", "72,5"), ("#### 7,25", "7,25"),  # not thousands groups: never 725
    ("A: 10:30", "10:30"), ("A: 5, 6", "5, 6"),  # a time or a list: never its first number
    ("#### Step 1: add\n2+3=5\nA: 5", "5"),  # "####" with no number after it is a heading, not the answer
    ("so the total is #### 9\nA: 5", "5"),  # a "####" inside a line is no final line
    ("no final line here", None),
])
def test_gsm8k_final_answer(text, answer):
    from rm_core.answers import gsm8k_final_answer

    assert gsm8k_final_answer(text) == answer


def test_the_step_labeller_reads_a_final_line_as_best_of_n_does():
    from rm_core.answers import gsm8k_final_line

    assert gsm8k_final_line("A: 5 - 3 = 2") == "2" and gsm8k_final_line("A: 18 dollars") == "18"
    assert gsm8k_final_line("  #### 72") == "72" and gsm8k_final_line("A: 10:30") == "10:30"
    assert gsm8k_final_line("so A: 5") is None


def test_extract_without_last_number_fallback():
    assert extract_final_answer("x^2+1", last_number=False) is None
    assert extract_final_answer("1,000", last_number=False) == "1,000"  # a bare number is still one
    assert extract_final_answer("so #### 72", last_number=False) == "72"


@pytest.mark.parametrize("a, b", [
    ("1,000", "1000"), ("3.50", "3.5"), ("$5", "5"), ("1/2", "0.5"), ("72.", "72"), (r"\frac{1}{2}", "0.5"),
    (r"\dfrac{1}{2}", "1/2"), ("$1,000.50", "1000.5"), ("\u22125", "-5"), (r"10\text{ cm}", "10"), ("x = 5", "5"),
    (r"90^\circ", "90"), ("50%", "50"), ("(B)", "(B)"), ("x^2 + 1", "x^2+1"), ("$\\frac{3}{4}$", "0.75"),
])
def test_answers_match(a, b):
    assert answers_match(a, b) and answers_match(b, a)


@pytest.mark.parametrize("a, b", [
    ("0.333", "1/3"), ("-3", "3"), ("5", "five"), ("1000", "100"), ("1,00", "100"), ("(B)", "(C)"), ("5", None),
])
def test_answers_differ(a, b):
    assert not answers_match(a, b)


def test_math_match_scores_and_references():
    rule = MathAnswerMatch()
    responses = [r"... so \boxed{72}", "The answer is 71.", r"\boxed{\frac{1}{2}}", "I give up", "The answer is (B).",
                 r"\boxed{x^2 + 1}", r"\boxed{1}"]
    references = ["She earns 8 * 9 = 72 dollars.\n#### 72", "#### 72", 0.5, "#### 3", "(B)", "x^2+1", "x^2+1"]
    assert rule.score(convs(*responses), references) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert rule.failures.total == 0  # a wrong or missing answer is 0.0, not a failure


def test_math_match_without_reference_fails_and_counts():
    rule = MathAnswerMatch()
    assert rule.score(convs(r"\boxed{1}", r"\boxed{2}", r"\boxed{3}"), ["1", None, " "]) == [1.0, None, None]
    assert rule.failures.counts["no reference"] == 2
    assert rule.score(convs(r"\boxed{1}", "2")) == [None, None]
    assert rule.failures.counts["no reference"] == 4


def test_math_match_non_finite_number_reference_fails_as_no_reference():
    rule = MathAnswerMatch()
    responses = convs("The answer is nan", "The answer is 3", r"\boxed{inf}", "The answer is -inf", r"\boxed{2}")
    scores = rule.score(responses, [float("nan"), float("nan"), float("inf"), float("-inf"), 2.0])
    assert scores == [None, None, None, None, 1.0]
    assert rule.failures.counts["no reference"] == 4 and rule.failures.total == 4
    assert rule.score(convs("The answer is True"), [True]) == [None]  # a boolean is no maths answer


# ---------------------------------------------------------------- ComposedReward


def test_weighted_sum_and_batching():
    a, b = Fixed([1.0, 2.0, 3.0]), Fixed([0.5, -1.0, 4.0])
    composed = ComposedReward([(a, 2.0), (b, -1.0)])
    refs = ["r0", "r1", "r2"]
    assert composed.score(convs("x", "y", "z"), refs) == pytest.approx([1.5, 5.0, 2.0])
    assert a.calls == [(3, refs)] and b.calls == [(3, refs)]  # one batched call each, references passed on
    assert list(composed.weights) == ["Fixed", "Fixed_2"]  # class names, deduplicated


def test_rules_compose_with_references():
    composed = ComposedReward({"format": (RegexFormatRule(r"\\boxed\{"), 0.5), "correct": (MathAnswerMatch(), 1.0)})
    got = composed.score(convs(r"\boxed{4}", "4", r"\boxed{5}"), ["4", "4", "4"])
    assert got == pytest.approx([1.5, 1.0, 0.5])


def _three_components(on_failure: str):
    # 4 items; A fails on 1 and 3, B on 2 and 3, C on 1 and 3
    a = Fixed([1.0, 2.0, 3.0, 4.0], fail_at=(1, 3))
    b = Fixed([0.5, -1.0, 4.0, 1.0], fail_at=(2, 3))
    c = Fixed([10.0, 20.0, 30.0, 40.0], fail_at=(1, 3))
    return a, b, c, ComposedReward({"A": (a, 2.0), "B": (b, -1.0), "C": (c, 1.0)}, on_failure=on_failure)


def test_renormalize_scales_by_sum_of_absolute_weights():
    a, b, c, composed = _three_components("renormalize")
    got = composed.score(convs("0", "1", "2", "3"))
    # W = |2| + |-1| + |1| = 4
    # item 0: 2*1 - 0.5 + 10 = 11.5
    # item 1: only B (|w| 1): 4/1 * (-1 * -1) = 4
    # item 2: A and C (|w| 3): 4/3 * (2*3 + 30) = 48
    # item 3: all failed -> None
    assert got[:3] == pytest.approx([11.5, 4.0, 48.0]) and got[3] is None
    assert composed.failures.counts == {"all weighted components failed": 1}
    assert (a.failures.total, b.failures.total, c.failures.total) == (2, 2, 2)  # each component counts its own
    assert composed.dropped == {"A": 2, "B": 2, "C": 2}


def test_fail_policy_fails_the_item_and_names_the_components():
    _, _, _, composed = _three_components("fail")
    got = composed.score(convs("0", "1", "2", "3"))
    assert got[0] == pytest.approx(11.5) and got[1:] == [None, None, None]
    assert composed.failures.counts == {"component failed: A, C": 1, "component failed: B": 1,
                                        "component failed: A, B, C": 1}
    assert composed.failures.total == 3  # one per failed item


def test_zero_weight_component_is_logged_but_cannot_carry_the_total():
    logged = Fixed([7.0, 8.0])
    main = Fixed([1.0, 2.0], fail_at=(1,))
    composed = ComposedReward({"main": (main, 1.0), "logged": (logged, 0.0)})
    assert composed.score(convs("a", "b")) == [1.0, None]
    assert composed.last_details[1]["components"] == {"main": None, "logged": 8.0}
    assert composed.failures.counts == {"all weighted components failed": 1}


def test_score_detailed_keeps_every_component():
    _, _, _, composed = _three_components("renormalize")
    details = composed.score_detailed(convs("0", "1", "2", "3"))
    assert details[0] == {"components": {"A": 1.0, "B": 0.5, "C": 10.0}, "total": pytest.approx(11.5), "dropped": []}
    assert details[1]["components"] == {"A": None, "B": -1.0, "C": None}
    assert details[1]["dropped"] == ["A", "C"] and details[1]["total"] == pytest.approx(4.0)
    assert details[3] == {"components": {"A": None, "B": None, "C": None}, "total": None, "dropped": ["A", "B", "C"]}
    assert composed.last_details is details
    assert composed.score_detailed([]) == [] and composed.last_details == []


def test_composed_reward_nests():
    inner = ComposedReward([(Fixed([1.0, 2.0]), 1.0), (Fixed([3.0, 4.0]), 1.0)])
    outer = ComposedReward([(inner, 0.5), (Fixed([10.0, 20.0]), 1.0)])
    assert outer.score(convs("a", "b")) == pytest.approx([12.0, 23.0])
    assert list(outer.weights) == ["ComposedReward", "Fixed"]


def test_construction_errors():
    with pytest.raises(TypeError, match="pairwise"):
        ComposedReward([(Fixed([1.0]), 1.0), (PairwiseOnly(), 1.0)])
    with pytest.raises(TypeError):
        ComposedReward([Fixed([1.0])])  # a judge without a weight
    with pytest.raises(ValueError):
        ComposedReward([(Fixed([1.0]), float("nan"))])
    with pytest.raises(ValueError):
        ComposedReward([(Fixed([1.0]), 0.0)])
    with pytest.raises(ValueError):
        ComposedReward([(Fixed([1.0]), 1.0)], on_failure="ignore")
    with pytest.raises(ValueError):
        ComposedReward([])


def test_reference_count_mismatch_propagates():
    composed = ComposedReward([(MathAnswerMatch(), 1.0)])
    with pytest.raises(ValueError, match="2 references for 3 conversations"):
        composed.score(convs("1", "2", "3"), ["1", "2"])
    with pytest.raises(ValueError, match="references"):
        composed.score_detailed(convs("1", "2", "3"), ["1", "2"])


@pytest.mark.parametrize("response, reference, numeric, symbolic", [
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", 0.0, 1.0),  # equal, not as written
    ("The answer is \\boxed{x=2}.", "2", 1.0, 1.0),  # an equation against its value: both read it
    ("The set is \\boxed{\\{1,2\\}}.", "\\{2,1\\}", 0.0, 1.0),  # sets in another order
    ("The answer is \\boxed{\\frac{1}{2}}.", "0.5", 1.0, 1.0),  # both read fractions
    ("The answer is \\boxed{3}.", "\\frac{1}{2}", 0.0, 0.0),
    ("#### 72", "72", 1.0, 1.0),
])
def test_math_answer_match_symbolic_where_the_numeric_rule_differs(response, reference, numeric, symbolic):
    pytest.importorskip("math_verify")
    assert MathAnswerMatch().value(response, reference) == numeric
    assert MathAnswerMatch(method="symbolic").value(response, reference) == symbolic
    assert MathAnswerMatch(method="either").value(response, reference) == max(numeric, symbolic)


def test_math_answer_match_symbolic_runs_off_the_main_thread():
    """Reward code runs in worker threads (verl's reward loop): math-verify's signal timeouts must be off."""
    pytest.importorskip("math_verify")
    from concurrent.futures import ThreadPoolExecutor

    rule = MathAnswerMatch(method="symbolic")
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda r: rule.value(r, "0.5"), ["\\boxed{\\frac{1}{2}}", "\\boxed{2}"])) == [1.0, 0.0]


def test_math_answer_match_fails_a_reference_that_is_not_text_or_a_number():
    """A list or dict reference was compared as its text ("[5]"): 0.0 for a right answer, nothing counted."""
    rule = MathAnswerMatch()
    assert rule.score(convs("The answer is 5", "The answer is 5", "The answer is 5"),
                      references=[[5], {"answer": 5}, 5]) == [None, None, 1.0]
    assert rule.failures.counts["reference is not text or a number"] == 2


def test_math_answer_match_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        MathAnswerMatch(method="fuzzy")
