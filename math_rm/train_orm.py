"""Train an outcome reward model: a causal LM that judges a whole solution "+" (correct) or "-".

    python math_rm/train_orm.py --config math_rm/configs/smollm2-135m-cpu-orm.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml math_rm/train_orm.py \
        --config math_rm/configs/llama3-8b-orm-8xa100.yaml
    python math_rm/train_orm.py --config math_rm/configs/smollm2-135m-cpu-orm.yaml --use_peft --lora_r 16  # LoRA

The same format as the PRM with the whole response as one step (one slot, at the end); labels are the
candidates' outcomes (`is_correct` for the GSM8K labelled solutions). rm_family "orm". For a scalar ORM on
the Bradley-Terry path see math_rm/train_scalar_orm.py.
"""

from __future__ import annotations

from math_rm.config import MathRMConfig
from math_rm.training import main as train
from math_rm.training import make_parser
from rm_core.errors import run_recipe


def main(data_args, training_args: MathRMConfig, model_args) -> dict:
    return train("orm", data_args, training_args, model_args)


def cli() -> None:  # `python math_rm/train_orm.py`, `python -m math_rm.train_orm`, `rm-train-orm`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
