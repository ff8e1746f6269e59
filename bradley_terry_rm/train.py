"""Train a Bradley-Terry reward model (a scalar head on a causal LM or an encoder).

Full fine-tune, one CPU or GPU:
    python bradley_terry_rm/train.py --config bradley_terry_rm/configs/smollm2-135m-cpu.yaml
Multi-GPU with DeepSpeed ZeRO-3:
    accelerate launch --config_file configs/accelerate/zero3.yaml bradley_terry_rm/train.py \
        --config bradley_terry_rm/configs/llama3-8b-8xa100.yaml
LoRA:
    python bradley_terry_rm/train.py --config bradley_terry_rm/configs/smollm2-135m-cpu.yaml \
        --use_peft --lora_r 16 --lora_alpha 32 --learning_rate 1e-4
Any YAML field can be overridden on the command line (--max_length 512, --report_to wandb, ...).
"""

from __future__ import annotations

from rm_core.args import DataArguments, RewardModelConfig
from rm_core.errors import run_recipe
from rm_core.hub import command_line
from rm_core.pipeline import train_pairwise_reward_model


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, RewardModelConfig, ModelConfig))


def main(data_args: DataArguments, training_args: RewardModelConfig, model_args) -> dict:
    return train_pairwise_reward_model(data_args, training_args, model_args, rm_family="bradley_terry",
                                       command=command_line())


def cli() -> None:  # `python bradley_terry_rm/train.py`, `python -m bradley_terry_rm.train`, `rm-train-bt`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
