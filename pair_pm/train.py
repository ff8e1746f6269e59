"""Train a pair-PM: a causal LM that reads a conversation and two responses and answers "A" or "B".

    python pair_pm/train.py --config pair_pm/configs/smollm2-135m-cpu.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml pair_pm/train.py \
        --config pair_pm/configs/llama3-8b-8xa100.yaml
    python pair_pm/train.py --config pair_pm/configs/smollm2-135m-cpu.yaml --use_peft --lora_r 16   # LoRA
    ... --rrm_augment true                                                   # add RRM causal augmentation

Data: any preference source (rm_core DataArguments), written in both orders by pair_pm/prepare_data.py.
Training: TRL's SFTTrainer on pre-tokenised rows whose completion is the answer token alone, so the loss
is on that token only (PairPMTrainer computes the logits at that position alone). The checkpoint records rm_family "pair_pm", the answer-token ids, the template
and max_length; `judges.load` / `eval_reward_bench` then score it order-debiased (pair_pm/scoring.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from trl import SFTConfig, SFTTrainer

from rm_core.args import DataArguments


@dataclass
class PairPMConfig(SFTConfig):
    """TRL's SFTConfig plus the pair-PM options; loss on the answer token only."""

    chat_template: str | None = field(default=None, metadata={"help": "Jinja string, .jinja path, or 'plain'."})
    bf16: bool | None = field(default=None, metadata={"help": "Default: on when the GPU supports it, off on CPU."})
    max_length: int | None = field(default=1024, metadata={
        "help": "Pairs longer than this are cut inside the context and responses (never the answer), counted."})
    completion_only_loss: bool | None = field(default=True, metadata={"help": "Loss on the answer token only."})
    both_orders: bool = field(default=True, metadata={"help": "Write every pair as (chosen, rejected) and "
                                                               "(rejected, chosen)."})
    rrm_augment: bool = field(default=False, metadata={"help": "Add RRM causal augmentation to the train split."})
    rrm_seed: int = field(default=0, metadata={"help": "Seed of the RRM augmentation sample."})

    def __post_init__(self):
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if self.bf16 and not torch.cuda.is_available():
            self.use_cpu = True
        super().__post_init__()


class PairPMTrainer(SFTTrainer):
    """SFTTrainer whose loss reads the logits at the answer position only. The stock loss builds logits over
    the whole vocabulary at every position (49k x 512 x batch floats for SmolLM2: ~18 GB at batch 16 on a
    CPU) to then mask all but one token per row; here the LM head runs only where the answer is predicted."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        rows, targets = (labels[:, 1:] != -100).nonzero(as_tuple=True)  # position t-1 predicts token t
        if len(rows) != labels.shape[0] or len(set(rows.tolist())) != labels.shape[0]:
            raise ValueError("each pair-PM example must have exactly one answer token in its labels")
        keep = torch.unique(targets)  # the sequence positions whose logits are needed, for the whole batch
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                        use_cache=False, logits_to_keep=keep)
        logits = outputs.logits[rows, torch.searchsorted(keep, targets)]
        answers = labels[rows, targets + 1]
        loss = torch.nn.functional.cross_entropy(logits.float(), answers, reduction="sum")
        if num_items_in_batch is None:
            loss = loss / len(rows)
        else:  # answers in the whole (accumulated, all-process) batch; DDP then averages over processes,
            loss = loss / num_items_in_batch  # so scale back up as transformers' Trainer.compute_loss does
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, PairPMConfig, ModelConfig))


def both_orders(prefs: list[dict]) -> list[tuple]:
    """(prompt, chosen, rejected) then (prompt, rejected, chosen) for every pair: the judge's two readings."""
    items = [(p["prompt"], p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in prefs]
    return [x for q, a, b in items for x in ((q, a, b), (q, b, a))]


def evaluate_pair_pm(judge, prefs: list[dict], probs: list[float] | None = None) -> dict:
    """Held-out accuracy one order (chosen as A, and as B) and order-debiased, and the flip rate. probs: the
    judge's P(A) over both_orders(prefs), when already computed. A pair with a non-finite P(A) is a failed
    pair (counted, never right)."""
    import math

    from judges.base import PairVerdict

    if probs is None:
        probs = judge.first_probs(both_orders(prefs))
    verdicts = [PairVerdict(*(p if math.isfinite(p) else None for p in (probs[2 * i], 1.0 - probs[2 * i + 1])))
                for i in range(len(prefs))]
    n = len(verdicts)

    def right(p):
        return p is not None and p > 0.5

    return {"pairs": n,
            "accuracy": sum(right(v.p) for v in verdicts) / n,
            "accuracy_chosen_as_a": sum(right(v.p_forward) for v in verdicts) / n,
            "accuracy_chosen_as_b": sum(right(v.p_backward) for v in verdicts) / n,
            "order_inconsistency_rate": sum(v.consistent is False for v in verdicts) / n,
            "failed_pairs": sum(v.p is None for v in verdicts)}


def main(data_args: DataArguments, training_args: PairPMConfig, model_args) -> dict:
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, set_seed

    from pair_pm.prepare_data import TEMPLATE_NAME, answer_token_ids, build_dataset
    from pair_pm.scoring import PairPMJudge
    from rm_core.finite import CHECK_EXAMPLES, check_final_rewards
    from rm_core.hub import (
        atomic_write_json,
        atomic_write_text,
        command_line,
        describe_checkpoint,
        model_card,
        push_folder,
    )
    from rm_core.models import load_causal_lm
    from rm_core.pipeline import finalise_checkpoint, held_out_line, load_preference_splits, peft_and_push, run_training

    state = PartialState()
    set_seed(training_args.seed)
    model, tokenizer, base_path = load_causal_lm(model_args, training_args.chat_template)

    train, test, data_report = load_preference_splits(data_args)
    if training_args.rrm_augment:
        from pair_pm.rrm_augment import rrm_augment

        extra, data_report["rrm"] = rrm_augment(train, seed=training_args.rrm_seed)
        train = train + extra
    train_ds, truncation = build_dataset(train, tokenizer, training_args.max_length, training_args.both_orders)
    data_report["train_truncation"] = str(truncation)
    if state.is_main_process:
        print(f"[data] {len(train)} train pairs -> {len(train_ds)} examples; {truncation}; "
              f"{len(test)} held-out pairs", flush=True)
        print(held_out_line(data_report), flush=True)

    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "CAUSAL_LM")
    trainer = PairPMTrainer(model=model, args=training_args, train_dataset=train_ds, processing_class=tokenizer,
                         peft_config=peft_config)
    train_result, out_dir = run_training(trainer, training_args)

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report}
    if state.is_main_process:
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        auto_class=AutoModelForCausalLM)
        judge = PairPMJudge(model_out, tokenizer, training_args.max_length)
        checked = test or train[:CHECK_EXAMPLES]  # the first training pairs when there is no held-out set
        probs = judge.first_probs(both_orders(checked))
        check_final_rewards(probs, f"the final model's P(A) over the {len(checked)} "
                                   f"{'held-out' if test else 'first training'} pairs in both orders", out_dir)
        describe_checkpoint(model_out, tokenizer, "pair_pm", pair_pm_answer_ids=answer_token_ids(tokenizer),
                            pair_pm_template=TEMPLATE_NAME, pair_pm_max_length=training_args.max_length,
                            base_model=model_args.model_name_or_path)
        model_out.config.save_pretrained(out_dir)
        if test:
            held = evaluate_pair_pm(judge, test, probs)
            results["held_out"] = held
            print(f"[eval] held-out accuracy {held['accuracy']:.4f} (one order: chosen as A "
                  f"{held['accuracy_chosen_as_a']:.4f}, as B {held['accuracy_chosen_as_b']:.4f}; order flips "
                  f"{held['order_inconsistency_rate']:.4f}) on {held['pairs']} pairs", flush=True)
        atomic_write_json(out_dir / "eval_results.json", results)
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "train pairs": len(train), "examples (both orders)": len(train_ds),
                    "max_length": training_args.max_length, "epochs": training_args.num_train_epochs,
                    "max_steps": training_args.max_steps, "learning rate": training_args.learning_rate,
                    "LoRA": bool(peft_config), "RRM augmentation": training_args.rrm_augment,
                    "held-out set": f"{len(test)} pairs: {data_report['held_out']['description']}"}
        atomic_write_text(out_dir / "README.md", model_card(
            model_name=hub_model_id or out_dir.name, base_model=model_args.model_name_or_path, rm_family="pair_pm",
            datasets=[data_args.dataset_name], eval_results={f"held-out {k}": v for k, v in
                                                             results.get("held_out", {}).items()},
            training=training, command=command_line()))
        if push:
            if not hub_model_id:
                raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME")
            results["hub_commit"] = push_folder(out_dir, hub_model_id, private=bool(training_args.hub_private_repo))
        print(f"[done] checkpoint: {out_dir.resolve()}", flush=True)
    state.wait_for_everyone()
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rm_core.errors import run_cli

    run_cli(main, *make_parser().parse_args_and_config())
