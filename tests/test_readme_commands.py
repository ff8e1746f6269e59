"""Every command the READMEs show still starts: its `--help` exits 0 in a fresh process.

Commands come from README.md and */README.md, in code blocks and inline code: console scripts of
pyproject.toml (`eval_reward_bench ...`, `rm-train-bt ...`), `python x/y.py ...`, `python -m x.y ...` and
`accelerate launch [options] x/y.py|-m x.y ...` (the script or module it runs). Each module is started once, a
few at a time, in the first of these forms the READMEs use: as a file, with -m, as a console script (the
other forms reach the same `__main__`/`cli()`; test_console_scripts_resolve checks every console script's target),
and the Bradley-Terry recipe in all three.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md"))]
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")


def command_lines(text: str):
    """Shell lines of the non-Python code blocks (continuations joined), then the inline code spans."""
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if lang not in ("python", "py", "json", "yaml"):
            yield from body.replace("\\\n", " ").splitlines()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", prose)


def entry_point(line: str) -> tuple[str, str] | None:
    """("script" | "module" | "file", name) of a command line, or None when it is not one of ours."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    while words and ENV_ASSIGNMENT.fullmatch(words[0]):
        words.pop(0)
    if not words:
        return None
    if words[0] in SCRIPTS:
        return ("script", words[0])
    if words[0] in ("python", "python3"):
        rest = words[1:]
    elif words[:2] == ["accelerate", "launch"]:  # skip the launcher's own options
        rest = words[2:]
        while rest and rest[0] != "-m" and not rest[0].endswith(".py"):
            rest.pop(0)
    else:
        return None
    if len(rest) >= 2 and rest[0] == "-m":
        return ("module", rest[1])
    if rest and rest[0].endswith(".py"):
        return ("file", rest[0])
    return None


def readme_commands() -> dict[tuple[str, str], str]:
    """{entry point: where it was first seen}."""
    found: dict[tuple[str, str], str] = {}
    for readme in READMES:
        for line in command_lines(readme.read_text(encoding="utf-8")):
            entry = entry_point(line)
            if entry is not None:
                found.setdefault(entry, readme.relative_to(ROOT).as_posix())
    return found


def module_of(kind: str, name: str) -> str:
    if kind == "script":
        return SCRIPTS[name].split(":")[0]
    return name if kind == "module" else name.removesuffix(".py").replace("/", ".")


COMMANDS = readme_commands()
FORMS = {"file": 0, "module": 1, "script": 2}
RUNS: dict[str, tuple[str, str]] = {}  # module -> the one command form started for it
for _entry in sorted(COMMANDS, key=lambda e: FORMS[e[0]]):
    RUNS.setdefault(module_of(*_entry), _entry)
THREE_WAYS = [("file", "bradley_terry_rm/train.py"), ("module", "bradley_terry_rm.train"), ("script", "rm-train-bt")]
STARTED = list(RUNS.values()) + [e for e in THREE_WAYS if e not in RUNS.values()]


def argv(kind: str, name: str) -> list[str]:
    if kind == "script":
        return [str(Path(sys.executable).with_name(name)), "--help"]
    if kind == "module":
        return [sys.executable, "-m", name, "--help"]
    return [sys.executable, name, "--help"]


@pytest.fixture(scope="module")
def help_runs() -> dict[tuple[str, str], subprocess.CompletedProcess]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}

    def run(entry):
        return subprocess.run(argv(*entry), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:  # mostly import time (torch, transformers, trl)
        return dict(zip(STARTED, pool.map(run, STARTED)))


def test_the_readmes_show_every_kind_of_command():
    kinds = {kind for kind, _ in COMMANDS}
    assert kinds == {"script", "module", "file"}, sorted(COMMANDS)
    assert set(THREE_WAYS) <= set(COMMANDS) and ("script", "eval_reward_bench") in COMMANDS


@pytest.mark.parametrize("entry", STARTED, ids=[f"{kind}:{name}" for kind, name in STARTED])
def test_readme_command_help(entry, help_runs):
    kind, name = entry
    if kind == "script":
        assert Path(argv(kind, name)[0]).is_file(), f"console script {name} is not installed: pip install -e . --no-deps"
    proc = help_runs[entry]
    assert proc.returncode == 0, f"{' '.join(argv(kind, name))} (from {COMMANDS[entry]}):\n{proc.stderr[-3000:]}"
    assert "usage:" in proc.stdout.lower()


def test_console_scripts_resolve():
    """The console scripts installed for this project are exactly pyproject.toml's (a stale editable install lacks
    new ones: pip install -e . --no-deps), and each one's target is a top-level function of its module (read from
    the source: importing every recipe here would cost seconds)."""
    eps = [ep for ep in importlib.metadata.distribution("reward-models").entry_points if ep.group == "console_scripts"]
    assert {ep.name: ep.value for ep in eps} == SCRIPTS
    for ep in eps:
        assert Path(sys.executable).with_name(ep.name).is_file(), ep.name
        tree = ast.parse((ROOT / f"{ep.module.replace('.', '/')}.py").read_text(encoding="utf-8"))
        assert ep.attr in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, ep.value
