"""The pairwise reward-model training pipeline that thin recipe scripts call.

load data -> canonical preference rows (bad rows counted) -> tokenise (truncate, never drop) ->
PairwiseRewardTrainer (full or LoRA; each checkpoint-N self-described as it is saved) -> resume if a checkpoint
exists -> save the final model (LoRA merged) -> score the held-out pairs -> the divergence check ->
rm_core.hub.publish: reward mean/std and the family's fields in config.json, eval_results.json, model card,
optional push to the Hub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import TrainerCallback

from rm_core.args import DataArguments, RewardModelConfig
from rm_core.collators import tokenize_preferences
from rm_core.data import drop_seen, hh_split, load_rows, load_split, split_pairs, to_preferences
from rm_core.errors import UserInputError
from rm_core.hub import (
    CardInfo,
    describe_config_file,
    held_out_evals,
    publish,
    self_description,
    take_hub_token,
    trainer_tags,
)
from rm_core.inference import score_pairs
from rm_core.metrics import pair_correct, pairwise_accuracy
from rm_core.models import cache_dir, load_reward_model, resolve_model
from rm_core.templates import ensure_pad_token, render_ids
from rm_core.trainer import PairwiseRewardTrainer


def load_preference_splits(data_args: DataArguments) -> tuple[list[dict], list[dict], dict]:
    """(train preferences, held-out preferences, data report) from a Hub id, a local path or 'builtin'.

    The held-out set is, in order: the fixed HH-RLHF rule (--split_rule hh_sha1); the data's own test split, less
    any pair also in the training pairs; when the data has no such split (one file, a folder without it, a Hub set
    without it), the pairs whose content hash falls in --eval_fraction (rm_core.data.split_pairs); else none, and
    the report says so. The report's `held_out` records which, and its size. Training rows are never held out."""
    source = data_args.dataset_name
    if source == "builtin":
        from rm_core.builtin_data import write_builtin_preferences

        paths = write_builtin_preferences(cache_dir() / "builtin-preferences")
        source = str(Path(paths["train"]).parent)
    train_rows = load_rows(source, data_args.dataset_train_split, data_args.dataset_data_dir)
    test_split = data_args.dataset_test_split
    test_rows, carve = [], False
    if data_args.split_rule == "hh_sha1":
        train_rows, test_rows = hh_split(train_rows)
        held = {"rule": "hh_sha1", "description": "the project's fixed HH-RLHF split (sha1(chosen) % 5 == 0)"}
    elif data_args.split_rule:
        raise UserInputError(f"unknown split_rule {data_args.split_rule!r}; use 'hh_sha1' or leave it empty")
    elif not test_split:
        held = {"rule": "none", "description": "none: --dataset_test_split is empty"}
    elif (loaded := load_split(source, test_split, data_args.dataset_data_dir)) is not None:
        test_rows = loaded
        held = {"rule": "split", "split": test_split, "description": f"the data's {test_split!r} split"}
    elif data_args.eval_fraction > 0:
        carve = True
        held = {"rule": "hashed", "fraction": data_args.eval_fraction,
                "description": f"{data_args.eval_fraction:g} of the pairs, by sha1 of each pair's content (the data "
                               f"has no {test_split!r} split)"}
    else:
        held = {"rule": "none", "description": f"none: the data has no {test_split!r} split and --eval_fraction is 0"}
    train, train_skips = to_preferences(train_rows, data_args.dataset_format, data_args.strict_rows)
    test, test_skips = to_preferences(test_rows, data_args.dataset_format, data_args.strict_rows)
    if not train and not carve:
        raise UserInputError(f"no usable training pairs in {data_args.dataset_name!r}: {len(train_rows)} rows read, "
                             f"{train_skips}")
    if carve:
        train, test = split_pairs(train, data_args.eval_fraction)
    elif held["rule"] == "split":
        test, held["dropped_also_in_train"] = drop_seen(test, train)
    if data_args.max_train_pairs:
        train = train[: data_args.max_train_pairs]
    if data_args.max_eval_pairs and len(test) > data_args.max_eval_pairs:
        test = test[: data_args.max_eval_pairs]
        held["first"] = data_args.max_eval_pairs  # a part of the held-out set: the log and the card say so
    if not train:
        raise UserInputError(f"no usable training pairs in {data_args.dataset_name!r}: {len(train_rows)} rows read, "
                             f"{train_skips}" + (f", {len(test)} held out" if carve and test else ""))
    if held["rule"] != "none" and not test:
        held["description"] = f"none: {held['description']} gave no pairs"
    held["pairs"] = len(test)
    report = {"dataset": data_args.dataset_name, "train_pairs": len(train), "test_pairs": len(test),
              "held_out": held, "train_skipped": train_skips.as_dict(), "test_skipped": test_skips.as_dict()}
    return train, test, report


def held_out_line(report: dict) -> str:
    """One line for the log: what the held-out set is and its size, or that there is none."""
    held = report["held_out"]
    if not held["pairs"]:
        return (f"[data] no held-out set ({held['description']}): no held-out accuracy or reward mean/std is "
                "reported")
    dropped = held.get("dropped_also_in_train")
    return (f"[data] held-out set: {held['pairs']} pairs, {held['description']}"
            + (f", its first {held['first']} (--max_eval_pairs)" if held.get("first") else "")
            + (f"; {dropped} pairs also in the training pairs dropped from it" if dropped else ""))


def complete_checkpoints(output_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """(complete, incomplete) `checkpoint-N` folders of a run, by step. The Trainer writes trainer_state.json
    last (after the weights, optimizer and RNG state), so a checkpoint is complete when that file parses; a
    kill while writing checkpoint-N leaves it without one, or with a cut one."""
    import json
    import re

    folder = Path(output_dir)
    found = sorted((int(m.group(1)), p) for p in (folder.glob("checkpoint-*") if folder.is_dir() else [])
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    complete, incomplete = [], []
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
            complete.append(path)
        except (OSError, ValueError, KeyError, TypeError):
            incomplete.append(path)
    return complete, incomplete


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The last complete checkpoint (incomplete ones are skipped, and said so), or None."""
    complete, incomplete = complete_checkpoints(output_dir)
    if incomplete and PartialState().is_main_process:
        print(f"[resume] skipping incomplete checkpoint(s) {', '.join(p.name for p in incomplete)} in {output_dir} "
              "(no complete trainer_state.json: the run was killed while writing it)", flush=True)
    return str(complete[-1]) if complete else None


def resume_point(output_dir: str | Path, requested) -> str | None:
    """What `trainer.train(resume_from_checkpoint=...)` gets. "auto": the last complete checkpoint (None when
    there is none). "fresh": step 0, the earlier run's checkpoint folders deleted. A path: itself. Not given,
    while output_dir holds checkpoints of an earlier run: an error naming the choices, so a rerun never
    silently trains from step 0 over them; likewise a finished model there without a checkpoint to continue from
    (not given, or "auto"), so a rerun never silently replaces finished work."""
    finished = (Path(output_dir) / TRAINING_FINGERPRINT).is_file() and (Path(output_dir) / "config.json").is_file()
    if requested in ("auto", "True", "true", True):
        resume = last_checkpoint(output_dir)
        if resume is None and finished:
            raise UserInputError(f"{output_dir} holds a finished model and no checkpoint to continue from: pass "
                                 "--resume_from_checkpoint fresh to train it again, replacing it (or choose "
                                 "another --output_dir)")
        return resume
    complete, incomplete = complete_checkpoints(output_dir)
    if requested == "fresh":
        if PartialState().is_main_process:
            for path in complete + incomplete:
                shutil.rmtree(path)
        PartialState().wait_for_everyone()
        return None
    if requested:
        return requested
    if complete or incomplete:
        last = f"from {complete[-1].name}" if complete else "(none of them is complete: it starts from step 0)"
        raise UserInputError(
            f"{output_dir} holds checkpoints of an earlier run ({', '.join(p.name for p in complete + incomplete)}): "
            f"pass --resume_from_checkpoint auto to continue {last}, or --resume_from_checkpoint fresh to start "
            "from step 0 and delete them (or choose another --output_dir)")
    if finished:
        raise UserInputError(f"{output_dir} holds the finished model of an earlier run: pass "
                             "--resume_from_checkpoint fresh to train again, replacing it (or choose another "
                             "--output_dir)")
    return None


TRAINING_FINGERPRINT = "training_run.fingerprint.json"  # beside the checkpoints; never pushed (rm_core.hub)
# Training arguments a resume may change: where and how often it logs, saves and evaluates, how far it goes (more
# max_steps or epochs extend a run), and how it runs on the hardware (workers, checkpointing, compilation; tokens
# and paths). Every other argument, the world size, the base model and the tokenised training rows must be the
# ones that produced the checkpoint: else the resumed run trains one run's weights and optimizer on another's
# data or settings, and its card records only the second.
RESUME_MAY_CHANGE = re.compile(
    r"(output_dir|resume_from_checkpoint|overwrite_output_dir|run_name|project|report_to|trackio_.*|push_to_hub|"
    r"hub_.*|push_to_hub_.*|logging_.*|log_.*|disable_tqdm|save_.*|eval_.*|per_device_eval_batch_size|"
    r"do_(train|eval|predict)|prediction_loss_only|batch_eval_metrics|include_.*|metric_for_best_model|"
    r"load_best_model_at_end|greater_is_better|(bf16|fp16)_full_eval|num_train_epochs|max_steps|dataloader_"
    r"(num_workers|pin_memory|persistent_workers|prefetch_factor|multiprocessing_context)|local_rank|ddp_.*|debug|"
    r"skip_memory_metrics|torch_empty_cache_steps|(gradient|activation)_checkpointing.*|activation_offloading|"
    r"enable_jit_checkpoint|use_cpu|tf32|torch_compile.*|dataset_num_proc|accelerator_config|deepspeed|fsdp.*|"
    r"parallelism_config|restore_callback_states_from_checkpoint|use_cache|cache_implementation|pad_to_multiple_of|"
    r"use_liger_kernel|liger_kernel_config|held_out_eval_pairs|num_completions_to_print|ds3_gather_for_generation|"
    r"vllm_(enable_sleep_mode|gpu_memory_utilization|group_port|server_.*|tensor_parallel_size|mode|model_impl)|"
    r"use_transformers_(continuous_batching|paged)|transformers_continuous_batching_config)")


# Model options a resume may change (how the base is found and run); every other one (dtype, use_peft and the LoRA
# settings, quantisation) shapes what is trained and is compared, as "model.<name>" among the settings.
MODEL_RESUME_MAY_CHANGE = {"model_name_or_path", "model_revision", "attn_implementation", "trust_remote_code"}


def training_inputs(model_args, train_dataset) -> dict:
    """What a training run learns from, by content: the base model (rm_core.resume.model_fingerprint), the
    tokenised training rows (the `datasets` content hash of the Dataset the recipe built: data file, chat
    template, tokenizer and max_length all show in it), and the model options that shape training."""
    from dataclasses import asdict, is_dataclass

    from rm_core.resume import model_fingerprint

    options = asdict(model_args) if is_dataclass(model_args) else dict(vars(model_args))
    return {"base_model": model_fingerprint(model_args.model_name_or_path, model_args.model_revision),
            "train_data": getattr(train_dataset, "_fingerprint", None),
            "model_options": {f"model.{k}": v for k, v in options.items() if k not in MODEL_RESUME_MAY_CHANGE}}


def training_fingerprint(training_args, inputs: dict) -> dict:
    inputs = dict(inputs)
    settings = {k: v for k, v in training_args.to_dict().items() if not RESUME_MAY_CHANGE.fullmatch(k)}
    settings.update(inputs.pop("model_options", {}))  # compared as settings: a key only one run knows is skipped
    settings["world_size"] = PartialState().num_processes
    return {**inputs, "settings": json.loads(json.dumps(settings, sort_keys=True, default=str))}


def check_training_resume(output_dir: str | Path, resume: str | None, fingerprint: dict) -> None:
    """Main process. From step 0 (`resume` None): record `fingerprint` in output_dir. From a checkpoint: refuse,
    in one line naming what differs, when the run that wrote it had another base model, other training rows or
    other settings (`training_fingerprint`; a setting only one of the two knows, e.g. after a transformers upgrade,
    is not compared). A checkpoint from before fingerprints were recorded resumes with a warning."""
    from rm_core.hub import atomic_write_json
    from rm_core.resume import ResumeError, differences

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resume is not None and Path(resume).resolve().parent != out.resolve() and any(complete_checkpoints(out)):
        # the fingerprint here would become the other folder's run's, and a later `auto` resume would continue
        # this folder's own checkpoints under it
        raise ResumeError(f"{out} holds checkpoints of its own run; resuming {resume} (another folder's run) into "
                          "it would mix the two: choose an --output_dir without checkpoints")
    if resume is not None:
        recorded = Path(resume).parent / TRAINING_FINGERPRINT
        if not recorded.is_file():
            print(f"[resume] WARNING: {resume} has no {TRAINING_FINGERPRINT} (written before runs recorded one): "
                  "cannot check it was trained with this base model, data and settings", flush=True)
        else:
            found = json.loads(recorded.read_text(encoding="utf-8"))
            common = set(found.get("settings", {})) & set(fingerprint["settings"])
            diff = differences({**found, "settings": {k: found["settings"][k] for k in common}},
                               {**fingerprint, "settings": {k: fingerprint["settings"][k] for k in common}})
            if diff:
                raise ResumeError(
                    f"{resume} was trained with other inputs ({'; '.join(diff)}): resuming would mix two runs; "
                    "pass --resume_from_checkpoint fresh to start from step 0 with these (or use another "
                    "--output_dir)")
    atomic_write_json(out / TRAINING_FINGERPRINT, fingerprint)


def evaluate_pairs(model, tokenizer, prefs: list[dict], max_length: int | None, batch_size: int = 16) -> dict:
    """Held-out accuracy (strict tie rule) and reward mean/std over all scored responses."""
    pairs = [(render_ids(tokenizer, p["prompt"] + p["chosen"], max_length)[0],
              render_ids(tokenizer, p["prompt"] + p["rejected"], max_length)[0]) for p in prefs]
    scores = score_pairs(model, pairs, tokenizer.pad_token_id, batch_size)
    chosen = [c for c, _ in scores]
    rejected = [r for _, r in scores]
    rewards = torch.tensor(chosen + rejected, dtype=torch.float64)
    from rm_core.stats import bootstrap_ci

    low, high = bootstrap_ci([float(pair_correct(c, r)) for c, r in zip(chosen, rejected)], proportion=True)
    return {"accuracy": pairwise_accuracy(chosen, rejected), "accuracy_ci95": [round(low, 4), round(high, 4)],
            "pairs": len(prefs),
            "reward_mean": rewards.mean().item(), "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0}


def check_trained_pairs(evaluate_fn, model, tokenizer, test: list[dict], train: list[dict], training_args,
                        out_dir, held_out: dict | None = None) -> None:
    """rm_core.finite.check_final_rewards on the final model's reward mean/std over the held-out pairs (their
    evaluation `held_out` when already computed), or over the first training pairs when there is no held-out
    set: a NaN or inf among the rewards makes either non-finite."""
    from rm_core.finite import CHECK_EXAMPLES, check_final_rewards

    if held_out is None:
        pairs = test or train[:CHECK_EXAMPLES]
        held_out = evaluate_fn(model, tokenizer, pairs, training_args.max_length,
                               training_args.per_device_eval_batch_size)
        what = (f"the final model's reward mean and std over the {len(pairs)} held-out pairs" if test else
                f"the final model's reward mean and std over the first {len(pairs)} training pairs (there is no "
                "held-out set)")
    else:
        what = f"the final model's reward mean and std over the {held_out['pairs']} held-out pairs"
    check_final_rewards([held_out["reward_mean"], held_out["reward_std"]], what, out_dir)


class SelfDescribingCheckpoints(TrainerCallback):
    """Writes the self-description (rm_family, the chat template, the family's fields known before training) into
    the config.json of each checkpoint-N as soon as the Trainer has saved it (main process), so every saved
    checkpoint says what it is. What is measured only at the end (reward mean/std) is written by publish, into
    the final model alone; the final model's config.json is described only after the divergence check. A LoRA
    checkpoint (the adapter alone, no config.json) is left as it is."""

    def __init__(self, rm_family: str, chat_template: str | None, family_fields: dict | None = None):
        self_description(rm_family, chat_template, **(family_fields or {}))  # a bad family fails before training
        self.rm_family, self.chat_template, self.fields = rm_family, chat_template, dict(family_fields or {})

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            describe_config_file(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.rm_family,
                                 self.chat_template, **self.fields)
        return control


def run_training(trainer, training_args, rm_family: str, family_fields: dict | None = None,
                 inputs: dict | None = None) -> tuple:
    """Train (resuming as `resume_point` says: --resume_from_checkpoint auto | fresh | PATH, and only from a
    checkpoint of the same `inputs` (`training_inputs`) and settings, `check_training_resume`; every checkpoint-N
    described as `rm_family` with `family_fields`, SelfDescribingCheckpoints), save the final model, and
    leave DeepSpeed's from_pretrained hook off for what follows. Returns (train_result, output folder)."""
    trainer.add_callback(SelfDescribingCheckpoints(rm_family, getattr(trainer.processing_class, "chat_template", None),
                                                   family_fields))
    resume = resume_point(training_args.output_dir, training_args.resume_from_checkpoint)
    if PartialState().is_main_process:
        check_training_resume(training_args.output_dir, resume, training_fingerprint(training_args, inputs or {}))
        # An earlier final model's card and results describe weights this run replaces: gone before it trains,
        # so a kill between the new weights and the new card never leaves the one beside the other.
        for name in ("README.md", "eval_results.json", "held_out_scores.json"):
            (Path(training_args.output_dir) / name).unlink(missing_ok=True)
        for name in ("lora_adapter", "diverged"):  # an earlier run's adapter or diverged weights: never pushed with
            shutil.rmtree(Path(training_args.output_dir) / name, ignore_errors=True)  # this run's model
    PartialState().wait_for_everyone()
    train_result = trainer.train(resume_from_checkpoint=resume)
    out_dir = Path(training_args.output_dir)
    trainer.save_model(str(out_dir))
    PartialState().wait_for_everyone()
    # Training is over: from here on only the main process loads models. Under ZeRO-3 (zero3_init_flag) every
    # from_pretrained would partition the weights over all ranks, a collective the others never join: a deadlock.
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    return train_result, out_dir


def train_pairwise_reward_model(
    data_args: DataArguments, training_args: RewardModelConfig, model_args, rm_family: str, command: str | None = None,
    trainer_cls=PairwiseRewardTrainer, model_loader=None, tokenize_fn=tokenize_preferences,
    evaluate_fn=evaluate_pairs, family_fields: dict | None = None, evaluate_more=None, card_fields: dict | None = None,
) -> dict:
    """The whole recipe. Hooks for families that keep this pipeline but change a part of it (odin_rm, the scalar
    ORM): model_loader(path, dtype, chat_template, revision=, attn_implementation=) -> (model, tokenizer), default
    `load_reward_model`, also used to rebuild the base a LoRA adapter is merged into; tokenize_fn(prefs,
    tokenizer, max_length) -> (Dataset, TokenizeReport); evaluate_fn(model, tokenizer, prefs, max_length,
    batch_size) -> dict with at least accuracy, reward_mean and reward_std; family_fields: the family's own
    config.json fields (every checkpoint-N's and the final model's); evaluate_more(model, tokenizer) ->
    (more eval_results.json entries, more model-card metrics[, more model-index entries: CardEval]), run on the
    final model after the divergence check and before it is published. command: the card's reproduce line
    (default: the command that ran); card_fields: CardInfo fields that replace the pipeline's (datasets, ...),
    and eval_dataset: the data set the held-out pairs' model-index entry names (default data_args.dataset_name)."""
    from transformers import set_seed

    from rm_core.errors import check_recipe_paths

    check_recipe_paths(model_args, data_args, training_args)  # before the model: a typo costs a line, not a load
    state = PartialState()
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and state.num_processes != launched:  # else each process trains alone into one output_dir
        raise RuntimeError(f"launched as {launched} processes but accelerate formed {state.num_processes}; "
                           "on CPU pass --use_cpu true or set ACCELERATE_USE_CPU=1 (configs/accelerate/cpu.yaml)")
    base_path = resolve_model(model_args.model_name_or_path)
    set_seed(training_args.seed)  # the new reward head is random: seed it, so a run repeats exactly
    model_loader = model_loader or load_reward_model
    model, tokenizer = model_loader(base_path, model_args.dtype, training_args.chat_template,
                                    revision=model_args.model_revision,
                                    attn_implementation=model_args.attn_implementation)

    train, test, data_report = load_preference_splits(data_args)
    train_ds, train_tok = tokenize_fn(train, tokenizer, training_args.max_length)
    eval_ds, _ = tokenize_fn(test, tokenizer, training_args.max_length) if test else (None, None)
    if state.is_main_process:
        print(f"[data] {data_args.dataset_name}: {len(train)} train / {len(test)} held-out pairs; "
              f"skipped {data_report['train_skipped']['skipped']} train / "
              f"{data_report['test_skipped']['skipped']} held-out rows; train {train_tok}", flush=True)
        print(held_out_line(data_report), flush=True)
    data_report["train_truncated"] = train_tok.truncated
    data_report["train_identical_after_cut"] = train_tok.identical_after_cut
    if not len(train_ds):
        raise UserInputError(f"{data_args.dataset_name}: every training pair is the same tokens on both sides once "
                             f"cut to --max_length {training_args.max_length}; raise --max_length")

    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "SEQ_CLS")
    trainer = trainer_cls(model=model, args=training_args, train_dataset=train_ds,
                          eval_dataset=eval_ds if training_args.eval_strategy != "no" else None,
                          processing_class=tokenizer, peft_config=peft_config)
    fields = {"base_model": model_args.model_name_or_path, **(family_fields or {})}
    train_result, out_dir = run_training(trainer, training_args, rm_family, fields,
                                         training_inputs(model_args, train_ds))

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report}
    if state.is_main_process:
        base_loader = None
        if model_loader is not load_reward_model:  # merge LoRA into the family's own model class
            def base_loader():
                return model_loader(base_path, torch.float32, training_args.chat_template,
                                    revision=model_args.model_revision)[0]
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        base_loader=base_loader, revision=model_args.model_revision)
        if test:
            held_out = evaluate_fn(model_out, tokenizer, test, training_args.max_length,
                                   training_args.per_device_eval_batch_size)
            results["held_out"] = held_out
            print(f"[eval] held-out accuracy {held_out['accuracy']:.4f} on {held_out['pairs']} pairs; "
                  f"reward mean {held_out['reward_mean']:.3f} std {held_out['reward_std']:.3f}", flush=True)
        check_trained_pairs(evaluate_fn, model_out, tokenizer, test, train, training_args, out_dir,
                            results.get("held_out"))
        held = results.get("held_out", {})
        card_metrics = {f"held-out {k}": v for k, v in held.items()}
        card_fields = dict(card_fields or {})
        eval_dataset = card_fields.pop("eval_dataset", data_args.dataset_name)
        evals = held_out_evals(eval_dataset, data_report["held_out"], {"held-out accuracy": held.get("accuracy")})
        if evaluate_more is not None:
            more_results, more_metrics, *more_evals = evaluate_more(model_out, tokenizer)
            results.update(more_results)
            card_metrics.update(more_metrics)
            evals += [e for group in more_evals for e in group]
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "train pairs": len(train), "max_length": training_args.max_length,
                    "epochs": training_args.num_train_epochs, "max_steps": training_args.max_steps,
                    "learning rate": training_args.learning_rate, "LoRA": bool(peft_config),
                    "truncated train pairs": train_tok.truncated,
                    "train pairs dropped: identical once cut": train_tok.identical_after_cut,
                    # results["data"]: the pipeline's report, or the recipe's own of the user's file (scalar ORM)
                    "skipped train rows": skipped_text(results["data"]["train_skipped"]),
                    "held-out set": f"{len(test)} pairs: {data_report['held_out']['description']}"}
        publish(out_dir, model_out, tokenizer, rm_family=rm_family, eval_results=results,
                family_fields={**fields, "reward_mean": held.get("reward_mean"), "reward_std": held.get("reward_std"),
                               "reward_stats_on": f"held-out: {len(test)} pairs" if held else None},
                card=CardInfo(**{"base_model": model_args.model_name_or_path, "datasets": [data_args.dataset_name],
                                 "training": training, "metrics": card_metrics, "command": command, "evals": evals,
                                 "tags": trainer_tags(trainer), **card_fields}),
                push=push, hub_model_id=hub_model_id, private=training_args.hub_private_repo)
    state.wait_for_everyone()
    return results


def skipped_text(skipped: dict) -> str:
    """A SkipReport's as_dict for the card: "0", or "3 (2 chosen is an empty response, 1 ...)"."""
    from collections import Counter

    from rm_core.data import SkipReport

    reasons = SkipReport(Counter(skipped["by_reason"])).reasons()
    return f"{skipped['skipped']} ({reasons})" if skipped["skipped"] else "0"


def finalise_checkpoint(out_dir: Path, base_path: str, tokenizer, is_lora: bool, auto_class=None, base_loader=None,
                        revision: str | None = None):
    """Reload what was saved (the weights users will get); merge a LoRA adapter into a plain model, keeping
    the adapter in lora_adapter/. auto_class: AutoModelForSequenceClassification (default) or a causal LM.
    base_loader: builds the untrained model the adapter is merged into, for a custom model class (odin_rm).
    revision: the base's Hub revision the run trained on (the adapter is merged into that one, not main)."""
    from transformers import AutoModelForSequenceClassification

    auto_class = auto_class or AutoModelForSequenceClassification
    kwargs = {"num_labels": 1} if auto_class is AutoModelForSequenceClassification else {}
    if is_lora:
        from peft import PeftModel

        base = base_loader() if base_loader else auto_class.from_pretrained(base_path, dtype=torch.float32,
                                                                             revision=revision, **kwargs)
        ensure_pad_token(tokenizer, base)
        model = PeftModel.from_pretrained(base, str(out_dir)).merge_and_unload()
        adapter_dir = out_dir / "lora_adapter"
        adapter_dir.mkdir(exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if (out_dir / name).exists():
                shutil.move(str(out_dir / name), adapter_dir / name)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    model = auto_class.from_pretrained(out_dir, dtype=torch.float32)
    model.eval()
    return model


def peft_and_push(model_args, training_args, task_type: str):
    """(peft_config or None, push, hub_model_id) for a recipe: LoRA from TRL's ModelConfig when asked (SEQ_CLS keeps
    a reward head trainable through modules_to_save), and the
    Trainer's own push switched off, since the recipe pushes once at the end with its card."""
    from trl import get_peft_config

    peft_config = None
    if model_args.use_peft:
        model_args.lora_task_type = task_type
        peft_config = get_peft_config(model_args)
    push, hub_model_id = training_args.push_to_hub, training_args.hub_model_id
    training_args.push_to_hub = False
    take_hub_token(training_args)  # never pickled into training_args.bin
    return peft_config, push, hub_model_id
