"""The import rules of the layers (docs: README.md "Layout", judges/registry.py).

- rm_core <- judges <- families; eval builds on rm_core and judges. Nothing in rm_core, judges or eval imports a
  family package: families are found by name (judges/registry.py), so the strings there are not imports.
- `import judges` imports no family; `judges.load` of a Bradley-Terry checkpoint imports no other family.
- Every rm_family a checkpoint can say (rm_core.hub.RM_FAMILIES) names a judge class that resolves, and a
  package outside this repository can add one through the entry-point group.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAMILY_PACKAGES = ("bradley_terry_rm", "pair_pm", "armo_rm", "math_rm", "odin_rm", "decision_tree")
SHARED_LAYERS = ("rm_core", "judges", "eval")
# what each shared layer may import from this repository (besides itself)
ALLOWED = {"rm_core": set(), "judges": {"rm_core"}, "eval": {"rm_core", "judges"}}
PACKAGES = SHARED_LAYERS + FAMILY_PACKAGES


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in a file, at any depth (lazy imports inside functions included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def python_files(package: str) -> list[Path]:
    """The package's own .py files: tracked or untracked but not git-ignored (a local venv under bench/ is not
    ours); every .py under it where the tree is not a git checkout."""
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", f"{package}/*.py"],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        return sorted((REPO / package).rglob("*.py"))
    return sorted(REPO / line for line in proc.stdout.splitlines() if (REPO / line).is_file())


def package_imports(package: str) -> dict[str, set[str]]:
    """{file: this repository's packages it imports (other than its own)}."""
    return {str(f.relative_to(REPO)): (imported_packages(f) & set(PACKAGES)) - {package}
            for f in python_files(package)}


def fresh_python(code: str) -> str:
    """stdout of `code` in a new interpreter (nothing imported by this test process leaks into it)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


LOADED_FAMILIES = (f"import json, sys; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & "
                   f"set({list(FAMILY_PACKAGES)!r}))))")


@pytest.mark.parametrize("layer", SHARED_LAYERS)
def test_shared_layers_import_no_family_and_only_the_layers_below(layer):
    bad = {f: sorted(pkgs - ALLOWED[layer]) for f, pkgs in package_imports(layer).items() if pkgs - ALLOWED[layer]}
    assert not bad, f"{layer}/ may import only {sorted(ALLOWED[layer]) or 'nothing'} of this repository: {bad}"


def test_the_package_import_graph_has_no_cycle():
    graph = {p: set().union(*package_imports(p).values()) for p in PACKAGES if (REPO / p).is_dir()}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for package in graph:
        if package not in state:
            visit(package, [])


def test_import_judges_imports_no_family():
    assert json.loads(fresh_python("import judges, judges.registry\n" + LOADED_FAMILIES)) == []


def test_loading_a_bradley_terry_judge_imports_no_other_family(tmp_path):
    from rm_core.hub import describe_checkpoint
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=3)
    describe_checkpoint(model, tokenizer, "bradley_terry")
    model.save_pretrained(tmp_path / "bt")
    tokenizer.save_pretrained(tmp_path / "bt")
    code = (f"import judges\njudge = judges.load({str(tmp_path / 'bt')!r})\n"
            "assert type(judge).__name__ == 'BradleyTerryJudge', type(judge)\n"
            "assert judge.score([[{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'yo'}]])[0] "
            "is not None\n" + LOADED_FAMILIES)
    assert json.loads(fresh_python(code)) == ["bradley_terry_rm"]


def test_the_registry_names_a_judge_for_every_rm_family_and_each_resolves():
    from judges.base import Judge
    from judges.registry import FAMILIES, judge_class
    from rm_core.hub import RM_FAMILIES

    assert set(FAMILIES) == set(RM_FAMILIES)
    for family, target in FAMILIES.items():
        module = target.partition(":")[0]
        assert module.split(".")[0] in FAMILY_PACKAGES and module.endswith(".judge"), target  # <family>/judge.py
        cls = judge_class(family)
        assert isinstance(cls, type) and issubclass(cls, Judge) and callable(cls.from_pretrained), (family, cls)


def test_resolving_a_family_with_hf_classes_registers_its_auto_classes_and_nothing_else():
    code = ("from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
            "from judges.registry import judge_class\n"
            "judge_class('odin')\n"
            "assert 'odin_rm' in CONFIG_MAPPING and 'armo_rm' not in CONFIG_MAPPING\n"
            "judge_class('armo')\n"
            "assert 'armo_rm' in CONFIG_MAPPING\n" + LOADED_FAMILIES)
    assert json.loads(fresh_python(code)) == ["armo_rm", "odin_rm"]


def test_a_family_outside_the_repository_registers_through_the_entry_point_group(monkeypatch, tmp_path):
    import judges
    from judges.base import Judge
    from judges.registry import ENTRY_POINT_GROUP, judge_class, known_families

    class OutsideJudge(Judge):
        @classmethod
        def from_pretrained(cls, name_or_path, **kwargs):
            judge = cls()
            judge.loaded_from, judge.kwargs = name_or_path, kwargs
            return judge

        def _score(self, conversations, references):
            return [1.0] * len(conversations)

    module = types.ModuleType("outside_family_judge")
    module.OutsideJudge = OutsideJudge
    monkeypatch.setitem(sys.modules, "outside_family_judge", module)
    asked = []

    def entry_points(**selection):
        asked.append(selection)
        eps = [metadata.EntryPoint("outside", "outside_family_judge:OutsideJudge", ENTRY_POINT_GROUP),
               metadata.EntryPoint("bradley_terry", "outside_family_judge:OutsideJudge", ENTRY_POINT_GROUP)]
        return metadata.EntryPoints(ep for ep in eps if ep.group == selection.get("group"))

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    assert judge_class("outside") is OutsideJudge and {"group": ENTRY_POINT_GROUP} in asked
    assert "outside" in known_families()
    assert judge_class("bradley_terry").__name__ == "BradleyTerryJudge"  # an installed package cannot replace ours
    (tmp_path / "config.json").write_text(json.dumps({"rm_family": "outside"}))
    judge = judges.load(str(tmp_path), batch_size=2)
    assert isinstance(judge, OutsideJudge) and judge.loaded_from == str(tmp_path) and judge.kwargs == {"batch_size": 2}
    with pytest.raises(ValueError, match=r"no judge registered for rm_family 'nope'; known: .*'outside'"):
        judge_class("nope")


def test_register_judge_at_run_time_takes_precedence():
    from judges.base import JUDGE_FAMILIES, Judge, register_judge
    from judges.registry import judge_class

    fake = register_judge("odin")(type("Fake", (Judge,), {}))
    try:
        assert judge_class("odin") is fake
    finally:
        JUDGE_FAMILIES.pop("odin", None)
    assert judge_class("odin").__name__ == "OdinJudge"


def shared_block_pairs(output: str) -> list[tuple[str, str, str]]:
    """(row, folder, folder) for each pair the `duplicates` command lists between two family folders, or between
    a family folder and a shared layer (tests and bench aside)."""
    import re

    out = []
    for line in output.splitlines():
        m = re.match(r"D\d+ (\S+?):\d+-\d+ ~ (\S+?):\d+-\d+", line)
        if not m:
            continue
        a, b = (path.split("/")[0] for path in m.groups())
        if a == b or not {a, b} & set(FAMILY_PACKAGES) or not {a, b} <= set(PACKAGES):
            continue
        out.append((line, a, b))
    return out


def test_shared_block_pairs_are_read_from_the_rows():
    rows = ("3 pairs of places (9 files read)\n"
            "D1 pair_pm/train.py:1-9 ~ math_rm/training.py:3-11 shape\n"
            "D2 odin_rm/judge.py:5-12 ~ odin_rm/trainer.py:7-14\n"
            "D3 eval/runner.py:1-8 ~ judges/cli.py:1-8 shape boilerplate\n"
            "D4 tests/test_x.py:1-8 ~ armo_rm/data.py:1-8\n"
            "D5 rm_core/models.py:1-6 ~ decision_tree/judge.py:9-14 (+1 more runs)\n")
    assert [(a, b) for _, a, b in shared_block_pairs(rows)] == [("pair_pm", "math_rm"), ("rm_core", "decision_tree")]


def test_no_block_of_six_lines_is_shared_between_families_or_a_family_and_a_shared_layer():
    """Issue 18, point 6: what two families (or a family and rm_core/judges/eval) both need is written once, in the
    shared layer. The `duplicates` tool lists pairs of places sharing six or more lines (the same, or the same
    shape with other names); run `duplicates --most 200` in the repository root to see them all."""
    import shutil

    if shutil.which("duplicates") is None:
        pytest.skip("the `duplicates` command is not on PATH")
    proc = subprocess.run(["duplicates", "--most", "200", "--seconds", "120"], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "more pairs)" not in proc.stdout, "raise --most: some pairs were not listed"
    assert "incomplete:" not in proc.stdout, proc.stdout[-2000:]
    bad = [row for row, _, _ in shared_block_pairs(proc.stdout)]
    assert not bad, "blocks shared across family folders (share them in rm_core, judges or eval):\n" + "\n".join(bad)


def test_no_private_name_is_imported_across_modules():
    """A name with a leading underscore is its module's own: what another module of this repository needs from it
    is made public (or moved)."""
    ours = (*PACKAGES, "bench")
    bad = []
    for package in (*ours, "tests"):
        for path in python_files(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                        and (node.module.split(".")[0] in ours or node.module.startswith("test_"))):
                    bad += [f"{path.relative_to(REPO)}:{node.lineno} from {node.module} import {alias.name}"
                            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not bad, "\n".join(bad)
