"""How eval_reward_bench's time grows with the number of pairs and with their length (issue 22, part 5).

    python -m bench.eval_scaling                          # 100, 400, 1600 HH-RLHF pairs; 24 pairs at 512, 1024, 2048 tokens
    python -m bench.eval_scaling --pairs 20 --lengths 256 --length_pairs 4    # a quick check
    python -m bench.eval_scaling --batch_size 16        # on a GPU: batches (and --no_shared_prefix to see the prefix)

Runs the real command (`python -m eval.reward_bench`, its CPU defaults, the shared prompt once)
on the same checkpoint as bench/eval_speed.py (SmolLM2-135M-Instruct with a seeded head, built once), one run per
point, and reads each run's own timer (scoring only, not loading) and the tokens it scored:
- pairs: the first N pairs of the 2,312 HH-RLHF harmless-base pairs (both splits; speed needs no held-out part), at
  --max_length 1024 (the few longer pairs are cut, counted): time should grow linearly with N at a constant
  tokens/s (tokens count both sequences whole; the shared prompt runs once, so tokens/s is above the forward's);
- length: --length_pairs pairs whose two responses are real HH-RLHF text repeated past the length, cut to exactly
  L tokens by the evaluator's own truncation (--max_length L, from the front), so every sequence is L tokens long and
  the two share only the first token: per-token cost grows with L because attention reads the whole context.

The paper model printed beside the measurement: a forward over a causal LM costs 2 * N flops a token for the N
non-embedding weights, plus 2 * layers * width * L for attention over an average context of L / 2 (scores and the
weighted sum); so tokens/s at L relative to a short sequence is (2N) / (2N + 2 * layers * width * L).
Run it with the machine to itself: it records the load average before and after.
Writes bench/runs/eval_scaling.json and prints markdown rows for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench._common import run_logged
from bench.eval_speed import DEFAULT_BASE, DEFAULT_MODEL, RUNS, build_checkpoint, child_env
from rm_core.data import shared_data_dir

HH_FILE = shared_data_dir() / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def hh_rows() -> list[dict]:
    """All 2,312 pairs as eval.report builds the HH test rows (speed needs no held-out part)."""
    from eval.report import hh_test_rows

    return hh_test_rows(HH_FILE, test_only=False)


def long_rows(rows: list[dict], n: int, chars: int) -> list[dict]:
    """n pairs whose responses are HH-RLHF replies concatenated past `chars` characters: a short real prompt and two
    different long real responses."""
    from rm_core.data import to_preferences

    prefs = to_preferences(rows)[0]
    replies = [p["chosen"][-1]["content"] for p in prefs] + [p["rejected"][-1]["content"] for p in prefs]

    def long_text(start: int) -> str:
        parts, size, k = [], -1, start  # size: len(" ".join(parts))
        while size < chars:
            parts.append(replies[k % len(replies)])
            size += len(parts[-1]) + 1
            k += 7  # a stride, so neighbouring pairs do not repeat each other
        return " ".join(parts)

    out = []
    for i in range(n):
        prompt = prefs[i]["prompt"][-1]["content"]
        out.append({"id": f"long-{i}", "subset": "long",
                    "chosen": f"\n\nHuman: {prompt}\n\nAssistant: {long_text(2 * i)}",
                    "rejected": f"\n\nHuman: {prompt}\n\nAssistant: {long_text(2 * i + 1)}"})
    return out


def write_rows(path: Path, rows: list[dict]) -> Path:
    from rm_core.hub import atomic_write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(path, rows)
    return path


def score(model: Path, data: Path, max_length: int, out: Path, log: Path, extra: list[str]) -> dict:
    """One eval.reward_bench run: its timer, the tokens it scored and how many pairs it cut."""
    cmd = [sys.executable, "-m", "eval.reward_bench", "--model", str(model), "--dataset", str(data), "--max_length",
           str(max_length), "--output_dir", str(out), "--overwrite", "--quiet", *extra]
    run_logged(cmd, log, env=child_env())
    summary = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines() if line.strip()]
    seconds = max(summary["speed"]["seconds"], 1e-3)
    tokens = sum(r.get("tokens", 0) for r in rows)
    return {"pairs": len(rows), "max_length": max_length, "seconds": seconds, "tokens": tokens,
            "pairs_per_second": round(len(rows) / seconds, 3), "tokens_per_second": round(tokens / seconds, 1),
            "tokens_per_pair": round(tokens / len(rows), 1), "truncated_pairs": summary["truncated_pairs"]}


def paper_relative_speed(config: dict, non_embedding: int, length: int) -> float:
    """tokens/s at context `length` relative to a very short sequence, from the flop count in the docstring."""
    layers, width = config["num_hidden_layers"], config["hidden_size"]
    return (2 * non_embedding) / (2 * non_embedding + 2 * layers * width * length)


def non_embedding_params(model: Path) -> tuple[dict, int]:
    """The checkpoint's config and its weight count without the token embeddings (a lookup, no flops)."""
    from safetensors import safe_open

    config = json.loads((model / "config.json").read_text())
    total = 0
    with safe_open(str(model / "model.safetensors"), "pt") as f:
        for name in f.keys():  # noqa: SIM118 (a safe_open handle has keys(), no __iter__)
            if "embed_tokens" not in name:
                n = 1
                for d in f.get_slice(name).get_shape():
                    n *= d
                total += n
    return config, total


def markdown(result: dict) -> str:
    lines = ["| run | pairs | max_length | tokens a pair | seconds | pairs/s | tokens/s | tokens/s vs the first length: "
             "measured / paper |", "|---|---|---|---|---|---|---|---|"]
    first = result["length"][0] if result["length"] else None
    for kind in ("pairs", "length"):
        for r in result[kind]:
            ratio = ""
            if kind == "length":
                ratio = (f"{r['tokens_per_second'] / first['tokens_per_second']:.2f} / "
                         f"{r['paper_relative'] / first['paper_relative']:.2f}")
            lines.append(f"| {kind} | {r['pairs']} | {r['max_length']} | {r['tokens_per_pair']} | {r['seconds']} | "
                         f"{r['pairs_per_second']} | {r['tokens_per_second']} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="sequence-classification checkpoint folder (default: built from --base if missing)")
    p.add_argument("--base", default=str(DEFAULT_BASE), help="causal LM folder the default --model is built from")
    p.add_argument("--pairs", type=int, nargs="*", default=[100, 400, 1600], help="pair counts (HH-RLHF)")
    p.add_argument("--lengths", type=int, nargs="*", default=[512, 1024, 2048], help="sequence lengths in tokens")
    p.add_argument("--length_pairs", type=int, default=24, help="pairs at each length")
    p.add_argument("--batch_size", type=int, default=None,
                   help="pairs per step for eval.reward_bench (default: its own, 2 on a CPU (4 in bf16 with AMX), 16 on a GPU)")
    p.add_argument("--no_shared_prefix", action="store_true", help="score each sequence whole (to see what it saves)")
    p.add_argument("--work_dir", default=str(RUNS / "eval_scaling"))
    p.add_argument("--output", default=str(RUNS / "eval_scaling.json"))
    args = p.parse_args(argv)

    model = Path(args.model).resolve()
    if model == DEFAULT_MODEL.resolve():
        build_checkpoint(Path(args.base), model, seed=0)
    work = Path(args.work_dir).resolve()  # the evaluator runs from the repository root
    extra = (["--batch_size", str(args.batch_size)] if args.batch_size else []) + \
        (["--no_shared_prefix"] if args.no_shared_prefix else [])
    rows = hh_rows()
    if max(args.pairs, default=0) > len(rows):
        raise SystemExit(f"--pairs {max(args.pairs)}: HH-RLHF has {len(rows)} pairs")
    result = {"model": str(model), "eval_args": extra, "load_before": list(os.getloadavg()), "pairs": [], "length": []}
    for n in args.pairs:
        data = write_rows(work / "data" / f"hh-{n}.jsonl", rows[:n])
        result["pairs"].append(score(model, data, 1024, work / f"pairs-{n}", work / f"pairs-{n}.log", extra))
        print(f"[scaling] {n} pairs: {result['pairs'][-1]}", flush=True)
    config, non_embedding = non_embedding_params(model)
    for length in args.lengths:
        data = write_rows(work / "data" / f"long-{length}.jsonl", long_rows(rows, args.length_pairs, 6 * length))
        point = score(model, data, length, work / f"length-{length}", work / f"length-{length}.log", extra)
        point["paper_relative"] = round(paper_relative_speed(config, non_embedding, length), 3)
        result["length"].append(point)
        print(f"[scaling] {length} tokens: {point}", flush=True)
    result["load_after"] = list(os.getloadavg())
    result["non_embedding_params"] = non_embedding
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
