"""The machinery every benchmark in eval/ shares: process state, judge loading, and ONE resumable scoring loop.

    state = process_state()                               # accelerate PartialState, CPU group checked
    judge = load_judge(args, state.device)                # judges.load with the common CLI flags
    run = score_items(items, scorer, out_dir, state)      # resumable, split across processes, gathered
    if run is not None:                                   # main process only
        finish(out_dir, run.rows, summary)                # scores.jsonl + results.json, atomically

`score_items` scores `items` (dicts with a unique "id") in chunks: each chunk is split across the processes
(`split_between_processes`), scored by `scorer(chunk) -> list[dict]` (one dict with the item's "id" per item),
gathered on the main process (`gather_object`) and appended to `out_dir/scores.partial.jsonl` before the next
chunk starts. A killed run started again reads that file and scores only what is missing; a line cut by the
kill is dropped and scored again (rm_core.resume.read_jsonl_store). With one process or several the rows, their
order and so every number are the same.

Whose scores: `claim_output` keeps `eval_fingerprint(args, benchmark)` (the judge by content, the data by content
or Hub commit, every option in SCORE_SETTINGS) in `out_dir/fingerprint.json` while the partial file lives; a
resume with another fingerprint stops with one line naming what differs, `--overwrite` starts fresh. results.json
carries the fingerprint.

Helpers for the two ways a judge answers: `listwise_scores` (one score per response of a prompt, for
best-of-N style benchmarks) and `pair_verdicts` (a pair judged in both orders, for pairwise judges).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PARTIAL = "scores.partial.jsonl"
# options that change a score (or which items are scored): part of the fingerprint of an output_dir
SCORE_SETTINGS = ("family", "judge_mode", "dtype", "max_length", "chat_template", "seed", "split", "subsets",
                  "domains", "sources", "limit", "judge_base_url", "attribute_model", "judge_rubrics", "sets",
                  "classifications", "threshold", "keep_step_numbers", "judge_principles", "no_shared_prefix",
                  "judge_min_choice_mass", "weighted_vote_rule")
# added later: absent from older fingerprints, so left out when unset (None, or False for a flag)
RECORDED_WHEN_SET = ("judge_rubrics", "judge_principles", "no_shared_prefix", "judge_min_choice_mass",
                     "weighted_vote_rule")


# ---------------------------------------------------------------- processes


def process_state():
    """accelerate's PartialState. PartialState() alone never forms a CPU process group: under torchrun on a
    machine without GPUs every process would score everything alone. ACCELERATE_USE_CPU=1 asks for gloo, as
    transformers' use_cpu does; a launch that did not form the group it asked for is an error."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and state.num_processes != launched:
        raise RuntimeError(f"launched as {launched} processes but accelerate formed {state.num_processes}; "
                           "on CPU set ACCELERATE_USE_CPU=1 (configs/accelerate/cpu.yaml)")
    return state


def broadcast(state, value):
    """The main process's value on every process (gather_object, as the scoring loop already uses)."""
    if state.num_processes == 1:
        return value
    from accelerate.utils import gather_object

    return gather_object([value])[0]


# ---------------------------------------------------------------- judges


def add_judge_args(p: argparse.ArgumentParser, unit: str = "items",
                   default_output_dir: str = "results/<benchmark>/<model name>") -> argparse.ArgumentParser:
    """The judge flags every benchmark CLI shares (eval_reward_bench adds its own on top). unit: what the
    benchmark scores, for the help of --batch_size and --limit; default_output_dir: for the help of --output_dir."""
    from rm_core.errors import int_at_least

    p.add_argument("--model", required=True,
                   help="checkpoint folder or Hub id of a reward model (any family: judges.load reads rm_family), "
                        "or a prompted LLM judge: llm:<HF id or path> / openai:<model>")
    p.add_argument("--family", default=None,
                   help="override the checkpoint's rm_family; bradley_terry scores a base LM with a fresh seeded "
                        "head (an untrained baseline)")
    p.add_argument("--judge_mode", default="pairwise", choices=["pairwise", "pointwise"],
                   help="for llm:/openai: judges: compare responses (in both orders), or rate each alone")
    p.add_argument("--batch_size", type=int, default=None,
                   help=f"{unit} per forward batch; default 16 on GPU, 2 on CPU (a reward model's pairs "
                        "are packed into rows of up to 256 tokens), 4 in bf16/fp16 on a CPU with AMX (rows of up to "
                        "512 tokens); whole sequences (ArmoRM, PRM, pair-PM) on a CPU: as many as fit in 1024 "
                        "padded tokens, 2048 in bf16/fp16 with AMX")
    p.add_argument("--max_length", type=int, default=2048,
                   help="longer conversations are cut from the front, keeping the end of the response; counted")
    from rm_core.models import add_dtype_arg

    add_dtype_arg(p)
    p.add_argument("--chat_template", default=None, help="override: Jinja string, .jinja path, or 'plain'")
    p.add_argument("--seed", type=int, default=0, help="seeds a head the checkpoint lacks (an untrained baseline)")
    p.add_argument("--limit", type=int_at_least(1), default=None, help=f"score only the first N {unit}")
    p.add_argument("--output_dir", default=None, help=f"default: {default_output_dir}")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an output_dir whose partial scores another model, data set or setting made "
                        "(without it such a resume stops, naming what differs)")
    from judges.cli import add_llm_judge_args

    add_llm_judge_args(p)  # --judge_cache_dir, --judge_base_url, --judge_timeout_s, ... (shared with serve, report)
    add_attribute_model_args(p)
    from rm_core.hub import push_target

    p.add_argument("--push_results", default=None, metavar="REPO_ID_OR_FOLDER", type=push_target,
                   help="add the results to a model card's model-index: a Hub model id (huggingface_hub."
                        "metadata_update, token from HF_TOKEN) or a local checkpoint folder (its README.md)")
    return p


def add_attribute_model_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A decision-tree checkpoint loads its attribute model only from inside itself; these let the user choose
    another, or confirm the Hub id its config names (decision_tree/judge.py)."""
    p.add_argument("--attribute_model", default=None,
                   help="decision-tree judges: the attribute model to use (a folder or Hub id of your choosing)")
    p.add_argument("--trust_attribute_model", action="store_true",
                   help="decision-tree judges: load the Hub id the checkpoint's config names as its attribute model")
    return p


def settle_machine_options(args, device, announce: bool = True) -> None:
    """Resolve, in place, the options whose default depends on the machine, before anything fingerprints or
    records them: --dtype auto (rm_core.models.resolve_dtype; args.dtype becomes the dtype's name,
    args.dtype_reason says why), then --batch_size (rm_core.inference.forward_batching for that dtype: 16 on GPU;
    on CPU 2 tree rows, or 4 in bf16/fp16 with AMX, and args.forward_tokens, the token budget that then sets a
    forward's rows of whole sequences: ArmoRM, PRM, pair-PM, pointwise), then args.numerics (rm_core.inference.
    numerics: torch's and transformers' versions, the device, CPU instruction set and linear kernels). An API judge
    (openai:) has no local weights: its dtype is left as given, it has no numerics. `announce` prints the dtype
    once."""
    _settle_dtype(args, device, announce)
    if getattr(args, "batch_size", "absent") is None:
        from rm_core.inference import forward_batching

        args.batch_size, args.forward_tokens = forward_batching(device, getattr(args, "dtype", "float32"), None)
    if hasattr(args, "dtype") and not str(getattr(args, "model", "")).startswith("openai:"):
        from rm_core.inference import numerics

        args.numerics = numerics(device, args.dtype)  # recorded in results.json; fingerprinted in bf16/fp16


def _settle_dtype(args, device, announce: bool) -> None:
    if getattr(args, "dtype_reason", None) is not None or not hasattr(args, "dtype"):
        return
    if str(getattr(args, "model", "")).startswith("openai:"):
        args.dtype_reason = "an API judge: no local weights"
        return
    from rm_core.models import dtype_choice

    args.dtype, args.dtype_reason = dtype_choice(args.dtype, device)
    if announce:
        print(f"[eval] dtype {args.dtype} ({args.dtype_reason})", flush=True)


def load_judge(args, device):
    """judges.load with the CLI flags; a prebuilt Judge passed as `args.judge` (tests, the report) is used as is."""
    import torch

    if getattr(args, "judge", None) is not None:
        return args.judge
    import judges
    from judges.cli import check_llm_judge_args, llm_judge_kwargs

    torch.manual_seed(getattr(args, "seed", 0))
    settle_machine_options(args, device)
    check_llm_judge_args([args.model], args)
    if args.model.startswith(judges.LLM_PREFIXES):  # dtype, batch size, ... go to the backend they belong to
        if getattr(args, "family", None):  # a checkpoint's option: it was dropped, yet recorded in the fingerprint
            from rm_core.errors import UserInputError

            raise UserInputError(f"--family applies to checkpoints, not to {args.model.partition(':')[0]}: judges "
                                 "(--judge_mode picks a prompted judge's mode)")
        return judges.load(args.model, **llm_judge_kwargs(args.model, args, device))
    kwargs = {}
    if getattr(args, "attribute_model", None):
        kwargs["attribute_model"] = args.attribute_model
    if getattr(args, "trust_attribute_model", False):
        kwargs["trust_attribute_model"] = True
    if getattr(args, "no_shared_prefix", False):  # eval_reward_bench's flag, for the judges that take it (scalar heads)
        kwargs["share_prefix"] = False
    try:
        judge = judges.load(args.model, family=args.family, dtype=args.dtype, chat_template=args.chat_template,
                            device=device, max_length=args.max_length, batch_size=args.batch_size, **kwargs)
    except TypeError as err:
        if "share_prefix" not in kwargs or "share_prefix" not in str(err):
            raise
        from rm_core.errors import UserInputError

        raise UserInputError(f"--no_shared_prefix: {args.model} is not a scalar-head reward model (Bradley-Terry, "
                             "ODIN, scalar ORM), whose judge has no shared-prefix path to turn off") from None
    return apply_token_budget(judge, getattr(args, "forward_tokens", None))


def apply_token_budget(judge, forward_tokens: int | None):
    """The settled token budget (no --batch_size, on a CPU) to a judge of whole sequences, one with `max_tokens`
    (the RM, ArmoRM, PRM and pair-PM judges), as the judge would take it when built without a batch size; every
    other judge (generation, LLM backends, trees) keeps the row count it was given, as recorded."""
    if forward_tokens and hasattr(judge, "max_tokens"):
        judge.max_tokens = forward_tokens
    return judge


def check_model(args) -> None:
    """Before the data is loaded: a --model naming a local path that does not exist stops with "no such file or
    directory" (judges.check_judge_spec). A prebuilt `args.judge` is not checked."""
    if getattr(args, "judge", None) is None:
        import judges

        judges.check_judge_spec(args.model, "--model")
        if not args.model.startswith(judges.LLM_PREFIXES) and not Path(args.model).exists():
            judges.checkpoint_family(args.model)  # a name like outputs/bt: a Hub model, or one line saying neither
        check_chat_template(args.model, getattr(args, "chat_template", None))


def check_chat_template(spec: str, chat_template: str | None) -> None:
    """Before anything is written (claim_output's fingerprint.json) or loaded: a --chat_template that is missing or
    not valid Jinja, or, without one, a checkpoint (or llm:<model>) whose tokenizer has no chat template or a broken
    one, stops with one line (rm_core.templates.TemplateError). A local folder's tokenizer is read from it; a Hub
    id's is fetched here (a few small files its load needs anyway). An openai: judge renders its own."""
    from rm_core.templates import read_chat_template, set_chat_template

    if chat_template:
        read_chat_template(chat_template)
        return
    kind, sep, name = spec.partition(":")
    if sep and kind == "openai":
        return
    source = name if sep and kind == "llm" else spec
    if Path(source).exists() and not (Path(source) / "tokenizer_config.json").is_file():
        return  # a checkpoint whose tokenizer lives elsewhere (a decision tree's attribute model)
    from transformers import AutoTokenizer

    from rm_core.models import resolve_model

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(source))
    except Exception:  # not reachable, no tokenizer, one that does not load: the judge's own load says why, in full
        return
    set_chat_template(tokenizer, None)


def require_items(items: Sequence, skipped, dataset: str, unit: str = "items") -> None:
    """An empty data set, or one whose every row was skipped, is a user error (UserInputError), not a score."""
    if not items:
        from rm_core.errors import UserInputError

        raise UserInputError(f"{dataset}: no {unit} to score ({skipped})")


def default_output_dir(args, benchmark: str) -> Path:
    return Path(args.output_dir or Path("results") / benchmark / Path(args.model.rstrip("/")).name)


# ---------------------------------------------------------------- the scoring loop


def read_partial(path: Path) -> dict[str, dict]:
    """Rows already scored, by id; a last line cut by a kill is dropped (and cut off the file): scored again."""
    from rm_core.resume import read_jsonl_store

    return {str(row["id"]): row for row in read_jsonl_store(path)}


# In bf16/fp16 a score's last bits depend on the device kind and kernels (rm_core.inference.numerics) and on which
# items share a forward: the rows a forward (--batch_size) and the processes the items are split over. A killed
# single-process run resumes at a chunk boundary with the same rows, so its scores are those of an unbroken run; a
# resume with another of these would mix two roundings (an LLMBar bf16 run with a random head gave 53.2 / 53.7 /
# 52.7% accuracy at 2 / 4 / 8 rows a forward), so in bf16/fp16 they are part of the fingerprint. fp32 products agree
# to ~1e-6 whatever the layout: there they are only recorded.
def eval_fingerprint(args, benchmark: str) -> dict:
    """What makes a benchmark's scores: the judge (a checkpoint by content, a Hub id by commit, an llm: model
    likewise, an openai: model by name), the data set (by content or Hub commit), the SCORE_SETTINGS, and in
    bf16/fp16 the numerics (rm_core.inference.numerics_fingerprint: torch's and transformers' versions, device kind,
    CPU instruction set, kernels)."""
    from judges.cli import option_fingerprint
    from rm_core.resume import data_fingerprint, judge_fingerprint

    settings = {k: getattr(args, k) for k in SCORE_SETTINGS if hasattr(args, k)
                and not (k in RECORDED_WHEN_SET and getattr(args, k) in (None, False))}
    if str(getattr(args, "model", "")).startswith(("llm:", "openai:")):
        from judges.prompts import templates_fingerprint

        settings["judge_prompts"] = templates_fingerprint()
    if str(getattr(args, "model", "")).startswith("openai:"):
        settings.pop("dtype", None)  # an API judge has no local weights: its dtype says nothing
        from judges.cli import endpoint_of

        if endpoint_of(args.model, settings.get("judge_base_url")):  # where the backend will send the requests
            settings["judge_base_url"] = endpoint_of(args.model, settings.get("judge_base_url"))
    elif "dtype" in settings:
        from rm_core.inference import numerics_fingerprint
        from rm_core.models import dtype_choice, inference_device

        if settings["dtype"] == "auto":  # not settled yet (settle_machine_options): what auto means here
            settings["dtype"] = dtype_choice("auto")[0]
        half = numerics_fingerprint(inference_device(), settings["dtype"])
        if half is not None:  # bf16/fp16: what decides the rounding (the comment above)
            settings["numerics"] = {**(getattr(args, "numerics", None) or half),
                                    "batch_size": getattr(args, "batch_size", None),
                                    "processes": int(os.environ.get("WORLD_SIZE", "1"))}
            if getattr(args, "forward_tokens", None):  # the budget, where one was settled (none on a GPU)
                settings["numerics"]["forward_tokens"] = args.forward_tokens
    for name in ("chat_template", "judge_rubrics", "judge_principles"):
        if settings.get(name):
            settings[name] = option_fingerprint(name, settings[name])
    if settings.get("attribute_model"):  # by content: a tree's attribute model retrained in place scores otherwise
        from rm_core.resume import model_fingerprint

        settings["attribute_model"] = model_fingerprint(settings["attribute_model"])
    return {"benchmark": benchmark, "model": judge_fingerprint(args.model), "data": data_fingerprint(args.dataset),
            "settings": settings}


def check_finished(out_dir: Path, fingerprint: dict) -> None:
    """Finished results are never replaced by another model's or data set's without --overwrite: a rerun with
    the same fingerprint scores again into the folder, another fingerprint (or none, from before fingerprints)
    stops with one line naming what differs."""
    import json

    from rm_core.resume import ResumeError, differences

    results = out_dir / "results.json"
    if not results.is_file():
        return
    try:
        found = json.loads(results.read_text(encoding="utf-8")).get("fingerprint")
    except (ValueError, AttributeError):
        found = None
    hint = "pass --overwrite to replace them, or use another --output_dir"
    if found is None:
        raise ResumeError(f"{out_dir} holds finished results with no fingerprint of what built them: {hint}")
    diff = differences(found, json.loads(json.dumps(fingerprint)))
    if diff:
        raise ResumeError(f"{out_dir} holds finished results of other inputs ({'; '.join(diff)}): {hint}")


def claim_output(out_dir: str | Path, fingerprint: dict | None, overwrite: bool, state) -> None:
    """Before anything is loaded: on the main process, refuse an out_dir whose partial scores were made with
    another fingerprint (or with none), or clear it with `overwrite`; every process raises the same one line."""
    from rm_core.resume import ResumeError, check_or_write_fingerprint

    error = None
    if state.is_main_process:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            if overwrite:
                for name in ("results.json", "scores.jsonl"):
                    (out_dir / name).unlink(missing_ok=True)
            elif fingerprint is not None:
                check_finished(out_dir, fingerprint)
            if fingerprint is not None:
                check_or_write_fingerprint(out_dir, fingerprint, overwrite, [out_dir / PARTIAL])
            elif overwrite:
                (out_dir / PARTIAL).unlink(missing_ok=True)
        except ResumeError as err:
            error = str(err)
    error = broadcast(state, error)
    if error:
        raise ResumeError(error)


@dataclass
class ScoringRun:
    rows: list[dict]  # one per item, in the items' order
    scored_now: int  # items scored in this run (the rest came from the partial file)
    seconds: float  # scoring time of this run, the slowest process's per chunk


def check_ids(items: Sequence[dict], what: str) -> None:
    """The last guard before scoring (each loader already names the file and rows of a repeated id): a repeated
    id names itself and both items' positions."""
    from rm_core.data import check_unique_ids

    check_unique_ids(((str(it["id"]), k) for k, it in enumerate(items)), what)


def row_failed(row: dict) -> bool:
    """A scored row the judge failed on, in any benchmark's shape (`failed`, `failed_cells`, `failed_candidates`)."""
    return any(bool(row.get(key)) for key in ("failed", "failed_cells", "failed_candidates"))


def score_items(items: Sequence[dict], scorer: Callable[[list[dict]], list[dict]], out_dir: str | Path, state,
                chunk_size: int = 256, label: str = "items") -> ScoringRun | None:
    """Score every item once, resumably, split across the processes. Returns the rows on the main process and
    None on the others (which must still call this, in step)."""
    from accelerate.utils import gather_object

    out_dir = Path(out_dir)
    partial_path = out_dir / PARTIAL
    items = list(items)
    check_ids(items, label)
    done = read_partial(partial_path) if state.is_main_process else {}
    done = broadcast(state, done)
    # a stored failure (an endpoint down, a timeout) is asked again; the new row supersedes it (last row wins)
    retried = sum(1 for it in items if str(it["id"]) in done and row_failed(done[str(it["id"])]))
    todo = [it if str(it["id"]) not in done else superseding(it, done[str(it["id"])]) for it in items
            if str(it["id"]) not in done or row_failed(done[str(it["id"])])]
    if state.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"[eval] {len(items)} {label} ({len(items) - len(todo)} already scored"
              + (f", {retried} stored failure(s) asked again" if retried else "")
              + f"), {state.num_processes} process(es)", flush=True)
    seconds = 0.0
    from rm_core.progress import progress

    # one bar on the main process, moved per gathered chunk (the unit of resume); rate and ETA are tqdm's
    bar = progress(total=len(todo), desc="scoring", unit=label.rstrip("s") or label, enabled=state.is_main_process)
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        with state.split_between_processes(chunk) as mine:
            t0 = time.perf_counter()
            rows = scorer(list(mine)) if mine else []
            elapsed = time.perf_counter() - t0
        if len(rows) != len(mine):
            raise RuntimeError(f"the scorer returned {len(rows)} rows for {len(mine)} {label}")
        if state.num_processes > 1:
            rows = gather_object(rows)
            elapsed = max(gather_object([elapsed]))  # the slowest process sets the pace
        seconds += elapsed
        if state.is_main_process:
            from rm_core.resume import append_jsonl

            with open(partial_path, "a", encoding="utf-8") as f:
                append_jsonl(f, rows)
            for r in rows:
                done[str(r["id"])] = r
        bar.update(len(chunk))
    bar.close()
    if not state.is_main_process:
        return None
    return ScoringRun([done[str(it["id"])] for it in items], len(todo), seconds)


def finish(out_dir: str | Path, rows: list[dict], summary: dict) -> None:
    """scores.jsonl and results.json, atomically; the partial file and its fingerprint go (results.json keeps it)."""
    from rm_core.hub import atomic_write_json, atomic_write_jsonl
    from rm_core.resume import fingerprint_path

    out_dir = Path(out_dir)
    atomic_write_jsonl(out_dir / "scores.jsonl", rows)
    atomic_write_json(out_dir / "results.json", summary)
    (out_dir / PARTIAL).unlink(missing_ok=True)
    fingerprint_path(out_dir).unlink(missing_ok=True)


def speed(run: ScoringRun, unit: str) -> dict:
    return {f"{unit}_scored_now": run.scored_now, "seconds": round(run.seconds, 3),
            f"{unit}_per_second": round(run.scored_now / run.seconds, 3) if run.seconds > 0 else None}


# ---------------------------------------------------------------- the command: --quiet, --report_to


def run_eval_command(evaluate: Callable, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                     benchmark: str) -> None:
    """An eval_* command's main: the benchmark's parser plus --quiet / --report_to / --run_name
    (rm_core.tracking.add_run_args), then `evaluate(args)` inside a tracked run (main process only) that gets the
    summary. Returns None: a console script exits 0 after a finished run."""
    from rm_core.tracking import add_run_args, apply_run_args, command_run

    args = add_run_args(parser).parse_args(argv)
    apply_run_args(args)  # before anything is loaded: an uninstalled --report_to backend is one line
    if not any(name != "none" for name in args.report_to):
        evaluate(args)
        return
    with command_run(args, f"{benchmark}-{Path(args.model.rstrip('/')).name}", process_state().is_main_process,
                     skip=("judge",), extra_config={"benchmark": benchmark}) as tracker:
        summary = evaluate(args)
        if summary is not None:
            track_summary(tracker, summary)


def track_summary(tracker, summary: dict) -> None:
    """A benchmark's summary into a tracker: every number (nested keys joined with /) as the run's summary, and
    each per-group mapping (subsets, sections, domains, sources, categories, baselines) as a table too."""
    tracker.summary({k: v for k, v in summary.items() if k != "fingerprint"})
    for key, value in summary.items():
        if key != "fingerprint" and isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            tracker.log_table(key, [{"name": name, **{k: v for k, v in row.items() if not isinstance(v, (dict, list))}}
                                    for name, row in value.items()])


# ---------------------------------------------------------------- how a judge answers


def listwise_scores(judge, groups: Sequence[tuple[object, Sequence[str]]]) -> list[list[float | None]]:
    """One score per response for each (prompt, responses). A pointwise judge scores every response once, all
    groups in one batched call (`rank_many` when it has one: a reward model's runs each group's prompt once); a
    pairwise judge ranks each group (`rank_many` when it has one, else its default aggregation over all pairs).
    A response the judge failed on is None; for a pairwise judge one failed comparison makes the whole group None
    (failed, asked again on a rerun): a ranking over the comparisons that are left could put a response first
    that the missing one would have beaten."""
    from judges.base import conversation

    groups = [(prompt, list(responses)) for prompt, responses in groups]
    if hasattr(judge, "rank_many"):
        return judge.rank_many(groups)
    if judge.pointwise:
        flat = judge.score([conversation(prompt, r) for prompt, responses in groups for r in responses])
        out, k = [], 0
        for _, responses in groups:
            out.append(flat[k:k + len(responses)])
            k += len(responses)
        return out
    return [_strict_rank(judge, prompt, responses) for prompt, responses in groups]


def _strict_rank(judge, prompt, responses: list[str]) -> list[float | None]:
    """A pairwise judge's default aggregation over every pair of `responses`; all None when any comparison failed
    (judges.base.Judge.rank would aggregate over what is left)."""
    import numpy as np

    from judges.aggregate import aggregate

    P = judge.preference_matrix(prompt, responses)
    if np.isnan(P[~np.eye(len(responses), dtype=bool)]).any():
        return [None] * len(responses)
    return [None if not np.isfinite(v) else float(v) for v in aggregate(P, judge.default_rank_method)]


def pair_verdicts(judge, items: Sequence[tuple[object, str, str]]):
    """Each (prompt, a, b) judged in both orders -> judges.base.PairVerdict (p_forward = P(a better) with a shown
    first; p_backward = P(a better) with a shown second). Judges with `judge_pairs` answer it themselves; others
    are asked compare_batch in both orders."""
    from judges.base import PairVerdict

    items = list(items)
    if not items:
        return []
    if hasattr(judge, "judge_pairs"):
        return judge.judge_pairs(items)
    probs = judge.compare_batch([x for p, a, b in items for x in ((p, a, b), (p, b, a))])
    return [PairVerdict(probs[2 * i], None if probs[2 * i + 1] is None else 1.0 - probs[2 * i + 1])
            for i in range(len(items))]


def control_lines(summary: dict) -> list[str]:
    """The printed length control and (pairwise judges) both-orders block of a summary, as every table ends."""
    from judges.conflicts import format_order
    from rm_core.length import format_length

    return format_length(summary.get("length")) + format_order(summary.get("order"))


def unique_items(located: Sequence[tuple[dict, str]]) -> list[dict]:
    """Items in order from (item, where it was read) pairs; a repeated id is an error naming both places (a
    resume keys scores by id, so two items under one id would mix)."""
    from rm_core.errors import UserInputError

    seen: dict[str, str] = {}
    for item, where in located:
        if item["id"] in seen:
            raise UserInputError(f"{where}: id {item['id']} also in {seen[item['id']]}")
        seen[item["id"]] = where
    return [item for item, _ in located]


# on every row: [the chunk part it was scored in, sequences cut in that part, the parts it re-scores items of...]
TRUNCATION_KEY = "truncation_chunk"
SUPERSEDES_KEY = "_supersedes_parts"  # on an item asked again: the parts its failed row's count is in (score_items)


def superseding(item: dict, failed_row: dict) -> dict:
    """An item asked again after its stored row failed, marked with the parts that row's truncation count is in
    (its own and the ones that part re-scored), so counting_truncation can count its cuts once."""
    part = failed_row.get(TRUNCATION_KEY)
    return {**item, SUPERSEDES_KEY: [part[0], *part[2:]]} if part else item


def counting_truncation(judge, scorer: Callable[[list[dict]], list[dict]]) -> Callable[[list[dict]], list[dict]]:
    """`scorer` whose rows also carry TRUNCATION_KEY: a name of the chunk part this process scored them in (its
    first item's id and a random tag, unique even when a stored failure is asked again), how many sequences the
    judge cut to max_length while scoring that part (truncation_count before and after; a judge batches a part
    together, so the count is per part, not per item), and, for items asked again after a failure, the parts whose
    counts already hold their cuts (items asked again are scored in parts by those, apart from new items). Stored
    with the rows, the counts survive a resume: `truncated_sequences` sums them. A judge that keeps no count: rows
    as they are."""
    from judges.base import truncation_count

    def scorer_counting(items: list[dict]) -> list[dict]:
        unmarked = [{k: v for k, v in item.items() if k != SUPERSEDES_KEY} for item in items]
        if truncation_count(judge) is None:
            return scorer(unmarked)
        groups: dict[tuple, list[dict]] = {}
        for item, clean in zip(items, unmarked):
            groups.setdefault(tuple(item.get(SUPERSEDES_KEY, ())), []).append(clean)
        by_id = {}
        for supersedes, group in groups.items():
            before = truncation_count(judge)
            rows = scorer(group)
            if sorted(str(row["id"]) for row in rows) != sorted(str(item["id"]) for item in group):
                raise RuntimeError(f"the scorer returned rows for other items than the {len(group)} it was given")
            part = [f"{group[0]['id']}@{uuid.uuid4().hex[:8]}", truncation_count(judge) - before, *supersedes]
            by_id.update((str(row["id"]), {**row, TRUNCATION_KEY: part}) for row in rows)
        return [by_id[str(item["id"])] for item in items]
    return scorer_counting


def truncated_sequences(rows: Sequence[dict]) -> int | None:
    """Sequences cut to max_length over the kept rows (counting_truncation): each part's count once, except a part
    of items asked again whose earlier part is still kept (that count already holds their cuts, which do not change
    between tries: the fingerprint fixes the judge and its max_length); None when no row carries a count (the judge
    keeps none)."""
    parts = {r[TRUNCATION_KEY][0]: r[TRUNCATION_KEY] for r in rows if r.get(TRUNCATION_KEY)}
    if not parts:
        return None
    return sum(part[1] for part in parts.values() if not any(earlier in parts for earlier in part[2:]))


def merge_failures(logs: Sequence[dict], max_examples: int = 5) -> dict:
    """FailureLog.as_dict()s of several processes as one: counts summed, examples kept up to max_examples."""
    from collections import Counter

    counts: Counter = Counter()
    examples: dict[str, list] = {}
    for log in logs:
        counts.update(log["by_reason"])
        for reason, named in log["examples"].items():
            examples.setdefault(reason, []).extend(named)
    return {"total": sum(counts.values()), "by_reason": dict(counts),
            "examples": {reason: named[:max_examples] for reason, named in examples.items()}}


def judge_failures(judge, state) -> dict:
    """The judge's failures in this invocation over every process (each process's judge counts only the items it
    scored; an item a resume asks again is counted where it failed last). A collective: every process calls it."""
    mine = judge.failures.as_dict()
    if state.num_processes == 1:
        return mine
    from accelerate.utils import gather_object

    return merge_failures(gather_object([mine]))


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------- one benchmark, end to end


def run_benchmark(args, benchmark: str, items: list[dict], skipped, make_scorer: Callable, summarize: Callable,
                  format_table: Callable | None = None, unit: str = "items", chunk_size: int = 64) -> dict | None:
    """Load the judge, score `items` through `make_scorer(judge)` with the shared loop, summarize the rows and
    write results.json / scores.jsonl. Returns the summary on the main process, None on the others."""
    require_items(items, skipped, args.dataset, unit)
    state = process_state()
    out_dir = default_output_dir(args, benchmark)
    settle_machine_options(args, state.device, state.is_main_process)
    fingerprint = eval_fingerprint(args, benchmark) if state.is_main_process else None
    claim_output(out_dir, fingerprint, getattr(args, "overwrite", False), state)
    judge = load_judge(args, state.device)
    if state.is_main_process:
        print(f"[eval] {benchmark}: {getattr(args, 'model', '?')} on {args.dataset}", flush=True)
    t0 = time.perf_counter()
    run = score_items(items, counting_truncation(judge, make_scorer(judge)), out_dir, state, chunk_size, unit)
    failures = judge_failures(judge, state)  # every process: a collective
    if run is None:
        return None
    summary = summarize(run.rows)
    truncated = truncated_sequences(run.rows)
    summary.update({
        "benchmark": benchmark, "model": getattr(args, "model", None), "dataset": args.dataset,
        unit: len(run.rows), "processes": state.num_processes, "dtype": getattr(args, "dtype", None),
        "dtype_reason": getattr(args, "dtype_reason", None), "numerics": getattr(args, "numerics", None),
        "max_length": getattr(args, "max_length", None),
        # sequences cut to max_length (kept, never dropped), over the chunk parts whose rows are in scores.jsonl
        # (a resume keeps the counts stored with the rows); None: the judge keeps no count
        "truncated_sequences": truncated,
        "judge_failures": failures, "skipped_rows": skipped.as_dict(),
        "speed": speed(run, unit), "wall_seconds": round(time.perf_counter() - t0, 3), "fingerprint": fingerprint,
    })
    finish(out_dir, run.rows, summary)
    if format_table is not None:
        print(format_table(summary))
    print(f"{unit}: {len(run.rows)}  truncated: "
          + (f"{truncated} sequences" if truncated is not None else "not counted by this judge")
          + f"  {skipped}  judge failures: {failures['total']}")
    print(f"results: {(out_dir / 'results.json').resolve()}")
    if getattr(args, "push_results", None):  # --push_results: the model card's model-index (eval/report.py)
        from eval.report import push_results

        push_results(args, benchmark, summary)
    return summary
