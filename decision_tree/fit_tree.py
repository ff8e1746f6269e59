"""Fit an interpretable decision tree to a judge's preferences over attribute-score differences.

    python decision_tree/fit_tree.py --preferences outputs/dt-prefs --judge bt \
        --attribute_model outputs/armo-smollm2-135m --output_dir outputs/dt-bt \
        --test_preferences outputs/dt-prefs-test

- Labels: the named judge's verdicts from collect_preferences.py (order-averaged P > 0.5: a better; ties
  and failures left out and counted).
- Features (decision_tree/judge.py): attribute differences a - b from the attribute model
  (`judges.load`: an ArmoRM checkpoint, or any judge with `attribute_scores`) and the length difference.
- Each pair trains in both orders (features negated, label flipped), so the tree has no "a wins" prior.
- scikit-learn DecisionTreeClassifier; max_depth and min_samples_leaf chosen by grouped k-fold
  cross-validation (both orders of a pair stay in one fold); CV accuracy per depth is reported, and
  held-out accuracy per depth (against the judge and the human label) when test preferences are given.
- Saved as data: tree.json, config.json (rm_family decision_tree, attribute model), rules.txt, tree.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

from rm_core.errors import check_output_dir, run_recipe


def judge_identity(folder: str | Path, judge: str) -> dict | None:
    """What the folder's fingerprint.json records of `judge` (a checkpoint by content, an API model by name and
    endpoint, the prompts), less the dtype and numerics it ran in; None where the folder records none."""
    from rm_core.resume import fingerprint_path

    path = fingerprint_path(folder)
    if not path.is_file():
        return None
    recorded = (json.loads(path.read_text(encoding="utf-8")).get("judges") or {}).get(judge)
    return None if recorded is None else {k: v for k, v in recorded.items() if k not in ("dtype", "numerics")}


def check_same_judge(train_folder: str | Path, test_folder: str | Path, judge: str) -> None:
    """Labels are matched across folders by the judge's name: refuse two folders where that name is two judges
    (agreement with "the judge" would compare the tree with another model's verdicts)."""
    from rm_core.errors import UserInputError
    from rm_core.resume import differences

    a, b = judge_identity(train_folder, judge), judge_identity(test_folder, judge)
    differs = differences(a, b) if a is not None and b is not None else []
    if differs:
        raise UserInputError(f"judge {judge!r} is not the same judge in {train_folder} and {test_folder} "
                             f"(fingerprint.json differs in {'; '.join(differs)}): collect both with one judge")


def judge_labels(folder: str | Path, judge: str) -> tuple[list[dict], np.ndarray, dict]:
    """(pairs with a decided verdict, y: 1 if a better, counts of what was left out)."""
    from decision_tree.collect_preferences import decided, read_jsonl
    from rm_core.data import check_unique_ids
    from rm_core.errors import MissingPathError, UserInputError

    if not (Path(folder) / "pairs.jsonl").is_file():
        raise MissingPathError(f"{folder}: no pairs.jsonl (expected a collect_preferences.py output folder)")
    pairs = read_jsonl(Path(folder) / "pairs.jsonl")
    # labels are keyed by pair id: a folder with a repeated id (collected before ids were checked) would give
    # every pair of that id the last one's label
    check_unique_ids(((p["id"], i) for i, p in enumerate(pairs)), Path(folder) / "pairs.jsonl")
    rows = {r["pair"]: r for r in read_jsonl(Path(folder) / "labels.jsonl") if r["judge"] == judge}
    if not rows:
        raise UserInputError(f"no labels from judge {judge!r} in {folder}")
    kept, y, left_out = [], [], {"missing": 0, "failed": 0, "tie": 0}
    for p in pairs:
        r = rows.get(p["id"])
        w = None if r is None else decided(r)
        if r is None:
            left_out["missing"] += 1
        elif w is None:
            left_out["failed"] += 1
        elif w == 0:
            left_out["tie"] += 1
        else:
            kept.append(p)
            y.append(1 if w > 0 else 0)
    return kept, np.array(y), left_out


def _comparison(pair: dict) -> str:
    """A presented pair's content (prompt and the two responses, in either order), as canonical JSON."""
    return json.dumps([pair["prompt"], sorted([pair["a"], pair["b"]])], sort_keys=True, ensure_ascii=False)


def features_for(attribute_judge, pairs: list[dict]) -> tuple[np.ndarray, list[str]]:
    from decision_tree.judge import pair_features, words
    from judges.base import conversation

    convs = [conversation(p["prompt"], r) for p in pairs for r in (p["a"], p["b"])]
    scores = attribute_judge.attribute_scores(convs)
    attributes = list(scores[0]) if scores else []
    X = pair_features(scores[0::2], scores[1::2], [words(p["a"]) for p in pairs], [words(p["b"]) for p in pairs],
                      attributes)
    return X, attributes


def check_features(X: np.ndarray, where: str, attribute_model: str) -> None:
    """Stop (rm_core.finite.check_final_rewards) before fitting or scoring on a NaN/inf attribute score: a tree
    splits NaN features without a word (scikit-learn routes missing values), which would be a silent wrong tree."""
    from rm_core.finite import check_final_rewards

    check_final_rewards(X, f"the attribute-score features of {where}",
                        cause=f"the attribute model {attribute_model} gives non-finite scores",
                        advice="Check (or retrain) the attribute model; no tree was saved.")


def both_orders(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    groups = np.arange(len(y))
    return np.vstack([X, -X]), np.concatenate([y, 1 - y]), np.concatenate([groups, groups])


def symmetric_scorer(estimator, X: np.ndarray, y: np.ndarray) -> float:
    """CV score with the rule the judge serves: read both orders, P = 0.5 is a tie and counts wrong. (Plain
    accuracy on the doubled data would charge a dead-zone pair 50% instead, and so favour too-shallow trees.)"""
    p = (estimator.predict_proba(X)[:, 1] + 1.0 - estimator.predict_proba(-X)[:, 1]) / 2
    return float(np.mean(np.where(y == 1, p > 0.5, p < 0.5)))


def fit(X: np.ndarray, y: np.ndarray, depths: list[int], min_leafs: list[int], folds: int = 5, seed: int = 0):
    """(best tree fitted on all pairs, CV table {depth: {min_leaf: accuracy}}, best params)."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.tree import DecisionTreeClassifier

    X2, y2, groups = both_orders(X, y)
    search = GridSearchCV(DecisionTreeClassifier(random_state=seed),
                          {"max_depth": depths, "min_samples_leaf": min_leafs},
                          cv=GroupKFold(n_splits=folds), scoring=symmetric_scorer)
    search.fit(X2, y2, groups=groups)
    table: dict[int, dict[int, float]] = {}
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        table.setdefault(params["max_depth"], {})[params["min_samples_leaf"]] = round(float(score), 4)
    return search.best_estimator_, table, search.best_params_


def symmetric_accuracy(tree_data, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of P(a > b) = (P(a, b) + 1 - P(b, a)) / 2 against y; P = 0.5 counts wrong (one tie rule)."""
    p = (tree_data.predict(X) + 1.0 - tree_data.predict(-X)) / 2
    return float(np.mean(np.where(y == 1, p > 0.5, p < 0.5)))


def bundle_attribute_model(spec: str, out: Path) -> str:
    """A local attribute model is copied inside the checkpoint, because a tree checkpoint loads its attribute model
    only from inside itself (decision_tree/judge.py); a Hub id is kept as it is (the user confirms it when
    loading). Copies, not hard links: save_pretrained rewrites a model's files in place, so retraining the source
    would change, through a link, the attribute model of every tree fitted on its old scores."""
    source = Path(spec)
    if not source.is_dir():
        return spec
    target = out / "attribute_model"
    if target.resolve() == source.resolve():
        return "attribute_model"
    tmp = out / "attribute_model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return "attribute_model"


def save(out_dir: str | Path, tree, names: list[str], attributes: list[str], attribute_model: str, info: dict) -> Path:
    from sklearn.tree import export_text

    from decision_tree.judge import tree_to_json
    from rm_core.hub import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attribute_model = bundle_attribute_model(attribute_model, out)
    tree_json = atomic_write_json(out / "tree.json", tree_to_json(tree, names))
    atomic_write_text(out / "rules.txt", export_text(tree, feature_names=names, show_weights=True) + "\n")
    _plot(tree, names, out)
    # config.json last, with the content of the tree and the bundled attribute model it belongs to: a save cut by
    # a kill leaves files that do not match it, which loading refuses (decision_tree/judge.py)
    from rm_core.resume import files_sha256, model_fingerprint

    bundled = {}
    if attribute_model == "attribute_model":
        bundled = {"attribute_model_sha256": model_fingerprint(str(out / "attribute_model"))["sha256"]}
    atomic_write_json(out / "config.json", {"rm_family": "decision_tree", "attribute_model": attribute_model,
                                            "attributes": attributes, "feature_names": names, **info,
                                            "tree_sha256": files_sha256([tree_json])[0], **bundled})
    return out


def _plot(tree, names: list[str], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.tree import plot_tree

        fig, ax = plt.subplots(figsize=(min(4 + 3 * tree.get_n_leaves(), 40), 2 + 2 * tree.get_depth()))
        plot_tree(tree, feature_names=names, class_names=["b better", "a better"], filled=True, ax=ax, fontsize=8)
        fig.savefig(out / "tree.png.tmp.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        os.replace(out / "tree.png.tmp.png", out / "tree.png")
    except ImportError:
        print("[fit_tree] matplotlib is not installed: no tree.png (pip install matplotlib)", flush=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preferences", required=True, help="collect_preferences.py output folder (training pairs)")
    p.add_argument("--judge", required=True, help="the judge whose preferences the tree imitates (or 'human')")
    p.add_argument("--attribute_model", required=True, help="ArmoRM checkpoint or any judge with attribute_scores")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--test_preferences", nargs="*", default=[], help="held-out collect_preferences.py folders")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--min_leafs", type=int, nargs="+", default=[1, 5, 10, 25, 50])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--embedding_cache", default=None, help="ArmoRM embedding cache to read attribute inputs from")
    p.add_argument("--seed", type=int, default=0)
    from rm_core.tracking import add_run_args, apply_run_args, command_run

    args = add_run_args(p).parse_args(argv)  # --quiet, --report_to, --run_name
    check_output_dir(args.output_dir)
    apply_run_args(args)
    with command_run(args, f"fit-tree-{Path(args.output_dir).name}") as tracker:
        info = fit_and_save(args)
        track_fit(tracker, info)
    return info


def track_fit(tracker, info: dict) -> None:
    """--report_to: the CV accuracy per depth as a curve (step = depth), every (depth, min leaf) cell as a table
    (cv_grid), the held-out numbers per depth as a table, and the chosen tree's numbers as the run's summary."""
    for depth, accuracy in sorted(info["cv_accuracy_by_depth"].items()):
        tracker.log({"cv_accuracy_by_depth": accuracy}, step=int(depth))
    tracker.log_table("cv_grid", [{"max_depth": d, "min_samples_leaf": leaf, "accuracy": acc}
                                      for d, leaves in info["cv_accuracy"].items() for leaf, acc in leaves.items()])
    rows = [{"test_set": folder, "max_depth": d, **v} for folder, entry in info["test"].items()
            for d, v in entry.get("by_depth", {}).items()]
    if rows:
        tracker.log_table("held_out_by_depth", rows)
    tracker.summary({"train_pairs": info["train_pairs"], "left_out": info["left_out"], "best": info["best"],
                     "cv_accuracy": max(info["cv_accuracy_by_depth"].values()),
                     "test": {folder: {k: v for k, v in entry.items() if k != "by_depth"}
                              for folder, entry in info["test"].items()}})


def fit_and_save(args) -> dict:
    """Features, CV fit, held-out scores, save (the command without its arguments); returns the info."""
    from sklearn.tree import DecisionTreeClassifier

    import judges
    from decision_tree.judge import TreeData, feature_names, tree_to_json

    for folder in args.test_preferences or []:  # before anything is computed
        check_same_judge(args.preferences, folder, args.judge)
    kwargs = {"embedding_cache": args.embedding_cache} if args.embedding_cache else {}
    attribute_judge = judges.load(args.attribute_model, **kwargs)
    pairs, y, left_out = judge_labels(args.preferences, args.judge)
    X, attributes = features_for(attribute_judge, pairs)
    check_features(X, f"the {len(pairs)} training pairs", args.attribute_model)
    names = feature_names(attributes)
    tree, table, best = fit(X, y, args.depths, args.min_leafs, args.folds, args.seed)
    info = {"judge_imitated": args.judge, "train_pairs": len(pairs), "left_out": left_out, "best": best,
            "cv_accuracy": table, "cv_accuracy_by_depth": {d: max(v.values()) for d, v in table.items()},
            "test": {}}
    X2, y2, _ = both_orders(X, y)
    if not args.test_preferences:
        info["held_out"] = "none: no --test_preferences (cv_accuracy is k-fold cross-validation on the training pairs)"
        print(f"[data] no held-out set ({info['held_out']})", flush=True)
    seen = {_comparison(q) for q in pairs}
    for folder in args.test_preferences:
        test_pairs, test_y, test_left = judge_labels(folder, args.judge)
        fresh = [i for i, q in enumerate(test_pairs) if _comparison(q) not in seen]  # never score a training pair
        test_left["also_in_training_pairs"] = len(test_pairs) - len(fresh)
        test_pairs, test_y = [test_pairs[i] for i in fresh], test_y[fresh]
        if not test_pairs:
            info["test"][str(folder)] = {"pairs": 0, "left_out": test_left,
                                         "note": "no held-out pairs: every decided pair is also a training pair"}
            continue
        human = np.array([1 if q["a_is_chosen"] else 0 for q in test_pairs])
        Xt, _ = features_for(attribute_judge, test_pairs)
        check_features(Xt, f"the {len(test_pairs)} held-out pairs of {folder}", args.attribute_model)
        entry = {"pairs": len(test_pairs), "left_out": test_left, "by_depth": {},
                 "scored_on": "the held-out pairs the imitated judge decided (its ties and failures: left_out)"}
        for depth in args.depths:  # the CV-best leaf size at each depth, refit on all training pairs
            leaf = max(table[depth], key=table[depth].get)
            model = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf, random_state=args.seed).fit(X2, y2)
            data = TreeData(tree_to_json(model, names))
            entry["by_depth"][depth] = {"agreement_with_judge": round(symmetric_accuracy(data, Xt, test_y), 4),
                                        "accuracy_vs_human": round(symmetric_accuracy(data, Xt, human), 4)}
        chosen = TreeData(tree_to_json(tree, names))
        entry["agreement_with_judge"] = round(symmetric_accuracy(chosen, Xt, test_y), 4)
        entry["accuracy_vs_human"] = round(symmetric_accuracy(chosen, Xt, human), 4)
        info["test"][str(folder)] = entry
    out = save(args.output_dir, tree, names, attributes, args.attribute_model, info)
    print((out / "rules.txt").read_text())
    print(json.dumps({k: v for k, v in info.items() if k != "cv_accuracy"}, indent=1))
    return info


def cli() -> None:  # `python decision_tree/fit_tree.py`, `python -m decision_tree.fit_tree`, `rm-fit-tree`
    run_recipe(main)


if __name__ == "__main__":
    cli()
