"""judges/code_exec.py: untrusted code scored by running it, and the machine unharmed: a correct program, a wrong
one, an infinite loop, a fork bomb, a memory hog, a program reading secrets and one opening a socket."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from judges.code_exec import (
    KINDS,
    SLOT_UID_BASE,
    CodeExecutionJudge,
    Limits,
    extract_code,
    isolation,
    normalize_tests,
    outputs_match,
    probe,
    run_locally,
    run_sandboxed,
)

FAST = Limits(wall_s=4.0, cpu_s=2, memory_mb=256, max_processes=16, output_mb=1)
ADD_TESTS = {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}


def conv(code: str, fence: str = "python") -> list[dict]:
    return [{"role": "user", "content": "Add two numbers."},
            {"role": "assistant", "content": f"Here it is:\n```{fence}\n{code}\n```\nDone."}]


def judge(**kw) -> CodeExecutionJudge:
    return CodeExecutionJudge(limits=FAST, **kw)


_PROBED: dict[str, str | None] = {}


def runnable(kind: str) -> str:
    """`kind` when that sandbox runs a program on this machine, else a skip saying why: the security tests run
    under every kind available here, not only the strongest (which isolation() picks for real runs)."""
    if kind not in _PROBED:
        _PROBED[kind] = probe(kind)
    if _PROBED[kind] is not None:
        pytest.skip(f"sandbox {kind!r} does not run here: {_PROBED[kind]}")
    return kind


def test_extract_code_takes_the_last_python_block():
    text = "```text\nnot code\n```\n```python\nprint(1)\n```\n```py\nprint(2)\n```"
    assert extract_code(text).strip() == "print(2)"
    assert extract_code("```\nx = 1\n```").strip() == "x = 1"
    assert extract_code("print(3)") == "print(3)"  # no fence, but it compiles
    assert extract_code("Sorry, I cannot write that.") is None and extract_code("") is None


def test_normalize_tests_reads_apps_layout_and_refuses_bad_tests():
    assert normalize_tests({"input_output": '{"inputs": ["1"], "outputs": ["1"]}'})["inputs"] == ["1"]
    with pytest.raises(ValueError, match="same length"):
        normalize_tests({"inputs": ["1"], "outputs": []})
    with pytest.raises(ValueError, match="no case"):
        normalize_tests({"inputs": [], "outputs": []})


def test_normalize_tests_refuses_values_of_the_wrong_type():
    bad = [
        ({"inputs": ["\ud800"], "outputs": ["3"]}, "not UTF-8 encodable"),  # would crash the stdin write
        ({"inputs": [None], "outputs": ["None"]}, "not text"),  # would become stdin "None"
        ({"inputs": ["1"], "outputs": [None]}, "not text"),
        ({"inputs": ["1"], "outputs": [{"a": 1}]}, "not text"),
        ({"inputs": [["1", 2]], "outputs": ["3"]}, "not text"),
        ({"fn_name": "f", "inputs": [[1]], "outputs": [float("nan")]}, "not a finite JSON value"),
        ({"fn_name": "f", "inputs": [[float("inf")]], "outputs": [1]}, "not a finite JSON value"),
        ({"fn_name": "f", "inputs": [[object()]], "outputs": [1]}, "not a finite JSON value"),
    ]
    for tests, why in bad:
        with pytest.raises(ValueError, match=why):
            normalize_tests(tests)
    assert normalize_tests({"inputs": [["1", "2"]], "outputs": [["3"]]})["inputs"] == [["1", "2"]]
    assert normalize_tests({"fn_name": "f", "inputs": [[1, "a"]], "outputs": [None]})["outputs"] == [None]


def test_unusable_tests_fail_their_item_only_and_the_batch_goes_on():
    j = judge()
    right = conv("a, b = map(int, input().split())\nprint(a + b)")
    refs = [{"inputs": ["\ud800"], "outputs": ["3"]}, ADD_TESTS, {"inputs": [None], "outputs": ["None"]},
            {"fn_name": "f", "inputs": [[1]], "outputs": [float("nan")]}]
    assert j.score([right] * 4, references=refs) == [None, 1.0, None, None]
    failures = j.failures.as_dict()
    assert failures["total"] == 3 and all(why.startswith("no usable tests") for why in failures["by_reason"])


def test_call_based_results_are_strict_on_bool_but_not_on_int_and_float():
    assert judge().score([conv("def f(x):\n    return True")],
                         references=[{"fn_name": "f", "inputs": [[1]], "outputs": [1]}]) == [0.0]
    tests = {"fn_name": "f", "inputs": [[1], [2], [3]], "outputs": [True, [1, False], 2]}
    right = conv("def f(x):\n    return [True, (1, False), 2.0][x - 1]")
    wrong = conv("def f(x):\n    return [1, [1, 0], 2][x - 1]")
    assert judge().score([right, wrong], references=[tests] * 2) == [1.0, 1 / 3]


def test_outputs_match_ignores_trailing_whitespace_only():
    assert outputs_match("3  \n\n", "3\n") and outputs_match("a\nb", ["a", "b"])
    assert not outputs_match("3 4", "3\n4") and not outputs_match("", "3")


def test_correct_wrong_and_partly_right_programs():
    j = judge()
    right = conv("a, b = map(int, input().split())\nprint(a + b)")
    wrong = conv("a, b = map(int, input().split())\nprint(a * b)")
    half = conv("a, b = map(int, input().split())\nprint(3)")
    assert j.score([right, wrong, half], references=[ADD_TESTS] * 3) == [1.0, 0.0, 0.5]
    assert j.outcomes["passed"] == 3 and j.outcomes["wrong_answer"] == 3
    assert judge(all_or_nothing=True).score([half], references=[ADD_TESTS]) == [0.0]
    assert j.last_item_info[0]["sandbox"] == isolation()


def test_all_or_nothing_runs_no_more_cases_of_a_response_once_one_failed():
    """Its reward is 0 whatever the rest give: a slow wrong program (or many cases) costs one failed run, not all."""
    tests = {"inputs": [f"{k} 0\n" for k in range(8)], "outputs": ["0\n"] + [f"{k}\n" for k in range(1, 8)]}
    wrong_first = conv("a, b = map(int, input().split())\nprint(a + 1)")
    j = CodeExecutionJudge(limits=FAST, all_or_nothing=True, max_workers=1)
    assert j.score([wrong_first, conv("a, b = map(int, input().split())\nprint(a + b)")],
                   references=[tests] * 2) == [0.0, 1.0]
    assert j.outcomes == {"wrong_answer": 1, "skipped": 7, "passed": 8}


def test_a_responses_cases_stop_once_its_time_budget_is_spent():
    """item_budget_s bounds one response's cases together: an infinite loop on 20 cases costs about one timeout,
    not 20; the cases not run are counted, not passed, and another response keeps its own budget."""
    tests = {"inputs": [f"{k} 0\n" for k in range(20)], "outputs": [f"{k}\n" for k in range(20)]}
    looping = conv("while True:\n    pass\n")
    right = conv("a, b = map(int, input().split())\nprint(a + b)")
    j = CodeExecutionJudge(limits=Limits(wall_s=1.0, cpu_s=2), item_budget_s=1.5, max_workers=1)
    start = time.perf_counter()
    assert j.score([looping, right], references=[tests, ADD_TESTS]) == [0.0, 1.0]
    assert j.outcomes == {"timeout": 2, "over_budget": 18, "passed": 2}  # 1 s, 2 s >= 1.5 s: the rest not run
    assert time.perf_counter() - start < 12
    assert j.last_item_info[0]["statuses"][-1] == "over_budget"
    # a budget the first case already spends leaves a quick program one case of its twenty
    tiny = CodeExecutionJudge(limits=FAST, item_budget_s=1e-9, max_workers=1)
    assert tiny.score([right], references=[tests]) == [pytest.approx(1 / 20)]
    with pytest.raises(ValueError, match="item_budget_s"):
        CodeExecutionJudge(item_budget_s=0)
    with pytest.raises(ValueError, match="item_budget_s"):
        CodeExecutionJudge(item_budget_s=float("nan"))


def test_call_based_tests_and_solution_classes():
    tests = {"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [3, 7]}
    plain = conv("def add(a, b):\n    print('debug output is ignored')\n    return a + b")
    leet = conv("class Solution:\n    def add(self, a, b):\n        return (a + b,)[0]")
    bad = conv("def add(a, b):\n    return a - b")
    assert judge().score([plain, leet, bad], references=[tests] * 3) == [1.0, 1.0, 0.0]


def test_a_program_that_breaks_the_result_reader_fails_alone_and_the_batch_goes_on():
    """Printed after the harness's own line, a nesting no JSON parser reads (RecursionError) is a wrong answer; a
    lone surrogate compiles but no file holds it (a syntax error): neither takes the good response's score away."""
    tests = {"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}
    deep = conv("import atexit, sys\n"
                "atexit.register(lambda: sys.stdout.write('\\n' + SENTINEL + '[' * 200000 + ']' * 200000))\n"
                "def add(a, b):\n    return a + b")
    good = conv("def add(a, b):\n    return a + b")
    surrogate = conv("def add(a, b):\n    return a + b  # \ud800")
    from judges.code_exec import SENTINEL

    deep[-1]["content"] = deep[-1]["content"].replace("SENTINEL", repr(SENTINEL))
    j = judge()
    assert j.score([deep, good, surrogate], references=[tests] * 3) == [0.0, 1.0, 0.0]
    assert j.outcomes["wrong_answer"] == 1 and j.outcomes["syntax_error"] == 1


def test_the_weak_rlimits_sandbox_needs_the_users_consent(monkeypatch):
    """Without bwrap or root the program would run as the judge's own user, able to read the expected outputs from
    the judge's memory: refused unless RM_CODE_EXEC_ALLOW_RLIMITS=1 (checked before anything runs)."""
    import judges.code_exec as ce

    monkeypatch.setattr(ce.os, "geteuid", lambda: 1000)
    monkeypatch.delenv(ce.ALLOW_RLIMITS, raising=False)
    monkeypatch.setattr(ce, "run_sandboxed", lambda *a, **k: pytest.fail("nothing may run"))
    assert "RM_CODE_EXEC_ALLOW_RLIMITS=1" in probe("rlimits")


def test_no_code_and_syntax_errors_score_zero_and_are_counted():
    j = judge()
    assert j.score([[{"role": "user", "content": "q"}, {"role": "assistant", "content": "I won't."}],
                    conv("def f(:\n  pass")], references=[ADD_TESTS] * 2) == [0.0, 0.0]
    assert j.outcomes["no_code"] == 1 and j.outcomes["syntax_error"] == 1


def test_an_item_without_tests_is_a_counted_failure():
    j = judge()
    assert j.score([conv("print(1)")], references=[None]) == [None]
    assert j.failures.total == 1


def test_an_infinite_loop_is_stopped_and_counted_as_a_timeout():
    start = time.perf_counter()
    result = run_locally("while True:\n    pass\n", "", FAST)
    assert result.status == "timeout" and time.perf_counter() - start < FAST.wall_s + 3


def test_a_sleeping_program_is_stopped_by_the_wall_clock():
    result = run_locally("import time\ntime.sleep(60)\n", "", Limits(wall_s=1.0, cpu_s=2))
    assert result.status == "timeout" and result.seconds < 5


def test_a_memory_hog_is_stopped():
    result = run_locally("x = bytearray(2 * 1024 ** 3)\nprint(len(x))\n", "", FAST)
    assert result.status == "memory"


def _processes_of(uid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_a_fork_bomb_is_contained_and_leaves_nothing_running(kind):
    runnable(kind)
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    before = len(list(Path("/proc").glob("[0-9]*")))
    result = run_sandboxed(bomb, "", Limits(wall_s=2.0, cpu_s=2, max_processes=16), kind)
    assert result.status in ("timeout", "runtime_error") and result.sandbox == kind
    def left() -> tuple[int, int]:
        return (len(list(Path("/proc").glob("[0-9]*"))) - before,
                sum(len(_processes_of(SLOT_UID_BASE + k)) for k in range(64)))

    deadline = time.monotonic() + 10  # killed processes linger until init reaps them
    while (left()[0] > 2 or left()[1]) and time.monotonic() < deadline:
        time.sleep(0.2)
    more, under_slot_uids = left()
    assert more <= 2, f"{more} processes left behind"
    assert under_slot_uids == 0, f"{under_slot_uids} processes left under the sandbox uids"


@pytest.mark.parametrize("kind", KINDS)
def test_the_program_runs_without_privileges(kind):
    """No capability and no_new_privs under every kind (as root, the program runs as a slot uid, never uid 0). The
    regression: root's bwrap left the program CapEff 1fffeffffff, CAP_SYS_ADMIN included."""
    runnable(kind)  # (rlimits as root never runs: probe refuses it)
    code = ("import os\nstatus = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
            "print(os.getuid(), int(status['CapEff'].strip(), 16), status['NoNewPrivs'].strip())\n")
    result = run_sandboxed(code, "", FAST, kind)
    assert result.status == "passed", result.stderr
    uid, caps, no_new_privs = result.stdout.split()
    assert caps == "0" and no_new_privs == "1"
    if os.geteuid() == 0:
        assert SLOT_UID_BASE <= int(uid) < SLOT_UID_BASE + 64


@pytest.mark.parametrize("kind", KINDS)
def test_no_exit_status_the_program_chooses_makes_its_run_a_sandbox_failure(kind):
    """A sandbox failure is a judge failure (None) rather than a zero: if a status the program can choose (exit 121,
    the old sentinel for "could not unshare") meant that, a policy could dodge its zero rewards."""
    runnable(kind)
    for code in (1, 121, 126, 127):
        result = run_sandboxed(f"import sys\nsys.exit({code})\n", "", FAST, kind)
        assert result.status == "runtime_error" and result.returncode == code


def test_as_root_the_program_never_runs_as_root():
    if os.geteuid() != 0:
        pytest.skip("not root")
    assert "as root" in probe("rlimits")
    assert isolation() != "rlimits"
    from judges.code_exec import sandbox_python, world_runnable

    python = sandbox_python()  # the resolved file: every folder above it searchable by the sandbox uid
    assert python == os.path.realpath(python) and world_runnable(python)


def test_only_bwrap_keeps_the_program_from_writing_outside_its_directory():
    runnable("bwrap")
    import tempfile

    target = Path(tempfile.mkdtemp(dir="/var/tmp"))  # outside /tmp, which bwrap replaces with its own
    try:
        target.chmod(0o777)  # a folder any user may write: the program's uid alone would not be stopped
        result = run_sandboxed(f"open({str(target / 'planted')!r}, 'w').write('x')\n", "", FAST, "bwrap")
        assert result.status == "runtime_error" and "No such file or directory" in result.stderr  # not there
        assert not (target / "planted").exists()
    finally:
        for child in target.iterdir():
            child.unlink()
        target.rmdir()


def test_under_bwrap_the_program_sees_no_project_or_data_folder():
    """A world-readable data file with the tests' expected outputs would be a reward the program did not earn:
    bwrap shows the system and the interpreter only (the standard library still imports)."""
    runnable("bwrap")
    project = Path(__file__).resolve().parents[1] / "pyproject.toml"
    program = f"import json, os\nprint(os.path.exists({str(project)!r}), os.path.exists('/work'), json.dumps([1]))\n"
    result = run_sandboxed(program, "", FAST, "bwrap")
    assert result.status == "passed", result.stderr
    assert result.stdout.split() == ["False", "False", "[1]"]


def test_secrets_in_the_environment_do_not_reach_the_program(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    result = run_locally("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))\n", "", FAST)
    assert result.status == "passed"
    assert "sk-secret-value" not in result.stdout and "HF_TOKEN" not in result.stdout
    assert "None" in result.stdout


@pytest.mark.parametrize("kind", ["bwrap", "netns+uid"])
def test_the_program_cannot_reach_the_network(kind):
    runnable(kind)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    got = []

    def accept():
        with contextlib.suppress(OSError):  # timed out: nobody connected
            got.append(server.accept())

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'stolen')\nprint('connected')\n")
    result = run_sandboxed(code, "", FAST, kind)
    thread.join(4)
    server.close()
    assert result.status == "runtime_error" and "connected" not in result.stdout
    assert not got, "the sandboxed program reached a socket on the host"


def test_output_floods_are_cut():
    result = run_locally("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "",
                         Limits(wall_s=4.0, cpu_s=3, output_mb=1))
    assert result.status in ("output_limit", "runtime_error", "timeout") and len(result.stdout) <= 1024 * 1024


def test_concurrent_runs_are_bounded_and_all_scored():
    j = CodeExecutionJudge(limits=FAST, max_workers=2)
    convs = [conv("a, b = map(int, input().split())\nprint(a + b)")] * 6
    assert j.score(convs, references=[ADD_TESTS] * 6) == [1.0] * 6


def test_the_working_directory_is_fresh_and_removed():
    code = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\nopen('left.txt', 'w').write('x')\n"
    result = run_locally(code, "", FAST)
    cwd = result.stdout.splitlines()[0]
    assert "rm-code-" in cwd and not os.path.exists(cwd)


def test_output_of_exactly_the_cap_passes_and_a_byte_more_is_the_output_limit_even_when_caught():
    limits = Limits(wall_s=4.0, cpu_s=3, output_mb=1)
    cap = 1024 * 1024
    exact = run_locally(f"import sys\nsys.stdout.write('x' * {cap})\n", "", limits)
    assert exact.status == "passed" and len(exact.stdout) == cap
    # more, with the write error caught and a clean exit: still over the cap, never "passed"
    over = run_locally(f"import sys\ntry:\n    sys.stdout.write('x' * {cap + 100})\n    sys.stdout.flush()\n"
                       "except OSError:\n    pass\n", "", limits)
    assert over.status == "output_limit" and len(over.stdout) == cap
    one = run_locally(f"import sys\nsys.stdout.write('x' * {cap + 1})\n", "", limits)  # the byte past the cap
    assert one.status == "output_limit"


def test_memory_is_told_by_the_traceback_not_by_a_mention_on_stderr():
    from judges.code_exec import raised_memory_error

    says = run_locally("import sys\nprint('MemoryError: just a log line', file=sys.stderr)\nprint(1)\n", "", FAST)
    assert says.status == "passed" and says.stdout == "1\n"
    other = run_locally("import sys\nprint('MemoryError', file=sys.stderr)\nraise ValueError('bad')\n", "", FAST)
    assert other.status == "runtime_error"
    assert raised_memory_error("Traceback (most recent call last):\n  ...\nMemoryError\n")
    assert raised_memory_error("Traceback ...\nMemoryError: out of memory\n\n")
    assert not raised_memory_error("MemoryError\nTraceback ...\nValueError: bad\n") and not raised_memory_error("")


def test_under_bwrap_tmp_and_shared_memory_are_capped():
    """/tmp and /dev/shm are memory-backed: unsized, a program could fill the machine's RAM with files."""
    from judges.code_exec import bwrap_sizes_tmpfs

    runnable("bwrap")
    if not bwrap_sizes_tmpfs():
        pytest.skip("this bwrap cannot size a tmpfs")
    limits = Limits(wall_s=8.0, cpu_s=4, memory_mb=256, max_processes=16, output_mb=1, tmp_mb=4)
    for folder in ("/tmp", "/dev/shm"):
        # files under the per-file size limit (output_mb), 8 MB in all: the folder's size stops them
        program = (f"try:\n    for k in range(16):\n        open(f'{folder}/f{{k}}', 'wb').write(b'x' * 512 * 1024)\n"
                   "    print('wrote')\nexcept OSError as e:\n    print('refused', e.errno)\n")
        result = run_sandboxed(program, "", limits, "bwrap")
        assert result.status == "passed" and result.stdout.split() == ["refused", "28"], result  # ENOSPC


def test_as_root_every_judge_shares_one_slot_folder_whatever_its_tmpdir(monkeypatch, tmp_path):
    if os.geteuid() != 0 or not Path("/run").is_dir():
        pytest.skip("as root, with /run")
    import tempfile

    from judges.code_exec import sandbox_slot

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with sandbox_slot() as slot:
        assert (Path("/run/rm-code-slots") / f"{slot}.lock").exists()
    assert not (tmp_path / "rm-code-slots").exists()
