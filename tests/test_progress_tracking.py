"""Issue 19, part 5: progress bars (rm_core.progress) and --report_to for the stages the Trainer does not run
(rm_core.tracking).

- A bar shows count, rate and ETA when stderr is a terminal; it is off with --quiet, RM_QUIET=1, a non-terminal
  stderr, or on a process other than the main one. The evaluators' scoring loop, the LLM backends' calls, the
  preference collection and the labelling use it.
- --report_to none|wandb|trackio: an unknown or uninstalled backend is one line (exit 2) before anything runs;
  wandb (WANDB_MODE=offline) gets the summary, tables and curves, read back from the offline run's file.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import types
from pathlib import Path

import pytest

from judges.base import Judge, register_judge, split_conversation
from rm_core import progress as progress_mod
from rm_core import tracking


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm draws only on one)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """Call it in the test (pytest's capture sets sys.stderr again between setup and call): a Terminal as stderr."""
    monkeypatch.delenv("RM_QUIET", raising=False)
    progress_mod.set_quiet(False)

    def attach() -> Terminal:
        err = Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        return err

    yield attach
    progress_mod.set_quiet(False)


@register_judge("test_progress_words")
class WordJudge(Judge):
    """Reward = number of words of the response; attributes: words and "please"s (a tree's attribute model)."""

    pointwise = True

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        return cls()

    def attribute_scores(self, conversations):
        return [{"words": float(len(split_conversation(c)[1].split())),
                 "polite": float(split_conversation(c)[1].count("please"))} for c in conversations]

    def _score(self, conversations, references):
        return [a["words"] for a in self.attribute_scores(conversations)]


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "words-model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"rm_family": "test_progress_words"}))
    return folder


def _pairs_file(tmp_path: Path, n: int = 6) -> Path:
    rows = [{"id": f"p{i}", "subset": "mine", "prompt": f"q{i}", "chosen": "a longer and better answer " + "x " * i,
             "rejected": "short"} for i in range(n)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- progress


def test_a_bar_shows_count_rate_and_eta_on_a_terminal(terminal):
    terminal = terminal()
    for _ in progress_mod.progress(range(5), desc="work", unit="pair"):
        pass
    out = terminal.getvalue()
    assert "work" in out and "5/5" in out and "pair/s" in out and "<" in out  # elapsed<remaining


@pytest.mark.parametrize("how", ["set_quiet", "RM_QUIET", "not a terminal", "not the main process"])
def test_a_bar_is_off_when_quiet_piped_or_not_main(terminal, monkeypatch, how):
    terminal = terminal()
    enabled = True
    if how == "set_quiet":
        progress_mod.set_quiet()
    elif how == "RM_QUIET":
        monkeypatch.setenv("RM_QUIET", "1")
    elif how == "not a terminal":
        monkeypatch.setattr(terminal, "isatty", lambda: False)
    else:
        enabled = False
    with progress_mod.progress(total=3, desc="work", enabled=enabled) as bar:
        bar.update(3)
    assert terminal.getvalue() == ""


def test_quiet_while_restores(terminal):
    terminal = terminal()
    with progress_mod.quiet_while(True):
        assert progress_mod.is_quiet()
    assert not progress_mod.is_quiet()
    with progress_mod.quiet_while(False):
        assert not progress_mod.is_quiet()


def test_the_scoring_loop_of_every_evaluator_shows_one_bar(terminal, tmp_path):
    terminal = terminal()
    from eval.runner import process_state, score_items

    items = [{"id": str(i)} for i in range(10)]
    run = score_items(items, lambda chunk: [{"id": it["id"], "score": 1.0} for it in chunk], tmp_path, process_state(),
                      chunk_size=4, label="pairs")
    assert len(run.rows) == 10
    out = terminal.getvalue()
    assert "scoring" in out and "10/10" in out and "pair/s" in out


def test_llm_backend_calls_show_a_bar_that_goes_away(terminal):
    terminal = terminal()
    from judges.backends import HFBackend

    backend = object.__new__(HFBackend)  # the batching loop only: no model
    backend.name, backend.batch_size, backend.max_length, backend.cache = "stub", 2, 100, None
    backend._encode = lambda messages: [1, 2, 3]
    results = backend._batches("generate", [[{"role": "user", "content": str(i)}] for i in range(5)], {},
                               lambda batch: ["ok"] * len(batch))
    assert [r.value for r in results] == ["ok"] * 5
    out = terminal.getvalue()
    assert "judge calls" in out and "/5 [" in out and out.endswith("\r")  # leave=False: cleared when done


def test_preference_collection_shows_a_bar_per_judge(terminal, tmp_path):
    terminal = terminal()
    from decision_tree.collect_preferences import collect, present

    prefs = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
              "chosen": [{"role": "assistant", "content": "good answer"}],
              "rejected": [{"role": "assistant", "content": "bad"}]} for i in range(5)]
    collect({"human": "human", "words": WordJudge()}, present(prefs), tmp_path / "prefs", chunk=2)
    out = terminal.getvalue()
    assert "labelling (human)" in out and "labelling (words)" in out and "5/5" in out


def test_labelling_honours_quiet(terminal, tmp_path):
    terminal = terminal()
    from math_rm.sample_solutions import main

    src = tmp_path / "sols.jsonl"
    src.write_text(json.dumps({"question": "Tom has 3 apples and 4 more: how many?", "ground_truth": "3+4=<<3+4=7>>7\nA: 7",
                               "6b_finetuning": {"solution": "3+4=<<3+4=7>>7\nA: 7", "is_correct": True}}) + "\n")
    main(["--offline_rule", "--solutions", str(src), "--output", str(tmp_path / "a.jsonl")])
    assert "labelling questions" in terminal.getvalue() and "1/1" in terminal.getvalue()
    terminal.truncate(0)
    terminal.seek(0)
    main(["--offline_rule", "--solutions", str(src), "--output", str(tmp_path / "b.jsonl"), "--quiet"])
    assert terminal.getvalue() == ""


@pytest.mark.parametrize("module", ["eval.reward_bench", "eval.reward_bench2", "eval.rm_bench", "eval.judgebench",
                                    "eval.best_of_n", "eval.report", "decision_tree.fit_tree"])
def test_the_commands_take_quiet_and_report_to(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(module).main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--quiet" in out and "--report_to" in out and "--run_name" in out


def test_armo_config_takes_quiet_and_report_to():
    from armo_rm.config import make_parser

    (cfg,) = make_parser().parse_args_and_config(["--quiet", "--report_to", "wandb", "--run_name", "x"])
    assert cfg.quiet and cfg.report_to == ["wandb"] and cfg.run_name == "x"
    (cfg,) = make_parser().parse_args_and_config([])
    assert not cfg.quiet and cfg.report_to == ["none"]


# ---------------------------------------------------------------- tracking


def test_report_to_names_and_defaults():
    assert tracking.normalize_report_to(None) == [] and tracking.normalize_report_to(["none"]) == []
    assert tracking.normalize_report_to("wandb,trackio") == ["wandb", "trackio"]
    assert tracking.trainer_report_to(["tensorboard", "wandb"]) == ["wandb"]
    assert tracking.trainer_report_to("none") == []
    assert type(tracking.start_run(["none"])) is tracking.Tracker
    assert tracking.flatten({"a": {"b": 1, "c": None, "d": float("nan")}, "e": "x", "f": [1]}) == {"a/b": 1, "e": "x"}


def test_an_uninstalled_or_unknown_backend_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    import importlib.util

    from eval.reward_bench import main
    from rm_core.errors import UserInputError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    with pytest.raises(SystemExit) as info:
        main(["--model", str(tmp_path / "not-even-there"), "--report_to", "trackio"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --report_to trackio: trackio is not installed (pip install trackio)"
    with pytest.raises(UserInputError, match="unknown"):
        tracking.check_report_to("tensorboard")


def test_trackio_gets_the_summary_tables_and_curves(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("trackio")
    fake.init = lambda **kw: calls.append(("init", kw))
    fake.log = lambda metrics, step=None: calls.append(("log", metrics, step))
    fake.finish = lambda: calls.append(("finish",))
    fake.Table = lambda columns, data: ("table", columns, data)
    monkeypatch.setitem(sys.modules, "trackio", fake)
    monkeypatch.setattr(tracking, "check_report_to", lambda report_to: tracking.normalize_report_to(report_to))
    with tracking.start_run("trackio", name="r", config={"lr": 0.1}) as t:
        t.log({"loss": 0.5}, step=3)
        t.log_table("rows", [{"a": 1}, {"a": 2, "b": "x"}])
        t.summary({"acc": {"all": 0.75}})
    assert calls[0] == ("init", {"project": "huggingface", "name": "r", "config": {"lr": 0.1}})
    assert ("log", {"loss": 0.5}, 3) in calls and ("log", {"acc/all": 0.75}, None) in calls
    assert ("log", {"rows": ("table", ["a", "b"], [[1, None], [2, "x"]])}, None) in calls
    assert calls[-1] == ("finish",)


def _wandb_records(run_dir: Path, wanted, timeout_s: float = 60) -> dict:
    """The records of an offline run's .wandb file (a LevelDB-style log of protobuf Records): {"summary": {key:
    value}, "history": [...], "config": {...}}. wandb.finish() returns before wandb-core has flushed the file:
    polled until `wanted(records)` or the timeout; a record still being written when the file is read is left to the
    next poll (a parse of its partial bytes failed once in CI)."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + timeout_s
    while True:
        out = {"summary": {}, "history": [], "config": {}, "tables": set()}
        for path in run_dir.glob("*.wandb"):
            data, pos, block, pending = path.read_bytes(), 7, 32768, b""
            while pos + 7 <= len(data):
                if block - pos % block < 7:
                    pos += block - pos % block
                    continue
                _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
                if (length == 0 and kind == 0) or pos + 7 + length > len(data):  # the end, or a chunk still being written
                    break
                chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
                pending = chunk if kind in (1, 2) else pending + chunk
                if kind not in (1, 4):
                    continue
                record = pb.Record()
                try:
                    record.ParseFromString(pending)
                except DecodeError:  # a record whose later chunks are not written yet: read again at the next poll
                    break
                which = record.WhichOneof("record_type")
                if which == "summary":
                    for item in record.summary.update:
                        key = item.key or "/".join(item.nested_key)
                        out["summary"][key] = json.loads(item.value_json)
                elif which == "history":
                    row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                    out["history"].append(row)
                    out["tables"] |= {k.split("/")[0] for k, v in row.items() if v == "table-file"}
                elif which in ("config", "run"):
                    config = record.config if which == "config" else record.run.config
                    out["config"].update({item.key: json.loads(item.value_json) for item in config.update})
        if wanted(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # in requirements/train.txt and the lock
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DISABLED", raising=False)
    wandb.teardown()  # settings (WANDB_DIR) are read once per wandb session: start a fresh one
    yield tmp_path / "wandb"
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()


def _one_run(folder: Path) -> Path:
    runs = list(folder.glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def test_eval_report_to_wandb_offline_writes_the_summary_and_tables(wandb_offline, tmp_path):
    from eval.reward_bench import main

    main(["--model", str(_model(tmp_path)), "--dataset", str(_pairs_file(tmp_path)), "--output_dir",
          str(tmp_path / "out"), "--report_to", "wandb", "--run_name", "rb-words", "--quiet"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rec = _wandb_records(_one_run(wandb_offline), lambda r: "subsets/mine/accuracy" in r["summary"])
    assert rec["summary"]["subsets/mine/accuracy"] == results["subsets"]["mine"]["accuracy"] == 1.0
    assert rec["summary"]["pairs"] == 6 and "fingerprint/benchmark" not in rec["summary"]
    assert "subsets" in rec["tables"]
    assert rec["config"]["benchmark"] == "reward_bench" and rec["config"]["dataset"].endswith("pairs.jsonl")


def test_fit_tree_report_to_wandb_offline_logs_the_cv_curve_and_summary(wandb_offline, tmp_path):
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present

    prefs = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
              "chosen": [{"role": "assistant", "content": "please " * (1 + i % 3) + "answer " * (i % 5)}],
              "rejected": [{"role": "assistant", "content": "answer " * (i % 4)}]} for i in range(40)]
    collect({"human": "human"}, present(prefs), tmp_path / "prefs")
    info = fit_tree.main(["--preferences", str(tmp_path / "prefs"), "--judge", "human", "--attribute_model",
                          str(_model(tmp_path)), "--output_dir", str(tmp_path / "tree"), "--depths", "1", "2",
                          "--min_leafs", "1", "5", "--folds", "2", "--report_to", "wandb", "--quiet"])
    rec = _wandb_records(_one_run(wandb_offline), lambda r: "cv_accuracy" in r["summary"])
    assert rec["summary"]["cv_accuracy"] == max(info["cv_accuracy_by_depth"].values())
    assert rec["summary"]["best/max_depth"] == info["best"]["max_depth"]
    assert [h["cv_accuracy_by_depth"] for h in rec["history"] if "cv_accuracy_by_depth" in h] == \
        [info["cv_accuracy_by_depth"][d] for d in (1, 2)]
    assert "cv_grid" in rec["tables"]


def test_grpo_held_out_numbers_go_into_the_trainers_open_wandb_run(wandb_offline):
    import wandb

    from pair_pm.train_grpo import track_held_out

    run = wandb.init(project="huggingface", name="grpo-train")  # as the Trainer's WandbCallback leaves it
    args = types.SimpleNamespace(report_to=["tensorboard", "wandb"], run_name=None, output_dir="outputs/grpo")
    track_held_out(args, {"pairs": 3, "accuracy": 0.5, "malformed_by_reason": {"no verdict": 2}})
    assert wandb.run is run  # left open for its owner
    run.finish()
    rec = _wandb_records(_one_run(wandb_offline), lambda r: "held_out/accuracy" in r["summary"])
    assert rec["summary"]["held_out/accuracy"] == 0.5 and rec["summary"]["held_out/malformed_by_reason/no verdict"] == 2
