"""Train a pair-PM: a causal LM that reads a conversation and two responses and answers "A" or "B".

    python pair_pm/train.py --config pair_pm/configs/smollm2-135m-cpu.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml pair_pm/train.py \
        --config pair_pm/configs/llama3-8b-8xa100.yaml
    python pair_pm/train.py --config pair_pm/configs/smollm2-135m-cpu.yaml --use_peft --lora_r 16   # LoRA
    ... --rrm_augment true                                                   # add RRM causal augmentation

Data: any preference source (rm_core DataArguments), written in both orders by pair_pm/prepare_data.py.
Training: TRL's SFTTrainer on pre-tokenised rows whose completion is the answer token alone, so the loss
is on that token only (PairPMTrainer computes the logits at that position alone). The checkpoint records rm_family "pair_pm", the answer-token ids, the template
and max_length; `judges.load` / `eval_reward_bench` then score it order-debiased (pair_pm/judge.py).
"""

from __future__ import annotations

from trl import SFTTrainer

from pair_pm.config import PairPMConfig
from rm_core.args import DataArguments
from rm_core.errors import UserInputError, run_recipe
from rm_core.trainer import sparse_label_loss_step


class PairPMTrainer(SFTTrainer):
    """SFTTrainer whose loss reads the logits at the answer position only. The stock loss builds logits over
    the whole vocabulary at every position (49k x 512 x batch floats for SmolLM2: ~18 GB at batch 16 on a
    CPU) to then mask all but one token per row; here the LM head runs only where the answer is predicted."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = sparse_label_loss_step(self, model, inputs, num_items_in_batch, "answer token",
                                               one_per_row=True, stop_on_nonfinite=True)
        return (loss, outputs) if return_outputs else loss


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, PairPMConfig, ModelConfig))


def both_orders(prefs: list[dict]) -> list[tuple]:
    """(prompt, chosen, rejected) then (prompt, rejected, chosen) for every pair: the judge's two readings."""
    from judges.base import pair_texts

    items = [(p["prompt"], *pair_texts(p)) for p in prefs]
    return [x for q, a, b in items for x in ((q, a, b), (q, b, a))]


def evaluate_pair_pm(judge, prefs: list[dict], probs: list[float] | None = None) -> dict:
    """Held-out accuracy one order (chosen as A, and as B) and order-debiased, and the flip rate of the one-order
    verdicts (judges.conflicts: the project's definitions). probs: the judge's P(A) over both_orders(prefs), when
    already computed. A pair with a non-finite P(A) is a failed pair (counted, never right)."""
    import math

    from judges.base import PairVerdict
    from judges.conflicts import OrderStats, one_order_accuracies

    if probs is None:
        probs = judge.first_probs(both_orders(prefs))
    verdicts = [PairVerdict(*(p if math.isfinite(p) else None for p in (probs[2 * i], 1.0 - probs[2 * i + 1])))
                for i in range(len(prefs))]
    acc = one_order_accuracies(verdicts)
    return {"pairs": len(verdicts), "accuracy": acc["both_orders"], "accuracy_chosen_as_a": acc["chosen_first"],
            "accuracy_chosen_as_b": acc["chosen_second"],
            "order_inconsistency_rate": OrderStats.of(verdicts).inconsistency_rate,
            "failed_pairs": sum(v.p is None for v in verdicts)}


def main(data_args: DataArguments, training_args: PairPMConfig, model_args) -> dict:
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from pair_pm.judge import PairPMJudge
    from pair_pm.prepare_data import TEMPLATE_NAME, answer_token_ids, build_dataset, check_template_room
    from rm_core.finite import CHECK_EXAMPLES, check_final_rewards
    from rm_core.hub import CardInfo, held_out_evals, publish, trainer_tags
    from rm_core.models import load_causal_lm, resolve_model
    from rm_core.pipeline import (
        finalise_checkpoint,
        held_out_line,
        load_preference_splits,
        peft_and_push,
        run_training,
        training_inputs,
    )
    from rm_core.templates import set_chat_template

    state = PartialState()
    set_seed(training_args.seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model_args.model_name_or_path),
                                              revision=model_args.model_revision)
    set_chat_template(tokenizer, training_args.chat_template)
    check_template_room(tokenizer, training_args.max_length)  # the tokenizer alone: before the weights are loaded
    model, tokenizer, base_path = load_causal_lm(model_args, training_args.chat_template)

    train, test, data_report = load_preference_splits(data_args)
    if training_args.rrm_augment:
        from pair_pm.rrm_augment import rrm_augment

        extra, data_report["rrm"] = rrm_augment(train, seed=training_args.rrm_seed)
        train = train + extra
    train_ds, truncation = build_dataset(train, tokenizer, training_args.max_length, training_args.both_orders)
    data_report["train_truncation"] = str(truncation)
    if not len(train_ds):
        raise UserInputError(f"{data_args.dataset_name}: no training example left ({truncation}); raise --max_length")
    if state.is_main_process:
        print(f"[data] {data_args.dataset_name}: {len(train)} train pairs -> {len(train_ds)} examples; {truncation}; "
              f"{len(test)} held-out pairs; skipped {data_report['train_skipped']['skipped']} train / "
              f"{data_report['test_skipped']['skipped']} held-out rows", flush=True)
        print(held_out_line(data_report), flush=True)

    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "CAUSAL_LM")
    trainer = PairPMTrainer(model=model, args=training_args, train_dataset=train_ds, processing_class=tokenizer,
                         peft_config=peft_config)
    fields = {"pair_pm_answer_ids": answer_token_ids(tokenizer), "pair_pm_template": TEMPLATE_NAME,
              "pair_pm_max_length": training_args.max_length, "base_model": model_args.model_name_or_path}
    train_result, out_dir = run_training(trainer, training_args, "pair_pm", fields, training_inputs(model_args, train_ds))

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report}
    if state.is_main_process:
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        auto_class=AutoModelForCausalLM, revision=model_args.model_revision)
        judge = PairPMJudge(model_out, tokenizer, training_args.max_length)
        checked = test or train[:CHECK_EXAMPLES]  # the first training pairs when there is no held-out set
        probs = judge.first_probs(both_orders(checked))
        check_final_rewards(probs, f"the final model's P(A) over the {len(checked)} "
                                   f"{'held-out' if test else 'first training'} pairs in both orders", out_dir)
        if test:
            held = evaluate_pair_pm(judge, test, probs)
            results["held_out"] = held
            print(f"[eval] held-out accuracy {held['accuracy']:.4f} (one order: chosen as A "
                  f"{held['accuracy_chosen_as_a']:.4f}, as B {held['accuracy_chosen_as_b']:.4f}; order flips "
                  f"{held['order_inconsistency_rate']:.4f}) on {held['pairs']} pairs", flush=True)
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "train pairs": len(train), "examples (both orders)": len(train_ds),
                    "max_length": training_args.max_length, "epochs": training_args.num_train_epochs,
                    "max_steps": training_args.max_steps, "learning rate": training_args.learning_rate,
                    "LoRA": bool(peft_config), "RRM augmentation": training_args.rrm_augment,
                    "held-out set": f"{len(test)} pairs: {data_report['held_out']['description']}"}
        publish(out_dir, model_out, tokenizer, rm_family="pair_pm", family_fields=fields, eval_results=results,
                card=CardInfo(base_model=model_args.model_name_or_path, datasets=[data_args.dataset_name],
                              training=training,
                              metrics={f"held-out {k}": v for k, v in results.get("held_out", {}).items()},
                              evals=held_out_evals(data_args.dataset_name, data_report["held_out"], {
                                  "held-out accuracy": results.get("held_out", {}).get("accuracy")}),
                              tags=trainer_tags(trainer)),
                push=push, hub_model_id=hub_model_id, private=training_args.hub_private_repo)
    state.wait_for_everyone()
    return results


def cli() -> None:  # `python pair_pm/train.py`, `python -m pair_pm.train`, `rm-train-pair-pm`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
