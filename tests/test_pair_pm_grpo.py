"""pair_pm/train_grpo.py: the strict verdict parser, the rewards, both orders of a pair in one GRPO group (a
position-biased policy earns zero net advantage), a real GRPOTrainer run on a tiny model, and the saved
checkpoint as a reasoning pair-PM judge (judges.load, failures counted, eval_reward_bench)."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from pair_pm.grpo_rewards import (
    make_verdict_reward_func,
    parse_reasoning_verdict,
    reasoning_text,
    verdict_reward,
)

torch.set_num_threads(1)

WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD = "Sure, here is a short answer in one word."
BAD = "I cannot help with that request."
WELL_FORMED = "<principles>Be helpful.</principles>\n<critique>A answers; B refuses.</critique>\n<verdict>A</verdict>"


# -- the parser ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, verdict", [
    (WELL_FORMED, "A"),
    ("<verdict>B</verdict>", "B"),
    ("  B refuses, so:\n<verdict>B</verdict>\n\n", "B"),  # surrounding whitespace is not text
    ("<critique>A is vague.</critique><principles>x</principles><verdict>B</verdict>", "B"),
])
def test_parser_accepts_the_fixed_form(text, verdict):
    parsed = parse_reasoning_verdict(text)
    assert parsed.ok and parsed.verdict == verdict and parsed.error is None
    assert "<verdict>" not in parsed.reasoning


@pytest.mark.parametrize("text, reason", [
    (None, "empty output"),
    ("   \n", "empty output"),
    ("Response A is better. Verdict: A", "missing verdict"),
    ("[[A]]", "missing verdict"),
    ("<verdict>A</verdict>\n<verdict>B</verdict>", "several verdicts"),
    ("<verdict>A</verdict> then <verdict>A</verdict>", "several verdicts"),
    ("<critique>I'd say <verdict>A</verdict>, but</critique><verdict>B</verdict>", "several verdicts"),
    ("<verdict>a</verdict>", "invalid verdict"),
    ("<verdict>C</verdict>", "invalid verdict"),
    ("<verdict>tie</verdict>", "invalid verdict"),
    ("<verdict> A </verdict>", "invalid verdict"),
    ("<verdict>A or B</verdict>", "invalid verdict"),
    ("<VERDICT>A</VERDICT>", "malformed verdict tag"),
    ("<verdict>A", "malformed verdict tag"),  # a generation cut at max_completion_length
    ("B is better </verdict>", "malformed verdict tag"),
    ("<verdict>A</verdict> because A is kinder.", "text after the verdict"),
    ("<principles>x</principles><critique>A is better so <verdict>A</verdict>", "verdict inside an unclosed <critique>"),
    ("<principles>be kind <verdict>B</verdict>", "verdict inside an unclosed <principles>"),
])
def test_parser_is_strict(text, reason):
    parsed = parse_reasoning_verdict(text)
    assert parsed.verdict is None and not parsed.ok and parsed.error == reason


def test_parser_never_evaluates_the_text():
    evil = "<verdict>__import__('os').system('echo pwned')</verdict>"
    assert parse_reasoning_verdict(evil).error == "invalid verdict"
    assert reasoning_text("x y <verdict>A</verdict>") == "x y" and reasoning_text("no tag here") == "no tag here"


# -- rewards ------------------------------------------------------------------------------------------------
def _conv(text: str) -> list[dict]:
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}]


def test_reward_values_on_hand_made_outputs():
    reward = verdict_reward(malformed_penalty=0.5)
    texts = [WELL_FORMED, WELL_FORMED, "<verdict>B</verdict>", "<verdict>a</verdict>", "Verdict: A"]
    labels = ["A", "B", "B", "A", "A"]
    details = reward.score_detailed([_conv(t) for t in texts], labels)
    # right 1, wrong 0, malformed -penalty/2, missing -penalty
    assert [d["total"] for d in details] == [1.0, 0.0, 1.0, -0.25, -0.5]
    assert details[3]["components"] == {"verdict": 0.0, "format": -0.5}
    assert details[4]["components"] == {"verdict": 0.0, "format": -1.0}
    assert reward.score([_conv(WELL_FORMED)], [None]) == [None]  # no label: a counted failure, never a guess
    assert reward.failures.counts == {"component failed: verdict": 1}


def test_reward_length_band_and_structure():
    reward = verdict_reward(malformed_penalty=1.0, reasoning_min_words=4, reasoning_max_words=8, length_weight=0.5,
                            structure_weight=0.25)
    short = "<verdict>A</verdict>"  # no reasoning at all: length 0 of the band -> 0.0
    in_band = "<principles>be kind</principles><critique>A helps, B not</critique><verdict>A</verdict>"
    too_long = " ".join(["word"] * 16) + " <verdict>A</verdict>"  # 16 words, twice the top: 0.0
    details = reward.score_detailed([_conv(t) for t in (short, in_band, too_long)], ["A"] * 3)
    assert [d["components"]["length"] for d in details] == [0.0, 1.0, 0.0]
    assert [d["components"]["structure"] for d in details] == [0.0, 1.0, 0.0]
    assert [d["total"] for d in details] == [1.0, pytest.approx(1.75), 1.0]
    with pytest.raises(ValueError, match="magnitudes"):
        verdict_reward(malformed_penalty=-1)


def test_trl_reward_func_logs_components_and_position_rate():
    fn = make_verdict_reward_func(verdict_reward())
    logged = {}
    completions = [[{"role": "assistant", "content": t}] for t in
                   (WELL_FORMED, "<verdict>A</verdict>", "<verdict>B</verdict>", "garbage")]
    out = fn(prompts=[[{"role": "user", "content": "p"}]] * 4, completions=completions, label=["A", "B", "B", "A"],
             trainer_state=None, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == [1.0, 0.0, 1.0, -1.0] and fn.__name__ == "pair_pm_verdict"
    assert logged["pair_pm_verdict/verdict"] == 0.5 and logged["pair_pm_verdict/format"] == -0.25
    assert logged["pair_pm_verdict/malformed_rate"] == 0.25
    assert logged["pair_pm_verdict/answer_a_rate"] == pytest.approx(2 / 3)
    assert logged["pair_pm_verdict/judge_failed"] == 0.0


# -- the order-consistency reward ------------------------------------------------------------------------------
def _pair_call(fn, fwd: list[str], bwd: list[str], pair: str = "p0", **kw):
    """The reward function on one pair: the forward-order completions (chosen as A, label A), then the backward ones."""
    texts = fwd + bwd
    n = len(texts)
    return fn(prompts=[[{"role": "user", "content": "p"}]] * n,
              completions=[[{"role": "assistant", "content": t}] for t in texts],
              label=["A"] * len(fwd) + ["B"] * len(bwd), pair_id=[pair] * n,
              order=["forward"] * len(fwd) + ["backward"] * len(bwd), trainer_state=None, **kw)


def _v(letter: str) -> str:
    return f"<verdict>{letter}</verdict>"


def test_order_consistent_reward_on_hand_made_judges():
    from pair_pm.train_grpo import make_order_consistent_reward_func

    fn = make_order_consistent_reward_func(verdict_reward(), consistency_weight=0.5)
    right = _pair_call(fn, [_v("A")] * 2, [_v("B")] * 2)  # right in both orders
    wrong = _pair_call(fn, [_v("B")] * 2, [_v("A")] * 2)  # wrong in both orders
    always_b = _pair_call(fn, [_v("B")] * 2, [_v("B")] * 2)  # answers by position
    always_a = _pair_call(fn, [_v("A")] * 2, [_v("A")] * 2)
    assert right == [1.0] * 4 and wrong == [0.0] * 4
    assert always_b == [0.0, 0.0, 0.5, 0.5] and always_a == [0.5, 0.5, 0.0, 0.0]  # right ones paid 1 - w
    plain = make_verdict_reward_func(verdict_reward())
    assert _pair_call(plain, [_v("B")] * 2, [_v("B")] * 2) == [0.0, 0.0, 1.0, 1.0]  # the old reward: 1/2 on average
    # one forward completion leaves the position: it agrees with the whole backward order, they with half of it
    assert _pair_call(fn, [_v("A"), _v("B")], [_v("B")] * 2) == [1.0, 0.0, 0.75, 0.75]

    # every judge of 2 + 2 parsed completions: the consistently right one alone gets the maximum, the consistently
    # wrong one alone the minimum, and a position-constant judge less than a consistent right one
    means = {}
    for letters in itertools.product("AB", repeat=4):
        out = _pair_call(fn, [_v(c) for c in letters[:2]], [_v(c) for c in letters[2:]])
        assert all(0.0 <= r <= 1.0 for r in out)
        means["".join(letters)] = sum(out) / 4
    assert max(means, key=means.get) == "AABB" and means["AABB"] == 1.0
    assert [k for k, m in means.items() if m == 1.0] == ["AABB"] and [k for k, m in means.items() if m == 0.0] == ["BBAA"]
    assert means["BBBB"] == means["AAAA"] == 0.25 < means["AABB"]


def test_order_consistent_reward_keeps_format_terms_and_pairs_apart():
    from pair_pm.train_grpo import make_order_consistent_reward_func, order_agreement

    fn = make_order_consistent_reward_func(verdict_reward(malformed_penalty=1.0), consistency_weight=1.0)
    # malformed outputs: the format ladder as before (-1/2 malformed, -1 missing), and they are no evidence
    assert _pair_call(fn, [_v("a"), "Verdict: A"], [_v("B"), _v("B")]) == [-0.5, -1.0, 1.0, 1.0]
    assert _pair_call(fn, [_v("a"), _v("A")], [_v("B"), "no verdict"]) == [-0.5, 1.0, 1.0, -1.0]
    assert _pair_call(fn, [_v("B")] * 2, [_v("B")] * 2) == [0.0] * 4  # w = 1: a flipping verdict earns nothing
    # two pairs in one call (as in a generation batch): each compared with its own other order only
    texts = [_v("A"), _v("B"), _v("B"), _v("B")]
    assert order_agreement(["A", "B", "B", "B"], ["A", "B", "A", "B"], ["x", "x", "y", "y"],
                           ["forward", "backward", "forward", "backward"]) == [1.0, 1.0, 0.0, 0.0]
    logged = {}
    out = fn(prompts=[[{"role": "user", "content": "p"}]] * 4, completions=[[{"role": "assistant", "content": t}]
                                                                            for t in texts],
             label=["A", "B", "A", "B"], pair_id=["x", "x", "y", "y"], order=["forward", "backward"] * 2,
             trainer_state=None, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == [1.0, 1.0, 0.0, 0.0]
    assert logged["pair_pm_verdict/order_agreement"] == 0.5 and logged["pair_pm_verdict/consistency"] == -0.25
    assert logged["pair_pm_verdict/agreement_coverage"] == 1.0 and logged["pair_pm_verdict/verdict"] == 0.75
    # the off switch is the plain reward; the pair columns are required when it is on
    off = make_order_consistent_reward_func(verdict_reward(), consistency_weight=0.0)
    assert _pair_call(off, [_v("B")] * 2, [_v("B")] * 2) == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="pair_id"):
        fn(prompts=[[]], completions=[_v("A")], label=["A"], order=["forward"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_order_consistent_reward_func(verdict_reward(), consistency_weight=1.5)


# -- data and grouping ----------------------------------------------------------------------------------------
def _pref(i: int, prompt: str = "Say hello.", chosen: str = GOOD, rejected: str = BAD) -> dict:
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "id": f"p{i}", "subset": ""}


@pytest.fixture(scope="module")
def tok():
    from rm_core.testing import tiny_tokenizer

    return tiny_tokenizer()


def test_dataset_has_both_orders_adjacent_and_cut_prompts(tok):
    from pair_pm.prepare_data import REASONING_QUESTION, encode_pair
    from pair_pm.train_grpo import build_grpo_dataset, check_pair_layout

    prefs = [_pref(0), _pref(1, prompt=" ".join(WORDS * 30)), {**_pref(2), "tie": True}]
    ds, report, ties = build_grpo_dataset(prefs, tok, max_prompt_length=400)
    assert ties == 1 and len(ds) == 4 and check_pair_layout(ds) == 2
    assert ds["label"] == ["A", "B", "A", "B"] and ds["order"] == ["forward", "backward"] * 2
    first = ds[0]["prompt"][0]["content"]
    assert first.index(GOOD) < first.index(BAD) and first.endswith(REASONING_QUESTION)
    second = ds[1]["prompt"][0]["content"]
    assert second.index(BAD) < second.index(GOOD)
    assert report.truncated == 2  # the long context, in both orders, cut to fit
    for row in ds:  # what TRL will tokenise is what the judge encodes
        ids = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)
        assert len(ids) <= 400
    judge_ids = encode_pair(tok, "Say hello.", GOOD, BAD, 400, question=REASONING_QUESTION, reserve=0)
    assert tok.apply_chat_template(ds[0]["prompt"], add_generation_prompt=True, tokenize=True,
                                   return_dict=False) == judge_ids
    bad = ds.select([1, 0, 2, 3])
    with pytest.raises(ValueError, match="not the two orders"):
        check_pair_layout(bad)
    same_id, _, _ = build_grpo_dataset([_pref(0), _pref(0, prompt="Say bye.")], tok, max_prompt_length=400)
    assert same_id["pair_id"] == ["p0", "p0", "p0#1", "p0#1"]  # a repeated id: still two pairs to the reward


def test_pair_sampler_puts_both_orders_in_one_group():
    from trl.trainer.utils import RepeatSampler

    from pair_pm.train_grpo import PairRepeatSampler

    s = PairRepeatSampler(num_pairs=5, num_generations=4, pairs_per_batch=2, repeat_count=2, shuffle=False)
    got = list(s)
    assert len(got) == len(s) == 2 * 2 * 4 * 2  # 2 whole chunks (pair 4 dropped) x 2 pairs x 4 x 2 repeats
    groups = [got[i:i + 4] for i in range(0, len(got), 4)]
    assert groups[:4] == [[0, 0, 1, 1], [2, 2, 3, 3], [0, 0, 1, 1], [2, 2, 3, 3]]
    for g in groups:  # every group of num_generations = both orders of ONE pair, half each
        assert g[0] % 2 == 0 and g == [g[0], g[0], g[0] + 1, g[0] + 1]
    # the same chunk/repeat structure as TRL's RepeatSampler over pair indices
    trl = list(RepeatSampler(list(range(5)), mini_repeat_count=1, batch_size=2, repeat_count=2, shuffle=False))
    assert [g[0] // 2 for g in groups] == trl

    by_order = list(PairRepeatSampler(4, 2, 1, grouping="order", shuffle=False))
    assert by_order[:8] == [0, 0, 1, 1, 2, 2, 3, 3]  # groups of one order, the pair's two groups adjacent
    shuffled = list(PairRepeatSampler(6, 2, 3, shuffle=True, seed=1))
    assert sorted(shuffled) == list(range(12)) and shuffled == list(PairRepeatSampler(6, 2, 3, shuffle=True, seed=1))
    with pytest.raises(ValueError, match="even"):
        PairRepeatSampler(4, 3, 1)


def test_config_validates_grouping(tmp_path):
    from pair_pm.config import PairPMGRPOConfig

    common = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=4)
    with pytest.raises(ValueError, match="even num_generations"):
        PairPMGRPOConfig(num_generations=3, **{**common, "per_device_train_batch_size": 3})
    with pytest.raises(ValueError, match="divisible by 2 x num_generations"):
        PairPMGRPOConfig(num_generations=4, pair_grouping="order", **common)
    with pytest.raises(ValueError, match="server mode"):
        PairPMGRPOConfig(num_generations=4, use_vllm=True, vllm_mode="server", **common)
    with pytest.raises(ValueError, match="pair_grouping must be"):
        PairPMGRPOConfig(num_generations=4, pair_grouping="prompt", **common)
    assert PairPMGRPOConfig(num_generations=4, **common).bf16 is False  # CPU default


def test_config_validates_order_consistency(tmp_path, monkeypatch):
    from transformers import TrainingArguments

    from pair_pm.config import PairPMGRPOConfig

    common = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=4)
    args = PairPMGRPOConfig(num_generations=4, **common)
    assert args.order_consistency and args.consistency_weight == 0.5 and args.held_out_eval_pairs is None
    with pytest.raises(ValueError, match=r"consistency_weight is in \[0, 1\]"):
        PairPMGRPOConfig(num_generations=4, consistency_weight=-0.1, **common)
    # two processes: a global generation batch of 8 holds a group of 8, but each process sees 4 completions
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match="must hold whole pairs"):
        PairPMGRPOConfig(num_generations=8, **common)
    assert PairPMGRPOConfig(num_generations=8, order_consistency=False, **common).generation_batch_size == 8
    assert PairPMGRPOConfig(num_generations=4, **common).generation_batch_size == 8


def _shard_batches(sampler, local_batch: int, num_processes: int) -> list[list[list[int]]]:
    """What each process's dataloader yields, as accelerate prepares the Trainer's (BatchSampler over the sampler,
    then BatchSamplerShard: whole consecutive batches to each process in turn)."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    return [list(BatchSamplerShard(BatchSampler(sampler, local_batch, drop_last=False), num_processes, rank))
            for rank in range(num_processes)]


@pytest.mark.parametrize("grouping, num_generations, per_device, steps_per_gen, processes", [
    ("pair", 4, 4, 2, 1), ("pair", 4, 2, 2, 2), ("pair", 8, 4, 2, 2), ("order", 2, 4, 1, 2), ("order", 4, 8, 1, 1)])
def test_both_orders_of_a_pair_reach_the_same_reward_call(grouping, num_generations, per_device, steps_per_gen,
                                                          processes, tmp_path, monkeypatch):
    """As GRPOTrainer samples: the config's generation batch for `processes` processes (GRPOConfig), the sampler
    of PairPMGRPOTrainer._get_train_sampler, TRL's per-process generation batch (per_device x steps_per_generation)
    and accelerate's sharding: every process's generation batch, the rows one reward call sees, holds whole
    pairs, both orders of each, in TRL's groups of num_generations consecutive rows."""
    from types import SimpleNamespace

    from datasets import Dataset
    from transformers import TrainingArguments

    from pair_pm.config import PairPMGRPOConfig
    from pair_pm.train_grpo import PairPMGRPOTrainer

    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: processes))
    args = PairPMGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", seed=3,
                            per_device_train_batch_size=per_device, steps_per_generation=steps_per_gen,
                            num_generations=num_generations, pair_grouping=grouping)
    local = args.generation_batch_size // processes
    assert local == per_device * steps_per_gen
    ds = Dataset.from_dict({"label": ["A", "B"] * 7, "pair_id": [f"p{i // 2}" for i in range(14)]})
    fake = SimpleNamespace(train_dataset=ds, args=args, num_generations=num_generations, num_iterations=1,
                           shuffle_dataset=True)
    sampler = PairPMGRPOTrainer._get_train_sampler(fake, ds)
    shards = _shard_batches(sampler, local, processes)
    assert len({len(b) for b in shards}) == 1 and shards[0]
    for batches in shards:
        for batch in batches:
            assert len(batch) == local
            pairs = {i // 2 for i in batch}
            for k in pairs:  # each pair whole: num_generations of each order (per-pair groups: half each)
                each = num_generations // 2 if grouping == "pair" else num_generations
                assert batch.count(2 * k) == batch.count(2 * k + 1) == each
            for g in range(0, local, num_generations):  # TRL's groups: consecutive num_generations rows
                group = batch[g:g + num_generations]
                assert len({i // 2 for i in group}) == 1
                assert len(set(group)) == (2 if grouping == "pair" else 1)


# -- a real GRPOTrainer ---------------------------------------------------------------------------------------
def _trainer(tmp_path, tok_path, prefs, grouping="pair", num_generations=4, batch=8, reward_func=None,
             held_out=None, **overrides):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pair_pm.config import PairPMGRPOConfig
    from pair_pm.train_grpo import PairPMGRPOTrainer, build_grpo_dataset

    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    ds, _, _ = build_grpo_dataset(prefs, tokenizer, 448)
    args = PairPMGRPOConfig(output_dir=str(tmp_path / "out"), max_completion_length=8, num_generations=num_generations,
                            per_device_train_batch_size=batch, max_steps=1, logging_steps=1, report_to="none",
                            use_cpu=True, save_strategy="no", pair_grouping=grouping, seed=0,
                            **overrides)
    return PairPMGRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tok_path), args=args, train_dataset=ds,
                             reward_funcs=[reward_func or make_verdict_reward_func(verdict_reward())],
                             processing_class=tokenizer, held_out=held_out,
                             eval_dataset=build_grpo_dataset(held_out, tokenizer, 448)[0] if held_out else None)


def _scripted(trainer, answer):
    """Replace generation by a scripted policy: answer(row label, order, index in batch) -> verdict letter."""
    tok = trainer.processing_class
    state = {}

    def generate(prompt_ids, images, multimodal_fields, num_generations):
        letters = [answer(x["label"], i) for i, x in enumerate(state["inputs"])]
        ids = [tok(f"<verdict>{c}</verdict>", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
               for c in letters]
        state["letters"] = letters
        return ids, None

    trainer._generate_single_turn = generate
    return state


def _advantages(trainer, state):
    batch = next(iter(trainer.get_train_dataloader()))
    state["inputs"] = batch
    trainer.model.train()
    out = trainer._generate_and_score_completions(batch)
    return batch, out["advantages"].tolist(), state["letters"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    from rm_core.testing import save_tiny_backbone

    return save_tiny_backbone(tmp_path_factory.mktemp("grpo") / "policy")


PREFS = [_pref(i, prompt=f"{WORDS[i]} {WORDS[i + 1]}?") for i in range(4)]


@pytest.mark.parametrize("policy", ["always A", "always B", "half A half B"])
def test_position_biased_policy_earns_zero_net_advantage(tmp_path, tiny_path, policy):
    """Both orders in one group: a policy that answers by slot gets +x where the slot happens to hold the chosen
    response and -x where it holds the rejected one, so the advantages of its "A" answers (and of its "B"
    answers) sum to zero: nothing pushes it towards a position; what it learns is to switch with the content."""
    trainer = _trainer(tmp_path, tiny_path, PREFS)
    answer = {"always A": lambda label, i: "A", "always B": lambda label, i: "B",
              "half A half B": lambda label, i: "AB"[i % 2]}[policy]
    state = _scripted(trainer, answer)
    batch, adv, letters = _advantages(trainer, state)
    assert len(batch) == 8
    for g in range(0, 8, 4):  # each group of 4 = one pair: 2 completions in each order
        group = batch[g:g + 4]
        assert [x["label"] for x in group] == ["A", "A", "B", "B"] and len({x["pair_id"] for x in group}) == 1
    for letter in "AB":
        assert sum(a for a, c in zip(adv, letters) if c == letter) == pytest.approx(0.0, abs=1e-5)
    assert any(abs(a) > 0.5 for a in adv)  # but not zero per completion: right answers up, wrong ones down
    for a, c, x in zip(adv, letters, batch):
        assert (a > 0) == (c == x["label"])


def test_per_order_groups_give_a_position_policy_nothing(tmp_path, tiny_path):
    trainer = _trainer(tmp_path, tiny_path, PREFS, grouping="order", num_generations=2, batch=8)
    state = _scripted(trainer, lambda label, i: "A")
    batch, adv, _ = _advantages(trainer, state)
    assert [x["label"] for x in batch] == ["A", "A", "B", "B"] * 2  # the pair's two groups adjacent
    assert adv == [0.0] * 8  # every group unanimous: no signal at all (the pair grouping gives one)


def test_content_following_policy_has_nothing_left_to_learn(tmp_path, tiny_path):
    trainer = _trainer(tmp_path, tiny_path, PREFS)
    state = _scripted(trainer, lambda label, i: label)
    _, adv, _ = _advantages(trainer, state)
    assert adv == pytest.approx([0.0] * 8, abs=1e-5)


def test_trainer_pays_order_consistency_on_the_whole_generation_batch(tmp_path, tiny_path):
    """The real trainer (TRL's dataloader with PairPMGRPOTrainer's sampler, two optimizer steps per generation):
    the reward function is called once on the generation batch, which holds both orders of each pair, so a position-
    following answer is paid less than the content-following one beside it, and the advantages show it."""
    from pair_pm.train_grpo import make_order_consistent_reward_func

    fn = make_order_consistent_reward_func(verdict_reward(), consistency_weight=0.5)
    trainer = _trainer(tmp_path, tiny_path, PREFS, batch=4, steps_per_generation=2, reward_func=fn)
    assert trainer.args.generation_batch_size == 8
    # "B" everywhere but the first completion of each group (a forward one): it leaves the position and is right
    state = _scripted(trainer, lambda label, i: "A" if i % 4 == 0 else "B")
    batch, adv, letters = _advantages(trainer, state)
    assert len(batch) == 8 and [x["order"] for x in batch[:4]] == ["forward"] * 2 + ["backward"] * 2
    assert letters == ["A", "B", "B", "B"] * 2
    rewards = list(trainer._logs["rewards"]["pair_pm_verdict"])
    # forward A: right, every backward completion agrees -> 1; forward B: wrong -> 0; backward B: right, but half
    # of the forward completions pick the other response -> 1 - 0.5 x 0.5
    assert rewards == [1.0, 0.0, 0.75, 0.75] * 2
    per_group = [adv[g:g + 4] for g in range(0, 8, 4)]
    for group in per_group:
        assert group[0] > group[2] == group[3] > 0 > group[1]  # the consistent right answer leads
    plain = _trainer(tmp_path, tiny_path, PREFS, batch=4, steps_per_generation=2)
    state = _scripted(plain, lambda label, i: "A" if i % 4 == 0 else "B")
    _, plain_adv, _ = _advantages(plain, state)
    assert plain_adv[0] == pytest.approx(plain_adv[2])  # the plain reward pays both right answers alike


def test_in_training_evaluation_logs_strict_accuracy_and_flip_rate(tmp_path, tiny_path, monkeypatch):
    from pair_pm.judge import ReasoningPairPMJudge
    from pair_pm.train_grpo import held_out_curve

    trainer = _trainer(tmp_path, tiny_path, PREFS, held_out=PREFS[:3], eval_strategy="steps", eval_steps=1)
    monkeypatch.setattr(ReasoningPairPMJudge, "generate", lambda self, items: Scripted([
        _v("A"), _v("B"),  # right in both orders
        _v("B"), _v("B"),  # follows the slot: a flip
        _v("B"), "no verdict",  # wrong, then malformed
    ])(items))
    trainer.model.train()
    metrics = trainer.evaluate()
    assert trainer.model.training  # given back in training mode
    assert metrics["eval_strict_accuracy"] == pytest.approx(1 / 3) and metrics["eval_order_flip_rate"] == 0.5
    assert metrics["eval_accuracy_chosen_as_a"] == pytest.approx(1 / 3)
    assert metrics["eval_malformed_rate"] == pytest.approx(1 / 6) and metrics["eval_failed_pairs"] == 1
    logged = trainer.state.log_history[-1]
    assert logged["eval_strict_accuracy"] == metrics["eval_strict_accuracy"] and "reward" not in logged
    assert metrics["eval_strict_accuracy_ci95_low"] <= 1 / 3 <= metrics["eval_strict_accuracy_ci95_high"]
    curve = held_out_curve(trainer.state.log_history)
    ci = {k: [metrics[f"eval_{k}_ci95_low"], metrics[f"eval_{k}_ci95_high"]]
          for k in ("strict_accuracy", "order_flip_rate")}
    assert curve == [{"step": 0, "strict_accuracy": pytest.approx(1 / 3), "order_flip_rate": 0.5,
                      "accuracy_chosen_as_a": pytest.approx(1 / 3), "accuracy_chosen_as_b": pytest.approx(2 / 3),
                      "malformed_rate": pytest.approx(1 / 6), "answer_a_rate": pytest.approx(0.2),
                      "failed_pairs": 1.0, "pairs": 3.0, "ci95": ci}]


def test_both_order_metrics_on_probabilities():
    from judges.base import PairVerdict
    from pair_pm.train_grpo import both_order_metrics

    verdicts = [PairVerdict(0.9, 0.6), PairVerdict(0.9, 0.3), PairVerdict(0.4, 0.45), PairVerdict(0.7, None)]
    # order-debiased the second pair is right (0.6 > 0.5), strictly it is not (wrong with the chosen shown second)
    got = both_order_metrics(verdicts)
    assert got["strict_accuracy"] == 0.25 and got["order_flip_rate"] == pytest.approx(1 / 3)
    low, high = got["ci95"]["strict_accuracy"]
    assert 0.0 <= low <= 0.25 <= high <= 1.0 and got == both_order_metrics(verdicts)  # seeded
    assert got["ci95"]["order_flip_rate"][0] <= 1 / 3 <= got["ci95"]["order_flip_rate"][1]
    assert both_order_metrics([PairVerdict(None, 0.7)])["ci95"]["order_flip_rate"] is None  # nothing decided
    with pytest.raises(ValueError):
        both_order_metrics([])


# -- end to end: train, save, load, evaluate ------------------------------------------------------------------
def _data_dir(tmp_path: Path, sizes: dict[str, int]) -> Path:
    rng = random.Random(0)
    data = tmp_path / "data"
    data.mkdir()
    for split, n in sizes.items():
        rows = [{"id": f"{split}-{i}", "prompt": " ".join(rng.choice(WORDS) for _ in range(3)), "chosen": GOOD,
                 "rejected": BAD} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_path):
    """A real 2-step GRPO run through the recipe's main() on the tiny random model (~15 s on CPU)."""
    from pair_pm import train_grpo as recipe

    tmp = tmp_path_factory.mktemp("grpo-run")
    data = _data_dir(tmp, {"train": 8, "test": 3})
    out = tmp / "ckpt"
    argv = ["--model_name_or_path", str(tiny_path), "--dataset_name", str(data), "--output_dir", str(out),
            "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "128",
            "--max_prompt_length", "448", "--max_steps", "2", "--learning_rate", "1e-3", "--logging_steps", "1",
            "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true",
            "--seed", "0", "--length_weight", "0.1", "--reasoning_max_words", "20", "--format_warmup_steps", "2",
            "--eval_strategy", "steps", "--eval_steps", "1", "--eval_on_start", "true", "--held_out_eval_pairs", "2"]
    results = recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    return out, data, results


def test_grpo_run_trains_and_saves_a_reasoning_pair_pm(trained):
    out, _, results = trained
    warm = results["format_warmup"]
    assert warm["steps"] == 2 and [e["step"] for e in warm["log"]] == [1, 2]
    assert (out / "format-warmup" / "model.safetensors").is_file()
    curve = results["reward_curve"]
    assert [c["step"] for c in curve] == [1, 2]
    for c in curve:  # a random tiny model writes no verdict: every output malformed, reward -1
        assert c["malformed_rate"] == 1.0 and -1.0 <= c["reward"] <= -0.9  # -1 + 0.1 x the length term
    config = json.loads((out / "config.json").read_text())
    assert config["rm_family"] == "pair_pm" and config["pair_pm_reasoning"] is True
    assert config["pair_pm_template"] == "pair-pm-reasoning-v1"
    assert config["pair_pm_max_length"] == 448 and config["pair_pm_max_new_tokens"] == 128
    held = results["held_out"]
    assert held["pairs"] == 3 and held["malformed_rate"] == 1.0 and held["failed_pairs"] == 3
    assert held["accuracy"] == 0.0 and sum(held["malformed_by_reason"].values()) == 6  # outputs, both orders
    assert held["strict_accuracy"] == 0.0 and held["order_flip_rate"] is None  # no pair parsed in both orders
    assert json.loads((out / "eval_results.json").read_text())["held_out"] == held
    # the held-out evaluation during training: before the first step and after each, on held_out_eval_pairs pairs
    assert [(c["step"], c["pairs"], c["strict_accuracy"], c["order_flip_rate"], c["malformed_rate"])
            for c in results["held_out_curve"]] == [(s, 2, 0.0, None, 1.0) for s in (0, 1, 2)]
    assert results["order_consistency"] == {"weight": 0.5, "held_out_eval_pairs": 2}


def test_judges_load_returns_the_reasoning_judge_and_counts_failures(trained):
    import judges
    from pair_pm.judge import PairPMJudge, ReasoningPairPMJudge

    out, _, _ = trained
    judge = judges.load(str(out))
    assert isinstance(judge, ReasoningPairPMJudge) and not judge.pointwise
    assert judge.max_new_tokens == 128 and judge.max_length == 448
    p = judge.compare("Say hello.", GOOD, BAD)
    assert p is None  # the random model's output does not parse: None, never a default
    assert judge.failures.total == 1 and next(iter(judge.failures.counts)).startswith("unparsable verdict: ")
    assert judge.verdict_stats["outputs"] == 2 and judge.malformed_rate == 1.0
    assert type(PairPMJudge.from_pretrained(str(out))) is ReasoningPairPMJudge


class Scripted:
    """Stands in for generation: the texts a judge's model 'writes', in the order asked."""

    def __init__(self, texts):
        self.texts = list(texts)

    def __call__(self, items):
        out, self.texts = self.texts[:len(items)], self.texts[len(items):]
        return out


def test_reasoning_judge_maps_verdicts_back_to_the_pair(trained):
    from pair_pm.judge import ReasoningPairPMJudge

    out, _, _ = trained
    judge = ReasoningPairPMJudge.from_pretrained(str(out))
    judge.generate = Scripted([
        WELL_FORMED, "<verdict>B</verdict>",  # pair 0: a wins in both orders -> p 1, consistent
        "<verdict>A</verdict>", "<verdict>A</verdict>",  # pair 1: follows slot A -> p 0.5, inconsistent
        "<verdict>B</verdict>", "Response A.",  # pair 2: backward malformed -> failed
    ])
    v = judge.judge_pairs([("q", "a", "b")] * 3)
    assert (v[0].p_forward, v[0].p_backward, v[0].p, v[0].consistent) == (1.0, 1.0, 1.0, True)
    assert (v[1].p_forward, v[1].p_backward, v[1].p, v[1].consistent) == (1.0, 0.0, 0.5, False)
    assert v[2].p_forward == 0.0 and v[2].p_backward is None and v[2].p is None
    assert v[2].error == "unparsable verdict: missing verdict" and v[2].text_backward == "Response A."
    assert judge.failures.counts == {"unparsable verdict: missing verdict": 1}
    assert judge.verdict_stats["verdict A"] == 3 and judge.verdict_stats["malformed: missing verdict"] == 1
    assert judge.malformed_rate == pytest.approx(1 / 6)
    assert judge.last_item_info[1] == {"verdict_forward": "A", "verdict_backward": "A",
                                       "text_forward": "<verdict>A</verdict>", "text_backward": "<verdict>A</verdict>"}


def test_an_output_cut_by_the_token_budget_names_the_budget(trained):
    """An output that used every new token without a verdict fails as "no verdict within max_new_tokens N" (raise
    the budget), not as a missing verdict (the model's form)."""
    from pair_pm.judge import ReasoningPairPMJudge

    out, _, _ = trained
    judge = ReasoningPairPMJudge.from_pretrained(str(out), max_new_tokens=3)
    verdicts = judge.judge_pairs([("q", "a", "b"), ("another q", "c c", "d")])
    assert len(judge.last_budget_cut) == 4 and sum(judge.last_budget_cut) > 0  # the tiny model never stops in 3
    assert judge.verdict_stats["malformed: no verdict within max_new_tokens 3"] == sum(judge.last_budget_cut)
    assert all(v.p is None for v in verdicts)
    assert set(judge.failures.counts) <= {"unparsable verdict: no verdict within max_new_tokens 3",
                                          "unparsable verdict: missing verdict"}


def test_real_generation_is_greedy_and_batched_like_one_at_a_time(trained):
    from pair_pm.judge import ReasoningPairPMJudge

    out, _, _ = trained
    judge = ReasoningPairPMJudge.from_pretrained(str(out), batch_size=3)
    items = [("q " * k, "a", "b b " * k) for k in (1, 4, 7)]
    batched = judge.generate(items)
    judge.batch_size = 1
    assert judge.generate(items) == batched and all(isinstance(t, str) for t in batched)


def test_eval_reward_bench_scores_the_reasoning_checkpoint(trained, tmp_path):
    from eval.reward_bench import evaluate, make_parser

    out, data, _ = trained
    summary = evaluate(make_parser().parse_args(["--model", str(out), "--dataset", str(data / "test.jsonl"),
                                                 "--output_dir", str(tmp_path / "eval")]))
    assert summary["pairs"] == 3 and summary["failed_pairs"] == 3
    assert summary["judge_failures"]["total"] == 3
    rows = [json.loads(line) for line in (tmp_path / "eval" / "scores.jsonl").read_text().splitlines()]
    assert all(r["failed"] and r["verdict_forward"] is None and "text_forward" in r for r in rows)


def test_evaluate_reasoning_judge_summary():
    from types import SimpleNamespace

    from pair_pm.judge import ReasoningPairPMJudge
    from pair_pm.train_grpo import evaluate_reasoning_judge

    model = SimpleNamespace(config=SimpleNamespace(), eval=lambda: model, parameters=lambda: iter([torch.zeros(1)]))
    judge = ReasoningPairPMJudge(model, SimpleNamespace(pad_token_id=0), max_length=64, max_new_tokens=8)
    judge.generate = Scripted(["<verdict>A</verdict>", "<verdict>B</verdict>",  # right in both orders
                               "<verdict>A</verdict>", "<verdict>A</verdict>",  # follows the slot
                               "<verdict>B</verdict>", "<verdict>a</verdict>"])  # wrong, then malformed
    prefs = [_pref(i) for i in range(3)]
    res = evaluate_reasoning_judge(judge, prefs)
    assert res["pairs"] == 3 and res["accuracy"] == pytest.approx(1 / 3)
    assert res["accuracy_chosen_as_a"] == pytest.approx(2 / 3) and res["accuracy_chosen_as_b"] == pytest.approx(1 / 3)
    assert res["failed_pairs"] == 1 and res["order_inconsistency_rate"] == 0.5
    assert res["malformed_rate"] == pytest.approx(1 / 6) and res["malformed_by_reason"] == {"invalid verdict": 1}
    assert res["answer_a_rate"] == pytest.approx(3 / 5)


def test_format_warmup_targets_are_well_formed_and_label_free():
    from pair_pm.train_grpo import format_example

    for letter in "AB":
        text = format_example(GOOD, BAD, letter)
        parsed = parse_reasoning_verdict(text)
        assert parsed.verdict == letter and '"Sure, here is a..."' in parsed.reasoning
    assert format_example("one two", "three four five six seven.", "B") == (
        "<principles>A better response is helpful, honest and harmless, and answers what was asked.</principles>\n"
        '<critique>Response A says "one two". Response B says "three four five six...".</critique>\n'
        "<verdict>B</verdict>")
    assert parse_reasoning_verdict(format_example(GOOD, BAD, "A", words=0)).verdict == "A"


def test_format_warmup_targets_fit_the_generation_budget(tok):
    """A target longer than max_completion_length would teach an output that generation cuts before its verdict
    (SmolLM2's 64-token budget cut most of the first design's targets): quotes shrink to fit, else a clear error."""
    from pair_pm.train_grpo import fitted_words, format_example

    long_a, long_b = " ".join(WORDS * 5), " ".join(reversed(WORDS * 5))
    sizes = {w: len(tok(format_example(long_a, long_b, "A", words=w), add_special_tokens=False).input_ids)
             for w in (4, 2, 0)}
    assert sizes[4] > sizes[2] > sizes[0]
    assert fitted_words(tok, long_a, long_b, sizes[4] + 3) == 4
    assert fitted_words(tok, long_a, long_b, sizes[4] + 2) == 2
    assert fitted_words(tok, long_a, long_b, sizes[0] + 3) == 0
    with pytest.raises(ValueError, match=rf"needs {sizes[0] + 3} tokens, over max_completion_length {sizes[0] + 2}"):
        fitted_words(tok, long_a, long_b, sizes[0] + 2)


def test_format_warmup_batches_hold_both_letters_of_each_prompt(tmp_path, tiny_path, monkeypatch):
    """The warm-up trains each (pair, order) prompt with verdict A and verdict B in the same batch, so the letter's
    gradients cancel and GRPO starts from a model that samples both letters (a random letter per row, shuffled,
    left SmolLM2-135M writing "A" in every sampled verdict)."""
    from types import SimpleNamespace

    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pair_pm.train_grpo import format_warmup

    seen: list[list[str]] = []
    original = trl.SFTTrainer.compute_loss

    def record(self, model, inputs, *args, **kwargs):
        texts = self.processing_class.batch_decode(inputs["input_ids"], skip_special_tokens=True)
        seen.append([t.rstrip() for t in texts])
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(trl.SFTTrainer, "compute_loss", record)
    args = SimpleNamespace(per_device_train_batch_size=3, max_prompt_length=448, max_completion_length=160,
                           format_warmup_steps=3, format_warmup_learning_rate=1e-3, use_cpu=True, bf16=False,
                           activation_checkpointing=False, disable_tqdm=True, seed=1)  # the fields it reads
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    format_warmup(model, tokenizer, PREFS, args, tmp_path / "warm")
    assert len(seen) == 3 and all(len(batch) == 4 for batch in seen)  # an odd batch size is rounded up to even
    prompts = []
    for batch in seen:
        for with_a, with_b in zip(batch[::2], batch[1::2], strict=True):
            assert with_a.endswith("<verdict>A</verdict>") and with_b.endswith("<verdict>B</verdict>")
            assert with_a[: -len("A</verdict>")] == with_b[: -len("B</verdict>")]  # the same prompt and reasoning
            prompts.append(with_a)
    assert len(set(prompts)) == 6  # 6 distinct (pair, order) prompts in 12 rows: none repeated, none split


def test_non_reasoning_pair_pm_path_is_unchanged(tok):
    from pair_pm.prepare_data import QUESTION, encode_pair, fit_pair, user_message

    assert user_message("c", "a", "b").endswith(QUESTION)
    ids, cut = fit_pair(tok, "c", "a", "b", 128)
    assert ids == encode_pair(tok, "c", "a", "b", 128) and cut == ("c", "a", "b")


@pytest.mark.parametrize("name", ["smollm2-135m-grpo-cpu", "qwen2.5-14b-grpo-8xa100"])
def test_recipe_yamls_parse(name, tmp_path):
    from pair_pm.train_grpo import make_parser

    config = Path(__file__).resolve().parents[1] / "pair_pm" / "configs" / f"{name}.yaml"
    data_args, args, model_args = make_parser().parse_args_and_config(
        ["--config", str(config), "--output_dir", str(tmp_path), "--max_steps", "7"])
    assert model_args.model_name_or_path and data_args.dataset_name and args.max_steps == 7
    assert args.pair_grouping == "pair" and args.num_generations % 2 == 0
    assert args.generation_batch_size % args.num_generations == 0 and args.malformed_penalty == 1.0
    if name.startswith("qwen"):
        assert args.use_vllm and args.vllm_mode == "colocate" and args.format_warmup_steps == 0


def test_bench_dry_run_and_its_training_command_parse(tmp_path, capsys, monkeypatch):
    """bench/pair_pm_grpo.py (an hour: not run here): --dry_run prints the plan, and the train stage's command
    parses with the recipe's own parser into a run with the held-out curve and the consistency weight asked for."""
    import shlex

    from bench.pair_pm_grpo import main as bench_main
    from pair_pm.train_grpo import make_parser

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    bench_main(["--dry_run", "--runs", str(tmp_path / "runs"), "--consistency_weight", "0.25", "--curve_pairs", "12",
                "--eval_every", "4", "--max_steps", "8"])
    out = capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing run, nothing written
    cmd = shlex.split(next(line for line in out.splitlines() if line.startswith("[bench] train: $ "))[17:])
    assert cmd[1] == "pair_pm/train_grpo.py"
    data_args, args, _ = make_parser().parse_args_and_config(cmd[2:])
    assert args.consistency_weight == 0.25 and args.order_consistency and args.max_steps == 8
    assert args.eval_strategy == "steps" and args.eval_steps == 4 and args.eval_on_start
    assert data_args.dataset_test_split == "test" and data_args.max_eval_pairs == 12
    with pytest.raises(SystemExit):
        bench_main(["--dry_run", "--consistency_weight", "2"])


def test_bench_curve_table():
    from bench.pair_pm_grpo import curve_table

    point = {"strict_accuracy": 0.0, "order_flip_rate": 1.0, "malformed_rate": 0.5, "answer_a_rate": None,
             "pairs": 20.0}
    train = {"budget": {"train_pairs": 64, "max_steps": 6, "warmup_steps": 6, "consistency_weight": 0.5},
             "train_seconds": 400.0,
             "held_out_curve": [{"step": 0, **point}, {"step": 6, **point, "strict_accuracy": 0.25,
                                                         "order_flip_rate": None,
                                                         "ci95": {"strict_accuracy": [0.05, 0.45],
                                                                  "order_flip_rate": None}}]}
    sft = {"budget": "64 pairs", "hh_curve": {"strict_accuracy": 0.4, "order_flip_rate": 0.35}}
    table = curve_table(train, sft)
    assert "20 HH test pairs" in table and "64 training pairs, 6 GRPO steps" in table and "400 s" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| GRPO reasoning pair-PM | 0 | 0.0% | 100.0% | 50.0% | - |",
                    "| GRPO reasoning pair-PM | 6 | 25.0% [5.0, 45.0] | - | 50.0% | - |",
                    "| SFT pair-PM (64 pairs) | end | 40.0% | 35.0% | - | - |"]
    # a --data builtin run names its pairs so and compares with the SFT pair-PM on its own curve set
    builtin = {**train, "budget": {**train["budget"], "data": "builtin"}}
    table = curve_table(builtin, {**sft, "builtin_curve": {"strict_accuracy": 0.9, "order_flip_rate": 0.05}})
    assert "20 built-in test pairs" in table and "| end | 90.0% | 5.0% |" in table


@pytest.mark.slow
def test_real_smollm2_one_grpo_step_and_its_judge(tmp_path):
    """SmolLM2-135M-Instruct: one GRPO step (1 pair, 2 + 2 completions of 16 tokens), then judges.load on the
    checkpoint judging a pair in both orders. Under a minute on a 2-core CPU."""
    import judges
    from pair_pm import train_grpo as recipe
    from pair_pm.judge import ReasoningPairPMJudge
    from rm_core.models import SMOLLM2, resolve_model

    try:
        path = resolve_model(SMOLLM2)
    except Exception as e:  # no weights and no Hub here
        pytest.skip(f"SmolLM2 is not available offline: {e}")
    data = _data_dir(tmp_path, {"train": 2})
    out = tmp_path / "ckpt"
    argv = ["--config", str(Path(__file__).resolve().parents[1] / "pair_pm/configs/smollm2-135m-grpo-cpu.yaml"),
            "--model_name_or_path", str(path), "--dataset_name", str(data), "--dataset_test_split", "",
            "--output_dir", str(out), "--num_generations", "4", "--per_device_train_batch_size", "4",
            "--max_completion_length", "16", "--max_steps", "1", "--format_warmup_steps", "0",
            "--save_strategy", "no", "--disable_tqdm", "true"]
    results = recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    assert len(results["reward_curve"]) == 1 and -1.0 <= results["reward_curve"][0]["reward"] <= 1.1
    judge = judges.load(str(out))
    assert isinstance(judge, ReasoningPairPMJudge) and judge.max_new_tokens == 16
    verdict = judge.judge_pairs([("Say hello.", GOOD, BAD)])[0]
    assert isinstance(verdict.text_forward, str) and isinstance(verdict.text_backward, str)
    assert judge.verdict_stats["outputs"] == 2
    assert (verdict.p is None) == (judge.failures.total == 1)


def test_a_diverged_grpo_run_stops_and_is_not_marked_done(tmp_path, tiny_path):
    from pair_pm import train_grpo as recipe
    from rm_core.finite import TrainingDivergedError

    data = _data_dir(tmp_path, {"train": 8, "test": 3})
    out = tmp_path / "ckpt"
    argv = ["--model_name_or_path", str(tiny_path), "--dataset_name", str(data), "--output_dir", str(out),
            "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "4",
            "--max_prompt_length", "448", "--max_steps", "1", "--learning_rate", "1e38", "--save_strategy", "no",
            "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0",
            "--format_warmup_steps", "0"]
    with pytest.raises(TrainingDivergedError, match=r"first-token P\(A\) over the 3 held-out pairs.*NaN or inf"):
        recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    assert not (out / "config.json").exists() and not (out / "eval_results.json").exists()
    assert (out / "diverged" / "model.safetensors").is_file()
