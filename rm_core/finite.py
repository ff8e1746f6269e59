"""NaN and inf are failures, never results: the one end-of-training check every recipe runs.

A run whose final model gives a NaN or an infinite reward has diverged (a learning rate far too high, an
overflow in half precision, a poisoned batch). Its loss can still look fine: the last optimizer step is taken
after the last loss was computed. So every recipe scores its final model on the held-out data (or on the first
training examples when it has no held-out set) and passes the numbers to `check_final_rewards` before the one
publish step (rm_core.hub.publish) describes it, writes its results and card, and marks it done. A non-finite number stops the run with
`TrainingDivergedError` (the process exits non-zero with the message), and the final model files found in
the output folder are moved into `<output_dir>/diverged/`, so that nothing loads them as a trained reward
model. Intermediate `checkpoint-*` folders are left as they are.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from rm_core.errors import RunFailed

#: how many examples a recipe without a held-out set scores for the check (the first training examples)
CHECK_EXAMPLES = 32

#: what a finished checkpoint folder holds that would let a loader (or a reader) take it as done
FINAL_MODEL_FILES = ("config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json",
                     "pytorch_model*.bin", "pytorch_model.bin.index.json", "adapter_model.safetensors",
                     "adapter_config.json", "lora_adapter", "tree.json", "eval_results.json", "README.md")


class TrainingDivergedError(RunFailed):
    """The final model of a training run gives NaN or infinite rewards."""


def count_nonfinite(values) -> tuple[int, int]:
    """(non-finite, all) numbers in `values`: a number, None (a failure that is not a number: not counted),
    a torch tensor, a numpy array, or any nesting of lists, tuples and dicts (their values) of these."""
    if values is None:
        return 0, 0
    if isinstance(values, bool):
        return 0, 1
    if isinstance(values, (int, float)):
        return (0 if math.isfinite(values) else 1), 1
    if hasattr(values, "detach"):  # torch
        values = values.detach().float().cpu().numpy()
    if hasattr(values, "dtype") and hasattr(values, "size"):  # numpy
        import numpy as np

        array = np.asarray(values, dtype=np.float64)
        return int(array.size - np.isfinite(array).sum()), int(array.size)
    if isinstance(values, dict):
        values = values.values()
    bad = total = 0
    for v in values:
        b, t = count_nonfinite(v)
        bad, total = bad + b, total + t
    return bad, total


def quarantine_final_model(out_dir: str | Path) -> list[str]:
    """Move the final model files (FINAL_MODEL_FILES) of `out_dir` into `out_dir/diverged/` (replacing an
    older one); returns the names moved."""
    out_dir = Path(out_dir)
    found = sorted({p for pattern in FINAL_MODEL_FILES for p in out_dir.glob(pattern)})
    if not found:
        return []
    target = out_dir / "diverged"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in found:
        shutil.move(str(path), str(target / path.name))
    return [p.name for p in found]


DEFAULT_ADVICE = ("This model is not a reward model, and the run is not finished as one: lower the learning rate "
                  "(or check the data and the dtype) and train again.")


def check_final_rewards(values, what: str, out_dir: str | Path | None = None, cause: str = "training diverged",
                        advice: str = DEFAULT_ADVICE) -> None:
    """Raise TrainingDivergedError when any number in `values` (see count_nonfinite) is NaN or infinite.
    `what` names the numbers ("the final model's rewards of the 24 held-out pairs"); `out_dir`: the run's output
    folder, whose final model files are then moved into out_dir/diverged/ (see the module docstring); `cause`
    and `advice` open and close the message."""
    bad, total = count_nonfinite(values)
    if not bad:
        return
    message = f"{cause}: {what}: {bad} of {total} values are NaN or infinite."
    if out_dir is not None:
        moved = quarantine_final_model(out_dir)
        if moved:
            message += f" The final model files ({', '.join(moved)}) were moved to {Path(out_dir) / 'diverged'}."
        checkpoints = sorted(p.name for p in Path(out_dir).glob("checkpoint-*"))
        if checkpoints:
            message += (f" The intermediate checkpoints ({', '.join(checkpoints)}) are kept; the last ones may have "
                        "diverged too.")
        (Path(out_dir) / "diverged").mkdir(parents=True, exist_ok=True)
    message = f"{message} {advice}"
    if out_dir is not None:
        from rm_core.hub import atomic_write_text

        atomic_write_text(Path(out_dir) / "diverged" / "REASON.txt", message + "\n")
    raise TrainingDivergedError(message)
