"""Bradley-Terry loss on hand-computed numbers, the one tie rule, and the trainer's NaN stop."""

from __future__ import annotations

import math

import pytest
import torch

from rm_core.losses import bradley_terry_loss
from rm_core.metrics import mean_margin, pair_correct, pairwise_accuracy

torch.set_num_threads(1)  # 2 shared cores: oversubscribed threads make tiny models 10x slower


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# ---------------------------------------------------------------- bradley_terry_loss


def test_equal_rewards_give_log_2():
    assert bradley_terry_loss(t(0.0), t(0.0)).item() == pytest.approx(math.log(2))
    assert bradley_terry_loss(t(3.5, -1.0), t(3.5, -1.0)).item() == pytest.approx(math.log(2))


def test_known_values():
    # -log sigmoid(2) = log(1 + e^-2)
    assert bradley_terry_loss(t(2.0), t(0.0)).item() == pytest.approx(math.log1p(math.exp(-2)))
    # wrong order: -log sigmoid(-2) = log(1 + e^2)
    assert bradley_terry_loss(t(0.0), t(2.0)).item() == pytest.approx(math.log1p(math.exp(2)))
    # batch mean
    expected = (math.log(2) + math.log1p(math.exp(-2))) / 2
    assert bradley_terry_loss(t(0.0, 3.0), t(0.0, 1.0)).item() == pytest.approx(expected)


def test_margin_is_subtracted_from_the_difference():
    # diff 1 - margin 1 = 0 -> log 2
    assert bradley_terry_loss(t(1.0), t(0.0), margin=t(1.0)).item() == pytest.approx(math.log(2))
    # diff 3 - margin 1 = 2
    assert bradley_terry_loss(t(3.0), t(0.0), margin=t(1.0)).item() == pytest.approx(math.log1p(math.exp(-2)))
    # a larger margin asks for a larger gap: same rewards, higher loss
    assert bradley_terry_loss(t(1.0), t(0.0), margin=t(2.0)) > bradley_terry_loss(t(1.0), t(0.0), margin=t(0.5))


def test_centering_penalty():
    base = math.log1p(math.exp(-1))  # diff 1
    got = bradley_terry_loss(t(1.0), t(0.0), center_coefficient=0.01).item()
    assert got == pytest.approx(base + 0.01 * (1.0 + 0.0) ** 2)
    # mean over the batch of (chosen + rejected)^2: ((1+0)^2 + (2+1)^2) / 2 = 5
    got = bradley_terry_loss(t(1.0, 2.0), t(0.0, 1.0), center_coefficient=0.1).item()
    assert got == pytest.approx(base + 0.1 * 5.0)
    # shifting both rewards leaves BT unchanged but not the centred loss
    assert bradley_terry_loss(t(11.0), t(10.0)).item() == pytest.approx(base)
    assert bradley_terry_loss(t(11.0), t(10.0), center_coefficient=0.01).item() == pytest.approx(base + 0.01 * 441)
    assert bradley_terry_loss(t(1.0), t(0.0), center_coefficient=None).item() == pytest.approx(base)
    assert bradley_terry_loss(t(1.0), t(0.0), center_coefficient=0.0).item() == pytest.approx(base)


def test_gradient_pushes_chosen_up_and_rejected_down():
    chosen = t(0.3, -1.0).requires_grad_()
    rejected = t(0.5, 2.0).requires_grad_()
    bradley_terry_loss(chosen, rejected).backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()
    # d/d chosen_i = -sigmoid(-(c_i - r_i)) / n
    expected = -torch.sigmoid(-(chosen.detach() - rejected.detach())) / 2
    torch.testing.assert_close(chosen.grad, expected)
    torch.testing.assert_close(rejected.grad, -expected)


def test_loss_is_finite_for_large_differences():
    assert bradley_terry_loss(t(1000.0), t(-1000.0)).item() == pytest.approx(0.0)
    assert bradley_terry_loss(t(-1000.0), t(1000.0)).item() == pytest.approx(2000.0)


# ---------------------------------------------------------------- sparse-label loss (pair-PM, math PRM/ORM)


def _sparse_example():
    """Two sequences of 4 tokens, vocabulary {0, 1}: row 0 labels token 2 (predicted at position 1) with 1; row 1
    labels token 1 with 0 and token 3 with 1 (predicted at positions 0 and 2)."""
    ignore = -100
    labels = torch.tensor([[ignore, ignore, 1, ignore], [ignore, 0, ignore, 1]])
    ln3 = math.log(3)
    # logits at the kept positions 0, 1, 2 only; 99 marks entries no label reads
    kept_logits = torch.tensor([[[99.0, 99.0], [0.0, 0.0], [99.0, 99.0]],      # row 0: [0, 0] -> P(1) = 1/2
                                [[ln3, 0.0], [99.0, 99.0], [0.0, ln3]]])      # row 1: P(0) = 3/4, P(1) = 3/4
    return labels, kept_logits


def test_sparse_label_positions_are_the_shifted_label_slots():
    from rm_core.losses import sparse_label_positions

    labels, _ = _sparse_example()
    rows, positions, keep = sparse_label_positions(labels)
    assert rows.tolist() == [0, 1, 1] and positions.tolist() == [1, 0, 2] and keep.tolist() == [0, 1, 2]


def test_sparse_label_loss_on_hand_computed_numbers():
    from rm_core.losses import sparse_label_loss, sparse_label_positions

    labels, kept_logits = _sparse_example()
    rows, positions, keep = sparse_label_positions(labels)
    total = math.log(2) + 2 * math.log(4 / 3)  # -log 1/2 - 2 log 3/4
    assert sparse_label_loss(kept_logits, labels, rows, positions, keep).item() == pytest.approx(total / 3)
    # under gradient accumulation: the sum over the labels of the whole batch (4 of them), times 2 processes
    loss = sparse_label_loss(kept_logits, labels, rows, positions, keep, num_items_in_batch=4, num_processes=2)
    assert loss.item() == pytest.approx(total / 4 * 2)


def test_sparse_label_loss_equals_the_full_causal_lm_loss():
    from rm_core.losses import sparse_label_loss, sparse_label_positions

    labels, _ = _sparse_example()
    full = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))  # logits at every position
    rows, positions, keep = sparse_label_positions(labels)
    expected = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, 2), labels[:, 1:].reshape(-1))
    got = sparse_label_loss(full[:, keep], labels, rows, positions, keep)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_sparse_label_loss_over_the_label_tokens_alone_on_hand_computed_numbers():
    """label_ids: a two-way softmax over the label tokens' logits; the other tokens (here 0 and 2, with the largest
    logits) take no part, and a label outside them is an error."""
    from rm_core.losses import sparse_label_loss, sparse_label_positions

    labels = torch.tensor([[-100, -100, 1], [-100, 3, -100]])  # one label a row, predicted at positions 1 and 0
    rows, positions, keep = sparse_label_positions(labels)
    kept = torch.zeros(2, 2, 4)
    kept[0, 1] = torch.tensor([5.0, math.log(3), 7.0, 0.0])  # over tokens (1, 3): P(1) = 3 / 4
    kept[1, 0] = torch.tensor([0.0, 0.0, 9.0, math.log(3)])  # P(3) = 3 / 4
    got = sparse_label_loss(kept, labels, rows, positions, keep, label_ids=torch.tensor([1, 3]))
    assert got.item() == pytest.approx(-math.log(3 / 4))
    whole_vocab = sparse_label_loss(kept, labels, rows, positions, keep)
    assert whole_vocab.item() > 5  # tokens 0 and 2 dominate the whole-vocabulary softmax
    with pytest.raises(ValueError, match="outside the label tokens"):
        sparse_label_loss(kept, labels, rows, positions, keep, label_ids=torch.tensor([1, 2]))


# ---------------------------------------------------------------- metrics


def test_pair_correct_tie_rule():
    assert pair_correct(2.0, 1.0) is True
    assert pair_correct(1.0, 2.0) is False
    assert pair_correct(1.0, 1.0) is False  # a tie is wrong
    assert pair_correct(float("nan"), 0.0) is False
    assert pair_correct(0.0, float("nan")) is False
    assert pair_correct(float("nan"), float("nan")) is False
    assert pair_correct(None, 0.0) is False
    assert pair_correct(float("inf"), 0.0) is True


def test_pairwise_accuracy():
    assert pairwise_accuracy([1, 2, 3, float("nan")], [0, 2, 4, 0]) == pytest.approx(0.25)
    assert pairwise_accuracy([5.0] * 4, [5.0] * 4) == 0.0  # a constant model scores 0, not 0.5
    assert pairwise_accuracy([1.0, 1.0], [0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        pairwise_accuracy([], [])
    with pytest.raises(ValueError):
        pairwise_accuracy([1.0, 2.0], [0.0])


def test_mean_margin():
    assert mean_margin([3.0, 1.0], [1.0, 2.0]) == pytest.approx(0.5)


# ---------------------------------------------------------------- trainer


def _trainer(tmp_path, model, tokenizer):
    from datasets import Dataset

    from rm_core.args import RewardModelConfig
    from rm_core.trainer import PairwiseRewardTrainer

    ids = tokenizer("hello world")["input_ids"]
    ds = Dataset.from_dict({"chosen_ids": [ids, ids[:2]], "rejected_ids": [ids[:1], ids], "length": [4, 4]})
    args = RewardModelConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                             report_to="none", save_strategy="no", activation_checkpointing=False,
                             disable_tqdm=True, use_cpu=True)
    return PairwiseRewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer), ds


def test_trainer_loss_is_the_bt_loss_of_the_model_rewards(tmp_path):
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=1)
    trainer, ds = _trainer(tmp_path, model, tokenizer)
    batch = trainer.data_collator([ds[0], ds[1]])
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    chosen, rejected = logits[:2], logits[2:]
    assert loss.item() == pytest.approx(bradley_terry_loss(chosen, rejected).item(), rel=1e-5)


def test_trainer_stops_on_nan_loss(tmp_path):
    from rm_core.testing import tiny_reward_model
    from rm_core.trainer import NonFiniteLossError

    model, tokenizer = tiny_reward_model()
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    trainer, _ = _trainer(tmp_path, model, tokenizer)
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at step 0"):
        trainer.train()


def test_trainer_loss_uses_the_margin(tmp_path):
    from datasets import Dataset

    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=2)
    trainer, _ = _trainer(tmp_path, model, tokenizer)
    ids = tokenizer("hello world")["input_ids"]
    ds = Dataset.from_dict({"chosen_ids": [ids, ids[:2]], "rejected_ids": [ids[:1], ids], "margin": [1.5, -0.5]})
    batch = trainer.data_collator([ds[0], ds[1]])
    assert torch.equal(batch["margin"], torch.tensor([1.5, -0.5]))
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    expected = bradley_terry_loss(logits[:2], logits[2:], margin=torch.tensor([1.5, -0.5]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx(bradley_terry_loss(logits[:2], logits[2:]).item(), rel=1e-3)

