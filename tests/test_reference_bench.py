"""bench/reference.py without training anything: every family's plan (each command parses with its recipe's own
parser, the data counts, the sweep and the untrained baseline are there), the selection after the sweep, the
stage runner's skip / redo / resume, the section rendered from a fabricated reference.json, and the tiny-model
path from real evaluator outputs to the paired difference and the chart."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys

import pytest

from bench import reference as ref
from bench._common import ROOT
from rm_core.resume import read_jsonl_store

HAS_DATA = all(p.exists() for p in (ref.HH_FILE, ref.LLMBAR, ref.SOLUTIONS))
needs_data = pytest.mark.skipif(not HAS_DATA, reason=f"{ref.SHARED} is absent")


class Parsed(Exception):
    pass


def parse_command(cmd: list[str], monkeypatch):
    """The namespace(s) the command's module parses from its arguments, with that module's own parser: a recipe's
    TrlParser (--config YAML plus flags), or an argparse main stopped right after it parsed."""
    assert cmd[:2] == [sys.executable, "-m"], cmd
    module = importlib.import_module(cmd[2])
    make = getattr(module, "make_parser", None)
    parser = make() if make else None
    if parser is not None and hasattr(parser, "parse_args_and_config"):
        return parser.parse_args_and_config(cmd[3:])
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        with pytest.raises(Parsed) as got:
            module.main(cmd[3:])
    return got.value.args[0]


def options(tmp_path, family: str, *extra: str):
    return ref.make_parser().parse_args(["--family", family, "--dry_run", "--runs_dir", str(tmp_path), *extra])


def values(parsed) -> dict:
    parts = parsed if isinstance(parsed, tuple) else (parsed,)
    return {k: v for part in parts for k, v in vars(part).items()}


@needs_data
@pytest.mark.parametrize("family", list(ref.FAMILIES))
def test_plan_of_every_family(family, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    fam = ref.FAMILIES[family]
    p = ref.plan(fam, options(tmp_path, family))
    phases = [s.phase for s in p.stages]
    if fam.data == "tree":  # its hyperparameters: fit_tree's cross-validation on the training pairs
        assert "sweep" not in phases and p.budget["units"] == ref.plan(ref.FAMILIES["armo"], p.opts).budget["units"]
    else:
        assert phases.count("sweep") == 3 and "select" in phases
        assert sorted(s.settings.get("units") for s in p.stages if s.phase == "sweep")[0] == p.budget.get(
            "sweep_units", p.budget["units"])
    assert phases.count("train") >= 1 and "eval" in phases
    untrained = [s for s in p.stages if s.phase == "untrained"]
    assert [s.name for s in untrained] == [f"{fam.untrained}-{name}-{L}" for name, L in fam.sets]
    if fam.data == "embed":
        ref.write_armo_config(fam, p.dir)  # the YAML its commands name (written by the run, not the dry run)
    for stage in p.stages:
        parsed = [values(parse_command(cmd, monkeypatch)) for cmd in stage.cmds]  # unknown or bad flags raise here
        if stage.phase == "untrained":
            got = parsed[0]
            assert got["family"] == fam.untrained and got["seed"] == 0 and got["model"] == p.opts.model
        if stage.phase in ("sweep", "train") and fam.data != "tree":  # the last command trains at the stage's lr
            lr = stage.settings["lr"] if stage.phase == "train" else float(stage.name.removeprefix("sweep-lr"))
            assert math.isclose(parsed[-1]["learning_rate"], lr)
    # data counts: the fixed splits, the validation slice carved from the training part
    sizes = {"hh_test": 446, "llmbar": 419, "gsm8k_bo4": 319}
    assert all(ref.set_size(name) == sizes[name] for name, _ in fam.sets)
    b = p.budget
    if fam.data == "hh":
        assert b["usable_train_pairs"] == len(ref.hh_train()[0]) and b["val_items"] == 200
        assert b["pool"] + b["val_items"] == b["usable_train_pairs"]
    if fam.data == "gsm8k":
        assert (b["usable_train_pairs"], b["pool"], b["val_items"]) == (1000, 900, 100)
    if fam.data in ("hh", "gsm8k"):
        assert 0 < b["sweep_units"] < b["units"] <= b["pool"]
        spent = p.estimates["sweep_s"] + p.estimates["train_s"]
        assert abs(spent - 60 * b["budget_minutes"]) < 0.05 * 60 * b["budget_minutes"]  # the budget is spent


@needs_data
def test_hh_sweep_data_and_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    p = ref.plan(ref.FAMILIES["bt"], options(tmp_path, "bt"))
    sweep = next(s for s in p.stages if s.phase == "sweep")
    sweep.prepare()
    train = read_jsonl_store(tmp_path / "bt" / "data" / "sweep" / "train.jsonl")
    val = read_jsonl_store(tmp_path / "bt" / "data" / "sweep" / "test.jsonl")
    assert len(train) == p.budget["sweep_units"] and len(val) == 200
    usable = ref.hh_train()[0]  # the training part of the fixed split: the first pairs train, the last 200 validate
    assert [r["id"] for r in train] == [r["id"] for r in usable[: len(train)]]
    assert [r["id"] for r in val] == [r["id"] for r in usable[-200:]]
    data_args, training_args, _ = parse_command(sweep.cmds[0], monkeypatch)
    assert data_args.dataset_test_split == "test"  # the validation slice is the sweep run's held-out set
    assert training_args.max_steps == math.ceil(p.budget["sweep_units"] / 8)
    final = next(s for s in p.stages if s.name == "train")
    data_args, training_args, _ = parse_command(final.cmds[0], monkeypatch)
    assert data_args.dataset_test_split == "" and training_args.max_steps == p.budget["steps"]


@needs_data
def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    ref.main(["--family", "pair_pm", "--dry_run", "--runs_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "$ python -m pair_pm.train --config pair_pm/configs/smollm2-135m-cpu.yaml" in out
    assert "[sweep] sweep-lr1e-05" in out and "[untrained] pair_pm-hh_test-512" in out and "--family pair_pm" in out
    assert "estimated:" in out and list(tmp_path.iterdir()) == []


@needs_data
def test_the_sweep_with_its_validation_fits_the_cap_or_is_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    # BT at the AVX2 machine's measured 5.49 s a pair: 10% of the budget would be 64 pairs a run, but three runs with
    # their validation (200 pairs at 0.6 * 5.49 / 3 s) and starts must fit half the budget: (600 - 219.6 - 60) / 5.49
    bt = ref.measured(ref.FAMILIES["bt"], 5.49)
    p = ref.plan(bt, options(tmp_path, "bt"))
    assert p.budget["sweep_units"] == 56 and "no_sweep" not in p.budget
    assert p.estimates["sweep_s"] <= 0.5 * 3600 + 1
    # PRM at its measured 14.4 s a question: one validation (100 questions best-of-4, ~7 min) leaves under 4 steps
    # of training a run inside the cap, so no sweep: the CPU YAML's lr and the whole budget for training
    prm = ref.measured(ref.FAMILIES["prm"], 14.4)
    p = ref.plan(prm, options(tmp_path, "prm"))
    assert p.budget["sweep_units"] == 0 and [s.phase for s in p.stages].count("sweep") == 0
    assert "select" not in [s.name for s in p.stages] and p.budget["chosen_by_sweep"] is False
    assert p.budget["lr"] == 3e-5 and p.budget["units"] == int((3600 - ref.OVERHEAD_S) / 14.4) // 2 * 2
    assert "no learning-rate sweep" in p.budget["no_sweep"]
    # fewer validation questions bring the sweep back, inside the cap
    p = ref.plan(prm, options(tmp_path, "prm", "--val_questions", "30"))
    assert p.budget["sweep_units"] >= ref.MIN_SWEEP_STEPS * 2 and p.estimates["sweep_s"] <= 0.5 * 3600 + 1


def test_recipe_args_reach_every_training_command_and_the_section_command(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    prm = ref.measured(ref.FAMILIES["prm"], 14.4)
    p = ref.plan(prm, options(tmp_path, "prm", "--recipe_args", "--judgement_loss tokens"))
    training = [s for s in p.stages if s.phase == "train"]
    assert training and all([str(x) for x in c][-2:] == ["--judgement_loss", "tokens"] for s in training for c in s.cmds)
    plain = ref.plan(prm, options(tmp_path, "prm"))
    assert [s.key() for s in plain.stages if s.phase == "train"] != [s.key() for s in training]  # a change reruns
    assert not any("--judgement_loss" in [str(x) for x in c] for s in plain.stages for c in s.cmds)
    bt = ref.plan(ref.measured(ref.FAMILIES["bt"], 5.49), options(tmp_path, "bt", "--recipe_args", "--seed 3"))
    assert all([str(x) for x in c][-2:] == ["--seed", "3"] for s in bt.stages if s.phase in ("sweep", "train") for c in s.cmds)


def test_select_best_lr_and_size_from_the_measured_speed():
    fam = ref.FAMILIES["bt"]
    opts = argparse.Namespace(budget_minutes=60.0, sweep_share=0.1, lrs=None)
    markers = [{"result": {"lr": lr, "units": 120, "val_accuracy": acc, "train_runtime": 240.0}, "seconds": 400.0}
               for lr, acc in ((1e-5, 0.55), (3e-5, 0.61), (1e-4, 0.61))]
    got = ref.select(fam, opts, markers, pool=1662)
    assert got["lr"] == 3e-5  # a tie goes to the smaller lr
    assert got["measured_unit_seconds"] == 2.0
    assert got["units"] == (3600 - 1200 - ref.OVERHEAD_S) // 2.0 // 8 * 8 and got["steps"] == got["units"] // 8
    assert ref.select(fam, opts, markers, pool=100)["units"] == 100  # never more than the pool


def test_stage_runner_skips_redoes_and_resumes(tmp_path):
    count = tmp_path / "count.txt"
    cmd = [sys.executable, "-c", f"open({str(count)!r}, 'a').write('x')"]

    def stage(settings, resumable=False):
        return ref.Stage("s", "eval", "test", tmp_path / "stages", [cmd], settings, tmp_path / "out", resumable,
                         prepare=lambda: (tmp_path / "out").mkdir(exist_ok=True),
                         collect=lambda: {"runs": len(count.read_text())})
    first = ref.run_stage(stage({"a": 1}), tmp_path / "logs", {})
    assert first["result"] == {"runs": 1} and len(first["load_start"]) == 3 and "seconds" in first
    assert ref.run_stage(stage({"a": 1}), tmp_path / "logs", {})["result"] == {"runs": 1}  # skipped
    assert ref.run_stage(stage({"a": 2}), tmp_path / "logs", {})["result"] == {"runs": 2}  # settings changed
    # an interrupted stage: begun with these settings, outputs partly there
    (tmp_path / "stages" / "s.json").unlink()
    (tmp_path / "stages" / "s.started.json").write_text(json.dumps({"settings": stage({"a": 3}, True).key()}))
    (tmp_path / "out" / "partial").write_text("kept")
    ref.run_stage(stage({"a": 3}, resumable=True), tmp_path / "logs", {})
    assert (tmp_path / "out" / "partial").is_file()  # an evaluation resumes from what it left
    (tmp_path / "stages" / "s.json").unlink()
    (tmp_path / "stages" / "s.started.json").write_text(json.dumps({"settings": stage({"a": 4}).key()}))
    ref.run_stage(stage({"a": 4}), tmp_path / "logs", {})
    assert not (tmp_path / "out" / "partial").exists()  # a training run starts afresh


def digest(value, ci, shorter=0.574, order=None, rho=-0.41):
    length = {"shorter_wins": shorter, "longer_wins": 1 - shorter, "length_balanced_accuracy": value - 0.03,
              "spearman_score_length": rho, "ci95": {"shorter_wins": [shorter - 0.046, shorter + 0.046],
                                                     "longer_wins": [1 - shorter - 0.046, 1 - shorter + 0.046],
                                                     "length_balanced_accuracy": [value - 0.08, value + 0.02]}}
    return {"metric": "accuracy (all pairs)", "value": value, "ci95": ci, "headline": {"accuracy (all pairs)": value},
            "headline_ci95": {"accuracy (all pairs)": ci}, "length": length, "order": order, "items": 446}


def fabricated_reference(family="bt") -> dict:
    fam = ref.FAMILIES[family]
    order = {"both_orders": 0.6, "chosen_first": 0.7, "chosen_second": 0.5, "order_flip_rate": 0.3,
             "ci95": {"both_orders": [0.55, 0.65], "order_flip_rate": [0.26, 0.34]}} if family == "pair_pm" else None
    sets = {"hh_test": {"title": "HH-RLHF test (446 pairs)", "kind": "pairs", "max_length": 256,
                        "trained": digest(0.623, [0.578, 0.668], order=order), "untrained": digest(0.435, [0.39, 0.48]),
                        "trained_minus_untrained": {"difference": 0.188, "low": 0.12, "high": 0.25,
                                                    "excludes_zero": True, "n": 446}},
            "llmbar": {"title": "LLMBar (419 pairs)", "kind": "reward_bench", "max_length": 1024,
                       "trained": digest(0.52, [0.47, 0.57], 0.697), "untrained": digest(0.542, [0.494, 0.59], 0.697),
                       "trained_minus_untrained": {"difference": -0.022, "low": -0.08, "high": 0.04,
                                                   "excludes_zero": False, "n": 419}}}
    sweep = [{"lr": lr, "units": 120, "val_accuracy": acc, "val_items": 200, "val_ci95": [acc - 0.07, acc + 0.07],
              "train_runtime": 300.0} for lr, acc in ((1e-5, 0.56), (3e-5, 0.6), (1e-4, 0.58))]
    return {"family": family, "title": fam.title, "command": f"python -m bench.reference --family {family} "
            "--budget_minutes 60", "finished": "2026-01-01 12:00:00",
            "machine": {"model": "AMD EPYC", "cpus": 2, "avx2": True, "avx512f": False, "avx512_bf16": False,
                        "amx": False, "torch": "2.13.0", "transformers": "5.23.0"},
            "load": {"start": [0.08, 0.2, 0.3], "end": [2.01, 1.98, 1.7], "highest_1min_at_a_stage_start": 2.1},
            "budget": {"budget_minutes": 60.0, "units": 704, "pool": 1662, "usable_train_pairs": 1862, "unit": "pairs",
                       "val": "the last 200 usable train pairs, held out of every run", "steps": 88,
                       "max_length": 256, "lr": 3e-5, "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                       "sweep_units": 120, "sweep_steps": 15, "measured_unit_seconds": 2.5},
            "sweep": sweep, "train": {"train_runtime": 1760.0}, "untrained": {"family": fam.untrained, "seed": 0},
            "wall_seconds": {"sweep": 1500.0, "select": 0.0, "train": 1850.0, "eval": 700.0, "untrained": 690.0},
            "sets": sets}


def test_section_from_a_fabricated_reference():
    text = ref.section_markdown(fabricated_reference())
    assert text.startswith("### Bradley-Terry: reference run (`python -m bench.reference --family bt")
    assert "**62.3% [57.8, 66.8]**" in text and "43.5% [39.0, 48.0]" in text  # the figure and the untrained one
    assert "+18.8 [+12.0, +25.0] (excludes 0)" in text and "-2.2 [-8.0, +4.0] |" in text  # paired, trained − untrained
    assert "57.4% [52.8, 62.0]" in text and "69.7%" in text  # the length baseline, with its interval
    assert "0.08 / 0.20 / 0.30 at the start" in text and "nothing else ran" in text  # the load
    assert "avx2 yes, avx512f no, avx512_bf16 no, amx no" in text
    assert "| 3e-05 **(chosen)** | 60.0% [53.0, 67.0] | 200 |" in text and "**704 of the 1662 training pairs**" in text
    busy = fabricated_reference()
    busy["load"]["start"] = [2.5, 2.4, 2.0]
    assert "NOT to itself" in ref.section_markdown(busy)
    assert "order-flip rate" in ref.section_markdown(fabricated_reference("pair_pm"))


@pytest.fixture(scope="module")
def tiny_evals(tmp_path_factory) -> dict:
    """Real eval.reward_bench outputs (results.json, scores.jsonl) of a tiny trained model and a tiny untrained one
    (the backbone with a seeded fresh head) on 12 pairs."""
    from eval import reward_bench
    from rm_core.testing import save_tiny_backbone, save_tiny_reward_model

    tmp = tmp_path_factory.mktemp("tiny-evals")
    trained, base = save_tiny_reward_model(tmp / "rm"), save_tiny_backbone(tmp / "base")
    pairs = [{"id": f"p{i}", "subset": "hh-rlhf-harmless-test", "prompt": f"question {i}?",
              "chosen": "a short answer" + " yes" * (i % 3), "rejected": "a much longer answer " + "no " * (i % 5 + 1)}
             for i in range(12)]
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    for model, out, extra in ((trained, "trained", []), (base, "untrained", ["--family", "bradley_terry", "--seed", "0"])):
        reward_bench.main(["--model", str(model), "--dataset", str(data), "--max_length", "64", "--output_dir",
                           str(tmp / out), "--quiet", *extra])
    return {"trained": tmp / "trained", "untrained": tmp / "untrained"}


def test_tiny_model_path_to_the_section_and_the_chart(tiny_evals, tmp_path):
    """Real evaluator outputs -> set_entry (intervals, length control, paired difference) -> the section, and
    overview.png through eval.report's overview_chart."""
    entry = ref.set_entry("pairs", tiny_evals["trained"], tiny_evals["untrained"])
    assert entry["trained"]["items"] == 12 and len(entry["trained"]["ci95"]) == 2
    assert entry["trained"]["length"]["shorter_wins"] is not None
    diff = entry["trained_minus_untrained"]
    assert diff["n"] == 12 and diff["low"] <= diff["difference"] <= diff["high"]
    reference = fabricated_reference()
    reference["sets"] = {"hh_test": {"title": "HH-RLHF test (tiny)", "max_length": 64, **entry}}
    text = ref.section_markdown(reference)
    assert f"{100 * entry['trained']['value']:.1f}% [" in text and "shorter wins" in text
    (tmp_path / "runs" / "bt").mkdir(parents=True)
    (tmp_path / "runs" / "bt" / "reference.json").write_text(json.dumps(reference))
    assert ref.overview(tmp_path / "runs", records=None) == tmp_path / "runs" / "overview.png"
    assert (tmp_path / "runs" / "overview.png").stat().st_size > 1000
    # --chart --record copies every run's reference.json to the committed records; a lost runs folder is then
    # redrawn from them, and without a record (and no run) there is no chart
    ref.main(["--chart", "--runs_dir", str(tmp_path / "runs"), "--record", str(tmp_path / "records")])
    assert json.loads((tmp_path / "records" / "reference-bt.json").read_text()) == reference
    assert ref.overview(tmp_path / "lost", records=tmp_path / "records") == tmp_path / "lost" / "overview.png"
    assert ref.overview(tmp_path / "lost2", records=tmp_path / "no-records") is None


def stub_runner(tiny_evals: dict, calls: list, train_results):
    """A stand-in for run_logged: records each command's module and writes what the real command writes (an
    evaluator's results.json and scores.jsonl from tiny_evals; a recipe's eval_results.json, train_results(flags))."""
    import shutil

    from bench._common import Measured

    def stub(cmd, log=None, **kwargs):
        module, args = cmd[2], cmd[3:]
        calls.append(module)
        flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}  # the last of each flag
        out = ref.Path(flag["--output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        if module.startswith("eval."):
            for name in ("results.json", "scores.jsonl"):
                shutil.copy(tiny_evals["untrained" if "--family" in flag else "trained"] / name, out / name)
        else:
            (out / "eval_results.json").write_text(json.dumps(train_results(flag)))
        return Measured(0.1, 1.0)
    return stub


@needs_data
def test_a_run_without_a_sweep_trains_at_the_recipe_lr(tiny_evals, tmp_path, monkeypatch):
    """At 30 s a pair not even 4 steps a sweep run fit beside their validation: one training run at the YAML's lr."""
    monkeypatch.chdir(ROOT)
    calls = []
    stub = stub_runner(tiny_evals, calls, lambda flag: {"train": {"train_runtime": 100.0, "train_loss": 0.6}})
    monkeypatch.setattr(ref, "run_logged", stub)
    opts = ref.make_parser().parse_args(["--family", "bt", "--runs_dir", str(tmp_path), "--unit_seconds", "30"])
    got = ref.run(ref.measured(ref.FAMILIES["bt"], 30.0), opts)
    assert calls.count("bradley_terry_rm.train") == 1 and got["sweep"] is None  # the full run only
    assert got["budget"]["lr"] == ref.recipe_lr(ref.FAMILIES["bt"])
    assert got["budget"]["units"] == 112  # (3600 s - 60) / 30 s, whole steps of 8
    section = (tmp_path / "bt" / "section.md").read_text()
    assert "No learning-rate sweep" in section and "the CPU YAML's: no sweep" in section


@needs_data
def test_a_whole_run_with_stub_commands(tiny_evals, tmp_path, monkeypatch):
    """run(): probe (this CPU's speed sizes the sweep) -> sweep -> select (the best lr, N from the measured speed) -> train -> eval -> untrained ->
    reference.json and section.md, every command replaced by a stub that writes what the real one writes; a second
    run redoes nothing, and one without the train marker redoes only the training run."""
    def train_results(flag: dict) -> dict:
        lr, units = float(flag["--learning_rate"]), len(read_jsonl_store(ref.Path(flag["--dataset_name"]) / "train.jsonl"))
        res = {"train": {"train_runtime": 4.0 * units, "train_loss": 0.6}, "data": {"train_pairs": units}}
        if flag.get("--dataset_test_split") == "test":
            res["held_out"] = {"accuracy": {1e-5: 0.55, 3e-5: 0.6, 1e-4: 0.58}[lr], "pairs": 200}
        return res

    calls = []
    stub = stub_runner(tiny_evals, calls, train_results)
    monkeypatch.setattr(ref, "run_logged", stub)
    opts = ref.make_parser().parse_args(["--family", "bt", "--runs_dir", str(tmp_path)])
    got = ref.run(ref.FAMILIES["bt"], opts)
    assert calls.count("bradley_terry_rm.train") == 5 and calls.count("eval.reward_bench") == 4
    assert calls[0] == "bradley_terry_rm.train" and got["budget"]["probe"]["units"] == 16  # 2 steps of 8 pairs first
    assert got["budget"]["unit_seconds"] == 4.0 and got["budget"]["sweep_units"] == 88  # 10% of 60 min at 4 s a pair
    assert got["budget"]["lr"] == 3e-5 and got["budget"]["measured_unit_seconds"] == 4.0
    assert got["budget"]["units"] == 880 and got["budget"]["steps"] == 110  # (3600 s - the sweep - 60) / 4 s
    assert len(read_jsonl_store(tmp_path / "bt" / "data" / "full" / "train.jsonl")) == 880
    assert set(got["sets"]) == {"hh_test", "llmbar"} and got["sets"]["hh_test"]["trained_minus_untrained"]
    assert got["load"]["start"] and got["machine"]["cpus"] and [r["lr"] for r in got["sweep"]] == [1e-5, 3e-5, 1e-4]
    probe_marker = json.loads((tmp_path / "bt" / "stages" / "probe.json").read_text())
    assert got["load"]["start"] == probe_marker["load_start"]  # the probe is the run's first stage
    section = (tmp_path / "bt" / "section.md").read_text()
    assert "**880 of the 1662 training pairs**" in section and "Load average" in section
    calls.clear()
    ref.run(ref.FAMILIES["bt"], opts)
    assert calls == []
    (tmp_path / "bt" / "stages" / "train.json").unlink()
    ref.run(ref.FAMILIES["bt"], opts)
    assert calls == ["bradley_terry_rm.train"]
    # ODIN shares BT's untrained baselines: reused, named, and kept out of its load and wall time
    calls.clear()
    odin = ref.run(ref.FAMILIES["odin"], ref.make_parser().parse_args(["--family", "odin", "--runs_dir", str(tmp_path)]))
    assert calls.count("odin_rm.train") == 5 and calls.count("eval.reward_bench") == 2  # its own two sets only
    assert set(odin["load"]["reused"]) == {"bradley_terry-hh_test-256", "bradley_terry-llmbar-1024"}
    assert "untrained" not in odin["wall_seconds"]
    section = (tmp_path / "odin" / "section.md").read_text()
    assert "The stage bradley_terry-llmbar-1024 was reused from an earlier run" in section
    assert "not counting 2 stage(s) reused" in section
