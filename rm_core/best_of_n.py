"""Best-of-N rules over Candidates rows (prompt, responses, correct): the baselines and a judge's pick.

- random: the expected accuracy of a uniformly random pick, exactly (the mean of `correct`), not sampled;
- majority vote: the candidates' final answers (rm_core.answers.final_answer) are grouped by equality
  (`answers_match`: "1,000" == "1000.0"); the largest group wins. Ties between groups, rule "first" (default):
  the group whose first candidate comes first in the list wins; rule "expected": the expected accuracy of a
  uniform choice among the tied groups. A candidate with no final answer does not vote; when none has one,
  every candidate is tied (first: candidate 0). The picked group's correctness is its first candidate's label.
  On the 319 held-out GSM8K questions, "first" gives the issue's 43.9% (candidates in the file's order
  6b_finetuning, 6b_verification, 175b_finetuning, 175b_verification); "expected" gives 46.8%.
- oracle: 1 when any candidate is correct;
- a judge: the candidate with the highest score (ties: the lower index, as judges.best_of_n; a candidate the
  judge could not score is never picked; all failed: counted wrong);
- a judge's weighted vote (Math-Shepherd's self-consistency + verifier): majority vote where each candidate
  votes with its weight (`weighted_vote_pick`), reported beside the judge's plain pick.

One implementation, used by the benchmark (eval/best_of_n.py) and the math recipes (math_rm/best_of_n.py, the
end of PRM / ORM training). Pure functions of scores and labels: no judge, no model.
"""

from __future__ import annotations

import math
import sys

from rm_core.answers import answers_match, final_answer
from rm_core.data import shared_data_dir

DEFAULT_CANDIDATES = str(shared_data_dir() / "gsm8k" / "example_model_solutions.jsonl")


def answer_groups(answers: list[str | None]) -> list[list[int]]:
    """Candidate indices grouped by equal final answer, groups in order of their first candidate."""
    groups: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for g in groups:
            if answers_match(answers[g[0]], a):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def random_pick(correct: list[bool]) -> float:
    return sum(correct) / len(correct)


def oracle_pick(correct: list[bool]) -> float:
    return float(any(correct))


def majority_pick(responses: list[str], correct: list[bool], tie: str = "first") -> float:
    groups = answer_groups([final_answer(r) for r in responses])
    if not groups:
        return float(correct[0]) if tie == "first" else random_pick(correct)
    top = max(len(g) for g in groups)
    tied = [g for g in groups if len(g) == top]
    if tie == "first":
        return float(correct[tied[0][0]])
    if tie == "expected":
        return sum(correct[g[0]] for g in tied) / len(tied)
    raise ValueError(f"unknown tie rule {tie!r}; use 'first' or 'expected'")


def score_pick(scores: list[float | None], correct: list[bool]) -> tuple[int | None, float]:
    """(picked index, 1.0/0.0) for the highest score, ties to the lower index; None scores never win."""
    ranked = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: (-scores[i], i))
    if not ranked:
        return None, 0.0
    return ranked[0], float(correct[ranked[0]])


def weighted_vote_pick(responses: list[str], scores: list[float | None], correct: list[bool],
                       probabilities: bool) -> tuple[int | None, float]:
    """(picked index, 1.0/0.0): the final-answer group with the largest total weight wins and its best-scored
    candidate is the pick. Weight: the score itself when the judge's scores are probabilities (`probabilities`:
    `judge.scores_are_probabilities`, a PRM / ORM's P("+")), else sigmoid(score) (an unbounded BT logit). Told by
    the judge, never guessed from the values: a reward model whose scores fell in [0, 1] on one question was
    weighted raw there and by sigmoid on the next. Ties between groups: the group first in candidate order. A
    candidate with no final answer or no score does not vote; when none votes: the plain score pick."""
    weights = [None if s is None else (s if probabilities else 1.0 / (1.0 + math.exp(-s))) for s in scores]
    answers = [final_answer(r) if w is not None else None for r, w in zip(responses, weights)]
    groups = answer_groups(answers)
    if not groups:
        return score_pick(scores, correct)
    best = max(groups, key=lambda g: sum(weights[i] for i in g))  # max keeps the first of equal totals
    pick = min(best, key=lambda i: (-scores[i], i))
    return pick, float(correct[pick])


def vote_weights_are_probabilities(judge) -> bool:
    """Whether a judge's best-of-N scores weigh votes as they are: a pointwise judge whose scores are probabilities
    (Judge.scores_are_probabilities); a ranking's scores (Bradley-Terry strengths, ranks) are not."""
    return bool(judge.pointwise and getattr(judge, "scores_are_probabilities", False))


def question_values(cand: dict) -> dict[str, float]:
    """One question's value under each baseline (random, majority_vote, majority_vote_expected_ties, oracle): the
    per-question values whose means `baselines` gives, for intervals over questions (rm_core.stats)."""
    return {"random": random_pick(cand["correct"]),
            "majority_vote": majority_pick(cand["responses"], cand["correct"], "first"),
            "majority_vote_expected_ties": majority_pick(cand["responses"], cand["correct"], "expected"),
            "oracle": oracle_pick(cand["correct"])}


def baselines(cands: list[dict]) -> dict:
    """The baselines' accuracies over `cands`: the means of question_values."""
    values = [question_values(c) for c in cands]
    n = len(cands)
    return {"questions": n, "candidates": sum(len(c["responses"]) for c in cands),
            **{name: sum(v[name] for v in values) / n for name in values[0]}}


FEWER_THAN_TWO = "a best-of-N question needs two or more candidates"


def read_candidates(source: str, split: str = "test", max_questions: int | None = None):
    """(Candidates rows, SkipReport) from any source; the GSM8K labelled solutions take the fixed split
    (train/test/all). Rows rm_core.data.to_candidates refuses (an empty candidate, identical candidates with
    conflicting labels, ...) and questions with fewer than two candidates (nothing to pick between) are skipped
    and counted by reason, before anything is scored."""
    from rm_core.data import data_file_name, first_math_format, gsm8k_solutions_split, load_rows, to_candidates

    rows = load_rows(source, split)
    name = data_file_name(source, split)
    if rows and first_math_format(rows, name) == "gsm8k_solutions" and split != "all":
        train, test = gsm8k_solutions_split(rows)
        rows = train if split == "train" else test
    cands, skips = to_candidates(rows, source=name)
    kept = []
    for c in cands:
        if len(c["responses"]) < 2:
            skips.add(FEWER_THAN_TWO, f"question {c['id']}")
        else:
            kept.append(c)
    return (kept[:max_questions] if max_questions else kept), skips


def load_candidates(source: str, split: str = "test", max_questions: int | None = None) -> list[dict]:
    """read_candidates' rows; its skips are said on stderr."""
    cands, skips = read_candidates(source, split, max_questions)
    if skips.total:
        print(f"[data] {skips}", file=sys.stderr)
    return cands
