"""Checkpoints that carry their own modeling code (ArmoRM, ODIN: loadable with `trust_remote_code=True`).

`save_pretrained` copies the family's `modeling.py` into the checkpoint and names it in `config.json`'s
`auto_map`. Inside this project the registered classes are used whatever the checkpoint carries; outside it,
transformers runs the checkpoint's copy, so a copy older than a fix keeps the bug (ODIN checkpoints saved
before the fix for transformers 5.24's cache rename fail there). `stale_remote_code` tells, and

    python -m rm_core.remote_code CHECKPOINT [CHECKPOINT ...]

replaces an outdated copy with the current one (then push the folder again for the Hub copy).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

#: rm_family -> the module whose source file a checkpoint of that family carries (by name: no family import here)
REMOTE_CODE_MODULES = {"odin": "odin_rm.modeling", "armo": "armo_rm.modeling"}


def carried_code(checkpoint: str | Path) -> dict[str, Path]:
    """{module file name: path} of the code a local checkpoint names in its auto_map (empty when none)."""
    checkpoint = Path(checkpoint)
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        return {}
    auto_map = json.loads(config_path.read_text(encoding="utf-8")).get("auto_map") or {}
    names = {ref.split("--")[-1].rsplit(".", 1)[0] + ".py" for ref in auto_map.values() if isinstance(ref, str)}
    return {name: checkpoint / name for name in sorted(names)}


def _current_source(checkpoint: Path) -> Path | None:
    family = json.loads((checkpoint / "config.json").read_text(encoding="utf-8")).get("rm_family")
    module = REMOTE_CODE_MODULES.get(family)
    return Path(importlib.import_module(module).__file__) if module else None


def stale_remote_code(checkpoint: str | Path) -> list[Path]:
    """The carried files that differ from this project's current source of the same module."""
    checkpoint = Path(checkpoint)
    files = carried_code(checkpoint)
    current = _current_source(checkpoint) if files else None
    if current is None:
        return []
    text = current.read_text(encoding="utf-8")
    return [path for name, path in files.items()
            if name == current.name and (not path.is_file() or path.read_text(encoding="utf-8") != text)]


def warn_if_stale(checkpoint: str | Path) -> None:
    """A warning naming the refresh command when a local checkpoint carries outdated modeling code."""
    stale = stale_remote_code(checkpoint) if Path(checkpoint).is_dir() else []
    if stale:
        warnings.warn(f"{checkpoint} carries an outdated {stale[0].name}: this project loads it with its own classes, "
                      "but trust_remote_code loads elsewhere run the old copy (ODIN copies from before the fix fail "
                      f"on transformers>=5.24). Refresh it with: python -m rm_core.remote_code {checkpoint}",
                      stacklevel=2)


def refresh_remote_code(checkpoint: str | Path) -> list[Path]:
    """Copy the current source over each outdated carried file; returns the files replaced."""
    checkpoint = Path(checkpoint)
    stale = stale_remote_code(checkpoint)
    current = _current_source(checkpoint) if stale else None
    for path in stale:  # a temporary copy moved over the file: a kill never leaves it half-written
        tmp = path.with_name(path.name + ".tmp")
        shutil.copyfile(current, tmp)
        os.replace(tmp, path)
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="local checkpoint folders")
    args = p.parse_args(argv)
    for ckpt in args.checkpoints:
        if not (Path(ckpt) / "config.json").is_file():
            print(f"error: {ckpt}: no such checkpoint folder (config.json missing)", file=sys.stderr)
            return 1
        replaced = refresh_remote_code(ckpt)
        print(f"{ckpt}: " + (f"refreshed {', '.join(p.name for p in replaced)}" if replaced else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
