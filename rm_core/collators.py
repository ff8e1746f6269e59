"""Tokenised preference datasets and batches.

Batches are laid out chosen-half-then-rejected-half (TRL's `DataCollatorForPreference`, reused as is),
so a model's rewards split with `torch.chunk(rewards, 2)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl.trainer.reward_trainer import DataCollatorForPreference

from rm_core.templates import leading_specials, tokenize_messages, truncate_keep_end

__all__ = ["DataCollatorForPreference", "TokenizeReport", "tokenize_preferences"]


@dataclass
class TokenizeReport:
    pairs: int = 0
    truncated: int = 0          # pairs with at least one side cut to max_length (kept, never dropped)
    tokens_cut: int = 0         # tokens removed from the front of those sequences
    identical_after_cut: int = 0  # pairs whose two sides were the same tokens once cut: dropped, nothing to learn
    kept: list[int] = field(default_factory=list)  # the indices of the pairs in the dataset, in order

    def __str__(self) -> str:
        text = f"{self.pairs} pairs tokenised, {self.truncated} truncated to fit ({self.tokens_cut} tokens cut)"
        if self.identical_after_cut:
            text += f", {self.identical_after_cut} dropped: chosen and rejected the same once cut"
        return text


def tokenize_preferences(prefs: list[dict], tokenizer, max_length: int | None):
    """Canonical Preference rows -> a `datasets.Dataset` of chosen_ids/rejected_ids/length(/margin).

    Unlike TRL's RewardTrainer, which silently drops pairs longer than max_length, a long pair is cut
    from the front (the end of each response, where the reward is read, survives) and counted. A pair whose two
    sides are the same tokens once cut (they differed only before the kept end) is dropped and counted: its loss
    would be a constant log 2, its accuracy a tie.
    """
    from datasets import Dataset

    specials = leading_specials(tokenizer)
    report = TokenizeReport()
    columns = {"chosen_ids": [], "rejected_ids": [], "length": []}
    with_margin = any("margin" in p for p in prefs)
    if with_margin:
        columns["margin"] = []
    for index, pref in enumerate(prefs):
        sides = []
        cut = 0
        for side in ("chosen", "rejected"):
            full = tokenize_messages(tokenizer, pref["prompt"] + pref[side])
            ids, _ = truncate_keep_end(full, max_length, specials)
            cut += len(full) - len(ids)
            sides.append(ids)
        report.pairs += 1
        if cut:
            report.truncated += 1
            report.tokens_cut += cut
        if sides[0] == sides[1]:
            report.identical_after_cut += 1
            continue
        report.kept.append(index)
        columns["chosen_ids"].append(sides[0])
        columns["rejected_ids"].append(sides[1])
        columns["length"].append(len(sides[0]) + len(sides[1]))
        if with_margin:
            columns["margin"].append(float(pref.get("margin", 0.0)))
    return Dataset.from_dict(columns), report
