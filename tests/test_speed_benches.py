"""bench/forward_profile.py and bench/judge_split.py on a tiny reward model: the flop count behind the GFLOP/s
figure, and the padding bound the split reports."""

from __future__ import annotations

import json

import pytest

from bench import forward_profile, judge_split


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from rm_core.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("speed") / "rm")


def test_forward_profile_counts_weight_and_attention_flops(tiny_model, tmp_path):
    from transformers import AutoConfig

    from rm_core.testing import tiny_reward_model

    out = forward_profile.main(["--model", str(tiny_model), "--gemm_rows", "8", "--lengths", "16", "32",
                                "--reps", "1", "--profile_length", "8", "--profile_reps", "1",
                                "--output", str(tmp_path / "fp.json")])
    config = AutoConfig.from_pretrained(tiny_model)
    model, _ = tiny_reward_model()
    # Every weight but the token embedding's (the tiny Llama has rotary positions, no position table).
    total = sum(p.numel() for p in model.parameters())
    assert out["non_embedding_params"] == total - model.get_input_embeddings().weight.numel()
    for length in (16, 32):
        run = out["forward"][length]
        flops_per_token = 2 * out["non_embedding_params"] + 2 * config.num_hidden_layers * config.hidden_size * length
        assert run["gflops"] == pytest.approx(run["tokens_per_s"] * flops_per_token / 1e9, rel=0.05, abs=0.05)
    assert set(out["gemm"]) == {8}  # one rate per --gemm_rows (too small here to be above rounding)
    shares = out["profile_self_cpu_share"]
    assert 0 < sum(shares.values()) <= 1.001
    assert any(op in shares for op in ("aten::mm", "aten::addmm", "aten::linear"))
    assert json.loads((tmp_path / "fp.json").read_text())["threads"] >= 1


def test_judge_split_keeps_padding_within_the_slack(tiny_model, tmp_path):
    out = judge_split.main(["--judge", str(tiny_model), "--items", "40", "--batch_sizes", "8",
                            "--slack", "inf", "1.1", "--repeats", "2", "--output", str(tmp_path / "split.json")])
    plain, tight = out["runs"]
    assert plain["slack"] == "none" and plain["forwards_per_batch"] == 1.0
    assert tight["slack"] == 1.1 and tight["padded_over_real"] <= 1.1 <= plain["padded_over_real"]
    assert tight["forwards_per_batch"] > 1.0
    assert all(run["render_ms"] > 0 and run["forward_ms"] > 0 and len(run["forward_ms_passes"]) == 2 for run in out["runs"])


def test_bt_bench_reads_speed_and_loss_curve_from_the_trainer_log(tmp_path):
    from bench.bt_hh import train_speed

    log = tmp_path / "train.log"
    log.write_text("{'loss': '0.6931', 'grad_norm': '1.2', 'num_tokens': '1200.0'}\n"
                   "noise\n{'loss': '0.5', 'num_tokens': '2.4e+03'}\n"
                   "{'train_runtime': '12.0', 'train_loss': '0.6'}\n")
    got = train_speed(log)
    assert got == {"steps": 2, "train_runtime_s": 12.0, "non_pad_tokens": 2400, "tokens_per_second": 200.0,
                   "loss_curve": [0.6931, 0.5]}


def test_serve_load_reads_a_process_cpu_time_from_proc():
    import os
    import time

    from bench.serve_load import cpu_seconds

    before, own_before = cpu_seconds(os.getpid()), time.process_time()
    sum(i * i for i in range(2_000_000))  # busy for a fraction of a second
    spent = time.process_time() - own_before
    assert spent > 0.05
    assert cpu_seconds(os.getpid()) - before == pytest.approx(spent, abs=0.05)


@pytest.mark.parametrize("flag, value", [("--ours_micro_batch_size", "3"), ("--trl_micro_batch_size", "0")])
def test_bt_bench_refuses_a_micro_batch_that_does_not_divide_the_batch(monkeypatch, capsys, flag, value):
    import sys

    from bench import bt_hh

    monkeypatch.setattr(sys, "argv", ["bt_hh", "--batch_size", "8", flag, value])
    with pytest.raises(SystemExit) as exit_info:
        bt_hh.main()
    assert exit_info.value.code == 2
    assert f"{flag} {value} must divide --batch_size 8" in capsys.readouterr().err


def test_eval_speed_counts_the_token_positions_each_tool_computes():
    from bench.eval_speed import computed_tokens

    pairs = [([1, 2, 3, 4], [1, 2, 9]),  # prefix 2: ours 4 + 1 = 5
             ([5, 6], [7, 8, 9, 10]),    # nothing shared: 6
             ([1, 2, 3], [1, 2, 3])]     # identical: one token of each is kept apart, 3 + 1 = 4
    # peer, batches of 2: chosen padded to 4 and rejected to 4 (x2 pairs), then the last pair alone (3 + 3)
    assert computed_tokens(pairs, peer_batch=2) == {"ours": 15, "peer": 22, "whole_sequences": 19,
                                                    "peer_over_ours": round(22 / 15, 3)}
    assert computed_tokens(pairs, peer_batch=3)["peer"] == 3 * 4 + 3 * 4
    system = [50, 51, 52, 53, 54]  # every pair behind one 5-token prefix: computed once (the cache), not a row each
    behind = [(system + [1, 2, 3], system + [1, 9]), (system + [4], system + [5, 6])]
    assert computed_tokens(behind, peer_batch=2)["ours"] == 5 + (1 + 2 + 1) + (1 + 2)
