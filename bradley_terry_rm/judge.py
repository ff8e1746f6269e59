"""The Bradley-Terry family's judge (rm_family "bradley_terry"): `judges.load(ckpt)` returns BradleyTerryJudge
for a checkpoint whose config.json says so, and for any Hugging Face sequence classifier without an rm_family
(Skywork-Reward and other third-party RMs; judges.checkpoint_family).

The engine is the shared scalar-head judge, judges.rm_judge.RewardModelJudge (rendering with the checkpoint's
template and one BOS, truncation from the front, length-sorted batches, the shared-prompt KV-cache path of
`eval_reward_bench`, `normalize=True` from reward_mean/reward_std). It stays in judges/ because three families
read a scalar head with it: this one, ODIN (odin_rm.judge.OdinJudge, a subclass) and the scalar ORM
(math_rm.judge.OutcomeRewardJudge returns it for `math_rm_head: "scalar"`); in a family folder, those two
would import another family. This class is the family's name for it: nothing is added to or changed in it.
"""

from __future__ import annotations

from judges.rm_judge import RewardModelJudge


class BradleyTerryJudge(RewardModelJudge):
    """A pointwise judge on a Bradley-Terry (or any one-logit sequence-classification) reward model."""


__all__ = ["BradleyTerryJudge"]
