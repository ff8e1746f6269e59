"""ArmoRM stage 2: verbosity debiasing, a gating network trained with the Bradley-Terry loss, and export.

    python armo_rm/train_gating.py --config armo_rm/configs/smollm2-135m-cpu.yaml   (after train_regression.py)

1. Rewards r = regression(embedding) for every response of the preference pairs (the reference set).
2. Debiasing: for each objective k, the smallest penalty p_k with Spearman(r_k - p_k r_v, r_v) <= threshold,
   where v is the verbosity objective (p_k = 0 when already below; the verbosity objective itself is set to
   0). As a matrix: r' = r @ T, T = I with row v minus p. The gating trains on these debiased rewards.
3. Gating: score = s * sum_k softmax_k(MLP(prompt embedding) / temperature) * r'_k, softmax over the
   objectives, s a learned scale; loss -log sigmoid(score_chosen - score_rejected); AdamW, cosine schedule,
   batches drawn with replacement. A validation split (by prompt) is reported.
4. Test sets are scored from their embeddings; the full model (backbone + heads, armo_rm/modeling.py) is
   saved to output_dir, loadable by `judges.load` and with trust_remote_code from the Hub.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from armo_rm.config import ArmoConfig, make_parser
from rm_core.errors import run_recipe


def find_verbosity_penalties(rewards: np.ndarray, verbosity_index: int, threshold: float, two_sided: bool = False,
                             iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(penalties [K], Spearman with verbosity after the penalty [K]); see the module docstring.
    Bisection on p (the correlation of r_k - p r_v with r_v falls as p grows). ArmoRM removes only a positive
    correlation; two_sided also lifts a negative one to -threshold (a negative penalty: a reward that
    favours short answers gets some verbosity back)."""
    from scipy.stats import spearmanr

    verb = rewards[:, verbosity_index]

    def corr(k: int, p: float) -> float:
        rho = spearmanr(rewards[:, k] - p * verb, verb).statistic
        return -1.0 if math.isnan(rho) else float(rho)

    penalties = np.zeros(rewards.shape[1])
    corrs = np.zeros(rewards.shape[1])
    for k in range(rewards.shape[1]):
        if k == verbosity_index or rewards[:, k].std() == 0:  # verbosity itself is zeroed; a constant is left
            penalties[k], corrs[k] = (1.0 if k == verbosity_index else 0.0), float("nan")
            continue
        start = corr(k, 0.0)
        sign = 1.0 if start > threshold else (-1.0 if two_sided and start < -threshold else 0.0)
        if sign == 0.0:
            corrs[k] = start
            continue

        def done(m: float, k: int = k, sign: float = sign) -> bool:  # within the threshold on the side we came from
            return sign * corr(k, sign * m) <= threshold

        lo, hi = 0.0, (rewards[:, k].std() / max(verb.std(), 1e-12)) or 1.0
        for _ in range(60):  # grow hi until it is enough
            if done(hi):
                break
            lo, hi = hi, hi * 2
        for _ in range(iterations):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if done(mid) else (mid, hi)
        penalties[k], corrs[k] = sign * hi, corr(k, sign * hi)
    return penalties, corrs


def transform_matrix(penalties: np.ndarray, verbosity_index: int) -> torch.Tensor:
    t = torch.eye(len(penalties))
    t[verbosity_index, :] -= torch.tensor(penalties, dtype=torch.float32)
    return t


class GatedScore(torch.nn.Module):
    """The stage 2 head on precomputed rewards: the same computation as ArmoRMModel.heads."""

    def __init__(self, hidden: int, cfg: ArmoConfig, transform: torch.Tensor):
        super().__init__()
        from armo_rm.modeling import GatingNetwork

        self.gating = GatingNetwork(hidden, transform.shape[0], cfg.gating_hidden_dim, cfg.gating_n_hidden,
                                    cfg.gating_temperature, cfg.gating_dropout)
        self.logit_scale = torch.nn.Parameter(torch.ones(1))
        self.register_buffer("transform", transform)

    def forward(self, prompt_hidden: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * (self.gating(prompt_hidden) * (rewards @ self.transform)).sum(dim=-1)


def train_gating(head: GatedScore, prompt_c, rewards_c, prompt_r, rewards_r, cfg: ArmoConfig, log_every: int = 100,
                 val: tuple | None = None):
    """BT training of `head` on pairs (index-aligned tensors); returns the loss history.

    `val` (prompt_c, rewards_c, prompt_r, rewards_r of the validation pairs) is scored every cfg.eval_steps; with
    cfg.early_stopping_patience > 0 training stops after that many evaluations in a row without a lower
    validation loss, and the head keeps the weights of the best one. The history then ends with an entry
    {"stopped_at", "best_step", "best_val_loss"}."""
    import copy

    from rm_core.losses import bradley_terry_loss
    from rm_core.progress import progress

    def val_loss() -> float:
        head.eval()
        with torch.no_grad():
            loss = bradley_terry_loss(head(val[0], val[1]), head(val[2], val[3])).item()
        head.train()
        return loss

    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_steps)
    history = []
    checking = val is not None and len(val[0]) > 0 and cfg.eval_steps > 0
    best = (math.inf, -1, None)  # validation loss, step, state
    since_best = 0
    head.train()
    for step in progress(range(cfg.max_steps), desc="gating", unit="step"):  # off with --quiet / not a terminal
        idx = torch.randint(0, prompt_c.shape[0], (cfg.batch_size,), generator=gen)
        loss = bradley_terry_loss(head(prompt_c[idx], rewards_c[idx]), head(prompt_r[idx], rewards_r[idx]))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"gating loss is {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        entry = {"step": step, "loss": round(loss.item(), 5)} if step % log_every == 0 else None
        last = step == cfg.max_steps - 1
        if checking and ((step + 1) % cfg.eval_steps == 0 or last):
            current = val_loss()
            entry = {"step": step, "loss": round(loss.item(), 5), "val_loss": round(current, 5)}
            if current < best[0]:  # the weights are kept only when they may be restored
                state = copy.deepcopy(head.state_dict()) if cfg.early_stopping_patience > 0 else None
                best, since_best = (current, step, state), 0
            else:
                since_best += 1
            if cfg.early_stopping_patience > 0 and since_best >= cfg.early_stopping_patience:
                history.append(entry)
                break
        if entry is not None or last:
            history.append(entry or {"step": step, "loss": round(loss.item(), 5)})
    if checking and cfg.early_stopping_patience > 0 and best[2] is not None:
        head.load_state_dict(best[2])  # the best validation loss seen, not the last step
        history.append({"stopped_at": step, "best_step": best[1], "best_val_loss": round(best[0], 5)})
    head.eval()
    return history


def pair_tensors(cfg: ArmoConfig, prefs: list[dict], weight: torch.Tensor, bias: torch.Tensor, desc: str) -> dict:
    from armo_rm.data import pair_items
    from armo_rm.train_regression import embed_items

    out = embed_items(cfg, pair_items(prefs), desc)
    emb, prompt_emb = out["embeddings"], out["prompt_embeddings"]
    rewards = emb @ weight.T + bias
    return {"prompt_c": prompt_emb[0::2], "prompt_r": prompt_emb[1::2], "rewards_c": rewards[0::2],
            "rewards_r": rewards[1::2], "stats": out["stats"]}


@torch.no_grad()
def check_final_scores(head: GatedScore, t: dict, tests: dict, val_rows: torch.Tensor, train_rows: torch.Tensor) -> None:
    """rm_core.finite.check_final_rewards on the final scores (chosen and rejected) of the test sets' pairs, else
    of the validation pairs, else of the training pairs: a diverged gating (or NaN stage 1 rewards) stops here."""
    from rm_core.finite import check_final_rewards

    if tests:
        sets, where = [(tt, None) for _, tt in tests.values()], f"test pairs of {', '.join(tests)}"
    elif len(val_rows):
        sets, where = [(t, val_rows)], "validation pairs"
    else:
        sets, where = [(t, train_rows)], "training pairs (there is no test or validation set)"
    scores = [head(s["prompt_" + side][rows if rows is not None else slice(None)],
                   s["rewards_" + side][rows if rows is not None else slice(None)])
              for s, rows in sets for side in ("c", "r")]
    check_final_rewards(scores, f"the final model's scores of the {where}")


@torch.no_grad()
def pair_accuracy(head: GatedScore, t: dict, rows: torch.Tensor | None = None) -> float:
    from rm_core.metrics import pairwise_accuracy

    sel = slice(None) if rows is None else rows
    c = head(t["prompt_c"][sel], t["rewards_c"][sel]).tolist()
    r = head(t["prompt_r"][sel], t["rewards_r"][sel]).tolist()
    return pairwise_accuracy(c, r)


@torch.no_grad()
def single_objective_accuracy(t: dict, transform: torch.Tensor, k: int) -> float:
    from rm_core.metrics import pairwise_accuracy

    return pairwise_accuracy((t["rewards_c"] @ transform)[:, k].tolist(), (t["rewards_r"] @ transform)[:, k].tolist())


def generation_marker(tokenizer) -> list[int]:
    """Token ids the template appends as the generation prompt ("<|im_start|>assistant\\n")."""
    from rm_core.templates import tokenize_messages

    probe = [{"role": "user", "content": "x"}]
    with_gen = tokenize_messages(tokenizer, probe, add_generation_prompt=True)
    without = tokenize_messages(tokenizer, probe)
    if with_gen[: len(without)] == without and len(with_gen) > len(without):
        return with_gen[len(without):]
    return with_gen[-1:]  # templates whose generation prompt rewrites the end: the last token


def export_model(cfg: ArmoConfig, attributes: list[str], weight, bias, head: GatedScore, results: dict) -> Path:
    """Build the ArmoRM model in memory and publish it (rm_core.hub.publish: weights, self-describing config.json,
    eval_results.json, model card, then the push when --push_to_hub)."""
    from armo_rm.modeling import ArmoRMConfig, ArmoRMModel
    from armo_rm.train_regression import config_backbone
    from rm_core.hub import CardEval, CardInfo, publish

    backbone, tokenizer = config_backbone(cfg)
    config = ArmoRMConfig(backbone_config=backbone.config.to_dict(), attributes=attributes,
                          gating_hidden_dim=cfg.gating_hidden_dim, gating_n_hidden=cfg.gating_n_hidden,
                          gating_temperature=cfg.gating_temperature, gating_dropout=cfg.gating_dropout,
                          prompt_end_token_ids=generation_marker(tokenizer),
                          verbosity_attribute=cfg.verbosity_attribute)
    model = ArmoRMModel(config)  # fp32: the heads are copied exactly and stay fp32 whatever the backbone dtype
    model.backbone.to(backbone.dtype)
    model.backbone.load_state_dict(backbone.state_dict())
    with torch.no_grad():
        model.regression.weight.copy_(weight)
        model.regression.bias.copy_(bias)
        model.gating.load_state_dict(head.gating.state_dict())
        model.logit_scale.copy_(head.logit_scale)
        model.reward_transform.copy_(head.transform)
    type(config).register_for_auto_class()
    type(model).register_for_auto_class("AutoModel")
    out_dir = Path(cfg.output_dir)
    metrics = {f"{name} accuracy": v["accuracy"] for name, v in results.get("test", {}).items() if "accuracy" in v}
    card = CardInfo(
        base_model=cfg.model_name_or_path, datasets=list(dict.fromkeys(cfg.ratings_sources + cfg.preference_sources)),
        training={"objectives": ", ".join(attributes), "debiasing threshold": cfg.corr_threshold,
                  "gating steps": cfg.max_steps, "batch": cfg.batch_size, "learning rate": cfg.learning_rate,
                  "max_length": cfg.max_length},
        metrics=metrics, evals=[CardEval(name, test_split_label(name), {"held-out accuracy": v.get("accuracy")})
                                for name, v in results.get("test", {}).items() if "accuracy" in v],
        command="python armo_rm/train_regression.py --config <yaml> && python armo_rm/train_gating.py --config <yaml>")
    publish(out_dir, model, tokenizer, rm_family="armo",
            family_fields={"armo_max_length": cfg.max_length, "base_model": cfg.model_name_or_path},
            eval_results=results, card=card, save_model=True, push=cfg.push_to_hub, hub_model_id=cfg.hub_model_id,
            private=cfg.hub_private_repo, ignore=("embeddings/*", "regression.safetensors"))
    return out_dir


def test_split_label(source: str) -> str:
    """The split a test source's pairs come from, as the card names it: the offline sets' own rules (the fixed
    HH-RLHF split's test part; the GSM8K questions from 1000 on, whose first 1000 the offline training sets use),
    else "train": the split armo_rm.data.load_preferences reads of a file or Hub id (never called "test")."""
    name = re.sub(r"\[\d+\]$", "", source.strip())
    return {"offline:hh-harmless-test": "test (hh_sha1)", "offline:gsm8k-test": "test (questions 1000 on)",
            "offline:llmbar": "test"}.get(name, "train")


def main(cfg: ArmoConfig) -> dict:
    from safetensors import safe_open

    from armo_rm.data import load_preferences
    from armo_rm.train_regression import claim_output_dir, embedding_identity, prompt_groups, split_by_group
    from rm_core.data import drop_seen
    from rm_core.errors import UserInputError, check_local_path

    start = time.perf_counter()
    check_local_path(cfg.model_name_or_path, "--model_name_or_path")  # before the data
    reg_path = Path(cfg.output_dir) / "regression.safetensors"
    if not reg_path.is_file():
        raise FileNotFoundError(f"{reg_path} is missing: run armo_rm/train_regression.py first")
    claim_output_dir(cfg, ("config.json",), "stage 2")  # an exported model there: refused, or (overwrite) cleared
    with safe_open(str(reg_path), "pt") as f:
        meta = f.metadata()
        attributes = json.loads(meta["attributes"])
        weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
    if "embedded_by" in meta:  # the regression only means something on the embeddings it was fitted on
        from rm_core.resume import differences

        diff = differences(json.loads(meta["embedded_by"]), embedding_identity(cfg))
        if diff:
            raise UserInputError(f"{reg_path} was fitted on embeddings of another backbone, dtype or max_length "
                                 f"({'; '.join(diff)}): run armo_rm/train_regression.py again with this config")
    else:
        print(f"[stage 2] WARNING: {reg_path} does not record what it was fitted on (written before that was "
              "recorded): cannot check it matches this config's backbone, dtype and max_length", flush=True)
    if cfg.verbosity_attribute not in attributes:
        raise ValueError(f"verbosity attribute {cfg.verbosity_attribute!r} is not among the objectives {attributes}")
    v = attributes.index(cfg.verbosity_attribute)

    prefs = [p for s in cfg.preference_sources for p in load_preferences(s, cfg.shared_data_dir, cfg.max_pairs_per_source)]
    if not prefs:
        raise UserInputError(f"no preference pairs in {cfg.preference_sources}")
    t = pair_tensors(cfg, prefs, weight, bias, "stage 2 embeddings")
    tests, dropped = {}, {}  # every process helps with every embedding pass, in the same order; then the main one trains
    for source in cfg.test_sources:  # a test pair that is also a training pair is dropped and counted
        test_prefs, dropped[source] = drop_seen(load_preferences(source, cfg.shared_data_dir, cfg.max_test_pairs), prefs)
        if test_prefs:
            tests[source] = (test_prefs, pair_tensors(cfg, test_prefs, weight, bias, f"test embeddings {source}"))
    from rm_core.embeddings import process_state

    if not process_state().is_main_process:
        return {}
    reference = torch.cat([t["rewards_c"], t["rewards_r"]]).numpy()
    penalties, corrs = find_verbosity_penalties(reference, v, cfg.corr_threshold, cfg.debias_two_sided)
    transform = transform_matrix(penalties, v)
    print("[stage 2] verbosity penalties: " + ", ".join(f"{a} {p:.4f} (rho {c:.3f})" for a, p, c
                                                          in zip(attributes, penalties, corrs)), flush=True)

    train_mask, val_mask = split_by_group(prompt_groups([p["prompt"] for p in prefs]), cfg.val_fraction, cfg.seed)
    tr, va = torch.from_numpy(np.flatnonzero(train_mask)), torch.from_numpy(np.flatnonzero(val_mask))
    head = GatedScore(weight.shape[1], cfg, transform)
    train_start = time.perf_counter()
    history = train_gating(head, t["prompt_c"][tr], t["rewards_c"][tr], t["prompt_r"][tr], t["rewards_r"][tr], cfg,
                           val=(t["prompt_c"][va], t["rewards_c"][va], t["prompt_r"][va], t["rewards_r"][va]))
    train_seconds = time.perf_counter() - train_start
    results = {"attributes": attributes, "pairs": len(prefs), "train_pairs": len(tr), "val_pairs": len(va),
               "penalties": dict(zip(attributes, penalties.tolist())),
               "spearman_with_verbosity_after": {a: (None if math.isnan(c) else round(c, 4))
                                                 for a, c in zip(attributes, corrs.tolist())},
               "train_accuracy": pair_accuracy(head, t, tr), "loss_history": history,
               "gating_train_seconds": round(train_seconds, 2), "embedding": {"stage 2": t["stats"]}, "test": {}}
    if len(va):
        results["val_accuracy"] = pair_accuracy(head, t, va)
        # stage 1's regression was refitted on every rated row: a validation pair whose prompt it rated (the
        # offline configs rate the very responses they pair) is in-sample for the rewards the gating mixes
        from armo_rm.data import load_ratings

        rated = set(prompt_groups([r["prompt"] for s in cfg.ratings_sources
                                   for r in load_ratings(s, cfg.shared_data_dir, cfg.max_pairs_per_source)]))
        groups = prompt_groups([p["prompt"] for p in prefs])
        results["val_pairs_rated_in_stage1"] = int(sum(groups[i] in rated for i in va.tolist()))
        if results["val_pairs_rated_in_stage1"]:
            print(f"[stage 2] WARNING: {results['val_pairs_rated_in_stage1']} of {len(va)} validation pairs have "
                  "prompts stage 1 rated: val_accuracy is in-sample for the regression (the test accuracy is the "
                  "held-out figure)", flush=True)
    print(f"[stage 2] gating: train accuracy {results['train_accuracy']:.4f}, validation "
          f"{results.get('val_accuracy', float('nan')):.4f} ({train_seconds:.1f} s)", flush=True)

    if not tests:
        print("[test] no held-out test pairs: no test accuracy (val_accuracy is on a by-prompt split of the training "
              "pairs)", flush=True)
    for source in [s for s in dropped if s not in tests]:
        results["test"][source] = {"pairs": 0, "dropped_also_in_training_pairs": dropped[source],
                                   "note": "no held-out pairs: every pair is also a training pair"}
        print(f"[test] {source}: no held-out pairs (all {dropped[source]} are also training pairs)", flush=True)
    for source, (test_prefs, tt) in tests.items():
        entry = {"pairs": len(test_prefs), "dropped_also_in_training_pairs": dropped[source],
                 "accuracy": pair_accuracy(head, tt), "embedding": tt["stats"],
                 "single_objective": {a: single_objective_accuracy(tt, transform, k) for k, a in enumerate(attributes)
                                      if k != v}}
        subsets = sorted({p.get("subset", "") for p in test_prefs} - {""})
        if len(subsets) > 1:
            entry["subsets"] = {s: pair_accuracy(head, tt, torch.tensor([i for i, p in enumerate(test_prefs)
                                                                         if p.get("subset") == s]))
                                for s in subsets}
        with torch.no_grad():
            gates = head.gating(torch.cat([tt["prompt_c"], tt["prompt_r"]]))
        entry["mean_gating"] = dict(zip(attributes, [round(x, 4) for x in gates.mean(0).tolist()]))
        results["test"][source] = entry
        print(f"[test] {source}: accuracy {entry['accuracy']:.4f} on {len(test_prefs)} held-out pairs"
              + (f" ({dropped[source]} also in the training pairs dropped)" if dropped[source] else "")
              + f"; mean gating {entry['mean_gating']}", flush=True)
    results["wall_seconds"] = round(time.perf_counter() - start, 2)
    check_final_scores(head, t, tests, va, tr)  # before anything is exported
    export_model(cfg, attributes, weight, bias, head, results)
    return results


def track_gating(tracker, results: dict) -> None:
    """Stage 2 to the tracker (rm_core.tracking): the gating's loss curve, the debiasing penalties and the
    accuracies (train, validation, each test set: the summary; per-objective test accuracies: a table)."""
    for point in results.get("loss_history", []):
        tracker.log({"gating/loss": point["loss"]}, step=point["step"])
    rows = [{"test_set": name, "objective": objective, "accuracy": acc} for name, entry in results.get("test", {}).items()
            for objective, acc in entry.get("single_objective", {}).items()]
    if rows:
        tracker.log_table("single_objective_accuracy", rows)
    tracker.summary({key: results[key] for key in ("train_accuracy", "val_accuracy", "penalties", "pairs",
                                                   "train_pairs", "val_pairs", "gating_train_seconds")
                     if key in results}
                    | {"test": {name: {k: v for k, v in entry.items() if k in ("pairs", "accuracy", "subsets")}
                                for name, entry in results.get("test", {}).items()}})


def cli() -> None:  # `python armo_rm/train_gating.py`, `python -m armo_rm.train_gating`, `rm-train-armo-gating`
    from armo_rm.train_regression import run_stage

    run_recipe(lambda cfg: run_stage(main, cfg, "armo-gating", track_gating), make_parser)


if __name__ == "__main__":
    cli()
