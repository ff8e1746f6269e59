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

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from math_rm.training import MathRMConfig, make_parser
from math_rm.training import main as train


def main(data_args, training_args: MathRMConfig, model_args) -> dict:
    return train("orm", data_args, training_args, model_args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rm_core.errors import run_cli

    run_cli(main, *make_parser().parse_args_and_config())
