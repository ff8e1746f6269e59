"""The pair-PM recipes' arguments: TRL's configs plus only the new fields (each with its help).

    PairPMConfig       train.py and ssrm.py: SFT on the answer token
    PairPMGRPOConfig   train_grpo.py: the reasoning pair-PM trained with GRPO

The data arguments are rm_core.args.DataArguments; the model's, TRL's ModelConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, SFTConfig

from rm_core.args import ChatTemplateArguments, PrecisionArguments

GROUPINGS = ("pair", "order")


@dataclass
class PairPMConfig(PrecisionArguments, ChatTemplateArguments, SFTConfig):
    """TRL's SFTConfig plus the pair-PM options; loss on the answer token only."""

    max_length: int | None = field(default=1024, metadata={
        "help": "Pairs longer than this are cut inside the context and responses (never the answer), counted."})
    completion_only_loss: bool | None = field(default=True, metadata={"help": "Loss on the answer token only."})
    both_orders: bool = field(default=True, metadata={"help": "Write every pair as (chosen, rejected) and "
                                                               "(rejected, chosen)."})
    rrm_augment: bool = field(default=False, metadata={"help": "Add RRM causal augmentation to the train split."})
    rrm_seed: int = field(default=0, metadata={"help": "Seed of the RRM augmentation sample."})


@dataclass
class PairPMGRPOConfig(PrecisionArguments, ChatTemplateArguments, GRPOConfig):
    """TRL's GRPOConfig plus the reasoning pair-PM's prompt and reward options."""

    max_prompt_length: int = field(default=1024, metadata={
        "help": "Prompt budget in tokens: longer pairs are cut inside the context and responses (never the "
                "question), counted. Recorded in the checkpoint as the judge's prompt budget."})
    pair_grouping: str = field(default="pair", metadata={
        "help": "'pair': both orders of a pair in one GRPO group (num_generations/2 completions each); "
                "'order': one group per order, the pair's two groups in the same batch."})
    order_consistency: bool = field(default=True, metadata={"help": (
        "Reward agreement across a pair's two orders (train_grpo.make_order_consistent_reward_func): a right verdict "
        "earns 1 - consistency_weight x the share of the swapped order's parsed completions of the same pair that "
        "pick the other response. False: each order scored alone (1 right, 0 wrong).")})
    consistency_weight: float = field(default=0.5, metadata={
        "help": "w in [0, 1]: what a right verdict loses when every completion of the swapped order contradicts it "
                "(1: a verdict that flips with the order earns nothing; 0: off, as order_consistency false)."})
    held_out_eval_pairs: int | None = field(default=None, metadata={
        "help": "Held-out pairs judged (greedy, both orders) at each evaluation step DURING training (eval_strategy "
                "steps, eval_steps, eval_on_start): eval_strict_accuracy, eval_order_flip_rate, ... in the log and "
                "eval_results.json's held_out_curve. None: the whole held-out split (max_eval_pairs)."})
    malformed_penalty: float = field(default=1.0, metadata={
        "help": "Reward lost by an output with no verdict tag (half of it for a malformed verdict); a right verdict earns 1."})
    reasoning_min_words: int = field(default=0, metadata={"help": "Length band on the reasoning: lower end."})
    reasoning_max_words: int | None = field(default=None, metadata={"help": "Length band: upper end (None: none)."})
    length_weight: float = field(default=0.0, metadata={"help": "Weight of the length band (0: off)."})
    structure_weight: float = field(default=0.0, metadata={
        "help": "Weight of a reward for <principles>...</principles><critique>...</critique> before the verdict."})
    judge_max_new_tokens: int | None = field(default=None, metadata={
        "help": "Generation budget of the saved judge; default max_completion_length."})
    format_warmup_steps: int = field(default=0, metadata={
        "help": "Before RL, this many SFT steps on the output FORMAT alone (each prompt with verdict A and verdict B "
                "in the same batch: nothing about the label or a letter is learnt), for a base model that never "
                "writes the verdict tag (GRPO gets no signal from a group whose outputs are all malformed). 0: none."})
    format_warmup_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the warm-up."})

    def __post_init__(self):
        if self.pair_grouping not in GROUPINGS:
            raise ValueError(f"pair_grouping must be one of {GROUPINGS}, got {self.pair_grouping!r}")
        super().__post_init__()  # PrecisionArguments (bf16 default), then GRPOConfig's checks
        if self.pair_grouping == "pair":
            if self.num_generations % 2:
                raise ValueError(f"pair_grouping 'pair' needs an even num_generations (half for each order), "
                                 f"got {self.num_generations}")
            if self.use_vllm and self.vllm_mode == "server":
                raise ValueError("vLLM server mode generates num_generations completions per distinct prompt, so "
                                 "a group cannot hold both orders: use vllm_mode colocate or pair_grouping order")
        elif self.generation_batch_size % (2 * self.num_generations):
            raise ValueError(f"pair_grouping 'order' needs generation_batch_size ({self.generation_batch_size}) "
                             f"divisible by 2 x num_generations, so both orders of a pair share a batch")
        if not 0.0 <= self.consistency_weight <= 1.0:
            raise ValueError(f"consistency_weight is in [0, 1], got {self.consistency_weight}")
        if self.held_out_eval_pairs is not None and self.held_out_eval_pairs < 1:
            raise ValueError(f"held_out_eval_pairs is a positive number of pairs or None, got {self.held_out_eval_pairs}")
        if self.order_consistency and self.consistency_weight:
            # The reward function sees one process's generation batch: every pair must lie whole in it
            slots = self.num_generations * (1 if self.pair_grouping == "pair" else 2)  # completions per pair
            local = self.generation_batch_size // max(1, self.world_size)
            if local % slots:
                raise ValueError(f"the order-consistency reward compares a pair's two orders within one process's "
                                 f"generation batch ({local} completions = per_device_train_batch_size x "
                                 f"steps_per_generation), which must hold whole pairs ({slots} completions each): "
                                 f"change the batch or set order_consistency false")
