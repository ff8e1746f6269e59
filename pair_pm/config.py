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
        "help": "Before RL, this many SFT steps on the output FORMAT alone (verdicts drawn at random, independent of "
                "the label), for a base model that never writes the verdict tag (GRPO gets no signal from a group "
                "whose outputs are all malformed). 0: none."})
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
