"""The install: requirements/lock.txt pins every package the ranges name, inside those ranges; the core
libraries have upper bounds; scripts/check_lock.py catches an environment that drifted from the lock."""

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
# the libraries whose minor releases have broken this project (transformers 5.24 renamed an output field)
BOUNDED = {"torch", "transformers", "trl", "accelerate", "datasets", "peft", "huggingface-hub", "deepspeed"}
# newer than the lock and tested (every tier, in a venv of the newest versions the ranges allow): torch's lock stays
# on the release whose CPU wheel CI installs (README "Installs")
TESTED_BEYOND_LOCK = {"torch": Version("2.14.1")}


def _ranges() -> dict[str, Requirement]:
    out = {}
    for path in sorted((REPO / "requirements").glob("*.txt")):
        if path.name in ("lock.txt", "test-verl.txt", "test-labelstudio.txt"):  # the lock; test venvs outside it
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                out[canonicalize_name(req.name)] = req
    return out


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


def test_lock_pins_every_ranged_package_inside_its_range():
    ranges, pins = _ranges(), _lock()
    assert "torch" in pins and "transformers" in pins
    for name, req in ranges.items():
        assert name in pins, f"{name} is in requirements/ but not in requirements/lock.txt (bash scripts/lock.sh)"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock has {name}=={pins[name]}, range {req}"


def test_core_libraries_have_upper_bounds_the_lock_reaches_into():
    """An upper bound is the next minor after a tested version: the locked version (or one tested beyond it, listed
    in TESTED_BEYOND_LOCK and inside the range) is the newest minor allowed."""
    ranges, pins = _ranges(), _lock()
    for name in BOUNDED:
        uppers = [Version(s.version) for s in ranges[name].specifier if s.operator == "<"]
        assert uppers, f"{name} has no upper bound in requirements/"
        tested = max(pins[name], TESTED_BEYOND_LOCK.get(name, pins[name]))
        assert ranges[name].specifier.contains(tested), f"{name}: the tested {tested} is outside {ranges[name]}"
        assert (tested.major, tested.minor + 1) == (uppers[0].major, uppers[0].minor), \
            f"{name}: bound <{uppers[0]} but the tests ran on {tested}; bound it at the next minor of a tested version"


def test_pyproject_extras_agree_with_requirements():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    ranges = _ranges()
    for spec in (s for group in extras.values() for s in group):
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name in ranges and ranges[name].specifier:
            assert req.specifier == ranges[name].specifier, f"pyproject says {req}, requirements/ says {ranges[name]}"


def test_check_lock_names_a_drifted_package(tmp_path):
    from importlib.metadata import version

    good = tmp_path / "good.txt"
    good.write_text(f"# a comment\npackaging=={version('packaging')}\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("packaging==0.0.1\nno-such-package-here==1.0\n")
    script = str(REPO / "scripts" / "check_lock.py")
    assert subprocess.run([sys.executable, script, str(good)], capture_output=True).returncode == 0
    proc = subprocess.run([sys.executable, script, str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "packaging:" in proc.stderr and "lock says 0.0.1" in proc.stderr
    assert "no-such-package-here: not installed" in proc.stderr


def test_setup_env_installs_from_the_lock_and_latest_on_request():
    text = (REPO / "scripts" / "setup_env.sh").read_text()
    assert '-r "$ROOT/requirements/lock.txt"' in text and "check_lock.py" in text
    assert "RM_DEPS" in text and "--upgrade" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert "run_tests.sh" in ci and "RM_DEPS=latest" not in ci
