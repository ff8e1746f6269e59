"""Every rank of a multi-process launch places its models on its own GPU (issue 20): simulated here for ranks 0-7
of an 8-GPU node without a GPU, by faking what torch reports and what the launcher sets."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def eight_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    from accelerate import PartialState

    monkeypatch.setattr(PartialState, "_shared_state", {})  # no state made yet by this "rank"
    return monkeypatch


@pytest.mark.parametrize("rank", range(8))
def test_each_rank_picks_its_own_gpu(eight_gpus, rank):
    from rm_core.models import inference_device

    eight_gpus.setenv("LOCAL_RANK", str(rank))
    assert inference_device() == torch.device("cuda", rank)
    assert inference_device("cpu") == torch.device("cpu")  # an explicit device always wins


def test_two_nodes_of_eight_use_the_local_rank_and_a_single_process_gets_gpu_0(eight_gpus):
    from rm_core.models import inference_device

    eight_gpus.setenv("RANK", "11")
    eight_gpus.setenv("LOCAL_RANK", "3")
    assert inference_device() == torch.device("cuda", 3)
    eight_gpus.delenv("LOCAL_RANK")
    assert inference_device() == torch.device("cuda", 0)


def test_an_existing_accelerate_state_decides(eight_gpus):
    from accelerate import PartialState

    from rm_core.models import inference_device

    class FakeState:
        device = torch.device("cuda", 5)

    eight_gpus.setattr(PartialState, "_shared_state", {"device": FakeState.device})
    eight_gpus.setattr(PartialState, "device", FakeState.device, raising=False)
    eight_gpus.setenv("LOCAL_RANK", "2")
    assert inference_device() == torch.device("cuda", 5)


def test_without_a_gpu_every_rank_is_on_cpu(monkeypatch):
    from rm_core.models import inference_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "6")
    assert inference_device() == torch.device("cpu")


def test_every_loader_goes_through_the_rank_aware_default():
    """The places that move a model without being given a device: embeddings, RM judges, ArmoRM, LLM backends,
    the solution sampler and the scalar ORM's evaluation all call inference_device, none a bare "cuda"."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ours = [p for p in root.glob("*/*.py") if p.parent.name not in ("bench", "tests")]  # bench/ patches peers' code
    bare = [f"{p.relative_to(root)}:{i}" for p in ours for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"""["']cuda["'] if torch\.cuda\.is_available\(\)|\.cuda\(\)|\.to\(["']cuda["']\)""", line)]
    assert bare == [], f"models moved to a bare 'cuda' (GPU 0 on every rank): {bare}"
