"""Issue 19, part 4: every console script of pyproject.toml exits 0 after a finished run, and non-zero with one
`error: ...` line (no traceback) on bad input.

A console script is `sys.exit(fn())` (pip's wrapper): a function that returns a dict exits 1 after a successful
run (eval_report did). Each entry point runs here on a tiny case and on a bad input, the way its wrapper runs it:
its function resolved through the installed entry points (importlib.metadata, which is what .venv/bin/<name>
loads), sys.argv set, `sys.exit(fn())`'s exit status read; stderr captured at the file-descriptor level. The
scripts run one after the other in ONE fresh interpreter (DRIVER; torch, transformers and TRL are imported
once: a process per script would cost ~10 s of imports each on two cores), each later one using what an earlier
one wrote (the BT checkpoint is what the eval_* commands score, the ArmoRM checkpoint the tree's attribute
model). Two run as the real installed executables in processes of their own, alongside: rm-judge-serve (starts,
answers /health, stops cleanly on Ctrl-C (SIGINT); a bad --judge exits 2) and eval_report (the one that used to
exit 1).

A console script added to pyproject.toml without a case here (or an entry in COVERED_ELSEWHERE naming an
existing test that runs it end to end in a subprocess and checks its exit code) fails
test_every_console_script_has_a_case.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomllib

from rm_core.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
BIN = Path(sys.executable).parent
SERVER = "rm-judge-serve"  # run as the installed executable (a server: started, asked, stopped)

# script -> "tests/<file>.py::<test>" that runs it end to end in a subprocess and checks its exit codes (success
# and a bad input). Empty: every script runs here (the whole file takes ~60-90 s on two cores).
COVERED_ELSEWHERE: dict[str, str] = {}

WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()
GOOD = "Sure, here is a short answer in one word."
BAD = "I cannot help with that request."

# One interpreter runs every case: argv[1] a JSON list of {"script", "argv"}, argv[2] where the results go (rewritten
# after each case, so a crash still reports the cases before it).
DRIVER = r'''
import importlib.metadata, json, os, sys, time, traceback
cases, out = json.load(open(sys.argv[1])), sys.argv[2]
eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
results = []

def status_of(code):  # what the interpreter exits with for sys.exit(code)
    return 0 if code is None else code if isinstance(code, int) else 1

for k, case in enumerate(cases):
    err_path, out_path = f"{out}.{k}.stderr", f"{out}.{k}.stdout"
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fds = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fds[0], 1); os.dup2(fds[1], 2)
    t0 = time.perf_counter()
    try:
        if case["script"] not in eps:
            raise SystemExit(f"console script {case['script']} is not installed: pip install -e . --no-deps")
        fn = eps[case["script"]].load()
        sys.argv = [case["script"], *case["argv"]]
        status = status_of(fn())  # pip's wrapper: sys.exit(fn())
    except SystemExit as stop:
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
        status = status_of(stop.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2)
        for fd in (*saved, *fds):
            os.close(fd)
    results.append({**case, "status": status, "seconds": round(time.perf_counter() - t0, 2),
                    "stderr": open(err_path, errors="replace").read(), "stdout": open(out_path, errors="replace").read()})
    json.dump(results, open(out, "w"))
'''


def _env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pairs(n: int, tag: str, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        prompt = f"{tag} {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
        out.append({"id": f"{tag}-{i}", "subset": "mine", "prompt": prompt, "chosen": f"{filler} {GOOD}",
                    "rejected": f"{filler} {BAD}"})
    return out


def _math_rows(rng: random.Random, n_train: int, n_test: int) -> tuple[list[dict], list[dict]]:
    """Steps rows (the labelling output) to train on, Candidates rows to test on; a step with "sea" is bad."""
    def step(bad=False):
        words = [rng.choice(WORDS[:8]) for _ in range(3)]
        return " ".join(words + (["sea"] if bad else []))

    train = []
    for i in range(n_train):
        good, bad_at = [step() for _ in range(3)], rng.randint(0, 2)
        bad = [step(k == bad_at) for k in range(3)]
        train.append({"index": i, "id": f"q{i}", "question": step(), "reference": "0", "solutions": [
            {"text": "\n".join(good), "steps": good, "labels": [1, 1, 1], "is_correct": True},
            {"text": "\n".join(bad), "steps": bad, "labels": [1] * bad_at + [0] + [None] * (2 - bad_at),
             "is_correct": False}]})
    test = [{"id": f"t{i}", "prompt": step(), "responses": ["\n".join(step(j == 1) for _ in range(2)) for j in range(3)],
             "correct": [True, False, False]} for i in range(n_test)]
    return train, test


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Tiny inputs for every script: a random causal-LM folder, a random reward model, pair / math / ratings /
    benchmark files. Paths in the cases are relative to this folder (the scripts run with it as cwd)."""
    from rm_core.testing import save_tiny_backbone, save_tiny_reward_model

    root = tmp_path_factory.mktemp("scripts")
    save_tiny_backbone(root / "base", seed=0)
    save_tiny_reward_model(root / "rm", seed=1)
    rng = random.Random(0)
    _jsonl(root / "data" / "train.jsonl", _pairs(16, "train", rng))
    _jsonl(root / "data" / "test.jsonl", _pairs(4, "test", rng))
    train, test = _math_rows(rng, 8, 2)
    _jsonl(root / "math" / "train.jsonl", train)
    _jsonl(root / "math" / "test.jsonl", test)
    _jsonl(root / "math" / "solutions.jsonl", [{
        "question": "Tom has 3 apples and buys 4 more. Each costs $2. How much are they worth?",
        "ground_truth": "He has 3+4=<<3+4=7>>7 apples\nThey are worth 7*2=<<7*2=14>>14 dollars\nA: 14",
        "6b_finetuning": {"solution": "He has 3*4=<<3*4=12>>12 apples\nSo 12*2=<<12*2=24>>24\nA: 24",
                          "is_correct": False}}])
    ratings = []
    for p in _pairs(12, "rated", rng):
        ratings += [{"prompt": p["prompt"], "response": p["chosen"], "attributes": {"helpful": 1.0, "safe": None}},
                    {"prompt": p["prompt"], "response": p["rejected"], "attributes": {"helpful": 0.0, "safe": 1.0}}]
    _jsonl(root / "armo" / "ratings.jsonl", ratings)
    _jsonl(root / "armo" / "prefs.jsonl", _pairs(12, "pref", rng))
    _jsonl(root / "armo" / "test.jsonl", _pairs(4, "armo-test", rng))
    _jsonl(root / "bench" / "rb2.jsonl", [
        {"id": str(i), "subset": s, "prompt": f"question {i}", "chosen": [f"{s} good"], "rejected": [f"{s} b1", f"{s} b2"],
         "num_correct": 1} for i, s in enumerate(["Factuality", "Precise IF", "Math", "Safety", "Focus"])])
    (root / "bench" / "rmb.json").write_text(json.dumps([
        {"id": 0, "domain": "chat", "prompt": "p0", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", "r2"]}]))
    _jsonl(root / "bench" / "jb.jsonl", [
        {"pair_id": f"p{k}", "original_id": k, "source": "mmlu-pro-law", "question": f"q{k}", "response_model": "m",
         "response_A": f"a{k}", "response_B": f"b{k}", "label": "A>B"} for k in range(2)])
    rmb = root / "bench" / "RMB_dataset" / "Pairwise_set" / "Helpfulness" / "Chat"
    rmb.mkdir(parents=True)
    (rmb / "Discussion.json").write_text(json.dumps([
        {"pair_uid": str(k), "conversation_input": [{"role": "user", "content": f"q{k}", "language": "English"}],
         "chosen": {"llm_name": "x", "answer": f"good {k}"}, "reject": {"llm_name": "y", "answer": f"bad {k}"},
         "category_path": "Pairwise_set/Helpfulness/Chat/Discussion"} for k in range(2)]))
    _jsonl(root / "bench" / "prmbench.jsonl", [
        {"idx": str(k), "classification": "circular", "modified_question": f"What is {k} + 1?",
         "modified_process": [f"1. {k} + 1 = {k + 1}", f"2. So the answer is {k + 1}."], "error_steps": [2]}
        for k in range(2)])
    (root / "bench" / "ls_export.json").write_text(json.dumps([
        {"id": 1, "data": {"pair_id": "p1", "prompt_messages": json.dumps([{"role": "user", "content": "q"}]),
                           "response_a": "a", "response_b": "b", "a_source": "chosen", "b_source": "rejected"},
         "annotations": [{"completed_by": 1, "was_cancelled": False, "result": [
             {"from_name": "preference", "to_name": "prompt", "type": "choices",
              "value": {"choices": ["Response B is better"]}}]}]}]))
    _jsonl(root / "bench" / "cands.jsonl", [
        {"id": f"q{i}", "prompt": f"question {i}", "responses": [f"q{i} candidate {k}\n#### {k}" for k in range(3)],
         "correct": [True, False, False]} for i in range(2)])
    return root


# WANDB_MODE=disabled here: the commands' --report_to wiring runs without writing a run (the offline run's contents
# are checked in tests/test_progress_tracking.py)
TRACK = ["--report_to", "wandb"] if importlib.util.find_spec("wandb") else []
TRAIN = ["--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--max_steps", "1", "--logging_steps", "1",
         "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0"]
MISSING = "missing/nothing-here.jsonl"
FAKE_LLM = "{fake_llm}"  # in an argv: the URL of the scripted OpenAI-compatible LLM the `runs` fixture serves


def scripted_llm(hit, body):
    """rm-rubrics' LLM: every proposal is one rubric, and the judge picks the response that ends with GOOD."""
    from rm_core.testing import chat_reply, shown_pair

    text = body["messages"][-1]["content"]
    proposal = "short rules that a judge could use" in text or "These rubrics were tried" in text  # or a revision
    if (pair := shown_pair(text)) and not proposal:
        return chat_reply("A" if pair[0].endswith(GOOD) else "B")
    return chat_reply("- The response answers the request instead of refusing it.")
MISSING_MODEL = "./missing/no-model"  # a local path (an org/name-shaped one may be a Hub id)


def success_cases() -> list[tuple[str, list[str]]]:
    """(script, argv) in order: later ones read what earlier ones wrote (out/...)."""
    bt = "out/bt"
    return [
        ("rm-train-bt", ["--model_name_or_path", "base", "--dataset_name", "data", "--output_dir", bt, "--max_length",
                         "64", *TRAIN]),
        ("rm-train-odin", ["--model_name_or_path", "base", "--dataset_name", "data", "--output_dir", "out/odin",
                           "--max_length", "64", *TRAIN]),
        ("eval_reward_bench", ["--model", bt, "--dataset", "data/test.jsonl", "--output_dir", "eval/rb", "--quiet"]),
        ("eval_reward_bench2", ["--model", bt, "--dataset", "bench/rb2.jsonl", "--output_dir", "eval/rb2"]),
        ("eval_rm_bench", ["--model", bt, "--dataset", "bench/rmb.json", "--output_dir", "eval/rmb", *TRACK]),
        ("eval_judgebench", ["--model", bt, "--dataset", "bench/jb.jsonl", "--output_dir", "eval/jb"]),
        ("eval_best_of_n", ["--model", bt, "--dataset", "bench/cands.jsonl", "--split", "all",
                            "--output_dir", "eval/bon"]),
        ("rm-prepare-pair-pm", ["--dataset_name", "data", "--model_name_or_path", "base", "--max_length", "128",
                                "--output_dir", "out/pm-data"]),
        ("rm-train-pair-pm", ["--model_name_or_path", "base", "--dataset_name", "data", "--output_dir", "out/pm",
                              "--max_length", "128", "--activation_checkpointing", "false", *TRAIN]),
        ("rm-train-pair-pm-ssrm", ["--model_name_or_path", "base", "--dataset_name", "data", "--output_dir",
                                   "out/ssrm", "--max_length", "128", "--labelled_fraction", "0.5", "--rounds", "0",
                                   *TRAIN]),
        ("rm-train-pair-pm-grpo", ["--model_name_or_path", "base", "--dataset_name", "data", "--output_dir",
                                   "out/grpo", "--num_generations", "4", "--max_completion_length", "8",
                                   "--max_prompt_length", "448", *TRAIN]),
        ("rm-sample-solutions", ["--offline_rule", "--solutions", "math/solutions.jsonl", "--output",
                                 "out/labelled.jsonl", "--quiet"]),
        ("rm-train-prm", ["--model_name_or_path", "base", "--dataset_name", "math", "--output_dir", "out/prm",
                          "--max_length", "128", *TRAIN]),
        ("rm-train-orm", ["--model_name_or_path", "base", "--dataset_name", "math", "--output_dir", "out/orm",
                          "--max_length", "128", *TRAIN]),
        ("eval_rmb", ["--model", bt, "--dataset", "bench/RMB_dataset", "--output_dir", "eval/rmb-set"]),
        ("eval_prmbench", ["--model", "out/prm", "--dataset", "bench/prmbench.jsonl", "--output_dir", "eval/prmbench"]),
        ("rm-train-scalar-orm", ["--model_name_or_path", "base", "--dataset_name", "math", "--output_dir",
                                 "out/scalar-orm", "--max_length", "128", *TRAIN]),
        ("rm-train-armo-regression", ["--model_name_or_path", "base", "--output_dir", "out/armo", "--max_length",
                                      "64", "--dtype", "float32", "--ratings_sources", "armo/ratings.jsonl",
                                      "--preference_sources", "armo/prefs.jsonl", "--test_sources", "armo/test.jsonl"]),
        ("rm-train-armo-gating", ["--model_name_or_path", "base", "--output_dir", "out/armo", "--max_length", "64",
                                  "--dtype", "float32", "--ratings_sources", "armo/ratings.jsonl",
                                  "--preference_sources", "armo/prefs.jsonl", "--test_sources", "armo/test.jsonl",
                                  "--max_steps", "10", "--batch_size", "8", "--quiet", *TRACK]),
        ("rm-collect-preferences", ["--pairs", "data/train.jsonl", "--judge", "human", "--output_dir", "out/prefs"]),
        ("rm-fit-tree", ["--preferences", "out/prefs", "--judge", "human", "--attribute_model", "out/armo",
                         "--output_dir", "out/tree", "--depths", "1", "2", "--min_leafs", "1", "--folds", "2",
                         *TRACK]),
        ("eval_report", ["--judge", f"bt={bt}", "--bench", "pairs=pairs:data/test.jsonl", "--output_dir",
                         "out/report", *TRACK]),
        ("rm-refine", ["--policy", "llm:base", "--judge", bt, "--prompts", "data/test.jsonl", "--output_dir",
                       "out/refine", "--iterations", "1", "--max_new_tokens", "8", "--limit", "2", "--quiet"]),
        ("rm-rubrics", ["--llm", "openai:scripted", "--judge_base_url", FAKE_LLM, "--pairs", "data/test.jsonl",
                        "--max_pairs", "2", "--max_themes", "0", "--embedding_model", "base", "--output_dir",
                        "out/rubrics"]),
        ("rm-annotate", ["export", "--pairs", "data/test.jsonl", "--output_dir", "out/ls"]),
        ("rm-annotate", ["import", "--export", "bench/ls_export.json", "--output_dir", "out/human"]),
    ]


def failure_cases() -> list[tuple[str, list[str], str]]:
    """(script, argv, what the one error line names): a data file or model folder that does not exist."""
    recipe = ["--dataset_name", "data", "--output_dir", "out/never", *TRAIN]
    cases = [(name, ["--model", MISSING_MODEL, "--output_dir", "out/never"], MISSING_MODEL)
             for name in ("eval_reward_bench", "eval_reward_bench2", "eval_rm_bench", "eval_judgebench",
                          "eval_best_of_n")]
    cases += [("eval_rmb", ["--model", "out/bt", "--dataset", MISSING, "--output_dir", "out/never"], MISSING),
              ("eval_prmbench", ["--model", MISSING_MODEL, "--dataset", "bench/prmbench.jsonl", "--output_dir",
                                 "out/never"], MISSING_MODEL)]
    cases += [(name, ["--model_name_or_path", MISSING_MODEL, *recipe], MISSING_MODEL)
              for name in ("rm-train-bt", "rm-train-odin", "rm-train-pair-pm", "rm-train-pair-pm-ssrm",
                           "rm-train-pair-pm-grpo", "rm-train-prm", "rm-train-orm", "rm-train-scalar-orm")]
    cases += [
        ("eval_report", ["--judge", f"x={MISSING_MODEL}", "--bench", "pairs=pairs:data/test.jsonl", "--output_dir",
                         "out/never"], MISSING_MODEL),
        ("rm-prepare-pair-pm", ["--dataset_name", MISSING, "--model_name_or_path", "base", "--output_dir",
                                "out/never"], MISSING),
        ("rm-sample-solutions", ["--offline_rule", "--solutions", MISSING, "--output", "out/never.jsonl"], MISSING),
        ("rm-train-armo-regression", ["--model_name_or_path", "base", "--output_dir", "out/never", "--ratings_sources",
                                      MISSING], MISSING),
        ("rm-train-armo-gating", ["--model_name_or_path", MISSING_MODEL, "--output_dir", "out/armo"], MISSING_MODEL),
        ("rm-collect-preferences", ["--pairs", MISSING, "--judge", "human", "--output_dir", "out/never"], MISSING),
        ("rm-fit-tree", ["--preferences", "out/prefs", "--judge", "human", "--attribute_model", MISSING_MODEL,
                         "--output_dir", "out/never"], MISSING_MODEL),
        ("rm-refine", ["--policy", "llm:base", "--judge", "out/bt", "--prompts", MISSING, "--output_dir",
                       "out/never"], MISSING),
        ("rm-rubrics", ["--llm", "openai:scripted", "--pairs", MISSING, "--output_dir", "out/never"], MISSING),
        ("rm-annotate", ["import", "--export", MISSING, "--output_dir", "out/never"], MISSING),
    ]
    return cases


def test_every_console_script_has_a_case():
    ran_here = {name for name, _ in success_cases()} | {SERVER}
    failing_here = {name for name, _, _ in failure_cases()} | {SERVER}
    for name in SCRIPTS:
        if name in COVERED_ELSEWHERE:
            continue
        assert name in ran_here, f"console script {name} has no success case in tests/test_console_scripts.py"
        assert name in failing_here, f"console script {name} has no bad-input case in tests/test_console_scripts.py"
    assert not set(COVERED_ELSEWHERE) - set(SCRIPTS), "COVERED_ELSEWHERE names a script pyproject.toml lacks"
    for name, where in COVERED_ELSEWHERE.items():
        path, _, test = where.partition("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        assert test in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, f"{name}: {where} is gone"


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def runs(work):
    """Every case: the driver (all scripts in one interpreter) and, at the same time, the real executables of
    rm-judge-serve (good and bad --judge) and eval_report; rm-rubrics' LLM is a scripted loopback server, up
    for the module. Returns {"driver": [...], "server": {...}, ...}."""
    with contextlib.ExitStack() as stack:
        yield _runs(work, stack)


def _runs(work, stack):
    from rm_core.testing import fake_openai

    env = _env()
    port = free_port()
    llm = stack.enter_context(fake_openai())
    llm.behaviour = scripted_llm
    server = subprocess.Popen([str(BIN / SERVER), "--judge", "rm", "--port", str(port), "--max_length", "64"],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cases = [{"script": s, "argv": [llm.url if x == FAKE_LLM else x for x in a], "kind": "ok"}
             for s, a in success_cases()]
    cases += [{"script": s, "argv": a, "kind": "bad", "names": n} for s, a, n in failure_cases()]
    (work / "cases.json").write_text(json.dumps(cases))
    t0 = time.perf_counter()
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(work / "cases.json"), str(work / "results.json")],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {"port": port}
    try:
        health, deadline = None, time.monotonic() + 240
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/health")
            except OSError:
                time.sleep(0.3)
        out["health"] = health
        server.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down and the command returns (exit 0)
        try:
            _, server_err = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            _, server_err = server.communicate()
        out["server"] = {"status": server.returncode, "stderr": server_err}
        bad = subprocess.run([str(BIN / SERVER), "--judge", MISSING_MODEL], cwd=work, env=env, capture_output=True,
                             text=True, timeout=300)
        out["server_bad"] = {"status": bad.returncode, "stderr": bad.stderr}
        report = subprocess.run([str(BIN / "eval_report"), "--judge", "rm=rm", "--bench", "pairs=pairs:data/test.jsonl",
                                 "--output_dir", "out/report-bin", "--quiet"], cwd=work, env=env, capture_output=True,
                                text=True, timeout=300)
        out["report_bin"] = {"status": report.returncode, "stderr": report.stderr, "stdout": report.stdout}
        _, driver_err = driver.communicate(timeout=600)
    finally:
        for proc in (server, driver):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out["driver_seconds"] = round(time.perf_counter() - t0, 1)
    assert driver.returncode == 0, driver_err[-3000:]
    out["driver"] = json.loads((work / "results.json").read_text())
    assert len(out["driver"]) == len(cases), driver_err[-3000:]
    return out


def _show(result: dict) -> str:
    return f"{result['script']} {' '.join(result['argv'])}\nexit {result['status']}\n{result['stderr'][-3000:]}"


@pytest.mark.parametrize("script", list(dict.fromkeys(name for name, _ in success_cases())))
def test_a_finished_run_exits_0(runs, script):
    for result in (r for r in runs["driver"] if r["kind"] == "ok" and r["script"] == script):
        assert result["status"] == 0, _show(result)


@pytest.mark.parametrize("script", list(dict.fromkeys(name for name, _, _ in failure_cases())))
def test_bad_input_exits_2_with_one_error_line(runs, script):
    for result in (r for r in runs["driver"] if r["kind"] == "bad" and r["script"] == script):
        assert result["status"] == 2, _show(result)
        assert "Traceback" not in result["stderr"], _show(result)
        errors = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
        last = result["stderr"].strip().splitlines()[-1]
        assert errors == [last] and result["names"] in last, _show(result)


def test_the_outputs_of_the_finished_runs_are_there(runs, work):
    """Exit 0 means the work was done: each run left what it is for."""
    for path in ("out/bt/config.json", "out/odin/config.json", "eval/rb/results.json", "eval/rb2/results.json",
                 "eval/rmb/results.json", "eval/jb/results.json", "eval/bon/results.json", "out/pm-data/train.jsonl",
                 "out/pm/config.json", "out/grpo/config.json", "out/labelled.jsonl", "out/prm/config.json",
                 "out/orm/config.json", "out/scalar-orm/config.json", "out/armo/config.json", "out/prefs/labels.jsonl",
                 "out/tree/tree.json", "out/report/report.md", "out/report-bin/report.md", "eval/rmb-set/results.json",
                 "eval/prmbench/results.json", "out/refine/summary.json", "out/rubrics/rubrics.json", "out/ls/tasks.json",
                 "out/ls/label_config.xml", "out/human/preferences.jsonl"):
        assert (work / path).is_file(), path
    print(f"\n[console scripts] driver {runs['driver_seconds']} s: "
          + ", ".join(f"{r['script']} {r['seconds']}" for r in runs["driver"] if r["kind"] == "ok"))


def test_eval_report_executable_exits_0_after_a_report(runs):
    report = runs["report_bin"]
    assert report["status"] == 0, report["stderr"][-3000:]
    assert "report:" in report["stdout"]


def test_judge_server_answers_health_and_stops_cleanly(runs):
    assert runs["health"] is not None, runs["server"]["stderr"][-3000:]
    status, body = runs["health"]
    assert status == 200 and body["status"] == "ok"
    assert runs["server"]["status"] == 0, runs["server"]["stderr"][-3000:]
    assert "Traceback" not in runs["server"]["stderr"]


def test_judge_server_with_a_bad_judge_exits_2_with_one_line(runs):
    bad = runs["server_bad"]
    assert bad["status"] == 2, bad["stderr"][-3000:]
    assert "Traceback" not in bad["stderr"]
    last = bad["stderr"].strip().splitlines()[-1]
    assert last.startswith("error:") and MISSING_MODEL in last
