"""Train a scalar outcome reward model on the Bradley-Terry path: pairs (a correct, an incorrect solution of
the same question), rm_core's sequence-classification reward model and pairwise trainer.

    python math_rm/train_scalar_orm.py --config math_rm/configs/smollm2-135m-cpu-scalar-orm.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml math_rm/train_scalar_orm.py \
        --config math_rm/configs/llama3-8b-scalar-orm-8xa100.yaml

Why pairs, not a BCE head: the pairwise path (rm_core.pipeline.train_pairwise_reward_model) exists, is tested,
and learns exactly what best-of-N needs, the ORDER of candidates of one question; a question whose candidates
are all correct or all wrong gives no pair. The checkpoint is a normal sequence classifier with rm_family "orm"
and `math_rm_head: "scalar"` in config.json; `judges.load` serves it with the Bradley-Terry judge (its score is
the scalar reward, not a probability). After training, best-of-N on the held-out questions as for the others.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from math_rm.config import ScalarORMConfig
from rm_core.errors import run_recipe
from rm_core.hub import command_line

NO_PAIR_ALL_CORRECT = "no pair: every candidate is correct"
NO_PAIR_ALL_WRONG = "no pair: every candidate is wrong"


def pairs_from_candidates(cands: list[dict], max_per_question: int = 4, skips=None) -> list[dict]:
    """Preference rows: each correct response over each incorrect one of the same question. A question whose
    candidates are all correct or all wrong gives no pair: counted in `skips` (a SkipReport) when given."""
    out = []
    for cand in cands:
        good = [r for r, c in zip(cand["responses"], cand["correct"]) if c and r.strip()]
        bad = [r for r, c in zip(cand["responses"], cand["correct"]) if not c and r.strip()]
        if skips is not None and not (good and bad):
            skips.add(NO_PAIR_ALL_WRONG if bad else NO_PAIR_ALL_CORRECT, f"id {cand['id']}")
        pairs = list(itertools.product(good, bad))
        for j, (g, b) in enumerate(pairs[: max_per_question or None]):
            out.append({"id": f"{cand['id']}/{j}", "prompt": cand["prompt"],
                        "chosen": [{"role": "assistant", "content": g}],
                        "rejected": [{"role": "assistant", "content": b}]})
    return out


def make_parser():
    from trl import ModelConfig, TrlParser

    from math_rm.config import MathDataArguments

    return TrlParser((MathDataArguments, ScalarORMConfig, ModelConfig))


def main(data_args, training_args: ScalarORMConfig, model_args) -> dict:
    from accelerate import PartialState

    from math_rm import best_of_n
    from math_rm.data import load_math_splits
    from rm_core.args import DataArguments
    from rm_core.data import data_file_name, to_candidates
    from rm_core.errors import UserInputError, check_local_path
    from rm_core.hub import CardEval, atomic_write_jsonl, held_out_split
    from rm_core.pipeline import load_preference_splits, train_pairwise_reward_model

    check_local_path(model_args.model_name_or_path, "--model_name_or_path")  # before the data
    train_src, eval_cands, report = load_math_splits(data_args)
    source = data_file_name(data_args.dataset_name, data_args.dataset_train_split)
    # the user's rows are skipped and counted here (bad rows, and questions that give no pair): the pairs/ folder
    # the pipeline reads is generated from the usable ones, so its own skip counts are always 0
    train_cands, train_skips = to_candidates(train_src, data_args.dataset_format, data_args.strict_rows)
    train_pairs = pairs_from_candidates(train_cands, training_args.max_pairs_per_question, train_skips)
    if not train_pairs:
        raise UserInputError(f"no usable training pairs in {source}: {len(train_src)} rows read, {train_skips}")
    report["train_skipped"] = train_skips.as_dict()
    pairs_dir = Path(training_args.output_dir) / "pairs"
    state = PartialState()
    check_pairs_folder(pairs_dir, train_pairs, training_args.resume_from_checkpoint)
    if state.is_main_process:
        print(f"[data] {source}: {len(train_src)} training rows -> {len(train_pairs)} (correct, incorrect) pairs; "
              f"{train_skips}; held-out: {len(eval_cands)} questions ({report['held_out']['description']}), "
              f"{report['eval_skipped']['skipped']} rows skipped", flush=True)
        atomic_write_jsonl(pairs_dir / "train.jsonl", train_pairs)
        atomic_write_jsonl(pairs_dir / "test.jsonl", pairs_from_candidates(eval_cands,
                                                                         training_args.max_pairs_per_question))
    state.wait_for_everyone()
    pair_args = DataArguments(dataset_name=str(pairs_dir), dataset_format="explicit", dataset_test_split="test",
                              strict_rows=True)

    def evaluate_best_of_n(model, tokenizer) -> tuple[dict, dict]:
        """Best-of-N on the held-out questions, with the judge judges.load builds for the published checkpoint
        (math_rm_head "scalar": the scalar-head judge), before anything is published."""
        # eval_results.json's "data": the pipeline's report of the generated pairs (re-read: the same numbers),
        # with the skips of the user's rows, not those of pairs/ (always 0)
        data = {**load_preference_splits(pair_args)[2], "dataset": data_args.dataset_name, "pairs_dir": str(pairs_dir),
                "train_skipped": train_skips.as_dict(), "test_skipped": report["eval_skipped"]}
        data["held_out"] = {**data["held_out"], "description": "the (correct, incorrect) pairs of the held-out "
                            f"questions: {report['held_out']['description']}"}
        more = {"math_data": report, "data": data}
        if not eval_cands:
            return more, {}
        from judges.rm_judge import RewardModelJudge
        from rm_core.models import inference_device

        judge = RewardModelJudge(model.to(inference_device()), tokenizer)
        bon = best_of_n.evaluate(eval_cands, {"scalar_orm": judge}, progress=not training_args.disable_tqdm)
        more["best_of_n"] = {k: v for k, v in bon.items() if k != "scalar_orm"}
        more["best_of_n"]["scalar_orm"] = {k: v for k, v in bon["scalar_orm"].items() if k != "scores"}
        print(f"[eval] best-of-N scalar ORM {bon['scalar_orm']['accuracy']:.4f} on {bon['questions']} questions "
              f"(majority vote {bon['majority_vote']:.4f})", flush=True)
        return more, {"best-of-N scalar_orm": bon["scalar_orm"]["accuracy"],
                      "best-of-N majority_vote": bon["majority_vote"]}, [
            CardEval(eval_source, held_out_split(report["held_out"]),
                     {"best-of-N accuracy": bon["scalar_orm"]["accuracy"],
                      "best-of-N weighted vote accuracy": bon["scalar_orm"]["weighted_vote_accuracy"]},
                     task_name="Best-of-N selection")]

    # math_rm_head is an argument of the one publish step: config.json says "scalar" before anything is uploaded
    eval_source = data_args.eval_dataset_name or data_args.dataset_name  # the card names the math data, not pairs/
    return train_pairwise_reward_model(pair_args, training_args, model_args, rm_family="orm", command=command_line(),
                                       family_fields={"math_rm_head": "scalar"}, evaluate_more=evaluate_best_of_n,
                                       card_fields={"datasets": [data_args.dataset_name], "eval_dataset": eval_source})


def check_pairs_folder(pairs_dir: Path, train_pairs: list[dict], resume) -> None:
    """Before pairs/ is rewritten: a folder whose run left checkpoints or a finished model beside pairs/ of other
    data is refused (unless --resume_from_checkpoint fresh), so that run's pairs are never replaced before the
    training resume check refuses the rest."""
    import json

    from rm_core.errors import UserInputError
    from rm_core.pipeline import TRAINING_FINGERPRINT

    out, old = pairs_dir.parent, pairs_dir / "train.jsonl"
    if resume == "fresh" or not old.is_file() or not (out / TRAINING_FINGERPRINT).is_file():
        return
    try:
        same = [json.loads(line) for line in old.read_text(encoding="utf-8").splitlines() if line.strip()] == [
            json.loads(json.dumps(p)) for p in train_pairs]
    except ValueError:
        same = False
    if not same:
        raise UserInputError(f"{pairs_dir} holds the pairs of an earlier run on other data: pass "
                             "--resume_from_checkpoint fresh to train again on these (or choose another --output_dir)")


def cli() -> None:  # `python math_rm/train_scalar_orm.py`, `python -m math_rm.train_scalar_orm`, `rm-train-scalar-orm`
    run_recipe(main, make_parser)


if __name__ == "__main__":
    cli()
