"""Rubrics learnt from labelled preference pairs, training-free (Auto-Rubric, arXiv 2510.17314; RM-Gallery's
rm_gallery/core/reward/rubric/ at 5d2e17a read for comparison, no code taken), and used by any LLM judge.

    rm-rubrics --llm openai:<model> --judge_base_url http://127.0.0.1:8000/v1 \\
        --pairs ../shared/data/llmbar --subsets llmbar-natural --max_pairs 70 --output_dir outputs/rubrics
    judges.load("llm:<model>", mode="pairwise", rubrics="outputs/rubrics/rubrics.json")     # or openai:<model>
    eval_reward_bench --model llm:<model> --judge_rubrics outputs/rubrics/rubrics.json ...

(`rm-rubrics` is `python -m judges.rubrics`.)

Three steps, each a function:
1. `generate`: per labelled pair, the LLM proposes at most `max_rubrics` rubrics (general criteria, one per line)
   from the pair shown in a seeded random order with the better response named; the rubric-guided pairwise judge
   (judges.llm_judge.PairwiseLLMJudge with the rubrics as its principles) then judges the pair in BOTH orders; the
   rubrics pass only when both orders pick the better response (a tie, a failed or unparsable answer is a fail,
   never a pass; `--verify order_averaged` asks only that the two orders' mean picks it, for a judge with a
   position bias too strong for any rubric to overcome); else the LLM revises them, shown the judge's answers,
   up to `max_rounds` evaluations (no revision after the last). Only rubrics that passed are kept. Resumable:
   `generate.partial.jsonl` in the output folder grows one line per finished pair, under a fingerprint of the LLM,
   the data and the settings.
2. `select`: greedy maximal coding rate over the rubrics' sentence embeddings (all-MiniLM-L6-v2, provisioned
   offline, by default): at each step the rubric that raises R(S) most joins S, where
       R(Z) = 1/2 * logdet(I_n + d / (n * eps^2) * Z Z^T)
   for the n x d matrix Z of the unit-norm embeddings of S (the expansion term of MCR^2, Yu et al. 2020, arXiv
   2006.08558; eps = 0.1). Deterministic: no random subsampling, ties to the earliest rubric. Stops at
   `max_selected`, or when the best gain is below `min_gain`. At eps = 0.1 in MiniLM's 384 dimensions every rubric
   but an exact repeat gains a lot (measured on real rubrics: 4.6 for an unrelated one, 3.5 for a paraphrase at
   cosine 0.94 to the one selected, still 2.6 for it beside eight others), so the greedy order is what puts
   paraphrases last, `max_selected` is what leaves them out, and `min_gain` stops only on (near-)exact repeats.
   RM-Gallery's selector differs: it drops d and the 1/2, truncates the spectrum to 95% of its energy, estimates
   R on random 50-row samples, and with its default batch size picks by distance from a centroid.
3. `structure`: one LLM call organises the selected rubrics into at most `max_themes` themes with at most
   `max_tips` tips each, in one plain format (judges/prompts.py RUBRIC_STRUCTURE, parse_themes). When the answer
   holds no theme, the selected rubrics are used as they are (said in the file: "structured": false).

The result is `rubrics.json` ({"format": "rm-rubrics", "version": 1, "principles": [...], ...}), written
atomically; `load_rubrics(path)` gives its principles, which every LLM judge mode shows as its rubric.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from judges.backends import ChatBackend, is_transient
from judges.base import Prompt, prompt_text
from judges.prompts import load_template, parse_principles, parse_themes

FORMAT, VERSION = "rm-rubrics", 1
EPS = 0.1


# ---------------------------------------------------------------- 1. propose, evaluate, revise


@dataclass
class PairRubrics:
    id: str
    rubrics: list[str] = field(default_factory=list)  # the rubrics that passed; [] when none did
    passed: bool = False
    rounds: int = 0  # evaluations made
    history: list[dict] = field(default_factory=list)  # per round: {"rubrics", "verdicts", "p_better"}
    error: str | None = None  # why no rubrics were proposed or revised ("unparsable proposal", "timeout", ...)


def _ask(backend: ChatBackend, content: str, max_new_tokens: int) -> tuple[str | None, str | None]:
    result = backend.generate([[{"role": "user", "content": content}]], max_new_tokens=max_new_tokens,
                              temperature=0.0)[0]
    return (result.value, None) if result.ok else (None, result.error)


def _answers(verdict) -> list[str]:
    """The judge's answers in both orders, in words the reviser can use."""
    if verdict.error and verdict.p_forward is None and verdict.p_backward is None:
        return [f"the judge failed: {verdict.error}"]
    out = []
    for shown, p, text in (("first", verdict.p_forward, verdict.text_forward),
                           ("second", verdict.p_backward, verdict.text_backward)):
        if p is None:
            out.append(f"with the better response shown {shown}: no answer ({verdict.error})")
        else:
            picked = "the better response" if p > 0.5 else "the worse response" if p < 0.5 else "a tie"
            said = f" (answered {text.strip()!r})" if text else ""
            out.append(f"with the better response shown {shown}: it picked {picked}{said}")
    return out


VERIFY = ("both_orders", "order_averaged")


def passes(verdict, verify: str = "both_orders") -> bool:
    """Whether the rubric-guided judgement agrees with the label. "both_orders" (the method's check): the better
    response wins in each order. "order_averaged": it wins once the two orders' probabilities are averaged (the
    judge's position bias cancels, as eval_reward_bench scores a pairwise judge), for a judge that always leans to
    one slot. Either way a failed order, or an exact tie, is a fail."""
    if verdict.p_forward is None or verdict.p_backward is None:
        return False
    if verify == "order_averaged":
        return verdict.p > 0.5
    return verdict.p_forward > 0.5 and verdict.p_backward > 0.5


def rubrics_for_pair(backend: ChatBackend, pair_id: str, prompt: Prompt, chosen: str, rejected: str,
                     max_rounds: int = 3, max_rubrics: int = 3, seed: int = 0, max_new_tokens: int = 256,
                     judge_kwargs: dict | None = None, verify: str = "both_orders") -> PairRubrics:
    """Propose, evaluate in both orders, revise (see the module docstring) for one labelled pair."""
    from judges.llm_judge import PairwiseLLMJudge

    if verify not in VERIFY:
        raise ValueError(f"verify must be one of {VERIFY}, got {verify!r}")
    if max_rounds < 1 or max_rubrics < 1:
        raise ValueError(f"max_rounds and max_rubrics must be >= 1, got {max_rounds} and {max_rubrics}")
    # the proposer sees the pair in a seeded random order, so "the better one is A" is no cue
    chosen_first = random.Random(f"{seed}:{pair_id}").random() < 0.5
    a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
    shown = {"prompt": prompt_text(prompt), "response_a": a, "response_b": b, "better": "A" if chosen_first else "B",
             "max_rubrics": max_rubrics}
    out = PairRubrics(pair_id)
    text, error = _ask(backend, load_template(None, "rubric_propose").render(**shown), max_new_tokens)
    rubrics = parse_principles(text, max_rubrics) if error is None else []
    for round_ in range(1, max_rounds + 1):
        if not rubrics:
            out.error = error or ("unparsable proposal" if round_ == 1 else "unparsable revision")
            return out
        judge = PairwiseLLMJudge(backend, principles=rubrics, **(judge_kwargs or {}))
        verdict = judge.judge_pairs([(prompt, chosen, rejected)])[0]
        if is_transient(verdict.error):  # the endpoint failed, not the rubrics: the pair is asked again on a rerun
            out.error = f"judge: {verdict.error}"
            return out
        out.rounds = round_
        answers = _answers(verdict)
        out.history.append({"rubrics": rubrics, "verdicts": answers,  # and P(better) with it shown first, second
                            "p_better": [verdict.p_forward, verdict.p_backward]})
        if passes(verdict, verify):
            out.rubrics, out.passed = rubrics, True
            return out
        if round_ == max_rounds:
            if verdict.error:  # the last evaluation failed (an unparsable verdict, an over-long prompt): say so
                out.error = f"judge: {verdict.error}"
            return out
        text, error = _ask(backend, load_template(None, "rubric_revise").render(
            **shown, rubrics=rubrics, verdicts=answers, averaged=verify == "order_averaged"), max_new_tokens)
        rubrics = parse_principles(text, max_rubrics) if error is None else []
    return out


def generate(backend: ChatBackend, pairs: Sequence[dict], store: str | Path, fingerprint: dict,
             overwrite: bool = False, **kwargs) -> list[PairRubrics]:
    """rubrics_for_pair over Preference rows (rm_core.data: prompt, chosen, rejected messages; unique ids), one line
    per finished pair appended to `store` (a JSONL file) under `fingerprint` (rm_core.resume: a resume with another
    LLM, data or setting is refused; `overwrite` starts afresh). Returns every pair's result, in `pairs`' order."""
    from judges.base import response_of
    from rm_core.progress import progress
    from rm_core.resume import append_jsonl, check_or_write_fingerprint, read_jsonl_store

    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    check_or_write_fingerprint(store, fingerprint, overwrite, what="rubric store")
    done = {r["id"]: PairRubrics(**r) for r in read_jsonl_store(store)} if store.is_file() else {}  # last row wins
    # not done, or failed for the endpoint (a timeout, an HTTP 503): asked again, the new row appended
    todo = [p for p in pairs if p["id"] not in done or is_transient(done[p["id"]].error)]
    with open(store, "a", encoding="utf-8") as f, progress(total=len(todo), desc="rubrics", unit="pair") as bar:
        for p in todo:
            chosen, rejected = response_of(p["chosen"]), response_of(p["rejected"])
            if isinstance(chosen, str) and isinstance(rejected, str):
                result = rubrics_for_pair(backend, p["id"], p["prompt"], chosen, rejected, **kwargs)
            else:  # a continuation of several turns: the rubric prompts show one response per side
                result = PairRubrics(p["id"], error="multi-turn response")
            append_jsonl(f, [asdict(result)])
            done[p["id"]] = result
            bar.update(1)
    return [done[p["id"]] for p in pairs]


# ---------------------------------------------------------------- 2. selection by coding rate


def coding_rate(z: np.ndarray, eps: float = EPS) -> float:
    """R(Z) = 1/2 logdet(I_n + d/(n eps^2) Z Z^T) of the n x d matrix Z (rows: embeddings); 0 for n = 0."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"coding_rate needs an n x d matrix, got shape {z.shape}")
    n, d = z.shape
    if n == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(np.eye(n) + (d / (n * eps * eps)) * (z @ z.T))
    if sign <= 0:  # I + a positive semi-definite matrix: never, short of a NaN in z
        raise ValueError("coding_rate: the matrix is not positive definite (a NaN or inf in the embeddings?)")
    return 0.5 * logdet


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; a zero (or non-finite) row is an error, never kept as is."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        raise ValueError(f"embedding rows {bad.tolist()[:5]} are zero or not finite: cannot select on them")
    return x / norms[:, None]


@dataclass
class Selection:
    indices: list[int]  # into the candidates, in the order chosen
    rates: list[float]  # R(S) after each pick
    gains: list[float]  # R(S) - R(S before) for each pick
    stop_reason: str


def select(embeddings: np.ndarray, max_selected: int | None = None, min_gain: float = 0.05,
           eps: float = EPS) -> Selection:
    """Greedy maximal coding rate (see the module docstring) over the rows of `embeddings` (normalised here)."""
    z = unit_rows(embeddings)
    n = len(z)
    limit = n if max_selected is None else min(max_selected, n)
    chosen: list[int] = []
    rates: list[float] = []
    gains: list[float] = []
    current = 0.0
    while len(chosen) < limit:
        best_i, best_rate = None, -np.inf
        for i in range(n):
            if i in chosen:
                continue
            rate = coding_rate(z[chosen + [i]], eps)
            if rate > best_rate + 1e-12:  # strictly better: ties go to the earliest
                best_i, best_rate = i, rate
        gain = best_rate - current
        if chosen and gain < min_gain:
            return Selection(chosen, rates, gains, f"best gain {gain:.4f} < min_gain {min_gain}")
        chosen.append(best_i)
        rates.append(best_rate)
        gains.append(gain)
        current = best_rate
    return Selection(chosen, rates, gains, "max_selected reached" if limit < n else "every rubric selected")


def sentence_embedder(model: str | None = None, batch_size: int = 32) -> Callable[[list[str]], np.ndarray]:
    """texts -> unit-norm sentence embeddings by mean pooling over tokens (as sentence-transformers does for
    all-MiniLM-L6-v2), from a local sentence encoder: all-MiniLM-L6-v2 (provisioned offline) by default."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rm_core.models import MINILM, resolve_model

    path = resolve_model(model or MINILM)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    return embed


# ---------------------------------------------------------------- 3. themes and tips


def theme_principle(theme: dict) -> str:
    """A theme as one principle for a judge's rubric: the theme, then its tips indented under it."""
    return theme["theme"] + "".join(f"\n  - {tip}" for tip in theme["tips"])


def structure(backend: ChatBackend, rubrics: Sequence[str], max_themes: int = 5, max_tips: int = 5,
              max_new_tokens: int = 768) -> tuple[list[dict], str | None]:
    """(themes, error): the rubrics organised into themes with tips by one LLM call; [] and why when the answer
    holds none."""
    text, error = _ask(backend, load_template(None, "rubric_structure").render(
        rubrics=list(rubrics), max_themes=max_themes, max_tips=max_tips), max_new_tokens)
    if error is not None:
        return [], error
    themes = parse_themes(text, max_themes, max_tips)
    return themes, None if themes else "no theme in the answer"


# ---------------------------------------------------------------- the rubric set on disk


def load_rubrics(path: str | Path) -> list[str]:
    """The principles of a rubric set written by this module (rubrics.json); one-line errors naming the file."""
    from rm_core.errors import UserInputError, check_local_path

    check_local_path(str(path), "rubric set")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserInputError(f"rubric set {path}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserInputError(f"rubric set {path}: not a {FORMAT} file (write one with rm-rubrics)")
    if data.get("version") != VERSION:
        raise UserInputError(f"rubric set {path}: version {data.get('version')!r}; this code reads {VERSION}")
    principles = data.get("principles")
    if not isinstance(principles, list) or not principles or not all(isinstance(p, str) and p.strip()
                                                                     for p in principles):
        raise UserInputError(f"rubric set {path}: `principles` must be a non-empty list of strings")
    return principles


def build(args, backend: ChatBackend, pairs: list[dict], embed: Callable[[list[str]], np.ndarray] | None = None) -> dict:
    """The three steps over `pairs` into args.output_dir (generate.partial.jsonl, then rubrics.json); then a
    TooManyFailedError (exit 3) when more than args.max_failed_share of the pairs stopped on a failed call."""
    from rm_core.hub import atomic_write_json
    from rm_core.resume import check_failed_share, data_fingerprint, judge_fingerprint

    out = Path(args.output_dir)
    settings = {k: getattr(args, k, None) for k in ("max_rounds", "max_rubrics", "seed", "judge_base_url",
                                                    "subsets", "split", "max_length")}
    if args.llm.startswith("openai:"):  # where the backend sends the requests
        from judges.cli import endpoint_of

        settings["judge_base_url"] = endpoint_of(args.llm, settings["judge_base_url"])
    if args.overwrite:  # afresh: a rubric set of the run before must not outlive it if this one fails
        (out / "rubrics.json").unlink(missing_ok=True)
    from judges.prompts import templates_fingerprint

    settings["prompts"] = templates_fingerprint()  # the proposal, revision and judging prompts
    if args.verify != "both_orders":  # only when set, so stores written before the option still resume
        settings["verify"] = args.verify
    if args.llm.startswith("llm:"):  # a local model's answers depend on its dtype (resolved by main)
        settings["dtype"] = getattr(args, "dtype", None)
    fingerprint = {"llm": judge_fingerprint(args.llm), "data": data_fingerprint(args.pairs), "settings": settings}
    results = generate(backend, pairs, out / "generate.partial.jsonl", fingerprint, args.overwrite,
                       max_rounds=args.max_rounds, max_rubrics=args.max_rubrics, seed=args.seed, verify=args.verify)
    candidates = list(dict.fromkeys(r for res in results for r in res.rubrics))  # exact duplicates once
    stats = {"pairs": len(results), "passed": sum(r.passed for r in results),
             "rounds": dict(sorted(Counter(r.rounds for r in results if r.passed).items())),
             "failures": dict(Counter(r.error for r in results if r.error)),
             "failed_calls": sum(failed_call(r.error) for r in results),
             "judge_failed_rounds": sum(None in h["p_better"] for r in results for h in r.history),
             "candidates": len(candidates)}
    print(f"[rubrics] {stats['passed']} of {len(results)} pairs gave rubrics that passed; {len(candidates)} rubrics"
          + (f"; failures: {stats['failures']}" if stats["failures"] else "")
          + (f"; {stats['judge_failed_rounds']} evaluations without a verdict in both orders"
             if stats["judge_failed_rounds"] else ""), flush=True)
    if not candidates:
        from rm_core.errors import UserInputError

        why = stats["failures"] or "the judge never picked the better response in both orders"
        raise UserInputError(f"no rubric passed on any of the {len(results)} pairs ({why}); nothing to select")
    embed = embed or sentence_embedder(args.embedding_model)
    sel = select(embed(candidates), args.max_selected, args.min_gain)
    selected = [candidates[i] for i in sel.indices]
    themes, why = structure(backend, selected, args.max_themes, args.max_tips) if args.max_themes else ([], "off")
    result = {"format": FORMAT, "version": VERSION,
              "principles": [theme_principle(t) for t in themes] if themes else selected,
              "structured": bool(themes), "structure_error": None if themes else why, "themes": themes,
              "selected": selected, "selection": asdict(sel), "candidates": candidates, "stats": stats,
              "llm": args.llm, "embedding_model": args.embedding_model or "sentence-transformers/all-MiniLM-L6-v2",
              "fingerprint": fingerprint, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(out / "rubrics.json", result)
    print(f"[rubrics] {len(selected)} selected, {len(themes)} themes"
          + (f" (not structured: {why})" if args.max_themes and not themes else "")
          + f" -> {out / 'rubrics.json'}", flush=True)
    check_failed_share({"": (stats["failed_calls"], stats["pairs"])}, getattr(args, "max_failed_share", None),
                       "pairs", f"the rubric set is in {out / 'rubrics.json'}, from the pairs that answered; a rerun "
                       "of the same command asks again those a timeout, 429 or 5xx stopped (pass --max_failed_share 1 "
                       "to accept it)")
    return result


def failed_call(error: str | None) -> bool:
    """Whether a pair's error is a failed call (a timeout, an HTTP error, a prompt over max_length), not the LLM's
    own answer (an unparsable proposal, revision or verdict) nor a pair the method cannot show (multi-turn)."""
    return bool(error) and "unparsable" not in error and error != "multi-turn response"


def make_parser() -> argparse.ArgumentParser:
    from judges.cli import add_llm_judge_args
    from rm_core.errors import finite_float, int_at_least
    from rm_core.models import add_dtype_arg
    from rm_core.resume import DEFAULT_MAX_FAILED_SHARE, share_arg
    from rm_core.tracking import add_run_args

    p = argparse.ArgumentParser(prog="rm-rubrics", description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", required=True, help="the LLM that proposes, judges and organises: llm:<HF id or "
                                                "folder> or openai:<model> (with --judge_base_url)")
    p.add_argument("--pairs", required=True, help="labelled pairs: a Hub id, a RewardBench-schema file or LLMBar's "
                                                  "folder (as eval_reward_bench --dataset)")
    p.add_argument("--split", default="filtered", help="split of a Hub data set")
    p.add_argument("--subsets", nargs="*", default=None, help="use only these subsets")
    p.add_argument("--max_pairs", type=int_at_least(1), default=70, help="the first N pairs (the paper's budget: about 70)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--max_rounds", type=int_at_least(1), default=3, help="evaluations per pair (revisions: one fewer)")
    p.add_argument("--max_rubrics", type=int_at_least(1), default=3, help="rubrics per proposal")
    p.add_argument("--verify", choices=VERIFY, default="both_orders",
                   help="when rubrics pass: the better response wins in both orders (the method), or once the two "
                        "orders are averaged (for a small judge that always leans to one slot)")
    p.add_argument("--max_selected", type=int_at_least(1), default=20, help="most rubrics the coding-rate selection keeps")
    p.add_argument("--min_gain", type=finite_float, default=0.05,
                   help="stop selecting when the best gain is below this (at the default eps only a near-exact repeat "
                        "gains so little: --max_selected is what bounds the set)")
    p.add_argument("--max_themes", type=int_at_least(0), default=5, help="themes to organise the selection into (0: none)")
    p.add_argument("--max_tips", type=int_at_least(0), default=5)
    p.add_argument("--embedding_model", default=None, help="sentence encoder (default all-MiniLM-L6-v2)")
    p.add_argument("--seed", type=int, default=0, help="seeds the order each pair is shown in")
    p.add_argument("--max_length", type=int_at_least(1), default=2048)
    p.add_argument("--overwrite", action="store_true", help="start afresh in an output_dir another run began")
    p.add_argument("--max_failed_share", type=share_arg, default=DEFAULT_MAX_FAILED_SHARE,
                   help="exit 3 (after writing rubrics.json) when more than this share of the pairs stopped on a "
                        "failed call (a timeout, an HTTP error); a rerun asks those a timeout, 429 or 5xx hit again "
                        "(1: never stop)")
    add_dtype_arg(p)
    add_llm_judge_args(p)  # --judge_base_url, --judge_cache_dir, --judge_timeout_s, ... for the LLM
    add_run_args(p, tracking=False)
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    from judges.cli import check_llm_judge_args, llm_judge_kwargs
    from judges.llm_judge import load_backend
    from rm_core.errors import UserInputError, check_local_path
    from rm_core.tracking import apply_run_args

    args = make_parser().parse_args(argv)
    apply_run_args(args)
    check_local_path(args.pairs, "pairs")
    if not args.llm.startswith(("llm:", "openai:")):
        raise UserInputError(f"--llm {args.llm}: must be llm:<model> or openai:<model>")
    from rm_core.data import load_reward_bench_pairs

    pairs, skipped = load_reward_bench_pairs(args.pairs, args.split, args.subsets, args.max_pairs)
    if skipped.total:
        print(f"[rubrics] {args.pairs}: {skipped}", flush=True)
    check_llm_judge_args([args.llm], args)
    from rm_core.models import dtype_choice

    args.dtype, _ = dtype_choice(args.dtype)  # resolved before it is fingerprinted: auto differs between machines
    kwargs = llm_judge_kwargs(args.llm, args)  # the endpoint's options, or a local model's dtype and max_length
    backend = load_backend(args.llm, kwargs)
    if kwargs:  # an option for the judge, not the model (--judge_rubrics): not one this command takes
        raise UserInputError(f"{', '.join(kwargs)}: not an option of rm-rubrics")
    return build(args, backend, pairs)


def cli() -> None:
    """`rm-rubrics` / `python -m judges.rubrics` (a user error is one line, exit 2)."""
    from rm_core.errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
