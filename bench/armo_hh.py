"""ArmoRM on a frozen SmolLM2-135M-Instruct, beside the BT recipe: accuracy, wall time, embedding speed.

    python -m bench.armo_hh                      # about 35 minutes alone on 2 cores, most of it embeddings

Variants (one shared embedding cache, so each response is embedded once):
- armo-64:  stage 1 + 2 on the same 64 HH-RLHF train pairs as the BT quality figure (bench/bt_hh.py);
- armo-full: the offline multi-objective set, HH-RLHF (first 300 train pairs: relative harmlessness) and
  GSM8K labelled solutions (first 100 training questions: correctness), plus verbosity from length;
- armo-64-2sided, armo-full-2sided: the same, with the verbosity debiasing applied in both directions
  (ArmoRM removes only a positive correlation with length; the harmlessness objective here is negatively
  correlated with it).
Tests: the 446 HH-RLHF test pairs of the fixed split and the 419 LLMBar (chat-hard llmbar) pairs, scored
from cached embeddings (max_length 1024). A check then scores 20 LLMBar pairs through judges.load on the
exported checkpoint and compares with the cached-embedding scores.
Outputs: bench/runs/armo/ (git-ignored), results in bench/runs/armo/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs" / "armo"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hh_pairs", type=int, default=300)
    p.add_argument("--gsm8k_questions", type=int, default=100)
    p.add_argument("--max_test_pairs", type=int, default=None)
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--variants", nargs="+", default=["armo-64", "armo-full", "armo-64-2sided", "armo-full-2sided"])
    p.add_argument("--no_check", action="store_true", help="skip the judge-path check")
    args = p.parse_args()

    from armo_rm import train_gating, train_regression
    from armo_rm.config import ArmoConfig
    from rm_core.hub import atomic_write_json

    sources = {"armo-64": ["offline:hh-harmless[64]"],
               "armo-full": [f"offline:hh-harmless[{args.hh_pairs}]", f"offline:gsm8k[{args.gsm8k_questions}]"]}
    path = RUNS / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["budget"] = vars(args)
    for variant in args.variants:  # "<name>-2sided": the same data, debiased in both directions
        base, two_sided = variant.removesuffix("-2sided"), variant.endswith("-2sided")
        cfg = ArmoConfig(model_name_or_path=args.model, output_dir=str(RUNS / variant),
                         embedding_cache=str(RUNS / "embeddings"), max_length=args.max_length,
                         ratings_sources=sources[base], preference_sources=sources[base],
                         max_test_pairs=args.max_test_pairs, debias_two_sided=two_sided,
                         overwrite=True)  # a bench run replaces its own earlier run of the variant
        start = time.perf_counter()
        stage1 = train_regression.main(cfg)
        stage2 = train_gating.main(cfg)
        results[variant] = {"stage1": stage1, "stage2": stage2, "wall_seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(RUNS / "results.json", results)

    if args.no_check:
        return
    # the exported checkpoint through the judge path equals the cached-embedding scores
    import judges
    from armo_rm.data import load_preferences, pair_items
    from judges.base import conversation

    ckpt = RUNS / "armo-full"
    judge = judges.load(str(ckpt), max_length=args.max_length)
    prefs = load_preferences("offline:llmbar")[:20]
    convs = [conversation(prompt, response) for prompt, response in pair_items(prefs)]
    start = time.perf_counter()
    judge_scores = judge.score(convs)
    judge_seconds = time.perf_counter() - start
    from armo_rm.train_regression import embed_items

    cfg = ArmoConfig(model_name_or_path=args.model, embedding_cache=str(RUNS / "embeddings"), max_length=args.max_length)
    cached = embed_items(cfg, pair_items(prefs), "check")
    heads = judge.model.heads(cached["embeddings"], cached["prompt_embeddings"]).score.tolist()
    results["judge_path_check"] = {"pairs": 20, "max_abs_diff": max(abs(a - b) for a, b in zip(judge_scores, heads)),
                                   "judge_seconds": round(judge_seconds, 2)}
    atomic_write_json(RUNS / "results.json", results)
    print(json.dumps({v: {"test": {s: e["accuracy"] for s, e in results[v]["stage2"]["test"].items()},
                          "wall_seconds": results[v]["wall_seconds"]} for v in args.variants}, indent=1))
    print(json.dumps(results["judge_path_check"]))


if __name__ == "__main__":
    main()
