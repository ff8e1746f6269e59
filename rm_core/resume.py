"""Resumable outputs: whose they are (a fingerprint), and append-only JSONL stores that survive a kill.

    fp = {"model": model_fingerprint(args.model), "data": data_fingerprint(args.dataset),
          "settings": {"dtype": args.dtype, "max_length": args.max_length}}
    check_or_write_fingerprint(out_dir, fp, overwrite=args.overwrite, store_files=[out_dir / "scores.partial.jsonl"])
    done = read_jsonl_store(out_dir / "scores.partial.jsonl")           # a cut last line is dropped
    with open(out_dir / "scores.partial.jsonl", "a", encoding="utf-8") as f:
        append_jsonl(f, rows)                                           # flushed and fsynced

A resumable output keeps the fingerprint of what produced it beside it (`DIR/fingerprint.json` for a folder,
`FILE.fingerprint.json` for a file). A resume whose fingerprint differs stops with one line naming the fields
that differ; a store that holds rows but no fingerprint (written before fingerprints existed) is refused too;
`overwrite` deletes the store's files and starts fresh.

Failed items are asked again. A store of judged or generated items keeps its failures as rows (an error, a None
verdict), and a rerun treats them as not done: the item is asked again and its new row is appended; a reader
takes the last row per item (`latest_rows`), so the file stays append-only, finished work is never lost and each
item counts once. The command then stops non-zero (`check_failed_share`, rm_core.errors.TooManyFailedError:
exit 3, one line) when more than its `--max_failed_share` of items is still failed, after storing what it got.

Identity is by content, never by path: a local model is the sha256 of its folder's files (config, weights,
tokenizer, a nested model folder; not the card, eval results or other sub-folders), a local data set the sha256 of its file or of every file in
its folder, a Hub id its resolved commit, a model in memory the sha256 of its tensors (`module_fingerprint`).
So retraining a model in place changes its fingerprint and moving it does not ("path" fields are recorded
but not compared). File hashes are cached in RM_CACHE/file-hashes.json by (path, size, mtime_ns, ctime_ns,
inode), so a rerun does not read the weights again; a file changed in the last 2 s is not cached (its times
may not have moved yet on a rewrite: git's "racy" rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

from rm_core.errors import UserInputError

FINGERPRINT_FILE = "fingerprint.json"
NOT_COMPARED = {"path"}  # recorded for the reader, not part of the identity
MODEL_FILES_SKIPPED = {"README.md", "eval_results.json", "training_args.bin", "trainer_state.json"}
RACY_SECONDS = 2.0


class ResumeError(UserInputError):
    """A resumable output that cannot be resumed: made by another run, or damaged."""


# ---------------------------------------------------------------- identity by content


def _hash_cache_path() -> Path:
    return Path(os.environ.get("RM_CACHE", Path.home() / ".cache" / "reward-models")) / "file-hashes.json"


def files_sha256(paths: Sequence[str | Path]) -> list[str]:
    """sha256 of each file, from the stat-keyed cache when the file is unchanged."""
    cache_path = _hash_cache_path()
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    out, changed = [], False
    for path in paths:
        path = Path(path).resolve()
        st = path.stat()
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(str(path))
        if hit and hit[:4] == key:
            out.append(hit[4])
            continue
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        out.append(digest)
        if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > RACY_SECONDS:
            cache[str(path)], changed = key + [digest], True
    if changed:
        from rm_core.hub import atomic_write_json

        with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
            atomic_write_json(cache_path, {p: v for p, v in cache.items() if os.path.exists(p)})
    return out


def tree_sha256(files: Sequence[Path], root: Path) -> str:
    """One sha256 over (relative name, content sha256) of `files`, in name order."""
    files = sorted(files, key=lambda p: p.relative_to(root).as_posix())
    h = hashlib.sha256()
    for f, digest in zip(files, files_sha256(files)):
        h.update(f"{f.relative_to(root).as_posix()}\0{digest}\n".encode())
    return h.hexdigest()


def hub_commit(repo_id: str, repo_type: str = "model", revision: str | None = None) -> str | None:
    """The commit a Hub id resolves to: online, the Hub's (what from_pretrained / load_dataset will download: a
    branch updated since the last download moves on, and the fingerprint with it); offline, or when the Hub does
    not answer, the local Hub cache's ref; None when neither knows."""
    revision = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("1", "true", "yes"):
        try:
            from huggingface_hub import HfApi

            return HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, timeout=10).sha
        except Exception:
            pass
    ref = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / revision
    return ref.read_text(encoding="utf-8").strip() if ref.is_file() else None


def _hub(repo_id: str, repo_type: str, revision: str | None) -> dict:
    return {"hub": repo_id, "revision": revision or "main", "commit": hub_commit(repo_id, repo_type, revision)}


def model_files(folder: Path) -> list[Path]:
    """A checkpoint's files: its top-level files (not the card or eval results) and those of any sub-folder that
    is itself a model (a config.json: e.g. a decision tree's attribute_model/; a trainer's checkpoint-* aside).
    Other sub-folders (an embedding cache, eval outputs) are not the model."""
    out = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if p.is_file() and p.name not in MODEL_FILES_SKIPPED:
            out.append(p)
        elif p.is_dir() and (p / "config.json").is_file() and not p.name.startswith("checkpoint-"):
            out += model_files(p)
    return out


def model_fingerprint(name_or_path: str, revision: str | None = None) -> dict:
    """A checkpoint folder by the content of its files (`model_files`); a Hub id by its commit (the offline
    stand-in folder of a default model by content)."""
    from rm_core.models import resolve_model

    path = Path(resolve_model(name_or_path))  # a local path as is; a default model's offline stand-in folder
    if path.is_dir():
        return {"sha256": tree_sha256(model_files(path), path), "path": str(path.resolve())}
    if path.is_file():
        return {"sha256": files_sha256([path])[0], "path": str(path.resolve())}
    return _hub(str(name_or_path), "model", revision)


def data_fingerprint(source: str, revision: str | None = None) -> dict:
    """A local data file by its content, a folder by every file in it, a Hub data set by its commit."""
    path = Path(source)
    if path.is_file():
        return {"sha256": files_sha256([path])[0], "path": str(path.resolve())}
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return {"sha256": tree_sha256(files, path), "path": str(path.resolve())}
    return _hub(str(source), "dataset", revision)


CONFIG_KEYS_SKIPPED = {"_name_or_path", "architectures", "dtype", "torch_dtype", "transformers_version",
                       "_commit_hash", "_attn_implementation_autoset", "auto_map"}  # where from, not what it computes
_MODULE_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def module_fingerprint(module) -> dict:
    """A torch module by content: sha256 over its state dict (names, dtypes, shapes, bytes), and of its HF
    config (but where it came from). Cached per module until a tensor of it changes in place (torch's
    version counters)."""
    import torch

    state = module.state_dict()
    versions = tuple(t._version for t in state.values())
    cached = _MODULE_FINGERPRINTS.get(module)
    if cached and cached[0] == versions:
        return cached[1]
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(memoryview(t.reshape(-1).contiguous().view(torch.uint8).cpu().numpy()))
    fp = {"weights_sha256": h.hexdigest()}
    if hasattr(getattr(module, "config", None), "to_dict"):
        config = {k: v for k, v in module.config.to_dict().items() if k not in CONFIG_KEYS_SKIPPED}
        fp["config_sha256"] = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    _MODULE_FINGERPRINTS[module] = (versions, fp)
    return fp


def judge_fingerprint(spec: str) -> dict:
    """A judges.load spec: a checkpoint by content, `llm:<model>` by its model's, `openai:<model>` by name."""
    kind, sep, name = spec.partition(":")
    if sep and kind == "openai" and not Path(spec).exists():
        return {"api": spec}
    if sep and kind == "llm" and not Path(spec).exists():
        return {"llm": model_fingerprint(name)}
    return model_fingerprint(spec)


# ---------------------------------------------------------------- the fingerprint beside a store


def fingerprint_path(store: str | Path) -> Path:
    """DIR/fingerprint.json for a folder (which must exist), FILE.fingerprint.json for a file."""
    store = Path(store)
    return store / FINGERPRINT_FILE if store.is_dir() else store.with_name(store.name + ".fingerprint.json")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif k not in NOT_COMPARED:
            out[f"{prefix}{k}"] = v
    return out


def _short(v) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s[:12] if re.fullmatch(r"[0-9a-f]{40,64}", s) else (s if len(s) <= 60 else s[:57] + "...")


def differences(old: dict, new: dict) -> list[str]:
    """'key old -> new' for every compared field that differs (nested keys dotted, digests cut to 12 characters)."""
    a, b = _flat(old), _flat(new)
    missing = "(none)"
    return [f"{k} {_short(a.get(k, missing))} -> {_short(b.get(k, missing))}"
            for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]


def check_or_write_fingerprint(store: str | Path, fingerprint: dict, overwrite: bool = False,
                               store_files: Iterable[str | Path] | None = None, what: str = "",
                               hint: str = "pass --overwrite to start fresh, or use another output") -> Path:
    """Refuse to resume `store` (a folder that exists, or a file) when it was made with another fingerprint, or
    holds rows (`store_files`; default: the file itself) but no fingerprint. `overwrite` first deletes
    `store_files` and the old fingerprint. Writes the fingerprint (atomically) when there is none; returns its path.
    The error is one line: `what` (e.g. "embedding cache"), the store, the fields that differ, then `hint`."""
    from rm_core.hub import atomic_write_json

    store = Path(store)
    fp_path = fingerprint_path(store)
    files = [Path(f) for f in (store_files if store_files is not None else [store])]
    if overwrite:
        for f in files + [fp_path]:
            f.unlink(missing_ok=True)
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from disk (tuples -> lists)
    if fp_path.is_file():
        try:
            found = json.loads(fp_path.read_text(encoding="utf-8"))
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError: a write cut short, a damaged disk
            found = err
        if not isinstance(found, dict):
            problem = f"{type(found).__name__}: {found}" if isinstance(found, ValueError) else "not a JSON object"
            raise ResumeError(f"{what} {store}: its fingerprint {fp_path} is cut short or corrupted ({problem}), so "
                              f"what built it is unknown: {hint}".lstrip())
        diff = differences(found, fingerprint)
        if diff:
            raise ResumeError(f"{what} {store} was built with other inputs ({'; '.join(diff)}): {hint}".lstrip())
        return fp_path
    if any(f.is_file() and f.stat().st_size for f in files):
        raise ResumeError(f"{what} {store} holds results but no fingerprint of what built them (written before "
                          f"fingerprints were recorded): {hint}".lstrip())
    atomic_write_json(fp_path, fingerprint)
    return fp_path


# ---------------------------------------------------------------- append-only JSONL stores


def read_jsonl_store(path: str | Path, repair: bool = True) -> list[dict]:
    """The rows of an append-only JSONL store. A last line cut by a kill (no final newline, or not JSON) is
    dropped and, with `repair` (the writer about to append; never a mere reader), cut off the file, so the next
    append starts on a clean line. A bad line before the last is an error naming the file and line. Blank lines
    are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")  # after the last newline comes b"" when the file ends cleanly
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows, offset = [], 0
    for i, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            error = None if isinstance(row, dict) else "not a JSON object"
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
            error = str(err)
        if error is None and i == len(lines) - 1:
            error = "no final newline"  # the kill came after the value, before its newline
        if error is None:
            rows.append(row)
        elif i == last:  # a cut last line: drop it, and cut it off the file
            if repair:
                with open(path, "r+b") as f:
                    f.truncate(start)
        else:
            raise ResumeError(f"{path} line {i + 1} is not valid JSON ({error}); the store is damaged before its "
                              "last line: fix or delete that line, or start fresh")
    return rows


def append_jsonl(f, rows: Iterable[dict]) -> None:
    """Append rows to an open text file as JSON lines, then flush and fsync (a kill cuts at most the last)."""
    f.write("".join(json.dumps(r) + "\n" for r in rows))
    f.flush()
    os.fsync(f.fileno())


# ---------------------------------------------------------------- failed items: asked again, and a limit

DEFAULT_MAX_FAILED_SHARE = 0.05


def latest_rows(rows: Iterable[dict], key) -> dict:
    """The last row per `key(row)` of a store, in first-seen order: a row appended later (an item asked again
    after it failed) supersedes the earlier one."""
    out: dict = {}
    for row in rows:
        out[key(row)] = row
    return out


def share_arg(text: str) -> float:
    """argparse type of a share in [0, 1] (e.g. --max_failed_share)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def check_failed_share(counts: dict[str, tuple[int, int]], max_share: float | None, what: str = "items",
                       hint: str = "rerun the same command to ask the failed ones again") -> None:
    """Raise TooManyFailedError (one line) when, for any name, failed / total > `max_share` (None: no limit).
    `counts`: name (a judge, or "" for one count) -> (failed, total), counted after retries."""
    from rm_core.errors import TooManyFailedError

    if max_share is None:
        return
    over = [(name, failed, total) for name, (failed, total) in counts.items() if total and failed / total > max_share]
    if over:
        parts = [f"{name + ': ' if name else ''}{failed} of {total} {what} failed ({failed / total:.1%})"
                 for name, failed, total in over]
        raise TooManyFailedError(f"{'; '.join(parts)}, more than --max_failed_share {max_share:g}: {hint}")
