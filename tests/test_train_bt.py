"""End-to-end Bradley-Terry training (bradley_terry_rm/train.py: make_parser + main) on a tiny backbone.

The data are learnable from the surface: every chosen response ends with one phrase and every rejected one
with another. The runs are a few optimizer steps each, in-process (one TRL import for the whole file).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # 2 shared cores: oversubscribed threads make tiny models 10x slower

REPO = Path(__file__).resolve().parents[1]
SEED = 1234
MAX_LENGTH = 64
WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD_END = "Sure, here is a short answer in one word."
BAD_END = "I cannot help with that request."


def _load_recipe():
    from bradley_terry_rm import train

    return train


def _rows(n: int, tag: str, rng: random.Random, long_every: int | None = None) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        if long_every and i % long_every == 0:
            prompt = (prompt + " ") * 30  # far longer than MAX_LENGTH tokens
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        rows.append({"id": f"{tag}-{i}", "prompt": prompt, "chosen": f"{filler} {GOOD_END}",
                     "rejected": f"{filler} {BAD_END}"})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _untrained_model(base: Path):
    """The same randomly initialised reward head the recipe starts from (seeded identically)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rm_core.templates import ensure_pad_token

    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32).eval()
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from rm_core.data import to_preferences
    from rm_core.pipeline import evaluate_pairs
    from rm_core.testing import save_tiny_backbone

    root = tmp_path_factory.mktemp("bt")
    base = save_tiny_backbone(root / "base", seed=0)
    rng = random.Random(0)
    train = _rows(48, "train", rng, long_every=4)  # 12 of 48 pairs longer than MAX_LENGTH
    test = _rows(24, "test", rng)
    # Orient the data so that the untrained model is at most at chance on the held-out pairs.
    model, tokenizer = _untrained_model(base)
    before = evaluate_pairs(model, tokenizer, to_preferences(test)[0], MAX_LENGTH)["accuracy"]
    if before > 0.5:
        for row in train + test:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
        before = evaluate_pairs(model, tokenizer, to_preferences(test)[0], MAX_LENGTH)["accuracy"]
    assert before <= 0.5
    data = root / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", train)
    _write_jsonl(data / "test.jsonl", test)
    return {"root": root, "base": base, "data": data, "train": train, "test": test, "before": before,
            "recipe": _load_recipe()}


def _train(env, out: Path, *extra: str) -> dict:
    recipe = env["recipe"]
    argv = ["--model_name_or_path", str(env["base"]), "--dataset_name", str(env["data"]),
            "--output_dir", str(out), "--per_device_train_batch_size", "8", "--learning_rate", "2e-3",
            "--logging_steps", "1", "--max_length", str(MAX_LENGTH), "--activation_checkpointing", "false",
            "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", *extra]
    if "--report_to" not in extra:
        argv += ["--report_to", "none"]
    if "--save_strategy" not in extra:
        argv += ["--save_strategy", "no"]
    torch.manual_seed(SEED)
    return recipe.main(*recipe.make_parser().parse_args_and_config(argv))


def test_bt_training_learns_and_writes_a_self_describing_checkpoint(env):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from rm_core.data import to_preferences
    from rm_core.pipeline import evaluate_pairs
    from rm_core.templates import tokenize_messages
    from rm_core.testing import CHATML_TEMPLATE

    out = env["root"] / "full"
    results = _train(env, out, "--num_train_epochs", "2", "--save_strategy", "epoch")

    # learned: held-out accuracy well above the untrained model's
    after = results["held_out"]["accuracy"]
    assert after > env["before"]
    assert after >= 0.9

    # the numbers in eval_results.json are the saved checkpoint's, recomputed independently here
    saved = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))
    assert saved["held_out"]["accuracy"] == pytest.approx(after)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    recomputed = evaluate_pairs(model, tokenizer, to_preferences(env["test"])[0], MAX_LENGTH)
    assert recomputed["accuracy"] == pytest.approx(after)
    assert recomputed["reward_mean"] == pytest.approx(saved["held_out"]["reward_mean"], abs=1e-5)

    # self-describing config.json
    config = AutoConfig.from_pretrained(out)
    assert config.rm_family == "bradley_terry"
    assert config.rm_chat_template == CHATML_TEMPLATE
    assert config.reward_mean == pytest.approx(saved["held_out"]["reward_mean"])
    assert config.reward_std == pytest.approx(saved["held_out"]["reward_std"])
    assert config.reward_std > 0
    assert config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id

    # model card carries the held-out accuracy
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| held-out accuracy | {after:.4f} |" in card
    low, high = results["held_out"]["accuracy_ci95"]
    assert low <= after <= high  # its 95% interval beside it, on the card too
    assert f"| held-out accuracy_ci95 | {[low, high]} |" in card
    assert "bradley_terry" in card

    # truncation: long pairs are cut and counted, never dropped
    expected_truncated = sum(
        any(len(tokenize_messages(tokenizer, [{"role": "user", "content": r["prompt"]},
                                              {"role": "assistant", "content": r[side]}])) > MAX_LENGTH
            for side in ("chosen", "rejected"))
        for r in env["train"])
    assert expected_truncated == 12
    assert saved["data"]["train_pairs"] == 48
    assert saved["data"]["train_truncated"] == expected_truncated
    assert f"| truncated train pairs | {expected_truncated} |" in card
    assert "| skipped train rows | 0 |" in card

    from rm_core.data import SkipReport
    from rm_core.pipeline import skipped_text

    report = SkipReport()
    for reason in ("chosen is an empty response", "margin is not a finite number", "chosen is an empty response"):
        report.add(reason, "row")
    assert skipped_text(report.as_dict()) == "3 (2 chosen is an empty response, 1 margin is not a finite number)"
    # all 48 pairs were trained on: 48 / 8 = 6 steps per epoch (dropping the 12 long pairs would give 5)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-6"]
    state = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 12


def test_lora_run_writes_a_merged_model_and_the_adapter(env):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    out = env["root"] / "lora"
    results = _train(env, out, "--max_steps", "6", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
                     "--learning_rate", "5e-3")
    assert not (out / "adapter_config.json").exists()  # a plain model folder at the top
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    adapter = out / "lora_adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["r"] == 4 and adapter_config["task_type"] == "SEQ_CLS"
    assert AutoConfig.from_pretrained(out).rm_family == "bradley_terry"

    merged = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    base_lm = AutoModelForCausalLM.from_pretrained(env["base"], dtype=torch.float32)
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    q_base = base_lm.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q_merged, q_base)  # the LoRA update was merged in
    torch.testing.assert_close(merged.model.embed_tokens.weight, base_lm.model.embed_tokens.weight)

    # merged model == base + adapter
    base, tokenizer = _untrained_model(env["base"])
    with_adapter = PeftModel.from_pretrained(base, str(adapter)).eval()
    ids = torch.tensor([tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}, {"role": "assistant", "content": BAD_END}], tokenize=True,
        return_dict=True)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-4)
    assert results["held_out"]["pairs"] == 24


def test_resume_continues_from_the_last_checkpoint(env):
    out = env["root"] / "resume"
    _train(env, out, "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    state_path = out / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_path.read_text(encoding="utf-8"))
    assert state["global_step"] == 4
    # Mark checkpoint-4's state: a resumed run carries its log history on; a fresh start would not.
    state["log_history"][-1]["resume_probe"] = 1
    state_path.write_text(json.dumps(state), encoding="utf-8")
    first_weights = out / "checkpoint-2" / "model.safetensors"
    mtime = first_weights.stat().st_mtime_ns

    # A resume with another learning rate (the Trainer would restore the old one from the scheduler's state anyway),
    # other training rows or another base model would train one run's weights on another's inputs: refused.
    from rm_core.resume import ResumeError

    resume = ("--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2", "--resume_from_checkpoint", "auto")
    with pytest.raises(ResumeError, match=r"checkpoint-4 was trained with other inputs \(settings.learning_rate "
                                          r"0.002 -> 0.001\).*--resume_from_checkpoint fresh"):
        _train(env, out, *resume, "--learning_rate", "1e-3")
    with pytest.raises(ResumeError, match=r"\(settings.max_length 64 -> 48; train_data "):
        _train(env, out, *resume, "--max_length", "48")
    with pytest.raises(ResumeError, match=r"\(settings.model.dtype float32 -> bfloat16\)"):  # a model option
        _train(env, out, *resume, "--dtype", "bfloat16")
    other_base = env["root"] / "other-base"
    if not other_base.exists():
        shutil.copytree(env["base"], other_base)
        (other_base / "config.json").write_text((env["base"] / "config.json").read_text(encoding="utf-8")
                                                .replace("{", '{"probe": 1, ', 1), encoding="utf-8")
    with pytest.raises(ResumeError, match=r"\(base_model.sha256 "):
        _train(env, out, *resume, "--model_name_or_path", str(other_base))
    assert mtime == first_weights.stat().st_mtime_ns and not (out / "checkpoint-6").exists()

    # more steps, other logging and saving are a resume (an extended run)
    results = _train(env, out, *resume, "--logging_steps", "2")
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 6
    assert any(entry.get("resume_probe") == 1 for entry in state["log_history"])
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged_steps == [1, 2, 3, 4, 5, 6]
    assert first_weights.stat().st_mtime_ns == mtime  # steps 1-2 were not trained (and saved) again
    assert "held_out" in results


def test_report_to_wandb_offline(env, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_PROJECT", "rm-tests")
    wandb.teardown()  # settings (WANDB_DIR) are read once per wandb session: start a fresh one
    try:
        _train(env, env["root"] / "wandb", "--max_steps", "2", "--report_to", "wandb", "--run_name", "bt-tiny")
    finally:
        if wandb.run is not None:
            wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    names = (b"train/loss", b"train/accuracy", b"train/margin", b"train/learning_rate")
    # wandb.finish() returns before the wandb-core service has flushed the run file: poll for it
    deadline = time.monotonic() + 60
    while True:
        blob = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
        if all(name in blob for name in names) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    wandb.teardown()
    for name in names:
        assert name in blob, name
    assert b"bt-tiny" in blob


def test_load_preference_splits_with_the_hh_rule(tmp_path):
    from rm_core.args import DataArguments
    from rm_core.data import RowError, hh_is_test
    from rm_core.hub import held_out_split
    from rm_core.pipeline import held_out_line, load_preference_splits

    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad"}
            for i in range(40)]
    rows.append({"chosen": "\n\nHuman: q\n\nAssistant: ", "rejected": "\n\nHuman: q\n\nAssistant: x"})  # empty
    path = tmp_path / "hh.jsonl"
    _write_jsonl(path, rows)
    n_test = sum(hh_is_test(r) for r in rows[:40])
    assert 0 < n_test < 40
    train, test, report = load_preference_splits(DataArguments(dataset_name=str(path), split_rule="hh_sha1"))
    assert len(train) + len(test) == 40
    assert len(test) == n_test
    assert {p["prompt"][0]["content"] for p in test} == {
        f"q{i}" for i, r in enumerate(rows[:40]) if hh_is_test(r)}
    assert report["train_skipped"]["skipped"] + report["test_skipped"]["skipped"] == 1
    assert (report["train_pairs"], report["test_pairs"]) == (len(train), len(test))

    train5, test2, report2 = load_preference_splits(DataArguments(dataset_name=str(path), split_rule="hh_sha1",
                                                                  max_train_pairs=5, max_eval_pairs=2))
    assert train5 == train[:5] and test2 == test[:2]
    # a part of the held-out set is named as one, in the log and on the card's split; a cap that cuts nothing is not
    assert report2["held_out"]["first"] == 2 and "its first 2 (--max_eval_pairs)" in held_out_line(report2)
    assert held_out_split(report2["held_out"]) == "test (hh_sha1), first 2"
    _, _, whole = load_preference_splits(DataArguments(dataset_name=str(path), split_rule="hh_sha1",
                                                       max_eval_pairs=len(test)))
    assert "first" not in whole["held_out"] and held_out_split(whole["held_out"]) == "test (hh_sha1)"
    _, no_test, _ = load_preference_splits(DataArguments(dataset_name=str(path), dataset_test_split=""))
    assert no_test == []
    with pytest.raises(ValueError, match="split_rule"):
        load_preference_splits(DataArguments(dataset_name=str(path), split_rule="random"))
    with pytest.raises(RowError, match=r"row \d+: chosen is an empty response"):  # strict: stops loading
        load_preference_splits(DataArguments(dataset_name=str(path), split_rule="hh_sha1", strict_rows=True))


def test_auto_resume_skips_a_checkpoint_cut_while_written_and_a_plain_rerun_refuses(env, capsys):
    """A kill while checkpoint-N was written leaves it without trainer_state.json (the Trainer writes that file
    last): `auto` resumes from the last complete one and says so. Rerunning the command without the flag into
    a folder with checkpoints stops with both choices named; `fresh` starts from step 0."""
    import shutil

    from rm_core.errors import UserInputError
    from rm_core.pipeline import complete_checkpoints

    out = env["root"] / "resume-cut"
    _train(env, out, "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2")
    cut = out / "checkpoint-6"
    shutil.copytree(out / "checkpoint-4", cut)
    (cut / "trainer_state.json").unlink()  # killed before the state was written
    half = out / "checkpoint-8"
    shutil.copytree(out / "checkpoint-4", half)
    (half / "trainer_state.json").write_text('{"global_step": 8, "log_hi')  # killed while writing it
    assert [p.name for p in complete_checkpoints(out)[0]] == ["checkpoint-2", "checkpoint-4"]

    with pytest.raises(UserInputError, match="--resume_from_checkpoint auto to continue from checkpoint-4, or "
                                             "--resume_from_checkpoint fresh"):
        _train(env, out, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2")

    capsys.readouterr()
    first_weights = out / "checkpoint-2" / "model.safetensors"
    mtime = first_weights.stat().st_mtime_ns
    _train(env, out, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2",
           "--resume_from_checkpoint", "auto")
    assert "skipping incomplete checkpoint(s) checkpoint-6, checkpoint-8" in capsys.readouterr().out
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 6 and [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert first_weights.stat().st_mtime_ns == mtime  # resumed from checkpoint-4: steps 1-2 not saved again

    _train(env, out, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
           "--resume_from_checkpoint", "fresh")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]


def test_a_run_killed_before_its_new_card_leaves_no_card_of_the_earlier_model(env, monkeypatch):
    """The card and eval_results.json of a finished model describe its weights: a new run into the folder removes
    them before it trains, so a kill before its own card is written never leaves the old card beside new
    weights."""
    from transformers import Trainer

    out = env["root"] / "rerun-killed"
    _train(env, out, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2")
    assert (out / "README.md").is_file() and (out / "eval_results.json").is_file()

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(env, out, "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2",
               "--resume_from_checkpoint", "auto")
    assert not (out / "README.md").exists() and not (out / "eval_results.json").exists()


def test_a_diverged_run_stops_with_a_clear_error_and_is_not_marked_done(env):
    """--learning_rate 1e30: the one step's loss is finite, the weights after it are not. The run must not end
    as a trained model: a clear error, and no checkpoint left looking done (no config.json with rm_family, no
    eval_results.json, no model card at the top of output_dir)."""
    import judges
    from rm_core.finite import TrainingDivergedError

    for name, extra in (("held-out", ()), ("no held-out set", ("--dataset_test_split", ""))):
        out = env["root"] / f"diverged-{len(extra)}"
        with pytest.raises(TrainingDivergedError, match="training diverged.*NaN or infinite.*lower the learning rate"):
            _train(env, out, "--max_steps", "1", "--learning_rate", "1e30", *extra)
        assert not (out / "config.json").exists() and not (out / "model.safetensors").exists(), name
        assert not (out / "eval_results.json").exists() and not (out / "README.md").exists(), name
        moved = out / "diverged"
        assert (moved / "model.safetensors").is_file() and "training diverged" in (moved / "REASON.txt").read_text()
        assert "rm_family" not in json.loads((moved / "config.json").read_text())
        with pytest.raises(FileNotFoundError):
            judges.load(str(out))


def test_training_fingerprint_compares_what_shapes_the_run_and_never_holds_a_token():
    """The settings a resume must keep (learning rate, batch, seed, max_length, the GRPO sampling) are compared;
    where it logs, saves, how far it goes and which vLLM server it uses may change; a Hub token is never written."""
    from pair_pm.train_grpo import PairPMGRPOConfig
    from rm_core.args import RewardModelConfig
    from rm_core.pipeline import training_fingerprint

    bt = training_fingerprint(RewardModelConfig(output_dir="/tmp/x", use_cpu=True, hub_token="hf_sekret"), {})
    assert {"learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "seed", "max_length",
            "center_rewards_coefficient", "world_size"} <= set(bt["settings"])
    assert not {"output_dir", "logging_steps", "save_steps", "max_steps", "num_train_epochs", "report_to",
                "hub_token", "resume_from_checkpoint"} & set(bt["settings"])
    assert "hf_sekret" not in json.dumps(bt)
    assert {"pad_token", "eos_token"} <= set(bt["settings"])  # where the reward is read: not a token to hide
    from trl import ModelConfig

    from rm_core.pipeline import training_inputs

    lora = training_fingerprint(RewardModelConfig(output_dir="/tmp/x", use_cpu=True), training_inputs(
        ModelConfig(model_name_or_path="org/m", use_peft=True, lora_alpha=8), None))
    assert lora["settings"]["model.lora_alpha"] == 8 and lora["settings"]["model.dtype"] == "float32"
    assert "model.model_name_or_path" not in lora["settings"] and "model_options" not in lora
    grpo = training_fingerprint(PairPMGRPOConfig(output_dir="/tmp/x", use_cpu=True), {})["settings"]
    assert {"temperature", "num_generations", "beta", "consistency_weight", "max_completion_length"} <= set(grpo)
    assert not {"vllm_server_host", "vllm_server_port", "vllm_gpu_memory_utilization"} & set(grpo)


def test_a_missing_data_path_or_an_output_dir_that_is_a_file_is_one_line_before_the_model_loads(
        env, tmp_path, monkeypatch, capsys):
    import sys

    from transformers import AutoModelForSequenceClassification

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained",
                        lambda *a, **k: pytest.fail("the model was loaded before the paths were checked"))
    a_file = tmp_path / "out.txt"
    a_file.write_text("not a folder")
    base = ["rm-train-bt", "--model_name_or_path", str(env["base"]), "--use_cpu", "true", "--report_to", "none"]
    for extra, message in (
            (["--dataset_name", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "o")],
             f"error: --dataset_name {tmp_path / 'nope.jsonl'}: no such file or directory"),
            (["--dataset_name", str(env["data"]), "--output_dir", str(a_file)],
             f"error: --output_dir {a_file} is a file: give a folder (it is created when missing)")):
        monkeypatch.setattr(sys, "argv", base + extra)
        with pytest.raises(SystemExit) as stop:
            env["recipe"].cli()
        assert stop.value.code == 2 and capsys.readouterr().err.strip() == message


def test_a_lora_adapter_trained_with_an_added_pad_token_merges(tmp_path):
    """A tokenizer with no pad and no unk (Llama 3) gets an added pad and resized embeddings in training, which the
    adapter saves; the merge reloads the base at its old size and must resize it too (it failed: size mismatch)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from rm_core.models import load_reward_model
    from rm_core.pipeline import finalise_checkpoint
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(base)
    tok.pad_token, tok.unk_token = None, None
    tok.save_pretrained(base)
    model, tok = load_reward_model(str(base), torch.float32, "plain")
    assert model.get_input_embeddings().weight.shape[0] == len(tok)  # the pad was added
    peft = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"]))
    peft.save_pretrained(tmp_path / "out")
    merged = finalise_checkpoint(tmp_path / "out", str(base), tok, True)
    assert merged.get_input_embeddings().weight.shape[0] == len(tok)
    assert torch.isfinite(merged(input_ids=torch.tensor([[1, 2, 3, tok.pad_token_id]])).logits).all()


def test_the_lora_merge_loads_the_base_at_the_revision_trained_on(tmp_path):
    from rm_core.pipeline import finalise_checkpoint

    asked = {}

    class Recorder:
        @staticmethod
        def from_pretrained(path, **kwargs):
            asked.update(kwargs, path=path)
            raise LookupError("recorded")

    with pytest.raises(LookupError):
        finalise_checkpoint(tmp_path, "org/base", None, True, auto_class=Recorder, revision="0123abc")
    assert asked["path"] == "org/base" and asked["revision"] == "0123abc"


def test_a_checkpoint_of_another_folder_is_not_resumed_into_a_folder_with_its_own(tmp_path):
    """Its fingerprint would replace this folder's, and a later `auto` resume would continue this folder's own
    checkpoints under the other run's inputs."""
    from rm_core.pipeline import TRAINING_FINGERPRINT, check_training_resume
    from rm_core.resume import ResumeError

    fp = {"base_model": "b", "train_data": "d", "settings": {"learning_rate": 1e-3}}
    for folder in ("x", "y"):
        ckpt = tmp_path / folder / "checkpoint-2"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text('{"global_step": 2}', encoding="utf-8")
        (tmp_path / folder / TRAINING_FINGERPRINT).write_text(json.dumps(fp), encoding="utf-8")
    with pytest.raises(ResumeError, match="holds checkpoints of its own run"):
        check_training_resume(tmp_path / "x", str(tmp_path / "y" / "checkpoint-2"), fp)
    check_training_resume(tmp_path / "x", str(tmp_path / "x" / "checkpoint-2"), fp)  # its own: fine
    check_training_resume(tmp_path / "z", str(tmp_path / "y" / "checkpoint-2"), fp)  # a new folder: fine


def test_a_finished_model_is_not_trained_over_without_fresh(tmp_path):
    """No checkpoint to continue from (save_strategy no), a finished model there: a rerun, `auto` included, would
    train from step 0 and replace finished work without a word; `fresh` says so."""
    from rm_core.errors import UserInputError
    from rm_core.pipeline import TRAINING_FINGERPRINT, resume_point

    out = tmp_path / "bt"
    out.mkdir()
    assert resume_point(out, None) is None and resume_point(out, "auto") is None  # an empty folder: a new run
    (out / "config.json").write_text("{}", encoding="utf-8")
    (out / TRAINING_FINGERPRINT).write_text("{}", encoding="utf-8")
    for requested in (None, "auto"):
        with pytest.raises(UserInputError, match="finished model.*--resume_from_checkpoint fresh"):
            resume_point(out, requested)
    assert resume_point(out, "fresh") is None
