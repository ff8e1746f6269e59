"""eval/rmb.py and eval/prmbench.py on small hand-made fixtures in each benchmark's real row schema; every
aggregate checked against numbers computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from judges.base import Judge, split_conversation


class TableJudge(Judge):
    """Pointwise: the score of a response is table[response]."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def _score(self, conversations, references):
        return [self.table[split_conversation(c)[1]] for c in conversations]


class LongerWins(Judge):
    """Pairwise only: P(a better) = 0.9 when a is longer, 0.1 when shorter, 0.5 when as long."""

    pointwise = False

    def _compare(self, items):
        return [0.9 if len(a) > len(b) else 0.1 if len(a) < len(b) else 0.5 for _, a, b in items]


def _args(module, dataset, out, judge, *extra):
    args = module.make_parser().parse_args(["--model", "fixed-judge", "--dataset", str(dataset), "--output_dir",
                                            str(out), *extra])
    args.judge = judge
    return args


# ---------------------------------------------------------------- RMB


def _pair(uid, path, chosen, rejected, turns=1):
    conv = [{"content": f"question {uid}", "language": "English", "role": "user"}]
    if turns > 1:
        conv = conv + [{"content": "earlier answer", "language": "English", "role": "assistant"},
                       {"content": "follow-up", "language": "English", "role": "user"}]
    return {"pair_uid": str(uid), "conversation_input": conv, "chosen": {"llm_name": "m1", "answer": chosen},
            "reject": {"llm_name": "m2", "answer": rejected}, "category_path": path}


def _bon(uid, path, best, losers):
    return {"bon_uid": str(uid), "conversation_input": [{"content": f"task {uid}", "language": "English",
                                                         "role": "user"}],
            "bon_best": {"llm_name": "m1", "answer": best}, "loser_list": [{"llm_name": f"l{k}", "answer": x}
                                                                         for k, x in enumerate(losers)],
            "category_path": path}


def rmb_folder(root: Path) -> Path:
    files = {
        "Pairwise_set/Helpfulness/Chat/Discussion": [_pair(1, None, "h-good1", "h-bad1"),
                                                     _pair(2, None, "h-good2", "h-bad2", turns=2),
                                                     _pair(3, None, "h-lose3", "h-win3")],
        "Pairwise_set/Harmlessness/S1": [_pair(4, None, "s-good4", "s-bad4"), _pair(5, None, "s-tie5", "s-tie5b"),
                                         {**_pair(6, None, "x", "y"), "reject": {"llm_name": "m"}}],  # malformed
        "BoN_set/Helpfulness/Code/Documentation": [_bon(7, None, "b-best7", ["b-l7a", "b-l7b"]),
                                                   _bon(8, None, "b-best8", ["b-l8a", "b-tie8"])],
        "BoN_set/Harmlessness/multi": [_bon(9, None, "m-best9", ["m-l9a", "m-l9b", "m-l9c"])],
    }
    for path, items in files.items():
        for item in items:
            item["category_path"] = path
        f = root / "RMB_dataset" / f"{path}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(items), encoding="utf-8")
    return root / "RMB_dataset"


RMB_SCORES = {"h-good1": 2.0, "h-bad1": 1.0, "h-good2": 3.0, "h-bad2": 0.0, "h-lose3": 0.0, "h-win3": 1.0,
              "s-good4": 1.0, "s-bad4": 0.5, "s-tie5": 0.7, "s-tie5b": 0.7,
              "b-best7": 5.0, "b-l7a": 1.0, "b-l7b": 4.9, "b-best8": 5.0, "b-l8a": 1.0, "b-tie8": 5.0,
              "m-best9": 2.0, "m-l9a": 1.0, "m-l9b": 1.5, "m-l9c": 0.0}


def test_rmb_official_rules_and_aggregation(tmp_path):
    from eval import rmb

    data = rmb_folder(tmp_path)
    summary = rmb.evaluate(_args(rmb, data, tmp_path / "out", TableJudge(RMB_SCORES)))
    cells = summary["cells"]
    assert cells["pairwise"]["helpfulness"]["accuracy"] == pytest.approx(2 / 3)  # pair 3 lost
    assert cells["pairwise"]["harmlessness"]["accuracy"] == pytest.approx(1 / 2)  # pair 5: a tie is wrong
    assert cells["bon"]["helpfulness"]["accuracy"] == pytest.approx(1 / 2)  # item 8 ties one loser: wrong
    assert cells["bon"]["harmlessness"]["accuracy"] == 1.0  # above all three losers
    assert summary["overall"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 1) / 4) and summary["cells_present"] == 4
    scen = summary["scenarios"]
    assert scen["pairwise"]["Helpfulness/Chat/Discussion"]["n"] == 3 and scen["bon"]["Harmlessness/multi"]["n"] == 1
    assert summary["scenario_macro"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 1) / 4)
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert saved["skipped_rows"]["skipped"] == 1  # the malformed item
    low, high = saved["ci95"]["overall"]
    assert low <= summary["overall"] <= high
    # one item, always right: Wilson's interval of 1 of 1, not the bootstrap's point [1, 1]
    assert saved["ci95"]["cells"]["bon"]["harmlessness"]["accuracy"] == pytest.approx([0.2065, 1.0], abs=1e-4)
    assert summary["length"]["items"] == 5  # the pairwise set


def test_rmb_pairwise_judge_answers_both_orders_and_bon_needs_every_pair(tmp_path):
    from eval import rmb

    root = tmp_path / "RMB_dataset" / "BoN_set" / "Helpfulness" / "Chat"
    root.mkdir(parents=True)
    (root / "Discussion.json").write_text(json.dumps([
        _bon(1, "BoN_set/Helpfulness/Chat/Discussion", "the longest answer", ["short", "mid length"]),
        _bon(2, "BoN_set/Helpfulness/Chat/Discussion", "longer than", ["short", "the longest answer"])]),
        encoding="utf-8")
    summary = rmb.evaluate(_args(rmb, tmp_path / "RMB_dataset", tmp_path / "out", LongerWins()))
    assert summary["cells"]["bon"]["helpfulness"]["accuracy"] == 0.5 and summary["cells_present"] == 1
    rows = [json.loads(x) for x in (tmp_path / "out" / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["p"] == [pytest.approx(0.9), pytest.approx(0.9)] and rows[1]["correct"] is False


def test_rmb_bad_inputs_are_one_line(tmp_path):
    from eval import rmb
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match="no such file or directory"):
        rmb.load(str(tmp_path / "nowhere"))
    bad = tmp_path / "RMB_dataset" / "Pairwise_set" / "Helpfulness"
    bad.mkdir(parents=True)
    (bad / "x.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserInputError) as info:
        rmb.load(str(tmp_path / "RMB_dataset"))
    assert str(info.value).startswith(f"{bad / 'x.json'} line 1 is not valid JSON (")
    (bad / "x.json").write_text(json.dumps([_pair(1, "Pairwise_set/Helpfulness/x", "a", "b")] * 2), encoding="utf-8")
    with pytest.raises(UserInputError, match="id pairwise:1 also in .*x.json item 0"):
        rmb.load(str(tmp_path / "RMB_dataset"))


def test_rmb_and_prmbench_read_files_as_the_other_evaluators(tmp_path):
    """The shared readers' rule (rm_core.data): a UTF-8 BOM is accepted, bytes that are not UTF-8 stop with one
    line naming the file and line (no UnicodeDecodeError traceback, no good first row counted as 'not JSON')."""
    from eval import prmbench, rmb
    from rm_core.errors import UserInputError

    path = "Pairwise_set/Helpfulness/x"
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([_pair(1, path, "a", "b"), _pair(2, path, "c", "d")]).encode())
    items, skipped = rmb.load(str(bom))
    assert [it["id"] for it in items] == ["pairwise:1", "pairwise:2"] and skipped.total == 0
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[\n{"pair_uid": "caf\xe9"}]')
    with pytest.raises(UserInputError) as info:
        rmb.load(str(latin))
    assert str(info.value) == f"{latin} line 2: not UTF-8 text (byte 0xe9 at column 18); save the file as UTF-8"

    rows = [_prm_row(1, "deception", ["1. x", "2. y"], [2]), _prm_row(2, "deception", ["1. x", "2. y"], [1])]
    prm_bom = tmp_path / "prm_bom.jsonl"
    prm_bom.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    items, skipped = prmbench.load(str(prm_bom))
    assert [it["id"] for it in items] == ["deception:1", "deception:2"] and skipped.total == 0
    prm_latin = tmp_path / "prm_latin.jsonl"
    prm_latin.write_bytes((json.dumps(rows[0]) + "\n").encode() + b'{"idx": "\xff"}\n')
    with pytest.raises(UserInputError) as info:
        prmbench.load(str(prm_latin))
    assert str(info.value) == f"{prm_latin} line 2: not UTF-8 text (byte 0xff at column 10); save the file as UTF-8"


# ---------------------------------------------------------------- PRMBench


class StepTable(Judge):
    """A process judge: P(step good) from a table keyed by the step's text (its number removed)."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.seen: list[list[str]] = []

    def score_steps(self, items):
        out = []
        for _, steps in items:
            self.seen.append(list(steps))
            out.append([self.table.get(s) for s in steps])
        return out


def _prm_row(idx, cls, steps, errors):
    return {"idx": idx, "classification": cls, "original_question": "q", "modified_question": f"question {idx}",
            "question": "q", "original_process": steps, "modified_process": steps, "modified_steps": errors,
            "error_steps": errors, "reason": "r"}


def test_prmbench_step_counts_prmscore_and_groups_by_hand(tmp_path):
    from eval import prmbench

    rows = [
        # circular: the first error is step 1; every step counts, the ones after the first error too
        _prm_row("a", "circular", ["1. bad start", "2. fine", "3. fine too"], [1]),
        _prm_row("b", "circular", ["Step 1. ok", "Step 2. wrong", "Step 3. ok2"], [2, 7]),  # 7: beyond, ignored
        _prm_row("c", "multi_solutions", ["1. alt", "2. alt2"], []),
        _prm_row("d", "confidence", ["1. ok", "2. cut"], [2]),  # a step the judge cannot score: item failed
    ]
    path = tmp_path / "prm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    table = {"bad start": 0.9, "fine": 0.8, "fine too": 0.2, "ok": 0.7, "wrong": 0.1, "ok2": 0.6,
             "alt": 0.9, "alt2": 0.4}
    judge = StepTable(table)
    summary = prmbench.evaluate(_args(prmbench, path, tmp_path / "out", judge))
    assert judge.seen[0] == ["bad start", "fine", "fine too"]  # "1. " / "Step 1. " removed
    # a: error step 1 labelled correct (FP); step 2 correct (TP); step 3 labelled wrong (FN)
    # b: ok TP, wrong labelled wrong TN, ok2 TP        -> circular: TP 3, FP 1, TN 1, FN 1
    circ = summary["classes"]["circular"]
    assert (circ["tp"], circ["fp"], circ["tn"], circ["fn"]) == (3, 1, 1, 1)
    f1_pos, f1_neg = 2 * 3 / (2 * 3 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)  # 0.75, 0.5
    assert circ["f1"] == pytest.approx(f1_pos) and circ["negative_f1"] == pytest.approx(f1_neg)
    assert circ["prm_score"] == pytest.approx(0.5 * f1_pos + 0.5 * f1_neg)
    # multi_solutions: alt TP, alt2 labelled wrong FN; no negatives: PRMScore is F1 alone = 2/(2+0+1)
    ms = summary["classes"]["multi_solutions"]
    # its negative F1: P = 0 / (0 + 1) = 0, R = the -1 sentinel (no error step): 2PR / (P + R) = 0, as officially
    assert (ms["tp"], ms["fn"], ms["negative_f1"]) == (1, 1, 0.0) and ms["prm_score"] == pytest.approx(2 / 3)
    # overall: pooled counts TP 4, FP 1, TN 1, FN 2
    pos, neg = 2 * 4 / (8 + 1 + 2), 2 * 1 / (2 + 2 + 1)
    assert summary["prm_score"] == pytest.approx(0.5 * pos + 0.5 * neg)
    assert summary["groups"]["Simplicity"]["prm_score"] == pytest.approx(circ["prm_score"])
    assert summary["groups"]["Sensitivity"]["prm_score"] == pytest.approx(2 / 3)
    assert summary["failed_items"] == 1 and "confidence" not in summary["classes"]
    assert summary["errors_out_of_range"] == 1
    low, high = summary["ci95"]["prm_score"]
    assert low <= summary["prm_score"] <= high
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert saved["skipped_rows"]["by_reason"] == {"not JSON": 1}


def test_prmbench_keeps_the_first_row_of_a_repeated_id_as_the_official_loader(tmp_path):
    """The official data repeats five multi_solutions ids with other content; the official loader keeps the first
    row of an id and drops the later one: so here, counted in skipped_rows (not an error, not the later row)."""
    from eval import prmbench
    from rm_core.errors import UserInputError

    rows = [_prm_row(863, "multi_solutions", ["1. first"], []), _prm_row(864, "multi_solutions", ["1. x"], []),
            _prm_row(863, "multi_solutions", ["1. second", "2. more"], []), _prm_row(863, "deception", ["1. y"], [1])]
    path = tmp_path / "prm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items, skipped = prmbench.load(str(path))
    assert [(it["id"], it["steps"]) for it in items] == [("multi_solutions:863", ["first"]),
                                                         ("multi_solutions:864", ["x"]), ("deception:863", ["y"])]
    assert skipped.total == 1 and skipped.as_dict()["examples"] == {
        "repeated idx: the first row of the id kept, as the official loader does": ["prm.jsonl:3 (first at prm.jsonl:1)"]}
    assert prmbench.load(str(path), classifications=["deception"])[1].total == 0  # a class not asked for: not read
    no_idx = tmp_path / "no_idx.jsonl"  # without idx every row would share one id: malformed, not "repeated"
    no_idx.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "idx"}) + "\n" for r in rows[:2]))
    with pytest.raises(UserInputError, match="no PRMBench items .*idx must be a number or a string"):
        prmbench.load(str(no_idx))


def test_prmbench_official_f1_is_minus_one_when_undefined_and_score_is_clipped():
    from eval.prmbench import f1, prm_score

    assert f1(0, 3, 2) == -1.0 and f1(2, 0, 0) == 1.0
    assert prm_score({"tp": 0, "fp": 3, "tn": 0, "fn": 2}) == 0.0  # 0.5 * -1 + 0.5 * -1, clipped at 0
    assert prm_score({"tp": 1, "fp": 0, "tn": 0, "fn": 0}) == 0.0  # 0.5 * 1 + 0.5 * -1 = 0
    # the official sentinels (task.py): P = -1 with nothing labelled positive, R = -1 with no positive, and
    # 2PR/(P+R) of one sentinel and a 0 is 0, not -1; -1 only where P + R = 0 (both 0, or both sentinels)
    assert f1(0, 0, 5) == 0.0 and f1(0, 5, 0) == 0.0 and f1(0, 0, 0) == -1.0
    # a PRM that labels all 100 steps correct (80 are, 20 are errors): F1 = 2 x 0.8 x 1 / 1.8; negative F1 has
    # P = -1 (no step labelled an error), R = 0: 0, so PRMScore = 0.5 x 0.889 (it was 0.5 x 0.889 - 0.5 -> 0)
    assert prm_score({"tp": 80, "fp": 20, "tn": 0, "fn": 0}) == pytest.approx(0.5 * 1.6 / 1.8)
    assert f1(np.array([0.0, 2.0]), np.array([0.0, 1.0]), np.array([5.0, 1.0])).tolist() == pytest.approx(
        [0.0, 4 / 6])  # array-safe, as the bootstrap calls it


def test_prmbench_threshold_and_a_judge_that_cannot_score_steps(tmp_path):
    from eval import prmbench
    from rm_core.errors import UserInputError

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_prm_row("a", "deception", ["1. x", "2. y"], [2])) + "\n", encoding="utf-8")
    strict = prmbench.evaluate(_args(prmbench, path, tmp_path / "o1", StepTable({"x": 0.6, "y": 0.4}),
                                     "--threshold", "0.7"))
    assert (strict["classes"]["deception"]["tp"], strict["classes"]["deception"]["fn"]) == (0, 1)
    with pytest.raises(UserInputError, match="cannot score steps"):
        prmbench.evaluate(_args(prmbench, path, tmp_path / "o2", TableJudge({})))


def test_prm_judge_scores_given_steps_in_one_pass():
    """The project's PRM judge scores a benchmark's own steps (not re-split), equal to its per-conversation path."""
    import torch
    from transformers import LlamaForCausalLM

    from math_rm.judge import ProcessRewardJudge
    from rm_core.testing import tiny_llama_config, tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    judge = ProcessRewardJudge(LlamaForCausalLM(tiny_llama_config(len(tok))).eval(), tok, max_length=512)
    prompt = [{"role": "user", "content": "What is 2 + 2?"}]
    given = judge.score_steps([(prompt, ["2 + 2 = 4", "So the answer is 4."])])[0]
    split = judge.step_scores([prompt + [{"role": "assistant", "content": "2 + 2 = 4\nSo the answer is 4."}]])[0]
    assert len(given) == 2 and given == pytest.approx(split)
