"""Every YAML under */configs/ parses with its recipe's parser (every field known to it), the accelerate
configs load as accelerate configs, and CLI flags override YAML fields."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Each recipe YAML -> the recipe modules that read it (a module's make_parser() is its parser). A new YAML
# fails test_every_recipe_yaml_has_its_recipe until it is listed here.
RECIPE_CONFIGS = {
    "armo_rm/configs/llama3-8b-8xa100.yaml": ["armo_rm.train_regression", "armo_rm.train_gating"],
    "armo_rm/configs/smollm2-135m-cpu.yaml": ["armo_rm.train_regression", "armo_rm.train_gating"],
    "bradley_terry_rm/configs/gemma-2b-zero2.yaml": ["bradley_terry_rm.train"],
    "bradley_terry_rm/configs/llama3-8b-8xa100.yaml": ["bradley_terry_rm.train"],
    "bradley_terry_rm/configs/minilm-l6-cpu.yaml": ["bradley_terry_rm.train"],
    "bradley_terry_rm/configs/smollm2-135m-cpu.yaml": ["bradley_terry_rm.train"],
    "math_rm/configs/llama3-8b-orm-8xa100.yaml": ["math_rm.train_orm"],
    "math_rm/configs/llama3-8b-prm-8xa100.yaml": ["math_rm.train_prm"],
    "math_rm/configs/llama3-8b-scalar-orm-8xa100.yaml": ["math_rm.train_scalar_orm"],
    "math_rm/configs/smollm2-135m-cpu-orm.yaml": ["math_rm.train_orm"],
    "math_rm/configs/smollm2-135m-cpu-scalar-orm.yaml": ["math_rm.train_scalar_orm"],
    "math_rm/configs/smollm2-135m-cpu.yaml": ["math_rm.train_prm"],
    "odin_rm/configs/gemma-2b-zero2.yaml": ["odin_rm.train"],
    "odin_rm/configs/smollm2-135m-cpu.yaml": ["odin_rm.train"],
    "pair_pm/configs/llama3-8b-8xa100.yaml": ["pair_pm.train", "pair_pm.ssrm"],
    "pair_pm/configs/qwen2.5-14b-grpo-8xa100.yaml": ["pair_pm.train_grpo"],
    "pair_pm/configs/smollm2-135m-cpu.yaml": ["pair_pm.train", "pair_pm.ssrm"],
    "pair_pm/configs/smollm2-135m-grpo-cpu.yaml": ["pair_pm.train_grpo"],
}
CASES = [(config, module) for config, modules in RECIPE_CONFIGS.items() for module in modules]
ACCELERATE_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


def test_every_recipe_yaml_has_its_recipe():
    on_disk = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/configs/*.y*ml") if p.parent.parent.name != "configs"}
    assert on_disk == set(RECIPE_CONFIGS), "list each recipe YAML in RECIPE_CONFIGS with the recipes that read it"


@pytest.mark.parametrize(("config", "module"), CASES, ids=[f"{c.split('/')[0]}/{Path(c).stem}:{m.split('.')[-1]}"
                                                          for c, m in CASES])
def test_recipe_yaml_parses(config, module, tmp_path):
    path = ROOT / config
    fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    parser = importlib.import_module(module).make_parser()
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(fields) - known - {"env"})
    assert not unknown, f"{config}: fields {module}'s parser does not know: {unknown}"
    # the launch commands in the file's header name only recipes that read it
    header = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.startswith("#"))
    named = {s[:-3].replace("/", ".") for s in re.findall(r"(?:python\s+|accelerate launch\b[^\n]*?\s)(\w+/\w+\.py)\b", header)}
    assert named <= set(RECIPE_CONFIGS[config]), f"{config} names {sorted(named)} in its header"

    argv = ["--config", str(path)] + (["--output_dir", str(tmp_path)] if "output_dir" in known else [])
    parsed = parser.parse_args_and_config(argv)  # TrlParser: an unknown field would raise here too
    values = {k: v for args in parsed for k, v in vars(args).items()}
    assert set(fields) - {"env", "output_dir"} <= set(values)
    assert values.get("model_name_or_path")
    if module == "bradley_terry_rm.train":
        data_args, training_args, _ = parsed
        assert training_args.max_length and training_args.max_length >= 128
        assert training_args.train_sampling_strategy == "group_by_length"
        assert data_args.dataset_name


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=[c.stem for c in ACCELERATE_CONFIGS])
def test_accelerate_config_loads(config):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    fields = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert fields["compute_environment"] == "LOCAL_MACHINE"
    loaded = load_config_from_file(str(config))  # accelerate's own reader: unknown keys raise
    assert isinstance(loaded, ClusterConfig)
    assert loaded.distributed_type in set(DistributedType)
    assert (loaded.distributed_type == DistributedType.DEEPSPEED) == ("deepspeed_config" in fields)
    if "deepspeed_config" in fields:
        assert fields["deepspeed_config"]["zero_stage"] in (2, 3)


def test_cli_overrides_yaml(tmp_path):
    from bradley_terry_rm.train import make_parser

    config = ROOT / "bradley_terry_rm" / "configs" / "smollm2-135m-cpu.yaml"
    _, training_args, model_args = make_parser().parse_args_and_config(
        ["--config", str(config), "--output_dir", str(tmp_path), "--max_length", "99", "--use_peft"])
    assert training_args.max_length == 99
    assert model_args.use_peft is True
    assert training_args.bf16 is False  # CPU default: no bf16 unless asked
