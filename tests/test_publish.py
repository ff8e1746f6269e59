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

    def upload_folder(self, *, folder_path, repo_id, commit_message, ignore_patterns=(), delete_patterns=()):
        folder, target = Path(folder_path), SnapshotApi.root / repo_id
        patterns = [p + "*" if p.endswith("/") else p for p in ignore_patterns]
        if target.is_dir():  # remote files matching delete_patterns go (.gitattributes never), as the Hub does
            for path in sorted(target.rglob("*")):
                rel = path.relative_to(target).as_posix()
                if path.is_file() and rel != ".gitattributes" and any(fnmatch.fnmatch(rel, p) for p in delete_patterns):
                    path.unlink()
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


def _card(folder: Path):
    """The folder's README.md as the Hub reads it (huggingface_hub.ModelCard.load)."""
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


# ---------------------------------------------------------------- publish itself


def test_publish_writes_everything_before_the_upload_and_never_a_token(tmp_path, hub, monkeypatch):
    from rm_core.hub import CardEval, CardInfo, publish
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    out = tmp_path / "out"
    model.save_pretrained(out)
    results = {"held_out": {"accuracy": 0.75, "pairs": 8}}
    monkeypatch.setattr(sys, "argv", ["train.py", "--hub_token", "hf_abcdefghijklmnopqrstu", "--seed", "1"])
    returned = publish(out, model, tokenizer, rm_family="orm", family_fields={"math_rm_head": "scalar"},
                       eval_results=results, card=CardInfo(base_model="base", datasets=["d"], training={"steps": 2},
                                                           metrics={"held-out accuracy": 0.75},
                                                           evals=[CardEval("d", "test", {"held-out accuracy": 0.75})]),
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
    data = _card(uploaded).data  # the card as the Hub reads it
    assert (data.pipeline_tag, data.library_name) == ("text-classification", "transformers")  # the scalar ORM
    assert data.base_model is None and data.datasets is None  # "base" and "d" are no Hub ids
    assert [(r.dataset_type, r.dataset_split, r.metric_name, r.metric_value) for r in data.eval_results] == [
        ("d", "test", "held-out accuracy", 0.75)]
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


# the card each recipe publishes: (pipeline_tag, tags beside reward-model and the family, the data set its
# model-index names (the local folder's name: never its path), the metrics there)
CARDS = {
    "bradley_terry": ("text-classification", ["trl", "reward-trainer"], "prefs", ["held-out accuracy"]),
    "odin": ("text-classification", ["trl", "reward-trainer"], "prefs", ["held-out accuracy"]),
    "pair_pm": ("text-generation", ["trl", "sft"], "prefs", ["held-out accuracy"]),
    "pair_pm_grpo": ("text-generation", ["trl", "grpo"], "prefs", ["held-out verdict accuracy"]),
    "prm": ("text-generation", ["trl", "sft"], "math", ["best-of-N accuracy", "best-of-N weighted vote accuracy"]),
    "orm": ("text-generation", ["trl", "sft"], "math", ["best-of-N accuracy", "best-of-N weighted vote accuracy"]),
    "scalar_orm": ("text-classification", ["trl", "reward-trainer"], "math",
                   ["held-out accuracy", "best-of-N accuracy", "best-of-N weighted vote accuracy"]),
}


def _run_recipe(name: str, root: Path, *more: str):
    import importlib

    from rm_core.testing import save_tiny_backbone

    module, kind, extra, _ = RECIPES[name]
    recipe = importlib.import_module(module)
    base = save_tiny_backbone(root / "base", seed=0)
    data = _preferences(root) if kind == "prefs" else _math(root)
    out = root / "out"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            *TRAINER_FLAGS, *extra, *more]
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
    if "reward_mean" in config:  # OpenRLHF's names beside the project's
        assert (config["mean"], config["std"]) == (config["reward_mean"], config["reward_std"])
    pipeline_tag, tags, dataset, metrics = CARDS[name]
    data = _card(uploaded).data
    assert (data.pipeline_tag, data.library_name, data.tags) == (pipeline_tag, "transformers",
                                                                 ["reward-model", family, *tags])
    assert data.base_model is None and data.datasets is None  # a local backbone and local data: no path written
    assert data.model_name == "org/rm"
    assert [r.metric_name for r in data.eval_results] == metrics
    assert {(r.dataset_type, r.dataset_split, r.metric_type) for r in data.eval_results} == {(dataset, "test",
                                                                                              "accuracy")}
    assert all(0.0 <= r.metric_value <= 1.0 for r in data.eval_results)


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


@pytest.mark.parametrize("name", ["bradley_terry", "scalar_orm"])
def test_a_recipe_without_a_held_out_set_publishes_a_card_without_model_index(name, tmp_path, hub):
    """No held-out set: no model-index entry (nothing was measured), and no OpenRLHF mean/std (the reward stats are
    null, and OpenRLHF cannot load a null)."""
    _, out = _run_recipe(name, tmp_path, "--dataset_test_split", "", "--eval_fraction", "0")
    config = _read(out, "config.json")
    assert config["reward_mean"] is None and "mean" not in config and "std" not in config
    data = _card(out).data
    assert data.eval_results is None and data.pipeline_tag == "text-classification"


def test_armo_export_ends_in_publish(tiny_armo, tmp_path, hub):
    """Stage 2 again on the session's stage 1 (its output folder copied), pushed: the export is published."""
    import dataclasses

    from armo_rm import train_gating

    shutil.copytree(tiny_armo[0].output_dir, tmp_path / "armo")
    cfg = dataclasses.replace(tiny_armo[0], output_dir=str(tmp_path / "armo"), push_to_hub=True,
                              hub_model_id="org/armo", max_steps=5, overwrite=True)  # the copy holds an export
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
    data = _card(uploaded).data
    assert (data.pipeline_tag, data.tags) == ("text-classification", ["reward-model", "armo"])  # not TRL-trained
    from rm_core.hub import dataset_label

    tested = {dataset_label(name): v["accuracy"] for name, v in results["test"].items() if "accuracy" in v}
    assert {r.dataset_type: r.metric_value for r in data.eval_results or []} == pytest.approx(tested)


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


# ---------------------------------------------------------------- --push_results: an evaluation into a card


def _reward_bench_rows(path: Path) -> Path:
    rows = [{"id": f"{subset}-{i}", "subset": subset, "prompt": f"Question {i}?", "chosen": f"Answer {i}: yes.",
             "rejected": "no", "chosen_model": "x", "rejected_model": "y"}
            for subset in ("alpacaeval-easy", "llmbar-natural") for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_push_results_adds_a_benchmark_to_a_local_checkpoints_card(tmp_path):
    """eval_reward_bench --push_results FOLDER: the checkpoint's README.md gets the benchmark in its model-index,
    read back by ModelCard.load; what the card said before (its held-out result, base model, text) stays, and a
    second run replaces its own entries instead of adding more."""
    from eval.report import model_index_metrics
    from eval.reward_bench import evaluate, make_parser
    from rm_core.hub import CardEval, CardInfo, publish
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=7)
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    publish(ckpt, model, tokenizer, rm_family="bradley_terry", eval_results={},
            card=CardInfo(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["Anthropic/hh-rlhf"],
                          training={}, command="c", evals=[CardEval("Anthropic/hh-rlhf", "test",
                                                                    {"held-out accuracy": 0.7})]))
    before = _card(ckpt)
    rows = _reward_bench_rows(tmp_path / "rows.jsonl")

    def run(out: str) -> dict:
        return evaluate(make_parser().parse_args(["--model", str(ckpt), "--dataset", str(rows), "--output_dir",
                                                  str(tmp_path / out), "--batch_size", "6",
                                                  "--push_results", str(ckpt)]))

    summary = run("first")
    card = _card(ckpt)
    assert card.text == before.text and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.pipeline_tag == "text-classification" and card.data.datasets == ["Anthropic/hh-rlhf"]
    held, *added = card.data.eval_results
    assert (held.dataset_type, held.metric_name, held.metric_value) == ("Anthropic/hh-rlhf", "held-out accuracy", 0.7)
    expected = {k: v for k, v in model_index_metrics("reward_bench", summary).items() if v is not None}
    assert "accuracy (all pairs)" in expected
    assert {r.metric_name: r.metric_value for r in added} == pytest.approx(expected)
    assert {(r.task_type, r.dataset_type, r.dataset_name, r.dataset_split) for r in added} == {
        ("text-classification", "rows", "rows", "filtered")}
    run("second")  # the same benchmark again: replaced, not repeated
    assert len(_card(ckpt).data.eval_results) == 1 + len(added)


def test_push_results_to_a_folder_without_a_card_writes_one(tmp_path):
    from huggingface_hub import ModelCard

    from rm_core.hub import CardEval, push_eval_results

    folder = tmp_path / "third-party-rm"
    folder.mkdir()
    assert push_eval_results(folder, [CardEval("allenai/reward-bench", "filtered", {"score": 0.61}, "RewardBench")]) \
        == str(folder / "README.md")
    card = ModelCard.load(folder / "README.md")
    [r] = card.data.eval_results
    assert (card.data.model_name, r.dataset_type, r.dataset_name, r.metric_name, r.metric_value) == (
        "third-party-rm", "allenai/reward-bench", "RewardBench", "score", 0.61)
    with pytest.raises(ValueError, match="overwrite"):  # another value for it, without overwrite: refused
        push_eval_results(folder, [CardEval("allenai/reward-bench", "filtered", {"score": 0.5}, "RewardBench")],
                          overwrite=False)


def test_push_results_to_the_hub_sends_model_index_through_metadata_update(tmp_path, monkeypatch):
    """eval_best_of_n --push_results ORG/NAME: one huggingface_hub.metadata_update with the model-index entries of
    the judge's own numbers (not the baselines), overwrite on, and no token passed: huggingface_hub reads HF_TOKEN,
    which nothing writes."""
    import huggingface_hub

    from eval.best_of_n import evaluate, make_parser
    from rm_core.testing import save_tiny_reward_model

    calls = []

    def metadata_update(repo_id, metadata, **kwargs):
        calls.append((repo_id, json.loads(json.dumps(metadata)), kwargs))
        return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(huggingface_hub, "metadata_update", metadata_update)
    token = "hf_SecretTokenForThisTest0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    ckpt = save_tiny_reward_model(tmp_path / "ckpt", seed=3)
    cands = tmp_path / "cands.jsonl"
    cands.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?",
                                         "responses": [f"It is {i + 1}.", "No idea.", f"It is {i}."],
                                         "correct": [True, False, False]}) + "\n" for i in range(3)))
    out = tmp_path / "out"
    summary = evaluate(make_parser().parse_args(["--model", str(ckpt), "--dataset", str(cands), "--output_dir",
                                                 str(out), "--push_results", "org/rm"]))
    [(repo_id, metadata, kwargs)] = calls
    assert repo_id == "org/rm" and kwargs["overwrite"] is True and kwargs.get("token") is None
    assert metadata == {"model-index": [{"name": "org/rm", "results": [{
        "task": {"type": "text-classification", "name": "Reward modeling"},
        "dataset": {"name": "cands", "type": "cands", "split": "test"},
        "metrics": [{"type": "accuracy", "value": summary["judge"], "name": "judge's pick accuracy"},
                    {"type": "accuracy", "value": summary["judge_weighted_vote"],
                     "name": "judge-weighted vote accuracy"}]}]}]}
    for path in [*out.rglob("*"), *ckpt.rglob("*")]:
        assert not path.is_file() or token.encode() not in path.read_bytes()


@pytest.mark.parametrize("target", ["/no/such/folder", "a/b/c", "data/rows.jsonl"])
def test_push_results_refuses_a_target_that_is_neither_a_folder_nor_a_hub_id(target, tmp_path, capsys):
    from eval.best_of_n import make_parser

    with pytest.raises(SystemExit):
        make_parser().parse_args(["--model", str(tmp_path), "--push_results", target])
    assert "neither a local checkpoint folder nor a Hub model id" in capsys.readouterr().err


def test_a_push_mirrors_the_folder_and_never_uploads_the_users_pairs_or_logs(tmp_path, fake_hub):
    """A file an earlier push left on the Hub (a LoRA adapter, another run's results) is deleted by the next push;
    a scalar ORM's pairs/ (the user's data) and runs/ (training logs) are never uploaded."""
    from rm_core.hub import push_folder

    folder = tmp_path / "ckpt"
    (folder / "lora_adapter").mkdir(parents=True)
    (folder / "lora_adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (folder / "config.json").write_text("{}", encoding="utf-8")
    push_folder(folder, "org/rm")
    assert (SnapshotApi.root / "org/rm/lora_adapter/adapter_config.json").is_file()
    shutil.rmtree(folder / "lora_adapter")
    for name in ("pairs/train.jsonl", "runs/events.out"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text("private", encoding="utf-8")
    push_folder(folder, "org/rm")
    pushed = sorted(p.relative_to(SnapshotApi.root / "org/rm").as_posix()
                    for p in (SnapshotApi.root / "org/rm").rglob("*") if p.is_file())
    assert pushed == ["config.json"]


def test_a_card_keeps_no_metric_of_an_evaluation_the_new_results_redo_without_it():
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from rm_core.hub import merge_eval_results

    def result(metric, value):
        return EvalResult(task_type="text-classification", dataset_type="allenai/reward-bench-2",
                          dataset_name="RewardBench 2", dataset_split="test", metric_type=metric, metric_value=value)

    card = ModelCard.from_template(ModelCardData(eval_results=[result("score", 0.61), result("safety", 0.7)],
                                                 model_name="m"))
    with pytest.raises(ValueError, match="which these results do not give"):
        merge_eval_results(card, [result("accuracy", 0.4)], "m", overwrite=False)
    merge_eval_results(card, [result("accuracy", 0.4)], "m", overwrite=True)
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [("accuracy", 0.4)]


def test_push_results_names_a_built_in_benchmark_only_for_its_own_split(monkeypatch, tmp_path):
    """GSM8K's solutions file at --split train is not "GSM8K best-of-4 (319 held-out questions)"; the HH test file
    scored whole is not "the test part of the fixed split (446 pairs)"."""
    from argparse import Namespace

    from eval import report
    from rm_core import hub

    sent = []
    monkeypatch.setattr(hub, "push_eval_results", lambda target, evals, commit_message: sent.append(evals[0]) or "x")
    monkeypatch.setattr(report, "model_index_metrics", lambda benchmark, summary: {"accuracy": 0.5})
    solutions = str(report.DATA_ROOT / "gsm8k" / "example_model_solutions.jsonl")
    hh = str(report.DATA_ROOT / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    for dataset, split in ((solutions, "test"), (solutions, "train"), (hh, "filtered")):
        report.push_results(Namespace(push_results=str(tmp_path), dataset=dataset, split=split), "b", {})
    assert sent[0].dataset_name == "GSM8K best-of-4 (319 held-out questions)"
    assert sent[1].dataset_name == "example_model_solutions" and sent[2].dataset_name == "harmless-base-test"
