"""Arguments shared by the recipes: TrlParser dataclasses, `--config recipe.yaml` with CLI overrides.

    DataArguments           the preference data of every pairwise recipe
    ChatTemplateArguments   mixin: --chat_template (every training config)
    PrecisionArguments      mixin: --bf16 defaulting to what the machine supports (every training config)
    RewardModelConfig       TRL's RewardConfig with both mixins (Bradley-Terry, ODIN, scalar ORM)
    ReportingArguments      mixin: --quiet, --report_to, --run_name for a config whose stages run their own loops
                            (ArmoRM); an argparse CLI adds the same with rm_core.tracking.add_run_args

A family's config extends TRL's config with the mixins first, so each field and the precision rule are
written once: `class PairPMConfig(PrecisionArguments, ChatTemplateArguments, SFTConfig)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import RewardConfig

from rm_core import tracking


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="builtin",
        metadata={"help": "Hub data set id, local file (.json/.jsonl/.jsonl.gz/.parquet) or folder holding "
                          "{split}.jsonl, or 'builtin' for the project's generated preference set."},
    )
    dataset_data_dir: str | None = field(default=None, metadata={"help": "data_dir for a Hub data set."})
    dataset_format: str = field(
        default="auto",
        metadata={"help": "Row format: auto, hh, conversations, explicit, reward_bench (rm_core/data.py)."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default="test",
        metadata={"help": "Held-out split; empty for no held-out set. When the data has no such split (one file, "
                          "a folder without {split}.jsonl, a Hub set without it), --eval_fraction of the pairs is "
                          "held out instead."},
    )
    eval_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the pairs held out when the data has no test split: a pair is held out when "
                          "sha1 of its canonical prompt+chosen+rejected JSON falls in this fraction (deterministic; "
                          "rm_core.data.split_pairs). 0: no held-out set."},
    )
    split_rule: str | None = field(
        default=None,
        metadata={"help": "'hh_sha1': split the train rows into train/test by the project's fixed HH-RLHF rule "
                          "(../shared/data/README.md) instead of reading a test split."},
    )
    max_train_pairs: int | None = field(default=None, metadata={"help": "Use the first N training pairs."})
    max_eval_pairs: int | None = field(default=None, metadata={"help": "Use the first N held-out pairs."})
    strict_rows: bool = field(default=False, metadata={"help": "Fail on the first malformed row instead of "
                                                                "skipping and counting it."})


@dataclass
class ChatTemplateArguments:
    """Mixin: the chat template a recipe renders with (rm_core.templates.set_chat_template)."""

    chat_template: str | None = field(
        default=None,
        metadata={"help": "Chat template: a Jinja string, a .jinja path, or 'plain'. Default: the tokenizer's."},
    )


@dataclass
class PrecisionArguments:
    """Mixin for a transformers TrainingArguments subclass: bf16 defaults to on where the GPU supports it and off
    on CPU; bf16 asked for on a machine without CUDA trains on the CPU (use_cpu), the only place it can run."""

    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. Default: on when the GPU supports it, off on CPU."},
    )

    def __post_init__(self):
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if self.bf16 and not torch.cuda.is_available():
            self.use_cpu = True  # bf16 autocast on CPU is allowed only when asked for explicitly
        super().__post_init__()


@dataclass
class RewardModelConfig(PrecisionArguments, ChatTemplateArguments, RewardConfig):
    """TRL's RewardConfig with the few fields the recipes add, and CPU-aware precision defaults."""

    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Sampler: 'group_by_length' (default here: far less padding) or 'random'."},
    )
    max_length: int | None = field(
        default=1024,
        metadata={"help": "Longer pairs are cut from the front (end of the response kept) and counted, not dropped."},
    )
    remove_unused_columns: bool = field(default=True, metadata={"help": "As in transformers."})


@dataclass
class ReportingArguments:
    """Mixin for a config whose stages run their own loops (not the Trainer): --quiet, --report_to, --run_name."""

    quiet: bool = field(default=False, metadata={"help": tracking.QUIET_HELP})
    report_to: list[str] = field(default_factory=lambda: ["none"], metadata={"help": tracking.REPORT_TO_HELP})
    run_name: str | None = field(default=None, metadata={"help": "The tracked run's name (--report_to)."})
