"""One judge interface over every trained reward model and every prompted LLM (see judges/base.py).

    import judges
    judge = judges.load("outputs/bt-smollm2")                       # rm_family read from config.json
    judge = judges.load("llm:HuggingFaceTB/SmolLM2-135M-Instruct", mode="pairwise")   # a prompted local LLM
    judge = judges.load("openai:gpt-4o-mini", base_url="http://localhost:8000/v1", mode="pairwise")

A checkpoint's rm_family names its judge class in judges/registry.py (FAMILIES, plus the entry-point group
"reward_models.judges" for families outside this repository); `load` imports only that family's module.
"""

from __future__ import annotations

import json
from pathlib import Path

from judges.base import (
    JUDGE_FAMILIES,
    BestOfN,
    FailureLog,
    Judge,
    best_of_n,
    register_judge,
)

__all__ = [
    "JUDGE_FAMILIES",
    "BestOfN",
    "FailureLog",
    "Judge",
    "best_of_n",
    "check_judge_spec",
    "checkpoint_family",
    "load",
    "register_judge",
]

LLM_PREFIXES = ("llm:", "openai:")


def _read_config(path: str, revision: str | None = None) -> dict:
    local = Path(path) / "config.json"
    if local.is_file():
        return json.loads(local.read_text(encoding="utf-8"))
    if Path(path).exists():
        from rm_core.errors import MissingPathError

        raise MissingPathError(f"{path} has no config.json: not a model checkpoint")
    import os

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    from rm_core.errors import MissingPathError

    try:
        return json.loads(Path(hf_hub_download(path, "config.json", revision=revision)).read_text(encoding="utf-8"))
    except (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError) as err:
        # a name like outputs/bt is a folder or a Hub id: neither answered, so say both in one line
        offline = " (offline: HF_HUB_OFFLINE is set and it is not in the Hub cache)" if os.environ.get(
            "HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on") else ""
        raise MissingPathError(f"model {path}: no such file or directory, and no model of that name on the "
                               f"Hub{offline} ({type(err).__name__})") from None


def checkpoint_family(name_or_path: str, revision: str | None = None) -> str | None:
    """The checkpoint's rm_family; "bradley_terry" for any HF sequence classifier without one."""
    from rm_core.models import resolve_model

    config = _read_config(resolve_model(name_or_path), revision)
    if config.get("rm_family"):
        return config["rm_family"]
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return "bradley_terry"  # an HF reward model from elsewhere (Skywork, ArmoRM-style seq-cls, ...)
    return None


def check_judge_spec(spec: str, what: str = "model") -> None:
    """Before anything is loaded: a judge spec naming a local path that does not exist (a checkpoint, or the
    model of llm:<path>) raises MissingPathError "<what> <path>: no such file or directory" (not a Hub error)."""
    from rm_core.errors import check_local_path

    kind, sep, name = spec.partition(":")
    if sep and kind == "openai":
        return
    check_local_path(name if sep and kind == "llm" else spec, what)


def load(spec: str, family: str | None = None, **kwargs) -> Judge:
    """A judge from a checkpoint folder / Hub id (family from config.json, or `family=` to override, e.g.
    "bradley_terry" to score a base LM with a fresh head as an untrained baseline), or a prompted LLM:
    "llm:<HF id or path>" (local causal LM) / "openai:<model>" (any OpenAI-compatible endpoint)."""
    check_judge_spec(spec)
    if spec.startswith(LLM_PREFIXES):
        from judges.llm_judge import load_llm_judge

        if family is not None:  # it was dropped without a word
            raise ValueError(f"family={family!r} applies to checkpoints, not to {spec.partition(':')[0]}: judges "
                             "(give mode= for an LLM judge)")
        return load_llm_judge(spec, **kwargs)
    from judges.registry import judge_class, known_families
    from rm_core.errors import UserInputError

    family = family or checkpoint_family(spec, kwargs.get("revision"))
    if family is None:
        raise UserInputError(
            f"{spec} has no rm_family in config.json and is not a sequence classifier. Pass "
            f"family='bradley_terry' to score it with a fresh (untrained) head as a baseline, or use "
            f"'llm:{spec}' to prompt it as an LLM judge. Known families: {known_families()}")
    return judge_class(family).from_pretrained(spec, **kwargs)
