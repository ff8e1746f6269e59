"""Train a reasoning pair-PM with GRPO: the model writes principles, a critique and <verdict>A|B</verdict>,
and is rewarded when the verdict agrees with the human preference (RM-Gallery's RL-trained generative RM).

    python pair_pm/train_grpo.py --config pair_pm/configs/smollm2-135m-grpo-cpu.yaml
    python pair_pm/train_grpo.py --config pair_pm/configs/smollm2-135m-grpo-cpu.yaml --use_peft --lora_r 16 \
        --learning_rate 2e-5                                                                     # LoRA
    accelerate launch --config_file configs/accelerate/zero3.yaml pair_pm/train_grpo.py \
        --config pair_pm/configs/qwen2.5-14b-grpo-8xa100.yaml                   # vLLM colocate when installed

Data: any preference source (rm_core DataArguments). Every pair becomes two rows, the pair-PM prompt
(prepare_data.REASONING_QUESTION) with the chosen response as A (label "A") and as B (label "B"), adjacent.
Rewards: pair_pm/grpo_rewards.py (judges/compose.py rules: +1 right verdict, -malformed_penalty for a
missing or malformed one, optional reasoning length band and structure terms).
Grouping (`pair_grouping`): "pair" (default) puts both orders of a pair in ONE GRPO group (num_generations / 2
completions of each), so the group baseline is the mean over both orders and a policy that answers by
position gets zero net advantage on either letter; "order": TRL's per-prompt groups, the two orders' groups
in the same generation batch (for vLLM server mode, which generates num_generations per distinct prompt).
See pair_pm/README.md. The checkpoint is a `pair_pm` checkpoint with `pair_pm_reasoning: true`: judges.load
returns pair_pm.judge.ReasoningPairPMJudge and eval_reward_bench scores it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Sampler
from trl import GRPOTrainer

from pair_pm.config import GROUPINGS, PairPMGRPOConfig
from rm_core.args import DataArguments
from rm_core.errors import run_recipe

# -- data ----------------------------------------------------------------------------------------------------


def build_grpo_dataset(prefs: list[dict], tokenizer, max_prompt_length: int):
    """Two adjacent rows per pair (row 2k: chosen as Response A, label "A"; row 2k+1: chosen as B, label "B"),
    each a conversational `prompt` cut to max_prompt_length tokens; ties are skipped (no label). Returns the
    datasets.Dataset, the TruncationReport and the number of ties skipped."""
    from datasets import Dataset

    from judges.base import prompt_text
    from pair_pm.prepare_data import REASONING_QUESTION, TruncationReport, fit_pair, pair_messages

    report, ties = TruncationReport(), 0
    rows: dict[str, list] = {"prompt": [], "label": [], "pair_id": [], "order": []}
    for k, pref in enumerate(prefs):
        if pref.get("tie"):
            ties += 1
            continue
        context = prompt_text(pref["prompt"])
        chosen, rejected = pref["chosen"][-1]["content"], pref["rejected"][-1]["content"]
        for a, b, label, order in ((chosen, rejected, "A", "forward"), (rejected, chosen, "B", "backward")):
            _, cut = fit_pair(tokenizer, context, a, b, max_prompt_length, report, REASONING_QUESTION, reserve=0)
            rows["prompt"].append(pair_messages(*cut, question=REASONING_QUESTION))
            rows["label"].append(label)
            rows["pair_id"].append(str(pref.get("id") or k))
            rows["order"].append(order)
    return Dataset.from_dict(rows), report, ties


def check_pair_layout(dataset) -> int:
    """Number of pairs; raises unless rows 2k and 2k+1 are the two orders (labels A then B) of one pair."""
    labels, ids = dataset["label"], dataset["pair_id"]
    if len(labels) % 2:
        raise ValueError(f"a pair-PM GRPO dataset has two rows per pair, got {len(labels)} rows")
    for k in range(0, len(labels), 2):
        if (labels[k], labels[k + 1]) != ("A", "B") or ids[k] != ids[k + 1]:
            raise ValueError(f"rows {k} and {k + 1} are not the two orders of one pair (labels {labels[k]}, "
                             f"{labels[k + 1]}; pair ids {ids[k]}, {ids[k + 1]})")
    return len(labels) // 2


def format_example(response_a: str, response_b: str, letter: str, words: int = 8) -> str:
    """A format-only target for the warm-up: generic principles, a critique quoting the start of each response,
    and `letter` as the verdict. Nothing in it depends on which response is better."""
    def start(text: str) -> str:
        head = " ".join(text.split()[:words])
        return head + ("..." if len(text.split()) > words else "")

    return ("<principles>A better response is helpful, honest and harmless, and answers what was asked."
            "</principles>\n"
            f"<critique>Response A says \"{start(response_a)}\". Response B says \"{start(response_b)}\"."
            f"</critique>\n<verdict>{letter}</verdict>")


def format_warmup(model, tokenizer, prefs: list[dict], args: PairPMGRPOConfig, out_dir: Path) -> tuple[Path, list]:
    """SFT (TRL's SFTTrainer, loss on the completion) on format_example targets for args.format_warmup_steps steps,
    the verdict letters drawn with a seeded coin, so the model learns the form and nothing about the labels. The
    warmed-up model is saved to out_dir (a LoRA run then merges its adapter into it). Returns out_dir and the
    loss per step. Meant for small single-process runs (a model that cannot write the format at all)."""
    import random

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from judges.base import prompt_text
    from pair_pm.prepare_data import REASONING_QUESTION, fit_pair, pair_messages

    rng = random.Random(args.seed)
    rows: dict[str, list] = {"prompt": [], "completion": []}
    for pref in prefs:
        if pref.get("tie"):
            continue
        chosen, rejected = pref["chosen"][-1]["content"], pref["rejected"][-1]["content"]
        for a, b in ((chosen, rejected), (rejected, chosen)):
            _, cut = fit_pair(tokenizer, prompt_text(pref["prompt"]), a, b, args.max_prompt_length,
                              question=REASONING_QUESTION, reserve=0)
            rows["prompt"].append(pair_messages(*cut, question=REASONING_QUESTION))
            rows["completion"].append([{"role": "assistant", "content": format_example(a, b, rng.choice("AB"))}])
    sft_args = SFTConfig(output_dir=str(out_dir), max_steps=args.format_warmup_steps,
                         per_device_train_batch_size=args.per_device_train_batch_size,
                         learning_rate=args.format_warmup_learning_rate, lr_scheduler_type="constant",
                         max_length=args.max_prompt_length + args.max_completion_length, completion_only_loss=True,
                         logging_steps=1, save_strategy="no", report_to="none", use_cpu=args.use_cpu, bf16=args.bf16,
                         activation_checkpointing=args.activation_checkpointing, seed=args.seed,
                         disable_tqdm=args.disable_tqdm)
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=Dataset.from_dict(rows),
                         processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(out_dir))
    return out_dir, [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e]


# -- grouping ------------------------------------------------------------------------------------------------


class PairRepeatSampler(Sampler):
    """TRL's RepeatSampler over pairs instead of rows (row 2k: forward order, 2k+1: backward).

    Pairs are shuffled (seeded), cut into chunks of `pairs_per_batch` (an incomplete last chunk is dropped), and
    each chunk is yielded `repeat_count` times (TRL reuses one generation batch for steps_per_generation x
    num_iterations steps). Per pair, grouping "pair" yields 2k (G/2 times) then 2k+1 (G/2 times): one GRPO group
    of G completions holding both orders. Grouping "order" yields 2k (G times) then 2k+1 (G times): two
    adjacent groups."""

    def __init__(self, num_pairs: int, num_generations: int, pairs_per_batch: int, repeat_count: int = 1,
                 shuffle: bool = True, seed: int | None = None, grouping: str = "pair"):
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
        if grouping == "pair" and num_generations % 2:
            raise ValueError("grouping 'pair' needs an even num_generations")
        if pairs_per_batch < 1:
            raise ValueError("the generation batch holds no whole pair: raise the batch size or lower num_generations")
        self.num_pairs, self.num_generations, self.pairs_per_batch = num_pairs, num_generations, pairs_per_batch
        self.repeat_count, self.shuffle, self.grouping = repeat_count, shuffle, grouping
        if shuffle:
            self.generator = torch.Generator()
            if seed is not None:
                self.generator.manual_seed(seed)

    def _pair_indices(self, k: int) -> list[int]:
        each = self.num_generations // 2 if self.grouping == "pair" else self.num_generations
        return [2 * k] * each + [2 * k + 1] * each

    def __iter__(self):
        pairs = (torch.randperm(self.num_pairs, generator=self.generator).tolist() if self.shuffle
                 else list(range(self.num_pairs)))
        chunks = [pairs[i:i + self.pairs_per_batch] for i in range(0, len(pairs), self.pairs_per_batch)]
        for chunk in (c for c in chunks if len(c) == self.pairs_per_batch):
            for _ in range(self.repeat_count):
                for k in chunk:
                    yield from self._pair_indices(k)

    def __len__(self) -> int:
        per_pair = self.num_generations * (1 if self.grouping == "pair" else 2)
        return (self.num_pairs // self.pairs_per_batch) * self.pairs_per_batch * per_pair * self.repeat_count


class PairPMGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose sampler keeps both orders of a pair together (PairRepeatSampler); the rest is TRL's."""

    def _get_train_sampler(self, dataset=None) -> Sampler:
        dataset = dataset if dataset is not None else self.train_dataset
        num_pairs = check_pair_layout(dataset)
        grouping = getattr(self.args, "pair_grouping", "pair")
        slots = self.num_generations * (1 if grouping == "pair" else 2)  # completions per pair
        return PairRepeatSampler(num_pairs, self.num_generations, self.args.generation_batch_size // slots,
                                 repeat_count=self.num_iterations * self.args.steps_per_generation,
                                 shuffle=self.shuffle_dataset, seed=self.args.seed, grouping=grouping)

    def get_train_dataloader(self):
        from datasets import IterableDataset

        if isinstance(self.train_dataset, IterableDataset):
            raise ValueError("the pair-PM GRPO trainer needs a map-style dataset (it samples whole pairs)")
        return super().get_train_dataloader()


# -- evaluation ----------------------------------------------------------------------------------------------


def evaluate_reasoning_judge(judge, prefs: list[dict]) -> dict:
    """Verdict accuracy of a ReasoningPairPMJudge on preference pairs: both orders combined (P(chosen) > 0.5;
    a position-following pair is 0.5, counted wrong; a failed pair wrong), each order alone, the order-flip
    rate among parsed pairs (judges.conflicts: the project's definitions), the malformed-output rate and the share
    of "A" verdicts."""
    from collections import Counter

    from judges.conflicts import OrderStats, one_order_accuracies

    items = [(p["prompt"], p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in prefs]
    before = Counter(judge.verdict_stats)
    verdicts = judge.judge_pairs(items)
    stats = Counter(judge.verdict_stats)
    stats.subtract(before)
    n, outputs = len(verdicts), 2 * len(verdicts)
    order, acc = OrderStats.of(verdicts), one_order_accuracies(verdicts)
    malformed = {k.split(": ", 1)[1]: c for k, c in stats.items() if k.startswith("malformed") and c}
    said = stats["verdict A"] + stats["verdict B"]
    return {"pairs": n,
            "accuracy": acc["both_orders"],
            "accuracy_chosen_as_a": acc["chosen_first"],  # one order's P is 1 or 0: > 0.5 is "== 1"
            "accuracy_chosen_as_b": acc["chosen_second"],
            "failed_pairs": n - order.pairs,
            "order_inconsistency_rate": order.inconsistency_rate,
            "malformed_rate": sum(malformed.values()) / outputs,
            "malformed_by_reason": malformed,
            "answer_a_rate": stats["verdict A"] / said if said else None}


def first_token_probs(model, tokenizer, prefs: list[dict], max_length: int, batch_size: int = 8) -> list[float]:
    """P("A") among the answer letters as the first token the reasoning judge would write, for both orders of each
    pair: not its verdict (it reasons first) but one forward per prompt, finite exactly when the model's outputs
    are: what the end-of-training check (rm_core.finite) reads."""
    from judges.base import prompt_text
    from pair_pm.judge import first_probs
    from pair_pm.prepare_data import REASONING_QUESTION, answer_token_ids, encode_pair

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # left pads are masked out
    seqs = [encode_pair(tokenizer, prompt_text(p["prompt"]), a, b, max_length, question=REASONING_QUESTION, reserve=0)
            for p in prefs for a, b in ((p["chosen"][-1]["content"], p["rejected"][-1]["content"]),
                                        (p["rejected"][-1]["content"], p["chosen"][-1]["content"]))]
    return first_probs(model, seqs, tokenizer.pad_token_id, answer_token_ids(tokenizer), batch_size)


def track_held_out(training_args, held: dict) -> None:
    """The held-out evaluation (outside the Trainer) to the config's report_to (its wandb/trackio entries,
    rm_core.tracking): into the training's wandb run when it is still open, else a run named <run>-held-out."""
    from rm_core.tracking import start_run, trainer_report_to

    backends = trainer_report_to(training_args.report_to)
    if not backends:
        return
    name = f"{training_args.run_name or Path(training_args.output_dir).name}-held-out"
    with start_run(backends, name=name, config={"output_dir": training_args.output_dir}) as tracker:
        tracker.summary({"held_out": held})


def reward_curve(log_history: list[dict], name: str = "pair_pm_verdict") -> list[dict]:
    """Per logged step: the mean reward, the verdict accuracy and the malformed rate of the sampled completions."""
    keys = {"reward": "reward", "accuracy": f"{name}/verdict", "malformed_rate": f"{name}/malformed_rate",
            "answer_a_rate": f"{name}/answer_a_rate", "completion_length": "completions/mean_length"}
    return [{"step": e["step"], **{k: e[v] for k, v in keys.items() if v in e}}
            for e in log_history if "reward" in e]


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, PairPMGRPOConfig, ModelConfig))


def main(data_args: DataArguments, training_args: PairPMGRPOConfig, model_args) -> dict:
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, set_seed
    from trl.import_utils import is_vllm_available

    from pair_pm.grpo_rewards import make_verdict_reward_func, verdict_reward
    from pair_pm.judge import ReasoningPairPMJudge
    from pair_pm.prepare_data import REASONING_TEMPLATE_NAME
    from rm_core.hub import CardEval, CardInfo, held_out_split, publish, trainer_tags
    from rm_core.models import load_causal_lm
    from rm_core.pipeline import finalise_checkpoint, held_out_line, load_preference_splits, peft_and_push, run_training

    state = PartialState()
    set_seed(training_args.seed)
    if training_args.use_vllm and not is_vllm_available():
        if state.is_main_process:
            print("[vllm] use_vllm is set but vLLM is not installed: generating with transformers", flush=True)
        training_args.use_vllm = False
    model, tokenizer, base_path = load_causal_lm(model_args, training_args.chat_template)

    train, test, data_report = load_preference_splits(data_args)
    train_ds, truncation, ties = build_grpo_dataset(train, tokenizer, training_args.max_prompt_length)
    data_report.update(train_truncation=str(truncation), ties_skipped=ties)
    if state.is_main_process:
        print(f"[data] {len(train)} train pairs -> {len(train_ds)} prompts (both orders); {truncation}; "
              f"{len(test)} held-out pairs", flush=True)
        print(held_out_line(data_report), flush=True)

    warmup_log = None
    if training_args.format_warmup_steps:
        warm_dir, warmup_log = format_warmup(model, tokenizer, train, training_args,
                                             Path(training_args.output_dir) / "format-warmup")
        base_path = str(warm_dir)  # a LoRA adapter is merged into the warmed-up model, not the original base
        if state.is_main_process:
            print(f"[warm-up] {training_args.format_warmup_steps} format-only SFT steps -> {warm_dir}", flush=True)

    reward = verdict_reward(training_args.malformed_penalty, training_args.reasoning_min_words,
                            training_args.reasoning_max_words, training_args.length_weight,
                            training_args.structure_weight)
    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "CAUSAL_LM")
    trainer = PairPMGRPOTrainer(model=model, reward_funcs=[make_verdict_reward_func(reward)], args=training_args,
                                train_dataset=train_ds, processing_class=tokenizer, peft_config=peft_config)
    max_new = training_args.judge_max_new_tokens or training_args.max_completion_length
    fields = {"pair_pm_reasoning": True, "pair_pm_template": REASONING_TEMPLATE_NAME,
              "pair_pm_max_length": training_args.max_prompt_length, "pair_pm_max_new_tokens": max_new,
              "base_model": model_args.model_name_or_path}
    train_result, out_dir = run_training(trainer, training_args, "pair_pm", fields)

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report, "reward_curve": reward_curve(trainer.state.log_history),
               "format_warmup": {"steps": training_args.format_warmup_steps, "log": warmup_log}}
    if state.is_main_process:
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        auto_class=AutoModelForCausalLM)
        from rm_core.finite import CHECK_EXAMPLES, check_final_rewards

        checked = test or train[:CHECK_EXAMPLES]  # the first training pairs when there is no held-out set
        check_final_rewards(first_token_probs(model_out, tokenizer, checked, training_args.max_prompt_length),
                            f"the final model's first-token P(A) over the {len(checked)} "
                            f"{'held-out' if test else 'first training'} pairs in both orders", out_dir)
        if test:
            judge = ReasoningPairPMJudge(model_out, tokenizer, training_args.max_prompt_length,
                                         max_new_tokens=max_new)
            from rm_core.progress import quiet_while

            with quiet_while(training_args.disable_tqdm):  # the Trainer's bars and this one: one switch
                held = evaluate_reasoning_judge(judge, test)
            results["held_out"] = held
            track_held_out(training_args, held)
            print(f"[eval] held-out verdict accuracy {held['accuracy']:.4f} (chosen as A "
                  f"{held['accuracy_chosen_as_a']:.4f}, as B {held['accuracy_chosen_as_b']:.4f}); malformed "
                  f"outputs {held['malformed_rate']:.4f}; {held['pairs']} pairs", flush=True)
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "train pairs": len(train), "prompts (both orders)": len(train_ds),
                    "num_generations": training_args.num_generations, "pair grouping": training_args.pair_grouping,
                    "max_prompt_length": training_args.max_prompt_length,
                    "max_completion_length": training_args.max_completion_length,
                    "max_steps": training_args.max_steps, "learning rate": training_args.learning_rate,
                    "LoRA": bool(peft_config), "malformed penalty": training_args.malformed_penalty,
                    "held-out set": f"{len(test)} pairs: {data_report['held_out']['description']}"}
        metrics = {f"held-out {k}": v for k, v in results.get("held_out", {}).items() if isinstance(v, (int, float))}
        publish(out_dir, model_out, tokenizer, rm_family="pair_pm", family_fields=fields, eval_results=results,
                card=CardInfo(base_model=model_args.model_name_or_path, datasets=[data_args.dataset_name],
                              training=training, metrics=metrics, tags=trainer_tags(trainer),
                              evals=[CardEval(data_args.dataset_name, held_out_split(data_report["held_out"]),
                                              {"held-out verdict accuracy": results["held_out"]["accuracy"]})
                                     ] if test else []),
                push=push, hub_model_id=hub_model_id, private=training_args.hub_private_repo,
                ignore=("format-warmup/*",))
    state.wait_for_everyone()
    return results


def cli() -> None:  # `python pair_pm/train_grpo.py`, `python -m pair_pm.train_grpo`, `rm-train-pair-pm-grpo`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
