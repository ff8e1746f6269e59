"""User errors: bad files, missing paths, empty data sets. A command prints them as one line, never a traceback.

    raise UserInputError(f"{path} line 3: not valid JSON (...)")     # anywhere below a command
    check_local_path(args.model, "--model")                          # before anything is loaded

    @cli_entry                                                       # a console script's main(argv)
    def main(argv=None): ...

    def cli(): run_recipe(main, make_parser)                         # a recipe's console script / `__main__`

A command prints `error: <message>` on stderr and exits 2 for a UserInputError, 3 for a TooManyFailedError (a
long job that wrote what it got but saw more failed items than it allows); every other exception keeps its
traceback (it is a bug, or a failure worth the whole story). Called from Python, the functions below a command
raise as usual.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from datetime import timedelta
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_TOO_MANY_FAILED = 3

# Endings that only a file name has (a Hub id never ends like this).
_FILE_ENDINGS = (".json", ".jsonl", ".gz", ".parquet", ".csv", ".tsv", ".txt", ".arrow", ".safetensors", ".bin",
                 ".pt", ".gguf", ".jinja", ".yaml", ".yml")


class UserInputError(ValueError):
    """A mistake in what the user gave (a file, a path, a data set): the message says which and what is wrong."""


class RunFailed(RuntimeError):
    """A run that cannot finish as asked for a reason the message says in full (a diverged training run, more
    judge failures than allowed): one line on stderr and exit code 1, no traceback."""


class MissingPathError(UserInputError, FileNotFoundError):
    """A local file or folder that does not exist, or lacks the file asked for."""


class TooManyFailedError(RuntimeError):
    """A long job (judging, labelling, sampling) finished and stored everything it got, but more than its allowed
    share of items failed (an endpoint down, a model erroring): the message names the count and share; a rerun
    asks the failed items again (rm_core.resume.check_failed_share)."""

    exit_code = EXIT_TOO_MANY_FAILED


def looks_like_local_path(name: str) -> bool:
    """True when `name` can only mean a local path: absolute, ./ ../ ~, a backslash, two or more slashes, a file
    ending, or not a valid Hub repo id. "org/name" stays ambiguous (a Hub id) and is False."""
    name = str(name)
    if os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or name in (".", "..") or "\\" in name:
        return True
    if name.count("/") >= 2 or name.lower().endswith(_FILE_ENDINGS):
        return True
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except Exception:  # HFValidationError: cannot be a Hub id, so it was meant as a path
        return True
    return False


def check_local_path(name: str, what: str) -> None:
    """Raise MissingPathError ("no such file or directory") when `name` is meant as a local path and is absent.
    A name that may be a Hub id passes: the Hub (or its offline cache) decides."""
    if name and not Path(os.path.expanduser(str(name))).exists() and looks_like_local_path(name):
        raise MissingPathError(f"{what} {name}: no such file or directory")


def cli_entry(main):
    """Wrap a command's main: a UserInputError prints `error: <message>` on stderr and exits 2, a
    TooManyFailedError likewise and exits 3; at exit a CPU launch's process group is ended (end_process_group),
    waiting for the other ranks only if the last command returned."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        global _last_command_ok, _teardown_registered
        ok = False
        try:
            result = main(*args, **kwargs)
            ok = True
        except (UserInputError, TooManyFailedError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(getattr(err, "exit_code", EXIT_USER_ERROR)) from None
        finally:  # also when a command that called another (which succeeded) fails itself
            _last_command_ok = ok
            if not _teardown_registered:  # registered late, so it runs before earlier exit hooks
                _teardown_registered = bool(atexit.register(_end_process_group_at_exit))
        return result

    return wrapper


# At the interpreter's exit (not at a command's return, so a Python caller may run several commands under one
# launch), the process group ends; the ranks wait for each other first if the last command returned, a rank whose
# command raised does not.
_last_command_ok = False
_teardown_registered = False


def _end_process_group_at_exit() -> None:
    # sys.last_value: the interpreter is exiting on an uncaught exception (a Python caller's own code failed after
    # the command): that rank should not wait either.
    end_process_group(wait=_last_command_ok and getattr(sys, "last_value", None) is None)


# A rank that finished waits this long for the others (a final save or Hub upload on the main process can take
# longer than gloo's default 30 minutes).
END_BARRIER_TIMEOUT = timedelta(days=1)


def end_process_group(wait: bool = True) -> None:
    """At a multi-process CPU (gloo) command's exit the group is destroyed, so no rank tears its gloo connections
    down while another still uses them, and no gloo thread is left for the interpreter's exit to abort on
    ("terminate called without an active exception": a two-process eval_report's rank 1 once after every score was
    written; a failing command's rank once, exit -6 instead of 2). With `wait` (after success) every rank first
    waits for the others; a rank that failed only ends its own side, at once. Other backends (NCCL) are left to
    torch as before."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_backend() != "gloo":
        return
    if wait:
        try:
            dist.monitored_barrier(timeout=END_BARRIER_TIMEOUT)
        except RuntimeError as err:  # another rank failed and left: its own error says why; this rank's work is done
            print(f"warning: not every rank reached the end ({' '.join(str(err).split())[:200]})", file=sys.stderr,
                  flush=True)
    dist.destroy_process_group()


def run_cli(main, *args, **kwargs):
    """Run `main(*args)` as a command (see `cli_entry`)."""
    return cli_entry(main)(*args, **kwargs)


def run_recipe(main, make_parser=None) -> None:
    """A recipe's command (its `cli()`, also run by `python <family>/<script>.py` and `python -m ...`): the
    tokenizers fork warning off, then `main` run as a command (run_cli: a user error prints one line) on what
    `make_parser()` (a TrlParser: `--config recipe.yaml`, flags override) parses from the command line, or on
    nothing when main parses sys.argv itself. main's return value is for Python callers, not an exit status."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = make_parser().parse_args_and_config() if make_parser is not None else ()

    def checked_main(*parsed):
        check_recipe_paths(*parsed)
        return main(*parsed)

    run_cli(checked_main, *args)


def check_output_dir(path, what: str = "--output_dir") -> None:
    """An output folder that exists as a file is a user error now, not a FileExistsError deep in a write."""
    if path and Path(os.path.expanduser(str(path))).is_file():
        raise UserInputError(f"{what} {path} is a file: give a folder (it is created when missing)")


def check_recipe_paths(*parsed) -> None:
    """Before anything is loaded: the paths a recipe's parsed arguments name (the base model, the data set, the
    output folder), so a typo costs a line, not a model load first (check_local_path, check_output_dir)."""
    for args in parsed:
        for field, what in (("model_name_or_path", "--model_name_or_path"), ("dataset_name", "--dataset_name")):
            value = getattr(args, field, None)
            if isinstance(value, str) and value != "builtin":
                check_local_path(value, what)
        check_output_dir(getattr(args, "output_dir", None))


def int_at_least(minimum: int):
    """argparse type: an integer >= minimum (argparse then prints one line and exits 2 for anything else), e.g.
    `type=int_at_least(1)` for a count where 0 would silently mean "all" or nothing."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (a timeout of 0, a negative one or NaN would mean "never" or "at
    once" without a word)."""
    import argparse

    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (a sampling temperature: NaN or -1 would silently mean greedy)."""
    import argparse

    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is below 0")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN or inf would silently switch a rule off)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
