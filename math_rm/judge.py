"""Scoring with a PRM / ORM checkpoint, and their judges (rm_family "prm" and "orm").

Every step of a solution is scored in ONE forward pass: the solution is encoded with a judgement slot after
each step (math_rm/encoding.py), and P(step good) = softmax over the "+"/"-" logits at each slot. RLHFlow's
evaluator instead runs one pass per step on the growing prefix (O(K^2) tokens for K steps); `per_step_probs`
is that baseline, kept for the timing comparison and the equality test (causal attention makes them equal).

A solution's score is the aggregation of its step scores (config.json `math_rm_aggregation`, or the judge's
`aggregation=`): "min" (the weakest step), "prod" (the chance that every step is good, if independent),
"last" (the final step) or "mean" (RLHFlow's choice). An ORM has one step, so all four agree.

`judges.load(ckpt)` builds ProcessRewardJudge for rm_family "prm" and OutcomeRewardJudge for "orm". An "orm"
checkpoint with `math_rm_head: "scalar"` (math_rm/train_scalar_orm.py, a sequence-classification head) is
served by the shared scalar-head judge instead (judges.rm_judge.RewardModelJudge, the Bradley-Terry judge's
engine): its score is the scalar reward, not a probability.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch

from judges.base import Judge, split_conversation
from math_rm.encoding import TEMPLATE_NAME, EncodeReport, choose_step_tag, encode_solution, judgement_token_ids
from rm_core.data import split_steps
from rm_core.inference import forward_batching

AGGREGATIONS = {
    "min": min,
    "prod": math.prod,
    "last": lambda xs: xs[-1],
    "mean": statistics.fmean,
}


def aggregate(step_scores: Sequence[float | None], how: str) -> float | None:
    """One score for a solution from its step scores; steps without a score (cut by truncation) are left out."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; choose from {sorted(AGGREGATIONS)}")
    present = [s for s in step_scores if s is not None]
    if any(not math.isfinite(s) for s in present):
        return math.nan  # min/max over a NaN depend on the order: any non-finite step fails the solution
    return float(AGGREGATIONS[how](present)) if present else None


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def slot_probs(model, encoded: list[tuple[list[int], list[int | None]]], pad_id: int, judgement_ids: dict[str, int],
               batch_size: int = 1, max_tokens: int | None = None) -> list[list[float | None]]:
    """P("+") at every slot of every (ids, slots), one forward pass per batch of sequences (right-padded,
    length-sorted, padding bounded; `batch_size` rows, or up to `max_tokens` padded tokens where given; the LM
    head runs only at slot positions)."""
    from rm_core.inference import causal_attention, pad_right, padding_bounded_batches, width_step

    device = _device(model)
    pick = torch.tensor([judgement_ids["+"], judgement_ids["-"]], device=device)
    out: list[list[float | None]] = [[] for _ in encoded]
    step = width_step(model)  # bf16/fp16 on a CPU: widths rounded up, so oneDNN meets a few shapes
    causal = causal_attention(model)  # then the right padding needs no mask: the causal kernel, same numbers
    for batch in padding_bounded_batches([len(ids) for ids, _ in encoded], batch_size, max_tokens=max_tokens):
        ids, mask = pad_right([encoded[i][0] for i in batch], pad_id, step)
        positions = sorted({s for i in batch for s in encoded[i][1] if s is not None})
        if not positions:
            for i in batch:
                out[i] = [None] * len(encoded[i][1])
            continue
        keep = torch.tensor(positions, device=device)
        logits = model(input_ids=ids.to(device), attention_mask=None if causal else mask.to(device), use_cache=False,
                       logits_to_keep=keep).logits[:, :, pick].float()
        probs = torch.softmax(logits, dim=-1)[..., 0].tolist()  # [batch, len(positions)]
        where = {p: j for j, p in enumerate(positions)}
        for row, i in enumerate(batch):
            out[i] = [None if s is None else probs[row][where[s]] for s in encoded[i][1]]
    return out


@torch.inference_mode()
def per_step_probs(model, ids: list[int], slots: list[int | None], judgement_ids: dict[str, int]) -> list[float | None]:
    """The per-step baseline (RLHFlow's evaluator): one forward pass per step, on the prefix ending at its slot."""
    device = _device(model)
    pick = [judgement_ids["+"], judgement_ids["-"]]
    out = []
    for s in slots:
        if s is None:
            out.append(None)
            continue
        logits = model(input_ids=torch.tensor([ids[: s + 1]], device=device), use_cache=False,
                       logits_to_keep=1).logits[0, -1, pick].float()
        out.append(torch.softmax(logits, dim=-1)[0].item())
    return out


class ProcessRewardJudge(Judge):
    """Pointwise: score(conversation) = the aggregated P(step good) of the last assistant turn's steps."""

    pointwise = True
    family = "prm"
    default_aggregation = "min"
    scores_are_probabilities = True  # the aggregated P(step good): in [0, 1]

    def __init__(self, model, tokenizer, aggregation: str | None = None, max_length: int | None = None,
                 batch_size: int | None = None, step_tag: str | None = None):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self.aggregation = aggregation or getattr(config, "math_rm_aggregation", None) or self.default_aggregation
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; choose from {sorted(AGGREGATIONS)}")
        self.max_length = max_length or getattr(config, "math_rm_max_length", None) or 2048
        self.judgement_ids = dict(getattr(config, "math_rm_judgement_ids", None) or judgement_token_ids(tokenizer))
        tag = step_tag or getattr(config, "math_rm_step_tag", None)
        self.step_tag, self.tag_id = choose_step_tag(tokenizer, tag)
        self.device = next(model.parameters()).device
        # rows a forward as given; none: on a CPU as many as fit in a token budget
        self.batch_size, self.max_tokens = forward_batching(self.device, next(model.parameters()).dtype, batch_size)
        self.report = EncodeReport()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # right pads come after every slot and are never read

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "auto", chat_template: str | None = None,
                        device: str | torch.device | None = None, revision: str | None = None, **judge_kwargs):
        from transformers import AutoModelForCausalLM

        from rm_core.models import load_for_inference

        model, tokenizer = load_for_inference(name_or_path, AutoModelForCausalLM.from_pretrained, dtype, chat_template,
                                              device, revision)
        template = getattr(model.config, "math_rm_template", TEMPLATE_NAME)
        if template != TEMPLATE_NAME:
            raise ValueError(f"{name_or_path} was trained with template {template!r}; this code reads {TEMPLATE_NAME!r}")
        return cls(model, tokenizer, **judge_kwargs)

    def steps_of(self, response: str) -> list[str]:
        """The steps the PRM judges (rm_core.data.split_steps); an empty response is one empty step (`score` fails
        it before it gets here)."""
        return split_steps(response) or [response.strip()]

    def encode(self, conv: list) -> tuple[list[int], list[int | None]]:
        prompt, response = split_conversation(conv)
        return encode_solution(self.tokenizer, prompt, self.steps_of(response), self.tag_id, self.max_length,
                               self.report)

    def step_scores(self, conversations: Sequence[list]) -> list[list[float | None]]:
        """P(step good) for every step of each conversation's last assistant turn, one forward per sequence."""
        encoded = [self.encode(conv) for conv in conversations]
        return slot_probs(self.model, encoded, self.tokenizer.pad_token_id, self.judgement_ids, self.batch_size,
                          self.max_tokens)

    def score_steps(self, items: Sequence[tuple[list, list[str]]]) -> list[list[float | None]]:
        """P(step good) for solutions given as (prompt messages, their steps as a list): the steps as they are, not
        split again (a benchmark's own step boundaries, eval/prmbench.py); one forward per solution. A step whose
        slot was cut by max_length is None."""
        encoded = [encode_solution(self.tokenizer, list(prompt), list(steps), self.tag_id, self.max_length, self.report)
                   for prompt, steps in items]
        return slot_probs(self.model, encoded, self.tokenizer.pad_token_id, self.judgement_ids, self.batch_size,
                          self.max_tokens)

    def step_scores_per_step(self, conversations: Sequence[list]) -> list[list[float | None]]:
        """The same scores computed one forward pass per step (the O(K^2) baseline)."""
        return [per_step_probs(self.model, *self.encode(conv), self.judgement_ids) for conv in conversations]

    def _score(self, conversations: list, references: list | None) -> list[float | None]:
        # an empty response has no step to judge: a failure, not the score of an empty step
        present = [i for i, conv in enumerate(conversations) if split_conversation(conv)[1].strip()]
        out: list[float | None] = [None] * len(conversations)
        for i in sorted(set(range(len(conversations))) - set(present)):
            self.failures.add("empty response", i)
        scored = self.step_scores([conversations[i] for i in present]) if present else []
        for i, steps in zip(present, scored):
            value = aggregate(steps, self.aggregation)
            if value is None:
                self.failures.add("every step slot was cut by max_length", i)
            out[i] = value
        return out


class OutcomeRewardJudge(ProcessRewardJudge):
    """The whole response is one step: score = P(correct) at the slot after it."""

    family = "orm"
    default_aggregation = "last"

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs):
        from transformers import AutoConfig

        from rm_core.models import resolve_model

        config = AutoConfig.from_pretrained(resolve_model(name_or_path), revision=kwargs.get("revision"))
        if getattr(config, "math_rm_head", None) == "scalar":  # math_rm/train_scalar_orm.py: a sequence-classification head
            from judges.rm_judge import RewardModelJudge

            kwargs.pop("aggregation", None)
            return RewardModelJudge.from_pretrained(name_or_path, **kwargs)
        return super().from_pretrained.__func__(cls, name_or_path, **kwargs)

    score_steps = None  # an ORM judges the whole solution once: it has no step scores

    def steps_of(self, response: str) -> list[str]:
        return [response.strip()]
