"""Bradley-Terry reward model: a scalar head on a causal LM or an encoder (see README.md).

    train.py   the recipe (a thin entry over rm_core.pipeline and TRL's RewardTrainer)
    judge.py   its judge, BradleyTerryJudge (rm_family "bradley_terry"), found by name through judges.registry
"""
