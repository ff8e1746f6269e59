"""Decision-tree RM over ArmoRM's attribute heads: imitating the BT judge, and fitted to human labels.

    python -m bench.decision_tree_hh          # after bench/armo_hh.py and bench/bt_hh.py --pairs 64

1. collect_preferences: the first --train_pairs HH-RLHF train pairs, the 446 HH test pairs and the 419
   LLMBar pairs, labelled by `human` (the data set) and `bt` (bench/runs/bt_hh/ours-64, the BT recipe at its
   benchmark budget; max_length 256 on HH as in its figure, 1024 on LLMBar).
2. fit_tree on the train pairs, features from the ArmoRM checkpoint bench/runs/armo/armo-full (its embedding
   cache is reused), once imitating `bt` and once on `human` labels; held-out agreement with the imitated
   judge and accuracy against the human labels, per depth 1..6.
Outputs: bench/runs/decision_tree/ (git-ignored); summary in bench/runs/decision_tree/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs" / "decision_tree"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train_pairs", type=int, default=300)
    p.add_argument("--bt", default=str(ROOT / "bench" / "runs" / "bt_hh" / "ours-64"))
    p.add_argument("--armo", default=str(ROOT / "bench" / "runs" / "armo" / "armo-full"))
    p.add_argument("--embedding_cache", default=str(ROOT / "bench" / "runs" / "armo" / "embeddings"))
    args = p.parse_args()

    import judges
    from armo_rm.data import load_preferences
    from decision_tree import fit_tree
    from decision_tree.collect_preferences import collect, present
    from rm_core.hub import atomic_write_json
    from rm_core.resume import judge_fingerprint

    results = {"budget": vars(args), "collect": {}, "trees": {}}
    sets = {"train": (f"offline:hh-harmless[{args.train_pairs}]", 256), "hh-test": ("offline:hh-harmless-test", 256),
            "llmbar": ("offline:llmbar", 1024)}
    for name, (source, max_length) in sets.items():
        start = time.perf_counter()
        bt = judges.load(args.bt, max_length=max_length)
        report = collect({"human": "human", "bt": bt}, present(load_preferences(source)), RUNS / f"prefs-{name}",
                         fingerprints={"bt": judge_fingerprint(args.bt)}, settings={"max_length": max_length})
        results["collect"][name] = {"report": report, "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(RUNS / "results.json", results)
    while not (Path(args.armo) / "config.json").is_file():  # bench/armo_hh.py may still be running
        time.sleep(30)
    tests = [str(RUNS / "prefs-hh-test"), str(RUNS / "prefs-llmbar")]
    for judge in ("bt", "human"):
        start = time.perf_counter()
        info = fit_tree.main(["--preferences", str(RUNS / "prefs-train"), "--judge", judge, "--attribute_model",
                              args.armo, "--embedding_cache", args.embedding_cache, "--output_dir",
                              str(RUNS / f"tree-{judge}"), "--test_preferences", *tests])
        results["trees"][judge] = {"info": info, "seconds": round(time.perf_counter() - start, 1),
                                   "rules": (RUNS / f"tree-{judge}" / "rules.txt").read_text()}
        atomic_write_json(RUNS / "results.json", results)
    print(json.dumps({j: {t: {k: v for k, v in e.items() if k != "by_depth"} for t, e in r["info"]["test"].items()}
                      for j, r in results["trees"].items()}, indent=1))


if __name__ == "__main__":
    main()
