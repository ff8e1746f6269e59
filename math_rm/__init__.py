"""math_rm: Math-Shepherd-style process (PRM) and outcome (ORM) reward models for math, best-of-N on GSM8K.

    encoding.py          the one-sequence format: every step followed by a judgement slot
    step_labels.py       the offline GSM8K step-label rule (calculator annotations)
    sample_solutions.py  sample N solutions per question, grade them, Monte-Carlo step labels (resumable)
    training.py          shared by train_prm.py / train_orm.py (TRL SFTTrainer, loss at the slots only)
    train_scalar_orm.py  a scalar ORM on the Bradley-Terry path (correct vs incorrect pairs)
    judge.py             the "prm" and "orm" judges: all steps of a solution in one forward pass
    best_of_n.py         best-of-N accuracy of several judges at once (the rules: rm_core/best_of_n.py)
"""
