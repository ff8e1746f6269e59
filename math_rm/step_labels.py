"""The offline step-label rule for GSM8K solutions with calculator annotations, and its agreement with outcomes.

SmolLM2-135M solves almost no GSM8K problem, so Monte-Carlo (Math-Shepherd) labels sampled from it would be all
"-". The labelled model solutions in ../shared/data carry GSM8K's calculator annotations `<<expr=value>>`, and
each question's reference solution carries its own; the rule reads them:

A step is the FIRST BAD STEP when, reading the steps in order, it is the first one that
  (a) states false arithmetic: an annotation whose expression does not evaluate to its value (rounded to the
      decimals the value is written with), or
  (b) leaves the reference chain: it has annotations and none of their values is a number of the reference
      solution's chain (the values of its annotations and its final answer) or of the question, or
  (c) is the final-answer line ("A: n" / "#### n") with n different from the reference answer.
Labels (`label_solution`): a solution whose outcome is correct has every step good (under Math-Shepherd's hard
estimation a step is good when some completion from it reaches the answer, and the solution itself is one).
A wrong solution: the rule's first bad step is bad (when the rule flags none, the last step is: its final
answer is wrong), the steps before it good, the steps after it unlabelled (None), as PRM800K labels up to the
first error. `rule_agreement` measures how often "the rule flags no step" agrees with the outcome label, with and without
check (c) (which reads the final answer, so it nearly is the outcome label).

Expressions are evaluated exactly (fractions) by a small AST walker over numbers and + - * / // % ** (small
exponents) and parentheses; anything else (units, variables, eval tricks) is "not checkable", never eval'd.
The walker is bounded, so a hostile annotation costs microseconds: at most MAX_EXPR_CHARS characters,
MAX_DEPTH levels of nesting, and no intermediate value over MAX_BITS bits (checked before a power is taken).
"""

from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction

from rm_core.answers import gsm8k_final_line

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
RULE_NAME = "gsm8k-calculator-v1"
MAX_EXPR_CHARS = 256  # GSM8K's calculator annotations are under 60
MAX_DEPTH = 32
MAX_BITS = 4096  # numerator and denominator of every intermediate value


def parse_number(text: str) -> Fraction | None:
    """'1,000' -> 1000, '$3.50' -> 7/2, '12%' -> 12; None when the text is not one number."""
    s = text.strip().replace(",", "").replace("$", "").rstrip("%").strip()
    if not re.fullmatch(r"-?\d+(?:\.\d+)?|-?\.\d+", s):
        return None
    return Fraction(s)


def safe_eval(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None when it is not plain arithmetic or exceeds the
    bounds above (too long, too deep, too large a value)."""
    expr = expr.replace(",", "").replace("$", "").strip()
    if len(expr) > MAX_EXPR_CHARS:
        return None
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # the parser's own nesting limits
        return None

    def bounded(value: Fraction) -> Fraction:
        if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
            raise ValueError("too large")
        return value

    def walk(node, depth: int):
        if depth > MAX_DEPTH:
            raise ValueError("too deep")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return bounded(Fraction(str(node.value)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand, depth + 1)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left, depth + 1), walk(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                if right.denominator != 1 or abs(right) > 20:
                    raise ValueError("exponent")
                # the result's size is known before computing it: bits(left) * |exponent|
                if max(left.numerator.bit_length(), left.denominator.bit_length()) * abs(int(right)) > MAX_BITS:
                    raise ValueError("too large")
                return left ** int(right)
            if type(node.op) in _OPS:
                return bounded(_OPS[type(node.op)](left, right))
        raise ValueError("not arithmetic")

    try:
        return walk(tree, 0)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError, RecursionError, MemoryError):
        return None


def _decimals(text: str) -> int:
    m = re.search(r"\.(\d+)", text)
    return len(m.group(1)) if m else 0


def arithmetic_holds(expr: str, value: str) -> bool | None:
    """True/False when both sides are checkable numbers; None when not checkable. The expression is rounded
    to the decimals the value is written with ("10/3=3.33" holds; "7*8=54" does not)."""
    exact, stated = safe_eval(expr), parse_number(value)
    if exact is None or stated is None:
        return None
    places = _decimals(value.strip())
    return abs(exact - stated) <= Fraction(1, 2 * 10 ** places) if places else exact == stated


def reference_chain(reference_solution: str, question: str = "") -> set[Fraction]:
    """The numbers a correct solution may produce: the reference's annotation values and final answer, and the
    numbers of the question."""
    values = set()
    for expr, value in ANNOTATION.findall(reference_solution):
        for v in (parse_number(value), safe_eval(expr)):
            if v is not None:
                values.add(v)
    for line in reference_solution.splitlines():
        final = gsm8k_final_line(line)
        if final is not None and parse_number(final) is not None:
            values.add(parse_number(final))
    for token in _NUMBER.findall(question):
        v = parse_number(token)
        if v is not None:
            values.add(v)
    return values


def first_bad_step(steps: list[str], reference_solution: str, question: str = "",
                   reference_answer: str | None = None) -> tuple[int | None, str | None]:
    """(index of the first bad step, reason) by the rule in the module docstring; (None, None) when no step
    is flagged. Reasons: "false arithmetic", "leaves the reference chain", "wrong final answer"."""
    chain = reference_chain(reference_solution, question)
    answer = parse_number(reference_answer) if reference_answer is not None else None
    if answer is None:
        for line in reversed(reference_solution.splitlines()):
            final = gsm8k_final_line(line)
            if final is not None:
                answer = parse_number(final)
                break
    for i, step in enumerate(steps):
        final = gsm8k_final_line(step)
        if final is not None and "\n" not in step.strip():
            stated = parse_number(final)
            if answer is not None and stated != answer:
                return i, "wrong final answer"
            continue
        annotations = ANNOTATION.findall(step)
        if any(arithmetic_holds(expr, value) is False for expr, value in annotations):
            return i, "false arithmetic"
        values = [v for _, value in annotations if (v := parse_number(value)) is not None]
        if values and not any(v in chain for v in values):
            return i, "leaves the reference chain"
    return None, None


def label_solution(n_steps: int, is_correct: bool, first_bad: int | None) -> list[int | None]:
    """Step labels from the outcome and the rule's first bad step (see the module docstring)."""
    if is_correct:
        return [1] * n_steps
    bad = n_steps - 1 if first_bad is None else first_bad
    return [1] * bad + [0] + [None] * (n_steps - bad - 1)


def label_candidates(cand: dict) -> list[dict]:
    """A GSM8K-solutions Candidates row (rm_core.data.from_gsm8k_solutions, with reference_solution) -> one
    labelled solution per response: {text, answer, is_correct, steps, labels, first_bad, reason}."""
    from rm_core.data import split_steps

    question = cand["prompt"][-1]["content"]
    out = []
    for text, correct in zip(cand["responses"], cand["correct"]):
        steps = split_steps(text)
        bad, reason = first_bad_step(steps, cand["reference_solution"], question, cand.get("reference"))
        out.append({"text": text, "is_correct": bool(correct), "steps": steps,
                    "labels": label_solution(len(steps), bool(correct), bad), "first_bad": bad, "reason": reason})
    return out


def rule_agreement(labelled: list[list[dict]]) -> dict:
    """How often the rule (no step flagged = correct) agrees with the outcome labels, with the confusion table
    and the reasons it flags wrong solutions."""
    table = {"correct_unflagged": 0, "correct_flagged": 0, "wrong_flagged": 0, "wrong_unflagged": 0}
    reasons: dict[str, int] = {}
    steps_agree = 0  # the same, counting only (a)/(b): flags raised before the final-answer line
    for solutions in labelled:
        for s in solutions:
            flagged = s["first_bad"] is not None
            steps_agree += (flagged and s["reason"] != "wrong final answer") != s["is_correct"]
            key = ("correct_" if s["is_correct"] else "wrong_") + ("flagged" if flagged else "unflagged")
            table[key] += 1
            if flagged and not s["is_correct"]:
                reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    n = sum(table.values())
    agree = table["correct_unflagged"] + table["wrong_flagged"]
    return {"solutions": n, "agreement": agree / n if n else None,
            "agreement_without_final_line": steps_agree / n if n else None, **table,
            "precision_flagged_is_wrong": (table["wrong_flagged"] / (table["wrong_flagged"] + table["correct_flagged"])
                                           if table["wrong_flagged"] + table["correct_flagged"] else None),
            "recall_wrong_flagged": (table["wrong_flagged"] / (table["wrong_flagged"] + table["wrong_unflagged"])
                                     if table["wrong_flagged"] + table["wrong_unflagged"] else None),
            "wrong_flagged_by_reason": reasons}
