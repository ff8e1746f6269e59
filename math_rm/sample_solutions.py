"""The labelling pipeline: sample N solutions per question from a policy, grade each final answer against the
reference (ORM labels), and label the steps of the wrong ones Math-Shepherd style (hard estimation: a step is
"+" when at least one of M Monte-Carlo completions from the prefix ending with it reaches the reference answer).

    python math_rm/sample_solutions.py --questions ../shared/data/gsm8k/train.jsonl --policy HuggingFaceTB/SmolLM2-135M-Instruct \
        --n 4 --mc 4 --limit 100 --output data/math_rm/sampled.jsonl          # local HF model (CPU or GPU)
    ... --backend vllm                                                           # vLLM, when installed on a GPU
    python math_rm/sample_solutions.py --offline_rule --output data/math_rm/gsm8k_rule.jsonl
        # no policy: the GSM8K labelled solutions, steps labelled by the offline rule (math_rm/step_labels.py)

Labels. A correct solution: every step "+" (it is itself a completion reaching the answer from each prefix).
A wrong solution: the final step is "-" (its own answer is wrong); for each earlier step, in order, M
completions are sampled from the prefix ending with it; "+" if any is correct. With --stop_at_first_error
(default) labelling stops at the first "-", later steps unlabelled (None), as PRM800K; without it every step is
labelled (Math-Shepherd). Steps: rm_core.data.split_steps; answers: rm_core.answers.final_answer and
answers_match.

Resumable: one JSONL row per finished question, appended and flushed; a rerun skips the question indices
already in the file (a half-written last line from a killed run is dropped: rm_core.resume). A question whose
sampling raises (a policy or server error, CUDA out of memory) is not written: it is noted in one line on stderr,
counted ("failed", "failed_indices"), the run goes on, and a rerun samples it again. After writing everything,
the command exits 3 with one line when more than --max_failed_share (default 0.05) of the selected questions
failed. Seeded: question i
samples with seed (seed + i), so a resumed run writes what an uninterrupted one would. OUTPUT.fingerprint.json
records the policy (by content), the data (by content or Hub commit) and the sampling options; a rerun with
others stops, naming what differs (--start/--limit may change: they only pick questions); --overwrite starts
afresh. A progress bar counts questions.
Output rows: {"index", "id", "question", "reference", "policy", "seed", "label_source", "seconds",
"solutions": [{"text", "answer", "is_correct", "steps", "labels"}]}; rm_core.data reads them ("sampled").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

INSTRUCTION = ("Solve the problem step by step, one step per line. End with a line 'The answer is N' where N "
               "is the final number.")


class HFPolicy:
    """A local transformers causal LM sampling continuations of token-id prompts (left-padded batches)."""

    def __init__(self, name_or_path: str, max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 1.0,
                 device: str | None = None, dtype: str = "float32"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rm_core.models import inference_device, resolve_model

        path = resolve_model(name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.device = inference_device(device)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(self.device).eval()
        from rm_core.inference import prepare_cpu_inference

        prepare_cpu_inference(self.model)  # on a CPU: packed bf16 weights, malloc setting
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        from rm_core.templates import padding_id

        self.pad_id = padding_id(self.tokenizer)
        self.generated_tokens = 0

    def generate(self, prompts: list[list[int]], n: int, seed: int) -> list[list[str]]:
        import torch

        torch.manual_seed(seed)
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      do_sample=True, temperature=self.temperature, top_p=self.top_p,
                                      max_new_tokens=self.max_new_tokens, num_return_sequences=n,
                                      pad_token_id=self.pad_id)
        new = out[:, width:].tolist()
        texts, cut = [], []
        for seq in new:
            stop = [i for i, t in enumerate(seq) if t in (self.tokenizer.eos_token_id, self.pad_id)]
            cut.append(not stop and len(seq) >= self.max_new_tokens)  # no end within the budget: cut off
            seq = seq[: stop[0]] if stop else seq
            self.generated_tokens += len(seq)
            texts.append(self.tokenizer.decode(seq, skip_special_tokens=True))
        self.last_cut = [cut[i * n:(i + 1) * n] for i in range(len(prompts))]
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


class VLLMPolicy:
    """vLLM sampling (GPU). Same interface as HFPolicy."""

    def __init__(self, name_or_path: str, max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 1.0,
                 **_):
        from vllm import LLM

        from rm_core.models import resolve_model

        self.llm = LLM(model=resolve_model(name_or_path))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.generated_tokens = 0

    def generate(self, prompts: list[list[int]], n: int, seed: int) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_new_tokens,
                                seed=seed)
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        texts = []
        for o in outs:
            self.generated_tokens += sum(len(c.token_ids) for c in o.outputs)
            texts.append([c.text for c in o.outputs])
        self.last_cut = [[c.finish_reason == "length" for c in o.outputs] for o in outs]
        return texts


def pick_backend(backend: str) -> str:
    if backend == "auto":
        import importlib.util

        import torch

        return "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "hf"
    return backend


def make_policy(backend: str, name_or_path: str, **kwargs):
    backend = pick_backend(backend)
    if backend == "vllm":
        return VLLMPolicy(name_or_path, **kwargs)
    if backend == "hf":
        return HFPolicy(name_or_path, **kwargs)
    raise ValueError(f"unknown backend {backend!r}; use auto, hf or vllm")


def prompt_ids(tokenizer, question: str, prefix_steps: list[str] | None = None) -> list[int]:
    """The policy's prompt: the question (with the instruction) as the user turn, then the assistant header,
    then the prefix steps (one per line) when continuing a partial solution."""
    from rm_core.templates import tokenize_messages

    ids = tokenize_messages(tokenizer, [{"role": "user", "content": f"{question}\n\n{INSTRUCTION}"}],
                            add_generation_prompt=True)
    if prefix_steps:
        ids += tokenizer("\n".join(prefix_steps) + "\n", add_special_tokens=False)["input_ids"]
    return ids


def grade(text: str, reference: str) -> tuple[str | None, bool]:
    from rm_core.answers import answers_match, final_answer

    answer = final_answer(text)
    return answer, answers_match(answer, reference)


def _generate(policy, prompts: list[list[int]], n: int, seed: int) -> tuple[list[list[str]], list[list[bool]]]:
    """(texts, cut) of policy.generate: `cut` marks a text that hit max_new_tokens before its end (a policy that
    does not say is taken to have finished every text)."""
    texts = policy.generate(prompts, n, seed)
    return texts, getattr(policy, "last_cut", None) or [[False] * len(t) for t in texts]


def label_question(policy, question: str, reference: str, n: int, mc: int, seed: int,
                   stop_at_first_error: bool = True) -> list[dict]:
    """N graded solutions of one question with Monte-Carlo step labels (see the module docstring). A text cut off
    at max_new_tokens has no answer to grade: a cut solution gets no correctness (is_correct None, `truncated`) and
    no label on its unfinished last step; a cut completion is left out of its step's vote, and a step whose
    completions were all cut is not labelled (None), never labelled wrong."""
    from rm_core.data import split_steps

    tok = policy.tokenizer
    texts, cuts = _generate(policy, [prompt_ids(tok, question)], n, seed)
    texts, cuts = texts[0], cuts[0]
    solutions = []
    for j, (text, cut) in enumerate(zip(texts, cuts)):
        answer, correct = (None, None) if cut else grade(text, reference)
        steps = split_steps(text)
        labels: list[int | None] = [None] * len(steps)
        if steps and correct:
            labels = [1] * len(steps)
        elif steps:
            if not cut:
                labels[-1] = 0  # the finished solution's answer is wrong
            for k in range(len(steps) - 1):
                done, done_cut = _generate(policy, [prompt_ids(tok, question, steps[: k + 1])], mc,
                                           seed * 1000 + j * 100 + k)
                finished = [c for c, c_cut in zip(done[0], done_cut[0]) if not c_cut]
                labels[k] = int(any(grade(c, reference)[1] for c in finished)) if finished else None
                if stop_at_first_error and labels[k] == 0:
                    break
            if stop_at_first_error and 0 in labels[:-1]:
                first = labels.index(0)
                labels = labels[: first + 1] + [None] * (len(labels) - first - 1)
        row = {"text": text, "answer": answer, "is_correct": correct, "steps": steps, "labels": labels}
        if cut:
            row["truncated"] = True
        solutions.append(row)
    return solutions


# -- resumable JSONL -----------------------------------------------------------------------------------------


def finished_indices(path: Path) -> set[int]:
    """Question indices already written; a partial last line (a killed run) is cut off the file."""
    from rm_core.resume import read_jsonl_store

    return {row["index"] for row in read_jsonl_store(path)}


def append_row(f, row: dict) -> None:
    from rm_core.resume import append_jsonl

    append_jsonl(f, [row])


def store_fingerprint(args) -> dict:
    """What makes the rows (not which questions: --start/--limit only pick them)."""
    from rm_core.resume import data_fingerprint, model_fingerprint

    if args.offline_rule:
        from math_rm.step_labels import RULE_NAME

        return {"label_source": RULE_NAME, "data": data_fingerprint(args.solutions)}
    return {"label_source": "monte-carlo", "policy": model_fingerprint(args.policy),
            "data": data_fingerprint(args.questions),
            "settings": {"split": args.split, "backend": pick_backend(args.backend), "n": args.n, "mc": args.mc,
                         "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                         "top_p": args.top_p, "seed": args.seed, "stop_at_first_error": args.stop_at_first_error,
                         "cut_texts": "not graded"}}  # the rule for texts cut at max_new_tokens (label_question)


def run(args) -> dict:
    """Label the selected questions into args.output, skipping finished ones; returns throughput figures."""
    from rm_core.data import gsm8k_answer, load_rows
    from rm_core.errors import UserInputError
    from rm_core.progress import progress
    from rm_core.progress import write as progress_write
    from rm_core.resume import check_or_write_fingerprint

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_or_write_fingerprint(out, store_fingerprint(args), getattr(args, "overwrite", False))
    done = finished_indices(out)
    stats = {"questions": 0, "solutions": 0, "steps": 0, "labelled_steps": 0, "skipped_finished": 0, "failed": 0,
             "truncated_solutions": 0, "failed_indices": [], "seconds": 0.0}
    if args.offline_rule:
        from math_rm.step_labels import RULE_NAME, label_candidates
        from rm_core.data import to_candidates

        rows = load_rows(args.solutions, "train")
        source = RULE_NAME
    else:
        rows = load_rows(args.questions, args.split)
        source = f"monte-carlo (n={args.n}, mc={args.mc})"
    end = len(rows) if args.limit is None else min(len(rows), args.start + args.limit)
    todo = [i for i in range(args.start, end) if i not in done]
    stats["selected"] = max(end - args.start, 0)
    stats["skipped_finished"] = stats["selected"] - len(todo)
    policy = None if args.offline_rule or not todo else make_policy(
        args.backend, args.policy, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    t_all = time.perf_counter()
    with open(out, "a", encoding="utf-8") as f:
        for i in progress(todo, desc="labelling questions", unit="question", enabled=not getattr(args, "quiet", False)):
            row = rows[i]
            t0 = time.perf_counter()
            if args.offline_rule:
                cand = to_candidates([row], "gsm8k_solutions", strict=True)[0][0]
                question, reference = cand["prompt"][-1]["content"], cand["reference"]
                solutions = [{k: s[k] for k in ("text", "is_correct", "steps", "labels", "first_bad", "reason")}
                             for s in label_candidates(cand)]
            else:
                question, reference = row["question"], gsm8k_answer(row["answer"])
                try:
                    solutions = label_question(policy, question, reference, args.n, args.mc, args.seed + i,
                                               args.stop_at_first_error)
                except UserInputError:
                    raise
                except Exception as err:  # this question only: not written, so a rerun samples it again
                    stats["failed"] += 1
                    stats["failed_indices"].append(i)
                    progress_write(f"[sample] question {i} failed ({type(err).__name__}: {err}); not written, a "
                                   "rerun samples it again")
                    continue
            seconds = time.perf_counter() - t0
            append_row(f, {"index": i, "id": str(row.get("id", f"q{i}")), "question": question,
                           "reference": reference, "policy": None if args.offline_rule else args.policy,
                           "seed": args.seed + i, "label_source": source, "seconds": round(seconds, 4),
                           "solutions": solutions})
            stats["questions"] += 1
            stats["solutions"] += len(solutions)
            stats["steps"] += sum(len(s["steps"]) for s in solutions)
            stats["labelled_steps"] += sum(x is not None for s in solutions for x in s["labels"])
            stats["truncated_solutions"] += sum(bool(s.get("truncated")) for s in solutions)
    stats["seconds"] = time.perf_counter() - t_all
    secs = max(stats["seconds"], 1e-9)
    stats.update(questions_per_s=stats["questions"] / secs, solutions_per_s=stats["solutions"] / secs,
                 steps_per_s=stats["steps"] / secs,
                 generated_tokens=getattr(policy, "generated_tokens", 0),
                 generated_tokens_per_s=getattr(policy, "generated_tokens", 0) / secs)
    return stats


def make_parser() -> argparse.ArgumentParser:
    from rm_core.best_of_n import DEFAULT_CANDIDATES
    from rm_core.data import shared_data_dir
    from rm_core.resume import DEFAULT_MAX_FAILED_SHARE, share_arg

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--questions", default=str(shared_data_dir() / "gsm8k" / "train.jsonl"),
                   help="GSM8K file/folder or Hub id (default: in the shared data folder, $RM_SHARED_DATA)")
    p.add_argument("--split", default="train")
    p.add_argument("--policy", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--backend", default="auto", help="auto (vLLM on a GPU when installed, else hf), hf, vllm")
    p.add_argument("--n", type=int, default=4, help="solutions per question")
    p.add_argument("--mc", type=int, default=4, help="Monte-Carlo completions per step prefix")
    p.add_argument("--max_new_tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first question index")
    p.add_argument("--limit", type=int, default=None, help="questions from --start (default: all)")
    p.add_argument("--stop_at_first_error", type=lambda s: s.lower() in ("1", "true", "yes"), default=True)
    p.add_argument("--offline_rule", action="store_true",
                   help="label the GSM8K labelled solutions (--solutions) with the offline rule; no policy")
    p.add_argument("--solutions", default=DEFAULT_CANDIDATES)
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true",
                   help="start OUTPUT afresh when its rows were made by another policy, data set or sampling option")
    from rm_core.tracking import add_run_args

    add_run_args(p, tracking=False)  # --quiet: no progress bar
    p.add_argument("--no_progress", dest="quiet", action="store_true", help="the same as --quiet")
    p.add_argument("--max_failed_share", type=share_arg, default=DEFAULT_MAX_FAILED_SHARE,
                   help="exit 3 (after writing every finished question) when more than this share of the selected "
                        "questions failed to sample (0: any failure; 1: never); a rerun samples them again")
    return p


def main(argv: list[str] | None = None) -> dict:
    from rm_core.resume import check_failed_share
    from rm_core.tracking import apply_run_args

    args = make_parser().parse_args(argv)
    apply_run_args(args)
    stats = run(args)
    print(json.dumps(stats, indent=2))
    check_failed_share({"": (stats["failed"], stats["selected"])}, args.max_failed_share, "questions",
                       f"every finished question is in {args.output}; rerun the same command to sample the failed "
                       "ones again")
    return stats


def cli() -> None:
    """Run as `python math_rm/sample_solutions.py`, `python -m math_rm.sample_solutions`
    or the `rm-sample-solutions` console script. A user error prints one line (rm_core.errors.run_cli);
    main's return value is for Python callers, not an exit status."""
    from rm_core.errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
