"""Shared fixtures: a tiny ArmoRM trained end to end (both stages) on a tiny random backbone; a tiny reward model;
and the suite runs as on a CPU without native bf16 (below)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers.utils import logging as transformers_logging

# transformers' log handler writes to the sys.stderr of the moment it is made: made here, under pytest's session-long
# capture, not inside a test whose capsys stream is closed after it (then a later test's model-load warning would
# print "--- Logging error ---" into that test's captured stderr).
transformers_logging.get_logger("transformers")


@pytest.fixture(scope="session", autouse=True)
def cpu_without_native_bf16():
    """`--dtype auto` picks bf16 on a CPU with native bf16 (AVX512-BF16/AMX), where the tests' exact-score assertions
    (fp32's, to 1e-5) cannot hold; so every test sees the CPU's capabilities without those two flags and runs the
    fp32 path whatever the machine. tests/test_dtype_auto.py patches the capabilities itself to test the choice."""
    real = torch.cpu.get_capabilities
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cpu, "get_capabilities",
                      lambda: {k: v for k, v in real().items() if k not in ("avx512_bf16", "amx_bf16")})
        yield


@pytest.fixture(autouse=True)
def no_onednn_isa_cap(monkeypatch):
    """A ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA in the shell (the AVX2 proxy of bench/RESULTS.md) would change what
    the tests that fake a CPU's capabilities see (rm_core.models.cpu_capabilities follows the cap)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


@pytest.fixture(scope="session")
def tiny_armo(tmp_path_factory):
    """(config, stage 1 result, stage 2 result, preference rows): 50 synthetic pairs where the chosen reply is
    helpful ("Sure, here is the answer ...") and the rejected one refuses; "safe" rated on rejected rows only."""
    from armo_rm import train_gating, train_regression
    from armo_rm.config import ArmoConfig
    from rm_core.testing import save_tiny_backbone

    work = tmp_path_factory.mktemp("armo")
    path = save_tiny_backbone(work / "tiny")
    rng = random.Random(0)
    words = "the quick brown fox jumps over lazy dog hello world".split()
    ratings, prefs = [], []
    for i in range(50):
        prompt = f"question {i} " + " ".join(rng.choices(words, k=4))
        good = "Sure, here is the answer " + " ".join(rng.choices(words, k=rng.randint(2, 12)))
        bad = "I cannot help " + " ".join(rng.choices(words, k=rng.randint(2, 12)))
        ratings += [{"prompt": prompt, "response": good, "attributes": {"helpful": 1.0, "safe": None}},
                    {"prompt": prompt, "response": bad, "attributes": {"helpful": 0.0, "safe": 1.0}}]
        prefs.append({"prompt": prompt, "chosen": good, "rejected": bad})
    (work / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ratings))
    (work / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    held_out = [{"prompt": f"held-out question {i} " + " ".join(rng.choices(words, k=4)),
                 "chosen": "Sure, here is the answer " + " ".join(rng.choices(words, k=rng.randint(2, 12))),
                 "rejected": "I cannot help " + " ".join(rng.choices(words, k=rng.randint(2, 12)))} for i in range(20)]
    (work / "prefs_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out))
    cfg = ArmoConfig(model_name_or_path=str(path), output_dir=str(work / "out"), max_length=64,
                     ratings_sources=[str(work / "ratings.jsonl")], preference_sources=[str(work / "prefs.jsonl")],
                     test_sources=[str(work / "prefs_test.jsonl")], max_steps=100, batch_size=32, dtype="float32")
    stage1 = train_regression.main(cfg)
    stage2 = train_gating.main(cfg)
    return cfg, stage1, stage2, prefs


@pytest.fixture(scope="session")
def tiny_rm(tmp_path_factory):
    """(path, judge) of a tiny reward-model checkpoint with a ChatML template (the assistant turn ends
    "<|im_end|>\\n"), for the OpenRLHF and service tests."""
    import judges
    from rm_core.testing import save_tiny_reward_model

    path = save_tiny_reward_model(tmp_path_factory.mktemp("rm") / "rm", seed=0)
    return path, judges.load(str(path))
