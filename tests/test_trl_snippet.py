"""README "Use in TRL": `GRPOTrainer(reward_funcs=[make_trl_reward_func(judges.load(CKPT))], ...)`, run for real:
one GRPO step of a tiny policy on CPU, conversational prompts (as trl-lib/ultrafeedback-prompt's), a tiny reward
model checkpoint loaded by judges.load. The adapter's other call shapes (standard format, reference columns,
pairwise judges, log_metric) are in tests/test_rl_adapters.py (test_trl_*)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def test_readme_trl_snippet_trains_a_step_on_a_loaded_reward_model(tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    import judges
    from judges.rl import make_trl_reward_func
    from rm_core.testing import save_tiny_backbone, save_tiny_reward_model

    ckpt = save_tiny_reward_model(tmp_path / "rm", seed=0)
    policy = save_tiny_backbone(tmp_path / "policy", seed=1)
    judge = judges.load(str(ckpt))
    calls = []  # what TRL made the judge score, and what it answered
    score = judge.score

    def spy(conversations, references=None):
        out = score(conversations, references)
        calls.append((conversations, out))
        return out

    judge.score = spy
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q in
                                         ("What is 2 + 3?", "Say hello", "Name a colour", "Count to 3")]})
    # the README snippet, with the tiny policy, the tiny checkpoint and a CPU-sized config
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy),
        reward_funcs=[make_trl_reward_func(judge, name="rm")],
        args=GRPOConfig(output_dir=str(tmp_path / "out"), num_generations=2, max_completion_length=8,
                        per_device_train_batch_size=2, max_steps=1, logging_steps=1, report_to="none",
                        use_cpu=True, bf16=False, save_strategy="no"),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    trainer.train()

    assert calls, "the judge was never called"
    conversations, scores = calls[0]
    assert len(conversations) == 2 and conversations[0][:-1] == conversations[1][:-1]  # one prompt's group
    for conv in conversations:  # TRL's conversational call: prompt messages + the assistant's completion
        assert conv[0]["role"] == "user" and conv[-1]["role"] == "assistant" and isinstance(conv[-1]["content"], str)
    assert all(s is not None for s in scores)
    log = next(entry for entry in trainer.state.log_history if "rewards/rm/mean" in entry)
    assert log["rewards/rm/mean"] == pytest.approx(np.mean(scores), abs=1e-5)
    assert log["rm/judge_failed"] == 0.0
