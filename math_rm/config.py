"""The math reward models' arguments, each TRL's config (or rm_core's) plus only the new fields (each with its help).

    MathDataArguments   every math recipe: the Steps / Candidates source and the held-out questions (math_rm/data.py)
    MathRMConfig        train_prm.py, train_orm.py: TRL's SFTConfig, loss on the judgement tokens
    ScalarORMConfig     train_scalar_orm.py: the Bradley-Terry recipe's config (rm_core.args.RewardModelConfig)

The model's arguments are TRL's ModelConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from rm_core.args import ChatTemplateArguments, PrecisionArguments, RewardModelConfig
from rm_core.best_of_n import DEFAULT_CANDIDATES as GSM8K_SOLUTIONS  # in the shared data folder ($RM_SHARED_DATA)


@dataclass
class MathDataArguments:
    dataset_name: str = field(default=GSM8K_SOLUTIONS, metadata={
        "help": "Local file/folder or Hub id: GSM8K labelled solutions (fixed split applied), math_rm/"
                "sample_solutions.py output, Steps/Candidates rows, RLHFlow step chats or best-of-N sets, PRM800K."})
    dataset_format: str = field(default="auto", metadata={"help": "Row format (rm_core.data.detect_math_format)."})
    dataset_data_dir: str | None = field(default=None, metadata={"help": "data_dir for a Hub data set."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(default="test", metadata={
        "help": "Held-out split of Candidates for best-of-N (ignored for the GSM8K solutions: fixed split)."})
    eval_dataset_name: str | None = field(default=None, metadata={
        "help": "A separate Candidates source for the best-of-N evaluation (its test split)."})
    eval_fraction: float = field(default=0.1, metadata={
        "help": "Share of the questions held out for best-of-N when a Candidates-style source has no test split: "
                "a question is held out when sha1 of its text falls in this fraction (deterministic). 0: none."})
    max_train_questions: int | None = field(default=None, metadata={
        "help": "Use the first N training source rows (questions, for the GSM8K sources)."})
    max_eval_questions: int | None = field(default=None, metadata={"help": "Evaluate on the first N questions."})
    strict_rows: bool = field(default=False, metadata={"help": "Fail on the first malformed row."})


@dataclass
class MathRMConfig(PrecisionArguments, ChatTemplateArguments, SFTConfig):
    """TRL's SFTConfig plus the PRM/ORM options; loss on the judgement tokens only."""

    max_length: int | None = field(default=1024, metadata={
        "help": "Longer solutions are cut from the front (after BOS), keeping the last steps; cut slots lose "
                "their labels, counted."})
    step_tag: str | None = field(default=None, metadata={
        "help": "The slot token's text (one token). Default: the first of ' ки', 'ки', '§', ' ~', '~' that is."})
    aggregation: str | None = field(default=None, metadata={
        "help": "How the judge combines step scores: min, prod, last or mean (PRM default min; ORM: one step)."})
    judgement_loss: str = field(default="vocab", metadata={
        "choices": ["vocab", "tokens"],
        "help": "vocab: cross-entropy over the whole vocabulary at each slot (RLHFlow's recipes); tokens: over the "
                "'+' and '-' logits alone (OpenRLHF's --reward_tokens), the softmax the judge scores with, so no "
                "step is spent learning to emit the two tokens (meant for short runs; not yet compared on GSM8K)."})

    def __post_init__(self):
        super().__post_init__()
        if self.judgement_loss not in ("vocab", "tokens"):  # a YAML value skips argparse's choices
            raise ValueError(f"judgement_loss must be 'vocab' or 'tokens', got {self.judgement_loss!r}")


@dataclass
class ScalarORMConfig(RewardModelConfig):
    max_pairs_per_question: int = field(default=4, metadata={
        "help": "Pairs (correct, incorrect) per question, in candidate order; 0 for all."})
