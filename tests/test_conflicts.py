"""judges.conflicts: order-inconsistent pairs and intransitive triples, per subset."""

from __future__ import annotations

import pytest

from judges.base import Judge, PairVerdict, split_conversation
from judges.conflicts import detect_conflicts


class FirstShownWins(Judge):
    """Pure position bias: whatever is shown first wins with 0.9."""

    pointwise = False

    def _compare(self, items):
        return [0.9 for _ in items]


class RockPaperScissors(Judge):
    pointwise = False
    BEATS = frozenset({("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")})

    def _compare(self, items):
        out = []
        for i, (_, a, b) in enumerate(items):
            if "FAIL" in (a, b):
                self.failures.add("scripted", i)
                out.append(None)
            else:
                out.append(0.8 if (a, b) in self.BEATS else 0.2 if (b, a) in self.BEATS else 0.5)
        return out


class Lengths(Judge):
    def _score(self, conversations, references):
        return [float(len(split_conversation(c)[1])) for c in conversations]


class BothOrders(Judge):
    """Exposes judge_pairs like the LLM / pair-PM judges: verdicts scripted per pair."""

    pointwise = False

    def __init__(self, table):
        super().__init__()
        self.table = table

    def judge_pairs(self, items):
        return [PairVerdict(*self.table[(a, b)]) for _, a, b in items]


def test_position_bias_is_measured_as_order_inconsistency():
    report = detect_conflicts(FirstShownWins(), [{"prompt": "q", "responses": ["x", "y", "z"], "subset": "s"}])
    s = report["subsets"]["s"]
    assert s["pairs"] == 3 and s["order_inconsistent"] == 3 and s["order_inconsistency_rate"] == 1.0
    # averaged over both orders every pair is a tie: no decided triple, so no cycle can be claimed
    assert s["triples"] == 1 and s["decided_triples"] == 0 and s["intransitive_rate"] is None


def test_a_cycle_is_an_intransitive_triple_and_a_transitive_group_is_not():
    groups = [{"prompt": "q", "responses": ["rock", "paper", "scissors"], "subset": "rps"},
              {"prompt": "q", "responses": ["aaa", "a", "aa"], "subset": "len"}]
    report = detect_conflicts(RockPaperScissors(), groups[:1])
    assert report["subsets"]["rps"]["intransitive"] == 1 and report["subsets"]["rps"]["intransitive_rate"] == 1.0
    assert report["subsets"]["rps"]["order_inconsistent"] == 0
    lengths = detect_conflicts(Lengths(), groups)
    assert lengths["overall"]["intransitive"] == 0 and lengths["overall"]["order_inconsistent"] == 0
    assert lengths["subsets"]["len"]["decided_triples"] == 1  # a pointwise judge is measured, at zero


def test_failed_pairs_are_counted_not_guessed():
    report = detect_conflicts(RockPaperScissors(), [{"prompt": "q", "responses": ["rock", "FAIL", "paper", "scissors"]}])
    overall = report["overall"]
    assert overall["pairs"] == 6 and overall["failed_pairs"] == 3
    assert overall["triples"] == 4 and overall["decided_triples"] == 1 and overall["intransitive"] == 1
    assert report["subsets"].keys() == {"all"}


def test_judges_with_both_orders_report_their_own_verdicts():
    table = {("a", "b"): (0.9, 0.2), ("a", "c"): (0.8, 0.7), ("b", "c"): (None, 0.4)}
    report = detect_conflicts(BothOrders(table), [{"prompt": "q", "responses": ["a", "b", "c"]}])["overall"]
    assert report["order_inconsistent"] == 1 and report["failed_pairs"] == 1
    assert report["order_inconsistency_rate"] == pytest.approx(0.5)


def test_cli_reports_a_checkpoint_on_a_preference_file(tmp_path, capsys):
    import json

    from judges.conflicts import main
    from rm_core.testing import tiny_reward_model

    model, tok = tiny_reward_model(seed=1)
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    rows = [{"prompt": "q", "chosen": "a b", "rejected": "c", "subset": "s1", "id": "1"},
            {"prompt": "r", "chosen": "d", "rejected": "e f", "subset": "s2", "id": "2"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["--judge", str(tmp_path / "rm"), "--dataset", str(tmp_path / "pairs.jsonl"),
          "--output", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["subsets"]) == {"s1", "s2"} and report["overall"]["pairs"] == 2
    assert report["overall"]["order_inconsistent"] == 0  # a pointwise RM cannot flip with the order


# ---------------------------------------------------------------- position bias: one definition of each rate


HAND_MADE = [
    PairVerdict(0.9, 0.8),    # a wins in both orders: consistent; first shown wins 0.9 and 1 - 0.8 = 0.2
    PairVerdict(0.7, 0.2),    # a wins shown first, loses shown second: inconsistent; first wins 0.7 and 0.8
    PairVerdict(0.5, 0.5),    # a tie both times: consistent (the same winner: none); first wins 0.5 and 0.5
    PairVerdict(0.6, None),   # the backward order failed: in no position rate, wrong in every accuracy
]


def test_order_stats_rates_on_a_hand_made_example():
    from judges.conflicts import OrderStats

    stats = OrderStats.of(HAND_MADE)
    assert stats.pairs == 3 and stats.inconsistent == 1  # decided pairs only
    assert stats.inconsistency_rate == pytest.approx(1 / 3)
    assert stats.consistency_rate == pytest.approx(2 / 3)
    assert stats.position_a_rate == pytest.approx((0.9 + 0.2 + 0.7 + 0.8 + 0.5 + 0.5) / 6)  # = 0.6
    assert stats.as_dict() == {"pairs": 3, "inconsistent": 1, "inconsistency_rate": pytest.approx(1 / 3),
                               "position_a_rate": pytest.approx(0.6)}
    empty = OrderStats.of([PairVerdict(None, 0.3)])
    assert empty.pairs == 0 and empty.inconsistency_rate is None and empty.position_a_rate is None


def test_one_order_accuracies_on_a_hand_made_example():
    from judges.conflicts import one_order_accuracies

    acc = one_order_accuracies(HAND_MADE)  # a is the chosen response; over all 4 pairs
    assert acc["chosen_first"] == pytest.approx(3 / 4)   # 0.9, 0.7, 0.6 > 0.5; the tie is wrong
    assert acc["chosen_second"] == pytest.approx(1 / 4)  # 0.8 only; the failed order is wrong
    assert acc["both_orders"] == pytest.approx(1 / 4)    # means 0.85, 0.45, 0.5 (a tie: wrong), failed


def test_every_position_report_uses_the_one_definition():
    """The conflicts report, the LLM judge's order_stats, the pair-PM evaluation and the decision tree's report
    give the same rate on the same verdicts (failed pairs out of the denominator)."""
    from decision_tree.collect_preferences import agreement_report
    from pair_pm.train import evaluate_pair_pm

    table = {("a", "b"): (0.9, 0.8), ("a", "c"): (0.7, 0.2), ("b", "c"): (0.5, 0.5)}
    conflicts = detect_conflicts(BothOrders(table), [{"prompt": "q", "responses": ["a", "b", "c"]}])["overall"]
    assert conflicts["order_inconsistency_rate"] == pytest.approx(1 / 3)
    # pair-PM: P_A over both orders; P(a better) backward = 1 - P_A(b, a)
    probs = [x for f, b in table.values() for x in (f, 1.0 - b)]
    held = evaluate_pair_pm(None, [{}] * 3, probs)
    assert held["order_inconsistency_rate"] == pytest.approx(1 / 3) and held["accuracy_chosen_as_a"] == pytest.approx(2 / 3)
    labels = [{"judge": "j", "pair": k, "p_forward": f, "p_backward": b} for k, (f, b) in enumerate(table.values())]
    report = agreement_report([{"id": k, "a_is_chosen": True} for k in range(3)], labels)
    assert report["j"]["order_consistency"] == pytest.approx(round(2 / 3, 4))


def test_candidate_rows_that_are_no_group_are_counted_skips():
    from collections import Counter

    from judges.conflicts import groups_from_rows

    rows = [{"prompt": "q", "responses": ["rock", "paper", "scissors"], "subset": "s"},
            {"prompt": "q", "responses": "abc"}, {"responses": ["a", "b"]}, {"prompt": 5, "responses": ["a", "b"]},
            {"prompt": "q", "responses": [None, 5]}, {"prompt": "q", "responses": ["a", ""]},
            {"prompt": "q", "responses": ["a", " a "]}, {"prompt": "q", "responses": ["a"]},
            {"prompt": "q", "chosen": "x", "rejected": "y"}, "not a row"]
    skipped = Counter()
    groups = groups_from_rows(rows, skipped)
    assert groups == [{"prompt": "q", "responses": ["rock", "paper", "scissors"], "subset": "s"}]
    assert skipped == {"responses is not a list": 1, "no prompt (text or messages)": 2,
                       "a response that is empty or not a string": 2, "duplicate responses": 1,
                       "fewer than two responses": 1, "row is not a JSON object": 1,
                       "not a candidate row (no responses) in a file of candidate rows": 1}
    skipped = Counter()  # preference rows first: the candidate rows among them are counted, not a KeyError
    groups = groups_from_rows([{"prompt": "q", "chosen": "x", "rejected": "y"},
                               {"prompt": "q", "responses": ["a", "b"]}], skipped)
    assert [g["responses"] for g in groups] == [["x", "y"]]
    assert skipped == {"candidate row in a file of preference rows": 1}


def test_cli_refuses_a_dataset_with_no_group(tmp_path, capsys):
    import json

    from judges.conflicts import main
    from rm_core.errors import UserInputError
    from rm_core.testing import tiny_reward_model

    model, tok = tiny_reward_model(seed=1)
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    data = tmp_path / "cands.jsonl"
    data.write_text(json.dumps({"prompt": "q", "responses": "abc"}) + "\n"
                    + json.dumps({"prompt": "q", "responses": ["a", "a"]}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"cands.jsonl: no group .*1 responses is not a list.*1 duplicate"):
        main(["--judge", str(tmp_path / "rm"), "--dataset", str(data)])
    data.write_text(json.dumps({"prompt": "q", "responses": ["a", "b"]}) + "\n"
                    + json.dumps({"prompt": "q", "responses": ["a"]}) + "\n", encoding="utf-8")
    main(["--judge", str(tmp_path / "rm"), "--dataset", str(data), "--output", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["overall"]["pairs"] == 1 and report["skipped_rows"] == {"fewer than two responses": 1}
