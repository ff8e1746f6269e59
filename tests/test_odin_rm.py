"""ODIN: its loss terms on hand-computed numbers, the two-head model (Auto classes, trust_remote_code without
this project), end-to-end training on a tiny backbone where length is a confound, and its judge.

The training data: the chosen response ends with one phrase and the rejected with another (what "quality"
is here), and in 3 pairs out of 4 the chosen response is also the longer one (the confound). A BT model's
reward then correlates with length on data of that kind; ODIN's quality head must not.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from rm_core.losses import (
    bradley_terry_loss,
    gather_across_ranks,
    odin_length_loss,
    odin_orthogonality_loss,
    odin_ranking_loss,
    pearson_correlation,
)

torch.set_num_threads(1)  # 2 shared cores: oversubscribed threads make tiny models 10x slower

REPO = Path(__file__).resolve().parents[1]
MAX_LENGTH = 96
WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD_END = "Sure, here is the answer."  # 8 tokens of the tiny tokenizer
BAD_END = "I cannot help with that request."  # 7 tokens


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------------------------------ losses


def test_ranking_loss_is_bt_on_the_sum_of_the_heads_per_pair():
    # one pair, heads (quality, length): sums 2 vs 0 -> -log sigmoid(2)
    assert odin_ranking_loss(t(1.5, 0.5)[None], t(0.0, 0.0)[None]).item() == pytest.approx(math.log1p(math.exp(-2)))
    # per pair, then the mean: sums (2, 0) vs (0, 3) -> (log(1 + e^-2) + log(1 + e^3)) / 2
    chosen, rejected = torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(3))) / 2
    assert odin_ranking_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)
    # not RLHFlow's -log sigmoid(sum of the batch's chosen - sum of its rejected) = log(1 + e^1)
    assert odin_ranking_loss(chosen, rejected).item() != pytest.approx(math.log1p(math.exp(1)), rel=1e-3)
    # margin and centering act on the summed reward, as in bradley_terry_loss
    margin = t(1.0, -1.0)
    assert odin_ranking_loss(chosen.double(), rejected.double(), margin, 0.1).item() == pytest.approx(
        bradley_terry_loss(t(2.0, 0.0), t(0.0, 3.0), margin, 0.1).item())
    with pytest.raises(ValueError):
        odin_ranking_loss(t(1.0, 2.0), t(0.0, 1.0))  # 1-D: heads missing


def test_pearson_correlation_known_values():
    assert pearson_correlation(t(1, 2, 3), t(2, 4, 6)).item() == pytest.approx(1.0)
    assert pearson_correlation(t(1, 2, 3), t(3, 2, 1)).item() == pytest.approx(-1.0)
    # centred x = (-1.5, -.5, .5, 1.5), y = (-1.5, .5, -.5, 1.5): cov 4 / sqrt(5 * 5) = 0.8
    assert pearson_correlation(t(1, 2, 3, 4), t(1, 3, 2, 4)).item() == pytest.approx(0.8)
    assert pearson_correlation(t(1, -1, -1, 1), t(1, 2, 3, 4)).item() == pytest.approx(0.0)
    x, y = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    assert pearson_correlation(x, y).item() == pytest.approx(torch.corrcoef(torch.stack([x, y]))[0, 1].item())


def test_pearson_correlation_of_a_constant_is_zero_with_a_finite_gradient():
    # torch.corrcoef gives NaN here (RLHFlow's loss would stop training); all lengths equal in a batch is possible
    rewards = t(0.3, -0.1, 0.7).requires_grad_()
    rho = pearson_correlation(rewards, t(5, 5, 5))
    rho.backward()
    assert rho.item() == 0.0 and torch.isfinite(rewards.grad).all()
    same = t(1.0, 1.0, 1.0).requires_grad_()
    pearson_correlation(same, t(1, 2, 3)).backward()
    assert torch.isfinite(same.grad).all()


def test_reported_length_correlation_is_none_where_undefined():
    """The loss takes 0 for a constant input (a finite gradient); a report must not: a head stuck on one value
    would read as perfectly disentangled."""
    from odin_rm.judge import length_correlation

    assert length_correlation([1.0, 2.0], [0.0, 3.0], [10, 20], [5, 30]) == pytest.approx(
        torch.corrcoef(torch.tensor([[1.0, 2, 0, 3], [10, 20, 5, 30]]))[0, 1].item())
    assert length_correlation([7.0, 7.0], [7.0, 7.0], [1, 2], [3, 4]) is None  # a constant head
    assert length_correlation([1.0, 2.0], [3.0, 4.0], [7, 7], [7, 7]) is None  # responses all one length


def test_length_loss_on_hand_computed_numbers_in_one_process():
    import torch.distributed as dist

    assert not dist.is_initialized()  # RLHFlow's version calls dist.get_world_size() here and crashes
    lengths = t(1, 2, 3, 4)
    # length head perfectly correlated (rho 1 -> 0), quality head rho 0.8 -> 0.8
    loss, rho_len, rho_q = odin_length_loss(2 * lengths + 1, t(1, 3, 2, 4), lengths)
    assert (loss.item(), rho_len.item(), rho_q.item()) == pytest.approx((0.8, 1.0, 0.8))
    # |rho| for the quality head: a negative correlation is penalised as much as a positive one
    assert odin_length_loss(2 * lengths, t(4, 2, 3, 1), lengths)[0].item() == pytest.approx(0.8)
    # the best case, 0; the worst, 3
    assert odin_length_loss(lengths, t(1, -1, -1, 1), lengths)[0].item() == pytest.approx(0.0)
    assert odin_length_loss(-lengths, lengths, lengths)[0].item() == pytest.approx(3.0)
    # gradients: raise the length head's correlation, lower the quality head's
    length_head = t(1, 1, 2, 1).requires_grad_()
    quality_head = t(1, 2, 3, 5).requires_grad_()
    odin_length_loss(length_head, quality_head, lengths)[0].backward()
    step = 0.01
    with torch.no_grad():
        better = odin_length_loss(length_head - step * length_head.grad, quality_head - step * quality_head.grad,
                                  lengths)[0]
        before = odin_length_loss(length_head, quality_head, lengths)[0]
    assert better.item() < before.item()
    assert gather_across_ranks(lengths) is lengths  # no process group: no gather


def test_orthogonality_loss_is_the_absolute_cosine_of_the_head_weights():
    assert odin_orthogonality_loss(t(1, 0), t(0, 1)).item() == pytest.approx(0.0)
    assert odin_orthogonality_loss(t(1, 1), t(1, 0)).item() == pytest.approx(1 / math.sqrt(2))
    assert odin_orthogonality_loss(t(1, 2), t(-2, -4)).item() == pytest.approx(1.0)
    # scale-invariant: shrinking the weights cannot satisfy it
    assert odin_orthogonality_loss(t(1, 1) * 1e-3, t(1, 0) * 50).item() == pytest.approx(1 / math.sqrt(2))
    zero = t(0, 0).requires_grad_()
    loss = odin_orthogonality_loss(zero, t(1, 0))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(zero.grad).all()


# ------------------------------------------------------------------------------------------ two ranks


def _rank_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    full_l, full_q, lengths = torch.randn(7), torch.randn(7), torch.arange(7.0) ** 1.5
    mine = slice(0, 4) if rank == 0 else slice(4, 7)  # unequal shares: 4 and 3 responses
    local_l, local_q = full_l[mine].clone().requires_grad_(), full_q[mine].clone().requires_grad_()
    loss = odin_length_loss(local_l, local_q, lengths[mine])[0]
    loss.backward()
    torch.save({"loss": loss.item(), "grad_l": local_l.grad, "grad_q": local_q.grad}, f"{out_dir}/rank{rank}.pt")
    # both ranks done before either tears gloo down: a rank leaving while the other still talks to it aborted
    # the process now and then ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.distributed
def test_length_loss_across_two_ranks_equals_the_one_process_loss_and_gradient(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    full_l, full_q, lengths = torch.randn(7), torch.randn(7), torch.arange(7.0) ** 1.5
    full_l.requires_grad_()
    full_q.requires_grad_()
    loss = odin_length_loss(full_l, full_q, lengths)[0]
    loss.backward()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for r in ranks:
        assert r["loss"] == pytest.approx(loss.item(), rel=1e-5)  # the global-batch term on every rank
    # all_gather's backward sums every rank's gradient into each slice (2x), and DDP then averages over the 2
    # ranks: the step is the one-process gradient of the global term
    grad_l = torch.cat([r["grad_l"] for r in ranks]) / 2
    grad_q = torch.cat([r["grad_q"] for r in ranks]) / 2
    torch.testing.assert_close(grad_l, full_l.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad_q, full_q.grad, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------ model


def test_model_has_two_heads_serves_quality_and_round_trips(tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    import odin_rm
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base")
    torch.manual_seed(0)
    model = odin_rm.odin_from_backbone(str(base), dtype=torch.float32).eval()
    lm = AutoModelForCausalLM.from_pretrained(base)
    torch.testing.assert_close(model.model.layers[1].mlp.up_proj.weight, lm.model.layers[1].mlp.up_proj.weight)
    assert model.score.weight.shape == (2, 32) and model.config.head_names == ["quality", "length"]

    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, return_head_weight=True)
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out.head_logits, torch.stack([hidden[0, 3], hidden[1, 2]]) @ model.score.weight.T)
    torch.testing.assert_close(out.logits, out.head_logits[:, :1])  # the served head: quality
    torch.testing.assert_close(out.head_weight, model.score.weight)

    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["rm_family"] == "odin" and config["served_head"] == "quality"
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling.OdinForSequenceClassification"
    assert (tmp_path / "ckpt" / "modeling.py").read_text() == (REPO / "odin_rm" / "modeling.py").read_text()
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "ckpt"), odin_rm.OdinConfig)
    for auto in (AutoModelForSequenceClassification, AutoModel):
        loaded = auto.from_pretrained(tmp_path / "ckpt").eval()
        assert isinstance(loaded, odin_rm.OdinForSequenceClassification)
        with torch.no_grad():
            torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).head_logits, out.head_logits)


def test_trust_remote_code_load_without_this_project(tmp_path):
    """A fresh interpreter that cannot import odin_rm (repo off sys.path) loads the checkpoint from its own
    copy of modeling.py and computes the same rewards."""
    import odin_rm
    from rm_core.testing import run_without_project, save_tiny_backbone

    torch.manual_seed(0)
    model = odin_rm.odin_from_backbone(str(save_tiny_backbone(tmp_path / "base")), dtype=torch.float32).eval()
    model.save_pretrained(tmp_path / "ckpt")
    ids = [[5, 6, 7, 8, 9, 10]]
    with torch.no_grad():
        expected = model(input_ids=torch.tensor(ids)).head_logits[0].tolist()
    got = run_without_project(f"""
import json, torch
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
assert "odin_rm" not in sys.modules and type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    out = model(input_ids=torch.tensor({ids!r}))
print(json.dumps({{"heads": out.head_logits[0].tolist(), "served": out.logits[0, 0].item(),
                   "served_head": model.config.served_head, "family": model.config.rm_family}}))
""", tmp_path)
    assert got["heads"] == pytest.approx(expected, abs=1e-6)
    assert got["served"] == pytest.approx(expected[0], abs=1e-6)
    assert (got["served_head"], got["family"]) == ("quality", "odin")


def _pre_fix_modeling_source() -> str:
    """odin_rm/modeling.py as checkpoints saved before the transformers-5.24 fix carry it: an output field named
    `past_key_values`, filled by the forward (what transformers 5.24 renames to `cache` under the class)."""
    src = (REPO / "odin_rm" / "modeling.py").read_text()
    src = src.replace("    head_weight: torch.Tensor | None = None\n",
                      "    head_weight: torch.Tensor | None = None\n    past_key_values: object | None = None\n", 1)
    src = src.replace("head_weight=weight,\n", "head_weight=weight, past_key_values=None,\n", 1)
    assert src.count("past_key_values") >= 2
    return src


def test_checkpoint_with_pre_fix_code_loads_here_and_refreshes(tmp_path):
    """A checkpoint that carries the old modeling.py: judges.load uses this project's classes (and says the
    copy is outdated, naming the refresh command); the command replaces it, after which nothing is stale."""
    import judges
    import odin_rm
    from rm_core.remote_code import main as refresh_main
    from rm_core.remote_code import stale_remote_code
    from rm_core.testing import save_tiny_backbone

    torch.manual_seed(0)
    base = save_tiny_backbone(tmp_path / "base")
    model = odin_rm.odin_from_backbone(str(base), dtype=torch.float32).eval()
    model.save_pretrained(tmp_path / "ckpt")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "ckpt")
    assert stale_remote_code(tmp_path / "ckpt") == []
    (tmp_path / "ckpt" / "modeling.py").write_text(_pre_fix_modeling_source())
    assert [p.name for p in stale_remote_code(tmp_path / "ckpt")] == ["modeling.py"]
    with pytest.warns(UserWarning, match="python -m rm_core.remote_code"):
        judge = judges.load(str(tmp_path / "ckpt"))
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    assert judge.score([conv])[0] is not None and judge.failures.total == 0
    assert refresh_main([str(tmp_path / "ckpt")]) == 0
    assert stale_remote_code(tmp_path / "ckpt") == []
    assert (tmp_path / "ckpt" / "modeling.py").read_text() == (REPO / "odin_rm" / "modeling.py").read_text()


# ------------------------------------------------------------------------------------------ training


def _rows(n: int, tag: str, rng: random.Random) -> list[dict]:
    def words(k):
        return " ".join(rng.choice(WORDS) for _ in range(k))

    rows = []
    for i in range(n):
        long_, short = rng.randint(8, 16), rng.randint(0, 5)
        n_chosen, n_rejected = (short, long_) if i % 4 == 3 else (long_, short)  # chosen longer in 3 of 4
        rows.append({"id": f"{tag}-{i}", "prompt": words(rng.randint(2, 5)),
                     "chosen": f"{words(n_chosen)} {GOOD_END}".strip(),
                     "rejected": f"{words(n_rejected)} {BAD_END}".strip()})
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from rm_core.testing import save_tiny_backbone

    root = tmp_path_factory.mktemp("odin")
    base = save_tiny_backbone(root / "base", seed=0)
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    test = _rows(48, "test", rng)
    for name, rows in (("train", _rows(64, "train", rng)), ("test", test)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--per_device_train_batch_size", "8",
              "--learning_rate", "2e-3", "--num_train_epochs", "10", "--logging_steps", "1",
              "--max_length", str(MAX_LENGTH), "--activation_checkpointing", "false", "--disable_tqdm", "true",
              "--use_cpu", "true", "--seed", "0", "--report_to", "none", "--save_strategy", "no",
              "--train_sampling_strategy", "random"]
    from bradley_terry_rm import train as bt
    from odin_rm import train as odin

    results = {"odin": odin.main(*odin.make_parser().parse_args_and_config(common + ["--output_dir", str(root / "odin")])),
               "bt": bt.main(*bt.make_parser().parse_args_and_config(common + ["--output_dir", str(root / "bt")]))}
    return {"root": root, "base": base, "data": data, "test": test, "results": results, "odin_recipe": odin}


def test_quality_head_loses_the_length_correlation_that_bt_learns(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from odin_rm.judge import pair_head_scores, summarize_heads
    from rm_core.data import to_preferences

    held = trained["results"]["odin"]["held_out"]
    bt_dir = trained["root"] / "bt"
    bt = AutoModelForSequenceClassification.from_pretrained(bt_dir).eval()
    bt_summary = summarize_heads(pair_head_scores(bt, AutoTokenizer.from_pretrained(bt_dir),
                                                  to_preferences(trained["test"])[0], MAX_LENGTH))["reward"]
    assert bt_summary["accuracy"] >= 0.9
    # held-out pairs from the training distribution (chosen longer in 3 of 4): BT's reward follows length
    assert bt_summary["length_correlation"] > 0.3
    # ODIN: the quality head ranks the pairs, without that correlation; the length head carries it
    assert held["accuracy"] == held["quality_head_accuracy"] >= 0.85
    assert abs(held["quality_head_length_corr"]) < 0.25
    assert abs(held["quality_head_length_corr"]) < bt_summary["length_correlation"] - 0.2
    assert held["length_head_length_corr"] > 0.8
    assert held["sum_accuracy"] >= 0.9

    saved = json.loads((trained["root"] / "odin" / "eval_results.json").read_text())
    assert saved["held_out"]["quality_head_length_corr"] == pytest.approx(held["quality_head_length_corr"])


def test_checkpoint_is_self_describing_and_loads_through_judges(trained):
    from transformers import AutoTokenizer

    import judges
    from odin_rm.judge import OdinJudge, pair_head_scores
    from rm_core.data import to_preferences

    out = trained["root"] / "odin"
    config = json.loads((out / "config.json").read_text())
    assert config["rm_family"] == "odin" and config["served_head"] == "quality"
    assert config["head_names"] == ["quality", "length"] and config["model_type"] == "odin_rm"
    assert config["reward_std"] > 0 and "auto_map" in config and (out / "modeling.py").is_file()
    card = (out / "README.md").read_text()
    assert "| held-out quality_head_length_corr |" in card and "odin" in card

    judge = judges.load(str(out), max_length=MAX_LENGTH)
    assert isinstance(judge, OdinJudge) and judge.pointwise
    prefs = to_preferences(trained["test"][:6])[0]
    items = [(p["prompt"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in prefs]
    direct = pair_head_scores(judge.model, AutoTokenizer.from_pretrained(out), prefs, MAX_LENGTH)["scores"]
    shared = judge.score_pairs(items)  # the shared-prompt KV-cache path of eval_reward_bench
    assert [c for c, _ in shared] == pytest.approx(direct["quality"][0], abs=1e-4)
    assert [r for _, r in shared] == pytest.approx(direct["quality"][1], abs=1e-4)
    convs = [[*p, {"role": "assistant", "content": a}] for p, a, _ in items]
    assert judge.score(convs) == pytest.approx(direct["quality"][0], abs=1e-4)
    p = judge.compare(*items[0])
    assert p == pytest.approx(1 / (1 + math.exp(-(direct["quality"][0][0] - direct["quality"][1][0]))), abs=1e-4)

    length_judge = judges.load(str(out), max_length=MAX_LENGTH, head="length")
    assert length_judge.share_prefix is False
    assert [c for c, _ in length_judge.score_pairs(items)] == pytest.approx(direct["length"][0], abs=1e-4)


def test_lora_run_merges_into_an_odin_model(trained):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    import odin_rm
    from odin_rm.trainer import load_odin_model

    out = trained["root"] / "odin-lora"
    recipe = trained["odin_recipe"]
    argv = ["--model_name_or_path", str(trained["base"]), "--dataset_name", str(trained["data"]),
            "--output_dir", str(out), "--per_device_train_batch_size", "8", "--learning_rate", "5e-3",
            "--max_steps", "3", "--max_length", str(MAX_LENGTH), "--activation_checkpointing", "false",
            "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", "--report_to", "none",
            "--save_strategy", "no", "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--max_eval_pairs", "8"]
    recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    assert (out / "lora_adapter" / "adapter_config.json").is_file() and not (out / "adapter_config.json").exists()
    merged = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert isinstance(merged, odin_rm.OdinForSequenceClassification)
    assert json.loads((out / "config.json").read_text())["rm_family"] == "odin"
    base, tokenizer = load_odin_model(str(trained["base"]))
    start = base.score.weight.detach().clone()
    with_adapter = PeftModel.from_pretrained(base, str(out / "lora_adapter")).eval()
    ids = torch.tensor([tokenizer("hello world the quick brown fox")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).head_logits, with_adapter(input_ids=ids).head_logits,
                                   atol=1e-5, rtol=1e-4)
    assert not torch.allclose(merged.score.weight, start)  # both heads trained (modules_to_save "score")


def test_a_nan_odin_checkpoint_gives_counted_failures_on_the_batched_path(tmp_path):
    import odin_rm
    from odin_rm.judge import OdinJudge
    from rm_core.testing import save_tiny_backbone, tiny_tokenizer

    base = save_tiny_backbone(tmp_path / "base")
    model = odin_rm.odin_from_backbone(str(base), dtype=torch.float32).eval()
    with torch.no_grad():
        model.score.weight[0] = math.nan  # the served (quality) head diverged
    judge = OdinJudge(model, tiny_tokenizer(), max_length=64, batch_size=2)
    items = [("What is 2 + 3?", "The answer is 5.", "no"), ("Say hello.", "hello world", "the fox")]
    assert judge.score_pairs(items) == [(None, None), (None, None)]  # the shared-prefix (tree row) path of eval_*
    assert judge.compare_batch(items) == [None, None]
    assert judge.failures.counts == {"non-finite score": 8}
