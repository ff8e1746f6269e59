"""One configuration for both ArmoRM stages (`--config armo_rm/configs/<model>.yaml`, CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rm_core.args import ReportingArguments


@dataclass
class ArmoConfig(ReportingArguments):  # + --quiet, --report_to, --run_name
    model_name_or_path: str = field(default="HuggingFaceTB/SmolLM2-135M-Instruct", metadata={
        "help": "Frozen backbone (Hub id or folder). ArmoRM's paper uses a BT-trained RM's backbone."})
    output_dir: str = field(default="outputs/armo-rm", metadata={"help": "Stage outputs and the exported model."})
    dtype: str = field(default="auto", metadata={"help": "Backbone dtype: auto (bf16 on a bf16 GPU or a CPU "
                                                         "with native bf16, else fp32), float32, bfloat16."})
    max_length: int = field(default=1024, metadata={"help": "Longer items are cut from the front, counted."})
    embed_batch_size: int | None = field(default=None, metadata={
        "help": "Sequences a forward. Default: 16 on GPU; on a CPU as many as fit in 1024 padded tokens (2048 in "
                "bf16 with AMX: rm_core.inference.default_forward_tokens)."})
    embed_shard_size: int = field(default=64, metadata={
        "help": "Items per cache shard: the unit of resume, and of the work split across processes."})
    embedding_cache: str | None = field(default=None, metadata={
        "help": "Embedding cache folder (content-addressed, shared by both stages). Default: <output_dir>/embeddings."})
    shared_data_dir: str | None = field(default=None, metadata={
        "help": "Folder of the offline data sets (default: $RM_SHARED_DATA, else ../shared/data beside the "
                "project: rm_core.data.shared_data_dir)."})
    ratings_sources: list[str] = field(default_factory=lambda: ["offline:hh-harmless", "offline:gsm8k"], metadata={
        "help": "Stage 1 ratings: Hub ids / files (RLHFlow/ArmoRM-Multi-Objective-Data-v0.1: the published 19 "
                "objectives; HelpSteer2, UltraFeedback, Ratings rows) or the offline sets "
                "offline:hh-harmless (relative harmlessness) and offline:gsm8k (correctness). A suffix [N] keeps the "
                "first N pairs (GSM8K: questions) of that source."})
    preference_sources: list[str] = field(default_factory=lambda: ["offline:hh-harmless", "offline:gsm8k"], metadata={
        "help": "Stage 2 preference pairs: Hub ids / files in any preference format, or the offline sets."})
    test_sources: list[str] = field(default_factory=lambda: ["offline:hh-harmless-test", "offline:llmbar"], metadata={
        "help": "Held-out preference sets scored after stage 2 (from embeddings)."})
    max_pairs_per_source: int | None = field(default=None, metadata={
        "help": "Use the first N pairs (or the questions' pairs for the first N GSM8K questions) of each source."})
    max_test_pairs: int | None = field(default=None, metadata={"help": "First N pairs of each test source."})
    verbosity_attribute: str = field(default="verbosity", metadata={
        "help": "Attribute that measures length: the reference of the debiasing (and, with verbosity_from_length, "
                "labelled from the response length where no source rates it)."})
    verbosity_from_length: bool = field(default=True, metadata={
        "help": "Label verbosity_attribute from the response length on rows whose source does not rate it (the "
                "offline sets rate no verbosity). False: such rows stay unlabelled for it (masked), as published: "
                "the 19-objective set rates helpsteer-verbosity on its HelpSteer rows only."})
    val_fraction: float = field(default=0.2, metadata={"help": "Validation share (split by prompt) in both stages."})
    ridge_alphas: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0],
                                      metadata={"help": "Ridge regularisation grid, picked per objective on validation R^2."})
    corr_threshold: float = field(default=0.03, metadata={
        "help": "Debiasing: each objective is penalised by the smallest multiple of the verbosity reward that "
                "brings its Spearman correlation with verbosity to this or below."})
    debias_two_sided: bool = field(default=False, metadata={
        "help": "Also lift a negative correlation with verbosity to -corr_threshold (ArmoRM: positive only)."})
    gating_hidden_dim: int = field(default=256, metadata={"help": "Gating MLP width."})
    gating_n_hidden: int = field(default=2, metadata={"help": "Gating MLP hidden layers."})
    gating_temperature: float = field(default=10.0, metadata={"help": "Softmax temperature over the objectives."})
    gating_dropout: float = field(default=0.2, metadata={"help": "Dropout in the gating MLP."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (cosine schedule)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_steps: int = field(default=2000, metadata={"help": "Gating training steps (published stage 2: 2000)."})
    eval_steps: int = field(default=100, metadata={
        "help": "Gating: steps between two validation evaluations (the early-stopping check)."})
    early_stopping_patience: int = field(default=0, metadata={
        "help": "Gating: stop when the validation loss has not improved for this many evaluations in a row and "
                "keep the best weights; 0: train all max_steps (the published stage 2 has no early stopping)."})
    batch_size: int = field(default=512, metadata={"help": "Pairs per gating step (sampled with replacement)."})
    seed: int = field(default=42, metadata={"help": "Seed of the splits and the gating training."})
    overwrite: bool = field(default=False, metadata={
        "help": "Replace what an earlier run left in output_dir (stage 1's regression, the exported model); "
                "without it a stage refuses such a folder."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the exported model (needs hub_model_id)."})
    hub_model_id: str | None = field(default=None, metadata={"help": "ORG/NAME on the Hub."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repo private."})

    @property
    def cache_folder(self) -> str:
        return self.embedding_cache or f"{self.output_dir}/embeddings"


def make_parser():
    from trl import TrlParser

    return TrlParser((ArmoConfig,))
