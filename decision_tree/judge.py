"""The decision-tree reward model: a shallow tree over attribute-score differences, saved as data.

A checkpoint is a folder:
    config.json   {"rm_family": "decision_tree", "attribute_model": <see below>, "feature_names", ...}
    tree.json     the fitted tree as nodes (feature, threshold, children, class counts): JSON, never a pickle
    rules.txt     the rules as text; tree.png the drawing (fit_tree.py)

Features of a pair (a, b): for each attribute of the attribute model (ArmoRM's regression heads, or any
judge with `attribute_scores`), score(a) - score(b); then the length difference in words. The tree was
fitted on both orders of every pair, and a comparison reads it in both orders too:
P(a > b) = (P_tree(a, b) + 1 - P_tree(b, a)) / 2, so swapping a and b gives exactly 1 - P.

The attribute model a checkpoint names is loaded only from a folder inside the checkpoint (fit_tree.py links a
local attribute model into `attribute_model/`) or, for a Hub id, when the user confirms it: by passing
`attribute_model=` (the CLIs' --attribute_model) or `trust_attribute_model=True`. An absolute path or one that
leaves the folder is refused, so a downloaded checkpoint cannot make this machine load an arbitrary local
model. Remote code stays off: the attribute model is loaded with judges.load, which never trusts remote code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from judges.base import Judge, PairVerdict, Prompt, conversation, reply_text
from rm_core.errors import UserInputError

LENGTH_FEATURE = "length_diff_words"


def tree_to_json(tree, feature_names: list[str]) -> dict:
    """A fitted sklearn DecisionTreeClassifier (classes 0/1) as plain data."""
    t = tree.tree_
    if list(tree.classes_) != [0, 1]:
        raise ValueError(f"expected classes [0, 1], got {list(tree.classes_)}")
    nodes = []
    for i in range(t.node_count):
        leaf = t.children_left[i] == -1
        value = t.value[i][0]  # class fractions (sklearn >= 1.4) or counts (older): the ratio is the same
        nodes.append({"id": i, "leaf": bool(leaf),
                      "feature": None if leaf else feature_names[t.feature[i]],
                      "threshold": None if leaf else float(t.threshold[i]),
                      "left": None if leaf else int(t.children_left[i]),
                      "right": None if leaf else int(t.children_right[i]),
                      "samples": int(t.n_node_samples[i]),
                      "p_a": float(value[1] / max(value.sum(), 1e-12))})
    return {"format": "decision-tree-rm-v1", "feature_names": feature_names, "nodes": nodes,
            "depth": int(tree.get_depth()), "leaves": int(tree.get_n_leaves())}


class TreeData:
    """Prediction and decision paths from the JSON tree (no scikit-learn needed to serve it)."""

    def __init__(self, data: dict):
        if data.get("format") != "decision-tree-rm-v1":
            raise ValueError(f"not a decision-tree-rm-v1 tree (format {data.get('format')!r})")
        self.data = data
        self.feature_names = data["feature_names"]
        self.nodes = data["nodes"]
        self.index = {n: i for i, n in enumerate(self.feature_names)}

    def path(self, x: Sequence[float]) -> list[dict]:
        """Nodes visited for feature vector x: each split with the value seen and the branch taken; the leaf."""
        steps, node = [], self.nodes[0]
        while not node["leaf"]:
            value = float(x[self.index[node["feature"]]])
            go_left = value <= node["threshold"]  # sklearn's rule
            steps.append({"feature": node["feature"], "threshold": node["threshold"], "value": value,
                          "branch": "<=" if go_left else ">"})
            node = self.nodes[node["left"] if go_left else node["right"]]
        steps.append({"leaf": node["id"], "p_a": node["p_a"], "samples": node["samples"]})
        return steps

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.path(x)[-1]["p_a"] for x in np.atleast_2d(X)])


def pair_features(attr_a: list[dict], attr_b: list[dict], len_a: list[int], len_b: list[int],
                  attributes: list[str]) -> np.ndarray:
    """[N, K + 1]: attribute differences a - b, then the length difference in words."""
    return np.array([[a[k] - b[k] for k in attributes] + [la - lb]
                     for a, b, la, lb in zip(attr_a, attr_b, len_a, len_b)], dtype=np.float64)


def feature_names(attributes: list[str]) -> list[str]:
    return [f"{a}_diff" for a in attributes] + [LENGTH_FEATURE]


def words(text: str) -> int:
    return len(text.split())


def resolve_attribute_model(folder: Path, stored: str, trusted: bool = False) -> str:
    """The checkpoint's attribute model as a judges.load spec: a folder inside the checkpoint, or a Hub id the
    user confirmed. Anything else is refused with the way out in the message."""
    folder = Path(folder).resolve()
    inside = (folder / stored).resolve()
    if not Path(stored).is_absolute() and inside.is_relative_to(folder) and inside.exists():
        return str(inside)
    how = f"pass attribute_model={stored!r} (--attribute_model) to load it anyway"
    if Path(stored).is_absolute() or ".." in Path(stored).parts or Path(stored).exists():
        raise ValueError(f"{folder}: the checkpoint names the attribute model {stored!r}, a path outside it; only a "
                         f"folder inside the checkpoint is loaded from its config ({how})")
    if not trusted:
        raise ValueError(f"{folder}: the checkpoint names the attribute model {stored!r} (a Hub id); confirm it: "
                         f"{how}, or trust_attribute_model=True (--trust_attribute_model)")
    return stored


class DecisionTreeJudge(Judge):
    pointwise = False
    default_rank_method = "bt"

    def __init__(self, tree: TreeData, attribute_judge, attributes: list[str]):
        super().__init__()
        self.tree = tree
        self.attribute_judge = attribute_judge
        self.attributes = attributes
        expected = feature_names(attributes)
        if tree.feature_names != expected:
            raise ValueError(f"the tree's features {tree.feature_names} do not match the attribute model's {expected}")

    @classmethod
    def from_pretrained(cls, name_or_path: str, attribute_model: str | None = None, revision: str | None = None,
                        trust_attribute_model: bool = False, **judge_kwargs):
        """judge_kwargs (device, dtype, max_length, batch_size, embedding_cache, ...) go to the attribute model.
        `attribute_model` (the user's choice) overrides the checkpoint's; see the module docstring."""
        import judges

        folder = Path(name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(name_or_path, revision=revision))
        config = json.loads((folder / "config.json").read_text())
        tree_bytes = (folder / "tree.json").read_bytes()
        if config.get("tree_sha256") not in (None, hashlib.sha256(tree_bytes).hexdigest()):
            raise UserInputError(f"{folder / 'tree.json'} is not the tree {folder / 'config.json'} was saved with (a "
                                 "save cut by a kill, or an edited file): fit the tree again")
        tree = TreeData(json.loads(tree_bytes))
        spec = attribute_model or resolve_attribute_model(folder, config["attribute_model"], trust_attribute_model)
        if attribute_model is None and config.get("attribute_model_sha256") and \
                config["attribute_model"] == "attribute_model":
            from rm_core.resume import model_fingerprint

            if model_fingerprint(str(folder / "attribute_model"))["sha256"] != config["attribute_model_sha256"]:
                raise UserInputError(f"{folder / 'attribute_model'} is not the attribute model the tree was fitted on "
                                     "(its files changed since): fit the tree again")
        return cls(tree, judges.load(spec, **judge_kwargs), list(config["attributes"]))

    def features(self, items: Sequence[tuple[Prompt, str, str]]) -> tuple[np.ndarray, list[dict], list[dict]]:
        # a response of several turns as the collector showed it when the tree was fitted: its turns labelled in
        # one text (judges.base.response_text), read by the attribute model and counted in words as such
        items = [(p, reply_text(a), reply_text(b)) for p, a, b in items]
        convs = [conversation(p, r) for p, a, b in items for r in (a, b)]
        scores = self.attribute_judge.attribute_scores(convs)
        attr_a, attr_b = scores[0::2], scores[1::2]
        X = pair_features(attr_a, attr_b, [words(a) for _, a, _ in items], [words(b) for _, _, b in items],
                          self.attributes)
        return X, attr_a, attr_b

    def judge_pairs(self, items: Sequence[tuple[Prompt, str, str]]) -> list[PairVerdict]:
        X, _, _ = self.features(items)
        forward, backward = self.tree.predict(X), self.tree.predict(-X)
        # a NaN/inf attribute score would still walk the tree (every comparison with NaN is False) to a leaf:
        # such a pair is a failure (NaN here, counted by the judge_pairs check), never that leaf's number
        finite = np.isfinite(X).all(axis=1)
        return [PairVerdict(float(f) if ok else math.nan, float(1.0 - b) if ok else math.nan)
                for f, b, ok in zip(forward, backward, finite)]

    def _compare(self, items: list[tuple[Prompt, str, str]]) -> list[float | None]:
        return [v.p for v in self.judge_pairs(items)]

    def explain(self, prompt: Prompt, response_a: str, response_b: str) -> dict:
        """The preference, both responses' attribute scores and the decision path in each order."""
        X, attr_a, attr_b = self.features([(prompt, response_a, response_b)])
        forward, backward = self.tree.path(X[0]), self.tree.path(-X[0])
        p = (forward[-1]["p_a"] + 1.0 - backward[-1]["p_a"]) / 2
        return {"p_a_better": p, "attributes_a": attr_a[0], "attributes_b": attr_b[0],
                "features": dict(zip(self.tree.feature_names, X[0].tolist())),
                "path": forward, "path_swapped": backward}
