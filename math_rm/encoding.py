"""The PRM/ORM sequence format: all steps of a solution in one sequence, each followed by a judgement slot.

    <chat template: the question as the user turn, then the assistant header>
    step 1 <TAG> "\\n" step 2 <TAG> "\\n" ... step K <TAG> "\\n"

<TAG> is one fixed token (the step tag, Math-Shepherd's "ки" where the tokenizer has it as one token). The
judgement of step k is the model's next-token distribution AT its tag, restricted to the "+" and "-" tokens:
P(step k good) = softmax(logit["+"], logit["-"])[0]. The judgement tokens never enter the sequence, so the
input does not depend on the labels, and by causal attention the score of step k depends on steps 1..k only:
one forward pass scores every step, and equals scoring each prefix on its own (RLHFlow's evaluator, one pass
per step). Training puts the "+"/"-" target of each labelled step at the position after its tag in `labels`
(the usual shifted convention: logits at the tag predict it), so even a stock causal-LM loss over `labels`
is exactly the judgement loss; unlabelled steps get no target. The ORM is the same with the whole solution
as one step (one slot at the end).

Pieces are tokenised separately (prompt via the chat template, each step, the tag id, "\\n") and concatenated,
so the slot positions are known exactly, whatever the text contains. Training and scoring share
`encode_solution`, so a checkpoint is scored on the sequence it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from rm_core.errors import UserInputError

TEMPLATE_NAME = "math-rm-v1"  # recorded in config.json; bump when the layout above changes
JUDGEMENTS = ("+", "-")
# The first candidate that is ONE token for the tokenizer is the step tag: " ки" / "ки" (Math-Shepherd;
# single tokens for Mistral/Llama-3-style vocabularies), "§" (SmolLM2), "~" (any byte-level BPE).
STEP_TAG_CANDIDATES = (" ки", "ки", "§", " ~", "~")


def single_token(tokenizer, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def choose_step_tag(tokenizer, preferred: str | None = None) -> tuple[str, int]:
    """(tag text, tag id): `preferred` if given (it must be one token), else the first one-token candidate."""
    for tag in [preferred] if preferred else STEP_TAG_CANDIDATES:
        tag_id = single_token(tokenizer, tag)
        if tag_id is not None:
            return tag, tag_id
    if preferred:
        raise UserInputError(f"step tag {preferred!r} is not one token for this tokenizer; pick another --step_tag")
    raise ValueError(f"none of {STEP_TAG_CANDIDATES} is one token for this tokenizer; pass --step_tag")


def judgement_token_ids(tokenizer) -> dict[str, int]:
    """The token ids of "+" and "-" (each must be one token; they must differ)."""
    ids = {}
    for j in JUDGEMENTS:
        tok = single_token(tokenizer, j)
        if tok is None:
            raise ValueError(f"the judgement {j!r} is not one token for this tokenizer")
        ids[j] = tok
    if ids["+"] == ids["-"]:
        raise ValueError("'+' and '-' map to the same token")
    return ids


@dataclass
class EncodeReport:
    sequences: int = 0
    truncated: int = 0      # sequences cut from the front to fit max_length
    slots_cut: int = 0      # step slots lost with the cut (their steps get no score / no loss)

    def __str__(self) -> str:
        return f"{self.truncated} of {self.sequences} sequences truncated ({self.slots_cut} step slots cut)"


def encode_solution(tokenizer, prompt: list[dict], steps: list[str], tag_id: int, max_length: int | None = None,
                    report: EncodeReport | None = None) -> tuple[list[int], list[int | None]]:
    """(token ids, slot position of each step). Longer than max_length: cut from the front after the leading
    special token (BOS), keeping the last steps; a step whose slot is cut has position None."""
    from rm_core.templates import leading_specials, tokenize_messages

    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    ids = tokenize_messages(tokenizer, prompt, add_generation_prompt=True)
    slots: list[int | None] = []
    for step in steps:
        ids += tokenizer(step, add_special_tokens=False)["input_ids"]
        slots.append(len(ids))
        ids += [tag_id] + newline
    if report is not None:
        report.sequences += 1
    if max_length is None or len(ids) <= max_length:
        return ids, slots
    keep_first = 1 if ids[0] in leading_specials(tokenizer) else 0
    if max_length <= keep_first + len(newline) + 1:
        raise UserInputError(f"max_length {max_length} is too short for one step slot")
    cut = len(ids) - max_length  # tokens removed right after the kept leading special
    ids = ids[:keep_first] + ids[keep_first + cut:]
    moved = [None if s is None or s - cut < keep_first else s - cut for s in slots]
    if report is not None:
        report.truncated += 1
        report.slots_cut += sum(1 for s in moved if s is None)
    return ids, moved
