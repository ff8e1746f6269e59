"""Scoring with a pair-PM checkpoint, and its judge (rm_family "pair_pm").

P_A(a, b): the model reads the pair-PM chat (pair_pm/prepare_data.py) with a as Response A and b as
Response B; at the answer position, the two-way softmax of the logits of the "A" and "B" tokens gives
P(A). The order-debiased preference is

    P(a > b) = (P_A(a, b) + 1 - P_A(b, a)) / 2

so a model that prefers a position gains nothing from it. Both orders of every pair run in one batched
forward (left-padded, length-sorted). `judges.load(ckpt)` returns PairPMJudge for a checkpoint whose
config.json says rm_family "pair_pm" (it also records the answer-token ids, template and max_length).

A checkpoint trained by pair_pm/train_grpo.py says `pair_pm_reasoning: true`: `judges.load` then returns
ReasoningPairPMJudge, which writes principles, a critique and a verdict (greedy, `pair_pm_max_new_tokens`) for
both orders and reads the verdict with the strict parser of pair_pm/grpo_rewards.py. In one order P(a better)
is 1 or 0; the pair's P is their mean (1, 0.5 when the verdict follows the slot, 0). An output that does not
parse makes its pair None, counted in `judge.failures` with the reason; `judge.verdict_stats` counts every
output (parsed, "A", "B", and each malformed reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from judges.base import Judge, PairVerdict, Prompt, prompt_text, response_text
from pair_pm.prepare_data import REASONING_QUESTION, TruncationReport, answer_token_ids, encode_pair
from rm_core.inference import forward_batching


def load_judge_lm(name_or_path: str, dtype: str | torch.dtype = "auto", chat_template: str | None = None,
                  device: str | torch.device | None = None, revision: str | None = None):
    """(causal LM on `device`, tokenizer) of a pair-PM checkpoint (rm_core.models.load_for_inference)."""
    from transformers import AutoModelForCausalLM

    from rm_core.models import load_for_inference

    return load_for_inference(name_or_path, AutoModelForCausalLM.from_pretrained, dtype, chat_template, device, revision)


def first_probs(model, sequences: list[list[int]], pad_id: int, answer_ids: dict[str, int],
                batch_size: int = 1, max_tokens: int | None = None) -> list[float]:
    """P(A) for each prompt (ids ending with the generation prompt): softmax over the A/B logits; `batch_size`
    rows a forward, or up to `max_tokens` padded tokens where given."""
    from rm_core.inference import next_token_choice_probs

    probs = next_token_choice_probs(model, sequences, pad_id, [answer_ids["A"], answer_ids["B"]], batch_size,
                                    max_tokens)
    return [p_a for p_a, _ in probs]


class PairPMJudge(Judge):
    pointwise = False
    default_rank_method = "bt"

    def __init__(self, model, tokenizer, max_length: int | None = None, batch_size: int | None = None):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self.max_length = max_length or getattr(config, "pair_pm_max_length", None) or 2048
        self.answer_ids = dict(getattr(config, "pair_pm_answer_ids", None) or answer_token_ids(tokenizer))
        self.device = next(model.parameters()).device
        # rows a forward as given; none: on a CPU as many as fit in a token budget
        self.batch_size, self.max_tokens = forward_batching(self.device, next(model.parameters()).dtype, batch_size)
        self.truncation = TruncationReport()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # left pads are masked out

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "auto", chat_template: str | None = None,
                        device: str | torch.device | None = None, revision: str | None = None, **judge_kwargs):
        model, tokenizer = load_judge_lm(name_or_path, dtype, chat_template, device, revision)
        if cls is PairPMJudge and getattr(model.config, "pair_pm_reasoning", False):
            cls = ReasoningPairPMJudge  # trained by pair_pm/train_grpo.py: it generates
        return cls(model, tokenizer, **judge_kwargs)

    def first_probs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[float]:
        """P_A(a, b) for each (prompt, a, b) in the order given: one order, no debiasing."""
        seqs = [encode_pair(self.tokenizer, prompt_text(p), response_text(a), response_text(b), self.max_length,
                            self.truncation) for p, a, b in items]
        return first_probs(self.model, seqs, self.tokenizer.pad_token_id, self.answer_ids, self.batch_size,
                           self.max_tokens)

    def judge_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[PairVerdict]:
        """Both orders of every pair in one batched pass: p_forward = P_A(a, b), p_backward = 1 - P_A(b, a)."""
        items = list(items)
        both = [x for p, a, b in items for x in ((p, a, b), (p, b, a))]
        probs = self.first_probs(both)
        return [PairVerdict(probs[2 * i], 1.0 - probs[2 * i + 1]) for i in range(len(items))]

    def _compare(self, items: list[tuple[Prompt, str, str]]) -> list[float | None]:
        return [v.p for v in self.judge_pairs(items)]


class ReasoningPairPMJudge(Judge):
    """A pair-PM that reasons before its verdict (pair_pm/train_grpo.py); see the module docstring.

    max_length: the prompt budget in tokens (pairs are cut inside the context and responses, as for the
    pair-PM; default config `pair_pm_max_length`); max_new_tokens: default config `pair_pm_max_new_tokens`.
    Generation is greedy, in length-sorted left-padded batches of `batch_size` (default 8; generation is
    decode-bound, so batching pays on a CPU too)."""

    pointwise = False
    default_rank_method = "bt"

    def __init__(self, model, tokenizer, max_length: int | None = None, batch_size: int | None = None,
                 max_new_tokens: int | None = None):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self.max_length = max_length or getattr(config, "pair_pm_max_length", None) or 2048
        self.max_new_tokens = max_new_tokens or getattr(config, "pair_pm_max_new_tokens", None) or 256
        self.device = next(model.parameters()).device
        self.batch_size = batch_size or (32 if self.device.type == "cuda" else 8)
        self.truncation = TruncationReport()
        self.verdict_stats: Counter = Counter()
        self.last_budget_cut: list[bool] | None = None  # per output of the last generate(): cut at max_new_tokens
        self.last_item_info: list[dict] = []
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # left pads are masked out

    from_pretrained = PairPMJudge.__dict__["from_pretrained"]  # the same loading, always this class

    def _eos_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        return eos

    def generate(self, items: Sequence[tuple[Prompt, str, str]]) -> list[str]:
        """The judge's output text for each (prompt, a, b), a shown as Response A: one order, greedy."""
        from transformers import GenerationConfig

        seqs = [encode_pair(self.tokenizer, prompt_text(p), response_text(a), response_text(b), self.max_length,
                            self.truncation, question=REASONING_QUESTION, reserve=0) for p, a, b in items]
        pad = self.tokenizer.pad_token_id
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad,
                                  eos_token_id=self._eos_ids())
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        texts: list[str] = [""] * len(seqs)
        from rm_core.progress import progress

        bar = progress(total=len(order), desc="reasoning verdicts", unit="output", leave=False)
        eos = set(self._eos_ids())
        self.last_budget_cut = [False] * len(seqs)  # an output that used every new token without ending
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(seqs[i]) for i in batch)
            ids = torch.tensor([[pad] * (width - len(seqs[i])) + seqs[i] for i in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(seqs[i])) + [1] * len(seqs[i]) for i in batch],
                                device=self.device)
            with torch.inference_mode():
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            # decoded as TRL decodes completions in training (special tokens dropped), then parsed the same way
            new = out[:, width:]
            for row, (i, text) in enumerate(zip(batch, self.tokenizer.batch_decode(new, skip_special_tokens=True))):
                texts[i] = text
                self.last_budget_cut[i] = new.shape[1] >= self.max_new_tokens and not eos & set(new[row].tolist())
            bar.update(len(batch))
        bar.close()
        return texts

    def _parsed(self, text: str, budget_cut: bool):
        """parse_reasoning_verdict, naming the token budget when an output with no usable verdict used all of it
        (the critique ran long: raise max_new_tokens), rather than blaming the model's form."""
        from pair_pm.grpo_rewards import ParsedVerdict, parse_reasoning_verdict

        parsed = parse_reasoning_verdict(text)
        if budget_cut and not parsed.ok:
            return ParsedVerdict(None, parsed.reasoning, f"no verdict within max_new_tokens {self.max_new_tokens}")
        return parsed

    def judge_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[PairVerdict]:
        """Both orders of every pair: p_forward = P(a better) with a as Response A (1.0 or 0.0), p_backward
        with a as Response B, mapped back to a. A pair with a malformed output in either order fails."""
        items = list(items)
        self.last_budget_cut = None
        texts = self.generate([x for p, a, b in items for x in ((p, a, b), (p, b, a))])
        cut = self.last_budget_cut if self.last_budget_cut is not None and len(self.last_budget_cut) == len(texts) \
            else [False] * len(texts)
        verdicts, self.last_item_info = [], []
        for i in range(len(items)):
            parsed = [self._parsed(texts[k], cut[k]) for k in (2 * i, 2 * i + 1)]
            for v in parsed:
                self.verdict_stats["outputs"] += 1
                self.verdict_stats[f"verdict {v.verdict}" if v.ok else f"malformed: {v.error}"] += 1
            fwd, bwd = parsed
            p_fwd = None if not fwd.ok else float(fwd.verdict == "A")
            p_bwd = None if not bwd.ok else float(bwd.verdict == "B")  # a is Response B in the backward order
            error = None
            for order, v, text in (("forward", fwd, texts[2 * i]), ("backward", bwd, texts[2 * i + 1])):
                if not v.ok:
                    error = f"unparsable verdict: {v.error}"
                    self.failures.add(error, f"pair #{i} ({order}): {text!r}")
                    break  # one count per failed pair
            verdicts.append(PairVerdict(p_fwd, p_bwd, texts[2 * i], texts[2 * i + 1], error))
            self.last_item_info.append({"verdict_forward": fwd.verdict, "verdict_backward": bwd.verdict,
                                        "text_forward": texts[2 * i], "text_backward": texts[2 * i + 1]})
        return verdicts

    def _compare(self, items: list[tuple[Prompt, str, str]]) -> list[float | None]:
        return [v.p for v in self.judge_pairs(items)]

    @property
    def malformed_rate(self) -> float | None:
        n = self.verdict_stats["outputs"]
        return None if not n else sum(c for k, c in self.verdict_stats.items() if k.startswith("malformed")) / n
