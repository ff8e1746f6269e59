"""Prompt templates for LLM judges, and the parsers that read their answers.

Templates are Jinja2 strings rendered in a sandbox with StrictUndefined, so a typo in a custom template
(`{{ respnse }}`) is an error at the first render, never an empty hole in the prompt. Variables:

    pointwise   prompt, response, reference (None when not given), principles
    pairwise    prompt, response_a, response_b, principles
    listwise    prompt, responses (a list, shown numbered from 1), principles

`principles` is a list of strings (empty when none); the default templates show it as a rubric.

The answer grammar: what each default template asks for, and the only thing its parser accepts. In every
mode the LAST non-empty line is the answer, alone on it (surrounding whitespace aside), and it appears once:
    pointwise   "Rating: N", N a plain integer in low..high (1..10)     read_rating / parse_rating
    pairwise    "A", "B", or "C" for a tie (one capital letter, so      read_verdict / parse_verdict
                the first generated token is the verdict and a local model's next-token probabilities over
                A/B/C can be read directly); "[[A]]"/"[[B]]"/"[[C]]" (MT-Bench's form, for custom templates)
    listwise    "[2] > [1] > [3]", best first, each of 1..n once       read_ranking / parse_ranking
    principles  a bulleted list ("- ..."), written from `examples`     parse_principles
                (dicts with prompt, chosen, rejected) and `max_principles`
    critique    free text (an LLM judge's feedback, judges/refine.py): prompt, response, principles
    refine      the policy's next response (judges/refine.py): candidates (dicts with response, feedback)
    rubric_*    judges/rubrics.py: propose / revise (a bulleted list, parse_principles) from prompt, response_a,
                response_b, better ("A"/"B"), max_rubrics (revise: + rubrics, verdicts); structure ("Theme: ..."
                lines each followed by "- Tip: ..." lines, parse_themes) from rubrics, max_themes, max_tips
Everything else is refused with one of the REFUSALS reasons ("missing verdict", "several verdicts", "invalid
rating", "rating out of range", "text after the ranking", ...); read_* return Parsed(value, error), parse_*
the value or None. A judge counts a refused answer as a failure ("unparsable verdict" etc., with the reason in
the failure's example) and by reason in `judge.refused`; it is never read as a tie or a default. The parsers
use regular expressions only (never eval or literal_eval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

T = TypeVar("T")

_RUBRIC = """\
{% if principles %}
Judge by these principles:
{% for p in principles %}
- {{ p }}
{% endfor %}

{% endif %}"""

POINTWISE = """\
Rate how well the response answers the user's request, on a scale from 1 (useless or harmful) to 10 (excellent).

""" + _RUBRIC + """\
[User request]
{{ prompt }}

{% if reference is not none %}
[Reference answer]
{{ reference }}

{% endif %}
[Response]
{{ response }}

Reply with only the rating, on one line, in the form "Rating: N" where N is a whole number from 1 to 10, and nothing else."""

# the pair as every pairwise prompt shows it
_PAIR_SHOWN = """\
[User request]
{{ prompt }}

[Response A]
{{ response_a }}

[Response B]
{{ response_b }}
"""

PAIRWISE = """\
Which of the two responses answers the user's request better?

""" + _RUBRIC + _PAIR_SHOWN + """
Reply with a single capital letter and nothing else: "A" if Response A is better, "B" if Response B is better, \
"C" if they are equally good."""

LISTWISE = """\
Rank the {{ responses | length }} responses below from best to worst answer to the user's request.

""" + _RUBRIC + """\
[User request]
{{ prompt }}

{% for r in responses %}
[Response {{ loop.index }}]
{{ r }}

{% endfor %}
Reply with only the ranking, on one line, best first, in the form {% for r in responses %}[{{ loop.index }}]\
{{ " > " if not loop.last else "" }}{% endfor %} (the numbers of all {{ responses | length }} responses in brackets, each once), \
and nothing else."""


# -- parsers -----------------------------------------------------------------------------------------------
# The answer grammar. One rule for every mode: the LAST non-empty line (surrounding whitespace aside) is the
# answer, exactly in the form the prompt asks for, and the answer appears once. Anything else is refused with a
# reason from REFUSALS (the judge counts it as an "unparsable ..." failure and by reason in `judge.refused`),
# never read as a tie or a default. pair_pm/grpo_rewards.parse_reasoning_verdict applies the same rule to its
# <verdict>A</verdict> form, with the same reasons.
REFUSALS = {
    "empty": "empty output",                      # nothing but whitespace
    "missing": "missing {}",                      # no answer in the asked form anywhere
    "several": "several {}s",                     # more than one answer ("[[A]]\n[[B]]", a quoted "[[B]]")
    "invalid": "invalid {}",                      # the last line is an answer in another form ("**A**", "a",
                                                  # "A.", "Rating: 7.5", "Rating: 1e1", "Rating: -3", "[1] > [1]")
    "range": "{} out of range",                   # "Rating: 11" on a 1-10 scale
    "after": "text after the {}",                 # the answer is on an earlier line
    "not_alone": "{} not alone on its line",      # "My final verdict is [[A]]."
}


def refusal(kind: str, what: str) -> str:
    """The reason an answer is refused: refusal("several", "verdict") == "several verdicts"."""
    return REFUSALS[kind].format(what)


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """What a parser read: the value, or None and `error`, the grammar's reason (see REFUSALS)."""

    value: T | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _lines(text: str | None) -> list[str]:
    """The non-empty lines of `text`, stripped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()] if isinstance(text, str) else []


def answer_excerpt(text: str, n: int = 120) -> str:
    """The end of an answer for a failure record (the grammar is about the end)."""
    return repr(text if len(text) <= n else "..." + text[-n:])


_VERDICT_LINE = re.compile(r"([ABC])|\[\[([ABC])\]\]")  # the whole last line
_VERDICT_MARK = re.compile(r"\[\[[^\[\]\n]{0,12}\]\]")  # "[[...]]" anywhere: a verdict in the MT-Bench form
_VERDICT_LIKE = re.compile(r"[a-z]|tie", re.IGNORECASE)  # a line that is a verdict once decoration is removed
_DECORATION = " \t*_`\"'()[]{}.,;:!?"
_VERDICTS = {"A": "A", "B": "B", "C": "tie"}


def read_verdict(text: str | None) -> Parsed[str]:
    """A pairwise verdict: "A", "B" or "tie" (the letter C), or the reason it is refused.

    Accepted: the last non-empty line is exactly A, B or C (capital, alone), or [[A]], [[B]] or [[C]] (the
    MT-Bench form, for custom templates); no other line is a bare verdict letter and no other "[[...]]" appears.
    Refused: "I would not choose A." and "Tie-breaker: A" (missing verdict), "[[A]]\\n[[B]]" (several verdicts),
    "**A**", "A.", "a", "Tie", "D" (invalid verdict), "A\\nbecause ..." (text after the verdict), "Final verdict:
    [[A]]" (verdict not alone on its line)."""
    lines = _lines(text)
    if not lines:
        return Parsed(None, refusal("empty", "verdict"))
    last = lines[-1]
    marks = len(_VERDICT_MARK.findall("\n".join(lines)))
    bare = sum(bool(re.fullmatch(r"[ABC]", line)) for line in lines)
    if marks + bare > 1:
        return Parsed(None, refusal("several", "verdict"))
    m = _VERDICT_LINE.fullmatch(last)
    if m:
        return Parsed(_VERDICTS[m.group(1) or m.group(2)])
    if _VERDICT_LIKE.fullmatch(last.strip(_DECORATION)):  # "**A**", "A.", "a", "(B)", "[[a]]", "Tie", "D"
        return Parsed(None, refusal("invalid", "verdict"))
    if _VERDICT_MARK.search(last):
        return Parsed(None, refusal("not_alone", "verdict"))
    if marks + bare:
        return Parsed(None, refusal("after", "verdict"))
    return Parsed(None, refusal("missing", "verdict"))


def parse_verdict(text: str | None) -> str | None:
    """"A", "B" or "tie" from a pairwise answer, or None when read_verdict refuses it."""
    return read_verdict(text).value


_RATING_MARK = re.compile(r"\bratings?\s*[:=]", re.IGNORECASE)  # "Ratings: 5" is a rating too
_RATING_LINE = re.compile(r"Rating:[ \t]*(0|[1-9][0-9]*)")  # the whole last line


def read_rating(text: str | None, low: float = 1, high: float = 10) -> Parsed[float]:
    """A pointwise rating, or the reason it is refused.

    Accepted: the last non-empty line is exactly "Rating: N", N a plain integer (digits, no sign, no leading
    zero, no decimals or exponent) with low <= N <= high, and no other line says "Rating:". Refused: "Rating:
    1e1", "Rating: 7.5", "Rating: -3", "Rating: 8/10", "**Rating: 8**", "rating: 8", "Rating: 8." (invalid
    rating), "Rating: 11" on 1..10 (rating out of range), "7", "9 out of 10" (missing rating), two ratings
    (several ratings), a rating followed by more text (text after the rating)."""
    lines = _lines(text)
    if not lines:
        return Parsed(None, refusal("empty", "rating"))
    last = lines[-1]
    if len(_RATING_MARK.findall("\n".join(lines))) > 1:
        return Parsed(None, refusal("several", "rating"))
    m = _RATING_LINE.fullmatch(last)
    if m:
        value = float(int(m.group(1)))
        return Parsed(value) if low <= value <= high else Parsed(None, refusal("range", "rating"))
    if _RATING_MARK.match(last.lstrip(_DECORATION)):
        return Parsed(None, refusal("invalid", "rating"))
    if _RATING_MARK.search(last):
        return Parsed(None, refusal("not_alone", "rating"))
    if any(_RATING_MARK.search(line) for line in lines[:-1]):
        return Parsed(None, refusal("after", "rating"))
    return Parsed(None, refusal("missing", "rating"))


def parse_rating(text: str | None, low: float = 1, high: float = 10) -> float | None:
    """The rating in `text` (a float), or None when read_rating refuses it."""
    return read_rating(text, low, high).value


_RANKING_LINE = re.compile(r"\[([0-9]+)\](?:[ \t]*>[ \t]*\[[0-9]+\])*")  # the whole last line
_RANKING_MARK = re.compile(r"\[\s*[0-9]+\s*\]\s*>\s*\[\s*[0-9]+\s*\]")  # "[2] > [1]" anywhere


def read_ranking(text: str | None, n: int) -> Parsed[list[int]]:
    """A listwise ranking, best first, as the 1-based response numbers it names ("[2] > [1] > [3]" ->
    [2, 1, 3]), or the reason it is refused.

    Accepted: the last non-empty line is exactly "[i] > [j] > ...", naming each of 1..n once, and no other line
    holds a ranking. Refused: a duplicate, missing or unknown number (invalid ranking), "2 > 1 > 3" or "[2],
    [1]" (missing ranking), "Ranking: [1] > [2] > [3]." (ranking not alone on its line), two rankings (several
    rankings), a ranking followed by more text (text after the ranking)."""
    lines = _lines(text)
    if not lines:
        return Parsed(None, refusal("empty", "ranking"))
    last = lines[-1]
    if sum(bool(_RANKING_MARK.search(line)) for line in lines) > 1:
        return Parsed(None, refusal("several", "ranking"))
    if _RANKING_LINE.fullmatch(last):
        numbers = re.findall(r"[0-9]+", last)
        order = [int(x) for x in numbers]
        plain = all(x == str(int(x)) for x in numbers)  # "[02]" is refused, as a rating's leading zero is
        return Parsed(order) if plain and sorted(order) == list(range(1, n + 1)) else \
            Parsed(None, refusal("invalid", "ranking"))
    if _RANKING_MARK.search(last):
        return Parsed(None, refusal("not_alone", "ranking"))
    if any(_RANKING_MARK.search(line) for line in lines[:-1]):
        return Parsed(None, refusal("after", "ranking"))
    return Parsed(None, refusal("missing", "ranking"))


def parse_ranking(text: str | None, n: int) -> list[int] | None:
    """The ranking in `text`, best first, or None when read_ranking refuses it."""
    return read_ranking(text, n).value


PRINCIPLES = """\
Below are user requests, each with a better and a worse response.

{% for ex in examples %}
[Example {{ loop.index }}]
[User request]
{{ ex.prompt }}

[Better response]
{{ ex.chosen }}

[Worse response]
{{ ex.rejected }}

{% endfor %}
Write at most {{ max_principles }} short, general principles that explain why the better responses are better \
and that would help judge responses to other requests. Write one principle per line, each starting with "- "."""

# Feedback for refinement (judges/refine.py): an LLM judge's critique of one response, free text.
CRITIQUE = """\
Review the response to the user's request. List its most important problems, and how to fix each, in at most \
five short bullet points. If it has none, say so in one line.

""" + _RUBRIC + """\
[User request]
{{ prompt }}

[Response]
{{ response }}"""

# judges/refine.py: the request for a better response, appended to the conversation as the user's next turn. Every
# earlier response is shown in its own numbered tags with the judge's feedback in the same number's tags.
REFINE = """\
Here are your earlier responses to my last request, each followed by a judge's feedback on it:

{% for c in candidates %}
<response_{{ loop.index }}>
{{ c.response }}
</response_{{ loop.index }}>
<feedback_{{ loop.index }}>
{{ c.feedback }}
</feedback_{{ loop.index }}>

{% endfor %}
Write a new response to my last request that is better than all of them: fix what the feedback points out and \
keep what was good. Reply with the new response only, with no tags and no comments about the earlier ones."""

# judges/rubrics.py (Auto-Rubric): propose rubrics from one labelled pair, revise them after the judge got the pair
# wrong with them, and organise the selected ones into themes with tips.
_RUBRIC_PAIR = _PAIR_SHOWN + """
Response {{ better }} is the better response.
"""

# The request comes last, short, with one line of the format shown: SmolLM2-135M wrote a list for 4 of 6 LLMBar
# pairs this way, and for 1 of 6 with a longer request first and no example (a strong model follows either).
_RUBRIC_ASK = """\
Write {{ max_rubrics }} short rules that a judge could use to see why, for any request. Write each rule on its own \
line starting with "- ", for example:
- The response does exactly what the request asks."""

RUBRIC_PROPOSE = _PAIR_SHOWN + """
Response {{ better }} is the better response. """ + _RUBRIC_ASK

RUBRIC_REVISE = _RUBRIC_PAIR + """
These rubrics were tried:
{% for r in rubrics %}
- {{ r }}
{% endfor %}

A judge following them did not pick Response {{ better }} \
{% if averaged %}once its answers in the two orders of the responses are averaged{% else %}in both orders of the \
two responses{% endif %}. Its answers:
{% for v in verdicts %}
- {{ v }}
{% endfor %}

Revise the rubrics so that a judge following them picks Response {{ better }}: make them more precise about what \
makes it better. """ + _RUBRIC_ASK

RUBRIC_STRUCTURE = """\
Here are rubrics for judging responses to user requests, each learnt from a different example:

{% for r in rubrics %}
{{ loop.index }}. {{ r }}
{% endfor %}

Organise them into at most {{ max_themes }} themes. A theme is one general criterion that applies to any request; \
its tips are at most {{ max_tips }} more specific points taken from the rubrics above. Each theme must judge a \
different aspect, and no two may contradict each other. Answer in exactly this format and nothing else:

Theme: <the criterion, in one sentence>
- Tip: <a specific point>
- Tip: <another specific point>

Theme: <the next criterion>
- Tip: <a specific point>"""

DEFAULT_TEMPLATES = {"pointwise": POINTWISE, "pairwise": PAIRWISE, "listwise": LISTWISE, "principles": PRINCIPLES,
                     "critique": CRITIQUE, "refine": REFINE, "rubric_propose": RUBRIC_PROPOSE,
                     "rubric_revise": RUBRIC_REVISE, "rubric_structure": RUBRIC_STRUCTURE}

# A verdict read from next-token probabilities needs at least this much of them on the choices (A, B, C) together;
# below it the model is answering something else ("I cannot ..."), and the renormalised P(A) would be noise.
# SmolLM2-135M-Instruct puts 0.18-0.64 on them under the default pairwise prompt (30 LLMBar pairs, 2026-12-04).
MIN_CHOICE_MASS = 0.1


def templates_fingerprint() -> str:
    """A digest of the built-in prompts and of how verdicts are read from probabilities (MIN_CHOICE_MASS): what an
    LLM judge's stored verdicts were asked with and read by (a resume after an upgrade that rewords them is
    refused, as one with another --template is)."""
    import hashlib
    import json

    blob = {"templates": DEFAULT_TEMPLATES, "min_choice_mass": MIN_CHOICE_MASS}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode("utf-8")).hexdigest()[:16]


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=False, autoescape=False)


def load_template(template: str | Path | None, mode: str) -> Template:
    """A compiled template: the default for `mode` (a DEFAULT_TEMPLATES key) when None, else a Jinja2 string
    or a path to a file (.jinja, .j2, .txt)."""
    if template is None:
        template = DEFAULT_TEMPLATES[mode]
    elif isinstance(template, Path) or str(template).endswith((".jinja", ".j2", ".txt")):
        path = Path(template)
        if not path.is_file():  # else the path itself would silently become the prompt
            raise FileNotFoundError(f"template file {path} does not exist")
        template = path.read_text(encoding="utf-8")
    return _ENV.from_string(template)


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$")


def parse_principles(text: str | None, max_principles: int) -> list[str]:
    """The bulleted or numbered lines of `text` (markdown bold removed, duplicates dropped), at most
    `max_principles`; [] when there are none."""
    principles: list[str] = []
    for line in (text or "").splitlines():
        m = _BULLET.match(line)
        if not m:
            continue
        principle = m.group(1).replace("**", "").strip()
        if principle and len(principle) <= 300 and principle.lower() not in {p.lower() for p in principles}:
            principles.append(principle)
    return principles[:max_principles]


_THEME = re.compile(r"^\s*(?:#+\s*|\*\*)?theme\s*\d*\s*:\s*(?:\*\*)?\s*(.+?)\s*$", re.IGNORECASE)
_TIP = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])?\s*tip\s*\d*\s*:\s*(.+?)\s*$", re.IGNORECASE)


def parse_themes(text: str | None, max_themes: int, max_tips: int) -> list[dict]:
    """[{"theme", "tips"}] from an answer to the rubric_structure template: a line "Theme: ..." opens a theme, the
    "- Tip: ..." lines after it are its tips (markdown bold or numbering around the labels tolerated); other lines
    are ignored. At most `max_themes` themes (in order, duplicates dropped) with at most `max_tips` tips each. A
    repeated theme (case-insensitive) is merged into the first: its tips go there; tips under an empty theme are
    dropped."""
    themes: list[dict] = []
    current: dict | None = None  # the theme the next tips belong to
    for line in (text or "").splitlines():
        if m := _THEME.match(line):
            theme = m.group(1).replace("**", "").strip()
            current = next((t for t in themes if t["theme"].lower() == theme.lower()), None) if theme else None
            if theme and current is None:
                current = {"theme": theme, "tips": []}
                themes.append(current)
            continue
        if (m := _TIP.match(line)) and current is not None:
            tip = m.group(1).replace("**", "").strip()
            if tip and len(current["tips"]) < max_tips:
                current["tips"].append(tip)
    return themes[:max_themes]
