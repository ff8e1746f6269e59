"""GPU smoke of every family's GPU config: `bash bench/gpu_smoke.sh` (= `python -m bench.gpu_smoke`).

Each GPU config (`*/configs/*-8xa100.yaml`, `*-zero2.yaml`) is launched the way its header says (the same
`accelerate launch --config_file ...` and script), with SmolLM2-135M-Instruct in place of the 8B-14B backbone, a
small real data slice and a few optimizer steps; everything else comes from the config as it is: precision,
attention implementation, ZeRO stage, per-device batch, max_length. flash_attention_2 falls back to sdpa when
flash-attn is not installed, and the JSON says so. Then `eval_reward_bench` scores the result on a few LLMBar
pairs (scalar-head families). One JSON (default bench/runs/gpu_smoke/gpu_smoke.json) holds, per recipe and per step (train,
eval): wall seconds, the trainer's throughput, and the peak GPU memory of every GPU (nvidia-smi, sampled).

On a machine without a GPU it says so and exits 0: it measures nothing there. `--cpu` is its CPU analogue for
the distributed test tier: the same configs and launch files on two CPU ranks (DeepSpeed's CPU accelerator on
gloo, fp32, sdpa, `--mixed_precision no`), a given tiny model and data file, two steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
LAUNCH = re.compile(r"accelerate launch (.*?)\s*(\S+\.py)")


@dataclass
class Smoke:
    name: str
    config: str
    data: list[str] = field(default_factory=list)  # data overrides; {hh}, {gsm8k}: the shared data files
    extra: list[str] = field(default_factory=list)
    evaluate: bool = True  # eval_reward_bench afterwards (scalar heads and pair-PM)
    then: str | None = None  # a second stage launched the same way (ArmoRM's gating)


HH = ["--dataset_name", "{hh}", "--dataset_test_split", ""]
GSM8K = ["--dataset_name", "{gsm8k}", "--dataset_test_split", ""]
SMOKES = [
    Smoke("bt-llama3-8b", "bradley_terry_rm/configs/llama3-8b-8xa100.yaml", HH),
    Smoke("bt-gemma-2b", "bradley_terry_rm/configs/gemma-2b-zero2.yaml", HH),
    Smoke("odin-gemma-2b", "odin_rm/configs/gemma-2b-zero2.yaml", HH),
    Smoke("pair-pm-llama3-8b", "pair_pm/configs/llama3-8b-8xa100.yaml", HH),
    Smoke("prm-llama3-8b", "math_rm/configs/llama3-8b-prm-8xa100.yaml", GSM8K, evaluate=False),
    Smoke("orm-llama3-8b", "math_rm/configs/llama3-8b-orm-8xa100.yaml", GSM8K, evaluate=False),
    Smoke("scalar-orm-llama3-8b", "math_rm/configs/llama3-8b-scalar-orm-8xa100.yaml", GSM8K),
    Smoke("grpo-qwen2.5-14b", "pair_pm/configs/qwen2.5-14b-grpo-8xa100.yaml",
          ["--dataset_name", "{hh}"], ["--max_completion_length", "128"], evaluate=False),
    Smoke("armo-llama3-8b", "armo_rm/configs/llama3-8b-8xa100.yaml",
          ["--ratings_sources", "offline:hh-harmless[200]", "--preference_sources", "offline:hh-harmless[200]",
           "--verbosity_attribute", "verbosity", "--verbosity_from_length", "true"],
          ["--max_length", "1024"], then="armo_rm/train_gating.py"),
]


def launch_line(config: Path) -> tuple[list[str], str]:
    """(accelerate launch options, script) from the config's header comment."""
    header = " ".join(line.lstrip("#").strip().rstrip("\\") for line in config.read_text().splitlines()
                      if line.startswith("#"))
    match = LAUNCH.search(header)
    if match is None:
        raise SystemExit(f"{config}: no `accelerate launch ... script.py` line in its header")
    return shlex.split(match.group(1)), match.group(2)


def set_option(options: list[str], name: str, value: str) -> list[str]:
    """`options` with `name value` replaced or appended."""
    out = list(options)
    if name in out:
        out[out.index(name) + 1] = value
    else:
        out += [name, value]
    return out


class PeakMemory:
    """Peak memory.used (MiB) of every GPU, polled with nvidia-smi every 0.5 s while the block runs."""

    def __enter__(self):
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            for line in out.strip().splitlines():
                index, used = (x.strip() for x in line.split(","))
                self.peak[index] = max(self.peak.get(index, 0), int(used))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_step(cmd: list[str], env: dict, log: Path, gpu: bool) -> dict:
    start = time.perf_counter()
    with log.open("w") as out:
        if gpu:
            with PeakMemory() as mem:
                code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
            peak = mem.peak
        else:
            code, peak = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode, None
    step = {"command": shlex.join(cmd), "exit_code": code, "seconds": round(time.perf_counter() - start, 1),
            "log": str(log)}
    if peak is not None:
        step["peak_memory_mib_per_gpu"] = peak
    return step


def train_metrics(out_dir: Path) -> dict:
    """The trainer's throughput from the run's eval_results.json (train_* keys) when it wrote one."""
    path = out_dir / "eval_results.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text())
    found = {}
    for section in (results, results.get("train", {}), results.get("metrics", {})):
        if isinstance(section, dict):
            found.update({k: v for k, v in section.items() if k.startswith("train_") and isinstance(v, (int, float))})
    return found


def smoke_one(smoke: Smoke, args, env: dict, out_root: Path, gpu: bool) -> dict:
    from rm_core.data import shared_data_dir

    config = ROOT / smoke.config
    options, script = launch_line(config)
    options = [*options, "--main_process_port", "0"]
    out_dir = out_root / smoke.name
    record: dict = {"config": smoke.config, "launch": shlex.join(["accelerate", "launch", *options, script])}
    text = config.read_text()
    attn = re.search(r"^attn_implementation:\s*(\S+)", text, re.M)
    overrides = ["--config", str(config), "--model_name_or_path", args.model, "--output_dir", str(out_dir),
                 "--report_to", "none"]
    shared = {"{hh}": shared_data_dir() / "hh-rlhf" / "harmless-base-test.jsonl.gz",
              "{gsm8k}": shared_data_dir() / "gsm8k" / "example_model_solutions.jsonl"}
    data = [str(shared.get(d, d)) for d in smoke.data]
    if args.data and "--dataset_name" in data:
        data = set_option(data, "--dataset_name", args.data)
    overrides += data + smoke.extra
    if "armo_rm" not in smoke.config:  # a smoke run replaces its own earlier one (a finished model is refused)
        overrides += ["--max_steps", str(args.steps), "--gradient_accumulation_steps", "1", "--logging_steps", "1",
                      "--save_strategy", "no", "--resume_from_checkpoint", "fresh"]
    else:
        overrides += ["--max_steps", "50", "--overwrite", "true"]
    if gpu:
        n = min(torch_device_count(), int(options[options.index("--num_processes") + 1])
                if "--num_processes" in options else 8)
        options = set_option(options, "--num_processes", str(n))
        if attn and attn.group(1) == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            overrides += ["--attn_implementation", "sdpa"]
            record["attn_implementation"] = "sdpa (flash_attention_2 asked; flash-attn is not installed)"
        else:
            record["attn_implementation"] = attn.group(1) if attn else "model default"
    else:  # two CPU ranks: DeepSpeed's CPU accelerator on gloo; fp32 (bf16 is a GPU setting)
        options = set_option(set_option(options, "--num_processes", "2"), "--mixed_precision", "no")
        if "--config_file" not in options:  # plain multi-process launch: torchrun on gloo
            options += ["--multi_gpu"]
            env = {**env, "ACCELERATE_USE_CPU": "1"}
        overrides += ["--dtype", "float32"]
        if "armo_rm" not in smoke.config:
            overrides += ["--bf16", "false", "--ddp_backend", "gloo", "--per_device_train_batch_size", "2",
                          "--max_length", "128"]
        if attn:
            overrides += ["--attn_implementation", "sdpa"]
        record["attn_implementation"] = "sdpa" if attn else "model default"
    launcher = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *options]
    out_root.mkdir(parents=True, exist_ok=True)
    steps = {"train": run_step([*launcher, script, *overrides], env, out_root / f"{smoke.name}.train.log", gpu)}
    if smoke.then and steps["train"]["exit_code"] == 0:
        steps["train_stage2"] = run_step([*launcher, smoke.then, *overrides], env,
                                         out_root / f"{smoke.name}.stage2.log", gpu)
    steps["train"].update(train_metrics(out_dir))
    trained = all(s["exit_code"] == 0 for s in steps.values())
    if smoke.evaluate and trained and not args.no_eval:
        eval_cmd = [sys.executable, "-m", "eval.reward_bench", "--model", str(out_dir), "--limit", str(args.eval_pairs),
                    "--output_dir", str(out_root / f"{smoke.name}.eval")]
        steps["eval"] = run_step(eval_cmd, env, out_root / f"{smoke.name}.eval.log", gpu)
        if steps["eval"]["exit_code"] == 0:
            steps["eval"]["pairs_per_second"] = round(args.eval_pairs / steps["eval"]["seconds"], 2)
    record["steps"] = steps
    record["ok"] = all(s["exit_code"] == 0 for s in steps.values())
    return record


def torch_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help=f"smokes to run: {', '.join(s.name for s in SMOKES)}")
    parser.add_argument("--model", default=SMOLLM2, help="the backbone standing in for the config's (default %(default)s)")
    parser.add_argument("--data", default=None, help="a preference file replacing the data slice (pairwise recipes)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per recipe")
    parser.add_argument("--eval_pairs", type=int, default=32, help="LLMBar pairs for eval_reward_bench")
    parser.add_argument("--no_eval", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="the CPU analogue: two CPU ranks (see the docstring)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "runs" / "gpu_smoke"), help="folder of runs and logs")
    args = parser.parse_args(argv)
    gpu = not args.cpu
    if gpu and torch_device_count() == 0:
        print("gpu_smoke: this machine has no CUDA GPU; the smoke measures GPU paths only and does nothing here "
              "(its CPU analogue: --cpu).", flush=True)
        return 0
    chosen = [s for s in SMOKES if args.only is None or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in SMOKES}
    if unknown:
        parser.error(f"unknown smoke(s): {', '.join(sorted(unknown))}")
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_DISABLED="true", TOKENIZERS_PARALLELISM="false")
    if not gpu:
        env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
        env.pop("ACCELERATE_USE_CPU", None)
    out_root = Path(args.out)
    report: dict = {"device": "cpu (2 ranks)" if not gpu else gpu_name(), "model": args.model, "steps": args.steps,
                    "recipes": {}}
    for smoke in chosen:
        print(f"[gpu_smoke] {smoke.name} ...", flush=True)
        report["recipes"][smoke.name] = record = smoke_one(smoke, args, env, out_root, gpu)
        print(f"[gpu_smoke] {smoke.name}: {'ok' if record['ok'] else 'FAILED'} "
              + ", ".join(f"{k} {v['seconds']} s" for k, v in record["steps"].items()), flush=True)
    from rm_core.hub import atomic_write_json

    atomic_write_json(out_root / "gpu_smoke.json", report)
    print(f"[gpu_smoke] wrote {out_root / 'gpu_smoke.json'}", flush=True)
    return 0 if all(r["ok"] for r in report["recipes"].values()) else 1


def gpu_name() -> str:
    import torch

    return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"


if __name__ == "__main__":
    sys.exit(main())
