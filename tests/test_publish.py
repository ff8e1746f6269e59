"""The one publish step (rm_core.hub.publish): every recipe ends in it, once, with its family's own fields, and
everything it writes is in the folder before the upload; every checkpoint-N the Trainer saves is self-described.

The Hub is a fake HfApi (monkeypatched: no network) whose upload_folder copies the folder as it is at that moment,
less what the upload leaves out: the test reads exactly what would have been uploaded.
"""

from __future__ import annotations

import fnmatch
import json
import random
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

WORDS = "the quick brown fox jumps over lazy dog hello world".split()


class SnapshotApi:
    """huggingface_hub.HfApi stand-in: create_repo is recorded; upload_folder copies the uploaded files (the
    ignore_patterns applied as huggingface_hub applies them) into SnapshotApi.root / repo_id."""

    root: Path
    uploads: list = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        pass

    def upload_folder(self, *, folder_path, repo_id, commit_message, ignore_patterns=()):
        folder, target = Path(folder_path), SnapshotApi.root / repo_id
        patterns = [p + "*" if p.endswith("/") else p for p in ignore_patterns]
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / rel)
        SnapshotApi.uploads.append(target)
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """The fake Hub: the list of uploaded folders' snapshots."""
    import huggingface_hub

    from rm_core import hub as hub_module

    SnapshotApi.root, SnapshotApi.uploads = tmp_path / "hub", []
    monkeypatch.setattr(huggingface_hub, "HfApi", SnapshotApi)
    monkeypatch.setattr(hub_module, "_hub_token", None)
    return SnapshotApi.uploads


@pytest.fixture
def hub(fake_hub, monkeypatch):
    """The fake Hub, and every rm_core.hub.publish call recorded (its keyword arguments) before it runs."""
    from rm_core import hub as hub_module
    from rm_core import pipeline

    calls = []
    real = hub_module.publish

    def recording(out_dir, model, tokenizer, **kwargs):
        calls.append(kwargs)
        return real(out_dir, model, tokenizer, **kwargs)

    monkeypatch.setattr(hub_module, "publish", recording)
    monkeypatch.setattr(pipeline, "publish", recording)
    return SimpleNamespace(calls=calls, uploads=fake_hub)


def _read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- publish itself


def test_publish_writes_everything_before_the_upload_and_never_a_token(tmp_path, hub, monkeypatch):
    from rm_core.hub import CardInfo, publish
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    out = tmp_path / "out"
    model.save_pretrained(out)
    results = {"held_out": {"accuracy": 0.75, "pairs": 8}}
    monkeypatch.setattr(sys, "argv", ["train.py", "--hub_token", "hf_abcdefghijklmnopqrstu", "--seed", "1"])
    returned = publish(out, model, tokenizer, rm_family="orm", family_fields={"math_rm_head": "scalar"},
                       eval_results=results, card=CardInfo(base_model="base", datasets=["d"], training={"steps": 2},
                                                           metrics={"held-out accuracy": 0.75}),
                       push=True, hub_model_id="org/rm", ignore=("skip/*",))
    assert returned is results and results["hub_commit"] == "https://huggingface.co/org/rm/commit/0"
    [uploaded] = hub.uploads
    config = _read(uploaded, "config.json")
    assert config["rm_family"] == "orm" and config["math_rm_head"] == "scalar"
    assert config["rm_chat_template"] == tokenizer.chat_template
    assert _read(uploaded, "eval_results.json") == {"held_out": {"accuracy": 0.75, "pairs": 8}}  # no hub_commit
    card = (uploaded / "README.md").read_text()
    assert "# org/rm" in card and "| held-out accuracy | 0.7500 |" in card and "| steps | 2 |" in card
    assert "python train.py --hub_token *** --seed 1" in card and "hf_abc" not in card
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_publish_without_hub_model_id_writes_the_checkpoint_then_refuses_the_push(tmp_path, hub):
    from rm_core.hub import CardInfo, publish
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        publish(tmp_path, model, tokenizer, rm_family="bradley_terry", eval_results={},
                card=CardInfo(base_model="b", datasets=[], training={}, command="c"), push=True)
    assert _read(tmp_path, "config.json")["rm_family"] == "bradley_terry"
    assert (tmp_path / "eval_results.json").is_file() and "Not evaluated." in (tmp_path / "README.md").read_text()
    assert hub.uploads == []


def test_publish_refuses_an_unknown_family_before_writing(tmp_path):
    from rm_core.hub import CardInfo, publish
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    with pytest.raises(ValueError, match="unknown rm_family"):
        publish(tmp_path / "out", model, tokenizer, rm_family="bt", eval_results={},
                card=CardInfo(base_model="b", datasets=[], training={}))
    assert not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------- every recipe ends in it


def _preferences(root: Path, n_train: int = 8, n_test: int = 4) -> Path:
    rng = random.Random(0)
    data = root / "prefs"
    data.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [{"id": f"{split}-{i}", "prompt": " ".join(rng.choices(WORDS, k=3)),
                 "chosen": "Sure: " + " ".join(rng.choices(WORDS, k=4)), "rejected": "No."} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _math(root: Path) -> Path:
    """Steps rows to train on (a step with "sea" is bad) and Candidates rows held out."""
    rng = random.Random(0)
    data = root / "math"
    data.mkdir(parents=True)

    def solution(bad_at):
        return [" ".join(rng.choices(WORDS, k=2) + (["sea"] if k == bad_at else [])) for k in range(3)]

    train = []
    for i in range(6):
        sols = []
        for bad_at in (None, rng.randint(0, 2)):
            steps = solution(bad_at)
            labels = [1, 1, 1] if bad_at is None else [1] * bad_at + [0] + [None] * (2 - bad_at)
            sols.append({"text": "\n".join(steps), "steps": steps, "labels": labels, "is_correct": bad_at is None})
        train.append({"index": i, "id": f"q{i}", "question": " ".join(rng.choices(WORDS, k=3)), "reference": "0",
                      "solutions": sols})
    test = [{"id": f"t{i}", "prompt": " ".join(rng.choices(WORDS, k=3)),
             "responses": ["\n".join(solution(None if j == 0 else 1)) for j in range(3)],
             "correct": [j == 0 for j in range(3)]} for i in range(2)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    return data


TRAINER_FLAGS = ["--per_device_train_batch_size", "4", "--learning_rate", "1e-4", "--max_steps", "1",
                 "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
                 "--use_cpu", "true", "--seed", "0", "--activation_checkpointing", "false",
                 "--push_to_hub", "true", "--hub_model_id", "org/rm"]

# recipe module, data kind, extra flags, (rm_family, the family's own fields publish must get)
RECIPES = {
    "bradley_terry": ("bradley_terry_rm.train", "prefs", ["--max_length", "64"],
                      ("bradley_terry", {"reward_mean", "reward_std", "reward_stats_on", "base_model"})),
    "odin": ("odin_rm.train", "prefs", ["--max_length", "64"],
             ("odin", {"reward_mean", "reward_std", "reward_stats_on", "base_model"})),
    "pair_pm": ("pair_pm.train", "prefs", ["--max_length", "128"],
                ("pair_pm", {"pair_pm_answer_ids", "pair_pm_template", "pair_pm_max_length", "base_model"})),
    "pair_pm_grpo": ("pair_pm.train_grpo", "prefs",
                     ["--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "8",
                      "--max_prompt_length", "448"],
                     ("pair_pm", {"pair_pm_reasoning", "pair_pm_template", "pair_pm_max_length",
                                  "pair_pm_max_new_tokens", "base_model"})),
    "prm": ("math_rm.train_prm", "math", ["--max_length", "128"],
            ("prm", {"math_rm_judgement_ids", "math_rm_step_tag", "math_rm_step_tag_id", "math_rm_aggregation",
                     "math_rm_template", "math_rm_max_length", "base_model"})),
    "orm": ("math_rm.train_orm", "math", ["--max_length", "128"],
            ("orm", {"math_rm_judgement_ids", "math_rm_step_tag", "math_rm_aggregation", "math_rm_max_length"})),
    "scalar_orm": ("math_rm.train_scalar_orm", "math", ["--max_length", "128"],
                   ("orm", {"math_rm_head", "reward_mean", "reward_std", "base_model"})),
}


def _run_recipe(name: str, root: Path):
    import importlib

    from rm_core.testing import save_tiny_backbone

    module, kind, extra, _ = RECIPES[name]
    recipe = importlib.import_module(module)
    base = save_tiny_backbone(root / "base", seed=0)
    data = _preferences(root) if kind == "prefs" else _math(root)
    out = root / "out"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            *TRAINER_FLAGS, *extra]
    return recipe.main(*recipe.make_parser().parse_args_and_config(argv)), out


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_ends_in_one_publish_with_its_family_fields(name, tmp_path, hub):
    family, fields = RECIPES[name][3]
    results, out = _run_recipe(name, tmp_path)
    [call] = hub.calls  # the one end of the recipe
    assert call["rm_family"] == family and fields <= set(call["family_fields"])
    assert call["push"] is True and call["hub_model_id"] == "org/rm"
    [uploaded] = hub.uploads
    config = _read(uploaded, "config.json")
    assert config["rm_family"] == family
    assert {k: config[k] for k in call["family_fields"]} == json.loads(json.dumps(call["family_fields"]))
    assert _read(uploaded, "eval_results.json") == {k: v for k, v in json.loads(json.dumps(results)).items()
                                                    if k != "hub_commit"}
    assert (uploaded / "README.md").read_text() == (out / "README.md").read_text()
    assert results["hub_commit"].startswith("https://huggingface.co/org/rm/")


def test_scalar_orm_hub_copy_is_a_scalar_orm_when_uploaded(tmp_path, fake_hub):
    """Regression: math_rm_head was added to config.json after the pipeline had pushed, so the Hub copy loaded as
    the wrong kind of judge (the causal-LM ORM judge on a sequence classifier). At the moment of the upload the
    folder must already say rm_family "orm" with math_rm_head "scalar", and hold the best-of-N results."""
    import judges
    from judges.rm_judge import RewardModelJudge

    results, out = _run_recipe("scalar_orm", tmp_path)
    [uploaded] = fake_hub
    config = _read(uploaded, "config.json")
    assert config["rm_family"] == "orm" and config["math_rm_head"] == "scalar"
    saved = _read(uploaded, "eval_results.json")
    assert "scalar_orm" in saved["best_of_n"] and "math_data" in saved
    assert "| best-of-N scalar_orm |" in (uploaded / "README.md").read_text()
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copy2(out / name, uploaded / name)  # the weights as uploaded (the snapshot kept them too)
    assert isinstance(judges.load(str(uploaded)), RewardModelJudge)
    assert results["best_of_n"]["scalar_orm"] == saved["best_of_n"]["scalar_orm"]


def test_armo_export_ends_in_publish(tiny_armo, tmp_path, hub):
    """Stage 2 again on the session's stage 1 (its output folder copied), pushed: the export is published."""
    import dataclasses

    from armo_rm import train_gating

    shutil.copytree(tiny_armo[0].output_dir, tmp_path / "armo")
    cfg = dataclasses.replace(tiny_armo[0], output_dir=str(tmp_path / "armo"), push_to_hub=True,
                              hub_model_id="org/armo", max_steps=5)
    results = train_gating.main(cfg)
    [call] = hub.calls
    assert call["rm_family"] == "armo" and set(call["family_fields"]) == {"armo_max_length", "base_model"}
    assert call["save_model"] is True and call["ignore"] == ("embeddings/*", "regression.safetensors")
    [uploaded] = hub.uploads
    config = _read(uploaded, "config.json")
    assert config["rm_family"] == "armo" and config["armo_max_length"] == cfg.max_length
    assert config["auto_map"] and (uploaded / "model.safetensors").is_file()
    assert not (uploaded / "regression.safetensors").exists() and not (uploaded / "embeddings").exists()
    assert _read(uploaded, "eval_results.json")["test"] == json.loads(json.dumps(results["test"]))


# ---------------------------------------------------------------- checkpoint-N


def test_every_trainer_checkpoint_is_self_described(tmp_path, hub):
    """Each checkpoint-N the Trainer saves says its family in config.json (the fields known before training);
    reward mean/std, measured at the end, are only in the final model's."""
    from bradley_terry_rm import train as recipe
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base", seed=0)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(_preferences(tmp_path)), "--output_dir",
            str(out), "--max_length", "64", *TRAINER_FLAGS, "--max_steps", "2", "--save_strategy", "steps",
            "--save_steps", "1"]
    recipe.main(*recipe.make_parser().parse_args_and_config(argv))
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-1", "checkpoint-2"]
    for checkpoint in checkpoints:
        config = _read(checkpoint, "config.json")
        assert config["rm_family"] == "bradley_terry" and config["base_model"] == str(base)
        assert config["rm_chat_template"] == _read(out, "config.json")["rm_chat_template"]
        assert "reward_mean" not in config
        assert (checkpoint / "trainer_state.json").is_file()
    assert "reward_mean" in _read(out, "config.json")
    assert not [p for p in hub.uploads[0].rglob("*") if "checkpoint-" in str(p)]  # checkpoints stay local
