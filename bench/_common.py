"""What the bench scripts share: run a command with its output in a log, timed, with its peak memory.

    from bench._common import ROOT, rss_mib, run_logged, run_seconds

The scripts run from the repository root as `python -m bench.<name>` (bench/ is a package there, not an
installed one), so this module imports as `bench._common` without any sys.path edit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root: commands run there


@dataclass(frozen=True)
class Measured:
    wall_seconds: float  # wall clock, start to exit
    peak_rss_mib: float  # ru_maxrss from os.wait4: the largest resident set of the command and of the
    #                      descendants it waited for (what `/usr/bin/time -v` reports as its maximum)


def run_logged(cmd: list, log: Path | None = None, *, cwd: Path = ROOT, env: dict | None = None) -> Measured:
    """Run `cmd` (items made str) in `cwd`, stdout and stderr into `log` (None: this terminal), after printing
    it as `$ cmd`. A non-zero exit raises RuntimeError with the command and the log's last 40 lines."""
    cmd = [str(c) for c in cmd]
    print("$ " + " ".join(cmd), flush=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") if log is not None else contextlib.nullcontext() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]) if log else ""
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}" + (f"\nsee {log}:\n{tail}" if log else ""))
    return Measured(wall, usage.ru_maxrss / 1024)


def run_seconds(cmd: list, log: Path | None = None, **kwargs) -> float:
    """run_logged's wall seconds, to 0.1 s."""
    return round(run_logged(cmd, log, **kwargs).wall_seconds, 1)


def rss_mib(pid: int) -> float:
    """The current resident set (VmRSS) of a running process, in MiB (NaN when /proc does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")
