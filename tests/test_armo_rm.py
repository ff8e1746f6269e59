"""ArmoRM: embeddings and their cache, Ratings, stage 1 ridge, debiasing, gating, export, judge, Hub loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rm_core.data import RowError, make_rating, shared_data_dir, to_ratings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data_dir()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from rm_core.embeddings import load_backbone
    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny")
    model, tok = load_backbone(str(path), "float32", "cpu")
    return path, model, tok


def user(text):
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- embeddings


def test_prompt_embedding_from_one_pass_equals_the_prompt_alone(backbone):
    from rm_core.embeddings import forward_items, render_item
    from rm_core.templates import tokenize_messages

    _, model, tok = backbone
    prompt = user("What is 2 + 3?") + [{"role": "assistant", "content": "5"}] + user("and 3 + 4?")
    item = render_item(tok, prompt, "The answer is 7.", max_length=None)
    assert item.prompt_end == len(tokenize_messages(tok, prompt, add_generation_prompt=True)) - 1
    emb, prompt_emb = forward_items(model, [item], tok.pad_token_id)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([item.prompt_ids])).last_hidden_state[0, -1]
        whole = model(input_ids=torch.tensor([item.ids])).last_hidden_state[0, -1]
    torch.testing.assert_close(prompt_emb[0], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb[0], whole, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(emb[0], prompt_emb[0])


def test_truncation_that_cuts_the_prompt_end_runs_the_prompt_alone(backbone):
    from rm_core.embeddings import forward_items, render_item

    _, model, tok = backbone
    long_response = "the quick brown fox jumps over the lazy dog " * 20
    item = render_item(tok, user("hello"), long_response, max_length=24)
    assert item.truncated and len(item.ids) == 24 and item.prompt_end is None
    assert item.ids[0] == tok.bos_token_id  # the leading special token is kept
    short = render_item(tok, user("hello world " * 4), "Sure, that is fine by me.", max_length=24)
    # the prompt's end survived the front cut, but its start did not: the prompt runs alone (whole, as it fits), so
    # its state is the same whichever response it is paired with
    assert short.truncated and short.prompt_end is None and len(short.prompt_ids) < 24
    uncut = render_item(tok, user("hello world " * 4), "Sure, that is fine by me.", max_length=None)
    assert short.prompt_ids == uncut.prompt_ids and uncut.prompt_end == len(uncut.prompt_ids) - 1
    batch = [item, short, render_item(tok, user("hi"), "Sure, here is a short answer.", None)]
    emb, prompt_emb = forward_items(model, batch, tok.pad_token_id, batch_size=3)  # padded batch == one by one
    for i, it in enumerate(batch):
        one_emb, one_prompt = forward_items(model, [it], tok.pad_token_id)
        torch.testing.assert_close(emb[i], one_emb[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(prompt_emb[i], one_prompt[0], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([item.prompt_ids])).last_hidden_state[0, -1]
    torch.testing.assert_close(prompt_emb[0], alone, atol=1e-5, rtol=1e-5)
    _, uncut_prompt = forward_items(model, [uncut], tok.pad_token_id)
    torch.testing.assert_close(prompt_emb[1], uncut_prompt[0], atol=1e-5, rtol=1e-5)


def test_a_tokenizer_with_neither_pad_nor_unk_pads_inside_the_vocabulary(backbone):
    """Llama 3's tokenizers: ensure_pad_token would add a token past the frozen backbone's embeddings (an
    IndexError on the first padded batch); the padding is never read, so an id inside the vocabulary pads."""
    from transformers import AutoTokenizer

    from rm_core.embeddings import forward_items, padding_id, render_item

    path, model, _ = backbone
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token, tok.unk_token = None, None
    pad = padding_id(tok)
    assert pad == tok.eos_token_id and len(tok) == model.get_input_embeddings().weight.shape[0]
    items = [render_item(tok, user("hi"), "Sure.", None), render_item(tok, user("hello there"), "No, thanks.", None)]
    emb, _ = forward_items(model, items, pad, batch_size=2)
    one, _ = forward_items(model, items[:1], pad)
    torch.testing.assert_close(emb[0], one[0], atol=1e-5, rtol=1e-5)


def test_bf16_embeddings_pad_widths_to_the_step_without_changing_them(backbone, monkeypatch):
    """A bf16 backbone on a CPU runs its batches at widths rounded up to LOW_PRECISION_WIDTH_STEP (oneDNN builds
    kernels per shape); the padding changes no embedding."""
    import copy

    import rm_core.inference as inference
    from rm_core.embeddings import forward_items, render_item

    _, model, tok = backbone
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    items = [render_item(tok, user("hi" + " there" * n), "Sure." * (n + 1), None) for n in range(4)]
    widths = []
    handle = bf16.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape[1]))
    try:
        padded = forward_items(bf16, items, tok.pad_token_id, batch_size=2)
        monkeypatch.setattr(inference, "LOW_PRECISION_WIDTH_STEP", 1)
        bare = forward_items(bf16, items, tok.pad_token_id, batch_size=2)
    finally:
        handle.remove()
    half = len(widths) // 2
    assert all(w % 32 == 0 for w in widths[:half]) and any(w % 32 for w in widths[half:])
    for a, b in zip(padded, bare):
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-2)  # one bf16 step at most


def test_embeddings_default_to_a_token_budget_on_cpu(backbone, tmp_path, monkeypatch):
    """No batch size: a CPU forward takes as many rows as fit in default_forward_tokens (the padding of each
    batch within it); a batch size given is a row count; the embeddings are the same either way."""
    import rm_core.embeddings as E
    from rm_core.inference import AMX_FORWARD_TOKENS, CPU_FORWARD_TOKENS, default_forward_tokens

    assert default_forward_tokens("cpu", torch.float32) == CPU_FORWARD_TOKENS
    assert default_forward_tokens("cuda", torch.bfloat16) is None
    with monkeypatch.context() as patch:
        patch.setattr("rm_core.models.amx_cpu", lambda: True)
        assert default_forward_tokens("cpu", torch.bfloat16) == AMX_FORWARD_TOKENS
        assert default_forward_tokens("cpu", torch.float32) == CPU_FORWARD_TOKENS

    _, model, tok = backbone
    items = [(user(f"question {i}"), "answer " * (1 + 3 * i)) for i in range(6)]
    lengths = sorted(len(E.render_item(tok, p, r, 64).ids) for p, r in items)
    budget_tokens = 3 * lengths[2]  # three of the shorter rows fit (the default row count is 2), not four
    monkeypatch.setattr("rm_core.inference.CPU_FORWARD_TOKENS", budget_tokens)
    batches, bounded = [], E.padding_bounded_batches
    monkeypatch.setattr(E, "padding_bounded_batches",
                        lambda *a, **k: [batches.append([a[0][i] for i in b]) or b for b in bounded(*a, **k)])
    by_budget = E.extract_embeddings(model, tok, items, tmp_path / "a", "tiny", max_length=64)
    assert any(len(b) == 3 for b in batches)  # more rows a forward than the row default ...
    assert all(len(b) * max(b) <= budget_tokens or len(b) == 1 for b in batches)  # ... within the budget
    batches.clear()
    by_rows = E.extract_embeddings(model, tok, items, tmp_path / "b", "tiny", max_length=64, batch_size=1)
    assert batches and all(len(b) == 1 for b in batches)
    torch.testing.assert_close(by_budget["embeddings"], by_rows["embeddings"], atol=1e-5, rtol=1e-5)


def test_cache_resumes_after_a_kill_and_reuses_shared_items(backbone, tmp_path):
    from rm_core.embeddings import extract_embeddings

    _, model, tok = backbone
    items = [(user(f"question {i}"), f"answer number {i} is here") for i in range(5)]
    first = extract_embeddings(model, tok, items, tmp_path, "tiny", max_length=64, shard_size=2)
    assert first["stats"]["computed"] == 5 and first["stats"]["cached"] == 0
    shards = sorted(tmp_path.glob("shard-*.safetensors"))
    assert len(shards) == 3
    shards[1].unlink()  # a run killed while writing this shard: its weights never landed
    again = extract_embeddings(model, tok, items + [items[0]], tmp_path, "tiny", max_length=64, shard_size=2)
    assert again["stats"]["computed"] == 2 and again["stats"]["cached"] == 4  # 3 finished + the repeat
    torch.testing.assert_close(again["embeddings"][:5], first["embeddings"])
    torch.testing.assert_close(again["prompt_embeddings"][5], first["prompt_embeddings"][0])
    import copy

    other = copy.deepcopy(model)  # another backbone under the same name (a retrain in place): refused
    with torch.no_grad():
        other.norm.weight.add_(1.0)
    with pytest.raises(ValueError, match="was built with other inputs .*weights_sha256"):
        extract_embeddings(other, tok, items, tmp_path, "tiny", max_length=64)


# ---------------------------------------------------------------- Ratings


def test_ratings_converters_mask_unlabelled_and_count_bad_rows():
    helpsteer = {"prompt": "p", "response": "r", "helpfulness": 4, "correctness": 2, "coherence": 4,
                 "complexity": 0, "verbosity": None}
    ultra = {"instruction": "q", "completions": [
        {"response": "a", "annotations": {"helpfulness": {"Rating": "5"}, "honesty": {"Rating": "N/A"},
                                          "instruction_following": {"Rating": "1"}, "truthfulness": {"Rating": "3"}}},
        {"response": "", "annotations": {}}]}
    rows, report = to_ratings([helpsteer, ultra, {"prompt": "p"}])
    assert rows[0]["attributes"] == {"helpsteer-helpfulness": 1.0, "helpsteer-correctness": 0.5,
                                     "helpsteer-coherence": 1.0, "helpsteer-complexity": 0.0,
                                     "helpsteer-verbosity": None}
    assert rows[1]["attributes"] == {"ultrafeedback-helpfulness": 1.0, "ultrafeedback-honesty": None,
                                     "ultrafeedback-instruction_following": 0.0, "ultrafeedback-truthfulness": 0.5}
    assert len(rows) == 2 and report.total == 2  # the empty completion and the row with no response
    with pytest.raises(RowError, match="row 2"):
        to_ratings([helpsteer, helpsteer, {"prompt": "p"}], strict=True)
    with pytest.raises(RowError, match="NaN"):
        make_rating("p", "r", {"a": float("nan")})
    with pytest.raises(RowError, match="no attribute is labelled"):
        make_rating("p", "r", {"a": None})


def test_bad_ratings_are_counted_rows_never_a_traceback_or_a_wrong_label():
    ok = {"prompt": "p", "response": "r", "attributes": {"a": 0.5}}
    bad = {
        "attributes not an object": {"prompt": "p", "response": "r", "attributes": [["a", 1]]},
        "an infinite rating": {"prompt": "p", "response": "r", "attributes": {"a": float("inf")}},
        "a rating that is text": {"prompt": "p", "response": "r", "attributes": {"a": "high"}},
        "HelpSteer2 off its 0-4 scale": {"prompt": "p", "response": "r", "helpfulness": 9},
        "UltraFeedback completions as text": {"instruction": "q", "completions": ["a", "b"]},
        "UltraFeedback annotations as a list": {"instruction": "q", "completions": [
            {"response": "a", "annotations": [{"Rating": "5"}]}]},
        "UltraFeedback off its 1-5 scale": {"instruction": "q", "completions": [
            {"response": "a", "annotations": {"helpfulness": {"Rating": "7"}}}]},
    }
    for kind, row in bad.items():
        rows, report = to_ratings([ok, row])
        assert len(rows) == 1 and report.total >= 1, kind
        with pytest.raises(RowError, match="row 1"):
            to_ratings([ok, row], strict=True)
    rows, report = to_ratings([bad["HelpSteer2 off its 0-4 scale"]])
    assert "outside its scale 0-4" in report.reasons()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
def test_offline_multi_objective_set_has_honest_labels():
    from armo_rm.data import add_verbosity, load_preferences, load_ratings

    hh = load_ratings("offline:hh-harmless[3]")
    assert [r["attributes"]["hh-harmlessness-relative"] for r in hh] == [1.0, 0.0] * 3
    gsm = load_ratings("offline:gsm8k[2]")
    assert len(gsm) == 8 and {r["attributes"]["gsm8k-correctness"] for r in gsm} <= {0.0, 1.0}
    rows = add_verbosity(hh + gsm, "verbosity")
    assert "gsm8k-correctness" not in rows[0]["attributes"]  # masked, not filled
    assert all(0 <= r["attributes"]["verbosity"] <= 1 for r in rows)
    pairs = load_preferences("offline:gsm8k[20]")
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    assert len(load_preferences("offline:hh-harmless-test")) == 446
    assert len(load_preferences("offline:llmbar")) == 419


# ---------------------------------------------------------------- stage 1


def test_ridge_per_objective_recovers_weights_and_ignores_masked_rows():
    from armo_rm.train_regression import fit_objectives

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    true = rng.normal(size=(2, 8))
    Y = X @ true.T + 0.01 * rng.normal(size=(300, 2))
    Y[::3, 1] = np.nan  # a third of the rows are not labelled for objective 1
    groups = np.arange(300) // 2
    w, _, report = fit_objectives(X, Y, ["a", "b"], groups, [1e-3, 1.0, 1e3])
    assert report["a"]["val_r2"] > 0.99 and report["b"]["val_r2"] > 0.99 and report["b"]["alpha"] == 1e-3
    assert report["b"]["labelled"] == 200
    np.testing.assert_allclose(w, true, atol=0.02)
    # the masked rows carry no information: dropping them changes nothing
    keep = ~np.isnan(Y[:, 1])
    w2, _, _ = fit_objectives(X[keep], Y[keep][:, [1]], ["b"], groups[keep], [1e-3, 1.0, 1e3])
    np.testing.assert_allclose(w[1], w2[0], atol=1e-6)
    with pytest.raises(ValueError, match="objective 'c'"):
        fit_objectives(X, np.full((300, 1), np.nan), ["c"], groups, [1.0])


def test_split_by_prompt_keeps_a_prompts_responses_together():
    from armo_rm.train_regression import prompt_groups, split_by_group

    prompts = [user(f"q{i // 2}") for i in range(40)]
    train, val = split_by_group(prompt_groups(prompts), 0.25, seed=1)
    assert val.sum() == 10 and (train == ~val).all() and all(val[2 * i] == val[2 * i + 1] for i in range(20))


# ---------------------------------------------------------------- stage 2


def test_verbosity_penalty_removes_the_length_correlation():
    from scipy.stats import spearmanr

    from armo_rm.train_gating import find_verbosity_penalties, transform_matrix

    rng = np.random.default_rng(0)
    verb = rng.normal(size=2000)
    quality = rng.normal(size=2000)
    rewards = np.stack([quality + 0.8 * verb, quality - 0.5 * verb, verb], axis=1)
    pen, corr = find_verbosity_penalties(rewards, verbosity_index=2, threshold=0.03)
    assert 0.6 < pen[0] < 0.85 and corr[0] <= 0.03  # needs about 0.8 * (1 - a little)
    assert pen[1] == 0.0 and pen[2] == 1.0  # already below the threshold; verbosity itself zeroed
    debiased = torch.tensor(rewards, dtype=torch.float32) @ transform_matrix(pen, 2)
    np.testing.assert_allclose(debiased[:, 0].numpy(), rewards[:, 0] - pen[0] * verb, atol=1e-4)
    np.testing.assert_allclose(debiased[:, 1].numpy(), rewards[:, 1], atol=1e-5)
    assert torch.all(debiased[:, 2] == 0)
    assert spearmanr(debiased[:, 0].numpy(), verb).statistic <= 0.03
    two, corr2 = find_verbosity_penalties(rewards, verbosity_index=2, threshold=0.03, two_sided=True)
    assert abs(two[0] - pen[0]) < 1e-9 and -0.6 < two[1] < -0.4 and -0.03 <= corr2[1] <= -0.02  # lifted to -0.03


def test_gating_softmax_is_over_objectives_and_learns_which_one_a_prompt_needs():
    from armo_rm.config import ArmoConfig
    from armo_rm.train_gating import GatedScore, train_gating

    # two kinds of prompt: for kind 0 objective 0 decides the preference, for kind 1 objective 1 does;
    # the other objective is anti-correlated with the preference, so only a prompt-conditioned mix wins
    g = torch.Generator().manual_seed(0)
    n, hidden = 2000, 6
    kind = torch.randint(0, 2, (n,), generator=g)
    prompts = torch.randn(n, hidden, generator=g) * 0.1
    prompts[:, 0] += torch.where(kind == 0, 2.0, -2.0)
    signal, noise = torch.rand(n, generator=g) + 0.2, torch.rand(n, generator=g) + 0.2
    rc, rr = torch.zeros(n, 3), torch.zeros(n, 3)
    rows = torch.arange(n)
    rc[rows, kind], rr[rows, kind] = signal, -signal
    rc[rows, 1 - kind], rr[rows, 1 - kind] = -noise, noise
    cfg = ArmoConfig(max_steps=300, batch_size=128, learning_rate=1e-2, gating_dropout=0.0, gating_hidden_dim=16,
                     gating_temperature=1.0)
    head = GatedScore(hidden, cfg, torch.eye(3))
    out = head.gating(prompts[:4])
    torch.testing.assert_close(out.sum(dim=-1), torch.ones(4))  # over the objectives, per row
    train_gating(head, prompts, rc, prompts, rr, cfg)
    with torch.no_grad():
        gates = head.gating(prompts)
        acc = (head(prompts, rc) > head(prompts, rr)).float().mean().item()
    assert acc > 0.95
    assert gates[kind == 0, 0].mean() > 0.8 and gates[kind == 1, 1].mean() > 0.8


def test_gating_stops_early_on_validation_loss_and_keeps_the_best_weights():
    from armo_rm.config import ArmoConfig
    from armo_rm.train_gating import GatedScore, train_gating
    from rm_core.losses import bradley_terry_loss

    # training pairs prefer objective 0; the validation pairs prefer the opposite, so every step that learns the
    # training signal makes the validation loss worse: the first check is the best one
    g = torch.Generator().manual_seed(0)
    n, hidden = 512, 4
    prompts = torch.randn(n, hidden, generator=g)
    rc, rr = torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g)
    rc[:, 0], rr[:, 0] = rc[:, 0] + 1.0, rr[:, 0] - 1.0
    cfg = ArmoConfig(max_steps=400, batch_size=64, learning_rate=5e-2, gating_dropout=0.0, gating_hidden_dim=8,
                     eval_steps=10, early_stopping_patience=3)
    head = GatedScore(hidden, cfg, torch.eye(2))
    history = train_gating(head, prompts, rc, prompts, rr, cfg, val=(prompts, rr, prompts, rc))
    end = history[-1]
    assert end["best_step"] == 9 and end["stopped_at"] == 39  # checks at 9 (best), 19, 29, 39 -> 3 without gain
    checks = [h["val_loss"] for h in history if "val_loss" in h]
    assert len(checks) == 4 and checks[0] == min(checks) and checks[-1] > checks[0]
    with torch.no_grad():  # the head holds the weights of the best check, not the last step's
        restored = bradley_terry_loss(head(prompts, rr), head(prompts, rc)).item()
    assert restored == pytest.approx(end["best_val_loss"], abs=1e-4) and restored < checks[-1]

    cfg.early_stopping_patience = 0  # off: all steps run, validation still logged
    history = train_gating(GatedScore(hidden, cfg, torch.eye(2)), prompts, rc, prompts, rr, cfg,
                           val=(prompts, rr, prompts, rc))
    assert history[-1]["step"] == 399 and sum("val_loss" in h for h in history) == 40


def test_nan_gating_loss_is_an_error():
    from armo_rm.config import ArmoConfig
    from armo_rm.train_gating import GatedScore, train_gating

    cfg = ArmoConfig(max_steps=2, batch_size=4)
    head = GatedScore(4, cfg, torch.eye(2))
    bad = torch.full((8, 2), float("nan"))
    with pytest.raises(FloatingPointError, match="gating loss"):
        train_gating(head, torch.randn(8, 4), bad, torch.randn(8, 4), bad, cfg)


# ---------------------------------------------------------------- end to end: both stages, export, judge


@pytest.fixture(scope="module")
def trained(tiny_armo):
    return tiny_armo


def test_both_stages_train_and_the_checkpoint_describes_itself(trained):
    cfg, stage1, stage2, _ = trained
    assert stage1["attributes"] == ["helpful", "safe", "verbosity"]
    assert stage1["objectives"]["safe"]["labelled"] == 50  # only the rows that rated it
    assert stage1["objectives"]["helpful"]["val_r2"] > 0.5
    assert stage2["test"][cfg.test_sources[0]]["accuracy"] > 0.9
    # the ratings rate the very responses the pairs hold: every validation pair is in-sample for stage 1, said so
    assert stage2["val_pairs"] > 0 and stage2["val_pairs_rated_in_stage1"] == stage2["val_pairs"]
    config = json.loads((Path(cfg.output_dir) / "config.json").read_text())
    assert config["rm_family"] == "armo" and config["attributes"] == stage1["attributes"]
    assert config["auto_map"]["AutoModel"].endswith("ArmoRMModel") and (Path(cfg.output_dir) / "modeling.py").is_file()
    assert config["prompt_end_token_ids"]  # the generation-prompt marker the model finds the prompt end by


def test_judge_scores_what_stage_two_scored_and_explains_it(trained):
    import judges
    from armo_rm.data import pair_items
    from armo_rm.judge import ArmoJudge
    from armo_rm.train_regression import embed_items
    from judges.base import conversation
    from rm_core.data import to_preferences

    cfg, _, _, prefs = trained
    judge = judges.load(cfg.output_dir)
    assert isinstance(judge, ArmoJudge)
    model = judge.model
    rows, _ = to_preferences(prefs[:6])
    cached = embed_items(cfg, pair_items(rows), "check")  # what stage 2 trained and tested on
    with torch.no_grad():
        from_cache = model.heads(cached["embeddings"], cached["prompt_embeddings"]).score[0::2].tolist()
    convs = [conversation(p["prompt"], p["chosen"]) for p in prefs[:6]]
    scores = judge.score(convs)
    np.testing.assert_allclose(scores, from_cache, atol=1e-5)
    # the same numbers through the model's own forward (prompt end found by the marker)
    from rm_core.templates import tokenize_messages

    for conv, s in zip(convs, scores):
        out = model(torch.tensor([tokenize_messages(judge.tokenizer, conv)]))
        assert abs(out.score.item() - s) < 1e-5
        assert out.rewards.shape == (1, 3) and abs(out.gating_output.sum().item() - 1) < 1e-5
    assert judge.compare(prefs[0]["prompt"], prefs[0]["chosen"], prefs[0]["rejected"]) > 0.5
    explained = judge.explain(convs[0], top_k=2)
    assert len(explained["top_objectives"]) == 2
    assert abs(sum(r["contribution"] for r in explained["all_objectives"]) - explained["score"]) < 1e-5
    assert explained["top_objectives"][0]["weight"] >= explained["top_objectives"][1]["weight"]
    attrs = judge.attribute_scores(convs[:2])
    assert set(attrs[0]) == {"helpful", "safe", "verbosity"}


def test_checkpoint_loads_from_its_folder_with_trust_remote_code_without_this_project(trained, tmp_path):
    cfg, _, _, prefs = trained
    import judges
    from judges.base import conversation
    from rm_core.templates import tokenize_messages
    from rm_core.testing import run_without_project

    judge = judges.load(cfg.output_dir)
    conv = conversation(prefs[1]["prompt"], prefs[1]["chosen"])
    ids = tokenize_messages(judge.tokenizer, conv)
    expected = judge.score([conv])[0]
    got = run_without_project(
        "import json, torch\n"
        "from transformers import AutoModel\n"
        f"m = AutoModel.from_pretrained({cfg.output_dir!r}, trust_remote_code=True)\n"
        f"out = m(torch.tensor([{ids!r}]))\n"
        "assert 'armo_rm' not in sys.modules and type(m).__module__.startswith('transformers_modules')\n"
        "print(json.dumps({'score': out.score.item(), 'fields': sorted(k for k in out.keys())}))\n", tmp_path)
    assert abs(got["score"] - expected) < 1e-5
    assert {"score", "rewards", "gating_output"} <= set(got["fields"])


def test_eval_reward_bench_scores_an_armo_checkpoint(trained, tmp_path):
    from eval.reward_bench import evaluate, make_parser

    cfg, _, _, prefs = trained
    rows = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], "subset": "llmbar-natural",
             "id": str(i)} for i, p in enumerate(prefs[:8])]
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = evaluate(make_parser().parse_args(["--model", cfg.output_dir, "--dataset", str(data),
                                                 "--output_dir", str(tmp_path / "res")]))
    assert summary["pairs"] == 8 and summary["failed_pairs"] == 0
    assert summary["subsets"]["llmbar-natural"]["accuracy"] > 0.8  # the chosen side is the trained "helpful" one


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
def test_armo_on_real_smollm2_and_real_pairs(tmp_path):
    """Both stages on SmolLM2-135M-Instruct embeddings of 24 HH-RLHF pairs and 6 GSM8K questions, then the
    exported checkpoint through judges.load scores as stage 2 did."""
    import judges
    from armo_rm import train_gating, train_regression
    from armo_rm.config import ArmoConfig
    from armo_rm.data import load_preferences
    from judges.base import conversation

    sources = ["offline:hh-harmless[24]", "offline:gsm8k[6]"]
    cfg = ArmoConfig(output_dir=str(tmp_path / "armo"), max_length=256, ratings_sources=sources,
                     preference_sources=sources, test_sources=["offline:llmbar"], max_test_pairs=4,
                     max_steps=200, batch_size=64)
    stage1 = train_regression.main(cfg)
    assert sorted(stage1["attributes"]) == ["gsm8k-correctness", "hh-harmlessness-relative", "verbosity"]
    assert stage1["objectives"]["verbosity"]["val_r2"] > 0.3  # length is linearly readable from a real LM
    stage2 = train_gating.main(cfg)
    assert stage2["penalties"]["verbosity"] == 1.0 and stage2["test"]["offline:llmbar"]["pairs"] == 4
    judge = judges.load(cfg.output_dir)
    pref = load_preferences("offline:llmbar[1]")[0]
    conv = conversation(pref["prompt"], pref["chosen"][-1]["content"])
    explained = judge.explain(conv)
    assert abs(judge.score([conv])[0] - explained["score"]) < 1e-5
    assert {r["objective"] for r in explained["all_objectives"]} == set(stage1["attributes"])


def test_judge_reading_the_embedding_cache_scores_like_a_forward(trained):
    import judges
    from judges.base import conversation

    cfg, _, _, prefs = trained
    convs = [conversation(p["prompt"], p["rejected"]) for p in prefs[:4]]
    plain = judges.load(cfg.output_dir).score(convs)
    cached_judge = judges.load(cfg.output_dir, embedding_cache=cfg.cache_folder)
    np.testing.assert_allclose(cached_judge.score(convs), plain, atol=1e-5)
    with pytest.raises(ValueError, match="was built with"):  # a cache of another backbone is refused
        judges.load(cfg.output_dir, embedding_cache=cfg.cache_folder, dtype="bfloat16").score(convs)


def test_report_shares_the_embedding_cache_with_armo_judges_only(trained, tmp_path):
    """eval.report --embedding_cache: the armo judge fills a fresh cache and reads the training cache (the same
    numbers as a forward; the training cache gains no shard for items it holds); a BT checkpoint beside it is
    loaded without it."""
    from eval import report
    from rm_core.testing import tiny_reward_model

    cfg, _, _, prefs = trained
    bt = tmp_path / "bt"
    model, tok = tiny_reward_model(seed=3)
    model.save_pretrained(bt)
    tok.save_pretrained(bt)
    rows = [{"id": str(i), "subset": "mine", "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
            for i, p in enumerate(prefs[:6])]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def files(folder):
        return sorted(p.name for p in Path(folder).rglob("*") if p.is_file())

    training_shards = files(cfg.cache_folder)
    results = {}
    for name, cache in (("plain", None), ("fresh", tmp_path / "fresh-cache"), ("training", cfg.cache_folder)):
        extra = ["--embedding_cache", str(cache)] if cache else []
        out = report.main(["--output_dir", str(tmp_path / name), "--bench", f"pairs=pairs:{data}",
                           "--judge", f"armo={cfg.output_dir}", "--judge", f"bt={bt}", "--max_length", "64", *extra])
        results[name] = {j: out["results"][j]["pairs"]["headline"] for j in ("armo", "bt")}
    assert files(tmp_path / "fresh-cache")  # the armo judge wrote its embeddings there
    assert files(cfg.cache_folder) == training_shards  # ... and found them all in the training cache
    assert results["fresh"] == results["plain"] == results["training"]
    assert results["plain"]["armo"]["accuracy (all pairs)"] > 0.8


# ---------------------------------------------------------------- bf16: heads kept and computed in fp32


@pytest.fixture(scope="module")
def bf16_export(tmp_path_factory):
    """export_model from a bf16 backbone with trained heads whose values bf16 cannot hold (a scale of pi,
    penalties like 0.1234567): (cfg, regression weight, bias, the stage 2 head, preference rows)."""
    from armo_rm.config import ArmoConfig
    from armo_rm.train_gating import GatedScore, export_model, transform_matrix
    from rm_core.testing import save_tiny_backbone

    work = tmp_path_factory.mktemp("armo-bf16")
    path = save_tiny_backbone(work / "tiny")
    cfg = ArmoConfig(model_name_or_path=str(path), output_dir=str(work / "out"), max_length=64, dtype="bfloat16",
                     ratings_sources=["ratings.jsonl"], preference_sources=["prefs.jsonl"], test_sources=[],
                     gating_hidden_dim=16, gating_dropout=0.0)
    hidden = json.loads((path / "config.json").read_text())["hidden_size"]
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(3, hidden, generator=gen) * 0.37, torch.randn(3, generator=gen) * 0.11
    head = GatedScore(hidden, cfg, transform_matrix(np.array([0.1234567, -0.0456789, 1.0]), 2))
    with torch.no_grad():
        for p in head.gating.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.73)
        head.logit_scale.fill_(3.14159265)
    head.eval()
    export_model(cfg, ["helpful", "safe", "verbosity"], weight, bias, head, {"test": {}})
    prefs = [{"prompt": f"question {i} about the sea", "chosen": "Sure, here is the answer " + "word " * i,
              "rejected": "I cannot help " + "no " * (5 - i)} for i in range(5)]
    return cfg, weight, bias, head, prefs


def _training_formula(cfg, weight, bias, head, convs):
    """Stage 2's score, in fp32, from the bf16 backbone's hidden states as the embedding cache holds them."""
    from judges.base import split_conversation
    from rm_core.embeddings import forward_items, load_backbone, render_item
    from rm_core.templates import ensure_pad_token

    backbone, tok = load_backbone(cfg.model_name_or_path, "bfloat16", "cpu")
    items = [render_item(tok, *split_conversation(c), cfg.max_length) for c in convs]
    emb, prompt_emb = forward_items(backbone, items, ensure_pad_token(tok), 1)
    assert emb.dtype == torch.float32
    with torch.no_grad():
        return head(prompt_emb, emb @ weight.T + bias).tolist()


def _assert_fp32_heads(model, weight, bias, head):
    assert next(model.backbone.parameters()).dtype == torch.bfloat16
    for name, tensor in [*model.regression.named_parameters(), *model.gating.named_parameters(),
                         ("logit_scale", model.logit_scale), ("reward_transform", model.reward_transform)]:
        assert tensor.dtype == torch.float32, name
    assert torch.equal(model.regression.weight, weight) and torch.equal(model.regression.bias, bias)
    for (name, a), b in zip(model.gating.state_dict().items(), head.gating.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(model.logit_scale, head.logit_scale.detach())
    assert torch.equal(model.reward_transform, head.transform)


def test_bf16_export_keeps_the_heads_fp32_and_scores_as_stage_two(bf16_export, tmp_path):
    """A checkpoint exported from a bf16 backbone, loaded with dtype bfloat16, scores (through judges.load,
    eval_reward_bench --dtype bfloat16 and the model's own forward) exactly what stage 2's fp32 formula gives
    on the same bf16 hidden states; the heads survive save/load in fp32."""
    import judges
    from armo_rm.modeling import ArmoRMModel
    from eval.reward_bench import evaluate, make_parser
    from judges.base import conversation
    from rm_core.templates import tokenize_messages

    cfg, weight, bias, head, prefs = bf16_export
    convs = [conversation(p["prompt"], p[side]) for p in prefs for side in ("chosen", "rejected")]
    expected = _training_formula(cfg, weight, bias, head, convs)

    judge = judges.load(cfg.output_dir, dtype="bfloat16")
    _assert_fp32_heads(judge.model, weight, bias, head)
    np.testing.assert_allclose(judge.score(convs), expected, rtol=0, atol=1e-5)
    for conv, e in zip(convs[:3], expected):
        out = judge.model(torch.tensor([tokenize_messages(judge.tokenizer, conv)]))
        assert out.score.dtype == torch.float32 and abs(out.score.item() - e) < 1e-5

    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "subset": "mine", **p}) + "\n" for i, p in enumerate(prefs)))
    summary = evaluate(make_parser().parse_args(["--model", cfg.output_dir, "--dataset", str(data), "--dtype",
                                                 "bfloat16", "--output_dir", str(tmp_path / "res")]))
    assert summary["failed_pairs"] == 0
    rows = [json.loads(x) for x in (tmp_path / "res" / "scores.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["chosen_score"] for r in rows], expected[0::2], rtol=0, atol=1e-5)

    judge.model.save_pretrained(tmp_path / "again")  # loaded in bf16, saved, loaded again: still fp32 heads
    _assert_fp32_heads(ArmoRMModel.from_pretrained(tmp_path / "again", dtype=torch.bfloat16), weight, bias, head)


def test_bf16_checkpoint_loads_with_trust_remote_code_in_bf16(bf16_export, tmp_path):
    cfg, weight, bias, head, prefs = bf16_export
    import judges
    from judges.base import conversation
    from rm_core.templates import tokenize_messages
    from rm_core.testing import run_without_project

    judge = judges.load(cfg.output_dir, dtype="bfloat16")
    conv = conversation(prefs[2]["prompt"], prefs[2]["chosen"])
    ids = tokenize_messages(judge.tokenizer, conv)
    expected = _training_formula(cfg, weight, bias, head, [conv])[0]
    got = run_without_project(
        "import json, torch\n"
        "from transformers import AutoModel\n"
        f"m = AutoModel.from_pretrained({cfg.output_dir!r}, trust_remote_code=True, dtype=torch.bfloat16)\n"
        f"out = m(torch.tensor([{ids!r}]))\n"
        "heads = [m.regression.weight, m.gating.mlp[0].weight, m.logit_scale, m.reward_transform]\n"
        "print(json.dumps({'score': out.score.item(), 'heads': sorted({str(t.dtype) for t in heads}),\n"
        "                  'backbone': str(next(m.backbone.parameters()).dtype)}))\n", tmp_path)
    assert got["heads"] == ["torch.float32"] and got["backbone"] == "torch.bfloat16"
    assert abs(got["score"] - expected) < 1e-5


def test_a_diverged_gating_stops_before_anything_is_exported(trained, tmp_path):
    """Stage 2 at a learning rate of 1e30: the one step's loss is finite, the gating after it is not. The run
    stops with a clear error before export: no model, config.json or card in output_dir."""
    import dataclasses
    import shutil

    from armo_rm import train_gating
    from rm_core.finite import TrainingDivergedError

    cfg = trained[0]
    out = tmp_path / "armo-diverged"
    out.mkdir()
    shutil.copy(Path(cfg.output_dir) / "regression.safetensors", out)  # stage 1's output
    bad = dataclasses.replace(cfg, output_dir=str(out), embedding_cache=cfg.cache_folder, learning_rate=1e30,
                              max_steps=1)
    with pytest.raises(TrainingDivergedError, match="scores of the test pairs of .* NaN or infinite"):
        train_gating.main(bad)
    assert sorted(p.name for p in out.iterdir()) == ["regression.safetensors"]


def test_stage_two_refuses_a_regression_fitted_on_other_embeddings(trained, tmp_path):
    """regression.safetensors records the backbone (by content), dtype and max_length its embeddings came from;
    stage 2 with another of them stops naming it, before any embedding is computed."""
    import dataclasses
    import shutil

    from armo_rm import train_gating
    from rm_core.errors import UserInputError

    cfg = trained[0]
    out = tmp_path / "armo-other"
    out.mkdir()
    shutil.copy(Path(cfg.output_dir) / "regression.safetensors", out)
    with pytest.raises(UserInputError, match=r"regression.safetensors was fitted on embeddings of another backbone, "
                                             r"dtype or max_length \(max_length \d+ -> 7\)"):
        train_gating.main(dataclasses.replace(cfg, output_dir=str(out), max_length=7))
    other = tmp_path / "other-backbone"
    shutil.copytree(cfg.model_name_or_path, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace("{", '{"probe": 1, ', 1))
    with pytest.raises(UserInputError, match=r"\(backbone.sha256 "):
        train_gating.main(dataclasses.replace(cfg, output_dir=str(out), model_name_or_path=str(other)))


def test_a_stage_never_replaces_an_earlier_runs_output_without_overwrite(trained, tmp_path):
    """A rerun replaced stage 1's regression beside the export it no longer describes, and stage 2 the exported
    model, without a word: refused, before any embedding; with overwrite the old card and config go first."""
    import dataclasses
    import shutil

    from armo_rm import train_gating, train_regression
    from rm_core.errors import UserInputError

    cfg = trained[0]
    out = tmp_path / "armo-again"
    shutil.copytree(cfg.output_dir, out, ignore=shutil.ignore_patterns("embeddings"))
    again = dataclasses.replace(cfg, output_dir=str(out), embedding_cache=cfg.cache_folder, max_steps=5)
    with pytest.raises(UserInputError, match=r"holds an earlier run's regression.safetensors, config.json: stage 1"):
        train_regression.main(again)
    with pytest.raises(UserInputError, match=r"holds an earlier run's config.json: stage 2"):
        train_gating.main(again)
    result = train_gating.main(dataclasses.replace(again, overwrite=True))
    assert result["pairs"] == len(trained[3]) and (out / "config.json").is_file()


def test_the_card_names_the_split_a_test_source_was_read_from():
    """offline:gsm8k-test is GSM8K's test questions from 1000 on (the first 1000 train the offline sets); a file or a
    Hub id is read at its train split: the card said "test" for all of them."""
    from armo_rm.train_gating import test_split_label

    assert test_split_label("offline:hh-harmless-test") == "test (hh_sha1)"
    assert test_split_label("offline:gsm8k-test[200]") == "test (questions 1000 on)"
    assert test_split_label("org/prefs") == test_split_label("data/prefs_test.jsonl") == "train"
