"""Resumable outputs know whose they are, and a cut last line never blocks a resume (rm_core/resume.py): the eval
runner's output_dir, the embedding cache, the preference collector's folder and the solution sampler's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from judges.base import Judge
from rm_core.resume import ResumeError

torch.set_num_threads(1)  # 2 shared cores

CUT = '{"id": "cut-by-a-kill", "sco\n'  # a torn write: not JSON, even with its newline


def strict_rows(path: Path) -> list[dict]:
    """Every line of the file must be a JSON object: a resume appended cleanly."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- the shared reader


def test_store_reader_drops_and_cuts_a_torn_last_line_and_names_a_bad_middle_line(tmp_path):
    from rm_core.resume import read_jsonl_store

    store = tmp_path / "s.jsonl"
    for tail in ('{"id": 3, "x"', '{"id": 3}', CUT, 'garbage\n\n'):  # cut, no newline, torn with newline, blanks
        store.write_text('{"id": 1}\n{"id": 2}\n' + tail)
        assert read_jsonl_store(store, repair=False) == [{"id": 1}, {"id": 2}]
        assert store.read_text().endswith(tail)  # a reader leaves the file alone
        assert read_jsonl_store(store) == [{"id": 1}, {"id": 2}]
        assert store.read_text() == '{"id": 1}\n{"id": 2}\n'  # the writer cuts it off
    store.write_text('{"id": 1}\n{"id": 2, "x\n{"id": 3}\n')
    with pytest.raises(ResumeError, match=r"s\.jsonl line 2 is not valid JSON"):
        read_jsonl_store(store)


# ---------------------------------------------------------------- eval runner


@pytest.fixture(scope="module")
def evalsetup(tmp_path_factory):
    from rm_core.testing import save_tiny_reward_model

    root = tmp_path_factory.mktemp("resume-eval")
    for name, seed in (("a", 7), ("b", 8)):
        save_tiny_reward_model(root / name, seed)
    rows = [{"id": f"r{i}", "subset": "mine", "prompt": f"question {i}?", "chosen": f"Sure, answer {i}.",
             "rejected": "no"} for i in range(10)]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


class Killed(Exception):
    pass


def evaluate(setup: Path, model: str, out: Path, *extra, die_after: int | None = None, monkeypatch=None):
    """eval_reward_bench in chunks of 4 pairs; `die_after` chunks, the run is killed."""
    from eval import reward_bench

    if monkeypatch is not None:
        monkeypatch.setattr(reward_bench, "CHUNK_PAIRS", 4)
        real, calls = getattr(reward_bench._score_chunk, "real", reward_bench._score_chunk), []

        def scorer(judge, chunk):
            if die_after is not None and len(calls) == die_after:
                raise Killed
            calls.append(len(chunk))
            return real(judge, chunk)

        scorer.real = real
        monkeypatch.setattr(reward_bench, "_score_chunk", scorer)
    argv = ["--model", str(setup / model), "--dataset", str(setup / "rows.jsonl"), "--output_dir", str(out), *extra]
    if die_after is None:
        return reward_bench.evaluate(reward_bench.make_parser().parse_args(argv))
    with pytest.raises(Killed):
        reward_bench.evaluate(reward_bench.make_parser().parse_args(argv))


def scores(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in strict_rows(out / "scores.jsonl")}


def test_resume_into_another_models_output_dir_stops_naming_what_differs(evalsetup, tmp_path, monkeypatch):
    out = tmp_path / "out"
    evaluate(evalsetup, "a", out, die_after=1, monkeypatch=monkeypatch)  # 4 of model a's pairs were written
    assert len(strict_rows(out / "scores.partial.jsonl")) == 4
    with pytest.raises(ResumeError) as err:
        evaluate(evalsetup, "b", out, monkeypatch=monkeypatch)
    message = str(err.value)
    assert "\n" not in message and "model.sha256" in message and "--overwrite" in message
    assert "settings" not in message and "data" not in message  # only what differs is named
    with pytest.raises(ResumeError, match=r"settings\.max_length 2048 -> 64"):  # a setting that changes scores
        evaluate(evalsetup, "a", out, "--max_length", "64", monkeypatch=monkeypatch)
    assert len(strict_rows(out / "scores.partial.jsonl")) == 4  # a refused resume touches nothing
    # --overwrite starts afresh: every pair is model b's
    summary = evaluate(evalsetup, "b", out, "--overwrite", monkeypatch=monkeypatch)
    assert summary["speed"]["pairs_scored_now"] == 10
    fresh = evaluate(evalsetup, "b", tmp_path / "fresh")
    assert scores(out) == scores(tmp_path / "fresh")
    assert summary["fingerprint"] == fresh["fingerprint"]
    results = json.loads((out / "results.json").read_text())  # results.json says whose they are
    assert results["fingerprint"]["model"]["sha256"] == fresh["fingerprint"]["model"]["sha256"]
    assert results["fingerprint"]["model"]["sha256"] != evaluate(evalsetup, "a", tmp_path / "a")["fingerprint"][
        "model"]["sha256"]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "scores.jsonl"]


def test_finished_results_of_another_model_are_not_replaced_without_overwrite(evalsetup, tmp_path):
    out = tmp_path / "done"
    first = evaluate(evalsetup, "a", out)
    again = evaluate(evalsetup, "a", out)  # the same inputs: scored again into the folder
    assert again["fingerprint"] == first["fingerprint"]
    with pytest.raises(ResumeError, match="holds finished results of other inputs.*model.sha256.*--overwrite"):
        evaluate(evalsetup, "b", out)
    assert json.loads((out / "results.json").read_text())["fingerprint"] == first["fingerprint"]  # untouched
    results = json.loads((out / "results.json").read_text())
    del results["fingerprint"]
    (out / "results.json").write_text(json.dumps(results))  # as written before fingerprints
    with pytest.raises(ResumeError, match="finished results with no fingerprint"):
        evaluate(evalsetup, "a", out)
    assert evaluate(evalsetup, "b", out, "--overwrite")["fingerprint"]["model"] != first["fingerprint"]["model"]


@pytest.mark.parametrize("name", ["reward_bench", "reward_bench2", "rm_bench", "judgebench", "best_of_n"])
def test_every_eval_command_takes_overwrite(name):
    import importlib

    module = importlib.import_module(f"eval.{name}")
    assert module.make_parser().parse_args(["--model", "m", "--overwrite"]).overwrite is True


def test_a_partial_file_without_fingerprint_is_refused(evalsetup, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "scores.partial.jsonl").write_text('{"id": "r0", "subset": "mine", "chosen_score": 9.0}\n')
    with pytest.raises(ResumeError, match="no fingerprint"):
        evaluate(evalsetup, "a", out)


@pytest.mark.parametrize("damage", [b'{"benchmark": \n', b"\xff\xfe{}", b"[1, 2]"])
def test_a_corrupted_fingerprint_is_one_line_naming_it(evalsetup, tmp_path, monkeypatch, damage):
    """fingerprint.json cut short, not UTF-8 or not an object: a ResumeError naming the file (no JSONDecodeError
    traceback) that touches nothing; --overwrite starts fresh."""
    from rm_core.resume import check_or_write_fingerprint

    out = tmp_path / "out"
    evaluate(evalsetup, "a", out, die_after=1, monkeypatch=monkeypatch)
    (out / "fingerprint.json").write_bytes(damage)
    with pytest.raises(ResumeError) as err:
        evaluate(evalsetup, "a", out, monkeypatch=monkeypatch)
    message = str(err.value)
    assert message.startswith(f"{out}: its fingerprint {out / 'fingerprint.json'} is cut short or corrupted (")
    assert message.endswith("), so what built it is unknown: pass --overwrite to start fresh, or use another output")
    assert "\n" not in message and (out / "fingerprint.json").read_bytes() == damage
    assert len(strict_rows(out / "scores.partial.jsonl")) == 4  # the partial scores are kept
    assert evaluate(evalsetup, "a", out, "--overwrite", monkeypatch=monkeypatch)["speed"]["pairs_scored_now"] == 10
    store = tmp_path / "store.jsonl"
    fp = check_or_write_fingerprint(store, {"x": 1})
    fp.write_bytes(damage)
    with pytest.raises(ResumeError, match=rf"^embedding cache {store}: its fingerprint {fp} is cut short"):
        check_or_write_fingerprint(store, {"x": 1}, what="embedding cache")


def test_same_fingerprint_resumes_past_a_cut_line_and_appends_cleanly(evalsetup, tmp_path, monkeypatch):
    out = tmp_path / "out"
    evaluate(evalsetup, "a", out, die_after=1, monkeypatch=monkeypatch)
    with open(out / "scores.partial.jsonl", "a") as f:
        f.write(CUT)  # the kill tore the next write
    evaluate(evalsetup, "a", out, die_after=1, monkeypatch=monkeypatch)  # resumed, killed again after 4 more
    partial = strict_rows(out / "scores.partial.jsonl")  # the torn line went; the new rows start on a clean line
    assert [r["id"] for r in partial] == [f"r{i}" for i in range(8)]
    summary = evaluate(evalsetup, "a", out, monkeypatch=monkeypatch)
    assert summary["speed"]["pairs_scored_now"] == 2  # only the missing pairs
    evaluate(evalsetup, "a", tmp_path / "fresh")
    assert scores(out) == scores(tmp_path / "fresh")
    assert not (out / "scores.partial.jsonl").exists() and not (out / "fingerprint.json").exists()


def test_a_killed_bf16_run_resumes_to_the_unbroken_runs_scores_and_refuses_another_layout(evalsetup, tmp_path,
                                                                                           monkeypatch):
    """bf16: a resume with the same rows a forward starts at a chunk boundary, so every score is bit-identical to an
    unbroken run's; one with another --batch_size would mix two roundings and is refused, naming it."""
    out = tmp_path / "out"
    evaluate(evalsetup, "a", out, "--dtype", "bfloat16", "--batch_size", "2", die_after=1, monkeypatch=monkeypatch)
    with pytest.raises(ResumeError, match=r"settings\.numerics\.batch_size 2 -> 3"):
        evaluate(evalsetup, "a", out, "--dtype", "bfloat16", "--batch_size", "3", monkeypatch=monkeypatch)
    summary = evaluate(evalsetup, "a", out, "--dtype", "bfloat16", "--batch_size", "2", monkeypatch=monkeypatch)
    assert summary["speed"]["pairs_scored_now"] == 6 and summary["numerics"]["device"] == "cpu"
    evaluate(evalsetup, "a", tmp_path / "fresh", "--dtype", "bfloat16", "--batch_size", "2", monkeypatch=monkeypatch)
    assert scores(out) == scores(tmp_path / "fresh")
    # fp32: the layout is recorded, not fingerprinted (products agree to ~1e-6 whatever the rows)
    evaluate(evalsetup, "a", tmp_path / "fp32", "--dtype", "float32", "--batch_size", "2", die_after=1,
             monkeypatch=monkeypatch)
    assert evaluate(evalsetup, "a", tmp_path / "fp32", "--dtype", "float32", "--batch_size", "3",
                    monkeypatch=monkeypatch)["speed"]["pairs_scored_now"] == 6


def test_stored_failures_are_asked_again_when_a_killed_run_resumes(evalsetup, tmp_path, monkeypatch):
    """The endpoint was down for the first chunk (4 failed pairs stored), then the run was killed: the resume
    asks those 4 again with the 6 never asked, and the result has no failure left."""
    from eval import reward_bench

    out = tmp_path / "out"
    real = reward_bench._score_chunk
    monkeypatch.setattr(reward_bench, "CHUNK_PAIRS", 4)
    calls = []

    def down_then_killed(judge, chunk):
        if calls:
            raise Killed
        calls.append([p["id"] for p in chunk])
        return [{**row, "chosen_score": None, "rejected_score": None, "correct": False, "failed": True}
                for row in real(judge, chunk)]

    monkeypatch.setattr(reward_bench, "_score_chunk", down_then_killed)
    argv = ["--model", str(evalsetup / "a"), "--dataset", str(evalsetup / "rows.jsonl"), "--output_dir", str(out)]
    with pytest.raises(Killed):
        reward_bench.evaluate(reward_bench.make_parser().parse_args(argv))
    assert [r["failed"] for r in strict_rows(out / "scores.partial.jsonl")] == [True] * 4
    asked = []

    def working(judge, chunk):
        asked.extend(p["id"] for p in chunk)
        return real(judge, chunk)

    monkeypatch.setattr(reward_bench, "_score_chunk", working)
    summary = reward_bench.evaluate(reward_bench.make_parser().parse_args(argv))
    assert sorted(asked) == sorted(f"r{i}" for i in range(10)) and summary["speed"]["pairs_scored_now"] == 10
    assert summary["failed_pairs"] == 0
    evaluate(evalsetup, "a", tmp_path / "fresh")
    assert scores(out) == scores(tmp_path / "fresh")


def test_a_bad_line_inside_the_partial_file_is_an_error_naming_it(evalsetup, tmp_path, monkeypatch):
    out = tmp_path / "out"
    evaluate(evalsetup, "a", out, die_after=2, monkeypatch=monkeypatch)
    lines = (out / "scores.partial.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"
    (out / "scores.partial.jsonl").write_text("".join(lines))
    with pytest.raises(ResumeError, match=r"scores\.partial\.jsonl line 3 is not valid JSON"):
        evaluate(evalsetup, "a", out, monkeypatch=monkeypatch)


# ---------------------------------------------------------------- identity by content


def test_a_model_is_known_by_content_not_by_path_or_times(tmp_path, monkeypatch):
    import os
    import shutil

    from rm_core import resume
    from rm_core.testing import save_tiny_backbone

    monkeypatch.setenv("RM_CACHE", str(tmp_path / "cache"))
    path = save_tiny_backbone(tmp_path / "m", seed=0)
    first = resume.model_fingerprint(str(path))
    weights = path / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert resume.model_fingerprint(str(path))["sha256"] == first["sha256"]  # touched: the same model
    shutil.copytree(path, tmp_path / "moved")
    assert resume.model_fingerprint(str(tmp_path / "moved"))["sha256"] == first["sha256"]
    (path / "README.md").write_text("a card")  # the card does not change what scores, nor an eval's outputs
    (path / "eval").mkdir()
    (path / "eval" / "scores.partial.jsonl").write_text("{}\n")
    assert resume.model_fingerprint(str(path))["sha256"] == first["sha256"]
    (path / "attribute_model").mkdir()  # a model inside it (a decision tree's attribute model) is part of it
    (path / "attribute_model" / "config.json").write_text("{}")
    nested = resume.model_fingerprint(str(path))["sha256"]
    (path / "attribute_model" / "config.json").write_text('{"retrained": 1}')
    assert len({first["sha256"], nested, resume.model_fingerprint(str(path))["sha256"]}) == 3
    shutil.rmtree(path / "attribute_model")
    size = weights.stat().st_size
    save_tiny_backbone(path, seed=1)  # retrained in place: same files, same sizes, other bytes
    assert weights.stat().st_size == size and resume.model_fingerprint(str(path))["sha256"] != first["sha256"]
    # a file unchanged since it was hashed (and older than the racy window) is not read again
    monkeypatch.setattr(resume, "RACY_SECONDS", -1.0)
    digest = resume.files_sha256([weights])[0]

    def no_read(*args, **kwargs):
        raise AssertionError("read again")

    monkeypatch.setattr(resume.hashlib, "file_digest", no_read)
    assert resume.files_sha256([weights]) == [digest]


def test_a_hub_id_is_known_by_its_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from rm_core.resume import data_fingerprint, model_fingerprint

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = tmp_path / "datasets--org--set" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("a" * 40)
    assert data_fingerprint("org/set") == {"hub": "org/set", "revision": "main", "commit": "a" * 40}
    assert model_fingerprint("org/not-cached")["commit"] is None  # offline and not cached: unknown, not guessed


# ---------------------------------------------------------------- embedding cache


def test_embedding_cache_of_a_backbone_retrained_in_place_is_not_reused(tmp_path):
    from rm_core.embeddings import extract_embeddings, forward_items, load_backbone, render_item
    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "backbone", seed=0)
    items = [([{"role": "user", "content": f"question {i}"}], f"answer {i}") for i in range(3)]
    model, tok = load_backbone(str(path), "float32", "cpu")
    cache = tmp_path / "cache"
    first = extract_embeddings(model, tok, items, cache, str(path), max_length=64)
    assert first["stats"]["computed"] == 3
    save_tiny_backbone(path, seed=1)  # retrained in place: same path, same name
    model, tok = load_backbone(str(path), "float32", "cpu")
    with pytest.raises(ResumeError, match=r"embedding cache .* \(model\.weights_sha256 \w+ -> \w+\)"):
        extract_embeddings(model, tok, items, cache, str(path), max_length=64)
    again = extract_embeddings(model, tok, items, cache, str(path), max_length=64, overwrite=True)
    assert again["stats"]["computed"] == 3 and again["stats"]["cached"] == 0
    expected, _ = forward_items(model, [render_item(tok, p, r, 64) for p, r in items], tok.pad_token_id)
    torch.testing.assert_close(again["embeddings"], expected)
    assert not torch.allclose(again["embeddings"], first["embeddings"])
    resumed = extract_embeddings(model, tok, items, cache, "another/name", max_length=64)  # same weights
    assert resumed["stats"]["cached"] == 3


# ---------------------------------------------------------------- preference collector


class Polite(Judge):
    """A pairwise judge: the reply with more "please" wins."""

    pointwise = False

    def judge_pairs(self, items):
        from judges.base import PairVerdict

        return [PairVerdict(float(a.count("please") > b.count("please")), float(a.count("please") > b.count("please")))
                for _, a, b in items]

    def _compare(self, items):
        return [v.p for v in self.judge_pairs(items)]


def test_collector_drops_a_torn_last_line_and_knows_its_judges(tmp_path):
    from decision_tree.collect_preferences import collect, present

    pairs = present([{"id": f"p{i}", "prompt": [{"role": "user", "content": f"q{i}"}], "subset": "s",
                      "chosen": [{"role": "assistant", "content": "please " * (i % 3 + 1) + "yes"}],
                      "rejected": [{"role": "assistant", "content": "no"}]} for i in range(10)])
    judges = {"human": "human", "flaky": Polite()}
    collect(judges, pairs, tmp_path, chunk=4, fingerprints={"flaky": {"sha256": "1"}})
    labels = tmp_path / "labels.jsonl"
    lines = labels.read_text().splitlines(keepends=True)
    labels.write_text("".join(lines[:-3]) + CUT)  # killed: three rows lost, one torn (with its newline)
    collect(judges, pairs, tmp_path, chunk=4, fingerprints={"flaky": {"sha256": "1"}})
    rows = strict_rows(labels)
    assert len(rows) == 20 and len({(r["pair"], r["judge"]) for r in rows}) == 20
    with pytest.raises(ResumeError, match=r"judges\.flaky\.sha256 1 -> 2"):  # the name now means another model
        collect(judges, pairs, tmp_path, fingerprints={"flaky": {"sha256": "2"}})
    with pytest.raises(ResumeError, match=r"settings\.max_length"):
        collect(judges, pairs, tmp_path, fingerprints={"flaky": {"sha256": "1"}}, settings={"max_length": 64})
    report = collect({**judges, "more": Polite()}, pairs, tmp_path, fingerprints={"flaky": {"sha256": "1"}})
    assert report["more"]["labelled"] == 10 and report["flaky"]["labelled"] == 10  # a judge added, the rest kept
    report = collect({"flaky": Polite()}, pairs, tmp_path, fingerprints={"flaky": {"sha256": "2"}}, overwrite=True)
    assert set(report) == {"flaky"} and len(strict_rows(labels)) == 10


# ---------------------------------------------------------------- solution sampler


def _solutions(path: Path, n: int, answer: int = 14) -> Path:
    question = "Tom has 3 apples and buys 4 more. Each apple costs $2. How much are his apples worth?"
    truth = "He has 3+4=<<3+4=7>>7 apples\nThey are worth 7*2=<<7*2=14>>14 dollars\nA: 14"
    row = {"question": question, "ground_truth": truth,
           "6b_finetuning": {"solution": f"He has 7 apples\nSo 7*2={answer}\nA: {answer}", "is_correct": answer == 14}}
    path.write_text("".join(json.dumps({**row, "question": f"{question} ({i})"}) + "\n" for i in range(n)))
    return path


def test_sampler_resumes_past_a_torn_line_and_refuses_other_inputs(tmp_path):
    from math_rm.sample_solutions import main

    src, out = _solutions(tmp_path / "sols.jsonl", 4), tmp_path / "o.jsonl"
    argv = ["--offline_rule", "--solutions", str(src), "--output", str(out), "--no_progress"]
    main([*argv, "--limit", "2"])
    with open(out, "a") as f:
        f.write(CUT)
    second = main(argv)
    assert second["questions"] == 2 and second["skipped_finished"] == 2
    assert [r["index"] for r in strict_rows(out)] == [0, 1, 2, 3]
    _solutions(src, 4, answer=15)  # the data changed in place
    with pytest.raises(ResumeError, match=r"data\.sha256"):
        main(argv)
    assert main([*argv, "--overwrite"])["questions"] == 4
    assert [r["index"] for r in strict_rows(out)] == [0, 1, 2, 3]


def test_sampler_fingerprint_knows_the_policy_by_content(tmp_path):
    from math_rm.sample_solutions import make_parser, store_fingerprint
    from rm_core.resume import differences
    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "policy", seed=0)
    args = make_parser().parse_args(["--policy", str(path), "--questions", str(_solutions(tmp_path / "q.jsonl", 1)),
                                     "--output", str(tmp_path / "o.jsonl"), "--backend", "hf"])
    before = store_fingerprint(args)
    save_tiny_backbone(path, seed=1)
    assert [d.split()[0] for d in differences(before, store_fingerprint(args))] == ["policy.sha256"]
    args.temperature = 1.0
    assert "settings.temperature 0.7 -> 1.0" in differences(before, store_fingerprint(args))


def test_eval_fingerprint_holds_the_attribute_model_by_content_the_prefix_flag_and_the_endpoint(tmp_path, monkeypatch):
    """A decision tree's attribute model retrained in place, --no_shared_prefix and OPENAI_BASE_URL all change
    what a resumed evaluation would score: each is in the fingerprint (and older fingerprints, made without the
    flag or the variable, stay equal)."""
    from argparse import Namespace

    from eval.runner import eval_fingerprint
    from rm_core.resume import differences

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    attr = tmp_path / "armo"
    attr.mkdir()
    (attr / "config.json").write_text('{"a": 1}', encoding="utf-8")
    (attr / "model.safetensors").write_bytes(b"weights one")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def fp(**kw):
        args = Namespace(model="openai:judge", dataset=str(data), max_length=64, attribute_model=str(attr),
                         no_shared_prefix=False, judge_base_url=None, **kw)
        return eval_fingerprint(args, "reward_bench")

    before = fp()
    assert "no_shared_prefix" not in before["settings"] and "judge_base_url" in before["settings"]
    (attr / "model.safetensors").write_bytes(b"weights two")  # retrained in place, same path
    assert [d.split(" ")[0] for d in differences(before, fp())] == ["settings.attribute_model.sha256"]
    assert differences(fp(), fp()) == []
    assert differences(fp(), eval_fingerprint(Namespace(
        model="openai:judge", dataset=str(data), max_length=64, attribute_model=str(attr), no_shared_prefix=True,
        judge_base_url=None), "reward_bench")) == ["settings.no_shared_prefix (none) -> true"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert "settings.judge_base_url null -> http://127.0.0.1:9/v1" in differences(before, fp())
    monkeypatch.delenv("OPENAI_BASE_URL")
    from judges import prompts

    now = fp()
    monkeypatch.setitem(prompts.DEFAULT_TEMPLATES, "pairwise", prompts.PAIRWISE + " Be brief.")  # an upgrade
    assert [d.split(" ")[0] for d in differences(now, fp())] == ["settings.judge_prompts"]


def test_hub_commit_asks_the_hub_first_when_online_and_the_cache_offline(tmp_path, monkeypatch):
    """A branch updated on the Hub since the last download: online, from_pretrained takes the new commit, so the
    fingerprint must name it too (not the stale ref in the local cache)."""
    from types import SimpleNamespace

    from huggingface_hub import HfApi, constants

    from rm_core.resume import hub_commit

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    ref = tmp_path / "models--org--rm" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("a" * 40)
    asked = []

    def repo_info(self, repo_id, **kw):
        asked.append(repo_id)
        if kw.get("revision") == "down":
            raise OSError("no network")
        return SimpleNamespace(sha="b" * 40)

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert hub_commit("org/rm") == "b" * 40  # the Hub's, not the cached ref
    (ref.parent / "down").write_text("c" * 40)
    assert hub_commit("org/rm", revision="down") == "c" * 40  # the Hub did not answer: the cache's
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked.clear()
    assert hub_commit("org/rm") == "a" * 40 and asked == []  # offline: never asks
    assert hub_commit("org/other") is None
