"""Every GPU config against the published recipe it reproduces (issue 20).

Beside each GPU config lies its reference record, <family>/configs/references/<config name>.yaml: for each field
that defines the recipe, the published value and where it is set (repository, file, commit), this config's value,
its units, and why the two differ where they do. The tests

- parse each GPU config with its recipe's parser (as tests/test_configs.py does) and check every recorded field
  against the config: the global batch and its units for the number of GPUs the launch command names, the
  learning rate, schedule, warm-up, epochs or steps, max_length, ...;
- require a reason for every field that differs from the published value, or counts another unit;
- check that the family's README shows the record's table as `render_table` writes it, so neither the config,
  the record nor the README can drift alone;
- train ArmoRM's stage 1 on a few hand-made rows in the published 19-objective data set's schema.

To change a GPU config: change the record's `this` (and `why`), then paste `render_table(record)` into the README.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GPU_CONFIGS = [
    "armo_rm/configs/llama3-8b-8xa100.yaml",
    "bradley_terry_rm/configs/gemma-2b-zero2.yaml",
    "bradley_terry_rm/configs/llama3-8b-8xa100.yaml",
    "math_rm/configs/llama3-8b-orm-8xa100.yaml",
    "math_rm/configs/llama3-8b-prm-8xa100.yaml",
    "math_rm/configs/llama3-8b-scalar-orm-8xa100.yaml",
    "odin_rm/configs/gemma-2b-zero2.yaml",
    "pair_pm/configs/llama3-8b-8xa100.yaml",
    "pair_pm/configs/qwen2.5-14b-grpo-8xa100.yaml",
]
RECORDS = sorted(ROOT.glob("*/configs/references/*.yaml"))
# The fields that define a recipe: each record has a field with one key of each group.
TRAINER_KEYS = [{"global_batch"}, {"learning_rate"}, {"lr_scheduler_type"}, {"warmup_steps"},
                {"num_train_epochs", "max_steps"}, {"max_length", "max_completion_length"}, {"dataset_name"}]
REQUIRED_KEYS = {
    "armo_rm.train_regression": [{"ratings_sources"}, {"objectives"}, {"val_fraction"}, {"ridge_alphas"},
                                 {"max_steps"}, {"batch_size"}, {"learning_rate"}, {"max_length"},
                                 {"preference_sources"}],
    "pair_pm.train_grpo": TRAINER_KEYS + [{"generation_batch"}, {"completions_per_prompt"}, {"max_prompt_length"}],
}


def load_record(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def ids(paths):
    return [f"{p.parent.parent.parent.name}/{p.stem}" for p in paths]


# ---------------------------------------------------------------- the README table


def fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:g}"
        return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return "none" if value is None else str(value)


def cell(value, unit: str | None) -> str:
    return f"{fmt(value)} {unit}" if unit else fmt(value)


def differs(field: dict) -> bool:
    unit = field.get("unit")
    return not same(field["this"], field["reference"]) or field.get("reference_unit", unit) != unit


def render_table(record: dict) -> str:
    """The README table of one record (paste it under the family's "GPU configs" heading)."""
    ref = record["reference"]
    url = f"https://github.com/{ref['repo']}/blob/{ref['commit']}/{ref['file']}".rstrip("/")
    lines = [f"`{record['config']}` ({record['processes']} GPUs) against [`{ref['file']}`]({url}) "
             f"({ref['repo']} at `{ref['commit'][:7]}`):", "",
             "| field | this config | reference | why it differs |", "|---|---|---|---|"]
    for f in record["fields"]:
        reference = cell(f["reference"], f.get("reference_unit", f.get("unit")))
        if f.get("source"):
            reference += f" ({f['source']})"
        lines.append(f"| {f['name']} | {cell(f['this'], f.get('unit'))} | {reference} | {f.get('why', '')} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading a config's value of a field


def same(a, b) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def plain(value):
    value = getattr(value, "value", value)  # transformers' enums (SchedulerType, OptimizerNames)
    return list(value) if isinstance(value, tuple) else value


def parse(record: dict, tmp_path: Path) -> list:
    parser = importlib.import_module(record["parser"]).make_parser()
    known = {action.dest for action in parser._actions}
    argv = ["--config", str(ROOT / record["config"])] + (["--output_dir", str(tmp_path)] if "output_dir" in known else [])
    return list(parser.parse_args_and_config(argv))


def config_value(key: str, parsed: list, processes: int):
    def get(name):
        for args in parsed:
            if hasattr(args, name):
                return plain(getattr(args, name))
        raise AttributeError(f"no parsed argument is named {name!r}")

    if key == "global_batch":  # examples (pairs, solutions, completions) per optimizer step
        return get("per_device_train_batch_size") * get("gradient_accumulation_steps") * processes
    if key == "correlation_batch":  # ODIN: responses in the all-gathered micro-batch
        return get("per_device_train_batch_size") * 2 * processes
    if key == "generation_batch":  # GRPO: completions generated at once
        return get("per_device_train_batch_size") * get("steps_per_generation") * processes
    if key == "updates_per_generation":
        return get("steps_per_generation") // get("gradient_accumulation_steps")
    if key == "completions_per_prompt":  # one order of a pair
        return get("num_generations") // (2 if get("pair_grouping") == "pair" else 1)
    if key == "objectives":  # ArmoRM: the published set declares its 19 objectives
        from armo_rm.data import ARMO_MULTI_OBJECTIVE_DATA, ARMO_OBJECTIVES

        assert get("ratings_sources") == [ARMO_MULTI_OBJECTIVE_DATA]
        return len(ARMO_OBJECTIVES)
    if key == "gating_shape":
        return [get("gating_hidden_dim"), get("gating_n_hidden"), get("gating_temperature"), get("gating_dropout")]
    return get(key)


def launch_processes(config: Path) -> int:
    """The number of processes the config's launch command names (its header, read as bench/gpu_smoke.py reads it):
    --num_processes, else its accelerate config's."""
    from bench.gpu_smoke import launch_line

    options, _ = launch_line(config)
    for i, option in enumerate(options):
        if option.startswith("--num_processes"):
            return int(option.split("=", 1)[1] if "=" in option else options[i + 1])
    config_file = next((options[i + 1] for i, o in enumerate(options[:-1]) if o == "--config_file"), None)
    assert config_file, f"{config}: the header names no launch command with --num_processes or --config_file"
    return int(yaml.safe_load((ROOT / config_file).read_text(encoding="utf-8"))["num_processes"])


# ---------------------------------------------------------------- the tests


def test_every_gpu_config_has_its_reference_record():
    on_disk = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/configs/*.yaml") if p.stem.endswith(("8xa100", "zero2"))}
    assert on_disk == set(GPU_CONFIGS), "a new GPU config needs a reference record: list it in GPU_CONFIGS"
    records = {load_record(p)["config"]: p for p in RECORDS}
    assert set(records) == set(GPU_CONFIGS)
    for config, path in records.items():  # beside its config, with its name
        assert path == ROOT / Path(config).parent / "references" / Path(config).name


@pytest.mark.parametrize("path", RECORDS, ids=ids(RECORDS))
def test_record_names_its_source_and_explains_each_difference(path):
    record = load_record(path)
    ref = record["reference"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", ref["repo"]) and re.fullmatch(r"[0-9a-f]{40}", ref["commit"]) and ref["file"]
    assert (ROOT / record["readme"]).is_file() and (ROOT / record["config"]).is_file()
    names = [f["name"] for f in record["fields"]]
    assert len(names) == len(set(names)), "one row per field"
    keys = {f.get("key") for f in record["fields"]}
    for group in REQUIRED_KEYS.get(record["parser"], TRAINER_KEYS):
        assert keys & group, f"{path.name}: no field for {sorted(group)}"
    for f in record["fields"]:
        assert {"name", "this", "reference"} <= set(f), f
        assert differs(f) == bool(f.get("why")), (
            f"{path.name}, {f['name']}: a field that differs from the reference (value or unit) says why, and only then")
        assert "|" not in json.dumps(f), "no | inside a table cell"


@pytest.mark.parametrize("path", RECORDS, ids=ids(RECORDS))
def test_gpu_config_matches_its_reference_record(path, tmp_path):
    record = load_record(path)
    config = ROOT / record["config"]
    assert launch_processes(config) == record["processes"]
    fields = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert fields.get("output_dir"), f"{record['config']}: a GPU config names its output_dir"
    parsed = parse(record, tmp_path)
    for f in record["fields"]:
        if f.get("key"):
            value = config_value(f["key"], parsed, record["processes"])
            assert same(value, f["this"]), f"{record['config']}: {f['name']} ({f['key']}) is {value!r}, the record says {f['this']!r}"


@pytest.mark.parametrize("path", RECORDS, ids=ids(RECORDS))
def test_readme_shows_the_record(path):
    record = load_record(path)
    readme = (ROOT / record["readme"]).read_text(encoding="utf-8")
    assert render_table(record) in readme, (
        f"{record['readme']} does not show the table of {path.relative_to(ROOT)}: paste render_table(record) there")


def test_armo_stage_one_trains_on_the_published_19_objective_schema(tmp_path):
    """A few hand-made rows in the schema of RLHFlow/ArmoRM-Multi-Objective-Data-v0.1 (`messages` + one column per
    objective, None where the row's source does not rate it) train stage 1 with the GPU config's objective settings:
    19 objectives in the published order, the values as published, nothing labelled from length."""
    from armo_rm import train_regression
    from armo_rm.config import ArmoConfig
    from armo_rm.data import ARMO_OBJECTIVES, load_ratings
    from rm_core.testing import save_tiny_backbone

    gpu = yaml.safe_load((ROOT / "armo_rm/configs/llama3-8b-8xa100.yaml").read_text(encoding="utf-8"))
    groups = [ARMO_OBJECTIVES[0:5], ARMO_OBJECTIVES[5:10], ARMO_OBJECTIVES[10:11], ARMO_OBJECTIVES[11:12],
              ARMO_OBJECTIVES[12:14], ARMO_OBJECTIVES[14:19]]  # the sources: HelpSteer, UltraFeedback, BeaverTails, ...
    rows = []
    for i in range(180):  # each source rates 30 responses to 30 prompts
        rated = groups[i % len(groups)]
        row = {"messages": [{"role": "user", "content": f"question {i}: how many {i % 7} apples?"},
                            {"role": "assistant", "content": f"answer {i} " + "word " * (i % 9 + 1)}]}
        row.update({name: (float((i * (k + 3)) % 5) if name in rated else None) for k, name in enumerate(ARMO_OBJECTIVES)})
        rows.append(row)
    rows.append({"messages": [{"role": "user", "content": "unrated"}, {"role": "assistant", "content": "x"}],
                 **{name: None for name in ARMO_OBJECTIVES}})  # no label at all: skipped and counted
    data = tmp_path / "armo-multi-objective.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    ratings = load_ratings(str(data))
    assert len(ratings) == 180
    assert list(ratings[0]["attributes"]) == list(ARMO_OBJECTIVES)
    assert ratings[0]["prompt"] == rows[0]["messages"][:1] and ratings[0]["response"] == rows[0]["messages"][1]["content"]
    assert ratings[2]["attributes"]["beavertails-is_safe"] == rows[2]["beavertails-is_safe"]  # as published, not rescaled
    assert ratings[2]["attributes"]["helpsteer-verbosity"] is None  # unrated stays unrated

    cfg = ArmoConfig(model_name_or_path=str(save_tiny_backbone(tmp_path / "tiny")), output_dir=str(tmp_path / "out"),
                     dtype="float32", max_length=64, ratings_sources=[str(data)],
                     verbosity_attribute=gpu["verbosity_attribute"], verbosity_from_length=gpu["verbosity_from_length"],
                     val_fraction=gpu["val_fraction"], ridge_alphas=gpu["ridge_alphas"])
    stage1 = train_regression.main(cfg)
    assert stage1["attributes"] == list(ARMO_OBJECTIVES)
    assert stage1["objectives"]["helpsteer-verbosity"]["labelled"] == 30  # the HelpSteer rows only, no length label
    assert all(r["labelled"] == 30 for r in stage1["objectives"].values())
    assert {r["alpha"] for r in stage1["objectives"].values()} <= set(gpu["ridge_alphas"])
