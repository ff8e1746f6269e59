"""The Judge interface, the reward-model judge, judges.load and best_of_n."""

from __future__ import annotations

import json
import math

import pytest
import torch

import judges
from judges.base import FailureLog, Judge, best_of_n, conversation, sigmoid, split_conversation
from judges.rm_judge import RewardModelJudge

torch.set_num_threads(1)

PROMPT = "What is 2 + 3?"
RESPONSES = ["The answer is 5.", "I cannot help with that request.", "Sure, here is a short answer: 5.", ""]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from rm_core.hub import describe_checkpoint
    from rm_core.testing import tiny_reward_model

    path = tmp_path_factory.mktemp("judge") / "bt"
    model, tokenizer = tiny_reward_model(seed=3)
    describe_checkpoint(model, tokenizer, "bradley_terry", reward_mean=0.25, reward_std=2.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def judge(ckpt):
    return judges.load(str(ckpt))


class LengthJudge(Judge):
    """Reward = number of words; fails (None, counted) on responses containing 'FAIL'."""

    def _score(self, conversations, references):
        out = []
        for i, conv in enumerate(conversations):
            _, response = split_conversation(conv)
            if "FAIL" in response:
                self.failures.add("scripted failure", i)
                out.append(None)
            else:
                out.append(float(len(response.split())))
        return out


class ScriptedPairwise(Judge):
    """A pairwise judge whose P(a beats b) comes from a table of hidden strengths."""

    pointwise = False

    def __init__(self, strength: dict[str, float]):
        super().__init__()
        self.strength = strength
        self.calls = 0

    def _compare(self, items):
        self.calls += 1
        return [sigmoid(self.strength[a] - self.strength[b]) for _, a, b in items]


def test_load_reads_rm_family_and_builds_the_rm_judge(judge, ckpt):
    assert isinstance(judge, RewardModelJudge) and judge.pointwise
    assert judges.checkpoint_family(str(ckpt)) == "bradley_terry"


def test_load_refuses_a_base_lm_without_family_unless_told(tmp_path):
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base")
    from rm_core.errors import UserInputError  # one line from a command, not a traceback

    with pytest.raises(UserInputError, match="no rm_family.*family='bradley_terry'"):
        judges.load(str(base))
    assert isinstance(judges.load(str(base), family="bradley_terry"), RewardModelJudge)
    with pytest.raises(UserInputError, match="no judge registered for rm_family 'nope'"):
        judges.load(str(base), family="nope")


def test_load_of_a_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        judges.load(str(tmp_path))


def test_rm_judge_scores_match_the_model_and_pairs_share_the_prefix_exactly(judge):
    from rm_core.inference import score_sequences
    from rm_core.templates import render_ids

    convs = [conversation(PROMPT, r) for r in RESPONSES]
    scores = judge.score(convs)
    direct = score_sequences(judge.model, [render_ids(judge.tokenizer, c)[0] for c in convs],
                             judge.tokenizer.pad_token_id)
    assert scores == pytest.approx(direct, abs=1e-6)
    assert len(set(round(s, 6) for s in scores)) == len(scores)  # the responses really get different rewards
    pairs = judge.score_pairs([(PROMPT, RESPONSES[0], RESPONSES[1]), (PROMPT, RESPONSES[2], RESPONSES[3])])
    assert [x for pair in pairs for x in pair] == pytest.approx(scores, abs=1e-5)  # tree row, same result
    assert len(judge.last_item_info) == 2 and judge.last_item_info[0]["tokens"] > 10


def test_rank_many_gives_each_response_its_score_and_listwise_eval_uses_it(judge, monkeypatch):
    """A best-of-N group through `rank_many` (the prompt once, `score_groups`) scores as `score` does; the
    listwise evaluators (best-of-N, RewardBench 2) take that path for a reward model."""
    from eval.runner import listwise_scores

    groups = [(PROMPT, RESPONSES), (PROMPT, RESPONSES[1:3]), ("Another question?", RESPONSES[:1])]
    expected = [judge.score([conversation(prompt, r) for r in responses]) for prompt, responses in groups]
    got = judge.rank_many(groups)
    assert [len(g) for g in got] == [4, 2, 1]
    for scores, want in zip(got, expected):
        assert scores == pytest.approx(want, abs=1e-5)
    calls = []
    monkeypatch.setattr(judge, "score", lambda convs: calls.append(convs))  # must not be used
    assert [s for g in listwise_scores(judge, groups) for s in g] == pytest.approx([s for g in expected for s in g],
                                                                                  abs=1e-5)
    assert calls == []


def test_compare_is_sigmoid_of_the_reward_difference_and_rank_is_the_reward(judge):
    s = judge.score([conversation(PROMPT, r) for r in RESPONSES[:2]])
    assert judge.compare(PROMPT, RESPONSES[0], RESPONSES[1]) == pytest.approx(sigmoid(s[0] - s[1]), abs=1e-5)
    assert judge.rank(PROMPT, RESPONSES[:2]) == pytest.approx(s, abs=1e-6)


def test_normalize_uses_the_checkpoint_mean_and_std(ckpt, judge):
    norm = judges.load(str(ckpt), normalize=True)
    raw = judge.score([conversation(PROMPT, RESPONSES[0])])[0]
    assert norm.score([conversation(PROMPT, RESPONSES[0])])[0] == pytest.approx((raw - 0.25) / 2.0, abs=1e-6)


@pytest.mark.parametrize("mean, std", [(0.25, -2.0), (0.25, float("inf")), (0.25, float("nan")),
                                       (float("nan"), 2.0), (0.25, "2")])
def test_normalize_refuses_a_std_that_would_reverse_flatten_or_fail_every_reward(mean, std):
    """config.json is JSON, which takes NaN, and a hand-edited or third-party one can hold anything: a negative
    std reversed every ranking, inf made every reward 0, NaN failed every item under another name."""
    from judges.rm_judge import RewardModelJudge
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=3)
    model.config.reward_mean, model.config.reward_std = mean, std
    with pytest.raises(ValueError, match="finite reward_std > 0"):
        RewardModelJudge(model, tokenizer, normalize=True)


def test_family_is_refused_for_an_llm_judge_spec():
    with pytest.raises(ValueError, match="family='bradley_terry' applies to checkpoints"):  # it was dropped
        judges.load("openai:gpt-4o-mini", family="bradley_terry", mode="pairwise")


def test_truncation_is_counted_and_keeps_the_response_end(ckpt):
    short = judges.load(str(ckpt), max_length=8)
    short.score([conversation(PROMPT * 10, "the end")])
    assert short.truncated == 1 and short.last_item_info[0] == {"tokens": 8, "truncated": True}


def test_an_empty_response_is_scored_and_only_an_empty_text_fails_as_the_docs_say(ckpt):
    """judges/base.py, judges/rm_judge.py and judges/README.md: an RM judge scores an empty response (score,
    compare, rank); score_texts fails a text of no tokens, counted as "empty text"."""
    import judges.base
    import judges.rm_judge

    rm = judges.load(str(ckpt))
    scores = rm.score([conversation(PROMPT, ""), conversation(PROMPT, "   ")])
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert rm.compare(PROMPT, "", "5") is not None and None not in rm.rank(PROMPT, ["", "5"])
    assert rm.failures.total == 0
    assert rm.score_texts(["", "x"], add_special_tokens=False)[0] is None
    assert rm.failures.counts == {"empty text": 1}
    assert "An empty response is scored, not failed" in judges.rm_judge.__doc__
    assert "An empty response being judged is not such an item" in judges.base.__doc__


def test_a_malformed_response_is_a_value_error_and_text_is_checked():
    from judges.base import check_text

    for bad in (None, 5, [1, 2], [{"content": "no role"}]):
        with pytest.raises(ValueError, match="a response is a string or a list of"):
            conversation("q", bad)
    check_text(["ok", {"k": ("fine",)}], "x")  # encodable text passes
    with pytest.raises(ValueError, match=r"^x\[1\]\['k'\]\[0\] holds a lone surrogate \('\\ud800' at character 2\)"):
        check_text(["ok", {"k": ("ab\ud800",)}], "x")


def test_multi_turn_prompts_and_continuations():
    j = LengthJudge()
    prompt = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
              {"role": "user", "content": "and?"}]
    assert j.score([conversation(prompt, "one two")]) == [2.0]
    continuation = [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c d e"}]
    assert conversation("q", continuation)[-1]["content"] == "c d e" and len(conversation("q", continuation)) == 4
    with pytest.raises(ValueError, match="must end with an assistant message"):
        j.score([[{"role": "user", "content": "no reply"}]])
    with pytest.raises(TypeError, match="a prompt is a string or a list"):
        conversation(42, "x")


def test_failures_are_none_and_counted_never_a_default():
    j = LengthJudge()
    assert j.score([conversation("q", "a b"), conversation("q", "FAIL here"), conversation("q", "x")]) == [2.0, None, 1.0]
    assert j.failures.total == 1 and j.failures.counts["scripted failure"] == 1
    # compare of a failed side is a failure, not 0.5 and not "a wins"
    assert j.compare("q", "FAIL", "a b") is None
    assert j.compare("q", "a b c", "a") == pytest.approx(sigmoid(2.0))
    with pytest.raises(ValueError, match="2 references for 1 conversations"):
        j.score([conversation("q", "a")], references=["x", "y"])


def test_non_finite_scores_and_bad_probabilities_become_counted_failures():
    class Broken(Judge):
        def _score(self, conversations, references):
            return [math.nan, math.inf, 1.0][: len(conversations)]

    class BadProb(Judge):
        pointwise = False

        def _compare(self, items):
            return [1.5 for _ in items]

    b = Broken()
    assert b.score([conversation("q", "a")] * 3) == [None, None, 1.0]
    assert b.failures.counts["non-finite score"] == 2
    bp = BadProb()
    assert bp.compare("q", "a", "b") is None and bp.failures.counts["probability outside [0, 1]"] == 1
    with pytest.raises(NotImplementedError, match="pairwise judge"):
        bp.score([conversation("q", "a")])


def test_failure_log_report():
    log = FailureLog(max_examples=1)
    log.add("timeout", 3)
    log.add("timeout", 4)
    log.add("unparsable", 7)
    assert log.total == 3 and str(log) == "failures: 3 (timeout: 2, unparsable: 1)"
    assert log.as_dict()["examples"] == {"timeout": ["3"], "unparsable": ["7"]}


def test_best_of_n_best_first_ties_to_lower_index_failed_left_out():
    j = LengthJudge()
    result = best_of_n(j, "q", ["a b", "a b c", "FAIL", "x y z", "w"])
    assert result.index == 1  # 3 words at indices 1 and 3: the lower index wins the tie
    assert result.ranking == [(1, 3.0), (3, 3.0), (0, 2.0), (4, 1.0)]
    assert result.failed == [2] and result.scores == [2.0, 3.0, None, 3.0, 1.0]
    assert best_of_n(j, "q", ["FAIL", "FAIL too"]).index is None


def test_pairwise_judge_ranks_through_the_preference_matrix():
    strength = {"w": 2.0, "x": 1.0, "y": 0.0, "z": -1.0}
    j = ScriptedPairwise(strength)
    P = j.preference_matrix("q", ["y", "w", "z", "x"])
    assert P[1, 0] == pytest.approx(sigmoid(2.0)) and P[0, 1] == pytest.approx(1 - sigmoid(2.0))
    assert j.calls == 1  # all 6 pairs in one batch
    for method in ("auto", "win_rate", "copeland", "bt", "elo", "dgr"):
        scores = j.rank("q", ["y", "w", "z", "x"], method=method)
        assert sorted(range(4), key=lambda i: -scores[i]) == [1, 3, 0, 2], method
    assert best_of_n(j, "q", ["y", "w", "z", "x"], method="dgr").index == 1


def test_eval_reward_bench_equals_the_judge_compare_path(ckpt, tmp_path):
    """The BT checkpoint's accuracy through judges (compare one pair at a time, no shared prefix) is what
    eval_reward_bench (batched, shared prefix once) reports."""
    from eval.reward_bench import evaluate, make_parser
    from rm_core.builtin_data import build_builtin_preferences

    rows = build_builtin_preferences(seed=0)[1][:24]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = evaluate(make_parser().parse_args(["--model", str(ckpt), "--dataset", str(data),
                                                 "--output_dir", str(tmp_path / "out"), "--batch_size", "4"]))
    judge = judges.load(str(ckpt))
    correct = sum(judge.compare(r["prompt"], r["chosen"], r["rejected"]) > 0.5 for r in rows)
    assert sum(s["correct"] for s in summary["subsets"].values()) == correct
    assert summary["failed_pairs"] == 0 and summary["judge_failures"]["total"] == 0


# ---------------------------------------------------------------- NaN and inf are failures on every path


class FastPaths(Judge):
    """A judge with its own batched fast paths (as the BT, pair-PM, tree and listwise judges have), each
    returning a NaN, an inf or a probability out of range for the first item: the base class must still count
    them as failures."""

    pointwise = False

    def score_pairs(self, items):
        return [(math.nan, 1.0)] + [(2.0, math.inf)] + [(1.0, 0.0)] * (len(items) - 2)

    def judge_pairs(self, items):
        from judges.base import PairVerdict

        return [PairVerdict(math.nan, 0.7), PairVerdict(0.2, 1.5), PairVerdict(0.6, 0.8)][: len(items)]

    def _compare(self, items):
        return [v.p for v in self.judge_pairs(items)]

    def rank(self, prompt, responses, method="auto"):
        return [math.inf, 1.0, 2.0][: len(responses)]

    def rank_many(self, items):
        return [[math.nan, 3.0] for _ in items]


def test_a_judges_own_fast_paths_turn_nan_and_inf_into_counted_failures():
    j = FastPaths()
    items = [("q", "a", "b")] * 3
    assert j.score_pairs(items) == [(None, 1.0), (2.0, None), (1.0, 0.0)]
    assert j.failures.counts["non-finite score"] == 2
    verdicts = j.judge_pairs(items)
    assert [(v.p_forward, v.p_backward) for v in verdicts] == [(None, 0.7), (0.2, None), (0.6, 0.8)]
    assert verdicts[0].error == "non-finite score" and verdicts[0].p is None and verdicts[2].p == pytest.approx(0.7)
    assert j.failures.counts["non-finite score"] == 3 and j.failures.counts["probability outside [0, 1]"] == 1
    assert j.compare_batch(items) == [None, None, pytest.approx(0.7)]  # counted once each, in judge_pairs
    assert j.failures.counts["non-finite score"] == 4 and j.failures.counts["probability outside [0, 1]"] == 2
    assert j.rank("q", ["a", "b", "c"], method="bt") == [None, 1.0, 2.0]  # keyword arguments still reach it
    assert j.rank_many([("q", ["a", "b"]), ("p", ["c", "d"])]) == [[None, 3.0], [None, 3.0]]
    assert j.failures.counts["non-finite score"] == 7


@pytest.fixture(scope="module")
def nan_ckpt(tmp_path_factory):
    """A BT checkpoint whose reward head is all NaN (what a diverged run saves)."""
    from rm_core.hub import describe_checkpoint
    from rm_core.testing import tiny_reward_model

    path = tmp_path_factory.mktemp("judge") / "bt-nan"
    model, tokenizer = tiny_reward_model(seed=3)
    with torch.no_grad():
        model.score.weight.fill_(math.nan)
    describe_checkpoint(model, tokenizer, "bradley_terry")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("share_prefix", [True, False])
def test_a_nan_checkpoint_gives_counted_failures_on_every_bt_judge_path(nan_ckpt, share_prefix):
    j = judges.load(str(nan_ckpt), share_prefix=share_prefix, batch_size=2)
    items = [(PROMPT, RESPONSES[0], RESPONSES[1]), (PROMPT, RESPONSES[2], RESPONSES[1])]
    assert j.score_pairs(items) == [(None, None), (None, None)]  # the batched (tree row) path
    assert j.failures.counts["non-finite score"] == 4
    assert j.rank_many([(PROMPT, RESPONSES[:3])]) == [[None] * 3]
    assert j.failures.counts["non-finite score"] == 7
    assert j.score([conversation(PROMPT, r) for r in RESPONSES]) == [None] * 4
    assert j.compare(PROMPT, RESPONSES[0], RESPONSES[1]) is None
    assert j.compare_batch(items) == [None, None]
    assert j.rank(PROMPT, RESPONSES[:3]) == [None, None, None]
    assert best_of_n(j, PROMPT, RESPONSES[:3]).index is None
    assert j.failures.counts["non-finite score"] == 4 + 3 + 4 + 2 + 4 + 3 + 3  # rank_many: 3


def test_an_llm_judges_nan_choice_probabilities_are_failures_not_position_statistics():
    from judges.backends import Result
    from judges.llm_judge import PairwiseLLMJudge

    class NanProbs:
        supports_choice_probs = True

        def choice_probs(self, requests, choices):
            return [Result([math.nan, 0.5, 0.5]) if "poison" in r[0]["content"] else Result([0.7, 0.2, 0.1])
                    for r in requests]

    j = PairwiseLLMJudge(NanProbs())
    verdicts = j.judge_pairs([("q", "fine", "also fine"), ("q", "poison", "fine")])
    assert verdicts[0].p == pytest.approx((0.75 + 1 - 0.75) / 2)
    assert verdicts[1].p is None and verdicts[1].error == "non-finite score"
    assert j.failures.counts == {"non-finite score": 1}
    assert j.order_stats.pairs == 1 and math.isfinite(j.order_stats.position_a_rate)
    assert j.compare("q", "poison", "fine") is None


def test_pointwise_rm_scores_take_rows_by_a_token_budget_without_a_batch_size(monkeypatch):
    """No batch size: a CPU forward of whole sequences takes as many rows as fit in default_forward_tokens (more
    than the row default for short conversations), within it; a batch size given is a row count; same rewards.
    (share_prefix=False: these conversations share a template prefix, which `score` would otherwise run as a group.)"""
    import rm_core.inference as inference
    from judges.rm_judge import RewardModelJudge
    from rm_core.inference import CPU_FORWARD_TOKENS, CPU_ROWS_PER_FORWARD
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model()
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "word " * (1 + i)}]
             for i in range(8)]
    batches, bounded = [], inference.padding_bounded_batches
    monkeypatch.setattr(inference, "padding_bounded_batches",
                        lambda lengths, *a, **k: [batches.append([lengths[i] for i in b]) or b
                                                  for b in bounded(lengths, *a, **k)])
    by_budget = RewardModelJudge(model, tokenizer, share_prefix=False)
    assert (by_budget.batch_size, by_budget.max_tokens) == (CPU_ROWS_PER_FORWARD, CPU_FORWARD_TOKENS)
    budget_scores = by_budget.score(convs)
    assert max(map(len, batches)) > CPU_ROWS_PER_FORWARD  # short sequences: more rows than the row default ...
    assert all(len(b) * max(b) <= CPU_FORWARD_TOKENS for b in batches)  # ... within the budget
    batches.clear()
    by_rows = RewardModelJudge(model, tokenizer, batch_size=1, share_prefix=False)
    assert by_rows.max_tokens is None
    assert by_rows.score(convs) == pytest.approx(budget_scores, abs=1e-5) and batches
    assert all(len(b) == 1 for b in batches)


def _computed_tokens(judge, call):
    """(call's result, the token positions the judge's forwards computed for it: rows x width, padding included),
    after one untimed call that takes the one-time probes."""
    call()
    widths = []
    handle = judge.model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape))
    try:
        result = call()
    finally:
        handle.remove()
    return result, sum(w[0] * w[1] for w in widths)


def test_pointwise_scores_run_the_completions_of_one_prompt_as_a_group(ckpt):
    """`score` (every RL adapter's path) groups conversations by prompt: a GRPO group's completions run with their
    prompt once (a tree row), each still getting its own whole-sequence reward, in the caller's order; other
    conversations run whole. A judge built with share_prefix=False computes every token."""
    from rm_core.inference import score_sequences, shared_prefix_length
    from rm_core.templates import render_ids

    long_prompt = "Please read this carefully. " * 12 + "What is 2 + 3?"
    convs = [conversation(long_prompt, r) for r in RESPONSES[:3]]
    convs.insert(1, conversation("Another question?", RESPONSES[0]))  # alone: whole
    convs.append(conversation(long_prompt, "Five."))
    grouped, plain = judges.load(str(ckpt)), judges.load(str(ckpt), share_prefix=False)
    rendered = [render_ids(grouped.tokenizer, c)[0] for c in convs]
    direct = score_sequences(grouped.model, rendered, grouped.tokenizer.pad_token_id)
    computed = {}
    for name, j in (("grouped", grouped), ("plain", plain)):
        scores, computed[name] = _computed_tokens(j, lambda j=j: j.score(convs))
        assert scores == pytest.approx([(d - 0.25) / 2.0 for d in direct] if j.mean else direct, abs=1e-5)
        assert [x["tokens"] for x in j.last_item_info] == [len(r) for r in rendered]
    assert computed["plain"] >= sum(map(len, rendered))
    shared = shared_prefix_length(*(rendered[i] for i in (0, 2, 3, 4)))
    assert shared > 100 and computed["grouped"] <= sum(map(len, rendered)) - 3 * shared  # the prompt once, not 4 times


def test_rendered_texts_that_share_a_prompt_run_as_a_group(ckpt):
    """`score_texts` (OpenRLHF's rendered queries: no prompt boundary) finds the texts that share a prompt by their
    tokens and runs them as a group, the prompt once: each text still gets the reward `score` gives its conversation,
    in the caller's order; an empty text still fails alone. share_prefix=False computes every token."""
    from rm_core.inference import shared_prefix_length
    from rm_core.templates import render_ids

    prompts = ["Please read this carefully. " * 12 + "What is 2 + 3?", "Think it over twice. " * 12 + "Why?"]
    convs = [conversation(prompts[i % 2], r) for i, r in enumerate(RESPONSES[:3] * 2)]
    grouped, plain = judges.load(str(ckpt)), judges.load(str(ckpt), share_prefix=False)
    texts = [grouped.tokenizer.apply_chat_template(c, tokenize=False) for c in convs]
    rendered = [render_ids(grouped.tokenizer, c)[0] for c in convs]
    expected = plain.score(convs)
    computed = {}
    for name, j in (("grouped", grouped), ("plain", plain)):
        scores, computed[name] = _computed_tokens(j, lambda j=j: j.score_texts(texts[:3] + [""] + texts[3:]))
        assert scores[3] is None and scores[:3] + scores[4:] == pytest.approx(expected, abs=1e-5)
        assert [x["tokens"] for x in j.last_item_info] == [len(r) for r in rendered[:3]] + [0] + [
            len(r) for r in rendered[3:]]
    assert computed["plain"] >= sum(map(len, rendered))
    shared = [shared_prefix_length(*rendered[k::2]) for k in (0, 1)]
    # each prompt once, not three times (within a tree row's padding)
    assert min(shared) > 100 and computed["grouped"] < sum(map(len, rendered)) - 1.5 * sum(shared)


def test_pointwise_groups_are_a_cpu_default_and_asked_for_elsewhere(ckpt, monkeypatch):
    """Off a CPU (no packed rows: `default_pack_tokens` 0) `score` keeps whole sequences unless share_prefix=True:
    there a group is one row, whose attention grows with the square of the whole group, and that is unmeasured."""
    import rm_core.inference as inference
    from rm_core.templates import render_ids

    monkeypatch.setattr(inference, "default_pack_tokens", lambda model: 0)
    long_prompt = "Please read this carefully. " * 12 + "What is 2 + 3?"
    convs = [conversation(long_prompt, r) for r in RESPONSES[:3]]
    for share, grouped in ((None, False), (True, True)):
        j = judges.load(str(ckpt), share_prefix=share)
        rendered = [render_ids(j.tokenizer, c)[0] for c in convs]
        assert (_computed_tokens(j, lambda j=j: j.score(convs))[1] < sum(map(len, rendered))) is grouped
