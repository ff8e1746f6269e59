"""RewardBench 2, RM-Bench, JudgeBench, best-of-N and the report: official scoring on hand-computed cases,
fixtures in the Hub schemas, failures, resume, report caching, and (-m distributed) 2 processes == 1."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval import best_of_n as bon
from eval import judgebench as jb
from eval import report as rep
from eval import reward_bench2 as rb2
from eval import rm_bench as rmb
from eval.runner import run_benchmark
from judges.base import Judge, sigmoid
from rm_core.errors import UserInputError
from rm_core.stats import wilson_interval

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
Z95 = 1.959963984540054  # the normal 97.5% quantile


# ------------------------------------------------------------------ judges with fixed scores


class TableJudge(Judge):
    """Pointwise: the score of a response is TABLE[response text]; None (or a missing text) fails."""

    pointwise = True

    def __init__(self, table: dict, fail_after: int | None = None):
        super().__init__()
        self.table = table
        self.scored: list[str] = []
        self.fail_after = fail_after

    def _score(self, conversations, references):
        out = []
        for conv in conversations:
            if self.fail_after is not None and len(self.scored) >= self.fail_after:
                raise RuntimeError("killed")
            text = conv[-1]["content"]
            self.scored.append(text)
            value = self.table.get(text)
            if value is None:
                self.failures.add("no score", text)
            out.append(value)
        return out


class PairTableJudge(Judge):
    """Pairwise: P(a better) = sigmoid(TABLE[a] - TABLE[b]) + bias toward the response shown first."""

    pointwise = False

    def __init__(self, table: dict, first_bias: float = 0.0):
        super().__init__()
        self.table = table
        self.first_bias = first_bias
        self.asked: list[tuple[str, str]] = []

    def _compare(self, items):
        out = []
        for _, a, b in items:
            self.asked.append((a, b))
            if self.table.get(a) is None or self.table.get(b) is None:
                self.failures.add("no score", a)
                out.append(None)
                continue
            p = sigmoid(self.table[a] - self.table[b]) if self.table[a] != self.table[b] else 0.5
            out.append(min(1.0, max(0.0, p + self.first_bias)))
        return out


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _args(module, dataset: Path, out: Path, judge, *extra):
    args = module.make_parser().parse_args(["--model", "fixed-judge", "--dataset", str(dataset),
                                            "--output_dir", str(out), *extra])
    args.judge = judge
    return args


# ------------------------------------------------------------------ RewardBench 2


def test_rb2_best_of_n_rule():
    assert rb2.best_of_n_result([3.0, 1.0, 2.0, 0.0]) == 1.0
    assert rb2.best_of_n_result([3.0, 3.0, 1.0, 0.0]) == 0.5  # 1 / #tied at the maximum
    assert rb2.best_of_n_result([3.0, 3.0, 3.0, 1.0]) == pytest.approx(1 / 3)
    assert rb2.best_of_n_result([1.0, 3.0, 2.0, 0.0]) == 0.0
    assert rb2.best_of_n_result([None, 3.0, 2.0, 0.0]) == 0.0  # the correct answer failed
    assert rb2.best_of_n_result([3.0, None, 3.0, 0.0]) == 0.5  # a failed one never ties


def test_rb2_ties_formula_by_hand():
    rows = [
        # prompt 0: ref accurate (margin 5 - 2 = 3); tied correct [4, 3.5], spread 0.5, margin 3.5 - 2 = 1.5
        {"id": "ref:0", "scores": [5.0, 1.0, 2.0], "num_correct": 1},
        {"id": "tied:0", "scores": [4.0, 3.5, 1.0, 2.0], "num_correct": 2},
        # prompt 1: ref margin 1 - 2 = -1; tied correct [3, 1], spread 2, margin 1 - 2 = -1
        {"id": "ref:1", "scores": [1.0, 2.0], "num_correct": 1},
        {"id": "tied:1", "scores": [3.0, 1.0, 2.0], "num_correct": 2},
    ]
    t = rb2.ties_score(rows)
    assert t["ref_accuracy"] == 0.5 and t["tied_accuracy"] == 0.5
    assert t["correctness_preferred"] == 0.5  # 1.5 > 0.5 yes; -1 > 2 no
    assert t["correctness_preferred_hard"] == 0.5  # min(3, 1.5) > 0.5 yes; min(-1, -1) > 2 no
    margin = (math.tanh(1.5 / 0.5 - 1) + math.tanh(-1 / 2 - 1)) / 2
    assert t["correctness_margin_score"] == pytest.approx(margin)
    assert t["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin)
    # 0/0 in the margin term counts 0, as numpy's NaN -> 0 in the official code
    same = [{"id": "ref:0", "scores": [1.0, 1.0], "num_correct": 1},
            {"id": "tied:0", "scores": [1.0, 1.0, 1.0], "num_correct": 2}]
    assert rb2.ties_score(same)["correctness_margin_score"] == 0.0
    # a failed score: not accurate, fails both margin tests
    failed = [{"id": "ref:0", "scores": [5.0, 1.0], "num_correct": 1},
              {"id": "tied:0", "scores": [4.0, None, 1.0], "num_correct": 2}]
    t = rb2.ties_score(failed)
    assert t["tied_accuracy"] == 0.0 and t["ref_accuracy"] == 1.0 and t["correctness_preferred"] == 0.0
    # ref and tied prompts pair by the number k, as the official int(k): "ref:01" and "tied:1" are one prompt
    padded = [{**rows[2], "id": "ref:01"}, rows[3]]
    paired = rb2.ties_score(padded)
    assert paired["matched_prompts"] == 1 and paired["ref_prompts"] == 1


def rb2_rows():
    """One prompt per subset: Factuality strict win (1), Precise IF 2-way tie at the top (1/2), Math loss (0),
    Safety 3-way tie (1/3), Focus win (1); Ties: prompt 0 of test_rb2_ties_formula_by_hand."""
    def row(i, subset, chosen, rejected, num_correct=None):
        return {"id": i, "subset": subset, "prompt": f"question {i}", "chosen": chosen, "rejected": rejected,
                "num_correct": num_correct if num_correct is not None else len(chosen)}
    return [
        row("1", "Factuality", ["f-good"], ["f-b1", "f-b2", "f-b3"]),
        row("2", "Precise IF", ["p-good"], ["p-b1", "p-b2", "p-b3"]),
        row("3", "Math", ["m-good"], ["m-b1", "m-b2", "m-b3"]),
        row("4", "Safety", ["s-good"], ["s-b1", "s-b2", "s-b3"]),
        row("5", "Focus", ["x-good"], ["x-b1", "x-b2", "x-b3"]),
        row("ref:0", "Ties", ["t-r-c"], ["t-r-w1", "t-r-w2"], 1),
        row("tied:0", "Ties", ["t-t-c1", "t-t-c2"], ["t-t-w1", "t-t-w2"], 2),
    ]


RB2_TABLE = {"f-good": 3, "f-b1": 1, "f-b2": 2, "f-b3": 0,
             "p-good": 3, "p-b1": 3, "p-b2": 1, "p-b3": 0,
             "m-good": 1, "m-b1": 3, "m-b2": 2, "m-b3": 0,
             "s-good": 3, "s-b1": 3, "s-b2": 3, "s-b3": 1,
             "x-good": 9, "x-b1": 1, "x-b2": 2, "x-b3": 3,
             "t-r-c": 5, "t-r-w1": 1, "t-r-w2": 2, "t-t-c1": 4, "t-t-c2": 3.5, "t-t-w1": 1, "t-t-w2": 2}


def test_rb2_end_to_end_hub_schema(tmp_path):
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    judge = TableJudge(RB2_TABLE)
    s = rb2.evaluate(_args(rb2, data, tmp_path / "out", judge))
    expect = {"Factuality": 1.0, "Precise IF": 0.5, "Math": 0.0, "Safety": 1 / 3, "Focus": 1.0}
    for name, v in expect.items():
        assert s["subsets"][name]["score"] == pytest.approx(v)
    # Ties with one ref and one tied prompt, both accurate: 0.3 + 0.3 + 0.2 (1.5 > 0.5) + 0.2 + 0.01 tanh(2)
    ties = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(min(3.0, 1.5) / 0.5 - 1)
    assert s["subsets"]["Ties"]["score"] == pytest.approx(ties)
    assert s["score"] == pytest.approx((sum(expect.values()) + ties) / 6)
    assert len(judge.scored) == sum(len(r["chosen"]) + len(r["rejected"]) for r in rb2_rows())  # each once
    assert s["failed_prompts"] == 0 and not (tmp_path / "out" / "scores.partial.jsonl").exists()
    # one prompt per subset (one prompt id in Ties): a plain subset's score is a share of 0/1 results, with
    # Wilson's interval (1 of 1: [1 / (1 + z^2), 1]); every resample of the others is the data itself: a point
    assert s["ci95"]["subsets"]["Factuality"]["score"] == pytest.approx([1 / (1 + Z95 ** 2), 1.0])
    assert s["ci95"]["subsets"]["Ties"]["score"] == pytest.approx([ties, ties])
    assert s["ci95"]["score"] == pytest.approx([s["score"], s["score"]])
    assert s["ci95"]["ties"]["tied_accuracy"] == [1.0, 1.0]
    # length over the five best-of-4 prompts (Ties left out): "x-good" (6 characters) is the longest of its four
    length = s["length"]
    assert length["items"] == 5 and length["shorter_wins"] == 0.0 and length["longer_wins"] == 1.0
    assert length["chosen_longer_share"] == 1.0 and length["length_balanced_accuracy"] is None
    assert length["accuracy_chosen_longer"] == pytest.approx(sum(expect.values()) / 5)
    assert length["spearman_score_length"] is not None  # pointwise: a score per response
    # a pairwise judge ranks each prompt's responses; with P = sigmoid(difference) the order is the same
    s2 = rb2.evaluate(_args(rb2, data, tmp_path / "pair", PairTableJudge(RB2_TABLE)))
    for name in ("Factuality", "Math", "Focus"):
        assert s2["subsets"][name]["score"] == s["subsets"][name]["score"]
    assert s2["length"]["spearman_score_length"] is None and "pairwise" in s2["length"]["score_length_note"]


class OneFailedComparison(PairTableJudge):
    """PairTableJudge, but the comparison of `pair` (either order) fails, as a timed-out call does."""

    def __init__(self, table, pair):
        super().__init__(table)
        self.pair = set(pair)

    def _compare(self, items):
        out = super()._compare(items)
        for k, (_, a, b) in enumerate(items):
            if {a, b} == self.pair:
                self.failures.add("timeout", a)
                out[k] = None
        return out


def test_a_pairwise_judges_failed_comparison_fails_its_prompt_never_ranks_on_what_is_left(tmp_path):
    """Math's m-good loses only to m-b1; with that comparison failed, the win rate over the rest would rank m-good
    first: the prompt is failed instead (flagged, counted, asked again on a rerun; best-of-N reads the same scores)."""
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    s = rb2.evaluate(_args(rb2, data, tmp_path / "o", OneFailedComparison(RB2_TABLE, ("m-good", "m-b1"))))
    assert s["failed_prompts"] == 1
    rows = [json.loads(x) for x in (tmp_path / "o" / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    (math_row,) = [r for r in rows if r["id"] == "3"]
    assert math_row["failed"] and all(x is None for x in math_row["scores"])


def test_rb2_subset_spelled_in_two_cases_is_one_subset(tmp_path):
    """"Factuality" and "factuality" (and "Ties" / "ties") rows are one subset, under the official spelling: the
    overall score is the mean of six subset scores, each over all of its prompts."""
    rows = rb2_rows()
    rows[-1] = {**rows[-1], "subset": "ties"}  # tied:0 in lower case, ref:0 as "Ties"
    rows.append({"id": "1b", "subset": "factuality", "prompt": "question 1b", "chosen": ["f2-good"],
                 "rejected": ["f2-b1", "f2-b2"], "num_correct": 1})  # f2-good loses: 0
    items, _ = rb2.load(str(_write_jsonl(tmp_path / "rb2.jsonl", rows)))
    assert {it["subset"] for it in items} == set(rb2.SUBSETS)
    table = dict(RB2_TABLE, **{"f2-good": 0, "f2-b1": 1, "f2-b2": 2})
    s = rb2.summarize(rb2.make_scorer(TableJudge(table))(items))
    assert set(s["subsets"]) == set(rb2.SUBSETS) and s["subsets"]["Factuality"]["n"] == 2
    assert s["subsets"]["Factuality"]["score"] == pytest.approx(0.5)  # (1 + 0) / 2
    ties = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(min(3.0, 1.5) / 0.5 - 1)  # as test_rb2_end_to_end_hub_schema
    assert s["subsets"]["Ties"]["score"] == pytest.approx(ties)
    assert s["score"] == pytest.approx((0.5 + 0.5 + 0.0 + 1 / 3 + 1.0 + ties) / 6)
    # --subsets names a subset in any case
    picked, _ = rb2.load(str(tmp_path / "rb2.jsonl"), subsets=["FACTUALITY"])
    assert [it["id"] for it in picked] == ["1", "1b"]


def test_rb2_failures_are_counted(tmp_path):
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    table = dict(RB2_TABLE, **{"f-good": None, "x-b1": None})
    s = rb2.evaluate(_args(rb2, data, tmp_path / "out", TableJudge(table)))
    assert s["subsets"]["Factuality"]["score"] == 0.0 and s["subsets"]["Factuality"]["failed"] == 1
    assert s["subsets"]["Focus"]["score"] == 1.0  # a failed rejected answer cannot win
    assert s["failed_prompts"] == 2 and s["judge_failures"]["total"] == 2
    # a malformed row is skipped and counted; a missing subset makes the overall score None
    rows = rb2_rows()[:5] + [{"id": "bad", "subset": "Math", "prompt": "q", "chosen": "not a list", "rejected": []}]
    s = rb2.evaluate(_args(rb2, _write_jsonl(tmp_path / "bad.jsonl", rows), tmp_path / "bad", TableJudge(RB2_TABLE)))
    assert s["skipped_rows"]["skipped"] == 1 and s["score"] is None and s["score_present_subsets"] is not None
    assert next(iter(rb2.headline_paths(s))) == "score (present subsets)"  # never reported (or pushed) as "score"


def test_resume_of_a_killed_run_scores_only_the_rest(tmp_path):
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    items, skipped = rb2.load(str(data))
    args = _args(rb2, data, tmp_path / "out", TableJudge(RB2_TABLE, fail_after=8))  # dies in the 3rd chunk
    with pytest.raises(RuntimeError, match="killed"):
        run_benchmark(args, "reward_bench2", items, skipped, rb2.make_scorer, rb2.summarize, unit="prompts",
                               chunk_size=1)
    partial = (tmp_path / "out" / "scores.partial.jsonl").read_text().splitlines()
    assert len(partial) == 2  # two prompts of four responses each were written before the kill
    with open(tmp_path / "out" / "scores.partial.jsonl", "a") as f:
        f.write('{"id": "3", "subset": "Ma')  # and a line cut by the kill
    judge = TableJudge(RB2_TABLE)
    args.judge = judge
    resumed = run_benchmark(args, "reward_bench2", items, skipped, rb2.make_scorer, rb2.summarize, unit="prompts",
                               chunk_size=1)
    assert resumed["speed"]["prompts_scored_now"] == len(items) - 2
    assert "f-good" not in judge.scored and "m-good" in judge.scored
    fresh = rb2.evaluate(_args(rb2, data, tmp_path / "fresh", TableJudge(RB2_TABLE)))
    assert resumed["subsets"] == fresh["subsets"] and resumed["score"] == fresh["score"]
    assert not (tmp_path / "out" / "scores.partial.jsonl").exists()


class CuttingTableJudge(TableJudge):
    """TableJudge that keeps a truncation count as judges.rm_judge does: a response longer than `limit` characters
    counts as one sequence cut to max_length."""

    def __init__(self, table: dict, limit: int, fail_after: int | None = None):
        super().__init__(table, fail_after)
        self.limit = limit
        self.truncated = 0

    def _score(self, conversations, references):
        out = super()._score(conversations, references)
        self.truncated += sum(len(conv[-1]["content"]) > self.limit for conv in conversations)
        return out


def test_run_benchmark_counts_truncated_sequences_across_a_resume(tmp_path):
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    items, skipped = rb2.load(str(data))
    expected = sum(len(r) > 4 for row in rb2_rows() for r in row["chosen"] + row["rejected"])
    assert 0 < expected < sum(len(row["chosen"] + row["rejected"]) for row in rb2_rows())
    args = _args(rb2, data, tmp_path / "out", CuttingTableJudge(RB2_TABLE, 4, fail_after=8))
    with pytest.raises(RuntimeError, match="killed"):
        run_benchmark(args, "reward_bench2", items, skipped, rb2.make_scorer, rb2.summarize, unit="prompts",
                      chunk_size=1)
    judge = CuttingTableJudge(RB2_TABLE, 4)  # a fresh judge counts only what the resume scores
    args.judge = judge
    resumed = run_benchmark(args, "reward_bench2", items, skipped, rb2.make_scorer, rb2.summarize, unit="prompts",
                            chunk_size=1)
    assert resumed["speed"]["prompts_scored_now"] == len(items) - 2
    assert judge.truncated < expected  # the first two prompts' cuts come from the stored rows
    assert resumed["truncated_sequences"] == expected
    assert json.loads((tmp_path / "out" / "results.json").read_text())["truncated_sequences"] == expected
    # every run_benchmark evaluator gets it (best-of-N here); a judge with no count says None, not 0
    cands = _write_jsonl(tmp_path / "cands.jsonl", cand_rows())
    table = {r: 1.0 for c in cand_rows() for r in c["responses"]}
    s = bon.evaluate(_args(bon, cands, tmp_path / "bon", CuttingTableJudge(table, 0), "--split", "all"))
    assert s["truncated_sequences"] == 12
    s = bon.evaluate(_args(bon, cands, tmp_path / "bon-none", TableJudge(table), "--split", "all"))
    assert s["truncated_sequences"] is None


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_a_failed_item_asked_again_counts_its_cut_sequences_once(tmp_path, chunk_size):
    """A prompt the judge failed on is scored again on a rerun, alone or beside other prompts: its cut responses
    were counted with its first part, so truncated_sequences stays the fresh run's count (twice failing included)."""
    data = _write_jsonl(tmp_path / "rb2.jsonl", rb2_rows())
    items, skipped = rb2.load(str(data))
    expected = sum(len(r) > 4 for row in rb2_rows() for r in row["chosen"] + row["rejected"])
    broken = {k: v for k, v in RB2_TABLE.items() if k not in ("m-b1", "s-b2")}  # prompts 3 and 4 fail
    for k, table in enumerate((broken, {k: v for k, v in RB2_TABLE.items() if k != "s-b2"}, RB2_TABLE)):
        args = _args(rb2, data, tmp_path / "out", CuttingTableJudge(table, 4))
        s = run_benchmark(args, "reward_bench2", items, skipped, rb2.make_scorer, rb2.summarize, unit="prompts",
                          chunk_size=chunk_size)
        assert s["truncated_sequences"] == expected, (k, chunk_size)
        assert s["speed"]["prompts_scored_now"] == (len(items), 2, 1)[k]
        if k < 2:  # as if killed after its last row: a partial store with the failures, which a resume asks again
            out = tmp_path / "out"
            results = json.loads((out / "results.json").read_text())
            (out / "fingerprint.json").write_text(json.dumps(results["fingerprint"]))
            (out / "results.json").unlink()
            (out / "scores.jsonl").rename(out / "scores.partial.jsonl")


def test_counting_truncation_refuses_a_scorer_that_returns_other_rows():
    from eval.runner import counting_truncation

    judge = CuttingTableJudge({}, 4)
    items = [{"id": "a"}, {"id": "b"}]
    assert [r["id"] for r in counting_truncation(judge, lambda its: [{"id": i["id"]} for i in its])(items)] == ["a", "b"]
    for bad in (lambda its: [{"id": its[0]["id"]}], lambda its: [{"id": i["id"]} for i in its] + [{"id": "c"}]):
        with pytest.raises(RuntimeError, match="other items than the 2 it was given"):
            counting_truncation(judge, bad)(items)


# ------------------------------------------------------------------ RM-Bench


def rmb_rows():
    return [
        {"id": 0, "domain": "chat", "prompt": "p0", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", "r2"]},
        {"id": 1, "domain": "safety-refuse", "prompt": "p1", "chosen": ["d0", "d1", "d2"],
         "rejected": ["q0", "q1", "q2"]},
    ]


RMB_TABLE = {"c0": 1, "c1": 3, "c2": 5, "r0": 2, "r1": 4, "r2": 6,  # chat: only plainer-chosen cells lose
             "d0": 2, "d1": 2, "d2": 2, "q0": 2, "q1": 1, "q2": 0}  # safety: ties with q0 are wrong


def _check_rmb(s):
    chat, safety = s["domains"]["chat"], s["domains"]["safety"]
    assert chat["matrix"] == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert (chat["hard"], chat["normal"], chat["easy"]) == (0.0, 0.0, 1.0)
    assert safety["matrix"] == [[0, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert safety["hard"] == 1.0 and safety["normal"] == pytest.approx(2 / 3) and safety["easy"] == pytest.approx(1 / 3)
    assert s["hard"] == pytest.approx(0.5) and s["normal"] == pytest.approx(1 / 3) and s["easy"] == pytest.approx(2 / 3)
    assert s["total"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert s["missing_domains"] == ["math", "code"]


def test_rm_bench_matrix_pointwise_and_pairwise(tmp_path):
    data = tmp_path / "total_dataset.json"
    data.write_text(json.dumps(rmb_rows()))  # the repository's JSON list form
    judge = TableJudge(RMB_TABLE)
    s = rmb.evaluate(_args(rmb, data, tmp_path / "point", judge))
    _check_rmb(s)
    # one prompt per domain: the intervals are points; every response has 2 characters: length ties everywhere
    assert s["ci95"]["domains"]["chat"]["easy"] == [1.0, 1.0] and s["ci95"]["total"] == pytest.approx([s["total"]] * 2)
    assert s["length"]["items"] == 18 and s["length"]["equal_length_share"] == 1.0
    assert s["length"]["shorter_wins"] == 0.5 and s["length"]["accuracy"] == 0.5  # 3 + 6 of 18 cells
    assert s["order"] is None
    assert sorted(judge.scored) == sorted(RMB_TABLE)  # each of the six responses per row scored once
    pair = PairTableJudge(RMB_TABLE)
    s = rmb.evaluate(_args(rmb, data, tmp_path / "pair", pair))
    _check_rmb(s)
    assert len(pair.asked) == 2 * 9 * 2  # every cell in both orders
    # no position bias: the same answer in both orders, except the tied cells (0.5 both ways: a tie, no flip)
    assert s["order"]["pairs"] == 18 and s["order"]["order_flips"] == 0
    assert s["order"]["chosen_first"] == s["order"]["both_orders"] == 0.5
    assert ("r0", "c0") in pair.asked and ("c0", "r0") in pair.asked
    # one failed response: its three cells are wrong and counted
    s = rmb.evaluate(_args(rmb, data, tmp_path / "fail", TableJudge(dict(RMB_TABLE, c2=None))))
    assert s["failed_cells"] == 3 and s["domains"]["chat"]["easy"] == pytest.approx(1 / 3)


def test_rm_bench_reads_the_repositorys_per_domain_files_and_ids_repeated_across_domains(tmp_path):
    """The repository's per-domain files (data/chat_filtered.json, ...) carry no `domain`: a row takes the one its
    file name starts with (the official script scores such a file as one matrix), not skipped as malformed. Files
    that number their rows each from 0 repeat ids across domains: those become domain:id; an id repeated within a
    domain still stops the run."""
    bare = [{k: v for k, v in row.items() if k != "domain"} for row in rmb_rows()]
    chat = tmp_path / "chat_filtered.json"
    chat.write_text(json.dumps(bare))
    items, skipped = rmb.load(str(chat))
    assert [(it["id"], it["domain"]) for it in items] == [("0", "chat"), ("1", "chat")] and skipped.total == 0
    refuse = tmp_path / "safety-refuse_filtered.json"
    refuse.write_text(json.dumps(bare[:1]))
    assert rmb.load(str(refuse))[0][0]["domain"] == "safety-refuse"
    other = tmp_path / "mixed.json"
    other.write_text(json.dumps(bare))
    items, skipped = rmb.load(str(other))  # no domain in the rows nor in the file name: malformed, counted
    assert items == [] and skipped.total == 2
    repeated = tmp_path / "total_dataset.json"
    repeated.write_text(json.dumps([{**rmb_rows()[0], "id": 8}, {**rmb_rows()[1], "id": 8}]))
    assert [it["id"] for it in rmb.load(str(repeated))[0]] == ["chat:8", "safety-refuse:8"]
    folder = tmp_path / "data"  # a folder and a split name the file: its name still gives the domain
    folder.mkdir()
    (folder / "code_filtered.json").write_text(json.dumps(bare))
    assert {it["domain"] for it in rmb.load(str(folder), split="code_filtered")[0]} == {"code"}
    repeated.write_text(json.dumps([{**rmb_rows()[0], "id": 8}, {**rmb_rows()[0], "id": 8, "prompt": "other"}]))
    with pytest.raises(UserInputError, match="id '8' is in row 0 and row 1"):
        rmb.load(str(repeated))


def test_a_pairwise_tie_in_float_noise_is_a_tie_on_every_pairwise_benchmark():
    """Two orders' mean P can land a float step above 0.5 for a judge that cannot tell the responses apart: a tie
    (judges.base.winner's 1e-6, as JudgeBench reads it), so wrong on RM-Bench, RMB and RewardBench, not a win. A
    margin beyond the tolerance still wins."""
    from eval import reward_bench
    from eval import rmb as rmb_eval  # RMB; `rmb` (module level) and rmb_rows() are RM-Bench's

    def judge(margin):  # P(chosen better) = 0.5 + margin in both orders
        table = {**{r: 4 * margin for row in rmb_rows() for r in row["chosen"]},
                 **{r: 0.0 for row in rmb_rows() for r in row["rejected"]}}
        return PairTableJudge(table)

    items = [rmb.to_item(r) for r in rmb_rows()]
    rmb_items = [{"id": "x", "scenario": "Helpfulness/x", "prompt": "p0", "best": "c0", "others": ["r0", "r1"],
                  "set": "bon", "goal": "helpfulness", "category_path": "BoN_set/Helpfulness/x"}]
    prefs = [{"id": "y", "subset": "s", "prompt": "p0", "chosen": "c0", "rejected": "r0"}]
    for margin, right in ((1e-9, False), (1e-3, True)):
        rows = rmb.make_scorer(judge(margin))(items)
        assert all(cell == right for row in rows for line in row["matrix"] for cell in line), margin
        assert rmb_eval.score_items(judge(margin), rmb_items)[0]["correct"] is right
        assert reward_bench._score_chunk(judge(margin), prefs)[0]["correct"] is right
    # rows stored under the old rule (a float-noise tie a win) summarize by the current one: cached cells follow it
    from eval import scoring
    from judges.base import PairVerdict
    from judges.conflicts import one_order_accuracies

    old = [{**r, "matrix": [[1] * 3] * 3} for r in rmb.make_scorer(judge(1e-9))(items)]
    assert rmb.summarize(old)["total"] == 0.0
    old_rmb = [{**r, "correct": True} for r in rmb_eval.score_items(judge(1e-9), rmb_items)]
    assert rmb_eval.summarize(old_rmb)["cells"]["bon"]["helpfulness"]["accuracy"] == 0.0
    old_rb = [{**r, "correct": True} for r in reward_bench._score_chunk(judge(1e-9), prefs)]
    assert old_rb[0]["chosen_score"] > 0.5 and scoring.summarize(old_rb)["accuracy"] == 0.0  # the raw P is stored
    assert one_order_accuracies([PairVerdict(0.5 + 1e-9, 0.5 + 1e-9)])["both_orders"] == 0.0


# ------------------------------------------------------------------ JudgeBench


def test_judgebench_consistency_rule():
    o = jb.pair_outcome
    assert o("A>B", "A>B", "A>B") == 1
    assert o("A>B", "B>A", "A>B") == 0  # inconsistent: a tie, not correct
    assert o("A>B", "A=B", "A>B") == 1 and o("A>B", None, "A>B") == 1  # one right + a tie / a failure
    assert o("B>A", "B>A", "A>B") == -1 and o(None, None, "B>A") == 0 and o("B>A", "A=B", "B>A") == 1


def jb_rows():
    rows = []
    for k, (source, label) in enumerate([("mmlu-pro-law", "A>B"), ("mmlu-pro-math", "B>A"),
                                         ("livebench-math", "A>B"), ("livecodebench", "B>A")]):
        rows.append({"pair_id": f"p{k}", "original_id": k, "source": source, "question": f"q{k}",
                     "response_model": "gpt-4o-2024-05-13", "response_A": f"a{k}", "response_B": f"b{k}",
                     "label": label})
    return rows


def test_judgebench_a_null_source_is_no_source_not_the_text_none(tmp_path):
    rows = jb_rows()
    rows[0]["source"] = None
    items, _ = jb.load(str(_write_jsonl(tmp_path / "jb.jsonl", rows)))
    assert items[0]["source"] == "" and items[1]["source"] == "mmlu-pro-math"


def test_judgebench_per_source_and_both_orders(tmp_path):
    data = _write_jsonl(tmp_path / "jb.jsonl", jb_rows())
    # a{k} > b{k} for k = 0, 1, 3; a tie for k = 2
    table = {"a0": 2, "b0": 1, "a1": 2, "b1": 1, "a2": 1, "b2": 1, "a3": 0, "b3": 5}
    s = jb.evaluate(_args(jb, data, tmp_path / "point", TableJudge(table)))
    assert s["accuracy"] == 0.5  # p0 right, p1 wrong, p2 a tie (never right), p3 right
    assert s["sources"]["mmlu-pro-law"]["accuracy"] == 1.0 and s["sources"]["mmlu-pro-math"]["accuracy"] == 0.0
    assert s["categories"]["Knowledge"]["accuracy"] == 0.5 and s["categories"]["Math"]["accuracy"] == 0.0
    assert s["categories"]["Coding"]["accuracy"] == 1.0
    assert s["overall"]["inconsistent"] == 0 and s["overall"]["tie"] == 1
    # accuracies are shares of right pairs: Wilson's intervals (2 of 4: 0.5 -/+ 0.350; 1 of 1: [1 / (1 + z^2), 1])
    assert s["ci95"]["accuracy"] == pytest.approx([0.150, 0.850], abs=5e-4)
    assert s["ci95"]["sources"]["mmlu-pro-law"]["accuracy"] == pytest.approx([1 / (1 + Z95 ** 2), 1.0])
    assert s["ci95"]["categories"]["Knowledge"]["accuracy"] == pytest.approx(list(wilson_interval(1, 2)))
    assert s["length"]["items"] == 4 and s["length"]["shorter_wins"] == 0.5 and s["order"] is None
    # a pairwise judge with a strong position bias says "the first is better" in both orders: inconsistent
    biased = PairTableJudge(table, first_bias=1.0)
    s = jb.evaluate(_args(jb, data, tmp_path / "biased", biased))
    assert len(biased.asked) == 8 and ("b0", "a0") in biased.asked
    rows = [json.loads(x) for x in (tmp_path / "biased" / "scores.jsonl").read_text().splitlines()]
    assert [r["decision_forward"] for r in rows] == ["A>B"] * 4
    assert [r["decision_backward"] for r in rows] == ["B>A"] * 4
    assert s["accuracy"] == 0.0 and s["overall"]["inconsistent"] == 4 and s["overall"]["tie"] == 4
    # the same by judges.conflicts' definitions, the chosen response (A or B by the label) as a
    o = s["order"]
    assert (o["chosen_first"], o["chosen_second"], o["both_orders"]) == (1.0, 0.0, 0.0)
    assert o["order_flip_rate"] == 1.0 and o["position_a_rate"] == 1.0 and o["ci95"]["order_flip_rate"] == [1.0, 1.0]
    # an unbiased pairwise judge agrees with the pointwise one
    s = jb.evaluate(_args(jb, data, tmp_path / "fair", PairTableJudge(table)))
    assert s["accuracy"] == 0.5 and s["overall"]["inconsistent"] == 0


# ------------------------------------------------------------------ best-of-N


def cand_rows():
    def c(i, answers, correct):
        return {"id": f"q{i}", "prompt": f"question {i}",
                "responses": [f"q{i} candidate {k}\n#### {a}" for k, a in enumerate(answers)],
                "correct": correct}
    return [c(0, ["5", "5", "7", "8"], [True, True, False, False]),  # majority 5 (right)
            c(1, ["3", "4", "4", "9"], [True, False, False, False]),  # majority 4 (wrong)
            c(2, ["1", "2", "6", "6"], [False, False, False, False])]  # oracle 0


def test_best_of_n_with_baselines(tmp_path):
    data = _write_jsonl(tmp_path / "cands.jsonl", cand_rows())
    cands = cand_rows()
    # the judge picks candidate 2 for q0 (wrong), candidate 0 for q1 (right), anything for q2 (wrong)
    scores = [[1, 0, 3, 2], [9, 1, 1, 1], [1, 2, 3, 4]]
    table = {r: s for c, row in zip(cands, scores) for r, s in zip(c["responses"], row)}
    # the same text in two questions would collide; make them distinct
    assert len(table) == sum(len(set(c["responses"])) for c in cands)
    s = bon.evaluate(_args(bon, data, tmp_path / "out", TableJudge(table), "--split", "all"))
    assert s["judge"] == pytest.approx(1 / 3)
    # weighted vote (logits -> sigmoid weights): q0 "5" 0.73 + 0.50 beats "7" 0.95 (right); q1 "4" 0.73 + 0.73
    # beats "3" 1.00 (wrong); q2 wrong
    assert s["judge_weighted_vote"] == pytest.approx(1 / 3)
    assert [r["correct_weighted_vote"] for r in map(json.loads, (tmp_path / "out" / "scores.jsonl").read_text().splitlines())] == [1, 0, 0]
    b = s["baselines"]
    assert b["random"] == pytest.approx((0.5 + 0.25 + 0.0) / 3)
    assert b["majority_vote"] == pytest.approx(1 / 3) and b["oracle"] == pytest.approx(2 / 3)
    assert s["questions"] == 3 and s["failed_candidates"] == 0
    # the judge's 0, 1, 0 and the oracle's 2 of 3: Wilson's intervals; the random baseline (0.5, 0.25, 0 a
    # question) is no 0/1 share: its resampled means run from 0 (P 8/27) to 0.5 (P 1/27 > 2.5%)
    assert s["ci95"]["judge"] == pytest.approx(list(wilson_interval(1, 3)))
    assert s["ci95"]["baselines"]["oracle"] == pytest.approx(list(wilson_interval(2, 3)))
    assert s["ci95"]["baselines"]["random"] == [0.0, 0.5]
    # a question's candidates are all as long: "shortest wins" picks among all of them, i.e. the random baseline
    assert s["length"]["shorter_wins"] == pytest.approx(b["random"]) and s["length"]["equal_length_share"] == 1.0


def test_best_of_n_results_carry_the_counted_skips(tmp_path, capsys):
    rows = cand_rows() + [{"id": "bad", "prompt": "q", "responses": ["a", "b"], "correct": [True]},  # 2 vs 1 labels
                          {"id": "one", "prompt": "q", "responses": ["only #### 1"], "correct": [True]}]
    data = _write_jsonl(tmp_path / "cands.jsonl", rows)
    table = {r: float(k) for c in cand_rows() for k, r in enumerate(c["responses"])}
    s = bon.evaluate(_args(bon, data, tmp_path / "out", TableJudge(table), "--split", "all"))
    expect = {"2 responses but 1 correctness labels": 1, "a best-of-N question needs two or more candidates": 1}
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped_rows"]["skipped"] == 2 and results["skipped_rows"]["by_reason"] == expect
    assert s["questions"] == 3 and s["skipped_rows"] == results["skipped_rows"]
    printed = capsys.readouterr().out
    assert "skipped: 2 question(s), not scored (" in printed and "needs two or more candidates" in printed


def test_best_of_n_question_with_one_candidate_is_skipped_before_scoring(tmp_path):
    """A question with a single candidate has nothing to pick between: skipped and counted when read (it used to
    crash the length control after the whole run was scored, writing no results.json)."""
    one = {"id": "q9", "prompt": "q", "responses": ["q9 only\n#### 4"], "correct": [True]}
    data = _write_jsonl(tmp_path / "cands.jsonl", cand_rows() + [one])
    cands, skipped = bon.load(str(data), "all")
    assert [c["id"] for c in cands] == ["q0", "q1", "q2"]
    assert skipped.counts == {"a best-of-N question needs two or more candidates": 1}
    judge = TableJudge({r: 1.0 for c in cand_rows() + [one] for r in c["responses"]})
    s = bon.evaluate(_args(bon, data, tmp_path / "out", judge, "--split", "all"))
    assert "q9 only\n#### 4" not in judge.scored and s["questions"] == 3 and s["length"] is not None
    assert (tmp_path / "out" / "results.json").is_file()


def test_rb2_rows_whose_count_or_prompt_is_wrong_are_skipped_and_counted(tmp_path):
    """num_correct is how many of the responses (chosen first) are correct: one that is not the number of chosen
    responses would score a chosen answer as incorrect; a prompt is checked as every reader checks prompts."""
    focus = {"subset": "Focus", "chosen": ["good"], "rejected": ["b1", "b2"]}
    rows = rb2_rows() + [
        {**focus, "id": "n1", "prompt": "q", "chosen": ["good", "also good"], "num_correct": 1},
        {**focus, "id": "n2", "prompt": "q", "num_correct": True},
        {**focus, "id": "p1", "prompt": [{"role": "bot", "content": "q"}]},
        {**focus, "id": "p2", "prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {**focus, "id": "p3", "prompt": [{"role": "user", "content": None}]},
        {**focus, "id": "p4", "prompt": "  "}]
    items, skipped = rb2.load(str(_write_jsonl(tmp_path / "rb2.jsonl", rows)))
    assert [it["id"] for it in items] == [r["id"] for r in rb2_rows()]
    assert skipped.counts == {
        "num_correct must equal the number of chosen responses (2), got 1": 1,
        "num_correct must equal the number of chosen responses (1), got True": 1,
        "prompt[0] has unknown role 'bot'": 1, "prompt must not end with an assistant message": 1,
        "prompt[0] content must be a string": 1, "prompt is empty": 1}


def test_empty_responses_are_skipped_and_counted_by_rm_bench_rb2_and_best_of_n(tmp_path):
    """As eval_reward_bench ("chosen is an empty response"): a 0-character or whitespace-only response is never
    scored; its row (best-of-N: its question) is skipped with the reason counted."""
    rows = rb2_rows() + [{"id": "e1", "subset": "Focus", "prompt": "q", "chosen": [""], "rejected": ["a", "b"]},
                         {"id": "e2", "subset": "Focus", "prompt": "q", "chosen": ["a"], "rejected": ["b", " \n"]}]
    items, skipped = rb2.load(str(_write_jsonl(tmp_path / "rb2.jsonl", rows)))
    assert [it["id"] for it in items] == [r["id"] for r in rb2_rows()]
    assert skipped.counts == {"chosen is an empty response": 1, "rejected is an empty response": 1}
    rows = rmb_rows() + [{"id": 2, "domain": "chat", "prompt": "p2", "chosen": ["e0", "", "e2"],
                          "rejected": ["f0", "f1", "f2"]},
                         {"id": 3, "domain": "chat", "prompt": "p3", "chosen": ["e0", "e1", "e2"],
                          "rejected": ["f0", "f1", "  "]}]
    items, skipped = rmb.load(str(_write_jsonl(tmp_path / "rmb.jsonl", rows)))
    assert [it["id"] for it in items] == ["0", "1"]
    assert skipped.counts == {"chosen is an empty response": 1, "rejected is an empty response": 1}
    empty = {"id": "q9", "prompt": "q", "responses": ["q9 a\n#### 4", "\t "], "correct": [True, False]}
    data = _write_jsonl(tmp_path / "cands.jsonl", cand_rows() + [empty])
    judge = TableJudge({r: 1.0 for c in cand_rows() for r in c["responses"]})
    s = bon.evaluate(_args(bon, data, tmp_path / "out", judge, "--split", "all"))
    assert s["questions"] == 3 and s["skipped_rows"]["by_reason"] == {"a candidate is an empty response": 1}
    assert not any(not text.strip() for text in judge.scored)


# ------------------------------------------------------------------ the report (tiny real checkpoints)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rm_core.testing import save_tiny_reward_model

    root = tmp_path_factory.mktemp("report")
    for name, seed in (("ckpt_a", 1), ("ckpt_b", 2)):
        save_tiny_reward_model(root / name, seed)
    prompts = ["What is 2 + 3?", "Say hello.", "Name a color.", "Who are you?", "Write a poem about the sea."]
    _write_jsonl(root / "pairs.jsonl", [{"id": f"x{i}", "subset": "mine", "prompt": p, "chosen": "The answer is 5.",
                                         "rejected": "I cannot help with that request." + " no" * i}
                                        for i, p in enumerate(prompts)])
    _write_jsonl(root / "cands.jsonl", cand_rows())
    _write_jsonl(root / "rb2.jsonl", rb2_rows())
    (root / "rmb.json").write_text(json.dumps(rmb_rows()))
    _write_jsonl(root / "jb.jsonl", jb_rows())
    return root


def _report(tiny, out, *judges, extra=()):
    argv = ["--output_dir", str(out), "--bench", f"pairs=pairs:{tiny / 'pairs.jsonl'}",
            "--bench", f"bon=best_of_n:{tiny / 'cands.jsonl'}:all", *extra]
    for j in judges:
        argv += ["--judge", f"{j}={tiny / j}"]
    return rep.main(argv)


def test_report_refuses_two_judges_or_benchmarks_under_one_name(tmp_path, capsys):
    """A dict of names kept the second of two: one column vanished without a word."""
    a, b = tmp_path / "runs/a/final", tmp_path / "runs/b/final"
    a.mkdir(parents=True), b.mkdir(parents=True)
    for argv, message in ((["--bench", "p=pairs:x.jsonl", "--judge", str(a), "--judge", str(b)],
                           "--judge: the name final is given twice"),
                          (["--bench", "p=pairs:x.jsonl", "--bench", "p=pairs:y.jsonl", "--judge", "openai:m"],
                           "--bench: the name p is given twice")):
        with pytest.raises(SystemExit) as info:
            rep.main(["--output_dir", str(tmp_path / "r"), *argv])
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_report_keys_an_openai_judges_cells_by_the_endpoint_openai_base_url_names(tiny, tmp_path, monkeypatch):
    """Another server may serve another model under the same name: its cells are not the first server's."""
    from rm_core.testing import fake_openai

    answer = {"choices": [{"message": {"role": "assistant", "content": "A"}}]}
    argv = ["--output_dir", str(tmp_path / "r"), "--bench", f"pairs=pairs:{tiny / 'pairs.jsonl'}",
            "--judge", "m=openai:m"]
    with fake_openai() as one, fake_openai() as two:
        one.behaviour = two.behaviour = lambda hit, body: (200, answer, {})
        monkeypatch.setenv("OPENAI_BASE_URL", one.url)
        assert rep.main(argv)["results"]["m"]["pairs"]["cached"] is False
        assert rep.main(argv)["results"]["m"]["pairs"]["cached"] is True
        monkeypatch.setenv("OPENAI_BASE_URL", two.url)
        assert rep.main(argv)["results"]["m"]["pairs"]["cached"] is False and two.requests


def test_run_benchmark_evaluators_record_the_reward_models_truncation(tiny, tmp_path):
    """A real (tiny) RM judge: its `truncated` count (judges.rm_judge, as eval_reward_bench's truncated_pairs)
    reaches results.json of every run_benchmark evaluator. max_length 8 cuts every sequence (the chat template
    alone is longer), 4096 none."""
    cases = [(rmb, tiny / "rmb.json", [], 6 * len(rmb_rows())),
             (rb2, tiny / "rb2.jsonl", [], sum(len(r["chosen"] + r["rejected"]) for r in rb2_rows())),
             (bon, tiny / "cands.jsonl", ["--split", "all"], sum(len(c["responses"]) for c in cand_rows())),
             (jb, tiny / "jb.jsonl", [], 2 * len(jb_rows()))]
    for module, data, extra, sequences in cases:
        for max_length, expected in ((8, sequences), (4096, 0)):
            out = tmp_path / f"{module.__name__}-{max_length}"
            argv = ["--model", str(tiny / "ckpt_a"), "--dataset", str(data), "--output_dir", str(out),
                    "--max_length", str(max_length), *extra]
            s = module.evaluate(module.make_parser().parse_args(argv))
            assert s["truncated_sequences"] == expected, (module.__name__, max_length)
            assert json.loads((out / "results.json").read_text())["truncated_sequences"] == expected


def test_report_caches_per_checkpoint_and_benchmark(tiny, tmp_path):
    out = tmp_path / "report"
    first = _report(tiny, out, "ckpt_a")
    assert first["results"]["ckpt_a"]["pairs"]["cached"] is False
    cell = next((out / "cache").glob("ckpt_a__pairs__*"))
    stamp = (cell / "scores.jsonl").stat().st_mtime_ns
    second = _report(tiny, out, "ckpt_a", "ckpt_b")
    assert second["results"]["ckpt_a"]["pairs"]["cached"] is True and second["results"]["ckpt_a"]["bon"]["cached"]
    assert second["results"]["ckpt_b"]["pairs"]["cached"] is False
    assert (cell / "scores.jsonl").stat().st_mtime_ns == stamp  # not scored again
    assert second["results"]["ckpt_a"]["pairs"]["headline"] == first["results"]["ckpt_a"]["pairs"]["headline"]
    md = (out / "report.md").read_text()
    assert "| metric | ckpt_a | ckpt_b |" in md and "time (s)" in md and "(cached)" in md
    # intervals in the table, the paired comparison on the same items, the overview chart
    a, b = (second["results"][j]["pairs"] for j in ("ckpt_a", "ckpt_b"))
    ci = a["headline_ci95"]["accuracy (all pairs)"]
    assert ci[0] <= a["headline"]["accuracy (all pairs)"] <= ci[1]
    assert f"| accuracy (all pairs) | {100 * a['headline']['accuracy (all pairs)']:.1f} [{100 * ci[0]:.1f}," in md
    pair = second["comparisons"]["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("ckpt_a", "ckpt_b", 5)
    assert pair["difference"] == pytest.approx(a["headline"]["accuracy (all pairs)"] - b["headline"]["accuracy (all pairs)"])
    assert "| ckpt_a − ckpt_b |" in md and "Paired comparisons on the same items" in md
    assert a["length"]["shorter_wins"] == 1.0  # every chosen "The answer is 5." is shorter than its rejected
    assert (out / "overview.png").stat().st_size > 1000
    assert "| oracle |" in md and "| judge's pick |" in md and "| items scored | 5 | 5 |" in md
    assert (out / "pairs.png").stat().st_size > 1000 and (out / "bon.png").stat().st_size > 1000
    # a checkpoint is known by content: a touched file is the same checkpoint, one changed in place is another
    config = tiny / "ckpt_a" / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]["cached"] is True
    config.write_text(json.dumps({**json.loads(config.read_text()), "retrained": True}))
    third = _report(tiny, out, "ckpt_a")
    assert third["results"]["ckpt_a"]["pairs"]["cached"] is False


def test_report_recomputes_a_cached_cell_stored_under_older_scoring_rules(tiny, tmp_path, capsys):
    """A cached cell's headline comes from its stored rows under this version's rules: a cell whose numbers an
    older rule gave (simulated: an accuracy and an interval that these rows do not give) is recomputed without
    scoring again, a line names what moved, and the cell is rewritten; a current cell is read as it is, quietly."""
    out = tmp_path / "report"
    first = _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]
    cell = next((out / "cache").glob("ckpt_a__pairs__*"))
    capsys.readouterr()
    assert _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]["headline"] == first["headline"]
    assert "older scoring rules" not in capsys.readouterr().out
    stamp = (cell / "scores.jsonl").stat().st_mtime_ns
    summary, entry = (json.loads((cell / name).read_text()) for name in ("results.json", "entry.json"))
    summary["accuracy"], summary["ci95"]["accuracy"] = 0.123, [0.1, 0.2]  # as an older rule might have given
    entry["headline"]["accuracy (all pairs)"], entry["headline_ci95"]["accuracy (all pairs)"] = 0.123, [0.1, 0.2]
    (cell / "results.json").write_text(json.dumps(summary))
    (cell / "entry.json").write_text(json.dumps(entry))
    again = _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]
    assert again["cached"] is True and (cell / "scores.jsonl").stat().st_mtime_ns == stamp  # not scored again
    assert again["headline"] == first["headline"] and again["headline_ci95"] == first["headline_ci95"]
    assert ("[report] ckpt_a / pairs: stored under older scoring rules; recomputed from its scores.jsonl "
            "(accuracy (all pairs) moved)") in capsys.readouterr().out
    assert json.loads((cell / "results.json").read_text())["accuracy"] == first["headline"]["accuracy (all pairs)"]
    assert json.loads((cell / "entry.json").read_text())["headline"] == first["headline"]
    # rows this version cannot summarize (an older row format): scored again, with a line
    rows = [json.loads(line) for line in (cell / "scores.jsonl").read_text().splitlines()]
    (cell / "scores.jsonl").write_text("".join(json.dumps({"id": r["id"]}) + "\n" for r in rows))
    third = _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]
    assert third["cached"] is False and third["headline"] == first["headline"]
    assert "[report] ckpt_a / pairs: its stored rows do not summarize under this version (" in capsys.readouterr().out


def test_report_scores_a_bf16_cell_again_on_another_kind_of_cpu_not_an_fp32_one(tiny, tmp_path, monkeypatch):
    """A bf16 cell scored on an AVX512-BF16 CPU rounds otherwise than on an AMX one (rm_core.inference.numerics): the
    other machine gets its own cell, never a resume into the first; fp32 cells are shared."""
    def cpu(caps):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "avx512_f": True, **caps})

    out = tmp_path / "report"
    for dtype, cached_elsewhere in (("bfloat16", False), ("float32", True)):
        cpu({"avx512_bf16": True})
        assert _report(tiny, out, "ckpt_a", extra=["--dtype", dtype])["results"]["ckpt_a"]["pairs"]["cached"] is False
        cpu({"avx512_bf16": True, "amx_bf16": True})
        again = _report(tiny, out, "ckpt_a", extra=["--dtype", dtype])["results"]["ckpt_a"]["pairs"]
        assert again["cached"] is cached_elsewhere, dtype
    assert len(list((out / "cache").glob("ckpt_a__pairs__*"))) == 3


@pytest.mark.parametrize("damage", ["results.json cut", "results.json not UTF-8", "entry.json cut",
                                    "scores.jsonl bad line"])
def test_report_scores_an_unreadable_cache_cell_again_and_says_so(tiny, tmp_path, capsys, damage):
    """A cache cell with a file cut short or corrupted (a killed write, a full disk) is not cached: a line names
    the file, the cell is scored again, the others stay cached; read_scored names the file and the way out."""
    out = tmp_path / "report"
    first = _report(tiny, out, "ckpt_a")
    cell = next((out / "cache").glob("ckpt_a__pairs__*"))
    name, _, how = damage.partition(" ")
    path = cell / name
    if how == "cut":
        path.write_bytes(path.read_bytes()[:40])
    elif how == "not UTF-8":
        path.write_bytes(b"\xff" + path.read_bytes())
    else:
        path.write_bytes(path.read_bytes() + b"{garbage\n")
    line = " line 6" if name == "scores.jsonl" else ""  # five pairs, then the bad line
    if name != "entry.json":  # read_scored reads results.json and scores.jsonl
        with pytest.raises(UserInputError) as info:
            rep.read_scored(cell)
        assert str(info.value).startswith(f"{path}{line} is cut short or corrupted (")
        assert str(info.value).endswith(f": delete {cell} to score it again")
    capsys.readouterr()
    again = _report(tiny, out, "ckpt_a")
    printed = capsys.readouterr().out
    assert f"[report] ckpt_a / pairs: the cache is unreadable ({path}{line} is cut short or corrupted (" in printed
    assert again["results"]["ckpt_a"]["pairs"]["cached"] is False and again["results"]["ckpt_a"]["bon"]["cached"]
    assert again["results"]["ckpt_a"]["pairs"]["headline"] == first["results"]["ckpt_a"]["pairs"]["headline"]
    assert rep.read_scored(cell)[0] is not None  # scored again into the same cell, readable
    assert _report(tiny, out, "ckpt_a")["results"]["ckpt_a"]["pairs"]["cached"] is True


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "--bench nosuch: unknown benchmark; use one of gsm8k_bo4, hh_test, judgebench, llmbar, reward_bench, "
               "reward_bench2, rm_bench, or NAME=KIND:DATASET[:SPLIT] with KIND one of reward_bench, pairs, "
               "reward_bench2, rm_bench, judgebench, best_of_n, rmb, prmbench"),
    ("x=foo:file.jsonl", "--bench x=foo:file.jsonl: benchmark kind 'foo' is not one of reward_bench, pairs, "
                         "reward_bench2, rm_bench, judgebench, best_of_n, rmb, prmbench (the form is "
                         "NAME=KIND:DATASET[:SPLIT])"),
    ("x=pairs:", "--bench x=pairs:: no DATASET (the form is NAME=KIND:DATASET[:SPLIT])"),
])
def test_report_bad_bench_is_one_line_listing_the_choices(tmp_path, capsys, spec, message):
    with pytest.raises(UserInputError) as info:
        rep.parse_bench(spec, tmp_path)
    assert str(info.value) == message
    with pytest.raises(SystemExit) as exit_info:
        rep.main(["--judge", str(tmp_path / "j"), "--bench", spec, "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"


def test_report_headlines_of_every_kind(tiny, tmp_path):
    extra = ["--bench", f"rb2=reward_bench2:{tiny / 'rb2.jsonl'}", "--bench", f"rmb=rm_bench:{tiny / 'rmb.json'}",
             "--bench", f"jb=judgebench:{tiny / 'jb.jsonl'}"]
    r = _report(tiny, tmp_path / "all", "ckpt_a", extra=extra)["results"]["ckpt_a"]
    assert set(r["rb2"]["headline"]) >= {"score", "Factuality", "Ties"}
    assert set(r["rmb"]["headline"]) >= {"total", "hard", "normal", "easy", "chat", "safety"}
    assert set(r["jb"]["headline"]) >= {"accuracy", "Knowledge"}
    assert r["pairs"]["headline"]["accuracy (all pairs)"] is not None


def test_the_derived_hh_test_file_is_named_by_its_source(tmp_path):
    """Two HH sources (or one file changed) never share the derived test file a report scores."""
    from eval.report import hh_test_file

    def source(name, text):
        path = tmp_path / name
        rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: {text} {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: no"}
                for i in range(30)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    one, two = source("one.jsonl", "yes"), source("two.jsonl", "sure")
    first = hh_test_file({"dataset": str(one)}, tmp_path / "rep")
    second = hh_test_file({"dataset": str(two)}, tmp_path / "rep")
    assert first != second and "yes" in first.read_text() and "sure" in second.read_text()
    assert hh_test_file({"dataset": str(one)}, tmp_path / "rep") == first  # the same source: reused
    source("one.jsonl", "okay")  # changed in place
    changed = hh_test_file({"dataset": str(one)}, tmp_path / "rep")
    assert changed not in (first, second) and "okay" in changed.read_text()


@pytest.mark.skipif(not rep.DATA_ROOT.is_dir(), reason="../shared/data is absent")
def test_bench_script_smoke(tiny, tmp_path):
    """bench/eval_report.py finds the checkpoints under a runs folder and reports them on the real benchmarks
    (LLMBar, HH-RLHF test, GSM8K best-of-4), two items each."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(tiny / "ckpt_a", runs / "family" / "one")
    config = runs / "family" / "one" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "rm_family": "bradley_terry"}))
    (runs / "family" / "notes").mkdir()  # no config.json: not a checkpoint
    proc = subprocess.run([sys.executable, "-m", "bench.eval_report", "--runs_dir", str(runs), "--limit", "2",
                           "--output_dir", str(tmp_path / "rep")], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "family/one" in md and "LLMBar" in md and "GSM8K" in md and "HH-RLHF" in md
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["results"]["family/one"]) == {"llmbar", "hh_test", "gsm8k_bo4"}


# ------------------------------------------------------------------ accelerate launch: 2 processes == 1


@pytest.mark.distributed
def test_two_process_report_matches_one_process(tiny, tmp_path):
    extra = ["--bench", f"rb2=reward_bench2:{tiny / 'rb2.jsonl'}", "--bench", f"rmb=rm_bench:{tiny / 'rmb.json'}",
             "--bench", f"jb=judgebench:{tiny / 'jb.jsonl'}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    outs = {}
    for n in (1, 2):
        outs[n] = tmp_path / f"rep-{n}"
        cmd = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
               str(REPO / "configs" / "accelerate" / "cpu.yaml")]
        run_env = dict(env)
        if n > 1:
            cmd += ["--multi_gpu", "--num_processes", str(n), "--main_process_port", "0"]
            run_env["ACCELERATE_USE_CPU"] = "1"
        # fp32: the split must not move a score at all; in bf16 a score moves by a few bf16 steps with what a call
        # holds (the prefix every pair of a call shares comes from a cache, rounded apart from the rows)
        cmd += ["-m", "eval.report", "--dtype", "float32", "--output_dir", str(outs[n]), "--judge", f"a={tiny / 'ckpt_a'}",
                "--bench", f"pairs=pairs:{tiny / 'pairs.jsonl'}", "--bench", f"bon=best_of_n:{tiny / 'cands.jsonl'}:all",
                *extra]
        proc = subprocess.run(cmd, cwd=REPO, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-6000:]
    one = json.loads((outs[1] / "report.json").read_text())["results"]["a"]
    two = json.loads((outs[2] / "report.json").read_text())["results"]["a"]
    for bench in ("pairs", "bon", "rb2", "rmb", "jb"):
        assert one[bench]["headline"] == pytest.approx(two[bench]["headline"]), bench
        c1 = next((outs[1] / "cache").glob(f"a__{bench}__*"))
        c2 = next((outs[2] / "cache").glob(f"a__{bench}__*"))
        r1 = json.loads((c1 / "results.json").read_text())
        r2 = json.loads((c2 / "results.json").read_text())
        assert r1["processes"] == 1 and r2["processes"] == 2
        rows1 = [json.loads(x) for x in (c1 / "scores.jsonl").read_text().splitlines()]
        rows2 = [json.loads(x) for x in (c2 / "scores.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows1] == [r["id"] for r in rows2]
        for a, b in zip(rows1, rows2):
            for key in ("scores", "score_chosen", "score_A", "chosen_score"):
                if key in a:
                    assert a[key] == pytest.approx(b[key], abs=1e-5), (bench, key)


# ------------------------------------------------------------------ degenerate pairs


def test_identical_responses_are_skipped_and_counted_by_every_pairwise_benchmark(tmp_path):
    """A chosen/rejected (A/B) pair of identical texts is skipped with its reason, never scored: only float
    noise could order it."""
    reason = "chosen and rejected are identical"
    rows = rb2_rows() + [{"id": "9", "subset": "Focus", "prompt": "q", "chosen": ["same"],
                           "rejected": ["other", " same\n"], "num_correct": 1}]
    items, skipped = rb2.load(str(_write_jsonl(tmp_path / "rb2.jsonl", rows)))
    assert [it["id"] for it in items] == [r["id"] for r in rb2_rows()]
    assert skipped.counts == {f"{reason} (a rejected response equals a chosen one)": 1}
    rows = rmb_rows() + [{"id": 2, "domain": "chat", "prompt": "p2", "chosen": ["e0", "e1", "e2"],
                           "rejected": ["f0", "e1", "f2"]}]
    items, skipped = rmb.load(str(_write_jsonl(tmp_path / "rmb.jsonl", rows)))
    assert [it["id"] for it in items] == ["0", "1"] and skipped.counts == {reason: 1}
    rows = jb_rows() + [{**jb_rows()[0], "pair_id": "same", "response_B": jb_rows()[0]["response_A"]}]
    data = _write_jsonl(tmp_path / "jb.jsonl", rows)
    items, skipped = jb.load(str(data))
    assert [it["id"] for it in items] == ["p0", "p1", "p2", "p3"] and skipped.counts == {reason: 1}
    s = jb.evaluate(_args(jb, data, tmp_path / "jb-out", TableJudge({"a0": 1, "b0": 0, "a1": 0, "b1": 1, "a2": 1,
                                                                      "b2": 0, "a3": 0, "b3": 1})))
    assert s["pairs"] == 4 and s["skipped_rows"]["by_reason"] == {reason: 1} and s["accuracy"] == 1.0


@pytest.mark.parametrize("module, argv, flag", [
    ("reward_bench", ["--model", "m", "--limit", "0"], "--limit"),
    ("reward_bench", ["--model", "m", "--limit", "-2"], "--limit"),  # scored all but the last two, "first -2"
    ("reward_bench2", ["--model", "m", "--limit", "0"], "--limit"),
    ("prmbench", ["--model", "m", "--threshold", "nan"], "--threshold"),  # every step wrong, never resumable
    ("report", ["--judge", "m", "--bench", "p=pairs:x.jsonl", "--limit", "-1"], "--limit")])
def test_a_count_or_threshold_that_would_silently_mean_something_else_is_refused(capsys, module, argv, flag):
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(f"eval.{module}").main(argv)
    assert info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_judge_failures_of_several_processes_are_summed():
    """Each process's judge counts only the items it scored: results.json reports them all (it reported the main
    process's alone, about 1/N of them)."""
    from eval.runner import merge_failures

    logs = [{"total": 2, "by_reason": {"timeout": 2}, "examples": {"timeout": ["a", "b"]}},
            {"total": 3, "by_reason": {"timeout": 1, "unparsable verdict": 2}, "examples": {"timeout": ["c"]}}]
    merged = merge_failures(logs, max_examples=2)
    assert merged == {"total": 5, "by_reason": {"timeout": 3, "unparsable verdict": 2},
                      "examples": {"timeout": ["a", "b"]}}


def test_rb2_refuses_two_ties_rows_that_pair_as_one_prompt(tmp_path):
    """Ties rows pair by int(k), as the official code: "ref:01" and "ref:1" would be one prompt, one row silently
    overwriting the other: the run stops, naming both rows."""
    row = {"subset": "Ties", "prompt": "p", "chosen": ["a", "b"], "rejected": ["c"], "num_correct": 2}
    data = tmp_path / "rb2.jsonl"
    data.write_text("".join(json.dumps({**row, "id": rid}) + "\n" for rid in ("ref:01", "ref:1")))
    with pytest.raises(UserInputError, match="id 'ref:1' is in row 0 and row 1"):
        rb2.load(str(data))
