"""Train a process reward model (Math-Shepherd style): a causal LM that judges every step "+" or "-".

    python math_rm/train_prm.py --config math_rm/configs/smollm2-135m-cpu.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml math_rm/train_prm.py \
        --config math_rm/configs/llama3-8b-prm-8xa100.yaml
    python math_rm/train_prm.py --config math_rm/configs/smollm2-135m-cpu.yaml --use_peft --lora_r 16   # LoRA

Data: Steps rows from any source math_rm/data.py reads; the default, the GSM8K labelled model solutions of
../shared/data, is labelled by the offline rule (math_rm/step_labels.py) on its 1000 training questions and
evaluated best-of-4 on the other 319. Training: TRL's SFTTrainer, loss only at the judgement slots of labelled
steps (math_rm/training.py). The checkpoint records rm_family "prm", the "+"/"-" ids, the step tag, the
aggregation and the template; `judges.load` scores all its steps in one forward pass (math_rm/judge.py).
"""

from __future__ import annotations

from math_rm.config import MathRMConfig
from math_rm.training import main as train
from math_rm.training import make_parser
from rm_core.errors import run_recipe


def main(data_args, training_args: MathRMConfig, model_args) -> dict:
    return train("prm", data_args, training_args, model_args)


def cli() -> None:  # `python math_rm/train_prm.py`, `python -m math_rm.train_prm`, `rm-train-prm`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
