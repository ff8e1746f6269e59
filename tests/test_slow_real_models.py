"""Real-model tests: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 on slices of ../shared/data (-m slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rm_core.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()

pytestmark = pytest.mark.slow
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data folder {SHARED} is absent")


@pytest.fixture(scope="module")
def smollm2_path():
    from rm_core.models import SMOLLM2, resolve_model

    return resolve_model(SMOLLM2)


def test_provisioned_smollm2_is_a_plain_working_folder(smollm2_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((Path(smollm2_path) / "config.json").read_text())
    assert "quantization_config" not in config  # a normal HF folder, no gguf needed to load it
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:])
    assert "Paris" in answer  # real pretrained weights, correctly de-quantised


@needs_data
def test_real_tokenizer_one_bos_and_shared_prefix_scoring_on_llmbar(smollm2_path):
    from rm_core.data import load_llmbar_as_reward_bench, to_preferences
    from rm_core.inference import score_pairs
    from rm_core.models import load_reward_model
    from rm_core.templates import render_ids

    model, tok = load_reward_model(smollm2_path)
    model.eval()
    prefs, skipped = to_preferences(load_llmbar_as_reward_bench(SHARED / "llmbar")[:4])
    assert skipped.total == 0
    pairs = [(render_ids(tok, p["prompt"] + p["chosen"], 512)[0], render_ids(tok, p["prompt"] + p["rejected"], 512)[0])
             for p in prefs]
    for c, _ in pairs:
        assert c.count(tok.bos_token_id) == c.count(tok.convert_tokens_to_ids("<|im_end|>"))  # one <|im_start|> per turn
        assert c[0] == tok.bos_token_id and c[1] != tok.bos_token_id
    shared = score_pairs(model, pairs, tok.pad_token_id, batch_size=2)
    with torch.inference_mode():
        whole = [(model(input_ids=torch.tensor([c])).logits.item(), model(input_ids=torch.tensor([r])).logits.item())
                 for c, r in pairs]
    assert torch.allclose(torch.tensor(shared), torch.tensor(whole), atol=1e-4)


def _train(tmp_path, config, extra):
    out = tmp_path / "ckpt"
    cmd = [sys.executable, "bradley_terry_rm/train.py", "--config", config, "--output_dir", str(out),
           "--save_strategy", "no", "--logging_steps", "5", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out, json.loads((out / "eval_results.json").read_text())


def _correct_per_pair(model_path, chat_template, n_test):
    """Per held-out pair, 1.0 when the chosen response scores above the rejected one (evaluate_pairs' strict rule),
    else 0.0; a base model gets the fresh reward head training starts from (seed 42, the configs' seed)."""
    from rm_core.builtin_data import build_builtin_preferences
    from rm_core.data import to_preferences
    from rm_core.inference import score_pairs
    from rm_core.models import load_reward_model
    from rm_core.templates import render_ids

    torch.manual_seed(42)
    model, tok = load_reward_model(model_path, chat_template=chat_template)
    prefs, _ = to_preferences(build_builtin_preferences()[1][:n_test])
    pairs = [(render_ids(tok, p["prompt"] + p["chosen"], 256)[0], render_ids(tok, p["prompt"] + p["rejected"], 256)[0])
             for p in prefs]
    return [1.0 if c > r else 0.0 for c, r in score_pairs(model.eval(), pairs, tok.pad_token_id, 16)]


def _assert_learned(untrained, trained, results, margin):
    """The recipe's held-out accuracy is the trained model's, above the untrained one's by `margin`, and the paired
    bootstrap interval of the difference (the same held-out pairs) excludes zero (issue 21)."""
    from rm_core.stats import paired_bootstrap

    before, after = sum(untrained) / len(untrained), sum(trained) / len(trained)
    assert after == pytest.approx(results["held_out"]["accuracy"], abs=1.01 / len(trained))  # batch padding: ~1e-6
    assert after > before + margin, (before, after)
    diff = paired_bootstrap(trained, untrained)
    print(f"held-out accuracy {after:.3f} vs untrained {before:.3f}: {diff['difference']:+.3f} "
          f"(95% CI {diff['low']:+.3f} .. {diff['high']:+.3f}, n={diff['n']})")
    assert diff["excludes_zero"] and diff["difference"] > 0, diff


@pytest.mark.heavy  # ~3 min on two busy cores; run_tests.sh's CI pass keeps the SmolLM2 learning test above
def test_minilm_bt_training_beats_untrained(tmp_path):
    from rm_core.models import MINILM, resolve_model

    path = resolve_model(MINILM)
    before = _correct_per_pair(path, "plain", 120)
    ckpt, results = _train(tmp_path, "bradley_terry_rm/configs/minilm-l6-cpu.yaml",
                           ["--model_name_or_path", path, "--max_train_pairs", "480", "--max_eval_pairs", "120",
                            "--num_train_epochs", "1"])
    _assert_learned(before, _correct_per_pair(str(ckpt), "plain", 120), results, 0.15)


def test_smollm2_bt_training_beats_untrained(tmp_path, smollm2_path):
    before = _correct_per_pair(smollm2_path, None, 64)
    ckpt, results = _train(tmp_path, "bradley_terry_rm/configs/smollm2-135m-cpu.yaml",
                           ["--model_name_or_path", smollm2_path, "--max_train_pairs", "48",
                            "--max_eval_pairs", "64", "--learning_rate", "1e-4"])
    _assert_learned(before, _correct_per_pair(str(ckpt), None, 64), results, 0.1)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["rm_family"] == "bradley_terry" and config["reward_std"] > 0


@needs_data
def test_eval_reward_bench_on_llmbar_slice_with_smollm2(tmp_path, smollm2_path):
    out = tmp_path / "eval"
    subprocess.run([sys.executable, "-m", "eval.reward_bench", "--model", smollm2_path, "--family", "bradley_terry", "--dataset",
                    str(SHARED / "llmbar"), "--limit", "24", "--output_dir", str(out), "--max_length", "512"],
                   check=True, cwd=ROOT)
    results = json.loads((out / "results.json").read_text())
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert results["pairs"] == len(scores) == 24
    correct = sum(s["chosen_score"] > s["rejected_score"] for s in scores)
    assert results["subsets"]["llmbar-natural"]["correct"] == correct


@needs_data
def test_pair_pm_template_and_scoring_on_smollm2_with_hh_pairs(smollm2_path):
    """The pair-PM path on the real tokenizer and weights: single-token answers after SmolLM2's generation
    prompt, long HH pairs fitted without losing the answer slot, and the order-debiased identity."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pair_pm.judge import PairPMJudge
    from pair_pm.prepare_data import TruncationReport, answer_token_ids, encode_pair
    from rm_core.data import hh_split, read_rows, to_preferences
    from rm_core.templates import ensure_pad_token

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    ids = answer_token_ids(tok)
    assert tok.convert_ids_to_tokens([ids["A"], ids["B"]]) == ["A", "B"]
    prefs, _ = to_preferences(hh_split(read_rows(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"))[1][:40])
    report = TruncationReport()
    for p in prefs:
        seq = encode_pair(tok, p["prompt"][0]["content"] * 3, p["chosen"][-1]["content"],
                          p["rejected"][-1]["content"], 256, report)
        assert len(seq) <= 255 and tok.decode(seq[-4:]).endswith("<|im_start|>assistant\n")
    assert report.truncated > 0  # tripled prompts do not fit 256: they were cut, not dropped
    model = AutoModelForCausalLM.from_pretrained(smollm2_path)
    ensure_pad_token(tok, model)
    judge = PairPMJudge(model, tok, max_length=512)
    items = [(p["prompt"], p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in prefs[:3]]
    verdicts = judge.judge_pairs(items)
    swapped = judge.compare_batch([(q, b, a) for q, a, b in items])
    for v, s in zip(verdicts, swapped):
        assert 0 < v.p_forward < 1 and 0 < v.p_backward < 1
        assert v.p == pytest.approx(1 - s, abs=1e-5)  # debiased: swapping the responses gives 1 - p
