"""RL adapters (judges/rl.py), each driven with the data shapes its framework passes.

verl is not installed here: `verl` 0.9 imports ray at `from verl import DataProto` and pins
transformers<5.11 and tensordict<=0.10. The reward-manager tests therefore use DataProtoLike, which mirrors
verl's DataProto layout exactly (batch tensors, numpy object arrays in non_tensor_batch, built the way
verl's collate_fn builds them); when verl is importable, the same tests run on a real DataProto.from_dict.
The reward-loop manager and verl's own entry points (registries, RewardLoopWorker) are in tests/test_verl.py.
TRL is installed: its adapter is also checked inside a real GRPOTrainer step.
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest
import torch

from judges import rl
from judges.base import Judge, prompt_text, split_conversation
from judges.rl import (
    GroupJudgeRewardManager,
    JudgeFailedError,
    make_trl_reward_func,
    make_verl_compute_score,
    openrlhf_conversations,
    openrlhf_get_reward,
    openrlhf_response,
    openrlhf_reward_func,
    score_present,
)

torch.set_num_threads(1)


# -- fake judges ------------------------------------------------------------------------------------------------
class LenJudge(Judge):
    """reward = characters in the response, +100 when the reference occurs in it. A response containing FAIL
    fails (None, counted); one containing STUCK blocks until `release` is set; every call sleeps `delay`."""

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.delay = delay
        self.release = threading.Event()
        self.calls: list[dict] = []  # one per judge call: the prompts, responses and references it got
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0  # concurrent calls, now and at most

    def _score(self, conversations, references):
        prompts, responses = zip(*(split_conversation(c) for c in conversations))
        with self.lock:
            self.calls.append({"prompts": [prompt_text(p) if p else None for p in prompts],
                               "responses": list(responses), "refs": references})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if any("STUCK" in r for r in responses):
                self.release.wait(30)
            time.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        out = []
        for i, (response, ref) in enumerate(zip(responses, references or [None] * len(responses))):
            if "FAIL" in response:
                self.failures.add("scripted failure", i)
                out.append(None)
            else:
                out.append(float(len(response)) + (100.0 if ref and ref in response else 0.0))
        return out


def expected(response: str, ref=None) -> float:
    return float(len(response)) + (100.0 if ref and ref in response else 0.0)


class LongerWins(Judge):
    """Pairwise: P(a beats b) = 1 if a is longer, 0 if shorter, 0.5 on a tie; ranks by win rate."""

    pointwise = False
    default_rank_method = "win_rate"

    def __init__(self):
        super().__init__()
        self.rank_calls: list[tuple] = []

    def _compare(self, items):
        return [1.0 if len(a) > len(b) else 0.0 if len(a) < len(b) else 0.5 for _, a, b in items]

    def rank(self, prompt, responses, method="auto"):
        self.rank_calls.append((prompt, list(responses)))
        return super().rank(prompt, responses, method)


class Broken(Judge):
    def _score(self, conversations, references):
        raise ZeroDivisionError("a bug in the judge")


# -- verl: custom reward function ---------------------------------------------------------------------------------
def test_verl_compute_score_reads_prompt_and_reference():
    judge = LenJudge()
    fn = make_verl_compute_score(judge)
    # verl calls it with keywords (naive manager) after merging reward_kwargs
    out = fn(data_source="gsm8k", solution_str="The answer is 5.", ground_truth="5",
             extra_info={"question": "What is 2 + 3?", "index": 0})
    assert out == {"score": expected("The answer is 5.", "5"), "judge_failed": 0.0}
    assert judge.calls[-1] == {"prompts": ["What is 2 + 3?"], "responses": ["The answer is 5."], "refs": ["5"]}

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert fn("src", "Hello", None, {"prompt": msgs})["score"] == 5.0
    assert judge.calls[-1]["prompts"] == ["System: Be brief.\n\nUser: Hi"]
    assert judge.calls[-1]["refs"] is None  # no ground truth: no references at all

    parquet_msgs = np.array([{"role": "user", "content": "Hi"}], dtype=object)  # how parquet rows come back
    assert fn("src", "Hello", None, {"prompt": parquet_msgs})["score"] == 5.0
    assert judge.calls[-1]["prompts"] == ["Hi"]

    assert fn("src", "Hello there", "x", None)["score"] == 11.0  # no prompt: the response alone
    assert judge.calls[-1]["prompts"] == [None]


def test_verl_compute_score_failure_policy():
    judge = LenJudge()
    with pytest.raises(JudgeFailedError, match="failure_reward"):
        make_verl_compute_score(judge)("src", "FAIL", None, {"question": "q"})
    assert judge.failures.counts["scripted failure"] == 1
    out = make_verl_compute_score(judge, failure_reward=-2.0)("src", "FAIL", None, {"question": "q"})
    assert out == {"score": -2.0, "judge_failed": 1.0}
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            make_verl_compute_score(judge, failure_reward=bad)
    with pytest.raises(TypeError, match="pairwise"):
        make_verl_compute_score(LongerWins())


def test_verl_compute_score_batch_variant():
    fn = make_verl_compute_score(LenJudge(), failure_reward=0.0)
    out = fn.batch(data_sources=np.array(["a", "b"], dtype=object), solution_strs=["x 5", "FAIL"],
                   ground_truths=["5", "7"], extra_infos=[{"question": "q1"}, {"question": "q2"}])
    assert out == [{"score": expected("x 5", "5"), "judge_failed": 0.0}, {"score": 0.0, "judge_failed": 1.0}]


def test_verl_batch_lists_of_unequal_length_are_a_value_error():
    judge = LenJudge()
    fn = make_verl_compute_score(judge)
    with pytest.raises(ValueError, match="3 solution_strs but 1 extra_infos"):
        fn.batch(["d"] * 3, ["a", "b", "c"], [None] * 3, [{"prompt": "Hi"}])
    with pytest.raises(ValueError, match="3 solution_strs but 1 ground_truths"):
        fn.batch(["d"] * 3, ["a", "b", "c"], ["1"], None)
    with pytest.raises(ValueError, match="2 solution_strs but 3 data_sources"):
        fn.batch(np.array(["d"] * 3, dtype=object), ["a", "b"], [None] * 2, None)
    assert judge.calls == []  # refused before the judge ran, never a shorter list of results
    out = fn.batch(["d"] * 2, ["a", "bb"], None, None)  # verl without ground truths or extra_info: one per item
    assert [o["score"] for o in out] == [1.0, 2.0]


def test_rl_adapters_name_a_malformed_item_with_a_value_error():
    judge = LenJudge()
    verl, trl = make_verl_compute_score(judge), make_trl_reward_func(judge)
    cases = [
        (lambda: verl("d", None, None, {"prompt": "Hi"}), r"solution_strs\[0\] must be a string.*NoneType"),
        (lambda: verl("d", 5, None, {"prompt": "Hi"}), r"solution_strs\[0\] must be a string.*int"),
        (lambda: verl.batch(["d"] * 2, ["ok", None], [None] * 2, None), r"solution_strs\[1\] must be a string"),
        (lambda: verl("d", "x", None, {"prompt": 5}), r"extra_infos\[0\]: extra_info\['prompt'\] must be text"),
        (lambda: verl("d", "x", None, {"question": ["a"]}), r"extra_infos\[0\]: extra_info\['question'\]"),
        (lambda: verl("d", "x", None, "Hi"), r"extra_infos\[0\]: extra_info must be a dict"),
        (lambda: verl("d", "a\ud800", None, None), r"solution_strs\[0\] holds a lone surrogate"),
        (lambda: trl(["Hi"], [None]), r"completions\[0\] must be a string or a list of messages, got NoneType"),
        (lambda: trl(["Hi", "Hi"], ["a", 5]), r"completions\[1\] must be a string or a list of messages, got int"),
        (lambda: trl([None], ["a"]), r"prompts\[0\]: a prompt is a string or a list"),
        (lambda: trl(["Hi"], [[[1]]]), r"completions\[0\]: a response is a string or a list of .* messages"),
        (lambda: trl(["Hi"], [[]]), r"completions\[0\]: a judged conversation must end with an assistant"),
        (lambda: trl(["Hi"], ["a\udc00"]), r"completions\[0\] holds a lone surrogate"),
        (lambda: make_trl_reward_func(LongerWins())(["p", "p"], ["a", None]), r"completions\[1\] must be a string"),
        (lambda: openrlhf_get_reward(judge, {"query": ["Q: a\ud800"], "prompts": ["Q: "]}, query_format="messages"),
         r"'query'\[0\] holds a lone surrogate"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert judge.calls == [] and judge.failures.total == 0  # none of it reached the judge or counted as its failure


@pytest.fixture
def loaded(monkeypatch):
    """Module-level entry points load judges through rl._load_judge: count the loads."""
    loads = []

    def fake_load(spec, **kwargs):
        loads.append((spec, kwargs))
        return LenJudge()

    monkeypatch.setattr(rl, "_load_judge", fake_load)
    monkeypatch.setattr(rl, "_JUDGES", {})
    monkeypatch.delenv("RM_JUDGE", raising=False)
    monkeypatch.delenv("RM_FAILURE_REWARD", raising=False)
    return loads


def test_module_compute_score_as_verl_loads_it(loaded, monkeypatch):
    # verl: raw_fn = load_extern_object(path, name); partial(_call_with_kwargs, raw_fn, reward_kwargs)
    def call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):
        return raw_fn(*args, **{**kwargs, **extra_kwargs})

    fn = functools.partial(call_with_kwargs, rl.compute_score, {"judge": "outputs/bt", "judge_kwargs": {"dtype": "bf16"}})
    for _ in range(3):
        out = fn(data_source="s", solution_str="abc", ground_truth="b", extra_info={"question": "q"},
                 reward_router_address=None)  # verl's reward loop may add keywords of its own
        assert out == {"score": 103.0, "judge_failed": 0.0}
    assert loaded == [("outputs/bt", {"dtype": "bf16"})]  # loaded once per process

    with pytest.raises(ValueError, match="RM_JUDGE"):
        rl.compute_score("s", "abc", None, None)
    monkeypatch.setenv("RM_JUDGE", "env/judge")
    monkeypatch.setenv("RM_FAILURE_REWARD", "-3")
    assert rl.compute_score("s", "FAIL", None, None) == {"score": -3.0, "judge_failed": 1.0}
    assert rl.compute_score_batch(["s"], ["abcd"], [None], [None]) == [{"score": 4.0, "judge_failed": 0.0}]
    assert [spec for spec, _ in loaded] == ["outputs/bt", "env/judge"]


# -- verl: group reward manager ----------------------------------------------------------------------------------
class DataProtoLike:
    """verl.DataProto's layout: .batch (tensors sharing batch dim 0), .non_tensor_batch (numpy object arrays
    of length bsz), .meta_info, len(), data[i] -> an item with the same three fields, data[i:j] -> a DataProto of
    those rows; both keep meta_info, as verl's do."""

    def __init__(self, tensors: dict, non_tensors: dict, meta_info: dict | None = None):
        self.batch = tensors
        self.non_tensor_batch = non_tensors
        self.meta_info = {} if meta_info is None else meta_info

    def __len__(self):
        return next(iter(self.batch.values())).shape[0]

    def __getitem__(self, i):
        return DataProtoLike({k: v[i] for k, v in self.batch.items()},
                             {k: v[i] for k, v in self.non_tensor_batch.items()}, self.meta_info)


def _object_array(values):
    return np.fromiter(values, dtype=object, count=len(values))  # as verl's collate_fn builds them


@pytest.fixture(scope="module")
def tokenizer():
    from rm_core.testing import tiny_tokenizer

    return tiny_tokenizer()


def verl_batch(tokenizer, rows, prompt_len=24, resp_len=16, raw_prompt=True):
    """rows: dicts with uid, prompt, response (text; None = no valid token), ground_truth, optional extra_info.
    Prompts are left-padded, responses right-padded and end with EOS, as verl's rollout returns them."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    prompts, responses, masks = [], [], []
    for row in rows:
        p = tokenizer.encode(row["prompt"], add_special_tokens=False)[-prompt_len:]
        r = [] if row["response"] is None else (tokenizer.encode(row["response"], add_special_tokens=False)
                                                 + [eos])[:resp_len]
        prompts.append([pad] * (prompt_len - len(p)) + p)
        responses.append(r + [pad] * (resp_len - len(r)))
        masks.append([0] * (prompt_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (resp_len - len(r)))
    prompts, responses, mask = torch.tensor(prompts), torch.tensor(responses), torch.tensor(masks)
    tensors = {"prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], dim=1),
               "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
    non_tensors = {
        "uid": _object_array([row["uid"] for row in rows]),
        "data_source": _object_array([row.get("data_source", "unit") for row in rows]),
        "reward_model": _object_array([{"ground_truth": row.get("ground_truth"), "style": "rule"} for row in rows]),
        "extra_info": _object_array([dict(row.get("extra_info", {})) for row in rows]),
    }
    if raw_prompt:
        non_tensors["raw_prompt"] = _object_array([[{"role": "user", "content": row["prompt"]}] for row in rows])
    try:
        from verl import DataProto
    except ImportError:
        return DataProtoLike(tensors, non_tensors)
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


ROWS = [  # 3 GRPO groups (uid) of n = 2 or 3 rollouts, interleaved as after a shuffle
    {"uid": "u1", "prompt": "What is 2 + 3?", "response": "The answer is 5.", "ground_truth": "5"},
    {"uid": "u2", "prompt": "Write a poem about the sea.", "response": "the sea", "ground_truth": None},
    {"uid": "u1", "prompt": "What is 2 + 3?", "response": "I cannot help with that request.", "ground_truth": "5"},
    {"uid": "u3", "prompt": "hello world", "response": "hello", "ground_truth": "hello"},
    {"uid": "u2", "prompt": "Write a poem about the sea.", "response": "the quick brown fox", "ground_truth": None},
    {"uid": "u1", "prompt": "What is 2 + 3?", "response": "5", "ground_truth": "5"},
]


def valid_lengths(data):
    prompt_len = data.batch["prompts"].shape[-1]
    return data.batch["attention_mask"][:, prompt_len:].sum(-1).tolist()


def assert_only_last_tokens(reward_tensor, data, rewards):
    """Each row holds its reward at its last valid response token and zero everywhere else."""
    assert reward_tensor.dtype == torch.float32 and reward_tensor.shape == data.batch["responses"].shape
    want = torch.zeros_like(reward_tensor)
    for i, (length, r) in enumerate(zip(valid_lengths(data), rewards)):
        if length:
            want[i, length - 1] = r
    assert torch.equal(reward_tensor, want)
    assert torch.isfinite(reward_tensor).all()


def test_group_manager_rewards_at_last_valid_token(tokenizer):
    judge = LenJudge()
    data = verl_batch(tokenizer, ROWS)
    out = GroupJudgeRewardManager(tokenizer, judge=judge, failure_reward=None)(data, return_dict=True)

    rewards = [expected(r["response"], r["ground_truth"]) for r in ROWS]
    assert_only_last_tokens(out["reward_tensor"], data, rewards)
    assert len(set(valid_lengths(data))) > 1  # the rows really end at different positions
    info = out["reward_extra_info"]
    assert info["score"] == rewards
    assert info["judge_failed"] == info["judge_timeout"] == info["empty_response"] == [0.0] * 6
    assert info["group_size"] == [3.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    u1 = [rewards[0], rewards[2], rewards[5]]
    assert info["group_mean"][0] == info["group_mean"][5] == pytest.approx(sum(u1) / 3)
    assert info["group_std"][2] == pytest.approx(float(np.std(u1)))
    assert all(len(v) == len(ROWS) for v in info.values())

    # one judge call per group, with the whole group, its prompt and its ground truths
    calls = sorted(judge.calls, key=lambda c: c["prompts"][0])
    assert [c["responses"] for c in calls] == [
        ["The answer is 5.", "I cannot help with that request.", "5"], ["the sea", "the quick brown fox"],
        ["hello"]]
    assert calls[0]["prompts"] == ["What is 2 + 3?"] * 3 and calls[0]["refs"] == ["5", "5", "5"]
    assert calls[1]["refs"] is None  # a group without ground truths: no references
    # return_dict=False: the tensor alone
    assert torch.equal(GroupJudgeRewardManager(tokenizer, judge=LenJudge())(data), out["reward_tensor"])


def test_group_manager_prompt_sources(tokenizer):
    rows = [dict(ROWS[0], extra_info={"question": "from extra_info"}), dict(ROWS[1])]
    judge = LenJudge()
    GroupJudgeRewardManager(tokenizer, judge=judge)(verl_batch(tokenizer, rows, raw_prompt=False))
    prompts = sorted(c["prompts"][0] for c in judge.calls)
    # extra_info["question"] first; else the prompt tokens decoded (left padding removed)
    assert prompts == ["Write a poem about the sea.", "from extra_info"]


def test_group_manager_ranks_a_pairwise_judge_within_groups(tokenizer):
    judge = LongerWins()
    data = verl_batch(tokenizer, ROWS)
    out = GroupJudgeRewardManager(tokenizer, judge=judge, failure_reward=-1.0)(data, return_dict=True)
    assert sorted(len(r) for _, r in judge.rank_calls) == [2, 3]  # one rank call per group of two or more
    # win rates within each group: u1 = [mid, longest, shortest], u2 = [shorter, longer]; u3 alone is ranked
    # against nothing (every method a constant, win rate 0.5): a counted failure, not a reward it did not earn
    assert out["reward_extra_info"]["score"] == [0.5, 0.0, 1.0, -1.0, 1.0, 0.0]
    assert out["reward_extra_info"]["judge_failed"] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert judge.failures.counts["a group of one response cannot be ranked"] == 1
    assert_only_last_tokens(out["reward_tensor"], data, [0.5, 0.0, 1.0, -1.0, 1.0, 0.0])


def test_ranking_groups_of_one_response_everywhere_are_refused(tokenizer):
    """verl's validation generates val_kwargs.n responses a prompt, 1 by default, and TRL may hand a process one
    completion of each prompt: a ranking judge would give every one the same constant, a signal of nothing."""
    rows = [dict(ROWS[0]), dict(ROWS[1]), dict(ROWS[3])]  # three uids, one response each
    with pytest.raises(ValueError, match=r"every prompt here has one response \(3 prompts\).*val_kwargs.n"):
        GroupJudgeRewardManager(tokenizer, judge=LongerWins(), failure_reward=-1.0)(verl_batch(tokenizer, rows))
    # a pointwise judge scores each response alone: groups of one are fine
    out = GroupJudgeRewardManager(tokenizer, judge=LenJudge())(verl_batch(tokenizer, rows), return_dict=True)
    assert out["reward_extra_info"]["judge_failed"] == [0.0] * 3
    with pytest.raises(ValueError, match="one response.*num_generations"):
        make_trl_reward_func(LongerWins())(["p1", "p2"], ["a", "abc"])


def test_group_manager_failed_items(tokenizer):
    rows = [dict(ROWS[0]), dict(ROWS[2], response="FAIL here"), dict(ROWS[1]), dict(ROWS[4], response="FAIL")]
    data = verl_batch(tokenizer, rows)
    with pytest.raises(JudgeFailedError, match="2 of 4 items.*failure_reward"):
        GroupJudgeRewardManager(tokenizer, judge=LenJudge())(data)

    judge = LenJudge()
    out = GroupJudgeRewardManager(tokenizer, judge=judge, failure_reward=-1.5)(data, return_dict=True)
    rewards = [expected(ROWS[0]["response"], "5"), -1.5, expected(ROWS[1]["response"]), -1.5]
    assert_only_last_tokens(out["reward_tensor"], data, rewards)  # no NaN / -inf / other sentinel left
    assert out["reward_extra_info"]["judge_failed"] == [0.0, 1.0, 0.0, 1.0]
    assert judge.failures.counts["scripted failure"] == 2
    with pytest.raises(ValueError, match="finite"):
        GroupJudgeRewardManager(tokenizer, judge=judge, failure_reward=float("-inf"))


def test_group_manager_empty_response_gets_no_write(tokenizer):
    rows = [dict(ROWS[0]), dict(ROWS[2], response=None), dict(ROWS[5])]
    judge = LenJudge()
    data = verl_batch(tokenizer, rows)
    assert valid_lengths(data)[1] == 0
    out = GroupJudgeRewardManager(tokenizer, judge=judge)(data, return_dict=True)
    assert torch.all(out["reward_tensor"][1] == 0)  # index -1 (the last padding slot) not written
    assert_only_last_tokens(out["reward_tensor"], data, [expected("The answer is 5.", "5"), 0.0, expected("5", "5")])
    info = out["reward_extra_info"]
    assert info["empty_response"] == [0.0, 1.0, 0.0] and info["judge_failed"] == [0.0, 0.0, 0.0]
    assert info["group_size"] == [2.0, 0.0, 2.0]
    assert judge.calls[0]["responses"] == ["The answer is 5.", "5"]  # the empty one was not judged


def test_group_manager_without_uid_groups_by_prompt(tokenizer):
    data = verl_batch(tokenizer, ROWS)
    del data.non_tensor_batch["uid"]
    judge = LenJudge()
    GroupJudgeRewardManager(tokenizer, judge=judge)(data)
    assert sorted(len(c["responses"]) for c in judge.calls) == [1, 2, 3]


def test_groups_are_judged_concurrently(tokenizer):
    rows = [dict(ROWS[0], uid=f"g{k}") for k in range(4)]  # 4 groups, the judge sleeps 0.3 s per call
    data = verl_batch(tokenizer, rows)
    judge = LenJudge(delay=0.3)
    out = GroupJudgeRewardManager(tokenizer, judge=judge, max_workers=4)(data, return_dict=True)
    assert out["reward_extra_info"]["score"] == [expected(ROWS[0]["response"], "5")] * 4
    # counted, not timed: a wall-clock bound flakes on a loaded CI machine
    assert judge.max_in_flight == 4, f"{judge.max_in_flight} of 4 groups judged at once: not concurrent"

    judge = LenJudge(delay=0.05)
    GroupJudgeRewardManager(tokenizer, judge=judge, max_workers=1)(data)
    assert len(judge.calls) == 4 and judge.max_in_flight == 1  # one worker: one group after another


def test_group_timeout_is_real(tokenizer):
    rows = [dict(ROWS[0]), dict(ROWS[2], response="STUCK forever"), dict(ROWS[1]), dict(ROWS[4])]
    data = verl_batch(tokenizer, rows)
    judge = LenJudge()
    try:
        start = time.monotonic()
        out = GroupJudgeRewardManager(tokenizer, judge=judge, group_timeout_s=0.5, max_workers=1,
                                      failure_reward=-7.0)(data, return_dict=True)
        elapsed = time.monotonic() - start
        # one worker: the stuck group's slot is handed on at its timeout, so u2 is still judged
        assert elapsed < 3.0, f"took {elapsed:.1f}s: waited for the stuck thread"
        info = out["reward_extra_info"]
        assert info["judge_timeout"] == [1.0, 1.0, 0.0, 0.0] and info["judge_failed"] == [1.0, 1.0, 0.0, 0.0]
        rewards = [-7.0, -7.0, expected(ROWS[1]["response"]), expected(ROWS[4]["response"])]
        assert_only_last_tokens(out["reward_tensor"], data, rewards)
        assert judge.failures.counts["group timed out after 0.5s"] == 2

        start = time.monotonic()
        with pytest.raises(JudgeFailedError, match="timed out"):
            GroupJudgeRewardManager(tokenizer, judge=judge, group_timeout_s=0.3)(data)
        assert time.monotonic() - start < 3.0
    finally:
        judge.release.set()  # let the abandoned threads finish


def test_a_model_judge_loaded_by_spec_is_never_called_by_two_groups_at_once(tokenizer, monkeypatch):
    """Its calls hold the judge's shared lock, also after a timeout abandoned a stuck call inside it: the groups
    behind it wait, time out and are flagged, never calling the judge beside it (with 8 workers too)."""
    judge = LenJudge()
    monkeypatch.setattr(rl, "_load_judge", lambda spec, **kw: judge)
    monkeypatch.setattr(rl, "_JUDGES", {})
    rows = [dict(ROWS[0]), dict(ROWS[2], response="STUCK forever"), dict(ROWS[1]), dict(ROWS[4])]
    try:
        out = GroupJudgeRewardManager(tokenizer, judge="outputs/bt", group_timeout_s=0.5, max_workers=8,
                                      failure_reward=-7.0)(verl_batch(tokenizer, rows), return_dict=True)
        assert judge.max_in_flight == 1  # u2 ran before the stuck call, or waited on it (and timed out)
        assert out["reward_extra_info"]["judge_timeout"][:2] == [1.0, 1.0]
    finally:
        judge.release.set()


def test_group_manager_judge_exception_propagates(tokenizer):
    with pytest.raises(ZeroDivisionError):
        GroupJudgeRewardManager(tokenizer, judge=Broken(), failure_reward=0.0)(verl_batch(tokenizer, ROWS))


def test_group_manager_built_like_verl_builds_it(tokenizer, loaded):
    # verl: cls(tokenizer=, num_examine=, compute_score=, reward_fn_key=, **reward_model.reward_kwargs)
    manager = GroupJudgeRewardManager(tokenizer=tokenizer, num_examine=1, compute_score=lambda **kw: 0.0,
                                      reward_fn_key="data_source", judge="outputs/bt", group_timeout_s=60,
                                      max_workers=2, failure_reward=-1)
    assert isinstance(manager.judge, LenJudge) and manager.failure_reward == -1.0
    assert loaded == [("outputs/bt", {})]
    assert manager(verl_batch(tokenizer, ROWS[:2])).shape == (2, 16)


def test_registered_with_verl_when_installed():
    pytest.importorskip("verl", reason="verl is not installed (it needs ray)")
    from verl.workers.reward_manager import get_reward_manager_cls

    assert rl.register_with_verl() and rl.register_with_verl()  # idempotent
    assert get_reward_manager_cls("judge_group") is GroupJudgeRewardManager


def test_matches_verl_naive_manager_when_installed(tokenizer):
    """verl's own per-item manager with our compute_score writes the same tensor as the group manager."""
    pytest.importorskip("verl", reason="verl is not installed (it needs ray)")
    from verl import DataProto
    from verl.workers.reward_manager import NaiveRewardManager

    rows = [dict(r, extra_info={"question": r["prompt"]}) for r in ROWS]
    data = verl_batch(tokenizer, rows)
    assert isinstance(data, DataProto)
    naive = NaiveRewardManager(tokenizer, 0, compute_score=make_verl_compute_score(LenJudge()))
    ours = GroupJudgeRewardManager(tokenizer, judge=LenJudge())
    theirs = naive(verl_batch(tokenizer, rows), return_dict=True)
    assert torch.equal(ours(data), theirs["reward_tensor"])
    assert theirs["reward_extra_info"]["judge_failed"] == [0.0] * len(rows)


# -- TRL --------------------------------------------------------------------------------------------------------
def trl_kwargs(**columns):
    """What GRPOTrainer adds besides prompts/completions: dataset columns, completion_ids and its hooks."""
    logged = {}
    kwargs = {**columns, "completion_ids": [[1, 2]] * len(next(iter(columns.values()))), "trainer_state": object(),
              "log_extra": lambda *a, **k: None, "log_metric": lambda name, value: logged.__setitem__(name, value)}
    return kwargs, logged


def test_trl_reward_func_standard_format():
    judge = LenJudge()
    fn = make_trl_reward_func(judge, name="rm_len", reference_column="ground_truth")
    assert fn.__name__ == "rm_len"
    from trl.trainer.utils import get_callable_name

    assert get_callable_name(fn) == "rm_len"
    prompts = ["What is 2 + 3?", "What is 2 + 3?", "Say hi", "Say hi"]
    completions = [" 5", " The answer is 5.", " hi", " FAIL"]
    kwargs, logged = trl_kwargs(ground_truth=["5", "5", "hi", "hi"], id=[0, 0, 1, 1])
    out = fn(prompts=prompts, completions=completions, **kwargs)
    assert out == [expected(" 5", "5"), expected(" The answer is 5.", "5"), expected(" hi", "hi"), None]
    assert logged == {"rm_len/judge_failed": 0.25}
    assert judge.calls[0]["prompts"] == prompts and judge.calls[0]["refs"] == ["5", "5", "hi", "hi"]

    with pytest.raises(KeyError, match=r"'answer'.*\['ground_truth', 'id'\]"):
        make_trl_reward_func(judge, reference_column="answer")(prompts=prompts, completions=completions, **kwargs)
    assert make_trl_reward_func(judge).__name__ == "LenJudge"


def test_trl_reward_func_conversational_format():
    judge = LenJudge()
    fn = make_trl_reward_func(judge)
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]] * 2
    completions = [[{"role": "assistant", "content": "5"}], [{"role": "assistant", "content": "It is 5."}]]
    assert fn(prompts, completions, trainer_state=None) == [1.0, 8.0]  # no reference_column: no references
    assert judge.calls[0]["prompts"] == ["System: Be brief.\n\nUser: What is 2 + 3?"] * 2
    assert judge.calls[0]["refs"] is None


def test_trl_reward_func_pairwise_ranks_each_prompts_completions():
    judge = LongerWins()
    fn = make_trl_reward_func(judge, name="pairwise")
    prompts = ["p1", "p1", "p2", "p2"]  # GRPO: each prompt repeated num_generations times
    assert fn(prompts, ["a", "abc", "xyz", "x"]) == [0.0, 1.0, 1.0, 0.0]
    assert judge.rank_calls == [("p1", ["a", "abc"]), ("p2", ["xyz", "x"])]


def test_trl_conversational_completions_reach_a_ranking_judge_as_their_text():
    """TRL's conversational completions are one assistant message each: ranked as their content (they reached the
    judge as "Assistant: aaaa"), and a reference column with a ranking judge is refused, never dropped."""
    judge = LongerWins()
    fn = make_trl_reward_func(judge)
    prompts = [[{"role": "user", "content": "p"}]] * 2
    completions = [[{"role": "assistant", "content": "aaaa"}], [{"role": "assistant", "content": "b"}]]
    assert fn(prompts, completions) == [1.0, 0.0]
    assert judge.rank_calls[-1][1] == ["aaaa", "b"]
    kwargs, _ = trl_kwargs(answer=["4", "4"])
    with pytest.raises(ValueError, match="takes no references"):
        make_trl_reward_func(judge, reference_column="answer")(prompts, completions, **kwargs)


def test_trl_grpo_trainer_uses_the_reward_func(tmp_path):
    """A real GRPOTrainer step on a tiny random causal LM, with the judge as its only reward (~10 s on CPU)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "policy")
    judge = LenJudge()
    seen = []
    inner = make_trl_reward_func(judge, name="judge_len", reference_column="ground_truth")

    def judge_len(prompts, completions, **kwargs):
        seen.append((list(prompts), list(completions), list(kwargs["ground_truth"])))
        return inner(prompts, completions, **kwargs)

    data = Dataset.from_dict({"prompt": ["What is 2 + 3?", "Say hello", "Name a colour", "Count to 3"],
                              "ground_truth": ["5", "hello", "red", "3"]})
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_completion_length=8, num_generations=2,
                      per_device_train_batch_size=2, max_steps=1, logging_steps=1, report_to="none", use_cpu=True,
                      bf16=False, save_strategy="no")
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=judge_len, args=args,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(path))
    trainer.train()

    assert seen, "the reward function was never called"
    prompts, completions, refs = seen[0]
    assert len(prompts) == len(completions) == len(refs) == 2
    assert prompts[0] == prompts[1] and all(isinstance(c, str) for c in completions)  # one group, standard format
    log = next(entry for entry in trainer.state.log_history if "rewards/judge_len/mean" in entry)
    assert log["rewards/judge_len/mean"] == pytest.approx(
        np.mean([expected(c, r) for c, r in zip(completions, refs) if "FAIL" not in c]))
    assert log["judge_len/judge_failed"] == 0.0  # the adapter's own metric, through TRL's log_metric
    assert judge.calls and judge.calls[0]["responses"] == completions


# -- OpenRLHF ---------------------------------------------------------------------------------------------------
def chatml(user: str) -> str:
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def test_openrlhf_get_reward():
    judge = LenJudge()
    prompts = [chatml("What is 2 + 3?"), chatml("Say hi")]
    payload = {"query": [prompts[0] + "The answer is 5.<|im_end|>", prompts[1] + "hi there<|im_end|>\n"],
               "prompts": prompts, "labels": ["5", None], "metas": [{}, {}]}
    out = openrlhf_get_reward(judge, payload)
    assert out == {"rewards": [expected("The answer is 5.", "5"), 8.0],
                   "scores": [expected("The answer is 5.", "5"), 8.0], "extra_logs": {"judge_failed": [0.0, 0.0]}}
    # the templated prompt is the user message as it is; the response has its end-of-turn marker removed
    assert judge.calls[0]["prompts"] == prompts and judge.calls[0]["responses"] == ["The answer is 5.", "hi there"]
    assert judge.calls[0]["refs"] == ["5", None]

    # left padding decoded in front of the prompt is removed; parse_prompt may recover the messages
    payload = {"query": ["<|im_end|><|im_end|>" + prompts[1] + "yo"], "prompts": [prompts[1]]}
    out = openrlhf_get_reward(judge, payload, parse_prompt=lambda p: "Say hi")
    assert out["rewards"] == [2.0] and judge.calls[-1]["prompts"] == ["Say hi"] and judge.calls[-1]["refs"] is None
    assert openrlhf_get_reward(judge, {"query": [], "prompts": [], "labels": []})["rewards"] == []


def test_openrlhf_empty_labels_are_no_reference():
    """OpenRLHF without --data.label_key sends "" as every label: the judge gets no references, not empty ones."""
    judge = LenJudge()
    prompts = [chatml("Say hi"), chatml("What is 2 + 3?")]
    queries = [prompts[0] + "hi there<|im_end|>\n", prompts[1] + "The answer is 5.<|im_end|>"]
    openrlhf_get_reward(judge, {"query": queries, "prompts": prompts, "labels": ["", ""]})
    assert judge.calls[-1]["refs"] is None
    openrlhf_get_reward(judge, {"query": queries, "prompts": prompts, "labels": [" ", "5"]})
    assert judge.calls[-1]["refs"] == [None, "5"]


def test_openrlhf_failures():
    judge = LenJudge()
    payload = {"query": ["Q1 answer", "something else", "Q3 FAIL"], "prompts": ["Q1 ", "Q2 ", "Q3 "],
               "labels": [None] * 3}
    with pytest.raises(JudgeFailedError, match="2 of 3 items"):
        openrlhf_get_reward(judge, payload)
    assert judge.failures.counts["query does not start with its prompt"] == 1
    out = openrlhf_get_reward(judge, payload, failure_reward=-1.0)
    assert out["rewards"] == [6.0, -1.0, -1.0] and out["extra_logs"]["judge_failed"] == [0.0, 1.0, 1.0]
    assert judge.calls[-1]["responses"] == ["answer", "FAIL"]  # the unsplittable query never reached the judge
    with pytest.raises(TypeError, match="pairwise"):
        openrlhf_get_reward(LongerWins(), payload)


@pytest.mark.parametrize("payload, message", [
    ({"prompts": ["p"], "labels": [None]}, "no 'query'"),
    ({"query": "p r", "prompts": ["p"]}, "'query' must be a list of strings"),
    ({"query": ["p r"]}, "no 'prompts'"),
    ({"query": ["p r", "p s"], "prompts": ["p"]}, "2 queries but 1 prompts"),
    ({"query": ["p r"], "prompts": ["p"], "labels": ["a", "b"]}, "'labels' is not a list of the same length"),
    (["p r"], "must be a JSON object"),
])
def test_openrlhf_payload_validation(payload, message):
    with pytest.raises(ValueError, match=message):
        openrlhf_get_reward(LenJudge(), payload)


def test_openrlhf_building_blocks_for_the_server():
    # what an async server does: split, score the splittable items (batched its own way), answer
    judge = LenJudge()
    convs, refs = openrlhf_conversations({"query": ["p1 abc", "zz"], "prompts": ["p1 ", "p2 "], "labels": ["a", "b"]},
                                         judge.failures)
    assert convs[1] is None and refs == ["a", "b"]
    scores = score_present(judge.score, convs, refs)
    assert scores == [103.0, None] and judge.calls[-1]["refs"] == ["a"]
    assert openrlhf_response(scores, failure_reward=0.0)["rewards"] == [103.0, 0.0]
    with pytest.raises(JudgeFailedError):
        openrlhf_response(scores)


def test_openrlhf_reward_func_file_mode(loaded, monkeypatch):
    # OpenRLHF imports the file and calls reward_func(queries, prompts, labels) -> tensors
    fn = openrlhf_reward_func(LenJudge(), failure_reward=-1.0)
    out = fn(["Q: hi<|im_end|>", "Q: FAIL"], ["Q: ", "Q: "], [None, None])
    assert torch.equal(out["rewards"], torch.tensor([2.0, -1.0])) and torch.equal(out["scores"], out["rewards"])
    assert torch.equal(out["extra_logs"]["judge_failed"], torch.tensor([0.0, 1.0]))

    monkeypatch.setenv("RM_JUDGE", "outputs/bt")
    with pytest.raises(JudgeFailedError, match="RM_FAILURE_REWARD"):
        rl.reward_func(["Q: FAIL"], ["Q: "], ["x"])
    monkeypatch.setenv("RM_FAILURE_REWARD", "-4")
    assert rl.reward_func(["Q: FAIL", "Q: x"], ["Q: ", "Q: "], ["x", "x"])["rewards"].tolist() == [-4.0, 101.0]
    assert loaded == [("outputs/bt", {})]


def test_a_trl_that_sums_a_failed_judgement_as_zero_is_refused():
    from judges.rl import check_trl_masks_failures

    with pytest.raises(RuntimeError, match="trl 1.5.1 turns a failed judgement"):
        check_trl_masks_failures("1.5.1")
    check_trl_masks_failures("1.6.0")
    check_trl_masks_failures()  # the locked one
