"""The judge over any Hugging Face sequence-classification reward model with a one-logit head (Skywork-Reward,
a third-party RM, our `bradley_terry_rm` checkpoints). The shared layer's scalar-head engine: the Bradley-Terry
family registers it as bradley_terry_rm.judge.BradleyTerryJudge, ODIN subclasses it (odin_rm.judge.OdinJudge),
and the scalar ORM is served by it (math_rm.judge.OutcomeRewardJudge). It registers no family itself.

Conversations are rendered with the checkpoint's own chat template (exactly one BOS), cut from the front
when longer than `max_length` (keeping the end of the response; counted in `truncated`), and scored in
length-sorted batches. `score_pairs` and `rank_many` run a pair's (a group's) shared prompt once (one tree
row) on decoder-only models, and `score` and `score_texts` do so for the items of a call that share a prompt (an
RL group's completions, found by their tokens): the same path `eval_reward_bench` uses, so a checkpoint scores the
same through both.

An empty response is scored, not failed (`score`, `score_pairs`, `compare`, `rank`): the rendered conversation
still holds the prompt and the template's assistant turn, and an RL policy can emit an empty reply that deserves a
(low) reward. Only `score_texts` fails an item, a text that tokenizes to no token at all (None, counted in
`failures` as "empty text"): there is nothing to read a reward from. `truncated` counts the sequences cut so far;
`last_item_info` gives, per item of the last call, its token count and whether it was cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from judges.base import Judge, Prompt, conversation


def within_positions(config, max_length: int) -> int:
    """max_length, lowered to the model's position limit when that is smaller (BERT-style encoders such as
    MiniLM have 512 positions: a longer input is an error there, not a score), said once on stderr."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(
        getattr(config, "text_config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and 0 < limit < max_length:
        import sys

        print(f"[judge] max_length {max_length} is over the model's {limit} positions: using {limit}",
              file=sys.stderr, flush=True)
        return limit
    return max_length


class RewardModelJudge(Judge):
    pointwise = True

    def __init__(self, model, tokenizer, max_length: int = 2048, batch_size: int | None = None,
                 share_prefix: bool | None = None, normalize: bool = False):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = within_positions(model.config, max_length)
        self.device = next(model.parameters()).device
        from rm_core.inference import forward_batching

        # Rows a forward. GPU: batches of 16; CPU: two tree rows (pairs, groups) a forward, four in bf16/fp16 with
        # AMX, and whole sequences (pointwise scores) as many as fit in a token budget (rm_core.inference).
        self.batch_size, self.max_tokens = forward_batching(self.device, next(model.parameters()).dtype, batch_size)
        self.share_prefix = share_prefix
        # normalize: report (r - reward_mean) / reward_std from config.json, for rewards on a shared scale
        self.mean = getattr(model.config, "reward_mean", None) if normalize else None
        self.std = getattr(model.config, "reward_std", None) if normalize else None
        if normalize and (self.mean is None or not self.std):
            raise ValueError("normalize=True needs reward_mean and reward_std in the checkpoint's config.json")
        if normalize and not (isinstance(self.mean, (int, float)) and isinstance(self.std, (int, float))
                              and math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            # a negative std reversed every ranking; inf made every reward 0; NaN failed every item
            raise ValueError(f"normalize=True needs a finite reward_mean and a finite reward_std > 0 in the "
                             f"checkpoint's config.json, got {self.mean!r} and {self.std!r}")
        self.truncated = 0
        self.last_item_info: list[dict] = []  # per item of the last call: {"tokens", "truncated"}

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "auto", chat_template: str | None = None,
                        device: str | torch.device | None = None, revision: str | None = None, **judge_kwargs):
        from rm_core.inference import prepare_cpu_inference
        from rm_core.models import inference_device, load_reward_model, resolve_dtype

        device = inference_device(device)
        model, tokenizer = load_reward_model(name_or_path, dtype=resolve_dtype(dtype, device),
                                             chat_template=chat_template, revision=revision)
        model = model.to(device)
        prepare_cpu_inference(model)  # the judge's own model: on a CPU, packed bf16 weights, malloc tuned
        return cls(model, tokenizer, **judge_kwargs)

    def _render(self, conv: list) -> list[int]:
        from rm_core.templates import render_ids

        ids, cut = render_ids(self.tokenizer, conv, self.max_length)
        self.truncated += cut
        self.last_item_info.append({"tokens": len(ids), "truncated": cut})
        return ids

    def _normalized(self, value: float) -> float:
        return value if self.mean is None else (value - self.mean) / self.std

    def _score(self, conversations: list, references: list | None) -> list[float | None]:
        self.last_item_info = []
        return [self._normalized(v) for v in self._score_ids([self._render(conv) for conv in conversations])]

    def _score_ids(self, sequences: list[list[int]]) -> list[float]:
        """Raw rewards of token sequences. Those that share a prompt (an RL group's completions, a pair's two
        sides; found by their tokens, `prefix_groups`) run as one group (`score_groups`: the prompt once, as a tree
        row, where that pays), the others whole (`score_sequences`). By default on a CPU only, where `tree_pays`
        weighs a group's dense attention against its prompt's saving; on a GPU every group would be one row, whose
        attention grows with the square of the whole group (16 completions of 500 tokens: one 8,000-token row),
        unmeasured there: share_prefix=True asks for it."""
        from rm_core.inference import (
            default_pack_tokens,
            prefix_groups,
            score_groups,
            score_sequences,
            supports_shared_prefix,
        )

        groups: list[list[int]] = []
        wanted = self.share_prefix or (self.share_prefix is None and default_pack_tokens(self.model) > 0)
        if wanted and supports_shared_prefix(self.model):
            groups = [members for members in prefix_groups(sequences) if len(members) > 1]
        grouped = {i for members in groups for i in members}
        alone = [i for i in range(len(sequences)) if i not in grouped]
        raw = [0.0] * len(sequences)
        pad = self.tokenizer.pad_token_id
        if groups:
            scores = score_groups(self.model, [[sequences[i] for i in members] for members in groups], pad,
                                  self.batch_size, self.share_prefix, max_tokens=self.max_tokens,
                                  whole_rows=self.batch_size)  # groups run whole: the rows asked for, not twice
            for members, values in zip(groups, scores):
                for i, value in zip(members, values):
                    raw[i] = value
        if alone:
            values = score_sequences(self.model, [sequences[i] for i in alone], pad, self.batch_size,
                                     max_tokens=self.max_tokens)
            for i, value in zip(alone, values):
                raw[i] = value
        return raw

    def score_texts(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[float | None]:
        """A reward per text that is already a rendered conversation (chat template applied, e.g. OpenRLHF's
        decoded prompt + response), scored without applying the template again. add_special_tokens=True
        tokenizes it as `score` tokenizes a rendered conversation (the tokenizer's special tokens, exactly one
        BOS), so the text of a conversation scores as the conversation does; False adds none (OpenRLHF's
        serve_rm). Cut from the front past max_length, normalized as `score`; texts that share a prompt run as
        a group as in `score`. An empty text fails (None)."""
        from rm_core.templates import collapse_double_bos, leading_specials, truncate_keep_end

        self.last_item_info = []
        sequences, todo = [], []
        for i, text in enumerate(texts):
            ids = list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
            ids, cut = truncate_keep_end(collapse_double_bos(self.tokenizer, ids) if add_special_tokens else ids,
                                         self.max_length, leading_specials(self.tokenizer))
            self.truncated += cut
            self.last_item_info.append({"tokens": len(ids), "truncated": cut})
            if ids:
                sequences.append(ids)
                todo.append(i)
            else:
                self.failures.add("empty text", i)
        out: list[float | None] = [None] * len(texts)
        for i, v in zip(todo, self._score_ids(sequences)):
            out[i] = self._normalized(v)  # non-finite -> None, counted: Judge's _CHECKED_PATHS
        return out

    def rank_many(self, items: Sequence[tuple[Prompt, Sequence[str]]]) -> list[list[float | None]]:
        """Each response's reward, for many (prompt, responses) groups (best-of-N, RewardBench 2): as `score`
        gives it, with each group's shared prompt run once (`rm_core.inference.score_groups`)."""
        from rm_core.inference import score_groups

        self.last_item_info = []
        groups = [[self._render(conversation(prompt, r)) for r in responses] for prompt, responses in items]
        scores = score_groups(self.model, groups, self.tokenizer.pad_token_id, self.batch_size, self.share_prefix,
                              max_tokens=self.max_tokens)
        return [[self._normalized(v) for v in group] for group in scores]

    def score_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[tuple[float | None, float | None]]:
        from rm_core.inference import score_pairs

        self.last_item_info = []
        pairs = []
        for prompt, a, b in items:
            ids_a, ids_b = self._render(conversation(prompt, a)), self._render(conversation(prompt, b))
            pairs.append((ids_a, ids_b))
        # one info row per pair: its two sequences' tokens, truncated if either was cut
        info = self.last_item_info
        self.last_item_info = [{"tokens": x["tokens"] + y["tokens"], "truncated": x["truncated"] or y["truncated"]}
                               for x, y in zip(info[0::2], info[1::2])]
        scores = score_pairs(self.model, pairs, self.tokenizer.pad_token_id, self.batch_size, self.share_prefix,
                             max_tokens=self.max_tokens)
        return [(self._normalized(a), self._normalized(b)) for a, b in scores]
