"""SSRM: semi-supervised reward modelling by iterative self-training (He et al., 2024), for the pair-PM.

    python pair_pm/ssrm.py --config pair_pm/configs/smollm2-135m-cpu.yaml --labelled_fraction 0.2 \
        --rounds 2 --confidence 0.8 --output_dir outputs/ssrm

Round 0 trains on the labelled part of the train split (the first `labelled_fraction` of it). Each later
round:
1. scores every unlabelled pair with the current model, order-debiased: p = P(first response better);
2. keeps the pairs whose confidence max(p, 1 - p) passes the threshold: a fixed `--confidence`, or
   `--confidence_quantile q` (keep the most confident (1 - q) share);
3. **applies the pseudo-label**: a kept pair the model prefers the other way round is swapped, so the model's
   preferred response becomes "chosen" (RLHFlow's implementation keeps the data set's order, which trains
   on the true labels and is not self-training);
4. trains again on labelled + pseudo-labelled pairs (from the base model, or continuing: --continue_training).
Every round reports the pseudo-label accuracy against the held-back true labels (which the model never
sees) and the held-out test accuracy. A killed run resumes at the first round without results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from rm_core.errors import UserInputError, run_recipe


@dataclass
class SSRMArguments:
    labelled_fraction: float = field(default=0.2, metadata={"help": "Share of the train split with labels."})
    rounds: int = field(default=2, metadata={"help": "Self-training rounds after the supervised round 0."})
    confidence: float | None = field(default=0.8, metadata={"help": "Keep pseudo-labels with max(p, 1-p) >= this."})
    confidence_quantile: float | None = field(default=None, metadata={
        "help": "Instead of a fixed threshold: keep the (1 - this) share of pairs with the highest confidence (0.5: "
                "the top half; pairs with p = 0.5, no preference, are never kept)."})
    continue_training: bool = field(default=False, metadata={
        "help": "Each round continues from the previous model instead of restarting from the base model."})


def _row(pref: dict, swap: bool = False) -> dict:
    """A Preference row as an explicit-prompt data row (the format the recipe reads back)."""
    chosen, rejected = (pref["rejected"], pref["chosen"]) if swap else (pref["chosen"], pref["rejected"])
    return {"id": pref["id"], "subset": pref.get("subset", ""), "prompt": pref["prompt"], "chosen": chosen,
            "rejected": rejected}


def select_pseudo_labels(verdict_ps: list[float | None], confidence: float | None,
                         quantile: float | None) -> tuple[list[int], float]:
    """Indices of the pairs to keep and the threshold used (the lowest confidence kept). A pair the model failed
    on, or has no preference on (p = 0.5 exactly: no label to give), is never kept. With `quantile` q the
    (1 - q) share of the other pairs with the highest confidence is kept, exactly that many (ties at the
    threshold broken by position), never every pair tied at the threshold."""
    conf = [None if p is None or p == 0.5 else max(p, 1 - p) for p in verdict_ps]
    if quantile is not None:
        if not 0 <= quantile < 1:
            raise ValueError(f"confidence_quantile must be in [0, 1), got {quantile}")
        ranked = sorted((i for i, c in enumerate(conf) if c is not None), key=lambda i: (-conf[i], i))
        keep = sorted(ranked[: len(ranked) - int(quantile * len(ranked))])
        return keep, min((conf[i] for i in keep), default=1.0)
    if confidence is None:
        raise ValueError("give --confidence or --confidence_quantile")
    if not 0.5 <= confidence <= 1:
        raise ValueError(f"confidence must be in [0.5, 1], got {confidence}")
    return [i for i, c in enumerate(conf) if c is not None and c >= confidence], confidence


def pseudo_label(unlabelled: list[dict], verdict_ps: list[float | None], keep: list[int]) -> tuple[list[dict], dict]:
    """The kept pairs with the model's label applied (swapped where it prefers the data set's rejected), and
    the pseudo-label accuracy against the true labels."""
    rows, agree = [], 0
    for i in keep:
        model_agrees = verdict_ps[i] > 0.5  # p is P(true chosen better): > 0.5 means the pseudo-label is right
        agree += model_agrees
        rows.append(_row(unlabelled[i], swap=not model_agrees))
    return rows, {"kept": len(keep), "of": len(unlabelled),
                  "no_preference": sum(p == 0.5 for p in verdict_ps),  # never kept: the model gave no label
                  "pseudo_label_accuracy": agree / len(keep) if keep else None}


def run_ssrm(data_args, training_args, model_args, ssrm: SSRMArguments) -> dict:
    from judges.base import pair_texts
    from pair_pm import train as recipe
    from pair_pm.judge import PairPMJudge
    from rm_core.hub import atomic_write_json, atomic_write_jsonl
    from rm_core.pipeline import load_preference_splits, training_fingerprint, training_inputs
    from rm_core.resume import check_or_write_fingerprint, model_fingerprint

    if not 0 < ssrm.labelled_fraction < 1:  # 0 or less became one labelled pair
        raise UserInputError(f"--labelled_fraction must be in (0, 1), got {ssrm.labelled_fraction}")
    out = Path(training_args.output_dir)
    train, test, _ = load_preference_splits(data_args)
    # A resume takes the finished rounds as they are: only from a run of the same base model, pairs and settings.
    out.mkdir(parents=True, exist_ok=True)
    pairs = json.dumps([train, test], sort_keys=True, ensure_ascii=False).encode()
    check_or_write_fingerprint(out, {
        "base_model": model_fingerprint(model_args.model_name_or_path, model_args.model_revision),
        "pairs_sha256": hashlib.sha256(pairs).hexdigest(),
        "ssrm": {f.name: getattr(ssrm, f.name) for f in fields(ssrm)},
        "training": {**training_fingerprint(training_args, {"model_options": training_inputs(model_args, None)[
                         "model_options"]})["settings"],  # LoRA, dtype, quantisation: as every recipe's resume
                     "max_steps": training_args.max_steps, "num_train_epochs": training_args.num_train_epochs},
    }, store_files=[out / "ssrm_results.json"], what="SSRM run",
        hint="delete ssrm_results.json and fingerprint.json to start again, or use another --output_dir")
    n_labelled = max(1, round(ssrm.labelled_fraction * len(train)))
    labelled, unlabelled = train[:n_labelled], train[n_labelled:]
    if not unlabelled:
        raise ValueError("labelled_fraction leaves no unlabelled pairs")
    test_path = out / "data" / "test.jsonl"
    atomic_write_jsonl(test_path, [_row(p) for p in test])
    summary_path = out / "ssrm_results.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"rounds": []}
    summary.update(labelled=len(labelled), unlabelled=len(unlabelled), test=len(test),
                   args={f.name: getattr(ssrm, f.name) for f in fields(ssrm)})
    base_model = model_args.model_name_or_path
    pseudo: list[dict] = []
    for r in range(ssrm.rounds + 1):
        round_dir = out / f"round-{r}"
        done = next((x for x in summary["rounds"] if x["round"] == r), None)
        if done is None:
            data_dir = out / "data" / f"round-{r}"
            atomic_write_jsonl(data_dir / "train.jsonl", [_row(p) for p in labelled] + pseudo)
            atomic_write_jsonl(data_dir / "test.jsonl", [_row(p) for p in test])
            data_args.dataset_name, data_args.split_rule, data_args.dataset_test_split = str(data_dir), None, "test"
            # the round's own files: explicit rows in train/test.jsonl, whatever the user's source was
            data_args.dataset_format, data_args.dataset_train_split, data_args.dataset_data_dir = "explicit", "train", None
            data_args.max_train_pairs = data_args.max_eval_pairs = None
            training_args.output_dir = str(round_dir)
            if ssrm.continue_training and r > 0:
                model_args.model_name_or_path = str(out / f"round-{r - 1}")
            results = recipe.main(data_args, training_args, model_args)
            done = {"round": r, "train_pairs": len(labelled) + len(pseudo), "pseudo": summary.get("next_pseudo"),
                    "test": results.get("held_out")}
            summary["rounds"].append(done)
            atomic_write_json(summary_path, summary)
            accuracy = (done["test"] or {}).get("accuracy")
            print(f"[ssrm] round {r}: " + (f"test accuracy {accuracy:.4f}" if accuracy is not None else
                                           "no held-out set (every test pair is also a training pair, or none)"),
                  flush=True)
        if r == ssrm.rounds or any(x["round"] == r + 1 for x in summary["rounds"]):
            continue  # the last round, or the next one already trained (a resumed run)
        # pseudo-label the unlabelled pairs with this round's model, for the next round
        judge = PairPMJudge.from_pretrained(str(round_dir), max_length=training_args.max_length)
        items = [(p["prompt"], *pair_texts(p)) for p in unlabelled]
        ps = [v.p for v in judge.judge_pairs(items)]
        keep, threshold = select_pseudo_labels(ps, ssrm.confidence, ssrm.confidence_quantile)
        pseudo, stats = pseudo_label(unlabelled, ps, keep)
        summary["next_pseudo"] = {**stats, "threshold": threshold}
        print(f"[ssrm] round {r} pseudo-labels: kept {stats['kept']}/{stats['of']} at confidence >= "
              f"{threshold:.3f} ({stats['no_preference']} with no preference, never kept); accuracy vs true labels "
              f"{stats['pseudo_label_accuracy']}", flush=True)
    model_args.model_name_or_path = base_model
    summary.pop("next_pseudo", None)
    atomic_write_json(summary_path, summary)
    return summary


def make_parser():
    from trl import ModelConfig, TrlParser

    from pair_pm.config import PairPMConfig
    from rm_core.args import DataArguments

    return TrlParser((DataArguments, PairPMConfig, ModelConfig, SSRMArguments))


def cli() -> None:  # `python pair_pm/ssrm.py`, `python -m pair_pm.ssrm`, `rm-train-pair-pm-ssrm`
    run_recipe(run_ssrm, make_parser)


if __name__ == "__main__":
    cli()
