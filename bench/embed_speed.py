"""Embedding throughput of rm_core.embeddings (ArmoRM / decision-tree features) on real LLMBar items.

    python -m bench.embed_speed --items 64 --batch_sizes 1 4      # ~1-2 minutes alone on 2 cores
    python -m bench.embed_speed --source offline:hh-harmless --items 200 --batch_sizes 2 auto

Each run embeds the same first --items (prompt, response) items of --source (LLMBar by default) into a fresh
cache (nothing reused), SmolLM2-135M-Instruct, fp32 unless --dtype; tokens/s counts every token run through the
backbone. A batch size of `auto` is the extractor's default on this device: rows a forward up to a token budget.
"""

from __future__ import annotations

import argparse
import json
import tempfile


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--batch_sizes", nargs="+", default=["1", "4"], help="rows a forward, or auto (the default budget)")
    p.add_argument("--source", default="offline:llmbar", help="an armo_rm preference source, e.g. offline:hh-harmless")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    args = p.parse_args()

    import torch

    from armo_rm.data import load_preferences, pair_items
    from rm_core.embeddings import extract_embeddings, load_backbone

    model, tok = load_backbone(args.model, args.dtype)
    items = pair_items(load_preferences(args.source))[: args.items]
    out = {"source": args.source, "items": args.items, "dtype": args.dtype, "threads": torch.get_num_threads(), "runs": {}}
    for i, bs in enumerate(args.batch_sizes):
        rows = None if bs == "auto" else int(bs)
        with tempfile.TemporaryDirectory() as cache:
            stats = extract_embeddings(model, tok, items, cache, args.model, args.max_length, rows)["stats"]
        out["runs"][f"{i}:{bs}"] = {"tokens": stats["tokens_computed"], "seconds": stats["seconds"],
                           "tokens_per_s": stats["tokens_per_s"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
