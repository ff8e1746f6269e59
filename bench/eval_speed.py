"""Speed of our eval_reward_bench against allenai's `rewardbench` 0.1.4 on the 419 LLMBar pairs, on a CPU.

    python -m bench.eval_speed                      # full: 419 pairs, float32 and bfloat16 (~20 CPU min)
    python -m bench.eval_speed --limit 20           # quick check on the first 20 pairs

Runs in OUR venv. Both tools score the SAME checkpoint folder on the SAME pairs at the same dtype and
batch size (pairs per step):
- the checkpoint: by default bench/runs/smollm2-rm-init, built once from the provisioned SmolLM2-135M-Instruct
  with `rm_core.models.load_reward_model` (random score head under --seed, pad token <|endoftext|> written
  to config.json and the tokenizer) and save_pretrained, so both tools read the same head and the reward
  at the same token;
- the pairs: `rm_core.data.load_llmbar_as_reward_bench(../shared/data/llmbar)`, the five RewardBench
  chat-hard llmbar subsets, written for the peer as bench/runs/llmbar-pairs*.json in rewardbench's
  local-file schema (chosen/rejected as whole conversations);
- ours: `python -m eval.reward_bench --model M --dataset LLMBAR_DIR --dtype D [--batch_size B]` (its own
  timer: the scoring calls, not loading or tokenising);
- the peer: bench/peer_rewardbench_runner.py in bench/.peer-venv (made by setup_rewardbench_peer.sh if
  missing), which runs rewardbench's CLI code path with CUDA/8-bit switched off and times its scoring
  loop (which tokenises each batch as part of the loop; templating is outside both timers).
Peak RSS is each child process's own (os.wait4), the largest of it and the children it waited for.
Writes bench/runs/eval_speed.json and prints markdown rows for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench._common import run_logged
from rm_core.data import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RUNS = BENCH / "runs"

DEFAULT_BASE = Path.home() / ".cache" / "reward-models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
DEFAULT_MODEL = RUNS / "smollm2-rm-init"
DEFAULT_DATASET = shared_data_dir() / "llmbar"
PEER_VENV = BENCH / ".peer-venv"


THREADS: int | None = None  # --threads: OMP/MKL threads for both tools (torch reads them at start)


def child_env() -> dict:
    env = dict(os.environ)
    if THREADS:
        env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def run_measured(cmd: list[str], log_path: Path) -> dict:
    """Run `cmd` in child_env(), output to `log_path`; wall seconds and the child's peak RSS (MiB)."""
    measured = run_logged(cmd, log_path, env=child_env())
    return {"wall_seconds": round(measured.wall_seconds, 2), "peak_rss_mib": round(measured.peak_rss_mib, 1),
            "log": str(log_path)}


def build_checkpoint(base: Path, target: Path, seed: int) -> None:
    """A sequence-classification checkpoint with a seeded random score head, pad policy applied."""
    if (target / "config.json").is_file():
        return
    import torch

    from rm_core.models import load_reward_model

    torch.manual_seed(seed)
    model, tokenizer = load_reward_model(str(base), dtype=torch.float32)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)
    print(f"[bench] built {target} from {base} (seed {seed}, pad {tokenizer.pad_token!r} = {tokenizer.pad_token_id})")


def write_pairs(dataset: Path, limit: int | None) -> tuple[Path, list[dict]]:
    """The pairs exactly as eval.reward_bench selects them, in rewardbench's local-file schema."""
    from rm_core.data import load_llmbar_as_reward_bench, to_preferences

    prefs, skipped = to_preferences(load_llmbar_as_reward_bench(dataset))
    if skipped.as_dict()["skipped"]:
        print(f"[bench] note: {skipped}")
    prefs = prefs[:limit] if limit else prefs
    rows = [{"id": p["id"], "subset": p["subset"], "chosen": p["prompt"] + p["chosen"],
             "rejected": p["prompt"] + p["rejected"]} for p in prefs]
    path = RUNS / (f"llmbar-pairs-first{limit}.json" if limit else "llmbar-pairs.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path, rows


def compare(ours: list[dict], peer: list[dict]) -> dict:
    by_id = {r["id"]: r for r in peer}
    missing = [r["id"] for r in ours if r["id"] not in by_id]
    if missing or len(peer) != len(ours):
        raise RuntimeError(f"the tools scored different pairs: {len(ours)} vs {len(peer)}, missing {missing[:5]}")
    agree = sum(r["correct"] == by_id[r["id"]]["correct"] for r in ours)
    diffs = [max(abs(r["chosen_score"] - by_id[r["id"]]["chosen_score"]),
                 abs(r["rejected_score"] - by_id[r["id"]]["rejected_score"])) for r in ours]
    same_tokens = sum(r["tokens"] == by_id[r["id"]]["tokens"] for r in ours)
    return {"agreement": agree / len(ours), "disagreeing_ids": [r["id"] for r in ours
                                                               if r["correct"] != by_id[r["id"]]["correct"]],
            "max_abs_score_diff": max(diffs), "mean_abs_score_diff": sum(diffs) / len(diffs),
            "same_token_count_pairs": same_tokens}


def computed_tokens(pairs: list[tuple[list[int], list[int]]], peer_batch: int) -> dict:
    """Token positions each tool's forwards compute for these (chosen_ids, rejected_ids) pairs: ours runs a pair
    as one tree row, the shared prefix once, where the tree pays on a CPU (rm_core.inference.tree_pays), else as
    its two whole sequences, with no padding beyond its rows' (rm_core.inference.score_pairs), and the prefix
    all tree pairs of a chunk of eval.reward_bench.CHUNK_PAIRS share (the template's system prompt) once a
    chunk, from a cache (rm_core.inference.COMMON_PREFIX_MIN); the peer runs
    the chosen and the rejected sequences of each `peer_batch` consecutive pairs as two batches padded to their
    longest. Their ratio is the work the peer does per unit of ours: the most our speed-up could be at equal
    speed per token."""
    from eval.reward_bench import CHUNK_PAIRS
    from rm_core.inference import COMMON_PREFIX_MIN, shared_prefix_length, tree_pays

    ours = sum(len(c) + len(r) - (shared_prefix_length(c, r) if tree_pays([c, r]) else 0) for c, r in pairs)
    for start in range(0, len(pairs), CHUNK_PAIRS):
        trees = [list(pair) for pair in pairs[start:start + CHUNK_PAIRS] if tree_pays(list(pair))]
        common = shared_prefix_length(*(s for pair in trees for s in pair)) if len(trees) > 1 else 0
        if common >= COMMON_PREFIX_MIN:
            ours -= common * (len(trees) - 1)  # once into the cache instead of once a tree row
    peer = 0
    for start in range(0, len(pairs), peer_batch):
        batch = pairs[start:start + peer_batch]
        peer += len(batch) * (max(len(c) for c, _ in batch) + max(len(r) for _, r in batch))
    return {"ours": ours, "peer": peer, "whole_sequences": sum(len(c) + len(r) for c, r in pairs),
            "peer_over_ours": round(peer / ours, 3)}


def rendered_pairs(model: Path, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """The pairs' token ids as both tools score them (the checkpoint's chat template; `same_token_count_pairs`
    checks the counts agree)."""
    from transformers import AutoTokenizer

    from rm_core.templates import render_ids

    tokenizer = AutoTokenizer.from_pretrained(model)
    return [(render_ids(tokenizer, r["chosen"])[0], render_ids(tokenizer, r["rejected"])[0]) for r in rows]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="sequence-classification checkpoint folder (default: built from --base if missing)")
    p.add_argument("--base", default=str(DEFAULT_BASE), help="causal LM folder the default --model is built from")
    p.add_argument("--seed", type=int, default=0, help="seed of the random score head of the built checkpoint")
    p.add_argument("--dataset", default=str(DEFAULT_DATASET), help="LLMBar's folder (../shared/data/llmbar)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N pairs (quick check)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--batch_size", type=int, default=8, help="pairs per step for the peer (rewardbench's default)")
    p.add_argument("--ours_batch_size", type=int, default=None,
                   help="rows a forward for eval_reward_bench (default: none given, its own machine default: 2 on a "
                        "CPU, 4 in bf16 with AMX)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for both tools (default: torch's own choice, one per core)")
    p.add_argument("--peer_venv", default=str(PEER_VENV))
    p.add_argument("--output", default=str(RUNS / "eval_speed.json"))
    args = p.parse_args(argv)
    global THREADS
    THREADS = args.threads

    model = Path(args.model).resolve()
    if model == DEFAULT_MODEL.resolve():
        build_checkpoint(Path(args.base), model, args.seed)
    peer_python = Path(args.peer_venv) / "bin" / "python"
    subprocess.run(["bash", str(BENCH / "setup_rewardbench_peer.sh")], check=True,
                   env={**child_env(), "PEER_VENV": str(args.peer_venv)})
    data_path, rows = write_pairs(Path(args.dataset), args.limit)
    n = len(rows)
    tag = f"-first{args.limit}" if args.limit else ""
    print(f"[bench] {n} pairs -> {data_path}; model {model}; batch {args.batch_size}", flush=True)

    load_at_start = os.getloadavg()
    print(f"[bench] load average {load_at_start[0]:.2f} on {os.cpu_count()} cores (other work slows both tools)")
    results = []
    for dtype in args.dtypes:
        ours_dir = RUNS / f"ours-{dtype}{tag}"
        shutil.rmtree(ours_dir, ignore_errors=True)  # no resume: every pair is scored (and timed) now
        ours_cmd = [sys.executable, "-m", "eval.reward_bench", "--model", model, "--family", "bradley_terry", "--dataset", args.dataset,
                    "--dtype", dtype, "--output_dir", ours_dir]
        if args.ours_batch_size:
            ours_cmd += ["--batch_size", args.ours_batch_size]
        if args.limit:
            ours_cmd += ["--limit", args.limit]
        ours_run = run_measured(ours_cmd, RUNS / f"ours-{dtype}{tag}.log")
        ours_summary = json.loads((ours_dir / "results.json").read_text())
        ours_rows = [json.loads(line) for line in (ours_dir / "scores.jsonl").read_text().splitlines() if line]

        peer_out = RUNS / f"peer-{dtype}{tag}.json"
        peer_out.unlink(missing_ok=True)
        peer_cmd = [peer_python, BENCH / "peer_rewardbench_runner.py", "--model", model, "--data", data_path,
                    "--dtype", dtype, "--batch_size", args.batch_size, "--output", peer_out]
        peer_run = run_measured(peer_cmd, RUNS / f"peer-{dtype}{tag}.log")
        peer = json.loads(peer_out.read_text())

        ours_pps = ours_summary["speed"]["pairs_per_second"]
        peer_pps = peer["pairs_per_second"]
        row = {
            "dtype": dtype, "pairs": n, "batch_size": args.batch_size,
            "ours": {"pairs_per_second": ours_pps, "seconds": ours_summary["speed"]["seconds"],
                     "batch_size": ours_summary["batch_size"],
                     "accuracy": sum(r["correct"] for r in ours_rows) / len(ours_rows),
                     "subsets": {k: v["accuracy"] for k, v in ours_summary["subsets"].items()},
                     "truncated_pairs": ours_summary["truncated_pairs"],
                     "numerics": ours_summary.get("numerics"),  # torch's and transformers' versions, the CPU's ISA
                     **ours_run},
            "peer": {"pairs_per_second": peer_pps, "seconds": peer["seconds"], "accuracy": peer["accuracy"],
                     "subsets": {k: v["accuracy"] for k, v in peer["subsets"].items()},
                     "patches": peer["patches"], "config_rewrites": peer["config_rewrites"],
                     "versions": peer["versions"], **peer_run},
            "ratio": round(ours_pps / peer_pps, 2) if ours_pps and peer_pps else None,
            **compare(ours_rows, peer["scores"]),
        }
        results.append(row)
        print(f"[bench] {dtype}: ours {ours_pps} pairs/s, peer {peer_pps} pairs/s, x{row['ratio']}; accuracy "
              f"{row['ours']['accuracy']:.4f} vs {row['peer']['accuracy']:.4f}, agreement {row['agreement']:.4f}, "
              f"max |score diff| {row['max_abs_score_diff']:.2e}", flush=True)

    header = ("| dtype | pairs | batch | ours pairs/s | rewardbench 0.1.4 pairs/s | ratio | our accuracy | "
              "peer accuracy | per-pair agreement | max abs score diff | same token counts | "
              "ours peak RSS MiB | peer peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['dtype']} | {r['pairs']} | {r['batch_size']} | {r['ours']['pairs_per_second']} | "
             f"{r['peer']['pairs_per_second']} | {r['ratio']}x | {100 * r['ours']['accuracy']:.2f} | "
             f"{100 * r['peer']['accuracy']:.2f} | {100 * r['agreement']:.1f}% | {r['max_abs_score_diff']:.1e} | "
             f"{r['same_token_count_pairs']}/{r['pairs']} | {r['ours']['peak_rss_mib']:.0f} | "
             f"{r['peer']['peak_rss_mib']:.0f} |" for r in results]
    table = header + "\n" + "\n".join(lines)
    tokens = computed_tokens(rendered_pairs(model, rows), args.batch_size)
    print(f"[bench] token positions computed: ours {tokens['ours']}, peer {tokens['peer']} "
          f"({tokens['peer_over_ours']}x ours)", flush=True)
    report = {"model": str(model), "dataset": str(args.dataset), "data_file": str(data_path), "pairs": n,
              "tokens_computed": tokens,
              "limit": args.limit, "threads": args.threads, "cpu_count": os.cpu_count(),
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
              "results": results, "markdown": table}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("\n" + table + f"\n\n[bench] written {out}")
    return report


if __name__ == "__main__":
    main()
