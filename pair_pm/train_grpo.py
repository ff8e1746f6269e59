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
missing or malformed one, optional reasoning length band and structure terms), and here the order-consistency
term (`make_order_consistent_reward_func`): a right verdict is paid less when the completions of the same pair in
the swapped order pick the other response, so a judge that answers by position stops earning half the reward
for free.
Grouping (`pair_grouping`): "pair" (default) puts both orders of a pair in ONE GRPO group (num_generations / 2
completions of each), so the group baseline is the mean over both orders and a policy that answers by
position gets zero net advantage on either letter; "order": TRL's per-prompt groups, the two orders' groups
in the same generation batch (for vLLM server mode, which generates num_generations per distinct prompt).
Held-out evaluation: after training on the final model, and with eval_strategy steps (eval_steps, eval_on_start)
at each evaluation step on the training model (`PairPMGRPOTrainer.evaluate`): strict both-order accuracy, order-
flip rate, each order's accuracy, malformed rate, logged as eval_* and collected in eval_results.json's
held_out_curve.
See pair_pm/README.md. The checkpoint is a `pair_pm` checkpoint with `pair_pm_reasoning: true`: judges.load
returns pair_pm.judge.ReasoningPairPMJudge and eval_reward_bench scores it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
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
    each a conversational `prompt` cut to max_prompt_length tokens, with the columns the reward function reads
    (`label`, `pair_id`: the pair's id, made unique with #<index> where the data repeats one, and `order`); ties are
    skipped (no label). Returns the datasets.Dataset, the TruncationReport and the number of ties skipped."""
    from datasets import Dataset

    from judges.base import pair_texts, prompt_text
    from pair_pm.prepare_data import REASONING_QUESTION, TruncationReport, fit_pair, pair_messages, same_once_cut

    report, ties, seen = TruncationReport(), 0, set()
    rows: dict[str, list] = {"prompt": [], "label": [], "pair_id": [], "order": []}
    for k, pref in enumerate(prefs):
        if pref.get("tie"):
            ties += 1
            continue
        pair_id = str(pref.get("id") or k)
        pair_id = f"{pair_id}#{k}" if pair_id in seen else pair_id  # the consistency reward groups by it
        seen.add(pair_id)
        context = prompt_text(pref["prompt"])
        chosen, rejected = pair_texts(pref)
        orders = [(fit_pair(tokenizer, context, a, b, max_prompt_length, report, REASONING_QUESTION, reserve=0)[1],
                   label, order)
                  for a, b, label, order in ((chosen, rejected, "A", "forward"), (rejected, chosen, "B", "backward"))]
        if any(same_once_cut(cut) for cut, _, _ in orders):  # the two responses the same once cut: dropped
            report.identical_after_cut += 1
            continue
        for cut, label, order in orders:
            rows["prompt"].append(pair_messages(*cut, question=REASONING_QUESTION))
            rows["label"].append(label)
            rows["pair_id"].append(pair_id)
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


def format_example(response_a: str, response_b: str, letter: str, words: int = 4) -> str:
    """A format-only target for the warm-up: generic principles, a critique quoting the first `words` words of each
    response, and `letter` as the verdict. Nothing in it depends on which response is better. It must end (verdict
    included) inside max_completion_length, or the warmed model learns an output that generation cuts before its
    verdict (fitted_words shortens the quotes). The principles keep this wording: with a shorter line ("Helpful,
    honest, harmless, and on the question.") the tiny policy of tests/test_family_learning.py stopped learning (its
    reward rose +0.01 to +0.06 in three runs, against +0.45 to +0.49 with this one); why is not known."""
    def start(text: str) -> str:
        head = " ".join(text.split()[:words])
        return head.rstrip(".,;:!?") + "..." if len(text.split()) > words else head

    quotes = f"Response A says \"{start(response_a)}\". Response B says \"{start(response_b)}\"." if words else \
        "Responses A and B differ."
    return ("<principles>A better response is helpful, honest and harmless, and answers what was asked.</principles>\n"
            f"<critique>{quotes}</critique>\n<verdict>{letter}</verdict>")


def format_warmup_rows(tokenizer, prefs: list[dict], args: PairPMGRPOConfig) -> dict[str, list]:
    """The warm-up's SFT rows: per pair (shuffled, seeded) and order, the same format_example target twice, with
    verdict A and then verdict B, adjacent. Trained in this order in batches of an even size (format_warmup), each
    batch holds both letters of every prompt it holds, so the letter's loss gradients cancel at P(A) = P(B): the
    warm-up pulls no prompt toward a letter and GRPO samples both verdicts (SmolLM2-135M after 6 steps: 62-86% "A"
    in its first sampled batches). A seeded coin per row, the first design, left it writing "A" in 99% of sampled
    verdicts at temperature 1.0, so GRPO had nothing to compare (bench/RESULTS.md)."""
    import random

    from judges.base import pair_texts, prompt_text
    from pair_pm.prepare_data import REASONING_QUESTION, fit_pair, pair_messages

    order = [p for p in prefs if not p.get("tie")]
    random.Random(args.seed).shuffle(order)
    rows: dict[str, list] = {"prompt": [], "completion": []}
    for pref in order:
        chosen, rejected = pair_texts(pref)
        for a, b in ((chosen, rejected), (rejected, chosen)):
            _, cut = fit_pair(tokenizer, prompt_text(pref["prompt"]), a, b, args.max_prompt_length,
                              question=REASONING_QUESTION, reserve=0)
            words = fitted_words(tokenizer, a, b, args.max_completion_length)
            for letter in "AB":
                rows["prompt"].append(pair_messages(*cut, question=REASONING_QUESTION))
                rows["completion"].append([{"role": "assistant", "content": format_example(a, b, letter, words)}])
    return rows


def fitted_words(tokenizer, response_a: str, response_b: str, budget: int) -> int:
    """The most words (4, 2, 0) format_example can quote of each response and still fit in `budget` tokens with the
    end-of-turn token and a margin of 2; a ValueError when even the bare form does not fit."""
    for words in (4, 2, 0):
        text = format_example(response_a, response_b, "A", words=words)
        if len(tokenizer(text, add_special_tokens=False).input_ids) + 3 <= budget:
            return words
    need = len(tokenizer(text, add_special_tokens=False).input_ids) + 3
    raise ValueError(f"the format warm-up's shortest target needs {need} tokens, over max_completion_length "
                     f"{budget}: the model would learn an output cut before its verdict; raise max_completion_length")


def format_warmup(model, tokenizer, prefs: list[dict], args: PairPMGRPOConfig, out_dir: Path) -> tuple[Path, list]:
    """SFT (TRL's SFTTrainer, loss on the completion) on format_warmup_rows for args.format_warmup_steps steps, in
    the rows' order (no shuffle) and in batches of an even size (per_device_train_batch_size, plus one when odd), so
    every batch holds both verdict letters of each of its prompts: the model learns the form and nothing about the
    labels or a letter. The warmed-up model is saved to out_dir (a LoRA run then merges its adapter into it).
    Returns out_dir and the loss per step. Meant for small single-process runs (a model that cannot write the format
    at all)."""
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer

    class InOrder(SFTTrainer):  # Trainer shuffles by default, which would part a prompt's two letters
        def _get_train_sampler(self, dataset=None) -> Sampler:
            return SequentialSampler(dataset if dataset is not None else self.train_dataset)

    batch = args.per_device_train_batch_size + args.per_device_train_batch_size % 2
    sft_args = SFTConfig(output_dir=str(out_dir), max_steps=args.format_warmup_steps,
                         per_device_train_batch_size=batch,
                         learning_rate=args.format_warmup_learning_rate, lr_scheduler_type="constant",
                         max_length=args.max_prompt_length + args.max_completion_length, completion_only_loss=True,
                         logging_steps=1, save_strategy="no", report_to="none", use_cpu=args.use_cpu, bf16=args.bf16,
                         activation_checkpointing=args.activation_checkpointing, seed=args.seed,
                         disable_tqdm=args.disable_tqdm)
    trainer = InOrder(model=model, args=sft_args, train_dataset=Dataset.from_dict(format_warmup_rows(tokenizer, prefs,
                                                                                                     args)),
                      processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(out_dir))
    return out_dir, [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e]


# -- the order-consistency reward ----------------------------------------------------------------------------


def order_agreement(verdicts: Sequence[str | None], labels: Sequence, pair_ids: Sequence,
                    orders: Sequence) -> list[float | None]:
    """a_i for each completion i: among the completions of the same pair (pair id) in the OTHER order whose verdict
    parses, the share that pick the same response as i. Two completions pick the same response when both are right
    in their own order (verdict == label: both pick the chosen response) or both are wrong (both pick the rejected
    one); so a completion that says "B" while the swapped order also says "B" disagrees with it. None when i has no
    parsed verdict or no A/B label, or when no completion of the other order parses (no evidence)."""
    picks: dict = defaultdict(lambda: defaultdict(list))  # pair id -> order -> [picks the chosen response]
    for v, y, pair, order in zip(verdicts, labels, pair_ids, orders, strict=True):
        if v is not None and y in ("A", "B"):
            picks[pair][order].append(v == y)
    out: list[float | None] = []
    for v, y, pair, order in zip(verdicts, labels, pair_ids, orders, strict=True):
        others = [x for o, xs in picks[pair].items() if o != order for x in xs] if v is not None and y in ("A", "B") \
            else []
        out.append(sum(x == (v == y) for x in others) / len(others) if others else None)
    return out


def make_order_consistent_reward_func(reward, consistency_weight: float = 0.5, name: str = "pair_pm_verdict",
                                      label_column: str = "label", pair_column: str = "pair_id",
                                      order_column: str = "order") -> Callable[..., list[float | None]]:
    """The pair-PM GRPO reward function: grpo_rewards.make_verdict_reward_func(reward) (verdict, format, length,
    structure terms; the same logs) with the order-consistency term. Per completion i, with w = consistency_weight:

        r_i = c_i x (1 - w x (1 - a_i)) + format_i + length_i + structure_i

    c_i = 1 when i's verdict equals the label of its own order, else 0 (the verdict term of verdict_reward);
    a_i = order_agreement: the share of the same pair's parsed completions in the swapped order that pick the same
    response as i. Over a pair whose completions all parse: a judge right in both orders earns 1 (the maximum), one
    wrong in both orders 0 (the minimum), a judge that answers by position (the same letter in both orders) 1 - w in
    the order where that letter is right and 0 in the other, (1 - w) / 2 on average instead of 1/2; a right verdict
    that flips with the order earns 1 - w (nothing at w = 1). A wrong verdict is 0 whatever the other order says, and
    a malformed one keeps its format penalty and does not count in anyone's a_i; with no parsed completion in the
    swapped order (or no completion of it in this call) a_i is unknown and the verdict term is c_i, as with w = 0.

    The trainer calls it on one process's generation batch, with the dataset's columns as keyword lists: both
    orders of a pair must be in that batch (PairPMGRPOTrainer's sampler, checked by PairPMGRPOConfig). Logs beside
    make_verdict_reward_func's: <name>/order_agreement (mean a_i where known; 0 for an always-"B" policy, 1 for a
    consistent one), <name>/consistency (the mean term, <= 0) and <name>/agreement_coverage (the share of parsed
    completions whose a_i is known)."""
    from pair_pm.grpo_rewards import completion_text, make_verdict_reward_func, parse_reasoning_verdict

    if not 0.0 <= consistency_weight <= 1.0:
        raise ValueError(f"consistency_weight is in [0, 1], got {consistency_weight}")
    inner = make_verdict_reward_func(reward, name=name, label_column=label_column)
    if not consistency_weight:
        return inner

    def reward_func(prompts: list, completions: list, **kwargs) -> list[float | None]:
        scores = inner(prompts, completions, **kwargs)
        missing = [c for c in (label_column, pair_column, order_column) if c not in kwargs]
        if missing:
            raise ValueError(f"the order-consistency reward needs the dataset columns {missing} "
                             f"(train_grpo.build_grpo_dataset writes them)")
        verdicts = [parse_reasoning_verdict(completion_text(c)).verdict for c in completions]
        labels = kwargs[label_column]
        agree = order_agreement(verdicts, labels, kwargs[pair_column], kwargs[order_column])
        terms = [None if s is None else -consistency_weight * (1.0 - a) if a is not None and v == y else 0.0
                 for s, v, y, a in zip(scores, verdicts, labels, agree, strict=True)]
        out = [s if t is None else s + t for s, t in zip(scores, terms)]
        log = kwargs.get("log_metric")
        if log is not None and scores:
            known = [a for a in agree if a is not None]
            parsed = sum(v is not None for v in verdicts)
            if known:
                log(f"{name}/order_agreement", sum(known) / len(known))
            scored = [t for t in terms if t is not None]
            if scored:
                log(f"{name}/consistency", sum(scored) / len(scored))
            if parsed:
                log(f"{name}/agreement_coverage", len(known) / parsed)
        return out

    reward_func.__name__ = reward_func.__qualname__ = name
    return reward_func


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
    """GRPOTrainer whose sampler keeps both orders of a pair together (PairRepeatSampler), and whose evaluation
    (eval_strategy / eval_steps / eval_on_start) judges `held_out` preference pairs with the model being trained
    (greedy, both orders: `judge_held_out`) and logs strict both-order accuracy and order-flip rate as eval_*; the
    rest is TRL's. Without held_out pairs, evaluation is TRL's (sampled rewards on eval_dataset)."""

    def __init__(self, *args, held_out: list[dict] | None = None, **kwargs):
        self.held_out = list(held_out) if held_out else None
        super().__init__(*args, **kwargs)

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

    def judge_held_out(self) -> dict:
        """evaluate_reasoning_judge on the held_out pairs with the model as it is now (the judge's prompt budget and
        max new tokens of the saved checkpoint); the model's train/eval mode is the caller's to restore."""
        from pair_pm.judge import ReasoningPairPMJudge
        from rm_core.progress import quiet_while

        judge = ReasoningPairPMJudge(self.accelerator.unwrap_model(self.model), self.processing_class,
                                     self.args.max_prompt_length,
                                     max_new_tokens=self.args.judge_max_new_tokens or self.args.max_completion_length)
        with quiet_while(self.args.disable_tqdm):
            return evaluate_reasoning_judge(judge, self.held_out)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        if not self.held_out:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        metrics: dict = {}
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        try:
            if self.accelerator.num_processes == 1:
                held = self.judge_held_out()  # puts the model in eval mode: GRPOTrainer.log then logs as eval
                metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in held.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for k, ci in held["ci95"].items():  # scalars for the trackers: <figure>_ci95_low / _high
                    if ci is not None:
                        metrics[f"{metric_key_prefix}_{k}_ci95_low"], metrics[f"{metric_key_prefix}_{k}_ci95_high"] = ci
                self.log(dict(metrics))
            elif not getattr(self, "_held_out_skip_said", False):
                self._held_out_skip_said = True
                if self.accelerator.is_main_process:
                    print("[eval] the in-training held-out evaluation runs in single-process runs only; this run "
                          "judges the held-out pairs after training", flush=True)
        finally:
            model.train(was_training)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# -- evaluation ----------------------------------------------------------------------------------------------


def both_order_metrics(verdicts: Sequence) -> dict:
    """Over pairs judged in both orders (judges.base.PairVerdict, a = the chosen response):
    strict_accuracy = the share of ALL pairs right in both orders (p_forward > 0.5 and p_backward > 0.5; a failed
    order or a tie counts wrong); order_flip_rate = the share of decided pairs (both orders gave a verdict) whose
    winner changes with the order (judges.conflicts.order_report, the project's one definition; None when no pair
    was decided); ci95: their 95% bootstrap intervals over the pairs (rm_core.stats; None where the rate is). For a
    reasoning judge (P 1 or 0 per order) strict_accuracy equals the both-orders accuracy; for the SFT pair-PM's
    probabilities it is stricter than the order-debiased accuracy."""
    from judges.conflicts import order_report
    from rm_core.stats import bootstrap_ci

    if not verdicts:
        raise ValueError("no pairs to score")
    right = [float(v.p_forward is not None and v.p_backward is not None and v.p_forward > 0.5 and v.p_backward > 0.5)
             for v in verdicts]
    order = order_report(verdicts)
    flips_ci = order["ci95"]["order_flip_rate"]
    return {"strict_accuracy": sum(right) / len(right), "order_flip_rate": order["order_flip_rate"],
            "ci95": {"strict_accuracy": list(bootstrap_ci(right, proportion=True)), "order_flip_rate": flips_ci}}


def evaluate_reasoning_judge(judge, prefs: list[dict]) -> dict:
    """Verdict accuracy of a ReasoningPairPMJudge on preference pairs: both orders combined (P(chosen) > 0.5;
    a position-following pair is 0.5, counted wrong; a failed pair wrong), which for a verdict of 1 or 0 per order
    is the strict both-order accuracy (`strict_accuracy`, both_order_metrics), each order alone, the order-flip
    rate among parsed pairs (`order_flip_rate` = `order_inconsistency_rate`, judges.conflicts: the project's
    definitions), the malformed-output rate and the share of "A" verdicts."""
    from collections import Counter

    from judges.base import pair_texts
    from judges.conflicts import OrderStats, one_order_accuracies

    items = [(p["prompt"], *pair_texts(p)) for p in prefs]
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
            **both_order_metrics(verdicts),
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
    from judges.base import pair_texts, prompt_text
    from pair_pm.judge import first_probs
    from pair_pm.prepare_data import REASONING_QUESTION, answer_token_ids, encode_pair

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # left pads are masked out
    seqs = [encode_pair(tokenizer, prompt_text(p["prompt"]), a, b, max_length, question=REASONING_QUESTION, reserve=0)
            for p in prefs for a, b in (pair_texts(p), pair_texts(p)[::-1])]
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
    """Per logged step: the mean reward, the verdict accuracy, the malformed rate, the share of "A" verdicts and the
    cross-order agreement (make_order_consistent_reward_func) of the sampled completions."""
    keys = {"reward": "reward", "accuracy": f"{name}/verdict", "malformed_rate": f"{name}/malformed_rate",
            "answer_a_rate": f"{name}/answer_a_rate", "order_agreement": f"{name}/order_agreement",
            "consistency": f"{name}/consistency", "completion_length": "completions/mean_length"}
    return [{"step": e["step"], **{k: e[v] for k, v in keys.items() if v in e}}
            for e in log_history if "reward" in e]


HELD_OUT_CURVE_KEYS = ("strict_accuracy", "order_flip_rate", "accuracy_chosen_as_a", "accuracy_chosen_as_b",
                       "malformed_rate", "answer_a_rate", "failed_pairs", "pairs")


def held_out_curve(log_history: list[dict], prefix: str = "eval_") -> list[dict]:
    """Per in-training evaluation (PairPMGRPOTrainer.evaluate): the step, HELD_OUT_CURVE_KEYS (None where the
    evaluation had no value, e.g. no flip rate when no pair parsed in both orders) and ci95 {strict_accuracy,
    order_flip_rate: [low, high] or None}."""
    def ci(e: dict, k: str) -> list | None:
        low, high = e.get(f"{prefix}{k}_ci95_low"), e.get(f"{prefix}{k}_ci95_high")
        return None if low is None or high is None else [low, high]

    return [{"step": e["step"], **{k: e.get(prefix + k) for k in HELD_OUT_CURVE_KEYS},
             "ci95": {k: ci(e, k) for k in ("strict_accuracy", "order_flip_rate")}}
            for e in log_history if prefix + "strict_accuracy" in e]


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((DataArguments, PairPMGRPOConfig, ModelConfig))


def main(data_args: DataArguments, training_args: PairPMGRPOConfig, model_args) -> dict:
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, set_seed
    from trl.import_utils import is_vllm_available

    from pair_pm.grpo_rewards import verdict_reward
    from pair_pm.judge import ReasoningPairPMJudge
    from pair_pm.prepare_data import REASONING_TEMPLATE_NAME
    from rm_core.hub import CardInfo, held_out_evals, publish, trainer_tags
    from rm_core.models import load_causal_lm
    from rm_core.pipeline import (
        finalise_checkpoint,
        held_out_line,
        load_preference_splits,
        peft_and_push,
        run_training,
        training_inputs,
    )

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
    weight = training_args.consistency_weight if training_args.order_consistency else 0.0
    reward_func = make_order_consistent_reward_func(reward, weight)
    held_out, eval_ds = None, None
    if training_args.eval_strategy != "no":  # the held-out pairs judged at each evaluation step, during training
        if not test:
            raise ValueError("eval_strategy evaluates on the held-out split during training: give one "
                             "(dataset_test_split) or set eval_strategy no")
        held_out = test[: training_args.held_out_eval_pairs] if training_args.held_out_eval_pairs else test
        eval_ds = build_grpo_dataset(held_out, tokenizer, training_args.max_prompt_length)[0]  # the Trainer wants one
    peft_config, push, hub_model_id = peft_and_push(model_args, training_args, "CAUSAL_LM")
    trainer = PairPMGRPOTrainer(model=model, reward_funcs=[reward_func], args=training_args,
                                train_dataset=train_ds, eval_dataset=eval_ds, held_out=held_out,
                                processing_class=tokenizer, peft_config=peft_config)
    max_new = training_args.judge_max_new_tokens or training_args.max_completion_length
    fields = {"pair_pm_reasoning": True, "pair_pm_template": REASONING_TEMPLATE_NAME,
              "pair_pm_max_length": training_args.max_prompt_length, "pair_pm_max_new_tokens": max_new,
              "base_model": model_args.model_name_or_path}
    train_result, out_dir = run_training(trainer, training_args, "pair_pm", fields, training_inputs(model_args, train_ds))

    results = {"train": {k: v for k, v in train_result.metrics.items() if isinstance(v, (int, float))},
               "data": data_report, "reward_curve": reward_curve(trainer.state.log_history),
               "held_out_curve": held_out_curve(trainer.state.log_history),
               "order_consistency": {"weight": weight, "held_out_eval_pairs": len(held_out or [])},
               "format_warmup": {"steps": training_args.format_warmup_steps, "log": warmup_log}}
    if state.is_main_process:
        model_out = finalise_checkpoint(out_dir, base_path, tokenizer, peft_config is not None,
                                        auto_class=AutoModelForCausalLM, revision=model_args.model_revision)
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
            flips = held["order_flip_rate"]
            print(f"[eval] held-out strict both-order accuracy {held['strict_accuracy']:.4f} (chosen as A "
                  f"{held['accuracy_chosen_as_a']:.4f}, as B {held['accuracy_chosen_as_b']:.4f}); order flips "
                  f"{'-' if flips is None else f'{flips:.4f}'}; malformed outputs {held['malformed_rate']:.4f}; "
                  f"{held['pairs']} pairs", flush=True)
        training = {"base model": model_args.model_name_or_path, "data": data_args.dataset_name,
                    "train pairs": len(train), "prompts (both orders)": len(train_ds),
                    "num_generations": training_args.num_generations, "pair grouping": training_args.pair_grouping,
                    "max_prompt_length": training_args.max_prompt_length,
                    "max_completion_length": training_args.max_completion_length,
                    "max_steps": training_args.max_steps, "learning rate": training_args.learning_rate,
                    "LoRA": bool(peft_config), "malformed penalty": training_args.malformed_penalty,
                    "order-consistency weight": weight,
                    "held-out set": f"{len(test)} pairs: {data_report['held_out']['description']}"}
        metrics = {f"held-out {k}": v for k, v in results.get("held_out", {}).items() if isinstance(v, (int, float))}
        publish(out_dir, model_out, tokenizer, rm_family="pair_pm", family_fields=fields, eval_results=results,
                card=CardInfo(base_model=model_args.model_name_or_path, datasets=[data_args.dataset_name],
                              training=training, metrics=metrics, tags=trainer_tags(trainer),
                              evals=held_out_evals(data_args.dataset_name, data_report["held_out"], {
                                  "held-out verdict accuracy": results.get("held_out", {}).get("accuracy")})),
                push=push, hub_model_id=hub_model_id, private=training_args.hub_private_repo,
                ignore=("format-warmup/*",))
    state.wait_for_everyone()
    return results


def cli() -> None:  # `python pair_pm/train_grpo.py`, `python -m pair_pm.train_grpo`, `rm-train-pair-pm-grpo`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
