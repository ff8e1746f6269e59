"""Pure tensor losses shared by the recipes. No model code here, so each is unit-tested on numbers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_coefficient: float | None = None,
) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected - margin), averaged, plus an optional centering penalty.

    `margin` (Llama 2 style) asks for a larger gap on pairs rated more different. Centering adds
    `center_coefficient * mean((r_chosen + r_rejected)^2)`, which keeps rewards near zero mean
    (Eisenstein et al., 2023) so that rewards from different runs share a scale.
    """
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coefficient:
        loss = loss + center_coefficient * torch.mean((chosen + rejected) ** 2)
    return loss


# ---------------------------------------------------------------------------------------------------- ODIN
# ODIN (Chen et al., 2024, arXiv 2402.07319): two scalar heads on one backbone, r = r_quality + r_length. The
# ranking loss trains the sum; the length term makes r_length carry the reward's correlation with response
# length and keeps r_quality uncorrelated with it; the orthogonality term keeps the two heads' weight vectors
# apart. Only the quality head is served.


def odin_ranking_loss(
    chosen_heads: torch.Tensor,
    rejected_heads: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_coefficient: float | None = None,
) -> torch.Tensor:
    """Bradley-Terry loss on the sum of the heads, per pair: heads are (pairs, n_heads) tensors.

    -mean_i log sigmoid(sum_h chosen[i, h] - sum_h rejected[i, h] - margin[i]); margin and centering as in
    `bradley_terry_loss` (centering applies to the summed reward).
    """
    if chosen_heads.shape != rejected_heads.shape or chosen_heads.dim() != 2:
        raise ValueError(f"expected two (pairs, heads) tensors of one shape, got {tuple(chosen_heads.shape)} "
                         f"and {tuple(rejected_heads.shape)}")
    return bradley_terry_loss(chosen_heads.sum(dim=-1), rejected_heads.sum(dim=-1), margin, center_coefficient)


def pearson_correlation(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of two 1-D tensors, differentiable in both.

    A constant input (zero variance: every response of the batch as long as the others, or a head that outputs
    one value) gives 0 with a finite gradient, where `torch.corrcoef` gives NaN.
    """
    if x.dim() != 1 or x.shape != y.shape:
        raise ValueError(f"expected two 1-D tensors of one length, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() < 2:
        raise ValueError("a correlation needs at least two values")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    xc = x.to(dtype) - x.to(dtype).mean()
    yc = y.to(dtype) - y.to(dtype).mean()
    # clamp before sqrt: sqrt's gradient at 0 is infinite, and 0 * inf would be NaN
    denom = ((xc * xc).sum() * (yc * yc).sum()).clamp_min(eps * eps).sqrt()
    return (xc * yc).sum() / denom


def gather_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor over all ranks (rank order), keeping the autograd graph: the local slice
    carries gradients back to this rank's model (torch.distributed.nn.functional.all_gather). Ranks may hold
    different numbers of elements. In a single process (no process group, or one rank) `t` is returned as is."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    from torch.distributed.nn.functional import all_gather

    world = dist.get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    if t.shape[0] < longest:  # all_gather needs one shape on every rank: pad, then cut the padding off again
        t = torch.cat([t, t.new_zeros(longest - t.shape[0], *t.shape[1:])])
    parts = all_gather(t.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def odin_length_loss(
    length_rewards: torch.Tensor,
    quality_rewards: torch.Tensor,
    lengths: torch.Tensor,
    across_ranks: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ODIN's length term over every response of the batch: (1 - rho(r_length, L)) + |rho(r_quality, L)|.

    Pearson correlations with the response lengths L, computed over the whole global batch: under DDP the
    rewards and lengths of every rank are gathered (autograd-aware, so each rank's gradient is its share of
    the global term), and in one process over the local batch (no process group is needed). Returns
    (loss, rho_length_head, rho_quality_head); the loss is in [0, 3] and 0 when the length head is perfectly
    correlated with length and the quality head not at all.
    """
    if across_ranks:
        length_rewards = gather_across_ranks(length_rewards)
        quality_rewards = gather_across_ranks(quality_rewards)
        lengths = gather_across_ranks(lengths.to(torch.float32))  # bf16 cannot hold lengths above 256 exactly
    rho_length = pearson_correlation(length_rewards, lengths)
    rho_quality = pearson_correlation(quality_rewards, lengths)
    return (1 - rho_length) + rho_quality.abs(), rho_length, rho_quality


def odin_orthogonality_loss(weight_a: torch.Tensor, weight_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """|cos(w_a, w_b)| between two heads' weight vectors: 0 when orthogonal, 1 when parallel.

    The cosine rather than the raw dot product |w_a . w_b|, so the term cannot be lowered by shrinking the
    weights (which the ranking loss would then have to undo through the backbone's scale)."""
    a, b = weight_a.reshape(-1), weight_b.reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"head weights of different sizes: {tuple(a.shape)} and {tuple(b.shape)}")
    norms = ((a * a).sum() * (b * b).sum()).clamp_min(eps * eps).sqrt()
    return ((a * b).sum() / norms).abs()


# ---------------------------------------------------------------------------------------- sparse labels
# The generative recipes (pair-PM: the answer token; math PRM/ORM: the "+"/"-" judgement at each step slot)
# train a causal LM on a few labelled tokens per sequence. The loss is the shifted causal-LM cross-entropy over
# those labels (the logits at position t predict labels[:, t + 1]), computed from logits at the labelled
# positions only: the stock loss builds vocabulary-wide logits at every position and masks all but a few.


def sparse_label_positions(labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """(rows, positions, keep) of a (batch, seq) label tensor: label k sits at labels[rows[k], positions[k] + 1]
    and is predicted by the logits at positions[k]; `keep` is the sorted set of positions the batch needs (pass
    it as the model's `logits_to_keep`)."""
    rows, positions = (labels[:, 1:] != ignore_index).nonzero(as_tuple=True)
    return rows, positions, torch.unique(positions)


def sparse_label_loss(
    kept_logits: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    keep: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    num_processes: int = 1,
    label_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the labelled tokens, in fp32, from logits computed at the `keep` positions only.

    kept_logits: (batch, len(keep), vocab); rows, positions, keep: from `sparse_label_positions`. The sum over
    labels is divided by their number in this batch, or, as transformers' Trainer does under gradient
    accumulation, by `num_items_in_batch` (labels in the whole accumulated, all-process batch) times
    `num_processes` (DDP averages the processes' gradients, so each process's share is scaled back up).
    label_ids: the softmax runs over these token ids' logits alone (every label must be one of them), not the
    whole vocabulary: a classifier over the label tokens, which is what a judge reading their softmax scores."""
    logits = kept_logits[rows, torch.searchsorted(keep, positions)]
    targets = labels[rows, positions + 1]
    if label_ids is not None:
        label_ids = label_ids.to(logits.device)
        match = targets[:, None] == label_ids[None, :].to(targets.device)
        if not bool(match.any(dim=1).all()):
            raise ValueError(f"a label outside the label tokens {label_ids.tolist()}")
        logits, targets = logits[:, label_ids], match.int().argmax(dim=1)
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    if num_items_in_batch is None:
        return loss / len(rows)
    return loss / num_items_in_batch * num_processes
