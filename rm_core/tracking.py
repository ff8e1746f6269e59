"""Experiment tracking for the stages the Trainer does not run (ArmoRM gating, the decision-tree fit, the eval_*
commands and eval_report, the GRPO held-out evaluation): `--report_to none|wandb|trackio`, as the Trainer stages.

    add_run_args(parser); args = parser.parse_args()      # --quiet, --report_to, --run_name on an argparse CLI
    apply_run_args(args)                                  # --quiet; an unknown or uninstalled backend: one line
    with start_run(args.report_to, name="fit-tree", config=vars(args)) as tracker:
        tracker.log({"loss": 0.3}, step=10)               # a curve
        tracker.log_table("cv_accuracy", rows)            # list of dicts
        tracker.summary({"accuracy": 0.81})               # final numbers (nested dicts flattened to a/b/c)
    # finish() on leaving the block (a failed block marks the run failed)

Default "none", as the Trainer's (transformers >= 5). The project is $WANDB_PROJECT / $TRACKIO_PROJECT, else
"huggingface" (the Trainer's default), so a training run and its evaluations land side by side. wandb and trackio
are imported only when asked for; a run already open in this process (the Trainer's, before the GRPO held-out
evaluation) is written to and left open. WANDB_MODE=offline writes the run under $WANDB_DIR without a network.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping

BACKENDS = ("wandb", "trackio")
CHOICES = ("none", *BACKENDS)
DEFAULT_PROJECT = "huggingface"  # transformers' WandbCallback / TrackioCallback default
REPORT_TO_HELP = ("Where to log metrics and final numbers: none (default, as the Trainer stages), wandb or trackio "
                  "(both: wandb trackio); project $WANDB_PROJECT / $TRACKIO_PROJECT, else huggingface. The package "
                  "must be installed (pip install wandb / trackio).")
QUIET_HELP = "No progress bars (also off when stderr is not a terminal, or with RM_QUIET=1)."


def add_run_args(p, tracking: bool = True):
    """--quiet (and, with `tracking`, --report_to and --run_name) on an argparse CLI; the command calls
    `apply_run_args(args)` once they are parsed. (Config dataclasses: rm_core.args.ReportingArguments.)"""
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    if tracking:
        p.add_argument("--report_to", nargs="+", default=["none"], choices=CHOICES, help=REPORT_TO_HELP)
        p.add_argument("--run_name", default=None, help="the tracked run's name (--report_to)")
    return p


def apply_run_args(args) -> None:
    """After parsing: --quiet turns the progress bars off (rm_core.progress); --report_to must name installed
    backends (else one line saying what to pip install, before anything is loaded)."""
    from rm_core.progress import set_quiet

    set_quiet(getattr(args, "quiet", False))
    check_report_to(getattr(args, "report_to", None))


def normalize_report_to(report_to) -> list[str]:
    """["wandb", ...] from "wandb", "wandb,trackio", ["wandb", "trackio"] or None/"none"/[] (no tracking)."""
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    out = []
    for name in (n.strip() for item in names for n in str(item).split(",")):
        if name and name != "none" and name not in out:
            out.append(name)
    return out


def check_report_to(report_to) -> list[str]:
    """The backends asked for, each known and installed; else a UserInputError saying what to pip install."""
    import importlib.util

    from rm_core.errors import UserInputError

    names = normalize_report_to(report_to)
    for name in names:
        if name not in BACKENDS:
            raise UserInputError(f"--report_to {name}: unknown; use one of {', '.join(CHOICES)}")
        if importlib.util.find_spec(name) is None:
            raise UserInputError(f"--report_to {name}: {name} is not installed (pip install {name})")
    return names


def trainer_report_to(report_to) -> list[str]:
    """A Trainer config's report_to (a list, "all", "none", other integrations such as tensorboard) cut to the
    backends this module writes to: what a Trainer stage's own evaluation after training reports to."""
    import importlib.util

    names = normalize_report_to(report_to)
    if "all" in names:
        return [n for n in BACKENDS if importlib.util.find_spec(n) is not None]
    return [n for n in names if n in BACKENDS]


def flatten(metrics: Mapping, prefix: str = "") -> dict[str, float | int | str | bool]:
    """{"a": {"b": 1}} -> {"a/b": 1}: numbers (numpy's too, as Python's), strings and bools; None, NaN and lists
    are left out."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (bool, str)):
            out[name] = value
        elif isinstance(value, numbers.Integral):  # numpy numbers too
            out[name] = int(value)
        elif isinstance(value, numbers.Real) and not math.isnan(value):
            out[name] = float(value)
    return out


def _cell(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _jsonable(config: Mapping | None) -> dict:
    return {k: _cell(v) if not isinstance(v, (list, tuple)) else [_cell(x) for x in v]
            for k, v in (config or {}).items() if not k.startswith("_")}


class Tracker:
    """No tracking (report_to none), and the interface of the real ones."""

    backends: tuple[str, ...] = ()

    def log(self, metrics: Mapping, step: int | None = None) -> None:
        pass

    def log_table(self, name: str, rows: Iterable[Mapping]) -> None:
        pass

    def summary(self, metrics: Mapping) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.finish(failed=exc_type is not None)
        return False


class _Wandb(Tracker):
    def __init__(self, project: str | None, name: str | None, config: Mapping | None):
        import wandb

        self.wandb = wandb
        self.owned = wandb.run is None  # the Trainer's run (GRPO): written to, left for its owner to finish
        self.run = wandb.run or wandb.init(project=project or os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
                                           name=name, config=_jsonable(config))
        if not self.owned and config:
            self.run.config.update(_jsonable(config), allow_val_change=True)

    def log(self, metrics, step=None):
        self.run.log(flatten(metrics), step=step if self.owned else None)

    def log_table(self, name, rows):
        rows = list(rows)
        columns = _columns(rows)
        if rows:
            self.run.log({name: self.wandb.Table(columns=columns,
                                                 data=[[_cell(r.get(c)) for c in columns] for r in rows])})

    def summary(self, metrics):
        self.run.summary.update(flatten(metrics))

    def finish(self, failed=False):
        if self.owned:
            self.run.finish(exit_code=1 if failed else 0)


class _Trackio(Tracker):
    def __init__(self, project: str | None, name: str | None, config: Mapping | None):
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=project or os.environ.get("TRACKIO_PROJECT", DEFAULT_PROJECT), name=name,
                                config=_jsonable(config))

    def log(self, metrics, step=None):
        self.trackio.log(flatten(metrics), step=step)

    def log_table(self, name, rows):
        rows = list(rows)
        table = getattr(self.trackio, "Table", None)
        if rows and table is not None:
            columns = _columns(rows)
            self.trackio.log({name: table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])})

    def summary(self, metrics):  # trackio has no summary: the final numbers are logged once
        self.trackio.log(flatten(metrics))

    def finish(self, failed=False):
        self.trackio.finish()


class _Several(Tracker):
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def log(self, metrics, step=None):
        for t in self.trackers:
            t.log(metrics, step)

    def log_table(self, name, rows):
        rows = list(rows)
        for t in self.trackers:
            t.log_table(name, rows)

    def summary(self, metrics):
        for t in self.trackers:
            t.summary(metrics)

    def finish(self, failed=False):
        for t in self.trackers:
            t.finish(failed)


def start_run(report_to, name: str | None = None, config: Mapping | None = None, project: str | None = None,
              enabled: bool = True) -> Tracker:
    """A tracker writing to every backend in `report_to` (see the module docstring); a silent one for "none" or
    when not `enabled` (a process other than the main one)."""
    names = check_report_to(report_to)
    if not enabled or not names:
        return Tracker()
    makers = {"wandb": _Wandb, "trackio": _Trackio}
    trackers = [makers[n](project, name, config) for n in names]
    out = trackers[0] if len(trackers) == 1 else _Several(trackers)
    out.backends = tuple(names)
    return out


RUN_ARGS = ("quiet", "report_to", "run_name")  # how a command is tracked, not what it does: never in a config


def command_run(args, default_name: str, enabled: bool = True, skip: Iterable[str] = (),
                extra_config: Mapping | None = None) -> Tracker:
    """start_run for a command that took add_run_args (or a ReportingArguments dataclass): its --report_to, its
    --run_name (else `default_name`), and every other option (but `skip`) as the run's config."""
    from dataclasses import asdict, is_dataclass

    values = asdict(args) if is_dataclass(args) else vars(args)
    config = {**(extra_config or {}),
              **{k: v for k, v in values.items() if k not in RUN_ARGS and k not in set(skip)}}
    return start_run(getattr(args, "report_to", None), name=getattr(args, "run_name", None) or default_name,
                     config=config, enabled=enabled)
