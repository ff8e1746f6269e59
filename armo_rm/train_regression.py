"""ArmoRM stage 1: one ridge regression per reward objective on a frozen backbone's embeddings.

    python armo_rm/train_regression.py --config armo_rm/configs/smollm2-135m-cpu.yaml
    accelerate launch --num_processes 8 armo_rm/train_regression.py --config armo_rm/configs/llama3-8b-8xa100.yaml

Embeddings (rm_core/embeddings.py) are cached under `embedding_cache`, so a killed run resumes and stage 2
reuses them. A row labelled for only some objectives trains only those (missing labels are masked, never
imputed). The regularisation is picked per objective on a validation split made by prompt (a prompt's
responses never straddle it); validation R^2 and Spearman are reported, then the regression is refit on
all labelled rows with that alpha. Writes <output_dir>/regression.safetensors and stage1.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from armo_rm.config import ArmoConfig, make_parser
from rm_core.errors import run_recipe


def prompt_groups(prompts: list[list[dict]]) -> np.ndarray:
    return np.array([int(hashlib.sha1(json.dumps(p, sort_keys=True).encode()).hexdigest()[:8], 16) for p in prompts])


def split_by_group(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/val masks; whole groups go to one side."""
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    val_groups = set(rng.permutation(unique)[: round(len(unique) * val_fraction)].tolist())
    val = np.array([g in val_groups for g in groups])
    return ~val, val


def fit_objectives(X: np.ndarray, Y: np.ndarray, attributes: list[str], groups: np.ndarray, alphas: list[float],
                   val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Ridge per column of Y (NaN = unlabelled, masked). Returns (weight [K, H], bias [K], report)."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    train_mask, val_mask = split_by_group(groups, val_fraction, seed)
    weight = np.zeros((len(attributes), X.shape[1]), dtype=np.float32)
    bias = np.zeros(len(attributes), dtype=np.float32)
    report = {}
    for k, name in enumerate(attributes):
        labelled = ~np.isnan(Y[:, k])
        tr, va = labelled & train_mask, labelled & val_mask
        if tr.sum() < 2 or va.sum() < 2:
            raise ValueError(f"objective {name!r}: {int(tr.sum())} train / {int(va.sum())} validation labelled rows; "
                             "need at least 2 of each")
        fits = []
        for alpha in alphas:
            model = Ridge(alpha=alpha).fit(X[tr], Y[tr, k])
            pred = model.predict(X[va])
            fits.append((r2_score(Y[va, k], pred), alpha, pred))
        r2, alpha, pred = max(fits, key=lambda f: f[0])
        rho = spearmanr(Y[va, k], pred).statistic if np.std(Y[va, k]) > 0 else float("nan")
        final = Ridge(alpha=alpha).fit(X[labelled], Y[labelled, k])  # refit on every labelled row
        weight[k], bias[k] = final.coef_, final.intercept_
        report[name] = {"alpha": alpha, "val_r2": round(float(r2), 4), "val_spearman": None if np.isnan(rho) else round(float(rho), 4),
                        "labelled": int(labelled.sum()), "train": int(tr.sum()), "val": int(va.sum()),
                        "val_r2_by_alpha": {str(a): round(float(f[0]), 4) for f, a in zip(fits, alphas)}}
    return weight, bias, report


_BACKBONES: dict = {}


def config_backbone(cfg: ArmoConfig) -> tuple:
    """(backbone, tokenizer) of the config, loaded once per process and shared by both stages and the export."""
    from rm_core.embeddings import load_backbone

    key = (cfg.model_name_or_path, cfg.dtype)
    if key not in _BACKBONES:
        _BACKBONES[key] = load_backbone(cfg.model_name_or_path, cfg.dtype)
    return _BACKBONES[key]


def embed_items(cfg: ArmoConfig, items: list[tuple[list[dict], str]], desc: str) -> dict:
    """Cached embeddings of (prompt, response) items with the config's backbone (loaded once per process)."""
    from rm_core.embeddings import extract_embeddings

    model, tokenizer = config_backbone(cfg)
    return extract_embeddings(model, tokenizer, items, cfg.cache_folder, model_id=cfg.model_name_or_path,
                              max_length=cfg.max_length, batch_size=cfg.embed_batch_size,
                              shard_size=cfg.embed_shard_size, desc=desc)


def main(cfg: ArmoConfig) -> dict:
    from safetensors.torch import save_file

    from armo_rm.data import add_verbosity, load_ratings
    from rm_core.errors import check_local_path
    from rm_core.hub import atomic_write_json

    start = time.perf_counter()
    check_local_path(cfg.model_name_or_path, "--model_name_or_path")  # before the data
    claim_output_dir(cfg, ("regression.safetensors", "config.json"), "stage 1")
    rows, sources = [], {}
    for source in cfg.ratings_sources:
        got = load_ratings(source, cfg.shared_data_dir, cfg.max_pairs_per_source)
        sources[source] = len(got)
        rows += got
    if not rows:
        from rm_core.errors import UserInputError

        raise UserInputError(f"no rated responses in {cfg.ratings_sources}")
    if cfg.verbosity_from_length:  # False: as published, only the sources that rate verbosity label it
        add_verbosity(rows, cfg.verbosity_attribute)
    attributes = list(dict.fromkeys(name for r in rows for name in r["attributes"]))
    print(f"[stage 1] {len(rows)} rated responses from {sources}; objectives {attributes}", flush=True)

    out = embed_items(cfg, [(r["prompt"], r["response"]) for r in rows], "stage 1 embeddings")
    from rm_core.embeddings import process_state

    if not process_state().is_main_process:  # the other processes only helped with the embeddings
        return {}
    X = out["embeddings"].numpy().astype(np.float64)
    Y = np.array([[np.nan if r["attributes"].get(a) is None else r["attributes"][a] for a in attributes]
                  for r in rows], dtype=np.float64)
    fit_start = time.perf_counter()
    weight, bias, report = fit_objectives(X, Y, attributes, prompt_groups([r["prompt"] for r in rows]),
                                          cfg.ridge_alphas, cfg.val_fraction, cfg.seed)
    fit_seconds = time.perf_counter() - fit_start
    for name, r in report.items():
        print(f"[stage 1] {name}: alpha {r['alpha']}, validation R^2 {r['val_r2']:.3f}, "
              f"Spearman {r['val_spearman']} ({r['labelled']} labelled)", flush=True)

    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "regression.safetensors.tmp"
    save_file({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)}, str(tmp),
              metadata={"attributes": json.dumps(attributes), "embedded_by": json.dumps(embedding_identity(cfg))})
    os.replace(tmp, out_dir / "regression.safetensors")
    result = {"attributes": attributes, "sources": sources, "objectives": report, "embedding": out["stats"],
              "fit_seconds": round(fit_seconds, 2), "wall_seconds": round(time.perf_counter() - start, 2),
              "backbone": cfg.model_name_or_path, "max_length": cfg.max_length}
    atomic_write_json(out_dir / "stage1.json", result)
    return result


def claim_output_dir(cfg: ArmoConfig, finished: tuple[str, ...], stage: str) -> None:
    """Refuse an output_dir holding what an earlier run finished (`finished` files) unless cfg.overwrite; with it,
    the earlier export's card, results and config go first, so a kill never leaves them beside new weights (an
    exported model without its config.json is not loaded as one)."""
    from rm_core.errors import UserInputError

    out = Path(cfg.output_dir)
    found = [name for name in finished if (out / name).is_file()]
    if found and not cfg.overwrite:
        raise UserInputError(f"{out} holds an earlier run's {', '.join(found)}: {stage} would replace it; pass "
                             "--overwrite true to do so (or choose another --output_dir)")
    if found:
        for name in ("README.md", "eval_results.json", "config.json"):
            (out / name).unlink(missing_ok=True)


def embedding_identity(cfg: ArmoConfig) -> dict:
    """What the regression's inputs were computed with: the backbone by content (or Hub commit), the dtype it ran
    in and max_length. Stage 2 applies the regression only to embeddings of the same (train_gating.main)."""
    from rm_core.models import dtype_choice
    from rm_core.resume import model_fingerprint

    backbone = {k: v for k, v in model_fingerprint(cfg.model_name_or_path).items() if k != "path"}
    return {"backbone": backbone, "dtype": dtype_choice(cfg.dtype)[0], "max_length": cfg.max_length}


def run_stage(main, cfg: ArmoConfig, stage: str, track=None) -> dict:
    """A stage as a command: --quiet (no progress bars), then `main(cfg)` inside a run of --report_to
    (rm_core.tracking; the main process only) that `track(tracker, results)` fills."""
    from rm_core.embeddings import process_state
    from rm_core.tracking import apply_run_args, command_run

    apply_run_args(cfg)
    with command_run(cfg, f"{stage}-{Path(cfg.output_dir).name}", enabled=process_state().is_main_process) as tracker:
        results = main(cfg)
        if results and track is not None:
            track(tracker, results)
    return results


def track_regression(tracker, results: dict) -> None:
    """Stage 1 to the tracker: validation R^2 / Spearman / alpha per objective (a table and the summary)."""
    objectives = results.get("objectives", {})
    tracker.log_table("objectives", [{"objective": name, **{k: v for k, v in r.items() if not isinstance(v, dict)}}
                                     for name, r in objectives.items()])
    tracker.summary({"objectives": {name: {k: r[k] for k in ("val_r2", "val_spearman", "alpha") if k in r}
                                    for name, r in objectives.items()},
                     "embedding": results.get("embedding", {}), "fit_seconds": results.get("fit_seconds")})


def cli() -> None:  # `rm-train-armo-regression`, `python -m armo_rm.train_regression` or `python <this file>`
    run_recipe(lambda cfg: run_stage(main, cfg, "armo-regression", track_regression), make_parser)


if __name__ == "__main__":
    cli()
