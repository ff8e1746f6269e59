"""How close a reward model's forward runs to this CPU's matrix-product rate, and which ops take its time.

    python -m bench.forward_profile            # SmolLM2-135M-Instruct with a score head, fp32, ~1 minute alone

Three measurements, one sequence at a time (no padding):
- the bare `torch.matmul` rate (GFLOP/s) at the model's MLP shape (T x hidden by hidden x intermediate);
- the forward's tokens/s and GFLOP/s at each --lengths, counting 2 flops a non-embedding weight a token plus
  causal attention (QK^T and AV over half the T x T scores: 2 x layers x heads x head_dim x T^2 in all; a
  decoder's count, an encoder's attention is twice that);
- a `torch.profiler` table of the ops over --profile_reps forwards of --profile_length tokens.
Their ratio says what is left to gain in the forward itself (issue 22); JSON to --output, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench._common import ROOT


def seconds_per_call(reps: int, fn, *args, **kwargs) -> float:
    fn(*args, **kwargs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(*args, **kwargs)
    return (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--gemm_rows", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--profile_length", type=int, default=256)
    p.add_argument("--profile_reps", type=int, default=3)
    p.add_argument("--output", default=str(ROOT / "bench" / "runs" / "forward_profile.json"))
    args = p.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from rm_core.models import load_reward_model, resolve_dtype

    load_before = list(os.getloadavg())
    torch.manual_seed(0)
    dtype = resolve_dtype(args.dtype, torch.device("cpu"))
    model, _ = load_reward_model(args.model, dtype=dtype)
    model.eval()
    config = model.config
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    attention_width = heads * (getattr(config, "head_dim", None) or hidden // heads)
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    weights = sum(p.numel() for p in model.parameters()) - embedding  # every weight a token meets
    out = {"model": args.model, "dtype": str(dtype), "threads": torch.get_num_threads(),
           "load_average_before": load_before, "non_embedding_params": weights, "gemm": {}, "forward": {}}

    for rows in args.gemm_rows:
        a, b = torch.randn(rows, hidden, dtype=dtype), torch.randn(hidden, inter, dtype=dtype)
        dt = seconds_per_call(50, torch.matmul, a, b)
        out["gemm"][rows] = {"gflops": round(2 * rows * hidden * inter / dt / 1e9, 1)}

    vocab = config.vocab_size
    with torch.inference_mode():
        for length in args.lengths:
            ids = torch.randint(100, vocab, (1, length))
            dt = seconds_per_call(args.reps, model, input_ids=ids, use_cache=False)
            flops = 2 * weights * length + 2 * layers * attention_width * length * length  # causal attention
            out["forward"][length] = {"tokens_per_s": round(length / dt, 1), "gflops": round(flops / dt / 1e9, 1)}
        ids = torch.randint(100, vocab, (1, args.profile_length))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.profile_reps):
                model(input_ids=ids, use_cache=False)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    out["profile_self_cpu_share"] = {e.key: round(e.self_cpu_time_total / total, 3)
                                     for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]}
    print(json.dumps(out, indent=1))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
