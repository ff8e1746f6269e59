"""Issue 16, points 6 and 8: held-out means held out, and bad input gets one clear line.

- Data with no test split (one file, a folder without test.jsonl, a Hub set without one) holds out a
  deterministic fraction by the hash of each pair's content, disjoint from the training pairs, and reports it with
  its size (data report, eval_results.json, card, config.json); or reports plainly that there is none. A test split
  never scores a training pair. ArmoRM, the decision tree and math_rm follow the same rule.
- Bad files (non-UTF-8, CSV, empty JSON, cut JSON, a folder without data files, a cut .gz) raise a UserInputError
  naming the file (and line); commands print `error: <message>` and exit 2 without a traceback. A missing local
  --model says "no such file or directory" before any data is read. An empty data set, or one whose every row is
  skipped, exits non-zero.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from judges.base import Judge, register_judge, split_conversation

torch.set_num_threads(1)  # 2 shared cores

REPO = Path(__file__).resolve().parents[1]
WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD_END = "Sure, here is a short answer in one word."
BAD_END = "I cannot help with that request."


def _rows(n: int, tag: str, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = f"{tag} {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        rows.append({"id": f"{tag}-{i}", "prompt": prompt, "chosen": f"{filler} {GOOD_END}",
                     "rejected": f"{filler} {BAD_END}"})
    return rows


def _write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _expected_held_out_ids(rows: list[dict], fraction_denominator: int = 10) -> set[str]:
    """The documented rule, computed here independently: sha1 of the canonical [prompt, chosen, rejected] JSON of
    the converted pair, as an integer, mod 10 == 0 (fraction 0.1)."""
    from rm_core.data import to_preferences

    out = set()
    for p in to_preferences(rows)[0]:
        key = json.dumps([p["prompt"], p["chosen"], p["rejected"]], sort_keys=True, ensure_ascii=False,
                         separators=(",", ":"))
        if int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % fraction_denominator == 0:
            out.add(p["id"])
    return out


def _splits(**kwargs):
    from rm_core.args import DataArguments
    from rm_core.pipeline import load_preference_splits

    return load_preference_splits(DataArguments(**kwargs))


# ================================================================ 6. held-out means held out


def test_one_file_holds_out_a_hashed_fraction_disjoint_and_deterministic(tmp_path):
    rows = _rows(80, "pair")
    path = _write_jsonl(tmp_path / "prefs.jsonl", rows)
    train, test, report = _splits(dataset_name=str(path))
    expected = _expected_held_out_ids(rows)
    assert 0 < len(expected) < 80
    assert {p["id"] for p in test} == expected
    assert not {p["id"] for p in train} & {p["id"] for p in test}  # never a training pair
    assert len(train) + len(test) == 80
    held = report["held_out"]
    assert held["rule"] == "hashed" and held["fraction"] == 0.1 and held["pairs"] == len(test) == report["test_pairs"]
    assert "no 'test' split" in held["description"]

    # the same pairs in another order, with other ids and duplicated, land on the same side
    shuffled = [dict(r, id=f"other-{i}") for i, r in enumerate(rows)]
    random.Random(1).shuffle(shuffled)
    _, test2, _ = _splits(dataset_name=str(_write_jsonl(tmp_path / "shuffled.jsonl", shuffled + shuffled[:10])))
    key = [(p["prompt"][0]["content"], p["chosen"][0]["content"]) for p in test]
    key2 = {(p["prompt"][0]["content"], p["chosen"][0]["content"]) for p in test2}
    assert set(key) == key2

    # another fraction
    train3, test3, report3 = _splits(dataset_name=str(path), eval_fraction=0.5)
    assert report3["held_out"]["pairs"] == len(test3) > len(test) and len(train3) + len(test3) == 80


def test_no_held_out_set_is_reported_plainly(tmp_path):
    path = _write_jsonl(tmp_path / "prefs.jsonl", _rows(20, "pair"))
    train, test, report = _splits(dataset_name=str(path), eval_fraction=0.0)
    assert len(train) == 20 and test == []
    assert report["held_out"]["pairs"] == 0 and report["held_out"]["description"].startswith("none")
    train, test, report = _splits(dataset_name=str(path), dataset_test_split=None)
    assert len(train) == 20 and test == [] and report["held_out"]["rule"] == "none"

    from rm_core.pipeline import held_out_line

    assert held_out_line(report).startswith("[data] no held-out set (none: --dataset_test_split is empty)")


def test_a_test_split_never_scores_a_training_pair(tmp_path):
    train_rows, new = _rows(20, "train"), _rows(5, "test")
    _write_jsonl(tmp_path / "data" / "train.jsonl", train_rows)
    _write_jsonl(tmp_path / "data" / "test.jsonl", new + [dict(r, id=f"copy-{i}") for i, r in enumerate(train_rows[:3])])
    train, test, report = _splits(dataset_name=str(tmp_path / "data"))
    assert len(train) == 20 and sorted(p["id"] for p in test) == sorted(r["id"] for r in new)
    assert report["held_out"] == {"rule": "split", "split": "test", "description": "the data's 'test' split",
                                  "dropped_also_in_train": 3, "pairs": 5}


def test_a_folder_or_hub_set_without_a_test_split_is_carved(tmp_path, monkeypatch):
    rows = _rows(60, "pair")
    _write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    train, test, report = _splits(dataset_name=str(tmp_path / "data"))
    assert report["held_out"]["rule"] == "hashed" and {p["id"] for p in test} == _expected_held_out_ids(rows)

    import datasets

    def fake_load_dataset(name, data_dir=None, split=None, **kwargs):
        assert name == "someorg/no-test-split"
        if split != "train":
            raise ValueError(f'Unknown split "{split}". Should be one of [\'train\'].')
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    train, test, report = _splits(dataset_name="someorg/no-test-split")
    assert report["held_out"]["rule"] == "hashed" and {p["id"] for p in test} == _expected_held_out_ids(rows)
    assert len(train) + len(test) == 60


def test_the_fixed_hh_split_is_the_shared_hash_rule():
    from rm_core.data import hh_is_test, hh_split, is_held_out

    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: a{i}", "rejected": "x"} for i in range(200)]
    for r in rows:
        assert hh_is_test(r) == (int(hashlib.sha1(r["chosen"].encode()).hexdigest(), 16) % 5 == 0)
        assert hh_is_test(r) == is_held_out(r["chosen"], 0.2)
    train, test = hh_split(rows)
    assert len(train) + len(test) == 200 and 0 < len(test) < 100


def test_math_one_candidates_file_holds_out_questions_by_hash(tmp_path):
    from math_rm.config import MathDataArguments
    from math_rm.data import load_math_splits

    cands = [{"id": f"q{i}", "prompt": f"What is {i} + 1?", "responses": [str(i + 1), str(i)],
              "correct": [True, False]} for i in range(60)]
    path = _write_jsonl(tmp_path / "cands.jsonl", cands)
    train_src, eval_cands, report = load_math_splits(MathDataArguments(dataset_name=str(path)))
    held_ids = {c["id"] for c in eval_cands}
    expected = {c["id"] for c in cands
                if int(hashlib.sha1(json.dumps(c["prompt"]).encode()).hexdigest(), 16) % 10 == 0}
    assert held_ids == expected and 0 < len(expected) < 60
    assert not held_ids & {r["id"] for r in train_src} and len(train_src) + len(eval_cands) == 60
    assert report["held_out"]["questions"] == len(eval_cands) and "sha1" in report["held_out"]["description"]

    steps = [{"prompt": f"q{i}", "steps": ["a", "b"], "labels": [1, 0]} for i in range(10)]
    _, eval_cands, report = load_math_splits(MathDataArguments(dataset_name=str(_write_jsonl(tmp_path / "s.jsonl",
                                                                                               steps))))
    assert eval_cands == [] and report["held_out"]["description"].startswith("none")


def test_math_held_out_questions_are_never_training_questions(tmp_path):
    """--eval_dataset_name may hold training questions (the GSM8K solutions file holds both sides of its fixed
    split: all 1,000 training questions were 'held out'): those are dropped and counted."""
    from math_rm.config import MathDataArguments
    from math_rm.data import load_math_splits

    steps = [{"prompt": f"What is {i} + 1?", "steps": ["a", "b"], "labels": [1, 0]} for i in range(4)]
    cands = [{"id": f"q{i}", "prompt": [{"role": "user", "content": f"What is {i} +  1? "}],
              "responses": [str(i + 1), str(i)], "correct": [True, False]} for i in (1, 7, 8)]
    args = MathDataArguments(dataset_name=str(_write_jsonl(tmp_path / "s.jsonl", steps)),
                             eval_dataset_name=str(_write_jsonl(tmp_path / "c.jsonl", cands)))
    _, eval_cands, report = load_math_splits(args)
    assert [c["id"] for c in eval_cands] == ["q7", "q8"]  # q1 is a training question (as messages, other spacing)
    assert report["eval_dropped_also_in_training"] == 1 and "less 1 questions" in report["held_out"]["description"]
    # the question as each training format holds it: PRM800K's {"problem"}, an RLHFlow step chat's first turn
    from math_rm.data import question_text

    assert question_text({"question": {"problem": "What is 1 +  1?", "ground_truth_answer": "2"}}) == \
        question_text({"conversations": [{"role": "user", "content": "What is 1 + 1? Step 1: add"},
                                          {"role": "assistant", "content": "+"}]}) == "What is 1 + 1?"
    assert question_text({"steps": ["a"]}) == ""  # none to compare: never matches another empty one
    from rm_core.data import shared_data_dir

    solutions = shared_data_dir(required=True) / "gsm8k" / "example_model_solutions.jsonl"
    _, held, report = load_math_splits(MathDataArguments(dataset_name=str(solutions), eval_dataset_name=str(solutions)))
    assert len(held) == 319 and report["eval_dropped_also_in_training"] == 1000  # the file's training questions


# ---------------------------------------------------------------- end to end: the BT recipe on one file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rm_core.testing import save_tiny_backbone, tiny_reward_model

    root = tmp_path_factory.mktemp("badinput")
    base = save_tiny_backbone(root / "base", seed=0)
    model, tokenizer = tiny_reward_model(seed=7)
    model.save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    return {"root": root, "base": base, "ckpt": root / "ckpt"}


def _bt_argv(base: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "2", "--max_length", "64", "--report_to", "none",
            "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", *extra]


def _bt_recipe():
    from bradley_terry_rm import train

    return train


def test_bt_on_one_file_reports_the_carved_held_out_set_everywhere(tiny, tmp_path, capsys):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from rm_core.data import to_preferences
    from rm_core.pipeline import evaluate_pairs

    rows = _rows(48, "pair")
    data = _write_jsonl(tmp_path / "prefs.jsonl", rows)
    expected = _expected_held_out_ids(rows)
    recipe = _bt_recipe()
    out = tmp_path / "bt"
    results = recipe.main(*recipe.make_parser().parse_args_and_config(_bt_argv(tiny["base"], data, out)))
    assert 0 < len(expected) < 48
    assert results["held_out"]["pairs"] == len(expected)  # today: 48, the training pairs
    assert results["data"]["train_pairs"] == 48 - len(expected)
    assert f"[data] held-out set: {len(expected)} pairs" in capsys.readouterr().out

    saved = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))
    assert saved["data"]["held_out"]["rule"] == "hashed" and saved["data"]["held_out"]["pairs"] == len(expected)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| held-out set | {len(expected)} pairs: 0.1 of the pairs, by sha1" in card
    config = AutoConfig.from_pretrained(out)
    assert config.reward_stats_on == f"held-out: {len(expected)} pairs"
    # reward mean/std are those of the held-out pairs only
    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    held = [p for p in to_preferences(rows)[0] if p["id"] in expected]
    recomputed = evaluate_pairs(model, AutoTokenizer.from_pretrained(out), held, 64)
    assert config.reward_mean == pytest.approx(recomputed["reward_mean"], abs=1e-5)


def test_bt_with_no_held_out_set_says_so_and_claims_no_held_out_numbers(tiny, tmp_path, capsys):
    from transformers import AutoConfig

    data = _write_jsonl(tmp_path / "prefs.jsonl", _rows(24, "pair"))
    recipe = _bt_recipe()
    out = tmp_path / "bt"
    results = recipe.main(*recipe.make_parser().parse_args_and_config(
        _bt_argv(tiny["base"], data, out, "--eval_fraction", "0")))
    assert "held_out" not in results and results["data"]["held_out"]["pairs"] == 0
    assert "[data] no held-out set" in capsys.readouterr().out
    config = AutoConfig.from_pretrained(out)
    assert config.reward_mean is None and config.reward_stats_on is None
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Not evaluated." in card and "| held-out set | 0 pairs: none:" in card


# ---------------------------------------------------------------- ArmoRM and the decision tree


def test_armo_test_pairs_that_are_training_pairs_are_dropped(tiny_armo, tmp_path):
    import dataclasses
    import shutil

    from armo_rm import train_gating

    cfg, _, _, _ = tiny_armo
    out = tmp_path / "armo"
    out.mkdir()
    shutil.copy(Path(cfg.output_dir) / "regression.safetensors", out / "regression.safetensors")
    same = dataclasses.replace(cfg, output_dir=str(out), embedding_cache=cfg.cache_folder, max_steps=5,
                               test_sources=cfg.preference_sources + cfg.test_sources)
    result = train_gating.main(same)
    train_source, held_out_source = same.test_sources
    assert result["test"][train_source]["pairs"] == 0  # today: 50, scored on the training pairs
    assert result["test"][train_source]["dropped_also_in_training_pairs"] == 50
    assert result["test"][held_out_source]["pairs"] == 20
    assert result["test"][held_out_source]["dropped_also_in_training_pairs"] == 0


@register_judge("test_bad_input_rules")
class _PoliteJudge(Judge):
    pointwise = True

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        return cls()

    def attribute_scores(self, conversations):
        return [{"polite": float(split_conversation(c)[1].count("please"))} for c in conversations]

    def _score(self, conversations, references):
        return [a["polite"] for a in self.attribute_scores(conversations)]


def test_decision_tree_never_tests_on_its_training_pairs(tmp_path):
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present

    model = tmp_path / "rules"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"rm_family": "test_bad_input_rules"}))
    prefs = [{"prompt": [{"role": "user", "content": f"q{i}"}],
              "chosen": [{"role": "assistant", "content": "please " * (1 + i % 3) + f"answer {i}"}],
              "rejected": [{"role": "assistant", "content": f"answer {i}"}], "id": f"p{i}"} for i in range(40)]
    collect({"human": "human"}, present(prefs), tmp_path / "train")
    argv = ["--preferences", str(tmp_path / "train"), "--judge", "human", "--attribute_model", str(model),
            "--depths", "1", "--min_leafs", "1", "--folds", "2"]
    info = fit_tree.main([*argv, "--output_dir", str(tmp_path / "t1"), "--test_preferences", str(tmp_path / "train")])
    test = info["test"][str(tmp_path / "train")]
    assert test["pairs"] == 0 and test["left_out"]["also_in_training_pairs"] == 40  # today: 40 training pairs
    info = fit_tree.main([*argv, "--output_dir", str(tmp_path / "t2")])
    assert info["held_out"].startswith("none")


# ================================================================ 8. bad files get one clear line


def _bad_files(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """kind -> (path, the line the message must name, or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})
    files = {}
    p = folder / "latin1.jsonl"
    p.write_bytes((good + "\n").encode() + '{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    files["non-UTF-8 .jsonl"] = (p, "line 2")
    p = folder / "latin1.json"
    p.write_bytes(f"[{good},\n".encode() + '{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}]'.encode("latin-1"))
    files["non-UTF-8 .json"] = (p, "line 2")
    p = folder / "rows.csv"
    p.write_text("prompt,chosen,rejected\nq,a,b\n", encoding="utf-8")
    files["CSV"] = (p, None)
    p = folder / "empty.json"
    p.write_text("", encoding="utf-8")
    files["empty .json"] = (p, None)
    p = folder / "cut.json"
    p.write_text(f"[{good},\n{good[:20]}", encoding="utf-8")
    files["truncated .json"] = (p, "line 2")
    p = folder / "cut.jsonl"
    p.write_text(f"{good}\n{good}\n{good[:25]}", encoding="utf-8")
    files["truncated .jsonl"] = (p, "line 3")
    p = folder / "cut.jsonl.gz"
    p.write_bytes(gzip.compress(((good + "\n") * 50).encode())[:40])
    files["truncated .jsonl.gz"] = (p, None)
    p = folder / "no-data"
    p.mkdir()
    (p / "notes.txt").write_text("not data", encoding="utf-8")
    files["folder without data files"] = (p, None)
    return files


BAD_KINDS = ["non-UTF-8 .jsonl", "non-UTF-8 .json", "CSV", "empty .json", "truncated .json", "truncated .jsonl",
             "truncated .jsonl.gz", "folder without data files"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_bad_file_raises_one_user_error_naming_the_file_and_line(tmp_path, kind):
    from rm_core.data import load_rows
    from rm_core.errors import UserInputError

    path, line = _bad_files(tmp_path)[kind]
    with pytest.raises(UserInputError) as info:
        load_rows(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if line:
        assert line in message


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_eval_reward_bench_prints_one_line_for_a_bad_file(tiny, tmp_path, capsys, kind):
    from eval.reward_bench import main

    path, line = _bad_files(tmp_path)[kind]
    with pytest.raises(SystemExit) as info:
        main(["--model", str(tiny["ckpt"]), "--dataset", str(path), "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0]
    if line:
        assert line in err[0]


@pytest.mark.parametrize("module", ["reward_bench", "reward_bench2", "rm_bench", "judgebench", "best_of_n"])
def test_a_missing_model_path_is_named_before_any_data_is_read(tmp_path, capsys, module):
    import importlib

    main = importlib.import_module(f"eval.{module}").main
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(SystemExit) as info:  # the default data sets are Hub ids the offline machine cannot reach
        main(["--model", str(missing), "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --model {missing}: no such file or directory"]


def test_a_missing_relative_model_shaped_like_a_hub_id_is_one_line(tmp_path, capsys, monkeypatch):
    """`outputs/bt` may be a folder or a Hub id: when neither answers, one line says both, before the data."""
    from eval.reward_bench import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as info:
        main(["--model", "outputs/bt", "--dataset", "also-missing.jsonl"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model outputs/bt: no such file or directory, and no model")


def test_judges_and_training_name_a_missing_model_path(tiny, tmp_path):
    import judges
    from rm_core.errors import MissingPathError

    with pytest.raises(MissingPathError, match="no such file or directory"):
        judges.load(str(tmp_path / "nope"))
    with pytest.raises(MissingPathError, match=r"no such file or directory"):
        judges.load(f"llm:{tmp_path / 'nope'}")
    recipe = _bt_recipe()
    bad_data = _bad_files(tmp_path / "bad")["CSV"][0]
    with pytest.raises(MissingPathError, match=rf"--model_name_or_path {tmp_path / 'nope'}: no such file or directory"):
        recipe.main(*recipe.make_parser().parse_args_and_config(_bt_argv(tmp_path / "nope", bad_data, tmp_path / "o")))


def test_a_missing_dataset_path_says_no_such_file(tiny, tmp_path, capsys):
    from eval.reward_bench import main

    missing = tmp_path / "nope" / "rows.jsonl"
    with pytest.raises(SystemExit):
        main(["--model", str(tiny["ckpt"]), "--dataset", str(missing), "--output_dir", str(tmp_path / "out")])
    assert capsys.readouterr().err.strip() == f"error: data set {missing}: no such file or directory"


def test_an_empty_or_all_skipped_data_set_exits_non_zero(tiny, tmp_path, capsys):
    from eval.reward_bench import main
    from rm_core.errors import run_cli

    all_bad = _write_jsonl(tmp_path / "all_bad.jsonl", [{"prompt": "q", "chosen": "", "rejected": "b"},
                                                        {"prompt": "q", "chosen": "a"}, [1, 2]])
    empty = _write_jsonl(tmp_path / "empty.jsonl", [])
    for data in (all_bad, empty):
        with pytest.raises(SystemExit) as info:
            main(["--model", str(tiny["ckpt"]), "--dataset", str(data), "--output_dir", str(tmp_path / "out")])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {data}: no pairs to score")

        recipe = _bt_recipe()
        args = recipe.make_parser().parse_args_and_config(_bt_argv(tiny["base"], data, tmp_path / "bt"))
        with pytest.raises(SystemExit) as info:
            run_cli(recipe.main, *args)
        assert info.value.code == 2
        err = capsys.readouterr().err  # the model loads first (its progress bar is on stderr too)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith(f"error: no usable training pairs in '{data}'")


def test_the_commands_print_one_line_and_no_traceback(tiny, tmp_path):
    """The real entry points, in fresh processes: `python recipe.py` and the eval_reward_bench console script."""
    bad = _bad_files(tmp_path / "bad")["truncated .jsonl"][0]
    train = subprocess.run([sys.executable, str(REPO / "bradley_terry_rm" / "train.py"),
                            *_bt_argv(tiny["base"], bad, tmp_path / "bt")],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert train.returncode == 2, train.stderr[-2000:]
    assert "Traceback" not in train.stderr
    assert train.stderr.strip().splitlines()[-1].startswith(f"error: {bad} line 3 is not valid JSON")

    script = Path(sys.executable).with_name("eval_reward_bench")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "eval.reward_bench"]
    run = subprocess.run([*cmd, "--model", str(tmp_path / "missing-ckpt")], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"error: --model {tmp_path / 'missing-ckpt'}: no such file or directory"


# ================================================================ audit: repeated ids, chat templates, first rows


def _bench_rows(kind: str, i: int, rid=None) -> dict:
    """One valid row of each evaluator's schema, with id `rid` (no id field when None)."""
    row = {
        "reward_bench": {"subset": "alpacaeval-easy", "prompt": f"What is {i} + 3?", "chosen": f"It is {i + 3}.",
                         "rejected": "I cannot help."},
        "rm_bench": {"domain": "chat", "prompt": f"p{i}", "chosen": [f"c{i}a", f"c{i}b", f"c{i}c"],
                     "rejected": [f"r{i}a", f"r{i}b", f"r{i}c"]},
        "reward_bench2": {"subset": "Factuality", "prompt": f"q{i}", "chosen": [f"good {i}"],
                          "rejected": [f"bad {i}", f"worse {i}"]},
        "best_of_n": {"prompt": f"question {i}", "responses": [f"#### {i}", f"#### {i + 1}"], "correct": [True, False]},
        "judgebench": {"source": "mmlu-pro-math", "question": f"q{i}", "response_A": f"The answer is {i}",
                       "response_B": "I do not know", "label": "A>B"},
    }[kind]
    if rid is not None:
        row["pair_id" if kind == "judgebench" else "id"] = rid
    return row


EVALUATORS = ["reward_bench", "rm_bench", "reward_bench2", "best_of_n", "judgebench"]


def _eval_main(kind: str, ckpt: Path, data: Path, out: Path, *extra: str) -> None:
    import importlib

    main = importlib.import_module(f"eval.{kind}").main
    split = ["--split", "all"] if kind == "best_of_n" else []
    main(["--model", str(ckpt), "--dataset", str(data), "--output_dir", str(out), *split, *extra])


@pytest.mark.parametrize("kind", EVALUATORS)
def test_a_repeated_id_is_one_line_naming_the_file_the_id_and_both_rows(tiny, tmp_path, capsys, kind):
    data = _write_jsonl(tmp_path / "dup.jsonl", [_bench_rows(kind, 0, "x0"), _bench_rows(kind, 1, "x1"),
                                                 _bench_rows(kind, 2, "x0")])
    with pytest.raises(SystemExit) as info:
        _eval_main(kind, tiny["ckpt"], data, tmp_path / "out")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {data}: id 'x0' is in row 0 and row 2; item ids must be unique (scores are stored and "
                   "resumed by id)"]
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("kind", EVALUATORS)
def test_a_row_without_an_id_never_collides_with_an_id_a_row_gives(tiny, tmp_path, kind):
    """Row 0 has no id, row 1 calls itself "0": the generated id steps aside, and every row is scored."""
    import importlib

    data = _write_jsonl(tmp_path / "noid.jsonl", [_bench_rows(kind, 0), _bench_rows(kind, 1, "0"),
                                                  _bench_rows(kind, 2, "x2")])
    _eval_main(kind, tiny["ckpt"], data, tmp_path / "out")
    ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert ids == ["#0", "0", "x2"]
    assert importlib.import_module("rm_core.data").row_ids([{}, {"id": "0"}]) == ["#0", "0"]


def _no_template_checkpoint(tiny, folder: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["ckpt"])
    tokenizer.chat_template = None
    AutoModelForSequenceClassification.from_pretrained(tiny["ckpt"]).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert not AutoTokenizer.from_pretrained(folder).chat_template
    return folder


@pytest.mark.parametrize("kind", ["reward_bench", "best_of_n"])
def test_a_chat_template_problem_is_one_line_before_anything_is_written(tiny, tmp_path, capsys, kind):
    """No chat template, a --chat_template file that is missing or not valid Jinja: one line, exit 2, and no
    fingerprint.json left behind (a rerun with a --chat_template would otherwise be refused as another run)."""
    data = _write_jsonl(tmp_path / "rows.jsonl", [_bench_rows(kind, i, f"x{i}") for i in range(2)])
    bare = _no_template_checkpoint(tiny, tmp_path / "bare")
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m.content ", encoding="utf-8")
    capsys.readouterr()  # the copy's weight-loading bar
    cases = [
        (bare, [], f"error: tokenizer '{bare}' has no chat template: pass --chat_template PATH.jinja (or "
                   "--chat_template plain for a simple 'Role: text' rendering)"),
        (tiny["ckpt"], ["--chat_template", str(tmp_path / "none.jinja")],
         f"error: chat template file '{tmp_path / 'none.jinja'}' does not exist"),
        (tiny["ckpt"], ["--chat_template", str(broken)],
         f"error: chat template file {broken}: not a valid Jinja template (line 1: unexpected end of template, "
         "expected 'end of print statement'.)"),
    ]
    for k, (model, extra, expected) in enumerate(cases):
        with pytest.raises(SystemExit) as info:
            _eval_main(kind, model, data, tmp_path / f"out{k}", *extra)
        assert info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines() == [expected]
        assert not (tmp_path / f"out{k}").exists()
    _eval_main(kind, bare, data, tmp_path / "plain", "--chat_template", "plain")  # the advice works
    assert (tmp_path / "plain" / "results.json").is_file()


def test_a_hub_ids_missing_chat_template_is_found_before_anything_is_written(tiny, tmp_path, monkeypatch):
    """A Hub id's tokenizer is fetched and checked in check_model (before claim_output writes fingerprint.json), as a
    local folder's is; one that cannot be fetched is left to the judge's load, which says why in full."""
    import rm_core.models
    from eval.runner import check_chat_template
    from rm_core.templates import TemplateError

    bare = _no_template_checkpoint(tiny, tmp_path / "bare")
    hub = {"org/bare": str(bare), "org/good": str(tiny["ckpt"])}

    def resolve(name):
        if name not in hub:
            raise OSError(f"{name}: not reachable")
        return hub[name]

    monkeypatch.setattr(rm_core.models, "resolve_model", resolve)
    for spec in ("org/bare", "llm:org/bare"):
        with pytest.raises(TemplateError, match="has no chat template: pass --chat_template"):
            check_chat_template(spec, None)
    check_chat_template("org/good", None)
    check_chat_template("org/unreachable", None)  # the load reports it
    check_chat_template("org/bare", "plain")  # an override needs no tokenizer template


def test_best_of_n_detects_the_format_from_the_first_row_it_recognises(tiny, tmp_path, capsys):
    """A first row that is not an object, or not a known format, is one skipped and counted row; a file where
    no row is recognisable is one line naming it."""
    good = [_bench_rows("best_of_n", i, f"q{i}") for i in range(2)]
    for first, reason in (([1, 2], "row is not a JSON object"),
                          ({"foo": 1}, "not a Steps or Candidates source row (keys: ['foo'])")):
        data = _write_jsonl(tmp_path / "first.jsonl", [first, *good])
        _eval_main("best_of_n", tiny["ckpt"], data, tmp_path / "out", "--overwrite")
        results = json.loads((tmp_path / "out" / "results.json").read_text())
        assert results["questions"] == 2
        assert results["skipped_rows"]["by_reason"] == {reason: 1}
        assert results["skipped_rows"]["examples"] == {reason: ["row 0"]}
    data = _write_jsonl(tmp_path / "none.jsonl", [{"foo": 1}, [3], {"bar": 2}])
    capsys.readouterr()  # the scored runs' progress
    with pytest.raises(SystemExit) as info:
        _eval_main("best_of_n", tiny["ckpt"], data, tmp_path / "out2")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {data}: no row is a Steps or Candidates source row (row 0 has keys ['foo']; see rm_core.data's "
        "STEPS_CONVERTERS / CANDIDATES_CONVERTERS for the formats read)"]


_TEARDOWN_SCRIPT = """
import atexit, sys, tempfile
import torch.distributed as dist
from rm_core.errors import UserInputError, cli_entry

dist.init_process_group("gloo", init_method="file://" + tempfile.mktemp(), rank=0, world_size=1)
atexit.register(lambda: print("at exit: group", "alive" if dist.is_initialized() else "ended", flush=True))
barrier = dist.monitored_barrier
dist.monitored_barrier = lambda **k: print("at exit: waiting for the other ranks", flush=True) or barrier(**k)

@cli_entry
def command(fail):
    if fail:
        raise UserInputError("bad input")
    dist.all_reduce(__import__("torch").ones(1))  # the group works inside a command

command(False)
command(False)  # a second command in the same process: the group is still there until the interpreter exits
print("between: group", "alive" if dist.is_initialized() else "ended", flush=True)
command(sys.argv[1] == "fail")
"""


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_a_command_ends_its_cpu_process_group_at_exit_only_after_success(tmp_path, outcome):
    """cli_entry: at the interpreter's exit a gloo group is destroyed (the teardown race of a two-process launch;
    a live group can make gloo abort the exit), after waiting for the other ranks only if the command returned: a
    failing rank exits at once, with its own status, instead of waiting for ranks that may never arrive."""
    script = tmp_path / "command.py"
    script.write_text(_TEARDOWN_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), outcome], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    lines = proc.stdout.splitlines()
    assert "between: group alive" in lines, proc.stdout + proc.stderr
    waited = "at exit: waiting for the other ranks" in lines
    assert lines[-1] == "at exit: group ended", proc.stdout + proc.stderr
    if outcome == "ok":
        assert proc.returncode == 0 and waited, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 2 and not waited, proc.stdout + proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "error: bad input"
