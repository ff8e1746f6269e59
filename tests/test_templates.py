"""Rendering: exactly one BOS, end-keeping truncation, chat-template errors, the pad-token policy."""

from __future__ import annotations

import pytest

from rm_core.templates import (
    PAD_TOKEN_ADDED,
    PLAIN_CHAT_TEMPLATE,
    TemplateError,
    ensure_pad_token,
    leading_specials,
    render_ids,
    set_chat_template,
    tokenize_messages,
    truncate_keep_end,
)
from rm_core.testing import tiny_llama_config, tiny_tokenizer

# A Llama-3-like template: writes BOS itself, then plain role lines (no other BOS in the text).
BOS_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
CONV = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "The answer is 5."}]


def _tokenizer_adding_bos(chat_template=BOS_TEMPLATE):
    """tiny_tokenizer whose post-processor prepends BOS, as Llama/Gemma tokenizers do."""
    from tokenizers import processors

    tok = tiny_tokenizer(chat_template)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    return tok


# ---------------------------------------------------------------- exactly one BOS


def test_template_bos_plus_tokenizer_bos_gives_exactly_one():
    tok = _tokenizer_adding_bos()
    bos = tok.bos_token_id
    text = tok.apply_chat_template(CONV, tokenize=False)
    raw = tok(text, add_special_tokens=True)["input_ids"]
    assert raw[:2] == [bos, bos]  # the situation being guarded against really arises here
    ids = tokenize_messages(tok, CONV)
    assert ids.count(bos) == 1 and ids[0] == bos
    assert ids == raw[1:]


def test_template_writing_bos_twice_collapses_to_one():
    tok = tiny_tokenizer("{{ bos_token }}" + BOS_TEMPLATE)
    ids = tokenize_messages(tok, CONV)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_tokenizer_bos_only_is_kept():
    # template without BOS, tokenizer adds it: one BOS from the tokenizer
    tok = _tokenizer_adding_bos("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    ids = tokenize_messages(tok, CONV)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids[1:]) == "user: What is 2 + 3?\nassistant: The answer is 5.\n"


def test_empty_conversation_is_an_error():
    with pytest.raises(TemplateError, match="empty"):
        tokenize_messages(tiny_tokenizer(), [])


# ---------------------------------------------------------------- truncation keeps the end


def test_truncate_keep_end_keeps_leading_special_and_end():
    bos = 99
    ids = [bos, 1, 2, 3, 4, 5, 6]
    assert truncate_keep_end(ids, 4, {bos}) == ([bos, 4, 5, 6], True)
    assert truncate_keep_end(ids, 2, {bos}) == ([bos, 6], True)
    assert truncate_keep_end([1, 2, 3, 4, 5, 6], 3, {bos}) == ([4, 5, 6], True)  # no leading special
    assert truncate_keep_end(ids, 7, {bos}) == (ids, False)
    assert truncate_keep_end(ids, None, {bos}) == (ids, False)
    with pytest.raises(ValueError):
        truncate_keep_end(ids, 1, {bos})


def test_long_prompt_keeps_response_end():
    tok = _tokenizer_adding_bos()
    long_prompt = [{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 20}]
    conv = long_prompt + [{"role": "assistant", "content": "hello world"}]
    full = tokenize_messages(tok, conv)
    max_length = 12
    assert len(full) > 5 * max_length
    ids, cut = render_ids(tok, conv, max_length)
    assert cut is True
    assert len(ids) == max_length
    assert ids[0] == tok.bos_token_id
    assert ids[1:] == full[-(max_length - 1):]
    assert tok.decode(ids[1:]).endswith("assistant: hello world\n")
    # not truncated when it fits
    assert render_ids(tok, conv, len(full)) == (full, False)


def test_leading_specials():
    tok = tiny_tokenizer()
    assert leading_specials(tok) == {tok.bos_token_id}


# ---------------------------------------------------------------- chat templates


def test_missing_chat_template_is_a_clear_error():
    tok = tiny_tokenizer(chat_template=None)
    with pytest.raises(TemplateError) as info:
        set_chat_template(tok, None)
    assert "has no chat template" in str(info.value)
    assert "--chat_template" in str(info.value)


def test_plain_template():
    tok = tiny_tokenizer(chat_template=None)
    set_chat_template(tok, "plain")
    assert tok.chat_template == PLAIN_CHAT_TEMPLATE
    ids = tokenize_messages(tok, CONV)
    assert tok.decode(ids) == "User: What is 2 + 3?\nAssistant: The answer is 5.\n"


def test_template_from_jinja_file_and_string(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}", encoding="utf-8")
    tok = tiny_tokenizer(chat_template=None)
    set_chat_template(tok, str(path))
    assert tok.decode(tokenize_messages(tok, CONV)) == "[What is 2 + 3?][The answer is 5.]"
    set_chat_template(tok, "{% for m in messages %}<{{ m['content'] }}>{% endfor %}")
    assert tok.decode(tokenize_messages(tok, CONV)) == "<What is 2 + 3?><The answer is 5.>"


def test_missing_template_file_is_an_error_not_the_template_text(tmp_path):
    tok = tiny_tokenizer(chat_template=None)
    with pytest.raises(TemplateError, match="does not exist"):
        set_chat_template(tok, str(tmp_path / "no-such-template.jinja"))
    assert tok.chat_template is None


def test_a_template_that_is_not_valid_jinja_is_a_user_error_when_set(tmp_path):
    """A broken template (a file, a string, the tokenizer's own) is a TemplateError, a UserInputError that a
    command prints as one line, raised when it is set: not a jinja2 traceback at the first render of a job."""
    from rm_core.errors import UserInputError

    assert issubclass(TemplateError, UserInputError)
    path = tmp_path / "broken.jinja"
    path.write_text("{% for m in messages %}\n{{ m.content ", encoding="utf-8")
    tok = tiny_tokenizer(chat_template=None)
    with pytest.raises(TemplateError) as info:
        set_chat_template(tok, str(path))
    assert str(info.value) == (f"chat template file {path}: not a valid Jinja template (line 2: unexpected end of "
                               "template, expected 'end of print statement'.)")
    with pytest.raises(TemplateError, match=r"^--chat_template: not a valid Jinja template \(line 1: "):
        set_chat_template(tok, "{% if x %}never closed")
    own = tiny_tokenizer(chat_template="{% for m in messages %}{{ m.content }}")
    with pytest.raises(TemplateError, match=r"^the chat template of tokenizer .*: not a valid Jinja template"):
        set_chat_template(own, None)
    latin = tmp_path / "latin.jinja"
    latin.write_bytes(b"{{ '\xe9' }}")
    with pytest.raises(TemplateError, match=r"latin.jinja: not UTF-8 text \(byte 4\)$"):
        set_chat_template(tok, str(latin))


def test_existing_template_is_kept_with_none():
    tok = tiny_tokenizer()
    before = tok.chat_template
    set_chat_template(tok, None)
    assert tok.chat_template == before


# ---------------------------------------------------------------- pad policy


def _model(vocab_size):
    import torch
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    return LlamaForSequenceClassification(tiny_llama_config(vocab_size, num_labels=1))


def test_pad_equal_to_eos_is_replaced_by_unk():
    tok = tiny_tokenizer()
    assert tok.pad_token == tok.eos_token  # SmolLM2's layout
    model = _model(len(tok))
    rows = model.get_input_embeddings().weight.shape[0]
    pad_id = ensure_pad_token(tok, model)
    assert tok.pad_token == tok.unk_token == "<|endoftext|>"
    assert pad_id == tok.unk_token_id != tok.eos_token_id
    assert model.config.pad_token_id == pad_id
    assert model.get_input_embeddings().weight.shape[0] == rows  # nothing added


def test_no_unk_adds_a_pad_token_and_resizes_embeddings():
    import torch

    tok = tiny_tokenizer()
    tok.unk_token = None
    n = len(tok)
    model = _model(n)
    assert model.get_input_embeddings().weight.shape[0] == n
    pad_id = ensure_pad_token(tok, model)
    assert tok.pad_token == PAD_TOKEN_ADDED
    assert len(tok) == n + 1 and pad_id == n
    assert model.get_input_embeddings().weight.shape[0] == n + 1
    assert model.config.pad_token_id == pad_id
    # the model runs on a batch padded with the new id, and reads the reward before the padding
    ids = tokenize_messages(tok, CONV)
    batch = torch.tensor([ids + [pad_id] * 3])
    with torch.no_grad():
        padded = model(input_ids=batch, attention_mask=(batch != pad_id).long()).logits
        alone = model(input_ids=torch.tensor([ids])).logits
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_distinct_pad_is_kept():
    tok = tiny_tokenizer()
    tok.pad_token = "<|endoftext|>"
    model = _model(len(tok))
    assert ensure_pad_token(tok, model) == tok.convert_tokens_to_ids("<|endoftext|>")
    assert model.config.pad_token_id == tok.pad_token_id


def test_a_pair_the_same_once_cut_is_dropped_and_counted():
    """Two responses that differ only at their start and share a long ending: cut to max_length from the front,
    both sides are the same tokens (a constant loss, a tie); the pair is dropped, counted, and `kept` says which
    pairs the dataset holds."""
    from rm_core.collators import tokenize_preferences

    tok = _tokenizer_adding_bos()
    tail = " and the quick brown fox jumps over the lazy dog" * 4
    prompt = [{"role": "user", "content": "Say it."}]
    prefs = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": "Correct" + tail}],
              "rejected": [{"role": "assistant", "content": "Wrong" + tail}]},
             {"prompt": prompt, "chosen": [{"role": "assistant", "content": "yes"}],
              "rejected": [{"role": "assistant", "content": "no"}]}]
    dataset, report = tokenize_preferences(prefs, tok, 16)
    assert report.pairs == 2 and report.identical_after_cut == 1 and report.kept == [1] and len(dataset) == 1
    assert "1 dropped: chosen and rejected the same once cut" in str(report)
    dataset, report = tokenize_preferences(prefs, tok, None)
    assert report.identical_after_cut == 0 and report.kept == [0, 1] and len(dataset) == 2
