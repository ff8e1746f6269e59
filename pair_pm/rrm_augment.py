"""RRM causal data augmentation (Liu et al., "RRM: Robust Reward Model Training Mitigates Reward Hacking",
arXiv 2409.13156, ICLR 2025), as extra Preference rows for the pair-PM data preparation.

What the paper does
-------------------
§3.1 models a preference label as caused by a *contextual* signal (how well a response answers prompt x) and
by *context-free artifacts* (length, formatting, ...). Human pairs always hold two on-topic responses, so an RM
can fit the labels through the artifacts alone. §3.2 breaks that shortcut with counterfactual triplets built
from responses of other examples. For example i with (x_i, y_w^i, y_l^i), two other examples σ1(i), σ2(i) are
drawn (two random permutations of the data set; the paper's Algorithm 1 is Python code for this) and the six
responses {y_w^i, y_l^i, y_w^σ1, y_l^σ1, y_w^σ2, y_l^σ2} are paired for the prompt x_i. Of the 15 pairs:
- 1 is the original (contextual) pair;
- 8 are "non-contextual": either of x_i's own responses beats any of the 4 borrowed ones, whatever their
  artifacts (a response written for x_i beats one written for another prompt);
- 6 are "neutral": two borrowed responses (both written for other prompts, including y_w^σ1 vs y_l^σ1) are
  equally off-topic for x_i, so they are labelled a tie, P = 1/2 (the pairwise PM trains a tie as P(A) = P(B)).
The augmented set is large (14 per example), so (§4.1) the paper scores a random half of it with the RM trained
on the original data and keeps only the triplets that RM gets wrong or is unsure about: those whose predicted
probability of "chosen beats rejected" is at least 0.2 away from the label (1 for non-contextual, 1/2 for a
tie). The RRM is then trained on the original pairs plus the kept augmented ones.

Source note: the session that wrote this module had no internet access; the paper's abstract and a summary of
its reproducibility details (Algorithm 1, the 700K RLHFlow pairs, the Gemma-2-9b-it pairwise PM) were read from
stored copies, and the triplet list and the 0.2 filter above were checked against an independent public
re-implementation of the paper's augmentation, not against the paper's full text. Section numbers are the
arXiv version's as recalled; re-check them against the PDF before citing.

What we implement
-----------------
`rrm_augment(prefs, ...)` returns only the NEW rows, each a valid Preference row for the SAME prompt x_i:
    {"prompt": x_i, "chosen": [assistant msg], "rejected": [assistant msg],
     "id": f"{orig_id}-rrm-{kind}-{k}", "subset": f"rrm-{kind}", "rrm_kind": kind}      kind: non_contextual | tie
and for a tie also "tie": True (chosen/rejected then just name the two tied responses; pair_pm/prepare_data.py
writes a tie with both answers in both orders). Candidates per example are exactly the paper's: with
`n_donors=2`, 8 non-contextual and 6 tie candidates; `per_example` of each kind are then sampled per example.
`filter_fn` is the paper's RM filter as a hook (see `disagreement_filter`); by default nothing is filtered.

Deviations, and why
-------------------
- Sampling: the paper keeps a random half of all candidates pooled over the data set; we sample `per_example`
  rows of EACH kind per example (`per_example=None` keeps all of them, as the paper before its random half).
  Why: exact, reportable counts per kind, every example contributes equally, and an unfiltered run (our default;
  the filter needs a trained RM) is not blown up 15x. The default `per_example=1` adds 2 rows per example.
- Donors are drawn independently per example (distinct examples), not as two permutations; the same in law
  for each example, and it lets us enforce the rules below.
- Rules the paper does not state (a shuffled real data set breaks them occasionally, and then the label is
  wrong): a donor never has the same prompt as x_i (data sets repeat prompts, and a response to the same
  prompt is not off-topic); a borrowed response whose text equals one of x_i's own responses is not used at
  all (it IS a response to x_i); identical texts (borrowed, or x_i's own two) are used once; only responses that are one
  assistant message are used (a multi-message tail holds other turns that make no sense under another prompt).
  Every skip is counted in the report.
- The report counts candidates, samples, skips by reason and filtered rows, per kind.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from itertools import combinations

KINDS = ("non_contextual", "tie")
PAPER_THRESHOLD = 0.2  # §4.1: keep an augmented triplet when |P(chosen beats rejected) - label| >= 0.2

FilterFn = Callable[[list[dict]], list[bool]]


def _prompt_key(prompt: list[dict]) -> str:
    # Same messages (role and stripped text) = same prompt; whitespace alone does not make a new prompt.
    return json.dumps([(m["role"], m["content"].strip()) for m in prompt])


def _single_response(messages: list[dict]) -> str | None:
    """The text of a response that is exactly one non-empty assistant message, else None."""
    if len(messages) == 1 and messages[0].get("role") == "assistant" and messages[0]["content"].strip():
        return messages[0]["content"]
    return None


def _draw_donors(i: int, n_donors: int, keys: list[str], group_size: Counter, rng: random.Random) -> list[int]:
    """Up to n_donors distinct examples whose prompt differs from example i's, uniformly at random."""
    n = len(keys)
    eligible = n - group_size[keys[i]]
    want = min(n_donors, eligible)
    if eligible >= 2 * want and 2 * eligible > n:  # most rows qualify: rejection sampling stays O(want)
        donors: list[int] = []
        while len(donors) < want:
            j = rng.randrange(n)
            if keys[j] != keys[i] and j not in donors:
                donors.append(j)
        return donors
    pool = [j for j in range(n) if keys[j] != keys[i]]  # a prompt that fills most of the data set: list them
    return rng.sample(pool, want)


def disagreement_filter(prob_fn: Callable[[list[dict]], list[float]], threshold: float = PAPER_THRESHOLD) -> FilterFn:
    """The paper's filter (§4.1) as a `filter_fn`: keep a row when the trained RM's P(chosen beats rejected) is at
    least `threshold` away from the label, 1 for a non-contextual row and 1/2 for a tie, i.e. the rows the RM gets
    wrong or is unsure about. `prob_fn(rows)` returns that probability per row, e.g. for a pair-PM judge
    (order-debiased over both orders):
        lambda rows: [v.p for v in judge.judge_pairs(
            [(r["prompt"], r["chosen"][-1]["content"], r["rejected"][-1]["content"]) for r in rows])]"""

    def keep(rows: list[dict]) -> list[bool]:
        probs = prob_fn(rows)
        if len(probs) != len(rows):
            raise ValueError(f"prob_fn returned {len(probs)} probabilities for {len(rows)} rows")
        # a row the RM failed on (None: an error, a NaN) is not known to be wrong or unsure: not kept
        return [p is not None and abs(p - (0.5 if r.get("tie") else 1.0)) >= threshold for p, r in zip(probs, rows)]

    return keep


def _row(pref: dict, orig_id: str, kind: str, k: int, chosen: str, rejected: str) -> dict:
    row = {"prompt": [dict(m) for m in pref["prompt"]],
           "chosen": [{"role": "assistant", "content": chosen}],
           "rejected": [{"role": "assistant", "content": rejected}],
           "id": f"{orig_id}-rrm-{kind}-{k}", "subset": f"rrm-{kind}", "rrm_kind": kind}
    if kind == "tie":
        row["tie"] = True
    return row


def rrm_augment(prefs: list[dict], seed: int = 0, per_example: int | None = 1, include_ties: bool = True,
                n_donors: int = 2, filter_fn: FilterFn | None = None) -> tuple[list[dict], dict]:
    """RRM augmented Preference rows (the originals are not included) and a report.

    prefs: canonical Preference rows (rm_core.data). seed: for random.Random; same input and seed, same output.
    per_example: rows of EACH kind sampled per example from its candidates (None: all candidates).
    include_ties: also emit the paper's neutral (tie) rows. n_donors: other examples whose responses each example
    borrows (the paper: 2, giving 8 non-contextual and 6 tie candidates). filter_fn: called once with all sampled
    rows, returns one keep flag per row (the paper's RM filter: `disagreement_filter`); None keeps every row.

    Raises ValueError when the rows hold fewer than 2 distinct prompts (nothing to borrow from)."""
    if per_example is not None and per_example < 0:
        raise ValueError(f"per_example must be >= 0 or None, got {per_example}")
    if n_donors < 1:
        raise ValueError(f"n_donors must be >= 1, got {n_donors}")
    kinds = KINDS if include_ties else KINDS[:1]
    report = {"examples": len(prefs), "distinct_prompts": 0, "seed": seed, "per_example": per_example,
              "include_ties": include_ties, "n_donors": n_donors, "filtered": filter_fn is not None,
              "candidates": dict.fromkeys(kinds, 0), "sampled": dict.fromkeys(kinds, 0),
              "filtered_out": dict.fromkeys(kinds, 0), "counts": dict.fromkeys(kinds, 0),
              "examples_short": dict.fromkeys(kinds, 0), "examples_few_donors": 0, "skipped": {}}
    if not prefs:
        return [], report
    for i, pref in enumerate(prefs):
        if not all(k in pref for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"row {i} is not a Preference row (needs prompt, chosen, rejected)")
    keys = [_prompt_key(p["prompt"]) for p in prefs]
    group_size = Counter(keys)
    report["distinct_prompts"] = len(group_size)
    if len(group_size) < 2:
        raise ValueError("RRM augmentation borrows responses from other prompts: it needs at least 2 distinct "
                         f"prompts, and these {len(prefs)} rows have 1")

    rng = random.Random(seed)
    skipped: Counter = Counter()
    rows: list[dict] = []
    for i, pref in enumerate(prefs):
        orig_id = str(pref.get("id") or i)
        donors = _draw_donors(i, n_donors, keys, group_size, rng)
        if len(donors) < n_donors:
            report["examples_few_donors"] += 1

        own: list[str] = []  # x_i's own responses, each text once
        for messages in (pref["chosen"], pref["rejected"]):
            text = _single_response(messages)
            if text is None:
                skipped["own response is not one assistant message"] += 1
            elif text.strip() in {t.strip() for t in own}:
                skipped["own responses identical"] += 1
            else:
                own.append(text)
        own_texts = {t.strip() for t in own}
        seen = set(own_texts)
        borrowed: list[str] = []  # texts written for other prompts, each once
        for j in donors:
            for messages in (prefs[j]["chosen"], prefs[j]["rejected"]):
                text = _single_response(messages)
                if text is None:
                    skipped["borrowed response is not one assistant message"] += 1
                elif text.strip() in own_texts:  # a response to x_i too: neither off-topic nor a fair tie
                    skipped["borrowed text equals a response of this prompt"] += 1
                elif text.strip() in seen:
                    skipped["borrowed text repeated"] += 1
                else:
                    borrowed.append(text)
                    seen.add(text.strip())

        # The paper's candidates: own beats borrowed (non-contextual); two borrowed are tied (neutral).
        candidates = {"non_contextual": [(a, b) for a in own for b in borrowed],
                      "tie": list(combinations(borrowed, 2))}
        for kind in kinds:
            pool = candidates[kind]
            report["candidates"][kind] += len(pool)
            take = len(pool) if per_example is None else min(per_example, len(pool))
            if per_example is not None and take < per_example:
                report["examples_short"][kind] += 1
            for k, (chosen, rejected) in enumerate(rng.sample(pool, take)):
                rows.append(_row(pref, orig_id, kind, k, chosen, rejected))
            report["sampled"][kind] += take

    if filter_fn is not None and rows:
        keep = list(filter_fn(rows))
        if len(keep) != len(rows):
            raise ValueError(f"filter_fn returned {len(keep)} flags for {len(rows)} rows")
        for row, kept in zip(rows, keep):
            if not kept:
                report["filtered_out"][row["rrm_kind"]] += 1
        rows = [row for row, kept in zip(rows, keep) if kept]
    for row in rows:
        report["counts"][row["rrm_kind"]] += 1
    report["skipped"] = dict(skipped)
    return rows, report
