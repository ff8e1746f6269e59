"""What the ODIN recipe changes in the pairwise pipeline: the model loader, the length columns and their
collator, and the trainer's loss (its config fields: config.py). Everything else is rm_core.pipeline's (data, LoRA,
resume, self-describing checkpoint, model card, Hub push).

loss = odin_ranking_loss(quality + length, per pair)
     + length_loss_weight * [(1 - rho(r_length, L)) + |rho(r_quality, L)|]     over the global batch
     + orthogonality_loss_weight * |cos(w_quality, w_length)|
(rm_core/losses.py). L is the response length in tokens (odin_rm.judge.response_token_length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from trl.trainer.reward_trainer import DataCollatorForPreference

from rm_core.losses import odin_length_loss, odin_orthogonality_loss, odin_ranking_loss
from rm_core.trainer import NonFiniteLossError, PairwiseRewardTrainer


def load_odin_model(name_or_path: str, dtype="auto", chat_template: str | None = None, revision: str | None = None,
                    **kwargs):
    """(ODIN model on the pretrained backbone with new heads, tokenizer), pad policy applied: the
    `model_loader` hook of rm_core.pipeline (same signature as rm_core.models.load_reward_model)."""
    from odin_rm.modeling import odin_from_backbone
    from rm_core.models import load_pretrained
    from rm_core.templates import ensure_pad_token

    model, tokenizer, _ = load_pretrained(name_or_path, odin_from_backbone, dtype, chat_template, revision,
                                          **{k: v for k, v in kwargs.items() if v is not None})
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


def tokenize_with_lengths(prefs: list[dict], tokenizer, max_length: int | None):
    """rm_core.collators.tokenize_preferences plus chosen_length / rejected_length: each response's length in
    tokens (the whole response, even when the sequence was cut to max_length)."""
    from judges.base import response_of
    from odin_rm.judge import response_token_length
    from rm_core.collators import tokenize_preferences

    dataset, report = tokenize_preferences(prefs, tokenizer, max_length)
    kept = [prefs[i] for i in report.kept]  # the pairs in the dataset (one identical once cut is dropped)
    for side in ("chosen", "rejected"):
        dataset = dataset.add_column(f"{side}_length",
                                     [response_token_length(tokenizer, response_of(p[side])) for p in kept])
    return dataset, report


@dataclass
class OdinCollator(DataCollatorForPreference):
    """TRL's preference batches (chosen half, then rejected half) plus `response_lengths` in the same order."""

    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["response_lengths"] = torch.tensor([e["chosen_length"] for e in examples]
                                                 + [e["rejected_length"] for e in examples], dtype=torch.float32)
        return batch


class OdinRewardTrainer(PairwiseRewardTrainer):
    """PairwiseRewardTrainer with ODIN's three-part loss. Logged: accuracy (quality head, the served one),
    accuracy_sum, the three loss parts, and each head's correlation with length over the batch."""

    def __init__(self, *args, data_collator=None, **kwargs):
        processing_class, train_args = kwargs.get("processing_class"), kwargs.get("args")
        if data_collator is None and processing_class is not None:
            data_collator = OdinCollator(pad_token_id=processing_class.pad_token_id,
                                         pad_to_multiple_of=getattr(train_args, "pad_to_multiple_of", None))
        super().__init__(*args, data_collator=data_collator, **kwargs)
        names = list(self.model.config.head_names)
        self._quality, self._length = names.index("quality"), names.index("length")

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "length", "chosen_length",
                                       "rejected_length"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        margin = inputs.pop("margin", None)
        lengths = inputs.pop("response_lengths")
        outputs = model(**inputs, use_cache=False, return_head_weight=True)
        heads = outputs.head_logits
        chosen, rejected = torch.chunk(heads, chunks=2)
        q, n = self._quality, self._length
        ranking = odin_ranking_loss(chosen, rejected, margin, self.args.center_rewards_coefficient)
        length_term, rho_length, rho_quality = odin_length_loss(heads[:, n], heads[:, q], lengths)
        ortho = odin_orthogonality_loss(outputs.head_weight[q], outputs.head_weight[n])
        loss = ranking + self.args.length_loss_weight * length_term + self.args.orthogonality_loss_weight * ortho
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f"non-finite loss {loss.item()} at step {self.state.global_step} (ranking {ranking.item()}, "
                f"length {length_term.item()}, orthogonality {ortho.item()}); lower the learning rate or check "
                "the data, then start again with --resume_from_checkpoint fresh (a resume keeps the learning "
                "rate and replays the same batches)")
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            gather = self.accelerator.gather_for_metrics
            values = {
                "accuracy": (chosen[:, q] > rejected[:, q]).float().mean(),
                "accuracy_sum": (chosen.sum(-1) > rejected.sum(-1)).float().mean(),
                "margin": (chosen[:, q] - rejected[:, q]).mean(),
                "ranking_loss": ranking.detach(),
                "length_loss": length_term.detach(),  # global already: the same on every rank
                "orthogonality_loss": ortho.detach(),
                "length_corr_length_head": rho_length.detach(),
                "length_corr_quality_head": rho_quality.detach(),
            }
            for key, value in values.items():
                self._metrics[mode][key].append(gather(value.float()).mean().item())
        return (loss, outputs) if return_outputs else loss
