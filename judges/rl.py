"""Judges as RL rewards: adapters for verl, TRL and OpenRLHF.

    verl, reward loop (default)    JudgeRewardManager: verl's per-sample reward-loop manager (`run_single`),
                                   registered as "judge", or by import path pkg://judges.rl; pointwise judges;
                                   concurrent samples are batched into one judge call, off the event loop
    verl, one response at a time   make_verl_compute_score(judge) / module-level `compute_score`
                                   (reward.custom_reward_function.path=pkg://judges.rl, name=compute_score)
    verl, batched                  module-level `compute_score_batch` for verl's legacy "batch" reward manager
    verl, GRPO groups (legacy)     GroupJudgeRewardManager ("judge_group"): the n responses of one prompt (one
                                   `uid`) judged in ONE call (pairwise/listwise ranking within the group);
                                   only where verl still calls batch-level managers: reward_model.use_reward_loop
                                   =False, verl <= 0.7.0. From verl 0.7.1 on, every reward goes through the
                                   reward loop, which sees one sample at a time.
    TRL                            make_trl_reward_func(judge) -> a `reward_funcs` entry for GRPOTrainer & co.
    OpenRLHF                       openrlhf_get_reward(judge, payload) for the remote RM (POST /get_reward);
                                   openrlhf_reward_func(judge) / module-level `reward_func` for --reward.remote_url
                                   pointing at a .py file

Failure policy. A judge returns None for an item it could not score (see judges/base.py); a group that
times out fails all its items. verl and OpenRLHF need a number for every item, and a silent default would
be trained on as if it were a real score. So:
- `failure_reward=None` (the default): a failed item raises JudgeFailedError, naming what failed.
- `failure_reward=<float>`: the item gets exactly that reward and is flagged (`judge_failed` = 1.0 in verl's
  reward_extra_info / OpenRLHF's extra_logs), so its rate shows up in the training logs.
- TRL needs neither: its reward functions may return None, which GRPOTrainer turns into NaN and leaves out
  of the weighted sum; the TRL adapter returns None for failed items and logs their fraction.
An exception raised inside a judge is a bug, not a failed item: it propagates.

Configuration of the module-level functions, which frameworks load by file path: keyword arguments
(verl's reward.custom_reward_function.reward_kwargs) `judge` (a `judges.load` spec: checkpoint folder, Hub id,
"llm:..." or "openai:..."), `failure_reward`, `judge_kwargs`; otherwise the environment variables RM_JUDGE
and RM_FAILURE_REWARD. verl's reward managers read the same options from verl's reward_kwargs
(reward.reward_kwargs in verl >= 0.7.1, reward_model.reward_kwargs before). The judge is loaded once per
process and its calls are serialised by a lock (model judges are not thread-safe; OpenRLHF calls reward
functions from several threads).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import os
import queue
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from judges.base import (
    Conversation,
    FailureLog,
    Judge,
    Prompt,
    as_messages,
    check_text,
    conversation,
    reply_text,
)

# End-of-turn / padding markers that a decode with skip_special_tokens=False leaves around a response.
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "</s>", "<eos>",
               "<|end|>", "<pad>", "<|pad|>")
VERL_PROMPT_KEYS = ("prompt", "question")  # where verl datasets keep the question in extra_info


class JudgeFailedError(RuntimeError):
    """The judge failed on some items and no `failure_reward` says what reward they get."""


def check_failure_reward(failure_reward: float | None) -> float | None:
    if failure_reward is None:
        return None
    value = float(failure_reward)
    if not math.isfinite(value):  # NaN / inf would be a sentinel hidden inside the reward tensor
        raise ValueError(f"failure_reward must be a finite number or None, got {failure_reward!r}")
    return value


def _failed_error(n_failed: int, n: int, what: str, judge: Judge | None = None) -> JudgeFailedError:
    log = f"; judge {judge.failures}" if judge is not None else ""
    return JudgeFailedError(
        f"the judge failed on {n_failed} of {n} items ({what}){log}. No failure_reward is set: pass "
        f"failure_reward=<float> (or RM_FAILURE_REWARD) to give failed items that reward, flagged as judge_failed")


def judge_items(judge: Judge, prompt: Prompt, responses: Sequence[str | list], references: Sequence | None = None,
                rank_method: str = "auto") -> list[float | None]:
    """Scores of the responses to ONE prompt, in one judge call: `judge.score` for a pointwise judge (with the
    references), `judge.rank` over the whole group for a pairwise one or when `rank_method` is not "auto" (which
    takes no references: given any, a ValueError, never a score made without them). A response given as messages
    (TRL's conversational completions) is its reply's text when it is one assistant message."""
    refs = None if references is None or all(r is None for r in references) else list(references)
    if judge.pointwise and rank_method == "auto":
        return judge.score([conversation(prompt, r) for r in responses], refs)
    if refs is not None:
        raise ValueError(f"{type(judge).__name__} ranks a group (rank_method {rank_method!r}), which takes no "
                         "references: a reference-based judge must score pointwise (rank_method 'auto')")
    if len(responses) == 1:  # ranked against nothing: every method gives a constant (win rate 0.5), no judgement
        judge.failures.add(SINGLE_RESPONSE, "a group of one")
        return [None]
    # one reply as its text (never "Assistant: ..."), a continuation of several turns labelled
    return judge.rank(prompt, [reply_text(r) for r in responses],
                      rank_method)


SINGLE_RESPONSE = "a group of one response cannot be ranked"


def check_groups_rankable(sizes: Sequence[int], judge: Judge, fix: str) -> None:
    """A ValueError when every group of a ranking call holds one response: its rewards would all be one constant
    (a win rate of 0.5 against nothing), a signal of nothing. `fix`: how the caller's framework gets groups."""
    if sizes and max(sizes) == 1:
        raise ValueError(f"{type(judge).__name__} ranks each prompt's responses against each other, but every prompt "
                         f"here has one response ({len(sizes)} prompts): its rewards would all be the same constant. "
                         f"{fix}; or use a pointwise judge")


# -- judges loaded by spec, for the module-level entry points ---------------------------------------------------
_JUDGES: dict[tuple, tuple[Judge, threading.Lock]] = {}
_JUDGES_LOCK = threading.Lock()


def _load_judge(spec: str, **kwargs) -> Judge:
    import judges  # lazy: keeps this module importable (and cheap) inside a framework's worker

    return judges.load(spec, **kwargs)


def cached_judge(spec: str | None = None, judge_kwargs: dict | None = None) -> tuple[Judge, threading.Lock]:
    """(judge, its lock), loaded once per process from `spec` or RM_JUDGE."""
    spec = spec or os.environ.get("RM_JUDGE")
    if not spec:
        raise ValueError("no judge configured: pass judge=<checkpoint, Hub id or llm:/openai: spec> (verl: "
                         "reward.custom_reward_function.reward_kwargs.judge) or set RM_JUDGE")
    key = (spec, json.dumps(judge_kwargs or {}, sort_keys=True, default=str))
    with _JUDGES_LOCK:
        if key not in _JUDGES:
            _JUDGES[key] = (_load_judge(spec, **(judge_kwargs or {})), threading.Lock())
        return _JUDGES[key]


def _env_failure_reward(failure_reward: float | str | None) -> float | None:
    if failure_reward is None and os.environ.get("RM_FAILURE_REWARD", "") != "":
        failure_reward = os.environ["RM_FAILURE_REWARD"]
    return check_failure_reward(failure_reward)


# -- verl: custom reward function ---------------------------------------------------------------------------------
def verl_prompt(extra_info: dict | None) -> Prompt | None:
    """The prompt verl's dataset left in extra_info: "prompt" (text or messages), else "question"; else None.
    ValueError when extra_info is not a dict, or its prompt is neither text nor a list of messages."""
    if extra_info is not None and not hasattr(extra_info, "get"):
        raise ValueError(f"extra_info must be a dict (or None), got {type(extra_info).__name__}")
    for key in VERL_PROMPT_KEYS:
        value = (extra_info or {}).get(key)
        if isinstance(value, str):
            if value:
                return value
        elif value is not None:
            if not hasattr(value, "__len__") or isinstance(value, (bytes, dict)):
                raise ValueError(f"extra_info[{key!r}] must be text or a list of messages, got "
                                 f"{type(value).__name__} {value!r:.100}")
            if len(value):  # messages: a list, or a numpy array when read from parquet
                try:
                    return as_messages(list(value))
                except TypeError as exc:
                    raise ValueError(f"extra_info[{key!r}]: {exc}") from None
    return None


def make_verl_compute_score(judge: Judge, failure_reward: float | None = None,
                            lock: threading.Lock | None = None) -> Callable[..., dict]:
    """verl's `compute_score(data_source, solution_str, ground_truth, extra_info=None) -> dict` over a
    pointwise judge. Returns {"score": reward, "judge_failed": 0.0 | 1.0} (verl logs every key).

    The prompt comes from extra_info["prompt"] or extra_info["question"] (put it there in your data
    preprocessing); without one, the response is judged alone, as a conversation of one assistant message.
    ground_truth is passed to the judge as the reference (judges that do not use references ignore it).
    Malformed input is a ValueError naming the item, before the judge runs: `.batch` lists (data_sources,
    ground_truths, extra_infos) whose length differs from solution_strs', a response that is not a string, an
    extra_info prompt that is neither text nor messages, text holding a lone surrogate.
    """
    if not judge.pointwise:
        raise TypeError(f"{type(judge).__name__} is a pairwise judge: it cannot score one response alone; use "
                        "GroupJudgeRewardManager, which ranks the responses of a prompt together (verl <= 0.7.0 "
                        "with reward_model.use_reward_loop=False)")
    failure_reward = check_failure_reward(failure_reward)
    lock = lock or threading.Lock()

    def compute_score(data_source: str | None, solution_str: str, ground_truth: Any = None,
                      extra_info: dict | None = None, **_: Any) -> dict:
        return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]

    def compute_score_batch(data_sources: Sequence, solution_strs: Sequence[str], ground_truths: Sequence,
                            extra_infos: Sequence[dict | None] | None = None, **_: Any) -> list[dict]:
        solution_strs = list(solution_strs)
        extra_infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
        ground_truths = list(ground_truths) if ground_truths is not None else [None] * len(solution_strs)
        for what, values in (("data_sources", data_sources), ("ground_truths", ground_truths),
                             ("extra_infos", extra_infos)):
            if values is not None and len(values) != len(solution_strs):
                raise ValueError(f"{len(solution_strs)} solution_strs but {len(values)} {what}: they must have "
                                 "equal lengths")
        convs = []
        for i, (response, extra_info) in enumerate(zip(solution_strs, extra_infos)):
            if not isinstance(response, str):
                raise ValueError(f"solution_strs[{i}] must be a string (the decoded response), got "
                                 f"{type(response).__name__} {response!r:.100}")
            check_text(response, f"solution_strs[{i}]")
            try:
                prompt = verl_prompt(extra_info)
            except ValueError as exc:
                raise ValueError(f"extra_infos[{i}]: {exc}") from None
            check_text(prompt, f"extra_infos[{i}] prompt")
            convs.append(conversation(prompt, response) if prompt is not None
                         else [{"role": "assistant", "content": response}])
        refs = None if all(g is None for g in ground_truths) else ground_truths
        with lock:
            scores = judge.score(convs, refs)
        failed = sum(s is None for s in scores)
        if failed and failure_reward is None:
            raise _failed_error(failed, len(scores), "verl compute_score", judge)
        return [{"score": failure_reward if s is None else s, "judge_failed": float(s is None)} for s in scores]

    compute_score.batch = compute_score_batch  # the same judge, for verl's "batch" reward manager
    return compute_score


def _verl_scorer(judge: str | None, failure_reward, judge_kwargs: dict | None) -> Callable[..., dict]:
    j, lock = cached_judge(judge, judge_kwargs)
    return make_verl_compute_score(j, _env_failure_reward(failure_reward), lock)


def compute_score(data_source: str | None, solution_str: str, ground_truth: Any = None,
                  extra_info: dict | None = None, judge: str | None = None, failure_reward: float | None = None,
                  judge_kwargs: dict | None = None, **_: Any) -> dict:
    """verl custom reward function (custom_reward_function.path=pkg://judges.rl, name=compute_score; under verl
    >= 0.7.1 the keys are reward.custom_reward_function.*); the judge comes from reward_kwargs `judge` or
    RM_JUDGE, loaded once per process. See make_verl_compute_score. Other keyword arguments verl may add (e.g.
    its reward loop's reward_router_address) are ignored."""
    return _verl_scorer(judge, failure_reward, judge_kwargs)(data_source, solution_str, ground_truth, extra_info)


def compute_score_batch(data_sources: Sequence, solution_strs: Sequence[str], ground_truths: Sequence,
                        extra_infos: Sequence[dict | None] | None = None, judge: str | None = None,
                        failure_reward: float | None = None, judge_kwargs: dict | None = None,
                        **_: Any) -> list[dict]:
    """The same for verl's legacy "batch" reward manager (verl <= 0.7.0 with reward_model.use_reward_loop=False,
    reward_model.reward_manager=batch, custom_reward_function.name=compute_score_batch)."""
    return _verl_scorer(judge, failure_reward, judge_kwargs).batch(data_sources, solution_strs, ground_truths,
                                                                   extra_infos)


# -- verl: group-aware reward manager ---------------------------------------------------------------------------
class _GroupTimeout(Exception):
    pass


def run_with_timeouts(tasks: Sequence[Callable[[], Any]], timeout_s: float | None, max_workers: int) -> list:
    """Run tasks on at most `max_workers` daemon threads; a task's clock starts when it starts. Returns each
    result, or a _GroupTimeout for a task still running after `timeout_s`: it is abandoned (a Python thread
    cannot be killed) and its slot given to the next task, so one stuck call cannot stall the others or the
    caller. The first exception raised by a task is re-raised. Daemon threads: a stuck one never blocks exit."""
    results: list = [None] * len(tasks)
    done: queue.Queue = queue.Queue()  # local to this call: a late result from an abandoned task is ignored

    def work(i: int) -> None:
        try:
            done.put((i, True, tasks[i]()))
        except BaseException as exc:
            done.put((i, False, exc))

    running: dict[int, float] = {}  # task -> deadline
    next_task = 0
    while next_task < len(tasks) or running:
        while next_task < len(tasks) and len(running) < max(1, max_workers):
            threading.Thread(target=work, args=(next_task,), daemon=True, name=f"judge-group-{next_task}").start()
            running[next_task] = math.inf if timeout_s is None else time.monotonic() + timeout_s
            next_task += 1
        wait = min(running.values()) - time.monotonic()
        try:
            i, ok, value = done.get(timeout=None if math.isinf(wait) else max(wait, 0.0))
        except queue.Empty:
            pass
        else:
            if running.pop(i, None) is not None:
                if not ok:
                    raise value
                results[i] = value
        now = time.monotonic()
        for i, deadline in list(running.items()):
            if deadline <= now:
                del running[i]
                results[i] = _GroupTimeout()
    return results


class GroupJudgeRewardManager:
    """A verl reward manager for GRPO-style rollouts: the responses sharing a `uid` (the n rollouts of one
    prompt) are judged in ONE judge call, so a pairwise/listwise judge ranks them against each other;
    groups are judged concurrently, each under a real timeout.

    A batch-level (legacy) verl reward manager: verl calls it as reward_fn(batch, return_dict=True) only with
    reward_model.use_reward_loop=False, in verl <= 0.7.0 (and main before the reward refactor; mirror commit
    b178a3cd). verl's reward loop, the default there and the only path from verl 0.7.1 on, scores one sample
    per call and cannot hand a manager a group: there, use JudgeRewardManager with a pointwise judge.
    Select it by name, reward_model.use_reward_loop=False reward_model.reward_manager=judge_group (registered
    when this module is loaded in a process that has imported verl: also set custom_reward_function.path=
    pkg://judges.rl, name=compute_score, which verl loads before it looks the name up), or by import path
    (reward_manager.source=importlib, reward_manager.module.path=pkg://judges.rl,
    reward_manager.name=GroupJudgeRewardManager). Options come from reward_model.reward_kwargs (add them with
    +reward_model.reward_kwargs.judge=...): judge (a spec; default RM_JUDGE), judge_kwargs, group_timeout_s,
    max_workers, failure_reward, rank_method. verl's `compute_score` is ignored: the judge is the reward.
    A batch that already holds "rm_scores" is passed through as verl's own managers pass it (the judge is
    not called).

    What it reads from the DataProto: batch "prompts" (left-padded), "responses" (right-padded),
    "attention_mask" (prompt + response); non_tensor_batch "uid" (groups; without it, items are grouped by
    prompt text), "reward_model"[i]["ground_truth"] (the judge's reference), the prompt from "raw_prompt"
    (messages), else extra_info "prompt"/"question", else the prompt tokens decoded without special tokens.

    What it writes: a float32 tensor shaped like "responses", zero except the item's reward at its last
    valid response token (valid length = attention_mask[i, prompt_len:].sum()). A response with no valid
    token has nowhere to carry a reward: it is not judged, its row stays zero (GRPO counts it as reward 0 in
    its group's statistics; the row has no token to train) and it is flagged `empty_response`.
    reward_extra_info (lists, one value per item): score, judge_failed, judge_timeout, empty_response,
    group_size, group_mean, group_std (over the rewards written in the item's group).

    Concurrency helps judges that wait on I/O (API LLM judges, `openai:` specs, whose groups run concurrently);
    a model judge loaded from a spec is not thread-safe, so its calls hold the judge's shared lock (the one
    compute_score and the reward-loop manager take): groups run one after another, each still one batched call
    under its timeout, and a group whose clock runs out while an abandoned call still holds the lock times out
    too, never calling the judge beside it. A Judge object passed in is called as given (its concurrency is the
    caller's). A timed-out group's thread is abandoned, not killed.
    """

    def __init__(self, tokenizer, num_examine: int = 0, compute_score: Callable | None = None,
                 reward_fn_key: str = "data_source", judge: Judge | str | None = None,
                 judge_kwargs: dict | None = None, group_timeout_s: float | None = 300.0, max_workers: int = 8,
                 failure_reward: float | None = None, rank_method: str = "auto"):
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.reward_fn_key = reward_fn_key
        if isinstance(judge, Judge):
            self.judge, self._lock = judge, None  # the caller's own judge: its concurrency is the caller's
        else:
            self.judge, lock = cached_judge(judge, judge_kwargs)
            spec = judge or os.environ.get("RM_JUDGE", "")
            # a model judge is not thread-safe: every call holds the shared lock (the one compute_score and the
            # reward-loop manager take), also after a timeout abandoned a call still inside it; an API judge
            # (openai:) runs its groups concurrently
            self._lock = None if str(spec).startswith("openai:") else lock
        if group_timeout_s is not None and group_timeout_s <= 0:
            raise ValueError(f"group_timeout_s must be positive or None, got {group_timeout_s}")
        self.group_timeout_s = group_timeout_s
        self.max_workers = max_workers
        self.failure_reward = _env_failure_reward(failure_reward)
        self.rank_method = rank_method
        self.timeouts = 0  # groups timed out so far

    def __call__(self, data, return_dict: bool = False):
        passed = verl_rm_scores(data, return_dict)
        if passed is not None:  # rewards already computed (verl's reward loop / a reward model): not judged again
            return passed
        n = len(data)
        ntb = data.non_tensor_batch
        samples = [verl_sample(self.tokenizer, data[i]) for i in range(n)]  # (prompt, response, reference, length)
        prompts, responses, refs, valid_lens = ([s[k] for s in samples] for k in range(4))
        keys = list(ntb["uid"]) if "uid" in ntb else [json.dumps(p, sort_keys=True) for p in prompts]

        groups: dict[Any, list[int]] = defaultdict(list)  # uid -> items with a token to carry the reward
        for i in range(n):
            if valid_lens[i] > 0:
                groups[keys[i]].append(i)
        group_items = list(groups.values())
        # verl gives every sample a ground truth: a ranking judge (no references) ranks without it, as documented
        ranked = not (self.judge.pointwise and self.rank_method == "auto")
        if ranked:  # verl's validation generates val_kwargs.n responses a prompt: 1 unless set
            check_groups_rankable(list(Counter(keys).values()), self.judge,
                                  "Generate n >= 2 responses a prompt (actor_rollout_ref.rollout.n, and for "
                                  "validation actor_rollout_ref.rollout.val_kwargs.n, which is 1 by default; or "
                                  "trainer.val_before_train=False trainer.test_freq=-1)")

        def task(items: list[int]) -> Callable[[], list]:

            def run() -> list | _GroupTimeout:
                wait = -1 if self.group_timeout_s is None else self.group_timeout_s
                if self._lock is not None and not self._lock.acquire(timeout=wait):
                    return _GroupTimeout()  # the judge stayed busy (an abandoned call) for the whole clock
                try:
                    return judge_items(self.judge, prompts[items[0]], [responses[i] for i in items],
                                       None if ranked else [refs[i] for i in items], self.rank_method)
                finally:
                    if self._lock is not None:
                        self._lock.release()
            return run

        # a locked (model) judge runs one group at a time: more workers would only start clocks behind the lock
        outcomes = run_with_timeouts([task(items) for items in group_items], self.group_timeout_s,
                                     1 if self._lock is not None else self.max_workers)

        scores: list[float | None] = [None] * n
        timed_out = [False] * n
        for items, outcome in zip(group_items, outcomes):
            if isinstance(outcome, _GroupTimeout):
                self.timeouts += 1
                for i in items:
                    timed_out[i] = True
                    self.judge.failures.add(f"group timed out after {self.group_timeout_s}s", f"uid={keys[i]}")
                continue
            for i, s in zip(items, outcome):
                scores[i] = s

        failed = [valid_lens[i] > 0 and scores[i] is None for i in range(n)]
        if any(failed) and self.failure_reward is None:
            raise _failed_error(sum(failed), n, f"{sum(timed_out)} in groups that timed out", self.judge)

        rewards = [(self.failure_reward if failed[i] else float(scores[i])) if valid_lens[i] > 0 else 0.0
                   for i in range(n)]
        reward_tensor = verl_reward_tensor(data, rewards)  # outcome reward at each row's last valid token

        info: dict[str, list] = {"score": rewards, "judge_failed": [float(f) for f in failed],
                                 "judge_timeout": [float(t) for t in timed_out],
                                 "empty_response": [float(v == 0) for v in valid_lens],
                                 "group_size": [0.0] * n, "group_mean": [0.0] * n, "group_std": [0.0] * n}
        for items in group_items:
            values = [rewards[i] for i in items]
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            for i in items:
                info["group_size"][i], info["group_mean"][i], info["group_std"][i] = float(len(items)), mean, std

        self._examine(ntb, prompts, responses, refs, info)
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": info}
        return reward_tensor

    def _examine(self, ntb, prompts, responses, refs, info) -> None:
        sources = ntb.get(self.reward_fn_key)
        printed: dict = defaultdict(int)
        for i in range(len(responses)):
            source = sources[i] if sources is not None else None
            if printed[source] < self.num_examine:
                printed[source] += 1
                print("[prompt]", prompts[i], "\n[response]", responses[i], "\n[ground_truth]", refs[i],
                      "\n[score]", info["score"][i], "[judge_failed]", info["judge_failed"][i])


# -- verl: reward-loop manager (one sample per call) ---------------------------------------------------------------
JUDGE_MANAGER_OPTIONS = ("judge", "judge_kwargs", "failure_reward", "max_batch_size")
GROUP_MANAGER_OPTIONS = ("group_timeout_s", "max_workers", "rank_method")
POINTWISE_ONLY = (
    "{name} is a pairwise judge: it cannot score one response alone, and verl's reward loop calls its reward "
    "manager (JudgeRewardManager) with one sample at a time. To rank the responses of a prompt against each "
    "other, use GroupJudgeRewardManager (reward_model.reward_manager=judge_group) with "
    "reward_model.use_reward_loop=False, which only verl <= 0.7.0 has; otherwise use a pointwise judge")
GROUP_IN_REWARD_LOOP = (
    "reward manager 'judge_group' (GroupJudgeRewardManager) judges the n responses of a prompt together, but "
    "verl's reward loop (reward_model.use_reward_loop=True, the default; the only reward path from verl 0.7.1 on) "
    "calls its reward manager with one sample at a time. Set reward_model.use_reward_loop=False (verl <= 0.7.0) "
    "to judge groups, or use reward manager 'judge' (JudgeRewardManager) with a pointwise judge")


def _plain(value: Any) -> Any:
    """An OmegaConf container (verl's config) as plain dicts and lists; anything else as it is."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def verl_reward_kwargs(config: Any) -> dict:
    """A reward manager's options in a verl config: reward.reward_kwargs (verl >= 0.7.1, where its DAPO manager
    reads them), else reward_model.reward_kwargs (verl 0.7.0); {} without a config or either key."""
    for section in ("reward", "reward_model"):
        node = config.get(section) if hasattr(config, "get") else None
        kwargs = node.get("reward_kwargs") if hasattr(node, "get") else None
        if kwargs:
            return dict(_plain(kwargs))
    return {}


def verl_rm_scores(data: Any, return_dict: bool = False) -> Any:
    """verl's pass-through of rewards already in a batch (AbstractRewardManager._extract_reward_from_rm_scores,
    verl/workers/reward_manager/abstract.py, which verl's own managers call first): None when data.batch has no
    "rm_scores"; else that tensor, or with return_dict {"reward_tensor": it, "reward_extra_info": the
    non_tensor_batch columns named in meta_info["reward_extra_keys"]}."""
    if "rm_scores" not in data.batch.keys():  # noqa: SIM118 (as verl checks it, for any TensorDict)
        return None
    if not return_dict:
        return data.batch["rm_scores"]
    keys = data.meta_info.get("reward_extra_keys", [])
    return {"reward_tensor": data.batch["rm_scores"], "reward_extra_info": {k: data.non_tensor_batch[k] for k in keys}}


def verl_reward_tensor(data: Any, rewards: Sequence[float]):
    """Rewards in verl's reward-tensor layout (RewardManagerBase.assemble_rm_scores, verl >= 0.8; the legacy
    managers' reward_tensor): float32, shaped like "responses", each reward at its row's last valid response token;
    a row without one stays zero. A non-finite reward is an error: the judge contract forbids it, never train on it."""
    import torch

    responses = data.batch["responses"]
    valid = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1]:].sum(dim=-1).tolist()
    tensor = torch.zeros(responses.shape, dtype=torch.float32, device=responses.device)
    for i, (length, reward) in enumerate(zip(valid, rewards, strict=True)):
        if length > 0:
            tensor[i, int(length) - 1] = float(reward)
    if not torch.isfinite(tensor).all():
        raise RuntimeError("non-finite reward in the reward tensor")
    return tensor


def verl_sample(tokenizer: Any, item: Any) -> tuple[Prompt, str, Any, int]:
    """(prompt, response text, ground truth, valid response length) of one verl DataProtoItem, read as verl's
    reward-loop managers read it (verl/experimental/reward_loop/reward_manager/naive.py): the valid response
    length is attention_mask summed over the last len(responses) positions, the response is those tokens decoded
    without special tokens, the ground truth reward_model["ground_truth"]. The prompt is raw_prompt (the
    dataset's messages, which verl's agent loop passes along), else extra_info "prompt"/"question", else the
    prompt's attended tokens decoded."""
    batch, ntb = item.batch, item.non_tensor_batch
    response_ids, mask = batch["responses"], batch["attention_mask"]
    width = response_ids.shape[-1]
    valid_len = int(mask[-width:].sum()) if width else 0  # mask[-0:] would be the whole mask
    response = tokenizer.decode(response_ids[:valid_len], skip_special_tokens=True) if valid_len else ""
    raw = ntb.get("raw_prompt")
    if isinstance(raw, str) and raw:
        prompt: Prompt | None = raw
    elif raw is not None and not isinstance(raw, str) and len(raw):  # messages: a list or a numpy object array
        prompt = [dict(m) for m in raw]
    else:
        prompt = verl_prompt(ntb.get("extra_info"))
    if prompt is None:
        prompt_ids = batch["prompts"]
        prompt = tokenizer.decode(prompt_ids[mask[:prompt_ids.shape[-1]].bool()], skip_special_tokens=True)
    reward_model = ntb.get("reward_model")
    reference = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    return prompt, response, reference, valid_len


class JudgeRewardManager:
    """verl's reward-loop manager over a pointwise judge, for verl's default reward path: the reward loop
    (reward_model.use_reward_loop=True in verl 0.7.0, the only path from verl 0.7.1 on). verl's RewardLoopWorker
    (verl/experimental/reward_loop/reward_loop.py) builds it as cls(config, tokenizer, compute_score,
    reward_router_address, reward_model_tokenizer) and awaits run_single(data) per sample: data holds one sample
    (from verl 0.8 it may hold the turns of one trajectory, and the last one is scored, as verl's managers do).

    Select it (verl >= 0.7.1): reward.reward_manager.source=importlib reward.reward_manager.module.path=
    pkg://judges.rl reward.reward_manager.name=JudgeRewardManager. verl 0.7.0: custom_reward_function.path=
    pkg://judges.rl custom_reward_function.name=compute_score reward_model.reward_manager=judge ("judge" is
    registered when verl imports this module, which it does for the custom reward function before it looks the
    name up). Options: keyword arguments, else verl's reward_kwargs (+reward.reward_kwargs.judge=... in verl
    >= 0.7.1, +reward_model.reward_kwargs.judge=... in 0.7.0), else RM_JUDGE / RM_FAILURE_REWARD: judge,
    judge_kwargs, failure_reward, max_batch_size (default 64). verl's compute_score is ignored: the judge is the
    reward. The judge is loaded on first use, so a process that only builds the manager (verl 0.7.0's driver,
    to which rewards come back as rm_scores) never loads it.

    Per sample: the prompt, the response and the reference as verl_sample reads them. Samples awaited
    concurrently (verl gathers a whole chunk, and its agent loop streams samples as rollouts finish) are scored
    together: while a judge call runs, the samples that arrive queue up and go into the next call, at most
    max_batch_size per call. Calls run in a worker thread (off the event loop), one at a time per judge, under
    the process-wide lock it shares with `compute_score`.

    run_single returns {"reward_score": reward, "reward_extra_info": {"score", "judge_failed",
    "empty_response"}}, the same keys for every sample (verl stacks them into columns). A failed item raises
    JudgeFailedError, or with failure_reward gets it, flagged judge_failed=1.0. A response with no valid token is
    not judged: reward 0.0, flagged empty_response. A sample that already carries "rm_scores" returns that
    reward (its row's sum) without judging, as verl's managers pass rm_scores through.
    `__call__(data, return_dict)` is the batch form verl's legacy code calls (rm_scores passed through, else all
    samples judged in one call), and `assemble_rm_scores` places rewards in the rm_scores layout verl's
    RewardManagerBase uses.
    """

    def __init__(self, config: Any = None, tokenizer: Any = None, compute_score: Callable | None = None,
                 reward_router_address: str | None = None, reward_model_tokenizer: Any = None, *,
                 num_examine: int = 0, reward_fn_key: str = "data_source", **reward_kwargs: Any):
        if tokenizer is None:
            raise TypeError("JudgeRewardManager needs the policy's tokenizer (verl passes it)")
        options = {**verl_reward_kwargs(config), **reward_kwargs}
        unknown = sorted(set(options) - set(JUDGE_MANAGER_OPTIONS))
        if unknown:
            group = " (group_timeout_s, max_workers and rank_method are GroupJudgeRewardManager's)" if set(
                unknown) & set(GROUP_MANAGER_OPTIONS) else ""
            raise TypeError(f"unknown JudgeRewardManager option(s) {unknown}{group}; its options are "
                            f"{list(JUDGE_MANAGER_OPTIONS)}")
        self.config = config
        self.tokenizer = tokenizer
        self.compute_score = compute_score  # verl's reward function: not used, the judge is the reward
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer
        self.num_examine = num_examine  # accepted for verl's legacy constructor call
        self.reward_fn_key = reward_fn_key
        self.failure_reward = _env_failure_reward(options.get("failure_reward"))
        self.max_batch_size = 64 if options.get("max_batch_size") is None else int(options["max_batch_size"])
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        judge = options.get("judge")
        self._judge: Judge | None = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._judge_spec, self._judge_kwargs = None, options.get("judge_kwargs")
        if isinstance(judge, Judge):
            self._set_judge(judge, self._lock)
        elif judge or os.environ.get("RM_JUDGE"):
            self._judge_spec = judge
        else:
            raise ValueError("no judge configured: pass judge=<checkpoint, Hub id or llm:/openai: spec> (verl: "
                             "+reward.reward_kwargs.judge=..., or +reward_model.reward_kwargs.judge=... in verl "
                             "0.7.0) or set RM_JUDGE")
        self._queue: list[tuple[Conversation, Any, asyncio.Future]] = []
        self._queue_loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task | None = None

    def _set_judge(self, judge: Judge, lock: threading.Lock) -> None:
        if not judge.pointwise:
            raise TypeError(POINTWISE_ONLY.format(name=type(judge).__name__))
        self._lock = lock
        self._judge = judge

    @property
    def judge(self) -> Judge:
        """The judge, loaded on first use (once per process for a spec: see cached_judge)."""
        if self._judge is None:
            with self._load_lock:
                if self._judge is None:
                    self._set_judge(*cached_judge(self._judge_spec, self._judge_kwargs))
        return self._judge

    def _score_blocking(self, convs: list[Conversation], refs: list) -> list[float | None]:
        judge = self.judge
        with self._lock:
            return list(judge.score(convs, None if all(r is None for r in refs) else refs))

    def _reward(self, score: float | None) -> float:
        if score is None:
            return self.failure_reward
        if not math.isfinite(score):  # the judge contract forbids it; never train on it
            raise RuntimeError(f"non-finite reward {score!r} from {type(self._judge).__name__}")
        return float(score)

    # -- per sample, on verl's event loop
    async def _score(self, conv: Conversation, ref: Any) -> float | None:
        loop = asyncio.get_running_loop()
        if self._queue_loop is not loop:  # first use, or a new event loop: nothing of an old one is pending
            self._queue_loop, self._queue, self._drainer = loop, [], None
        future = loop.create_future()
        self._queue.append((conv, ref, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Judge the queued samples, max_batch_size per call, in a worker thread, until none is left."""
        while self._queue:
            batch, self._queue = self._queue[:self.max_batch_size], self._queue[self.max_batch_size:]
            try:
                scores = await asyncio.to_thread(self._score_blocking, [c for c, _, _ in batch],
                                                 [r for _, r, _ in batch])
            except Exception as exc:  # a judge bug (or a pairwise judge): every sample of the call raises it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:
                for _, _, future in batch:
                    future.cancel()
                raise
            else:
                for (_, _, future), score in zip(batch, scores):
                    if not future.done():
                        future.set_result(score)

    async def run_single(self, data: Any) -> dict:
        """The reward of one sample, as verl's RewardLoopWorker.compute_score awaits it (see the class docstring)."""
        item = data[len(data) - 1]  # verl >= 0.8 may pass the turns of one trajectory: the last one is scored
        if "rm_scores" in item.batch.keys():  # noqa: SIM118 (as verl checks it, for any TensorDict)
            keys = data.meta_info.get("reward_extra_keys", [])
            return {"reward_score": float(item.batch["rm_scores"].sum()),
                    "reward_extra_info": {k: item.non_tensor_batch[k] for k in keys}}
        prompt, response, ref, valid_len = await asyncio.to_thread(verl_sample, self.tokenizer, item)
        score = await self._score(conversation(prompt, response), ref) if valid_len else 0.0
        if score is None and self.failure_reward is None:
            raise _failed_error(1, 1, "a verl reward-loop sample", self._judge)
        reward = self._reward(score)
        return {"reward_score": reward, "reward_extra_info": {"score": reward, "judge_failed": float(score is None),
                                                              "empty_response": float(not valid_len)}}

    # -- a whole batch, for verl's legacy callers
    assemble_rm_scores = staticmethod(verl_reward_tensor)  # the name verl >= 0.8 gives it

    def __call__(self, data: Any, return_dict: bool = False) -> Any:
        passed = verl_rm_scores(data, return_dict)
        if passed is not None:  # rewards already computed by verl's reward loop: not judged again
            return passed
        n = len(data)
        samples = [verl_sample(self.tokenizer, data[i]) for i in range(n)]
        todo = [i for i in range(n) if samples[i][3] > 0]
        got = dict(zip(todo, self._score_blocking([conversation(samples[i][0], samples[i][1]) for i in todo],
                                                  [samples[i][2] for i in todo]) if todo else []))
        failed = [i in got and got[i] is None for i in range(n)]
        if any(failed) and self.failure_reward is None:
            raise _failed_error(sum(failed), n, "verl reward manager", self._judge)
        rewards = [self._reward(got[i]) if i in got else 0.0 for i in range(n)]
        reward_tensor = verl_reward_tensor(data, rewards)
        if not return_dict:
            return reward_tensor
        return {"reward_tensor": reward_tensor,
                "reward_extra_info": {"score": rewards, "judge_failed": [float(f) for f in failed],
                                      "empty_response": [float(i not in got) for i in range(n)]}}


class GroupJudgeInRewardLoop:
    """What verl's reward loop finds under "judge_group": constructing it raises a TypeError that says why a group
    manager cannot run there and what to use instead (GROUP_IN_REWARD_LOOP)."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError(GROUP_IN_REWARD_LOOP)


def register_with_verl(name: str = "judge_group", loop_name: str = "judge") -> bool:
    """Register the managers with the verl imported in this process:
    - verl's reward-loop registry (verl/experimental/reward_loop/reward_manager/registry.py): JudgeRewardManager as
      `loop_name`, and under `name` GroupJudgeInRewardLoop, which explains why a group manager cannot run there;
    - verl's legacy registry (verl/workers/reward_manager/registry.py): GroupJudgeRewardManager as `name`, and
      JudgeRewardManager as `loop_name` (verl 0.7.0's driver also builds a legacy reward function from
      reward_model.reward_manager, to pass the reward loop's rm_scores through).
    True when registered now or already; ImportError without verl. A name another class already holds (a second
    copy of this module, loaded by file path) keeps its first registration instead of failing."""
    registries = {
        "verl.workers.reward_manager": {name: GroupJudgeRewardManager, loop_name: JudgeRewardManager},
        "verl.experimental.reward_loop.reward_manager": {loop_name: JudgeRewardManager, name: GroupJudgeInRewardLoop},
    }
    found = False
    for module_name, entries in registries.items():
        try:
            registry = importlib.import_module(module_name)
        except ImportError:
            continue
        found = True
        for key, cls in entries.items():
            try:
                registry.get_reward_manager_cls(key)
            except ValueError:  # verl's "Unknown reward manager"
                registry.register(key)(cls)
    if not found:
        raise ImportError("verl is not importable: no reward-manager registry to register with")
    return True


if "verl" in sys.modules:  # inside a verl process only: importing verl elsewhere would pull in ray
    try:
        register_with_verl()
    except ImportError:
        pass
    except Exception as exc:  # an unexpected verl layout must not stop compute_score from loading
        warnings.warn(f"judges.rl could not register its reward managers with verl: {exc!r}", stacklevel=1)


# -- TRL -------------------------------------------------------------------------------------------------------
def _trl_conversation(i: int, prompt: Any, completion: Any) -> Conversation:
    """conversation(prompt, completion) of TRL's item i; ValueError naming the item when either is malformed."""
    if not isinstance(completion, (str, list, tuple)):
        raise ValueError(f"completions[{i}] must be a string or a list of messages, got "
                         f"{type(completion).__name__} {completion!r:.100}")
    check_text(prompt, f"prompts[{i}]")
    check_text(completion, f"completions[{i}]")
    try:
        return conversation(prompt, completion)
    except TypeError as exc:  # as_messages: a prompt that is neither text nor messages
        raise ValueError(f"prompts[{i}]: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"completions[{i}]: {exc}") from None


TRL_MASKS_NONE = "1.6"  # GRPOTrainer's unscorable_mask: a completion whose every reward is None gets no advantage


def check_trl_masks_failures(installed: str | None = None) -> None:
    """A RuntimeError when the installed TRL (or `installed`) predates TRL_MASKS_NONE, where a None reward was
    summed as 0.0 into the group's baseline; nothing when TRL is not installed (the function is then never called
    by it)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        installed = installed or version("trl")
    except PackageNotFoundError:
        return
    if Version(installed) < Version(TRL_MASKS_NONE):
        raise RuntimeError(f"trl {installed} turns a failed judgement (None) into a reward of 0.0: upgrade to "
                           f"trl>={TRL_MASKS_NONE}, which leaves such completions out")


def make_trl_reward_func(judge: Judge, name: str | None = None, reference_column: str | None = None,
                         rank_method: str = "auto") -> Callable[..., list[float | None]]:
    """A `reward_funcs` entry for TRL's GRPOTrainer (and RLOO/online trainers with the same call):
    `fn(prompts, completions, **columns) -> list[float | None]`, named `name` (TRL logs
    rewards/<name>/mean), default the judge's class name.

    Standard format: prompts and completions are strings. Conversational: a prompt is a list of messages and
    a completion a list of messages ending with the assistant's. Dataset columns arrive as keyword lists;
    `reference_column` names the one passed to the judge as references (e.g. "ground_truth").
    Failed items are None: TRL from 1.6 on leaves a completion every reward function failed on out of its group's
    baseline, with no advantage (before 1.6 it summed it as 0.0, a reward it did not earn: refused here); their
    fraction is logged as <name>/judge_failed when TRL passes `log_metric`. A pairwise judge ranks the completions
    of each prompt together (TRL repeats each prompt num_generations times; under multi-process training a group
    may be split across processes, and each process ranks its own part: a completion alone there is None, and a
    call where every prompt has one completion is a ValueError, since ranking against nothing is a constant).
    """
    check_trl_masks_failures()
    fn_name = name or type(judge).__name__

    def reward_func(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        refs = None
        if reference_column is not None:
            if reference_column not in kwargs:
                columns = [k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric",
                                                          "completion_ids", "environments")]
                raise KeyError(f"reference column {reference_column!r} is not in the dataset; columns: {columns}")
            refs = list(kwargs[reference_column])
        # every item checked before the judge sees any: a bad one is a ValueError naming it, never a cryptic TypeError
        convs = [_trl_conversation(i, p, c) for i, (p, c) in enumerate(zip(prompts, completions))]
        if judge.pointwise and rank_method == "auto":  # one call for the whole batch
            scores = judge.score(convs, refs)
        else:
            scores = [None] * len(prompts)
            groups: dict[str, list[int]] = defaultdict(list)
            for i, p in enumerate(prompts):
                groups[json.dumps(p, sort_keys=True)].append(i)
            check_groups_rankable([len(items) for items in groups.values()], judge,
                                  "TRL hands each process its own completions: keep a prompt's num_generations "
                                  "completions on one process (num_generations_eval too, for evaluation)")
            for items in groups.values():
                got = judge_items(judge, prompts[items[0]], [completions[i] for i in items],
                                  None if refs is None else [refs[i] for i in items], rank_method)
                for i, s in zip(items, got):
                    scores[i] = s
        if kwargs.get("log_metric") is not None and scores:
            kwargs["log_metric"](f"{fn_name}/judge_failed", sum(s is None for s in scores) / len(scores))
        return scores

    reward_func.__name__ = reward_func.__qualname__ = fn_name
    return reward_func


# -- OpenRLHF -------------------------------------------------------------------------------------------------
# How /get_reward reads a query (see openrlhf_items). OpenRLHF (openrlhf/utils/agent.py, SingleTurnAgentExecutor)
# sends query = tokenizer.decode(prompt ids + response ids, skip_special_tokens=False): with --apply_chat_template
# the prompt is already the chat-templated text, and the response ends with the policy's EOS token.
QUERY_FORMATS = ("auto", "text", "messages")


class TemplateMarks(NamedTuple):
    """What a chat template writes around an assistant turn (`chat_template_marks`); "" where it writes none."""

    header: str  # the assistant header add_generation_prompt writes, whitespace stripped: "<|im_start|>assistant"
    turn_end: str  # the end of an assistant turn, trailing whitespace stripped: "<|im_end|>"
    after_end: str  # the whitespace the template writes after turn_end: "\n" for ChatML, "" for Llama 3


def chat_template_marks(tokenizer) -> TemplateMarks:
    """The tokenizer's TemplateMarks, read off a rendered probe conversation (empty when it cannot render one)."""
    user, reply = [{"role": "user", "content": "PROBE_PROMPT"}], "PROBE_RESPONSE"
    try:
        bare = tokenizer.apply_chat_template(user, tokenize=False)
        opened = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": reply}], tokenize=False)
    except Exception:  # a template that needs more than a user turn (a system turn, tools): nothing to read
        return TemplateMarks("", "", "")
    header = opened[len(bare):].strip() if opened.startswith(bare) else ""
    tail = full[full.rfind(reply) + len(reply):] if reply in full else ""
    return TemplateMarks(header, tail.rstrip(), tail[len(tail.rstrip()):])


def openrlhf_query_format(judge: Judge, query_format: str | None = None) -> str:
    """The query format /get_reward uses for `judge`: `query_format`, checked, or by default "auto" for a judge
    that scores rendered text (`score_texts`: the reward-model judges), "messages" for one that does not (LLM
    judges, rules). ValueError for "auto"/"text" with a judge that cannot score text: at server start."""
    can_text = callable(getattr(judge, "score_texts", None))
    if query_format is None:
        return "auto" if can_text else "messages"
    if query_format not in QUERY_FORMATS:
        raise ValueError(f"unknown query format {query_format!r}; expected one of {list(QUERY_FORMATS)}")
    if query_format != "messages" and not can_text:
        raise ValueError(f"query format {query_format!r} scores the chat-templated query text, which "
                         f"{type(judge).__name__} cannot do (it judges messages): use query format 'messages' "
                         "and run OpenRLHF without --apply_chat_template, so its prompts are plain text")
    return query_format


def openrlhf_text_scorer(judge: Judge, query_format: str) -> Callable[[list[str]], list[float | None]]:
    """`texts -> scores` for the items openrlhf_items gives as text: "auto" tokenizes as `judge.score` tokenizes a
    rendered conversation (exactly one BOS), "text" adds no special tokens (OpenRLHF's serve_rm)."""
    return lambda texts: judge.score_texts(texts, add_special_tokens=query_format != "text")


def _strip_markers(text: str, markers: Sequence[str], at_end: bool) -> str:
    while True:
        body = text.rstrip() if at_end else text.lstrip()
        for m in markers:
            if m and (body.endswith(m) if at_end else body.startswith(m)):
                text = body[:-len(m)] if at_end else body[len(m):]
                break
        else:
            return text


def _openrlhf_fields(payload: dict, need_prompts: bool = True) -> tuple[list[str], list[str] | None, list]:
    """(queries, prompts, labels) of OpenRLHF's payload, checked; ValueError when malformed."""
    if not isinstance(payload, dict):
        raise ValueError(f"the payload must be a JSON object, got {type(payload).__name__}")
    if "query" not in payload:
        raise ValueError("the payload has no 'query': OpenRLHF sends {'query': [prompt + response, ...], "
                         "'prompts': [...], 'labels': [...]}")
    queries, prompts, labels = payload["query"], payload.get("prompts"), payload.get("labels")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError("'query' must be a list of strings (prompt + response texts)")
    if prompts is None and need_prompts:
        raise ValueError("the payload has no 'prompts': they are needed to split each query into prompt and "
                         "response (OpenRLHF sends them along with 'query')")
    if prompts is not None:
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise ValueError("'prompts' must be a list of strings")
        if len(prompts) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(prompts)} prompts: they must have equal lengths")
    if labels is None:
        labels = [None] * len(queries)
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise ValueError(f"{len(queries)} queries but 'labels' is not a list of the same length: {labels!r:.200}")
    for what, values in (("query", queries), ("prompts", prompts), ("labels", labels)):
        check_text(values, f"'{what}'")  # a lone surrogate reaches no tokenizer: ValueError naming the item
    # OpenRLHF sends "" when it has no --data.label_key (openrlhf/datasets/prompts_dataset.py, 0.11.2): no reference,
    # never an empty one shown to the judge
    return queries, prompts, [None if isinstance(label, str) and not label.strip() else label for label in labels]


def _split_query(query: str, prompt: str, parse_prompt: Callable[[str], Prompt] | None,
                 end_markers: Sequence[str]) -> Conversation | None:
    if not query.startswith(prompt):
        query = _strip_markers(query, end_markers, at_end=False)
    if not query.startswith(prompt):
        return None
    response = _strip_markers(query[len(prompt):], end_markers, at_end=True)
    return conversation(parse_prompt(prompt) if parse_prompt else prompt, response)


def openrlhf_conversations(payload: dict, failures: FailureLog | None = None,
                           parse_prompt: Callable[[str], Prompt] | None = None,
                           end_markers: Sequence[str] = END_MARKERS) -> tuple[list[Conversation | None], list]:
    """(conversations, references) from OpenRLHF's remote-RM payload {"query": [prompt + response text],
    "prompts": [prompt text], "labels": [label | None]} (other keys, e.g. "metas", are ignored).

    Each response is the query minus its prompt prefix, with trailing end-of-turn/pad markers (END_MARKERS:
    OpenRLHF decodes with skip_special_tokens=False) removed; leading markers (left padding) are removed
    when the query does not start with its prompt otherwise. A query that still does not start with its
    prompt cannot be split: its conversation is None, counted in `failures`. The prompt text becomes the user
    message as it is, unless `parse_prompt` turns it back into messages: right for a plain-text prompt, wrong
    for a chat-templated one (it would be templated twice; openrlhf_items scores those as text). Labels are
    the references. A malformed payload raises ValueError.
    """
    queries, prompts, labels = _openrlhf_fields(payload)
    convs: list[Conversation | None] = []
    for i, (query, prompt) in enumerate(zip(queries, prompts)):
        convs.append(_split_query(query, prompt, parse_prompt, end_markers))
        if convs[-1] is None and failures is not None:
            failures.add("query does not start with its prompt", i)
    return convs, labels


def openrlhf_items(payload: dict, query_format: str = "auto", marks: TemplateMarks | None = None,
                   failures: FailureLog | None = None, parse_prompt: Callable[[str], Prompt] | None = None,
                   end_markers: Sequence[str] = END_MARKERS) -> tuple[list[str | None], list[Conversation | None],
                                                                        list]:
    """(texts, conversations, references) from OpenRLHF's payload: item i is scored as the text texts[i]
    (openrlhf_text_scorer) or as the conversation conversations[i] (`judge.score`); both None: it failed,
    counted in `failures`. `query_format` (QUERY_FORMATS):

    - "text": the query exactly as sent, as OpenRLHF's own serve_rm scores it (openrlhf/cli/serve_rm.py at
      3c3be62: `tokenizer(queries, add_special_tokens=False, ...)`, no template, nothing stripped or appended).
    - "auto": a query whose prompt carries the template's assistant header (`marks.header`: OpenRLHF ran with
      --apply_chat_template) is scored as its text, plus the whitespace the template writes after an assistant
      turn (`marks.after_end`, "\\n" for ChatML) when the query stops at the turn's end marker (the policy's EOS):
      the tokens `judge.score` reads for the same conversation. Any other query is scored as in "messages".
    - "messages": split into prompt and response (openrlhf_conversations) and rendered with the judge's
      template: for plain-text prompts (OpenRLHF without --apply_chat_template) and judges that read messages.
    """
    if query_format not in QUERY_FORMATS:
        raise ValueError(f"unknown query format {query_format!r}; expected one of {list(QUERY_FORMATS)}")
    queries, prompts, labels = _openrlhf_fields(payload, need_prompts=query_format != "text")
    texts: list[str | None] = [None] * len(queries)
    convs: list[Conversation | None] = [None] * len(queries)
    marks = marks or TemplateMarks("", "", "")
    for i, query in enumerate(queries):
        if query_format == "text":
            texts[i] = query
        elif query_format == "auto" and marks.header and marks.header in prompts[i]:
            completes = marks.turn_end and marks.after_end and query.endswith(marks.turn_end)
            texts[i] = query + marks.after_end if completes else query
        else:
            convs[i] = _split_query(query, prompts[i], parse_prompt, end_markers)
            if convs[i] is None and failures is not None:
                failures.add("query does not start with its prompt", i)
    return texts, convs, labels


def judge_marks(judge: Judge) -> TemplateMarks:
    """The TemplateMarks of the judge's tokenizer (empty for a judge without one)."""
    tokenizer = getattr(judge, "tokenizer", None)
    return chat_template_marks(tokenizer) if tokenizer is not None else TemplateMarks("", "", "")


def score_present(score: Callable[[list, list | None], list], convs: Sequence[Conversation | None],
                  refs: Sequence) -> list[float | None]:
    """`score(convs, refs)` over the conversations that are not None; None where they are."""
    todo = [i for i, c in enumerate(convs) if c is not None]
    out: list[float | None] = [None] * len(convs)
    sub_refs = [refs[i] for i in todo]
    got = score([convs[i] for i in todo], None if all(r is None for r in sub_refs) else sub_refs) if todo else []
    for i, s in zip(todo, got):
        out[i] = s
    return out


def openrlhf_response(scores: Sequence[float | None], failure_reward: float | None = None) -> dict:
    """OpenRLHF's response JSON: {"rewards", "scores", "extra_logs": {"judge_failed"}}; failed items (None)
    get `failure_reward`, or raise JudgeFailedError when it is None."""
    failure_reward = check_failure_reward(failure_reward)
    failed = [s is None for s in scores]
    if any(failed) and failure_reward is None:
        raise _failed_error(sum(failed), len(scores), "OpenRLHF remote RM")
    rewards = [failure_reward if s is None else float(s) for s in scores]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": {"judge_failed": [float(f) for f in failed]}}


def openrlhf_get_reward(judge: Judge, payload: dict, failure_reward: float | None = None,
                        parse_prompt: Callable[[str], Prompt] | None = None, query_format: str | None = None,
                        marks: TemplateMarks | None = None) -> dict:
    """POST /get_reward for OpenRLHF's remote RM: payload in, response JSON out (a pure function; the HTTP
    server wraps it). query_format: see openrlhf_items (default: openrlhf_query_format). marks: the judge's
    chat_template_marks (read from its tokenizer when None)."""
    if not judge.pointwise:
        raise TypeError(f"{type(judge).__name__} is a pairwise judge; OpenRLHF's remote RM scores single responses")
    query_format = openrlhf_query_format(judge, query_format)
    if marks is None and query_format == "auto":
        marks = judge_marks(judge)
    texts, convs, refs = openrlhf_items(payload, query_format, marks, judge.failures, parse_prompt)
    scores = score_present(judge.score, convs, refs)
    text_scores = score_present(lambda items, _: openrlhf_text_scorer(judge, query_format)(items), texts, refs)
    return openrlhf_response([t if text is not None else s for text, t, s in zip(texts, text_scores, scores)],
                             failure_reward)


def openrlhf_reward_func(judge: Judge, failure_reward: float | None = None,
                         parse_prompt: Callable[[str], Prompt] | None = None,
                         lock: threading.Lock | None = None, query_format: str | None = None) -> Callable[..., dict]:
    """`reward_func(queries, prompts, labels, **kwargs)` for OpenRLHF's custom reward file (--reward.remote_url
    my_reward.py, whose module defines `reward_func`): {"rewards": tensor, "scores": tensor,
    "extra_logs": {"judge_failed": tensor}}. query_format: as openrlhf_get_reward's (checked here, at load)."""
    lock = lock or threading.Lock()  # OpenRLHF calls it from several threads at once
    query_format = openrlhf_query_format(judge, query_format)
    marks = judge_marks(judge) if query_format == "auto" else None

    def reward_func(queries: list[str], prompts: list[str], labels: list | None = None, **_: Any) -> dict:
        import torch

        with lock:
            out = openrlhf_get_reward(judge, {"query": list(queries), "prompts": list(prompts),
                                              "labels": None if labels is None else list(labels)},
                                      failure_reward, parse_prompt, query_format, marks)
        return {"rewards": torch.tensor(out["rewards"], dtype=torch.float32),
                "scores": torch.tensor(out["scores"], dtype=torch.float32),
                "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in out["extra_logs"].items()}}

    return reward_func


def reward_func(queries: list[str], prompts: list[str], labels: list | None = None, **kwargs: Any) -> dict:
    """OpenRLHF custom reward function when --reward.remote_url (--remote_rm_url before 0.11) points at this file:
    the judge from RM_JUDGE, failed items get RM_FAILURE_REWARD (unset: they raise), queries read as RM_QUERY_FORMAT
    (see openrlhf_items; unset: openrlhf_query_format's default)."""
    judge, lock = cached_judge()
    return openrlhf_reward_func(judge, _env_failure_reward(None), lock=lock,
                                query_format=os.environ.get("RM_QUERY_FORMAT") or None)(queries, prompts, labels)
