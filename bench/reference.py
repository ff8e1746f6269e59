"""One reference run per reward-model family on real data, at about an hour of this CPU each (issue 21).

    python -m bench.reference --family bt                      # bt, pair_pm, odin, armo, decision_tree, orm, prm
    python -m bench.reference --family bt --dry_run            # the plan: every stage, command and estimate
    python -m bench.reference --chart                          # every family's results -> overview.png

Writes bench/runs/reference/<family>/reference.json and section.md (the text for bench/RESULTS.md); with --record
also bench/records/reference-<family>.json, committed with the section so the chart can be redrawn on a machine
without the runs (`--chart --record` copies the finished runs there and draws from runs and records). Run one
family at a time, with the machine to itself: the load average (as `uptime` gives it) at the start and end of
every stage is recorded, and the section prints it beside the figures.

Stages (each writes its outputs, then its marker <family>/stages/<stage>.json atomically; a rerun skips a stage
whose marker holds the same settings, redoes one whose settings changed, and lets an interrupted evaluation
resume from its partial scores; a training run interrupted mid-way starts that run again):
1. sweep: the family's training recipe, through its own CLI (its CPU YAML plus overrides), at 3 learning rates,
   each on a slice of the training data sized to ~10% of the budget, scored on a validation slice carved from
   the TRAIN data (never the test sets); the whole sweep, validation scoring included, takes at most half the
   budget (--sweep_cap): the slices shrink to fit, and when not even 4 steps a run fit (PRM/ORM on a 2-core CPU,
   whose best-of-4 validation costs more than their training) there is no sweep and the run trains at the CPU
   YAML's learning rate with the whole budget, which the section says;
2. select: the learning rate with the best validation accuracy, and the number of pairs (questions) the rest of
   the budget allows at the speed the sweep measured (train_runtime / pairs);
3. train: one pass at that learning rate over that many pairs;
4. eval: the checkpoint on the test sets through the project's evaluators (eval.reward_bench, eval.best_of_n;
   eval.report for ArmoRM and the tree, which score from frozen-backbone embeddings and share one cache), every
   figure with its 95% interval and the length control;
5. untrained: the same backbone with the same seeded untrained head on the same sets (`--family F --seed 0`,
   as bench/bt_hh.py makes it); shared by the families that start from the same head.
--budget_minutes counts stages 1-3 (the sweep with its validation scoring, and the full run); the evaluations come
on top, estimated in the plan.

Data: HH-RLHF harmless-base, the project's fixed split (rm_core.data.hh_split): BT, ODIN and pair-PM hold out the
last --val_pairs usable train pairs as the validation slice and train on the first N of the rest; ArmoRM trains on
the first N train pairs (its own validation: 20% of them, split by prompt) and the tree on the same pairs with
ArmoRM's attributes. Tests: the 446 HH test pairs and the 419 LLMBar pairs. ORM/PRM: the GSM8K labelled solutions,
questions [0, 1000 - --val_questions) train, the last --val_questions training questions validate, best-of-4 on the
319 held-out questions beside random, majority vote and oracle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from bench._common import ROOT, run_logged
from rm_core.data import shared_data_dir
from rm_core.models import SMOLLM2
from rm_core.stats import difference_with_ci, percent_with_ci

RUNS = ROOT / "bench" / "runs" / "reference"
# Each finished run's reference.json, committed beside bench/RESULTS.md: bench/runs is a scratch folder a machine
# can lose (one was, with five families' runs in it), and the chart is redrawn from these when a run is missing.
RECORDS = ROOT / "bench" / "records"
SHARED = shared_data_dir()
HH_FILE = SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"
LLMBAR = SHARED / "llmbar"
SOLUTIONS = SHARED / "gsm8k" / "example_model_solutions.jsonl"  # as bench/math_rm_gsm8k.py
OVERHEAD_S = 60.0  # one recipe run's start, data preparation, model load and save, beside its train_runtime
GATING_S = 150.0  # one ArmoRM stage-2 run (2000 gating steps) with its start, on this CPU
SOLUTIONS_PER_QUESTION = 4
SET_ORDER = ("hh_test", "llmbar", "gsm8k_bo4")


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    data: str  # "hh": HH pairs, trained by a recipe; "embed": ArmoRM; "tree": decision tree; "gsm8k": questions
    module: str  # the training recipe (python -m MODULE)
    config: str  # its CPU YAML, the base of every run
    lrs: tuple = ()
    max_length: int = 256
    unit_seconds: float = 3.0  # prior: training seconds a pair (question) on this CPU alone (bench/RESULTS.md)
    batch: int = 8  # pairs (questions) an optimizer step
    sets: tuple = (("hh_test", 256), ("llmbar", 1024))  # (test set, max_length of its evaluation)
    untrained: str = "bradley_terry"  # --family of the untrained baseline (a seeded fresh head on the backbone)
    eval_seconds: tuple = (("hh_test", 0.6), ("llmbar", 1.0))  # prior: seconds a scored pair (question)

    def eval_s(self, set_name: str) -> float:
        return dict(self.eval_seconds)[set_name]


LRS = (1e-5, 3e-5, 1e-4)  # full fine-tunes of a 135M model for ~100 steps: around the CPU YAMLs' 2e-5 to 5e-5
FAMILIES = {f.name: f for f in [
    Family("bt", "Bradley-Terry", "hh", "bradley_terry_rm.train", "bradley_terry_rm/configs/smollm2-135m-cpu.yaml",
           LRS, 256, 3.0),
    Family("pair_pm", "pair-PM", "hh", "pair_pm.train", "pair_pm/configs/smollm2-135m-cpu.yaml", LRS, 512, 6.6,
           sets=(("hh_test", 512), ("llmbar", 1024)), untrained="pair_pm",
           eval_seconds=(("hh_test", 1.5), ("llmbar", 2.0))),
    Family("odin", "ODIN", "hh", "odin_rm.train", "odin_rm/configs/smollm2-135m-cpu.yaml", LRS, 256, 3.5),
    Family("armo", "ArmoRM", "embed", "armo_rm.train_gating", "armo_rm/configs/smollm2-135m-cpu.yaml",
           (3e-4, 1e-3, 3e-3), 1024, 0.85, sets=(("hh_test", 1024), ("llmbar", 1024)),
           eval_seconds=(("hh_test", 0.8), ("llmbar", 1.1))),
    Family("decision_tree", "decision tree over ArmoRM's attributes", "tree", "decision_tree.fit_tree", "", (), 1024,
           0.0, sets=(("hh_test", 1024), ("llmbar", 1024)), eval_seconds=(("hh_test", 0.05), ("llmbar", 0.05))),
    Family("orm", "ORM", "gsm8k", "math_rm.train_orm", "math_rm/configs/smollm2-135m-cpu-orm.yaml", LRS, 512, 9.0,
           batch=2, sets=(("gsm8k_bo4", 512),), untrained="orm", eval_seconds=(("gsm8k_bo4", 2.0),)),
    Family("prm", "PRM", "gsm8k", "math_rm.train_prm", "math_rm/configs/smollm2-135m-cpu.yaml", LRS, 512, 6.5,
           batch=2, sets=(("gsm8k_bo4", 512),), untrained="prm", eval_seconds=(("gsm8k_bo4", 2.0),)),
]}
UNTRAINED = {  # what each untrained baseline is (eval_* --family F --seed 0 on the backbone)
    "bradley_terry": "the same backbone with the same seeded untrained scalar head (`--family bradley_terry --seed 0`, as "
                     "bench/bt_hh.py scores it; shared by BT, ODIN, ArmoRM and the tree)",
    "pair_pm": "the backbone itself read as a pair-PM (`--family pair_pm`: its next-token P(\"A\") against P(\"B\"), "
               "both orders)",
    "orm": "the backbone itself read as an ORM (`--family orm`: its P(\"+\") at the judgement slot)",
    "prm": "the backbone itself read as a PRM (`--family prm`: its P(\"+\") at each step's slot, the minimum)",
}


@dataclass
class Stage:
    name: str
    phase: str  # sweep, select, train, eval, untrained
    what: str  # the plan's line
    markers: Path  # the folder of its marker
    cmds: list = field(default_factory=list)  # run in order, from the repository root
    settings: dict = field(default_factory=dict)  # what its outputs depend on (its commands are added)
    out: Path | None = None  # its output folder: started afresh, unless `resumable` and begun with the same settings
    resumable: bool = False
    prepare: Callable | None = None  # writes its inputs (data files) before the commands
    collect: Callable | None = None  # -> the result kept in its marker
    run: Callable | None = None  # in-process work instead of commands (select); gets the earlier markers
    estimate_s: float = 0.0

    @property
    def marker(self) -> Path:
        return self.markers / f"{self.name}.json"

    def key(self) -> dict:
        return canonical({**self.settings, "cmds": [display(c) for c in self.cmds]})


# ---------------------------------------------------------------- small helpers


def canonical(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def display(cmd: list) -> str:
    return shlex.join(["python" if i == 0 and c == sys.executable else str(c) for i, c in enumerate(cmd)])


def module_cmd(module: str, args: list) -> list[str]:
    return [sys.executable, "-m", module, *(str(a) for a in args)]


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def lr_tag(lr: float) -> str:
    return f"lr{lr:g}"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_info() -> dict:
    """The CPU kind from `lscpu` (else /proc/cpuinfo): model, cores, and the instruction sets that decide whether
    bf16 pays (avx2, avx512f, avx512_bf16, amx), with the library versions."""
    text = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=20).stdout
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}
    flags = set(fields.get("Flags", "").split())
    model = fields.get("Model name")
    if not flags and Path("/proc/cpuinfo").is_file():
        info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
                                                     Path("/proc/cpuinfo").read_text().splitlines()) if v}
        flags, model = set(info.get("flags", "").split()), info.get("model name")
    import torch
    import transformers

    return {"model": model, "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx": any(f.startswith("amx") for f in flags), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__}


# ---------------------------------------------------------------- data


@cache
def hh_train() -> tuple:
    """The usable train pairs of the fixed HH-RLHF split, in its order, and the rows they came from."""
    from rm_core.data import hh_split, read_rows, to_preferences

    train_rows, _ = hh_split(read_rows(HH_FILE))
    pairs, _ = to_preferences(train_rows)
    return tuple(pairs), len(train_rows)


@cache
def hh_test() -> tuple:
    """The HH test pairs as eval.report's hh_test benchmark has them (ids and subset), so cells compare."""
    from eval.report import hh_test_rows

    return tuple(hh_test_rows(HH_FILE))


@cache
def llmbar_pairs() -> int:
    from rm_core.data import load_llmbar_as_reward_bench, to_preferences

    return len(to_preferences(load_llmbar_as_reward_bench(LLMBAR))[0])


@cache
def gsm8k() -> tuple:
    """(training questions' rows, held-out rows) of the fixed GSM8K split, with their ids."""
    from rm_core.data import gsm8k_solutions_split, read_rows

    train, test = gsm8k_solutions_split(read_rows(SOLUTIONS))
    return tuple(train), tuple(test)


def set_size(set_name: str) -> int:
    return {"hh_test": lambda: len(hh_test()), "llmbar": llmbar_pairs, "gsm8k_bo4": lambda: len(gsm8k()[1])}[set_name]()


def write_jsonl(path: Path, rows) -> None:
    from rm_core.hub import atomic_write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(path, list(rows))


def hh_test_file(runs: Path) -> Path:
    return runs / "data" / "hh_test.jsonl"


def set_dataset(set_name: str, runs: Path) -> Path:
    return {"hh_test": hh_test_file(runs), "llmbar": LLMBAR, "gsm8k_bo4": SOLUTIONS}[set_name]


def write_test_data(runs: Path) -> None:
    if not hh_test_file(runs).is_file():
        write_jsonl(hh_test_file(runs), hh_test())


# ---------------------------------------------------------------- budget


MIN_SWEEP_STEPS = 4  # a sweep run shorter than this says nothing about the learning rate of the full run


def sweep_units(fam: Family, opts, val_seconds: float) -> int:
    """Pairs (questions) of one sweep run: ~sweep_share of the budget at this CPU's speed, whole steps, with the
    whole sweep (every lr's training, validation scoring and start) inside sweep_cap of the budget, so the full run
    keeps the rest. 0 when not even MIN_SWEEP_STEPS steps a run fit: the run then trains at the recipe's lr, without
    a sweep. Sized by training alone, the first PRM attempt on the AVX2-only machine spent 38 of its 50 minutes on a
    sweep whose validation (100 questions best-of-4, 8 min a run) outweighed its 20 training questions, and the full
    run got 40 questions; BT's left 88 pairs after three sweep runs of 120."""
    budget_s = opts.budget_minutes * 60
    by_share = opts.sweep_share * budget_s / fam.unit_seconds
    by_cap = (opts.sweep_cap * budget_s / len(opts.lrs or fam.lrs) - val_seconds - OVERHEAD_S) / fam.unit_seconds
    units = int(min(by_share, by_cap)) // fam.batch * fam.batch
    return units if units >= MIN_SWEEP_STEPS * fam.batch else 0


def recipe_lr(fam: Family) -> float:
    """The learning rate of the family's CPU YAML: what a run without a sweep trains at."""
    import yaml

    return float(yaml.safe_load((ROOT / fam.config).read_text())["learning_rate"])


PROBE_STEPS = 2


def probe_stage(fam: Family, opts) -> Stage:
    """Two optimizer steps of the family's recipe on the first train pairs (questions), nothing held out: this CPU's
    training seconds a pair (question), which sizes the sweep. A prior from another machine sized BT's sweep on the
    AVX2-only AMD machine at 51 of its 60 minutes (5.5 s a pair measured, 3.0 assumed)."""
    fdir, hh = family_dir(fam, opts), fam.data == "hh"
    units, lr = PROBE_STEPS * fam.batch, min(opts.lrs or fam.lrs)  # any lr: only the time is read
    rows = hh_train()[0] if hh else gsm8k()[0]
    data, out = fdir / "data" / "probe", fdir / "probe"
    args = (hh_recipe_args(fam, opts, data, out, lr, units, False) if hh else
            math_recipe_args(fam, opts, data / "train.jsonl", out, lr, None))

    def collect() -> dict:
        figures = train_figures(recipe_results(out))
        return {"units": units, "unit_seconds": round(figures["train_runtime"] / units, 3), **figures}
    return Stage("probe", "probe", f"{units} {'pairs' if hh else 'questions'} ({PROBE_STEPS} steps): this CPU's "
                 "training speed, which sizes the sweep", fdir / "stages", [module_cmd(fam.module, args)],
                 {"units": units}, out, prepare=lambda: write_jsonl(data / "train.jsonl", rows[:units]),
                 collect=collect, estimate_s=units * fam.unit_seconds + OVERHEAD_S)


def measured(fam: Family, unit_seconds: float) -> Family:
    """The family at this CPU's measured training speed; the scoring priors scaled by the same ratio (both are
    forward passes of the same backbone on the same CPU)."""
    ratio = unit_seconds / fam.unit_seconds
    return replace(fam, unit_seconds=unit_seconds,
                   eval_seconds=tuple((name, round(s * ratio, 3)) for name, s in fam.eval_seconds))


def full_units(fam: Family, opts, spent_s: float, unit_s: float, pool: int) -> int:
    """What the budget left after the sweep allows at `unit_s` seconds a pair (question), whole steps, <= pool."""
    left = opts.budget_minutes * 60 - spent_s - OVERHEAD_S
    return max(fam.batch, min(pool, int(left / unit_s) // fam.batch * fam.batch))


def steps_of(fam: Family, units: int) -> int:
    return math.ceil(units * (SOLUTIONS_PER_QUESTION if fam.data == "gsm8k" else 1) / 8)


def armo_units(fam: Family, opts, pool: int) -> int:
    """ArmoRM: its cost is one backbone forward a response, then ridge and gating runs from the cache; the pairs
    whose embedding fits the budget beside the 3 sweep gating runs and the final one, at the prior speed."""
    left = opts.budget_minutes * 60 - (len(opts.lrs or fam.lrs) + 1) * GATING_S - OVERHEAD_S
    return max(8, min(pool, int(left / fam.unit_seconds)))


def choose(rows: list[dict]) -> dict:
    """The best sweep row: the highest validation accuracy, then the tie-break figure, then the smaller lr."""
    return max(rows, key=lambda r: (r["val_accuracy"], r.get("val_tiebreak") or 0.0, -r["lr"]))


def select(fam: Family, opts, sweep_markers: list[dict], pool: int) -> dict:
    """Stage 2: the best learning rate on the validation slice, and N from the speed the sweep measured."""
    rows = [{**m["result"], "seconds": m["seconds"]} for m in sweep_markers]
    best = choose(rows)
    probe_s = (getattr(opts, "probe", None) or {}).get("seconds", 0.0)
    spent = sum(r["seconds"] for r in rows) + probe_s  # the probe is in the budget
    out = {"lr": best["lr"], "sweep_seconds": round(spent, 1), "table": rows}
    if fam.data in ("hh", "gsm8k"):
        unit_s = statistics.median(r["train_runtime"] / r["units"] for r in rows)
        units = full_units(fam, opts, spent, unit_s, pool)
        out.update(units=units, steps=steps_of(fam, units), measured_unit_seconds=round(unit_s, 3),
                   estimated_train_seconds=round(units * unit_s + OVERHEAD_S))
    return out


# ---------------------------------------------------------------- what each stage reads back


def recipe_results(out: Path) -> dict:
    return read_json(out / "eval_results.json") or {}


def train_figures(res: dict) -> dict:
    """train_runtime, loss and the data report of a recipe's eval_results.json (tokens/s where it counts tokens)."""
    train = res.get("train", {})
    data = {k: v for k, v in (res.get("data") or {}).items() if isinstance(v, (int, float, str))}
    out = {"train_runtime": train.get("train_runtime"), "train_loss": train.get("train_loss"), "data": data}
    stats = (res.get("data") or {}).get("train")
    tokens = stats.get("tokens") if isinstance(stats, dict) else None  # math_rm: the tokens of one epoch
    if tokens and train.get("train_runtime"):
        out.update(non_pad_tokens=tokens, tokens_per_second=round(tokens * train.get("epoch", 1) / train["train_runtime"], 1))
    return out


def tokens_per_second(log: Path) -> dict:
    """Non-pad tokens and tokens/s from a Trainer log with logging_steps 1 (bench/bt_hh.py's reader); {} when the
    log does not have them."""
    from bench.bt_hh import train_speed

    try:
        return train_speed(log)
    except (IndexError, ValueError, OSError):
        return {}


def val_interval(accuracy: float | None, n: int | None) -> list | None:
    """The 95% bootstrap interval of a validation accuracy over its n items (rm_core.stats.bootstrap_ci)."""
    from rm_core.stats import bootstrap_ci

    if accuracy is None or not n:
        return None
    correct = round(accuracy * n)
    return [round(x, 4) for x in bootstrap_ci([1.0] * correct + [0.0] * (n - correct), proportion=True)]


def sweep_collect(fam: Family, lr: float, units: int, out: Path, log: Path) -> Callable:
    def collect() -> dict:
        res = recipe_results(out)
        if fam.data == "gsm8k":
            bon = res["best_of_n"]
            acc, n = bon[fam.name]["accuracy"], bon["questions"]
            extra = {"val_tiebreak": bon[fam.name]["weighted_vote_accuracy"],
                     "val_baselines": {k: bon.get(k) for k in ("random", "majority_vote", "oracle")}}
        elif fam.data == "embed":
            acc, n, extra = res["val_accuracy"], res["val_pairs"], {"gating_train_seconds": res.get("gating_train_seconds")}
        else:
            held = res["held_out"]
            acc, n, extra = held["accuracy"], held["pairs"], {"val_held_out": held}
        return {"lr": lr, "units": units, "val_accuracy": acc, "val_items": n, "val_ci95": val_interval(acc, n),
                **extra, **train_figures(res), **tokens_per_second(log)}
    return collect


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    fam: Family
    opts: argparse.Namespace
    dir: Path
    budget: dict
    stages: list
    estimates: dict


def family_dir(fam: Family, opts) -> Path:
    return Path(opts.runs_dir) / fam.name


def hh_recipe_args(fam: Family, opts, data: Path, out: Path, lr: float, units: int, val: bool) -> list:
    """The overrides of one HH run on the family's CPU YAML: bench/odin_hh.py's train_args (BT, ODIN) or
    bench/pair_pm_hh.py's (pair-PM: 8 pairs a step, each in both orders); the validation slice as the held-out
    split of a sweep run, none in the full run."""
    ns = SimpleNamespace(max_length=fam.max_length, batch_size=fam.batch, learning_rate=lr)
    if fam.name == "pair_pm":
        from bench.pair_pm_hh import train_args

        return train_args(data, out, ns, "--model_name_or_path", opts.model, "--max_steps", steps_of(fam, units),
                          "--dataset_test_split", "test" if val else "")[2:] + extra_recipe_args(opts)
    from bench.odin_hh import train_args  # its --dataset_test_split "": no held-out set unless a sweep asks for one

    args = train_args(ns, opts.model, data, out, steps_of(fam, units))
    if val:  # the sweep's validation slice is the run's held-out split
        args[args.index("--dataset_test_split") + 1] = "test"
    return ["--config", fam.config, *args, "--disable_tqdm", "true", *extra_recipe_args(opts)]


def math_recipe_args(fam: Family, opts, data: Path, out: Path, lr: float, val: Path | None) -> list:
    """One ORM/PRM run on the family's CPU YAML: the training questions' file (≤ 1000 rows: the fixed split leaves
    no held-out part in it), the validation questions as its held-out set in a sweep run, one epoch, batch 8."""
    args = ["--config", fam.config, "--model_name_or_path", opts.model, "--dataset_name", data, "--output_dir", out,
            "--max_length", fam.max_length, "--learning_rate", lr, "--per_device_train_batch_size", 8,
            "--save_strategy", "no", "--logging_steps", 1, "--disable_tqdm", "true"]
    return args + (["--eval_dataset_name", val] if val else []) + extra_recipe_args(opts)


def extra_recipe_args(opts) -> list[str]:
    """--recipe_args: the options every training command of the run gets last (so they override the YAML and the
    bench's own), e.g. "--judgement_loss tokens". They are in each stage's commands, so a change reruns the stages."""
    return shlex.split(getattr(opts, "recipe_args", None) or "")


def armo_config(fam: Family, fdir: Path) -> Path:
    return fdir / "armo-cpu.yaml"


def write_armo_config(fam: Family, fdir: Path) -> Path:
    """The ArmoRM CPU YAML with test_sources emptied (a list flag cannot be emptied on the command line): no run of
    this bench scores a test set inside training; the evaluation stage does, through eval.report."""
    import yaml

    from rm_core.hub import atomic_write_text

    fields = yaml.safe_load((ROOT / fam.config).read_text(encoding="utf-8"))
    fields["test_sources"] = []
    path = armo_config(fam, fdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f"# {fam.config} with test_sources: [] (bench/reference.py)\n"
                            + yaml.safe_dump(fields, sort_keys=False))
    return path


def armo_cmds(fam: Family, opts, fdir: Path, out: Path, units: int, lr: float) -> list[list[str]]:
    common = ["--config", armo_config(fam, fdir), "--model_name_or_path", opts.model, "--output_dir", out,
              "--embedding_cache", fdir / "embeddings", "--max_length", fam.max_length,
              "--ratings_sources", f"offline:hh-harmless[{units}]", "--preference_sources",
              f"offline:hh-harmless[{units}]", "--quiet"]
    return [module_cmd("armo_rm.train_regression", common),
            module_cmd("armo_rm.train_gating", [*common, "--learning_rate", lr])]


def eval_stages(fam: Family, opts, fdir: Path, model: Path, model_key: dict) -> list[Stage]:
    """The trained checkpoint on every test set of the family."""
    markers, runs = fdir / "stages", Path(opts.runs_dir)
    if fam.data in ("embed", "tree"):  # one eval.report run: both sets from one embedding cache
        cache = Path(opts.runs_dir) / "armo" / "embeddings"
        out = fdir / "eval"
        cmd = module_cmd("eval.report", ["--judge", f"{fam.name}={model}", *[a for s, _ in fam.sets for a in ("--bench", s)],
                                         "--embedding_cache", cache, "--max_length", fam.max_length,
                                         "--output_dir", out, "--quiet"])
        est = sum(set_size(s) * fam.eval_s(s) for s, _ in fam.sets)
        return [Stage("eval", "eval", f"{fam.name} on {', '.join(s for s, _ in fam.sets)} (eval.report, embedding "
                      "cache shared with ArmoRM)", markers, [cmd], {"model": model_key}, out, True,
                      collect=lambda: {"folders": report_folders(out, fam.name)}, estimate_s=est)]
    stages = []
    for set_name, max_length in fam.sets:
        out = fdir / f"eval-{set_name}"
        stages.append(Stage(f"eval-{set_name}", "eval", f"{fam.name} on {set_name} (max_length {max_length})", markers,
                            [eval_cmd(set_name, model, max_length, out, runs)], {"model": model_key}, out, True,
                            prepare=lambda: write_test_data(runs), collect=lambda out=out, s=set_name: {"folders": {s: str(out)}},
                            estimate_s=set_size(set_name) * fam.eval_s(set_name)))
    return stages


def eval_cmd(set_name: str, model, max_length: int, out: Path, runs: Path, family: str | None = None) -> list[str]:
    args = ["--model", model, "--dataset", set_dataset(set_name, runs), "--max_length", max_length, "--output_dir", out,
            "--quiet"]
    if set_name == "gsm8k_bo4":
        args += ["--split", "test"]
    if family:
        args += ["--family", family, "--seed", 0]
    return module_cmd("eval.best_of_n" if set_name == "gsm8k_bo4" else "eval.reward_bench", args)


def report_folders(out: Path, judge: str) -> dict:
    """{set: the folder of eval.report's cell (results.json, scores.jsonl)} from its report.json."""
    from eval.report import cell_dir

    report = read_json(out / "report.json")
    return {b: str(cell_dir(out, judge, b, cell["key"])) for b, cell in report["results"][judge].items()}


def untrained_stages(fam: Family, opts) -> list[Stage]:
    """The same backbone with the same seeded untrained head, on the same sets (shared between families)."""
    base, runs = Path(opts.runs_dir) / "untrained", Path(opts.runs_dir)
    stages = []
    for set_name, max_length in fam.sets:
        name = f"{fam.untrained}-{set_name}-{max_length}"
        out = base / name
        est = set_size(set_name) * dict(FAMILIES["bt" if fam.untrained == "bradley_terry" else fam.name].eval_seconds)[set_name]
        stages.append(Stage(name, "untrained", f"untrained {fam.untrained} (seed 0) on {set_name} (max_length {max_length})",
                            base / "stages", [eval_cmd(set_name, opts.model, max_length, out, runs, fam.untrained)],
                            {}, out, True, prepare=lambda: write_test_data(runs),
                            collect=lambda out=out, s=set_name: {"folders": {s: str(out)}}, estimate_s=est))
    return stages


def plan(fam: Family, opts, chosen: dict | None = None) -> Plan:
    """Every stage of the family's reference run. Before the sweep has run (and in --dry_run) the full run's lr
    and size are estimates (the middle lr; N at the prior speed); `chosen` (select's result) replaces them."""
    fdir = family_dir(fam, opts)
    markers = fdir / "stages"
    lrs = tuple(opts.lrs or fam.lrs)
    budget = {"budget_minutes": opts.budget_minutes, "counts": "the learning-rate sweep (its training runs and "
              "validation scoring) and the full training run; the evaluations come on top", "model": opts.model,
              "max_length": fam.max_length, "lrs": list(lrs), "sweep_share": opts.sweep_share,
              "unit_seconds": fam.unit_seconds, "speed_from": "the probe (2 steps on this CPU)" if getattr(
                  opts, "probe", None) else "--unit_seconds" if opts.unit_seconds else "the family's prior"}
    if getattr(opts, "probe", None):
        budget["probe"] = opts.probe
    stages: list[Stage] = []
    est: dict = {}
    if fam.data in ("hh", "gsm8k"):  # the validation slice: the end of the training part, never trained on
        hh = fam.data == "hh"
        rows = hh_train()[0] if hh else gsm8k()[0]
        n_val = opts.val_pairs if hh else opts.val_questions
        val, pool = list(rows[-n_val:]), list(rows[:-n_val])
        val_s = len(val) * fam.eval_s(fam.sets[0][0])
        k = min(sweep_units(fam, opts, val_s), len(pool))
        unit = "pairs" if hh else "questions"
        sweep_data = fdir / "data" / "sweep"  # HH: a folder of train.jsonl + test.jsonl; GSM8K: two files
        if hh:
            def prepare():
                write_jsonl(sweep_data / "train.jsonl", pool[:k])
                write_jsonl(sweep_data / "test.jsonl", val)

            def args(out, lr):
                return hh_recipe_args(fam, opts, sweep_data, out, lr, k, True)
        else:
            def prepare():
                write_jsonl(sweep_data / "train.jsonl", pool[:k])
                write_jsonl(sweep_data / "val.jsonl", val)

            def args(out, lr):
                return math_recipe_args(fam, opts, sweep_data / "train.jsonl", out, lr, sweep_data / "val.jsonl")
        how = f"scored on the {len(val)} validation pairs" if hh else f"best-of-4 on the {len(val)} validation questions"
        for lr in lrs if k else ():
            out = fdir / f"sweep-{lr_tag(lr)}"
            stages.append(Stage(f"sweep-{lr_tag(lr)}", "sweep", f"lr {lr:g}: {k} {unit} ({steps_of(fam, k)} steps), {how}",
                                markers, [module_cmd(fam.module, args(out, lr))], {"units": k, "val": len(val)}, out,
                                prepare=prepare, collect=sweep_collect(fam, lr, k, out, fdir / "logs" / f"{out.name}.log"),
                                estimate_s=k * fam.unit_seconds + val_s + OVERHEAD_S))
        budget.update(usable_train_pairs=len(rows), val_items=len(val), pool=len(pool), sweep_units=k,
                      sweep_steps=steps_of(fam, k), batch=fam.batch, unit=unit, sweep_cap=opts.sweep_cap,
                      val=f"the last {len(val)} usable train pairs, held out of every run" if hh else
                      f"training questions {len(pool)}-{len(rows) - 1}, held out of every run")
    elif fam.data == "embed":
        pairs, _ = hh_train()
        k = armo_units(fam, opts, len(pairs))
        for i, lr in enumerate(lrs):
            out = fdir / f"sweep-{lr_tag(lr)}"
            stages.append(Stage(f"sweep-{lr_tag(lr)}", "sweep", f"gating lr {lr:g} on {k} pairs (stage 1 from the "
                                "shared embedding cache" + (", which this run fills" if i == 0 else "") + ")", markers,
                                armo_cmds(fam, opts, fdir, out, k, lr), {"units": k}, out,
                                prepare=lambda: write_armo_config(fam, fdir),
                                collect=sweep_collect(fam, lr, k, out, fdir / "logs" / f"sweep-{lr_tag(lr)}-1.log"),
                                estimate_s=(k * fam.unit_seconds if i == 0 else 0) + GATING_S))
        budget.update(usable_train_pairs=len(pairs), pool=len(pairs), units=k, unit="pairs",
                      val="ArmoRM's own: 20% of the training pairs, split by prompt (val_fraction 0.2)",
                      embedding_prior_seconds_a_pair=fam.unit_seconds)
    if fam.data in ("hh", "gsm8k") and not budget["sweep_units"]:  # no sweep fits: the recipe's lr, the whole budget
        spent = (getattr(opts, "probe", None) or {}).get("seconds", 0.0)
        units = full_units(fam, opts, spent, fam.unit_seconds, budget["pool"])
        chosen = {"lr": recipe_lr(fam), "units": units, "steps": steps_of(fam, units)}
        budget["no_sweep"] = (
            f"no learning-rate sweep: at {fam.unit_seconds} s a {budget['unit'][:-1]}, fewer than {MIN_SWEEP_STEPS} "
            f"steps of training a run fit both in {opts.sweep_share:.0%} of the budget (--sweep_share) and, with each "
            f"run's validation ({len(val)} {budget['unit']}, ~{val_s / 60:.0f} min) and start, {len(lrs)} runs in "
            f"{opts.sweep_cap:.0%} of it (--sweep_cap); the run trains at the CPU YAML's lr on as many "
            f"{budget['unit']} as the budget allows (a smaller --val_{'pairs' if hh else 'questions'} or a larger "
            "--budget_minutes brings the sweep back)")
        est["sweep_s"] = 0.0
    elif fam.data in ("hh", "gsm8k", "embed"):
        sweeps = list(stages)
        stages.append(Stage("select", "select", "the best lr on the validation slice; N from the measured speed",
                            markers, settings={"budget_minutes": opts.budget_minutes, "pool": budget["pool"],
                                               "sweep": [s.key() for s in sweeps]},
                            run=lambda done: select(fam, opts, [done[s.name] for s in sweeps], budget["pool"])))
        if chosen is None:
            spent = sum(s.estimate_s for s in stages)
            chosen = {"lr": lrs[len(lrs) // 2], "estimate": True}
            if fam.data != "embed":
                units = full_units(fam, opts, spent, fam.unit_seconds, budget["pool"])
                chosen.update(units=units, steps=steps_of(fam, units))
        est["sweep_s"] = sum(s.estimate_s for s in stages)
    final = fdir / "final"
    if fam.data in ("hh", "gsm8k"):
        units, lr = chosen["units"], chosen["lr"]
        full_data = fdir / "data" / "full"
        args = (hh_recipe_args(fam, opts, full_data, final, lr, units, False) if fam.data == "hh" else
                math_recipe_args(fam, opts, full_data / "train.jsonl", final, lr, None))
        steps = (f"{steps_of(fam, units)} steps of {fam.batch}" if fam.data == "hh"
                 else f"~{steps_of(fam, units)} steps of 8 solutions")
        stages.append(Stage("train", "train", f"lr {lr:g}: {units} {budget['unit']}, {steps}", markers,
                            [module_cmd(fam.module, args)], {"units": units, "lr": lr}, final,
                            prepare=lambda: write_jsonl(full_data / "train.jsonl", pool[:units]),
                            collect=lambda: {**train_figures(recipe_results(final)),
                                             **tokens_per_second(fdir / "logs" / "train.log")},
                            estimate_s=units * fam.unit_seconds + OVERHEAD_S))
    elif fam.data == "embed":
        units, lr = budget["units"], chosen["lr"]
        stages.append(Stage("train", "train", f"gating lr {lr:g} on {units} pairs (stage 1 again: from the cache)",
                            markers, armo_cmds(fam, opts, fdir, final, units, lr), {"units": units, "lr": lr}, final,
                            prepare=lambda: write_armo_config(fam, fdir),
                            collect=lambda: {k: v for k, v in recipe_results(final).items()
                                             if k in ("val_accuracy", "val_pairs", "train_accuracy", "penalties",
                                                      "gating_train_seconds", "pairs", "train_pairs")},
                            estimate_s=GATING_S))
    elif fam.data == "tree":
        armo = read_json(Path(opts.runs_dir) / "armo" / "stages" / "train.json")
        if armo is None:
            units, armo_key = plan(FAMILIES["armo"], opts).budget["units"], {"estimate": True}
            budget["armo"] = "not run yet: N is ArmoRM's estimate at this budget"
        else:
            units, armo_key = armo["settings"]["units"], armo["settings"]
        armo_model = Path(opts.runs_dir) / "armo" / "final"
        prefs, cache = fdir / "prefs-train", Path(opts.runs_dir) / "armo" / "embeddings"
        stages.append(Stage("collect", "train", f"human labels of the {units} ArmoRM training pairs, both orders",
                            markers, [module_cmd("decision_tree.collect_preferences",
                                                 ["--pairs", f"offline:hh-harmless[{units}]", "--judge", "human",
                                                  "--output_dir", prefs, "--quiet"])], {"units": units}, prefs,
                            estimate_s=30))
        stages.append(Stage("train", "train", "fit_tree: depth 1-6 x min leaf {1, 5, 10, 25, 50} by 5-fold CV grouped by "
                            "pair (its own hyperparameter search, on the training pairs)", markers,
                            [module_cmd("decision_tree.fit_tree", ["--preferences", prefs, "--judge", "human",
                                                                   "--attribute_model", armo_model, "--embedding_cache",
                                                                   cache, "--output_dir", final, "--quiet"])],
                            {"units": units, "armo": armo_key}, final,
                            collect=lambda: {k: v for k, v in (read_json(final / "config.json") or {}).items()
                                             if k in ("best", "cv_accuracy_by_depth", "train_pairs", "left_out")},
                            estimate_s=120))
        budget.update(units=units, unit="pairs", pool=len(hh_train()[0]), armo_model=str(armo_model),
                      val="5-fold cross-validation on the training pairs (fit_tree)")
    est["train_s"] = sum(s.estimate_s for s in stages if s.phase == "train")
    model_key = next(s.key() for s in stages if s.name == "train")
    stages += eval_stages(fam, opts, fdir, final, model_key)
    stages += untrained_stages(fam, opts)
    est["eval_s"] = sum(s.estimate_s for s in stages if s.phase == "eval")
    est["untrained_s"] = sum(s.estimate_s for s in stages if s.phase == "untrained")
    if fam.data != "tree":
        budget.update(lr=chosen["lr"], chosen_by_sweep=not chosen.get("estimate") and not budget.get("no_sweep"))
        if "units" in chosen:
            budget.update(units=chosen["units"], steps=chosen["steps"])
    return Plan(fam, opts, fdir, budget, stages, est)


# ---------------------------------------------------------------- running


def run_stage(stage: Stage, logs: Path, done: dict) -> dict:
    """Run one stage unless its marker holds the same settings; returns its marker."""
    from rm_core.hub import atomic_write_json

    key = stage.key()
    old = read_json(stage.marker)
    if old is not None and old.get("settings") == key:
        print(f"[reference] {stage.name}: done already ({stage.marker})", flush=True)
        return old
    started = stage.marker.with_name(f"{stage.name}.started.json")
    begun = read_json(started)
    if stage.out is not None and stage.out.exists() and not (stage.resumable and begun and begun.get("settings") == key):
        shutil.rmtree(stage.out)  # another run's outputs, or a training run cut short: start afresh
    stage.markers.mkdir(parents=True, exist_ok=True)
    atomic_write_json(started, {"settings": key})
    print(f"[reference] {stage.name}: {stage.what}", flush=True)
    load_start, t0, started_at = load_average(), time.perf_counter(), time.time()
    if stage.prepare is not None:
        stage.prepare()
    for i, cmd in enumerate(stage.cmds):
        run_logged(cmd, logs / (f"{stage.name}-{i}.log" if len(stage.cmds) > 1 else f"{stage.name}.log"))
    result = stage.run(done) if stage.run is not None else (stage.collect() if stage.collect else {})
    entry = {"settings": key, "result": result, "seconds": round(time.perf_counter() - t0, 1),
             "started_at": started_at, "ended_at": time.time(),  # epoch seconds: "finished" is whole seconds
             "load_start": load_start, "load_end": load_average(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(stage.marker, entry)
    started.unlink(missing_ok=True)
    return entry


def probe(fam: Family, opts) -> tuple[Family, dict]:
    """The family at the speed its probe stage measures on this CPU (run once; a rerun reads its marker), and the
    marker: the run's first stage, so its load at the start is the run's."""
    marker = run_stage(probe_stage(fam, opts), family_dir(fam, opts) / "logs", {})
    opts.probe = {**marker["result"], "seconds": marker["seconds"], "prior_unit_seconds": fam.unit_seconds}
    fam = measured(fam, marker["result"]["unit_seconds"])
    print(f"[reference] probe: {fam.unit_seconds} s a {'pair' if fam.data == 'hh' else 'question'} on this CPU "
          f"(prior {opts.probe['prior_unit_seconds']})", flush=True)
    return fam, marker


def record_path(family: str, records: Path = RECORDS) -> Path:
    return records / f"reference-{family}.json"


def save_record(family: str, reference: dict, records: str | Path) -> None:
    from rm_core.hub import atomic_write_json

    atomic_write_json(record_path(family, Path(records)), reference)


def run(fam: Family, opts) -> dict:
    done: dict = {}
    if fam.data in ("hh", "gsm8k") and not opts.unit_seconds:  # size the sweep from this CPU's speed
        fam, done["probe"] = probe(fam, opts)
    first = plan(fam, opts)
    if fam.data == "tree" and read_json(Path(opts.runs_dir) / "armo" / "stages" / "train.json") is None:
        raise SystemExit("the decision tree reads the ArmoRM reference: run `python -m bench.reference --family armo` first")
    load = {"invocation_start": load_average()}
    logs = first.dir / "logs"
    for stage in first.stages:
        done[stage.name] = run_stage(stage, logs, done)
        if stage.name == "select":
            break
    final = plan(fam, opts, done["select"]["result"]) if "select" in done else first
    for stage in final.stages:
        if stage.name not in done:
            done[stage.name] = run_stage(stage, logs, done)
    load["invocation_end"] = load_average()
    reference = build_reference(final, done, load, reused_stages(final, done))
    from rm_core.hub import atomic_write_json, atomic_write_text

    atomic_write_json(final.dir / "reference.json", reference)
    atomic_write_text(final.dir / "section.md", section_markdown(reference))
    if opts.record:
        save_record(fam.name, reference, opts.record)
    print(section_markdown(reference))
    return reference


def print_plan(p: Plan) -> None:
    fam, b, est = p.fam, p.budget, p.estimates
    print(f"[reference] {fam.name}: {fam.title}, backbone {b['model']} (the plan: nothing runs)")
    if fam.data != "tree":
        print(f"budget: {b['budget_minutes']:g} min for {b['counts']}")
    if fam.data in ("hh", "gsm8k"):
        print(f"data: {b['usable_train_pairs']} usable training {b['unit']}; validation: {b['val']}; pool {b['pool']}")
        speed = (f"at {fam.unit_seconds} s a {b['unit'][:-1]} ({b['speed_from']}; a run without --unit_seconds first "
                 f"measures it: {PROBE_STEPS} steps)")
        print(f"sweep: {b['no_sweep']}; {speed}" if b.get("no_sweep") else
              f"sweep: lr {', '.join(f'{x:g}' for x in b['lrs'])} on the first {b['sweep_units']} {b['unit']} "
              f"({b['sweep_steps']} steps) each {speed}")
        print(f"full run{' (estimate: lr and N are set by the sweep)' if not b['chosen_by_sweep'] and not b.get('no_sweep') else ''}: "
              f"{b['units']} {b['unit']}, {b['steps']} steps, max_length {b['max_length']}, lr {b['lr']:g}")
    elif fam.data == "embed":
        print(f"data: the first {b['units']} of {b['pool']} train pairs (embedding prior {fam.unit_seconds} s a pair); "
              f"validation: {b['val']}; gating lr sweep {', '.join(f'{x:g}' for x in b['lrs'])}")
    else:
        print(f"data: the {b['units']} pairs of the ArmoRM reference; hyperparameters: {b['val']}")
    print("test sets: " + ", ".join(f"{s} ({set_size(s)} {'questions' if s == 'gsm8k_bo4' else 'pairs'}, max_length {L})"
                                    for s, L in fam.sets))
    for s in p.stages:
        print(f"  [{s.phase}] {s.name}: {s.what}" + (f"  (~{s.estimate_s / 60:.1f} min)" if s.estimate_s else ""))
        for cmd in s.cmds:
            print(f"      $ {display(cmd)}")
    total = sum(est.values())
    print(f"estimated: sweep {est.get('sweep_s', 0) / 60:.0f} min + training {est['train_s'] / 60:.0f} min + "
          f"evaluation {est['eval_s'] / 60:.0f} min + untrained baseline {est['untrained_s'] / 60:.0f} min "
          f"(a stage an earlier run made is skipped) = {total / 60:.0f} min")


# ---------------------------------------------------------------- the reference and its section


def digest(kind: str, summary: dict) -> dict:
    """What the section and the chart read of one evaluation: eval.report's headline numbers with their intervals,
    the main one, the length control and both orders."""
    from eval.report import headline, headline_ci, main_metric

    head, cis = headline(kind, summary), headline_ci(kind, summary)
    metric = main_metric(kind, head)
    return {"metric": metric, "value": head.get(metric), "ci95": cis.get(metric), "headline": head,
            "headline_ci95": cis, "length": summary.get("length"), "order": summary.get("order"),
            "items": next((summary[u] for u in ("pairs", "prompts", "questions", "items", "solutions") if u in summary),
                          None)}


def set_entry(kind: str, trained: str | Path, untrained: str | Path) -> dict:
    """One test set: the trained and the untrained model's digests and their paired difference (eval.report's)."""
    from eval.report import headline_paths, paired_difference, read_scored, scoring_module

    (summary_t, rows_t), (summary_u, rows_u) = read_scored(trained), read_scored(untrained)
    entry = {"kind": kind, "trained": digest(kind, summary_t), "untrained": digest(kind, summary_u),
             "folders": {"trained": str(trained), "untrained": str(untrained)}}
    path = headline_paths(kind, summary_t).get(entry["trained"]["metric"])
    units = scoring_module(kind).units
    entry["trained_minus_untrained"] = paired_difference(kind, units(rows_t), units(rows_u), path) if path else None
    return entry


def reused_stages(p: Plan, done: dict) -> list[str]:
    """The untrained baselines (shared by the families) that another family's run made: finished before this
    family's first own stage began. Their load and time belong to that run; a resumed or rebuilt run keeps its own."""
    def ended(m: dict) -> float:  # markers written before started_at / ended_at existed: whole seconds
        return m.get("ended_at") or time.mktime(time.strptime(m["finished"], "%Y-%m-%d %H:%M:%S"))

    began = min((done[s.name].get("started_at") or ended(done[s.name]) - done[s.name]["seconds"]
                 for s in p.stages if s.phase != "untrained"), default=math.inf)
    return [s.name for s in p.stages if s.phase == "untrained" and ended(done[s.name]) <= began]


def build_reference(p: Plan, done: dict, load: dict, reused: list[str] = ()) -> dict:
    """reference.json of a finished run. `reused`: stages made by another family's run (shared untrained baselines),
    left out of this run's load figures and named with when they ran."""
    from eval.report import builtin_benchmarks

    benches = builtin_benchmarks(SHARED)
    folders = {phase: {k: v for s in p.stages if s.phase == phase for k, v in done[s.name]["result"]["folders"].items()}
               for phase in ("eval", "untrained")}
    sets = {set_name: {"title": benches[set_name]["title"], "max_length": max_length,
                       **set_entry(benches[set_name]["kind"], folders["eval"][set_name], folders["untrained"][set_name])}
            for set_name, max_length in p.fam.sets}
    seconds = {}
    for s in p.stages:
        if s.name not in reused:
            seconds[s.phase] = round(seconds.get(s.phase, 0.0) + done[s.name]["seconds"], 1)
    ran = sorted((m for name, m in done.items() if "load_start" in m and name not in reused), key=lambda m: m["finished"])
    budget = dict(p.budget)
    if "select" in done:
        sel = done["select"]["result"]
        budget.update({k: sel[k] for k in ("measured_unit_seconds", "estimated_train_seconds") if k in sel})
    command = f"python -m bench.reference --family {p.fam.name} --budget_minutes {p.opts.budget_minutes:g}" + (
        f" --unit_seconds {p.opts.unit_seconds:g}" if p.opts.unit_seconds else "") + (
        f" --recipe_args {shlex.quote(p.opts.recipe_args)}" if getattr(p.opts, "recipe_args", None) else "")
    return {"family": p.fam.name, "title": p.fam.title, "command": command, "machine": cpu_info(),
            "load": {**load, "start": ran[0]["load_start"] if ran else None, "end": ran[-1]["load_end"] if ran else None,
                     "highest_1min_at_a_stage_start": max((m["load_start"][0] for m in ran), default=None),
                     "stages": {name: [m["load_start"], m["load_end"]] for name, m in done.items()},
                     "reused": {name: {"finished": done[name]["finished"], "load_start": done[name]["load_start"]}
                                for name in reused}},
            "budget": budget, "sweep": (done.get("select") or {}).get("result", {}).get("table"),
            "train": done["train"]["result"], "untrained": {"family": p.fam.untrained, "seed": 0},
            "wall_seconds": {**seconds, "total": round(sum(seconds.values()), 1)}, "sets": sets,
            "commands": {s.name: [display(c) for c in s.cmds] for s in p.stages if s.cmds},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def pct(value, ci=None) -> str:
    return percent_with_ci(value, ci, unit="%")


def length_cell(block: dict | None, key: str) -> str:
    return "n/a" if not block else pct(block.get(key), (block.get("ci95") or {}).get(key))


def spearman_cell(block: dict | None) -> str:
    rho = (block or {}).get("spearman_score_length")
    return "n/a" if rho is None else f"{rho:+.2f}"


def difference_cell(d: dict | None) -> str:
    if not d or d.get("difference") is None:
        return "n/a"
    return difference_with_ci(d["difference"], d["low"], d["high"]) + (" (excludes 0)" if d["excludes_zero"] else "")


def machine_lines(ref: dict) -> list[str]:
    m, load = ref["machine"], ref["load"]
    flags = ", ".join(f"{k} {'yes' if m.get(k) else 'no'}" for k in ("avx2", "avx512f", "avx512_bf16", "amx"))
    alone = (load.get("start") or [9])[0] < 0.5 and (load.get("highest_1min_at_a_stage_start") or 0) <= m["cpus"] + 0.5
    verdict = ("nothing else ran: the load at the start was below 0.5 and no stage started above the run's own "
               f"{m['cpus']} busy cores plus 0.5 (a 1-min reading just above {m['cpus']} is the run's own start-up "
               "threads, or something too brief to move a stage's time)" if alone else
               "**the machine was NOT to itself**: the timings (and so the number of pairs the budget allowed) are low; "
               "the accuracies hold for the budget as stated")

    def fmt(x):
        return "n/a" if not x else " / ".join(f"{v:.2f}" for v in x)

    return [f"Machine: {m['model']}, {m['cpus']} cores ({flags}); torch {m['torch']}, transformers {m['transformers']}, "
            f"fp32. Load average (1 / 5 / 15 min, `uptime`): {fmt(load.get('start'))} at the start, "
            f"{fmt(load.get('end'))} at the end, highest 1-min figure at a stage start "
            f"{load.get('highest_1min_at_a_stage_start')}. So {verdict}. Finished {ref['finished']}."
            + "".join(f" The stage {name} was reused from an earlier run (finished {r['finished']}, load "
                      f"{fmt(r['load_start'])} at its start): its scores are deterministic, its time is not this run's."
                      for name, r in (load.get("reused") or {}).items())]


def budget_lines(ref: dict) -> list[str]:
    b, w, fam = ref["budget"], ref["wall_seconds"], FAMILIES[ref["family"]]

    def minutes(s):
        return f"{s / 60:.0f} min"

    wall = (f"Wall time: sweep {minutes(w.get('sweep', 0))}, training {minutes(w.get('train', 0))}, evaluation "
            f"{minutes(w.get('eval', 0))}, untrained baseline {minutes(w.get('untrained', 0))}"
            + (f" (not counting {len(ref['load']['reused'])} stage(s) reused from an earlier run)."
               if (ref.get("load") or {}).get("reused") else "."))
    if fam.data in ("hh", "gsm8k"):
        speed = (f"{b['measured_unit_seconds']} s a {b['unit'][:-1]} measured by the sweep"
                 if b.get("measured_unit_seconds") else f"{b['unit_seconds']} s a {b['unit'][:-1]} ({b['speed_from']})")
        if b.get("probe") and not b.get("no_sweep"):  # what sized the sweep
            speed += (f"; the sweep was sized from a {PROBE_STEPS}-step probe on this CPU, {b['probe']['unit_seconds']} "
                      f"s a {b['unit'][:-1]} (prior {b['probe']['prior_unit_seconds']}; {b['probe']['seconds']:.0f} s "
                      "of the budget)")
        lr_from = "the CPU YAML's: no sweep" if b.get("no_sweep") else "the sweep's best"
        steps = (f"{b['steps']} steps of {fam.batch} pairs" if fam.data == "hh"
                 else f"~{b['steps']} steps of 8 solutions ({SOLUTIONS_PER_QUESTION} a question)")
        spent_on = "the probe and the training run (no sweep)" if b.get("no_sweep") else "the sweep and the training run"
        text = (f"Budget: {b['budget_minutes']:g} min for {spent_on} (the evaluations come on top). "
                f"**{b['units']} of the {b['pool']} training {b['unit']}** (of {b['usable_train_pairs']} usable; "
                f"validation: {b['val']}), as many as the budget allowed at {speed}; one pass, {steps}, max_length "
                f"{b['max_length']}, **lr {b['lr']:g}** ({lr_from}), the CPU YAML's schedule (linear, 5% warm-up), "
                f"fp32, full fine-tune of {b['model']}.")
    elif fam.data == "embed":
        text = (f"Budget: {b['budget_minutes']:g} min. **The first {b['units']} of the {b['pool']} train pairs** "
                f"(relative harmlessness, plus verbosity from length), embedded once by the frozen backbone at "
                f"max_length {b['max_length']}; gating **lr {b['lr']:g}** (the sweep's best on {b['val']}), the CPU "
                f"YAML's 2000 steps of 512 pairs; test sets scored through eval.report from the same embedding cache.")
    else:
        text = (f"Training data: the {b['units']} pairs of the ArmoRM reference, human labels in both orders; features: "
                f"that checkpoint's attribute differences and the length difference; hyperparameters: {b['val']}.")
    return [text + " " + wall]


def sweep_lines(ref: dict) -> list[str]:
    fam = FAMILIES[ref["family"]]
    if fam.data == "tree":
        train = ref["train"]
        cv = ", ".join(f"depth {d} {100 * a:.1f}%" for d, a in sorted((train.get("cv_accuracy_by_depth") or {}).items()))
        best = train.get("best") or {}
        return [f"Cross-validated accuracy on the training pairs (5 folds grouped by pair, the best min leaf at each "
                f"depth): {cv}; chosen: depth {best.get('max_depth')}, min leaf {best.get('min_samples_leaf')}."]
    rows = ref.get("sweep") or []
    if not rows:
        no_sweep = ref["budget"].get("no_sweep")
        return [no_sweep[0].upper() + no_sweep[1:] + "."] if no_sweep else []
    b = ref["budget"]
    what = (f"on the first {b['sweep_units']} {b['unit']} ({b['sweep_steps']} steps) each" if fam.data != "embed"
            else f"on the same {b['units']} pairs")
    lines = [f"Learning-rate sweep {what}, scored on the validation slice (never the test sets); the differences "
             "are mostly inside the intervals, so the choice is the best guess the budget allows:", "",
             f"| lr | validation {'best-of-4' if fam.data == 'gsm8k' else 'accuracy'} [95% CI] | "
             f"{'questions' if fam.data == 'gsm8k' else 'pairs'} | train s |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["lr"]):
        mark = " **(chosen)**" if r["lr"] == b["lr"] else ""
        runtime = r.get("train_runtime") or r.get("gating_train_seconds")
        lines.append(f"| {r['lr']:g}{mark} | {pct(r['val_accuracy'], r.get('val_ci95'))} | {r['val_items']} | "
                     f"{'n/a' if runtime is None else f'{runtime:.0f}'} |")
    return lines


def results_lines(ref: dict) -> list[str]:
    lines = ["Each figure with its 95% interval (seeded bootstrap over the items, 2,000 resamples); trained − untrained: "
             f"paired bootstrap on the same items (points). Untrained: {UNTRAINED[ref['untrained']['family']]}. Length "
             "baselines: the accuracy of \"the shorter (longer) response wins\" on the same items.", ""]
    pairwise = [s for s in ref["sets"].values() if s["kind"] != "best_of_n"]
    if pairwise:
        lines += ["| test set | trained | untrained | trained − untrained | shorter wins | longer wins | "
                  "length-balanced: trained / untrained | Spearman(score, length): trained / untrained |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in pairwise:
            t, u = s["trained"], s["untrained"]
            rho = " / ".join(spearman_cell(x["length"]) for x in (t, u))
            lines.append(f"| {s['title']} | **{pct(t['value'], t['ci95'])}** | {pct(u['value'], u['ci95'])} | "
                         f"{difference_cell(s['trained_minus_untrained'])} | {length_cell(t['length'], 'shorter_wins')} | "
                         f"{length_cell(t['length'], 'longer_wins')} | "
                         f"{length_cell(t['length'], 'length_balanced_accuracy')} / "
                         f"{length_cell(u['length'], 'length_balanced_accuracy')} | {rho} |")
        ordered = [s for s in pairwise if s["trained"].get("order")]
        if ordered:
            lines += ["", "Both orders (a pairwise judge reads each pair with the chosen response first and second):", "",
                      "| test set | model | both orders | chosen first | chosen second | order-flip rate |",
                      "|---|---|---|---|---|---|"]
            for s in ordered:
                for name in ("trained", "untrained"):
                    o = s[name].get("order") or {}
                    cells = [pct(o.get(k), (o.get("ci95") or {}).get(k)) for k in
                             ("both_orders", "chosen_first", "chosen_second", "order_flip_rate")]
                    lines.append(f"| {s['title']} | {name} | " + " | ".join(cells) + " |")
    for s in (s for s in ref["sets"].values() if s["kind"] == "best_of_n"):
        t, u = s["trained"], s["untrained"]
        lines += [f"{s['title']}:", "", "| method | best-of-4 accuracy [95% CI] |", "|---|---|"]
        for key, label in (("random", "random pick (expected)"), ("majority_vote", "majority vote (ties: first)"),
                           ("majority_vote_expected_ties", "majority vote (ties: expected)"), ("oracle", "oracle")):
            lines.append(f"| {label} | {pct(t['headline'].get(key), t['headline_ci95'].get(key))} |")
        lines += [f"| length baseline: the shortest solution wins | {length_cell(t['length'], 'shorter_wins')} |",
                  f"| length baseline: the longest solution wins | {length_cell(t['length'], 'longer_wins')} |",
                  f"| untrained {ref['family'].upper()}: its top-scored candidate | {pct(u['value'], u['ci95'])} |",
                  f"| **{ref['family'].upper()} (reference): its top-scored candidate** | **{pct(t['value'], t['ci95'])}** |",
                  f"| {ref['family'].upper()}-weighted majority vote | "
                  f"{pct(t['headline'].get('judge-weighted vote'), t['headline_ci95'].get('judge-weighted vote'))} |",
                  "", f"Trained − untrained (its pick, paired over the questions): "
                  f"{difference_cell(s['trained_minus_untrained'])} points."]
    return lines


def section_markdown(ref: dict) -> str:
    """The reference run as a bench/RESULTS.md section."""
    lines = [f"### {ref['title']}: reference run (`{ref['command']}`)", ""]
    for part in (machine_lines, budget_lines, sweep_lines, results_lines):
        got = part(ref)
        if got:
            lines += [*got, ""]
    lines.append(f"Commands: `bench/runs/reference/{ref['family']}/reference.json` (`commands`); every stage's log "
                 "is in its `logs/`.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the chart


def overview(runs_dir: str | Path = RUNS, records: str | Path | None = RECORDS) -> Path | None:
    """Every family's reference results in one chart (runs_dir/overview.png) by eval.report's own overview_chart:
    one panel per test set, each family's main figure as a bar with its interval, the length baselines as red lines
    and the untrained scalar head (bt's baseline) as the black line with its band; the other untrained models (the
    pair-PM's, ORM's, PRM's base LM) are bars. A family without a run in runs_dir is read from its committed record
    (bench/records/reference-<family>.json), if any."""
    from eval.report import builtin_benchmarks, overview_chart

    runs_dir = Path(runs_dir)

    def reference(name: str) -> dict | None:
        found = read_json(runs_dir / name / "reference.json")
        return found if found is not None or records is None else read_json(record_path(name, Path(records)))

    refs = [r for r in map(reference, FAMILIES) if r]
    if not refs:
        return None
    builtin = builtin_benchmarks(SHARED)
    benches = {b: builtin[b] for b in SET_ORDER if any(b in r["sets"] for r in refs)}
    results: dict = {}
    judges, untrained = [], []
    for ref in refs:
        judges.append(ref["family"])
        name = "untrained" if ref["untrained"]["family"] == "bradley_terry" else f"untrained {ref['family']}"
        if name not in untrained:
            untrained.append(name)
        for set_name, entry in ref["sets"].items():
            results.setdefault(ref["family"], {})[set_name] = entry["trained"]
            results.setdefault(name, {}).setdefault(set_name, entry["untrained"])
    baseline = "untrained" if "untrained" in untrained else None
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / "overview.png"
    overview_chart(path, benches, results, judges + untrained, baseline)
    return path


# ---------------------------------------------------------------- command line


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=list(FAMILIES), help="the family to run (one at a time, machine to itself)")
    p.add_argument("--budget_minutes", type=float, default=60.0, help="the sweep and the full training run")
    p.add_argument("--dry_run", action="store_true", help="print the plan (stages, commands, estimates); run nothing")
    p.add_argument("--chart", action="store_true", help="draw every family's reference into overview.png")
    p.add_argument("--lrs", type=float, nargs="+", default=None, help="the sweep's learning rates (default: per family)")
    p.add_argument("--sweep_share", type=float, default=0.1, help="share of the budget one sweep run trains for")
    p.add_argument("--sweep_cap", type=float, default=0.5,
                   help="share of the budget the whole sweep may take, validation scoring included (fewer pairs a sweep "
                        "run when it would take more; no sweep, the CPU YAML's lr, when not even "
                        f"{MIN_SWEEP_STEPS} steps a run fit)")
    p.add_argument("--unit_seconds", type=float, default=None,
                   help="training seconds a pair (question) on this CPU, e.g. a previous run's measured_unit_seconds; "
                        "default: measured by a 2-step probe before the sweep (BT, pair-PM, ODIN, ORM, PRM; ArmoRM "
                        "uses its prior). The families' priors come from an AVX2+AVX-512 Intel machine: on the "
                        "AVX2-only AMD machine BT measured 5.5 s a pair, not 3.0, and its sweep used 51 of 60 minutes")
    p.add_argument("--val_pairs", type=int, default=200, help="HH families: the last N usable train pairs validate")
    p.add_argument("--val_questions", type=int, default=100, help="ORM/PRM: the last N training questions validate")
    p.add_argument("--model", default=SMOLLM2, help="the backbone (Hub id or folder)")
    p.add_argument("--recipe_args", default=None,
                   help="options added last to every training command of BT, pair-PM, ODIN, ORM and PRM (probe, sweep, "
                        'full run), e.g. "--judgement_loss tokens" for ORM/PRM; they are in the stages\' commands and '
                        "the section's command")
    p.add_argument("--runs_dir", default=str(RUNS), help="where the runs go")
    p.add_argument("--record", nargs="?", const=str(RECORDS), default=None,
                   help="also write the finished run's reference.json to RECORD/reference-<family>.json (default "
                        "bench/records: commit it with the section, so the chart survives a lost runs_dir); with "
                        "--chart and no --family, copy every family's reference.json in runs_dir there")
    return p


def main(argv: list[str] | None = None) -> dict | None:
    opts = make_parser().parse_args(argv)
    if opts.family is None and not opts.chart:
        make_parser().error("pass --family F, or --chart")
    result = None
    if opts.family:
        fam = FAMILIES[opts.family]
        if opts.unit_seconds:  # this CPU's own speed (a slower machine's sweep would eat the budget otherwise)
            fam = measured(fam, opts.unit_seconds)
        if opts.dry_run:
            print_plan(plan(fam, opts))
        else:
            load = load_average()
            if load[0] > 0.5:
                print(f"[reference] warning: load average {load} before the run: the machine is not to itself; the "
                      "section will say so", flush=True)
            result = run(fam, opts)
    if opts.chart:
        if opts.record and not opts.family:
            for name in FAMILIES:
                found = read_json(Path(opts.runs_dir) / name / "reference.json")
                if found is not None:
                    save_record(name, found, opts.record)
        path = overview(opts.runs_dir, opts.record or RECORDS)
        print(f"[reference] chart: {path}" if path else "[reference] no reference.json yet: no chart")
    return result


if __name__ == "__main__":
    main()
