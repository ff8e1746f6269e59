"""Atomic writes, self-describing reward-model metadata, model cards, `push_to_hub`, and `publish`: the one
step every training recipe ends in (self-description in config.json, eval_results.json, the model card, then
the upload)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RM_FAMILIES = ("bradley_terry", "pair_pm", "armo", "odin", "decision_tree", "orm", "prm")


def new_file_mode() -> int:
    """The mode open() gives a new file under the process's umask (mkstemp and similar make 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write via a temp file in the same folder and os.replace: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600; give the file the mode open() would
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


def self_description(rm_family: str, chat_template: str | None, **fields) -> dict:
    """The config.json entries that make a checkpoint self-describing: rm_family, rm_chat_template and the
    family's own fields (what a loader needs to use the head without the training script)."""
    if rm_family not in RM_FAMILIES:
        raise ValueError(f"unknown rm_family {rm_family!r}; expected one of {RM_FAMILIES}")
    return {"rm_family": rm_family, "rm_chat_template": chat_template, **fields}


def describe_checkpoint(model, tokenizer, rm_family: str, **fields) -> None:
    """Record on model.config (so in the config.json it is saved to) the self_description."""
    for key, value in self_description(rm_family, tokenizer.chat_template, **fields).items():
        setattr(model.config, key, value)


def describe_config_file(folder: str | Path, rm_family: str, chat_template: str | None, **fields) -> bool:
    """Add the self_description to the config.json already in `folder` (a Trainer's checkpoint-N), atomically.
    False, and nothing written, when the folder has no config.json (a LoRA checkpoint holds only the adapter)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return False
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(self_description(rm_family, chat_template, **fields))
    atomic_write_text(path, json_dumps(config, indent=2, sort_keys=True) + "\n")
    return True


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


# ---------------------------------------------------------------- the one publish step


@dataclass
class CardInfo:
    """What the model card (model_card) says besides the name and the family. metrics: the evaluation table
    (None or empty: "Not evaluated."); command: the reproduce line, by default the command that ran
    (command_line(), secrets redacted)."""

    base_model: str
    datasets: list[str]
    training: dict
    metrics: dict | None = None
    command: str | None = None


def save_config_atomically(config, out_dir: str | Path) -> None:
    """config.save_pretrained into a staging folder inside out_dir, then each file it wrote (config.json, and the
    configuration module of a custom class registered for the Auto classes) moved into out_dir with os.replace:
    a reader, or an upload, never sees half a config.json."""
    out_dir = Path(out_dir)
    stage = Path(tempfile.mkdtemp(prefix=".publish-", suffix=".tmp", dir=out_dir))
    try:
        config.save_pretrained(stage)
        for path in sorted(stage.iterdir()):
            if path.is_file():
                os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(out_dir: str | Path, model, tokenizer, *, rm_family: str, family_fields: dict | None = None,
            eval_results: dict, card: CardInfo, push: bool = False, hub_model_id: str | None = None,
            private: bool = False, ignore: tuple[str, ...] = (), save_model: bool = False) -> dict:
    """The end of every training recipe, on the main process, once the final model passed the divergence check
    (rm_core.finite.check_final_rewards: a diverged model is never described). In this order, all of it before
    anything is uploaded, config.json, eval_results.json and README.md each written atomically:

    1. config.json: describe_checkpoint(model, tokenizer, rm_family, **family_fields), the family's own fields
       (head token ids, reward mean/std, `math_rm_head`, ...) as arguments, so none is added after the upload;
       with save_model, the weights and the tokenizer too (save_pretrained: a model built in memory, armo_rm), else
       config.json alone (save_config_atomically: the weights are in out_dir already, saved by the Trainer or
       merged by pipeline.finalise_checkpoint);
    2. eval_results.json: `eval_results`;
    3. README.md: the model card (model_card; its name hub_model_id or the folder's, its reproduce line
       card.command or the command that ran, secrets redacted);
    4. with push: the folder uploaded to hub_model_id (push_folder, with the token take_hub_token kept;
       checkpoint-*, temporary files and `ignore` globs left out); eval_results["hub_commit"] is its URL.

    Returns eval_results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    describe_checkpoint(model, tokenizer, rm_family, **(family_fields or {}))
    if save_model:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    else:
        save_config_atomically(model.config, out_dir)
    atomic_write_json(out_dir / "eval_results.json", eval_results)
    atomic_write_text(out_dir / "README.md", model_card(
        model_name=hub_model_id or out_dir.name, base_model=card.base_model, rm_family=rm_family,
        datasets=card.datasets, eval_results=card.metrics, training=card.training,
        command=card.command if card.command is not None else command_line()))
    if push:
        if not hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME")
        eval_results["hub_commit"] = push_folder(out_dir, hub_model_id, private=bool(private), ignore=ignore)
        print(f"[hub] pushed to {hub_model_id}", flush=True)
    print(f"[done] checkpoint: {out_dir.resolve()}", flush=True)
    return eval_results
