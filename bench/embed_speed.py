"""Embedding throughput of rm_core.embeddings (ArmoRM / decision-tree features) on real LLMBar items.

    python -m bench.embed_speed --items 64 --batch_sizes 1 4      # ~1-2 minutes alone on 2 cores

Each run embeds the same first --items (prompt, response) items of LLMBar into a fresh cache (nothing
reused), SmolLM2-135M-Instruct, fp32 unless --dtype; tokens/s counts every token run through the backbone.
"""

from __future__ import annotations

import argparse
import json
import tempfile


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    args = p.parse_args()

    import torch

    from armo_rm.data import load_preferences, pair_items
    from rm_core.embeddings import extract_embeddings, load_backbone

    model, tok = load_backbone(args.model, args.dtype)
    items = pair_items(load_preferences("offline:llmbar"))[: args.items]
    out = {"items": args.items, "dtype": args.dtype, "threads": torch.get_num_threads(), "runs": {}}
    for bs in args.batch_sizes:
        with tempfile.TemporaryDirectory() as cache:
            stats = extract_embeddings(model, tok, items, cache, args.model, args.max_length, bs)["stats"]
        out["runs"][bs] = {"tokens": stats["tokens_computed"], "seconds": stats["seconds"],
                           "tokens_per_s": stats["tokens_per_s"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
