"""What train_prm.py and train_orm.py share: the dataset of judgement slots, the trainer, main() (their
arguments: config.py).

Training is TRL's SFTTrainer on pre-tokenised rows: `input_ids` is the solution with a slot after each step
(math_rm/encoding.py) and `labels` holds "+" / "-" right after the slots of labelled steps, -100 elsewhere
(shifted convention: the logits at a slot predict it). MathRMTrainer computes exactly the causal-LM loss over
those labels, but runs the LM head only at the slot positions (the stock loss builds vocabulary-wide logits
at every position, then masks all but a few). Steps after the last labelled one are dropped before
encoding: by causal attention they cannot change the loss, only cost time. `--judgement_loss tokens` takes the
softmax over the "+" and "-" logits alone (as OpenRLHF's PRMLoss does with --reward_tokens:
openrlhf/models/loss.py at 04898500, the last commit before PRM training was removed): the two-way softmax the
judge scores with (math_rm/judge.py), so a short run spends no step learning to emit the two tokens.
"""

from __future__ import annotations

from trl import SFTTrainer

from math_rm.config import MathRMConfig
from math_rm.encoding import EncodeReport, encode_solution
from rm_core.trainer import sparse_label_loss_step


def build_dataset(rows: list[dict], tokenizer, tag_id: int, judgement_ids: dict[str, int], max_length: int | None):
    """Steps rows -> a datasets.Dataset (input_ids, labels) and a report. Rows whose labelled slots were all cut
    by max_length are dropped and counted."""
    from datasets import Dataset

    report = EncodeReport()
    input_ids, labels, stats = [], [], {"rows": 0, "good_steps": 0, "bad_steps": 0, "dropped_no_label_left": 0}
    for row in rows:
        last = max(i for i, lab in enumerate(row["labels"]) if lab is not None)
        ids, slots = encode_solution(tokenizer, row["prompt"], row["steps"][: last + 1], tag_id, max_length, report)
        target = [-100] * len(ids)
        for slot, lab in zip(slots, row["labels"][: last + 1]):
            if slot is not None and lab is not None:
                target[slot + 1] = judgement_ids["+" if lab == 1 else "-"]
                stats["good_steps" if lab == 1 else "bad_steps"] += 1
        if all(t == -100 for t in target):
            stats["dropped_no_label_left"] += 1
            continue
        input_ids.append(ids)
        labels.append(target)
        stats["rows"] += 1
    stats["tokens"] = sum(len(x) for x in input_ids)
    stats["truncation"] = str(report)
    return Dataset.from_dict({"input_ids": input_ids, "labels": labels}), stats


class MathRMTrainer(SFTTrainer):
    """SFTTrainer whose loss is the cross-entropy of the judgement tokens, computed at the slots alone."""

    def __init__(self, *args, label_ids: list[int] | None = None, **kwargs):
        import torch

        super().__init__(*args, **kwargs)
        self.label_ids = None if label_ids is None else torch.tensor(label_ids)  # --judgement_loss tokens

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = sparse_label_loss_step(self, model, inputs, num_items_in_batch, "judgement label",
                                               stop_on_nonfinite=True, label_ids=self.label_ids)
        return (loss, outputs) if return_outputs else loss


def check_final_step_scores(model, tokenizer, eval_cands: list[dict], rows: list[dict], tag_id: int,
                            judgement_ids: dict[str, int], max_length: int | None, out_dir) -> None:
    """rm_core.finite.check_final_rewards on the final model's P(step good) at every step slot of the first
    held-out solutions (the first training rows when there are no held-out questions)."""
    from math_rm.judge import slot_probs
    from rm_core.data import split_steps
    from rm_core.finite import CHECK_EXAMPLES, check_final_rewards

    if eval_cands:
        solutions = [(c["prompt"], split_steps(r) or [r.strip()]) for c in eval_cands for r in c["responses"]]
        where = "held-out solutions"
    else:
        solutions = [(r["prompt"], r["steps"]) for r in rows]
        where = "training solutions (there are no held-out questions)"
    solutions = solutions[:CHECK_EXAMPLES]
    encoded = [encode_solution(tokenizer, prompt, steps, tag_id, max_length) for prompt, steps in solutions]
    from rm_core.templates import padding_id

    pad = padding_id(tokenizer)
    check_final_rewards(slot_probs(model, encoded, pad, judgement_ids),
                        f"the final model's step scores over the first {len(solutions)} {where}", out_dir)


def make_parser():
    from trl import ModelConfig, TrlParser

    from math_rm.config import MathDataArguments

    return TrlParser((MathDataArguments, MathRMConfig, ModelConfig))


def main(rm_family: str, data_args, training_args: MathRMConfig, model_args) -> dict:
    """Train a "prm" or "orm" checkpoint, save it self-described, evaluate best-of-N on the held-out questions."""
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, set_seed

    from math_rm import best_of_n
    from math_rm.data import load_math_splits, orm_training_rows, prm_training_rows
    from math_rm.encoding import TEMPLATE_NAME, choose_step_tag, judgement_token_ids
    from math_rm.judge import AGGREGATIONS, OutcomeRewardJudge, ProcessRewardJudge
    from rm_core.errors import UserInputError
    from rm_core.hub import CardEval, CardInfo, atomic_write_json, held_out_split, publish, trainer_tags
    from rm_core.models import load_causal_lm
    from rm_core.pipeline import finalise_checkpoint, peft_and_push, run_training, training_inputs

    if rm_family not in ("prm", "orm"):
        raise ValueError(f"rm_family must be 'prm' or 'orm', got {rm_family!r}")
    aggregation = training_args.aggregation or ("min" if rm_family == "prm" else "last")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose from {sorted(AGGREGATIONS)}")
    state = PartialState()
    set_seed(training_args.seed)
    model, tokenizer, base_path = load_causal_lm(model_args, training_args.chat_template)
    step_tag, tag_id = choose_step_tag(tokenizer, training_args.step_tag)
    judgement_ids = judgement_token_ids(tokenizer)

    train_src, eval_cands, data_report = load_math_splits(data_args)
    to_rows = prm_training_rows if rm_family == "prm" else orm_training_rows
    rows, skips = to_rows(train_src, data_args.dataset_format, data_args.strict_rows)
    if not rows:
        raise UserInputError(f"no usable {rm_family.upper()} training rows in {data_args.dataset_name!r}: "
                             f"{len(train_src)} source rows read, {skips}")
    train_ds, stats = build_dataset(rows, tokenizer, tag_id, judgement_ids, training_args.max_length)
    data_report.update(train_skipped=skips.as_dict(), train=stats)
    if state.is_main_process:
        print(f"[data] {rm_family}: {len(train_src)} source rows -> {stats['rows']} sequences, "
              f"{stats['good_steps']} '+' / {stats['bad_steps']} '-' judgements, {stats['tokens']} tokens; "
              f"{stats['truncation']}; skipped {skips.total}; {len(eval_cands)} held-out questions", flush=True)
        held = data_report["held_out"]["description"]
        print(f"[data] held-out set: {len(eval_cands)} questions, {held}" if eval_cands else
              f"[data] no held-out set ({held}): no best-of-N result is reported", flush=True)

    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "CAUSAL_LM")
    label_ids = [judgement_ids["+"], judgement_ids["-"]] if training_args.judgement_loss == "tokens" else None
    trainer = MathRMTrainer(model=model, args=training_args, train_dataset=train_ds, processing_class=tokenizer,
                            peft_config=peft_config, label_ids=label_ids)
    fields = {"math_rm_judgement_ids": judgement_ids, "math_rm_judgement_loss": training_args.judgement_loss,
              "math_rm_step_tag": step_tag, "math_rm_step_tag_id": tag_id,
              "math_rm_aggregation": aggregation, "math_rm_template": TEMPLATE_NAME,
              "math_rm_max_length": training_args.max_length, "base_model": model_args.model_name_or_path}
    train_result, out_dir = run_training(trainer, training_args, rm_family, fields, training_inputs(model_args, train_ds))

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report}
    if state.is_main_process:
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        auto_class=AutoModelForCausalLM, revision=model_args.model_revision)
        check_final_step_scores(model_out, tokenizer, eval_cands, rows, tag_id, judgement_ids,
                                training_args.max_length, out_dir)
        if eval_cands:  # the judge as judges.load builds it from the published config.json (fields)
            judge_cls = ProcessRewardJudge if rm_family == "prm" else OutcomeRewardJudge
            judge = judge_cls(model_out, tokenizer, aggregation=aggregation, max_length=training_args.max_length,
                              step_tag=step_tag)
            bon = best_of_n.evaluate(eval_cands, {rm_family: judge}, progress=not training_args.disable_tqdm)
            results["best_of_n"] = {k: v for k, v in bon.items() if k != rm_family}
            results["best_of_n"][rm_family] = {k: v for k, v in bon[rm_family].items() if k != "scores"}
            atomic_write_json(out_dir / "held_out_scores.json", {"ids": [c["id"] for c in eval_cands],
                                                                 "scores": bon[rm_family]["scores"]})
            b = results["best_of_n"]
            print(f"[eval] best-of-N on {b['questions']} questions: {rm_family} {b[rm_family]['accuracy']:.4f} | "
                  f"{rm_family}-weighted vote {b[rm_family]['weighted_vote_accuracy']:.4f} | "
                  f"random {b['random']:.4f} | majority vote {b['majority_vote']:.4f} | oracle {b['oracle']:.4f} "
                  f"(scoring {b[rm_family]['scoring_seconds']} s; {b[rm_family]['truncated_candidates']} candidates "
                  f"cut to max_length, {b[rm_family].get('step_slots_cut', 0)} step slots lost)", flush=True)
        held = results.get("best_of_n", {})
        card_metrics = {f"best-of-N {k}": v for k, v in held.items() if isinstance(v, float)}
        if rm_family in held:
            card_metrics[f"best-of-N {rm_family}"] = held[rm_family]["accuracy"]
            card_metrics[f"best-of-N {rm_family}-weighted vote"] = held[rm_family]["weighted_vote_accuracy"]
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "training sequences": stats["rows"], "judgements (+/-)": f"{stats['good_steps']}/{stats['bad_steps']}",
                    "max_length": training_args.max_length, "epochs": training_args.num_train_epochs,
                    "max_steps": training_args.max_steps, "learning rate": training_args.learning_rate,
                    "LoRA": bool(peft_config), "step tag": repr(step_tag), "aggregation": aggregation,
                    "judgement loss": training_args.judgement_loss,
                    "held-out set": f"{len(eval_cands)} questions: {data_report['held_out']['description']}"}
        evals = [CardEval(data_args.eval_dataset_name or data_args.dataset_name, held_out_split(data_report["held_out"]),
                          {"best-of-N accuracy": held[rm_family]["accuracy"],
                           "best-of-N weighted vote accuracy": held[rm_family]["weighted_vote_accuracy"]},
                          task_name="Best-of-N selection")] if rm_family in held else []
        publish(out_dir, model_out, tokenizer, rm_family=rm_family, family_fields=fields, eval_results=results,
                card=CardInfo(base_model=model_args.model_name_or_path, datasets=[data_args.dataset_name],
                              training=training, metrics=card_metrics, evals=evals, tags=trainer_tags(trainer)),
                push=push, hub_model_id=hub_model_id, private=training_args.hub_private_repo)
    state.wait_for_everyone()
    return results
