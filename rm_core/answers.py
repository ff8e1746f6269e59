"""Final answers of math solutions: where a solution states its answer, and when two answers are equal.

    gsm8k_final_answer(text)   the answer on a GSM8K final line ("#### 72", the data set's; "A: 72", the labelled
                               model solutions'), thousands commas removed; None when there is none
    gsm8k_final_line(line)     the answer when `line` itself is such a final line (the offline step-label rule)
    extract_final_answer(text) any solution's: \\boxed{...}, "#### X", "the answer is X", a bare number, the last one
    final_answer(text)         best-of-N's: the GSM8K final line, else extract_final_answer
    answers_match(a, b)        equal as exact rationals when numeric ("1,000" == "1000.0"), else as normalised text

Shared by the rule reward (judges.compose.MathAnswerMatch), best-of-N (rm_core.best_of_n, eval/best_of_n.py),
the GSM8K converters (rm_core.data.gsm8k_answer) and math_rm (sampling, step labels). Pure functions: `re`
and `fractions` only, never eval.
"""

from __future__ import annotations

import re
from fractions import Fraction

# -- GSM8K final lines -----------------------------------------------------------------------------------------

# at a line's start; "####" (the data set's marker) followed by a number, as the data writes it
_GSM8K_FINAL = re.compile(r"^[ \t]*(?:####[ \t]*(?=[$\-\d.])|A:)[ \t]*([^\n]+?)\s*$", re.MULTILINE)
_GSM8K_FINAL_LINE = re.compile(r"^\s*(?:A:|####)\s*(.+?)\s*$")


def gsm8k_final_answer(text: str | None) -> str | None:
    """The final answer of a GSM8K solution: on its last line starting "#### " (the data set's answers) or "A: "
    (the labelled model solutions), thousands commas removed ("#### 1,000" -> "1000", but "7,25" is no number and
    stays as written), a number followed by words taken alone ("A: 18 dollars" -> "18", as after an answer cue);
    None when the text has no such line. A "####" inside a line is no final line."""
    found = _GSM8K_FINAL.findall(text or "")
    if not found:
        return None
    answer = _phrase_answer(found[-1].strip()) or found[-1].strip()
    return answer.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", answer) else answer


def gsm8k_final_line(line: str) -> str | None:
    """The answer when `line` is a final-answer line ("A: n" / "#### n" at its start), read as gsm8k_final_answer
    reads one ("A: 18 dollars" -> "18", "A: 5 - 3 = 2" -> "2"), so the step labels and best-of-N agree; else None."""
    m = _GSM8K_FINAL_LINE.match(line)
    return (_phrase_answer(m.group(1)) or m.group(1)) if m else None


# -- any solution ------------------------------------------------------------------------------------------------

# A plain number: thousands commas only in groups of three (so "1, 2" is two numbers), decimals, an integer
# denominator. Not preceded by a word character or a dot, so "x2" and "3.5.1" do not yield stray numbers.
_NUM = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+"
_NUMBER = re.compile(rf"(?<![\w.])(?:{_NUM})")
_LEADING_NUMBER = re.compile(rf"\$?\s*({_NUM})")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?(?:/\d+)?")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####\s*(\$?\s*-?\s*[\d.][^\n]*)")
_CUE = re.compile(r"\banswer\s*(?:is\b|:|=)\s*:?\s*", re.IGNORECASE)  # the answer is the rest of the line


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} whose braces balance (nested braces kept)."""
    found = None
    for m in _BOXED.finditer(text):
        depth = 1
        for j in range(m.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                found = text[m.end():j]
                break
    return found


def _strip_wrapping(s: str) -> str:
    """Drop markdown bold, math delimiters and a trailing sentence period around an answer."""
    s = s.strip()
    prev = None
    while s != prev:
        prev = s
        s = s.strip().strip("*").strip()
        for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left):len(s) - len(right)]
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1]
    return s.strip()


def _phrase_answer(phrase: str) -> str:
    """The answer in a phrase after a cue ("The answer is 18 dollars." -> "18"; "\\frac{1}{2}." kept). An
    expression is not its first operand: "5 - 3 = 2" -> "2" (after the last "="), "2 1/2" and "5 - 3" whole."""
    phrase = re.split(r"\.\s", phrase, maxsplit=1)[0]  # the sentence the cue is in
    phrase = _strip_wrapping(phrase)
    m = _LEADING_NUMBER.match(phrase)
    rest = phrase[m.end():] if m else ""
    if m and re.match(r"\s*(?:[-+*/×÷x^=]\s*[\d.(]|=|\d)|[,:]\s*\d", rest):  # an expression, a mixed number,
        # "72,5", "10:30", "5, 6": never its first number
        tail = phrase.rpartition("=")[2].strip()
        return _phrase_answer(tail) if "=" in phrase and tail else phrase
    if m and (not rest or rest[0] in " \t,;:!?)"):  # a number followed by words, not part of an expression
        return m.group(1)
    return phrase


def extract_final_answer(text: str, last_number: bool = True) -> str | None:
    """The final answer of a solution, as text (not yet normalised; compare with `answers_match`).

    In order: the last balanced \\boxed{...}; the last GSM8K "#### X"; the last "answer is X" / "Answer: X"
    (a leading number is taken from X, so "18 dollars" -> "18"); the whole text when it is itself a number
    ("1,000", "\\frac{1}{2}", "$5"); with last_number, the last number in the text. None when there is none.
    """
    if not isinstance(text, str):
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return _strip_wrapping(boxed)
    phrases = _GSM8K.findall(text)[-1:]
    # finditer, not one greedy capture, so that "Answer: the final answer is 5" finds the last cue
    cues = list(_CUE.finditer(text))
    if cues:
        phrases.append(text[cues[-1].end():].split("\n", 1)[0])
    for phrase in phrases:
        answer = _phrase_answer(phrase)
        if answer:
            return answer
    if _to_number(text) is not None:
        return _strip_wrapping(text)
    numbers = _NUMBER.findall(text) if last_number else []
    return numbers[-1] if numbers else None


def _normalize(answer: str) -> str:
    """LaTeX and typography noise removed; the answer itself untouched."""
    s = _strip_wrapping(answer.replace("\u2212", "-"))
    for noise in ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "\\displaystyle"):
        s = s.replace(noise, "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)  # "x = 5" -> "5"
    s = re.sub(r"\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}", r"\1/\2", s)  # \frac{1}{2} -> 1/2
    s = re.sub(r"\\frac(\d)(\d)", r"\1/\2", s)  # \frac12 -> 1/2
    return s.strip()


def _to_number(answer: str) -> Fraction | None:
    """The exact rational value of a numeric answer ("$1,000.50", "50%", "-3/4", "10\\text{ cm}"), else None.
    Parsed with a strict pattern and Fraction, never eval."""
    s = _normalize(answer)
    s = re.sub(r"\\(?:text|mbox|mathrm)\{[^{}]*\}", "", s)  # units: 10\text{ cm} -> 10
    for unit in ("\\$", "$", "\\%", "%", "^\\circ", "^{\\circ}", "\u00b0"):
        s = s.replace(unit, "")
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):  # "1.5/2" (Fraction takes no decimal numerator), "1/0"
        return None


def answers_match(a: str | None, b: str | None) -> bool:
    """True when two final answers are equal: exactly as rational numbers when both are numeric ("1,000" ==
    "1000", "3.50" == "3.5", "$5" == "5", "1/2" == "0.5" == "\\frac{1}{2}", but "0.333" != "1/3"), else as
    strings with whitespace and LaTeX spacing removed. None matches nothing."""
    if a is None or b is None:
        return False
    x, y = _to_number(str(a)), _to_number(str(b))
    if x is not None or y is not None:
        return x == y
    return re.sub(r"\s+", "", _normalize(str(a))) == re.sub(r"\s+", "", _normalize(str(b)))


def final_answer(text: str) -> str | None:
    """A solution's final answer for best-of-N voting: its GSM8K "A: n" / "#### n" line, else
    `extract_final_answer`."""
    answer = gsm8k_final_answer(text)
    return answer if answer is not None else extract_final_answer(text)
