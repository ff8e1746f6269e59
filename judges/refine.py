"""Refinement driven by a judge: generate a response, judge it, ask the policy for a better one given every earlier
response with its feedback, repeat; keep the best by the judge (issue 23).

    from judges import load
    from judges.llm_judge import load_backend
    from judges.refine import refine

    policy = load_backend("llm:HuggingFaceTB/SmolLM2-135M-Instruct", {})      # or openai:<model>, {"base_url": ...}
    result = refine(policy, load("outputs/bt-smollm2"), "Write a haiku about rain.", iterations=3)
    result.best.response, [c.score for c in result.candidates], result.stop_reason

    python -m judges.refine --policy llm:HuggingFaceTB/SmolLM2-135M-Instruct --judge outputs/bt-smollm2 \\
        --prompts prompts.jsonl --output_dir outputs/refined --iterations 3      # resumable; preferences.jsonl

Any judge works:
- pointwise (a trained RM, a pointwise LLM judge): every candidate gets the judge's score; a candidate improves
  when it scores strictly above the best so far.
- pairwise (pair-PM, a pairwise LLM or rubric judge): a candidate is compared with the best so far, in both
  orders where the judge does that (compare()); its score is P(it beats the best so far), and it improves when
  that is above 0.5. The first candidate has no score.
Feedback passed to the policy: the judge's own text when it has a `critique` method (LLM judges: its model and its
principles or rubrics write it), else what the numbers say (the score and the best so far, or the comparison).

Unlike RM-Gallery's rm_gallery/core/reward/refinement.py, which returns the last response even when it scored
worse and whose prompt closes `<response_{i}>` with `</response_{i+1}>`, `refine` returns every candidate with its
score and the best by the judge, stops early after `patience` rounds without improvement, and numbers every
response's and feedback's tags alike (judges/prompts.py REFINE). A failed generation or an empty response ends the
refinement (counted, with its reason); so does a judge failure: that candidate stays unscored (never best) and the
stop reason is "judge failed: <the judge's reason>" (a transient one, a timeout, is refined again on a rerun).
The command writes everything it got, then exits 3 with one line when more than `--max_failed_share` (default
0.05) of the prompts stopped on a failed call (of the policy or the judge).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from judges.backends import is_transient
from judges.base import Judge, Message, Prompt, as_messages, conversation
from judges.prompts import load_template


@dataclass
class Candidate:
    response: str | None
    score: float | None = None  # pointwise: the judge's score; pairwise: P(beats the best before it)
    feedback: str | None = None
    error: str | None = None  # why there is no response ("generation failed: timeout", "empty response")
    improved: bool = False  # the best so far when it was made


@dataclass
class Refinement:
    prompt: list[Message]
    candidates: list[Candidate] = field(default_factory=list)
    best_index: int | None = None
    stop_reason: str = ""
    judge_mode: str = "pointwise"

    @property
    def best(self) -> Candidate | None:
        return None if self.best_index is None else self.candidates[self.best_index]

    @property
    def first(self) -> Candidate | None:
        return self.candidates[0] if self.candidates and self.candidates[0].response is not None else None

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "candidates": [asdict(c) for c in self.candidates],
                "best_index": self.best_index, "stop_reason": self.stop_reason, "judge_mode": self.judge_mode}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def numeric_feedback(candidate: Candidate, best: Candidate | None, pointwise: bool) -> str:
    """What a judge without words says about a candidate, in words the policy can act on."""
    if candidate.score is None:
        if not pointwise and best is None:  # the first response of a pairwise judge: nothing to compare it with yet
            return "A judge will compare the next response with this one."
        return "The judge could not score this response."
    if pointwise:
        text = f"A reward model scored this response {_fmt(candidate.score)} (higher is better)."
        if best is not None and best is not candidate:
            text += f" The best response so far scored {_fmt(best.score)}."
        return text
    verdict = "better" if candidate.score > 0.5 else "worse"
    return (f"A judge found this response {verdict} than the best earlier one "
            f"(probability it is better: {_fmt(candidate.score)}).")


def _critique(judge: Judge, prompt: list[Message], response: str, max_new_tokens: int) -> str | None:
    critique = getattr(judge, "critique", None)
    if critique is None:
        return None
    return critique([conversation(prompt, response)], max_new_tokens=max_new_tokens)[0]


def _new_failure(failures, before: Counter) -> str:
    """The reason the judge counted in its failures since `before` (its counts then); "no score" when none."""
    if failures is None:
        return "no score"
    grown = [reason for reason, n in failures.counts.items() if n > before.get(reason, 0)]
    return grown[-1] if grown else "no score"


def refine_request(messages: list[Message], candidates: list[Candidate], refine_template) -> list[Message]:
    """The prompt, the latest response as the assistant's turn, then the refine request (every response so far with
    its feedback) as the user's: roles alternate, as chat templates such as Gemma's and Mistral's demand (two
    user turns in a row is an error there, an HTTP 400 from a vLLM endpoint serving them)."""
    made = [{"response": c.response, "feedback": c.feedback} for c in candidates if c.response is not None]
    return messages + [{"role": "assistant", "content": made[-1]["response"]},
                       {"role": "user", "content": refine_template.render(candidates=made)}]


def refine(policy, judge: Judge, prompt: Prompt, iterations: int = 3, patience: int = 1, max_new_tokens: int = 512,
           temperature: float = 0.7, first_response: str | None = None, template: str | None = None,
           critique_max_new_tokens: int = 256) -> Refinement:
    """Refine a response to `prompt` (text or messages) for `iterations` rounds after the first response (given as
    `first_response`, else generated by `policy`, a judges.backends ChatBackend). A judge with a `critique` method
    writes at most `critique_max_new_tokens` tokens of feedback per candidate. See the module docstring."""
    if iterations < 0 or patience < 1:
        raise ValueError(f"iterations must be >= 0 and patience >= 1, got {iterations} and {patience}")
    messages = as_messages(prompt)
    pointwise = judge.pointwise
    out = Refinement(messages, judge_mode="pointwise" if pointwise else "pairwise")
    refine_template = load_template(template, "refine")
    stale = 0
    for round_ in range(iterations + 1):
        if round_ == 0 and first_response is not None:
            response, error = first_response, None
        else:
            request = messages if round_ == 0 else refine_request(messages, out.candidates, refine_template)
            result = policy.generate([request], max_new_tokens=max_new_tokens, temperature=temperature)[0]
            response, error = result.value, None if result.ok else f"generation failed: {result.error}"
        if error is None and not (response or "").strip():
            error = "empty response"
        if error is not None:
            out.candidates.append(Candidate(None, error=error))
            out.stop_reason = error
            break
        cand = Candidate(response.strip())
        best = out.best
        failures = getattr(judge, "failures", None)
        before = Counter(failures.counts) if failures is not None else Counter()
        judged = pointwise or best is not None
        if pointwise:
            cand.score = judge.score([conversation(messages, cand.response)])[0]
            cand.improved = cand.score is not None and (best is None or best.score is None or cand.score > best.score)
        elif best is None:
            cand.improved = True  # the first response: nothing to compare it with
        else:
            cand.score = judge.compare(messages, cand.response, best.response)
            cand.improved = cand.score is not None and cand.score > 0.5
        if judged and cand.score is None:
            # the judge could not judge it (its endpoint timed out, it gave no verdict): stop with the judge's
            # reason, so a resumable store refines it again when that reason is transient (is_transient)
            cand.feedback = numeric_feedback(cand, best, pointwise)
            out.candidates.append(cand)
            out.stop_reason = f"judge failed: {_new_failure(failures, before)}"
            break
        cand.feedback = (_critique(judge, messages, cand.response, critique_max_new_tokens)
                         or numeric_feedback(cand, best, pointwise))
        out.candidates.append(cand)
        if cand.improved:
            out.best_index, stale = len(out.candidates) - 1, 0
        elif round_ > 0:
            stale += 1
            if stale >= patience:
                out.stop_reason = f"no improvement in {stale} round{'s' if stale > 1 else ''}"
                break
    else:
        out.stop_reason = f"{iterations} round{'s' if iterations != 1 else ''} done"
    return out


# ---------------------------------------------------------------- a file of prompts, resumably


def read_prompts(path: str) -> tuple[list[dict], Counter]:
    """[{"id", "prompt"}] from a JSON/JSONL/parquet file (or Hub id) whose rows have `prompt` (text or messages);
    an `id` column is kept, else the prompt's sha1 is the id. Bad rows (no prompt, an empty one, a duplicate id)
    are skipped and counted by reason."""
    from rm_core.data import RowError, load_rows, own_id, prompt_messages

    rows, skipped, seen = [], Counter(), set()
    for row in load_rows(path):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if prompt is None:
            skipped["no prompt (text or messages)"] += 1
            continue
        try:  # checked as every reader checks prompts: roles, string contents, no trailing assistant turn, not empty
            messages = prompt_messages(prompt)
        except RowError as err:
            skipped[str(err)] += 1
            continue
        rid = own_id(row) or hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        if rid in seen:
            skipped["duplicate id"] += 1
            continue
        seen.add(rid)
        rows.append({"id": rid, "prompt": messages})
    return rows, skipped


def preference_row(rid: str, ref: dict) -> dict | None:
    """best vs first as a Preference row (rm_core.data's schema), when the best is not the first."""
    if ref["best_index"] in (None, 0) or not ref["candidates"] or ref["candidates"][0]["response"] is None:
        return None
    best, first = ref["candidates"][ref["best_index"]], ref["candidates"][0]
    return {"id": rid, "prompt": ref["prompt"], "chosen": [{"role": "assistant", "content": best["response"]}],
            "rejected": [{"role": "assistant", "content": first["response"]}],
            "chosen_score": best["score"], "rejected_score": first["score"], "rounds": len(ref["candidates"]) - 1}


def refinement_fingerprint(args) -> dict:
    """What a store of refinements depends on: the policy and the judge (by content), the prompts file, and the
    settings (not --limit: it picks prompts; an endpoint's URL, as another server may serve another model under
    the same name; the judge's rubrics or principles by content)."""
    from judges.cli import endpoint_of, option_fingerprint
    from rm_core.resume import data_fingerprint, judge_fingerprint

    settings = {k: option_fingerprint(k, getattr(args, k, None))
                for k in ("iterations", "patience", "max_new_tokens", "critique_max_new_tokens", "temperature",
                          "judge_mode", "dtype", "max_length", "policy_base_url", "judge_base_url", "judge_rubrics", "judge_principles")}
    from judges.prompts import templates_fingerprint

    settings["prompts"] = templates_fingerprint()  # the refine request, and a prompted judge's prompts
    if getattr(args, "judge_min_choice_mass", None) is not None:  # how a prompted judge's verdicts are read
        settings["judge_min_choice_mass"] = args.judge_min_choice_mass
    for spec, key in ((args.policy, "policy_base_url"), (args.judge, "judge_base_url")):
        if spec.startswith("openai:"):  # where the backend will send the requests
            settings[key] = endpoint_of(spec, settings[key])
    return {"policy": judge_fingerprint(args.policy), "judge": judge_fingerprint(args.judge),
            "data": data_fingerprint(args.prompts), "settings": settings}


def check_refine_args(args) -> None:
    """--iterations >= 0, --patience >= 1 and --limit >= 1 when given, else a UserInputError."""
    from rm_core.errors import UserInputError

    if args.iterations < 0:
        raise UserInputError(f"--iterations {args.iterations}: must be >= 0 (refinement rounds after the first)")
    if args.patience < 1:
        raise UserInputError(f"--patience {args.patience}: must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise UserInputError(f"--limit {args.limit}: must be >= 1 (leave it out to refine every prompt)")


FAILED_STOPS = ("generation failed", "judge failed")  # a call failed; "empty response" is the policy's answer


def failed_stop(stop_reason: str) -> bool:
    """Whether a refinement stopped because a call to the policy or the judge failed."""
    return stop_reason.startswith(FAILED_STOPS)


def refine_file(args, policy, judge: Judge) -> dict:
    """Refine every prompt of args.prompts into args.output_dir: refinements.partial.jsonl grows one line per
    finished prompt (a killed run resumes; fingerprint.json refuses a resume with another policy, judge, data or
    setting), then refinements.jsonl, preferences.jsonl (best vs first, where refinement improved) and
    summary.json, all written atomically. A rerun refines only prompts it has no refinement of (a larger --limit
    adds the new ones)."""
    from rm_core.hub import atomic_write_json, atomic_write_jsonl
    from rm_core.progress import progress
    from rm_core.resume import append_jsonl, check_or_write_fingerprint, read_jsonl_store

    check_refine_args(args)
    prompts, skipped = read_prompts(args.prompts)
    if not prompts:
        from rm_core.data import SkipReport
        from rm_core.errors import UserInputError

        reasons = SkipReport(skipped).reasons() or "no rows"
        raise UserInputError(f"{args.prompts}: no prompt to refine ({reasons})")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "refinements.partial.jsonl"
    fingerprint = refinement_fingerprint(args)
    finished = out / "refinements.jsonl"
    check_or_write_fingerprint(out, fingerprint, args.overwrite,
                               [partial, finished, out / "preferences.jsonl", out / "summary.json"],
                               what="refinement store")
    prompts = prompts[:args.limit] if args.limit is not None else prompts
    done = {r["id"]: r for path in (finished, partial) if path.is_file() for r in read_jsonl_store(path)}
    # not done, or stopped by a failed call to the endpoint (a timeout, an HTTP 503): refined again from the start
    todo = [p for p in prompts if p["id"] not in done or is_transient(done[p["id"]]["stop_reason"])]
    print(f"[refine] {len(prompts)} prompts ({len(done)} done before, {sum(skipped.values())} rows skipped)",
          flush=True)
    with open(partial, "a", encoding="utf-8") as f, progress(total=len(todo), desc="refine", unit="prompt") as bar:
        for p in todo:
            result = refine(policy, judge, p["prompt"], args.iterations, args.patience, args.max_new_tokens,
                            args.temperature, critique_max_new_tokens=args.critique_max_new_tokens)
            row = {"id": p["id"], **result.as_dict()}
            append_jsonl(f, [row])
            done[p["id"]] = row
            bar.update(1)
    rows = [done[p["id"]] for p in prompts if p["id"] in done]
    prefs = [r for r in (preference_row(row["id"], row) for row in rows) if r is not None]
    stops = Counter(row["stop_reason"].split(":")[0] for row in rows)
    firsts = [row["candidates"][0]["score"] for row in rows if row["candidates"] and row["judge_mode"] == "pointwise"
              and row["candidates"][0]["score"] is not None]
    bests = [row["candidates"][row["best_index"]]["score"] for row in rows
             if row["best_index"] is not None and row["judge_mode"] == "pointwise"
             and row["candidates"][row["best_index"]]["score"] is not None]
    failed = sum(failed_stop(row["stop_reason"]) for row in rows)
    summary = {"prompts": len(rows), "improved": len(prefs), "no_response": sum(r["best_index"] is None for r in rows),
               "failed": failed, "failed_transient": sum(failed_stop(row["stop_reason"]) and is_transient(
                   row["stop_reason"]) for row in rows),
               "stop_reasons": dict(stops), "skipped_rows": dict(skipped),
               "judge_failures": judge.failures.as_dict(),
               "mean_first_score": sum(firsts) / len(firsts) if firsts else None,
               "mean_best_score": sum(bests) / len(bests) if bests else None,
               "fingerprint": fingerprint}
    atomic_write_jsonl(finished, rows)
    atomic_write_jsonl(out / "preferences.jsonl", prefs)
    atomic_write_json(out / "summary.json", summary)
    partial.unlink(missing_ok=True)
    print(f"[refine] {len(prefs)} of {len(rows)} prompts improved -> {out / 'preferences.jsonl'}"
          f"{f' ({failed} stopped on a failed call)' if failed else ''}", flush=True)
    return summary


# --policy_* flag (dest) -> the OpenAIBackend keyword it sets; an openai: policy's options (a local one takes none)
POLICY_OPTIONS = {"policy_base_url": "base_url", "policy_api_key_env": "api_key_env",
                  "policy_timeout_s": "timeout_s", "policy_max_retries": "max_retries",
                  "policy_allow_insecure_http": "allow_insecure_http"}


def make_parser() -> argparse.ArgumentParser:
    from judges.cli import add_llm_judge_args
    from rm_core.errors import int_at_least, non_negative_float, positive_float
    from rm_core.models import add_dtype_arg
    from rm_core.resume import DEFAULT_MAX_FAILED_SHARE, share_arg
    from rm_core.tracking import add_run_args

    p = argparse.ArgumentParser(prog="rm-refine", description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", required=True, help="the model that writes responses: llm:<HF id or folder> or "
                                                    "openai:<model> (with --policy_base_url)")
    p.add_argument("--policy_base_url", default=None, help="openai: policy's OpenAI-compatible endpoint")
    p.add_argument("--policy_api_key_env", default=None,
                   help="openai: policy: NAME of the environment variable holding its API key (default OPENAI_API_KEY)")
    p.add_argument("--policy_timeout_s", type=positive_float, default=None,
                   help="openai: policy: seconds one attempt may take in all (default 60)")
    p.add_argument("--policy_max_retries", type=int_at_least(0), default=None,
                   help="openai: policy: retries after a timeout, connection error, 429 or 5xx (default 4)")
    p.add_argument("--policy_allow_insecure_http", action="store_true", default=None,
                   help="openai: policy: allow sending its API key over plain http:// to a host that is not loopback")
    p.add_argument("--judge", required=True, help="a checkpoint folder / Hub id (any family), or llm:/openai:")
    p.add_argument("--judge_mode", default=None, choices=["pointwise", "pairwise"],
                   help="for llm:/openai: judges (default pairwise)")
    p.add_argument("--prompts", required=True, help="JSON/JSONL/parquet file (or Hub id) with a `prompt` column")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--iterations", type=int, default=3, help="refinement rounds after the first response")
    p.add_argument("--patience", type=int, default=1, help="stop after this many rounds without improvement")
    p.add_argument("--max_new_tokens", type=int_at_least(1), default=512, help="the policy's longest response")
    p.add_argument("--critique_max_new_tokens", type=int_at_least(1), default=256,
                   help="the longest critique an llm:/openai: judge writes of each candidate")
    p.add_argument("--temperature", type=non_negative_float, default=0.7, help="the policy's sampling temperature")
    p.add_argument("--limit", type=int, default=None, help="refine only the first N prompts")
    p.add_argument("--max_length", type=int_at_least(1), default=2048)
    p.add_argument("--overwrite", action="store_true", help="start afresh in an output_dir another run began")
    p.add_argument("--max_failed_share", type=share_arg, default=DEFAULT_MAX_FAILED_SHARE,
                   help="exit 3 (after writing every output) when more than this share of the prompts stopped on a "
                        "failed call of the policy or the judge; a rerun refines those hit by a timeout, 429 or 5xx "
                        "again (1: never stop)")
    add_dtype_arg(p)
    add_llm_judge_args(p)  # --judge_cache_dir, --judge_base_url, ... for an llm:/openai: judge
    add_run_args(p, tracking=False)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    import judges
    from judges.cli import check_llm_judge_args, llm_judge_kwargs
    from judges.llm_judge import load_backend
    from rm_core.errors import UserInputError, check_local_path
    from rm_core.resume import check_failed_share
    from rm_core.tracking import apply_run_args

    args = make_parser().parse_args(argv)
    apply_run_args(args)
    check_refine_args(args)
    check_local_path(args.prompts, "prompts")  # before any model loads
    check_llm_judge_args([args.judge], args)
    if args.judge_principles == "scenario:auto":
        raise UserInputError("--judge_principles scenario:auto: a file of prompts names no scenario per prompt; "
                             "give one set (scenario:NAME)")
    if not args.policy.startswith(judges.LLM_PREFIXES):
        raise UserInputError(f"--policy {args.policy}: must be llm:<model> or openai:<model>")
    from rm_core.models import dtype_choice

    args.dtype, _ = dtype_choice(args.dtype)  # resolved before it is fingerprinted: auto differs between machines
    policy_kwargs = {kw: getattr(args, dest) for dest, kw in POLICY_OPTIONS.items() if getattr(args, dest) is not None}
    if args.policy.startswith("llm:"):
        if policy_kwargs:
            raise UserInputError(f"{', '.join('--' + d for d in POLICY_OPTIONS if getattr(args, d) is not None)}: "
                                 f"options of an openai: policy, not of {args.policy}")
        policy_kwargs.update(dtype=args.dtype, max_length=args.max_length)
    policy = load_backend(args.policy, policy_kwargs)
    if args.judge.startswith(judges.LLM_PREFIXES):
        judge = judges.load(args.judge, **llm_judge_kwargs(args.judge, args))
    else:
        judge = judges.load(args.judge, dtype=args.dtype, max_length=args.max_length)
    summary = refine_file(args, policy, judge)
    check_failed_share({"": (summary["failed"], summary["prompts"])}, args.max_failed_share, "prompts",
                       f"every refinement is in {Path(args.output_dir) / 'refinements.jsonl'}; a rerun of the same "
                       f"command refines again the {summary['failed_transient']} a timeout, 429 or 5xx stopped (pass "
                       "--max_failed_share 1 to accept the rest)")
    return summary


def cli() -> None:
    """The `rm-refine` console script: main's summary is for Python callers (a console script exits with what its
    function returns); a user error is one line, exit 2."""
    from rm_core.errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
