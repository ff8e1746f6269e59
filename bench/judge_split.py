"""Where a judge's /score time goes, without HTTP: rendering + tokenising against the forward, by batch size
and by how far a batch may pad (issue 22: the service's bound).

    python -m bench.judge_split --chat_template plain            # MiniLM BT, ~3 minutes alone on 2 cores

Scores the same conversations as bench/serve_load (the built-in preference set, in arrival order, so a batch
mixes lengths as the service's do) in consecutive batches, timing `render_ids` and `score_sequences` apart,
with each `--slack` (the padding bound of `rm_core.inference.padding_bounded_batches`; inf = plain slices).
Each setting runs --repeats passes, interleaved with the others (a drift in the machine's speed then hits them
alike); the medians are reported. Prints a line per setting and writes JSON (--output): ms a request for each
part (and every pass's forward), forwards a batch, padded tokens over real ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

from bench._common import ROOT


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--family", default="bradley_terry")
    p.add_argument("--chat_template", default=None, help="MiniLM has none: pass 'plain'")
    p.add_argument("--items", type=int, default=448)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[14, 32], help="14: serve_load's mean batch")
    p.add_argument("--slack", type=float, nargs="+", default=[math.inf, 1.3, 1.1])
    p.add_argument("--repeats", type=int, default=3, help="passes per setting, interleaved; medians reported")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--output", default=str(ROOT / "bench" / "runs" / "judge_split.json"))
    args = p.parse_args(argv)

    import torch

    import judges
    from bench.serve_load import conversations
    from rm_core.inference import padding_bounded_batches, score_sequences
    from rm_core.templates import render_ids

    load_before = list(os.getloadavg())
    judge = judges.load(args.judge, family=args.family, chat_template=args.chat_template, dtype=args.dtype)
    convs = conversations(args.items)
    pad_id = judge.tokenizer.pad_token_id
    lengths = [len(render_ids(judge.tokenizer, c, judge.max_length)[0]) for c in convs]
    score_sequences(judge.model, [render_ids(judge.tokenizer, c, judge.max_length)[0] for c in convs[:8]], pad_id)

    def one_pass(size: int, slack: float) -> tuple[float, float]:
        """Seconds rendering and in the forward, over every item in batches of `size`."""
        render_s = forward_s = 0.0
        for start in range(0, len(convs), size):
            t0 = time.perf_counter()
            seqs = [render_ids(judge.tokenizer, c, judge.max_length)[0] for c in convs[start:start + size]]
            t1 = time.perf_counter()
            score_sequences(judge.model, seqs, pad_id, size, padding_slack=slack)
            forward_s += time.perf_counter() - t1
            render_s += t1 - t0
        return render_s, forward_s

    def padding(size: int, slack: float) -> tuple[int, int, int]:
        """(forwards, real tokens, padded tokens) of the batches score_sequences runs."""
        forwards = real = padded = 0
        for start in range(0, len(convs), size):
            chunk = lengths[start:start + size]
            for group in padding_bounded_batches(chunk, size, slack):
                forwards += 1
                real += sum(chunk[i] for i in group)
                padded += max(chunk[i] for i in group) * len(group)
        return forwards, real, padded

    settings = [(size, slack) for size in args.batch_sizes for slack in args.slack]
    timings: dict = {setting: [] for setting in settings}
    for _ in range(args.repeats):  # interleaved, so a drift in the machine's speed hits every setting alike
        for setting in settings:
            timings[setting].append(one_pass(*setting))
    runs = []
    n = len(convs)
    for size, slack in settings:
        render_s = statistics.median(r for r, _ in timings[size, slack])
        forward_s = statistics.median(f for _, f in timings[size, slack])
        forwards, real, padded = padding(size, slack)
        run = {"batch": size, "slack": slack if math.isfinite(slack) else "none",
               "render_ms": round(1000 * render_s / n, 2), "forward_ms": round(1000 * forward_s / n, 2),
               "forward_ms_passes": [round(1000 * f / n, 2) for _, f in timings[size, slack]],
               "forwards_per_batch": round(forwards / math.ceil(n / size), 2),
               "padded_over_real": round(padded / real, 2), "items_per_s": round(n / (render_s + forward_s), 1)}
        runs.append(run)
        print(f"batch {size} slack {slack}: render {run['render_ms']} ms/item, forward {run['forward_ms']} ms/item "
              f"(passes {run['forward_ms_passes']}), {run['forwards_per_batch']} forwards/batch, padded/real "
              f"{run['padded_over_real']} -> {run['items_per_s']} items/s", flush=True)
    out = {"judge": args.judge, "items": len(convs), "dtype": str(next(judge.model.parameters()).dtype),
           "threads": torch.get_num_threads(), "load_average_before": load_before, "runs": runs}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.output}")
    return out


if __name__ == "__main__":
    main()
