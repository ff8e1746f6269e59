"""Scoring with an ODIN checkpoint, and its judge (rm_family "odin").

`judges.load(ckpt)` returns `OdinJudge`: the Bradley-Terry judge (judges/rm_judge.py: same rendering,
truncation, batching, and the shared-prompt KV-cache path of `eval_reward_bench`) over the served head,
the quality head. `head="length"` scores with the length head instead (analysis only).

`score_heads` / `pair_head_scores` read every head in one forward pass, and `evaluate_odin` (the recipe's
held-out evaluation) reports the quality head's accuracy beside the Pearson correlation of each head with
the response length in tokens.
"""

from __future__ import annotations

import torch

from judges.base import response_of
from judges.rm_judge import RewardModelJudge

ENCODER_TYPES = ("bert", "roberta", "deberta", "deberta-v2", "electra")


def response_token_length(tokenizer, response) -> int:
    """Tokens of a response (the text alone, no template or special tokens): a string, or the messages of a
    multi-turn continuation (their contents summed). The length ODIN disentangles and the bench correlates."""
    if isinstance(response, str):
        texts = [response]
    else:
        texts = [m["content"] for m in response]
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


@torch.inference_mode()
def score_heads(model, sequences: list[list[int]], pad_id: int, batch_size: int = 16) -> list[list[float]]:
    """Every head's reward for each token sequence: ODIN's `head_logits` (config.head_names order), or the
    logits of any other sequence classifier (one column for a BT model). Length-sorted, right-padded batches
    with bounded padding."""
    from rm_core.inference import pad_right, padding_bounded_batches, width_step

    out: list[list[float]] = [[] for _ in sequences]
    device = next(model.parameters()).device
    step = width_step(model)  # bf16/fp16 on a CPU: widths rounded up, so oneDNN meets a few shapes
    for batch in padding_bounded_batches([len(s) for s in sequences], batch_size):
        ids, mask = pad_right([sequences[i] for i in batch], pad_id, step)
        result = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        heads = getattr(result, "head_logits", None)
        heads = result.logits if heads is None else heads
        for i, row in zip(batch, heads.float().tolist()):
            out[i] = row
    return out


def head_names(model) -> list[str]:
    return list(getattr(model.config, "head_names", None) or ["reward"])


def pair_head_scores(model, tokenizer, prefs: list[dict], max_length: int | None, batch_size: int = 16) -> dict:
    """For canonical preference rows: {head: (chosen scores, rejected scores)}, the response lengths in tokens
    (chosen, rejected) and the number of truncated pairs. Each response is scored whole (no shared prefix)."""
    from rm_core.templates import render_ids

    sequences, truncated = [], 0
    for p in prefs:
        cut = False
        for side in ("chosen", "rejected"):
            ids, was_cut = render_ids(tokenizer, p["prompt"] + p[side], max_length)
            sequences.append(ids)
            cut = cut or was_cut
        truncated += cut
    rows = score_heads(model, sequences, tokenizer.pad_token_id, batch_size)
    scores = {name: ([r[k] for r in rows[0::2]], [r[k] for r in rows[1::2]]) for k, name in enumerate(head_names(model))}
    lengths = ([response_token_length(tokenizer, response_of(p["chosen"])) for p in prefs],
               [response_token_length(tokenizer, response_of(p["rejected"])) for p in prefs])
    return {"scores": scores, "lengths": lengths, "truncated_pairs": truncated}


def length_correlation(chosen: list[float], rejected: list[float], chosen_len: list[int],
                       rejected_len: list[int]) -> float | None:
    """Pearson correlation of reward with response length over all responses (chosen and rejected); None where it
    is undefined (a head that gives one value to every response, or responses all of one length): the loss's 0 for
    that case would read as "disentangled" in a report."""
    from rm_core.losses import pearson_correlation

    rewards = torch.tensor(chosen + rejected, dtype=torch.float64)
    lengths = torch.tensor(chosen_len + rejected_len, dtype=torch.float64)
    if rewards.numel() < 2 or not (rewards.var() > 0 and lengths.var() > 0):
        return None
    return pearson_correlation(rewards, lengths).item()


def summarize_heads(result: dict) -> dict:
    """Accuracy (strict tie rule) and length correlation for every head, and for their sum when several."""
    from rm_core.metrics import pairwise_accuracy

    scores = dict(result["scores"])
    if len(scores) > 1:
        chosen = [sum(v) for v in zip(*(c for c, _ in scores.values()))]
        rejected = [sum(v) for v in zip(*(r for _, r in scores.values()))]
        scores["sum"] = (chosen, rejected)
    out = {}
    for name, (chosen, rejected) in scores.items():
        out[name] = {"accuracy": pairwise_accuracy(chosen, rejected),
                     "length_correlation": length_correlation(chosen, rejected, *result["lengths"])}
    return out


def evaluate_odin(model, tokenizer, prefs: list[dict], max_length: int | None, batch_size: int = 16) -> dict:
    """The recipe's held-out evaluation: the served (quality) head's accuracy and reward mean/std, as
    `rm_core.pipeline.evaluate_pairs` reports for BT, plus every head's accuracy and length correlation."""
    result = pair_head_scores(model, tokenizer, prefs, max_length, batch_size)
    summary = summarize_heads(result)
    served = model.config.served_head
    chosen, rejected = result["scores"][served]
    rewards = torch.tensor(chosen + rejected, dtype=torch.float64)
    out = {"accuracy": summary[served]["accuracy"], "pairs": len(prefs),
           "reward_mean": rewards.mean().item(), "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0}
    for name, values in summary.items():
        out[f"{name}_head_accuracy" if name != "sum" else "sum_accuracy"] = values["accuracy"]
        out[f"{name}_head_length_corr" if name != "sum" else "sum_length_corr"] = values["length_correlation"]
    return out


class OdinJudge(RewardModelJudge):
    """A pointwise judge on an ODIN checkpoint's served head (quality), or on `head` when given."""

    def __init__(self, model, tokenizer, head: str | None = None, **kwargs):
        config = model.config
        if head is not None:
            if head not in config.head_names:
                raise ValueError(f"head {head!r} is not one of {config.head_names}")
            if kwargs.get("normalize") and head != config.served_head:
                raise ValueError("normalize=True uses the served head's reward mean/std; it cannot rescale "
                                 f"the {head!r} head")
            config.served_head = head
        # The shared-prefix path (rm_core.inference.score_pairs) reads row 0 of `score`: right for the quality
        # head (row 0), not for another head; and never right for an encoder backbone (bidirectional).
        text_type = getattr(getattr(config, "text_config", None), "model_type", "")
        if config.served_head_index != 0 or text_type in ENCODER_TYPES:
            kwargs["share_prefix"] = False
        super().__init__(model, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *args, **kwargs):
        import odin_rm  # noqa: F401  registers the ODIN classes with the Auto classes
        from rm_core.remote_code import warn_if_stale

        warn_if_stale(name_or_path)
        return super().from_pretrained(name_or_path, *args, **kwargs)
