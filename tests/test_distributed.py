"""The real `accelerate launch` with two CPU processes (gloo), on a tiny random model: `pytest -m distributed`.

Two CPU processes on one machine: accelerate's MULTI_CPU type starts several processes only through mpirun,
so these tests use its torchrun launcher (`--multi_gpu`, a misnomer here) with ACCELERATE_USE_CPU=1, which
makes every process join a gloo group on the CPU (see configs/accelerate/cpu.yaml and
docs/distributed.md). Each launch takes 20-60 s on two cores, mostly imports.

`test_accelerate_configs` is a plain unit test (no processes are started) and runs by default.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "accelerate"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.accelerate_cli"]  # what the `accelerate` script runs
TRAIN_PAIRS = 20
EVAL_PAIRS = 21  # odd: the two processes get 11 and 10 pairs


# ------------------------------------------------------------------ the configuration files


def _launch_args(config: Path):
    """What `accelerate launch --config_file CONFIG x.py` resolves, through accelerate's own launch code."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(config), "x.py"])
    return _validate_launch_command(args)


@pytest.mark.parametrize("name", ["cpu", "ddp", "zero2", "zero3", "zero3_offload"])
def test_accelerate_configs(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType, patch_environment
    from accelerate.utils.dataclasses import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    args, defaults, mp_from_config = _launch_args(path)
    if name == "cpu":
        assert config.distributed_type == DistributedType.NO and config.use_cpu and config.num_processes == 1
        assert config.mixed_precision == "no"
        assert not args.multi_gpu and not args.use_deepspeed
        return
    assert config.mixed_precision == "bf16" and not config.use_cpu and config.num_processes == 8
    if name == "ddp":
        assert config.distributed_type == DistributedType.MULTI_GPU and args.multi_gpu
        return
    assert config.distributed_type == DistributedType.DEEPSPEED and args.use_deepspeed
    # The environment `accelerate launch` hands each process, and the DeepSpeed config accelerate builds from it.
    args.deepspeed_fields_from_accelerate_config = ",".join(
        [*defaults.deepspeed_config, *(["mixed_precision"] if mp_from_config else [])])
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    with patch_environment(**{k: v for k, v in env.items() if k.startswith("ACCELERATE_")}):
        plugin = DeepSpeedPlugin()
    zero = plugin.deepspeed_config["zero_optimization"]
    stage, offload = {"zero2": (2, "none"), "zero3": (3, "none"), "zero3_offload": (3, "cpu")}[name]
    assert zero["stage"] == stage
    assert zero["offload_optimizer"]["device"] == offload and zero["offload_param"]["device"] == offload
    if stage == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # save_model writes full weights
        assert plugin.zero3_init_flag is True
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert plugin.deepspeed_config[key] == "auto"  # filled by the Trainer from the recipe


# ------------------------------------------------------------------ helpers


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               WANDB_DISABLED="true", PYTHONUNBUFFERED="1")
    env.pop("ACCELERATE_USE_CPU", None)
    env.update(extra)
    return env


def _launch(script_and_args: list[str], processes: int, log: Path, timeout: int = 300) -> str:
    """`accelerate launch --config_file configs/accelerate/cpu.yaml [...] SCRIPT ARGS`; returns stdout+stderr."""
    cmd = [*ACCELERATE, "launch", "--config_file", str(CONFIGS / "cpu.yaml")]
    env = _env()
    if processes > 1:
        cmd += ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "0"]
        env["ACCELERATE_USE_CPU"] = "1"
    cmd += script_and_args
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    log.write_text(proc.stdout)
    assert proc.returncode == 0, f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stdout[-6000:]}"
    return proc.stdout


def _rows(n: int, offset: int = 0, flip_every: int = 0) -> list[dict]:
    """Preference rows; with flip_every=k every k-th pair is swapped, so a trained model gets some wrong."""
    subsets = ["alpacaeval-easy", "hep-python", "refusals-dangerous"]
    rows = []
    for i in range(offset, offset + n):
        rows.append({
            "id": f"pair-{i}", "subset": subsets[i % 3],
            "prompt": f"What is {i} + 3?" + " Please write a short answer." * (i % 4),
            "chosen": f"The answer is {i + 3}." + " Sure, here is a short answer in one word." * (i % 3),
            "rejected": "I cannot help with that request." + " the quick brown fox" * (i % 5),
        })
        if flip_every and i % flip_every == 0:
            rows[-1]["chosen"], rows[-1]["rejected"] = rows[-1]["rejected"], rows[-1]["chosen"]
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tiny random Llama with a fixed reward head, and the preference files."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from rm_core.testing import save_tiny_backbone

    root = tmp_path_factory.mktemp("distributed")
    backbone = save_tiny_backbone(root / "backbone", seed=0)
    # The recipe adds a randomly initialised score head before the Trainer seeds anything, so two runs of a bare
    # causal-LM backbone start from different heads; a head saved with the backbone makes runs comparable.
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    model.save_pretrained(backbone)
    _write_jsonl(root / "train.jsonl", _rows(TRAIN_PAIRS))
    _write_jsonl(root / "eval.jsonl", _rows(EVAL_PAIRS, offset=100, flip_every=4))
    return root


def _train(work: Path, processes: int, per_device_batch: int) -> Path:
    out = work / f"bt-{processes}proc"
    args = ["bradley_terry_rm/train.py", "--model_name_or_path", str(work / "backbone"),
            "--dataset_name", str(work / "train.jsonl"), "--dataset_test_split", "",
            "--output_dir", str(out), "--use_cpu", "true", "--seed", "0", "--max_length", "128",
            "--per_device_train_batch_size", str(per_device_batch), "--num_train_epochs", "1",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "1000",
            "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]
    log = _launch(args, processes, work / f"train-{processes}proc.log")
    data_lines = [line for line in log.splitlines() if line.startswith("[data] ")]
    assert data_lines and len(data_lines) == len(set(data_lines)), "the data report is printed by the main process only"
    assert log.count("[done] checkpoint") == 1
    return out


@pytest.fixture(scope="module")
def trained(work) -> dict[int, Path]:
    """The same 20 pairs trained with a global batch of 4: one process x 4 and two processes x 2."""
    return {1: _train(work, 1, per_device_batch=4), 2: _train(work, 2, per_device_batch=2)}


# ------------------------------------------------------------------ training


@pytest.mark.distributed
def test_two_process_training_matches_one_process_with_the_same_global_batch(trained):
    steps = math.ceil(TRAIN_PAIRS / 4)  # one process with per-device batch 2 would take 10
    states = {}
    for n, out in trained.items():
        checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
        assert checkpoints == [f"checkpoint-{steps}"], checkpoints  # one checkpoint, written once
        states[n] = json.loads((out / checkpoints[0] / "trainer_state.json").read_text())
        assert states[n]["global_step"] == steps and states[n]["max_steps"] == steps
        assert (out / "eval_results.json").is_file() and (out / "README.md").is_file()
        assert json.loads((out / "config.json").read_text())["rm_family"] == "bradley_terry"

    # Logged per-step metrics are gathered over the ranks: the two-process loss is the mean over both ranks'
    # pairs, which is the one-process loss over the same 4 pairs.
    logs = {n: [h for h in s["log_history"] if "loss" in h] for n, s in states.items()}
    assert [h["step"] for h in logs[1]] == [h["step"] for h in logs[2]] == list(range(1, steps + 1))
    for one, two in zip(logs[1], logs[2]):
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-4)
        assert two["accuracy"] == pytest.approx(one["accuracy"], abs=1e-6)
        assert two["num_tokens"] == one["num_tokens"]  # tokens summed over the ranks

    # DDP averages the gradients over the ranks, so both ranks took the one-process step every time: the saved
    # weights match the one-process run, and differ from the untrained backbone.
    one, two = _load_weights(trained[1]), _load_weights(trained[2])
    assert one.keys() == two.keys()
    for name in one:
        assert (one[name] - two[name]).abs().max().item() < 1e-4, name
    start = _load_weights(trained[1].parent / "backbone")
    assert (two["score.weight"] - start["score.weight"]).abs().max().item() > 1e-3


# ------------------------------------------------------------------ evaluation


def _scores(out: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "results.json").read_text())


@pytest.mark.distributed
def test_two_process_eval_matches_one_process(work, trained):
    model = trained[2]
    outs = {}
    for n in (1, 2):
        outs[n] = work / f"eval-{n}proc"
        _launch(["-m", "eval.reward_bench", "--model", str(model), "--dataset", str(work / "eval.jsonl"),
                 "--batch_size", "4", "--output_dir", str(outs[n])], n, work / f"eval-{n}proc.log")
    (rows1, res1), (rows2, res2) = _scores(outs[1]), _scores(outs[2])
    assert res1["processes"] == 1 and res2["processes"] == 2
    assert not (outs[2] / "scores.partial.jsonl").exists()
    assert [r["id"] for r in rows1] == [r["id"] for r in rows2] == [f"pair-{i}" for i in range(100, 100 + EVAL_PAIRS)]
    for a, b in zip(rows1, rows2):
        assert abs(a["chosen_score"] - b["chosen_score"]) < 1e-5 and abs(a["rejected_score"] - b["rejected_score"]) < 1e-5
        assert (a["correct"], a["subset"], a["tokens"], a["truncated"]) == (b["correct"], b["subset"], b["tokens"], b["truncated"])
    assert res1["pairs"] == res2["pairs"] == EVAL_PAIRS
    assert res1["judge_failures"] == res2["judge_failures"]  # gathered over both processes (no hang, same count)
    assert res1["subsets"] == res2["subsets"]
    assert 0 < sum(r["correct"] for r in rows1) < EVAL_PAIRS  # some right, some wrong: the comparison has teeth
    for key in ("sections", "score", "score_with_prior_sets"):
        assert res1.get(key) == res2.get(key), key


FAILURES_SCRIPT = """
import json, sys
from eval.runner import judge_failures, process_state
from judges.base import FailureLog

state = process_state()  # as the evaluators make it: a gloo group on the CPU
assert state.num_processes == 2, state
judge = type("J", (), {"failures": FailureLog()})()
for k in range(2 + 3 * state.process_index):  # rank 0: 2 failures, rank 1: 5, one reason shared
    judge.failures.add("timeout" if k % 2 else "non-finite score", f"rank{state.process_index}-item{k}")
merged = judge_failures(judge, state)  # a collective: every process calls it
if state.is_main_process:
    json.dump(merged, open(sys.argv[1], "w"))
from rm_core.errors import end_process_group
end_process_group()  # as every command ends (rm_core.errors.cli_entry): no gloo thread left for exit to abort on
"""


@pytest.mark.distributed
def test_judge_failures_of_both_processes_are_summed(tmp_path):
    """Each process's judge counts only the items it scored: results.json sums both (it held the main's ~1/2)."""
    script = tmp_path / "failures.py"
    script.write_text(FAILURES_SCRIPT)
    _launch([str(script), str(tmp_path / "merged.json")], 2, tmp_path / "failures.log")
    merged = json.loads((tmp_path / "merged.json").read_text())
    # rank 0: k = 0, 1 -> non-finite, timeout; rank 1: k = 0..4 -> 3 non-finite, 2 timeouts
    assert merged["total"] == 7 and merged["by_reason"] == {"non-finite score": 4, "timeout": 3}
    named = merged["examples"]["timeout"]
    assert "rank0-item1" in named and "rank1-item1" in named and "rank1-item3" in named


# ------------------------------------------------------------------ DeepSpeed ZeRO-3 on the CPU


def _zero3_unavailable() -> str | None:
    import importlib.util
    import shutil

    if importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed (pip install -e '.[train]')"
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return "DeepSpeed's CPU accelerator JIT-compiles its shared-memory comm op: needs a C++ compiler"
    return None


@pytest.mark.distributed
@pytest.mark.skipif(_zero3_unavailable() is not None, reason=str(_zero3_unavailable()))
@pytest.mark.parametrize("config", ["zero3", pytest.param("zero3_offload", marks=pytest.mark.heavy)])
def test_zero3_on_cpu_two_ranks(work, trained, config):
    """The ZeRO-3 config files themselves on two CPU ranks: sharded states, one full checkpoint, same weights.

    DS_ACCELERATOR=cpu: DeepSpeed's CPU accelerator (gloo, as oneCCL is not installed). `--ddp_backend gloo`:
    without it accelerate finds no device, keeps backend None and counts every rank as rank 0 of 1. No --use_cpu
    (that takes accelerate's MULTI_CPU path, which ignores DeepSpeed); bf16 is a GPU setting: --mixed_precision no.
    The first launch JIT-compiles deepspeed_shm_comm_op (and cpu_adam for the offload config): minutes on two
    cores, cached in ~/.cache/torch_extensions; hence the long timeout.
    """
    out = work / f"bt-{config}"
    cmd = [*ACCELERATE, "launch", "--config_file", str(CONFIGS / f"{config}.yaml"), "--num_processes", "2",
           "--mixed_precision", "no", "--main_process_port", "0",
           "bradley_terry_rm/train.py", "--model_name_or_path", str(work / "backbone"),
           "--dataset_name", str(work / "train.jsonl"), "--dataset_test_split", "", "--output_dir", str(out),
           "--ddp_backend", "gloo", "--seed", "0", "--max_length", "128", "--per_device_train_batch_size", "2",
           "--num_train_epochs", "1", "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "steps",
           "--save_steps", "1000", "--report_to", "none", "--disable_tqdm", "true"]
    env = _env(DS_ACCELERATOR="cpu")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    (work / f"train-{config}.log").write_text(proc.stdout)
    assert proc.returncode == 0, f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stdout[-6000:]}"
    assert proc.stdout.count("[done] checkpoint") == 1

    steps = math.ceil(TRAIN_PAIRS / 4)
    checkpoint = out / f"checkpoint-{steps}"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [checkpoint.name]
    shards = sorted(p.name for p in (checkpoint / f"global_step{steps}").glob("*optim_states.pt"))
    assert len(shards) == 2 and "zero_pp_rank_1" in shards[1], shards  # optimizer states sharded over 2 ranks
    import torch

    saved = torch.load(checkpoint / f"global_step{steps}" / shards[0], map_location="cpu", weights_only=False)
    zero = saved["ds_config"]["zero_optimization"]
    offload = "cpu" if config == "zero3_offload" else "none"
    assert zero["stage"] == 3 and saved["optimizer_state_dict"]["partition_count"] == 2
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == offload
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == steps

    # stage3_gather_16bit_weights_on_model_save: one ordinary, full checkpoint, equal to the one-process run.
    zero3, one = _load_weights(out), _load_weights(trained[1])
    assert zero3.keys() == one.keys()
    for name in one:
        assert zero3[name].shape == one[name].shape, name
        assert (zero3[name] - one[name]).abs().max().item() < 1e-4, name
    reference = {h["step"]: h["loss"] for h in json.loads(
        (trained[1] / checkpoint.name / "trainer_state.json").read_text())["log_history"] if "loss" in h}
    for h in state["log_history"]:
        if "loss" in h:
            assert h["loss"] == pytest.approx(reference[h["step"]], abs=1e-4)
    assert json.loads((out / "config.json").read_text())["rm_family"] == "bradley_terry"


@pytest.mark.distributed
def test_pair_pm_two_processes_match_one_process_with_the_same_global_batch(work):
    """pair_pm/train.py under DDP: the answer-position loss is normalised like transformers' own (answers in
    the global batch, times the number of processes), so 2 x 2 examples train the same weights as 1 x 4. Plain
    SGD without clipping, so a wrongly scaled loss shows in the weights (Adam or clipping would hide it)."""
    outs = {}
    for processes, per_device in ((1, 4), (2, 2)):
        out = work / f"pm-{processes}proc"
        args = ["pair_pm/train.py", "--model_name_or_path", str(work / "backbone"),
                "--dataset_name", str(work / "train.jsonl"), "--dataset_test_split", "", "--output_dir", str(out),
                "--use_cpu", "true", "--seed", "0", "--max_length", "160", "--per_device_train_batch_size",
                str(per_device), "--num_train_epochs", "1", "--learning_rate", "0.1", "--optim", "sgd", "--max_grad_norm", "0",
                "--lr_scheduler_type", "constant", "--logging_steps", "1", "--save_strategy", "no", "--report_to",
                "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]
        log = _launch(args, processes, work / f"pm-{processes}proc.log")
        assert log.count("[done] checkpoint") == 1
        outs[processes] = _load_weights(out)
    base = _load_weights(work / "backbone")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch_equal(outs[1][name], base[name])  # it trained
    for key in outs[1]:
        assert (outs[1][key] - outs[2][key]).abs().max().item() < 1e-4, key


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


# ------------------------------------------------------------------ ArmoRM embeddings split across processes


@pytest.mark.distributed
def test_armo_stage1_two_processes_split_the_embeddings_and_match_one_process(tmp_path):
    from safetensors.torch import load_file

    from rm_core.testing import save_tiny_backbone

    backbone = save_tiny_backbone(tmp_path / "tiny")
    rows = [{"prompt": f"What is {i} + 3?", "response": f"The answer is {i + 3}." + " Sure." * (i % 4),
             "attributes": {"correct": float(i % 2), "polite": None if i % 3 else 0.5 * (i % 4)}} for i in range(40)]
    data = _write_jsonl(tmp_path / "ratings.jsonl", rows)
    results = {}
    for n in (1, 2):
        out = tmp_path / f"armo-{n}proc"
        config = tmp_path / f"armo-{n}.yaml"
        config.write_text(f"model_name_or_path: {backbone}\noutput_dir: {out}\ndtype: float32\nmax_length: 64\n"
                          f"ratings_sources: [{data}]\nridge_alphas: [0.1, 1.0]\nembed_shard_size: 8\n")
        _launch(["armo_rm/train_regression.py", "--config", str(config)], n, tmp_path / f"armo-{n}proc.log")
        results[n] = (load_file(str(out / "regression.safetensors")), json.loads((out / "stage1.json").read_text()))
    (w1, r1), (w2, r2) = results[1], results[2]
    assert r1["embedding"]["computed"] == 40 and r2["embedding"]["computed"] == 24  # main: shards 0, 2, 4 of 5
    assert len(list((tmp_path / "armo-2proc" / "embeddings").glob("shard-*.safetensors"))) == 5
    for key in ("weight", "bias"):
        assert (w1[key] - w2[key]).abs().max() < 1e-4
    assert r1["objectives"]["polite"]["labelled"] == r2["objectives"]["polite"]["labelled"] == 14


# ------------------------------------------------------------------ the GPU smoke's CPU analogue


@pytest.mark.distributed
@pytest.mark.skipif(_zero3_unavailable() is not None, reason=str(_zero3_unavailable()))
def test_gpu_smoke_cpu_analogue_runs_the_bt_and_pair_pm_gpu_configs_on_two_ranks(work, tmp_path):
    """`python -m bench.gpu_smoke --cpu`: the Llama-3 BT and pair-PM GPU configs, launched as their headers say
    (ZeRO-3), on two CPU ranks with a tiny model; each trains its steps and saves one full model."""
    out = tmp_path / "smoke"
    cmd = [sys.executable, "-m", "bench.gpu_smoke", "--cpu", "--only", "bt-llama3-8b", "pair-pm-llama3-8b",
           "--model", str(work / "backbone"), "--data", str(work / "train.jsonl"), "--steps", "2", "--no_eval",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    report = json.loads((out / "gpu_smoke.json").read_text())
    assert set(report["recipes"]) == {"bt-llama3-8b", "pair-pm-llama3-8b"}
    for name, record in report["recipes"].items():
        assert record["ok"] and "zero3.yaml" in record["launch"], record
        train = record["steps"]["train"]
        assert "--num_processes 2" in train["command"] and "--config_file configs/accelerate/zero3.yaml" in train["command"]
        log = Path(train["log"]).read_text()
        assert log.count("[done] checkpoint") == 1, log[-3000:]
        assert (out / name / "config.json").exists()


def test_gpu_smoke_without_a_gpu_says_so_and_exits_0(monkeypatch, capsys):
    import torch

    from bench import gpu_smoke

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_smoke.main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_gpu_smoke_covers_every_gpu_config_and_reads_each_launch_line():
    from bench import gpu_smoke

    configs = sorted(str(p.relative_to(REPO)) for pattern in ("*/configs/*-8xa100.yaml", "*/configs/*-zero2.yaml")
                     for p in REPO.glob(pattern))
    assert sorted(s.config for s in gpu_smoke.SMOKES) == configs
    for smoke in gpu_smoke.SMOKES:
        options, script = gpu_smoke.launch_line(REPO / smoke.config)
        assert (REPO / script).exists(), smoke.config
        assert "--config_file" in options or "--num_processes" in options, smoke.config
