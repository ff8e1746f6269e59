"""The Judge interface: one way to ask any reward model or prompted LLM for a reward.

    score(conversations, references=None) -> list[float | None]   a reward per conversation
    compare(prompt, a, b)                 -> float | None          P(a is better than b)
    compare_batch([(prompt, a, b), ...])  -> list[float | None]
    rank(prompt, responses, method)       -> list[float | None]    a score per response, higher is better

A pointwise judge (a Bradley-Terry RM, a rule, an LLM rating) implements `_score`; it gets `compare` as
sigmoid(score(a) - score(b)). A pairwise judge (pair-PM, a prompted LLM comparing two answers) implements
`_compare`; it gets `rank` from a matrix of pairwise probabilities aggregated by `judges.aggregate`.

Failures. An item a judge cannot score (an unparsable LLM verdict, an empty answer from the judging LLM, an
endpoint that timed out after its retries) comes back as `None` and is counted in `judge.failures` with its
reason. An empty response being judged is not such an item: reward-model judges, rules and LLM judges all judge
it (an RL policy can emit one, and it deserves a low reward, not a skip); only a text that tokenizes to nothing
(RewardModelJudge.score_texts, "empty text") fails. A failure is never replaced by a default: "error means tie"
or "error means the first response wins" would bias every benchmark and every RL reward built on the judge.
Callers decide what a None means for them.

NaN and inf are failures too, on every path: `score`, `compare`, `compare_batch` and the base `rank` check what
the subclass returns, and a subclass's own `score_pairs`, `judge_pairs`, `rank` or `rank_many` (a batched fast
path) is wrapped when the class is defined (`Judge.__init_subclass__`), so a non-finite number (or a
probability outside [0, 1]) becomes None, counted in `failures` as "non-finite score", whichever path asked.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
Prompt = str | list  # a user message, or a list of messages ending before the response
Conversation = list  # list[Message], ending with the assistant response being judged


def as_messages(prompt: Prompt) -> list[Message]:
    """A prompt given as text becomes one user message; a message list is checked and copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, (list, tuple)) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                        for m in prompt):
        raise TypeError(f"a prompt is a string or a list of {{'role', 'content'}} messages, got {prompt!r:.200}")
    return [dict(m) for m in prompt]


def conversation(prompt: Prompt, response: str | list) -> Conversation:
    """prompt + the response: a string, or (a continuation of several turns) messages ending with the assistant.
    ValueError for any other response (None, a number, a list of non-messages): never iterated into nonsense."""
    if isinstance(response, str):
        return as_messages(prompt) + [{"role": "assistant", "content": response}]
    if not isinstance(response, (list, tuple)) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                          for m in response):
        raise ValueError(f"a response is a string or a list of {{'role', 'content'}} messages, got "
                         f"{type(response).__name__} {response!r:.100}")
    return as_messages(prompt) + split_conversation(list(response))[0] + [dict(response[-1])]


def response_of(messages: list[Message]) -> str | list[Message]:
    """A preference row's side (rm_core.data: the messages after the prompt) as a judge takes a response: one
    message as its text, a continuation of several turns as its messages (see `conversation`)."""
    return messages[0]["content"] if len(messages) == 1 else messages


def split_conversation(conv: Conversation) -> tuple[list[Message], str]:
    """(prompt messages, response text) of a conversation that ends with an assistant message."""
    if not conv or not isinstance(conv[-1], dict) or conv[-1].get("role") != "assistant":
        raise ValueError("a judged conversation must end with an assistant message")
    return [dict(m) for m in conv[:-1]], conv[-1]["content"]


def prompt_text(prompt: Prompt) -> str:
    """The prompt as plain text (earlier turns labelled), for prompted judges and rules."""
    messages = as_messages(prompt)
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def response_text(response: str | list[Message]) -> str:
    """A response as the text a prompted judge reads: one reply as it is; a continuation of several turns (a pair
    whose two sides part before the last turn, as some HH-RLHF pairs do) with every turn labelled, as prompt_text
    labels a prompt, so no turn is dropped and no message list reaches a tokenizer or a template."""
    if isinstance(response, str):
        return response
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in response)


def reply_text(response: str | list[Message]) -> str:
    """A response given as text or as a preference row's side (messages): one reply as its text, a continuation of
    several turns labelled (response_of, then response_text)."""
    return response if isinstance(response, str) else response_text(response_of(response))


def pair_texts(pref: dict) -> tuple[str, str]:
    """(chosen, rejected) of a preference row (rm_core.data) as response_text gives them."""
    return reply_text(pref["chosen"]), reply_text(pref["rejected"])


def check_text(value: object, what: str) -> None:
    """ValueError naming `what` when a string in `value` (a string, or lists / dicts of them, searched through)
    cannot be encoded as UTF-8: a lone surrogate such as "\\ud800", which JSON and Python accept but no tokenizer,
    template or HTTP client can take."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} holds a lone surrogate ({value[exc.start]!r} at character {exc.start}), "
                             "which is not valid UTF-8 text") from None
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_text(v, f"{what}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, f"{what} key")
            check_text(v, f"{what}[{k!r}]")


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass
class FailureLog:
    """Counted failures, by reason, with the first few items named (for the report)."""

    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    max_examples: int = 5

    def add(self, reason: str, item: object = None) -> None:
        self.counts[reason] += 1
        if item is not None:
            named = self.examples.setdefault(reason, [])
            if len(named) < self.max_examples:
                named.append(str(item)[:200])

    def merge(self, other: FailureLog) -> None:
        """Add `other`'s counts and, up to max_examples, its named items."""
        self.counts.update(other.counts)
        for reason, named in other.examples.items():
            kept = self.examples.setdefault(reason, [])
            kept += named[: max(0, self.max_examples - len(kept))]

    def copy(self) -> FailureLog:
        return FailureLog(Counter(self.counts), {r: list(n) for r, n in self.examples.items()}, self.max_examples)

    def restore(self, saved: FailureLog) -> None:
        """Back to `saved` (a copy taken earlier), in place: holders of this log see it too."""
        self.counts.clear()
        self.counts.update(saved.counts)
        self.examples.clear()
        self.examples.update({r: list(n) for r, n in saved.examples.items()})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(self.counts), "examples": dict(self.examples)}

    def __str__(self) -> str:
        if not self.total:
            return "failures: 0"
        return f"failures: {self.total} (" + ", ".join(f"{r}: {n}" for r, n in self.counts.most_common()) + ")"


class Judge:
    """Base class; see the module docstring. Subclasses implement `_score` or `_compare` (or both)."""

    #: True when `score` is native (a reward per response); False for judges that only compare.
    pointwise: bool = True
    #: rank() method used by "auto" for pairwise judges
    default_rank_method: str = "bt"
    #: True when `score` gives a probability (a PRM / ORM's P("+")): best-of-N weighted votes use it as it is,
    #: where other scores (a reward model's logit) go through a sigmoid
    scores_are_probabilities: bool = False

    #: the running counts a judge may keep over calls (those it has): what `saved_counts` puts back
    COUNTS = ("failures", "truncated", "truncation", "report", "order_stats", "verdict_stats", "refused", "outcomes")

    def __init__(self) -> None:
        self.failures = FailureLog()

    def saved_counts(self) -> Callable[[], None]:
        """A function that puts this judge's running counts (COUNTS: failures, truncations, order and verdict
        statistics, an LLM judge's refused answers, a code judge's outcomes) back to what they are now, in place
        (whoever holds one sees it): for a call whose work is discarded and run again, as the service's merged batch
        that raised (judges.serve.DynamicBatcher)."""
        saved = {name: copy.deepcopy(getattr(self, name)) for name in self.COUNTS if hasattr(self, name)}

        def restore() -> None:
            for name, value in saved.items():
                current = getattr(self, name)
                if isinstance(current, FailureLog):
                    current.restore(value)
                elif isinstance(current, dict):  # a Counter
                    current.clear()
                    current.update(value)
                elif dataclasses.is_dataclass(current) and type(current) is type(value):
                    vars(current).update(copy.deepcopy(vars(value)))
                else:  # a number
                    setattr(self, name, value)

        return restore

    def __init_subclass__(cls, **kwargs) -> None:
        """Wrap the batched paths a subclass defines itself, so their NaN/inf become counted failures."""
        super().__init_subclass__(**kwargs)
        for name, wrap in _CHECKED_PATHS.items():
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_finite_checked", False):
                setattr(cls, name, wrap(method))

    # -- pointwise ---------------------------------------------------------------------------------------
    def _score(self, conversations: list[Conversation], references: list | None) -> list[float | None]:
        raise NotImplementedError(f"{type(self).__name__} is a pairwise judge: use compare() or rank()")

    def score(self, conversations: Sequence[Conversation], references: Sequence | None = None) -> list[float | None]:
        conversations = list(conversations)
        if references is not None and len(references) != len(conversations):
            raise ValueError(f"{len(references)} references for {len(conversations)} conversations")
        if not conversations:
            return []
        out = self._score(conversations, None if references is None else list(references))
        if len(out) != len(conversations):
            raise RuntimeError(f"{type(self).__name__} returned {len(out)} scores for {len(conversations)} items")
        return [checked_score(v, self.failures, i) for i, v in enumerate(out)]

    def score_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[tuple[float | None, float | None]]:
        """(score of a, score of b) for each (prompt, a, b); pointwise judges may share the prompt's compute."""
        convs = [c for prompt, a, b in items for c in (conversation(prompt, a), conversation(prompt, b))]
        flat = self.score(convs)
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(items))]

    # -- pairwise ----------------------------------------------------------------------------------------
    def _compare(self, items: list[tuple[Prompt, str, str]]) -> list[float | None]:
        out = []
        for sa, sb in self.score_pairs(items):
            out.append(None if sa is None or sb is None else sigmoid(sa - sb))
        return out

    def compare_batch(self, items: Sequence[tuple[Prompt, str, str]]) -> list[float | None]:
        items = list(items)
        if not items:
            return []
        out = self._compare(items)
        if len(out) != len(items):
            raise RuntimeError(f"{type(self).__name__} returned {len(out)} probabilities for {len(items)} pairs")
        checked = []
        for i, p in enumerate(out):
            p = checked_score(p, self.failures, i)
            if p is not None and not 0.0 <= p <= 1.0:
                self.failures.add("probability outside [0, 1]", i)
                p = None
            checked.append(p)
        return checked

    def compare(self, prompt: Prompt, response_a: str, response_b: str) -> float | None:
        return self.compare_batch([(prompt, response_a, response_b)])[0]

    # -- listwise ----------------------------------------------------------------------------------------
    def rank(self, prompt: Prompt, responses: Sequence[str], method: str = "auto") -> list[float | None]:
        """One score per response, higher is better. "auto": the judge's own scores when pointwise, else
        `default_rank_method` over all pairs. Other methods: see judges.aggregate.METHODS."""
        responses = list(responses)
        if method == "auto" and self.pointwise:
            return self.score([conversation(prompt, r) for r in responses])
        from judges.aggregate import aggregate

        return [None if math.isnan(v) else float(v)
                for v in aggregate(self.preference_matrix(prompt, responses),
                                   self.default_rank_method if method == "auto" else method)]

    def preference_matrix(self, prompt: Prompt, responses: Sequence[str]):
        """n x n numpy array, P[i, j] = P(response i beats response j); NaN where a comparison failed."""
        import numpy as np

        n = len(responses)
        P = np.full((n, n), np.nan)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        probs = self.compare_batch([(prompt, responses[i], responses[j]) for i, j in pairs])
        for (i, j), p in zip(pairs, probs):
            if p is not None:
                P[i, j], P[j, i] = p, 1.0 - p
        return P


NONFINITE = "non-finite score"


def checked_score(value, failures: FailureLog, index: int) -> float | None:
    if value is None:
        return None  # the subclass has already counted why
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        failures.add(NONFINITE, index)
        return None
    return value


def _finite_checked(wrapper):
    wrapper._finite_checked = True
    return wrapper


def _check_score_pairs(method):
    @functools.wraps(method)
    def score_pairs(self, items):
        return [(checked_score(a, self.failures, f"pair #{i} (a)"), checked_score(b, self.failures, f"pair #{i} (b)"))
                for i, (a, b) in enumerate(method(self, items))]
    return _finite_checked(score_pairs)


def _probability_problem(p) -> str | None:
    if p is None:
        return None  # already a failure, counted by the judge
    if not math.isfinite(float(p)):
        return NONFINITE
    return None if 0.0 <= float(p) <= 1.0 else "probability outside [0, 1]"


def _check_judge_pairs(method):
    @functools.wraps(method)
    def judge_pairs(self, items):
        out = []
        for i, v in enumerate(method(self, items)):
            forward, backward = _probability_problem(v.p_forward), _probability_problem(v.p_backward)
            if forward or backward:  # one count per pair, as for any failed pair
                reason = NONFINITE if NONFINITE in (forward, backward) else (forward or backward)
                self.failures.add(reason, f"pair #{i}")
                v = dataclasses.replace(v, p_forward=None if forward else v.p_forward,
                                        p_backward=None if backward else v.p_backward, error=v.error or reason)
            out.append(v)
        return out
    return _finite_checked(judge_pairs)


def _check_rank(method):
    @functools.wraps(method)
    def rank(self, *args, **kwargs):
        return [checked_score(v, self.failures, i) for i, v in enumerate(method(self, *args, **kwargs))]
    return _finite_checked(rank)


def _check_rank_many(method):
    @functools.wraps(method)
    def rank_many(self, items):
        return [[checked_score(v, self.failures, f"group #{g}, response #{i}") for i, v in enumerate(scores)]
                for g, scores in enumerate(method(self, items))]
    return _finite_checked(rank_many)


_CHECKED_PATHS = {"score_pairs": _check_score_pairs, "judge_pairs": _check_judge_pairs, "rank": _check_rank,
                  "rank_many": _check_rank_many, "score_texts": _check_rank,  # score_texts: RewardModelJudge
                  "score_steps": _check_rank_many}  # score_steps: process judges, a list of step scores per item


@dataclass
class BestOfN:
    index: int | None  # the chosen candidate; None when every candidate failed
    ranking: list[tuple[int, float]]  # (candidate index, score), best first; failed candidates left out
    failed: list[int]  # candidates the judge could not score

    @property
    def scores(self) -> list[float | None]:
        by_index = dict(self.ranking)
        return [by_index.get(i) for i in range(len(self.ranking) + len(self.failed))]


def best_of_n(judge: Judge, prompt: Prompt, candidates: Sequence[str], method: str = "auto") -> BestOfN:
    """Pick the best candidate. Ties go to the lower index (deterministic)."""
    scores = judge.rank(prompt, list(candidates), method)
    ranking = sorted(((i, s) for i, s in enumerate(scores) if s is not None), key=lambda t: (-t[1], t[0]))
    return BestOfN(ranking[0][0] if ranking else None, ranking, [i for i, s in enumerate(scores) if s is None])


# -- run-time registrations: rm_family (config.json) -> judge class --------------------------------------------
# This repository's families are found by name in judges/registry.py (FAMILIES, and an entry-point group for
# families outside it), never by importing them; this dict holds only what register_judge adds at run time.
JUDGE_FAMILIES: dict[str, Callable] = {}


def register_judge(*families: str):
    """Class decorator: `judges.load` builds this judge for checkpoints whose config.json says rm_family (it takes
    precedence over judges.registry: for tests, notebooks and experiments)."""

    def wrap(cls):
        for family in families:
            JUDGE_FAMILIES[family] = cls
        return cls

    return wrap


@dataclass
class PairVerdict:
    """A pair judged in both orders. p_forward: P(a better) with a shown first; p_backward: P(a better)
    with a shown second (already mapped back to a). Judges that see both orders expose
    `judge_pairs(items) -> list[PairVerdict]`, so position bias can be measured (judges.conflicts)."""

    p_forward: float | None
    p_backward: float | None
    text_forward: str | None = None  # a generative judge's raw answers (None when read from probabilities)
    text_backward: str | None = None
    error: str | None = None  # why the pair failed

    @property
    def p(self) -> float | None:
        if self.p_forward is None or self.p_backward is None:
            return None
        return (self.p_forward + self.p_backward) / 2

    @property
    def consistent(self) -> bool | None:
        """Same winner (or a tie both times) in both orders; None when either order failed."""
        if self.p_forward is None or self.p_backward is None:
            return None
        return winner(self.p_forward) == winner(self.p_backward)


def winner(p: float, tie_tol: float = 1e-6) -> int:
    """+1: a better, -1: b better, 0: a tie (|p - 0.5| <= tie_tol)."""
    return 0 if abs(p - 0.5) <= tie_tol else (1 if p > 0.5 else -1)


def chosen_wins(p: float | None) -> bool:
    """A pairwise P(chosen better) counts right: decided (not None) and beyond `winner`'s tie tolerance of 0.5 (two
    orders' mean a float step above 0.5 is a tie, so wrong). The evaluators' and order statistics' one rule."""
    return p is not None and winner(p) == 1


def truncation_count(judge) -> int | None:
    """Sequences the judge has cut to its max_length so far: a scalar-head RM's `truncated` (judges.rm_judge), a
    pair-PM's `truncation.truncated`, a process / outcome RM's `report.truncated`; None for a judge that keeps no such
    count (an LLM judge fails a prompt that is too long instead: its failures). Read by the evaluators and the
    service."""
    for owner in (judge, getattr(judge, "truncation", None), getattr(judge, "report", None)):
        value = getattr(owner, "truncated", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
