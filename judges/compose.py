"""Rule rewards and weighted compositions of judges.

Rules (all pointwise `Judge`s; they read the last assistant message of each conversation):

    RegexFormatRule(pattern, flags=re.DOTALL, mode="search")   1.0 if the response matches, else 0.0
    LengthRule(min_tokens, max_tokens, unit="words", slope)     1.0 inside the band, linear fall-off to 0.0
    RepetitionPenalty(n=3, max_penalty=1.0)                     0.0 (no repeated n-gram) down to -max_penalty
    MathAnswerMatch(method="numeric"|"symbolic"|"either")      1.0 if the final answer equals the reference
    judges.code_exec.CodeExecutionJudge()                      pass rate of the response's code on the tests

    ComposedReward([(judge, weight), ...], on_failure="renormalize" | "fail")

A rule scores an empty response (0.0 for a format rule that needs text, a length below the band, ...): an RL
policy can emit one and it deserves a reward. A rule fails an item (None, counted in `judge.failures`) only
when it cannot say anything: MathAnswerMatch without a reference for that item, a response that is not text.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from judges.base import Conversation, Judge, split_conversation
from rm_core.answers import answers_match, extract_final_answer


class Unscorable(Exception):
    """Raised by a rule's `value` for an item it cannot score; the message is the counted failure reason."""


class Rule(Judge):
    """A pointwise judge that scores one response at a time: subclasses implement `value`."""

    pointwise = True

    def value(self, response: str, reference) -> float:
        raise NotImplementedError

    def _score(self, conversations: list[Conversation], references: list | None) -> list[float | None]:
        out: list[float | None] = []
        for i, conv in enumerate(conversations):
            _, response = split_conversation(conv)
            try:
                if not isinstance(response, str):
                    raise Unscorable("response is not text")
                out.append(float(self.value(response, None if references is None else references[i])))
            except Unscorable as e:
                self.failures.add(str(e), i)
                out.append(None)
        return out


# -- format -------------------------------------------------------------------------------------------------


class RegexFormatRule(Rule):
    """1.0 when the response matches `pattern`, else 0.0 (an empty response is matched like any text).

    mode "search": the pattern may match anywhere; "fullmatch": the whole response must match (surrounding
    whitespace is stripped first). flags default to re.DOTALL so that `.` spans the lines of a reasoning block,
    e.g. RegexFormatRule(r"^<think>.*</think>") or RegexFormatRule(r"\\\\boxed\\{").
    """

    def __init__(self, pattern: str | re.Pattern, flags: int = re.DOTALL, mode: str = "search"):
        super().__init__()
        if mode not in ("search", "fullmatch"):
            raise ValueError(f"mode must be 'search' or 'fullmatch', got {mode!r}")
        self.pattern = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        self.mode = mode

    def value(self, response: str, reference) -> float:
        if self.mode == "fullmatch":
            return 1.0 if self.pattern.fullmatch(response.strip()) else 0.0
        return 1.0 if self.pattern.search(response) else 0.0


# -- length -------------------------------------------------------------------------------------------------

Unit = str | Callable  # "words" | "chars" | a tokenizer (`.encode`) | text -> int or sequence


def count_units(text: str, unit: Unit) -> int:
    """Length of `text` in words (whitespace-separated), chars, or tokens of a tokenizer / callable."""
    if unit == "words":
        return len(text.split())
    if unit == "chars":
        return len(text)
    if hasattr(unit, "encode"):  # a Hugging Face tokenizer: calling it returns a dict, so use encode
        return len(unit.encode(text, add_special_tokens=False))
    if callable(unit):
        n = unit(text)  # a count (numpy's integers included) or the units themselves
        if isinstance(n, bool):
            raise ValueError(f"a unit callable returned {n!r}: give a count or a sequence of units")
        return int(n) if isinstance(n, numbers.Integral) else len(n)
    raise ValueError(f"unit must be 'words', 'chars', a tokenizer or a callable, got {unit!r}")


def _finite(**params) -> None:
    """ValueError for a parameter that is not a finite number (NaN passes every `<` check; None is left alone)."""
    for name, value in params.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


class LengthRule(Rule):
    """1.0 when min_tokens <= length <= max_tokens; outside the band the reward falls linearly, clamped at 0.0:

        length < min_tokens:  1 - slope_low  * (min_tokens - length)
        length > max_tokens:  1 - slope_high * (length - max_tokens)

    `slope` sets both sides (reward lost per unit). By default slope_low = 1/min_tokens (an empty response
    gets 0.0) and slope_high = 1/max_tokens (twice max_tokens gets 0.0). max_tokens=None: no upper bound.
    Range [0, 1]. The unit is "words", "chars", a tokenizer (counts `encode` ids, no special tokens) or a
    callable returning a count or a token list.
    """

    def __init__(self, min_tokens: int = 0, max_tokens: int | None = None, unit: Unit = "words",
                 slope: float | None = None):
        super().__init__()
        _finite(min_tokens=min_tokens, max_tokens=max_tokens, slope=slope)
        if min_tokens < 0 or (max_tokens is not None and max_tokens < min_tokens):
            raise ValueError(f"need 0 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
        if slope is not None and not slope > 0:
            raise ValueError(f"slope must be > 0, got {slope}")
        if isinstance(unit, str) and unit not in ("words", "chars"):
            raise ValueError(f"unit must be 'words', 'chars', a tokenizer or a callable, got {unit!r}")
        self.min_tokens, self.max_tokens, self.unit = min_tokens, max_tokens, unit
        self.slope_low = slope if slope is not None else (1.0 / min_tokens if min_tokens else 0.0)
        self.slope_high = slope if slope is not None else (1.0 / max_tokens if max_tokens else math.inf)

    def value(self, response: str, reference) -> float:
        n = count_units(response, self.unit)
        if n < self.min_tokens:
            return max(0.0, 1.0 - self.slope_low * (self.min_tokens - n))
        if self.max_tokens is not None and n > self.max_tokens:
            return max(0.0, 1.0 - self.slope_high * (n - self.max_tokens))
        return 1.0


# -- repetition ---------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class RepetitionPenalty(Rule):
    """-max_penalty * (fraction of the response's n-grams that repeat an earlier n-gram), in (-max_penalty, 0].

    Tokens are lower-cased words (`\\w+`, punctuation ignored) unless `tokenize` is given. A response with fewer
    than n tokens has no n-grams and gets 0.0. E.g. n=3, "a b c a b c": n-grams abc bca cab abc, one of four
    repeats -> -0.25.
    """

    def __init__(self, n: int = 3, max_penalty: float = 1.0, tokenize: Callable[[str], list] | None = None):
        super().__init__()
        _finite(max_penalty=max_penalty)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be a whole number >= 1, got {n!r}")
        if max_penalty < 0:
            raise ValueError(f"max_penalty is a magnitude (>= 0), got {max_penalty}")
        self.n, self.max_penalty, self.tokenize = n, max_penalty, tokenize or _words

    def value(self, response: str, reference) -> float:
        tokens = list(self.tokenize(response))
        ngrams = [tuple(tokens[i:i + self.n]) for i in range(len(tokens) - self.n + 1)]
        if not ngrams:
            return 0.0
        return -self.max_penalty * (1.0 - len(set(ngrams)) / len(ngrams))


# -- math final answer (parsed by rm_core.answers) ---------------------------------------------------------


class MathAnswerMatch(Rule):
    """1.0 when the response's final answer equals the reference's, else 0.0; a response with no answer at all
    gets 0.0. A reference may be a number, a worked solution with a marker ("... #### 72", \\boxed{...}, "The
    answer is 72"), or else the bare answer, taken whole ("72", "\\frac{1}{2}", "(B)", "x^2+1"). An item with no
    reference (references None, or None / empty / a NaN or inf number for that item) fails: "no reference".

    method="numeric" (default): the final answers (`extract_final_answer`) compared exactly as numbers or text
    (`answers_match`). method="symbolic": HF's math-verify (`math_verify.parse` / `verify`: LaTeX, fractions, sets,
    intervals, equations such as "x=2" against "2"), the reference parsed as the gold answer (a bare one wrapped
    in $...$ so its LaTeX is read). method="either": 1.0 when either says equal. math-verify's signal-based
    timeouts run on the main thread only (reward code often runs in worker threads, where they cannot)."""

    METHODS = ("numeric", "symbolic", "either")
    scores_are_probabilities = True  # 1 or 0: best-of-N votes weigh as they are

    def __init__(self, method: str = "numeric"):
        super().__init__()
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        if method != "numeric":
            import importlib.util

            if importlib.util.find_spec("math_verify") is None:
                raise ImportError("MathAnswerMatch(method='symbolic') needs math-verify: pip install "
                                  "'math-verify[antlr4_13_2]' (it is in the project's lock)")
        self.method = method

    def value(self, response: str, reference) -> float:
        if reference is None or isinstance(reference, bool) or (isinstance(reference, str) and not reference.strip()):
            raise Unscorable("no reference")  # True/False is no maths answer (it was compared as the text "True")
        if isinstance(reference, numbers.Real) and not isinstance(reference, bool) and not math.isfinite(reference):
            raise Unscorable("no reference")  # a NaN or inf answer: nothing a response says can honestly match it
        if not isinstance(reference, (str, numbers.Real)):  # [5] was compared as the text "[5]": a 0 for "5"
            raise Unscorable("reference is not text or a number")
        numeric = self.method in ("numeric", "either") and self._numeric(response, reference)
        if numeric or self.method == "numeric":
            return 1.0 if numeric else 0.0
        return 1.0 if symbolic_match(response, reference) else 0.0

    @staticmethod
    def _numeric(response: str, reference) -> bool:
        if isinstance(reference, (int, float, Fraction)) and not isinstance(reference, bool):
            expected = str(reference)
        else:
            # A reference without a marker (box, ####, answer cue) is the answer itself: "x^2+1" stays whole
            expected = extract_final_answer(str(reference), last_number=False) or str(reference).strip()
        return answers_match(extract_final_answer(response), expected)


def symbolic_match(response: str, reference) -> bool:
    """math-verify's verdict: the reference (gold) against the response's final answer. On the main thread with
    math-verify's own 5-second timeouts; in a worker thread (where its signal-based timeouts cannot run) without."""
    import logging
    import threading

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    main = threading.current_thread() is threading.main_thread()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout is disabled" warning, once per call
    timeout = 5 if main else None
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    gold_text = str(reference).strip()
    if "$" not in gold_text and "\\boxed" not in gold_text and "\\(" not in gold_text:
        gold_text = f"${gold_text}$"  # a bare answer: read its LaTeX
    gold = parse(gold_text, extraction_config=configs, parsing_timeout=timeout)
    answer = parse(response, extraction_config=configs, parsing_timeout=timeout)
    if not gold or not answer:
        return False
    return bool(verify(gold, answer, timeout_seconds=timeout))


# -- composition --------------------------------------------------------------------------------------------

Components = Sequence[tuple[Judge, float]] | Mapping[str, tuple[Judge, float]]


class ComposedReward(Judge):
    """A weighted sum of pointwise judges: total = sum_k weight_k * value_k, per item.

    Every component scores the whole batch once, with the same references. Components are named by their
    dict key, or by class name with "_2", "_3", ... for repeats. Per item, `last_details` (and
    `score_detailed`) keep {"components": {name: value or None}, "total": float or None, "dropped": [names of
    components that returned None]}; `dropped` counts, over all calls, how often each component was dropped.

    on_failure, for components that return None on an item (the component counts why in its own failures):
      "renormalize": they are left out, and the present weights are scaled by W / W_present, where W is the sum
          of |weight| over all components and W_present over the present ones. The total keeps the scale of
          the full sum, and each sign is kept: weights (2, -1) with the first failed give 3 * (-1) * value_2.
          The item fails ("all weighted components failed", in this judge's failures) when every component with a
          non-zero weight failed.
      "fail": the item fails, counted once as "component failed: <name>[, <name>...]".
    """

    pointwise = True

    def __init__(self, components: Components, on_failure: str = "renormalize"):
        super().__init__()
        if on_failure not in ("renormalize", "fail"):
            raise ValueError(f"on_failure must be 'renormalize' or 'fail', got {on_failure!r}")
        self.on_failure = on_failure
        named = list(components.items()) if isinstance(components, Mapping) else [(None, c) for c in components]
        if not named:
            raise ValueError("ComposedReward needs at least one (judge, weight) component")
        self.judges: dict[str, Judge] = {}
        self.weights: dict[str, float] = {}
        for name, component in named:
            if not (isinstance(component, (tuple, list)) and len(component) == 2):
                raise TypeError(f"a component is a (judge, weight) pair, got {component!r:.200}")
            judge, weight = component
            if not isinstance(judge, Judge):
                raise TypeError(f"component {name or judge!r:.100} is not a Judge")
            if not judge.pointwise:
                raise TypeError(f"{type(judge).__name__} is a pairwise judge (pointwise=False): it gives no "
                                f"per-response score to sum. Compose pointwise judges only.")
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
                raise ValueError(f"weight of {name or type(judge).__name__} must be a finite number, got {weight!r}")
            name = name or self._unique(type(judge).__name__)
            self.judges[name], self.weights[name] = judge, float(weight)
        self.total_weight = sum(abs(w) for w in self.weights.values())
        if self.total_weight == 0:
            raise ValueError("all weights are zero")
        self.last_details: list[dict] = []
        self.dropped: Counter = Counter()

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.judges:
            k += 1
            name = f"{base}_{k}"
        return name

    def _score(self, conversations: list[Conversation], references: list | None) -> list[float | None]:
        values = {name: judge.score(conversations, references) for name, judge in self.judges.items()}
        totals: list[float | None] = []
        self.last_details = []
        for i in range(len(conversations)):
            item = {name: values[name][i] for name in self.judges}
            dropped = [name for name, v in item.items() if v is None]
            self.dropped.update(dropped)
            total = self._combine(item, dropped, i)
            totals.append(total)
            self.last_details.append({"components": item, "total": total, "dropped": dropped})
        return totals

    def _combine(self, item: dict[str, float | None], dropped: list[str], index: int) -> float | None:
        if dropped and self.on_failure == "fail":
            # one count per failed item (as for any judge), the failed components named in the reason
            self.failures.add(f"component failed: {', '.join(dropped)}", index)
            return None
        present = sum(abs(self.weights[n]) for n, v in item.items() if v is not None)
        if present == 0:  # nothing with a weight is left to sum
            self.failures.add("all weighted components failed", index)
            return None
        scale = self.total_weight / present
        return scale * sum(self.weights[n] * v for n, v in item.items() if v is not None)

    def score_detailed(self, conversations: Sequence[Conversation], references: Sequence | None = None) -> list[dict]:
        """Per item: {"components": {name: value or None}, "total": float or None, "dropped": [names]}."""
        totals = self.score(conversations, references)
        if not totals:  # the base class returns [] without calling _score
            self.last_details = []
        for detail, total in zip(self.last_details, totals):
            detail["total"] = total  # after the base class's finite check
        return self.last_details
