"""Progress bars for the loops a user waits on (scoring, judge calls, labelling, embedding, gating training).

    from rm_core.progress import progress
    for chunk in progress(chunks, total=n, desc="scoring", unit="pair"):   # tqdm: count, rate, ETA
        ...
    with progress(total=n, desc="judge calls", unit="call", leave=False) as bar:
        bar.update(k)

One rule for every bar: off with `--quiet` (`set_quiet()`; every CLI that has a waited-on loop takes the flag:
rm_core.tracking.add_run_args, rm_core.args.ReportingArguments; transformers' own bars go too), off when the
environment variable RM_QUIET is set (1, true, yes), off when stderr is not a terminal (a log file, a CI job: tqdm's
`disable=None`), off when the caller says so (`enabled=False`: a process other than the main one). Bars write to
stderr, so stdout stays the results. A Trainer recipe's own loops after training follow its --disable_tqdm
(`quiet_while`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

_quiet = False
_TRUE = {"1", "true", "yes", "on"}


def set_quiet(quiet: bool = True) -> None:
    """Turn every bar of this process off (the CLIs' --quiet; transformers' and huggingface_hub's bars too, such
    as "Loading weights") or this module's back to the default."""
    global _quiet
    _quiet = bool(quiet)
    if is_quiet():
        _library_bars_off()


def _library_bars_off() -> None:
    """transformers' and huggingface_hub's own bars off, without importing either just for that."""
    import sys

    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # and huggingface_hub's
    elif "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    else:  # read by huggingface_hub when it is imported (and by transformers through it)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


@contextmanager
def quiet_while(flag: bool = True):
    """Bars off inside the block when `flag` (a Trainer stage's --disable_tqdm for its own evaluation loops)."""
    global _quiet
    before = _quiet
    _quiet = before or bool(flag)
    try:
        yield
    finally:
        _quiet = before


def is_quiet() -> bool:
    return _quiet or os.environ.get("RM_QUIET", "").strip().lower() in _TRUE


def progress(iterable=None, total: int | None = None, desc: str | None = None, unit: str = "it",
             enabled: bool = True, leave: bool = True, **kwargs):
    """A tqdm bar over `iterable` (or a manual one with `total`, updated with `.update(n)`), or a silent stand-in
    with the same interface when quiet, when stderr is not a terminal, or when not `enabled`."""
    from tqdm.auto import tqdm

    disable = True if (is_quiet() or not enabled) else None  # None: tqdm turns itself off on a non-TTY
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, dynamic_ncols=True,
                **kwargs)


def write(message: str) -> None:
    """Print a line on stderr without breaking a bar that is showing (tqdm.write)."""
    import sys

    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
