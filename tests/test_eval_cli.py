"""eval_reward_bench end to end on a tiny checkpoint and a small local RewardBench-schema file."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from eval.reward_bench import evaluate, make_parser
from rm_core.errors import UserInputError

torch.set_num_threads(1)  # 2 shared cores: oversubscribed threads make tiny models 10x slower

PROMPTS = ["What is 2 + 3?", "Write a poem about the sea.", "Say hello.", "Name a color.", "Who are you?"]
GOOD = ["The answer is 5.", "The sea is blue and deep.", "Hello world!", "Blue.", "I am an assistant."]
BAD = ["I cannot help with that request.", "no", "the quick brown fox", "Seven.", "hello hello hello"]


def _rows():
    rows = []
    for subset in ("alpacaeval-easy", "llmbar-natural"):
        for i, (p, g, b) in enumerate(zip(PROMPTS, GOOD, BAD)):
            rows.append({"id": f"{subset}-{i}", "subset": subset, "prompt": p, "chosen": g, "rejected": b,
                         "chosen_model": "x", "rejected_model": "y"})
    # one malformed row: counted, not scored
    rows.append({"id": "bad-0", "subset": "alpacaeval-easy", "prompt": "q", "chosen": "", "rejected": "no",
                 "chosen_model": "x", "rejected_model": "y"})
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from rm_core.testing import tiny_reward_model

    root = tmp_path_factory.mktemp("evalcli")
    model, tokenizer = tiny_reward_model(seed=7)
    model.save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    data = root / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    return root


def _run(setup, out: Path, *extra) -> dict:
    argv = ["--model", str(setup / "ckpt"), "--dataset", str(setup / "rows.jsonl"), "--output_dir", str(out),
            "--batch_size", "3", *extra]
    return evaluate(make_parser().parse_args(argv))


def _scores(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "scores.jsonl").read_text(encoding="utf-8").splitlines()]


def _recompute(scores: list[dict]) -> dict[str, float]:
    tally = defaultdict(lambda: [0, 0])
    for s in scores:
        tally[s["subset"]][0] += s["chosen_score"] > s["rejected_score"]
        tally[s["subset"]][1] += 1
    return {k: c / n for k, (c, n) in tally.items()}


def test_results_and_scores_agree(setup, tmp_path):
    out = tmp_path / "run"
    summary = _run(setup, out)
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "scores.jsonl"]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results == json.loads(json.dumps(summary))
    scores = _scores(out)
    good_ids = [r["id"] for r in _rows() if r["id"] != "bad-0"]
    assert [s["id"] for s in scores] == good_ids
    assert results["pairs"] == len(good_ids) == 10
    # the malformed row is counted with its reason
    assert results["skipped_rows"]["skipped"] == 1
    assert results["skipped_rows"]["by_reason"] == {"chosen is an empty response": 1}
    # per-subset accuracy recomputed from scores.jsonl
    expected = _recompute(scores)
    assert set(results["subsets"]) == {"alpacaeval-easy", "llmbar-natural"}
    for subset, acc in expected.items():
        assert results["subsets"][subset]["accuracy"] == pytest.approx(acc)
        assert results["subsets"][subset]["n"] == 5
    for s in scores:
        assert s["correct"] == (s["chosen_score"] > s["rejected_score"])
        assert isinstance(s["chosen_score"], float) and s["tokens"] > 0
    # the scores are the model's: not all pairs tie, and the two subsets (same pairs) score the same
    assert len({round(s["chosen_score"], 6) for s in scores}) > 1
    by_id = {s["id"]: s for s in scores}
    for i in range(5):
        assert by_id[f"alpacaeval-easy-{i}"]["chosen_score"] == pytest.approx(
            by_id[f"llmbar-natural-{i}"]["chosen_score"], abs=1e-5)
    assert results["speed"]["pairs_scored_now"] == 10
    assert results["shared_prefix"] is True
    # sections: Chat from alpacaeval-easy only, Chat Hard from llmbar-natural only
    assert results["sections"]["Chat"] == pytest.approx(expected["alpacaeval-easy"])
    assert results["sections"]["Chat Hard"] == pytest.approx(expected["llmbar-natural"])
    assert results["score"] is None  # Safety and Reasoning absent


def test_resume_keeps_partial_scores_and_removes_the_partial_file(setup, tmp_path):
    out = tmp_path / "resume"
    out.mkdir()
    fake = [
        {"id": "alpacaeval-easy-0", "subset": "alpacaeval-easy", "chosen_score": 123.0, "rejected_score": -7.0,
         "correct": True, "truncated": False, "tokens": 1},
        {"id": "llmbar-natural-3", "subset": "llmbar-natural", "chosen_score": -55.0, "rejected_score": 55.0,
         "correct": False, "truncated": False, "tokens": 1},
    ]
    cut_line = '{"id": "alpacaeval-easy-1", "subset": "alpacaeval-easy", "chosen_sc'  # killed mid-write
    (out / "scores.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fake) + cut_line,
                                              encoding="utf-8")
    from eval.runner import eval_fingerprint  # the partial file is this run's (another's is refused: test_resume.py)

    args = make_parser().parse_args(["--model", str(setup / "ckpt"), "--dataset", str(setup / "rows.jsonl")])
    (out / "fingerprint.json").write_text(json.dumps(eval_fingerprint(args, "reward_bench")), encoding="utf-8")
    summary = _run(setup, out)
    assert not (out / "scores.partial.jsonl").exists()
    scores = {s["id"]: s for s in _scores(out)}
    assert len(scores) == 10
    for row in fake:
        assert scores[row["id"]] == row  # not scored again
    assert scores["alpacaeval-easy-1"]["chosen_score"] != 123.0 and abs(scores["alpacaeval-easy-1"]["chosen_score"]) < 50
    assert summary["speed"]["pairs_scored_now"] == 8
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for subset, acc in _recompute(list(scores.values())).items():
        assert results["subsets"][subset]["accuracy"] == pytest.approx(acc)


def test_no_shared_prefix_gives_the_same_scores(setup, tmp_path):
    _run(setup, tmp_path / "shared")
    _run(setup, tmp_path / "plain", "--no_shared_prefix")
    shared = _scores(tmp_path / "shared")
    plain = _scores(tmp_path / "plain")
    assert [s["id"] for s in shared] == [s["id"] for s in plain]
    for a, b in zip(shared, plain):
        assert a["chosen_score"] == pytest.approx(b["chosen_score"], abs=1e-5)
        assert a["rejected_score"] == pytest.approx(b["rejected_score"], abs=1e-5)
    assert json.loads((tmp_path / "plain" / "results.json").read_text())["shared_prefix"] is False


def test_subsets_limit_and_truncation(setup, tmp_path):
    out = tmp_path / "sub"
    summary = _run(setup, out, "--subsets", "llmbar-natural", "--limit", "3", "--max_length", "8")
    scores = _scores(out)
    assert [s["id"] for s in scores] == ["llmbar-natural-0", "llmbar-natural-1", "llmbar-natural-2"]
    assert all(s["tokens"] <= 16 and s["truncated"] for s in scores)
    assert summary["truncated_pairs"] == 3
    assert list(summary["subsets"]) == ["llmbar-natural"]


def test_duplicate_ids_are_refused(setup, tmp_path):
    rows = _rows()[:2]
    rows[1]["id"] = rows[0]["id"]
    data = tmp_path / "dup.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = make_parser().parse_args(["--model", str(setup / "ckpt"), "--dataset", str(data),
                                     "--output_dir", str(tmp_path / "dup")])
    with pytest.raises(UserInputError) as info:
        evaluate(args)
    assert str(info.value) == (f"{data}: id {rows[0]['id']!r} is in row 0 and row 1; item ids must be unique "
                               "(scores are stored and resumed by id)")
    assert not (tmp_path / "dup").exists()  # refused before anything is written


def test_llmbar_folder_as_dataset(setup, tmp_path):
    from rm_core.data import LLMBAR_SUBSETS

    folder = tmp_path / "llmbar"
    folder.mkdir()
    for k, filename in enumerate(LLMBAR_SUBSETS):
        rows = [{"input": PROMPTS[j], "output_1": GOOD[j], "output_2": BAD[j], "label": 1 + (j + k) % 2}
                for j in range(k + 1)]
        (folder / filename).write_text(json.dumps(rows), encoding="utf-8")
    out = tmp_path / "llmbar-out"
    summary = evaluate(make_parser().parse_args(["--model", str(setup / "ckpt"), "--dataset", str(folder),
                                                 "--output_dir", str(out)]))
    assert {name: row["n"] for name, row in summary["subsets"].items()} == {
        subset: k + 1 for k, subset in enumerate(LLMBAR_SUBSETS.values())}
    assert summary["pairs"] == 15
    scores = _scores(out)
    assert {s["id"] for s in scores} >= {"llmbar-natural-0", "llmbar-adver-manual-4"}
    # label 2 swaps chosen and rejected: the same texts score mirrored
    by_id = {s["id"]: s for s in scores}
    a, b = by_id["llmbar-natural-0"], by_id["llmbar-adver-neighbor-0"]  # label 1 vs label 2, same texts
    assert a["chosen_score"] == pytest.approx(b["rejected_score"], abs=1e-5)
    assert a["rejected_score"] == pytest.approx(b["chosen_score"], abs=1e-5)


# ---------------------------------------------------------------- failures and degenerate pairs


def test_nan_rewards_are_counted_failures_scored_wrong_and_null_in_scores(tmp_path):
    """A checkpoint that gives NaN on some inputs (here: any response holding "~", whose embedding is NaN):
    those pairs are failed_pairs and judge failures, counted wrong (the official rule), and scores.jsonl holds
    null, never a bare NaN. Identical chosen/rejected pairs are skipped with their reason, never scored."""
    import math

    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=7)
    poison = tokenizer.convert_tokens_to_ids("~")
    assert poison != tokenizer.unk_token_id
    with torch.no_grad():
        model.get_input_embeddings().weight[poison] = math.nan
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    rows = [r for r in _rows() if r["subset"] == "alpacaeval-easy" and r["id"] != "bad-0"]  # 5 clean pairs
    rows += [{"id": f"nan-{i}", "subset": "alpacaeval-easy", "prompt": p, "chosen": f"{g} ~", "rejected": b}
             for i, (p, g, b) in enumerate(zip(PROMPTS[:3], GOOD, BAD))]
    rows += [{"id": f"same-{i}", "subset": "alpacaeval-easy", "prompt": p, "chosen": g, "rejected": f" {g}\n"}
             for i, (p, g) in enumerate(zip(PROMPTS[:2], GOOD))]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for share_prefix in ([], ["--no_shared_prefix"]):
        out = tmp_path / f"out{len(share_prefix)}"
        summary = evaluate(make_parser().parse_args(["--model", str(tmp_path / "ckpt"), "--dataset", str(data),
                                                     "--output_dir", str(out), "--batch_size", "2", *share_prefix]))
        assert summary["failed_pairs"] == 3 and summary["pairs"] == 8
        assert summary["judge_failures"]["by_reason"] == {"non-finite score": 3}  # the chosen side of each
        assert summary["skipped_rows"]["by_reason"] == {"chosen and rejected are identical": 2}
        text = (out / "scores.jsonl").read_text(encoding="utf-8")
        assert "NaN" not in text and "Infinity" not in (out / "results.json").read_text(encoding="utf-8")
        scores = _scores(out)
        failed = [s for s in scores if s["failed"]]
        assert sorted(s["id"] for s in failed) == ["nan-0", "nan-1", "nan-2"]
        assert all(s["chosen_score"] is None and math.isfinite(s["rejected_score"]) for s in failed)
        clean = [s for s in scores if not s["failed"]]
        subset = summary["subsets"]["alpacaeval-easy"]
        assert subset["n"] == 8 and subset["failed"] == 3
        assert subset["correct"] == sum(s["chosen_score"] > s["rejected_score"] for s in clean)
        assert subset["accuracy"] == pytest.approx(subset["correct"] / 8)
        assert summary["score_excluding_failures"] is None  # the other sections are absent
        assert any("3 pair(s) the judge failed on" in n for n in summary["notes"])
