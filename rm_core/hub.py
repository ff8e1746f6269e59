"""Atomic writes, self-describing reward-model metadata, model cards and `push_to_hub`."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

RM_FAMILIES = ("bradley_terry", "pair_pm", "armo", "odin", "decision_tree", "orm", "prm")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write via a temp file in the same folder and os.replace: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(obj):
    """`obj` with every NaN and inf replaced by None: JSON has no NaN (a bare `NaN` is not JSON), and a number
    that is not finite is a failure, written as null as every failure is."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_dumps(obj, **kwargs) -> str:
    """json.dumps that never writes NaN/Infinity (see json_safe)."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json_dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows) -> Path:
    return atomic_write_text(path, "".join(json_dumps(r) + "\n" for r in rows))


def describe_checkpoint(model, tokenizer, rm_family: str, **fields) -> None:
    """Record in config.json what a loader needs to use this head without the training script."""
    if rm_family not in RM_FAMILIES:
        raise ValueError(f"unknown rm_family {rm_family!r}; expected one of {RM_FAMILIES}")
    model.config.rm_family = rm_family
    model.config.rm_chat_template = tokenizer.chat_template
    for key, value in fields.items():
        setattr(model.config, key, value)


def model_card(
    *, model_name: str, base_model: str, rm_family: str, datasets: list[str], eval_results: dict | None,
    training: dict, command: str,
) -> str:
    """A Hub model card (YAML front matter + text) carrying the evaluation results."""
    meta = ["---", "library_name: transformers", "pipeline_tag: text-classification",
            "tags:", "- reward-model", f"- {rm_family}", f"base_model: {base_model}"]
    if datasets:
        meta += ["datasets:"] + [f"- {d}" for d in datasets]
    meta.append("---")
    lines = meta + [
        "", f"# {model_name}", "",
        f"A `{rm_family}` reward model fine-tuned from `{base_model}`. `config.json` records the family, the",
        "chat template and the reward mean/std on held-out data, so `eval_reward_bench --model` and the",
        "judges load it without the training script.", "",
        "## Evaluation", "",
    ]
    if eval_results:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in eval_results.items()]
    else:
        lines.append("Not evaluated.")
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in training.items()]
    lines += ["", "Reproduce with:", "", "```bash", _SECRET_VALUE.sub(REDACTED, command), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- secrets: never written, never pushed

_SECRET_FLAG = re.compile(r"^--?[\w.-]*(token|key|password|passwd|secret|credential)[\w.-]*$", re.IGNORECASE)
# values that are secrets whatever flag carries them: Hugging Face, OpenAI-style and bearer tokens
_SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,}|Bearer\s+\S+)")
REDACTED = "***"
_hub_token: str | None = None


def redact_argv(argv: list[str]) -> list[str]:
    """argv with the value of every token-, key-, password- or secret-like flag (--flag VALUE or --flag=VALUE)
    and every token-shaped value replaced by ***."""
    out, hide_next = [], False
    for arg in map(str, argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag) and not flag.lower().endswith(("_env", "-env", "_path", "_file")):
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_SECRET_VALUE.sub(REDACTED, arg))
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran (`python` + argv), secrets redacted: what cards and results record."""
    import shlex

    return " ".join(shlex.quote(a) if a != REDACTED else a for a in ["python", *redact_argv(argv or sys.argv)])


def take_hub_token(training_args) -> None:
    """Keep --hub_token for the push in memory only and clear it on the arguments, which the Trainer pickles into
    every checkpoint's training_args.bin (and so into what is pushed)."""
    global _hub_token
    token = getattr(training_args, "hub_token", None)
    if token:
        _hub_token = token
        training_args.hub_token = None


def push_folder(folder: str | Path, repo_id: str, private: bool = False, commit_message: str = "Upload reward model",
                ignore: tuple[str, ...] = ()) -> str:
    """Create the Hub repo if needed and upload the checkpoint folder (minus `ignore` globs); returns the commit URL.
    The token is --hub_token (kept by take_hub_token) or huggingface_hub's own (HF_TOKEN, `hf auth login`)."""
    from huggingface_hub import HfApi

    api = HfApi(token=_hub_token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             ignore_patterns=["checkpoint-*", "*.tmp*", *ignore])
    return str(getattr(info, "commit_url", info))
