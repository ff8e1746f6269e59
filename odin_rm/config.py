"""ODIN's arguments: the Bradley-Terry recipe's (rm_core.args.RewardModelConfig, TRL's RewardConfig) plus only the
loss weights. The data arguments are rm_core.args.DataArguments; the model's, TRL's ModelConfig. (The HF model
configuration, OdinConfig, is in modeling.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rm_core.args import RewardModelConfig


@dataclass
class OdinRewardConfig(RewardModelConfig):
    """The BT recipe's config plus ODIN's loss weights (RLHFlow's odin defaults: 1.0 and 1.0)."""

    length_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the length term (1 - rho(length head, L)) + |rho(quality head, L)|, "
                          "Pearson correlations with the response length L over the global batch."},
    )
    orthogonality_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of |cos| between the quality and length heads' weight vectors."})
