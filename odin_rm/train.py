"""Train an ODIN reward model: quality and length heads on one backbone; the quality head is served.

Full fine-tune, one CPU or GPU:
    python odin_rm/train.py --config odin_rm/configs/smollm2-135m-cpu.yaml
Multi-GPU with DeepSpeed ZeRO-2 (the length term is computed over the global batch, across ranks):
    accelerate launch --config_file configs/accelerate/zero2.yaml odin_rm/train.py \
        --config odin_rm/configs/gemma-2b-zero2.yaml
LoRA:
    python odin_rm/train.py --config odin_rm/configs/smollm2-135m-cpu.yaml \
        --use_peft --lora_r 16 --lora_alpha 32 --learning_rate 1e-4
Loss weights: --length_loss_weight 1.0 --orthogonality_loss_weight 1.0 (0 switches a term off).
Any YAML field can be overridden on the command line (--max_length 512, --report_to wandb, ...).
"""

from __future__ import annotations

import odin_rm  # noqa: F401  registers the ODIN classes with the Auto classes
from odin_rm.config import OdinRewardConfig
from odin_rm.judge import evaluate_odin
from odin_rm.trainer import OdinRewardTrainer, load_odin_model, tokenize_with_lengths
from rm_core.args import DataArguments
from rm_core.errors import run_recipe
from rm_core.hub import command_line
from rm_core.pipeline import train_pairwise_reward_model


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, OdinRewardConfig, ModelConfig))


def default_lora_targets(model_args) -> None:
    """PEFT picks LoRA target modules by model_type, and knows none for "odin_rm": use the backbone's."""
    if not model_args.use_peft or model_args.lora_target_modules:
        return
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as targets
    from transformers import AutoConfig

    from rm_core.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_args.model_name_or_path), revision=model_args.model_revision)
    backbone_type = getattr(getattr(config, "text_config", None), "model_type", None) or config.model_type
    if backbone_type not in targets:
        raise ValueError(f"no default LoRA target modules for a {backbone_type!r} backbone: pass --lora_target_modules")
    model_args.lora_target_modules = list(targets[backbone_type])


def main(data_args: DataArguments, training_args: OdinRewardConfig, model_args) -> dict:
    default_lora_targets(model_args)
    return train_pairwise_reward_model(data_args, training_args, model_args, rm_family="odin",
                                       command=command_line(), trainer_cls=OdinRewardTrainer,
                                       model_loader=load_odin_model, tokenize_fn=tokenize_with_lengths,
                                       evaluate_fn=evaluate_odin)


def cli() -> None:  # `python odin_rm/train.py`, `python -m odin_rm.train`, `rm-train-odin`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
