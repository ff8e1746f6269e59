"""Decision-tree RM: collection in both orders with resume, fitting by CV, JSON tree, judge, eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from judges.base import Judge, register_judge, split_conversation


@register_judge("test_rule_attributes")
class RuleAttributes(Judge):
    """Attribute scores by fixed rules (for tests): 'polite' counts "please", 'numeric' counts digits."""

    pointwise = True

    def __init__(self):
        super().__init__()
        self.calls = 0

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        return cls()

    def attribute_scores(self, conversations):
        self.calls += len(conversations)
        out = []
        for conv in conversations:
            text = split_conversation(conv)[1]
            out.append({"polite": float(text.lower().count("please")), "numeric": float(sum(c.isdigit() for c in text))})
        return out

    def _score(self, conversations, references):
        return [a["polite"] + a["numeric"] for a in self.attribute_scores(conversations)]


def rule_pairs(n: int, seed: int = 0) -> list[dict]:
    """The preferred reply is the more polite one; the number of digits is noise, length too."""
    rng = np.random.default_rng(seed)
    prefs = []
    for i in range(n):
        polite = " ".join(["please"] * int(rng.integers(1, 4)))
        digits = " ".join(str(d) for d in rng.integers(0, 9, size=int(rng.integers(0, 5))))
        filler = " ".join(["word"] * int(rng.integers(0, 20)))
        chosen = f"{polite} answer {digits} {filler}"
        rejected = f"answer {' '.join(str(d) for d in rng.integers(0, 9, size=int(rng.integers(0, 5))))} " \
                   f"{' '.join(['word'] * int(rng.integers(0, 20)))}"
        prefs.append({"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": [{"role": "assistant", "content": chosen}],
                      "rejected": [{"role": "assistant", "content": rejected}], "id": f"p{i}", "subset": "rules"})
    return prefs


@pytest.fixture()
def rule_model(tmp_path):
    folder = tmp_path / "rules-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"rm_family": "test_rule_attributes"}))
    return folder


class Flaky(Judge):
    """A pairwise judge that prefers the first shown reply half the time and fails on pair ids ending in 3."""

    pointwise = False
    error = "timeout"

    def fails(self, question: str) -> bool:
        return question.endswith("3")

    def judge_pairs(self, items):
        from judges.base import PairVerdict

        out = []
        for prompt, a, b in items:
            if self.fails(prompt[-1]["content"]):
                out.append(PairVerdict(None, None, error=self.error))
            else:
                polite = a.count("please") > b.count("please")
                out.append(PairVerdict(1.0 if polite else 0.0, 1.0 if polite else 0.0))
        return out

    def _compare(self, items):
        return [v.p for v in self.judge_pairs(items)]


def test_a_pair_parting_before_the_last_reply_shows_the_shared_prompt_and_each_side_whole():
    from decision_tree.collect_preferences import present
    from rm_core.data import from_hh

    pref = from_hh({"id": "m", "chosen": "\n\nHuman: q\n\nAssistant: a1\n\nHuman: more?\n\nAssistant: yes",
                    "rejected": "\n\nHuman: q\n\nAssistant: b1\n\nHuman: more?\n\nAssistant: no"})
    (shown,) = present([pref])
    assert shown["prompt"] == [{"role": "user", "content": "q"}]  # not the chosen side's a1 above both replies
    chosen = shown["a"] if shown["a_is_chosen"] else shown["b"]
    rejected = shown["b"] if shown["a_is_chosen"] else shown["a"]
    assert chosen == "Assistant: a1\n\nUser: more?\n\nAssistant: yes"
    assert rejected == "Assistant: b1\n\nUser: more?\n\nAssistant: no"


def test_collect_labels_both_orders_counts_failures_and_resumes(tmp_path):
    from decision_tree.collect_preferences import collect, present, read_jsonl

    pairs = present(rule_pairs(20))
    assert 0 < sum(p["a_is_chosen"] for p in pairs) < 20  # the side shown first is mixed
    report = collect({"human": "human", "flaky": Flaky()}, pairs[:10], tmp_path, chunk=4)
    assert report["flaky"]["failed"] == 1 and report["flaky"]["accuracy_vs_human"] == 0.9  # p3 failed: not guessed
    assert report["flaky"]["order_consistency"] == 1.0 and report["flaky"]["agreement"]["human"] == 1.0
    with pytest.raises(ValueError, match="other pairs"):
        collect({"human": "human"}, pairs, tmp_path)
    # a killed run: drop the last lines (one cut in half), rerun, nothing is labelled twice
    lines = (tmp_path / "labels.jsonl").read_text().splitlines()
    (tmp_path / "labels.jsonl").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:10])
    collect({"human": "human", "flaky": Flaky()}, pairs[:10], tmp_path, chunk=4)
    rows = read_jsonl(tmp_path / "labels.jsonl")
    keys = [(r["pair"], r["judge"]) for r in rows if "judge" in r]
    assert len(set(keys)) == 20


class Endpoint(Flaky):
    """A pairwise judge behind an 'endpoint': every pair fails while `down`, pairs whose prompt ends with a
    digit in `fails_on` always fail; records the prompts it is asked about."""

    error = "connection refused"

    def __init__(self, down: bool = False, fails_on: str = ""):
        super().__init__()
        self.down, self.fails_on, self.asked = down, fails_on, []

    def fails(self, question: str) -> bool:
        self.asked.append(question)
        return self.down or question[-1] in self.fails_on


def test_a_rerun_asks_again_exactly_the_stored_failures(tmp_path):
    from decision_tree.collect_preferences import collect, present, read_jsonl
    from decision_tree.fit_tree import judge_labels

    pairs = present(rule_pairs(16))
    down = Endpoint(down=True)
    report = collect({"human": "human", "api": down}, pairs, tmp_path, chunk=5)
    assert report["api"] == {**report["api"], "labelled": 16, "failed": 16} and len(down.asked) == 16
    flaky = Endpoint(fails_on="37")  # back up, but q3, q7 and q13 fail again
    report = collect({"human": "human", "api": flaky}, pairs, tmp_path, chunk=5)
    assert sorted(flaky.asked) == sorted(f"q{i}" for i in range(16))  # all 16 stored failures asked again
    assert report["api"]["labelled"] == 16 and report["api"]["failed"] == 3  # each pair counted once, latest verdict
    up = Endpoint()
    report = collect({"human": "human", "api": up}, pairs, tmp_path, chunk=5)
    assert sorted(up.asked) == ["q13", "q3", "q7"]  # only the failed ones; answered pairs are not asked again
    assert report["api"]["labelled"] == 16 and report["api"]["failed"] == 0
    assert report["api"]["accuracy_vs_human"] == 1.0
    assert report == json.loads((tmp_path / "report.json").read_text())
    rows = read_jsonl(tmp_path / "labels.jsonl")  # append-only: 16 human + 16 + 16 + 3 api lines
    assert len(rows) == 16 + 16 + 16 + 3 and sum(r["judge"] == "human" for r in rows) == 16
    kept, y, left_out = judge_labels(tmp_path, "api")  # fit_tree reads the latest line per pair too
    assert len(kept) == 16 and left_out == {"missing": 0, "failed": 0, "tie": 0}
    assert list(y) == [int(p["a_is_chosen"]) for p in kept]
    again = Endpoint()
    collect({"human": "human", "api": again}, pairs, tmp_path)
    assert again.asked == []  # nothing left to ask


def _cli(tmp_path, monkeypatch, judge, *extra):
    """collect_preferences through its command-line entry, `judge` as api=openai:fake-model; the exit code."""
    import decision_tree.collect_preferences as cp
    from rm_core.errors import run_cli

    source = tmp_path / "prefs.jsonl"
    if not source.is_file():
        source.write_text("".join(json.dumps(p) + "\n" for p in rule_pairs(16)))
    monkeypatch.setattr(cp, "load_judges", lambda specs, **kw: {"human": "human", "api": judge})
    argv = ["--pairs", str(source), "--judge", "human", "--judge", "api=openai:fake-model",
            "--output_dir", str(tmp_path / "out"), *extra]
    try:
        run_cli(cp.main, argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code


def test_a_run_with_too_many_failures_exits_non_zero_after_writing_its_rows(tmp_path, monkeypatch, capsys):
    from decision_tree.collect_preferences import read_jsonl

    assert _cli(tmp_path, monkeypatch, Endpoint(down=True)) == 3  # the endpoint was down
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: api: 16 of 16 pairs failed (100.0%)")
    assert "--max_failed_share 0.05" in err[0]
    rows = read_jsonl(tmp_path / "out" / "labels.jsonl")
    assert sum(r["judge"] == "api" and r["error"] == "connection refused" for r in rows) == 16
    assert json.loads((tmp_path / "out" / "report.json").read_text())["api"]["failed"] == 16
    up = Endpoint()
    assert _cli(tmp_path, monkeypatch, up) == 0  # the same command once the endpoint is back
    assert len(up.asked) == 16 and capsys.readouterr().err == ""
    assert json.loads((tmp_path / "out" / "report.json").read_text())["api"]["failed"] == 0


def test_max_failed_share_works_both_ways_and_retries_can_be_turned_off(tmp_path, monkeypatch, capsys):
    two_fail = Endpoint(fails_on="3")  # q3 and q13: 2 of 16 = 12.5%
    assert _cli(tmp_path, monkeypatch, two_fail, "--max_failed_share", "0.2") == 0
    assert capsys.readouterr().err == ""
    again = Endpoint(fails_on="3")
    assert _cli(tmp_path, monkeypatch, again) == 3  # default 0.05: still 2 failed after asking them again
    assert sorted(again.asked) == ["q13", "q3"]
    assert "2 of 16 pairs failed (12.5%)" in capsys.readouterr().err
    kept = Endpoint()
    assert _cli(tmp_path, monkeypatch, kept, "--no_retry_failed", "--max_failed_share", "0.125") == 0
    assert kept.asked == []  # stored failures kept as they are; 12.5% is not more than 0.125
    assert _cli(tmp_path, monkeypatch, Endpoint(), "--max_failed_share", "1.5") == 2  # not a share
    assert "--max_failed_share" in capsys.readouterr().err


def test_pointwise_judges_are_asked_once_and_are_order_consistent(tmp_path, rule_model):
    import judges
    from decision_tree.collect_preferences import collect, present

    judge = judges.load(str(rule_model))
    report = collect({"rules": judge}, present(rule_pairs(6)), tmp_path)
    assert judge.calls == 12  # a pointwise judge scores each response once, not once per order
    assert report["rules"]["order_consistency"] == 1.0


def test_tree_recovers_the_rule_saves_as_json_and_judges_symmetrically(tmp_path, rule_model):
    import judges
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present
    from decision_tree.judge import DecisionTreeJudge

    collect({"human": "human"}, present(rule_pairs(300)), tmp_path / "train")
    collect({"human": "human"}, present(rule_pairs(100, seed=1)), tmp_path / "test")
    info = fit_tree.main(["--preferences", str(tmp_path / "train"), "--judge", "human", "--attribute_model",
                          str(rule_model), "--output_dir", str(tmp_path / "tree"), "--test_preferences",
                          str(tmp_path / "test"), "--depths", "1", "2", "3", "--min_leafs", "1", "10", "--folds", "3"])
    assert info["cv_accuracy_by_depth"][1] == 1.0  # one split on polite_diff explains everything
    test = info["test"][str(tmp_path / "test")]
    assert test["by_depth"][1]["accuracy_vs_human"] == 1.0 and test["accuracy_vs_human"] == 1.0
    out = tmp_path / "tree"
    tree = json.loads((out / "tree.json").read_text())
    assert tree["nodes"][0]["feature"] == "polite_diff" and "pickle" not in (out / "tree.json").read_text()
    assert (out / "rules.txt").read_text().startswith("|--- polite_diff")
    assert (out / "tree.png").stat().st_size > 1000
    judge = judges.load(str(out))
    assert isinstance(judge, DecisionTreeJudge)
    prompt = [{"role": "user", "content": "q"}]
    p = judge.compare(prompt, "please help 1 2 3", "help 1")
    assert p > 0.9 and abs(judge.compare(prompt, "help 1", "please help 1 2 3") - (1 - p)) < 1e-12
    explained = judge.explain(prompt, "please help 1 2 3", "help 1")
    assert explained["attributes_a"] == {"polite": 1.0, "numeric": 3.0}
    assert explained["path"][0]["feature"] == "polite_diff" and explained["path"][0]["value"] == 1.0
    assert explained["path"][-1]["p_a"] > 0.9 and explained["features"]["length_diff_words"] == 3
    # a response of several turns is featurised as the collector showed it at fitting: one labelled text, every
    # turn's words counted (the judge counted the last message's alone, and gave the model real turns)
    from judges.base import response_text

    turns = [{"role": "assistant", "content": "please"}, {"role": "user", "content": "and 1 2?"},
             {"role": "assistant", "content": "help 1 2"}]
    X_turns, _, _ = judge.features([(prompt, turns, "help 1")])
    X_text, _, _ = judge.features([(prompt, response_text(turns), "help 1")])
    one = [{"role": "assistant", "content": "help 1 2"}]  # one message: its text, as fitting saw it
    assert np.array_equal(judge.features([(prompt, one, "help 1")])[0], judge.features([(prompt, "help 1 2", "help 1")])[0])
    assert np.array_equal(X_turns, X_text) and dict(zip(judge.tree.feature_names, X_turns[0]))[
        "length_diff_words"] == 10 - 2  # "Assistant: please  User: and 1 2?  Assistant: help 1 2"


def test_held_out_labels_must_come_from_the_same_judge(tmp_path):
    """Labels are matched across folders by judge name: "gpt" as two models would make agreement_with_judge a
    comparison with another model's verdicts. The dtype a local judge ran in is not its identity."""
    from decision_tree.fit_tree import check_same_judge
    from rm_core.errors import UserInputError

    def folder(name, gpt):
        (tmp_path / name).mkdir()
        (tmp_path / name / "fingerprint.json").write_text(json.dumps({"judges": {"gpt": gpt, "rm": {"sha": "1"}}}))
        return tmp_path / name

    train = folder("train", {"api": "openai", "model": "gpt-4o-mini", "dtype": "float32"})
    same = folder("same", {"api": "openai", "model": "gpt-4o-mini", "dtype": "bfloat16"})
    other = folder("other", {"api": "openai", "model": "gpt-4o"})
    check_same_judge(train, same, "gpt")
    check_same_judge(train, other, "rm")  # the same "rm" in both
    check_same_judge(train, tmp_path, "gpt")  # a folder recording no judges: nothing to compare
    with pytest.raises(UserInputError, match=r"judge 'gpt' is not the same judge in .*differs in model"):
        check_same_judge(train, other, "gpt")


def test_tree_json_predicts_exactly_like_sklearn():
    from sklearn.tree import DecisionTreeClassifier

    from decision_tree.judge import TreeData, tree_to_json

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3).astype(int)
    model = DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=0).fit(X, y)
    data = TreeData(json.loads(json.dumps(tree_to_json(model, ["x0", "x1", "x2"]))))
    Xt = rng.normal(size=(200, 3))
    np.testing.assert_allclose(data.predict(Xt), model.predict_proba(Xt)[:, 1], atol=1e-12)
    with pytest.raises(ValueError, match="not a decision-tree-rm-v1"):
        TreeData({"nodes": []})


def test_tree_over_a_real_armo_checkpoint_runs_through_eval_reward_bench(tmp_path, tiny_armo):
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present
    from eval.reward_bench import evaluate, make_parser
    from rm_core.data import to_preferences

    cfg, _, _, prefs = tiny_armo
    rows, _ = to_preferences(prefs)
    collect({"human": "human"}, present(rows[:40]), tmp_path / "prefs")
    info = fit_tree.main(["--preferences", str(tmp_path / "prefs"), "--judge", "human", "--attribute_model",
                          cfg.output_dir, "--output_dir", str(tmp_path / "tree"), "--depths", "1", "2",
                          "--min_leafs", "1", "5", "--folds", "2"])
    assert info["cv_accuracy_by_depth"][1] > 0.8  # ArmoRM's "helpful" head separates the tiny set
    config = json.loads((tmp_path / "tree" / "config.json").read_text())
    assert config["attributes"] == ["helpful", "safe", "verbosity"] and config["rm_family"] == "decision_tree"
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps({"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                                        "subset": "llmbar-natural", "id": str(i)}) + "\n"
                            for i, p in enumerate(prefs[40:48])))
    summary = evaluate(make_parser().parse_args(["--model", str(tmp_path / "tree"), "--dataset", str(data),
                                                 "--output_dir", str(tmp_path / "res"), "--max_length", "64"]))
    assert summary["pairs"] == 8 and summary["failed_pairs"] == 0
    assert summary["subsets"]["llmbar-natural"]["accuracy"] >= 0.75


def test_bad_judge_spec_is_a_clear_error():
    from decision_tree.collect_preferences import load_judges
    from rm_core.errors import UserInputError

    with pytest.raises(UserInputError, match="NAME=SPEC"):
        load_judges(["outputs/some-rm"])


def _collect_cli(argv: list[str], capsys) -> tuple[int, str]:
    """rm-collect-preferences on argv: (exit code, its stderr's last line)."""
    from decision_tree import collect_preferences
    from rm_core.errors import run_cli

    try:
        run_cli(collect_preferences.main, argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_collect_refuses_a_bad_judge_spec_before_the_data_and_a_folder_of_other_pairs(tmp_path, capsys):
    """`--judge bt` (no NAME=SPEC) is one line before the data is read (the data set here does not even exist);
    rerunning into a folder that holds other pairs is one line too, not a traceback."""
    missing = str(tmp_path / "nope.jsonl")
    assert _collect_cli(["--pairs", missing, "--judge", "bt", "--output_dir", str(tmp_path / "o")], capsys) == (
        2, "error: --judge 'bt': expected NAME=SPEC (e.g. bt=outputs/bt-rm) or 'human'")
    first = _write(tmp_path / "a.jsonl", rule_pairs(4))
    other = _write(tmp_path / "b.jsonl", rule_pairs(5))
    out = tmp_path / "out"
    assert _collect_cli(["--pairs", first, "--judge", "human", "--output_dir", str(out)], capsys)[0] == 0
    assert _collect_cli(["--pairs", other, "--judge", "human", "--output_dir", str(out)], capsys) == (
        2, f"error: {out / 'pairs.jsonl'} holds other pairs: use another output_dir (or --overwrite)")


def test_pair_ids_are_unique_within_and_across_sources(tmp_path, capsys):
    """Labels are keyed by pair id. One source keeps its ids (a row without one: its row index); with several,
    an id a row does not give itself gets its source's position; a repeated id in a file, an id two files give
    and a file given twice are one line each; fit_tree refuses a folder whose pairs repeat an id."""
    from decision_tree.collect_preferences import read_jsonl
    from decision_tree.fit_tree import judge_labels
    from rm_core.errors import UserInputError

    def no_ids(rows):
        return [{k: v for k, v in r.items() if k != "id"} for r in rows]

    a = _write(tmp_path / "a.jsonl", no_ids(rule_pairs(3)))
    b = _write(tmp_path / "b.jsonl", no_ids(rule_pairs(2, seed=1)) + [rule_pairs(1)[0] | {"id": "mine"}])
    one, two = tmp_path / "one", tmp_path / "two"
    assert _collect_cli(["--pairs", a, "--judge", "human", "--output_dir", str(one)], capsys)[0] == 0
    assert [p["id"] for p in read_jsonl(one / "pairs.jsonl")] == ["0", "1", "2"]  # as before: outputs stay valid
    assert _collect_cli(["--pairs", a, b, "--judge", "human", "--output_dir", str(two)], capsys)[0] == 0
    assert [p["id"] for p in read_jsonl(two / "pairs.jsonl")] == ["0:0", "0:1", "0:2", "1:0", "1:1", "mine"]
    kept, _, _ = judge_labels(two, "human")
    assert len(kept) == 6

    dup = _write(tmp_path / "dup.jsonl", [r | {"id": "same"} for r in rule_pairs(3)])
    assert _collect_cli(["--pairs", dup, "--judge", "human", "--output_dir", str(tmp_path / "d")], capsys) == (
        2, f"error: {dup}: id 'same' is in row 0 and row 1; item ids must be unique (scores are stored and resumed "
           "by id)")
    c = _write(tmp_path / "c.jsonl", [rule_pairs(3, seed=2)[2] | {"id": "mine"}])
    assert _collect_cli(["--pairs", b, c, "--judge", "human", "--output_dir", str(tmp_path / "e")], capsys) == (
        2, f"error: id 'mine' is in {b} row 2 and in {c} row 0; pair ids must be unique across the --pairs "
           "sources (labels are stored by id)")
    assert _collect_cli(["--pairs", a, f"{a}[2]", "--judge", "human", "--output_dir", str(tmp_path / "f")],
                        capsys) == (2, f"error: --pairs {a} is given twice ('{a}' and '{a}[2]'): give each source "
                                       "once (its pairs would be labelled twice)")
    assert not any((tmp_path / d).exists() for d in "def")

    old = tmp_path / "old"  # a folder collected before ids were checked: two pairs under one id
    old.mkdir()
    pairs = [{"id": "0", "prompt": [], "a": "x", "b": "y", "a_is_chosen": True, "subset": ""}] * 2
    _write(old / "pairs.jsonl", pairs)
    _write(old / "labels.jsonl", [{"pair": "0", "judge": "human", "p_forward": 1.0, "p_backward": 1.0,
                                   "error": None}])
    with pytest.raises(UserInputError) as err:
        judge_labels(old, "human")
    assert str(err.value) == (f"{old / 'pairs.jsonl'}: id '0' is in row 0 and row 1; item ids must be unique "
                              "(scores are stored and resumed by id)")


def test_collect_stores_the_skipped_rows_in_its_report(tmp_path, capsys):
    """The "[data] ... rows skipped" line's count is stored in report.json, by reason and per source."""
    rows = rule_pairs(4)
    rows[1]["chosen"] = rows[1]["rejected"]
    rows[2]["chosen"] = [{"role": "assistant", "content": " "}]
    src = _write(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out"
    assert _collect_cli(["--pairs", src, "--judge", "human", "--output_dir", str(out)], capsys)[0] == 0
    data = json.loads((out / "report.json").read_text())["data"]
    assert data == {"sources": [{"source": src, "file": src, "rows": 4, "pairs": 2, "skipped": {
        "skipped": 2, "by_reason": {"chosen and rejected are identical": 1, "chosen is an empty response": 1},
        "examples": {"chosen and rejected are identical": ["row 1 (id p1)"],
                     "chosen is an empty response": ["row 2 (id p2)"]}}}], "pairs": 2, "skipped": 2}
    assert json.loads((out / "report.json").read_text())["human"]["labelled"] == 2


def test_checkpoint_loads_its_attribute_model_only_from_inside_or_when_confirmed(tmp_path, rule_model):
    """fit_tree copies a local attribute model into the checkpoint (which then stands alone); a config naming an
    outside path is refused, a Hub id needs the user's confirmation, an explicit attribute_model is used."""
    import shutil

    import judges
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present
    from decision_tree.judge import resolve_attribute_model

    (rule_model / "model.safetensors").write_bytes(b"stand-in weights")  # the rule model needs none; a file to check
    collect({"human": "human"}, present(rule_pairs(60)), tmp_path / "train")
    fit_tree.main(["--preferences", str(tmp_path / "train"), "--judge", "human", "--attribute_model", str(rule_model),
                   "--output_dir", str(tmp_path / "tree"), "--depths", "1", "--min_leafs", "1", "--folds", "2"])
    config_path = tmp_path / "tree" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["attribute_model"] == "attribute_model"
    assert (tmp_path / "tree" / "attribute_model" / "config.json").is_file()
    weights = tmp_path / "tree" / "attribute_model" / "model.safetensors"
    before = weights.read_bytes()
    with open(rule_model / "model.safetensors", "r+b") as f:  # the source retrained in place
        f.write(b"\0" * 8)
    assert weights.read_bytes() == before  # a copy, not a link: the tree's attribute model did not change
    shutil.rmtree(rule_model)  # the checkpoint no longer depends on where its attribute model came from
    prompt = [{"role": "user", "content": "q"}]
    assert judges.load(str(tmp_path / "tree")).compare(prompt, "please help", "help") > 0.9

    # config.json holds the content of the tree and of the bundled attribute model: files that do not match it
    # (a save cut by a kill, a file changed since) are refused, never used with the other's thresholds
    tree_json = tmp_path / "tree" / "tree.json"
    saved_tree = tree_json.read_text()
    tree_json.write_text(saved_tree.replace("0.", "0.0", 1))
    with pytest.raises(ValueError, match=r"tree.json is not the tree .*config.json was saved with"):
        judges.load(str(tmp_path / "tree"))
    tree_json.write_text(saved_tree)
    weights.write_bytes(before[:-1] + bytes([before[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"attribute_model is not the attribute model the tree was fitted on"):
        judges.load(str(tmp_path / "tree"))
    weights.write_bytes(before)

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "tree" / "attribute_model", elsewhere)
    for stored in (str(elsewhere), "../elsewhere"):
        config["attribute_model"] = stored
        config_path.write_text(json.dumps(config))
        with pytest.raises(ValueError, match="a path outside it.*--attribute_model"):
            judges.load(str(tmp_path / "tree"))
    # the user's own choice is taken as given
    assert judges.load(str(tmp_path / "tree"), attribute_model=str(elsewhere)).compare(prompt, "please a", "a") > 0.9
    # and from the command line
    from eval.reward_bench import evaluate, make_parser

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "0", "subset": "mine", "prompt": "q", "chosen": "please help",
                                "rejected": "help"}) + "\n")
    argv = ["--model", str(tmp_path / "tree"), "--dataset", str(rows), "--output_dir", str(tmp_path / "res")]
    with pytest.raises(ValueError, match="--attribute_model"):
        evaluate(make_parser().parse_args(argv))
    summary = evaluate(make_parser().parse_args([*argv, "--overwrite", "--attribute_model", str(elsewhere)]))
    assert summary["pairs"] == 1 and summary["subsets"]["mine"]["accuracy"] == 1.0

    with pytest.raises(ValueError, match="a Hub id.*confirm"):
        resolve_attribute_model(tmp_path / "tree", "someone/armo-rm")
    assert resolve_attribute_model(tmp_path / "tree", "someone/armo-rm", trusted=True) == "someone/armo-rm"


@register_judge("test_nan_attributes")
class NanAttributes(RuleAttributes):
    """RuleAttributes, but every attribute of a reply holding "poison" is NaN (a diverged attribute model)."""

    def attribute_scores(self, conversations):
        out = super().attribute_scores(conversations)
        for conv, attrs in zip(conversations, out):
            if "poison" in split_conversation(conv)[1]:
                attrs.update({k: float("nan") for k in attrs})
        return out


def _one_split_tree() -> dict:
    """polite_diff <= 0.5: b better (p_a 0.1); else a better (p_a 0.9)."""
    names = ["polite_diff", "numeric_diff", "length_diff_words"]
    return {"format": "decision-tree-rm-v1", "feature_names": names, "depth": 1, "leaves": 2, "nodes": [
        {"id": 0, "leaf": False, "feature": "polite_diff", "threshold": 0.5, "left": 1, "right": 2, "samples": 20,
         "p_a": 0.5},
        {"id": 1, "leaf": True, "feature": None, "threshold": None, "left": None, "right": None, "samples": 10,
         "p_a": 0.1},
        {"id": 2, "leaf": True, "feature": None, "threshold": None, "left": None, "right": None, "samples": 10,
         "p_a": 0.9}]}


def test_a_nan_attribute_score_is_a_counted_failure_not_a_leaf():
    from decision_tree.judge import DecisionTreeJudge, TreeData

    judge = DecisionTreeJudge(TreeData(_one_split_tree()), NanAttributes(), ["polite", "numeric"])
    prompt = [{"role": "user", "content": "q"}]
    verdicts = judge.judge_pairs([(prompt, "please help", "help"), (prompt, "please poison", "help")])
    assert verdicts[0].p == pytest.approx(0.9)
    assert verdicts[1].p_forward is None and verdicts[1].p_backward is None and verdicts[1].p is None
    assert judge.failures.counts == {"non-finite score": 1}
    assert judge.compare_batch([(prompt, "help", "poison")]) == [None]  # not 0.1 + NaN's walk to a leaf
    assert judge.rank(prompt, ["please", "poison"]) == [None, None] and judge.failures.total == 3


def test_fitting_on_nan_attribute_scores_stops_before_a_tree_is_saved(tmp_path):
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present
    from rm_core.finite import TrainingDivergedError

    folder = tmp_path / "nan-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"rm_family": "test_nan_attributes"}))
    prefs = rule_pairs(30)
    prefs[3]["chosen"][-1]["content"] += " poison"
    collect({"human": "human"}, present(prefs), tmp_path / "train")
    with pytest.raises(TrainingDivergedError, match=r"attribute model .* non-finite scores: .* 30 training pairs: 2 of 90 values"):
        fit_tree.main(["--preferences", str(tmp_path / "train"), "--judge", "human", "--attribute_model",
                       str(folder), "--output_dir", str(tmp_path / "tree"), "--depths", "1", "--min_leafs", "1",
                       "--folds", "2"])
    assert not (tmp_path / "tree" / "tree.json").exists()


def test_fit_tree_and_prepare_pair_pm_name_an_output_dir_that_is_a_file(tmp_path):
    from decision_tree import fit_tree
    from pair_pm import prepare_data
    from rm_core.errors import UserInputError

    a_file = tmp_path / "out"
    a_file.write_text("x")
    with pytest.raises(UserInputError, match=f"--output_dir {a_file} is a file"):
        fit_tree.main(["--preferences", str(tmp_path), "--judge", "human", "--attribute_model", str(tmp_path),
                       "--output_dir", str(a_file)])
    with pytest.raises(UserInputError, match=f"--output_dir {a_file} is a file"):
        prepare_data.main(["--model_name_or_path", str(tmp_path), "--dataset_name", str(tmp_path),
                           "--output_dir", str(a_file)])
