"""TRL's RewardTrainer with the project's loss, length-grouped batches and a hard stop on a NaN loss; and the
sparse-label loss step of the generative recipes' SFTTrainers (pair-PM, math PRM/ORM)."""

from __future__ import annotations

import math

import torch
from trl import RewardTrainer

from rm_core.losses import bradley_terry_loss, sparse_label_loss, sparse_label_positions


class NonFiniteLossError(FloatingPointError):
    pass


class PairwiseRewardTrainer(RewardTrainer):
    """Extends (does not fork) TRL's RewardTrainer.

    - the loss is `rm_core.losses.bradley_terry_loss` (margin and centering included), so every recipe
      and its unit tests share one definition;
    - keeps the `length` column for `train_sampling_strategy="group_by_length"` (TRL drops it);
    - a NaN/inf loss stops training with the step number instead of silently corrupting weights; the
      last saved checkpoint stays resumable.
    """

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "length"]  # the collator drops length

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        margin = inputs.pop("margin", None)
        outputs = model(**inputs, use_cache=False)
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        loss = bradley_terry_loss(rewards_chosen, rewards_rejected, margin, self.args.center_rewards_coefficient)
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f"non-finite loss {loss.item()} at step {self.state.global_step}; lower the learning rate or "
                "check the data, then start again with --resume_from_checkpoint fresh (a resume keeps the "
                "learning rate and replays the same batches)"
            )
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            accuracy = (rewards_chosen > rewards_rejected).float().mean()
            self._metrics[mode]["accuracy"].append(self.accelerator.gather_for_metrics(accuracy).mean().item())
            margin_mean = (rewards_chosen - rewards_rejected).mean()
            self._metrics[mode]["margin"].append(self.accelerator.gather_for_metrics(margin_mean).mean().item())
        return (loss, outputs) if return_outputs else loss


def sparse_label_loss_step(trainer, model, inputs: dict, num_items_in_batch=None, what: str = "label",
                           one_per_row: bool = False, stop_on_nonfinite: bool = False, label_ids=None):
    """(loss, outputs) for an SFTTrainer's compute_loss on sparsely labelled sequences: the LM head runs only at
    the positions that predict a label (`logits_to_keep`), and the loss is rm_core.losses.sparse_label_loss,
    equal to the stock shifted causal-LM loss over those labels.

    what: the labelled token, for the messages; one_per_row: each sequence holds exactly one (the pair-PM's
    answer token), else a batch must hold at least one; stop_on_nonfinite: a NaN/inf loss raises
    NonFiniteLossError naming the step; label_ids: the softmax over these tokens' logits only (sparse_label_loss).
    `trainer` is read only under gradient accumulation (num_items_in_batch given): its
    args.average_tokens_across_devices and accelerator.num_processes."""
    labels = inputs["labels"]
    rows, positions, keep = sparse_label_positions(labels)
    if one_per_row and (len(rows) != labels.shape[0] or len(set(rows.tolist())) != labels.shape[0]):
        raise ValueError(f"each example must have exactly one {what} in its labels")
    if len(rows) == 0:
        raise ValueError(f"a batch without any {what}: the dataset builder should have dropped it")
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False,
                    logits_to_keep=keep)
    processes = (trainer.accelerator.num_processes
                 if num_items_in_batch is not None and trainer.args.average_tokens_across_devices else 1)
    loss = sparse_label_loss(outputs.logits, labels, rows, positions, keep, num_items_in_batch, processes, label_ids)
    if stop_on_nonfinite and not math.isfinite(loss.item()):
        raise NonFiniteLossError(f"non-finite loss at step {trainer.state.global_step}; lower the learning rate")
    return loss, outputs
