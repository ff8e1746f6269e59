"""The reasoning pair-PM's output format, its strict parser, and the GRPO rewards built on judges/compose.py.

The model reads the pair-PM chat (pair_pm/prepare_data.py, REASONING_QUESTION) and writes

    <principles>...</principles>
    <critique>...</critique>
    <verdict>A</verdict>

`parse_reasoning_verdict` is strict (regular expressions only, never eval): an output parses when it ends
with exactly one `<verdict>A</verdict>` or `<verdict>B</verdict>` (lowercase tag, capital letter, nothing
inside the tag but the letter, nothing after it but whitespace), holds no other verdict tag, and the verdict
is not inside an unclosed <principles> or <critique>. This is the prompted judges' answer grammar
(judges/prompts.py: the answer ends the output, once, in exactly the asked form, a capital letter) in the tag
form, and the reasons it shares with it are the same words (judges.prompts.refusal). Everything else is
malformed, with a reason:

    "empty output", "missing verdict", "several verdicts", "invalid verdict" (<verdict>a</verdict>,
    <verdict>C</verdict>, <verdict> A </verdict>), "malformed verdict tag" (<Verdict>A</Verdict>, an unclosed
    <verdict>A), "text after the verdict", "verdict inside an unclosed <critique>" (or <principles>).

Rewards (pointwise rules composed with `judges.compose.ComposedReward`; the reference is the label of the
completion's own order, "A" or "B"):

    verdict     VerdictMatch        1.0 when the parsed verdict equals the label, else 0.0      weight 1
    format      VerdictFormat       0.0 when it parses, -0.5 a malformed verdict, -1.0 none     weight malformed_penalty
    length      ReasoningLength     LengthRule on the reasoning (the text before the verdict)   weight length_weight
    structure   RegexFormatRule     1.0 when <principles>...</principles> <critique>...</critique> precede the verdict

So a right verdict earns 1 (+ the length term), a wrong one 0, a malformed one -malformed_penalty / 2 and a
missing one -malformed_penalty.
`make_verdict_reward_func` is the TRL reward function (through judges.rl.make_trl_reward_func); it also logs
each component's mean, the malformed rate and the share of "A" verdicts (a position-bias gauge) through
TRL's log_metric.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from judges.compose import ComposedReward, LengthRule, RegexFormatRule, Rule, Unscorable
from judges.prompts import refusal

VERDICTS = ("A", "B")
_EXACT_END = re.compile(r"<verdict>([AB])</verdict>\Z")
_EXACT = re.compile(r"<verdict>([AB])</verdict>")
_ANY_OPEN = re.compile(r"<\s*verdict\b[^>]*>", re.IGNORECASE)
_ANY_CLOSE = re.compile(r"<\s*/\s*verdict\s*>", re.IGNORECASE)
_LOOSE = re.compile(r"<\s*verdict\b[^>]*>(.*?)<\s*/\s*verdict\s*>", re.IGNORECASE | re.DOTALL)
_SECTIONS = ("principles", "critique")
STRUCTURE_PATTERN = r"<principles>.+?</principles>\s*<critique>.+?</critique>\s*<verdict>"


@dataclass(frozen=True)
class ParsedVerdict:
    verdict: str | None  # "A" or "B"; None when the output is malformed
    reasoning: str  # the text before the verdict (the whole output when there is no verdict tag)
    error: str | None = None  # why it is malformed

    @property
    def ok(self) -> bool:
        return self.verdict is not None


def reasoning_text(text: str) -> str:
    """The text before the first verdict tag (the whole text without one), stripped."""
    m = _ANY_OPEN.search(text) or _ANY_CLOSE.search(text)
    return (text[:m.start()] if m else text).strip()


def parse_reasoning_verdict(text: str | None) -> ParsedVerdict:
    """"A" / "B" from a reasoning pair-PM output, or None with the reason; see the module docstring."""
    if not isinstance(text, str) or not text.strip():
        return ParsedVerdict(None, "", refusal("empty", "verdict"))
    body = text.strip()
    reasoning = reasoning_text(body)
    opens, closes = len(_ANY_OPEN.findall(body)), len(_ANY_CLOSE.findall(body))
    if opens == 0 and closes == 0:
        return ParsedVerdict(None, reasoning, refusal("missing", "verdict"))
    if opens > 1 or closes > 1:
        return ParsedVerdict(None, reasoning, refusal("several", "verdict"))
    m = _EXACT_END.search(body)
    if m is None:
        loose = _LOOSE.search(body)
        if loose is None:
            return ParsedVerdict(None, reasoning, "malformed verdict tag")  # unclosed, or a closing tag alone
        if loose.group(1) not in VERDICTS:
            return ParsedVerdict(None, reasoning, refusal("invalid", "verdict"))
        if _EXACT.search(body) is None:
            return ParsedVerdict(None, reasoning, "malformed verdict tag")  # <Verdict>A</Verdict>, <verdict x>
        return ParsedVerdict(None, reasoning, refusal("after", "verdict"))
    before = body[:m.start()]
    for section in _SECTIONS:
        n_open = len(re.findall(rf"<\s*{section}\s*>", before, re.IGNORECASE))
        n_close = len(re.findall(rf"<\s*/\s*{section}\s*>", before, re.IGNORECASE))
        if n_open > n_close:
            return ParsedVerdict(None, reasoning, f"verdict inside an unclosed <{section}>")
    return ParsedVerdict(m.group(1), before.strip())


def completion_text(completion) -> str:
    """A TRL completion as text: a string (standard format) or messages ending with the assistant's."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        return content if isinstance(content, str) else ""
    raise TypeError(f"a completion is a string or a list of messages, got {completion!r:.200}")


# -- rules ---------------------------------------------------------------------------------------------------


class VerdictMatch(Rule):
    """1.0 when the output parses and its verdict equals the reference ("A" or "B"), else 0.0 (a malformed
    output also 0.0; the format rule charges for it). A missing or other reference fails the item."""

    def value(self, response: str, reference) -> float:
        if reference not in VERDICTS:
            raise Unscorable("no A/B label")
        return 1.0 if parse_reasoning_verdict(response).verdict == reference else 0.0


class VerdictFormat(Rule):
    """0.0 when the output parses; -1.0 when it has no verdict tag at all (or is empty); -0.5 when it has one
    but is malformed otherwise. With weight w a missing verdict costs w, a malformed one w/2: a ladder (missing <
    malformed < wrong < right) that rewards a policy's first steps towards the form without ever paying for a
    verdict that does not parse."""

    def value(self, response: str, reference) -> float:
        parsed = parse_reasoning_verdict(response)
        if parsed.ok:
            return 0.0
        return -1.0 if parsed.error in ("empty output", "missing verdict") else -0.5


class ReasoningLength(LengthRule):
    """LengthRule (judges.compose) on the reasoning only: the text before the verdict tag."""

    def value(self, response: str, reference) -> float:
        return super().value(reasoning_text(response), reference)


def verdict_reward(malformed_penalty: float = 1.0, reasoning_min_words: int = 0,
                   reasoning_max_words: int | None = None, length_weight: float = 0.0,
                   structure_weight: float = 0.0) -> ComposedReward:
    """The reasoning pair-PM's reward: see the module docstring. Components with weight 0 are left out; an item
    whose label is missing fails (on_failure="fail") rather than being scored without its main term."""
    if malformed_penalty < 0 or length_weight < 0 or structure_weight < 0:
        raise ValueError("malformed_penalty, length_weight and structure_weight are magnitudes (>= 0)")
    components: dict = {"verdict": (VerdictMatch(), 1.0)}
    if malformed_penalty:
        components["format"] = (VerdictFormat(), float(malformed_penalty))
    if length_weight:
        components["length"] = (ReasoningLength(reasoning_min_words, reasoning_max_words), float(length_weight))
    if structure_weight:
        components["structure"] = (RegexFormatRule(STRUCTURE_PATTERN), float(structure_weight))
    return ComposedReward(components, on_failure="fail")


def make_verdict_reward_func(reward: ComposedReward, name: str = "pair_pm_verdict",
                             label_column: str = "label") -> Callable[..., list[float | None]]:
    """A GRPOTrainer reward function: `judges.rl.make_trl_reward_func(reward, reference_column=label_column)`,
    which also logs, through TRL's log_metric, <name>/<component> (each component's mean: <name>/verdict is
    the verdict accuracy on the sampled completions), <name>/malformed_rate and <name>/answer_a_rate (the
    share of parsed verdicts that are "A"; 0.5 when the policy has no position preference)."""
    from judges.rl import make_trl_reward_func

    inner = make_trl_reward_func(reward, name=name, reference_column=label_column)

    def reward_func(prompts: list, completions: list, **kwargs) -> list[float | None]:
        scores = inner(prompts, completions, **kwargs)
        log = kwargs.get("log_metric")
        if log is not None and scores:
            for component in reward.judges:
                values = [d["components"][component] for d in reward.last_details]
                values = [v for v in values if v is not None]
                if values:
                    log(f"{name}/{component}", sum(values) / len(values))
            parsed = [parse_reasoning_verdict(completion_text(c)) for c in completions]
            log(f"{name}/malformed_rate", sum(not p.ok for p in parsed) / len(parsed))
            verdicts = [p.verdict for p in parsed if p.ok]
            if verdicts:
                log(f"{name}/answer_a_rate", verdicts.count("A") / len(verdicts))
        return scores

    reward_func.__name__ = reward_func.__qualname__ = name
    return reward_func
