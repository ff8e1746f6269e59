"""Every family learns what it can learn (issue 21; -m slow): each recipe trains on a small verifiable set, and its
held-out accuracy beats the untrained model's by a margin whose 95% paired-bootstrap interval excludes zero
(rm_core.stats.paired_bootstrap over the same held-out items, 1.0 / 0.0 per item).

- The sets. The preference families (pair-PM, ODIN, ArmoRM, the decision tree) train on the built-in preference set
  (rm_core/builtin_data.py: 1200 train / 300 held-out pairs, every label checked by a verifier, lengths balanced, held-
  out prompts never in train). The math RMs train on GSM8K reference solutions each paired with a copy whose one
  calculator result is negated ("<<48/2=-24>>-24"): the project's offline step rule (math_rm/step_labels.py) labels the
  flawed step, and held-out accuracy is best-of-2 on GSM8K test questions (the clean solution picked). The GRPO judge
  trains on an easy pair-PM set (one reply always helps, the other always refuses).
- The models: tiny random Llamas (2 layers, 32 wide; 256 wide for the frozen ArmoRM backbone) whose tokenizer is
  learnt from the training text (rm_core.testing.save_tiny_backbone_for). The sets' signal is on the surface, so they
  learn it in seconds. Bradley-Terry is checked on the real MiniLM and SmolLM2 in test_slow_real_models.py, in the same
  interval form.
- The untrained model: the same recipe and seed run with learning rate 0 for one step (the model training starts from,
  saved and scored like the trained one); for ArmoRM the exported model with its heads re-initialised; for the tree a
  tree with no split (every pair a tie, scored 0.5 like the trained tree's own ties: chance). The math RMs' untrained
  model happens to rank by the flawed step the wrong way round, so they also have to beat the random pick.
- The GRPO judge: its reward over the last 10 steps' completions above the first 10 steps' (bootstrap over the
  completions, a GRPO group of 8 resampled as one), and its held-out verdicts (greedy, both orders) above those of
  the model GRPO started from.

About 4 minutes on 2 cores in all (each test's time on the dev machine is in its docstring).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rm_core.data import shared_data_dir
from rm_core.stats import paired_bootstrap, stratified_bootstrap

torch.set_num_threads(1)  # tiny models: one thread is faster than two on 2 shared cores

pytestmark = pytest.mark.slow
GSM8K = shared_data_dir() / "gsm8k"
needs_gsm8k = pytest.mark.skipif(not (GSM8K / "train.jsonl").is_file(), reason=f"GSM8K data {GSM8K} is absent")

ONE_PAIR = 1.01 / 300  # the judges and the recipes score the same pairs in other batches: ~1e-6 apart, a tie may flip
COMMON = ["--per_device_train_batch_size", "16", "--logging_steps", "50", "--activation_checkpointing", "false",
          "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "0", "--report_to", "none", "--save_strategy", "no"]


def _run(recipe, argv: list[str]) -> dict:
    return recipe.main(*recipe.make_parser().parse_args_and_config(argv))


def _trained_and_untrained(recipe, root: Path, argv: list[str], train_args: list[str]) -> tuple[dict, dict]:
    """The recipe's results trained (root/trained) and with learning rate 0 for one step (root/untrained)."""
    trained = _run(recipe, [*argv, "--output_dir", str(root / "trained"), *train_args])
    untrained = _run(recipe, [*argv, "--output_dir", str(root / "untrained"), "--learning_rate", "0",
                              "--max_steps", "1"])
    return trained, untrained


def _mean(values) -> float:
    return float(np.mean(values))


def _assert_beats(name: str, trained: list[float], baseline: list[float], what: str = "untrained") -> dict:
    result = paired_bootstrap(trained, baseline)
    print(f"[{name}] held-out accuracy {_mean(trained):.3f} vs {what} {_mean(baseline):.3f}: "
          f"{result['difference']:+.3f} (95% CI {result['low']:+.3f} .. {result['high']:+.3f}, n={result['n']})")
    assert result["excludes_zero"] and result["difference"] > 0, (name, what, result)
    return result


# -- the built-in preference set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin():
    """(train rows, held-out preferences) of the built-in set, as dataset_name "builtin" reads them."""
    from rm_core.builtin_data import build_builtin_preferences
    from rm_core.data import to_preferences

    train, test = build_builtin_preferences()
    return train, to_preferences(test)[0]


def _texts(rows: list[dict]) -> list[str]:
    return [t for r in rows for t in (r["prompt"], r["chosen"], r["rejected"])]


@pytest.fixture(scope="module")
def builtin_backbone(tmp_path_factory, builtin):
    from rm_core.testing import save_tiny_backbone_for

    return save_tiny_backbone_for(tmp_path_factory.mktemp("builtin") / "tiny", _texts(builtin[0]))


def _learns_the_builtin_set(name: str, recipe, tmp_path, builtin, backbone, max_length: int) -> None:
    """Train the recipe 2 epochs on the built-in set (and at lr 0), score both checkpoints through judges.load on
    the held-out pairs: the judge agrees with the recipe's own held-out accuracy, and training beats lr 0."""
    import judges
    from rm_core.testing import pairwise_correct

    held_out = builtin[1]
    argv = ["--model_name_or_path", str(backbone), "--dataset_name", "builtin", "--max_length", str(max_length),
            *COMMON]
    trained, _ = _trained_and_untrained(recipe, tmp_path, argv, ["--learning_rate", "3e-3", "--num_train_epochs", "2"])
    after = pairwise_correct(judges.load(str(tmp_path / "trained"), batch_size=16), held_out)
    before = pairwise_correct(judges.load(str(tmp_path / "untrained"), batch_size=16), held_out)
    assert _mean(after) == pytest.approx(trained["held_out"]["accuracy"], abs=ONE_PAIR)  # the judge scores as the recipe
    _assert_beats(name, after, before)


def test_pair_pm_learns_the_builtin_set(tmp_path, builtin, builtin_backbone):
    """SFT on the answer token, both orders, 2 epochs; held-out accuracy order-debiased (~45 s)."""
    from pair_pm import train as recipe

    _learns_the_builtin_set("pair-PM", recipe, tmp_path, builtin, builtin_backbone, max_length=512)


def test_odin_learns_the_builtin_set(tmp_path, builtin, builtin_backbone):
    """Quality and length heads, 2 epochs; the served quality head is scored (~15 s)."""
    from odin_rm import train as recipe

    _learns_the_builtin_set("ODIN", recipe, tmp_path, builtin, builtin_backbone, max_length=256)


@pytest.fixture(scope="module")
def armo(tmp_path_factory, builtin):
    """ArmoRM stages 1 and 2 on a frozen tiny backbone (256 wide: its last-token states are random features of the
    text, read linearly by stage 1). Stage 1 objectives: one per subset of the built-in set, rated 1 or 0 by that
    subset's verifier on its own rows only (None elsewhere), plus verbosity from the length (~40 s)."""
    from armo_rm import train_gating, train_regression
    from armo_rm.config import ArmoConfig
    from rm_core.builtin_data import SUBSET_CHECKS, build_builtin_preferences
    from rm_core.testing import save_tiny_backbone_for

    train = builtin[0]
    root = tmp_path_factory.mktemp("armo")
    backbone = save_tiny_backbone_for(root / "tiny", _texts(train), hidden_size=256, intermediate_size=512)
    ratings = [{"prompt": r["prompt"], "response": r[side],
                "attributes": {r["subset"]: float(SUBSET_CHECKS[r["subset"]](r["prompt"], r[side]))}}
               for r in train for side in ("chosen", "rejected")]
    files = {"ratings": ratings, "train": train, "test": build_builtin_preferences()[1]}
    for name, rows in files.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = ArmoConfig(model_name_or_path=str(backbone), output_dir=str(root / "out"), max_length=256, dtype="float32",
                     ratings_sources=[str(root / "ratings.jsonl")], preference_sources=[str(root / "train.jsonl")],
                     test_sources=[str(root / "test.jsonl")], max_steps=300, batch_size=256, quiet=True)
    stage1 = train_regression.main(cfg)
    stage2 = train_gating.main(cfg)
    return {"root": root, "cfg": cfg, "stage1": stage1, "stage2": stage2}


def test_armo_rm_learns_the_builtin_set(armo, builtin):
    """Stage 1 regression and stage 2 gating against the same model with its heads re-initialised."""
    import judges
    from rm_core.testing import pairwise_correct

    held_out, cfg = builtin[1], armo["cfg"]
    judge = judges.load(cfg.output_dir, embedding_cache=cfg.cache_folder)  # the test pairs' states: cached by stage 2
    after = pairwise_correct(judge, held_out)
    assert _mean(after) == pytest.approx(armo["stage2"]["test"][str(armo["root"] / "test.jsonl")]["accuracy"],
                                         abs=ONE_PAIR)
    model = judge.model
    torch.manual_seed(0)
    with torch.no_grad():  # untrained heads: a random regression and gating, no scale, no debiasing
        for module in [model.regression, *model.gating.modules()]:
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        model.logit_scale.fill_(1.0)
        model.reward_transform.copy_(torch.eye(model.reward_transform.shape[0]))
    before = pairwise_correct(judge, held_out)
    _assert_beats("ArmoRM", after, before)


def test_decision_tree_learns_the_builtin_set(armo, builtin, tmp_path):
    """A tree over the ArmoRM's attribute scores imitating the human labels, against chance (~8 s)."""
    import judges
    from decision_tree import collect_preferences, fit_tree
    from rm_core.testing import pairwise_correct

    root, cache = armo["root"], armo["cfg"].cache_folder
    for part in ("train", "test"):
        collect_preferences.main(["--pairs", str(root / f"{part}.jsonl"), "--judge", "human",
                                  "--output_dir", str(tmp_path / f"prefs-{part}"), "--quiet"])
    info = fit_tree.main(["--preferences", str(tmp_path / "prefs-train"), "--judge", "human",
                          "--attribute_model", armo["cfg"].output_dir, "--output_dir", str(tmp_path / "tree"),
                          "--test_preferences", str(tmp_path / "prefs-test"), "--embedding_cache", cache, "--quiet"])
    judge = judges.load(str(tmp_path / "tree"), embedding_cache=cache)
    strict = pairwise_correct(judge, builtin[1])
    assert _mean(strict) == pytest.approx(info["test"][str(tmp_path / "prefs-test")]["accuracy_vs_human"], abs=ONE_PAIR)
    # The tree abstains (P = 0.5: both orders in one leaf) on pairs its features cannot tell apart (the attributes
    # say nothing of the prompt, e.g. which case it asked for); an abstention scores 0.5, a fair coin, as every pair
    # of the tree with no split does.
    after = pairwise_correct(judge, builtin[1], tie=0.5)
    _assert_beats("decision tree", after, [0.5] * len(after), "chance (a tree with no split)")


# -- the math RMs: GSM8K steps with a verifiable flaw -----------------------------------------------------------

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def negate_one_result(solution: str, rng: random.Random) -> tuple[str, int] | None:
    """The solution with one calculator annotation's result negated where it is written ("<<48/2=24>>24 clips" ->
    "<<48/2=-24>>-24 clips": false arithmetic), and the index of its line; None when no result is positive."""
    lines = solution.split("\n")
    spots = [(i, m) for i, line in enumerate(lines) for m in _ANNOTATION.finditer(line)
             if re.fullmatch(r"\d[\d,]*(?:\.\d+)?", m.group(2).strip())]
    if not spots:
        return None
    i, m = rng.choice(spots)
    value, line = m.group(2).strip(), lines[i]
    rest = line[m.end():]
    rest = "-" + rest if rest.startswith(value) else rest
    lines[i] = f"{line[:m.start()]}<<{m.group(1)}=-{value}>>{rest}"
    return "\n".join(lines), i


def flawed_gsm8k_rows(path: Path, n: int, seed: int) -> list[dict]:
    """GSM8K labelled-solutions rows (the format of ../shared/data/gsm8k/example_model_solutions.jsonl) from the
    first n usable questions of an openai/gsm8k file: the reference solution (correct) and a copy with one result
    negated (not correct), in a seeded random order. The step rule must flag exactly the negated line."""
    from math_rm.step_labels import label_candidates
    from rm_core.data import to_candidates

    rng, rows = random.Random(seed), []
    for line in path.read_text(encoding="utf-8").splitlines():
        src = json.loads(line)
        flawed = negate_one_result(src["answer"], rng)
        if flawed is None:
            continue
        solutions = [("clean", {"solution": src["answer"], "is_correct": True}),
                     ("flawed", {"solution": flawed[0], "is_correct": False})]
        rng.shuffle(solutions)
        row = {"question": src["question"], "ground_truth": src["answer"], **dict(solutions)}
        (cand,), _ = to_candidates([row], strict=True)
        labelled = {s["is_correct"]: s for s in label_candidates(cand)}
        assert all(x == 1 for x in labelled[True]["labels"])  # the rule's verdicts are the labels trained on
        assert labelled[False]["first_bad"] == flawed[1] and labelled[False]["reason"] == "false arithmetic"
        rows.append(row)
        if len(rows) == n:
            return rows
    raise AssertionError(f"only {len(rows)} usable questions in {path}")


@pytest.fixture(scope="module")
def gsm8k_flawed(tmp_path_factory):
    """A data folder (train.jsonl: 200 GSM8K train questions; test.jsonl: 200 test questions) and a tiny backbone
    whose tokenizer is learnt from the training questions and reference solutions."""
    from rm_core.testing import save_tiny_backbone_for

    root = tmp_path_factory.mktemp("gsm8k")
    data = root / "data"
    data.mkdir()
    parts = {"train": flawed_gsm8k_rows(GSM8K / "train.jsonl", 200, 0),
             "test": flawed_gsm8k_rows(GSM8K / "test.jsonl", 200, 1)}
    for name, rows in parts.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = [t for r in parts["train"] for t in (r["question"], r["ground_truth"])]
    return data, save_tiny_backbone_for(root / "tiny", texts)


@needs_gsm8k
@pytest.mark.parametrize("family", ["prm", "orm"])
def test_math_rm_learns_to_flag_a_false_step(tmp_path, gsm8k_flawed, family):
    """PRM (a judgement after every step, labels from the step rule) and ORM (one per solution); held-out: best-of-2
    on 200 GSM8K test questions from the recipe's own held_out_scores.json (~28 s each)."""
    import importlib

    from rm_core.best_of_n import score_pick
    from rm_core.data import to_candidates

    recipe = importlib.import_module(f"math_rm.train_{family}")
    data, backbone = gsm8k_flawed
    argv = ["--model_name_or_path", str(backbone), "--dataset_name", str(data), "--eval_dataset_name", str(data),
            "--max_length", "512", *COMMON]
    trained, untrained = _trained_and_untrained(recipe, tmp_path, argv,
                                                ["--learning_rate", "5e-3", "--num_train_epochs", "2"])
    cands, _ = to_candidates([json.loads(x) for x in (data / "test.jsonl").read_text().splitlines()])

    def picks(run: str) -> list[float]:
        scores = json.loads((tmp_path / run / "held_out_scores.json").read_text())["scores"]
        return [score_pick(s, c["correct"])[1] for s, c in zip(scores, cands, strict=True)]

    after, before = picks("trained"), picks("untrained")
    assert _mean(after) == pytest.approx(trained["best_of_n"][family]["accuracy"])
    assert _mean(before) == pytest.approx(untrained["best_of_n"][family]["accuracy"])
    assert trained["best_of_n"]["random"] == pytest.approx(0.5)  # one right candidate of two in every question
    _assert_beats(family.upper(), after, before)
    _assert_beats(family.upper(), after, [0.5] * len(after), "the random pick")


# -- the GRPO judge --------------------------------------------------------------------------------------------

GOOD = "Sure, here is a short answer."
BAD = "I cannot help with that."
WORDS = "the quick brown fox jumps over lazy dog sea poem hello world".split()


def test_grpo_judge_reward_goes_up(tmp_path, monkeypatch):
    """A tiny policy, 60 format-only SFT steps (each prompt with both verdict letters), then 60 GRPO steps of 2 pairs x 8 completions on
    an easy set; every completion's reward is recorded from the reward function the recipe builds (~60 s)."""
    import judges
    from pair_pm import train_grpo as recipe
    from pair_pm.judge import ReasoningPairPMJudge
    from pair_pm.prepare_data import REASONING_QUESTION
    from rm_core.testing import pairwise_correct, save_tiny_backbone_for

    rng = random.Random(0)
    data = tmp_path / "data"
    data.mkdir()
    splits = {}
    for split, n in {"train": 64, "test": 16}.items():
        splits[split] = [{"id": f"{split}-{i}", "prompt": " ".join(rng.choice(WORDS) for _ in range(3)),
                          "chosen": GOOD, "rejected": BAD} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in splits[split]), encoding="utf-8")
    texts = [REASONING_QUESTION, recipe.format_example(GOOD, BAD, "A"), recipe.format_example(BAD, GOOD, "B"),
             " ".join(WORDS), "[CONTEXT] [RESPONSE A] [RESPONSE B] [QUESTION]"] * 20
    policy = save_tiny_backbone_for(tmp_path / "policy", texts, vocab_size=600)

    rewards: list[list[float]] = []  # per reward call (one generation batch = one step): every completion's reward

    class Recording(recipe.PairPMGRPOTrainer):
        def __init__(self, *args, reward_funcs, **kwargs):
            def record(func):
                def wrapped(*a, **k):
                    out = func(*a, **k)
                    rewards.append([float(r) for r in out if r is not None])
                    return out

                wrapped.__name__ = wrapped.__qualname__ = func.__name__
                return wrapped

            super().__init__(*args, reward_funcs=[record(f) for f in reward_funcs], **kwargs)

    monkeypatch.setattr(recipe, "PairPMGRPOTrainer", Recording)
    out = tmp_path / "ckpt"
    argv = ["--model_name_or_path", str(policy), "--dataset_name", str(data), "--output_dir", str(out),
            "--num_generations", "8", "--per_device_train_batch_size", "16", "--max_completion_length", "96",
            "--max_prompt_length", "256", "--max_steps", "60", "--learning_rate", "1e-3",
            "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "5", "--temperature", "0.6",
            "--beta", "0.0", "--format_warmup_steps", "60", "--format_warmup_learning_rate", "1e-2",
            "--logging_steps", "10", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            "--use_cpu", "true", "--seed", "0"]
    _run(recipe, argv)
    assert len(rewards) == 60 and all(len(r) == 16 for r in rewards)

    def groups(steps: list[list[float]]) -> list[float]:
        """Mean reward of each GRPO group (the 8 completions of one pair, adjacent in a step's batch): the completions
        of a group share their pair and are resampled together, so the interval is not narrowed by their correlation."""
        return [_mean(step[i:i + 8]) for step in steps for i in range(0, len(step), 8)]

    first, last = groups(rewards[:10]), groups(rewards[-10:])
    low, high = stratified_bootstrap({"last": last, "first": first}, lambda m: m["last"] - m["first"])  # unpaired
    up = {"difference": _mean(last) - _mean(first), "low": low, "high": high}
    print(f"[GRPO] reward, last 10 steps {_mean(last):.3f} vs first 10 {_mean(first):.3f}: {up['difference']:+.3f} "
          f"(95% CI {up['low']:+.3f} .. {up['high']:+.3f}, bootstrap over {len(last)} and {len(first)} groups of 8 "
          "completions)")
    assert up["low"] > 0 and up["difference"] > 0, up

    # held out, greedy, both orders (a pair right only when both orders are): the final judge vs its start
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rm_core.data import to_preferences

    held_out = to_preferences(splits["test"])[0]
    after = pairwise_correct(judges.load(str(out), batch_size=16), held_out)
    start = out / "format-warmup"
    warm = ReasoningPairPMJudge(AutoModelForCausalLM.from_pretrained(start), AutoTokenizer.from_pretrained(start),
                                max_length=256, batch_size=16, max_new_tokens=96)
    _assert_beats("GRPO judge", after, pairwise_correct(warm, held_out), "the format-only warm-up it started from")
