"""The ArmoRM judge (rm_family "armo"): a pointwise score, the per-objective rewards behind it, and an
explanation of a score as its top-weighted objectives.

Items are rendered exactly as the training embeddings were (rm_core.embeddings.render_item, the
checkpoint's max_length), so a checkpoint scores through the judge what stage 2 scored from its cache.
"""

from __future__ import annotations

import torch

import armo_rm  # noqa: F401  (registers the Auto classes)
from judges.base import Judge, split_conversation
from rm_core.inference import forward_batching


class ArmoJudge(Judge):
    pointwise = True

    def __init__(self, model, tokenizer, max_length: int | None = None, batch_size: int | None = None,
                 embedding_cache: str | None = None):
        super().__init__()
        # embedding_cache: a stage 1/2 cache folder (rm_core.embeddings) to read embeddings from and add to;
        # the backbone is frozen, so a cached vector is exactly what a forward would give
        self.embedding_cache = embedding_cache
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length or getattr(model.config, "armo_max_length", None) or 2048
        self.device = next(model.parameters()).device
        # rows a forward as given; none: on a CPU as many as fit in a token budget
        self.batch_size, self.max_tokens = forward_batching(self.device, next(model.parameters()).dtype, batch_size)
        self.attributes = list(model.config.attributes)

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "auto", chat_template: str | None = None,
                        device: str | torch.device | None = None, revision: str | None = None, **judge_kwargs):
        from transformers import AutoModel

        from rm_core.models import load_for_inference

        # the heads load in fp32 whatever `dtype` is (ArmoRMModel._keep_in_fp32_modules_strict) and compute in fp32
        model, tokenizer = load_for_inference(name_or_path, AutoModel.from_pretrained, dtype, chat_template, device,
                                              revision)
        return cls(model, tokenizer, **judge_kwargs)

    @torch.no_grad()
    def _outputs(self, conversations: list) -> list:
        from rm_core.embeddings import extract_embeddings, forward_items, render_item
        from rm_core.templates import padding_id

        pairs = [split_conversation(conv) for conv in conversations]
        if self.embedding_cache:
            out = extract_embeddings(self.model.backbone, self.tokenizer, pairs, self.embedding_cache,
                                     model_id=getattr(self.model.config, "base_model", None) or "backbone",
                                     max_length=self.max_length, desc="armo judge",
                                     batch_size=None if self.max_tokens else self.batch_size)
            emb, prompt_emb = out["embeddings"], out["prompt_embeddings"]
        else:
            items = [render_item(self.tokenizer, prompt, response, self.max_length) for prompt, response in pairs]
            emb, prompt_emb = forward_items(self.model.backbone, items, padding_id(self.tokenizer),
                                            self.batch_size, self.max_tokens)
        return self.model.heads(emb.to(self.device), prompt_emb.to(self.device))  # fp32 heads on fp32 states

    def _score(self, conversations: list, references: list | None) -> list[float | None]:
        return self._outputs(conversations).score.float().tolist()

    def attribute_scores(self, conversations: list) -> list[dict[str, float]]:
        """Per conversation, the regression reward of every objective (before debiasing)."""
        rewards = self._outputs(list(conversations)).rewards.float().tolist()
        return [dict(zip(self.attributes, row)) for row in rewards]

    def explain(self, conversation: list, top_k: int = 3) -> dict:
        """The score and its top-weighted objectives: gating weight, reward, debiased reward and contribution
        (scale * weight * debiased reward; the contributions sum to the score)."""
        out = self._outputs([conversation])
        gates = out.gating_output[0].float()
        debiased = (out.rewards.float() @ self.model.reward_transform.float())[0]
        scale = self.model.logit_scale.detach().item()
        rows = [{"objective": a, "weight": float(gates[k]), "reward": float(out.rewards[0, k]),
                 "debiased_reward": float(debiased[k]), "contribution": scale * float(gates[k] * debiased[k])}
                for k, a in enumerate(self.attributes)]
        rows.sort(key=lambda r: r["weight"], reverse=True)
        return {"score": float(out.score[0]), "top_objectives": rows[:top_k], "all_objectives": rows}
