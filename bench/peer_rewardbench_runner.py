"""Score preference pairs with allenai's `rewardbench` 0.1.4 CLI code path, on a CPU, and time the scoring.

Runs INSIDE the peer venv made by bench/setup_rewardbench_peer.sh (transformers 4.51):

    bench/.peer-venv/bin/python -m bench.peer_rewardbench_runner --model CKPT --data pairs.json \
        --dtype float32 --batch_size 8 --output out.json

What runs is rewardbench's own `rewardbench.rewardbench.rewardbench(Args)` (the `rewardbench` console
script) on its local-file path (`--dataset FILE --load_json`): its `load_and_process_dataset` and
`prepare_dialogue_from_tokenizer` render the chat template, `REWARD_MODEL_CONFIG["default"]` builds the
model with `AutoModelForSequenceClassification.from_pretrained` and scores through `RewardBenchPipeline`
(left padding, no truncation, double-BOS masking, raw logits). Changed, all at run time from here:

1. `--not_quantized` (rewardbench's own flag): the default config loads 8-bit through bitsandbytes with
   `device_map={"": 0}`, which needs CUDA. With it the model loads with `device_map="auto"` (CPU here)
   in the requested dtype. bfloat16 already turns quantisation off inside rewardbench.
2. `RewardBenchPipeline.__call__` moves every tokenised batch with `.to("cuda")`. Its source is
   recompiled with that one call replaced by `.to(self.model.device)`; nothing else in it changes
   (the replacement is asserted to hit exactly once).
3. `tqdm` inside `rewardbench.rewardbench` is wrapped to read the clock when the scoring loop asks for
   its first batch and when the loader is exhausted: only the loop is timed (it tokenises each batch and
   runs the chosen and the rejected forward passes), not loading, templating or saving. Behaviour is
   unchanged.
4. The checkpoint folder is read through a transformers-4.51-readable copy of its small JSON files in a
   temporary folder (weights symlinked), see `make_v4_compatible`: a folder saved by transformers 5
   writes `dtype` for `torch_dtype`, `rope_parameters` for `rope_theta`/`rope_scaling`, and
   `tokenizer_class: TokenizersBackend`, which 4.51 does not know (PreTrainedTokenizerFast reads the
   same tokenizer.json; its 4.x default model_input_names adds token_type_ids, which the Llama classifier
   rejects, so the 5.x default [input_ids, attention_mask] is written). pad_token_id / pad_token are kept as saved, so the reward is read at the same
   token as in our evaluator.

--data: a JSON list of rows {"id", "subset", "chosen": [messages], "rejected": [messages]}, chosen and
rejected each the whole conversation (rewardbench's local-file schema; extra columns ride along).
Writes --output: pairs/s, accuracy, per-subset accuracy and per-pair scores (and token counts, computed
after the timed loop, so the caller can check both tools scored the same token sequences).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

V5_ONLY_TOKENIZER_KEYS = ("backend", "is_local", "local_files_only")


def make_v4_compatible(src: Path, dst: Path) -> list[str]:
    """Copy `src`'s config/tokenizer JSON into `dst` rewritten for transformers 4.51; symlink the rest.

    Returns what was changed, for the record.
    """
    changes: list[str] = []
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.name not in ("config.json", "tokenizer_config.json"):
            os.symlink(item.resolve(), dst / item.name)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if "dtype" in config and "torch_dtype" not in config:
        config["torch_dtype"] = config.pop("dtype")
        changes.append("config: dtype -> torch_dtype")
    rope = config.pop("rope_parameters", None)
    if rope is not None:
        rope = dict(rope)
        if "rope_theta" in rope:
            config["rope_theta"] = rope.pop("rope_theta")
        if rope.get("rope_type", "default") == "default" and set(rope) <= {"rope_type"}:
            config["rope_scaling"] = None
        else:  # 4.51 reads scaling from rope_scaling, with rope_type (or type) inside
            config["rope_scaling"] = rope
        changes.append(f"config: rope_parameters -> rope_theta={config.get('rope_theta')}, "
                       f"rope_scaling={config['rope_scaling']}")
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    tok_path = src / "tokenizer_config.json"
    if tok_path.is_file():
        tok = json.loads(tok_path.read_text(encoding="utf-8"))
        if tok.get("tokenizer_class") in ("TokenizersBackend", None):
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
            changes.append("tokenizer_config: tokenizer_class TokenizersBackend -> PreTrainedTokenizerFast")
        if "model_input_names" not in tok:  # 4.x PreTrainedTokenizerFast would add token_type_ids, which
            # RewardBenchPipeline passes on and LlamaForSequenceClassification.forward rejects; 5.x's default
            tok["model_input_names"] = ["input_ids", "attention_mask"]
            changes.append("tokenizer_config: model_input_names = [input_ids, attention_mask] (the 5.x default)")
        dropped = [k for k in V5_ONLY_TOKENIZER_KEYS if tok.pop(k, None) is not None]
        if dropped:
            changes.append(f"tokenizer_config: dropped v5-only keys {dropped}")
        jinja = src / "chat_template.jinja"
        if "chat_template" not in tok and jinja.is_file():  # put it where every 4.x version looks
            tok["chat_template"] = jinja.read_text(encoding="utf-8")
            (dst / "chat_template.jinja").unlink()
            changes.append("tokenizer_config: chat_template.jinja inlined as chat_template")
        (dst / "tokenizer_config.json").write_text(json.dumps(tok, indent=2), encoding="utf-8")
    return changes


def patch_pipeline_device() -> str:
    """Recompile RewardBenchPipeline.__call__ with `.to("cuda")` -> `.to(self.model.device)`."""
    import rewardbench.models.pipeline as pipeline_module
    from rewardbench.models.pipeline import RewardBenchPipeline

    lines, first_line = inspect.getsourcelines(RewardBenchPipeline.__call__)
    source = "\n" * (first_line - 1) + textwrap.dedent("".join(lines))  # tracebacks keep the file's line numbers
    needle = '.to("cuda")'
    if source.count(needle) != 1:
        raise RuntimeError(f"RewardBenchPipeline.__call__ has {source.count(needle)} x {needle}; expected 1")
    source = source.replace(needle, ".to(self.model.device)")
    namespace: dict = {}
    exec(compile(source, inspect.getsourcefile(RewardBenchPipeline), "exec"), vars(pipeline_module), namespace)
    RewardBenchPipeline.__call__ = namespace["__call__"]
    return 'RewardBenchPipeline.__call__: .to("cuda") -> .to(self.model.device)'


class LoopClock:
    """Stands in for tqdm in rewardbench.rewardbench: times the iteration of the scoring loop."""

    def __init__(self):
        self.start = self.end = None
        self.batches = 0

    def __call__(self, iterable, *args, **kwargs):
        self.start = time.perf_counter()
        for item in iterable:
            self.batches += 1
            yield item
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            raise RuntimeError("rewardbench's scoring loop did not run to the end")
        return self.end - self.start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="sequence-classification checkpoint folder (transformers 5 OK)")
    p.add_argument("--data", required=True, help="JSON list of {id, subset, chosen: [msgs], rejected: [msgs]}")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batch_size", type=int, default=8, help="pairs per step (rewardbench --batch_size)")
    p.add_argument("--max_length", type=int, default=2048,
                   help="passed through; rewardbench does not truncate unless --force_truncation")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--output", required=True, help="JSON file to write")
    args = p.parse_args(argv)

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    import rewardbench
    import rewardbench.rewardbench as rb_cli

    model_src = Path(args.model).resolve()
    data_path = Path(args.data).resolve()
    out_path = Path(args.output).resolve()
    work = Path(tempfile.mkdtemp(prefix="peer-rewardbench-"))
    try:
        model_dir = work / "rm"  # relative name below: rewardbench builds its output paths from --model
        changes = make_v4_compatible(model_src, model_dir)
        patches = [patch_pipeline_device(), "--not_quantized (rewardbench flag): no bitsandbytes 8-bit, no CUDA device map"]
        clock = LoopClock()
        rb_cli.tqdm = clock
        patches.append("rewardbench.rewardbench.tqdm -> loop clock (timing only)")

        cli_args = rb_cli.Args(
            dataset=str(data_path), load_json=True, model="rm", not_quantized=True,
            torch_dtype=args.dtype, batch_size=args.batch_size, max_length=args.max_length,
            output_dir="results/",
        )
        cwd = os.getcwd()
        os.chdir(work)
        try:
            rb_cli.rewardbench(cli_args)
        finally:
            os.chdir(cwd)
        seconds = clock.seconds

        rows = [json.loads(line) for line in (work / "results" / "rm_outputs.jsonl").read_text().splitlines() if line]
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)

        def n_tokens(text: str) -> int:  # what RewardBenchPipeline feeds the model, double BOS counted once
            ids = tokenizer(text)["input_ids"]
            bos = tokenizer.bos_token_id
            return len(ids) - (1 if bos is not None and len(ids) > 1 and ids[0] == bos == ids[1] else 0)

        def flat(x):
            return x[0] if isinstance(x, list) else x

        pairs = []
        for r in rows:
            c, rj = float(flat(r["scores_chosen"])), float(flat(r["scores_rejected"]))
            pairs.append({"id": r.get("id"), "subset": r.get("subset"), "chosen_score": c, "rejected_score": rj,
                          "correct": bool(flat(r["results"])),
                          "tokens": n_tokens(r["text_chosen"]) + n_tokens(r["text_rejected"])})
        subsets: dict[str, dict] = {}
        for pr in pairs:
            s = subsets.setdefault(pr["subset"], {"correct": 0, "total": 0})
            s["correct"] += pr["correct"]
            s["total"] += 1
        for s in subsets.values():
            s["accuracy"] = s["correct"] / s["total"]
        import importlib.metadata as md

        result = {
            "tool": f"rewardbench {rewardbench.__version__} (rewardbench.rewardbench CLI code path)",
            "versions": {k: md.version(k) for k in ("rewardbench", "transformers", "torch", "tokenizers", "datasets", "accelerate")},
            "model": str(model_src), "data": str(data_path), "dtype": args.dtype, "batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(), "pairs": len(pairs),
            "seconds": round(seconds, 3), "pairs_per_second": round(len(pairs) / seconds, 3) if seconds else None,
            "loop_batches": clock.batches,
            "accuracy": sum(pr["correct"] for pr in pairs) / len(pairs) if pairs else None,
            "subsets": subsets, "patches": patches, "config_rewrites": changes,
            "ru_maxrss_self_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss,
            "scores": pairs,
        }
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(out_path.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
        os.replace(tmp, out_path)
        print(f"[peer] {len(pairs)} pairs in {seconds:.2f} s = {result['pairs_per_second']} pairs/s, "
              f"accuracy {result['accuracy']:.4f} ({args.dtype}, batch {args.batch_size}) -> {out_path}", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
