"""Batched reward scoring of token sequences and of preference pairs.

`score_pairs` scores a chosen/rejected pair's shared prefix (the prompt, and whatever the template
renders before the responses diverge) once: one "tree" sequence holds the prefix, the chosen suffix and
the rejected suffix, with positions and an attention mask that make each suffix see only the prefix and
itself. On a CPU several pairs share a forward, block-diagonal, with no padding. Models without a causal
backbone and a `score` head (encoders such as BERT/MiniLM, which pool at [CLS]) take the plain path:
every sequence whole, length-sorted.
"""

from __future__ import annotations

import math

import torch

# bench.judge_split on the MiniLM service's batches: 1.3 took batch 32's forward from 10.8 to 8.8 ms a request and
# tied at batch 14; 1.1 cost more in extra forwards than it saved in padding.
PADDING_SLACK = 1.3
# Tokens a CPU forward of tree rows packs (`score_pairs`). bench/RESULTS.md ("eval_reward_bench speed"): on
# LLMBar fp32/bf16, 256-512 beat one pair a forward; past that, attention over the packed width (its masked
# blocks are computed too) costs more than the bigger matrix products save.
PACK_TOKENS = 256


def padding_bounded_batches(lengths: list[int], size: int, slack: float = PADDING_SLACK,
                            indices: list[int] | None = None):
    """The indices of `lengths` (or only `indices`, whose order breaks length ties), sorted by length, in
    consecutive batches of at most `size`, each cut early where padding it to its longest item would cost
    more than `slack` times its real tokens (inf: plain slices). Eight short requests and one long one then
    run as two forwards instead of nine padded to the long one: on a CPU the forward's cost is its padded
    tokens."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    order = sorted(range(len(lengths)) if indices is None else indices, key=lengths.__getitem__)  # stable
    group: list[int] = []
    real = 0
    for i in order:
        if group and (len(group) == size or lengths[i] * (len(group) + 1) > slack * (real + lengths[i])):
            yield group
            group, real = [], 0
        group.append(i)
        real += lengths[i]
    if group:
        yield group


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token sequences right-padded with `pad_id` to the longest."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def score_sequences(model, sequences: list[list[int]], pad_id: int, batch_size: int = 16,
                    padding_slack: float = PADDING_SLACK) -> list[float]:
    """One reward per token sequence, through the model's own head and pooling (right padding), in
    length-sorted batches whose padding stays within `padding_slack` (`padding_bounded_batches`; inf:
    plain slices of `batch_size`)."""
    scores: list[float] = [0.0] * len(sequences)
    device = _device(model)
    for batch in padding_bounded_batches([len(s) for s in sequences], batch_size, padding_slack):
        ids, mask = pad_right([sequences[i] for i in batch], pad_id)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        for i, value in zip(batch, logits[:, 0].float().tolist()):
            scores[i] = value
    return scores


def supports_shared_prefix(model) -> bool:
    """Decoder-only sequence classifiers (Llama, Qwen, Mistral, Gemma, ...) with a linear `score` head."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    return (
        isinstance(getattr(model, "score", None), torch.nn.Linear)
        and base is not None
        and not getattr(model.config, "is_encoder_decoder", False)
        and getattr(model.config, "model_type", "") not in ("bert", "roberta", "deberta", "deberta-v2", "electra")
    )


def shared_prefix_length(a: list[int], b: list[int]) -> int:
    """Length of the common token prefix, leaving at least one token of each sequence after it."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def tree_packable(model, length: int) -> bool:
    """Whether a pair whose longer sequence has `length` tokens can run as a tree row (`score_pairs`): the
    attention takes a 4D mask (sdpa, eager; not flash-attention's kernels, which take none) and no sliding
    window is shorter than the sequence, so the one mask given to every layer is what each layer would use."""
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    window = getattr(model.config, "sliding_window", None)
    return implementation in ("sdpa", "eager") and (not window or length <= window)


def _tree_rows(pairs: list[tuple[list[int], list[int]]], rows: list[list[int]]):
    """For each row (pair indices), its token ids, positions, reward read-outs [(pair, chosen pos, rejected pos)]
    and tree blocks [(start, prefix, chosen end, end)]: prefix + chosen suffix + rejected suffix per pair,
    the rejected suffix's positions restarting where the prefix ends."""
    for row in rows:
        ids: list[int] = []
        positions: list[int] = []
        reads, blocks = [], []
        for i in row:
            chosen, rejected = pairs[i]
            n = shared_prefix_length(chosen, rejected)
            start = len(ids)
            ids += chosen + rejected[n:]
            positions += list(range(len(chosen))) + list(range(n, len(rejected)))
            chosen_end, end = start + len(chosen), len(ids)
            reads.append((i, chosen_end - 1, end - 1))
            blocks.append((start, start + n, chosen_end, end))
        yield ids, positions, reads, blocks


def _tree_mask(blocks_per_row: list[list[tuple[int, int, int, int]]], width: int, dtype: torch.dtype) -> torch.Tensor:
    """(rows, 1, width, width) additive mask: causal inside each pair's block, the rejected suffix blind to
    the chosen suffix, nothing across pairs; a padding position sees only itself (a row with no visible key
    would be NaN)."""
    allow = torch.eye(width, dtype=torch.bool).repeat(len(blocks_per_row), 1, 1)
    for r, blocks in enumerate(blocks_per_row):
        for start, prefix_end, chosen_end, end in blocks:
            allow[r, start:end, start:end] = torch.ones(end - start, end - start, dtype=torch.bool).tril()
            allow[r, chosen_end:end, prefix_end:chosen_end] = False
    return torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)[:, None]


@torch.inference_mode()
def score_pairs(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 16,
                share_prefix: bool | None = None, pack_tokens: int | None = None) -> list[tuple[float, float]]:
    """(chosen_reward, rejected_reward) for each (chosen_ids, rejected_ids) pair.

    Shared-prefix path (decoders with a score head, `supports_shared_prefix`): each pair is one tree row, its
    shared prefix (the prompt and whatever the template renders before the responses diverge) followed by the
    chosen suffix and the rejected suffix, the rejected suffix's positions restarting where the prefix ends and
    its mask hiding the chosen suffix. One forward then gives both rewards, the prefix computed once: the same
    numbers as the two whole sequences, with no cache to copy. Rows hold several pairs, block-diagonal, up to
    `pack_tokens` tokens (the default on a CPU: PACK_TOKENS, where a forward's cost is its tokens and a bigger one
    runs at a better rate); on other devices (`pack_tokens` 0) one pair a row, `batch_size` rows a forward,
    length-sorted within PADDING_SLACK. Pairs a tree row cannot take (`tree_packable`), and pairs whose tree row
    gave a non-finite reward, run as two whole sequences."""
    if share_prefix is None:
        share_prefix = supports_shared_prefix(model)
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(pairs)
    tree, whole = [], []
    for i, (chosen, rejected) in enumerate(pairs):
        (tree if share_prefix and tree_packable(model, max(len(chosen), len(rejected))) else whole).append(i)
    if tree:
        _score_tree_rows(model, pairs, tree, pad_id, batch_size, pack_tokens, results)
        # A NaN or inf reaches the other pairs of its row, and the other suffix of its pair, through masked
        # attention (a weight of 0 times NaN is NaN): a pair with a non-finite reward is scored again whole, so
        # each sequence gets its own reward, non-finite only where its own forward is.
        whole += [i for i in tree if not all(math.isfinite(x) for x in results[i])]
    if whole:
        flat = score_sequences(model, [s for i in whole for s in pairs[i]], pad_id, batch_size * 2)
        for k, i in enumerate(whole):
            results[i] = (flat[2 * k], flat[2 * k + 1])
    return results


def _score_tree_rows(model, pairs, todo: list[int], pad_id: int, batch_size: int, pack_tokens: int | None,
                     results: list) -> None:
    """`score_pairs`'s tree path over the pairs `todo`, writing their rewards into `results`."""
    device = _device(model)
    dtype = next(model.parameters()).dtype
    if pack_tokens is None:
        pack_tokens = PACK_TOKENS if device.type == "cpu" else 0
    tree_len = {i: len(pairs[i][0]) + len(pairs[i][1]) - shared_prefix_length(*pairs[i]) for i in todo}
    order = sorted(tree_len, key=tree_len.__getitem__)
    rows: list[list[int]] = []
    for i in order:  # consecutive pairs by length fill a row up to pack_tokens (a longer pair alone)
        if rows and sum(tree_len[j] for j in rows[-1]) + tree_len[i] <= pack_tokens:
            rows[-1].append(i)
        else:
            rows.append([i])
    built = list(_tree_rows(pairs, rows))
    base = getattr(model, model.base_model_prefix)
    for batch in padding_bounded_batches([len(ids) for ids, *_ in built], batch_size):
        width = max(len(built[b][0]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            ids[row, : len(built[b][0])] = torch.tensor(built[b][0], dtype=torch.long)
            positions[row, : len(built[b][1])] = torch.tensor(built[b][1], dtype=torch.long)
        mask = _tree_mask([built[b][3] for b in batch], width, dtype)
        hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      use_cache=False).last_hidden_state
        at = [(row, pos) for row, b in enumerate(batch) for _, c_pos, r_pos in built[b][2] for pos in (c_pos, r_pos)]
        rows_at, positions_at = (torch.tensor(x, device=device) for x in zip(*at))
        rewards = model.score(hidden[rows_at, positions_at]).float()[:, 0].tolist()
        k = 0
        for b in batch:
            for i, _, _ in built[b][2]:
                results[i] = (rewards[k], rewards[k + 1])
                k += 2


@torch.inference_mode()
def next_token_choice_probs(model, sequences: list[list[int]], pad_id: int, token_ids: list[int],
                            batch_size: int = 1) -> list[list[float]]:
    """For each prompt (token ids), the next-token distribution of a causal LM restricted to `token_ids` and
    renormalised over them: the read-out of generative judges (pair-PM's A/B, an LLM judge's A/B/C).
    Length-sorted, left-padded batches; positions count real tokens only, so a padded row sees the
    positions it would see alone."""
    device = _device(model)
    pick = torch.tensor(token_ids, device=device)
    out: list[list[float]] = [[] for _ in sequences]
    for batch in padding_bounded_batches([len(s) for s in sequences], batch_size):
        width = max(len(sequences[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            seq = sequences[i]
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       use_cache=False, logits_to_keep=1).logits[:, -1, :]
        for i, probs in zip(batch, torch.softmax(logits.float()[:, pick], dim=-1).tolist()):
            out[i] = probs
    return out
