"""bench/eval_scaling.py: the paper model on hand-computed numbers, the long pairs it builds, and one tiny-model run
through the real eval.reward_bench (every sequence of a length point cut to exactly L tokens)."""

from __future__ import annotations

import json

import pytest

from bench import eval_scaling

needs_data = pytest.mark.skipif(not eval_scaling.HH_FILE.exists(), reason=f"{eval_scaling.HH_FILE} is absent")


def test_paper_model_on_hand_computed_numbers():
    config = {"num_hidden_layers": 2, "hidden_size": 4}
    # 2N / (2N + 2 * layers * width * L) = 200 / (200 + 2 * 2 * 4 * 10) = 200 / 360
    assert eval_scaling.paper_relative_speed(config, 100, 10) == pytest.approx(200 / 360)
    assert eval_scaling.paper_relative_speed(config, 100, 0) == 1.0


@needs_data
def test_long_pairs_share_a_real_prompt_and_pass_the_length():
    rows = eval_scaling.hh_rows()
    assert len(rows) == 2312 and len({r["id"] for r in rows}) == 2312
    long = eval_scaling.long_rows(rows, 5, 3000)
    assert len({r["id"] for r in long}) == 5
    for r in long:
        prompt_c, _, reply_c = r["chosen"].partition("\n\nAssistant: ")
        prompt_r, _, reply_r = r["rejected"].partition("\n\nAssistant: ")
        assert prompt_c == prompt_r and len(reply_c) >= 3000 and len(reply_r) >= 3000 and reply_c != reply_r


@needs_data
def test_a_tiny_run_cuts_every_long_sequence_to_the_length(tmp_path):
    from rm_core.testing import save_tiny_reward_model

    model = save_tiny_reward_model(tmp_path / "rm")
    result = eval_scaling.main(["--model", str(model), "--pairs", "3", "--lengths", "48", "--length_pairs", "2",
                                "--work_dir", str(tmp_path / "work"), "--output", str(tmp_path / "out.json")])
    (point,) = result["pairs"]
    assert point["pairs"] == 3 and point["tokens"] > 0 and point["seconds"] > 0
    (long,) = result["length"]
    assert long["pairs"] == 2 and long["truncated_pairs"] == 2
    assert long["tokens_per_pair"] == 2 * 48  # both sequences of each pair, exactly 48 tokens
    assert 0 < long["paper_relative"] < 1
    assert json.loads((tmp_path / "out.json").read_text())["length"][0]["max_length"] == 48
    assert "| length | 2 | 48 | 96.0 |" in eval_scaling.markdown(result)
