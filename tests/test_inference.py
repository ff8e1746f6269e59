"""score_pairs: the shared-prefix (tree) path equals whole-sequence scoring in every packing, and the plain path
for encoders."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from rm_core.inference import (
    common_prefix_exact,
    padding_bounded_batches,
    score_groups,
    score_pairs,
    score_sequences,
    shared_prefix_length,
    supports_shared_prefix,
    tree_exact,
    tree_packable,
)
from rm_core.templates import render_ids, set_chat_template
from rm_core.testing import tiny_reward_model

torch.set_num_threads(1)  # 2 shared cores: oversubscribed threads make tiny models 10x slower

ATOL = 1e-5


@pytest.fixture(scope="module")
def llama():
    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    return model, tokenizer


@torch.no_grad()
def _one_by_one(model, seq):
    """The reference: one unpadded sequence through the model's own forward and pooling."""
    return model(input_ids=torch.tensor([seq])).logits[0, 0].item()


def _flat(scores):
    return [x for pair in scores for x in pair]


def _random_pairs(vocab, pad_id, seed=0):
    rng = random.Random(seed)
    tokens = [i for i in range(vocab) if i != pad_id]

    def rand(n):
        return [rng.choice(tokens) for _ in range(n)]

    pairs = []
    for prefix_len, chosen_len, rejected_len in [(1, 1, 1), (5, 3, 10), (20, 10, 2), (13, 7, 7), (3, 1, 25)]:
        prefix = rand(prefix_len)
        chosen = prefix + rand(chosen_len)
        rejected = prefix + rand(rejected_len)
        while rejected[prefix_len] == chosen[prefix_len]:  # diverge right after the prefix
            rejected[prefix_len] = rng.choice(tokens)
        pairs.append((chosen, rejected))
    # no common prefix at all
    a, b = rand(6), rand(9)
    while b[0] == a[0]:
        b[0] = rng.choice(tokens)
    pairs.append((a, b))
    c, d = rand(1), rand(4)
    while d[0] == c[0]:
        d[0] = rng.choice(tokens)
    pairs.append((c, d))
    # one sequence is a prefix of the other, and an identical pair
    e = rand(8)
    pairs.append((e[:5], e))
    pairs.append((e, e[:5]))
    pairs.append((e, list(e)))
    return pairs


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shared_prefix_equals_full_sequence_scoring(llama, batch_size):
    model, tokenizer = llama
    pad_id = tokenizer.pad_token_id
    pairs = _random_pairs(len(tokenizer), pad_id)
    assert any(shared_prefix_length(c, r) == 0 for c, r in pairs)
    assert supports_shared_prefix(model)
    got = score_pairs(model, pairs, pad_id, batch_size=batch_size, share_prefix=True)
    assert len(got) == len(pairs)
    for (chosen, rejected), (c_score, r_score) in zip(pairs, got):
        assert c_score == pytest.approx(_one_by_one(model, chosen), abs=ATOL)
        assert r_score == pytest.approx(_one_by_one(model, rejected), abs=ATOL)
    # the default picks the shared-prefix path for a decoder and gives the same numbers
    default = score_pairs(model, pairs, pad_id, batch_size=batch_size)
    assert _flat(default) == pytest.approx(_flat(got), abs=ATOL)
    # and the plain path agrees
    plain = score_pairs(model, pairs, pad_id, batch_size=batch_size, share_prefix=False)
    assert _flat(plain) == pytest.approx(_flat(got), abs=ATOL)


def test_only_no_prefix_pairs_in_a_batch(llama):
    model, tokenizer = llama
    pairs = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14])]
    got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=2, share_prefix=True)
    for (c, r), (cs, rs) in zip(pairs, got):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_rendered_conversations(llama, batch_size):
    model, tokenizer = llama
    prompts = ["What is 2 + 3?", "Please write a poem about the sea in capital letters. " * 3, "hello"]
    answers = [("The answer is 5.", "I cannot help with that request."), ("SEA", "the sea is blue"),
               ("hello world", "the quick brown fox jumps over the lazy dog " * 2)]
    pairs = []
    for prompt, (good, bad) in zip(prompts, answers):
        conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
        pairs.append((render_ids(tokenizer, conv + [{"role": "assistant", "content": good}])[0],
                      render_ids(tokenizer, conv + [{"role": "assistant", "content": bad}])[0]))
    assert all(shared_prefix_length(c, r) > 5 for c, r in pairs)
    got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=batch_size)
    for (c, r), (cs, rs) in zip(pairs, got):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL)


def test_shared_prefix_runs_the_prefix_once(llama):
    """The backbone never sees a whole sequence twice: one forward of the prefix and the two suffixes."""
    model, tokenizer = llama
    prefix = list(range(3, 43))
    pairs = [(prefix + [50, 51], prefix + [60, 61, 62])]
    widths = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        score_pairs(model, pairs, tokenizer.pad_token_id, share_prefix=True)
    finally:
        handle.remove()
    assert widths == [torch.Size([1, 45])]


@pytest.mark.parametrize("pack_tokens,batch_size,forwards", [(0, 1, 10), (0, 4, 4), (60, 1, 4), (10_000, 1, 1),
                                                             (60, 2, 2)])
def test_packing_changes_the_forwards_not_the_scores(llama, pack_tokens, batch_size, forwards, monkeypatch):
    """Pairs packed block-diagonal into one row (the CPU path), or one a row padded into batches (the GPU path):
    every layout gives each sequence's own whole-sequence reward, in as many forwards as the layout says (every
    pair as a tree here: which ones a CPU runs whole instead is tree_pays's test below)."""
    import rm_core.inference as inference

    monkeypatch.setattr(inference, "tree_pays", lambda group: True)
    model, tokenizer = llama
    pairs = _random_pairs(len(tokenizer), tokenizer.pad_token_id, seed=1)
    tree_exact(model), common_prefix_exact(model)  # the one-time probes, before the forwards are counted
    calls = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    try:
        got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=batch_size, pack_tokens=pack_tokens)
    finally:
        handle.remove()
    assert len(calls) == forwards
    for (c, r), (cs, rs) in zip(pairs, got):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL)


def _behind_a_system_prompt(tokenizer, seed, system_len=7):
    """_random_pairs, all behind one `system_len`-token prefix (a chat template's default system prompt), plus a
    group of three and a group of one."""
    rng = random.Random(seed)
    tokens = [i for i in range(len(tokenizer)) if i != tokenizer.pad_token_id]
    system = [rng.choice(tokens) for _ in range(system_len)]
    groups = [[system + c, system + r] for c, r in _random_pairs(len(tokenizer), tokenizer.pad_token_id, seed)]
    groups.append([system + [5, 6, 7], system + [5, 8], system + [9, 9, 9, 9]])
    groups.append([system + [11, 12]])
    return system, groups


@pytest.mark.parametrize("pack_tokens,batch_size", [(0, 1), (0, 3), (30, 1), (30, 2), (10_000, 1)])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_prefix_every_group_shares_runs_once_from_a_cache(pack_tokens, batch_size, attention, monkeypatch):
    """The tokens all groups of a call share (a template's system prompt) run once into a cache that each row's
    forward starts from: the rows leave them out, and every sequence still gets its whole-sequence reward, in every
    packing (CPU rows, GPU batches) and with either attention's mask."""
    import rm_core.inference as inference

    monkeypatch.setattr(inference, "tree_pays", lambda group: True)
    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    model.set_attn_implementation(attention)
    system, groups = _behind_a_system_prompt(tokenizer, seed=5)
    assert inference.common_prefix_exact(model)
    widths = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        got = score_groups(model, groups, tokenizer.pad_token_id, batch_size=batch_size, pack_tokens=pack_tokens)
    finally:
        handle.remove()
    for group, scores in zip(groups, got):
        assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)
    assert widths[0] == torch.Size([1, len(system)])  # the common prefix, once
    if pack_tokens == 0 and batch_size == 1:  # one tree row a forward, each without the system prompt
        assert sorted(w[1] for w in widths[1:]) == sorted(inference._tree_length(g) - len(system) for g in groups)


def test_without_a_common_prefix_worth_a_cache_the_rows_hold_every_token(llama):
    """A prefix shorter than COMMON_PREFIX_MIN, or a call of one group, runs no cache: one forward, whole rows."""
    import rm_core.inference as inference

    model, tokenizer = llama
    assert inference.tree_exact(model)  # the one-time probe, before the forwards are counted
    short = [[[4, 5, 6, 7], [4, 5, 9]], [[4, 5, 8, 8], [4, 5, 10, 11, 12]]]  # share 2 tokens
    one = [[list(range(3, 13)) + [20], list(range(3, 13)) + [21, 22]]]
    widths = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        for groups in (short, one):
            widths.clear()
            got = score_groups(model, groups, tokenizer.pad_token_id, batch_size=1, pack_tokens=10_000)
            assert widths == [torch.Size([1, sum(inference._tree_length(g) for g in groups)])]
            for group, scores in zip(groups, got):
                assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)
    finally:
        handle.remove()


def test_a_backbone_that_cannot_take_the_cache_keeps_its_tree_rows_whole(monkeypatch, capsys):
    """A model whose backbone drops (or cannot take) the prefilled cache fails the common-prefix probe, once, and
    says so: its tree rows then hold every token, and the rewards are still each sequence's own."""
    import rm_core.inference as inference

    monkeypatch.setattr(inference, "tree_pays", lambda group: True)
    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    base = model.model
    forward = base.forward

    def drops_the_cache(*args, cache=None, past_key_values=None, **kwargs):
        return forward(*args, **kwargs)

    base.forward = drops_the_cache
    _, groups = _behind_a_system_prompt(tokenizer, seed=6)
    got = score_groups(model, groups, tokenizer.pad_token_id, batch_size=2, pack_tokens=40)
    assert inference.tree_exact(model) is True and inference.common_prefix_exact(model) is False
    assert "a cached common prefix does not reproduce" in capsys.readouterr().out
    for group, scores in zip(groups, got):
        assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)


def test_on_a_cpu_long_responses_under_a_short_prompt_run_whole_a_long_prompt_as_a_tree(llama):
    """A tree row's attention is dense over its width: it pays only where the shared prefix saves more
    (tree_pays). Two 240-token responses after a 1-token prompt run whole (two rows of 241, not one of 481); a
    200-token prompt under 3-token responses runs as a tree (one row of 206, not two of 203); the rewards are those
    of the whole sequences either way."""
    from rm_core.inference import tree_pays

    model, tokenizer = llama
    gen = random.Random(7)
    vocab = [t for t in range(len(tokenizer)) if t != tokenizer.pad_token_id]
    seq = lambda n: [gen.choice(vocab) for _ in range(n)]  # noqa: E731
    prompt = seq(200)
    tree_group = [prompt + seq(3), prompt + seq(3)]
    head = seq(1)
    long_group = [head + seq(240), head + seq(240)]
    assert tree_pays(tree_group) and not tree_pays(long_group)
    for group, forwards in ((long_group, [(2, 241)]), (tree_group, [(1, 206)])):  # (rows, width) of each forward
        shapes = []
        handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o, s=shapes: s.append(tuple(i[0].shape)))
        try:
            scores = score_groups(model, [group], tokenizer.pad_token_id, batch_size=2, pack_tokens=256)[0]
        finally:
            handle.remove()
        assert shapes == forwards  # fp32: no width step
        assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)


def test_pairs_past_a_sliding_window_run_whole(llama, monkeypatch):
    """A tree row gives every layer one mask: a pair longer than a sliding window is scored as two whole
    sequences instead (the model's own windowed mask), still exact; a shorter one stays a tree row."""
    model, tokenizer = llama
    pairs = [(list(range(3, 13)) + [50], list(range(3, 13)) + [60, 61]), ([5, 6], [5, 7])]
    calls = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    monkeypatch.setattr(model.config, "sliding_window", 8, raising=False)
    try:
        got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=4, pack_tokens=0)
    finally:
        handle.remove()
    assert sorted(calls) == [(1, 3), (2, 12)]
    for (c, r), (cs, rs) in zip(pairs, got):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL)


def test_tree_rows_need_an_attention_that_takes_a_4d_mask():
    from types import SimpleNamespace

    def model(implementation, window=None):
        return SimpleNamespace(config=SimpleNamespace(_attn_implementation=implementation, sliding_window=window))

    assert tree_packable(model("sdpa"), 10_000) and tree_packable(model("eager"), 10)
    assert not tree_packable(model("flash_attention_2"), 10)  # its kernels take no 4D mask
    assert not tree_packable(model("sdpa", window=4096), 4097) and tree_packable(model("sdpa", window=4096), 4096)


def test_shared_prefix_length():
    assert shared_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert shared_prefix_length([1, 2], [1, 2, 3]) == 1  # leave one token of each
    assert shared_prefix_length([1, 2, 3], [1, 2, 3]) == 2
    assert shared_prefix_length([1], [2]) == 0


def test_padding_bounded_batches_cut_where_padding_would_exceed_slack():
    lengths = [5, 50, 5, 5, 10, 11, 12, 12, 13]
    got = [[lengths[i] for i in g] for g in padding_bounded_batches(lengths, size=4)]
    # 5,5,5 then 10: 4 x 10 = 40 > 1.3 x 25; 10..12 then 12 hits the size cap; 50 would pad 13 to 50.
    assert got == [[5, 5, 5], [10, 11, 12, 12], [13], [50]]
    assert sorted(i for g in padding_bounded_batches(lengths, size=4) for i in g) == list(range(len(lengths)))
    # No slack limit: plain slices of `size`.
    assert [len(g) for g in padding_bounded_batches(lengths, size=4, slack=float("inf"))] == [4, 4, 1]


def test_padding_bounded_batches_cut_at_a_token_budget():
    lengths = [10, 10, 10, 10, 10, 40, 40, 100]
    got = [[lengths[i] for i in g] for g in padding_bounded_batches(lengths, size=2, slack=float("inf"),
                                                                      max_tokens=40)]
    # The budget replaces the row count (2): 4 x 10 fit 40; a fifth would make 50; 10 then 40 pads to 2 x 40 =
    # 80; an item over the budget runs alone.
    assert got == [[10, 10, 10, 10], [10], [40], [40], [100]]
    with pytest.raises(ValueError, match="token budget must be at least 1, got 0"):
        list(padding_bounded_batches(lengths, size=2, max_tokens=0))


def test_score_sequences_matches_one_by_one(llama):
    model, tokenizer = llama
    seqs = [[4, 5, 6], [7], [8, 9, 10, 11, 12, 13], [14, 15]]
    got = score_sequences(model, seqs, tokenizer.pad_token_id, batch_size=3)
    assert got == pytest.approx([_one_by_one(model, s) for s in seqs], abs=ATOL)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_score_sequences_runs_a_causal_decoder_without_the_padding_mask(llama, attention, monkeypatch):
    """Right padding under causal attention: the backbone runs with no mask (the causal kernel) and the head at
    each sequence's last token; the rewards are each sequence's own, in sdpa and in eager attention (whose
    causal mask transformers then builds itself)."""
    from rm_core.inference import causal_attention

    model, tokenizer = llama
    model.config._attn_implementation = attention
    try:
        assert causal_attention(model)
        seen = []
        base = model.model
        forward = type(base).forward
        monkeypatch.setattr(type(base), "forward", lambda self, *a, **k: seen.append(k.get("attention_mask")) or
                            forward(self, *a, **k))
        seqs = [[4, 5, 6], [7], [8, 9, 10, 11, 12, 13], [14, 15], [16] * 9]
        got = score_sequences(model, seqs, tokenizer.pad_token_id, batch_size=5, padding_slack=float("inf"))
        assert seen == [None]  # one padded batch, no mask
        monkeypatch.undo()
        assert got == pytest.approx([_one_by_one(model, s) for s in seqs], abs=ATOL)
    finally:
        model.config._attn_implementation = "sdpa"


def test_score_sequences_keeps_the_model_own_reading_for_a_head_subclass(llama, monkeypatch):
    """A score head of its own class (ODIN's serves another column) is read through the model's forward, with
    the padding mask, not at column 0 of `score`."""
    model, tokenizer = llama

    class ServedElsewhere(torch.nn.Linear):
        pass

    original = model.score
    model.score = ServedElsewhere(original.in_features, original.out_features, bias=False)
    model.score.weight.data.copy_(original.weight.data)
    try:
        masks = []
        forward = type(model).forward
        monkeypatch.setattr(type(model), "forward", lambda self, *a, **k: masks.append(k.get("attention_mask")) or
                            forward(self, *a, **k))
        seqs = [[4, 5, 6], [7, 8]]
        score_sequences(model, seqs, tokenizer.pad_token_id, batch_size=2, padding_slack=float("inf"))
        assert len(masks) == 1 and masks[0].tolist() == [[1, 1, 0], [1, 1, 1]]  # length-sorted
    finally:
        model.score = original


def test_causal_attention_tells_decoders_from_encoders(llama):
    from rm_core.inference import causal_attention

    assert causal_attention(llama[0])
    assert not causal_attention(_tiny_bert()[0])
    assert not causal_attention(torch.nn.Linear(2, 2))  # no attention layer: nothing declared

    class RemoteAttention(torch.nn.Module):  # remote code may declare the flag and mask nothing itself
        is_causal = True

    import copy

    model = copy.deepcopy(llama[0])
    model.model.layers[0].extra = RemoteAttention()
    assert not causal_attention(model)  # only transformers' own attention classes are trusted


# ---------------------------------------------------------------- encoders: plain path


def _tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = ("user assistant system : the quick brown fox jumps over lazy dog hello world what is 2 + 3 ? "
             "answer 5 . , i cannot help with that sea poem").split()
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words)))}
    tokenizer = BertTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1,
                        pad_token_id=tokenizer.pad_token_id)
    model = BertForSequenceClassification(config).eval()
    return model, tokenizer


@pytest.mark.parametrize("batch_size", [1, 3])
def test_bert_plain_path_equals_per_sequence(batch_size):
    model, tokenizer = _tiny_bert()
    assert not supports_shared_prefix(model)
    set_chat_template(tokenizer, "plain")
    convs = [
        ("what is 2 + 3 ?", "the answer is 5 .", "i cannot help with that ."),
        ("hello", "hello world", "the quick brown fox jumps over the lazy dog"),
        ("sea poem", "the sea", "i cannot help with that sea poem , the quick brown fox"),
        ("what is the answer ?", "5", "5 . 5 . 5 ."),
    ]
    pairs = []
    for prompt, good, bad in convs:
        user = [{"role": "user", "content": prompt}]
        pairs.append((render_ids(tokenizer, user + [{"role": "assistant", "content": good}])[0],
                      render_ids(tokenizer, user + [{"role": "assistant", "content": bad}])[0]))
    for c, r in pairs:
        assert c[0] == tokenizer.cls_token_id and c[-1] == tokenizer.sep_token_id
        assert tokenizer.unk_token_id not in c + r
    assert len({len(s) for pair in pairs for s in pair}) > 3  # padding really happens
    got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=batch_size)
    for (c, r), (cs, rs) in zip(pairs, got):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL)


def test_padding_bounded_batches_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        list(padding_bounded_batches([3], size=0))


def test_a_nan_stays_in_its_own_sequence():
    """Masked attention carries NaN (0 x NaN): a pair whose chosen response holds a NaN-embedded token must not
    turn its rejected response, or the other pairs packed in its row, into NaN. Those are scored again whole."""
    import math

    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    poison = 77
    with torch.no_grad():
        model.get_input_embeddings().weight[poison] = math.nan
    prompt = [5, 6, 7, 8]
    pairs = [(prompt + [20, 21], prompt + [30]), (prompt + [40, poison], prompt + [41, 42]), (prompt + [50], prompt + [51])]
    got = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=1, pack_tokens=10_000)
    assert math.isnan(got[1][0])
    for (c, r), (cs, rs) in zip(pairs, got):
        for seq, score in ((c, cs), (r, rs)):
            if poison not in seq:
                assert score == pytest.approx(_one_by_one(model, seq), abs=ATOL)


@pytest.mark.parametrize("pack_tokens,batch_size", [(0, 1), (0, 3), (40, 1), (10_000, 2)])
def test_groups_score_as_their_whole_sequences(llama, pack_tokens, batch_size):
    """Best-of-N groups (one prompt, several candidates; one candidate a prefix of another; a lone sequence;
    an empty group) give every sequence its own whole-sequence reward in every packing."""
    model, tokenizer = llama
    rng = random.Random(5)
    prompt = [rng.randrange(3, 90) for _ in range(9)]
    groups = [[prompt + [rng.randrange(3, 90) for _ in range(n)] for n in (4, 1, 7, 2)],
              [prompt + [11, 12], prompt + [11, 12, 13], prompt + [14]],
              [[rng.randrange(3, 90) for _ in range(6)]],
              [],
              [prompt[:3] + [20], [21, 22, 23]]]
    got = score_groups(model, groups, tokenizer.pad_token_id, batch_size=batch_size, pack_tokens=pack_tokens)
    assert [len(g) for g in got] == [len(g) for g in groups]
    for group, scores in zip(groups, got):
        assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)
    assert shared_prefix_length(*groups[0]) == 9 and shared_prefix_length(*groups[1]) == 9


def test_eager_attention_takes_the_additive_tree_mask():
    """sdpa gets a boolean tree mask, eager attention an additive one: both give the whole-sequence rewards."""
    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    assert model.config._attn_implementation == "sdpa"
    pairs = _random_pairs(len(tokenizer), tokenizer.pad_token_id, seed=2)
    sdpa = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=3, pack_tokens=40)
    model.set_attn_implementation("eager")
    eager = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=3, pack_tokens=40)
    for (c, r), (cs, rs), (ec, er) in zip(pairs, sdpa, eager):
        assert cs == pytest.approx(_one_by_one(model, c), abs=ATOL) and ec == pytest.approx(cs, abs=ATOL)
        assert rs == pytest.approx(_one_by_one(model, r), abs=ATOL) and er == pytest.approx(rs, abs=ATOL)


def test_low_precision_cpu_forwards_pad_their_width_to_a_step(monkeypatch):
    """bf16 on a CPU: every forward (tree rows and whole sequences) is padded up to a multiple of
    LOW_PRECISION_WIDTH_STEP, so oneDNN builds kernels for a few widths; the padding changes no reward (scores as
    with no step). fp32 forwards stay exactly as wide as their longest row."""
    import rm_core.inference as inference

    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    pairs = _random_pairs(len(tokenizer), tokenizer.pad_token_id, seed=4)
    pad = tokenizer.pad_token_id

    def run(step):
        monkeypatch.setattr(inference, "LOW_PRECISION_WIDTH_STEP", step)
        widths = []
        handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape[1]))
        try:
            tree = score_pairs(model, pairs, pad, batch_size=2, pack_tokens=40)
            whole = score_sequences(model, [s for pair in pairs for s in pair], pad, batch_size=3)
        finally:
            handle.remove()
        return _flat(tree), whole, widths

    fp32_tree, _, fp32_widths = run(32)
    assert any(w % 32 for w in fp32_widths)  # fp32: no padding to the step
    model.to(torch.bfloat16)
    assert inference.width_step(model) == 32
    tree, whole, widths = run(32)
    assert widths and all(w % 32 == 0 for w in widths)
    bare_tree, bare_whole, bare_widths = run(1)
    assert any(w % 32 for w in bare_widths)
    assert tree == pytest.approx(bare_tree, abs=1e-3) and whole == pytest.approx(bare_whole, abs=1e-3)
    assert tree == pytest.approx(fp32_tree, abs=5e-3)  # and bf16 is still the fp32 reward, to bf16's precision


def _bf16_packing_here() -> bool:
    """This CPU's native bf16, read at collection (before conftest hides it from the tests)."""
    from rm_core.models import native_bf16_cpu

    return (torch.backends.mkldnn.is_available() and native_bf16_cpu()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.skipif(not _bf16_packing_here(), reason="packed bf16 linears need a CPU with native bf16")
def test_packed_bf16_linears_score_as_plain_ones_follow_weight_changes_and_train_plain(monkeypatch):
    """pack_cpu_linears: a bf16 model scores as its unpacked copy (bf16 rounding), a weight changed in place after
    the packing is packed again (never a stale product), and a call that needs gradients runs the plain layer."""
    import copy

    import rm_core.models as models
    from rm_core.inference import pack_cpu_linears

    monkeypatch.setattr(models, "native_bf16_cpu", lambda: True)  # true here (skipif); conftest hides it

    model, tokenizer = tiny_reward_model(seed=6)
    model = model.to(torch.bfloat16).eval()
    plain = copy.deepcopy(model)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert pack_cpu_linears(model) == len(linears) > 0
    assert pack_cpu_linears(model) == 0  # already set: nothing set twice
    pad = tokenizer.pad_token_id
    pairs = _random_pairs(len(tokenizer), pad, seed=7)

    def close(a, b):
        return _flat(a) == pytest.approx(_flat(b), rel=0.02, abs=0.02)

    packed_scores, plain_scores = score_pairs(model, pairs, pad, batch_size=2), score_pairs(plain, pairs, pad,
                                                                                             batch_size=2)
    assert close(packed_scores, plain_scores)
    import rm_core.inference as inference

    assert all(m in inference._PACKED for m in linears)  # the packed path ran, for every layer
    restored = pickle.loads(pickle.dumps(model))  # a packed model pickles and loads back, and scores the same
    assert _flat(score_pairs(restored, pairs, pad, batch_size=2)) == _flat(packed_scores)
    with torch.no_grad():
        for m in (model, plain):
            m.model.layers[0].mlp.up_proj.weight.mul_(3.0)
            m.score.weight.neg_()
    changed, plain_changed = score_pairs(model, pairs, pad, batch_size=2), score_pairs(plain, pairs, pad, batch_size=2)
    assert close(changed, plain_changed) and not close(changed, packed_scores)
    # training: the plain layer, with the gradients of the unpacked copy
    ids = torch.tensor([pairs[1][1]])
    grads = []
    for m in (model, plain):
        m.train()
        m.zero_grad()
        m(input_ids=ids).logits.float().sum().backward()
        grads.append(m.model.layers[0].self_attn.q_proj.weight.grad.float())
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])
    # a trainable bias on a frozen weight (BitFit) still gets its gradient
    layer = torch.nn.Linear(16, 8).to(torch.bfloat16)
    layer.weight.requires_grad_(False)
    assert pack_cpu_linears(torch.nn.Sequential(layer)) == 1
    layer(torch.randn(4, 16, dtype=torch.bfloat16)).float().sum().backward()
    assert layer.bias.grad is not None and layer.bias.grad.float().sum() == 32
    # a change through .data is unseen by the version counter: unpack_cpu_linears first, then it counts
    model.eval()
    assert inference.unpack_cpu_linears(model) == len(linears) and not any(m in inference._PACKED for m in linears)
    for m in (model, plain):
        m.model.layers[1].mlp.down_proj.weight.data.mul_(-2.0)
    assert close(score_pairs(model, pairs, pad, batch_size=2), score_pairs(plain, pairs, pad, batch_size=2))
    # weights made under inference_mode keep no version counter: never packed, so never stale
    with torch.inference_mode():
        layer = torch.nn.Linear(16, 8).to(torch.bfloat16)
        wrapper = torch.nn.Sequential(layer)
        assert pack_cpu_linears(wrapper) == 1
        x = torch.randn(4, 16, dtype=torch.bfloat16)
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert layer not in inference._PACKED


def test_cpu_tuning_leaves_fp32_gpu_and_opted_out_models_alone(monkeypatch):
    import rm_core.models as models
    from rm_core.inference import pack_cpu_linears

    model, _ = tiny_reward_model(seed=6)
    assert pack_cpu_linears(model) == 0  # fp32: MKL's products already take the weight as it is
    model.to(torch.bfloat16)
    monkeypatch.setattr(models, "native_bf16_cpu", lambda: False)
    assert pack_cpu_linears(model) == 0  # emulated bf16
    monkeypatch.setattr(models, "native_bf16_cpu", lambda: True)
    monkeypatch.setenv("RM_CPU_TUNING", "0")
    assert pack_cpu_linears(model) == 0
    assert all(type(m) is torch.nn.Linear for m in model.modules() if isinstance(m, torch.nn.Linear))


_MALLOC_PROBE = """
import ctypes, sys
from rm_core.inference import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
set_ = keep_freed_memory() if sys.argv[1] == "set" else None
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 * 1024 * 1024)
print(set_, libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def test_keep_freed_memory_serves_big_blocks_from_the_heap(monkeypatch):
    """In a fresh process (glibc raises its mmap threshold by itself once big blocks are freed, so a test process
    proves nothing), a 16 MiB block is mmapped by default and comes from the heap after keep_freed_memory (glibc's
    mallinfo2 counts mmapped bytes); it stands back where the user set GLIBC_TUNABLES's malloc options or
    RM_CPU_TUNING=0."""
    import ctypes
    import platform
    import subprocess
    import sys
    from pathlib import Path

    from rm_core.inference import keep_freed_memory

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert keep_freed_memory() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("RM_CPU_TUNING", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("RM_CPU_TUNING")
    if platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc 2.33 or later (mallinfo2) only")
    root = Path(__file__).resolve().parents[1]

    def probe(mode):
        out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE, mode], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
        return out[0], int(out[1])

    control = probe("control")
    assert control[0] == "None" and control[1] >= 16 * 1024 * 1024  # mmapped: fresh pages
    assert probe("set") == ("True", 0)  # from the heap


def test_pairs_run_whole_take_the_token_budget(llama, monkeypatch):
    """score_pairs' whole-sequence path (here no shared prefix): with max_tokens the rows a forward are what fits
    in it, not twice the tree rows; the rewards are the same."""
    import rm_core.inference as inference

    model, tokenizer = llama
    pairs = [([4, 5, 6, 7 + i], [4, 5, 8 + i]) for i in range(6)]
    by_rows = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=4, share_prefix=False)
    batches, bounded = [], inference.padding_bounded_batches
    monkeypatch.setattr(inference, "padding_bounded_batches",
                        lambda lengths, *a, **k: [batches.append([lengths[i] for i in b]) or b
                                                  for b in bounded(lengths, *a, **k)])
    by_budget = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size=4, share_prefix=False, max_tokens=8)
    assert batches and max(map(len, batches)) == 2 and all(len(b) * max(b) <= 8 for b in batches)  # not 8 rows
    assert [r for p in by_budget for r in p] == pytest.approx([r for p in by_rows for r in p], abs=ATOL)


# ---------------------------------------------------------------- models a tree row would score wrongly


def _tiny(config_cls, model_cls, **kw):
    import transformers

    torch.manual_seed(0)
    return getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kw)).eval()


def test_a_model_whose_layers_ignore_the_tree_mask_or_positions_scores_whole_sequences():
    """MPT's ALiBi reads the position inside the packed row, not the restarted position ids (likewise linear-attention
    and state-space layers ignore the mask): the one-time probe finds the tree's rewards differ from the whole
    sequences', and every pair is then scored whole, exactly; a Llama passes the probe and keeps its tree rows."""
    from rm_core.inference import score_pairs, score_sequences, tree_exact

    mpt = _tiny("MptConfig", "MptForSequenceClassification", d_model=32, n_heads=2, n_layers=2, vocab_size=100,
                max_seq_len=128, num_labels=1, pad_token_id=0)
    assert tree_exact(mpt) is False
    pairs = [(list(range(1, 12)), list(range(1, 9)) + [20, 21]), ([5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 30, 31, 32])]
    alone = [(score_sequences(mpt, [c], 0, 1)[0], score_sequences(mpt, [r], 0, 1)[0]) for c, r in pairs]
    got = score_pairs(mpt, pairs, 0)
    assert [x for pair in got for x in pair] == pytest.approx([x for pair in alone for x in pair], abs=1e-6)
    llama = _tiny("LlamaConfig", "LlamaForSequenceClassification", hidden_size=32, intermediate_size=64,
                  num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=2, vocab_size=100, num_labels=1,
                  pad_token_id=0)
    assert tree_exact(llama) is True


def test_a_composite_models_sliding_window_and_a_length_dependent_rope_are_seen():
    """Gemma 3 keeps its window in text_config (the tree path missed it); longrope/dynamic RoPE pick their factors
    by the longest position in the batch, so each sequence is scored alone (its reward was its batch's)."""
    from rm_core.inference import attention_window, length_dependent_rope, score_sequences

    gemma = _tiny("Gemma3Config", "Gemma3ForSequenceClassification", text_config=dict(
        hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        num_hidden_layers=2, vocab_size=100, sliding_window=4))
    assert attention_window(gemma) == 4
    phi = _tiny("Phi3Config", "Phi3ForSequenceClassification", hidden_size=32, intermediate_size=64,
                num_attention_heads=2, num_hidden_layers=2, vocab_size=100, max_position_embeddings=64,
                original_max_position_embeddings=16, num_labels=1, pad_token_id=0, eos_token_id=2, bos_token_id=1,
                rope_scaling={"type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8})
    assert length_dependent_rope(phi)
    short = [3] * 10
    assert score_sequences(phi, [short, [4] * 40], 0, 2)[0] == score_sequences(phi, [short], 0, 1)[0]


# ---------------------------------------------------------------- next-token choice probabilities


@pytest.fixture(scope="module")
def causal_lm():
    from transformers import LlamaForCausalLM

    from rm_core.testing import tiny_llama_config, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(len(tokenizer))).eval(), tokenizer


def _next_token_probs_alone(model, seq, picks):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
    return torch.softmax(logits, -1)[picks].tolist()


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_choice_probs_take_the_prompts_common_prefix_from_a_cache(causal_lm, batch_size):
    """A judge's prompts share their system prompt and instructions: that prefix runs once into a cache, and each
    left-padded batch continues from it (the padding between, masked); every prompt still gets the probabilities
    it gets alone, unpadded."""
    from rm_core.inference import choice_cache_exact, next_token_choice_probs

    model, tokenizer = causal_lm
    rng = random.Random(7)
    instructions = [rng.randrange(3, len(tokenizer)) for _ in range(12)]
    prompts = [instructions + [rng.randrange(3, len(tokenizer)) for _ in range(n)] for n in (1, 9, 4, 6, 2)]
    picks = [5, 6, 7]
    assert choice_cache_exact(model)
    widths = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        got = next_token_choice_probs(model, prompts, tokenizer.pad_token_id, picks, batch_size, renormalise=False)
    finally:
        handle.remove()
    assert widths[0] == torch.Size([1, 12]) and all(w[1] <= 9 for w in widths[1:])  # the rows leave it out
    for prompt, probs in zip(prompts, got):
        assert probs == pytest.approx(_next_token_probs_alone(model, prompt, picks), rel=1e-4)


def test_choice_probs_of_a_model_that_cannot_take_the_cache_keep_the_whole_prompt(capsys):
    """A causal LM whose backbone drops (or cannot take) a prefilled cache fails the one-time probe, says so, and
    runs every prompt whole: the same probabilities."""
    from transformers import LlamaForCausalLM

    from rm_core.inference import choice_cache_exact, next_token_choice_probs
    from rm_core.testing import tiny_llama_config, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(1)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer))).eval()
    forward = model.model.forward

    def drops_the_cache(*args, cache=None, past_key_values=None, **kwargs):
        return forward(*args, **kwargs)

    model.model.forward = drops_the_cache
    prompts = [[9, 10, 11, 12, 13, 14, 20 + n] for n in range(3)]
    got = next_token_choice_probs(model, prompts, tokenizer.pad_token_id, [5, 6], 2)
    assert choice_cache_exact(model) is False
    assert "common prefix not taken from a cache" in capsys.readouterr().out
    for prompt, probs in zip(prompts, got):
        alone = _next_token_probs_alone(model, prompt, [5, 6])
        assert probs == pytest.approx([a / sum(alone) for a in alone], rel=1e-4)


def test_choice_probs_past_a_sliding_window_keep_the_whole_prompt(causal_lm, monkeypatch):
    """The cache's layers are all global: prompts longer than a model's local-attention span run whole (Qwen2.5
    declares a 32k window it does not use, so the span is a length check, not a refusal)."""
    import rm_core.inference as inference

    model, tokenizer = causal_lm
    prompts = [[9, 10, 11, 12, 13, 14] + [20 + n] * (n + 1) for n in range(3)]
    assert inference.choice_cache_exact(model)
    widths = []
    for window, first_width in ((8, 7), (64, 6)):
        monkeypatch.setattr(inference, "attention_window", lambda m, span=window: span)
        widths.clear()
        handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
        try:
            got = inference.next_token_choice_probs(model, prompts, tokenizer.pad_token_id, [5, 6], 1)
        finally:
            handle.remove()
        assert widths[0][1] == first_width  # the shortest prompt whole (7), or the 6-token prefix alone
        for prompt, probs in zip(prompts, got):
            alone = _next_token_probs_alone(model, prompt, [5, 6])
            assert probs == pytest.approx([a / sum(alone) for a in alone], rel=1e-4)


def test_a_forward_that_keeps_no_cache_leaves_every_token_in_the_rows(monkeypatch):
    """A backbone (or causal LM) whose forward hands back no cache for the prefix: the rows and prompts then hold
    every token, with the same results (never a row that lost the prefix)."""
    from transformers import LlamaForCausalLM

    import rm_core.inference as inference
    from rm_core.testing import tiny_llama_config, tiny_tokenizer

    def keeps_none(forward):
        def wrapped(*args, **kwargs):
            out = forward(*args, **kwargs)
            out.cache = None
            return out
        return wrapped

    monkeypatch.setattr(inference, "tree_pays", lambda group: True)
    model, tokenizer = tiny_reward_model(seed=3)
    model.eval()
    model.model.forward = keeps_none(model.model.forward)
    system, groups = _behind_a_system_prompt(tokenizer, seed=8)
    inference.common_prefix_exact(model)  # the probes, before the forwards are counted
    widths = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        got = score_groups(model, groups, tokenizer.pad_token_id, batch_size=1, pack_tokens=0)
    finally:
        handle.remove()
    assert widths[0] == torch.Size([1, len(system)])  # the prefix ran, kept nothing ...
    assert sorted(w[1] for w in widths[1:]) == sorted(inference._tree_length(g) for g in groups)  # ... rows whole
    for group, scores in zip(groups, got):
        assert scores == pytest.approx([_one_by_one(model, s) for s in group], abs=ATOL)

    lm_tokenizer = tiny_tokenizer()
    torch.manual_seed(2)
    lm = LlamaForCausalLM(tiny_llama_config(len(lm_tokenizer))).eval()
    lm.forward = keeps_none(lm.forward)
    prompts = [[9, 10, 11, 12, 13, 14, 20 + n] for n in range(3)]
    got = inference.next_token_choice_probs(lm, prompts, lm_tokenizer.pad_token_id, [5, 6], 3)
    for prompt, probs in zip(prompts, got):
        alone = _next_token_probs_alone(lm, prompt, [5, 6])
        assert probs == pytest.approx([a / sum(alone) for a in alone], rel=1e-4)


def test_prefix_groups_keep_the_grouping_the_cost_model_prices_lowest():
    """Groups of sequences sharing a token prefix, found without a prompt boundary: two prompts' completions under
    one system prompt make two groups (each sharing its whole prompt), not one sharing the system prompt;
    completions that also share a first word stay in their prompt's group; a sequence sharing fewer than
    `min_shared` tokens with every other is alone; many prompts under one system prompt are not one wide tree (its
    attention would cost more than the system prompt saves), so a pair among them keeps its own group; every index
    comes back once, each group in the caller's order."""
    from rm_core.inference import prefix_groups

    system = [1, 2, 3, 4, 5]
    first, second = system + [10] * 40, system + [20] * 40
    seqs = [first + [30 + k, 7] for k in range(4)] + [second + [31, 8], [99, 1, 2]] + [second + [30, 9]] * 2
    seqs.append(first + [30, 7, 5])  # shares a first word with seqs[0]: still first's group
    assert sorted(prefix_groups(seqs)) == [[0, 1, 2, 3, 8], [4, 6, 7], [5]]
    # a short shared part: grouped only from min_shared tokens on
    assert sorted(prefix_groups([[1, 2, 3, 9], [1, 2, 3, 8], [7]], min_shared=3)) == [[0, 1], [2]]
    assert sorted(prefix_groups([[1, 2, 3, 9], [1, 2, 3, 8], [7]], min_shared=4)) == [[0], [1], [2]]
    # the deeper split where it saves more: 3 x 2 sequences sharing 50 tokens beat 6 sharing 5
    deep = [system + [40 + k] * 50 + [j] for k in range(3) for j in range(2)]
    assert sorted(prefix_groups(deep)) == [[0, 1], [2, 3], [4, 5]]
    # and the shallow one where the deeper group saves less: 2 sequences sharing 33 tokens within 6 sharing 30
    shallow = [system + [50] * 25 + ([60] * 3 if j < 2 else [61 + j]) + [j] for j in range(6)]
    assert sorted(prefix_groups(shallow)) == [[0, 1, 2, 3, 4, 5]]
    # 30 prompts of 100 tokens under a 24-token system prompt, and a pair under one more prompt
    system24 = list(range(1, 25))
    prompts = [system24 + [100 + p] * 100 for p in range(31)]
    mixed = [prompts[p] + [500 + p] * 20 for p in range(30)] + [prompts[30] + [600] * 20, prompts[30] + [601] * 20]
    assert sorted(prefix_groups(mixed)) == [[i] for i in range(30)] + [[30, 31]]
    eight = [prompts[0] + [700 if k < 2 else 710 + k] + [800 + k] * 20 for k in range(8)]  # two share a first word
    assert prefix_groups(eight) == [list(range(8))]
    assert prefix_groups([]) == [] and prefix_groups([[3]]) == [[0]]
    # a long chain of nested prefixes (no recursion limit); every index once
    chain = [[0] * n + [1] for n in range(1, 1500)]
    assert sorted(i for g in prefix_groups(chain) for i in g) == list(range(len(chain)))
