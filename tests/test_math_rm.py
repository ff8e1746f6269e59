"""math_rm: step splitting and the offline step-label rule, the converters, the one-sequence PRM format (loss
only at judgement slots; one-pass scores equal per-step scores), tiny PRM/ORM/scalar-ORM training that learns a
synthetic rule and loads through judges.load, best-of-N baselines on hand tables, the labelling pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from math_rm.encoding import choose_step_tag, encode_solution, judgement_token_ids
from rm_core.data import (
    RowError,
    from_gsm8k,
    from_gsm8k_solutions,
    from_prm800k,
    from_rlhflow_best_of_n,
    from_rlhflow_step_chat,
    gsm8k_answer,
    shared_data_dir,
    split_steps,
    to_candidates,
    to_steps,
)

torch.set_num_threads(1)
SHARED = shared_data_dir() / "gsm8k"
Q = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def tok():
    from rm_core.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tiny_lm(tok):
    from transformers import LlamaForCausalLM

    from rm_core.testing import tiny_llama_config

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(len(tok))).eval()


# ------------------------------------------------------------------ steps and the offline rule


def test_split_steps_rules():
    assert split_steps("a = 1 ки b = 2 ки\nc ки") == ["a = 1", "b = 2", "c"]  # Math-Shepherd tags first
    assert split_steps("First.\nstill first\n\nSecond.\n  \n\nThird") == ["First.\nstill first", "Second.", "Third"]
    assert split_steps("x = <<1+1=2>>2\n\nA: 2".replace("\n\n", "\n")) == ["x = <<1+1=2>>2", "A: 2"]  # lines
    assert split_steps("  \n ") == [] and split_steps("one") == ["one"]
    with pytest.raises(RowError):
        split_steps(None)


QUESTION = "Tom has 3 apples and buys 4 more. Each apple costs $2. How much are his apples worth?"
REFERENCE = "He has 3+4=<<3+4=7>>7 apples\nThey are worth 7*2=<<7*2=14>>14 dollars\nA: 14"


@pytest.mark.parametrize("solution,bad,reason", [
    ("He has 3+4=<<3+4=7>>7 apples\nSo 7*2=<<7*2=14>>14\nA: 14", None, None),
    ("He has 3+4=<<3+4=8>>8 apples\nSo 8*2=<<8*2=16>>16\nA: 16", 0, "false arithmetic"),
    ("He has 3*4=<<3*4=12>>12 apples\nSo 12*2=<<12*2=24>>24\nA: 24", 0, "leaves the reference chain"),
    ("He has 3+4=<<3+4=7>>7 apples\nSo he pays 7 dollars\nA: 7", 2, "wrong final answer"),
    ("He has 3+4=<<3+4=7>>7 apples\nHalf is 7/2=<<7/2=3.5>>3.5\nA: 14", 1, "leaves the reference chain"),
])
def test_first_bad_step_rule(solution, bad, reason):
    from math_rm.step_labels import first_bad_step

    assert first_bad_step(split_steps(solution), REFERENCE, QUESTION) == (bad, reason)


def test_arithmetic_checks_and_labels():
    from math_rm.step_labels import arithmetic_holds, label_solution, safe_eval

    assert arithmetic_holds("10/3", "3.33") and arithmetic_holds("2*1/2", "1.0") and arithmetic_holds("2**3", "8")
    assert arithmetic_holds("7*8", "54") is False and arithmetic_holds("10/3", "3.3") is True
    assert arithmetic_holds("2*x", "4") is None and safe_eval("__import__('os').system('x')") is None
    assert safe_eval("2**100000") is None and safe_eval("1/0") is None
    assert label_solution(3, True, 1) == [1, 1, 1]          # a correct outcome: every step good
    assert label_solution(4, False, 1) == [1, 0, None, None]  # good up to the first error, unlabelled after
    assert label_solution(3, False, None) == [1, 1, 0]        # nothing flagged: the final answer step is bad


@pytest.mark.parametrize("expr", [
    "((((9**20)**20)**20)**20)**20",      # each level multiplied the work by 20 before the bound
    "2**20**20",                           # right-associative: 2**(20**20)
    "-" * 100000 + "1",                    # deep unary nesting: MemoryError from the parser, uncaught before
    "(" * 5000 + "1" + ")" * 5000,
    "1" + "+1" * 500,                      # long, shallow in text but deep in the tree
])
def test_safe_eval_is_bounded(expr):
    """Refused (None) rather than computed: before the bounds the first took seconds and returned a number."""
    from math_rm.step_labels import safe_eval

    assert safe_eval(expr) is None


def test_safe_eval_still_exact_within_bounds():
    from fractions import Fraction

    from math_rm.step_labels import safe_eval

    assert safe_eval("(2**10)**2") == 2 ** 20 and safe_eval("-(-(-3))") == -3
    assert safe_eval("1/3+1/6") == Fraction(1, 2) and safe_eval("9**20") == 9 ** 20


def test_label_candidates_and_agreement():
    from math_rm.step_labels import label_candidates, rule_agreement

    row = {"question": QUESTION, "ground_truth": REFERENCE,
           "a": {"solution": "He has 3+4=<<3+4=7>>7 apples\nSo 7*2=<<7*2=14>>14\nA: 14", "is_correct": True},
           "b": {"solution": "He has 3*4=<<3*4=12>>12 apples\nSo 12*2=<<12*2=24>>24\nA: 24", "is_correct": False},
           "c": {"solution": "He has 3+4=<<3+4=7>>7 apples\nSo 7+2=<<7+2=9>>9\nA: 14", "is_correct": True}}
    cand = from_gsm8k_solutions(row, 0)[0]
    sols = label_candidates(cand)
    assert [s["labels"] for s in sols] == [[1, 1, 1], [0, None, None], [1, 1, 1]]
    stats = rule_agreement([sols])
    assert stats["solutions"] == 3 and stats["agreement"] == pytest.approx(2 / 3)  # c is flagged yet correct
    assert stats["correct_flagged"] == 1 and stats["wrong_flagged"] == 1


# ------------------------------------------------------------------ converters


def test_gsm8k_converters():
    assert gsm8k_answer("x\n#### 1,000") == "1000" and gsm8k_answer("a\nA: 18") == "18"
    with pytest.raises(RowError):
        gsm8k_answer("no answer here")
    row = from_gsm8k({"question": "q?", "answer": "a=<<1+1=2>>2\nb\n#### 2"})[0]
    assert row["steps"] == ["a=<<1+1=2>>2", "b", "#### 2"] and row["labels"] == [1, 1, 1] and row["reference"] == "2"
    sol = {"question": "q?", "ground_truth": "1+1=<<1+1=2>>2\nA: 2",
           "6b_finetuning": {"solution": "s1\nA: 2", "is_correct": True},
           "6b_verification": {"solution": "s2\nA: 3", "is_correct": False}}
    cand = from_gsm8k_solutions(sol, 7)[0]
    assert cand["responses"] == ["s1\nA: 2", "s2\nA: 3"] and cand["correct"] == [True, False]
    assert cand["reference"] == "2" and cand["id"] == "gsm8k-test-7"


def test_rlhflow_and_prm800k_converters():
    chat = {"conversations": [
        {"role": "user", "content": "Find 2+3. Step 1: 2+3=5. ки"}, {"role": "assistant", "content": "+"},
        {"role": "user", "content": "Step 2: The answer is 6 ки"}, {"role": "assistant", "content": "-"}]}
    row = from_rlhflow_step_chat(chat)[0]
    assert row["prompt"][0]["content"] == "Find 2+3." and row["steps"] == ["Step 1: 2+3=5.", "Step 2: The answer is 6"]
    assert row["labels"] == [1, 0]
    with_prompt = from_rlhflow_step_chat({"prompt": "Find 2+3.", "conversations": [
        {"role": "user", "content": "Find 2+3. It is 5."}, {"role": "assistant", "content": "+"}]})[0]
    assert with_prompt["steps"] == ["It is 5."]
    with pytest.raises(RowError, match="'\\+' or '-'"):
        from_rlhflow_step_chat({"prompt": "q", "conversations": [{"role": "user", "content": "q a"},
                                                                  {"role": "assistant", "content": "maybe"}]})
    bon = from_rlhflow_best_of_n({"prompt": "q", "answers": ["a", "b"], "labels": [0, 1], "id": None, "idx": 7})[0]
    assert bon["correct"] == [False, True] and bon["id"] == "7"  # a null id is no id (not the text "None")
    for labels in ([2, 1], [0.9, 0], [-1, 1]):  # not 0/1: never read as "incorrect"
        with pytest.raises(RowError, match="correctness labels"):
            from_rlhflow_best_of_n({"prompt": "q", "answers": ["a", "b"], "labels": labels})
    prm = {"question": {"problem": "p", "ground_truth_answer": "3"}, "label": {"steps": [
        {"completions": [{"text": "s1", "rating": 1}], "chosen_completion": 0},
        {"completions": [{"text": "s2", "rating": 0}], "chosen_completion": 0},
        {"completions": [{"text": "alt", "rating": 1}, {"text": "s3", "rating": -1}], "chosen_completion": None},
        {"completions": [{"text": "never", "rating": 1}], "chosen_completion": 0}]}}
    out = from_prm800k(prm)[0]
    assert out["steps"] == ["s1", "s2", "s3"] and out["labels"] == [1, 1, 0] and out["reference"] == "3"


def test_auto_conversion_counts_bad_rows():
    rows = [{"prompt": "q", "steps": ["a", "b"], "labels": [1, None]},
            {"prompt": "q", "steps": ["a"], "labels": [None]},              # nothing labelled
            {"prompt": "q", "steps": ["a", "b"], "labels": [1]},            # length mismatch
            {"question": "q", "solutions": [{"text": "a\nb", "steps": ["a", "b"], "labels": [1, 0],
                                             "is_correct": False}], "reference": "1"}]
    steps, report = to_steps(rows)
    assert len(steps) == 2 and report.total == 2 and steps[1]["labels"] == [1, 0]
    with pytest.raises(RowError, match="row 1"):
        to_steps(rows, strict=True)
    cands, rep = to_candidates([{"prompt": "q", "responses": ["a"], "correct": [True]}, rows[3]])
    assert len(cands) == 2 and not rep.total and cands[1]["correct"] == [False]


def test_candidates_with_conflicting_identical_responses_or_an_empty_one_are_skipped():
    """Two candidates identical after stripping whitespace but labelled differently: no pick between them can be
    right or wrong but by index, so the question is skipped, counted (strict: an error). Identical candidates with
    one label stay. An empty or whitespace-only candidate skips its question likewise."""
    rows = [{"id": "dup", "prompt": "q", "responses": ["x #### 4", "x #### 4 ", "y", "x #### 4"],
             "correct": [True, False, True, False]},
            {"id": "same", "prompt": "q", "responses": ["x #### 4", " x #### 4", "y #### 5"],
             "correct": [True, True, False]},
            {"id": "empty", "prompt": "q", "responses": ["x #### 4", " \n"], "correct": [True, False]}]
    cands, rep = to_candidates(rows)
    assert [c["id"] for c in cands] == ["same"] and cands[0]["responses"][1] == " x #### 4"
    assert rep.counts == {"identical candidates carry conflicting correctness labels": 1,
                          "a candidate is an empty response": 1}
    with pytest.raises(RowError, match="conflicting correctness labels"):
        to_candidates(rows[:1], strict=True)


@pytest.mark.skipif(not (SHARED / "example_model_solutions.jsonl").is_file(), reason="../shared/data absent")
def test_real_gsm8k_solutions_split_and_baselines():
    from rm_core.best_of_n import baselines, load_candidates

    test = load_candidates(str(SHARED / "example_model_solutions.jsonl"), "test")
    assert len(test) == 319 and sum(len(c["responses"]) for c in test) == 1276
    b = baselines(test)  # the figures
    assert round(b["random"], 3) == 0.361 and round(b["majority_vote"], 3) == 0.439 and round(b["oracle"], 3) == 0.633


# ------------------------------------------------------------------ best-of-N on hand tables


def test_best_of_n_baselines_on_a_hand_table():
    from rm_core.best_of_n import baselines, majority_pick, score_pick

    cands = [
        # answers 5, 5, 7: majority 5 (correct); random 2/3; oracle 1
        {"prompt": Q, "responses": ["x\nA: 5", "y\nA: 5.0", "z\nA: 7"], "correct": [True, True, False]},
        # answers 7, 5, 9, 5: majority 5 (wrong); random 1/4; oracle 1
        {"prompt": Q, "responses": ["A: 7", "A: 5", "A: 9", "A: 5"], "correct": [True, False, False, False]},
        # answers 9, 3: a tie; "first" picks 9 (wrong), "expected" 1/2; random 1/2
        {"prompt": Q, "responses": ["A: 9", "The answer is 3."], "correct": [False, True]},
        # no answers at all: everyone tied; first -> candidate 0 (wrong); expected -> random 0
        {"prompt": Q, "responses": ["hmm", "dunno"], "correct": [False, False]},
    ]
    b = baselines(cands)
    assert b["random"] == pytest.approx((2 / 3 + 1 / 4 + 1 / 2 + 0) / 4)
    assert b["majority_vote"] == pytest.approx(1 / 4)
    assert b["majority_vote_expected_ties"] == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert b["oracle"] == pytest.approx(3 / 4)
    assert majority_pick(["A: 1,000", "A: 1000", "A: 3"], [True, True, False]) == 1.0  # "1,000" == "1000"
    assert score_pick([0.2, 0.9, 0.9], [False, False, True]) == (1, 0.0)  # ties: the lower index
    assert score_pick([None, 0.1], [True, False]) == (1, 0.0) and score_pick([None], [True]) == (None, 0.0)


def test_weighted_vote_on_a_hand_table():
    from math_rm.best_of_n import judge_accuracy
    from rm_core.best_of_n import weighted_vote_pick

    five_five_seven = ["x\nA: 5", "y\nA: 5.0", "z\nA: 7"]
    right = [True, True, False]
    # probabilities: group "5" weighs 0.3 + 0.3 = 0.6 > 0.5, so it wins though "7" has the top score
    assert weighted_vote_pick(five_five_seven, [0.3, 0.3, 0.5], right, True) == (0, 1.0)
    assert weighted_vote_pick(five_five_seven, [0.1, 0.2, 0.5], right, True) == (2, 0.0)  # 0.3 < 0.5
    # logits go through a sigmoid: 2 x sigmoid(-3) = 0.095 < sigmoid(2) = 0.88
    assert weighted_vote_pick(five_five_seven, [-3.0, -3.0, 2.0], right, False) == (2, 0.0)
    assert weighted_vote_pick(five_five_seven, [0.2, 0.4, None], right, True) == (1, 1.0)  # the group's best-scored one
    assert weighted_vote_pick(["no answer", "none"], [0.1, 0.9], [True, False], True) == (1, 0.0)  # no votes
    # a reward model's logits that happen to fall in [0, 1] are still logits (they were weighted raw, as
    # probabilities, on such a question): sigmoid weights 0.525 + 0.550 > 0.622, so group "5" wins
    assert weighted_vote_pick(five_five_seven, [0.1, 0.2, 0.5], right, False) == (1, 1.0)
    from judges.rm_judge import RewardModelJudge
    from math_rm.judge import OutcomeRewardJudge, ProcessRewardJudge
    from rm_core.best_of_n import vote_weights_are_probabilities

    assert ProcessRewardJudge.scores_are_probabilities and OutcomeRewardJudge.scores_are_probabilities
    assert not RewardModelJudge.scores_are_probabilities
    from judges.code_exec import CodeExecutionJudge
    from judges.compose import MathAnswerMatch
    from judges.llm_judge import PointwiseLLMJudge

    assert CodeExecutionJudge.scores_are_probabilities and MathAnswerMatch.scores_are_probabilities
    rated = PointwiseLLMJudge(object.__new__(type("B", (), {"supports_choice_probs": False})))
    assert rated.scores_are_probabilities and not PointwiseLLMJudge(rated.backend, normalize=False).scores_are_probabilities
    assert vote_weights_are_probabilities(type("P", (), {"pointwise": True, "scores_are_probabilities": True})())
    cands = [{"responses": five_five_seven, "correct": right}, {"responses": ["A: 1", "A: 2"], "correct": [False, True]}]
    acc = judge_accuracy([[0.3, 0.3, 0.5], [0.6, 0.4]], cands, probabilities=True)
    assert acc["accuracy"] == 0.0 and acc["weighted_vote_accuracy"] == 0.5


# ------------------------------------------------------------------ the one-sequence format


def test_encoding_slots_tags_and_truncation(tok):
    tag, tag_id = choose_step_tag(tok)
    assert tag == "~"  # the first one-token candidate for the tiny byte-level tokenizer
    with pytest.raises(ValueError, match="not one token"):
        choose_step_tag(tok, "ки")
    ids, slots = encode_solution(tok, Q, ["the quick fox", "jumps over", "the lazy dog"], tag_id)
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert all(ids[s] == tag_id and ids[s + 1: s + 1 + len(newline)] == newline for s in slots)
    assert tok.decode(ids[: slots[0]]).endswith("<|im_start|>assistant\nthe quick fox")
    cut_ids, cut_slots = encode_solution(tok, Q, ["the quick fox", "jumps over", "the lazy dog"], tag_id,
                                         max_length=len(ids) - slots[1])
    assert len(cut_ids) == len(ids) - slots[1] and cut_ids[0] == ids[0]  # BOS kept
    assert cut_slots[:2] == [None, None] and cut_ids[cut_slots[2]] == tag_id


def test_max_length_too_short_for_a_step_slot_is_a_one_line_error(tmp_path, tok, capsys):
    """--max_length that cannot hold one step slot: a UserInputError (the command prints `error: ...`, exit 2),
    as is a --step_tag that is not one token."""
    from math_rm import train_prm
    from math_rm.training import make_parser
    from rm_core.errors import UserInputError, run_cli

    _, tag_id = choose_step_tag(tok)
    with pytest.raises(UserInputError, match="^step tag 'ки' is not one token"):
        choose_step_tag(tok, "ки")
    with pytest.raises(UserInputError) as err:
        encode_solution(tok, Q, ["the quick fox", "jumps over"], tag_id, max_length=1)
    assert str(err.value) == "max_length 1 is too short for one step slot"
    base, data = _synthetic(tmp_path, 2, 1)
    with pytest.raises(SystemExit) as exit_:
        run_cli(train_prm.main, *make_parser().parse_args_and_config(
            _argv(base, data, tmp_path / "prm", "--max_steps", "1", "--max_length", "1")))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: max_length 1 is too short for one step slot"


def _steps_row(steps, labels):
    return {"prompt": Q, "steps": steps, "labels": labels, "id": "x"}


def test_loss_mask_only_at_judgement_positions(tok, tiny_lm):
    from types import SimpleNamespace

    from math_rm.training import MathRMTrainer, build_dataset

    _, tag_id = choose_step_tag(tok)
    jid = judgement_token_ids(tok)
    rows = [_steps_row(["the quick fox", "jumps", "over", "lazy"], [1, None, 0, None]),
            _steps_row(["hello world"], [1])]
    ds, stats = build_dataset(rows, tok, tag_id, jid, None)
    ids0, slots0 = encode_solution(tok, Q, ["the quick fox", "jumps", "over"], tag_id)  # the trailing step is dropped
    assert ds[0]["input_ids"] == ids0
    marked = [i for i, t in enumerate(ds[0]["labels"]) if t != -100]
    assert marked == [slots0[0] + 1, slots0[2] + 1]  # labelled steps only; the unlabelled middle step has none
    assert [ds[0]["labels"][i] for i in marked] == [jid["+"], jid["-"]]
    assert stats["good_steps"] == 2 and stats["bad_steps"] == 1
    # the trainer's loss (LM head at the slots only) equals the stock shifted causal-LM loss over these labels
    width = max(len(r["input_ids"]) for r in ds)
    ids = torch.full((len(ds), width), tok.pad_token_id)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, r in enumerate(ds):
        n = len(r["input_ids"])
        ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(r["input_ids"]), 1, torch.tensor(r["labels"])
    loss = MathRMTrainer.compute_loss(SimpleNamespace(state=SimpleNamespace(global_step=0), label_ids=None), tiny_lm,
                                      {"input_ids": ids, "attention_mask": mask, "labels": labels})
    logits = tiny_lm(input_ids=ids, attention_mask=mask).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_one_pass_scores_equal_per_step_scores(tok, tiny_lm):
    from math_rm.judge import ProcessRewardJudge, aggregate

    judge = ProcessRewardJudge(tiny_lm, tok, max_length=512)
    convs = [Q + [{"role": "assistant", "content": "the quick fox\njumps over\nthe lazy dog\nA: 5"}],
             Q + [{"role": "assistant", "content": "hello"}],
             [{"role": "user", "content": "Write a poem about the sea."},
              {"role": "assistant", "content": "sea\n\nsea sea\n\nthe sea"}]]
    one_pass = judge.step_scores(convs)
    per_step = judge.step_scores_per_step(convs)
    assert [len(s) for s in one_pass] == [4, 1, 3]
    for a, b in zip(one_pass, per_step):
        assert a == pytest.approx(b, abs=1e-5)
    assert judge.max_tokens is not None  # no batch size: on a CPU, rows a forward by a token budget
    one_row = ProcessRewardJudge(tiny_lm, tok, max_length=512, batch_size=1)  # right-padded batches: the same scores
    assert one_row.max_tokens is None
    assert [x for s in one_row.step_scores(convs) for x in s] == pytest.approx([x for s in one_pass for x in s], abs=1e-5)
    assert judge.score(convs) == pytest.approx([min(s) for s in one_pass])
    assert aggregate([0.5, 0.8], "prod") == pytest.approx(0.4) and aggregate([0.5, None, 0.8], "mean") == 0.65
    assert aggregate([0.2, 0.9], "last") == 0.9 and aggregate([None], "min") is None
    with pytest.raises(ValueError, match="unknown aggregation"):
        ProcessRewardJudge(tiny_lm, tok, aggregation="median")
    # an empty response has no step: a counted failure, not the score of one empty step; the others unchanged
    empty = Q + [{"role": "assistant", "content": "  \n "}]
    assert judge.score([convs[0], empty, convs[1]]) == pytest.approx([min(one_pass[0]), None, min(one_pass[1])])
    assert judge.failures.counts["empty response"] == 1 and judge.score([empty]) == [None]


def test_best_of_n_reports_the_candidates_the_prm_cut(tok, tiny_lm):
    """A PRM scores the steps it kept: with min, a bad early step cut away is never seen; the evaluation says how
    many candidates and step slots were cut (it was only on the judge object)."""
    from math_rm.best_of_n import evaluate
    from math_rm.judge import ProcessRewardJudge

    long = "\n".join(f"step {k} the quick brown fox" for k in range(30)) + "\nA: 5"
    cands = [{"id": "q", "prompt": Q, "responses": [long, "short\nA: 5"], "correct": [True, True]}]
    out = evaluate(cands, {"prm": ProcessRewardJudge(tiny_lm, tok, max_length=120)}, progress=False)["prm"]
    assert out["truncated_candidates"] == 1 and out["step_slots_cut"] > 0
    out = evaluate(cands, {"prm": ProcessRewardJudge(tiny_lm, tok, max_length=2048)}, progress=False)["prm"]
    assert out["truncated_candidates"] == 0 and out["step_slots_cut"] == 0


def test_bf16_step_scoring_pads_its_width_to_the_cpu_step(tok, tiny_lm):
    """bf16 on a CPU: a PRM forward is padded to a multiple of LOW_PRECISION_WIDTH_STEP like every other (oneDNN
    meets a few shapes); the right pads change no step's probability. fp32 stays as wide as its longest row."""
    import copy

    from math_rm.judge import ProcessRewardJudge
    from rm_core.inference import LOW_PRECISION_WIDTH_STEP

    convs = [Q + [{"role": "assistant", "content": "the quick fox\njumps over\nthe lazy dog\nA: 5"}],
             Q + [{"role": "assistant", "content": "hello\nworld"}]]

    def widths_and_scores(model):
        judge, widths = ProcessRewardJudge(model, tok, max_length=512, batch_size=2), []
        handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: widths.append(i[0].shape[1]))
        try:
            return widths, [x for s in judge.step_scores(convs) for x in s]
        finally:
            handle.remove()

    fp32_widths, fp32 = widths_and_scores(tiny_lm)
    assert any(w % LOW_PRECISION_WIDTH_STEP for w in fp32_widths)
    widths, bf16 = widths_and_scores(copy.deepcopy(tiny_lm).to(torch.bfloat16))
    assert widths and all(w % LOW_PRECISION_WIDTH_STEP == 0 for w in widths)
    assert bf16 == pytest.approx(fp32, abs=2e-2)  # the fp32 step scores, to bf16's precision


# ------------------------------------------------------------------ end to end on a tiny backbone

WORDS = "the quick brown fox jumps over lazy dog hello world poem".split()


def _synthetic(tmp_path: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[Path, Path]:
    """Solutions whose steps are word strings; a step with "sea" is bad. Train: Steps rows as our labelling
    output ("sampled"); test: Candidates (one all-good candidate per question)."""
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base", seed=0)
    rng = random.Random(seed)

    def step(bad=False):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        if bad:
            words.insert(rng.randint(0, len(words)), "sea")
        return " ".join(words)

    def solution(bad_at):
        return [step(k == bad_at) for k in range(3)]

    data = tmp_path / "data"
    data.mkdir()
    train = []
    for i in range(n_train):
        sols = []
        for bad_at in (None, rng.randint(0, 2)):
            steps = solution(bad_at)
            labels = [1, 1, 1] if bad_at is None else [1] * bad_at + [0] + [None] * (2 - bad_at)
            sols.append({"text": "\n".join(steps), "steps": steps, "labels": labels, "is_correct": bad_at is None})
        train.append({"index": i, "id": f"q{i}", "question": step(), "reference": "0", "solutions": sols})
    test = []
    for i in range(n_test):
        good = rng.randint(0, 2)
        responses = ["\n".join(solution(None if j == good else rng.randint(0, 2))) for j in range(3)]
        test.append({"id": f"t{i}", "prompt": step(), "responses": responses, "correct": [j == good for j in range(3)]})
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    return base, data


def _argv(base, data, out, *extra):
    return ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_length", "128",
            "--logging_steps", "5", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            "--use_cpu", "true", "--seed", "0", "--activation_checkpointing", "false", *extra]


def test_prm_learns_a_step_rule_and_loads_as_a_judge(tmp_path):
    import judges
    from math_rm import train_prm
    from math_rm.judge import ProcessRewardJudge
    from math_rm.training import make_parser

    base, data = _synthetic(tmp_path, 48, 10)
    out = tmp_path / "prm"
    results = train_prm.main(*make_parser().parse_args_and_config(_argv(base, data, out, "--num_train_epochs", "12")))
    config = json.loads((out / "config.json").read_text())
    assert config["rm_family"] == "prm" and config["math_rm_step_tag"] == "~" and config["math_rm_aggregation"] == "min"
    assert set(config["math_rm_judgement_ids"]) == {"+", "-"} and config["math_rm_template"] == "math-rm-v1"
    judge = judges.load(str(out))
    assert isinstance(judge, ProcessRewardJudge)
    prompt = [{"role": "user", "content": "the quick fox"}]
    good, bad = "hello world\nthe lazy dog\njumps over", "hello world\nthe sea dog\njumps over"
    s_good, s_bad = judge.step_scores([prompt + [{"role": "assistant", "content": r}] for r in (good, bad)])
    assert min(s_good) > 0.5 and s_bad[0] > 0.5 and s_bad[1] < 0.5  # the bad step, and only it, scores low
    assert judge.compare(prompt, good, bad) > 0.5
    assert results["best_of_n"]["prm"]["accuracy"] == 1.0 and results["best_of_n"]["random"] == pytest.approx(1 / 3)
    assert judges.load(str(out), aggregation="mean").aggregation == "mean"


def test_prm_with_the_two_token_loss_learns_the_rule_and_records_it(tmp_path):
    """--judgement_loss tokens: the loss is the two-way cross-entropy from the first step (about ln 2 for an
    untrained judge, where the vocabulary-wide one starts near ln(vocab)), and the rule is learnt; a bad value in
    a YAML (which argparse's choices never see) is refused too."""
    import math

    import judges
    from math_rm import train_prm
    from math_rm.training import make_parser

    base, data = _synthetic(tmp_path, 48, 10)
    out = tmp_path / "prm"
    args = _argv(base, data, out, "--num_train_epochs", "6", "--judgement_loss", "tokens")
    results = train_prm.main(*make_parser().parse_args_and_config(args))
    assert json.loads((out / "config.json").read_text())["math_rm_judgement_loss"] == "tokens"
    assert results["train"]["train_loss"] < math.log(2)
    prompt = [{"role": "user", "content": "the quick fox"}]
    good, bad = "hello world\nthe lazy dog\njumps over", "hello world\nthe sea dog\njumps over"
    s_good, s_bad = judges.load(str(out)).step_scores([prompt + [{"role": "assistant", "content": r}] for r in (good, bad)])
    assert min(s_good) > 0.5 and s_bad[1] < 0.5
    with pytest.raises(SystemExit):  # an unknown choice is refused by the parser
        make_parser().parse_args_and_config(_argv(base, data, out, "--judgement_loss", "binary"))
    config = tmp_path / "bad.yaml"
    config.write_text("judgement_loss: token\n")
    with pytest.raises(ValueError, match="judgement_loss must be"):
        make_parser().parse_args_and_config(_argv(base, data, out, "--config", str(config)))


def test_orm_and_scalar_orm_train_and_load(tmp_path):
    import judges
    from judges.rm_judge import RewardModelJudge
    from math_rm import train_orm, train_scalar_orm
    from math_rm.judge import OutcomeRewardJudge
    from math_rm.training import make_parser

    base, data = _synthetic(tmp_path, 48, 8, seed=1)
    out = tmp_path / "orm"
    results = train_orm.main(*make_parser().parse_args_and_config(_argv(base, data, out, "--num_train_epochs", "12")))
    judge = judges.load(str(out))
    assert isinstance(judge, OutcomeRewardJudge) and json.loads((out / "config.json").read_text())["rm_family"] == "orm"
    prompt = "the quick fox"
    assert judge.compare(prompt, "hello world\nthe lazy dog", "hello world\nthe sea dog") > 0.5
    assert results["best_of_n"]["orm"]["accuracy"] >= 0.75
    assert len(judge.step_scores([[{"role": "user", "content": prompt},
                                   {"role": "assistant", "content": "a\nb\nc"}]])[0]) == 1  # one slot

    scalar = tmp_path / "scalar"
    argv = _argv(base, data, scalar, "--max_steps", "3", "--learning_rate", "1e-3")
    res = train_scalar_orm.main(*train_scalar_orm.make_parser().parse_args_and_config(argv))
    cfg = json.loads((scalar / "config.json").read_text())
    assert cfg["rm_family"] == "orm" and cfg["math_rm_head"] == "scalar"
    assert isinstance(judges.load(str(scalar)), RewardModelJudge) and "scalar_orm" in res["best_of_n"]


def test_scalar_orm_counts_the_skips_of_the_users_file(tmp_path, capsys):
    """The scalar ORM trains on pairs it generates in <output_dir>/pairs: the skips reported (console line,
    eval_results.json "data") are those of the user's rows, with reasons, and a question whose candidates are all
    correct or all wrong (no pair) is a counted skip; no usable row at all is an error naming the user's file."""
    from math_rm import train_scalar_orm
    from rm_core.errors import UserInputError
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "base", seed=0)

    def cand(qid, responses, correct):
        return {"id": qid, "prompt": f"question {qid}?", "responses": responses, "correct": correct}

    ok = (["hello world", "the sea dog"], [True, False])
    rows = [cand("q0", *ok), cand("bad-text", ["a", "b"], ["yes", 1]), cand("q1", *ok),
            cand("allright", ["a", "b"], [True, True]), cand("bad-empty", ["", "a"], [True, False]),
            cand("allwrong", ["a", "b"], [False, False]), cand("q2", *ok), cand("q3", *ok)]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "test.jsonl").write_text(json.dumps(cand("t0", *ok)) + "\n")
    out = tmp_path / "scalar"
    argv = _argv(base, data, out, "--max_steps", "1")
    results = train_scalar_orm.main(*train_scalar_orm.make_parser().parse_args_and_config(argv))
    reasons = {"correctness labels are booleans (or 0/1), got ['yes', 1]": 1, "a candidate is an empty response": 1,
               "no pair: every candidate is correct": 1, "no pair: every candidate is wrong": 1}
    stored = json.loads((out / "eval_results.json").read_text())["data"]
    for report in (results["data"], stored):
        assert report["dataset"] == str(data) and report["train_pairs"] == 4
        assert report["train_skipped"]["skipped"] == 4 and report["train_skipped"]["by_reason"] == reasons
        assert report["train_skipped"]["examples"]["no pair: every candidate is wrong"] == ["id allwrong"]
    assert "| skipped train rows | 4 (" in (out / "README.md").read_text()  # the card: the user's file's skips
    assert (f"[data] {data / 'train.jsonl'}: 8 training rows -> 4 (correct, incorrect) pairs; 4 rows skipped "
            "(1 correctness labels are booleans (or 0/1), got ['yes', 1], 1 a candidate is an empty response, "
            "1 no pair: every candidate is correct, 1 no pair: every candidate is wrong); held-out: 1 questions "
            "(the data's 'test' split), 0 rows skipped") in capsys.readouterr().out.splitlines()

    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:6:2]))  # no pair at all
    bad_out = tmp_path / "none"
    argv = _argv(base, data, bad_out, "--max_steps", "1")
    with pytest.raises(UserInputError) as err:
        train_scalar_orm.main(*train_scalar_orm.make_parser().parse_args_and_config(argv))
    assert str(err.value) == (f"no usable training pairs in {data / 'train.jsonl'}: 3 rows read, 3 rows skipped "
                              "(1 correctness labels are booleans (or 0/1), got ['yes', 1], 1 no pair: every "
                              "candidate is correct, 1 no pair: every candidate is wrong)")
    assert not (bad_out / "pairs").exists()


def test_lora_prm_merges(tmp_path):
    import judges
    from math_rm import train_prm
    from math_rm.training import make_parser

    base, data = _synthetic(tmp_path, 8, 2, seed=2)
    out = tmp_path / "lora"
    train_prm.main(*make_parser().parse_args_and_config(_argv(
        base, data, out, "--max_steps", "2", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_target_modules", "q_proj", "v_proj")))
    assert (out / "lora_adapter" / "adapter_config.json").is_file()
    assert judges.load(str(out)).score([Q + [{"role": "assistant", "content": "a\nb"}]])[0] is not None


# ------------------------------------------------------------------ the labelling pipeline


class ScriptedPolicy:
    """Deterministic 'policy': solutions for the bare question; completions depend on the prefix it sees."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = []

    def generate(self, prompts, n, seed):
        text = self.tokenizer.decode(prompts[0])
        self.calls.append(text)
        if text.endswith("<|im_start|>assistant\n"):
            return [["hello world\nThe answer is 5.", "hello world\nthe sea\nthe fox\nThe answer is 7."][:n]]
        return [["The answer is 7." if "sea" in text else "The answer is 5."] * n]


@pytest.mark.parametrize("stop,expected", [(True, [1, 0, None, None]), (False, [1, 0, 0, 0])])
def test_monte_carlo_step_labels(tok, stop, expected):
    from math_rm.sample_solutions import label_question

    policy = ScriptedPolicy(tok)
    sols = label_question(policy, "q", "5", n=2, mc=2, seed=0, stop_at_first_error=stop)
    assert sols[0]["is_correct"] and sols[0]["labels"] == [1, 1] and sols[0]["answer"] == "5"
    assert not sols[1]["is_correct"] and sols[1]["steps"] == ["hello world", "the sea", "the fox", "The answer is 7."]
    assert sols[1]["labels"] == expected
    assert len(policy.calls) == 1 + (2 if stop else 3)  # one sampling call, then one per labelled prefix


def test_sampling_pipeline_end_to_end_with_resume(tmp_path):
    from math_rm.sample_solutions import finished_indices, main
    from rm_core.data import to_candidates, to_steps
    from rm_core.testing import save_tiny_backbone

    base = save_tiny_backbone(tmp_path / "policy", seed=0)
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"}) + "\n"
                                 for i in range(3)))
    out = tmp_path / "sampled.jsonl"
    argv = ["--questions", str(questions), "--policy", str(base), "--backend", "hf", "--n", "2", "--mc", "2",
            "--max_new_tokens", "12", "--output", str(out), "--no_progress", "--seed", "3"]
    first = main([*argv, "--limit", "2"])  # a run "killed" after two questions
    assert first["questions"] == 2 and finished_indices(out) == {0, 1}
    with open(out, "a") as f:
        f.write('{"index": 2, "half a line')  # a killed write
    second = main(argv)
    assert second["questions"] == 1 and second["skipped_finished"] == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and all(len(r["solutions"]) == 2 for r in rows)
    for r in rows:
        for s in r["solutions"]:  # a random policy at 12 tokens is mostly cut off: ungraded, never "wrong"
            assert len(s["labels"]) == len(s["steps"])
            assert s["is_correct"] in (True, False) or (s["truncated"] and s["is_correct"] is None)
    # seeded: a fresh uninterrupted run writes the same rows
    again = tmp_path / "again.jsonl"
    main([*argv[:-5], "--output", str(again), "--no_progress", "--seed", "3"])
    assert [json.loads(x)["solutions"] for x in again.read_text().splitlines()] == [r["solutions"] for r in rows]
    cands, skipped = to_candidates(rows)
    graded = sum(any(s["is_correct"] is not None for s in r["solutions"]) for r in rows)
    assert len(cands) == graded and skipped.total == 3 - graded and to_steps(rows)[1].total == 0


class FlakyPolicy(ScriptedPolicy):
    """A policy behind a server: raises for every question while `down`, and for the question numbers in
    `fails_on` always; records the question numbers it sampled solutions for."""

    def __init__(self, tokenizer, down: bool = False, fails_on: tuple = ()):
        super().__init__(tokenizer)
        self.down, self.fails_on, self.asked = down, fails_on, []

    def generate(self, prompts, n, seed):
        import re

        text = self.tokenizer.decode(prompts[0])
        number = int(re.search(r"What is (\d+) \+ 1", text).group(1))
        if text.endswith("<|im_start|>assistant\n"):
            self.asked.append(number)
        if self.down or number in self.fails_on:
            raise ConnectionError("connection refused")
        return super().generate(prompts, n, seed)


def _flaky_sampling(tmp_path, monkeypatch, tok, policy, *extra) -> tuple[int, Path]:
    """sample_solutions through its command-line entry with `policy`; (exit code, output)."""
    import math_rm.sample_solutions as ss
    from rm_core.errors import run_cli

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"}) + "\n"
                                 for i in range(5)))
    (tmp_path / "policy").mkdir(exist_ok=True)
    (tmp_path / "policy" / "config.json").write_text("{}")
    monkeypatch.setattr(ss, "make_policy", lambda *a, **kw: policy)
    out = tmp_path / "sampled.jsonl"
    try:
        run_cli(ss.main, ["--questions", str(questions), "--policy", str(tmp_path / "policy"), "--backend", "hf",
                          "--n", "2", "--mc", "1", "--output", str(out), "--no_progress", *extra])
        return 0, out
    except SystemExit as stop:
        return stop.code, out


def test_sampling_goes_on_past_a_failed_question_and_a_rerun_asks_only_the_failed(tmp_path, monkeypatch, tok, capsys):
    from math_rm.sample_solutions import finished_indices

    flaky = FlakyPolicy(tok, fails_on=(1, 3))
    code, out = _flaky_sampling(tmp_path, monkeypatch, tok, flaky)
    assert code == 3 and flaky.asked == [0, 1, 2, 3, 4] and finished_indices(out) == {0, 2, 4}  # rows written
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 2 of 5 questions failed (40.0%), more than --max_failed_share 0.05")
    assert sum("question 1 failed (ConnectionError" in line for line in err) == 1 and "Traceback" not in str(err)
    up = FlakyPolicy(tok)
    code, out = _flaky_sampling(tmp_path, monkeypatch, tok, up)
    assert code == 0 and up.asked == [1, 3]  # exactly the failed ones; finished ones are not sampled again
    stats = json.loads(capsys.readouterr().out)
    assert stats["questions"] == 2 and stats["failed"] == 0 and stats["skipped_finished"] == 3
    assert sorted(json.loads(line)["index"] for line in out.read_text().splitlines()) == [0, 1, 2, 3, 4]


def test_sampling_max_failed_share_works_both_ways(tmp_path, monkeypatch, tok, capsys):
    code, out = _flaky_sampling(tmp_path, monkeypatch, tok, FlakyPolicy(tok, down=True))  # the server is down
    assert code == 3 and not out.read_text()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: 5 of 5 questions failed (100.0%)")
    code, _ = _flaky_sampling(tmp_path, monkeypatch, tok, FlakyPolicy(tok, fails_on=(2,)), "--max_failed_share", "0.2")
    assert code == 0  # 1 of 5 = 20%: not more than 0.2
    assert json.loads(capsys.readouterr().out)["failed_indices"] == [2]
    again = FlakyPolicy(tok, fails_on=(2,))
    code, _ = _flaky_sampling(tmp_path, monkeypatch, tok, again, "--max_failed_share", "0.19")
    assert code == 3 and again.asked == [2]
    assert "1 of 5 questions failed (20.0%), more than --max_failed_share 0.19" in capsys.readouterr().err


def test_offline_rule_labelling_output_trains_a_prm_format(tmp_path):
    from math_rm.sample_solutions import main
    from rm_core.data import to_steps

    src = tmp_path / "sols.jsonl"
    row = {"question": QUESTION, "ground_truth": REFERENCE,
           "6b_finetuning": {"solution": "He has 3*4=<<3*4=12>>12 apples\nSo 12*2=<<12*2=24>>24\nA: 24",
                             "is_correct": False}}
    src.write_text(json.dumps(row) + "\n")
    stats = main(["--offline_rule", "--solutions", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"])
    assert stats["solutions"] == 1 and stats["labelled_steps"] == 1
    steps, _ = to_steps([json.loads((tmp_path / "o.jsonl").read_text())])
    assert steps[0]["labels"] == [0, None, None]


# ------------------------------------------------------------------ real model (slow)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "example_model_solutions.jsonl").is_file(), reason="../shared/data absent")
def test_smollm2_prm_short_training_and_one_pass_scoring(tmp_path):
    from math_rm import train_prm
    from math_rm.judge import ProcessRewardJudge
    from math_rm.training import make_parser

    out = tmp_path / "prm"
    argv = ["--config", str(Path(__file__).resolve().parents[1] / "math_rm" / "configs" / "smollm2-135m-cpu.yaml"),
            "--dataset_name", str(SHARED / "example_model_solutions.jsonl"), "--output_dir", str(out),
            "--max_train_questions", "4", "--max_eval_questions", "2", "--max_steps", "2", "--max_length", "256",
            "--per_device_train_batch_size", "2",
            "--save_strategy", "no", "--disable_tqdm", "true"]
    results = train_prm.main(*make_parser().parse_args_and_config(argv))
    assert results["best_of_n"]["questions"] == 2 and results["best_of_n"]["prm"]["failed_candidates"] == 0
    judge = ProcessRewardJudge.from_pretrained(str(out))
    assert judge.step_tag == "§"
    conv = [{"role": "user", "content": "What is 3 + 4?"},
            {"role": "assistant", "content": "3 + 4 = <<3+4=7>>7\nA: 7"}]
    assert judge.step_scores([conv])[0] == pytest.approx(judge.step_scores_per_step([conv])[0], abs=1e-4)


# ------------------------------------------------------------------ NaN and inf are failures


def test_a_nan_step_score_fails_the_solution_whatever_the_aggregation(tok, tiny_lm):
    """min/max over a NaN depend on the order (min([0.4, nan]) is 0.4): a non-finite step fails the solution,
    counted, whatever the aggregation."""
    import math

    from math_rm.judge import ProcessRewardJudge, aggregate

    assert math.isnan(aggregate([0.4, math.nan], "min")) and math.isnan(aggregate([math.inf, 0.4], "mean"))
    judge = ProcessRewardJudge(tiny_lm, tok, max_length=512)
    judge.step_scores = lambda convs: [[0.4, math.nan, math.nan], [0.3, 0.6]]  # a model NaN from step 2 on
    convs = [Q + [{"role": "assistant", "content": "a\nb\nc"}], Q + [{"role": "assistant", "content": "a\nb"}]]
    for how in ("min", "prod", "mean", "last"):
        judge.aggregation = how
        scores = judge.score(convs)
        assert scores[0] is None and math.isfinite(scores[1]), how
    assert judge.failures.counts == {"non-finite score": 4}


def test_a_diverged_prm_run_stops_and_is_not_marked_done(tmp_path):
    from math_rm import train_prm
    from math_rm.training import make_parser
    from rm_core.finite import TrainingDivergedError

    base, data = _synthetic(tmp_path, 16, 4)
    out = tmp_path / "prm"
    argv = _argv(base, data, out, "--max_steps", "1")
    argv[argv.index("--learning_rate") + 1] = "1e38"
    with pytest.raises(TrainingDivergedError, match="step scores over the first 12 held-out solutions"):
        train_prm.main(*make_parser().parse_args_and_config(argv))
    assert not (out / "config.json").exists() and not (out / "eval_results.json").exists()
    assert (out / "diverged" / "model.safetensors").is_file()


def test_the_scalar_orms_pairs_of_an_earlier_run_are_not_replaced_by_other_data(tmp_path):
    from math_rm.train_scalar_orm import check_pairs_folder
    from rm_core.errors import UserInputError
    from rm_core.pipeline import TRAINING_FINGERPRINT

    pairs = tmp_path / "orm" / "pairs"
    pairs.mkdir(parents=True)
    old = [{"prompt": "q", "chosen": "a", "rejected": "b"}]
    (pairs / "train.jsonl").write_text(json.dumps(old[0]) + "\n", encoding="utf-8")
    new = [{"prompt": "q2", "chosen": "c", "rejected": "d"}]
    check_pairs_folder(pairs, new, None)  # no run recorded there yet: its pairs are only a start
    (tmp_path / "orm" / TRAINING_FINGERPRINT).write_text("{}", encoding="utf-8")
    check_pairs_folder(pairs, old, "auto")  # the same data: a resume
    with pytest.raises(UserInputError, match="pairs of an earlier run on other data"):
        check_pairs_folder(pairs, new, "auto")
    check_pairs_folder(pairs, new, "fresh")


class CuttingPolicy(ScriptedPolicy):
    """ScriptedPolicy whose second solution, and every completion after "the sea", stopped at max_new_tokens."""

    def generate(self, prompts, n, seed):
        texts = super().generate(prompts, n, seed)
        text = self.tokenizer.decode(prompts[0])
        if text.endswith("<|im_start|>assistant\n"):
            self.last_cut = [[False, True][:n]]
        else:
            self.last_cut = [["sea" in text] * n]
        return texts


def test_a_text_cut_at_max_new_tokens_is_never_graded_wrong(tok):
    """A cut solution has no answer: no correctness and no label on its unfinished last step; a cut completion
    is out of its step's vote, and a step whose completions were all cut is not labelled (it was labelled wrong)."""
    from math_rm.sample_solutions import label_question
    from rm_core.data import candidates_from_sampled

    sols = label_question(CuttingPolicy(tok), "q", "5", n=2, mc=2, seed=0, stop_at_first_error=False)
    assert sols[0]["is_correct"] and "truncated" not in sols[0]
    cut = sols[1]
    assert cut["truncated"] and cut["is_correct"] is None and cut["answer"] is None
    assert cut["labels"] == [1, None, None, None]  # after "hello world": finished, right; after "the sea": all cut
    (cands,) = candidates_from_sampled({"question": "q", "reference": "5", "solutions": sols + [
        {"text": "The answer is 7.", "is_correct": False}]})
    assert cands["responses"] == ["hello world\nThe answer is 5.", "The answer is 7."]  # the cut one left out
