"""The command-line options of prompted-LLM judges (`llm:<model>`, `openai:<model>`), defined once and shared by
every eval_* command (eval/runner.py add_judge_args, eval_reward_bench), eval_report and rm-judge-serve.

    add_llm_judge_args(parser)                          # --judge_cache_dir, --judge_base_url, ... (all default None)
    check_llm_judge_args([spec, ...], args)             # an option no judge in the list takes is an error
    judges.load(spec, **llm_judge_kwargs(spec, args, device))

The API key is never an option: `--judge_api_key_env` names the environment variable that holds it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from judges import LLM_PREFIXES
from rm_core.errors import UserInputError

# flag (dest) -> (the backend's keyword, the kinds of judge that take it)
OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "judge_cache_dir": ("cache_dir", ("llm", "openai")),
    "judge_base_url": ("base_url", ("openai",)),
    "judge_api_key_env": ("api_key_env", ("openai",)),
    "judge_timeout_s": ("timeout_s", ("openai",)),
    "judge_max_retries": ("max_retries", ("openai",)),
    "judge_max_concurrency": ("max_concurrency", ("openai",)),
    "judge_allow_insecure_http": ("allow_insecure_http", ("openai",)),
    "judge_rubrics": ("rubrics", ("llm", "openai")),
    "judge_principles": ("principles", ("llm", "openai")),
    "judge_min_choice_mass": ("min_choice_mass", ("llm", "openai")),
}


def add_llm_judge_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from rm_core.errors import int_at_least, positive_float

    g = p.add_argument_group("prompted-LLM judges (llm:<model> / openai:<model>)")
    g.add_argument("--judge_cache_dir", default=None,
                   help="llm:/openai: store every successful call in DIR/responses.sqlite (key: model, messages, "
                        "sampling settings) as it finishes; a rerun or a resumed run makes only the calls it lacks")
    g.add_argument("--judge_base_url", default=None,
                   help="openai: the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                        "(default: $OPENAI_BASE_URL, else https://api.openai.com/v1)")
    g.add_argument("--judge_api_key_env", default=None,
                   help="openai: NAME of the environment variable holding the API key (default OPENAI_API_KEY; the "
                        "key itself is never a command-line option; a local server needs none)")
    g.add_argument("--judge_timeout_s", type=positive_float, default=None,
                   help="openai: seconds one attempt may take in all (default 60)")
    g.add_argument("--judge_max_retries", type=int_at_least(0), default=None,
                   help="openai: retries after a timeout, connection error, 429 or 5xx (default 4)")
    g.add_argument("--judge_max_concurrency", type=int_at_least(1), default=None,
                   help="openai: requests in flight at most (default 8)")
    g.add_argument("--judge_rubrics", default=None, metavar="RUBRICS_JSON",
                   help="llm:/openai: a rubric set (rm-rubrics) shown to the judge as its principles")
    g.add_argument("--judge_principles", default=None, metavar="scenario:NAME|scenario:auto",
                   help="llm:/openai: principles from the library (judges/principles.py): one scenario's set, or "
                        "auto (each item's scenario, where the benchmark gives one: RMB's categories)")
    g.add_argument("--judge_min_choice_mass", type=float, default=None, metavar="P",
                   help="llm:/openai: pairwise verdicts read from next-token probabilities need at least this much "
                        "of them on A, B and C together, else the verdict is a counted failure (default "
                        "judges.prompts.MIN_CHOICE_MASS, 0.1; 0 reads any)")
    g.add_argument("--judge_allow_insecure_http", action="store_true", default=None,
                   help="openai: allow sending the API key over plain http:// to a host that is not loopback "
                        "(refused by default: anyone on the network path could read it)")
    return p


def _kind(spec: str) -> str | None:
    return spec.partition(":")[0] if spec.startswith(LLM_PREFIXES) else None


def check_llm_judge_args(specs: Sequence[str], args) -> None:
    """An option set on the command line that none of the judges `specs` takes is an error, never ignored."""
    kinds = {_kind(s) for s in specs}
    for dest, (_, takers) in OPTIONS.items():
        if getattr(args, dest, None) is not None and not kinds & set(takers):
            raise UserInputError(f"--{dest} is an option of {' and '.join(k + ':' for k in takers)} judges; "
                                 f"not of {', '.join(specs)}")
    if getattr(args, "chat_template", None) is not None and kinds == {"openai"}:
        raise UserInputError("--chat_template does not apply to an openai: judge (the endpoint renders its own)")


def llm_judge_kwargs(spec: str, args, device=None) -> dict:
    """judges.load keyword arguments for an llm:/openai: `spec` from parsed options ({} for any other spec).
    llm: (a local HF model): dtype, device, max_length, batch_size and chat_template go to its HFBackend;
    openai: takes the endpoint options. Options of the other kind are left out (check_llm_judge_args refuses
    them where one judge is given)."""
    kind = _kind(spec)
    if kind is None:
        return {}
    out = {key: getattr(args, dest) for dest, (key, takers) in OPTIONS.items()
           if kind in takers and getattr(args, dest, None) is not None}
    if getattr(args, "judge_mode", None):
        out["mode"] = args.judge_mode
    if kind == "llm":
        for name in ("dtype", "max_length", "batch_size", "chat_template"):
            if getattr(args, name, None) is not None:
                out[name] = getattr(args, name)
        if device is not None:
            out["device"] = device
    return out


def endpoint_of(spec: str, base_url: str | None) -> str | None:
    """Where an `openai:` judge or policy sends its requests, for a fingerprint: `base_url`, else $OPENAI_BASE_URL
    (another server may serve another model under the same name); None for any other spec, or when neither is
    set (the OpenAI API)."""
    if not str(spec).startswith("openai:"):
        return None
    return base_url or os.environ.get("OPENAI_BASE_URL") or None


def option_fingerprint(name: str, value):
    """What an option that names something stands for in a fingerprint: a file (a .jinja template, a rubric set) by
    its content; the principle library's "scenario:..." by the library's version and content; else the value."""
    from rm_core.resume import files_sha256

    if isinstance(value, str) and Path(value).is_file():
        return {"sha256": files_sha256([value])[0], "path": str(Path(value).resolve())}
    if name == "judge_principles" and isinstance(value, str) and value.startswith("scenario:"):
        from judges.principles import library_fingerprint

        return {"spec": value, "library": library_fingerprint()}
    return value
