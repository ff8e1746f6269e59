"""verl reward managers (judges/rl.py), driven exactly as verl drives them.

JudgeRewardManager runs on verl's reward loop; GroupJudgeRewardManager on verl's legacy batch path. verl's reward
code comes in two generations, read from their sources:
- A, verl 0.7.0 and main up to commit b178a3cd (2026-01-29): reward_model.use_reward_loop (default True).
  RewardLoopWorker (verl/experimental/reward_loop/reward_loop.py) builds the reward-loop manager as
  cls(config, tokenizer, reward_fn, reward_router_address, reward_model_tokenizer) and awaits run_single(data[i:i+1])
  for every sample of its chunk at once (compute_score_batch); samples are rows of the rollout batch (prompts
  left-padded, responses right-padded). The driver (verl/trainer/main_ppo.py) always builds a legacy reward
  function too: load_reward_manager(config, tokenizer, num_examine, **reward_model.reward_kwargs) in
  verl/trainer/ppo/reward.py, with the legacy keyword signature for a class that is not a RewardManagerBase, called
  as reward_fn(batch, return_dict=True): on the whole batch with use_reward_loop=False, else to pass rm_scores on.
- B, verl 0.7.1 to 0.9.1: the reward loop only. load_reward_manager builds cls(config=, tokenizer=, compute_score=,
  reward_router_address=, reward_model_tokenizer=); AgentLoopWorker._compute_score (verl/experimental/agent_loop/
  agent_loop.py) builds one trajectory's DataProto (unpadded prompt and response, attention_mask of ones, the
  dataset row's fields as one-element numpy arrays) and awaits RewardLoopWorker.compute_score -> run_single.
The verl-free tests reproduce those calls. The tests at the end use an installed verl (requirements/test-verl.txt):
its DataProto, registries, hydra config, load_reward_manager, compute_reward and RewardLoopWorker; they skip
without verl.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_rl_adapters import (
    ROWS,
    Broken,
    DataProtoLike,
    LenJudge,
    LongerWins,
    assert_only_last_tokens,
    expected,
    valid_lengths,
    verl_batch,
)

from judges import rl
from judges.base import conversation
from judges.rl import GroupJudgeInRewardLoop, GroupJudgeRewardManager, JudgeFailedError, JudgeRewardManager

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)

# The hydra overrides judges/README.md shows, checked against verl's own config below.
VERL_REWARD_LOOP = [  # verl >= 0.7.1: the reward loop is the only reward path
    "reward.reward_manager.source=importlib",
    "reward.reward_manager.module.path=pkg://judges.rl",
    "reward.reward_manager.name=JudgeRewardManager",
    "+reward.reward_kwargs.judge=outputs/bt-smollm2",
    "+reward.reward_kwargs.failure_reward=-1.0",
]
VERL_070_REWARD_LOOP = [  # verl 0.7.0: the reward loop, verl's default there
    "custom_reward_function.path=pkg://judges.rl",
    "custom_reward_function.name=compute_score",
    "reward_model.reward_manager=judge",
    "+reward_model.reward_kwargs.judge=outputs/bt-smollm2",
    "+reward_model.reward_kwargs.failure_reward=-1.0",
]
VERL_COMPUTE_SCORE = [  # verl >= 0.7.1: verl's own per-sample manager ("naive") calling compute_score
    "reward.custom_reward_function.path=pkg://judges.rl",
    "reward.custom_reward_function.name=compute_score",
    "+reward.custom_reward_function.reward_kwargs.judge=outputs/bt-smollm2",
    "+reward.custom_reward_function.reward_kwargs.failure_reward=-1.0",
]
VERL_070_COMPUTE_SCORE = [
    "custom_reward_function.path=pkg://judges.rl",
    "custom_reward_function.name=compute_score",
    "+custom_reward_function.reward_kwargs.judge=outputs/bt-smollm2",
    "+custom_reward_function.reward_kwargs.failure_reward=-1.0",
]
VERL_070_GROUPS = [  # verl 0.7.0: the legacy batch path, where a group can be judged together
    "reward_model.use_reward_loop=False",
    "custom_reward_function.path=pkg://judges.rl",
    "custom_reward_function.name=compute_score",
    "reward_model.reward_manager=judge_group",
    "+reward_model.reward_kwargs.judge=outputs/pair-pm",
    "+reward_model.reward_kwargs.group_timeout_s=300",
    "+reward_model.reward_kwargs.failure_reward=-1.0",
]


@pytest.fixture(scope="module")
def tokenizer():
    from rm_core.testing import tiny_tokenizer

    return tiny_tokenizer()


class Specs:
    """What judges given by spec load as (rl._load_judge is replaced): `judge_cls()`, each load recorded."""

    def __init__(self):
        self.judge_cls = LenJudge
        self.loads: list[tuple[str, dict]] = []

    def load(self, spec, **kwargs):
        self.loads.append((spec, kwargs))
        return self.judge_cls()


@pytest.fixture
def specs(monkeypatch):
    specs = Specs()
    monkeypatch.setattr(rl, "_load_judge", specs.load)
    monkeypatch.setattr(rl, "_JUDGES", {})
    monkeypatch.delenv("RM_JUDGE", raising=False)
    monkeypatch.delenv("RM_FAILURE_REWARD", raising=False)
    return specs


def make_data(tensors: dict, non_tensors: dict, meta_info: dict | None = None):
    """verl's DataProto when verl is importable, else the stand-in with its layout."""
    try:
        from verl import DataProto
    except ImportError:
        return DataProtoLike(tensors, non_tensors, meta_info)
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=meta_info)


def agent_loop_sample(tokenizer, row: dict):
    """One trajectory as verl 0.9.1's AgentLoopWorker._compute_score hands it to the reward loop: the prompt ids (the
    chat-templated raw_prompt) and the response ids (+ EOS) unpadded, attention_mask of ones, the dataset row's
    fields as one-element arrays (np.array([v])), plus __num_turns__, tool_extra_fields, prompt_len, response_len."""
    messages = [{"role": "user", "content": row["prompt"]}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    response_ids = [] if row["response"] is None else tokenizer.encode(row["response"], add_special_tokens=False)
    response_ids = response_ids + [tokenizer.eos_token_id] if response_ids else []
    prompts, responses = torch.tensor([prompt_ids]), torch.tensor([response_ids], dtype=torch.int64)
    input_ids = torch.cat([prompts, responses], dim=1)
    tensors = {"prompts": prompts, "responses": responses, "input_ids": input_ids,
               "attention_mask": torch.ones_like(input_ids), "position_ids": torch.arange(input_ids.shape[1])[None]}
    kwargs = {"raw_prompt": messages, "data_source": row.get("data_source", "unit"), "uid": row["uid"],
              "reward_model": {"ground_truth": row.get("ground_truth"), "style": "rule"},
              "extra_info": dict(row.get("extra_info", {}), index=0)}
    non_tensors = {**{k: np.array([v]) for k, v in kwargs.items()}, "__num_turns__": np.array([2]),
                   "tool_extra_fields": np.array([{}], dtype=object), "prompt_len": np.array([len(prompt_ids)]),
                   "response_len": np.array([len(response_ids)])}
    return make_data(tensors, non_tensors)


def built_like_verl_09(tokenizer, config=None, **kwargs):
    """verl 0.9.1 verl/trainer/ppo/reward.py load_reward_manager, called by RewardLoopWorker._init_reward_fn."""
    return JudgeRewardManager(config=config, tokenizer=tokenizer, compute_score=must_not_be_called,
                              reward_router_address=None, reward_model_tokenizer=None, **kwargs)


def built_like_verl_070(tokenizer, config):
    """verl 0.7.0 / b178a3cd RewardLoopWorker._init_reward_fn: reward_manager_cls(config, input_tokenizer, reward_fn,
    reward_router_address, reward_model_tokenizer), positionally."""
    return JudgeRewardManager(config, tokenizer, must_not_be_called, None, None)


async def compute_score_batch(manager, data):
    """RewardLoopWorker.compute_score_batch (both generations): one task per sample data[i : i + 1], gathered."""
    return await asyncio.gather(*[asyncio.create_task(manager.run_single(data[i:i + 1])) for i in range(len(data))],
                                return_exceptions=True)


def must_not_be_called(**kwargs):
    raise AssertionError("verl's compute_score was called: the judge is the reward")


def direct_score(row: dict) -> float:
    """The judge's own score of the row, asked directly."""
    conv = conversation([{"role": "user", "content": row["prompt"]}], row["response"])
    return LenJudge().score([conv], None if row.get("ground_truth") is None else [row["ground_truth"]])[0]


# -- the reward-loop manager, per sample ---------------------------------------------------------------------------
def test_run_single_on_verl_09_agent_loop_samples(tokenizer, specs):
    manager = built_like_verl_09(tokenizer, {"reward": {"reward_kwargs": {"judge": "outputs/bt"}}})
    assert specs.loads == []  # loaded on first use, not when built
    results = [asyncio.run(manager.run_single(agent_loop_sample(tokenizer, row))) for row in ROWS]
    for row, result in zip(ROWS, results):
        reward = direct_score(row)
        assert reward == expected(row["response"], row["ground_truth"])
        assert result == {"reward_score": reward,
                          "reward_extra_info": {"score": reward, "judge_failed": 0.0, "empty_response": 0.0}}
    judge = manager.judge
    assert specs.loads == [("outputs/bt", {})] and isinstance(judge, LenJudge)
    # the judge saw the dataset's messages (raw_prompt), the decoded response and the ground truth
    assert judge.calls[0] == {"prompts": [ROWS[0]["prompt"]], "responses": [ROWS[0]["response"]], "refs": ["5"]}
    assert judge.calls[1]["refs"] is None  # no ground truth: no references


def test_run_single_on_verl_070_worker_rows_batches_concurrent_samples(tokenizer):
    judge = LenJudge(delay=0.3)
    manager = built_like_verl_070(tokenizer, {"reward_model": {"reward_kwargs": {"judge": judge}}})
    data = verl_batch(tokenizer, ROWS)  # the rollout batch: left-padded prompts, right-padded responses
    results = asyncio.run(compute_score_batch(manager, data))
    assert [r["reward_score"] for r in results] == [direct_score(row) for row in ROWS]
    # the 6 samples were awaited together: they went to the judge in fewer calls, each sample exactly once
    assert len(judge.calls) < len(ROWS)
    assert sorted(r for call in judge.calls for r in call["responses"]) == sorted(row["response"] for row in ROWS)

    judge = LenJudge(delay=0.05)
    manager = JudgeRewardManager(None, tokenizer, judge=judge, max_batch_size=2)
    results = asyncio.run(compute_score_batch(manager, data))
    assert [r["reward_score"] for r in results] == [direct_score(row) for row in ROWS]
    assert max(len(call["responses"]) for call in judge.calls) <= 2


def test_judge_calls_leave_the_event_loop_free(tokenizer):
    manager = JudgeRewardManager(None, tokenizer, judge=LenJudge(delay=0.4))

    async def main():
        ticks = 0

        async def heartbeat():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        result = await manager.run_single(agent_loop_sample(tokenizer, ROWS[0]))
        beat.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result["reward_score"] == direct_score(ROWS[0])
    assert ticks >= 10, f"the event loop ran {ticks} times in 0.4 s: the judge call blocked it"


def test_run_single_failure_policy(tokenizer):
    rows = [dict(ROWS[0]), dict(ROWS[2], response="FAIL here"), dict(ROWS[5])]
    data = verl_batch(tokenizer, rows)
    judge = LenJudge(delay=0.2)
    results = asyncio.run(compute_score_batch(JudgeRewardManager(None, tokenizer, judge=judge), data))
    assert isinstance(results[1], JudgeFailedError) and "failure_reward" in str(results[1])
    assert [results[0]["reward_score"], results[2]["reward_score"]] == [direct_score(rows[0]), direct_score(rows[2])]
    assert judge.failures.counts["scripted failure"] == 1

    results = asyncio.run(compute_score_batch(JudgeRewardManager(None, tokenizer, judge=LenJudge(),
                                                                 failure_reward=-1.5), data))
    assert results[1] == {"reward_score": -1.5,
                          "reward_extra_info": {"score": -1.5, "judge_failed": 1.0, "empty_response": 0.0}}
    assert results[0]["reward_extra_info"]["judge_failed"] == 0.0
    with pytest.raises(ValueError, match="finite"):
        JudgeRewardManager(None, tokenizer, judge=LenJudge(), failure_reward=float("nan"))


def test_run_single_empty_response_is_not_judged(tokenizer):
    judge = LenJudge()
    manager = JudgeRewardManager(None, tokenizer, judge=judge)
    for data in (agent_loop_sample(tokenizer, dict(ROWS[0], response=None)),
                 verl_batch(tokenizer, [dict(ROWS[0], response=None)])):
        assert asyncio.run(manager.run_single(data)) == {
            "reward_score": 0.0, "reward_extra_info": {"score": 0.0, "judge_failed": 0.0, "empty_response": 1.0}}
    assert judge.calls == []


def test_pairwise_judge_cannot_score_one_sample(tokenizer, specs):
    with pytest.raises(TypeError, match=r"pairwise.*GroupJudgeRewardManager.*use_reward_loop=False"):
        JudgeRewardManager(None, tokenizer, judge=LongerWins())
    specs.judge_cls = LongerWins  # given by spec: known once loaded, at the first sample
    manager = built_like_verl_09(tokenizer, {"reward": {"reward_kwargs": {"judge": "outputs/pair-pm"}}})
    with pytest.raises(TypeError, match="pairwise"):
        asyncio.run(manager.run_single(agent_loop_sample(tokenizer, ROWS[0])))
    with pytest.raises(TypeError, match=r"one sample at a time.*use_reward_loop=False"):
        GroupJudgeInRewardLoop({}, tokenizer, None, None, None)  # what the reward loop finds under "judge_group"


def test_judge_exception_propagates(tokenizer):
    with pytest.raises(ZeroDivisionError):
        asyncio.run(JudgeRewardManager(None, tokenizer, judge=Broken(), failure_reward=0.0).run_single(
            agent_loop_sample(tokenizer, ROWS[0])))


def test_options_come_from_verl_config_kwargs_or_env(tokenizer, specs, monkeypatch):
    sample = agent_loop_sample(tokenizer, dict(ROWS[0], response="FAIL"))
    # verl >= 0.7.1 keeps them in reward.reward_kwargs, verl 0.7.0 in reward_model.reward_kwargs
    new = {"reward": {"reward_kwargs": {"judge": "ckpt/a", "failure_reward": -2, "judge_kwargs": {"dtype": "bf16"}}}}
    assert asyncio.run(built_like_verl_09(tokenizer, new).run_single(sample))["reward_score"] == -2.0
    old = {"reward_model": {"reward_kwargs": {"judge": "ckpt/b", "failure_reward": -3}}}
    assert asyncio.run(built_like_verl_070(tokenizer, old).run_single(sample))["reward_score"] == -3.0
    # keyword arguments win; two managers on one spec share the judge (loaded once per process)
    assert asyncio.run(JudgeRewardManager(old, tokenizer, failure_reward=-4).run_single(sample))["reward_score"] == -4.0
    assert specs.loads == [("ckpt/a", {"dtype": "bf16"}), ("ckpt/b", {})]

    with pytest.raises(TypeError, match=r"\['max_workers'\].*GroupJudgeRewardManager"):
        built_like_verl_09(tokenizer, {"reward": {"reward_kwargs": {"judge": "ckpt/a", "max_workers": 4}}})
    with pytest.raises(ValueError, match="RM_JUDGE"):
        built_like_verl_09(tokenizer, {"reward": {}})
    with pytest.raises(ValueError, match="max_batch_size"):
        built_like_verl_09(tokenizer, new, max_batch_size=0)
    monkeypatch.setenv("RM_JUDGE", "env/judge")
    monkeypatch.setenv("RM_FAILURE_REWARD", "-5")
    assert asyncio.run(built_like_verl_09(tokenizer).run_single(sample))["reward_score"] == -5.0
    assert specs.loads[-1] == ("env/judge", {})


# -- rm_scores already in the batch ---------------------------------------------------------------------------------
def with_rm_scores(tokenizer, rows):
    """A batch whose rewards verl already computed: rm_scores at the last valid tokens, an extra column named in
    meta_info["reward_extra_keys"] (as verl's reward loop leaves them)."""
    data = verl_batch(tokenizer, rows)
    rm_scores = torch.zeros(data.batch["responses"].shape, dtype=torch.float32)
    for i, length in enumerate(valid_lengths(data)):
        rm_scores[i, length - 1] = 0.25 * (i + 1)
    data.batch["rm_scores"] = rm_scores
    data.non_tensor_batch["acc"] = np.array([float(i % 2) for i in range(len(rows))], dtype=object)
    data.meta_info["reward_extra_keys"] = ["acc"]
    return data, rm_scores


def test_rm_scores_are_passed_through(tokenizer):
    data, rm_scores = with_rm_scores(tokenizer, ROWS)
    judge = LenJudge()
    manager = JudgeRewardManager(None, tokenizer, judge=judge)
    results = asyncio.run(compute_score_batch(manager, data))
    assert [r["reward_score"] for r in results] == [0.25 * (i + 1) for i in range(len(ROWS))]
    assert [r["reward_extra_info"] for r in results] == [{"acc": float(i % 2)} for i in range(len(ROWS))]
    for reward_fn in (manager, GroupJudgeRewardManager(tokenizer, judge=judge)):  # as verl's NaiveRewardManager does
        assert reward_fn(data) is data.batch["rm_scores"]
        out = reward_fn(data, return_dict=True)
        assert torch.equal(out["reward_tensor"], rm_scores)
        assert list(out["reward_extra_info"]) == ["acc"] and list(out["reward_extra_info"]["acc"]) == [0.0, 1.0] * 3
    assert judge.calls == []  # never judged


# -- the batch form, as verl 0.7.0's driver calls a reward manager --------------------------------------------------
def test_legacy_call_as_verl_070_driver_makes_it(tokenizer):
    rows = [*ROWS, dict(ROWS[1], response=None)]
    data = verl_batch(tokenizer, rows)
    judge = LenJudge()
    # load_reward_manager for a class that is not a RewardManagerBase: the legacy keyword signature
    reward_fn = JudgeRewardManager(tokenizer=tokenizer, num_examine=0, compute_score=must_not_be_called,
                                   reward_fn_key="data_source", judge=judge)
    out = reward_fn(data, return_dict=True)
    rewards = [direct_score(row) for row in ROWS] + [0.0]
    assert_only_last_tokens(out["reward_tensor"], data, rewards)
    assert out["reward_extra_info"] == {"score": rewards, "judge_failed": [0.0] * 7, "empty_response": [0.0] * 6 + [1.0]}
    assert len(judge.calls) == 1 and len(judge.calls[0]["responses"]) == 6  # one call for the batch
    # the same tensor as the group manager's with a pointwise judge
    assert torch.equal(reward_fn(data), GroupJudgeRewardManager(tokenizer, judge=LenJudge())(data))

    failing = verl_batch(tokenizer, [ROWS[0], dict(ROWS[2], response="FAIL")])
    with pytest.raises(JudgeFailedError, match="1 of 2 items"):
        reward_fn(failing)
    out = JudgeRewardManager(tokenizer=tokenizer, judge=LenJudge(), failure_reward=-1.0)(failing, return_dict=True)
    assert_only_last_tokens(out["reward_tensor"], failing, [direct_score(ROWS[0]), -1.0])
    assert out["reward_extra_info"]["judge_failed"] == [0.0, 1.0]


def test_assemble_rm_scores_like_verl(tokenizer):
    """RewardManagerBase.assemble_rm_scores (verl >= 0.8, verl/experimental/reward_loop/reward_manager/base.py), which
    RewardLoopManager.compute_rm_score calls on the manager's class."""
    data = verl_batch(tokenizer, ROWS)
    scores = [float(i) - 2.5 for i in range(len(ROWS))]
    prompt_length = data.batch["prompts"].size(1)
    valid_response_length = data.batch["attention_mask"][:, prompt_length:].sum(dim=1)
    theirs = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
    theirs[torch.arange(theirs.size(0)), valid_response_length - 1] = theirs.new_tensor(scores)
    assert torch.equal(JudgeRewardManager.assemble_rm_scores(data, scores), theirs)


def test_module_imports_neither_verl_nor_ray():
    code = ("import sys, judges.rl; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('verl', 'ray')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_docs_show_the_tested_overrides():
    readme = (ROOT / "judges" / "README.md").read_text(encoding="utf-8")
    shown = VERL_REWARD_LOOP + VERL_070_REWARD_LOOP + VERL_070_GROUPS + VERL_COMPUTE_SCORE + VERL_070_COMPUTE_SCORE
    missing = [line for line in shown if line not in readme]
    assert not missing, f"judges/README.md does not show {missing}"


# -- an installed verl ---------------------------------------------------------------------------------------------
def import_verl():
    return pytest.importorskip("verl", reason="verl is not installed (pip install --no-deps -r requirements/test-verl.txt)")


def verl_070() -> bool:
    """verl 0.7.0 / main up to b178a3cd: load_reward_manager still takes num_examine (the legacy signature)."""
    from verl.trainer.ppo.reward import load_reward_manager

    return "num_examine" in inspect.signature(load_reward_manager).parameters


def verl_config(overrides: list[str]):
    """verl's trainer config (verl/trainer/config/ppo_trainer.yaml) composed by hydra with `overrides`, as
    `python3 -m verl.trainer.main_ppo <overrides>` composes it; then migrated where that verl's main_ppo migrates."""
    verl = import_verl()
    pytest.importorskip("hydra", reason="hydra-core is not installed")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    main_ppo = Path(verl.__file__).parent / "trainer" / "main_ppo.py"
    if "migrate_legacy_reward_impl(config)" in main_ppo.read_text(encoding="utf-8"):  # verl 0.7.1, 0.8
        from verl.experimental.reward_loop import migrate_legacy_reward_impl

        config = migrate_legacy_reward_impl(config)
    return config


def test_real_verl_registries():
    import_verl()
    from verl.experimental.reward_loop import reward_manager as loop_registry
    from verl.utils.import_utils import load_module
    from verl.workers import reward_manager as legacy_registry

    assert rl.register_with_verl() and rl.register_with_verl()  # idempotent
    assert loop_registry.get_reward_manager_cls("judge") is JudgeRewardManager
    assert loop_registry.get_reward_manager_cls("judge_group") is GroupJudgeInRewardLoop
    assert legacy_registry.get_reward_manager_cls("judge_group") is GroupJudgeRewardManager
    assert legacy_registry.get_reward_manager_cls("judge") is JudgeRewardManager
    # verl loads a file path as a second copy of the module: its registration keeps the first, without failing
    copy = load_module(str(ROOT / "judges" / "rl.py"))
    assert copy.JudgeRewardManager is not JudgeRewardManager
    assert loop_registry.get_reward_manager_cls("judge") is JudgeRewardManager


def test_real_verl_registers_when_it_imports_the_module():
    """In a fresh process, as in a verl worker: verl imports judges.rl (custom_reward_function.path=pkg://judges.rl),
    which registers "judge" before verl looks the name up."""
    import_verl()
    code = ("import verl\n"
            "from verl.utils.import_utils import load_extern_object\n"
            "load_extern_object(module_path='pkg://judges.rl', object_name='compute_score')\n"
            "from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
            "import judges.rl\n"
            "assert get_reward_manager_cls('judge') is judges.rl.JudgeRewardManager\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


def test_real_verl_reward_loop_worker(tokenizer, specs, tmp_path):
    """verl's own RewardLoopWorker, built from the documented overrides, scores samples through JudgeRewardManager."""
    import_verl()
    from verl.experimental.reward_loop import reward_loop

    old = verl_070()
    if old:
        rl.register_with_verl()  # what importing judges.rl does in a verl process (test above)
    tokenizer.save_pretrained(tmp_path / "policy")
    config = verl_config((VERL_070_REWARD_LOOP if old else VERL_REWARD_LOOP)
                         + [f"actor_rollout_ref.model.path={tmp_path / 'policy'}"])
    worker_cls = getattr(reward_loop.RewardLoopWorker, "__ray_actor_class__", reward_loop.RewardLoopWorker)
    worker = worker_cls(config, None)
    manager = worker.reward_loop if old else worker.reward_manager
    assert isinstance(manager, JudgeRewardManager) and specs.loads == []

    rows = [*ROWS, dict(ROWS[0], response="FAIL")]  # failure_reward=-1.0 in the overrides
    rewards = [direct_score(row) for row in ROWS] + [-1.0]
    data = verl_batch(tokenizer, rows)
    results = asyncio.run(worker.compute_score_batch(data))  # rows of a rollout batch, data[i : i + 1] each
    assert [r["reward_score"] for r in results] == rewards
    assert [r["reward_extra_info"]["judge_failed"] for r in results] == [0.0] * 6 + [1.0]
    assert specs.loads == [("outputs/bt-smollm2", {})]
    if not old:  # the agent loop's per-trajectory samples, and the rm_scores the reward loop manager assembles
        samples = [agent_loop_sample(tokenizer, row) for row in rows]

        async def agent_loop():  # AgentLoopWorker._compute_score awaits compute_score per trajectory, concurrently
            return await asyncio.gather(*[worker.compute_score(sample) for sample in samples])

        results = asyncio.run(agent_loop())
        assert [r["reward_score"] for r in results] == rewards
        manager_cls = importlib.import_module("verl.trainer.ppo.reward").resolve_reward_manager_cls(config)
        assert manager_cls is JudgeRewardManager
        assert_only_last_tokens(manager_cls.assemble_rm_scores(data, rewards), data, rewards)


def test_real_verl_070_reward_loop_by_import_path(tokenizer, specs, tmp_path, monkeypatch):
    """verl 0.7.0's import-path keys for the reward loop (reward_model.reward_loop_*). Its driver then builds verl's
    naive manager with reward_model.reward_kwargs, which it rejects, so the judge comes from RM_JUDGE here."""
    import_verl()
    if not verl_070():
        pytest.skip("verl >= 0.7.1 names the import path reward.reward_manager.* (test_real_verl_reward_loop_worker)")
    from verl.experimental.reward_loop import reward_loop

    monkeypatch.setenv("RM_JUDGE", "outputs/bt-smollm2")
    tokenizer.save_pretrained(tmp_path / "policy")
    config = verl_config(["reward_model.reward_loop_source=importlib",
                          "reward_model.reward_loop_module_path=pkg://judges.rl",
                          "reward_model.reward_loop_class_name=JudgeRewardManager",
                          f"actor_rollout_ref.model.path={tmp_path / 'policy'}"])
    worker = reward_loop.RewardLoopWorker.__ray_actor_class__(config, None)
    assert isinstance(worker.reward_loop, JudgeRewardManager)
    results = asyncio.run(worker.compute_score_batch(verl_batch(tokenizer, ROWS)))
    assert [r["reward_score"] for r in results] == [direct_score(row) for row in ROWS]
    assert specs.loads == [("outputs/bt-smollm2", {})]


def test_real_verl_naive_manager_with_compute_score(tokenizer, specs, tmp_path):
    """verl's own reward-loop manager ("naive", the default) calling the module-level compute_score per sample."""
    import_verl()
    from verl.experimental.reward_loop import reward_loop

    old = verl_070()
    tokenizer.save_pretrained(tmp_path / "policy")
    config = verl_config((VERL_070_COMPUTE_SCORE if old else VERL_COMPUTE_SCORE)
                         + [f"actor_rollout_ref.model.path={tmp_path / 'policy'}"])
    worker = getattr(reward_loop.RewardLoopWorker, "__ray_actor_class__", reward_loop.RewardLoopWorker)(config, None)
    rows = [dict(ROWS[0], extra_info={"question": ROWS[0]["prompt"]}), ROWS[1], dict(ROWS[2], response="FAIL")]
    manager = worker.reward_loop if old else worker.reward_manager
    assert type(manager).__name__ == "NaiveRewardManager"
    # verl's managers run on the event loop they captured when built (RewardManagerBase.loop), as in a Ray actor
    results = manager.loop.run_until_complete(worker.compute_score_batch(verl_batch(tokenizer, rows)))
    assert [r["reward_score"] for r in results] == [direct_score(rows[0]), direct_score(rows[1]), -1.0]
    assert [r["reward_extra_info"]["judge_failed"] for r in results] == [0.0, 0.0, 1.0]
    assert specs.loads == [("outputs/bt-smollm2", {})]
    judge = next(iter(rl._JUDGES.values()))[0]
    assert judge.calls[0]["prompts"] == [ROWS[0]["prompt"]]  # compute_score reads the prompt from extra_info


def test_real_verl_070_legacy_paths(tokenizer, specs):
    """verl 0.7.0's driver: load_reward_manager + compute_reward, with use_reward_loop=False (groups) and on."""
    import_verl()
    if not verl_070():
        pytest.skip("verl >= 0.7.1 has no batch-level reward path: every reward goes through the reward loop")
    from verl.trainer.ppo.reward import compute_reward, load_reward_manager

    rl.register_with_verl()
    specs.judge_cls = LongerWins
    config = verl_config(VERL_070_GROUPS)
    reward_fn = load_reward_manager(config, tokenizer, num_examine=0, **config.reward_model.get("reward_kwargs", {}))
    assert isinstance(reward_fn, GroupJudgeRewardManager) and reward_fn.group_timeout_s == 300
    data = verl_batch(tokenizer, ROWS)
    reward_tensor, extra = compute_reward(data, reward_fn)
    # win rates within each uid group; u3's one response is ranked against nothing: failure_reward
    assert_only_last_tokens(reward_tensor, data, [0.5, 0.0, 1.0, -1.0, 1.0, 0.0])
    assert list(extra["group_size"]) == [3.0, 2.0, 3.0, 1.0, 2.0, 3.0]

    # the reward loop on (verl's default): the driver builds a JudgeRewardManager that passes rm_scores on
    specs.judge_cls = LenJudge
    config = verl_config(VERL_070_REWARD_LOOP)
    reward_fn = load_reward_manager(config, tokenizer, num_examine=0, **config.reward_model.get("reward_kwargs", {}))
    assert isinstance(reward_fn, JudgeRewardManager) and reward_fn.failure_reward == -1.0
    data, rm_scores = with_rm_scores(tokenizer, ROWS)
    reward_tensor, extra = compute_reward(data, reward_fn)
    assert torch.equal(reward_tensor, rm_scores) and list(extra) == ["acc"]
    assert specs.loads == [("outputs/pair-pm", {})]  # the reward loop's judge was never loaded in the driver


def test_without_verl_registration_raises_import_error():
    if importlib.util.find_spec("verl") is not None:
        pytest.skip("verl is installed")
    with pytest.raises(ImportError, match="verl"):
        rl.register_with_verl()
