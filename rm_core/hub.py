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
from collections.abc import Mapping
from dataclasses import dataclass, field
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


# OpenRLHF's --normalize_reward reads config.mean / config.std (else 0 and 1): the same numbers under its names
OPENRLHF_STATS = {"reward_mean": "mean", "reward_std": "std"}


def self_description(rm_family: str, chat_template: str | None, **fields) -> dict:
    """The config.json entries that make a checkpoint self-describing: rm_family, rm_chat_template and the
    family's own fields (what a loader needs to use the head without the training script). A numeric
    reward_mean / reward_std is also written as `mean` / `std`, the names OpenRLHF's --normalize_reward reads
    (a None one is not: OpenRLHF would load None into its buffer)."""
    if rm_family not in RM_FAMILIES:
        raise ValueError(f"unknown rm_family {rm_family!r}; expected one of {RM_FAMILIES}")
    openrlhf = {alias: fields[key] for key, alias in OPENRLHF_STATS.items()
                if isinstance(fields.get(key), (int, float)) and not isinstance(fields.get(key), bool)}
    return {"rm_family": rm_family, "rm_chat_template": chat_template, **fields, **openrlhf}


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


# ---------------------------------------------------------------- model cards the Hub reads

# (pipeline_tag, library_name) of each family's checkpoint: a scalar head is a sequence classifier; a generative
# judge (pair-PM, the PRM and the generative ORM, the GRPO-trained pair-PM) answers with tokens of a causal LM;
# the decision tree is a scikit-learn tree over attribute-score differences, saved as data
FAMILY_CARD = {
    "bradley_terry": ("text-classification", "transformers"),
    "armo": ("text-classification", "transformers"),
    "odin": ("text-classification", "transformers"),
    "pair_pm": ("text-generation", "transformers"),
    "prm": ("text-generation", "transformers"),
    "orm": ("text-generation", "transformers"),  # math_rm_head "scalar": a sequence classifier (family_card)
    "decision_tree": ("tabular-classification", "sklearn"),
}
# the task every reward-model evaluation in model-index is filed under: telling the better response from the worse
EVAL_TASK_TYPE, EVAL_TASK_NAME = "text-classification", "Reward modeling"
# the offline stand-ins of Hub data sets (armo_rm/data.py): what they were drawn from
OFFLINE_DATASETS = {"offline:hh-harmless": "Anthropic/hh-rlhf", "offline:hh-harmless-test": "Anthropic/hh-rlhf",
                    "offline:gsm8k": "openai/gsm8k", "offline:gsm8k-test": "openai/gsm8k"}


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".tsv", ".gz", ".arrow", ".txt", ".zip", ".jinja")


def family_card(rm_family: str, family_fields: dict | None = None) -> tuple[str, str]:
    """(pipeline_tag, library_name) of a checkpoint of `rm_family` (FAMILY_CARD); the scalar ORM (family_fields
    math_rm_head "scalar") is a sequence classifier."""
    if (family_fields or {}).get("math_rm_head") == "scalar":
        return FAMILY_CARD["bradley_terry"]
    return FAMILY_CARD[rm_family]


def looks_like_hub_id(name: str | None) -> bool:
    """`org/name` (a namespace, as a card's base_model or a push target needs) that can be a Hub repo id
    (rm_core.errors.looks_like_local_path: valid, not a file name) and is no local path that exists."""
    from rm_core.errors import looks_like_local_path

    if not isinstance(name, str) or name.count("/") != 1 or looks_like_local_path(name):
        return False
    return not Path(name).exists()


def hub_base_model(name_or_path: str | None) -> str | None:
    """The Hub id of the model a checkpoint was fine-tuned from, or None (a local path is never written):
    a Hub id as is; a folder rm_core.models.provision built (SmolLM2, MiniLM) or a Hub cache snapshot
    (models--org--name/snapshots/<sha>): the id it stands for; another folder: the `_name_or_path` its
    config.json records when that is a Hub id; else None."""
    if not name_or_path:
        return None
    name = str(name_or_path)
    path = Path(name)
    if not path.exists():
        return name if looks_like_hub_id(name) else None
    from rm_core.models import OFFLINE_SOURCES

    folder = path.resolve()
    for repo_id in OFFLINE_SOURCES:
        if folder.name == repo_id.replace("/", "--"):
            return repo_id
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        repo_id = folder.parent.parent.name[len("models--"):].replace("--", "/", 1)
        if _HUB_ID.match(repo_id):
            return repo_id
    try:
        origin = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        origin = None
    return origin if looks_like_hub_id(origin) else None


def hub_dataset_id(name: str | None) -> str | None:
    """The Hub id of a training data source, or None ("builtin", local files and folders are never written):
    a Hub id (a `[N]` row limit dropped), or the Hub set an offline stand-in was drawn from (OFFLINE_DATASETS)."""
    if not name:
        return None
    name = re.sub(r"\[\d+\]$", "", str(name).strip())
    if name in OFFLINE_DATASETS:
        return OFFLINE_DATASETS[name]
    return name if looks_like_hub_id(name) else None


def dataset_label(name: str | None) -> str:
    """How model-index names a data set: its Hub id, else a short name without any folder ("builtin",
    "prefs" for ../data/prefs.jsonl, "hh-harmless" for offline:hh-harmless[500])."""
    hub_id = hub_dataset_id(name)
    if hub_id:
        return hub_id
    name = re.sub(r"\[\d+\]$", "", str(name or "unknown").strip()).rstrip("/")
    if name.startswith("offline:"):
        return name[len("offline:"):]
    base = Path(name).name or "unknown"
    for suffix in (".gz", *_FILE_SUFFIXES):
        base = base.removesuffix(suffix)
    return base or "unknown"


@dataclass
class CardEval:
    """One evaluation for the card's model-index: `metrics` {metric name: value} measured on `dataset` (a Hub id,
    or a local source: named by dataset_label, never by its path), split `split`. Values that are not numbers
    (None: a failure) are left out. metric_type: the Hub's metric id of all of them ("accuracy")."""

    dataset: str
    split: str | None
    metrics: dict
    dataset_name: str | None = None
    metric_type: str = "accuracy"
    task_name: str = EVAL_TASK_NAME

    def eval_results(self) -> list:
        """huggingface_hub.EvalResult, one per numeric metric."""
        from huggingface_hub import EvalResult

        label = dataset_label(self.dataset)
        return [EvalResult(task_type=EVAL_TASK_TYPE, task_name=self.task_name, dataset_type=label,
                           dataset_name=self.dataset_name or label, dataset_split=self.split,
                           metric_type=self.metric_type, metric_name=name, metric_value=float(value))
                for name, value in self.metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)]


def trainer_tags(trainer) -> list[str]:
    """The card tags of the trainer that trained the model: TRL's own (`_tag_names`: "trl" and "reward-trainer",
    "sft", "grpo", ...); none for another trainer."""
    return list(getattr(trainer, "_tag_names", None) or [])


def held_out_split(held: dict | None) -> str:
    """The split name model-index gives a recipe's held-out set (its data report's `held_out`)."""
    held = held or {}
    if held.get("rule") == "split" and held.get("split"):
        name = str(held["split"])
    else:
        name = {"hh_sha1": "test (hh_sha1)", "hashed": "held-out (sha1 hash)",
                "gsm8k_fixed": "test (questions 1000 on)"}.get(held.get("rule"), "held-out")
    return f"{name}, first {held['first']}" if held.get("first") else name


def held_out_evals(dataset: str, held_out_report: dict | None, metrics: Mapping) -> list[CardEval]:
    """A recipe's held-out evaluation as model-index entries: one CardEval on `dataset` at held_out_split of its
    data report's `held_out`, with the metrics that have a value; [] when none has (no held-out set)."""
    metrics = {k: v for k, v in metrics.items() if v is not None}
    return [CardEval(dataset, held_out_split(held_out_report), metrics)] if metrics else []


def card_data(*, model_name: str, rm_family: str, base_model: str | None = None, datasets=(), evals=(),
              pipeline_tag: str | None = None, library_name: str | None = None, tags=(),
              family_fields: dict | None = None):
    """huggingface_hub.ModelCardData of a checkpoint: base_model and datasets as Hub ids only (hub_base_model,
    hub_dataset_id), the family's pipeline_tag and library (family_card, unless given), tags reward-model, the
    family and `tags`, model-index from `evals` (CardEval)."""
    from huggingface_hub import ModelCardData

    default_tag, default_library = family_card(rm_family, family_fields)
    results = [r for e in evals for r in e.eval_results()]
    hub_datasets = list(dict.fromkeys(d for d in map(hub_dataset_id, datasets or ()) if d))
    return ModelCardData(model_name=model_name, base_model=hub_base_model(base_model), datasets=hub_datasets or None,
                         pipeline_tag=pipeline_tag or default_tag, library_name=library_name or default_library,
                         tags=["reward-model", rm_family, *tags], eval_results=results or None)


def model_card(
    *, model_name: str, base_model: str | None, rm_family: str, datasets: list[str], eval_results: dict | None,
    training: dict, command: str, evals=(), pipeline_tag: str | None = None, library_name: str | None = None,
    tags=(), family_fields: dict | None = None,
) -> str:
    """A Hub model card: huggingface_hub.ModelCard with the card_data front matter (model-index from `evals`, read
    back by `ModelCard.load(...).data.eval_results`), then the text: the evaluation table (`eval_results`, any
    numbers), the training settings and the command (secrets redacted)."""
    from huggingface_hub import ModelCard

    data = card_data(model_name=model_name, rm_family=rm_family, base_model=base_model, datasets=datasets,
                     evals=evals, pipeline_tag=pipeline_tag, library_name=library_name, tags=tags,
                     family_fields=family_fields)
    origin = f"fine-tuned from [`{data.base_model}`](https://huggingface.co/{data.base_model})" if data.base_model \
        else "fine-tuned from a local model"
    lines = [
        f"# {model_name}", "",
        f"A `{rm_family}` reward model {origin}. `config.json` records the family, the chat template and the",
        "family's own fields (scalar heads: the reward mean/std on held-out data, also as `mean`/`std` for OpenRLHF's",
        "`--normalize_reward`), so `eval_reward_bench --model` and the judges load it without the training script.",
        "", "## Evaluation", "",
    ]
    if eval_results:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in eval_results.items()]
    else:
        lines.append("Not evaluated.")
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_public(str(v))} |" for k, v in training.items()]
    lines += ["", "Reproduce with:", "", "```bash", _public(command), "```", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def _public(text: str) -> str:
    """Card text as it may be published: secrets redacted, and the home folder (a user name) written as ~."""
    home = str(Path.home())
    text = _SECRET_VALUE.sub(REDACTED, text)
    return re.sub(re.escape(home) + r"(?=/|\s|$)", "~", text) if len(home) > 1 else text


def merge_eval_results(card, results: list, model_name: str, overwrite: bool) -> None:
    """Add `results` (EvalResult) to `card` (a ModelCard) as huggingface_hub.metadata_update does: a result for
    the same task, data set, split and metric replaces the old value (with `overwrite`; else ValueError), any
    other is appended."""
    if not card.data.eval_results:
        card.data.eval_results, card.data.model_name = list(results), card.data.model_name or model_name
        return

    def group(r) -> tuple:  # one evaluation: a task on one data set, config, split and revision
        return r.task_type, r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_revision

    # a metric of an evaluation this push reports again that the new results lack (a score that is None now) is
    # the earlier run's: replaced with the group (overwrite), never left beside the new metrics
    redone = {group(r) for r in results}
    stale = [old for old in card.data.eval_results if group(old) in redone
             and not any(new.is_equal_except_value(old) for new in results)]
    if stale and not overwrite:
        raise ValueError(f"the card already has {stale[0].metric_name or stale[0].metric_type} on "
                         f"{stale[0].dataset_name} ({stale[0].dataset_split}), which these results do not give; "
                         "overwrite to replace that evaluation")
    card.data.eval_results = [old for old in card.data.eval_results if not any(old is s_ for s_ in stale)]
    for new in results:
        same = [old for old in card.data.eval_results if new.is_equal_except_value(old)]
        if not same:
            card.data.eval_results.append(new)
        for old in same:
            if old.metric_value != new.metric_value and not overwrite:
                raise ValueError(f"the card already has {new.metric_name or new.metric_type} = {old.metric_value} "
                                 f"on {new.dataset_name} ({new.dataset_split}); overwrite to replace it")
            old.metric_value = new.metric_value


def push_target(value: str) -> str:
    """argparse type of --push_results: an existing local folder or a Hub model id (org/name), checked when the
    command line is read, before anything is scored."""
    if Path(value).is_dir() or looks_like_hub_id(value):
        return value
    import argparse

    raise argparse.ArgumentTypeError(f"{value!r} is neither a local checkpoint folder nor a Hub model id (org/name)")


def push_eval_results(target: str | Path, evals, *, overwrite: bool = True,
                      commit_message: str = "Add evaluation results") -> str:
    """Add evaluations (CardEval) to a model card's model-index. `target`: an existing local folder (a checkpoint):
    its README.md is updated, or written (a bare card) when it has none, atomically; else a Hub model repo id:
    huggingface_hub.metadata_update(target, {"model-index": ...}, overwrite=overwrite) on its README.md. The
    token is huggingface_hub's own (HF_TOKEN); none is passed or written. Returns the README path or the commit
    URL."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import eval_results_to_model_index

    from rm_core.errors import UserInputError

    results = [r for e in evals for r in e.eval_results()]
    if not results:
        raise UserInputError(f"no numeric evaluation result to add to the model card of {target} (every one failed)")
    folder = Path(target)
    if folder.is_dir():
        readme = folder / "README.md"
        name = folder.resolve().name
        card = ModelCard.load(readme) if readme.is_file() else ModelCard(
            f"---\n{ModelCardData(tags=['reward-model']).to_yaml()}\n---\n\n# {name}\n")
        merge_eval_results(card, results, name, overwrite)
        atomic_write_text(readme, str(card))  # the front matter from card.data, the text as it was
        return str(readme)
    repo_id = str(target)
    if not looks_like_hub_id(repo_id):
        raise UserInputError(f"{repo_id}: neither a local checkpoint folder nor a Hub model id (org/name)")
    from huggingface_hub import metadata_update

    metadata = {"model-index": eval_results_to_model_index(repo_id, results)}
    return str(metadata_update(repo_id, metadata, overwrite=overwrite, commit_message=commit_message))


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


# never pushed: checkpoints, temporary and fingerprint files, a scalar ORM's pairs of the user's data, training logs
PUSH_IGNORE = ("checkpoint-*", "*.tmp*", "*.fingerprint.json", "pairs/*", "runs/*")


def push_folder(folder: str | Path, repo_id: str, private: bool = False, commit_message: str = "Upload reward model",
                ignore: tuple[str, ...] = ()) -> str:
    """Create the Hub repo if needed and upload the checkpoint folder (minus `ignore` globs); returns the commit URL.
    The token is --hub_token (kept by take_hub_token) or huggingface_hub's own (HF_TOKEN, `hf auth login`)."""
    from huggingface_hub import HfApi

    api = HfApi(token=_hub_token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             ignore_patterns=[*PUSH_IGNORE, *ignore],
                             # the repo mirrors the folder: a file an earlier push left (an adapter, another run's
                             # results) is deleted, never kept beside the new weights
                             delete_patterns=["*"])
    return str(getattr(info, "commit_url", info))


# ---------------------------------------------------------------- the one publish step


@dataclass
class CardInfo:
    """What the model card (model_card) says besides the name and the family. base_model, datasets: as the recipe
    was given them (the card keeps Hub ids only: hub_base_model, hub_dataset_id); metrics: the evaluation table
    (None or empty: "Not evaluated."); command: the reproduce line, by default the command that ran
    (command_line(), secrets redacted); evals: the model-index entries (CardEval: the held-out evaluation, ...);
    pipeline_tag, library_name: default the family's (family_card); tags: beside reward-model and the family
    ("trl" and the TRL trainer when TRL trained it)."""

    base_model: str | None
    datasets: list[str]
    training: dict
    metrics: dict | None = None
    command: str | None = None
    evals: list[CardEval] = field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: list[str] = field(default_factory=list)


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
    3. README.md: the model card (model_card: huggingface_hub's ModelCard, model-index from card.evals, base_model
       and datasets as Hub ids only, the family's pipeline_tag; its name hub_model_id or the folder's, its
       reproduce line card.command or the command that ran, secrets redacted);
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
        command=card.command if card.command is not None else command_line(), evals=card.evals,
        pipeline_tag=card.pipeline_tag, library_name=card.library_name, tags=card.tags,
        family_fields=family_fields))
    if push:
        if not hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME")
        eval_results["hub_commit"] = push_folder(out_dir, hub_model_id, private=bool(private), ignore=ignore)
        print(f"[hub] pushed to {hub_model_id}", flush=True)
    print(f"[done] checkpoint: {out_dir.resolve()}", flush=True)
    return eval_results
