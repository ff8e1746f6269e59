"""Atomic writes, self-describing checkpoints, model cards and push_folder (HfApi monkeypatched: no network)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rm_core import hub
from rm_core.hub import (
    RM_FAMILIES,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    describe_checkpoint,
    model_card,
    push_folder,
)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_json_roundtrip_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "results.json"
    obj = {"accuracy": 0.75, "subsets": {"a": [1, 2]}, "name": "é"}
    assert atomic_write_json(path, obj) == path
    assert json.loads(path.read_text(encoding="utf-8")) == obj
    atomic_write_json(path, {"accuracy": 0.5})  # overwrite
    assert json.loads(path.read_text(encoding="utf-8")) == {"accuracy": 0.5}
    assert _listing(path.parent) == ["results.json"]


def test_atomic_write_gives_the_file_the_usual_permissions(tmp_path):
    old_mask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "results.json", {"a": 1})
        plain = tmp_path / "plain.json"
        plain.write_text("{}", encoding="utf-8")
    finally:
        os.umask(old_mask)
    # the same mode as a file written with open(): readable by others, not mkstemp's private 0600
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


def test_unserializable_object_leaves_the_original_unchanged(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"ok": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_json(path, {"ok": 2, "bad": object()})
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["results.json"]


def test_failure_mid_write_leaves_the_original_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "scores.jsonl"
    atomic_write_jsonl(path, [{"id": "1"}])
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(hub.os, "fsync", boom)  # fails after the text is written to the temp file
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "x" * 100_000)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["scores.jsonl"]


def test_failure_on_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("replace failed")

    monkeypatch.setattr(hub.os, "replace", boom)
    with pytest.raises(OSError, match="replace failed"):
        atomic_write_json(tmp_path / "new.json", {"a": 1})
    assert _listing(tmp_path) == []


def test_atomic_write_jsonl(tmp_path):
    rows = [{"id": "a", "x": 1.5}, {"id": "b", "x": None}]
    path = atomic_write_jsonl(tmp_path / "rows.jsonl", rows)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows


# ---------------------------------------------------------------- describe_checkpoint


def test_describe_checkpoint_writes_family_template_and_fields():
    model = SimpleNamespace(config=SimpleNamespace())
    tokenizer = SimpleNamespace(chat_template="{{ messages }}")
    describe_checkpoint(model, tokenizer, "bradley_terry", reward_mean=0.25, reward_std=1.5)
    assert model.config.rm_family == "bradley_terry"
    assert model.config.rm_chat_template == "{{ messages }}"
    assert (model.config.reward_mean, model.config.reward_std) == (0.25, 1.5)


def test_reward_mean_and_std_are_also_written_under_openrlhf_names(tmp_path):
    """OpenRLHF's --normalize_reward reads config.mean / config.std: written beside reward_mean / reward_std,
    in memory (describe_checkpoint, saved by save_pretrained) and into a saved config.json (describe_config_file);
    a None one (no held-out set) is not, as OpenRLHF would load None."""
    from transformers import AutoConfig

    from rm_core.hub import describe_config_file
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    describe_checkpoint(model, tokenizer, "bradley_terry", reward_mean=-0.5, reward_std=2.0)
    model.config.save_pretrained(tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (saved["mean"], saved["std"]) == (saved["reward_mean"], saved["reward_std"]) == (-0.5, 2.0)
    config = AutoConfig.from_pretrained(tmp_path / "a")
    assert (config.mean, config.std) == (-0.5, 2.0)

    model, tokenizer = tiny_reward_model()
    model.config.save_pretrained(tmp_path / "b")
    assert describe_config_file(tmp_path / "b", "odin", None, reward_mean=0.25, reward_std=1.5)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (saved["mean"], saved["std"], saved["reward_mean"], saved["reward_std"]) == (0.25, 1.5, 0.25, 1.5)

    bare = SimpleNamespace(config=SimpleNamespace())
    describe_checkpoint(bare, tokenizer, "bradley_terry", reward_mean=None, reward_std=None)
    assert bare.config.reward_mean is None and not hasattr(bare.config, "mean") and not hasattr(bare.config, "std")
    describe_checkpoint(bare, tokenizer, "pair_pm", pair_pm_max_length=8)  # no reward stats: none of the four
    assert not hasattr(bare.config, "mean")


def test_describe_checkpoint_round_trips_through_config_json(tmp_path):
    from transformers import AutoConfig

    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    describe_checkpoint(model, tokenizer, "pair_pm", reward_mean=-0.5, reward_std=2.0)
    model.config.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.rm_family == "pair_pm"
    assert config.rm_chat_template == tokenizer.chat_template
    assert config.reward_mean == -0.5 and config.reward_std == 2.0


@pytest.mark.parametrize("family", ["bt", "BradleyTerry", "", "reward"])
def test_describe_checkpoint_rejects_an_unknown_family(family):
    model = SimpleNamespace(config=SimpleNamespace())
    with pytest.raises(ValueError, match="unknown rm_family"):
        describe_checkpoint(model, SimpleNamespace(chat_template=None), family)
    assert not hasattr(model.config, "rm_family")


def test_families():
    assert set(RM_FAMILIES) == {"bradley_terry", "pair_pm", "armo", "odin", "decision_tree", "orm", "prm"}


# ---------------------------------------------------------------- model card


def _card(tmp_path, text: str):
    """The card as the Hub reads it: huggingface_hub.ModelCard.load of the README.md."""
    from huggingface_hub import ModelCard

    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    return ModelCard.load(tmp_path / "README.md")


def test_model_card_contains_the_metrics_and_command(tmp_path):
    text = model_card(model_name="org/my-rm", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                      rm_family="bradley_terry", datasets=["Anthropic/hh-rlhf"],
                      eval_results={"held-out accuracy": 0.87654, "held-out pairs": 446},
                      training={"learning rate": 1e-5, "LoRA": False}, command="python bradley_terry_rm/train.py --x 1")
    assert text.startswith("---\n")
    data = _card(tmp_path, text).data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and data.datasets == ["Anthropic/hh-rlhf"]
    assert data.tags == ["reward-model", "bradley_terry"]
    assert (data.pipeline_tag, data.library_name) == ("text-classification", "transformers")
    assert "# org/my-rm" in text
    assert "| held-out accuracy | 0.8765 |" in text
    assert "| held-out pairs | 446 |" in text
    assert "| learning rate | 1e-05 |" in text
    assert "python bradley_terry_rm/train.py --x 1" in text


def test_model_card_without_results(tmp_path):
    text = model_card(model_name="m", base_model="b", rm_family="orm", datasets=[], eval_results=None,
                      training={}, command="c")
    assert "Not evaluated." in text
    assert "datasets:" not in text and "model-index" not in text and "base_model" not in text
    assert _card(tmp_path, text).data.eval_results is None


def test_model_card_writes_no_home_folder(monkeypatch):
    """A local base model or data path under the home folder names the user: the card says ~ instead."""
    from pathlib import Path

    monkeypatch.setattr(Path, "home", staticmethod(lambda: Path("/home/alice")))
    text = model_card(model_name="m", base_model=None, rm_family="bradley_terry", datasets=[], eval_results=None,
                      training={"base model": "/home/alice/models/SmolLM2"},
                      command="python bradley_terry_rm/train.py --dataset_name /home/alice/data/pairs.jsonl")
    assert "alice" not in text and "| base model | ~/models/SmolLM2 |" in text and "~/data/pairs.jsonl" in text
    monkeypatch.setattr(Path, "home", staticmethod(lambda: Path("/home/al")))  # a prefix of another user's home
    text = model_card(model_name="m", base_model=None, rm_family="bradley_terry", datasets=[], eval_results=None,
                      training={"base model": "/home/alice/m"}, command="c")
    assert "| base model | /home/alice/m |" in text


def test_model_card_round_trips_its_results_through_modelcard_load(tmp_path):
    """model-index as the Hub reads it: ModelCard.load(...).data.eval_results gives back task, data set, split,
    metric and value of every numeric result; None (a failure) and non-numbers are left out."""
    from rm_core.hub import CardEval

    evals = [CardEval("Anthropic/hh-rlhf", "test", {"held-out accuracy": 0.8125, "failed": None, "note": "x"}),
             CardEval("../data/gsm8k/solutions.jsonl", "test", {"best-of-N accuracy": 0.5},
                      task_name="Best-of-N selection")]
    text = model_card(model_name="org/rm", base_model="HuggingFaceTB/SmolLM2-135M-Instruct", rm_family="prm",
                      datasets=["builtin", str(tmp_path), "RLHFlow/Mistral-PRM-Data[500]", "offline:hh-harmless[20]",
                                "Anthropic/hh-rlhf"],
                      eval_results={"held-out accuracy": 0.8125}, training={}, command="c", evals=evals)
    card = _card(tmp_path, text)
    results = card.data.eval_results
    assert card.data.model_name == "org/rm"
    assert [(r.task_type, r.task_name, r.dataset_type, r.dataset_name, r.dataset_split, r.metric_type,
             r.metric_name, r.metric_value) for r in results] == [
        ("text-classification", "Reward modeling", "Anthropic/hh-rlhf", "Anthropic/hh-rlhf", "test", "accuracy",
         "held-out accuracy", 0.8125),
        ("text-classification", "Best-of-N selection", "solutions", "solutions", "test", "accuracy",
         "best-of-N accuracy", 0.5)]
    # Hub ids only: never "builtin" or a local path; a row limit dropped; an offline stand-in as its source
    assert card.data.datasets == ["RLHFlow/Mistral-PRM-Data", "Anthropic/hh-rlhf"]
    assert str(tmp_path) not in text.split("\n---\n")[0] and "builtin" not in text


@pytest.mark.parametrize("family,fields,tag,library", [
    ("bradley_terry", None, "text-classification", "transformers"),
    ("armo", None, "text-classification", "transformers"),
    ("odin", None, "text-classification", "transformers"),
    ("orm", {"math_rm_head": "scalar"}, "text-classification", "transformers"),
    ("orm", {"math_rm_judgement_ids": [1, 2]}, "text-generation", "transformers"),
    ("prm", None, "text-generation", "transformers"),
    ("pair_pm", None, "text-generation", "transformers"),
    ("decision_tree", None, "tabular-classification", "sklearn"),
])
def test_pipeline_tag_and_library_fit_the_family(tmp_path, family, fields, tag, library):
    from rm_core.hub import family_card

    assert family_card(family, fields) == (tag, library)
    data = _card(tmp_path, model_card(model_name="m", base_model=None, rm_family=family, datasets=[],
                                      eval_results=None, training={}, command="c", family_fields=fields,
                                      tags=["trl", "sft"])).data
    assert (data.pipeline_tag, data.library_name) == (tag, library)
    assert data.tags == ["reward-model", family, "trl", "sft"]


def test_families_all_have_a_card_kind():
    from rm_core.hub import FAMILY_CARD

    assert set(FAMILY_CARD) == set(RM_FAMILIES)


def test_base_model_of_provisioned_folders_is_their_hub_id(tmp_path, monkeypatch):
    """The folders rm_core.models.provision builds offline stand for SmolLM2 and MiniLM on the Hub."""
    from rm_core.hub import hub_base_model
    from rm_core.models import MINILM, SMOLLM2, cache_dir

    monkeypatch.setenv("RM_CACHE", str(tmp_path / "cache"))
    for repo_id in (SMOLLM2, MINILM):
        folder = cache_dir() / repo_id.replace("/", "--")  # where provision() puts it
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
        assert hub_base_model(str(folder)) == repo_id
    assert hub_base_model(SMOLLM2) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_base_model(MINILM) == "sentence-transformers/all-MiniLM-L6-v2"


def test_base_model_of_a_local_path_is_its_recorded_hub_id_or_nothing(tmp_path, monkeypatch):
    from rm_core.hub import hub_base_model
    from rm_core.testing import save_tiny_backbone

    plain = save_tiny_backbone(tmp_path / "base")  # transformers records no origin: no base_model
    assert hub_base_model(str(plain)) is None
    named = tmp_path / "llama"
    named.mkdir()
    (named / "config.json").write_text(json.dumps({"_name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}))
    assert hub_base_model(str(named)) == "meta-llama/Llama-3.1-8B-Instruct"
    (named / "config.json").write_text(json.dumps({"_name_or_path": str(plain)}))
    assert hub_base_model(str(named)) is None  # a path recorded as the origin is still a path
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_base_model(str(snapshot)) == "Qwen/Qwen2.5-0.5B"
    monkeypatch.chdir(tmp_path)
    assert hub_base_model("base") is None  # a relative folder, though shaped like nothing else
    assert hub_base_model("./missing/model") is None and hub_base_model("") is None
    text = model_card(model_name="m", base_model=str(plain), rm_family="bradley_terry", datasets=[str(plain)],
                      eval_results=None, training={}, command="c")
    assert str(plain) not in text and "fine-tuned from a local model" in text
    assert _card(tmp_path, text).data.base_model is None


# ---------------------------------------------------------------- push_folder


class FakeApi:
    calls: list = []

    def __init__(self, *args, **kwargs):
        FakeApi.calls.append(("init", args, kwargs))

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", (repo_id,), kwargs))

    def upload_folder(self, **kwargs):
        FakeApi.calls.append(("upload_folder", (), kwargs))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc123")


def test_push_folder_calls_create_repo_and_upload_folder(tmp_path, monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    url = push_folder(tmp_path, "org/rm", private=True, commit_message="msg")
    assert url == "https://huggingface.co/org/rm/commit/abc123"
    names = [c[0] for c in FakeApi.calls]
    assert names == ["init", "create_repo", "upload_folder"]
    _, args, kwargs = FakeApi.calls[1]
    assert args == ("org/rm",) and kwargs == {"private": True, "exist_ok": True}
    _, _, kwargs = FakeApi.calls[2]
    assert kwargs["folder_path"] == str(tmp_path)
    assert kwargs["repo_id"] == "org/rm"
    assert kwargs["commit_message"] == "msg"
    assert "checkpoint-*" in kwargs["ignore_patterns"]  # intermediate trainer checkpoints stay local
    assert {"pairs/*", "runs/*"} <= set(kwargs["ignore_patterns"])  # a scalar ORM's user data, training logs
    assert kwargs["delete_patterns"] == ["*"]  # the repo mirrors the folder: an earlier push's files go


def test_push_folder_defaults_to_public(tmp_path, monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    push_folder(tmp_path, "org/rm2")
    assert FakeApi.calls[1][2]["private"] is False
    assert os.listdir(tmp_path) == []  # nothing written locally


# ---------------------------------------------------------------- secrets


def test_redact_argv_hides_secret_flags_and_token_shaped_values():
    from rm_core.hub import command_line, redact_argv

    argv = ["train.py", "--hub_token", "hf_abcdefghijklmnopqrstu", "--api_key=sk-live-0123456789abcdefXYZ",
            "--learning_rate", "1e-5", "--password", "hunter2", "--note", "uses hf_abcdefghijklmnopqrstu inside",
            "--api_key_env", "OPENAI_API_KEY", "--model", "org/model"]
    red = redact_argv(argv)
    assert red == ["train.py", "--hub_token", "***", "--api_key=***", "--learning_rate", "1e-5", "--password", "***",
                   "--note", "uses *** inside", "--api_key_env", "OPENAI_API_KEY", "--model", "org/model"]
    line = command_line(argv)
    assert "hf_abc" not in line and "sk-live" not in line and "hunter2" not in line
    assert line.startswith("python train.py --hub_token *** ")


def test_model_card_never_carries_a_token():
    card = model_card(model_name="m", base_model="b", rm_family="bradley_terry", datasets=[], eval_results=None,
                      training={}, command="python train.py --hub_token hf_abcdefghijklmnopqrstu")
    assert "hf_abcdefghijklmnopqrstu" not in card and "--hub_token ***" in card


def test_a_training_run_with_hub_token_pushes_nothing_that_holds_it(tmp_path, monkeypatch):
    """--hub_token goes to the push and nowhere else: not the card's command line, not training_args.bin, not
    any file of the uploaded folder (intermediate checkpoints included)."""
    import huggingface_hub

    from bradley_terry_rm.train import main, make_parser
    from rm_core.builtin_data import write_builtin_preferences
    from rm_core.testing import save_tiny_backbone

    token = "hf_SecretTokenForThisTest0123456789"
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(hub, "_hub_token", None)  # restored after the test: the token stays in this test
    data = Path(write_builtin_preferences(tmp_path / "data")["train"]).parent
    base = save_tiny_backbone(tmp_path / "base")
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_length", "64", "--max_eval_pairs", "4",
            "--save_strategy", "steps", "--save_steps", "1", "--report_to", "none", "--use_cpu", "true",
            "--disable_tqdm", "true", "--push_to_hub", "true", "--hub_model_id", "org/rm", "--hub_token", token]
    monkeypatch.setattr(sys, "argv", ["bradley_terry_rm/train.py", *argv])
    main(*make_parser().parse_args_and_config(argv))
    assert [c[0] for c in FakeApi.calls] == ["init", "create_repo", "upload_folder"]
    assert FakeApi.calls[0][2] == {"token": token}  # the push used it
    uploaded = Path(FakeApi.calls[2][2]["folder_path"])
    files = [p for p in uploaded.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and (uploaded / "README.md").is_file()
    assert "--hub_token ***" in (uploaded / "README.md").read_text()
    for path in files:
        assert token.encode() not in path.read_bytes(), f"{path} holds the token"


def test_json_files_never_hold_a_bare_nan(tmp_path):
    """NaN and inf are not JSON; in the project's JSON and JSONL files a non-finite number is null (a failure)."""
    import json
    import math

    from rm_core.hub import atomic_write_json, atomic_write_jsonl

    atomic_write_json(tmp_path / "a.json", {"x": math.nan, "y": [1.0, -math.inf, {"z": math.inf}], "ok": 2.5})
    atomic_write_jsonl(tmp_path / "b.jsonl", [{"s": math.nan}, {"s": 0.5}])
    text = (tmp_path / "a.json").read_text() + (tmp_path / "b.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [1.0, None, {"z": None}], "ok": 2.5}
    assert [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [{"s": None},
                                                                                              {"s": 0.5}]


def test_count_nonfinite_reads_numbers_tensors_arrays_and_nestings():
    import math

    import numpy as np
    import torch

    from rm_core.finite import TrainingDivergedError, check_final_rewards, count_nonfinite

    assert count_nonfinite([1.0, None, math.nan, [math.inf, 2], {"a": -math.inf}]) == (3, 5)
    assert count_nonfinite(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])) == (1, 4)
    assert count_nonfinite(np.array([1.0, np.inf], dtype=np.float32)) == (1, 2)
    assert count_nonfinite([np.float32(np.nan), np.float64(1.0)]) == (1, 2)
    check_final_rewards([0.1, None, torch.zeros(3)], "rewards")  # finite: nothing happens
    with pytest.raises(TrainingDivergedError, match="training diverged: rewards: 1 of 2 values are NaN or infinite"):
        check_final_rewards([0.1, math.nan], "rewards")


def test_provision_races_with_another_process_and_keeps_the_first_build(tmp_path, monkeypatch):
    """Two ranks (or test workers) building the same offline model: the one that finishes second finds the folder
    built and returns it, leaving no .tmp folder; a build that fails with nothing built still raises."""
    import rm_core.models as models

    monkeypatch.setenv("RM_CACHE", str(tmp_path / "cache"))
    target = models.cache_dir() / models.SMOLLM2.replace("/", "--")

    def build_while_another_finishes(tmp):
        (tmp / "config.json").write_text('{"by": "second"}', encoding="utf-8")
        target.mkdir(parents=True)
        (target / "config.json").write_text('{"by": "first"}', encoding="utf-8")

    monkeypatch.setattr(models, "_build_smollm2", build_while_another_finishes)
    assert models.provision(models.SMOLLM2) == target
    assert json.loads((target / "config.json").read_text(encoding="utf-8")) == {"by": "first"}
    assert [p.name for p in target.parent.iterdir()] == [target.name]

    other = models.cache_dir() / models.MINILM.replace("/", "--")
    other.mkdir(parents=True)
    (other / "weights.bin").write_text("x", encoding="utf-8")  # not a finished build: no config.json
    monkeypatch.setattr(models, "_build_minilm", lambda tmp: (tmp / "config.json").write_text("{}", encoding="utf-8"))
    with pytest.raises(OSError):
        models.provision(models.MINILM)


def test_held_out_split_names_the_rule_and_a_part():
    from rm_core.hub import held_out_split

    assert held_out_split({"rule": "split", "split": "test"}) == "test"
    assert held_out_split({"rule": "hashed"}) == "held-out (sha1 hash)"  # never "test" for a carved share
    assert held_out_split({"rule": "gsm8k_fixed", "first": 50}) == "test (questions 1000 on), first 50"
