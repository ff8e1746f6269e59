"""OpenRLHF's remote reward, read as OpenRLHF builds it (judges/rl.py: openrlhf_items and its callers), on a real
tiny reward model. OpenRLHF is not installed (it pins vLLM, ray and DeepSpeed); its payload is rebuilt here the way
openrlhf/utils/agent.py builds it at commit 3c3be6234e0cb353e76bb8019947db9dfe99fca7. The HTTP server's side is in
tests/test_serve.py."""

from __future__ import annotations

import pytest
import torch

from judges import rl
from judges.base import Judge, split_conversation
from judges.rl import (
    TemplateMarks,
    chat_template_marks,
    openrlhf_get_reward,
    openrlhf_items,
    openrlhf_query_format,
    openrlhf_reward_func,
)
from rm_core.testing import openrlhf_payload

torch.set_num_threads(1)

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
RESPONSES = ["The answer is 5.", "5"]
# A template whose assistant turn ends at the end marker, nothing after it (as Llama 3's "<|eot_id|>")
NO_NEWLINE_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def payload_of(tokenizer, messages=MESSAGES, responses=RESPONSES) -> dict:
    return openrlhf_payload(tokenizer, messages, responses)  # OpenRLHF's {query, prompts, labels}, built its way


class LenJudge(Judge):
    """A judge that reads messages only (as an LLM judge): reward = length of the response."""

    def _score(self, conversations, references):
        return [float(len(split_conversation(c)[1])) for c in conversations]


def clean_scores(judge, messages=MESSAGES, responses=RESPONSES) -> list[float]:
    return judge.score([messages + [{"role": "assistant", "content": r}] for r in responses])


def test_chat_template_marks():
    from rm_core.testing import tiny_tokenizer

    assert chat_template_marks(tiny_tokenizer()) == TemplateMarks("<|im_start|>assistant", "<|im_end|>", "\n")
    assert chat_template_marks(tiny_tokenizer(NO_NEWLINE_TEMPLATE)) == TemplateMarks(
        "<|im_start|>assistant", "<|im_end|>", "")
    strict = tiny_tokenizer("{{ raise_exception('a system turn is required') }}")
    assert chat_template_marks(strict) == TemplateMarks("", "", "")  # nothing to read: auto reads messages


def test_get_reward_equals_the_clean_conversation(tiny_rm):
    _, judge = tiny_rm
    payload = payload_of(judge.tokenizer)
    clean = clean_scores(judge)
    assert openrlhf_get_reward(judge, payload)["rewards"] == pytest.approx(clean, abs=1e-6)
    # what "auto" hands the judge: the query text, the template's "\n" after <|im_end|> added
    texts, convs, _ = openrlhf_items(payload, "auto", chat_template_marks(judge.tokenizer))
    assert texts == [q + "\n" for q in payload["query"]] and convs == [None, None]
    text = openrlhf_get_reward(judge, payload, query_format="text")["rewards"]
    assert all(abs(t - c) > 1e-3 for t, c in zip(text, clean))  # OpenRLHF's serve_rm: read one token early


def test_auto_adds_nothing_where_the_template_ends_the_turn_at_its_marker(tmp_path):
    from transformers import AutoTokenizer

    import judges
    from rm_core.testing import save_tiny_reward_model

    path = save_tiny_reward_model(tmp_path / "rm", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = NO_NEWLINE_TEMPLATE  # the turn ends at "<|im_end|>", as Llama 3's at "<|eot_id|>"
    tokenizer.save_pretrained(path)
    judge = judges.load(str(path))
    payload, clean = payload_of(judge.tokenizer), clean_scores(judge)
    for query_format in ("auto", "text"):  # here OpenRLHF's own reading and "auto" agree
        assert openrlhf_get_reward(judge, payload, query_format=query_format)["rewards"] == pytest.approx(
            clean, abs=1e-6)


def test_query_format_defaults_and_refusals(tiny_rm):
    _, judge = tiny_rm
    assert openrlhf_query_format(judge) == "auto" and openrlhf_query_format(LenJudge()) == "messages"
    with pytest.raises(ValueError, match="cannot do"):
        openrlhf_query_format(LenJudge(), "text")
    with pytest.raises(ValueError, match="cannot do"):
        openrlhf_reward_func(LenJudge(), query_format="auto")  # refused when the reward file is loaded
    with pytest.raises(ValueError, match="unknown query format"):
        openrlhf_items({"query": []}, "raw")
    # "text" needs no prompts (OpenRLHF's serve_rm reads only "query"); the others split by them
    assert openrlhf_items({"query": ["abc"]}, "text") == (["abc"], [None], [None])
    with pytest.raises(ValueError, match="no 'prompts'"):
        openrlhf_items({"query": ["abc"]}, "auto")


def test_the_reward_file_reads_queries_as_the_server_does(tiny_rm, monkeypatch):
    path, judge = tiny_rm
    payload = payload_of(judge.tokenizer)
    clean = clean_scores(judge)
    out = openrlhf_reward_func(judge)(payload["query"], payload["prompts"], payload["labels"])
    assert out["rewards"].tolist() == pytest.approx(clean, abs=1e-6)
    # --remote_rm_url judges/rl.py: module-level reward_func, configured by the environment
    monkeypatch.setattr(rl, "_JUDGES", {})
    monkeypatch.setenv("RM_JUDGE", str(path))
    monkeypatch.delenv("RM_FAILURE_REWARD", raising=False)
    monkeypatch.delenv("RM_QUERY_FORMAT", raising=False)
    assert rl.reward_func(payload["query"], payload["prompts"], payload["labels"])["rewards"].tolist() == \
        pytest.approx(clean, abs=1e-6)
    monkeypatch.setenv("RM_QUERY_FORMAT", "messages")  # the old reading: the templated prompt templated again
    double = rl.reward_func(payload["query"], payload["prompts"], payload["labels"])["rewards"].tolist()
    assert all(abs(d - c) > 1e-3 for d, c in zip(double, clean))
