"""pair_pm: the pairwise chat data (both orders, truncation inside the responses), the order-debiased
scoring, and end-to-end training on a tiny backbone that learns a surface rule."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from pair_pm.prepare_data import (
    TruncationReport,
    answer_token_ids,
    build_dataset,
    encode_pair,
    pair_examples,
    user_message,
)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD = "Sure, here is a short answer in one word."
BAD = "I cannot help with that request."


@pytest.fixture(scope="module")
def tok():
    from rm_core.testing import tiny_tokenizer

    return tiny_tokenizer()


def _pref(prompt="What is 2 + 3?", chosen="The answer is 5.", rejected="no", **extra):
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "id": "x", "subset": "", **extra}


def test_both_orders_and_ties(tok):
    rows = pair_examples(_pref())
    assert [(a, b, ans) for _, a, b, ans in rows] == [("The answer is 5.", "no", "A"), ("no", "The answer is 5.", "B")]
    tie_rows = pair_examples(_pref(tie=True))
    assert sorted((a, ans) for _, a, _, ans in tie_rows) == [("The answer is 5.", "A"), ("The answer is 5.", "B"),
                                                              ("no", "A"), ("no", "B")]
    ds, report = build_dataset([_pref(), _pref(tie=True)], tok, 256)
    ids = answer_token_ids(tok)
    assert len(ds) == 6 and report.truncated == 0
    for row in ds:
        assert row["completion_mask"] == [0] * (len(row["input_ids"]) - 1) + [1]  # loss on the answer only
    assert [row["input_ids"][-1] for row in ds][:2] == [ids["A"], ids["B"]]


def test_answer_is_one_token_after_the_generation_prompt(tok):
    ids = answer_token_ids(tok)
    prompt_ids = encode_pair(tok, "q", "a", "b", 256)
    text = tok.decode(prompt_ids + [ids["A"]])
    assert text.endswith("<|im_start|>assistant\nA") and ids["A"] != ids["B"]


def test_truncation_cuts_inside_context_and_responses_never_the_answer_slot(tok):
    long_ctx = " ".join(WORDS * 20)
    long_a, long_b = "hello " * 200, "world " * 50
    report = TruncationReport()
    ids = encode_pair(tok, long_ctx, long_a, long_b, 160, report)
    assert len(ids) <= 159  # room for the answer token
    text = tok.decode(ids)
    for marker in ("[CONTEXT]", "[RESPONSE A]", "[RESPONSE B]", "[QUESTION]"):
        assert marker in text
    assert text.endswith("Answer with one letter.<|im_end|>\n<|im_start|>assistant\n")
    assert report.truncated == 1 and report.context_cut == 1 and report.response_cut == 2
    assert text.count("…") == 3
    # the context keeps its END (nearest the responses); responses keep their START
    ctx = text.split("[CONTEXT]\n")[1].split("\n\n[RESPONSE A]")[0]
    assert ctx.startswith("…") and long_ctx.endswith(ctx[1:])
    short = TruncationReport()
    encode_pair(tok, "q", "a", "b", 160, short)
    assert short.truncated == 0 and short.sequences == 1
    with pytest.raises(ValueError, match="leaves no room for the pair-PM template"):
        encode_pair(tok, long_ctx, long_a, long_b, 40)


def test_a_pair_whose_responses_differ_only_past_the_cut_is_dropped_and_counted(tok):
    """Two long solutions alike but for their last words (a final answer): cut to fit, the model would be taught
    to answer A, then B, for the same two texts; dropped, counted (pair_pm and its GRPO path)."""
    from pair_pm.train_grpo import build_grpo_dataset

    same_start = " ".join(WORDS * 30)
    prefs = [_pref(chosen=same_start + " so it is 5", rejected=same_start + " so it is 7"), _pref()]
    ds, report = build_dataset(prefs, tok, 160)
    assert len(ds) == 2 and report.identical_after_cut == 2  # both orders of the first pair
    assert "2 dropped: the two responses the same once cut" in str(report)
    grpo, grpo_report, _ = build_grpo_dataset(prefs, tok, 400)  # its reasoning template is longer
    assert len(grpo) == 2 and grpo_report.identical_after_cut == 1 and set(grpo["order"]) == {"forward", "backward"}


def test_user_message_layout():
    msg = user_message("ctx", "first", "second")
    assert msg.index("[CONTEXT]\nctx") < msg.index("[RESPONSE A]\nfirst") < msg.index("[RESPONSE B]\nsecond")
    assert msg.endswith("Which response is better, A or B? Answer with one letter.")


@pytest.fixture(scope="module")
def tiny_lm(tok):
    from transformers import LlamaForCausalLM

    from rm_core.testing import tiny_llama_config

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(len(tok))).eval()


def test_first_probs_batched_left_padding_equals_one_at_a_time(tok, tiny_lm):
    from pair_pm.judge import first_probs

    ids = answer_token_ids(tok)
    seqs = [encode_pair(tok, "q " * k, "a", "b b " * k, 256) for k in (1, 5, 9)]
    batched = first_probs(tiny_lm, seqs, tok.pad_token_id, ids, batch_size=3)
    for seq, p in zip(seqs, batched):
        logits = tiny_lm(input_ids=torch.tensor([seq])).logits[0, -1]
        expected = torch.softmax(logits[[ids["A"], ids["B"]]], dim=-1)[0].item()
        assert p == pytest.approx(expected, abs=1e-5)


def test_judge_debiases_by_averaging_both_orders(tok, tiny_lm):
    from pair_pm.judge import PairPMJudge

    judge = PairPMJudge(tiny_lm, tok, max_length=256)
    items = [("What is 2 + 3?", "The answer is 5.", "no"), ("Say hello.", "hello world", "the fox")]
    verdicts = judge.judge_pairs(items)
    one_order = judge.first_probs([(p, a, b) for p, a, b in items] + [(p, b, a) for p, a, b in items])
    for i, v in enumerate(verdicts):
        assert v.p_forward == pytest.approx(one_order[i]) and v.p_backward == pytest.approx(1 - one_order[2 + i])
        assert v.p == pytest.approx((one_order[i] + 1 - one_order[2 + i]) / 2)
    swapped = judge.compare_batch([(p, b, a) for p, a, b in items])
    assert [1 - s for s in swapped] == pytest.approx([v.p for v in verdicts])  # order-free by construction
    assert len(judge.rank("q", ["a", "bb", "ccc"])) == 3


def test_a_pair_whose_sides_part_before_the_last_turn_keeps_every_turn(tok, tiny_lm):
    """Some HH-RLHF pairs differ from an earlier turn on, so each side is several messages (judges.base.response_of
    gives a list). Training rows and the judge read every turn, labelled, even where the pair must be cut (a list
    once reached the tokenizer there and stopped a reference run at HH test pair 400)."""
    from judges.base import response_of
    from pair_pm.judge import PairPMJudge

    turns = lambda reply, follow: [{"role": "assistant", "content": reply}, {"role": "user", "content": follow},  # noqa: E731
                                   {"role": "assistant", "content": "final " + reply}]
    pref = {"prompt": [{"role": "user", "content": "Tell me."}], "chosen": turns("yes " * 40, "why?"),
            "rejected": turns("no " * 40, "how?"), "id": "m", "subset": ""}
    (_, a, b, _), _ = pair_examples(pref)
    assert a.startswith("Assistant: yes") and "\n\nUser: why?\n\nAssistant: final yes" in a and "User: how?" in b
    judge = PairPMJudge(tiny_lm, tok, max_length=200)  # shorter than the pair: the cutting path
    (verdict,) = judge.judge_pairs([(pref["prompt"], response_of(pref["chosen"]), response_of(pref["rejected"]))])
    assert 0.0 < verdict.p < 1.0 and judge.truncation.truncated > 0
    assert judge.judge_pairs([(pref["prompt"], a, b)])[0].p == pytest.approx(verdict.p)  # the same text either way


# ------------------------------------------------------------------ end to end


def _rows(n: int, tag: str, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        rows.append({"id": f"{tag}-{i}", "prompt": prompt, "chosen": GOOD, "rejected": BAD})
    return rows


def _backbone_and_data(tmp_path: Path, sizes: dict[str, int], seed: int) -> tuple[Path, Path]:
    """A tiny causal-LM folder and a data folder of surface-rule pairs ({split}.jsonl)."""
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base", seed=0)
    rng = random.Random(seed)
    data = tmp_path / "data"
    data.mkdir()
    for split, n in sizes.items():
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(n, split, rng)))
    return base, data


def test_training_learns_and_the_checkpoint_is_a_pair_pm_judge(tmp_path):
    import judges
    from eval.reward_bench import evaluate, make_parser
    from pair_pm.judge import PairPMJudge

    base, data = _backbone_and_data(tmp_path, {"train": 32, "test": 12}, seed=0)
    from pair_pm import train as recipe

    out = tmp_path / "pm"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--num_train_epochs", "15",
            "--max_length", "128", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
            "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", "--activation_checkpointing", "false"]
    results = recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    held = results["held_out"]
    assert held["pairs"] == 12 and held["accuracy"] == 1.0  # the surface rule is learnt in both positions
    assert held["accuracy_chosen_as_a"] == held["accuracy_chosen_as_b"] == 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["rm_family"] == "pair_pm" and config["pair_pm_template"] == "pair-pm-v1"
    judge = judges.load(str(out))
    assert isinstance(judge, PairPMJudge) and not judge.pointwise
    assert judge.compare("hello", GOOD, BAD) > 0.5 > judge.compare("hello", BAD, GOOD)
    summary = evaluate(make_parser().parse_args(["--model", str(out), "--dataset", str(data / "test.jsonl"),
                                                 "--output_dir", str(tmp_path / "eval")]))
    assert summary["pairs"] == 12 and sum(s["correct"] for s in summary["subsets"].values()) == 12


def test_ssrm_pseudo_labels_are_applied_and_thresholded():
    from pair_pm.ssrm import pseudo_label, select_pseudo_labels

    unlabelled = [_pref(chosen=f"good {i}", rejected=f"bad {i}") | {"id": str(i)} for i in range(5)]
    ps = [0.95, 0.1, 0.55, None, 0.2]  # P(true chosen better) from the model
    keep, threshold = select_pseudo_labels(ps, confidence=0.8, quantile=None)
    assert keep == [0, 1, 4] and threshold == 0.8  # confident either way; a failed pair is never kept
    rows, stats = pseudo_label(unlabelled, ps, keep)
    # the model's preference is applied: pairs 1 and 4 are swapped, so they now carry a WRONG label
    assert [r["chosen"][0]["content"] for r in rows] == ["good 0", "bad 1", "bad 4"]
    assert stats == {"kept": 3, "of": 5, "no_preference": 0, "pseudo_label_accuracy": 1 / 3}
    keep_q, thr_q = select_pseudo_labels(ps, confidence=None, quantile=0.5)
    assert thr_q == 0.9 and keep_q == [0, 1]  # confidences .55 .8 .9 .95 sorted: the top half is kept
    with pytest.raises(ValueError, match="confidence must be in"):
        select_pseudo_labels(ps, confidence=0.3, quantile=None)
    # p = 0.5 exactly (the same P(A) in both orders) is no preference: never kept, never labelled "rejected wins"
    tied = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9]
    assert select_pseudo_labels(tied, confidence=0.5, quantile=None) == ([6, 7, 8, 9], 0.5)
    # the top half of the pairs with a preference, exactly: confidences tied at the threshold do not all pass
    keep_t, thr_t = select_pseudo_labels([0.6, 0.4, 0.6, 0.6, 0.9, 0.05], None, 0.5)
    assert keep_t == [0, 4, 5] and thr_t == 0.6  # .95 .9 then the first of the four .6: 3 of 6
    assert pseudo_label(unlabelled, [0.5, 0.9, 0.1, 0.5, None], [1, 2])[1]["no_preference"] == 2


@pytest.mark.parametrize("fraction", [0.0, -0.2, 1.0])
def test_ssrm_refuses_a_labelled_fraction_outside_0_1(fraction):
    from pair_pm.ssrm import SSRMArguments, run_ssrm
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match=r"--labelled_fraction must be in \(0, 1\)"):  # 0 became one pair
        run_ssrm(None, None, None, SSRMArguments(labelled_fraction=fraction))


def test_ssrm_rounds_end_to_end_and_resume(tmp_path):
    from pair_pm.ssrm import make_parser, run_ssrm

    base, data = _backbone_and_data(tmp_path, {"train": 40, "test": 8}, seed=1)
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(tmp_path / "ssrm"),
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--num_train_epochs", "10",
            "--max_length", "128", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            "--use_cpu", "true", "--seed", "0", "--labelled_fraction", "0.4", "--rounds", "1",
            "--confidence_quantile", "0.5"]
    summary = run_ssrm(*make_parser().parse_args_and_config(argv))
    r0, r1 = summary["rounds"]
    assert (summary["labelled"], summary["unlabelled"]) == (16, 24)
    assert r0["train_pairs"] == 16 and r1["pseudo"]["kept"] >= 12 and r1["train_pairs"] == 16 + r1["pseudo"]["kept"]
    assert r1["pseudo"]["pseudo_label_accuracy"] == 1.0  # round 0 learnt the rule, so its labels are right
    assert r1["test"]["accuracy"] == 1.0
    # a second call finds every round done and trains nothing
    again = run_ssrm(*make_parser().parse_args_and_config(argv))
    assert again["rounds"] == summary["rounds"]
    # the finished rounds belong to these settings and pairs: another threshold or data set is refused, not mixed
    from rm_core.resume import ResumeError

    with pytest.raises(ResumeError, match=r"SSRM run .*ssrm was built with other inputs \(ssrm.confidence_quantile 0.5 -> 0.25\)"):
        run_ssrm(*make_parser().parse_args_and_config(argv + ["--confidence_quantile", "0.25"]))
    other = tmp_path / "other"
    shutil.copytree(data, other)
    lines = (data / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (other / "train.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")  # one pair fewer
    with pytest.raises(ResumeError, match=r"pairs_sha256 "):
        run_ssrm(*make_parser().parse_args_and_config(argv + ["--dataset_name", str(other)]))
    with pytest.raises(ResumeError, match=r"training.model.use_peft false -> true"):  # a model option, as LoRA
        run_ssrm(*make_parser().parse_args_and_config(argv + ["--use_peft", "true"]))


def test_answer_position_loss_equals_full_logits_cross_entropy(tok, tiny_lm):
    from types import SimpleNamespace

    from pair_pm.train import PairPMTrainer
    from rm_core.data import to_preferences

    prefs, _ = to_preferences([{"prompt": "q", "chosen": "a b c", "rejected": "d"},
                               {"prompt": "a much longer question here", "chosen": "x", "rejected": "y z"}])
    ds, _ = build_dataset(prefs, tok, 256)
    width = max(len(r["input_ids"]) for r in ds)
    ids = torch.full((len(ds), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, r in enumerate(ds):  # right padding, as TRL's collator does
        n = len(r["input_ids"])
        ids[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), 1
        labels[i, n - 1] = r["input_ids"][-1]
    loss = PairPMTrainer.compute_loss(SimpleNamespace(), tiny_lm, {"input_ids": ids, "attention_mask": mask,
                                                                    "labels": labels})
    logits = tiny_lm(input_ids=ids, attention_mask=mask).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    labels[0, 3] = 5  # a second labelled token in a row is a data bug, not silently averaged
    with pytest.raises(ValueError, match="exactly one answer token"):
        PairPMTrainer.compute_loss(SimpleNamespace(), tiny_lm, {"input_ids": ids, "attention_mask": mask,
                                                                 "labels": labels})


def test_lora_training_merges_into_a_plain_causal_lm(tmp_path):
    from transformers import AutoModelForCausalLM

    import judges
    from pair_pm import train as recipe

    base, data = _backbone_and_data(tmp_path, {"train": 16, "test": 4}, seed=2)
    out = tmp_path / "lora"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--learning_rate", "1e-2", "--max_steps", "4", "--max_length", "128",
            "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true",
            "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj", "v_proj"]
    recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    assert (out / "lora_adapter" / "adapter_config.json").is_file() and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    original = AutoModelForCausalLM.from_pretrained(base)
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_merged, original.model.layers[0].self_attn.q_proj.weight)  # the adapter is merged in
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight)
    assert judges.load(str(out)).compare("hi", GOOD, BAD) is not None


# ------------------------------------------------------------------ NaN and inf are failures


def test_a_nan_pair_pm_gives_counted_failures_on_every_path(tok):
    import math

    from transformers import LlamaForCausalLM

    from eval.runner import pair_verdicts
    from pair_pm.judge import PairPMJudge
    from rm_core.testing import tiny_llama_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(tok))).eval()
    with torch.no_grad():
        model.model.norm.weight.fill_(math.nan)  # every logit NaN, as after a diverged step
    judge = PairPMJudge(model, tok, max_length=256, batch_size=2)
    items = [("What is 2 + 3?", "The answer is 5.", "no"), ("Say hello.", "hello world", "the fox")]
    verdicts = judge.judge_pairs(items)  # the batched path eval_* and the recipes use
    assert [(v.p_forward, v.p_backward, v.p) for v in verdicts] == [(None, None, None)] * 2
    assert judge.failures.counts == {"non-finite score": 2}
    assert [v.p for v in pair_verdicts(judge, items)] == [None, None]
    assert judge.compare_batch(items) == [None, None] and judge.compare("q", "a", "b") is None
    assert judge.rank("q", ["a", "bb", "ccc"]) == [None, None, None]
    assert judge.failures.counts == {"non-finite score": 2 + 2 + 2 + 1 + 3}


def test_a_diverged_pair_pm_run_stops_and_is_not_marked_done(tmp_path):
    from pair_pm import train as recipe
    from rm_core.finite import TrainingDivergedError

    # (at 1e30 this tiny LM's one step leaves weights near 1e30 whose logits collapse to exactly 0: finite)
    base, data = _backbone_and_data(tmp_path, {"train": 16}, seed=0)
    out = tmp_path / "pm"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--dataset_test_split", "", "--per_device_train_batch_size", "8", "--learning_rate", "1e38",
            "--max_steps", "1", "--max_length", "128", "--save_strategy", "no", "--report_to", "none",
            "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", "--activation_checkpointing", "false"]
    with pytest.raises(TrainingDivergedError, match=r"P\(A\) over the 16 first training pairs.*NaN or infinite"):
        recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    assert not (out / "config.json").exists() and not (out / "eval_results.json").exists()
    assert (out / "diverged" / "model.safetensors").is_file()


def _pm_argv(base, data, out, *extra):
    return ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "1", "--max_length", "128", "--save_strategy", "no",
            "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0",
            "--activation_checkpointing", "false", *extra]


def test_a_max_length_without_room_for_the_template_is_one_line_before_weights_or_data(tmp_path, monkeypatch, capsys):
    """--max_length below the template (95 tokens with the tiny tokenizer, plus the room fit_pair needs): one
    line naming it, exit 2, from the tokenizer alone: no weights are loaded (train), no data is read (prepare)."""
    import rm_core.models
    from pair_pm import prepare_data
    from pair_pm import train as recipe
    from rm_core.errors import run_cli

    base, data = _backbone_and_data(tmp_path, {"train": 4}, seed=0)

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded before the max_length check")

    monkeypatch.setattr(rm_core.models, "load_causal_lm", no_weights)
    capsys.readouterr()  # what saving the backbone printed
    message = "error: max_length 113 leaves no room for the pair-PM template (95 tokens)"
    with pytest.raises(SystemExit) as exit_:
        run_cli(recipe.main, *recipe.make_parser().parse_args_and_config(
            _pm_argv(base, data, tmp_path / "pm", "--max_length", "113")))
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines() == [message]
    with pytest.raises(SystemExit) as exit_:  # the data set does not exist: the template check comes first
        run_cli(prepare_data.main, ["--dataset_name", str(tmp_path / "nope.jsonl"), "--model_name_or_path",
                                    str(base), "--max_length", "113", "--output_dir", str(tmp_path / "prep")])
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "prep").exists()


def test_pair_pm_train_and_prepare_print_the_skipped_rows(tmp_path, capsys):
    """rm-train-pair-pm and rm-prepare-pair-pm print how many rows were skipped (as BT and ODIN do)."""
    from pair_pm import prepare_data
    from pair_pm import train as recipe

    base, data = _backbone_and_data(tmp_path, {"train": 6, "test": 2}, seed=0)
    with (data / "train.jsonl").open("a") as f:
        f.write(json.dumps({"id": "bad-empty", "prompt": "x", "chosen": "", "rejected": BAD}) + "\n")
        f.write(json.dumps({"id": "bad-same", "prompt": "y", "chosen": GOOD, "rejected": GOOD}) + "\n")
    recipe.main(*recipe.make_parser().parse_args_and_config(_pm_argv(base, data, tmp_path / "pm")))
    assert (f"[data] {data}: 6 train pairs -> 12 examples; 0 of 12 sequences truncated (context cut 0, responses "
            "cut 0); 2 held-out pairs; skipped 2 train / 0 held-out rows") in capsys.readouterr().out.splitlines()
    prepare_data.main(["--dataset_name", str(data), "--model_name_or_path", str(base), "--max_length", "128",
                       "--output_dir", str(tmp_path / "prep")])
    lines = capsys.readouterr().out.splitlines()
    assert f"[data] {data}: 6 train / 2 held-out pairs; skipped 2 train / 0 held-out rows" in lines
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    assert report["train_skipped"]["skipped"] == 2 and report["train_skipped"]["by_reason"] == {
        "chosen is an empty response": 1, "chosen and rejected are identical": 1}


def test_prepare_leaves_out_what_train_drops_as_identical_once_cut(tmp_path):
    """rm-prepare-pair-pm writes the examples train.py trains on: not a pair whose responses differ only past the
    cut (it wrote both orders, "A" then "B", for the same two texts)."""
    from pair_pm import prepare_data

    base, data = _backbone_and_data(tmp_path, {"train": 3, "test": 1}, seed=0)
    same_start = " ".join(WORDS * 30)
    with (data / "train.jsonl").open("a") as f:
        f.write(json.dumps({"id": "long", "prompt": "What is 2 + 3?", "chosen": same_start + " so it is 5",
                            "rejected": same_start + " so it is 7"}) + "\n")
    prepare_data.main(["--dataset_name", str(data), "--model_name_or_path", str(base), "--max_length", "160",
                       "--output_dir", str(tmp_path / "prep")])
    rows = [json.loads(x) for x in (tmp_path / "prep" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and "long" not in {r["id"] for r in rows}  # 3 pairs x 2 orders
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    assert report["train_truncation"]["identical_after_cut"] == 2


def test_a_non_finite_pair_pm_loss_stops_training_naming_the_step():
    """As every other recipe: NaN weights must not be trained on and saved as checkpoints until the last step."""
    from types import SimpleNamespace

    from pair_pm.train import PairPMTrainer
    from rm_core.trainer import NonFiniteLossError

    def nan_model(input_ids, attention_mask=None, use_cache=False, logits_to_keep=None):
        keep = logits_to_keep if isinstance(logits_to_keep, int) else len(logits_to_keep)
        return SimpleNamespace(logits=torch.full((input_ids.shape[0], keep, 8), float("nan")))

    labels = torch.full((2, 5), -100)
    labels[:, 4] = 3  # one answer token per row
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=7))
    with pytest.raises(NonFiniteLossError, match="step 7"):
        PairPMTrainer.compute_loss(trainer, nan_model, {"input_ids": torch.ones(2, 5, dtype=torch.long),
                                                        "labels": labels})
