"""Intervals, length control and both orders in the evaluators' results, on sets small enough to compute by hand
(rm_core/stats.py, rm_core/length.py, judges/conflicts.py order_report, eval/scoring.py, eval/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import report as rep
from eval.scoring import format_table, section_scores, summarize
from judges.base import Judge, PairVerdict
from judges.conflicts import order_report
from rm_core.length import length_control, pair_item, spearman
from rm_core.stats import interval_at, stratified_bootstrap, wilson_interval

# (subset, chosen score, rejected score, chosen length, rejected length): right, wrong; right x3; wrong
TINY = [("alpacaeval-easy", 2.0, 1.0, 10, 20), ("alpacaeval-easy", 0.0, 1.0, 30, 20),
        ("alpacaeval-hard", 3.0, 1.0, 15, 15), ("alpacaeval-hard", 3.0, 1.0, 5, 50),
        ("alpacaeval-hard", 3.0, 1.0, 40, 10), ("llmbar-natural", 0.0, 1.0, 8, 9)]


def tiny_rows():
    return [{"id": f"r{k}", "subset": s, "chosen_score": c, "rejected_score": r, "chosen_chars": lc,
             "rejected_chars": lr} for k, (s, c, r, lc, lr) in enumerate(TINY)]


def test_length_control_by_hand():
    """Per pair (chosen, rejected length; right?): shorter wins 1, 0, 1/2 (equal), 1, 0, 1 -> 3.5/6; the chosen is
    longer in 2 pairs (right in 1), shorter in 3 (right in 2), as long in 1."""
    block = length_control([pair_item(lc, lr, float(c > r)) for _, c, r, lc, lr in TINY])
    assert block["unit"] == "characters" and block["items"] == 6
    assert block["accuracy"] == pytest.approx(4 / 6)
    assert block["shorter_wins"] == pytest.approx(3.5 / 6) and block["longer_wins"] == pytest.approx(2.5 / 6)
    assert block["chosen_longer_share"] == pytest.approx(2 / 6) and block["chosen_shorter_share"] == pytest.approx(3 / 6)
    assert block["equal_length_share"] == pytest.approx(1 / 6)
    assert (block["items_chosen_longer"], block["items_chosen_shorter"]) == (2, 3)
    assert block["accuracy_chosen_longer"] == pytest.approx(1 / 2)
    assert block["accuracy_chosen_shorter"] == pytest.approx(2 / 3)
    assert block["length_balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert block["spearman_score_length"] is None and "no per-response scores" in block["score_length_note"]
    for name, ci in block["ci95"].items():
        assert ci[0] <= block[name] <= ci[1], name
    # two pairs, the shorter wins once: resampled means 0, 1/2, 1 (1/4, 1/2, 1/4): the interval is [0, 1]
    two = length_control([pair_item(1, 2, 1.0), pair_item(2, 1, 1.0)])
    assert two["shorter_wins"] == 0.5 and two["ci95"]["shorter_wins"] == [0.0, 1.0]
    assert two["ci95"]["accuracy"] == [1.0, 1.0]
    # a pairwise judge: no correlation, said so
    assert "pairwise judge" in length_control([pair_item(1, 2, 1.0)], pairwise=True)["score_length_note"]


def test_length_control_with_n_candidates_and_spearman_by_hand():
    items = [
        # chosen[0] (10) as long as the rejected on average (10): neither group; the shortest two are wrong
        {"lengths": [10, 5, 5, 20], "correct": [True, False, False, False], "value": 0.5},
        # two at the shortest, one of them correct: the rule "shortest wins" is right half the time
        {"lengths": [3, 3, 9], "correct": [True, False, False], "value": 1.0},
        # best-of-N with two correct (mean 20) vs two wrong (mean 30): the correct ones are the shorter
        {"lengths": [10, 20, 30, 40], "correct": [True, False, True, False], "value": 0.0},
    ]
    block = length_control(items, responses=[(1.0, 10), (2.0, 20), (3.0, 40), (4.0, 30)])
    assert block["shorter_wins"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert block["longer_wins"] == pytest.approx((0 + 0 + 0) / 3)
    assert block["chosen_shorter_share"] == pytest.approx(2 / 3) and block["chosen_longer_share"] == 0.0
    assert block["accuracy_chosen_shorter"] == pytest.approx(0.5) and block["accuracy_chosen_longer"] is None
    assert block["length_balanced_accuracy"] is None and block["ci95"]["length_balanced_accuracy"] is None
    # ranks of the lengths 1, 2, 4, 3 against the scores' 1, 2, 3, 4: 1 - 6 * 2 / (4 * 15) = 0.8
    assert block["spearman_score_length"] == pytest.approx(0.8) and block["spearman_responses"] == 4
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [1, 2]) is None


def test_order_report_by_hand():
    verdicts = [PairVerdict(0.9, 0.8),  # right both ways
                PairVerdict(0.9, 0.3),  # right first, wrong second: mean 0.6 right, an order flip
                PairVerdict(0.2, 0.4),  # wrong both ways
                PairVerdict(None, 0.7)]  # one order failed: in no rate, wrong in "both orders"
    block = order_report(verdicts)
    assert block["pairs"] == 4 and block["decided_pairs"] == 3 and block["failed_pairs"] == 1
    assert block["chosen_first"] == 0.5 and block["chosen_second"] == 0.5 and block["both_orders"] == 0.5
    assert block["order_flips"] == 1 and block["order_flip_rate"] == pytest.approx(1 / 3)
    # P(shown first wins): (0.9 + 0.2) + (0.9 + 0.7) + (0.2 + 0.6) over 2 x 3 decided pairs
    assert block["position_a_rate"] == pytest.approx(3.5 / 6)
    for name, ci in block["ci95"].items():
        assert ci[0] <= block[name] + 1e-12 and block[name] - 1e-12 <= ci[1], name
    assert order_report([]) is None


def test_reward_bench_summary_intervals_and_length_by_hand():
    s = summarize(tiny_rows())
    assert s["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5
    # a subset's accuracy is a share of right pairs: Wilson's interval, 1 of 2 (right, wrong) 0.5 -/+ 0.405, and
    # alpacaeval-hard's 3 of 3 not the point [1, 1] a bootstrap gives: [1 / (1 + z^2 / 3), 1]
    assert s["ci95"]["subsets"]["alpacaeval-easy"]["accuracy"] == pytest.approx([0.0945, 0.9055], abs=1e-4)
    assert s["ci95"]["subsets"]["alpacaeval-hard"]["accuracy"] == pytest.approx([1 / (1 + 1.959964 ** 2 / 3), 1.0])
    # Chat = (100 easy + 95 hard) / 195 with easy resampled to 0, 1/2 or 1 and hard fixed at 1
    assert s["sections"]["Chat"] == pytest.approx(145 / 195)
    assert s["ci95"]["sections"]["Chat"] == pytest.approx([95 / 195, 1.0])
    # over all pairs: 4 right of 6, Wilson's interval (as the subsets'); the sections below stay bootstraps
    assert s["accuracy"] == pytest.approx(4 / 6) and s["ci95"]["accuracy"] == pytest.approx(list(wilson_interval(4, 6)))
    assert s["ci95"]["score"] is None and s["ci95"]["sections"]["Safety"] is None  # no data: no interval
    # the interval of a section is a stratified bootstrap with the official weights (same draws, same interval)
    groups = {"alpacaeval-easy": [1.0, 0.0], "alpacaeval-hard": [1.0, 1.0, 1.0], "llmbar-natural": [0.0]}
    assert s["ci95"]["sections"]["Chat"] == pytest.approx(
        list(stratified_bootstrap(groups, lambda m: section_scores(m)["Chat"])))
    length = s["length"]
    assert length["shorter_wins"] == pytest.approx(3.5 / 6) and length["chosen_longer_share"] == pytest.approx(2 / 6)
    assert length["length_balanced_accuracy"] == pytest.approx(7 / 12)
    assert length["ci95"]["accuracy"] == pytest.approx([0.5, 5 / 6])  # resampled within subsets too
    assert interval_at(s, ("length", "shorter_wins")) == length["ci95"]["shorter_wins"]
    # scores 2, 1, 0, 1, 3, 1, ... against lengths: a correlation is reported for a pointwise judge
    assert length["spearman_score_length"] is not None and length["spearman_responses"] == 12
    assert s["order"] is None  # a pointwise judge has no orders
    json.dumps(s, allow_nan=False)  # JSON-ready, no NaN


def test_printed_table_shows_intervals_and_length_control():
    table = format_table(summarize(tiny_rows()))
    easy = next(line for line in table.splitlines() if line.startswith("alpacaeval-easy"))
    assert "50.00" in easy and "[9.5, 90.5]" in easy and "95% CI" in table
    chat = next(line for line in table.splitlines() if line.startswith("Chat "))
    assert "[48.7, 100.0]" in chat
    assert "shorter wins (length baseline)     58.3" in table
    assert "length-balanced accuracy           58.3" in table  # 7/12
    assert "length in characters" in table


class OrderJudge(Judge):
    """Pairwise, both orders: VERDICTS[a] = (P(a better) with a first, with a second)."""

    pointwise = False
    VERDICTS = {"c1": (0.9, 0.8), "c2": (0.9, 0.3), "c3": (0.2, 0.4), "c4": (None, 0.7)}

    def judge_pairs(self, items):
        out = []
        for i, (_, a, _) in enumerate(items):
            forward, backward = self.VERDICTS[a]
            if forward is None:
                self.failures.add("no verdict", i)
            out.append(PairVerdict(forward, backward))
        return out

    def _compare(self, items):
        return [v.p for v in self.judge_pairs(items)]


def test_reward_bench_with_a_pairwise_judge_reports_both_orders(tmp_path):
    from eval import reward_bench

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{k}", "subset": "alpacaeval-easy", "prompt": f"q{k}",
                                        "chosen": f"c{k}", "rejected": "r" * (k + 2)}) + "\n" for k in range(1, 5)))
    args = reward_bench.make_parser().parse_args(["--model", "fixed", "--dataset", str(data),
                                                  "--output_dir", str(tmp_path / "out")])
    args.judge = OrderJudge()
    s = reward_bench.evaluate(args)
    assert s["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5 and s["subsets"]["alpacaeval-easy"]["failed"] == 1
    order = s["order"]
    assert (order["chosen_first"], order["chosen_second"], order["both_orders"]) == (0.5, 0.5, 0.5)
    assert order["order_flip_rate"] == pytest.approx(1 / 3) and order["failed_pairs"] == 1
    rows = [json.loads(x) for x in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert rows[1]["p_forward"] == 0.9 and rows[1]["p_backward"] == 0.3 and rows[1]["pairwise"] is True
    assert rows[0]["chosen_chars"] == 2 and rows[0]["rejected_chars"] == 3
    # every chosen ("c1") is shorter than its rejected ("rrr"...): the shorter response always wins
    assert s["length"]["shorter_wins"] == 1.0 and s["length"]["chosen_shorter_share"] == 1.0
    assert s["length"]["spearman_score_length"] is None
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["order"]["ci95"]["order_flip_rate"] == pytest.approx(order["ci95"]["order_flip_rate"])


# ------------------------------------------------------------------ the report: paired comparison, chart


def _fake_cell(report_dir: Path, judge: str, bench: str, key: str, correct: list[int]) -> dict:
    """A cached (judge, benchmark) cell as eval.report writes it: the benchmark's scores.jsonl and results.json."""
    rows = [{"id": f"i{k}", "subset": "mine", "chosen_score": float(c), "rejected_score": 0.5,
             "correct": bool(c), "failed": False, "chosen_chars": 10, "rejected_chars": 20 + k}
            for k, c in enumerate(correct)]
    folder = rep.cell_dir(report_dir, judge, bench, key)
    folder.mkdir(parents=True)
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize(rows)
    (folder / "results.json").write_text(json.dumps(summary))
    return {"key": key, "headline": rep.headline("pairs", summary), "headline_ci95": rep.headline_ci("pairs", summary),
            "length": summary["length"], "order": summary["order"], "items": len(rows), "seconds": 1.0}


def test_report_paired_comparison_markdown_and_chart(tmp_path):
    """Two fake checkpoints on the same 20 pairs: trained right on 12, init on 6 (a subset of the 12). The paired
    difference is 6/20 = 30 points; each resample of 20 items sees on average 6 items where they differ, so zero
    is outside the interval; an unpaired pair of 60% and 30% intervals would say the same, so also compare two
    judges that differ on one item only."""
    benches = {"pairs": {"kind": "pairs", "dataset": "x.jsonl", "split": "train", "title": "Pairs"}}
    results = {"trained": {"pairs": _fake_cell(tmp_path, "trained", "pairs", "k1", [1] * 12 + [0] * 8)},
               "close": {"pairs": _fake_cell(tmp_path, "close", "pairs", "k2", [1] * 11 + [0] * 9)},
               "init": {"pairs": _fake_cell(tmp_path, "init", "pairs", "k3", [1] * 6 + [0] * 14)}}
    judges = ["trained", "close", "init"]
    comparisons = rep.paired_comparisons(tmp_path, results, benches, judges)["pairs"]
    by = {(c["a"], c["b"]): c for c in comparisons}
    assert set(by) == {("trained", "close"), ("trained", "init"), ("close", "init")}
    big = by[("trained", "init")]
    assert big["metric"] == "accuracy (all pairs)" and big["n"] == 20
    assert big["difference"] == pytest.approx(0.3) and big["excludes_zero"] and big["low"] > 0
    small = by[("trained", "close")]  # one item apart: 0.05, resamples see it 0, 1, 2... times
    assert small["difference"] == pytest.approx(0.05) and small["low"] == 0.0 and not small["excludes_zero"]
    md = rep.markdown(results, benches, judges, {"pairs": comparisons}, baseline="init")
    assert "| trained − init | +30.0 |" in md and "| yes | 20 |" in md and "| trained − close | +5.0 |" in md
    assert "| accuracy (all pairs) | 60.0 [" in md and "init (baseline)" in md
    assert "| length baseline: shorter wins | 100.0 [100.0, 100.0] |" in md  # every chosen is the shorter
    assert "![overview](overview.png)" in md
    rep.overview_chart(tmp_path / "overview.png", benches, results, judges, baseline="init")
    rep.bar_chart(tmp_path / "pairs.png", "Pairs", results, "pairs", judges, baseline="init")
    assert (tmp_path / "overview.png").stat().st_size > 1000 and (tmp_path / "pairs.png").stat().st_size > 1000


def test_report_refuses_a_baseline_that_is_not_a_judge(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        rep.main(["--judge", "a=llm:x", "--bench", "llmbar", "--output_dir", str(tmp_path), "--baseline", "b"])
    assert stop.value.code == 2 and "--baseline b: not one of the --judge names (a)" in capsys.readouterr().err
