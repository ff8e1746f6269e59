"""Prompted LLM judges: a chat model asked to rate, compare or rank responses.

    judge = load_llm_judge("llm:HuggingFaceTB/SmolLM2-135M-Instruct", mode="pairwise")
    judge = load_llm_judge("openai:gpt-4o-mini", mode="pointwise", cache_dir="outputs/llm-cache")

Modes (each a Judge, see judges/base.py; every method batches all its items into one backend call):
- pointwise (PointwiseLLMJudge): score() asks for a 1-10 rating per conversation and returns it rescaled
  to [0, 1], (rating - 1) / 9 (normalize=False: the raw rating). compare() is the base class's
  sigmoid(score(a) - score(b)).
- pairwise (PairwiseLLMJudge): compare() judges every pair in BOTH orders - a shown as Response A, then as
  Response B - and averages P(a better) over the two positions, so a judge's preference for a position
  cancels instead of favouring whichever response came first. How often the two orders disagree is kept
  in `judge.order_stats`. With a backend that gives next-token probabilities (HFBackend, or OpenAIBackend
  with use_logprobs=True), the default template and temperature 0, P(a better) in one order is P("A") +
  P("C")/2 renormalised over the letters A/B/C (C = tie), read only when the three hold at least
  `min_choice_mass` (judges.prompts.MIN_CHOICE_MASS, 0.1) of the next-token probability, else a counted failure
  ("answer not among the choices"); otherwise the generated verdict counts 1 (a), 0 (b) or 0.5 (tie).
  rank() aggregates all pairs (judges.aggregate, Bradley-Terry by default).
- listwise (ListwiseLLMJudge): rank(prompt, responses) asks once for a full ranking and returns
  n - position (best: n, worst: 1). rank(..., method="bt" or another judges.aggregate method) uses the
  pairwise prompt on all pairs instead; compare() is the pairwise judge's.

Failures: an item the backend could not answer (reasons from judges.backends: "timeout", "HTTP 503",
"prompt longer than max_length", ...) or whose answer the answer grammar refuses ("unparsable rating",
"unparsable verdict", "unparsable ranking"; see judges/prompts.py: the last non-empty line must be exactly
"Rating: N", "A"/"B"/"C" or "[[A]]", "[2] > [1] > [3]") is None and counted in `judge.failures`, the
grammar's reason ("several verdicts", "rating out of range", ...) in the failure's example and counted in
`judge.refused` (per answer: a pair judged in both orders can add two). A pair is a failure when either order
fails. Nothing is ever replaced by a default answer or read as a tie.

Principles: `principles=[...]` (strings) are shown to the judge as a rubric. `generate_principles` writes
them from a few labelled pairs and keeps them only when they raise agreement on held-out pairs.
"""

from __future__ import annotations

import inspect
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from judges.backends import ChatBackend, HFBackend, OpenAIBackend
from judges.base import (
    NONFINITE,
    Conversation,
    FailureLog,
    Judge,
    Message,
    PairVerdict,
    Prompt,
    conversation,
    prompt_text,
    response_text,
    split_conversation,
    winner,
)
from judges.conflicts import OrderStats
from judges.prompts import (
    answer_excerpt,
    load_template,
    parse_principles,
    read_ranking,
    read_rating,
    read_verdict,
)

PAIR_CHOICES = ("A", "B", "C")  # the default pairwise template's letters; C is a tie
OFF_CHOICES = "answer not among the choices"  # too little next-token mass on A, B and C to read a verdict from
# P(the response shown as Response A wins) for each parsed verdict.
VERDICT_FIRST_WINS = {"A": 1.0, "B": 0.0, "tie": 0.5}


class LLMJudge(Judge):
    """What the three modes share: a backend, a template, principles, sampling settings, failure counting."""

    mode: str

    def __init__(self, backend: ChatBackend, template: str | Path | None = None,
                 principles: Sequence[str] | None = None, max_new_tokens: int | None = 16, temperature: float = 0.0):
        super().__init__()
        self.backend = backend
        self.template = load_template(template, self.mode)
        from judges.principles import resolve_principles

        # a list, "scenario:<name>" (judges/principles.py), "scenario:auto" (each item's scenario: for_scenario),
        # or a rubric set's path
        self.principles, self.per_item_principles = resolve_principles(principles)
        if self.per_item_principles:  # until a caller picks an item's scenario (for_scenario, by_scenario): chat
            from judges.principles import DEFAULT_SCENARIO, scenario_principles

            self.principles = scenario_principles(DEFAULT_SCENARIO)
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.refused: Counter = Counter()  # answers the grammar refused, by reason (judges/prompts.py REFUSALS)

    def _refuse(self, error: str, text: str) -> str:
        """Count a refused answer by its reason; the failure detail naming the reason and the answer's end."""
        self.refused[error] += 1
        return f"{error}: {answer_excerpt(text)}"

    def _render(self, template, **variables) -> list[Message]:
        return [{"role": "user", "content": template.render(principles=self.principles, **variables)}]

    def for_scenario(self, scenario: str | None) -> LLMJudge:
        """This judge with the library's principles for `scenario` (judges.principles.scenario_of: a category path
        or name; unknown: the chat set): a shallow copy sharing the backend, failures and counters."""
        import copy

        from judges.principles import scenario_of, scenario_principles

        judge = copy.copy(self)
        judge.principles = scenario_principles(scenario_of(scenario))
        judge.per_item_principles = False
        return judge

    def critique(self, conversations: Sequence[Conversation], max_new_tokens: int = 256) -> list[str | None]:
        """Free-text feedback on each conversation's last response, by this judge's model and principles (the
        "critique" template): what refinement (judges/refine.py) passes to the policy. None where the call failed
        (counted in `failures`) or the answer was empty."""
        template = load_template(None, "critique")
        requests = []
        for conv in conversations:
            prompt, response = split_conversation(list(conv))
            requests.append(self._render(template, prompt=prompt_text(prompt), response=response))
        texts = self._generate(requests, max_new_tokens)
        return [t.strip() if t and t.strip() else None for t in texts]

    def _generate(self, requests: list[list[Message]], max_new_tokens: int | None = None,
                  items: list[int] | None = None) -> list[str | None]:
        """The backend's answers; a failed call counted under its item's number (`items[k]` for request k when
        the requests are not one per item, as listwise groups of one response ask nothing)."""
        results = self.backend.generate(requests, max_new_tokens=max_new_tokens or self.max_new_tokens,
                                        temperature=self.temperature)
        for k, r in enumerate(results):
            if not r.ok:
                self.failures.add(r.error, f"#{k if items is None else items[k]}: {r.detail}")
        return [r.value for r in results]  # None where the call failed


class PointwiseLLMJudge(LLMJudge):
    """Rates each response alone; see the module docstring. `low`/`high`: the rating scale (for custom
    templates on another scale)."""

    mode = "pointwise"
    pointwise = True

    def __init__(self, backend: ChatBackend, template: str | Path | None = None,
                 principles: Sequence[str] | None = None, max_new_tokens: int = 16, temperature: float = 0.0,
                 normalize: bool = True, low: float = 1, high: float = 10):
        super().__init__(backend, template, principles, max_new_tokens, temperature)
        self.normalize, self.low, self.high = normalize, low, high
        self.scores_are_probabilities = normalize  # (r - low) / (high - low) in [0, 1]: votes weigh as they are

    def _score(self, conversations: list[Conversation], references: list | None) -> list[float | None]:
        references = references or [None] * len(conversations)
        requests = []
        for conv, reference in zip(conversations, references):
            prompt, response = split_conversation(conv)
            requests.append(self._render(self.template, prompt=prompt_text(prompt), response=response,
                                         reference=reference))
        out = []
        for i, text in enumerate(self._generate(requests)):
            parsed = None if text is None else read_rating(text, self.low, self.high)
            rating = None if parsed is None else parsed.value
            if parsed is not None and not parsed.ok:
                self.failures.add("unparsable rating", f"#{i}: {self._refuse(parsed.error, text)}")
            if rating is not None and self.normalize:
                rating = (rating - self.low) / (self.high - self.low)
            out.append(rating)
        return out


class PairwiseLLMJudge(LLMJudge):
    """Compares two responses, in both orders; see the module docstring.

    use_choice_probs: "auto" reads next-token probabilities when the backend has them, the template is
    the default one (a custom template may ask for another answer format) and temperature is 0 (probabilities
    are not sampled); True requires them (the template must ask for a single letter A/B/C; temperature 0);
    False always generates and parses a verdict. Nothing else is taken ("false" was truthy).
    """

    mode = "pairwise"
    pointwise = False

    def __init__(self, backend: ChatBackend, template: str | Path | None = None,
                 principles: Sequence[str] | None = None, max_new_tokens: int = 16, temperature: float = 0.0,
                 use_choice_probs: bool | str = "auto", min_choice_mass: float | None = None):
        super().__init__(backend, template, principles, max_new_tokens, temperature)
        self._setup_pairs(template, use_choice_probs, max_new_tokens, min_choice_mass)

    def _setup_pairs(self, template: str | Path | None, use_choice_probs: bool | str, max_new_tokens: int,
                     min_choice_mass: float | None = None) -> None:
        from judges import prompts

        min_choice_mass = prompts.MIN_CHOICE_MASS if min_choice_mass is None else min_choice_mass
        if isinstance(min_choice_mass, bool) or not isinstance(min_choice_mass, (int, float)) \
                or not 0 <= min_choice_mass <= 1:
            raise ValueError(f"min_choice_mass must be a probability in [0, 1], got {min_choice_mass!r}")
        self.min_choice_mass = float(min_choice_mass)
        self.pair_template = load_template(template, "pairwise")
        self.verdict_max_new_tokens = max_new_tokens
        self.order_stats = OrderStats()
        supported = getattr(self.backend, "supports_choice_probs", False)
        if use_choice_probs not in (True, False, "auto"):  # "false" or a typo was truthy: probabilities on
            raise ValueError(f"use_choice_probs must be True, False or 'auto', got {use_choice_probs!r}")
        if use_choice_probs is True and self.temperature:
            raise ValueError("use_choice_probs=True reads the next-token probabilities: temperature does not apply; "
                             "use temperature=0, or use_choice_probs=False to sample verdicts")
        if use_choice_probs == "auto":  # sampling asked for (temperature > 0): verdicts are generated
            self.use_choice_probs = supported and template is None and not self.temperature
        elif use_choice_probs and not supported:
            raise ValueError(f"use_choice_probs=True but {type(self.backend).__name__} gives no choice probabilities")
        else:
            self.use_choice_probs = bool(use_choice_probs)

    def judge_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[PairVerdict]:
        """Every pair in both orders, in one backend call; updates failures and order_stats."""
        items = list(items)
        requests = []
        for prompt, a, b in items:
            text, a, b = prompt_text(prompt), response_text(a), response_text(b)
            requests.append(self._render(self.pair_template, prompt=text, response_a=a, response_b=b))
            requests.append(self._render(self.pair_template, prompt=text, response_a=b, response_b=a))
        first_wins, texts, errors = self._first_wins(requests)
        verdicts = []
        for i in range(len(items)):
            fwd, bwd = first_wins[2 * i], first_wins[2 * i + 1]
            text_fwd, text_bwd = texts[2 * i], texts[2 * i + 1]
            if fwd is None or bwd is None:
                order, (reason, detail) = ("forward", errors[2 * i]) if fwd is None else ("backward", errors[2 * i + 1])
                self.failures.add(reason, f"pair #{i} ({order}): {detail}")
                verdicts.append(PairVerdict(fwd, None if bwd is None else 1.0 - bwd, text_fwd, text_bwd, reason))
                continue
            verdict = PairVerdict(fwd, 1.0 - bwd, text_fwd, text_bwd)  # in the backward order a is Response B
            self.order_stats.add(verdict)  # position bias (judges.conflicts.OrderStats: the one definition)
            verdicts.append(verdict)
        return verdicts

    def _first_wins(self, requests: list[list[Message]]):
        """Per request: P(Response A wins) or None, the raw text or None, and (reason, detail) of a failure."""
        n = len(requests)
        first_wins: list[float | None] = [None] * n
        texts: list[str | None] = [None] * n
        errors: list[tuple[str, str] | None] = [None] * n
        if self.use_choice_probs:
            for i, r in enumerate(self.backend.choice_probs(requests, PAIR_CHOICES)):
                if r.ok:
                    mass = sum(r.value)
                    if not math.isfinite(mass):  # a failure, before it reaches order_stats
                        errors[i] = (NONFINITE, f"choice probabilities {r.value!r:.100}")
                    elif not mass >= self.min_choice_mass:  # the model answers something else: no verdict
                        errors[i] = (OFF_CHOICES, f"P(A) + P(B) + P(C) = {mass:.3g} < min_choice_mass "
                                                  f"{self.min_choice_mass}")
                    else:
                        p_a, _, p_tie = (v / mass for v in r.value)
                        first_wins[i] = p_a + p_tie / 2
                else:
                    errors[i] = (r.error, r.detail)
            return first_wins, texts, errors
        results = self.backend.generate(requests, max_new_tokens=self.verdict_max_new_tokens,
                                        temperature=self.temperature)
        for i, r in enumerate(results):
            if not r.ok:
                errors[i] = (r.error, r.detail)
                continue
            texts[i] = r.value
            parsed = read_verdict(r.value)
            if parsed.ok:
                first_wins[i] = VERDICT_FIRST_WINS[parsed.value]
            else:
                errors[i] = ("unparsable verdict", self._refuse(parsed.error, r.value))
        return first_wins, texts, errors

    def _compare(self, items: list[tuple[Prompt, str, str]]) -> list[float | None]:
        return [v.p for v in self.judge_pairs(items)]


class ListwiseLLMJudge(PairwiseLLMJudge):
    """Ranks all responses to a prompt in one answer; see the module docstring. `pairwise_template`,
    `verdict_max_new_tokens` and `use_choice_probs` are for compare() and rank() with an aggregation method.
    max_new_tokens (of a ranking) None: 8 per response plus 16, enough for "[3] > [1] > [2]"."""

    mode = "listwise"

    def __init__(self, backend: ChatBackend, template: str | Path | None = None,
                 principles: Sequence[str] | None = None, max_new_tokens: int | None = None,
                 temperature: float = 0.0, pairwise_template: str | Path | None = None,
                 verdict_max_new_tokens: int = 16, use_choice_probs: bool | str = "auto",
                 min_choice_mass: float | None = None):
        LLMJudge.__init__(self, backend, template, principles, max_new_tokens, temperature)  # not the pair template
        self._setup_pairs(pairwise_template, use_choice_probs, verdict_max_new_tokens, min_choice_mass)

    def rank(self, prompt: Prompt, responses: Sequence[str], method: str = "auto") -> list[float | None]:
        if method != "auto":
            return super().rank(prompt, responses, method)
        return self.rank_many([(prompt, responses)])[0]

    def rank_many(self, items: Sequence[tuple[Prompt, Sequence[str]]]) -> list[list[float | None]]:
        """Listwise scores for many (prompt, responses) at once, in one backend call."""
        # each response as the pairwise path shows it (a reply of several turns labelled, never a Python repr);
        # None or a number is a ValueError (judges.base.conversation), never ranked
        def shown(prompt, response):
            conversation(prompt, response)  # the check: a string or a list of messages
            return response_text(response)

        items = [(prompt, [shown(prompt, r) for r in responses]) for prompt, responses in items]
        asked = [i for i, (_, responses) in enumerate(items) if len(responses) > 1]
        requests = [self._render(self.template, prompt=prompt_text(items[i][0]), responses=items[i][1])
                    for i in asked]
        longest = max((len(items[i][1]) for i in asked), default=0)
        texts = self._generate(requests, self.max_new_tokens or 8 * longest + 16, items=asked) if requests else []
        out = [[1.0] * len(responses) for _, responses in items]  # zero or one response: nothing to ask
        for i, text in zip(asked, texts):
            n = len(items[i][1])
            parsed = None if text is None else read_ranking(text, n)
            order = None if parsed is None else parsed.value
            if order is None:
                if parsed is not None:
                    self.failures.add("unparsable ranking", f"#{i}: {self._refuse(parsed.error, text)}")
                out[i] = [None] * n
                continue
            for position, number in enumerate(order):
                out[i][number - 1] = float(n - position)
        return out


MODES = {"pointwise": PointwiseLLMJudge, "pairwise": PairwiseLLMJudge, "listwise": ListwiseLLMJudge}


def llm_judge(backend: ChatBackend, mode: str = "pairwise", **kwargs) -> LLMJudge:
    if mode not in MODES:
        raise ValueError(f"unknown LLM judge mode {mode!r}; choose from {sorted(MODES)}")
    if mode == "pointwise" and kwargs.get("min_choice_mass") is not None:  # a TypeError deep in the constructor
        raise ValueError("min_choice_mass (--judge_min_choice_mass) reads pairwise verdicts: a pointwise judge's "
                         "ratings are generated text; leave it out or use mode pairwise/listwise")
    return MODES[mode](backend, **kwargs)


BACKENDS = {"llm": HFBackend, "openai": OpenAIBackend}


def load_backend(spec: str, kwargs: dict) -> ChatBackend:
    """The chat backend of "llm:<HF id or folder>" (HFBackend) or "openai:<model>" (OpenAIBackend), built with the
    keyword arguments its constructor takes (cache_dir, base_url, batch_size, timeout_s, ...), which are POPPED
    from `kwargs`; what is left is for the caller (a judge's template, principles, ...). An option of the other
    backend (dtype for an endpoint, timeout_s for a local model) is an error naming what this one takes."""
    kind, _, model = spec.partition(":")
    if kind not in BACKENDS or not model:
        raise ValueError(f"an LLM spec must be 'llm:<model>' or 'openai:<model>', got {spec!r}")
    cls = BACKENDS[kind]

    def params(c) -> set[str]:
        return set(inspect.signature(c.__init__).parameters) - {"self"}

    backend_params = params(cls)
    misplaced = sorted(k for k in kwargs if k not in backend_params and any(k in params(c) for c in BACKENDS.values()))
    if misplaced:
        raise ValueError(f"{', '.join(misplaced)}: not an option of {kind}: judges or models ({cls.__name__} takes "
                         f"{', '.join(sorted(backend_params - {'model', 'model_name_or_path'}))})")
    return cls(model, **{k: kwargs.pop(k) for k in list(kwargs) if k in backend_params})


def load_llm_judge(spec: str, mode: str = "pairwise", **kwargs) -> LLMJudge:
    """"llm:<HF id or folder>" (HFBackend) or "openai:<model>" (OpenAIBackend). Keyword arguments that
    the backend's constructor takes (cache_dir, base_url, batch_size, timeout_s, ...) go to the backend
    (load_backend), the others to the judge (template, principles, max_new_tokens, use_choice_probs, ...);
    `rubrics=PATH` reads a rubric set (judges/rubrics.py) as the principles."""
    rubrics = kwargs.pop("rubrics", None)
    if rubrics is not None:  # a rubric set on disk (judges/rubrics.py): its principles
        if kwargs.get("principles"):
            raise ValueError("pass principles or rubrics, not both")
        kwargs["principles"] = str(rubrics)
    backend = load_backend(spec, kwargs)
    return llm_judge(backend, mode, **kwargs)


# -- principles from labelled pairs --------------------------------------------------------------------------
@dataclass
class PrinciplesReport:
    principles: list[str]  # the kept principles; [] when none raised held-out agreement
    kept: bool
    agreement_with: float | None  # held-out agreement of the best candidate set
    agreement_without: float | None  # held-out agreement with no principles
    n_heldout: int  # held-out pairs judged by every configuration (failures are left out of both figures)
    candidates: list[list[str]] = field(default_factory=list)  # every candidate set, best first
    failures: FailureLog = field(default_factory=FailureLog)
    message: str = ""


def _agreement(ps: list[float | None], use: list[int]) -> float | None:
    """The share of pairs the judge decides for the labelled winner; a tie (judges.base.winner) counts wrong (half
    credit would let principles that only turn wrong verdicts into ties look like a gain)."""
    if not use:
        return None
    return sum(winner(ps[i]) == 1 for i in use) / len(use)


def generate_principles(backend: ChatBackend, labelled_pairs: Sequence[tuple[Prompt, str, str]],
                        heldout_pairs: Sequence[tuple[Prompt, str, str]], n_candidates: int = 1,
                        max_principles: int = 5, pairs_per_prompt: int = 4, max_new_tokens: int = 256,
                        **judge_kwargs) -> PrinciplesReport:
    """Ask the LLM for principles explaining why chosen beat rejected in `labelled_pairs`
    ((prompt, chosen, rejected) triples), then keep them only if the pairwise judge with them agrees with
    the labels of `heldout_pairs` more often than without them.

    Candidate k is written from a different random sample of `pairs_per_prompt` labelled pairs (greedy
    decoding, so reruns hit the cache). With n_candidates > 1 the best one is picked on the held-out pairs,
    so its held-out agreement is optimistic: measure the kept principles on a third split before quoting it.
    `judge_kwargs` go to PairwiseLLMJudge (use_choice_probs, max_new_tokens of the verdicts, ...)."""
    labelled = list(labelled_pairs)
    heldout = list(heldout_pairs)
    failures = FailureLog()
    template = load_template(None, "principles")
    requests = []
    for k in range(n_candidates):
        sample = random.Random(k).sample(labelled, min(pairs_per_prompt, len(labelled)))
        examples = [{"prompt": prompt_text(p), "chosen": c, "rejected": r} for p, c, r in sample]
        content = template.render(examples=examples, max_principles=max_principles)
        requests.append([{"role": "user", "content": content}])
    candidates = []
    for k, result in enumerate(backend.generate(requests, max_new_tokens=max_new_tokens, temperature=0.0)):
        if not result.ok:
            failures.add(result.error, f"candidate {k}: {result.detail}")
            continue
        principles = parse_principles(result.value, max_principles)
        if principles:
            candidates.append(principles)
        else:
            failures.add("no principles in answer", f"candidate {k}: {result.value!r}")

    def held_out(principles: list[str]) -> list[float | None]:
        judge = PairwiseLLMJudge(backend, principles=principles, **judge_kwargs)
        ps = judge.compare_batch(heldout)
        failures.counts.update(judge.failures.counts)
        return ps

    baseline = held_out([])
    scored = [(principles, held_out(principles)) for principles in candidates]
    use = [i for i in range(len(heldout)) if baseline[i] is not None and all(ps[i] is not None for _, ps in scored)]
    without = _agreement(baseline, use)
    ranked = sorted(((_agreement(ps, use), principles) for principles, ps in scored),
                    key=lambda t: -1.0 if t[0] is None else t[0], reverse=True)
    best_agreement, best = ranked[0] if ranked else (None, [])
    kept = best_agreement is not None and without is not None and best_agreement > without
    if kept:
        message = (f"kept {len(best)} principles: held-out agreement {best_agreement:.3f} with them vs "
                   f"{without:.3f} without, on {len(use)} pairs")
    elif not candidates:
        message = "no candidate principles were generated: returning none"
    elif best_agreement is None or without is None:
        message = "no held-out pair was judged in every configuration: returning no principles"
    else:
        message = (f"principles did not raise held-out agreement ({best_agreement:.3f} with the best candidate vs "
                   f"{without:.3f} without, on {len(use)} pairs): returning none")
    return PrinciplesReport(best if kept else [], kept, best_agreement, without, len(use),
                            [principles for _, principles in ranked], failures, message)
